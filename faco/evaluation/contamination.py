"""The contamination guard: FACO items must not teach the questions a benchmark then asks.

`faco build-dataset` samples its sources' splits, and some of them are what a benchmark evaluates
(OpenBookQA's test split, WinoGrande's dev split): a study that trains on those items and scores those
benchmarks measures memorised answers. Before anything trains, every item's question is looked up
among the texts of every benchmark question (the documents lm-eval's own task loads, local or hub);
a match is counted, and the study is refused unless the preset allows it.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from faco.config.schema import ConfigError
from faco.evaluation import lm_tasks, runner
from faco.evaluation.benchmarks import BenchmarkSpec

log = logging.getLogger("faco.evaluation.contamination")

MIN_CHARS = 20  # shorter texts (an option, "yes") match by accident


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from _strings(inner)


def benchmark_texts(specs: Sequence[BenchmarkSpec], data_dir: Path | None) -> dict[str, set[str]]:
    """Every text field of every evaluated document, normalized, per benchmark (lm-eval loads the docs)."""
    from lm_eval.tasks import get_task_dict

    texts: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory(prefix="faco-contamination-") as task_dir:
        names = {spec.name: lm_tasks.write_benchmark_tasks(spec, Path(task_dir), 0, data_dir) for spec in specs}
        manager = runner.task_manager(task_dir)
        for spec in specs:
            found = texts.setdefault(spec.name, set())
            for task in get_task_dict(names[spec.name], manager).values():
                docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
                found.update(n for doc in docs for text in _strings(doc) if len(n := normalize(text)) >= MIN_CHARS)
    return texts


def overlap(questions: Iterable[tuple[str, str]], texts: dict[str, set[str]]) -> dict[str, Counter]:
    """{benchmark: Counter(source -> items whose question it evaluates)} for (source, question) pairs."""
    found: dict[str, Counter] = {}
    for source, question in questions:
        key = normalize(question)
        for benchmark, known in texts.items():
            if len(key) >= MIN_CHARS and key in known:
                found.setdefault(benchmark, Counter())[source] += 1
    return found


def check(questions: Sequence[tuple[str, str]], specs: Sequence[BenchmarkSpec], data_dir: Path | None,
          allowed: bool) -> dict[str, Counter]:
    """Refuse (or, when `allowed`, warn about) items whose questions a benchmark evaluates."""
    found = overlap(questions, benchmark_texts(specs, data_dir))
    if not found:
        return found
    what = "; ".join(f"{bench}: {sum(c.values())} item(s) ({', '.join(f'{s} {n}' for s, n in c.items())})"
                     for bench, c in found.items())
    message = f"contamination: FACO items ask questions that benchmarks evaluate ({what})"
    if not allowed:
        raise ConfigError(f"{message}; build the items from other splits, drop those benchmarks, or set "
                          "evaluation.allow_contamination = true to measure anyway")
    log.warning("%s; allowed by evaluation.allow_contamination", message)
    return found
