"""A launched training stage: `accelerate launch` processes run `faco.training.trainer.finetune` while pytest
waits; their output streams into the log, a failed rank fails the stage, and 2 CPU processes (gloo)
give the loss curve of 1 process at the same global batch.

    python -m pytest unit_tests/test_launch.py -q       # the launches are marked slow (~10 s each)
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from faco.training import launch

from faco.training import trainer
from faco.core.cache import Cache
from faco.config.schema import ConfigError, LaunchConfig
from faco.config.load import smoke
from faco.data.corruption import corrupted_examples
from faco.study.study import Study, untuned

PRESET = smoke().replace(threads=1)
RATIO = 50
# Measured (smoke base, 8 steps, global batch 8 = 2 processes x 4): the curves agree to ~1e-7; the
# processes reduce gradients in another order than one process does, so not bit for bit.
LOSS_TOLERANCE = 1e-5


def test_command_line():
    spec = Path("/tmp/spec.json")
    gloo = launch.command(LaunchConfig(processes=2, port=29555), spec, {})
    assert gloo[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert " ".join(gloo).endswith("--num_machines 1 --main_process_port 29555 --num_processes 2 "
                                   "-m faco.training.worker /tmp/spec.json")
    assert "--multi_gpu" in gloo and "--cpu" not in gloo  # --cpu starts one process only
    engine = launch.command(LaunchConfig(processes=16, accelerate_config="fsdp.yaml"), spec, {})
    assert engine[3:5] == ["--config_file", "fsdp.yaml"] and "--multi_gpu" not in engine
    assert LaunchConfig(accelerate_config="fsdp.yaml").launched and not LaunchConfig().launched


SLURM = {"SLURM_JOB_ID": "123456", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NODEID": "1", "SLURM_PROCID": "1"}


def test_one_node_under_slurm_is_one_accelerate_launch():
    one = launch.command(LaunchConfig(processes=8, port=29500), Path("/cache/finetune/k.partial/launch.json"), SLURM)
    assert one[:3] == [sys.executable, "-m", "accelerate.commands.launch"] and "srun" not in one
    assert one[one.index("--num_machines") + 1] == "1" and "--machine_rank" not in one


def test_two_nodes_run_one_launcher_per_node_through_srun():
    two = LaunchConfig(processes=16, nodes=2, sharding="fsdp")
    spec = Path("/cache/finetune/k.partial/launch.json")  # in the cache: every node reads it
    assert launch.command(two, spec, SLURM) == [
        "srun", "--nodes", "2", "--ntasks-per-node", "1", "--kill-on-bad-exit=1",
        sys.executable, "-m", "faco.training.launch", str(spec)]
    node = launch.node_command(two, spec, SLURM)  # what each srun task becomes, from its own environment
    assert node[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert " ".join(node[3:]) == ("--multi_gpu --mixed_precision no --dynamo_backend no --num_machines 2 "
                                  "--machine_rank 1 --main_process_ip gpu07 --main_process_port 23456 "
                                  "--num_processes 16 -m faco.training.worker /cache/finetune/k.partial/launch.json")
    first = launch.node_command(LaunchConfig(processes=16, nodes=2, port=29500), spec, {**SLURM, "SLURM_NODEID": "0"})
    assert first[first.index("--machine_rank") + 1] == "0" and first[first.index("--main_process_port") + 1] == "29500"


def test_two_nodes_without_slurm_are_refused():
    with pytest.raises(ConfigError, match="launch.nodes = 2 needs a Slurm allocation"):
        launch.command(LaunchConfig(processes=4, nodes=2), Path("spec.json"), {})
    with pytest.raises(ConfigError, match="runs inside srun"):
        launch.node_command(LaunchConfig(processes=4, nodes=2), Path("spec.json"), {"SLURM_JOB_NODELIST": "a1"})


@pytest.mark.parametrize("nodelist, host", [("gpu[07-09,12],cpu1", "gpu07"), ("node01", "node01"), ("a1,a2", "a1"),
                                             ("rack[1-2]-node[03-04]", "rack1-node03"), ("x-[5]", "x-5")])
def test_the_main_address_is_the_first_host_of_the_node_list(nodelist, host):
    assert launch.first_host(nodelist) == host


def test_output_streams_into_the_log_and_a_failure_raises_with_its_tail(caplog):
    script = (f"import sys\nprint('{launch.FAILED} rank 1: ValueError: boom')\n"
              "for i in range(60): print(f'line {i}')\nsys.exit(3)")
    with caplog.at_level(logging.INFO, logger="faco.training.launch"), pytest.raises(RuntimeError) as error:
        launch.run([sys.executable, "-c", script], "weak cr50")
    assert "weak cr50 | line 0" in caplog.messages and "weak cr50 | line 59" in caplog.messages
    message = str(error.value)
    assert message.startswith("weak cr50: `accelerate launch` exited with 3\n  rank 1: ValueError: boom\n")
    assert "line 59" in message and "line 0\n" not in message  # the tail, not the whole output


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    study = Study(PRESET, Cache(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)
    study.checkpoint(untuned("weak"))
    return study


def losses(out: Path) -> list[float]:
    return [row["loss"] for row in json.loads((out / "log.json").read_text())]


@pytest.mark.slow
def test_two_processes_give_the_loss_curve_of_one(study, tmp_path, caplog):
    examples = corrupted_examples(study.items, RATIO, PRESET.seed)
    base, epochs = study.checkpoint(untuned("weak")).path, PRESET.finetune.epochs
    trainer.finetune(base, examples, PRESET.finetune, epochs, PRESET.seed, tmp_path / "one", "one")
    with caplog.at_level(logging.INFO, logger="faco.training.launch"):
        launch.finetune(base, examples, PRESET.finetune, epochs, PRESET.seed, tmp_path / "two", "two",
                        LaunchConfig(processes=2), threads=1)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == epochs * -(-len(examples) // PRESET.finetune.batch_size)
    difference = max(abs(a - b) for a, b in zip(one, two))
    print(f"2 processes vs 1: max per-step loss difference {difference:.2e} over {len(one)} steps")
    assert difference <= LOSS_TOLERANCE
    assert any("global batch 8 = 4 per device x 2 processes x 1 accumulation" in m for m in caplog.messages)
    assert any("two: step" in m for m in caplog.messages)  # the main process's progress, streamed
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["epoch-1", "epoch-2", "log.json"]


@pytest.mark.slow
def test_a_failed_rank_fails_the_stage(study, tmp_path):
    examples = corrupted_examples(study.items, RATIO, PRESET.seed)
    with pytest.raises(RuntimeError, match=r"exited with 1\n  rank [01]: \w+Error: .*no-such-base"):
        launch.finetune(tmp_path / "no-such-base", examples, PRESET.finetune, 1, PRESET.seed, tmp_path / "out",
                        "broken", LaunchConfig(processes=2), threads=1)
