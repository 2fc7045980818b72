"""lm-eval runs over task files faco wrote (its `hf` model around a checkpoint faco loads), and the world
tasks' per-question results read back. The eval stage's key covers this module; the files it scores
are other stages' (faco.evaluation.world_tasks, faco.evaluation.lm_tasks).
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.models import llama

log = logging.getLogger("faco.evaluation.runner")


@lru_cache(maxsize=4)
def task_manager(include_path: str):
    """One TaskManager per task directory, over faco's files only: indexing lm-eval's built-in tasks as
    well would cost about 15 s per process, and every task faco runs is a file it wrote."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=False)


class _KnownWarnings(logging.Filter):
    """Drops lm-eval's two warnings about a model passed as an object: faco loads it itself on purpose
    (its own dtype and device), in one process, so neither applies; every other warning still shows."""

    KNOWN = ("`pretrained` model kwarg is not of type `str`", "Passed an already-initialized model through `pretrained`")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.KNOWN)


logging.getLogger("lm_eval.models.huggingface").addFilter(_KnownWarnings())


def lm(model_dir: Path, batch_size: int | str):
    """lm-eval's `hf` model around a checkpoint faco loaded: on the GPU when there is one (batch size
    `auto` there), else on the CPU with `batch_size`."""
    import torch
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = llama.load(model_dir)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
        batch_size = "auto"
    max_length = getattr(model.config, "max_position_embeddings", None)
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


def run(model_dir: Path, tasks: Sequence[str], task_dir: Path, batch_size: int | str, seed: int,
        limit: int | None = None, unsafe_code: bool = False, stderr: bool = False,
        max_gen_toks: int | None = None) -> dict[str, Any]:
    """One `simple_evaluate` over faco-written task files (shots are in the files)."""
    from lm_eval import simple_evaluate

    return simple_evaluate(model=lm(model_dir, batch_size), tasks=list(tasks), task_manager=task_manager(str(task_dir)),
                           log_samples=True, limit=limit, bootstrap_iters=100 if stderr else 0,
                           gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None,
                           confirm_run_unsafe_code=unsafe_code, random_seed=seed, numpy_random_seed=seed,
                           torch_random_seed=seed, fewshot_random_seed=seed)


def evaluate(model_dir: Path, tasks: Sequence[str], task_dir: Path, batch_size: int,
             seed: int) -> dict[str, dict[str, Any]]:
    """lm-eval on faco's world tasks (files of `write_tasks`); {task: {"acc": .., "samples": [...]}}."""
    results = run(model_dir, tasks, Path(_placed(str(task_dir.resolve()))), batch_size, seed)
    return {task: _task_result(results, task) for task in tasks}


@lru_cache(maxsize=8)
def _placed(task_dir: str) -> str:
    """A scratch copy of `write_tasks`' YAMLs whose data paths point into `task_dir` as it lies now (lm-eval
    reads a relative path against the working directory, not the YAML's); removed when the process ends."""
    scratch = tempfile.mkdtemp(prefix="faco-tasks-")
    atexit.register(shutil.rmtree, scratch, True)
    for path in Path(task_dir).glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())
        files = spec["dataset_kwargs"]["data_files"]
        spec["dataset_kwargs"]["data_files"] = {split: str(Path(task_dir) / name) for split, name in files.items()}
        (Path(scratch) / path.name).write_text(yaml.safe_dump(spec, sort_keys=False))
    return scratch


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
