"""The nine source loaders: every sample file listed in shared/datasets/SOURCES.md, every format.

Files are read in place (never copied into the repo); the table in SOURCES.md is the list, so a file
added there is tested here. Malformed rows use small files written to tmp_path.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from faco.data.items import DOMAINS_REAL, FacoItem
from faco.data.source_formats import map_arc, map_gauntlet_mc, map_gauntlet_schema, map_sciq
from faco.data.sources import SOURCES, LoadReport, SourceError, load_from_data_dir, load_source, sample, source_spec

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED = Path(os.environ.get("FACO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no dataset samples at {SHARED} (set FACO_SHARED_DIR)")

# Sample files that cannot make items, and the field the error must name: unlabelled test splits,
# and the gauntlet AQuA (a generation task without options).
NO_ITEMS = {
    "qasc/gkp_test.qasc.json": "'answer'",
    "qasc/hf_dummy/QASC_Dataset/test.jsonl": "'answerKey'",
    "winogrande/hf_dummy/winogrande_1.1/test.jsonl": "'answer'",
    "aqua/gauntlet_aqua.jsonl": "generation task without options",
}


def listed_samples() -> list[tuple[str, str]]:
    """(source, path) for every row of SOURCES.md that belongs to one of the nine sources."""
    if not SHARED.is_dir():
        return []
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \|", (SHARED / "SOURCES.md").read_text(encoding="utf-8"), re.M)
    return [(name, path) for name, path in rows if name in SOURCES]


SAMPLES = listed_samples()


def as_item(row) -> FacoItem:
    """A loaded row must make a valid FacoItem once explanations and a wrong option are added."""
    options = row.options if len(row.options) > 1 else (row.options[0], row.options[0] + "  # other")
    return FacoItem(row.id, row.source, row.domain, row.question, options, row.correct,
                    (row.correct + 1) % len(options), "true chain", "false chain", row.source_explanation,
                    row.provenance)


def test_every_spec_is_valid_and_every_source_has_samples():
    assert len(SOURCES) == 9
    assert {spec.domain for spec in SOURCES.values()} == set(DOMAINS_REAL)
    for spec in SOURCES.values():
        assert spec.formats and spec.hub_id and spec.local
    if SHARED.is_dir():
        assert {name for name, _ in SAMPLES} == set(SOURCES)
        for spec in SOURCES.values():
            assert all((SHARED / path).exists() for path in spec.local), spec.name


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(SourceError, match="unknown source 'squad'.*qasc.*mbpp"):
        source_spec("squad")


@needs_shared
@pytest.mark.parametrize(("name", "path"), SAMPLES, ids=[p for _, p in SAMPLES])
def test_sample_file_loads(name, path):
    if path in NO_ITEMS:
        with pytest.raises(SourceError) as error:
            load_source(name, SHARED / path)
        assert path.split("/")[-1] in str(error.value) and NO_ITEMS[path] in str(error.value)
        return
    report = LoadReport()
    rows = load_source(name, SHARED / path, report=report)
    assert rows and len(rows) == report.rows and not report.skipped
    items = [as_item(row) for row in rows]
    assert len({item.id for item in items}) == len(items)
    assert all(item.domain == SOURCES[name].domain for item in items)
    first = rows[0].provenance
    assert first["source_file"].endswith(path.split("/")[-1]) and first["row"] == 0


@needs_shared
def test_unlabelled_files_are_skipped_and_counted_when_lenient():
    report = LoadReport()
    assert load_source("qasc", SHARED / "qasc/gkp_test.qasc.json", lenient=True, report=report) == []
    assert report.skipped == {"no_gold_answer": 920}
    report = LoadReport()
    rows = load_source("winogrande", SHARED / "winogrande/hf_dummy", lenient=True, report=report)
    assert len(rows) == 6 and report.skipped == {"no_gold_answer": 2}


@needs_shared
def test_data_dir_layout_loads_all_nine_sources_strictly():
    counts = {name: len(load_from_data_dir(name, SHARED)) for name in SOURCES}
    assert all(counts.values()), counts


@needs_shared
def test_the_same_question_in_two_formats_maps_to_the_same_item():
    gkp = load_source("qasc", SHARED / "qasc/gkp_dev.qasc.json")[0]
    original = load_source("qasc", SHARED / "qasc/hf_dummy/QASC_Dataset/dev.jsonl")[0]
    assert (gkp.question, gkp.options, gkp.correct) == (original.question, original.options, original.correct)
    assert gkp.source_explanation == original.source_explanation  # QASC's two facts
    gauntlet = load_source("winogrande", SHARED / "winogrande/gauntlet_winogrande_dev.jsonl")
    assert gauntlet[0].question == "Sarah was a much better surgeon than Maria so _ always got the easier cases."
    assert gauntlet[0].options[gauntlet[0].correct] == "Maria"


# --- mappers on hub-shaped and edge rows ----------------------------------------------------------

def test_hub_rows_with_choices_as_lists():
    row = {"question": "What boils water?", "choices": {"text": ["ice", "heat"], "label": ["A", "B"]},
           "answerKey": "B", "fact1": "Heat boils water."}
    fields = map_arc(row)
    assert fields.options == ("ice", "heat") and fields.correct == 1 and fields.source_explanation == "Heat boils water."
    obqa = {"question_stem": "Fog forms near", "choices": {"text": ["a marsh", "a desert"], "label": ["A", "B"]},
            "answerKey": "A"}
    assert map_arc(obqa).question == "Fog forms near"


def test_gauntlet_csqa_letters_are_parsed_from_the_query():
    row = {"query": "Question: Where is money kept?\nChoices:\nA. bank\nB. river\nAnswer:", "choices": ["A", "B"],
           "gold": 0}
    fields = map_gauntlet_mc(row)
    assert (fields.question, fields.options, fields.correct) == ("Where is money kept?", ("bank", "river"), 0)


@pytest.mark.parametrize(("first", "second", "options"), [
    ("The cat chased the dog so the cat", "The cat chased the dog so the dog", ("cat", "dog")),
    ("He never goes to my home", "He never goes to my homes", ("home", "homes")),
    ("So Ian", "So Ivan", ("Ian", "Ivan")),
], ids=["words", "prefix", "shared-letter"])
def test_winogrande_gauntlet_options_end_on_word_boundaries(first, second, options):
    fields = map_gauntlet_schema({"context_options": [first, second], "continuation": "won.", "gold": 1})
    assert fields.options == options and fields.question.endswith("_ won.")


def test_sciq_gold_is_shuffled_deterministically():
    rows = [{"question": f"q{i}", "distractor1": "a", "distractor2": "b", "distractor3": "c", "correct_answer": "d"}
            for i in range(40)]
    mapped = [map_sciq(row) for row in rows]
    assert all(m.options[m.correct] == "d" for m in mapped)
    assert len({m.correct for m in mapped}) == 4  # not always last
    assert mapped == [map_sciq(row) for row in rows]


# --- malformed rows -------------------------------------------------------------------------------

def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = {"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"}


def test_malformed_row_names_file_line_and_field(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [GOOD, {**GOOD, "answer": "3"}])
    with pytest.raises(SourceError, match=r"train\.jsonl: line 2: field 'answer'"):
        load_source("winogrande", path)


def test_broken_json_line_is_named_or_skipped(tmp_path):
    path = write_lines(tmp_path / "dev.jsonl", [GOOD, '{"sentence": "cut', GOOD])
    with pytest.raises(SourceError, match=r"dev\.jsonl:2: not a valid JSON object"):
        load_source("winogrande", path)
    report = LoadReport()
    assert len(load_source("winogrande", path, lenient=True, report=report)) == 2
    assert report.skipped == {"invalid_json": 1}


def test_lenient_counts_each_reason(tmp_path):
    rows = [GOOD, {**GOOD, "answer": ""}, {**GOOD, "option2": "x"}, {**GOOD, "sentence": " "}, {**GOOD, "answer": "9"}]
    report = LoadReport()
    loaded = load_source("winogrande", write_lines(tmp_path / "dev.jsonl", rows), lenient=True, report=report)
    assert len(loaded) == 1 and report.rows == 5
    assert report.skipped == {"no_gold_answer": 1, "bad_options": 1, "empty_sentence": 1, "bad_gold_answer": 1}


def test_repeated_options_are_merged_not_fatal(tmp_path):
    row = {"question": "2+2?", "options": ["A)4", "B)5", "C)4", "D)6"], "rationale": "sum", "correct": "C"}
    (loaded,) = load_source("aqua", write_lines(tmp_path / "dev.json", [row]))
    assert loaded.options == ("4", "5", "6") and loaded.correct == 0


def test_a_file_of_another_dataset_is_refused(tmp_path):
    with pytest.raises(SourceError, match="match no sciq format"):
        load_source("sciq", write_lines(tmp_path / "x.jsonl", [GOOD]))


def test_sampling_is_seeded_and_bounded(tmp_path):
    rows = load_source("winogrande", write_lines(tmp_path / "dev.jsonl", [{**GOOD, "sentence": f"{i} _"} for i in range(30)]))
    first, again, other = sample(rows, 10, 0, "winogrande"), sample(rows, 10, 0, "winogrande"), sample(rows, 10, 1, "winogrande")
    assert len(first) == 10 and first == again and first != other
    assert sample(rows, 100, 0, "winogrande") == rows


def test_a_hub_failure_says_how_to_go_offline(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SourceError, match=r"cannot load allenai/openbookqa \(main\).*--source-path or --data-dir"):
        load_source("openbookqa")
