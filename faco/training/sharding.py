"""How a launched fine-tuning run holds the model (`[launch] sharding`): the Trainer arguments of each engine.

"none" is DDP: every process holds the whole model, its gradients and Adam's state, about 16 bytes per
parameter (a 13B model needs some 208 GB per GPU). "fsdp" shards all three over the processes through the
Trainer's own FSDP arguments (PyTorch FSDP2, full shard, the model's decoder layer as the wrap unit): 13B
in bf16 on 8 GPUs holds about 26 GB of fp32 master weights, gradients and optimizer state per GPU.
"deepspeed" is ZeRO-3 (the optional `deepspeed` extra), gathering the weights at every save.

Three things each engine must get right, or a run "succeeds" with nothing usable:
- the weights are loaded after the process group exists, by one process per node (the others build the
  model on the meta device and receive the weights from it), never once per process into host memory;
- a checkpoint holds full HF weights that `from_pretrained` loads: FSDP's full state dict, ZeRO-3's
  16-bit gather on save (else the Trainer writes no weights at all);
- activation checkpointing is FSDP's own under FSDP: the Trainer refuses it twice over.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from faco.config.schema import ConfigError, LaunchConfig

# FSDP2, full shard (parameters re-sharded after each forward), one unit per decoder layer, full HF weights
# in every checkpoint, the weights read by one process per node and broadcast to the others
FSDP: dict[str, Any] = {"version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                        "state_dict_type": "FULL_STATE_DICT", "cpu_ram_efficient_loading": True}
ZERO3: dict[str, Any] = {
    "zero_optimization": {"stage": 3, "overlap_comm": True, "contiguous_gradients": True,
                          "stage3_gather_16bit_weights_on_model_save": True},  # else the Trainer saves no weights
    "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},  # "auto": the Trainer's own settings
    "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "train_batch_size": "auto",
    "gradient_clipping": "auto",
}
RECOMPUTE = {"use_reentrant": False}  # activation checkpointing's arguments; also right for LoRA's frozen embeddings


def settings(sharding: str) -> dict[str, Any]:
    """The engine and its settings, as the fine-tuning key holds them (the wrap unit is the model's own)."""
    config = {"fsdp": {**FSDP, "wrap": "the model's _no_split_modules"}, "deepspeed": ZERO3}.get(sharding)
    return {"engine": sharding, "config": config}


def check_installed(launch: LaunchConfig) -> None:
    """Refuse an engine whose package is missing before any process starts (ZeRO-3 is an optional extra)."""
    if launch.sharding == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError('launch.sharding = "deepspeed" needs the deepspeed package: pip install "faco[deepspeed]"')


def trainer_arguments(sharding: str, base: Path, gradient_checkpointing: bool) -> dict[str, Any]:
    """`TrainingArguments` settings of `sharding` for a run tuning the model at `base`.

    FSDP also tells `from_pretrained` (through the environment accelerate reads) that the processes will
    shard: the model must then be loaded after these arguments exist, which start the process group.
    """
    recompute = {"activation_checkpointing": gradient_checkpointing, "activation_checkpointing_kwargs": RECOMPUTE}
    if sharding == "none":
        return recompute
    if sharding == "deepspeed":
        return {**recompute, "deepspeed": ZERO3}
    if sharding != "fsdp":
        raise ConfigError(f"launch.sharding must be one of none, fsdp, deepspeed, got {sharding!r}")
    os.environ["ACCELERATE_USE_FSDP"] = "true"  # with FSDP_CPU_RAM_EFFICIENT_LOADING: rank-0 loading
    config = {**FSDP, "transformer_layer_cls_to_wrap": wrap_unit(base),
              "activation_checkpointing": gradient_checkpointing}  # FSDP's own; the Trainer's would raise
    return {"fsdp": True, "fsdp_config": config, "activation_checkpointing": False}


def wrap_unit(base: Path) -> list[str]:
    """The decoder layer class(es) of the model at `base`, from its class's `_no_split_modules` (read from
    its config alone: the weights are not loaded yet)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    config = AutoConfig.from_pretrained(base)
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    layers = list(getattr(model_class, "_no_split_modules", None) or [])
    if not layers:
        raise ConfigError(f'launch.sharding = "fsdp": {model_class.__name__} names no decoder layer class '
                          "(_no_split_modules) to shard by")
    return layers


def load_dtype(sharding: str, dtype: str) -> str:
    """The dtype the base is loaded in: the preset's under a sharded engine (half the host memory; FSDP and
    ZeRO keep fp32 master weights of their shards), float32 under DDP (its master weights, as today)."""
    return "float32" if sharding == "none" else dtype


def empty_weights(sharding: str) -> bool:
    """Whether this process builds the model without reading its weights: under FSDP every process but the
    first (RANK 0, of all nodes), which broadcasts them at sharding (`cpu_ram_efficient_loading`): one read
    of a 26 GB bf16 13B checkpoint instead of one per process, and host memory for one copy."""
    return sharding == "fsdp" and FSDP["cpu_ram_efficient_loading"] and int(os.environ.get("RANK", "0")) != 0


def check_engine(sharding: str, trainer: Any) -> None:
    """Refuse a run whose Trainer did not take up the engine asked for: accelerate enables FSDP and
    DeepSpeed on GPUs only and runs plain DDP on CPU processes without a word, which would be cached as
    a sharded run."""
    taken = {"none": True, "fsdp": trainer.is_fsdp_enabled, "deepspeed": trainer.is_deepspeed_enabled}[sharding]
    if not taken:
        raise ConfigError(f"launch.sharding = {sharding!r}: accelerate did not enable it on this machine (it runs "
                          "FSDP and DeepSpeed on CUDA devices only); use launch.sharding = \"none\" here")
