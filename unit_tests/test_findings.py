"""Findings files: tolerances from seed noise, drift detection, and the `faco tolerances` command."""

from __future__ import annotations

import json

import pytest

from faco import findings as findings_io
from faco.cli import main


def finding(**key: float) -> findings_io.Finding:
    return findings_io.Finding("correlation", "correlation-strong-heldout", True, {}, "summary",
                               {metric: [value] for metric, value in key.items()})


def test_tolerance_is_k_times_the_sample_sd_with_a_floor():
    measured = findings_io.tolerances({"x": {"key_per_seed": {"abs": [0.5, 0.6, 0.7], "r": [-0.9, -0.9, -0.9]}}})
    assert measured["x"]["abs"] == {"tolerance": 0.3, "noise": 0.1, "seeds": 3}
    assert measured["x"]["r"] == {"tolerance": 0.01, "noise": 0.0, "seeds": 3}  # floor: seeds agreed exactly


def test_one_seed_gives_no_tolerance():
    assert findings_io.tolerances({"x": {"key_per_seed": {"abs": [0.5]}}}) == {}


def test_drifts_beyond_tolerance_only():
    entry = {"key": {"abs": 0.5, "r": -0.9}, "tolerance": {"abs": {"tolerance": 0.1, "noise": 0.03}}}
    assert findings_io.drifts(entry, finding(abs=0.59, r=0.0)) == []  # r carries no tolerance: unchecked
    (drift,) = findings_io.drifts(entry, finding(abs=0.65, r=-0.9))
    assert (drift.metric, drift.baseline, drift.obtained, drift.tolerance) == ("abs", 0.5, 0.65, 0.1)
    (missing,) = findings_io.drifts(entry, finding(r=-0.9))
    assert missing.obtained is None
    table = findings_io.drift_table("correlation-strong-heldout", [drift, missing])
    assert "abs" in table and "+0.1500" in table and "missing" in table


def test_tolerances_command(tmp_path):
    seeds_run = tmp_path / "tiny-seeds0-1-2"
    seeds_run.mkdir()
    (seeds_run / "findings.json").write_text(json.dumps(
        {"findings": {"a": {"key_per_seed": {"abs": [0.5, 0.6, 0.7]}}}}))
    baseline = tmp_path / "tiny.json"
    baseline.write_text(json.dumps({"findings": {"a": {"holds": True, "key": {"abs": 0.5}}}}))
    assert main(["tolerances", "--seeds-run", str(seeds_run), "--baseline", str(baseline)]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["findings"]["a"]["tolerance"]["abs"]["tolerance"] == 0.3
    assert stored["provenance"]["tolerances_from"].endswith("findings.json")


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
