"""ChainSnapshot queries on real SPX/SPXW chains (2019 Q2), checked against the raw parquet rows
(read with separate DuckDB queries), QuantLib's Black-formula implied vol, closed-form Black-76
greeks and the vendor's implied vols and deltas."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from data_feeds.chains import ChainSnapshot, empty_quotes
from data_feeds.contracts import OptionContract
from pricing import ql_implied_vol

pytestmark = pytest.mark.shared_data

CHAINS = "options/spx_chains_2019q2.parquet"
MINUTES_PER_YEAR = 525_600.0


# -- a small loader of our own (the DuckDB store is a separate module) ---------------------------
def load_snapshot(
    path: Path,
    day: str,
    *,
    rate: float = 0.0,
    clock: str = "15:45",
    where: str = "true",
) -> ChainSnapshot:
    """Snapshot of ``day`` from the parquet, quote time ``day clock`` ET, rows matching ``where``.

    Column map: type call/put -> C/P, impliedvol -> vendor_implied_vol, delta/gamma ->
    vendor_delta/vendor_gamma, vendor_theta/vendor_vega NaN, openinterest -> open_interest,
    underlying_last -> underlying_price; every row is_liquid.
    """
    sql = f"""
        select root, expiration, strike,
               case type when 'call' then 'C' when 'put' then 'P' end as "right",
               bid, ask, (bid + ask) / 2 as mid, "last", volume::double as volume,
               openinterest::double as open_interest, impliedvol as vendor_implied_vol,
               delta as vendor_delta, gamma as vendor_gamma,
               cast(null as double) as vendor_theta, cast(null as double) as vendor_vega,
               true as is_liquid, underlying_last
        from read_parquet(?)
        where quotedate = ?::timestamp and not is_market_holiday and ({where})
        order by root, expiration, strike, "right"
    """
    with duckdb.connect() as con:
        df = con.execute(sql, [str(path), day]).df()
    assert len(df), f"no rows for {day}"
    spot = float(df["underlying_last"].iloc[0])
    quote_time = pd.Timestamp(f"{day} {clock}").tz_localize("America/New_York")
    return ChainSnapshot(
        "SPX", quote_time, spot, df.drop(columns="underlying_last"), rate=rate, source=str(path)
    )


def raw(path: Path, sql: str, *params: object) -> pd.DataFrame:
    """A query on the raw parquet (``{p}`` is the file)."""
    with duckdb.connect() as con:
        return con.execute(sql.format(p=f"read_parquet('{path}')"), list(params)).df()


def raw_quotes(path: Path, day: str) -> dict[tuple[str, dt.date, float, str], tuple[float, float]]:
    df = raw(
        path,
        "select root, expiration, strike, type, bid, ask from {p} where quotedate = ?::timestamp",
        day,
    )
    return {
        (r, e.date(), float(k), "C" if t == "call" else "P"): (float(b), float(a))
        for r, e, k, t, b, a in df.itertuples(index=False)
    }


@pytest.fixture(scope="module")
def chains(shared_data: Path) -> Path:
    return shared_data / CHAINS


@pytest.fixture(scope="module")
def may1(chains: Path) -> ChainSnapshot:
    return load_snapshot(chains, "2019-05-01")


@pytest.fixture(scope="module")
def may1_rate(chains: Path) -> ChainSnapshot:
    return load_snapshot(chains, "2019-05-01", rate=0.02)


MAY17 = dt.date(2019, 5, 17)  # SPX AM monthly, 16 DTE from 2019-05-01
MAY31 = dt.date(2019, 5, 31)  # SPXW PM, 30 DTE


# -- expiries ------------------------------------------------------------------------------------
def test_expiries_match_the_raw_file(chains: Path, may1: ChainSnapshot) -> None:
    ref = raw(
        chains,
        "select distinct expiration from {p} where quotedate = '2019-05-01' and root = 'SPX' "
        "order by 1",
    )
    assert may1.expiries("SPX") == [t.date() for t in ref["expiration"]]
    assert may1.expiries("SPX")[:3] == [MAY17, dt.date(2019, 6, 21), dt.date(2019, 7, 19)]
    assert len(may1.expiries()) == 35  # SPX + SPXW distinct dates (README: 34-39 a day)
    assert may1.expiries("SPY") == []


def test_nearest_expiry_hand_picked(may1: ChainSnapshot) -> None:
    assert may1.nearest_expiry(30) == MAY31  # SPXW 2019-05-31 is exactly 30 DTE
    assert may1.nearest_expiry(30, "SPX") == MAY17  # 16 DTE beats 2019-06-21 (51 DTE)
    assert may1.nearest_expiry(0, "SPXW") == dt.date(2019, 5, 1)  # same-day expiry
    # SPXW 05-03 (2 DTE) and 05-06 (5 DTE) are equally far from 3.5: the earlier one wins
    assert may1.nearest_expiry(3.5, "SPXW") == dt.date(2019, 5, 3)
    with pytest.raises(ValueError, match=r"2019-05-01 15:45.*root SPY"):
        may1.nearest_expiry(30, "SPY")


# -- forward -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("root", "expiry", "minutes"),
    [
        # AM: 09:30 ET on 05-17; from 05-01 15:45: 16 days minus 6h15
        ("SPX", MAY17, 16 * 1440 - 375),
        # PM: 16:00 ET on 05-31
        ("SPXW", MAY31, 30 * 1440 + 15),
        # same-day SPXW: 15 minutes to the close
        ("SPXW", dt.date(2019, 5, 1), 15),
    ],
)
def test_forward_is_parity_at_the_three_tightest_strikes(
    chains: Path, may1_rate: ChainSnapshot, root: str, expiry: dt.date, minutes: int
) -> None:
    tte = minutes / MINUTES_PER_YEAR
    assert may1_rate.tte(expiry, root) == pytest.approx(tte, rel=1e-12)
    pairs = raw(
        chains,
        """
        select c.strike, (c.bid + c.ask) / 2 - (p.bid + p.ask) / 2 as cp
        from {p} c join {p} p using (quotedate, root, expiration, strike)
        where c.type = 'call' and p.type = 'put' and c.quotedate = '2019-05-01'
          and c.root = ? and c.expiration = ?::timestamp and c.bid > 0 and p.bid > 0
        order by abs(cp), c.strike limit 3
        """,
        root,
        str(expiry),
    )
    hand = float(np.mean(pairs["strike"] + math.exp(0.02 * tte) * pairs["cp"]))
    assert may1_rate.forward(expiry, root) == pytest.approx(hand, abs=1e-9)
    # and the forward sits within a few points of the index for these short expiries
    assert abs(hand - may1_rate.underlying_price) < 3.0


def test_atm_strike_is_the_listed_strike_nearest_the_forward(
    chains: Path, may1: ChainSnapshot
) -> None:
    both = raw(
        chains,
        """
        select root, expiration, strike from {p} where quotedate = '2019-05-01'
        group by all having count(distinct type) = 2
        """,
    )
    n_expiries = both.groupby(["root", "expiration"]).ngroups
    checked = 0
    for (root, exp), g in both.groupby(["root", "expiration"]):
        fwd = may1.forward(exp.date(), root)
        strikes = np.sort(g["strike"].to_numpy())
        below, above = strikes[strikes <= fwd].max(), strikes[strikes >= fwd].min()
        k = may1.atm_strike(exp.date(), root)
        assert k in (below, above)  # the ATM strike straddles the forward
        assert abs(k - fwd) <= min(fwd - below, above - fwd) + 1e-12
        checked += 1
    assert checked == n_expiries == 41  # 29 SPXW + 12 SPX expiries


# -- implied vols and greeks ---------------------------------------------------------------------
QL_ROWS = [
    ("SPX", MAY17, 2900.0, "P"),
    ("SPX", MAY17, 2945.0, "C"),
    ("SPX", MAY17, 2945.0, "P"),
    ("SPX", MAY17, 3000.0, "C"),
    ("SPXW", dt.date(2019, 5, 1), 2945.0, "C"),  # 0DTE, 15 minutes to the close
    ("SPXW", dt.date(2019, 5, 1), 2950.0, "P"),
    ("SPXW", dt.date(2019, 6, 28), 2800.0, "P"),
    ("SPX", dt.date(2019, 12, 20), 3100.0, "C"),
]


def test_implied_vols_and_greeks_match_quantlib_and_black76(may1_rate: ChainSnapshot) -> None:
    table = may1_rate.with_implied_vols().set_index(["root", "expiration", "strike", "right"])
    r = 0.02
    for root, exp, k, right in QL_ROWS:
        row = table.loc[(root, pd.Timestamp(exp), k, right)]
        fwd, tte, iv = row["forward"], row["tte"], row["implied_vol"]
        # QuantLib blackFormulaImpliedStdDev on the forward: spot F with q = r gives F, DF e^-rT
        ref = ql_implied_vol(row["mid"], fwd, k, tte, r, r, right, method="black")
        assert iv == pytest.approx(float(ref), abs=1e-9), (root, exp, k, right)
        d1 = (math.log(fwd / k) + 0.5 * iv * iv * tte) / (iv * math.sqrt(tte))
        delta = norm.cdf(d1) - (right == "P")
        assert row["delta"] == pytest.approx(delta, abs=1e-10)
        vega = fwd * math.exp(-r * tte) * norm.pdf(d1) * math.sqrt(tte)
        assert row["vega"] == pytest.approx(vega, rel=1e-9)
        assert row["log_moneyness"] == pytest.approx(math.log(k / fwd), abs=1e-14)
        assert row["iv_status"] == 0


def test_our_vols_agree_with_the_vendor_near_the_money(may1: ChainSnapshot) -> None:
    t = may1.with_implied_vols()
    otm = ((t["right"] == "C") & (t["log_moneyness"] >= 0)) | (
        (t["right"] == "P") & (t["log_moneyness"] <= 0)
    )
    near = (
        t["dte"].between(20, 60)
        & (t["log_moneyness"].abs() < 0.05)
        & t["two_sided"]
        & (t["vendor_implied_vol"] > 0)
        & otm
    )
    diff = (t.loc[near, "implied_vol"] - t.loc[near, "vendor_implied_vol"]).abs()
    assert len(diff) > 400
    # measured 2019-05-01: max 0.05 vol pt, median 0.01 vol pt (rate 0 vs the vendor's own)
    assert diff.max() < 0.01  # within one vol point everywhere
    assert diff.median() < 0.001


def test_25_delta_strikes_have_vendor_delta_near_25(chains: Path, may1: ChainSnapshot) -> None:
    kc = may1.strike_by_delta(MAY17, "SPX", "C", 0.25)
    kp = may1.strike_by_delta(MAY17, "SPX", "P", -0.25)
    vendor = raw(
        chains,
        """
        select type, strike, delta from {p} where quotedate = '2019-05-01' and root = 'SPX'
          and expiration = '2019-05-17' and strike in (?, ?)
        """,
        kc,
        kp,
    ).set_index(["type", "strike"])["delta"]
    assert kp < may1.forward(MAY17, "SPX") < kc
    assert vendor[("call", kc)] == pytest.approx(0.25, abs=0.015)
    assert vendor[("put", kp)] == pytest.approx(-0.25, abs=0.015)
    with pytest.raises(ValueError, match="negative delta"):
        may1.strike_by_delta(MAY17, "SPX", "P", 0.25)


def test_atm_iv_and_risk_reversal_against_the_vendor_smile(may1: ChainSnapshot) -> None:
    q = may1.quotes
    side = q[
        (q["root"] == "SPX")
        & (q["expiration"] == pd.Timestamp(MAY17))
        & (q["bid"] > 0)
        & (q["vendor_implied_vol"] > 0)
    ]

    def vendor_iv_at(right: str, delta: float) -> float:
        s = side[side["right"] == right]
        s = s[(s["vendor_delta"].abs() > 0.05) & (s["vendor_delta"].abs() < 0.5)]
        s = s.sort_values("vendor_delta")
        return float(np.interp(delta, s["vendor_delta"], s["vendor_implied_vol"]))

    rr_vendor = vendor_iv_at("C", 0.25) - vendor_iv_at("P", -0.25)
    rr = may1.risk_reversal_25d(MAY17, "SPX")
    assert rr < 0  # equity-index put skew
    assert rr == pytest.approx(rr_vendor, abs=0.002)  # measured: -0.0353 vs the vendor's
    k = may1.atm_strike(MAY17, "SPX")
    atm_vendor = side.loc[side["strike"] == k, "vendor_implied_vol"].mean()
    assert may1.atm_iv(MAY17, "SPX") == pytest.approx(atm_vendor, abs=0.002)


def test_zero_dte_vols_exist_and_settled_expiries_have_none(chains: Path) -> None:
    # 2019-06-21: the SPX AM monthly settled at 09:30; the 15:45 file still lists it at 0/0
    june21 = load_snapshot(chains, "2019-06-21")
    expiry = dt.date(2019, 6, 21)
    assert june21.tte(expiry, "SPX") == 0.0
    assert june21.tte(expiry, "SPXW") == pytest.approx(15 / MINUTES_PER_YEAR)
    settled = june21.with_implied_vols(expiry, "SPX")
    assert len(settled) == 562 and settled["implied_vol"].isna().all()
    assert (settled["iv_status"] == 3).all()
    with pytest.raises(ValueError, match=r"no forward.*root SPX, expiry 2019-06-21"):
        june21.atm_iv(expiry, "SPX")
    assert 0.01 < june21.atm_iv(expiry, "SPXW") < 2.0  # 15 minutes to the close: solvable
    # 2019-07-03 closed at 13:00: by 15:45 the same-day SPXW has settled (tte 0), its last
    # quotes are still two-sided, so it has a forward and a straddle but no implied vol
    july3 = load_snapshot(chains, "2019-07-03")
    expiry = dt.date(2019, 7, 3)
    assert july3.tte(expiry, "SPXW") == 0.0
    straddle = july3.straddle(expiry, "SPXW")
    assert straddle.ask > straddle.bid > 0
    with pytest.raises(ValueError, match=r"no ATM implied vol.*bad input"):
        july3.atm_iv(expiry, "SPXW")
    # the same quotes stamped 12:45, only to exercise the half-day clock
    early = load_snapshot(chains, "2019-07-03", clock="12:45")
    assert early.tte(expiry, "SPXW") == pytest.approx(15 / MINUTES_PER_YEAR)
    assert math.isfinite(early.atm_iv(expiry, "SPXW"))


# -- combos --------------------------------------------------------------------------------------
def test_combos_cross_each_leg_like_the_raw_rows(chains: Path, may1: ChainSnapshot) -> None:
    rows = raw_quotes(chains, "2019-05-01")

    def leg(root: str, exp: dt.date, k: float, right: str) -> tuple[float, float]:
        return rows[(root, exp, k, right)]

    (cb, ca), (pb, pa) = leg("SPX", MAY17, 2945.0, "C"), leg("SPX", MAY17, 2945.0, "P")
    straddle = may1.straddle(MAY17, "SPX")  # ATM: forward 2945.93 -> 2945
    assert [c.strike for c, _ in straddle.legs] == [2945.0, 2945.0]
    assert (straddle.bid, straddle.ask) == pytest.approx((cb + pb, ca + pa))
    assert straddle.mid == pytest.approx((cb + ca + pb + pa) / 2)

    strangle = may1.strangle(MAY17, "SPX", call_strike=3000.0, put_strike=2900.0)
    (c3b, c3a), (p29b, p29a) = leg("SPX", MAY17, 3000.0, "C"), leg("SPX", MAY17, 2900.0, "P")
    assert (strangle.bid, strangle.ask) == pytest.approx((c3b + p29b, c3a + p29a))
    by_delta = may1.strangle(MAY17, "SPX")
    assert [c.strike for c, _ in by_delta.legs] == [
        may1.strike_by_delta(MAY17, "SPX", "C", 0.25),
        may1.strike_by_delta(MAY17, "SPX", "P", -0.25),
    ]

    vertical = may1.vertical(MAY17, "SPX", "P", 2900.0, 2850.0)  # long 2900P, short 2850P
    p285b, p285a = leg("SPX", MAY17, 2850.0, "P")
    assert (vertical.bid, vertical.ask) == pytest.approx((p29b - p285a, p29a - p285b))

    condor = may1.iron_condor(MAY17, "SPX", 2850.0, 2900.0, 3000.0, 3050.0)
    c305b, c305a = leg("SPX", MAY17, 3050.0, "C")
    bid = p285b - p29a - c3a + c305b
    ask = p285a - p29b - c3b + c305a
    assert (condor.bid, condor.ask) == pytest.approx((bid, ask))
    assert condor.ask < 0  # opening the short condor collects a credit
    assert [q for _, q in condor.legs] == [1, -1, -1, 1]

    cal = may1.calendar(MAY17, dt.date(2019, 6, 21), 2950.0, "C", "SPX")
    (nb, na), (fb, fa) = (
        leg("SPX", MAY17, 2950.0, "C"),
        leg("SPX", dt.date(2019, 6, 21), 2950.0, "C"),
    )
    assert (cal.bid, cal.ask) == pytest.approx((fb - na, fa - nb))
    assert cal.mid == pytest.approx((fb + fa - nb - na) / 2)

    mixed = may1.calendar(MAY17, MAY31, 2950.0, "P", "SPX", far_root="SPXW")
    assert mixed.legs[1][0].settlement == "PM" and mixed.legs[0][0].settlement == "AM"


def test_combo_and_contract_errors(may1: ChainSnapshot) -> None:
    with pytest.raises(KeyError, match=r"SPX 2019-05-17 2947C is not quoted.*2019-05-01 15:45"):
        may1.straddle(MAY17, "SPX", strike=2947.0)
    with pytest.raises(KeyError, match=r"root SPX, expiry 2019-05-18.*2019-05-17"):
        may1.forward(dt.date(2019, 5, 18), "SPX")
    with pytest.raises(KeyError, match="roots quoted"):
        may1.with_implied_vols(root="SPY")
    call = OptionContract("SPX", MAY17, 2945.0, "C")
    with pytest.raises(ValueError, match="non-zero integer"):
        may1.combo("custom", [(call, 0)])
    with pytest.raises(ValueError, match="non-zero integer"):
        may1.combo("custom", [(call, 1.5)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="put_long < put_short"):
        may1.iron_condor(MAY17, "SPX", 2900.0, 2850.0, 3000.0, 3050.0)
    with pytest.raises(ValueError, match="before the far expiry"):
        may1.calendar(MAY31, MAY17, 2950.0, "C", "SPXW")


def test_an_expiry_with_one_side_missing(chains: Path, may1: ChainSnapshot) -> None:
    snap = load_snapshot(
        chains,
        "2019-05-01",
        where="not (root = 'SPXW' and expiration = '2019-05-31' and type = 'put')",
    )
    with pytest.raises(ValueError, match=r"2019-05-01 15:45.*root SPXW, expiry 2019-05-31"):
        snap.forward(MAY31, "SPXW")
    with pytest.raises(ValueError, match="no forward"):
        snap.atm_iv(MAY31, "SPXW")
    calls = snap.with_implied_vols(MAY31, "SPXW")
    assert len(calls) > 0 and (calls["right"] == "C").all()
    assert calls["forward"].isna().all() and calls["implied_vol"].isna().all()
    assert (calls["iv_status"] == 3).all()
    # other expiries are untouched: same vols as in the full snapshot
    mine = snap.with_implied_vols(MAY17, "SPX")["implied_vol"].to_numpy()
    full = may1.with_implied_vols(MAY17, "SPX")["implied_vol"].to_numpy()
    np.testing.assert_array_equal(mine, full)


def test_with_implied_vols_returns_copies(may1: ChainSnapshot) -> None:
    first = may1.with_implied_vols(MAY17, "SPX")
    first["implied_vol"] = -1.0
    again = may1.with_implied_vols(MAY17, "SPX")
    assert (again["implied_vol"].dropna() > 0).all()
    by_expiry = may1.with_implied_vols(MAY17)  # both roots list 2019-05-17
    assert set(by_expiry["root"]) == {"SPX", "SPXW"}


def test_an_empty_snapshot_answers_with_errors_not_garbage() -> None:
    when = pd.Timestamp("2019-05-01 15:45", tz="America/New_York")
    snap = ChainSnapshot("SPX", when, 2946.73, empty_quotes())
    assert snap.expiries() == []
    table = snap.with_implied_vols()
    assert len(table) == 0 and {"forward", "implied_vol", "delta"} <= set(table.columns)
    with pytest.raises(ValueError, match=r"no expiry quoted in the SPX snapshot of 2019-05-01"):
        snap.nearest_expiry(30)
    with pytest.raises(KeyError, match="root SPX, expiry 2019-05-17"):
        snap.atm_iv(MAY17, "SPX")
