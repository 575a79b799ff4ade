"""zero_dte_straddle: look-ahead, hand-computed P&L and model IV, VIX proxy vs QuantLib,
determinism, settlement at the half-day close (real 2019 SPXW quotes)."""

from __future__ import annotations

import csv
import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from data_feeds import load_ohlc
from strategies.zero_dte_straddle import QUADRANTS, ZeroDteStraddle, ZeroDteStraddleParams

START, END = (
    pd.Timestamp("2016-01-04", tz="America/New_York"),
    pd.Timestamp("2016-12-30", tz="America/New_York"),
)
GRID = {
    "rv_estimator": ["rogers_satchell", "parkinson"],
    "window": [10, 21],
    "forecast": ["rolling", "har"],
}
BROKER = {"commission_per_contract": 1.5, "slippage_spread_fraction": 0.5}


def make_plugin(underlying: pd.DataFrame) -> ZeroDteStraddle:
    plugin = ZeroDteStraddle(fixed={}, broker=BROKER)
    plugin.prepare({"underlying": underlying, "vix": load_ohlc("builtin:vix")}, GRID)
    return plugin


@pytest.fixture(scope="module")
def plugin(sp500: pd.DataFrame) -> ZeroDteStraddle:
    return make_plugin(sp500)


PARAMS = ZeroDteStraddleParams(
    rv_estimator="rogers_satchell", window=21, short_threshold=0.2, long_threshold=0.05
)


def rs_vol_before(ohlc: pd.DataFrame, day: pd.Timestamp, window: int) -> float:
    """Rogers-Satchell (1991) over the `window` sessions before `day`, by the paper's formula."""
    past = ohlc.loc[:day].iloc[:-1].iloc[-window:]
    o, h, lo, c = (past[k].to_numpy() for k in ("open", "high", "low", "close"))
    var = np.mean(np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o))
    return math.sqrt(252 * var)


def test_model_iv_and_quadrant_by_hand(plugin: ZeroDteStraddle, sp500: pd.DataFrame) -> None:
    res = plugin.backtest(PARAMS, START, END, cash=100_000.0)
    log = res.daily_log.set_index("date")
    day = pd.Timestamp("2016-06-24", tz="America/New_York")  # the day after the Brexit vote
    row = log.loc[day.date()]
    f = rs_vol_before(sp500, day, 21)
    assert row["forecast_vol"] == pytest.approx(f, rel=1e-12)
    tte = 390 / 525600
    assert row["tte"] == pytest.approx(tte)
    assert row["model_iv"] == pytest.approx(math.sqrt(f * f / 252 / tte), rel=1e-12)
    assert row["iv_edge"] == pytest.approx(row["market_iv"] / row["model_iv"] - 1, rel=1e-12)
    key = (row["model_iv"] > row["market_iv"], row["model_straddle"] > row["market_straddle"])
    assert row["quadrant"] == QUADRANTS[key]


def test_one_trade_pnl_by_hand(plugin: ZeroDteStraddle, sp500: pd.DataFrame) -> None:
    res = plugin.backtest(PARAMS, START, END, cash=100_000.0)
    log = res.daily_log
    traded = log[log["status"] == "traded"]
    assert len(traded) > 10
    row = traded.iloc[5]
    day = pd.Timestamp(row["date"]).tz_localize("America/New_York")
    m = plugin.market.loc[day]
    close = sp500.loc[day, "close"]
    payoff = abs(close - m["strike"])
    if row["position"] == -1:  # sold at the bids, bought back by settlement
        expected = (m["call_bid"] + m["put_bid"] - payoff) * 100 - 2 * 1.5
    else:  # bought at the asks
        expected = (payoff - m["call_ask"] - m["put_ask"]) * 100 - 2 * 1.5
    assert row["net_pnl"] == pytest.approx(expected, abs=1e-6)
    # the day's return is that P&L over the previous day's account value
    pos = res.value.index.get_loc(day)
    prev = res.value.iloc[pos - 1] if pos else 100_000.0
    assert res.returns.loc[day] == pytest.approx(expected / prev, rel=1e-10)
    # sum of P&L == change in account value (nothing else moves cash)
    assert res.value.iloc[-1] - 100_000.0 == pytest.approx(log["net_pnl"].sum(), abs=1e-6)


def test_vix_proxy_legs_match_quantlib_black_formula(plugin: ZeroDteStraddle) -> None:
    import QuantLib as ql

    day = pd.Timestamp("2017-03-15", tz="America/New_York")
    m = plugin.market.loc[day]
    vix_prev = load_ohlc("builtin:vix")["close"].loc[:day].iloc[-2]
    tte = 390 / 525600
    iv = math.sqrt((vix_prev / 100) ** 2 / 252 / tte)
    assert m["market_iv"] == pytest.approx(iv, rel=1e-12)
    std = iv * math.sqrt(tte)
    call = ql.blackFormula(ql.Option.Call, m["strike"], m["spot"], std, 1.0)
    put = ql.blackFormula(ql.Option.Put, m["strike"], m["spot"], std, 1.0)
    assert 0.5 * (m["call_bid"] + m["call_ask"]) == pytest.approx(call, abs=1e-8)
    assert 0.5 * (m["put_bid"] + m["put_ask"]) == pytest.approx(put, abs=1e-8)
    assert m["call_ask"] - m["call_bid"] == pytest.approx(max(0.03 * call, 0.10), abs=1e-9)
    assert m["strike"] % 5 == 0 and abs(m["strike"] - m["spot"]) <= 2.5


def test_truncating_the_future_leaves_past_decisions_unchanged(sp500: pd.DataFrame) -> None:
    cut = pd.Timestamp("2016-08-31", tz="America/New_York")
    full = make_plugin(sp500)
    short = make_plugin(sp500.loc[:cut])
    har = PARAMS.model_copy(update={"forecast": "har", "rv_estimator": "parkinson"})
    for params in (PARAMS, har):
        a = full.backtest(params, START, END, cash=100_000.0).daily_log
        b = short.backtest(params, START, cut, cash=100_000.0).daily_log
        a = a[a["date"] <= cut.date()].reset_index(drop=True)
        assert len(a) == len(b) > 100
        pd.testing.assert_frame_equal(a, b)


def test_todays_high_low_close_do_not_change_todays_decision(sp500: pd.DataFrame) -> None:
    day = pd.Timestamp("2016-03-10", tz="America/New_York")
    shocked = sp500.copy()
    shocked.loc[day, "high"] *= 1.05
    shocked.loc[day, "low"] *= 0.95
    shocked.loc[day, "close"] *= 0.97
    for params in (PARAMS, PARAMS.model_copy(update={"forecast": "har"})):
        a = make_plugin(sp500).backtest(params, START, END, cash=1e5).daily_log.set_index("date")
        b = make_plugin(shocked).backtest(params, START, END, cash=1e5).daily_log.set_index("date")
        cols = ["forecast_vol", "model_iv", "market_iv", "iv_edge", "quadrant", "position"]
        pd.testing.assert_series_equal(a.loc[day.date(), cols], b.loc[day.date(), cols])
        if a.loc[day.date(), "position"] != 0:  # but the settlement uses the new close
            assert a.loc[day.date(), "net_pnl"] != b.loc[day.date(), "net_pnl"]
        # the next day's forecast does see the shock
        nxt = a.index[a.index.get_loc(day.date()) + 1]
        assert a.loc[nxt, "forecast_vol"] != b.loc[nxt, "forecast_vol"]


def test_same_params_same_result(plugin: ZeroDteStraddle) -> None:
    a = plugin.backtest(PARAMS, START, END, cash=100_000.0)
    b = plugin.backtest(PARAMS, START, END, cash=100_000.0)
    pd.testing.assert_series_equal(a.returns, b.returns)
    pd.testing.assert_frame_equal(a.trades, b.trades)


def test_thresholds_and_sides() -> None:
    with pytest.raises(ValueError, match="yang_zhang has none"):
        ZeroDteStraddleParams(forecast="har", rv_estimator="yang_zhang")


def test_no_trade_when_sides_disabled(plugin: ZeroDteStraddle) -> None:
    p = PARAMS.model_copy(update={"allow_short": False, "allow_long": False})
    res = plugin.backtest(p, START, END, cash=100_000.0)
    assert (res.daily_log["status"] != "traded").all()
    assert (res.returns == 0).all() and res.trades.empty


@pytest.mark.shared_data
def test_half_day_expiry_is_booked_at_the_1300_close(shared_data, chain_store_2019) -> None:
    """A run over 2019-07-02..07-05 on real SPXW quotes: the next-expiry straddle traded on 07-02
    expires on 2019-07-03, an NYSE early close, and is booked at 13:00 at that day's SPX close
    (read here with the csv module), with the P&L by hand from the raw quotes."""
    index = shared_data / "index" / "spx_vix_spy_qqq_daily.csv"
    with open(index, newline="") as fh:
        closes = {
            r["Date"]: float(r["Close"])
            for r in csv.DictReader(fh)
            if r["root"] == "SPX" and r["Date"].startswith("2019-07")
        }
    spx = load_ohlc(str(index), root="SPX", start="2015-01-01", end="2019-07-31")
    fixed = {
        "market_source": "chain",
        "chain_expiry": "next",
        "window": 10,
        "short_threshold": 0.0,
        "long_threshold": 0.0,
    }
    plugin = ZeroDteStraddle(fixed=fixed, broker={"commission_per_contract": 1.0})
    plugin.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    start = pd.Timestamp("2019-07-02", tz="America/New_York")
    res = plugin.backtest(plugin.Params(**fixed), start, start + pd.Timedelta(days=3), cash=1e5)
    log = res.daily_log.set_index("date")
    row = log.loc[dt.date(2019, 7, 2)]
    assert row["status"] == "traded" and row["expiration"] == dt.date(2019, 7, 3)
    assert row["settlement_time"] == dt.datetime(2019, 7, 3, 13, 0)
    close = closes["2019-07-03"]
    assert row["settlement_price"] == pytest.approx(close, abs=1e-9)
    trades = res.trades
    settled = trades[
        (trades["event"] == "settlement") & (trades["expiration"] == row["expiration"])
    ]
    assert len(settled) == 2 and set(settled["time"]) == {pd.Timestamp("2019-07-03 13:00")}
    ((cb, ca),) = duckdb.sql(
        f"select bid, ask from '{shared_data / 'options' / 'spx_chains_2019q2.parquet'}' where "
        f"root = 'SPXW' and quotedate = '2019-07-02' and expiration = '2019-07-03' and "
        f"strike = {row['strike']} and type = 'call'"
    ).fetchall()
    ((pb, pa),) = duckdb.sql(
        f"select bid, ask from '{shared_data / 'options' / 'spx_chains_2019q2.parquet'}' where "
        f"root = 'SPXW' and quotedate = '2019-07-02' and expiration = '2019-07-03' and "
        f"strike = {row['strike']} and type = 'put'"
    ).fetchall()
    payoff = abs(close - row["strike"])
    if row["position"] == -1:  # sold at the bids (slippage 0.5: the touch), settled at the close
        hand = (cb + pb - payoff) * 100 - 2 * 1.0
    else:
        hand = (payoff - ca - pa) * 100 - 2 * 1.0
    assert row["net_pnl"] == pytest.approx(hand, abs=0.005)


def test_vix_proxy_trades_settle_at_the_session_close_of_the_calendar(
    plugin: ZeroDteStraddle, sp500: pd.DataFrame
) -> None:
    """VIX-proxy mode: 2016-11-25 (the day after Thanksgiving) closed at 13:00 ET, so its straddle
    settles at 13:00, the day before at 16:00; both at the day's close of the underlying."""
    params = PARAMS.model_copy(update={"short_threshold": 0.0, "long_threshold": 0.0})
    start = pd.Timestamp("2016-11-21", tz="America/New_York")
    res = plugin.backtest(params, start, start + pd.Timedelta(days=9), cash=100_000.0)
    log = res.daily_log.set_index("date")
    for day, hour in ((dt.date(2016, 11, 23), 16), (dt.date(2016, 11, 25), 13)):
        row = log.loc[day]
        assert row["status"] == "traded", day
        assert row["settlement_time"] == dt.datetime.combine(day, dt.time(hour, 0))
        close = sp500.loc[pd.Timestamp(day, tz="America/New_York"), "close"]
        assert row["settlement_price"] == pytest.approx(close, rel=1e-12)
        settled = res.trades[(res.trades["event"] == "settlement")]
        settled = settled[settled["expiration"] == day]
        assert set(settled["time"]) == {pd.Timestamp(dt.datetime.combine(day, dt.time(hour)))}
