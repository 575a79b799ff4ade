"""The options-aware backtest broker, its cost model and strategy-based margin.

Public API
----------
OptionsBroker
    backtrader ``BackBroker`` with a book of option legs and shares: multi-leg orders filled at
    the chain snapshot's bid/ask, marks at mid, SPX AM / SPXW PM cash settlement, SPY
    exercise/assignment into shares, margin checks (``docs/brokers.md``).
quotes_snapshot
    Wrap quotes a strategy makes itself (one row per leg) as a ``ChainSnapshot`` for the broker's
    one order path, ``OptionsBroker.execute_snapshot``.
OptionCostModel
    Fill price inside the spread (per-root slippage) and per-contract commission.
OrderRejected, MarginError
    Raised for refused orders (logged in ``OptionsBroker.rejections``).
book_requirement, naked_short_requirement, spread_requirement, max_loss, MarginRates
    Pure Reg-T style margin functions (``brokers.margin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from brokers.costs import (
        OptionCostModel,
    )
    from brokers.live import (
        AuditLog,
        KillSwitch,
        LiveOptionsBroker,
        LiveStore,
        ReplayVenue,
        RiskLimits,
        VenueAdapter,
    )
    from brokers.margin import (
        BROAD_BASED_INDEX,
        EQUITY,
        MarginGroup,
        MarginRates,
        MarginReport,
        book_requirement,
        max_loss,
        naked_short_requirement,
        spread_requirement,
        underlying_of,
    )
    from brokers.options_broker import (
        MarginError,
        OptionFill,
        OptionPosition,
        OptionsBroker,
        OptionSettlement,
        OrderRejected,
        Rejection,
        StockFill,
        UnderlyingPosition,
        quotes_snapshot,
    )
    from brokers.share_costs import (
        ShareCost,
        ShareCostScheme,
        past_daily_vol_and_adv,
        share_trade_cost,
    )

__all__ = [
    "BROAD_BASED_INDEX",
    "EQUITY",
    "AuditLog",
    "KillSwitch",
    "LiveOptionsBroker",
    "LiveStore",
    "MarginError",
    "MarginGroup",
    "MarginRates",
    "MarginReport",
    "OptionCostModel",
    "OptionFill",
    "OptionPosition",
    "OptionSettlement",
    "OptionsBroker",
    "OrderRejected",
    "Rejection",
    "ReplayVenue",
    "RiskLimits",
    "ShareCost",
    "ShareCostScheme",
    "StockFill",
    "UnderlyingPosition",
    "VenueAdapter",
    "book_requirement",
    "max_loss",
    "naked_short_requirement",
    "past_daily_vol_and_adv",
    "quotes_snapshot",
    "share_trade_cost",
    "spread_requirement",
    "underlying_of",
]

lazy_package(__name__)
