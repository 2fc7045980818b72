"""What the report page (faco.report.html) and its figures (faco.report.figures) share: a run's stored results
(`Run`), the questions they ask of it (which bases, benchmarks, chance rate), and HTML number formatting.

Kept apart so the figures need not import the page that embeds them.
"""

from __future__ import annotations

import html
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faco.findings.registry import spec
from faco.evaluation.groups import GROUPS



@dataclass(frozen=True)
class Run:
    """One run's stored results: findings by id and, when recorded, provenance."""

    name: str
    findings: dict[str, dict[str, Any]]
    provenance: dict[str, Any] | None
    provenance_note: str  # why provenance is None ("not recorded", "not valid JSON ...")
    written: datetime  # when findings.json was last written
    answers: dict[str, Any] = field(default_factory=dict)  # Table 2: answers.json, {base: [question rows]}
    skipped: dict[str, str] = field(default_factory=dict)  # skipped.json: {finding: why its tests skipped}

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [record for _, record in sorted(self.findings.items()) if record["finding"] == kind]

    @property
    def info(self) -> dict[str, Any]:
        """{preset, seeds, items} as the experiments recorded them."""
        return next(iter(self.findings.values()), {}).get("run") or {}

    @property
    def config(self) -> dict[str, Any]:
        return (self.provenance or {}).get("config") or {}


# --- what a run holds ------------------------------------------------------------------------------

def bases(run: Run) -> list[str]:
    """Bases weakest first, as presets list them; without a recorded config, by what they know."""
    names = {r["base"] for r in run.findings.values() if isinstance(r.get("base"), str)}
    configured = [b.get("name") for b in run.config.get("bases", [])]
    knows = {b: _mean([r.get("accuracy") for r in run.of("knowledge") if r.get("base") == b]) for b in names}
    rest = sorted(names - set(configured), key=lambda b: (knows[b] if knows[b] is not None else math.inf, b))
    return [b for b in configured if b in names] + rest


def benchmarks(run: Run, records: list[dict[str, Any]]) -> list[str]:
    """Groups first (indomain, heldout), then domains in the world's order (else alphabetical)."""
    names = {r["benchmark"] for r in records if isinstance(r.get("benchmark"), str)}
    domains = [d.get("name") for d in run.config.get("world", {}).get("domains", [])]
    order = {name: i for i, name in enumerate([*GROUPS, *domains])}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def chance(run: Run) -> float | None:
    """The chance rate of the multiple-choice questions, as the lying records state it."""
    rates = [(r.get("cr100") or {}).get("chance") for r in run.of("lying")]
    return next((rate for rate in rates if rate is not None), None)


def crs(mapping: dict[str, Any], prefix: str = "cr") -> list[tuple[int, Any]]:
    """{"cr0": x, "cr25": y, ...} (or "epoch1", ...) as [(0, x), (25, y), ...] in numeric order."""
    return sorted((int(k.removeprefix(prefix)), v) for k, v in mapping.items() if k.removeprefix(prefix).isdigit())


def _mean(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return sum(numbers) / len(numbers) if numbers else None


def sd(values: list[Any]) -> float:
    numbers = [v for v in values or [] if isinstance(v, (int, float))]
    return statistics.stdev(numbers) if len(numbers) > 1 else 0.0


# --- formatting ------------------------------------------------------------------------------------

esc = html.escape


def num(x: Any, fmt: str = ".3f") -> str:
    return "—" if not isinstance(x, (int, float)) else format(x, fmt)


def pval(p: Any) -> str:
    return "—" if not isinstance(p, (int, float)) else ("&lt;0.001" if p < 0.001 else f"{p:.3f}")


def p_is(p: Any, name: str = "p") -> str:
    """"p = 0.011" or "p < 0.001", for prose."""
    return f"{name} &lt; 0.001" if isinstance(p, (int, float)) and p < 0.001 else f"{name} = {pval(p)}"


def verdict(holds: bool) -> str:
    return '<span class="holds">holds</span>' if holds else '<span class="fails">does not hold</span>'


def count(records: list[dict[str, Any]]) -> str:
    return f"{sum(r['holds'] for r in records)}/{len(records)} hold"


def paper(kind: str) -> str:
    """What the paper found, from the findings registry ("" for a finding it does not declare)."""
    found = spec(kind)
    return found.paper if found else ""


def level(stored: Any, default: str = "") -> str:
    """The label of a stored interval's confidence level ("90% CI"); `default` for records without one."""
    value = stored.get("level") if isinstance(stored, dict) else None
    return f"{value:.0%} CI" if isinstance(value, (int, float)) else default


def missing(kind: str) -> str:
    return (f'<p class="missing">No {kind} findings in this run: '
            f'<code>{esc(command([kind]))}</code> records them.</p>')


def command(kinds: list[str]) -> str:
    """The pytest command that records these findings (a marked experiment's options included)."""
    options = dict.fromkeys(found.options for found in map(spec, kinds) if found and found.options)
    selected = f'-k "{" or ".join(kinds)}"' if len(kinds) > 1 else f"-k {kinds[0]}"
    return " ".join(["pytest experiments", *options, selected])


def seeds_note(run: Run, lead: str = "Error bars:") -> str:
    seeds = run.info.get("seeds") or []
    if len(seeds) > 1:
        return f" {lead} ±1 SD of the per-seed scores over {len(seeds)} seeds."
    return " One seed, so no spread across seeds (<code>--faco-seeds 0,1,2</code> adds it)."
