"""Daily vol-signal table (RR, butterfly, term slope, 0DTE intercept) and the VVIX loader."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import linregress, norm

from data_feeds.errors import DataSourceError, DataValidationError
from data_feeds.vol_signals import VOL_SIGNAL_COLUMNS, load_vvix, vol_signal_table

HAND_DATE = dt.date(2019, 5, 15)
RAW_2019 = "options/spx_chains_2019q2.parquet"


@pytest.fixture(scope="module")
def table(chain_store_2019):
    dates = chain_store_2019.quote_dates("SPX")[:8]
    return vol_signal_table(chain_store_2019, "SPX", quote_dates=dates)


def test_table_is_complete_and_consistent(table, chain_store_2019) -> None:
    tab, report = table
    assert list(tab.columns) == list(VOL_SIGNAL_COLUMNS)
    assert report.n_dates == 8 and not report.errors, report.summary()
    assert tab.notna().all().all()
    np.testing.assert_allclose(tab["risk_reversal_25d"], tab["iv_25c"] - tab["iv_25p"], atol=1e-12)
    bf = 0.5 * (tab["iv_25c"] + tab["iv_25p"]) - tab["atm_iv"]
    np.testing.assert_allclose(tab["butterfly_25d"], bf, atol=1e-12)
    # equity-index skew: puts richer than calls, convex smile, 30-day-ish expiry
    assert (tab["risk_reversal_25d"] < 0).all()
    assert (tab["butterfly_25d"] > 0).all()
    assert tab["dte_atm"].between(25, 35).all()


def test_term_regression_matches_scipy(table, chain_store_2019) -> None:
    tab, _ = table
    day = tab.index[3].date()
    snap = chain_store_2019.snapshot("SPX", day)
    tte, ivs, skipped = [], [], 0
    for exp in snap.expiries():
        if 1 <= (exp - day).days <= 60:
            root = "SPX" if exp in snap.expiries("SPX") else "SPXW"
            try:
                ivs.append(snap.atm_iv(exp, root))
            except ValueError:
                skipped += 1
                continue
            tte.append(snap.tte(exp, root))
    fit = linregress(tte, ivs)
    row = tab.loc[pd.Timestamp(day)]
    assert row["n_term_expiries"] == len(tte) >= 10
    assert row["n_term_skipped"] == skipped
    assert row["term_slope"] == pytest.approx(fit.slope, rel=1e-9)
    assert row["atm_iv_0dte"] == pytest.approx(fit.intercept, rel=1e-9)


def test_no_look_ahead(table, chain_store_2019) -> None:
    tab, _ = table
    short, _ = vol_signal_table(
        chain_store_2019, "SPX", quote_dates=[d.date() for d in tab.index[:4]]
    )
    pd.testing.assert_frame_equal(short, tab.iloc[:4])


def _black_iv(price: float, fwd: float, k: float, t: float, call: bool) -> float:
    def f(s: float) -> float:
        d1 = (math.log(fwd / k) + 0.5 * s * s * t) / (s * math.sqrt(t))
        d2 = d1 - s * math.sqrt(t)
        if call:
            return fwd * norm.cdf(d1) - k * norm.cdf(d2) - price
        return k * norm.cdf(-d2) - fwd * norm.cdf(-d1) - price

    return brentq(f, 1e-4, 5.0, xtol=1e-12)


def test_rr_and_butterfly_by_hand_from_raw_quotes(chain_store_2019, shared_data: Path) -> None:
    """2019-05-15, expiry 2019-06-14 (SPXW, PM): forward, IVs and deltas from the raw vendor
    parquet with duckdb + scipy (Black-76, rate 0), interpolated by hand in delta."""
    tab, _ = vol_signal_table(chain_store_2019, "SPX", quote_dates=[HAND_DATE])
    row = tab.iloc[0]
    assert row["dte_atm"] == 30
    raw = duckdb.sql(
        f"SELECT strike, type, bid, ask FROM '{shared_data / RAW_2019}' "
        "WHERE quotedate = DATE '2019-05-15' AND expiration = DATE '2019-06-14' "
        "AND root = 'SPXW' AND bid > 0 AND ask >= bid"
    ).df()
    raw["mid"] = 0.5 * (raw["bid"] + raw["ask"])
    calls = raw[raw["type"] == "call"].set_index("strike")["mid"]
    puts = raw[raw["type"] == "put"].set_index("strike")["mid"]
    both = calls.index.intersection(puts.index)
    gap = (calls[both] - puts[both]).abs().sort_values(kind="stable")
    ks = gap.index[:3]
    fwd = float(np.mean(ks + calls[ks] - puts[ks]))
    # snapshot at 15:45 ET, PM settlement 16:00 ET thirty days later: ACT/365 to the minute
    tte = (30 * 24 * 60 + 15) / (365 * 24 * 60)
    snap = chain_store_2019.snapshot("SPX", HAND_DATE)
    assert snap.quote_time.time() == dt.time(15, 45)

    def side(mids: pd.Series, call: bool) -> pd.DataFrame:
        k = mids.index[mids.index >= fwd] if call else mids.index[mids.index <= fwd][::-1]
        iv = np.array([_black_iv(mids[x], fwd, x, tte, call) for x in k[:60]])
        d1 = (np.log(fwd / k[:60]) + 0.5 * iv**2 * tte) / (iv * math.sqrt(tte))
        delta = norm.cdf(d1) if call else norm.cdf(d1) - 1.0
        return pd.DataFrame({"iv": iv, "delta": delta}, index=k[:60])

    def at(df: pd.DataFrame, target: float) -> float:
        d, v = df["delta"].to_numpy(), df["iv"].to_numpy()
        i = next(i for i in range(len(d) - 1) if (d[i] - target) * (d[i + 1] - target) <= 0)
        return v[i] + (target - d[i]) / (d[i + 1] - d[i]) * (v[i + 1] - v[i])

    c25 = at(side(calls, True), 0.25)
    p25 = at(side(puts, False), -0.25)
    k_atm = both[np.argmin(np.abs(both - fwd))]
    atm = 0.5 * (
        _black_iv(calls[k_atm], fwd, k_atm, tte, True)
        + _black_iv(puts[k_atm], fwd, k_atm, tte, False)
    )
    assert row["atm_iv"] == pytest.approx(atm, abs=1e-6)
    assert row["risk_reversal_25d"] == pytest.approx(c25 - p25, abs=1e-6)
    assert row["butterfly_25d"] == pytest.approx(0.5 * (c25 + p25) - atm, abs=1e-6)
    # printed for the report: the hand numbers
    print(f"fwd={fwd:.4f} atm={atm:.6f} c25={c25:.6f} p25={p25:.6f}")


def test_load_vvix_drops_2006_counted(shared_data: Path) -> None:
    path = shared_data / "index" / "vvix_daily.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    n_2006 = sum(r["DATE"].endswith("/2006") for r in rows)
    vvix, report = load_vvix(path)
    assert report.n_read == len(rows)
    assert report.n_before_start == n_2006 > 6
    assert report.n_kept == len(rows) - n_2006 == len(vvix)
    assert vvix.index.min() >= pd.Timestamp("2007-01-01")
    assert vvix.index.is_monotonic_increasing and vvix.index.is_unique
    ref = {
        pd.Timestamp(dt.datetime.strptime(r["DATE"], "%m/%d/%Y")): float(r["VVIX"]) for r in rows
    }
    assert all(vvix[d] == ref[d] for d in vvix.index[::97])
    assert vvix.min() > 50  # the wrong 2006 values (15.71, 27.94, ...) are gone
    everything, rep_all = load_vvix(path, start=None)
    assert rep_all.n_before_start == 0 and everything.min() == pytest.approx(15.71)


def test_load_vvix_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "vvix.csv"
    p.write_text("DATE,VVIX\n01/03/2007,80.1\n01/04/2007,abc\n")
    with pytest.raises(DataValidationError, match=r"row 2007-01-04, field 'VVIX'"):
        load_vvix(p)
    p.write_text("DATE,VVIX\n2007-01-03,80.1\n")
    with pytest.raises(DataValidationError, match="MM/DD/YYYY"):
        load_vvix(p)
    p.write_text("Date,Close\n01/03/2007,80.1\n")
    with pytest.raises(DataSourceError, match="DATE,VVIX"):
        load_vvix(p)
    with pytest.raises(DataSourceError, match="not found"):
        load_vvix(tmp_path / "missing.csv")
