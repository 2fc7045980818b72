"""How lm-eval runs a checkpoint (evaluation.dtype, parallelize, processes, backend) and HumanEval's pass@10:
the Codex paper's estimator, the sampled task, what enters a cache key, and real runs on a CPU.

    python -m pytest unit_tests/test_eval_engine.py -q
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from faco.config.load import load_preset, smoke
from faco.config.schema import ConfigError, EvalConfig, ModelConfig
from faco.core.cache import Cache
from faco.data.world import build_world
from faco.evaluation import humaneval, runner
from faco.evaluation.humaneval import pass_at_k
from faco.evaluation.world_tasks import Question, WorldTask, rows, write_tasks
from faco.models import llama
from faco.study.stages import Request
from faco.study.study import Study, finetuned
from test_benchmarks import evaluate, smollm2  # noqa: F401 - the SmolLM2 fixture; pytest puts unit_tests/ on sys.path

HERE = Path(__file__).resolve().parent


# --- the estimator -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, c, k, expected", [
    (10, 0, 1, 0.0), (10, 10, 1, 1.0), (10, 3, 1, 0.3),
    (10, 1, 10, 1.0),  # n = k: any correct sample is among the 10 drawn
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (20, 2, 10, 1 - 90 / 380),  # 1 - C(18,10)/C(20,10) = 1 - (10*9)/(20*19)
    (200, 1, 10, 0.05),  # 1 - C(199,10)/C(200,10) = 10/200
])
def test_pass_at_k_equals_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_one_minus_the_chance_that_k_draws_all_fail(case):
    n, c, k = case
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-9)
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)
    assert pass_at_k(n, c, k) >= pass_at_k(n, c, 1) - 1e-12  # more draws never pass less


@pytest.mark.parametrize("n, c, k", [(10, 11, 1), (10, -1, 1), (10, 3, 0), (10, 3, 11)])
def test_pass_at_k_refuses_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match=f"n={n}, c={c}, k={k}"):
        pass_at_k(n, c, k)


# --- the HumanEval tasks -----------------------------------------------------------------------------

def test_humaneval_without_samples_is_the_greedy_task_alone():
    [greedy] = humaneval.humaneval_tasks().values()
    assert greedy["repeats"] == 1 and greedy["generation_kwargs"]["do_sample"] is False
    assert [m["metric"] for m in greedy["metric_list"]] == ["pass@1"] and "filter_list" not in greedy


def test_sampled_humaneval_keeps_every_completion_at_the_stated_temperature():
    tasks = humaneval.humaneval_tasks(samples=20, temperature=0.8)
    assert list(tasks) == [None, "sampled"]
    sampled = tasks["sampled"]
    assert sampled["repeats"] == 20 and [m["metric"] for m in sampled["metric_list"]] == ["pass@10"]
    assert sampled["generation_kwargs"] | {"until": None, "max_gen_toks": None} == {
        "until": None, "max_gen_toks": None, "do_sample": True, "temperature": 0.8, "top_p": 0.95}
    # lm-eval's default filter would keep the first completion only
    assert sampled["filter_list"] == [{"name": "none", "filter": [{"function": "take_first_k", "k": 20}]}]
    with pytest.raises(ValueError, match="at least 10"):
        humaneval.humaneval_config(repeats=5)


def test_process_samples_scores_pass_at_10_from_every_completion(data_dir_humaneval):
    problem = data_dir_humaneval[0]
    right, wrong = problem["canonical_solution"], "    pass\n"
    assert humaneval.process_samples(problem, [[wrong] * 9 + [right]]) == {"pass@10": 1.0}
    assert humaneval.process_samples(problem, [[wrong] * 10]) == {"pass@10": 0.0}
    twenty = [right, right] + [wrong] * 18
    assert humaneval.process_samples(problem, [twenty]) == {"pass@10": pytest.approx(1 - 90 / 380)}


@pytest.fixture(scope="module")
def data_dir_humaneval() -> list[dict]:
    shared = Path(os.environ.get("FACO_SHARED_DIR", HERE.parents[1] / "shared")) / "datasets"
    if not shared.is_dir():
        pytest.skip(f"no dataset samples at {shared}")
    from hub_samples import write_hub_samples

    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"faco-eval-engine-{os.getpid()}"
    write_hub_samples(shared, out, limit=4)
    return [json.loads(line) for line in (out / "humaneval" / "test.jsonl").read_text().splitlines()]


# --- the settings and the keys -----------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("dtype", "fp8", "unknown dtype 'fp8'"), ("backend", "tgi", "unknown backend 'tgi'"),
    ("humaneval_samples", 5, "1 \\(greedy pass@1\\) or >= 10"), ("processes", 0, "processes must be > 0"),
    ("humaneval_temperature", 0.0, "humaneval_temperature must be a finite number > 0"),
])
def test_a_wrong_engine_setting_is_one_error_naming_it(field, value, message):
    with pytest.raises(ConfigError, match=message):
        EvalConfig(**{field: value})


def _keys(preset, cache: Path) -> dict[str, str]:
    study, model = Study(preset, Cache(cache)), finetuned("strong", 100)
    question = [{"question": "q", "options": ["a", "b"], "gold": 0}]
    params = {"eval": {"model": model, "layout": "instruction"}, "benchmarks": {"model": model},
              "answers": {"model": model, "questions": question, "max_new_tokens": 8},
              "tasks": {"layout": "instruction"}}
    return {stage: study.stage_key(Request.of(stage, **p), ("an-input",)) for stage, p in params.items()}


def _with(preset, **evaluation):
    return preset.replace(evaluation=dataclasses.replace(preset.evaluation, **evaluation))


def test_only_settings_that_change_a_number_change_a_key(tmp_path):
    """float32 on the CPU is the default's key; bfloat16 is an entry of its own; how many processes or GPUs
    share the work is not; HumanEval's samples change only the evaluations that run HumanEval."""
    tiny, smol = load_preset("tiny"), load_preset("smol-ci")
    for preset in (tiny, smol):
        base = _keys(preset, tmp_path)
        assert _keys(_with(preset, dtype="float32", processes=4, parallelize=True), tmp_path) == base
        bf16 = _keys(_with(preset, dtype="bfloat16"), tmp_path)
        assert {stage for stage in base if bf16[stage] != base[stage]} == {"eval", "benchmarks", "answers"}
        assert _keys(_with(preset, humaneval_samples=20), tmp_path) == base  # no HumanEval in either
    humaneval_smol = _with(smol, benchmarks=("arc_easy", "humaneval"))
    greedy = _keys(humaneval_smol, tmp_path)
    sampled = _keys(_with(humaneval_smol, humaneval_samples=20), tmp_path)
    assert {stage for stage in greedy if sampled[stage] != greedy[stage]} == {"benchmarks"}
    assert _keys(_with(humaneval_smol, humaneval_samples=20, humaneval_temperature=0.2), tmp_path) != sampled


def test_the_benchmarks_stage_runs_with_the_presets_engine_and_humaneval_samples(tmp_path, monkeypatch):
    from faco.evaluation import benchmark_runs
    from faco.study.stages import STAGES

    preset = _with(load_preset("smol-ci"), benchmarks=("arc_easy", "humaneval"), humaneval_samples=20,
                   humaneval_temperature=0.2, dtype="bfloat16", processes=4, allow_code_execution=True)
    study, asked = Study(preset, Cache(tmp_path)), {}
    monkeypatch.setattr(Study, "get", lambda self, request: tmp_path / "model")
    monkeypatch.setattr(benchmark_runs, "evaluate_benchmarks", lambda *args, **kwargs: asked.update(kwargs) or {})
    STAGES["benchmarks"].build(study, Request.of("benchmarks", model=finetuned("strong", 100)))
    assert asked["engine"] == runner.Engine(dtype="bfloat16", processes=4)
    assert asked["task_options"] == {"humaneval": {"samples": 20, "temperature": 0.2}}


def test_the_paper_preset_evaluates_in_bf16_with_pass_at_10():
    evaluation = load_preset("paper").evaluation
    assert evaluation.dtype == "bfloat16" and evaluation.humaneval_samples >= 10
    assert evaluation.backend in ("hf", "vllm") and evaluation.processes == 8


# --- lm-eval builds the model -------------------------------------------------------------------------

def _world_model(out: Path) -> tuple[Path, list[str], Path]:
    """A tiny random LLaMA and one world task of 8 questions (what test_evaluation's end-to-end run uses)."""
    world = build_world(smoke().world, 0)
    questions = tuple(Question(f.id, f.domain, f.question, f.options, f.correct) for f in world.facts[:8])
    task = WorldTask("heldout-geography", "instruction", "cloze", questions)
    tasks = write_tasks([task], out / "tasks")
    tokenizer = llama.build_tokenizer([f"{row['context']} {choice}" for row in rows(task) for choice in row["choices"]])
    config = ModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64, max_positions=128)
    llama.save(llama.build_model(config, tokenizer, seed=0), tokenizer, out / "model")
    return out / "model", tasks, out / "tasks"


def test_lm_eval_loads_the_checkpoint_in_the_evaluation_dtype(tmp_path):
    import torch

    model_dir, _, _ = _world_model(tmp_path)
    assert runner.lm(model_dir, 4).model.dtype == torch.float32  # "auto" on a CPU
    assert runner.lm(model_dir, 4, runner.Engine(dtype="bfloat16")).model.dtype == torch.bfloat16
    assert runner.lm(model_dir, 4).max_length == 128  # the checkpoint's context, as before


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_vllm_backend_without_vllm_names_the_extra(tmp_path):
    model_dir, _, _ = _world_model(tmp_path)
    with pytest.raises(ConfigError, match=r"pip install 'faco\[vllm\]'"):
        runner.lm(model_dir, 4, runner.Engine(backend="vllm"))


def test_the_world_tasks_run_on_hf_whatever_the_backend(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(runner, "run", lambda *args, engine, **kwargs: asked.append(engine) or {})
    monkeypatch.setattr(runner, "_placed", lambda task_dir: task_dir)
    runner.evaluate(tmp_path, [], tmp_path, batch_size=4, seed=0, engine=runner.Engine(backend="vllm", processes=2))
    assert asked == [runner.Engine(backend="hf", processes=2)]


@pytest.mark.slow
def test_two_data_parallel_processes_score_as_one(tmp_path, monkeypatch):
    """Two gloo processes under `accelerate launch` give one process's scores, question by question.

    lm-eval splits requests over ranks only where `torch.cuda.device_count() > 1`
    (lm_eval/models/huggingface.py: each CPU rank would otherwise score everything as rank 0 of 1), so the
    launched module here is faco's worker behind a shim that reports one device per rank (cpu_ranks.py)."""
    model_dir, tasks, task_dir = _world_model(tmp_path)
    one = runner.evaluate(model_dir, tasks, task_dir, batch_size=4, seed=0)
    monkeypatch.setattr(runner, "WORKER", "cpu_ranks")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FACO_TEST_RANKS", str(tmp_path / "ranks.txt"))
    two = runner.evaluate(model_dir, tasks, task_dir, batch_size=4, seed=0, engine=runner.Engine(processes=2))
    assert sorted((tmp_path / "ranks.txt").read_text().split("\n")[:-1]) == ["0 2", "1 2"]  # split, not twice
    assert two == one and one[tasks[0]]["n"] == 8


# --- HumanEval pass@10 on a CPU ------------------------------------------------------------------------

@pytest.mark.slow
def test_humaneval_pass_at_10_from_10_sampled_completions(smollm2, tmp_path, monkeypatch):
    """2 problems, 10 completions each at temperature 0.8 with a 32-token cap: pass@1 (greedy) and pass@10
    are reported, per problem too, pass@10 from every sampled completion and at least their pass rate."""
    shared = Path(os.environ.get("FACO_SHARED_DIR", HERE.parents[1] / "shared")) / "datasets"
    if not shared.is_dir():
        pytest.skip(f"no dataset samples at {shared}")
    from hub_samples import write_hub_samples

    data_dir = tmp_path / "data"
    write_hub_samples(shared, data_dir, limit=2)
    seen: dict[str, list[str]] = {}
    scored = humaneval.process_samples

    def spy(doc, results):
        seen[doc["task_id"]] = results[0]
        return scored(doc, results)

    monkeypatch.setattr(humaneval, "process_samples", spy)
    result = evaluate(smollm2, "humaneval", data_dir, tmp_path / "tasks", limit=2, allow_code_execution=True,
                      max_gen_toks=32, task_options={"humaneval": {"samples": 10, "temperature": 0.8}})["humaneval"]
    assert result["metric"] == "pass@1" and result["n"] == 2 and set(result["metrics"]) == {"pass@1", "pass@10"}
    assert [len(completions) for completions in seen.values()] == [10, 10]
    assert all(len(set(completions)) > 1 for completions in seen.values())  # sampled, not ten greedy copies
    problems = {json.loads(line)["task_id"]: json.loads(line)
                for line in (data_dir / "humaneval" / "test.jsonl").read_text().splitlines()}
    rates = {task_id: humaneval.passed(problems[task_id], completions) / 10 for task_id, completions in seen.items()}
    per_problem = sorted(record["pass@10"] for record in result["samples"])
    assert per_problem == sorted(pass_at_k(10, round(rate * 10), 10) for rate in rates.values())
    assert all(pass_at_k(10, round(rate * 10), 10) >= rate for rate in rates.values())
    assert result["metrics"]["pass@10"] == pytest.approx(sum(per_problem) / 2)
    assert result["metrics"]["pass@1"] == result["score"] == sum(r["score"] for r in result["samples"]) / 2
