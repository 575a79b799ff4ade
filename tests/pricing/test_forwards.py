"""Tests of pricing.forwards (put-call-parity forwards) against independent references.

References: known forwards/discounts behind synthetic quotes; ``statsmodels.robust.RLM``
(HuberT) on the same pairs; ``scipy.stats.theilslopes``; a hand least-squares fit on rows read
straight from the 2019 SPX parquet with DuckDB; ``ChainSnapshot.forward`` (mean of the
three-strike parity forwards) on real dates, to within the quoted half-spread.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest
import QuantLib as ql
import statsmodels.api as sm
from scipy.stats import theilslopes

from pricing.forwards import (
    PARITY_FORWARD_COLUMNS,
    carry_forward,
    forward_estimate,
    nearest_parity_forwards,
    parity_forwards,
    parity_pairs,
)
from pricing.ql_helpers import evaluation_date, ql_flat_forward

SPX_2019 = "options/spx_chains_2019q2.parquet"


def synthetic_pairs(seed=0, outliers=True):
    """Two expiries with known F and D; quotes = parity value ± noise, spreads 0.2..0.6."""
    rng = np.random.default_rng(seed)
    rows = []
    truth = {}
    for expiry, tte, forward, rate in (("A", 0.1, 2857.3, 0.025), ("B", 0.75, 2880.9, 0.02)):
        disc = np.exp(-rate * tte)
        truth[expiry] = (forward, disc)
        strikes = np.arange(2500.0, 3200.0, 5.0)
        for k in strikes:
            parity = disc * (forward - k)
            put_mid = 30.0 + max(disc * (k - forward), 0.0) + 5.0 * rng.random()
            noise = rng.normal(0.0, 0.03)
            call_mid = put_mid + parity + noise
            hc, hp = rng.uniform(0.1, 0.3, 2)
            rows.append((expiry, k, tte, call_mid - hc, call_mid + hc, put_mid - hp, put_mid + hp))
    pairs = pd.DataFrame(
        rows,
        columns=["expiration", "strike", "tte", "call_bid", "call_ask", "put_bid", "put_ask"],
    )
    if outliers:  # stale quotes: C - P off by 3..5 points at a few near-the-money strikes
        for expiry in ("A", "B"):
            near = pairs.index[
                (pairs["expiration"] == expiry) & pairs["strike"].between(2830, 2890)
            ]
            for i, shift in zip(near[[1, 4, 8]], (3.0, -4.0, 5.0), strict=True):
                pairs.loc[i, ["call_bid", "call_ask"]] += shift
    return pairs, truth


def test_recovers_known_forward_and_discount_despite_stale_quotes():
    pairs, truth = synthetic_pairs()
    res = parity_forwards(pairs, keys=["expiration"], spot=2850.0)
    assert list(res.columns) == list(PARITY_FORWARD_COLUMNS)
    for expiry, (forward, disc) in truth.items():
        row = res.loc[expiry]
        assert row["note"] == "ok"
        assert abs(row["forward"] - forward) < 0.05
        assert abs(row["discount"] - disc) < 2e-4
        assert row["n_downweighted"] >= 3  # the stale quotes are down-weighted
        assert row["resid_max_abs"] > 2.9  # and show in the diagnostics
        np.testing.assert_allclose(row["rate"], -np.log(row["discount"]) / row["tte"])
        np.testing.assert_allclose(row["carry"], np.log(row["forward"] / 2850.0) / row["tte"])
        np.testing.assert_allclose(row["div_yield"], row["rate"] - row["carry"])
    # ordinary least squares on the same window is pulled by the stale quotes
    _, detail = parity_forwards(pairs, keys=["expiration"], return_pairs=True)
    used = detail[detail["used"] & (detail["expiration"] == "A")]
    mid_c = 0.5 * (used["call_bid"] + used["call_ask"])
    mid_p = 0.5 * (used["put_bid"] + used["put_ask"])
    slope, intercept = np.polyfit(used["strike"], mid_c - mid_p, 1)
    ols_forward = intercept / -slope
    assert abs(ols_forward - truth["A"][0]) > 3 * abs(res.loc["A", "forward"] - truth["A"][0])


def test_huber_fit_matches_statsmodels_rlm():
    pairs, _ = synthetic_pairs(seed=3)
    res, detail = parity_forwards(pairs, keys=["expiration"], return_pairs=True)
    for expiry, group in detail[detail["used"]].groupby("expiration"):
        h = group["half_spread"].to_numpy()
        k = group["strike"].to_numpy()
        d = (group["call_bid"] + group["call_ask"] - group["put_bid"] - group["put_ask"]) / 2
        fit = sm.RLM(d.to_numpy() / h, np.column_stack([1 / h, k / h]), sm.robust.norms.HuberT())
        r = fit.fit()
        disc = -r.params[1]
        assert res.loc[expiry, "discount"] == pytest.approx(disc, abs=1e-10)
        assert res.loc[expiry, "forward"] == pytest.approx(r.params[0] / disc, abs=1e-7)
        np.testing.assert_allclose(group["huber_weight"], r.weights, atol=1e-9)
        assert res.loc[expiry, "robust_scale"] == pytest.approx(r.scale, rel=1e-7)


def test_theil_sen_and_fixed_rate():
    pairs, truth = synthetic_pairs(seed=4)
    ts, detail = parity_forwards(pairs, keys=["expiration"], method="theil_sen", return_pairs=True)
    for expiry, group in detail[detail["used"]].groupby("expiration"):
        d = (group["call_bid"] + group["call_ask"] - group["put_bid"] - group["put_ask"]) / 2
        ref = theilslopes(d, group["strike"], method="joint")
        assert ts.loc[expiry, "discount"] == pytest.approx(-ref.slope, abs=1e-12)
        assert ts.loc[expiry, "forward"] == pytest.approx(ref.intercept / -ref.slope, abs=1e-9)
        assert abs(ts.loc[expiry, "forward"] - truth[expiry][0]) < 0.1
        assert np.isnan(ts.loc[expiry, "forward_se"])
    # a known rate fixes D; only F is fitted
    fixed = parity_forwards(pairs, keys=["expiration"], rate=0.025)
    np.testing.assert_allclose(fixed["discount"], np.exp(-0.025 * fixed["tte"]), rtol=1e-15)
    assert abs(fixed.loc["A", "forward"] - truth["A"][0]) < 0.05
    assert fixed.loc["A", "rate"] == pytest.approx(0.025)


def test_bad_input_and_too_few_pairs():
    pairs, _ = synthetic_pairs(outliers=False)
    with pytest.raises(KeyError, match="lacks column"):
        parity_forwards(pairs.drop(columns=["put_ask"]), keys=["expiration"])
    with pytest.raises(ValueError, match="method must be"):
        parity_forwards(pairs, keys=["expiration"], method="ols")
    with pytest.raises(ValueError, match="min_pairs must be at least 3"):
        parity_forwards(pairs, keys=["expiration"], min_pairs=2)
    bad = pairs.copy()
    bad.loc[7, "strike"] = -5.0
    with pytest.raises(ValueError, match=r"row 7, column 'strike': expected a finite value > 0"):
        parity_forwards(bad, keys=["expiration"])
    bad = pairs.copy()
    bad.loc[3, "tte"] = 0.2
    with pytest.raises(ValueError, match=r"row 3: tte 0.2 differs from the rest of its group"):
        parity_forwards(bad, keys=["expiration"])
    bad = pairs.copy()
    bad["tte"] = bad["tte"].where(bad["expiration"] == "A", -0.1)
    with pytest.raises(ValueError, match=r"column 'tte': expected a finite value >= 0"):
        parity_forwards(bad, keys=["expiration"])
    expired = pairs.copy()
    expired.loc[expired["expiration"] == "B", "tte"] = 0.0  # AM expiry after settlement
    res = parity_forwards(expired, keys=["expiration"])
    assert np.isnan(res.loc["B", "forward"]) and res.loc["B", "note"].startswith("expired")
    assert res.loc["A", "note"] == "ok"
    # expiry B left with two two-sided pairs: NaN forward and the reason, not a guess
    few = pairs.copy()
    few.loc[(few["expiration"] == "B") & (few.index % 70 != 0), "put_bid"] = 0.0
    res = parity_forwards(few, keys=["expiration"])
    assert res.loc["B", "n_two_sided"] == 2
    assert np.isnan(res.loc["B", "forward"]) and res.loc["B", "note"].startswith("fewer than 3")
    assert res.loc["A", "note"] == "ok"


def test_parity_pairs_from_long_quotes():
    quotes = pd.DataFrame(
        {
            "root": ["SPX"] * 5,
            "expiration": pd.to_datetime(["2019-06-21"] * 5),
            "strike": [2800.0, 2800.0, 2850.0, 2850.0, 2900.0],
            "right": ["C", "P", "P", "C", "C"],
            "bid": [70.0, 15.0, 30.0, 40.0, 20.0],
            "ask": [71.0, 16.0, 31.0, 41.0, 21.0],
            "tte": [0.1] * 5,
        }
    )
    pairs = parity_pairs(quotes)
    assert list(pairs["strike"]) == [2800.0, 2850.0]  # 2900 has no put
    np.testing.assert_allclose(pairs["call_mid"], [70.5, 40.5])
    np.testing.assert_allclose(pairs["put_ask"], [16.0, 31.0])
    with pytest.raises(ValueError, match="expected 'C' or 'P'"):
        parity_pairs(quotes.assign(right=["C", "P", "P", "C", "X"]))
    with pytest.raises(ValueError, match="quoted more than once"):
        parity_pairs(pd.concat([quotes, quotes.iloc[[0]]], ignore_index=True))


# --------------------------------------------------------------------------------------
# Real 2019 SPX chains
# --------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("day", ["2019-04-25", "2019-05-15", "2019-07-22"])
def test_agrees_with_chain_snapshot_forward_within_half_spread(chain_store_2019, day):
    snap = chain_store_2019.snapshot("SPX", day, rate=0.024)
    res = parity_forwards(parity_pairs(snap.with_implied_vols()), spot=snap.underlying_price)
    assert len(res) >= 30 and (res["note"] == "ok").all()
    for (root, expiration), row in res.iterrows():
        ref = snap.forward(pd.Timestamp(expiration).date(), root)
        # within the quoted half-spread of C - P at the money (in forward units)
        assert abs(row["forward"] - ref) <= row["atm_half_spread"] / row["discount"], (
            root,
            expiration,
        )
    # beyond a month the implied rate and dividend yield are those of 2019 (2-3 %, ~2 %)
    longer = res[res["tte"] > 30 / 365]
    assert longer["rate"].between(0.015, 0.035).all()
    assert longer["div_yield"].between(0.01, 0.03).all()


@pytest.mark.shared_data
def test_hand_regression_on_rows_read_with_duckdb(shared_data, chain_store_2019):
    rows = duckdb.sql(
        f"""
        select strike, type, bid, ask from '{shared_data / SPX_2019}'
        where quotedate = '2019-05-15' and root = 'SPXW' and expiration = '2019-06-21'
          and strike between 2800 and 2915 and bid > 0
        order by strike, type
        """
    ).df()
    wide = rows.pivot(index="strike", columns="type", values=["bid", "ask"])
    wide = wide.dropna()
    assert len(wide) >= 20
    k = wide.index.to_numpy()
    c_mid = ((wide["bid"]["call"] + wide["ask"]["call"]) / 2).to_numpy()
    p_mid = ((wide["bid"]["put"] + wide["ask"]["put"]) / 2).to_numpy()
    slope, intercept = np.polyfit(k, c_mid - p_mid, 1)  # hand OLS: C - P = D F - D K
    hand_d = -slope
    hand_f = intercept / hand_d
    pairs = pd.DataFrame(
        {
            "expiration": "2019-06-21",
            "strike": k,
            "tte": 37.0 / 365.0,
            "call_bid": wide["bid"]["call"].to_numpy(),
            "call_ask": wide["ask"]["call"].to_numpy(),
            "put_bid": wide["bid"]["put"].to_numpy(),
            "put_ask": wide["ask"]["put"].to_numpy(),
        }
    )
    # every row in the window: the robust fit is close to the hand OLS on clean quotes
    res = parity_forwards(pairs, keys=["expiration"], window_sd=100.0).iloc[0]
    assert res["n_used"] == len(wide)
    assert abs(res["forward"] - hand_f) < 0.1
    assert abs(res["discount"] - hand_d) < 2e-4
    # and both are within the half-spread of the store's snapshot forward
    snap = chain_store_2019.snapshot("SPX", "2019-05-15", rate=0.024)
    ref = snap.forward(dt.date(2019, 6, 21), "SPXW")
    assert abs(hand_f - ref) < res["atm_half_spread"]
    assert abs(res["forward"] - ref) < res["atm_half_spread"]


# --------------------------------------------------------------------------------------
# The one forward at a known rate and its one fallback (issue 12, point 6)
# --------------------------------------------------------------------------------------


def hand_nearest_forward(k, c, p, tte, rate, n=3):
    """Plain-Python reference: mean of K + e^{r tte}(C - P) over the n smallest |C - P|."""
    ranked = sorted(zip(k, c, p, strict=True), key=lambda row: (abs(row[1] - row[2]), row[0]))
    chosen = ranked[:n]
    return sum(kk + math.exp(rate * tte) * (cc - pp) for kk, cc, pp in chosen) / len(chosen)


def two_sided_pairs(quotes, keys):
    """Strikes of each expiry whose call and put both have bid > 0 and ask >= bid."""
    ok = (quotes["bid"] > 0) & (quotes["ask"] >= quotes["bid"])
    q = quotes[ok].assign(mid=lambda f: (f["bid"] + f["ask"]) / 2)
    calls = q[q["right"] == "C"][[*keys, "strike", "mid"]]
    puts = q[q["right"] == "P"][[*keys, "strike", "mid"]]
    return calls.merge(puts, on=[*keys, "strike"], suffixes=("_c", "_p"))


@pytest.mark.shared_data
def test_nearest_parity_forwards_match_hand_computation_on_raw_spx_rows(shared_data):
    raw = duckdb.sql(
        f"""
        select root, expiration, strike, case type when 'call' then 'C' else 'P' end as right,
               bid, ask, dte, underlying_last
        from '{shared_data / SPX_2019}' where quotedate = '2019-05-15'
        """
    ).df()
    spot = float(raw["underlying_last"].iloc[0])
    pairs = two_sided_pairs(raw, ["root", "expiration"])
    dte = raw.groupby(["root", "expiration"])["dte"].first()
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(pairs[["root", "expiration"]]))
    tte = np.array([max(dte[key], 0.5) / 365.0 for key in uniq])
    rate = 0.024
    got, used = nearest_parity_forwards(
        codes, pairs["strike"], pairs["mid_c"], pairs["mid_p"], tte, rate
    )
    assert len(uniq) >= 30
    for j, key in enumerate(uniq):
        grp = pairs[codes == j]
        ref = hand_nearest_forward(grp["strike"], grp["mid_c"], grp["mid_p"], tte[j], rate)
        assert got[j] == pytest.approx(ref, rel=1e-13, abs=0), key
        assert used[j] == min(3, len(grp))
    # sanity against the market: within a year the forward is the spot +- 3 %
    near = tte < 1.0
    assert np.all(np.abs(got[near] / spot - 1.0) < 0.03)
    # one pair, rate 0: K + C - P at the strike of smallest |C - P| (the auction's forward)
    one, _ = nearest_parity_forwards(
        codes, pairs["strike"], pairs["mid_c"], pairs["mid_p"], tte, 0.0, n_strikes=1
    )
    grp = pairs[codes == 0]
    best = int(np.argmin(np.abs(grp["mid_c"] - grp["mid_p"]).to_numpy()))
    row = grp.iloc[best]
    assert one[0] == pytest.approx(row["strike"] + row["mid_c"] - row["mid_p"], rel=1e-15)


@pytest.mark.shared_data
@pytest.mark.parametrize("day", ["2019-04-25", "2019-07-22"])
def test_chain_snapshot_forward_is_the_hand_parity_forward(chain_store_2019, day):
    snap = chain_store_2019.snapshot("SPX", day, rate=0.024)
    pairs = two_sided_pairs(snap.quotes, ["root", "expiration"])
    checked = 0
    for (root, expiration), grp in pairs.groupby(["root", "expiration"]):
        exp = pd.Timestamp(expiration).date()
        tte = snap.tte(exp, root)
        ref = hand_nearest_forward(grp["strike"], grp["mid_c"], grp["mid_p"], tte, 0.024)
        assert snap.forward(exp, root) == pytest.approx(ref, rel=1e-13, abs=0)
        est = snap.forward_estimate(exp, root)
        assert est.source == "parity" and est.forward == snap.forward(exp, root)
        assert est.n_pairs == min(3, len(grp))
        checked += 1
    assert checked >= 30


def ql_carry_forward(spot, tte_days, rate, div_yield):
    """QuantLib: S * D_q(T) / D_r(T) on flat ACT/365 curves (the BSM process forward)."""
    with evaluation_date(ql.Date(15, 5, 2019)) as today:
        return ql_flat_forward(spot, int(tte_days), rate, div_yield, today)


@pytest.mark.parametrize(
    ("spot", "days", "rate", "div_yield"),
    [(2850.0, 37, 0.024, 0.0), (2850.0, 365, 0.024, 0.019), (415.3, 45, 0.0005, 0.013)],
)
def test_carry_forward_fallback_matches_quantlib(spot, days, rate, div_yield):
    ref = ql_carry_forward(spot, days, rate, div_yield)
    tte = days / 365.0
    assert float(carry_forward(spot, tte, rate, div_yield)) == pytest.approx(ref, rel=1e-13)
    est = forward_estimate([], [], [], tte, rate, spot=spot, div_yield=div_yield)
    assert est.source == "carry" and est.n_pairs == 0
    assert est.forward == pytest.approx(ref, rel=1e-13)
    none = forward_estimate([], [], [], tte, rate, spot=math.nan)
    assert none.source == "none" and math.isnan(none.forward)


@pytest.mark.shared_data
def test_snapshot_without_pairs_falls_back_to_the_carry_forward(chain_store_2019):
    from data_feeds.chains import ChainSnapshot

    snap = chain_store_2019.snapshot("SPX", "2019-05-15", rate=0.024)
    exp, root = dt.date(2019, 6, 21), "SPXW"
    q = snap.quotes
    # drop the puts of one expiry: no call/put pair is left there
    keep = ~((q["root"] == root) & (pd.DatetimeIndex(q["expiration"]).date == exp)
             & (q["right"] == "P"))  # fmt: skip
    calls_only = ChainSnapshot(
        snap.underlying, snap.quote_time, snap.underlying_price, q[keep], rate=snap.rate
    )
    with pytest.raises(ValueError, match="no forward"):
        calls_only.forward(exp, root)
    est = calls_only.forward_estimate(exp, root)
    tte = calls_only.tte(exp, root)
    assert est.source == "carry" and est.n_pairs == 0
    assert est.forward == pytest.approx(snap.underlying_price * math.exp(0.024 * tte), rel=1e-13)
    # QuantLib at whole days (the snapshot's tte is to the AM settlement minute)
    ql_ref = ql_carry_forward(snap.underlying_price, round(tte * 365), 0.024, 0.0)
    assert est.forward == pytest.approx(ql_ref, rel=1e-4)
    # the parity forward of the full chain differs from the fallback by the dividend carry
    full = snap.forward_estimate(exp, root)
    assert full.source == "parity" and full.forward < est.forward
    # other expiries keep their parity forward
    assert calls_only.forward(dt.date(2019, 5, 17), "SPX") == snap.forward(
        dt.date(2019, 5, 17), "SPX"
    )
