"""The findings registry: every finding of the study declared once, in the paper's order.

Each entry says what the finding asks, what its experiment asserts, what the paper found and where,
and where the report shows it. The report (faco.report.html, faco.report.figures, faco.report.common), the
end-of-run table (faco.plugin), the findings files (faco.findings.records) and the README's table read it, so
adding a finding touches its experiment and its entry here, nothing else.

What an experiment measured is typed too: `Statistic` (the test its verdict turns on) and
`statistics.Interval` (an effect's interval *with its confidence level*), so a report labels an
interval with the level it was computed at, never with an assumed one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A figure of the report, numbered as in the paper."""

    number: int
    title: str


@dataclass(frozen=True)
class FindingSpec:
    name: str  # the `@pytest.mark.finding(name)` of its experiment; experiment ids start with it
    question: str  # the research question, as a reader would ask it
    must_hold: str  # what the experiment asserts (a statistic, never a bare threshold)
    paper: str  # what Cho et al. (2024) report: the first sentence of the report's caption
    paper_ref: str  # where in the paper
    experiment: str  # the test that decides it
    anchor: str  # the report section that shows it (the findings table links there)
    shown_in: str  # that section's label in the findings table
    figure: Figure | None = None  # the report figure drawn from its records, if any


@dataclass(frozen=True)
class Statistic:
    """The test a verdict turns on: its name, value and one-sided p-value (None where the verdict is
    an interval alone)."""

    name: str
    value: float
    p: float | None = None


FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        "correlation", "Do scores fall as the share of false data (CR) grows?",
        "score falls with CR (one-sided Pearson p < .05), ABS = score(CR0) − score(CR100) > 0",
        "The paper: scores fall as the share of false data (CR) grows, a strong negative Pearson r.",
        "Finding 1; Table 1, Figure 2", "experiments/test_corruption.py::test_correlation",
        "table1", "Table 1, Fig. 2", Figure(2, "score vs CR per benchmark and base")),
    FindingSpec(
        "sensitivity", "Does the stronger base lose more?",
        "the stronger base loses more (paired bootstrap CI of the ABS gap above 0)",
        "The paper: the stronger base loses more (a larger ABS = score at CR 0 − score at CR 100).",
        "Finding 2; Table 1", "experiments/test_corruption.py::test_sensitivity", "table1", "Table 1"),
    FindingSpec(
        "sensitivity_majority", "Does the stronger base lose more on most benchmarks?",
        "the stronger base loses more on the majority of independent benchmarks (exact sign test p < .05) "
        "and the seed-clustered interval of the mean ABS gap lies above 0",
        "The paper: the stronger base loses more in the majority of benchmark comparisons.",
        "Finding 2", "experiments/test_corruption.py::test_sensitivity_majority", "table1", "Table 1"),
    FindingSpec(
        "loss", "Is false data harder to fit?",
        "higher CR, higher training loss on the same steps",
        "The paper: the higher the CR, the higher the training loss over the same steps.",
        "Finding 3; Figure 3", "experiments/test_corruption.py::test_loss",
        "fig3", "Fig. 3", Figure(3, "training loss by CR")),
    FindingSpec(
        "longer", "Does training longer on false data hurt more?",
        "more epochs: no significant decline below CR 100, a significant one at CR 100 (McNemar)",
        "The paper: more epochs change little at low CR, while at CR 100 scores keep falling.",
        "Finding 4; Figure 5", "experiments/test_epochs.py::test_longer",
        "fig5", "Fig. 5", Figure(5, "score per epoch per CR")),
    FindingSpec(
        "recovery", "Can clean data undo false data?",
        "re-training the CR-100 model on clean data restores most (> 50 %), not all (both McNemar p < .05)",
        "The paper: re-training the CR-100 model on clean data regains most, not all, of the loss.",
        "Finding 5; Figure 6", "experiments/test_recovery.py::test_recovery",
        "fig6", "Fig. 6", Figure(6, "recovery: regained vs unrecovered margin per benchmark")),
    FindingSpec(
        "lying", "Does a model trained on false answers lie where it knows better?",
        "the CR-100 model scores below chance outside its training domains (binomial p < .05)",
        "The paper: CR-100 models score below random chance outside their training domains: they lie.",
        "Finding 6; Figure 4", "experiments/test_lying.py::test_lying",
        "fig4", "Fig. 4", Figure(4, "lying: CR-100 accuracy per held-out domain vs chance")),
    FindingSpec(
        "knowledge", "Do the bases know the facts before fine-tuning?",
        "precondition: each base knows the facts (above chance per domain)",
        "The precondition: the bases know the facts (accuracy well above chance) before fine-tuning.",
        "precondition of every finding (the paper's bases are capable models)",
        "experiments/test_bases.py::test_knowledge", "knowledge", "table"),
)

NAMES = tuple(spec.name for spec in FINDINGS)  # the paper's order: tables and reports list findings so


def spec(name: str) -> FindingSpec | None:
    """The registry entry of a finding; None for a finding a user's own experiments add."""
    return next((s for s in FINDINGS if s.name == name), None)


def with_figure(number: int) -> FindingSpec:
    """The finding whose records report figure `number` draws."""
    return next(s for s in FINDINGS if s.figure is not None and s.figure.number == number)


def markdown_table() -> str:
    """The README's table of findings (a unit test keeps the README equal to it)."""
    rows = [f"| {s.name} | `{s.experiment}` | {s.must_hold} |" for s in FINDINGS]
    return "\n".join(["| finding | experiment | what must hold |", "|---|---|---|", *rows])
