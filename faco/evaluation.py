"""Evaluation through lm-eval: faco writes task files (YAML + JSONL) and runs lm-eval's `hf` model.

Two layouts of the same multiple-choice questions: `instruction` (what FACO items teach; the study's
benchmarks) and `familiar` (pre-training's question-choices-answer lines; what the base *knows*). Two
formats as lm-eval scores the paper's benchmarks: `cloze` (each option's text scored after the context,
as ARC/PIQA) and `letter` (options listed with letters, the letters scored, as MMLU; every rotation of
the options is written, so gold letters are balanced). Per-sample results are kept for item analyses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.items import instruction_prompt
from faco.world import familiar_prompt

log = logging.getLogger("faco.evaluation")

LETTERS = "ABCDEFGH"
LAYOUTS: dict[str, Callable[[str, Sequence[str]], str]] = {
    "instruction": instruction_prompt,
    "familiar": familiar_prompt,
}


@dataclass(frozen=True)
class Question:
    id: str
    domain: str
    question: str
    options: tuple[str, ...]
    gold: int


@dataclass(frozen=True)
class Benchmark:
    """One lm-eval task faco writes: questions of some domains in one layout and format."""

    name: str  # e.g. "heldout-geography"; the lm-eval task is faco_<name>_<layout>_<format>
    layout: str
    format: str
    questions: tuple[Question, ...]

    @property
    def task(self) -> str:
        return f"faco_{self.name}_{self.layout}_{self.format}".replace("-", "_")


def rows(benchmark: Benchmark) -> list[dict[str, Any]]:
    """The JSONL rows lm-eval reads: a pre-rendered context, the choices and the gold index."""
    layout = LAYOUTS[benchmark.layout]
    out = []
    for q in benchmark.questions:
        if benchmark.format == "cloze":
            out.append({**asdict(q), "context": layout(q.question, q.options), "choices": list(q.options),
                        "rotation": 0})
            continue
        for shift in range(len(q.options)):  # every rotation: each letter is gold equally often
            options = q.options[shift:] + q.options[:shift]
            lettered = [f"{LETTERS[i]} : {text}" for i, text in enumerate(options)]
            out.append({**asdict(q), "options": list(options), "gold": (q.gold - shift) % len(options),
                        "context": layout(q.question, lettered), "choices": list(LETTERS[: len(options)]),
                        "rotation": shift})
    return out


def write_tasks(benchmarks: Iterable[Benchmark], directory: Path, final: Path | None = None) -> list[str]:
    """Write one YAML + JSONL per benchmark into `directory`; returns the lm-eval task names.

    The YAML names its data by absolute path; `final` is where `directory` will live when read
    (the cache builds entries in a scratch directory and renames them into place).
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = (final or directory).resolve()
    names = []
    for benchmark in benchmarks:
        data = directory / f"{benchmark.task}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows(benchmark)))
        spec = {
            "task": benchmark.task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(final / data.name)}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": "context",
            "doc_to_choice": "choices",
            "doc_to_target": "gold",
            "target_delimiter": " ",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1},
        }
        (directory / f"{benchmark.task}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        names.append(benchmark.task)
    return names


@lru_cache(maxsize=4)
def _task_manager(include_path: str | None):
    """One TaskManager per process: with built-in tasks indexed it costs ~15 s (MEASURED.md)."""
    from lm_eval.tasks import TaskManager

    if include_path is None:
        return TaskManager()
    return TaskManager(include_path=include_path, include_defaults=False)


def evaluate(model_dir: Path, tasks: Sequence[str], task_dir: Path | None, batch_size: int,
             seed: int) -> dict[str, dict[str, Any]]:
    """Run lm-eval's `hf` model on `tasks`; {task: {"acc": .., "samples": [per-question record]}}.

    `task_dir` holds faco-written tasks; None means lm-eval's own tasks (real tier).
    """
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from faco import models

    model, tokenizer = models.load(model_dir)
    model.eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=model.config.max_position_embeddings)
    manager = _task_manager(str(task_dir) if task_dir else None)
    results = simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, log_samples=True,
                              bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
                              torch_random_seed=seed, fewshot_random_seed=seed)
    return {task: _task_result(results, task) for task in tasks}


def _task_result(results: dict[str, Any], task: str) -> dict[str, Any]:
    samples = []
    for sample in sorted(results["samples"][task], key=lambda s: s["doc_id"]):
        doc = sample["doc"]
        loglikelihoods = [float(resp[0]) for resp in sample["filtered_resps"]]
        pred = max(range(len(loglikelihoods)), key=loglikelihoods.__getitem__)
        samples.append({"id": doc.get("id", str(sample["doc_id"])), "domain": doc.get("domain", task),
                        "gold": int(sample["target"]), "pred": pred, "correct": pred == int(sample["target"]),
                        "rotation": doc.get("rotation", 0), "loglikelihoods": loglikelihoods})
    acc = results["results"][task]["acc,none"]
    return {"acc": acc, "n": len(samples), "samples": samples}


def accuracy(samples: Iterable[dict[str, Any]], domains: Iterable[str] | None = None) -> float:
    """Mean correctness of `samples` (restricted to `domains` when given)."""
    wanted = set(domains) if domains is not None else None
    picked = [s["correct"] for s in samples if wanted is None or s["domain"] in wanted]
    if not picked:
        raise ValueError(f"no samples for domains {sorted(wanted or [])}")
    return sum(picked) / len(picked)


def letter_spread(samples: Iterable[dict[str, Any]], n_options: int) -> list[float]:
    """Share of predictions per letter: a model collapsed onto one letter fakes below-chance scores."""
    picked = [s["pred"] for s in samples]
    if not picked:
        raise ValueError("letter_spread of no samples")
    return [picked.count(i) / len(picked) for i in range(n_options)]
