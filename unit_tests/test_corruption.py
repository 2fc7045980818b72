"""Nested corruption as properties: exact counts, nested false sets, the same items at every CR.

    python -m pytest unit_tests/test_corruption.py -q
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faco.config.schema import ConfigError, CorruptionConfig
from faco.data.corruption import corrupted_examples, false_count, false_ids, falsity_order
from faco.data.items import FacoItem

SEEDS = st.integers(min_value=0, max_value=2**32)
COUNTS = st.integers(min_value=1, max_value=300)
RATIO = st.integers(min_value=0, max_value=100)
# increasing ratio lists from 0 to 100, as CorruptionConfig accepts them
RATIOS = st.lists(st.integers(1, 99), unique=True, max_size=6).map(lambda rs: [0, *sorted(rs), 100])


def items(n: int) -> list[FacoItem]:
    """n cheap, valid items; ids sort differently as text and as numbers (q10 < q2)."""
    return [FacoItem(id=f"q{i}", source="test", domain="d", question=f"Q{i}?", options=(f"a{i}", f"b{i}"),
                     correct=i % 2, false_option=1 - i % 2, true_explanation=f"t{i}", false_explanation=f"f{i}")
            for i in range(n)]


ITEMS = {n: items(n) for n in (1, 2, 3, 6, 50)}
ITEMS[300] = items(300)


def some_items(n: int) -> list[FacoItem]:
    return ITEMS.get(n) or ITEMS[300][:n]


@given(n=COUNTS, ratio=RATIO)
def test_false_count_rounds_half_up(n, ratio):
    exact = Fraction(n * ratio, 100)
    expected = int(exact + Fraction(1, 2))  # floor(x + 1/2): round half up
    assert false_count(n, ratio) == expected
    assert 0 <= false_count(n, ratio) <= n
    assert abs(false_count(n, ratio) - exact) <= Fraction(1, 2)


@pytest.mark.parametrize("n, ratio, expected", [(6, 25, 2), (2, 25, 1), (2, 24, 0), (3, 50, 2), (1, 50, 1),
                                                (10, 0, 0), (10, 100, 10)])
def test_false_count_examples(n, ratio, expected):
    assert false_count(n, ratio) == expected


@settings(max_examples=60, deadline=None)
@given(n=COUNTS, ratios=RATIOS, seed=SEEDS)
def test_false_sets_are_nested(n, ratios, seed):
    pool = some_items(n)
    sets = [false_ids(pool, r, seed) for r in ratios]
    for ratio, false in zip(ratios, sets):
        assert len(false) == false_count(n, ratio)
    for lower, higher in zip(sets, sets[1:]):
        assert lower <= higher
    assert sets[0] == frozenset() and sets[-1] == {i.id for i in pool}


@settings(max_examples=40, deadline=None)
@given(n=COUNTS, ratios=RATIOS, seed=SEEDS)
def test_same_items_same_order_at_every_ratio(n, ratios, seed):
    pool = some_items(n)
    runs = {r: corrupted_examples(pool, r, seed) for r in ratios}
    for ratio, examples in runs.items():
        assert [e.item_id for e in examples] == [i.id for i in pool]
        assert sum(not e.truth for e in examples) == false_count(n, ratio)
        for example, clean, source in zip(examples, runs[0], pool):
            assert example.prompt == clean.prompt  # the prompt never changes
            assert example.response.startswith(" " + source.answer(example.truth) + "\n")
            assert source.explanation(example.truth) in example.response
    assert all(e.truth for e in runs[0]) and not any(e.truth for e in runs[100])


@settings(max_examples=40, deadline=None)
@given(n=COUNTS, ratio=RATIO, seed=SEEDS, shuffle=st.randoms(use_true_random=False))
def test_false_set_ignores_item_order(n, ratio, seed, shuffle):
    pool = some_items(n)
    shuffled = list(pool)
    shuffle.shuffle(shuffled)
    assert false_ids(shuffled, ratio, seed) == false_ids(pool, ratio, seed)
    assert falsity_order(shuffled, seed) == falsity_order(pool, seed)
    by_id = {e.item_id: e.truth for e in corrupted_examples(pool, ratio, seed)}
    assert by_id == {e.item_id: e.truth for e in corrupted_examples(shuffled, ratio, seed)}


@settings(max_examples=30, deadline=None)
@given(n=st.integers(50, 300), seeds=st.lists(SEEDS, min_size=2, max_size=2, unique=True))
def test_different_seeds_different_false_sets(n, seeds):
    pool = some_items(n)
    a, b = (false_ids(pool, 50, s) for s in seeds)
    assert len(a) == len(b) and a != b  # C(50, 25) ~ 1e14: equal sets by chance are out of reach


@pytest.mark.parametrize("ratio", [101, -1, 12.5, True, "50"], ids=repr)
def test_invalid_ratio(ratio):
    with pytest.raises(ConfigError, match="outside 0..100"):
        false_count(10, ratio)
    with pytest.raises(ConfigError, match="outside 0..100"):
        corrupted_examples(ITEMS[6], ratio, 0)


@settings(max_examples=30, deadline=None)
@given(ratios=RATIOS)
def test_generated_ratio_lists_are_valid_configs(ratios):
    """The ratio lists the properties above use are the ones a preset may hold."""
    assert CorruptionConfig(ratios=tuple(ratios)).ratios == tuple(ratios)


def test_empty_item_list():
    assert corrupted_examples([], 50, 0) == []


def test_duplicate_ids_rejected_or_counted_exactly():
    pool = ITEMS[6][:5] + [ITEMS[6][0]]  # six items, id q0 twice
    try:
        examples = corrupted_examples(pool, 50, seed=0)
    except (ConfigError, ValueError):
        return
    for seed in range(20):  # some seed puts both q0 copies in the first half: 2 + 2 false, not 3
        examples = corrupted_examples(pool, 50, seed)
        assert sum(not e.truth for e in examples) == false_count(len(pool), 50)
