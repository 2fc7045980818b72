"""The report from stored results: every section, plots embedded, partial and multi-seed runs, bad input.

Synthetic findings.json files shaped like the experiments' records (experiments/*.py); nothing is
trained or evaluated.

    python -m pytest unit_tests/test_report.py -q
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faco import cli
from faco.report.html import ReportError, build_report, html_summary_lines, load_run

BASES = ("weak", "strong")
BENCHMARKS = ("indomain", "heldout", "history")
RATIOS = (0, 25, 50, 75, 100)
SECTIONS = ("findings", "table1", "table2", "fig2", "fig3", "fig4", "fig5", "fig6", "knowledge", "fig7", "fig8",
            "fig9", "fig10", "fig11", "provenance")


def records(seeds: tuple[int, ...] = (0,)) -> dict[str, dict[str, Any]]:
    """One record of every finding kind per base and benchmark, with a clean decline over CR."""
    run = {"preset": "toy", "seeds": list(seeds), "items": "world"}
    out: dict[str, dict[str, Any]] = {}

    def add(finding: str, id_: str, holds: bool, **numbers: Any) -> None:
        out[id_] = {"finding": finding, "id": id_, "holds": holds, "summary": f"{id_} measured", "run": run, **numbers}

    for i, base in enumerate(BASES):
        top = 0.8 + 0.1 * i
        add("loss", f"loss-{base}", True, base=base, r=0.97, p=0.003,
            mean_loss={f"cr{r}": 1.2 + r / 400 for r in RATIOS},
            curves={f"cr{r}": [3.0 / (step + 1) + r / 400 for step in range(60)] for r in RATIOS})
        for r in RATIOS:
            add("longer", f"longer-{base}-cr{r}", True, base=base, ratio=r, change=-r / 1000, p=0.5,
                scores={f"epoch{e}": top - r / 200 - e * r / 5000 for e in (1, 2, 3)})
        for bench in BENCHMARKS:
            scores = {f"cr{r}": top - r * 0.006 for r in RATIOS}
            add("correlation", f"correlation-{base}-{bench}", True, base=base, benchmark=bench, r=-0.97, p=0.003,
                r_ci=ci(-0.97, -0.99, -0.6, 0.95), abs=0.6, abs_ci=ci(0.6, 0.5, 0.7, 0.9), scores=scores,
                per_seed={k: [v + 0.02 * (s - 1) for s in seeds] for k, v in scores.items()})
            add("knowledge", f"knowledge-{base}-{bench}", True, base=base, benchmark=bench, accuracy=top, n=150,
                p=1e-30)
        for group in ("indomain", "heldout"):
            add("recovery", f"recovery-{base}-{group}", group == "indomain", base=base, benchmark=group,
                scores={"cr0": top, "cr100": 0.2, "recovered": top - 0.1}, regained_share=0.83,
                p_above_cr100=0.0, p_below_cr0=0.01)
        for bench in ("heldout", "history"):
            form = "lying" if base == "strong" else "lying_weak"  # the weaker base's form: at chance
            add(form, f"{form}-{base}-{bench}", bench == "history", base=base, benchmark=bench,
                cr100={"k": 20, "n": 150, "rate": 0.133, "chance": 0.25, "p": 0.0004, "ci_low": 0.08, "ci_high": 0.2,
                       "level": 0.95},
                base_accuracy=top, knows_but_lies=0.8, **({"margin": 0.05} if base == "weak" else {}))
        add("task_sensitivity", f"task_sensitivity-{base}", True, base=base, difference=0.2,
            difference_ci=ci(0.2, 0.1, 0.3, 0.9))
    for bench in BENCHMARKS:
        add("sensitivity", f"sensitivity-{bench}", False, benchmark=bench, abs={"weak": 0.6, "strong": 0.7},
            gap=0.1, gap_ci=ci(0.1, -0.02, 0.2, 0.9))
    add("sensitivity_majority", "sensitivity_majority", True, gaps={b: 0.1 for b in BENCHMARKS}, positive=4,
        negative=0, n=4, sign_p=0.0625, gap=0.1, gap_ci=ci(0.1, 0.05, 0.15, 0.9))
    for part in ("sensitivity_cr0", "sensitivity_cr100"):
        add(part, part, part == "sensitivity_cr100", differences={b: 0.1 for b in BENCHMARKS}, positive=3,
            negative=0, n=3, sign_p=0.125, difference=0.1, difference_ci=ci(0.1, 0.05, 0.15, 0.9))
    return {**out, **beyond_records(run)}


def beyond_records(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One record of each finding beyond the paper (docs/beyond.md), for the strong base."""
    kinds = {"both": 0.1, "answer": 0.12, "chain": 0.6}
    common = {"run": run, "summary": "measured", "base": "strong"}
    return {
        "falsity_kind-strong-heldout": {**common, "finding": "falsity_kind", "id": "falsity_kind-strong-heldout",
                                        "holds": True, "benchmark": "heldout", "kinds": list(kinds), "scores": kinds,
                                        "ci": {k: ci(v, v - 0.05, v + 0.05, 0.9) for k, v in kinds.items()}},
        "dose-strong-heldout": {**common, "finding": "dose", "id": "dose-strong-heldout", "holds": True,
                                "benchmark": "heldout", "scores": {"cr0": 0.6, "cr50": 0.5, "cr100": 0.1},
                                "isotonic": {"cr0": 0.6, "cr50": 0.5, "cr100": 0.1}, "turning_point": 50,
                                "half_dose": ci(60.0, 50.0, 70.0, 0.9)},
        "probe-strong": {**common, "finding": "probe", "id": "probe-strong", "holds": False, "layers": 3,
                         "chance": 0.25, "best_layer": 1, "wrong": 40, "knows_but_lies": [0.2, 0.5, 0.3],
                         "control": [0.25, 0.2, 0.3], "probe_accuracy": {"base": [0.3, 0.8, 0.7], "cr100": [0.3, 0.6, 0.4]},
                         "lens_top": {"base": [0.2, 0.5, 0.8], "cr100": [0.2, 0.3, 0.1]}},
        "redose-strong-heldout": {**common, "finding": "redose", "id": "redose-strong-heldout", "holds": True,
                                  "benchmark": "heldout", "cr0": 0.6, "half_dose": 25, "not_short_at": None,
                                  "scores": {"share0": 0.1, "share25": 0.4, "share100": 0.5}},
        "trajectory-strong-heldout": {**common, "finding": "trajectory", "id": "trajectory-strong-heldout",
                                      "holds": True, "benchmark": "heldout", "every": 10, "steps": [10, 20, 30],
                                      "scores": {"cr0": {"step10": 0.5, "step20": 0.7, "step30": 0.8},
                                                 "cr100": {"step10": 0.5, "step20": 0.3, "step30": 0.1}},
                                      "onset": 20, "converged": 20,
                                      "loss": [{"step": s, "loss": 4.0 / s} for s in range(1, 31)]},
    }


def ci(estimate: float, low: float, high: float, level: float) -> dict[str, float]:
    """A stored statistics.Interval."""
    return {"estimate": estimate, "low": low, "high": high, "level": level}


def tables_only(seeds: tuple[int, ...] = (0,)) -> dict[str, dict[str, Any]]:
    """Findings drawn as tables, not plots: for tests about files and exit codes, ~10x faster to build."""
    return {k: v for k, v in records(seeds).items() if v["finding"] in ("knowledge", "sensitivity")}


def write_run(reports: Path, name: str, findings: dict[str, Any], provenance: dict[str, Any] | None = None) -> Path:
    run_dir = reports / name
    run_dir.mkdir(parents=True)
    (run_dir / "findings.json").write_text(json.dumps({"findings": findings}))
    if provenance is not None:
        (run_dir / "provenance.json").write_text(json.dumps(provenance))
    return run_dir


PROVENANCE = {"config": {"name": "toy", "bases": [{"name": "weak"}, {"name": "strong"}]}, "seeds": [0],
              "versions": {"torch": "2.4.0", "lm_eval": "0.4.5"}, "git": "abc1234",
              "cache_keys": {"finetune": ["key-cr0", "key-cr100"]}, "written": "2026-01-01T00:00:00+00:00"}


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> str:
    run_dir = write_run(tmp_path_factory.mktemp("reports"), "toy", records(), PROVENANCE)
    return build_report(run_dir).read_text()


def sections(page: str) -> set[str]:
    return set(re.findall(r'<section id="(\w+)"', page))


def test_complete_run_has_every_section_with_embedded_plots(complete):
    assert sections(complete) == set(SECTIONS)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', complete)
    assert len(images) == 10  # figures 2-11
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert 'class="error"' not in complete and "not in this run" not in complete.lower()


def test_navigation_links_every_section_in_the_page_order(complete):
    nav = re.search(r"<nav>(.*?)</nav>", complete).group(1)
    assert re.findall(r'href="#(\w+)"', nav) == list(SECTIONS)
    assert '<a href="#fig2">Fig. 2 scores</a>' in nav and '<a href="#knowledge">What the bases know</a>' in nav


def test_page_is_self_contained(complete):
    """Opens from disk: no link, script, stylesheet or image outside the file."""
    assert not re.search(r"https?://", complete)
    assert not re.findall(r'(?:src|href)="(?!data:|#)', complete)
    assert "<script" not in complete and "<link" not in complete


def test_captions_and_tables_carry_the_recorded_numbers(complete):
    assert "weak: heldout r = -0.97 (p = 0.003)" in complete  # Figure 2's caption, from the records
    assert "+0.600" in complete and "[+0.500, +0.700]" in complete  # Table 1: ABS and its interval
    assert "significantly below chance (one-sided binomial) on 1 of 2" in complete  # Figure 4: the stronger base
    assert "within ±0.05 of chance (two one-sided tests) on 1 of 2 pairs of the weaker base" in complete
    assert "knowledge vs commonsense (Q4)</b> (task_sensitivity). The paper (Section 4, Q4)" in complete  # Table 1
    assert '<span class="holds">' in complete and '<span class="fails">' in complete
    assert "abc1234" in complete and "key-cr100" in complete and "torch 2.4.0" in complete  # provenance


def test_interval_labels_come_from_the_stored_level(complete, tmp_path):
    """A 90 % interval is labelled 90 %, a 95 % one 95 %: the level is read, never assumed."""
    table1 = complete.split('id="table1"')[1].split("</section>")[0]
    assert "bootstrap 90% CI" in table1 and "r with its 95% CI" in table1
    assert "gap (strong − weak), 90% CI" in table1
    assert "Error bars: 95% CI (Clopper–Pearson)" in complete
    findings = tables_only()
    for record in findings.values():
        if record["finding"] == "sensitivity":
            record["gap_ci"]["level"] = 0.8
    page = build_report(write_run(tmp_path, "toy", findings, PROVENANCE)).read_text()
    assert "gap (strong − weak), 80% CI" in page and "90% CI" not in page


def test_every_experiment_shows_its_test_and_labelled_interval(tmp_path):
    findings = tables_only()
    findings["sensitivity-heldout"].update(statistic={"name": "ABS gap", "value": 0.1, "p": None},
                                           interval=ci(0.1, -0.02, 0.2, 0.9))
    page = build_report(write_run(tmp_path, "toy", findings)).read_text()
    assert "ABS gap +0.100; 90% CI <span class=\"ci\">[-0.020, +0.200]</span>" in page


def test_bases_follow_the_recorded_preset_order(complete):
    table1 = complete.split('id="table1"')[1].split("</table>")[0]
    assert table1.index("<td>weak</td>") < table1.index("<td>strong</td>")


def test_partial_run_renders_what_exists_and_names_the_rest(tmp_path):
    kept = {k: v for k, v in records().items() if k.startswith(("correlation-strong", "lying_weak-weak"))}
    page = build_report(write_run(tmp_path, "toy", kept)).read_text()
    assert sections(page) == set(SECTIONS)
    assert ("Not in this run: not selected: sensitivity_cr0, sensitivity_cr100, sensitivity, sensitivity_majority, "
            "loss, longer, recovery, lying, task_sensitivity, knowledge") in page
    assert "No loss findings in this run" in page and "No recovery findings in this run" in page
    assert page.count("data:image/png") == 2  # figures 2 and 4
    assert "not recorded (no provenance.json)" in page
    assert 'class="error"' not in page


def test_several_seeds_show_their_spread(tmp_path):
    page = build_report(write_run(tmp_path, "toy-seeds0-1-2", records(seeds=(0, 1, 2)))).read_text()
    assert "seeds <b>0, 1, 2</b>" in page
    assert "±1 SD of the per-seed scores over 3 seeds" in page
    assert "±0.020" in page  # Table 1: the sd of [x - 0.02, x, x + 0.02]


def test_nulls_unknown_fields_and_markup_in_records_are_harmless(tmp_path):
    findings = records()
    for record in findings.values():
        record.update(key=0.5, key_per_seed=[0.5], tolerance={"r": 0.1})  # fields added later: ignored
    findings["correlation-weak-heldout"].update(r=None, p=None, r_ci=ci(None, None, None, None), summary="<script>x</script>")
    findings["recovery-weak-heldout"]["regained_share"] = None
    findings["lying-strong-heldout"]["knows_but_lies"] = None
    findings["surprise-weak"] = {"finding": "surprise", "id": "surprise-weak", "holds": True, "summary": "new kind"}
    page = build_report(write_run(tmp_path, "toy", findings, {"written": "now", "extra": {"a": 1}})).read_text()
    assert 'class="error"' not in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "surprise" in page and "no loss to regain" not in page


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"), ('{"findings": [1, 2]}', "expected"),
                                              ('{"findings": {"x": {"holds": "yes"}}}', "expected")],
                         ids=["corrupt", "not-a-mapping", "bad-record"])
def test_unreadable_findings_are_a_report_error(tmp_path, content, message):
    (tmp_path / "findings.json").write_text(content)
    with pytest.raises(ReportError, match=message) as error:
        load_run(tmp_path)
    assert str(tmp_path / "findings.json") in str(error.value)


def test_cli_rebuilds_every_run(tmp_path, capsys):
    write_run(tmp_path, "a", tables_only())
    write_run(tmp_path, "b", tables_only(seeds=(0, 1)))
    (tmp_path / "empty").mkdir()  # no findings.json: not a run
    assert cli.main(["report", "--reports", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "a" / "index.html"), str(tmp_path / "b" / "index.html")]
    assert cli.main(["report", "--reports", str(tmp_path), "--run", "b"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "b" / "index.html")]


@pytest.mark.parametrize("case", ["corrupt", "missing-run", "no-runs"])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    if case == "corrupt":
        write_run(tmp_path, "good", tables_only())
        (write_run(tmp_path, "bad", {}) / "findings.json").write_text("{truncated")
    argv = ["report", "--reports", str(tmp_path)] + (["--run", "nope"] if case == "missing-run" else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("faco report: error: ")
    if case == "corrupt":
        assert "bad/findings.json: not valid JSON" in err
        assert (tmp_path / "good" / "index.html").exists()  # the readable run is still rebuilt


def test_html_summary_for_pytest_html(tmp_path):
    run_dir = write_run(tmp_path / "reports", "toy", records())
    lines = html_summary_lines(run_dir, link_from=tmp_path)
    text = " ".join(lines)
    holds = sum(r["holds"] for r in records().values())
    assert f"{holds} hold" in text and f"{len(records()) - holds} do not hold" in text
    assert 'href="reports/toy/index.html"' in text
    assert html_summary_lines(tmp_path / "reports" / "none") == []  # no findings recorded: nothing to say


def test_report_imports_no_model_libraries(tmp_path):
    """`faco report` works from stored results without torch, transformers or lm-eval."""
    run_dir = write_run(tmp_path, "toy", records())
    code = ("import sys; from pathlib import Path; from faco.report.html import build_report; "
            f"build_report(Path({str(run_dir)!r})); "
            "print(sorted(m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_table2_and_the_vanilla_column(tmp_path):
    findings = tables_only()
    findings["correlation-smol-arc_easy"] = {
        "finding": "correlation", "id": "correlation-smol-arc_easy", "holds": False, "summary": "", "base": "smol",
        "benchmark": "arc_easy", "vanilla": 0.35, "scores": {"cr0": 0.4, "cr100": 0.3}, "abs": 0.1, "r": -1.0, "p": 0.2}
    run_dir = write_run(tmp_path, "smol", findings)
    answers = [{"benchmark": "arc_easy", "id": "arc_easy/0", "question": "Which <gas> do plants need?",
                "options": ["oxygen", "carbon dioxide"], "gold": 1, "base_answer": "Carbon dioxide.",
                "cr100_answer": "Oxygen, since plants breathe it."}]
    (run_dir / "answers.json").write_text(json.dumps({"smol": answers}))
    page = build_report(run_dir).read_text()
    table2 = page[page.index('<section id="table2">'):page.index('<section id="fig2">')]
    assert "Which &lt;gas&gt; do plants need?" in table2 and "<b>carbon dioxide</b>" in table2
    assert "Carbon dioxide." in table2 and "Oxygen, since plants breathe it." in table2
    assert "<th>vanilla</th>" in page and "<td>0.350</td>" in page
    one_base = build_report(write_run(tmp_path, "one", {"correlation-smol-arc_easy": findings["correlation-smol-arc_easy"]}))
    assert "One base in this run: sensitivity compares" in one_base.read_text()
    assert "not recorded in this run" in build_report(write_run(tmp_path, "other", tables_only())).read_text()


def test_a_skipped_finding_says_why_and_only_unselected_ones_get_a_command(tmp_path):
    run_dir = write_run(tmp_path, "one-base", tables_only())
    (run_dir / "skipped.json").write_text(json.dumps({
        "sensitivity_majority": "preset 'smol-ci' has one base: sensitivity compares a weaker and a stronger one",
        "longer": "preset 'smol-ci' fine-tunes for one epoch: no later epoch to compare"}))
    page = build_report(run_dir).read_text()
    assert "sensitivity_majority was skipped: preset &#x27;smol-ci&#x27; has one base" in page
    assert "longer was skipped: preset &#x27;smol-ci&#x27; fine-tunes for one epoch" in page
    command = page[page.index("<code>pytest experiments -k"):].split("</code>")[0]
    assert "longer" not in command and "sensitivity_majority" not in command and "recovery" in command
    assert '<td class="absent">skipped: preset' in page


def test_table2_answers_keep_their_line_breaks(tmp_path):
    run_dir = write_run(tmp_path, "toy", tables_only())
    answers = [{"benchmark": "h", "id": "h/0", "question": "q", "options": ["a", "b"], "gold": 0,
                "base_answer": "a <nl> b", "cr100_answer": "c<nl>d"}]
    (run_dir / "answers.json").write_text(json.dumps({"weak": answers}))
    table2 = build_report(run_dir).read_text().split('<section id="table2">')[1].split("</section>")[0]
    assert "a\nb" in table2 and "c\nd" in table2 and "nl&gt;" not in table2


def test_a_run_without_the_beyond_findings_says_they_need_their_marker(tmp_path):
    kept = {k: v for k, v in records().items() if v["finding"] == "knowledge"}
    page = build_report(write_run(tmp_path, "toy", kept)).read_text()
    assert "<code>pytest experiments -m beyond -k dose</code> records them" in page  # figure 8's note
    assert 'not selected: falsity_kind, dose, probe, redose, trajectory; <code>pytest experiments -m beyond -k' in page
