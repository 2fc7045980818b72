"""The one model interface: a LLaMA-architecture causal LM plus its tokenizer, as an HF directory.

Every stage hands models around as directories that `transformers` and lm-eval's `hf` model load, so a
faco-pretrained tiny model and a real checkpoint (the real tier) go through the same code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and transformers load when a model is built or loaded, not when faco is imported
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from faco.config.schema import ModelConfig
from faco.core import numerics

SPECIAL_TOKENS = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
NEWLINE = "<nl>"  # a word-level tokenizer drops whitespace; the layouts need their line breaks


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is every word in `texts` (the world is closed)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Replace("\n", f" {NEWLINE} ")
    ordered = vocabulary(texts)
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(ordered)}, unk_token="<unk>"))
    core.normalizer = normalizer
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, clean_up_tokenization_spaces=False, **SPECIAL_TOKENS)


def vocabulary(texts: Iterable[str]) -> list[str]:
    """The word-level tokenizer's tokens in id order: the special ones, then every word of `texts` sorted (a
    line break is the word NEWLINE). Its length is the model's vocabulary (`faco plan` sizes a model by it)."""
    words = set(SPECIAL_TOKENS.values()) | {NEWLINE}
    for text in texts:
        words.update(text.replace("\n", f" {NEWLINE} ").split())
    return list(SPECIAL_TOKENS.values()) + sorted(words - set(SPECIAL_TOKENS.values()))


def build_model(config: ModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A freshly initialised tiny LLaMA (seeded) sized for `tokenizer`'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,  # halves the parameters of a vocabulary-heavy tiny model
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def load(path: Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Model and tokenizer saved by `save` (or any local HF causal-LM directory)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(path)


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def set_threads(requested: int = 0) -> int:
    """Give this process its share of the cores: pytest-xdist workers split them instead of fighting."""
    import torch

    if requested <= 0:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        requested = max(1, numerics.usable_cores() // max(1, workers))
    torch.set_num_threads(requested)
    return requested
