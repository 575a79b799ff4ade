"""Raw SVI smiles (Gatheral 2004): total variance, derivatives and a fast constrained fit.

A raw SVI slice gives the total implied variance ``w = implied_vol**2 * tte`` of one expiry as a
function of the log-moneyness ``k = ln(strike / forward)``::

    w(k) = a + b * (rho * (k - m) + sqrt((k - m)**2 + sigma**2))            (Gatheral 2004)

Parameter domain (enforced by :class:`SVIParams` and by every fit):

* ``b >= 0``, ``|rho| < 1`` (the fits use ``|rho| <= rho_max = 0.999``), ``sigma > 0``;
* ``a + b * sigma * sqrt(1 - rho**2) >= 0``: the minimum of ``w`` is non-negative;
* Roger Lee's moment bound on the wings (Lee 2004, the moment formula, in total variance):
  ``b * (1 + |rho|) <= 2``. SVI's wings are straight lines of slope ``b(1 - rho)`` (left) and
  ``b(1 + rho)`` (right); Lee's formula bounds ``limsup w(k)/|k|`` by 2, and Gatheral-Jacquier's
  ``g(k)`` tends to ``1/4 - slope**2/16`` in a wing, so the bound is *necessary* for the absence
  of butterfly arbitrage. (Gatheral 2004 writes ``b(1+|rho|) <= 4/T`` for SVI in implied
  *variance*, i.e. ``<= 4`` in total variance -- the Rogers-Tehranchi bound on ``|dw/dk|``,
  which is weaker; the fits here use Lee's 2.)

The fit (:func:`fit_svi`, :func:`fit_svi_slices`) is the quasi-explicit reduction of
Zeliade (2009): with ``y = (k - m) / sigma`` the model is ``w = a + d y + c sqrt(y**2 + 1)``
with ``c = b sigma`` and ``d = rho b sigma``, *linear* in ``(a, d, c)`` for fixed
``(m, sigma)``, and the constraints are linear in ``(a, d, c)``::

    |d| <= rho_max c,      c + |d| <= 2 sigma (Lee),      a + c L(d / c) >= 0

The last is a sufficient linear form of the minimum-variance condition ``a + sqrt(c**2 - d**2)
>= 0``: ``L`` is the piecewise-linear interpolant (chords between 13 nodes in ``[0, rho_max]``,
mirrored) of the concave ``sqrt(1 - r**2)``, so ``L <= sqrt(1 - r**2)`` and each chord is one
linear row; it is exact at the nodes (``rho = 0, +-0.3, ..., +-rho_max``) and off them
understates ``b sigma sqrt(1 - rho**2)`` by at most 1.2 % for ``|rho| <= 0.9``, 1.5 % for
``|rho| <= 0.99`` (7.6 % between the last two nodes). So for fixed ``(m, sigma)`` the weighted
least-squares problem in ``(a, d, c)`` is a 3-variable convex QP, solved exactly (constraint
generation: add the most violated row, re-solve the working-set QP by its active sets with the
range-space KKT formulas, check the multipliers' signs), and only the 2-D problem in ``(m, log
sigma)`` is searched numerically: a coarse grid, then Nelder-Mead (Nelder & Mead 1965, standard
coefficients) from the best separated grid points. Optional linear rows ``lower_j <= w(k_j) <=
upper_j`` on a grid (the calendar repair) and the wing-intercept rows (the butterfly repair,
:func:`fit_svi` ``wings``) enter the same QP; the repairs themselves are in
:func:`pricing.arbitrage.fit_svi_surface`.

Units: ``k`` dimensionless, ``w`` in years * (decimal vol)**2, ``tte`` in years ACT/365.

References
----------
.. [1] Gatheral, J. (2004). "A parsimonious arbitrage-free implied volatility parameterization
   with application to the valuation of volatility derivatives". Global Derivatives, Madrid.
.. [2] Zeliade Systems (2009). "Quasi-explicit calibration of Gatheral's SVI model". Zeliade
   white paper ZWP-0005, sections 3-4.
.. [3] Lee, R. (2004). "The moment formula for implied volatility at extreme strikes".
   Mathematical Finance 14(3), 469-480.
.. [4] Gatheral, J. and Jacquier, A. (2014). "Arbitrage-free SVI volatility surfaces".
   Quantitative Finance 14(1), 59-71.
.. [5] Nelder, J. A. and Mead, R. (1965). "A simplex method for function minimization".
   The Computer Journal 7(4), 308-313.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

__all__ = [
    "FIT_OK",
    "FIT_STATUS_DESCRIPTIONS",
    "FIT_TOO_FEW_POINTS",
    "LEE_SLOPE",
    "RHO_MAX",
    "SVI_PARAM_NAMES",
    "SVIFit",
    "SVIParams",
    "fit_svi",
    "fit_svi_slices",
    "svi_derivatives",
    "svi_derivatives_nb",
    "svi_fit_slice_nb",
    "svi_implied_vol",
    "svi_total_variance",
    "svi_total_variance_nb",
]

SVI_PARAM_NAMES = ("a", "b", "rho", "m", "sigma")
"""Order of the raw SVI parameters in arrays."""

RHO_MAX = 0.999
"""Largest ``|rho|`` a fit may return (``|rho| < 1`` strictly)."""

LEE_SLOPE = 2.0
"""Largest wing slope ``b (1 + |rho|)`` of total variance (Lee 2004 moment bound)."""

FIT_OK = 0
"""Fit status: converged."""
FIT_TOO_FEW_POINTS = 1
"""Fit status: fewer than 5 points with positive weight (5 parameters)."""
FIT_NOT_CONVERGED = 2
"""Fit status: Nelder-Mead stopped at its iteration limit (parameters still valid)."""
FIT_INFEASIBLE = 3
"""Fit status: the bound constraints ``lower <= w <= upper`` admit no SVI slice."""

FIT_STATUS_DESCRIPTIONS = {
    FIT_OK: "ok",
    FIT_TOO_FEW_POINTS: "fewer than 5 points with positive weight",
    FIT_NOT_CONVERGED: "Nelder-Mead iteration limit reached",
    FIT_INFEASIBLE: "grid bounds on w admit no SVI slice",
}
"""Human-readable reason of each fit status code."""


# ------------------------------------------------------------------------------------------------
# Parameters and evaluation
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SVIParams:
    """Raw SVI parameters of one expiry (Gatheral 2004), in total variance.

    Parameters
    ----------
    a : float
        Vertical level (years * decimal vol**2); may be negative.
    b : float
        Wing slope scale, ``>= 0``.
    rho : float
        Skew/rotation, ``|rho| < 1``.
    m : float
        Horizontal shift (log-moneyness of the vertex).
    sigma : float
        Smoothness of the vertex, ``> 0`` (log-moneyness units).

    Raises
    ------
    ValueError
        A non-finite value, ``b < 0``, ``|rho| >= 1``, ``sigma <= 0``, or a negative minimum
        total variance ``a + b sigma sqrt(1 - rho**2) < 0``.
    """

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __post_init__(self) -> None:
        for name in SVI_PARAM_NAMES:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"SVI parameter {name} must be finite, got {value!r}")
        if self.b < 0.0:
            raise ValueError(f"SVI b must be >= 0, got {self.b!r}")
        if not abs(self.rho) < 1.0:
            raise ValueError(f"SVI rho must satisfy |rho| < 1, got {self.rho!r}")
        if self.sigma <= 0.0:
            raise ValueError(f"SVI sigma must be > 0, got {self.sigma!r}")
        if self.min_total_variance < -1e-14:
            raise ValueError(
                "SVI minimum total variance a + b sigma sqrt(1 - rho^2) must be >= 0, got "
                f"{self.min_total_variance!r} (a={self.a!r}, b={self.b!r}, rho={self.rho!r}, "
                f"sigma={self.sigma!r})"
            )

    @classmethod
    def from_array(cls, values: np.ndarray) -> SVIParams:
        """Parameters from ``[a, b, rho, m, sigma]`` (shape ``(5,)``).

        Raises
        ------
        ValueError
            Wrong shape or an invalid parameter (see the class).
        """
        arr = np.asarray(values, dtype=float)
        if arr.shape != (5,):
            raise ValueError(f"SVI parameters must have shape (5,), got {arr.shape}")
        return cls(*(float(x) for x in arr))

    def to_array(self) -> np.ndarray:
        """``[a, b, rho, m, sigma]`` as a float64 array of shape ``(5,)``."""
        return np.array([self.a, self.b, self.rho, self.m, self.sigma])

    def to_dict(self) -> dict[str, float]:
        """``{"a": ..., "b": ..., "rho": ..., "m": ..., "sigma": ...}``."""
        return {name: float(getattr(self, name)) for name in SVI_PARAM_NAMES}

    @property
    def min_total_variance(self) -> float:
        """``a + b sigma sqrt(1 - rho**2)``, the minimum of ``w(k)`` over ``k``."""
        return self.a + self.b * self.sigma * math.sqrt(max(1.0 - self.rho * self.rho, 0.0))

    @property
    def wing_slopes(self) -> tuple[float, float]:
        """``(b (1 - rho), b (1 + rho))``: the slopes ``|dw/dk|`` of the left and right wings."""
        return self.b * (1.0 - self.rho), self.b * (1.0 + self.rho)

    def total_variance(self, log_moneyness: np.ndarray | float) -> np.ndarray:
        """``w(k)`` (years * decimal vol**2) at ``log_moneyness`` (any shape)."""
        return svi_total_variance(log_moneyness, *self.to_array())

    def implied_vol(self, log_moneyness: np.ndarray | float, tte: float) -> np.ndarray:
        """Decimal implied vol ``sqrt(w(k) / tte)`` (``tte`` in years, ``> 0``)."""
        return svi_implied_vol(log_moneyness, tte, *self.to_array())


@njit(cache=True, error_model="numpy")
def svi_total_variance_nb(
    k: float, a: float, b: float, rho: float, m: float, sigma: float
) -> float:
    """Raw SVI total variance at one log-moneyness (nopython scalar kernel).

    ``w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))`` (Gatheral 2004).
    """
    x = k - m
    return a + b * (rho * x + math.sqrt(x * x + sigma * sigma))


@njit(cache=True, error_model="numpy")
def svi_derivatives_nb(
    k: float, a: float, b: float, rho: float, m: float, sigma: float
) -> tuple[float, float, float]:
    """``(w, dw/dk, d2w/dk2)`` of a raw SVI slice at ``k`` (nopython scalar kernel).

    ``w' = b (rho + (k - m) / R)``, ``w'' = b sigma^2 / R^3`` with
    ``R = sqrt((k - m)^2 + sigma^2)``.
    """
    x = k - m
    r = math.sqrt(x * x + sigma * sigma)
    w = a + b * (rho * x + r)
    w1 = b * (rho + x / r)
    w2 = b * sigma * sigma / (r * r * r)
    return w, w1, w2


def svi_total_variance(
    log_moneyness: np.ndarray | float, a: float, b: float, rho: float, m: float, sigma: float
) -> np.ndarray:
    """Raw SVI total variance ``w(k)`` (Gatheral 2004), vectorised.

    Parameters
    ----------
    log_moneyness : array_like
        ``k = ln(strike / forward)``, any shape.
    a, b, rho, m, sigma : float
        Raw SVI parameters (not validated here; see :class:`SVIParams`).

    Returns
    -------
    numpy.ndarray
        Total variance (years * decimal vol**2), the shape of ``log_moneyness``.
    """
    x = np.asarray(log_moneyness, dtype=float) - m
    return a + b * (rho * x + np.sqrt(x * x + sigma * sigma))


def svi_derivatives(
    log_moneyness: np.ndarray | float, a: float, b: float, rho: float, m: float, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w, dw/dk, d2w/dk2)`` of a raw SVI slice, vectorised (see :func:`svi_derivatives_nb`).

    Returns
    -------
    tuple of numpy.ndarray
        Each the shape of ``log_moneyness``.
    """
    x = np.asarray(log_moneyness, dtype=float) - m
    r = np.sqrt(x * x + sigma * sigma)
    return a + b * (rho * x + r), b * (rho + x / r), b * sigma * sigma / r**3


def svi_implied_vol(
    log_moneyness: np.ndarray | float,
    tte: float,
    a: float,
    b: float,
    rho: float,
    m: float,
    sigma: float,
) -> np.ndarray:
    """Decimal implied vol ``sqrt(w(k) / tte)`` of a raw SVI slice.

    Parameters
    ----------
    log_moneyness : array_like
        ``k = ln(strike / forward)``.
    tte : float
        Years (ACT/365), ``> 0``.
    a, b, rho, m, sigma : float
        Raw SVI parameters.

    Returns
    -------
    numpy.ndarray
        Annualised decimal vol; NaN where ``w < 0``.

    Raises
    ------
    ValueError
        ``tte <= 0``.
    """
    if not tte > 0.0:
        raise ValueError(f"tte must be > 0 years, got {tte!r}")
    w = svi_total_variance(log_moneyness, a, b, rho, m, sigma)
    with np.errstate(invalid="ignore"):
        return np.sqrt(w / tte)


# ------------------------------------------------------------------------------------------------
# The inner problem: a 3-variable convex QP in (a, d, c) for fixed (m, sigma)
# ------------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _inverse3_nb(gram: np.ndarray, out: np.ndarray) -> bool:
    """Inverse of a symmetric positive-definite 3x3 ``gram`` into ``out`` (adjugate / det)."""
    g00, g01, g02 = gram[0, 0], gram[0, 1], gram[0, 2]
    g11, g12, g22 = gram[1, 1], gram[1, 2], gram[2, 2]
    c00 = g11 * g22 - g12 * g12
    c01 = g02 * g12 - g01 * g22
    c02 = g01 * g12 - g02 * g11
    det = g00 * c00 + g01 * c01 + g02 * c02
    if not det > 1e-13 * (abs(g00 * g11 * g22) + 1e-300):
        return False
    inv = 1.0 / det
    out[0, 0] = c00 * inv
    out[0, 1] = out[1, 0] = c01 * inv
    out[0, 2] = out[2, 0] = c02 * inv
    out[1, 1] = (g00 * g22 - g02 * g02) * inv
    out[1, 2] = out[2, 1] = (g01 * g02 - g00 * g12) * inv
    out[2, 2] = (g00 * g11 - g01 * g01) * inv
    return True


@njit(cache=True, error_model="numpy")
def _active_point_nb(
    gi: np.ndarray,
    xu: np.ndarray,
    cons: np.ndarray,
    bound: np.ndarray,
    active: np.ndarray,
    size: int,
    x: np.ndarray,
) -> tuple[bool, bool]:
    """Range-space solution of the QP with ``cons[active] x = bound[active]``.

    With ``G^{-1}`` (``gi``) and the unconstrained minimiser ``xu``: ``B = G^{-1} A'``,
    ``M = A B``, ``lambda = M^{-1} (A xu - b)``, ``x = xu - B lambda`` (written into ``x``).
    Returns ``(ok, multipliers >= 0)``; ``ok`` False for linearly dependent rows.
    """
    b = np.empty((3, 3))  # columns G^{-1} a_j
    r = np.empty(3)
    for j in range(size):
        row = active[j]
        a0, a1, a2 = cons[row, 0], cons[row, 1], cons[row, 2]
        for i in range(3):
            b[i, j] = gi[i, 0] * a0 + gi[i, 1] * a1 + gi[i, 2] * a2
        r[j] = a0 * xu[0] + a1 * xu[1] + a2 * xu[2] - bound[row]
    m = np.empty((3, 3))
    for i in range(size):
        ri = active[i]
        for j in range(size):
            m[i, j] = cons[ri, 0] * b[0, j] + cons[ri, 1] * b[1, j] + cons[ri, 2] * b[2, j]
    lam0 = lam1 = lam2 = 0.0
    if size == 1:
        if not m[0, 0] > 1e-300:
            return False, False
        lam0 = r[0] / m[0, 0]
    elif size == 2:
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        if not abs(det) > 1e-12 * (abs(m[0, 0] * m[1, 1]) + 1e-300):
            return False, False
        lam0 = (r[0] * m[1, 1] - m[0, 1] * r[1]) / det
        lam1 = (m[0, 0] * r[1] - m[1, 0] * r[0]) / det
    else:
        c00 = m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]
        c01 = m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]
        c02 = m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]
        det = m[0, 0] * c00 + m[0, 1] * c01 + m[0, 2] * c02
        if not abs(det) > 1e-12 * (abs(m[0, 0] * m[1, 1] * m[2, 2]) + 1e-300):
            return False, False
        inv = 1.0 / det
        lam0 = (
            r[0] * c00
            + r[1] * (m[0, 2] * m[2, 1] - m[0, 1] * m[2, 2])
            + r[2] * (m[0, 1] * m[1, 2] - m[0, 2] * m[1, 1])
        ) * inv
        lam1 = (
            r[0] * c01
            + r[1] * (m[0, 0] * m[2, 2] - m[0, 2] * m[2, 0])
            + r[2] * (m[0, 2] * m[1, 0] - m[0, 0] * m[1, 2])
        ) * inv
        lam2 = (
            r[0] * c02
            + r[1] * (m[0, 1] * m[2, 0] - m[0, 0] * m[2, 1])
            + r[2] * (m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])
        ) * inv
    for i in range(3):
        x[i] = xu[i] - b[i, 0] * lam0
        if size > 1:
            x[i] -= b[i, 1] * lam1
        if size > 2:
            x[i] -= b[i, 2] * lam2
    scale = 1e-12 * (abs(lam0) + abs(lam1) + abs(lam2)) + 1e-300
    return True, lam0 >= -scale and lam1 >= -scale and lam2 >= -scale


@njit(cache=True, error_model="numpy")
def _feasible_nb(
    x: np.ndarray, cons: np.ndarray, bound: np.ndarray, work: np.ndarray, nwork: int, tol: float
) -> bool:
    for q in range(nwork):
        row = work[q]
        if cons[row, 0] * x[0] + cons[row, 1] * x[1] + cons[row, 2] * x[2] - bound[row] > tol:
            return False
    return True


@njit(cache=True, error_model="numpy")
def _qp_over_working_set_nb(
    gi: np.ndarray,
    xu: np.ndarray,
    cons: np.ndarray,
    bound: np.ndarray,
    work: np.ndarray,
    nwork: int,
    prev: np.ndarray,
    nprev: int,
    tol: float,
    x: np.ndarray,
    active: np.ndarray,
) -> tuple[int, bool]:
    """Exact minimiser of the convex QP restricted to the constraints ``work[:nwork]``.

    The newest working constraint ``work[nwork - 1]`` was violated by the optimum over the
    others, so it is active at the new optimum. Active sets containing it are tried first
    among the previous active set ``prev[:nprev]`` (usually the answer), then among all
    working constraints, then every subset of size 1..3 (a degenerate fallback). The first set
    whose equality-constrained minimiser (:func:`_active_point_nb`) has non-negative KKT
    multipliers and satisfies every working constraint is the optimum (a strictly convex QP
    has one KKT point; in 3 dimensions at most 3 active constraints are needed,
    Caratheodory). The point is written into ``x`` and the active set into ``active``.

    Returns ``(n_active, ok)``.
    """
    newest = work[nwork - 1]
    # 1) newest + any subset (size <= 2) of the previous active set
    for mask in range(1 << nprev):
        size = 1
        active[0] = newest
        for q in range(nprev):
            if mask & (1 << q):
                if size == 3:
                    size = 4
                    break
                active[size] = prev[q]
                size += 1
        if size > 3:
            continue
        ok, pos = _active_point_nb(gi, xu, cons, bound, active, size, x)
        if ok and pos and _feasible_nb(x, cons, bound, work, nwork, tol):
            return size, True
    # 2) newest + any 0, 1 or 2 other working constraints
    others = nwork - 1
    active[0] = newest
    for i in range(-1, others):
        for j in range(i + 1 if i >= 0 else -1, others):
            if i < 0 and j >= 0:
                break
            size = 1
            if i >= 0:
                active[1] = work[i]
                size = 2
            if j >= 0 and i >= 0:
                active[2] = work[j]
                size = 3
            ok, pos = _active_point_nb(gi, xu, cons, bound, active, size, x)
            if ok and pos and _feasible_nb(x, cons, bound, work, nwork, tol):
                return size, True
            if i < 0:
                break
    # 3) degenerate fallback: every subset of size 1..3
    for i in range(nwork):
        for j in range(i, nwork):
            for q in range(j, nwork):
                active[0] = work[i]
                size = 1
                if j > i:
                    active[size] = work[j]
                    size += 1
                if q > j:
                    active[size] = work[q]
                    size += 1
                if (j == i and q > j) or size == 0:
                    continue
                ok, pos = _active_point_nb(gi, xu, cons, bound, active, size, x)
                if ok and pos and _feasible_nb(x, cons, bound, work, nwork, tol):
                    return size, True
    return 0, False


@njit(cache=True, error_model="numpy")
def _qp3_nb(
    gram: np.ndarray, h: np.ndarray, cons: np.ndarray, bound: np.ndarray, ncons: int, tol: float
) -> tuple[np.ndarray, bool]:
    """Minimise ``x'Gx - 2h'x`` subject to ``cons[:ncons] x <= bound[:ncons]`` (3 variables).

    Constraint generation (a dual method): start unconstrained, add the most violated
    constraint to a working set and solve the QP over the working set exactly
    (:func:`_qp_over_working_set_nb`), until the point is feasible for all constraints -- then
    it is optimal for the full problem. ``ok`` False means the working-set QP had no KKT point
    (the constraints are infeasible) or ``G`` is singular.
    """
    gi = np.empty((3, 3))
    x = np.zeros(3)
    if not _inverse3_nb(gram, gi):
        return x, False
    xu = np.empty(3)
    for i in range(3):
        xu[i] = gi[i, 0] * h[0] + gi[i, 1] * h[1] + gi[i, 2] * h[2]
        x[i] = xu[i]
    work = np.empty(0, dtype=np.int64)
    prev = np.zeros(3, dtype=np.int64)
    active = np.zeros(3, dtype=np.int64)
    nprev = 0
    nwork = 0
    for _ in range(ncons + 1):
        worst = -1
        worst_v = tol
        for row in range(ncons):
            v = cons[row, 0] * x[0] + cons[row, 1] * x[1] + cons[row, 2] * x[2] - bound[row]
            if v > worst_v:
                worst_v = v
                worst = row
        if worst < 0:
            return x, True
        if nwork == 0:
            work = np.zeros(ncons, dtype=np.int64)
        work[nwork] = worst
        nwork += 1
        nact, ok = _qp_over_working_set_nb(
            gi, xu, cons, bound, work, nwork, prev, nprev, tol, x, active
        )
        if not ok:
            return x, False
        for q in range(nact):
            prev[q] = active[q]
        nprev = nact
    return x, False


_XTOL = 1e-6
"""Nelder-Mead stops when the simplex is smaller than this in ``m`` and ``log sigma`` ..."""
_FTOL = 1e-9
"""... and its objective values agree to this relative tolerance."""

_R_NODES = np.array([0.0, 0.3, 0.5, 0.65, 0.75, 0.83, 0.89, 0.93, 0.96, 0.98, 0.99, 0.995])
"""Nodes in ``|rho|`` of the chords of ``sqrt(1 - r^2)`` (``rho_max`` is appended)."""


@njit(cache=True, error_model="numpy")
def _static_constraints_nb(cons: np.ndarray, bound: np.ndarray, rho_max: float) -> int:
    """Write the parameter constraints on ``x = (a, d, c)`` that do not move with
    ``(m, sigma)`` as rows ``cons x <= bound``; returns the number of rows.

    Rows 0-1: ``|d| <= rho_max c``. Rows 2-3: ``c + |d| <= lee sigma`` (Lee's wing bound;
    the bound is set per ``sigma`` by :func:`_inner_nb`). Then the minimum total variance
    ``a + sqrt(c^2 - d^2) >= 0`` in the sufficient linear form ``a + c L(d / c) >= 0``: ``L``
    is the piecewise-linear interpolant (chords) of the concave ``sqrt(1 - r^2)`` on nodes in
    ``[-rho_max, rho_max]``, so ``L <= sqrt(1 - r^2)`` and each chord ``alpha + beta r`` gives
    the row ``-a - beta d - alpha c <= 0``.
    """
    cons[0, 0], cons[0, 1], cons[0, 2], bound[0] = 0.0, 1.0, -rho_max, 0.0
    cons[1, 0], cons[1, 1], cons[1, 2], bound[1] = 0.0, -1.0, -rho_max, 0.0
    cons[2, 0], cons[2, 1], cons[2, 2], bound[2] = 0.0, 1.0, 1.0, 0.0
    cons[3, 0], cons[3, 1], cons[3, 2], bound[3] = 0.0, -1.0, 1.0, 0.0
    row = 4
    nn = 0
    nodes = np.empty(_R_NODES.size + 1)
    for i in range(_R_NODES.size):
        if _R_NODES[i] < rho_max:
            nodes[nn] = _R_NODES[i]
            nn += 1
    nodes[nn] = rho_max
    nn += 1
    for i in range(nn - 1):
        r0, r1 = nodes[i], nodes[i + 1]
        f0 = math.sqrt(1.0 - r0 * r0)
        f1 = math.sqrt(1.0 - r1 * r1)
        beta = (f1 - f0) / (r1 - r0)
        alpha = f0 - beta * r0
        for sgn in (1.0, -1.0):  # chord on r >= 0 and its mirror on r <= 0
            cons[row, 0], cons[row, 1], cons[row, 2] = -1.0, -sgn * beta, -alpha
            bound[row] = 0.0
            row += 1
    return row


N_BASE_CONSTRAINTS = 6 + 2 * (_R_NODES.size)
"""Upper bound on the number of parameter constraint rows of the inner QP."""


# positions in the ``opts`` array of the compiled fit: |rho| bound, wing-slope bound, wing
# intercept constraints on/off (1.0/0.0), feasibility tolerance on w, number of static rows
_RHO, _LEE, _WINGS, _TOL, _NSTATIC = 0, 1, 2, 3, 4


@njit(cache=True, error_model="numpy")
def _inner_nb(
    m: float,
    sigma: float,
    k: np.ndarray,
    w: np.ndarray,
    om: np.ndarray,
    k_grid: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    cons: np.ndarray,
    bound: np.ndarray,
    opts: np.ndarray,
) -> tuple[float, float, float, float, bool]:
    """Best ``(a, d, c)`` for fixed ``(m, sigma)``: ``(a, d, c, objective, ok)``.

    ``objective = sum om_i (a + d y_i + c sqrt(y_i^2 + 1) - w_i)^2`` with
    ``y_i = (k_i - m) / sigma``; ``lower``/``upper`` (NaN = none) bound ``w`` on ``k_grid``.
    """
    s1 = sy = sz = syy = syz = szz = sw = swy = swz = sww = 0.0
    inv = 1.0 / sigma
    for i in range(k.size):
        o = om[i]
        y = (k[i] - m) * inv
        z = math.sqrt(y * y + 1.0)
        wi = w[i]
        s1 += o
        sy += o * y
        sz += o * z
        syy += o * y * y
        syz += o * y * z
        szz += o * z * z
        sw += o * wi
        swy += o * wi * y
        swz += o * wi * z
        sww += o * wi * wi
    gram = np.empty((3, 3))
    gram[0, 0], gram[0, 1], gram[0, 2] = s1, sy, sz
    gram[1, 0], gram[1, 1], gram[1, 2] = sy, syy, syz
    gram[2, 0], gram[2, 1], gram[2, 2] = sz, syz, szz
    ridge = 1e-12 * (s1 + syy + szz)
    for i in range(3):
        gram[i, i] += ridge
    h = np.array([sw, swy, swz])
    bound[2] = bound[3] = opts[_LEE] * sigma
    ncons = int(opts[_NSTATIC])
    if opts[_WINGS] > 0.0:  # both wing asymptotes >= 0 at k = 0
        r = m * inv
        cons[ncons, 0], cons[ncons, 1], cons[ncons, 2], bound[ncons] = -1.0, r, r, 0.0
        cons[ncons + 1, 0], cons[ncons + 1, 1], cons[ncons + 1, 2] = -1.0, r, -r
        bound[ncons + 1] = 0.0
        ncons += 2
    for j in range(k_grid.size):
        y = (k_grid[j] - m) * inv
        z = math.sqrt(y * y + 1.0)
        if not math.isnan(lower[j]):  # -(a + d y + c z) <= -lower
            cons[ncons, 0], cons[ncons, 1], cons[ncons, 2] = -1.0, -y, -z
            bound[ncons] = -lower[j]
            ncons += 1
        if not math.isnan(upper[j]):
            cons[ncons, 0], cons[ncons, 1], cons[ncons, 2] = 1.0, y, z
            bound[ncons] = upper[j]
            ncons += 1
    x, ok = _qp3_nb(gram, h, cons, bound, ncons, opts[_TOL])
    a, d, c = x[0], x[1], x[2]
    obj = (
        a * a * gram[0, 0]
        + d * d * gram[1, 1]
        + c * c * gram[2, 2]
        + 2.0 * (a * d * gram[0, 1] + a * c * gram[0, 2] + d * c * gram[1, 2])
        - 2.0 * (a * sw + d * swy + c * swz)
        + sww
    )
    return a, d, c, max(obj, 0.0), ok


# ------------------------------------------------------------------------------------------------
# The outer problem: (m, log sigma) by grid + Nelder-Mead
# ------------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _outer_obj_nb(
    x0: float,
    x1: float,
    lo: np.ndarray,
    hi: np.ndarray,
    k: np.ndarray,
    w: np.ndarray,
    om: np.ndarray,
    k_grid: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    cons: np.ndarray,
    bound: np.ndarray,
    opts: np.ndarray,
) -> float:
    """Reduced objective at ``(m, log sigma) = (x0, x1)``, clipped into the box ``[lo, hi]``."""
    m = min(max(x0, lo[0]), hi[0])
    ls = min(max(x1, lo[1]), hi[1])
    _, _, _, obj, ok = _inner_nb(m, math.exp(ls), k, w, om, k_grid, lower, upper, cons, bound, opts)
    if not ok:
        return np.inf
    # a small pull back into the box keeps Nelder-Mead from drifting along a flat boundary
    pen = (x0 - m) ** 2 + (x1 - ls) ** 2
    return obj * (1.0 + pen)


@njit(cache=True, error_model="numpy")
def _nelder_mead_2d_nb(
    start: np.ndarray,
    step: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: np.ndarray,
    w: np.ndarray,
    om: np.ndarray,
    k_grid: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    cons: np.ndarray,
    bound: np.ndarray,
    opts: np.ndarray,
    max_iter: int,
    xtol: float,
    ftol: float,
) -> tuple[np.ndarray, float, int, bool]:
    """Nelder-Mead (coefficients 1, 2, 1/2, 1/2) on the reduced objective in 2 dimensions.

    Returns ``(x, f(x), evaluations, converged)``; converged when the simplex is smaller than
    ``xtol`` and its values agree to ``ftol`` (relative).
    """
    pts = np.empty((3, 2))
    f = np.empty(3)
    pts[0, 0], pts[0, 1] = start[0], start[1]
    pts[1, 0], pts[1, 1] = start[0] + step[0], start[1]
    pts[2, 0], pts[2, 1] = start[0], start[1] + step[1]
    nev = 0
    for i in range(3):
        f[i] = _outer_obj_nb(
            pts[i, 0], pts[i, 1], lo, hi, k, w, om, k_grid, lower, upper, cons, bound, opts
        )
        nev += 1
    converged = False
    for _ in range(max_iter):
        for i in range(1, 3):  # insertion sort: best first, worst last
            j = i
            while j > 0 and f[j] < f[j - 1]:
                f[j], f[j - 1] = f[j - 1], f[j]
                t0, t1 = pts[j, 0], pts[j, 1]
                pts[j, 0], pts[j, 1] = pts[j - 1, 0], pts[j - 1, 1]
                pts[j - 1, 0], pts[j - 1, 1] = t0, t1
                j -= 1
        size = max(
            abs(pts[1, 0] - pts[0, 0]),
            abs(pts[2, 0] - pts[0, 0]),
            abs(pts[1, 1] - pts[0, 1]),
            abs(pts[2, 1] - pts[0, 1]),
        )
        if size < xtol and (f[2] - f[0]) <= ftol * (abs(f[0]) + 1e-300):
            converged = True
            break
        if size < 1e-3 * xtol:
            converged = True
            break
        c0 = 0.5 * (pts[0, 0] + pts[1, 0])
        c1 = 0.5 * (pts[0, 1] + pts[1, 1])
        r0 = 2.0 * c0 - pts[2, 0]
        r1 = 2.0 * c1 - pts[2, 1]
        fr = _outer_obj_nb(r0, r1, lo, hi, k, w, om, k_grid, lower, upper, cons, bound, opts)
        nev += 1
        if fr < f[0]:  # expansion
            e0 = 3.0 * c0 - 2.0 * pts[2, 0]
            e1 = 3.0 * c1 - 2.0 * pts[2, 1]
            fe = _outer_obj_nb(e0, e1, lo, hi, k, w, om, k_grid, lower, upper, cons, bound, opts)
            nev += 1
            if fe < fr:
                pts[2, 0], pts[2, 1], f[2] = e0, e1, fe
            else:
                pts[2, 0], pts[2, 1], f[2] = r0, r1, fr
            continue
        if fr < f[1]:
            pts[2, 0], pts[2, 1], f[2] = r0, r1, fr
            continue
        if fr < f[2]:  # outside contraction
            q0 = c0 + 0.5 * (r0 - c0)
            q1 = c1 + 0.5 * (r1 - c1)
        else:  # inside contraction
            q0 = c0 + 0.5 * (pts[2, 0] - c0)
            q1 = c1 + 0.5 * (pts[2, 1] - c1)
        fq = _outer_obj_nb(q0, q1, lo, hi, k, w, om, k_grid, lower, upper, cons, bound, opts)
        nev += 1
        if fq < min(fr, f[2]):
            pts[2, 0], pts[2, 1], f[2] = q0, q1, fq
            continue
        for i in range(1, 3):  # shrink towards the best point
            pts[i, 0] = pts[0, 0] + 0.5 * (pts[i, 0] - pts[0, 0])
            pts[i, 1] = pts[0, 1] + 0.5 * (pts[i, 1] - pts[0, 1])
            f[i] = _outer_obj_nb(
                pts[i, 0], pts[i, 1], lo, hi, k, w, om, k_grid, lower, upper, cons, bound, opts
            )
            nev += 1
    best = 0
    for i in range(1, 3):
        if f[i] < f[best]:
            best = i
    out = np.array([min(max(pts[best, 0], lo[0]), hi[0]), min(max(pts[best, 1], lo[1]), hi[1])])
    return out, f[best], nev, converged


@njit(cache=True, error_model="numpy")
def svi_fit_slice_nb(
    k: np.ndarray,
    w: np.ndarray,
    weights: np.ndarray,
    k_grid: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    rho_max: float,
    lee: float,
    wings: bool,
    m_margin: float,
    n_grid: int,
    n_starts: int,
    max_iter: int,
    start: np.ndarray,
) -> tuple[np.ndarray, float, int, int]:
    """Fit one raw SVI slice (nopython kernel; see :func:`fit_svi` for the method).

    Parameters
    ----------
    k, w, weights : numpy.ndarray
        Log-moneyness, total variance and non-negative weights, shape ``(n,)``.
    k_grid, lower, upper : numpy.ndarray
        Bounds ``lower_j <= w(k_grid_j) <= upper_j`` (NaN = no bound), shape ``(g,)``; empty
        arrays for none.
    rho_max, lee : float
        ``|rho| <= rho_max``, ``b (1 + |rho|) <= lee``.
    wings : bool
        Also require both wing asymptotes to be non-negative at ``k = 0``
        (``a - b (1 + rho) m >= 0`` and ``a + b (1 - rho) m >= 0``).
    m_margin : float
        ``m`` may lie ``m_margin * (k_max - k_min)`` beyond the data.
    n_grid, n_starts, max_iter : int
        Coarse grid size per dimension, Nelder-Mead runs, iterations per run.
    start : numpy.ndarray
        ``[m, sigma]`` of an extra Nelder-Mead start (e.g. a previous fit), or NaNs for none.

    Returns
    -------
    params : numpy.ndarray
        ``[a, b, rho, m, sigma]`` (NaN when no fit).
    objective : float
        ``sum weights_i (w_model_i - w_i)^2`` with weights normalised to sum 1.
    n_evaluations : int
        Inner QP solves.
    status : int
        :data:`FIT_OK`, :data:`FIT_TOO_FEW_POINTS`, :data:`FIT_NOT_CONVERGED`,
        :data:`FIT_INFEASIBLE`.
    """
    nan_params = np.full(5, np.nan)
    n = k.size
    npos = 0
    total = 0.0
    for i in range(n):
        if weights[i] > 0.0 and math.isfinite(weights[i]):
            npos += 1
            total += weights[i]
    if npos < 5:
        return nan_params, np.nan, 0, FIT_TOO_FEW_POINTS
    om = np.empty(n)
    kmin = np.inf
    kmax = -np.inf
    wmax = 0.0
    for i in range(n):
        om[i] = weights[i] / total if (weights[i] > 0.0 and math.isfinite(weights[i])) else 0.0
        if om[i] > 0.0:
            kmin = min(kmin, k[i])
            kmax = max(kmax, k[i])
            wmax = max(wmax, abs(w[i]))
    span = max(kmax - kmin, 1e-4)
    lo = np.array([kmin - m_margin * span, math.log(max(1e-4 * span, 1e-6))])
    hi = np.array([kmax + m_margin * span, math.log(4.0 * span + 0.05)])
    ng = k_grid.size
    cons = np.empty((N_BASE_CONSTRAINTS + 2 * ng, 3))
    bound = np.empty(N_BASE_CONSTRAINTS + 2 * ng)
    nstatic = _static_constraints_nb(cons, bound, rho_max)
    opts = np.array([rho_max, lee, 1.0 if wings else 0.0, 1e-13 * max(wmax, 1e-8), nstatic])
    gm = np.empty(n_grid)
    gs = np.empty(n_grid)
    for i in range(n_grid):
        frac = i / (n_grid - 1) if n_grid > 1 else 0.5
        gm[i] = lo[0] + frac * (hi[0] - lo[0])
        gs[i] = lo[1] + frac * (hi[1] - lo[1])
    fgrid = np.empty(n_grid * n_grid)
    nev = 0
    for i in range(n_grid):
        for j in range(n_grid):
            fgrid[i * n_grid + j] = _outer_obj_nb(
                gm[i], gs[j], lo, hi, k, w, om, k_grid, lower, upper, cons, bound, opts
            )
            nev += 1
    order = np.argsort(fgrid)
    if not math.isfinite(fgrid[order[0]]):
        return nan_params, np.nan, nev, FIT_INFEASIBLE
    step = np.array([0.1 * span, 0.5])
    if n_grid > 1:
        step[0] = gm[1] - gm[0]
        step[1] = gs[1] - gs[0]
    best_x = np.zeros(2)
    best_f = np.inf
    all_conv = True
    if math.isfinite(start[0]) and math.isfinite(start[1]) and start[1] > 0.0:
        x0 = np.array([start[0], math.log(start[1])])
        x, fx, ne, conv = _nelder_mead_2d_nb(
            x0,
            0.25 * step,
            lo,
            hi,
            k,
            w,
            om,
            k_grid,
            lower,
            upper,
            cons,
            bound,
            opts,
            max_iter,
            _XTOL,
            _FTOL,
        )
        nev += ne
        if fx < best_f:
            best_f = fx
            best_x[:] = x
            all_conv = conv
    used = np.empty((n_starts, 2), dtype=np.int64)
    nused = 0
    for p in range(order.size):
        if nused >= n_starts:
            break
        idx = order[p]
        if not math.isfinite(fgrid[idx]):
            break
        i, j = idx // n_grid, idx % n_grid
        near = False
        for q in range(nused):  # skip grid neighbours of a start already used
            if abs(used[q, 0] - i) <= 1 and abs(used[q, 1] - j) <= 1:
                near = True
                break
        if near:
            continue
        used[nused, 0], used[nused, 1] = i, j
        nused += 1
        start = np.array([gm[i], gs[j]])
        x, fx, ne, conv = _nelder_mead_2d_nb(
            start,
            step,
            lo,
            hi,
            k,
            w,
            om,
            k_grid,
            lower,
            upper,
            cons,
            bound,
            opts,
            max_iter,
            _XTOL,
            _FTOL,
        )
        nev += ne
        if fx < best_f:
            best_f = fx
            best_x[:] = x
            all_conv = conv
    m = best_x[0]
    sigma = math.exp(best_x[1])
    a, d, c, obj, ok = _inner_nb(m, sigma, k, w, om, k_grid, lower, upper, cons, bound, opts)
    nev += 1
    if not ok:
        return nan_params, np.nan, nev, FIT_INFEASIBLE
    b = c / sigma
    rho = d / c if c > 0.0 else 0.0
    rho = max(min(rho, rho_max), -rho_max)
    params = np.array([a, b, rho, m, sigma])
    obj = 0.0  # exact objective from residuals (the Gram form loses digits near a perfect fit)
    for i in range(n):
        r = svi_total_variance_nb(k[i], a, b, rho, m, sigma) - w[i]
        obj += om[i] * r * r
    return params, obj, nev, FIT_OK if all_conv else FIT_NOT_CONVERGED


@njit(cache=True, error_model="numpy")
def _fit_one_of_many_nb(
    s: int,
    k: np.ndarray,
    w: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    rho_max: float,
    slope_max: np.ndarray,
    wings: np.ndarray,
    m_margin: float,
    n_grid: int,
    n_starts: int,
    max_iter: int,
    params: np.ndarray,
    objective: np.ndarray,
    nev: np.ndarray,
    status: np.ndarray,
) -> None:
    a, b = offsets[s], offsets[s + 1]
    empty = np.empty(0)
    p, obj, ne, st = svi_fit_slice_nb(
        k[a:b],
        w[a:b],
        weights[a:b],
        empty,
        empty,
        empty,
        rho_max,
        slope_max[s],
        wings[s],
        m_margin,
        n_grid,
        n_starts,
        max_iter,
        np.full(2, np.nan),
    )
    params[s] = p
    objective[s] = obj
    nev[s] = ne
    status[s] = st


@njit(cache=True, error_model="numpy")
def _fit_slices_nb(
    k: np.ndarray,
    w: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    rho_max: float,
    slope_max: np.ndarray,
    wings: np.ndarray,
    m_margin: float,
    n_grid: int,
    n_starts: int,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`svi_fit_slice_nb` for each slice ``offsets[s]:offsets[s + 1]`` (serial)."""
    n_slices = offsets.size - 1
    params = np.full((n_slices, 5), np.nan)
    objective = np.full(n_slices, np.nan)
    nev = np.zeros(n_slices, dtype=np.int64)
    status = np.zeros(n_slices, dtype=np.int64)
    for s in range(n_slices):
        _fit_one_of_many_nb(
            s,
            k,
            w,
            weights,
            offsets,
            rho_max,
            slope_max,
            wings,
            m_margin,
            n_grid,
            n_starts,
            max_iter,
            params,
            objective,
            nev,
            status,
        )
    return params, objective, nev, status


@njit(cache=True, error_model="numpy", parallel=True)
def _fit_slices_par_nb(
    k: np.ndarray,
    w: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    rho_max: float,
    slope_max: np.ndarray,
    wings: np.ndarray,
    m_margin: float,
    n_grid: int,
    n_starts: int,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_fit_slices_nb` with the slices spread over threads (same results: every slice
    is fitted independently and deterministically)."""
    n_slices = offsets.size - 1
    params = np.full((n_slices, 5), np.nan)
    objective = np.full(n_slices, np.nan)
    nev = np.zeros(n_slices, dtype=np.int64)
    status = np.zeros(n_slices, dtype=np.int64)
    for s in prange(n_slices):
        _fit_one_of_many_nb(
            s,
            k,
            w,
            weights,
            offsets,
            rho_max,
            slope_max,
            wings,
            m_margin,
            n_grid,
            n_starts,
            max_iter,
            params,
            objective,
            nev,
            status,
        )
    return params, objective, nev, status


# ------------------------------------------------------------------------------------------------
# Python API
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SVIFit:
    """Result of :func:`fit_svi`.

    Attributes
    ----------
    params : SVIParams or None
        The fitted slice (None when ``status`` is :data:`FIT_TOO_FEW_POINTS` or
        :data:`FIT_INFEASIBLE`).
    objective : float
        Weighted sum of squared total-variance residuals, weights normalised to sum 1
        (years**2 * vol**4).
    n_points : int
        Points with a positive weight.
    n_evaluations : int
        Inner (3-variable QP) solves.
    status : int
        A key of :data:`FIT_STATUS_DESCRIPTIONS`.
    """

    params: SVIParams | None
    objective: float
    n_points: int
    n_evaluations: int
    status: int

    @property
    def ok(self) -> bool:
        """True when a parameter set was found (status ok or iteration limit)."""
        return self.params is not None


def _as_1d(name: str, values: np.ndarray | list[float], n: int | None = None) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} must have {n} values like log_moneyness, got {arr.size}")
    return arr


def _check_fit_inputs(
    k: np.ndarray, w: np.ndarray, weights: np.ndarray, rho_max: float, lee_slope: float
) -> None:
    bad = ~(np.isfinite(k) & np.isfinite(w))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"log_moneyness/total_variance must be finite: point {i} is ({k[i]!r}, {w[i]!r})"
        )
    if (weights < 0).any() or not np.isfinite(weights).all():
        i = int(np.flatnonzero(~(np.isfinite(weights) & (weights >= 0)))[0])
        raise ValueError(f"weights must be finite and >= 0: weight {i} is {weights[i]!r}")
    if (w < 0).any():
        i = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"total_variance must be >= 0: point {i} is {w[i]!r}")
    if not 0.0 < rho_max < 1.0:
        raise ValueError(f"rho_max must be in (0, 1), got {rho_max!r}")
    if not lee_slope > 0.0:
        raise ValueError(f"lee_slope must be > 0, got {lee_slope!r}")


def fit_svi(
    log_moneyness: np.ndarray,
    total_variance: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    k_grid: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    wings: bool = False,
    start: SVIParams | None = None,
    rho_max: float = RHO_MAX,
    lee_slope: float = LEE_SLOPE,
    m_margin: float = 0.5,
    n_grid: int = 9,
    n_starts: int = 2,
    max_iter: int = 400,
) -> SVIFit:
    """Fit a raw SVI slice to total variances by constrained weighted least squares.

    Minimises ``sum_i weights_i (w(k_i) - total_variance_i)**2`` over the raw SVI parameters
    subject to ``b >= 0``, ``|rho| <= rho_max``, ``sigma > 0``, a non-negative minimum total
    variance (in the sufficient linear chord form of the module docstring), Lee's wing bound
    ``b (1 + |rho|) <= lee_slope`` and, optionally, ``lower_j <= w(k_grid_j) <= upper_j`` and
    the wing-intercept constraints (``wings``). Method: the quasi-explicit reduction of Zeliade
    (2009) -- for fixed ``(m, sigma)`` the problem in ``(a, d = rho b sigma, c = b sigma)`` is a
    convex QP, solved exactly -- and a 2-D search over ``(m, log sigma)``: an
    ``n_grid x n_grid`` grid over ``m in [k_min - m_margin span, k_max + m_margin span]`` and
    ``sigma in [1e-4 span, 4 span + 0.05]`` (``span = k_max - k_min`` of the weighted points),
    then Nelder-Mead from the ``n_starts`` best separated grid points (and from ``start``).

    Parameters
    ----------
    log_moneyness : array_like
        ``k = ln(strike / forward)``, shape ``(n,)``.
    total_variance : array_like
        Market ``implied_vol**2 * tte`` (years * decimal vol**2), shape ``(n,)``, ``>= 0``.
    weights : array_like, optional
        Non-negative weights, shape ``(n,)`` (default equal); weight-0 points are ignored.
        For a least-squares fit in implied vol use ``1 / (2 implied_vol tte)**2``
        (``dw = 2 sigma tte d sigma``); divide by the squared bid-ask half-width in vol to
        spread-weight.
    k_grid, lower, upper : array_like, optional
        Bounds on the fitted total variance on a log-moneyness grid, shape ``(g,)`` (NaN
        entries = no bound); ``lower``/``upper`` need ``k_grid``. Used to repair calendar
        arbitrage against a neighbouring expiry.
    wings : bool
        Also require both wing asymptotes to be non-negative at ``k = 0``:
        ``a - b (1 + rho) m >= 0`` and ``a + b (1 - rho) m >= 0`` (linear in ``(a, d, c)``).
        A straight right wing ``w = beta (k - k0)`` with a positive root ``k0`` has
        ``g(2 k0) = -beta / (4 k0) - beta**2 / 16 < 0`` (Gatheral-Jacquier's ``g``), so a
        fitted SVI whose wing extrapolates below zero at the money has butterfly arbitrage
        beyond the data; this is the repair used for such slices.
    start : SVIParams, optional
        A previous fit: Nelder-Mead also starts from its ``(m, sigma)``.
    rho_max : float
        ``|rho| <= rho_max < 1``.
    lee_slope : float
        Wing bound ``b (1 + |rho|) <= lee_slope`` (Lee 2004: 2).
    m_margin : float
        How far ``m`` may go beyond the data, in data spans (``>= 0``).
    n_grid, n_starts, max_iter : int
        Search settings (see above).

    Returns
    -------
    SVIFit
        Parameters, objective (weights normalised to sum 1), counts and a status code.

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite ``log_moneyness``/``total_variance``, negative total
        variance or weights, ``lower``/``upper`` without ``k_grid``, bad ``rho_max``/
        ``lee_slope``/``m_margin``/search settings.

    References
    ----------
    Zeliade Systems (2009), "Quasi-explicit calibration of Gatheral's SVI model", sections 3-4;
    Gatheral (2004); Lee (2004); Gatheral & Jacquier (2014), eq. (2.1).
    """
    k = _as_1d("log_moneyness", log_moneyness)
    w = _as_1d("total_variance", total_variance, k.size)
    om = np.ones(k.size) if weights is None else _as_1d("weights", weights, k.size)
    _check_fit_inputs(k, w, om, rho_max, lee_slope)
    _check_search(n_grid, n_starts, max_iter, m_margin)
    if k_grid is None:
        if lower is not None or upper is not None:
            raise ValueError("lower/upper bounds need k_grid")
        grid = lo_b = up_b = np.empty(0)
    else:
        grid = _as_1d("k_grid", k_grid)
        lo_b = np.full(grid.size, np.nan) if lower is None else _as_1d("lower", lower, grid.size)
        up_b = np.full(grid.size, np.nan) if upper is None else _as_1d("upper", upper, grid.size)
        if not np.isfinite(grid).all():
            raise ValueError("k_grid must be finite")
    x0 = np.full(2, np.nan) if start is None else np.array([start.m, start.sigma])
    params, obj, nev, status = svi_fit_slice_nb(
        k,
        w,
        om,
        grid,
        lo_b,
        up_b,
        rho_max,
        lee_slope,
        wings,
        m_margin,
        n_grid,
        n_starts,
        max_iter,
        x0,
    )
    fitted = None if status in (FIT_TOO_FEW_POINTS, FIT_INFEASIBLE) else _params(params)
    return SVIFit(fitted, float(obj), int((om > 0).sum()), int(nev), int(status))


def _check_search(n_grid: int, n_starts: int, max_iter: int, m_margin: float) -> None:
    if n_grid < 2 or n_starts < 1 or max_iter < 1:
        raise ValueError(
            f"n_grid must be >= 2, n_starts >= 1, max_iter >= 1; got {n_grid}, {n_starts}, "
            f"{max_iter}"
        )
    if not (math.isfinite(m_margin) and m_margin >= 0.0):
        raise ValueError(f"m_margin must be a finite number >= 0, got {m_margin!r}")


def _params(arr: np.ndarray) -> SVIParams:
    a, b, rho, m, sigma = (float(x) for x in arr)
    # the fit's chord constraints imply min w >= 0 up to rounding
    floor = -b * sigma * math.sqrt(max(1.0 - rho * rho, 0.0))
    return SVIParams(max(a, floor), b, rho, m, sigma)


def fit_svi_slices(
    log_moneyness: np.ndarray,
    total_variance: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    *,
    wings: bool | np.ndarray = False,
    rho_max: float = RHO_MAX,
    lee_slope: float | np.ndarray = LEE_SLOPE,
    m_margin: float = 0.5,
    n_grid: int = 9,
    n_starts: int = 2,
    max_iter: int = 400,
    parallel: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit many SVI slices in one compiled call (a whole chain's expiries).

    Slice ``s`` is the points ``offsets[s]:offsets[s + 1]`` of the concatenated arrays; each
    is fitted exactly as :func:`fit_svi` without grid bounds.

    Parameters
    ----------
    log_moneyness, total_variance, weights : array_like
        Concatenated slices, shape ``(n,)`` (see :func:`fit_svi` for units and weights).
    offsets : array_like of int
        Shape ``(n_slices + 1,)``, non-decreasing, ``offsets[0] == 0``, ``offsets[-1] == n``.
    rho_max, m_margin, n_grid, n_starts, max_iter
        As :func:`fit_svi`.
    wings : bool or array_like of bool
        As :func:`fit_svi`, one for all slices or shape ``(n_slices,)``.
    lee_slope : float or array_like
        Wing bound, one for all slices or shape ``(n_slices,)``.
    parallel : bool
        Spread the slices over numba's threads (``prange``; identical results). Off by
        default: on the shared 2-core machine the second thread was busy and the parallel
        batch took 1.7x the serial time (``benchmarks/bench_surface.py`` prints both).

    Returns
    -------
    params : numpy.ndarray
        Shape ``(n_slices, 5)``: ``a, b, rho, m, sigma`` (NaN rows for failed slices).
    objective : numpy.ndarray
        Shape ``(n_slices,)``.
    n_evaluations : numpy.ndarray
        Shape ``(n_slices,)`` int64.
    status : numpy.ndarray
        Shape ``(n_slices,)`` int64, keys of :data:`FIT_STATUS_DESCRIPTIONS`.

    Raises
    ------
    ValueError
        Bad shapes or offsets, or the input errors of :func:`fit_svi`.
    """
    k = _as_1d("log_moneyness", log_moneyness)
    w = _as_1d("total_variance", total_variance, k.size)
    om = _as_1d("weights", weights, k.size)
    _check_fit_inputs(k, w, om, rho_max, float(np.min(lee_slope)))
    _check_search(n_grid, n_starts, max_iter, m_margin)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    if (
        off.ndim != 1
        or off.size < 1
        or off[0] != 0
        or off[-1] != k.size
        or (np.diff(off) < 0).any()
    ):
        raise ValueError(
            f"offsets must be non-decreasing from 0 to {k.size} (the number of points), got "
            f"{off.tolist()[:5]}..."
        )
    slopes = np.broadcast_to(np.asarray(lee_slope, dtype=float), (off.size - 1,)).copy()
    if not (slopes > 0).all():
        raise ValueError(f"lee_slope must be > 0 for every slice, got {slopes.min()!r}")
    flags = np.broadcast_to(np.asarray(wings, dtype=np.bool_), (off.size - 1,)).copy()
    run = _fit_slices_par_nb if parallel else _fit_slices_nb
    return run(k, w, om, off, rho_max, slopes, flags, m_margin, n_grid, n_starts, max_iter)
