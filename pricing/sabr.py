"""SABR (Hagan et al. 2002): lognormal implied-vol expansion and per-expiry calibration.

Model (forward measure of one expiry)::

    dF_t = alpha_t F_t^beta dW_t,    dalpha_t = nu alpha_t dZ_t,    dW dZ = rho dt,
    alpha_0 = alpha

Hagan, Kumar, Lesniewski & Woodward (2002), eq. (2.17a-c), give the Black (lognormal)
implied vol of a European option with strike ``K`` and expiry ``T`` (years, ACT/365)::

    sigma_B(K, F) = alpha / { (F K)^{(1-beta)/2} [1 + (1-beta)^2/24 log^2(F/K)
                                                  + (1-beta)^4/1920 log^4(F/K)] }
                    * z / x(z)
                    * { 1 + [ (1-beta)^2/24 alpha^2/(F K)^{1-beta}
                              + rho beta nu alpha / (4 (F K)^{(1-beta)/2})
                              + (2 - 3 rho^2)/24 nu^2 ] T }
    z = nu/alpha (F K)^{(1-beta)/2} log(F/K)                                   (2.17b)
    x(z) = log{ [sqrt(1 - 2 rho z + z^2) + z - rho] / (1 - rho) }              (2.17c)

and at the money (``K = F``, ``z/x(z) -> 1``, eq. 2.18)::

    sigma_ATM = alpha / F^{1-beta} { 1 + [ (1-beta)^2/24 alpha^2/F^{2-2beta}
                                          + rho beta nu alpha/(4 F^{1-beta})
                                          + (2 - 3 rho^2)/24 nu^2 ] T }.

This is the formula of QuantLib's ``ql.sabrVolatility`` (``unsafeSabrLogNormalVolatility``),
the reference of the tests. Our evaluation of ``x(z)`` avoids the cancellation of the direct
formula near the money (``log1p``) and in the far left wing (rationalised form), so no
series switch is needed except at ``z == 0``.

Calibration (:func:`calibrate_sabr`): ``beta`` fixed by the caller (0.5 by default, the usual
equity-index choice), ``(alpha, rho, nu)`` by bounded least squares on implied vols
(``scipy.optimize.least_squares``, trust-region reflective). Start: for each ``(rho, nu)`` of
a small grid, ``alpha`` solves the ATM cubic (2.18) for the market ATM vol (West 2005); the
best grid point starts the fit.

References
----------
.. [1] P. S. Hagan, D. Kumar, A. S. Lesniewski, D. E. Woodward, "Managing smile risk",
   Wilmott Magazine, September 2002, 84-108, eqs. (2.17a-c), (2.18).
.. [2] G. West, "Calibration of the SABR model in illiquid markets", Applied Mathematical
   Finance 12(4), 2005 (alpha from the ATM vol as the root of a cubic).
.. [3] QuantLib 1.44: ``sabrVolatility``, ``SABRInterpolation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

from pricing.black_scholes import FloatOrArray

__all__ = [
    "SabrFit",
    "calibrate_sabr",
    "sabr_atm_alpha",
    "sabr_implied_vol",
    "sabr_implied_vol_1d_nb",
    "sabr_implied_vol_nb",
]

_RHO_BOUND = 0.9999
_NU_MAX = 10.0
_ALPHA_MIN = 1e-8


@njit(cache=True, error_model="numpy")
def _x_of_z_nb(z: float, rho: float) -> float:
    """``x(z) = log{[sqrt(1 - 2 rho z + z^2) + z - rho]/(1 - rho)}`` (Hagan 2.17c), evaluated
    without cancellation: ``log1p`` of ``[(z^2 - 2 rho z)/(sqrt(B) + 1) + z]/(1 - rho)`` for
    ``z > -0.5``, ``log[(1 + rho)/(sqrt(B) - z + rho)]`` below (same value: multiply by the
    conjugate, ``B - (z - rho)^2 = 1 - rho^2``)."""
    b = 1.0 - 2.0 * rho * z + z * z
    sb = math.sqrt(b)
    if z > -0.5:
        return math.log1p(((z * z - 2.0 * rho * z) / (sb + 1.0) + z) / (1.0 - rho))
    return math.log((1.0 + rho) / (sb - z + rho))


@njit(cache=True, error_model="numpy")
def sabr_implied_vol_nb(
    strike: float, forward: float, tte: float, alpha: float, beta: float, rho: float, nu: float
) -> float:
    """Hagan et al. (2002) lognormal SABR implied vol, eq. (2.17a-c) (nopython scalar kernel).

    Parameters
    ----------
    strike, forward : float
        Strike and forward (> 0, same units).
    tte : float
        Years to expiry, ACT/365 (>= 0).
    alpha : float
        Initial SABR volatility (> 0; units of ``forward^{1-beta}`` per sqrt(year)).
    beta : float
        CEV exponent in ``[0, 1]``.
    rho : float
        Correlation in ``(-1, 1)``.
    nu : float
        Volatility of volatility (>= 0, per sqrt(year)).

    Returns
    -------
    float
        Black implied vol (decimal, annualised); NaN for invalid input.
    """
    if not (
        strike > 0.0
        and forward > 0.0
        and tte >= 0.0
        and alpha > 0.0
        and 0.0 <= beta <= 1.0
        and -1.0 < rho < 1.0
        and nu >= 0.0
        and math.isfinite(strike)
        and math.isfinite(forward)
        and math.isfinite(tte)
        and math.isfinite(alpha)
        and math.isfinite(nu)
    ):
        return np.nan
    omb = 1.0 - beta
    log_m = math.log(forward / strike)
    fk_half = math.exp(0.5 * omb * (math.log(forward) + math.log(strike)))  # (F K)^{(1-b)/2}
    z = nu / alpha * fk_half * log_m
    if z == 0.0:
        z_over_x = 1.0
    else:
        z_over_x = z / _x_of_z_nb(z, rho)
    c = omb * omb * log_m * log_m
    denom = fk_half * (1.0 + c / 24.0 + c * c / 1920.0)
    corr = 1.0 + tte * (
        omb * omb * alpha * alpha / (24.0 * fk_half * fk_half)
        + 0.25 * rho * beta * nu * alpha / fk_half
        + (2.0 - 3.0 * rho * rho) * nu * nu / 24.0
    )
    return alpha / denom * z_over_x * corr


@njit(cache=True, error_model="numpy")
def sabr_implied_vol_1d_nb(
    strike: NDArray[np.float64],
    forward: float,
    tte: float,
    alpha: float,
    beta: float,
    rho: float,
    nu: float,
) -> NDArray[np.float64]:
    """:func:`sabr_implied_vol_nb` over a 1-d array of strikes of one expiry.

    Returns
    -------
    ndarray of float64, shape (n,)
        Black implied vols (decimal); NaN for invalid input.
    """
    out = np.empty(strike.size)
    for i in range(strike.size):
        out[i] = sabr_implied_vol_nb(strike[i], forward, tte, alpha, beta, rho, nu)
    return out


@njit(cache=True, error_model="numpy")
def _sabr_broadcast_nb(
    strike: NDArray[np.float64],
    forward: NDArray[np.float64],
    tte: NDArray[np.float64],
    alpha: NDArray[np.float64],
    beta: NDArray[np.float64],
    rho: NDArray[np.float64],
    nu: NDArray[np.float64],
) -> NDArray[np.float64]:
    out = np.empty(strike.size)
    for i in range(strike.size):
        out[i] = sabr_implied_vol_nb(
            strike[i], forward[i], tte[i], alpha[i], beta[i], rho[i], nu[i]
        )
    return out


def sabr_implied_vol(
    strike: ArrayLike,
    forward: ArrayLike,
    tte: ArrayLike,
    alpha: ArrayLike,
    beta: ArrayLike,
    rho: ArrayLike,
    nu: ArrayLike,
) -> FloatOrArray:
    """Hagan et al. (2002) lognormal SABR implied vols, eq. (2.17a-c) with the ATM limit (2.18).

    Same value as QuantLib's ``ql.sabrVolatility(strike, forward, tte, alpha, beta, nu, rho)``
    (note QuantLib's argument order: ``nu`` before ``rho``).

    Parameters
    ----------
    strike, forward : array_like of float
        Strikes and forwards (> 0, same units: dollars or index points).
    tte : array_like of float
        Years to expiry, ACT/365 (>= 0).
    alpha, beta, rho, nu : array_like of float
        SABR parameters (``alpha > 0``, ``0 <= beta <= 1``, ``-1 < rho < 1``, ``nu >= 0``).

    All arguments broadcast (NumPy rules).

    Returns
    -------
    ndarray of float64 or numpy.float64
        Black implied vols (decimal, annualised) with the broadcast shape; NaN where an input
        is invalid.
    """
    arrays = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (strike, forward, tte, alpha, beta, rho, nu))
    )
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a.reshape(-1)) for a in arrays]
    out = _sabr_broadcast_nb(*flat).reshape(shape)
    return out[()] if out.ndim == 0 else out


def sabr_atm_alpha(
    atm_vol: float, forward: float, tte: float, beta: float, rho: float, nu: float
) -> float:
    """``alpha`` reproducing an at-the-money Black vol: the smallest positive root of the
    cubic form of Hagan et al. (2002) eq. (2.18) (West 2005)::

        (1-beta)^2 T / (24 F^{2-2beta}) a^3 + rho beta nu T / (4 F^{1-beta}) a^2
            + (1 + (2 - 3 rho^2) nu^2 T / 24) a - sigma_ATM F^{1-beta} = 0

    Parameters
    ----------
    atm_vol : float
        At-the-money Black vol (decimal, > 0).
    forward : float
        Forward (> 0).
    tte : float
        Years to expiry (>= 0).
    beta, rho, nu : float
        The other SABR parameters.

    Returns
    -------
    float
        ``alpha > 0``. If the cubic has no positive real root (extreme ``nu``), the
        leading-order value ``sigma_ATM F^{1-beta}`` is returned.

    Raises
    ------
    ValueError
        Non-finite or non-positive ``atm_vol``/``forward``, negative ``tte``.
    """
    if not (math.isfinite(atm_vol) and atm_vol > 0 and math.isfinite(forward) and forward > 0):
        raise ValueError(
            f"sabr_atm_alpha needs atm_vol > 0 and forward > 0, got {atm_vol!r}, {forward!r}"
        )
    if not (math.isfinite(tte) and tte >= 0):
        raise ValueError(f"tte must be >= 0 years, got {tte!r}")
    omb = 1.0 - beta
    f1 = forward**omb
    coeffs = [
        omb * omb * tte / (24.0 * f1 * f1),
        rho * beta * nu * tte / (4.0 * f1),
        1.0 + (2.0 - 3.0 * rho * rho) * nu * nu * tte / 24.0,
        -atm_vol * f1,
    ]
    first = next(i for i, c in enumerate(coeffs) if c != 0.0)
    roots = np.roots(coeffs[first:])
    real = roots[np.abs(roots.imag) <= 1e-10 * np.maximum(1.0, np.abs(roots.real))].real
    pos = real[real > 0]
    if pos.size == 0:
        return atm_vol * f1
    return float(pos.min())


@dataclass(frozen=True)
class SabrFit:
    """Result of :func:`calibrate_sabr` for one expiry.

    Attributes
    ----------
    alpha, beta, rho, nu : float
        SABR parameters (``beta`` as given).
    rmse_vol_points : float
        Root-mean-square implied-vol error, vol points (1 vol point = 0.01), unweighted.
    n : int
        Number of quotes fitted.
    success : bool
        The optimiser converged and every fitted vol is finite.
    message : str
        Optimiser message.
    mae_vol_points : float
        Mean absolute implied-vol error, vol points.
    max_error_vol_points : float
        Largest absolute implied-vol error, vol points.
    forward : float
        Forward used.
    tte : float
        Years to expiry used.
    """

    alpha: float
    beta: float
    rho: float
    nu: float
    rmse_vol_points: float
    n: int
    success: bool
    message: str
    mae_vol_points: float = math.nan
    max_error_vol_points: float = math.nan
    forward: float = math.nan
    tte: float = math.nan

    def implied_vol(self, strike: ArrayLike) -> FloatOrArray:
        """Fitted Black implied vols at ``strike`` (decimal)."""
        return sabr_implied_vol(
            strike, self.forward, self.tte, self.alpha, self.beta, self.rho, self.nu
        )


def _strikes_from(
    values: NDArray[np.float64],
    forward: float,
    x_kind: Literal["auto", "strike", "log_moneyness"],
) -> NDArray[np.float64]:
    if x_kind == "strike":
        return values
    if x_kind == "log_moneyness":
        return forward * np.exp(values)
    if x_kind != "auto":
        raise ValueError(f"x_kind must be 'auto', 'strike' or 'log_moneyness', got {x_kind!r}")
    could_be_strikes = bool(np.all(values > 0)) and (
        abs(math.log(float(np.median(values)) / forward)) < math.log(10.0)
    )
    could_be_k = bool(np.all(np.abs(values) <= 5.0))
    if could_be_strikes and could_be_k:
        raise ValueError(
            "calibrate_sabr: cannot tell whether k_or_strikes holds strikes or log-moneyness "
            f"(forward {forward!r}, values {values.min()!r}..{values.max()!r}); pass "
            "x_kind='strike' or x_kind='log_moneyness'"
        )
    if could_be_strikes:
        return values
    if could_be_k:
        return forward * np.exp(values)
    raise ValueError(
        "calibrate_sabr: k_or_strikes is neither strikes near the forward (all > 0, median "
        f"within a factor 10 of forward {forward!r}) nor log-moneyness (all |k| <= 5); got "
        f"{values.min()!r}..{values.max()!r}"
    )


def calibrate_sabr(
    k_or_strikes: ArrayLike,
    implied_vols: ArrayLike,
    forward: float,
    tte: float,
    beta: float = 0.5,
    weights: ArrayLike | None = None,
    *,
    x_kind: Literal["auto", "strike", "log_moneyness"] = "auto",
) -> SabrFit:
    """Calibrate SABR ``(alpha, rho, nu)`` to one expiry's implied vols, ``beta`` fixed.

    Minimises ``sum_i w_i (sigma_SABR(K_i) - sigma_i)^2`` (:func:`sabr_implied_vol`) with
    ``scipy.optimize.least_squares`` (trust-region reflective, 2-point finite-difference
    Jacobian) inside ``alpha > 1e-8``, ``|rho| < 0.9999``, ``0 <= nu <= 10``. Start: the ATM
    vol ``sigma_ATM`` is the market vol interpolated linearly in log-moneyness at ``k = 0``
    (nearest quote if the forward is outside the quoted range); for each ``(rho, nu)`` in
    ``{-0.75, -0.5, -0.25, 0, 0.25, 0.5} x {0.2, 0.5, 1, 2, 4}`` ``alpha`` solves the ATM cubic
    (:func:`sabr_atm_alpha`); the point with the smallest objective starts the fit.

    Parameters
    ----------
    k_or_strikes : array_like of float, shape (n,)
        Strikes (same units as ``forward``) or log-moneyness ``k = ln(K/F)``; see ``x_kind``.
    implied_vols : array_like of float, shape (n,)
        Market Black implied vols (decimal, annualised ACT/365, > 0).
    forward : float
        Forward of the expiry (> 0), e.g. :meth:`data_feeds.chains.ChainSnapshot.forward`.
    tte : float
        Years to expiry, ACT/365 (> 0).
    beta : float
        CEV exponent in ``[0, 1]`` (0.5 default for equity index).
    weights : array_like of float, shape (n,), optional
        Non-negative residual weights (e.g. vega or inverse bid-ask width); default 1.
    x_kind : {"auto", "strike", "log_moneyness"}
        What ``k_or_strikes`` holds. ``"auto"``: strikes if all are positive with a median
        within a factor 10 of the forward, log-moneyness if all ``|k| <= 5``; if both or
        neither fit, ``ValueError`` asks for an explicit ``x_kind``.

    Returns
    -------
    SabrFit
        ``alpha, beta, rho, nu``, unweighted RMSE / MAE / max error in vol points, ``n``,
        convergence flag and message, and the ``forward``/``tte`` used.

    Raises
    ------
    ValueError
        Fewer than 3 quotes, lengths differ, non-finite or non-positive vols/strikes,
        negative weights (the message gives the count and first index), bad ``forward``,
        ``tte`` or ``beta``, ambiguous ``k_or_strikes``.
    """
    x = np.asarray(k_or_strikes, dtype=np.float64).reshape(-1)
    vols = np.asarray(implied_vols, dtype=np.float64).reshape(-1)
    n = x.size
    if vols.size != n:
        raise ValueError(f"calibrate_sabr: {n} strikes but {vols.size} implied vols")
    if n < 3:
        raise ValueError(f"calibrate_sabr needs at least 3 quotes to fit 3 parameters, got {n}")
    if not (math.isfinite(forward) and forward > 0):
        raise ValueError(f"calibrate_sabr: forward must be finite and > 0, got {forward!r}")
    if not (math.isfinite(tte) and tte > 0):
        raise ValueError(f"calibrate_sabr: tte must be > 0 years, got {tte!r}")
    if not (math.isfinite(beta) and 0.0 <= beta <= 1.0):
        raise ValueError(f"calibrate_sabr: beta must be in [0, 1], got {beta!r}")
    w = (
        np.ones(n)
        if weights is None
        else np.broadcast_to(np.asarray(weights, dtype=np.float64), (n,)).astype(np.float64)
    )
    for name, arr, positive in (
        ("k_or_strikes", x, False),
        ("implied_vols", vols, True),
        ("weights", w, None),
    ):
        if positive is None:
            bad = ~np.isfinite(arr) | (arr < 0)
            want = "finite and >= 0"
        elif positive:
            bad = ~np.isfinite(arr) | (arr <= 0)
            want = "finite and > 0"
        else:
            bad = ~np.isfinite(arr)
            want = "finite"
        if bad.any():
            idx = np.flatnonzero(bad)
            raise ValueError(
                f"calibrate_sabr: {idx.size} value(s) of {name} are not {want} (first at "
                f"index {int(idx[0])}: {arr[idx[0]]!r}); filter them out first"
            )
    if np.count_nonzero(w) < 3:
        raise ValueError(
            f"calibrate_sabr: only {np.count_nonzero(w)} quote(s) have a positive weight; at "
            "least 3 are needed for 3 parameters"
        )
    strikes = np.ascontiguousarray(_strikes_from(x, float(forward), x_kind))
    if np.any(strikes <= 0):
        raise ValueError("calibrate_sabr: strikes must be > 0 (x_kind='strike')")
    sqrt_w = np.sqrt(w)
    k = np.log(strikes / forward)
    order = np.argsort(k)
    atm_vol = float(np.interp(0.0, k[order], vols[order]))

    def residuals(p: NDArray[np.float64]) -> NDArray[np.float64]:
        model = sabr_implied_vol_1d_nb(strikes, float(forward), float(tte), p[0], beta, p[1], p[2])
        return sqrt_w * (model - vols)

    best = None
    for rho0 in (-0.75, -0.5, -0.25, 0.0, 0.25, 0.5):
        for nu0 in (0.2, 0.5, 1.0, 2.0, 4.0):
            a0 = sabr_atm_alpha(atm_vol, float(forward), float(tte), beta, rho0, nu0)
            r = residuals(np.array([a0, rho0, nu0]))
            val = float(r @ r)
            if math.isfinite(val) and (best is None or val < best[0]):
                best = (val, np.array([a0, rho0, nu0]))
    if best is None:
        raise ValueError("calibrate_sabr: no finite starting point (check forward and strikes)")
    lower = np.array([_ALPHA_MIN, -_RHO_BOUND, 0.0])
    upper = np.array([np.inf, _RHO_BOUND, _NU_MAX])
    start = np.clip(best[1], lower + 1e-12, np.where(np.isfinite(upper), upper - 1e-12, np.inf))
    sol = least_squares(
        residuals,
        start,
        bounds=(lower, upper),
        method="trf",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-12,
        max_nfev=2000,
    )
    alpha, rho, nu = (float(v) for v in sol.x)
    err = 100.0 * (
        sabr_implied_vol_1d_nb(strikes, float(forward), float(tte), alpha, beta, rho, nu) - vols
    )
    finite = bool(np.all(np.isfinite(err)))
    return SabrFit(
        alpha=alpha,
        beta=float(beta),
        rho=rho,
        nu=nu,
        rmse_vol_points=float(np.sqrt(np.mean(err**2))) if finite else math.nan,
        n=n,
        success=bool(sol.success) and finite,
        message=str(sol.message) + ("" if finite else "; some fitted vols are not finite"),
        mae_vol_points=float(np.mean(np.abs(err))) if finite else math.nan,
        max_error_vol_points=float(np.max(np.abs(err))) if finite else math.nan,
        forward=float(forward),
        tte=float(tte),
    )
