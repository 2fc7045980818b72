"""Does false instruction data harm a model in proportion to its share? Findings 1-3 of the FACO study.

1. correlation: benchmark scores fall as the corruption ratio (CR) grows; ABS = score(CR0) - score(CR100).
2. sensitivity: the stronger base loses more (a larger ABS) than the weaker one.
3. loss: the higher the CR, the higher the training loss on the same steps.

    pytest experiments/test_corruption.py
    pytest experiments -k "correlation and strong and heldout"
"""

from __future__ import annotations

import pytest

from faco import statistics
from faco.statistics import ALPHA


@pytest.mark.finding("correlation")
def test_correlation(faco_study, faco_finding, faco_base, faco_benchmark):
    ratios = list(faco_study.preset.corruption.ratios)
    scores = [faco_study.accuracy(faco_study.finetuned(faco_base, r), faco_benchmark) for r in ratios]
    corr = statistics.pearson(ratios, scores, alternative="less")
    drop = scores[0] - scores[-1]
    faco_finding(
        holds=corr.p < ALPHA and drop > 0,
        summary=f"r={corr.r:+.2f} (p={corr.p:.3f}) ABS={drop:+.3f}; " + " ".join(f"{s:.2f}" for s in scores),
        base=faco_base, benchmark=faco_benchmark, r=corr.r, p=corr.p, abs=drop,
        scores={f"cr{r}": s for r, s in zip(ratios, scores)},
    )


@pytest.mark.finding("sensitivity")
def test_sensitivity(faco_study, faco_finding, faco_benchmark):
    weak, strong = (b.name for b in faco_study.preset.bases[:2])  # presets list bases weakest first
    drops = {}
    for base in (weak, strong):
        clean = faco_study.correct(faco_study.finetuned(base, 0), faco_benchmark)
        corrupt = faco_study.correct(faco_study.finetuned(base, 100), faco_benchmark)
        drops[base] = [int(a) - int(b) for a, b in zip(clean, corrupt)]  # per item: 1 lost, -1 gained
    gap = statistics.bootstrap_mean_difference(drops[strong], drops[weak], seed=faco_study.preset.seed)
    faco_finding(
        holds=gap.low > 0,
        summary=(f"ABS {strong}={sum(drops[strong]) / len(drops[strong]):+.3f} {weak}="
                 f"{sum(drops[weak]) / len(drops[weak]):+.3f}; gap {gap.estimate:+.3f} CI [{gap.low:+.3f}, {gap.high:+.3f}]"),
        benchmark=faco_benchmark, abs={b: sum(d) / len(d) for b, d in drops.items()},
        gap=gap.estimate, gap_ci=[gap.low, gap.high],
    )


@pytest.mark.finding("loss")
def test_loss(faco_study, faco_finding, faco_base):
    ratios = list(faco_study.preset.corruption.ratios)
    curves = {r: [row["loss"] for row in faco_study.losses(faco_base, r)] for r in ratios}
    assert len({len(c) for c in curves.values()}) == 1, "every CR must train for the same steps"
    means = [sum(curves[r]) / len(curves[r]) for r in ratios]
    corr = statistics.pearson(ratios, means, alternative="greater")
    ordered = all(a < b for a, b in zip(means, means[1:]))
    faco_finding(
        holds=corr.p < ALPHA and ordered,
        summary=f"mean loss by CR {' < '.join(f'{m:.3f}' for m in means)}; r={corr.r:+.2f} (p={corr.p:.3f})",
        base=faco_base, r=corr.r, p=corr.p, mean_loss={f"cr{r}": m for r, m in zip(ratios, means)},
        curves={f"cr{r}": c for r, c in curves.items()},
    )
