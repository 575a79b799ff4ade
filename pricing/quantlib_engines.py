"""QuantLib reference pricers for the Black-Scholes-Merton kernels.

QuantLib (``import QuantLib as ql``) is the independent reference for
:mod:`pricing.black_scholes` and the design's "theoretical price generator" (the
Crank-Nicolson finite-difference engine). Conventions are those of
:mod:`pricing.black_scholes`: ``tte`` in years ACT/365, continuous ``rate`` and
``div_yield``, decimal ``vol``, ``right`` ``'C'``/``'P'``.

Two families of wrappers:

* Process-based (:func:`ql_bs_price`, :func:`ql_bs_greeks`, :func:`ql_implied_vol` with
  ``method="process"``): a ``ql.VanillaOption`` with a ``ql.EuropeanExercise`` on a
  ``ql.BlackScholesMertonProcess`` with flat ``ql.FlatForward`` curves and a
  ``ql.BlackConstantVol`` surface, day count ``ql.Actual365Fixed``. QuantLib maturities are
  dates, so these accept only **whole days**: the evaluation date is a fixed reference date
  and the maturity is ``evaluation date + round(tte * 365)`` days; a ``tte`` that is not a
  whole number of days within 1e-12 years raises ``ValueError``.
* Black-formula based (:func:`ql_black_price`, :func:`ql_implied_vol` with
  ``method="black"``): ``ql.blackFormula`` and ``ql.blackFormulaImpliedStdDev`` work with the
  forward ``F = S e^{(r-q)T}``, the discount ``e^{-rT}`` and the total standard deviation
  ``vol·sqrt(T)``, so they accept any ``tte`` down to one minute (0DTE).

QuantLib's global evaluation date is set inside each call and restored afterwards (if it was
never set, QuantLib reports today's date and that date is what is restored). The QuantLib
plumbing (curves, process, evaluation date, whole days) is :mod:`pricing.ql_helpers`.

All functions take scalars or broadcastable arrays and loop in Python (they are references,
not fast paths). They return a float64 ndarray with the broadcast shape, or a
``numpy.float64`` scalar when every input is a scalar.

References
----------
.. [1] QuantLib 1.44: ``AnalyticEuropeanEngine``, ``FdBlackScholesVanillaEngine``,
   ``FdmSchemeDesc.CrankNicolson``, ``BlackScholesMertonProcess``, ``blackFormula``,
   ``blackFormulaImpliedStdDev``, ``VanillaOption.impliedVolatility``.
.. [2] F. Black and M. Scholes (1973); R. C. Merton (1973).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import QuantLib as ql
from numpy.typing import ArrayLike

from pricing.black_scholes import FloatOrArray, Greeks, parse_right
from pricing.ql_helpers import (
    QL_REFERENCE_DATE,
    black_implied_std_dev,
    bsm_process,
    evaluation_date,
    ql_option_type,
    whole_days,
)

__all__ = [
    "QL_REFERENCE_DATE",
    "ql_black_price",
    "ql_bs_greeks",
    "ql_bs_price",
    "ql_implied_vol",
    "whole_days",
]

Engine = Literal["analytic", "crank_nicolson"]


def _bsm_option(
    spot: float, strike: float, days: int, rate: float, div_yield: float, vol: float, cp: int
) -> tuple[ql.VanillaOption, ql.BlackScholesMertonProcess]:
    """European option and flat-curve BSM process; call inside ``_evaluation_date``."""
    today = QL_REFERENCE_DATE
    process = bsm_process(spot, rate, div_yield, vol, today)
    payoff = ql.PlainVanillaPayoff(ql_option_type(cp), strike)
    option = ql.VanillaOption(payoff, ql.EuropeanExercise(today + days))
    return option, process


def _broadcast_loop(
    func: Callable[..., tuple[float, ...]],
    floats: tuple[ArrayLike, ...],
    right: str | ArrayLike,
    n_out: int,
) -> list[FloatOrArray]:
    arrays = [np.asarray(a, dtype=np.float64) for a in floats]
    codes = parse_right(right)
    bcast = np.broadcast_arrays(*arrays, codes)
    shape = bcast[0].shape
    outs = [np.empty(shape, dtype=np.float64) for _ in range(n_out)]
    for idx in np.ndindex(shape):
        values = func(*(float(a[idx]) for a in bcast[:-1]), int(bcast[-1][idx]))
        for out, value in zip(outs, values, strict=True):
            out[idx] = value
    return [out[()] if out.ndim == 0 else out for out in outs]


def ql_bs_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    right: str | ArrayLike,
    engine: Engine = "analytic",
    t_grid: int = 400,
    x_grid: int = 400,
    damping_steps: int = 0,
) -> FloatOrArray:
    """European BSM price from a QuantLib pricing engine (whole-day ``tte`` only).

    Parameters
    ----------
    spot, strike : array_like of float
        Underlying and strike (> 0).
    tte : array_like of float
        Time to expiry in years (ACT/365); must be a whole number of days, see
        :func:`whole_days`.
    rate, div_yield : array_like of float
        Continuous risk-free rate and dividend yield (decimals).
    vol : array_like of float
        Volatility (decimal, > 0).
    right : str or array_like of str
        ``'C'``/``'P'`` (any case, or ``'call'``/``'put'``).
    engine : {"analytic", "crank_nicolson"}
        ``ql.AnalyticEuropeanEngine`` (closed form) or ``ql.FdBlackScholesVanillaEngine``
        with ``ql.FdmSchemeDesc.CrankNicolson()``.
    t_grid, x_grid : int
        Time steps and space (log-spot) nodes of the finite-difference grid.
    damping_steps : int
        Implicit Euler damping steps before Crank-Nicolson (QuantLib's ``dampingSteps``;
        0 means pure Crank-Nicolson).

    Returns
    -------
    ndarray of float64 or numpy.float64
        QuantLib NPVs with the broadcast shape (scalar for all-scalar input).

    Raises
    ------
    ValueError
        For a non-whole-day ``tte``, an unknown ``engine`` or an invalid right.

    References
    ----------
    QuantLib ``AnalyticEuropeanEngine``, ``FdBlackScholesVanillaEngine``,
    ``FdmSchemeDesc.CrankNicolson``.
    """
    if engine not in ("analytic", "crank_nicolson"):
        raise ValueError(f"unknown engine {engine!r}: expected 'analytic' or 'crank_nicolson'")

    def one(s: float, k: float, t: float, r: float, q: float, v: float, cp: int) -> tuple[float]:
        days = whole_days(t)
        with evaluation_date(QL_REFERENCE_DATE):
            option, process = _bsm_option(s, k, days, r, q, v, cp)
            if engine == "analytic":
                option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
            else:
                option.setPricingEngine(
                    ql.FdBlackScholesVanillaEngine(
                        process,
                        int(t_grid),
                        int(x_grid),
                        int(damping_steps),
                        ql.FdmSchemeDesc.CrankNicolson(),
                    )
                )
            return (option.NPV(),)

    return _broadcast_loop(one, (spot, strike, tte, rate, div_yield, vol), right, 1)[0]


def ql_bs_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    right: str | ArrayLike,
) -> Greeks:
    """Greeks from ``ql.AnalyticEuropeanEngine`` in the units of :func:`~pricing.bs_greeks`.

    Parameters
    ----------
    spot, strike, tte, rate, div_yield, vol, right
        As in :func:`ql_bs_price` (whole-day ``tte``).

    Returns
    -------
    Greeks
        ``delta`` (``option.delta()``), ``gamma`` (``option.gamma()``), ``vega``
        (``option.vega()``, per 1.00 vol) and ``theta`` (``option.theta()``, per year; QuantLib's
        ``thetaPerDay()`` is this divided by 365).

    Raises
    ------
    ValueError
        For a non-whole-day ``tte`` or an invalid right.

    References
    ----------
    QuantLib ``AnalyticEuropeanEngine`` Greeks.
    """

    def one(
        s: float, k: float, t: float, r: float, q: float, v: float, cp: int
    ) -> tuple[float, float, float, float]:
        days = whole_days(t)
        with evaluation_date(QL_REFERENCE_DATE):
            option, process = _bsm_option(s, k, days, r, q, v, cp)
            option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
            return option.delta(), option.gamma(), option.vega(), option.theta()

    return Greeks(*_broadcast_loop(one, (spot, strike, tte, rate, div_yield, vol), right, 4))


def ql_black_price(
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    vol: ArrayLike,
    right: str | ArrayLike,
) -> FloatOrArray:
    """BSM price via ``ql.blackFormula`` on the forward; any ``tte`` (minutes included).

    ``ql.blackFormula(type, K, F, vol·sqrt(T), e^{-rT})`` with ``F = S e^{(r-q)T}``.

    Parameters
    ----------
    spot, strike, rate, div_yield, vol, right
        As in :func:`ql_bs_price`.
    tte : array_like of float
        Time to expiry in years (> 0), not restricted to whole days.

    Returns
    -------
    ndarray of float64 or numpy.float64
        Prices with the broadcast shape (scalar for all-scalar input).

    Raises
    ------
    ValueError
        For an invalid right.

    References
    ----------
    QuantLib ``blackFormula``; Black (1976) form of Black-Scholes-Merton.
    """

    def one(s: float, k: float, t: float, r: float, q: float, v: float, cp: int) -> tuple[float]:
        forward = s * math.exp((r - q) * t)
        std = v * math.sqrt(t)
        return (ql.blackFormula(ql_option_type(cp), k, forward, std, math.exp(-r * t)),)

    return _broadcast_loop(one, (spot, strike, tte, rate, div_yield, vol), right, 1)[0]


def ql_implied_vol(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    tte: ArrayLike,
    rate: ArrayLike,
    div_yield: ArrayLike,
    right: str | ArrayLike,
    method: Literal["black", "process"] = "black",
    accuracy: float = 1e-15,
    max_iterations: int = 300,
) -> FloatOrArray:
    """Implied volatility from QuantLib's solvers; NaN where QuantLib raises.

    Parameters
    ----------
    price : array_like of float
        Option price.
    spot, strike, tte, rate, div_yield, right
        As in :func:`ql_black_price`; with ``method="process"`` ``tte`` must be whole days.
    method : {"black", "process"}
        ``"black"``: ``ql.blackFormulaImpliedStdDev`` on the forward (any ``tte``; the
        returned standard deviation is divided by ``sqrt(tte)``). ``"process"``:
        ``VanillaOption.impliedVolatility`` on a flat BSM process (whole days).
    accuracy : float
        Solver accuracy passed to QuantLib (on the standard deviation for ``"black"``, on
        the volatility for ``"process"``).
    max_iterations : int
        Maximum solver iterations / evaluations.

    Returns
    -------
    ndarray of float64 or numpy.float64
        Implied volatility with the broadcast shape (scalar for all-scalar input); NaN where
        QuantLib raises (e.g. price outside its bounds or no convergence).

    Raises
    ------
    ValueError
        For an unknown ``method``, an invalid right, or (``"process"``) a non-whole-day
        ``tte``.

    References
    ----------
    QuantLib ``blackFormulaImpliedStdDev``, ``VanillaOption.impliedVolatility``.
    """
    if method not in ("black", "process"):
        raise ValueError(f"unknown method {method!r}: expected 'black' or 'process'")

    def one(p: float, s: float, k: float, t: float, r: float, q: float, cp: int) -> tuple[float]:
        if method == "black":
            forward = s * math.exp((r - q) * t)
            std = black_implied_std_dev(
                cp, k, forward, p, math.exp(-r * t),
                accuracy=accuracy, max_iterations=max_iterations,
            )  # fmt: skip
            return (std / math.sqrt(t),)
        days = whole_days(t)
        with evaluation_date(QL_REFERENCE_DATE):
            option, process = _bsm_option(s, k, days, r, q, 0.2, cp)
            option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
            try:
                return (option.impliedVolatility(p, process, accuracy, max_iterations, 1e-7, 10.0),)
            except RuntimeError:
                return (math.nan,)

    return _broadcast_loop(one, (price, spot, strike, tte, rate, div_yield), right, 1)[0]
