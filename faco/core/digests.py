"""Content digests: what a file or a set of files holds, never where it lies.

Cache keys name inputs by digest (a base's weights, a teacher's, the source files a build reads, the
local benchmark files a study scores on), so the same files moved elsewhere hit the cache and a changed
file misses it; the cache's manifests check each entry's files by the same sha256.

    sha256_file(path)                            # one file, full hex
    files_digest(root, [root / "a.jsonl", ...])  # several, with their names under `root`: 24 hex
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def sha256_file(path: Path) -> str:
    """sha256 (hex) of the file's bytes, read in chunks: a 14 GB checkpoint never sits in memory."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def files_digest(root: Path, files: Iterable[Path]) -> str:
    """sha256 (first 24 hex) of `files`, in the order given, each as its path relative to `root` and its
    bytes: a renamed, added, dropped or edited file is another digest, a moved `root` the same one."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(Path(file).relative_to(root)).encode() + b"\0" + Path(file).read_bytes())
    return digest.hexdigest()[:24]
