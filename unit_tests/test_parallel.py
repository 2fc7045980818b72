"""The parallel prebuild (faco.study.parallel): what it plans from the selected tests, and that a run built by
one-thread worker processes gives bit-identical checkpoints and scores to a serial run.

    python -m pytest unit_tests/test_parallel.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faco.config.load import load_preset, smoke
from faco.config.schema import Preset
from faco.core.cache import Cache
from faco.evaluation.groups import ALL
from faco.findings import registry
from faco.study import parallel
from faco.study.study import Study, finetuned, recovered


def plan(selected: list[tuple[str, dict]], preset: Preset, seeds: list[int]) -> list[parallel.Job]:
    """The plan of the selected tests, as the plugin makes it: the registry says what each reads."""
    return parallel.plan(registry.reads(selected, preset), preset, seeds)


def every_experiment(preset: Preset) -> list[tuple[str, dict]]:
    """(finding, parameters) of every experiment, parametrized as the plugin does (one benchmark each)."""
    bases = [b.name for b in preset.bases]
    per_base = [(name, {"faco_base": b, "faco_benchmark": "heldout"}) for b in bases
                for name in ("knowledge", "correlation", "loss", "recovery", "lying")]
    longer = [("longer", {"faco_base": b, "faco_ratio": r}) for b in bases for r in preset.corruption.ratios]
    return [*per_base, *longer, ("sensitivity", {"faco_benchmark": "heldout"}), ("sensitivity_majority", {})]


def test_plan_reads_only_what_the_selection_needs():
    preset = smoke()
    selected = [("lying", {"faco_base": "strong", "faco_heldout": "heldout"}),
                ("longer", {"faco_base": "strong", "faco_ratio": 100}),
                ("recovery", {"faco_base": "strong", "faco_group": "indomain"})]
    jobs = plan(selected, preset, [0, 1])
    runs = {(j.seed, j.base, j.ratio, j.recovered): j for j in jobs}
    assert set(runs) == {(s, b, None, False) for s in (0, 1) for b in ("weak", "strong")} | {
        (s, "strong", r, rec) for s in (0, 1) for r, rec in ((0, False), (100, False), (100, True))}
    assert set(runs[0, "strong", 100, False].reads) == {(1, "instruction"), (2, "instruction")}  # every epoch
    assert runs[0, "strong", None, False].reads == ((None, "familiar"),)  # lying asks what the base knows
    assert runs[0, "weak", None, False].reads == ()  # pre-training only
    first = preset.bases[0].name
    assert runs[1, "strong", 100, True].after(first) == (1, "strong", 100, False)
    assert runs[1, "strong", 0, False].after(first) == (1, "weak", None, False)  # the seed's pre-training


def test_tiny_plan_of_every_experiment():
    """Every base, every CR and the recovery run; evaluated after each epoch (longer reads them all)."""
    preset = load_preset("tiny")
    jobs = plan(every_experiment(preset), preset, [0, 1, 2])
    runs = {(j.seed, j.base, j.ratio, j.recovered): j.reads for j in jobs}
    assert len(jobs) == 3 * (2 + 2 * 5 + 2)  # seeds x (bases, bases x CRs, recoveries)
    every_epoch = ((1, "instruction"), (2, "instruction"), (3, "instruction"))
    assert all(runs[s, b, r, False] == every_epoch for s in (0, 1, 2) for b in ("weak", "strong") for r in (0, 50, 100))
    assert runs[2, "weak", None, False] == ((None, "familiar"),)  # knowledge and lying: what the base knows
    assert runs[1, "strong", 100, True] == ((None, "instruction"),)


def test_tiny_plan_of_one_experiment_reads_its_last_epoch_only():
    preset = load_preset("tiny")
    jobs = plan([("correlation", {"faco_base": "weak", "faco_benchmark": "heldout"})], preset, [0])
    assert [(j.base, j.ratio, j.reads) for j in jobs] == [
        ("strong", None, ()), ("weak", 0, ((3, "instruction"),)), ("weak", 100, ((3, "instruction"),)),
        ("weak", 25, ((3, "instruction"),)), ("weak", 50, ((3, "instruction"),)),
        ("weak", 75, ((3, "instruction"),)), ("weak", None, ())]


def test_smol_ci_plan_of_every_experiment():
    preset = load_preset("smol-ci")
    jobs = plan(every_experiment(preset), preset, [0])
    assert [(j.base, j.ratio, j.recovered, j.reads) for j in jobs] == [
        ("smol", 0, False, ((1, "instruction"),)), ("smol", 100, False, ((1, "instruction"),)),
        ("smol", 100, True, ((None, "instruction"),)), ("smol", 50, False, ((1, "instruction"),)),
        ("smol", None, False, ((None, "familiar"),))]


def test_real_presets_build_in_the_test_process():
    assert parallel.default_workers(smoke()) >= 1
    assert parallel.default_workers(load_preset("smol-ci")) == 1  # a real base: GPU or accelerate, not cores


def test_an_unknown_finding_plans_only_pretraining():
    jobs = plan([("my_finding", {"faco_base": "weak"})], smoke(), [0])
    assert {(j.ratio, j.reads) for j in jobs} == {(None, ())}


@pytest.mark.slow
def test_parallel_build_is_bit_identical_to_serial(tmp_path: Path):
    preset = smoke()
    selected = [("recovery", {"faco_base": "strong", "faco_group": "heldout"})]
    jobs = plan(selected, preset, [0, 1])
    assert parallel.prebuild(preset, tmp_path / "parallel", jobs, workers=2) == len(jobs)
    assert parallel.prebuild(preset, tmp_path / "parallel", jobs, workers=2) == 0  # warm: no process started
    for seed in (0, 1):
        serial = Study(preset.replace(seed=seed), Cache(tmp_path / "serial"))
        prebuilt = Study(preset.replace(seed=seed), Cache(tmp_path / "parallel"))
        for model in (finetuned("strong", 100), recovered("strong")):
            assert serial.samples(model, ALL) == prebuilt.samples(model, ALL)
            weights = [(s.checkpoint(model).path / "model.safetensors").read_bytes() for s in (serial, prebuilt)]
            assert weights[0] == weights[1]
        assert serial.losses("strong", 0) == prebuilt.losses("strong", 0)
    built = {p.parent.parent.name for p in (tmp_path / "parallel").glob("*/*/MANIFEST.json")}
    assert {"pretrain", "finetune", "recover", "eval"} <= built
