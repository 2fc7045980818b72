"""A warm cache read: the full re-hash of an entry against the fast check by size and stat times.

    python benchmarks/warm_read.py [--mb 200] [--files 4] [--rounds 3]

Builds one entry of `mb` MB in `files` files in a temporary cache, then times `Cache.has` on it as a warm
run sees it (fast: sizes, mtimes and ctimes against the manifest) and the full sha256 re-hash the locked
path and `faco verify` do (`Cache.check`). The file pages are in the OS cache after the build, so the
re-hash here is hashing-bound; a cold disk adds its read time (a 26 GB 13B export: minutes) on top.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from faco.core.cache import Cache


def build(root: Path, mb: int, files: int) -> Cache:
    cache = Cache(root)

    def write(out: Path) -> None:
        for index in range(files):
            (out / f"model-{index}.safetensors").write_bytes(os.urandom(mb * 1_000_000 // files))

    cache.get_or_build("finetune", "bench", write, describe=f"{mb} MB in {files} files")
    return cache


def time_it(action, rounds: int) -> float:  # noqa: ANN001
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        assert action()
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faco-warm-read-") as root:
        cache = build(Path(root), args.mb, args.files)
        fast = time_it(lambda: cache.has("finetune", "bench"), args.rounds)
        full = time_it(lambda: cache.check("finetune", "bench") is None, args.rounds)
    print(f"warm read of one {args.mb} MB entry ({args.files} files), best of {args.rounds}:")
    print(f"  {'check':<48} {'seconds':>10}")
    print(f"  {'Cache.has: sizes + stat times (fast path)':<48} {fast:>10.5f}")
    print(f"  {'Cache.check: full sha256 (locked path, verify)':<48} {full:>10.5f}")
    print(f"  {'speedup':<48} {full / fast:>9.0f}x")


if __name__ == "__main__":
    main()
