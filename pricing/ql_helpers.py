"""QuantLib plumbing shared by every QuantLib reference in the suite (one copy).

The reference pricers (:mod:`pricing.quantlib_engines`, :func:`pricing.heston.ql_heston_price`,
:func:`pricing.merton.ql_merton_price`), the tests and the benchmarks build their QuantLib
objects here: the fixed evaluation date, the evaluation-date context, flat ACT/365 continuous
curves, a flat Black vol, the Black-Scholes-Merton process, whole-day maturities, the forward
of flat curves and ``blackFormulaImpliedStdDev`` with QuantLib's own initial guess.

Conventions are those of :mod:`pricing.black_scholes`: ``tte`` in years ACT/365, continuously
compounded ``rate`` and ``div_yield``, decimal ``vol``. QuantLib maturities are dates, so the
process-based references accept whole days only (:func:`whole_days`).

References
----------
.. [1] QuantLib 1.44: ``Settings.evaluationDate``, ``FlatForward``, ``Actual365Fixed``,
   ``BlackConstantVol``, ``BlackScholesMertonProcess``, ``blackFormulaImpliedStdDev``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import QuantLib as ql

__all__ = [
    "DAYS_PER_YEAR",
    "QL_NULL_REAL",
    "QL_REFERENCE_DATE",
    "black_implied_std_dev",
    "bsm_process",
    "evaluation_date",
    "flat_curve",
    "flat_vol",
    "ql_flat_forward",
    "ql_option_type",
    "whole_days",
]

QL_REFERENCE_DATE = ql.Date(15, ql.January, 2024)
"""Evaluation date of the process-based references (any date works: the curves are flat)."""

DAYS_PER_YEAR = 365.0
"""ACT/365: ``tte`` years are ``days / 365``."""

QL_NULL_REAL = float(np.finfo(np.float32).max)
"""QuantLib's ``Null<Real>()``: passed as the guess, ``blackFormulaImpliedStdDev`` picks its own."""

_WHOLE_DAY_TOL = 1e-12


def whole_days(tte: float) -> int:
    """Number of calendar days represented by ``tte`` (ACT/365), which must be whole.

    Parameters
    ----------
    tte : float
        Time to expiry in years.

    Returns
    -------
    int
        ``round(tte * 365)``, at least 1.

    Raises
    ------
    ValueError
        If ``tte`` is not within 1e-12 years of a positive whole number of days. Use
        :func:`pricing.ql_black_price` / ``ql_implied_vol(method="black")`` for intraday
        expiries.
    """
    tte = float(tte)
    if not math.isfinite(tte):
        raise ValueError(f"tte must be finite, got {tte!r}")
    days = round(tte * DAYS_PER_YEAR)
    if days < 1 or abs(tte - days / DAYS_PER_YEAR) > _WHOLE_DAY_TOL:
        raise ValueError(
            f"QuantLib process-based engines need tte as a positive whole number of days "
            f"(ACT/365); got tte={tte!r} years = {tte * DAYS_PER_YEAR!r} days. Use "
            f"ql_black_price / ql_implied_vol(method='black') for intraday tte."
        )
    return days


@contextlib.contextmanager
def evaluation_date(date: ql.Date = QL_REFERENCE_DATE) -> Iterator[ql.Date]:
    """Set QuantLib's global evaluation date inside the block and restore it afterwards.

    Parameters
    ----------
    date : QuantLib.Date
        Evaluation date (default :data:`QL_REFERENCE_DATE`).

    Yields
    ------
    QuantLib.Date
        ``date``. If the evaluation date was never set, QuantLib reports today's date and
        that date is what is restored.
    """
    settings = ql.Settings.instance()
    previous = settings.evaluationDate
    settings.evaluationDate = date
    try:
        yield date
    finally:
        settings.evaluationDate = previous


def flat_curve(rate: float, today: ql.Date = QL_REFERENCE_DATE) -> ql.YieldTermStructureHandle:
    """Flat continuously compounded ACT/365 curve ``D(t) = e^{-rate t}`` from ``today``.

    Parameters
    ----------
    rate : float
        Continuously compounded rate or dividend yield (decimal).
    today : QuantLib.Date
        Reference date of the curve.

    Returns
    -------
    QuantLib.YieldTermStructureHandle
        Of a ``ql.FlatForward(today, rate, ql.Actual365Fixed(), ql.Continuous)``.
    """
    return ql.YieldTermStructureHandle(
        ql.FlatForward(today, float(rate), ql.Actual365Fixed(), ql.Continuous)
    )


def flat_vol(vol: float, today: ql.Date = QL_REFERENCE_DATE) -> ql.BlackVolTermStructureHandle:
    """Flat Black volatility (decimal, ACT/365, ``ql.NullCalendar``) from ``today``."""
    return ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), float(vol), ql.Actual365Fixed())
    )


def bsm_process(
    spot: float,
    rate: float,
    div_yield: float,
    vol: float,
    today: ql.Date = QL_REFERENCE_DATE,
) -> ql.BlackScholesMertonProcess:
    """``ql.BlackScholesMertonProcess`` on flat curves (:func:`flat_curve`, :func:`flat_vol`).

    Parameters
    ----------
    spot : float
        Underlying price.
    rate, div_yield, vol : float
        Continuous rate, dividend yield and Black vol (decimals).
    today : QuantLib.Date
        Reference date of the curves.

    Returns
    -------
    QuantLib.BlackScholesMertonProcess
    """
    return ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(float(spot))),
        flat_curve(div_yield, today),
        flat_curve(rate, today),
        flat_vol(vol, today),
    )


def ql_flat_forward(
    spot: float, days: int, rate: float, div_yield: float, today: ql.Date = QL_REFERENCE_DATE
) -> float:
    """Forward of flat curves from QuantLib, ``S D_q(T) / D_r(T)`` at ``today + days``.

    Parameters
    ----------
    spot : float
        Underlying price.
    days : int
        Calendar days to the maturity (ACT/365).
    rate, div_yield : float
        Continuous rate and dividend yield (decimals).
    today : QuantLib.Date
        Reference date.

    Returns
    -------
    float
        The forward in the spot's units (``S e^{(r - q) days/365}``).
    """
    maturity = today + int(days)
    return (
        float(spot)
        * flat_curve(div_yield, today).discount(maturity)
        / flat_curve(rate, today).discount(maturity)
    )


def ql_option_type(right: str | int) -> int:
    """``ql.Option.Call`` / ``ql.Option.Put`` from ``'C'``/``'P'`` or ``+1``/``-1``.

    Raises
    ------
    ValueError
        Any other right.
    """
    if right in ("C", "c", 1):
        return ql.Option.Call
    if right in ("P", "p", -1):
        return ql.Option.Put
    raise ValueError(f"right must be 'C'/'P' or +1/-1, got {right!r}")


def black_implied_std_dev(
    right: str | int,
    strike: float,
    forward: float,
    price: float,
    discount: float,
    *,
    accuracy: float = 1e-15,
    max_iterations: int = 300,
) -> float:
    """Total implied standard deviation ``vol sqrt(T)`` from ``ql.blackFormulaImpliedStdDev``.

    QuantLib picks its own initial guess (:data:`QL_NULL_REAL`); displacement 0.

    Parameters
    ----------
    right : {'C', 'P', 1, -1}
        Option right.
    strike, forward, price : float
        Per unit, in the underlying's units.
    discount : float
        Discount factor to expiry ``e^{-r T}``.
    accuracy : float
        Solver accuracy on the standard deviation.
    max_iterations : int
        Solver iteration budget.

    Returns
    -------
    float
        ``vol sqrt(T)``; NaN where QuantLib raises (price outside its bounds, no convergence).
    """
    try:
        return float(
            ql.blackFormulaImpliedStdDev(
                ql_option_type(right),
                float(strike),
                float(forward),
                float(price),
                float(discount),
                0.0,
                QL_NULL_REAL,
                float(accuracy),
                int(max_iterations),
            )
        )
    except RuntimeError:
        return math.nan
