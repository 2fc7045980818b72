"""Pre-training the tiny bases and instruction-tuning any base, both through `transformers.Trainer`.

Trainer gives what the study needs without a hand-written loop: seeded data order, a checkpoint after
every epoch (the longer-training finding reads them), per-step loss in `log_history`, and resumption
from the last checkpoint with RNG states restored, so a killed run ends with the same weights.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerFast, Trainer, TrainerCallback, TrainingArguments

from faco import models
from faco.config import FinetuneConfig, PretrainConfig
from faco.corruption import Example
from faco.world import World, pretraining_lines

log = logging.getLogger("faco.training")

IGNORE = -100  # label of prompt and padding tokens: the loss is on the response only


# --- data ------------------------------------------------------------------------------------------

class Blocks(Dataset):
    """Packed fixed-length blocks of pre-training text (labels = inputs: plain LM loss)."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        block = self.blocks[index]
        return {"input_ids": block, "labels": block}


def pretraining_blocks(world: World, config: PretrainConfig, tokenizer: PreTrainedTokenizerFast,
                       seed: int) -> Blocks:
    """Enough packed passes over the world's text for `config.steps` batches, each pass reshuffled."""
    needed = config.steps * config.batch_size * config.seq_len
    ids: list[int] = []
    for n_pass in range(10**6):
        if len(ids) >= needed:
            break
        lines = pretraining_lines(world, config.qa_share, random.Random(f"pretrain:{seed}:{n_pass}"))
        for encoded in tokenizer(lines, add_special_tokens=False)["input_ids"]:
            ids += encoded + [tokenizer.eos_token_id]
    flat = torch.tensor(ids[:needed], dtype=torch.long)
    return Blocks(flat.view(-1, config.seq_len))


class Examples(Dataset):
    """Tokenized instruction examples; prompt tokens are masked out of the loss."""

    def __init__(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerFast, max_length: int):
        self.rows = []
        for example in examples:
            prompt = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
            response = tokenizer(example.response, add_special_tokens=False)["input_ids"]
            ids = (prompt + response + [tokenizer.eos_token_id])[:max_length]
            labels = ([IGNORE] * len(prompt) + response + [tokenizer.eos_token_id])[:max_length]
            self.rows.append({"input_ids": ids, "labels": labels})
        self.pad_id = tokenizer.pad_token_id

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]

    def collate(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in batch)
        pad = lambda seq, value: seq + [value] * (width - len(seq))  # noqa: E731
        return {
            "input_ids": torch.tensor([pad(r["input_ids"], self.pad_id) for r in batch]),
            "labels": torch.tensor([pad(r["labels"], IGNORE) for r in batch]),
            "attention_mask": torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in batch]),
        }


# --- progress and checkpoints ----------------------------------------------------------------------

class Progress(TrainerCallback):
    """Streams "pretrain: step 800/2400 loss 1.93" lines, so a cold run is never silent for minutes."""

    def __init__(self, label: str, every: int) -> None:
        self.label, self.every = label, max(1, every)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if logs and "loss" in logs and (state.global_step % self.every == 0 or state.global_step == state.max_steps):
            log.info("%s: step %d/%d loss %.3f", self.label, state.global_step, state.max_steps, logs["loss"])


class TrainingDiverged(RuntimeError):
    """A loss, gradient norm or weight went NaN/inf: an error, never a finding (the scores of NaN weights
    would otherwise be recorded like any other model's)."""

    def __init__(self, label: str, step: int, what: str) -> None:
        super().__init__(f"{label}: training diverged at step {step}: {what}; lower the learning rate "
                         f"(--faco-set finetune.lr=...) or check the data")
        self.label, self.step = label, step


class Divergence(TrainerCallback):
    """Stop a stage whose loss or gradient norm is not finite, checked at every logged step, and whose
    weights are not finite at an epoch's end; both before the step's checkpoint is saved.

    The weights are checked too because Trainer may log a finite loss for a NaN model (its NaN filter
    logs the previous average, 0.0 on the first step after a log) and a NaN gradient norm is absent
    when clipping is off.
    """

    def __init__(self, label: str) -> None:
        self.label = label

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        for name in ("loss", "grad_norm"):
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingDiverged(self.label, state.global_step, f"{name} is {float(value)}")

    def on_epoch_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        bad = next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise TrainingDiverged(self.label, state.global_step, f"weight {bad} is not finite")


class SaveAt(TrainerCallback):
    """Save a full (resumable) checkpoint at the given steps, besides the regular ones."""

    def __init__(self, steps: Sequence[int]) -> None:
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.global_step in self.steps:
            control.should_save = True
        return control


def last_checkpoint(work: Path) -> Path | None:
    """The newest complete Trainer checkpoint in `work` (a killed save leaves no trainer_state.json)."""
    done = [p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _arguments(work: Path, seed: int, **overrides) -> TrainingArguments:  # noqa: ANN003
    return TrainingArguments(
        output_dir=str(work),
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (Divergence stops the run), never hidden
        disable_tqdm=True,
        dataloader_num_workers=0,
        save_total_limit=None,
        **overrides,
    )


def _train(trainer: Trainer, work: Path) -> list[dict]:
    """Run (or resume) `trainer`; returns the per-step log history."""
    resume = last_checkpoint(work)
    if resume is not None:
        log.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer.state.log_history


# --- stages ----------------------------------------------------------------------------------------

def pretrain(world: World, config: PretrainConfig, tokenizer: PreTrainedTokenizerFast,
             checkpoints: dict[str, int], seed: int, out: Path) -> None:
    """One pre-training run; the model at each named step is saved to out/<name>/ (e.g. weak, strong).

    Resumable: Trainer state lives in out/work until the run completes.
    """
    work = out / "work"
    model = models.build_model(config.model, tokenizer, seed)
    log.info("pretrain: %d parameters, %d steps of %d x %d tokens", model.num_parameters(), config.steps,
             config.batch_size, config.seq_len)
    args = _arguments(
        work, seed,
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_steps,
        weight_decay=0.01,
        save_strategy="steps",
        save_steps=max(1, config.steps // 6),  # resume points; a killed run loses < 1/6 of its work
    )
    trainer = Trainer(model=model, args=args, train_dataset=pretraining_blocks(world, config, tokenizer, seed),
                      callbacks=[Divergence("pretrain"), Progress("pretrain", max(1, config.steps // 20)),
                                 SaveAt(checkpoints.values())])
    history = _train(trainer, work)
    for name, step in checkpoints.items():
        _export(work / f"checkpoint-{step}", tokenizer, out / name)
    (out / "log.json").write_text(json.dumps(_losses(history)))
    shutil.rmtree(work)


def finetune(base: Path, examples: Sequence[Example], config: FinetuneConfig, epochs: int, seed: int,
             out: Path, label: str) -> None:
    """Instruction-tune the model at `base` on `examples`; out/epoch-<k>/ after every epoch, out/log.json.

    The data order depends on `seed` and the number of examples only, so every corruption ratio sees
    the same items in the same order for the same number of steps.
    """
    work = out / "work"
    model, tokenizer = models.load(base)
    dataset = Examples(examples, tokenizer, model.config.max_position_embeddings)
    args = _arguments(
        work, seed,
        num_train_epochs=epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio,  # a float < 1 is a share of the steps
        weight_decay=config.weight_decay,
        save_strategy="epoch",
    )
    steps_per_epoch = -(-len(dataset) // config.batch_size)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=dataset.collate,
                      callbacks=[Divergence(label), Progress(label, steps_per_epoch)])
    history = _train(trainer, work)
    for epoch in range(1, epochs + 1):
        _export(work / f"checkpoint-{epoch * steps_per_epoch}", tokenizer, out / f"epoch-{epoch}")
    (out / "log.json").write_text(json.dumps(_losses(history)))
    shutil.rmtree(work)


def _export(checkpoint: Path, tokenizer: PreTrainedTokenizerFast, target: Path) -> None:
    """Keep only what a model directory needs (no optimizer state): config, weights, tokenizer."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, target / name)
    tokenizer.save_pretrained(target)


def _losses(history: list[dict]) -> list[dict]:
    return [{"step": row["step"], "epoch": row.get("epoch"), "loss": row["loss"]} for row in history if "loss" in row]
