"""Tests for indicators.features on real S&P 500 and VIX daily bars (shipped by arch).

Every feature is checked against an independent reference written here from the textbook formula
with plain pandas (rolling windows, ``ewm``) or against ``arch`` itself (GARCH); the look-ahead
test truncates the future and checks that no past value moves.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data_feeds import align_to_index, load_ohlc
from indicators import (
    REGIMES,
    Bollinger,
    GarchForecast,
    Macd,
    MarketRegime,
    Rsi,
    VolRank,
    bollinger,
    garch_forecast,
    macd,
    market_features,
    rsi,
)

ATOL = 1e-9


@pytest.fixture(scope="module")
def bars(sp500_ohlc: pd.DataFrame) -> pd.DataFrame:
    """S&P 500 2014-2018, the span of arch's VIX sample (calm 2017, the 2015 and 2018 spikes)."""
    return sp500_ohlc.loc["2014-01-01":"2018-12-31"]


@pytest.fixture(scope="module")
def vix(bars: pd.DataFrame) -> pd.Series:
    raw = load_ohlc("builtin:vix")
    aligned, _ = align_to_index(raw["close"], bars.index, max_fill=1, name="vix")
    assert aligned.notna().mean() > 0.99
    return aligned


@pytest.fixture(scope="module")
def features(bars: pd.DataFrame, vix: pd.Series) -> pd.DataFrame:
    return market_features(bars, vix, garch_window=500, garch_refit_every=63, garch_min_obs=250)


# --------------------------------------------------------------------------------------
# independent references (textbook formulas in plain pandas)
# --------------------------------------------------------------------------------------


def ref_rsi(close: pd.Series, n: int) -> pd.Series:
    """Wilder (1978): first averages = simple means of the first n gains/losses, then
    avg_t = (avg_{t-1} * (n - 1) + x_t) / n, RSI = 100 - 100 / (1 + avg_gain / avg_loss)."""
    d = close.diff()
    gain, loss = d.clip(lower=0.0), (-d).clip(lower=0.0)
    out = pd.Series(np.nan, index=close.index)
    g = gain.iloc[1 : n + 1].mean()
    lo = loss.iloc[1 : n + 1].mean()
    out.iloc[n] = 100.0 - 100.0 / (1.0 + g / lo)
    for i in range(n + 1, len(close)):
        g = (g * (n - 1) + gain.iloc[i]) / n
        lo = (lo * (n - 1) + loss.iloc[i]) / n
        out.iloc[i] = 100.0 - 100.0 / (1.0 + g / lo)
    return out


def ref_ema(x: pd.Series, span: int) -> pd.Series:
    """EMA alpha = 2 / (span + 1) seeded with the simple mean of the first span values, through
    pandas' own recursive ``ewm(adjust=False)``."""
    x = x.dropna()
    seeded = pd.concat([pd.Series([x.iloc[:span].mean()], index=[x.index[span - 1]]), x[span:]])
    return seeded.ewm(span=span, adjust=False).mean()


def ref_range_rank(x: pd.Series, n: int) -> pd.Series:
    lo, hi = x.rolling(n).min(), x.rolling(n).max()
    return (x - lo) / (hi - lo)


def ref_percentile(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n).apply(lambda w: float(np.sum(w[:-1] < w[-1])) / (n - 1), raw=True)


def ref_regime(vix: pd.Series, rank: pd.Series, hv_iv: pd.Series) -> pd.Series:
    """Design doc 001 section 4.3, first rule that holds, written with np.select."""
    conds = [
        (vix < 15) & (rank < 0.3),
        (vix > 25) | (rank > 0.8),
        (hv_iv > 0.9) & (rank > 0.5),
        (hv_iv < 0.6) & (rank < 0.5),
    ]
    codes = np.select(conds, [0.0, 1.0, 2.0, 3.0], default=4.0)
    codes[(vix.isna() | rank.isna() | hv_iv.isna()).to_numpy()] = -1.0
    return pd.Series(codes, index=vix.index)


# --------------------------------------------------------------------------------------
# technical features
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [14, 28])
def test_rsi_matches_wilder_reference(bars: pd.DataFrame, n: int) -> None:
    got = rsi(bars["close"], n)
    want = ref_rsi(bars["close"], n)
    assert got.iloc[:n].isna().all()
    np.testing.assert_allclose(got.iloc[n:], want.iloc[n:], rtol=0, atol=ATOL)
    assert got.between(0, 100).iloc[n:].all()


def test_rsi_hand_example() -> None:
    """Five closes, n = 2: changes +1, +1, -1, +2 -> avg gain 1, loss 0 at t=2 (RSI 100); then
    gain (1*1+0)/2 = 0.5, loss (0*1+1)/2 = 0.5 -> 50; then gain (0.5+2)/2 = 1.25, loss 0.25
    -> 100 - 100/6."""
    got = rsi(pd.Series([10.0, 11.0, 12.0, 11.0, 13.0]), 2).to_numpy()
    np.testing.assert_allclose(got[2:], [100.0, 50.0, 100.0 - 100.0 / 6.0], atol=1e-12)


def test_macd_matches_pandas_ewm(bars: pd.DataFrame) -> None:
    close = bars["close"]
    got = macd(close)
    line = ref_ema(close, 12) - ref_ema(close, 26)
    signal = ref_ema(line.dropna(), 9)
    np.testing.assert_allclose(got["macd"].dropna(), line.dropna(), atol=ATOL)
    np.testing.assert_allclose(got["macd_signal"].dropna(), signal, atol=ATOL)
    hist = (got["macd"] - got["macd_signal"]).dropna()
    np.testing.assert_allclose(got["macd_histogram"].dropna(), hist, atol=0)
    assert got["macd"].first_valid_index() == close.index[25]
    assert got["macd_signal"].first_valid_index() == close.index[25 + 8]


def test_bollinger_matches_pandas_rolling(bars: pd.DataFrame) -> None:
    close = bars["close"]
    got = bollinger(close, 20, 2.0)
    mid = close.rolling(20).mean()
    sd = close.rolling(20).std(ddof=0)  # Bollinger (2001): population standard deviation
    up, lo = mid + 2 * sd, mid - 2 * sd
    pd.testing.assert_series_equal(got["bb_middle"], mid, check_names=False, atol=ATOL)
    pd.testing.assert_series_equal(got["bb_upper"], up, check_names=False, atol=1e-8)
    pd.testing.assert_series_equal(got["bb_lower"], lo, check_names=False, atol=1e-8)
    pd.testing.assert_series_equal(got["bb_width"], (up - lo) / mid, check_names=False, atol=1e-10)
    pd.testing.assert_series_equal(
        got["bb_position"], (close - lo) / (up - lo), check_names=False, atol=1e-8
    )


def test_technical_set_matches_pandas(features: pd.DataFrame, bars: pd.DataFrame) -> None:
    c, h, lo = bars["close"], bars["high"], bars["low"]
    f = features
    for n in (20, 50, 200):
        sma = c.rolling(n).mean()
        np.testing.assert_allclose(f[f"sma_{n}"], sma, atol=1e-8, equal_nan=True)
        np.testing.assert_allclose(f[f"price_vs_sma{n}"], c / sma - 1, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(f["ema_12"].dropna(), ref_ema(c, 12), atol=ATOL)
    for n in (1, 5, 20, 60):
        np.testing.assert_allclose(f[f"returns_{n}d"], c.pct_change(n), atol=1e-14, equal_nan=True)
    hi52, lo52 = h.rolling(252).max(), lo.rolling(252).min()
    np.testing.assert_allclose(f["high_52w"], hi52, atol=0, equal_nan=True)
    np.testing.assert_allclose(f["dist_from_high"], (hi52 - c) / hi52, atol=1e-14, equal_nan=True)
    np.testing.assert_allclose(f["dist_from_low"], (c - lo52) / lo52, atol=1e-14, equal_nan=True)
    cross = (f["sma_20"] > f["sma_50"]).astype(float).where(f["sma_50"].notna())
    np.testing.assert_array_equal(f["sma_cross_20_50"], cross)


# --------------------------------------------------------------------------------------
# volatility features
# --------------------------------------------------------------------------------------


def test_volatility_set_matches_pandas(
    features: pd.DataFrame, bars: pd.DataFrame, vix: pd.Series
) -> None:
    f = features
    r = np.log(bars["close"]).diff()
    for n in (5, 10, 20, 60, 120):
        want = r.rolling(n).std(ddof=1) * math.sqrt(252)
        np.testing.assert_allclose(f[f"hv_{n}"], want, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(f["hv_iv_ratio"], f["hv_20"] / (vix / 100), equal_nan=True)
    np.testing.assert_allclose(f["vix_sma_10"], vix.rolling(10).mean(), atol=1e-10, equal_nan=True)
    np.testing.assert_allclose(f["vix_rank"], ref_range_rank(vix, 252), atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(f["vix_percentile"], ref_percentile(vix, 252), equal_nan=True)
    z = (vix - vix.rolling(60).mean()) / vix.rolling(60).std(ddof=1)
    np.testing.assert_allclose(f["vix_zscore"], z, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(f["vix_change_5d"], vix.diff(5), atol=1e-12, equal_nan=True)
    trend = vix.rolling(5).mean() - vix.rolling(20).mean()
    np.testing.assert_allclose(f["vol_trend"], trend, atol=1e-10, equal_nan=True)
    bucket = pd.cut(vix, [-np.inf, 15, 20, 25, np.inf], right=False, labels=False)
    np.testing.assert_array_equal(f["vol_regime"], bucket.astype(float))
    park = np.sqrt((np.log(bars["high"] / bars["low"]) ** 2).rolling(20).mean() / (4 * math.log(2)))
    np.testing.assert_allclose(f["parkinson_hv"], park * math.sqrt(252), atol=1e-12, equal_nan=True)
    assert f["vix_rank"].dropna().between(0, 1).all()


def test_garch_matches_arch_forecast_on_the_same_window(bars: pd.DataFrame) -> None:
    """Each refit block equals arch's own one-step forecasts with the parameters fitted on the
    same window (``fit(first_obs, last_obs)`` then ``forecast(start=...)``)."""
    from arch import arch_model

    close = bars["close"]
    window, refit, first = 500, 63, 250
    got = garch_forecast(close, fit_window=window, refit_every=refit, min_obs=first)
    assert got.iloc[:first].isna().all() and got.iloc[first:].notna().all()
    y = (100 * np.log(close).diff()).to_numpy()[1:]  # y[j] is the return of session j + 1
    model = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    for t_fit in (first, first + 5 * refit, first + 12 * refit):  # expanding, then rolling
        lo = max(1, t_fit - window + 1)  # returns of sessions lo..t_fit
        res = model.fit(first_obs=lo - 1, last_obs=t_fit, disp="off")
        end = min(t_fit + refit, len(close))
        fc = res.forecast(horizon=1, start=t_fit - 1, reindex=False).variance["h.1"].to_numpy()
        want = np.sqrt(252 * fc[: end - t_fit]) / 100
        np.testing.assert_allclose(got.iloc[t_fit:end], want, rtol=1e-9)
    fits = got.attrs["fits"]
    assert len(fits) == math.ceil((len(close) - first) / refit)
    assert fits["n_obs"].iloc[0] == first and fits["n_obs"].max() == window
    assert (fits["persistence"] <= 1 + 1e-9).all() and fits["converged"].all()


# --------------------------------------------------------------------------------------
# regime features
# --------------------------------------------------------------------------------------


def test_regime_matches_design_rules(features: pd.DataFrame, vix: pd.Series) -> None:
    f = features
    want = ref_regime(vix, f["vix_rank"], f["hv_iv_ratio"])
    np.testing.assert_array_equal(f["regime"], want)
    seen = set(f["regime"].unique())
    assert {0.0, 1.0, 3.0, 4.0} <= seen  # low_vol 2017, high_vol 2015/2018, ...
    onehot = f[[f"regime_{r}" for r in REGIMES]].dropna()
    assert (onehot.sum(axis=1) == 1).all()
    # days in regime: position inside each run of equal codes (pandas groupby on run ids)
    codes = f["regime"].where(f["regime"] >= 0)
    run = (codes != codes.shift()).cumsum()
    days = codes.groupby(run).cumcount() + 1
    np.testing.assert_array_equal(f["days_in_regime"], days.where(codes.notna()).astype(float))
    changed = (codes != codes.shift()).astype(float).rolling(5).max()  # any change in t-4..t
    ok = codes.rolling(6).count() == 6
    np.testing.assert_array_equal(f["regime_change_1w"][ok], changed[ok])


def test_trend_regime_and_flags(features: pd.DataFrame, bars: pd.DataFrame) -> None:
    f = features
    c = bars["close"]
    up = (c > f["sma_50"]) & (f["sma_50"] > f["sma_200"])
    down = (c < f["sma_50"]) & (f["sma_50"] < f["sma_200"])
    want = pd.Series(np.where(up, 1.0, np.where(down, -1.0, 0.0)), index=c.index)
    ok = f["sma_200"].notna()
    np.testing.assert_array_equal(f["trend_regime"][ok], want[ok])
    assert f["trend_regime"][~ok].isna().all()
    np.testing.assert_array_equal(
        f["vix_above_25"].dropna(), (f["vix"] > 25).astype(float)[f["vix"].notna()]
    )


# --------------------------------------------------------------------------------------
# look-ahead, vectorbt faces, errors
# --------------------------------------------------------------------------------------


def test_truncating_the_future_leaves_past_features_unchanged(
    bars: pd.DataFrame, vix: pd.Series, features: pd.DataFrame
) -> None:
    """Every column -- GARCH included -- at sessions <= T is the same with data ending at T."""
    for cut in (900, 1137):  # one inside a GARCH block, one elsewhere
        short = market_features(
            bars.iloc[: cut + 1],
            vix.iloc[: cut + 1],
            garch_window=500,
            garch_refit_every=63,
            garch_min_obs=250,
        )
        pd.testing.assert_frame_equal(short, features.iloc[: cut + 1], check_exact=True)


def test_changing_the_future_leaves_past_features_unchanged(
    bars: pd.DataFrame, vix: pd.Series, features: pd.DataFrame
) -> None:
    cut = 1000
    shocked = bars.copy()
    shocked.iloc[cut + 1 :, :4] *= 0.5  # a 50% crash after T, and the VIX doubles
    vix2 = vix.copy()
    vix2.iloc[cut + 1 :] *= 2
    f2 = market_features(shocked, vix2, garch_window=500, garch_refit_every=63, garch_min_obs=250)
    pd.testing.assert_frame_equal(f2.iloc[: cut + 1], features.iloc[: cut + 1], check_exact=True)
    assert not np.allclose(f2["hv_20"].iloc[cut + 5], features["hv_20"].iloc[cut + 5])


def test_vectorbt_faces_match_the_python_api(
    bars: pd.DataFrame, vix: pd.Series, features: pd.DataFrame
) -> None:
    close = bars["close"]
    r = Rsi.run(close, window=[14, 28]).rsi
    np.testing.assert_array_equal(r.iloc[:, 0], features["rsi_14"])
    np.testing.assert_array_equal(r.iloc[:, 1], features["rsi_28"])
    m = Macd.run(close)
    np.testing.assert_array_equal(m.histogram, features["macd_histogram"])
    b = Bollinger.run(close, window=20, n_std=2.0)
    np.testing.assert_array_equal(b.position, features["bb_position"])
    v = VolRank.run(vix, rank_window=252, zscore_window=60)
    np.testing.assert_array_equal(v.rank, features["vix_rank"])
    np.testing.assert_array_equal(v.percentile, features["vix_percentile"])
    reg = MarketRegime.run(vix, features["vix_rank"], features["hv_iv_ratio"])
    np.testing.assert_array_equal(reg.regime, features["regime"])
    np.testing.assert_array_equal(reg.days_in_regime, features["days_in_regime"])
    g = GarchForecast.run(close.iloc[:700], fit_window=500, refit_every=63, min_obs=250).vol
    np.testing.assert_array_equal(g, features["garch_forecast"].iloc[:700])


def test_bad_inputs_raise_clear_errors(bars: pd.DataFrame, vix: pd.Series) -> None:
    bad = bars.copy()
    bad.iloc[10, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(ValueError, match=r"ohlc\['close'\]: row .* expected a finite price"):
        market_features(bad, vix)
    with pytest.raises(ValueError, match="vix must be aligned"):
        market_features(bars, vix.iloc[1:])
    with pytest.raises(ValueError, match="missing column"):
        market_features(bars.drop(columns="high"), vix)
    with pytest.raises(ValueError, match="fit_window"):
        garch_forecast(bars["close"], fit_window=50)
    with pytest.raises(ValueError, match=r"fast .* must be < slow"):
        macd(bars["close"], 26, 12)
