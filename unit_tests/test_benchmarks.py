"""The benchmark catalogue, faco's lm-eval task files on local data, and real lm-eval runs of SmolLM2-135M-
Instruct on small slices of the real benchmark samples (converted to the hub schema by hub_samples.py):
multiple choice, a group (MMLU subjects), a string target (LAMBADA), generation (SQuAD, HumanEval), and
parity with the `lm_eval` CLI.

    python -m pytest unit_tests/test_benchmarks.py -q
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faco.config.schema import ConfigError
from faco.evaluation import benchmarks, lm_tasks
from faco.evaluation.benchmarks import BenchmarkSpec, catalogue, load_catalogue, resolve
from faco.config.load import override, smoke

SHARED = Path(os.environ.get("FACO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"
needs_samples = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no dataset samples at {SHARED}")
PAPER = ["arc_challenge", "arc_easy", "mmlu", "lambada", "hellaswag", "piqa", "copa", "openbookqa", "winogrande",
         "squad", "boolq", "bigbench_conceptual_combinations", "bigbench_elementary_math_qa",
         "bigbench_logical_deduction", "mathqa", "logiqa", "humaneval"]


# --- the catalogue ----------------------------------------------------------------------------------

def test_catalogue_holds_the_papers_benchmarks_with_their_shots():
    specs = catalogue()
    assert sorted(specs) == sorted(PAPER)
    assert {name: spec.shots for name, spec in specs.items() if spec.shots != 10} == {
        "arc_challenge": 25, "arc_easy": 25, "mmlu": 5, "humaneval": 0}


@pytest.mark.parametrize("name", PAPER)
def test_every_entry_names_an_installed_lm_eval_task(name):
    spec = catalogue()[name]
    if spec.subtasks:
        assert len(lm_tasks.subtask_files(spec)) == 57  # MMLU's subjects
    elif spec.name != "humaneval":  # faco writes HumanEval's config itself (see faco/evaluation/humaneval.py)
        assert lm_tasks.task_file(spec.task).is_file()
    assert (spec.chance is not None) == spec.multiple_choice
    assert spec.split and spec.fields


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="unknown benchmark 'arc'.*arc_easy"):
        resolve("arc_easy,arc")
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'"):  # a preset's names, checked on load
        override(smoke(), "evaluation.benchmarks=nope")
    with pytest.raises(ConfigError, match="named twice"):
        resolve("boolq,boolq")
    assert [s.name for s in resolve("paper")] == list(catalogue())


def test_a_malformed_catalogue_names_the_entry(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"x": {"task": "t", "shots": 1, "metric": "acc", "kind": "multiple_choice",
                                          "category": "world knowledge", "split": "test", "fields": ["a"],
                                          "chance": 0.25, "shot": 3}}))
    with pytest.raises(ConfigError, match=r"benchmark 'x': unknown field\(s\) \['shot'\]"):
        load_catalogue(path)
    with pytest.raises(ConfigError, match="chance is given for multiple choice"):
        BenchmarkSpec("y", "t", 0, "f1", "generation", "programming", "test", ("a",), chance=0.5)


# --- task files on local data -----------------------------------------------------------------------

def write_rows(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


ARC_ROW = {"id": "1", "question": "Which is a gas?", "choices": {"text": ["rock", "air"], "label": ["A", "B"]},
           "answerKey": "B"}


def test_task_file_includes_lm_evals_config_and_swaps_only_the_dataset(tmp_path):
    data = write_rows(tmp_path / "data" / "arc_easy" / "test.jsonl", [ARC_ROW])
    [name] = lm_tasks.write_benchmark_tasks(benchmarks.get("arc_easy"), tmp_path / "tasks", 25, tmp_path / "data")
    config = yaml.safe_load((tmp_path / "tasks" / f"{name}.yaml").read_text())
    assert config["include"] == str(lm_tasks.task_file("arc_easy"))
    assert config["dataset_kwargs"] == {"data_files": {"test": str(data.resolve())}}
    assert (config["dataset_path"], config["test_split"], config["num_fewshot"]) == ("json", "test", 25)
    assert "doc_to_text" not in config  # the prompt stays lm-eval's


@pytest.mark.parametrize("rows, message", [
    (None, "missing .*arc_easy/test.jsonl"),
    ([], r"test.jsonl: no rows \(benchmark 'arc_easy' needs one JSON object per line\)"),
    (["", "  "], r"test.jsonl: no rows"),
    (["{not json"], r"test.jsonl: line 1 is not JSON \(.* at column 2\)"),
    ([ARC_ROW, "", "[1, 2]"], r"test.jsonl: line 3 is not a JSON object"),  # blank lines count
    ([ARC_ROW, {"question": "q", "choices": {}}], r"test.jsonl: line 2 has no field 'answerKey'"),
    ([ARC_ROW, {**ARC_ROW, "answerKey": "E"}],
     r"test.jsonl: line 2: answer answerKey = 'E' is not among the options \['A', 'B'\] \(choices.label\)"),
    ([{**ARC_ROW, "choices": {"text": ["rock", "air"]}}], r"test.jsonl: line 1 has no choices.label"),
], ids=["missing", "empty", "blank", "not-json", "not-object", "no-field", "label-not-an-option", "no-options"])
def test_bad_local_data_is_one_error_naming_file_row_and_field(tmp_path, rows, message):
    if rows is not None:
        write_rows(tmp_path / "arc_easy" / "test.jsonl", rows)
    with pytest.raises(lm_tasks.BenchmarkDataError, match=message):
        lm_tasks.write_benchmark_tasks(benchmarks.get("arc_easy"), tmp_path / "tasks", 0, tmp_path)


def test_a_row_holding_a_line_separator_stays_one_row(tmp_path):
    """JSON written with ensure_ascii=False keeps U+2028 raw inside a string: still one line of JSONL."""
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({**ARC_ROW, "question": "Which\u2028is a gas?"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    [row] = lm_tasks.read_rows(benchmarks.get("arc_easy"), path)
    assert row["question"] == "Which\u2028is a gas?"


def test_a_file_that_is_not_utf8_is_one_error_naming_it(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_bytes(json.dumps(ARC_ROW).encode() + b"\n\xff\n")
    with pytest.raises(lm_tasks.BenchmarkDataError, match=f"^{re.escape(str(path))}: not UTF-8 text"):
        lm_tasks.read_rows(benchmarks.get("arc_easy"), path)


MMLU_ROW = {"question": "1+1?", "subject": "anatomy", "choices": ["1", "2", "3", "4"], "answer": 1}
PIQA_ROW = {"goal": "open a jar", "sol1": "twist", "sol2": "shout", "label": 0}
HELLASWAG_ROW = {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["d", "e"], "label": "1"}
BIGBENCH_ROW = {"inputs": "q", "targets": ["yes"], "multiple_choice_targets": ["yes", "no"]}


@pytest.mark.parametrize("benchmark, good, bad, message", [
    ("mmlu", MMLU_ROW, {**MMLU_ROW, "answer": 4}, r"line 2: answer answer = 4 is no position in choices .* \(0 to 3\)"),
    ("hellaswag", HELLASWAG_ROW, {**HELLASWAG_ROW, "label": "2"}, r"line 2: answer label = '2' is no position in endings"),
    ("piqa", PIQA_ROW, {**PIQA_ROW, "label": 2}, r"line 2: answer label = 2 is not among the options \[0, 1\]$"),
    ("winogrande", {"sentence": "_ x", "option1": "a", "option2": "b", "answer": "2"},
     {"sentence": "_ x", "option1": "a", "option2": "b", "answer": 2}, r"line 2: answer answer = 2 is not among .*'1', '2'"),
    ("bigbench_logical_deduction", BIGBENCH_ROW, {**BIGBENCH_ROW, "targets": ["maybe"]},
     r"line 2: answer targets.0 = 'maybe' is not among the options \['yes', 'no'\] \(multiple_choice_targets\)"),
    ("bigbench_logical_deduction", BIGBENCH_ROW, {**BIGBENCH_ROW, "targets": []}, r"line 2 has no targets.0"),
], ids=["mmlu-index", "hellaswag-index", "piqa-fixed", "winogrande-type", "bigbench-target", "bigbench-none"])
def test_an_answer_not_among_its_options_names_file_line_label_and_options(tmp_path, benchmark, good, bad, message):
    spec = benchmarks.get(benchmark)
    path = write_rows(tmp_path / benchmark / f"{spec.split}.jsonl", [good, bad])
    lm_tasks.read_rows(spec, write_rows(tmp_path / "good.jsonl", [good]))  # the good row alone passes
    with pytest.raises(lm_tasks.BenchmarkDataError, match=f"^{re.escape(str(path))}: " + message):
        lm_tasks.check_local_data([spec], tmp_path)


def test_every_multiple_choice_benchmark_says_where_its_answer_is():
    """The answer check covers each multiple-choice benchmark, and only those (the rest have no options)."""
    assert sorted(lm_tasks.ANSWERS) == sorted(name for name, spec in catalogue().items() if spec.multiple_choice)


def test_check_local_data_checks_every_benchmark_named(tmp_path):
    write_rows(tmp_path / "arc_easy" / "test.jsonl", [ARC_ROW])
    lm_tasks.check_local_data([benchmarks.get("arc_easy")], tmp_path)
    with pytest.raises(lm_tasks.BenchmarkDataError, match="missing .*boolq/validation.jsonl"):
        lm_tasks.check_local_data(resolve("arc_easy,boolq"), tmp_path)
    write_rows(tmp_path / "mmlu" / "test.jsonl", [{**MMLU_ROW, "subject": "cooking"}])
    with pytest.raises(lm_tasks.BenchmarkDataError, match="unknown mmlu subject"):
        lm_tasks.check_local_data([benchmarks.get("mmlu")], tmp_path)


def test_a_group_becomes_one_task_per_subject_present(tmp_path):
    row = {"question": "1+1?", "choices": ["1", "2", "3", "4"], "answer": 1}
    write_rows(tmp_path / "mmlu" / "test.jsonl", [{**row, "subject": "anatomy"}, {**row, "subject": "virology"}])
    write_rows(tmp_path / "mmlu" / "dev.jsonl", [{**row, "subject": "anatomy"}])
    names = lm_tasks.write_benchmark_tasks(benchmarks.get("mmlu"), tmp_path / "tasks", 5, tmp_path)
    assert names == ["faco_mmlu_anatomy", "faco_mmlu_virology"]
    config = yaml.safe_load((tmp_path / "tasks" / "faco_mmlu_anatomy.yaml").read_text())
    assert config["fewshot_split"] == "dev" and set(config["dataset_kwargs"]["data_files"]) == {"test", "dev"}
    write_rows(tmp_path / "mmlu" / "test.jsonl", [{**row, "subject": "cooking"}])
    with pytest.raises(lm_tasks.BenchmarkDataError, match="unknown mmlu subject"):
        lm_tasks.write_benchmark_tasks(benchmarks.get("mmlu"), tmp_path / "tasks", 5, tmp_path)


# --- real runs: SmolLM2-135M-Instruct on the real samples --------------------------------------------

@pytest.fixture(scope="module")
def smollm2() -> Path:
    from test_teacher_server import checkpoint, smollm2_gguf  # pytest puts unit_tests/ on sys.path

    return checkpoint(smollm2_gguf())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"no dataset samples at {SHARED}")
    from hub_samples import write_hub_samples

    out = tmp_path_factory.mktemp("benchmark-data")
    write_hub_samples(SHARED, out, limit=12)
    return out


def evaluate(model: Path, names: str, data_dir: Path, tmp_path: Path, limit: int, shots: int = 0, **kwargs):
    from faco.evaluation.benchmark_runs import evaluate_benchmarks

    specs = resolve(names)
    return evaluate_benchmarks(model, specs, tmp_path, shots={s.name: shots for s in specs}, data_dir=data_dir,
                               limit=limit, batch_size=8, seed=0, **kwargs)


@pytest.mark.slow
def test_multiple_choice_group_and_string_target_records(smollm2, data_dir, tmp_path):
    results = evaluate(smollm2, "boolq,copa,mmlu,lambada", data_dir, tmp_path, limit=3)
    boolq, mmlu, lambada = results["boolq"], results["mmlu"], results["lambada"]
    copa = results["copa"]["samples"]  # lm-eval logs COPA's gold as the option's text
    assert all(s["correct"] == (s["pred"] == s["gold"]) for s in copa) and len(copa) == 3
    assert boolq["n"] == 3 and len(boolq["samples"]) == 3
    for sample in boolq["samples"]:
        assert len(sample["loglikelihoods"]) == 2 and sample["gold"] in (0, 1)
        assert sample["correct"] == (sample["pred"] == sample["gold"])  # lm-eval's acc, read per question
    assert boolq["score"] == pytest.approx(sum(s["score"] for s in boolq["samples"]) / 3)
    subjects = mmlu["subtasks"]
    present = {json.loads(line)["subject"] for line in (data_dir / "mmlu" / "test.jsonl").read_text().splitlines()}
    assert sorted(subjects) == [f"faco_mmlu_{s}" for s in sorted(present)]
    n = 3 * len(subjects)
    assert mmlu["n"] == n and mmlu["score"] == pytest.approx(sum(s["score"] for s in mmlu["samples"]) / n)
    assert {s["id"].split("/")[0] for s in mmlu["samples"]} == {name.removeprefix("faco_") for name in subjects}
    assert lambada["metric"] == "acc" and all(s["target"].startswith(" ") for s in lambada["samples"])


@pytest.mark.slow
def test_generation_squad_exact_match_and_f1(smollm2, data_dir, tmp_path):
    squad = evaluate(smollm2, "squad", data_dir, tmp_path, limit=2)["squad"]
    assert squad["metric"] == "f1" and squad["n"] == 2
    for sample in squad["samples"]:
        assert 0.0 <= sample["score"] <= 1.0 and isinstance(sample["response"], str)


@pytest.mark.slow
def test_humaneval_runs_only_when_asked(smollm2, data_dir, tmp_path):
    skipped = evaluate(smollm2, "humaneval", data_dir, tmp_path, limit=2)
    assert "--allow-code-execution" in skipped["humaneval"]["skipped"]
    ran = evaluate(smollm2, "humaneval", data_dir, tmp_path, limit=2, allow_code_execution=True,
                   max_gen_toks=48)["humaneval"]  # lm-eval's 1,024 tokens take minutes on a CPU
    assert ran["metric"] == "pass@1" and ran["n"] == 2
    assert all(s["score"] in (0.0, 1.0) for s in ran["samples"])


def test_the_hub_samples_pass_the_local_data_check(data_dir):
    """No false alarm: every sample converted to the hub schema is data lm-eval can score."""
    lm_tasks.check_local_data([spec for spec in catalogue().values() if (data_dir / spec.name).is_dir()], data_dir)


def test_canonical_solutions_pass_and_wrong_ones_fail(data_dir):
    """The scorer itself, on the real problems: each canonical solution passes, an empty body fails."""
    from faco.evaluation.humaneval import process_results

    for line in (data_dir / "humaneval" / "test.jsonl").read_text().splitlines()[:3]:
        problem = json.loads(line)
        assert process_results(problem, [problem["canonical_solution"]]) == {"pass@1": 1.0}
        assert process_results(problem, ["    pass\n"]) == {"pass@1": 0.0}


@pytest.mark.slow
def test_scores_equal_the_lm_eval_cli(smollm2, data_dir, tmp_path):
    """Parity: the same model, tasks, local files and shots through `lm_eval` itself give the same scores."""
    limit, shots = 8, 1
    specs = resolve("arc_easy,boolq,mmlu")
    task_dir = tmp_path / "tasks"
    ours = evaluate(smollm2, "arc_easy,boolq,mmlu", data_dir, task_dir, limit=limit, shots=shots)
    mmlu_one = next(name for name in ours["mmlu"]["subtasks"])
    tasks = ["faco_arc_easy", "faco_boolq", mmlu_one]
    out = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "lm_eval", "run", "--model", "hf",
                    "--model_args", f"pretrained={smollm2},dtype=float32", "--device", "cpu",
                    "--tasks", ",".join(tasks), "--include_path", str(task_dir), "--num_fewshot", str(shots),
                    "--limit", str(limit), "--batch_size", "8", "--seed", "0,0,0,0", "--output_path", str(out)],
                   check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    [result_file] = out.rglob("results_*.json")
    cli = json.loads(result_file.read_text())["results"]
    assert cli["faco_arc_easy"]["acc_norm,none"] == ours["arc_easy"]["score"]
    assert cli["faco_boolq"]["acc,none"] == ours["boolq"]["score"]
    assert cli[mmlu_one]["acc,none"] == ours["mmlu"]["subtasks"][mmlu_one]["score"]
    assert [s.name for s in specs] == list(ours)


# --- the contamination guard ------------------------------------------------------------------------

def test_items_that_a_benchmark_evaluates_are_refused_with_their_count(tmp_path):
    from faco.evaluation import contamination

    rows = [{**ARC_ROW, "id": str(i), "question": f"Which of these is a gas at room temperature, number {i}?"}
            for i in range(3)]
    write_rows(tmp_path / "arc_easy" / "test.jsonl", rows)
    items = [("openbookqa", rows[0]["question"]), ("qasc", rows[1]["question"].upper() + "  "),
             ("sciq", "A question no benchmark asks, long enough to count?")]
    specs = resolve("arc_easy")
    with pytest.raises(ConfigError, match=r"arc_easy: 2 item\(s\) \(openbookqa 1, qasc 1\).*allow_contamination"):
        contamination.check(items, specs, tmp_path, allowed=False)
    found = contamination.check(items, specs, tmp_path, allowed=True)
    assert dict(found["arc_easy"]) == {"openbookqa": 1, "qasc": 1}
    assert contamination.check(items[2:], specs, tmp_path, allowed=False) == {}
