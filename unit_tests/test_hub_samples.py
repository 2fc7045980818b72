"""The hub-schema converter (unit_tests/hub_samples.py): every benchmark's rows carry the fields lm-eval's
task reads, with the hub's types, and lm-eval's own task config renders them once the dataset is
swapped for the local file.

The sample files are read in place from the shared dataset dir (FACO_SHARED_DIR overrides the folder that holds it);
without them every test here skips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hub_samples import SAMPLE_FILES, split_hellaswag_ctx, winogrande_row, write_hub_samples  # pytest puts unit_tests/ on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED = Path(os.environ.get("FACO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no dataset samples at {SHARED} (set FACO_SHARED_DIR)")

ROWS = 5
STR, INT = str, int
LIST_STR, LIST_INT = "list[str]", "list[int]"
CHOICES = {"text": LIST_STR, "label": LIST_STR}

# benchmark -> split -> {field: type}: the hub schema, as far as lm-eval's task reads it
SCHEMAS: dict[str, tuple[tuple[str, ...], dict]] = {
    "arc_easy": (("test",), {"id": STR, "question": STR, "choices": CHOICES, "answerKey": STR}),
    "arc_challenge": (("test",), {"id": STR, "question": STR, "choices": CHOICES, "answerKey": STR}),
    "boolq": (("validation",), {"passage": STR, "question": STR, "label": INT, "idx": INT}),
    "copa": (("validation",), {"premise": STR, "choice1": STR, "choice2": STR, "question": STR, "label": INT, "idx": INT}),
    "piqa": (("validation",), {"goal": STR, "sol1": STR, "sol2": STR, "label": INT}),
    "hellaswag": (("validation",), {"ind": INT, "activity_label": STR, "ctx_a": STR, "ctx_b": STR, "ctx": STR,
                                    "endings": LIST_STR, "label": STR, "split": STR, "split_type": STR, "source_id": STR}),
    "openbookqa": (("test", "validation"), {"id": STR, "question_stem": STR, "choices": CHOICES, "answerKey": STR}),
    "winogrande": (("validation",), {"sentence": STR, "option1": STR, "option2": STR, "answer": STR}),
    "lambada": (("test",), {"text": STR}),
    "mmlu": (("test", "dev"), {"question": STR, "subject": STR, "choices": LIST_STR, "answer": INT}),
    "squad": (("validation",), {"id": STR, "title": STR, "context": STR, "question": STR,
                                "answers": {"text": LIST_STR, "answer_start": LIST_INT}}),
    "mathqa": (("test",), {"Problem": STR, "Rationale": STR, "options": STR, "correct": STR,
                           "annotated_formula": STR, "linear_formula": STR, "category": STR}),
    "logiqa": (("test",), {"label": STR, "context": STR, "question": STR, "options": LIST_STR}),
    "bigbench_conceptual_combinations": (("default",), {"inputs": STR, "targets": LIST_STR, "multiple_choice_targets": LIST_STR,
                                                        "multiple_choice_scores": LIST_INT, "idx": INT}),
    "bigbench_logical_deduction": (("default",), {"inputs": STR, "targets": LIST_STR, "multiple_choice_targets": LIST_STR,
                                                  "multiple_choice_scores": LIST_INT, "idx": INT}),
    "humaneval": (("test",), {"task_id": STR, "prompt": STR, "canonical_solution": STR, "test": STR, "entry_point": STR}),
}


def conforms(value, kind) -> bool:
    if isinstance(kind, dict):
        return isinstance(value, dict) and set(value) == set(kind) and all(conforms(value[k], t) for k, t in kind.items())
    if kind == LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == LIST_INT:
        return isinstance(value, list) and all(isinstance(v, int) for v in value)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A 5-row slice of every benchmark, in the hub schema."""
    out = tmp_path_factory.mktemp("hub")
    write_hub_samples(SHARED, out, limit=ROWS)
    return out


def test_every_benchmark_has_a_schema():
    assert set(SCHEMAS) == set(SAMPLE_FILES)


@pytest.mark.parametrize("benchmark", sorted(SCHEMAS))
def test_rows_have_hub_fields_and_types(data_dir, benchmark):
    splits, schema = SCHEMAS[benchmark]
    assert sorted(p.stem for p in (data_dir / benchmark).glob("*.jsonl")) == sorted(splits)
    for split in splits:
        rows = read_rows(data_dir / benchmark / f"{split}.jsonl")
        assert len(rows) == ROWS
        for row in rows:
            assert set(row) >= set(schema), f"{benchmark}/{split} lacks {set(schema) - set(row)}"
            bad = {k: row[k] for k, t in schema.items() if not conforms(row[k], t)}
            assert not bad, f"{benchmark}/{split}: wrong types {bad}"


def test_winogrande_reconstruction_inverts_the_gauntlet_rendering():
    """Render the original-format rows the way the gauntlet does, then convert back: exact."""
    for original in read_rows(SHARED / "winogrande" / "hf_dummy" / "winogrande_1.1" / "dev.jsonl"):
        blank = original["sentence"].index("_")
        gauntlet = {"context_options": [original["sentence"][:blank] + o for o in (original["option1"], original["option2"])],
                    "continuation": original["sentence"][blank + 1:].strip(), "gold": int(original["answer"]) - 1}
        assert winogrande_row(gauntlet) == {k: original[k] for k in ("sentence", "option1", "option2", "answer")}


def test_hellaswag_ctx_split_matches_the_original_rows():
    """The ctx_a/ctx_b guess, checked on the rows whose original split is known."""
    for original in read_rows(SHARED / "hellaswag" / "hf_dummy" / "hellaswag_val.jsonl"):
        assert split_hellaswag_ctx(original["ctx"]) == (original["ctx_a"], original["ctx_b"])


# ---------------------------------------------------------------- lm-eval renders them through faco's task files


@pytest.fixture(scope="module")
def task_manager(data_dir, tmp_path_factory):
    """faco's task files for every benchmark with a sample (lm-eval's config, the dataset swapped), in one
    TaskManager without lm-eval's defaults (it starts at once)."""
    from lm_eval.tasks import TaskManager

    from faco.evaluation import benchmarks

    from faco.evaluation import lm_tasks

    yaml_dir = tmp_path_factory.mktemp("tasks")
    names = {spec.name: lm_tasks.write_benchmark_tasks(spec, yaml_dir, 0, data_dir)
             for spec in benchmarks.resolve(list(SCHEMAS))}
    return TaskManager(include_path=str(yaml_dir), include_defaults=False), names


def render(task, doc) -> tuple:
    choices = task.doc_to_choice(doc) if task.OUTPUT_TYPE == "multiple_choice" else None
    return task.doc_to_text(doc), choices, task.doc_to_target(doc)


@pytest.mark.parametrize("benchmark", list(SCHEMAS))
def test_lm_eval_task_renders_local_rows(task_manager, benchmark):
    from lm_eval.tasks import get_task_dict

    manager, names = task_manager
    for name in names[benchmark]:
        task = get_task_dict([name], manager)[name]
        docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
        assert 0 < len(docs) <= ROWS
        for doc in docs:
            text, choices, target = render(task, doc)
            assert text != "" and target != ""
            if choices is None:
                continue
            assert len(choices) >= 2
            if isinstance(text, int):  # winogrande: the text picks a context, the target is the shared continuation
                assert 0 <= text < len(choices)
            else:  # an index into the choices, or (copa) the choice itself
                assert target in choices if isinstance(target, str) else 0 <= target < len(choices)


def test_lm_eval_renders_the_gauntlet_prompts_back(task_manager):
    """Where the gauntlet kept lm-eval's own wording, the rendered prompt is the gauntlet's, character for character."""
    from lm_eval.tasks import get_task_dict

    manager, _ = task_manager
    gauntlet = read_rows(SHARED / "arc_easy" / "gauntlet_arc_easy.jsonl")[0]
    arc = get_task_dict(["faco_arc_easy"], manager)["faco_arc_easy"]
    assert render(arc, arc.test_docs()[0]) == (gauntlet["query"] + "\nAnswer:", gauntlet["choices"], gauntlet["gold"])
    gauntlet = read_rows(SHARED / "copa" / "gauntlet_copa.jsonl")[0]
    copa = get_task_dict(["faco_copa"], manager)["faco_copa"]
    text, choices, _ = render(copa, copa.validation_docs()[0])
    assert (text, choices) == (gauntlet["query"].replace(",", ""), [" " + c for c in gauntlet["choices"]])
