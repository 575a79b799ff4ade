"""Static-arbitrage checks (pricing.arbitrage) against independent references.

* Axel Vogt's SVI slice (Gatheral & Jacquier 2014, Example 3.1) is the paper's published
  example of butterfly arbitrage: ``g(k) < 0`` around ``k ~ 0.9``. The check must find it.
* ``g`` is checked against the risk-neutral density computed from **QuantLib**
  ``blackFormula`` call prices by second differences in the strike (Breeden-Litzenberger):
  ``d2C/dK2 = p(k) / K`` with ``p(k) = g / sqrt(2 pi w) exp(-d_minus^2 / 2)``.
* Calendar counts on hand-made slices (counted by hand).
* Real 2019 SPX dates: the fitted, repaired SVI slices have convex QuantLib call prices in the
  strike over their quoted range and monotone total variance across expiries, computed here
  with plain numpy from the stored parameters.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import QuantLib as ql

from pricing.arbitrage import (
    REPAIR_CALENDAR,
    REPAIR_WINGS,
    butterfly_violations,
    calendar_violations,
    check_surface,
    check_svi_surface,
    density_from_g,
    fit_svi_surface,
    g_from_total_variance,
    svi_g,
)
from pricing.svi import SVIParams, svi_total_variance

VOGT = SVIParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)  # T = 1


def _ql_calls(strikes: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Undiscounted Black calls on a unit forward from QuantLib."""
    return np.array(
        [
            ql.blackFormula(ql.Option.Call, float(K), 1.0, math.sqrt(float(v)), 1.0)
            for K, v in zip(strikes, w, strict=True)
        ]
    )


def test_vogt_example_has_butterfly_arbitrage_and_the_check_finds_it():
    k = np.linspace(-1.5, 1.5, 3001)
    count, min_g = butterfly_violations(VOGT, k)
    g = svi_g(k, VOGT)
    assert count > 0 and min_g < 0
    bad = k[g < 0]
    # the published picture: g dips below zero on the right, around k ~ 0.9
    assert 0.6 < bad.min() < bad.max() < 1.3
    assert 0.8 < k[np.argmin(g)] < 0.95
    # independent: the QuantLib call prices are not convex in the strike there
    strikes = np.exp(np.linspace(0.85, 0.91, 7))
    h = 1e-3
    c = [
        _ql_calls(strikes + s * h, VOGT.total_variance(np.log(strikes + s * h))) for s in (-1, 0, 1)
    ]
    assert ((c[0] - 2 * c[1] + c[2]) / h**2 < 0).all()


@pytest.mark.parametrize(
    "params",
    [VOGT, SVIParams(0.02, 0.15, -0.7, 0.02, 0.12), SVIParams(0.001, 0.02, -0.4, 0.0, 0.03)],
)
def test_g_matches_the_density_of_quantlib_call_prices(params):
    """Breeden-Litzenberger: d2C/dK2 (QuantLib prices, central differences) = p(k) / K."""
    strikes = np.exp(np.linspace(-0.8, 1.2, 41))
    h = 1e-4
    c = [
        _ql_calls(strikes + s * h, params.total_variance(np.log(strikes + s * h)))
        for s in (-1, 0, 1)
    ]
    fd = (c[0] - 2 * c[1] + c[2]) / h**2
    k = np.log(strikes)
    w = params.total_variance(k)
    ours = density_from_g(k, w, svi_g(k, params)) / strikes
    np.testing.assert_allclose(ours, fd, rtol=2e-4, atol=2e-6)


def test_finite_difference_g_agrees_with_closed_form():
    k = np.linspace(-1.0, 1.0, 2001)
    fd = g_from_total_variance(k, VOGT.total_variance(k))
    np.testing.assert_allclose(fd[2:-2], svi_g(k, VOGT)[2:-2], atol=1e-5)


def test_calendar_counts_by_hand():
    grid = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    w = np.array(
        [
            [0.02, 0.02, 0.02, 0.02, 0.02],  # tte 0.5
            [0.01, 0.03, 0.01, 0.03, 0.01],  # tte 1.0: below the 0.5 slice at 3 points
            [0.03, 0.03, 0.03, 0.03, 0.03],  # tte 0.25: listed first, sorted by tte inside
        ]
    )
    tte = np.array([0.5, 1.0, 0.25])
    # sorted: 0.25 (0.03) -> 0.5 (0.02, 5 points below) -> 1.0 (3 points below 0.02)
    np.testing.assert_array_equal(calendar_violations(w, tte), [5, 3, 0])
    # only where both quoted ranges overlap: slice 0 quoted on [-0.1, 0.1], slice 1 on [0, 0.2]
    got = calendar_violations(
        w, tte, k_grid=grid, k_min=np.array([-0.1, 0.0, -0.2]), k_max=np.array([0.1, 0.2, 0.2])
    )
    np.testing.assert_array_equal(got, [3, 1, 0])  # slice 1 vs 0 on {0, 0.1}: only k = 0
    report = check_surface(w, tte, grid)
    np.testing.assert_array_equal(report.calendar, [5, 3, 0])
    assert not report.arbitrage_free


def test_repair_removes_planted_arbitrage_and_repair_false_reports_it():
    """Two expiries whose quotes cross (the later one lower) and a slice whose fit extrapolates
    a right wing into butterfly arbitrage: repaired to zero; without repair, counted."""
    k1 = np.linspace(-0.2, 0.1, 31)
    k2 = np.linspace(-0.25, 0.12, 31)
    w1 = svi_total_variance(k1, 0.004, 0.06, -0.6, 0.02, 0.06)
    w2 = svi_total_variance(k2, 0.0035, 0.06, -0.6, 0.02, 0.06)  # lower: calendar arbitrage
    k3 = np.linspace(-0.12, 0.04, 25)
    w3 = svi_total_variance(k3, 0.0002, 0.05, 0.6, 0.06, 0.04)  # wing root > 0: butterfly
    k = np.concatenate([k1, k2, k3])
    w = np.concatenate([w1, w2, w3])
    off = np.array([0, 31, 62, 87])
    tte = np.array([0.10, 0.12, 0.02])
    raw = fit_svi_surface(k, w, np.ones_like(k), off, tte, repair=False)
    assert raw.calendar[1] > 0 and raw.butterfly[2] > 0
    fixed = fit_svi_surface(k, w, np.ones_like(k), off, tte)
    assert fixed.violations == 0
    assert fixed.repair[1] & REPAIR_CALENDAR and fixed.repair[2] & REPAIR_WINGS
    np.testing.assert_array_equal(fixed.butterfly_before, raw.butterfly)
    # independent re-check of the repaired surface with the plain formula
    report = check_svi_surface(
        fixed.params,
        tte,
        fixed.k_grid,
        k_min=np.array([k1[0], k2[0], k3[0]]),
        k_max=np.array([k1[-1], k2[-1], k3[-1]]),
    )
    assert report.arbitrage_free


@pytest.mark.shared_data
def test_fitted_surfaces_of_real_dates_are_free_of_static_arbitrage(chain_store_2019):
    """Real 2019 SPX/SPXW chains: every fitted slice has convex QuantLib call prices in the
    strike on its quoted range (no butterfly) and total variance non-decreasing in tte on the
    range both consecutive expiries quote (no calendar)."""
    from pricing.surface_fit import fit_snapshot

    for day in ("2019-04-30", "2019-06-03", "2019-07-16"):
        surf = fit_snapshot(chain_store_2019.snapshot("SPX", day))
        f = surf.fitted.reset_index(drop=True)
        assert len(f) >= 38
        assert (f["butterfly_arbitrage_violations"] == 0).all()
        assert (f["calendar_arbitrage_violations"] == 0).all()
        params = f[["svi_a", "svi_b", "svi_rho", "svi_m", "svi_sigma"]].to_numpy(dtype=float)
        for i, row in f.iterrows():
            kk = np.linspace(row["k_min"], row["k_max"], 60)
            strikes = np.exp(kk)
            x = kk - params[i, 3]
            w = params[i, 0] + params[i, 1] * (
                params[i, 2] * x + np.sqrt(x * x + params[i, 4] ** 2)
            )
            c = _ql_calls(strikes, w)
            second = np.diff(c, 2)  # on a log-spaced strike grid convexity in K <=> these > 0
            slopes = np.diff(c) / np.diff(strikes)
            assert (np.diff(slopes) >= -1e-12).all(), (day, row["root"], row["expiration"])
            assert np.isfinite(second).all()
        order = np.argsort(f["tte"].to_numpy(), kind="stable")
        for prev, cur in itertools.pairwise(order):
            lo = max(f.loc[prev, "k_min"], f.loc[cur, "k_min"])
            hi = min(f.loc[prev, "k_max"], f.loc[cur, "k_max"])
            kk = np.linspace(lo, hi, 200)
            assert (
                svi_total_variance(kk, *params[cur])
                >= svi_total_variance(kk, *params[prev]) - 1e-12
            ).all(), (day, f.loc[cur, "root"], f.loc[cur, "expiration"])
