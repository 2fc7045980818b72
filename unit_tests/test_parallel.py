"""The parallel prebuild (faco.study.parallel): what it plans from the selected tests, and that a run built by
one-thread worker processes gives bit-identical checkpoints and scores to a serial run.

    python -m pytest unit_tests/test_parallel.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faco.study import parallel
from faco.core.cache import Cache
from faco.config.load import smoke
from faco.evaluation.groups import ALL
from faco.study.study import Study, finetuned, recovered


def test_plan_reads_only_what_the_selection_needs():
    preset = smoke()
    selected = [("lying", {"faco_base": "strong", "faco_heldout": "heldout"}),
                ("longer", {"faco_base": "strong", "faco_ratio": 100}),
                ("recovery", {"faco_base": "strong", "faco_group": "indomain"})]
    jobs = parallel.plan(selected, preset, [0, 1])
    runs = {(j.seed, j.base, j.ratio, j.recovered): j for j in jobs}
    assert set(runs) == {(s, b, None, False) for s in (0, 1) for b in ("weak", "strong")} | {
        (s, "strong", r, rec) for s in (0, 1) for r, rec in ((0, False), (100, False), (100, True))}
    assert set(runs[0, "strong", 100, False].reads) == {(1, "instruction"), (2, "instruction")}  # every epoch
    assert runs[0, "strong", None, False].reads == ((None, "familiar"),)  # lying asks what the base knows
    assert runs[0, "weak", None, False].reads == ()  # pre-training only
    first = preset.bases[0].name
    assert runs[1, "strong", 100, True].after(first) == (1, "strong", 100, False)
    assert runs[1, "strong", 0, False].after(first) == (1, "weak", None, False)  # the seed's pre-training


def test_real_presets_build_in_the_test_process():
    from faco.config.load import load_preset

    assert parallel.default_workers(smoke()) >= 1
    assert parallel.default_workers(load_preset("smol-ci")) == 1  # a real base: GPU or accelerate, not cores


def test_an_unknown_finding_plans_only_pretraining():
    jobs = parallel.plan([("my_finding", {"faco_base": "weak"})], smoke(), [0])
    assert {(j.ratio, j.reads) for j in jobs} == {(None, ())}


@pytest.mark.slow
def test_parallel_build_is_bit_identical_to_serial(tmp_path: Path):
    preset = smoke()
    selected = [("recovery", {"faco_base": "strong", "faco_group": "heldout"})]
    jobs = parallel.plan(selected, preset, [0, 1])
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
