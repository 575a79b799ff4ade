"""Delta hedging (``strategies.hedging``): the Whalley-Wilmott band, hedge quantities and the P&L
breakdown on a synthetic Black-76 chain and on real 2019 SPXW quotes, and no look-ahead.

References (independent of the code under test): Black (1976) prices, deltas and gammas recomputed
with ``scipy.stats.norm``; the Whalley & Wilmott (1997) bandwidth and the hedge trades worked out
by hand in the tests; SPX closes read from the index file with the ``csv`` module; the account
value reported by the broker (``getvalue``) for the P&L identity.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from brokers import OptionsBroker
from data_feeds import load_ohlc
from data_feeds.chain_feed import chain_feed
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from strategies.base import run_cerebro
from strategies.hedging import DeltaHedgedStrategy, HedgeConfig, whalley_wilmott_band
from strategies.option_strategy import ComboSpec

# -- a synthetic SPXW chain: mids are exact Black-76 prices (r = 0, F = spot) ----------------------

EXPIRY = dt.date(2019, 6, 28)
STRIKES = range(2800, 3001, 25)
HALF_SPREAD = 0.10  # option quotes: mid +- 0.10
VOL = 0.2
DAYS = [dt.date(2019, 6, d) for d in (3, 4, 5, 6, 7, 10)]
SPOTS = [2900.0, 2930.0, 2880.0, 2884.0, 2950.0, 2905.0]
COMMISSION = 0.65
SH_HALF, SH_COMM = 0.05, 0.005  # hedge: half spread (points) and commission per share


def tte_years(day: dt.date) -> float:
    """ACT/365 years from 15:45 on ``day`` to 16:00 on the expiry."""
    delta = dt.datetime.combine(EXPIRY, dt.time(16)) - dt.datetime.combine(day, dt.time(15, 45))
    return delta.total_seconds() / (365.0 * 24.0 * 3600.0)


def d1(f: float, k: float, t: float, vol: float) -> float:
    return (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))


def black76(f: float, k: float, t: float, vol: float, right: str) -> float:
    a = d1(f, k, t, vol)
    b = a - vol * math.sqrt(t)
    if right == "C":
        return f * norm.cdf(a) - k * norm.cdf(b)
    return k * norm.cdf(-b) - f * norm.cdf(-a)


def quotes(day: dt.date, spot: float) -> pd.DataFrame:
    t = tte_years(day)
    rows = []
    for k in STRIKES:
        for right in "CP":
            p = black76(spot, k, t, VOL, right)
            rows.append(
                {
                    "root": "SPXW",
                    "expiration": pd.Timestamp(EXPIRY),
                    "strike": float(k),
                    "right": right,
                    "bid": p - HALF_SPREAD,
                    "ask": p + HALF_SPREAD,
                    "mid": p,
                    "last": np.nan,
                    "volume": np.nan,
                    "open_interest": np.nan,
                    "vendor_implied_vol": np.nan,
                    "vendor_delta": np.nan,
                    "vendor_gamma": np.nan,
                    "vendor_theta": np.nan,
                    "vendor_vega": np.nan,
                    "is_liquid": True,
                }
            )
    return pd.DataFrame(rows)[list(QUOTE_COLUMNS)]


class SyntheticSource:
    """SnapshotSource over a spot path (vol fixed)."""

    def __init__(self, path: dict[dt.date, float]) -> None:
        self.path = path

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        return sorted(self.path)

    def snapshot(
        self,
        underlying: str,
        quote_date: dt.date,
        quote_time: dt.time | None = None,
        roots: Sequence[str] | None = None,
        liquid_only: bool = False,
        rate: float = 0.0,
    ) -> ChainSnapshot:
        when = pd.Timestamp.combine(quote_date, dt.time(15, 45)).tz_localize("America/New_York")
        spot = self.path[quote_date]
        return ChainSnapshot("SPX", when, spot, quotes(quote_date, spot), source="synthetic")


STRADDLE = ComboSpec(kind="straddle", root="SPXW", target_dte=25, strike=2900)


class LongStraddle(DeltaHedgedStrategy):
    """Buy one 2900 straddle on the first bar, hold it; the hedger does the rest."""

    def next_options(self, snapshot: ChainSnapshot) -> None:
        if not self.combos and not self.obroker.option_fills:
            self.open_combo(STRADDLE, 1, tag="straddle")


def run_synthetic(n_days: int, hedge: dict):
    path = dict(zip(DAYS[:n_days], SPOTS[:n_days], strict=True))
    feed = chain_feed(SyntheticSource(path), "SPX", roots=["SPXW"], target_dte=25, far_dte=60)
    broker = OptionsBroker(commission_per_contract=COMMISSION)
    strat, value, _ = run_cerebro(
        LongStraddle, [feed], broker, cash=100_000.0, strategy_kwargs={"hedge": hedge}
    )
    return strat, broker, value


def straddle_greeks(spot: float, day: dt.date) -> tuple[float, float, float]:
    """(price per unit, delta in shares, gamma in shares/point) of 1 straddle (x100), scipy."""
    t = tte_years(day)
    a = d1(spot, 2900.0, t, VOL)
    price = black76(spot, 2900.0, t, VOL, "C") + black76(spot, 2900.0, t, VOL, "P")
    delta = 100 * (norm.cdf(a) + norm.cdf(a) - 1.0)
    gamma = 100 * 2 * norm.pdf(a) / (spot * VOL * math.sqrt(t))
    return price, delta, gamma


# -- the band by hand --------------------------------------------------------------------------


def test_whalley_wilmott_band_by_hand() -> None:
    # H = (3/2 * c * Gamma^2 / gamma_ra)^(1/3); c = 0.055 $/sh, Gamma = 4 sh/pt, gamma_ra = 1e-4
    # 1.5 * 0.055 * 16 / 1e-4 = 13200 sh^3 -> H = 23.6330... shares (23.633315^3 = 13200.00)
    assert whalley_wilmott_band(4.0, 0.055, 1e-4) == pytest.approx(23.633315, abs=1e-5)
    assert whalley_wilmott_band(-4.0, 0.055, 1e-4) == pytest.approx(23.633315, abs=1e-5)
    # doubling gamma multiplies H by 2^(2/3); discount enters under the cube root
    assert whalley_wilmott_band(8.0, 0.055, 1e-4) == pytest.approx(23.633315 * 2 ** (2 / 3))
    assert whalley_wilmott_band(4.0, 0.055, 1e-4, 0.5) == pytest.approx(
        13200 ** (1 / 3) / 2 ** (1 / 3)
    )
    assert whalley_wilmott_band(0.0, 0.055, 1e-4) == 0.0
    with pytest.raises(ValueError, match="risk_aversion"):
        whalley_wilmott_band(4.0, 0.055, 0.0)
    with pytest.raises(ValueError, match="cost_per_share"):
        whalley_wilmott_band(4.0, -0.01, 1e-4)
    with pytest.raises(ValidationError):
        HedgeConfig(rule="weekly")
    with pytest.raises(ValidationError):
        HedgeConfig(interval_bars=0)


# -- synthetic chain: quantities, P&L and the identity by hand -----------------------------------


def test_band_rule_quantities_and_pnl_by_hand() -> None:
    band = 8.0
    hedge = {"rule": "band", "band": band, "half_spread": SH_HALF, "commission_per_share": SH_COMM}
    strat, _, value = run_synthetic(len(DAYS), hedge)
    decisions = strat.hedger.decisions_frame()
    pnl = strat.hedger.pnl_frame()
    assert len(decisions) == len(DAYS) == len(pnl)

    held, prev_price, prev_spot = 0, None, None
    cash = 100_000.0
    for i, (day, spot) in enumerate(zip(DAYS, SPOTS, strict=True)):
        price, delta, _ = straddle_greeks(spot, day)
        book = delta + held
        # band rule by hand: trade back to 0 when |book delta| > 8, whole shares toward zero
        qty = int(-book) if abs(book) > band else 0
        row = decisions.iloc[i]
        assert row["delta"] == pytest.approx(book, abs=1e-6), day
        assert row["band"] == band and row["quantity"] == qty, day
        r = pnl.iloc[i]
        if i == 0:
            exp_opt = 0.0  # bought at mid-equivalent value: the spread is a cost
            exp_cost = -(2 * COMMISSION + 2 * HALF_SPREAD * 100)
            cash -= 100 * (price + 2 * HALF_SPREAD) + 2 * COMMISSION
        else:
            exp_opt = 100 * (price - prev_price)
            exp_cost = 0.0
        exp_hedge = 0.0 if i == 0 else held * (spot - prev_spot)
        exp_cost -= abs(qty) * (SH_HALF + SH_COMM)
        assert r["option_pnl"] == pytest.approx(exp_opt, abs=1e-6), day
        assert r["hedge_pnl"] == pytest.approx(exp_hedge, abs=1e-9), day
        assert r["costs"] == pytest.approx(exp_cost, abs=1e-9), day
        # the identity, every bar, against the broker's account value
        assert r["option_pnl"] + r["hedge_pnl"] + r["costs"] == pytest.approx(
            r["value_change"], abs=1e-6
        )
        cash -= qty * (spot + math.copysign(SH_HALF, qty)) + abs(qty) * SH_COMM if qty else 0.0
        held += qty
        assert float(value.iloc[i]) == pytest.approx(cash + 100 * price + held * spot, abs=1e-6)
        prev_price, prev_spot = price, spot
    assert int(decisions["quantity"].ne(0).sum()) >= 3  # the path did trigger hedges
    assert float(value.iloc[-1]) - 100_000.0 == pytest.approx(
        pnl[["option_pnl", "hedge_pnl", "costs"]].to_numpy().sum(), abs=1e-6
    )
    daily = strat.hedger.daily_pnl()
    assert list(daily.index) == DAYS
    assert daily["hedge_pnl"].to_numpy() == pytest.approx(pnl["hedge_pnl"].to_numpy())


def test_whalley_wilmott_and_interval_rules_by_hand() -> None:
    ra = 2e-5
    hedge = {
        "rule": "whalley_wilmott",
        "risk_aversion": ra,
        "half_spread": SH_HALF,
        "commission_per_share": SH_COMM,
    }
    strat, _, _ = run_synthetic(len(DAYS), hedge)
    held = 0
    for i, (day, spot) in enumerate(zip(DAYS, SPOTS, strict=True)):
        _, delta, gamma = straddle_greeks(spot, day)
        band = max((1.5 * (SH_HALF + SH_COMM) * gamma**2 / ra) ** (1 / 3), 0.5)
        book = delta + held
        qty = int(-book) if abs(book) > band else 0
        d = strat.hedger.decisions[i]
        assert d.gamma == pytest.approx(gamma, rel=1e-6)
        assert d.band == pytest.approx(band, rel=1e-6) and d.quantity == qty, day
        held += qty
    assert any(d.quantity == 0 and d.reason == "inside band" for d in strat.hedger.decisions)
    assert any(d.quantity != 0 for d in strat.hedger.decisions)

    strat, _, _ = run_synthetic(len(DAYS), {"rule": "interval", "interval_bars": 2})
    held = 0
    for i, (day, spot) in enumerate(zip(DAYS, SPOTS, strict=True)):
        _, delta, _ = straddle_greeks(spot, day)
        qty = int(-(delta + held)) if i % 2 == 0 else 0  # bars 0, 2, 4 back to zero delta
        assert strat.hedger.decisions[i].quantity == qty, day
        held += qty


def test_no_look_ahead() -> None:
    hedge = {"rule": "band", "band": 3.0}
    full, _, _ = run_synthetic(len(DAYS), hedge)
    for n in (2, 4):
        cut, _, _ = run_synthetic(n, hedge)
        assert cut.hedger.decisions == full.hedger.decisions[:n]
        pd.testing.assert_frame_equal(cut.hedger.pnl_frame(), full.hedger.pnl_frame().iloc[:n])


# -- real 2019 SPXW quotes ---------------------------------------------------------------------

INDEX = "index/spx_vix_spy_qqq_daily.csv"
REAL_DAYS = (dt.date(2019, 6, 3), dt.date(2019, 6, 4))


@pytest.mark.shared_data
def test_real_2019_days_hedge_and_identity(chain_store_2019, shared_data: Path) -> None:
    closes = {}
    with open(shared_data / INDEX, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["root"] == "SPX" and r["Date"].startswith("2019-06"):
                closes[dt.date.fromisoformat(r["Date"])] = float(r["Close"])
    spec = ComboSpec(kind="straddle", root="SPXW", target_dte=7)
    hand: list[dict] = []

    class RealStraddle(DeltaHedgedStrategy):
        def next_options(self, snapshot: ChainSnapshot) -> None:
            if snapshot.quote_date == REAL_DAYS[0]:
                self.open_combo(spec, 1, tag="straddle")
            # Black-76 book delta by hand with scipy from the snapshot's forward, tte, implied vol
            table = snapshot.with_implied_vols()
            delta = 0.0
            for c, p in self.obroker.option_positions.items():
                row = table[
                    (table["strike"] == c.strike)
                    & (table["right"] == c.right)
                    & (pd.DatetimeIndex(table["expiration"]).date == c.expiration)
                    & (table["root"] == c.root)
                ].iloc[0]
                a = d1(row["forward"], c.strike, row["tte"], row["implied_vol"])
                delta += p.quantity * 100 * (norm.cdf(a) - (c.right == "P"))
            shares = self.obroker.underlying_positions.get("SPX")
            hand.append(
                {
                    "delta": delta + (shares.quantity if shares else 0),
                    "spot": snapshot.underlying_price,
                }
            )

    feed = chain_feed(
        chain_store_2019,
        "SPX",
        roots=["SPXW"],
        start=REAL_DAYS[0],
        end=REAL_DAYS[1],
        target_dte=7,
        far_dte=30,
    )
    spx = load_ohlc(str(shared_data / INDEX), root="SPX", start="2019-05-01", end="2019-07-31")
    broker = OptionsBroker(commission_per_contract=COMMISSION, settlement_prices={"SPX": spx})
    hedge = {"rule": "interval", "half_spread": SH_HALF, "commission_per_share": SH_COMM}
    strat, value, _ = run_cerebro(
        RealStraddle, [feed], broker, cash=100_000.0, strategy_kwargs={"hedge": hedge}
    )
    decisions, pnl = strat.hedger.decisions, strat.hedger.pnl_frame()
    assert len(decisions) == len(pnl) == 2 and len(broker.option_fills) == 2
    q0 = int(-hand[0]["delta"])
    q1 = int(-hand[1]["delta"])
    assert decisions[0].delta == pytest.approx(hand[0]["delta"], abs=1e-4)
    assert decisions[1].delta == pytest.approx(hand[1]["delta"], abs=1e-4)
    assert [d.quantity for d in decisions] == [q0, q1] and q0 != 0
    c0, c1 = closes[REAL_DAYS[0]], closes[REAL_DAYS[1]]
    s0, s1 = hand[0]["spot"], hand[1]["spot"]
    # shares marked at the snapshot price, then at the day's close after the last bar
    assert pnl["hedge_pnl"].iloc[0] == pytest.approx(q0 * (c0 - s0), abs=1e-6)
    assert pnl["hedge_pnl"].iloc[1] == pytest.approx(q0 * (c1 - c0) + q1 * (c1 - s1), abs=1e-6)
    hedge_costs = (abs(q0) * SH_HALF + abs(q0) * SH_COMM, abs(q1) * SH_HALF + abs(q1) * SH_COMM)
    assert -pnl["hedge_spread"].to_numpy() - pnl["hedge_commission"].to_numpy() == pytest.approx(
        hedge_costs
    )
    f_c, f_p = broker.option_fills
    spread_paid = 100 * ((f_c.ask - f_c.bid) + (f_p.ask - f_p.bid)) / 2
    assert pnl["costs"].iloc[0] == pytest.approx(
        -(2 * COMMISSION + spread_paid + hedge_costs[0]), abs=1e-6
    )
    for _, r in pnl.iterrows():  # the identity, every bar
        assert r["option_pnl"] + r["hedge_pnl"] + r["costs"] == pytest.approx(
            r["value_change"], abs=1e-6
        )
    assert float(value.iloc[-1]) - 100_000.0 == pytest.approx(
        pnl[["option_pnl", "hedge_pnl", "costs"]].to_numpy().sum(), abs=1e-6
    )
