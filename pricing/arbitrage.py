"""Static-arbitrage checks of implied total-variance slices and surfaces on a dense grid.

Butterfly (one expiry)
    A smile ``w(k)`` (total variance, ``k = ln(K/F)``) is free of butterfly arbitrage when the
    risk-neutral density it implies is non-negative. Gatheral & Jacquier (2014), Lemma 2.2 and
    Theorem 2.9: with ``w' = dw/dk`` and ``w'' = d2w/dk2``::

        g(k) = (1 - k w' / (2 w))**2 - (w'**2 / 4) (1 / w + 1 / 4) + w'' / 2

    and the density of ``k`` is ``p(k) = g(k) / sqrt(2 pi w) exp(-d_minus**2 / 2)`` with
    ``d_minus = -k / sqrt(w) - sqrt(w) / 2`` (their eq. 2.2). ``g >= 0`` everywhere (and
    ``d_plus -> -inf`` as ``k -> +inf``, which Lee's wing bound ``b (1 + |rho|) <= 2`` of the
    SVI fits gives) means no butterfly arbitrage. Here ``g`` is evaluated in closed form on a
    grid and every grid point with ``g < -tol`` (or ``w <= 0``) counts as one violation.

Calendar (across expiries)
    With deterministic rates and proportional dividends, calendar spreads are free of arbitrage
    iff total variance is non-decreasing in ``tte`` at every fixed forward log-moneyness ``k``
    (Gatheral & Jacquier 2014, Lemma 2.1 / Proposition 2.1 with forward moneyness). Slices are
    sorted by ``tte``; a grid point where ``w_{i+1}(k) < w_i(k) - tol`` counts as one
    violation of slice ``i+1`` (consecutive pairs suffice: monotone in consecutive pairs is
    monotone).

Grids are in log-moneyness; every count is a number of grid points.

References
----------
.. [1] Gatheral, J. and Jacquier, A. (2014). "Arbitrage-free SVI volatility surfaces".
   Quantitative Finance 14(1), 59-71. Sections 2-3; Axel Vogt's arbitrageable SVI slice is
   their Example 3.1.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from pricing.svi import (
    SVIParams,
    svi_derivatives_nb,
    svi_total_variance,
    svi_total_variance_nb,
)

__all__ = [
    "REPAIR_CALENDAR",
    "REPAIR_NONE",
    "REPAIR_WINGS",
    "WING_SD",
    "ArbitrageReport",
    "SVISurfaceFit",
    "butterfly_violations",
    "calendar_violations",
    "check_surface",
    "check_svi_surface",
    "default_k_grid",
    "density_from_g",
    "fit_svi_surface",
    "g_from_total_variance",
    "g_function",
    "g_function_nb",
    "surface_check_grid",
    "svi_g",
    "svi_g_grid_nb",
]


@njit(cache=True, error_model="numpy")
def g_function_nb(k: float, w: float, w1: float, w2: float) -> float:
    """Gatheral-Jacquier ``g(k)`` from ``w, w', w''`` at ``k`` (nopython scalar kernel).

    ``g = (1 - k w'/(2w))^2 - (w'^2/4)(1/w + 1/4) + w''/2`` (Gatheral & Jacquier 2014, eq. 2.1);
    ``-inf`` when ``w <= 0`` (no density exists there).
    """
    if not w > 0.0:
        return -np.inf
    t = 1.0 - k * w1 / (2.0 * w)
    return t * t - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2


@njit(cache=True, error_model="numpy")
def svi_g_grid_nb(
    k_grid: np.ndarray, a: float, b: float, rho: float, m: float, sigma: float
) -> np.ndarray:
    """``g(k)`` of a raw SVI slice on ``k_grid`` (nopython; shape of ``k_grid``)."""
    out = np.empty(k_grid.size)
    for j in range(k_grid.size):
        w, w1, w2 = svi_derivatives_nb(k_grid[j], a, b, rho, m, sigma)
        out[j] = g_function_nb(k_grid[j], w, w1, w2)
    return out


def g_function(
    log_moneyness: np.ndarray, w: np.ndarray, w1: np.ndarray, w2: np.ndarray
) -> np.ndarray:
    """Gatheral-Jacquier ``g(k)`` for any smile given ``w`` and its first two ``k``-derivatives.

    Parameters
    ----------
    log_moneyness, w, w1, w2 : array_like
        ``k``, total variance ``w(k)`` (years * decimal vol**2), ``dw/dk`` and ``d2w/dk2``;
        broadcast together.

    Returns
    -------
    numpy.ndarray
        ``g`` (dimensionless); ``-inf`` where ``w <= 0``.

    References
    ----------
    Gatheral & Jacquier (2014), eq. (2.1) and Lemma 2.2.
    """
    k, w, w1, w2 = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (log_moneyness, w, w1, w2))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        t = 1.0 - k * w1 / (2.0 * w)
        g = t * t - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2
    return np.where(w > 0.0, g, -np.inf)


def svi_g(log_moneyness: np.ndarray, params: SVIParams) -> np.ndarray:
    """``g(k)`` of a raw SVI slice in closed form (:func:`g_function` with SVI derivatives).

    Parameters
    ----------
    log_moneyness : array_like
        ``k``, any shape.
    params : SVIParams

    Returns
    -------
    numpy.ndarray
        ``g``, the shape of ``log_moneyness``.
    """
    k = np.asarray(log_moneyness, dtype=float)
    return svi_g_grid_nb(np.ascontiguousarray(k.ravel()), *params.to_array()).reshape(k.shape)


def density_from_g(log_moneyness: np.ndarray, w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Risk-neutral density of ``k = ln(K/F)`` implied by a smile: ``g / sqrt(2 pi w) e^{-d^2/2}``.

    ``d = d_minus = -k / sqrt(w) - sqrt(w) / 2`` (Gatheral & Jacquier 2014, eq. 2.2). The density
    of the strike is ``p(k) / K``; undiscounted call prices satisfy ``d2C/dK2 = p(k) / K``.

    Parameters
    ----------
    log_moneyness, w, g : array_like
        ``k``, total variance and ``g(k)``, broadcast together.

    Returns
    -------
    numpy.ndarray
        Density per unit of ``k``.
    """
    k, w, g = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (log_moneyness, w, g)))
    sw = np.sqrt(w)
    d_minus = -k / sw - 0.5 * sw
    return g / np.sqrt(2.0 * np.pi * w) * np.exp(-0.5 * d_minus * d_minus)


def default_k_grid(k_min: float, k_max: float, n: int = 401) -> np.ndarray:
    """Uniform log-moneyness grid over ``[k_min, k_max]`` with ``n`` points (the check grid).

    Raises
    ------
    ValueError
        Non-finite or unordered bounds, or ``n < 2``.
    """
    if not (math.isfinite(k_min) and math.isfinite(k_max) and k_min < k_max):
        raise ValueError(f"k grid bounds must be finite with k_min < k_max, got {k_min}, {k_max}")
    if n < 2:
        raise ValueError(f"k grid needs at least 2 points, got {n}")
    return np.linspace(k_min, k_max, n)


def butterfly_violations(
    params: SVIParams, k_grid: np.ndarray, tol: float = 0.0
) -> tuple[int, float]:
    """Grid points where a raw SVI slice has butterfly arbitrage (``g(k) < -tol``).

    Parameters
    ----------
    params : SVIParams
    k_grid : array_like
        Log-moneyness grid, shape ``(n,)``.
    tol : float
        Tolerance on ``g`` (dimensionless), ``>= 0``.

    Returns
    -------
    count : int
        Number of grid points with ``g < -tol`` (or ``w <= 0``).
    min_g : float
        Smallest ``g`` on the grid.
    """
    g = svi_g(np.ascontiguousarray(k_grid, dtype=float), params)
    return int((g < -tol).sum()), float(g.min())


def calendar_violations(
    total_variance_grid: np.ndarray,
    tte: np.ndarray,
    tol: float = 0.0,
    *,
    k_grid: np.ndarray | None = None,
    k_min: np.ndarray | None = None,
    k_max: np.ndarray | None = None,
) -> np.ndarray:
    """Calendar-arbitrage count per slice from total variances on a common ``k`` grid.

    Parameters
    ----------
    total_variance_grid : array_like
        Shape ``(n_slices, n_grid)``: ``w_i(k_j)`` of each slice on the same grid (NaN rows
        are slices without a fit: skipped).
    tte : array_like
        Shape ``(n_slices,)`` years; need not be sorted.
    tol : float
        Tolerance on total variance (years * decimal vol**2), ``>= 0``.
    k_grid, k_min, k_max : array_like, optional
        The grid (shape ``(n_grid,)``) and each slice's quoted log-moneyness range (shape
        ``(n_slices,)``): when given, a pair of consecutive slices is compared only on the
        grid points inside *both* quoted ranges; otherwise on the whole grid.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_slices,)`` int64, in the input order: for each slice the number of grid
        points where its ``w`` is below that of the fitted slice just before it in ``tte``
        order by more than ``tol`` (0 for the shortest fitted slice).

    Raises
    ------
    ValueError
        Shapes that do not match, or ``k_min``/``k_max`` without ``k_grid``.
    """
    wg = np.asarray(total_variance_grid, dtype=float)
    t = np.asarray(tte, dtype=float)
    if wg.ndim != 2 or t.shape != (wg.shape[0],):
        raise ValueError(
            f"total_variance_grid must be (n_slices, n_grid) and tte (n_slices,), got "
            f"{wg.shape} and {t.shape}"
        )
    ranged = k_min is not None or k_max is not None
    if ranged:
        if k_grid is None or k_min is None or k_max is None:
            raise ValueError("k_min and k_max need each other and k_grid")
        grid = np.asarray(k_grid, dtype=float)
        lo = np.asarray(k_min, dtype=float)
        hi = np.asarray(k_max, dtype=float)
        if grid.shape != (wg.shape[1],) or lo.shape != t.shape or hi.shape != t.shape:
            raise ValueError("k_grid must have n_grid values and k_min/k_max n_slices values")
    out = np.zeros(t.size, dtype=np.int64)
    fitted = np.flatnonzero(np.isfinite(wg).all(axis=1))
    order = fitted[np.argsort(t[fitted], kind="stable")]
    for prev, cur in itertools.pairwise(order):
        below = wg[cur] < wg[prev] - tol
        if ranged:
            below &= (grid >= max(lo[prev], lo[cur])) & (grid <= min(hi[prev], hi[cur]))
        out[cur] = int(below.sum())
    return out


def g_from_total_variance(k_grid: np.ndarray, total_variance: np.ndarray) -> np.ndarray:
    """``g(k)`` of any smile given only its total variance on a grid (finite differences).

    ``w'`` and ``w''`` by second-order central differences on the (possibly non-uniform)
    grid (``numpy.gradient``, ``edge_order=2``), then :func:`g_function`. For models without
    closed-form derivatives (SABR, Heston).

    Parameters
    ----------
    k_grid : array_like
        Sorted log-moneyness, shape ``(n,)``, ``n >= 3``.
    total_variance : array_like
        Shape ``(n,)`` or ``(n_slices, n)``.

    Returns
    -------
    numpy.ndarray
        ``g``, the shape of ``total_variance``.
    """
    k = np.asarray(k_grid, dtype=float)
    w = np.asarray(total_variance, dtype=float)
    w1 = np.gradient(w, k, axis=-1, edge_order=2)
    w2 = np.gradient(w1, k, axis=-1, edge_order=2)
    return g_function(np.broadcast_to(k, w.shape), w, w1, w2)


@dataclass(frozen=True)
class ArbitrageReport:
    """Arbitrage counts of a set of slices on one grid.

    Attributes
    ----------
    k_grid : numpy.ndarray
        The log-moneyness grid, shape ``(n_grid,)``.
    butterfly : numpy.ndarray
        Shape ``(n_slices,)`` int64: grid points with ``g < -tol`` per slice.
    min_g : numpy.ndarray
        Shape ``(n_slices,)``: smallest ``g`` per slice (NaN for a slice without a fit).
    calendar : numpy.ndarray
        Shape ``(n_slices,)`` int64: grid points where the slice's ``w`` is below its
        predecessor's in ``tte`` order (see :func:`calendar_violations`).
    """

    k_grid: np.ndarray = field(repr=False)
    butterfly: np.ndarray
    min_g: np.ndarray
    calendar: np.ndarray

    @property
    def total(self) -> int:
        """All violations (butterfly + calendar grid points)."""
        return int(self.butterfly.sum() + self.calendar.sum())

    @property
    def arbitrage_free(self) -> bool:
        """No violation at all."""
        return self.total == 0


def check_surface(
    total_variance_grid: np.ndarray,
    tte: np.ndarray,
    k_grid: np.ndarray,
    *,
    g_grid: np.ndarray | None = None,
    k_min: np.ndarray | None = None,
    k_max: np.ndarray | None = None,
    g_tol: float = 0.0,
    w_tol: float = 0.0,
) -> ArbitrageReport:
    """Butterfly and calendar checks of any model's slices from their ``w`` on one grid.

    Parameters
    ----------
    total_variance_grid : array_like
        Shape ``(n_slices, n_grid)`` (NaN rows: slices without a fit).
    tte : array_like
        Shape ``(n_slices,)`` years.
    k_grid : array_like
        Sorted grid, shape ``(n_grid,)``.
    g_grid : array_like, optional
        ``g`` on the grid, shape ``(n_slices, n_grid)``; default finite differences
        (:func:`g_from_total_variance`).
    k_min, k_max : array_like, optional
        Quoted ranges per slice: calendar pairs compared inside both ranges only (see
        :func:`calendar_violations`).
    g_tol, w_tol : float
        Tolerances.

    Returns
    -------
    ArbitrageReport
    """
    grid = np.ascontiguousarray(k_grid, dtype=float)
    wg = np.asarray(total_variance_grid, dtype=float)
    g = g_from_total_variance(grid, wg) if g_grid is None else np.asarray(g_grid, dtype=float)
    fitted = np.isfinite(wg).all(axis=1)
    fly = np.where(fitted, (g < -g_tol).sum(axis=1), 0).astype(np.int64)
    with np.errstate(invalid="ignore"):
        min_g = np.where(fitted, np.nanmin(np.where(np.isnan(g), np.inf, g), axis=1), np.nan)
    cal = calendar_violations(
        wg, tte, w_tol, k_grid=grid if k_min is not None else None, k_min=k_min, k_max=k_max
    )
    return ArbitrageReport(grid, fly, min_g, cal)


def check_svi_surface(
    params: list[SVIParams] | np.ndarray,
    tte: np.ndarray,
    k_grid: np.ndarray,
    *,
    k_min: np.ndarray | None = None,
    k_max: np.ndarray | None = None,
    g_tol: float = 0.0,
    w_tol: float = 0.0,
) -> ArbitrageReport:
    """Butterfly and calendar checks of raw SVI slices on one dense ``k`` grid (exact ``g``).

    Parameters
    ----------
    params : list of SVIParams or array_like
        One per slice (or an ``(n_slices, 5)`` array ``a, b, rho, m, sigma``; NaN rows are
        slices without a fit).
    tte : array_like
        Shape ``(n_slices,)`` years to expiry (ACT/365).
    k_grid : array_like
        Log-moneyness grid, shape ``(n_grid,)``.
    k_min, k_max : array_like, optional
        Quoted ranges per slice (calendar compared inside both ranges of a pair only);
        default: calendar on the whole grid.
    g_tol, w_tol : float
        Tolerances on ``g`` and on total variance.

    Returns
    -------
    ArbitrageReport

    Raises
    ------
    ValueError
        Shapes that do not match.
    """
    arr = (
        np.array([p.to_array() for p in params]).reshape(-1, 5)
        if isinstance(params, list)
        else np.asarray(params, dtype=float).reshape(-1, 5)
    )
    t = np.asarray(tte, dtype=float)
    if t.shape != (arr.shape[0],):
        raise ValueError(f"tte must have one value per slice ({arr.shape[0]}), got {t.shape}")
    grid = np.ascontiguousarray(k_grid, dtype=float)
    n = arr.shape[0]
    wg = np.full((n, grid.size), np.nan)
    gg = np.full((n, grid.size), np.nan)
    for i in range(n):
        if np.isfinite(arr[i]).all():
            gg[i] = svi_g_grid_nb(grid, *arr[i])
            wg[i] = svi_total_variance(grid, *arr[i])
    return check_surface(wg, t, grid, g_grid=gg, k_min=k_min, k_max=k_max, g_tol=g_tol, w_tol=w_tol)


# ------------------------------------------------------------------------------------------------
# An arbitrage-free surface of SVI slices: fit, check, repair
# ------------------------------------------------------------------------------------------------
REPAIR_NONE = 0
"""Repair flag: the slice was kept as first fitted."""
REPAIR_WINGS = 1
"""Repair flag: re-fitted with the wing-intercept constraints (butterfly arbitrage)."""
REPAIR_CALENDAR = 2
"""Repair flag: re-fitted with ``w >= w_previous`` on a grid (calendar arbitrage)."""


@dataclass(frozen=True)
class SVISurfaceFit:
    """SVI slices of one quote date fitted, checked and repaired by :func:`fit_svi_surface`.

    Attributes
    ----------
    params : numpy.ndarray
        Shape ``(n_slices, 5)``: ``a, b, rho, m, sigma`` (NaN rows where no fit).
    status : numpy.ndarray
        Shape ``(n_slices,)`` int64: :data:`pricing.svi.FIT_STATUS_DESCRIPTIONS` keys.
    objective : numpy.ndarray
        Weighted total-variance SSE per slice (weights normalised to sum 1).
    k_grid : numpy.ndarray
        The dense check grid (sorted log-moneyness).
    butterfly, calendar : numpy.ndarray
        Violations per slice after repair (grid points; see :func:`check_svi_surface`).
    min_g : numpy.ndarray
        Smallest ``g`` per slice on the grid after repair.
    butterfly_before, calendar_before : numpy.ndarray
        The same counts for the first, unrepaired fit.
    repair : numpy.ndarray
        Shape ``(n_slices,)`` int64 bit flags :data:`REPAIR_WINGS` | :data:`REPAIR_CALENDAR`.
    n_evaluations : numpy.ndarray
        Inner QP solves per slice, repairs included.
    """

    params: np.ndarray
    status: np.ndarray
    objective: np.ndarray
    k_grid: np.ndarray
    butterfly: np.ndarray
    calendar: np.ndarray
    min_g: np.ndarray
    butterfly_before: np.ndarray
    calendar_before: np.ndarray
    repair: np.ndarray
    n_evaluations: np.ndarray

    @property
    def fitted(self) -> np.ndarray:
        """Boolean mask of slices with parameters."""
        return np.isfinite(self.params[:, 0])

    @property
    def violations(self) -> int:
        """All remaining violations (butterfly + calendar grid points)."""
        return int(self.butterfly.sum() + self.calendar.sum())


WING_SD = 6.0
"""Half-width of the butterfly check grid in standard deviations of each slice: ``k`` in
``[-6 sqrt(w(0)), +6 sqrt(w(0))]`` (beyond the quotes, where a fitted slice is extrapolated and
a negative density would otherwise pass unseen; issue 17 item 10)."""


def surface_check_grid(
    k_min: np.ndarray,
    k_max: np.ndarray,
    n_wide: int = 401,
    n_slice: int = 101,
    *,
    sd: np.ndarray | None = None,
    n_sd: float = WING_SD,
) -> np.ndarray:
    """The dense check grid of a quote date: uniform over the union of the slices' ranges
    (``n_wide`` points) merged with a uniform grid over each slice's own range (``n_slice``
    points), so that short expiries, whose quotes span a few percent of moneyness, are checked as
    densely as long ones. A slice's range is its quoted log-moneyness range widened to ``+-n_sd``
    standard deviations ``sd = sqrt(w(0))`` (ATM total variance) when ``sd`` is given, so that
    the extrapolated wings are checked too.

    Parameters
    ----------
    k_min, k_max : array_like
        Shape ``(n_slices,)``: smallest and largest quoted log-moneyness per slice.
    n_wide, n_slice : int
        Points of the wide and per-slice grids.
    sd : array_like, optional
        Shape ``(n_slices,)``: ATM standard deviation ``sqrt(w(0))`` of each slice (decimal vol
        * sqrt(years)); NaN entries keep the quoted range.
    n_sd : float
        Half-width of the widened range in standard deviations (default :data:`WING_SD`).

    Returns
    -------
    numpy.ndarray
        Sorted unique grid.

    Raises
    ------
    ValueError
        No finite range.
    """
    lo = np.asarray(k_min, dtype=float).copy()
    hi = np.asarray(k_max, dtype=float).copy()
    if sd is not None:
        half = n_sd * np.asarray(sd, dtype=float)
        wide = np.isfinite(half) & (half > 0)
        lo[wide] = np.fmin(lo[wide], -half[wide])
        hi[wide] = np.fmax(hi[wide], half[wide])
    ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    if not ok.any():
        raise ValueError("no slice with a finite quoted log-moneyness range to build a grid on")
    parts = [default_k_grid(float(lo[ok].min()), float(hi[ok].max()), n_wide)]
    parts += [np.linspace(a, b, n_slice) for a, b in zip(lo[ok], hi[ok], strict=True)]
    return np.unique(np.concatenate(parts))


@njit(cache=True, error_model="numpy")
def _slice_check_nb(
    grid: np.ndarray,
    p: np.ndarray,
    prev: np.ndarray,
    lo: float,
    hi: float,
    g_tol: float,
    w_tol: float,
    below: np.ndarray,
) -> tuple[int, float, int]:
    """Butterfly count, min ``g`` and calendar count of SVI slice ``p`` against ``prev`` (NaN
    row = none) on ``grid``; calendar only inside ``[lo, hi]``; ``below`` marks those points."""
    n_fly = 0
    gmin = np.inf
    n_below = 0
    has_prev = math.isfinite(prev[0])
    for j in range(grid.size):
        kj = grid[j]
        wj, w1, w2 = svi_derivatives_nb(kj, p[0], p[1], p[2], p[3], p[4])
        g = g_function_nb(kj, wj, w1, w2)
        if g < -g_tol:
            n_fly += 1
        if g < gmin:
            gmin = g
        b = False
        if has_prev and lo <= kj <= hi:
            b = wj < svi_total_variance_nb(kj, prev[0], prev[1], prev[2], prev[3], prev[4]) - w_tol
        below[j] = b
        if b:
            n_below += 1
    return n_fly, gmin, n_below


_CUSHION = 1e-5
"""Relative margin of the calendar-repair lower bounds (``w >= (1 + 1e-5) w_previous`` at
the constraint points): absorbs dips between constraint points; 1e-5 of total variance is
5e-6 of the vol, far below any quote's precision."""


def _clip_a(p: np.ndarray) -> np.ndarray:
    """Raise ``a`` to the exact minimum-variance floor (the fit's chord constraints give it up
    to rounding)."""
    floor = -p[1] * p[4] * math.sqrt(max(1.0 - p[2] * p[2], 0.0))
    out = p.copy()
    out[0] = max(p[0], floor)
    return out


def fit_svi_surface(
    log_moneyness: np.ndarray,
    total_variance: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    tte: np.ndarray,
    *,
    repair: bool = True,
    n_wide: int = 401,
    n_slice: int = 101,
    n_constraint: int = 61,
    max_rounds: int = 4,
    g_tol: float = 0.0,
    w_tol: float = 0.0,
    parallel: bool = False,
    n_sd: float = WING_SD,
) -> SVISurfaceFit:
    """Fit a raw SVI slice per expiry, check the surface for static arbitrage, repair it.

    1. Every slice is fitted by :func:`pricing.svi.fit_svi_slices` (one compiled call).
    2. Check grid: :func:`surface_check_grid` of the slices' quoted ranges (the union of all
       ranges, plus each slice's own range densely).
    3. Butterfly: ``g(k) >= -g_tol`` for each slice on the *whole* check grid: its quoted range
       and its extrapolated wings out to ``+-n_sd`` ATM standard deviations ``sqrt(w(0))`` of
       every slice (and the widest quoted range of the date), so a negative density in a wing
       beyond the quotes is counted, not passed as "0 violations".
    4. Calendar: for consecutive slices in ``tte`` order, ``w_later(k) >= w_earlier(k) -
       w_tol`` on the check-grid points inside *both* slices' quoted ranges (where both
       expiries have two-sided quotes; outside, the shorter expiry's options are worth less
       than the smallest tick and a crossing of extrapolated wings is not a tradable
       arbitrage).
    5. With ``repair``: slices with butterfly arbitrage are re-fitted (one compiled call) with
       the wing-intercept constraints (``wings=True`` of :func:`pricing.svi.fit_svi`); then
       the slices are visited in ``tte`` order (shortest first) and a slice below its
       (already final) predecessor is re-fitted with ``w(k_j) >= w_previous(k_j)`` on
       ``n_constraint`` uniform points of the common quoted range plus every point found
       violated so far (and the wing constraints if it needs them), up to ``max_rounds``
       re-fits. The lower bounds are always feasible (raising ``a`` meets them).
    6. Violations are counted again: what is left is reported, never hidden.

    Parameters
    ----------
    log_moneyness, total_variance, weights, offsets
        Concatenated slices as :func:`pricing.svi.fit_svi_slices` (``k``, ``w`` in years *
        decimal vol**2, weights >= 0, ``offsets`` shape ``(n_slices + 1,)``).
    tte : array_like
        Shape ``(n_slices,)`` years (ACT/365) per slice, ``> 0``.
    repair : bool
        Re-fit slices with arbitrage (otherwise only check).
    n_wide, n_slice : int
        Check grid sizes (:func:`surface_check_grid`).
    n_constraint : int
        Uniform points of the calendar-repair constraint grid.
    max_rounds : int
        Calendar re-fits per slice at most.
    g_tol, w_tol : float
        Tolerances of the checks (``g`` dimensionless; ``w`` years * decimal vol**2).
    parallel : bool
        Batch fits over numba's threads (see :func:`pricing.svi.fit_svi_slices`).
    n_sd : float
        Butterfly check range in ATM standard deviations of each slice (default 6).

    Returns
    -------
    SVISurfaceFit

    Raises
    ------
    ValueError
        Bad shapes, ``tte <= 0``, or the input errors of :func:`pricing.svi.fit_svi_slices`.
    """
    from pricing.svi import LEE_SLOPE, RHO_MAX, fit_svi_slices, svi_fit_slice_nb

    k = np.ascontiguousarray(log_moneyness, dtype=float)
    w = np.ascontiguousarray(total_variance, dtype=float)
    om = np.ascontiguousarray(weights, dtype=float)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    t = np.asarray(tte, dtype=float)
    n = off.size - 1
    if t.shape != (n,):
        raise ValueError(f"tte must have one value per slice ({n}), got shape {t.shape}")
    if not (np.isfinite(t) & (t > 0)).all():
        raise ValueError(f"tte must be > 0 years for every slice, got {t.tolist()}")
    params, objective, nev, status = fit_svi_slices(k, w, om, off, parallel=parallel)
    params = params.copy()
    fitted = np.isfinite(params).all(axis=1)
    for i in np.flatnonzero(fitted):
        params[i] = _clip_a(params[i])
    k_min = np.full(n, np.nan)
    k_max = np.full(n, np.nan)
    for i in range(n):
        sel = om[off[i] : off[i + 1]] > 0
        if sel.any():
            ks = k[off[i] : off[i + 1]][sel]
            k_min[i], k_max[i] = ks.min(), ks.max()
    sd = np.full(n, np.nan)
    for i in np.flatnonzero(fitted):
        w0 = float(svi_total_variance(np.zeros(1), *params[i])[0])
        sd[i] = math.sqrt(w0) if w0 > 0 else np.nan
    grid = (
        surface_check_grid(k_min[fitted], k_max[fitted], n_wide, n_slice, sd=sd[fitted], n_sd=n_sd)
        if fitted.any()
        else np.linspace(-1.0, 1.0, n_wide)
    )
    order = [i for i in np.argsort(t, kind="stable") if fitted[i]]
    below = np.zeros(grid.size, dtype=np.bool_)
    none = np.full(5, np.nan)

    def check(i: int, prev: int | None) -> tuple[int, float, int]:
        if prev is None:
            return _slice_check_nb(grid, params[i], none, 0.0, 0.0, g_tol, w_tol, below)
        lo, hi = max(k_min[prev], k_min[i]), min(k_max[prev], k_max[i])
        return _slice_check_nb(grid, params[i], params[prev], lo, hi, g_tol, w_tol, below)

    fly_before = np.zeros(n, dtype=np.int64)
    cal_before = np.zeros(n, dtype=np.int64)
    for j, i in enumerate(order):
        fly_before[i], _, cal_before[i] = check(i, order[j - 1] if j else None)
    repairs = np.zeros(n, dtype=np.int64)
    if repair:
        need = np.array([i for i in order if fly_before[i] > 0], dtype=np.int64)
        if need.size:
            sub_k = np.concatenate([k[off[i] : off[i + 1]] for i in need])
            sub_w = np.concatenate([w[off[i] : off[i + 1]] for i in need])
            sub_o = np.concatenate([om[off[i] : off[i + 1]] for i in need])
            sub_off = np.concatenate([[0], np.cumsum(np.diff(off)[need])])
            p2, o2, n2, s2 = fit_svi_slices(
                sub_k, sub_w, sub_o, sub_off, wings=True, parallel=parallel
            )
            nev[need] += n2
            for j, i in enumerate(need):
                repairs[i] |= REPAIR_WINGS
                if np.isfinite(p2[j]).all():
                    params[i], objective[i], status[i] = _clip_a(p2[j]), o2[j], s2[j]

    fly_after = np.zeros(n, dtype=np.int64)
    cal_after = np.zeros(n, dtype=np.int64)
    min_g = np.full(n, np.nan)
    empty = np.empty(0)
    for j, i in enumerate(order):
        prev = order[j - 1] if j else None
        a, b = off[i], off[i + 1]
        fly, gmin, nb = check(i, prev)
        extra = np.empty(0)
        rounds = 0
        while repair and (fly > 0 or nb > 0) and rounds < max_rounds:
            rounds += 1
            if fly > 0:
                repairs[i] |= REPAIR_WINGS
            if nb > 0:
                repairs[i] |= REPAIR_CALENDAR
                extra = np.union1d(extra, grid[below])
            if repairs[i] & REPAIR_CALENDAR and prev is not None:
                lo, hi = max(k_min[prev], k_min[i]), min(k_max[prev], k_max[i])
                cgrid = np.union1d(np.linspace(lo, hi, n_constraint), extra)
                lower = svi_total_variance(cgrid, *params[prev]) * (1.0 + _CUSHION) + 1e-14
                upper = np.full(cgrid.size, np.nan)
            else:
                cgrid = lower = upper = empty
            p, obj, ne, st = svi_fit_slice_nb(
                k[a:b],
                w[a:b],
                om[a:b],
                cgrid,
                lower,
                upper,
                RHO_MAX,
                LEE_SLOPE,
                bool(repairs[i] & REPAIR_WINGS),
                0.5,
                7,
                1,
                400,
                params[i, 3:5].copy(),
            )
            nev[i] += ne
            if not np.isfinite(p).all():
                break
            params[i], objective[i], status[i] = _clip_a(p), obj, st
            fly, gmin, nb = check(i, prev)
        fly_after[i], cal_after[i], min_g[i] = fly, nb, gmin
    return SVISurfaceFit(
        params=params,
        status=status,
        objective=objective,
        k_grid=grid,
        butterfly=fly_after,
        calendar=cal_after,
        min_g=min_g,
        butterfly_before=fly_before,
        calendar_before=cal_before,
        repair=repairs,
        n_evaluations=nev,
    )


def _params_or_none(arr: np.ndarray) -> SVIParams | None:
    try:
        return SVIParams.from_array(arr)
    except ValueError:
        return None
