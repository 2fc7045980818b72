"""No process is left behind (faco.core.lifetime): a child faco starts, and every process that child starts,
ends with the faco process, also one killed with `kill -9`; pool workers exit when their parent is gone.

    python -m pytest unit_tests/test_lifetime.py -q                 # a few seconds
    python -m pytest unit_tests/test_lifetime.py -q -m slow        # also the real teacher server and pool

Real processes throughout: a parent Python process starts children through faco, the test kills it and
looks for survivors. Every process of one test carries an environment marker the test sets in its parent
(children inherit the environment, whatever becomes of their parent or group); the test finds them by
reading /proc/PID/environ (Linux's /proc, no third-party package), skips zombies (they hold nothing),
and kills what is left at the end, so a failing test leaves no process behind either.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from faco.core import lifetime
from faco.models.serve import free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal and /proc are Linux's")

MARK = "FACO_LIFETIME_TEST"
GONE_S = 10  # the parent's death to no survivor: measured well under 2 s (a 1 s grace included)
PROJECT = str(Path(__file__).resolve().parents[1])  # the parent script imports this checkout's faco

# a child that listens on a port and starts a grandchild holding the same socket, which ignores SIGTERM
# (a stuck worker): only a SIGKILL to the whole group frees the port
STUBBORN = """
import signal, socket, subprocess, sys, time
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
grandchild = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", grandchild], pass_fds=[listener.fileno()])
print("listening", flush=True)
time.sleep(600)
"""
SLEEPER = "import time; time.sleep(600)"  # prints nothing: a write to its dead parent's pipe would end it


@pytest.fixture
def marker():
    """A fresh marker value; every marked process still alive at the end is killed."""
    token = uuid.uuid4().hex
    yield token
    for pid in marked(token):
        os.kill(pid, signal.SIGKILL)


def marked(token: str) -> list[int]:
    """The live (non-zombie) processes whose environment carries MARK=token."""
    needle = f"{MARK}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0") \
                    and (entry / "stat").read_text().rpartition(")")[2].split()[0] != "Z":
                found.append(int(entry.name))
        except OSError:  # ended while we looked
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # ended while we looked
        return ""


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_parent(script: str, token: str, log: Path, *args: str) -> subprocess.Popen:
    """A Python process running `script`, marked with `token`: its stdout piped, its stderr to `log`."""
    path = os.pathsep.join(filter(None, [PROJECT, os.environ.get("PYTHONPATH")]))
    with log.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-c", script, *args], env={**os.environ, MARK: token, "PYTHONPATH": path},
                                stdout=subprocess.PIPE, stderr=stderr, text=True)


def failed(parent: subprocess.Popen, log: Path) -> str:
    """What a parent that did not get where the test waited for said (killed first: it may be waiting)."""
    parent.kill()
    parent.wait()
    return log.read_text()


def tied_parent(child: str, *args: str, grace_s: float = 1) -> str:
    """The script of a parent that runs `child` (a Python script) under `lifetime.tied` and then sleeps."""
    return (f"import sys, time\nfrom faco.core import lifetime\n"
            f"with lifetime.tied([sys.executable, '-c', {child!r}, *sys.argv[1:]], grace_s={grace_s}) as child:\n"
            f"    time.sleep(600)\n")


def watchers(token: str) -> list[int]:
    """The marked processes running faco's watcher (`python -c "...lifetime import watch..."`)."""
    return [pid for pid in marked(token) if "lifetime import watch" in cmdline(pid)]


def started(parent: subprocess.Popen, token: str) -> list[str]:
    """The command lines of what `parent` started, the watcher left out (it is faco's, not the test's)."""
    return [cmdline(pid) for pid in marked(token) if pid != parent.pid and "lifetime import watch" not in cmdline(pid)]


def kill_and_check(parent: subprocess.Popen, token: str, port: int | None = None) -> None:
    """SIGKILL `parent` (no cleanup runs in it); within GONE_S nothing it started is alive, the port is free."""
    parent.kill()
    parent.wait()
    assert wait_for(lambda: not marked(token), GONE_S), [cmdline(pid) for pid in marked(token)]
    if port is not None:
        assert port_free(port)


def test_a_killed_parent_leaves_no_process_and_frees_the_port(marker, tmp_path):
    port, log = free_port(), tmp_path / "parent.log"
    parent = start_parent(tied_parent(STUBBORN), marker, log, str(port))
    assert wait_for(lambda: listening(port) and len(started(parent, marker)) == 2, 20), failed(parent, log)
    kill_and_check(parent, marker, port)


def test_the_child_gets_sigterm_when_its_parent_dies_even_without_the_watcher(marker, tmp_path):
    log = tmp_path / "parent.log"
    parent = start_parent(tied_parent(SLEEPER), marker, log)
    # parent, watcher, child; a process forked but not yet exec'd still shows its parent's command line
    assert wait_for(lambda: len(marked(marker)) == 3 and watchers(marker), 20), failed(parent, log)
    watcher, = watchers(marker)
    os.kill(watcher, signal.SIGKILL)  # only the parent-death signal is left to end the child
    kill_and_check(parent, marker)


def test_sigterm_to_the_parent_runs_its_cleanup(marker, tmp_path):
    """SIGTERM ends Python without running `finally` blocks; while a tied child runs, it is Ctrl+C."""
    log = tmp_path / "parent.log"
    parent = start_parent(tied_parent(SLEEPER), marker, log)
    assert wait_for(lambda: started(parent, marker), 20), failed(parent, log)
    parent.send_signal(signal.SIGTERM)
    parent.wait(GONE_S)
    stderr = log.read_text()
    assert parent.returncode != -signal.SIGTERM and "KeyboardInterrupt: signal SIGTERM" in stderr, stderr
    assert not marked(marker)  # stopped by the parent itself, before it exited


def test_the_end_of_the_block_ends_the_whole_group(marker):
    port = free_port()
    env = {**os.environ, MARK: marker}
    with lifetime.tied([sys.executable, "-c", STUBBORN, str(port)], grace_s=1, env=env,
                       stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline() == "listening\n"
        assert wait_for(lambda: len(marked(marker)) == 2, 10)  # child and grandchild (the watcher is unmarked)
        assert os.getpgid(child.pid) == child.pid != os.getpgrp()  # a process group of its own
    assert not marked(marker) and port_free(port)


def test_a_launched_command_dies_with_its_parent(marker, tmp_path):
    script = f"import sys\nfrom faco.training import launch\nlaunch.run([sys.executable, '-c', {SLEEPER!r}], 'sleeper')\n"
    log = tmp_path / "parent.log"
    parent = start_parent(script, marker, log)
    assert wait_for(lambda: started(parent, marker), 20), failed(parent, log)
    kill_and_check(parent, marker)


# --- the real processes: `transformers serve` and a local build -------------------------------------------

SERVED = """
import sys, time
from pathlib import Path
from faco.models.serve import served
with served(Path(sys.argv[1]), Path(sys.argv[2])) as (base_url, model):
    print(base_url, flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.server
def test_a_killed_parent_stops_the_teacher_server(marker, tmp_path):
    """The served-teacher build killed while `transformers serve` (and the model process it spawns) is up."""
    from test_teacher_server import checkpoint, smollm2_gguf  # pytest puts unit_tests/ on sys.path

    model_dir = checkpoint(smollm2_gguf())
    if not Path(sys.executable).with_name("transformers").exists():
        pytest.skip("no `transformers` CLI next to python: pip install 'transformers[serving]'")
    log = tmp_path / "parent.log"
    parent = start_parent(SERVED, marker, log, str(model_dir), str(tmp_path / "serve.log"))
    base_url = parent.stdout.readline().strip()  # once the server answers
    assert base_url.startswith("http://127.0.0.1:"), failed(parent, log) + (tmp_path / "serve.log").read_text()
    server = [cmdline(pid) for pid in marked(marker)]
    assert sum("transformers serve" in line for line in server) == 1 and len(server) >= 4, server  # and children
    kill_and_check(parent, marker, int(base_url.rsplit(":", 1)[1].split("/")[0]))


PREBUILD = """
import sys
from pathlib import Path
from faco.config.load import override, smoke
from faco.findings import registry
from faco.study import execution
preset = override(smoke(), "execution.parallelism=2")
reads = registry.reads([("recovery", {"faco_base": "strong", "faco_group": "heldout"})], preset)
root = Path(sys.argv[1])
execution.execute(preset, root, execution.plan(preset, root, [0, 1], execution.wanted(reads)))
"""


@pytest.mark.slow
def test_local_jobs_exit_when_the_build_that_waits_for_them_is_killed(marker, tmp_path):
    log = tmp_path / "parent.log"
    parent = start_parent(PREBUILD, marker, log, str(tmp_path / "cache"))

    def jobs() -> list[int]:
        return [pid for pid in marked(marker) if "submitit.core._submit" in cmdline(pid)]

    assert wait_for(lambda: len(jobs()) == 2, 60), failed(parent, log)
    time.sleep(3)  # the jobs past their start, at work
    kill_and_check(parent, marker)
