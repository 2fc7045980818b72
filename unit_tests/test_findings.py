"""Findings files: tolerances from seed noise, drift detection, and the `faco tolerances` command."""

from __future__ import annotations

import json

import pytest

from faco.findings import records
from faco.cli import main


def finding(**key: float) -> records.Finding:
    return records.Finding("correlation", "correlation-strong-heldout", True, {}, "summary",
                               {metric: [value] for metric, value in key.items()})


def test_tolerance_follows_the_same_seed_rerun_noise():
    """Pinned numerics: a rerun is bit-identical (noise 0), so the tolerance is the stored numbers' rounding."""
    assert records.tolerance_for("abs", 0.0) == {"tolerance": 0.0005, "rerun_noise": 0.0, "noise": None,
                                                     "seeds": None}
    assert records.tolerance_for("abs", 0.01, noise=0.1, seeds=3)["tolerance"] == 0.03  # K x the rerun noise
    assert records.tolerance_for("r", 0.3)["tolerance"] == 0.9  # r spans 2: 0.9 is under half of it


@pytest.mark.parametrize("metric, noise", [("abs", 0.17), ("cr100", 0.2), ("gap", 0.07), ("r", 0.34),
                                           ("loss_cr0", 0.34), ("margin", None)])
def test_a_number_too_noisy_is_unchecked_never_given_half_its_range(metric, noise):
    spec = records.tolerance_for(metric, noise)
    assert "tolerance" not in spec and spec["unchecked"] and spec["rerun_noise"] == noise


def test_no_tolerance_covers_more_than_half_the_plausible_range():
    for metric in ("abs", "cr0", "epoch1", "gap", "r", "loss_cr50", "margin", "regained", "accuracy"):
        for noise in [i / 200 for i in range(0, 200)]:
            spec = records.tolerance_for(metric, noise)
            assert "unchecked" in spec or spec["tolerance"] <= records.plausible_range(metric) / 2


def test_seed_noise_is_the_sample_sd():
    measured = records.seed_noise({"x": {"key_per_seed": {"abs": [0.5, 0.6, 0.7], "r": [-0.9]}}})
    assert measured == {"x": {"abs": {"noise": 0.1, "seeds": 3}}}  # one seed: no noise to measure


def test_drifts_beyond_tolerance_only():
    entry = {"key": {"abs": 0.5, "r": -0.9, "cr0": 0.7},
             "tolerance": {"abs": {"tolerance": 0.1, "noise": 0.03}, "r": {"unchecked": "too noisy", "noise": 0.4}}}
    assert records.drifts(entry, finding(abs=0.59, r=0.0, cr0=0.7003)) == []  # r unchecked, cr0 at RESOLUTION
    (drift,) = records.drifts(entry, finding(abs=0.65, r=-0.9, cr0=0.7))
    assert (drift.metric, drift.baseline, drift.obtained, drift.tolerance) == ("abs", 0.5, 0.65, 0.1)
    (strict,) = records.drifts(entry, finding(abs=0.5, r=-0.9, cr0=0.701))  # no spec: checked at RESOLUTION
    assert strict.metric == "cr0"
    missing = records.drifts(entry, finding(r=-0.9))
    assert {m.metric for m in missing} == {"abs", "cr0"} and all(m.obtained is None for m in missing)
    assert records.unchecked(entry) == {"r": "too noisy"}
    table = records.drift_table("correlation-strong-heldout", [drift, *missing])
    assert "abs" in table and "+0.1500" in table and "missing" in table


def test_tolerances_command(tmp_path, capsys):
    seeds_run, rerun = tmp_path / "tiny-seeds0-1-2", tmp_path / "tiny-native"
    seeds_run.mkdir()
    rerun.mkdir()
    (seeds_run / "findings.json").write_text(json.dumps(
        {"findings": {"a": {"key_per_seed": {"abs": [0.5, 0.6, 0.7], "r": [-0.9, -0.8, -0.7]}}}}))
    (rerun / "findings.json").write_text(json.dumps({"findings": {"a": {"key": {"abs": 0.52, "r": 0.1}}}}))
    baseline = tmp_path / "tiny.json"
    baseline.write_text(json.dumps({"provenance": {"numerics": {"reproducible": True}},
                                    "findings": {"a": {"holds": True, "key": {"abs": 0.5, "r": -0.9}}}}))
    assert main(["tolerances", "--seeds-run", str(seeds_run), "--baseline", str(baseline)]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["findings"]["a"]["tolerance"]["abs"] == {"tolerance": 0.0005, "rerun_noise": 0.0, "noise": 0.1,
                                                           "seeds": 3}
    assert stored["provenance"]["tolerances_from"] == f"seeds {seeds_run}"
    assert main(["tolerances", "--rerun", str(rerun), "--baseline", str(baseline)]) == 0
    tolerance = json.loads(baseline.read_text())["findings"]["a"]["tolerance"]
    assert tolerance["abs"]["tolerance"] == 0.06 and "unchecked" in tolerance["r"]  # r moved by 1.0 on a rerun
    assert tolerance["abs"]["noise"] == 0.1  # the seed noise measured before is kept
    assert "(1 key number(s) unchecked)" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["no-run", "bad-baseline", "one-seed"])
def test_tolerances_command_errors(tmp_path, capsys, problem):
    seeds_run = tmp_path / "run"
    baseline = tmp_path / "tiny.json"
    baseline.write_text(json.dumps({"findings": {}}) if problem != "bad-baseline" else "{oops")
    if problem != "no-run":
        seeds_run.mkdir()
        (seeds_run / "findings.json").write_text(json.dumps({"findings": {"a": {"key_per_seed": {"abs": [0.5]}}}}))
    assert main(["tolerances", "--seeds-run", str(seeds_run), "--baseline", str(baseline)]) == 2
    assert capsys.readouterr().err.startswith("faco tolerances: error:")


def test_tolerances_for_a_missing_baseline_is_an_error_that_creates_nothing(tmp_path, capsys):
    baseline = tmp_path / "baselines" / "tiny.json"
    assert main(["tolerances", "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"faco tolerances: error: {baseline}: no such baseline") and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no baseline, no lock file, no folder


def test_stored_baselines_follow_the_tolerance_rule():
    """Every key number of every committed baseline is checked by the rule's tolerance (under half its
    plausible range), or marked unchecked with its noise; one without a tolerance is checked at the
    resolution. `pytest experiments --faco-regen` and `faco tolerances` apply the rule."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "experiments" / "baselines"
    off_rule = []
    for path in sorted(p for p in root.glob("*.json") if not p.name.endswith(".obtained.json")):
        for finding_id, entry in records.load_baseline(path).items():
            for metric, spec in entry.get("tolerance", {}).items():
                ruled = records.tolerance_for(metric, spec.get("rerun_noise"), spec.get("noise"), spec.get("seeds"))
                if spec != ruled:
                    off_rule.append(f"{path.name} {finding_id} {metric} {spec}")
    assert not off_rule, f"{len(off_rule)} tolerances not set by the rule, e.g. {off_rule[:2]}"
