"""``skew_dislocation`` on the real 2019 SPX/SPXW chains: realized skewness by hand, the
expected-skew fit against statsmodels on past points only, one risk reversal's P&L by hand from
the raw vendor rows (duckdb), the delta hedge, no look-ahead, and the risk layer (kill switch
flattening options and hedge, the position stop and max-loss sizing, each by hand)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from data_feeds import load_ohlc
from strategies.hedging import DeltaHedgedStrategy
from strategies.risk import OptionRiskMixin, RiskLimits
from strategies.skew_dislocation import (
    SkewDislocation,
    SkewDislocationParams,
    SkewDislocationStrategy,
    expected_skew,
    realized_skewness,
)

RAW = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
BROKER = {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}


@pytest.fixture(scope="module")
def spx(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="SPX", start="2018-06-01", end="2019-07-31")


@pytest.fixture(scope="module")
def plugin(chain_store_2019, spx) -> SkewDislocation:
    pl = SkewDislocation({"skew_window": 21}, BROKER)
    pl.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    return pl


def _adjusted_skew(a: np.ndarray) -> float:
    """Adjusted Fisher-Pearson sample skewness G1 (Joanes & Gill 1998, eq. 2) by hand."""
    n = a.size
    m = a - a.mean()
    g1 = (m**3).mean() / (m**2).mean() ** 1.5
    return g1 * math.sqrt(n * (n - 1)) / (n - 2)


def test_realized_skewness_by_hand_and_known_at_the_snapshot(spx) -> None:
    day = pd.Timestamp("2019-05-13", tz="America/New_York")
    i = spx.index.get_loc(day)
    o, c = spx["open"].to_numpy(), spx["close"].to_numpy()
    overnight = np.log(o[i - 20 : i + 1] / c[i - 21 : i])  # 21 returns, D's open included
    daily = np.log(c[i - 21 : i] / c[i - 22 : i - 1])  # 21 returns ending at D-1
    got_o = realized_skewness(spx, 21, "overnight").loc[day]
    got_d = realized_skewness(spx, 21, "daily").loc[day]
    assert got_o == pytest.approx(_adjusted_skew(overnight), rel=1e-10)
    assert got_d == pytest.approx(_adjusted_skew(daily), rel=1e-10)
    with pytest.raises(ValueError, match="window"):
        realized_skewness(spx, 2)


def test_expected_skew_matches_statsmodels_on_past_points_only() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=30)
    rr = -0.05 + 0.01 * x + rng.normal(scale=0.003, size=30)
    rr[4] = np.nan
    out = expected_skew(rr, x, model="regression", fit_window=12, min_fit=8)
    i = 25
    past = [j for j in range(i) if np.isfinite(rr[j])][-12:]
    fit = sm.OLS(rr[past], sm.add_constant(x[past])).fit()
    assert out.loc[i, "intercept"] == pytest.approx(fit.params[0], abs=1e-12)
    assert out.loc[i, "slope"] == pytest.approx(fit.params[1], abs=1e-12)
    assert out.loc[i, "expected"] == pytest.approx(fit.params[0] + fit.params[1] * x[i])
    assert out.loc[i, "scale"] == pytest.approx(math.sqrt(fit.scale), rel=1e-10)
    # changing the point itself or anything later leaves the fit (and expectation) unchanged
    rr2 = rr.copy()
    rr2[i:] += 1.0
    out2 = expected_skew(rr2, x, model="regression", fit_window=12, min_fit=8)
    assert out2.loc[i, "expected"] == pytest.approx(out.loc[i, "expected"], abs=1e-15)
    assert np.isnan(out.loc[7, "expected"])  # 7 finite points before index 8 < min_fit
    m = expected_skew(rr, x, model="mean", fit_window=12, min_fit=8)
    assert m.loc[i, "expected"] == pytest.approx(np.mean(rr[past]))
    assert m.loc[i, "scale"] == pytest.approx(np.std(rr[past], ddof=1))


def _raw(shared_data: Path, day: str, expiration: str, strike: float, kind: str) -> dict:
    row = duckdb.sql(
        f"select bid, ask from '{shared_data / RAW}' where root = 'SPXW' and "
        f"quotedate = DATE '{day}' and expiration = DATE '{expiration}' and "
        f"strike = {strike} and type = '{kind}'"
    ).fetchall()
    assert len(row) == 1, (day, expiration, strike, kind, row)
    return {"bid": row[0][0], "ask": row[0][1]}


def _forced(plugin: SkewDislocation, zs: dict[dt.date, float]) -> SkewDislocation:
    """A copy of the plugin whose z-scores are NaN except ``zs`` (hand-made signal)."""
    table = plugin.signal_table(plugin.base).copy()
    table["z"] = [zs.get(ts.date(), math.nan) for ts in table.index]
    copy = SkewDislocation(plugin.fixed, plugin.broker_params)
    copy.__dict__.update({**plugin.__dict__, "_signal_cache": {}})
    copy.signal_table = lambda params: table  # type: ignore[method-assign]
    return copy


def test_one_risk_reversal_pnl_by_hand_from_the_raw_quotes(shared_data, plugin) -> None:
    """z = +3 on 2019-06-10: sell the risk reversal (short 25d call, long 25d put); z = 0 on
    2019-06-11: reverted, close. Every price from the raw parquet rows."""
    a, b = dt.date(2019, 6, 10), dt.date(2019, 6, 11)
    pl = _forced(plugin, {a: 3.0, b: 0.0})
    days = plugin.trading_days()
    start, end = days[days.date == a][0], days[days.date == dt.date(2019, 6, 13)][0]
    res = pl.backtest(plugin.base.model_copy(update={"delta_hedge": False}), start, end, cash=1e6)
    t = res.info["rr_trades"].iloc[0]
    assert len(res.info["rr_trades"]) == 1
    assert (t["entry_date"], t["exit_date"], t["exit_reason"], t["side"]) == (a, b, "reverted", -1)
    exp, kc, kp = str(t["expiration"]), t["call_strike"], t["put_strike"]
    assert (exp, kc, kp) == ("2019-07-10", 2960.0, 2805.0)
    ca, pa = _raw(shared_data, str(a), exp, kc, "call"), _raw(shared_data, str(a), exp, kp, "put")
    cb, pb = _raw(shared_data, str(b), exp, kc, "call"), _raw(shared_data, str(b), exp, kp, "put")
    # fills at the touch (slippage 0.5 of the spread); $1 per contract per leg; x100
    by_hand = 100 * (ca["bid"] - pa["ask"] - cb["ask"] + pb["bid"]) - 4 * 1.0
    assert t["net_pnl"] == pytest.approx(by_hand, abs=1e-9)
    assert res.value.iloc[-1] - 1e6 == pytest.approx(by_hand, abs=1e-6)
    # with the hedge: the split adds up to the account's change and the hedge traded
    hedged = pl.backtest(plugin.base, start, end, cash=1e6)
    split = hedged.info["option_pnl"] + hedged.info["hedge_pnl"] + hedged.info["costs"]
    assert split == pytest.approx(hedged.value.iloc[-1] - 1e6, abs=1e-6)
    assert hedged.info["hedge_pnl"] != 0.0
    assert hedged.info["rr_trades"].iloc[0]["option_pnl"] == pytest.approx(by_hand, abs=1e-9)


def test_truncating_the_future_leaves_past_decisions_unchanged(chain_store_2019, spx) -> None:
    full = SkewDislocation({"skew_window": 21}, BROKER)
    full.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    short = SkewDislocation({"skew_window": 21}, BROKER)
    short.prepare({"underlying": spx.loc[:"2019-06-20"], "chains": chain_store_2019}, {})
    ta, tb = full.signal_table(full.base), short.signal_table(short.base)
    pd.testing.assert_frame_equal(ta.loc[tb.index], tb)
    assert np.isfinite(tb["z"]).sum() >= 20
    p = full.base.model_copy(update={"entry_z": 1.0, "max_hold_days": 3})
    days = full.trading_days()
    a = full.backtest(p, days[0], days[-1], cash=1e6)
    b = short.backtest(p, days[0], tb.index[-1], cash=1e6)
    n = len(b.daily_log) - 1
    cols = ["date", "z", "status"]
    pd.testing.assert_frame_equal(a.daily_log[cols].iloc[:n], b.daily_log[cols].iloc[:n])
    done = b.info["rr_trades"]
    done = done[done["exit_date"] < tb.index[-1].date()]
    assert len(done) >= 2
    pd.testing.assert_frame_equal(a.info["rr_trades"].iloc[: len(done)], done)


def test_params_reject_inconsistent_rules() -> None:
    with pytest.raises(ValueError, match="exit_z"):
        SkewDislocationParams(entry_z=1.0, exit_z=1.0)
    with pytest.raises(ValueError, match="min_fit"):
        SkewDislocationParams(fit_window=5, min_fit=6)
    with pytest.raises(ValueError, match="fixed at load time"):
        SkewDislocation({}).prepare({}, {"target_dte": [30]})


# --------------------------------------------------------------------------------------
# the risk layer (issue 6): kill switch, position stop, max-loss sizing
# --------------------------------------------------------------------------------------


def _underlying_last(shared_data: Path, day: str) -> float:
    """The vendor file's SPX price of one quote date (what the snapshot carries)."""
    rows = duckdb.sql(
        f"select distinct underlying_last from '{shared_data / RAW}' where root = 'SPXW' and "
        f"quotedate = DATE '{day}'"
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]


def _window(plugin: SkewDislocation, first: dt.date, last: dt.date) -> tuple:
    days = plugin.trading_days()
    return days[days.date == first][0], days[days.date == last][0]


def test_kill_switch_flattens_options_and_hedge_and_blocks_every_later_entry(
    shared_data, plugin
) -> None:
    """z = +3 on every date from 2019-06-10: sell the risk reversal and hedge it; a 1e-6
    drawdown limit trips on 2019-06-11 (the spread paid at entry alone is a drawdown). The
    kill must close both legs at that snapshot's bid/ask and sell the hedge shares at its SPX
    price, and every later date (z still +3) must stay flat."""
    assert SkewDislocationStrategy.__mro__.index(OptionRiskMixin) < (
        SkewDislocationStrategy.__mro__.index(DeltaHedgedStrategy)
    )
    a, b = dt.date(2019, 6, 10), dt.date(2019, 6, 11)
    later = [d for d in plugin.quote_dates if d >= a]
    pl = _forced(plugin, dict.fromkeys(later, 3.0))
    start, end = _window(plugin, a, dt.date(2019, 6, 20))
    pl.risk = RiskLimits(max_drawdown=1e-6)  # the config's [risk], not a parameter
    res = pl.backtest(plugin.base, start, end, cash=1e6)
    assert res.info["killed"] is True
    ev = res.info["risk_events"]
    kill = ev[ev["kind"] == "kill"].iloc[0]
    assert kill["time"].date() == b and kill["value"] >= 1e-6
    fills = res.trades
    assert set(fills["time"].dt.date) == {a, b}  # nothing at all after the kill day
    # options: sold call at its a-bid / put bought at its a-ask, closed at the b-ask / b-bid
    exp, kc, kp = "2019-07-10", 2960.0, 2805.0
    ca, pa = _raw(shared_data, str(a), exp, kc, "call"), _raw(shared_data, str(a), exp, kp, "put")
    cb, pb = _raw(shared_data, str(b), exp, kc, "call"), _raw(shared_data, str(b), exp, kp, "put")
    closes = fills[fills["tag"] == "close rr 2019-06-10"].set_index("right")
    assert closes.loc["C", "price"] == pytest.approx(cb["ask"], abs=1e-9)
    assert closes.loc["P", "price"] == pytest.approx(pb["bid"], abs=1e-9)
    options = 100 * (ca["bid"] - pa["ask"] - cb["ask"] + pb["bid"]) - 4 * 1.0
    t = res.info["rr_trades"].iloc[0]
    assert (t["exit_date"], t["exit_reason"]) == (b, "kill_switch")
    assert t["option_pnl"] == pytest.approx(options, abs=1e-9)
    # hedge: bought q index units at a's price + 0.05 ($0.005 each), sold at b's price
    stock = fills[fills["event"] == "stock_fill"].set_index("tag")
    q = int(stock.loc["rr 2019-06-10", "quantity"])  # tagged with the trade it hedges
    assert q > 0 and int(stock.loc["risk flatten", "quantity"]) == -q
    s_a, s_b = _underlying_last(shared_data, str(a)), _underlying_last(shared_data, str(b))
    assert stock.loc["risk flatten", "price"] == pytest.approx(s_b, abs=1e-9)
    hedge = q * (s_b - (s_a + 0.05)) - 0.005 * q
    assert res.value.iloc[-1] - 1e6 == pytest.approx(options + hedge, abs=1e-6)
    assert t["net_pnl"] == pytest.approx(options + hedge, abs=1e-6)  # the hedge is its trade's
    assert fills.groupby(["expiration", "strike", "right"])["quantity"].sum().eq(0).all()
    log = res.daily_log.set_index("date")
    blocked = [d for d in later if b <= d < end.date()]
    assert len(blocked) >= 3
    assert (log.loc[blocked, "status"] == "risk_blocked").all()


def test_stop_loss_on_the_hedged_position_by_hand(shared_data, plugin) -> None:
    """The stop compares the position's P&L (legs at the snapshot mids, hedge at its SPX price,
    net of costs paid) with ``stop_loss`` x the gross premium at the fills; by hand on
    2019-06-11 that P&L is about -$17.9 on a $3,670 basis: a 0.0045 stop (-$16.5) closes it
    there, a 0.005 stop (-$18.35) does not."""
    a, b = dt.date(2019, 6, 10), dt.date(2019, 6, 11)
    pl = _forced(plugin, {a: 3.0, b: 3.0, dt.date(2019, 6, 12): 3.0})
    start, end = _window(plugin, a, dt.date(2019, 6, 13))
    exp, kc, kp = "2019-07-10", 2960.0, 2805.0
    ca, pa = _raw(shared_data, str(a), exp, kc, "call"), _raw(shared_data, str(a), exp, kp, "put")
    cb, pb = _raw(shared_data, str(b), exp, kc, "call"), _raw(shared_data, str(b), exp, kp, "put")
    basis = 100 * (ca["bid"] + pa["ask"])
    tight = pl.backtest(plugin.base.model_copy(update={"stop_loss": 0.0045}), start, end, cash=1e6)
    hedge_fills = tight.trades.query("tag == 'rr 2019-06-10' and event == 'stock_fill'")
    q = int(hedge_fills["quantity"].iloc[0])  # tagged with the trade it hedges
    s_a, s_b = _underlying_last(shared_data, str(a)), _underlying_last(shared_data, str(b))
    mid_c, mid_p = 0.5 * (cb["bid"] + cb["ask"]), 0.5 * (pb["bid"] + pb["ask"])
    legs = 100 * (ca["bid"] - pa["ask"] - mid_c + mid_p) - 2 * 1.0  # opening commissions paid
    pnl = legs + q * (s_b - (s_a + 0.05)) - 0.005 * q
    assert -0.005 * basis < pnl < -0.0045 * basis
    trades = tight.info["rr_trades"]
    assert trades.iloc[0]["basis"] == pytest.approx(basis, abs=1e-9)
    assert (trades.iloc[0]["exit_date"], trades.iloc[0]["exit_reason"]) == (b, "stop_loss")
    stop = tight.info["risk_events"].query("kind == 'stop_position'").iloc[0]
    assert stop["value"] == pytest.approx(pnl, abs=1e-6)
    log = tight.daily_log.set_index("date")
    assert log.loc[b, "status"] == "closed"  # no re-entry on the stop's own snapshot
    assert trades.iloc[1]["entry_date"] == dt.date(2019, 6, 12)
    loose = pl.backtest(plugin.base.model_copy(update={"stop_loss": 0.005}), start, end, cash=1e6)
    assert loose.info["risk_events"].query("kind == 'stop_position'").empty
    assert loose.info["rr_trades"].iloc[0]["exit_reason"] != "stop_loss"


def test_max_loss_sizing_by_hand(shared_data, plugin) -> None:
    """Units = floor(account_risk * equity / (stop_loss * gross premium * 100 + 4 * $1)),
    gross premium at the touch (call bid + put ask) of the raw 2019-06-10 rows, capped."""
    a = dt.date(2019, 6, 10)
    pl = _forced(plugin, {a: 3.0})
    start, end = _window(plugin, a, dt.date(2019, 6, 12))
    ca = _raw(shared_data, str(a), "2019-07-10", 2960.0, "call")
    pa = _raw(shared_data, str(a), "2019-07-10", 2805.0, "put")
    loss = 0.5 * 100 * (ca["bid"] + pa["ask"]) + 4 * 1.0
    rules = {"sizing": "max_loss", "stop_loss": 0.5, "account_risk": 0.01, "max_contracts": 50}
    res = pl.backtest(plugin.base.model_copy(update=rules), start, end, cash=1e6)
    n = math.floor(0.01 * 1e6 / loss)
    assert n >= 2
    t = res.info["rr_trades"].iloc[0]
    assert t["contracts"] == n
    opened = res.trades[res.trades["tag"] == "rr 2019-06-10"].set_index("right")["quantity"]
    assert (opened["C"], opened["P"]) == (-n, n)
    assert res.daily_log.set_index("date").loc[a, "loss_budget_per_unit"] == pytest.approx(loss)
    capped = pl.backtest(
        plugin.base.model_copy(update={**rules, "max_contracts": n - 1}), start, end, cash=1e6
    )
    assert capped.info["rr_trades"].iloc[0]["contracts"] == n - 1


def test_risk_params_are_validated() -> None:
    with pytest.raises(ValueError, match="stop_loss"):
        SkewDislocationParams(sizing="max_loss")
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskLimits(max_drawdown=1.5)
    with pytest.raises(ValueError, match="max_drawdown"):  # a limit, not a parameter
        SkewDislocationParams(max_drawdown=0.2)
    with pytest.raises(ValueError, match="account_risk"):
        SkewDislocationParams(account_risk=0.0)
    cfg = SkewDislocationParams(stop_loss=0.5).risk_config(RiskLimits(max_daily_loss=0.02))
    assert (cfg.max_drawdown, cfg.max_daily_loss, cfg.stop_loss) == (0.25, 0.02, 0.5)


def test_a_searched_window_with_one_returns_kind_gives_each_window_its_own_table(
    chain_store_2019, spx
) -> None:
    """The shipped config searches skew_window over one returns kind: the grid call must give
    each window the table a plugin fixed at that window computes (vectorbt drops the column
    level of a single input column, which once broke this lookup)."""
    grid = SkewDislocation({"returns": "overnight"}, BROKER)
    grid.prepare({"underlying": spx, "chains": chain_store_2019}, {"skew_window": [21, 63]})
    for window in (21, 63):
        alone = SkewDislocation({"returns": "overnight", "skew_window": window}, BROKER)
        alone.prepare({"underlying": spx, "chains": chain_store_2019}, {})
        params = SkewDislocationParams(returns="overnight", skew_window=window)
        got, want = grid.signal_table(params), alone.signal_table(params)
        assert got["realized_skew"].notna().sum() > 10
        pd.testing.assert_frame_equal(got, want)
