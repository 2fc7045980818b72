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

    def by_epoch(study):
        scores = {f"epoch{e}": study.accuracy(finetuned(faco_base, faco_ratio, e), ALL) for e in epochs}
        return {**scores, "change": scores[f"epoch{epochs[-1]}"] - scores["epoch1"]}

    pooled = by_epoch(faco_study)
    first = faco_study.correct(finetuned(faco_base, faco_ratio, epochs[0]), ALL)
    last = faco_study.correct(finetuned(faco_base, faco_ratio, epochs[-1]), ALL)
    decline = statistics.mcnemar(first, last)  # one-sided: the first epoch is right more often
    declines = decline.p < ALPHA
    expected = "a significant decline" if faco_ratio == 100 else "no significant decline"
    path = " -> ".join(f"{pooled[f'epoch{e}']:.3f}" for e in epochs)
    faco_finding(
        holds=declines if faco_ratio == 100 else not declines,
        summary=(f"expects {expected}: epochs {path} "
                 f"(change {pooled['change']:+.3f}, McNemar p={decline.p:.3f})"),
        key=faco_study.each(by_epoch), key_metrics=["change"],
        base=faco_base, ratio=faco_ratio, scores={f"epoch{e}": pooled[f"epoch{e}"] for e in epochs},
        change=pooled["change"], p=decline.p,
    )
