"""A scale sweep: the study once per value of one numeric preset field (`--faco-sweep FIELD=V1,V2,..`).
This module plans it (the field and values, the preset at each point); the report section that draws each
finding's key number against the axis is faco.report.sweep, the key numbers are the findings registry's.

Why: a finding that does not hold at one scale may appear at another (the paper's models are 7B, faco's
default has a million parameters). Each point is an ordinary run with one override, cached like any
other, so a sweep that includes the default value reuses the default run's artefacts. The whole sweep is
shown, every point with its interval: a regime is never chosen by its p-value alone.
"""

from __future__ import annotations

from typing import Any

from faco.config.load import override
from faco.config.schema import ConfigError, Preset


def parse(preset: Preset, text: str) -> tuple[str, list[str]]:
    """FIELD=V1,V2,..: a numeric field (not a list, flag or text) and at least two distinct values, each
    giving a valid preset."""
    field, sep, values_text = text.partition("=")
    values = [v.strip() for v in values_text.split(",") if v.strip()]
    if not sep or len(values) < 2 or len(set(values)) != len(values):
        raise ConfigError(f"--faco-sweep {text!r}: expected FIELD=V1,V2,.. with two or more distinct values, "
                          "e.g. finetune.lr=3e-4,1e-3")
    current: Any = preset
    for name in field.strip().split("."):
        current = getattr(current, name, None)
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise ConfigError(f"--faco-sweep {field.strip()!r}: sweeps a numeric field (int or float), "
                          f"this one holds {current!r}")
    for value in values:
        point(preset, field.strip(), value)  # a wrong value fails here, before any work
    return field.strip(), values


def point(preset: Preset, field: str, value: str) -> Preset:
    """The preset at one point of a sweep: `field` set to `value`.

    FACO items are facts of the world, so a sweep of `items.per_training_domain` past what the world holds
    grows the world to match (world.facts_per_domain = items + held-back facts); points the world already
    holds keep it, and with it the pre-training run they share.
    """
    if field == "items.per_training_domain" and preset.items.source == "world":
        try:
            needed = int(value) + preset.evaluation.heldback_per_domain
        except ValueError:  # not a whole number: the override below says so
            needed = 0
        if needed > preset.world.facts_per_domain:
            preset = override(preset, f"world.facts_per_domain={needed}")
    return override(preset, f"{field}={value}")
