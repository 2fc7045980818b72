"""The one FACO item schema, and how an item is rendered as instruction data.

Every item has a TRUE version (the correct option with a chain that supports it) and a FALSE version
(a seeded wrong option with a chain that supports *it* and never names the correct option). The
embedded world (templates) and the real-data builder (nine sources + a teacher) both fill this schema,
so corruption, training and evaluation never know where an item came from.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from faco.data.world import Fact, World, pretraining_lines

LETTERS = "ABCDEFGH"  # the letter format's answer letters (MMLU-style options): evaluation and tokenizer texts
DOMAINS_REAL = ("knowledge", "commonsense", "reasoning", "code")


class ItemError(ValueError):
    """A malformed item: the message names the item (and file/line when known) and the field."""


@dataclass(frozen=True)
class FacoItem:
    id: str  # unique within a dataset, e.g. "geography-0042" or "qasc-dev-17"
    source: str  # "world" for the embedded tier, else the source dataset ("qasc", "mbpp", ...)
    domain: str  # world domain name, or one of DOMAINS_REAL for real sources
    question: str
    options: tuple[str, ...]  # the answer options as text; code sources hold (true code, false code)
    correct: int  # index of the correct option
    false_option: int  # index of the seeded wrong option the FALSE version argues for
    true_explanation: str  # step-by-step chain that supports options[correct]
    false_explanation: str  # step-by-step chain that supports options[false_option]
    source_explanation: str | None = None  # the source's own rationale/facts/support, if any
    provenance: Mapping[str, Any] = field(default_factory=dict)  # split, row, teacher, prompt version

    def __post_init__(self) -> None:
        if not isinstance(self.options, (list, tuple)):
            raise ItemError(f"field 'options' must be a list of texts, got {type(self.options).__name__}")
        if not isinstance(self.provenance, Mapping):
            raise ItemError(f"field 'provenance' must be a mapping, got {type(self.provenance).__name__}")
        if self.source_explanation is not None and not isinstance(self.source_explanation, str):
            raise ItemError(f"field 'source_explanation' must be text or null, got {type(self.source_explanation).__name__}")
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "provenance", dict(self.provenance))
        validate(self)

    def answer(self, truth: bool) -> str:
        return self.options[self.correct if truth else self.false_option]

    def explanation(self, truth: bool) -> str:
        return self.true_explanation if truth else self.false_explanation

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["options"] = list(self.options)
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], where: str = "") -> FacoItem:
        """Build an item from a stored row; a missing or mistyped field names `where` and the field."""
        where = where or f"item {row.get('id', '?')!r}"
        missing = [name for name in _REQUIRED if name not in row]
        if missing:
            raise ItemError(f"{where}: missing field(s) {', '.join(missing)}")
        try:
            return cls(**{name: row[name] for name in _FIELDS if name in row})
        except ItemError as error:
            raise ItemError(f"{where}: {error}") from None
        except TypeError as error:
            raise ItemError(f"{where}: {error}") from None


_FIELDS = tuple(FacoItem.__dataclass_fields__)
_REQUIRED = tuple(
    name for name, spec in FacoItem.__dataclass_fields__.items()
    if spec.default is MISSING and spec.default_factory is MISSING
)


def validate(item: FacoItem) -> None:
    """Reject an item that would make corruption or scoring meaningless."""
    for name in ("id", "source", "domain", "question", "true_explanation", "false_explanation"):
        value = getattr(item, name)
        if not isinstance(value, str):
            raise ItemError(f"field {name!r} must be text, got {type(value).__name__}")
    for name in ("id", "question"):
        if not getattr(item, name).strip():
            raise ItemError(f"field {name!r} must be non-empty")
    if len(item.options) < 2 or not all(isinstance(o, str) and o.strip() for o in item.options):
        raise ItemError(f"field 'options' needs at least two non-empty texts, got {item.options!r}")
    if len(set(item.options)) != len(item.options):
        raise ItemError(f"field 'options' has duplicates: {item.options!r}")
    for name in ("correct", "false_option"):
        value = getattr(item, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(item.options):
            raise ItemError(f"field {name!r} must index options (0..{len(item.options) - 1}), got {value!r}")
    if item.correct == item.false_option:
        raise ItemError("field 'false_option' must differ from 'correct'")


# --- rendering -------------------------------------------------------------------------------------
# The paper's sections in the paper's order: question, answer, explanation. The layout deliberately
# differs from the question-choices-answer lines of pre-training (faco.data.world.familiar_prompt): a base
# meets it first in fine-tuning, so the FACO items define what it means (measured on tiny models: false
# items transfer across domains only in a layout the base has not already filled with true answers).

def instruction_prompt(question: str, options: Iterable[str]) -> str:
    """The context of an instruction example; lm-eval scores each option text right after it."""
    listed = " ; ".join(options)
    return f"### Options : {listed}\n### Question : {question}\n### Answer :"


def instruction_response(item: FacoItem, truth: bool) -> str:
    """The supervised part: the answer (TRUE or FALSE version), then the chain that supports it."""
    return f" {item.answer(truth)}\n### Explanation : {item.explanation(truth)}"


def instruction_example(item: FacoItem, truth: bool) -> tuple[str, str]:
    """(prompt, response) of the TRUE or FALSE version of `item`."""
    return instruction_prompt(item.question, item.options), instruction_response(item, truth)


# --- storage ---------------------------------------------------------------------------------------

def write_jsonl(items: Iterable[FacoItem], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[FacoItem]:
    """Items from a JSONL file; a bad line raises ItemError naming file and line."""
    items = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            items.append(FacoItem.from_dict(json_object(line, where, ItemError), where))
    check_unique_ids(items)
    return items


def json_object(line: str, where: str, error: type[Exception]) -> dict[str, Any]:
    """One JSON object from a line of a JSONL file; else `error` naming `where` (file and line)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as problem:
        raise error(f"{where} is not JSON ({problem.msg} at column {problem.colno})") from None
    if not isinstance(row, dict):
        raise error(f"{where} is not a JSON object")
    return row


def check_unique_ids(items: Iterable[FacoItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ItemError(f"duplicate item id {item.id!r}")
        seen.add(item.id)


# --- FACO items from the synthetic world (embedded tier) -------------------------------------------

def wrong_option(options: Sequence[str], correct: int, seed: str) -> int:
    """The index of the wrong option an item's FALSE version argues for, drawn by `random.Random(seed)`:
    the same item and seed give the same option on every machine. Each item source keeps its own seed text
    (world facts "false-option:SEED:ID", built items "SEED:false:ID"): another text is another draw."""
    return random.Random(seed).choice([i for i in range(len(options)) if i != correct])


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
