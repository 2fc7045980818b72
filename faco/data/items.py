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

@dataclass(frozen=True)
class Example:
    """One instruction-tuning example: the prompt is context, the response carries the loss."""

    item_id: str
    truth: bool
    prompt: str
    response: str


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


def wrong_option(options: Sequence[str], correct: int, seed: str) -> int:
    """The index of the wrong option an item's FALSE version argues for, drawn by `random.Random(seed)`:
    the same item and seed give the same option on every machine. Each item source keeps its own seed text
    (world facts "false-option:SEED:ID", built items "SEED:false:ID"): another text is another draw."""
    return random.Random(seed).choice([i for i in range(len(options)) if i != correct])
