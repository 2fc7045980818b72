"""Presets are TOML files: every built-in one loads and validates, `tiny` and `smoke` are exactly the
Python-built presets they replaced (so cache keys and stored baselines stay valid), a user's own file
loads, and a wrong key or type names the file and the field.

    python -m pytest unit_tests/test_presets.py -q
"""

from __future__ import annotations

import dataclasses

import pytest

from faco.config import load
from faco.config.schema import BaseSpec, ConfigError, DomainSpec, EvalConfig, FinetuneConfig, ItemsConfig, LoraConfig, ModelConfig, Preset, PretrainConfig, WorldConfig
from faco.config.load import load_preset, override

# The Python construction of tiny and smoke before the presets became files, kept verbatim: the
# loaded files must equal it field for field.
TINY_DOMAINS = (
    DomainSpec("geography", "knowledge", training=True),
    DomainSpec("chemistry", "science", training=True),
    DomainSpec("household", "commonsense", training=True),
    DomainSpec("history", "knowledge", training=False),
    DomainSpec("biology", "science", training=False),
    DomainSpec("arithmetic", "arithmetic", training=False),
)


def python_tiny(seed: int = 0) -> Preset:
    return Preset(name="tiny", seed=seed, seeds=(0, 1, 2), world=WorldConfig(domains=TINY_DOMAINS),
                  bases=(BaseSpec("weak", pretrain_steps=800), BaseSpec("strong", pretrain_steps=1600)))


def python_smoke(seed: int = 0) -> Preset:
    return Preset(
        name="smoke",
        seed=seed,
        world=WorldConfig(domains=TINY_DOMAINS[:2] + TINY_DOMAINS[3:4], facts_per_domain=24,
                          facts_per_heldout_domain=None, answer_words=8),
        pretrain=PretrainConfig(model=ModelConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64),
                                steps=30, batch_size=8, seq_len=32, warmup_steps=5),
        bases=(BaseSpec("weak", pretrain_steps=20), BaseSpec("strong", pretrain_steps=30)),
        items=ItemsConfig(per_training_domain=16),
        finetune=FinetuneConfig(epochs=2, batch_size=8, recovery_epochs=1),
        evaluation=EvalConfig(heldback_per_domain=8, heldout_per_domain=8, batch_size=16),
    )


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("name, python", [("tiny", python_tiny), ("smoke", python_smoke)], ids=["tiny", "smoke"])
def test_file_equals_the_python_preset(name, python, seed):
    from faco.core.cache import cache_key

    loaded = load_preset(name, seed)
    assert loaded == python(seed)
    assert cache_key("preset", loaded) == cache_key("preset", python(seed))  # floats stay floats, ints ints


@pytest.mark.parametrize("name", load.builtin())
def test_every_builtin_preset_loads_and_validates(name):
    preset = load_preset(name)
    assert preset.name == name
    assert dataclasses.replace(preset) == preset  # rebuilding runs every __post_init__ again
    assert {"tiny", "smoke"} <= set(load.builtin())


def test_a_users_preset_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text((load.BUILTIN / "smoke.toml").read_text().replace('name = "smoke"', 'name = "mine"')
                    + '\n[finetune.lora]\nr = 4\ntarget_modules = ["q_proj"]\n')
    preset = load_preset(str(path), seed=5)
    assert preset.name == "mine" and preset.seed == 5
    assert preset.finetune.lora == LoraConfig(r=4, target_modules=("q_proj",))
    assert preset.replace(name="smoke", seed=0, finetune=dataclasses.replace(preset.finetune, lora=None)) \
        == python_smoke()


@pytest.mark.parametrize("text, message", [
    ("[finetune]\nepochz = 2", r"finetune\.epochz: unknown key; known here: \[.*'epochs'"),
    ("[finetune]\nepochs = '2'", r"finetune\.epochs: expected int, got str '2'"),
    ("[finetune]\nepochs = true", r"finetune\.epochs: expected int, got bool True"),
    ("[finetune]\nlr = 'fast'", r"finetune\.lr: expected a number"),
    ("[corruption]\nratios = 5", r"corruption\.ratios: expected an array"),
    ("[[bases]]\npretrain_steps = 3", r"bases\[0\]: missing key 'name'"),
    ("[world]\ndomains = [{ name = 'x', kind = 'knowledge', training = 1 }]",
     r"world\.domains\[0\]\.training: expected bool"),
    ("[corruption]\nratios = [0, 101, 100]", r"corruption ratio 101 is outside"),  # __post_init__, file named
    ("[finetune]\nbatch_size = 7\nper_device_batch_size = 2", r"finetune\.batch_size 7 is not"),
    ("name = ", r"not valid TOML"),
], ids=["unknown-key", "string-for-int", "bool-for-int", "string-for-float", "scalar-for-array", "missing-key",
        "nested-type", "post-init", "batch-split", "bad-toml"])
def test_wrong_field_names_file_and_field(tmp_path, text, message):
    base = (load.BUILTIN / "smoke.toml").read_text()
    path = tmp_path / "bad.toml"
    # a new table at the end overrides nothing already set: write it where TOML allows, after the rest
    path.write_text(text + "\n" + base if text.startswith("name") else _merge(base, text))
    with pytest.raises(ConfigError, match=message) as error:
        load_preset(str(path))
    assert str(path) in str(error.value)


def _merge(base: str, extra: str) -> str:
    """`base` with the table `extra` opens replaced by `extra`'s (TOML forbids defining a table twice)."""
    header = extra.splitlines()[0]
    if header in base:
        start = base.index(header)
        end = base.find("\n[", start + 1)
        return base[:start] + extra + "\n" + (base[end:] if end != -1 else "")
    return base + "\n" + extra + "\n"


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; known presets: \[.*'smoke'.*'tiny'"):
        load_preset("nope")
    with pytest.raises(ConfigError, match=r"preset file .*absent\.toml does not exist"):
        load_preset(str(tmp_path / "absent.toml"))


def test_override_still_works_on_a_loaded_preset():
    preset = override(load_preset("smoke"), "finetune.max_length=64")
    assert preset.finetune.max_length == 64
    assert override(preset, "finetune.format=plain").finetune.format == "plain"
