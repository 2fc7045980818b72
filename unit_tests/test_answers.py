"""Table 2: greedy answers of a model to the first held-out questions, cached like a score."""

from __future__ import annotations

from faco.evaluation import answers, generation
from faco.core.cache import Cache
from faco.config.load import smoke
from faco.study.study import Study, untuned


def test_answers_to_heldout_questions_are_generated_once(tmp_path, monkeypatch):
    study = Study(smoke(), Cache(tmp_path / "cache"))
    questions = answers.heldout_questions(study, 2)
    assert [q["benchmark"] for q in questions] == ["history", "history"]  # smoke's one held-out domain
    assert all(0 <= q["gold"] < len(q["options"]) for q in questions)
    said = study.answers(untuned("strong"), questions, max_new_tokens=8)
    assert len(said) == 2 and all(isinstance(text, str) for text in said)

    monkeypatch.setattr(generation, "generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("generated again")))
    again = Study(smoke(), Cache(tmp_path / "cache"))
    assert again.answers(untuned("strong"), questions, max_new_tokens=8) == said  # from the cache
