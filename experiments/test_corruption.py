"""Does false instruction data harm a model in proportion to its share? Findings 1-3 of the FACO study.

1. correlation: benchmark scores fall as the corruption ratio (CR) grows; ABS = score(CR0) - score(CR100).
2. sensitivity: the stronger base loses more (a larger ABS) than the weaker one.
3. loss: the higher the CR, the higher the training loss on the same steps.

    pytest experiments/test_corruption.py
    pytest experiments -k "correlation and strong and heldout"

With several seeds (`--faco-seeds 0,1,2`) scores pool the questions of every seed; ABS gets a
bootstrap interval over seeds.
"""

from __future__ import annotations

import pytest

from faco import statistics
from faco.statistics import ALPHA
from faco.study import finetuned


@pytest.mark.finding("correlation")
def test_correlation(faco_study, faco_finding, faco_base, faco_benchmark):
    ratios = list(faco_study.preset.corruption.ratios)
    per_seed = {r: faco_study.per_seed(finetuned(faco_base, r), faco_benchmark) for r in ratios}
    scores = [sum(v) / len(v) for v in per_seed.values()]
    corr = statistics.pearson(ratios, scores, alternative="less")
    drops = [clean - corrupt for clean, corrupt in zip(per_seed[ratios[0]], per_seed[ratios[-1]])]
    drop = statistics.bootstrap_mean(drops, seed=faco_study.preset.seed)
    faco_finding(
        holds=corr.p < ALPHA and drop.estimate > 0,
        summary=f"r={corr.r:+.2f} (p={corr.p:.3f}) ABS={drop.estimate:+.3f}; " + " ".join(f"{s:.2f}" for s in scores),
        base=faco_base, benchmark=faco_benchmark, r=corr.r, p=corr.p, r_ci=[corr.ci_low, corr.ci_high],
        abs=drop.estimate, abs_ci=[drop.low, drop.high],
        scores={f"cr{r}": s for r, s in zip(ratios, scores)},
        per_seed={f"cr{r}": v for r, v in per_seed.items()},
    )


@pytest.mark.finding("sensitivity")
def test_sensitivity(faco_study, faco_finding, faco_benchmark):
    weak, strong = (b.name for b in faco_study.preset.bases[:2])  # presets list bases weakest first
    drops = {}
    for base in (weak, strong):
        clean = faco_study.correct(finetuned(base, 0), faco_benchmark)
        corrupt = faco_study.correct(finetuned(base, 100), faco_benchmark)
        drops[base] = [int(a) - int(b) for a, b in zip(clean, corrupt)]  # per question: 1 lost, -1 gained
    gap = statistics.bootstrap_mean_difference(drops[strong], drops[weak], seed=faco_study.preset.seed)
    abs_ = {base: sum(d) / len(d) for base, d in drops.items()}
    faco_finding(
        holds=gap.low > 0,
        summary=(f"ABS {strong}={abs_[strong]:+.3f} {weak}={abs_[weak]:+.3f}; "
                 f"gap {gap.estimate:+.3f} CI [{gap.low:+.3f}, {gap.high:+.3f}]"),
        benchmark=faco_benchmark, abs=abs_, gap=gap.estimate, gap_ci=[gap.low, gap.high],
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
    faco_finding(
        holds=corr.p < ALPHA and ordered,
        summary=f"mean loss by CR {' < '.join(f'{m:.3f}' for m in means)}; r={corr.r:+.2f} (p={corr.p:.3f})",
        base=faco_base, r=corr.r, p=corr.p, mean_loss={f"cr{r}": m for r, m in zip(ratios, means)},
        curves={f"cr{r}": c for r, c in mean_curves.items()},
    )
