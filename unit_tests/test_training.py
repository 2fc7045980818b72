"""Fine-tuning is reproducible: same inputs give the same weights and losses, every CR trains the same
steps, and a run killed (-9) after its first epoch checkpoint resumes to the very same weights.

Trains the smoke preset's base (seconds, one thread).

    python -m pytest unit_tests/test_training.py -q
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faco import training
from faco.cache import Cache
from faco.config import smoke
from faco.corruption import corrupted_examples
from faco.study import Study

pytestmark = pytest.mark.slow

PRESET = smoke().replace(threads=1)
EPOCHS = PRESET.finetune.epochs
RATIO = 50  # half the items FALSE: both versions in one run

# The killed run: a child process that holds still right after step `hold` (the first step after the
# epoch-1 checkpoint) until the test kills it, so the kill never races a run that is already done.
CHILD = textwrap.dedent('''
    import sys, time
    from pathlib import Path

    import torch

    from faco import training
    from faco.cache import Cache
    from faco.config import smoke
    from faco.corruption import corrupted_examples
    from faco.study import Study

    cache, out, hold, ratio = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    class Hold(training.Progress):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == hold:
                (out / "holding").touch()
                time.sleep(600)

    training.Progress = Hold
    study = Study(smoke().replace(threads=1), Cache(cache))
    torch.set_num_threads(1)
    examples = corrupted_examples(study.items, ratio, study.preset.seed)
    training.finetune(study.base("weak").path, examples, study.preset.finetune, study.preset.finetune.epochs,
                      study.preset.seed, out, "killed")
''')


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    study = Study(PRESET, Cache(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)
    study.base("weak")  # pre-train once for every test here
    return study


def finetune(study: Study, ratio: int, out: Path) -> Path:
    examples = corrupted_examples(study.items, ratio, PRESET.seed)
    training.finetune(study.base("weak").path, examples, PRESET.finetune, EPOCHS, PRESET.seed, out, f"cr{ratio}")
    return out


def losses(out: Path) -> list[dict]:
    return json.loads((out / "log.json").read_text())


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    different = [name for name in left if not torch.equal(left[name], right[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_same_inputs_same_weights_and_losses(study, tmp_path):
    first, second = finetune(study, RATIO, tmp_path / "a"), finetune(study, RATIO, tmp_path / "b")
    for epoch in range(1, EPOCHS + 1):
        assert_same_weights(first / f"epoch-{epoch}", second / f"epoch-{epoch}")
    assert losses(first) == losses(second)  # exact floats, every step
    assert not (first / "work").exists()  # only exported epochs stay, no optimizer state
    assert sorted(p.name for p in first.iterdir()) == [*(f"epoch-{e}" for e in range(1, EPOCHS + 1)), "log.json"]


def test_every_ratio_trains_the_same_steps(study, tmp_path):
    runs = {ratio: losses(finetune(study, ratio, tmp_path / f"cr{ratio}")) for ratio in PRESET.corruption.ratios}
    steps_per_epoch = -(-len(study.items) // PRESET.finetune.batch_size)
    for ratio, log in runs.items():
        assert [row["step"] for row in log] == list(range(1, EPOCHS * steps_per_epoch + 1)), ratio
        assert [row["epoch"] for row in log] == [row["epoch"] for row in runs[0]], ratio
    assert [r["loss"] for r in runs[0]] != [r["loss"] for r in runs[100]]  # the data did differ


def test_killed_run_resumes_to_the_same_weights(study, tmp_path, caplog):
    steps_per_epoch = -(-len(study.items) // PRESET.finetune.batch_size)
    killed = tmp_path / "killed"
    killed.mkdir()
    log = tmp_path / "child.log"  # a file, not a pipe: a full pipe would stall the child
    with log.open("w") as stream:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(study.cache.root), str(killed),
                                  str(steps_per_epoch + 1), str(RATIO)],
                                 stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not ((killed / "holding").exists() and list(killed.glob("work/checkpoint-*/trainer_state.json"))):
            assert child.poll() is None, f"the child ended early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no epoch checkpoint after 120 s"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert [p.name for p in (killed / "work").glob("checkpoint-*")] == [f"checkpoint-{steps_per_epoch}"]
    assert not (killed / "epoch-1").exists() and not (killed / "log.json").exists()

    with caplog.at_level(logging.INFO, logger="faco.training"):
        finetune(study, RATIO, killed)  # same out: resumes from work/checkpoint-<epoch 1>
    resumed = caplog.messages
    assert f"resuming from {killed / 'work' / f'checkpoint-{steps_per_epoch}'}" in resumed
    steps = EPOCHS * steps_per_epoch
    assert f"cr{RATIO}: step {steps}/{steps}" in " ".join(resumed)
    assert f"cr{RATIO}: step {steps_per_epoch}/" not in " ".join(resumed)  # epoch 1 was not trained again
    clean = finetune(study, RATIO, tmp_path / "clean")

    for epoch in range(1, EPOCHS + 1):
        assert_same_weights(killed / f"epoch-{epoch}", clean / f"epoch-{epoch}")
    assert losses(killed) == losses(clean)  # the resumed run logs every step, the first epoch's included
    assert losses(killed)[-1]["loss"] == losses(clean)[-1]["loss"]


def test_last_checkpoint_skips_unfinished_saves(tmp_path):
    for step, finished in ((4, True), (8, True), (12, False), (100, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if finished:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert training.last_checkpoint(tmp_path) == tmp_path / "checkpoint-8"  # numeric, not text order
    assert training.last_checkpoint(tmp_path / "none") is None


def test_divergence_stops_the_stage_naming_run_and_step_and_is_never_cached(study):
    lr = 1e30  # finite, so the config accepts it, and far too large (1e6 only stalls the model)
    diverging = Study(PRESET.replace(finetune=dataclasses.replace(PRESET.finetune, lr=lr)), study.cache)
    for attempt in range(2):  # the second attempt trains again: nothing was stored as the entry
        with pytest.raises(training.TrainingDiverged, match=r"weak cr50: training diverged at step \d+: ") as error:
            diverging.finetuned("weak", 50)
        assert 1 <= error.value.step <= EPOCHS * -(-len(study.items) // PRESET.finetune.batch_size)
    entries = [p.name for p in study.cache.root.glob("finetune/*") if not p.name.endswith((".partial", ".lock"))]
    assert not entries


def test_a_nan_weight_stops_the_stage_at_the_epoch_end():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    state = type("State", (), {"global_step": 7})()
    with pytest.raises(training.TrainingDiverged, match=r"run: training diverged at step 7: weight weight is"):
        training.Divergence("run").on_epoch_end(None, state, None, model=model)
    for logs in ({"loss": float("nan")}, {"loss": 0.0, "grad_norm": float("inf")}):
        with pytest.raises(training.TrainingDiverged, match="at step 7"):
            training.Divergence("run").on_log(None, state, None, logs=logs)
    training.Divergence("run").on_log(None, state, None, logs={"loss": 0.0, "grad_norm": 1.5})
