"""Term structure (pricing.term_structure) against scipy, statsmodels and hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.optimize import curve_fit

from pricing.term_structure import atm_vol_at, fit_power_law

TTE = np.array([2, 7, 14, 30, 60, 91, 182, 365, 730]) / 365.0


def test_noisy_fit_equals_scipy_curve_fit():
    rng = np.random.default_rng(2)
    y = 0.16 * TTE**-0.05 + 0.004 * rng.standard_normal(TTE.size)
    ours = fit_power_law(TTE, y)
    (a, b), _ = curve_fit(lambda t, a, b: a * t**b, TTE, y, p0=[0.15, 0.0], maxfev=10_000)
    assert ours.a == pytest.approx(a, rel=1e-7)
    assert ours.b == pytest.approx(b, abs=1e-7)
    assert ours.rmse == pytest.approx(math.sqrt(np.mean((a * TTE**b - y) ** 2)), rel=1e-6)
    # weighted: the same as curve_fit with sigma = 1 / sqrt(weight)
    wt = np.linspace(1.0, 3.0, TTE.size)
    ours_w = fit_power_law(TTE, y, wt)
    (aw, bw), _ = curve_fit(lambda t, a, b: a * t**b, TTE, y, p0=[0.15, 0.0], sigma=wt**-0.5)
    assert ours_w.a == pytest.approx(aw, rel=1e-6)
    assert ours_w.b == pytest.approx(bw, abs=1e-6)


def test_noiseless_positive_data_equal_a_log_log_ols():
    y = 0.21 * TTE**0.07
    ols = sm.OLS(np.log(y), sm.add_constant(np.log(TTE))).fit()
    fit = fit_power_law(TTE, y)
    assert fit.a == pytest.approx(math.exp(ols.params[0]), rel=1e-9)
    assert fit.b == pytest.approx(ols.params[1], abs=1e-9)
    assert fit.rmse < 1e-12


def test_negative_values_the_risk_reversal():
    y = -0.045 * TTE**0.12
    fit = fit_power_law(TTE, y)
    assert fit.a == pytest.approx(-0.045, rel=1e-9)
    assert fit.b == pytest.approx(0.12, abs=1e-9)
    np.testing.assert_allclose(fit(TTE), y, rtol=1e-9)


def test_atm_vol_at_is_linear_in_total_variance_by_hand():
    tte = np.array([20.0, 45.0, 100.0]) / 365.0
    vol = np.array([0.12, 0.14, 0.16])
    w = vol**2 * tte
    target = 30.0 / 365.0
    # by hand: between 20 and 45 days, 10/25 of the way
    w30 = w[0] + (w[1] - w[0]) * (30.0 - 20.0) / (45.0 - 20.0)
    assert float(atm_vol_at(target, tte, w)) == pytest.approx(math.sqrt(w30 / target), rel=1e-14)
    # at an expiry the vol is that expiry's; outside the range NaN (no extrapolation)
    got = atm_vol_at(np.array([45.0 / 365.0, 10.0 / 365.0, 120.0 / 365.0]), tte[::-1], w[::-1])
    assert got[0] == pytest.approx(0.14, rel=1e-14)
    assert np.isnan(got[1]) and np.isnan(got[2])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.array([0.1]), np.array([0.2])), "at least 2 points"),
        ((np.array([0.1, 0.0]), np.array([0.2, 0.2])), "tte must be > 0"),
        ((np.array([0.1, 0.2]), np.array([0.2, np.nan])), "must be finite"),
        ((np.array([0.1, 0.2]), np.array([0.2])), "one length"),
    ],
)
def test_fit_input_errors(args, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(*args)
