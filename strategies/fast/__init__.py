"""Vectorized trial engines: numba simulations that score an in-sample trial without a Cerebro.

``[optimize] engine = "vectorbt"`` (docs/engines.md) scores each in-sample Optuna trial of an
engine-enabled strategy with a numba kernel over the indicator grid ``prepare`` built, instead of
a backtrader Cerebro. The kernels apply the same fills, costs, settlement, sizing and risk limits
as the backtrader path, so a trial's daily returns (and its objective) equal the Cerebro's to
floating-point rounding (``tests/experiments/test_vector_engine.py``: 1e-9 relative). The
out-of-sample run of every fold's best parameters always goes through backtrader.

* :mod:`strategies.fast.zero_dte` -- ``zero_dte_straddle``: daily straddles settled the same day.
* :mod:`strategies.fast.ou_pairs` -- ``ou_pairs``: the pair-spread simulation with the share cost
  model and the risk layer.

A plugin offers the engine through two hooks of :class:`strategies.base.StrategyPlugin`:
``check_vector_engine()`` (raise :class:`VectorEngineUnsupported` when its configuration has no
kernel) and ``vector_backtest(params, start, end, cash=...)`` returning a :class:`VectorTrial`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from data_feeds.errors import VolsuiteError

ENGINES = ("backtrader", "vectorbt")
"""Names of ``[optimize] engine``: ``backtrader`` (a Cerebro per trial, the default) and
``vectorbt`` (a numba kernel per trial where the strategy has one)."""


class VectorEngineUnsupported(VolsuiteError, ValueError):
    """The strategy (or this configuration of it) has no vectorized trial engine; run it with
    ``[optimize] engine = "backtrader"``."""


@dataclass(frozen=True)
class VectorTrial:
    """What a vectorized in-sample trial produced: what the walk-forward reads of a backtest.

    Attributes
    ----------
    returns : pandas.Series
        Daily simple returns of account value (decimal), indexed like the backtrader run's
        (tz-aware sessions of the window); the first day against the starting cash.
    value : pandas.Series
        Account value in dollars at each session's end (same index).
    trades : int
        Opening orders, as :func:`experiments.metrics.trade_stats` counts them on the backtrader
        run's fills (``trades`` of :func:`experiments.metrics.summary`).
    """

    returns: pd.Series
    value: pd.Series
    trades: int


def session_index(sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The index :func:`strategies.base.run_cerebro` gives a backtest's value and returns: the
    sessions' dates, localized to America/New_York (same values and dtype)."""
    return pd.DatetimeIndex(pd.to_datetime(list(sessions.date))).tz_localize("America/New_York")


__all__ = ["ENGINES", "VectorEngineUnsupported", "VectorTrial", "session_index"]
