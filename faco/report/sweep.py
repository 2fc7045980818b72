"""The report's sweep section (`--faco-sweep FIELD=V1,V2,..`): each finding's key number drawn against the
swept field, every point with its interval, and a table of every point with its verdict.

Which findings it draws, and how it reads each one's key number from a record, is the findings registry's
(`FindingSpec.key_number`, faco.findings.registry); what a sweep runs is faco.study.sweep's.
"""

from __future__ import annotations

import math
from typing import Any

from faco.findings import registry
from faco.findings.registry import FindingSpec
from faco.report.common import Run, esc, num
from faco.report.figures import embed, panels

Points = dict[str, list[tuple[float, float | None, list[float]]]]


def points(records: list[dict[str, Any]], finding: FindingSpec) -> Points:
    """{finding id without the axis: [(axis value, key number, interval)]} of one finding, axis sorted."""
    out: dict[str, list] = {}
    for record in records:
        if record.get("finding") != finding.name or "sweep" not in record:
            continue
        read = finding.key_number.read(record)
        if read is not None:
            out.setdefault(record["sweep"]["id"], []).append((record["sweep"]["value"], *read))
    return {key: sorted(rows) for key, rows in sorted(out.items())}


def sweep_section(run: Run) -> str:
    """One panel per finding with a key number, one line per finding id, then every point in a table."""
    records = list(run.findings.values())
    sweeps = {r["sweep"]["field"] for r in records if "sweep" in r}
    if not sweeps:
        return ""
    field = sweeps.pop()
    drawn = {s: points(records, s) for s in registry.FINDINGS if s.key_number}
    drawn = {s: rows for s, rows in drawn.items() if rows}
    fig, axes = panels(len(drawn), cols=2, width=4.6, height=3.2, sharey=False)
    for ax, (finding, by_id) in zip(axes, drawn.items()):
        _panel(ax, finding, by_id, records, field)
    table = "".join(_rows(finding, by_id, records) for finding, by_id in drawn.items())
    return (f'<section id="sweep"><h2>Sweep over {esc(field)}</h2><figure>{embed(fig, "sweep")}<figcaption>'
            "Each finding's key number against the swept field, every point shown (shaded: 90% seed-clustered "
            "interval where the finding records one).</figcaption></figure><table><tr><th>finding</th><th>"
            f"{esc(field)}</th><th>key number</th><th>90% CI</th><th>verdict</th></tr>{table}</table></section>")


def _panel(ax: Any, finding: FindingSpec, by_id: Points, records: list[dict[str, Any]], field: str) -> None:
    """One finding's key number per finding id, its interval shaded, against the dashed reference line."""
    key = finding.key_number
    for finding_id, rows in by_id.items():
        xs = [x for x, _, _ in rows]
        ax.plot(xs, [math.nan if y is None else y for _, y, _ in rows], marker="o",
                label=finding_id.removeprefix(f"{finding.name}-") or finding.name)
        lows, highs = [ci[0] for _, _, ci in rows], [ci[1] for _, _, ci in rows]
        if not all(math.isnan(v) for v in lows):
            ax.fill_between(xs, lows, highs, alpha=0.12)
    line = key.reference_at(next(r for r in records if r.get("finding") == finding.name))
    if line is not None:
        ax.axhline(line, color="grey", lw=0.8, ls="--", label=f"{key.reference} ({line:g})")
    ax.set_title(f"{finding.name}: {key.label}", fontsize=9)
    ax.set_xlabel(field, fontsize=8)
    values = sorted({x for rows in by_id.values() for x, _, _ in rows})
    if len(values) > 2 and field.endswith("lr"):
        ax.set_xscale("log")
        ax.minorticks_off()  # else 3e-4's label overlaps the minor ticks' labels
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.legend(fontsize=6)


def _rows(finding: FindingSpec, by_id: Points, records: list[dict[str, Any]]) -> str:
    """The table's rows of one finding: every point's key number, interval and verdict."""
    verdicts = {(r["sweep"]["id"], r["sweep"]["value"]): r["holds"] for r in records
                if r.get("finding") == finding.name and "sweep" in r}
    return "".join(f"<tr><td>{esc(finding_id)}</td><td>{x:g}</td><td>{num(y)}</td>"
                   f"<td>[{num(ci[0])}, {num(ci[1])}]</td>"
                   f"<td>{'holds' if verdicts[finding_id, x] else 'does not hold'}</td></tr>"
                   for finding_id, pts in by_id.items() for x, y, ci in pts)
