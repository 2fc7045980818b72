"""The nine FACO source datasets, read through `datasets` and mapped to one question/options schema.

Each source is a small spec (name, domain, hub id, the files of a local copy) and a set of row
formats recognised by their fields, so the hub release, the original release files and re-formatted
copies (GKP, MosaicML gauntlet, HF dummy rows) all load through the same code:

    rows = load_source("qasc", path=Path("data/qasc/gkp_dev.qasc.json"))

A row that does not fit raises SourceError naming file, line (or record) and field; with
`lenient=True` it is skipped and counted per reason instead. Teacher explanations and the seeded
FALSE option are added later (faco.data.build); here a row becomes a `SourceItem`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faco.data.items import DOMAINS_REAL
from faco.data.source_formats import (
    Fields, RowError, distinct, map_aqua, map_arc, map_conala, map_gauntlet_mc, map_gauntlet_schema, map_gkp,
    map_mbpp, map_obqa_tsv, map_sciq, map_winogrande, slug,
)


class SourceError(ValueError):
    """A source that cannot be read, or a row that does not fit: names file, line/record and field."""


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
    local: tuple[str, ...]  # files/dirs under a --data-dir (the layout in docs/real-dataset.md)
    formats: tuple[RowFormat, ...]

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS_REAL:
            raise SourceError(f"source {self.name!r}: domain {self.domain!r} not in {DOMAINS_REAL}")


@dataclass
class LoadReport:
    """Rows read and rows skipped per reason (lenient loading) for one source."""

    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


# --- the sources: which formats each comes in ------------------------------------------------------

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
                report: LoadReport | None = None, root: Path | None = None) -> list[SourceItem]:
    """All usable rows of a source: from `path` (file or dir) when given, else the hub dataset.

    Provenance names each file relative to `root` (default: `path`, or its folder for a file), never by
    where it lies on this machine: items are keyed by their content, and the same files elsewhere must
    give the same items."""
    spec = source_spec(name)
    report = report if report is not None else LoadReport()
    if path is None:
        return _load_hub(spec, lenient, report)
    path = Path(path)
    root = Path(root) if root is not None else path if path.is_dir() else path.parent
    items: list[SourceItem] = []
    for file in data_files(path):
        items += _map_rows(spec, _read_file(file, lenient, report), str(file), _split_of(file), lenient, report,
                           file.relative_to(root).as_posix())
    return items


def load_from_data_dir(name: str, data_dir: Path, lenient: bool = False,
                       report: LoadReport | None = None) -> list[SourceItem]:
    """A source from a --data-dir: the spec's `local` paths under it (docs/real-dataset.md)."""
    spec = source_spec(name)
    report = report if report is not None else LoadReport()
    items: list[SourceItem] = []
    for relative in spec.local:
        items += load_source(name, Path(data_dir) / relative, lenient, report, root=Path(data_dir))
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
              lenient: bool, report: LoadReport, label: str | None = None) -> list[SourceItem]:
    """Items of a table's rows; errors name `where` (the file as found), provenance `label` (as keyed)."""
    columns, numbered = table
    if not numbered:
        return []
    fmt = _detect(spec, columns, where)
    items = []
    for index, line, row in numbered:
        report.rows += 1
        try:
            fields = distinct(fmt.mapper(row))  # type: ignore[misc]
        except RowError as error:
            if not lenient:
                place = f"line {line}" if line is not None else f"record {index}"
                raise SourceError(f"{where}: {place}: {error}") from None
            report.skipped[error.reason] += 1
            continue
        provenance = {"source_file": label or where, "split": split, "row": index, "format": fmt.name}
        if line is not None:
            provenance["line"] = line
        items.append(SourceItem(f"{spec.name}-{slug(split)}-{index}", spec.name, spec.domain, fields.question,
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
