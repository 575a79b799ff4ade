"""Overnight drift: a GBM fitted on past overnight returns and today's standardized move.

Used by ``directional_overlay``. For a geometric Brownian motion the overnight log return is a
Gaussian increment, whose maximum-likelihood drift and volatility per night are the sample mean
and standard deviation of the observed increments (Campbell, Lo and MacKinlay 1997, *The
Econometrics of Financial Markets*, sec. 9.3.2; we use ``ddof = 1``). At session ``t``::

    mu_t = mean(night[t-window .. t-1]),   s_t = std(night[t-window .. t-1], ddof=1)
    z_t  = (move_t - mu_t) / s_t

``night`` is ``ln(open_s / close_{s-1})`` of the daily file; ``move_t`` is the overnight return
observed at ``t`` (e.g. from the opening auction, known at 09:31), on the same index. Only nights
**strictly before** ``t`` enter ``mu_t`` and ``s_t``. Returns are decimal log returns per night.

Three faces: the numba kernel :func:`overnight_drift_nb`, the Python API
:func:`overnight_drift` and the vectorbt indicator :data:`OvernightDrift` (every window of a
grid in one ``run`` call).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

from indicators.vol_signals import past_mean_sd_nb

__all__ = ["OvernightDrift", "overnight_drift", "overnight_drift_nb", "overnight_returns"]

_NAN = np.nan


def _check_window(window: object) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 2:
        raise ValueError(f"drift window must be an integer >= 2 nights, got {window!r}")
    return int(window)


@njit(cache=True)
def overnight_drift_nb(
    night: np.ndarray, move: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Past-only GBM drift and volatility of ``night`` and the z-score of ``move``.

    Parameters
    ----------
    night : np.ndarray
        1-D float64 overnight log returns per session, shape ``(n,)``.
    move : np.ndarray
        1-D float64 overnight move to standardize, same index, shape ``(n,)``.
    window : int
        Past nights in the fit (>= 2).

    Returns
    -------
    mu, sd, z : np.ndarray
        Shape ``(n,)`` each: mean and ``ddof = 1`` standard deviation of ``night[t-window ..
        t-1]`` (decimal per night) and ``(move_t - mu_t) / sd_t`` (unitless). NaN for
        ``t < window`` or a NaN night in the window; ``z`` also NaN for a NaN move and
        ``+-inf`` for a zero ``sd`` and a non-zero deviation (IEEE division).

    Raises
    ------
    ValueError
        ``window < 2`` or different lengths.
    """
    if window < 2:
        raise ValueError("window must be >= 2")
    n = night.shape[0]
    if move.shape[0] != n:
        raise ValueError("night and move must have the same length")
    mu = np.full(n, _NAN)
    sd = np.full(n, _NAN)
    z = np.full(n, _NAN)
    for t in range(window, n):
        m, v = past_mean_sd_nb(night, t, window)
        if math.isnan(m):
            continue
        mu[t] = m
        sd[t] = v
        d = move[t] - m
        if math.isnan(d):
            continue
        if v > 0.0:
            z[t] = d / v
        elif d != 0.0:
            z[t] = math.copysign(math.inf, d)  # IEEE division by a zero sd
    return mu, sd, z


def overnight_returns(daily: pd.DataFrame) -> pd.Series:
    """``ln(open_t / close_{t-1})`` of a daily frame (decimal; NaN on the first session).

    Parameters
    ----------
    daily : pandas.DataFrame
        Daily ``open`` and ``close`` (index points), session index, ascending.

    Returns
    -------
    pandas.Series
        Overnight log returns on ``daily``'s index.

    Raises
    ------
    KeyError
        No ``open`` or ``close`` column.
    """
    return np.log(daily["open"].astype(float) / daily["close"].astype(float).shift(1))


def overnight_drift(night: pd.Series, move: pd.Series, window: int) -> pd.DataFrame:
    """Past-only GBM drift of ``night`` and the standardized ``move`` (module docstring).

    Parameters
    ----------
    night : pandas.Series
        Overnight log returns per session (:func:`overnight_returns`), shape ``(n,)``.
    move : pandas.Series
        Overnight move to standardize on the same index (NaN where none).
    window : int
        Past nights in the fit (>= 2).

    Returns
    -------
    pandas.DataFrame
        ``drift_mu``, ``drift_sd`` (decimal per night), ``drift_z`` (unitless), indexed like
        ``night`` (:func:`overnight_drift_nb`).

    Raises
    ------
    ValueError
        ``window < 2`` or different indexes.
    """
    w = _check_window(window)
    if not night.index.equals(move.index):
        raise ValueError("night and move must share one index (reindex move first)")
    mu, sd, z = overnight_drift_nb(_values(night), _values(move), w)
    return pd.DataFrame({"drift_mu": mu, "drift_sd": sd, "drift_z": z}, index=night.index)


def _values(x: pd.Series) -> np.ndarray:
    return np.ascontiguousarray(x.to_numpy(dtype=np.float64, na_value=np.nan))


def _drift_apply(
    night: np.ndarray, move: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = _check_window(window)
    night = np.asarray(night, dtype=np.float64)
    move = np.asarray(move, dtype=np.float64)
    outs = [np.empty(night.shape, dtype=np.float64) for _ in range(3)]
    for j in range(night.shape[1]):
        res = overnight_drift_nb(
            np.ascontiguousarray(night[:, j]), np.ascontiguousarray(move[:, j]), w
        )
        for k in range(3):
            outs[k][:, j] = res[k]
    return outs[0], outs[1], outs[2]


OvernightDrift = vbt.IndicatorFactory(
    class_name="OvernightDrift",
    short_name="drift",
    input_names=["night", "move"],
    param_names=["window"],
    output_names=["mu", "sd", "z"],
).from_apply_func(_drift_apply, window=60)
OvernightDrift.__doc__ = """vectorbt indicator: past-only overnight GBM drift, the move z-score.

``OvernightDrift.run(night, move, window=[20, 60, 120])`` computes every window in one call
(columns ``(drift_window, <input column>)``), values identical to :func:`overnight_drift`."""
