"""Can clean data undo false data? Finding 5 of the FACO study: re-training the CR-100 model on the CR-0
data restores most, not all, of what it lost: above CR 100 and below CR 0 by McNemar's test on the same
questions and by seed-clustered bootstrap intervals, and more than half of the loss regained.

    pytest experiments -k recovery
"""

from __future__ import annotations

import math

import pytest

from faco.findings import statistics
from faco.findings.registry import Statistic
from faco.findings.statistics import ALPHA
from faco.study.study import finetuned, recovered


@pytest.mark.finding("recovery")
def test_recovery(faco_study, faco_finding, faco_base, faco_group):
    models = {"cr0": finetuned(faco_base, 0), "cr100": finetuned(faco_base, 100), "recovered": recovered(faco_base)}

    def margins(study):
        score = {name: study.accuracy(model, faco_group) for name, model in models.items()}
        return {**score, "regained": score["recovered"] - score["cr100"], "unrecovered": score["cr0"] - score["recovered"]}

    by_seed = {name: faco_study.by_seed(model, faco_group) for name, model in models.items()}
    correct = {name: sum(lists, []) for name, lists in by_seed.items()}
    pooled = margins(faco_study)
    above = statistics.mcnemar(correct["recovered"], correct["cr100"])  # recovered above CR 100
    below = statistics.mcnemar(correct["cr0"], correct["recovered"])  # and still below CR 0
    regained, unrecovered = (statistics.cluster_bootstrap_mean(
        [[int(a) - int(b) for a, b in zip(x, y)] for x, y in zip(by_seed[high], by_seed[low])],
        seed=faco_study.preset.seed) for high, low in (("recovered", "cr100"), ("cr0", "recovered")))
    lost = pooled["cr0"] - pooled["cr100"]
    share = pooled["regained"] / lost if lost > 0 else float("nan")  # nan (stored as null): nothing was lost
    faco_finding(
        holds=above.p < ALPHA and below.p < ALPHA and regained.low > 0 and unrecovered.low > 0 and share > 0.5,
        summary=summary(pooled, share, above.p, below.p),
        key=faco_study.each(margins), key_metrics=["regained", "unrecovered"],
        # both McNemar tests must reject: the larger p decides (an intersection-union test)
        statistic=Statistic("regained share (McNemar above CR 100 and below CR 0)", share, max(above.p, below.p)),
        interval=regained,
        base=faco_base, benchmark=faco_group, scores={k: pooled[k] for k in models}, regained_share=share,
        p_above_cr100=above.p, p_below_cr0=below.p, regained_ci=regained, unrecovered_ci=unrecovered,
    )


def summary(scores, share, p_above, p_below):
    """The finding's line: the three scores in their true order and the share regained, or that CR 100
    lost nothing against CR 0 (no share to speak of)."""
    tests = f"(p above CR100 {p_above:.3f}, p below CR0 {p_below:.3f})"
    if math.isnan(share):
        cr0_cr100 = statistics.ordered([("CR0", scores["cr0"]), ("CR100", scores["cr100"])])
        return f"nothing was lost ({cr0_cr100}); recovered {scores['recovered']:.3f} {tests}"
    chain = statistics.ordered([("CR0", scores["cr0"]), ("recovered", scores["recovered"]), ("CR100", scores["cr100"])])
    return f"{chain}: regained {share:.0%} of the loss {tests}"
