"""Merton (1976) jump-diffusion: closed-form series in numba, and QuantLib references.

Model (risk-neutral)::

    dS_t / S_{t-} = (r - q - lambda k) dt + vol dW_t + (J - 1) dN_t,
    ln J ~ N(jump_mean, jump_vol^2),   k = E[J - 1] = exp(jump_mean + jump_vol^2/2) - 1

with ``N`` a Poisson process of intensity ``lambda = jump_intensity`` (jumps per year).
Conditional on ``n`` jumps by ``T`` the log-price is Gaussian, so (Merton 1976, eq. (16))::

    price = DF sum_{n>=0} P(N_T = n) Black(F_n, K, s_n, right)
    P(N_T = n) = e^{-lambda T} (lambda T)^n / n!
    F_n = F exp(-lambda k T + n m),   m = jump_mean + jump_vol^2/2,   F = S e^{(r-q)T}
    s_n^2 = vol^2 T + n jump_vol^2,   DF = e^{-rT}

which is the same sum as QuantLib's ``JumpDiffusionEngine`` (Haug 2007, 6.9.1) written with
``lambda' = lambda (1 + k)`` Poisson weights and per-term rates ``r_n = r - lambda k + n m/T``.

Truncation (adaptive, per option): terms are added from ``n = 0`` until ``n`` exceeds the
Poisson mode and a bound on the whole remaining tail is below ``tol`` times the partial sum
(a lower bound of the price, all terms being non-negative). Bounds: a call's term is at most
``P(N_T = n) F_n`` and a put's at most ``P(N_T = n) K``; the ratios of consecutive bounds are
``lambda' T/(n+1)`` and ``lambda T/(n+1)``, so past the mode the tail is below the next bound
divided by ``1 - ratio`` (a geometric series). Default ``tol = 1e-15``: the truncation error
is below 1e-15 of the price. Weights are computed in logs (``lgamma``), so ``lambda T`` in the
hundreds does not underflow ``e^{-lambda T}``.

References
----------
.. [1] R. C. Merton, "Option pricing when underlying stock returns are discontinuous",
   Journal of Financial Economics 3, 1976, 125-144.
.. [2] E. G. Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed., 2007, 6.9.1.
.. [3] QuantLib 1.44: ``Merton76Process``; ``JumpDiffusionEngine``
   (``ql/pricingengines/vanilla/jumpdiffusionengine.cpp``; not exported by the QuantLib-Python
   1.44 wheel, see :func:`ql_merton_price`); ``BatesEngine``/``BatesModel`` (Bates 1996).
"""

from __future__ import annotations

import math

import numpy as np
import QuantLib as ql
from numba import njit
from numpy.typing import ArrayLike, NDArray

from pricing.black_scholes import FloatOrArray, normalised_black_otm_nb, parse_right
from pricing.ql_helpers import (
    QL_REFERENCE_DATE,
    evaluation_date,
    flat_curve,
    flat_vol,
    whole_days,
)

__all__ = [
    "MERTON_DEFAULT_TOL",
    "merton_price",
    "merton_price_1d_nb",
    "merton_price_nb",
    "ql_bates_merton_price",
    "ql_merton_price",
]

MERTON_DEFAULT_TOL = 1e-15
"""Default relative truncation tolerance of the Poisson series."""
_MAX_TERMS = 100_000


@njit(cache=True, error_model="numpy")
def _black_undiscounted_nb(fwd: float, strike: float, s: float, cp: int) -> float:
    """Undiscounted Black price ``max(θ(F-K), 0) + sqrt(F K) b(-|x|, s)``."""
    x = math.log(fwd / strike)
    return max(cp * (fwd - strike), 0.0) + math.sqrt(fwd) * math.sqrt(
        strike
    ) * normalised_black_otm_nb(-abs(x), s)


@njit(cache=True, error_model="numpy")
def merton_price_nb(
    spot: float,
    strike: float,
    tte: float,
    rate: float,
    div_yield: float,
    vol: float,
    jump_intensity: float,
    jump_mean: float,
    jump_vol: float,
    cp: int,
    tol: float,
    max_terms: int,
) -> tuple[float, int]:
    """Merton (1976) price of one European option and the number of series terms used.

    Parameters
    ----------
    spot, strike : float
        Underlying and strike (> 0), same units.
    tte : float
        Years to expiry, ACT/365 (>= 0; 0 gives the payoff).
    rate, div_yield : float
        Continuous risk-free rate and dividend yield (decimals).
    vol : float
        Diffusion volatility (decimal, annualised, >= 0).
    jump_intensity : float
        Poisson intensity ``lambda`` (jumps per year, >= 0).
    jump_mean : float
        Mean of the log jump size ``ln J`` (decimal).
    jump_vol : float
        Standard deviation of ``ln J`` (decimal, >= 0).
    cp : int
        +1 call, -1 put.
    tol : float
        Relative truncation tolerance (> 0).
    max_terms : int
        Term budget; NaN is returned if the tolerance is not met within it.

    Returns
    -------
    price : float
        Option price (NaN for invalid input or budget exhausted).
    n_terms : int
        Series terms summed (0 for ``tte == 0`` or invalid input).
    """
    if not (
        spot > 0.0
        and strike > 0.0
        and tte >= 0.0
        and vol >= 0.0
        and jump_intensity >= 0.0
        and jump_vol >= 0.0
        and tol > 0.0
        and (cp == 1 or cp == -1)
        and math.isfinite(spot)
        and math.isfinite(strike)
        and math.isfinite(tte)
        and math.isfinite(rate)
        and math.isfinite(div_yield)
        and math.isfinite(vol)
        and math.isfinite(jump_intensity)
        and math.isfinite(jump_mean)
        and math.isfinite(jump_vol)
    ):
        return np.nan, 0
    if tte == 0.0:
        return max(cp * (spot - strike), 0.0), 0
    fwd = spot * math.exp((rate - div_yield) * tte)
    disc = math.exp(-rate * tte)
    m = jump_mean + 0.5 * jump_vol * jump_vol
    k = math.expm1(m)
    lam_t = jump_intensity * tte
    var0 = vol * vol * tte
    jv2 = jump_vol * jump_vol
    if lam_t == 0.0:
        return disc * _black_undiscounted_nb(fwd, strike, math.sqrt(var0), cp), 1
    log_f0 = math.log(fwd) - lam_t * k
    log_lam_t = math.log(lam_t)
    # bound ratio of consecutive tail terms: lambda' T / (n + 1) (call), lambda T / (n + 1) (put)
    mu_bound = lam_t * math.exp(m) if cp == 1 else lam_t
    total = 0.0
    for n in range(max_terms):
        log_w = -lam_t + n * log_lam_t - math.lgamma(n + 1.0)
        w = math.exp(log_w)
        s_n = math.sqrt(var0 + n * jv2)
        f_n = math.exp(log_f0 + n * m)
        if w > 0.0:
            total += w * _black_undiscounted_nb(f_n, strike, s_n, cp)
        # bound on term n + 1 and on the tail beyond it
        nn = n + 1.0
        if nn + 1.0 > mu_bound:
            if cp == 1:
                next_bound = math.exp(log_w + log_lam_t - math.log(nn) + log_f0 + nn * m)
            else:
                next_bound = math.exp(log_w + log_lam_t - math.log(nn)) * strike
            ratio = mu_bound / (nn + 1.0)
            tail = next_bound / (1.0 - ratio)
            if tail <= tol * total or (total == 0.0 and tail == 0.0):
                return disc * total, n + 1
    return np.nan, max_terms


@njit(cache=True, error_model="numpy")
def merton_price_1d_nb(
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    rate: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    vol: NDArray[np.float64],
    jump_intensity: NDArray[np.float64],
    jump_mean: NDArray[np.float64],
    jump_vol: NDArray[np.float64],
    cp: NDArray[np.int8],
    tol: float,
    max_terms: int,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """:func:`merton_price_nb` over flat arrays of one common length ``n``.

    Returns
    -------
    price : ndarray of float64, shape (n,)
    n_terms : ndarray of int64, shape (n,)
    """
    n = spot.size
    out = np.empty(n)
    terms = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i], terms[i] = merton_price_nb(
            spot[i],
            strike[i],
            tte[i],
            rate[i],
            div_yield[i],
            vol[i],
            jump_intensity[i],
            jump_mean[i],
            jump_vol[i],
            int(cp[i]),
            tol,
            max_terms,
        )
    return out, terms


def _flat(
    floats: tuple[ArrayLike, ...], right: str | ArrayLike
) -> tuple[list[NDArray[np.float64]], NDArray[np.int8], tuple[int, ...]]:
    arrays = [np.asarray(a, dtype=np.float64) for a in floats]
    codes = parse_right(right)
    bcast = np.broadcast_arrays(*arrays, codes)
    shape = bcast[0].shape
    flat = [np.ascontiguousarray(a.reshape(-1)) for a in bcast[:-1]]
    return flat, np.ascontiguousarray(bcast[-1].reshape(-1)), shape


def _shaped(values: NDArray, shape: tuple[int, ...]) -> FloatOrArray:
    out = values.reshape(shape)
    return out[()] if out.ndim == 0 else out


def merton_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    jump_intensity: ArrayLike,
    jump_mean: ArrayLike,
    jump_vol: ArrayLike,
    right: str | ArrayLike = "C",
    *,
    tol: float = MERTON_DEFAULT_TOL,
    max_terms: int = _MAX_TERMS,
    return_terms: bool = False,
) -> FloatOrArray | tuple[FloatOrArray, NDArray[np.int64]]:
    """Merton (1976) jump-diffusion prices of European options (Poisson-weighted Black sum).

    Parameters
    ----------
    spot : array_like of float
        Underlying price (> 0), dollars or index points.
    strike : array_like of float
        Strike (> 0), same units.
    tte : array_like of float
        Years to expiry, ACT/365 (``0`` gives the payoff).
    rate, div_yield : array_like of float
        Continuously compounded risk-free rate and dividend yield (decimals).
    vol : array_like of float
        Diffusion volatility (decimal, annualised).
    jump_intensity : array_like of float
        Jumps per year ``lambda`` (>= 0).
    jump_mean : array_like of float
        Mean of the log jump size (decimal; ``-0.1`` is a typical -9.5 % jump).
    jump_vol : array_like of float
        Standard deviation of the log jump size (decimal).
    right : str or array_like of str
        ``'C'``/``'P'`` (any case, or ``'call'``/``'put'``).
    tol : float
        Relative truncation tolerance of the series (default 1e-15).
    max_terms : int
        Term budget per option (NaN if exhausted).
    return_terms : bool
        Also return the number of terms summed per option.

    All array arguments broadcast (NumPy rules).

    Returns
    -------
    price : ndarray of float64 or numpy.float64
        Prices with the broadcast shape; NaN for invalid input.
    n_terms : ndarray of int64
        Only with ``return_terms``: series terms used, broadcast shape.

    Raises
    ------
    ValueError
        Bad right, non-positive ``tol`` or ``max_terms``, shapes that do not broadcast.
    """
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if int(max_terms) < 1:
        raise ValueError(f"max_terms must be >= 1, got {max_terms!r}")
    flat, cp, shape = _flat(
        (spot, strike, tte, rate, div_yield, vol, jump_intensity, jump_mean, jump_vol), right
    )
    price, terms = merton_price_1d_nb(*flat, cp, float(tol), int(max_terms))
    if return_terms:
        return _shaped(price, shape), terms.reshape(shape)
    return _shaped(price, shape)


# --------------------------------------------------------------------------------------
# QuantLib references
# --------------------------------------------------------------------------------------


def _ql_merton_one(
    spot: float,
    strike: float,
    days: int,
    rate: float,
    div_yield: float,
    vol: float,
    lam: float,
    jump_mean: float,
    jump_vol: float,
    cp: int,
    relative_accuracy: float,
    max_iterations: int,
    min_iterations: int,
) -> float:
    today = QL_REFERENCE_DATE
    dc = ql.Actual365Fixed()
    spot_handle = ql.QuoteHandle(ql.SimpleQuote(spot))
    rate_curve = flat_curve(rate)
    div_curve = flat_curve(div_yield)
    maturity = today + days
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if cp == 1 else ql.Option.Put, strike)
    exercise = ql.EuropeanExercise(maturity)
    # JumpDiffusionEngine::calculate(), term by term (QuantLib 1.44 source)
    jump_sq = jump_vol * jump_vol
    mu_half = jump_mean + 0.5 * jump_sq
    k = math.exp(mu_half) - 1.0
    lam_prime = (k + 1.0) * lam
    t = dc.yearFraction(today, maturity)
    variance = vol * vol * t
    r_t = -math.log(rate_curve.discount(maturity)) / t
    poisson = ql.PoissonDistribution(lam_prime * t)
    value = 0.0
    last = 1.0
    i = 0
    while (
        (last > relative_accuracy and i < max_iterations)
        or i < int(lam_prime * t)
        or i < min_iterations
    ):
        v_i = math.sqrt((variance + i * jump_sq) / t)
        r_i = r_t - lam * k + i * mu_half / t
        bsm = ql.BlackScholesMertonProcess(
            spot_handle,
            div_curve,
            flat_curve(r_i),
            flat_vol(v_i, today),
        )
        option = ql.VanillaOption(payoff, exercise)
        option.setPricingEngine(ql.AnalyticEuropeanEngine(bsm))
        base = option.NPV()
        weight = poisson(i)
        value += weight * base
        last = weight * abs(base / (value if abs(value) > 2.2e-16 else 1.0))
        i += 1
    if i >= max_iterations:
        raise RuntimeError(
            f"{i} iterations were not enough to reach the required {relative_accuracy} "
            f"accuracy (last addendum {last}, running sum {value})"
        )
    return value


def ql_merton_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    jump_intensity: ArrayLike,
    jump_mean: ArrayLike,
    jump_vol: ArrayLike,
    right: str | ArrayLike = "C",
    *,
    relative_accuracy: float = 1e-15,
    max_iterations: int = 10_000,
    min_iterations: int = 0,
) -> FloatOrArray:
    """Merton prices by QuantLib's ``JumpDiffusionEngine`` algorithm, with QuantLib's pieces.

    The QuantLib-Python 1.44 wheel (the newest on the package index) exports
    ``ql.Merton76Process`` but neither ``ql.JumpDiffusionEngine`` nor the process's
    accessors, so this function runs that engine's ``calculate()`` loop
    (QuantLib 1.44, ``ql/pricingengines/vanilla/jumpdiffusionengine.cpp``) in Python with
    QuantLib's own pieces: ``ql.PoissonDistribution(lambda' T)`` weights (``lambda' =
    lambda (1 + k)``) times ``ql.AnalyticEuropeanEngine`` prices on a
    ``ql.BlackScholesMertonProcess`` with rate ``r - lambda k + i m / T`` and vol
    ``sqrt(vol^2 + i jump_vol^2 / T)``, until the last addendum relative to the running sum
    is below ``relative_accuracy`` (and at least ``floor(lambda' T)`` terms), QuantLib's
    stopping rule for the value. QuantLib's default accuracy is 1e-4; here 1e-15.

    QuantLib's rule compares each addendum with the running sum, or with 1 while the sum is
    below machine epsilon. For an out-of-the-money option whose no-jump term is tiny (short
    expiry, strike several diffusion standard deviations away: 1e-79 for a 7-day 130 call in
    the tests) the first addendum is then "negligible" and the engine returns that tiny
    value although the jump terms make the price 2.8e-4; ``min_iterations`` forces that
    many terms (0 keeps QuantLib's behaviour).

    Parameters
    ----------
    spot, strike, rate, div_yield, vol, jump_intensity, jump_mean, jump_vol, right
        As in :func:`merton_price`.
    tte : array_like of float
        Years to expiry; a whole number of days (ACT/365), see :func:`pricing.whole_days`.
    relative_accuracy : float
        The engine's ``relativeAccuracy``.
    max_iterations : int
        The engine's ``maxIterations``.
    min_iterations : int
        Sum at least this many terms (not in QuantLib; see above).

    Returns
    -------
    ndarray of float64 or numpy.float64
        QuantLib prices with the broadcast shape.

    Raises
    ------
    ValueError
        Bad right, ``tte`` not a whole number of days.
    RuntimeError
        The series did not reach ``relative_accuracy`` within ``max_iterations`` terms.
    """
    flat, cp, shape = _flat(
        (spot, strike, tte, rate, div_yield, vol, jump_intensity, jump_mean, jump_vol), right
    )
    out = np.empty(flat[0].size)
    with evaluation_date(QL_REFERENCE_DATE):
        for i in range(out.size):
            s, k, t, r, q, v, lam, mu, dj = (float(a[i]) for a in flat)
            out[i] = _ql_merton_one(
                s,
                k,
                whole_days(t),
                r,
                q,
                v,
                lam,
                mu,
                dj,
                int(cp[i]),
                float(relative_accuracy),
                int(max_iterations),
                int(min_iterations),
            )
    return _shaped(out, shape)


def ql_bates_merton_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    jump_intensity: ArrayLike,
    jump_mean: ArrayLike,
    jump_vol: ArrayLike,
    right: str | ArrayLike = "C",
    *,
    vol_of_variance: float = 1e-6,
    integration_order: int = 192,
) -> FloatOrArray:
    """Merton prices from QuantLib's Fourier ``BatesEngine`` (an independent route).

    Bates (1996) is Heston plus Merton's log-normal jumps; with ``v0 = theta = vol^2``,
    ``rho = 0``, ``kappa = 1`` and a vanishing vol of variance it is Merton (1976). QuantLib
    switches its characteristic function to the ``sigma -> 0`` limit for ``sigma <= 1e-6``
    (``AnalyticHestonEngine``), so the default ``vol_of_variance = 1e-6`` is exact up to
    ``O(sigma^2)``. ``ql.BatesEngine(model, integration_order)`` integrates with
    Gauss-Laguerre; its absolute accuracy is ~1e-13 x spot (relative accuracy degrades for
    prices far below that).

    Parameters
    ----------
    spot, strike, rate, div_yield, vol, jump_intensity, jump_mean, jump_vol, right
        As in :func:`merton_price`.
    tte : array_like of float
        Years to expiry; a whole number of days (ACT/365).
    vol_of_variance : float
        Heston ``sigma`` of the degenerate Bates model.
    integration_order : int
        Gauss-Laguerre order of ``ql.BatesEngine``.

    Returns
    -------
    ndarray of float64 or numpy.float64
        QuantLib prices with the broadcast shape.

    Raises
    ------
    ValueError
        Bad right, ``tte`` not a whole number of days.
    """
    flat, cp, shape = _flat(
        (spot, strike, tte, rate, div_yield, vol, jump_intensity, jump_mean, jump_vol), right
    )
    out = np.empty(flat[0].size)
    today = QL_REFERENCE_DATE
    with evaluation_date(today):
        for i in range(out.size):
            s, k, t, r, q, v, lam, mu, dj = (float(a[i]) for a in flat)
            days = whole_days(t)
            process = ql.BatesProcess(
                flat_curve(r),
                flat_curve(q),
                ql.QuoteHandle(ql.SimpleQuote(s)),
                v * v,
                1.0,
                v * v,
                float(vol_of_variance),
                0.0,
                lam,
                mu,
                dj,
            )
            engine = ql.BatesEngine(ql.BatesModel(process), int(integration_order))
            option = ql.VanillaOption(
                ql.PlainVanillaPayoff(ql.Option.Call if cp[i] == 1 else ql.Option.Put, k),
                ql.EuropeanExercise(today + days),
            )
            option.setPricingEngine(engine)
            out[i] = option.NPV()
    return _shaped(out, shape)
