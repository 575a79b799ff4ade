"""SSVI (pricing.ssvi) against the paper's formulas, scipy and the dense-grid checks.

* Gatheral & Jacquier (2014) Definition 4.1 evaluated by hand here equals
  :func:`ssvi_total_variance`, and the raw-SVI map of their section 3.3 reproduces it;
* power-law surfaces drawn inside the no-arbitrage set (eta (1 + |rho|) <= 2, gamma <= 1/2)
  pass the butterfly and calendar checks on a wide dense grid (calendar on the whole grid, not
  only quoted ranges) -- "arbitrage-free by construction";
* noiseless surfaces are recovered; the isotonic step equals
  ``scipy.optimize.isotonic_regression``; the ATM interpolation equals ``numpy.polyfit``;
* a real 2019 date: the fit is arbitrage-free on the same checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import isotonic_regression

from pricing.arbitrage import check_svi_surface
from pricing.ssvi import (
    SSVIParams,
    atm_total_variance,
    fit_ssvi,
    isotonic_increasing,
    ssvi_phi,
    ssvi_to_svi,
    ssvi_total_variance,
)


def _by_hand(k: float, theta: float, rho: float, eta: float, gamma: float) -> float:
    phi = eta / (theta**gamma * (1 + theta) ** (1 - gamma))
    return theta / 2 * (1 + rho * phi * k + math.sqrt((phi * k + rho) ** 2 + 1 - rho**2))


def test_formula_and_raw_svi_map_match_the_paper_by_hand():
    p = SSVIParams(rho=-0.6, eta=1.1, gamma=0.35)
    for theta in (0.0004, 0.01, 0.09):
        k = np.linspace(-1.0, 0.6, 17)
        hand = np.array([_by_hand(x, theta, p.rho, p.eta, p.gamma) for x in k])
        np.testing.assert_allclose(ssvi_total_variance(k, theta, p), hand, rtol=1e-14)
        np.testing.assert_allclose(ssvi_to_svi(theta, p).total_variance(k), hand, rtol=1e-12)
        # at the money the total variance is theta
        assert float(ssvi_total_variance(0.0, theta, p)) == pytest.approx(theta, rel=1e-15)
    assert float(ssvi_phi(0.04, 1.0, 0.5)) == pytest.approx(1.0 / (0.2 * math.sqrt(1.04)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": 1.5, "rho": -0.5}, r"eta \(1 \+ \|rho\|\) must be <= 2"),
        ({"gamma": 0.6}, r"gamma must be in \(0, 1/2\]"),
        ({"gamma": 0.0}, r"gamma must be in \(0, 1/2\]"),
        ({"rho": -1.0}, r"\|rho\| < 1"),
        ({"eta": 0.0}, "eta must be > 0"),
    ],
)
def test_params_outside_the_no_arbitrage_set_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SSVIParams(**{"rho": -0.5, "eta": 1.0, "gamma": 0.4, **kwargs})


def test_surfaces_inside_the_parameter_set_are_arbitrage_free_on_a_dense_grid():
    rng = np.random.default_rng(11)
    tte = np.array([1 / 365, 7 / 365, 30 / 365, 0.25, 0.5, 1.0, 2.0, 5.0])
    grid = np.linspace(-3.0, 2.0, 2001)
    for _ in range(25):
        rho = rng.uniform(-0.99, 0.99)
        gamma = rng.uniform(0.01, 0.5)
        eta = rng.uniform(0.05, 1.0) * 2.0 / (1.0 + abs(rho))  # up to the bound
        p = SSVIParams(rho, eta, gamma)
        theta = np.cumsum(rng.uniform(1e-5, 0.05, tte.size))  # increasing ATM total variance
        svi = np.array([ssvi_to_svi(th, p).to_array() for th in theta])
        report = check_svi_surface(svi, tte, grid)  # calendar on the whole grid
        assert report.arbitrage_free, (rho, eta, gamma)
        assert (report.min_g >= 0).all()


def test_fit_recovers_a_noiseless_surface():
    p = SSVIParams(-0.7, 1.1, 0.4)
    tte = np.array([0.02, 0.1, 0.3, 0.7, 1.5])
    theta = 0.04 * tte + 0.0005 * np.sqrt(tte)
    ks, ws = [], []
    for th in theta:
        k = np.linspace(-4 * math.sqrt(th), 2 * math.sqrt(th), 31)  # k = 0 not on the grid
        ks.append(k)
        ws.append(ssvi_total_variance(k, th, p))
    off = np.r_[0, np.cumsum([k.size for k in ks])]
    fit = fit_ssvi(np.concatenate(ks), np.concatenate(ws), np.ones(off[-1]), off, tte)
    assert fit.converged
    np.testing.assert_allclose(fit.theta, theta, rtol=2e-4)  # local parabola at k = 0
    assert fit.params.rho == pytest.approx(-0.7, abs=2e-3)
    assert fit.params.eta == pytest.approx(1.1, rel=2e-3)
    assert fit.params.gamma == pytest.approx(0.4, abs=2e-3)


def test_isotonic_step_matches_scipy():
    rng = np.random.default_rng(5)
    y = np.cumsum(rng.normal(0.01, 0.03, 40))
    wt = rng.uniform(0.5, 3.0, 40)
    ref = isotonic_regression(y, weights=wt, increasing=True).x
    np.testing.assert_allclose(isotonic_increasing(y, wt), ref, rtol=1e-12, atol=1e-15)


def test_atm_total_variance_is_the_local_parabola_at_zero():
    k = np.array([-0.05, -0.02, 0.01, 0.03, 0.07])
    w = 0.01 + 0.1 * k**2 - 0.05 * k + 0.3 * k**3
    near = [1, 2, 3]  # the three quotes nearest k = 0
    ref = np.polyval(np.polyfit(k[near], w[near], 2), 0.0)
    assert atm_total_variance(k, w) == pytest.approx(ref, rel=1e-12)
    assert math.isnan(atm_total_variance(k[k > 0], w[k > 0]))  # no extrapolation


@pytest.mark.shared_data
def test_real_date_ssvi_fit_is_arbitrage_free(chain_store_2019):
    from pricing.surface_fit import fit_snapshot

    surf = fit_snapshot(chain_store_2019.snapshot("SPX", "2019-05-15"), model="ssvi")
    f = surf.fitted
    assert len(f) >= 38
    assert (f["butterfly_arbitrage_violations"] == 0).all()
    assert (f["calendar_arbitrage_violations"] == 0).all()
    params = SSVIParams(surf.model_info["rho"], surf.model_info["eta"], surf.model_info["gamma"])
    assert params.eta * (1 + abs(params.rho)) <= 2 + 1e-12
    # whole-grid calendar (extrapolated wings included): SSVI is calendar-free everywhere
    svi = f[["svi_a", "svi_b", "svi_rho", "svi_m", "svi_sigma"]].to_numpy(dtype=float)
    assert check_svi_surface(svi, f["tte"].to_numpy(), surf.k_grid).arbitrage_free
    # a three-parameter surface fits SPX far less well than per-expiry SVI, but within reason
    assert float(f["rmse"].median()) < 1.5
