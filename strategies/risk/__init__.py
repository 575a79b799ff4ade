"""The portfolio risk layer shared by every strategy (``docs/risk.md``).

Sizing (:mod:`strategies.risk.sizing`)
    :class:`VolManagedSizer` (Moreira & Muir 2017, ``w = target_vol^2 / sigma^2`` from past
    returns only, capped and floored), :func:`fixed_fractional_units`, :func:`max_loss_contracts`
    and :func:`combo_max_loss` / :func:`combo_max_loss_at_fill` (contracts from account risk and a
    combo's maximum loss).
Limits and guards (:mod:`strategies.risk.manager`)
    :class:`RiskLimits` (the config's ``[risk]`` section, :mod:`strategies.risk.limits`),
    :class:`RiskConfig` and :class:`RiskManager`: max-drawdown kill switch, daily-loss block,
    per-position stop-loss, delta band re-hedge (:func:`hedge_quantity`), gamma/vega caps that
    block risk-increasing orders (:func:`combo_greeks`).
In backtrader (:mod:`strategies.risk.mixins`)
    :class:`RiskMixin` (share strategies) and :class:`OptionRiskMixin` (on ``OptionStrategy``):
    ``setup_risk`` in ``__init__``, ``risk_step()`` first thing each bar; orders gated.
Signals (:mod:`strategies.risk.signals`)
    :func:`aggregate_signals` / :func:`vote`: confidence-weighted vote per underlying; conflicts
    produce no trade.
Attribution (:mod:`strategies.risk.attribution`)
    :class:`SleevePnL` analyzer (daily P&L per sleeve; :func:`track_sleeves` adds it from a
    strategy's ``__init__``, :func:`sleeve_info` reads it for ``BacktestResult.info``),
    :func:`attribution_table` (Carino-linked return contributions), :func:`write_attribution`,
    and the runner's hook :func:`write_run_attribution`.

Share transaction costs live in :mod:`brokers.share_costs` (half spread + square-root impact +
commission, a backtrader commission scheme).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from strategies.risk.attribution import (
        SLEEVE_ANALYZER,
        TOTAL,
        UNATTRIBUTED,
        SleevePnL,
        attribution_from_results,
        attribution_table,
        sleeve_by_prefix,
        sleeve_info,
        track_sleeves,
        write_attribution,
        write_run_attribution,
    )
    from strategies.risk.ledger import TagLedger, base_tag
    from strategies.risk.limits import RiskLimits
    from strategies.risk.manager import (
        GREEKS,
        OrderCheck,
        PositionRisk,
        RiskAction,
        RiskConfig,
        RiskManager,
        combo_greeks,
        hedge_quantity,
    )
    from strategies.risk.mixins import OptionRiskMixin, RiskMixin
    from strategies.risk.signals import (
        SIGNAL_COLUMNS,
        AggregateSignal,
        Signal,
        aggregate_signals,
        vote,
    )
    from strategies.risk.sizing import (
        TRADING_DAYS,
        VolManagedSizer,
        combo_max_loss,
        combo_max_loss_at_fill,
        fixed_fractional_units,
        max_loss_contracts,
        past_realized_variance,
    )

__all__ = [
    "GREEKS",
    "SIGNAL_COLUMNS",
    "SLEEVE_ANALYZER",
    "TOTAL",
    "TRADING_DAYS",
    "UNATTRIBUTED",
    "AggregateSignal",
    "OptionRiskMixin",
    "OrderCheck",
    "PositionRisk",
    "RiskAction",
    "RiskConfig",
    "RiskLimits",
    "RiskManager",
    "RiskMixin",
    "Signal",
    "SleevePnL",
    "TagLedger",
    "VolManagedSizer",
    "aggregate_signals",
    "attribution_from_results",
    "attribution_table",
    "base_tag",
    "combo_greeks",
    "combo_max_loss",
    "combo_max_loss_at_fill",
    "fixed_fractional_units",
    "hedge_quantity",
    "max_loss_contracts",
    "past_realized_variance",
    "sleeve_by_prefix",
    "sleeve_info",
    "track_sleeves",
    "vote",
    "write_attribution",
    "write_run_attribution",
]

lazy_package(__name__)
