"""The settings of the experiments beyond the paper (docs/beyond.md): the fine CR grid, the recovery doses,
the corruption kinds and the trajectory's step. Not a preset table: every stage's key covers
faco.config.schema, so a field there would rebuild the paper's runs; each run these experiments train is
keyed by its own CR, share, kind or step instead, and the options that change them are
experiments/conftest.py's. So the trajectory's step is here, not in [finetune] (as `finetune.eval_every`).
"""

from __future__ import annotations

from dataclasses import dataclass

from faco.config.schema import ConfigError

FALSITY_KINDS = ("both", "answer", "chain")  # what an item's FALSE version falsifies: the paper's both, or one


def check_percents(where: str, values: tuple[int, ...]) -> None:
    """Integer percents, increasing and distinct, from 0 to 100: a dose-response needs both ends."""
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            raise ConfigError(f"{where}: {value!r} is outside 0..100 (percent, integer)")
    if list(values) != sorted(set(values)) or not values or values[0] != 0 or values[-1] != 100:
        raise ConfigError(f"{where} must be increasing, distinct and run from 0 to 100, got {list(values)}")


@dataclass(frozen=True)
class BeyondConfig:
    dose_ratios: tuple[int, ...] = tuple(range(0, 101, 10))  # the CR dose-response's nested grid
    recovery_shares: tuple[int, ...] = (0, 5, 10, 25, 50, 100)  # percent of the clean items re-trained on
    falsity_kinds: tuple[str, ...] = FALSITY_KINDS  # the corruption kinds the answer-vs-reasoning test trains
    # the training trajectory: a checkpoint (and its scores) every this many optimizer steps, and at the last
    # (tiny: 57 steps an epoch, 171 in all: 9 points, 3 of them the epochs' ends)
    trajectory_every: int = 19

    def __post_init__(self) -> None:
        for name in ("dose_ratios", "recovery_shares", "falsity_kinds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        every = self.trajectory_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(f"trajectory every: {every!r} is not a positive number of steps")
        check_percents("dose ratios", self.dose_ratios)
        check_percents("recovery shares", self.recovery_shares)
        if any(k not in FALSITY_KINDS for k in self.falsity_kinds) or not {"answer", "chain"} <= set(self.falsity_kinds):
            raise ConfigError(f"falsity kinds: answer and chain (and both, if wanted) of {FALSITY_KINDS}; got "
                              f"{list(self.falsity_kinds)}")


DEFAULT = BeyondConfig()
