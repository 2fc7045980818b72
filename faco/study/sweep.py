"""A scale sweep: the study once per value of one numeric preset field (`--faco-sweep FIELD=V1,V2,..`),
and the report section that draws each finding's key number against that axis.

Why: a finding that does not hold at one scale may appear at another (the paper's models are 7B, faco's
default has a million parameters). Each point is an ordinary run with one override, cached like any
other, so a sweep that includes the default value reuses the default run's artefacts. The whole sweep is
shown, every point with its interval: a regime is never chosen by its p-value alone.
"""

from __future__ import annotations

import math
from typing import Any

from faco.config.schema import ConfigError, Preset
from faco.config.load import override

# The key number of each finding, as a sweep draws it: (label, how to read it from a record, its interval).
KEY_NUMBERS: dict[str, tuple[str, Any]] = {
    "lying": ("CR-100 accuracy (chance dashed)", lambda r: (r["cr100"]["rate"], _ci(r.get("seed_clustered_ci")))),
    "longer": ("change per epoch at CR 100", lambda r: _per_epoch(r)),
    "recovery": ("regained share of the CR-100 loss", lambda r: (r.get("regained_share"), _ci(None))),
    "sensitivity_majority": ("mean ABS gap, stronger - weaker", lambda r: (r["gap"], _ci(r.get("gap_ci")))),
}


def _ci(stored: Any) -> list[float]:
    """[low, high] of an interval stored as statistics.Interval or as a pair; NaNs where none."""
    if isinstance(stored, dict):
        return [stored["low"], stored["high"]]
    return list(stored) if stored else [math.nan, math.nan]


def _per_epoch(record: dict[str, Any]) -> tuple[float, list[float]]:
    epochs = max(1, len(record["scores"]) - 1)
    return record["change"] / epochs, [v / epochs for v in _ci(record.get("change_ci"))]


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


def points(records: list[dict[str, Any]], kind: str) -> dict[str, list[tuple[float, float, list[float]]]]:
    """{finding id without the axis: [(axis value, key number, interval)]} for one kind, axis sorted."""
    read = KEY_NUMBERS[kind][1]
    out: dict[str, list] = {}
    for record in records:
        if record.get("finding") != kind or "sweep" not in record:
            continue
        if kind == "longer" and record.get("ratio") != 100:
            continue
        value, interval = read(record)
        out.setdefault(record["sweep"]["id"], []).append((record["sweep"]["value"], value, interval))
    return {key: sorted(rows) for key, rows in sorted(out.items())}


def section(findings: dict[str, dict[str, Any]]) -> str:
    """The report's sweep section: one panel per finding kind, one line per finding id, and a table of
    every point with its interval and verdict."""
    from faco.report.figures import chance_line, embed, panels
    from faco.report.common import esc, num

    records = list(findings.values())
    sweeps = {r["sweep"]["field"] for r in records if "sweep" in r}
    if not sweeps:
        return ""
    field = sweeps.pop()
    kinds = [k for k in KEY_NUMBERS if points(records, k)]
    fig, axes = panels(len(kinds), cols=2, width=4.6, height=3.2, sharey=False)
    for ax, kind in zip(axes, kinds):
        for finding_id, rows in points(records, kind).items():
            xs = [x for x, _, _ in rows]
            ys = [math.nan if y is None else y for _, y, _ in rows]
            ax.plot(xs, ys, marker="o", label=finding_id.removeprefix(f"{kind}-") or kind)
            lows = [ci[0] for _, _, ci in rows]
            highs = [ci[1] for _, _, ci in rows]
            if not all(math.isnan(v) for v in lows):
                ax.fill_between(xs, lows, highs, alpha=0.12)
        if kind == "lying":
            chance_line(ax, next((r["cr100"]["chance"] for r in records if r.get("finding") == "lying"), None))
        else:
            ax.axhline(0 if kind != "recovery" else 0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{kind}: {KEY_NUMBERS[kind][0]}", fontsize=9)
        ax.set_xlabel(field, fontsize=8)
        values = sorted({x for rows in points(records, kind).values() for x, _, _ in rows})
        if len(values) > 2 and field.endswith("lr"):
            ax.set_xscale("log")
            ax.minorticks_off()  # else 3e-4's label overlaps the minor ticks' labels
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.legend(fontsize=6)
    rows = []
    for kind in kinds:
        for finding_id, pts in points(records, kind).items():
            for x, y, ci in pts:
                holds = next(r["holds"] for r in records if r.get("sweep", {}).get("id") == finding_id
                             and r["sweep"]["value"] == x and r["finding"] == kind)
                rows.append(f"<tr><td>{esc(finding_id)}</td><td>{x:g}</td><td>{num(y)}</td>"
                            f"<td>[{num(ci[0])}, {num(ci[1])}]</td><td>{'holds' if holds else 'does not hold'}</td></tr>")
    table = ("<table><tr><th>finding</th><th>" + esc(field) + "</th><th>key number</th><th>90% CI</th>"
             "<th>verdict</th></tr>" + "".join(rows) + "</table>")
    return (f'<section id="sweep"><h2>Sweep over {esc(field)}</h2><figure>{embed(fig, "sweep")}<figcaption>'
            "Each finding's key number against the swept field, every point shown (shaded: 90% seed-clustered "
            "interval where the finding records one).</figcaption></figure>" + table + "</section>")
