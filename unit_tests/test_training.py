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

from faco.training import trainer
from faco.core.cache import Cache
from faco.config.load import smoke
from faco.data.corruption import corrupted_examples
from faco.study.study import Study, untuned, finetuned

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

    from faco.training import trainer
    from faco.core.cache import Cache
    from faco.config.load import smoke
    from faco.data.corruption import corrupted_examples
    from faco.study.study import Study, untuned

    cache, out, hold, ratio = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    class Hold(trainer.Progress):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == hold:
                (out / "holding").touch()
                time.sleep(600)

    trainer.Progress = Hold
    study = Study(smoke().replace(threads=1), Cache(cache))
    torch.set_num_threads(1)
    examples = corrupted_examples(study.items, ratio, study.preset.seed)
    trainer.finetune(study.checkpoint(untuned("weak")).path, examples, study.preset.finetune, study.preset.finetune.epochs,
                      study.preset.seed, out, "killed")
''')


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    study = Study(PRESET, Cache(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)
    study.checkpoint(untuned("weak"))  # pre-train once for every test here
    return study


def finetune(study: Study, ratio: int, out: Path) -> Path:
    examples = corrupted_examples(study.items, ratio, PRESET.seed)
    trainer.finetune(study.checkpoint(untuned("weak")).path, examples, PRESET.finetune, EPOCHS, PRESET.seed, out, f"cr{ratio}")
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


def test_a_trajectory_run_saves_every_n_steps_and_trains_the_same_weights(study, tmp_path):
    """The trajectory's checkpoints (docs/beyond.md) are the run's own: saving within an epoch changes no
    weight and no loss, each step's export is the run after that many steps, the last the last epoch's."""
    plain = finetune(study, RATIO, tmp_path / "plain")
    out = tmp_path / "stepped"
    examples = corrupted_examples(study.items, RATIO, PRESET.seed)
    steps = EPOCHS * -(-len(study.items) // PRESET.finetune.batch_size)
    every = max(1, steps // 4 - 1)  # not a divisor of an epoch: saves inside epochs, then the last step
    trainer.finetune(study.checkpoint(untuned("weak")).path, examples, PRESET.finetune, EPOCHS, PRESET.seed, out,
                     "stepped", save_every=every)
    wanted = sorted({*range(every, steps + 1, every), steps})
    assert sorted(int(p.name[5:]) for p in out.glob("step-*")) == wanted
    assert sorted(p.name for p in out.glob("epoch-*")) == [f"epoch-{e}" for e in range(1, EPOCHS + 1)]
    for epoch in range(1, EPOCHS + 1):
        assert_same_weights(out / f"epoch-{epoch}", plain / f"epoch-{epoch}")
    assert_same_weights(out / f"step-{steps}", plain / f"epoch-{EPOCHS}")
    assert losses(out) == losses(plain)
    first, second = (load_file(out / f"step-{s}" / "model.safetensors") for s in wanted[:2])
    assert any(not torch.equal(first[name], second[name]) for name in first)  # two points, two models


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
    assert (killed / "epoch-1").is_dir() and not (killed / "log.json").exists()  # exported when saved

    with caplog.at_level(logging.INFO, logger="faco.training.trainer"):
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


def test_resumable_checkpoints_rotate_to_one(study, tmp_path, monkeypatch):
    """At every epoch's export the run holds one resumable checkpoint (optimizer state and all), the newest:
    a 13B run's 150 GB each would otherwise pile up once per epoch."""
    held = []
    export = trainer.export_checkpoint

    def observed(checkpoint, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        held.append(sorted(p.name for p in checkpoint.parent.glob("checkpoint-*")))
        export(checkpoint, *args, **kwargs)

    monkeypatch.setattr(trainer, "export_checkpoint", observed)
    finetune(study, RATIO, tmp_path / "run")
    steps = -(-len(study.items) // PRESET.finetune.batch_size)
    assert held == [[f"checkpoint-{steps * epoch}"] for epoch in range(1, EPOCHS + 1)]


def test_last_checkpoint_skips_unfinished_saves(tmp_path):
    for step, finished in ((4, True), (8, True), (12, False), (100, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if finished:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert trainer.last_checkpoint(tmp_path) == tmp_path / "checkpoint-8"  # numeric, not text order
    assert trainer.last_checkpoint(tmp_path / "none") is None


def test_divergence_stops_the_stage_naming_run_and_step_and_is_never_cached(study):
    lr = 1e30  # finite, so the config accepts it, and far too large (1e6 only stalls the model)
    diverging = Study(PRESET.replace(finetune=dataclasses.replace(PRESET.finetune, lr=lr)), study.cache)
    for attempt in range(2):  # the second attempt trains again: nothing was stored as the entry
        with pytest.raises(trainer.TrainingDiverged, match=r"weak cr50: training diverged at step \d+: ") as error:
            diverging.checkpoint(finetuned("weak", 50))
        assert 1 <= error.value.step <= EPOCHS * -(-len(study.items) // PRESET.finetune.batch_size)
    entries = [p.name for p in study.cache.root.glob("finetune/*") if not p.name.endswith((".partial", ".lock"))]
    assert not entries


def test_a_nan_weight_stops_the_stage_at_the_epoch_end():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    state = type("State", (), {"global_step": 7})()
    with pytest.raises(trainer.TrainingDiverged, match=r"run: training diverged at step 7: weight weight is"):
        trainer.Divergence("run").on_epoch_end(None, state, None, model=model)
    for logs in ({"loss": float("nan")}, {"loss": 0.0, "grad_norm": float("inf")}):
        with pytest.raises(trainer.TrainingDiverged, match="at step 7"):
            trainer.Divergence("run").on_log(None, state, None, logs=logs)
    trainer.Divergence("run").on_log(None, state, None, logs={"loss": 0.0, "grad_norm": 1.5})


# --- real-model formats and training at scale (issue 13) -----------------------------------------------

CHATML = ("{% for m in messages %}<|im_start|> {{ m['role'] }} <nl> {{ m['content'] }} <|im_end|> <nl> {% endfor %}"
          "{% if add_generation_prompt %}<|im_start|> assistant <nl> {% endif %}")


def chat_tokenizer(study: Study):
    """The smoke base's word-level tokenizer with a ChatML-like template (as SmolLM2's) and no pad token."""
    from faco.data.world_items import tokenizer_texts
    from faco.models import llama

    texts = tokenizer_texts(study.world, study.preset.seed) + ["<|im_start|> <|im_end|> user assistant"]
    tokenizer = llama.build_tokenizer(texts)
    tokenizer.chat_template = CHATML
    return tokenizer


def test_chat_template_examples_mask_the_prompt(study):
    tokenizer = chat_tokenizer(study)
    example = corrupted_examples(study.items, 0, PRESET.seed)[0]
    row = trainer.Examples([example], tokenizer, 512, chat=True)[0]
    supervised = [t for t, label in zip(row["input_ids"], row["labels"]) if label != trainer.IGNORE]
    masked = len(row["labels"]) - len(supervised)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": example.prompt}], add_generation_prompt=True,
                                           tokenize=True, return_dict=False)
    assert masked == len(prompt) and row["input_ids"][:masked] == prompt
    assert tokenizer.decode(supervised).split() == (example.response.strip() + " <|im_end|> <nl>").replace(
        "\n", " <nl> ").split()  # the assistant turn, up to and with its end marker, carries the loss


def test_plain_format_is_todays_encoding(study):
    """The tiny tokenizer has no chat template: `format = "chat"` falls back to the plain encoding, the
    same token ids and labels as before the formats existed."""
    from faco.models import llama

    _, tokenizer = llama.load(study.checkpoint(untuned("weak")).path)
    assert tokenizer.chat_template is None
    examples = corrupted_examples(study.items, RATIO, PRESET.seed)[:4]
    for example, row in zip(examples, trainer.Examples(examples, tokenizer, 128)):
        prompt = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
        response = tokenizer(example.response, add_special_tokens=False)["input_ids"]
        assert row["input_ids"] == prompt + response + [tokenizer.eos_token_id]
        assert row["labels"] == [trainer.IGNORE] * len(prompt) + response + [tokenizer.eos_token_id]


def test_missing_pad_token_pads_with_eos_without_resizing(study):
    tokenizer = chat_tokenizer(study)
    tokenizer.pad_token = None
    size = len(tokenizer)
    trainer.ensure_pad_token(tokenizer)
    assert tokenizer.pad_token == tokenizer.eos_token and len(tokenizer) == size


def test_max_length_truncates(study):
    from faco.models import llama

    _, tokenizer = llama.load(study.checkpoint(untuned("weak")).path)
    rows = trainer.Examples(corrupted_examples(study.items, 0, PRESET.seed), tokenizer, 12)
    assert max(len(r["input_ids"]) for r in rows) == 12 and all(len(r["labels"]) <= 12 for r in rows)


def test_sharded_export_round_trips(study, tmp_path):
    from faco.models import llama

    model, tokenizer = llama.load(study.checkpoint(untuned("weak")).path)
    model.save_pretrained(tmp_path / "checkpoint", max_shard_size="40KB")  # as a big model's Trainer save
    shards = sorted(p.name for p in (tmp_path / "checkpoint").glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "checkpoint" / "model.safetensors.index.json").exists()
    trainer.export_checkpoint(tmp_path / "checkpoint", tokenizer, tmp_path / "exported")
    assert sorted(p.name for p in (tmp_path / "exported").glob("*.safetensors")) == shards
    loaded, _ = llama.load(tmp_path / "exported")
    original = model.state_dict()
    assert all(torch.equal(tensor, original[name]) for name, tensor in loaded.state_dict().items())


def finetune_with(study: Study, out: Path, **changes) -> list[float]:  # noqa: ANN003
    import dataclasses

    config = dataclasses.replace(PRESET.finetune, **changes)
    examples = corrupted_examples(study.items, RATIO, PRESET.seed)
    trainer.finetune(study.checkpoint(untuned("weak")).path, examples, config, 1, PRESET.seed, out, "variant")
    return [row["loss"] for row in losses(out)]


def test_accumulation_and_checkpointing_keep_the_loss_curve(study, tmp_path):
    """Global batch 8 as 2 x 4 accumulation steps, and with activations recomputed: the same steps and,
    to float rounding, the same per-step losses (Trainer weights accumulated steps by their tokens)."""
    plain = finetune_with(study, tmp_path / "plain")
    accumulated = finetune_with(study, tmp_path / "accumulated", per_device_batch_size=4)
    recomputed = finetune_with(study, tmp_path / "recomputed", gradient_checkpointing=True)
    assert len(accumulated) == len(recomputed) == len(plain)
    assert accumulated == pytest.approx(plain, rel=1e-4) and recomputed == pytest.approx(plain, rel=1e-5)


def test_half_precision_on_cpu_is_refused(study, tmp_path):
    from faco.config.schema import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match=r"finetune.precision 'bf16' needs a CUDA device"):
        finetune_with(study, tmp_path / "bf16", precision="bf16")


def test_lora_trains_and_exports_a_merged_plain_directory(study, tmp_path):
    from transformers import AutoModelForCausalLM

    from faco.config.schema import LoraConfig

    lora = LoraConfig(r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    curve = finetune_with(study, tmp_path / "lora", lora=lora, lr=1e-2)
    assert curve[-1] < curve[0]  # the adapters learned
    torch.rand(7)  # whatever ran before in the process: the adapters' initial weights come from the seed
    assert finetune_with(study, tmp_path / "again", lora=lora, lr=1e-2) == curve
    exported = tmp_path / "lora" / "epoch-1"
    assert not list(exported.glob("adapter_*")) and list(exported.glob("*.safetensors"))
    merged = AutoModelForCausalLM.from_pretrained(exported).state_dict()
    base = AutoModelForCausalLM.from_pretrained(study.checkpoint(untuned("weak")).path).state_dict()
    assert merged.keys() == base.keys()  # a plain LLaMA: no adapter tensors left
    changed = {name for name in base if not torch.equal(merged[name], base[name])}
    assert changed and all("q_proj" in name or "v_proj" in name for name in changed)
