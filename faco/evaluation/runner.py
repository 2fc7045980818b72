"""Evaluation through lm-eval: faco writes task files (YAML + JSONL) and runs lm-eval's `hf` model.

Two layouts of the same multiple-choice questions: `instruction` (what FACO items teach; the study's
benchmarks) and `familiar` (pre-training's question-choices-answer lines; what the base *knows*). Two
formats as lm-eval scores the paper's benchmarks: `cloze` (each option's text scored after the context,
as ARC/PIQA) and `letter` (options listed with letters, the letters scored, as MMLU; every rotation of
the options is written, so gold letters are balanced). Per-sample results are kept for item analyses.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.evaluation import lm_tasks
from faco.evaluation.benchmarks import BenchmarkSpec
from faco.config.schema import ConfigError
from faco.data.items import instruction_prompt
from faco.data.world import familiar_prompt

log = logging.getLogger("faco.evaluation.runner")

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


# Benchmark groups: the training domains' benchmarks, the rest, both (besides single benchmarks).
INDOMAIN, HELDOUT, ALL = "indomain", "heldout", "all"
GROUPS = (INDOMAIN, HELDOUT)


def _registry_specs(preset: Any) -> list[BenchmarkSpec]:
    from faco.evaluation.benchmarks import resolve

    return resolve(preset.evaluation.benchmarks)


def benchmark_choices(preset: Any) -> dict[str, list[str]]:
    """What the experiments are parametrized over, the same way for both kinds of benchmark:
    `benchmark` (groups and single benchmarks), `group` and `heldout` (where lying is asked)."""
    if not preset.evaluation.benchmarks:
        world = preset.world
        return {"benchmark": [*GROUPS, *(d.name for d in world.domains)], "group": list(GROUPS),
                "heldout": [HELDOUT, *world.heldout_domains]}
    specs = _registry_specs(preset)
    outside = [s.name for s in specs if not s.in_domain and s.multiple_choice]
    groups = [g for g in GROUPS if group_members(preset, g)]
    return {"benchmark": [*groups, *(s.name for s in specs)], "group": groups, "heldout": outside}


def group_members(preset: Any, group: str) -> tuple[str, ...]:
    """The benchmarks `group` stands for; a single benchmark's name stands for itself."""
    if not preset.evaluation.benchmarks:
        world = preset.world
        members = {INDOMAIN: world.training_domains, HELDOUT: world.heldout_domains,
                   ALL: world.training_domains + world.heldout_domains}
        return members[group] if group in members else (world.domain(group).name,)
    specs = _registry_specs(preset)
    members = {INDOMAIN: tuple(s.name for s in specs if s.in_domain),
               HELDOUT: tuple(s.name for s in specs if not s.in_domain),
               ALL: tuple(s.name for s in specs)}
    if group in members:
        return members[group]
    if group not in members[ALL]:
        raise ConfigError(f"benchmark {group!r} is not in this preset's {list(members[ALL])}")
    return (group,)


def chance(preset: Any, benchmark: str) -> float | None:
    """Chance accuracy on `benchmark` or group: the world's 1 / options, a registry benchmark's own; None
    where it has none (generation) or its members differ."""
    if not preset.evaluation.benchmarks:
        return 1 / preset.world.options
    from faco.evaluation.benchmarks import get

    rates = {get(name).chance for name in group_members(preset, benchmark)}
    return rates.pop() if len(rates) == 1 else None


def world_benchmarks(world: Any, held_back: Sequence[Any], config: Any, layout: str,
                     formats: Sequence[str]) -> list[Benchmark]:
    """One benchmark per world domain and format: the held-back facts of training domains (not in FACO
    items), the first facts of held-out domains. Here, not in the study, so eval keys cover this code."""
    out = []
    for spec in world.config.domains:
        if spec.training:
            facts = [f for f in held_back if f.domain == spec.name][: config.heldback_per_domain]
        else:
            facts = world.domain_facts(spec.name)[: config.heldout_per_domain]
        questions = tuple(Question(f.id, f.domain, f.question, f.options, f.correct) for f in facts)
        out += [Benchmark(spec.name, layout, fmt, questions) for fmt in formats]
    return out


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


def write_tasks(benchmarks: Iterable[Benchmark], directory: Path) -> list[str]:
    """Write one YAML + JSONL per benchmark into `directory`; returns the lm-eval task names.

    The YAML names its data by file name only: a cache entry must stay valid wherever the cache is
    (moved, copied, mounted elsewhere), so `evaluate` names the data where it lies at evaluation time.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for benchmark in benchmarks:
        data = directory / f"{benchmark.task}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows(benchmark)))
        spec = {
            "task": benchmark.task,
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
        (directory / f"{benchmark.task}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        names.append(benchmark.task)
    return names


@lru_cache(maxsize=4)
def _task_manager(include_path: str):
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


def _lm(model_dir: Path, batch_size: int | str):
    """lm-eval's `hf` model around a checkpoint faco loaded: on the GPU when there is one (batch size
    `auto` there), else on the CPU with `batch_size`."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from faco.models import llama

    model, tokenizer = llama.load(model_dir)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
        batch_size = "auto"
    max_length = getattr(model.config, "max_position_embeddings", None)
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


def _run(model_dir: Path, tasks: Sequence[str], task_dir: Path, batch_size: int | str, seed: int,
         limit: int | None = None, unsafe_code: bool = False, stderr: bool = False,
         max_gen_toks: int | None = None) -> dict[str, Any]:
    """One `simple_evaluate` over faco-written task files (shots are in the files)."""
    from lm_eval import simple_evaluate

    return simple_evaluate(model=_lm(model_dir, batch_size), tasks=list(tasks), task_manager=_task_manager(str(task_dir)),
                           log_samples=True, limit=limit, bootstrap_iters=100 if stderr else 0,
                           gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None,
                           confirm_run_unsafe_code=unsafe_code, random_seed=seed, numpy_random_seed=seed,
                           torch_random_seed=seed, fewshot_random_seed=seed)


def evaluate(model_dir: Path, tasks: Sequence[str], task_dir: Path, batch_size: int,
             seed: int) -> dict[str, dict[str, Any]]:
    """lm-eval on faco's world tasks (files of `write_tasks`); {task: {"acc": .., "samples": [...]}}."""
    results = _run(model_dir, tasks, Path(_placed(str(task_dir.resolve()))), batch_size, seed)
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


# --- registry benchmarks (the paper's) -------------------------------------------------------------

def evaluate_benchmarks(model_dir: Path, specs: Sequence[BenchmarkSpec], task_dir: Path, *,
                        shots: Mapping[str, int], data_dir: Path | None, limit: int | None, batch_size: int,
                        seed: int, allow_code_execution: bool = False,
                        max_gen_toks: int | None = None) -> dict[str, dict[str, Any]]:
    """lm-eval on registry benchmarks: {benchmark: {metric, score, stderr, n, samples}} or {skipped: why}.

    `max_gen_toks` caps generation (lm-eval's gen_kwargs), e.g. for a quick look at HumanEval on a CPU.

    Task files are written (and local data checked) before the model loads, so bad data costs nothing.
    """
    out: dict[str, dict[str, Any]] = {}
    tasks: dict[str, list[str]] = {}
    for spec in specs:
        if spec.code_execution and not allow_code_execution:
            out[spec.name] = {"skipped": f"{spec.name} runs model-generated code; opt in with "
                                         "--allow-code-execution (CLI) / --faco-allow-code-execution (pytest)"}
            continue
        tasks[spec.name] = lm_tasks.write_benchmark_tasks(spec, task_dir, shots[spec.name], data_dir)
    if tasks:
        every = [task for names in tasks.values() for task in names]
        raw = _run(model_dir, every, task_dir, batch_size, seed, limit,
                   unsafe_code=allow_code_execution, stderr=True, max_gen_toks=max_gen_toks)
        for spec in specs:
            if spec.name in tasks:
                out[spec.name] = benchmark_result(spec, raw, tasks[spec.name])
    return out


def benchmark_result(spec: BenchmarkSpec, raw: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """lm-eval's score of `spec` (a group: its subtasks weighted by size, as lm-eval aggregates MMLU) and
    per-question records carrying lm-eval's own per-question metric."""
    parts = {}
    for task in tasks:
        row = raw["results"][task]
        stderr = row.get(f"{spec.metric}_stderr,none")
        parts[task] = {"score": float(row[f"{spec.metric},none"]), "n": int(row.get("sample_len") or 0),
                       "stderr": float(stderr) if isinstance(stderr, (int, float)) else None}
    total = sum(p["n"] for p in parts.values())
    score = sum(p["score"] * p["n"] for p in parts.values()) / total
    errors = [p["stderr"] for p in parts.values()]
    stderr = None if None in errors else math.sqrt(sum((p["n"] * p["stderr"]) ** 2 for p in parts.values())) / total
    samples = [_record(spec, task, sample) for task in tasks
               for sample in sorted(raw["samples"][task], key=lambda s: s["doc_id"])]
    return {"benchmark": spec.name, "metric": spec.metric, "score": score, "stderr": stderr, "n": total,
            "shots": raw["configs"][tasks[0]].get("num_fewshot"),
            "subtasks": parts if spec.subtasks else {}, "samples": samples}


def _gold(sample: dict[str, Any]) -> int:
    """The gold option's index: lm-eval logs an index, or (COPA) the gold option's text."""
    target = sample["target"]
    if isinstance(target, int) or str(target).strip().isdigit():
        return int(target)
    options = [argument[1].strip() for argument in sample["arguments"]]
    return options.index(str(target).strip())


def _record(spec: BenchmarkSpec, task: str, sample: dict[str, Any]) -> dict[str, Any]:
    """One question: lm-eval's per-question metric as `score` (1/0 for accuracy, F1, pass@1), and for
    multiple choice the gold, the prediction and the log-likelihood of every option."""
    score = float(sample[spec.metric])
    record = {"id": f"{task.removeprefix(lm_tasks.PREFIX)}/{sample['doc_id']}", "domain": spec.name,
              "score": score, "correct": score == 1.0}
    if spec.kind == "multiple_choice":
        loglikelihoods = [float(resp[0]) for resp in sample["filtered_resps"]]
        scaled = loglikelihoods
        if spec.metric == "acc_norm":  # lm-eval divides by the option's length in characters
            scaled = [ll / max(1, len(arg[1].lstrip(" "))) for ll, arg in zip(loglikelihoods, sample["arguments"])]
        record.update(gold=_gold(sample), pred=max(range(len(scaled)), key=scaled.__getitem__),
                      loglikelihoods=loglikelihoods)
    else:
        response = sample["filtered_resps"][0]
        record.update(target=str(sample["target"]), response=response if isinstance(response, str) else str(response))
    return record


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
