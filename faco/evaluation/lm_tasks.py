"""lm-eval task files for the paper's benchmarks: lm-eval's own task config, with faco's shots and, offline,
only the dataset swapped for local files.

Every benchmark becomes a small YAML that `include`s lm-eval's task file and overrides what faco
decides: `num_fewshot` (the paper's shots, or the user's) and, with a data directory, `dataset_path:
json` reading `DIR/<benchmark>/<split>.jsonl` in the hub dataset's schema. The prompt, few-shot
sampling and metric stay lm-eval's. A group (MMLU) becomes one task per subject. Writing wrappers
also lets one `TaskManager(include_defaults=False)` load them in no time, instead of indexing every
built-in task (about 15 s per process).

A local file is checked before anything runs (`check_local_data`, before a model is loaded or trained):
a missing or empty file, a line that is not JSON, a row that lacks a field the task reads or whose
answer is not among its options is one error naming the file, the line and what is wrong; lm-eval itself
would stop at the first bad row with a template traceback that names neither.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.evaluation.benchmarks import BenchmarkSpec
from faco.config.schema import ConfigError
from faco.data.items import json_object

PREFIX = "faco_"  # faco's wrapper tasks never shadow lm-eval's own names
SPLIT_KEYS = {"train": "training_split", "validation": "validation_split", "test": "test_split"}


class Function(str):
    """A `!function module.name` reference in a written task YAML (lm-eval imports it by name)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Function, lambda dumper, value: dumper.represent_scalar("!function", str(value)))


class BenchmarkDataError(ConfigError):
    """A local benchmark file that cannot be used; names the file, the row and the field."""


@dataclass(frozen=True)
class Answer:
    """Where a multiple-choice row holds its gold answer and what that answer must be one of, as the
    lm-eval task reads it (its `doc_to_target`): a dotted path into the row, and either a path to the
    row's own option labels or the task's fixed ones."""

    label: str  # the gold answer: "answerKey", "targets.0"
    among: str | tuple[Any, ...]  # a path to a list in the row ("choices.label"), or the fixed labels
    index: bool = False  # the answer is a position in `among` (an int or a digit string), not one of its values


# per multiple-choice benchmark; kept out of BenchmarkSpec, whose fields are part of the evaluation cache key
ANSWERS = {
    "arc_challenge": Answer("answerKey", "choices.label"),
    "arc_easy": Answer("answerKey", "choices.label"),
    "mmlu": Answer("answer", "choices", index=True),
    "hellaswag": Answer("label", "endings", index=True),
    "piqa": Answer("label", (0, 1)),
    "copa": Answer("label", (0, 1)),
    "openbookqa": Answer("answerKey", "choices.label"),
    "winogrande": Answer("answer", ("1", "2")),
    "boolq": Answer("label", (0, 1)),
    "bigbench_conceptual_combinations": Answer("targets.0", "multiple_choice_targets"),
    "bigbench_elementary_math_qa": Answer("targets.0", "multiple_choice_targets"),
    "bigbench_logical_deduction": Answer("targets.0", "multiple_choice_targets"),
    "mathqa": Answer("correct", ("a", "b", "c", "d", "e")),
    "logiqa": Answer("label", ("a", "b", "c", "d")),
}


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


def check_local_data(specs: Sequence[BenchmarkSpec], data_dir: Path) -> None:
    """Check every local file the benchmarks `specs` read under `data_dir` (DIR/<benchmark>/<split>.jsonl),
    so that bad data is one error naming the file and line before any model is loaded or trained,
    not a template traceback in the middle of an evaluation."""
    for spec in specs:
        local_rows(spec, local_splits(spec, data_dir))


def local_rows(spec: BenchmarkSpec, files: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """The checked rows of every local split of `spec` (a group's: of subjects lm-eval knows)."""
    by_split = {split: read_rows(spec, path) for split, path in files.items()}
    if spec.subtasks:
        subjects = subtask_files(spec)
        unknown = sorted({row["subject"] for row in by_split[spec.split]} - set(subjects))
        if unknown:
            raise BenchmarkDataError(f"{files[spec.split]}: unknown {spec.name} subject(s) {unknown}; "
                                     f"known: {sorted(subjects)}")
    return by_split


def read_rows(spec: BenchmarkSpec, path: Path) -> list[dict[str, Any]]:
    """Rows of a local file, each checked for the fields the task reads and (multiple choice) for an
    answer among its options; errors name the file and the line (blank lines count)."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: JSON strings may hold U+2028
    except UnicodeDecodeError as error:
        raise BenchmarkDataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            rows.append(_checked_row(spec, f"{path}: line {number}", line))
    if not rows:
        raise BenchmarkDataError(f"{path}: no rows (benchmark {spec.name!r} needs one JSON object per line)")
    return rows


def _checked_row(spec: BenchmarkSpec, where: str, line: str) -> dict[str, Any]:
    row = json_object(line, where, BenchmarkDataError)
    missing = [name for name in spec.fields if name not in row]
    if missing:
        raise BenchmarkDataError(f"{where} has no field {missing[0]!r} "
                                 f"(benchmark {spec.name!r} rows need {list(spec.fields)})")
    if spec.name in ANSWERS:
        _check_answer(ANSWERS[spec.name], row, where)
    return row


def _check_answer(answer: Answer, row: dict[str, Any], where: str) -> None:
    """The gold answer must be one of the options, as lm-eval's `doc_to_target` looks it up."""
    label = _pick(row, answer.label, where)
    options = list(answer.among) if isinstance(answer.among, tuple) else _pick(row, answer.among, where)
    if not isinstance(options, list):
        raise BenchmarkDataError(f"{where}: {answer.among} is {options!r}, not a list of options")
    if answer.index:
        if str(label) not in map(str, range(len(options))):
            raise BenchmarkDataError(f"{where}: answer {answer.label} = {label!r} is no position in "
                                     f"{answer.among} {options!r} (0 to {len(options) - 1})")
    elif label not in options:
        raise BenchmarkDataError(f"{where}: answer {answer.label} = {label!r} is not among the options "
                                 f"{options!r}" + ("" if isinstance(answer.among, tuple) else f" ({answer.among})"))


def _pick(row: dict[str, Any], path: str, where: str) -> Any:
    """`row` at a dotted path ("choices.label", "targets.0")."""
    value: Any = row
    for step in path.split("."):
        try:
            value = value[int(step)] if isinstance(value, list) else value[step]
        except (KeyError, IndexError, TypeError, ValueError):
            raise BenchmarkDataError(f"{where} has no {path} (the answer and its options live there)") from None
    return value


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


def write_benchmark_tasks(spec: BenchmarkSpec, out: Path, shots: int, data_dir: Path | None,
                          options: dict[str, Any] | None = None) -> list[str]:
    """Write `spec`'s task file(s) into `out`; returns the lm-eval task names (one per subject of a group,
    or per task of faco's own config: HumanEval's greedy one and, with `options` asking, its sampled one).
    `options` go to faco's own config function (BenchmarkSpec.config), e.g. HumanEval's samples."""
    out.mkdir(parents=True, exist_ok=True)
    local = local_splits(spec, data_dir) if data_dir is not None else None
    rows = local_rows(spec, local) if local is not None else None
    if spec.subtasks:
        return _write_group(spec, out, shots, rows)
    names = []
    for suffix, config in _base_configs(spec, options or {}).items():
        if local is not None:
            config.update(_local_dataset(spec, {split: path.resolve() for split, path in local.items()}))
        names.append(_write(out, spec, suffix, config, shots))
    return names


def _base_configs(spec: BenchmarkSpec, options: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    """Task configs by name suffix (None: the benchmark's own name)."""
    if spec.config:  # faco's own task configs, named by the registry as lm-eval names a `!function`
        module, _, function = spec.config.partition(":")
        return getattr(importlib.import_module(module), function)(**options)
    if options:
        raise ConfigError(f"benchmark {spec.name!r} is lm-eval's own task: it takes no options, got {sorted(options)}")
    config: dict[str, Any] = {"include": str(task_file(spec.task))}
    if spec.hub_dataset:
        config.update(dataset_path=spec.hub_dataset, dataset_name=None)
    return {None: config}


def _local_dataset(spec: BenchmarkSpec, files: dict[str, Path]) -> dict[str, Any]:
    return {"dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
            **_split_keys(spec, list(files))}


def _write_group(spec: BenchmarkSpec, out: Path, shots: int, by_split: dict[str, list[dict[str, Any]]] | None
                 ) -> list[str]:
    """One task per subject; offline, per-subject files are cut from DIR/<group>/<split>.jsonl by `subject`."""
    subjects = subtask_files(spec)
    if by_split is None:
        return [_write(out, spec, subject, {"include": str(path)}, shots) for subject, path in subjects.items()]
    present = sorted({row["subject"] for row in by_split[spec.split]})
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
