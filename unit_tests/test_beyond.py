"""The parts of the experiments beyond the paper (docs/beyond.md) that decide their numbers: corruption
kinds and recovery doses (faco.data.falsity), their grids (faco.config.beyond), the dose statistics, the
probes, the hidden states and the figures.

    python -m pytest unit_tests/test_beyond.py -q
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from faco.config.beyond import BeyondConfig
from faco.config.schema import ConfigError, ModelConfig
from faco.data.corruption import corrupted_examples, false_ids
from faco.data.falsity import clean_share, kind_examples
from faco.data.items import FacoItem
from faco.evaluation import hidden
from faco.evaluation.world_tasks import LAYOUTS, Question
from faco.findings import probes, statistics
from faco.models import llama


def items(n: int) -> list[FacoItem]:
    return [FacoItem(id=f"q{i}", source="test", domain="d", question=f"Q{i}?", options=(f"a{i}", f"b{i}", f"c{i}"),
                     correct=0, false_option=1, true_explanation=f"true{i}", false_explanation=f"false{i}")
            for i in range(n)]


# --- corruption kinds and doses ---------------------------------------------------------------------

def test_the_both_kind_is_the_papers_corruption_exactly():
    assert kind_examples(items(20), 50, 3, "both") == corrupted_examples(items(20), 50, 3)


@pytest.mark.parametrize("kind, answer, chain", [("answer", "b", "true"), ("chain", "a", "false")])
def test_a_kind_falsifies_only_its_part_of_the_same_items(kind, answer, chain):
    data = items(20)
    false = false_ids(data, 50, 3)
    for example in kind_examples(data, 50, 3, kind):
        i = example.item_id[1:]
        flipped = example.item_id in false
        assert example.response == (f" {answer if flipped else 'a'}{i}\n### Explanation : "
                                    f"{chain if flipped else 'true'}{i}")
        assert example.truth == (not flipped or kind == "chain")  # the answer's truth


def test_an_unknown_kind_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown corruption kind 'reasoning'"):
        kind_examples(items(2), 100, 0, "reasoning")


def test_recovery_doses_are_nested_prefixes_of_the_training_order():
    data = items(40)
    doses = [clean_share(data, s) for s in (0, 5, 25, 100)]
    assert [len(d) for d in doses] == [0, 2, 10, 40]
    assert all(small == large[: len(small)] for small, large in zip(doses, doses[1:]))


@pytest.mark.parametrize("changes, message", [
    ({"dose_ratios": (0, 50)}, "dose ratios must be increasing, distinct and run from 0 to 100"),
    ({"recovery_shares": (0, 150, 100)}, "recovery shares: 150 is outside 0..100"),
    ({"falsity_kinds": ("both", "answer")}, "falsity kinds: answer and chain"),
])
def test_a_bad_grid_is_one_error_naming_it(changes, message):
    with pytest.raises(ConfigError, match=message):
        BeyondConfig(**changes)


# --- dose statistics ---------------------------------------------------------------------------------

def test_the_turning_point_is_where_the_drops_stay_significant():
    grid = [0, 10, 20, 30, 40]
    assert statistics.turning_point(grid, [1.0, 0.01, 0.2, 0.01, 0.001]) == 30  # 10 is significant, 20 is not
    assert statistics.turning_point(grid, [1.0, 0.01, 0.01, 0.01, 0.2]) is None  # the last does not drop


def test_the_onset_is_the_first_step_from_which_the_effect_stays():
    steps = [10, 20, 30, 40]
    assert statistics.onset(steps, [0.01, 0.2, 0.01, 0.001]) == 30  # step 10 rejects, 20 does not
    assert statistics.onset(steps, [0.01, 0.01, 0.01, 0.01]) == 10  # the first point counts (no reference)
    assert statistics.onset(steps, [0.01, 0.01, 0.01, 0.2]) is None


def test_the_loss_converges_where_its_window_stays_near_the_end():
    # falls from 10 to 1 by step 20, a spike in (30, 40], flat at 1 after: within 5 % of the fall (0.45)
    losses = [(s, 10.0 - 0.45 * s if s <= 20 else 1.0) for s in range(1, 61)]
    assert statistics.converged([10, 20, 30, 40, 50, 60], losses) == 30  # (10, 20]'s mean is 3.3
    spiked = [(s, 3.0 if 30 < s <= 40 else v) for s, v in losses]
    assert statistics.converged([10, 20, 30, 40, 50, 60], spiked) == 50  # it must stay converged
    assert statistics.converged([20, 40, 60], losses) == 40


def test_the_half_dose_of_a_cliff_and_of_a_line():
    grid = [0, 25, 50, 75, 100]
    assert statistics.half_dose(grid, [0.9, 0.9, 0.9, 0.9, 0.1]) == pytest.approx(87.5)
    assert statistics.half_dose(grid, [0.9, 0.7, 0.5, 0.3, 0.1]) == pytest.approx(50)
    # the fit pools to 0.85 0.85 0.8 0.8 0.1: halfway (0.475) is 0.325 / 0.7 of the way from CR 75 to CR 100
    assert statistics.half_dose(grid, [0.8, 0.9, 0.7, 0.9, 0.1]) == pytest.approx(75 + 25 * 0.325 / 0.7)
    assert math.isnan(statistics.half_dose(grid, [0.5, 0.6, 0.5, 0.6, 0.7]))  # rises: no half dose


def test_the_cluster_bootstrap_of_a_statistic_covers_it_and_is_seeded():
    rng = np.random.default_rng(0)
    by_seed = [rng.integers(0, 2, size=(200, 3)) for _ in range(3)]
    first = statistics.cluster_bootstrap(by_seed, lambda rows: rows[:, 0].mean(), seed=7)
    assert first == statistics.cluster_bootstrap(by_seed, lambda rows: rows[:, 0].mean(), seed=7)
    assert first.low < first.estimate < first.high and first.level == 0.90
    assert first.estimate == pytest.approx(np.concatenate(by_seed)[:, 0].mean())
    undefined = statistics.cluster_bootstrap(by_seed, lambda rows: math.nan, seed=7)
    assert math.isnan(undefined.low) and math.isnan(undefined.high)
    at_most = first.estimate  # resamples above it are undefined: dropped, not a nan interval
    partly = statistics.cluster_bootstrap(by_seed, lambda rows: m if (m := rows[:, 0].mean()) <= at_most else math.nan,
                                          seed=7)
    assert partly.low < partly.high <= at_most


# --- probes and hidden states ----------------------------------------------------------------------

def test_a_probe_reads_a_planted_truth_direction_and_the_shuffled_control_does_not():
    rng = np.random.default_rng(1)
    gold = rng.integers(4, size=400)
    states = rng.normal(size=(400, 4, 2, 16))
    states[np.arange(400), gold, 1, 0] += 3.0  # layer 1 holds the truth along one direction; layer 0 nothing
    halves = probes.split([i >= 100 for i in range(400)], seed=0)
    assert not set(halves.fit) & set(halves.test) and set(halves.test) <= set(range(100, 400))
    fit, test = halves.fit, halves.test
    read = [probes.reads(probes.fit(states[fit], gold[fit], layer), states[test], gold[test], layer).mean()
            for layer in (0, 1)]
    control = probes.fit(states[fit], probes.shuffled(gold[fit], 4, 0), 1)
    assert read[1] > 0.9 and read[0] < 0.4
    assert probes.reads(control, states[test], probes.shuffled(gold[test], 4, 1), 1).mean() < 0.4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):  # noqa: ANN001, ANN201
    """A random tiny LLaMA and its tokenizer on disk: what the hidden stage reads."""
    import torch

    texts = ["### Options : red ; blue ; green ; black ; white ; pink ; gray ; gold\n### Question : sky ?\n### Answer : blue"]
    tokenizer = llama.build_tokenizer(texts)
    path = tmp_path_factory.mktemp("model")
    model = llama.build_model(ModelConfig(hidden_size=16, layers=2, heads=2, intermediate_size=32), tokenizer, 0)
    with torch.no_grad():  # a final norm that is not the identity: normed twice, a state would read otherwise
        model.model.norm.weight.copy_(torch.linspace(0.1, 4.0, 16))
    llama.save(model, tokenizer, path)
    return path


def test_hidden_states_pick_as_lm_eval_and_the_lens_ends_on_the_logits(model_dir, tmp_path):
    import torch

    question = Question("q1", "d", "sky ?", ("red", "blue", "green"), 1)
    hidden.hidden_states(model_dir, [question, question], LAYOUTS["instruction"], tmp_path)
    arrays = hidden.read(tmp_path)
    assert arrays["states"].shape == (2, 3, 3, 16) and arrays["lens_rank"].shape == (2, 3)
    model, tokenizer = llama.load(model_dir)
    context = tokenizer(LAYOUTS["instruction"](question.question, question.options), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([context])).logits[0, -1], dim=-1)
    firsts = [tokenizer(" " + o, add_special_tokens=False)["input_ids"][0] for o in question.options]
    expected = int(np.argmax([float(logprobs[t]) for t in firsts]))  # one-token options: the pick is the argmax
    assert arrays["choice"].tolist() == [expected, expected]
    assert arrays["lens_rank"][0, -1] == sum(float(logprobs[t]) > float(logprobs[firsts[1]]) for t in firsts)
    words = ("red", "blue", "green", "black", "white", "pink", "gray", "gold")
    every = [Question(f"q{i}", "d", "sky ?", words[shift:] + words[:shift], gold)
             for i, (shift, gold) in enumerate(itertools.product(range(3), range(8)))]
    hidden.hidden_states(model_dir, every, LAYOUTS["instruction"], tmp_path)
    with torch.no_grad():  # the last layer's lens is the model's own next-token ranking, for every order and gold
        for q, rank in zip(every, hidden.read(tmp_path)["lens_rank"][:, -1]):
            ids = tokenizer(LAYOUTS["instruction"](q.question, q.options), add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            firsts = [tokenizer(" " + o, add_special_tokens=False)["input_ids"][0] for o in q.options]
            assert rank == sum(float(logits[t]) > float(logits[firsts[q.gold]]) for t in firsts)
    other = Question("q2", "d", "sky ?", ("blue", "green", "red"), 0)  # padded beside q1 in one batch
    (tmp_path / "one").mkdir()
    hidden.hidden_states(model_dir, [question, other], LAYOUTS["instruction"], tmp_path / "one", chunk=1)
    hidden.hidden_states(model_dir, [question, other], LAYOUTS["instruction"], tmp_path, chunk=2)
    alone, batched = hidden.read(tmp_path / "one"), hidden.read(tmp_path)
    assert np.allclose(alone["states"], batched["states"], atol=1e-5)
    assert (alone["choice"] == batched["choice"]).all() and (alone["lens_rank"] == batched["lens_rank"]).all()


# --- the marker -------------------------------------------------------------------------------------

def collected(*options: str) -> list[str]:
    """The experiment ids `pytest experiments --collect-only` lists with these options."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "pytest", "experiments", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *options], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.slow  # three collections of the experiments
def test_a_plain_run_leaves_the_beyond_experiments_out_and_the_marker_runs_them():
    plain, marked = collected(), collected("-m", "beyond")
    assert plain and not any("test_beyond.py" in line for line in plain)
    assert marked and all("test_beyond.py" in line for line in marked)
    assert {line.split("::")[1].split("[")[0] for line in marked} == {
        "test_falsity_kind", "test_dose", "test_probe", "test_redose", "test_trajectory"}
    with pytest.raises(AssertionError, match="dose ratios must be increasing"):
        collected("-m", "beyond", "--faco-dose-ratios", "0,50")  # a bad grid: one usage error
