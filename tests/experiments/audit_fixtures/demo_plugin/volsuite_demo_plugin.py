"""A user's own volsuite strategy, packaged outside the repository (test fixture of ``volsuite
audit``).

``test_audit.py`` installs it the way Python discovers plugins: a ``*.dist-info`` folder with an
``entry_points.txt`` (group ``volsuite.strategies``, ``demo_prev_day =
volsuite_demo_plugin:PrevDayDrive``) on ``sys.path`` next to this module, then audits it in a
subprocess. It uses only the public plugin contract (:mod:`strategies.base`).

The strategy: each session, hold ``units`` index units of the underlying from the open to the close
(no costs), long when the signal known at the open is above ``min_move``, short when below
``-min_move``. :class:`PrevDayDrive`'s signal is the previous session's open-to-close move
(decimal), known at the open: no look-ahead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from strategies.base import BacktestResult, StrategyParams, StrategyPlugin

OPEN, CLOSE = dt.time(9, 30), dt.time(16, 0)


class DayTradeParams(StrategyParams):
    """``units``: index units per trade; ``min_move``: decimal threshold of the signal."""

    units: int = Field(10, ge=1, le=1000)
    min_move: float = Field(0.0, ge=0.0, le=0.05)

    tunable: ClassVar[frozenset[str]] = frozenset({"min_move"})


class DayTrader(StrategyPlugin):
    """Open-to-close day trades of the underlying on a signal known at the open (see module)."""

    name: ClassVar[str] = "demo_day_trader"
    description: ClassVar[str] = "open-to-close day trades on a signal known at the open"
    Params: ClassVar[type[StrategyParams]] = DayTradeParams
    required_data: ClassVar[tuple[str, ...]] = ("underlying",)

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """Keep the underlying's daily bars and compute the signal of every session."""
        self.underlying = data["underlying"]
        self.signal = self.open_signal(data).reindex(self.underlying.index)

    def open_signal(self, data: Mapping[str, Any]) -> pd.Series:
        """Signal (decimal move) per session, indexed like the underlying's bars."""
        bars = data["underlying"]
        return (bars["close"] / bars["open"] - 1.0).shift(1)

    def trading_days(self) -> pd.DatetimeIndex:
        """Sessions with a signal."""
        return pd.DatetimeIndex(self.signal.dropna().index)

    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """One window: a trade per session with ``|signal| > min_move``, flat every night."""
        p = params
        days = self.window_days(start, end)
        bars = self.underlying.loc[days]
        equity, values, trades, log = float(cash), [], [], []
        for day, o, c in zip(days, bars["open"], bars["close"], strict=True):
            move = float(self.signal.loc[day])
            side = 1 if move > p.min_move else -1 if move < -p.min_move else 0
            qty = side * p.units
            if qty:
                for t, px, q in ((OPEN, o, qty), (CLOSE, c, -qty)):
                    trades.append(
                        {
                            "time": pd.Timestamp.combine(day.date(), t),
                            "event": "stock_fill",
                            "root": "SPX",
                            "quantity": q,
                            "price": float(px),
                            "commission": 0.0,
                            "cash_flow": -q * float(px),
                            "tag": f"day {day.date()}",
                        }
                    )
            pnl = qty * (float(c) - float(o))
            equity += pnl
            values.append(equity)
            log.append({"date": day.date(), "signal": move, "position": qty, "pnl": pnl})
        value = pd.Series(values, index=days, name="value", dtype=float)
        prev = np.concatenate([[float(cash)], value.to_numpy()[:-1]])
        returns = pd.Series(value.to_numpy() / prev - 1.0, index=days, name="returns")
        columns = ["time", "event", "root", "quantity", "price", "commission", "cash_flow", "tag"]
        return BacktestResult(
            returns, value, pd.DataFrame(trades, columns=columns), pd.DataFrame(log)
        )


class PrevDayDrive(DayTrader):
    """The previous session's open-to-close move, known at the open (no look-ahead)."""

    name: ClassVar[str] = "demo_prev_day"
    description: ClassVar[str] = "day trade in the direction of yesterday's open-to-close move"
