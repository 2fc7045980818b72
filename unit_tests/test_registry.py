"""The findings registry is the one list of findings: experiments, README, the prebuild plan, the sweep
and the report agree with it, and a finding added to it alone reaches all of them.

    python -m pytest unit_tests/test_registry.py -q
"""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest

from faco.config.load import smoke
from faco.findings import registry
from faco.report.common import Run
from faco.report.figures import figure_missing
from faco.report.html import OWN_SECTIONS, navigation, render
from faco.study import execution
from faco.study.reads import Read

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


def test_every_section_of_a_finding_is_in_the_report_navigation():
    nav = navigation("")
    links = [f'<a href="#{s.anchor}">{s.label}</a>' for spec in registry.FINDINGS for s in spec.sections]
    assert all(link in nav for link in links) and nav.count("<a ") == len(set(links)) + len(OWN_SECTIONS)
    assert {spec.shown_at for spec in registry.FINDINGS} <= set(registry.sections())


def test_a_finding_shown_nowhere_is_refused():
    with pytest.raises(ValueError, match="'toy': declares neither a report section nor a figure"):
        registry.FindingSpec("toy", "q", "holds", "The paper: p.", "ref", "experiments/test_toy.py::test_toy", "-")


TOY = registry.FindingSpec(
    "toy", "Does the toy hold?", "the toy number grows with the axis", "The paper: nothing about toys.",
    "nowhere", "experiments/test_toy.py::test_toy", "Toy section", section=registry.Section("toy", "Toy section"),
    reads=lambda base, preset, params: [Read(base, params["faco_ratio"], False, 1, "toy-layout")],
    key_number=registry.KeyNumber("toy number", lambda r: (r["toy"], [r["toy"] - 0.1, r["toy"] + 0.1])))


def toy_sweep(values: tuple[float, ...]) -> dict[str, dict]:
    """The records a sweep of the toy finding over finetune.lr would store."""
    return {f"toy-finetune.lr={v}": {"finding": "toy", "id": f"toy-finetune.lr={v}", "holds": v > 1e-3,
                                     "summary": f"toy {v}", "toy": v * 1000,
                                     "sweep": {"field": "finetune.lr", "value": v, "id": "toy"}} for v in values}


def test_a_new_finding_reaches_plan_sweep_and_navigation_from_its_entry_alone(monkeypatch):
    monkeypatch.setattr(registry, "FINDINGS", (*registry.FINDINGS, TOY))
    preset = smoke()
    reads = registry.reads([("toy", {"faco_base": "weak", "faco_ratio": 25})], preset)
    jobs = execution.plan(preset, Path("/nonexistent"), [0], execution.wanted(reads))
    assert [str(r) for j in jobs for r in j.requests] == [
        "pretrain", "finetune base=weak ratio=25", "eval model=weak cr25 epoch 1 layout=toy-layout"]
    page = render(Run("toy-sweep", toy_sweep((1e-3, 3e-3)), None, "not recorded", datetime.now(timezone.utc)))
    assert "could not render" not in page
    assert "<tr><td>toy</td><td>0.003</td><td>3.000</td><td>[2.900, 3.100]</td><td>holds</td></tr>" in page
    assert "<tr><td>toy</td><td>0.001</td><td>1.000</td><td>[0.900, 1.100]</td><td>does not hold</td></tr>" in page
    assert '<a href="#toy">Toy section</a>' in page.split("</nav>")[0]


def test_each_base_answers_for_one_lying_form_and_one_base_for_the_strong_one():
    two = smoke()  # weak, strong
    assert [registry.lying_form(two, b.name) for b in two.bases] == ["weak", "strong"]
    one = two.replace(bases=two.bases[1:])
    assert registry.lying_form(one, one.bases[0].name) == "strong"  # a one-base preset asserts the stronger form
    weak_reads = registry.reads([("lying_weak", {"faco_base": "weak", "faco_heldout": "heldout"}),
                                 ("lying", {"faco_base": "weak", "faco_heldout": "heldout"})], two)
    assert [r.ratio for r in weak_reads] == [100, None]  # lying_weak's two reads; lying reads nothing of it


def test_longer_at_cr100_reads_cr0s_first_and_last_epoch_too():
    preset = smoke()
    last = preset.finetune.epochs
    at100 = registry.reads([("longer", {"faco_base": "strong", "faco_ratio": 100})], preset)
    assert {(r.ratio, r.epoch) for r in at100} == {(100, e) for e in range(1, last + 1)} | {(0, 1), (0, last)}
    at50 = registry.reads([("longer", {"faco_base": "strong", "faco_ratio": 50})], preset)
    assert {r.ratio for r in at50} == {50}
