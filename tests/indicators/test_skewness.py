"""Rolling sample skewness (``indicators.skewness``) against pandas rolling + scipy.stats.skew."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import skew

from indicators.skewness import RealizedSkewness, rolling_skewness

N = 300


@pytest.fixture(scope="module")
def returns() -> pd.Series:
    rng = np.random.default_rng(3)
    r = rng.standard_t(4, size=N) * 0.01
    r[[0, 150]] = np.nan
    return pd.Series(r, index=pd.bdate_range("2019-01-01", periods=N))


@pytest.mark.parametrize("window", [3, 21, 63])
def test_matches_pandas_rolling_scipy_skew(returns: pd.Series, window: int) -> None:
    ref = returns.rolling(window, min_periods=window).apply(lambda a: skew(a, bias=False), raw=True)
    got = rolling_skewness(returns, window)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert got.notna().sum() == ref.notna().sum() > 0


def test_real_sp500_returns_match_scipy(sp500_ohlc: pd.DataFrame) -> None:
    r = np.log(sp500_ohlc["close"]).diff().iloc[:1500]
    ref = r.rolling(63, min_periods=63).apply(lambda a: skew(a, bias=False), raw=True)
    np.testing.assert_allclose(rolling_skewness(r, 63), ref, rtol=1e-10, equal_nan=True)


def test_flat_window_is_nan_like_scipy() -> None:
    r = pd.Series([0.01] * 10 + [0.02, -0.01, 0.03])
    got = rolling_skewness(r, 5)
    assert got.iloc[4:10].isna().all()
    assert np.isnan(skew(np.full(5, 0.01), bias=False))
    assert np.isfinite(got.iloc[12])


def test_truncation_leaves_the_past_unchanged(returns: pd.Series) -> None:
    full = rolling_skewness(returns, 21)
    for t in (40, 151, 250):
        cut = rolling_skewness(returns.iloc[: t + 1], 21)
        pd.testing.assert_series_equal(cut, full.iloc[: t + 1], check_exact=True)


def test_grid_call_equals_per_window_calls(returns: pd.Series) -> None:
    frame = pd.DataFrame({"a": returns, "b": returns.shift(1)})
    res = RealizedSkewness.run(frame, window=[5, 21, 63], param_product=True).skewness
    for w in (5, 21, 63):
        for c in ("a", "b"):
            np.testing.assert_array_equal(
                res[(w, c)].to_numpy(), rolling_skewness(frame[c], w).to_numpy()
            )


def test_bad_window_is_refused(returns: pd.Series) -> None:
    with pytest.raises(ValueError, match="window"):
        rolling_skewness(returns, 2)
    with pytest.raises(ValueError, match="window"):
        RealizedSkewness.run(returns, window=2)
    with pytest.raises(TypeError, match="Series"):
        rolling_skewness(returns.to_numpy(), 5)  # type: ignore[arg-type]
