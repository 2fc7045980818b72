"""lm-eval task files as faco writes them, and one real lm-eval run on a tiny random LLaMA.

    python -m pytest unit_tests/test_evaluation.py -q
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from faco.config.schema import ModelConfig
from faco.config.load import smoke
from faco.evaluation.world_tasks import LAYOUTS, WorldTask, Question, rows, write_tasks
from faco.data.items import LETTERS
from faco.evaluation.runner import accuracy, letter_spread
from faco.data.world import build_world

WORLD = build_world(smoke().world, 0)
QUESTIONS = tuple(Question(f.id, f.domain, f.question, f.options, f.correct) for f in WORLD.facts[:6])


def benchmark(fmt: str, layout: str = "instruction", questions: tuple[Question, ...] = QUESTIONS) -> WorldTask:
    return WorldTask("heldout-geography", layout, fmt, questions)


def test_task_name():
    assert benchmark("letter", "familiar").task == "faco_heldout_geography_familiar_letter"


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_cloze_rows_keep_options_and_gold(layout):
    out = rows(benchmark("cloze", layout))
    assert len(out) == len(QUESTIONS)
    for row, q in zip(out, QUESTIONS):
        assert row["choices"] == list(q.options) and tuple(row["options"]) == q.options
        assert row["gold"] == q.gold and row["choices"][row["gold"]] == WORLD.facts[QUESTIONS.index(q)].answer
        assert row["context"] == LAYOUTS[layout](q.question, q.options)
        assert (row["id"], row["domain"], row["rotation"]) == (q.id, q.domain, 0)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_letter_rows_rotate_and_balance_gold(layout):
    out = rows(benchmark("letter", layout))
    n_options = len(QUESTIONS[0].options)
    assert len(out) == len(QUESTIONS) * n_options
    answers = {q.id: q.options[q.gold] for q in QUESTIONS}
    for q in QUESTIONS:
        mine = [r for r in out if r["id"] == q.id]
        assert sorted(r["gold"] for r in mine) == list(range(n_options))  # each letter gold exactly once
        assert sorted(r["rotation"] for r in mine) == list(range(n_options))
        for row in mine:
            assert row["choices"] == list(LETTERS[:n_options])
            assert sorted(row["options"]) == sorted(q.options)
            assert row["options"][row["gold"]] == answers[q.id]  # the gold letter still names the answer
            assert f"{LETTERS[row['gold']]} : {answers[q.id]}" in row["context"]
    assert Counter(r["gold"] for r in out) == {i: len(QUESTIONS) for i in range(n_options)}


def test_write_tasks(tmp_path):
    scratch = tmp_path / "scratch"
    names = write_tasks([benchmark("cloze"), benchmark("letter")], scratch)
    assert names == ["faco_heldout_geography_instruction_cloze", "faco_heldout_geography_instruction_letter"]
    for name, fmt in zip(names, ("cloze", "letter")):
        spec = yaml.safe_load((scratch / f"{name}.yaml").read_text())
        assert spec["task"] == name and spec["output_type"] == "multiple_choice"
        assert (spec["doc_to_text"], spec["doc_to_choice"], spec["doc_to_target"]) == ("context", "choices", "gold")
        assert spec["dataset_path"] == "json" and spec["test_split"] == "test"
        assert spec["metric_list"][0]["metric"] == "acc"
        data = Path(spec["dataset_kwargs"]["data_files"]["test"])
        assert data == Path(f"{name}.jsonl")  # by name: no path of this machine in a cache entry
        written = [json.loads(line) for line in (scratch / data.name).read_text().splitlines()]
        assert written == json.loads(json.dumps(rows(benchmark(fmt))))


def test_accuracy_and_letter_spread():
    samples = [{"domain": "a", "correct": True, "pred": 0}, {"domain": "a", "correct": False, "pred": 1},
               {"domain": "b", "correct": True, "pred": 0}, {"domain": "b", "correct": True, "pred": 0}]
    assert accuracy(samples) == 0.75 and accuracy(samples, ["a"]) == 0.5
    assert letter_spread(samples, 4) == [0.75, 0.25, 0.0, 0.0]
    with pytest.raises(ValueError, match="no samples"):
        accuracy(samples, ["c"])


# --- lm-eval end to end -----------------------------------------------------------------------------

@pytest.mark.slow
def test_lm_eval_end_to_end(tmp_path):
    import torch

    from faco.evaluation import runner

    from faco.models import llama

    torch.set_num_threads(1)
    questions = QUESTIONS[:4]
    benchmarks = [benchmark("cloze", questions=questions), benchmark("letter", questions=questions)]
    task_dir = tmp_path / "tasks"
    tasks = write_tasks(benchmarks, task_dir)
    texts = [f"{row['context']} {choice}" for b in benchmarks for row in rows(b) for choice in row["choices"]]
    tokenizer = llama.build_tokenizer(texts)
    config = ModelConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64, max_positions=128)
    llama.save(llama.build_model(config, tokenizer, seed=0), tokenizer, tmp_path / "model")

    results = runner.evaluate(tmp_path / "model", tasks, task_dir, batch_size=8, seed=0)

    assert sorted(results) == sorted(tasks)
    for task, expected in zip(tasks, (len(questions), len(questions) * 4)):
        result = results[task]
        samples = result["samples"]
        assert result["n"] == len(samples) == expected
        for sample in samples:
            assert {"id", "domain", "gold", "pred", "correct"} <= set(sample)
            assert sample["id"] in {q.id for q in questions} and sample["domain"] == "geography"
            assert sample["correct"] == (sample["pred"] == sample["gold"])
            assert len(sample["loglikelihoods"]) == 4 and all(ll < 0 for ll in sample["loglikelihoods"])
        assert result["acc"] == pytest.approx(sum(s["correct"] for s in samples) / len(samples))
        assert sum(letter_spread(samples, 4)) == pytest.approx(1.0)
    letter = results[tasks[1]]["samples"]
    assert Counter(s["gold"] for s in letter) == {i: len(questions) for i in range(4)}  # balanced gold
    (tmp_path / "moved-cache").mkdir()
    moved = task_dir.rename(tmp_path / "moved-cache" / "tasks")
    assert runner.evaluate(tmp_path / "model", tasks, moved, batch_size=8, seed=0) == results  # files moved
