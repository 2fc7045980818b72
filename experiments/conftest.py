"""The experiments beyond the paper (marked `beyond`, experiments/test_beyond.py) train runs the paper's
findings do not, so a plain `pytest experiments` leaves them out; `-m beyond` (or any -m expression that
names them) runs them. Their grids are options here, not preset fields (faco.config.beyond says why)."""

from __future__ import annotations

import pytest

from faco.config import beyond
from faco.config.schema import ConfigError

BEYOND = "beyond"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faco")
    group.addoption("--faco-dose-ratios", default=None, metavar="0,10,..,100",
                    help="the CR grid of the dose-response (-m beyond -k dose); default "
                         f"{','.join(map(str, beyond.DEFAULT.dose_ratios))}; runs off it are built in the test process")
    group.addoption("--faco-recovery-shares", default=None, metavar="0,5,..,100",
                    help="percent of the clean items of the recovery dose-response (-m beyond -k redose); default "
                         f"{','.join(map(str, beyond.DEFAULT.recovery_shares))}")
    group.addoption("--faco-trajectory-every", default=None, metavar="STEPS",
                    help="the training trajectory's checkpoint (and scores) every this many steps (-m beyond -k "
                         f"trajectory); default {beyond.DEFAULT.trajectory_every}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BEYOND in (config.getoption("markexpr") or ""):
        return
    left_out = [item for item in items if item.get_closest_marker(BEYOND)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker(BEYOND)]


_GRIDS = pytest.StashKey[beyond.BeyondConfig]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_GRIDS] = _grids(config)  # a bad grid is one usage error before any work


@pytest.fixture(scope="session")
def faco_beyond(pytestconfig: pytest.Config) -> beyond.BeyondConfig:
    """The grids of this run's experiments beyond the paper (faco.config.beyond.BeyondConfig)."""
    return pytestconfig.stash[_GRIDS]


def _grids(pytestconfig: pytest.Config) -> beyond.BeyondConfig:
    changes = {}
    for option, field in (("faco_dose_ratios", "dose_ratios"), ("faco_recovery_shares", "recovery_shares")):
        text = pytestconfig.getoption(option)
        if text is not None:
            try:
                changes[field] = tuple(int(part) for part in text.split(",") if part.strip())
            except ValueError:
                raise pytest.UsageError(f"faco: --{option.replace('_', '-')} {text!r}: expected integers like 0,10,100")
    every = pytestconfig.getoption("faco_trajectory_every")
    if every is not None:
        try:
            changes["trajectory_every"] = int(every)
        except ValueError:
            raise pytest.UsageError(f"faco: --faco-trajectory-every {every!r}: expected a number of steps")
    try:
        return beyond.BeyondConfig(**changes)
    except ConfigError as error:
        raise pytest.UsageError(f"faco: {error}") from None
