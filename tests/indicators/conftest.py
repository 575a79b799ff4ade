"""Fixtures for the indicator tests: real S&P 500 daily bars (1999-2018, shipped by arch)."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def sp500_ohlc(sp500: pd.DataFrame) -> pd.DataFrame:
    """S&P 500 daily OHLC with lowercase ``open/high/low/close/volume`` columns (validated)."""
    df = sp500[["open", "high", "low", "close", "volume"]]
    assert len(df) > 5000 and df.index.is_monotonic_increasing
    return df
