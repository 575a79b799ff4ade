"""Share cost model: half spread + square-root impact + commission, checked by hand, and charged by
backtrader's own broker through ``ShareCostScheme``.

References: every expected dollar amount is written out by hand below; the past-window volatility
and volume are recomputed with the standard library (``statistics.stdev`` / ``statistics.mean``
of ``math.log`` returns), independent of the numpy code under test.
"""

from __future__ import annotations

import itertools
import math
import statistics

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from brokers.share_costs import (
    ShareCostScheme,
    past_daily_vol_and_adv,
    share_trade_cost,
)


def test_cost_components_by_hand() -> None:
    # 10,000 shares at $50, sigma_d 2%, ADV 1,000,000, half spread 2 bp
    c = share_trade_cost(10_000, 50.0, daily_vol=0.02, adv=1_000_000, half_spread_bps=2.0)
    assert c.spread == pytest.approx(10_000 * 0.01)  # 50 * 2e-4 = $0.01 per share
    assert c.impact == pytest.approx(10_000 * 50 * 1.0 * 0.02 * 0.1)  # sqrt(1%) = 0.1 -> $1,000
    assert c.commission == pytest.approx(50.0)  # 10,000 * $0.005
    assert c.total == pytest.approx(100 + 1000 + 50)
    # the sign of the quantity does not matter
    assert share_trade_cost(-10_000, 50.0, daily_vol=0.02, adv=1e6, half_spread_bps=2.0) == c


def test_floors_caps_and_the_almgren_setting() -> None:
    # a $10 stock at 1 bp: 0.1 cent half spread is below the half-tick floor of 0.5 cent
    c = share_trade_cost(100, 10.0, daily_vol=0.01, adv=1e6, impact_coefficient=0.0)
    assert c.spread == pytest.approx(100 * 0.005)
    assert c.impact == 0.0
    assert c.commission == pytest.approx(1.0)  # 100 * 0.005 = 0.50 -> the $1 minimum
    # 100 shares of a $0.50 stock: 1% of $50 = $0.50 caps the $1 minimum
    assert share_trade_cost(
        100, 0.5, daily_vol=0.01, adv=1e6, impact_coefficient=0.0
    ).commission == pytest.approx(0.5)
    # Almgren et al. (2005): eta = 0.142, beta = 3/5 -> 0.142 * 0.015 * 0.04**0.6 per dollar
    a = share_trade_cost(
        40_000, 20.0, daily_vol=0.015, adv=1e6, impact_coefficient=0.142, impact_exponent=0.6
    )
    assert a.impact == pytest.approx(40_000 * 20.0 * 0.142 * 0.015 * math.exp(0.6 * math.log(0.04)))
    assert share_trade_cost(0, 20.0, daily_vol=0.015, adv=1e6).total == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quantity": 1, "price": 0.0}, "price"),
        ({"quantity": 1, "price": 10.0, "adv": 0.0}, "adv"),
        ({"quantity": 1, "price": 10.0, "daily_vol": -0.1}, "daily_vol"),
        ({"quantity": 1, "price": 10.0, "impact_exponent": 1.5}, "impact_exponent"),
        ({"quantity": float("nan"), "price": 10.0}, "quantity"),
    ],
)
def test_bad_inputs_are_named(kwargs: dict, match: str) -> None:
    base = {"daily_vol": 0.01, "adv": 1e6}
    with pytest.raises(ValueError, match=match):
        share_trade_cost(**{**base, **kwargs})


def test_past_window_estimate_matches_the_standard_library() -> None:
    rng = np.random.default_rng(7)
    closes = 30 * np.exp(np.cumsum(rng.normal(0, 0.01, 21)))
    volumes = rng.integers(100_000, 200_000, 20).astype(float)
    vol, adv = past_daily_vol_and_adv(closes, volumes, 20)
    logs = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    assert vol == pytest.approx(statistics.stdev(logs), rel=1e-12)
    assert adv == pytest.approx(statistics.mean(volumes.tolist()), rel=1e-12)
    with pytest.raises(ValueError, match="closes"):
        past_daily_vol_and_adv(closes[:-1], volumes, 20)


def _frame(n: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.012, n)))
    opens = close * (1 + rng.normal(0, 0.002, n))
    idx = pd.bdate_range("2020-01-02", periods=n)
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.003,
            "low": np.minimum(opens, close) * 0.997,
            "close": close,
            "volume": rng.integers(200_000, 400_000, n).astype(float),
        },
        index=idx,
    )


def _expected_cost(frame: pd.DataFrame, bar: int, size: int, window: int = 20) -> float:
    """Hand reference: the cost of ``size`` shares filled at the open of ``bar`` (0-based)."""
    closes = frame["close"].to_list()[bar - window - 1 : bar]
    vols = frame["volume"].to_list()[bar - window : bar]
    logs = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    sigma, adv = statistics.stdev(logs), statistics.mean(vols)
    price = float(frame["open"].iloc[bar])
    spread = abs(size) * max(price * 1.0 / 1e4, 0.005)
    impact = abs(size) * price * 1.0 * sigma * math.sqrt(abs(size) / adv)
    commission = min(max(abs(size) * 0.005, 1.0), 0.01 * abs(size) * price)
    return spread + impact + commission


class _BuyThenSell(bt.Strategy):
    params = (("buy_bar", 22), ("sell_bar", 26), ("size", 5_000))

    def __init__(self) -> None:
        self.fills: list[tuple[int, float, float, float]] = []

    def next(self) -> None:
        if len(self) == self.p.buy_bar:
            self.buy(size=self.p.size)
        elif len(self) == self.p.sell_bar:
            self.close()

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.fills.append(
                (len(self), order.executed.size, order.executed.price, order.executed.comm)
            )


def _run(frame: pd.DataFrame, **strategy_kwargs) -> tuple[_BuyThenSell, float]:
    cerebro = bt.Cerebro(stdstats=False)
    data = bt.feeds.PandasData(dataname=frame, openinterest=None, name="XYZ")
    cerebro.adddata(data)
    cerebro.broker.setcash(1_000_000.0)
    cerebro.broker.addcommissioninfo(ShareCostScheme(data=data), name="XYZ")
    cerebro.addstrategy(_BuyThenSell, **strategy_kwargs)
    (strat,) = cerebro.run()
    return strat, cerebro.broker.getcash()


def test_backtrader_broker_charges_the_scheme_at_fills() -> None:
    frame = _frame()
    strat, cash = _run(frame)
    (b_len, b_size, b_price, b_comm), (s_len, s_size, s_price, s_comm) = strat.fills
    # market orders fill at the next bar's open; len() is 1-based, so bar index = len - 1
    assert (b_len, s_len) == (23, 27) and (b_size, s_size) == (5_000, -5_000)
    assert b_price == pytest.approx(frame["open"].iloc[22])
    assert s_price == pytest.approx(frame["open"].iloc[26])
    assert b_comm == pytest.approx(_expected_cost(frame, 22, 5_000), rel=1e-12)
    assert s_comm == pytest.approx(_expected_cost(frame, 26, 5_000), rel=1e-12)
    opens = frame["open"].to_numpy()
    expected = 1_000_000 - 5_000 * opens[22] + 5_000 * opens[26] - b_comm - s_comm
    assert cash == pytest.approx(expected, rel=1e-12)


def test_not_enough_history_is_an_error_not_a_free_trade() -> None:
    with pytest.raises(ValueError, match="past bars"):
        _run(_frame(), buy_bar=5, sell_bar=8)


def test_scheme_needs_impact_inputs() -> None:
    with pytest.raises(ValueError, match="daily_vol and adv"):
        ShareCostScheme()
    fixed = ShareCostScheme(daily_vol=0.02, adv=1e6, half_spread_bps=2.0)
    assert fixed.getcommission(10_000, 50.0) == pytest.approx(1150.0)
    assert ShareCostScheme(impact_coefficient=0.0).getcommission(100, 10.0) == pytest.approx(
        100 * 0.005 + 1.0
    )
