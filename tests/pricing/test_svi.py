"""Raw SVI (pricing.svi): formulas, parameter checks and the quasi-explicit constrained fit.

References used here, none of them our own fitting code:

* known parameters of noiseless synthetic slices (the fit must recover them);
* scipy: ``scipy.optimize.minimize(method="SLSQP")`` solves the same constrained least-squares
  problems (the 3-variable inner QP, the full 5-parameter fit from several starts); our
  optimum may not be worse;
* central finite differences of the total variance for ``w'`` and ``w''``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize

from pricing.svi import (
    FIT_OK,
    FIT_TOO_FEW_POINTS,
    LEE_SLOPE,
    RHO_MAX,
    SVIParams,
    fit_svi,
    fit_svi_slices,
    svi_derivatives,
    svi_implied_vol,
    svi_total_variance,
)

# (a, b, rho, m, sigma, k_lo, k_hi): ordinary, near-boundary rho (both signs), a short expiry
# with a small sigma, a negative a, a near-flat smile
CASES = [
    (0.04, 0.4, -0.4, 0.05, 0.2, -0.6, 0.4),
    (0.001, 0.05, -0.95, 0.01, 0.05, -0.12, 0.06),
    (-0.02, 0.3, 0.9, -0.1, 0.3, -0.6, 0.4),
    (0.0001, 0.01, -0.7, 0.002, 0.01, -0.05, 0.03),
    (0.0004, 0.02, -0.99, 0.0, 0.02, -0.1, 0.05),
    (0.02, 0.05, 0.0, 0.0, 0.5, -0.5, 0.5),
]


@pytest.mark.parametrize("case", CASES)
def test_fit_recovers_known_parameters_from_noiseless_slices(case):
    *true, lo, hi = case
    k = np.linspace(lo, hi, 41)
    w = svi_total_variance(k, *true)
    fit = fit_svi(k, w)
    assert fit.status == FIT_OK
    got = fit.params.to_array()
    scale = np.array([max(abs(true[0]), 1e-3 * abs(true[1])), true[1], 1.0, 1.0, true[4]])
    np.testing.assert_allclose((got - np.array(true)) / scale, 0.0, atol=2e-4)
    # the fitted smile reproduces the data to ~1e-7 of the total variance
    np.testing.assert_allclose(fit.params.total_variance(k), w, rtol=0, atol=1e-7 * w.max())


def test_batch_fit_is_deterministic_serial_equals_parallel():
    ks, ws, off = [], [], [0]
    for *true, lo, hi in CASES:
        k = np.linspace(lo, hi, 25)
        ks.append(k)
        ws.append(svi_total_variance(k, *true))
        off.append(off[-1] + k.size)
    k, w = np.concatenate(ks), np.concatenate(ws)
    om = np.ones_like(k)
    serial = fit_svi_slices(k, w, om, np.array(off), parallel=False)
    parallel = fit_svi_slices(k, w, om, np.array(off), parallel=True)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def _slsqp(k, w, om, x0, lee=LEE_SLOPE):
    """Direct 5-parameter constrained fit with scipy (the independent optimizer)."""
    om = om / om.sum()

    def f(p):
        return float((om * (svi_total_variance(k, *p) - w) ** 2).sum())

    cons = (
        {"type": "ineq", "fun": lambda p: p[0] + p[1] * p[4] * np.sqrt(max(1 - p[2] ** 2, 0))},
        {"type": "ineq", "fun": lambda p: lee - p[1] * (1 + abs(p[2]))},
    )
    span = k.max() - k.min()
    bounds = [
        (None, None),
        (0, None),
        (-RHO_MAX, RHO_MAX),
        (k.min() - span / 2, k.max() + span / 2),
        (1e-4 * span, 4 * span + 0.05),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(
            f,
            x0,
            method="SLSQP",
            bounds=bounds,
            constraints=cons,
            options={"maxiter": 2000, "ftol": 1e-16},
        )
    return f(res.x)


def test_fit_is_no_worse_than_scipy_slsqp_from_many_starts():
    """A noisy, skewed slice: our objective <= the best of 27 SLSQP runs (to 1e-6 relative)."""
    rng = np.random.default_rng(7)
    k = np.sort(rng.uniform(-0.35, 0.12, 60))
    w = svi_total_variance(k, 0.006, 0.08, -0.7, 0.03, 0.08) * (1 + 0.01 * rng.standard_normal(60))
    om = rng.uniform(0.5, 2.0, 60)
    ours = fit_svi(k, w, om)
    best = np.inf
    for rho0 in (-0.9, -0.5, 0.0):
        for m0 in (-0.1, 0.0, 0.1):
            for s0 in (0.02, 0.1, 0.4):
                best = min(best, _slsqp(k, w, om, np.array([0.5 * w.min(), 0.1, rho0, m0, s0])))
    assert ours.objective <= best * (1 + 1e-6)


def test_inner_qp_solution_matches_scipy_on_an_active_constraint_problem():
    """Fixed (m, sigma) with data steeper than Lee's bound: the exact 3-variable QP optimum
    (``_inner_nb``) equals SLSQP on (a, b, rho) with the same constraints."""
    from pricing.svi import N_BASE_CONSTRAINTS, _inner_nb, _static_constraints_nb

    k = np.linspace(-0.3, 0.2, 30)
    w = 0.01 + 3.0 * np.maximum(-k, 0.0)  # a left wing of slope 3 > Lee's 2
    om = np.full(k.size, 1.0 / k.size)
    m, sigma = 0.0, 0.05
    cons = np.empty((N_BASE_CONSTRAINTS, 3))
    bound = np.empty(N_BASE_CONSTRAINTS)
    nstatic = _static_constraints_nb(cons, bound, RHO_MAX)
    opts = np.array([RHO_MAX, LEE_SLOPE, 0.0, 1e-18, nstatic])
    empty = np.empty(0)
    a, d, c, obj, ok = _inner_nb(m, sigma, k, w, om, empty, empty, empty, cons, bound, opts)
    assert ok
    b, rho = c / sigma, d / c
    assert b * (1 + abs(rho)) == pytest.approx(LEE_SLOPE, rel=1e-12)  # Lee's bound is active

    def f(p):
        return float((om * (svi_total_variance(k, p[0], p[1], p[2], m, sigma) - w) ** 2).sum())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(
            f,
            np.array([0.01, 0.1, -0.5]),
            method="SLSQP",
            bounds=[(None, None), (0, None), (-RHO_MAX, RHO_MAX)],
            constraints=(
                {"type": "ineq", "fun": lambda p: LEE_SLOPE - p[1] * (1 + abs(p[2]))},
                {"type": "ineq", "fun": lambda p: p[0] + p[1] * sigma * np.sqrt(1 - p[2] ** 2)},
            ),
            options={"maxiter": 1000, "ftol": 1e-18},
        )
    assert obj <= f(res.x) * (1 + 1e-7) + 1e-20
    np.testing.assert_allclose([a, b, rho], res.x, rtol=1e-4, atol=1e-7)


def test_constraints_hold_on_a_wild_slice():
    """Data that want an arbitrageable smile (steep, kinked): every parameter constraint holds."""
    k = np.linspace(-0.2, 0.2, 21)
    w = np.where(k < 0, 0.5 * -k, 0.0) + 1e-4
    fit = fit_svi(k, w)
    p = fit.params
    assert p.b >= 0 and abs(p.rho) <= RHO_MAX and p.sigma > 0
    assert p.min_total_variance >= -1e-15
    assert p.b * (1 + abs(p.rho)) <= LEE_SLOPE + 1e-12


def test_grid_bounds_and_wing_constraints_are_met():
    rng = np.random.default_rng(3)
    k = np.linspace(-0.15, 0.06, 40)
    w = svi_total_variance(k, 0.002, 0.03, 0.5, 0.06, 0.05) * (1 + 0.005 * rng.standard_normal(40))
    free = fit_svi(k, w)
    grid = np.linspace(-0.3, 0.3, 61)
    lower = free.params.total_variance(grid) * 1.05
    bounded = fit_svi(k, w, k_grid=grid, lower=lower, wings=True)
    p = bounded.params
    assert (p.total_variance(grid) >= lower - 1e-14).all()
    assert p.a - p.b * (1 + p.rho) * p.m >= -1e-14  # right wing asymptote >= 0 at k = 0
    assert p.a + p.b * (1 - p.rho) * p.m >= -1e-14  # left wing asymptote >= 0 at k = 0
    assert bounded.objective >= free.objective


def test_derivatives_match_central_finite_differences():
    p = SVIParams(0.01, 0.2, -0.6, 0.05, 0.1)
    k = np.linspace(-0.5, 0.5, 11)
    h = 1e-5
    w, w1, w2 = svi_derivatives(k, *p.to_array())
    np.testing.assert_allclose(w, p.total_variance(k), rtol=1e-15)
    fd1 = (p.total_variance(k + h) - p.total_variance(k - h)) / (2 * h)
    fd2 = (p.total_variance(k + h) - 2 * w + p.total_variance(k - h)) / h**2
    np.testing.assert_allclose(w1, fd1, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(w2, fd2, rtol=1e-4, atol=1e-5)
    # implied vol is sqrt(w / tte), by hand at k = m: a + b sigma
    assert svi_implied_vol(0.05, 0.25, *p.to_array()) == pytest.approx(
        np.sqrt((0.01 + 0.2 * 0.1) / 0.25), rel=1e-15
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"b": -0.1}, "b must be >= 0"),
        ({"rho": 1.0}, r"\|rho\| < 1"),
        ({"sigma": 0.0}, "sigma must be > 0"),
        ({"a": -1.0}, "minimum total variance"),
        ({"m": float("nan")}, "must be finite"),
    ],
)
def test_params_reject_values_outside_the_domain(kwargs, match):
    base = {"a": 0.01, "b": 0.1, "rho": -0.5, "m": 0.0, "sigma": 0.1}
    with pytest.raises(ValueError, match=match):
        SVIParams(**{**base, **kwargs})


def test_fit_input_errors_and_too_few_points():
    k = np.linspace(-0.1, 0.1, 10)
    w = 0.01 + 0 * k
    with pytest.raises(ValueError, match="must have 10 values"):
        fit_svi(k, w[:5])
    with pytest.raises(ValueError, match="total_variance must be >= 0"):
        fit_svi(k, -w)
    with pytest.raises(ValueError, match="weights must be finite"):
        fit_svi(k, w, np.full(10, -1.0))
    with pytest.raises(ValueError, match="need k_grid"):
        fit_svi(k, w, lower=w)
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        fit_svi_slices(k, w, np.ones(10), np.array([0, 4]))
    few = fit_svi(k[:4], w[:4])
    assert few.status == FIT_TOO_FEW_POINTS and few.params is None
