"""Does false instruction data harm a model in proportion to its share? The paper's Section 3.3, findings
1-3, and its Section 4, Q4.

1. correlation: benchmark scores fall as the corruption ratio (CR) grows; ABS = score(CR0) - score(CR100).
2. sensitivity, in the paper's three parts: the stronger base scores higher at CR 0 on most benchmarks
   (sensitivity_cr0), ends lower at CR 100 (sensitivity_cr100), and loses more (a larger ABS), per
   benchmark (sensitivity) and over the independent benchmarks (sensitivity_majority). The majority
   forms are exact sign tests, one vote per benchmark, with a seed-clustered interval of the mean.
3. loss: the higher the CR, the higher the training loss on the same steps.
Q4. task_sensitivity: world-knowledge benchmarks lose more than commonsense-reasoning ones.

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
from faco.evaluation import benchmarks
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
    weak, strong = two_bases(faco_study)
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


def two_bases(study):
    """(weaker, stronger): presets list bases weakest first; a preset with one skips, saying why."""
    if len(study.preset.bases) < 2:
        pytest.skip(f"preset {study.preset.name!r} has one base: sensitivity compares a weaker and a stronger one")
    return tuple(b.name for b in study.preset.bases[:2])


def over_benchmarks(study, names, per_question):
    """A difference read over independent benchmarks as the paper reads it: `per_question(name)` gives per
    seed the per-question values of benchmark `name`; returns each benchmark's pooled mean, the exact sign
    test over them (one vote per benchmark) and the seed-clustered interval of their mean (each benchmark
    weighs the same), and per seed the mean over benchmarks (the key number)."""
    by_seed = [[] for _ in study.seeds]  # [seed][benchmark] per-question values
    for name in names:
        for per_seed, values in zip(by_seed, per_question(name)):
            per_seed.append(values)
    means = {name: sum(sum(seed[i]) for seed in by_seed) / sum(len(seed[i]) for seed in by_seed)
             for i, name in enumerate(names)}
    sign = statistics.sign_test(list(means.values()))
    mean = statistics.cluster_bootstrap_mean_of_means(by_seed, seed=study.preset.seed)
    key = [sum(sum(values) / len(values) for values in seed) / len(seed) for seed in by_seed]
    return means, sign, mean, key


def paired_at(study, ratio, higher, lower):
    """Per benchmark, per seed, per question: base `higher` right minus base `lower` right at `ratio`."""
    def per_question(name):
        return [[int(a) - int(b) for a, b in zip(h, w)] for h, w in
                zip(study.by_seed(finetuned(higher, ratio), name), study.by_seed(finetuned(lower, ratio), name))]
    return per_question


@pytest.mark.finding("sensitivity_majority")
def test_sensitivity_majority(faco_study, faco_finding):
    """The paper's form of finding 2: the stronger base loses more, read over the benchmarks. One vote per
    independent benchmark (exact sign test) and a seed-clustered interval of the mean gap over benchmarks
    (each benchmark weighs the same)."""
    weak, strong = two_bases(faco_study)

    def gaps(name):
        drops = {base: item_drops_by_seed(faco_study, base, name) for base in (weak, strong)}
        return [[a - b for a, b in zip(s, w)] for s, w in zip(drops[strong], drops[weak])]

    decide_majority(faco_study, faco_finding, gaps, f"{strong} loses more", metric="gap",
                    stated="stronger loses more")


@pytest.mark.finding("sensitivity_cr0")
def test_sensitivity_cr0(faco_study, faco_finding):
    """Finding 2's first part: before false data the stronger base scores higher "in the majority of
    benchmark comparisons" (CR 0: the same instruction data, all of it true)."""
    weak, strong = two_bases(faco_study)
    decide_majority(faco_study, faco_finding, paired_at(faco_study, 0, strong, weak),
                    f"{strong} scores higher than {weak} at CR 0")


@pytest.mark.finding("sensitivity_cr100")
def test_sensitivity_cr100(faco_study, faco_finding):
    """Finding 2's second part: on fully false data the stronger base ends *lower* than the weaker."""
    weak, strong = two_bases(faco_study)
    decide_majority(faco_study, faco_finding, paired_at(faco_study, 100, weak, strong),
                    f"{strong} scores lower than {weak} at CR 100")


def decide_majority(study, faco_finding, per_question, claim, metric="difference", stated=None):
    """Holds where the difference (`metric`) is positive on most independent benchmarks (sign test) and the
    seed-clustered paired interval of its mean over benchmarks lies above 0."""
    diffs, sign, mean, key = over_benchmarks(study, independent_benchmarks(study), per_question)
    faco_finding(
        holds=sign.p < ALPHA and mean.low > 0,
        summary=(f"{claim} on {sign.positive}/{sign.n} benchmarks (sign test p={sign.p:.3f}); "
                 f"mean {metric} {mean.estimate:+.3f} {mean.level:.0%} CI [{mean.low:+.3f}, {mean.high:+.3f}]"),
        key=[{metric: k} for k in key], key_metrics=[metric],
        statistic=Statistic(f"sign test: {stated or claim} on {sign.positive} of {sign.n} benchmarks", sign.positive,
                            sign.p),
        interval=mean, positive=sign.positive, negative=sign.negative, n=sign.n, sign_p=sign.p,
        **{f"{metric}s": diffs, metric: mean.estimate, f"{metric}_ci": mean},
    )


KNOWLEDGE, COMMONSENSE = "world knowledge", "commonsense reasoning"  # the paper's categories Q4 compares


@pytest.mark.finding("task_sensitivity")
def test_task_sensitivity(faco_study, faco_finding, faco_base):
    """The paper's Section 4, Q4: knowledge benchmarks change most, commonsense reasoning least. The mean ABS
    of the world-knowledge benchmarks minus that of the commonsense ones (each benchmark weighs the same),
    with a seed- and question-clustered interval; FACO-source benchmarks (in_domain) count like any other
    and are flagged in Table 1."""
    if not faco_study.on_benchmarks:
        pytest.skip("the tiny world's domains are all knowledge (facts): no commonsense benchmark to compare")
    categories = {name: benchmarks.get(name).category for name in independent_benchmarks(faco_study)}
    groups = {c: [n for n, category in categories.items() if category == c] for c in (KNOWLEDGE, COMMONSENSE)}
    lacking = [c for c, members in groups.items() if not members]
    if lacking:
        pytest.skip(f"preset {faco_study.preset.name!r} evaluates no {' and no '.join(lacking)} benchmark: "
                    "Q4 compares the two categories")
    names = groups[KNOWLEDGE] + groups[COMMONSENSE]
    weights = [sign / len(groups[c]) for c, sign in ((KNOWLEDGE, 1), (COMMONSENSE, -1)) for _ in groups[c]]
    by_seed = [list(per_seed) for per_seed in zip(*(item_drops_by_seed(faco_study, faco_base, n) for n in names))]
    contrast = statistics.cluster_bootstrap_contrast(by_seed, weights, seed=faco_study.preset.seed)
    abs_ = {n: sum(map(sum, (seed[i] for seed in by_seed))) / sum(len(seed[i]) for seed in by_seed)
            for i, n in enumerate(names)}
    per_category = {c: sum(abs_[n] for n in groups[c]) / len(groups[c]) for c in groups}
    key = [{"difference": sum(w * sum(v) / len(v) for w, v in zip(weights, seed))} for seed in by_seed]
    faco_finding(
        holds=contrast.low > 0,
        summary=(f"{faco_base}: mean ABS {KNOWLEDGE} {per_category[KNOWLEDGE]:+.3f}, {COMMONSENSE} "
                 f"{per_category[COMMONSENSE]:+.3f}; difference {contrast.estimate:+.3f} {contrast.level:.0%} CI "
                 f"[{contrast.low:+.3f}, {contrast.high:+.3f}]"),
        key=key, key_metrics=["difference"],
        statistic=Statistic("mean ABS, knowledge - commonsense", contrast.estimate), interval=contrast,
        base=faco_base, abs=abs_, categories={c: groups[c] for c in groups}, abs_by_category=per_category,
        difference=contrast.estimate, difference_ci=contrast,
    )
