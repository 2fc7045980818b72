"""Do the bases know the facts? The precondition of every finding (the paper's bases know what false
data later makes them deny): each base's accuracy per domain in the pre-training layout, held-out
domains included, must lie well above chance.

    pytest experiments -k knowledge
"""

from __future__ import annotations

import pytest

from faco.findings import statistics
from faco.findings.registry import Statistic
from faco.findings.statistics import ALPHA
from faco.study.study import untuned


@pytest.mark.finding("knowledge")
def test_knowledge(faco_study, faco_finding, faco_base, faco_benchmark):
    chance = faco_study.chance(faco_benchmark)
    if chance is None:
        pytest.skip(f"{faco_benchmark} has no single chance level (generation, or mixed benchmarks)")
    correct = faco_study.correct(untuned(faco_base), faco_benchmark, layout="familiar")
    above = statistics.binomial(sum(correct), len(correct), chance, alternative="greater")
    faco_finding(
        holds=above.p < ALPHA,
        summary=(f"{faco_base} base knows {above.k}/{above.n} = {above.rate:.3f} "
                 f"(chance {above.chance:.2f}, p={above.p:.2g})"),
        key=faco_study.each(lambda s: {"accuracy": s.accuracy(untuned(faco_base), faco_benchmark, layout="familiar")}),
        key_metrics=["accuracy"], statistic=Statistic("binomial: accuracy above chance", above.rate, above.p),
        interval=above.interval,
        base=faco_base, benchmark=faco_benchmark, accuracy=above.rate, n=above.n, p=above.p,
    )
