"""The lease lock (faco.core.leases) a cache on a shared filesystem takes instead of flock: one holder at a
time between processes, a dead holder's lease broken (at once on this host, after `stale_s` of silence
elsewhere), a live holder's never, and the cache's choice of lock by filesystem.

    python -m pytest unit_tests/test_leases.py -q
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from faco.core import cache, leases
from faco.core.cache import Cache, CacheError


def hold(path: str, log: str, seconds: float) -> None:
    """In a process: take the lease, note when, hold it `seconds`, note when, release."""
    with leases.Lease(Path(path), heartbeat_s=0.1, poll_s=0.05):
        with open(log, "a") as out:
            out.write(f"in {time.time()}\n")
        time.sleep(seconds)
        with open(log, "a") as out:
            out.write(f"out {time.time()}\n")


def test_one_holder_at_a_time_between_processes(tmp_path):
    log = tmp_path / "log"
    context = multiprocessing.get_context("spawn")
    holders = [context.Process(target=hold, args=(str(tmp_path / "k.lease"), str(log), 0.5)) for _ in range(3)]
    for process in holders:
        process.start()
    for process in holders:
        process.join(60)
        assert process.exitcode == 0
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["in", "out"] * 3  # never two inside
    assert not (tmp_path / "k.lease").exists()


def test_a_dead_holder_on_this_host_is_broken_at_once(tmp_path):
    path = tmp_path / "k.lease"
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    path.mkdir()
    (path / f"{os.uname().nodename}+{dead.pid}++0").write_text("0\n")
    start = time.monotonic()
    lease = leases.Lease(path, stale_s=30)
    assert lease.acquire() and time.monotonic() - start < 5
    lease.release()


def test_a_silent_holder_elsewhere_is_broken_after_stale_s_and_a_beating_one_never(tmp_path):
    silent = tmp_path / "silent.lease"
    silent.mkdir()
    (silent / "another-node+123+77+abcd").write_text("0\n")
    lease = leases.Lease(silent, stale_s=1.0, poll_s=0.1)
    start = time.monotonic()
    assert lease.acquire()
    assert 1.0 <= time.monotonic() - start < 10
    lease.release()

    beating = leases.Lease(tmp_path / "beating.lease", heartbeat_s=0.1)
    assert beating.acquire()
    waiter = leases.Lease(tmp_path / "beating.lease", stale_s=1.0, poll_s=0.1)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert not waiter.acquire(blocking=False)
        time.sleep(0.2)
    beating.release()
    assert waiter.acquire(blocking=False)
    waiter.release()


def build_shared(root: str) -> object:
    def build() -> str:
        with open(Path(root) / "builds", "a") as out:
            out.write("built\n")
        time.sleep(1.0)
        return "value"

    return Cache(Path(root) / "cache").get_or_build_json("shared", "one", build)


def test_two_processes_build_one_entry_once_under_the_lease(tmp_path, monkeypatch):
    monkeypatch.setenv("FACO_CACHE_LOCK", "lease")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(build_shared, [str(tmp_path)] * 2) == ["value", "value"]
    assert (tmp_path / "builds").read_text() == "built\n"
    assert not list((tmp_path / "cache" / "shared").glob("one.lease*"))


def test_the_cache_takes_a_lease_on_network_filesystems_and_flock_elsewhere(tmp_path, monkeypatch):
    monkeypatch.delenv("FACO_CACHE_LOCK", raising=False)
    assert cache.lock_kind(tmp_path) == "lock"
    monkeypatch.setattr(cache, "_filesystem_of", lambda root: "nfs4")
    assert cache.lock_kind(tmp_path) == "lease"
    monkeypatch.setenv("FACO_CACHE_LOCK", "lock")
    assert cache.lock_kind(tmp_path) == "lock"
    monkeypatch.setenv("FACO_CACHE_LOCK", "flock")
    with pytest.raises(CacheError, match="FACO_CACHE_LOCK='flock': expected 'lock'"):
        cache.lock_kind(tmp_path)
