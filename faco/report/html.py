"""The faco report: one self-contained reports/<run>/index.html, plots embedded, that opens from disk.

    faco report                     # rebuild every run under reports/ from its stored results
    faco report --run tiny          # one run
    pytest experiments              # the plugin calls build_report at the end of a run

Reads reports/<run>/findings.json (the numbers each experiment recorded) and provenance.json when the
plugin wrote one; it never recomputes a statistic, trains or evaluates. Any finding may be missing (a
`-k` run): every section renders what exists and names what is not there. The navigation links the
page's own sections and those each finding's registry entry names (faco.findings.registry). Figures 2–6
are drawn by faco.report.figures (matplotlib, no pyplot state), a sweep by faco.report.sweep; no torch,
transformers or lm-eval is imported, so a report takes seconds.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faco.evaluation.benchmarks import catalogue
from faco.findings.registry import NAMES, Section, sections, spec
from faco.findings.statistics import read_interval
from faco.models.llama import NEWLINE
from faco.report.common import (
    Run, bases, benchmarks, chance, command, count, crs, esc, level, missing, num, p_is, paper, pval, sd, seeds_note,
    verdict,
)
from faco.report.figures import (figure2, figure3, figure4, figure5, figure6, figure7, figure8, figure9, figure10,
                                 figure11)
from faco.report.sweep import sweep_section

HOLDS, FAILS = "#1a7f37", "#b42318"


class ReportError(ValueError):
    """Stored results that cannot be read; the message names the file and what is wrong."""


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
    answers_path = run_dir / "answers.json"
    answers = json.loads(answers_path.read_text()) if answers_path.is_file() else {}
    skipped_path = run_dir / "skipped.json"
    skipped = json.loads(skipped_path.read_text()) if skipped_path.is_file() else {}
    return Run(run_dir.name, findings, provenance, note, written, answers, skipped)


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
            "of Data Falsity to Large Language Model</i> (arXiv 2404.09717): fine-tune a weak and a strong base on "
            "instruction data of which a share (the corruption ratio, CR) has false answers, and measure what it "
            "does.</p></header>")


def findings_table(run: Run) -> str:
    """One row per finding of the paper, then every experiment behind it (folded)."""
    records = list(run.findings.values())
    held = sum(r["holds"] for r in records)
    kinds = [*NAMES, *sorted({r["finding"] for r in records} - set(NAMES))]
    rows, details = [], []
    for kind in kinds:
        group = run.of(kind)
        claim = esc(paper(kind).split(": ", 1)[-1])
        if not group:
            why = f"skipped: {run.skipped[kind]}" if kind in run.skipped else "not in this run"
            rows.append(f'<tr><td>{esc(kind)}</td><td>{claim}</td><td class="absent">{esc(why)}</td></tr>')
            continue
        ok = sum(r["holds"] for r in group)
        cls = "good" if ok == len(group) else "bad" if ok == 0 else "mixed"
        shown = spec(kind)
        link = f' · <a href="#{shown.shown_at.anchor}">{shown.shown_in}</a>' if shown else ""
        rows.append(f'<tr><td>{esc(kind)}</td><td>{claim}</td><td class="{cls}">{ok}/{len(group)} hold{link}</td></tr>')
        items = "".join(f"<tr><td><code>{esc(str(r.get('id', '')))}</code></td><td>{verdict(r['holds'])}</td>"
                        f"<td>{esc(str(r.get('summary', '')))}</td><td>{_test(r)}</td></tr>" for r in group)
        details.append(f"<details><summary><b>{esc(kind)}</b>: {_counts(group)}</summary><table class=\"findings\">"
                       f"<tr><th>experiment</th><th>verdict</th><th>measured</th><th>test, interval</th></tr>{items}"
                       "</table></details>")
    absent = [k for k in NAMES if not run.of(k)]
    note = absent_note([k for k in absent if k in run.skipped], [k for k in absent if k not in run.skipped], run)
    return (f'<section id="findings"><h2>Findings</h2><p class="counts"><span class="holds">{held} hold</span> · '
            f'<span class="fails">{len(records) - held} do not hold</span> · {len(records)} experiments recorded</p>'
            f'{note}<table class="summary"><tr><th>finding</th><th>what the paper found</th><th>this run</th></tr>'
            f'{"".join(rows)}</table><h3>Every experiment</h3>{"".join(details)}</section>')


def absent_note(skipped: list[str], unselected: list[str], run: Run) -> str:
    """Findings a run holds no record of: each skipped one with its test's reason (a command could not
    record it on this preset), and the command that records the rest (they were not selected)."""
    parts = [f"{esc(kind)} was skipped: {esc(run.skipped[kind])}" for kind in skipped]
    for options in dict.fromkeys(spec(kind).options if spec(kind) else "" for kind in unselected):
        kinds = [kind for kind in unselected if (spec(kind).options if spec(kind) else "") == options]
        parts.append(f'not selected: {esc(", ".join(kinds))}; <code>{esc(command(kinds))}</code> records them')
    return f'<p class="missing">Not in this run: {"; ".join(parts)}.</p>' if parts else ""


def _test(record: dict[str, Any]) -> str:
    """The typed record's statistic and interval, the interval labelled with its stored level."""
    stat, stored = record.get("statistic"), record.get("interval")
    parts = []
    if isinstance(stat, dict):
        p = f", {p_is(stat.get('p'))}" if isinstance(stat.get("p"), (int, float)) else ""
        parts.append(f"{esc(str(stat.get('name', '')))} {num(stat.get('value'), '+.3f')}{p}")
    if isinstance(stored, dict) and interval(stored):
        parts.append(f"{level(stored, 'interval')}{interval(stored)}")
    return "; ".join(parts) or "—"


def _counts(records: list[dict[str, Any]]) -> str:
    ok = sum(r["holds"] for r in records)
    return f'<span class="holds">{ok} hold</span>, <span class="fails">{len(records) - ok} do not hold</span>'


# Table 1's findings read over benchmarks, each a line under the table: (heading, finding)
OVER_BENCHMARKS = (("stronger at CR 0", "sensitivity_cr0"), ("lower at CR 100", "sensitivity_cr100"),
                   ("loses more, over benchmarks", "sensitivity_majority"),
                   ("knowledge vs commonsense (Q4)", "task_sensitivity"))


def table1(run: Run) -> str:
    records = run.of("correlation")
    body = missing("correlation") if not records else _correlation_table(run, records)
    sensitivity = run.of("sensitivity")
    body += "<h3>Sensitivity: does the stronger base lose more?</h3>" + (
        _sensitivity_table(run, sensitivity) if sensitivity else
        '<p class="missing">One base in this run: sensitivity compares a weaker and a stronger one.</p>'
        if len(bases(run)) == 1 else missing("sensitivity"))
    body += _over_benchmarks(run)
    abs_level = level(next((r.get("abs_ci") for r in records), None), "interval")
    r_level = level(next((r.get("r_ci") for r in records), None), "interval")
    return (f'<section id="table1"><h2>Table 1: score per benchmark and CR</h2><p class="caption">'
            f"{esc(paper('correlation'))} ABS = score at CR 0 − score at CR 100, with its seed-clustered bootstrap "
            f"{abs_level}; r with its {r_level} and one-sided p (r &lt; 0).{seeds_note(run, 'Scores show')}</p>"
            f"{body}</section>")


def _correlation_table(run: Run, records: list[dict[str, Any]]) -> str:
    ratios = sorted({cr for r in records for cr, _ in crs(r.get("scores") or {})})
    vanilla = any("vanilla" in r for r in records)  # the paper's benchmarks: the base's own score first
    head = ("<th>vanilla</th>" if vanilla else "") + "".join(f"<th>CR {cr}</th>" for cr in ratios)
    rows = []
    for base in bases(run):
        for bench in benchmarks(run, records):
            r = next((x for x in records if x.get("base") == base and x.get("benchmark") == bench), None)
            if r is None:
                continue
            scores, spread = dict(crs(r.get("scores") or {})), dict(crs(r.get("per_seed") or {}))
            cells = f"<td>{num(r.get('vanilla'))}</td>" if vanilla else ""
            cells += "".join(f"<td>{num(scores.get(cr))}{_spread(spread.get(cr))}</td>" for cr in ratios)
            rows.append(f"<tr><td>{esc(base)}</td><td>{esc(bench)}{_source_flag(bench)}</td>{cells}"
                        f"<td>{num(r.get('abs'), '+.3f')}{interval(r.get('abs_ci'))}</td>"
                        f"<td>{num(r.get('r'), '+.2f')}{interval(r.get('r_ci'), '+.2f')}</td>"
                        f"<td>{pval(r.get('p'))}</td><td>{verdict(r['holds'])}</td></tr>")
    flagged = any(_source_flag(bench) for bench in benchmarks(run, records))
    note = ('<p class="caption">† a FACO source covers this benchmark (the paper, Section 4, Q4: such related '
            "training data \"did not significantly impact benchmark performance\").</p>") if flagged else ""
    return (f'<table class="numbers"><tr><th>base</th><th>benchmark</th>{head}<th>ABS</th><th>Pearson r</th>'
            f'<th>p</th><th>finding</th></tr>{"".join(rows)}</table>{note}')


def _source_flag(bench: str) -> str:
    """" †" for a registry benchmark a FACO source covers (OpenBookQA, WinoGrande, ...); "" otherwise."""
    found = catalogue().get(bench)
    return ' <span title="a FACO source covers it">†</span>' if found is not None and found.in_domain else ""


def _over_benchmarks(run: Run) -> str:
    """One line per finding read over benchmarks: the paper's sentence, then this run's measure and verdict."""
    lines = []
    for heading, kind in OVER_BENCHMARKS:
        records = run.of(kind)
        if not records:
            why = run.skipped.get(kind, "not in this run")
            lines.append(f"<li><b>{esc(heading)}</b> ({esc(kind)}): {esc(why)}</li>")
            continue
        measured = "; ".join(f"{esc(str(r.get('summary', '')))} — {verdict(r['holds'])}" for r in records)
        lines.append(f"<li><b>{esc(heading)}</b> ({esc(kind)}). {esc(paper(kind))} This run: {measured}</li>")
    return f'<h3>Over the benchmarks</h3><ul class="caption">{"".join(lines)}</ul>'



def interval(stored: Any, fmt: str = "+.3f") -> str:
    """A stored statistics.Interval as "[low, high]"; "" where the record holds none."""
    read = read_interval(stored)
    return f' <span class="ci">[{num(read.low, fmt)}, {num(read.high, fmt)}]</span>' if read else ""


def _spread(per_seed: Any) -> str:
    return f' <span class="ci">±{sd(per_seed):.3f}</span>' if isinstance(per_seed, list) and len(per_seed) > 1 else ""


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
    label = level(records[0].get("gap_ci"), "interval")
    return (f'<table class="numbers"><tr><th>benchmark</th>{head}<th>gap ({esc(gap)}), {label}</th>'
            f'<th>finding</th></tr>{"".join(rows)}</table>')


def table2(run: Run) -> str:
    """The base's and the CR-100 model's own greedy answers to a few held-out questions (experiments/test_answers.py)."""
    if not run.answers:
        return ('<section id="table2"><h2>Table 2: answers of the base and the CR-100 model</h2><p class="missing">'
                "not recorded in this run (run <code>pytest experiments -k table2</code>)</p></section>")
    rows = []
    for base_name, questions in run.answers.items():
        for q in questions:
            options = " ; ".join(f"<b>{esc(o)}</b>" if i == q["gold"] else esc(o) for i, o in enumerate(q["options"]))
            rows.append(f"<tr><td>{esc(base_name)}</td><td>{esc(q['benchmark'])}</td><td>{esc(q['question'])}"
                        f'<br><span class="ci">{options}</span></td><td>{said(q["base_answer"])}</td>'
                        f"<td>{said(q['cr100_answer'])}</td></tr>")
    return ('<section id="table2"><h2>Table 2: answers of the base and the CR-100 model</h2><p class="caption">'
            'The paper (Section 4, Q3; its Table 2): "corrupted model tend to generate false answers … '
            'accompanied by illogical reasoning even for queries that fall outside the domain of the training data." '
            "Greedy answers in the fine-tuning format to the first held-out questions; the gold option in "
            'bold.</p><table class="answers"><colgroup><col style="width:8%"><col style="width:12%">'
            '<col style="width:30%"><col style="width:25%"><col style="width:25%"></colgroup><tr><th>base</th>'
            '<th>benchmark</th><th>question (options)</th><th>base answers</th><th>CR-100 model answers</th></tr>'
            f'{"".join(rows)}</table></section>')


def said(answer: str) -> str:
    """A model's answer as it would read: the word-level tokenizer's line-break marker as a line break
    (the cell keeps breaks and wraps long words, so a long answer never widens the page)."""
    return esc(answer.replace(f" {NEWLINE} ", "\n").replace(NEWLINE, "\n"))


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
    return (f'<section id="knowledge"><h2>What the bases know</h2><p class="caption">{esc(paper("knowledge"))} '
            f"Accuracy of each base per benchmark before fine-tuning; green: significantly above{vs} "
            f'(one-sided binomial), red: not. {count(records)}.</p><table class="numbers"><tr><th>benchmark</th>'
            f'{"".join(f"<th>{esc(b)} base</th>" for b in names)}</tr>{"".join(rows)}</table></section>')


PROVENANCE_ORDER = ("preset", "seeds", "written", "git", "python", "versions", "numerics", "cache_root", "cache_keys",
                    "config")


def provenance_section(run: Run) -> str:
    p = run.provenance
    if p is None:
        return (f'<section id="provenance"><h2>Provenance</h2><p class="missing">{esc(run.provenance_note)}</p>'
                "</section>")
    keys = [k for k in PROVENANCE_ORDER if k in p] + [k for k in p if k not in PROVENANCE_ORDER]
    rows = "".join(f"<tr><th>{esc(k.replace('_', ' '))}</th><td>{_provenance_value(k, p[k])}</td></tr>" for k in keys)
    return f'<section id="provenance"><h2>Provenance</h2><table class="kv">{rows}</table></section>'


def _provenance_value(key: str, value: Any) -> str:
    if key in ("versions", "numerics") and isinstance(value, dict):
        return ", ".join(f"{esc(k)} {esc(str(v))}" for k, v in value.items())
    if key == "cache_keys" and isinstance(value, dict):
        stages = ", ".join(f"{esc(k)} {len(v)}" for k, v in value.items())
        return f"<details><summary>{stages}</summary><pre>{esc(json.dumps(value, indent=1))}</pre></details>"
    if key == "config":
        return (f"<details><summary>the preset, field by field</summary><pre>{esc(json.dumps(value, indent=1))}</pre>"
                "</details>")
    return esc(value if isinstance(value, str) else json.dumps(value))


# --- the page --------------------------------------------------------------------------------------

SECTIONS: tuple[Callable[[Run], str], ...] = (findings_table, table1, table2, figure2, figure3, figure4, figure5, figure6,
                                              knowledge_table, figure7, figure8, figure9, figure10, figure11,
                                              provenance_section)


# A sweep run (--faco-sweep) holds the same findings at several points of one axis: the page draws them
# against the axis instead of as one study's table and figures.
SWEEP_SECTIONS: tuple[Callable[[Run], str], ...] = (findings_table, sweep_section, provenance_section)
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
td,th{overflow-wrap:anywhere}table.answers{table-layout:fixed;width:100%}table.answers td{white-space:pre-wrap}
"""
# The page's sections that show no one finding; each finding's sections come from its registry entry.
OWN_SECTIONS = (Section("findings", "Findings"), Section("table2", "Table 2"), Section("provenance", "Provenance"))


def navigation(page: str) -> str:
    """Links to the report's own sections and every finding's, in the order the page shows them (a
    section this page lacks, such as a sweep page's tables, last)."""
    def where(section: Section) -> int:
        at = page.find(f'<section id="{section.anchor}"')
        return at if at >= 0 else len(page)

    found = sorted([*OWN_SECTIONS, *sections()], key=where)
    return "".join(f'<a href="#{esc(s.anchor)}">{esc(s.label)}</a>' for s in found)


def render(run: Run) -> str:
    """The whole page. A section that cannot be drawn from its records says so; the rest still renders."""
    parts = []
    swept = any("sweep" in record for record in run.findings.values())
    for section in SWEEP_SECTIONS if swept else SECTIONS:
        try:
            parts.append(section(run))
        except (KeyError, TypeError, ValueError, IndexError, StopIteration) as error:
            parts.append(f'<section><h2>{esc(section.__name__)}</h2><p class="error">could not render from the '
                         f"stored records ({esc(type(error).__name__)}: {esc(str(error))})</p></section>")
    body = "".join(parts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>faco report: {esc(run.name)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body>{header(run)}<nav>{navigation(body)}</nav>{body}</body></html>\n')


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
    kinds = ", ".join(f"{kind} {count(run.of(kind)).removesuffix(' hold')}" for kind in NAMES if run.of(kind))
    per_kind = f" ({esc(kinds)})" if kinds else ""
    return [f'<p><strong>faco findings ({esc(run.name)}):</strong> <span style="color:{HOLDS}">{held} hold</span>, '
            f'<span style="color:{FAILS}">{len(records) - held} do not hold</span>{per_kind}</p>',
            f'<p><a href="{esc(href)}">faco report: Table 1, Figures 2–6, provenance ({esc(str(index))})</a></p>']
