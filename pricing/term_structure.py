"""Volatility term structure: power-law fits across expiries and ATM interpolation in time.

Power law (design doc 004, section 4.2)::

    y(T) = a * T**b

fitted by least squares *in levels* (the units of ``y``: decimal vol for the ATM term
structure, decimal vol for the 25-delta risk reversal), not in logs: for fixed ``b`` the best
``a`` is linear least squares, ``a(b) = sum w y T**b / sum w T**(2b)``, so the fit is a 1-D
search over ``b`` (a grid over ``[b_min, b_max]`` then golden-section refinement). This works
for negative ``y`` (the equity risk reversal) where a log-log regression cannot, and gives the
RMSE in the units of ``y``.

ATM interpolation in time (:func:`atm_vol_at`): linear in total variance ``w = vol**2 * T``
between the two expiries that bracket the target (flat forward variance between them, the
standard arbitrage-free choice when ``w`` is non-decreasing), then ``vol = sqrt(w / T)``.

Units: ``T``/``tte`` in years ACT/365 (``calendar days / 365``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PowerLawFit", "atm_vol_at", "fit_power_law"]

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PowerLawFit:
    """``y(T) = a T**b`` fitted by :func:`fit_power_law`.

    Attributes
    ----------
    a : float
        Level at ``T = 1`` year (units of ``y``).
    b : float
        Power (dimensionless).
    rmse : float
        Root-mean-square residual in the units of ``y`` (weighted if weights were given:
        ``sqrt(sum w r**2 / sum w)``).
    n_points : int
        Expiries used.
    """

    a: float
    b: float
    rmse: float
    n_points: int

    def __call__(self, tte: np.ndarray | float) -> np.ndarray:
        """``a * tte**b`` (``tte`` in years)."""
        return self.a * np.asarray(tte, dtype=float) ** self.b


def _profile(b: np.ndarray, t: np.ndarray, y: np.ndarray, wt: np.ndarray) -> tuple:
    """Best ``a`` and weighted SSE for each ``b`` (``b`` shape ``(m,)``)."""
    tb = t[None, :] ** b[:, None]
    a = (wt * y * tb).sum(axis=1) / (wt * tb * tb).sum(axis=1)
    sse = (wt * (a[:, None] * tb - y) ** 2).sum(axis=1)
    return a, sse


def fit_power_law(
    tte: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    b_bounds: tuple[float, float] = (-3.0, 3.0),
    n_grid: int = 601,
) -> PowerLawFit:
    """Least-squares power law ``values ~ a * tte**b`` (levels, not logs).

    Parameters
    ----------
    tte : array_like
        Years to expiry (ACT/365), shape ``(n,)``, ``> 0``.
    values : array_like
        Shape ``(n,)``: ATM vols, 25-delta risk reversals ... (any sign, same units out).
    weights : array_like, optional
        Non-negative weights, shape ``(n,)`` (default equal).
    b_bounds : (float, float)
        Search interval of the power ``b``.
    n_grid : int
        Grid points over ``b_bounds`` before the golden-section refinement.

    Returns
    -------
    PowerLawFit

    Raises
    ------
    ValueError
        Shapes that differ, non-finite values, ``tte <= 0``, negative weights, fewer than 2
        points with positive weight, or bad ``b_bounds``/``n_grid``.
    """
    t = np.asarray(tte, dtype=float)
    y = np.asarray(values, dtype=float)
    wt = np.ones_like(t) if weights is None else np.asarray(weights, dtype=float)
    if t.ndim != 1 or y.shape != t.shape or wt.shape != t.shape:
        raise ValueError(
            f"tte, values and weights must be 1-D of one length, got {t.shape}, {y.shape}, "
            f"{wt.shape}"
        )
    if not (np.isfinite(t).all() and np.isfinite(y).all() and np.isfinite(wt).all()):
        raise ValueError("tte, values and weights must be finite")
    if (t <= 0).any():
        raise ValueError(f"tte must be > 0 years, got min {t.min()!r}")
    if (wt < 0).any():
        raise ValueError("weights must be >= 0")
    use = wt > 0
    if use.sum() < 2:
        raise ValueError(f"a power law needs at least 2 points, got {int(use.sum())}")
    lo, hi = b_bounds
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or n_grid < 3:
        raise ValueError(f"need finite b_bounds lo < hi and n_grid >= 3, got {b_bounds}, {n_grid}")
    t, y, wt = t[use], y[use], wt[use] / wt[use].sum()
    grid = np.linspace(lo, hi, n_grid)
    _, sse = _profile(grid, t, y, wt)
    j = int(np.argmin(sse))
    left, right = grid[max(j - 1, 0)], grid[min(j + 1, n_grid - 1)]
    # golden-section search on [left, right] (the SSE is smooth in b)
    c = right - _GOLDEN * (right - left)
    d = left + _GOLDEN * (right - left)
    fc = _profile(np.array([c]), t, y, wt)[1][0]
    fd = _profile(np.array([d]), t, y, wt)[1][0]
    for _ in range(80):
        if right - left < 1e-12:
            break
        if fc < fd:
            right, d, fd = d, c, fc
            c = right - _GOLDEN * (right - left)
            fc = _profile(np.array([c]), t, y, wt)[1][0]
        else:
            left, c, fc = c, d, fd
            d = left + _GOLDEN * (right - left)
            fd = _profile(np.array([d]), t, y, wt)[1][0]
    candidates = np.array([0.5 * (left + right), grid[j]])
    a_c, sse_c = _profile(candidates, t, y, wt)
    best = int(np.argmin(sse_c))
    return PowerLawFit(
        a=float(a_c[best]),
        b=float(candidates[best]),
        rmse=float(math.sqrt(max(sse_c[best], 0.0))),
        n_points=int(t.size),
    )


def atm_vol_at(
    target_tte: float | np.ndarray, tte: np.ndarray, atm_total_variance: np.ndarray
) -> np.ndarray:
    """ATM implied vol at ``target_tte``, linear in total variance between bracketing expiries.

    Parameters
    ----------
    target_tte : float or array_like
        Years (ACT/365): ``30 / 365`` for the 30-calendar-day vol.
    tte : array_like
        Years to each expiry, shape ``(n,)``, ``> 0`` (any order; duplicates averaged).
    atm_total_variance : array_like
        ATM total variance ``vol**2 * tte`` per expiry, shape ``(n,)``.

    Returns
    -------
    numpy.ndarray
        Decimal vol ``sqrt(w(target) / target)``, the shape of ``target_tte``; NaN where the
        target is outside ``[min tte, max tte]`` (no extrapolation) or the data are not finite.

    Raises
    ------
    ValueError
        Shapes that differ or ``tte <= 0``.
    """
    t = np.asarray(tte, dtype=float)
    w = np.asarray(atm_total_variance, dtype=float)
    if t.ndim != 1 or w.shape != t.shape:
        raise ValueError(f"tte and atm_total_variance must be 1-D of one length, got {t.shape}")
    ok = np.isfinite(t) & np.isfinite(w)
    if (t[ok] <= 0).any():
        raise ValueError("tte must be > 0 years")
    target = np.asarray(target_tte, dtype=float)
    out = np.full(target.shape, np.nan)
    if ok.sum() == 0:
        return out
    tu, inv = np.unique(t[ok], return_inverse=True)
    wu = np.bincount(inv, weights=w[ok]) / np.bincount(inv)
    inside = (target >= tu[0]) & (target <= tu[-1]) & (target > 0)
    if tu.size == 1:
        out[inside] = np.sqrt(wu[0] / tu[0])
        return out
    wt = np.interp(target[inside], tu, wu)
    with np.errstate(invalid="ignore"):
        out[inside] = np.sqrt(wt / target[inside])
    return out
