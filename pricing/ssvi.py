"""Surface SVI (Gatheral & Jacquier 2014): a whole-surface fit that is free of static arbitrage.

SSVI gives the total implied variance of every expiry from its at-the-money total variance
``theta_t = sigma_ATM(t)**2 * t`` and three global parameters (Gatheral & Jacquier 2014,
Definition 4.1)::

    w(k, theta) = theta / 2 * (1 + rho phi(theta) k + sqrt((phi(theta) k + rho)**2 + 1 - rho**2))

with the power-law ``phi`` of their section 4.3 (eq. 4.5)::

    phi(theta) = eta / (theta**gamma * (1 + theta)**(1 - gamma))

No-arbitrage conditions used here (all enforced by :func:`fit_ssvi`):

* ``theta_t`` non-decreasing in ``t`` (Theorem 4.1, first condition; the fit makes the market
  ATM total variances monotone by isotonic regression, pool-adjacent-violators);
* ``|rho| < 1``, ``eta > 0``, ``0 < gamma <= 1/2`` and ``eta (1 + |rho|) <= 2``.

Why these suffice (checked by hand against the paper's theorems): with the power law,
``theta phi(theta) = eta (theta / (1 + theta))**(1 - gamma) < eta``, so
``theta phi (1 + |rho|) < eta (1 + |rho|) <= 2 < 4`` and, for ``gamma <= 1/2``,
``theta phi**2 (1 + |rho|) = eta**2 (1 + |rho|) theta**(1 - 2 gamma) / (1 + theta)**(2 - 2 gamma)
<= eta**2 (1 + |rho|) <= 4 / (1 + |rho|) <= 4`` -- Theorem 4.2's sufficient conditions for no
butterfly arbitrage. ``d(theta phi)/d theta = eta (1 - gamma) theta**(-gamma)
(1 + theta)**(gamma - 2) >= 0`` and ``d(theta phi)/d theta / phi = (1 - gamma) / (1 + theta)
<= 1 <= (1 + sqrt(1 - rho**2)) / rho**2`` -- Theorem 4.1's conditions for no calendar
arbitrage. (The paper states the power-law result as its Remark 4.4 / eq. 4.5 discussion.)

Each SSVI slice is a raw SVI slice (Gatheral & Jacquier 2014, section 3.3 / Lemma 3.2 with the
natural parameterization ``Delta = mu = 0``, ``omega = theta``, ``zeta = phi``)::

    a = theta / 2 (1 - rho**2),  b = theta phi / 2,  rho = rho,  m = -rho / phi,
    sigma = sqrt(1 - rho**2) / phi

so the same dense-grid checks of :mod:`pricing.arbitrage` apply (:func:`ssvi_to_svi`).

Units: ``k = ln(K / F_t)``; ``theta`` and ``w`` in years * (decimal vol)**2.

References
----------
.. [1] Gatheral, J. and Jacquier, A. (2014). "Arbitrage-free SVI volatility surfaces".
   Quantitative Finance 14(1), 59-71. Definition 4.1, Theorems 4.1-4.2, section 4.3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from pricing.svi import SVIParams

__all__ = [
    "SSVIFit",
    "SSVIParams",
    "atm_total_variance",
    "fit_ssvi",
    "isotonic_increasing",
    "ssvi_phi",
    "ssvi_to_svi",
    "ssvi_total_variance",
]

_RHO_MAX = 0.999
_GAMMA_MAX = 0.5


@dataclass(frozen=True)
class SSVIParams:
    """Global SSVI parameters with the power-law ``phi`` (Gatheral & Jacquier 2014, eq. 4.5).

    Parameters
    ----------
    rho : float
        Correlation-like skew, ``|rho| < 1``.
    eta : float
        Level of ``phi``, ``> 0``.
    gamma : float
        Power of ``phi``, ``0 < gamma <= 1/2``.

    Raises
    ------
    ValueError
        A parameter outside the no-arbitrage set: non-finite, ``|rho| >= 1``, ``eta <= 0``,
        ``gamma`` not in ``(0, 1/2]`` or ``eta (1 + |rho|) > 2``.
    """

    rho: float
    eta: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("rho", "eta", "gamma"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"SSVI {name} must be finite, got {value!r}")
        if not abs(self.rho) < 1.0:
            raise ValueError(f"SSVI rho must satisfy |rho| < 1, got {self.rho!r}")
        if not self.eta > 0.0:
            raise ValueError(f"SSVI eta must be > 0, got {self.eta!r}")
        if not 0.0 < self.gamma <= _GAMMA_MAX:
            raise ValueError(f"SSVI gamma must be in (0, 1/2], got {self.gamma!r}")
        if self.eta * (1.0 + abs(self.rho)) > 2.0 + 1e-12:
            raise ValueError(
                "SSVI eta (1 + |rho|) must be <= 2 (no butterfly arbitrage, Gatheral & "
                f"Jacquier 2014 Theorem 4.2), got {self.eta * (1.0 + abs(self.rho))!r}"
            )

    def to_dict(self) -> dict[str, float]:
        """``{"rho": ..., "eta": ..., "gamma": ...}``."""
        return {"rho": self.rho, "eta": self.eta, "gamma": self.gamma}


def ssvi_phi(theta: np.ndarray | float, eta: float, gamma: float) -> np.ndarray:
    """Power-law ``phi(theta) = eta / (theta**gamma (1 + theta)**(1 - gamma))``.

    Parameters
    ----------
    theta : array_like
        ATM total variance (years * decimal vol**2), ``> 0``.
    eta, gamma : float

    Returns
    -------
    numpy.ndarray
        ``phi`` (1 / total-variance units), the shape of ``theta``.
    """
    th = np.asarray(theta, dtype=float)
    return eta / (th**gamma * (1.0 + th) ** (1.0 - gamma))


def ssvi_total_variance(
    log_moneyness: np.ndarray | float, theta: np.ndarray | float, params: SSVIParams
) -> np.ndarray:
    """SSVI total variance ``w(k, theta)`` (Gatheral & Jacquier 2014, Definition 4.1).

    Parameters
    ----------
    log_moneyness : array_like
        ``k = ln(K / F)``.
    theta : array_like
        ATM total variance of the expiry, broadcast with ``log_moneyness``.
    params : SSVIParams

    Returns
    -------
    numpy.ndarray
        Total variance, the broadcast shape.
    """
    k = np.asarray(log_moneyness, dtype=float)
    th = np.asarray(theta, dtype=float)
    phi = ssvi_phi(th, params.eta, params.gamma)
    rho = params.rho
    pk = phi * k
    return 0.5 * th * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))


def ssvi_to_svi(theta: float, params: SSVIParams) -> SVIParams:
    """The raw SVI parameters of the SSVI slice at ``theta`` (Gatheral & Jacquier 2014,
    section 3.3, natural-to-raw map with ``Delta = mu = 0``).

    ``a = theta (1 - rho**2) / 2``, ``b = theta phi / 2``, ``m = -rho / phi``,
    ``sigma = sqrt(1 - rho**2) / phi``.

    Raises
    ------
    ValueError
        ``theta <= 0``.
    """
    if not theta > 0.0:
        raise ValueError(f"theta must be > 0, got {theta!r}")
    phi = float(ssvi_phi(theta, params.eta, params.gamma))
    rho = params.rho
    return SVIParams(
        a=0.5 * theta * (1.0 - rho * rho),
        b=0.5 * theta * phi,
        rho=rho,
        m=-rho / phi,
        sigma=math.sqrt(1.0 - rho * rho) / phi,
    )


def isotonic_increasing(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares non-decreasing fit to ``values`` (pool-adjacent-violators).

    Parameters
    ----------
    values : array_like
        Shape ``(n,)``, in the order that must become non-decreasing.
    weights : array_like, optional
        Positive weights, shape ``(n,)``.

    Returns
    -------
    numpy.ndarray
        The weighted isotonic regression, shape ``(n,)``.

    Raises
    ------
    ValueError
        Non-finite values or non-positive weights.

    References
    ----------
    Barlow, Bartholomew, Bremner & Brunk (1972), *Statistical Inference under Order
    Restrictions*, the pool-adjacent-violators algorithm.
    """
    y = np.asarray(values, dtype=float)
    wt = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if not np.isfinite(y).all():
        raise ValueError("isotonic_increasing: values must be finite")
    if wt.shape != y.shape or not (wt > 0).all():
        raise ValueError("isotonic_increasing: weights must be positive, one per value")
    means: list[float] = []
    wsum: list[float] = []
    sizes: list[int] = []
    for v, ww in zip(y, wt, strict=True):
        means.append(float(v))
        wsum.append(float(ww))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, s2 = means.pop(), wsum.pop(), sizes.pop()
            m1, w1, s1 = means.pop(), wsum.pop(), sizes.pop()
            means.append((m1 * w1 + m2 * w2) / (w1 + w2))
            wsum.append(w1 + w2)
            sizes.append(s1 + s2)
    return np.repeat(np.array(means), sizes)


def atm_total_variance(log_moneyness: np.ndarray, total_variance: np.ndarray) -> float:
    """Market ATM total variance of one slice: ``w`` at ``k = 0`` by local interpolation.

    The parabola through the three quotes nearest ``k = 0`` (in ``|k|``) is evaluated at 0
    (third-order accurate for a smooth smile; linear interpolation overstates a convex
    ``w``); with two quotes, the straight line.

    Parameters
    ----------
    log_moneyness, total_variance : array_like
        The slice's quotes, shape ``(n,)`` (any order).

    Returns
    -------
    float
        ``w(0)``; NaN when the quotes do not bracket ``k = 0`` (no extrapolation) or the
        interpolated value is not positive.
    """
    k = np.asarray(log_moneyness, dtype=float)
    w = np.asarray(total_variance, dtype=float)
    if k.size < 2 or not (k.min() <= 0.0 <= k.max()):
        return float("nan")
    near = np.argsort(np.abs(k), kind="stable")[: min(3, k.size)]
    kk, ww = k[near], w[near]
    if np.unique(kk).size < kk.size:
        return float(np.mean(ww[kk == kk[0]])) if kk[0] == 0.0 else float("nan")
    if kk.size == 3 and kk.min() <= 0.0 <= kk.max():
        # Lagrange form of the parabola through the three points, at k = 0
        k0, k1, k2 = kk
        val = (
            ww[0] * (k1 * k2) / ((k0 - k1) * (k0 - k2))
            + ww[1] * (k0 * k2) / ((k1 - k0) * (k1 - k2))
            + ww[2] * (k0 * k1) / ((k2 - k0) * (k2 - k1))
        )
    else:
        order = np.argsort(k, kind="stable")
        val = float(np.interp(0.0, k[order], w[order]))
    return float(val) if val > 0.0 else float("nan")


# ------------------------------------------------------------------------------------------------
# Fit: (rho, eta, gamma) by Nelder-Mead on an unconstrained reparameterization
# ------------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _decode_nb(u: np.ndarray) -> tuple[float, float, float]:
    """Unconstrained ``u`` -> ``(rho, eta, gamma)`` inside the no-arbitrage set:
    ``rho = 0.999 tanh(u0)``, ``gamma = 0.5 / (1 + e^{-u1})``,
    ``eta = 2 / (1 + |rho|) / (1 + e^{-u2})``."""
    rho = _RHO_MAX * math.tanh(u[0])
    gamma = _GAMMA_MAX / (1.0 + math.exp(-u[1]))
    eta = 2.0 / (1.0 + abs(rho)) / (1.0 + math.exp(-u[2]))
    return rho, max(eta, 1e-300), max(gamma, 1e-300)


@njit(cache=True, error_model="numpy")
def _ssvi_obj_nb(
    u: np.ndarray, k: np.ndarray, w: np.ndarray, om: np.ndarray, theta: np.ndarray
) -> float:
    rho, eta, gamma = _decode_nb(u)
    s = 0.0
    for i in range(k.size):
        th = theta[i]
        phi = eta / (th**gamma * (1.0 + th) ** (1.0 - gamma))
        pk = phi * k[i]
        wm = 0.5 * th * (1.0 + rho * pk + math.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))
        r = wm - w[i]
        s += om[i] * r * r
    return s


@njit(cache=True, error_model="numpy")
def _nelder_mead_ssvi_nb(
    x0: np.ndarray,
    step: float,
    k: np.ndarray,
    w: np.ndarray,
    om: np.ndarray,
    theta: np.ndarray,
    max_iter: int,
    xtol: float,
    ftol: float,
) -> tuple[np.ndarray, float, int, bool]:
    """Nelder-Mead (coefficients 1, 2, 1/2, 1/2) on the SSVI objective in 3 dimensions."""
    nd = 3
    pts = np.empty((nd + 1, nd))
    f = np.empty(nd + 1)
    for i in range(nd + 1):
        pts[i] = x0
        if i > 0:
            pts[i, i - 1] += step
        f[i] = _ssvi_obj_nb(pts[i], k, w, om, theta)
    nev = nd + 1
    conv = False
    cen = np.empty(nd)
    trial = np.empty(nd)
    trial2 = np.empty(nd)
    for _ in range(max_iter):
        order = np.argsort(f)
        pts = pts[order].copy()
        f = f[order].copy()
        size = 0.0
        for i in range(1, nd + 1):
            for j in range(nd):
                size = max(size, abs(pts[i, j] - pts[0, j]))
        if size < xtol and f[nd] - f[0] <= ftol * (abs(f[0]) + 1e-300):
            conv = True
            break
        for j in range(nd):
            cen[j] = 0.0
            for i in range(nd):
                cen[j] += pts[i, j]
            cen[j] /= nd
        for j in range(nd):
            trial[j] = 2.0 * cen[j] - pts[nd, j]
        fr = _ssvi_obj_nb(trial, k, w, om, theta)
        nev += 1
        if fr < f[0]:
            for j in range(nd):
                trial2[j] = 3.0 * cen[j] - 2.0 * pts[nd, j]
            fe = _ssvi_obj_nb(trial2, k, w, om, theta)
            nev += 1
            if fe < fr:
                pts[nd] = trial2
                f[nd] = fe
            else:
                pts[nd] = trial
                f[nd] = fr
            continue
        if fr < f[nd - 1]:
            pts[nd] = trial
            f[nd] = fr
            continue
        for j in range(nd):
            if fr < f[nd]:
                trial2[j] = cen[j] + 0.5 * (trial[j] - cen[j])
            else:
                trial2[j] = cen[j] + 0.5 * (pts[nd, j] - cen[j])
        fc = _ssvi_obj_nb(trial2, k, w, om, theta)
        nev += 1
        if fc < min(fr, f[nd]):
            pts[nd] = trial2
            f[nd] = fc
            continue
        for i in range(1, nd + 1):
            for j in range(nd):
                pts[i, j] = pts[0, j] + 0.5 * (pts[i, j] - pts[0, j])
            f[i] = _ssvi_obj_nb(pts[i], k, w, om, theta)
            nev += 1
    best = int(np.argmin(f))
    return pts[best].copy(), f[best], nev, conv


@njit(cache=True, error_model="numpy")
def _fit_ssvi_nb(
    k: np.ndarray, w: np.ndarray, om: np.ndarray, theta: np.ndarray, max_iter: int
) -> tuple[np.ndarray, float, int, bool]:
    """Best of a coarse start grid, then Nelder-Mead twice (a restart from the first optimum)."""
    best_u = np.zeros(3)
    best_f = np.inf
    u = np.empty(3)
    nev = 0
    for r in (-2.0, -1.0, -0.4, 0.0, 0.4):
        for g in (-2.0, 0.0, 2.0):
            for e in (-2.0, 0.0, 2.0):
                u[0], u[1], u[2] = r, g, e
                fu = _ssvi_obj_nb(u, k, w, om, theta)
                nev += 1
                if fu < best_f:
                    best_f = fu
                    best_u[:] = u
    conv = False
    for step in (0.5, 0.1):
        x, fx, ne, conv = _nelder_mead_ssvi_nb(best_u, step, k, w, om, theta, max_iter, 1e-8, 1e-12)
        nev += ne
        if fx <= best_f:
            best_f = fx
            best_u[:] = x
    return best_u, best_f, nev, conv


@dataclass(frozen=True)
class SSVIFit:
    """Result of :func:`fit_ssvi`.

    Attributes
    ----------
    params : SSVIParams
        The global ``(rho, eta, gamma)``.
    theta : numpy.ndarray
        Shape ``(n_slices,)``: ATM total variance used per slice (market, made non-decreasing
        in ``tte``); NaN for a slice whose quotes do not bracket ``k = 0``.
    theta_market : numpy.ndarray
        Shape ``(n_slices,)``: the market ATM total variance before the isotonic step.
    objective : float
        Weighted total-variance SSE (weights normalised to sum 1 over the used points).
    n_points : int
        Points used (slices with a ``theta``).
    n_evaluations : int
    converged : bool
    """

    params: SSVIParams
    theta: np.ndarray
    theta_market: np.ndarray
    objective: float
    n_points: int
    n_evaluations: int
    converged: bool

    def slice_params(self, i: int) -> SVIParams | None:
        """The raw SVI parameters of slice ``i`` (None when it has no ``theta``)."""
        th = float(self.theta[i])
        return ssvi_to_svi(th, self.params) if th > 0.0 and math.isfinite(th) else None


def fit_ssvi(
    log_moneyness: np.ndarray,
    total_variance: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    tte: np.ndarray,
    *,
    max_iter: int = 2000,
) -> SSVIFit:
    """Fit an SSVI surface (power-law ``phi``) to the quotes of several expiries.

    ``theta_t`` is each slice's market ATM total variance (:func:`atm_total_variance`), made
    non-decreasing in ``tte`` by weighted isotonic regression (weights: the slices' point
    counts); ``(rho, eta, gamma)`` minimise ``sum_i weights_i (w_SSVI(k_i, theta_{t(i)}) -
    total_variance_i)**2`` over the no-arbitrage set of :class:`SSVIParams` (an unconstrained
    reparameterization, a coarse start grid and Nelder-Mead).

    Parameters
    ----------
    log_moneyness, total_variance, weights : array_like
        Concatenated slices, shape ``(n,)`` (``k``; ``w`` in years * decimal vol**2; weights
        ``>= 0``).
    offsets : array_like of int
        Shape ``(n_slices + 1,)``: slice ``s`` is ``offsets[s]:offsets[s + 1]``.
    tte : array_like
        Shape ``(n_slices,)`` years (ACT/365), ``> 0``.
    max_iter : int
        Nelder-Mead iterations per run.

    Returns
    -------
    SSVIFit

    Raises
    ------
    ValueError
        Bad shapes, non-finite inputs, ``tte <= 0``, or fewer than 2 slices whose quotes
        bracket the money (no surface to fit).
    """
    k = np.ascontiguousarray(log_moneyness, dtype=float)
    w = np.ascontiguousarray(total_variance, dtype=float)
    om = np.ascontiguousarray(weights, dtype=float)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    t = np.asarray(tte, dtype=float)
    n = off.size - 1
    if w.shape != k.shape or om.shape != k.shape:
        raise ValueError(
            f"log_moneyness, total_variance and weights must have one shape, got {k.shape}, "
            f"{w.shape}, {om.shape}"
        )
    if off.ndim != 1 or n < 1 or off[0] != 0 or off[-1] != k.size or (np.diff(off) < 0).any():
        raise ValueError(f"offsets must be non-decreasing from 0 to {k.size}")
    if t.shape != (n,) or not (np.isfinite(t) & (t > 0)).all():
        raise ValueError(f"tte must be > 0 years, one per slice ({n}), got {t.tolist()}")
    if not (np.isfinite(k).all() and np.isfinite(w).all() and np.isfinite(om).all()):
        raise ValueError("log_moneyness, total_variance and weights must be finite")
    theta_mkt = np.full(n, np.nan)
    for i in range(n):
        sel = om[off[i] : off[i + 1]] > 0
        theta_mkt[i] = atm_total_variance(k[off[i] : off[i + 1]][sel], w[off[i] : off[i + 1]][sel])
    has = np.isfinite(theta_mkt) & (theta_mkt > 0)
    if has.sum() < 2:
        raise ValueError(
            f"SSVI needs at least 2 expiries whose quotes bracket the money, got {int(has.sum())}"
        )
    theta = np.full(n, np.nan)
    idx = np.flatnonzero(has)
    idx = idx[np.argsort(t[idx], kind="stable")]
    counts = np.diff(off)[idx].astype(float)
    theta[idx] = isotonic_increasing(theta_mkt[idx], np.maximum(counts, 1.0))
    theta_pt = np.repeat(theta, np.diff(off))
    use = np.isfinite(theta_pt) & (om > 0)
    omu = om[use] / om[use].sum()
    u, obj, nev, conv = _fit_ssvi_nb(k[use], w[use], omu, theta_pt[use], max_iter)
    rho, eta, gamma = _decode_nb(u)
    eta = min(eta, 2.0 / (1.0 + abs(rho)))
    return SSVIFit(
        params=SSVIParams(float(rho), float(eta), float(min(gamma, _GAMMA_MAX))),
        theta=theta,
        theta_market=theta_mkt,
        objective=float(obj),
        n_points=int(use.sum()),
        n_evaluations=int(nev),
        converged=bool(conv),
    )
