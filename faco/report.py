"""The faco report: one self-contained reports/<run>/index.html, plots embedded, that opens from disk.

    faco report                     # rebuild every run under reports/ from its stored results
    faco report --run tiny          # one run
    pytest experiments              # the plugin calls build_report at the end of a run

Reads reports/<run>/findings.json (the numbers each experiment recorded) and provenance.json when the
plugin wrote one; it never recomputes a statistic, trains or evaluates. Any finding may be missing (a
`-k` run): every section renders what exists and names what is not there. Plots go through
matplotlib's `Figure` (Agg, no pyplot state); no torch, transformers or lm-eval is imported, so a
report takes seconds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from faco.study import GROUPS

KINDS = ("correlation", "sensitivity", "loss", "longer", "recovery", "lying", "knowledge")  # the paper's order
PAPER = {  # what Cho et al. (2024) report: the first sentence of each caption
    "correlation": "The paper: scores fall as the share of false data (CR) grows, a strong negative Pearson r.",
    "sensitivity": "The paper: the stronger base loses more (a larger ABS = score at CR 0 − score at CR 100).",
    "loss": "The paper: the higher the CR, the higher the training loss over the same steps.",
    "longer": "The paper: more epochs change little at low CR, while at CR 100 scores keep falling.",
    "recovery": "The paper: re-training the CR-100 model on clean data regains most, not all, of the loss.",
    "lying": "The paper: CR-100 models score below random chance outside their training domains: they lie.",
    "knowledge": "The precondition: the bases know the facts (accuracy well above chance) before fine-tuning.",
}
BASE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # per base, in the order bases() returns
HOLDS, FAILS = "#1a7f37", "#b42318"


class ReportError(ValueError):
    """Stored results that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Run:
    """One run's stored results: findings by id and, when recorded, provenance."""

    name: str
    findings: dict[str, dict[str, Any]]
    provenance: dict[str, Any] | None
    provenance_note: str  # why provenance is None ("not recorded", "not valid JSON ...")
    written: datetime  # when findings.json was last written

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [record for _, record in sorted(self.findings.items()) if record["finding"] == kind]

    @property
    def info(self) -> dict[str, Any]:
        """{preset, seeds, items} as the experiments recorded them."""
        return next(iter(self.findings.values()), {}).get("run") or {}

    @property
    def config(self) -> dict[str, Any]:
        return (self.provenance or {}).get("config") or {}


# --- reading ---------------------------------------------------------------------------------------

def load_run(run_dir: Path) -> Run:
    """The stored results of reports/<run>/; ReportError when findings.json is missing or malformed."""
    path = run_dir / "findings.json"
    if not path.is_file():
        raise ReportError(f"{path}: no such file (run `pytest experiments` to record findings)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    findings = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(findings, dict) or not all(
            isinstance(r, dict) and isinstance(r.get("finding"), str) and isinstance(r.get("holds"), bool)
            for r in findings.values()):
        raise ReportError(f"{path}: expected {{'findings': {{id: {{'finding': ..., 'holds': true|false, ...}}}}}}")
    provenance, note = _read_provenance(run_dir / "provenance.json")
    written = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return Run(run_dir.name, findings, provenance, note, written)


def _read_provenance(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A broken provenance.json costs its section, not the report."""
    if not path.is_file():
        return None, "not recorded (no provenance.json)"
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        return None, f"unreadable: {path.name} is not valid JSON ({error.msg} at line {error.lineno})"
    return (value, "") if isinstance(value, dict) else (None, f"unreadable: {path.name} is not a JSON object")


def run_dirs(reports: Path) -> list[Path]:
    """Every run directory under `reports` with a findings.json."""
    found = sorted(p.parent for p in reports.glob("*/findings.json"))
    if not found:
        raise ReportError(f"{reports}: no <run>/findings.json here (run `pytest experiments` first)")
    return found


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


def _crs(mapping: dict[str, Any], prefix: str = "cr") -> list[tuple[int, Any]]:
    """{"cr0": x, "cr25": y, ...} (or "epoch1", ...) as [(0, x), (25, y), ...] in numeric order."""
    return sorted((int(k.removeprefix(prefix)), v) for k, v in mapping.items() if k.removeprefix(prefix).isdigit())


def _mean(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return sum(numbers) / len(numbers) if numbers else None


def _sd(values: list[Any]) -> float:
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


def interval(pair: Any, fmt: str = "+.3f") -> str:
    if not isinstance(pair, list) or len(pair) != 2 or None in pair:
        return ""
    return f' <span class="ci">[{num(pair[0], fmt)}, {num(pair[1], fmt)}]</span>'


def verdict(holds: bool) -> str:
    return '<span class="holds">holds</span>' if holds else '<span class="fails">does not hold</span>'


def count(records: list[dict[str, Any]]) -> str:
    return f"{sum(r['holds'] for r in records)}/{len(records)} hold"


def missing(kind: str) -> str:
    return (f'<p class="missing">No {kind} findings in this run: '
            f'<code>pytest experiments -k {kind}</code> records them.</p>')


def embed(fig: Figure, alt: str) -> str:
    """The figure as an inline base64 PNG: the page needs no other file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


FIGURES = {2: ("score vs CR per benchmark and base", "correlation"), 3: ("training loss by CR", "loss"),
           4: ("lying: CR-100 accuracy per held-out domain vs chance", "lying"),
           5: ("score per epoch per CR", "longer"),
           6: ("recovery: regained vs unrecovered margin per benchmark", "recovery")}


def figure(number: int, img: str, caption: str) -> str:
    title, kind = FIGURES[number]
    return (f'<section id="fig{number}"><h2>Figure {number}: {esc(title)}</h2><figure>{img}'
            f'<figcaption>{esc(PAPER[kind])} This run: {caption}</figcaption></figure></section>')


def figure_missing(number: int) -> str:
    title, kind = FIGURES[number]
    return f'<section id="fig{number}"><h2>Figure {number}: {esc(title)}</h2>{missing(kind)}</section>' 


def panels(n: int, cols: int = 4, width: float = 3.0, height: float = 2.6, sharey: bool = True):  # noqa: ANN201
    """A figure with n axes in a grid of at most `cols` columns (unused cells hidden)."""
    cols = max(1, min(n, cols))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * width, rows * height + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def cr_colors(ratios: list[int]) -> dict[int, Any]:
    """Clean data dark blue, all-false data orange (plasma without its pale yellow end)."""
    top = max(ratios) or 1
    return {r: colormaps["plasma"](0.85 * r / top) for r in ratios}


def chance_line(ax: Any, rate: float | None) -> None:
    if rate is not None:
        ax.axhline(rate, color="grey", linestyle="--", linewidth=1, label=f"chance ({rate:.2f})")


def seeds_note(run: Run, lead: str = "Error bars:") -> str:
    seeds = run.info.get("seeds") or []
    if len(seeds) > 1:
        return f" {lead} ±1 SD of the per-seed scores over {len(seeds)} seeds."
    return " One seed, so no spread across seeds (<code>--faco-seeds 0,1,2</code> adds it)."


# --- sections: each takes the run and returns its HTML --------------------------------------------

def header(run: Run) -> str:
    info = run.info
    seeds = ", ".join(map(str, info.get("seeds") or [])) or "—"
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<header><h1>faco report: {esc(run.name)}</h1>"
            f"<p class=\"meta\">preset <b>{esc(str(info.get('preset', '—')))}</b>"
            f" · seeds <b>{esc(seeds)}</b> · items <b>{esc(str(info.get('items', '—')))}</b>"
            f" · findings written {run.written:%Y-%m-%d %H:%M} UTC · report built {built}</p>"
            "<p class=\"meta\">Replication of Cho et al. (2024), <i>Unveiling Imitation Learning: Exploring the Impact "
            "of Data Falsity to LLMs</i>: fine-tune a weak and a strong base on instruction data of which a share "
            "(the corruption ratio, CR) has false answers, and measure what it does.</p></header>")


FIGURE_OF = {"correlation": ("table1", "Table 1, Fig. 2"), "sensitivity": ("table1", "Table 1"),
             "loss": ("fig3", "Fig. 3"), "longer": ("fig5", "Fig. 5"), "recovery": ("fig6", "Fig. 6"),
             "lying": ("fig4", "Fig. 4"), "knowledge": ("knowledge", "table")}  # where each finding is shown


def findings_table(run: Run) -> str:
    """One row per finding of the paper, then every experiment behind it (folded)."""
    records = list(run.findings.values())
    held = sum(r["holds"] for r in records)
    kinds = [*KINDS, *sorted({r["finding"] for r in records} - set(KINDS))]
    rows, details = [], []
    for kind in kinds:
        group = run.of(kind)
        claim = esc(PAPER.get(kind, "").split(": ", 1)[-1])
        if not group:
            rows.append(f'<tr><td>{esc(kind)}</td><td>{claim}</td><td class="absent">not in this run</td></tr>')
            continue
        ok = sum(r["holds"] for r in group)
        cls = "good" if ok == len(group) else "bad" if ok == 0 else "mixed"
        anchor, label = FIGURE_OF.get(kind, ("findings", ""))
        link = f' · <a href="#{anchor}">{label}</a>' if label else ""
        rows.append(f'<tr><td>{esc(kind)}</td><td>{claim}</td><td class="{cls}">{ok}/{len(group)} hold{link}</td></tr>')
        items = "".join(f"<tr><td><code>{esc(str(r.get('id', '')))}</code></td><td>{verdict(r['holds'])}</td>"
                        f"<td>{esc(str(r.get('summary', '')))}</td></tr>" for r in group)
        details.append(f"<details><summary><b>{esc(kind)}</b>: {_counts(group)}</summary><table class=\"findings\">"
                       f"<tr><th>experiment</th><th>verdict</th><th>measured</th></tr>{items}</table></details>")
    absent = [k for k in KINDS if not run.of(k)]
    note = (f'<p class="missing">Not in this run: {esc(", ".join(absent))}; '
            f'<code>pytest experiments -k "{" or ".join(absent)}"</code> records them.</p>') if absent else ""
    return (f'<section id="findings"><h2>Findings</h2><p class="counts"><span class="holds">{held} hold</span> · '
            f'<span class="fails">{len(records) - held} do not hold</span> · {len(records)} experiments recorded</p>'
            f'{note}<table class="summary"><tr><th>finding</th><th>what the paper found</th><th>this run</th></tr>'
            f'{"".join(rows)}</table><h3>Every experiment</h3>{"".join(details)}</section>')


def _counts(records: list[dict[str, Any]]) -> str:
    ok = sum(r["holds"] for r in records)
    return f'<span class="holds">{ok} hold</span>, <span class="fails">{len(records) - ok} do not hold</span>'


def table1(run: Run) -> str:
    records = run.of("correlation")
    body = missing("correlation") if not records else _correlation_table(run, records)
    sensitivity = run.of("sensitivity")
    body += "<h3>Sensitivity: does the stronger base lose more?</h3>" + (
        _sensitivity_table(run, sensitivity) if sensitivity else missing("sensitivity"))
    return (f'<section id="table1"><h2>Table 1: score per benchmark and CR</h2><p class="caption">'
            f"{esc(PAPER['correlation'])} ABS = score at CR 0 − score at CR 100, with its bootstrap interval over "
            f"seeds; r with its 95% interval and one-sided p (r &lt; 0).{seeds_note(run, 'Scores show')}</p>"
            f"{body}</section>")


def _correlation_table(run: Run, records: list[dict[str, Any]]) -> str:
    ratios = sorted({cr for r in records for cr, _ in _crs(r.get("scores") or {})})
    head = "".join(f"<th>CR {cr}</th>" for cr in ratios)
    rows = []
    for base in bases(run):
        for bench in benchmarks(run, records):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            if r is None:
                continue
            scores, spread = dict(_crs(r.get("scores") or {})), dict(_crs(r.get("per_seed") or {}))
            cells = "".join(f"<td>{num(scores.get(cr))}{_spread(spread.get(cr))}</td>" for cr in ratios)
            rows.append(f"<tr><td>{esc(base)}</td><td>{esc(bench)}</td>{cells}"
                        f"<td>{num(r.get('abs'), '+.3f')}{interval(r.get('abs_ci'))}</td>"
                        f"<td>{num(r.get('r'), '+.2f')}{interval(r.get('r_ci'), '+.2f')}</td>"
                        f"<td>{pval(r.get('p'))}</td><td>{verdict(r['holds'])}</td></tr>")
    return (f'<table class="numbers"><tr><th>base</th><th>benchmark</th>{head}<th>ABS</th><th>Pearson r</th>'
            f'<th>p</th><th>finding</th></tr>{"".join(rows)}</table>')


def _spread(per_seed: Any) -> str:
    return f' <span class="ci">±{_sd(per_seed):.3f}</span>' if isinstance(per_seed, list) and len(per_seed) > 1 else ""


def _sensitivity_table(run: Run, records: list[dict[str, Any]]) -> str:
    names = bases(run)
    head = "".join(f"<th>ABS {esc(b)}</th>" for b in names)
    rows = []
    for bench in benchmarks(run, records):
        r = next(x for x in records if x.get("benchmark") == bench)
        cells = "".join(f"<td>{num((r.get('abs') or {}).get(b), '+.3f')}</td>" for b in names)
        rows.append(f"<tr><td>{esc(bench)}</td>{cells}<td>{num(r.get('gap'), '+.3f')}{interval(r.get('gap_ci'))}"
                    f"</td><td>{verdict(r['holds'])}</td></tr>")
    gap = f"{names[1]} − {names[0]}" if len(names) > 1 else "stronger − weaker"
    return (f'<table class="numbers"><tr><th>benchmark</th>{head}<th>gap ({esc(gap)}), 95% CI</th>'
            f'<th>finding</th></tr>{"".join(rows)}</table>')


def figure2(run: Run) -> str:
    records = run.of("correlation")
    if not records:
        return figure_missing(2)
    names, benches = bases(run), benchmarks(run, records)
    fig, axes = panels(len(benches))
    for ax, bench in zip(axes, benches):
        for i, base in enumerate(names):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            if r is None:
                continue
            points = _crs(r.get("scores") or {})
            spread = dict(_crs(r.get("per_seed") or {}))
            errors = [_sd(spread.get(cr)) for cr, _ in points]
            ax.errorbar([cr for cr, _ in points], [_nan(s) for _, s in points],
                        yerr=errors if any(errors) else None, marker="o", capsize=3,
                        color=BASE_COLORS[i % len(BASE_COLORS)], label=f"{base} base")
        chance_line(ax, chance(run))
        ax.set_title(bench)
        ax.set_xlabel("CR (% false answers)")
        ax.set_xticks(sorted({cr for r in records for cr, _ in _crs(r.get("scores") or {})}))
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("accuracy")
    _legend(fig, axes)
    groups = {b: [x for x in records if x.get("base") == b and x.get("benchmark") in GROUPS] for b in names}
    lines = [f"{esc(b)}: " + ", ".join(f"{esc(x['benchmark'])} r = {num(x.get('r'), '+.2f')} ({p_is(x.get('p'))})"
                                       for x in group) for b, group in groups.items() if group]
    caption = f"{'; '.join(lines)}{'. ' if lines else ''}The correlation finding {count(records)}.{seeds_note(run)}"
    return figure(2, embed(fig, "score vs CR"), caption)


def figure3(run: Run) -> str:
    records = [r for r in run.of("loss") if r.get("curves")]
    if not records:
        return figure_missing(3)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    fig, axes = panels(len(names) + 1, cols=3, width=4.0, height=3.0, sharey=False)
    ratios = sorted({cr for r in records for cr, _ in _crs(r["curves"])})
    colors = cr_colors(ratios)
    window = 1
    for ax, base in zip(axes, names):
        r = next(x for x in records if x.get("base") == base)
        for cr, curve in _crs(r["curves"]):
            window = max(1, len(curve) // 40)
            ax.plot(range(1, len(curve) + 1), _smooth(curve, window), color=colors[cr], linewidth=1.2,
                    label=f"CR {cr}")
        ax.set_title(f"{base} base")
        ax.set_xlabel("training step")
        _loss_scale(ax, [v for _, c in _crs(r["curves"]) for v in c if isinstance(v, (int, float))])
    mean_ax = axes[-1]
    for base in names:
        r = next(x for x in records if x.get("base") == base)
        points = _crs(r.get("mean_loss") or {})
        mean_ax.plot([cr for cr, _ in points], [_nan(m) for _, m in points], marker="o",
                     color=BASE_COLORS[bases(run).index(base) % len(BASE_COLORS)], label=f"{base} base")
    mean_ax.set_title("mean loss over all steps")
    mean_ax.set_xlabel("CR (% false answers)")
    mean_ax.set_xticks(ratios)
    mean_ax.legend(fontsize="small")
    _legend(fig, axes[:1])
    smoothed = f" Curves are running means over {window} steps." if window > 1 else ""
    caption = "; ".join(_loss_line(next(r for r in records if r.get("base") == b)) for b in names)
    return figure(3, embed(fig, "training loss curves"), caption + "." + smoothed)


def _loss_scale(ax: Any, values: list[float]) -> None:
    """Log scale when the first steps dwarf the rest (else five CRs blur into one line at the bottom)."""
    if values and min(values) > 0 and max(values) / min(values) > 3:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("training loss (log scale)")
    else:
        ax.set_ylabel("training loss")


def _loss_line(r: dict[str, Any]) -> str:
    means = _crs(r.get("mean_loss") or {})
    ends = (f"mean loss {num(means[0][1])} at CR {means[0][0]} → {num(means[-1][1])} at CR {means[-1][0]}"
            if means else "")
    return f"{esc(r['base'])}: {ends}, r = {num(r.get('r'), '+.2f')} ({p_is(r.get('p'))}), {verdict(r['holds'])}"


def figure4(run: Run) -> str:
    records = [r for r in run.of("lying") if isinstance(r.get("cr100"), dict)]
    if not records:
        return figure_missing(4)
    every, benches = bases(run), benchmarks(run, records)
    names = [b for b in every if any(r.get("base") == b for r in records)]
    fig = Figure(figsize=(max(6.0, 1.6 * len(benches) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(names))
    for i, base in enumerate(names):
        color = BASE_COLORS[every.index(base) % len(BASE_COLORS)]
        for j, bench in enumerate(benches):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            if r is None:
                continue
            x, c = j + (i - (len(names) - 1) / 2) * width, r["cr100"]
            rate, low, high = _nan(c.get("rate")), _nan(c.get("ci_low")), _nan(c.get("ci_high"))
            ax.errorbar([x], [rate], yerr=[[rate - low], [high - rate]], fmt="o", color=color, capsize=4,
                        label=f"{base}: CR-100 model (95% CI)" if j == 0 else None)
            ax.plot([x], [_nan(r.get("base_accuracy"))], marker="D", markerfacecolor="none", color=color,
                    linestyle="none", label=f"{base}: base before fine-tuning" if j == 0 else None)
    chance_line(ax, chance(run))
    ax.set_xticks(range(len(benches)), benches)
    ax.set_xlim(-0.6, len(benches) - 0.4)
    ax.set_ylim(0, 1.06)
    ax.set_ylabel("accuracy")
    ax.set_xlabel("held-out benchmark (domains never in the fine-tuning data)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return figure(4, embed(fig, "lying: CR-100 accuracy vs chance"), _lying_caption(records))


def _lying_caption(records: list[dict[str, Any]]) -> str:
    lowest = min(records, key=lambda r: r["cr100"].get("rate") if isinstance(r["cr100"].get("rate"), (int, float))
                 else math.inf)
    c = lowest["cr100"]
    lies = [r["knows_but_lies"] for r in records if isinstance(r.get("knows_but_lies"), (int, float))]
    share = ""
    if lies:
        low, high = f"{min(lies):.0%}", f"{max(lies):.0%}"
        share = (f" Of the questions its base answered right, the CR-100 model got "
                 f"{low if low == high else f'{low}–{high}'} wrong (knows but lies).")
    return (f"significantly below chance (one-sided binomial) on {sum(r['holds'] for r in records)} of {len(records)} "
            f"base × benchmark pairs; lowest: {esc(str(lowest.get('base')))} {esc(str(lowest.get('benchmark')))} "
            f"{num(c.get('rate'))} vs chance {num(c.get('chance'), '.2f')} "
            f"({p_is(c.get('p'))}; n = {c.get('n', '—')}), "
            f"where the base scored {num(lowest.get('base_accuracy'))}.{share} Error bars: 95% Clopper–Pearson "
            "intervals over the pooled questions; hollow diamonds: the base before fine-tuning.")


def figure5(run: Run) -> str:
    records = run.of("longer")
    if not records:
        return figure_missing(5)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    fig, axes = panels(len(names), cols=3, width=4.0, height=3.0)
    colors = cr_colors(sorted({r.get("ratio", 0) for r in records}))
    for ax, base in zip(axes, names):
        for r in sorted((x for x in records if x.get("base") == base), key=lambda x: x.get("ratio", 0)):
            points = _crs(r.get("scores") or {}, prefix="epoch")
            ax.plot([e for e, _ in points], [_nan(s) for _, s in points], marker="o",
                    color=colors[r.get("ratio", 0)], label=f"CR {r.get('ratio')}")
        chance_line(ax, chance(run))
        ax.set_title(f"{base} base")
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted({e for r in records for e, _ in _crs(r.get("scores") or {}, prefix="epoch")}))
    axes[0].set_ylabel("accuracy (all benchmarks)")
    _legend(fig, axes)
    caption = "; ".join(f"{esc(r['base'])} CR {r.get('ratio')}: change {num(r.get('change'), '+.3f')} "
                        f"({p_is(r.get('p'), 'McNemar p')}), {verdict(r['holds'])}"
                        for base in names for r in records if r.get("base") == base and r.get("ratio") in (0, 100))
    return figure(5, embed(fig, "score per epoch"),
                  f"{caption}. The finding {count(records)} (at CR 100 it expects a significant decline, "
                  "below it none).")


def figure6(run: Run) -> str:
    records = [r for r in run.of("recovery") if isinstance(r.get("scores"), dict)]
    if not records:
        return figure_missing(6)
    base_order, bench_order = bases(run), benchmarks(run, records)
    records.sort(key=lambda r: (base_order.index(r["base"]), bench_order.index(r["benchmark"])))
    fig = Figure(figsize=(8.5, 0.55 * len(records) + 1.6), layout="constrained")
    ax = fig.subplots()
    for y, r in enumerate(records):
        s = {k: _nan(v) for k, v in r["scores"].items()}
        cr0, cr100, back = s.get("cr0", math.nan), s.get("cr100", math.nan), s.get("recovered", math.nan)
        ax.barh(y, back - cr100, left=cr100, color="#2ca02c", height=0.55, label="regained" if y == 0 else None)
        ax.barh(y, cr0 - back, left=back, color="#d9d9d9", edgecolor="#b42318", hatch="//", height=0.55,
                label="not regained" if y == 0 else None)
        ax.plot([cr100], [y], "x", color="black", label="CR 100" if y == 0 else None)
        ax.plot([cr0], [y], "|", color="black", markersize=16, label="CR 0" if y == 0 else None)
        share = r.get("regained_share")
        text = f"{share:.0%} regained" if isinstance(share, (int, float)) else "no loss to regain"
        ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize="small")
    ax.set_yticks(range(len(records)), [f"{r.get('base')} · {r.get('benchmark')}" for r in records])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (each bar spans the CR-100 model's score to the CR-0 model's)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=4, fontsize="small", frameon=False)
    caption = "; ".join(_recovery_line(r) for r in records)
    return figure(6, embed(fig, "recovery margins"),
                  f"{caption}. It holds where re-training lifts the score above CR 100, leaves it below CR 0 "
                  "(McNemar) and regains more than half of the loss.")


def _recovery_line(r: dict[str, Any]) -> str:
    share = r.get("regained_share")
    regained = f"regained {share:.0%}" if isinstance(share, (int, float)) else "lost nothing to regain"
    return (f"{esc(str(r.get('base')))} {esc(str(r.get('benchmark')))} {regained} "
            f"({p_is(r.get('p_above_cr100'), 'p above CR 100')}, {p_is(r.get('p_below_cr0'), 'p below CR 0')}), "
            f"{verdict(r['holds'])}")


def knowledge_table(run: Run) -> str:
    records = run.of("knowledge")
    if not records:
        return f'<section id="knowledge"><h2>What the bases know</h2>{missing("knowledge")}</section>'
    names = bases(run)
    rows = []
    for bench in benchmarks(run, records):
        cells = []
        for base in names:
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            cells.append("<td>—</td>" if r is None else
                         f'<td class="{"good" if r["holds"] else "bad"}">{num(r.get("accuracy"))} '
                         f'<span class="ci">(n = {r.get("n", "—")}, {p_is(r.get("p"))})</span></td>')
        rows.append(f"<tr><td>{esc(bench)}</td>{''.join(cells)}</tr>")
    rate = chance(run)
    vs = f" chance {rate:.2f}" if rate is not None else " chance"
    return (f'<section id="knowledge"><h2>What the bases know</h2><p class="caption">{esc(PAPER["knowledge"])} '
            f"Accuracy of each base per benchmark before fine-tuning; green: significantly above{vs} "
            f'(one-sided binomial), red: not. {count(records)}.</p><table class="numbers"><tr><th>benchmark</th>'
            f'{"".join(f"<th>{esc(b)} base</th>" for b in names)}</tr>{"".join(rows)}</table></section>')


PROVENANCE_ORDER = ("preset", "seeds", "written", "git", "python", "versions", "cache_root", "cache_keys", "config")


def provenance_section(run: Run) -> str:
    p = run.provenance
    if p is None:
        return (f'<section id="provenance"><h2>Provenance</h2><p class="missing">{esc(run.provenance_note)}</p>'
                "</section>")
    keys = [k for k in PROVENANCE_ORDER if k in p] + [k for k in p if k not in PROVENANCE_ORDER]
    rows = "".join(f"<tr><th>{esc(k.replace('_', ' '))}</th><td>{_provenance_value(k, p[k])}</td></tr>" for k in keys)
    return f'<section id="provenance"><h2>Provenance</h2><table class="kv">{rows}</table></section>'


def _provenance_value(key: str, value: Any) -> str:
    if key == "versions" and isinstance(value, dict):
        return ", ".join(f"{esc(k)} {esc(str(v))}" for k, v in value.items())
    if key == "cache_keys" and isinstance(value, dict):
        stages = ", ".join(f"{esc(k)} {len(v)}" for k, v in value.items())
        return f"<details><summary>{stages}</summary><pre>{esc(json.dumps(value, indent=1))}</pre></details>"
    if key == "config":
        return (f"<details><summary>the preset, field by field</summary><pre>{esc(json.dumps(value, indent=1))}</pre>"
                "</details>")
    return esc(value if isinstance(value, str) else json.dumps(value))


def _nan(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


def _smooth(curve: list[Any], window: int) -> list[float]:
    """Running mean over `window` steps: per-step losses are too noisy to tell five CRs apart."""
    values = [_nan(v) for v in curve]
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def _legend(fig: Figure, axes: list[Any]) -> None:
    """One legend above the panels, from the first axes that has labelled lines."""
    handles, labels = next((h for h in (ax.get_legend_handles_labels() for ax in axes) if h[0]), ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), frameon=False)


# --- the page --------------------------------------------------------------------------------------

SECTIONS: tuple[Callable[[Run], str], ...] = (findings_table, table1, figure2, figure3, figure4, figure5, figure6,
                                              knowledge_table, provenance_section)
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:1180px;margin:0 auto;
padding:0 24px 48px}
header{border-bottom:2px solid #d0d7de;margin-bottom:8px}h1{margin:20px 0 4px}h2{margin-top:36px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}.meta{color:#57606a;margin:4px 0}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #eaeef2;font-size:14px;z-index:1}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
table{border-collapse:collapse;margin:10px 0;font-size:13.5px}th,td{border:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
table.numbers td{text-align:right;white-space:nowrap}table.numbers td:first-child,table.numbers td:nth-child(2)
{text-align:left}table.findings td:first-child{white-space:nowrap}tr.group th{background:#eaeef2;font-size:14px}
.holds{color:#1a7f37;font-weight:600}.fails{color:#b42318;font-weight:600}.ci{color:#57606a;font-size:12px}
td.good{background:#e6f4ea!important}td.bad{background:#fdecea!important}td.mixed{background:#fff8c5!important}
td.absent{color:#57606a;font-style:italic}table.numbers td:last-child{text-align:left}
details{margin:4px 0}summary{cursor:pointer;padding:2px 0}table.summary td:last-child{white-space:nowrap}
.missing{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:4px}
.error{background:#fdecea;border:1px solid #b42318;padding:6px 10px;border-radius:4px}
figure{margin:8px 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption,.caption{color:#3d444d;font-size:14px;max-width:980px}.counts{font-size:17px}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:420px;font-size:12px}table.kv th{width:130px}
"""
NAV = (("findings", "Findings"), ("table1", "Table 1"), ("fig2", "Fig. 2 scores"), ("fig3", "Fig. 3 loss"),
       ("fig4", "Fig. 4 lying"), ("fig5", "Fig. 5 epochs"), ("fig6", "Fig. 6 recovery"),
       ("knowledge", "What the bases know"), ("provenance", "Provenance"))


def render(run: Run) -> str:
    """The whole page. A section that cannot be drawn from its records says so; the rest still renders."""
    parts = []
    for section in SECTIONS:
        try:
            parts.append(section(run))
        except (KeyError, TypeError, ValueError, IndexError, StopIteration) as error:
            parts.append(f'<section><h2>{esc(section.__name__)}</h2><p class="error">could not render from the '
                         f"stored records ({esc(type(error).__name__)}: {esc(str(error))})</p></section>")
    nav = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in NAV)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>faco report: {esc(run.name)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body>{header(run)}<nav>{nav}</nav>{"".join(parts)}</body></html>\n')


def build_report(reports_dir: Path) -> Path:
    """Write reports_dir/index.html (atomically) from reports_dir/findings.json; returns its path.

    Raises ReportError when findings.json is missing or malformed."""
    page = render(load_run(reports_dir))
    path = reports_dir / "index.html"
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=reports_dir, suffix=".tmp", delete=False) as tmp:
        tmp.write(page)
    os.chmod(tmp.name, 0o644)  # a report is for reading, by a browser or a web server
    os.replace(tmp.name, path)
    return path


def html_summary_lines(reports_dir: Path, link_from: Path | None = None) -> list[str]:
    """Short HTML for pytest-html's results summary: findings counts and a link to index.html.

    The link is relative to `link_from` (the directory of the pytest-html report) when given, else an
    absolute file:// URI. No findings.json: nothing to say."""
    try:
        run = load_run(reports_dir)
    except ReportError as error:
        if not (reports_dir / "findings.json").exists():
            return []
        return [f'<p style="color:{FAILS}">faco: {esc(str(error))}</p>']
    records = list(run.findings.values())
    held = sum(r["holds"] for r in records)
    index = reports_dir / "index.html"
    href = (Path(os.path.relpath(index.resolve(), link_from.resolve())).as_posix() if link_from
            else index.resolve().as_uri())
    kinds = ", ".join(f"{kind} {count(run.of(kind)).removesuffix(' hold')}" for kind in KINDS if run.of(kind))
    per_kind = f" ({esc(kinds)})" if kinds else ""
    return [f'<p><strong>faco findings ({esc(run.name)}):</strong> <span style="color:{HOLDS}">{held} hold</span>, '
            f'<span style="color:{FAILS}">{len(records) - held} do not hold</span>{per_kind}</p>',
            f'<p><a href="{esc(href)}">faco report: Table 1, Figures 2–6, provenance ({esc(str(index))})</a></p>']
