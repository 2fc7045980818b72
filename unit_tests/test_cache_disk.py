"""The cache within a disk and read budget: a warm read hashes nothing whose stat times vouch for it, a
changed file is still found, a scored epoch's export is dropped with the entry still verifiable, and
`faco verify` re-hashes everything.

    python -m pytest unit_tests/test_cache_disk.py -q
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from faco import cli
from faco.config.load import load_preset
from faco.core import cache as cache_module
from faco.core.cache import MANIFEST, Cache, CacheError
from faco.study.stages import Request
from faco.study.study import Study, finetuned


def _run(workdir: Path) -> None:
    """A fine-tuning entry's shape: one directory per epoch, and the losses."""
    for epoch in (1, 2, 3):
        (workdir / f"epoch-{epoch}").mkdir()
        (workdir / f"epoch-{epoch}" / "model.safetensors").write_bytes(bytes([epoch]) * 4096)
        (workdir / f"epoch-{epoch}" / "config.json").write_text("{}")
    (workdir / "log.json").write_text("[]")


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = cache_module.sha256_file
    monkeypatch.setattr(cache_module, "sha256_file", lambda path: hashed.append(path) or real(path))
    return hashed


def test_a_warm_read_hashes_nothing_whose_times_are_the_manifests(tmp_path, monkeypatch):
    Cache(tmp_path).get_or_build("finetune", "k1", _run)
    hashed = _no_hashing(monkeypatch)
    warm = Cache(tmp_path)  # another process on the same root
    assert warm.has("finetune", "k1")
    assert warm.get_or_build("finetune", "k1", pytest.fail) == tmp_path / "finetune" / "k1"
    assert hashed == []


def test_a_same_size_edit_is_found_even_with_its_mtime_set_back(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    entry = cache.get_or_build("finetune", "k1", _run)
    weights = entry / "epoch-2" / "model.safetensors"
    before = weights.stat()
    weights.write_bytes(b"\x00" * 4096)  # same size
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # the mtime back; the ctime cannot go back
    assert not cache.has("finetune", "k1")
    built = []
    cache.get_or_build("finetune", "k1", lambda out: built.append(out) or _run(out))
    assert built and list((tmp_path / "finetune").glob("k1.corrupt-*"))  # moved aside, rebuilt


def test_an_entry_whose_times_changed_is_hashed_once_then_trusted(tmp_path, monkeypatch):
    """A copied cache (new ctimes) or a manifest from before the times were recorded: the locked path
    hashes it fully and records the times, so the next read is fast again."""
    cache = Cache(tmp_path)
    entry = cache.get_or_build("finetune", "k1", _run)
    manifest = json.loads((entry / MANIFEST).read_text())
    for spec in manifest["files"].values():
        del spec["mtime_ns"], spec["ctime_ns"]
    (entry / MANIFEST).write_text(json.dumps(manifest))
    hashed = _no_hashing(monkeypatch)
    assert cache.get_or_build("finetune", "k1", pytest.fail) == entry
    assert len(hashed) == len(manifest["files"])
    hashed.clear()
    assert Cache(tmp_path).get_or_build("finetune", "k1", pytest.fail) == entry and hashed == []


def test_evict_drops_files_and_the_entry_still_verifies(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.get_or_build("finetune", "k1", _run)
    freed = cache.evict("finetune", "k1", "epoch-1/", "scored")
    assert freed == 4096 + 2 and not (entry / "epoch-1").exists()
    assert set(cache.evicted("finetune", "k1")) == {"epoch-1/model.safetensors", "epoch-1/config.json"}
    assert cache.has("finetune", "k1") and cache.check("finetune", "k1") is None
    assert cache.evict("finetune", "k1", "epoch-1/", "scored") == 0  # a warm rerun: nothing left to drop
    assert (entry / "epoch-3" / "model.safetensors").is_file()


def test_an_eviction_cut_short_leaves_a_verifiable_entry(tmp_path, monkeypatch):
    """The manifest is rewritten before any file goes: a kill between leaves stray files, not a corrupt entry."""
    cache = Cache(tmp_path)
    cache.get_or_build("finetune", "k1", _run)
    unlink, deleted = Path.unlink, []

    def killed_after_one(self: Path, missing_ok: bool = False) -> None:
        if deleted:
            raise KeyboardInterrupt
        deleted.append(self)
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        cache.evict("finetune", "k1", "epoch-2/", "scored")
    monkeypatch.undo()
    left = list((tmp_path / "finetune" / "k1" / "epoch-2").iterdir())
    assert len(deleted) == 1 and len(left) == 1  # one file gone, one stray
    assert cache.check("finetune", "k1") is None and cache.has("finetune", "k1")


def test_faco_verify_rehashes_and_lists_the_corrupt_entries(tmp_path, capsys):
    cache = Cache(tmp_path)
    cache.get_or_build("finetune", "k1", _run)
    cache.get_or_build("finetune", "k2", _run)
    cache.get_or_build_json("eval", "k3", lambda: {"acc": 0.5})
    cache.evict("finetune", "k2", "epoch-1/", "scored")
    assert cli.main(["verify", "--cache", str(tmp_path)]) == 0
    assert "3 entries" in capsys.readouterr().out
    weights = tmp_path / "finetune" / "k1" / "epoch-3" / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"\x07" * 4096)  # same size; times set back as far as they go: only a hash tells
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cli.main(["verify", "--cache", str(tmp_path), "--stage", "finetune"]) == 1
    out = capsys.readouterr().out
    assert "corrupt: cache entry finetune/k1" in out and "epoch-3/model.safetensors" in out and "k2" not in out.split("faco verify")[0]


# --- the study drops a scored epoch's export -----------------------------------------------------------

def _study(tmp_path: Path, keep: bool) -> Study:
    preset = load_preset("smoke")
    preset = preset.replace(finetune=dataclasses.replace(preset.finetune, epochs=3, keep_epoch_checkpoints=keep))
    return Study(preset, Cache(tmp_path))


def test_the_keep_setting_is_not_in_the_fine_tuning_key(tmp_path):
    run = Request.of("finetune", base=_study(tmp_path, True).preset.bases[0].name, ratio=100)
    assert _study(tmp_path, True).key(run) == _study(tmp_path, False).key(run)


@pytest.mark.parametrize("keep", [True, False])
def test_a_scored_epoch_is_dropped_unless_kept_and_the_last_never(tmp_path, keep):
    study = _study(tmp_path, keep)
    base = study.preset.bases[0].name
    run = Request.of("finetune", base=base, ratio=100)
    entry = study.cache.get_or_build("finetune", study.key(run), _run)
    for epoch in (1, 3):
        study._drop_epochs(Request.of("eval", model=finetuned(base, 100, epoch), layout="instruction"))
    assert (entry / "epoch-1").exists() == keep
    assert (entry / "epoch-3").exists()
    assert study.cache.has("finetune", study.key(run))


@pytest.mark.parametrize("keep", [True, False])
def test_a_recovery_runs_earlier_epochs_are_dropped_unless_kept(tmp_path, keep):
    """No request names a recovery run's earlier epochs (the recovered model is its last): once built, they go."""
    study = _study(tmp_path, keep)
    study = Study(study.preset.replace(finetune=dataclasses.replace(study.preset.finetune, recovery_epochs=3)),
                  study.cache)
    run = Request.of("recover", base=study.preset.bases[0].name)
    entry = study.cache.get_or_build("recover", study.key(run), _run)
    study._drop_epochs(run)
    assert [(entry / f"epoch-{e}").exists() for e in (1, 2, 3)] == [keep, keep, True]
    assert study.cache.has("recover", study.key(run))


def test_a_dropped_checkpoint_is_one_clear_error(tmp_path):
    study = _study(tmp_path, False)
    base = study.preset.bases[0].name
    run = Request.of("finetune", base=base, ratio=100)
    study.cache.get_or_build("finetune", study.key(run), _run)
    study._drop_epochs(Request.of("eval", model=finetuned(base, 100, 2), layout="instruction"))
    with pytest.raises(CacheError, match=r"epoch-2 was dropped once scored.*keep_epoch_checkpoints=true"):
        study.get(Request.of("checkpoint", model=finetuned(base, 100, 2)))
    assert study.get(Request.of("checkpoint", model=finetuned(base, 100, 3))).name == "epoch-3"
