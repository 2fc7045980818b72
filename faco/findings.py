"""Findings as files: what each experiment measured (reports/<run>/findings.json) and what it is
expected to measure (experiments/baselines/<run>.json, in the repo, with provenance).

A baseline stores, per experiment id, whether the finding held when it was last reviewed. The plugin
turns "does not hold" into a strict xfail, so a finding that flips either way fails the run; a missing
entry is written and fails; `--faco-regen` rewrites and fails, so every change is reviewed in a diff.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock


class BaselineError(ValueError):
    """A baseline file that cannot be read; names the file and what is wrong."""


@dataclass(frozen=True)
class Finding:
    finding: str  # "correlation", "sensitivity", "loss", "longer", "recovery", "lying", "knowledge"
    id: str  # e.g. "correlation-strong-heldout": the finding plus the test's parameters
    holds: bool
    numbers: Mapping[str, Any]
    summary: str  # one line with the key numbers, for the table and failure messages

    def record(self) -> dict[str, Any]:
        return {"finding": self.finding, "id": self.id, "holds": self.holds, "summary": self.summary,
                **{k: _jsonable(v) for k, v in self.numbers.items()}}


def run_name(preset: str, seeds: list[int], default_seed: int) -> str:
    """Reports and baselines are per preset and seeds; the default seed alone keeps the plain name."""
    if seeds == [default_seed]:
        return preset
    if len(seeds) == 1:
        return f"{preset}-seed{seeds[0]}"
    return f"{preset}-seeds{'-'.join(map(str, seeds))}"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy / torch scalars
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
    with lock(path):
        data = read_json(path, {"findings": {}})
        data["provenance"] = dict(provenance)
        data["findings"][finding.id] = finding.record()
        write_json(path, data)


def provenance(preset: Any, seeds: list[int]) -> dict[str, Any]:
    """Where a baseline's numbers came from: config, library versions, git commit, date."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "transformers", "lm_eval", "accelerate", "datasets", "scipy"):
        try:
            versions[package] = version(package.replace("_", "-"))
        except PackageNotFoundError:
            versions[package] = None
    return {
        "preset": preset.name,
        "seeds": list(seeds),
        "python": platform.python_version(),
        "versions": versions,
        "git": _git_commit(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
