"""volsuite stress: full repricing of a one-straddle book against QuantLib's Black formula at the
shocked inputs, the end-of-day book from fills, historical shock dates found in the shared data,
and VaR / ES against the normal closed form."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import QuantLib as ql
from scipy import stats

from experiments.stress import (
    DayBook,
    MonteCarloModel,
    Slice,
    book_greeks,
    held_positions,
    historical_shocks,
    scenario_pnl,
    spx_vix_history,
    var_es,
)

F, K, T, R = 2900.0, 2900.0, 30 / 365, 0.024
VOL_C, VOL_P = 0.15, 0.17


def straddle_book(qty: float = -2.0, smile: Slice | None = None) -> DayBook:
    """Short ``qty`` SPXW straddles struck at the forward (call vol 15%, put vol 17%)."""
    legs = pd.DataFrame(
        {
            "kind": ["option", "option"],
            "quantity": [qty, qty],
            "multiplier": [100.0, 100.0],
            "spot": [F, F],
            "forward": [F, F],
            "strike": [K, K],
            "tte": [T, T],
            "rate": [R, R],
            "vol": [VOL_C, VOL_P],
            "right": ["C", "P"],
            "slice": [("SPXW", "x"), ("SPXW", "x")],
        }
    )
    sl = smile or Slice(np.array([-0.1, 0.1]), np.array([0.2, 0.12]))
    return DayBook(pd.Timestamp("2019-06-03"), legs, {("SPXW", "x"): sl})


def ql_value(fwd: float, vol: float, tte: float, right: str) -> float:
    kind = ql.Option.Call if right == "C" else ql.Option.Put
    return ql.blackFormula(kind, K, fwd, vol * math.sqrt(tte), math.exp(-R * tte))


@pytest.mark.parametrize(
    ("x", "dv", "days"), [(-0.05, 0.10, 0.0), (0.10, -0.05, 0.0), (-0.12, 0.25, 1.0), (0, 0, 1)]
)
def test_sticky_strike_repricing_matches_quantlib(x: float, dv: float, days: float):
    """P&L = sum q * 100 * (Black(F (1 + x), sigma + dv, T - days/365) - Black(F, sigma, T))."""
    qty = -2.0
    book = straddle_book(qty)
    got = scenario_pnl(book, np.array([x]), np.array([dv]), days=days)[0]
    t1 = T - days / 365
    want = sum(
        qty * 100 * (ql_value(F * (1 + x), v + dv, t1, right) - ql_value(F, v, T, right))
        for v, right in ((VOL_C, "C"), (VOL_P, "P"))
    )
    assert got == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_sticky_moneyness_and_steepening_match_quantlib():
    """Sticky moneyness on a linear smile (20% at k=-0.1, 12% at k=+0.1, so 16% at k=0): after
    a -5% move the strike's log-moneyness is ln(1/0.95) = 0.05129 where the smile is
    0.2 - 0.4 * (0.05129 + 0.1) = 0.13948; each leg moves by 0.13948 - 0.16, plus +5 vol points.
    A zero shock loses nothing. Steepening beta 0.5 at k = 0 leaves ATM vols unchanged."""
    book = straddle_book(-1.0)
    got = scenario_pnl(book, np.array([-0.05]), np.array([0.05]), rule="sticky_moneyness")[0]
    k1 = math.log(1 / 0.95)
    move = 0.2 + (0.12 - 0.2) * (k1 + 0.1) / 0.2 - 0.16
    want = sum(
        -100 * (ql_value(F * 0.95, v + move + 0.05, T, right) - ql_value(F, v, T, right))
        for v, right in ((VOL_C, "C"), (VOL_P, "P"))
    )
    zero = scenario_pnl(book, np.array([0.0]), np.array([0.0]), rule="sticky_moneyness")[0]
    assert zero == pytest.approx(0.0, abs=1e-9)
    assert got == pytest.approx(want, rel=1e-9)
    assert scenario_pnl(book, np.array([0.0]), np.array([0.0]), steepening=0.5)[0] == (
        pytest.approx(0.0, abs=1e-9)
    )


def test_book_greeks_against_bumped_quantlib_prices():
    """Vega per vol point and delta per 1% against central differences of QuantLib prices."""
    qty = -2.0
    g = book_greeks(straddle_book(qty))

    def value(fwd: float, bump: float) -> float:
        return sum(
            qty * 100 * ql_value(fwd, v + bump, T, r) for v, r in ((VOL_C, "C"), (VOL_P, "P"))
        )

    vega = (value(F, 1e-4) - value(F, -1e-4)) / 2e-4 / 100
    delta_fwd = (value(F + 0.01, 0) - value(F - 0.01, 0)) / 0.02  # per point of forward
    ds = F * math.exp(-R * T)
    assert g["vega"] == pytest.approx(vega, rel=1e-5)
    # greeks are per point of the discounted forward: d/d(ds) = e^{rT} d/dF
    assert g["delta"] == pytest.approx(delta_fwd * math.exp(R * T) * ds * 0.01, rel=1e-5)


def test_held_positions_follow_fills_and_settlements():
    rows = [
        ("2020-01-03 15:45:00", "fill", "SPXW", "2020-01-08", 3000.0, "C", -1, 0),
        ("2020-01-03 15:45:00", "stock_fill", "SPX", None, None, None, 40, 0),
        ("2020-01-07 15:45:00", "fill", "SPXW", "2020-01-08", 3000.0, "C", 1, 0),
        ("2020-01-07 15:45:00", "fill", "SPXW", "2020-01-08", 3050.0, "P", 2, 0),
        ("2020-01-08 16:00:00", "settlement", "SPXW", "2020-01-08", 3050.0, "P", 2, 0),
    ]
    trades = pd.DataFrame(
        rows,
        columns=["time", "event", "root", "expiration", "strike", "right", "quantity", "fold"],
    )
    trades["price"], trades["commission"] = 1.0, 0.0
    sessions = pd.bdate_range("2020-01-02", "2020-01-09")
    held = held_positions(trades, sessions)
    by_day = held.groupby("date")["quantity"].apply(list).to_dict()
    assert by_day[pd.Timestamp("2020-01-03")] == [-1.0, 40.0]  # option first, then shares
    assert by_day[pd.Timestamp("2020-01-06")] == [-1.0, 40.0]
    assert by_day[pd.Timestamp("2020-01-07")] == [2.0, 40.0]
    assert by_day[pd.Timestamp("2020-01-08")] == [40.0]
    assert pd.Timestamp("2020-01-02") not in by_day


@pytest.mark.shared_data
def test_historical_shock_dates_come_from_the_data(shared_data: Path):
    """The largest one-day SPX falls and VIX rises, re-derived here from the raw CSV with plain
    pandas, are the ones the stress test replays; the well-known crash days are among them."""
    path = shared_data / "index" / "spx_vix_spy_qqq_daily.csv"
    shocks = historical_shocks(spx_vix_history(path), 5)
    raw = pd.read_csv(path, parse_dates=["Date"])
    spx = raw[raw["root"] == "SPX"].set_index("Date")["Close"].sort_index()
    vix = raw[raw["root"] == "VIX"].set_index("Date")["Close"].sort_index()
    common = spx.index.intersection(vix.index)
    falls = set(spx[common].pct_change().nsmallest(5).index)
    jumps = set(vix[common].diff().nlargest(5).index)
    assert set(shocks["date"]) == falls | jumps
    assert shocks["date"].iloc[0] == spx[common].pct_change().idxmin()
    for day in ("2008-10-15", "2020-03-16"):
        assert pd.Timestamp(day) in falls
    assert pd.Timestamp("2018-02-05") in jumps


def test_var_es_match_the_normal_closed_form():
    """N(mu, s): VaR_a = -mu + s z_a, ES_a = -mu + s phi(z_a) / (1 - a)."""
    mu, s = 100.0, 2_000.0
    pnl = np.random.default_rng(5).normal(mu, s, 2_000_000)
    for a in (0.95, 0.99):
        z = stats.norm.ppf(a)
        var, es = var_es(pnl, a)
        assert var == pytest.approx(-mu + s * z, rel=3e-3)
        assert es == pytest.approx(-mu + s * stats.norm.pdf(z) / (1 - a), rel=3e-3)
    with pytest.raises(ValueError, match="level"):
        var_es(pnl, 1.0)


def test_monte_carlo_of_a_share_book_is_lognormal_without_jumps():
    """No jumps: X ~ N(mu, sigma); 100 shares at 3000 lose 100 * 3000 * (e^X - 1), so
    VaR_99 = -300000 (exp(mu + sigma z_0.01) - 1) in closed form."""

    class Fit:
        mu, sigma, intensity, jump_mean, jump_vol = 0.0003, 0.012, 0.0, 0.0, 0.0

    model = MonteCarloModel(Fit(), vix_beta=-1.0, n_obs=1000, end=pd.Timestamp("2019-01-01"))
    x, dv = model.draw(400_000, seed=3)
    assert dv == pytest.approx(-np.log1p(x))
    legs = pd.DataFrame(
        {
            "kind": ["share"],
            "quantity": [100.0],
            "multiplier": [1.0],
            "spot": [3000.0],
            "forward": [3000.0],
            "strike": [np.nan],
            "tte": [0.0],
            "rate": [0.0],
            "vol": [np.nan],
            "right": ["C"],
            "slice": [None],
        }
    )
    pnl = scenario_pnl(DayBook(pd.Timestamp("2019-01-02"), legs), x, dv, days=1.0)
    var, _ = var_es(pnl, 0.99)
    want = -300_000 * math.expm1(Fit.mu + Fit.sigma * stats.norm.ppf(0.01))
    assert var == pytest.approx(want, rel=1e-2)
