"""lm-eval runs over task files faco wrote, and the world tasks' per-question results read back. The eval
stage's key covers this module; the files it scores are other stages' (faco.evaluation.world_tasks,
faco.evaluation.lm_tasks).

lm-eval builds the model itself from the checkpoint's directory (its `hf` model, or its `vllm` one for
generation), so that its own GPU paths work: the weights in bfloat16 on a GPU, `parallelize` for a model
larger than one GPU, and data parallelism over the job's GPUs when faco starts lm-eval in one process per
GPU under `accelerate launch` (faco.evaluation.worker). On the CPU the weights stay float32 and the run
stays in this process, as before: the same numbers.
"""

from __future__ import annotations

import atexit
import collections
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.config.schema import ConfigError, EvalConfig
from faco.core import lifetime
from faco.models.serve import free_port

log = logging.getLogger("faco.evaluation.runner")
WORKER = "faco.evaluation.worker"  # the module `accelerate launch` runs in every data-parallel process
TAIL = 40  # lines of a failed launch's output shown in its error


@dataclass(frozen=True)
class Engine:
    """How lm-eval runs a checkpoint, as distinct from what it scores (EvalConfig's dtype, parallelize,
    processes and backend): where the numbers can differ (the dtype, the backend) the stages' keys say so."""

    dtype: str = "auto"  # "auto": bfloat16 where CUDA is, float32 on the CPU
    parallelize: bool = False  # split one model over the visible GPUs (lm-eval's `parallelize`, accelerate's device map)
    processes: int = 1  # data-parallel lm-eval processes, one per GPU
    backend: str = "hf"  # "vllm": lm-eval's vLLM model for generation tasks

    @classmethod
    def of(cls, config: EvalConfig) -> Engine:
        return cls(config.dtype, config.parallelize, config.processes, config.backend)


def resolve_dtype(dtype: str) -> str:
    """The weights' dtype a run uses: "auto" is bfloat16 where CUDA is and float32 on the CPU (faco's
    pinned CPU numbers are float32)."""
    if dtype != "auto":
        return dtype
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"


@lru_cache(maxsize=4)
def task_manager(include_path: str):
    """One TaskManager per task directory, over faco's files only: indexing lm-eval's built-in tasks as
    well would cost about 15 s per process, and every task faco runs is a file it wrote."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=False)


def lm(model_dir: Path, batch_size: int | str, engine: Engine = Engine(), seed: int = 0):
    """lm-eval's model, built by lm-eval from `model_dir`: on the GPU when there is one (batch size
    `auto` there), else on the CPU with `batch_size`; `engine` says the dtype, the split and the backend."""
    import torch

    cuda = torch.cuda.is_available()
    max_length = _max_length(model_dir)
    if engine.backend == "vllm":
        return _vllm(model_dir, engine, max_length, seed)
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(model_dir), dtype=resolve_dtype(engine.dtype), device="cuda" if cuda else "cpu",
                batch_size="auto" if cuda else batch_size, max_length=max_length, parallelize=engine.parallelize)


def _max_length(model_dir: Path) -> int | None:
    """The model's context (its config's `max_position_embeddings`), which lm-eval truncates prompts to."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return config.get("max_position_embeddings")


def _vllm(model_dir: Path, engine: Engine, max_length: int | None, seed: int):
    """lm-eval's vLLM model: the GPUs split the model (`parallelize`: tensor parallel) or the data (`processes`)."""
    check_backend(engine)
    import torch
    from lm_eval.models.vllm_causallms import VLLM


    return VLLM(pretrained=str(model_dir), dtype=resolve_dtype(engine.dtype), batch_size="auto",
                tensor_parallel_size=torch.cuda.device_count() if engine.parallelize else 1,
                data_parallel_size=engine.processes, max_model_len=max_length, seed=seed)


def check_backend(engine: Engine) -> None:
    """The backend's library is installed, or one error naming the extra that installs it (checked before a
    model loads, so a missing vLLM does not wait for the first generation task)."""
    if engine.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError("evaluation.backend = 'vllm' needs vLLM, which is not installed: "
                          "pip install 'faco[vllm]' (or set evaluation.backend = 'hf')")


def run(model_dir: Path, tasks: Sequence[str], task_dir: Path, batch_size: int | str, seed: int,
        limit: int | None = None, unsafe_code: bool = False, stderr: bool = False,
        max_gen_toks: int | None = None, engine: Engine = Engine()) -> dict[str, Any]:
    """One `simple_evaluate` over faco-written task files (shots are in the files); with several `hf`
    processes, one per GPU under `accelerate launch`, whose first rank hands the results back."""
    if engine.processes > 1 and engine.backend == "hf":
        return launched(dict(model_dir=str(model_dir), tasks=list(tasks), task_dir=str(task_dir),
                             batch_size=batch_size, seed=seed, limit=limit, unsafe_code=unsafe_code, stderr=stderr,
                             max_gen_toks=max_gen_toks, engine=asdict(engine)), engine.processes)
    from lm_eval import simple_evaluate

    return simple_evaluate(model=lm(model_dir, batch_size, engine, seed), tasks=list(tasks),
                           task_manager=task_manager(str(task_dir)),
                           log_samples=True, limit=limit, bootstrap_iters=100 if stderr else 0,
                           gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None,
                           confirm_run_unsafe_code=unsafe_code, random_seed=seed, numpy_random_seed=seed,
                           torch_random_seed=seed, fewshot_random_seed=seed)


def run_in_rank(spec: dict[str, Any]) -> dict[str, Any] | None:
    """`run` in one of the launched processes (faco.evaluation.worker): lm-eval splits the requests
    over the ranks and gathers the results on the first, which alone returns them."""
    engine = replace(Engine(**spec.pop("engine")), processes=1)
    return run(Path(spec.pop("model_dir")), spec.pop("tasks"), Path(spec.pop("task_dir")), engine=engine, **spec)


def launched(spec: dict[str, Any], processes: int) -> dict[str, Any]:
    """`run` in `processes` processes under `accelerate launch` (gloo on a CPU, NCCL on GPUs); the first
    rank writes the results as JSON (lm-eval's own serialisation of its results), read back here."""
    with tempfile.TemporaryDirectory(prefix="faco-lm-eval-") as scratch:
        spec_path, out = Path(scratch) / "spec.json", Path(scratch) / "results.json"
        spec_path.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(free_port()), "-m", WORKER, str(spec_path), str(out)]
        tail: collections.deque[str] = collections.deque(maxlen=TAIL)
        with lifetime.tied(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
            for line in process.stdout:
                tail.append(line.rstrip())
            process.wait()
        if process.returncode or not out.is_file():
            raise RuntimeError(f"lm-eval in {processes} processes exited with {process.returncode}"
                               f"{'' if out.is_file() else ' and wrote no results'}; its last lines:\n"
                               + "\n".join(tail))
        return json.loads(out.read_text())


def evaluate(model_dir: Path, tasks: Sequence[str], task_dir: Path, batch_size: int,
             seed: int, engine: Engine = Engine()) -> dict[str, dict[str, Any]]:
    """lm-eval on faco's world tasks (files of `write_tasks`); {task: {"acc": .., "samples": [...]}}. They are
    log-likelihoods: lm-eval's `hf` model scores them whatever the backend of generation."""
    results = run(model_dir, tasks, Path(_placed(str(task_dir.resolve()))), batch_size, seed,
                  engine=replace(engine, backend="hf"))
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
