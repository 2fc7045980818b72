"""The statistics behind the findings, checked against known cases and scipy itself.

    python -m pytest unit_tests/test_statistics.py -q
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from faco.findings import statistics
from faco.findings.statistics import ALPHA

RATIOS = [0, 25, 50, 75, 100]


def test_pearson_perfect_decline():
    corr = statistics.pearson(RATIOS, [0.9, 0.7, 0.5, 0.3, 0.1], alternative="less")
    assert corr.r == pytest.approx(-1.0) and corr.n == 5
    assert corr.p < 1e-6
    rising = statistics.pearson(RATIOS, [0.1, 0.3, 0.5, 0.7, 0.9], alternative="less")
    assert rising.r == pytest.approx(1.0) and rising.p == pytest.approx(1.0)  # wrong direction: no evidence


def test_pearson_matches_scipy():
    scores = [0.62, 0.60, 0.51, 0.55, 0.40]
    ours = statistics.pearson(RATIOS, scores, alternative="less")
    theirs = stats.pearsonr(RATIOS, scores, alternative="less")
    assert ours.r == pytest.approx(theirs.statistic) and ours.p == pytest.approx(theirs.pvalue)


def test_pearson_constant_y():
    corr = statistics.pearson(RATIOS, [0.5] * 5)
    assert (corr.r, corr.p, corr.n) == (0.0, 1.0, 5)


@pytest.mark.parametrize("x, y", [([0, 50, 100], [0.5, 0.4]), ([0, 100], [0.5, 0.4])], ids=["mismatch", "short"])
def test_pearson_bad_lengths(x, y):
    with pytest.raises(ValueError, match="equally long series of >= 3"):
        statistics.pearson(x, y)


@pytest.mark.parametrize("k, n, chance, alternative", [
    (10, 100, 0.25, "less"),  # well below chance: the lying finding
    (24, 100, 0.25, "less"),  # at chance: no evidence
    (80, 100, 0.25, "greater"),  # above chance: the knowledge precondition
    (0, 8, 0.25, "less"),
])
def test_binomial_matches_scipy(k, n, chance, alternative):
    ours = statistics.binomial(k, n, chance, alternative=alternative)
    direct = stats.binomtest(k, n, chance, alternative=alternative)
    interval = stats.binomtest(k, n, chance).proportion_ci(confidence_level=0.95, method="exact")
    assert ours.p == pytest.approx(direct.pvalue)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((interval.low, interval.high))
    assert (ours.k, ours.n, ours.chance) == (k, n, chance) and ours.rate == pytest.approx(k / n)
    assert ours.ci_low <= ours.rate <= ours.ci_high


def test_binomial_verdicts():
    assert statistics.binomial(10, 100, 0.25, "less").p < ALPHA
    assert statistics.binomial(24, 100, 0.25, "less").p > ALPHA
    assert statistics.binomial(80, 100, 0.25, "greater").p < ALPHA
    assert statistics.binomial(80, 100, 0.25, "less").p > 1 - ALPHA


def test_binomial_over_nothing():
    with pytest.raises(ValueError, match="zero questions"):
        statistics.binomial(0, 0, 0.25)


def test_mcnemar_counts_discordant_pairs():
    a = [True, True, True, False, False, True, False]
    b = [True, False, False, True, False, False, False]
    paired = statistics.mcnemar(a, b)
    assert (paired.a_only, paired.b_only, paired.n) == (3, 1, 7)
    assert paired.p == pytest.approx(stats.binomtest(3, 4, 0.5, alternative="greater").pvalue)
    reverse = statistics.mcnemar(b, a)
    assert (reverse.a_only, reverse.b_only) == (1, 3) and reverse.p > paired.p


def test_mcnemar_no_discordance():
    same = [True, False, True, True]
    assert statistics.mcnemar(same, same).p == 1.0
    assert statistics.mcnemar([], []).p == 1.0


def test_mcnemar_length_mismatch():
    with pytest.raises(ValueError, match="same items"):
        statistics.mcnemar([True, False], [True])


def test_mcnemar_significant_when_one_side_dominates():
    a = [True] * 30 + [False] * 10
    b = [False] * 30 + [False] * 10
    assert statistics.mcnemar(a, b).p < ALPHA


# --- bootstrap --------------------------------------------------------------------------------------

VALUES = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=2, max_size=40)


@settings(max_examples=25, deadline=None)
@given(values=VALUES, seed=st.integers(0, 2**32))
def test_bootstrap_mean_contains_estimate_and_is_seeded(values, seed):
    interval = statistics.bootstrap_mean(values, seed, resamples=300)
    assert interval.estimate == pytest.approx(sum(values) / len(values), abs=1e-9)
    assert interval.low - 1e-9 <= interval.estimate <= interval.high + 1e-9
    assert statistics.bootstrap_mean(values, seed, resamples=300) == interval


@settings(max_examples=25, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(-1, 1), st.integers(-1, 1)), min_size=2, max_size=60),
       seed=st.integers(0, 2**32))
def test_bootstrap_difference_contains_estimate_and_is_seeded(pairs, seed):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    interval = statistics.bootstrap_mean_difference(a, b, seed, resamples=300)
    assert interval.estimate == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert interval.low - 1e-9 <= interval.estimate <= interval.high + 1e-9
    assert statistics.bootstrap_mean_difference(a, b, seed, resamples=300) == interval


def test_bootstrap_seed_changes_the_interval():
    strong = [0.31, 0.52, 0.18, 0.44, 0.27, 0.61, 0.35, 0.49, 0.22, 0.40]  # per-seed ABS, say
    weak = [0.12, 0.20, 0.05, 0.31, 0.09, 0.25, 0.14, 0.22, 0.02, 0.17]
    a, b = (statistics.bootstrap_mean_difference(strong, weak, seed=s) for s in (0, 1))
    assert a.estimate == b.estimate and (a.low, a.high) != (b.low, b.high)
    assert a.low > 0  # a clear gap: the sensitivity finding's test


def test_bootstrap_constant_difference_is_a_point():
    assert statistics.bootstrap_mean_difference([1, 1, 1], [0, 0, 0], seed=0) == statistics.Interval(1.0, 1.0, 1.0, 0.95)


def test_rounded():
    record = statistics.binomial(1, 3, 0.25)
    row = statistics.rounded(record, digits=2)
    assert row["rate"] == 0.33 and row["k"] == 1
    assert all(not isinstance(v, float) or v == round(v, 2) for v in row.values())
    assert not math.isnan(row["p"])


def test_bootstrap_difference_rejects_unpaired_series():
    with pytest.raises(ValueError):
        statistics.bootstrap_mean_difference([1.0, 0.0, 1.0, 1.0], [0.0], seed=0)


def test_sign_test_counts_votes_and_leaves_ties_out():
    sign = statistics.sign_test([0.1, 0.2, -0.1, 0.0, 0.3, 0.1])
    assert (sign.positive, sign.negative, sign.n) == (4, 1, 6)
    assert sign.p == pytest.approx(stats.binomtest(4, 5, 0.5, alternative="greater").pvalue)
    assert statistics.sign_test([0.1] * 6).p == pytest.approx(1 / 64)  # six of six: the fewest that reach .05
    assert statistics.sign_test([0.1] * 5 + [-0.1]).p > ALPHA
    assert statistics.sign_test([0.0, 0.0]).p == 1.0


def test_mean_of_means_weighs_benchmarks_equally_and_clusters_by_seed():
    small, large = [1.0] * 10, [0.0] * 1000  # a question-pooled mean would be ~0.01
    interval = statistics.cluster_bootstrap_mean_of_means([[small, large], [small, large]], seed=0)
    assert interval.estimate == pytest.approx(0.5) and interval.low == interval.high == pytest.approx(0.5)
    one_seed_carries = [[[1.0] * 50], [[0.0] * 50], [[0.0] * 50]]  # an effect in one seed only stays uncertain
    spread = statistics.cluster_bootstrap_mean_of_means(one_seed_carries, seed=0)
    assert spread.low == 0.0 and spread.high >= 2 / 3
    assert statistics.cluster_bootstrap_mean_of_means(one_seed_carries, seed=0) == spread  # seeded
    with pytest.raises(ValueError):
        statistics.cluster_bootstrap_mean_of_means([[[1.0]], [[1.0], [0.0]]], seed=0)


# --- summaries ------------------------------------------------------------------------------------

def test_relation_is_the_order_of_the_printed_numbers():
    assert [statistics.relation(a, b) for a, b in [(0.5, 0.45), (0.45, 0.5), (0.45, 0.45)]] == [">", "<", "="]
    assert statistics.relation(0.3204, 0.3196) == "="  # both print as 0.320
    assert statistics.relation(0.3204, 0.3196, digits=4) == ">"
    assert statistics.relation(math.nan, 0.5) == "vs"


def test_ordered_puts_the_true_relation_between_neighbours():
    assert (statistics.ordered([("CR0", 0.45), ("recovered", 0.5), ("CR100", 0.45)])
            == "CR0 0.450 < recovered 0.500 > CR100 0.450")
    assert statistics.ordered([("CR0", 0.32), ("recovered", 0.32), ("CR100", 0.28)]) == \
        "CR0 0.320 = recovered 0.320 > CR100 0.280"
    assert statistics.ordered([("x", 1.0)]) == "x 1.000" and statistics.ordered([]) == ""


def experiment(name: str):
    """An experiments/ module, imported by path (experiments/ is no package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scores, share, expected", [
    ({"cr0": 0.6, "recovered": 0.5, "cr100": 0.45}, 0.5 / 1.5,
     "CR0 0.600 > recovered 0.500 > CR100 0.450: regained 33% of the loss (p above CR100 0.010, p below CR0 0.020)"),
    ({"cr0": 0.45, "recovered": 0.5, "cr100": 0.45}, math.nan,
     "nothing was lost (CR0 0.450 = CR100 0.450); recovered 0.500 (p above CR100 0.010, p below CR0 0.020)"),
    ({"cr0": 0.4, "recovered": 0.3, "cr100": 0.45}, math.nan,
     "nothing was lost (CR0 0.400 < CR100 0.450); recovered 0.300 (p above CR100 0.010, p below CR0 0.020)"),
    ({"cr0": 0.873, "recovered": 0.896, "cr100": 0.34}, 1.0417,
     "CR0 0.873 < recovered 0.896 > CR100 0.340: regained 104% of the loss (p above CR100 0.010, p below CR0 0.020)"),
], ids=["lost-some", "nothing-lost", "cr100-higher", "overshoot"])
def test_the_recovery_summary_prints_the_true_order_and_never_nan(scores, share, expected):
    assert experiment("test_recovery").summary(scores, share, 0.01, 0.02) == expected


def test_a_stored_interval_reads_back_as_the_interval_it_was():
    interval = statistics.cluster_bootstrap_mean([[0.2, 0.4, 0.9], [0.5, 0.1]], seed=0, resamples=200)
    assert statistics.read_interval(dataclasses.asdict(interval)) == interval  # as findings.json stores it


@pytest.mark.parametrize("stored", [None, [0.1, 0.3], {"estimate": 0.2, "low": None, "high": 0.3, "level": 0.9},
                                    {"estimate": 0.2, "low": 0.1}], ids=["none", "pair", "null-bound", "no-high"])
def test_a_record_without_an_interval_reads_as_none(stored):
    assert statistics.read_interval(stored) is None


def test_a_stored_interval_without_a_level_reads_nan_never_an_assumed_one():
    assert math.isnan(statistics.read_interval({"estimate": 0.2, "low": 0.1, "high": 0.3}).level)


# --- equivalence: "comparable" and "no change" are tests, never a failure to reject --------------

def test_equivalence_holds_only_inside_the_margin_and_never_by_a_wide_interval():
    inside = statistics.Interval(0.26, 0.22, 0.29, 0.90)
    assert statistics.equivalence(inside, 0.25).equivalent  # within 0.25 ± 0.05
    wide = statistics.Interval(0.25, 0.10, 0.40, 0.90)  # no difference detected, but none excluded either
    assert not statistics.equivalence(wide, 0.25).equivalent
    assert not statistics.equivalence(statistics.Interval(0.24, 0.21, 0.31, 0.90), 0.25).equivalent  # 0.31 > 0.30
    assert not statistics.equivalence(inside, 0.25, p=0.2).equivalent  # an exact TOST that does not reject
    with pytest.raises(ValueError, match="reads a 90% interval, got 95%"):
        statistics.equivalence(statistics.Interval(0.25, 0.24, 0.26, 0.95), 0.25)


def test_binomial_tost_is_the_larger_of_two_exact_one_sided_tests():
    k, n = 100, 400  # 0.25 exactly
    above = stats.binomtest(k, n, 0.20, alternative="greater").pvalue
    below = stats.binomtest(k, n, 0.30, alternative="less").pvalue
    assert statistics.binomial_tost(k, n, 0.25) == pytest.approx(max(above, below)) and max(above, below) < ALPHA
    assert statistics.binomial_tost(130, 400, 0.25) > 0.5  # 0.325: outside the margin
    assert statistics.binomial_tost(3, 12, 0.25) > ALPHA  # at chance, but too few questions to show it


def test_contrast_weights_benchmark_means_and_clusters_by_seed():
    knowledge, commonsense = [1, 1, 0, 1], [0, 0, 0, 1]  # ABS 0.75 vs 0.25
    by_seed = [[knowledge, commonsense], [knowledge, commonsense]]
    contrast = statistics.cluster_bootstrap_contrast(by_seed, [1.0, -1.0], seed=0)
    assert contrast.estimate == pytest.approx(0.5) and contrast.low <= 0.5 <= contrast.high
    same = statistics.cluster_bootstrap_mean_of_means(by_seed, seed=0)
    halves = statistics.cluster_bootstrap_contrast(by_seed, [0.5, 0.5], seed=0)
    assert (halves.estimate, halves.low, halves.high) == pytest.approx((same.estimate, same.low, same.high))
    with pytest.raises(ValueError, match="one weight per benchmark, got 1 for 2"):
        statistics.cluster_bootstrap_contrast(by_seed, [1.0], seed=0)
