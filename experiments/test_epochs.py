"""Does training longer on corrupted data hurt more? Finding 4 of the FACO study: little effect at low
CR, a continued decline at CR 100. Reads the checkpoint saved after every epoch; no extra runs. A
decline is significant when McNemar's test (first vs last epoch, same questions) says so and the
seed-clustered bootstrap interval of the lost share lies above 0.

    pytest experiments/test_epochs.py
    pytest experiments -k "longer and cr100"
"""

from __future__ import annotations

import pytest

from faco.findings import statistics
from faco.findings.registry import Statistic
from faco.findings.statistics import ALPHA, Interval
from faco.evaluation.groups import ALL
from faco.study.study import finetuned


@pytest.mark.finding("longer")
def test_longer(faco_study, faco_finding, faco_base, faco_ratio):
    epochs = range(1, faco_study.preset.finetune.epochs + 1)
    if len(epochs) < 2:
        pytest.skip(f"preset {faco_study.preset.name!r} fine-tunes for one epoch: no later epoch to compare")

    def by_epoch(study):  # registry benchmarks: their mean, as the paper's Figure 5; the world: pooled questions
        score = study.benchmark_mean if study.on_benchmarks else study.accuracy
        scores = {f"epoch{e}": score(finetuned(faco_base, faco_ratio, e), ALL) for e in epochs}
        return {**scores, "change": scores[f"epoch{epochs[-1]}"] - scores["epoch1"]}

    pooled = by_epoch(faco_study)
    first = faco_study.by_seed(finetuned(faco_base, faco_ratio, epochs[0]), ALL)
    last = faco_study.by_seed(finetuned(faco_base, faco_ratio, epochs[-1]), ALL)
    decline = statistics.mcnemar(sum(first, []), sum(last, []))  # one-sided: the first epoch is right more often
    lost = statistics.cluster_bootstrap_mean(  # per question: 1 lost with more epochs, -1 gained
        [[int(a) - int(b) for a, b in zip(f, k)] for f, k in zip(first, last)], seed=faco_study.preset.seed)
    declines = decline.p < ALPHA and lost.low > 0
    change = Interval(pooled["change"], -lost.high, -lost.low, lost.level)  # the score change: minus the loss
    expected = "a significant decline" if faco_ratio == 100 else "no significant decline"
    path = " -> ".join(f"{pooled[f'epoch{e}']:.3f}" for e in epochs)
    faco_finding(
        holds=declines if faco_ratio == 100 else not declines,
        summary=(f"expects {expected}: epochs {path} "
                 f"(change {pooled['change']:+.3f}, McNemar p={decline.p:.3f}, "
                 f"change {change.level:.0%} CI [{change.low:+.3f}, {change.high:+.3f}])"),
        key=faco_study.each(by_epoch), key_metrics=["change"],
        statistic=Statistic("McNemar: score change first -> last epoch", pooled["change"], decline.p),
        interval=change,
        base=faco_base, ratio=faco_ratio, scores={f"epoch{e}": pooled[f"epoch{e}"] for e in epochs},
        change=pooled["change"], change_ci=change, p=decline.p,
    )
