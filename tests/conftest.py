"""Shared fixtures. Data from ../shared/data is optional: tests that need it skip with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared_data_dir() -> Path | None:
    env = os.environ.get("SERVESIM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


SHARED_DATA = _shared_data_dir()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (or $SERVESIM_SHARED_DATA); skips when the measured data is not present."""
    if SHARED_DATA is None:
        pytest.skip("measured data not present (../shared/data or $SERVESIM_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def colocated_config():
    """Builder of a one-pool colocated RunConfig (servesim.sim.testing.colocated_config); test
    modules that build configs at import time call that function directly."""
    from servesim.sim.testing import colocated_config as build

    return build
