"""Which benchmarks a name stands for, the same way for the world's domains and the registry's benchmarks:
the groups (in-domain, held-out, all), the experiments' parametrization, and chance accuracy. Nothing
here computes a cached artefact, so no stage key covers it.
"""

from __future__ import annotations

from typing import Any

from faco.config.schema import ConfigError
from faco.evaluation.benchmarks import BenchmarkSpec, get, resolve

# Benchmark groups: the training domains' benchmarks, the rest, both (besides single benchmarks).
INDOMAIN, HELDOUT, ALL = "indomain", "heldout", "all"
GROUPS = (INDOMAIN, HELDOUT)


def _registry_specs(preset: Any) -> list[BenchmarkSpec]:
    return resolve(preset.evaluation.benchmarks)


def benchmark_choices(preset: Any) -> dict[str, list[str]]:
    """What the experiments are parametrized over, the same way for both kinds of benchmark:
    `benchmark` (groups and single benchmarks), `group` and `heldout` (where lying is asked)."""
    if not preset.evaluation.benchmarks:
        world = preset.world
        return {"benchmark": [*GROUPS, *(d.name for d in world.domains)], "group": list(GROUPS),
                "heldout": [HELDOUT, *world.heldout_domains]}
    specs = _registry_specs(preset)
    outside = [s.name for s in specs if not s.in_domain and s.multiple_choice]
    groups = [g for g in GROUPS if group_members(preset, g)]
    return {"benchmark": [*groups, *(s.name for s in specs)], "group": groups, "heldout": outside}


def group_members(preset: Any, group: str) -> tuple[str, ...]:
    """The benchmarks `group` stands for; a single benchmark's name stands for itself."""
    if not preset.evaluation.benchmarks:
        world = preset.world
        members = {INDOMAIN: world.training_domains, HELDOUT: world.heldout_domains,
                   ALL: world.training_domains + world.heldout_domains}
        return members[group] if group in members else (world.domain(group).name,)
    specs = _registry_specs(preset)
    members = {INDOMAIN: tuple(s.name for s in specs if s.in_domain),
               HELDOUT: tuple(s.name for s in specs if not s.in_domain),
               ALL: tuple(s.name for s in specs)}
    if group in members:
        return members[group]
    if group not in members[ALL]:
        raise ConfigError(f"benchmark {group!r} is not in this preset's {list(members[ALL])}")
    return (group,)


def chance(preset: Any, benchmark: str) -> float | None:
    """Chance accuracy on `benchmark` or group: the world's 1 / options, a registry benchmark's own; None
    where it has none (generation) or its members differ."""
    if not preset.evaluation.benchmarks:
        return 1 / preset.world.options
    rates = {get(name).chance for name in group_members(preset, benchmark)}
    return rates.pop() if len(rates) == 1 else None
