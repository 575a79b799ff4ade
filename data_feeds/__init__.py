"""Where market data comes from, how it is checked, and how it enters backtrader and vectorbt.

Public API
----------
load_ohlc
    Validated daily OHLC from ``builtin:``, ``yfinance:`` or CSV/parquet sources.
align_to_index
    Secondary series (VIX) onto the underlying's trading days, at most one day forward-filled.
ohlc_feed
    backtrader feed of a daily frame with extra lines.
vix_proxy_market_table, chain_market_table
    The ATM straddle market table: proxied from VIX, or from real chain snapshots.
OptionContract, OptionQuote
    Core option types.
"""

from data_feeds.align import AlignReport, align_to_index
from data_feeds.bt_feeds import ohlc_feed
from data_feeds.calendar import TZ, session_minutes
from data_feeds.contracts import OptionContract, OptionQuote
from data_feeds.errors import DataSourceError, DataValidationError, VolsuiteError
from data_feeds.market import (
    MARKET_COLUMNS,
    atm_strike,
    chain_market_table,
    vix_proxy_market_table,
)
from data_feeds.ohlc import LoadReport, fingerprint, load_ohlc, load_yfinance, validate_ohlc

__all__ = [
    "MARKET_COLUMNS",
    "TZ",
    "AlignReport",
    "DataSourceError",
    "DataValidationError",
    "LoadReport",
    "OptionContract",
    "OptionQuote",
    "VolsuiteError",
    "align_to_index",
    "atm_strike",
    "chain_market_table",
    "fingerprint",
    "load_ohlc",
    "load_yfinance",
    "ohlc_feed",
    "session_minutes",
    "validate_ohlc",
    "vix_proxy_market_table",
]

# -- chain snapshots, their queries and the chain feed (data_feeds.chains, data_feeds.chain_feed)
from data_feeds.chain_feed import (
    CHAIN_FEED_LINES,
    ChainFeatureReport,
    ChainFeed,
    SnapshotSource,
    chain_features,
    chain_feed,
    snapshot_features,
)
from data_feeds.chains import (
    PARITY_STRIKES,
    QUOTE_COLUMNS,
    ChainSnapshot,
    Combo,
    settlement_time,
)

__all__ += [
    "CHAIN_FEED_LINES",
    "PARITY_STRIKES",
    "QUOTE_COLUMNS",
    "ChainFeatureReport",
    "ChainFeed",
    "ChainSnapshot",
    "Combo",
    "SnapshotSource",
    "chain_features",
    "chain_feed",
    "settlement_time",
    "snapshot_features",
]

# -- the DuckDB option-chain store and its ingest (data_feeds.chain_store, data_feeds.chain_ingest)
from data_feeds.chain_ingest import (  # noqa: E402 (appended block)
    ChainIngestConfig,
    IngestReport,
    LiquidityConfig,
    load_ingest_config,
)
from data_feeds.chain_store import (  # noqa: E402
    ChainStore,
    SnapshotNotFoundError,
    StoreKeyError,
    UnderlyingIngestReport,
)

__all__ += [
    "ChainIngestConfig",
    "ChainStore",
    "IngestReport",
    "LiquidityConfig",
    "SnapshotNotFoundError",
    "StoreKeyError",
    "UnderlyingIngestReport",
    "load_ingest_config",
]
