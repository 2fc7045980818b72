"""What the paper could not measure (docs/beyond.md): answer vs reasoning falsity, the CR dose-response and
its turning point, knows-but-lies inside the model, the recovery dose-response and the training trajectory.
They train runs the paper's findings do not (a CR-100 run per corruption kind, a fine CR grid, recovery
doses, runs that save a checkpoint every few steps), so they are marked `beyond` and run only when asked:

    pytest experiments -m beyond                     # all five, the preset's seeds
    pytest experiments -m beyond -k falsity_kind --faco-seed 0
    pytest experiments -m beyond -k "dose and strong"

Each is a finding like the paper's (faco.findings.registry): what it asserts is stated there and in each
test's docstring, and a finding that does not hold fails (or, once its baseline says so, is a known negative).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from faco.findings import probes, statistics
from faco.findings.registry import Statistic
from faco.findings.statistics import ALPHA
from faco.study.study import falsified, finetuned, recovered, stepped, untuned

pytestmark = pytest.mark.beyond


# --- 3. answer vs reasoning falsity ---------------------------------------------------------------

@pytest.mark.finding("falsity_kind")
def test_falsity_kind(faco_study, faco_finding, faco_beyond, faco_base, faco_heldout):
    """The false *answer* carries the below-chance transfer: the CR-100 model whose FALSE items keep a TRUE
    chain (`answer`) scores below chance outside its domains (binomial p < .05, seed-clustered interval below
    chance), and the one whose items keep the TRUE answer under a FALSE chain (`chain`) scores above it
    (McNemar p < .05)."""
    chance = faco_study.chance(faco_heldout)
    kinds = faco_beyond.falsity_kinds
    by_seed = {kind: faco_study.by_seed(falsified(faco_base, kind), faco_heldout) for kind in kinds}
    pooled = {kind: sum(lists, []) for kind, lists in by_seed.items()}
    below = {kind: statistics.binomial(sum(c), len(c), chance, alternative="less") for kind, c in pooled.items()}
    spread = {kind: statistics.cluster_bootstrap_mean(lists, seed=faco_study.preset.seed)
              for kind, lists in by_seed.items()}
    wanted = {"answer", "chain"} <= set(kinds)
    above = statistics.mcnemar(pooled["chain"], pooled["answer"]) if wanted else None
    score = lambda study: {kind: study.accuracy(falsified(faco_base, kind), faco_heldout) for kind in kinds}  # noqa: E731
    faco_finding(
        holds=wanted and below["answer"].p < ALPHA and spread["answer"].high < chance and above.p < ALPHA,
        summary=(" ".join(f"{kind} {below[kind].rate:.3f} [{spread[kind].low:.3f}, {spread[kind].high:.3f}]"
                          for kind in kinds) + f" vs chance {chance:.2f}"
                 + (f"; chain above answer McNemar p={above.p:.3f}" if above else "; needs answer and chain")),
        key=faco_study.each(score), key_metrics=list(kinds),
        statistic=Statistic("binomial: answer-false CR-100 accuracy below chance", below["answer"].rate,
                            max(below["answer"].p, above.p) if above else None) if "answer" in below else None,
        interval=spread.get("answer"),
        base=faco_base, benchmark=faco_heldout, chance=chance, kinds=list(kinds),
        scores={kind: below[kind].rate for kind in kinds}, p_below_chance={kind: below[kind].p for kind in kinds},
        ci={kind: spread[kind] for kind in kinds}, p_chain_above_answer=above.p if above else None,
    )


# --- 1. the CR dose-response and its turning point --------------------------------------------------

@pytest.mark.finding("dose")
def test_dose(faco_study, faco_finding, faco_beyond, faco_base, faco_benchmark):
    """Where the fall with CR switches on: on the fine nested grid (beyond.dose_ratios), the turning point
    is the smallest CR from which every CR's drop from CR 0 is significant (McNemar p < .05); it must exist.
    Also the half-effect dose: where the isotonic (non-increasing) fit of score vs CR first reaches half
    of the CR-0 to CR-100 drop, with a seed-clustered bootstrap interval; a cliff has it near the turning
    point, a linear fall near CR 50."""
    grid = list(faco_beyond.dose_ratios)
    by_seed = [np.column_stack([faco_study.studies[i].correct(finetuned(faco_base, r), faco_benchmark)
                                for r in grid]) for i in range(len(faco_study.seeds))]
    pooled = np.concatenate(by_seed)
    scores = pooled.mean(axis=0)
    p = [statistics.mcnemar(pooled[:, 0], pooled[:, j]).p for j in range(len(grid))]
    turn = statistics.turning_point(grid, p)
    half = statistics.cluster_bootstrap(by_seed, lambda rows: statistics.half_dose(grid, rows.mean(axis=0)),
                                        seed=faco_study.preset.seed)
    per_seed = [{f"cr{r}": float(s) for r, s in zip(grid, rows.mean(axis=0))} for rows in by_seed]
    faco_finding(
        holds=turn is not None,
        summary=(f"turns at CR {turn if turn is not None else 'none'}; half-effect dose {half.estimate:.0f} "
                 f"[{half.low:.0f}, {half.high:.0f}]; " + " ".join(f"{s:.2f}" for s in scores)),
        key=per_seed, key_metrics=[f"cr{r}" for r in grid],
        statistic=Statistic("first CR whose drop from CR 0 stays significant (McNemar)",
                            math.nan if turn is None else turn, p[grid.index(turn)] if turn is not None else None),
        interval=half,
        base=faco_base, benchmark=faco_benchmark, scores={f"cr{r}": float(s) for r, s in zip(grid, scores)},
        per_seed={f"cr{r}": [s[f"cr{r}"] for s in per_seed] for r in grid},
        p_drop={f"cr{r}": v for r, v in zip(grid, p)}, turning_point=turn, half_dose=half,
        isotonic={f"cr{r}": float(v) for r, v in zip(grid, statistics.isotonic(scores))},
    )


# --- 4. knows-but-lies inside the model ------------------------------------------------------------

@pytest.mark.finding("probe")
def test_probe(faco_study, faco_finding, faco_base):
    """The lying model still knows: a per-layer probe fitted on the base's hidden states to read the true
    option, applied to the CR-100 model on held-out questions it answers wrongly, reads the truth above
    chance at some layer (binomial p < .05, Bonferroni over layers) and above a probe fitted on shuffled
    labels (seed-clustered interval of the paired difference above 0) at that layer. Also the logit lens:
    the true option's rank among the options per layer."""
    if faco_study.on_benchmarks:
        pytest.skip("the probe reads the world's questions; a preset of registry benchmarks has none to read")
    models = {"base": untuned(faco_base), "cr0": finetuned(faco_base, 0), "cr100": finetuned(faco_base, 100)}
    seeds = [probe_seed(study, models) for study in faco_study.studies]
    layers = len(seeds[0]["accuracy"]["base"])
    chance = faco_study.chance("heldout")
    lies = [np.concatenate([s["lies"][layer] for s in seeds]) for layer in range(layers)]
    tests = [statistics.binomial(int(x.sum()), len(x), chance, alternative="greater") for x in lies]
    best = int(np.argmin([t.p for t in tests]))
    gap = statistics.cluster_bootstrap_mean([s["lies"][best].astype(float) - s["control"][best] for s in seeds],
                                            seed=faco_study.preset.seed)
    p = min(1.0, tests[best].p * layers)
    mean = lambda name, part: [float(np.mean([s[part][name][layer] for s in seeds])) for layer in range(layers)]  # noqa: E731
    faco_finding(
        holds=p < ALPHA and gap.low > 0,
        summary=(f"CR100 wrong on {len(lies[0])} held-out questions; probe reads the truth on "
                 + " ".join(f"L{layer} {x.mean():.2f}" for layer, x in enumerate(lies))
                 + f" (best L{best}, Bonferroni p={p:.3f}; over shuffled {gap.estimate:+.2f} "
                   f"[{gap.low:+.2f}, {gap.high:+.2f}])"),
        key=[{f"lies_l{layer}": float(s["lies"][layer].mean()) for layer in range(layers)} for s in seeds],
        key_metrics=[f"lies_l{layer}" for layer in range(layers)],
        statistic=Statistic(f"binomial: probe reads the truth above chance at layer {best} (Bonferroni)",
                            tests[best].rate, p), interval=gap,
        base=faco_base, chance=chance, layers=layers, best_layer=best, wrong=len(lies[0]),
        knows_but_lies=[float(x.mean()) for x in lies],
        control=[float(np.mean(np.concatenate([s["control"][layer] for s in seeds]))) for layer in range(layers)],
        probe_accuracy={name: mean(name, "accuracy") for name in models},
        lens_top={name: mean(name, "lens_top") for name in models},
    )


def probe_seed(study, models) -> dict:  # noqa: ANN001
    """One seed's probes: fitted per layer on the base's states (and a control on shuffled labels), read on
    each model's held-out test questions; the CR-100 model's wrong answers read apart."""
    states = {name: study.hidden(model) for name, model in models.items()}
    base = states["base"]
    halves = probes.split(base["heldout"], study.preset.seed)
    gold, test = base["gold"], halves.test
    options = base["states"].shape[1]
    control_gold = probes.shuffled(gold[halves.fit], options, study.preset.seed)
    wrong = test[states["cr100"]["choice"][test] != gold[test]]
    control_test = probes.shuffled(gold[wrong], options, study.preset.seed + 1)  # scored against shuffled labels too
    out = {"accuracy": {name: [] for name in models}, "lens_top": {name: [] for name in models},
           "lies": [], "control": []}
    for layer in range(base["states"].shape[2]):
        probe = probes.fit(base["states"][halves.fit], gold[halves.fit], layer)
        control = probes.fit(base["states"][halves.fit], control_gold, layer)
        for name, arrays in states.items():
            out["accuracy"][name].append(float(probes.reads(probe, arrays["states"][test], gold[test], layer).mean()))
            out["lens_top"][name].append(float((arrays["lens_rank"][test, layer] == 0).mean()))
        out["lies"].append(probes.reads(probe, states["cr100"]["states"][wrong], gold[wrong], layer))
        out["control"].append(probes.reads(control, states["cr100"]["states"][wrong], control_test, layer).astype(float))
    return out


# --- 2. the recovery dose-response ------------------------------------------------------------------

@pytest.mark.finding("redose")
def test_redose(faco_study, faco_finding, faco_beyond, faco_base, faco_group):
    """How much clean data undoes false data: the CR-100 model re-trained on a growing share of the clean
    items (beyond.recovery_shares, the same epochs, so steps grow with the share) regains more as the dose
    grows (one-sided Pearson p < .05 of score vs dose), and some dose below 100 % regains at least half of
    the loss. Also the smallest dose no longer significantly short of CR 0 (McNemar), if any."""
    shares = list(faco_beyond.recovery_shares)
    clean = faco_study.correct(finetuned(faco_base, 0), faco_group)
    dosed = {s: faco_study.correct(recovered(faco_base, s), faco_group) for s in shares}
    cr0, cr100 = float(np.mean(clean)), float(np.mean(dosed[0]))
    scores = {s: float(np.mean(c)) for s, c in dosed.items()}
    lost = cr0 - cr100
    regained = {s: (v - cr100) / lost if lost > 0 else math.nan for s, v in scores.items()}
    short = {s: statistics.mcnemar(clean, c).p for s, c in dosed.items()}
    corr = statistics.pearson(shares, [scores[s] for s in shares], alternative="greater")
    half = next((s for s in shares if regained[s] >= 0.5), None)
    recovered_at = next((s for s in shares if short[s] >= ALPHA), None)
    per_seed = faco_study.each(lambda one: {f"share{s}": one.accuracy(recovered(faco_base, s), faco_group)
                                            for s in shares})
    faco_finding(
        holds=corr.p < ALPHA and half is not None and half < 100,
        summary=(f"CR0 {cr0:.3f}; " + " ".join(f"{s}% {scores[s]:.3f}" for s in shares)
                 + f"; half regained at {half if half is not None else 'none'} %, not short of CR0 at "
                   f"{recovered_at if recovered_at is not None else 'none'} % (r={corr.r:+.2f}, p={corr.p:.3f})"),
        key=per_seed, key_metrics=[f"share{s}" for s in shares],
        statistic=Statistic("Pearson r (score vs clean dose)", corr.r, corr.p), interval=corr.interval,
        base=faco_base, benchmark=faco_group, cr0=cr0, cr100=cr100,
        scores={f"share{s}": v for s, v in scores.items()}, regained={f"share{s}": v for s, v in regained.items()},
        p_short_of_cr0={f"share{s}": v for s, v in short.items()}, half_dose=half, not_short_at=recovered_at,
    )


# --- 5. the training trajectory ---------------------------------------------------------------------

@pytest.mark.finding("trajectory")
def test_trajectory(faco_study, faco_finding, faco_beyond, faco_base, faco_group):
    """When the damage appears during training: the CR-0 and CR-100 runs again, each with a checkpoint every
    beyond.trajectory_every steps (and at the last), each scored. The onset is the first step from which the
    CR-100 model's drop below the CR-0 model of the same step stays significant (McNemar p < .05, seeds
    pooled); the loss has converged at the first step from which the CR-100 run's training loss stays within
    5 % of its whole fall (statistics.converged). Asserted: an onset exists and comes no later than the
    convergence (the damage is learnt with the task, not after it). Also reported, where the benchmark has a
    chance level: the first step from which the CR-100 model stays below chance (binomial p < .05)."""
    every = faco_beyond.trajectory_every
    runs = {r: [study.trajectory(faco_base, r, every) for study in faco_study.studies] for r in (0, 100)}
    steps = runs[100][0][0]
    assert all(run[0] == steps for ratio in runs.values() for run in ratio), "the seeds' runs saved other steps"
    model = lambda ratio, step: stepped(faco_base, ratio, every, step)  # noqa: E731
    correct = {r: [faco_study.correct(model(r, s), faco_group) for s in steps] for r in (0, 100)}
    p = [statistics.mcnemar(clean, false).p for clean, false in zip(correct[0], correct[100])]
    onset = statistics.onset(steps, p)
    curves = [[row["loss"] for row in log] for _, log in runs[100]]
    loss = list(zip([row["step"] for row in runs[100][0][1]], np.mean(curves, axis=0).tolist()))  # seeds' mean
    converged = statistics.converged(steps, loss)
    chance = faco_study.chance(faco_group)
    below = ([statistics.binomial(sum(c), len(c), chance, alternative="less").p for c in correct[100]]
             if chance is not None else None)
    lying = statistics.onset(steps, below) if below else None
    scores = {f"cr{r}": {f"step{s}": float(np.mean(c)) for s, c in zip(steps, correct[r])} for r in (0, 100)}
    drop = statistics.cluster_bootstrap_mean(
        [[int(a) - int(b) for a, b in zip(clean, false)]
         for clean, false in zip(*(faco_study.by_seed(model(r, onset or steps[-1]), faco_group) for r in (0, 100)))],
        seed=faco_study.preset.seed)
    per_seed = faco_study.each(lambda one: {f"step{s}": one.accuracy(model(100, s), faco_group) for s in steps})
    when = lambda step: "never" if step is None else f"step {step}"  # noqa: E731
    faco_finding(
        holds=onset is not None and onset <= converged,
        summary=(f"CR 100 drops below CR 0 from {when(onset)} (drop there {drop.estimate:+.3f} "
                 f"[{drop.low:+.3f}, {drop.high:+.3f}]), its loss converged at step {converged}"
                 + (f", below chance from {when(lying)}" if below else "") + "; CR 100 by step "
                 + " ".join(f"{scores['cr100'][f'step{s}']:.2f}" for s in steps)),
        key=per_seed, key_metrics=[f"step{s}" for s in steps],
        statistic=Statistic("first step from which CR 100's drop below CR 0 stays significant (McNemar)",
                            math.nan if onset is None else onset, p[steps.index(onset)] if onset else None),
        interval=drop,
        base=faco_base, benchmark=faco_group, every=every, steps=steps, scores=scores, chance=chance,
        p_drop={f"step{s}": v for s, v in zip(steps, p)}, onset=onset, converged=converged, below_chance_from=lying,
        loss=[{"step": s, "loss": v} for s, v in loss],
    )
