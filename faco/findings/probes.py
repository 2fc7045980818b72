"""Linear probes on hidden states (faco.evaluation.hidden): does a layer still hold the true option?

A probe is a logistic regression (scikit-learn's: it is installed with the test tools, fits a 128-wide
tiny model's layer in milliseconds, and its lbfgs fit is deterministic) on (question, option) states,
label "this option is the true one"; it *reads* a question right when the option it scores highest is the
true one. It is fitted on the base's states and applied unchanged to a fine-tuned model's: what the
fine-tuned model still holds in the base's terms. A control probe fitted on shuffled labels (a random
option per question called true) and scored against shuffled labels says what reading "right" by chance
looks like through the same pipeline (scored against the true labels it would not: any chance alignment
of its weights with a salient truth direction wins the argmax over options).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Which questions fit the probe and which it is read on (held-out domains' questions only)."""

    fit: np.ndarray  # indices: the training domains' held-back questions and half of the held-out ones
    test: np.ndarray  # the other half of the held-out questions


def split(heldout: Sequence[bool], seed: int) -> Split:
    """A seeded half of the held-out questions is read; the probe never saw them."""
    heldout = np.asarray(heldout, dtype=bool)
    outside = np.flatnonzero(heldout)
    np.random.default_rng(seed).shuffle(outside)
    half = len(outside) // 2
    return Split(np.sort(np.concatenate([np.flatnonzero(~heldout), outside[:half]])), np.sort(outside[half:]))


def shuffled(gold: np.ndarray, options: int, seed: int) -> np.ndarray:
    """A random option per question as the control probe's "true" one."""
    return np.random.default_rng(seed + 1).integers(options, size=len(gold))


def fit(states: np.ndarray, gold: np.ndarray, layer: int):  # noqa: ANN201 - a fitted sklearn pipeline
    """The probe of `layer` on states [question, option, layer, hidden] with the true option `gold`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    questions, options = states.shape[:2]
    x = states[:, :, layer].reshape(questions * options, -1)
    y = (np.arange(options)[None, :] == gold[:, None]).reshape(-1)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)


def reads(probe, states: np.ndarray, gold: np.ndarray, layer: int) -> np.ndarray:  # noqa: ANN001
    """Per question: whether `probe` scores the true option highest of the options."""
    questions, options = states.shape[:2]
    scores = probe.decision_function(states[:, :, layer].reshape(questions * options, -1)).reshape(questions, options)
    return scores.argmax(axis=1) == gold
