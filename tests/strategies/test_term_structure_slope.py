"""``term_structure_slope`` on the real 2019 SPX/SPXW chains: the curve fit against statsmodels,
the front/next expiries against the raw vendor file (duckdb), one calendar's P&L by hand from the
raw bid/ask rows, no look-ahead, and the risk layer (kill switch, stop at the premium, max-loss
sizing, each by hand from the raw rows)."""

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
from strategies.risk import RiskLimits
from strategies.term_structure_slope import (
    TermStructureSlope,
    TermStructureSlopeParams,
    front_curve_signal,
)

RAW = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
BROKER = {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}


@pytest.fixture(scope="module")
def spx(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="SPX", start="2019-01-01", end="2019-07-31")


@pytest.fixture(scope="module")
def plugin(chain_store_2019, spx) -> TermStructureSlope:
    pl = TermStructureSlope({}, BROKER)
    pl.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    return pl


def _raw(shared_data: Path, day: str, expiration: str, strike: float, kind: str) -> dict:
    """One vendor row read with duckdb straight from the parquet file."""
    row = duckdb.sql(
        f"select bid, ask from '{shared_data / RAW}' where root = 'SPXW' and "
        f"quotedate = DATE '{day}' and expiration = DATE '{expiration}' and "
        f"strike = {strike} and type = '{kind}'"
    ).fetchall()
    assert len(row) == 1, (day, expiration, strike, kind, row)
    return {"bid": row[0][0], "ask": row[0][1]}


def test_curve_fit_matches_statsmodels_and_expiries_match_the_raw_file(
    shared_data, chain_store_2019
) -> None:
    day = dt.date(2019, 5, 9)
    snap = chain_store_2019.snapshot("SPX", day, None, ["SPXW"], False, 0.0)
    sig = front_curve_signal(snap, "SPXW", front_min_dte=5, fit_max_dte=45, curve_x="sqrt_tte")
    raw_exp = [
        e.date() if hasattr(e, "date") else e
        for (e,) in duckdb.sql(
            f"select distinct expiration from '{shared_data / RAW}' where root = 'SPXW' and "
            f"quotedate = DATE '{day}' order by 1"
        ).fetchall()
    ]
    band = [e for e in raw_exp if 5 <= (e - day).days <= 45]
    assert sig["status"] == "ok"
    assert sig["front_expiration"] == band[0] and sig["next_expiration"] == band[1]
    others = band[1:]
    assert sig["n_fit"] == len(others)
    # independent OLS: statsmodels on sqrt(ACT/365 years to the PM close) of the same ATM vols
    tte = np.array([snap.tte(e, "SPXW") for e in others])
    assert tte[0] == pytest.approx(
        ((others[0] - day).days * 1440 - 15 * 60 - 45 + 16 * 60) / (365 * 1440), rel=1e-6
    )
    iv = np.array([snap.atm_iv(e, "SPXW") for e in others])
    fit = sm.OLS(iv, sm.add_constant(np.sqrt(tte))).fit()
    fair = fit.predict(np.array([[1.0, math.sqrt(snap.tte(band[0], "SPXW"))]]))[0]
    assert sig["curve_intercept"] == pytest.approx(fit.params[0], abs=1e-12)
    assert sig["curve_slope"] == pytest.approx(fit.params[1], abs=1e-12)
    assert sig["fair_front_iv"] == pytest.approx(fair, abs=1e-12)
    assert sig["residual"] == pytest.approx(snap.atm_iv(band[0], "SPXW") - fair, abs=1e-12)


def test_one_calendar_pnl_by_hand_from_the_raw_quotes(shared_data, plugin) -> None:
    """Front rich on 2019-05-09 -> buy the calendar (sell front call, buy next call at the
    front ATM strike), back on the curve on 2019-05-13 -> close; every price from the raw file."""
    a, b = dt.date(2019, 5, 9), dt.date(2019, 5, 13)
    signals = {d: {**s, "residual": math.nan} for d, s in plugin._signals.items()}
    signals[a] = {**plugin._signals[a], "residual": 0.05}
    signals[b] = {**plugin._signals[b], "residual": 0.0}
    plugin_copy = TermStructureSlope({}, BROKER)
    plugin_copy.__dict__.update({**plugin.__dict__, "_signals": signals})
    days = plugin.trading_days()
    start, end = days[days.date == a][0], days[days.date == dt.date(2019, 5, 15)][0]
    params = TermStructureSlopeParams(exit_threshold=0.0, max_hold_days=5, exit_dte=1)
    res = plugin_copy.backtest(params, start, end, cash=100_000.0)
    trades = res.info["calendar_trades"]
    assert len(trades) == 1
    t = trades.iloc[0]
    assert (t["entry_date"], t["exit_date"], t["exit_reason"]) == (a, b, "reverted")
    front, nxt, k = t["front_expiration"], t["next_expiration"], t["strike"]
    assert (str(front), str(nxt), k) == ("2019-05-15", "2019-05-17", 2870.0)
    fa = _raw(shared_data, "2019-05-09", "2019-05-15", k, "call")
    na = _raw(shared_data, "2019-05-09", "2019-05-17", k, "call")
    fb = _raw(shared_data, "2019-05-13", "2019-05-15", k, "call")
    nb = _raw(shared_data, "2019-05-13", "2019-05-17", k, "call")
    # slippage 0.5 of the spread = fills at the touch; $1 per contract per leg; x100 multiplier
    by_hand = 100 * (fa["bid"] - na["ask"] + nb["bid"] - fb["ask"]) - 4 * 1.0
    assert t["net_pnl"] == pytest.approx(by_hand, abs=1e-9)
    assert res.value.iloc[-1] - 100_000.0 == pytest.approx(by_hand, abs=1e-6)


def test_truncating_the_future_leaves_past_decisions_unchanged(chain_store_2019, spx) -> None:
    full = TermStructureSlope({}, BROKER)
    full.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    cut = spx.loc[:"2019-06-14"]
    short = TermStructureSlope({}, BROKER)
    short.prepare({"underlying": cut, "chains": chain_store_2019}, {})
    common = short.table.index
    pd.testing.assert_frame_equal(full.table.loc[common], short.table)
    params = TermStructureSlopeParams(entry_threshold=0.005, max_hold_days=3)
    days = full.trading_days()
    a = full.backtest(params, days[0], days[-1], cash=100_000.0)
    b = short.backtest(params, days[0], common[-1], cash=100_000.0)
    n = len(b.daily_log) - 1  # the truncated window's last day closes (window_end)
    cols = ["date", "residual", "status"]
    pd.testing.assert_frame_equal(a.daily_log[cols].iloc[:n], b.daily_log[cols].iloc[:n])
    ta, tb = a.info["calendar_trades"], b.info["calendar_trades"]
    done = tb[tb["exit_date"] < common[-1].date()]
    assert len(done) >= 2
    pd.testing.assert_frame_equal(ta.iloc[: len(done)], done)


def test_params_reject_inconsistent_rules() -> None:
    with pytest.raises(ValueError, match="exit_threshold"):
        TermStructureSlopeParams(entry_threshold=0.01, exit_threshold=0.01)
    with pytest.raises(ValueError, match="exit_dte"):
        TermStructureSlopeParams(exit_dte=5, front_min_dte=5)
    with pytest.raises(ValueError, match="fixed at load time"):
        TermStructureSlope({}).prepare({}, {"curve_x": ["tte"]})


# --------------------------------------------------------------------------------------
# the risk layer (issue 6): kill switch, position stop, max-loss sizing
# --------------------------------------------------------------------------------------

A, B = dt.date(2019, 5, 9), dt.date(2019, 5, 13)  # 2019-05-10 is not in the vendor file
K, FRONT, NEXT = 2870.0, "2019-05-15", "2019-05-17"


def _forced(plugin: TermStructureSlope, residuals: dict[dt.date, float]) -> TermStructureSlope:
    """A copy of the plugin whose residuals are NaN except ``residuals`` (hand-made signal)."""
    signals = {d: {**s, "residual": residuals.get(d, math.nan)} for d, s in plugin._signals.items()}
    copy = TermStructureSlope({}, BROKER)
    copy.__dict__.update({**plugin.__dict__, "_signals": signals})
    return copy


def _quotes(shared_data: Path) -> dict[str, dict]:
    """Raw rows of the 2870 calls of 2019-05-15 / 05-17 on 2019-05-09 (a) and 05-13 (b)."""
    return {
        f"{leg}{day}": _raw(shared_data, str(d), e, K, "call")
        for day, d in (("a", A), ("b", B))
        for leg, e in (("f", FRONT), ("n", NEXT))
    }


def _window(plugin: TermStructureSlope, last: dt.date) -> tuple:
    days = plugin.trading_days()
    return days[days.date == A][0], days[days.date == last][0]


def test_kill_switch_flattens_the_calendar_and_blocks_every_later_entry(
    shared_data, plugin
) -> None:
    """Residual +5 vol points on every date from 2019-05-09: buy the calendar; a 1e-6 drawdown
    limit trips on 2019-05-13 at the drawdown computed by hand from the raw mids; the calendar
    is closed at that snapshot's bid/ask and no later date (residual still +5) trades."""
    later = [d for d in plugin.quote_dates if d >= A]
    pl = _forced(plugin, dict.fromkeys(later, 0.05))
    start, end = _window(plugin, dt.date(2019, 5, 20))
    pl.risk = RiskLimits(max_drawdown=1e-6)  # the config's [risk], not a parameter
    res = pl.backtest(TermStructureSlopeParams(), start, end, cash=100_000.0)
    q = _quotes(shared_data)
    mid = {k: 0.5 * (v["bid"] + v["ask"]) for k, v in q.items()}
    value_b = 100_000.0 + 100 * (q["fa"]["bid"] - q["na"]["ask"]) - 2.0
    value_b += 100 * (mid["nb"] - mid["fb"])  # marks at the mids of 05-13
    ev = res.info["risk_events"]
    kill = ev[ev["kind"] == "kill"].iloc[0]
    assert res.info["killed"] is True and kill["time"].date() == B
    assert kill["value"] == pytest.approx(1.0 - value_b / 100_000.0, abs=1e-12)
    fills = res.trades
    assert set(fills["time"].dt.date) == {A, B}
    closes = fills[fills["tag"] == "close calendar 2019-05-09"].set_index("expiration")
    assert closes.loc[dt.date(2019, 5, 15), "price"] == pytest.approx(q["fb"]["ask"], abs=1e-9)
    assert closes.loc[dt.date(2019, 5, 17), "price"] == pytest.approx(q["nb"]["bid"], abs=1e-9)
    by_hand = 100 * (q["fa"]["bid"] - q["na"]["ask"] + q["nb"]["bid"] - q["fb"]["ask"]) - 4.0
    t = res.info["calendar_trades"].iloc[0]
    assert (t["exit_date"], t["exit_reason"]) == (B, "kill_switch")
    assert t["net_pnl"] == pytest.approx(by_hand, abs=1e-9)
    assert res.value.iloc[-1] - 100_000.0 == pytest.approx(by_hand, abs=1e-6)
    log = res.daily_log.set_index("date")
    blocked = [d for d in later if B <= d < end.date()]
    assert len(blocked) >= 3 and (log.loc[blocked, "status"] == "risk_blocked").all()


def test_stop_loss_at_the_premium_by_hand(shared_data, plugin) -> None:
    """Bought calendar of 2019-05-09: basis = debit x 100 + 2 commissions; P&L on 05-13 at the
    raw mids. A stop just below that P&L closes it there; one just above does not."""
    pl = _forced(plugin, {A: 0.05})
    start, end = _window(plugin, dt.date(2019, 5, 14))
    q = _quotes(shared_data)
    basis = 100 * (q["na"]["ask"] - q["fa"]["bid"]) + 2.0
    mids = 0.5 * (q["nb"]["bid"] + q["nb"]["ask"] - q["fb"]["bid"] - q["fb"]["ask"])
    pnl = 100 * mids - basis
    stop = -pnl / basis  # the stop fraction at which 05-13 is exactly at the limit
    params = TermStructureSlopeParams(max_hold_days=5, exit_dte=1, stop_loss=0.98 * stop)
    res = pl.backtest(params, start, end, cash=100_000.0)
    ev = res.info["risk_events"].query("kind == 'stop_position'")
    assert len(ev) == 1 and ev.iloc[0]["time"].date() == B
    assert ev.iloc[0]["value"] == pytest.approx(pnl, abs=1e-9)
    assert ev.iloc[0]["limit"] == pytest.approx(-0.98 * stop * basis, abs=1e-9)
    t = res.info["calendar_trades"].iloc[0]
    assert (t["exit_date"], t["exit_reason"]) == (B, "stop_loss")
    loose = pl.backtest(params.model_copy(update={"stop_loss": 1.02 * stop}), start, end, cash=1e5)
    assert loose.info["risk_events"].query("kind == 'stop_position'").empty


def test_max_loss_sizing_by_hand(shared_data, plugin) -> None:
    """Bought calendar: loss per unit = debit at the touch x 100 + 4 x $1; sold calendar
    (residual -5 vol points): stop_loss x credit x 100 + 4 x $1; units = floor(account_risk x
    $100k / loss), capped at max_contracts. The broker's margin check still applies: 15 sold
    calendars (a naked back-month call each once the front is gone) do not fit $100k."""
    q = _quotes(shared_data)
    start, end = _window(plugin, dt.date(2019, 5, 14))
    rules = {"sizing": "max_loss", "stop_loss": 0.5, "max_contracts": 50}
    for residual, risk, loss in (
        (0.05, 0.02, 100 * (q["na"]["ask"] - q["fa"]["bid"]) + 4.0),
        (-0.05, 0.003, 0.5 * 100 * (q["na"]["bid"] - q["fa"]["ask"]) + 4.0),
    ):
        pl = _forced(plugin, {A: residual})
        params = TermStructureSlopeParams(**rules, account_risk=risk)
        res = pl.backtest(params, start, end, cash=100_000.0)
        n = math.floor(risk * 100_000.0 / loss)
        assert n >= 2
        assert res.daily_log.set_index("date").loc[A, "loss_budget_per_unit"] == pytest.approx(loss)
        opened = res.trades[res.trades["tag"] == "calendar 2019-05-09"]
        side = 1 if residual > 0 else -1
        assert opened.set_index("expiration")["quantity"].to_dict() == {
            dt.date(2019, 5, 15): -side * n,
            dt.date(2019, 5, 17): side * n,
        }
    big = pl.backtest(params.model_copy(update={"account_risk": 0.02}), start, end, cash=1e5)
    row = big.daily_log.set_index("date").loc[A]
    assert (row["contracts"], row["status"]) == (math.floor(2000 / loss), "rejected")
    capped = TermStructureSlopeParams(**{**rules, "max_contracts": 2})
    res = _forced(plugin, {A: 0.05}).backtest(capped, start, end, cash=100_000.0)
    assert res.info["calendar_trades"].iloc[0]["contracts"] == 2


def test_risk_params_are_validated() -> None:
    with pytest.raises(ValueError, match="stop_loss"):
        TermStructureSlopeParams(sizing="max_loss")
    TermStructureSlopeParams(sizing="max_loss", allow_short=False)  # a debit bounds the loss
    with pytest.raises(ValueError, match="max_daily_loss"):
        RiskLimits(max_daily_loss=0.0)
    with pytest.raises(ValueError, match="max_daily_loss"):  # a limit, not a parameter
        TermStructureSlopeParams(max_daily_loss=0.02)
    with pytest.raises(ValueError, match="max_contracts"):
        TermStructureSlopeParams(max_contracts=0)
    cfg = TermStructureSlopeParams(stop_loss=0.5).risk_config(RiskLimits())
    assert (cfg.max_drawdown, cfg.max_daily_loss, cfg.stop_loss) == (0.25, None, 0.5)
