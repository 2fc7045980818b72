"""Findings as files: what each experiment measured (reports/<run>/findings.json) and what it is
expected to measure (experiments/baselines/<run>.json, in the repo, with provenance).

A baseline stores, per experiment id, whether the finding held when it was last reviewed. The plugin
turns "does not hold" into a strict xfail, so a finding that flips either way fails the run; a missing
entry is written and fails; `--faco-regen` rewrites and fails, so every change is reviewed in a diff.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from faco.core import numerics
from faco.core.cache import library_versions

if TYPE_CHECKING:  # annotations only: reading findings files needs no scipy
    from faco.findings.registry import Statistic
    from faco.findings.statistics import Interval


class BaselineError(ValueError):
    """A baseline file that cannot be read; names the file and what is wrong."""


class FindingDoesNotHold(AssertionError):
    """A finding that was measured and does not hold: the one failure a known negative may expect.

    The plugin marks known negatives `xfail(strict=True, raises=FindingDoesNotHold)`, so a crash anywhere
    in the experiment (a missing checkpoint, a server error, a malformed file) stays an error and fails the
    run; only the finding's own verdict is an expected failure."""


@dataclass(frozen=True)
class Finding:
    """What one experiment measured: the record it fills (faco.findings.registry declares the findings)."""

    finding: str  # a name in faco.findings.registry.NAMES (or a user's own finding)
    id: str  # e.g. "correlation-strong-heldout": the finding plus the test's parameters
    holds: bool
    numbers: Mapping[str, Any]  # what the report draws; intervals as statistics.Interval (with their level)
    summary: str  # one line with the key numbers, for the table and failure messages
    key_per_seed: Mapping[str, list[float]] = field(default_factory=dict)  # the regression's numbers, per seed
    statistic: Statistic | None = None  # the test the verdict turns on
    interval: Interval | None = None  # the interval of the effect the verdict turns on, with its level

    @property
    def key(self) -> dict[str, float]:
        """The key numbers: the mean over seeds (the value itself for one seed)."""
        return {name: sum(values) / len(values) for name, values in self.key_per_seed.items()}

    def record(self) -> dict[str, Any]:
        return {"finding": self.finding, "id": self.id, "holds": self.holds, "summary": self.summary,
                "statistic": _jsonable(self.statistic), "interval": _jsonable(self.interval),
                **{k: _jsonable(v) for k, v in self.numbers.items()},
                "key": _jsonable(self.key), "key_per_seed": _jsonable(dict(self.key_per_seed))}


def run_name(preset: str, seeds: list[int], default_seeds: list[int]) -> str:
    """Reports and baselines are per preset and seeds; the preset's default seeds keep the plain name."""
    if seeds == default_seeds:
        return preset
    if len(seeds) == 1:
        return f"{preset}-seed{seeds[0]}"
    return f"{preset}-seeds{'-'.join(map(str, seeds))}"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy / torch scalars
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # Interval, Statistic, Binomial
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --- atomic JSON files under a lock (xdist workers write the same files) ---------------------------

def read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BaselineError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump(value, tmp, indent=1, sort_keys=True)
        tmp.write("\n")
    os.replace(tmp.name, path)


def lock(path: Path) -> filelock.FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(path) + ".lock")


def store_finding(path: Path, finding: Finding, run: Mapping[str, Any]) -> None:
    """Replace `finding` by id in findings.json (other ids, e.g. from a `-k` run, are kept)."""
    with lock(path):
        data = read_json(path, {"findings": {}})
        data["findings"][finding.id] = {**finding.record(), "run": dict(run)}
        write_json(path, data)


def store_skips(path: Path, skipped: Mapping[str, str]) -> None:
    """Why findings were skipped (skipped.json, {finding: reason}): the report says so instead of a command
    that could not record them. Reasons of other sessions are kept; this session's replace theirs."""
    with lock(path):
        write_json(path, {**read_json(path, {}), **skipped})


# --- baselines -------------------------------------------------------------------------------------

def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """{id: {"holds": bool, ...}}; an absent file is an empty baseline."""
    data = read_json(path, {"findings": {}})
    entries = data.get("findings")
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and isinstance(e.get("holds"), bool)
                                                for e in entries.values()):
        raise BaselineError(f"{path}: expected {{'findings': {{id: {{'holds': true|false, ...}}}}}}")
    return entries


def write_baseline_entry(path: Path, finding: Finding, provenance: Mapping[str, Any]) -> None:
    """Store `finding` as the expected outcome, every key number with its tolerance (`tolerance_for`);
    noise an old entry measured is kept and the rule re-applied to it."""
    with lock(path):
        data = read_json(path, {"findings": {}})
        data["provenance"] = dict(provenance)
        old = data["findings"].get(finding.id, {}).get("tolerance", {})
        entry = {k: v for k, v in finding.record().items() if k != "key_per_seed"}
        rerun = 0.0 if provenance.get("numerics", {}).get("reproducible") else None
        entry["tolerance"] = {metric: tolerance_for(metric, old.get(metric, {}).get("rerun_noise", rerun),
                                                    old.get(metric, {}).get("noise"), old.get(metric, {}).get("seeds"))
                              for metric in entry["key"]}
        data["findings"][finding.id] = entry
        write_json(path, data)


# --- numeric regression ----------------------------------------------------------------------------
#
# The numerics are pinned (faco.core.numerics): a same-seed rerun, serial or `-n 2`, on any x86-64 machine,
# gives bit-identical scores. So a key number that moves at all means the code, a library or a setting
# computes something else, and the tolerance only has to absorb the rounding of stored numbers. A number
# whose rerun noise is too large to check (numerics not pinned, a non-deterministic kernel) is marked
# unchecked with its noise rather than given a tolerance that covers most of what it could be.

# stored numbers carry 4 decimals (rounding moves one by <= 0.00005); one question in 1,000 moves it 0.001
RESOLUTION = 0.0005
K = 3.0  # tolerance in units of the measured same-seed rerun noise


def plausible_range(metric: str) -> float:
    """The width of the values a key number can plausibly take (what "half its range" refers to)."""
    if metric == "r":
        return 2.0  # Pearson r: -1..1
    if metric == "gap":
        return 0.4  # the ABS gap between two bases: about -0.2..0.2
    if metric.startswith("loss"):
        return 2.0  # mean training loss per token over fine-tuning: about 0..2 nats
    return 1.0  # accuracies (0..1) and their differences (ABS, change, margins: about -0.5..0.5)


def tolerance_for(metric: str, rerun_noise: float | None, noise: float | None = None,
                  seeds: int | None = None) -> dict[str, Any]:
    """The tolerance rule: max(K x the same-seed rerun noise, RESOLUTION). Where that exceeds half of
    the metric's plausible range, or the rerun noise is unknown (numerics not pinned), the number is
    unchecked; `noise` (seed to seed) and `seeds` are kept beside it for the reader."""
    spec: dict[str, Any] = {"rerun_noise": rerun_noise, "noise": noise, "seeds": seeds}
    if rerun_noise is None:
        return {**spec, "unchecked": "numerics not pinned: the same-seed rerun noise is unknown"}
    tolerance = max(K * rerun_noise, RESOLUTION)
    if tolerance > plausible_range(metric) / 2:
        return {**spec, "unchecked": f"rerun noise {rerun_noise:.4f}: {K:g} x it exceeds half the plausible range "
                                     f"({plausible_range(metric):g})"}
    return {**spec, "tolerance": round(tolerance, 4)}


@dataclass(frozen=True)
class Drift:
    metric: str
    baseline: float
    obtained: float | None
    tolerance: float
    noise: float  # seed to seed, for scale: how far another seed would move it


def drifts(entry: Mapping[str, Any], finding: Finding) -> list[Drift]:
    """Key numbers of `finding` farther from the baseline than their tolerance (or missing); a number
    without a tolerance is checked at RESOLUTION, an unchecked one not at all (see `unchecked`)."""
    out = []
    obtained = finding.key
    for metric, expected in entry.get("key", {}).items():
        spec = entry.get("tolerance", {}).get(metric) or {"tolerance": RESOLUTION}
        if expected is None or "unchecked" in spec:
            continue
        value = obtained.get(metric)
        noise = spec.get("noise")
        if value is None or math.isnan(value) or abs(value - expected) > spec["tolerance"]:
            out.append(Drift(metric, expected, value, spec["tolerance"], math.nan if noise is None else noise))
    return out


def unchecked(entry: Mapping[str, Any]) -> dict[str, str]:
    """{metric: why} for the key numbers of a baseline entry that no tolerance checks."""
    return {metric: spec["unchecked"] for metric, spec in entry.get("tolerance", {}).items() if "unchecked" in spec}


def drift_table(finding_id: str, rows: list[Drift]) -> str:
    """The readable diff of a numeric regression."""
    lines = [f"{finding_id}: key numbers moved beyond their tolerance (a same-seed rerun is bit-identical; "
             f"seed noise for scale)",
             f"  {'metric':<14}{'baseline':>10}{'obtained':>10}{'diff':>9}{'tolerance':>11}{'seed noise':>12}"]
    for row in rows:
        got = "missing" if row.obtained is None else f"{row.obtained:.4f}"
        diff = "" if row.obtained is None else f"{row.obtained - row.baseline:+.4f}"
        lines.append(f"  {row.metric:<14}{row.baseline:>10.4f}{got:>10}{diff:>9}{row.tolerance:>11.4f}"
                     f"{row.noise:>12.4f}")
    return "\n".join(lines)


def store_obtained(path: Path, finding: Finding) -> None:
    """Keep what a regressed run obtained beside the baseline (pytest-regressions' `.obtained`)."""
    with lock(path):
        data = read_json(path, {"findings": {}})
        data["findings"][finding.id] = finding.record()
        write_json(path, data)


def seed_noise(per_seed_findings: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """{id: {metric: {noise, seeds}}} from a multi-seed findings.json: the sample standard deviation of
    each key number over seeds (how far another seed moves it; for scale, not the tolerance)."""
    out: dict[str, dict] = {}
    for finding_id, record in per_seed_findings.items():
        for metric, values in (record.get("key_per_seed") or {}).items():
            values = [v for v in values if v is not None]
            if len(values) < 2:
                continue
            mean = sum(values) / len(values)
            noise = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            out.setdefault(finding_id, {})[metric] = {"noise": round(noise, 4), "seeds": len(values)}
    return out


def rerun_noise(baseline: Mapping[str, Any], rerun_findings: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{id: {metric: |rerun - baseline|}} for a same-seed rerun (another machine, `-n 2`, native numerics)."""
    out: dict[str, dict] = {}
    for finding_id, entry in baseline.items():
        again = (rerun_findings.get(finding_id) or {}).get("key") or {}
        for metric, expected in (entry.get("key") or {}).items():
            if expected is not None and again.get(metric) is not None:
                out.setdefault(finding_id, {})[metric] = round(abs(again[metric] - expected), 4)
    return out


def apply_tolerances(baseline_path: Path, seeds: Mapping[str, dict], reruns: Mapping[str, dict] | None,
                     source: str) -> int:
    """Re-apply the tolerance rule to every key number of a baseline with the measured noise: seed noise
    from `seeds` (seed_noise; else what the entry holds), rerun noise from `reruns` (rerun_noise; None:
    pinned numerics, 0).
    Returns how many entries got tolerances."""
    with lock(baseline_path):
        data = read_json(baseline_path, {"findings": {}})
        pinned = data.get("provenance", {}).get("numerics", {}).get("reproducible")
        for finding_id, entry in data["findings"].items():
            old, entry["tolerance"] = entry.get("tolerance", {}), {}
            for metric in entry.get("key", {}):
                measured = seeds.get(finding_id, {}).get(metric) or old.get(metric, {})  # keep what was measured
                rerun = (reruns.get(finding_id, {}).get(metric) if reruns is not None
                         else 0.0 if pinned else None)
                entry["tolerance"][metric] = tolerance_for(metric, rerun, measured.get("noise"), measured.get("seeds"))
        data.setdefault("provenance", {})["tolerances_from"] = source
        write_json(baseline_path, data)
    return len(data["findings"])


def provenance(preset: Any, seeds: list[int]) -> dict[str, Any]:
    """Where a baseline's numbers came from: config, library versions, git commit, date."""
    versions = library_versions("torch", "transformers", "tokenizers", "lm-eval", "accelerate", "peft", "datasets",
                                "scipy")
    return {
        "preset": preset.name,
        "seeds": list(seeds),
        "python": platform.python_version(),
        "versions": versions,
        "numerics": numerics.describe(),
        "git": _git_commit(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def store_provenance(path: Path, preset: Any, seeds: list[int], cache_keys: Mapping[str, list[str]],
                     cache_root: Path) -> None:
    """reports/<run>/provenance.json: config, seeds, versions, commit and the cache entries used (merged
    across xdist workers and across `-k` runs)."""
    with lock(path):
        data = read_json(path, {})
        keys = {stage: set(v) for stage, v in data.get("cache_keys", {}).items()}
        for stage, values in cache_keys.items():
            keys.setdefault(stage, set()).update(values)
        data.update(provenance(preset, seeds))
        data["config"] = _jsonable(dataclasses.asdict(preset))
        data["cache_root"] = str(cache_root)
        data["cache_keys"] = {stage: sorted(v) for stage, v in sorted(keys.items())}
        write_json(path, data)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
