"""Does training longer on corrupted data hurt more? Finding 4 of the FACO study: little effect at low
CR, a continued decline at CR 100. Reads the checkpoint saved after every epoch; no extra runs.

    pytest experiments/test_epochs.py
    pytest experiments -k "longer and cr100"
"""

from __future__ import annotations

import pytest

from faco import statistics
from faco.statistics import ALPHA
from faco.study import ALL, finetuned


@pytest.mark.finding("longer")
def test_longer(faco_study, faco_finding, faco_base, faco_ratio):
    epochs = range(1, faco_study.preset.finetune.epochs + 1)
    correct = {e: faco_study.correct(finetuned(faco_base, faco_ratio, e), ALL) for e in epochs}
    scores = [sum(c) / len(c) for c in correct.values()]
    first, last = correct[epochs[0]], correct[epochs[-1]]
    decline = statistics.mcnemar(first, last)  # one-sided: the first epoch is right more often
    declines = decline.p < ALPHA
    expected = "a significant decline" if faco_ratio == 100 else "no significant decline"
    faco_finding(
        holds=declines if faco_ratio == 100 else not declines,
        summary=(f"expects {expected}: epochs {' -> '.join(f'{s:.3f}' for s in scores)} "
                 f"(change {scores[-1] - scores[0]:+.3f}, McNemar p={decline.p:.3f})"),
        base=faco_base, ratio=faco_ratio, scores={f"epoch{e}": s for e, s in zip(epochs, scores)},
        change=scores[-1] - scores[0], p=decline.p,
    )
