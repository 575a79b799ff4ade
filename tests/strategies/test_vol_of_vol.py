"""``vol_of_vol`` on the real 2019 SPX/SPXW chains and the Cboe VIX/VVIX files: the fitted
relation against statsmodels on past sessions only, the signal of one date by hand from the raw
CSVs, one straddle's P&L by hand from the raw vendor rows (duckdb), no look-ahead (D's 16:15
closes, truncated chains and daily data) and the parameter checks."""

from __future__ import annotations

import copy
import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from brokers.cost_config import CostsConfig
from data_feeds import load_ohlc, load_vvix
from strategies import get_strategy
from strategies.risk import RiskLimits
from strategies.vol_of_vol import (
    VolOfVolGamma,
    VolOfVolParams,
    daily_panel,
    vol_of_vol_signals,
)

pytestmark = pytest.mark.shared_data

RAW = "options/spx_chains_2019q2.parquet"
BROKER = {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}
FIXED = {
    "rate": 0.024,
    "fit_window": 252,
    "min_fit": 63,
    "vvix_threshold": 0.5,
    "residual_threshold": 0.5,
    "account_risk": 0.02,
    "max_contracts": 5,
}
CASH = 1_000_000.0


@pytest.fixture(scope="module")
def daily(shared_data: Path) -> dict[str, object]:
    spx = load_ohlc(
        str(shared_data / "index/spx_vix_spy_qqq_daily.csv"),
        root="SPX",
        start="2017-01-01",
        end="2019-07-31",
    )
    vix = load_ohlc(str(shared_data / "index/vix_daily.csv"), start="2017-01-01", end="2019-07-31")
    vvix, _ = load_vvix(shared_data / "index/vvix_daily.csv")
    return {"underlying": spx, "vix": vix, "vvix": vvix}


@pytest.fixture(scope="module")
def raw_closes(shared_data: Path) -> pd.DataFrame:
    """VIX and VVIX closes read with plain pandas from the Cboe files (the reference)."""
    vix = pd.read_csv(shared_data / "index/vix_daily.csv")
    vvix = pd.read_csv(shared_data / "index/vvix_daily.csv")
    vix.index = pd.to_datetime(vix["DATE"], format="%m/%d/%Y")
    vvix.index = pd.to_datetime(vvix["DATE"], format="%m/%d/%Y")
    out = pd.concat([vix["CLOSE"].rename("vix"), vvix["VVIX"].rename("vvix")], axis=1, join="inner")
    return out.loc["2017-01-01":"2019-07-31"].astype(float)


@pytest.fixture(scope="module")
def plugin(daily, chain_store_2019) -> VolOfVolGamma:
    pl = VolOfVolGamma(FIXED, BROKER)
    pl.prepare({**daily, "chains": chain_store_2019}, {"fit_window": [126, 252]})
    return pl


@pytest.fixture(scope="module")
def full_run(plugin: VolOfVolGamma):
    days = plugin.trading_days()
    return plugin.backtest(plugin.base, days[0], days[-1], cash=CASH)


def _by_hand(raw: pd.DataFrame, day: str, window: int = 252, z_window: int = 63) -> dict:
    """OLS (statsmodels) of the VIX/100 change on the VVIX change over the ``window`` sessions
    before ``day``, and the VVIX-change z-score against the ``z_window`` previous changes."""
    dv = raw["vvix"].diff()
    di = (raw["vix"] / 100.0).diff()
    i = raw.index.get_loc(pd.Timestamp(day))
    past = slice(i - window, i)
    fit = sm.OLS(di.iloc[past].to_numpy(), sm.add_constant(dv.iloc[past].to_numpy())).fit()
    expected = fit.params[0] + fit.params[1] * dv.iloc[i]
    prev = dv.iloc[i - z_window : i]
    return {
        "intercept": fit.params[0],
        "slope": fit.params[1],
        "expected_change": expected,
        "residual": di.iloc[i] - expected,
        "residual_sd": math.sqrt(fit.scale),
        "residual_z": (di.iloc[i] - expected) / math.sqrt(fit.scale),
        "vvix_stat": (dv.iloc[i] - prev.mean()) / prev.std(ddof=1),
        "pct": raw["vvix"].iloc[i] / raw["vvix"].iloc[i - 1] - 1.0,
    }


def test_fitted_relation_matches_statsmodels_on_past_sessions_only(daily, raw_closes) -> None:
    panel, report = daily_panel(daily["vix"], daily["vvix"])
    assert "dropped 0 VIX sessions" in report[0]
    kw = {"fit_window": 252, "min_fit": 63, "vvix_z_window": 63}
    table = vol_of_vol_signals(panel["iv_proxy"], panel["vvix"], **kw)
    day = pd.Timestamp("2019-06-18", tz="America/New_York")
    ref = _by_hand(raw_closes, "2019-06-18")
    row = table.loc[day]
    for key in ("intercept", "slope", "expected_change", "residual", "residual_sd"):
        assert row[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-13), key
    assert row["residual_z"] == pytest.approx(ref["residual_z"], rel=1e-9)
    assert row["vvix_stat"] == pytest.approx(ref["vvix_stat"], rel=1e-9)
    assert row["n_fit"] == 252
    # the fit at t never sees t or later: change every close from t on, the fit is unchanged
    moved = panel.copy()
    moved.loc[day:, ["iv_proxy", "vvix"]] *= 1.7
    t2 = vol_of_vol_signals(moved["iv_proxy"], moved["vvix"], **kw).loc[day]
    for key in ("intercept", "slope", "residual_sd"):
        assert t2[key] == row[key]
    # ... while the session before t is inside its window
    earlier = panel.copy()
    earlier.loc[: day - pd.Timedelta(days=1), "vvix"] *= 1.01
    t3 = vol_of_vol_signals(earlier["iv_proxy"], earlier["vvix"], **kw).loc[day]
    assert t3["slope"] != row["slope"]
    pct = vol_of_vol_signals(panel["iv_proxy"], panel["vvix"], **kw, vvix_measure="pct")
    assert pct.loc[day, "vvix_stat"] == pytest.approx(ref["pct"], rel=1e-12)


def test_signal_of_one_quote_date_by_hand(plugin: VolOfVolGamma, raw_closes, full_run) -> None:
    """2019-06-19 reads the closes of 2019-06-18 (the previous session): VVIX change z 0.84 >
    0.5 and IV residual z -1.37 < -0.5 -> a straddle is bought that day."""
    dec = plugin.decision_table(plugin.base)
    d = dt.date(2019, 6, 19)
    row = dec.loc[d]
    ref = _by_hand(raw_closes, "2019-06-18")
    assert row["signal_day"] == dt.date(2019, 6, 18)
    assert row["status"] == "ok"
    assert row["vvix_stat"] == pytest.approx(ref["vvix_stat"], rel=1e-9)
    assert row["residual_z"] == pytest.approx(ref["residual_z"], rel=1e-9)
    assert ref["vvix_stat"] > FIXED["vvix_threshold"]
    assert ref["residual_z"] < -FIXED["residual_threshold"]
    log = full_run.daily_log.set_index("date")
    assert log.at[d, "status"] == "traded"
    # every entry fired, and no firing date with a flat book was skipped
    opened = log[log["premium"].notna()]
    assert (opened["vvix_stat"] > FIXED["vvix_threshold"]).all()
    assert (opened["residual_z"] < -FIXED["residual_threshold"]).all()
    below = log[log["status"] == "below_threshold"]
    fires = (below["vvix_stat"] > FIXED["vvix_threshold"]) & (
        below["residual_z"] < -FIXED["residual_threshold"]
    )
    assert not fires.any()


def _raw_legs(shared_data: Path, day: dt.date, expiration: dt.date, strike: float) -> pd.DataFrame:
    rows = duckdb.sql(
        f"select type, bid, ask from '{shared_data / RAW}' where root = 'SPXW' and "
        f"cast(quotedate as date) = DATE '{day}' and cast(expiration as date) = "
        f"DATE '{expiration}' and strike = {strike}"
    ).df()
    assert sorted(rows["type"]) == ["call", "put"], (day, expiration, strike)
    return rows.set_index("type")


def test_one_straddle_pnl_by_hand_from_the_raw_quotes(shared_data: Path, full_run) -> None:
    """The first straddle: expiry nearest 10 DTE and ATM strike from the raw rows, bought at
    the raw asks and sold at the raw bids (slippage 0.5 = the touch), $1 per contract per leg,
    x100; contracts = floor(2 % of $1M / (premium x 100 + $2)) capped at 5."""
    t = full_run.info["vov_trades"].iloc[0]
    a, b, exp, k, n = t["entry_date"], t["exit_date"], t["expiration"], t["strike"], t["contracts"]
    assert a == dt.date(2019, 5, 1)
    expiries = duckdb.sql(
        f"select distinct cast(expiration as date) e from '{shared_data / RAW}' where "
        f"root = 'SPXW' and cast(quotedate as date) = DATE '{a}'"
    ).df()["e"]
    dtes = np.array([(pd.Timestamp(e).date() - a).days for e in expiries])
    assert (exp - a).days == dtes[np.argmin(np.abs(dtes - 10))]
    near = duckdb.sql(
        f"select strike, type, (bid + ask) / 2 mid from '{shared_data / RAW}' where "
        f"root = 'SPXW' and cast(quotedate as date) = DATE '{a}' and "
        f"cast(expiration as date) = DATE '{exp}' and bid > 0"
    ).df()
    mids = near.pivot_table(index="strike", columns="type", values="mid").dropna()
    k0 = (mids["call"] - mids["put"]).abs().idxmin()
    tte = (exp - a).days / 365.0  # the forward by parity at the strike where C ~ P
    forward = k0 + math.exp(0.024 * tte) * (mids.at[k0, "call"] - mids.at[k0, "put"])
    assert abs(k - forward) <= 2.5  # the listed strike (5-point grid) nearest the forward
    entry, exit_ = _raw_legs(shared_data, a, exp, k), _raw_legs(shared_data, b, exp, k)
    premium = entry["ask"].sum()
    assert t["premium"] == pytest.approx(premium, abs=1e-9)
    assert n == min(math.floor(0.02 * CASH / (100 * premium + 2 * 1.0)), 5)
    by_hand = n * 100 * (exit_["bid"].sum() - premium) - 4 * n * 1.0
    assert t["option_pnl"] == pytest.approx(by_hand, abs=1e-6)
    assert t["commissions"] == pytest.approx(4 * n * 1.0)
    if t["exit_reason"] == "take_profit":  # the rule held at the exit day's raw mids
        mid = ((exit_["bid"] + exit_["ask"]) / 2).sum()
        assert mid / premium - 1 >= FIXED.get("take_profit", 0.5)
    # hedged P&L: option + hedge + hedge costs; the breakdown adds up to the account's change
    assert t["net_pnl"] == pytest.approx(t["option_pnl"] + t["hedge_pnl"] + t["hedge_costs"])
    assert t["hedge_pnl"] != 0.0 and t["hedge_costs"] < 0.0
    info = full_run.info
    split = info["option_pnl"] + info["hedge_pnl"] + info["costs"]
    assert split == pytest.approx(full_run.value.iloc[-1] - CASH, abs=1e-6)
    trades = info["vov_trades"]
    assert trades["net_pnl"].sum() == pytest.approx(full_run.value.iloc[-1] - CASH, abs=1e-6)


class _Truncated:
    """A snapshot source that knows nothing after ``cutoff`` (a hand-written stub)."""

    def __init__(self, source, cutoff: dt.date) -> None:
        self.source, self.cutoff = source, cutoff

    def quote_dates(self, underlying, roots=None):
        return [d for d in self.source.quote_dates(underlying, roots) if d <= self.cutoff]

    def snapshot(self, underlying, quote_date, *args):
        if quote_date > self.cutoff:
            raise AssertionError(f"read the future: {quote_date}")
        return self.source.snapshot(underlying, quote_date, *args)


DECISION_COLS = ["date", "signal_day", "vvix_stat", "residual_z", "status", "contracts", "premium"]


def test_truncating_future_chains_and_daily_data_leaves_past_decisions_unchanged(
    daily, chain_store_2019, plugin: VolOfVolGamma, full_run
) -> None:
    cutoff = dt.date(2019, 6, 21)
    cut = {k: v[v.index.date <= cutoff] for k, v in daily.items()}
    short = VolOfVolGamma(FIXED, BROKER)
    short.prepare({**cut, "chains": _Truncated(chain_store_2019, cutoff)}, {})
    a, b = plugin.decision_table(plugin.base), short.decision_table(short.base)
    assert b.index.max() == cutoff and len(b) > 30
    pd.testing.assert_frame_equal(a.loc[b.index], b)
    days = short.trading_days()
    res = short.backtest(short.base, days[0], days[-1], cash=CASH)

    def before(log: pd.DataFrame) -> pd.DataFrame:
        return log.loc[log["date"] < cutoff, DECISION_COLS].reset_index(drop=True)

    pd.testing.assert_frame_equal(before(res.daily_log), before(full_run.daily_log))
    assert (before(res.daily_log)["status"] == "traded").sum() >= 2


def test_perturbing_the_16_15_closes_of_d_leaves_d_decision_unchanged(
    daily, chain_store_2019, plugin: VolOfVolGamma
) -> None:
    """VIX and VVIX close at 16:15 ET, after D's 15:45 snapshot: changing D's closes must not
    move D's signal or trade; changing D-1's closes must (the test can fail)."""
    d = dt.date(2019, 6, 19)
    ts = pd.Timestamp(d, tz="America/New_York")

    def with_closes(day: pd.Timestamp, f_vix: float, f_vvix: float) -> VolOfVolGamma:
        vix = daily["vix"].copy()
        vix.loc[day, "close"] *= f_vix
        vvix = daily["vvix"].copy()
        vvix.loc[day.tz_localize(None)] *= f_vvix
        pl = VolOfVolGamma(FIXED, BROKER)
        pl.prepare({**daily, "vix": vix, "vvix": vvix, "chains": chain_store_2019}, {})
        return pl

    moved = with_closes(ts, 1.5, 0.6)
    base_row = plugin.decision_table(plugin.base).loc[d]
    pd.testing.assert_series_equal(moved.decision_table(moved.base).loc[d], base_row)
    nxt = dt.date(2019, 6, 20)  # the next day does read them
    assert moved.decision_table(moved.base).at[nxt, "vvix_stat"] != pytest.approx(
        plugin.decision_table(plugin.base).at[nxt, "vvix_stat"]
    )
    days = plugin.trading_days()
    window = days[(days.date >= d) & (days.date <= nxt)]
    r0 = plugin.backtest(plugin.base, window[0], window[-1], cash=CASH).daily_log
    r1 = moved.backtest(moved.base, window[0], window[-1], cash=CASH).daily_log
    cols = [*DECISION_COLS, "strike", "expiration"]
    pd.testing.assert_frame_equal(r0.loc[[0], cols], r1.loc[[0], cols])
    assert r0.at[0, "status"] == "traded"
    prev = with_closes(ts - pd.Timedelta(days=1), 1.0, 0.9)  # D-1's VVIX down 10 %
    assert prev.decision_table(prev.base).at[d, "vvix_stat"] < base_row["vvix_stat"] - 1.0


def test_params_and_inputs_are_validated(daily) -> None:
    with pytest.raises(ValueError, match="min_fit"):
        VolOfVolParams(fit_window=50, min_fit=60)
    with pytest.raises(ValueError, match="exit_dte"):
        VolOfVolParams(target_dte=7, exit_dte=7)
    with pytest.raises(ValueError, match="exit_residual_z"):
        VolOfVolParams(residual_threshold=1.0, exit_residual_z=-1.0)
    with pytest.raises(ValueError, match="vvix_measure"):
        VolOfVolParams(vvix_measure="level")
    with pytest.raises(ValueError, match="stop_loss"):
        VolOfVolParams(stop_loss=1.5)
    with pytest.raises(ValueError, match="hedge"):
        VolOfVolParams(hedge={"rule": "hourly"})
    with pytest.raises(ValueError, match=r"costs\.hedge_half_spread"):  # a cost, not a parameter
        VolOfVolParams(hedge={"rule": "interval", "half_spread": 0.0})
    hedge = VolOfVolParams().hedge_config(CostsConfig(hedge_half_spread=0.1))
    assert (hedge.rule, hedge.half_spread, hedge.commission_per_share) == ("interval", 0.1, 0.005)
    with pytest.raises(ValueError, match="Extra inputs"):
        VolOfVolParams(vvix_window=3)
    with pytest.raises(ValueError, match="fixed at load time"):
        VolOfVolGamma({}).prepare({}, {"target_dte": [7, 14]})
    panel, _ = daily_panel(daily["vix"], daily["vvix"])
    with pytest.raises(ValueError, match="share one index"):
        vol_of_vol_signals(panel["iv_proxy"], panel["vvix"].iloc[1:])
    with pytest.raises(ValueError, match="vvix_z_window"):
        vol_of_vol_signals(panel["iv_proxy"], panel["vvix"], vvix_z_window=1)
    with pytest.raises(ValueError, match="'close'"):
        daily_panel(daily["vix"].rename(columns={"close": "last"}), daily["vvix"])
    assert get_strategy("vol_of_vol") is VolOfVolGamma


def test_kill_switch_flattens_the_straddle_and_blocks_new_entries(plugin: VolOfVolGamma) -> None:
    """A 0.2 % drawdown limit trips while a straddle is open (2019-05-21, after the May gain):
    the risk layer sells it and the hedge, and every later firing date is refused."""
    days = plugin.trading_days()
    killer = copy.copy(plugin)  # the limit is the config's [risk], not a parameter
    killer.risk = RiskLimits(max_drawdown=0.002)
    res = killer.backtest(plugin.base, days[0], days[-1], cash=CASH)
    assert res.info["killed"]
    trades = res.info["vov_trades"]
    last = trades.iloc[-1]
    assert last["exit_reason"].startswith("risk: ")
    assert not trades.iloc[:-1]["exit_reason"].str.startswith("risk").any()
    log = res.daily_log
    after = log[log["date"] > last["exit_date"]]
    assert (after["status"] == "risk_blocked").sum() >= 2
    assert after["premium"].isna().all()
    # nothing left open after the kill: the book's value stays flat
    tail = res.value[res.value.index.date > last["exit_date"]]
    assert tail.nunique() == 1
