"""Cache keys are complete: editing the code that decides an artefact, in any module that code runs
through (the study's build closures included), or upgrading a library that computes it, gives the
stage a new key, so a warm cache never serves a stale artefact. Editing only a docstring, a comment
or the layout changes no key (it changes nothing that runs).

Each edit is made in a temporary copy of the faco package and the keys are computed in a fresh
interpreter on that copy; nothing is trained or evaluated.

    python -m pytest unit_tests/test_cache_keys.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import faco
from faco.core import cache as cache_module

PACKAGE = Path(faco.__file__).parent
KEYS = r"""
import json
from pathlib import Path
from faco.core.cache import Cache
from faco.config.load import load_preset
from faco.study.study import Study

study = Study(load_preset("smoke"), Cache(Path("unused")))
tasks = study.tasks_key("instruction")
print(json.dumps({"items": study.items_key, "pretrain": study.pretrain_key,
                  "finetune": study.tuned_key("finetune", "a-base", 50, 2),
                  "tasks": tasks, "eval": study.eval_key("a-checkpoint", "some-tasks")}))
"""

# (file, text, replacement): one plausible change to what runs, per stage module
EDITS = {
    "study-tokenizer-texts": ("study/study.py", 'return texts + [" ".join(LETTERS)]',
                              'return texts + [" ".join(LETTERS[:2])]'),
    "evaluation-held-out-questions": ("evaluation/runner.py",
                                      "world.domain_facts(spec.name)[: config.heldout_per_domain]",
                                      "world.domain_facts(spec.name)[1: config.heldout_per_domain + 1]"),
    "corruption-examples": ("data/corruption.py", "truth = item.id not in false", "truth = item.id in false"),
    "items-false-option": ("data/items.py", 'f"false-option:{seed}:{fact.id}")', 'f"false:{seed}:{fact.id}")'),
    "training-losses": ("training/trainer.py", 'for row in history if "loss" in row]',
                        'for row in history[1:] if "loss" in row]'),
    "launch-worker": ("training/worker.py", "def run(argv: list[str]) -> int:",
                      "def run(argv: list[str]) -> int:\n    argv = list(argv)"),
    "docstring-only": ("training/trainer.py", '"""', '"""Edited docstring. '),
}
# which stage keys each edit must change (the rest must stay: no needless rebuild of a slow stage)
CHANGES = {
    "study-tokenizer-texts": {"items", "pretrain", "finetune", "tasks", "eval"},  # the Study class is in every key
    "evaluation-held-out-questions": {"pretrain", "tasks", "eval"},  # pretrain: its letters are tokenizer texts
    "corruption-examples": {"pretrain", "finetune"},  # training imports corruption (Example)
    "items-false-option": {"items", "pretrain", "finetune", "tasks", "eval"},  # everything reads items
    "training-losses": {"pretrain", "finetune"},
    "launch-worker": {"finetune"},  # runs under `accelerate launch`; no import reaches it, the stage names it
    "docstring-only": set(),
}


def keys(root: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", KEYS], capture_output=True, text=True, env=env, cwd=root, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("original")
    shutil.copytree(PACKAGE, root / "faco", ignore=shutil.ignore_patterns("__pycache__"))
    return keys(root)


@pytest.mark.parametrize("edit", EDITS)
def test_editing_a_stage_function_changes_its_keys(edit, original, tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "faco", ignore=shutil.ignore_patterns("__pycache__"))
    filename, text, replacement = EDITS[edit]
    path = tmp_path / "faco" / filename
    source = path.read_text()
    assert text in source, f"{filename} no longer contains {text!r}: update this test's edit"
    path.write_text(source.replace(text, replacement, 1))
    edited = keys(tmp_path)
    assert {stage for stage in original if edited[stage] != original[stage]} == CHANGES[edit]


def test_a_library_upgrade_changes_the_keys_of_the_stages_it_computes(monkeypatch):
    from faco.config.load import load_preset
    from faco.study.study import Study

    study = Study(load_preset("smoke"), cache_module.Cache(Path("unused")))
    before = (study.tuned_key("finetune", "a-base", 50, 2), study.eval_key("a", "b"), study.tasks_key("instruction"))
    real = cache_module.importlib.metadata.version
    for package, changed in (("torch", (True, True)), ("lm-eval", (False, True)), ("peft", (True, False))):
        monkeypatch.setattr(cache_module.importlib.metadata, "version",
                            lambda name, package=package: "99.0" if name == package else real(name))
        after = (study.tuned_key("finetune", "a-base", 50, 2), study.eval_key("a", "b"), study.tasks_key("instruction"))
        assert (after[0] != before[0], after[1] != before[1]) == changed, package
        assert after[2] == before[2]  # task files are written by faco alone
