"""`faco plan`: what a preset's grid costs, and the refusal of a plan that cannot fit one GPU.

    python -m pytest unit_tests/test_plan.py -q
"""

from __future__ import annotations

import json

import pytest

from faco import cli
from faco.config.load import load_preset, override
from faco.study import costs
from faco.study.reads import Read
from faco.study.study import finetuned

LLAMA_13B_PARAMETERS = (2 * 32000 * 5120  # embedding and output layer, untied
                        + 40 * (4 * 5120 * 5120 + 3 * 5120 * 13824 + 2 * 5120)  # attention, SwiGLU, two norms
                        + 5120)  # the final norm: 13,015,864,320 by hand


def _plan(capsys, *argv: str) -> tuple[int, dict, str]:
    code = cli.main(["plan", *argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_paper_fits_on_eight_80_gb_gpus_with_fsdp(capsys):
    assert cli.main(["plan", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "fits:" in out and "on 8 x 80 GB with sharding fsdp" in out
    code, plan, _ = _plan(capsys, "--preset", "paper")
    assert code == 0 and plan["fits"] and plan["needed_gb"] < 80
    assert plan["runs"] == {"weak": 6, "strong": 6}  # 5 CRs + recovery per base
    assert plan["evaluated"] == {"weak": 27, "strong": 27}  # the base, 5 CRs x 5 epochs, recovery
    assert plan["jobs"] == 66


def test_paper_under_ddp_is_refused_with_the_memory_it_needs(capsys):
    code = cli.main(["plan", "--preset", "paper", "--set", "launch.sharding=none"])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("faco plan: error:")]
    assert len(errors) == 1
    assert "does not fit" in errors[0] and "needs 211.9 GB per GPU" in errors[0] and "launch.sharding" in errors[0]


def test_13b_numbers_by_hand():
    """13.0 B parameters: 26.03 GB of bf16 weights; under DDP gradients as much and Adam's two fp32 moments
    plus the fp32 master 12 bytes each (156.2 GB): 208.3 GB before activations; FSDP on 8 GPUs an eighth."""
    preset = load_preset("paper")
    arch = costs.architecture(preset, "weak")
    assert arch.parameters == LLAMA_13B_PARAMETERS == 13_015_864_320
    ddp = dict(costs.memory(override(preset, "launch.sharding=none"), arch))
    assert ddp["weights (bf16)"] == pytest.approx(26.03, abs=0.01)
    assert ddp["gradients (bf16)"] == pytest.approx(26.03, abs=0.01)
    assert ddp["optimizer state (Adam fp32 moments + fp32 master)"] == pytest.approx(156.19, abs=0.01)
    fsdp = dict(costs.memory(preset, arch))
    assert fsdp["weights (bf16, sharded over 8)"] == pytest.approx(26.03 / 8, abs=0.01)
    disk = dict(costs.disk(preset, {"weak": arch, "strong": arch}, costs.grid(preset, cli.grid_reads(preset))))
    assert disk["exports written (56 x bf16)"] == pytest.approx(56 * 26.03, abs=1)
    assert disk["exports kept after the grid (12: the last epoch's of each run)"] == pytest.approx(12 * 26.03, abs=1)


@pytest.mark.parametrize("preset, runs, evaluated", [("tiny", {"weak": 6, "strong": 6}, {"weak": 17, "strong": 17}),
                                                     ("smol-ci", {"smol": 4}, {"smol": 5}),
                                                     ("smol", {"smol": 6}, {"smol": 12})])
def test_the_small_presets_plan_and_fit(capsys, preset, runs, evaluated):
    code, plan, _ = _plan(capsys, "--preset", preset)
    assert code == 0 and plan["fits"]
    assert plan["runs"] == runs and plan["evaluated"] == evaluated
    assert plan["disk"] and all(value >= 0 for value in plan["gpu_hours"].values())


@pytest.mark.parametrize("config", [
    dict(hidden_size=5120, num_hidden_layers=40, intermediate_size=13824, vocab_size=32000, num_attention_heads=40,
         num_key_value_heads=40, tie_word_embeddings=False),  # LLaMA 13B
    dict(hidden_size=576, num_hidden_layers=30, intermediate_size=1536, vocab_size=49152, num_attention_heads=9,
         num_key_value_heads=3, tie_word_embeddings=True),  # SmolLM2-135M: grouped-query attention, tied
])
def test_the_parameter_count_is_the_models(tmp_path, config):
    """The count from a config.json equals what transformers builds from it (on the meta device: no memory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    (tmp_path / "config.json").write_text(json.dumps(config))
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))
    assert costs.from_config(tmp_path / "config.json", "test").parameters == sum(p.numel() for p in model.parameters())


def test_an_unknown_checkpoint_is_one_error_naming_it(capsys):
    code = cli.main(["plan", "--preset", "paper", "--set", "bases.weak.checkpoint=someone/mystery-model"])
    assert code == 2
    assert "cannot size checkpoint 'someone/mystery-model'" in capsys.readouterr().err


def test_a_run_beyond_the_paper_is_counted_apart_in_the_grid_with_the_study_s_label():
    """A CR-100 run of another corruption kind is a run and an evaluation of its own, named as the study
    names the model (faco.study.reads.run_label), never merged into the paper's CR-100 run."""
    preset = load_preset("tiny")
    reads = [Read("strong", 100, False, None, "instruction"), Read("strong", 100, False, None, "instruction", kind="answer"),
             Read("strong", 100, True, None, "instruction", share=25), Read("strong", 50, False, None, "", every=19)]
    grid = costs.grid(preset, reads)
    epochs = preset.finetune.epochs
    assert [run for run, _ in grid.runs["strong"]] == [
        "strong cr100", "strong cr100 answer false", "strong recovered on 25 %",
        "strong cr50 (a checkpoint every 19 steps)"]
    assert grid.evaluated["strong"] == [f"strong cr100 epoch {epochs} (instruction)",
                                        f"strong cr100 answer false epoch {epochs} (instruction)",
                                        "strong recovered on 25 % (instruction)"]
    assert finetuned("strong", 100).label(epochs) == grid.evaluated["strong"][0].removesuffix(" (instruction)")
