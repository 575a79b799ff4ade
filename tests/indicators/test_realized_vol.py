"""Tests for indicators.realized_vol on real S&P 500 daily bars.

References are independent pandas transcriptions of each paper's formula; the three faces
(Python API, vectorbt, backtrader) are checked against them and against each other.
"""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from indicators import (
    ESTIMATORS,
    RealizedVol,
    RealizedVolIndicator,
    daily_variance,
    realized_vol,
)

ATOL = 1e-12


# --------------------------------------------------------------------------------------
# independent references (transcriptions of the papers' formulas)
# --------------------------------------------------------------------------------------


def ref_variance(df: pd.DataFrame, estimator: str, n: int) -> pd.Series:
    """Per-day variance over a rolling window of n bars, written from the papers."""
    o, h, lo, c = df["open"], df["high"], df["low"], df["close"]
    if estimator == "close_to_close":
        r = np.log(c) - np.log(c.shift(1))
        return r.rolling(n).var(ddof=1)
    if estimator == "parkinson":
        # Parkinson (1980): sigma^2 = 1 / (4 n ln 2) * sum (ln H - ln L)^2
        return (np.log(h) - np.log(lo)).pow(2).rolling(n).sum() / (4.0 * n * math.log(2.0))
    if estimator == "garman_klass":
        # Garman & Klass (1980), practical sigma_5: 0.5 u^2 - (2 ln2 - 1) c^2
        u = np.log(h / lo)
        cc = np.log(c / o)
        return (0.5 * u**2 - (2.0 * math.log(2.0) - 1.0) * cc**2).rolling(n).mean()
    if estimator == "rogers_satchell":
        return rs_terms(df).rolling(n).mean()
    if estimator == "yang_zhang":
        overnight = np.log(o / c.shift(1))
        open_close = np.log(c / o)
        k = 0.34 / (1.34 + (n + 1) / (n - 1))
        return (
            overnight.rolling(n).var(ddof=1)
            + k * open_close.rolling(n).var(ddof=1)
            + (1 - k) * rs_terms(df).rolling(n).mean()
        )
    raise AssertionError(estimator)


def rs_terms(df: pd.DataFrame) -> pd.Series:
    """Rogers & Satchell (1991): u (u - c) + d (d - c) with u, d, c logs relative to open."""
    u = np.log(df["high"]) - np.log(df["open"])
    d = np.log(df["low"]) - np.log(df["open"])
    c = np.log(df["close"]) - np.log(df["open"])
    return u * (u - c) + d * (d - c)


def ref_vol(df: pd.DataFrame, estimator: str, n: int) -> np.ndarray:
    return np.sqrt(252.0 * ref_variance(df, estimator, n)).to_numpy()


def first_valid(estimator: str, window: int) -> int:
    return window if estimator in ("close_to_close", "yang_zhang") else window - 1


@pytest.fixture(scope="module")
def bars(sp500_ohlc: pd.DataFrame) -> pd.DataFrame:
    return sp500_ohlc


@pytest.fixture(scope="module")
def short_bars(sp500_ohlc: pd.DataFrame) -> pd.DataFrame:
    """A few hundred bars around the 2008 crisis, tz-naive (for backtrader)."""
    df = sp500_ohlc.loc["2008-06-01":"2009-09-30"].copy()
    if df.index.tz is not None:
        df.index = df.index.tz_localize(None)
    return df


# --------------------------------------------------------------------------------------
# values vs the papers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("window", [2, 5, 21, 63, 252])
def test_matches_paper_formula(bars: pd.DataFrame, estimator: str, window: int) -> None:
    got = realized_vol(bars, estimator, window)
    expected = ref_vol(bars, estimator, window)
    assert got.index.equals(bars.index)
    assert got.name == f"rv_{estimator}_{window}"
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=ATOL)
    # warm-up: exactly the first value that has a full window
    start = first_valid(estimator, window)
    assert np.isnan(got.to_numpy()[:start]).all()
    assert np.isfinite(got.to_numpy()[start:]).all()
    # sanity: S&P 500 annualized vol in a plausible range (decimal, not percent)
    assert 0.005 < got.median() < 0.5


@pytest.mark.parametrize("estimator", ESTIMATORS[:4])
def test_daily_variance_matches_formula(bars: pd.DataFrame, estimator: str) -> None:
    got = daily_variance(bars, estimator)
    if estimator == "close_to_close":
        # squared log close-to-close return (not demeaned)
        expected = np.log(bars["close"] / bars["close"].shift(1)) ** 2
    else:
        # the paper formula with a one-bar window (n = 1)
        expected = ref_variance(bars, estimator, 1)
    # per-day variance ~1e-4: 1e-15 absolute is far below 1e-12 in annualized vol
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-15)
    assert got.name == f"var_{estimator}"


def test_yang_zhang_k_and_window_edges(bars: pd.DataFrame) -> None:
    """With every bar's O == previous C and zero drift, YZ must combine the pieces with k."""
    df = bars.iloc[:400]
    n = 10
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    assert k == pytest.approx(0.34 / (1.34 + 11 / 9))
    got = realized_vol(df, "yang_zhang", n).to_numpy()
    rc = np.log(df["close"] / df["open"]).to_numpy()
    ro = np.log(df["open"].to_numpy()[1:] / df["close"].to_numpy()[:-1])
    rs = rs_terms(df).to_numpy()
    t = 250  # bars t-n+1..t inclusive
    var = (
        np.var(ro[t - n : t], ddof=1)  # ro[i-1] is the overnight return of bar i
        + k * np.var(rc[t - n + 1 : t + 1], ddof=1)
        + (1 - k) * np.mean(rs[t - n + 1 : t + 1])
    )
    assert got[t] == pytest.approx(math.sqrt(252 * var), abs=ATOL)


# --------------------------------------------------------------------------------------
# faces agree
# --------------------------------------------------------------------------------------


def test_vectorbt_grid_is_param_product(bars: pd.DataFrame) -> None:
    df = bars.iloc[:1500]
    windows = [5, 10, 21]
    ests = ["parkinson", "rogers_satchell"]
    res = RealizedVol.run(
        df["open"], df["high"], df["low"], df["close"],
        window=windows, estimator=ests, param_product=True,
    )  # fmt: skip
    vol = res.vol
    assert vol.shape == (len(df), 6)
    assert list(vol.columns.names) == ["rv_window", "rv_estimator"]
    assert list(vol.columns) == [(w, e) for w in windows for e in ests]
    for w in windows:
        for e in ests:
            col = vol[(w, e)].to_numpy()
            np.testing.assert_allclose(col, ref_vol(df, e, w), rtol=0, atol=ATOL)
            np.testing.assert_array_equal(col, realized_vol(df, e, w).to_numpy())


def test_vectorbt_all_estimators_one_call(bars: pd.DataFrame) -> None:
    df = bars.iloc[:800]
    res = RealizedVol.run(
        df["open"], df["high"], df["low"], df["close"],
        window=[5, 21], estimator=list(ESTIMATORS), param_product=True,
    )  # fmt: skip
    assert res.vol.shape[1] == 2 * len(ESTIMATORS)
    for e in ESTIMATORS:
        np.testing.assert_allclose(res.vol[(21, e)].to_numpy(), ref_vol(df, e, 21), atol=ATOL)


def test_vectorbt_multiple_columns(bars: pd.DataFrame) -> None:
    """Two input columns (two different 600-bar periods) are computed independently."""
    a = bars.iloc[:600].reset_index(drop=True)
    b = bars.iloc[3000:3600].reset_index(drop=True)
    frames = {k: pd.DataFrame({"a": a[k], "b": b[k]}) for k in ("open", "high", "low", "close")}
    res = RealizedVol.run(
        frames["open"], frames["high"], frames["low"], frames["close"],
        window=[10, 42], estimator=["garman_klass", "yang_zhang"], param_product=True,
    )  # fmt: skip
    assert res.vol.shape == (600, 8)
    for w in (10, 42):
        for e in ("garman_klass", "yang_zhang"):
            for name, src in (("a", a), ("b", b)):
                col = res.vol[(w, e, name)].to_numpy()
                np.testing.assert_allclose(col, ref_vol(src, e, w), rtol=0, atol=ATOL)


def test_vectorbt_default_params_single_series(bars: pd.DataFrame) -> None:
    df = bars.iloc[:300]
    res = RealizedVol.run(df["open"], df["high"], df["low"], df["close"])
    np.testing.assert_allclose(
        res.vol.to_numpy(), ref_vol(df, "rogers_satchell", 21), rtol=0, atol=ATOL
    )


class _Collect(bt.Strategy):
    params = (("specs", ()),)

    def __init__(self) -> None:
        self.inds = [
            RealizedVolIndicator(self.data, estimator=e, window=w) for e, w in self.p.specs
        ]


def run_backtrader(df: pd.DataFrame, specs: list[tuple[str, int]], runonce: bool) -> list:
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(_Collect, specs=tuple(specs))
    strat = cerebro.run()[0]
    return [np.array(ind.lines.vol.array[: len(df)]) for ind in strat.inds]


@pytest.mark.parametrize("runonce", [True, False], ids=["once", "next"])
def test_backtrader_face_matches(short_bars: pd.DataFrame, runonce: bool) -> None:
    specs = [(e, w) for e in ESTIMATORS for w in (5, 21)]
    lines = run_backtrader(short_bars, specs, runonce)
    res = RealizedVol.run(
        short_bars["open"], short_bars["high"], short_bars["low"], short_bars["close"],
        window=[5, 21], estimator=list(ESTIMATORS), param_product=True,
    )  # fmt: skip
    for (e, w), line in zip(specs, lines, strict=True):
        assert len(line) == len(short_bars)
        np.testing.assert_allclose(line, ref_vol(short_bars, e, w), rtol=0, atol=ATOL)
        api = realized_vol(short_bars, e, w).to_numpy()
        np.testing.assert_array_equal(line, api)
        np.testing.assert_array_equal(line, res.vol[(w, e)].to_numpy())
        start = first_valid(e, w)
        assert np.isnan(line[:start]).all() and np.isfinite(line[start:]).all()


def test_backtrader_minperiod(short_bars: pd.DataFrame) -> None:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=short_bars.iloc[:60]))
    specs = (("parkinson", 10), ("close_to_close", 10), ("yang_zhang", 10))
    cerebro.addstrategy(_Collect, specs=specs)
    strat = cerebro.run()[0]
    assert [ind._minperiod for ind in strat.inds] == [10, 11, 11]


# --------------------------------------------------------------------------------------
# look-ahead
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_truncation_invariance(bars: pd.DataFrame, estimator: str) -> None:
    df = bars.iloc[:1200]
    full = realized_vol(df, estimator, 21).to_numpy()
    for cut in (30, 500, 1000):
        part = realized_vol(df.iloc[: cut + 1], estimator, 21).to_numpy()
        np.testing.assert_array_equal(part, full[: cut + 1])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_perturbing_bar_t_changes_nothing_before_t(bars: pd.DataFrame, estimator: str) -> None:
    df = bars.iloc[:600]
    t, w = 400, 21
    base = realized_vol(df, estimator, w).to_numpy()
    bumped = df.copy()
    pos = bumped.index[t]
    bumped.loc[pos, "high"] *= 1.01
    bumped.loc[pos, "low"] *= 0.99
    bumped.loc[pos, "close"] *= 1.005
    got = realized_vol(bumped, estimator, w).to_numpy()
    np.testing.assert_array_equal(got[:t], base[:t])
    assert got[t] != base[t]  # bar t is inside its own window
    last = t + w - 1 if estimator not in ("close_to_close", "yang_zhang") else t + w
    assert got[last] != base[last]  # still in the window
    np.testing.assert_array_equal(got[last + 1 :], base[last + 1 :])  # dropped out


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_nan_in_window_gives_nan(bars: pd.DataFrame, estimator: str) -> None:
    df = bars.iloc[:300].copy()
    k, w = 150, 10
    df.iloc[k, df.columns.get_loc("high")] = np.nan
    df.iloc[k, df.columns.get_loc("close")] = np.nan
    got = realized_vol(df, estimator, w).to_numpy()
    extra = 1 if estimator in ("close_to_close", "yang_zhang") else 0
    assert np.isnan(got[k : k + w + extra]).all()
    assert np.isfinite(got[first_valid(estimator, w) : k]).all()
    assert np.isfinite(got[k + w + extra :]).all()
    np.testing.assert_allclose(got, ref_vol(df, estimator, w), rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def test_bad_estimator(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"'garmanklass'.*allowed values:.*rogers_satchell"):
        realized_vol(bars, "garmanklass")
    with pytest.raises(ValueError, match="'Parkinson'"):
        daily_variance(bars, "Parkinson")


@pytest.mark.parametrize("window", [1, 0, -5, 2.5, True, "21"])
def test_bad_window(bars: pd.DataFrame, window: object) -> None:
    with pytest.raises(ValueError, match=r"window must be an integer >= 2"):
        realized_vol(bars, "parkinson", window)  # type: ignore[arg-type]


def test_missing_column(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing column 'low'"):
        realized_vol(bars.drop(columns="low"), "parkinson", 21)
    with pytest.raises(ValueError, match=r"missing column 'open'"):
        realized_vol(bars.drop(columns="open"), "yang_zhang", 21)
    # close_to_close only needs the close
    out = realized_vol(bars[["close"]], "close_to_close", 21)
    np.testing.assert_allclose(out.to_numpy(), ref_vol(bars, "close_to_close", 21), atol=ATOL)


def test_not_a_dataframe(bars: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        realized_vol(bars["close"], "close_to_close")  # type: ignore[arg-type]


def test_yang_zhang_has_no_daily_form(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"yang_zhang.*no one-bar"):
        daily_variance(bars, "yang_zhang")


def test_vectorbt_validation(bars: pd.DataFrame) -> None:
    df = bars.iloc[:100]
    with pytest.raises(ValueError, match=r"'foo'.*allowed values"):
        RealizedVol.run(df["open"], df["high"], df["low"], df["close"], estimator="foo")
    with pytest.raises(ValueError, match="window must be"):
        RealizedVol.run(df["open"], df["high"], df["low"], df["close"], window=1)


def test_backtrader_validation(short_bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"'hl'.*allowed values"):
        run_backtrader(short_bars.iloc[:50], [("hl", 5)], runonce=True)
    with pytest.raises(ValueError, match="window must be"):
        run_backtrader(short_bars.iloc[:50], [("parkinson", 1)], runonce=True)
