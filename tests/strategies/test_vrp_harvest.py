"""Tests of ``strategies.vrp_harvest`` on the real 2019 SPX/SPXW chains.

References are independent of the code under test: raw quotes read with DuckDB from the vendor
parquet file, Black-76 inverted with :func:`scipy.optimize.brentq` on :func:`scipy.stats.norm`,
realized vol and z-scores from pandas/numpy on the raw daily CSV.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.optimize import brentq
from scipy.stats import norm

from data_feeds import load_ohlc
from strategies.vrp_harvest import VrpHarvest, VrpHarvestParams

SPX_2019 = "options/spx_chains_2019q2.parquet"
DAILY = "index/spx_vix_spy_qqq_daily.csv"
FIXED = {
    "chain_symbol": "SPX",
    "root": "SPXW",
    "rate": 0.024,
    "entry_z": 0.5,
    "z_min_periods": 5,
    "account_risk": 0.10,
    "stop_loss": 0.5,
    "take_profit": 0.5,
    "max_contracts": 5,
}
BROKER = {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}


@pytest.fixture(scope="module")
def spx_daily(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(shared_data / DAILY, root="SPX", start="2017-01-01", end="2019-07-31")


@pytest.fixture(scope="module")
def plugin(spx_daily: pd.DataFrame, chain_store_2019) -> VrpHarvest:
    pl = VrpHarvest(FIXED, BROKER)
    pl.prepare({"underlying": spx_daily, "chains": chain_store_2019}, {"rv_window": [10, 21]})
    return pl


@pytest.fixture(scope="module")
def full_run(plugin: VrpHarvest):
    days = plugin.trading_days()
    return plugin.backtest(plugin.base, days[0], days[-1], cash=100_000.0)


def _raw(shared_data: Path, sql_where: str) -> pd.DataFrame:
    path = (shared_data / SPX_2019).as_posix()
    return duckdb.sql(
        f"select cast(quotedate as date) d, cast(expiration as date) e, strike, type, bid, ask "
        f"from '{path}' where root = 'SPXW' and {sql_where}"
    ).df()


def test_params_reject_inconsistent_dte() -> None:
    with pytest.raises(ValidationError, match="exit_dte"):
        VrpHarvestParams(min_dte=14, exit_dte=14)
    with pytest.raises(ValidationError, match="target_dte"):
        VrpHarvestParams(target_dte=90, max_dte=60)


def test_load_time_param_in_search_space_is_refused(spx_daily, chain_store_2019) -> None:
    with pytest.raises(ValueError, match="target_dte"):
        VrpHarvest(FIXED).prepare(
            {"underlying": spx_daily, "chains": chain_store_2019}, {"target_dte": [20, 30]}
        )


def test_atm_iv_matches_black76_from_raw_quotes(plugin: VrpHarvest, shared_data: Path) -> None:
    """ATM IV of 2019-05-02 vs Black-76 inverted by brentq at the parity forward of the raw
    ATM call/put mids (the snapshot is stored at 15:45 ET: tte counted to 16:00 ET of expiry)."""
    day = dt.date(2019, 5, 2)
    row = plugin.atm.loc[plugin.atm.index.date == day].iloc[0]
    assert row["iv_source"] == "parity_forward"
    exp = row["iv_expiry"]
    raw = _raw(
        shared_data, f"cast(quotedate as date) = '{day}' and cast(expiration as date) = '{exp}'"
    )
    raw["mid"] = (raw["bid"] + raw["ask"]) / 2
    wide = raw.pivot_table(index="strike", columns="type", values="mid").dropna()
    r = FIXED["rate"]
    tte = ((exp - day).days * 24 * 60 + 15) / (365 * 24 * 60)  # 15:45 -> 16:00 on expiry
    disc = math.exp(-r * tte)
    fwd_by_k = wide.index.to_numpy() + (wide["call"] - wide["put"]).to_numpy() / disc
    k = float(wide.index[np.argmin(np.abs(wide["call"] - wide["put"]).to_numpy())])
    fwd = float(np.median(fwd_by_k[np.argsort(np.abs(wide.index.to_numpy() - k))[:3]]))
    k_atm = float(wide.index[np.argmin(np.abs(wide.index.to_numpy() - fwd))])

    def b76(vol: float, cp: int) -> float:
        d1 = (math.log(fwd / k_atm) + 0.5 * vol**2 * tte) / (vol * math.sqrt(tte))
        d2 = d1 - vol * math.sqrt(tte)
        return disc * cp * (fwd * norm.cdf(cp * d1) - k_atm * norm.cdf(cp * d2))

    vols = [
        brentq(lambda v, cp=cp, m=m: b76(v, cp) - m, 1e-4, 3.0)
        for cp, m in ((1, wide.at[k_atm, "call"]), (-1, wide.at[k_atm, "put"]))
    ]
    assert row["atm_iv"] == pytest.approx(np.mean(vols), abs=2e-3)
    assert 0.05 < row["atm_iv"] < 0.4


def test_vrp_zscore_by_hand(plugin: VrpHarvest, shared_data: Path) -> None:
    """rv = close-to-close vol of the 21 log returns up to the session before the quote date
    (pandas on the raw CSV); z = (vrp - mean(past)) / std(past, ddof=1), past = earlier dates."""
    raw = pd.read_csv(shared_data / DAILY)
    date_col = next(c for c in raw.columns if c.lower() in ("date", "datetime", "timestamp"))
    sym_col = next(c for c in raw.columns if c.lower() in ("root", "symbol", "ticker"))
    spx = raw[raw[sym_col] == "SPX"].copy()
    spx.index = pd.to_datetime(spx[date_col]).dt.date
    close = spx[next(c for c in spx.columns if c.lower() == "close")].astype(float).sort_index()
    rv = np.log(close).diff().rolling(21).std() * math.sqrt(252)
    sig = plugin.signals()
    dates = list(sig.index)
    for i in (8, 20, 40):
        d = dates[i]
        prev = close.index[close.index.get_loc(d) - 1]
        assert sig.at[d, "rv_forecast"] == pytest.approx(rv[prev], rel=1e-9)
        vrp = (sig["atm_iv"] - rv.shift(1).reindex(dates).to_numpy()).to_numpy()
        past = vrp[:i][np.isfinite(vrp[:i])]
        z = (vrp[i] - past.mean()) / past.std(ddof=1)
        assert sig.at[d, "vrp_zscore"] == pytest.approx(z, rel=1e-9)


def test_one_trade_pnl_by_hand(full_run, shared_data: Path) -> None:
    """The first closed straddle: sold at the raw bids, bought back at the raw asks
    (slippage 0.5 = the touch), $1 commission per contract per leg, multiplier 100."""
    log = full_run.daily_log
    traded = log[log["status"] == "traded"]
    assert len(traded) >= 1
    t = traded.iloc[0]
    assert t["exit_reason"] in ("take_profit", "stop_loss", "dte", "window_end")
    strike = float(t["strikes"].split("C/")[0])
    n = int(t["contracts"])
    assert n >= 1

    def legs(day: dt.date) -> pd.DataFrame:
        return _raw(
            shared_data,
            f"cast(quotedate as date) = '{day}' and cast(expiration as date) = "
            f"'{t['expiration']}' and strike = {strike}",
        ).set_index("type")

    entry, exit_ = legs(t["date"]), legs(t["exit_date"])
    assert len(entry) == 2 and len(exit_) == 2
    credit = entry["bid"].sum()
    assert t["credit"] == pytest.approx(credit, abs=1e-9)
    pnl = n * 100 * (credit - exit_["ask"].sum()) - 4 * n * 1.0
    assert t["net_pnl"] == pytest.approx(pnl, abs=1e-6)
    # the exit rule held at the exit-day mids (profit target / stop on credit) unless DTE / window
    mid_pnl = credit - ((exit_["bid"] + exit_["ask"]) / 2).sum()
    if t["exit_reason"] == "take_profit":
        assert mid_pnl >= FIXED["take_profit"] * credit
    elif t["exit_reason"] == "stop_loss":
        assert -mid_pnl >= FIXED["stop_loss"] * credit


def test_sizing_follows_stop_defined_loss(full_run) -> None:
    """contracts = min(floor(0.10 * equity / (stop * credit * 100 + 4 * $1)), 5), by hand."""
    opened = full_run.daily_log.dropna(subset=["credit"])
    assert len(opened) >= 1
    first = opened.iloc[0]
    budget = 0.10 * 100_000.0  # nothing traded before the first entry: equity = initial cash
    per_unit = FIXED["stop_loss"] * first["credit"] * 100 + 4 * 1.0
    assert first["loss_budget_per_unit"] == pytest.approx(per_unit, rel=0.05)
    assert first["contracts"] == min(math.floor(budget / first["loss_budget_per_unit"]), 5)


def test_entries_only_when_zscore_high(full_run) -> None:
    log = full_run.daily_log
    opened = log[log["credit"].notna()]
    assert (opened["vrp_zscore"] >= FIXED["entry_z"]).all()
    assert (log.loc[log["status"] == "below_threshold", "vrp_zscore"] < FIXED["entry_z"]).all()


def test_no_look_ahead(spx_daily, chain_store_2019, plugin: VrpHarvest, full_run) -> None:
    """Truncating the underlying (hence the quote dates) at a cutoff leaves every earlier signal
    and every earlier decision of the backtest unchanged."""
    cutoff = dt.date(2019, 6, 14)
    short = VrpHarvest(FIXED, BROKER)
    short.prepare(
        {"underlying": spx_daily[spx_daily.index.date <= cutoff], "chains": chain_store_2019},
        {"rv_window": [10, 21]},
    )
    a, b = plugin.signals(), short.signals()
    assert b.index.max() <= cutoff and len(b) > 20
    pd.testing.assert_frame_equal(a.loc[b.index], b)
    days = short.trading_days()
    res = short.backtest(short.base, days[0], days[-1], cash=100_000.0)
    cols = ["date", "vrp_zscore", "contracts", "credit", "status"]
    last = days[-1].date()

    def decisions(log: pd.DataFrame) -> pd.DataFrame:
        # an entry row's status is later overwritten by its exit: compare "entered" instead
        out = log[log["date"] < last][cols].reset_index(drop=True)
        out.loc[out["credit"].notna(), "status"] = "entered"
        return out

    # decisions before the truncated window's last day (which closes everything) are identical
    pd.testing.assert_frame_equal(decisions(res.daily_log), decisions(full_run.daily_log))
    assert (decisions(res.daily_log)["status"] == "entered").any()
