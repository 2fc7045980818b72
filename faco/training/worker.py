"""One process of a launched training stage: `python -m faco.training.worker SPEC.json` (faco.training.launch).

`accelerate launch` starts one of these per process; each runs `faco.training.trainer.finetune` on the spec's
inputs, Trainer wires them together through the environment accelerate sets (RANK, WORLD_SIZE, ...).
Logs go to stdout, which faco.training.launch re-logs in the pytest process: the main process's at INFO, the
others' warnings only, so progress is not printed once per process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from faco.core import numerics
from faco.config.schema import FinetuneConfig, build
from faco.models import llama
from faco.data.items import Example
from faco.training import trainer
from faco.training.launch import FAILED


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(stream=sys.stdout, level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"rank {rank}: %(name)s: %(message)s")
    if world != spec["processes"]:  # the global batch was split for launch.processes
        raise SystemExit(f"faco: {world} processes were launched, the preset's launch.processes is "
                         f"{spec['processes']}: make them agree (an accelerate config file sets num_processes)")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    llama.set_threads(spec["threads"] or max(1, numerics.usable_cores() // local))
    config = build(FinetuneConfig, spec["finetune"], "finetune")
    examples = [Example(**row) for row in spec["examples"]]
    trainer.finetune(Path(spec["base"]), examples, config, spec["epochs"], spec["seed"], Path(spec["out"]),
                     spec["label"], spec["sharding"], spec.get("save_every"))
    return 0


def run(argv: list[str]) -> int:
    """`main`, with this rank's error printed on one marked line for faco.training.launch to report."""
    try:
        return main(argv)
    except BaseException as error:
        print(f"{FAILED} rank {os.environ.get('RANK', '0')}: {type(error).__name__}: {error}", flush=True)
        raise


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
