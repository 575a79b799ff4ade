"""Technical, volatility and regime features of a daily underlying and its implied-vol index.

The feature sets of design document 001 (section 3), as numba kernels with a pandas API and
vectorbt ``IndicatorFactory`` faces:

* technical (:func:`technical_features`): RSI 14/28 (Wilder), MACD 12/26/9 and histogram,
  Bollinger bands 20/2 with width and position, SMA 20/50/200, EMA 12/26, price vs SMA
  20/50/200, SMA 20/50 cross, returns over 1/5/20/60 sessions, 52-week high/low and the
  distances to them;
* volatility (:func:`volatility_features`): close-to-close HV 5/10/20/60/120, HV ratios, VIX
  level, SMAs, rank, percentile, z-score and changes, the HV/IV ratio, a VIX bucket, the VIX
  trend, a GARCH(1,1) one-day-ahead forecast (``arch``) and Parkinson HV 20;
* regime (:func:`regime_features`): the rule-based regime of design section 4.3 (``low_vol``,
  ``high_vol``, ``iv_expansion``, ``iv_contraction``, ``neutral``), its one-hot encoding, days
  in regime, a changed-within-a-week flag, VIX and HV/IV flags and the price-trend regime.

:func:`market_features` returns all three sets in one frame.

Conventions
-----------
* **Causality.** The value at session ``t`` uses sessions ``<= t`` only (the close of ``t``
  included); nothing after ``t`` is read. The GARCH value at ``t`` is the forecast of the
  volatility of session ``t + 1`` made after the close of ``t`` with parameters fitted on
  returns up to a refit date ``<= t`` (see :func:`garch_forecast`). A strategy acting during
  session ``t`` (before its close) must read the values of ``t - 1``.
* **Units.** Volatilities (HV, Parkinson, GARCH) are decimal, annualized with 252 sessions
  (0.20 = 20 %); the VIX is in vol points (20 = 20 %), so ``hv_iv_ratio = hv_20 / (vix / 100)``.
  Returns are simple (decimal); ranks, percentiles and Bollinger position are fractions in
  ``[0, 1]`` (position can leave it when the close is outside the bands); RSI is in ``[0, 100]``.
  MACD, SMAs, EMAs and bands are in price units (index points / dollars).
* **Missing values.** Any NaN inside a window makes the value NaN; recursive filters (EMA,
  RSI) restart their warm-up after a NaN. Nothing is filled.

References
----------
.. [1] Wilder, J. W. (1978). *New Concepts in Technical Trading Systems*. Trend Research
   (RSI with Wilder's smoothing, ``alpha = 1 / n``, seeded with the simple mean).
.. [2] Appel, G. (2005). *Technical Analysis: Power Tools for Active Investors*. FT Press
   (MACD 12/26/9).
.. [3] Bollinger, J. (2001). *Bollinger on Bollinger Bands*. McGraw-Hill (20-day SMA +- 2
   population standard deviations; %b and bandwidth).
.. [4] Bollerslev, T. (1986). "Generalized Autoregressive Conditional Heteroskedasticity".
   *Journal of Econometrics* 31(3), 307-327 (GARCH(1,1), eq. (3)); estimated with
   ``arch.arch_model`` (K. Sheppard).
.. [5] Parkinson, M. (1980). "The Extreme Value Method for Estimating the Variance of the Rate
   of Return". *Journal of Business* 53(1), 61-65.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

from indicators.realized_vol import (
    CLOSE_TO_CLOSE,
    PARKINSON,
    TRADING_DAYS,
    _check_int,
    realized_vol_1d_nb,
)

__all__ = [
    "REGIMES",
    "REGIME_FEATURE_COLUMNS",
    "TECHNICAL_FEATURE_COLUMNS",
    "VOLATILITY_FEATURE_COLUMNS",
    "Bollinger",
    "GarchForecast",
    "Macd",
    "MarketRegime",
    "RegimeThresholds",
    "Rsi",
    "VolRank",
    "bollinger",
    "bollinger_nb",
    "days_in_regime_nb",
    "ema_nb",
    "garch_filter_nb",
    "garch_forecast",
    "macd",
    "macd_nb",
    "market_features",
    "percentile_rank_nb",
    "range_rank_nb",
    "regime_features",
    "regime_nb",
    "rolling_max_nb",
    "rolling_mean_nb",
    "rolling_min_nb",
    "rolling_std_nb",
    "rsi",
    "rsi_nb",
    "technical_features",
    "volatility_features",
    "zscore_nb",
]

_NAN = np.nan

#: Regime names in the order of their integer codes (``regime`` column; -1 = undefined).
REGIMES: tuple[str, ...] = ("low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral")

TECHNICAL_FEATURE_COLUMNS: tuple[str, ...] = (
    "rsi_14",
    "rsi_28",
    "macd",
    "macd_signal",
    "macd_histogram",
    "bb_upper",
    "bb_lower",
    "bb_width",
    "bb_position",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "price_vs_sma20",
    "price_vs_sma50",
    "price_vs_sma200",
    "sma_cross_20_50",
    "returns_1d",
    "returns_5d",
    "returns_20d",
    "returns_60d",
    "high_52w",
    "low_52w",
    "dist_from_high",
    "dist_from_low",
)
"""Columns of :func:`technical_features` (design doc 001, table 3.1, plus ``price_vs_sma200``)."""

VOLATILITY_FEATURE_COLUMNS: tuple[str, ...] = (
    "hv_5",
    "hv_10",
    "hv_20",
    "hv_60",
    "hv_120",
    "hv_ratio_5_20",
    "hv_ratio_20_60",
    "vix",
    "vix_sma_10",
    "vix_sma_20",
    "vix_rank",
    "vix_percentile",
    "hv_iv_ratio",
    "vix_change_1d",
    "vix_change_5d",
    "vix_zscore",
    "vol_regime",
    "vol_trend",
    "garch_forecast",
    "parkinson_hv",
)
"""Columns of :func:`volatility_features` (design doc 001, table 3.2)."""

REGIME_FEATURE_COLUMNS: tuple[str, ...] = (
    "regime",
    *(f"regime_{name}" for name in REGIMES),
    "days_in_regime",
    "regime_change_1w",
    "vix_above_20",
    "vix_above_25",
    "vix_below_15",
    "hv_iv_contraction",
    "hv_iv_expansion",
    "trend_regime",
)
"""Columns of :func:`regime_features` (design doc 001, table 3.3; ``regime_encoded`` is the
five one-hot columns ``regime_<name>``)."""


# --------------------------------------------------------------------------------------
# numba kernels: rolling windows
# --------------------------------------------------------------------------------------


@njit(cache=True)
def rolling_mean_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``x[t-window+1 .. t]`` (NaN before the first full window or if it holds a NaN).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length in sessions (>= 1).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``; each window summed directly in index order (bit-stable, independent
        of data outside the window).
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(window - 1, n):
        s = 0.0
        for j in range(t - window + 1, t + 1):
            s += x[j]
        out[t] = s / window
    return out


@njit(cache=True)
def rolling_std_nb(x: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """Two-pass standard deviation of ``x[t-window+1 .. t]`` with ``ddof`` (0 population,
    1 sample); NaN before the first full window or if it holds a NaN.

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length (> ``ddof``).
    ddof : int
        Delta degrees of freedom.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(window - 1, n):
        s = 0.0
        for j in range(t - window + 1, t + 1):
            s += x[j]
        m = s / window
        v = 0.0
        for j in range(t - window + 1, t + 1):
            d = x[j] - m
            v += d * d
        out[t] = math.sqrt(v / (window - ddof))
    return out


@njit(cache=True)
def rolling_max_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Maximum of ``x[t-window+1 .. t]`` (NaN if the window holds a NaN or is incomplete).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length (>= 1).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(window - 1, n):
        m = x[t - window + 1]
        bad = math.isnan(m)
        for j in range(t - window + 2, t + 1):
            v = x[j]
            if math.isnan(v):
                bad = True
            elif v > m:
                m = v
        out[t] = _NAN if bad else m
    return out


@njit(cache=True)
def rolling_min_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Minimum of ``x[t-window+1 .. t]`` (NaN if the window holds a NaN or is incomplete).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length (>= 1).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(window - 1, n):
        m = x[t - window + 1]
        bad = math.isnan(m)
        for j in range(t - window + 2, t + 1):
            v = x[j]
            if math.isnan(v):
                bad = True
            elif v < m:
                m = v
        out[t] = _NAN if bad else m
    return out


@njit(cache=True)
def range_rank_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Range rank ("IV rank") ``(x_t - min) / (max - min)`` over ``x[t-window+1 .. t]``.

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length (>= 2).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, in ``[0, 1]``; NaN when the window is incomplete, holds a NaN or is
        flat (``max == min``).
    """
    hi = rolling_max_nb(x, window)
    lo = rolling_min_nb(x, window)
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(n):
        span = hi[t] - lo[t]
        if span > 0.0:
            out[t] = (x[t] - lo[t]) / span
    return out


@njit(cache=True)
def percentile_rank_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Percentile ("IV percentile"): share of the ``window - 1`` previous values below ``x_t``.

    ``#{j in [t-window+1, t-1] : x_j < x_t} / (window - 1)``.

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length including ``t`` (>= 2).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, in ``[0, 1]``; NaN when the window is incomplete or holds a NaN.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(window - 1, n):
        v = x[t]
        if math.isnan(v):
            continue
        below = 0
        bad = False
        for j in range(t - window + 1, t):
            if math.isnan(x[j]):
                bad = True
                break
            if x[j] < v:
                below += 1
        if not bad:
            out[t] = below / (window - 1)
    return out


@njit(cache=True)
def zscore_nb(x: np.ndarray, window: int) -> np.ndarray:
    """``(x_t - mean) / std(ddof=1)`` over ``x[t-window+1 .. t]`` (NaN if ``std == 0``).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        Window length (>= 2).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``.
    """
    mean = rolling_mean_nb(x, window)
    sd = rolling_std_nb(x, window, 1)
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(n):
        if sd[t] > 0.0:
            out[t] = (x[t] - mean[t]) / sd[t]
    return out


@njit(cache=True)
def pct_change_nb(x: np.ndarray, periods: int) -> np.ndarray:
    """Simple return ``x_t / x_{t-periods} - 1`` (NaN for ``t < periods``).

    Parameters
    ----------
    x : np.ndarray
        1-D float64 prices, shape ``(n,)``.
    periods : int
        Lag in sessions (>= 1).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, decimal.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(periods, n):
        out[t] = x[t] / x[t - periods] - 1.0
    return out


@njit(cache=True)
def diff_nb(x: np.ndarray, periods: int) -> np.ndarray:
    """Difference ``x_t - x_{t-periods}`` (NaN for ``t < periods``).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    periods : int
        Lag in sessions (>= 1).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, in the units of ``x``.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(periods, n):
        out[t] = x[t] - x[t - periods]
    return out


# --------------------------------------------------------------------------------------
# numba kernels: recursive filters (EMA, RSI, MACD) and Bollinger
# --------------------------------------------------------------------------------------


@njit(cache=True)
def ema_nb(x: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, seeded with a simple mean.

    ``ema_t = alpha x_t + (1 - alpha) ema_{t-1}``; the first value is the simple mean of the
    first ``span`` finite values (at the ``span``-th of them), NaN before. A NaN input makes
    the output NaN and restarts the warm-up (``span`` finite values again).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    span : int
        Span in sessions (>= 1).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, units of ``x``.

    References
    ----------
    Appel (2005) for MACD's 12/26/9 EMAs; the simple-mean seed is the common TA convention
    (e.g. TA-Lib), so the first value does not depend on where the data starts beyond the
    ``span`` seed values.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    alpha = 2.0 / (span + 1.0)
    count = 0
    acc = 0.0
    prev = _NAN
    for t in range(n):
        v = x[t]
        if math.isnan(v):
            count = 0
            acc = 0.0
            prev = _NAN
            continue
        if count < span:
            count += 1
            acc += v
            if count == span:
                prev = acc / span
                out[t] = prev
            continue
        prev = alpha * v + (1.0 - alpha) * prev
        out[t] = prev
    return out


@njit(cache=True)
def rsi_nb(close: np.ndarray, window: int) -> np.ndarray:
    """Relative Strength Index with Wilder's smoothing (Wilder 1978).

    Changes ``d_t = C_t - C_{t-1}``, gains ``max(d, 0)``, losses ``max(-d, 0)``. The first
    average gain/loss is the simple mean of the first ``window`` changes; then
    ``avg_t = (avg_{t-1} (window - 1) + value_t) / window``. ``RSI = 100 - 100 / (1 + RS)``
    with ``RS = avg_gain / avg_loss`` (100 when ``avg_loss == 0``, 50 when both are 0).
    A NaN close restarts the warm-up.

    Parameters
    ----------
    close : np.ndarray
        1-D float64 closes, shape ``(n,)``.
    window : int
        Number of changes (>= 2), 14 in Wilder (1978).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, in ``[0, 100]``; the first value at index ``window`` (it needs
        ``window + 1`` closes).
    """
    n = close.shape[0]
    out = np.full(n, _NAN)
    count = 0
    gain = 0.0
    loss = 0.0
    for t in range(1, n):
        d = close[t] - close[t - 1]
        if math.isnan(d):
            count = 0
            gain = 0.0
            loss = 0.0
            continue
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        if count < window:
            count += 1
            gain += g
            loss += lo
            if count < window:
                continue
            gain /= window
            loss /= window
        else:
            gain = (gain * (window - 1) + g) / window
            loss = (loss * (window - 1) + lo) / window
        if loss == 0.0:
            out[t] = 50.0 if gain == 0.0 else 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + gain / loss)
    return out


@njit(cache=True)
def macd_nb(close: np.ndarray, fast: int, slow: int, signal: int) -> np.ndarray:
    """MACD line, signal line and histogram (Appel 2005).

    ``macd = EMA_fast(C) - EMA_slow(C)``, ``signal = EMA_signal(macd)`` (seeded with the mean
    of the first ``signal`` MACD values), ``histogram = macd - signal`` (:func:`ema_nb`).

    Parameters
    ----------
    close : np.ndarray
        1-D float64 closes, shape ``(n,)``.
    fast, slow, signal : int
        EMA spans (12, 26, 9 by convention), ``fast < slow``.

    Returns
    -------
    np.ndarray
        Shape ``(3, n)``: rows macd, signal, histogram (price units).
    """
    n = close.shape[0]
    out = np.empty((3, n))
    out[0] = ema_nb(close, fast) - ema_nb(close, slow)
    out[1] = ema_nb(out[0], signal)
    out[2] = out[0] - out[1]
    return out


@njit(cache=True)
def bollinger_nb(close: np.ndarray, window: int, n_std: float) -> np.ndarray:
    """Bollinger bands, bandwidth and %b (Bollinger 2001).

    ``middle = SMA_window(C)``, ``upper/lower = middle +- n_std * sigma`` with ``sigma`` the
    population standard deviation (ddof = 0) of the same window, ``width = (upper - lower) /
    middle``, ``position = (C - lower) / (upper - lower)`` (NaN when the bands coincide).

    Parameters
    ----------
    close : np.ndarray
        1-D float64 closes, shape ``(n,)``.
    window : int
        Window (>= 2), 20 by convention.
    n_std : float
        Band half-width in standard deviations (2 by convention).

    Returns
    -------
    np.ndarray
        Shape ``(5, n)``: rows upper, middle, lower, width, position.
    """
    n = close.shape[0]
    out = np.full((5, n), _NAN)
    mid = rolling_mean_nb(close, window)
    sd = rolling_std_nb(close, window, 0)
    for t in range(n):
        up = mid[t] + n_std * sd[t]
        lo = mid[t] - n_std * sd[t]
        out[0, t] = up
        out[1, t] = mid[t]
        out[2, t] = lo
        out[3, t] = (up - lo) / mid[t]
        if up > lo:
            out[4, t] = (close[t] - lo) / (up - lo)
    return out


# --------------------------------------------------------------------------------------
# numba kernels: regime
# --------------------------------------------------------------------------------------


@njit(cache=True)
def regime_nb(
    vix: np.ndarray,
    vix_rank: np.ndarray,
    hv_iv_ratio: np.ndarray,
    vix_low: float,
    vix_high: float,
    rank_low: float,
    rank_high: float,
    rank_mid: float,
    hv_iv_low: float,
    hv_iv_high: float,
) -> np.ndarray:
    """Rule-based regime code per session (design doc 001, section 4.3), first rule that holds:

    0 ``low_vol``: ``vix < vix_low`` and ``vix_rank < rank_low``;
    1 ``high_vol``: ``vix > vix_high`` or ``vix_rank > rank_high``;
    2 ``iv_expansion``: ``hv_iv_ratio > hv_iv_high`` and ``vix_rank > rank_mid``;
    3 ``iv_contraction``: ``hv_iv_ratio < hv_iv_low`` and ``vix_rank < rank_mid``;
    4 ``neutral``: none of the above; -1 when an input is NaN.

    Parameters
    ----------
    vix, vix_rank, hv_iv_ratio : np.ndarray
        1-D float64 of equal length ``n``: VIX (vol points), its range rank (fraction) and
        ``hv_20 / (vix / 100)``.
    vix_low, vix_high : float
        VIX thresholds (15, 25), vol points.
    rank_low, rank_high, rank_mid : float
        VIX-rank thresholds (0.30, 0.80, 0.50).
    hv_iv_low, hv_iv_high : float
        HV/IV thresholds (0.6, 0.9).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, float64 codes (index into :data:`REGIMES`), -1.0 undefined.
    """
    n = vix.shape[0]
    out = np.full(n, -1.0)
    for t in range(n):
        v, r, h = vix[t], vix_rank[t], hv_iv_ratio[t]
        if math.isnan(v) or math.isnan(r) or math.isnan(h):
            continue
        if v < vix_low and r < rank_low:
            out[t] = 0.0
        elif v > vix_high or r > rank_high:
            out[t] = 1.0
        elif h > hv_iv_high and r > rank_mid:
            out[t] = 2.0
        elif h < hv_iv_low and r < rank_mid:
            out[t] = 3.0
        else:
            out[t] = 4.0
    return out


@njit(cache=True)
def days_in_regime_nb(codes: np.ndarray) -> np.ndarray:
    """Sessions since the regime last changed, counting the current one (1 on a change day).

    Parameters
    ----------
    codes : np.ndarray
        1-D float64 regime codes (-1 undefined), shape ``(n,)``.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``; NaN where the code is undefined; the count restarts after an undefined
        session.
    """
    n = codes.shape[0]
    out = np.full(n, _NAN)
    run = 0
    prev = -1.0
    for t in range(n):
        c = codes[t]
        if c < 0.0:
            run = 0
            prev = -1.0
            continue
        run = run + 1 if c == prev else 1
        prev = c
        out[t] = run
    return out


@njit(cache=True)
def changed_within_nb(codes: np.ndarray, window: int) -> np.ndarray:
    """1.0 if the regime code changed between any two consecutive sessions of ``t-window .. t``.

    Parameters
    ----------
    codes : np.ndarray
        1-D float64 regime codes (-1 undefined), shape ``(n,)``.
    window : int
        Look-back in sessions (5 = one week).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, 0.0 / 1.0; NaN while ``codes[t-window .. t]`` is incomplete or holds an
        undefined code.
    """
    n = codes.shape[0]
    out = np.full(n, _NAN)
    for t in range(window, n):
        bad = False
        changed = 0.0
        for j in range(t - window, t + 1):
            if codes[j] < 0.0:
                bad = True
                break
            if j > t - window and codes[j] != codes[j - 1]:
                changed = 1.0
        if not bad:
            out[t] = changed
    return out


# --------------------------------------------------------------------------------------
# numba kernel: GARCH(1,1) filter
# --------------------------------------------------------------------------------------


@njit(cache=True)
def garch_filter_nb(
    returns: np.ndarray,
    mu: float,
    omega: float,
    alpha: float,
    beta: float,
    sigma2_start: float,
    start: int,
    end: int,
) -> np.ndarray:
    """One-step-ahead GARCH(1,1) variance forecasts with fixed parameters (Bollerslev 1986).

    ``sigma2_{t+1} = omega + alpha (r_t - mu)^2 + beta sigma2_t`` for ``t = start .. end-1``,
    with ``sigma2_start`` the conditional variance of session ``start`` (from the fit).

    Parameters
    ----------
    returns : np.ndarray
        1-D float64 returns in the units of the fit (percent log returns), shape ``(n,)``.
    mu, omega, alpha, beta : float
        Constant mean and GARCH(1,1) parameters (``arch`` names ``mu``, ``omega``,
        ``alpha[1]``, ``beta[1]``).
    sigma2_start : float
        Conditional variance of session ``start`` (``res.conditional_volatility[-1] ** 2`` of
        a fit ending at ``start``).
    start, end : int
        Session positions; the forecast for ``t + 1`` is stored at ``t``.

    Returns
    -------
    np.ndarray
        Shape ``(end - start,)``: the variance forecasts (squared return units) made at
        ``start .. end-1``.
    """
    out = np.empty(end - start)
    s2 = sigma2_start
    for t in range(start, end):
        e = returns[t] - mu
        f = omega + alpha * e * e + beta * s2
        out[t - start] = f
        s2 = f
    return out


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------


def _series_array(x: pd.Series, name: str) -> np.ndarray:
    if not isinstance(x, pd.Series):
        raise TypeError(f"{name} must be a pandas Series, got {type(x).__name__}")
    return np.ascontiguousarray(x.to_numpy(dtype=np.float64, na_value=np.nan))


def _check_prices(x: pd.Series, name: str, allow_leading_nan: bool = False) -> np.ndarray:
    """Float64 array of ``x``; ValueError naming the first non-positive or NaN row."""
    arr = _series_array(x, name)
    bad = ~(np.isfinite(arr) & (arr > 0))
    if allow_leading_nan and bad.any():
        first_ok = int(np.argmax(~bad)) if (~bad).any() else len(arr)
        bad[:first_ok] = False
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: row {x.index[i]} has value {arr[i]!r}; expected a finite price > 0 "
            "(clean or align the series first; nothing is filled here)"
        )
    return arr


def _ohlc_columns(ohlc: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not isinstance(ohlc, pd.DataFrame):
        raise TypeError(f"ohlc must be a pandas DataFrame, got {type(ohlc).__name__}")
    missing = [c for c in columns if c not in ohlc.columns]
    if missing:
        raise ValueError(
            f"ohlc is missing column(s) {missing} (got: {', '.join(map(str, ohlc.columns))})"
        )
    return {c: _check_prices(ohlc[c], f"ohlc[{c!r}]") for c in columns}


def _check_same_index(a: pd.Series | pd.DataFrame, b: pd.Series, name: str) -> None:
    if not a.index.equals(b.index):
        raise ValueError(
            f"{name} must be aligned to the OHLC index (same sessions); align it first, e.g. "
            "data_feeds.align_to_index(vix, ohlc.index, max_fill=1)"
        )


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's RSI of a close series (see :func:`rsi_nb`).

    Parameters
    ----------
    close : pandas.Series
        Closes, shape ``(n,)``.
    window : int, default 14
        Number of changes (>= 2).

    Returns
    -------
    pandas.Series
        ``rsi_<window>`` in ``[0, 100]``, aligned to ``close``; NaN for the first ``window``
        sessions.

    Raises
    ------
    ValueError
        ``window < 2``.
    TypeError
        ``close`` is not a Series.

    References
    ----------
    Wilder (1978), *New Concepts in Technical Trading Systems*, "Relative Strength Index".
    """
    w = _check_int("window", window, 2)
    return pd.Series(rsi_nb(_series_array(close, "close"), w), index=close.index, name=f"rsi_{w}")


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD, signal and histogram of a close series (see :func:`macd_nb`).

    Parameters
    ----------
    close : pandas.Series
        Closes, shape ``(n,)``.
    fast, slow, signal : int
        EMA spans, ``1 <= fast < slow``, ``signal >= 1``.

    Returns
    -------
    pandas.DataFrame
        Columns ``macd``, ``macd_signal``, ``macd_histogram`` (price units).

    Raises
    ------
    ValueError
        Bad spans.

    References
    ----------
    Appel (2005), *Technical Analysis: Power Tools for Active Investors*, ch. 8.
    """
    f = _check_int("fast", fast, 1)
    s = _check_int("slow", slow, 2)
    g = _check_int("signal", signal, 1)
    if f >= s:
        raise ValueError(f"fast ({f}) must be < slow ({s})")
    out = macd_nb(_series_array(close, "close"), f, s, g)
    return pd.DataFrame(
        {"macd": out[0], "macd_signal": out[1], "macd_histogram": out[2]}, index=close.index
    )


def bollinger(close: pd.Series, window: int = 20, n_std: float = 2.0) -> pd.DataFrame:
    """Bollinger bands with bandwidth and %b (see :func:`bollinger_nb`).

    Parameters
    ----------
    close : pandas.Series
        Closes, shape ``(n,)``.
    window : int, default 20
        SMA / standard-deviation window (>= 2).
    n_std : float, default 2.0
        Band half-width in population standard deviations (> 0).

    Returns
    -------
    pandas.DataFrame
        Columns ``bb_upper``, ``bb_middle``, ``bb_lower`` (price units), ``bb_width``
        (``(upper - lower) / middle``) and ``bb_position`` (``(C - lower) / (upper - lower)``).

    Raises
    ------
    ValueError
        ``window < 2`` or ``n_std <= 0``.

    References
    ----------
    Bollinger (2001), *Bollinger on Bollinger Bands*, ch. 7 (%b) and 8 (BandWidth).
    """
    w = _check_int("window", window, 2)
    if not (isinstance(n_std, int | float) and n_std > 0):
        raise ValueError(f"n_std must be a number > 0, got {n_std!r}")
    out = bollinger_nb(_series_array(close, "close"), w, float(n_std))
    cols = ("bb_upper", "bb_middle", "bb_lower", "bb_width", "bb_position")
    return pd.DataFrame(dict(zip(cols, out, strict=True)), index=close.index)


def garch_forecast(
    close: pd.Series,
    fit_window: int = 1000,
    refit_every: int = 21,
    min_obs: int = 250,
) -> pd.Series:
    """Rolling-refit GARCH(1,1) one-day-ahead volatility forecast, causal.

    Returns ``r_t = 100 ln(C_t / C_{t-1})`` (percent log returns). At the refit sessions
    ``T_k = min_obs + k * refit_every`` (positions in ``close``; the schedule is anchored at
    the series start, so truncating the future leaves every past refit unchanged) a constant-
    mean GARCH(1,1) with normal errors is fitted by ``arch.arch_model(..., mean="Constant",
    vol="GARCH", p=1, q=1, dist="normal")`` on the last ``fit_window`` returns up to ``T_k``
    (fewer while the history is shorter: expanding until ``fit_window`` returns exist, rolling
    afterwards). For ``t`` in ``[T_k, T_{k+1})`` the value at ``t`` is the forecast of the
    variance of ``r_{t+1}`` from the fitted parameters and returns up to ``t``
    (:func:`garch_filter_nb`, the same recursion ``arch``'s ``forecast(horizon=1)`` runs with
    fixed parameters), annualized: ``sqrt(252 * sigma2_{t+1}) / 100``.

    Parameters
    ----------
    close : pandas.Series
        Closes (finite, > 0), shape ``(n,)``.
    fit_window : int, default 1000
        Maximum returns per fit (>= 100); 0 for an expanding window.
    refit_every : int, default 21
        Sessions between refits (>= 1).
    min_obs : int, default 250
        Returns in the first fit (>= 100); values before session ``min_obs`` are NaN.

    Returns
    -------
    pandas.Series
        ``garch_forecast``: decimal volatility annualized with 252 sessions, aligned to
        ``close``. ``attrs["fits"]`` is a DataFrame with one row per refit (``fit_end`` session,
        ``n_obs``, ``mu``, ``omega``, ``alpha``, ``beta``, ``persistence``, ``converged``).

    Raises
    ------
    ValueError
        A non-finite or non-positive close (names the row), bad ``fit_window`` /
        ``refit_every`` / ``min_obs``.

    References
    ----------
    Bollerslev (1986), eq. (3) with p = q = 1; ``arch`` (K. Sheppard), ``arch_model`` and
    ``ARCHModelResult.forecast``.
    """
    from arch import arch_model

    c = _check_prices(close, "close")
    refit = _check_int("refit_every", refit_every, 1)
    first = _check_int("min_obs", min_obs, 100)
    if isinstance(fit_window, bool) or not isinstance(fit_window, int | np.integer):
        raise ValueError(f"fit_window must be an integer (0 = expanding), got {fit_window!r}")
    window = int(fit_window)
    if window != 0 and window < 100:
        raise ValueError(f"fit_window must be 0 (expanding) or >= 100, got {window}")
    n = c.shape[0]
    r = np.full(n, _NAN)
    r[1:] = 100.0 * np.diff(np.log(c))
    var = np.full(n, _NAN)
    fits = []
    t_fit = first
    while t_fit < n:
        lo = 1 if window == 0 else max(1, t_fit - window + 1)
        y = r[lo : t_fit + 1]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = arch_model(
                y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False
            ).fit(disp="off")
        mu, omega, alpha, beta = (float(v) for v in res.params.to_numpy())
        s2 = float(res.conditional_volatility[-1]) ** 2
        end = min(t_fit + refit, n)
        var[t_fit:end] = garch_filter_nb(r, mu, omega, alpha, beta, s2, t_fit, end)
        fits.append(
            {
                "fit_end": close.index[t_fit],
                "n_obs": len(y),
                "mu": mu,
                "omega": omega,
                "alpha": alpha,
                "beta": beta,
                "persistence": alpha + beta,
                "converged": res.convergence_flag == 0 and not caught,
            }
        )
        t_fit += refit
    out = pd.Series(np.sqrt(TRADING_DAYS * var) / 100.0, index=close.index, name="garch_forecast")
    out.attrs["fits"] = pd.DataFrame(fits)
    return out


def technical_features(ohlc: pd.DataFrame) -> pd.DataFrame:
    """The technical feature set (design doc 001, table 3.1) of daily bars.

    Parameters
    ----------
    ohlc : pandas.DataFrame
        Daily bars with lowercase ``high``, ``low``, ``close`` (finite, > 0), shape ``(n, .)``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TECHNICAL_FEATURE_COLUMNS`, aligned to ``ohlc.index``:

        ``rsi_14``, ``rsi_28`` Wilder RSI; ``macd``, ``macd_signal``, ``macd_histogram``
        12/26/9; ``bb_*`` Bollinger 20 / 2 (population std); ``sma_20/50/200``,
        ``ema_12/26``; ``price_vs_smaN = C / SMA_N - 1``; ``sma_cross_20_50`` 1.0 if
        ``SMA_20 > SMA_50`` else 0.0 (NaN in the warm-up); ``returns_Nd = C_t / C_{t-N} - 1``;
        ``high_52w`` / ``low_52w`` the highest high / lowest low of the last 252 sessions;
        ``dist_from_high = (high_52w - C) / high_52w``, ``dist_from_low = (C - low_52w) /
        low_52w``.

    Raises
    ------
    ValueError
        A missing column or a non-finite / non-positive price (names the row).
    TypeError
        ``ohlc`` is not a DataFrame.
    """
    cols = _ohlc_columns(ohlc, ("high", "low", "close"))
    c, h, lo = cols["close"], cols["high"], cols["low"]
    out: dict[str, np.ndarray] = {}
    out["rsi_14"] = rsi_nb(c, 14)
    out["rsi_28"] = rsi_nb(c, 28)
    m = macd_nb(c, 12, 26, 9)
    out["macd"], out["macd_signal"], out["macd_histogram"] = m[0], m[1], m[2]
    bb = bollinger_nb(c, 20, 2.0)
    out["bb_upper"], out["bb_lower"], out["bb_width"], out["bb_position"] = (
        bb[0],
        bb[2],
        bb[3],
        bb[4],
    )
    for w in (20, 50, 200):
        out[f"sma_{w}"] = rolling_mean_nb(c, w)
    out["ema_12"] = ema_nb(c, 12)
    out["ema_26"] = ema_nb(c, 26)
    for w in (20, 50, 200):
        out[f"price_vs_sma{w}"] = c / out[f"sma_{w}"] - 1.0
    cross = (out["sma_20"] > out["sma_50"]).astype(np.float64)
    cross[np.isnan(out["sma_50"])] = _NAN
    out["sma_cross_20_50"] = cross
    for p in (1, 5, 20, 60):
        out[f"returns_{p}d"] = pct_change_nb(c, p)
    out["high_52w"] = rolling_max_nb(h, 252)
    out["low_52w"] = rolling_min_nb(lo, 252)
    out["dist_from_high"] = (out["high_52w"] - c) / out["high_52w"]
    out["dist_from_low"] = (c - out["low_52w"]) / out["low_52w"]
    return pd.DataFrame({k: out[k] for k in TECHNICAL_FEATURE_COLUMNS}, index=ohlc.index)


def volatility_features(
    ohlc: pd.DataFrame,
    vix: pd.Series,
    *,
    garch_window: int = 1000,
    garch_refit_every: int = 21,
    garch_min_obs: int = 250,
) -> pd.DataFrame:
    """The volatility feature set (design doc 001, table 3.2).

    Parameters
    ----------
    ohlc : pandas.DataFrame
        Daily bars with ``high``, ``low``, ``close`` (finite, > 0), shape ``(n, .)``.
    vix : pandas.Series
        The implied-vol index close (VIX, vol points) on the same index as ``ohlc`` (NaN
        allowed where it is missing; windows holding a NaN give NaN).
    garch_window, garch_refit_every, garch_min_obs : int
        :func:`garch_forecast` settings (rolling 1000-return window refitted every 21
        sessions after 250 returns by default).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VOLATILITY_FEATURE_COLUMNS`:

        ``hv_N`` close-to-close sample std (ddof=1) of N log returns x sqrt(252), decimal;
        ``hv_ratio_5_20 = hv_5 / hv_20``, ``hv_ratio_20_60 = hv_20 / hv_60``; ``vix``;
        ``vix_sma_10/20``; ``vix_rank`` the 252-session range rank (IV rank, :func:`range_rank_nb`);
        ``vix_percentile`` the 252-session percentile (IV percentile,
        :func:`percentile_rank_nb`); ``hv_iv_ratio = hv_20 / (vix / 100)``;
        ``vix_change_1d/5d`` VIX differences in vol points; ``vix_zscore`` 60-session z-score;
        ``vol_regime`` VIX bucket 0 (< 15), 1 (15-20), 2 (20-25), 3 (>= 25); ``vol_trend =
        SMA_5(vix) - SMA_20(vix)`` (vol points); ``garch_forecast`` (:func:`garch_forecast`);
        ``parkinson_hv`` Parkinson (1980) 20-session vol, decimal. ``attrs["garch_fits"]``
        holds the GARCH refit table.

    Raises
    ------
    ValueError
        Missing columns, a bad price, or ``vix`` not on the OHLC index.
    TypeError
        Wrong argument types.
    """
    cols = _ohlc_columns(ohlc, ("high", "low", "close"))
    c, h, lo = cols["close"], cols["high"], cols["low"]
    if not isinstance(vix, pd.Series):
        raise TypeError(f"vix must be a pandas Series, got {type(vix).__name__}")
    _check_same_index(ohlc, vix, "vix")
    v = _series_array(vix, "vix")
    out: dict[str, np.ndarray] = {}
    for w in (5, 10, 20, 60, 120):
        out[f"hv_{w}"] = realized_vol_1d_nb(c, c, c, c, w, CLOSE_TO_CLOSE)
    out["hv_ratio_5_20"] = out["hv_5"] / out["hv_20"]
    out["hv_ratio_20_60"] = out["hv_20"] / out["hv_60"]
    out["vix"] = v
    out["vix_sma_10"] = rolling_mean_nb(v, 10)
    out["vix_sma_20"] = rolling_mean_nb(v, 20)
    out["vix_rank"] = range_rank_nb(v, 252)
    out["vix_percentile"] = percentile_rank_nb(v, 252)
    out["hv_iv_ratio"] = out["hv_20"] / (v / 100.0)
    out["vix_change_1d"] = diff_nb(v, 1)
    out["vix_change_5d"] = diff_nb(v, 5)
    out["vix_zscore"] = zscore_nb(v, 60)
    bucket = np.digitize(v, [15.0, 20.0, 25.0]).astype(np.float64)
    bucket[np.isnan(v)] = _NAN
    out["vol_regime"] = bucket
    out["vol_trend"] = rolling_mean_nb(v, 5) - out["vix_sma_20"]
    garch = garch_forecast(
        ohlc["close"],
        fit_window=garch_window,
        refit_every=garch_refit_every,
        min_obs=garch_min_obs,
    )
    out["garch_forecast"] = garch.to_numpy()
    out["parkinson_hv"] = realized_vol_1d_nb(c, h, lo, c, 20, PARKINSON)
    frame = pd.DataFrame({k: out[k] for k in VOLATILITY_FEATURE_COLUMNS}, index=ohlc.index)
    frame.attrs["garch_fits"] = garch.attrs["fits"]
    return frame


@dataclass(frozen=True)
class RegimeThresholds:
    """Thresholds of the rule-based regime (design doc 001, section 4.3).

    Attributes
    ----------
    vix_low, vix_high : float
        VIX levels in vol points (15, 25).
    rank_low, rank_high, rank_mid : float
        VIX range-rank fractions (0.30, 0.80, 0.50).
    hv_iv_contraction, hv_iv_expansion : float
        ``hv_20 / (vix / 100)`` below which implied vol is rich (0.6) and above which it is
        cheap (0.9).
    """

    vix_low: float = 15.0
    vix_high: float = 25.0
    rank_low: float = 0.30
    rank_high: float = 0.80
    rank_mid: float = 0.50
    hv_iv_contraction: float = 0.6
    hv_iv_expansion: float = 0.9


def regime_features(
    close: pd.Series,
    vol: pd.DataFrame,
    sma_50: pd.Series,
    sma_200: pd.Series,
    thresholds: RegimeThresholds | None = None,
) -> pd.DataFrame:
    """The regime feature set (design doc 001, table 3.3).

    Parameters
    ----------
    close : pandas.Series
        Closes, shape ``(n,)``.
    vol : pandas.DataFrame
        At least ``vix``, ``vix_rank``, ``hv_iv_ratio`` (:func:`volatility_features`) on the
        same index.
    sma_50, sma_200 : pandas.Series
        Simple moving averages of ``close`` (for ``trend_regime``).
    thresholds : RegimeThresholds, optional
        Rule thresholds (design values by default).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`REGIME_FEATURE_COLUMNS`: ``regime`` (code into :data:`REGIMES`, -1
        undefined, :func:`regime_nb`); ``regime_<name>`` one-hot (0/1, NaN when undefined);
        ``days_in_regime`` (:func:`days_in_regime_nb`); ``regime_change_1w``
        (:func:`changed_within_nb` over 5 sessions); ``vix_above_20``, ``vix_above_25``,
        ``vix_below_15``, ``hv_iv_contraction`` (HV/IV < 0.6), ``hv_iv_expansion`` (HV/IV >
        0.9) as 0/1; ``trend_regime`` +1 if ``C > SMA_50 > SMA_200``, -1 if ``C < SMA_50 <
        SMA_200``, else 0 (NaN in the warm-up).

    Raises
    ------
    ValueError
        Inputs not on the same index or a missing ``vol`` column.
    """
    th = thresholds or RegimeThresholds()
    missing = [k for k in ("vix", "vix_rank", "hv_iv_ratio") if k not in vol.columns]
    if missing:
        raise ValueError(f"vol is missing column(s) {missing}")
    for name, s in (("vol", vol), ("sma_50", sma_50), ("sma_200", sma_200)):
        if not s.index.equals(close.index):
            raise ValueError(f"{name} must be on the same index as close")
    v = _series_array(vol["vix"], "vix")
    rank = _series_array(vol["vix_rank"], "vix_rank")
    hv_iv = _series_array(vol["hv_iv_ratio"], "hv_iv_ratio")
    codes = regime_nb(
        v,
        rank,
        hv_iv,
        th.vix_low,
        th.vix_high,
        th.rank_low,
        th.rank_high,
        th.rank_mid,
        th.hv_iv_contraction,
        th.hv_iv_expansion,
    )
    undefined = codes < 0
    out: dict[str, np.ndarray] = {"regime": codes}
    for i, name in enumerate(REGIMES):
        col = (codes == i).astype(np.float64)
        col[undefined] = _NAN
        out[f"regime_{name}"] = col
    out["days_in_regime"] = days_in_regime_nb(codes)
    out["regime_change_1w"] = changed_within_nb(codes, 5)

    def flag(cond: np.ndarray, source: np.ndarray) -> np.ndarray:
        f = cond.astype(np.float64)
        f[np.isnan(source)] = _NAN
        return f

    with np.errstate(invalid="ignore"):
        out["vix_above_20"] = flag(v > 20.0, v)
        out["vix_above_25"] = flag(v > th.vix_high, v)
        out["vix_below_15"] = flag(v < th.vix_low, v)
        out["hv_iv_contraction"] = flag(hv_iv < th.hv_iv_contraction, hv_iv)
        out["hv_iv_expansion"] = flag(hv_iv > th.hv_iv_expansion, hv_iv)
        c = _series_array(close, "close")
        s50 = _series_array(sma_50, "sma_50")
        s200 = _series_array(sma_200, "sma_200")
        trend = np.where((c > s50) & (s50 > s200), 1.0, np.where((c < s50) & (s50 < s200), -1.0, 0))
        trend = trend.astype(np.float64)
        trend[np.isnan(s200) | np.isnan(s50)] = _NAN
    out["trend_regime"] = trend
    return pd.DataFrame({k: out[k] for k in REGIME_FEATURE_COLUMNS}, index=close.index)


def market_features(
    ohlc: pd.DataFrame,
    vix: pd.Series,
    *,
    garch_window: int = 1000,
    garch_refit_every: int = 21,
    garch_min_obs: int = 250,
    thresholds: RegimeThresholds | None = None,
) -> pd.DataFrame:
    """Technical, volatility and regime features in one frame (design doc 001, section 3).

    Parameters
    ----------
    ohlc : pandas.DataFrame
        Daily bars (``high``, ``low``, ``close``), shape ``(n, .)``.
    vix : pandas.Series
        VIX close (vol points) aligned to ``ohlc.index``.
    garch_window, garch_refit_every, garch_min_obs : int
        See :func:`garch_forecast`.
    thresholds : RegimeThresholds, optional
        Regime thresholds.

    Returns
    -------
    pandas.DataFrame
        :data:`TECHNICAL_FEATURE_COLUMNS` + :data:`VOLATILITY_FEATURE_COLUMNS` +
        :data:`REGIME_FEATURE_COLUMNS` (61 columns), aligned to ``ohlc.index``;
        ``attrs["garch_fits"]`` the GARCH refit table. Every value at ``t`` uses sessions
        ``<= t`` only.

    Raises
    ------
    ValueError, TypeError
        As :func:`technical_features` and :func:`volatility_features`.
    """
    tech = technical_features(ohlc)
    vol = volatility_features(
        ohlc,
        vix,
        garch_window=garch_window,
        garch_refit_every=garch_refit_every,
        garch_min_obs=garch_min_obs,
    )
    reg = regime_features(ohlc["close"], vol, tech["sma_50"], tech["sma_200"], thresholds)
    frame = pd.concat([tech, vol, reg], axis=1)
    frame.attrs["garch_fits"] = vol.attrs["garch_fits"]
    return frame


# --------------------------------------------------------------------------------------
# vectorbt faces
# --------------------------------------------------------------------------------------


def _columns(a: np.ndarray) -> list[np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    return [np.ascontiguousarray(a[:, j]) for j in range(a.shape[1])]


def _stack(cols: list[np.ndarray]) -> np.ndarray:
    return np.column_stack(cols)


def _rsi_apply(close: np.ndarray, window: int) -> np.ndarray:
    w = _check_int("window", int(window), 2)
    return _stack([rsi_nb(c, w) for c in _columns(close)])


def _macd_apply(
    close: np.ndarray, fast: int, slow: int, signal: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 1 <= int(fast) < int(slow) or int(signal) < 1:
        raise ValueError(f"need 1 <= fast < slow and signal >= 1, got {fast}, {slow}, {signal}")
    outs = [macd_nb(c, int(fast), int(slow), int(signal)) for c in _columns(close)]
    return tuple(_stack([o[i] for o in outs]) for i in range(3))  # type: ignore[return-value]


def _bollinger_apply(
    close: np.ndarray, window: int, n_std: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    w = _check_int("window", int(window), 2)
    if not n_std > 0:
        raise ValueError(f"n_std must be > 0, got {n_std!r}")
    outs = [bollinger_nb(c, w, float(n_std)) for c in _columns(close)]
    return tuple(_stack([o[i] for o in outs]) for i in range(5))  # type: ignore[return-value]


def _vol_rank_apply(
    x: np.ndarray, rank_window: int, zscore_window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rw = _check_int("rank_window", int(rank_window), 2)
    zw = _check_int("zscore_window", int(zscore_window), 2)
    cols = _columns(x)
    return (
        _stack([range_rank_nb(c, rw) for c in cols]),
        _stack([percentile_rank_nb(c, rw) for c in cols]),
        _stack([zscore_nb(c, zw) for c in cols]),
    )


def _garch_apply(close: np.ndarray, fit_window: int, refit_every: int, min_obs: int) -> np.ndarray:
    cols = []
    for c in _columns(close):
        s = pd.Series(c)
        cols.append(
            garch_forecast(
                s, fit_window=int(fit_window), refit_every=int(refit_every), min_obs=int(min_obs)
            ).to_numpy()
        )
    return _stack(cols)


def _regime_apply(
    vix: np.ndarray,
    vix_rank: np.ndarray,
    hv_iv_ratio: np.ndarray,
    vix_low: float,
    vix_high: float,
) -> tuple[np.ndarray, np.ndarray]:
    th = RegimeThresholds()
    codes = [
        regime_nb(
            v,
            r,
            h,
            float(vix_low),
            float(vix_high),
            th.rank_low,
            th.rank_high,
            th.rank_mid,
            th.hv_iv_contraction,
            th.hv_iv_expansion,
        )
        for v, r, h in zip(_columns(vix), _columns(vix_rank), _columns(hv_iv_ratio), strict=True)
    ]
    return _stack(codes), _stack([days_in_regime_nb(c) for c in codes])


Rsi = vbt.IndicatorFactory(
    class_name="Rsi",
    short_name="rsi",
    input_names=["close"],
    param_names=["window"],
    output_names=["rsi"],
).from_apply_func(_rsi_apply, window=14)
Rsi.__doc__ = """vectorbt indicator: Wilder's RSI (:func:`rsi_nb`) over a grid of ``window``.

``Rsi.run(close, window=[14, 28]).rsi``; values identical to :func:`rsi`."""

Macd = vbt.IndicatorFactory(
    class_name="Macd",
    short_name="macd",
    input_names=["close"],
    param_names=["fast", "slow", "signal"],
    output_names=["macd", "signal_line", "histogram"],
).from_apply_func(_macd_apply, fast=12, slow=26, signal=9)
Macd.__doc__ = """vectorbt indicator: MACD line, signal line and histogram (:func:`macd_nb`).

``Macd.run(close, fast=12, slow=26, signal=9)``; outputs ``macd``, ``signal_line``,
``histogram`` identical to :func:`macd`."""

Bollinger = vbt.IndicatorFactory(
    class_name="Bollinger",
    short_name="bb",
    input_names=["close"],
    param_names=["window", "n_std"],
    output_names=["upper", "middle", "lower", "width", "position"],
).from_apply_func(_bollinger_apply, window=20, n_std=2.0)
Bollinger.__doc__ = """vectorbt indicator: Bollinger bands, bandwidth and %b (:func:`bollinger_nb`).

``Bollinger.run(close, window=20, n_std=2.0)``; identical to :func:`bollinger`."""

VolRank = vbt.IndicatorFactory(
    class_name="VolRank",
    short_name="volrank",
    input_names=["x"],
    param_names=["rank_window", "zscore_window"],
    output_names=["rank", "percentile", "zscore"],
).from_apply_func(_vol_rank_apply, rank_window=252, zscore_window=60)
VolRank.__doc__ = """vectorbt indicator: range rank, percentile and z-score of an implied-vol index.

``VolRank.run(vix, rank_window=252, zscore_window=60)``: :func:`range_rank_nb`,
:func:`percentile_rank_nb` over ``rank_window`` and :func:`zscore_nb` over ``zscore_window``
(the ``vix_rank``, ``vix_percentile``, ``vix_zscore`` of :func:`volatility_features`)."""

GarchForecast = vbt.IndicatorFactory(
    class_name="GarchForecast",
    short_name="garch",
    input_names=["close"],
    param_names=["fit_window", "refit_every", "min_obs"],
    output_names=["vol"],
).from_apply_func(_garch_apply, fit_window=1000, refit_every=21, min_obs=250)
GarchForecast.__doc__ = """vectorbt indicator: rolling-refit GARCH(1,1) forecast.

See :func:`garch_forecast`.

``GarchForecast.run(close, fit_window=[500, 1000], refit_every=21).vol``: decimal, 252-annualized
one-day-ahead vol; the fits run ``arch`` (Python), the filter :func:`garch_filter_nb`."""

MarketRegime = vbt.IndicatorFactory(
    class_name="MarketRegime",
    short_name="regime",
    input_names=["vix", "vix_rank", "hv_iv_ratio"],
    param_names=["vix_low", "vix_high"],
    output_names=["regime", "days_in_regime"],
).from_apply_func(_regime_apply, vix_low=15.0, vix_high=25.0)
MarketRegime.__doc__ = """vectorbt indicator: rule-based regime code and days in regime.

``MarketRegime.run(vix, vix_rank, hv_iv_ratio, vix_low=[13, 15], vix_high=25)``: :func:`regime_nb`
with the other thresholds at their :class:`RegimeThresholds` defaults, and
:func:`days_in_regime_nb`."""
