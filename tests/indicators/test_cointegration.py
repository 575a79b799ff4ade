"""Pairs formation kernels (``indicators.cointegration``) against statsmodels / numpy lstsq."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from indicators.cointegration import (
    FORMATION_OUTPUTS,
    PairFormation,
    formation_nb,
    hedge_ratio_nb,
)
from pricing.ou import ou_mle_nb, simulate_ou

N = 700
DT = 1.0 / 252.0


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """x: a random walk around $40; y = 5 + 1.5 x + an OU spread (theta 0, mu 20/yr)."""
    rng = np.random.default_rng(23)
    x = 40.0 + np.cumsum(rng.normal(0, 0.4, N))
    spread = simulate_ou(N, 0.0, 20.0, 1.5, dt=DT, x0=0.0, rng=5)
    return 5.0 + 1.5 * x + np.asarray(spread).ravel()[:N], x


def _ou_by_lstsq(s: np.ndarray) -> tuple[float, float, float, float]:
    """AR(1) ``s_i = a + b s_{i-1}`` by numpy lstsq and the exact OU mapping (Leung & Li 2015):
    ``mu = -ln b / dt``, ``theta = a / (1 - b)``, ``sigma^2 = 2 mu v / (1 - b^2)``, ``v`` = MLE
    residual variance."""
    x = np.column_stack([np.ones(s.size - 1), s[:-1]])
    (a, b), *_ = np.linalg.lstsq(x, s[1:], rcond=None)
    v = float(np.mean((s[1:] - a - b * s[:-1]) ** 2))
    mu = -math.log(b) / DT
    return a / (1 - b), mu, math.sqrt(2 * mu * v / (1 - b * b)), b


def test_hedge_ratio_matches_statsmodels(pair) -> None:
    y, x = pair
    for lo, hi in ((0, 252), (100, 352), (300, 700)):
        fit = sm.OLS(y[lo:hi], sm.add_constant(x[lo:hi])).fit()
        a, b = hedge_ratio_nb(y[lo:hi], x[lo:hi])
        assert a == pytest.approx(fit.params[0], rel=1e-10)
        assert b == pytest.approx(fit.params[1], rel=1e-10)
    assert math.isnan(hedge_ratio_nb(y[:10], np.full(10, 3.0))[1])  # x constant: no slope


def test_ou_kernel_matches_the_ar1_regression(pair) -> None:
    y, x = pair
    s = y[:252] - 1.5 * x[:252]
    code, _a, b, v, loglik, theta, mu, sigma = ou_mle_nb(s, DT)
    ref_theta, ref_mu, ref_sigma, ref_b = _ou_by_lstsq(s)
    assert code == 0
    assert b == pytest.approx(ref_b, rel=1e-10)
    assert mu == pytest.approx(ref_mu, rel=1e-9)
    assert sigma == pytest.approx(ref_sigma, rel=1e-9)
    # theta = a / (1 - b) amplifies rounding by 1 / (1 - b) (~13 here)
    assert theta == pytest.approx(ref_theta, rel=1e-9, abs=1e-12)
    assert loglik == pytest.approx(-0.5 * 251 * (math.log(2 * math.pi * v) + 1.0), rel=1e-12)
    walk = np.cumsum(np.random.default_rng(1).normal(size=300)) + 100.0
    trend = np.arange(300.0) + np.random.default_rng(2).normal(0, 0.01, 300)
    assert ou_mle_nb(np.full(50, 2.0), DT)[0] == 1  # constant
    assert ou_mle_nb(trend, DT)[0] == 3  # b >= 1: not mean reverting
    assert ou_mle_nb(np.array([1.0, -1.0] * 30), DT)[0] in (2, 4)  # alternating
    assert ou_mle_nb(walk, DT)[0] in (0, 3)


def test_formation_matches_statsmodels_window_by_window(pair) -> None:
    y, x = pair
    fd, rd = 252, 21
    out = dict(zip(FORMATION_OUTPUTS, formation_nb(y, x, fd, rd, DT), strict=True))
    assert (out["formation_id"][:fd] == -1).all() and np.isnan(out["beta"][:fd]).all()
    for k, t in enumerate(range(fd, N, rd)):
        lo = t - fd
        fit = sm.OLS(y[lo:t], sm.add_constant(x[lo:t])).fit()
        beta = fit.params[1]
        theta, mu, sigma, _ = _ou_by_lstsq(y[lo:t] - beta * x[lo:t])
        rows = slice(t, min(t + rd, N))
        assert (out["formation_id"][rows] == k).all()
        np.testing.assert_allclose(out["beta"][rows], beta, rtol=1e-10)
        np.testing.assert_allclose(out["mu"][rows], mu, rtol=1e-8)
        np.testing.assert_allclose(out["sigma"][rows], sigma, rtol=1e-8)
        np.testing.assert_allclose(out["theta"][rows], theta, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(out["half_life_days"][rows], math.log(2) / mu / DT, rtol=1e-8)
        np.testing.assert_allclose(
            out["spread"][rows], y[rows] - out["beta"][rows] * x[rows], rtol=1e-14
        )


def test_truncation_leaves_the_past_unchanged(pair) -> None:
    y, x = pair
    full = formation_nb(y, x, 126, 10, DT)
    for cut in (200, 431, 650):
        part = formation_nb(y[:cut].copy(), x[:cut].copy(), 126, 10, DT)
        for a, b in zip(part, full, strict=True):
            np.testing.assert_array_equal(a, b[:cut])
    # the close of t does not enter the formation in force on t (only the spread value)
    y2 = y.copy()
    y2[400] += 10.0
    moved = dict(zip(FORMATION_OUTPUTS, formation_nb(y2, x, 126, 10, DT), strict=True))
    base = dict(zip(FORMATION_OUTPUTS, full, strict=True))
    assert moved["beta"][400] == base["beta"][400]
    assert moved["spread"][400] == pytest.approx(base["spread"][400] + 10.0)


def test_grid_call_equals_per_parameter_calls(pair) -> None:
    y, x = pair
    fds, rds = [60, 126, 252], [5, 21]
    res = PairFormation.run(y, x, formation_days=fds, refit_days=rds, param_product=True)
    col = 0
    for fd in fds:
        for rd in rds:
            one = formation_nb(y, x, fd, rd, DT)
            for name, arr in zip(FORMATION_OUTPUTS, one, strict=True):
                np.testing.assert_array_equal(getattr(res, name).to_numpy()[:, col], arr)
            col += 1


def test_bad_input_is_refused(pair) -> None:
    y, x = pair
    with pytest.raises(ValueError, match="formation_days"):
        PairFormation.run(y, x, formation_days=2)
    with pytest.raises(ValueError, match="refit_days"):
        PairFormation.run(y, x, refit_days=0)
    with pytest.raises(ValueError, match="dt"):
        PairFormation.run(y, x, dt=0.0)
    y2 = y.copy()
    y2[10] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        formation_nb(y2, x, 60, 5, DT)
