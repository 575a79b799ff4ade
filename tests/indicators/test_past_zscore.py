"""``PastZScore`` (vectorbt face of ``past_zscore_nb``) against pandas rolling on the past."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indicators.vol_signals import PastZScore

N = 200


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    rng = np.random.default_rng(5)
    out = rng.normal(size=(N, 2))
    out[50, 0] = np.nan
    return out


def test_grid_matches_pandas_rolling_of_the_strict_past(x: np.ndarray) -> None:
    res = PastZScore.run(x, window=[5, 21, 63], min_periods=2).zscore.to_numpy()
    for i, w in enumerate((5, 21, 63)):
        for j in range(2):
            s = pd.Series(x[:, j])
            past = s.shift(1).rolling(w, min_periods=w)
            ref = (s - past.mean()) / past.std(ddof=1)
            np.testing.assert_allclose(res[:, 2 * i + j], ref, rtol=1e-10, equal_nan=True)


def test_truncation_leaves_the_past_unchanged(x: np.ndarray) -> None:
    full = PastZScore.run(x, window=21, min_periods=2).zscore.to_numpy()
    cut = PastZScore.run(x[:120], window=21, min_periods=2).zscore.to_numpy()
    np.testing.assert_array_equal(cut, full[:120])


def test_bad_window_is_refused(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match="window"):
        PastZScore.run(x, window=1, min_periods=2)
