"""Where market data comes from, how it is checked, and how it enters backtrader and vectorbt.

Public API
----------
load_ohlc
    Validated daily OHLC from ``builtin:``, ``yfinance:`` or CSV/parquet sources.
align_to_index
    Secondary series (VIX) onto the underlying's trading days, at most one day forward-filled.
ohlc_feed
    backtrader feed of a daily frame with extra lines.
OptionContract, OptionQuote
    Core option types.
ChainStore, ChainIngestConfig, IngestReport
    The DuckDB option-chain store: vendor / lean-minute / generic ingest with quarantine and
    liquidity flags, snapshot queries (``docs/data.md``).
ChainSnapshot, Combo
    Every quote of a chain at one moment: forwards, ATM, implied vols and greeks, delta strikes,
    straddle / strangle / vertical / iron condor / calendar quotes.
chain_feed, ChainFeed, SnapshotSource
    backtrader feed of chain snapshots (ATM IV, straddle, 25-delta risk reversal, term slope) with
    the current snapshot reachable from the strategy.
RecordedSnapshots, ListedSnapshots, replay_schedule, ChainSnapshotFeed
    Recorded snapshots of a chain store one after the other (or an explicit list) and the
    backtrader feed over them, one bar per snapshot (intraday backtests; the replay venue's source).
load_minute_bars
    The one minute-bar loader, ``stamp="start"`` or ``stamp="end"`` (bar start or close time).
vix_proxy_market_table, chain_market_table
    The ATM straddle market table of ``zero_dte_straddle``: proxied from VIX, or from real chains.
migrate_surface_tables, load_fitted_surfaces
    The surface, term-structure, realized-vol and VRP tables of the chain store
    (``docs/surfaces.md``); the fitting is :mod:`pricing.surface_fit`, the jobs that fill the
    tables :mod:`experiments.surface_jobs`.
auction_frame, auction_feed
    The SPX opening-auction feed (``docs/strategies/auction_feed.md``).
vol_signal_table, load_vvix
    Daily chain signals (25-delta risk reversal and butterfly, term slope, 0DTE intercept) and VVIX.
load_pair_leg, align_legs, pair_feeds
    Two-leg spread data for ``ou_pairs`` (``docs/ou_pairs.md``); the formation and its health
    gate are :mod:`indicators.cointegration`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from data_feeds.align import (
        AlignReport,
        align_to_index,
    )
    from data_feeds.auction import (
        AUCTION_COLUMNS,
        AUCTION_LINES,
        AuctionFeed,
        AuctionReport,
        FuturesLoadReport,
        auction_feed,
        auction_frame,
        load_futures_minute,
        load_option_minute_quotes,
    )
    from data_feeds.bt_feeds import (
        ohlc_feed,
    )
    from data_feeds.calendar import (
        TZ,
        session_minutes,
    )
    from data_feeds.chain_feed import (
        CHAIN_FEED_LINES,
        ChainFeatureReport,
        ChainFeed,
        SnapshotCache,
        SnapshotSource,
        chain_features,
        chain_feed,
        snapshot_features,
    )
    from data_feeds.chain_ingest import (
        ChainIngestConfig,
        IngestReport,
        LiquidityConfig,
        load_ingest_config,
    )
    from data_feeds.chain_store import (
        ChainStore,
        SnapshotNotFoundError,
        StoreKeyError,
        UnderlyingIngestReport,
    )
    from data_feeds.chains import (
        PARITY_STRIKES,
        QUOTE_COLUMNS,
        ChainSnapshot,
        Combo,
        settlement_time,
    )
    from data_feeds.contracts import (
        OptionContract,
        OptionQuote,
    )
    from data_feeds.errors import (
        DataSourceError,
        DataValidationError,
        VolsuiteError,
    )
    from data_feeds.market import (
        MARKET_COLUMNS,
        atm_strike,
        chain_market_table,
        vix_proxy_market_table,
    )
    from data_feeds.minute_bars import load_minute_bars
    from data_feeds.ohlc import (
        LoadReport,
        fingerprint,
        load_ohlc,
        load_yfinance,
        validate_ohlc,
    )
    from data_feeds.snapshot_feed import (
        ChainSnapshotFeed,
        ListedSnapshots,
        RecordedSnapshots,
        replay_schedule,
    )
    from data_feeds.spread_feed import (
        PairAlignReport,
        align_legs,
        load_pair_leg,
        pair_feeds,
    )
    from data_feeds.surfaces import load_fitted_surfaces, migrate_surface_tables
    from data_feeds.vol_signals import (
        VOL_SIGNAL_COLUMNS,
        VolSignalReport,
        VVIXReport,
        load_vvix,
        snapshot_vol_signals,
        vol_signal_table,
    )

__all__ = [
    "AUCTION_COLUMNS",
    "AUCTION_LINES",
    "CHAIN_FEED_LINES",
    "MARKET_COLUMNS",
    "PARITY_STRIKES",
    "QUOTE_COLUMNS",
    "TZ",
    "VOL_SIGNAL_COLUMNS",
    "AlignReport",
    "AuctionFeed",
    "AuctionReport",
    "ChainFeatureReport",
    "ChainFeed",
    "ChainIngestConfig",
    "ChainSnapshot",
    "ChainSnapshotFeed",
    "ChainStore",
    "Combo",
    "DataSourceError",
    "DataValidationError",
    "FuturesLoadReport",
    "IngestReport",
    "LiquidityConfig",
    "ListedSnapshots",
    "LoadReport",
    "OptionContract",
    "OptionQuote",
    "PairAlignReport",
    "RecordedSnapshots",
    "SnapshotCache",
    "SnapshotNotFoundError",
    "SnapshotSource",
    "StoreKeyError",
    "UnderlyingIngestReport",
    "VVIXReport",
    "VolSignalReport",
    "VolsuiteError",
    "align_legs",
    "align_to_index",
    "atm_strike",
    "auction_feed",
    "auction_frame",
    "chain_features",
    "chain_feed",
    "chain_market_table",
    "fingerprint",
    "load_fitted_surfaces",
    "load_futures_minute",
    "load_ingest_config",
    "load_minute_bars",
    "load_ohlc",
    "load_option_minute_quotes",
    "load_pair_leg",
    "load_vvix",
    "load_yfinance",
    "migrate_surface_tables",
    "ohlc_feed",
    "pair_feeds",
    "replay_schedule",
    "session_minutes",
    "settlement_time",
    "snapshot_features",
    "snapshot_vol_signals",
    "validate_ohlc",
    "vix_proxy_market_table",
    "vol_signal_table",
]

lazy_package(__name__)
