"""--faco-sweep: the study once per value of one numeric preset field, on the smoke preset.

Parsing refuses what cannot be swept (faco.study.sweep); a swept run parametrizes the study (one per value),
records the axis in every finding, checks no baseline, and its report draws the key numbers against the
axis (faco.report.sweep, each finding's key number read as its registry entry says).

    python -m pytest unit_tests/test_sweep.py -q
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import datasets  # noqa: F401 - in-process pytester runs must not import it twice (pyarrow types)
import pytest

from faco.config.load import smoke
from faco.config.schema import ConfigError
from faco.report.common import Run
from faco.report.sweep import sweep_section
from faco.study import sweep

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("text, message", [
    ("finetune.lr=0.001", "two or more distinct values"),
    ("finetune.lr=0.001,0.001", "two or more distinct values"),
    ("evaluation.formats=cloze,letter", "numeric field"),
    ("finetune.gradient_checkpointing=true,false", "numeric field"),
    ("finetune.lr=0.001,-1", "lr must be"),
    ("finetune.nonsense=1,2", "numeric field"),
    ("items.per_training_domain=10,ten", "items.per_training_domain"),
])
def test_parse_refuses_what_cannot_be_swept(text, message):
    with pytest.raises(ConfigError, match=message):
        sweep.parse(smoke(), text)


def test_parse_keeps_field_and_values():
    assert sweep.parse(smoke(), "finetune.epochs=2, 3") == ("finetune.epochs", ["2", "3"])


def test_an_items_sweep_grows_the_world_only_past_what_it_holds():
    preset = smoke()
    held_back = preset.evaluation.heldback_per_domain
    holds = preset.world.facts_per_domain - held_back
    same = sweep.point(preset, "items.per_training_domain", str(holds - 1))
    grown = sweep.point(preset, "items.per_training_domain", str(holds + 5))
    assert (same.items.per_training_domain, same.world) == (holds - 1, preset.world)
    assert grown.items.per_training_domain == holds + 5
    assert grown.world.facts_per_domain == holds + 5 + held_back
    assert sweep.parse(preset, f"items.per_training_domain={holds},{2 * holds}")[1] == [str(holds), str(2 * holds)]


def swept(finding: str, id_: str, value: float, holds: bool, **numbers) -> dict:
    """A record as a sweep over finetune.lr stores it."""
    return {"finding": finding, "id": f"{id_}-finetune.lr={value}", "holds": holds, "summary": "",
            "sweep": {"field": "finetune.lr", "value": value, "id": id_}, **numbers}


def test_the_sweep_section_reads_each_key_number_from_the_registry():
    records = [swept("longer", f"longer-strong-cr{r}", v, True, ratio=r, change=-0.02 * r / 100, scores=[0, 0, 0])
               for r in (0, 100) for v in (1e-3, 3e-3)]
    records += [swept("lying", "lying-strong-heldout", v, v > 2e-3, cr100={"rate": 0.2, "chance": 0.25},
                      seed_clustered_ci={"low": 0.15, "high": 0.24}) for v in (1e-3, 3e-3)]
    page = sweep_section(Run("sweep", {r["id"]: r for r in records}, None, "", datetime.now(timezone.utc)))
    assert page.count("<tr><td>longer-strong-cr100</td>") == 2 and "longer-strong-cr0<" not in page  # CR 100 only
    assert "<tr><td>longer-strong-cr100</td><td>0.001</td><td>-0.010</td><td>[nan, nan]</td>" in page  # per epoch
    assert ("<tr><td>lying-strong-heldout</td><td>0.003</td><td>0.200</td><td>[0.150, 0.240]</td><td>holds</td>"
            in page)
    assert page.index("longer-strong-cr100") < page.index("lying-strong-heldout")  # the registry's order


EXPERIMENT = '''
import datasets  # noqa: F401
import pytest


@pytest.mark.finding("recovery")
def test_recovery(faco_study, faco_finding, faco_base):
    lr = faco_study.preset.finetune.lr
    faco_finding(holds=lr > 0.002, summary=f"lr {lr}", base=faco_base, regained_share=lr * 100)
'''


def test_sweep_records_the_axis_and_draws_it(pytester):
    pytester.makeini("[pytest]\n")
    (pytester.path / "experiments" / "baselines").mkdir(parents=True)
    pytester.makepyfile(test_toy=EXPERIMENT)
    result = pytester.runpytest_inprocess("--faco-preset", "smoke", "--faco-sweep", "finetune.lr=0.001,0.003",
                                          "--faco-workers", "1", "--faco-cache", str(pytester.path / "cache"),
                                          "--faco-reports", str(pytester.path / "reports"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, xfailed=2)  # no baseline: a finding that does not hold is an xfail
    result.stdout.fnmatch_lines(["*faco findings (smoke-sweep-finetune.lr)*",
                                 "*recovery-strong-finetune.lr=0.003*holds*lr 0.003*"])
    run = pytester.path / "reports" / "smoke-sweep-finetune.lr"
    findings = json.loads((run / "findings.json").read_text())["findings"]
    assert findings["recovery-weak-finetune.lr=0.001"]["sweep"] == {"field": "finetune.lr", "value": 0.001,
                                                                     "id": "recovery-weak"}
    assert not list((pytester.path / "experiments" / "baselines").glob("*.json"))
    page = (run / "index.html").read_text()
    assert "Sweep over finetune.lr" in page and "data:image/png" in page and "could not render" not in page
