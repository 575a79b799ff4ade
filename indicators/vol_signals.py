"""Vol-of-vol, IV rank/percentile and variance-risk-premium (VRP) signals.

Three faces, as in :mod:`indicators.realized_vol`:

* numba kernels: :func:`changes_nb` (level changes), :func:`rolling_corr_nb` (rolling Pearson
  correlation), :func:`past_zscore_nb` (z-score against the strict past only),
  :func:`vrp_nb` (implied minus forecast realized); IV rank and percentile reuse
  :func:`indicators.features.range_rank_nb` and :func:`indicators.features.percentile_rank_nb`;
* the Python API :func:`vvix_signals`, :func:`iv_rank_percentile`, :func:`vrp_signals` on
  pandas Series, and the vectorbt indicators :data:`VolOfVol`, :data:`IVRank`, :data:`VRPZScore`;
* the backtrader indicators :class:`VolOfVolIndicator`, :class:`IVRankIndicator`,
  :class:`VRPIndicator`.

Conventions
-----------
* The value at bar ``t`` uses bars ``<= t`` only. :func:`past_zscore_nb` compares ``x_t`` with
  the mean and standard deviation of bars **strictly before** ``t`` (rolling
  ``t-window .. t-1`` or expanding ``0 .. t-1``), so the current value never moves its own
  reference.
* Implied and realized vols are decimal (0.20 = 20 %); VVIX is in index points (vol points of
  VIX options, as published by Cboe). Changes are in the input's units (``kind="diff"``) or
  natural-log changes (``kind="log"``).
* NaNs are never skipped: a NaN inside a window makes that bar's value NaN.

References
----------
.. [1] Cboe (2012). "Double the Fun with CBOE's VVIX Index" (VVIX: 30-day expected volatility
   of VIX from VIX option prices, computed like VIX).
.. [2] Carr, P. and Wu, L. (2009). "Variance Risk Premiums". *Review of Financial Studies*
   22(3), 1311-1341 (VRP = implied minus expected realized variance; we use the vol form).
.. [3] Bollerslev, T., Tauchen, G. and Zhou, H. (2009). "Expected Stock Returns and Variance
   Risk Premia". *Review of Financial Studies* 22(11), 4463-4492.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import backtrader as bt
import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

from indicators.features import percentile_rank_nb, range_rank_nb
from indicators.realized_vol import _line_full, _line_tail

__all__ = [
    "CHANGE_KINDS",
    "IVRank",
    "IVRankIndicator",
    "PastZScore",
    "VRPIndicator",
    "VRPZScore",
    "VolOfVol",
    "VolOfVolIndicator",
    "changes_nb",
    "iv_rank_percentile",
    "past_zscore_nb",
    "rolling_corr_nb",
    "vrp_nb",
    "vrp_signals",
    "vvix_signals",
]

#: Change kinds of :func:`changes_nb`, in the order of their integer ids.
CHANGE_KINDS: tuple[str, ...] = ("diff", "log")

_NAN = np.nan


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _kind_id(kind: str) -> int:
    if isinstance(kind, str) and kind in CHANGE_KINDS:
        return CHANGE_KINDS.index(kind)
    raise ValueError(f"unknown change kind {kind!r}; allowed values: {', '.join(CHANGE_KINDS)}")


def _series(name: str, x: object) -> pd.Series:
    if not isinstance(x, pd.Series):
        raise TypeError(f"{name} must be a pandas Series, got {type(x).__name__}")
    return x


def _values(x: pd.Series) -> np.ndarray:
    return np.ascontiguousarray(x.to_numpy(dtype=np.float64, na_value=np.nan))


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(cache=True)
def changes_nb(x: np.ndarray, periods: int, kind_id: int) -> np.ndarray:
    """Change of ``x`` over ``periods`` bars.

    Parameters
    ----------
    x : np.ndarray
        1-D float64 levels, shape ``(n,)``.
    periods : int
        Lag in bars (>= 1).
    kind_id : int
        0: ``x_t - x_{t-periods}`` (input units); 1: ``ln(x_t / x_{t-periods})``.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``; NaN for ``t < periods``.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(periods, n):
        if kind_id == 0:
            out[t] = x[t] - x[t - periods]
        else:
            out[t] = math.log(x[t] / x[t - periods])
    return out


@njit(cache=True)
def rolling_corr_nb(x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Rolling Pearson correlation of ``x`` and ``y`` over bars ``t-window+1 .. t``.

    Parameters
    ----------
    x, y : np.ndarray
        1-D float64, shape ``(n,)`` each.
    window : int
        Window length (>= 3).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, in ``[-1, 1]``; NaN when the window is incomplete, holds a NaN in
        either series or either series is flat. Two-pass (centred) sums, so no cancellation.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    for t in range(window - 1, n):
        sx = 0.0
        sy = 0.0
        bad = False
        for j in range(t - window + 1, t + 1):
            if math.isnan(x[j]) or math.isnan(y[j]):
                bad = True
                break
            sx += x[j]
            sy += y[j]
        if bad:
            continue
        mx = sx / window
        my = sy / window
        cxy = 0.0
        cxx = 0.0
        cyy = 0.0
        for j in range(t - window + 1, t + 1):
            dx = x[j] - mx
            dy = y[j] - my
            cxy += dx * dy
            cxx += dx * dx
            cyy += dy * dy
        if cxx > 0.0 and cyy > 0.0:
            out[t] = cxy / math.sqrt(cxx * cyy)
    return out


@njit(cache=True)
def past_mean_sd_nb(x: np.ndarray, t: int, window: int) -> tuple[float, float]:
    """Mean and ``ddof = 1`` standard deviation of ``x[t-window .. t-1]`` (the strict past).

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    t : int
        The bar being scored (``window <= t < n``); ``x[t]`` is not used.
    window : int
        Number of past bars (>= 2).

    Returns
    -------
    tuple of float
        ``(mean, sd)`` in the units of ``x``; ``(NaN, NaN)`` when the window holds a NaN.
    """
    s = 0.0
    for j in range(t - window, t):
        if math.isnan(x[j]):
            return _NAN, _NAN
        s += x[j]
    m = s / window
    ss = 0.0
    for j in range(t - window, t):
        d = x[j] - m
        ss += d * d
    return m, math.sqrt(ss / (window - 1))


@njit(cache=True)
def past_zscore_nb(x: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Z-score of ``x_t`` against its own strict past: ``(x_t - mean) / std(ddof=1)``.

    Parameters
    ----------
    x : np.ndarray
        1-D float64, shape ``(n,)``.
    window : int
        ``> 0``: the reference is ``x[t-window .. t-1]`` (rolling, needs ``window`` past bars,
        ``window >= 2``). ``0``: expanding, the reference is every non-NaN ``x[0 .. t-1]``.
    min_periods : int
        Expanding mode only: minimum number of non-NaN past values (>= 2).

    Returns
    -------
    np.ndarray
        Shape ``(n,)``; NaN when ``x_t`` is NaN, the reference is too short (rolling: holds a
        NaN) or flat. ``x_t`` itself is never part of its reference.
    """
    n = x.shape[0]
    out = np.full(n, _NAN)
    if window > 0:
        for t in range(window, n):
            if math.isnan(x[t]):
                continue
            m, sd = past_mean_sd_nb(x, t, window)
            if sd > 0.0:  # False for NaN (a NaN in the window)
                out[t] = (x[t] - m) / sd
        return out
    # expanding: Welford over the past, updated after x_t is scored
    count = 0
    mean = 0.0
    m2 = 0.0
    for t in range(n):
        v = x[t]
        if not math.isnan(v):
            if count >= min_periods and count >= 2:
                sd = math.sqrt(m2 / (count - 1))
                if sd > 0.0:
                    out[t] = (v - mean) / sd
            count += 1
            d = v - mean
            mean += d / count
            m2 += d * (v - mean)
    return out


@njit(cache=True)
def vrp_nb(implied: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Variance risk premium in vol form: ``implied_t - forecast_t``.

    Parameters
    ----------
    implied : np.ndarray
        1-D float64 implied vol known at ``t`` (decimal), shape ``(n,)``.
    forecast : np.ndarray
        1-D float64 forecast of realized vol over the same horizon, made with data up to
        ``t`` (decimal), shape ``(n,)``.

    Returns
    -------
    np.ndarray
        Shape ``(n,)``, decimal vol (positive when options are rich).
    """
    return implied - forecast


@njit(cache=True)
def _vrp_z_2d_nb(
    implied: np.ndarray, forecast: np.ndarray, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    vrp = implied - forecast
    z = np.full(vrp.shape, _NAN)
    for c in range(vrp.shape[1]):
        z[:, c] = past_zscore_nb(np.ascontiguousarray(vrp[:, c]), window, min_periods)
    return vrp, z


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def vvix_signals(
    vvix: pd.Series,
    atm_iv: pd.Series | None = None,
    *,
    periods: int = 1,
    kind: str = "diff",
    corr_window: int = 21,
) -> pd.DataFrame:
    """VVIX level, its change, and the rolling correlation of VVIX changes with ATM IV changes.

    Parameters
    ----------
    vvix : pd.Series
        Cboe VVIX close (index points), indexed by date, shape ``(n,)``.
    atm_iv : pd.Series, optional
        ATM implied vol (decimal) on the **same** index (align first, e.g. with
        :func:`data_feeds.align_to_index`). Without it ``vvix_iv_corr`` is omitted.
    periods : int, default 1
        Lag of the changes in bars (>= 1).
    kind : {"diff", "log"}
        ``diff``: VVIX change in points and ATM IV change in decimal vol; ``log``: log changes of
        both.
    corr_window : int, default 21
        Bars in the correlation window (>= 3); the value at ``t`` uses changes ``t-w+1 .. t``.

    Returns
    -------
    pd.DataFrame
        Columns ``vvix`` (level), ``vvix_change``, ``atm_iv_change`` and ``vvix_iv_corr`` (the
        last two only with ``atm_iv``), indexed like ``vvix``.

    Raises
    ------
    TypeError
        Inputs not Series.
    ValueError
        Bad ``periods``, ``kind`` or ``corr_window``, or ``atm_iv`` not on ``vvix``'s index.
    """
    _series("vvix", vvix)
    p = _check_int("periods", periods, 1)
    w = _check_int("corr_window", corr_window, 3)
    k = _kind_id(kind)
    v = _values(vvix)
    out = pd.DataFrame({"vvix": v, "vvix_change": changes_nb(v, p, k)}, index=vvix.index)
    if atm_iv is not None:
        _series("atm_iv", atm_iv)
        if not atm_iv.index.equals(vvix.index):
            raise ValueError(
                "atm_iv must be on the same index as vvix (align it first); "
                f"got {len(atm_iv)} rows vs {len(vvix)}"
            )
        iv_ch = changes_nb(_values(atm_iv), p, k)
        out["atm_iv_change"] = iv_ch
        out["vvix_iv_corr"] = rolling_corr_nb(out["vvix_change"].to_numpy(), iv_ch, w)
    return out


def iv_rank_percentile(implied_vol: pd.Series, window: int = 252) -> pd.DataFrame:
    """IV rank and IV percentile over a trailing lookback (past and current bar only).

    Parameters
    ----------
    implied_vol : pd.Series
        Implied vol (decimal) or a vol index (points), shape ``(n,)``.
    window : int, default 252
        Lookback including the current bar (>= 2).

    Returns
    -------
    pd.DataFrame
        ``iv_rank`` = ``(x_t - min) / (max - min)`` over ``x[t-window+1 .. t]``
        (:func:`indicators.features.range_rank_nb`) and ``iv_percentile`` = share of the
        ``window - 1`` previous values strictly below ``x_t``
        (:func:`indicators.features.percentile_rank_nb`); both in ``[0, 1]``.

    Raises
    ------
    TypeError
        Input not a Series.
    ValueError
        ``window < 2``.
    """
    _series("implied_vol", implied_vol)
    w = _check_int("window", window, 2)
    x = _values(implied_vol)
    return pd.DataFrame(
        {"iv_rank": range_rank_nb(x, w), "iv_percentile": percentile_rank_nb(x, w)},
        index=implied_vol.index,
    )


def vrp_signals(
    implied_vol: pd.Series,
    forecast_vol: pd.Series,
    *,
    window: int = 0,
    min_periods: int = 20,
) -> pd.DataFrame:
    """VRP (implied minus forecast realized vol) and its z-score against its own past.

    Parameters
    ----------
    implied_vol : pd.Series
        Implied vol at ``t`` for a horizon ``h`` (decimal, e.g. the 30-day ATM IV or VIX/100).
    forecast_vol : pd.Series
        Forecast of realized vol over the same horizon made with data up to ``t`` (decimal,
        e.g. :func:`indicators.har_forecast` annualized), on the same index.
    window : int, default 0
        0: expanding z-score over every past VRP; ``>= 2``: rolling over the ``window`` previous
        bars.
    min_periods : int, default 20
        Expanding mode: past values needed before a z-score is given (>= 2).

    Returns
    -------
    pd.DataFrame
        ``vrp`` (decimal vol) and ``vrp_zscore`` (:func:`past_zscore_nb`: ``vrp_t`` never enters
        its own mean or standard deviation).

    Raises
    ------
    TypeError
        Inputs not Series.
    ValueError
        Different indexes, ``window`` 1 or negative, ``min_periods < 2``.
    """
    _series("implied_vol", implied_vol)
    _series("forecast_vol", forecast_vol)
    if not implied_vol.index.equals(forecast_vol.index):
        raise ValueError("implied_vol and forecast_vol must share one index (align them first)")
    w = _check_window0(window)
    mp = _check_int("min_periods", min_periods, 2)
    vrp = vrp_nb(_values(implied_vol), _values(forecast_vol))
    return pd.DataFrame(
        {"vrp": vrp, "vrp_zscore": past_zscore_nb(vrp, w, mp)}, index=implied_vol.index
    )


def _check_window0(window: object) -> int:
    w = _check_int("window", window, 0)
    if w == 1:
        raise ValueError("window must be 0 (expanding) or an integer >= 2, got 1")
    return w


# --------------------------------------------------------------------------------------
# vectorbt faces
# --------------------------------------------------------------------------------------


def _cols(a: np.ndarray) -> list[np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    return [np.ascontiguousarray(a[:, c]) for c in range(a.shape[1])]


def _vov_apply(
    vvix: np.ndarray, atm_iv: np.ndarray, periods: int, corr_window: int, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = _check_int("periods", periods, 1)
    w = _check_int("corr_window", corr_window, 3)
    k = _kind_id(kind)
    dv = np.column_stack([changes_nb(c, p, k) for c in _cols(vvix)])
    di = np.column_stack([changes_nb(c, p, k) for c in _cols(atm_iv)])
    corr = np.column_stack(
        [rolling_corr_nb(dv[:, c].copy(), di[:, c].copy(), w) for c in range(dv.shape[1])]
    )
    return dv, di, corr


VolOfVol = vbt.IndicatorFactory(
    class_name="VolOfVol",
    short_name="vov",
    input_names=["vvix", "atm_iv"],
    param_names=["periods", "corr_window", "kind"],
    output_names=["vvix_change", "atm_iv_change", "corr"],
).from_apply_func(_vov_apply, periods=1, corr_window=21, kind="diff")
VolOfVol.__doc__ = """vectorbt indicator: VVIX changes, ATM IV changes, their rolling correlation.

``VolOfVol.run(vvix, atm_iv, periods=1, corr_window=21, kind="diff")``, lists for a grid; values
identical to :func:`vvix_signals` (:func:`changes_nb`, :func:`rolling_corr_nb`)."""


def _past_z_apply(x: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    w = _check_window0(window)
    mp = _check_int("min_periods", min_periods, 2)
    cols = _cols(x)
    if not cols:
        return np.empty(np.shape(x), dtype=np.float64)
    return np.column_stack([past_zscore_nb(c, w, mp) for c in cols])


PastZScore = vbt.IndicatorFactory(
    class_name="PastZScore",
    short_name="past_z",
    input_names=["x"],
    param_names=["window", "min_periods"],
    output_names=["zscore"],
).from_apply_func(_past_z_apply, window=0, min_periods=20)
PastZScore.__doc__ = """vectorbt indicator: z-score of ``x_t`` against its own strict past.

``PastZScore.run(x, window=[21, 63], min_periods=2)`` (``window=0`` expanding, else the ``window``
previous bars, ddof 1); every window over every column of ``x`` in one call, values identical to
:func:`past_zscore_nb` (``x_t`` never enters its own mean or standard deviation)."""


def _ivrank_apply(iv: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    w = _check_int("window", window, 2)
    cols = _cols(iv)
    return (
        np.column_stack([range_rank_nb(c, w) for c in cols]),
        np.column_stack([percentile_rank_nb(c, w) for c in cols]),
    )


IVRank = vbt.IndicatorFactory(
    class_name="IVRank",
    short_name="ivr",
    input_names=["implied_vol"],
    param_names=["window"],
    output_names=["rank", "percentile"],
).from_apply_func(_ivrank_apply, window=252)
IVRank.__doc__ = """vectorbt indicator: IV rank and IV percentile over a trailing lookback.

``IVRank.run(implied_vol, window=252)``; values identical to :func:`iv_rank_percentile`."""


def _vrp_apply(
    implied: np.ndarray, forecast: np.ndarray, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    w = _check_window0(window)
    mp = _check_int("min_periods", min_periods, 2)
    return _vrp_z_2d_nb(
        np.asarray(implied, dtype=np.float64), np.asarray(forecast, dtype=np.float64), w, mp
    )


VRPZScore = vbt.IndicatorFactory(
    class_name="VRPZScore",
    short_name="vrp",
    input_names=["implied_vol", "forecast_vol"],
    param_names=["window", "min_periods"],
    output_names=["vrp", "zscore"],
).from_apply_func(_vrp_apply, window=0, min_periods=20)
VRPZScore.__doc__ = """vectorbt indicator: VRP and its z-score against its own strict past.

``VRPZScore.run(implied_vol, forecast_vol, window=0, min_periods=20)`` (``window=0``
expanding); values identical to :func:`vrp_signals`."""


# --------------------------------------------------------------------------------------
# backtrader faces
# --------------------------------------------------------------------------------------


class _ArrayIndicator(bt.Indicator):
    """Base: the ``close`` lines of the first ``_n_inputs`` data feeds go through the subclass's
    ``_compute(arrays) -> tuple of output arrays``, evaluated over the whole buffer in ``once()``
    and over the whole history seen so far in ``next()`` (both read only bars ``<= t``)."""

    _n_inputs: int = 1
    _compute: Callable[[list[np.ndarray]], tuple[np.ndarray, ...]]

    def _sources(self) -> list[bt.LineBuffer]:
        return [d.close for d in self.datas[: self._n_inputs]]

    def next(self) -> None:
        """Event-driven mode: kernels over every bar up to now (expanding z-scores need it)."""
        size = len(self)
        outs = self._compute([_line_tail(s, size) for s in self._sources()])
        for i, out in enumerate(outs):
            self.lines[i][0] = float(out[-1])

    def once(self, start: int, end: int) -> None:
        """Vectorized (runonce) mode: kernels over the preloaded arrays."""
        size = self.data.buflen()
        outs = self._compute([_line_full(s, size) for s in self._sources()])
        for i, out in enumerate(outs):
            dst = self.lines[i].array
            for t in range(start, end):
                dst[t] = float(out[t])


class VolOfVolIndicator(_ArrayIndicator):
    """backtrader indicator: VVIX change and its rolling correlation with ATM IV changes.

    Data 0 line ``close`` is VVIX (points); data 1 line ``close`` is the ATM implied vol
    (decimal). Lines ``vvix_change``, ``atm_iv_change``, ``corr`` as in :func:`vvix_signals`.

    Parameters
    ----------
    periods : int, default 1
    corr_window : int, default 21
    kind : {"diff", "log"}

    Raises
    ------
    ValueError
        Bad parameters (when the indicator is created) or fewer than two data feeds.
    """

    lines = ("vvix_change", "atm_iv_change", "corr")
    _n_inputs = 2
    params = (("periods", 1), ("corr_window", 21), ("kind", "diff"))

    def __init__(self) -> None:
        if len(self.datas) < 2:
            raise ValueError("VolOfVolIndicator needs two data feeds: VVIX and ATM IV")
        self._p = _check_int("periods", self.p.periods, 1)
        self._w = _check_int("corr_window", self.p.corr_window, 3)
        self._k = _kind_id(self.p.kind)
        self.addminperiod(self._p + 1)

    def _compute(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        dv = changes_nb(arrays[0], self._p, self._k)
        di = changes_nb(arrays[1], self._p, self._k)
        return dv, di, rolling_corr_nb(dv, di, self._w)


class IVRankIndicator(_ArrayIndicator):
    """backtrader indicator: IV rank and IV percentile of data 0 ``close`` (lines ``rank``,
    ``percentile``), as in :func:`iv_rank_percentile`.

    Parameters
    ----------
    window : int, default 252
        Lookback including the current bar (>= 2); also the minimum period.

    Raises
    ------
    ValueError
        ``window < 2``.
    """

    lines = ("rank", "percentile")
    params = (("window", 252),)

    def __init__(self) -> None:
        self._w = _check_int("window", self.p.window, 2)
        self.addminperiod(self._w)

    def _compute(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        return range_rank_nb(arrays[0], self._w), percentile_rank_nb(arrays[0], self._w)


class VRPIndicator(_ArrayIndicator):
    """backtrader indicator: VRP and its past-only z-score (lines ``vrp``, ``zscore``).

    Data 0 ``close`` is the implied vol, data 1 ``close`` the realized-vol forecast (decimal,
    same horizon), as in :func:`vrp_signals`.

    Parameters
    ----------
    window : int, default 0
        0 expanding, else rolling over the ``window`` previous bars (>= 2).
    min_periods : int, default 20
        Expanding mode: past values needed (>= 2).

    Raises
    ------
    ValueError
        Bad parameters or fewer than two data feeds.
    """

    lines = ("vrp", "zscore")
    _n_inputs = 2
    params = (("window", 0), ("min_periods", 20))

    def __init__(self) -> None:
        if len(self.datas) < 2:
            raise ValueError("VRPIndicator needs two data feeds: implied vol and forecast vol")
        self._w = _check_window0(self.p.window)
        self._mp = _check_int("min_periods", self.p.min_periods, 2)

    def _compute(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        vrp = vrp_nb(arrays[0], arrays[1])
        return vrp, past_zscore_nb(vrp, self._w, self._mp)
