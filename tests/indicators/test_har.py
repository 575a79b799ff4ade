"""Tests for indicators.har (HAR-RV, Corsi 2009) against arch's HARX OLS fit."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from arch.univariate import HARX
from arch.univariate.base import ARCHModelResult

from indicators import (
    HarForecast,
    HarForecastIndicator,
    daily_variance,
    har_fit,
    har_forecast,
    har_forecast_from_rv,
)


def daily_rv(df: pd.DataFrame, estimator: str = "rogers_satchell") -> pd.Series:
    """rv_t = sqrt(252 * one-bar variance), from the paper formulas (independent of ours)."""
    o, h, lo, c = (np.log(df[k]) for k in ("open", "high", "low", "close"))
    if estimator == "rogers_satchell":
        var = (h - c) * (h - o) + (lo - c) * (lo - o)
    elif estimator == "parkinson":
        var = (h - lo) ** 2 / (4 * np.log(2))
    elif estimator == "garman_klass":
        var = 0.5 * (h - lo) ** 2 - (2 * np.log(2) - 1) * (c - o) ** 2
    elif estimator == "close_to_close":
        var = c.diff() ** 2
    else:
        raise AssertionError(estimator)
    return np.sqrt(252 * var)


def arch_fit(y: np.ndarray) -> ARCHModelResult:
    """arch's HARX OLS: y_t on const, mean(y_{t-1}), mean(y_{t-5..t-1}), mean(y_{t-22..t-1})."""
    return HARX(y, lags=[1, 5, 22], rescale=False).fit(disp="off")


def arch_forecast(y: np.ndarray) -> float:
    """arch's one-step forecast from the end of ``y`` (fit on all of ``y``)."""
    res = arch_fit(y)
    return float(res.forecast(horizon=1, reindex=False).mean.iloc[-1, 0])


@pytest.fixture(scope="module")
def rv(sp500_ohlc: pd.DataFrame) -> pd.Series:
    return daily_rv(sp500_ohlc)


@pytest.fixture(scope="module")
def short_bars(sp500_ohlc: pd.DataFrame) -> pd.DataFrame:
    df = sp500_ohlc.iloc[1500:1900].copy()
    if df.index.tz is not None:
        df.index = df.index.tz_localize(None)
    return df


# --------------------------------------------------------------------------------------
# coefficients and forecasts vs arch
# --------------------------------------------------------------------------------------


def test_rv_input_matches_daily_variance(sp500_ohlc: pd.DataFrame, rv: pd.Series) -> None:
    ours = np.sqrt(252 * daily_variance(sp500_ohlc, "rogers_satchell"))
    np.testing.assert_allclose(ours.to_numpy(), rv.to_numpy(), rtol=1e-9, atol=0)


def test_har_fit_matches_arch_full_sample(rv: pd.Series) -> None:
    fit = har_fit(rv)
    res = arch_fit(rv.to_numpy())
    ours = [fit.const, fit.beta_d, fit.beta_w, fit.beta_m]
    np.testing.assert_allclose(ours, res.params.iloc[:4].to_numpy(), rtol=1e-8, atol=1e-10)
    assert fit.nobs == res.nobs == len(rv) - 22
    assert fit.rsquared == pytest.approx(res.rsquared, rel=1e-8)
    # persistence: the three slopes are positive and sum below one on S&P 500 data
    assert 0 < fit.beta_d + fit.beta_w + fit.beta_m < 1


def test_har_fit_skips_nan_samples(sp500_ohlc: pd.DataFrame) -> None:
    """close_to_close rv is NaN on bar 0: the fit uses the same sample as arch on rv[1:]."""
    rv_cc = daily_rv(sp500_ohlc.iloc[:2000], "close_to_close")
    assert np.isnan(rv_cc.iloc[0])
    fit = har_fit(rv_cc)
    res = arch_fit(rv_cc.iloc[1:].to_numpy())
    ours = [fit.const, fit.beta_d, fit.beta_w, fit.beta_m]
    np.testing.assert_allclose(ours, res.params.iloc[:4].to_numpy(), rtol=1e-8, atol=1e-10)
    assert fit.nobs == res.nobs


@pytest.mark.parametrize("t", [800, 2500, 4800])
def test_rolling_forecast_matches_arch(rv: pd.Series, t: int) -> None:
    fit_window = 500
    fc = har_forecast_from_rv(rv, fit_window=fit_window, min_obs=250)
    y = rv.to_numpy()[t - fit_window - 22 : t]  # arch holds back 22: targets t-500..t-1
    assert fc.iloc[t] == pytest.approx(arch_forecast(y), rel=1e-9)


@pytest.mark.parametrize("t", [300, 3000])
def test_expanding_forecast_matches_arch(rv: pd.Series, t: int) -> None:
    fc = har_forecast_from_rv(rv, fit_window=0, min_obs=250)
    assert fc.iloc[t] == pytest.approx(arch_forecast(rv.to_numpy()[:t]), rel=1e-9)


def test_refit_every_uses_last_refit_coefficients(rv: pd.Series) -> None:
    fit_window, every, t = 300, 5, 1003  # last refit at 1000
    fc = har_forecast_from_rv(rv, fit_window=fit_window, min_obs=250, refit_every=every)
    t0 = t - t % every
    res = arch_fit(rv.to_numpy()[t0 - fit_window - 22 : t0])  # fit with targets < t0
    x = rv.to_numpy()
    regs = [1.0, x[t - 1], x[t - 5 : t].mean(), x[t - 22 : t].mean()]
    expected = float(np.dot(res.params.iloc[:4].to_numpy(), regs))
    assert fc.iloc[t] == pytest.approx(expected, rel=1e-9)
    daily = har_forecast_from_rv(rv, fit_window=fit_window, min_obs=250)
    assert fc.iloc[t] != daily.iloc[t]


def test_har_forecast_from_ohlc(sp500_ohlc: pd.DataFrame, rv: pd.Series) -> None:
    df = sp500_ohlc.iloc[:1500]
    fc = har_forecast(df, "rogers_satchell", fit_window=400, min_obs=250)
    assert fc.name == "har_rogers_satchell_400"
    assert fc.index.equals(df.index)
    t = 1200
    y = rv.to_numpy()[t - 400 - 22 : t]
    assert fc.iloc[t] == pytest.approx(arch_forecast(y), rel=1e-9)


@pytest.mark.parametrize(("estimator", "extra"), [("rogers_satchell", 0), ("close_to_close", 1)])
def test_warm_up(sp500_ohlc: pd.DataFrame, estimator: str, extra: int) -> None:
    min_obs = 100
    fc = har_forecast(sp500_ohlc.iloc[:600], estimator, fit_window=200, min_obs=min_obs)
    first = 22 + min_obs + extra  # min_obs samples with targets >= 22 (+1 for the NaN rv_0)
    assert np.isnan(fc.to_numpy()[:first]).all()
    assert np.isfinite(fc.to_numpy()[first:]).all()


def test_nonpositive_forecast_is_nan() -> None:
    """A spike after an alternating regime makes the fitted model predict < 0: NaN."""
    rng = np.random.default_rng(7)
    n = 200
    x = np.where(np.arange(n) % 2 == 0, 1.0, 0.1) + 0.01 * rng.standard_normal(n)
    x[150] = 5.0  # spike: the forecast for 151 (made after 150) goes negative
    rv = pd.Series(x)
    fc = har_forecast_from_rv(rv, fit_window=100, min_obs=50)
    # independent lstsq on targets 51..150, regressors at 150
    t = 151
    rows = [[1.0, x[s - 1], x[s - 5 : s].mean(), x[s - 22 : s].mean()] for s in range(51, t)]
    beta = np.linalg.lstsq(np.array(rows), x[51:t], rcond=None)[0]
    raw = beta @ [1.0, x[t - 1], x[t - 5 : t].mean(), x[t - 22 : t].mean()]
    assert raw < 0
    assert np.isnan(fc.iloc[t])
    assert np.isfinite(fc.iloc[t - 1]) and fc.iloc[t - 1] > 0


# --------------------------------------------------------------------------------------
# faces agree
# --------------------------------------------------------------------------------------


def test_vectorbt_grid(short_bars: pd.DataFrame) -> None:
    res = HarForecast.run(
        short_bars["open"], short_bars["high"], short_bars["low"], short_bars["close"],
        fit_window=[120, 0], estimator=["parkinson", "rogers_satchell"], min_obs=60,
        param_product=True,
    )  # fmt: skip
    out = res.forecast
    assert out.shape == (len(short_bars), 4)
    assert list(out.columns.names) == ["har_fit_window", "har_estimator", "har_min_obs"]
    for fw in (120, 0):
        for est in ("parkinson", "rogers_satchell"):
            api = har_forecast(short_bars, est, fit_window=fw, min_obs=60)
            np.testing.assert_array_equal(out[(fw, est, 60)].to_numpy(), api.to_numpy())
    # independent check of one value against arch
    t = 300
    y = daily_rv(short_bars, "parkinson").to_numpy()[t - 120 - 22 : t]
    assert out[(120, "parkinson", 60)].iloc[t] == pytest.approx(arch_forecast(y), rel=1e-9)


class _Collect(bt.Strategy):
    params = (("specs", ()),)

    def __init__(self) -> None:
        self.inds = [HarForecastIndicator(self.data, **spec) for spec in self.p.specs]


@pytest.mark.parametrize("runonce", [True, False], ids=["once", "next"])
def test_backtrader_face_matches(short_bars: pd.DataFrame, runonce: bool) -> None:
    specs = [
        dict(estimator="rogers_satchell", fit_window=120, min_obs=60, refit_every=1),
        dict(estimator="close_to_close", fit_window=0, min_obs=60, refit_every=1),
        dict(estimator="garman_klass", fit_window=100, min_obs=80, refit_every=7),
    ]
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(bt.feeds.PandasData(dataname=short_bars))
    cerebro.addstrategy(_Collect, specs=tuple(specs))
    strat = cerebro.run()[0]
    for spec, ind in zip(specs, strat.inds, strict=True):
        line = np.array(ind.lines.forecast.array[: len(short_bars)])
        api = har_forecast(short_bars, **spec).to_numpy()
        np.testing.assert_array_equal(line, api)
        assert np.isfinite(line[-100:]).all()
    # independent check of one value against arch
    t = 350
    y = daily_rv(short_bars).to_numpy()[t - 120 - 22 : t]
    line0 = np.array(strat.inds[0].lines.forecast.array)
    assert line0[t] == pytest.approx(arch_forecast(y), rel=1e-9)


# --------------------------------------------------------------------------------------
# look-ahead
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fit_window", [150, 0])
def test_truncation_invariance(sp500_ohlc: pd.DataFrame, fit_window: int) -> None:
    df = sp500_ohlc.iloc[:700]
    full = har_forecast(df, fit_window=fit_window, min_obs=100, refit_every=3).to_numpy()
    for cut in (200, 450, 699):
        part = har_forecast(df.iloc[: cut + 1], fit_window=fit_window, min_obs=100, refit_every=3)
        np.testing.assert_array_equal(part.to_numpy(), full[: cut + 1])


@pytest.mark.parametrize("estimator", ["close_to_close", "parkinson", "rogers_satchell"])
def test_forecast_at_t_ignores_bar_t(sp500_ohlc: pd.DataFrame, estimator: str) -> None:
    df = sp500_ohlc.iloc[:700]
    t = 500
    base = har_forecast(df, estimator, fit_window=200, min_obs=100).to_numpy()
    bumped = df.copy()
    pos = bumped.index[t]
    bumped.loc[pos, "high"] *= 1.02
    bumped.loc[pos, "low"] *= 0.98
    bumped.loc[pos, "close"] *= 1.01
    got = har_forecast(bumped, estimator, fit_window=200, min_obs=100).to_numpy()
    np.testing.assert_array_equal(got[: t + 1], base[: t + 1])  # including t itself
    assert got[t + 1] != base[t + 1]  # the forecast made after bar t sees it


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def test_validation(sp500_ohlc: pd.DataFrame, rv: pd.Series) -> None:
    df = sp500_ohlc.iloc[:300]
    with pytest.raises(ValueError, match=r"yang_zhang.*no one-bar"):
        har_forecast(df, "yang_zhang")
    with pytest.raises(ValueError, match=r"'rs'.*allowed values"):
        har_forecast(df, "rs")
    with pytest.raises(
        ValueError, match=r"fit_window \(100\) must be 0 \(expanding\) or >= min_obs"
    ):
        har_forecast_from_rv(rv, fit_window=100, min_obs=250)
    with pytest.raises(ValueError, match="min_obs must be an integer >= 5"):
        har_forecast_from_rv(rv, fit_window=0, min_obs=3)
    with pytest.raises(ValueError, match="refit_every must be an integer >= 1"):
        har_forecast_from_rv(rv, refit_every=0)
    with pytest.raises(ValueError, match="fit_window must be an integer >= 0"):
        har_forecast_from_rv(rv, fit_window=-1)
    with pytest.raises(ValueError, match="missing column 'open'"):
        har_forecast(df.drop(columns="open"), "rogers_satchell")
    with pytest.raises(TypeError, match="Series"):
        har_forecast_from_rv(rv.to_numpy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 5 complete samples"):
        har_fit(rv.iloc[:25])
    with pytest.raises(ValueError, match=r"'foo'.*allowed values"):
        HarForecast.run(df["open"], df["high"], df["low"], df["close"], estimator="foo")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df.tz_localize(None) if df.index.tz else df))
    cerebro.addstrategy(_Collect, specs=(dict(estimator="yang_zhang"),))
    with pytest.raises(ValueError, match="yang_zhang"):
        cerebro.run()
