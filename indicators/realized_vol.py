"""Range-based and close-to-close realized-volatility estimators.

One numba implementation, three faces:

* numba kernels (``*_nb``): :func:`daily_variance_nb` (one-bar variance),
  :func:`bar_terms_nb` (per-bar log terms, computed once), :func:`realized_vol_from_terms_nb`
  (rolling windows over them), :func:`realized_vol_1d_nb` (both, one series) and the
  column-wise ``*_2d_nb`` versions used by vectorbt;
* the Python API :func:`realized_vol` / :func:`daily_variance` on an OHLC ``DataFrame``;
* the vectorbt indicator :data:`RealizedVol` (a whole parameter grid in one ``run`` call);
* the backtrader indicator :class:`RealizedVolIndicator`.

Conventions
-----------
* The value at bar ``t`` uses bars ``t-window+1 .. t`` inclusive; ``close_to_close`` and
  ``yang_zhang`` also use the close of bar ``t-window`` (they need ``window + 1`` bars).
  Bars before that are NaN. Nothing after bar ``t`` is ever read.
* Prices are used as given (no dividend adjustment); all returns are natural-log returns.
* Annualization: ``vol = sqrt(252 * variance_per_day)``, decimal (0.20 means 20 %).
* Any NaN price inside a window makes that bar's value NaN (NaNs are not skipped).

References
----------
.. [1] Parkinson, M. (1980). "The Extreme Value Method for Estimating the Variance of the
   Rate of Return". *Journal of Business* 53(1), 61-65.
.. [2] Garman, M. B. and Klass, M. J. (1980). "On the Estimation of Security Price
   Volatilities from Historical Data". *Journal of Business* 53(1), 67-78.
.. [3] Rogers, L. C. G. and Satchell, S. E. (1991). "Estimating Variance from High, Low and
   Closing Prices". *Annals of Applied Probability* 1(4), 504-512.
.. [4] Yang, D. and Zhang, Q. (2000). "Drift-Independent Volatility Estimation Based on
   High, Low, Open, and Close Prices". *Journal of Business* 73(3), 477-491.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import backtrader as bt
import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

__all__ = [
    "CLOSE_TO_CLOSE",
    "ESTIMATORS",
    "GARMAN_KLASS",
    "PARKINSON",
    "ROGERS_SATCHELL",
    "TRADING_DAYS",
    "YANG_ZHANG",
    "Estimator",
    "RealizedVol",
    "RealizedVolIndicator",
    "bar_terms_2d_nb",
    "bar_terms_nb",
    "daily_variance",
    "daily_variance_nb",
    "estimator_id",
    "realized_vol",
    "realized_vol_1d_nb",
    "realized_vol_2d_nb",
    "realized_vol_from_terms_2d_nb",
    "realized_vol_from_terms_nb",
]

#: Trading days per year used for annualization.
TRADING_DAYS: int = 252

#: The realized-variance estimator names as a type (every strategy parameter naming an
#: estimator, ``rv_estimator``, has this type), in the order of their integer ids used by the
#: numba kernels.
Estimator = Literal["close_to_close", "parkinson", "garman_klass", "rogers_satchell", "yang_zhang"]

#: Estimator names, in the order of their integer ids used by the numba kernels.
ESTIMATORS: tuple[str, ...] = get_args(Estimator)

CLOSE_TO_CLOSE: int = 0
PARKINSON: int = 1
GARMAN_KLASS: int = 2
ROGERS_SATCHELL: int = 3
YANG_ZHANG: int = 4

#: Estimators with a one-bar variance form (``daily_variance``).
DAILY_ESTIMATORS: tuple[str, ...] = ESTIMATORS[:4]

#: Columns each estimator reads.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "close_to_close": ("close",),
    "parkinson": ("high", "low"),
    "garman_klass": ("open", "high", "low", "close"),
    "rogers_satchell": ("open", "high", "low", "close"),
    "yang_zhang": ("open", "high", "low", "close"),
}

_LN2 = math.log(2.0)
_PARKINSON_FACTOR = 1.0 / (4.0 * _LN2)  # 1 / (4 ln 2): Parkinson (1980) range estimator
_GK_FACTOR = 2.0 * _LN2 - 1.0  # (2 ln 2 - 1), Garman & Klass (1980) sigma_5 practical form
_NAN = np.nan


# --------------------------------------------------------------------------------------
# Validation helpers (shared with indicators.har)
# --------------------------------------------------------------------------------------


def estimator_id(estimator: str) -> int:
    """Map an estimator name to the integer id used by the numba kernels.

    Parameters
    ----------
    estimator : str
        One of :data:`ESTIMATORS`.

    Returns
    -------
    int
        Position of ``estimator`` in :data:`ESTIMATORS`.

    Raises
    ------
    ValueError
        If ``estimator`` is not one of :data:`ESTIMATORS`.
    """
    if isinstance(estimator, str) and estimator in ESTIMATORS:
        return ESTIMATORS.index(estimator)
    raise ValueError(f"unknown estimator {estimator!r}; allowed values: {', '.join(ESTIMATORS)}")


def _daily_estimator_id(estimator: str) -> int:
    est = estimator_id(estimator)
    if est == YANG_ZHANG:
        raise ValueError(
            "estimator 'yang_zhang' has no one-bar variance form (it needs sample variances "
            f"over a window); allowed values: {', '.join(DAILY_ESTIMATORS)}"
        )
    return est


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_window(window: object) -> int:
    return _check_int("window", window, 2)


def _ohlc_arrays(
    ohlc: pd.DataFrame, columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return float64 (open, high, low, close) arrays; columns not in ``columns`` are NaN."""
    if not isinstance(ohlc, pd.DataFrame):
        raise TypeError(f"ohlc must be a pandas DataFrame, got {type(ohlc).__name__}")
    for col in columns:
        if col not in ohlc.columns:
            raise ValueError(
                f"ohlc is missing column {col!r} (required: {', '.join(columns)}; "
                f"got: {', '.join(map(str, ohlc.columns))})"
            )
    n = len(ohlc)
    out = []
    for col in ("open", "high", "low", "close"):
        if col in columns:
            arr = ohlc[col].to_numpy(dtype=np.float64, na_value=np.nan)
            out.append(np.ascontiguousarray(arr))
        else:
            out.append(np.full(n, np.nan))
    return out[0], out[1], out[2], out[3]


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _bar_variance_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    i: int,
    estimator_id: int,
) -> float:
    """One-bar variance estimate at index ``i`` (not annualized)."""
    if estimator_id == CLOSE_TO_CLOSE:
        if i < 1:
            return _NAN
        r = np.log(close[i] / close[i - 1])
        return r * r
    if estimator_id == PARKINSON:
        hl = np.log(high[i] / low[i])
        return _PARKINSON_FACTOR * hl * hl
    if estimator_id == GARMAN_KLASS:
        hl = np.log(high[i] / low[i])
        co = np.log(close[i] / open_[i])
        return 0.5 * hl * hl - _GK_FACTOR * co * co
    if estimator_id == ROGERS_SATCHELL:
        return np.log(high[i] / close[i]) * np.log(high[i] / open_[i]) + np.log(
            low[i] / close[i]
        ) * np.log(low[i] / open_[i])
    return _NAN


@njit(cache=True)
def daily_variance_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    estimator_id: int,
) -> np.ndarray:
    """Per-bar (one-day) variance of log returns, not annualized.

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        1-D float64 price arrays of equal length ``n``.
    estimator_id : int
        0 close_to_close (squared log close-to-close return, NaN at index 0),
        1 parkinson, 2 garman_klass, 3 rogers_satchell.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, per-day variance (decimal squared log return).

    Raises
    ------
    ValueError
        For yang_zhang (4), which has no one-bar form, or an unknown id.

    References
    ----------
    Parkinson (1980): ``ln(H/L)^2 / (4 ln 2)``; Garman & Klass (1980), practical form of the
    best analytic estimator sigma_5: ``0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2``;
    Rogers & Satchell (1991): ``ln(H/C) ln(H/O) + ln(L/C) ln(L/O)``.
    """
    if estimator_id < CLOSE_TO_CLOSE or estimator_id > ROGERS_SATCHELL:
        raise ValueError("estimator_id has no one-bar variance form (allowed 0..3)")
    n = close.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = _bar_variance_nb(open_, high, low, close, i, estimator_id)
    return out


@njit(cache=True)
def bar_terms_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    estimator_id: int,
) -> np.ndarray:
    """Per-bar inputs of the rolling estimators (computed once, reused for every window).

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        1-D float64 price arrays of equal length ``n``.
    estimator_id : int
        0 close_to_close, 1 parkinson, 2 garman_klass, 3 rogers_satchell, 4 yang_zhang.

    Returns
    -------
    np.ndarray
        Shape ``(3, n)``. close_to_close: row 0 = ``ln(C_t / C_{t-1})`` (NaN at 0).
        parkinson / garman_klass / rogers_satchell: row 0 = one-bar variance.
        yang_zhang: row 0 = overnight ``ln(O_t / C_{t-1})`` (NaN at 0), row 1 =
        ``ln(C_t / O_t)``, row 2 = Rogers-Satchell one-bar term. Unused rows are NaN.

    Raises
    ------
    ValueError
        If ``estimator_id`` is unknown.
    """
    if estimator_id < CLOSE_TO_CLOSE or estimator_id > YANG_ZHANG:
        raise ValueError("unknown estimator_id (allowed 0..4)")
    n = close.shape[0]
    terms = np.full((3, n), _NAN)
    if estimator_id == CLOSE_TO_CLOSE:
        for i in range(1, n):
            terms[0, i] = np.log(close[i] / close[i - 1])
    elif estimator_id == YANG_ZHANG:
        for i in range(n):
            if i >= 1:
                terms[0, i] = np.log(open_[i] / close[i - 1])
            terms[1, i] = np.log(close[i] / open_[i])
            terms[2, i] = _bar_variance_nb(open_, high, low, close, i, ROGERS_SATCHELL)
    else:
        for i in range(n):
            terms[0, i] = _bar_variance_nb(open_, high, low, close, i, estimator_id)
    return terms


@njit(cache=True)
def _rolling_sum_nb(x: np.ndarray, window: int, first: int) -> np.ndarray:
    """``out[t] = x[t-window+1] + ... + x[t]`` for ``t >= first`` (NaN before).

    Summed in index order for every ``t`` (bit-identical to a plain loop over the window and
    independent of data outside it); the loop over ``t`` is innermost, over non-negative
    offsets of slices (no wraparound checks), so LLVM vectorizes it across ``t``.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    if first >= n:
        return out
    out[first:] = 0.0
    m = n - first
    acc = out[first:]
    for k in range(window):
        xs = x[first + k - window + 1 :]  # xs[u] = x[t - window + 1 + k] with t = first + u
        for u in range(m):
            acc[u] += xs[u]
    return out


@njit(cache=True)
def _rolling_sample_var_nb(x: np.ndarray, window: int, first: int) -> np.ndarray:
    """Two-pass sample variance (ddof=1) of ``x[t-window+1 .. t]`` for ``t >= first``."""
    n = x.shape[0]
    mean = _rolling_sum_nb(x, window, first) / window
    out = np.full(n, _NAN)
    if first >= n:
        return out
    out[first:] = 0.0
    m = n - first
    acc = out[first:]
    mu = mean[first:]
    for k in range(window):
        xs = x[first + k - window + 1 :]
        for u in range(m):
            d = xs[u] - mu[u]
            acc[u] += d * d
    return out / (window - 1)


@njit(cache=True)
def realized_vol_from_terms_nb(terms: np.ndarray, window: int, estimator_id: int) -> np.ndarray:
    """Rolling annualized vol from the per-bar terms of :func:`bar_terms_nb`.

    Parameters
    ----------
    terms : np.ndarray
        Shape ``(3, n)`` from :func:`bar_terms_nb` with the same ``estimator_id``.
    window : int
        Window length in bars (>= 2).
    estimator_id : int
        Estimator id (0..4).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, ``sqrt(252 * variance_per_day)``; see :func:`realized_vol_1d_nb`.

    Raises
    ------
    ValueError
        If ``window < 2`` or ``estimator_id`` is unknown.
    """
    if window < 2:
        raise ValueError("window must be >= 2")
    if estimator_id < CLOSE_TO_CLOSE or estimator_id > YANG_ZHANG:
        raise ValueError("unknown estimator_id (allowed 0..4)")
    if estimator_id == CLOSE_TO_CLOSE:
        var = _rolling_sample_var_nb(terms[0], window, window)
    elif estimator_id == YANG_ZHANG:
        # Yang & Zhang (2000): V = V_O + k V_C + (1 - k) V_RS, minimum-variance k
        k = 0.34 / (1.34 + (window + 1.0) / (window - 1.0))
        var_o = _rolling_sample_var_nb(terms[0], window, window)
        var_c = _rolling_sample_var_nb(terms[1], window, window)
        var_rs = _rolling_sum_nb(terms[2], window, window) / window
        var = var_o + k * var_c + (1.0 - k) * var_rs
    else:
        var = _rolling_sum_nb(terms[0], window, window - 1) / window
    return np.sqrt(TRADING_DAYS * var)


@njit(cache=True)
def realized_vol_1d_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    window: int,
    estimator_id: int,
) -> np.ndarray:
    """Rolling annualized realized volatility of one price series.

    Each window is summed directly in index order (O(n * window), no running sums), so the
    value at ``t`` depends only on the bars of its own window and is bit-identical whatever
    the data before or after it (the backtrader ``next()`` face relies on this).

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        1-D float64 price arrays of equal length ``n``. Columns an estimator does not use
        may hold anything.
    window : int
        Number of daily bars (>= 2). close_to_close uses ``window`` returns and
        yang_zhang ``window`` overnight returns, so both read ``window + 1`` bars.
    estimator_id : int
        0 close_to_close, 1 parkinson, 2 garman_klass, 3 rogers_satchell, 4 yang_zhang.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, annualized decimal volatility ``sqrt(252 * variance_per_day)``;
        NaN before the first full window and wherever the window holds a NaN.

    Raises
    ------
    ValueError
        If ``window < 2`` or ``estimator_id`` is unknown.

    References
    ----------
    Formulas as in :func:`realized_vol`: Parkinson (1980); Garman & Klass (1980) sigma_5
    practical form; Rogers & Satchell (1991); Yang & Zhang (2000) minimum-variance ``k``.
    """
    if window < 2:
        raise ValueError("window must be >= 2")
    terms = bar_terms_nb(open_, high, low, close, estimator_id)
    return realized_vol_from_terms_nb(terms, window, estimator_id)


@njit(cache=True)
def bar_terms_2d_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    estimator_id: int,
) -> np.ndarray:
    """Column-wise :func:`bar_terms_nb`.

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        2-D float64 arrays of shape ``(n_bars, n_cols)``.
    estimator_id : int
        Estimator id (0..4).

    Returns
    -------
    np.ndarray
        Shape ``(n_cols, 3, n_bars)``.

    Raises
    ------
    ValueError
        If ``estimator_id`` is unknown.
    """
    n, m = close.shape
    out = np.empty((m, 3, n), dtype=np.float64)
    for j in range(m):
        out[j] = bar_terms_nb(
            np.ascontiguousarray(open_[:, j]),
            np.ascontiguousarray(high[:, j]),
            np.ascontiguousarray(low[:, j]),
            np.ascontiguousarray(close[:, j]),
            estimator_id,
        )
    return out


@njit(cache=True)
def realized_vol_from_terms_2d_nb(terms: np.ndarray, window: int, estimator_id: int) -> np.ndarray:
    """Column-wise :func:`realized_vol_from_terms_nb`.

    Parameters
    ----------
    terms : np.ndarray
        Shape ``(n_cols, 3, n_bars)`` from :func:`bar_terms_2d_nb`.
    window : int
        Window length in bars (>= 2).
    estimator_id : int
        Estimator id (0..4).

    Returns
    -------
    np.ndarray
        Shape ``(n_bars, n_cols)``, annualized decimal volatility.

    Raises
    ------
    ValueError
        If ``window < 2`` or ``estimator_id`` is unknown.
    """
    m, _, n = terms.shape
    out = np.empty((n, m), dtype=np.float64)
    for j in range(m):
        out[:, j] = realized_vol_from_terms_nb(terms[j], window, estimator_id)
    return out


@njit(cache=True)
def realized_vol_2d_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    window: int,
    estimator_id: int,
) -> np.ndarray:
    """Column-wise :func:`realized_vol_1d_nb` for 2-D inputs (vectorbt layout).

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        2-D float64 arrays of shape ``(n_bars, n_cols)``.
    window : int
        Window length in bars (>= 2).
    estimator_id : int
        Estimator id, see :func:`realized_vol_1d_nb`.

    Returns
    -------
    np.ndarray
        Shape ``(n_bars, n_cols)``, annualized decimal volatility.

    Raises
    ------
    ValueError
        As :func:`realized_vol_1d_nb`.
    """
    if window < 2:
        raise ValueError("window must be >= 2")
    terms = bar_terms_2d_nb(open_, high, low, close, estimator_id)
    return realized_vol_from_terms_2d_nb(terms, window, estimator_id)


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def daily_variance(ohlc: pd.DataFrame, estimator: str = "rogers_satchell") -> pd.Series:
    """One-bar variance of log returns for every bar (not annualized).

    Parameters
    ----------
    ohlc : pd.DataFrame
        Daily bars with lowercase columns ``open``, ``high``, ``low``, ``close`` (only the
        columns the estimator reads are required), shape ``(n, >=1)``.
    estimator : str, default "rogers_satchell"
        ``close_to_close`` (squared log close-to-close return; NaN on the first bar),
        ``parkinson``, ``garman_klass`` or ``rogers_satchell``.

    Returns
    -------
    pd.Series
        Per-day variance (decimal squared log return), aligned to ``ohlc.index``, named
        ``var_<estimator>``. ``sqrt(252 * daily_variance)`` is an annualized daily vol.

    Raises
    ------
    ValueError
        Unknown estimator, ``yang_zhang`` (no one-bar form) or a missing column.
    TypeError
        If ``ohlc`` is not a DataFrame.

    References
    ----------
    Parkinson (1980), J. Business 53(1) 61-65: ``ln(H/L)^2 / (4 ln 2)``.
    Garman & Klass (1980), J. Business 53(1) 67-78, practical form of the best analytic
    estimator sigma_5: ``0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2``.
    Rogers & Satchell (1991), Ann. Appl. Probab. 1(4) 504-512:
    ``ln(H/C) ln(H/O) + ln(L/C) ln(L/O)``.
    """
    est = _daily_estimator_id(estimator)
    o, h, lo, c = _ohlc_arrays(ohlc, REQUIRED_COLUMNS[estimator])
    return pd.Series(daily_variance_nb(o, h, lo, c, est), index=ohlc.index, name=f"var_{estimator}")


def realized_vol(
    ohlc: pd.DataFrame, estimator: str = "rogers_satchell", window: int = 21
) -> pd.Series:
    """Rolling annualized realized volatility from daily OHLC bars.

    Estimators (``n = window``, logs natural, per-day variance then
    ``vol = sqrt(252 * sigma^2)``):

    * ``close_to_close``: sample variance (ddof=1, demeaned) of the ``n`` log returns
      ``ln(C_t / C_{t-1})``.
    * ``parkinson`` (Parkinson 1980): ``1 / (4 n ln 2) * sum ln(H/L)^2``.
    * ``garman_klass`` (Garman & Klass 1980, best analytic sigma_5, practical form):
      ``1/n * sum [0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2]``.
    * ``rogers_satchell`` (Rogers & Satchell 1991):
      ``1/n * sum [ln(H/C) ln(H/O) + ln(L/C) ln(L/O)]``.
    * ``yang_zhang`` (Yang & Zhang 2000): ``sigma_o^2 + k sigma_c^2 + (1-k)
      sigma_rs^2`` with ``k = 0.34 / (1.34 + (n+1)/(n-1))``, ``sigma_o^2`` the sample
      variance of overnight ``ln(O_t / C_{t-1})``, ``sigma_c^2`` that of ``ln(C_t / O_t)``
      and ``sigma_rs^2`` the Rogers-Satchell mean, all over the same ``n`` bars.

    Parameters
    ----------
    ohlc : pd.DataFrame
        Daily bars, lowercase columns ``open``, ``high``, ``low``, ``close`` (only those the
        estimator reads are required), shape ``(n_bars, >=1)``.
    estimator : str, default "rogers_satchell"
        One of :data:`ESTIMATORS`.
    window : int, default 21
        Number of bars (>= 2). The value at bar ``t`` uses bars ``t-window+1 .. t``;
        close_to_close and yang_zhang also use the close of bar ``t-window``.

    Returns
    -------
    pd.Series
        Annualized decimal volatility aligned to ``ohlc.index``, named
        ``rv_<estimator>_<window>``; NaN before the first full window or where the window
        contains a NaN.

    Raises
    ------
    ValueError
        Unknown estimator, ``window < 2`` or a missing column.
    TypeError
        If ``ohlc`` is not a DataFrame.

    References
    ----------
    .. [1] Parkinson, M. (1980). The Extreme Value Method for Estimating the Variance of the
       Rate of Return. J. Business 53(1), 61-65 (range estimator, ``1/(4 ln 2)`` factor).
    .. [2] Garman, M. B. and Klass, M. J. (1980). On the Estimation of Security Price
       Volatilities from Historical Data. J. Business 53(1), 67-78 (practical form of the
       best analytic scale-invariant estimator sigma_5).
    .. [3] Rogers, L. C. G. and Satchell, S. E. (1991). Estimating Variance from High, Low
       and Closing Prices. Ann. Appl. Probab. 1(4), 504-512 (drift-independent estimator).
    .. [4] Yang, D. and Zhang, Q. (2000). Drift-Independent Volatility Estimation Based on
       High, Low, Open, and Close Prices. J. Business 73(3), 477-491 (V = V_O + k V_C +
       (1-k) V_RS with the variance-minimising ``k = 0.34 / (1.34 + (n+1)/(n-1))``).
    """
    est = estimator_id(estimator)
    w = _check_window(window)
    o, h, lo, c = _ohlc_arrays(ohlc, REQUIRED_COLUMNS[estimator])
    vol = realized_vol_1d_nb(o, h, lo, c, w, est)
    return pd.Series(vol, index=ohlc.index, name=f"rv_{estimator}_{w}")


# --------------------------------------------------------------------------------------
# vectorbt face
# --------------------------------------------------------------------------------------


def _realized_vol_cache(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    windows: list[int],
    estimators: list[str],
) -> dict[str, np.ndarray]:
    """Cache function for :data:`RealizedVol`: per-bar terms once per distinct estimator.

    Validates the whole grid before any computation.
    """
    for w in windows:
        _check_window(w)
    arrays = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close)]
    cache: dict[str, np.ndarray] = {}
    for name in estimators:
        if name not in cache:
            cache[name] = bar_terms_2d_nb(*arrays, estimator_id(name))
    return cache


def _realized_vol_apply(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    window: int,
    estimator: str,
    cache: dict[str, np.ndarray],
) -> np.ndarray:
    """Apply function for :data:`RealizedVol`: one (window, estimator) pair, 2-D output."""
    return realized_vol_from_terms_2d_nb(cache[estimator], int(window), estimator_id(estimator))


RealizedVol = vbt.IndicatorFactory(
    class_name="RealizedVol",
    short_name="rv",
    input_names=["open", "high", "low", "close"],
    param_names=["window", "estimator"],
    output_names=["vol"],
).from_apply_func(
    _realized_vol_apply,
    cache_func=_realized_vol_cache,
    window=21,
    estimator="rogers_satchell",
)
RealizedVol.__doc__ = """vectorbt indicator: rolling annualized realized vol over a parameter grid.

``RealizedVol.run(open, high, low, close, window=21, estimator="rogers_satchell", ...)``
accepts lists for ``window`` and ``estimator`` (estimator **by name**, one of
``ESTIMATORS``); with ``param_product=True`` the whole Cartesian grid is computed in one
call and returned as columns ``(rv_window, rv_estimator, <input column>)`` of ``.vol``.
The per-bar terms are computed once per estimator (:func:`bar_terms_2d_nb`, vectorbt
``cache_func``) and each (window, estimator) pair by :func:`realized_vol_from_terms_2d_nb`;
values are identical to :func:`realized_vol`. Unknown estimator names or ``window < 2`` raise
ValueError.

References
----------
See :func:`realized_vol`.
"""


# --------------------------------------------------------------------------------------
# backtrader face
# --------------------------------------------------------------------------------------


def _line_tail(line: bt.LineBuffer, size: int) -> np.ndarray:
    return np.asarray(line.get(size=size), dtype=np.float64)


def _line_full(line: bt.LineBuffer, size: int) -> np.ndarray:
    return np.frombuffer(line.array, dtype=np.float64, count=size).copy()


class RealizedVolIndicator(bt.Indicator):
    """backtrader indicator: rolling annualized realized volatility (line ``vol``).

    Computed by the same numba kernel as :func:`realized_vol`: ``once()`` (vectorized
    ``runonce`` mode) runs :func:`realized_vol_1d_nb` over the preloaded data arrays and
    ``next()`` (event-driven/live mode) runs it over the trailing window only. The data
    feed must provide the standard ``open``, ``high``, ``low``, ``close`` lines.

    Parameters
    ----------
    estimator : str, default "rogers_satchell"
        One of :data:`ESTIMATORS`.
    window : int, default 21
        Window in bars (>= 2). Minimum period is ``window`` bars, ``window + 1`` for
        close_to_close and yang_zhang.

    Raises
    ------
    ValueError
        Unknown estimator or ``window < 2`` (raised when the indicator is created).

    References
    ----------
    See :func:`realized_vol`.
    """

    lines = ("vol",)
    params = (("estimator", "rogers_satchell"), ("window", 21))
    plotinfo = dict(subplot=True)  # noqa: RUF012 - backtrader class attribute

    def __init__(self) -> None:
        self._est = estimator_id(self.p.estimator)
        self._window = _check_window(self.p.window)
        extra = 1 if self._est in (CLOSE_TO_CLOSE, YANG_ZHANG) else 0
        self._need = self._window + extra
        self.addminperiod(self._need)

    def next(self) -> None:
        """Event-driven mode: kernel over the trailing ``window`` (+1) bars."""
        size = self._need
        vol = realized_vol_1d_nb(
            _line_tail(self.data.open, size),
            _line_tail(self.data.high, size),
            _line_tail(self.data.low, size),
            _line_tail(self.data.close, size),
            self._window,
            self._est,
        )
        self.lines.vol[0] = float(vol[-1])

    def once(self, start: int, end: int) -> None:
        """Vectorized (runonce) mode: kernel over the whole preloaded arrays."""
        size = self.data.buflen()
        vol = realized_vol_1d_nb(
            _line_full(self.data.open, size),
            _line_full(self.data.high, size),
            _line_full(self.data.low, size),
            _line_full(self.data.close, size),
            self._window,
            self._est,
        )
        dst = self.lines.vol.array
        for i in range(start, end):
            dst[i] = float(vol[i])
