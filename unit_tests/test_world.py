"""The synthetic world: seeded, well-formed facts, and pre-training text that only ever tells the truth.

    python -m pytest unit_tests/test_world.py -q
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faco.config.schema import ConfigError
from faco.config.load import smoke, tiny
from faco.data.world import ARITHMETIC_MAX, World, build_world, pretraining_lines

WORLDS = {"smoke": smoke().world, "tiny": tiny().world}
SEEDS = st.integers(min_value=0, max_value=10**6)

STATEMENT = re.compile(r"^(?P<subject>.+) is (?P<answer>\S+) \.$")
QA = re.compile(r"^Question : (?P<question>.+)\nChoices : (?P<choices>.+)\nAnswer : (?P<answer>\S+)$")


@pytest.fixture(scope="module", params=sorted(WORLDS))
def world(request) -> World:
    return build_world(WORLDS[request.param], seed=0)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_same_seed_same_world(seed):
    assert build_world(smoke().world, seed) == build_world(smoke().world, seed)


@settings(max_examples=10, deadline=None)
@given(seeds=st.lists(SEEDS, min_size=2, max_size=2, unique=True))
def test_different_seed_different_world(seeds):
    a, b = (build_world(smoke().world, s) for s in seeds)
    assert a.facts != b.facts
    assert [f.id for f in a.facts] == [f.id for f in b.facts]  # same layout, different content


def test_fact_ids_unique_and_counts(world):
    config = world.config
    assert len({f.id for f in world.facts}) == len(world.facts) == sum(config.facts_in(d.name) for d in config.domains)
    for spec in config.domains:
        facts = world.domain_facts(spec.name)
        assert len(facts) == config.facts_in(spec.name)
        assert all(f.id.startswith(f"{spec.name}-") for f in facts)


def test_options_hold_the_answer_once_at_correct(world):
    for fact in world.facts:
        assert len(fact.options) == world.config.options
        assert len(set(fact.options)) == len(fact.options), fact
        assert fact.options.count(fact.answer) == 1, fact
        assert fact.options[fact.correct] == fact.answer, fact


def test_gold_positions_are_spread(world):
    """The gold position is seeded per fact, not always the same slot."""
    positions = {f.correct for f in world.facts}
    assert positions == set(range(world.config.options))


def test_word_domains_answer_from_the_shared_vocabulary(world):
    vocabulary = set(world.answer_words)
    assert len(vocabulary) == world.config.answer_words
    for spec in world.config.domains:
        if spec.kind == "arithmetic":
            continue
        for fact in world.domain_facts(spec.name):
            assert fact.answer in vocabulary and set(fact.options) <= vocabulary, fact


def test_arithmetic_answers_are_true_sums(world):
    arithmetic = [d.name for d in world.config.domains if d.kind == "arithmetic"]
    facts = [f for d in arithmetic for f in world.domain_facts(d)]
    if not facts:
        pytest.skip("this world has no arithmetic domain")
    assert len({f.subject for f in facts}) == len(facts)  # no sum asked twice
    for fact in facts:
        a, b = (int(n) for n in fact.subject.split(" plus "))
        assert 1 <= a <= ARITHMETIC_MAX and 1 <= b <= ARITHMETIC_MAX
        assert fact.relation == "sum" and fact.answer == str(a + b)
        assert all(o.isdigit() and int(o) >= 2 for o in fact.options), fact


def test_entity_names_unique_and_never_answer_words(world):
    entities = [f.subject for f in world.facts if f.relation != "sum"]
    assert len(set(entities)) == len(entities)
    assert not set(entities) & set(world.answer_words)


def test_domain_facts_of_an_unknown_domain(world):
    with pytest.raises(ConfigError, match=r"unknown domain 'astrology'"):
        world.domain_facts("astrology")


# --- pre-training text ----------------------------------------------------------------------------------

def _stated_answers(world: World, lines: list[str]) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(fact id, stated answer, listed choices or None) of every pre-training line."""
    by_statement = {f.statement.rsplit(" is ", 1)[0]: f for f in world.facts}
    by_question = {f.question: f for f in world.facts}
    out = []
    for line in lines:
        if (qa := QA.match(line)) is not None:
            fact = by_question[qa["question"]]
            out.append((fact.id, qa["answer"], tuple(qa["choices"].split(" , "))))
        else:
            statement = STATEMENT.match(line)
            assert statement is not None, f"neither a statement nor a QA line: {line!r}"
            fact = by_statement[statement["subject"]]
            out.append((fact.id, statement["answer"], None))
    return out


@pytest.mark.parametrize("qa_share", [0.0, 0.5, 1.0])
def test_pretraining_lines_only_state_true_answers(world, qa_share):
    facts = {f.id: f for f in world.facts}
    stated = _stated_answers(world, pretraining_lines(world, qa_share, random.Random(1)))
    assert sorted(fact_id for fact_id, _, _ in stated) == sorted(facts)  # one line per fact
    for fact_id, answer, choices in stated:
        fact = facts[fact_id]
        assert answer == fact.answer, (fact, answer)
        if choices is not None:
            assert sorted(choices) == sorted(fact.options)
    qa_lines = sum(choices is not None for _, _, choices in stated)
    if qa_share in (0.0, 1.0):
        assert qa_lines == qa_share * len(stated)
    else:
        assert 0.35 < qa_lines / len(stated) < 0.65


def test_pretraining_lines_deterministic_per_rng_seed():
    world = build_world(smoke().world, 0)
    first = pretraining_lines(world, 0.5, random.Random("pretrain:0:0"))
    assert first == pretraining_lines(world, 0.5, random.Random("pretrain:0:0"))
    assert first != pretraining_lines(world, 0.5, random.Random("pretrain:0:1"))
