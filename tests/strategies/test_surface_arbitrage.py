"""``surface_arbitrage`` on the real 2019 SPX/SPXW chains: the model vol of one option against the
raw SVI formula evaluated by hand (forward from the raw quotes), the leave-one-out refit, the gap
and the confidence score by hand from the raw bid/ask, one trade's P&L by hand from the raw
parquet rows, no look-ahead when the store's later dates are cut, and parameter validation.

The plugin runs on the first quote dates only (a window of the store) with a narrowed scan
(``scan_max_dte = 45``, ``|delta| >= 0.1``) to keep the leave-one-out refits fast."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from data_feeds import load_ohlc
from pricing.svi import fit_svi
from strategies import STRATEGIES
from strategies.surface_arbitrage import (
    SurfaceArbitrage,
    SurfaceArbitrageParams,
    confidence_score,
    select_trades,
)

pytestmark = pytest.mark.shared_data

RAW = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
BROKER = {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}
FIXED = {
    "scan_max_dte": 45,
    "max_dte": 45,
    "min_abs_delta": 0.1,
    "delta_hedge": True,
    "max_hold_days": 3,
}
N_FULL, N_SHORT = 9, 7


class Window:
    """A snapshot source showing only the store's quote dates ``<= last`` (the future cut)."""

    def __init__(self, source, last: dt.date) -> None:
        self.source, self.last = source, last

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        return [d for d in self.source.quote_dates(underlying, roots) if d <= self.last]

    def snapshot(self, underlying, quote_date, *args, **kwargs):
        if quote_date > self.last:
            raise KeyError(f"{quote_date} is after the window's last date {self.last}")
        return self.source.snapshot(underlying, quote_date, *args, **kwargs)


@pytest.fixture(scope="module")
def spx(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="SPX", start="2019-01-01", end="2019-07-31")


@pytest.fixture(scope="module")
def dates(chain_store_2019) -> list[dt.date]:
    return chain_store_2019.quote_dates("SPX", ["SPXW"])


@pytest.fixture(scope="module")
def plugin(chain_store_2019, spx, dates) -> SurfaceArbitrage:
    pl = SurfaceArbitrage(FIXED, BROKER)
    pl.prepare({"underlying": spx, "chains": Window(chain_store_2019, dates[N_FULL - 1])}, {})
    return pl


def _raw_expiry(shared_data: Path, day: dt.date, expiration: dt.date) -> pd.DataFrame:
    return duckdb.sql(
        f"select strike, type, bid, ask from '{shared_data / RAW}' where root = 'SPXW' and "
        f"quotedate = DATE '{day}' and expiration = DATE '{expiration}' "
        "and not is_market_holiday"
    ).df()


def _raw_quote(shared_data: Path, day: dt.date, expiration, strike: float, right: str) -> dict:
    raw = _raw_expiry(shared_data, day, expiration)
    kind = "call" if right == "C" else "put"
    row = raw[(raw["strike"] == strike) & (raw["type"] == kind)]
    assert len(row) == 1, (day, expiration, strike, right)
    return {"bid": float(row["bid"].iloc[0]), "ask": float(row["ask"].iloc[0])}


def _parity_forward(raw: pd.DataFrame) -> float:
    """Mean of ``K + C_mid - P_mid`` over the 3 strikes with the smallest ``|C_mid - P_mid|``
    among strikes whose call and put both have a bid (rate 0)."""
    c = raw[(raw["type"] == "call") & (raw["bid"] > 0)].set_index("strike")
    p = raw[(raw["type"] == "put") & (raw["bid"] > 0)].set_index("strike")
    both = c.index.intersection(p.index)
    diff = (c.loc[both, "bid"] + c.loc[both, "ask"] - p.loc[both, "bid"] - p.loc[both, "ask"]) / 2
    best = diff.abs().sort_values(kind="stable").index[:3]
    return float(np.mean(best.to_numpy() + diff.loc[best].to_numpy()))


def _black76_iv(price: float, forward: float, strike: float, tte: float, right: str) -> float:
    def value(vol: float) -> float:
        sd = vol * math.sqrt(tte)
        d1 = math.log(forward / strike) / sd + sd / 2
        if right == "C":
            return forward * norm.cdf(d1) - strike * norm.cdf(d1 - sd)
        return strike * norm.cdf(sd - d1) - forward * norm.cdf(-d1)

    return brentq(lambda v: value(v) - price, 1e-4, 5.0, xtol=1e-14)


def _one_option(plugin: SurfaceArbitrage) -> tuple[dt.date, pd.Series, pd.Series]:
    """The best-ranked candidate of the second quote date and its slice."""
    day = plugin.quote_dates[1]
    cand = plugin.candidates[day]
    row = select_trades(cand, plugin.base.model_copy(update={"entry_gap": 0.005})).iloc[0]
    sl = plugin.slices[day]
    return day, row, sl[sl["expiration"] == row["expiration"]].iloc[0]


def test_model_vol_is_the_raw_svi_formula_at_the_option(shared_data, plugin) -> None:
    day, row, sl = _one_option(plugin)
    raw = _raw_expiry(shared_data, day, row["expiration"])
    fwd = _parity_forward(raw)
    assert fwd == pytest.approx(float(sl["forward"]), rel=1e-12)
    k = math.log(row["strike"] / fwd)
    a, b, rho, m, sig = (sl["params"][x] for x in ("a", "b", "rho", "m", "sigma"))
    w = a + b * (rho * (k - m) + math.sqrt((k - m) ** 2 + sig**2))  # Gatheral (2004) raw SVI
    assert row["model_iv_fit"] == pytest.approx(math.sqrt(w / row["tte"]), rel=1e-10)
    # leave-one-out: the slice re-fitted without the option's own quote
    surf_pts = plugin.source.snapshot("SPX", day, None, ["SPXW"], False, 0.0)
    from pricing.surface_fit import fit_snapshot

    pts = fit_snapshot(surf_pts, "svi").points
    pts = pts[pd.DatetimeIndex(pts["expiration"]).date == row["expiration"]]
    own = (pts["strike"] == row["strike"]).to_numpy() & (pts["right"] == row["right"]).to_numpy()
    assert own.sum() == 1
    kk, ww, om = (pts[c].to_numpy(float) for c in ("log_moneyness", "total_variance", "weight"))
    loo = fit_svi(kk[~own], ww[~own], om[~own], wings="wings" in (sl["repair"] or ""))
    assert row["model_iv"] == pytest.approx(float(loo.params.implied_vol(k, row["tte"])), rel=1e-9)
    # optimality: on the reduced set the LOO fit is at least as good as the full fit, and the
    # full fit, which saw the quote, lies nearer to it (the pull leave-one-out removes)
    full = np.array([a, b, rho, m, sig])

    def sse(par: np.ndarray) -> float:
        a_, b_, r_, m_, s_ = par
        wm = a_ + b_ * (r_ * (kk - m_) + np.sqrt((kk - m_) ** 2 + s_**2))
        return float((om[~own] * (wm[~own] - ww[~own]) ** 2).sum())

    assert sse(loo.params.to_array()) <= sse(full) * (1 + 1e-9)
    mid_iv = float(row["mid_iv"])
    assert abs(row["model_iv"] - mid_iv) > abs(row["model_iv_fit"] - mid_iv)


def test_gap_and_score_by_hand_from_the_raw_bid_ask(shared_data, plugin) -> None:
    day, row, sl = _one_option(plugin)
    q = _raw_quote(shared_data, day, row["expiration"], row["strike"], row["right"])
    fwd, tte = float(sl["forward"]), float(row["tte"])
    snap = plugin.source.snapshot("SPX", day, None, ["SPXW"], False, 0.0)
    expiry_close = pd.Timestamp(f"{row['expiration']} 16:00", tz="America/New_York")
    assert tte == pytest.approx((expiry_close - snap.quote_time).total_seconds() / 86400 / 365)
    bid_iv = _black76_iv(q["bid"], fwd, row["strike"], tte, row["right"])
    ask_iv = _black76_iv(q["ask"], fwd, row["strike"], tte, row["right"])
    assert row["bid_iv"] == pytest.approx(bid_iv, abs=1e-9)
    assert row["ask_iv"] == pytest.approx(ask_iv, abs=1e-9)
    model = float(row["model_iv"])
    buy, sell = (model - ask_iv) / model, (bid_iv - model) / model
    gap, side = max(buy, sell), (1 if buy >= sell else -1)
    assert (row["gap"], row["side"]) == (pytest.approx(gap, abs=1e-9), side)
    # score = fit x spread x maturity (module docstring step 4)
    p = plugin.base
    fit = max(0.0, 1 - float(sl["rmse"]) / p.rmse_max)
    assert int(sl["butterfly_arbitrage_violations"]) + int(sl["calendar_arbitrage_violations"]) == 0
    edge, spread = gap * model * 100, (ask_iv - bid_iv) * 100
    mat = 1.0 if p.min_dte <= (row["expiration"] - day).days <= p.max_dte else 0.0
    score = fit * edge / (edge + spread) * mat
    assert row["score"] == pytest.approx(score, abs=1e-9)
    assert 0 < score < 1
    # a slice with an arbitrage flag, or outside the maturity band, scores 0
    bad = pd.DataFrame([row]).assign(slice_arbitrage=1.0)
    assert confidence_score(bad, p)["score"].iloc[0] == 0.0
    far = pd.DataFrame([row]).assign(dte=p.max_dte + 1)
    assert confidence_score(far, p)["score"].iloc[0] == 0.0


def test_one_trade_pnl_by_hand_from_the_raw_quotes(shared_data, plugin) -> None:
    days = plugin.trading_days()
    res = plugin.backtest(plugin.base, days[0], days[-1], cash=1e6)
    trades = res.info["sa_trades"]
    closed = trades[~trades["exit_reason"].isin(["open_at_end", "settled"])]
    assert len(closed) >= 2
    t = closed.iloc[0]
    a = _raw_quote(shared_data, t["entry_date"], t["expiration"], t["strike"], t["right"])
    b = _raw_quote(shared_data, t["exit_date"], t["expiration"], t["strike"], t["right"])
    # slippage 0.5 of the spread: fills at the touch; $1 per contract each way; x100
    if t["side"] > 0:
        by_hand = 100 * (b["bid"] - a["ask"]) - 2 * 1.0
    else:
        by_hand = 100 * (a["bid"] - b["ask"]) - 2 * 1.0
    assert t["net_pnl"] == pytest.approx(by_hand, abs=1e-9)
    assert t["entry_gap"] > plugin.base.entry_gap
    assert t["entry_score"] >= plugin.base.min_confidence
    # the split (option / hedge / costs) adds up to the account's change; the hedge traded
    split = res.info["option_pnl"] + res.info["hedge_pnl"] + res.info["costs"]
    assert split == pytest.approx(res.value.iloc[-1] - 1e6, abs=1e-6)
    assert res.info["hedge_pnl"] != 0.0
    log = res.daily_log
    assert (log["status"] == "traded").sum() == (trades["exit_reason"] != "open_at_end").sum()


def test_cutting_the_future_leaves_past_decisions_unchanged(
    chain_store_2019, spx, dates, plugin
) -> None:
    short = SurfaceArbitrage(FIXED, BROKER)
    short.prepare({"underlying": spx, "chains": Window(chain_store_2019, dates[N_SHORT - 1])}, {})
    assert short.quote_dates == plugin.quote_dates[:N_SHORT]
    for d in short.quote_dates:
        pd.testing.assert_frame_equal(short.candidates[d], plugin.candidates[d])
    days = plugin.trading_days()
    a = plugin.backtest(plugin.base, days[0], days[-1], cash=1e6)
    b = short.backtest(short.base, days[0], short.trading_days()[-1], cash=1e6)
    cols = ["date", "scanned", "passing", "opened", "status"]
    da, db = a.daily_log[a.daily_log["kind"] == "day"], b.daily_log[b.daily_log["kind"] == "day"]
    n = N_SHORT - 1  # the short run's last day is its window end
    pd.testing.assert_frame_equal(
        da[cols].iloc[:n].reset_index(drop=True), db[cols].iloc[:n].reset_index(drop=True)
    )
    assert (db["opened"].iloc[:n] > 0).any()
    done_b = b.info["sa_trades"]
    done_b = done_b[done_b["exit_date"] < short.quote_dates[-1]]
    assert len(done_b) >= 1
    ta = a.info["sa_trades"].set_index("tag").loc[done_b["tag"]].reset_index()
    pd.testing.assert_frame_equal(ta[done_b.columns], done_b.reset_index(drop=True))


def test_params_validation_and_registration() -> None:
    assert STRATEGIES["surface_arbitrage"] is SurfaceArbitrage
    with pytest.raises(ValueError, match="exit_gap"):
        SurfaceArbitrageParams(entry_gap=0.01, exit_gap=0.01)
    with pytest.raises(ValueError, match="scan_min_dte <= min_dte"):
        SurfaceArbitrageParams(min_dte=30, max_dte=20)
    with pytest.raises(ValueError, match="scan_min_dte <= min_dte"):
        SurfaceArbitrageParams(max_dte=120, scan_max_dte=90)
    with pytest.raises(ValueError, match="exit_dte"):
        SurfaceArbitrageParams(exit_dte=7, min_dte=7)
    with pytest.raises(ValueError, match="min_abs_delta"):
        SurfaceArbitrageParams(min_abs_delta=0.3, max_abs_delta=0.2)
    with pytest.raises(ValueError, match="max_new"):
        SurfaceArbitrageParams(max_new=5, max_open=3)
    with pytest.raises(ValueError, match="leave_one_out"):
        SurfaceArbitrageParams(model="sabr")
    with pytest.raises(ValueError, match="min_confidence"):
        SurfaceArbitrageParams(min_confidence=1.5)
    with pytest.raises(ValueError, match="model"):
        SurfaceArbitrageParams(model="heston", leave_one_out=False)
    SurfaceArbitrageParams(model="sabr", leave_one_out=False)
    with pytest.raises(ValueError, match="fixed at load time"):
        SurfaceArbitrage({}).prepare({}, {"leave_one_out": [True, False]})
    # the default [risk] of this strategy: $5,000 per vol point = $500,000 per 1.00 of vol
    assert SurfaceArbitrageParams().risk_config(SurfaceArbitrage().risk).max_abs_vega == 500_000.0
