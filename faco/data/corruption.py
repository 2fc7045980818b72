"""Nested corruption: which items appear in their FALSE version at each corruption ratio (CR).

One seeded permutation of the items decides the order in which items turn false, so the false items at
a lower CR are a subset of those at a higher CR, the counts are exact, and the training data at every
CR holds the same items in the same order: only the truth of some flips.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from faco.config.schema import ConfigError
from faco.data.items import Example, FacoItem, check_unique_ids, instruction_example


def false_count(n_items: int, ratio: int) -> int:
    """Items in their FALSE version at `ratio` percent: round half up, so 25 % of 6 is 2 (1.5 -> 2)."""
    if not isinstance(ratio, int) or isinstance(ratio, bool) or not 0 <= ratio <= 100:
        raise ConfigError(f"corruption ratio {ratio!r} is outside 0..100 (percent, integer)")
    return (n_items * ratio + 50) // 100


def falsity_order(items: Sequence[FacoItem], seed: int) -> list[str]:
    """Item ids in the order they turn false as the ratio grows (independent of the items' order)."""
    check_unique_ids(items)  # a duplicate would make the false count inexact
    ids = sorted(item.id for item in items)
    random.Random(f"corruption:{seed}").shuffle(ids)
    return ids


def false_ids(items: Sequence[FacoItem], ratio: int, seed: int) -> frozenset[str]:
    return frozenset(falsity_order(items, seed)[: false_count(len(items), ratio)])


def corrupted_examples(items: Sequence[FacoItem], ratio: int, seed: int) -> list[Example]:
    """The training data at `ratio`: the items in their given order, the chosen ones in FALSE version."""
    false = false_ids(items, ratio, seed)
    examples = []
    for item in items:
        truth = item.id not in false
        prompt, response = instruction_example(item, truth)
        examples.append(Example(item.id, truth, prompt, response))
    return examples
