"""Implied volatility of a whole option chain in one numba call (>= 10 million per second).

:func:`implied_vol_chain` inverts Black-Scholes-Merton / Black-76 prices to implied
volatilities for arrays of any size with one compiled, multi-threaded (``prange``) kernel. It
returns the same reason codes as :func:`pricing.implied_vol` (``IV_OK`` 0,
``IV_BELOW_INTRINSIC`` 1, ``IV_ABOVE_UPPER_BOUND`` 2, ``IV_BAD_INPUT`` 3,
``IV_NO_CONVERGENCE`` 4) and agrees with it to ~1e-14 relative wherever the result is
well conditioned; it is ~3x faster per thread because the expensive part of Jäckel's method
(the four-branch initial guess and the second iteration) is replaced by a table.

Conventions (as in :mod:`pricing.black_scholes`): prices and strikes in the same units
(dollars / index points); ``tte`` in years ACT/365 (one minute is ``1/525600``); ``rate`` and
``div_yield`` continuously compounded decimals; the result is the annualised volatility as a
decimal (``0.2`` is 20 vol points). ``right`` is ``'C'``/``'P'`` (or ``'call'``/``'put'``,
any case) or integer flags ``+1``/``-1``.

Method
------
Every option is reduced to Jäckel's normalised out-of-the-money form: with the forward
``F`` (given, or ``S e^{(r-q)T}`` from a spot), discount ``DF = e^{-rT}``, ``x = -|ln(F/K)|``
and the time value ``price - DF max(θ(F-K), 0)``,

    ``beta = time value / (DF sqrt(F K)) = b(x, s)``,
    ``b(x, s) = e^{x/2} Φ(x/s + s/2) - e^{-x/2} Φ(x/s - s/2)``,

is solved for the total standard deviation ``s = vol sqrt(tte)``. Per block of 256 options:

1. *Screening* (market units -> normalised, reason codes), compacting the solvable options.
2. *Initial guess from a table*: ``ln(s/c)`` with ``c = beta e^{-x/2}`` (the undiscounted
   out-of-the-money price over the forward) is a smooth function of ``(logit c, ln|x|)``.
   It is tabulated on a 0.5 x 0.5 grid over ``c in [7e-13, 0.9]``, ``|x| in [5.7e-19, 8.2]``
   (smaller ``|x|`` is clamped: the error that adds is ``O(|x|/c) < 1e-6``) and interpolated by
   the bicubic spline of those nodes (``scipy.interpolate.RectBivariateSpline``, stored as
   per-cell polynomials). The nodes are solved once, at the first call, with the
   Jäckel (2015) solver below. Maximum error of the guess: 1e-4 relative in ``s``.
3. *One Householder(3) step* on Jäckel's objectives (``1/ln b - 1/ln beta`` below the
   inflection point ``s_c = sqrt(2|x|)``, ``ln((b_max - beta)/(b_max - b))`` when
   ``c > 0.5``, ``b - beta`` otherwise), kept inside a bracket. A step ``|Δs| <= 2e-4 s``
   is accepted: with fourth-order convergence the error left is ``~K (Δs/s)^4``, below
   ~1e-15 relative. Others get a second step with the same test.
4. *Fallback*: options outside the table (``c < 7e-13``, ``c > 0.9``, ``|x| > 8.2``) or not
   accepted after two steps (none in a real SPX chain) go through the full safeguarded
   Jäckel (2015) iteration: four-branch rational-cubic guess, Householder(3) steps inside a
   bracket with bisection.

The special functions are our own fast, inlined versions: ``erfcx(u) = e^{u²} erfc(u)``
(:func:`erfcx_nb`) is a degree-8 piecewise polynomial in ``y = 4/(4+u)`` on 100 intervals,
interpolating ``scipy.special.erfcx`` (Faddeeva package, S. G. Johnson) at Chebyshev nodes
(relative error below 3e-15), and the asymptotic series ``1/(u√π) Σ (-1)^n (2n-1)!!/(2u²)^n``
for ``u >= 50``; ``b`` and its vega share one exponential,
``b = e^{-(h²+t²)/2}/2 [erfcx(-(h+t)/√2) - erfcx((t-h)/√2)]`` with ``h = x/s``, ``t = s/2``
(and the complement ``b_max - b`` from the sum form when ``h + t > 0``), and small ``t``
uses the Taylor series of :mod:`pricing.black_scholes` with 3, 4 or 7 terms by the size of
``t`` (truncation error below 2e-16 relative).

Accuracy
--------
The computed ``s`` is within ~2e-14 relative of the exact root for the given (double)
normalised price (tested against 40-digit ``mpmath``). In market units the limit is the
conditioning of the problem: price, forward and strike are doubles, each known to
``ε ≈ 2.2e-16`` relative, and the implied vol moves by ``|Δvol| ≈ ε κ`` with the condition
number (:func:`implied_vol_condition`, in vol units)

    ``κ = (P + F |∂P/∂F| + K |∂P/∂K|) / vega = (P + DF F Φ(θ d1) + DF K Φ(θ d2)) / vega``.

**Vega is negligible** when ``vega < VEGA_NEGLIGIBLE_RATIO · (P + DF F Φ(θ d1) + DF K Φ(θ
d2))``, i.e. ``κ > 1e4`` (``VEGA_NEGLIGIBLE_RATIO = 1e-4``; vega per 1.00 of decimal vol, in
price units). Where it is not negligible the vol is within ``ε κ + 2e-14 vol < 3e-12`` of the
true one, one-minute expiries to years, deep in or out of the money: the 1e-10 contract with
a 30x margin. Negligible vega means an in-the-money option whose time value is a sliver of a
price computed from ``F`` and ``K`` (e.g. a one-minute put 4 standard deviations in the
money: ``κ ≈ 1e7``, so ``F`` rounded to a double moves its vol by ~2e-9), or a price that
underflows (normalised time value below 2.2e-308: status 1). The vol is still returned there
(status 0) and is as accurate as those inputs allow (``ε κ``). A criterion on the price alone
(``vega/P``) or on the normalised vega alone is not enough: both miss the in-the-money case.

References
----------
.. [1] P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015, 40-53 (normalised
   price, objective functions, Householder(3) iteration, initial guess of the fallback).
.. [2] S. G. Johnson, Faddeeva package (``scipy.special.erfcx``), the reference values of
   our ``erfcx`` table.
.. [3] A. S. Householder, "The Numerical Treatment of a Single Nonlinear Equation",
   McGraw-Hill, 1970 (the third-order Householder step).
.. [4] C. de Boor, "A Practical Guide to Splines", Springer, 1978 (bicubic tensor splines,
   via ``scipy.interpolate.RectBivariateSpline``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numba import njit, prange
from numpy.polynomial import chebyshev
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx as _scipy_erfcx
from scipy.special import ndtr

from pricing.black_scholes import (
    IV_ABOVE_UPPER_BOUND,
    IV_BAD_INPUT,
    IV_BELOW_INTRINSIC,
    IV_NO_CONVERGENCE,
    IV_OK,
    PARALLEL_MIN_SIZE,
    FloatOrArray,
    IVResult,
    _common_len_nb,
    _convex_rc_param_left_nb,
    _convex_rc_param_right_nb,
    _flatten,
    _householder_factor_nb,
    _rational_cubic_nb,
    _shaped,
    parse_right,
)

__all__ = [
    "CHAIN_BLOCK",
    "IV_ACCEPT_STEP",
    "VEGA_NEGLIGIBLE_RATIO",
    "erfcx_nb",
    "guess_table",
    "implied_vol_chain",
    "implied_vol_chain_1d_nb",
    "implied_vol_chain_1d_serial_nb",
    "implied_vol_condition",
    "implied_vols_from_quotes",
    "normalised_implied_vol_chain_nb",
]

VEGA_NEGLIGIBLE_RATIO: float = 1e-4
"""Vega (per 1.00 of vol, price units) is negligible below this fraction of
``P + DF F Φ(θ d1) + DF K Φ(θ d2)`` (condition number :func:`implied_vol_condition` above
1e4): there inputs rounded to doubles determine the vol only to ``2.2e-16 κ`` > 2.2e-12."""

IV_ACCEPT_STEP: float = 2e-4
"""A Householder(3) step ``|Δs| <= IV_ACCEPT_STEP · s`` is the last one (error left
``~(Δs/s)^4``, far below 1e-14 relative)."""

CHAIN_BLOCK: int = 256
"""Options per block of the phased kernel (scratch arrays stay in L1 cache)."""

_N_CHUNKS = 64  # prange work items (contiguous runs of blocks) of the parallel kernel

# fast-math flags: fused multiply-add, reciprocal and signed-zero freedom. Not "nnan"/"ninf":
# the NaN and infinity checks of the screening must keep working.
_FM = {"contract", "arcp", "nsz"}

_EPS = 2.220446049250313e-16
_TINY = 2.2250738585072014e-308
_HUGE = 1.7976931348623157e308
_SQRT_HUGE = 1.3407807929942596e154
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_PI_OVER_2 = math.sqrt(0.5 * math.pi)
_SQRT3 = math.sqrt(3.0)
_TWO_PI = 2.0 * math.pi
_TWO_PI_OVER_SQRT27 = 2.0 * math.pi / math.sqrt(27.0)
_PI_OVER_6 = math.pi / 6.0
_SMALL_T = 0.21
_SMALL_T_MIN_H = -37.5
_MAX_ITER = 100

# --------------------------------------------------------------------------------------
# erfcx: piecewise Chebyshev interpolant of scipy.special.erfcx in y = C/(C + u)
# --------------------------------------------------------------------------------------

_ERFCX_C = 4.0
_ERFCX_N = 100
_ERFCX_DEG = 8
_ERFCX_U_ASYM = 50.0
_ERFCX_K0 = int(_ERFCX_C / (_ERFCX_C + _ERFCX_U_ASYM) * _ERFCX_N)


def _build_erfcx_table() -> NDArray[np.float64]:
    """Monomial coefficients (in the local variable of each y-interval) of the interpolants."""
    stride = _ERFCX_DEG + 1
    table = np.full(_ERFCX_N * stride, np.nan)
    for k in range(_ERFCX_K0, _ERFCX_N):

        def f(v: NDArray[np.float64], k: int = k) -> NDArray[np.float64]:
            y = (k + 0.5 + 0.5 * v) / _ERFCX_N
            return _scipy_erfcx(_ERFCX_C / y - _ERFCX_C)

        cheb = chebyshev.chebinterpolate(f, _ERFCX_DEG)
        table[k * stride : (k + 1) * stride] = chebyshev.cheb2poly(cheb)
    table.flags.writeable = False
    return table


_ERFCX_TABLE = _build_erfcx_table()


@njit(cache=True, error_model="numpy", fastmath=_FM)
def erfcx_nb(u: float) -> float:
    """Scaled complementary error function ``erfcx(u) = e^{u²} erfc(u)`` for ``u >= 0``.

    A degree-8 polynomial in the local variable of one of 100 equal intervals of
    ``y = 4/(4+u)`` for ``u < 50`` (coefficients interpolate ``scipy.special.erfcx`` at
    Chebyshev nodes, built at import), else the asymptotic series
    ``1/(u√π) Σ_{n<=5} (-1)^n (2n-1)!!/(2u²)^n``. Relative error below 3e-15; about 4 ns.

    Parameters
    ----------
    u : float
        Argument, ``>= 0`` (negative arguments are not supported: use
        ``erfcx(-u) = 2 e^{u²} - erfcx(u)``).

    Returns
    -------
    float
        ``erfcx(u)``; NaN for NaN input.

    References
    ----------
    S. G. Johnson, Faddeeva package (``scipy.special.erfcx``); Abramowitz & Stegun 7.1.23
    (asymptotic series).
    """
    if u < _ERFCX_U_ASYM:
        y = _ERFCX_C / (_ERFCX_C + u)
        k = int(y * _ERFCX_N)
        if k > _ERFCX_N - 1:
            k = _ERFCX_N - 1
        v = (2.0 * _ERFCX_N) * y - (2 * k + 1)
        c = _ERFCX_TABLE
        o = k * (_ERFCX_DEG + 1)
        return c[o] + v * (
            c[o + 1]
            + v
            * (
                c[o + 2]
                + v
                * (
                    c[o + 3]
                    + v
                    * (c[o + 4] + v * (c[o + 5] + v * (c[o + 6] + v * (c[o + 7] + v * c[o + 8]))))
                )
            )
        )
    w = 0.5 / (u * u)
    return (_INV_SQRT_PI / u) * (1.0 - w * (1.0 - w * (3.0 - w * (15.0 - w * (105.0 - w * 945.0)))))


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _norm_cdf_fast_nb(z: float) -> float:
    """``Φ(z)`` from :func:`erfcx_nb` and one exponential."""
    if z <= 0.0:
        return 0.5 * erfcx_nb(-z * _INV_SQRT2) * math.exp(-0.5 * z * z)
    return 1.0 - 0.5 * erfcx_nb(z * _INV_SQRT2) * math.exp(-0.5 * z * z)


# Acklam's rational approximation of the inverse normal CDF (relative error 1.2e-9), used
# only inside initial guesses, which the Householder iteration refines anyway.
_A0, _A1, _A2 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
_A3, _A4, _A5 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
_B0, _B1, _B2 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
_B3, _B4 = 6.680131188771972e01, -1.328068155288572e01
_C0, _C1, _C2 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
_C3, _C4, _C5 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
_D0, _D1, _D2, _D3 = (
    7.784695709041462e-03,
    3.224671290700398e-01,
    2.445134137142996e00,
    3.754408661907416e00,
)
_P_LOW = 0.02425
_LOG_P_LOW = math.log(_P_LOW)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _acklam_tail_nb(q: float) -> float:
    return (((((_C0 * q + _C1) * q + _C2) * q + _C3) * q + _C4) * q + _C5) / (
        (((_D0 * q + _D1) * q + _D2) * q + _D3) * q + 1.0
    )


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _norm_ppf_fast_nb(p: float) -> float:
    """Acklam's ``Φ⁻¹(p)`` without refinement, ``0 < p < 1``."""
    if p < _P_LOW:
        return _acklam_tail_nb(math.sqrt(-2.0 * math.log(p)))
    if p <= 1.0 - _P_LOW:
        q = p - 0.5
        r = q * q
        return (
            (((((_A0 * r + _A1) * r + _A2) * r + _A3) * r + _A4) * r + _A5)
            * q
            / (((((_B0 * r + _B1) * r + _B2) * r + _B3) * r + _B4) * r + 1.0)
        )
    return -_acklam_tail_nb(math.sqrt(-2.0 * math.log1p(-p)))


# --------------------------------------------------------------------------------------
# Normalised Black price, vega and complement
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _b_vega_comp_nb(x: float, s: float, ex2: float) -> tuple[float, float, float]:
    """``(b(x, s), ∂b/∂s, b_max - b)`` for ``x <= 0``, ``ex2 = b_max = e^{x/2}``.

    ``b`` and its complement are each computed in the form that carries their precision:
    small ``t = s/2`` by the odd Taylor series in ``t`` (Jäckel 2015; 3, 4 or 7 terms for
    ``t² < 2.2e-5``, ``< 5.5e-4``, ``< 0.0441``, truncation below 2e-16 relative), otherwise
    ``b = E/2 [erfcx(q1) - erfcx(q2)]`` when ``q1 = -(h+t)/√2 >= 0`` and
    ``b_max - b = E/2 [erfcx(-q1) + erfcx(q2)]`` when ``q1 < 0``, ``E = e^{-(h²+t²)/2}``,
    ``q2 = (t-h)/√2``; the vega is ``E/√(2π)``.
    """
    if not s > 0.0:
        return 0.0, (_INV_SQRT_2PI if x == 0.0 else 0.0), ex2
    h = x / s
    t = 0.5 * s
    w = t * t
    e = math.exp(-0.5 * (h * h + w))
    vega = _INV_SQRT_2PI * e
    if t < _SMALL_T and h > _SMALL_T_MIN_H:
        # b = vega 2t Σ_k Y^{(2k+1)}(h) t^{2k}/(2k+1)!, Y = Φ/φ, Y^{(n+1)} = hY^{(n)} + nY^{(n-1)}
        y0 = _SQRT_PI_OVER_2 * erfcx_nb(-h * _INV_SQRT2)
        y1 = 1.0 + h * y0
        y2 = h * y1 + y0
        y3 = h * y2 + 2.0 * y1
        y4 = h * y3 + 3.0 * y2
        y5 = h * y4 + 4.0 * y3
        if w < 2.2e-5:
            total = y1 + w * (y3 * (1.0 / 6.0) + w * (y5 * (1.0 / 120.0)))
        else:
            y6 = h * y5 + 5.0 * y4
            y7 = h * y6 + 6.0 * y5
            if w < 5.5e-4:
                total = y1 + w * (
                    y3 * (1.0 / 6.0) + w * (y5 * (1.0 / 120.0) + w * (y7 * (1.0 / 5040.0)))
                )
            else:
                y8 = h * y7 + 7.0 * y6
                y9 = h * y8 + 8.0 * y7
                y10 = h * y9 + 9.0 * y8
                y11 = h * y10 + 10.0 * y9
                y12 = h * y11 + 11.0 * y10
                y13 = h * y12 + 12.0 * y11
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
        b = vega * (2.0 * t) * total
        if b < 0.0:
            b = 0.0
        return b, vega, ex2 - b
    q1 = -(h + t) * _INV_SQRT2
    q2 = (t - h) * _INV_SQRT2
    e2 = erfcx_nb(q2)
    if q1 >= 0.0:
        b = 0.5 * e * (erfcx_nb(q1) - e2)
        if b < 0.0:
            b = 0.0
        return b, vega, ex2 - b
    comp = 0.5 * e * (erfcx_nb(-q1) + e2)
    return ex2 - comp, vega, comp


# --------------------------------------------------------------------------------------
# Fallback: Jäckel (2015) four-branch guess + safeguarded Householder(3) iteration
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _lower_map_nb(x: float, s: float) -> tuple[float, float, float]:
    """Jäckel's lower map ``f = 2π/√27 |x| Φ(-z)³``, ``z = |x|/(√3 s)``, and its first two
    derivatives with respect to ``b``, written with ``erfcx`` (one exponential less)."""
    ax = -x
    z = ax / (_SQRT3 * s)
    y = z * z
    s2 = s * s
    ex = erfcx_nb(z * _INV_SQRT2)  # Φ(-z) = ex e^{-y/2} / 2
    big_phi = 0.5 * ex * math.exp(-0.5 * y)
    e8 = math.exp(0.125 * s2)
    fp = _TWO_PI * y * 0.25 * ex * ex * e8
    fpp = (
        _PI_OVER_6
        * y
        / (s2 * s)
        * (0.5 * ex)
        * (8.0 * _SQRT3 * s * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * (0.5 * ex * _SQRT_2PI))
        * math.exp(1.5 * y)
        * e8
        * e8
    )
    f = _TWO_PI_OVER_SQRT27 * ax * (big_phi * big_phi * big_phi)
    return f, fp, fpp


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _inverse_lower_map_nb(x: float, f: float) -> float:
    if abs(f) < _TINY:
        return 0.0
    lu = math.log(f / (_TWO_PI_OVER_SQRT27 * abs(x))) * (1.0 / 3.0)
    if lu < _LOG_P_LOW:
        q = _acklam_tail_nb(math.sqrt(-2.0 * lu))
    else:
        q = _norm_ppf_fast_nb(math.exp(lu))
    return abs(x / (_SQRT3 * q))


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _upper_map_nb(x: float, s: float) -> tuple[float, float, float]:
    f = _norm_cdf_fast_nb(-0.5 * s)
    if abs(x) < _TINY:
        return f, -0.5, 0.0
    w = (x / s) * (x / s)
    fp = -0.5 * math.exp(0.5 * w)
    fpp = _SQRT_PI_OVER_2 * math.exp(w + 0.125 * s * s) * w / s
    return f, fp, fpp


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _step_nb(
    beta: float,
    x: float,
    ex2: float,
    s: float,
    s_left: float,
    s_right: float,
    mode: int,
    aux: float,
) -> tuple[float, float, float, float, bool]:
    """One safeguarded Householder(3) step of Jäckel's iteration.

    ``mode`` 0: objective ``b - beta``; 1: ``1/ln b - 1/ln beta`` (``aux = ln beta``);
    2: ``ln((b_max - beta)/(b_max - b))`` (``aux = b_max - beta``). Returns
    ``(s_new, Δs, s_left, s_right, householder)`` with the bracket tightened by the
    evaluation at ``s``; ``householder`` is False when the step was a bisection.
    """
    b, bp, bmax_minus_b = _b_vega_comp_nb(x, s, ex2)
    if mode == 2:
        above = bmax_minus_b < aux
        below = bmax_minus_b > aux
    else:
        above = b > beta
        below = b < beta
    if above and s < s_right:
        s_right = s
    elif below and s > s_left:
        s_left = s
    inv_s = 1.0 / s
    h = x * inv_s
    h_s = h * inv_s
    halley_b = h * h_s - 0.25 * s  # b''/b'
    hh3_b = halley_b * halley_b - 3.0 * h_s * h_s - 0.25  # b'''/b'
    mid = 0.5 * (s_left + s_right) if s_right < _HUGE else 2.0 * s_left
    householder = True
    if mode == 1:
        if b <= 0.0 or bp <= 0.0:
            ds = mid - s
            householder = False
        else:
            ln_b = math.log(b)
            inv_ln_b = 1.0 / ln_b
            bpob = bp / b
            newton = (aux - ln_b) * ln_b / (aux * bpob)
            c1 = 1.0 + 2.0 * inv_ln_b
            halley = halley_b - bpob * c1
            hh3 = (
                hh3_b
                + 2.0 * bpob * bpob * (1.0 + 3.0 * inv_ln_b * (1.0 + inv_ln_b))
                - 3.0 * halley_b * bpob * c1
            )
            ds = newton * _householder_factor_nb(newton, halley, hh3)
    elif mode == 2:
        if bmax_minus_b <= 0.0 or bp <= _TINY:
            ds = mid - s
            householder = False
        else:
            g = math.log(aux / bmax_minus_b)
            gp = bp / bmax_minus_b
            newton = -g / gp
            halley = halley_b + gp
            hh3 = hh3_b + gp * (2.0 * gp + 3.0 * halley_b)
            ds = newton * _householder_factor_nb(newton, halley, hh3)
    elif bp <= 0.0:
        ds = mid - s
        householder = False
    else:
        newton = (beta - b) / bp
        ds = newton * _householder_factor_nb(newton, halley_b, hh3_b)
    ds = max(-0.5 * s, ds)
    return s + ds, ds, s_left, s_right, householder


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _iv_otm_jaeckel_nb(beta: float, x: float, tol: float) -> tuple[float, int]:
    """Jäckel (2015) solve of ``b(x, s) = beta`` for ``x <= 0``: ``(s, status)``.

    The four-branch rational-cubic initial guess and the bracketed Householder(3) iteration
    with bisection fallback of :func:`pricing.black_scholes.normalised_implied_vol_otm_nb`,
    evaluated with the fast special functions of this module; stops after a Householder
    step ``|Δs| <= tol s`` or a bisection bracket narrower than ``eps s``.
    """
    if not (x <= 0.0 and beta == beta):
        return np.nan, IV_BAD_INPUT
    if not beta >= _TINY:
        return np.nan, IV_BELOW_INTRINSIC
    ex2 = math.exp(0.5 * x)
    b_max = ex2
    if beta >= b_max:
        return np.nan, IV_ABOVE_UPPER_BOUND
    sqrt_ax = math.sqrt(-x)
    s_c = _SQRT2 * sqrt_ax
    b_c = 0.5 * ex2 * (1.0 - erfcx_nb(sqrt_ax))  # b(x, s_c) in closed form
    v_c = _INV_SQRT_2PI * ex2
    s_left = _TINY
    s_right = _HUGE
    mode = 0
    if beta < b_c:
        s_l = s_c - b_c / v_c
        b_l, v_l, _ = _b_vega_comp_nb(x, s_l, ex2)
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
            r_lm = _convex_rc_param_right_nb(b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, 0.0, False)
            s = _rational_cubic_nb(beta, b_l, b_c, s_l, s_c, 1.0 / v_l, 1.0 / v_c, r_lm)
            s_left = s_l
            s_right = s_c
    else:
        s_h = s_c + (b_max - b_c) / v_c
        b_h, v_h, _ = _b_vega_comp_nb(x, s_h, ex2)
        if beta <= b_h:
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
            s = -2.0 * _norm_ppf_fast_nb(f)
            s_left = s_h
            if beta > 0.5 * b_max:
                mode = 2

    aux = math.log(beta) if mode == 1 else (b_max - beta if mode == 2 else 0.0)
    ds = 0.0
    reversals = 0
    for it in range(_MAX_ITER):
        if it > 0 and (reversals >= 3 or not (s > s_left and s < s_right)):
            s = 0.5 * (s_left + s_right) if s_right < _HUGE else 2.0 * s_left
            if s_right - s_left <= _EPS * s:
                return s, IV_OK
            reversals = 0
            ds = 0.0
        ds_prev = ds
        s, ds, s_left, s_right, householder = _step_nb(beta, x, ex2, s, s_left, s_right, mode, aux)
        if ds * ds_prev < 0.0:
            reversals += 1
        if householder and abs(ds) <= tol * s:
            return s, IV_OK
    return np.nan, IV_NO_CONVERGENCE


# --------------------------------------------------------------------------------------
# Initial-guess table: ln(s/c) as a bicubic spline in (logit c, ln|x|)
# --------------------------------------------------------------------------------------

_G_D = 0.5
_G_XI0 = -28.0  # logit(c) >= -28: c >= 6.9e-13
_G_LAM0 = -42.0  # ln|x| >= -42 (clamped below): |x| >= 5.7e-19
_G_NXI = math.ceil((math.log(9.0) - _G_XI0) / _G_D) + 1  # up to c = 0.9
_G_NLAM = math.ceil((math.log(8.0) - _G_LAM0) / _G_D) + 1  # up to |x| = 8
_G_XI1 = _G_XI0 + _G_D * (_G_NXI - 1)
_G_LAM1 = _G_LAM0 + _G_D * (_G_NLAM - 1)


@njit(cache=True, error_model="numpy")
def _solve_nodes_nb(c: NDArray[np.float64], a: NDArray[np.float64]) -> NDArray[np.float64]:
    n = c.size
    out = np.empty(n)
    for i in range(n):
        beta = c[i] * math.exp(-0.5 * a[i])
        s, st = _iv_otm_jaeckel_nb(beta, -a[i], 1e-6)
        out[i] = s if st == IV_OK else np.nan
    return out


def _build_guess_table() -> NDArray[np.float64]:
    from scipy.interpolate import RectBivariateSpline

    d = _G_D
    xi = _G_XI0 + d * np.arange(_G_NXI)
    lam = _G_LAM0 + d * np.arange(_G_NLAM)
    xi_grid, lam_grid = np.meshgrid(xi, lam, indexing="ij")
    c = 1.0 / (1.0 + np.exp(-xi_grid))
    a = np.exp(lam_grid)
    s = _solve_nodes_nb(c.ravel(), a.ravel()).reshape(c.shape)
    if not np.all(np.isfinite(s)):  # pragma: no cover - the Jäckel solver covers the grid
        raise RuntimeError("implied-vol guess table: a node did not solve")
    spline = RectBivariateSpline(xi, lam, np.log(s / c), kx=3, ky=3, s=0)
    # each cell of the spline is one bicubic polynomial: sample it at 4 x 4 points and
    # solve for its monomial coefficients in the local cell coordinates (u, v) in [0, 1]
    nodes = np.array([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0])
    xf = (_G_XI0 + d * (np.arange(_G_NXI - 1)[:, None] + nodes[None, :])).ravel()
    lf = (_G_LAM0 + d * (np.arange(_G_NLAM - 1)[:, None] + nodes[None, :])).ravel()
    values = spline(xf, lf, grid=True).reshape(_G_NXI - 1, 4, _G_NLAM - 1, 4)
    vinv = np.linalg.inv(np.vander(nodes, 4, increasing=True))
    coef = np.einsum("pk,ikjl,ql->ijpq", vinv, values, vinv)
    table = np.ascontiguousarray(coef, dtype=np.float64).ravel()
    table.flags.writeable = False
    return table


_GUESS_TABLE: NDArray[np.float64] | None = None


def guess_table() -> NDArray[np.float64]:
    """The initial-guess table of the chain kernels (built at the first call, ~20 ms).

    Returns
    -------
    ndarray of float64, shape (58 * 88 * 16,)
        Read-only monomial coefficients ``C[i, j, p, q]`` (C order) of the bicubic spline
        ``ln(s/c) = Σ C[i, j, p, q] u^p v^q`` on cell ``(i, j)`` of the 0.5 x 0.5 grid in
        ``(logit c, ln|x|)`` starting at ``(-28, -42)``; pass it to the ``*_nb`` kernels.
    """
    global _GUESS_TABLE
    if _GUESS_TABLE is None:
        _GUESS_TABLE = _build_guess_table()
    return _GUESS_TABLE


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _table_log_s_over_c_nb(xi: float, lam: float, table: NDArray[np.float64]) -> float:
    fx = (xi - _G_XI0) * (1.0 / _G_D)
    i = int(fx)
    u = fx - i
    fy = (lam - _G_LAM0) * (1.0 / _G_D)
    j = int(fy)
    v = fy - j
    o = (i * (_G_NLAM - 1) + j) * 16
    c = table
    p0 = c[o] + v * (c[o + 1] + v * (c[o + 2] + v * c[o + 3]))
    p1 = c[o + 4] + v * (c[o + 5] + v * (c[o + 6] + v * c[o + 7]))
    p2 = c[o + 8] + v * (c[o + 9] + v * (c[o + 10] + v * c[o + 11]))
    p3 = c[o + 12] + v * (c[o + 13] + v * (c[o + 14] + v * c[o + 15]))
    return p0 + u * (p1 + u * (p2 + u * p3))


# --------------------------------------------------------------------------------------
# Phased solver over a block of screened, normalised options
# --------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _solve_block_nb(
    beta: NDArray[np.float64],
    x: NDArray[np.float64],
    ex2: NDArray[np.float64],
    m: int,
    table: NDArray[np.float64],
    s_out: NDArray[np.float64],
    st_out: NDArray[np.int8],
    s_left: NDArray[np.float64],
    s_right: NDArray[np.float64],
    aux: NDArray[np.float64],
    mode: NDArray[np.int8],
    active: NDArray[np.int64],
    fallback: NDArray[np.int64],
) -> None:
    """Solve ``b(x[j], s) = beta[j]`` for ``j < m`` (``TINY <= beta < ex2 = e^{x/2}``).

    Phases (each a short loop over the block, so that the CPU overlaps independent
    options): table guess; first Householder(3) step; second step for those not accepted;
    the Jäckel iteration for what is left and for inputs outside the table.
    """
    n_act = 0
    n_fb = 0
    for j in range(m):
        bj = beta[j]
        a = -x[j]
        c = bj / ex2[j]
        xi = math.log(c / (1.0 - c))
        lam = math.log(a) if a > 0.0 else _G_LAM0
        if lam < _G_LAM0:
            lam = _G_LAM0
        if not (xi >= _G_XI0 and xi < _G_XI1 and lam < _G_LAM1):
            fallback[n_fb] = j
            n_fb += 1
            continue
        s = c * math.exp(_table_log_s_over_c_nb(xi, lam, table))
        s_out[j] = s
        s_left[j] = _TINY
        s_right[j] = _HUGE
        if s * s < 2.0 * a:  # below the inflection point s_c = sqrt(2|x|)
            mode[j] = 1
            aux[j] = math.log(bj)
        elif c > 0.5:
            mode[j] = 2
            aux[j] = ex2[j] - bj
        else:
            mode[j] = 0
            aux[j] = 0.0
        active[n_act] = j
        n_act += 1
    for it in range(2):
        n_next = 0
        for jj in range(n_act):
            j = active[jj]
            s = s_out[j]
            if it > 0 and not (s > s_left[j] and s < s_right[j]):
                fallback[n_fb] = j
                n_fb += 1
                continue
            s_new, ds, sl, sr, householder = _step_nb(
                beta[j], x[j], ex2[j], s, s_left[j], s_right[j], mode[j], aux[j]
            )
            s_out[j] = s_new
            s_left[j] = sl
            s_right[j] = sr
            if householder and abs(ds) <= IV_ACCEPT_STEP * s_new:
                st_out[j] = IV_OK
            else:
                active[n_next] = j
                n_next += 1
        n_act = n_next
    for jj in range(n_act):
        fallback[n_fb] = active[jj]
        n_fb += 1
    for jj in range(n_fb):
        j = fallback[jj]
        s, st = _iv_otm_jaeckel_nb(beta[j], x[j], IV_ACCEPT_STEP)
        s_out[j] = s
        st_out[j] = st


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _chain_range_nb(
    price: NDArray[np.float64],
    und: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    cp: NDArray[np.int8],
    is_spot: bool,
    table: NDArray[np.float64],
    lo: int,
    hi: int,
    vol: NDArray[np.float64],
    status: NDArray[np.int8],
) -> None:
    """Implied vols of elements ``lo <= i < hi`` (blocks of :data:`CHAIN_BLOCK`)."""
    i0 = int(price.size > 1)
    i1 = int(und.size > 1)
    i2 = int(strike.size > 1)
    i3 = int(tte.size > 1)
    i4 = int(rate.size > 1)
    i5 = int(div_yield.size > 1)
    i6 = int(cp.size > 1)
    blk = CHAIN_BLOCK
    gi = np.empty(blk, np.int64)
    beta_b = np.empty(blk)
    x_b = np.empty(blk)
    sqrt_t = np.empty(blk)
    ex2_b = np.empty(blk)
    s_b = np.empty(blk)
    st_b = np.empty(blk, np.int8)
    sl_b = np.empty(blk)
    sr_b = np.empty(blk)
    aux_b = np.empty(blk)
    mode_b = np.empty(blk, np.int8)
    act_b = np.empty(blk, np.int64)
    fb_b = np.empty(blk, np.int64)
    for start in range(lo, hi, blk):
        stop = min(hi, start + blk)
        m = 0
        for i in range(start, stop):
            p = price[i * i0]
            u = und[i * i1]
            k = strike[i * i2]
            t = tte[i * i3]
            r = rate[i * i4]
            q = div_yield[i * i5]
            c = cp[i * i6]
            vol[i] = np.nan
            if not (
                p > 0.0
                and u > 0.0
                and k > 0.0
                and t > 0.0
                and math.isfinite(p)
                and math.isfinite(u)
                and math.isfinite(k)
                and math.isfinite(t)
                and math.isfinite(r)
                and math.isfinite(q)
                and (c == 1 or c == -1)
            ):
                status[i] = IV_BAD_INPUT
                continue
            k_pv = k * math.exp(-r * t)  # K e^{-rT} = DF K
            if is_spot:
                fwd_pv = u * math.exp(-q * t)  # S e^{-qT} = DF F
                xx = math.log(u / k) + (r - q) * t
            else:
                fwd_pv = u * math.exp(-r * t)  # DF F
                xx = math.log(u / k)
            if p >= (fwd_pv if c == 1 else k_pv):
                status[i] = IV_ABOVE_UPPER_BOUND
                continue
            time_value = p - max(c * (fwd_pv - k_pv), 0.0)
            if not time_value > 0.0:
                status[i] = IV_BELOW_INTRINSIC
                continue
            bt = time_value / (math.sqrt(fwd_pv) * math.sqrt(k_pv))
            xn = -abs(xx)
            if not xn == xn:  # overflow in the forward (inf/inf)
                status[i] = IV_BAD_INPUT
                continue
            if not bt >= _TINY:  # time value indistinguishable from zero
                status[i] = IV_BELOW_INTRINSIC
                continue
            e = math.exp(0.5 * xn)
            if bt >= e:
                status[i] = IV_ABOVE_UPPER_BOUND
                continue
            gi[m] = i
            beta_b[m] = bt
            x_b[m] = xn
            sqrt_t[m] = math.sqrt(t)
            ex2_b[m] = e
            m += 1
        _solve_block_nb(
            beta_b, x_b, ex2_b, m, table, s_b, st_b, sl_b, sr_b, aux_b, mode_b, act_b, fb_b
        )
        for j in range(m):
            i = gi[j]
            st = st_b[j]
            status[i] = st
            if st == IV_OK:
                vol[i] = s_b[j] / sqrt_t[j]


@njit(cache=True, error_model="numpy", parallel=True)
def implied_vol_chain_1d_nb(
    price: NDArray[np.float64],
    forward_or_spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    cp: NDArray[np.int8],
    is_spot: bool,
    table: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Implied volatilities of 1-d arrays (length ``n`` or 1, broadcast), multi-threaded.

    ``prange`` over up to 64 contiguous chunks of blocks of :data:`CHAIN_BLOCK`
    options; every option is computed independently, so the result does not depend on the
    thread count and equals :func:`implied_vol_chain_1d_serial_nb` bit for bit.

    Parameters
    ----------
    price : ndarray of float64, shape (n,) or (1,)
        Option prices (> 0).
    forward_or_spot : ndarray of float64, shape (n,) or (1,)
        Forward ``F`` to the expiry (``is_spot=False``) or spot ``S`` (``is_spot=True``).
    strike, tte, rate, div_yield : ndarray of float64, shape (n,) or (1,)
        Strike, years to expiry (ACT/365), continuous rate and dividend yield (decimals);
        ``div_yield`` is unused when ``is_spot`` is False.
    cp : ndarray of int8, shape (n,) or (1,)
        +1 call, -1 put (anything else: status :data:`~pricing.IV_BAD_INPUT`).
    is_spot : bool
        Whether ``forward_or_spot`` is the spot.
    table : ndarray of float64
        :func:`guess_table`.

    Returns
    -------
    vol : ndarray of float64, shape (n,)
        Implied vols (decimal, annualised), NaN where ``status != 0``.
    status : ndarray of int8, shape (n,)
        ``IV_*`` reason codes.

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb(
        (
            price.size,
            forward_or_spot.size,
            strike.size,
            tte.size,
            rate.size,
            div_yield.size,
            cp.size,
        )
    )
    vol = np.empty(n, dtype=np.float64)
    status = np.empty(n, dtype=np.int8)
    n_blocks = (n + CHAIN_BLOCK - 1) // CHAIN_BLOCK
    n_chunks = min(n_blocks, _N_CHUNKS)
    if n_chunks == 0:
        return vol, status
    per = (n_blocks + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        lo = ch * per * CHAIN_BLOCK
        hi = min(n, (ch + 1) * per * CHAIN_BLOCK)
        if lo < hi:
            _chain_range_nb(
                price,
                forward_or_spot,
                strike,
                tte,
                rate,
                div_yield,
                cp,
                is_spot,
                table,
                lo,
                hi,
                vol,
                status,
            )
    return vol, status


@njit(cache=True, error_model="numpy")
def implied_vol_chain_1d_serial_nb(
    price: NDArray[np.float64],
    forward_or_spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    cp: NDArray[np.int8],
    is_spot: bool,
    table: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Single-threaded twin of :func:`implied_vol_chain_1d_nb` (same arguments and results).

    Raises
    ------
    ValueError
        If the lengths are neither ``n`` nor 1.
    """
    n = _common_len_nb(
        (
            price.size,
            forward_or_spot.size,
            strike.size,
            tte.size,
            rate.size,
            div_yield.size,
            cp.size,
        )
    )
    vol = np.empty(n, dtype=np.float64)
    status = np.empty(n, dtype=np.int8)
    _chain_range_nb(
        price,
        forward_or_spot,
        strike,
        tte,
        rate,
        div_yield,
        cp,
        is_spot,
        table,
        0,
        n,
        vol,
        status,
    )
    return vol, status


@njit(cache=True, error_model="numpy")
def normalised_implied_vol_chain_nb(
    beta: NDArray[np.float64], x: NDArray[np.float64], table: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Total standard deviations ``s`` solving ``b(x, s) = beta`` for arrays (normalised form).

    Parameters
    ----------
    beta : ndarray of float64, shape (n,)
        Normalised out-of-the-money prices (undiscounted time value over ``sqrt(F K)``).
    x : ndarray of float64, shape (n,)
        ``-|ln(F/K)|`` (``<= 0``).
    table : ndarray of float64
        :func:`guess_table`.

    Returns
    -------
    s : ndarray of float64, shape (n,)
        ``vol sqrt(tte)``, NaN where ``status != 0``.
    status : ndarray of int8, shape (n,)
        :data:`~pricing.IV_OK`; :data:`~pricing.IV_BELOW_INTRINSIC` for ``beta < 2.2e-308``;
        :data:`~pricing.IV_ABOVE_UPPER_BOUND` for ``beta >= e^{x/2}``;
        :data:`~pricing.IV_BAD_INPUT` for NaN or ``x > 0``.

    Raises
    ------
    ValueError
        If ``beta`` and ``x`` differ in length.
    """
    n = beta.size
    if x.size != n:
        raise ValueError("beta and x must have the same length")
    s_out = np.full(n, np.nan)
    st_out = np.empty(n, np.int8)
    idx = np.empty(n, np.int64)
    b_c = np.empty(n)
    x_c = np.empty(n)
    e_c = np.empty(n)
    m = 0
    for i in range(n):
        bi = beta[i]
        xi = x[i]
        if not (xi <= 0.0 and bi == bi):
            st_out[i] = IV_BAD_INPUT
        elif not bi >= _TINY:
            st_out[i] = IV_BELOW_INTRINSIC
        elif bi >= math.exp(0.5 * xi):
            st_out[i] = IV_ABOVE_UPPER_BOUND
        else:
            idx[m] = i
            b_c[m] = bi
            x_c[m] = xi
            e_c[m] = math.exp(0.5 * xi)
            m += 1
    s_c = np.empty(m)
    st_c = np.empty(m, np.int8)
    _solve_block_nb(
        b_c[:m],
        x_c[:m],
        e_c[:m],
        m,
        table,
        s_c,
        st_c,
        np.empty(m),
        np.empty(m),
        np.empty(m),
        np.empty(m, np.int8),
        np.empty(m, np.int64),
        np.empty(m, np.int64),
    )
    for j in range(m):
        i = idx[j]
        st_out[i] = st_c[j]
        if st_c[j] == IV_OK:
            s_out[i] = s_c[j]
    return s_out, st_out


# --------------------------------------------------------------------------------------
# NumPy / pandas API
# --------------------------------------------------------------------------------------


def _rights_as_codes(right: str | ArrayLike) -> NDArray[np.int8]:
    """Rights as int8 ±1: strings through :func:`parse_right`, integer flags checked."""
    if isinstance(right, str):
        return parse_right(right)
    arr = np.asarray(right)
    if arr.dtype.kind in "iu":
        bad = (arr != 1) & (arr != -1)
        if bad.any():
            pos = np.argwhere(bad)[0]
            raise ValueError(
                f"invalid option right {arr[tuple(pos)].item()!r} at index "
                f"{tuple(int(p) for p in pos)}:"
                " integer rights must be +1 (call) or -1 (put)"
            )
        return arr.astype(np.int8, copy=False)
    return parse_right(arr)


def implied_vol_chain(
    price: ArrayLike,
    forward_or_spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    right: str | ArrayLike,
    *,
    underlying: Literal["forward", "spot"] = "forward",
    return_status: bool = True,
    parallel: bool | None = None,
) -> IVResult | FloatOrArray:
    """Implied volatilities of a whole chain in one compiled call, with reason codes.

    Black-76 on the forward (``underlying="forward"``, the default: ``price = DF[θ(F Φ(θd1)
    - K Φ(θd2))]``, ``DF = e^{-r tte}``) or Black-Scholes-Merton on the spot
    (``underlying="spot"``: ``F = S e^{(r-q) tte}``). The method (table guess, one or two
    Householder(3) steps, Jäckel fallback) is described in the module docstring.

    Parameters
    ----------
    price : array_like of float
        Option prices (e.g. quote mids) in the units of ``forward_or_spot`` and ``strike``.
    forward_or_spot : array_like of float
        Forward to the option's expiry (``underlying="forward"``) or spot.
    strike : array_like of float
        Strikes (> 0).
    tte : array_like of float
        Years to expiry, ACT/365 (one minute = 1/525600); must be > 0.
    rate : array_like of float
        Continuously compounded risk-free rate to expiry (decimal): the discount factor is
        ``e^{-rate tte}``.
    div_yield : array_like of float
        Continuous dividend yield (decimal) for ``underlying="spot"``; must be 0 for
        ``underlying="forward"`` (the forward already carries it).
    right : str or array_like
        ``'C'``/``'P'`` (``'call'``/``'put'``, any case) or integer flags ``+1``/``-1``.
    underlying : {"forward", "spot"}
        What ``forward_or_spot`` is.
    return_status : bool, default True
        Return :class:`~pricing.IVResult` ``(vol, status)``; otherwise only ``vol``.
    parallel : bool, optional
        Multi-threaded kernel (``prange``, ``numba.get_num_threads()`` threads). Default:
        when the broadcast size is at least :data:`~pricing.black_scholes.PARALLEL_MIN_SIZE`
        (20,000). Results are identical either way.

    All array arguments broadcast together (NumPy rules).

    Returns
    -------
    IVResult or ndarray of float64
        ``vol``: implied volatility (decimal, annualised, ACT/365) with the broadcast shape,
        NaN where ``status != 0``; ``status`` (int8): :data:`~pricing.IV_OK` 0,
        :data:`~pricing.IV_BELOW_INTRINSIC` 1 (price at or below ``DF max(θ(F-K), 0)``),
        :data:`~pricing.IV_ABOVE_UPPER_BOUND` 2 (price at or above ``DF F`` for a call,
        ``DF K`` for a put), :data:`~pricing.IV_BAD_INPUT` 3 (non-finite input, price,
        forward/spot or strike ``<= 0``, ``tte <= 0``), :data:`~pricing.IV_NO_CONVERGENCE`
        4. Numpy scalars for all-scalar input.

    Raises
    ------
    ValueError
        Unknown ``underlying``; non-zero ``div_yield`` with ``underlying="forward"`` (the
        message gives the count and the first index); an unrecognised right (named, with its
        index for integer flags); shapes that do not broadcast.

    Notes
    -----
    Accuracy: ``|vol - true vol| <= 1e-10`` (observed < 3e-12) wherever vega is not
    negligible (condition number :func:`implied_vol_condition` ``<= 1e4``), from one-minute
    to multi-year ``tte``, deep in and out of the money; elsewhere the error is about
    ``2.2e-16 κ``, the uncertainty that inputs rounded to doubles leave in the vol (see the
    module docstring). Speed: 7-9 million options per second per thread, 13-16 million on
    two threads (``python benchmarks/bench_implied_vol.py``).

    References
    ----------
    P. Jäckel, "Let's Be Rational", Wilmott Magazine, January 2015, 40-53; F. Black, "The
    pricing of commodity contracts", J. Financial Economics 3, 1976.
    """
    if underlying not in ("forward", "spot"):
        raise ValueError(f"underlying must be 'forward' or 'spot', got {underlying!r}")
    floats = [
        np.asarray(a, dtype=np.float64)
        for a in (price, forward_or_spot, strike, tte, rate, div_yield)
    ]
    if underlying == "forward":
        nonzero = floats[5] != 0.0
        if nonzero.any():
            first = tuple(int(p) for p in np.argwhere(nonzero)[0]) if nonzero.ndim else ()
            raise ValueError(
                "div_yield must be 0 when underlying='forward' (the forward already includes "
                f"the dividend yield): {int(nonzero.sum())} non-zero value(s), first at index "
                f"{first}"
            )
    flat, shape = _flatten([*floats, _rights_as_codes(right)])
    n = math.prod(shape)
    use_parallel = n >= PARALLEL_MIN_SIZE if parallel is None else parallel
    kernel = implied_vol_chain_1d_nb if use_parallel else implied_vol_chain_1d_serial_nb
    vol, status = kernel(*flat, underlying == "spot", guess_table())
    if not return_status:
        return _shaped(vol, shape)
    return IVResult(_shaped(vol, shape), _shaped(status, shape))


def implied_vols_from_quotes(
    quotes: pd.DataFrame,
    *,
    sides: Sequence[Literal["bid", "ask", "mid"]] = ("mid",),
    forward: str = "forward",
    tte: str = "tte",
    rate: float | str = 0.0,
    strike: str = "strike",
    right: str = "right",
    parallel: bool | None = None,
) -> pd.DataFrame:
    """Implied vols of the bid, ask and/or mid of a quotes table (one row per option).

    Works on any frame with one row per option and the named columns, e.g.
    ``ChainSnapshot.with_implied_vols()`` (which has ``forward`` and ``tte``); pricing does
    not import ``data_feeds``.

    Parameters
    ----------
    quotes : pandas.DataFrame
        Columns ``strike``, ``right`` ('C'/'P'), the forward and ``tte`` (years ACT/365) of
        the row's expiry, and ``bid``/``ask`` and/or ``mid`` (per-unit prices).
    sides : sequence of {"bid", "ask", "mid"}
        Which prices to invert; ``mid`` uses the ``mid`` column if present, else
        ``(bid + ask)/2``.
    forward, tte, strike, right : str
        Column names.
    rate : float or str
        Continuously compounded rate (decimal): a number, or the name of a column.
    parallel : bool, optional
        See :func:`implied_vol_chain`.

    Returns
    -------
    pandas.DataFrame
        Same index as ``quotes``; for each side ``implied_vol_<side>`` (float64, NaN unless
        the status is 0) and ``iv_status_<side>`` (int8 ``IV_*`` codes; a zero bid is
        status 3, bad input).

    Raises
    ------
    KeyError
        A needed column is missing (the message lists the frame's columns).
    ValueError
        An unknown side, or a bad right (see :func:`implied_vol_chain`).
    """
    unknown = [s for s in sides if s not in ("bid", "ask", "mid")]
    if unknown:
        raise ValueError(f"sides must be among 'bid', 'ask', 'mid', got {unknown}")
    needed = [strike, right, forward, tte]
    if isinstance(rate, str):
        needed.append(rate)
    for side in sides:
        if side == "mid" and "mid" not in quotes.columns:
            needed += ["bid", "ask"]
        else:
            needed.append(side)
    missing = sorted({c for c in needed if c not in quotes.columns})
    if missing:
        raise KeyError(f"quotes frame lacks column(s) {missing}; it has {list(quotes.columns)}")
    r = quotes[rate].to_numpy(dtype=np.float64) if isinstance(rate, str) else float(rate)
    args = (
        quotes[forward].to_numpy(dtype=np.float64),
        quotes[strike].to_numpy(dtype=np.float64),
        quotes[tte].to_numpy(dtype=np.float64),
        r,
        0.0,
        quotes[right].to_numpy(),
    )
    out = {}
    for side in sides:
        if side == "mid" and "mid" not in quotes.columns:
            px = 0.5 * (quotes["bid"].to_numpy(np.float64) + quotes["ask"].to_numpy(np.float64))
        else:
            px = quotes[side].to_numpy(dtype=np.float64)
        res = implied_vol_chain(px, *args, parallel=parallel)
        assert isinstance(res, IVResult)
        out[f"implied_vol_{side}"] = np.asarray(res.vol, dtype=np.float64)
        out[f"iv_status_{side}"] = np.asarray(res.status, dtype=np.int8)
    return pd.DataFrame(out, index=quotes.index)


def implied_vol_condition(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    vol: ArrayLike,
    right: str | ArrayLike,
) -> FloatOrArray:
    """Condition number ``κ`` of the implied vol: ``|Δvol| ≈ ε κ`` for relative input errors ε.

    ``κ = (P + DF F Φ(θ d1) + DF K Φ(θ d2)) / vega`` (Black-76, ``DF = e^{-rate tte}``,
    ``d1 = ln(F/K)/s + s/2``, ``s = vol sqrt(tte)``, ``vega = DF F φ(d1) sqrt(tte)``): the sum
    of the price's sensitivities to relative changes of the price, forward and strike,
    divided by vega. Inputs that are doubles (``ε = 2.2e-16``) fix the implied vol to about
    ``ε κ``; vega is negligible when ``κ > 1 / VEGA_NEGLIGIBLE_RATIO = 1e4``.

    Parameters
    ----------
    price : array_like of float
        Option price (per unit, the units of ``forward``).
    forward, strike : array_like of float
        Forward to expiry and strike (> 0).
    tte : array_like of float
        Years to expiry, ACT/365 (> 0).
    rate : array_like of float
        Continuously compounded rate (decimal).
    vol : array_like of float
        Volatility (decimal, > 0), e.g. the implied vol.
    right : str or array_like
        ``'C'``/``'P'`` (any case, ``'call'``/``'put'``) or ``+1``/``-1``.

    Returns
    -------
    ndarray of float64 or numpy.float64
        ``κ`` in vol units (decimal vol per unit relative error), broadcast shape; ``inf``
        where vega underflows, NaN for invalid input.

    Raises
    ------
    ValueError
        A bad right or shapes that do not broadcast.
    """
    theta = _rights_as_codes(right).astype(np.float64)
    p, f, k, t, r, v = (
        np.asarray(a, dtype=np.float64) for a in (price, forward, strike, tte, rate, vol)
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = v * np.sqrt(t)
        d1 = np.log(f / k) / s + 0.5 * s
        df = np.exp(-r * t)
        vega = df * f * np.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI * np.sqrt(t)
        sens = df * (f * ndtr(theta * d1) + k * ndtr(theta * (d1 - s)))
        kappa = (p + sens) / vega
    return kappa[()] if np.ndim(kappa) == 0 else kappa
