"""The FACO item schema: malformed items fail naming the field; world items keep TRUE and FALSE apart.

    python -m pytest unit_tests/test_items.py -q
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faco.config.load import smoke, tiny
from faco.data.items import FacoItem, ItemError, check_unique_ids, instruction_example, read_jsonl, write_jsonl
from faco.data.world_items import world_item, world_items
from faco.data.world import build_world

GOOD = {
    "id": "q1", "source": "qasc", "domain": "knowledge", "question": "What melts ice?",
    "options": ["heat", "cold", "salt water"], "correct": 0, "false_option": 1,
    "true_explanation": "Heat melts ice.", "false_explanation": "Cold melts ice.",
}
SMOKE, TINY = build_world(smoke().world, 0), build_world(tiny().world, 0)


def item(**changes) -> FacoItem:
    return FacoItem(**{**GOOD, **changes})


# --- validation --------------------------------------------------------------------------------------

def test_good_item_round_trips():
    good = item(provenance={"split": "dev"})
    assert good.options == ("heat", "cold", "salt water")
    assert FacoItem.from_dict(good.to_dict()) == good
    assert good.answer(True) == "heat" and good.answer(False) == "cold"
    assert good.explanation(False) == "Cold melts ice."


@pytest.mark.parametrize("changes, field", [
    ({"options": ["heat", "cold", "heat"]}, "options"),
    ({"options": ["heat"], "correct": 0, "false_option": 0}, "options"),
    ({"options": ["heat", " "]}, "options"),
    ({"false_option": 0}, "false_option"),
    ({"correct": 3}, "correct"),
    ({"false_option": -1}, "false_option"),
    ({"correct": True}, "correct"),
    ({"false_option": 1.0}, "false_option"),
    ({"question": "   "}, "question"),
    ({"id": ""}, "id"),
    ({"question": 42}, "question"),
    ({"true_explanation": None}, "true_explanation"),
    ({"domain": ["knowledge"]}, "domain"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else v)
def test_invalid_item_names_the_field(changes, field):
    with pytest.raises(ItemError, match=f"'{field}'"):
        item(**changes)


def test_from_dict_missing_field_names_field_and_where():
    row = {k: v for k, v in GOOD.items() if k not in ("false_option", "question")}
    with pytest.raises(ItemError, match=r"^items\.jsonl:7: missing field\(s\) question, false_option$"):
        FacoItem.from_dict(row, "items.jsonl:7")
    with pytest.raises(ItemError, match=r"^item 'q1': missing field"):
        FacoItem.from_dict(row)


def test_from_dict_bad_value_names_where_and_field():
    with pytest.raises(ItemError, match=r"^data\.jsonl:2: field 'correct'"):
        FacoItem.from_dict({**GOOD, "correct": 9}, "data.jsonl:2")


def test_from_dict_ignores_unknown_keys():
    assert FacoItem.from_dict({**GOOD, "extra": 1}) == item()


@pytest.mark.parametrize("line, message", [
    ("{not json", "is not JSON"),
    ("[1, 2]", "is not a JSON object"),
    (json.dumps({**GOOD, "correct": 5}), "field 'correct'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "domain"}), "missing field(s) domain"),
], ids=["json", "array", "value", "missing"])
def test_read_jsonl_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")
    with pytest.raises(ItemError) as error:
        read_jsonl(path)
    assert str(error.value).startswith(f"{path}:3")
    assert message in str(error.value)


def test_duplicate_ids_rejected(tmp_path):
    with pytest.raises(ItemError, match=r"duplicate item id 'q1'"):
        check_unique_ids([item(), item(question="Again?")])
    path = tmp_path / "items.jsonl"
    write_jsonl([item(), item(id="q2"), item(question="Again?")], path)
    with pytest.raises(ItemError, match=r"duplicate item id 'q1'"):
        read_jsonl(path)


def test_write_then_read_jsonl(tmp_path):
    items = [world_item(fact, 0) for fact in SMOKE.facts[:5]]
    write_jsonl(items, tmp_path / "sub" / "items.jsonl")
    assert read_jsonl(tmp_path / "sub" / "items.jsonl") == items


# --- world items: the FALSE chain never names the correct answer -------------------------------------

def _check_chains(fact, seed: int) -> FacoItem:
    made = world_item(fact, seed)
    assert made.options == fact.options and made.correct == fact.correct
    assert made.false_option != made.correct
    assert fact.answer in made.true_explanation.split(), made
    assert made.answer(False) in made.false_explanation.split(), made
    assert fact.answer not in made.false_explanation.split(), made
    return made


@pytest.mark.parametrize("world", [SMOKE, TINY], ids=["smoke", "tiny"])
def test_false_chain_never_names_the_answer_all_facts(world):
    for fact in world.facts:
        _check_chains(fact, seed=0)


@settings(max_examples=25, deadline=None)
@given(world_seed=st.integers(0, 10**6), item_seed=st.integers(0, 10**6), index=st.integers(0, 10**4))
def test_false_chain_never_names_the_answer_any_seed(world_seed, item_seed, index):
    world = build_world(tiny().world, world_seed)
    _check_chains(world.facts[index % len(world.facts)], item_seed)


def test_false_option_is_seeded():
    facts = TINY.facts[:200]
    first = [world_item(f, 5).false_option for f in facts]
    assert first == [world_item(f, 5).false_option for f in facts]
    assert first != [world_item(f, 6).false_option for f in facts]
    spread = Counter((world_item(f, 5).false_option - f.correct) % len(f.options) for f in facts)
    assert set(spread) == {1, 2, 3}  # any wrong option can be the FALSE one, never the correct one


# --- world items: the split ------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", [smoke(), tiny()], ids=["smoke", "tiny"])
def test_world_items_split(preset):
    world = build_world(preset.world, preset.seed)
    per_domain = preset.items.per_training_domain
    items, held_back = world_items(world, per_domain, preset.seed)
    counts = Counter(i.domain for i in items)
    assert counts == {d: per_domain for d in preset.world.training_domains}
    assert not {i.domain for i in items} & set(preset.world.heldout_domains)
    assert {f.domain for f in held_back} == set(preset.world.training_domains)
    assert len(held_back) == len(preset.world.training_domains) * (preset.world.facts_per_domain - per_domain)
    assert not {i.id for i in items} & {f.id for f in held_back}
    assert len({i.id for i in items}) == len(items)
    assert world_items(world, per_domain, preset.seed) == (items, held_back)  # seeded
    domains = [i.domain for i in items]
    assert domains != sorted(domains)  # interleaved, not domain after domain


# --- rendering -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("truth", [True, False], ids=["true", "false"])
def test_instruction_example(truth):
    made = world_item(TINY.facts[0], 0)
    prompt, response = instruction_example(made, truth)
    assert prompt.endswith("### Answer :")
    assert all(option in prompt for option in made.options) and made.question in prompt
    assert response.startswith(" " + made.answer(truth) + "\n")
    assert made.explanation(truth) in response
    assert instruction_example(made, not truth)[0] == prompt  # only the response differs


# --- once bugs: now fixed --------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"options": "heat"}, "options"),
    ({"options": None}, "options"),
    ({"provenance": None}, "provenance"),
    ({"source_explanation": 5}, "source_explanation"),
], ids=["options-str", "options-none", "provenance-none", "source_explanation-int"])
def test_mistyped_container_fields_name_the_field(changes, field):
    with pytest.raises(ItemError, match=f"'{field}'"):
        FacoItem.from_dict({**GOOD, **changes}, "items.jsonl:1")
