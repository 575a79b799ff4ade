"""Paper trading: a backtrader live store whose broker is the options broker, filled by a venue.

Switching a strategy from the backtest to a paper venue changes the broker, not the strategy:
:class:`LiveOptionsBroker` is an :class:`brokers.OptionsBroker` (same book, marks, margin,
settlement, reports) whose orders go to a :class:`VenueAdapter` with pre-trade checks, a kill
switch, idempotent client order ids, retries with backoff, reconciliation and an audit log.

Venues
------
ReplayVenue
    Recorded chain snapshots (the chain store) replayed on their own clock at a chosen speed,
    filled with the backtest's cost model (``brokers.live.replay``). The recorded snapshots, their
    backtrader feed and the minute-bar loader are data (``data_feeds.snapshot_feed``,
    ``data_feeds.minute_bars``).
AlpacaAdapter
    Alpaca paper trading over its REST API (``brokers.live.alpaca``; imported lazily, only when
    used: ``from brokers.live.alpaca import AlpacaAdapter``).

See ``docs/paper_trading.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from brokers.live.adapter import (
        AccountState,
        Bar,
        DuplicateClientOrderId,
        LegFill,
        OrderLeg,
        OrderRequest,
        TransientVenueError,
        VenueAdapter,
        VenueError,
        VenueOrder,
        VenuePosition,
        VenueRejected,
        occ_symbol,
        parse_occ_symbol,
    )
    from brokers.live.audit import AuditLog, read_audit
    from brokers.live.broker import KillSwitchEngaged, LiveOptionsBroker
    from brokers.live.replay import ReplayVenue
    from brokers.live.safety import (
        KillSwitch,
        ReconcileReport,
        RetryPolicy,
        RiskLimits,
        client_order_id,
        new_session_id,
        pre_trade_check,
    )
    from brokers.live.store import LiveBarFeed, LiveStore

__all__ = [
    "AccountState",
    "AuditLog",
    "Bar",
    "DuplicateClientOrderId",
    "KillSwitch",
    "KillSwitchEngaged",
    "LegFill",
    "LiveBarFeed",
    "LiveOptionsBroker",
    "LiveStore",
    "OrderLeg",
    "OrderRequest",
    "ReconcileReport",
    "ReplayVenue",
    "RetryPolicy",
    "RiskLimits",
    "TransientVenueError",
    "VenueAdapter",
    "VenueError",
    "VenueOrder",
    "VenuePosition",
    "VenueRejected",
    "client_order_id",
    "new_session_id",
    "occ_symbol",
    "parse_occ_symbol",
    "pre_trade_check",
    "read_audit",
]

lazy_package(__name__)
