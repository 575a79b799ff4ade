"""Past-only rolling OLS of ``y`` on ``x`` (and a past mean), with the residual z-score.

The expected value of ``y_t`` is fitted on **earlier** points only: at each ``t`` the last
``fit_window`` points ``s < t`` where the inputs are finite (at least ``min_fit`` of them), so
``y_t`` never moves its own reference. Used by ``skew_dislocation`` (risk reversal on realized
skewness) and ``vol_of_vol`` (ATM-IV change on the VVIX change).

Three faces, as in :mod:`indicators.realized_vol`:

* the numba kernel :func:`past_ols_nb` (one series) and :func:`past_ols_2d_nb` (column-wise);
* the Python API :func:`past_ols` returning a ``DataFrame``;
* the vectorbt indicator :data:`PastOLS` (a whole ``fit_window`` x ``min_fit`` x ``model`` grid
  over many input columns in one ``run`` call).

Models
------
* ``regression``: OLS ``y_s = a + b x_s + e_s`` on the past points; ``expected_t = a + b x_t``;
  ``scale_t`` = residual standard deviation with ``ddof = 2``
  (``sqrt(sum e_s^2 / (m - 2))``, statsmodels' ``sqrt(OLSResults.scale)``).
* ``mean``: ``expected_t`` = mean of the past ``y_s``; ``scale_t`` their standard deviation
  (``ddof = 1``); ``x`` is not read.

``gap_t = y_t - expected_t`` (units of ``y``), ``z_t = gap_t / scale_t`` (unitless).

The OLS uses the centred closed form ``b = S_xy / S_xx``, ``a = ybar - b xbar`` (Greene,
*Econometric Analysis*, 7th ed., eq. 3-9/3-10), the same least-squares solution as
``numpy.polyfit(x, y, 1)`` and ``statsmodels.OLS``; the tests check it against both.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

__all__ = [
    "MEAN",
    "MODELS",
    "REGRESSION",
    "PastOLS",
    "model_id",
    "past_ols",
    "past_ols_2d_nb",
    "past_ols_nb",
]

#: Expected-value models, in the order of their integer ids used by the kernels.
MODELS: tuple[str, ...] = ("regression", "mean")
REGRESSION: int = 0
MEAN: int = 1

#: Output columns of :func:`past_ols`, in the kernel's order.
OUTPUTS: tuple[str, ...] = ("expected", "gap", "scale", "z", "n_fit", "intercept", "slope")

_NAN = np.nan


def model_id(model: str) -> int:
    """Map a model name to the integer id of the kernels.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.

    Returns
    -------
    int
        Position of ``model`` in :data:`MODELS`.

    Raises
    ------
    ValueError
        Unknown model.
    """
    if isinstance(model, str) and model in MODELS:
        return MODELS.index(model)
    raise ValueError(f"unknown model {model!r}; allowed values: {', '.join(MODELS)}")


def _check_fit(fit_window: object, min_fit: object) -> tuple[int, int]:
    for name, v in (("fit_window", fit_window), ("min_fit", min_fit)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if min_fit < 3 or fit_window < min_fit:  # type: ignore[operator]
        raise ValueError(f"need 3 <= min_fit <= fit_window, got {min_fit}, {fit_window}")
    return int(fit_window), int(min_fit)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(cache=True)
def past_ols_nb(
    y: np.ndarray, x: np.ndarray, fit_window: int, min_fit: int, model_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Expected ``y_t`` from a fit on the last ``fit_window`` earlier finite points.

    Parameters
    ----------
    y : np.ndarray
        1-D float64 response, shape ``(n,)``, ascending time.
    x : np.ndarray
        1-D float64 regressor, shape ``(n,)`` (not read for ``model_id = 1``).
    fit_window : int
        At most this many earlier points enter the fit (``>= min_fit``).
    min_fit : int
        At least this many (``>= 3``).
    model_id : int
        0 regression (OLS of ``y`` on a constant and ``x``), 1 mean.

    Returns
    -------
    expected, gap, scale, z, n_fit, intercept, slope : np.ndarray
        Each shape ``(n,)`` float64. A point is *usable* when ``y`` (and, for the regression,
        ``x``) is finite. ``n_fit[t]`` = number of usable points ``s < t`` in the fit (at most
        ``fit_window``). The other outputs are NaN unless ``n_fit[t] >= min_fit`` and ``t`` is
        usable; ``gap = y - expected``; ``z = gap / scale`` (``+-inf`` for a zero scale and a
        non-zero gap, as IEEE division); ``intercept``/``slope`` NaN for the mean model.
        A regression whose past ``x`` are all equal (no slope identified) gives NaN.

    Raises
    ------
    ValueError
        Shapes differ, ``min_fit < 3``, ``fit_window < min_fit`` or an unknown ``model_id``.
    """
    n = y.shape[0]
    if x.shape[0] != n:
        raise ValueError("y and x must have the same length")
    if min_fit < 3 or fit_window < min_fit:
        raise ValueError("need 3 <= min_fit <= fit_window")
    if model_id != REGRESSION and model_id != MEAN:
        raise ValueError("unknown model_id (allowed 0 regression, 1 mean)")
    expected = np.full(n, _NAN)
    scale = np.full(n, _NAN)
    intercept = np.full(n, _NAN)
    slope = np.full(n, _NAN)
    n_fit = np.zeros(n, dtype=np.float64)
    ok_idx = np.empty(n, dtype=np.int64)  # usable positions, ascending
    n_ok = 0
    for t in range(n):
        usable = not math.isnan(y[t]) and not math.isinf(y[t])
        if model_id == REGRESSION:
            usable = usable and not math.isnan(x[t]) and not math.isinf(x[t])
        m = min(n_ok, fit_window)
        n_fit[t] = m
        if usable and m >= min_fit:
            first = n_ok - m
            sy = 0.0
            sx = 0.0
            for k in range(first, n_ok):
                sy += y[ok_idx[k]]
                sx += x[ok_idx[k]] if model_id == REGRESSION else 0.0
            my = sy / m
            if model_id == MEAN:
                ss = 0.0
                for k in range(first, n_ok):
                    d = y[ok_idx[k]] - my
                    ss += d * d
                expected[t] = my
                scale[t] = math.sqrt(ss / (m - 1))
            else:
                mx = sx / m
                sxx = 0.0
                sxy = 0.0
                for k in range(first, n_ok):
                    dx = x[ok_idx[k]] - mx
                    sxx += dx * dx
                    sxy += dx * (y[ok_idx[k]] - my)
                if sxx > 0.0:
                    b = sxy / sxx
                    a = my - b * mx
                    ss = 0.0
                    for k in range(first, n_ok):
                        e = y[ok_idx[k]] - (a + b * x[ok_idx[k]])
                        ss += e * e
                    intercept[t] = a
                    slope[t] = b
                    expected[t] = a + b * x[t]
                    scale[t] = math.sqrt(ss / (m - 2))
        if usable:
            ok_idx[n_ok] = t
            n_ok += 1
    gap = y - expected
    z = np.full(n, _NAN)
    for t in range(n):
        g = gap[t]
        s = scale[t]
        if math.isnan(g) or math.isnan(s):
            continue
        if s != 0.0:
            z[t] = g / s
        elif g != 0.0:
            z[t] = math.copysign(math.inf, g)
    return expected, gap, scale, z, n_fit, intercept, slope


@njit(cache=True)
def past_ols_2d_nb(
    y: np.ndarray, x: np.ndarray, fit_window: int, min_fit: int, model_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise :func:`past_ols_nb` for 2-D inputs (vectorbt layout).

    Parameters
    ----------
    y, x : np.ndarray
        2-D float64, shape ``(n, n_cols)`` each.
    fit_window, min_fit, model_id : int
        As :func:`past_ols_nb`.

    Returns
    -------
    expected, gap, scale, z, n_fit, intercept, slope : np.ndarray
        Each shape ``(n, n_cols)``.

    Raises
    ------
    ValueError
        As :func:`past_ols_nb`, or shapes differ.
    """
    if y.shape != x.shape:
        raise ValueError("y and x must have the same shape")
    n, c = y.shape
    outs = [np.empty((n, c), dtype=np.float64) for _ in range(7)]
    for j in range(c):
        res = past_ols_nb(
            np.ascontiguousarray(y[:, j]),
            np.ascontiguousarray(x[:, j]),
            fit_window,
            min_fit,
            model_id,
        )
        for k in range(7):
            outs[k][:, j] = res[k]
    return outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], outs[6]


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def past_ols(
    y: np.ndarray | pd.Series,
    x: np.ndarray | pd.Series,
    *,
    model: str = "regression",
    fit_window: int = 15,
    min_fit: int = 10,
) -> pd.DataFrame:
    """Expected value of each point from a fit on earlier points only (module docstring).

    Parameters
    ----------
    y : array-like, shape (n,)
        Response in ascending time (e.g. a 25-delta risk reversal in decimal vol).
    x : array-like, shape (n,)
        Regressor in the same order (unused by ``model = "mean"``).
    model : {"regression", "mean"}
        See :data:`MODELS`.
    fit_window : int
        At most this many earlier usable points.
    min_fit : int
        At least this many (``>= 3``).

    Returns
    -------
    pandas.DataFrame
        ``n`` rows, columns ``expected``, ``gap``, ``scale``, ``z`` (float), ``n_fit`` (int),
        ``intercept``, ``slope`` (:func:`past_ols_nb`); indexed like ``y`` when it is a Series,
        else ``0 .. n-1``.

    Raises
    ------
    ValueError
        Shapes differ, ``min_fit < 3``, ``fit_window < min_fit`` or an unknown model.
    """
    yv = np.ascontiguousarray(np.asarray(y, dtype=np.float64))
    xv = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if yv.shape != xv.shape or yv.ndim != 1:
        raise ValueError(f"y and x must be 1-D of the same shape, got {yv.shape} and {xv.shape}")
    fw, mf = _check_fit(fit_window, min_fit)
    res = past_ols_nb(yv, xv, fw, mf, model_id(model))
    index = y.index if isinstance(y, pd.Series) else None
    frame = pd.DataFrame(dict(zip(OUTPUTS, res, strict=True)), index=index)
    frame["n_fit"] = frame["n_fit"].astype(int)
    return frame


# --------------------------------------------------------------------------------------
# vectorbt face
# --------------------------------------------------------------------------------------


def _past_ols_apply(
    y: np.ndarray, x: np.ndarray, fit_window: int, min_fit: int, model: str
) -> tuple[np.ndarray, ...]:
    fw, mf = _check_fit(fit_window, min_fit)
    return past_ols_2d_nb(
        np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64), fw, mf, model_id(model)
    )


PastOLS = vbt.IndicatorFactory(
    class_name="PastOLS",
    short_name="past_ols",
    input_names=["y", "x"],
    param_names=["fit_window", "min_fit", "model"],
    output_names=list(OUTPUTS),
).from_apply_func(_past_ols_apply, fit_window=15, min_fit=10, model="regression")
PastOLS.__doc__ = """vectorbt indicator: past-only rolling OLS / mean and the residual z-score.

``PastOLS.run(y, x, fit_window=15, min_fit=10, model="regression")``; lists for a grid
(``param_product=True`` for the Cartesian product, else lists of one length are zipped, which
lets a caller pass only the valid ``min_fit <= fit_window`` pairs). ``y`` and ``x`` may hold many
columns (e.g. one per realized-skewness window); every parameter set is applied to every column.
Outputs ``expected``, ``gap``, ``scale``, ``z``, ``n_fit``, ``intercept``, ``slope``, identical to
:func:`past_ols`. Invalid parameters raise ValueError before any computation of that set.
"""
