"""The benchmark catalogue: the paper's benchmarks as data (`benchmarks.yaml`), loaded into typed specs.

One place says, per benchmark, which lm-eval task scores it, with how many shots, which metric faco
reports, what chance is and which split a local file replaces. Evaluation, the experiments'
parametrization and `faco evaluate` all read it; an unknown name is an error that lists the known ones.

    from faco.evaluation.benchmarks import resolve
    specs = resolve("paper")            # every benchmark, in the paper's order
    specs = resolve("arc_easy,boolq")   # some
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from faco.config.schema import ConfigError

CATALOGUE = Path(__file__).with_name("benchmarks.yaml")
KINDS = ("multiple_choice", "loglikelihood", "generation")
CATEGORIES = ("world knowledge", "language understanding", "commonsense reasoning", "reading comprehension",
              "symbolic problem solving", "programming")
ALL = "paper"  # the name that selects every benchmark


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str  # faco's name: the experiments' ids (`-k arc_easy`) and the local data directory
    task: str  # lm-eval task or group whose prompt, few-shot sampling and metrics score it
    shots: int  # the paper's few-shot count
    metric: str  # the lm-eval metric faco reports
    kind: str  # one of KINDS: how per-question records are read
    category: str  # the paper's grouping (one of CATEGORIES)
    split: str  # the split lm-eval evaluates; offline, DIR/<name>/<split>.jsonl replaces it
    fields: tuple[str, ...]  # what a local row must hold (the hub dataset's schema, as the task reads it)
    chance: float | None = None  # multiple choice: 1 / options (the lying finding's line)
    fewshot_split: str | None = None  # where few-shot examples come from when the task names a split
    subtasks: str | None = None  # a group: a glob of its subtasks' YAML files under lm-eval's tasks/
    hub_dataset: str | None = None  # the hub dataset, where it is not the one lm-eval's task names
    code_execution: bool = False  # runs generated code: only with an explicit opt-in
    # "module:function" of faco's own task config, in place of lm-eval's task file (HumanEval); the benchmarks
    # stage's key covers that module only where an evaluation runs this benchmark
    config: str | None = None
    in_domain: bool = False  # a FACO source covers its task: not "outside the training domain" (lying)
    note: str = ""  # where faco departs from the paper, and why

    def __post_init__(self) -> None:
        where = f"benchmark {self.name!r}"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: unknown kind {self.kind!r}; known: {KINDS}")
        if self.category not in CATEGORIES:
            raise ConfigError(f"{where}: unknown category {self.category!r}; known: {CATEGORIES}")
        if self.shots < 0:
            raise ConfigError(f"{where}: shots must be >= 0, got {self.shots}")
        if (self.kind == "multiple_choice") != (self.chance is not None):
            raise ConfigError(f"{where}: chance is given for multiple choice, and only there")
        if self.chance is not None and not 0 < self.chance < 1:
            raise ConfigError(f"{where}: chance must be in (0, 1), got {self.chance}")
        object.__setattr__(self, "fields", tuple(self.fields))

    @property
    def multiple_choice(self) -> bool:
        return self.kind == "multiple_choice"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, BenchmarkSpec]:
    """Every benchmark in `benchmarks.yaml`, by name, in file order (the paper's)."""
    return load_catalogue(CATALOGUE)


def load_catalogue(path: Path) -> dict[str, BenchmarkSpec]:
    """The benchmarks of a catalogue file; a wrong entry is a ConfigError naming the file and the benchmark."""
    try:
        entries = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a mapping of benchmark name -> spec")
    known = {f.name for f in fields(BenchmarkSpec)} - {"name"}
    specs = {}
    for name, entry in entries.items():
        unknown = set(entry) - known if isinstance(entry, dict) else {"<not a mapping>"}
        if unknown:
            raise ConfigError(f"{path}: benchmark {name!r}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        try:
            specs[name] = BenchmarkSpec(name=name, **entry)
        except TypeError as error:  # a required field missing
            raise ConfigError(f"{path}: benchmark {name!r}: {error}") from None
    return specs


def get(name: str) -> BenchmarkSpec:
    specs = catalogue()
    if name not in specs:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(specs)} (or {ALL!r} for all)")
    return specs[name]


def resolve(selection: str | tuple[str, ...] | list[str]) -> list[BenchmarkSpec]:
    """Specs for "paper" (all), "a,b" or a list of names; unknown or repeated names are errors."""
    names = selection.split(",") if isinstance(selection, str) else list(selection)
    names = [name.strip() for name in names if name.strip()]
    if names == [ALL]:
        return list(catalogue().values())
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmarks {names}: a benchmark is named twice")
    if not names:
        raise ConfigError(f"no benchmark selected; known: {', '.join(catalogue())} (or {ALL!r} for all)")
    return [get(name) for name in names]


def shots(specs: list[BenchmarkSpec], num_fewshot: int | None) -> dict[str, int]:
    """Shots per benchmark: the paper's own, or `num_fewshot` for every one."""
    return {spec.name: spec.shots if num_fewshot is None else num_fewshot for spec in specs}


def describe(spec: BenchmarkSpec) -> dict[str, Any]:
    """The spec as a plain dict (reports, provenance)."""
    return {f.name: getattr(spec, f.name) for f in fields(spec)}
