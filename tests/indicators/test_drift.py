"""Overnight drift (``indicators.drift``) against pandas rolling mean/std of the strict past."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indicators.drift import OvernightDrift, overnight_drift, overnight_drift_nb, overnight_returns


@pytest.fixture(scope="module")
def daily(sp500_ohlc: pd.DataFrame) -> pd.DataFrame:
    return sp500_ohlc[["open", "close"]].iloc[:1200]


def _reference(night: pd.Series, move: pd.Series, window: int) -> pd.DataFrame:
    """numpy mean / std(ddof=1) of each window of the strict past (two-pass, as the kernel)."""
    x = night.to_numpy()
    mu = np.full(len(x), np.nan)
    sd = np.full(len(x), np.nan)
    for t in range(window, len(x)):
        past = x[t - window : t]
        if np.isfinite(past).all():
            mu[t], sd[t] = past.mean(), past.std(ddof=1)
    ref = pd.DataFrame({"drift_mu": mu, "drift_sd": sd}, index=night.index)
    ref["drift_z"] = (move - ref["drift_mu"]) / ref["drift_sd"]
    return ref


@pytest.mark.parametrize("window", [2, 20, 60, 250])
def test_matches_pandas_rolling_on_real_sp500(daily: pd.DataFrame, window: int) -> None:
    night = np.log(daily["open"] / daily["close"].shift(1))  # independent of overnight_returns
    pd.testing.assert_series_equal(overnight_returns(daily), night, check_names=False)
    rng = np.random.default_rng(2)
    move = night + pd.Series(rng.normal(0, 1e-3, len(night)), index=night.index)
    move.iloc[[300, 301]] = np.nan
    got = overnight_drift(night, move, window)
    ref = _reference(night, move, window)
    for col in ref:
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-10, atol=1e-15, equal_nan=True)
    assert got["drift_z"].notna().sum() > len(night) - window - 5
    # pandas' online rolling mean/std (the code this replaced) agrees up to its update error
    past = night.shift(1).rolling(window, min_periods=window)
    np.testing.assert_allclose(got["drift_mu"], past.mean(), atol=1e-11, equal_nan=True)
    np.testing.assert_allclose(got["drift_sd"] ** 2, past.var(ddof=1), atol=1e-18, equal_nan=True)


def test_truncation_leaves_the_past_unchanged(daily: pd.DataFrame) -> None:
    night = overnight_returns(daily)
    full = overnight_drift(night, night, 60)
    for t in (61, 500, 1100):
        cut = overnight_drift(night.iloc[: t + 1], night.iloc[: t + 1], 60)
        pd.testing.assert_frame_equal(cut, full.iloc[: t + 1], check_exact=True)
    # the night of t itself is not in its own fit
    bumped = night.copy()
    bumped.iloc[700] += 0.05
    moved = overnight_drift(bumped, bumped, 60)
    assert moved["drift_mu"].iloc[700] == full["drift_mu"].iloc[700]
    assert moved["drift_mu"].iloc[701] != full["drift_mu"].iloc[701]


def test_grid_call_equals_per_window_calls(daily: pd.DataFrame) -> None:
    night = overnight_returns(daily).to_numpy()
    res = OvernightDrift.run(night, night[::-1].copy(), window=[10, 60, 120])
    for i, w in enumerate((10, 60, 120)):
        one = overnight_drift_nb(night, night[::-1].copy(), w)
        for k, name in enumerate(("mu", "sd", "z")):
            np.testing.assert_array_equal(getattr(res, name).to_numpy()[:, i], one[k])


def test_bad_input_is_refused(daily: pd.DataFrame) -> None:
    night = overnight_returns(daily)
    with pytest.raises(ValueError, match="window"):
        overnight_drift(night, night, 1)
    with pytest.raises(ValueError, match="index"):
        overnight_drift(night, night.iloc[1:], 5)
    with pytest.raises(ValueError, match="window"):
        OvernightDrift.run(night, night, window=1)
