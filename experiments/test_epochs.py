"""Does training longer on corrupted data hurt more? The paper's Section 4, Q1: extended training brings
no substantial degradation below CR 100, a continual one at CR 100. Reads the checkpoint saved after every
epoch; no extra runs. Per question, the change from the first to the last epoch is 1 (gained), -1 (lost)
or 0, and its seed-clustered bootstrap interval (90 %) is what the verdicts read:

- below CR 100, "no substantial degradation" is an equivalence: the interval of the score change lies
  within ±EQUIVALENCE_MARGIN (two one-sided tests at 5 %; the margin and why: faco.findings.registry),
  never "no decline was detected";
- at CR 100, the decline is significant (McNemar, first vs last epoch on the same questions, and the
  interval of the lost share above 0) *and* larger than CR 0's (the per-question difference of the two
  declines, seed- and question-clustered, above 0): a decline training itself would cause is no finding.

    pytest experiments/test_epochs.py
    pytest experiments -k "longer and cr100"
"""

from __future__ import annotations

import pytest

from faco.findings import statistics
from faco.findings.registry import Statistic
from faco.findings.statistics import ALPHA, EQUIVALENCE_MARGIN, Interval
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
    lost_by_seed = lost_per_question(faco_study, faco_base, faco_ratio, epochs[-1])
    first, last = (sum(faco_study.by_seed(finetuned(faco_base, faco_ratio, e), ALL), []) for e in (1, epochs[-1]))
    decline = statistics.mcnemar(first, last)  # one-sided: the first epoch is right more often
    lost = statistics.cluster_bootstrap_mean(lost_by_seed, seed=faco_study.preset.seed)
    change = Interval(pooled["change"], -lost.high, -lost.low, lost.level)  # the score change: minus the loss
    path = " -> ".join(f"{pooled[f'epoch{e}']:.3f}" for e in epochs)
    measured = (f"epochs {path} (change {pooled['change']:+.3f}, McNemar p={decline.p:.3f}, "
                f"change {change.level:.0%} CI [{change.low:+.3f}, {change.high:+.3f}])")
    numbers = {"base": faco_base, "ratio": faco_ratio, "scores": {f"epoch{e}": pooled[f"epoch{e}"] for e in epochs},
               "change": pooled["change"], "change_ci": change, "p": decline.p}
    common = {"key": faco_study.each(by_epoch), "key_metrics": ["change"], "interval": change}
    if faco_ratio != 100:
        same = statistics.equivalence(change, 0.0, EQUIVALENCE_MARGIN)
        faco_finding(
            holds=same.equivalent,
            summary=f"expects a change within ±{same.margin:.2f}: {measured}",
            statistic=Statistic(f"TOST: score change first -> last epoch within ±{same.margin:.2f}", pooled["change"]),
            margin=same.margin, **common, **numbers)
        return
    # the decline at CR 100 minus CR 0's, per question (the same questions at both CRs)
    beyond = statistics.cluster_bootstrap_mean(
        [[a - b for a, b in zip(at100, at0)]
         for at100, at0 in zip(lost_by_seed, lost_per_question(faco_study, faco_base, 0, epochs[-1]))],
        seed=faco_study.preset.seed)
    faco_finding(
        holds=decline.p < ALPHA and lost.low > 0 and beyond.low > 0,
        summary=(f"expects a significant decline, larger than at CR 0: {measured}; decline beyond CR 0's "
                 f"{beyond.estimate:+.3f} {beyond.level:.0%} CI [{beyond.low:+.3f}, {beyond.high:+.3f}]"),
        statistic=Statistic("McNemar: score change first -> last epoch", pooled["change"], decline.p),
        beyond_cr0=beyond.estimate, beyond_cr0_ci=beyond, **common, **numbers)


def lost_per_question(study, base, ratio, last):
    """Per seed, per question: 1 if the first epoch answers it right and the last wrong, -1 the reverse, else 0
    (their mean is the share lost with more epochs)."""
    first = study.by_seed(finetuned(base, ratio, 1), ALL)
    final = study.by_seed(finetuned(base, ratio, last), ALL)
    return [[int(a) - int(b) for a, b in zip(f, k)] for f, k in zip(first, final)]
