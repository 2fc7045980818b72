"""Pre-training the embedded tier's tiny bases on the world's text, through the same Trainer setup as
fine-tuning (faco.training.trainer): the pretrain stage's key covers this module, so an edit here re-trains
the tiny bases and nothing a real base is tuned from.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerFast, Trainer

from faco.config.schema import PretrainConfig
from faco.data.world import World, pretraining_lines
from faco.models import llama
from faco.training.trainer import Divergence, Progress, SaveAt, arguments, export_checkpoint, losses, train

log = logging.getLogger("faco.training.pretrain")


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


def pretrain(world: World, config: PretrainConfig, tokenizer: PreTrainedTokenizerFast,
             checkpoints: dict[str, int], seed: int, out: Path) -> None:
    """One pre-training run; the model at each named step is saved to out/<name>/ (e.g. weak, strong).

    Resumable: Trainer state lives in out/work until the run completes.
    """
    work = out / "work"
    model = llama.build_model(config.model, tokenizer, seed)
    log.info("pretrain: %d parameters, %d steps of %d x %d tokens", model.num_parameters(), config.steps,
             config.batch_size, config.seq_len)
    args = arguments(
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
    history = train(trainer, work)
    for name, step in checkpoints.items():
        export_checkpoint(work / f"checkpoint-{step}", tokenizer, out / name,
                          parameters=model.num_parameters())
    (out / "log.json").write_text(json.dumps(losses(history)))
    shutil.rmtree(work)
