"""The world's benchmarks as lm-eval task files: faco writes a YAML + JSONL per domain, layout and format.

Two layouts of the same multiple-choice questions: `instruction` (what FACO items teach; the study's
benchmarks) and `familiar` (pre-training's question-choices-answer lines; what the base *knows*). Two
formats as lm-eval scores the paper's benchmarks: `cloze` (each option's text scored after the context,
as ARC/PIQA) and `letter` (options listed with letters, the letters scored, as MMLU; every rotation of
the options is written, so gold letters are balanced). The tasks stage's key covers this module; the
lm-eval run that scores the files is faco.evaluation.runner.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from faco.data.items import LETTERS, instruction_prompt
from faco.data.world import familiar_prompt

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
class WorldTask:
    """One lm-eval task faco writes: questions of some domains in one layout and format."""

    name: str  # e.g. "heldout-geography"; the lm-eval task is faco_<name>_<layout>_<format>
    layout: str
    format: str
    questions: tuple[Question, ...]

    @property
    def task(self) -> str:
        return f"faco_{self.name}_{self.layout}_{self.format}".replace("-", "_")


def domain_tasks(world: Any, held_back: Sequence[Any], config: Any, layout: str,
                     formats: Sequence[str]) -> list[WorldTask]:
    """One benchmark per world domain and format: the held-back facts of training domains (not in FACO
    items), the first facts of held-out domains. Here, not in the study, so eval keys cover this code."""
    out = []
    for spec in world.config.domains:
        if spec.training:
            facts = [f for f in held_back if f.domain == spec.name][: config.heldback_per_domain]
        else:
            facts = world.domain_facts(spec.name)[: config.heldout_per_domain]
        questions = tuple(Question(f.id, f.domain, f.question, f.options, f.correct) for f in facts)
        out += [WorldTask(spec.name, layout, fmt, questions) for fmt in formats]
    return out


def rows(task: WorldTask) -> list[dict[str, Any]]:
    """The JSONL rows lm-eval reads: a pre-rendered context, the choices and the gold index."""
    layout = LAYOUTS[task.layout]
    out = []
    for q in task.questions:
        if task.format == "cloze":
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


def write_tasks(tasks: Iterable[WorldTask], directory: Path) -> list[str]:
    """Write one YAML + JSONL per world task into `directory`; returns the lm-eval task names.

    The YAML names its data by file name only: a cache entry must stay valid wherever the cache is
    (moved, copied, mounted elsewhere), so `evaluate` names the data where it lies at evaluation time.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for task in tasks:
        data = directory / f"{task.task}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows(task)))
        spec = {
            "task": task.task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": data.name}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": "context",
            "doc_to_choice": "choices",
            "doc_to_target": "gold",
            "target_delimiter": " ",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1},
        }
        (directory / f"{task.task}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        names.append(task.task)
    return names
