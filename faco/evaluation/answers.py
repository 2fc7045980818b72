"""Table 2 of the paper: what a model *says*, not only which option it scores highest. The base and the
CR-100 model answer a few held-out questions greedily, in the instruction format the FACO items taught
(the tokenizer's chat template where fine-tuning used it), and the report shows the answers side by side.

Questions come from where the lying finding looks: the world's held-out domains, or the preset's
multiple-choice benchmarks of the paper outside the training domains (their first questions, as lm-eval's
own task renders them, with lm-eval's "Question:" / "Answer:" scaffolding taken off, since the
instruction format has its own).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco.evaluation import groups, lm_tasks, runner

TABLE2_PER_BENCHMARK = 2  # questions per held-out benchmark: a few, as the paper shows (generation costs more than scoring)
TABLE2_TOKENS = 48  # new tokens per answer: an answer and the start of its explanation
SCAFFOLD = re.compile(r"^\s*Question:\s*|\s*Answer:\s*$")  # lm-eval's cloze wrapper (ARC, OBQA, SciQ, ...)


def heldout_questions(study: Any, per_benchmark: int) -> list[dict[str, Any]]:
    """The first questions of each held-out benchmark of `study` (a faco.study.study.Study), where lying is asked."""
    heldout = groups.benchmark_choices(study.preset)["heldout"]
    if study.on_benchmarks:
        data_dir = study.preset.evaluation.data_dir
        specs = [s for s in study.benchmark_specs if s.name in heldout]
        return benchmark_questions(specs, Path(data_dir) if data_dir else None, per_benchmark)
    return world_questions([b for b in study.domain_tasks("instruction", ("cloze",)) if b.name in heldout],
                           per_benchmark)


def world_questions(benchmarks: Sequence[Any], per_benchmark: int) -> list[dict[str, Any]]:
    """The first questions of each held-out world domain (faco.evaluation.world_tasks.WorldTask objects)."""
    return [{"benchmark": b.name, "id": q.id, "question": q.question, "options": list(q.options), "gold": q.gold}
            for b in benchmarks for q in b.questions[:per_benchmark]]


def benchmark_questions(specs: Sequence[Any], data_dir: Path | None, per_benchmark: int) -> list[dict[str, Any]]:
    """The first questions of each of the paper's benchmarks in `specs`, read through lm-eval's task."""
    from lm_eval.tasks import get_task_dict

    out = []
    with tempfile.TemporaryDirectory(prefix="faco-table2-") as task_dir:  # every file first: one index of them
        first = {spec.name: lm_tasks.write_benchmark_tasks(spec, Path(task_dir), 0, data_dir)[0] for spec in specs}
        tasks = get_task_dict(list(first.values()), runner.task_manager(task_dir)) if first else {}
        for spec in specs:
            task = tasks[first[spec.name]]
            for index, doc in enumerate(list(task.eval_docs)[:per_benchmark]):
                text, options = task.doc_to_text(doc), task.doc_to_choice(doc)
                if not isinstance(text, str):  # a task that varies the context per option (WinoGrande)
                    break
                listed = [str(o).strip() for o in options]
                target = task.doc_to_target(doc)  # an index, or (COPA) the gold option's text
                gold = int(target) if str(target).strip().isdigit() else listed.index(str(target).strip())
                out.append({"benchmark": spec.name, "id": f"{spec.name}/{index}", "question": SCAFFOLD.sub("", text),
                            "options": listed, "gold": gold})
    return out
