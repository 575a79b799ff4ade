"""Shared pytest fixtures: real-data locations and skips, and a chain store of the real 2019 SPX
chains (``chain_store_2019``: ingested once per session into a temporary DuckDB file)."""

from __future__ import annotations

from collections.abc import Iterator
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


SPX_2019 = "options/spx_chains_2019q2.parquet"


@pytest.fixture(scope="session")
def chain_store_2019_path(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a chain store holding the 2019 SPX/SPXW chains (vendor format, default config)."""
    from data_feeds.chain_store import ChainStore

    path = tmp_path_factory.mktemp("chains2019") / "chains.duckdb"
    with ChainStore(path) as store:
        store.ingest(shared_data / SPX_2019, "vendor")
    return path


@pytest.fixture(scope="session")
def chain_store_2019(chain_store_2019_path: Path) -> Iterator[object]:
    """Read-only :class:`~data_feeds.chain_store.ChainStore` of the 2019 SPX chains (56 trading
    days 2019-04-25 .. 2019-07-22; the two holiday files quarantined). Do not write to it."""
    from data_feeds.chain_store import ChainStore

    store = ChainStore(chain_store_2019_path, read_only=True)
    yield store
    store.close()
