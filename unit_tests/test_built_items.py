"""Items a preset builds itself ([items] source = "build"): the builder as a cached stage of the study.

A loopback fault server plays the teacher (an API at base_url); the real served SmolLM2 teacher runs in
test_teacher_server.py and in the smol-ci experiments.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from fault_server import FaultServer

from faco.data import built_items
from faco.data.prompts import WRONG_ANSWER
from faco.core.cache import Cache
from faco.config.schema import BuildItemsConfig, ConfigError, ItemsConfig
from faco.config.load import check, smoke
from faco.study.study import Study


def quartz_copy(root: Path, count: int = 4) -> Path:
    """A data dir holding `count` QuaRTz rows where faco.data.sources looks for them (quartz/hf_dummy)."""
    rows = [{"id": f"q{i}", "question": {"stem": f"Rule {i}: more heat, what happens?", "choices": [
        {"label": "A", "text": f"up{i}"}, {"label": "B", "text": f"down{i}"}]}, "answerKey": "A", "para": "Heat rises."}
            for i in range(count)]
    (root / "quartz" / "hf_dummy").mkdir(parents=True)
    (root / "quartz" / "hf_dummy" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def reply(messages: list[dict[str, str]]) -> str:
    rule = messages[-1]["content"].split("Rule ")[1].split(":")[0]
    return f"Heat pushes it up, so up{rule}." if WRONG_ANSWER in messages[-1]["content"] else "Cold wins, so it sinks."


def building(data: Path, url: str) -> ItemsConfig:
    build = BuildItemsConfig(sources=("quartz",), per_source=3, data_dir=str(data), base_url=url, model="scripted")
    return ItemsConfig(source="build", build=build)


def test_the_study_builds_its_items_once_and_keys_them_by_content(tmp_path):
    data = quartz_copy(tmp_path / "data")
    cache = Cache(tmp_path / "cache")
    with FaultServer(reply=reply) as server:
        study = Study(smoke().replace(items=building(data, server.url)), cache)
        items = study.items
        sent = len(server.log)
    assert len(items) == 3 and sent == 6  # a TRUE and a FALSE chain per item
    assert {item.source for item in items} == {"quartz"} and "sinks" in items[0].false_explanation
    # the server is gone: a second study reads the cached dataset and sends nothing
    again = Study(smoke().replace(items=building(data, server.url)), cache)
    assert again.items == items and again.key(again.items_request) == study.key(study.items_request)
    moved = shutil.copytree(data, tmp_path / "elsewhere")  # the same files elsewhere: the same dataset key
    spec = building(moved, server.url).build
    assert built_items.key(spec, 0, "t") == built_items.key(building(data, server.url).build, 0, "t")
    (moved / "quartz" / "hf_dummy" / "train.jsonl").write_text("")  # other content: another key
    assert built_items.key(spec, 0, "t") != built_items.key(building(data, server.url).build, 0, "t")


def test_a_source_missing_from_the_data_dir_is_one_error_naming_it(tmp_path):
    spec = BuildItemsConfig(sources=("sciq",), per_source=1, data_dir=str(tmp_path), base_url="http://127.0.0.1:1/v1",
                            model="m")
    with pytest.raises(ConfigError, match=r"sciq needs .*sciq/hf_dummy"):
        built_items.sources_digest(spec)


@pytest.mark.parametrize("changes, message", [
    ({"sources": ("nope",)}, r"items.build.sources: unknown or none \['nope'\]"),
    ({"sources": ()}, r"items.build.sources: unknown or none"),
    ({"base_url": None}, "give exactly one teacher"),
    ({"serve": "model-dir"}, "give exactly one teacher"),
    ({"model": None}, "give exactly one teacher"),
    ({"per_source": 0}, "per_source must be > 0"),
], ids=["unknown-source", "no-source", "no-teacher", "two-teachers", "api-without-model", "per-source"])
def test_build_settings_are_checked(changes, message):
    fine = {"sources": ("quartz",), "per_source": 2, "base_url": "http://127.0.0.1:1/v1", "model": "m"}
    with pytest.raises(ConfigError, match=message):
        check(smoke().replace(items=ItemsConfig(source="build", build=BuildItemsConfig(**{**fine, **changes}))))


def test_source_build_and_its_table_go_together():
    build = BuildItemsConfig(sources=("quartz",), per_source=2, base_url="http://127.0.0.1:1/v1", model="m")
    with pytest.raises(ConfigError, match=r'source = "build" and an \[items.build\] table go together'):
        ItemsConfig(source="build")
    with pytest.raises(ConfigError, match="go together"):
        dataclasses.replace(ItemsConfig(), build=build)
