"""What a volsuite strategy plugin provides, and the backtrader plumbing every plugin shares.

A plugin couples a backtrader ``Strategy`` with what the experiment runner needs around it:

* ``Params``: a pydantic model of every parameter (defaults, bounds); an experiment config's
  ``[strategy.params]`` and ``[strategy.search_space]`` are validated against it.
* ``prepare(data, grid)``: compute every indicator once for all parameter values of the search space
  (vectorbt broadcast), before any backtest.
* ``backtest(params, start, end)``: one backtrader Cerebro over ``[start, end]``.
* ``benchmark()``: the underlying's buy-and-hold daily returns for the tearsheet.

The runner (``experiments``) finds plugins by name in :data:`strategies.STRATEGIES` (or the
``volsuite.strategies`` entry-point group) and knows nothing else about them.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict


class StrategyParams(BaseModel):
    """Base of every plugin's parameter model: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class BacktestResult:
    """What one backtest produced.

    Attributes
    ----------
    returns : pandas.Series
        Daily simple returns of account value (decimal), indexed by session date; the first day is
        measured against the starting cash.
    value : pandas.Series
        Account value in dollars at each session's end.
    trades : pandas.DataFrame
        Every option fill and settlement (``OptionsBroker.fills_frame``).
    daily_log : pandas.DataFrame
        The strategy's per-day decision log (one row per session).
    info : dict
        Facts for reports, e.g. ``market_source``.
    """

    returns: pd.Series
    value: pd.Series
    trades: pd.DataFrame
    daily_log: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


class StrategyPlugin(ABC):
    """Base class of a registered strategy (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    required_data: ClassVar[tuple[str, ...]]

    def __init__(
        self, fixed: Mapping[str, Any] | None = None, broker: Mapping[str, Any] | None = None
    ) -> None:
        """Keep the fixed parameters (``[strategy.params]``, validated by the runner), the broker
        params (``[broker]``) and an empty list of report lines filled by :meth:`prepare`."""
        self.fixed = dict(fixed or {})
        self.broker_params = dict(broker or {})
        self.reports: list[str] = []

    def data_needed(self) -> tuple[str, ...]:
        """``[data]`` entries this instance needs (default :attr:`required_data`; a plugin whose
        needs depend on its fixed parameters overrides this)."""
        return self.required_data

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """Write plugin-specific run artifacts (fitted models, feature importance, diagnostics)
        into ``folder`` (the run folder, logged to MLflow with it) and return extra metrics for the
        run summary and MLflow (names without spaces). Called once after the walk-forward; the
        default writes nothing."""
        return {}

    @abstractmethod
    def prepare(self, data: Mapping[str, pd.DataFrame], grid: Mapping[str, Sequence[Any]]) -> None:
        """Load-time work: indicators for every value in ``grid`` (parameter name -> values)."""

    @abstractmethod
    def trading_days(self) -> pd.DatetimeIndex:
        """Sessions on which the strategy can act (inputs available); the walk-forward calendar."""

    @abstractmethod
    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """Run one backtest over sessions ``start..end`` (inclusive) with ``cash`` dollars."""

    @abstractmethod
    def benchmark(self) -> pd.Series:
        """Daily returns of the underlying held long (the tearsheet's benchmark)."""

    @abstractmethod
    def data_fingerprint(self) -> str:
        """A hash of the inputs (for MLflow tags)."""


class DailyValue(bt.Analyzer):
    """Records ``broker.getvalue()`` at the end of each bar, after the strategy has traded."""

    def start(self) -> None:
        self.values: dict[dt.date, float] = {}

    def next(self) -> None:
        self.values[self.data.datetime.date(0)] = self.strategy.broker.getvalue()

    def get_analysis(self) -> dict[dt.date, float]:
        return self.values


def run_cerebro(
    strategy_cls: type[bt.Strategy],
    feeds: Sequence[bt.feeds.PandasData],
    broker: bt.brokers.BackBroker,
    *,
    cash: float,
    strategy_kwargs: Mapping[str, Any] | None = None,
) -> tuple[bt.Strategy, pd.Series, pd.Series]:
    """Run a Cerebro with one strategy and return it with its daily value and returns.

    Parameters
    ----------
    strategy_cls : type of backtrader.Strategy
        Strategy to run.
    feeds : sequence of backtrader data feeds
        Data, the first one drives the calendar.
    broker : backtrader.brokers.BackBroker
        Broker instance (e.g. :class:`brokers.OptionsBroker`).
    cash : float
        Starting cash in dollars.
    strategy_kwargs : mapping, optional
        Strategy params.

    Returns
    -------
    strategy : backtrader.Strategy
        The finished strategy instance.
    value : pandas.Series
        Account value (dollars) per session, tz-aware index.
    returns : pandas.Series
        Daily simple returns; the first against ``cash``.

    Notes
    -----
    ``stdstats=False`` and no plotting: backtrader's plotting forces TkAgg and must never run
    headless. ``runonce`` vectorizes indicators; ``preload`` is on.
    """
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    for feed in feeds:
        cerebro.adddata(feed)
    broker.setcash(cash)
    cerebro.setbroker(broker)
    cerebro.addstrategy(strategy_cls, **dict(strategy_kwargs or {}))
    cerebro.addanalyzer(DailyValue, _name="daily_value")
    (strategy,) = cerebro.run()
    values = strategy.analyzers.daily_value.get_analysis()
    index = pd.DatetimeIndex(pd.to_datetime(list(values.keys()))).tz_localize("America/New_York")
    value = pd.Series(list(values.values()), index=index, name="value", dtype=float)
    prev = np.concatenate([[cash], value.to_numpy()[:-1]])
    returns = pd.Series(value.to_numpy() / prev - 1.0, index=index, name="returns")
    return strategy, value, returns
