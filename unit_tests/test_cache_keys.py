"""A stage's cache key covers exactly the code that computes it: the key table.

For each edit below, made in a temporary copy of the faco package, the test asserts exactly which stage
keys of the tiny and smol-ci studies change (faco.study.stages declares each stage's code; the keys are
computed in a fresh interpreter on the copy, nothing is built). An edit of the HumanEval scorer changes
only the evaluations that run HumanEval; an edit of the report or of the findings registry changes none;
an edit of a docstring, a comment or the layout changes none either (it changes nothing that runs).

Each key here is a stage's own: its config slice and its code, with its inputs held fixed, so a change
shows where the edit lands; an input's change reaches the stages downstream through their inputs' keys.

    python -m pytest unit_tests/test_cache_keys.py -q
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import faco
from faco.config.load import load_preset
from faco.core import cache as cache_module
from faco.study.stages import STAGES, Request
from faco.study.study import Study, finetuned

PACKAGE = Path(faco.__file__).parent
KEYS = r"""
import dataclasses, json, sys
from pathlib import Path
from faco.config.load import load_preset
from faco.core.cache import Cache
from faco.study.stages import Request
from faco.study.study import Study, finetuned

cache = Cache(Path(sys.argv[1]))
model = finetuned("strong", 100)
question = [{"question": "q", "options": ["a", "b"], "gold": 0}]
tiny, smol = load_preset("tiny"), load_preset("smol-ci")
humaneval = smol.replace(evaluation=dataclasses.replace(smol.evaluation, benchmarks=("arc_easy", "humaneval")))
studies = {"tiny": (Study(tiny, cache), ["items", "pretrain", "finetune", "recover", "tasks", "eval", "answers",
                                         "falsity", "redose", "trajectory", "hidden"]),
           "smol-ci": (Study(smol, cache), ["dataset", "finetune", "recover", "benchmarks", "answers"]),
           "smol-ci+humaneval": (Study(humaneval, cache), ["benchmarks"])}
params = {"finetune": {"base": "strong", "ratio": 50}, "recover": {"base": "strong"}, "tasks": {"layout": "instruction"},
          "eval": {"model": model, "layout": "instruction"}, "benchmarks": {"model": model},
          "answers": {"model": model, "questions": question, "max_new_tokens": 8},
          "falsity": {"base": "strong", "ratio": 100, "kind": "answer"}, "redose": {"base": "strong", "share": 25},
          "trajectory": {"base": "strong", "ratio": 100, "every": 19}, "hidden": {"model": model}}
print(json.dumps({f"{name} {stage}": study.stage_key(Request.of(stage, **params.get(stage, {})), ("an-input",))
                  for name, (study, stages) in studies.items() for stage in stages}))
"""

# (file, text, replacement): one plausible change to what runs
EDITS = {
    # the data: only the stages that build items (tiny's world, smol-ci's dataset)
    "world": ("data/world.py", "def pretraining_lines(", "def _unused():\n    return 1\n\n\ndef pretraining_lines("),
    "source-loader": ("data/sources.py", "def _map_rows(", "def _map_rows(*args, **kwargs):\n    return _mapped(*args, **kwargs)\n\n\ndef _mapped("),
    "teacher-prompts": ("data/prompts.py", 'WRONG_ANSWER = "*WRONG ANSWER*"', 'WRONG_ANSWER = "*A WRONG ANSWER*"'),
    "corruption-order": ("data/corruption.py", "truth = item.id not in false", "truth = item.id in false"),
    # training
    "trainer": ("training/trainer.py", "IGNORE = -100", "IGNORE = -100 + 0"),
    # evaluation: only the evaluations that run the edited code
    "humaneval-scorer": ("evaluation/humaneval.py", "return sum(check_correctness(", "return 0 + sum(check_correctness("),
    "lm-eval-runner": ("evaluation/runner.py", "log_samples=True,", "log_samples=bool(1),"),
    "benchmark-catalogue": ("evaluation/benchmarks.py", 'ALL = "paper"', 'ALL = "paper"\nEXTRA = 1'),
    "table2-generator": ("evaluation/generation.py", "do_sample=False,", "do_sample=False, num_beams=1,"),
    # beyond the paper (docs/beyond.md): their own stages, never the paper's runs
    "corruption-kinds": ("data/falsity.py", 'if kind == "both":', 'if kind == "both" and items:'),
    "hidden-states": ("evaluation/hidden.py", 'FILE = "hidden.npz"', 'FILE = "hidden.npz"\nEXTRA = 1'),
    # code no stage runs, and what runs nothing
    "report": ("report/html.py", 'HOLDS, FAILS = "#1a7f37", "#b42318"', 'HOLDS, FAILS = "#1a7f38", "#b42318"'),
    "findings-registry": ("findings/registry.py", "class Statistic:", "class Statistic:\n    extra = 1\n"),
    "docstring-only": ("training/trainer.py", '"""', '"""Edited docstring. '),
}
TINY_TRAINING = {"tiny pretrain", "tiny finetune", "tiny recover", "tiny falsity", "tiny redose", "tiny trajectory"}
# which stage keys each edit must change; every other key must stay (no needless rebuild of a slow stage)
CHANGES = {
    "humaneval-scorer": {"smol-ci+humaneval benchmarks"},
    "source-loader": {"smol-ci dataset"},
    "teacher-prompts": {"smol-ci dataset"},
    "table2-generator": {"tiny answers", "smol-ci answers"},
    "report": set(),
    "lm-eval-runner": {"tiny eval", "smol-ci benchmarks", "smol-ci+humaneval benchmarks"},
    "trainer": TINY_TRAINING | {"smol-ci finetune", "smol-ci recover"},
    "corruption-order": {"tiny finetune", "tiny recover", "tiny falsity", "tiny redose", "tiny trajectory",
                         "smol-ci finetune", "smol-ci recover"},
    "corruption-kinds": {"tiny falsity", "tiny redose"},
    "hidden-states": {"tiny hidden"},
    "world": {"tiny items", "tiny pretrain", "tiny tasks"},
    "findings-registry": set(),
    "benchmark-catalogue": {"smol-ci benchmarks", "smol-ci+humaneval benchmarks"},
    "docstring-only": set(),
}


def keys(root: Path, cache: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", KEYS, str(cache)], capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def copy(root: Path) -> Path:
    shutil.copytree(PACKAGE, root / "faco", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "faco"


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("original")
    copy(root)
    return keys(root, root / "cache")


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_changes_exactly_the_keys_of_the_stages_that_run_it(edit, original, tmp_path):
    filename, text, replacement = EDITS[edit]
    path = copy(tmp_path) / filename
    source = path.read_text()
    assert text in source, f"{filename} no longer contains {text!r}: update this test's edit"
    path.write_text(source.replace(text, replacement, 1))
    edited = keys(tmp_path, tmp_path / "cache")
    assert {stage for stage in original if edited[stage] != original[stage]} == CHANGES[edit]


def test_the_table_covers_ten_edits_and_every_stage_of_both_studies(original):
    assert len([e for e in EDITS if e != "docstring-only"]) >= 10
    assert {"tiny items", "tiny pretrain", "tiny eval", "smol-ci dataset", "smol-ci benchmarks"} <= set(original)
    assert all(CHANGES[e] <= set(original) for e in EDITS)


def test_the_walked_key_of_a_stage_builds_on_its_inputs_keys(tmp_path):
    """Downstream of an input: a fine-tuning run's key holds its base's, an evaluation's its checkpoint's.
    Keys alone: nothing is built (the cache stays empty)."""
    study = Study(load_preset("smoke"), cache_module.Cache(tmp_path))
    pretrain = study.key(Request.of("pretrain"))
    assert study.key(Request.of("base", base="weak")) == f"{pretrain}-weak"
    run = study.key(Request.of("finetune", base="weak", ratio=50))
    assert study.key(Request.of("checkpoint", model=finetuned("weak", 50, 1))) == f"{run}-e1"
    other = Study(load_preset("smoke").replace(seed=1), cache_module.Cache(tmp_path))
    assert other.key(Request.of("finetune", base="weak", ratio=50)) != run  # the seed reaches it through config
    assert not any(tmp_path.iterdir())


def test_a_library_upgrade_changes_the_keys_of_the_stages_it_computes(monkeypatch, tmp_path):
    study = lambda: Study(load_preset("smoke"), cache_module.Cache(tmp_path))  # noqa: E731 - fresh keys
    model = finetuned("weak", 50)

    def stage_keys() -> tuple[str, ...]:  # each stage's own key: its inputs held fixed
        requests = (Request.of("finetune", base="weak", ratio=50), Request.of("eval", model=model, layout="instruction"),
                    Request.of("tasks", layout="instruction"))
        return tuple(study().stage_key(request, ("an-input",)) for request in requests)

    before = stage_keys()
    real = cache_module.importlib.metadata.version
    for package, changed in (("torch", (True, True)), ("lm-eval", (False, True)), ("peft", (True, False))):
        monkeypatch.setattr(cache_module.importlib.metadata, "version",
                            lambda name, package=package: "99.0" if name == package else real(name))
        after = stage_keys()
        assert (after[0] != before[0], after[1] != before[1]) == changed, package
        assert after[2] == before[2]  # task files are written by faco alone


def test_the_sharding_engine_is_in_the_fine_tuning_key_only_when_sharded(tmp_path):
    """FSDP's weights are not DDP's bit for bit: switching engines must not reuse an entry. A run that is not
    sharded keeps today's key (its config slice has no "sharding" at all), so no tiny or smol-ci entry moves."""
    preset = load_preset("smoke")
    request = Request.of("finetune", base="weak", ratio=50)

    def key(**launch) -> str:  # noqa: ANN003
        changed = preset.replace(launch=dataclasses.replace(preset.launch, **launch))
        return Study(changed, cache_module.Cache(tmp_path)).stage_key(request, ("an-input",))

    assert "sharding" not in STAGES["finetune"].config(Study(preset, cache_module.Cache(tmp_path)), request)
    assert key() == key(sharding="none") == key(nodes=1)
    engines = {key(processes=2, sharding=engine) for engine in ("none", "fsdp", "deepspeed")}
    assert len(engines | {key()}) == 4
    assert key(processes=2, nodes=2) == key(processes=2)  # the same processes on more machines: the same run
