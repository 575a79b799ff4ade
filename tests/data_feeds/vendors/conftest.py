"""Fixtures of the vendor tests: the 10 quote dates, the served 2019 rows, the fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from vendor_fakes import DAYS, FakeMassive, FakeThetaTerminal, index_bars, source_rows


@pytest.fixture(scope="session")
def src(shared_data: Path) -> pd.DataFrame:
    """The served SPXW subset of the shipped 2019 chains on :data:`DAYS`."""
    return source_rows(shared_data, DAYS, "SPXW")


@pytest.fixture(scope="session")
def spx_bars(shared_data: Path) -> pd.DataFrame:
    return index_bars(shared_data, "SPX")


@pytest.fixture
def theta(src: pd.DataFrame, spx_bars: pd.DataFrame) -> Iterator[FakeThetaTerminal]:
    fake = FakeThetaTerminal(src, spx_bars, page_rows=10, timeout_sleep=1.0)
    yield fake
    fake.close()


@pytest.fixture
def massive(src: pd.DataFrame, spx_bars: pd.DataFrame) -> Iterator[FakeMassive]:
    fake = FakeMassive(src, spx_bars, timeout_sleep=1.0)
    yield fake
    fake.close()
