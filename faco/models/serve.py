"""A local teacher: a model directory served by `transformers serve` on 127.0.0.1, for as long as needed.

    with served(model_dir, log_path) as (base_url, model):
        ...  # an OpenAI-compatible API: faco.data.teacher talks to it like to any other

Used where items are built with a real model and nothing outside this machine may be reached (the
`smol-ci` preset, the teacher integration test). The server gets one thread and faco's pinned numerics
(two cores are shared with the process that waits on it; greedy replies then match on any machine), and
is stopped on the way out, also when the body fails; it and the processes it starts end with the process
that started them, also one killed with `kill -9` (faco.core.lifetime).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faco.core import lifetime

HEALTH_TIMEOUT_S = 180  # measured: healthy after ~14 s on 2 idle cores, SmolLM2-135M; slower when shared


class ServeError(RuntimeError):
    """The server could not be started, or died; the message names its log file."""


@contextmanager
def served(model_dir: Path, log_path: Path, threads: int = 1) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of `model_dir` served on a free loopback port; the name is the path."""
    executable = Path(sys.executable).with_name("transformers")
    if not executable.exists():
        raise ServeError(f"no `transformers` CLI beside {sys.executable}: pip install 'transformers[serving]'")
    port = free_port()
    # os.environ carries faco's numerics pins (set on `import faco`): the server computes as faco does
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [str(executable), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
               "--dtype", "float32"]
    with log_path.open("w") as log, lifetime.tied(command, env=env, stdout=log, stderr=subprocess.STDOUT) as server:
        base_url = f"http://127.0.0.1:{port}/v1"
        _wait_healthy(server, base_url, log_path)
        yield base_url, str(model_dir)


def free_port() -> int:
    """A loopback port free now (the teacher server and `accelerate launch`'s rendezvous both need one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(server: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.time() + HEALTH_TIMEOUT_S
    while time.time() < deadline:
        if server.poll() is not None:
            raise ServeError(f"transformers serve exited with {server.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(base_url + "/models", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise ServeError(f"transformers serve not healthy after {HEALTH_TIMEOUT_S} s; see {log_path}")
