"""Cache keys of content, never of paths: the same study built in two caches at different paths gets the
same key at every stage, and a cache moved elsewhere stays warm (nothing is trained, evaluated or asked
of a teacher again). Jobs on other machines mount a shared cache at other paths; a key that held a path
would re-train everything there.

    python -m pytest unit_tests/test_cache_location.py -q
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import pytest

from faco.core.cache import Cache
from faco.config.load import load_preset, smoke
from faco.data.sources import source_spec
from faco.evaluation.groups import ALL
from faco.study.stages import Request
from faco.study.study import Study, finetuned, recovered, untuned

pytestmark = pytest.mark.slow


def read_everything(study: Study) -> dict[str, list[str]]:
    """Every stage the experiments read (bases, every CR and epoch, recovery, each layout): its keys."""
    preset = study.preset
    for name in (b.name for b in preset.bases):
        study.samples(untuned(name), ALL, "familiar")
        for ratio in preset.corruption.ratios:
            for epoch in range(1, preset.finetune.epochs + 1):
                study.samples(finetuned(name, ratio, epoch), ALL)
        study.samples(recovered(name), ALL)
    return {stage: sorted(keys) for stage, keys in study.used.items()}


def built(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "faco.core.cache" and r.getMessage().startswith("build ")]


def test_the_smoke_study_has_the_same_keys_in_any_cache_and_stays_warm_when_moved(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="faco.core.cache")
    first = read_everything(Study(smoke(), Cache(tmp_path / "one" / "cache")))
    second = read_everything(Study(smoke(), Cache(tmp_path / "elsewhere" / "deeper" / "cache")))
    assert first == second and {"pretrain", "finetune", "recover", "tasks", "eval"} <= set(first)
    moved = shutil.move(tmp_path / "one" / "cache", tmp_path / "moved")
    shutil.rmtree(Path(moved) / "eval")  # scored again: the task files and checkpoints must be read where they now lie
    caplog.clear()
    warm = read_everything(Study(smoke(), Cache(Path(moved))))
    assert warm == first
    assert {message.split()[1].split("/")[0] for message in built(caplog)} == {"eval"}  # nothing else rebuilt


def smol_ci_keys(study: Study) -> dict[str, str]:
    """The smol-ci stage keys that follow from its items and its converted base (no training needed)."""
    preset, keys = study.preset, {"items": study.key(study.items_request)}
    for name in (b.name for b in preset.bases):
        keys[f"base {name}"] = study.checkpoint(untuned(name)).key
        for ratio in preset.corruption.ratios:
            keys[f"finetune {name} cr{ratio}"] = study.key(Request.of("finetune", base=name, ratio=ratio))
    return keys


def reading(preset, data: Path):  # noqa: ANN001, ANN201 - a Preset that builds its items from `data`
    build = dataclasses.replace(preset.items.build, data_dir=str(data))
    return preset.replace(items=dataclasses.replace(preset.items, build=build))


@pytest.mark.server
def test_smol_ci_items_have_the_same_keys_in_any_cache(tmp_path, caplog, shared_datasets):
    """The served teacher's directory lies inside each cache; items and replies name its weights' key."""
    caplog.set_level(logging.INFO, logger="faco.core.cache")
    preset = load_preset("smol-ci")
    copy = tmp_path / "data-elsewhere"  # the same source files at another path: the same items
    for relative in (r for name in preset.items.build.sources for r in source_spec(name).local):
        source, target = shared_datasets / relative, copy / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
    one = Cache(tmp_path / "one")
    first = smol_ci_keys(Study(reading(preset, shared_datasets), one))
    other = Cache(tmp_path / "two" / "deeper")  # the replies copied: what was paid for is reused, not re-asked
    (other.root / "teacher").mkdir(parents=True)
    shutil.copy(one.root / "teacher" / "replies.sqlite", other.root / "teacher" / "replies.sqlite")
    assert smol_ci_keys(Study(reading(preset, copy), other)) == first
    moved = Cache(Path(shutil.move(one.root, tmp_path / "moved")))
    caplog.clear()
    assert smol_ci_keys(Study(reading(preset, shared_datasets), moved)) == first
    assert built(caplog) == []  # no conversion, no server, no teacher request
