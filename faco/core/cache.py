"""The content-addressed artefact store every stage of faco goes through.

Datasets, checkpoints and evaluation results live under `root/<stage>/<key>/`, where the key hashes
the stage's config slice, its inputs' keys and a version of the stage's code: a changed world, seed,
step count or training code gives a new key, so a stale entry is never hit. An entry is a directory of
files plus a `MANIFEST.json` (size, sha256 and stat times of every file) written last; it appears by one
atomic rename, so a reader sees a whole entry or none. A file lock per key lets `pytest -n 2` workers build
each shared artefact once, and an entry that no longer matches its manifest is moved aside (kept as
evidence) and rebuilt, never used. A warm rerun therefore trains and evaluates nothing.

Verifying costs what it must, no more: the lock-free fast path (a warm read, `has`) trusts a file whose
size, mtime and ctime are the manifest's (a write through any file API changes them; ctime cannot be set
back) and hashes nothing; other times are a doubt, and the locked path (a miss, a doubt, after waiting)
re-hashes every file and then records the current times (a copied cache is hashed once, then trusted); `faco verify` re-hashes everything. What only a
full hash finds (a bit flipped on the disk under unchanged times) is `faco verify`'s. Files an entry gave
up on purpose (`evict`: an epoch's export once scored) are listed in the manifest as evicted, so the entry
still verifies, and a reader can tell a dropped file from a lost one.

    cache = Cache(Cache.default_root())
    key = cache_key("finetune", preset.finetune, inputs=(base_key, data_key),
                    code=code_version("faco.training.trainer"))
    checkpoint = cache.get_or_build("finetune", key, lambda out: train(..., out), describe="weak cr50")
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import textwrap
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import filelock

from faco.core import leases
from faco.core.digests import sha256_file

log = logging.getLogger("faco.core.cache")

MANIFEST = "MANIFEST.json"  # reserved name inside an entry; written by the cache, last
VALUE = "value.json"  # the one file of a `get_or_build_json` entry
_SCRATCH = f"{MANIFEST}.tmp"  # the manifest before its atomic rename; never part of an entry
_KEY_FORMAT = 1  # bump when the canonical form below changes: every old key then misses, none collides
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # stages and keys are single path components


BUILT: collections.Counter[str] = collections.Counter()  # entries this process built, by stage (what ran here)

PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, OSError)  # what reading a damaged file raises
# (json, UnicodeDecodeError and faco's ItemError are ValueErrors; a missing file an OSError)


class CacheError(RuntimeError):
    """An entry that cannot be trusted; the message names the entry, the file and what is wrong."""


# ---------------------------------------------------------------- keys


def code_version(*parts: types.ModuleType | str | type | Callable) -> str:
    """sha256 (first 16 hex) of the code that decides a stage's artefacts.

    A module (object or dotted name) counts with every faco module it imports, at any depth and also
    inside functions, so a stage names the modules it calls and what they call is keyed too. A class
    or function counts with its own source only (the study's build closures: what they import is named
    by the stage). Sources are compared as syntax trees without docstrings, so editing a comment, a
    docstring or the layout rebuilds nothing, while any change to what runs does. The order of the
    arguments does not matter.
    """
    if not parts:
        raise TypeError("code_version() needs at least one module")
    digests: dict[str, bytes] = {}
    for part in parts:
        if isinstance(part, (type, types.FunctionType)):
            digests[f"{part.__module__}.{part.__qualname__}"] = _object_digest(part)
            continue
        for name, filename in _closure(_module_file(part)).items():
            stat = os.stat(filename)
            digests[name] = _file_digest(filename, stat.st_mtime_ns, stat.st_size)
    digest = hashlib.sha256()
    for name in sorted(digests):
        digest.update(name.encode() + b"\0" + digests[name])
    return digest.hexdigest()[:16]


def _module_file(module: types.ModuleType | str) -> tuple[str, str]:
    """(dotted name, source file) of a module object or name; a name is located, not imported."""
    if isinstance(module, types.ModuleType):
        name, filename = module.__name__, getattr(module, "__file__", None)
    elif isinstance(module, str):
        found = importlib.util.find_spec(module)
        if found is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        name, filename = module, found.origin
    else:
        raise TypeError(f"code_version() takes modules, dotted names, classes or functions, got "
                        f"{type(module).__name__}: {module!r}")
    if not filename or not filename.endswith(".py"):
        raise TypeError(f"module {name!r} has no source file to version (built-in or namespace)")
    return name, filename


def _closure(root: tuple[str, str]) -> dict[str, str]:
    """{name: file} of a module and every faco module it imports, transitively."""
    found, todo = {}, [root]
    while todo:
        name, filename = todo.pop()
        if name in found:
            continue
        found[name] = filename
        stat = os.stat(filename)
        todo += [_module_file(imported) for imported in _faco_imports(filename, stat.st_mtime_ns, stat.st_size)
                 if imported not in found]
    return found


@functools.lru_cache(maxsize=256)  # keyed by mtime and size: an edited file is parsed again
def _faco_imports(filename: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """The faco modules a source file imports anywhere in it (`import faco.x`, `from faco import x`,
    `from faco.x import y`); `faco` itself only pins numerics and is left out."""
    names = set()
    for node in ast.walk(ast.parse(Path(filename).read_bytes())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("faco."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("faco."):
                names.add(node.module)
            if node.module == "faco" or node.module.startswith("faco."):  # `from faco.pkg import module`
                names.update(f"{node.module}.{alias.name}" for alias in node.names
                             if _is_module(f"{node.module}.{alias.name}"))
    return tuple(sorted(names))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # `from faco.x.y import name`: faco.x.y.name is no module, and y none either
        return False


def _object_digest(part: type | Callable) -> bytes:
    """Digest of a class's or function's own source. Finding that source is slow (inspect parses the whole
    module for a class) and every cache key of a run asks for the Study class's, so it is computed once
    per version of the file that holds it."""
    filename = inspect.getsourcefile(part)
    if filename is None or not os.path.exists(filename):
        return _tree_digest(textwrap.dedent(inspect.getsource(part)))
    stat = os.stat(filename)
    return _source_digest(part, filename, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)  # keyed by the file's mtime and size: an edited file is read again
def _source_digest(part: type | Callable, filename: str, mtime_ns: int, size: int) -> bytes:
    return _tree_digest(textwrap.dedent(inspect.getsource(part)))


@functools.lru_cache(maxsize=256)  # keyed by mtime and size: an edited file is hashed again
def _file_digest(filename: str, mtime_ns: int, size: int) -> bytes:
    return _tree_digest(Path(filename).read_text())


def _tree_digest(source: str) -> bytes:
    """sha256 of the syntax tree with docstrings dropped (comments and layout are not in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).digest()


def library_versions(*packages: str) -> dict[str, str | None]:
    """Installed versions of the libraries that compute a stage (None: not installed): a new torch,
    transformers or lm-eval may train or score differently, so they belong in the stage's key."""
    out: dict[str, str | None] = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def cache_key(stage: str, config: Any, inputs: Sequence[str] = (), code: str = "") -> str:
    """sha256 (first 24 hex) of a canonical JSON of stage, config, the inputs' keys and the code version.

    The config is a dataclass (its fields, recursively) or any JSON value. Dict order is ignored,
    tuples and lists hash alike, and `1`, `1.0` and `True` hash apart (a spurious rebuild is cheap, a
    stale hit is not). The inputs' order matters: (base, data) is not (data, base).
    """
    if isinstance(inputs, str) or not all(isinstance(key, str) for key in inputs):
        raise TypeError(f"cache_key() inputs must be a sequence of key strings, got {inputs!r}")
    payload = {
        "format": _KEY_FORMAT,
        "stage": stage,
        "config": _canonical(config, "config"),
        "inputs": list(inputs),
        "code": code,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _canonical(value: Any, where: str) -> Any:
    """`value` as plain JSON types; `where` is its path in the config, for the error message."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value  # json writes repr(float): the shortest round-tripping form, the same on every platform
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_key(name, where): _canonical(item, f"{where}[{name!r}]") for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise TypeError(f"{where}: value of type {type(value).__name__} is not JSON-serialisable: {value!r}")


def _key(name: Any, where: str) -> str:
    if isinstance(name, str):
        return name
    if isinstance(name, int) and not isinstance(name, bool):
        return str(name)  # as json.dumps would write it
    raise TypeError(f"{where}: dict key of type {type(name).__name__} is not a string or int: {name!r}")


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class Cache:
    """Entries under `root/<stage>/<key>/`; siblings `<key>.lock`, `<key>.partial/`, `<key>.corrupt-*/`."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @staticmethod
    def default_root() -> Path:
        """`$FACO_CACHE_DIR`, else the user cache dir (e.g. ~/.cache/faco): shared by every checkout."""
        configured = os.environ.get("FACO_CACHE_DIR")
        if configured:
            return Path(configured).expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("faco"))

    def path(self, stage: str, key: str) -> Path:
        """The finished entry's directory (it may not exist yet)."""
        return self.root / _checked(stage, "stage") / _checked(key, "key")

    def has(self, stage: str, key: str) -> bool:
        """Whether the entry exists and matches its manifest (every file's size and sha256; a file whose
        stat times are the manifest's counts as unchanged without being hashed)."""
        return _intact(self.path(stage, key), stage, key) or _intact(self.path(stage, key), stage, key, fast=False)

    def check(self, stage: str, key: str) -> str | None:
        """None if the entry matches its manifest by every file's full sha256, else what is wrong (`faco verify`)."""
        try:
            _verify(self.path(stage, key), stage, key, fast=False)
        except (CacheError, OSError) as error:
            return str(error)
        return None

    def entries(self, stage: str | None = None) -> list[tuple[str, str]]:
        """(stage, key) of every finished entry (of `stage`), sorted; partial, corrupt and lock siblings left out."""
        stages = [self.root / _checked(stage, "stage")] if stage else sorted(p for p in self.root.glob("*") if p.is_dir())
        return [(where.name, entry.name) for where in stages if where.is_dir()
                for entry in sorted(where.iterdir()) if entry.is_dir() and _NAME.fullmatch(entry.name)]

    def evicted(self, stage: str, key: str) -> dict[str, str]:
        """{file: why} of the files the entry gave up on purpose ({} for none, or no entry)."""
        return {name: spec.get("why", "") for name, spec in _read_manifest(self.path(stage, key)).get("evicted", {}).items()}

    def evict(self, stage: str, key: str, prefix: str, why: str) -> int:
        """Drop the entry's files under `prefix` (e.g. "epoch-2/"), keeping the entry verifiable: under the key's
        lock the manifest first moves them to its evicted list (one atomic rewrite), then they are deleted, so
        a kill in between leaves a verifiable entry with a few stray files. Returns the bytes freed."""
        final = self.path(stage, key)
        if not any(name.startswith(prefix) for name in _listed(final)):
            return 0  # already dropped (a warm rerun): no lock, no hashing
        with self._lock(stage, key):
            if not (_intact(final, stage, key) or self._usable(final, stage, key)):  # on a doubt: hashed, or aside
                return 0
            manifest = json.loads((final / MANIFEST).read_text())
            names = [name for name in manifest["files"] if name.startswith(prefix)]
            evicted = manifest.setdefault("evicted", {})
            for name in names:
                evicted[name] = {**manifest["files"].pop(name), "why": why}
            if names:
                _write_manifest(final, manifest)
            freed = 0
            for name in names:
                path = final / name
                freed += path.stat().st_size if path.exists() else 0
                path.unlink(missing_ok=True)
            _prune_empty(final, prefix)
        if names:
            log.info("evicted %s/%s %s: %d file(s), %.1f MB (%s)", stage, key, prefix, len(names), freed / 1e6, why)
        return freed

    def workdir(self, stage: str, key: str) -> Path:
        """The entry's build directory `<key>.partial/`, created if absent.

        It is what `build` receives, and it survives a build that raises or is killed: a builder
        finds its own resume state here (e.g. the trainer's last checkpoint) and decides whether to
        use or clear it. Whatever it holds when `build` returns becomes the entry.
        """
        partial = self.path(stage, key).with_name(f"{key}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        return partial

    def get_or_build(self, stage: str, key: str, build: Callable[[Path], None], describe: str = "") -> Path:
        """The verified entry for (stage, key), built once by `build(workdir)` if missing or corrupt.

        A verified entry is returned without taking the lock; otherwise the key's file lock is taken,
        the entry re-checked (another worker may have built it), a corrupt one moved aside with a
        warning, and `build` run. If `build` raises, its workdir is kept for the next attempt.
        """
        final = self.path(stage, key)
        if _intact(final, stage, key):
            log.debug("hit %s/%s: %s", stage, key, describe)
            return final
        with self._lock(stage, key):
            if self._usable(final, stage, key):
                log.debug("hit %s/%s after waiting: %s", stage, key, describe)
                return final
            self._build(stage, key, build, describe)
        return final

    def get_or_build_json(self, stage: str, key: str, compute: Callable[[], Any], describe: str = "") -> Any:
        """The JSON value for (stage, key), computed once; always read back from the entry's file,
        so a cold and a warm run hand the caller the same thing (e.g. lists, never tuples)."""

        def build(workdir: Path) -> None:
            (workdir / VALUE).write_text(json.dumps(compute(), sort_keys=True, indent=1))

        return self.get_or_build_parsed(stage, key, build, lambda entry: json.loads((entry / VALUE).read_text()),
                                        describe)

    def get_or_build_parsed(self, stage: str, key: str, build: Callable[[Path], None], parse: Callable[[Path], Any],
                            describe: str = "") -> Any:
        """`parse(entry)` of the verified entry for (stage, key). The manifest is checked before `parse` reads
        anything; an entry that verifies but does not parse (its manifest rewritten to match, a builder that
        wrote garbage) is moved aside and rebuilt once, with one log line; a second failure is a CacheError."""
        entry = self.get_or_build(stage, key, build, describe)
        try:
            return parse(entry)
        except PARSE_ERRORS as error:
            with self._lock(stage, key):
                aside = _aside(entry)
                entry.rename(aside)
                log.warning("cache entry %s/%s (%s) does not parse (%s: %s); moved it aside to %s and rebuilding",
                            stage, key, describe, type(error).__name__, error, aside)
                self._build(stage, key, build, describe)
        try:
            return parse(entry)
        except PARSE_ERRORS as error:
            raise CacheError(f"cache entry {stage}/{key} ({entry}): rebuilt, and still does not parse: "
                             f"{type(error).__name__}: {error}") from None

    # -------------------------------------------------------- steps, all under the key's lock

    @contextlib.contextmanager
    def _lock(self, stage: str, key: str) -> Iterator[None]:
        """Hold the key's lock (one per process and thread); say so at INFO when we have to wait. A file lock
        on a local disk; a lease (faco.core.leases) where flock cannot be trusted: see `lock_kind`."""
        kind = lock_kind(self.root)
        path = self.path(stage, key).with_name(f"{key}.{kind}")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path) if kind == "lock" else leases.Lease(path)
        if not _acquire_now(lock):
            log.info("waiting for %s %s (another job is building %s/%s)", kind, path, stage, key)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _usable(self, final: Path, stage: str, key: str) -> bool:
        """True for a verified entry (every file hashed, then its current stat times recorded); a corrupt one
        is moved aside (never deleted) and False returned."""
        if not final.exists():
            return False
        try:
            _verify(final, stage, key, fast=False)
        except CacheError as error:
            aside = _aside(final)
            final.rename(aside)
            log.warning("%s; moved it aside to %s and rebuilding", error, aside)
            return False
        _restamp(final)
        return True

    def _build(self, stage: str, key: str, build: Callable[[Path], None], describe: str) -> None:
        workdir = self.workdir(stage, key)
        log.info("build %s/%s: %s", stage, key, describe)
        start = time.perf_counter()
        try:
            build(workdir)
        except BaseException:
            took = time.perf_counter() - start
            log.warning("build %s/%s failed after %.1f s; kept its work in %s", stage, key, took, workdir)
            raise
        if not workdir.is_dir():
            raise CacheError(f"build {stage}/{key}: the builder removed its workdir {workdir}")
        _seal(workdir, stage, key, describe)
        self._publish(workdir, self.path(stage, key), stage, key)
        BUILT[stage] += 1
        log.info("built %s/%s: %s (took %.1f s)", stage, key, describe, time.perf_counter() - start)

    def _publish(self, workdir: Path, final: Path, stage: str, key: str) -> None:
        """Rename the sealed workdir into place; a verified entry already there wins over ours."""
        if self._usable(final, stage, key):
            log.info("%s/%s appeared during the build; discarding ours", stage, key)
            shutil.rmtree(workdir)
            return
        os.replace(workdir, final)  # the target is absent here, so this is one atomic rename
        _fsync_dir(final.parent)


# ---------------------------------------------------------------- locks

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "fuse.sshfs", "ceph",
                       "fuse.ceph", "glusterfs", "fuse.glusterfs", "panfs", "wekafs", "9p")


def lock_kind(root: Path) -> str:
    """"lock" (flock, through filelock) on a local disk, "lease" on a network filesystem, where flock may be
    emulated or local to one node; $FACO_CACHE_LOCK = lock | lease decides instead."""
    configured = os.environ.get("FACO_CACHE_LOCK", "")
    if configured:
        if configured not in ("lock", "lease"):
            raise CacheError(f"FACO_CACHE_LOCK={configured!r}: expected 'lock' (flock) or 'lease' (shared filesystems)")
        return configured
    return "lease" if _filesystem_of(Path(root)) in NETWORK_FILESYSTEMS else "lock"


@functools.lru_cache(maxsize=64)
def _filesystem_of(root: Path) -> str:
    return filesystem(root)


def filesystem(path: Path) -> str:
    """The type of the filesystem `path` (or its nearest existing parent) lies on, from /proc/mounts; "" elsewhere."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    path = path.resolve()
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ")
            if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def _acquire_now(lock: filelock.FileLock | leases.Lease) -> bool:
    if isinstance(lock, leases.Lease):
        return lock.acquire(blocking=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    return True


# ---------------------------------------------------------------- manifest


def _seal(workdir: Path, stage: str, key: str, describe: str) -> None:
    """Flush every file to disk and write the manifest last (atomically), so it vouches for them."""
    files = {}
    for name in _files(workdir):
        path = workdir / name
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        files[name] = {"sha256": sha256_file(path), **_stamp(path)}
    manifest = {
        "stage": stage,
        "key": key,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "describe": describe,
        "files": files,
    }
    _write_manifest(workdir, manifest)


def _stamp(path: Path) -> dict[str, int]:
    """What the fast check compares: the size, and the times any write changes (ctime even a utime call)."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Replace `directory`'s manifest in one atomic rename, flushed: a reader sees the old one or the new."""
    scratch = directory / _SCRATCH
    with scratch.open("w") as handle:
        json.dump(manifest, handle, sort_keys=True, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, directory / MANIFEST)
    _fsync_dir(directory)


def _restamp(entry: Path) -> None:
    """After a full hash passed: record the files' current stat times (a copied cache, an old manifest
    without them), so the next lock-free read needs no hashing. Called under the key's lock."""
    manifest = json.loads((entry / MANIFEST).read_text())
    stamped = {name: {**spec, **_stamp(entry / name)} for name, spec in manifest["files"].items()}
    if stamped != manifest["files"]:
        _write_manifest(entry, {**manifest, "files": stamped})


def _verify(entry: Path, stage: str, key: str, fast: bool = True) -> None:
    """Raise CacheError naming the entry, the file and the fault unless the entry matches its manifest. `fast`:
    files are compared by size and stat times, none hashed; any other time is a doubt (see the module's
    docstring): the locked path re-hashes."""
    where = f"cache entry {stage}/{key} ({entry})"
    if not entry.is_dir():
        raise CacheError(f"{where}: missing or not a directory")
    files, evicted = _manifest_files(entry, where)
    found = set(_files(entry))
    if missing := sorted(set(files) - found):
        raise CacheError(f"{where}: file(s) {', '.join(map(repr, missing))} listed in the manifest are missing")
    if extra := sorted(found - set(files) - evicted):  # an evicted file still there: an eviction cut short
        raise CacheError(f"{where}: file(s) {', '.join(map(repr, extra))} are not in the manifest")
    stamps = {}
    for name, expected in sorted(files.items()):  # sizes first: a truncation is found without hashing
        stamps[name] = _stamp(entry / name)
        if stamps[name]["size"] != expected["size"]:
            raise CacheError(f"{where}: file {name!r} has size {stamps[name]['size']}, manifest says {expected['size']}")
    if fast:
        if changed := [name for name, expected in sorted(files.items())
                       if any(expected.get(field) != stamps[name][field] for field in ("mtime_ns", "ctime_ns"))]:
            raise CacheError(f"{where}: file(s) {', '.join(map(repr, changed[:3]))} have other stat times than "
                             "the manifest's (to be re-hashed)")
        return
    for name, expected in sorted(files.items()):
        if sha256_file(entry / name) != expected["sha256"]:
            raise CacheError(f"{where}: file {name!r} fails its sha256 checksum")


def _manifest_files(entry: Path, where: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The manifest's files table and the names of the files it lists as evicted."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except FileNotFoundError:
        raise CacheError(f"{where}: no {MANIFEST} (an unfinished or foreign directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheError(f"{where}: bad {MANIFEST}: {error}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(_well_formed(spec) for spec in files.values()):
        raise CacheError(f"{where}: bad {MANIFEST}: no well-formed 'files' table")
    if (manifest.get("stage"), manifest.get("key")) != (entry.parent.name, entry.name):
        found = f"{manifest.get('stage')}/{manifest.get('key')}"
        raise CacheError(f"{where}: bad {MANIFEST}: it describes {found}")
    evicted = manifest.get("evicted", {})
    if not isinstance(evicted, dict):
        raise CacheError(f"{where}: bad {MANIFEST}: its 'evicted' table is no table")
    return files, set(evicted)


def _well_formed(spec: Any) -> bool:
    return isinstance(spec, dict) and isinstance(spec.get("sha256"), str) and isinstance(spec.get("size"), int)


def _read_manifest(entry: Path) -> dict[str, Any]:
    """The entry's manifest as stored, {} if it has none readable (the checks above say what is wrong)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _listed(entry: Path) -> list[str]:
    files = _read_manifest(entry).get("files")
    return list(files) if isinstance(files, dict) else []


def _intact(entry: Path, stage: str, key: str, fast: bool = True) -> bool:
    """The lock-free check of the fast path: any doubt sends the caller to the locked path."""
    try:
        _verify(entry, stage, key, fast)
    except (CacheError, OSError):
        return False
    return True


# ---------------------------------------------------------------- small helpers


def _files(directory: Path) -> list[str]:
    """Every file below `directory` as a relative POSIX path, the manifest itself excluded."""
    found = []
    for parent, _, names in os.walk(directory):
        for name in names:
            relative = (Path(parent) / name).relative_to(directory).as_posix()
            if relative not in (MANIFEST, _SCRATCH):
                found.append(relative)
    return sorted(found)


def _prune_empty(entry: Path, prefix: str) -> None:
    """Remove the directories under `entry` that `prefix` names and eviction left empty, deepest first."""
    top = entry / prefix.rstrip("/") if prefix.endswith("/") else None
    if top is None or not top.is_dir():
        return
    for parent, _, _ in sorted(os.walk(top), key=lambda walked: -len(walked[0])):
        with contextlib.suppress(OSError):  # not empty: a stray file an interrupted eviction left stays listed
            os.rmdir(parent)


def _aside(final: Path) -> Path:
    """A fresh `<key>.corrupt-<timestamp>` sibling: the evidence is kept, never overwritten."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    aside = final.with_name(f"{final.name}.corrupt-{stamp}")
    counter = 0
    while aside.exists():
        counter += 1
        aside = final.with_name(f"{final.name}.corrupt-{stamp}-{counter}")
    return aside


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable (POSIX only; Windows cannot open a dir)."""
    if os.name != "posix":
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _checked(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"cache {what} {name!r} must be letters, digits, '_' or '-' (one path component)")
    return name
