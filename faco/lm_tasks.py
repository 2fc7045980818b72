"""lm-eval task files for registry benchmarks: lm-eval's own task config, with faco's shots and, offline,
only the dataset swapped for local files.

Every benchmark becomes a small YAML that `include`s lm-eval's task file and overrides what faco
decides: `num_fewshot` (the paper's shots, or the user's) and, with a data directory, `dataset_path:
json` reading `DIR/<benchmark>/<split>.jsonl` in the hub dataset's schema. The prompt, few-shot
sampling and metric stay lm-eval's. A group (MMLU) becomes one task per subject. Writing wrappers
also lets one `TaskManager(include_defaults=False)` load them in no time, instead of indexing every
built-in task (about 15 s per process).

A local file is checked before anything runs: a missing file, a row that is not JSON or lacks a field
the task reads is one error naming the file, the row and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.benchmarks import BenchmarkSpec
from faco.config import ConfigError

PREFIX = "faco_"  # faco's wrapper tasks never shadow lm-eval's own names
SPLIT_KEYS = {"train": "training_split", "validation": "validation_split", "test": "test_split"}


class Function(str):
    """A `!function module.name` reference in a written task YAML (lm-eval imports it by name)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Function, lambda dumper, value: dumper.represent_scalar("!function", str(value)))


class BenchmarkDataError(ConfigError):
    """A local benchmark file that cannot be used; names the file, the row and the field."""


@lru_cache(maxsize=1)
def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


@lru_cache(maxsize=1)
def _task_files() -> dict[str, Path]:
    """lm-eval task name -> its YAML file (a text scan: well under a second, unlike lm-eval's index)."""
    found: dict[str, Path] = {}
    pattern = re.compile(r"^task:\s*['\"]?([\w.\-]+)", re.MULTILINE)
    for path in sorted(lm_eval_tasks_dir().rglob("*.yaml")):
        match = pattern.search(path.read_text(errors="replace"))
        if match:
            found.setdefault(match.group(1), path)
    return found


def task_file(task: str) -> Path:
    path = _task_files().get(task)
    if path is None:
        raise ConfigError(f"lm-eval has no task {task!r} (installed lm-eval: {lm_eval_tasks_dir()})")
    return path


def subtask_files(spec: BenchmarkSpec) -> dict[str, Path]:
    """A group's subtasks: subject -> lm-eval YAML (mmlu_anatomy.yaml -> anatomy)."""
    files = sorted(lm_eval_tasks_dir().glob(spec.subtasks or ""))
    if not files:
        raise ConfigError(f"benchmark {spec.name!r}: no lm-eval files match {spec.subtasks!r}")
    prefix = Path(spec.subtasks or "").name.split("*")[0]
    return {path.stem.removeprefix(prefix): path for path in files}


# --- local data ------------------------------------------------------------------------------------

def local_splits(spec: BenchmarkSpec, data_dir: Path) -> dict[str, Path]:
    """The local files of `spec` (split -> path); the evaluated split must be there."""
    folder = data_dir / spec.name
    found = {path.stem: path for path in sorted(folder.glob("*.jsonl"))}
    if spec.split not in found:
        raise BenchmarkDataError(f"benchmark {spec.name!r}: missing {folder / (spec.split + '.jsonl')} "
                                 f"(lm-eval evaluates its {spec.split!r} split; see docs/benchmark-data.md)")
    return found


def read_rows(spec: BenchmarkSpec, path: Path) -> list[dict[str, Any]]:
    """Rows of a local file, each checked for the fields the task reads."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkDataError(f"{path}: row {number} is not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise BenchmarkDataError(f"{path}: row {number} is not a JSON object")
        missing = [name for name in spec.fields if name not in row]
        if missing:
            raise BenchmarkDataError(f"{path}: row {number} has no field {missing[0]!r} "
                                     f"(benchmark {spec.name!r} rows need {list(spec.fields)})")
        rows.append(row)
    if not rows:
        raise BenchmarkDataError(f"{path}: no rows")
    return rows


def _split_keys(spec: BenchmarkSpec, splits: Sequence[str]) -> dict[str, str | None]:
    """Which split lm-eval evaluates and where few-shot examples come from, for the files present."""
    keys: dict[str, str | None] = {key: None for key in SPLIT_KEYS.values()}
    for split in splits:
        if split in SPLIT_KEYS:
            keys[SPLIT_KEYS[split]] = split
    if spec.split not in SPLIT_KEYS:  # e.g. BIG-bench's "default": lm-eval reads it as the test split
        keys["test_split"] = spec.split
    if spec.split == "validation":  # lm-eval evaluates the test split whenever there is one
        keys["test_split"] = None
    keys["fewshot_split"] = spec.fewshot_split if spec.fewshot_split in splits else None
    return keys


# --- wrappers --------------------------------------------------------------------------------------

def task_name(spec: BenchmarkSpec, subject: str | None = None) -> str:
    return PREFIX + spec.name + (f"_{subject}" if subject else "")


def write_benchmark_tasks(spec: BenchmarkSpec, out: Path, shots: int, data_dir: Path | None) -> list[str]:
    """Write `spec`'s task file(s) into `out`; returns the lm-eval task names (one per subject of a group)."""
    out.mkdir(parents=True, exist_ok=True)
    local = local_splits(spec, data_dir) if data_dir is not None else None
    if spec.subtasks:
        return _write_group(spec, out, shots, local)
    config = _base_config(spec, task_file(spec.task) if spec.name != "humaneval" else None)
    if local is not None:
        for path in local.values():
            read_rows(spec, path)
        config.update(_local_dataset(spec, {split: path.resolve() for split, path in local.items()}))
    return [_write(out, spec, None, config, shots)]


def _base_config(spec: BenchmarkSpec, include: Path | None) -> dict[str, Any]:
    if include is None:  # HumanEval: lm-eval's config imports a hub-loaded metric at parse time
        from faco.code_eval import humaneval_config

        return humaneval_config()
    config: dict[str, Any] = {"include": str(include)}
    if spec.hub_dataset:
        config.update(dataset_path=spec.hub_dataset, dataset_name=None)
    return config


def _local_dataset(spec: BenchmarkSpec, files: dict[str, Path]) -> dict[str, Any]:
    return {"dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
            **_split_keys(spec, list(files))}


def _write_group(spec: BenchmarkSpec, out: Path, shots: int, local: dict[str, Path] | None) -> list[str]:
    """One task per subject; offline, per-subject files are cut from DIR/<group>/<split>.jsonl by `subject`."""
    subjects = subtask_files(spec)
    if local is None:
        return [_write(out, spec, subject, {"include": str(path)}, shots) for subject, path in subjects.items()]
    by_split = {split: read_rows(spec, path) for split, path in local.items()}
    present = sorted({row["subject"] for row in by_split[spec.split]})
    unknown = [s for s in present if s not in subjects]
    if unknown:
        raise BenchmarkDataError(f"{local[spec.split]}: unknown {spec.name} subject(s) {unknown}; "
                                 f"known: {sorted(subjects)}")
    names = []
    for subject in present:
        files = {}
        for split, rows in by_split.items():
            path = out / f"{task_name(spec, subject)}.{split}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows if row["subject"] == subject))
            files[split] = path.resolve()
        config = {"include": str(subjects[subject]), **_local_dataset(spec, files)}
        names.append(_write(out, spec, subject, config, shots))
    return names


def _write(out: Path, spec: BenchmarkSpec, subject: str | None, config: dict[str, Any], shots: int) -> str:
    name = task_name(spec, subject)
    config = {**config, "task": name, "num_fewshot": shots}
    (out / f"{name}.yaml").write_text(yaml.dump(config, Dumper=_Dumper, sort_keys=False))
    return name
