"""Figures 2–11 of the faco report, drawn from a run's stored results and embedded as inline PNGs.

Each `figureN(run)` returns the HTML of its section (image and caption), or a note naming what is missing;
faco.report.html places them on the page. Plots go through matplotlib's `Figure` (Agg, no pyplot state).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from faco.evaluation.groups import GROUPS
from faco.findings.registry import with_figure
from faco.report.common import (
    Run,
    bases,
    benchmarks,
    chance,
    count,
    crs,
    esc,
    level,
    missing,
    num,
    p_is,
    paper,
    sd,
    seeds_note,
    verdict,
)

BASE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # per base, in the order bases() returns


# --- drawing helpers ------------------------------------------------------------------------------

def embed(fig: Figure, alt: str) -> str:
    """The figure as an inline base64 PNG: the page needs no other file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def figure(number: int, img: str, caption: str) -> str:
    """Figure `number`'s section; its title and the paper's claim come from the findings registry."""
    found = with_figure(number)
    anchor = found.figure.section.anchor
    return (f'<section id="{anchor}"><h2>Figure {number}: {esc(found.figure.title)}</h2><figure>{img}'
            f'<figcaption>{esc(paper(found.name))} This run: {caption}</figcaption></figure></section>')


def figure_missing(number: int) -> str:
    found = with_figure(number)
    return (f'<section id="{found.figure.section.anchor}"><h2>Figure {number}: {esc(found.figure.title)}</h2>'
            f'{missing(found.name)}</section>')


def panels(n: int, cols: int = 4, width: float = 3.0, height: float = 2.6, sharey: bool = True):
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


def _nan(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


def _smooth(curve: list[Any], window: int) -> list[float]:
    """Running mean over `window` steps: per-step losses are too noisy to tell five CRs apart."""
    values = [_nan(v) for v in curve]
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def _legend(fig: Figure, axes: list[Any], columns: int = 6) -> None:
    """One legend above the panels, from the first axes that has labelled lines."""
    handles, labels = next((h for h in (ax.get_legend_handles_labels() for ax in axes) if h[0]), ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), columns), frameon=False)


# --- the figures: each takes the run and returns its section's HTML --------------------------------

def figure2(run: Run) -> str:
    records = run.of(with_figure(2).name)
    if not records:
        return figure_missing(2)
    names, benches = bases(run), benchmarks(run, records)
    fig, axes = panels(len(benches))
    for ax, bench in zip(axes, benches):
        for i, base in enumerate(names):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            if r is None:
                continue
            points = crs(r.get("scores") or {})
            spread = dict(crs(r.get("per_seed") or {}))
            errors = [sd(spread.get(cr)) for cr, _ in points]
            ax.errorbar([cr for cr, _ in points], [_nan(s) for _, s in points],
                        yerr=errors if any(errors) else None, marker="o", capsize=3,
                        color=BASE_COLORS[i % len(BASE_COLORS)], label=f"{base} base")
        chance_line(ax, chance(run))
        ax.set_title(bench)
        ax.set_xlabel("CR (% false answers)")
        ax.set_xticks(sorted({cr for r in records for cr, _ in crs(r.get("scores") or {})}))
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("accuracy")
    _legend(fig, axes)
    groups = {b: [x for x in records if x.get("base") == b and x.get("benchmark") in GROUPS] for b in names}
    lines = [f"{esc(b)}: " + ", ".join(f"{esc(x['benchmark'])} r = {num(x.get('r'), '+.2f')} ({p_is(x.get('p'))})"
                                       for x in group) for b, group in groups.items() if group]
    caption = f"{'; '.join(lines)}{'. ' if lines else ''}The correlation finding {count(records)}.{seeds_note(run)}"
    return figure(2, embed(fig, "score vs CR"), caption)


def figure3(run: Run) -> str:
    records = [r for r in run.of(with_figure(3).name) if r.get("curves")]
    if not records:
        return figure_missing(3)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    fig, axes = panels(len(names) + 1, cols=3, width=4.0, height=3.0, sharey=False)
    ratios = sorted({cr for r in records for cr, _ in crs(r["curves"])})
    colors = cr_colors(ratios)
    window = 1
    for ax, base in zip(axes, names):
        r = next(x for x in records if x.get("base") == base)
        for cr, curve in crs(r["curves"]):
            window = max(1, len(curve) // 40)
            ax.plot(range(1, len(curve) + 1), _smooth(curve, window), color=colors[cr], linewidth=1.2,
                    label=f"CR {cr}")
        ax.set_title(f"{base} base")
        ax.set_xlabel("training step")
        _loss_scale(ax, [v for _, c in crs(r["curves"]) for v in c if isinstance(v, (int, float))])
    mean_ax = axes[-1]
    for base in names:
        r = next(x for x in records if x.get("base") == base)
        points = crs(r.get("mean_loss") or {})
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
    means = crs(r.get("mean_loss") or {})
    ends = (f"mean loss {num(means[0][1])} at CR {means[0][0]} → {num(means[-1][1])} at CR {means[-1][0]}"
            if means else "")
    return f"{esc(r['base'])}: {ends}, r = {num(r.get('r'), '+.2f')} ({p_is(r.get('p'))}), {verdict(r['holds'])}"


LYING_WEAK = "lying_weak"  # the weaker base's form of the lying finding, drawn in the same figure


def figure4(run: Run) -> str:
    records = [r for r in run.of(with_figure(4).name) + run.of(LYING_WEAK) if isinstance(r.get("cr100"), dict)]
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
                        label=f"{base}: CR-100 model ({level(c, 'CI')})" if j == 0 else None)
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
    below = [r for r in records if r.get("finding") != LYING_WEAK]
    at = [r for r in records if r.get("finding") == LYING_WEAK]
    weak = ""
    if at:
        weak = (f" {esc(paper(LYING_WEAK))} This run: within ±{num(_margin(at), '.2f')} of chance (two one-sided tests) "
                f"on {sum(r['holds'] for r in at)} of {len(at)} pairs of the weaker base.")
    return (_below_caption(below) if below else "") + weak


def _below_caption(records: list[dict[str, Any]]) -> str:
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
            f"where the base scored {num(lowest.get('base_accuracy'))}.{share} Error bars: {level(c, 'CI')} "
            "(Clopper–Pearson) over the pooled questions; hollow diamonds: the base before fine-tuning.")


def figure5(run: Run) -> str:
    records = run.of(with_figure(5).name)
    if not records:
        return figure_missing(5)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    fig, axes = panels(len(names), cols=3, width=4.0, height=3.0)
    colors = cr_colors(sorted({r.get("ratio", 0) for r in records}))
    for ax, base in zip(axes, names):
        for r in sorted((x for x in records if x.get("base") == base), key=lambda x: x.get("ratio", 0)):
            points = crs(r.get("scores") or {}, prefix="epoch")
            ax.plot([e for e, _ in points], [_nan(s) for _, s in points], marker="o",
                    color=colors[r.get("ratio", 0)], label=f"CR {r.get('ratio')}")
        chance_line(ax, chance(run))
        ax.set_title(f"{base} base")
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted({e for r in records for e, _ in crs(r.get("scores") or {}, prefix="epoch")}))
    axes[0].set_ylabel("accuracy (all benchmarks)")
    _legend(fig, axes)
    caption = "; ".join(f"{esc(r['base'])} CR {r.get('ratio')}: change {num(r.get('change'), '+.3f')} "
                        f"({p_is(r.get('p'), 'McNemar p')}), {verdict(r['holds'])}"
                        for base in names for r in records if r.get("base") == base and r.get("ratio") in (0, 100))
    return figure(5, embed(fig, "score per epoch"),
                  f"{caption}. The finding {count(records)} (below CR 100 it expects the change from the first to "
                  f"the last epoch within ±{num(_margin(records), '.2f')} by two one-sided tests; at CR 100 a "
                  "significant decline larger than at CR 0).")


def _margin(records: list[dict[str, Any]]) -> float | None:
    return next((r["margin"] for r in records if isinstance(r.get("margin"), (int, float))), None)


def figure6(run: Run) -> str:
    records = [r for r in run.of(with_figure(6).name) if isinstance(r.get("scores"), dict)]
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


# --- beyond the paper (docs/beyond.md): figures 7-11 -------------------------------------------------

KIND_COLORS = {"both": "#7f7f7f", "answer": "#d62728", "chain": "#1f77b4"}
MODEL_COLORS = {"base": "#2ca02c", "cr0": "#1f77b4", "cr100": "#d62728"}


def figure7(run: Run) -> str:
    records = [r for r in run.of(with_figure(7).name) if isinstance(r.get("scores"), dict)]
    if not records:
        return figure_missing(7)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    benches = benchmarks(run, records)
    fig, axes = panels(len(names), cols=2, width=5.0, height=3.2)
    for ax, base in zip(axes, names):
        for j, bench in enumerate(benches):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            kinds = r.get("kinds", []) if r else []
            for i, kind in enumerate(kinds):
                x, ci, rate = j + (i - (len(kinds) - 1) / 2) * 0.25, r["ci"][kind], _nan(r["scores"][kind])
                ax.errorbar([x], [rate], yerr=[[rate - _nan(ci.get("low"))], [_nan(ci.get("high")) - rate]], fmt="o",
                            capsize=3, color=KIND_COLORS.get(kind, "black"), label=f"{kind} false" if j == 0 else None)
        chance_line(ax, chance(run))
        ax.set_xticks(range(len(benches)), benches)
        ax.set_ylim(0, 1.06)
        ax.set_title(f"{base} base: CR-100 model per corruption kind")
    axes[0].set_ylabel("accuracy (held-out)")
    _legend(fig, axes)
    caption = "; ".join(f"{esc(r['base'])} {esc(r['benchmark'])}: " + ", ".join(
        f"{k} {num(r['scores'][k])}" for k in r.get("kinds", [])) + f" ({verdict(r['holds'])})" for r in records)
    return figure(7, embed(fig, "accuracy per corruption kind"),
                  f"{caption}. Error bars: {level(records[0]['ci'].get('answer'), 'CI')} seed-clustered bootstrap. "
                  "It holds where the answer-false model is below chance and the chain-false one above it.")


def _scored(run: Run, number: int, **layout: Any) -> tuple | None:
    """(records, bases, benchmarks, fig, axes) of figure `number`'s records that carry scores; None if none."""
    records = [r for r in run.of(with_figure(number).name) if isinstance(r.get("scores"), dict)]
    if not records:
        return None
    benches = benchmarks(run, records)
    return (records, bases(run), benches, *panels(len(benches), **layout))


def _traces(records: list, names: list, benches: list, axes: list):
    """(axis, base, its record, its colour) for every benchmark panel and every base with a record there."""
    for ax, bench in zip(axes, benches):
        for i, base in enumerate(names):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            if r is not None:
                yield ax, base, r, BASE_COLORS[i % len(BASE_COLORS)]


def figure8(run: Run) -> str:
    drawn = _scored(run, 8)
    if drawn is None:
        return figure_missing(8)
    records, names, benches, fig, axes = drawn
    for ax, base, r, color in _traces(records, names, benches, axes):
        points, spread = crs(r["scores"]), dict(crs(r.get("per_seed") or {}))
        errors = [sd(spread.get(cr)) for cr, _ in points]
        ax.errorbar([cr for cr, _ in points], [_nan(s) for _, s in points], yerr=errors if any(errors) else None,
                    marker="o", markersize=3, capsize=2, color=color, label=f"{base} base")
        ax.plot(*zip(*[(cr, _nan(s)) for cr, s in crs(r.get("isotonic") or {})]), linestyle=":", color=color)
        if isinstance(r.get("turning_point"), (int, float)):
            ax.axvline(r["turning_point"], color=color, linestyle="--", linewidth=1)
    for ax, bench in zip(axes, benches):
        chance_line(ax, chance(run))
        ax.set_title(bench)
        ax.set_xlabel("CR (% false answers)")
    axes[0].set_ylabel("accuracy")
    _legend(fig, axes)
    caption = "; ".join(f"{esc(r['base'])} {esc(r['benchmark'])} turns at CR {r.get('turning_point', '—')}, "
                        f"half-effect dose {num((r.get('half_dose') or {}).get('estimate'), '.0f')}"
                        for r in records if r.get("benchmark") in GROUPS)
    return figure(8, embed(fig, "score vs fine CR"),
                  f"{caption}. Dashed vertical line: the turning point (the smallest CR from which every drop from "
                  f"CR 0 is significant, McNemar); dotted: the isotonic fit. {count(records)}.{seeds_note(run)}")


def figure9(run: Run) -> str:
    records = [r for r in run.of(with_figure(9).name) if isinstance(r.get("probe_accuracy"), dict)]
    if not records:
        return figure_missing(9)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    fig, axes = panels(2 * len(names), cols=2, width=4.6, height=3.0, sharey=False)
    for row, base in enumerate(names):
        r = next(x for x in records if x.get("base") == base)
        layers = list(range(r["layers"]))
        probe, lens = axes[2 * row], axes[2 * row + 1]
        for name, values in r["probe_accuracy"].items():
            probe.plot(layers, values, marker="o", color=MODEL_COLORS.get(name), label=f"{name}: probe accuracy")
            lens.plot(layers, r["lens_top"][name], marker="s", color=MODEL_COLORS.get(name), label=name)
        probe.plot(layers, r["knows_but_lies"], marker="D", color="black", label="CR 100, its wrong answers")
        probe.plot(layers, r["control"], linestyle=":", color="black", label="shuffled-label probe")
        for ax, title in ((probe, "probe reads the true option"), (lens, "logit lens: true option ranked first")):
            chance_line(ax, r.get("chance"))
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{base}: {title}", fontsize="medium")
            ax.set_xlabel("layer (0 = embeddings)")
            ax.set_xticks(layers)
    _legend(fig, axes, columns=3)
    caption = "; ".join(f"{esc(r['base'])}: on {r.get('wrong')} held-out questions the CR-100 model gets wrong, the "
                        f"probe reads the truth on {num(max(r['knows_but_lies']), '.0%')} at best (layer "
                        f"{r.get('best_layer')}), {verdict(r['holds'])}" for r in records)
    return figure(9, embed(fig, "probe accuracy by layer"),
                  f"{caption}. Probe: logistic regression per layer on the base's states (scikit-learn), read on "
                  "a held-out half of the held-out domains' questions.")


def figure10(run: Run) -> str:
    drawn = _scored(run, 10, cols=3, width=4.0, height=3.0)
    if drawn is None:
        return figure_missing(10)
    records, names, benches, fig, axes = drawn
    for ax, base, r, color in _traces(records, names, benches, axes):
        points = crs(r["scores"], prefix="share")
        ax.plot([s for s, _ in points], [_nan(v) for _, v in points], marker="o", color=color, label=f"{base} base")
        ax.axhline(_nan(r.get("cr0")), color=color, linestyle="--", linewidth=1)
    for ax, bench in zip(axes, benches):
        ax.set_title(bench)
        ax.set_xlabel("% of the clean items re-trained on")
    axes[0].set_ylabel("accuracy (dashed: CR 0)")
    _legend(fig, axes)
    caption = "; ".join(f"{esc(r['base'])} {esc(r['benchmark'])}: half regained at {r.get('half_dose', '—')} %, "
                        f"not short of CR 0 at {r.get('not_short_at') or '—'} % ({verdict(r['holds'])})" for r in records)
    return figure(10, embed(fig, "recovery dose-response"), f"{caption}. 0 % is the CR-100 model itself.")


def figure11(run: Run) -> str:
    records = [r for r in run.of(with_figure(11).name) if isinstance(r.get("scores"), dict) and r.get("steps")]
    if not records:
        return figure_missing(11)
    names = [b for b in bases(run) if any(r.get("base") == b for r in records)]
    benches = benchmarks(run, records)
    fig, axes = panels(len(benches) + 1, cols=3, width=4.0, height=3.0, sharey=False)
    for ax, base, r, color in _traces(records, names, benches, axes):
        steps = r["steps"]
        for ratio, style in (("cr0", "--"), ("cr100", "-")):
            ax.plot(steps, [_nan(r["scores"][ratio].get(f"step{s}")) for s in steps], linestyle=style, marker="o",
                    markersize=3, color=color, label=f"{base} {ratio.replace('cr', 'CR ')}")
        if isinstance(r.get("onset"), (int, float)):
            ax.axvline(r["onset"], color=color, linestyle=":", linewidth=1.5)
    for ax, bench in zip(axes, benches):
        chance_line(ax, chance(run))
        ax.set_ylim(0, 1.04)
        ax.set_title(bench)
        ax.set_xlabel("training step")
    axes[0].set_ylabel("accuracy")
    loss = axes[len(benches)]
    for i, base in enumerate(names):
        r = next(x for x in records if x.get("base") == base and x.get("loss"))
        color = BASE_COLORS[i % len(BASE_COLORS)]
        loss.plot([row["step"] for row in r["loss"]], [row["loss"] for row in r["loss"]], color=color,
                  label=f"{base} CR-100 loss")
        loss.axvline(_nan(r.get("converged")), color=color, linestyle="-.", linewidth=1)
    _loss_scale(loss, [row["loss"] for r in records for row in r.get("loss", [])])
    loss.set_title("CR-100 loss (dash-dot: converged)")
    loss.set_xlabel("training step")
    _legend(fig, axes)
    lines = [_trajectory_line(r) for r in records if r.get("benchmark") in GROUPS]
    return figure(11, embed(fig, "score per training step"),
                  "; ".join(lines) + ". Dotted vertical line: the onset (the first step from which CR 100's drop "
                  f"below CR 0 stays significant, McNemar). A checkpoint every {records[0].get('every')} steps; "
                  f"scores pooled over the run's {len(run.info.get('seeds') or [0])} seed(s). {count(records)}.")


def _trajectory_line(r: dict[str, Any]) -> str:
    return (f"{esc(r['base'])} {esc(r['benchmark'])}: CR 100 below CR 0 from step {r.get('onset') or '—'}, "
            f"loss converged at step {r.get('converged')} ({verdict(r['holds'])})")
