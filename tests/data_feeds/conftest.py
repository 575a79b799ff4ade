"""Fixtures for the data_feeds tests: a chain store holding the real 2019 SPX chains.

``chain_store_2019`` ingests ``../shared/data/options/spx_chains_2019q2.parquet`` once per test
session (a few seconds) into a temporary DuckDB file and hands out a **read-only**
:class:`data_feeds.chain_store.ChainStore` on it; tests needing a writable store make their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
