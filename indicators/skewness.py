"""Rolling sample skewness of returns (the adjusted Fisher-Pearson coefficient).

Three faces, as in :mod:`indicators.realized_vol`: the numba kernels
:func:`rolling_skewness_nb` / :func:`rolling_skewness_2d_nb`, the Python API
:func:`rolling_skewness` and the vectorbt indicator :data:`RealizedSkewness` (every window of
a grid over many return columns in one ``run`` call).

Definition (``n = window``, returns ``r_{t-n+1} .. r_t``; unitless)::

    m_k = (1/n) sum (r - rbar)^k,   g1 = m_3 / m_2^{3/2},   G1 = g1 sqrt(n (n-1)) / (n - 2)

``G1`` is :func:`scipy.stats.skew` with ``bias=False`` (Joanes and Gill 1998, "Comparing
measures of sample skewness and kurtosis", *The Statistician* 47(1), 183-189, eq. for ``G_1``);
as scipy, a window whose variance is zero to floating precision
(``m_2 <= (1e-15 * rbar)^2``) gives NaN. A NaN inside the window gives NaN (never skipped). The
value at ``t`` reads returns up to ``t`` only: which returns are "known at ``t``" (e.g. the
previous session's close-to-close return) is the caller's alignment.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

__all__ = [
    "RealizedSkewness",
    "rolling_skewness",
    "rolling_skewness_2d_nb",
    "rolling_skewness_nb",
]

_NAN = np.nan
_RESOLUTION = 1e-15  # numpy.finfo(float64).resolution, scipy.stats.skew's zero-variance test


def _check_window(window: object) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 3:
        raise ValueError(f"window must be an integer >= 3 returns, got {window!r}")
    return int(window)


@njit(cache=True)
def rolling_skewness_nb(r: np.ndarray, window: int) -> np.ndarray:
    """Bias-corrected sample skewness ``G1`` of ``r[t-window+1 .. t]``.

    Parameters
    ----------
    r : np.ndarray
        1-D float64 returns (e.g. natural-log returns), shape ``(n,)``.
    window : int
        Returns per estimate (>= 3).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, unitless; NaN for ``t < window - 1``, a NaN in the window or a flat
        window (module docstring).

    Raises
    ------
    ValueError
        ``window < 3``.
    """
    if window < 3:
        raise ValueError("window must be >= 3")
    n = r.shape[0]
    out = np.full(n, _NAN)
    corr = math.sqrt(window * (window - 1.0)) / (window - 2.0)
    for t in range(window - 1, n):
        s = 0.0
        bad = False
        for j in range(t - window + 1, t + 1):
            if math.isnan(r[j]):
                bad = True
                break
            s += r[j]
        if bad:
            continue
        mean = s / window
        m2 = 0.0
        m3 = 0.0
        for j in range(t - window + 1, t + 1):
            d = r[j] - mean
            m2 += d * d
            m3 += d * d * d
        m2 /= window
        m3 /= window
        if m2 <= (_RESOLUTION * mean) ** 2:
            continue
        out[t] = corr * m3 / m2**1.5
    return out


@njit(cache=True)
def rolling_skewness_2d_nb(r: np.ndarray, window: int) -> np.ndarray:
    """Column-wise :func:`rolling_skewness_nb`.

    Parameters
    ----------
    r : np.ndarray
        2-D float64 returns, shape ``(n, n_cols)``.
    window : int
        Returns per estimate (>= 3).

    Returns
    -------
    np.ndarray
        Shape ``(n, n_cols)``.

    Raises
    ------
    ValueError
        ``window < 3``.
    """
    out = np.empty(r.shape, dtype=np.float64)
    for j in range(r.shape[1]):
        out[:, j] = rolling_skewness_nb(np.ascontiguousarray(r[:, j]), window)
    return out


def rolling_skewness(returns: pd.Series, window: int) -> pd.Series:
    """Rolling bias-corrected sample skewness of a return series.

    Parameters
    ----------
    returns : pandas.Series
        Returns (unitless, e.g. log returns), shape ``(n,)``.
    window : int
        Returns per estimate (>= 3).

    Returns
    -------
    pandas.Series
        Unitless skewness aligned to ``returns`` (:func:`rolling_skewness_nb`).

    Raises
    ------
    TypeError
        ``returns`` not a Series.
    ValueError
        ``window < 3``.
    """
    if not isinstance(returns, pd.Series):
        raise TypeError(f"returns must be a pandas Series, got {type(returns).__name__}")
    w = _check_window(window)
    r = np.ascontiguousarray(returns.to_numpy(dtype=np.float64, na_value=np.nan))
    return pd.Series(rolling_skewness_nb(r, w), index=returns.index, name=f"skew_{w}")


def _skew_apply(returns: np.ndarray, window: int) -> np.ndarray:
    return rolling_skewness_2d_nb(np.asarray(returns, dtype=np.float64), _check_window(window))


RealizedSkewness = vbt.IndicatorFactory(
    class_name="RealizedSkewness",
    short_name="rskew",
    input_names=["returns"],
    param_names=["window"],
    output_names=["skewness"],
).from_apply_func(_skew_apply, window=63)
RealizedSkewness.__doc__ = """vectorbt indicator: rolling bias-corrected sample skewness.

``RealizedSkewness.run(returns, window=[21, 63, ...])`` computes every window over every return
column in one call (columns ``(rskew_window, <input column>)`` of ``.skewness``); values
identical to :func:`rolling_skewness` (:func:`scipy.stats.skew` with ``bias=False``)."""
