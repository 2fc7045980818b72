"""Processes tied to their parent: no server, launched command or pool worker outlives the faco process
that started it, however that process ends.

    with tied([...], stdout=log) as process:  # a process group of its own, ended with everything in it
        ...
    ProcessPoolExecutor(..., initializer=init, initargs=(os.getpid(),))  # init calls die_with_parent(parent)

Why: a bare subprocess outlives a parent killed with `kill -9` (no `finally` runs), reparented to PID 1:
`transformers serve` then listens on 127.0.0.1 for ever, and pool workers wait for work for ever. Each
way the parent can end has its mechanism:

- the `with` block ends (normally, by an exception, Ctrl+C, or SIGTERM, which `tied` turns into
  KeyboardInterrupt while the child runs): SIGTERM to the child, then to what is left of its process group
  (the processes it started), SIGKILL to whatever outlives the grace period;
- the parent dies without cleanup: the kernel sends the child SIGTERM (Linux's parent-death signal,
  `die_with_parent`), and a watcher process (`watch`, in a session of its own, out of reach of a signal
  sent to its parent's group) ends the whole group: a child's own children get no parent-death signal;
- a pool worker starts no processes: the parent-death signal, set in its initializer, is enough.

The parent-death signal fires when the *thread* that started the child ends, not the process: start the
child from the thread that waits on it (a `with` block, a pool that its caller waits on; the main thread
in faco). The signal is Linux's (`prctl`), like faco's machines; elsewhere only the `with` block's cleanup
and the watcher act.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GRACE_S = 20.0  # SIGTERM to SIGKILL: room for a graceful stop (measured: `transformers serve` stops in ~1.5 s)
WATCH_S = 0.2  # how often the watcher looks at its parent and the group
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# resolved here, in the parent: a forked child then calls it without loading anything (see `tied`)
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
# the watcher imports this module from the directory this process imports it from, whatever its cwd
_WATCHER = "import sys; sys.path.insert(0, sys.argv.pop(1)); from faco.core.lifetime import watch; watch(*sys.argv[1:])"


def die_with_parent(parent: int) -> None:
    """In a child of `parent` (a Popen `preexec_fn`, a pool's initializer): the kernel sends this process
    SIGTERM when its parent's starting thread ends; exits at once if the parent is already gone."""
    if _prctl is None:
        return
    if _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # it died before the signal was armed: the kernel will not send it now
        os._exit(1)


def exit_with(owner: int, interval_s: float = 1.0) -> None:
    """In a process whose owner is not its parent (a local job, which submitit's controller starts): a daemon
    thread ends this process once `owner` is gone, so a build killed with `kill -9` leaves no job training
    on. Its own children were started `tied`, so the parent-death signal ends them in turn."""

    def wait_for_owner() -> None:
        while True:
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                return  # a pid reused by another user's process: the owner is gone, but so is our right to guess
            time.sleep(interval_s)

    threading.Thread(target=wait_for_owner, name="exit with owner", daemon=True).start()


@contextmanager
def tied(command: list[str], grace_s: float = GRACE_S, **popen) -> Iterator[subprocess.Popen]:
    """`subprocess.Popen(command, **popen)` as the leader of a new process group, tied to this process:
    when the block ends, it and everything in its group get SIGTERM, then SIGKILL after `grace_s`; when
    this process dies, the parent-death signal and the watcher do the same. stdin is /dev/null unless
    given: a process outside the terminal's foreground group must not read it.

    `preexec_fn` runs Python in the forked child, which is unsafe where another thread holds a lock the
    child needs; `die_with_parent` takes none: one call of a C function resolved at import, `os.getppid`."""
    parent = os.getpid()
    popen = {"stdin": subprocess.DEVNULL, **popen}
    with _sigterm_interrupts(), subprocess.Popen(command, process_group=0, **popen,
                                                 preexec_fn=functools.partial(die_with_parent, parent)) as process:
        watcher = None
        try:
            watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(Path(__file__).parents[1]), str(parent),
                                        str(process.pid), str(grace_s)], start_new_session=True,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            yield process
        finally:
            _stop(process, grace_s)
            if watcher is not None:
                watcher.kill()
                watcher.wait()


def watch(parent: str, group: str, grace_s: str) -> None:
    """The watcher's process: waits while `parent` lives and `group` has a process, then ends `group`."""
    while os.getppid() == int(parent):
        if not _signal_group(int(group), 0):  # the group ended by itself
            return
        time.sleep(WATCH_S)
    end_group(int(group), float(grace_s))


def end_group(group: int, grace_s: float) -> None:
    """SIGTERM to every process of process group `group`, SIGKILL to those alive after `grace_s`."""
    if not _signal_group(group, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if not _signal_group(group, 0):
            return
    _signal_group(group, signal.SIGKILL)


def _stop(process: subprocess.Popen, grace_s: float) -> None:
    """The leader first (a server stops its own workers on SIGTERM), then what is left of its group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    end_group(process.pid, grace_s)


def _signal_group(group: int, number: int) -> bool:
    """Send signal `number` (0: none, a check) to `group`; False when no process is left in it."""
    try:
        os.killpg(group, number)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a tied child runs, SIGTERM raises KeyboardInterrupt in this process, as Ctrl+C does, so
    `finally` blocks and pytest's teardown run (by default SIGTERM ends Python at once, running none).
    Safe where Ctrl+C is: the exception comes at the same points. Only from the main thread (the one a
    handler runs in) and only over the default action: a handler someone else installed is left alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt(number: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(number).name}")
