"""Which part of an item its FALSE version falsifies: the answer and the chain together (the paper's `both`),
the answer alone (`answer`: FALSE answer, TRUE chain) or the chain alone (`chain`: TRUE answer, FALSE
chain); and the clean share a recovery dose re-trains on. The same items turn false at the same CR
whatever the kind (faco.data.corruption's nested order), so kinds differ only in what is false.

Its own module, outside faco.data.corruption: the `finetune` and `recover` stages' keys cover that
module, and the paper's runs must not rebuild because the experiments beyond it were added.
"""

from __future__ import annotations

from collections.abc import Sequence

from faco.config.beyond import FALSITY_KINDS
from faco.config.schema import ConfigError
from faco.data.corruption import corrupted_examples, false_count, false_ids
from faco.data.items import Example, FacoItem, instruction_prompt


def kind_examples(items: Sequence[FacoItem], ratio: int, seed: int, kind: str) -> list[Example]:
    """The training data at `ratio` with corruption `kind`: `both` is exactly faco.data.corruption's; an
    `answer` or `chain` example keeps the other part TRUE. `truth` records the answer's truth (what a
    scorer of answers would count)."""
    if kind not in FALSITY_KINDS:
        raise ConfigError(f"unknown corruption kind {kind!r}; known: {FALSITY_KINDS}")
    if kind == "both":
        return corrupted_examples(items, ratio, seed)
    false = false_ids(items, ratio, seed)
    examples = []
    for item in items:
        flipped = item.id in false
        answer_true, chain_true = (not flipped, True) if kind == "answer" else (True, not flipped)
        response = f" {item.answer(answer_true)}\n### Explanation : {item.explanation(chain_true)}"
        examples.append(Example(item.id, answer_true, instruction_prompt(item.question, item.options), response))
    return examples


def clean_share(items: Sequence[FacoItem], share: int) -> list[FacoItem]:
    """The first `share` percent of the items in their training order (seeded and interleaved across
    domains, so any prefix mixes the domains): a larger dose holds every item of a smaller one."""
    return list(items[: false_count(len(items), share)])
