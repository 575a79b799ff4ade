"""Black-Scholes-Merton prices, Greeks and implied volatility as numba kernels.

Conventions (see ``docs/pricing.md``):

* ``spot`` and ``strike`` in dollars or index points, both ``> 0``.
* ``tte`` time to expiry in years, ACT/365 (one minute is ``1 / 525600``; 0DTE options are
  priced to the minute).
* ``rate`` continuously compounded risk-free rate and ``div_yield`` continuous dividend
  yield, as decimals (``0.05`` is 5 %).
* ``vol`` annualised Black-Scholes volatility as a decimal (``0.20`` is 20 %).
* ``right`` is ``'C'``/``'P'`` (any case, or ``'call'``/``'put'``), a string or an array of
  them. Inside nopython code the right is an integer flag, :data:`CALL` (``+1``) or
  :data:`PUT` (``-1``).

Everything is evaluated in the normalised Black form: forward ``F = S e^{(r-q)T}``,
discount ``DF = e^{-rT}``, log-moneyness ``x = ln(F/K)`` and total standard deviation
``s = vol sqrt(T)``. A price is its discounted intrinsic value ``DF max(θ(F-K), 0)`` plus the
time value ``DF sqrt(F K) b(-|x|, s)`` of the out-of-the-money option, where
``b(x, s) = e^{x/2} Φ(x/s + s/2) - e^{-x/2} Φ(x/s - s/2)`` (``x <= 0``) is the normalised
out-of-the-money call. Small ``s`` (0DTE) uses a Taylor expansion of ``b`` in ``s`` so
that the time value keeps full relative accuracy down to one-minute expiries.

Implied volatility: :func:`implied_vol` / :func:`implied_vol_status` are the production path,
the chain kernel of :mod:`pricing.iv_chain` on the spot. The kernels of this module
(``normalised_implied_vol_otm_nb``, ``implied_vol_status_nb``, ``implied_vol_nb``,
``implied_vol_1d_nb``, ``implied_vol_1d_parallel_nb``) are the **reference** solver the tests
check it against, the full Jäckel (2015), "Let's be rational": the price is reduced to the
normalised out-of-the-money time value, a rational-cubic initial guess is built on four
branches, and Householder(3) steps on branch-specific objective functions (``1/ln b`` in
the lower branch, ``b`` in the middle, ``ln(b_max - b)`` in the upper one) are kept inside a
maintained bracket with a bisection fallback.

Public kernels are ``@njit(cache=True)`` and suffixed ``_nb`` so that other numba code
(vectorbt indicators, strategies) can call them in nopython mode.

References
----------
.. [1] F. Black and M. Scholes, "The Pricing of Options and Corporate Liabilities",
   Journal of Political Economy 81(3), 637-654, 1973.
.. [2] R. C. Merton, "Theory of Rational Option Pricing", Bell Journal of Economics and
   Management Science 4(1), 141-183, 1973.
.. [3] E. G. Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed., McGraw-Hill,
   2007, chapter 1 (generalised Black-Scholes-Merton and its Greeks).
.. [4] J. C. Hull, "Options, Futures, and Other Derivatives", chapters on the
   Black-Scholes-Merton model and the Greek letters.
.. [5] P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015, 40-53.
.. [6] R. Delbourgo and J. A. Gregory, "Shape preserving piecewise rational interpolation",
   SIAM J. Sci. Stat. Comput. 6(4), 967-976, 1985.
.. [7] P. J. Acklam, "An algorithm for computing the inverse normal cumulative distribution
   function", 2003 (initial approximation refined by one Halley step).
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import NamedTuple, TypeAlias

import numpy as np
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CALL",
    "IV_ABOVE_UPPER_BOUND",
    "IV_BAD_INPUT",
    "IV_BELOW_INTRINSIC",
    "IV_NO_CONVERGENCE",
    "IV_OK",
    "IV_STATUS_DESCRIPTIONS",
    "PARALLEL_MIN_SIZE",
    "PUT",
    "Greeks",
    "IVResult",
    "IVStatus",
    "bs_greeks",
    "bs_greeks_1d_nb",
    "bs_greeks_nb",
    "bs_price",
    "bs_price_1d_nb",
    "bs_price_nb",
    "bs_vega_nb",
    "implied_vol",
    "implied_vol_1d_nb",
    "implied_vol_1d_parallel_nb",
    "implied_vol_nb",
    "implied_vol_status",
    "implied_vol_status_nb",
    "norm_cdf_nb",
    "norm_pdf_nb",
    "norm_ppf_nb",
    "normalised_black_otm_nb",
    "normalised_implied_vol_otm_nb",
    "normalised_vega_nb",
    "parse_right",
    "straddle_price",
    "straddle_price_1d_nb",
    "straddle_price_nb",
]

FloatOrArray: TypeAlias = float | np.float64 | NDArray[np.float64]

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

CALL: int = 1
"""Integer flag of a call inside nopython kernels (``θ = +1``)."""
PUT: int = -1
"""Integer flag of a put inside nopython kernels (``θ = -1``)."""

IV_OK: int = 0
"""Implied-vol status: converged; the returned vol is valid."""
IV_BELOW_INTRINSIC: int = 1
"""Implied-vol status: price at or below the discounted intrinsic ``DF max(0, θ(F-K))``
(no positive volatility reproduces it); vol is NaN."""
IV_ABOVE_UPPER_BOUND: int = 2
"""Implied-vol status: price at or above the upper bound ``S e^{-qT}`` (call) or
``K e^{-rT}`` (put); vol is NaN."""
IV_BAD_INPUT: int = 3
"""Implied-vol status: non-finite input, non-positive price/spot/strike, ``tte <= 0`` or an
invalid right flag; vol is NaN."""
IV_NO_CONVERGENCE: int = 4
"""Implied-vol status: the safeguarded iteration did not converge; vol is NaN."""


class IVStatus(IntEnum):
    """Reason codes of :func:`implied_vol_status` (same values as the ``IV_*`` constants)."""

    OK = IV_OK
    BELOW_INTRINSIC = IV_BELOW_INTRINSIC
    ABOVE_UPPER_BOUND = IV_ABOVE_UPPER_BOUND
    BAD_INPUT = IV_BAD_INPUT
    NO_CONVERGENCE = IV_NO_CONVERGENCE


IV_STATUS_DESCRIPTIONS: dict[int, str] = {
    IV_OK: "ok",
    IV_BELOW_INTRINSIC: "price at or below the discounted intrinsic value",
    IV_ABOVE_UPPER_BOUND: "price at or above the upper bound (S e^-qT call, K e^-rT put)",
    IV_BAD_INPUT: "bad input (non-finite, non-positive price/spot/strike, tte <= 0, bad right)",
    IV_NO_CONVERGENCE: "no convergence",
}
"""Human-readable description of each implied-vol status code."""

PARALLEL_MIN_SIZE: int = 20_000
"""Array size from which :func:`implied_vol` uses the multi-threaded kernel by default."""

_EPS = 2.220446049250313e-16  # DBL_EPSILON
_TINY = 2.2250738585072014e-308  # DBL_MIN
_HUGE = 1.7976931348623157e308  # DBL_MAX
_SQRT_HUGE = 1.3407807929942596e154
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_PI_OVER_2 = math.sqrt(0.5 * math.pi)
_SQRT3 = math.sqrt(3.0)
_TWO_PI = 2.0 * math.pi
_TWO_PI_OVER_SQRT27 = 2.0 * math.pi / math.sqrt(27.0)
_PI_OVER_6 = math.pi / 6.0
_VELTKAMP = 134217729.0  # 2**27 + 1, splits a double into two 26-bit halves

# Taylor expansion of b in t = s/2 is used for t < _SMALL_T (7 terms, truncation < 1e-16
# relative) and h = x/s > _SMALL_T_MIN_H (beyond that b underflows anyway).
_SMALL_T = 0.21
_SMALL_T_MIN_H = -37.5

# Rational cubic control parameter limits (Delbourgo & Gregory 1985 / Jäckel 2015).
_RC_MIN = -(1.0 - math.sqrt(_EPS))
_RC_MAX = 2.0 / (_EPS * _EPS)

_IV_MAX_ITER = 100
_IV_TOL = 1.0e-6  # a Householder(3) step below this (relative to s) is the last one

# Acklam's rational approximation of the inverse normal CDF.
_ACK_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_ACK_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_ACK_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_ACK_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_ACK_P_LOW = 0.02425


# --------------------------------------------------------------------------------------
# Normal distribution
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def norm_cdf_nb(z: float) -> float:
    """Standard normal CDF ``Φ(z) = erfc(-z/√2)/2``, accurate in relative terms in the left tail.

    Parameters
    ----------
    z : float
        Argument.

    Returns
    -------
    float
        ``Φ(z)``.
    """
    return 0.5 * math.erfc(-z * _INV_SQRT2)


@njit(cache=True, error_model="numpy")
def norm_pdf_nb(z: float) -> float:
    """Standard normal density ``φ(z) = exp(-z²/2)/√(2π)``.

    Parameters
    ----------
    z : float
        Argument.

    Returns
    -------
    float
        ``φ(z)``.
    """
    return _INV_SQRT_2PI * math.exp(-0.5 * z * z)


@njit(cache=True, error_model="numpy")
def norm_ppf_nb(p: float) -> float:
    """Inverse standard normal CDF ``Φ⁻¹(p)``.

    Acklam's rational approximation (relative error 1.2e-9) refined by one Halley step on
    ``Φ(z) - p``, which brings it to about machine precision for ``p <= 0.5`` (the only
    range used by the implied-vol guess; the upper half is accurate to ~1e-15 absolute).

    Parameters
    ----------
    p : float
        Probability in ``[0, 1]``.

    Returns
    -------
    float
        ``z`` with ``Φ(z) = p``; ``-inf``/``+inf`` at 0/1, NaN outside ``[0, 1]``.

    References
    ----------
    P. J. Acklam, "An algorithm for computing the inverse normal cumulative distribution
    function", 2003.
    """
    if not (p >= 0.0 and p <= 1.0):
        return np.nan
    if p == 0.0:
        return -np.inf
    if p == 1.0:
        return np.inf
    a = _ACK_A
    b = _ACK_B
    c = _ACK_C
    d = _ACK_D
    if p < _ACK_P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        z = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    elif p <= 1.0 - _ACK_P_LOW:
        q = p - 0.5
        r = q * q
        z = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
        )
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        z = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    # One Halley step: e = Φ(z) - p, u = e/φ(z).
    if p <= 0.5:
        e = norm_cdf_nb(z) - p
    else:
        e = (1.0 - p) - norm_cdf_nb(-z)
    u = e * _SQRT_2PI * math.exp(0.5 * z * z)
    return z - u / (1.0 + 0.5 * z * u)


@njit(cache=True, error_model="numpy")
def _erfcx_nb(u: float) -> float:
    """Scaled complementary error function ``exp(u²) erfc(u)`` for ``0 <= u <= 26.5``.

    ``u²`` is split exactly (Veltkamp/Dekker) so that the exponential does not inherit the
    ``2u²·eps`` relative error of a rounded square.
    """
    c = _VELTKAMP * u
    hi = c - (c - u)
    lo = u - hi
    u2 = u * u
    err = ((hi * hi - u2) + 2.0 * hi * lo) + lo * lo
    return math.erfc(u) * math.exp(u2) * (1.0 + err)


# --------------------------------------------------------------------------------------
# Normalised Black function
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _black_small_t_nb(h: float, t: float) -> tuple[float, float]:
    """Normalised out-of-the-money call and vega for ``t = s/2 < 0.21``, ``-37.5 < h <= 0``.

    ``b = e^{-(h²+t²)/2}/√(2π) · [Y(h+t) - Y(h-t)]`` with the Mills-type ratio
    ``Y = Φ/φ``. The bracket is expanded in odd powers of ``t``:
    ``2 Σ_k Y^{(2k+1)}(h) t^{2k+1}/(2k+1)!``, with the derivatives from the exact
    recurrence ``Y^{(n+1)} = h Y^{(n)} + n Y^{(n-1)}``, ``Y' = 1 + h Y``. Seven terms give
    double precision for ``t < 0.21``. This avoids the catastrophic cancellation of the
    two-term formula for one-minute expiries. The prefactor is the normalised vega
    ``∂b/∂s``, returned as the second value.
    """
    w = t * t
    y0 = _SQRT_PI_OVER_2 * _erfcx_nb(-h * _INV_SQRT2)  # Y(h)
    y1 = 1.0 + h * y0  # Y'(h)
    y2 = h * y1 + y0
    y3 = h * y2 + 2.0 * y1
    y4 = h * y3 + 3.0 * y2
    y5 = h * y4 + 4.0 * y3
    y6 = h * y5 + 5.0 * y4
    y7 = h * y6 + 6.0 * y5
    y8 = h * y7 + 7.0 * y6
    y9 = h * y8 + 8.0 * y7
    y10 = h * y9 + 9.0 * y8
    y11 = h * y10 + 10.0 * y9
    y12 = h * y11 + 11.0 * y10
    y13 = h * y12 + 12.0 * y11
    # Σ_k Y^{(2k+1)} w^k / (2k+1)!, k = 0..6, in Horner form.
    total = y1 + w * (
        y3 * (1.0 / 6.0)
        + w
        * (
            y5 * (1.0 / 120.0)
            + w
            * (
                y7 * (1.0 / 5040.0)
                + w
                * (
                    y9 * (1.0 / 362880.0)
                    + w * (y11 * (1.0 / 39916800.0) + w * (y13 * (1.0 / 6227020800.0)))
                )
            )
        )
    )
    vega = _INV_SQRT_2PI * math.exp(-0.5 * (h * h + w))
    b = vega * (2.0 * t) * total
    return (b if b > 0.0 else 0.0), vega


@njit(cache=True, error_model="numpy")
def _b_and_vega_otm_nb(x: float, s: float, ex2: float, iex2: float) -> tuple[float, float]:
    """``(b(x, s), ∂b/∂s)`` for ``x <= 0`` given ``ex2 = e^{x/2}``, ``iex2 = e^{-x/2}``."""
    if not s > 0.0:
        return 0.0, (_INV_SQRT_2PI if x == 0.0 else 0.0)
    h = x / s
    t = 0.5 * s
    if t < _SMALL_T and h > _SMALL_T_MIN_H:
        return _black_small_t_nb(h, t)
    b = ex2 * norm_cdf_nb(h + t) - iex2 * norm_cdf_nb(h - t)
    vega = _INV_SQRT_2PI * math.exp(-0.5 * (h * h + t * t))
    return (b if b > 0.0 else 0.0), vega


@njit(cache=True, error_model="numpy")
def _b_otm_nb(x: float, s: float, ex2: float, iex2: float) -> float:
    """``b(x, s)`` for ``x <= 0`` given ``ex2 = e^{x/2}``, ``iex2 = e^{-x/2}``."""
    if not s > 0.0:
        return 0.0
    h = x / s
    t = 0.5 * s
    if t < _SMALL_T and h > _SMALL_T_MIN_H:
        return _black_small_t_nb(h, t)[0]
    b = ex2 * norm_cdf_nb(h + t) - iex2 * norm_cdf_nb(h - t)
    return b if b > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _b_otm_complement_nb(x: float, s: float, ex2: float, iex2: float) -> float:
    """``b_max - b(x, s) = e^{x/2} Φ(-h-t) + e^{-x/2} Φ(h-t)`` without cancellation."""
    if not s > 0.0:
        return ex2
    h = x / s
    t = 0.5 * s
    return ex2 * norm_cdf_nb(-(h + t)) + iex2 * norm_cdf_nb(h - t)


@njit(cache=True, error_model="numpy")
def normalised_black_otm_nb(x: float, s: float) -> float:
    """Normalised out-of-the-money Black call ``b(x, s)`` for ``x = ln(F/K) <= 0``.

    ``b(x, s) = e^{x/2} Φ(x/s + s/2) - e^{-x/2} Φ(x/s - s/2)``, i.e. the undiscounted call
    price divided by ``sqrt(F K)``. By put-call symmetry the out-of-the-money put at
    ``x >= 0`` has the same value ``b(-x, s)``.

    Parameters
    ----------
    x : float
        Log-moneyness ``ln(F/K)``, ``<= 0``.
    s : float
        Total standard deviation ``vol·sqrt(tte)``, ``>= 0``.

    Returns
    -------
    float
        ``b(x, s) >= 0`` (0 for ``s <= 0``).

    References
    ----------
    P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015 (normalised form).
    """
    ex2 = math.exp(0.5 * x)
    return _b_otm_nb(x, s, ex2, 1.0 / ex2)


@njit(cache=True, error_model="numpy")
def normalised_vega_nb(x: float, s: float) -> float:
    """Derivative ``∂b/∂s = exp(-(x²/s² + s²/4)/2)/√(2π)`` of the normalised Black price.

    Parameters
    ----------
    x : float
        Log-moneyness ``ln(F/K)``.
    s : float
        Total standard deviation, ``>= 0``.

    Returns
    -------
    float
        Normalised vega (same for calls and puts).
    """
    h = x / s if x != 0.0 else 0.0
    t = 0.5 * s
    return _INV_SQRT_2PI * math.exp(-0.5 * (h * h + t * t))


# --------------------------------------------------------------------------------------
# Rational cubic interpolation (Delbourgo & Gregory 1985) for the initial guess
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _rational_cubic_nb(
    x: float, x_l: float, x_r: float, y_l: float, y_r: float, d_l: float, d_r: float, r: float
) -> float:
    h = x_r - x_l
    if abs(h) <= 0.0:
        return 0.5 * (y_l + y_r)
    t = (x - x_l) / h
    if not r >= _RC_MAX:
        omt = 1.0 - t
        t2 = t * t
        omt2 = omt * omt
        num = (
            y_r * t2 * t
            + (r * y_r - h * d_r) * t2 * omt
            + (r * y_l + h * d_l) * t * omt2
            + y_l * omt2 * omt
        )
        return num / (1.0 + (r - 3.0) * t * omt)
    return y_r * t + y_l * (1.0 - t)


@njit(cache=True, error_model="numpy")
def _rc_param_left_nb(
    x_l: float, x_r: float, y_l: float, y_r: float, d_l: float, d_r: float, d2_l: float
) -> float:
    h = x_r - x_l
    num = 0.5 * h * d2_l + (d_r - d_l)
    if abs(num) < _TINY:
        return 0.0
    den = (y_r - y_l) / h - d_l
    if abs(den) < _TINY:
        return _RC_MAX if num > 0.0 else _RC_MIN
    return num / den


@njit(cache=True, error_model="numpy")
def _rc_param_right_nb(
    x_l: float, x_r: float, y_l: float, y_r: float, d_l: float, d_r: float, d2_r: float
) -> float:
    h = x_r - x_l
    num = 0.5 * h * d2_r + (d_r - d_l)
    if abs(num) < _TINY:
        return 0.0
    den = d_r - (y_r - y_l) / h
    if abs(den) < _TINY:
        return _RC_MAX if num > 0.0 else _RC_MIN
    return num / den


@njit(cache=True, error_model="numpy")
def _rc_min_param_nb(d_l: float, d_r: float, slope: float, prefer_shape: bool) -> float:
    """Smallest control parameter keeping the interpolant monotone/convex (D&G 1985)."""
    monotonic = d_l * slope >= 0.0 and d_r * slope >= 0.0
    convex = d_l <= slope and slope <= d_r
    concave = d_l >= slope and slope >= d_r
    if not monotonic and not convex and not concave:
        return _RC_MIN
    d_r_m_d_l = d_r - d_l
    d_r_m_s = d_r - slope
    s_m_d_l = slope - d_l
    r1 = -_HUGE
    r2 = -_HUGE
    if monotonic:
        if abs(slope) >= _TINY:
            r1 = (d_r + d_l) / slope
        elif prefer_shape:
            r1 = _RC_MAX
    if convex or concave:
        if abs(s_m_d_l) >= _TINY and abs(d_r_m_s) >= _TINY:
            r2 = max(abs(d_r_m_d_l / d_r_m_s), abs(d_r_m_d_l / s_m_d_l))
        elif prefer_shape:
            r2 = _RC_MAX
    elif monotonic and prefer_shape:
        r2 = _RC_MAX
    return max(_RC_MIN, max(r1, r2))


@njit(cache=True, error_model="numpy")
def _convex_rc_param_left_nb(
    x_l: float,
    x_r: float,
    y_l: float,
    y_r: float,
    d_l: float,
    d_r: float,
    d2_l: float,
    prefer_shape: bool,
) -> float:
    r = _rc_param_left_nb(x_l, x_r, y_l, y_r, d_l, d_r, d2_l)
    r_min = _rc_min_param_nb(d_l, d_r, (y_r - y_l) / (x_r - x_l), prefer_shape)
    return max(r, r_min)


@njit(cache=True, error_model="numpy")
def _convex_rc_param_right_nb(
    x_l: float,
    x_r: float,
    y_l: float,
    y_r: float,
    d_l: float,
    d_r: float,
    d2_r: float,
    prefer_shape: bool,
) -> float:
    r = _rc_param_right_nb(x_l, x_r, y_l, y_r, d_l, d_r, d2_r)
    r_min = _rc_min_param_nb(d_l, d_r, (y_r - y_l) / (x_r - x_l), prefer_shape)
    return max(r, r_min)


# --------------------------------------------------------------------------------------
# Implied volatility in normalised form (Jäckel 2015)
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _lower_map_nb(x: float, s: float) -> tuple[float, float, float]:
    """``f(β) = 2π/√27 |x| Φ(-z)³`` with ``z = |x|/(√3 s)`` and its first two β-derivatives."""
    ax = abs(x)
    z = ax / (_SQRT3 * s)
    y = z * z
    s2 = s * s
    big_phi = norm_cdf_nb(-z)
    small_phi = norm_pdf_nb(z)
    fpp = (
        _PI_OVER_6
        * y
        / (s2 * s)
        * big_phi
        * (8.0 * _SQRT3 * s * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * big_phi / small_phi)
        * math.exp(2.0 * y + 0.25 * s2)
    )
    phi2 = big_phi * big_phi
    fp = _TWO_PI * y * phi2 * math.exp(y + 0.125 * s2)
    f = _TWO_PI_OVER_SQRT27 * ax * (phi2 * big_phi)
    return f, fp, fpp


@njit(cache=True, error_model="numpy")
def _inverse_lower_map_nb(x: float, f: float) -> float:
    if abs(f) < _TINY:
        return 0.0
    q = norm_ppf_nb((f / (_TWO_PI_OVER_SQRT27 * abs(x))) ** (1.0 / 3.0))
    return abs(x / (_SQRT3 * q))


@njit(cache=True, error_model="numpy")
def _upper_map_nb(x: float, s: float) -> tuple[float, float, float]:
    """``f(β) = Φ(-s/2)`` and its first two β-derivatives."""
    f = norm_cdf_nb(-0.5 * s)
    if abs(x) < _TINY:
        return f, -0.5, 0.0
    w = (x / s) * (x / s)
    fp = -0.5 * math.exp(0.5 * w)
    fpp = _SQRT_PI_OVER_2 * math.exp(w + 0.125 * s * s) * w / s
    return f, fp, fpp


@njit(cache=True, error_model="numpy")
def _householder_factor_nb(newton: float, halley: float, hh3: float) -> float:
    return (1.0 + 0.5 * halley * newton) / (1.0 + newton * (halley + hh3 * newton / 6.0))


@njit(cache=True, error_model="numpy")
def _normalised_iv_core_nb(beta: float, x: float, tol: float) -> tuple[float, int, int]:
    """:func:`normalised_implied_vol_otm_nb` plus the iteration count, for a given tolerance."""
    if not (x <= 0.0 and beta == beta):
        return np.nan, IV_BAD_INPUT, 0
    if not beta >= _TINY:  # zero, negative, or subnormal (indistinguishable from zero)
        return np.nan, IV_BELOW_INTRINSIC, 0
    ex2 = math.exp(0.5 * x)
    iex2 = 1.0 / ex2
    b_max = ex2
    if beta >= b_max:
        return np.nan, IV_ABOVE_UPPER_BOUND, 0

    # ---- initial guess on four branches --------------------------------------------
    s_c = math.sqrt(-2.0 * x)  # inflection point of b(s)
    b_c = _b_otm_nb(x, s_c, ex2, iex2)
    v_c = _INV_SQRT_2PI * ex2  # ∂b/∂s at s_c, where h² + t² = -x
    s_left = _TINY
    s_right = _HUGE
    mode = 0  # 0: objective b - beta, 1: lower (1/ln b), 2: upper (ln(b_max - b))
    if beta < b_c:
        s_l = s_c - b_c / v_c
        b_l = _b_otm_nb(x, s_l, ex2, iex2)
        if beta < b_l:
            f_l, fp_l, fpp_l = _lower_map_nb(x, s_l)
            r_ll = _convex_rc_param_right_nb(0.0, b_l, 0.0, f_l, 1.0, fp_l, fpp_l, True)
            f = _rational_cubic_nb(beta, 0.0, b_l, 0.0, f_l, 1.0, fp_l, r_ll)
            if not f > 0.0:
                tq = beta / b_l
                f = (f_l * tq + b_l * (1.0 - tq)) * tq
            s = _inverse_lower_map_nb(x, f)
            s_right = s_l
            mode = 1
        else:
            v_l = normalised_vega_nb(x, s_l)
            r_lm = _convex_rc_param_right_nb(b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, 0.0, False)
            s = _rational_cubic_nb(beta, b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, r_lm)
            s_left = s_l
            s_right = s_c
    else:
        s_h = s_c + (b_max - b_c) / v_c if v_c > _TINY else s_c
        b_h = _b_otm_nb(x, s_h, ex2, iex2)
        if beta <= b_h:
            v_h = normalised_vega_nb(x, s_h)
            r_hm = _convex_rc_param_left_nb(b_c, b_h, s_c, s_h, 1.0 / v_c, 1.0 / v_h, 0.0, False)
            s = _rational_cubic_nb(beta, b_c, b_h, s_c, s_h, 1.0 / v_c, 1.0 / v_h, r_hm)
            s_left = s_c
            s_right = s_h
        else:
            f_h, fp_h, fpp_h = _upper_map_nb(x, s_h)
            f = -1.0
            if fpp_h > -_SQRT_HUGE and fpp_h < _SQRT_HUGE:
                r_hh = _convex_rc_param_left_nb(b_h, b_max, f_h, 0.0, fp_h, -0.5, fpp_h, True)
                f = _rational_cubic_nb(beta, b_h, b_max, f_h, 0.0, fp_h, -0.5, r_hh)
            if not f > 0.0:
                hq = b_max - b_h
                tq = (beta - b_h) / hq
                f = (f_h * (1.0 - tq) + 0.5 * hq * tq) * (1.0 - tq)
            s = -2.0 * norm_ppf_nb(f)
            s_left = s_h
            if beta > 0.5 * b_max:
                mode = 2

    # ---- safeguarded Householder(3) iteration --------------------------------------
    ln_beta = math.log(beta) if mode == 1 else 0.0
    bmax_minus_beta = b_max - beta
    ds = 0.0
    ds_prev = 0.0
    reversals = 0
    for it in range(_IV_MAX_ITER):
        if it > 0 and (reversals >= 3 or not (s > s_left and s < s_right)):
            # Bisection (doubling while the bracket is still open to the right).
            s = 0.5 * (s_left + s_right) if s_right < _HUGE else 2.0 * s_left
            if s_right - s_left <= _EPS * s:
                return s, IV_OK, it
            reversals = 0
            ds = 0.0
        ds_prev = ds
        b, bp = _b_and_vega_otm_nb(x, s, ex2, iex2)
        bmax_minus_b = 0.0
        if mode == 2:  # near b_max compare the complements, which carry the precision
            bmax_minus_b = _b_otm_complement_nb(x, s, ex2, iex2)
            above = bmax_minus_b < bmax_minus_beta
            below = bmax_minus_b > bmax_minus_beta
        else:
            above = b > beta
            below = b < beta
        if above and s < s_right:
            s_right = s
        elif below and s > s_left:
            s_left = s
        h = x / s
        halley_b = h * h / s - 0.25 * s  # b''/b'
        hh3_b = halley_b * halley_b - 3.0 * (h / s) * (h / s) - 0.25  # b'''/b'
        householder = True
        if mode == 1:
            if b <= 0.0 or bp <= 0.0:  # underflow: bisect
                ds = 0.5 * (s_left + s_right) - s
                householder = False
            else:
                ln_b = math.log(b)
                bpob = bp / b
                newton = (ln_beta - ln_b) * ln_b / ln_beta / bpob
                c1 = 1.0 + 2.0 / ln_b
                halley = halley_b - bpob * c1
                hh3 = (
                    hh3_b
                    + 2.0 * bpob * bpob * (1.0 + 3.0 / ln_b * (1.0 + 1.0 / ln_b))
                    - 3.0 * halley_b * bpob * c1
                )
                ds = newton * _householder_factor_nb(newton, halley, hh3)
        elif mode == 2:
            if bmax_minus_b <= 0.0 or bp <= _TINY:
                ds = (0.5 * (s_left + s_right) if s_right < _HUGE else 2.0 * s_left) - s
                householder = False
            else:
                g = math.log(bmax_minus_beta / bmax_minus_b)
                gp = bp / bmax_minus_b
                newton = -g / gp
                halley = halley_b + gp
                hh3 = hh3_b + gp * (2.0 * gp + 3.0 * halley_b)
                ds = newton * _householder_factor_nb(newton, halley, hh3)
        else:
            if bp <= 0.0:
                ds = (0.5 * (s_left + s_right) if s_right < _HUGE else 2.0 * s_left) - s
                householder = False
            else:
                newton = (beta - b) / bp
                ds = newton * _householder_factor_nb(newton, halley_b, hh3_b)
        ds = max(-0.5 * s, ds)
        s += ds
        if ds * ds_prev < 0.0:
            reversals += 1
        if householder and abs(ds) <= tol * s:
            return s, IV_OK, it + 1
    return np.nan, IV_NO_CONVERGENCE, _IV_MAX_ITER


@njit(cache=True, error_model="numpy")
def normalised_implied_vol_otm_nb(beta: float, x: float) -> tuple[float, int]:
    """Total implied standard deviation ``s`` of a normalised out-of-the-money call.

    **Reference solver** (the full Jäckel 2015 iteration), kept for the tests and the
    benchmarks; production code calls :func:`implied_vol` / :func:`pricing.implied_vol_chain`
    (or :func:`pricing.iv_chain.normalised_implied_vol_chain_nb` in nopython code).

    Solves ``b(x, s) = beta`` (see :func:`normalised_black_otm_nb`) for ``x <= 0`` and
    ``0 < beta < e^{x/2}``. Jäckel's (2015) four-branch rational-cubic initial guess is
    followed by Householder(3) steps on the transformed objectives ``1/ln b - 1/ln β``
    (lower branch), ``b - β`` (middle) and ``ln((b_max-β)/(b_max-b))`` (upper), each step
    kept inside a bracket that is tightened at every evaluation, with bisection when a
    step leaves the bracket or the iteration oscillates. Stops after the first Householder
    step smaller than ``1e-6·s`` (with fourth-order convergence the remaining error is far
    below machine precision; typically 1-2 steps) or when the bisection bracket is narrower
    than ``eps·s``. Against 50-digit arithmetic the result is within ~5x the limit set by
    rounding ``beta`` to a double (about ``eps·beta/(s·∂b/∂s)`` relative in ``s``).

    Parameters
    ----------
    beta : float
        Normalised out-of-the-money time value, undiscounted price over ``sqrt(F K)``.
    x : float
        Log-moneyness ``ln(F/K) <= 0``.

    Returns
    -------
    s : float
        Total standard deviation ``vol·sqrt(tte)`` (NaN unless ``status == 0``).
    status : int
        :data:`IV_OK`, :data:`IV_BELOW_INTRINSIC` (``beta <= 0``),
        :data:`IV_ABOVE_UPPER_BOUND` (``beta >= e^{x/2}``), :data:`IV_BAD_INPUT` (NaN or
        ``x > 0``) or :data:`IV_NO_CONVERGENCE`.

    References
    ----------
    P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015, 40-53.
    """
    s, status, _ = _normalised_iv_core_nb(beta, x, _IV_TOL)
    return s, status


# --------------------------------------------------------------------------------------
# Scalar kernels in market units
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _valid_market_nb(spot: float, strike: float, rate: float, div_yield: float) -> bool:
    return (
        spot > 0.0
        and strike > 0.0
        and math.isfinite(spot)
        and math.isfinite(strike)
        and math.isfinite(rate)
        and math.isfinite(div_yield)
    )


@njit(cache=True, error_model="numpy")
def bs_price_nb(
    spot: float, strike: float, tte: float, rate: float, div_yield: float, vol: float, cp: int
) -> float:
    """Black-Scholes-Merton price of one European option (nopython scalar kernel).

    ``price = DF·max(θ(F-K), 0) + DF·sqrt(F K)·b(-|x|, s)`` with ``F = S e^{(r-q)T}``,
    ``DF = e^{-rT}``, ``x = ln(F/K)``, ``s = vol·sqrt(T)``; identical to
    ``θ[S e^{-qT} Φ(θ d1) - K e^{-rT} Φ(θ d2)]``.

    Parameters
    ----------
    spot, strike : float
        Underlying and strike price (> 0).
    tte : float
        Time to expiry in years (ACT/365), ``>= 0``; at ``tte == 0`` the payoff
        ``max(θ(S-K), 0)`` is returned.
    rate, div_yield : float
        Continuous risk-free rate and dividend yield (decimals).
    vol : float
        Volatility (decimal, annualised), ``>= 0``; ``vol == 0`` gives the discounted
        forward intrinsic value.
    cp : int
        :data:`CALL` (+1) or :data:`PUT` (-1).

    Returns
    -------
    float
        Option price; NaN for invalid input (non-finite, ``spot``/``strike <= 0``,
        ``tte < 0``, ``vol < 0``, ``cp`` not ±1).

    References
    ----------
    Black & Scholes (1973); Merton (1973); Haug (2007) ch. 1.
    """
    if not (_valid_market_nb(spot, strike, rate, div_yield) and tte >= 0.0 and vol >= 0.0):
        return np.nan
    if not (math.isfinite(tte) and math.isfinite(vol)) or (cp != 1 and cp != -1):
        return np.nan
    if tte == 0.0:
        return max(cp * (spot - strike), 0.0)
    fwd_pv = spot * math.exp(-div_yield * tte)  # S e^{-qT} = DF F
    k_pv = strike * math.exp(-rate * tte)  # K e^{-rT} = DF K
    intrinsic = max(cp * (fwd_pv - k_pv), 0.0)
    x = math.log(spot / strike) + (rate - div_yield) * tte
    s = vol * math.sqrt(tte)
    return intrinsic + math.sqrt(fwd_pv) * math.sqrt(k_pv) * normalised_black_otm_nb(-abs(x), s)


@njit(cache=True, error_model="numpy")
def straddle_price_nb(
    spot: float, strike: float, tte: float, rate: float, div_yield: float, vol: float
) -> float:
    """Price of a call plus a put with the same strike and expiry (nopython kernel).

    Both legs share the same time value, so the straddle is
    ``|S e^{-qT} - K e^{-rT}| + 2 DF sqrt(F K) b(-|x|, s)``.

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : float
        As in :func:`bs_price_nb`.

    Returns
    -------
    float
        Straddle price (``|S - K|`` at ``tte == 0``); NaN for invalid input.
    """
    if not (_valid_market_nb(spot, strike, rate, div_yield) and tte >= 0.0 and vol >= 0.0):
        return np.nan
    if not (math.isfinite(tte) and math.isfinite(vol)):
        return np.nan
    if tte == 0.0:
        return abs(spot - strike)
    fwd_pv = spot * math.exp(-div_yield * tte)
    k_pv = strike * math.exp(-rate * tte)
    x = math.log(spot / strike) + (rate - div_yield) * tte
    s = vol * math.sqrt(tte)
    tv = math.sqrt(fwd_pv) * math.sqrt(k_pv) * normalised_black_otm_nb(-abs(x), s)
    return abs(fwd_pv - k_pv) + 2.0 * tv


@njit(cache=True, error_model="numpy")
def bs_greeks_nb(
    spot: float, strike: float, tte: float, rate: float, div_yield: float, vol: float, cp: int
) -> tuple[float, float, float, float]:
    """Analytic BSM Greeks ``(delta, gamma, vega, theta)`` of one option (nopython kernel).

    With ``d1 = (ln(S/K) + (r - q + vol²/2)T)/(vol√T)``, ``d2 = d1 - vol√T``, ``θ = ±1``:

    * ``delta = θ e^{-qT} Φ(θ d1)`` (per 1 unit of spot)
    * ``gamma = e^{-qT} φ(d1)/(S vol √T)`` (per 1 unit of spot, per 1 unit of spot)
    * ``vega = S e^{-qT} φ(d1) √T`` (per 1.00 of decimal vol)
    * ``theta = -S e^{-qT} φ(d1) vol/(2√T) - θ r K e^{-rT} Φ(θ d2) + θ q S e^{-qT} Φ(θ d1)``
      (per year of calendar time, ``= -∂price/∂tte``)

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : float
        As in :func:`bs_price_nb`, but ``tte > 0`` and ``vol > 0`` are required.
    cp : int
        :data:`CALL` (+1) or :data:`PUT` (-1).

    Returns
    -------
    tuple of float
        ``(delta, gamma, vega, theta)``; all NaN for invalid input, ``tte <= 0`` or
        ``vol <= 0``.

    References
    ----------
    Haug (2007) ch. 1; Hull, "Options, Futures, and Other Derivatives" (the Greek letters).
    """
    nan = np.nan
    if not (_valid_market_nb(spot, strike, rate, div_yield) and tte > 0.0 and vol > 0.0):
        return nan, nan, nan, nan
    if not (math.isfinite(tte) and math.isfinite(vol)) or (cp != 1 and cp != -1):
        return nan, nan, nan, nan
    sqrt_t = math.sqrt(tte)
    s = vol * sqrt_t
    x = math.log(spot / strike) + (rate - div_yield) * tte
    d1 = x / s + 0.5 * s
    d2 = d1 - s
    eq = math.exp(-div_yield * tte)
    er = math.exp(-rate * tte)
    pdf1 = norm_pdf_nb(d1)
    nd1 = norm_cdf_nb(cp * d1)
    nd2 = norm_cdf_nb(cp * d2)
    delta = cp * eq * nd1
    gamma = eq * pdf1 / (spot * s)
    vega = spot * eq * pdf1 * sqrt_t
    theta = (
        -spot * eq * pdf1 * vol / (2.0 * sqrt_t)
        - cp * rate * strike * er * nd2
        + cp * div_yield * spot * eq * nd1
    )
    return delta, gamma, vega, theta


@njit(cache=True, error_model="numpy")
def bs_vega_nb(
    spot: float, strike: float, tte: float, rate: float, div_yield: float, vol: float
) -> float:
    """BSM vega ``S e^{-qT} φ(d1) √T`` per 1.00 of decimal vol (same for calls and puts).

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : float
        As in :func:`bs_greeks_nb`.

    Returns
    -------
    float
        Vega; NaN for invalid input, ``tte <= 0`` or ``vol <= 0``.
    """
    return bs_greeks_nb(spot, strike, tte, rate, div_yield, vol, 1)[2]


@njit(cache=True, error_model="numpy")
def implied_vol_status_nb(
    price: float, spot: float, strike: float, tte: float, rate: float, div_yield: float, cp: int
) -> tuple[float, int]:
    """Black-Scholes-Merton implied volatility and reason code of one price (nopython).

    **Reference solver** (the full Jäckel 2015 iteration), kept for the tests and the
    benchmarks; production code calls :func:`implied_vol` / :func:`pricing.implied_vol_chain`
    (or :func:`pricing.iv_chain.normalised_implied_vol_chain_nb` in nopython code).

    The time value ``price - max(θ(S e^{-qT} - K e^{-rT}), 0)`` is normalised by
    ``sqrt(S e^{-qT} K e^{-rT}) = DF sqrt(F K)`` and inverted as an out-of-the-money
    option with :func:`normalised_implied_vol_otm_nb`.

    Parameters
    ----------
    price : float
        Option price (> 0).
    spot, strike, tte, rate, div_yield : float
        As in :func:`bs_price_nb`, ``tte > 0``.
    cp : int
        :data:`CALL` (+1) or :data:`PUT` (-1).

    Returns
    -------
    vol : float
        Implied volatility (decimal, annualised); NaN unless ``status == IV_OK``.
    status : int
        One of the ``IV_*`` codes: 0 ok, 1 at/below discounted intrinsic, 2 at/above the
        upper bound, 3 bad input, 4 no convergence.

    References
    ----------
    P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015.
    """
    if not (_valid_market_nb(spot, strike, rate, div_yield) and price > 0.0 and tte > 0.0):
        return np.nan, IV_BAD_INPUT
    if not (math.isfinite(price) and math.isfinite(tte)) or (cp != 1 and cp != -1):
        return np.nan, IV_BAD_INPUT
    fwd_pv = spot * math.exp(-div_yield * tte)
    k_pv = strike * math.exp(-rate * tte)
    upper = fwd_pv if cp == 1 else k_pv
    if price >= upper:
        return np.nan, IV_ABOVE_UPPER_BOUND
    time_value = price - max(cp * (fwd_pv - k_pv), 0.0)
    if not time_value > 0.0:
        return np.nan, IV_BELOW_INTRINSIC
    x = math.log(spot / strike) + (rate - div_yield) * tte
    beta = time_value / (math.sqrt(fwd_pv) * math.sqrt(k_pv))
    s, status = normalised_implied_vol_otm_nb(beta, -abs(x))
    if status != IV_OK:
        return np.nan, status
    return s / math.sqrt(tte), IV_OK


@njit(cache=True, error_model="numpy")
def implied_vol_nb(
    price: float, spot: float, strike: float, tte: float, rate: float, div_yield: float, cp: int
) -> float:
    """Implied volatility of one price, NaN when it does not exist (nopython kernel).

    **Reference solver** (the full Jäckel 2015 iteration), kept for the tests and the
    benchmarks; production code calls :func:`implied_vol` / :func:`pricing.implied_vol_chain`
    (or :func:`pricing.iv_chain.normalised_implied_vol_chain_nb` in nopython code).

    Parameters
    ----------
    price, spot, strike, tte, rate, div_yield, cp
        As in :func:`implied_vol_status_nb`.

    Returns
    -------
    float
        Implied volatility or NaN (see :func:`implied_vol_status_nb` for the reason).
    """
    return implied_vol_status_nb(price, spot, strike, tte, rate, div_yield, cp)[0]


# --------------------------------------------------------------------------------------
# Array kernels over flat arrays (each of length n or 1)
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _common_len_nb(lengths: tuple[int, ...]) -> int:
    n = 1
    for m in lengths:
        if m != 1:
            if n != 1 and m != n:
                raise ValueError("array kernels need 1-d inputs of one common length or 1")
            n = m
    for m in lengths:
        if m == 0:
            return 0
    return n


@njit(cache=True, error_model="numpy")
def bs_price_1d_nb(
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    vol: NDArray[np.float64],
    cp: NDArray[np.int8],
) -> NDArray[np.float64]:
    """Vectorised :func:`bs_price_nb` over 1-d arrays of length ``n`` or 1 (broadcast).

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : ndarray of float64, shape (n,) or (1,)
        As in :func:`bs_price_nb`.
    cp : ndarray of int, shape (n,) or (1,)
        +1 call, -1 put.

    Returns
    -------
    ndarray of float64, shape (n,)
        Prices.

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb(
        (spot.size, strike.size, tte.size, rate.size, div_yield.size, vol.size, cp.size)
    )
    i0, i1, i2 = int(spot.size > 1), int(strike.size > 1), int(tte.size > 1)
    i3, i4, i5, i6 = (
        int(rate.size > 1),
        int(div_yield.size > 1),
        int(vol.size > 1),
        int(cp.size > 1),
    )
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = bs_price_nb(
            spot[i * i0],
            strike[i * i1],
            tte[i * i2],
            rate[i * i3],
            div_yield[i * i4],
            vol[i * i5],
            cp[i * i6],
        )
    return out


@njit(cache=True, error_model="numpy")
def straddle_price_1d_nb(
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    vol: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Vectorised :func:`straddle_price_nb` over 1-d arrays of length ``n`` or 1.

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : ndarray of float64, shape (n,) or (1,)
        As in :func:`bs_price_nb`.

    Returns
    -------
    ndarray of float64, shape (n,)
        Straddle prices.

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb((spot.size, strike.size, tte.size, rate.size, div_yield.size, vol.size))
    i0, i1, i2 = int(spot.size > 1), int(strike.size > 1), int(tte.size > 1)
    i3, i4, i5 = int(rate.size > 1), int(div_yield.size > 1), int(vol.size > 1)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = straddle_price_nb(
            spot[i * i0], strike[i * i1], tte[i * i2], rate[i * i3], div_yield[i * i4], vol[i * i5]
        )
    return out


@njit(cache=True, error_model="numpy")
def bs_greeks_1d_nb(
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    vol: NDArray[np.float64],
    cp: NDArray[np.int8],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Vectorised :func:`bs_greeks_nb` over 1-d arrays of length ``n`` or 1.

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : ndarray of float64, shape (n,) or (1,)
        As in :func:`bs_greeks_nb`.
    cp : ndarray of int, shape (n,) or (1,)
        +1 call, -1 put.

    Returns
    -------
    tuple of ndarray of float64, each shape (n,)
        ``(delta, gamma, vega, theta)``.

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb(
        (spot.size, strike.size, tte.size, rate.size, div_yield.size, vol.size, cp.size)
    )
    i0, i1, i2 = int(spot.size > 1), int(strike.size > 1), int(tte.size > 1)
    i3, i4, i5, i6 = (
        int(rate.size > 1),
        int(div_yield.size > 1),
        int(vol.size > 1),
        int(cp.size > 1),
    )
    delta = np.empty(n, dtype=np.float64)
    gamma = np.empty(n, dtype=np.float64)
    vega = np.empty(n, dtype=np.float64)
    theta = np.empty(n, dtype=np.float64)
    for i in range(n):
        delta[i], gamma[i], vega[i], theta[i] = bs_greeks_nb(
            spot[i * i0],
            strike[i * i1],
            tte[i * i2],
            rate[i * i3],
            div_yield[i * i4],
            vol[i * i5],
            cp[i * i6],
        )
    return delta, gamma, vega, theta


@njit(cache=True, error_model="numpy")
def implied_vol_1d_nb(
    price: NDArray[np.float64],
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    cp: NDArray[np.int8],
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Vectorised :func:`implied_vol_status_nb` (single thread) over arrays of length n or 1.

    **Reference** (full Jäckel, see :func:`implied_vol_status_nb`); production:
    :func:`implied_vol` / :func:`pricing.implied_vol_chain`.

    Parameters
    ----------
    price, spot, strike, tte, rate, div_yield : ndarray of float64, shape (n,) or (1,)
        As in :func:`implied_vol_status_nb`.
    cp : ndarray of int, shape (n,) or (1,)
        +1 call, -1 put.

    Returns
    -------
    vol : ndarray of float64, shape (n,)
        Implied volatilities (NaN where ``status != 0``).
    status : ndarray of int8, shape (n,)
        ``IV_*`` reason codes.

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb(
        (price.size, spot.size, strike.size, tte.size, rate.size, div_yield.size, cp.size)
    )
    i0, i1, i2 = int(price.size > 1), int(spot.size > 1), int(strike.size > 1)
    i3, i4, i5, i6 = (
        int(tte.size > 1),
        int(rate.size > 1),
        int(div_yield.size > 1),
        int(cp.size > 1),
    )
    vol = np.empty(n, dtype=np.float64)
    status = np.empty(n, dtype=np.int8)
    for i in range(n):
        v, st = implied_vol_status_nb(
            price[i * i0],
            spot[i * i1],
            strike[i * i2],
            tte[i * i3],
            rate[i * i4],
            div_yield[i * i5],
            cp[i * i6],
        )
        vol[i] = v
        status[i] = st
    return vol, status


@njit(cache=True, error_model="numpy", parallel=True)
def implied_vol_1d_parallel_nb(
    price: NDArray[np.float64],
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    cp: NDArray[np.int8],
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Multi-threaded (``prange``) twin of :func:`implied_vol_1d_nb`.

    **Reference** (full Jäckel, see :func:`implied_vol_status_nb`); production:
    :func:`implied_vol` / :func:`pricing.implied_vol_chain`.

    Every element is computed independently by the same scalar kernel, so the result is
    bit-for-bit identical to the single-threaded kernel whatever the thread count.

    Parameters
    ----------
    price, spot, strike, tte, rate, div_yield, cp
        As in :func:`implied_vol_1d_nb`.

    Returns
    -------
    vol : ndarray of float64, shape (n,)
        Implied volatilities (NaN where ``status != 0``).
    status : ndarray of int8, shape (n,)
        ``IV_*`` reason codes.

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb(
        (price.size, spot.size, strike.size, tte.size, rate.size, div_yield.size, cp.size)
    )
    i0, i1, i2 = int(price.size > 1), int(spot.size > 1), int(strike.size > 1)
    i3, i4, i5, i6 = (
        int(tte.size > 1),
        int(rate.size > 1),
        int(div_yield.size > 1),
        int(cp.size > 1),
    )
    vol = np.empty(n, dtype=np.float64)
    status = np.empty(n, dtype=np.int8)
    for i in prange(n):
        v, st = implied_vol_status_nb(
            price[i * i0],
            spot[i * i1],
            strike[i * i2],
            tte[i * i3],
            rate[i * i4],
            div_yield[i * i5],
            cp[i * i6],
        )
        vol[i] = v
        status[i] = st
    return vol, status


# --------------------------------------------------------------------------------------
# NumPy-facing API
# --------------------------------------------------------------------------------------


class Greeks(NamedTuple):
    """Black-Scholes-Merton Greeks; each field has the broadcast shape of the inputs.

    Attributes
    ----------
    delta : ndarray of float64
        ``∂price/∂spot``, per 1 unit (dollar / index point) of spot.
    gamma : ndarray of float64
        ``∂²price/∂spot²``, per 1 unit of spot.
    vega : ndarray of float64
        ``∂price/∂vol`` per 1.00 of decimal vol (divide by 100 for per vol point).
    theta : ndarray of float64
        ``∂price/∂t`` per year of calendar time, i.e. ``-∂price/∂tte`` (divide by 365 for
        per calendar day).
    """

    delta: FloatOrArray
    gamma: FloatOrArray
    vega: FloatOrArray
    theta: FloatOrArray


class IVResult(NamedTuple):
    """Implied volatility with its reason code (see :data:`IV_STATUS_DESCRIPTIONS`).

    Attributes
    ----------
    vol : ndarray of float64
        Implied volatility (decimal, annualised), NaN where ``status != 0``.
    status : ndarray of int8
        ``IV_*`` reason codes: 0 ok, 1 at/below discounted intrinsic, 2 at/above upper
        bound, 3 bad input, 4 no convergence.
    """

    vol: FloatOrArray
    status: np.int8 | NDArray[np.int8]


_RIGHT_CODES: dict[str, int] = {"C": CALL, "CALL": CALL, "P": PUT, "PUT": PUT}


def _right_code(value: object) -> int:
    if isinstance(value, str):
        code = _RIGHT_CODES.get(value.upper())
        if code is not None:
            return code
    raise ValueError(
        f"invalid option right {value!r}: expected 'C' or 'P' (also 'c', 'p', 'call', 'put')"
    )


def parse_right(right: str | ArrayLike) -> NDArray[np.int8]:
    """Convert option rights to the kernels' integer flags (+1 call, -1 put).

    Parameters
    ----------
    right : str or array_like of str
        ``'C'``/``'P'``, ``'call'``/``'put'``, in any letter case.

    Returns
    -------
    ndarray of int8
        Same shape as ``right`` (0-d for a single string).

    Raises
    ------
    ValueError
        If any element is not a recognised right; the message names the bad value.
    """
    if isinstance(right, str):
        return np.array(_right_code(right), dtype=np.int8)
    arr = np.asarray(right)
    if arr.ndim == 0:
        return np.array(_right_code(arr.item()), dtype=np.int8)
    if arr.dtype.kind == "U" and arr.dtype.itemsize == 4:
        # Fast path for one-character strings: compare code points.
        u = arr.view(np.uint32)
        codes = np.zeros(arr.shape, dtype=np.int8)
        codes[(u == ord("C")) | (u == ord("c"))] = CALL
        codes[(u == ord("P")) | (u == ord("p"))] = PUT
        bad = codes == 0
        if bad.any():
            _right_code(str(arr[bad][0]))
        return codes
    if arr.dtype.kind in "UO":
        try:
            uniq, inverse = np.unique(arr, return_inverse=True)
        except TypeError:  # mixed object types that cannot be sorted
            flat = arr.reshape(-1)
            return np.array([_right_code(v) for v in flat], dtype=np.int8).reshape(arr.shape)
        table = np.array([_right_code(v) for v in uniq], dtype=np.int8)
        return table[inverse].reshape(arr.shape)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.int8)
    _right_code(arr.reshape(-1)[0].item())
    raise AssertionError("unreachable")  # pragma: no cover


def _flatten(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Broadcast shapes; return 1-d contiguous arrays of length n (or 1 for scalars)."""
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = []
    for a in arrays:
        if a.size == 1:
            flat.append(np.ascontiguousarray(a.reshape(1)))
        elif a.shape == shape:
            flat.append(np.ascontiguousarray(a).reshape(-1))
        else:
            flat.append(np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1))
    return flat, shape


def _prepare(
    floats: tuple[ArrayLike, ...], right: str | ArrayLike | None
) -> tuple[list[np.ndarray], tuple[int, ...]]:
    arrays = [np.asarray(a, dtype=np.float64) for a in floats]
    if right is not None:
        arrays.append(parse_right(right))
    return _flatten(arrays)


def _shaped(values: np.ndarray, shape: tuple[int, ...]) -> FloatOrArray:
    out = values.reshape(shape)
    return out[()] if out.ndim == 0 else out


def bs_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    right: str | ArrayLike,
) -> FloatOrArray:
    """Black-Scholes-Merton price of European options with a continuous dividend yield.

    ``θ[S e^{-qT} Φ(θ d1) - K e^{-rT} Φ(θ d2)]``, evaluated as discounted intrinsic plus the
    normalised out-of-the-money time value (accurate down to one-minute ``tte``).

    Parameters
    ----------
    spot : array_like of float
        Underlying price (> 0), dollars or index points.
    strike : array_like of float
        Strike (> 0), same units as ``spot``.
    tte : array_like of float
        Time to expiry in years, ACT/365 (one minute = 1/525600). ``tte == 0`` returns the
        payoff ``max(θ(S-K), 0)``.
    rate : array_like of float
        Continuously compounded risk-free rate (decimal).
    div_yield : array_like of float
        Continuous dividend yield (decimal).
    vol : array_like of float
        Annualised volatility (decimal, >= 0; 0 gives the discounted forward intrinsic).
    right : str or array_like of str
        ``'C'``/``'P'`` (any case, or ``'call'``/``'put'``).

    All arguments broadcast against each other (NumPy rules).

    Returns
    -------
    ndarray of float64 or numpy.float64
        Prices with the broadcast shape; a ``numpy.float64`` scalar when every input is a
        scalar. NaN for invalid input (non-finite, non-positive spot/strike, negative
        ``tte`` or ``vol``).

    Raises
    ------
    ValueError
        If a right is not recognised (the message names it) or the shapes do not broadcast.

    References
    ----------
    Black & Scholes (1973); Merton (1973); Haug (2007) ch. 1; Jäckel (2015) for the
    normalised form.
    """
    flat, shape = _prepare((spot, strike, tte, rate, div_yield, vol), right)
    return _shaped(bs_price_1d_nb(*flat), shape)


def straddle_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
) -> FloatOrArray:
    """Price of a straddle, call plus put with the same strike and expiry.

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol : array_like of float
        As in :func:`bs_price` (broadcast together).

    Returns
    -------
    ndarray of float64 or numpy.float64
        ``bs_price(..., 'C') + bs_price(..., 'P')``, computed as
        ``|S e^{-qT} - K e^{-rT}| + 2 × time value``; ``|S - K|`` at ``tte == 0``. Scalar
        ``numpy.float64`` for all-scalar input.

    Raises
    ------
    ValueError
        If the shapes do not broadcast.

    References
    ----------
    Black & Scholes (1973); Merton (1973).
    """
    flat, shape = _prepare((spot, strike, tte, rate, div_yield, vol), None)
    return _shaped(straddle_price_1d_nb(*flat), shape)


def bs_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    right: str | ArrayLike,
) -> Greeks:
    """Analytic Black-Scholes-Merton Greeks with a continuous dividend yield.

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol, right
        As in :func:`bs_price` (broadcast together); ``tte > 0`` and ``vol > 0``.

    Returns
    -------
    Greeks
        Named tuple ``(delta, gamma, vega, theta)`` of float64 arrays with the broadcast
        shape (``numpy.float64`` scalars for all-scalar input):

        * ``delta`` per 1 unit of spot: ``θ e^{-qT} Φ(θ d1)``;
        * ``gamma`` per 1 unit of spot: ``e^{-qT} φ(d1)/(S vol √T)``;
        * ``vega`` per 1.00 of decimal vol: ``S e^{-qT} φ(d1) √T``;
        * ``theta`` per year of calendar time (``-∂price/∂tte``):
          ``-S e^{-qT} φ(d1) vol/(2√T) - θ r K e^{-rT} Φ(θ d2) + θ q S e^{-qT} Φ(θ d1)``.

        NaN where the input is invalid or ``tte <= 0`` or ``vol <= 0``.

    Raises
    ------
    ValueError
        If a right is not recognised or the shapes do not broadcast.

    References
    ----------
    Haug (2007) ch. 1; Hull, "Options, Futures, and Other Derivatives"; QuantLib's
    ``AnalyticEuropeanEngine`` (``delta``, ``gamma``, ``vega``, ``theta``) uses the same
    units.
    """
    flat, shape = _prepare((spot, strike, tte, rate, div_yield, vol), right)
    delta, gamma, vega, theta = bs_greeks_1d_nb(*flat)
    return Greeks(
        _shaped(delta, shape), _shaped(gamma, shape), _shaped(vega, shape), _shaped(theta, shape)
    )


def implied_vol_status(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    right: str | ArrayLike,
    *,
    parallel: bool | None = None,
) -> IVResult:
    """Black-Scholes-Merton implied volatility with a reason code for every element.

    The suite's one production implied-vol path: it is
    :func:`pricing.iv_chain.implied_vol_chain` with ``underlying="spot"`` (table guess,
    Householder(3) steps on Jäckel's objectives, Jäckel fallback). The full Jäckel (2015)
    kernels of this module (:func:`normalised_implied_vol_otm_nb`, :func:`implied_vol_nb`,
    :func:`implied_vol_status_nb`, :func:`implied_vol_1d_nb`) are the tests' reference.

    Parameters
    ----------
    price : array_like of float
        Option price (same currency units as spot and strike).
    spot, strike, tte, rate, div_yield, right
        As in :func:`bs_price` (broadcast together with ``price``).
    parallel : bool, optional
        Use the multi-threaded kernel. Default: when the broadcast size is at least
        :data:`PARALLEL_MIN_SIZE`. Results are identical either way.

    Returns
    -------
    IVResult
        Named tuple ``(vol, status)``: ``vol`` float64 (NaN where ``status != 0``) and
        ``status`` int8 with the broadcast shape (numpy scalars for all-scalar input).
        Codes: :data:`IV_OK` 0; :data:`IV_BELOW_INTRINSIC` 1 (price at or below
        ``DF max(0, θ(F-K))``); :data:`IV_ABOVE_UPPER_BOUND` 2 (price at or above
        ``S e^{-qT}`` for calls, ``K e^{-rT}`` for puts); :data:`IV_BAD_INPUT` 3
        (non-finite input, non-positive price/spot/strike, ``tte <= 0``);
        :data:`IV_NO_CONVERGENCE` 4.

    Raises
    ------
    ValueError
        If a right is not recognised (the message names it) or the shapes do not broadcast.

    Notes
    -----
    Accuracy: the solver converges to machine precision in ``s = vol√T`` (see
    :func:`normalised_implied_vol_otm_nb`); the result is limited by the conditioning
    ``|Δvol| ≈ |Δprice|/vega``, where ``Δprice`` is a few ulps of the price (of ``S`` for
    in-the-money options, whose intrinsic value is subtracted). Where vega is at least
    1e-4 of the price the round-trip error is below ~1e-12 in vol, one-minute expiries
    included.

    References
    ----------
    P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015, 40-53.
    """
    # the one production solver: the chain kernel on the spot (imported here: iv_chain
    # imports this module); rights parsed here so that the error names the right
    from pricing.iv_chain import implied_vol_chain

    codes = parse_right(right)
    return implied_vol_chain(
        price, spot, strike, tte, rate, div_yield, codes,
        underlying="spot", return_status=True, parallel=parallel,
    )  # fmt: skip


def implied_vol(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    right: str | ArrayLike,
    *,
    return_status: bool = False,
    parallel: bool | None = None,
) -> FloatOrArray | IVResult:
    """Black-Scholes-Merton implied volatility, NaN where no volatility fits the price.

    Parameters
    ----------
    price : array_like of float
        Option price.
    spot, strike, tte, rate, div_yield, right
        As in :func:`bs_price` (broadcast together with ``price``).
    return_status : bool, default False
        Return :class:`IVResult` ``(vol, status)`` as :func:`implied_vol_status` does.
    parallel : bool, optional
        See :func:`implied_vol_status`.

    Returns
    -------
    ndarray of float64 or numpy.float64 or IVResult
        Implied volatility (decimal, annualised) with the broadcast shape. NaN for prices
        at/below the discounted intrinsic value or at/above the upper bound
        (``S e^{-qT}`` call, ``K e^{-rT}`` put), for ``tte <= 0``, non-finite or
        non-positive inputs, or when the iteration fails.

    Raises
    ------
    ValueError
        If a right is not recognised (the message names it) or the shapes do not broadcast.

    References
    ----------
    P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015, 40-53.
    """
    result = implied_vol_status(price, spot, strike, tte, rate, div_yield, right, parallel=parallel)
    return result if return_status else result.vol
