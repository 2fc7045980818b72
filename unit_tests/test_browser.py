"""The report in a real browser: headless Chromium renders a generated report at 1280 px, and the check
fails on what a reader would hit: sideways scrolling (a long unbroken answer that widens the page), an
image that did not load, an in-page link to nowhere, a script error. Skips, saying why, without Chromium.

    python -m pytest unit_tests/test_browser.py -q
"""

from __future__ import annotations

import json

import pytest

from faco.report import browser, html
from faco.report.html import build_report

from test_report import PROVENANCE, tables_only, write_run

try:
    browser.browser()
except browser.BrowserError as error:
    pytestmark = pytest.mark.skip(reason=f"{error}: the report's browser check cannot run here")

LONG = "x" * 4000  # one unbroken word: the planted overflow


def report(tmp_path, answer: str = "Oxygen,<nl>since plants breathe it."):
    run_dir = write_run(tmp_path, "toy", tables_only(), PROVENANCE)
    answers = [{"benchmark": "history", "id": "h/0", "question": "Who ruled " + LONG + "?", "options": ["a", "b"],
                "gold": 0, "base_answer": "a", "cr100_answer": answer}]
    (run_dir / "answers.json").write_text(json.dumps({"weak": answers}))
    build_report(run_dir)
    return run_dir


def test_a_report_with_long_unbroken_answers_fits_the_window(tmp_path):
    run_dir = report(tmp_path, answer=LONG)
    rendered = browser.check(run_dir)
    assert rendered.problems == []
    assert rendered.scroll_width <= rendered.width == browser.WIDTH
    assert (run_dir / "screenshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_table_that_does_not_wrap_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(html, "CSS", html.CSS.replace("overflow-wrap:anywhere", "overflow-wrap:normal")
                        .replace("table-layout:fixed;", ""))
    problems = browser.check(report(tmp_path, answer=LONG)).problems
    assert len(problems) == 1 and "sideways scrolling" in problems[0] and "table2" in problems[0]


def test_a_missing_image_a_dead_link_and_a_script_error_are_caught(tmp_path):
    run_dir = report(tmp_path)
    page = run_dir / "index.html"
    planted = ('<img src="missing.png" alt="planted figure"><a href="#nowhere">dead</a>'
               '<script>undefinedFunction()</script></body>')
    page.write_text(page.read_text().replace("</body>", planted))
    problems = browser.render(page).problems
    assert any("image did not load: planted figure" in p for p in problems)
    assert any("in-page link to nowhere: #nowhere" in p for p in problems)
    assert any("undefinedFunction" in p for p in problems)
