"""Shared parameter fields of the strategies' ``Params`` models: one definition per name.

Every strategy that exits on a profit target, a stop, a days-to-expiry or a holding limit, or
sizes by a contract count or an account-risk budget, declares the field with the type below, so
the name, the bound checks and the unit are written once (``docs/glossary.md``, "Exits" and
"Sizing"). A strategy may tighten a bound where its rule needs it (``Annotated[StopLoss,
Field(le=1.0)]``: a long premium cannot lose more than it paid) and states the basis of
``take_profit`` / ``stop_loss`` (of the credit, of the premium, of the maximum loss) in its own
``Params`` docstring: the name is shared, the basis is the strategy's.

Names that were renamed or moved are listed in :data:`RENAMED_PARAMS` and
:data:`MOVED_TO_DATA`; the config loader (:func:`experiments.config.validate_strategy_section`)
refuses a config that still uses one with a one-line message naming the new key.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import Field

__all__ = [
    "MOVED_TO_DATA",
    "RENAMED_PARAMS",
    "AccountRisk",
    "Contracts",
    "ExitDte",
    "MaxContracts",
    "MaxHoldDays",
    "StopLoss",
    "TakeProfit",
]

TakeProfit = Annotated[
    float,
    Field(
        gt=0.0,
        le=10.0,
        description=(
            "close when the position's mid P&L reaches this decimal fraction of its basis "
            "(the strategy names the basis: credit, premium paid, maximum profit)"
        ),
    ),
]
"""Profit target, a decimal fraction of the strategy's basis in ``(0, 10]``."""

StopLoss = Annotated[
    float,
    Field(
        gt=0.0,
        le=10.0,
        description=(
            "close when the position's mid loss reaches this decimal multiple of its basis "
            "(the strategy names the basis: credit, premium, maximum loss, gross premium)"
        ),
    ),
]
"""Stop loss, a decimal multiple of the strategy's basis in ``(0, 10]``."""

ExitDte = Annotated[
    int,
    Field(
        ge=0,
        le=365,
        description="close when the calendar days to expiry fall to this or below (DTE)",
    ),
]
"""Exit on days to expiry: calendar days, ``0..365``."""

MaxHoldDays = Annotated[
    int,
    Field(
        ge=1,
        le=60,
        description=(
            "close after the position has been held this many sessions (snapshots of a daily "
            "chain: one per session)"
        ),
    ),
]
"""Holding limit in sessions, ``1..60``. Strategies on daily chain snapshots count snapshots,
which are sessions (one snapshot per quote date)."""

Contracts = Annotated[
    int,
    Field(ge=1, le=1000, description="units (structures of 100-multiplier contracts) per trade"),
]
"""Fixed size: structures per trade, ``1..1000``."""

MaxContracts = Annotated[
    int,
    Field(ge=1, le=1000, description="cap on the units a sizing rule may open per trade"),
]
"""Cap on units per trade, ``1..1000``."""

AccountRisk = Annotated[
    float,
    Field(
        gt=0.0,
        le=0.5,
        description="decimal fraction of the equity a trade may lose at its stop / maximum loss",
    ),
]
"""Risk budget per trade, a decimal fraction of the equity in ``(0, 0.5]``."""

RENAMED_PARAMS: Mapping[str, str] = MappingProxyType(
    {
        "profit_target": "take_profit",
        "hold_days": "max_hold_days",
        "estimator": "rv_estimator",
    }
)
"""Former parameter name -> current name (refused at load, ``x.toml:
strategy.params.profit_target: renamed to take_profit``)."""

MOVED_TO_DATA: Mapping[str, str] = MappingProxyType(
    {
        "option_quotes": "data.option_quotes.source",
        "index_minute": "data.index_minute.source",
        "vvix_source": "data.vvix.source",
    }
)
"""Former data-file parameters -> their ``[data]`` key (refused at load as parameters)."""
