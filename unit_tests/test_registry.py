"""The findings registry is the one list of findings: experiments, README and report agree with it.

    python -m pytest unit_tests/test_registry.py -q
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from faco.findings import registry
from faco.report.figures import figure_missing

ROOT = Path(__file__).resolve().parents[1]


def experiment_markers() -> dict[str, str]:
    """{finding name: "experiments/<file>::<test>"} from the `@pytest.mark.finding(...)` decorators."""
    found = {}
    for path in sorted((ROOT / "experiments").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for decorator in node.decorator_list:
                    if (isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.finding"):
                        found[decorator.args[0].value] = f"experiments/{path.name}::{node.name}"
    return found


def test_every_experiment_is_registered_and_every_entry_has_its_experiment():
    assert experiment_markers() == {spec.name: spec.experiment for spec in registry.FINDINGS}


def test_names_are_unique_and_figures_numbered_once():
    assert len(set(registry.NAMES)) == len(registry.NAMES)
    numbers = [spec.figure.number for spec in registry.FINDINGS if spec.figure]
    assert len(set(numbers)) == len(numbers)


def test_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert registry.markdown_table() in readme, "README's findings table differs from faco.findings.registry.markdown_table()"


@pytest.mark.parametrize("spec", [s for s in registry.FINDINGS if s.figure], ids=lambda s: s.name)
def test_each_figure_is_titled_and_captioned_from_the_registry(spec):
    html = figure_missing(spec.figure.number)
    assert f'id="fig{spec.figure.number}"' in html and spec.figure.title in html
    assert f"No {spec.name} findings in this run" in html


def test_report_anchors_exist():
    from faco.report.html import NAV

    anchors = {anchor for anchor, _ in NAV}
    assert {spec.shown_at.anchor for spec in registry.FINDINGS} <= anchors
