"""Pairs formation: rolling Engle-Granger hedge ratio and exact OU fit of the formation spread.

Used by ``ou_pairs`` (through :func:`data_feeds.spread_feed.formation_table`). Every
``refit_days`` sessions a *formation* is estimated on the ``formation_days`` sessions ending the
session **before** it takes effect (window ``[t - formation_days, t)`` for the formation in force
from session ``t``):

1. hedge ratio: OLS ``y = alpha + beta x + e`` (Engle and Granger 1987, step one), by the
   centred closed form ``beta = S_xy / S_xx``, ``alpha = ybar - beta xbar`` (Greene,
   *Econometric Analysis*, 7th ed., eq. 3-9/3-10; the solution statsmodels ``OLS`` returns);
2. the formation spread ``y - beta x`` over the window and its exact OU maximum-likelihood fit
   (:func:`pricing.ou.ou_mle_nb`, the kernel of :func:`pricing.ou.fit_ou`; Leung and Li 2015).

Each session carries the formation in force (``formation_id = -1`` and NaN before the first),
so the row of session ``t`` reads closes up to ``t - 1`` only; the spread *value* on ``t`` is
``y_t - beta x_t`` with the formation's ``beta``. Prices in dollars per share; ``theta`` and
``sigma`` in spread units (dollars per spread unit; ``sigma`` per square-root year), ``mu`` per
year, ``half_life_days`` in sessions (``ln 2 / (mu dt)``).

The Engle-Granger cointegration p-value (ADF on the residual with MacKinnon p-values) stays with
statsmodels (:func:`data_feeds.spread_feed.engle_granger`): it is computed once per formation
window, not per session.

Three faces: the numba kernels :func:`hedge_ratio_nb` and :func:`formation_nb`, and the vectorbt
indicator :data:`PairFormation` (a ``formation_days`` x ``refit_days`` grid in one ``run``
call).
"""

from __future__ import annotations

import math

import numpy as np
import vectorbt as vbt
from numba import njit

from pricing.ou import ou_mle_nb

__all__ = ["FORMATION_OUTPUTS", "PairFormation", "formation_nb", "hedge_ratio_nb"]

#: Outputs of :func:`formation_nb` / :data:`PairFormation`, in order.
FORMATION_OUTPUTS: tuple[str, ...] = (
    "formation_id",
    "beta",
    "intercept",
    "ou_code",
    "theta",
    "mu",
    "sigma",
    "half_life_days",
    "ar_slope",
    "spread",
)

_NAN = np.nan


@njit(cache=True)
def hedge_ratio_nb(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """OLS of ``y`` on a constant and ``x``: ``(intercept, beta)``.

    Parameters
    ----------
    y, x : np.ndarray
        1-D float64 prices of the same sessions (dollars per share), shape ``(n,)``, finite.

    Returns
    -------
    intercept : float
        ``alpha`` (dollars).
    beta : float
        Hedge ratio: shares of ``x`` per share of ``y``. Both NaN when ``x`` is constant.

    Raises
    ------
    ValueError
        Different lengths.
    """
    n = y.shape[0]
    if x.shape[0] != n:
        raise ValueError("y and x must have the same length")
    sx = 0.0
    sy = 0.0
    for i in range(n):
        sx += x[i]
        sy += y[i]
    mx = sx / n
    my = sy / n
    sxx = 0.0
    sxy = 0.0
    for i in range(n):
        dx = x[i] - mx
        sxx += dx * dx
        sxy += dx * (y[i] - my)
    if not sxx > 0.0:
        return _NAN, _NAN
    b = sxy / sxx
    return my - b * mx, b


@njit(cache=True)
def formation_nb(
    y: np.ndarray, x: np.ndarray, formation_days: int, refit_days: int, dt: float
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
    """The formation in force on every session (module docstring).

    Parameters
    ----------
    y, x : np.ndarray
        1-D float64 closes of the two legs (dollars per share), shape ``(n,)``.
    formation_days : int
        Sessions per formation window (>= 3).
    refit_days : int
        Sessions between formations (>= 1).
    dt : float
        Years per session for the OU fit (> 0).

    Returns
    -------
    formation_id, beta, intercept, ou_code, theta, mu, sigma, half_life_days, ar_slope, spread
        float64 arrays of shape ``(n,)`` (:data:`FORMATION_OUTPUTS`): the formation in force
        (``formation_id`` ``k`` takes effect at session ``formation_days + k refit_days``; -1
        before the first), its OLS ``beta`` / ``intercept``, the OU kernel's status code
        (:data:`pricing.ou.OU_STATUS_BY_CODE`), ``theta``, ``mu``, ``sigma``,
        ``half_life_days`` (``ln 2 / (mu dt)``) and AR(1) slope of the formation spread, and
        ``spread = y - beta x`` on each session.

    Raises
    ------
    ValueError
        Different lengths, ``formation_days < 3``, ``refit_days < 1``, ``dt <= 0`` or a
        non-finite close inside a formation window.
    """
    n = y.shape[0]
    if x.shape[0] != n:
        raise ValueError("y and x must have the same length")
    if formation_days < 3 or refit_days < 1:
        raise ValueError("need formation_days >= 3 and refit_days >= 1")
    if not dt > 0.0:
        raise ValueError("dt must be > 0 (years)")
    fid = np.full(n, -1.0)
    beta = np.full(n, _NAN)
    intercept = np.full(n, _NAN)
    code = np.full(n, _NAN)
    theta = np.full(n, _NAN)
    mu = np.full(n, _NAN)
    sigma = np.full(n, _NAN)
    half_life = np.full(n, _NAN)
    ar_slope = np.full(n, _NAN)
    spread = np.full(n, _NAN)
    k = 0
    for t in range(formation_days, n, refit_days):
        lo = t - formation_days
        for i in range(lo, t):
            if not (math.isfinite(y[i]) and math.isfinite(x[i])):
                raise ValueError("non-finite close inside a formation window")
        a, b = hedge_ratio_nb(y[lo:t], x[lo:t])
        s = y[lo:t] - b * x[lo:t]
        c, _, slope, _, _, th, m, sg = ou_mle_nb(s, dt)
        hl = math.log(2.0) / m / dt if c == 0.0 else _NAN
        for u in range(t, min(t + refit_days, n)):
            fid[u] = k
            beta[u] = b
            intercept[u] = a
            code[u] = c
            theta[u] = th
            mu[u] = m
            sigma[u] = sg
            half_life[u] = hl
            ar_slope[u] = slope
            spread[u] = y[u] - b * x[u]
        k += 1
    return fid, beta, intercept, code, theta, mu, sigma, half_life, ar_slope, spread


def _check_formation(formation_days: object, refit_days: object, dt: object) -> None:
    for name, v, low in (("formation_days", formation_days, 3), ("refit_days", refit_days, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if not (isinstance(dt, float | int) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0 (years), got {dt!r}")


def _formation_apply(
    y: np.ndarray, x: np.ndarray, formation_days: int, refit_days: int, dt: float
) -> tuple[np.ndarray, ...]:
    _check_formation(formation_days, refit_days, dt)
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    outs = [np.empty(y.shape, dtype=np.float64) for _ in FORMATION_OUTPUTS]
    for j in range(y.shape[1]):
        res = formation_nb(
            np.ascontiguousarray(y[:, j]),
            np.ascontiguousarray(x[:, j]),
            int(formation_days),
            int(refit_days),
            float(dt),
        )
        for k, r in enumerate(res):
            outs[k][:, j] = r
    return tuple(outs)


PairFormation = vbt.IndicatorFactory(
    class_name="PairFormation",
    short_name="form",
    input_names=["y", "x"],
    param_names=["formation_days", "refit_days", "dt"],
    output_names=list(FORMATION_OUTPUTS),
).from_apply_func(_formation_apply, formation_days=252, refit_days=21, dt=1.0 / 252.0)
PairFormation.__doc__ = """vectorbt indicator: the pairs formation in force on every session.

``PairFormation.run(y, x, formation_days=[126, 252], refit_days=[21, 63], param_product=True)``
computes every (formation_days, refit_days) grid point in one call; outputs
:data:`FORMATION_OUTPUTS`, identical to :func:`formation_nb`. Bad parameters raise ValueError."""
