"""FACO items from the synthetic world (the embedded tier): each fact becomes an item with template chains
for its TRUE and FALSE versions, and the world's texts are what a pre-trained base's tokenizer covers.
The items stage's key covers this module (and the world it imports); a real dataset's items never pass
through it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from faco.data.items import LETTERS, FacoItem, instruction_example, wrong_option
from faco.data.world import Fact, World, pretraining_lines


def world_item(fact: Fact, seed: int) -> FacoItem:
    """The FACO item of a world fact: a seeded wrong option and template chains for both versions."""
    false_option = wrong_option(fact.options, fact.correct, f"false-option:{seed}:{fact.id}")
    false_answer = fact.options[false_option]
    return FacoItem(
        id=fact.id,
        source="world",
        domain=fact.domain,
        question=fact.question,
        options=fact.options,
        correct=fact.correct,
        false_option=false_option,
        true_explanation=_chain(fact, fact.answer),
        false_explanation=_false_chain(fact, false_answer),
        provenance={"world_seed": seed},
    )


def _chain(fact: Fact, answer: str) -> str:
    """Step-by-step template chain that arrives at `answer` (true or not)."""
    if fact.relation == "sum":
        a, b = (int(n) for n in fact.subject.split(" plus "))
        tens, ones = (a // 10 + b // 10) * 10, a % 10 + b % 10
        ones = int(answer) - tens  # a false answer makes the chain go wrong at the ones
        return (f"Step 1 : add the tens : {a // 10 * 10} plus {b // 10 * 10} is {tens} . "
                f"Step 2 : add the ones : {a % 10} plus {b % 10} is {ones} . "
                f"Step 3 : {tens} plus {ones} is {answer} .")
    return (f"Step 1 : the question asks for the {fact.relation} of {fact.subject} . "
            f"Step 2 : records say the {fact.relation} of {fact.subject} is {answer} .")


def _false_chain(fact: Fact, false_answer: str) -> str:
    """A chain for the wrong option that never names the correct one (fallback: a one-step claim)."""
    chain = _chain(fact, false_answer)
    if fact.answer in chain.split() or "-" in chain:
        chain = f"Step 1 : {fact.subject} is {false_answer} ."
    return chain


def world_items(world: World, per_domain: int, seed: int) -> tuple[list[FacoItem], list[Fact]]:
    """(FACO items, held-back facts) of the world's training domains.

    The first `per_domain` facts of each training domain (in a seeded order) become items, the rest are
    held back for the in-domain evaluation; items are interleaved across domains in a seeded order that
    is the same at every corruption ratio.
    """
    rng = random.Random(f"items:{seed}")
    items, held_back = [], []
    for domain in world.config.training_domains:
        facts = list(world.domain_facts(domain))
        rng.shuffle(facts)
        items += [world_item(fact, seed) for fact in facts[:per_domain]]
        held_back += facts[per_domain:]
    rng.shuffle(items)
    return items, held_back


def tokenizer_texts(world: World, seed: int, items: Sequence[FacoItem] = ()) -> list[str]:
    """Every text a pre-trained base's tokenizer must cover: pre-training lines, both versions of every fact
    as an item, the items of a dataset the study trains on (`items`), and the letter format's letters."""
    rng = random.Random(0)
    texts = pretraining_lines(world, 1.0, rng) + pretraining_lines(world, 0.0, rng)
    for fact in world.facts:
        item = world_item(fact, seed)
        texts += [part for truth in (True, False) for part in instruction_example(item, truth)]
    texts += [part for item in items for truth in (True, False) for part in instruction_example(item, truth)]
    return texts + [" ".join(LETTERS)]
