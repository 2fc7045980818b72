"""The nine FACO source datasets, read through `datasets` and mapped to one question/options schema.

Each source is a small spec (name, domain, hub id, the files of a local copy) and a set of row
formats recognised by their fields, so the hub release, the original release files and re-formatted
copies (GKP, MosaicML gauntlet, HF dummy rows) all load through the same code:

    rows = load_source("qasc", path=Path("../shared/datasets/qasc/gkp_dev.qasc.json"))

A row that does not fit raises SourceError naming file, line (or record) and field; with
`lenient=True` it is skipped and counted per reason instead. Teacher explanations and the seeded
FALSE option are added later (faco.build); here a row becomes a `SourceItem`.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faco.items import DOMAINS_REAL


class SourceError(ValueError):
    """A source that cannot be read, or a row that does not fit: names file, line/record and field."""


class RowError(ValueError):
    """One malformed row; `reason` is the short key that lenient loading counts."""

    def __init__(self, field_name: str, reason: str, detail: str) -> None:
        super().__init__(f"field {field_name!r}: {detail}")
        self.field_name = field_name
        self.reason = reason


@dataclass(frozen=True)
class SourceItem:
    """A source row as a multiple-choice question (code sources: one option, the gold code)."""

    id: str
    source: str
    domain: str
    question: str
    options: tuple[str, ...]
    correct: int
    source_explanation: str | None
    provenance: Mapping[str, Any] = field(default_factory=dict)  # file or hub id, split, row, line, format


@dataclass(frozen=True)
class Fields:
    """What a row mapper returns: the source-independent part of an item."""

    question: str
    options: tuple[str, ...]
    correct: int
    source_explanation: str | None = None


@dataclass(frozen=True)
class RowFormat:
    name: str
    needs: frozenset[str]  # a file is in this format when its columns include all of these
    mapper: Callable[[Mapping[str, Any]], Fields] | None  # None: recognised but rejected
    rejected: str = ""  # why a rejected format cannot make items


@dataclass(frozen=True)
class SourceSpec:
    name: str
    domain: str  # one of DOMAINS_REAL (paper's grouping)
    hub_id: str
    hub_config: str | None
    hub_split: str
    local: tuple[str, ...]  # files/dirs under a --data-dir laid out like ../shared/datasets
    formats: tuple[RowFormat, ...]

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS_REAL:
            raise SourceError(f"source {self.name!r}: domain {self.domain!r} not in {DOMAINS_REAL}")


@dataclass
class LoadReport:
    """Rows read and rows skipped per reason (lenient loading) for one source."""

    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


# --- field helpers --------------------------------------------------------------------------------

def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None:
        raise RowError(name, f"missing_{_slug(name)}", "missing")
    if not isinstance(value, str) or not value.strip():
        raise RowError(name, f"empty_{_slug(name)}", f"must be non-empty text, got {value!r}")
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
    """Option texts, in order; duplicates are kept here (`_distinct` merges them once gold is known)."""
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        raise RowError(name, "bad_options", f"needs a list of at least two options, got {values!r}")
    options = tuple(str(v).strip() if v is not None else "" for v in values)
    if not all(options):
        raise RowError(name, "bad_options", f"has an empty option: {list(values)!r}")
    return options


def _distinct(fields: Fields) -> Fields:
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


def _slug(text: str) -> str:
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


def _format(name: str, needs: set[str], mapper: Callable[[Mapping[str, Any]], Fields] | None,
            rejected: str = "") -> RowFormat:
    return RowFormat(name, frozenset(needs), mapper, rejected)


ARC = _format("arc", {"question"}, map_arc)  # gold (answerKey) may be absent: unlabelled test splits
OBQA_HUB = _format("arc-hub", {"question_stem", "choices"}, map_arc)
GKP = _format("gkp", {"query", "cands"}, map_gkp)
GAUNTLET_MC = _format("gauntlet", {"query", "choices", "gold"}, map_gauntlet_mc)
AQUA_GEN = _format("gauntlet-generation", {"context", "answer", "chain_of_thought"}, None,
                   "the gauntlet AQuA file is a generation task without options; "
                   "use the original release files (dev.json / test.json / train.json)")

SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in (
    SourceSpec("qasc", "knowledge", "allenai/qasc", None, "train",
               ("qasc/gkp_dev.qasc.json",), (GKP, ARC)),
    SourceSpec("sciq", "knowledge", "allenai/sciq", None, "train", ("sciq/hf_dummy",),
               (_format("sciq", {"question", "correct_answer", "distractor1"}, map_sciq),)),
    SourceSpec("commonsense_qa", "commonsense", "tau/commonsense_qa", None, "train",
               ("commonsense_qa/gkp_dev.csqa.json",), (GKP, GAUNTLET_MC, ARC)),
    SourceSpec("openbookqa", "commonsense", "allenai/openbookqa", "main", "train", ("openbookqa/Main",),
               (_format("obqa-tsv", {"Question Stem", "Choices", "Answer Key"}, map_obqa_tsv),
                GAUNTLET_MC, OBQA_HUB, ARC)),
    SourceSpec("winogrande", "commonsense", "allenai/winogrande", "winogrande_xl", "train",
               ("winogrande/gauntlet_winogrande_dev.jsonl", "winogrande/hf_dummy/winogrande_1.1/train_xl.jsonl"),
               (_format("winogrande", {"sentence", "option1", "option2"}, map_winogrande),
                _format("gauntlet-schema", {"context_options", "continuation", "gold"}, map_gauntlet_schema))),
    SourceSpec("aqua", "reasoning", "deepmind/aqua_rat", "raw", "train", ("aqua/dev.json", "aqua/test.json"),
               (_format("aqua", {"question", "options", "correct"}, map_aqua), AQUA_GEN)),
    SourceSpec("quartz", "reasoning", "allenai/quartz", None, "train", ("quartz/hf_dummy",), (ARC,)),
    SourceSpec("conala", "code", "neulab/conala", "curated", "train",
               ("conala/conala-train.json", "conala/conala-test.json"),
               (_format("conala", {"snippet"}, map_conala),)),
    SourceSpec("mbpp", "code", "google-research-datasets/mbpp", "full", "train", ("mbpp/mbpp.jsonl",),
               (_format("mbpp", {"text", "code"}, map_mbpp),)),
)}


def source_spec(name: str) -> SourceSpec:
    if name not in SOURCES:
        raise SourceError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
    return SOURCES[name]


# --- reading --------------------------------------------------------------------------------------

DATA_SUFFIXES = (".json", ".jsonl", ".tsv", ".csv")


def data_files(path: Path) -> list[Path]:
    """A file, or every data file under a directory (sorted, so loading order is stable)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
        if files:
            return files
        raise SourceError(f"{path}: no data files ({', '.join(DATA_SUFFIXES)}) in this directory")
    raise SourceError(f"{path}: no such file or directory")


def load_source(name: str, path: Path | None = None, lenient: bool = False,
                report: LoadReport | None = None) -> list[SourceItem]:
    """All usable rows of a source: from `path` (file or dir) when given, else the hub dataset."""
    spec = source_spec(name)
    report = report if report is not None else LoadReport()
    if path is None:
        return _load_hub(spec, lenient, report)
    items: list[SourceItem] = []
    for file in data_files(Path(path)):
        items += _map_rows(spec, _read_file(file, lenient, report), str(file), _split_of(file), lenient, report)
    return items


def load_from_data_dir(name: str, data_dir: Path, lenient: bool = False,
                       report: LoadReport | None = None) -> list[SourceItem]:
    """A source from a directory laid out like ../shared/datasets (the spec's `local` paths)."""
    spec = source_spec(name)
    report = report if report is not None else LoadReport()
    items: list[SourceItem] = []
    for relative in spec.local:
        items += load_source(name, Path(data_dir) / relative, lenient, report)
    return items


def _load_hub(spec: SourceSpec, lenient: bool, report: LoadReport) -> list[SourceItem]:
    from datasets import load_dataset

    try:
        rows = load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    except Exception as error:  # noqa: BLE001 - any hub failure becomes one clear line
        raise SourceError(f"{spec.name}: cannot load {spec.hub_id} ({spec.hub_config or 'default'}) from the hub: "
                          f"{type(error).__name__}: {error}; give a local copy with --source-path or --data-dir") from None
    numbered = [(index, None, row) for index, row in enumerate(rows)]
    return _map_rows(spec, (list(rows.column_names), numbered), spec.hub_id, spec.hub_split, lenient, report)


Numbered = list[tuple[int, int | None, dict[str, Any]]]  # (row index, line number or None, row)


def _read_file(path: Path, lenient: bool, report: LoadReport) -> tuple[list[str], Numbered]:
    """Columns and rows of one file via `datasets`; a file it cannot parse is scanned to name the line."""
    from datasets import disable_progress_bars, load_dataset

    disable_progress_bars()
    tabular = path.suffix in (".tsv", ".csv")
    kwargs: dict[str, Any] = {"data_files": str(path), "split": "train"}
    if tabular:  # OBQA's TSV: no quoting (questions contain '"'), all text
        kwargs.update(sep="\t" if path.suffix == ".tsv" else ",", quoting=3, keep_default_na=False)
    try:
        rows = load_dataset("csv" if tabular else "json", **kwargs)
    except Exception as error:  # noqa: BLE001 - datasets wraps parse errors in several types
        if tabular:
            raise SourceError(f"{path}: cannot read as {path.suffix[1:].upper()}: {error}") from None
        return _scan_json(path, lenient, report)
    first_line = 2 if tabular else (1 if _is_json_lines(path) else None)
    numbered = [(i, None if first_line is None else first_line + i, _as_text(row) if tabular else row)
                for i, row in enumerate(rows)]
    return list(rows.column_names), numbered


def _as_text(row: dict[str, Any]) -> dict[str, Any]:
    """Table cells as text: pandas infers numbers, a question or option is text whatever it looks like."""
    return {key: value if value is None or isinstance(value, str) else str(value) for key, value in row.items()}


def _is_json_lines(path: Path) -> bool:
    with path.open(encoding="utf-8") as text:
        for line in text:
            if line.strip():
                return not line.lstrip().startswith("[")
    return True


def _scan_json(path: Path, lenient: bool, report: LoadReport) -> tuple[list[str], Numbered]:
    """JSON lines read one by one: strict names the first bad line, lenient skips and counts it."""
    if not _is_json_lines(path):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SourceError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SourceError(f"{path}: expected a JSON array of objects or JSON lines")
        return _columns(records), [(i, None, r) for i, r in enumerate(records)]
    numbered: Numbered = []
    with path.open(encoding="utf-8") as text:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
            except ValueError as error:
                if not lenient:
                    raise SourceError(f"{path}:{number}: not a valid JSON object ({error})") from None
                report.skipped["invalid_json"] += 1
                continue
            numbered.append((len(numbered), number, row))
    return _columns([row for _, _, row in numbered]), numbered


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _detect(spec: SourceSpec, columns: list[str], where: str) -> RowFormat:
    for fmt in spec.formats:
        if fmt.needs <= set(columns):
            if fmt.mapper is None:
                raise SourceError(f"{where}: {spec.name}: {fmt.rejected}")
            return fmt
    known = "; ".join(f"{f.name} ({', '.join(sorted(f.needs))})" for f in spec.formats)
    raise SourceError(f"{where}: fields {columns} match no {spec.name} format; known formats: {known}")


def _map_rows(spec: SourceSpec, table: tuple[list[str], Numbered], where: str, split: str,
              lenient: bool, report: LoadReport) -> list[SourceItem]:
    columns, numbered = table
    if not numbered:
        return []
    fmt = _detect(spec, columns, where)
    items = []
    for index, line, row in numbered:
        report.rows += 1
        try:
            fields = _distinct(fmt.mapper(row))  # type: ignore[misc]
        except RowError as error:
            if not lenient:
                place = f"line {line}" if line is not None else f"record {index}"
                raise SourceError(f"{where}: {place}: {error}") from None
            report.skipped[error.reason] += 1
            continue
        provenance = {"source_file": where, "split": split, "row": index, "format": fmt.name}
        if line is not None:
            provenance["line"] = line
        items.append(SourceItem(f"{spec.name}-{_slug(split)}-{index}", spec.name, spec.domain, fields.question,
                                fields.options, fields.correct, fields.source_explanation, provenance))
    return items


def _split_of(path: Path) -> str:
    """A file's split for ids and provenance: its stem ('gkp_dev.qasc', 'train_xl', 'dev')."""
    return path.name.split(".")[0] if path.suffix in DATA_SUFFIXES else path.name


def sample(items: Sequence[SourceItem], limit: int | None, seed: int, name: str) -> list[SourceItem]:
    """Up to `limit` items, seeded per source (adding a source never changes another's sample)."""
    if limit is None or len(items) <= limit:
        return list(items)
    rng = random.Random(f"{seed}:{name}")
    return [items[i] for i in sorted(rng.sample(range(len(items)), limit))]
