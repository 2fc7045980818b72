"""The training stage in many processes, on an existing engine: `accelerate launch` as a subprocess.

When a preset asks for several processes (`launch.processes`) or names an accelerate config file
(`launch.accelerate_config`: multi-node, FSDP, DeepSpeed), the pytest process writes the stage's inputs
to a JSON spec, runs `accelerate launch -m faco.training.worker SPEC` and waits, holding the cache lock;
every line the processes print is re-logged as it comes, so progress streams into the pytest log, and
a failed rank fails the stage with the tail of the output. On a machine without CUDA the processes
talk over gloo (accelerate's `--multi_gpu` launcher with `TrainingArguments(use_cpu=True)`): `--cpu`
would start one process only (accelerate always takes its single-process launcher with `--cpu`).

`launch.sharding` picks how the processes hold the model (faco.training.sharding). On several nodes
(`launch.nodes`, inside a Slurm allocation) the stage runs `srun` with one task per node, each of which
runs this module on the spec: it builds that node's `accelerate launch` line from its Slurm environment
(machine rank, the first host of the job as the main address, a port from the job id) and becomes it.
The spec lies in the stage's own directory in the cache, which every node sees (a local temp dir would not).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from faco.core import lifetime
from faco.config.schema import ConfigError, FinetuneConfig, LaunchConfig, build
from faco.data.items import Example
from faco.models.serve import free_port
from faco.training import sharding, trainer

log = logging.getLogger("faco.training.launch")

TAIL = 40  # lines of a failed launch's output in the error
FAILED = "faco-rank-failed:"  # a worker's line naming its error: leads the stage's error, above the tail
SPEC = "launch.json"  # the launched stage's inputs, in its own directory (seen by every node), removed after
PORTS = (20000, 20000)  # a multi-node job's rendezvous port: 20000 + its Slurm job id modulo 20000


def finetune(base: Path, examples: Sequence[Example], config: FinetuneConfig, epochs: int, seed: int,
             out: Path, label: str, launch: LaunchConfig, threads: int = 0, save_every: int | None = None) -> None:
    """`faco.training.trainer.finetune`, here or, when `launch` asks for it, under `accelerate launch`."""
    if not launch.launched:
        trainer.finetune(base, examples, config, epochs, seed, out, label, save_every=save_every)
        return
    sharding.check_installed(launch)
    spec = {"base": str(base), "examples": [dataclasses.asdict(e) for e in examples],
            "finetune": dataclasses.asdict(config), "epochs": epochs, "seed": seed, "out": str(out),
            "label": label, "processes": launch.processes, "threads": threads, "sharding": launch.sharding,
            "launch": dataclasses.asdict(launch), "save_every": save_every}
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPEC
    path.write_text(json.dumps(spec))
    try:
        run(command(launch, path, os.environ), label)
    finally:
        path.unlink(missing_ok=True)


def command(launch: LaunchConfig, spec: Path, env: Mapping[str, str]) -> list[str]:
    """The command a launched stage runs: `accelerate launch` on one node; on several, `srun` starting this
    module once per node (`node_command` there builds that node's `accelerate launch`)."""
    if launch.nodes == 1:
        return accelerate(launch, spec, ["--main_process_port", str(launch.port or free_port())])
    if "SLURM_JOB_NODELIST" not in env:
        raise ConfigError(f"launch.nodes = {launch.nodes} needs a Slurm allocation of as many nodes (sbatch or "
                          "salloc): SLURM_JOB_NODELIST is not set")
    return ["srun", "--nodes", str(launch.nodes), "--ntasks-per-node", "1", "--kill-on-bad-exit=1",
            sys.executable, "-m", "faco.training.launch", str(spec)]


def node_command(launch: LaunchConfig, spec: Path, env: Mapping[str, str]) -> list[str]:
    """One node's `accelerate launch` of a multi-node stage, from its Slurm task's environment `env`."""
    rank = env.get("SLURM_NODEID", env.get("SLURM_PROCID"))
    if rank is None or "SLURM_JOB_NODELIST" not in env:
        raise ConfigError("a multi-node launch runs inside srun: SLURM_NODEID and SLURM_JOB_NODELIST are not set")
    port = launch.port or PORTS[0] + int(env.get("SLURM_JOB_ID", "0")) % PORTS[1]
    return accelerate(launch, spec, ["--num_machines", str(launch.nodes), "--machine_rank", rank,
                                     "--main_process_ip", first_host(env["SLURM_JOB_NODELIST"]),
                                     "--main_process_port", str(port)])


def accelerate(launch: LaunchConfig, spec: Path, rendezvous: list[str]) -> list[str]:
    """`accelerate launch` of the worker on `spec`: the engine flags (or the preset's own accelerate config
    file), then where the processes meet (`rendezvous`)."""
    engine = ["--config_file", launch.accelerate_config] if launch.accelerate_config else [
        "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    machines = [] if "--num_machines" in rendezvous or launch.accelerate_config else ["--num_machines", "1"]
    return [sys.executable, "-m", "accelerate.commands.launch", *engine, *machines, *rendezvous,
            "--num_processes", str(launch.processes), "-m", "faco.training.worker", str(spec)]


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list ("gpu[07-09,12],cpu1" -> "gpu07"), as `scontrol show hostnames`
    prints it first, without needing scontrol."""
    first = re.match(r"[^,\[]+(\[[^\]]*\][^,\[]*)*", nodelist.strip())
    if first is None:
        raise ConfigError(f"SLURM_JOB_NODELIST {nodelist!r} names no host")
    return re.sub(r"\[([^\]\-,]+)[^\]]*\]", r"\1", first.group(0))


def run(command: list[str], label: str) -> None:
    """Run `command`, re-logging its output line by line; a non-zero exit raises with the output's tail."""
    log.info("%s: %s", label, shlex.join(command))
    tail: collections.deque[str] = collections.deque(maxlen=TAIL)
    failures: list[str] = []  # the ranks' own errors: the launcher's traceback would bury them in the tail
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are printed, not when a buffer fills
    # its own process group, ended with this process (faco.core.lifetime): Ctrl+C here stops the ranks through it
    with lifetime.tied(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        for line in process.stdout:
            tail.append(line.rstrip())
            log.info("%s | %s", label, tail[-1])
            if line.startswith(FAILED):
                failures.append(line[len(FAILED):].strip())
        process.wait()  # its output ended; the block's end would stop a process still exiting
    if process.returncode:
        errors = "".join(f"\n  {failure}" for failure in failures)
        raise RuntimeError(f"{label}: `accelerate launch` exited with {process.returncode}{errors}\n"
                           f"its last {len(tail)} lines:\n" + "\n".join(tail))


def main(argv: list[str]) -> None:
    """A multi-node stage's task on one node (`srun ... python -m faco.training.launch SPEC`): become that
    node's `accelerate launch`."""
    spec = Path(argv[0])
    launch = build(LaunchConfig, json.loads(spec.read_text())["launch"], "launch")
    line = node_command(launch, spec, os.environ)
    os.execvpe(line[0], line, {**os.environ, "PYTHONUNBUFFERED": "1"})


if __name__ == "__main__":
    main(sys.argv[1:])
