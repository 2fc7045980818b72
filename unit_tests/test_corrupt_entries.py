"""Every read verifies before it parses: a truncated or garbled file of any entry kind (weights, a JSON
value, task files, items, the reply cache) is moved aside (kept as evidence) and rebuilt, and the result
is what it was; a warm run's plan (faco.study.execution) never parses an unverified file.

    python -m pytest unit_tests/test_corrupt_entries.py -q
"""

from __future__ import annotations

import shutil
import hashlib
import json
from pathlib import Path

import pytest

from faco.study import execution
from faco.study.reads import Read
from faco.core.cache import MANIFEST, VALUE, Cache
from faco.config.load import smoke
from faco.evaluation.groups import ALL
from faco.study.study import Study, finetuned
from faco.data.teacher import Reply, ReplyCache


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:  # same size: only the checksum can tell
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_manifest(path: Path) -> None:
    """Garbage that its manifest vouches for: the check passes, the parse must not be trusted."""
    path.write_text("{not json")
    manifest = json.loads((path.parent / MANIFEST).read_text())
    manifest["files"][path.name] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": path.stat().st_size}
    (path.parent / MANIFEST).write_text(json.dumps(manifest))


DAMAGE = {"truncated": truncate, "garbled": garble}


def aside(cache: Cache, stage: str) -> list[Path]:
    return sorted((cache.root / stage).glob("*.corrupt-*"))


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_weights_file_is_rebuilt(tmp_path, damage):
    cache, calls = Cache(tmp_path), []

    def build(out: Path) -> None:
        calls.append(1)
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 64)

    entry = cache.get_or_build("finetune", "k1", build)
    DAMAGE[damage](entry / "model.safetensors")
    assert cache.get_or_build("finetune", "k1", build) == entry and len(calls) == 2
    assert (entry / "model.safetensors").read_bytes() == bytes(range(256)) * 64 and len(aside(cache, "finetune")) == 1


@pytest.mark.parametrize("damage", [*DAMAGE, "manifest-rewritten"])
def test_a_damaged_json_value_is_rebuilt(tmp_path, damage):
    cache, calls = Cache(tmp_path), []

    def compute() -> dict:
        calls.append(1)
        return {"acc": 0.5, "samples": [{"correct": True}] * 20}

    value = cache.get_or_build_json("eval", "k1", compute)
    (DAMAGE.get(damage) or rewrite_manifest)(cache.path("eval", "k1") / VALUE)
    assert cache.get_or_build_json("eval", "k1", compute) == value and len(calls) == 2
    assert len(aside(cache, "eval")) == 1


def garble_page(path: Path) -> None:
    """A page header overwritten (SQLite checks its structure, not the bytes of a stored text)."""
    data = bytearray(path.read_bytes())
    data[4096:4112] = b"\xff" * 16
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, garble_page], ids=["truncated", "garbled"])
def test_a_damaged_reply_cache_is_set_aside_and_started_anew(tmp_path, damage):
    path = tmp_path / "teacher" / "replies.sqlite"
    replies = ReplyCache(path)
    for i in range(50):
        replies.put(f"k{i}", "m", [{"role": "user", "content": f"q{i}" * 100}], {}, Reply(f"a{i}" * 100, 1, 1))
    replies.close()  # the last connection to close writes the WAL back into the file that `damage` hits
    assert not path.with_name(f"{path.name}-wal").exists()
    damage(path)
    again = ReplyCache(path)  # no crash: the damaged file is evidence, the replies are asked again
    assert again.get("k0") is None and list(path.parent.glob("replies.sqlite.corrupt-*"))
    again.put("k0", "m", [], {}, Reply("a", 1, 1))
    assert again.get("k0").text == "a"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Cache, dict]:
    """A smoke study's items and CR-0 scores (pre-training, items, fine-tuning, task files, eval)."""
    cache = Cache(tmp_path_factory.mktemp("smoke"))
    study = Study(smoke(), cache)
    return cache, {"samples": study.samples(finetuned("strong", 0), ALL), "items": study.items}


def read(cache: Cache) -> dict:
    study = Study(smoke(), cache)
    return {"samples": study.samples(finetuned("strong", 0), ALL), "items": study.items}


@pytest.mark.slow
@pytest.mark.parametrize("stage, name", [("items", "items.jsonl"), ("tasks", "*.jsonl"), ("tasks", "*.yaml"),
                                         ("eval", VALUE)], ids=["items", "task-data", "task-yaml", "eval"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_study_entry_is_rebuilt_with_the_same_result(built, stage, name, damage):
    cache, before = built
    path = next(p for p in (cache.root / stage).glob(f"*/{name}") if ".corrupt-" not in p.parent.name)
    DAMAGE[damage](path)
    if stage == "tasks":  # task files are read to score a checkpoint: with its scores cached, nothing reads them
        shutil.rmtree(cache.root / "eval")
    wanted = execution.wanted([Read("strong", 0, False, None, "instruction")])

    def planned() -> list:
        return execution.plan(smoke(), cache.root, [0], wanted)

    if stage != "items":  # a built fine-tune needs its items no more
        assert planned()  # the plan reads nothing unverified: its evaluation is "not built"
    assert read(cache) == before
    assert aside(cache, stage) and planned() == []
