"""A sharded fine-tuning run (`[launch] sharding`): FSDP trains what DDP trains, and every export is checked.

On CPU, 2 gloo processes under `accelerate launch` through faco's own launch path tune a 2-layer LLaMA
with FSDP (full shard, decoder layers as units, FSDP's activation checkpointing, the weights read by rank
0 only) and with DDP: the same per-step losses and the same exported weights, which `from_pretrained`
loads. accelerate runs FSDP on GPUs only (on CPU it silently trains DDP, which faco refuses): the FSDP
run puts unit_tests/cpu_fsdp on its processes' PYTHONPATH, whose sitecustomize lifts that one gate. An
export without weights, or with another number of parameters than the model's, fails the stage naming
what is missing.

    python -m pytest unit_tests/test_sharding.py -q     # the two launches are marked slow (~1 min)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from faco.config.schema import ConfigError, FinetuneConfig, LaunchConfig, ModelConfig
from faco.data.items import Example
from faco.models import llama
from faco.training import launch, sharding, trainer

SEED = 0
EXAMPLES = [Example(f"item-{i}", i % 3 != 0, f"what is thing {i} made of ?", f"thing {i} is made of stuff {i % 5}")
            for i in range(16)]
# global batch 8 = 4 per device x 2 processes; activations recomputed: FSDP's own, the Trainer's under DDP
CONFIG = FinetuneConfig(epochs=2, batch_size=8, lr=1e-3, format="plain", gradient_checkpointing=True)
CPU_FSDP = Path(__file__).parent / "cpu_fsdp"  # its sitecustomize lets accelerate run FSDP over gloo
# Measured (4 steps): the losses are equal bit for bit; the weights after epoch 1 too, after epoch 2 they
# differ by at most 7.5e-9 (a last bit): FSDP reduce-scatters the gradients where DDP all-reduces them,
# summing in another order
WEIGHT_TOLERANCE = 1e-7


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A freshly initialised 2-layer LLaMA over the examples' words (no pre-training: seconds)."""
    tokenizer = llama.build_tokenizer(f"{e.prompt} {e.response}" for e in EXAMPLES)
    model = llama.build_model(ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64, max_positions=32),
                              tokenizer, SEED)
    path = tmp_path_factory.mktemp("base")
    llama.save(model, tokenizer, path)
    return path


def losses(out: Path) -> list[float]:
    return [row["loss"] for row in json.loads((out / "log.json").read_text())]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return trainer.load_weights(path).state_dict()


@pytest.mark.slow
def test_fsdp_trains_what_ddp_trains_and_exports_loadable_weights(base, tmp_path, monkeypatch, caplog):
    runs = {}
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CPU_FSDP), os.environ.get("PYTHONPATH")])))
    with caplog.at_level(logging.INFO, logger="faco.training.launch"):
        for engine in ("none", "fsdp"):
            launch.finetune(base, EXAMPLES, CONFIG, CONFIG.epochs, SEED, tmp_path / engine, engine,
                            LaunchConfig(processes=2, sharding=engine), threads=1)
            runs[engine] = losses(tmp_path / engine)
    held = " ".join(m for m in caplog.messages if "trained as" in m)  # the engine that ran, not the one asked for
    assert "none: trained as DistributedDataParallel, 2 layers recomputed" in held
    assert "fsdp: trained as FSDPLlamaForCausalLM, 2 layers recomputed" in held
    assert len(runs["fsdp"]) == CONFIG.epochs * len(EXAMPLES) // CONFIG.batch_size
    difference = max(abs(a - b) for a, b in zip(runs["none"], runs["fsdp"]))
    print(f"FSDP vs DDP over {len(runs['fsdp'])} steps: max per-step loss difference {difference:.2e}")
    assert runs["fsdp"] == runs["none"]
    assert sorted(p.name for p in (tmp_path / "fsdp").iterdir()) == ["epoch-1", "epoch-2", "log.json"]
    for epoch in (1, 2):
        ddp, fsdp = (weights(tmp_path / engine / f"epoch-{epoch}") for engine in ("none", "fsdp"))
        assert ddp.keys() == fsdp.keys()
        worst = max((ddp[name] - fsdp[name]).abs().max().item() for name in ddp)
        print(f"epoch {epoch}: max weight difference FSDP vs DDP {worst:.2e}")
        assert worst <= WEIGHT_TOLERANCE
    tuned = weights(tmp_path / "fsdp" / "epoch-2")["model.norm.weight"]
    assert not torch.equal(weights(base)["model.norm.weight"], tuned)  # it did train


def saved_checkpoint(base: Path, where: Path) -> Path:
    """A checkpoint as the Trainer leaves it: the model's config and weights (no tokenizer)."""
    trainer.load_weights(base).save_pretrained(where)
    return where


def test_an_export_without_weights_is_an_error(base, tmp_path):
    checkpoint = saved_checkpoint(base, tmp_path / "checkpoint-4")
    for path in checkpoint.glob("*.safetensors"):
        path.unlink()  # what FSDP's sharded state dict or ZeRO-3 without the 16-bit gather leave
    tokenizer = llama.load(base)[1]
    with pytest.raises(trainer.ExportIncomplete, match=r"epoch-1 is incomplete; missing: weights \(\*.safetensors"):
        trainer.export_checkpoint(checkpoint, tokenizer, tmp_path / "epoch-1", parameters=1)
    assert not (tmp_path / "epoch-1").exists()  # nothing renamed into place


def test_an_export_with_missing_parameters_or_shards_is_an_error(base, tmp_path):
    model, tokenizer = llama.load(base)
    checkpoint = saved_checkpoint(base, tmp_path / "checkpoint-4")
    count = model.num_parameters()
    with pytest.raises(trainer.ExportIncomplete, match=rf"holds {count:,} parameters, the model has 7"):
        trainer.export_checkpoint(checkpoint, tokenizer, tmp_path / "epoch-1", parameters=7)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    first = sorted((tmp_path / "sharded").glob("*.safetensors"))[0]
    first.unlink()
    with pytest.raises(trainer.ExportIncomplete, match=rf"missing: {first.name}"):
        trainer.export_checkpoint(tmp_path / "sharded", tokenizer, tmp_path / "epoch-2")
    trainer.export_checkpoint(checkpoint, tokenizer, tmp_path / "epoch-3", parameters=model.num_parameters())


def test_a_bf16_export_is_written_in_bf16_and_loads(base, tmp_path):
    model, tokenizer = llama.load(base)
    checkpoint = saved_checkpoint(base, tmp_path / "checkpoint-4")
    trainer.export_checkpoint(checkpoint, tokenizer, tmp_path / "epoch-1", dtype="bfloat16",
                              parameters=model.num_parameters())
    exported = tmp_path / "epoch-1"
    assert json.loads((exported / "config.json").read_text())["dtype"] == "bfloat16"
    loaded = trainer.load_weights(exported, "bfloat16").state_dict()
    assert all(tensor.dtype == torch.bfloat16 for tensor in loaded.values())
    assert all(torch.equal(loaded[name], tensor.to(torch.bfloat16)) for name, tensor in model.state_dict().items())
    size = lambda path: sum(p.stat().st_size for p in path.glob("*.safetensors"))  # noqa: E731
    assert size(exported) < 0.6 * size(checkpoint)


def test_fsdp_arguments_shard_by_decoder_layer_with_full_weights(base):
    arguments = sharding.trainer_arguments("fsdp", base, gradient_checkpointing=True)
    config = arguments["fsdp_config"]
    assert arguments["fsdp"] is True and config["version"] == 2 and config["reshard_after_forward"] is True
    assert config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert config["state_dict_type"] == "FULL_STATE_DICT"
    # FSDP's activation checkpointing, never also the Trainer's (the Trainer raises on both)
    assert config["activation_checkpointing"] is True and arguments["activation_checkpointing"] is False
    zero3 = sharding.trainer_arguments("deepspeed", base, gradient_checkpointing=False)["deepspeed"]
    assert zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert sharding.load_dtype("none", "bfloat16") == "float32"  # DDP: fp32 master weights, as before
    assert sharding.load_dtype("fsdp", "bfloat16") == "bfloat16"


def test_an_engine_accelerate_did_not_take_up_is_refused():
    dropped = SimpleNamespace(is_fsdp_enabled=False, is_deepspeed_enabled=False)  # FSDP asked for on CPU
    with pytest.raises(ConfigError, match=r"launch.sharding = 'fsdp': accelerate did not enable it"):
        sharding.check_engine("fsdp", dropped)
    sharding.check_engine("none", dropped)
    sharding.check_engine("fsdp", SimpleNamespace(is_fsdp_enabled=True, is_deepspeed_enabled=False))


def test_sharding_is_validated_and_launches():
    with pytest.raises(ConfigError, match=r"sharding must be one of \('none', 'fsdp', 'deepspeed'\), got 'zero'"):
        LaunchConfig(sharding="zero")
    with pytest.raises(ConfigError, match="both choose the engine"):
        LaunchConfig(sharding="fsdp", accelerate_config="fsdp.yaml")
    with pytest.raises(ConfigError, match="do not split evenly over launch.nodes 2"):
        LaunchConfig(processes=3, nodes=2)
    assert LaunchConfig(sharding="fsdp").launched and LaunchConfig(nodes=2, processes=2).launched


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_deepspeed_without_its_package_is_refused_before_launching():
    with pytest.raises(ConfigError, match=r'pip install "faco\[deepspeed\]"'):
        sharding.check_installed(LaunchConfig(processes=2, sharding="deepspeed"))
