"""What a test reads of the study, as the findings registry declares it (faco.findings.registry) and the
prebuild jobs and `faco status` plan from it. Its own module, importing nothing, so the registry and
the report stay free of the model libraries the study's stages load.
"""

from __future__ import annotations

from typing import NamedTuple


class Read(NamedTuple):
    """One thing a test reads of the study: a model's checkpoint and, unless `layout` is "", its
    evaluation in that layout. faco.findings.registry says what each finding's test reads."""

    base: str
    ratio: int | None  # None: the base itself
    recovered: bool  # the CR-100 model re-trained on clean data
    epoch: int | None  # None: the last (or, for the base and recovery, the only one)
    layout: str  # "": training only (the losses), no evaluation
    # beyond the paper (docs/beyond.md): what the FALSE items falsify, the clean share a recovery run re-trains
    # on, and a training trajectory's step (its run only: which steps it saves is known once it has run)
    kind: str = "both"
    share: int = 100
    every: int | None = None


def run_label(base: str, ratio: int | None, recovered: bool = False, share: int = 100, kind: str = "both") -> str:
    """How people see a run (faco.study.study.Model.label, the plan's runs in faco.study.costs): "strong",
    "strong cr100", "strong cr100 answer false", "strong recovered", "strong recovered on 25 %"."""
    if recovered:
        return f"{base} recovered" + (f" on {share} %" if share != 100 else "")
    if ratio is None:
        return base
    return f"{base} cr{ratio}" + (f" {kind} false" if kind != "both" else "")
