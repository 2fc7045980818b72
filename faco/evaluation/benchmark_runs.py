"""The registry's benchmarks (the paper's) through lm-eval: task files from faco.evaluation.lm_tasks, one
run (faco.evaluation.runner), and lm-eval's scores read back with per-question records.

The benchmarks stage's key covers this module and, where a benchmark's task config is faco's own code
(BenchmarkSpec.config, e.g. HumanEval's scorer), that module too: an edit there re-scores only the
evaluations that include that benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from faco.evaluation import lm_tasks, runner
from faco.evaluation.benchmarks import BenchmarkSpec


def evaluate_benchmarks(model_dir: Path, specs: Sequence[BenchmarkSpec], task_dir: Path, *,
                        shots: Mapping[str, int], data_dir: Path | None, limit: int | None, batch_size: int,
                        seed: int, allow_code_execution: bool = False, max_gen_toks: int | None = None,
                        engine: runner.Engine = runner.Engine(),
                        task_options: Mapping[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """lm-eval on registry benchmarks: {benchmark: {metric, score, stderr, n, samples}} or {skipped: why}.

    `max_gen_toks` caps generation (lm-eval's gen_kwargs), e.g. for a quick look at HumanEval on a CPU.
    `engine` says how lm-eval runs the model (with backend "vllm", the generation benchmarks run on lm-eval's
    vLLM model and the rest on its `hf` one); `task_options` go to faco's own task configs by benchmark
    (HumanEval's {"samples": n, "temperature": t} for pass@10).

    Task files are written (and local data checked) before the model loads, so bad data costs nothing.
    """
    if any(spec.kind == "generation" for spec in specs):
        runner.check_backend(engine)
    out: dict[str, dict[str, Any]] = {}
    tasks: dict[str, list[str]] = {}
    for spec in specs:
        if spec.code_execution and not allow_code_execution:
            out[spec.name] = {"skipped": f"{spec.name} runs model-generated code; opt in with "
                                         "--allow-code-execution (CLI) / --faco-allow-code-execution (pytest)"}
            continue
        tasks[spec.name] = lm_tasks.write_benchmark_tasks(spec, task_dir, shots[spec.name], data_dir,
                                                          (task_options or {}).get(spec.name))
    if tasks:
        raw: dict[str, dict[str, Any]] = {"results": {}, "samples": {}, "configs": {}}
        for names, part in _by_backend(specs, tasks, engine):
            ran = runner.run(model_dir, names, task_dir, batch_size, seed, limit, unsafe_code=allow_code_execution,
                             stderr=True, max_gen_toks=max_gen_toks, engine=part)
            for field in raw:
                raw[field].update(ran[field])
        for spec in specs:
            if spec.name in tasks:
                out[spec.name] = benchmark_result(spec, raw, tasks[spec.name])
    return out


def _by_backend(specs: Sequence[BenchmarkSpec], tasks: Mapping[str, list[str]], engine: runner.Engine
                ) -> list[tuple[list[str], runner.Engine]]:
    """The runs: every task on `engine`; with vLLM, the generation tasks on it and the others on `hf`."""
    if engine.backend == "hf":
        return [([task for names in tasks.values() for task in names], engine)]
    kinds = {spec.name: spec.kind for spec in specs}
    generation = [task for name, names in tasks.items() if kinds[name] == "generation" for task in names]
    other = [task for name, names in tasks.items() if kinds[name] != "generation" for task in names]
    runs = [(other, replace(engine, backend="hf")), (generation, engine)]
    return [(names, part) for names, part in runs if names]


def benchmark_result(spec: BenchmarkSpec, raw: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """lm-eval's score of `spec` (a group: its subtasks weighted by size, as lm-eval aggregates MMLU) and
    per-question records carrying lm-eval's own per-question metric. A task of `spec` that reports another
    metric (HumanEval's sampled pass@10) adds it to `metrics` and to each question's record."""
    extra = [task for task in tasks if f"{spec.metric},none" not in raw["results"][task]]
    tasks = [task for task in tasks if task not in extra]
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
    metrics = {spec.metric: score}
    for task in extra:
        metrics.update(_other_metrics(raw, task, samples))
    return {"benchmark": spec.name, "metric": spec.metric, "score": score, "stderr": stderr, "n": total,
            "shots": raw["configs"][tasks[0]].get("num_fewshot"), "metrics": metrics,
            "subtasks": parts if spec.subtasks else {}, "samples": samples}


def _other_metrics(raw: dict[str, Any], task: str, records: list[dict[str, Any]]) -> dict[str, float]:
    """The metrics of `task` (a second task over the same questions as the benchmark's one task), each
    also put into the record of its question (matched by lm-eval's doc_id)."""
    row = raw["results"][task]
    names = [key.removesuffix(",none") for key in row if key.endswith(",none") and "_stderr" not in key]
    by_doc = {record["id"].rsplit("/", 1)[1]: record for record in records}
    for sample in raw["samples"][task]:
        by_doc[str(sample["doc_id"])].update({name: float(sample[name]) for name in names})
    return {name: float(row[f"{name},none"]) for name in names}


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
