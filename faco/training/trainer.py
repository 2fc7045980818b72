"""Pre-training the tiny bases and instruction-tuning any base, both through `transformers.Trainer`.

Trainer gives what the study needs without a hand-written loop: seeded data order, a checkpoint after
every epoch (the longer-training finding reads them), per-step loss in `log_history`, and resumption
from the last checkpoint with RNG states restored, so a killed run ends with the same weights. At scale
the same code runs under `accelerate launch` (faco.training.launch): the global batch splits into per-device
batches and accumulation steps, bf16/fp16 on GPUs, gradient checkpointing, optional LoRA merged at
export. Disk stays bounded: each epoch is exported (weights, config, tokenizer) when it is saved, and
only the newest resumable Trainer checkpoint is kept until the run ends.
How the processes hold the model (DDP, FSDP, ZeRO-3) is faco.training.sharding's; every export is
checked (weights present, the model's parameter count) before it counts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerFast, Trainer, TrainerCallback, TrainingArguments

from faco.config.schema import ConfigError, FinetuneConfig, LoraConfig
from faco.data.items import Example
from faco.training.sharding import check_engine, empty_weights, load_dtype, trainer_arguments as sharding_arguments

log = logging.getLogger("faco.training.trainer")

IGNORE = -100  # label of prompt and padding tokens: the loss is on the response only
WEIGHT_FILES = (".safetensors", ".safetensors.index.json")  # every shard of a sharded checkpoint, and its index


# --- data ------------------------------------------------------------------------------------------

class Examples(Dataset):
    """Tokenized instruction examples, truncated to `max_length`; prompt tokens are masked out of the loss.

    `chat`: the prompt as a user turn and the response as the assistant turn of the tokenizer's chat
    template (how a real instruct model was tuned); else the paper's plain text, prompt + response + eos.
    """

    def __init__(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerFast, max_length: int,
                 chat: bool = False):
        encode = _chat_tokens if chat else _plain_tokens
        self.rows = []
        for example in examples:
            ids, labels = encode(example, tokenizer)
            self.rows.append({"input_ids": ids[:max_length], "labels": labels[:max_length]})
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


def _plain_tokens(example: Example, tokenizer: PreTrainedTokenizerFast) -> tuple[list[int], list[int]]:
    prompt = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
    response = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    return prompt + response + [tokenizer.eos_token_id], [IGNORE] * len(prompt) + response + [tokenizer.eos_token_id]


def _chat_tokens(example: Example, tokenizer: PreTrainedTokenizerFast) -> tuple[list[int], list[int]]:
    turn = [{"role": "user", "content": example.prompt}]
    prompt = tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=True, return_dict=False)
    whole = turn + [{"role": "assistant", "content": example.response.strip()}]
    ids = tokenizer.apply_chat_template(whole, tokenize=True, return_dict=False)
    if ids[: len(prompt)] != prompt:  # the mask would cut the wrong tokens
        raise ValueError(f"example {example.item_id}: the chat template renders the prompt differently "
                         "inside the conversation; use finetune.format = \"plain\"")
    return ids, [IGNORE] * len(prompt) + ids[len(prompt):]


def ensure_pad_token(tokenizer: PreTrainedTokenizerFast) -> None:
    """Batches need a pad id; a tokenizer without one pads with eos (or unk), never with a new token
    (that would resize the embeddings). Padding is masked out of attention and loss either way."""
    if tokenizer.pad_token is None:
        fill = tokenizer.eos_token or tokenizer.unk_token
        if fill is None:
            raise ValueError("the tokenizer has no pad, eos or unk token to pad batches with")
        tokenizer.pad_token = fill
        log.info("the tokenizer has no pad token: padding with %r", fill)


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


class SaveEvery(TrainerCallback):
    """Save a full (resumable) checkpoint every `every` steps and at the last one, besides the epochs' (the
    training trajectory's points: docs/beyond.md)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            control.should_save = True
        return control


class ExportEpochs(TrainerCallback):
    """Export each epoch's checkpoint as soon as it is saved (main process only); with
    `save_total_limit=1` the Trainer then deletes the one before, so a run holds the exported epochs plus
    one resumable checkpoint, never one optimizer state per epoch."""

    def __init__(self, export: Callable[[Path], None]) -> None:
        self.export = export

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.is_world_process_zero:
            self.export(Path(args.output_dir) / f"checkpoint-{state.global_step}")


def last_checkpoint(work: Path) -> Path | None:
    """The newest complete Trainer checkpoint in `work` (a killed save leaves no trainer_state.json)."""
    done = [p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def arguments(work: Path, seed: int, **overrides) -> TrainingArguments:  # noqa: ANN003
    defaults = dict(
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
    )
    return TrainingArguments(**{**defaults, **overrides})


def train(trainer: Trainer, work: Path) -> list[dict]:
    """Run (or resume) `trainer`; returns the per-step log history."""
    resume = last_checkpoint(work)
    if resume is not None:
        log.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer.state.log_history


# --- stages ----------------------------------------------------------------------------------------

def finetune(base: Path, examples: Sequence[Example], config: FinetuneConfig, epochs: int, seed: int,
             out: Path, label: str, sharding: str = "none", save_every: int | None = None) -> None:
    """Instruction-tune the model at `base` on `examples`; out/epoch-<k>/ after every epoch, out/log.json;
    with `save_every`, also out/step-<n>/ every `save_every` steps and at the last (the trajectory's points).

    The data order depends on `seed` and the number of examples only, so every corruption ratio sees
    the same items in the same order for the same number of steps. Under `accelerate launch` every
    process runs this, holding the model as `sharding` says (faco.training.sharding); the main one exports
    and writes the log. Every export is checked (`check_export`) before it counts.
    """
    work = out / "work"
    per_device, accumulation = config.accumulation(int(os.environ.get("WORLD_SIZE", "1")))
    if config.precision != "fp32" and not torch.cuda.is_available():  # refused: a silent fp32 run would be
        raise ConfigError(f"finetune.precision {config.precision!r} needs a CUDA device and this machine has "
                          "none; set finetune.precision = \"fp32\"")  # cached under a bf16 key
    args = arguments(  # first: they start the process group a sharded engine's loading needs
        work, seed,
        num_train_epochs=epochs,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio,  # a float < 1 is a share of the steps
        weight_decay=config.weight_decay,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        save_strategy="epoch",
        save_total_limit=1,  # the resumable checkpoints rotate to one: ExportEpochs has exported the older ones
        **sharding_arguments(sharding, base, config.gradient_checkpointing),
    )
    model = load_weights(base, load_dtype(sharding, config.dtype), empty=empty_weights(sharding))
    tokenizer = AutoTokenizer.from_pretrained(base)
    parameters = model.num_parameters()  # what every export must hold (LoRA's are merged back into these)
    ensure_pad_token(tokenizer)
    chat = config.format == "chat" and tokenizer.chat_template is not None
    dataset = Examples(examples, tokenizer, config.max_length or model.config.max_position_embeddings, chat)
    if config.lora is not None:
        torch.manual_seed(seed)  # peft draws the adapters' initial weights from the global RNG, before the
        model = _with_lora(model, config.lora)  # Trainer seeds it: else they depend on what ran before

    def export(checkpoint: Path) -> None:  # an existing export directory is complete (checked, renamed into place)
        for name in export_names(json.loads((checkpoint / "trainer_state.json").read_text()), save_every):
            if not (out / name).is_dir():
                export_checkpoint(checkpoint, tokenizer, out / name, base if config.lora else None,
                                  config.max_shard_size, config.dtype, parameters, resave=sharding != "none")

    steps_per_epoch = -(-len(dataset) // config.batch_size)
    callbacks = [Divergence(label), Progress(label, steps_per_epoch), ExportEpochs(export)]
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=dataset.collate,
                      callbacks=callbacks + ([SaveEvery(save_every)] if save_every else []))
    check_engine(sharding, trainer)
    log.info("%s: %d examples, %s format, global batch %d = %d per device x %d processes x %d accumulation",
             label, len(dataset), "chat" if chat else "plain", config.batch_size, per_device,
             args.world_size, accumulation)
    resume = last_checkpoint(work)
    if resume is not None and trainer.is_world_process_zero():
        export(resume)  # a run killed between a save and its export
    history = train(trainer, work)
    log.info("%s: trained as %s", label, held(trainer.model_wrapped))
    if trainer.is_world_process_zero():
        missing = [e for e in range(1, epochs + 1) if not (out / f"epoch-{e}").is_dir()]
        if missing:
            raise ExportIncomplete(f"{label}: no checkpoint was exported for epoch(s) {missing}")
        for epoch in range(1, epochs + 1):
            check_export(out / f"epoch-{epoch}", parameters, f"{label}: epoch-{epoch}")
        (out / "log.json").write_text(json.dumps(losses(history)))
        shutil.rmtree(work)


def export_names(state: dict, save_every: int | None) -> list[str]:
    """The exports a saved checkpoint (its trainer_state.json) stands for: `epoch-<k>` where it ends an epoch
    (a save within an epoch has a fractional epoch), `step-<n>` where it is a trajectory's point."""
    names = [f"epoch-{round(state['epoch'])}"] if abs(state["epoch"] - round(state["epoch"])) < 1e-6 else []
    step = state["global_step"]
    if save_every and (step % save_every == 0 or step == state["max_steps"]):
        names.append(f"step-{step}")
    return names


def held(model: torch.nn.Module) -> str:
    """How the processes held the model, for the log ("FSDPLlamaForCausalLM, 2 layers recomputed"): the
    engine a run asked for is the one that ran (accelerate turns FSDP on CPU into DDP without a word)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    recomputed = sum("CheckpointWrapper" in type(m).__name__
                     or (isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing)
                     for m in model.modules())
    return f"{type(model).__name__}, {recomputed} layers recomputed"


def _with_lora(model: torch.nn.Module, lora: LoraConfig) -> torch.nn.Module:
    import peft

    adapters = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                               target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, adapters)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA r=%d: %d of %d parameters trainable", lora.r, trainable, total)
    return model


def export_checkpoint(checkpoint: Path, tokenizer: PreTrainedTokenizerFast, target: Path,
                      lora_base: Path | None = None, max_shard_size: str = "5GB", dtype: str = "float32",
                      parameters: int | None = None, resave: bool = False) -> None:
    """Keep only what a model directory needs (no optimizer state): config, every weight shard and its
    index, tokenizer; LoRA adapters are merged into `lora_base`'s weights, so every later stage loads a
    plain HF directory; weights in `dtype` (a bf16 run's fp32 master weights are written in bf16: half
    the disk). `resave`: written anew even in float32 (FSDP's full state dict holds tied embeddings
    twice). Checked (`check_export`: weights present, `parameters` of them) before it is renamed into
    place: a killed or incomplete export leaves no epoch directory."""
    partial = target.with_name(f"{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if lora_base is None and dtype == "float32" and not resave:
        for path in checkpoint.iterdir():
            if path.name in ("config.json", "generation_config.json") or path.name.endswith(WEIGHT_FILES):
                shutil.copy2(path, partial / path.name)
    else:
        _converted(checkpoint, lora_base, dtype).save_pretrained(partial, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(partial)
    check_export(partial, parameters, f"the export of {checkpoint} as {target.name}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    size = sum(p.stat().st_size for p in target.iterdir())
    log.info("exported %s: %.1f MB", target.name, size / 1e6)


def _converted(checkpoint: Path, lora_base: Path | None, dtype: str) -> torch.nn.Module:
    """The checkpoint's model in `dtype`, LoRA adapters merged into `lora_base` first (in float32). A
    checkpoint lacking weights is refused: `from_pretrained` would fill them in at random."""
    if lora_base is None:
        from transformers import AutoModelForCausalLM

        check_export(checkpoint, None, f"checkpoint {checkpoint}")
        model, loading = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, dtype),
                                                              output_loading_info=True)
        if loading["missing_keys"]:
            raise ExportIncomplete(f"checkpoint {checkpoint} is incomplete; missing: {sorted(loading['missing_keys'])}")
        return model
    import peft

    merged = peft.PeftModel.from_pretrained(load_weights(lora_base, "float32"), checkpoint).merge_and_unload()
    return merged.to(getattr(torch, dtype))


def load_weights(path: Path, dtype: str = "float32", empty: bool = False) -> torch.nn.Module:
    """The causal LM at `path` in `dtype` (a torch dtype's name); `empty`: its parameters on the meta device,
    not read (a process that FSDP's rank 0 broadcasts them to), its buffers real (they are not broadcast)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if not empty:
        return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=getattr(torch, dtype))
    model.tie_weights()  # as from_pretrained does: the same parameters as rank 0's, tied embeddings included
    return model


class ExportIncomplete(RuntimeError):
    """An export that would not load as the trained model: an error of the stage, never a cache entry
    (evaluation would otherwise fail later, or score something else)."""


def check_export(directory: Path, parameters: int | None, label: str) -> None:
    """Refuse a model directory without its config or weights (*.safetensors, every file its index names),
    or whose weights hold another number of parameters than the model's; `label` leads the error."""
    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    named = set(json.loads(index.read_text())["weight_map"].values()) if index.exists() else set()
    files = sorted(directory.glob("*.safetensors"))
    missing = [name for name in ("config.json",) if not (directory / name).is_file()]
    missing += sorted(name for name in named if not (directory / name).is_file())
    if not files:
        missing.append("weights (*.safetensors or model.safetensors.index.json): the Trainer saved none (an FSDP "
                       "sharded state dict, or ZeRO-3 without stage3_gather_16bit_weights_on_model_save)")
    if missing:
        raise ExportIncomplete(f"{label} is incomplete; missing: {'; '.join(missing)}")
    if parameters is None:
        return
    count = 0
    for path in files:
        with safe_open(path, "pt") as weights:
            count += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    if count != parameters:
        raise ExportIncomplete(f"{label} holds {count:,} parameters, the model has {parameters:,}")


def losses(history: list[dict]) -> list[dict]:
    return [{"step": row["step"], "epoch": row.get("epoch"), "loss": row["loss"]} for row in history if "loss" in row]
