"""The statistics behind each finding, all from scipy: a finding is a test, never a bare threshold."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import isotonic_regression as stats_isotonic

ALPHA = 0.05  # significance level of every finding's test


@dataclass(frozen=True)
class Correlation:
    r: float
    p: float  # one-sided, in the direction asked for
    n: int
    ci_low: float  # two-sided interval of r (Fisher z) at `level`; nan for n <= 3
    ci_high: float
    level: float = 1 - ALPHA

    @property
    def interval(self) -> Interval:
        return Interval(self.r, self.ci_low, self.ci_high, self.level)


def pearson(x: Sequence[float], y: Sequence[float], alternative: str = "less") -> Correlation:
    """Pearson r with a one-sided p-value (`less`: y falls as x grows). Constant y gives r = 0, p = 1."""
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"pearson needs two equally long series of >= 3 values, got {len(x)} and {len(y)}")
    if np.ptp(np.asarray(y, dtype=float)) == 0:
        return Correlation(0.0, 1.0, len(x), float("nan"), float("nan"))
    p = float(stats.pearsonr(x, y, alternative=alternative).pvalue)
    result = stats.pearsonr(x, y)
    if len(x) > 3:
        interval = result.confidence_interval(confidence_level=1 - ALPHA)
        low, high = float(interval.low), float(interval.high)
    else:
        low = high = float("nan")
    return Correlation(float(result.statistic), p, len(x), low, high)


@dataclass(frozen=True)
class Binomial:
    k: int
    n: int
    rate: float
    chance: float
    p: float  # one-sided, in the direction asked for (below or above chance)
    ci_low: float  # Clopper-Pearson interval of the rate at `level`
    ci_high: float
    level: float = 1 - ALPHA

    @property
    def interval(self) -> Interval:
        return Interval(self.rate, self.ci_low, self.ci_high, self.level)


def binomial(k: int, n: int, chance: float, alternative: str = "less") -> Binomial:
    """Exact binomial test that an accuracy of k/n lies below (`less`) or above (`greater`) `chance`."""
    if n == 0:
        raise ValueError("binomial test over zero questions")
    test = stats.binomtest(k, n, chance, alternative=alternative)
    interval = stats.binomtest(k, n, chance).proportion_ci(confidence_level=1 - ALPHA)
    return Binomial(k, n, k / n, chance, float(test.pvalue), float(interval.low), float(interval.high))


@dataclass(frozen=True)
class Paired:
    """McNemar's exact test on per-item correctness of two models over the same items."""

    a_only: int  # items model A gets right and B wrong
    b_only: int
    n: int
    p: float  # one-sided: A is right more often than B


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> Paired:
    """Is A more accurate than B on the same items? (exact binomial over discordant pairs)."""
    if len(a_correct) != len(b_correct):
        raise ValueError("mcnemar needs per-item results over the same items")
    a_only = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    b_only = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(stats.binomtest(a_only, discordant, 0.5, alternative="greater").pvalue)
    return Paired(a_only, b_only, len(a_correct), p)


@dataclass(frozen=True)
class Sign:
    """An exact sign test over independent comparisons (e.g. one gap per benchmark)."""

    positive: int  # comparisons above 0
    negative: int
    n: int  # all comparisons; ties (exactly 0) count in neither direction and leave the test
    p: float  # one-sided: positive in more than half of the untied comparisons


def sign_test(values: Sequence[float]) -> Sign:
    """Is a difference positive in the majority of independent comparisons? The paper's form of a claim
    made over many benchmarks: each benchmark is one vote, however many questions it has."""
    positive = sum(1 for v in values if v > 0)
    negative = sum(1 for v in values if v < 0)
    untied = positive + negative
    p = 1.0 if untied == 0 else float(stats.binomtest(positive, untied, 0.5, alternative="greater").pvalue)
    return Sign(positive, negative, len(values), p)


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval and that interval's confidence level (stored with every
    interval, so no reader has to assume one)."""

    estimate: float
    low: float
    high: float
    level: float


def read_interval(stored: Any) -> Interval | None:
    """An Interval as findings.json stores it ({estimate, low, high, level}), read back; None where the record
    holds none or a bound is null (a statistic that could not be computed). A level the record lacks reads as
    nan: no reader assumes one."""
    if not isinstance(stored, dict) or stored.get("low") is None or stored.get("high") is None:
        return None
    estimate, level = stored.get("estimate"), stored.get("level")
    return Interval(math.nan if estimate is None else float(estimate), float(stored["low"]), float(stored["high"]),
                    math.nan if level is None else float(level))


def bootstrap_mean_difference(a: Sequence[float], b: Sequence[float], seed: int,
                              resamples: int = 2000) -> Interval:
    """Paired bootstrap 95 % CI of mean(a - b) over items (e.g. one base's drop minus another's)."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"a paired bootstrap needs two equally long, non-empty series, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.ptp(diff) == 0:
        return Interval(float(diff.mean()), float(diff.mean()), float(diff.mean()), 1 - ALPHA)
    result = stats.bootstrap((diff,), np.mean, n_resamples=resamples, confidence_level=1 - ALPHA,
                             random_state=np.random.default_rng(seed), method="percentile")
    return Interval(float(diff.mean()), float(result.confidence_interval.low),
                    float(result.confidence_interval.high), 1 - ALPHA)


def bootstrap_mean(values: Sequence[float], seed: int, resamples: int = 2000) -> Interval:
    """Percentile bootstrap 95 % CI of a mean (e.g. ABS over seeds)."""
    return bootstrap_mean_difference(values, [0.0] * len(values), seed, resamples)


def cluster_bootstrap_mean(by_seed: Sequence[Sequence[float]], seed: int, confidence: float = 0.90,
                           resamples: int = 2000) -> Interval:
    """Two-stage bootstrap CI of the pooled mean of per-question values grouped by seed: resample seeds,
    then questions within each. Seeds differ in world, pre-training and fine-tuning, so an effect that one
    seed alone carries stays uncertain however many questions it has. With one seed this is the plain
    question bootstrap. The default 90 % two-sided interval gives one-sided tests at ALPHA = 0.05."""
    groups = [np.asarray(values, dtype=float) for values in by_seed if len(values)]
    if not groups:
        raise ValueError("cluster bootstrap over no values")
    pooled = float(np.concatenate(groups).mean())
    rng = np.random.default_rng(seed)
    sizes = np.array([len(g) for g in groups])
    total, count = np.zeros(resamples), np.zeros(resamples)
    for _slot in range(len(groups)):  # each slot draws a seed, then that seed's questions
        chosen = rng.integers(len(groups), size=resamples) if len(groups) > 1 else np.zeros(resamples, int)
        sums = np.stack([g[rng.integers(len(g), size=(resamples, len(g)))].sum(axis=1) for g in groups])
        total += sums[chosen, np.arange(resamples)]
        count += sizes[chosen]
    means = total / count
    tail = (1 - confidence) / 2
    return Interval(pooled, float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)), confidence)


def cluster_bootstrap_mean_of_means(by_seed: Sequence[Sequence[Sequence[float]]], seed: int,
                                    confidence: float = 0.90, resamples: int = 2000) -> Interval:
    """Seed-clustered bootstrap CI of the mean over benchmarks of each benchmark's pooled mean;
    `by_seed[s][b]` holds seed s's per-question values on benchmark b. Every benchmark weighs the same
    (a claim about benchmarks, not questions); one draw of seeds serves all benchmarks, so seeds stay
    the clusters, and questions are resampled within each seed and benchmark."""
    groups = _benchmark_groups(by_seed)
    n_benchmarks = len(groups[0])
    estimate = float(np.mean([np.concatenate([g[b] for g in groups]).mean() for b in range(n_benchmarks)]))
    means = np.zeros(resamples)
    for resampled in _resampled_benchmark_means(groups, seed, resamples):
        means += resampled / n_benchmarks
    return _quantile_interval(estimate, means, confidence)


def cluster_bootstrap_contrast(by_seed: Sequence[Sequence[Sequence[float]]], weights: Sequence[float], seed: int,
                               confidence: float = 0.90, resamples: int = 2000) -> Interval:
    """Seed- and question-clustered bootstrap CI of a weighted sum of per-benchmark pooled means, e.g. the
    mean ABS of the knowledge benchmarks minus that of the commonsense ones (weights 1/k and -1/c). The
    resampling is cluster_bootstrap_mean_of_means': one draw of seeds for every benchmark."""
    groups = _benchmark_groups(by_seed)
    if len(weights) != len(groups[0]):
        raise ValueError(f"a contrast needs one weight per benchmark, got {len(weights)} for {len(groups[0])}")
    estimate = float(sum(w * np.concatenate([g[b] for g in groups]).mean() for b, w in enumerate(weights)))
    means = np.zeros(resamples)
    for weight, resampled in zip(weights, _resampled_benchmark_means(groups, seed, resamples)):
        means += weight * resampled
    return _quantile_interval(estimate, means, confidence)


def _benchmark_groups(by_seed: Sequence[Sequence[Sequence[float]]]) -> list[list[np.ndarray]]:
    groups = [[np.asarray(values, dtype=float) for values in benchmarks] for benchmarks in by_seed]
    if not groups or not groups[0] or any(len(b) != len(groups[0]) or not all(len(v) for v in b) for b in groups):
        raise ValueError("cluster bootstrap needs the same non-empty benchmarks in every seed")
    return groups


def _resampled_benchmark_means(groups: list[list[np.ndarray]], seed: int, resamples: int) -> list[np.ndarray]:
    """Per benchmark, its pooled mean in each resample: seeds drawn once for all benchmarks, then questions
    within each drawn seed and benchmark."""
    n_seeds = len(groups)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(n_seeds, size=(n_seeds, resamples)) if n_seeds > 1 else np.zeros((1, resamples), int)
    out = []
    for b in range(len(groups[0])):
        sizes = np.array([len(g[b]) for g in groups])
        total, count = np.zeros(resamples), np.zeros(resamples)
        for slot in range(n_seeds):
            sums = np.stack([g[b][rng.integers(len(g[b]), size=(resamples, len(g[b])))].sum(axis=1) for g in groups])
            total += sums[chosen[slot], np.arange(resamples)]
            count += sizes[chosen[slot]]
        out.append(total / count)
    return out


def _quantile_interval(estimate: float, means: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    return Interval(estimate, float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)), confidence)


# --- equivalence: "no difference" as a test of its own --------------------------------------------
#
# A finding that says "no (significant) difference" or "comparable to" must not hold because a test failed
# to reject: a wide interval would make it hold. It holds by two one-sided tests (TOST) against a margin
# stated before looking: the estimate is significantly above center - margin and below center + margin,
# i.e. its 90 % two-sided interval (one-sided 5 % each way) lies inside (center - margin, center + margin).

EQUIVALENCE_MARGIN = 0.05  # accuracy points; why this one: faco.findings.registry (lying_weak, longer)


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests that an estimate lies within `margin` of `center`."""

    estimate: float
    center: float
    margin: float
    low: float  # the interval the verdict reads, at `level` (90 %: a TOST at ALPHA = 0.05)
    high: float
    level: float
    p: float | None  # the larger of the two one-sided p-values (None where the verdict is the interval alone)

    @property
    def equivalent(self) -> bool:
        inside = self.center - self.margin < self.low and self.high < self.center + self.margin
        return inside and (self.p is None or self.p < ALPHA)

    @property
    def interval(self) -> Interval:
        return Interval(self.estimate, self.low, self.high, self.level)


def equivalence(interval: Interval, center: float, margin: float = EQUIVALENCE_MARGIN,
                p: float | None = None) -> Equivalence:
    """TOST by interval inclusion: `interval` (a 90 % two-sided one, e.g. a seed-clustered bootstrap) must
    lie inside center ± margin; `p`, where an exact test gives one (binomial_tost), must be below ALPHA too."""
    if not math.isclose(interval.level, 1 - 2 * ALPHA):
        raise ValueError(f"a TOST at ALPHA = {ALPHA} reads a {1 - 2 * ALPHA:.0%} interval, got {interval.level:.0%}")
    return Equivalence(interval.estimate, center, margin, interval.low, interval.high, interval.level, p)


def binomial_tost(k: int, n: int, center: float, margin: float = EQUIVALENCE_MARGIN) -> float:
    """The exact binomial TOST's p-value that an accuracy of k/n lies within `margin` of `center`: the
    larger of "above center - margin" and "below center + margin"."""
    if n == 0:
        raise ValueError("binomial test over zero questions")
    above = stats.binomtest(k, n, max(center - margin, 0.0), alternative="greater").pvalue if center > margin else 0.0
    below = stats.binomtest(k, n, min(center + margin, 1.0), alternative="less").pvalue if center + margin < 1 else 0.0
    return float(max(above, below))


def cluster_bootstrap(by_seed: Sequence[np.ndarray], statistic: Callable[[np.ndarray], float], seed: int,
                      confidence: float = 0.90, resamples: int = 1000) -> Interval:
    """Seed-clustered bootstrap CI of any `statistic` of the pooled rows (one row per question, its columns
    paired: e.g. a question's correctness at every CR): resample seeds, then rows within each, as
    `cluster_bootstrap_mean` does for a mean. A resample whose statistic is nan (undefined) is dropped;
    if all are, the interval is nan."""
    groups = [np.asarray(rows, dtype=float) for rows in by_seed if len(rows)]
    if not groups:
        raise ValueError("cluster bootstrap over no rows")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        chosen = rng.integers(len(groups), size=len(groups)) if len(groups) > 1 else [0]
        values.append(statistic(np.concatenate([groups[i][rng.integers(len(groups[i]), size=len(groups[i]))]
                                                for i in chosen])))
    values = np.asarray([v for v in values if not math.isnan(v)])
    estimate = float(statistic(np.concatenate(groups)))
    if not len(values):
        return Interval(estimate, math.nan, math.nan, confidence)
    tail = (1 - confidence) / 2
    return Interval(estimate, float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail)), confidence)


def turning_point(grid: Sequence[int], p: Sequence[float]) -> int | None:
    """The smallest dose above the first from which every dose's test (`p`, one per dose of `grid`, the
    first the reference) rejects at ALPHA; None where the last dose's does not."""
    turn = None
    for dose, value in reversed(list(zip(grid[1:], p[1:]))):
        if value >= ALPHA:
            break
        turn = dose
    return turn


def onset(steps: Sequence[int], p: Sequence[float]) -> int | None:
    """The first of `steps` from which every step's test (`p`, one per step) rejects at ALPHA; None where the
    last step's does not: when an effect sets in during training and stays."""
    return turning_point([steps[0] - 1, *steps], [1.0, *p]) if steps else None


CONVERGED_WITHIN = 0.05  # of the loss's whole fall: "converged" is within this share of it above the end


def converged(steps: Sequence[int], losses: Sequence[tuple[int, float]]) -> int:
    """The first of `steps` from which the training loss stays converged: its mean over the logged steps
    since the step before (the window, so one noisy batch does not decide) lies within CONVERGED_WITHIN of
    its whole fall (the first logged loss to the last window's mean) above the last window's mean."""
    windows, start = [], 0
    for step in steps:
        window = [loss for at, loss in losses if start < at <= step]
        if not window:
            raise ValueError(f"no logged loss between steps {start} and {step}")
        windows.append(float(np.mean(window)))
        start = step
    final, fall = windows[-1], losses[0][1] - windows[-1]
    at = len(steps) - 1
    while at > 0 and windows[at - 1] - final <= CONVERGED_WITHIN * fall:
        at -= 1
    return steps[at]


def isotonic(scores: Sequence[float]) -> np.ndarray:
    """The non-increasing least-squares fit of scores along a dose grid (pool adjacent violators)."""
    return stats_isotonic(np.asarray(scores, dtype=float), increasing=False).x


def half_dose(grid: Sequence[int], scores: Sequence[float]) -> float:
    """The dose at which the isotonic fit of `scores` first falls halfway from its first value to its last
    (linear between grid points, like an ED50); nan where the fit does not fall."""
    fit = isotonic(scores)
    if not fit[0] > fit[-1]:
        return math.nan
    target = (fit[0] + fit[-1]) / 2
    j = int(np.argmax(fit <= target))
    if fit[j - 1] == fit[j]:
        return float(grid[j])
    return float(grid[j - 1] + (fit[j - 1] - target) / (fit[j - 1] - fit[j]) * (grid[j] - grid[j - 1]))


def rounded(record: object, digits: int = 4) -> dict:
    """A statistics dataclass as a dict with floats rounded, for findings.json and messages."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(record).items()}


# --- summaries ------------------------------------------------------------------------------------

def relation(a: float, b: float, digits: int = 3) -> str:
    """"<", "=" or ">" between `a` and `b` as a summary prints them (`digits` decimals), so that it never
    reads "0.320 > 0.320" or puts a fixed sign between numbers in whatever order they came; "vs" for nan."""
    x, y = float(f"{a:.{digits}f}"), float(f"{b:.{digits}f}")
    if math.isnan(x) or math.isnan(y):
        return "vs"
    return "<" if x < y else ">" if x > y else "="


def ordered(values: Sequence[tuple[str, float]], digits: int = 3) -> str:
    """Labelled numbers with the true relation between neighbours: "CR0 0.450 = recovered 0.450 > CR100 0.300"."""
    text = " ".join(f"{label} {value:.{digits}f}" for label, value in values[:1])
    for (_, before), (label, value) in zip(values, values[1:]):
        text += f" {relation(before, value, digits)} {label} {value:.{digits}f}"
    return text
