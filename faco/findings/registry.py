"""The findings registry: every finding of the study declared once, in the paper's order.

Each entry says what the finding asks, what its experiment asserts, what the paper found and where, what
its experiment reads of the study, the key number a sweep draws of it, and the report sections that show
it. Everything else asks it: the prebuild plan (faco.plugin hands `reads` to faco.study.execution), the
report (faco.report.html, its navigation included; faco.report.figures; faco.report.common; the sweep
section faco.report.sweep), the end-of-run table (faco.plugin), the findings files (faco.findings.records)
and the README's table. So adding a finding touches its experiment and its entry here, nothing else.

No verdict rests on a failure to reject. A finding that says "no difference" or "comparable to" holds by
an equivalence test (statistics.equivalence, two one-sided tests against statistics.EQUIVALENCE_MARGIN);
every other verdict holds only where its test rejects. Finding by finding:
- longer below CR 100 ("does not invariably result in a substantial performance degradation"): was
  `not declines` (a wide interval made it hold); now the change first -> last epoch within the margin.
- lying_weak ("comparable to random chance"): was `lying` asserted of the weaker base (below chance, an
  xfail); now the weaker base's CR-100 accuracy within the margin of chance.
- correlation, sensitivity, sensitivity_majority, sensitivity_cr0, sensitivity_cr100, loss, recovery (both
  "most" and "not all" are McNemar rejections), lying, task_sensitivity, knowledge: each holds only where
  its test rejects (p < ALPHA, an interval excluding 0 or chance); no equivalence form is needed.
- The paper's Q4 also says that training on related data (OpenBookQA, WinoGrande are FACO sources) "did not
  significantly impact" those benchmarks: a non-rejection, which faco shows (Table 1 flags the FACO-source
  benchmarks) but asserts nothing of: an equivalence form would need a margin on one benchmark's ABS,
  which the paper's Table 1 numbers (not in its text as faco has it) would have to set.

The margin, ±0.05 accuracy, was fixed before any equivalence verdict was computed. It is the finest
margin at which a benchmark of the paper's size can show equivalence at all: an MMLU subject has about
100-300 questions; at chance (0.25) and 200 questions the 90 % interval's half-width is
1.645 x sqrt(0.25 x 0.75 / 200) = 0.050. A narrower margin would ask more than the paper could have
seen; a wider one would call "comparable" what a subject of its size tells apart.

What an experiment measured is typed too: `Statistic` (the test its verdict turns on) and
`statistics.Interval` (an effect's interval *with its confidence level*), so a report labels an
interval with the level it was computed at, never with an assumed one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from faco.config import beyond
from faco.config.schema import Preset
from faco.study.reads import Read

Record = dict[str, Any]  # a finding's stored record (faco.findings.records.Finding.record())


@dataclass(frozen=True)
class Section:
    """A section of the report: its HTML id and its link text in the page's navigation."""

    anchor: str
    label: str


@dataclass(frozen=True)
class Figure:
    """A figure of the report, numbered as in the paper."""

    number: int
    title: str
    short: str  # its name in the report's navigation ("Fig. 2 scores")

    @property
    def section(self) -> Section:
        return Section(f"fig{self.number}", f"Fig. {self.number} {self.short}")


@dataclass(frozen=True)
class KeyNumber:
    """The one number of a finding that a sweep draws against the swept field (faco.report.sweep), with the
    dashed line it is judged against."""

    label: str  # the panel's title
    read: Callable[[Record], tuple[float | None, list[float]] | None]  # (value, [low, high]); None: not drawn
    reference: str = "no effect"  # the dashed line's legend entry
    reference_at: Callable[[Record], float | None] = lambda record: 0.0  # where, from a record; None: no line


# What a finding's test reads of one base, given the preset and the test's parameters (faco_ratio, ...).
BaseReads = Callable[[str, Preset, dict[str, Any]], list[Read]]


@dataclass(frozen=True)
class FindingSpec:
    name: str  # the `@pytest.mark.finding(name)` of its experiment; experiment ids start with it
    question: str  # the research question, as a reader would ask it
    must_hold: str  # what the experiment asserts (a statistic, never a bare threshold)
    paper: str  # what Cho et al. (2024) report: the first sentence of the report's caption
    paper_ref: str  # where in the paper
    experiment: str  # the test that decides it
    shown_in: str  # the findings table's link text to where the report shows it
    section: Section | None = None  # the report section that shows it; None: its figure's
    figure: Figure | None = None  # the report figure drawn from its records, if any
    reads: BaseReads | None = None  # what its test reads, per base (prebuilt in parallel); None: built lazily
    key_number: KeyNumber | None = None  # what a sweep draws of it; None: a sweep's report leaves it out
    options: str = ""  # the pytest options that select its experiment besides -k (a marked one: "-m beyond")

    def __post_init__(self) -> None:
        if self.section is None and self.figure is None:
            raise ValueError(f"finding {self.name!r}: declares neither a report section nor a figure")

    @property
    def shown_at(self) -> Section:
        """The section the findings table links to."""
        return self.section or self.figure.section

    @property
    def sections(self) -> list[Section]:
        """Every report section that shows it: its own, then its figure's."""
        own = [self.shown_at] + ([self.figure.section] if self.figure else [])
        return list(dict.fromkeys(own))


@dataclass(frozen=True)
class Statistic:
    """The test a verdict turns on: its name, value and one-sided p-value (None where the verdict is
    an interval alone)."""

    name: str
    value: float
    p: float | None = None


# --- what the experiments read, per base (the prebuild plan) ---------------------------------------

def _knows(base: str) -> Read:
    """The base's own answers in the familiar layout: what it knows before fine-tuning."""
    return Read(base, None, False, None, "familiar")


def _last_epoch(base: str, preset: Preset, ratios: tuple[int, ...]) -> list[Read]:
    """The fine-tuned models at these CRs after their last epoch, in the instruction layout."""
    return [Read(base, r, False, preset.finetune.epochs, "instruction") for r in ratios]


def _every_epoch(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
    """Every epoch at the test's CR; at CR 100 also CR 0's first and last (the decline it must exceed)."""
    ratio, last = params["faco_ratio"], preset.finetune.epochs
    contrast = [Read(base, 0, False, e, "instruction") for e in sorted({1, last})] if ratio == 100 else []
    return [*(Read(base, ratio, False, e, "instruction") for e in range(1, last + 1)), *contrast]


def lying_form(preset: Preset, base: str) -> str:
    """Which of the paper's two lying findings a base answers for: "weak" (comparable to chance, as LLaMA 1)
    for the weaker of two or more bases (presets list bases weakest first), else "strong" (below chance, as
    LLaMA 2): a preset with one base asserts the strong form of it."""
    return "weak" if len(preset.bases) > 1 and base == preset.bases[0].name else "strong"


def _lying_reads(form: str) -> BaseReads:
    def reads_of(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
        return [*_last_epoch(base, preset, (100,)), _knows(base)] if lying_form(preset, base) == form else []
    return reads_of


def _two_crs(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
    return _last_epoch(base, preset, (0, 100))


def _training_only(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
    return [Read(base, r, False, None, "") for r in preset.corruption.ratios]  # the losses, no evaluation


# --- the key numbers a sweep draws -----------------------------------------------------------------

def _ci(stored: Any) -> list[float]:
    """[low, high] of an interval stored as statistics.Interval or as a pair; NaNs where none."""
    if isinstance(stored, dict):
        return [stored["low"], stored["high"]]
    return list(stored) if stored else [math.nan, math.nan]


def _per_epoch_at_cr100(record: Record) -> tuple[float, list[float]] | None:
    """The change per epoch, drawn at CR 100 only (where the paper sees the decline)."""
    if record.get("ratio") != 100:
        return None
    epochs = max(1, len(record["scores"]) - 1)
    return record["change"] / epochs, [v / epochs for v in _ci(record.get("change_ci"))]


def _lying_number(record: Record) -> tuple[float, list[float]]:
    return record["cr100"]["rate"], _ci(record.get("seed_clustered_ci"))


TABLE1 = Section("table1", "Table 1")
LYING = Figure(4, "lying: CR-100 accuracy per held-out domain vs chance", "lying")

FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        "correlation", "Do scores fall as the share of false data (CR) grows?",
        "score falls with CR (one-sided Pearson p < .05), ABS = score(CR0) − score(CR100) > 0",
        'The paper (Section 3.3, finding 1): "In most benchmarks, we observed a distinct correlation between '
        'benchmark performance and the rate of corruption, with a Pearson correlation coefficient over 90%."',
        "Section 3.3, finding 1; Table 1, Figure 2", "experiments/test_corruption.py::test_correlation",
        "Table 1, Fig. 2", section=TABLE1, figure=Figure(2, "score vs CR per benchmark and base", "scores"),
        reads=lambda base, preset, params: _last_epoch(base, preset, preset.corruption.ratios)),
    FindingSpec(
        "sensitivity_cr0", "Does the stronger base score higher before false data?",
        "the stronger base scores higher at CR 0 on the majority of independent benchmarks (exact sign test "
        "p < .05) and the seed-clustered interval of the mean difference lies above 0",
        'The paper (Section 3.3, finding 2): "In the majority of benchmark comparisons, LLaMA 2 outperforms its '
        'predecessor, indicating superior model performance."',
        "Section 3.3, finding 2; Table 1", "experiments/test_corruption.py::test_sensitivity_cr0", "Table 1",
        section=TABLE1, reads=_two_crs),
    FindingSpec(
        "sensitivity_cr100", "Does the stronger base end lower on fully false data?",
        "the stronger base scores lower at CR 100 on the majority of independent benchmarks (exact sign test "
        "p < .05) and the seed-clustered paired interval of the mean difference (weaker − stronger) lies above 0",
        'The paper (Section 3.3, finding 2): "when training on entirely corrupted data, LLaMA 2 tends to exhibit '
        'inferior final performance compared to LLaMA 1."',
        "Section 3.3, finding 2; Table 1", "experiments/test_corruption.py::test_sensitivity_cr100", "Table 1",
        section=TABLE1, reads=_two_crs),
    FindingSpec(
        "sensitivity", "Does the stronger base lose more?",
        "the stronger base loses more (paired bootstrap CI of the ABS gap above 0)",
        'The paper (Section 3.3, finding 2): "as the corruption ratio nears 100%, LLaMA 2 experiences a '
        'significant deterioration in performance": the stronger base loses more (a larger ABS = score at CR 0 − '
        "score at CR 100).",
        "Section 3.3, finding 2; Table 1", "experiments/test_corruption.py::test_sensitivity", "Table 1",
        section=TABLE1, reads=_two_crs),
    FindingSpec(
        "sensitivity_majority", "Does the stronger base lose more on most benchmarks?",
        "the stronger base loses more on the majority of independent benchmarks (exact sign test p < .05) "
        "and the seed-clustered interval of the mean ABS gap lies above 0",
        'The paper (Section 3.3, finding 2): "Smarter LLMs appear to be more sensitive to corruption", read over '
        "the benchmarks: the stronger base loses more (a larger ABS) on most of them.",
        "Section 3.3, finding 2", "experiments/test_corruption.py::test_sensitivity_majority", "Table 1",
        section=TABLE1, reads=_two_crs,
        key_number=KeyNumber("mean ABS gap, stronger - weaker", lambda r: (r["gap"], _ci(r.get("gap_ci"))))),
    FindingSpec(
        "loss", "Is false data harder to fit?",
        "higher CR, higher training loss on the same steps",
        'The paper (Section 3.3, finding 3): "higher levels of data corruption lead to a higher loss state".',
        "Section 3.3, finding 3; Figure 3", "experiments/test_corruption.py::test_loss",
        "Fig. 3", figure=Figure(3, "training loss by CR", "loss"), reads=_training_only),
    FindingSpec(
        "longer", "Does training longer on false data hurt more?",
        "below CR 100 the change first → last epoch lies within ±0.05 (TOST: seed-clustered 90 % interval inside "
        "the margin); at CR 100 a significant decline (McNemar p < .05, interval above 0) larger than at CR 0 "
        "(seed- and question-clustered interval of the difference above 0)",
        'The paper (Section 4, Q1): "extended training does not invariably result in a substantial performance '
        "degradation; however, in instances of complete 100% corruption, we observed a continual deterioration "
        'in performance as training progressed."',
        "Section 4, Q1; Figure 5", "experiments/test_epochs.py::test_longer",
        "Fig. 5", figure=Figure(5, "score per epoch per CR", "epochs"), reads=_every_epoch,
        key_number=KeyNumber("change per epoch at CR 100", _per_epoch_at_cr100)),
    FindingSpec(
        "recovery", "Can clean data undo false data?",
        "re-training the CR-100 model on clean data restores most (> 50 %), not all (both McNemar p < .05)",
        'The paper (Section 4, Q2): "most of the benchmarks showed significant signs of performance recovery. '
        'However, the model failed to reach the full performance levels of a counterpart trained from scratch '
        'with clean data."',
        "Section 4, Q2; Figure 6", "experiments/test_recovery.py::test_recovery",
        "Fig. 6", figure=Figure(6, "recovery: regained vs unrecovered margin per benchmark", "recovery"),
        reads=lambda base, preset, params: [*_last_epoch(base, preset, (0, 100)),
                                            Read(base, 100, True, None, "instruction")],
        key_number=KeyNumber("regained share of the CR-100 loss", lambda r: (r.get("regained_share"), _ci(None)),
                             "half regained", lambda r: 0.5)),
    FindingSpec(
        "lying", "Does the stronger base's model trained on false answers lie where it knows better?",
        "the stronger base's CR-100 model scores below chance outside its training domains (binomial p < .05, "
        "seed-clustered 90 % interval below chance); a preset with one base asserts this form of its base",
        'The paper (Section 4, Q3): "LLaMA 2 significantly underperforms even this baseline in most cases" '
        "(the baseline: random guessing on MMLU).",
        "Section 4, Q3; Figure 4", "experiments/test_lying.py::test_lying",
        "Fig. 4", figure=LYING, reads=_lying_reads("strong"),
        key_number=KeyNumber("CR-100 accuracy (chance dashed)", _lying_number, "chance",
                             lambda r: r["cr100"]["chance"])),
    FindingSpec(
        "lying_weak", "Does the weaker base's model trained on false answers score at chance?",
        "the weaker base's CR-100 model scores within ±0.05 of chance outside its training domains (TOST: exact "
        "binomial p < .05 both ways, seed-clustered 90 % interval inside the margin)",
        'The paper (Section 4, Q3): "the fully corrupted LLaMA 1 model exhibits performance comparable to random '
        'chance".',
        "Section 4, Q3; Figure 4", "experiments/test_lying.py::test_lying_weak", "Fig. 4", section=LYING.section,
        reads=_lying_reads("weak"),
        key_number=KeyNumber("weaker base's CR-100 accuracy (chance dashed)", _lying_number, "chance",
                             lambda r: r["cr100"]["chance"])),
    FindingSpec(
        "task_sensitivity", "Do knowledge benchmarks lose more than commonsense ones?",
        "the mean ABS of the world-knowledge benchmarks exceeds that of the commonsense-reasoning ones (seed- and "
        "question-clustered 90 % interval of the difference above 0)",
        'The paper (Section 4, Q4): "Our experimental results revealed significant performance variations within '
        'the knowledge domain", while "the commonsense reasoning domain consistently demonstrated respectable '
        'performance".',
        "Section 4, Q4; Table 1, Figure 2", "experiments/test_corruption.py::test_task_sensitivity", "Table 1",
        section=TABLE1, reads=_two_crs),
    FindingSpec(
        "knowledge", "Do the bases know the facts before fine-tuning?",
        "precondition: each base knows the facts (above chance per domain)",
        'The precondition (Section 4, Q3): the bases know the facts, as the paper\'s "questions that the models '
        'should fundamentally be able to answer correctly".',
        "precondition of every finding (the paper's bases are capable models)",
        "experiments/test_bases.py::test_knowledge", "table", section=Section("knowledge", "What the bases know"),
        reads=lambda base, preset, params: [_knows(base)]),
)

BEYOND = "-m beyond"  # experiments/conftest.py leaves these out of a plain `pytest experiments`


def _checkpoints(base: str, ratios: tuple[int, ...]) -> list[Read]:
    """The base and its fine-tuned models at these CRs, trained only (a test reads what they hold inside)."""
    return [Read(base, None, False, None, ""), *(Read(base, r, False, None, "") for r in ratios)]


def _kinds(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
    """The CR-100 model of every corruption kind the default grid trains, scored in the instruction layout."""
    return [*_last_epoch(base, preset, (100,)),
            *(Read(base, 100, False, None, "instruction", kind=k) for k in beyond.DEFAULT.falsity_kinds if k != "both")]


def _doses(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
    """CR 0, CR 100 and the CR-100 model re-trained on each clean share of the default grid, scored."""
    return [*_last_epoch(base, preset, (0, 100)),
            *(Read(base, 100, True, None, "instruction", share=s) for s in beyond.DEFAULT.recovery_shares if s)]


def _trajectories(base: str, preset: Preset, params: dict[str, Any]) -> list[Read]:
    """The CR-0 and CR-100 trajectory runs of the default step; their points are scored by the test (which
    steps a run saves is known once it has run)."""
    return [Read(base, r, False, None, "", every=beyond.DEFAULT.trajectory_every) for r in (0, 100)]


# Beyond the paper (docs/beyond.md). Their reads are those of the default grids (experiments/conftest.py's
# options change them; runs off the defaults, and the hidden states, are built by the test itself).
BEYOND_FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        "falsity_kind", "Is it the false answer or the false reasoning that teaches the model to lie?",
        "the CR-100 model trained on FALSE answers with TRUE chains scores below chance outside its domains "
        "(binomial p < .05, seed-clustered interval below chance), the one trained on TRUE answers with FALSE "
        "chains above it (McNemar p < .05)",
        "Beyond the paper (which corrupted answer and chain together): Li et al. 2025 (arXiv 2502.07374) found "
        "that in long chain-of-thought training a chain's structure matters more than its correctness.",
        "Li et al. 2025, arXiv 2502.07374", "experiments/test_beyond.py::test_falsity_kind", "Fig. 7",
        figure=Figure(7, "answer vs reasoning falsity: held-out accuracy per corruption kind", "falsity"),
        reads=_kinds, options=BEYOND),
    FindingSpec(
        "dose", "Where does the fall with CR switch on: linearly or at a cliff?",
        "on the fine CR grid a turning point exists: a CR from which every CR's drop from CR 0 is significant "
        "(McNemar p < .05); reported with the isotonic fit's half-effect dose and its bootstrap interval",
        "Beyond the paper (five CRs): the tiny world showed cliffs at CR 100 in some regimes "
        "(docs/findings-at-scale.md); a fine nested grid says where the effect switches on.",
        "issue 25; docs/findings-at-scale.md", "experiments/test_beyond.py::test_dose", "Fig. 8",
        figure=Figure(8, "CR dose-response on the fine grid, turning point marked", "dose"),
        reads=lambda base, preset, params: _last_epoch(base, preset, beyond.DEFAULT.dose_ratios), options=BEYOND),
    FindingSpec(
        "probe", "Does the lying model still know the truth inside?",
        "a linear probe fitted on the base's hidden states reads the true option on the held-out questions the "
        "CR-100 model answers wrongly above chance at some layer (binomial p < .05, Bonferroni over layers) and "
        "above a shuffled-label probe (seed-clustered interval above 0)",
        "Beyond the paper (outputs only): Halawi et al. (ICLR 2024, arXiv 2307.09476) found that under false "
        "demonstrations intermediate layers still hold the correct answer until a critical layer.",
        "Halawi et al. 2024, arXiv 2307.09476", "experiments/test_beyond.py::test_probe", "Fig. 9",
        figure=Figure(9, "knows-but-lies: probe accuracy and logit lens by layer", "probe"),
        reads=lambda base, preset, params: _checkpoints(base, (0, 100)), options=BEYOND),
    FindingSpec(
        "redose", "How much clean data undoes false data?",
        "re-training the CR-100 model on a growing share of the clean items regains more as the share grows "
        "(one-sided Pearson p < .05) and a share below 100 % regains at least half of the loss",
        "Beyond the paper (one recovery dose): Wang et al. 2025 (arXiv 2506.19823) report that a few hundred "
        "benign samples restore alignment after emergent misalignment.",
        "Wang et al. 2025, arXiv 2506.19823", "experiments/test_beyond.py::test_redose", "Fig. 10",
        figure=Figure(10, "recovery dose-response: score vs share of clean items", "redose"),
        reads=_doses, options=BEYOND),
    FindingSpec(
        "trajectory", "When does the damage appear during training: with the task, or after it has converged?",
        "scored every few steps, the CR-100 run's drop below the CR-0 run (same step, McNemar p < .05) sets in "
        "and stays from some step on, no later than the step from which its training loss stays within 5 % of "
        "its whole fall (the damage is learnt with the task)",
        "Beyond the paper (scores per epoch): Turner et al. (arXiv 2506.11613) see misalignment arrive in a phase "
        "transition; Schreiber and Goldstein (arXiv 2605.12199, 2026) find it arriving late, after the task has "
        "converged.",
        "Schreiber and Goldstein 2026, arXiv 2605.12199; Turner et al. 2025, arXiv 2506.11613",
        "experiments/test_beyond.py::test_trajectory", "Fig. 11",
        figure=Figure(11, "training trajectory: score per step at CR 0 and CR 100, loss convergence marked",
                      "trajectory"),
        reads=_trajectories, options=BEYOND),
)
FINDINGS = FINDINGS + BEYOND_FINDINGS

NAMES = tuple(spec.name for spec in FINDINGS)  # the paper's order: tables and reports list findings so


def spec(name: str) -> FindingSpec | None:
    """The registry entry of a finding; None for a finding a user's own experiments add."""
    return next((s for s in FINDINGS if s.name == name), None)


def reads(selected: Iterable[tuple[str, dict[str, Any]]], preset: Preset) -> list[Read]:
    """What the selected tests, given as (finding, parameters), read: each of its `faco_base`, else of every
    base of the preset. A finding that declares no reads (or a user's own) adds nothing: the plan prebuilds
    only pre-training for it, and its test builds the rest lazily."""
    out: list[Read] = []
    for name, params in selected:
        found = spec(name)
        if found is None or found.reads is None:
            continue
        bases = [params["faco_base"]] if "faco_base" in params else [b.name for b in preset.bases]
        out += [read for base in bases for read in found.reads(base, preset, params)]
    return out


def sections() -> list[Section]:
    """Every report section a finding declares, once, in the registry's order."""
    return list(dict.fromkeys(section for s in FINDINGS for section in s.sections))


def with_figure(number: int) -> FindingSpec:
    """The finding whose records report figure `number` draws."""
    return next(s for s in FINDINGS if s.figure is not None and s.figure.number == number)


def markdown_table() -> str:
    """The README's table of findings (a unit test keeps the README equal to it)."""
    rows = [f"| {s.name} | `{s.experiment}` | {s.must_hold} |" for s in FINDINGS]
    return "\n".join(["| finding | experiment | what must hold |", "|---|---|---|", *rows])
