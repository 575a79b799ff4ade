"""The surface pipeline on the real 2019 SPX/SPXW chains: fits (pricing.surface_fit), tables
(data_feeds.surfaces) and the jobs that fill them (experiments.surface_jobs).

References, none of them the pipeline's own output:

* QuantLib ``blackFormulaImpliedStdDev`` implied vols of the mids and a hand-written fit-window
  filter give the stored RMSE and point count of a slice;
* the market's own ATM implied vol and 25-delta risk reversal (``ChainSnapshot.atm_iv`` /
  ``risk_reversal_25d``, interpolated from quotes) bound the model's ATM vol and RR25;
* pandas rolling windows give the realized vols; pandas expanding windows the VRP z-score;
* truncating the future (later quote dates and bars) leaves earlier VRP rows unchanged.

The tests write to a copy of the session's read-only 2019 store (in a temporary folder).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_feeds import load_ohlc
from data_feeds.chain_store import ChainStore
from data_feeds.errors import DataSourceError
from data_feeds.surfaces import load_fitted_surfaces, migrate_surface_tables
from experiments.surface_jobs import (
    fit_surfaces,
    realized_volatility_frame,
    store_realized_volatility,
    store_vrp_metrics,
    vrp_frame,
)
from pricing import ql_implied_vol
from pricing.surface_fit import (
    FILTER_REASONS,
    ModelNotAvailableError,
    SurfaceFitConfig,
    fit_snapshot,
    select_fit_quotes,
)

pytestmark = pytest.mark.shared_data

DAYS = ["2019-05-15", "2019-06-03"]


@pytest.fixture(scope="module")
def store(chain_store_2019_path: Path, shared_data: Path, tmp_path_factory):
    """A writable copy of the 2019 store with SPX daily bars and two dates of SVI fits."""
    path = tmp_path_factory.mktemp("surfaces") / "chains.duckdb"
    shutil.copy(chain_store_2019_path, path)
    s = ChainStore(path)
    bars = load_ohlc(shared_data / "index/spx_vix_spy_qqq_daily.csv", root="SPX")
    s.ingest_underlying(bars, "SPX", data_source="spx_vix_spy_qqq_daily.csv")
    fit_surfaces(s, DAYS, "svi")
    yield s
    s.close()


def _rows(store: ChainStore, model: str = "SVI") -> pd.DataFrame:
    df = store.connection.execute(
        "SELECT * EXCLUDE (fit_timestamp) FROM fitted_surfaces WHERE model_type = ? "
        "ORDER BY quote_date, symbol, expiration_date",
        [model],
    ).df()
    return df.reset_index(drop=True)


def test_refit_replaces_rows_and_gives_the_same_table(store):
    before = _rows(store)
    assert sorted(pd.to_datetime(before["quote_date"]).dt.strftime("%Y-%m-%d").unique()) == DAYS
    report = fit_surfaces(store, DAYS, "svi")
    after = _rows(store)
    pd.testing.assert_frame_equal(before, after)
    assert report.rows_written == len(after)
    ts = store.connection.execute(
        "SELECT quote_date, count(*) FROM term_structure_params WHERE model_type = "
        "'power_law:SVI' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [n for _, n in ts] == [1, 1]
    assert migrate_surface_tables(store.connection) == []  # the columns are there already


def test_a_failed_write_leaves_the_date_as_it_was(store, monkeypatch):
    import experiments.surface_jobs as jobs

    before = _rows(store)
    real = jobs.insert_frame

    def failing(con, table, frame):
        real(con, table, frame)
        if table == "term_structure_params":
            raise RuntimeError("disk full")

    monkeypatch.setattr(jobs, "insert_frame", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        fit_surfaces(store, DAYS[0], "svi", config=SurfaceFitConfig(weighting="vol"))
    pd.testing.assert_frame_equal(before, _rows(store))


def test_stored_slices_pass_the_quality_bar_and_every_expiry_has_a_row(store):
    rows = _rows(store)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) >= 80
    assert float(ok["rmse"].median()) < 0.5 and float(ok["rmse"].quantile(0.95)) < 2.0
    assert (ok["butterfly_arbitrage_violations"] == 0).all()
    assert (ok["calendar_arbitrage_violations"] == 0).all()
    assert ok["passes_no_arbitrage"].astype(bool).all()
    for day in DAYS:
        snap = store.snapshot("SPX", day)
        listed = snap.quotes.groupby(["root", "expiration"]).ngroups
        assert (pd.to_datetime(rows["quote_date"]) == pd.Timestamp(day)).sum() == listed
    skipped = rows[rows["status"] != "ok"]
    assert skipped["svi_a"].isna().all() and skipped["params"].isna().all()


def test_stored_rmse_equals_an_independent_recomputation(store):
    """One slice: the fit window by hand, QuantLib implied vols of the mids, the stored raw SVI
    parameters evaluated with the formula -> the stored RMSE/MAE/max error and point count."""
    day, root, expiry = "2019-06-03", "SPX", "2019-09-20"
    rows = _rows(store)
    row = rows[
        (rows["symbol"] == root)
        & (pd.to_datetime(rows["quote_date"]) == pd.Timestamp(day))
        & (pd.to_datetime(rows["expiration_date"]) == pd.Timestamp(expiry))
    ].iloc[0]
    params = json.loads(row["params"])
    snap = store.snapshot("SPX", day)
    table = snap.with_implied_vols(pd.Timestamp(expiry).date(), root)
    fwd, tte = float(table["forward"].iloc[0]), float(table["tte"].iloc[0])
    otm = ((table["right"] == "P") & (table["strike"] < fwd)) | (
        (table["right"] == "C") & (table["strike"] >= fwd)
    )
    window = table[(table["bid"] > 0) & otm & (table["delta"].abs() >= 0.02)]
    ql_vol = np.array(
        [
            ql_implied_vol(m, fwd, k, tte, 0.0, 0.0, r)
            for m, k, r in zip(window["mid"], window["strike"], window["right"], strict=True)
        ]
    )
    assert len(window) == row["num_points"]
    k = np.log(window["strike"].to_numpy() / fwd)
    x = k - params["m"]
    w = params["a"] + params["b"] * (params["rho"] * x + np.sqrt(x * x + params["sigma"] ** 2))
    err = 100 * (np.sqrt(w / tte) - ql_vol)
    assert row["rmse"] == pytest.approx(math.sqrt(np.mean(err**2)), rel=1e-6)
    assert row["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-6)
    assert row["max_error"] == pytest.approx(np.max(np.abs(err)), rel=1e-6)
    assert row["tte_years"] == pytest.approx(tte) and row["forward"] == pytest.approx(fwd)


def test_atm_vol_and_risk_reversal_agree_with_the_market(store):
    day = "2019-05-15"
    snap = store.snapshot("SPX", day)
    rows = _rows(store)
    rows = rows[
        (pd.to_datetime(rows["quote_date"]) == pd.Timestamp(day)) & (rows["status"] == "ok")
    ]
    checked = 0
    for r in rows[rows["dte"] >= 7].itertuples():
        exp = pd.Timestamp(r.expiration_date).date()
        # the market ATM vol is at the listed strike nearest the forward: allow the skew times
        # half a strike step; the market RR25 interpolates listed strikes linearly in delta
        assert 100 * abs(r.atm_vol - snap.atm_iv(exp, r.symbol)) < 0.6, (r.symbol, exp)
        assert 100 * abs(r.skew_25delta - snap.risk_reversal_25d(exp, r.symbol)) < 0.5
        checked += 1
    assert checked >= 30


def test_selection_counts_every_quote_it_leaves_out(store):
    snap = store.snapshot("SPX", "2019-06-03")
    table = snap.with_implied_vols()
    kept, removed = select_fit_quotes(table)
    assert list(removed) == list(FILTER_REASONS)
    assert len(kept) + sum(removed.values()) == len(table)
    otm = ((table["right"] == "P") & (table["strike"] < table["forward"])) | (
        (table["right"] == "C") & (table["strike"] >= table["forward"])
    )
    by_hand = table[
        (table["tte"] > 0)
        & (table["bid"] > 0)
        & (table["iv_status"] == 0)
        & otm
        & (table["delta"].abs() >= 0.02)
    ]
    assert sorted(kept.index) == sorted(by_hand.index)
    assert removed["one-sided (bid = 0)"] == int(((table["tte"] > 0) & (table["bid"] <= 0)).sum())


def test_realized_volatility_equals_pandas_rolling_windows(store):
    bars = store.underlying_ohlc("SPX")
    written = store_realized_volatility(store, "SPX")
    assert len(written) == len(bars)
    r = np.log(bars["close"]).diff()
    cc21 = r.rolling(21).std(ddof=1) * math.sqrt(252)
    park10 = np.sqrt(
        (np.log(bars["high"] / bars["low"]) ** 2 / (4 * math.log(2))).rolling(10).mean() * 252
    )
    gk63 = np.sqrt(
        (
            0.5 * np.log(bars["high"] / bars["low"]) ** 2
            - (2 * math.log(2) - 1) * np.log(bars["close"] / bars["open"]) ** 2
        )
        .rolling(63)
        .mean()
        * 252
    )
    stored = store.connection.execute(
        "SELECT date, rv_21d, parkinson_10d, gk_63d FROM realized_volatility WHERE symbol = "
        "'SPX' ORDER BY date"
    ).df()
    np.testing.assert_allclose(stored["rv_21d"], cc21, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(stored["parkinson_10d"], park10, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(stored["gk_63d"], gk63, rtol=1e-10, equal_nan=True)
    frame = realized_volatility_frame(bars)
    assert {"rv_252d", "parkinson_252d", "gk_252d"} <= set(frame.columns)


@pytest.fixture(scope="module")
def all_fits(store):
    """SVI fits of the first 24 quote dates of 2019 (in memory, from the same snapshots)."""
    rows = []
    for day in store.quote_dates("SPX")[:24]:
        surf = fit_snapshot(store.snapshot("SPX", day))
        f = surf.fitted
        rows.append(
            pd.DataFrame(
                {"quote_date": day, "tte_years": f["tte"].to_numpy(), "atm_vol": f["atm_vol"]}
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_vrp_uses_only_the_past(store, all_fits):
    bars = store.underlying_ohlc("SPX")
    full = vrp_frame(all_fits, bars, zscore_min_periods=10)
    cut = sorted(all_fits["quote_date"].unique())[17]
    part = vrp_frame(
        all_fits[all_fits["quote_date"] <= cut],
        bars[bars.index.date <= cut],
        zscore_min_periods=10,
    )
    head = full[full["date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, part)
    assert part["vrp_zscore"].notna().sum() > 5
    # the realized vol of a quote date ends the session before it (no same-day close)
    day = pd.Timestamp("2019-05-15").date()
    r = np.log(bars["close"]).diff()
    before = r[bars.index.date < day].tail(21)
    row = full[full["date"] == day].iloc[0]
    assert row["realized_vol_30d"] == pytest.approx(before.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert row["vrp_30d"] == pytest.approx(row["implied_vol_30d"] - row["realized_vol_30d"])


def test_vrp_zscore_equals_pandas_expanding_window_of_the_past(store, all_fits):
    out = vrp_frame(all_fits, store.underlying_ohlc("SPX"), zscore_min_periods=10)
    v = out["vrp_30d"]
    mean = v.expanding(min_periods=10).mean().shift(1)
    std = v.expanding(min_periods=10).std(ddof=1).shift(1)
    np.testing.assert_allclose(out["vrp_zscore"], (v - mean) / std, rtol=1e-10, equal_nan=True)
    # 30-day implied vol lies between the ATM vols of the expiries around 30 days
    assert out["implied_vol_30d"].between(0.05, 0.4).all()


def test_store_vrp_metrics_writes_one_row_per_fitted_date(store):
    written = store_vrp_metrics(store, "SPX", "svi", zscore_min_periods=2)
    assert [d.strftime("%Y-%m-%d") for d in written["date"]] == DAYS
    n = store.connection.execute("SELECT count(*) FROM vrp_metrics WHERE symbol = 'SPX'").fetchall()
    assert n[0][0] == 2
    with pytest.raises(DataSourceError, match="no fitted HESTON surfaces"):
        store_vrp_metrics(store, "SPX", "heston")


def test_other_models_store_their_parameters(store):
    fit_surfaces(store, DAYS[1], "ssvi", roots=["SPX"])
    fit_surfaces(store, DAYS[1], "sabr", roots=["SPX"])
    ssvi = load_fitted_surfaces(store, DAYS[1], "ssvi")
    sabr = load_fitted_surfaces(store, DAYS[1], "sabr")
    assert len(ssvi) == len(sabr) == 12  # the SPX root's expiries
    assert set(ssvi["params"].iloc[0]) == {"theta", "rho", "eta", "gamma"}
    assert set(sabr["params"].iloc[0]) == {"alpha", "beta", "rho", "nu"}
    assert (sabr["params"].map(lambda p: p["beta"]) == 0.5).all()
    assert sabr["svi_a"].isna().all() and ssvi["svi_a"].notna().all()
    assert float(sabr["rmse"].median()) < 1.0
    # the SVI rows of that date were not touched by the other models
    assert len(load_fitted_surfaces(store, DAYS[1], "svi")) > 12


def test_user_errors_name_what_is_wrong(store, chain_store_2019, monkeypatch):
    with pytest.raises(DataSourceError, match="no SPX quotes on 2019-01-02"):
        fit_surfaces(store, "2019-01-02")
    with pytest.raises(DataSourceError, match="opened read-only"):
        fit_surfaces(chain_store_2019, DAYS[0])
    with pytest.raises(ValueError, match="unknown surface model 'gvv'"):
        fit_surfaces(store, DAYS[0], "gvv")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "pricing.sabr" else real(name)
    )
    with pytest.raises(ModelNotAvailableError, match="'sabr' is not available"):
        fit_surfaces(store, DAYS[0], "sabr")
    with pytest.raises(ValueError, match="min_points must be >= 5"):
        SurfaceFitConfig(min_points=3)


def test_parity_analytics_makes_call_and_put_vols_agree_on_long_expiries(store):
    """Put-call parity is model-free: with the regressed forward and discount factor the call
    and put of one strike have one implied vol. With the snapshot's zero rate they drift apart
    away from the money on a 2.5-year expiry (about 5 % of discount)."""
    from pricing.surface_fit import parity_analytics

    snap = store.snapshot("SPX", "2019-06-03")
    exp = pd.Timestamp("2021-12-17")

    def gap(table: pd.DataFrame) -> float:
        t = table[(pd.to_datetime(table["expiration"]) == exp) & (table["root"] == "SPX")]
        t = t[(t["bid"] > 0) & (np.abs(np.log(t["strike"] / t["forward"])) < 0.15)]
        pivot = t.pivot_table(index="strike", columns="right", values="implied_vol")
        return float((pivot["C"] - pivot["P"]).abs().median())

    plain, parity = gap(snap.with_implied_vols()), gap(parity_analytics(snap))
    assert parity < 0.002 < plain  # under 0.2 vol points against more than 0.2
    table = parity_analytics(snap)
    long_disc = table.loc[pd.to_datetime(table["expiration"]) == exp, "discount"].iloc[0]
    assert 0.93 < long_disc < 0.97  # about 2 % a year for 2.5 years (2019 rates)
    surf = fit_snapshot(snap, analytics=parity_analytics)
    assert surf.fitted["passes_no_arbitrage"].astype(bool).all()
