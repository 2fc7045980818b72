"""Presets as TOML files: the built-in ones live beside this module (tiny.toml, smoke.toml, ...), a
user's own anywhere (`--faco-preset path/to/study.toml`).

A file maps 1:1 onto `faco.config.schema.Preset`: a table is a dataclass, an array of tables (or of inline
tables) a tuple of dataclasses, a key left out keeps the field's default, and "none" sets an optional
field to None (TOML has no null). The loader walks the dataclasses' fields and type hints, so a field
added to any config later loads without a change here. A wrong key or type is one ConfigError that
names the file and the field.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from faco.config.schema import ConfigError, Preset, build
from faco.data.sources import SOURCES
from faco.evaluation.benchmarks import resolve

BUILTIN = Path(__file__).parent / "presets"


def builtin() -> list[str]:
    """Names of the presets shipped with faco."""
    return sorted(path.stem for path in BUILTIN.glob("*.toml"))


def locate(name_or_path: str) -> Path:
    """The file of a built-in preset name, or `name_or_path` itself when it names a TOML file."""
    if name_or_path in builtin():
        return BUILTIN / f"{name_or_path}.toml"
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".toml":
        raise ConfigError(f"preset file {path} does not exist")
    raise ConfigError(f"unknown preset {name_or_path!r}; known presets: {builtin()}, or a path to a .toml file")


def load(name_or_path: str) -> Preset:
    """The preset named `name_or_path` (built-in) or in that file, validated."""
    path = locate(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return check(build(Preset, data, ""))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def check(preset: Preset) -> Preset:
    """`preset`, once the names it gives are known to the registries they name (the schema checks values
    only; it imports nothing of faco): an unknown source or benchmark fails here, listing the known ones."""
    spec = preset.items.build
    unknown = [name for name in spec.sources if name not in SOURCES] if spec else []
    if unknown:
        raise ConfigError(f"items.build.sources: unknown or none {unknown}; known: {list(SOURCES)}")
    if preset.evaluation.benchmarks:
        resolve(preset.evaluation.benchmarks)
    return preset


def tiny(seed: int = 0) -> Preset:
    """The embedded default (faco/config/presets/tiny.toml): CPU minutes, no network; what CI runs."""
    return load_preset("tiny", seed)


def smoke(seed: int = 0) -> Preset:
    """Seconds, not minutes (faco/config/presets/smoke.toml): the same code path on a toy world, for tests."""
    return load_preset("smoke", seed)


def load_preset(name: str, seed: int | None = None) -> Preset:
    """The built-in preset `name` (faco/config/presets/<name>.toml) or the TOML file at path `name`, with its seed
    replaced when `seed` is given."""
    preset = load(name)
    return preset if seed is None else preset.replace(seed=seed)


# Fields an override may not change, and what to do instead: each names a thing the run's baseline,
# reports or cache are laid out by, so changing it through --faco-set would file results under a lie.
FIXED_FIELDS = {
    "name": "a preset's name picks its baseline; choose a preset with --faco-preset",
    "bases": "the bases are set in a preset; where a real base's weights lie: bases.NAME.checkpoint=PATH",
    "world.domains": "the domains are set in a preset",
    "items.source": "train on a built dataset with --faco-items DIR",
    "seed": "choose seeds with --faco-seed or --faco-seeds",
    "seeds": "choose seeds with --faco-seed or --faco-seeds",
}


def override(preset: Preset, assignment: str) -> Preset:
    """`preset` with one dotted field replaced, e.g. "finetune.epochs=2" or "corruption.ratios=0,50,100".

    The text is parsed as the type the field holds now; the new preset is validated like any other.
    """
    path, sep, text = assignment.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"override {assignment!r}: expected FIELD=VALUE, e.g. finetune.epochs=2")
    parts = path.strip().split(".")
    if len(parts) == 3 and parts[0] == "bases" and parts[2] == "checkpoint":
        return _replace_checkpoint(preset, parts[1], text.strip())
    fixed = next((why for field_path, why in FIXED_FIELDS.items()
                  if path.strip() == field_path or path.strip().startswith(field_path + ".")), None)
    if fixed:
        raise ConfigError(f"override {path.strip()!r}: cannot be overridden ({fixed})")
    names = path.strip().split(".")
    return check(_replace_path(preset, names, text.strip(), path.strip()))


def _replace_checkpoint(preset: Preset, name: str, checkpoint: str) -> Preset:
    """Where a real base's weights come from (a directory, hub id, .gguf or package: file), e.g. a local
    copy of a hub model offline. Bases pre-trained by faco have no checkpoint to point elsewhere."""
    spec = preset.base(name)
    if spec.checkpoint is None:
        raise ConfigError(f"override 'bases.{name}.checkpoint': base {name!r} is pre-trained by faco "
                          "(pretrain_steps), not loaded from a checkpoint")
    if not checkpoint:
        raise ConfigError(f"override 'bases.{name}.checkpoint': expected a directory, hub id or .gguf file")
    bases = tuple(dataclasses.replace(b, checkpoint=checkpoint) if b.name == name else b for b in preset.bases)
    return preset.replace(bases=bases)


def _replace_path(obj: Any, names: list[str], text: str, path: str) -> Any:
    name = names[0]
    if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
        known = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
        raise ConfigError(f"override {path!r}: unknown field {name!r}; known here: {known}")
    current = getattr(obj, name)
    if len(names) > 1:
        value = _replace_path(current, names[1:], text, path)
    elif text.lower() in ("none", "null") and "None" in str(obj.__dataclass_fields__[name].type):
        value = None
    else:
        value = _parse(current, text, path)
    return dataclasses.replace(obj, **{name: value})


def _parse(current: Any, text: str, path: str) -> Any:
    if isinstance(current, tuple) and current and dataclasses.is_dataclass(current[0]):
        raise ConfigError(f"override {path!r}: a list of {type(current[0]).__name__} is set in a preset, not here")
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        if current is None:  # an unset optional field: the ones in these presets hold ints or paths
            return int(text) if text.lstrip("-").isdigit() else text
        return type(current)(text)
    except ValueError:
        raise ConfigError(f"override {path!r}: {text!r} is not a valid {type(current).__name__}") from None
