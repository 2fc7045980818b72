"""`faco status` prints what a run needs before it builds anything: every artefact the selected experiments
read, with the key a run would file it under, and whether the cache holds it.

    python -m pytest unit_tests/test_status.py -q
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from faco.config.load import load_preset
from faco.core.cache import Cache
from faco.study.stages import Request
from faco.study.study import Study, untuned

REPO = Path(__file__).resolve().parents[1]


def status(cache: Path, *options: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "faco.cli", "status", "--cache", str(cache), *options],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def rows(text: str) -> list[tuple[str, str, str]]:
    """(stage, key, state) of every artefact line."""
    return [(m[0], m[1], m[2]) for m in re.findall(r"^  (\w+) +.+? +([0-9a-f]{24}|\? \(input not built\)) +(cached|missing)$",
                                                    text, re.M)]


def test_a_cold_tiny_run_needs_every_stage_of_every_seed(tmp_path):
    text = status(tmp_path / "cache")
    assert [line for line in text.splitlines() if line.startswith("seed ")] == ["seed 0:", "seed 1:", "seed 2:"]
    listed = rows(text)
    assert listed and all(state == "missing" for _, _, state in listed)
    per_seed = len(listed) // 3
    counts = {stage: sum(1 for s, _, _ in listed[:per_seed] if s == stage) for stage, _, _ in listed}
    preset = load_preset("tiny")
    assert counts["pretrain"] == 1 and counts["items"] == 1 and counts["tasks"] == 2  # instruction, familiar
    assert counts["finetune"] == len(preset.bases) * len(preset.corruption.ratios)
    assert counts["recover"] == len(preset.bases)
    # the keys are those a run files its artefacts under
    study = Study(preset, Cache(tmp_path / "cache"))
    assert ("pretrain", study.key(Request.of("pretrain")), "missing") in listed[:per_seed]
    assert ("finetune", study.key(Request.of("finetune", base="strong", ratio=50)), "missing") in listed[:per_seed]
    assert f"0 of {per_seed} cached; a run would build" in text
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.json"))  # nothing built


def test_a_warm_selection_needs_nothing_and_a_wider_one_the_rest(tmp_path):
    cache = tmp_path / "cache"
    selection = ("--preset", "smoke", "-k", "knowledge and weak")
    cold = rows(status(cache, *selection))
    assert {stage for stage, _, _ in cold} == {"pretrain", "tasks", "eval"}
    assert {state for _, _, state in cold} == {"missing"}

    Study(load_preset("smoke"), Cache(cache)).scores(untuned("weak"), "familiar")  # what those tests read

    warm = status(cache, *selection)
    assert {(stage, key) for stage, key, _ in rows(warm)} == {(stage, key) for stage, key, _ in cold}
    assert {state for _, _, state in rows(warm)} == {"cached"} and "nothing to build" in warm
    wider = rows(status(cache, "--preset", "smoke", "-k", "knowledge"))
    assert {(stage, state) for stage, _, state in wider} == {("pretrain", "cached"), ("tasks", "cached"),
                                                              ("eval", "cached"), ("eval", "missing")}


def test_the_beyond_experiments_plan_their_runs_with_their_marker(tmp_path):
    """`-m beyond` selects them (a plain selection leaves them out); their reads name each run of the default
    grids: the corruption kinds, the recovery doses and the trajectory runs (faco.findings.registry)."""
    plain = {stage for stage, _, _ in rows(status(tmp_path / "cache", "--seed", "0", "-k", "strong"))}
    assert not plain & {"falsity", "redose", "trajectory"}
    listed = rows(status(tmp_path / "cache", "--seed", "0", "-m", "beyond", "-k", "strong"))
    counts = {stage: sum(1 for s, _, _ in listed if s == stage) for stage, _, _ in listed}
    assert counts["falsity"] == 2 and counts["redose"] == 4 and counts["trajectory"] == 2  # answer, chain; 5..50 %
    assert counts["finetune"] == 11 and counts["recover"] == 1  # the fine CR grid; the 100 % dose
