"""The risk layer: sizing, Greek limits, guards, the kill switch, signal aggregation, attribution.

References (independent of the code under test): hand arithmetic written out in each test, Black
(1976) prices and greeks recomputed with ``scipy.stats.norm`` for a synthetic SPXW chain whose
mids are exact Black-76 prices at a known vol, and payoff arithmetic of the option combos. The
kill-switch tests run real backtrader Cerebros (options on the synthetic chain feed; shares on a
synthetic OHLCV feed) and check the broker's book, fills and the refusal records.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from brokers import OptionCostModel, OptionsBroker
from brokers.share_costs import ShareCostScheme
from data_feeds.chain_feed import chain_feed
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from data_feeds.contracts import OptionContract
from strategies.base import run_cerebro
from strategies.option_strategy import ComboSpec, OptionStrategy
from strategies.risk import (
    UNATTRIBUTED,
    OptionRiskMixin,
    PositionRisk,
    RiskConfig,
    RiskManager,
    RiskMixin,
    Signal,
    SleevePnL,
    VolManagedSizer,
    aggregate_signals,
    attribution_from_results,
    attribution_table,
    combo_greeks,
    combo_max_loss,
    combo_max_loss_at_fill,
    fixed_fractional_units,
    hedge_quantity,
    max_loss_contracts,
    past_realized_variance,
    sleeve_by_prefix,
    vote,
    write_attribution,
)

# -- a synthetic SPXW chain: mids are exact Black-76 prices (r = 0, F = spot) ----------------------

EXPIRY = dt.date(2019, 6, 28)
STRIKES = range(2800, 3001, 25)
HALF_SPREAD = 0.10
DAYS = [dt.date(2019, 6, d) for d in (3, 4, 5, 6, 7, 10)]


def tte_years(day: dt.date) -> float:
    """ACT/365 years from 15:45 on ``day`` to 16:00 on the expiry (same DST period)."""
    delta = dt.datetime.combine(EXPIRY, dt.time(16)) - dt.datetime.combine(day, dt.time(15, 45))
    return delta.total_seconds() / 60.0 / (365.0 * 24.0 * 60.0)


def black76(f: float, k: float, t: float, vol: float, right: str) -> float:
    d1 = (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if right == "C":
        return f * norm.cdf(d1) - k * norm.cdf(d2)
    return k * norm.cdf(-d2) - f * norm.cdf(-d1)


def quotes(day: dt.date, spot: float, vol: float) -> pd.DataFrame:
    t = tte_years(day)
    rows = []
    for k in STRIKES:
        for right in "CP":
            p = black76(spot, k, t, vol, right)
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


def snapshot(day: dt.date, spot: float = 2900.0, vol: float = 0.2) -> ChainSnapshot:
    when = pd.Timestamp.combine(day, dt.time(15, 45)).tz_localize("America/New_York")
    return ChainSnapshot("SPX", when, spot, quotes(day, spot, vol), source="synthetic")


class SyntheticSource:
    """SnapshotSource over a path of (spot, vol) per day."""

    def __init__(self, path: dict[dt.date, tuple[float, float]]) -> None:
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
        spot, vol = self.path[quote_date]
        return snapshot(quote_date, spot, vol)


def contract(strike: float, right: str) -> OptionContract:
    return OptionContract("SPXW", EXPIRY, float(strike), right)


def run_options(strategy: type[bt.Strategy], vols: Sequence[float], cash: float = 100_000.0):
    path = {d: (2900.0, v) for d, v in zip(DAYS, vols, strict=True)}
    feed = chain_feed(SyntheticSource(path), "SPX", roots=["SPXW"], target_dte=25, far_dte=60)
    return run_cerebro(strategy, [feed], OptionsBroker(commission_per_contract=0.65), cash=cash)


STRADDLE = ComboSpec(kind="straddle", root="SPXW", target_dte=25, strike=2900)

# -- sizing ----------------------------------------------------------------------------------------


def test_past_realized_variance_by_hand() -> None:
    r = pd.Series([0.01, -0.02, 0.03, 0.0, 0.01])
    got = past_realized_variance(r, window=3)
    assert got.iloc[:3].isna().all()  # day t uses t-3..t-1: nothing before day 3
    m = (0.01 - 0.02 + 0.03) / 3
    hand3 = 252 * ((0.01 - m) ** 2 + (-0.02 - m) ** 2 + (0.03 - m) ** 2) / 3
    m = (-0.02 + 0.03 + 0.0) / 3
    hand4 = 252 * ((-0.02 - m) ** 2 + (0.03 - m) ** 2 + (0.0 - m) ** 2) / 3
    assert got.iloc[3] == pytest.approx(hand3, rel=1e-12)
    assert got.iloc[4] == pytest.approx(hand4, rel=1e-12)
    raw = past_realized_variance(r, window=3, demean=False)
    assert raw.iloc[3] == pytest.approx(252 * (0.01**2 + 0.02**2 + 0.03**2) / 3, rel=1e-12)


def test_vol_managed_weights_by_hand_with_cap_and_floor() -> None:
    sizer = VolManagedSizer(target_vol=0.15, window=2, cap=2.0, floor=0.2)
    # window 2 demeaned: var = 252 * ((a - b) / 2)^2
    r = pd.Series([0.01, -0.01, 0.001, 0.001, 0.05, -0.05, 0.0])
    w = sizer.weights(r)
    assert w.iloc[:2].isna().all()
    var2 = 252 * 0.01**2  # |a - b| / 2 = 0.01
    assert w.iloc[2] == pytest.approx(0.15**2 / var2)  # 0.0225 / 0.0252 = 0.893
    assert w.iloc[3] == pytest.approx(min(0.15**2 / (252 * 0.0045**2), 2.0))  # capped at 2
    assert w.iloc[4] == 2.0  # two equal returns: zero variance -> the cap
    assert w.iloc[6] == pytest.approx(0.2)  # 0.0225 / (252 * 0.05^2) = 0.036 -> the floor
    # the event-driven face gives the same number from the returns known so far
    for t in range(2, len(r)):
        assert sizer.weight(r.iloc[:t].to_numpy()) == pytest.approx(w.iloc[t], rel=1e-12)
    with pytest.raises(ValueError, match="past returns"):
        sizer.weight([0.01])
    with pytest.raises(ValidationError):
        VolManagedSizer(cap=0.5, floor=1.0)


def test_vol_managed_weights_never_look_ahead() -> None:
    rng = np.random.default_rng(11)
    r = pd.Series(rng.normal(0, 0.01, 300), index=pd.bdate_range("2015-01-02", periods=300))
    sizer = VolManagedSizer(window=21)
    full = sizer.weights(r)
    for cut in (30, 120, 299):
        pd.testing.assert_series_equal(sizer.weights(r.iloc[:cut]), full.iloc[:cut])
    # changing today's return changes tomorrow's weight, never today's
    shocked = r.copy()
    shocked.iloc[150] = 0.2
    w2 = sizer.weights(shocked)
    assert w2.iloc[150] == full.iloc[150] and w2.iloc[151] != full.iloc[151]


def test_fixed_fractional_and_max_loss_contracts_by_hand() -> None:
    assert fixed_fractional_units(100_000, 0.02, 250.0) == 8  # 2,000 / 250
    assert fixed_fractional_units(100_000, 0.02, 300.0) == 6  # 6.67 floored
    assert fixed_fractional_units(10_000, 0.02, 200.0) == 1  # exactly 1, not floored to 0
    assert fixed_fractional_units(100_000, 0.02, 250.0, max_units=5) == 5
    assert fixed_fractional_units(-5.0, 0.02, 250.0) == 0
    assert max_loss_contracts(100_000, 0.05, 2_151.30) == 2  # 5,000 / 2,151.30 = 2.32
    assert max_loss_contracts(100_000, 0.05, 9_000.0, min_contracts=1, max_contracts=10) == 1
    assert max_loss_contracts(1e7, 0.05, 2_151.30, max_contracts=10) == 10
    with pytest.raises(ValueError, match="fraction"):
        fixed_fractional_units(100_000, 1.5, 250.0)
    with pytest.raises(ValueError, match="risk_per_unit"):
        fixed_fractional_units(100_000, 0.02, 0.0)


def test_combo_max_loss_by_payoff_arithmetic() -> None:
    p2900, p2875 = contract(2900, "P"), contract(2875, "P")
    # bull put spread sold for 10.0 - 6.5 = 3.5 credit: loses 25 - 3.5 points at worst
    legs = [(p2900, -1), (p2875, 1)]
    loss = combo_max_loss(legs, {p2900: 10.0, p2875: 6.5}, commission_per_contract=0.65)
    assert loss == pytest.approx((25 - 3.5) * 100 + 2 * 0.65)
    assert combo_max_loss(legs, {p2900: 10.0, p2875: 6.5}, quantity=3) == pytest.approx(6_450.0)
    # debit call spread: the debit; iron condor: the wider wing less the credit
    c2900, c2925, c2975 = contract(2900, "C"), contract(2925, "C"), contract(2975, "C")
    assert combo_max_loss([(c2900, 1), (c2925, -1)], {c2900: 12.0, c2925: 5.0}) == 700.0
    condor = [(p2875, 1), (p2900, -1), (c2925, -1), (c2975, 1)]
    prices = {p2875: 6.5, p2900: 10.0, c2925: 9.0, c2975: 2.0}
    credit = 10.0 - 6.5 + 9.0 - 2.0
    assert combo_max_loss(condor, prices) == pytest.approx((50 - credit) * 100)
    with pytest.raises(ValueError, match="unbounded"):
        combo_max_loss([(c2900, -1)], {c2900: 12.0})
    with pytest.raises(ValueError, match="no entry price"):
        combo_max_loss(legs, {p2900: 10.0})


def test_combo_max_loss_at_fill_uses_the_cost_model() -> None:
    snap = snapshot(DAYS[0])
    p2900, p2875 = contract(2900, "P"), contract(2875, "P")
    model = {k: black76(2900.0, k, tte_years(DAYS[0]), 0.2, "P") for k in (2900, 2875)}
    # sell the spread: short 2900 at its bid, long 2875 at its ask (slippage 0.5 = the touch)
    credit = (model[2900] - HALF_SPREAD) - (model[2875] + HALF_SPREAD)
    got = combo_max_loss_at_fill([(p2900, -1), (p2875, 1)], snap, quantity=2)
    assert got == pytest.approx(2 * ((25 - credit) * 100 + 2 * 1.0), rel=1e-9)
    mid = OptionCostModel(commission_per_contract=0.0, slippage_spread_fraction=0.0)
    got_mid = combo_max_loss_at_fill([(p2900, -1), (p2875, 1)], snap, costs=mid)
    assert got_mid == pytest.approx((25 - (model[2900] - model[2875])) * 100, rel=1e-9)


# -- greeks and limits -----------------------------------------------------------------------------


def test_hedge_quantity_by_hand() -> None:
    assert hedge_quantity(150.0, 100.0) == -150.0
    assert hedge_quantity(150.0, 100.0, rehedge_to="edge") == -50.0
    assert hedge_quantity(-230.0, 100.0, target=-20.0) == 210.0
    assert hedge_quantity(-230.0, 100.0, target=-20.0, rehedge_to="edge") == 110.0
    assert hedge_quantity(157.0, 100.0, lot_size=10) == -150.0  # toward zero, whole lots
    assert hedge_quantity(99.0, 100.0) == 0.0
    with pytest.raises(ValueError, match="band"):
        hedge_quantity(1.0, 0.0)


def test_combo_greeks_match_black76_by_hand() -> None:
    day, f, vol = DAYS[0], 2900.0, 0.2
    t = tte_years(day)
    legs = [(contract(2900, "C"), 1), (contract(2900, "P"), 1), (contract(2850, "P"), -2)]
    got = combo_greeks(legs, snapshot(day), quantity=3)

    def greeks(k: float, right: str) -> tuple[float, float, float]:
        d1 = (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
        delta = norm.cdf(d1) - (right == "P")
        return delta, norm.pdf(d1) / (f * vol * math.sqrt(t)), f * norm.pdf(d1) * math.sqrt(t)

    hand = np.zeros(3)
    for c, ratio in legs:
        hand += 3 * ratio * 100 * np.array(greeks(c.strike, c.right))
    assert got["legs_without_greeks"] == 0
    assert [got["delta"], got["gamma"], got["vega"]] == pytest.approx(hand.tolist(), rel=1e-6)


def test_drawdown_kill_switch_blocks_new_orders_but_not_closes() -> None:
    rm = RiskManager(RiskConfig(max_drawdown=0.2), initial_value=100_000.0)
    t0 = pd.Timestamp("2020-01-02 16:00")
    assert rm.step(t0, 110_000.0) == []
    assert rm.step(t0 + pd.Timedelta(days=1), 88_001.0) == []  # 19.999% below the 110k peak
    assert rm.check_order(t0 + pd.Timedelta(days=1)).allowed
    (kill,) = rm.step(t0 + pd.Timedelta(days=2), 88_000.0)  # exactly 20%
    assert kill.kind == "kill" and kill.value == pytest.approx(0.2) and rm.killed
    assert not rm.check_order(t0 + pd.Timedelta(days=3), label="new")
    assert rm.check_order(t0 + pd.Timedelta(days=3), reduces_risk=True).allowed
    # it stays tripped when the account recovers, and says so every bar
    assert [a.kind for a in rm.step(t0 + pd.Timedelta(days=4), 120_000.0)] == ["kill"]
    events = rm.events_frame()
    assert list(events["kind"]) == ["kill", "order_blocked"]


def test_daily_loss_blocks_new_risk_until_the_next_session() -> None:
    rm = RiskManager(RiskConfig(max_daily_loss=0.03), initial_value=100_000.0)
    d1, d2 = pd.Timestamp("2020-01-02 10:00"), pd.Timestamp("2020-01-03 10:00")
    assert rm.step(d1, 99_000.0) == []
    (act,) = rm.step(d1 + pd.Timedelta(hours=2), 97_000.0)  # -3% vs the starting 100k
    assert act.kind == "daily_loss" and act.value == pytest.approx(0.03)
    assert not rm.check_order(d1 + pd.Timedelta(hours=3))
    assert rm.step(d2, 96_000.0) == []  # -1.03% vs yesterday's last value 97k
    assert rm.check_order(d2).allowed and not rm.killed


def test_greek_caps_block_only_risk_increasing_orders() -> None:
    rm = RiskManager(RiskConfig(max_abs_vega=50_000.0, max_abs_gamma=10.0))
    t = pd.Timestamp("2020-01-02 15:45")
    assert rm.step(t, 1e5, {"delta": 0.0, "gamma": 2.0, "vega": 40_000.0}) == []
    assert not rm.check_order(t, {"vega": 20_000.0, "gamma": 0.0})  # would be 60k > 50k
    assert rm.check_order(t, {"vega": 5_000.0, "gamma": 1.0})  # 45k: fine
    rm.record_fill({"vega": 15_000.0})  # 55k now: breached
    (breach,) = rm.step(t, 1e5, {"gamma": 2.0, "vega": 55_000.0})
    assert breach.kind == "greek_breach" and breach.name == "vega"
    assert not rm.check_order(t, {"vega": 1.0})
    assert rm.check_order(t, {"vega": -10_000.0}).allowed  # lowers |vega|: allowed
    assert not rm.check_order(t)  # unknown greeks while breached: refused
    (ok,) = rm.step(t, 1e5, {"gamma": 2.0, "vega": 45_000.0})
    assert ok.kind == "greek_ok"


def test_delta_band_and_stop_loss_actions() -> None:
    cfg = RiskConfig(delta_band=100.0, rehedge_to="edge", stop_loss=0.5, stop_loss_dollars=5_000)
    rm = RiskManager(cfg)
    t = pd.Timestamp("2020-01-02 15:45")
    positions = [
        PositionRisk("a", -600.0, 1_000.0),  # 60% of basis: stop
        PositionRisk("b", -400.0, 1_000.0),  # 40%: keep
        PositionRisk("c", -5_000.0, math.nan),  # no basis, dollar stop
    ]
    acts = rm.step(t, 1e5, {"delta": -180.0}, positions)
    assert [(a.kind, a.name) for a in acts] == [
        ("hedge_delta", "delta"),
        ("stop_position", "a"),
        ("stop_position", "c"),
    ]
    assert acts[0].quantity == 80.0
    with pytest.raises(ValueError, match="account value"):
        rm.step(t, float("nan"))


# -- the kill switch in backtrader -----------------------------------------------------------------


class _Straddles(OptionRiskMixin, OptionStrategy):
    """Tries to buy two 2900 straddles every day; the risk layer decides."""

    params = (("config", None), ("kill_on", None))

    def __init__(self) -> None:
        super().__init__()
        self.setup_risk(self.p.config or RiskConfig())
        self.log: list[tuple[dt.date, list[str], int, int]] = []

    def next_chain(self, snap: ChainSnapshot) -> None:
        kinds = [a.kind for a in self.risk_step()]
        if snap.quote_date == self.p.kill_on:
            self.risk_kill("manual kill in the test")
        fills = self.open_combo(STRADDLE, 2, tag=f"straddle {snap.quote_date}")
        self.log.append((snap.quote_date, kinds, len(fills), len(self.obroker.option_positions)))


def test_risk_greeks_equal_the_strategy_book_greeks() -> None:
    seen: list[tuple[dict, dict]] = []

    class Book(OptionRiskMixin, OptionStrategy):
        def __init__(self) -> None:
            super().__init__()
            self.setup_risk(RiskConfig())

        def next_chain(self, snap: ChainSnapshot) -> None:
            self.open_combo(ComboSpec(kind="strangle", root="SPXW", target_dte=25, delta=0.2), -1)
            self.open_combo(STRADDLE, 2, tag=f"s {snap.quote_date}")
            seen.append((self.risk_greeks(), self.book_greeks(snap)))

    run_options(Book, [0.2, 0.18, 0.25, 0.2, 0.22, 0.2])
    for ours, theirs in seen:
        for g in ("delta", "gamma", "vega", "theta"):
            assert ours[g] == pytest.approx(theirs[g], rel=1e-12, abs=1e-9)
    assert abs(seen[-1][0]["vega"]) > 0


class _Configured(_Straddles):
    params = (("config", RiskConfig(max_drawdown=0.05)),)


def test_kill_switch_flattens_the_option_book_and_blocks_new_orders() -> None:
    # vol halves on day 2: two long straddles lose ~12% of the account, beyond the 5% limit
    strat, _, _ = run_options(_Configured, [0.2, 0.1, 0.1, 0.1, 0.1, 0.1])
    broker: OptionsBroker = strat.obroker
    log = strat.log
    assert log[0] == (DAYS[0], [], 2, 2)  # day 1: filled, two legs held
    assert log[1][1] == ["kill"] and log[1][2] == 0 and log[1][3] == 0  # day 2: flat, refused
    assert all(row[2] == 0 and row[3] == 0 for row in log[2:])  # every later order refused
    assert broker.option_positions == {} and strat.combos == {}
    # the book was closed by selling each long leg at its bid on the kill day
    closes = [f for f in broker.option_fills if f.tag.startswith("close ")]
    assert [(f.contract.right, f.quantity) for f in closes] == [("C", -2), ("P", -2)]
    t = tte_years(DAYS[1])
    for f in closes:
        assert f.time.date() == DAYS[1]
        bid = black76(2900.0, 2900.0, t, 0.1, f.contract.right) - HALF_SPREAD
        assert f.price == pytest.approx(bid, rel=1e-9)
    assert len(broker.option_fills) == 4  # 2 opening legs + 2 closing legs, nothing else
    # refusals are recorded with the reason, one per later day
    refused = [r for r in strat.rejections if "kill switch" in r[2]]
    assert [r[0].date() for r in refused] == DAYS[1:]
    events = strat.risk.events_frame()
    kill = events[events["kind"] == "kill"].iloc[0]
    assert kill["value"] > 0.05 and kill["limit"] == 0.05


def test_manual_kill_in_backtrader_flattens_too() -> None:
    class Manual(_Straddles):
        params = (("kill_on", DAYS[2]),)

    strat, _, _ = run_options(Manual, [0.2] * len(DAYS))
    assert [row[2] for row in strat.log] == [2, 2, 0, 0, 0, 0]
    assert strat.obroker.option_positions == {} and strat.risk.killed
    assert strat.risk.kill_reason == "manual kill in the test"


def test_vega_cap_blocks_the_second_straddle_and_stop_closes_the_first() -> None:
    t = tte_years(DAYS[0])
    d1 = 0.5 * 0.2 * math.sqrt(t)  # ATM forward: ln(F/K) = 0
    vega_one = 2 * 100 * 2900.0 * norm.pdf(d1) * math.sqrt(t)  # call + put, 100 multiplier
    cap = 2.5 * vega_one  # two straddles (2 x vega_one) fit, four do not

    class Capped(_Straddles):
        params = (("config", RiskConfig(max_abs_vega=cap, stop_loss=0.3)),)

    strat, _, _ = run_options(Capped, [0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    fills = [row[2] for row in strat.log]
    assert fills[0] == 2 and fills[1] == 0  # day 2 would be 4 straddles of vega: refused
    refusals = [r for r in strat.rejections if "vega" in r[2]]
    assert refusals and refusals[0][0].date() == DAYS[1]
    # vol halves on day 3: the straddle loses more than 30% of its premium -> stopped and closed
    stops = strat.risk.events_frame().query("kind == 'stop_position'")
    assert list(stops["name"]) == [f"straddle {DAYS[0]}"]
    assert stops.iloc[0]["time"].date() == DAYS[2]
    assert f"straddle {DAYS[0]}" not in strat.combos


def test_risk_decisions_never_look_ahead() -> None:
    """Truncating the future leaves every past risk decision, fill and refusal unchanged."""
    vols = [0.2, 0.15, 0.1, 0.1, 0.12, 0.1]

    def record(n: int) -> tuple[pd.DataFrame, list]:
        path = {d: (2900.0, v) for d, v in zip(DAYS[:n], vols[:n], strict=True)}
        feed = chain_feed(SyntheticSource(path), "SPX", roots=["SPXW"], target_dte=25, far_dte=60)
        strat, _, _ = run_cerebro(_Configured, [feed], OptionsBroker(), cash=100_000.0)
        fills = [(f.time, f.contract, f.quantity, f.price) for f in strat.obroker.option_fills]
        return strat.risk.events_frame(), fills

    full_events, full_fills = record(len(DAYS))
    for n in (2, 4):
        events, fills = record(n)
        cut = pd.Timestamp.combine(DAYS[n - 1], dt.time(23)).tz_localize("America/New_York")
        pd.testing.assert_frame_equal(events, full_events[full_events["time"] <= cut])
        assert fills == [f for f in full_fills if f[0].date() <= DAYS[n - 1]]


@pytest.mark.shared_data
def test_kill_switch_on_real_spxw_chains(chain_store_2019, shared_data: Path) -> None:
    """Real 2019 SPXW quotes: iron condors opened daily, a kill on 2019-06-05 closes all of them
    at the raw bid/ask of that day's snapshot (read again with DuckDB) and refuses the rest."""
    import duckdb

    from data_feeds import load_ohlc

    kill_day = dt.date(2019, 6, 5)
    condor = ComboSpec(kind="iron_condor", root="SPXW", target_dte=7, delta=0.15, width=25)

    class Condors(OptionRiskMixin, OptionStrategy):
        def __init__(self) -> None:
            super().__init__()
            self.setup_risk(RiskConfig())
            self.opened: list[tuple[dt.date, int]] = []

        def next_chain(self, snap: ChainSnapshot) -> None:
            self.risk_step()
            if snap.quote_date == kill_day:
                self.risk_kill("test: manual kill on real data")
            fills = self.open_combo(condor, 1, tag=f"ic {snap.quote_date}")
            self.opened.append((snap.quote_date, len(fills)))

    spx = load_ohlc(str(shared_data / "index/spx_vix_spy_qqq_daily.csv"), root="SPX")
    feed = chain_feed(
        chain_store_2019,
        "SPX",
        roots=["SPXW"],
        start="2019-06-03",
        end="2019-06-10",
        target_dte=7,
        far_dte=30,
    )
    strat, _, _ = run_cerebro(
        Condors, [feed], OptionsBroker(settlement_prices={"SPX": spx}), cash=100_000.0
    )
    broker: OptionsBroker = strat.obroker
    assert [n for _, n in strat.opened] == [4, 4, 0, 0, 0, 0]
    assert broker.option_positions == {} and strat.combos == {}
    closes = [f for f in broker.option_fills if f.tag.startswith("close ")]
    assert len(closes) == 8 and {f.time.date() for f in closes} == {kill_day}
    raw = duckdb.sql(
        f"SELECT expiration::DATE AS e, strike, type, bid, ask FROM read_parquet("
        f"'{shared_data / 'options/spx_chains_2019q2.parquet'}') "
        f"WHERE quotedate::DATE = DATE '{kill_day}' AND root = 'SPXW'"
    ).df()
    touch = {
        (r.e.date(), float(r.strike), "C" if r.type == "call" else "P"): (r.bid, r.ask)
        for r in raw.itertuples()
    }
    for f in closes:  # buys back shorts at the ask, sells longs at the bid
        bid, ask = touch[(f.contract.expiration, f.contract.strike, f.contract.right)]
        assert f.price == pytest.approx(ask if f.quantity > 0 else bid, abs=1e-9)


class _Shares(RiskMixin, bt.Strategy):
    params = (("config", None),)

    def __init__(self) -> None:
        self.setup_risk(self.p.config)
        self.attempts: list[tuple[int, bool]] = []

    def next(self) -> None:
        self.risk_step()
        if len(self) in (3, 8, 9):
            order = self.buy(size=500)
            self.attempts.append((len(self), order is not None))


def test_share_kill_switch_flattens_and_blocks() -> None:
    close = [100.0, 100.0, 100.0, 100.0, 90.0, 85.0, 86.0, 88.0, 90.0, 91.0, 92.0]
    idx = pd.bdate_range("2021-03-01", periods=len(close))
    frame = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=idx
    )
    cerebro = bt.Cerebro(stdstats=False)
    data = bt.feeds.PandasData(dataname=frame, openinterest=None, name="XYZ")
    cerebro.adddata(data)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.addcommissioninfo(ShareCostScheme(impact_coefficient=0.0), name="XYZ")
    cerebro.addstrategy(_Shares, config=RiskConfig(max_drawdown=0.05))
    (strat,) = cerebro.run()
    # bought 500 at 100 (bar 4 open); the close of 90 on bar 5 is a 5% loss + costs -> kill,
    # the position is sold at bar 6's open (85) and the later buys are refused
    assert strat.attempts == [(3, True), (8, False), (9, False)]
    assert strat.getposition(data).size == 0
    kill = strat.risk.events_frame().query("kind == 'kill'").iloc[0]
    assert kill["time"] == pd.Timestamp(idx[4])
    # half spread 1 bp of the price ($0.01 at 100, $0.0085 at 85) + $0.005 a share commission
    costs = (500 * 0.01 + 2.5) + (500 * 0.0085 + 2.5)
    assert cerebro.broker.getcash() == pytest.approx(100_000 - 500 * 100 + 500 * 85 - costs)
    blocked = strat.risk.events_frame().query("kind == 'order_blocked'")
    assert len(blocked) == 2


# -- signal aggregation ----------------------------------------------------------------------------


def _sig(name: str, d: int, c: float, u: str = "SPX") -> Signal:
    return Signal(name, u, d, c, pd.Timestamp("2020-01-02"))


def test_vote_by_hand() -> None:
    a = vote([_sig("ml", 1, 0.9), _sig("ou", -1, 0.3)])
    assert (a.decision, a.direction) == ("trade", 1)
    assert a.score == pytest.approx((0.9 - 0.3) / 1.2) and a.confidence == pytest.approx(0.3)
    assert a.supporting == ("ml",) and a.opposing == ("ou",)
    c = vote([_sig("ml", 1, 0.6), _sig("ou", -1, 0.5)])  # score 0.0909 < 0.2: conflict
    assert (c.decision, c.direction) == ("conflict", 0)
    # the design's 1.5x rule is the 0.2 threshold: 0.6 vs 0.4 -> score exactly 0.2
    assert vote([_sig("a", 1, 0.6), _sig("b", -1, 0.4)]).decision == "trade"
    assert vote([_sig("a", 1, 0.59), _sig("b", -1, 0.4)]).decision == "conflict"
    assert vote([_sig("a", 1, 0.5), _sig("b", -1, 0.5)], min_agreement=1.0).decision == "conflict"
    w = vote([_sig("a", 1, 0.2), _sig("b", 0, 0.9)])  # 0.2 / 1.1 = 0.18: diluted
    assert (w.decision, w.direction) == ("weak", 0)
    assert vote([_sig("a", 0, 0.5)]).decision == "flat"
    solo = vote([_sig("a", -1, 0.7)])
    assert (solo.decision, solo.direction, solo.confidence) == ("trade", -1, 0.7)


def test_aggregate_signals_frame_per_underlying_and_errors() -> None:
    frame = pd.DataFrame(
        {
            "time": ["2020-01-02"] * 4,
            "strategy": ["ml", "ou", "ml", "zero"],
            "underlying": ["SPX", "SPX", "SPY", "SPY"],
            "direction": [1, -1, 1, 1],
            "confidence": [0.6, 0.5, 0.8, 0.4],
        }
    )
    out = aggregate_signals(frame)
    assert list(out["underlying"]) == ["SPX", "SPY"]
    assert list(out["decision"]) == ["conflict", "trade"] and list(out["direction"]) == [0, 1]
    assert out.loc[1, "confidence"] == pytest.approx(0.6) and out.loc[1, "supporting"] == "ml,zero"
    bad = frame.assign(confidence=[0.6, 1.5, 0.8, 0.4])
    with pytest.raises(ValueError, match="row 1"):
        aggregate_signals(bad)
    with pytest.raises(ValueError, match="twice"):
        aggregate_signals(pd.concat([frame, frame.iloc[:1]]))
    with pytest.raises(ValueError, match="missing column"):
        aggregate_signals(frame.drop(columns="confidence"))


# -- attribution -----------------------------------------------------------------------------------


def test_attribution_table_carino_by_hand(tmp_path: Path) -> None:
    idx = pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06"])
    pnl = pd.DataFrame({"a": [1_000.0, -500.0, 2_000.0], "b": [500.0, 1_000.0, -1_000.0]}, idx)
    value = pd.Series([101_500.0, 102_000.0, 103_000.0], idx)
    table = attribution_table(pnl, value)
    # hand: base values 100,000 / 101,500 / 102,000, daily returns and Carino factors
    bases = [100_000.0, 101_500.0, 102_000.0]
    rets = [1_500 / 100_000, 500 / 101_500, 1_000 / 102_000]
    total = 103_000 / 100_000 - 1
    k = math.log(1 + total) / total
    kt = [math.log(1 + r) / r for r in rets]
    hand_a = sum(kt[i] / k * pnl["a"].iloc[i] / bases[i] for i in range(3))
    hand_b = sum(kt[i] / k * pnl["b"].iloc[i] / bases[i] for i in range(3))
    assert table.loc["a", "contribution"] == pytest.approx(hand_a, rel=1e-12)
    assert table.loc["b", "contribution"] == pytest.approx(hand_b, rel=1e-12)
    assert table.loc["total", "contribution"] == pytest.approx(0.03, rel=1e-12)
    assert hand_a + hand_b == pytest.approx(0.03, rel=1e-12)
    assert table.loc[UNATTRIBUTED, "pnl"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc["a", "pnl"] == 2_500.0 and table.loc["a", "pnl_share"] == pytest.approx(
        2.5 / 3
    )
    assert table.loc["a", "max_drawdown"] == 500.0 and table.loc["b", "max_drawdown"] == 1_000.0
    assert table.loc["a", "hit_rate"] == pytest.approx(2 / 3)
    metrics = write_attribution(table, tmp_path)
    back = pd.read_csv(tmp_path / "attribution.csv", index_col="sleeve")
    assert back.loc["b", "contribution"] == pytest.approx(hand_b, rel=1e-12)
    assert metrics["contribution.a"] == pytest.approx(hand_a)
    assert not list(tmp_path.glob(".*tmp"))


def test_attribution_of_stitched_folds_restarting_from_cash() -> None:
    idx1, idx2 = pd.DatetimeIndex(["2020-01-02"]), pd.DatetimeIndex(["2020-02-03"])
    f1 = (
        pd.DataFrame({"a": [1_000.0]}, idx1),
        pd.Series([101_000.0], idx1),
        pd.Series([0.01], idx1),
    )
    f2 = (
        pd.DataFrame({"a": [-2_000.0]}, idx2),
        pd.Series([98_000.0], idx2),
        pd.Series([-0.02], idx2),
    )
    table = attribution_from_results([f1, f2])
    assert table.loc["total", "contribution"] == pytest.approx(1.01 * 0.98 - 1)
    assert table.loc["a", "contribution"] == pytest.approx(1.01 * 0.98 - 1)


def test_sleeve_pnl_adds_up_and_matches_hand_for_an_option_run() -> None:
    class Two(OptionStrategy):
        def next_chain(self, snap: ChainSnapshot) -> None:
            if snap.quote_date == DAYS[0]:
                self.open_combo(STRADDLE, 1, tag="straddle a")
                self.open_combo(
                    ComboSpec(kind="strangle", root="SPXW", target_dte=25, delta=0.25),
                    -1,
                    tag="strangle b",
                )
            if snap.quote_date == DAYS[3]:
                self.close_combo("straddle a")

    path = {d: (2900.0 + 10 * i, 0.2 - 0.01 * i) for i, d in enumerate(DAYS)}
    feed = chain_feed(SyntheticSource(path), "SPX", roots=["SPXW"], target_dte=25, far_dte=60)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed)
    broker = OptionsBroker(commission_per_contract=0.65)
    broker.setcash(100_000.0)
    cerebro.setbroker(broker)
    cerebro.addstrategy(Two)
    cerebro.addanalyzer(SleevePnL, _name="sleeves", sleeve_of=sleeve_by_prefix())
    (strat,) = cerebro.run()
    an = strat.analyzers.sleeves
    pnl, values = an.get_analysis(), an.values()
    assert list(pnl.columns) == ["straddle", "strangle", UNATTRIBUTED]
    daily_total = values.diff().fillna(values.iloc[0] - 100_000.0)
    np.testing.assert_allclose(pnl.sum(axis=1), daily_total, atol=1e-6)
    np.testing.assert_allclose(pnl[UNATTRIBUTED], 0.0, atol=1e-6)
    # hand: the straddle's P&L is its close proceeds minus its cost, commissions included
    fills = [f for f in broker.option_fills if f.tag.endswith("straddle a")]
    hand = sum(f.cash_flow for f in fills)
    assert pnl["straddle"].sum() == pytest.approx(hand, abs=1e-6)
    trades = an.trades()
    assert list(trades["position"]) == ["straddle a"]
    assert trades["pnl"].iloc[0] == pytest.approx(hand, abs=1e-6)
    # the short strangle is still open: cash received + marks at the last snapshot's mids
    t = tte_years(DAYS[-1])
    spot, vol = path[DAYS[-1]]
    strangle = [f for f in broker.option_fills if f.tag == "strangle b"]
    marks = sum(
        f.quantity * 100 * black76(spot, f.contract.strike, t, vol, f.contract.right)
        for f in strangle
    )
    assert pnl["strangle"].sum() == pytest.approx(sum(f.cash_flow for f in strangle) + marks)
    table = attribution_table(pnl, values, trades=trades)
    assert table.loc["total", "contribution"] == pytest.approx(values.iloc[-1] / 100_000 - 1)
    assert table.loc["straddle", "n_trades"] == 1 and table.loc["strangle", "n_trades"] == 0
    assert table.loc["straddle", "win_rate"] == float(hand > 0)


def test_sleeve_pnl_adds_up_the_bars_of_an_intraday_session() -> None:
    """Intraday bars: a session's row is the sum of its bars' P&L, not the last bar's."""
    stamps = pd.to_datetime([f"2024-01-0{d} {h}:00" for d in (2, 3) for h in ("10", "11", "12")])
    close = [100.0, 101.0, 103.0, 102.0, 104.0, 105.0]
    frame = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=stamps
    )

    class Intraday(bt.Strategy):
        def next(self) -> None:
            bar = len(self)
            if bar == 1:
                self.buy(size=10)  # fills at the 11:00 open of day 1 (101)
            if bar == 4:
                self.sell(size=10)  # fills at the 11:00 open of day 2 (104)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None, name="XYZ"))
    cerebro.broker.setcash(10_000.0)
    cerebro.addstrategy(Intraday)
    cerebro.addanalyzer(SleevePnL, _name="sleeves")
    (strat,) = cerebro.run()
    pnl = strat.analyzers.sleeves.get_analysis()
    # by hand: day 1 bought at 101, marked at 103 -> +20; day 2 sold at 104 -> +10
    assert list(pnl["XYZ"]) == pytest.approx([20.0, 10.0])
    np.testing.assert_allclose(pnl[UNATTRIBUTED], 0.0, atol=1e-9)


def test_runner_hook_writes_the_attribution_of_stitched_folds(tmp_path: Path) -> None:
    from strategies.base import BacktestResult
    from strategies.risk import sleeve_info, track_sleeves, write_run_attribution

    class Tracked(OptionStrategy):
        def __init__(self) -> None:
            super().__init__()
            track_sleeves(self, sleeve_by_prefix())

        def next_chain(self, snap: ChainSnapshot) -> None:
            if len(self.combos) == 0:
                self.open_combo(STRADDLE, 1, tag=f"straddle {snap.quote_date}")

    vols = [0.2, 0.18, 0.22, 0.2, 0.19, 0.21]
    results = []
    for days in (DAYS[:3], DAYS[3:]):  # two "folds", each restarting from the cash
        path = {d: (2900.0, vols[DAYS.index(d)]) for d in days}
        feed = chain_feed(SyntheticSource(path), "SPX", roots=["SPXW"], target_dte=25, far_dte=60)
        strat, value, returns = run_cerebro(Tracked, [feed], OptionsBroker(), cash=50_000.0)
        results.append(
            BacktestResult(returns, value, pd.DataFrame(), pd.DataFrame(), sleeve_info(strat))
        )
    metrics = write_run_attribution(results, tmp_path)
    table = pd.read_csv(tmp_path / "attribution.csv", index_col="sleeve")
    stitched = pd.concat([r.returns for r in results])
    assert table.loc["total", "contribution"] == pytest.approx(float((1 + stitched).prod() - 1))
    assert metrics["contribution.straddle"] == pytest.approx(table.loc["straddle", "contribution"])
    assert table.loc[UNATTRIBUTED, "pnl"] == pytest.approx(0.0, abs=1e-6)
    bare = BacktestResult(results[1].returns, results[1].value, pd.DataFrame(), pd.DataFrame())
    untracked = tmp_path / "untracked"
    untracked.mkdir()
    assert write_run_attribution([bare], untracked) == {}  # no sleeves: nothing written
    assert list(untracked.iterdir()) == []
    with pytest.raises(ValueError, match="folds \\[1\\]"):
        write_run_attribution([results[0], bare], tmp_path)
