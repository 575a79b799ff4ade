"""HAR-RV one-day-ahead realized-volatility forecast (Corsi 2009).

Model (volatility form, Corsi 2009, eqs. (8)-(9) with daily/weekly/monthly components)::

    rv_{t+1} = b0 + b_d rv_t + b_w rv_t^(w) + b_m rv_t^(m) + e_{t+1}

with ``rv_t^(w)`` the mean of ``rv_{t-4..t}`` (5 days) and ``rv_t^(m)`` the mean of
``rv_{t-21..t}`` (22 days). ``rv`` is a daily realized volatility in decimal annualized
units; from daily bars we use ``rv_t = sqrt(252 * daily_variance_t)`` (see
:func:`indicators.realized_vol.daily_variance`).

Alignment: the forecast stored at index ``t`` is the forecast **of** ``rv_t`` made with
information up to and including ``t-1`` only: the coefficients are the OLS fit on the
samples ``(y = rv_s, x = regressors at s-1)`` whose target ``s <= t-1`` (the most recent
``fit_window`` targets, or all of them when ``fit_window == 0``), applied to the
regressors at ``t-1``. Bar ``t`` itself is never read for the value at ``t``.

One numba implementation, three faces: kernels (:func:`har_forecast_nb`,
:func:`har_step_nb`, :func:`har_forecast_2d_nb`), the Python API
(:func:`har_forecast`, :func:`har_forecast_from_rv`, :func:`har_fit`), the vectorbt
indicator :data:`HarForecast` and the backtrader indicator :class:`HarForecastIndicator`.

References
----------
.. [1] Corsi, F. (2009). "A Simple Approximate Long-Memory Model of Realized Volatility".
   *Journal of Financial Econometrics* 7(2), 174-196.
"""

from __future__ import annotations

from typing import NamedTuple

import backtrader as bt
import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

from indicators.realized_vol import (
    CLOSE_TO_CLOSE,
    REQUIRED_COLUMNS,
    TRADING_DAYS,
    _check_int,
    _daily_estimator_id,
    _line_full,
    _line_tail,
    _ohlc_arrays,
    daily_variance_nb,
)

__all__ = [
    "HAR_LAGS",
    "HarFit",
    "HarForecast",
    "HarForecastIndicator",
    "daily_rv_nb",
    "har_fit",
    "har_fit_nb",
    "har_forecast",
    "har_forecast_2d_nb",
    "har_forecast_from_rv",
    "har_forecast_nb",
    "har_regressors_nb",
    "har_step_nb",
]

#: Averaging horizons (days) of the daily, weekly and monthly components.
HAR_LAGS: tuple[int, int, int] = (1, 5, 22)

_WEEK = 5
_MONTH = 22
_FIRST_TARGET = _MONTH  # first target index s with complete regressors at s - 1
_NAN = np.nan


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(cache=True)
def daily_rv_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    estimator_id: int,
) -> np.ndarray:
    """Daily realized vol ``sqrt(252 * daily_variance)`` (decimal, annualized).

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        1-D float64 price arrays, shape ``(n,)``.
    estimator_id : int
        0 close_to_close, 1 parkinson, 2 garman_klass, 3 rogers_satchell.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, annualized decimal one-day vol (NaN where the variance is NaN or
        negative).

    Raises
    ------
    ValueError
        For an estimator without a one-bar form (yang_zhang).
    """
    return np.sqrt(TRADING_DAYS * daily_variance_nb(open_, high, low, close, estimator_id))


@njit(cache=True)
def _har_regressor_row_nb(rv: np.ndarray, i: int, x: np.ndarray) -> None:
    """Write ``(rv_i, mean rv_{i-4..i}, mean rv_{i-21..i})`` into ``x[i]``."""
    x[i, 0] = rv[i]
    if i >= _WEEK - 1:
        s = 0.0
        for j in range(i - _WEEK + 1, i + 1):
            s += rv[j]
        x[i, 1] = s / _WEEK
    else:
        x[i, 1] = _NAN
    if i >= _MONTH - 1:
        s = 0.0
        for j in range(i - _MONTH + 1, i + 1):
            s += rv[j]
        x[i, 2] = s / _MONTH
    else:
        x[i, 2] = _NAN


@njit(cache=True)
def har_regressors_nb(rv: np.ndarray) -> np.ndarray:
    """HAR regressors observed at each index.

    Parameters
    ----------
    rv : np.ndarray
        Daily realized vol, shape ``(n,)``.

    Returns
    -------
    np.ndarray
        Shape ``(n, 3)``: ``rv_t``, mean of ``rv_{t-4..t}``, mean of ``rv_{t-21..t}``
        (NaN where incomplete). Row ``t`` uses ``rv`` up to ``t`` only.

    References
    ----------
    Corsi (2009), daily/weekly/monthly components ``RV^(d), RV^(w), RV^(m)``.
    """
    n = rv.shape[0]
    x = np.empty((n, 3), dtype=np.float64)
    for i in range(n):
        _har_regressor_row_nb(rv, i, x)
    return x


@njit(cache=True)
def _solve3_nb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the 3x3 system ``a @ z = b`` (Gaussian elimination, partial pivoting).

    Returns NaNs if ``a`` is (numerically) singular. ``a`` and ``b`` are overwritten.
    """
    out = np.full(3, _NAN)
    scale = 0.0
    for i in range(3):
        scale = max(scale, abs(a[i, i]))
    if not (scale > 0.0) or not np.isfinite(scale):
        return out
    tol = scale * 1e-13
    for col in range(3):
        piv = col
        for r in range(col + 1, 3):
            if abs(a[r, col]) > abs(a[piv, col]):
                piv = r
        if not (abs(a[piv, col]) > tol):
            return out
        if piv != col:
            for c in range(3):
                tmp = a[col, c]
                a[col, c] = a[piv, c]
                a[piv, c] = tmp
            tmp = b[col]
            b[col] = b[piv]
            b[piv] = tmp
        for r in range(col + 1, 3):
            f = a[r, col] / a[col, col]
            for c in range(col, 3):
                a[r, c] -= f * a[col, c]
            b[r] -= f * b[col]
    for r in range(2, -1, -1):
        s = b[r]
        for c in range(r + 1, 3):
            s -= a[r, c] * out[c]
        out[r] = s / a[r, r]
    return out


@njit(cache=True)
def _har_ols_nb(rv: np.ndarray, x: np.ndarray, s_lo: int, s_hi: int, beta: np.ndarray) -> int:
    """OLS of ``rv[s]`` on ``[1, x[s-1]]`` for targets ``s_lo <= s <= s_hi``.

    Samples with any non-finite value are skipped. Centred normal equations (slopes from the
    demeaned 3x3 system, intercept from the means) for conditioning. Writes
    ``(b0, b_d, b_w, b_m)`` into ``beta`` (NaN if fewer than 4 samples or singular) and
    returns the number of samples used.
    """
    nobs = 0
    my = 0.0
    m0 = 0.0
    m1 = 0.0
    m2 = 0.0
    for s in range(s_lo, s_hi + 1):
        y = rv[s]
        a0 = x[s - 1, 0]
        a1 = x[s - 1, 1]
        a2 = x[s - 1, 2]
        if not (np.isfinite(y) and np.isfinite(a0) and np.isfinite(a1) and np.isfinite(a2)):
            continue
        nobs += 1
        my += y
        m0 += a0
        m1 += a1
        m2 += a2
    beta[:] = _NAN
    if nobs < 4:
        return nobs
    my /= nobs
    m0 /= nobs
    m1 /= nobs
    m2 /= nobs
    sxx = np.zeros((3, 3), dtype=np.float64)
    sxy = np.zeros(3, dtype=np.float64)
    d = np.empty(3, dtype=np.float64)
    for s in range(s_lo, s_hi + 1):
        y = rv[s]
        a0 = x[s - 1, 0]
        a1 = x[s - 1, 1]
        a2 = x[s - 1, 2]
        if not (np.isfinite(y) and np.isfinite(a0) and np.isfinite(a1) and np.isfinite(a2)):
            continue
        d[0] = a0 - m0
        d[1] = a1 - m1
        d[2] = a2 - m2
        dy = y - my
        for i in range(3):
            sxy[i] += d[i] * dy
            for j in range(i, 3):
                sxx[i, j] += d[i] * d[j]
    for i in range(3):
        for j in range(i):
            sxx[i, j] = sxx[j, i]
    slopes = _solve3_nb(sxx, sxy)
    if not np.isfinite(slopes[0] + slopes[1] + slopes[2]):
        return nobs
    beta[1] = slopes[0]
    beta[2] = slopes[1]
    beta[3] = slopes[2]
    beta[0] = my - slopes[0] * m0 - slopes[1] * m1 - slopes[2] * m2
    return nobs


@njit(cache=True)
def har_step_nb(
    rv: np.ndarray,
    x: np.ndarray,
    t: int,
    fit_window: int,
    min_obs: int,
    refit_every: int,
    beta: np.ndarray,
) -> float:
    """Forecast of ``rv[t]`` from information up to ``t-1`` (one step of the rolling loop).

    Re-fits ``beta`` in place when ``t % refit_every == 0`` or ``beta`` holds no valid fit
    (``beta[0]`` NaN), on targets ``max(22, t-fit_window) .. t-1`` (``22 .. t-1`` if
    ``fit_window == 0``); keeps NaN coefficients while fewer than ``min_obs`` valid samples
    exist. Reads ``rv[:t]`` and ``x[:t]`` only.

    Parameters
    ----------
    rv : np.ndarray
        Daily realized vol, shape ``(>= t,)``.
    x : np.ndarray
        Regressors from :func:`har_regressors_nb`, shape ``(>= t, 3)``.
    t : int
        Index of the forecast target.
    fit_window : int
        Rolling number of targets in the fit; 0 for an expanding window.
    min_obs : int
        Minimum number of valid samples for a fit.
    refit_every : int
        Re-estimation period in bars (>= 1).
    beta : np.ndarray
        Shape ``(4,)`` state ``(b0, b_d, b_w, b_m)``, updated in place.

    Returns
    -------
    float
        Forecast (decimal annualized vol); NaN without a fit, with incomplete regressors
        at ``t-1`` or when the forecast is ``<= 0``.

    References
    ----------
    Corsi (2009), eqs. (8)-(9), estimated by OLS.
    """
    if t < 1:
        return _NAN
    if t % refit_every == 0 or np.isnan(beta[0]):
        s_hi = t - 1
        s_lo = _FIRST_TARGET if fit_window == 0 else max(_FIRST_TARGET, t - fit_window)
        nobs = 0
        if s_hi - s_lo + 1 >= min_obs:
            nobs = _har_ols_nb(rv, x, s_lo, s_hi, beta)
        if nobs < min_obs:
            beta[:] = _NAN
    if np.isnan(beta[0]):
        return _NAN
    f = beta[0] + beta[1] * x[t - 1, 0] + beta[2] * x[t - 1, 1] + beta[3] * x[t - 1, 2]
    if f > 0.0:
        return f
    return _NAN


@njit(cache=True)
def har_forecast_nb(
    rv: np.ndarray, fit_window: int, min_obs: int, refit_every: int = 1
) -> np.ndarray:
    """Rolling (or expanding) out-of-sample HAR-RV one-day-ahead forecast.

    Parameters
    ----------
    rv : np.ndarray
        Daily realized vol (decimal annualized), shape ``(n,)``. NaN samples are skipped
        in the fit.
    fit_window : int
        Number of most recent targets in each fit; 0 means expanding.
    min_obs : int
        Minimum number of valid samples before a forecast is made.
    refit_every : int, default 1
        Re-estimate every ``refit_every`` bars (when ``t % refit_every == 0``); 1 = daily.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``; element ``t`` is the forecast of ``rv[t]`` using ``rv[:t]`` only.
        NaN until ``min_obs`` samples exist, and where the forecast is ``<= 0``.

    Raises
    ------
    ValueError
        If ``fit_window < 0``, ``min_obs < 4`` or ``refit_every < 1``.

    References
    ----------
    Corsi (2009), eqs. (8)-(9).
    """
    if fit_window < 0 or min_obs < 4 or refit_every < 1:
        raise ValueError("need fit_window >= 0, min_obs >= 4, refit_every >= 1")
    n = rv.shape[0]
    x = har_regressors_nb(rv)
    beta = np.full(4, _NAN)
    out = np.full(n, _NAN)
    for t in range(1, n):
        out[t] = har_step_nb(rv, x, t, fit_window, min_obs, refit_every, beta)
    return out


@njit(cache=True)
def har_forecast_2d_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    estimator_id: int,
    fit_window: int,
    min_obs: int,
    refit_every: int,
) -> np.ndarray:
    """Column-wise HAR forecast from OHLC (vectorbt layout).

    Parameters
    ----------
    open_, high, low, close : np.ndarray
        2-D float64 arrays, shape ``(n_bars, n_cols)``.
    estimator_id : int
        Daily-variance estimator id (0..3), see :func:`daily_rv_nb`.
    fit_window, min_obs, refit_every : int
        See :func:`har_forecast_nb`.

    Returns
    -------
    np.ndarray
        Shape ``(n_bars, n_cols)``, forecasts of ``sqrt(252 * daily_variance)``.

    Raises
    ------
    ValueError
        As :func:`daily_rv_nb` and :func:`har_forecast_nb`.
    """
    out = np.empty(close.shape, dtype=np.float64)
    for j in range(close.shape[1]):
        rv = daily_rv_nb(open_[:, j], high[:, j], low[:, j], close[:, j], estimator_id)
        out[:, j] = har_forecast_nb(rv, fit_window, min_obs, refit_every)
    return out


@njit(cache=True)
def har_fit_nb(rv: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Full-sample HAR OLS fit.

    Parameters
    ----------
    rv : np.ndarray
        Daily realized vol, shape ``(n,)``.

    Returns
    -------
    beta : np.ndarray
        Shape ``(4,)``: ``(b0, b_d, b_w, b_m)`` (NaN if singular or < 4 samples).
    nobs : int
        Number of valid samples (targets ``s >= 22``).
    rsquared : float
        Centred R^2 of the fit.
    """
    x = har_regressors_nb(rv)
    beta = np.full(4, _NAN)
    nobs = _har_ols_nb(rv, x, _FIRST_TARGET, rv.shape[0] - 1, beta)
    ssr = 0.0
    sy = 0.0
    cnt = 0
    for s in range(_FIRST_TARGET, rv.shape[0]):
        y = rv[s]
        a0 = x[s - 1, 0]
        a1 = x[s - 1, 1]
        a2 = x[s - 1, 2]
        if np.isfinite(y) and np.isfinite(a0) and np.isfinite(a1) and np.isfinite(a2):
            e = y - (beta[0] + beta[1] * a0 + beta[2] * a1 + beta[3] * a2)
            ssr += e * e
            sy += y
            cnt += 1
    sst = 0.0
    if cnt > 0:
        my = sy / cnt
        for s in range(_FIRST_TARGET, rv.shape[0]):
            y = rv[s]
            a0 = x[s - 1, 0]
            a1 = x[s - 1, 1]
            a2 = x[s - 1, 2]
            if np.isfinite(y) and np.isfinite(a0) and np.isfinite(a1) and np.isfinite(a2):
                sst += (y - my) * (y - my)
    r2 = 1.0 - ssr / sst if sst > 0.0 else _NAN
    return beta, nobs, r2


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


class HarFit(NamedTuple):
    """Full-sample HAR-RV OLS coefficients (Corsi 2009, eqs. (8)-(9)).

    Attributes
    ----------
    const : float
        Intercept ``b0`` (decimal annualized vol).
    beta_d, beta_w, beta_m : float
        Coefficients on the daily, 5-day mean and 22-day mean of ``rv`` at ``t-1``.
    nobs : int
        Number of regression samples used.
    rsquared : float
        Centred R^2.
    """

    const: float
    beta_d: float
    beta_w: float
    beta_m: float
    nobs: int
    rsquared: float


def _check_har_params(fit_window: object, min_obs: object, refit_every: object) -> None:
    fw = _check_int("fit_window", fit_window, 0)
    mo = _check_int("min_obs", min_obs, 5)
    _check_int("refit_every", refit_every, 1)
    if fw != 0 and fw < mo:
        raise ValueError(
            f"fit_window ({fw}) must be 0 (expanding) or >= min_obs ({mo}); "
            "otherwise no forecast can ever be made"
        )


def _rv_array(rv: pd.Series) -> np.ndarray:
    if not isinstance(rv, pd.Series):
        raise TypeError(f"rv must be a pandas Series, got {type(rv).__name__}")
    return np.ascontiguousarray(rv.to_numpy(dtype=np.float64, na_value=np.nan))


def har_fit(rv: pd.Series) -> HarFit:
    """OLS fit of the HAR-RV model on a whole sample.

    Regresses ``rv_s`` on ``[1, rv_{s-1}, mean(rv_{s-5..s-1}), mean(rv_{s-22..s-1})]``
    for every ``s >= 22`` with complete data (the sample of
    ``arch.univariate.HARX(rv, lags=[1, 5, 22])``).

    Parameters
    ----------
    rv : pd.Series
        Daily realized vol (decimal annualized), shape ``(n,)``.

    Returns
    -------
    HarFit
        ``(const, beta_d, beta_w, beta_m, nobs, rsquared)``.

    Raises
    ------
    TypeError
        If ``rv`` is not a Series.
    ValueError
        If fewer than 5 valid samples exist or the regressors are collinear.

    References
    ----------
    Corsi (2009), J. Financial Econometrics 7(2), 174-196, eqs. (8)-(9).
    """
    arr = _rv_array(rv)
    beta, nobs, r2 = har_fit_nb(arr)
    if nobs < 5 or not np.all(np.isfinite(beta)):
        raise ValueError(
            f"HAR fit needs at least 5 complete samples (rv of length >= 27) and "
            f"non-collinear regressors; got {nobs} samples"
        )
    return HarFit(float(beta[0]), float(beta[1]), float(beta[2]), float(beta[3]), int(nobs), r2)


def har_forecast_from_rv(
    rv: pd.Series, fit_window: int = 1000, min_obs: int = 250, refit_every: int = 1
) -> pd.Series:
    """Out-of-sample one-day-ahead HAR-RV forecast of a daily realized-vol series.

    Parameters
    ----------
    rv : pd.Series
        Daily realized vol (decimal annualized), shape ``(n,)``. NaN samples are skipped
        in the fits.
    fit_window : int, default 1000
        Number of most recent regression samples (targets) per fit; 0 = expanding window.
    min_obs : int, default 250
        Minimum number of valid samples before forecasting (>= 5).
    refit_every : int, default 1
        Re-estimate the coefficients when ``t % refit_every == 0`` (1 = every day).

    Returns
    -------
    pd.Series
        Aligned to ``rv.index``, named ``har_<fit_window>``. The value at ``t`` is the
        forecast of ``rv[t]`` using ``rv`` up to ``t-1`` only. NaN until ``min_obs``
        samples exist; a forecast ``<= 0`` is returned as NaN (count such days with
        ``forecast.isna()`` after the warm-up).

    Raises
    ------
    TypeError
        If ``rv`` is not a Series.
    ValueError
        On invalid ``fit_window``, ``min_obs`` or ``refit_every``.

    References
    ----------
    Corsi (2009), eqs. (8)-(9).
    """
    _check_har_params(fit_window, min_obs, refit_every)
    arr = _rv_array(rv)
    out = har_forecast_nb(arr, int(fit_window), int(min_obs), int(refit_every))
    return pd.Series(out, index=rv.index, name=f"har_{int(fit_window)}")


def har_forecast(
    ohlc: pd.DataFrame,
    estimator: str = "rogers_satchell",
    fit_window: int = 1000,
    min_obs: int = 250,
    refit_every: int = 1,
) -> pd.Series:
    """HAR-RV one-day-ahead forecast of ``rv_t = sqrt(252 * daily_variance_t)``.

    Parameters
    ----------
    ohlc : pd.DataFrame
        Daily bars with lowercase ``open``, ``high``, ``low``, ``close`` columns (those the
        estimator reads), shape ``(n, >=1)``.
    estimator : str, default "rogers_satchell"
        Daily-variance estimator: close_to_close, parkinson, garman_klass or
        rogers_satchell.
    fit_window, min_obs, refit_every : int
        See :func:`har_forecast_from_rv`.

    Returns
    -------
    pd.Series
        Forecast (decimal annualized vol) aligned to ``ohlc.index``, named
        ``har_<estimator>_<fit_window>``; the value at ``t`` uses bars up to ``t-1``.

    Raises
    ------
    ValueError
        Unknown estimator, ``yang_zhang`` (no daily form), a missing column or invalid
        parameters.

    References
    ----------
    Corsi (2009), eqs. (8)-(9).
    """
    est = _daily_estimator_id(estimator)
    _check_har_params(fit_window, min_obs, refit_every)
    o, h, lo, c = _ohlc_arrays(ohlc, REQUIRED_COLUMNS[estimator])
    rv = daily_rv_nb(o, h, lo, c, est)
    out = har_forecast_nb(rv, int(fit_window), int(min_obs), int(refit_every))
    return pd.Series(out, index=ohlc.index, name=f"har_{estimator}_{int(fit_window)}")


# --------------------------------------------------------------------------------------
# vectorbt face
# --------------------------------------------------------------------------------------


def _har_apply(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    fit_window: int,
    estimator: str,
    min_obs: int,
    refit_every: int,
) -> np.ndarray:
    """Apply function for :data:`HarForecast`: one parameter combination, 2-D inputs."""
    est = _daily_estimator_id(estimator)
    _check_har_params(fit_window, min_obs, refit_every)
    return har_forecast_2d_nb(
        np.asarray(open_, dtype=np.float64),
        np.asarray(high, dtype=np.float64),
        np.asarray(low, dtype=np.float64),
        np.asarray(close, dtype=np.float64),
        est,
        int(fit_window),
        int(min_obs),
        int(refit_every),
    )


HarForecast = vbt.IndicatorFactory(
    class_name="HarForecast",
    short_name="har",
    input_names=["open", "high", "low", "close"],
    param_names=["fit_window", "estimator", "min_obs", "refit_every"],
    output_names=["forecast"],
).from_apply_func(
    _har_apply, fit_window=1000, estimator="rogers_satchell", min_obs=250, refit_every=1
)
HarForecast.__doc__ = """vectorbt indicator: HAR-RV one-day-ahead forecast over a parameter grid.

``HarForecast.run(open, high, low, close, fit_window=1000, estimator="rogers_satchell",
min_obs=250, refit_every=1, ...)``; every parameter accepts a list (estimator by name),
``param_product=True`` builds the Cartesian grid in one call. Output ``.forecast`` equals
:func:`har_forecast` column by column (value at ``t`` uses bars up to ``t-1``).

References
----------
Corsi (2009), eqs. (8)-(9).
"""


# --------------------------------------------------------------------------------------
# backtrader face
# --------------------------------------------------------------------------------------


class HarForecastIndicator(bt.Indicator):
    """backtrader indicator: HAR-RV forecast of today's daily realized vol (line ``forecast``).

    The value on bar ``t`` is the forecast of ``rv_t = sqrt(252 * daily_variance_t)`` made
    from bars up to ``t-1`` (so a strategy may act on it at the open of bar ``t``). Uses the
    same numba kernels as :func:`har_forecast`: ``once()`` runs :func:`har_forecast_nb` on
    the preloaded arrays; ``next()`` keeps a growing buffer of ``rv`` and regressors and
    runs one :func:`har_step_nb` per bar.

    Parameters
    ----------
    estimator : str, default "rogers_satchell"
        Daily-variance estimator (not yang_zhang).
    fit_window : int, default 1000
        Rolling number of regression samples; 0 = expanding.
    min_obs : int, default 250
        Minimum samples before forecasting (>= 5).
    refit_every : int, default 1
        Re-estimation period in bars.

    Raises
    ------
    ValueError
        Invalid estimator or parameters (when the indicator is created).

    References
    ----------
    Corsi (2009), eqs. (8)-(9).
    """

    lines = ("forecast",)
    params = (
        ("estimator", "rogers_satchell"),
        ("fit_window", 1000),
        ("min_obs", 250),
        ("refit_every", 1),
    )
    plotinfo = dict(subplot=True)  # noqa: RUF012 - backtrader class attribute

    def __init__(self) -> None:
        self._est = _daily_estimator_id(self.p.estimator)
        _check_har_params(self.p.fit_window, self.p.min_obs, self.p.refit_every)
        # first forecast: min_obs samples with targets >= 22 (>= 23 for close_to_close,
        # whose first daily rv is NaN), i.e. at index 22 + min_obs (+1).
        extra = 1 if self._est == CLOSE_TO_CLOSE else 0
        self.addminperiod(self.p.min_obs + _MONTH + 1 + extra)
        self._rv = np.empty(1024, dtype=np.float64)
        self._x = np.empty((1024, 3), dtype=np.float64)
        self._n = 0
        self._beta = np.full(4, np.nan)

    def _append_bar(self) -> int:
        """Append the current bar's rv and regressors to the buffers; return its index."""
        t = self._n
        if t >= self._rv.shape[0]:
            self._rv = np.concatenate([self._rv, np.empty_like(self._rv)])
            self._x = np.concatenate([self._x, np.empty_like(self._x)])
        size = min(len(self.data), 2)
        rv = daily_rv_nb(
            _line_tail(self.data.open, size),
            _line_tail(self.data.high, size),
            _line_tail(self.data.low, size),
            _line_tail(self.data.close, size),
            self._est,
        )
        self._rv[t] = rv[-1]
        _har_regressor_row_nb(self._rv, t, self._x)
        self._n = t + 1
        return t

    def prenext(self) -> None:
        """Warm-up bars: only record rv (no forecast yet)."""
        self._append_bar()

    def next(self) -> None:
        """Event-driven mode: one :func:`har_step_nb` on the buffers up to this bar."""
        t = self._append_bar()
        self.lines.forecast[0] = float(
            har_step_nb(
                self._rv,
                self._x,
                t,
                int(self.p.fit_window),
                int(self.p.min_obs),
                int(self.p.refit_every),
                self._beta,
            )
        )

    def once(self, start: int, end: int) -> None:
        """Vectorized (runonce) mode: :func:`har_forecast_nb` over the preloaded arrays."""
        size = self.data.buflen()
        rv = daily_rv_nb(
            _line_full(self.data.open, size),
            _line_full(self.data.high, size),
            _line_full(self.data.low, size),
            _line_full(self.data.close, size),
            self._est,
        )
        out = har_forecast_nb(
            rv, int(self.p.fit_window), int(self.p.min_obs), int(self.p.refit_every)
        )
        dst = self.lines.forecast.array
        for i in range(start, end):
            dst[i] = float(out[i])
