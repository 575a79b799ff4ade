"""``iv_condor``: sell the next SPXW iron condor when the 30-day ATM implied vol (chain feed
``atm_iv`` line) is above its recent median: its percentile among the ``iv_window`` previous
quote dates (``indicators.VolRank``) is ``>= iv_quantile``. Held to the base's PM settlement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
from pydantic import Field

from data_feeds.chain_feed import chain_features
from data_feeds.chains import ChainSnapshot
from indicators import VolRank
from strategies.base import BacktestResult, StrategyParams, StrategyPlugin
from strategies.option_strategy import ComboSpec, OptionStrategy, run_chain_cerebro


class IvCondorParams(StrategyParams):
    """Short-strike ``delta`` and entry percentile ``iv_quantile`` are tunable; the rest fixed."""

    tunable: ClassVar[frozenset[str]] = frozenset({"delta", "iv_quantile"})
    delta: float = Field(0.15, gt=0.0, le=0.5)
    iv_quantile: float = Field(0.5, ge=0.0, le=1.0)
    iv_window: int = Field(20, ge=2, le=250)  # previous quote dates in the percentile
    width: float = Field(25.0, gt=0.0)  # wing width, index points
    target_dte: float = Field(2.0, ge=0.0)  # 2: the next SPXW expiry (1-3 calendar days)


class IvCondorStrategy(OptionStrategy):
    """One condor at a time, opened on a bar whose percentile clears ``iv_quantile``."""

    params = (("rules", None), ("signal", None))

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        r, day = self.p.rules, snapshot.quote_date
        pct = float(self.p.signal.get(day, float("nan")))
        row = {"date": day, "iv_percentile": pct, "status": "below_quantile"}
        if self.combos:
            row["status"] = "holding"
        elif pct >= r.iv_quantile:
            spec = dict(target_dte=r.target_dte, delta=r.delta, width=r.width)
            opened = self.open_combo(ComboSpec(kind="iron_condor", **spec), 1)
            row["status"] = "open" if opened else "rejected"
        self.log_rows.append(row)


class IvCondor(StrategyPlugin):
    """Plugin: the percentile of every quote date once; one chain-feed Cerebro per window."""

    name = "iv_condor"
    description = "Sell a next-expiry SPXW iron condor when ATM IV is above its recent median"
    Params = IvCondorParams
    required_data = ("underlying", "chains")

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Any]) -> None:
        """30-day ATM IV of every SPXW quote date (chain feed lines) and its percentile."""
        self.underlying, self.source = data["underlying"], data["chains"]
        days = self.chain_quote_dates(self.source, "SPX", "SPXW", self.underlying.index)
        lines = chain_features(self.source, "SPX", ["SPXW"], days[0], days[-1], target_dte=30)
        iv = lines.set_index("quote_date")["atm_iv"].loc[days]
        window = IvCondorParams(**self.fixed).iv_window + 1  # + today
        self.signal = VolRank.run(iv, rank_window=window, zscore_window=2).percentile
        self.days = pd.DatetimeIndex(days).tz_localize("America/New_York")

    def trading_days(self) -> pd.DatetimeIndex:
        return self.days

    def backtest(self, params: Any, start: Any, end: Any, *, cash: float) -> BacktestResult:
        """One Cerebro over the SPXW snapshots of ``start..end``, settled on SPX open/close."""
        strat, value, returns = run_chain_cerebro(
            IvCondorStrategy, self.source, "SPX", "SPXW", self.window_days(start, end),
            settlement=self.underlying[["open", "close"]], broker_params=self.broker_params,
            cash=cash, target_dte=30, rate=0.0,
            strategy_kwargs={"rules": params, "signal": self.signal})
        return BacktestResult(returns, value, strat.broker.fills_frame(),
                              pd.DataFrame(strat.log_rows))
