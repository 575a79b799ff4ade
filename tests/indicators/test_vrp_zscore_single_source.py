"""One VRP z-score: ``vrp_frame`` uses ``indicators.vol_signals.past_zscore_nb``.

Old vs new on real data (issue 12, point 6): the plain-Python expanding z-score that
``vrp_frame`` carried before (copied below as the reference, two-pass mean/std of the strictly
earlier finite values) against the frame it now produces, on SPX daily bars and VIX as the
30-day ATM implied vol (2021-2026 rows of ``index/spx_vix_spy_qqq_daily.csv``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_feeds import load_ohlc
from experiments.surface_jobs import vrp_frame
from indicators.vol_signals import vrp_signals

INDEX_FILE = "index/spx_vix_spy_qqq_daily.csv"


def old_expanding_zscore(v: np.ndarray, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """The loop ``vrp_frame`` used before the single source (reference)."""
    z = np.full(v.size, np.nan)
    n_used = np.zeros(v.size, dtype=np.int64)
    for i in range(v.size):
        past = v[:i][np.isfinite(v[:i])]
        n_used[i] = past.size
        if past.size >= min_periods and np.isfinite(v[i]):
            sd = past.std(ddof=1)
            z[i] = (v[i] - past.mean()) / sd if sd > 0 else np.nan
    return z, n_used


@pytest.mark.shared_data
@pytest.mark.parametrize("min_periods", [2, 20, 60])
def test_vrp_frame_zscore_equals_the_old_loop_on_real_data(shared_data, min_periods):
    spx = load_ohlc(str(shared_data / INDEX_FILE), root="SPX")
    vix = load_ohlc(str(shared_data / INDEX_FILE), root="VIX")
    days = pd.DatetimeIndex(vix.index)[::3][:400]  # every third session: gaps like a store's
    dates = days.tz_convert("America/New_York").tz_localize(None).normalize() if days.tz else days
    atm = vix["close"].reindex(days).to_numpy(dtype=float) / 100.0
    # two expiries with the same ATM vol: the 30-day interpolated vol is the VIX level
    surfaces = pd.DataFrame(
        {
            "quote_date": np.repeat(dates.date, 2),
            "tte_years": np.tile([20 / 365.0, 40 / 365.0], len(dates)),
            "atm_vol": np.repeat(atm, 2),
        }
    )
    surfaces.loc[surfaces.index[40:46], "atm_vol"] = np.nan  # a gap: rows without a fit
    out = vrp_frame(surfaces, spx, zscore_min_periods=min_periods)
    v = out["vrp_30d"].to_numpy(dtype=float)
    assert len(out) >= 390 and np.isfinite(v).sum() > 300
    ref_z, ref_n = old_expanding_zscore(v, min_periods)
    got = out["vrp_zscore"].to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref_z))
    np.testing.assert_allclose(got, ref_z, rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(out["zscore_n"].to_numpy(), ref_n)
    # the same numbers as the indicator the strategies use (vrp_signals, expanding)
    implied = pd.Series(out["implied_vol_30d"].to_numpy(dtype=float))
    realized = pd.Series(out["realized_vol_30d"].to_numpy(dtype=float))
    sig = vrp_signals(implied, realized, window=0, min_periods=min_periods)
    finite = np.isfinite(v)
    np.testing.assert_allclose(
        sig["vrp_zscore"].to_numpy()[finite], got[finite], rtol=1e-12, equal_nan=True
    )
