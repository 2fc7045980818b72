"""Does false instruction data harm a model in proportion to its share? Findings 1-3 of the FACO study.

1. correlation: benchmark scores fall as the corruption ratio (CR) grows; ABS = score(CR0) - score(CR100).
2. sensitivity: the stronger base loses more (a larger ABS) than the weaker one, per benchmark and, as the
   paper states it, in the majority of independent benchmarks (sensitivity_majority: an exact sign test).
3. loss: the higher the CR, the higher the training loss on the same steps.

    pytest experiments/test_corruption.py
    pytest experiments -k "correlation and strong and heldout"

With several seeds (`--faco-seeds 0,1,2`) the questions of every seed are pooled, and intervals come
from a seed-clustered bootstrap (an effect one seed alone carries stays uncertain); `key` numbers are
also measured per seed (their spread gives the regression tolerances).
"""

from __future__ import annotations

import pytest

from faco.findings import statistics
from faco.findings.registry import Statistic
from faco.findings.statistics import ALPHA
from faco.evaluation.groups import GROUPS
from faco.study.study import finetuned, untuned


def score_by_ratio(study, base, benchmark):
    """Score at every CR, Pearson r against CR, and ABS = score(CR0) - score(CR100)."""
    ratios = list(study.preset.corruption.ratios)
    scores = [study.accuracy(finetuned(base, r), benchmark) for r in ratios]
    corr = statistics.pearson(ratios, scores, alternative="less")
    return {"r": corr.r, "p": corr.p, "abs": scores[0] - scores[-1], **{f"cr{r}": s for r, s in zip(ratios, scores)}}


@pytest.mark.finding("correlation")
def test_correlation(faco_study, faco_finding, faco_base, faco_benchmark):
    ratios = list(faco_study.preset.corruption.ratios)
    pooled = score_by_ratio(faco_study, faco_base, faco_benchmark)
    per_seed = faco_study.each(lambda seed: score_by_ratio(seed, faco_base, faco_benchmark))
    corr = statistics.pearson(ratios, [pooled[f"cr{r}"] for r in ratios], alternative="less")
    drop = statistics.cluster_bootstrap_mean(item_drops_by_seed(faco_study, faco_base, faco_benchmark),
                                             seed=faco_study.preset.seed)
    faco_finding(
        holds=corr.p < ALPHA and drop.low > 0,
        summary=(f"r={corr.r:+.2f} (p={corr.p:.3f}) ABS={pooled['abs']:+.3f}; "
                 + " ".join(f"{pooled[f'cr{r}']:.2f}" for r in ratios)),
        key=per_seed, key_metrics=["r", "abs", *(f"cr{r}" for r in ratios)],
        statistic=Statistic("Pearson r (score vs CR)", corr.r, corr.p), interval=drop,
        base=faco_base, benchmark=faco_benchmark, r=corr.r, p=corr.p, r_ci=corr.interval,
        abs=pooled["abs"], abs_ci=drop,
        # the paper's "vanilla" row: the base's own score on a registry benchmark
        **({"vanilla": faco_study.accuracy(untuned(faco_base), faco_benchmark)} if faco_study.on_benchmarks else {}),
        scores={f"cr{r}": pooled[f"cr{r}"] for r in ratios},
        per_seed={f"cr{r}": [s[f"cr{r}"] for s in per_seed] for r in ratios},
    )


def item_drops_by_seed(study, base, benchmark):
    """Per seed, per question of `benchmark`: 1 if `base` answers it right at CR 0 and wrong at CR 100,
    -1 if the reverse, else 0 (their mean is ABS)."""
    clean = study.by_seed(finetuned(base, 0), benchmark)
    corrupt = study.by_seed(finetuned(base, 100), benchmark)
    return [[int(a) - int(b) for a, b in zip(c, k)] for c, k in zip(clean, corrupt)]


@pytest.mark.finding("sensitivity")
def test_sensitivity(faco_study, faco_finding, faco_benchmark):
    if len(faco_study.preset.bases) < 2:
        pytest.skip(f"preset {faco_study.preset.name!r} has one base: sensitivity compares a weaker and a stronger one")
    weak, strong = (b.name for b in faco_study.preset.bases[:2])  # presets list bases weakest first
    drops = {base: item_drops_by_seed(faco_study, base, faco_benchmark) for base in (weak, strong)}
    gaps = [[s - w for s, w in zip(strong_seed, weak_seed)] for strong_seed, weak_seed in zip(drops[strong], drops[weak])]
    interval = statistics.cluster_bootstrap_mean(gaps, seed=faco_study.preset.seed)
    abs_ = {base: sum(map(sum, d)) / sum(map(len, d)) for base, d in drops.items()}
    faco_finding(
        holds=interval.low > 0,
        summary=(f"ABS {strong}={abs_[strong]:+.3f} {weak}={abs_[weak]:+.3f}; "
                 f"gap {interval.estimate:+.3f} {interval.level:.0%} CI [{interval.low:+.3f}, {interval.high:+.3f}]"),
        key=[{"gap": sum(g) / len(g)} for g in gaps], key_metrics=["gap"],
        statistic=Statistic("ABS gap (stronger - weaker)", interval.estimate), interval=interval,
        benchmark=faco_benchmark, abs=abs_, gap=interval.estimate, gap_ci=interval,
    )


@pytest.mark.finding("loss")
def test_loss(faco_study, faco_finding, faco_base):
    ratios = list(faco_study.preset.corruption.ratios)
    curves = {r: faco_study.losses(faco_base, r) for r in ratios}  # one curve per seed
    steps = {len(curve) for per_seed in curves.values() for curve in per_seed}
    assert len(steps) == 1, f"every CR must train for the same steps, got {sorted(steps)}"
    mean_curves = {r: [sum(step) / len(step) for step in zip(*per_seed)] for r, per_seed in curves.items()}
    means = [sum(c) / len(c) for c in mean_curves.values()]
    corr = statistics.pearson(ratios, means, alternative="greater")
    ordered = all(a < b for a, b in zip(means, means[1:]))
    per_seed = [{f"loss_cr{r}": sum(curves[r][i]) / len(curves[r][i]) for r in ratios}
                for i in range(len(faco_study.seeds))]
    faco_finding(
        holds=corr.p < ALPHA and ordered,
        summary=(f"mean loss {statistics.ordered([(f'CR{r}', m) for r, m in zip(ratios, means)])}; "
                 f"r={corr.r:+.2f} (p={corr.p:.3f})"),
        key=per_seed, key_metrics=[f"loss_cr{r}" for r in ratios],
        statistic=Statistic("Pearson r (mean loss vs CR)", corr.r, corr.p),
        base=faco_base, r=corr.r, p=corr.p, mean_loss={f"cr{r}": m for r, m in zip(ratios, means)},
        curves={f"cr{r}": c for r, c in mean_curves.items()},
    )


def independent_benchmarks(study):
    """The benchmarks a claim over "benchmarks" counts: the world's domains (or the preset's registry
    benchmarks), never the groups that contain them, so no question votes twice."""
    from faco.evaluation.groups import benchmark_choices

    return [b for b in benchmark_choices(study.preset)["benchmark"] if b not in GROUPS]


@pytest.mark.finding("sensitivity_majority")
def test_sensitivity_majority(faco_study, faco_finding):
    """The paper's form of finding 2: the stronger base loses more "in the majority of benchmark
    comparisons". One vote per independent benchmark (exact sign test) and a seed-clustered interval of
    the mean gap over benchmarks (each benchmark weighs the same)."""
    if len(faco_study.preset.bases) < 2:
        pytest.skip(f"preset {faco_study.preset.name!r} has one base: sensitivity compares a weaker and a stronger one")
    weak, strong = (b.name for b in faco_study.preset.bases[:2])  # presets list bases weakest first
    names = independent_benchmarks(faco_study)
    gaps_by_seed = [[] for _ in faco_study.seeds]  # [seed][benchmark] per-question gaps
    for name in names:
        drops = {base: item_drops_by_seed(faco_study, base, name) for base in (weak, strong)}
        for per_seed, s, w in zip(gaps_by_seed, drops[strong], drops[weak]):
            per_seed.append([a - b for a, b in zip(s, w)])
    gap = {name: sum(sum(seed[i]) for seed in gaps_by_seed) / sum(len(seed[i]) for seed in gaps_by_seed)
           for i, name in enumerate(names)}
    sign = statistics.sign_test(list(gap.values()))
    mean = statistics.cluster_bootstrap_mean_of_means(gaps_by_seed, seed=faco_study.preset.seed)
    faco_finding(
        holds=sign.p < ALPHA and mean.low > 0,
        summary=(f"{strong} loses more on {sign.positive}/{sign.n} benchmarks (sign test p={sign.p:.3f}); "
                 f"mean gap {mean.estimate:+.3f} {mean.level:.0%} CI [{mean.low:+.3f}, {mean.high:+.3f}]"),
        key=[{"gap": sum(sum(g) / len(g) for g in seed) / len(seed)} for seed in gaps_by_seed], key_metrics=["gap"],
        statistic=Statistic(f"sign test: stronger loses more on {sign.positive} of {sign.n} benchmarks",
                            sign.positive, sign.p), interval=mean,
        gaps=gap, positive=sign.positive, negative=sign.negative, n=sign.n, sign_p=sign.p,
        gap=mean.estimate, gap_ci=mean,
    )
