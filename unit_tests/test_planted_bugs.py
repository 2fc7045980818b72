"""The planted-bug check (benchmarks/planted_bugs.py) stays runnable: every bug's line is still in the
code, once, and the patched file still parses. The check itself trains (minutes); run it by hand.

    python -m pytest unit_tests/test_planted_bugs.py -q
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("planted_bugs", ROOT / "benchmarks" / "planted_bugs.py")
planted_bugs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(planted_bugs)


@pytest.mark.parametrize("bug", planted_bugs.BUGS)
def test_each_bug_still_applies(bug, tmp_path):
    filename, text, _ = planted_bugs.BUGS[bug]
    assert set(planted_bugs.TARGETS[bug]) <= {spec.name for spec in planted_bugs.FINDINGS}
    (tmp_path / filename).parent.mkdir(parents=True)
    (tmp_path / filename).write_text((ROOT / filename).read_text())
    planted_bugs.plant(tmp_path, bug)
    patched = (tmp_path / filename).read_text()
    assert patched != (ROOT / filename).read_text() and "planted" in patched
    ast.parse(patched)


def test_failures_are_read_from_junit_and_named_by_experiment_id(tmp_path):
    junit = tmp_path / "run.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="experiments.test_recovery" name="test_recovery[weak-heldout]">'
        '<failure message="recovery-weak-heldout: key numbers moved beyond their tolerance"/></testcase>'
        '<testcase classname="experiments.test_lying" name="test_lying[strong-history]">'
        '<failure message="[XPASS(strict)] known negative"/></testcase>'
        '<testcase classname="experiments.test_bases" name="test_knowledge[weak-indomain]"/>'
        '<testcase classname="experiments.test_corruption" name="test_sensitivity_cr0">'
        '<failure message="sensitivity_cr0: key numbers moved beyond their tolerance"/></testcase>'
        '</testsuite></testsuites>')
    assert planted_bugs.failures(junit) == {"recovery-weak-heldout": "numbers", "lying-strong-history": "verdict",
                                            "sensitivity_cr0": "numbers"}  # an unparametrized one: its finding


def test_every_finding_has_a_bug_aimed_at_it_or_says_why_not():
    assert set(planted_bugs.TARGETS) == set(planted_bugs.BUGS)
    aimed = {finding for targets in planted_bugs.TARGETS.values() for finding in targets}
    assert {spec.name for spec in planted_bugs.FINDINGS} == aimed | set(planted_bugs.UNREACHED)


def test_a_bug_no_cache_key_sees_never_starts_from_a_warm_cache():
    """A warm cache would serve what the unpatched code built; every bug in faco/study/stages.py (its build
    functions are in no stage's code key) is listed to start cold."""
    in_stages = {bug for bug, (filename, _, _) in planted_bugs.BUGS.items() if filename == "faco/study/stages.py"}
    assert in_stages <= planted_bugs.FRESH_ONLY
