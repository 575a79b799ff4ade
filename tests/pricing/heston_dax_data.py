"""QuantLib's DAX Heston calibration set (``testDAXCalibration``), as a small fixture module.

Source: QuantLib, ``test-suite/hestonmodel.cpp``, function ``getDAXCalibrationMarketData()``
used by ``HestonModelTest::testDAXCalibration`` (repository ``lballabio/QuantLib``, read at
commit 018df35316d5c8cb0ea5bba15cfbb37a91836c20). QuantLib takes the example from A. Sepp,
"Pricing European-Style Options under Jump Diffusion Processes with Stochastic Volatility:
Applications of Fourier Transform" (2003), which reports the calibration error 177.2 that
QuantLib's test reproduces within 1.0.

The numbers below are copied verbatim from that function:

* settlement (evaluation) date 5 July 2002, calendar TARGET, day counter Actual365Fixed;
* DAX spot 4468.17, dividend yield flat 0;
* risk-free ``ZeroCurve`` (linear in the continuously compounded zero rate) with nodes at
  the settlement date (3.57 %) and settlement + ``RATE_DAYS`` days at ``RATES``;
* 13 strikes x 8 maturities of Black implied vols (``VOLS[strike][maturity]``); the
  maturity of column ``m`` is ``Period(int((RATE_DAYS[m] + 3) / 7), Weeks)`` advanced on the
  TARGET calendar from the settlement date;
* ``HestonModelHelper`` with ``ImpliedVolError``; start point ``v0 = 0.1, kappa = 1,
  theta = 0.1, sigma = 0.5, rho = -0.5``; ``LevenbergMarquardt(1e-8, 1e-8, 1e-8)`` with
  ``EndCriteria(400, 40, 1e-8, 1e-8, 1e-8)``; engine ``AnalyticHestonEngine(model, 64)``;
* SSE = sum over the 104 helpers of ``(100 * calibrationError())^2`` (vol points squared),
  expected 177.2 within 1.0.

Not a test module (no ``test_`` prefix); imported by ``tests/pricing/test_heston.py`` and
``benchmarks/bench_heston.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import QuantLib as ql

from pricing.ql_helpers import flat_curve

SETTLEMENT = (5, 7, 2002)  # day, month, year
SPOT = 4468.17
RATE_DAYS = (13, 41, 75, 165, 256, 345, 524, 703)
RATES = (0.0357, 0.0349, 0.0341, 0.0355, 0.0359, 0.0368, 0.0386, 0.0401)
RATE_AT_SETTLEMENT = 0.0357
STRIKES = (3400, 3600, 3800, 4000, 4200, 4400, 4500, 4600, 4800, 5000, 5200, 5400, 5600)
VOLS = (
    (0.6625, 0.4875, 0.4204, 0.3667, 0.3431, 0.3267, 0.3121, 0.3121),
    (0.6007, 0.4543, 0.3967, 0.3511, 0.3279, 0.3154, 0.2984, 0.2921),
    (0.5084, 0.4221, 0.3718, 0.3327, 0.3155, 0.3027, 0.2919, 0.2889),
    (0.4541, 0.3869, 0.3492, 0.3149, 0.2963, 0.2926, 0.2819, 0.2800),
    (0.4060, 0.3607, 0.3330, 0.2999, 0.2887, 0.2811, 0.2751, 0.2775),
    (0.3726, 0.3396, 0.3108, 0.2781, 0.2788, 0.2722, 0.2661, 0.2686),
    (0.3550, 0.3277, 0.3012, 0.2781, 0.2781, 0.2661, 0.2661, 0.2681),
    (0.3428, 0.3209, 0.2958, 0.2740, 0.2688, 0.2627, 0.2580, 0.2620),
    (0.3302, 0.3062, 0.2799, 0.2631, 0.2573, 0.2533, 0.2504, 0.2544),
    (0.3343, 0.2959, 0.2705, 0.2540, 0.2504, 0.2464, 0.2448, 0.2462),
    (0.3460, 0.2845, 0.2624, 0.2463, 0.2425, 0.2385, 0.2373, 0.2422),
    (0.3857, 0.2860, 0.2578, 0.2399, 0.2357, 0.2327, 0.2312, 0.2351),
    (0.3976, 0.2860, 0.2607, 0.2356, 0.2297, 0.2268, 0.2241, 0.2320),
)
START = {"v0": 0.1, "kappa": 1.0, "theta": 0.1, "sigma": 0.5, "rho": -0.5}
REFERENCE_SSE = 177.2  # A. Sepp (2003), as asserted by QuantLib's test (tolerance 1.0)
SSE_TOLERANCE = 1.0


def settlement_date() -> ql.Date:
    """The evaluation date of the example, 5 July 2002."""
    d, m, y = SETTLEMENT
    return ql.Date(d, m, y)


def maturity_periods() -> list[ql.Period]:
    """``Period(int((t + 3) / 7), Weeks)`` for each rate node ``t`` (QuantLib's rounding)."""
    return [ql.Period(int((t + 3) / 7.0), ql.Weeks) for t in RATE_DAYS]


@dataclass
class DaxMarket:
    """QuantLib objects of the example (build inside the settlement-date evaluation)."""

    risk_free: ql.YieldTermStructureHandle
    dividend: ql.YieldTermStructureHandle
    helpers: list[ql.HestonModelHelper]


def ql_market() -> DaxMarket:
    """Curves and the 104 ``HestonModelHelper`` (strike-major order, as in QuantLib).

    Sets QuantLib's global evaluation date to the settlement date (QuantLib's test does the
    same); callers restore it if they care.
    """
    settle = settlement_date()
    ql.Settings.instance().evaluationDate = settle
    dc = ql.Actual365Fixed()
    dates = [settle] + [settle + t for t in RATE_DAYS]
    rates = [RATE_AT_SETTLEMENT, *RATES]
    risk_free = ql.YieldTermStructureHandle(ql.ZeroCurve(dates, rates, dc))
    dividend = flat_curve(0.0, settle)
    helpers = []
    periods = maturity_periods()
    for s, strike in enumerate(STRIKES):
        for m, period in enumerate(periods):
            vol = ql.QuoteHandle(ql.SimpleQuote(VOLS[s][m]))
            helpers.append(
                ql.HestonModelHelper(
                    period,
                    ql.TARGET(),
                    SPOT,
                    float(strike),
                    vol,
                    risk_free,
                    dividend,
                    ql.BlackCalibrationHelper.ImpliedVolError,
                )
            )
    return DaxMarket(risk_free, dividend, helpers)


def option_arrays() -> dict[str, np.ndarray]:
    """The 104 options as flat arrays in QuantLib's helper order (strike-major).

    ``tte`` is ACT/365 from the settlement date to the TARGET-advanced maturity date and the
    forward is ``SPOT * D_q(tte) / D_r(tte)`` from QuantLib's own curves, so the inputs are
    exactly what QuantLib's helpers see.

    Returns
    -------
    dict
        ``strike``, ``tte`` (years), ``forward`` (index points), ``implied_vol`` (decimal),
        ``rate`` (continuously compounded zero rate to ``tte``), ``days`` (calendar days).
    """
    market = ql_market()
    settle = settlement_date()
    dc = ql.Actual365Fixed()
    tte_m, fwd_m, rate_m, days_m = [], [], [], []
    for period in maturity_periods():
        date = ql.TARGET().advance(settle, period)
        tau = dc.yearFraction(settle, date)
        df_r = market.risk_free.discount(date)
        df_q = market.dividend.discount(date)
        tte_m.append(tau)
        fwd_m.append(SPOT * df_q / df_r)
        rate_m.append(-np.log(df_r) / tau)
        days_m.append(date - settle)
    n_s, n_m = len(STRIKES), len(RATE_DAYS)
    return {
        "strike": np.repeat(np.asarray(STRIKES, dtype=float), n_m),
        "tte": np.tile(np.asarray(tte_m), n_s),
        "forward": np.tile(np.asarray(fwd_m), n_s),
        "rate": np.tile(np.asarray(rate_m), n_s),
        "days": np.tile(np.asarray(days_m), n_s),
        "implied_vol": np.asarray(VOLS, dtype=float).reshape(-1),
    }


@dataclass
class QlCalibration:
    """QuantLib's own calibration of the example."""

    sse: float
    params: dict[str, float]
    seconds: float
    calibration_errors: np.ndarray  # decimal vol errors per helper, QuantLib order


def ql_calibrate(engine: str = "analytic64") -> QlCalibration:
    """Run QuantLib's DAX calibration exactly as ``testDAXCalibration`` does.

    Parameters
    ----------
    engine : {"analytic64", "cos"}
        ``AnalyticHestonEngine(model, 64)`` or ``COSHestonEngine(model, 12, 75)`` (two of the
        three engines of the QuantLib test).

    Returns
    -------
    QlCalibration
        SSE in vol points squared, parameters, wall time of ``model.calibrate`` (seconds).
    """
    market = ql_market()
    process = ql.HestonProcess(
        market.risk_free,
        market.dividend,
        ql.QuoteHandle(ql.SimpleQuote(SPOT)),
        START["v0"],
        START["kappa"],
        START["theta"],
        START["sigma"],
        START["rho"],
    )
    model = ql.HestonModel(process)
    if engine == "analytic64":
        eng = ql.AnalyticHestonEngine(model, 64)
    elif engine == "cos":
        eng = ql.COSHestonEngine(model, 12, 75)
    else:
        raise ValueError(f"engine must be 'analytic64' or 'cos', got {engine!r}")
    for helper in market.helpers:
        helper.setPricingEngine(eng)
    start = time.perf_counter()
    model.calibrate(
        market.helpers,
        ql.LevenbergMarquardt(1e-8, 1e-8, 1e-8),
        ql.EndCriteria(400, 40, 1.0e-8, 1.0e-8, 1.0e-8),
    )
    seconds = time.perf_counter() - start
    errors = np.array([h.calibrationError() for h in market.helpers])
    theta, kappa, sigma, rho, v0 = list(model.params())
    return QlCalibration(
        sse=float(np.sum((100.0 * errors) ** 2)),
        params={"v0": v0, "kappa": kappa, "theta": theta, "sigma": sigma, "rho": rho},
        seconds=seconds,
        calibration_errors=errors,
    )
