"""The hub-schema converter (unit_tests/hub_samples.py): every benchmark's rows carry the fields lm-eval's
task reads, with the hub's types, and lm-eval's own task config renders them once the dataset is
swapped for the local file.

The sample files are read in place from the shared dataset dir (FACO_SHARED_DATASETS overrides it);
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

SHARED = Path(os.environ.get("FACO_SHARED_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no dataset samples at {SHARED} (set FACO_SHARED_DATASETS)")

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


# ---------------------------------------------------------------- lm-eval renders the rows

# benchmark -> (lm-eval task yaml under lm_eval/tasks, the splits that exist locally)
LM_EVAL_TASKS = {
    "arc_easy": ("arc/arc_easy.yaml", {"test_split": "test"}),
    "arc_challenge": ("arc/arc_challenge.yaml", {"test_split": "test"}),
    "boolq": ("super_glue/boolq/default.yaml", {"validation_split": "validation"}),
    "copa": ("super_glue/copa/default.yaml", {"validation_split": "validation"}),
    "piqa": ("piqa/piqa.yaml", {"validation_split": "validation"}),
    "hellaswag": ("hellaswag/hellaswag.yaml", {"validation_split": "validation"}),
    "openbookqa": ("openbookqa/openbookqa.yaml", {"test_split": "test", "validation_split": "validation"}),
    "winogrande": ("winogrande/default.yaml", {"validation_split": "validation"}),
    "lambada": ("lambada/lambada_openai.yaml", {"test_split": "test"}),
    "mmlu": ("mmlu/default/mmlu_high_school_mathematics.yaml", {"test_split": "test", "fewshot_split": "dev"}),
    "mathqa": ("mathqa/mathqa.yaml", {"test_split": "test"}),
    "logiqa": ("logiqa/logiqa.yaml", {"test_split": "test"}),
    "bigbench_conceptual_combinations": ("bigbench/multiple_choice/conceptual_combinations.yaml", {"test_split": "default"}),
    "bigbench_logical_deduction": ("bigbench/multiple_choice/logical_deduction.yaml", {"test_split": "default"}),
    "humaneval": ("humaneval/humaneval.yaml", {"test_split": "test"}),
}
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
# humaneval's utils.py runs evaluate.load("code_eval") at import, which needs the hub (and
# HF_ALLOW_CODE_EVAL=1): offline the task cannot be built, whatever its dataset.
OFFLINE_UNBUILDABLE = {"humaneval": "lm-eval's humaneval utils.py loads the code_eval metric from the hub at import"}


def local_task_yaml(benchmark: str, data_dir: Path) -> dict:
    """lm-eval's own task config with only the dataset swapped for DATA_DIR/<benchmark>/<split>.jsonl."""
    import lm_eval.tasks

    relative, splits = LM_EVAL_TASKS[benchmark]
    return {"include": str(Path(lm_eval.tasks.__file__).parent / relative), "task": f"local_{benchmark}",
            "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {s: str(data_dir / benchmark / f"{s}.jsonl") for s in set(splits.values())}},
            **{key: splits.get(key) for key in SPLIT_KEYS}}


@pytest.fixture(scope="module")
def task_manager(data_dir, tmp_path_factory):
    """One TaskManager over the local task YAMLs only (without lm-eval's defaults it starts at once)."""
    import yaml
    from lm_eval.tasks import TaskManager

    yaml_dir = tmp_path_factory.mktemp("tasks")
    for benchmark in LM_EVAL_TASKS:
        (yaml_dir / f"local_{benchmark}.yaml").write_text(yaml.safe_dump(local_task_yaml(benchmark, data_dir)))
    return TaskManager(include_path=str(yaml_dir), include_defaults=False)


def render(task, doc) -> tuple:
    choices = task.doc_to_choice(doc) if task.OUTPUT_TYPE == "multiple_choice" else None
    return task.doc_to_text(doc), choices, task.doc_to_target(doc)


def render_params():
    for benchmark in LM_EVAL_TASKS:
        reason = OFFLINE_UNBUILDABLE.get(benchmark)
        yield pytest.param(benchmark, marks=pytest.mark.xfail(reason=reason, strict=False) if reason else ())


@pytest.mark.parametrize("benchmark", render_params())
def test_lm_eval_task_renders_local_rows(task_manager, benchmark):
    from lm_eval.tasks import get_task_dict

    task = get_task_dict([f"local_{benchmark}"], task_manager)[f"local_{benchmark}"]
    docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
    assert len(docs) == ROWS
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
    print(f"\n{benchmark}: {render(task, docs[0])}")


def test_lm_eval_renders_the_gauntlet_prompts_back(task_manager):
    """Where the gauntlet kept lm-eval's own wording, the rendered prompt is the gauntlet's, character for character."""
    from lm_eval.tasks import get_task_dict

    gauntlet = read_rows(SHARED / "arc_easy" / "gauntlet_arc_easy.jsonl")[0]
    arc = get_task_dict(["local_arc_easy"], task_manager)["local_arc_easy"]
    assert render(arc, arc.test_docs()[0]) == (gauntlet["query"] + "\nAnswer:", gauntlet["choices"], gauntlet["gold"])
    gauntlet = read_rows(SHARED / "copa" / "gauntlet_copa.jsonl")[0]
    copa = get_task_dict(["local_copa"], task_manager)["local_copa"]
    text, choices, _ = render(copa, copa.validation_docs()[0])
    assert (text, choices) == (gauntlet["query"].replace(",", ""), [" " + c for c in gauntlet["choices"]])


def test_squadv2_needs_a_subclass_to_swap_its_dataset(data_dir):
    """squadv2 is class-based and its __init__ drops the YAML config, so dataset_path/dataset_kwargs
    are ignored; faco overrides download() in a subclass instead."""
    import datasets
    from lm_eval.tasks.squadv2.task import SQuAD2

    class LocalSQuAD2(SQuAD2):
        def download(self, dataset_kwargs=None, **kwargs):
            self.dataset = datasets.load_dataset("json", data_files={"validation": str(data_dir / "squad" / "validation.jsonl")})

        def has_training_docs(self):
            return False  # no local train split: few-shot examples would come from validation

    task = LocalSQuAD2()
    doc = task.validation_docs()[0]
    assert task.doc_to_text(doc).startswith(f"Title: {doc['title']}\n\nBackground: ")
    assert task.doc_to_target(doc) == " " + doc["answers"]["text"][0]
