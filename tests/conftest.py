"""Shared pytest fixtures: real-data locations and skips."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data``; skips the test with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real market data not found at {SHARED_DATA} (a fresh clone has no ../shared/data)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def sp500():
    """S&P 500 daily OHLC 1999-2018 shipped by the ``arch`` package, as a validated frame."""
    from data_feeds import load_ohlc

    return load_ohlc("builtin:sp500")
