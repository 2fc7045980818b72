"""Source rows in each known format mapped to one question/options/gold schema: pure functions, no I/O.

One `map_<format>(row) -> Fields` per row format; faco.data.sources names which formats each source comes
in and reads the files. A row that does not fit raises RowError naming the field and a short reason
(`missing_question`, `no_gold_answer`, ...) that lenient loading counts.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class RowError(ValueError):
    """One malformed row; `reason` is the short key that lenient loading counts."""

    def __init__(self, field_name: str, reason: str, detail: str) -> None:
        super().__init__(f"field {field_name!r}: {detail}")
        self.field_name = field_name
        self.reason = reason


@dataclass(frozen=True)
class Fields:
    """What a row mapper returns: the source-independent part of an item."""

    question: str
    options: tuple[str, ...]
    correct: int
    source_explanation: str | None = None


# --- field helpers --------------------------------------------------------------------------------

def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None:
        raise RowError(name, f"missing_{slug(name)}", "missing")
    if not isinstance(value, str) or not value.strip():
        raise RowError(name, f"empty_{slug(name)}", f"must be non-empty text, got {value!r}")
    return value.strip()


def _letter_index(letter: Any, labels: Sequence[str], name: str) -> int:
    if letter is None or (isinstance(letter, str) and not letter.strip()):
        raise RowError(name, "no_gold_answer", "no gold answer (unlabelled split?)")
    key = str(letter).strip()
    if key not in labels:
        raise RowError(name, "bad_gold_answer", f"gold {key!r} is not one of the labels {list(labels)}")
    return list(labels).index(key)


def _index(value: Any, count: int, name: str, base: int = 0) -> int:
    if value is None or value == "":
        raise RowError(name, "no_gold_answer", "no gold answer (unlabelled split?)")
    try:
        index = int(value) - base
    except (TypeError, ValueError):
        raise RowError(name, "bad_gold_answer", f"must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= index < count:
        raise RowError(name, "bad_gold_answer", f"{value!r} does not index {count} options")
    return index


def _options(values: Any, name: str) -> tuple[str, ...]:
    """Option texts, in order; duplicates are kept here (`distinct` merges them once gold is known)."""
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        raise RowError(name, "bad_options", f"needs a list of at least two options, got {values!r}")
    options = tuple(str(v).strip() if v is not None else "" for v in values)
    if not all(options):
        raise RowError(name, "bad_options", f"has an empty option: {list(values)!r}")
    return options


def distinct(fields: Fields) -> Fields:
    """Merge repeated option texts (CSQA via GKP, AQuA have a few): the same text is the same answer."""
    options = tuple(dict.fromkeys(fields.options))
    if options == fields.options:
        return fields
    if len(options) < 2:
        raise RowError("options", "bad_options", f"fewer than two distinct options: {list(fields.options)!r}")
    return Fields(fields.question, options, options.index(fields.options[fields.correct]), fields.source_explanation)


def _labelled_choices(choices: Any, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ARC-style choices, as a list of {label, text} (release files) or {label: [...], text: [...]} (hub)."""
    if isinstance(choices, Mapping):
        labels, texts = choices.get("label"), choices.get("text")
    elif isinstance(choices, list) and all(isinstance(c, Mapping) for c in choices):
        labels, texts = [c.get("label") for c in choices], [c.get("text") for c in choices]
    else:
        raise RowError(name, "bad_options", f"must be a list of {{label, text}}, got {choices!r}")
    if not isinstance(labels, list) or not isinstance(texts, list) or len(labels) != len(texts):
        raise RowError(name, "bad_options", f"labels and texts do not pair up: {choices!r}")
    return tuple(str(label).strip() for label in labels), _options(texts, name)


def slug(text: str) -> str:
    """Lower-case words joined by '_': for item ids and the reasons lenient loading counts."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _facts(row: Mapping[str, Any], *names: str) -> str | None:
    found: list[str] = []
    for name in names:
        value = row.get(name)
        values = value if isinstance(value, list) else [value]
        found += [v.strip() for v in values if isinstance(v, str) and v.strip()]
    return " ".join(found) or None


# --- row mappers: one per format, pure ------------------------------------------------------------

def map_arc(row: Mapping[str, Any]) -> Fields:
    """QASC / QuaRTz / CSQA / OBQA, release jsonl ({question: {stem, choices}}) or hub (question + choices)."""
    question = row.get("question")
    if isinstance(question, Mapping):
        stem, choices = question.get("stem"), question.get("choices")
        question = stem if isinstance(stem, str) else None
    else:
        choices = row.get("choices")
    if not isinstance(question, str) or not question.strip():
        question = row.get("question_stem")  # OBQA on the hub
    if not isinstance(question, str) or not question.strip():
        raise RowError("question", "missing_question", "no question text (question / question.stem)")
    labels, options = _labelled_choices(choices, "choices")
    correct = _letter_index(row.get("answerKey"), labels, "answerKey")
    explanation = _facts(row, "fact1", "fact2", "para")  # QASC facts, QuaRTz paragraph
    return Fields(question.strip(), options, correct, explanation)


def map_gkp(row: Mapping[str, Any]) -> Fields:
    """GKP-standardised QASC / CSQA: query, cands, answer (gold text), facts (QASC)."""
    options = _options(row.get("cands"), "cands")
    answer = row.get("answer")
    if answer is None:
        raise RowError("answer", "no_gold_answer", "no gold answer (unlabelled split?)")
    if str(answer).strip() not in options:
        raise RowError("answer", "bad_gold_answer", f"{answer!r} is not one of cands {list(options)!r}")
    return Fields(_text(row, "query"), options, options.index(str(answer).strip()), _facts(row, "facts"))


_LETTERED = re.compile(r"^([A-Z])\.\s+(.+)$", re.M)


def map_gauntlet_mc(row: Mapping[str, Any]) -> Fields:
    """Gauntlet query/choices/gold; CSQA's gauntlet puts lettered options in the query: parse them out."""
    query, choices = _text(row, "query"), row.get("choices")
    if isinstance(choices, list) and all(isinstance(c, str) and len(c.strip()) == 1 for c in choices):
        lettered = dict(_LETTERED.findall(query))
        if sorted(lettered) != sorted(c.strip() for c in choices):
            raise RowError("query", "bad_options", f"letters {choices} are not all listed in the query")
        choices = [lettered[c.strip()] for c in choices]
        match = re.search(r"(?:Question:\s*)?(.*?)\s*\nChoices:", query, re.S)
        query = match.group(1).strip() if match else query
    options = _options(choices, "choices")
    return Fields(query, options, _index(row.get("gold"), len(options), "gold"))


def map_gauntlet_schema(row: Mapping[str, Any]) -> Fields:
    """Gauntlet WinoGrande: the two sentence prefixes differ in the option; rebuild sentence with '_'."""
    contexts = row.get("context_options")
    if not isinstance(contexts, list) or len(contexts) != 2 or not all(isinstance(c, str) for c in contexts):
        raise RowError("context_options", "bad_options", f"needs two sentence prefixes, got {contexts!r}")
    first, second = contexts
    common = 0
    while common < min(len(first), len(second)) and first[common] == second[common]:
        common += 1
    if not common == len(first) == len(second):  # back off to a word boundary: 'home' / 'homes'
        common = first.rfind(" ", 0, common) + 1
    prefix = first[:common]
    options = _options([first[common:], second[common:]], "context_options")
    question = f"{prefix}_ {_text(row, 'continuation')}"
    return Fields(question, options, _index(row.get("gold"), 2, "gold"))


def map_sciq(row: Mapping[str, Any]) -> Fields:
    """SciQ: the gold text always comes last in the file; shuffle it in, seeded by the question."""
    question = _text(row, "question")
    texts = [row.get(name) for name in ("distractor1", "distractor2", "distractor3", "correct_answer")]
    options = list(_options(texts, "distractor1..3 / correct_answer"))
    gold = options[-1]
    random.Random(question).shuffle(options)
    support = row.get("support")
    return Fields(question, tuple(options), options.index(gold), support.strip() if support else None)


def map_winogrande(row: Mapping[str, Any]) -> Fields:
    options = _options([row.get("option1"), row.get("option2")], "option1/option2")
    return Fields(_text(row, "sentence"), options, _index(row.get("answer"), 2, "answer", base=1))


_AQUA_OPTION = re.compile(r"^\s*([A-E])\s*\)\s*")


def map_aqua(row: Mapping[str, Any]) -> Fields:
    raw = row.get("options")
    if not isinstance(raw, list):
        raise RowError("options", "bad_options", f"must be a list, got {raw!r}")
    labels = [m.group(1) if (m := _AQUA_OPTION.match(str(o))) else "" for o in raw]
    options = _options([_AQUA_OPTION.sub("", str(o), count=1) for o in raw], "options")
    rationale = row.get("rationale")
    return Fields(_text(row, "question"), options, _letter_index(row.get("correct"), labels, "correct"),
                  rationale.strip() if isinstance(rationale, str) and rationale.strip() else None)


_OBQA_CHOICE = re.compile(r"\(([A-Z])\)\s*")


def map_obqa_tsv(row: Mapping[str, Any]) -> Fields:
    """OBQA release TSV: 'Choices' is one string '(A) .. (B) ..'."""
    parts = _OBQA_CHOICE.split(_text(row, "Choices"))[1:]
    labels, texts = parts[0::2], parts[1::2]
    if len(labels) < 2:
        raise RowError("Choices", "bad_options", f"no '(A) .. (B) ..' options in {row.get('Choices')!r}")
    options = _options(texts, "Choices")
    return Fields(_text(row, "Question Stem"), options, _letter_index(row.get("Answer Key"), labels, "Answer Key"))


def map_conala(row: Mapping[str, Any]) -> Fields:
    intent = row.get("rewritten_intent") or row.get("intent")
    if not isinstance(intent, str) or not intent.strip():
        raise RowError("rewritten_intent", "missing_intent", "no intent (rewritten_intent / intent)")
    return Fields(intent.strip(), (_text(row, "snippet"),), 0)


def map_mbpp(row: Mapping[str, Any]) -> Fields:
    return Fields(_text(row, "text"), (_text(row, "code"),), 0)
