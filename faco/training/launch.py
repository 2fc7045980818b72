"""The training stage in many processes, on an existing engine: `accelerate launch` as a subprocess.

When a preset asks for several processes (`launch.processes`) or names an accelerate config file
(`launch.accelerate_config`: multi-node, FSDP, DeepSpeed), the pytest process writes the stage's inputs
to a JSON spec, runs `accelerate launch -m faco.training.worker SPEC` and waits, holding the cache lock;
every line the processes print is re-logged as it comes, so progress streams into the pytest log, and
a failed rank fails the stage with the tail of the output. On a machine without CUDA the processes
talk over gloo (accelerate's `--multi_gpu` launcher with `TrainingArguments(use_cpu=True)`): `--cpu`
would start one process only (accelerate always takes its single-process launcher with `--cpu`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from faco.core import lifetime
from faco.config.schema import FinetuneConfig, LaunchConfig
from faco.data.items import Example
from faco.models.serve import free_port
from faco.training import trainer

log = logging.getLogger("faco.training.launch")

TAIL = 40  # lines of a failed launch's output in the error
FAILED = "faco-rank-failed:"  # a worker's line naming its error: leads the stage's error, above the tail


def finetune(base: Path, examples: Sequence[Example], config: FinetuneConfig, epochs: int, seed: int,
             out: Path, label: str, launch: LaunchConfig, threads: int = 0) -> None:
    """`faco.training.trainer.finetune`, here or, when `launch` asks for it, under `accelerate launch`."""
    if not launch.launched:
        trainer.finetune(base, examples, config, epochs, seed, out, label)
        return
    spec = {"base": str(base), "examples": [dataclasses.asdict(e) for e in examples],
            "finetune": dataclasses.asdict(config), "epochs": epochs, "seed": seed, "out": str(out),
            "label": label, "processes": launch.processes, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="faco-launch-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        run(command(launch, path), label)


def command(launch: LaunchConfig, spec: Path) -> list[str]:
    """The `accelerate launch` command line of one launched stage."""
    engine = ["--config_file", launch.accelerate_config] if launch.accelerate_config else [
        "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    port = launch.port or free_port()
    return [sys.executable, "-m", "accelerate.commands.launch", *engine, "--num_processes", str(launch.processes),
            "--main_process_port", str(port), "-m", "faco.training.worker", str(spec)]


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
