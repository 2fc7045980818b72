"""Can clean data undo false data? Finding 5 of the FACO study: re-training the CR-100 model on the CR-0
data restores most, not all, of what it lost.

    pytest experiments -k recovery
"""

from __future__ import annotations

import pytest

from faco import statistics
from faco.statistics import ALPHA
from faco.study import finetuned, recovered


@pytest.mark.finding("recovery")
def test_recovery(faco_study, faco_finding, faco_base, faco_group):
    clean = faco_study.correct(finetuned(faco_base, 0), faco_group)
    corrupt = faco_study.correct(finetuned(faco_base, 100), faco_group)
    restored = faco_study.correct(recovered(faco_base), faco_group)
    score = {name: sum(c) / len(c) for name, c in (("cr0", clean), ("cr100", corrupt), ("recovered", restored))}
    regained = statistics.mcnemar(restored, corrupt)  # recovered above CR 100
    short = statistics.mcnemar(clean, restored)  # and still below CR 0
    lost = score["cr0"] - score["cr100"]
    share = (score["recovered"] - score["cr100"]) / lost if lost > 0 else float("nan")
    faco_finding(
        holds=regained.p < ALPHA and short.p < ALPHA and share > 0.5,
        summary=(f"CR0 {score['cr0']:.3f} > recovered {score['recovered']:.3f} > CR100 {score['cr100']:.3f}: "
                 f"regained {share:.0%} of the loss (p above CR100 {regained.p:.3f}, p below CR0 {short.p:.3f})"),
        base=faco_base, benchmark=faco_group, scores=score, regained_share=share,
        p_above_cr100=regained.p, p_below_cr0=short.p,
    )
