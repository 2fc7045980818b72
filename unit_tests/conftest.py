"""Fixtures several unit-test files share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("FACO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The dataset samples beside the clone (FACO_SHARED_DIR overrides the folder that holds them)."""
    if not SHARED.is_dir():
        pytest.skip(f"no dataset samples at {SHARED} (set FACO_SHARED_DIR)")
    return SHARED
