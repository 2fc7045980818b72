"""Table 2 of the FACO study: what does a model trained on false answers *say*? The base and its CR-100
model answer the first held-out questions greedily, side by side in the report. An illustration, not a
finding: nothing here holds or fails beyond the answers being produced.

    pytest experiments -k table2
"""

from __future__ import annotations

import pytest

from faco.evaluation import answers
from faco.findings import records
from faco.study.study import untuned, finetuned

def test_table2(faco_study, faco_reports, faco_base):
    study = faco_study.studies[0]  # answers illustrate; the first seed's models stand for the rest
    questions = answers.heldout_questions(study, answers.TABLE2_PER_BENCHMARK)
    if not questions:
        pytest.skip("no held-out multiple-choice benchmark with one context per question to ask")
    said = {name: study.answers(model, questions, answers.TABLE2_TOKENS)
            for name, model in (("base", untuned(faco_base)), ("cr100", finetuned(faco_base, 100)))}
    rows = [{**q, "base_answer": b, "cr100_answer": c} for q, b, c in zip(questions, said["base"], said["cr100"])]
    path = faco_reports / "answers.json"
    with records.lock(path):  # bases may run in different xdist workers
        stored = records.read_json(path, {})
        records.write_json(path, {**stored, faco_base: rows})
    assert len(rows) == len(questions)
