"""Presets as TOML files: the built-in ones live beside this module (tiny.toml, smoke.toml, ...), a
user's own anywhere (`--faco-preset path/to/study.toml`).

A file maps 1:1 onto `faco.config.Preset`: a table is a dataclass, an array of tables (or of inline
tables) a tuple of dataclasses, a key left out keeps the field's default, and "none" sets an optional
field to None (TOML has no null). The loader walks the dataclasses' fields and type hints, so a field
added to any config later loads without a change here. A wrong key or type is one ConfigError that
names the file and the field.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from faco.config import ConfigError, Preset

BUILTIN = Path(__file__).parent
NONE = "none"  # TOML has no null: this string sets an optional field to None, as `--faco-set` does


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
        return build(Preset, data, "")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def build(cls: type, data: Any, where: str) -> Any:
    """An instance of dataclass `cls` from a TOML table; `where` is the table's dotted path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'preset'}: expected a table, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key; known here: {sorted(fields)}")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or 'preset'}: missing key {missing[0]!r}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: convert(hints[name], value, _join(where, name)) for name, value in data.items()})


def convert(hint: Any, value: Any, where: str) -> Any:
    """`value` (as TOML parsed it) checked against, and turned into, the type `hint`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if (value is None or value == NONE) and type(None) in args:  # None: from a JSON spec (faco.launch)
            return None
        errors = []
        for member in (a for a in args if a is not type(None)):
            try:
                return convert(member, value, where)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is tuple:
        _expect(isinstance(value, list), "an array", value, where)
        kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        _expect(len(kinds) == len(value), f"{len(kinds)} values", value, where)
        return tuple(convert(kind, item, f"{where}[{index}]") for index, (kind, item) in enumerate(zip(kinds, value)))
    if hint is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), "a number", value, where)
        return float(value)  # 0 and 0.0 key apart in the cache: a float field always holds a float
    if hint in (int, str, bool):
        exact = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))  # True is no int here
        _expect(exact, hint.__name__, value, where)
    return value


def _expect(ok: bool, what: str, value: Any, where: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: expected {what}, got {type(value).__name__} {value!r}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
