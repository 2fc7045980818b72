"""A lock for a cache on a shared filesystem, where `flock` cannot be trusted.

On NFS (and Lustre, GPFS, BeeGFS, CIFS mounts) `flock` is emulated, local to one client, or off, depending on
the mount; two cluster jobs on two nodes could then both build one entry. What such filesystems do keep
atomic is `mkdir` and `rename`, so the lease is made of those:

- taking it is `mkdir <key>.lease` (exactly one caller succeeds), then writing a file named after the
  holder (host, process, Slurm job) inside;
- the holder touches that file every `heartbeat_s` from a daemon thread;
- a waiter breaks a lease whose holder is dead: at once when the holder ran on this host and its process is
  gone, else when the file has not changed for `stale_s` of the waiter's own clock (no clock of another node
  is compared). Breaking is a rename to a unique name, then a check that what was moved is the lease judged
  dead; a fresh lease moved by a race is put back.

What a lease cannot promise is mutual exclusion under every interleaving (a holder frozen longer than
`stale_s`, a race while breaking); what makes that harmless is the cache's publish step, which needs no
lock: an entry appears by one atomic rename of a sealed directory, and a verified entry already in place
wins over a second build (faco.core.cache). The worst case is work done twice, never a wrong entry.

    with Lease(Path("cache/finetune/abc.lease")):
        ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("faco.core.leases")

HEARTBEAT_S = 10.0
STALE_S = 90.0  # several missed heartbeats: a holder this silent is dead (or frozen: see the module doc)
POLL_S = 1.0


def holder() -> str:
    """This process's name in a lease: host, pid and, in a Slurm job, its id."""
    job = os.environ.get("SLURM_JOB_ID", "")
    return f"{socket.gethostname()}+{os.getpid()}+{job}+{uuid.uuid4().hex[:8]}"


class Lease:
    """A mkdir-based lock with heartbeats (see the module doc); re-entrant per object, not per process."""

    def __init__(self, path: Path, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S,
                 poll_s: float = POLL_S) -> None:
        self.path = Path(path)
        self.heartbeat_s, self.stale_s, self.poll_s = heartbeat_s, stale_s, poll_s
        self.name = ""
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    def acquire(self, blocking: bool = True) -> bool:
        watched: tuple[str, float] | None = None  # (what the lease looked like, since when on our clock)
        while True:
            if self._try_take():
                return True
            if not blocking:
                return False
            seen = _owner(self.path)
            if seen is None:  # released between our mkdir and our look
                continue
            if watched is None or watched[0] != seen:
                watched = (seen, time.monotonic())
            if _dead_here(seen[0]) or time.monotonic() - watched[1] > self.stale_s:
                self._break(seen)
                watched = None
                continue
            time.sleep(self.poll_s)

    def release(self) -> None:
        self._stop.set()
        if self._beating is not None:
            self._beating.join()
        held = _owner(self.path)
        if held is None or held[0] != self.name:
            log.warning("lease %s was broken while held (a holder silent for %.0f s looks dead); another process "
                        "may build the same entry: harmless, the first verified entry wins", self.path, self.stale_s)
            return
        aside = self.path.with_name(f"{self.path.name}.released-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path, aside)
            shutil.rmtree(aside, ignore_errors=True)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ---------------------------------------------------------------- steps

    def _try_take(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.path)
        except FileExistsError:
            return False
        self.name = holder()
        (self.path / self.name).write_text(f"{time.time()}\n")
        self._stop.clear()
        self._beating = threading.Thread(target=self._beat, name=f"lease {self.path.name}", daemon=True)
        self._beating.start()
        return True

    def _beat(self) -> None:
        beats = 0
        while not self._stop.wait(self.heartbeat_s):
            beats += 1
            with contextlib.suppress(OSError):  # broken under us: release() says so
                (self.path / self.name).write_text(f"{time.time()} {beats}\n")

    def _break(self, seen: tuple[str, float]) -> None:
        aside = self.path.with_name(f"{self.path.name}.broken-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else broke or released it
        moved = _owner(aside)
        if moved is not None and moved[0] != seen[0]:  # a fresh lease, taken after our look: put it back
            with contextlib.suppress(OSError):
                os.rename(aside, self.path)
                return
        log.warning("broke the lease %s of %s (its holder is gone)", self.path, seen[0])
        shutil.rmtree(aside, ignore_errors=True)


def _owner(path: Path) -> tuple[str, float] | None:
    """(holder, the mtime of its heartbeat file) of the lease at `path`; None if there is no lease."""
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not names:
        return ("", 0.0)  # taken a moment ago, its holder file not yet written
    try:
        return names[0], os.stat(path / names[0]).st_mtime
    except FileNotFoundError:
        return None


def _dead_here(name: str) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    host, _, rest = name.partition("+")
    pid = rest.partition("+")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
