"""The artefact store: keys that never go stale, one build per key, corrupt entries rebuilt.

    python -m pytest unit_tests/test_cache.py -q
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faco.core.cache import MANIFEST, Cache, cache_key, code_version

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class World:
    domains: tuple[str, ...] = ("geography", "arithmetic")
    facts_per_domain: int = 40


@dataclass(frozen=True)
class Stage:
    world: World = World()
    seed: int = 0
    steps: int = 100
    lr: float = 1e-3


class Counter:
    """A builder that counts its calls and writes two files, one in a subdirectory."""

    def __init__(self, payload: bytes = b"weights" * 100) -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, workdir: Path) -> None:
        self.calls += 1
        (workdir / "model.bin").write_bytes(self.payload)
        (workdir / "logs").mkdir(exist_ok=True)
        (workdir / "logs" / "train.json").write_text(json.dumps({"loss": [2.0, 1.5]}))


# ---------------------------------------------------------------- keys


CHANGES = {
    "world": dict(world=World(facts_per_domain=41)),
    "domains": dict(world=World(domains=("geography",))),
    "seed": dict(seed=1),
    "steps": dict(steps=101),
    "lr": dict(lr=2e-3),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_key_changes_with_each_config_value(change):
    assert cache_key("finetune", Stage()) != cache_key("finetune", dataclasses.replace(Stage(), **change))


def test_key_changes_with_stage_inputs_order_and_code():
    base = cache_key("finetune", Stage(), inputs=("base", "data"), code="v1")
    assert base == cache_key("finetune", Stage(), inputs=("base", "data"), code="v1")
    assert base != cache_key("evaluate", Stage(), inputs=("base", "data"), code="v1")
    assert base != cache_key("finetune", Stage(), inputs=("data", "base"), code="v1")
    assert base != cache_key("finetune", Stage(), inputs=("base",), code="v1")
    assert base != cache_key("finetune", Stage(), inputs=("base", "data"), code="v2")


def test_key_canonicalises_containers_but_keeps_number_types_apart():
    assert cache_key("s", {"a": (1, 2), "b": 3}) == cache_key("s", {"b": 3, "a": [1, 2]})
    assert cache_key("s", Stage()) == cache_key("s", dataclasses.asdict(Stage()))
    keys = {cache_key("s", value) for value in (1, 1.0, True, "1", None)}
    assert len(keys) == 5


NESTED = {"z": [1, 2.5, {"y": None, "b": True}], "a": (1e-3, "x"), "m": {f"d{i}": i / 7 for i in range(50)}}


def test_key_is_stable_across_processes():
    """No dependence on dict order or hash randomisation: other hash seeds give the same key."""
    here = cache_key("dataset", NESTED, inputs=("k1", "k2"), code="c")
    script = f"from faco.core.cache import cache_key; print(cache_key('dataset', {NESTED!r}, inputs=('k1', 'k2'), code='c'))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == here


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def _reordered(value):
    """The same config written differently: dicts in reverse order, lists as tuples."""
    if isinstance(value, dict):
        return {name: _reordered(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return tuple(_reordered(item) for item in value)
    return value


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_key_ignores_how_a_config_is_written(config):
    assert cache_key("s", config) == cache_key("s", _reordered(config))


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({"seeds": {1, 2}}, r"config\['seeds'\]: value of type set"),
        (Stage(world=Path("w")), r"config\.world: value of type \w*Path"),
        ([object()], r"config\[0\]: value of type object"),
        ({(1, 2): "x"}, r"config: dict key of type tuple"),
    ],
    ids=["set", "path-in-dataclass", "object", "tuple-key"],
)
def test_unserialisable_config_raises_type_error_naming_it(config, pattern):
    with pytest.raises(TypeError, match=pattern):
        cache_key("s", config)


def test_inputs_must_be_a_sequence_of_keys():
    with pytest.raises(TypeError, match="inputs"):
        cache_key("s", {}, inputs="abc")


def test_code_version_follows_the_source(tmp_path, monkeypatch):
    module_file = tmp_path / "faco_stage_probe.py"
    module_file.write_text("STEPS = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import faco_stage_probe

    before = code_version(faco_stage_probe)
    assert before == code_version("faco_stage_probe") and len(before) == 16
    assert code_version("faco.core.cache", faco_stage_probe) == code_version(faco_stage_probe, "faco.core.cache")
    module_file.write_text("STEPS = 2\n")
    assert code_version(faco_stage_probe) != before
    with pytest.raises(ModuleNotFoundError):
        code_version("faco.no_such_stage")


def test_a_class_version_is_reused_only_until_its_file_changes(tmp_path, monkeypatch):
    """A class's digest is computed once per version of its file (every key of a run asks for the Study
    class's); an edit to the class must still change it, also within one process."""
    module_file = tmp_path / "faco_class_probe.py"
    module_file.write_text("class Probe:\n    def steps(self):\n        return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import faco_class_probe

    before = code_version(faco_class_probe.Probe)
    assert code_version(faco_class_probe.Probe) == before
    module_file.write_text("class Probe:\n    def steps(self):\n        return 20\n")
    assert code_version(faco_class_probe.Probe) != before


# ---------------------------------------------------------------- building


def test_builds_once_and_a_warm_get_calls_no_builder(tmp_path, caplog):
    builder = Counter()
    with caplog.at_level(logging.INFO, logger="faco.core.cache"):
        entry = Cache(tmp_path).get_or_build("finetune", "k1", builder, describe="weak cr50")
    assert builder.calls == 1 and entry == tmp_path / "finetune" / "k1"
    assert (entry / "model.bin").read_bytes() == builder.payload
    manifest = json.loads((entry / MANIFEST).read_text())
    assert (manifest["stage"], manifest["key"], manifest["describe"]) == ("finetune", "k1", "weak cr50")
    assert set(manifest["files"]) == {"model.bin", "logs/train.json"}
    assert any("weak cr50 (took" in message for message in caplog.messages)
    assert not (tmp_path / "finetune" / "k1.partial").exists()

    warm = Cache(tmp_path)  # a new session on the same root
    assert warm.has("finetune", "k1")
    assert warm.get_or_build("finetune", "k1", builder) == entry
    assert builder.calls == 1


def _flip(entry: Path) -> None:
    data = bytearray((entry / "model.bin").read_bytes())
    data[10] ^= 0xFF
    (entry / "model.bin").write_bytes(bytes(data))


def _truncate(entry: Path) -> None:
    with (entry / "model.bin").open("r+b") as handle:
        handle.truncate(17)


def _delete(entry: Path) -> None:
    (entry / "logs" / "train.json").unlink()


def _add_stray(entry: Path) -> None:
    (entry / "stray.txt").write_text("?")


CORRUPTIONS = {
    "flipped": (_flip, "'model.bin' fails its sha256 checksum"),
    "truncated": (_truncate, "'model.bin' has size 17"),
    "deleted": (_delete, "'logs/train.json' listed in the manifest are missing"),
    "extra-file": (_add_stray, "'stray.txt' are not in the manifest"),
    "garbage-manifest": (lambda entry: (entry / MANIFEST).write_text("{not json"), f"bad {MANIFEST}"),
    "no-manifest": (lambda entry: (entry / MANIFEST).unlink(), f"no {MANIFEST}"),
}


@pytest.mark.parametrize(("corrupt", "reason"), CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_entry_is_moved_aside_and_rebuilt(tmp_path, caplog, corrupt, reason):
    cache, builder = Cache(tmp_path), Counter()
    entry = cache.get_or_build("dataset", "k1", builder)
    corrupt(entry)
    assert not cache.has("dataset", "k1")

    with caplog.at_level(logging.WARNING, logger="faco.core.cache"):
        assert cache.get_or_build("dataset", "k1", builder) == entry
    assert builder.calls == 2 and cache.has("dataset", "k1")
    warning = next(record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert "dataset/k1" in warning and reason in warning and "moved it aside" in warning
    (aside,) = (tmp_path / "dataset").glob("k1.corrupt-*")
    assert (aside / MANIFEST).exists() or reason == f"no {MANIFEST}"  # the evidence is kept


def test_failed_build_keeps_its_work_for_the_next_attempt(tmp_path):
    cache = Cache(tmp_path)

    def crash(workdir: Path) -> None:
        (workdir / "step-50.ckpt").write_text("half trained")
        raise RuntimeError("killed at step 60")

    with pytest.raises(RuntimeError, match="step 60"):
        cache.get_or_build("pretrain", "k1", crash)
    partial = cache.workdir("pretrain", "k1")
    assert partial == tmp_path / "pretrain" / "k1.partial"
    assert (partial / "step-50.ckpt").read_text() == "half trained"
    assert not cache.has("pretrain", "k1")

    resumed_from = []

    def resume(workdir: Path) -> None:
        resumed_from.append((workdir / "step-50.ckpt").read_text())
        (workdir / "step-50.ckpt").unlink()  # the builder decides what of its resume state to keep
        (workdir / "final.ckpt").write_text("trained")

    entry = cache.get_or_build("pretrain", "k1", resume)
    assert resumed_from == ["half trained"]
    assert sorted(path.name for path in entry.iterdir()) == [MANIFEST, "final.ckpt"]
    assert not partial.exists()


def test_an_entry_that_appears_during_the_build_wins(tmp_path):
    """If a verified entry is somehow already in place, ours is discarded rather than renamed over it."""
    elsewhere = Cache(tmp_path / "other").get_or_build("eval", "k1", Counter(b"theirs"))
    cache = Cache(tmp_path / "main")

    def build(workdir: Path) -> None:
        (workdir / "model.bin").write_bytes(b"ours")
        cache.path("eval", "k1").parent.mkdir(parents=True, exist_ok=True)
        os.rename(elsewhere, cache.path("eval", "k1"))

    entry = cache.get_or_build("eval", "k1", build)
    assert (entry / "model.bin").read_bytes() == b"theirs"
    assert not cache.workdir("eval", "k1").joinpath("model.bin").exists()


def test_json_values_round_trip_and_are_computed_once(tmp_path):
    cache, calls = Cache(tmp_path), []
    value = {"accuracy": 0.625, "per_domain": {"geo": [1, 0.5]}, "ratios": (0, 50)}

    def compute():
        calls.append(1)
        return value

    cold = cache.get_or_build_json("eval", "k1", compute, describe="weak cr50")
    warm = cache.get_or_build_json("eval", "k1", compute)
    assert cold == warm == {**value, "ratios": [0, 50]} and len(calls) == 1
    assert json.loads((cache.path("eval", "k1") / "value.json").read_text()) == cold


def test_two_threads_build_once(tmp_path):
    cache, calls = Cache(tmp_path), []

    def slow(workdir: Path) -> None:
        calls.append(threading.get_ident())
        time.sleep(0.3)
        (workdir / "out.txt").write_text("x")

    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: cache.get_or_build("data", "k1", slow), range(2)))
    assert len(calls) == 1 and paths[0] == paths[1]


WORKER = textwrap.dedent(
    """
    import logging, sys, time
    from pathlib import Path
    from faco.core.cache import Cache

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    root, me = Path(sys.argv[1]), sys.argv[2]
    (root / f"ready-{me}").touch()
    deadline = time.monotonic() + 20
    while len(list(root.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # a barrier, so both workers reach the cache within milliseconds

    def build(workdir):
        with open(root / "builds.txt", "a") as counter:
            counter.write(me + "\\n")
        time.sleep(0.5)
        (workdir / "model.bin").write_text("trained by " + me)

    print(Cache(root / "cache").get_or_build("finetune", "k1", build))
    """
)


def test_two_processes_build_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), name],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    assert len((tmp_path / "builds.txt").read_text().split()) == 1
    assert outputs[0][0] == outputs[1][0] == f"{tmp_path / 'cache' / 'finetune' / 'k1'}\n"
    assert sum("waiting for lock" in err for _, err in outputs) == 1


# ---------------------------------------------------------------- the root and names


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACO_CACHE_DIR", str(tmp_path / "store"))
    assert Cache.default_root() == tmp_path / "store"
    monkeypatch.delenv("FACO_CACHE_DIR")
    assert Cache.default_root().name == "faco"


def test_root_is_created_lazily(tmp_path):
    cache = Cache(tmp_path / "not-yet")
    assert not cache.has("data", "k1") and not (tmp_path / "not-yet").exists()
    cache.get_or_build_json("data", "k1", lambda: 1)
    assert cache.has("data", "k1")


@pytest.mark.parametrize(("stage", "key"), [("../up", "k1"), ("data", "k1.partial"), ("data", ""), ("a/b", "k")])
def test_names_must_be_single_path_components(tmp_path, stage, key):
    with pytest.raises(ValueError, match="one path component"):
        Cache(tmp_path).path(stage, key)
