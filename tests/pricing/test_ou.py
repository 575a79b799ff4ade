"""pricing.ou: exact OU MLE, Leung-Li optimal stopping levels, Bertram thresholds.

References used (all independent of the code under test):

* statsmodels OLS of ``x_i`` on ``x_{i-1}`` (the conditional MLE of a Gaussian AR(1)) and a
  direct numerical maximisation of the exact OU likelihood (scipy ``minimize``);
* ``scipy.special.pbdv``: the parabolic-cylinder closed form of Leung & Li's integrals
  (DLMF 12.5.1: ``int_0^inf t^{nu-1} e^{-t^2/2 - z t} dt = Gamma(nu) e^{z^2/4} D_{-nu}(z)``);
* the OU generator applied by finite differences (``F``, ``G`` solve ``L u = r u``);
* direct maximisation of each stopping problem's value over the level (the papers' equations are
  first-order conditions of these maxima);
* quadrature of the first-passage-time moment ODE for Bertram's trade length;
* the worked example of Bertram (2010) (alpha = 180.9670, eta = 0.1538 per year, c = 0.001,
  r_f = 0.01) as reproduced by arbitragelab's documentation, and Leung & Li's (2015) GLD-GDX
  parameters (theta = 0.5388, mu = 16.6677, sigma = 0.1599, r = 0.05).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, optimize, special

from pricing.ou import (
    OU_NEGATIVE_AUTOCORRELATION,
    OU_NOT_MEAN_REVERTING,
    OU_OK,
    bertram_return,
    bertram_thresholds,
    bertram_trade_length,
    fit_ou,
    leung_li_F,
    leung_li_G,
    leung_li_levels,
    ou_loglik,
    simulate_ou,
)

DT = 1.0 / 252.0
# Leung & Li (2015): MLE of the GLD-GDX portfolio used in the paper's numerical examples
GLD_GDX = {"theta": 0.5388, "mu": 16.6677, "sigma": 0.1599}
R = 0.05
# Bertram (2010) worked example
B_ALPHA, B_ETA, B_C, B_RF = 180.9670, 0.1538, 0.001, 0.01


# -- exact MLE ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ou_path() -> np.ndarray:
    return simulate_ou(20_000, 1.5, 8.0, 0.6, dt=DT, x0=1.0, rng=20240611)


def test_mle_recovers_known_parameters(ou_path: np.ndarray) -> None:
    fit = fit_ou(ou_path, dt=DT)
    assert fit.status == OU_OK
    # 20,000 daily steps ~ 79 years: theta s.e. ~ sigma/(mu sqrt(T)) ~ 0.008, mu s.e. ~ sqrt(2mu/T)
    assert fit.theta == pytest.approx(1.5, abs=0.03)
    assert fit.mu == pytest.approx(8.0, abs=1.5)
    assert fit.sigma == pytest.approx(0.6, rel=0.02)
    assert fit.half_life == pytest.approx(math.log(2) / fit.mu)
    assert fit.half_life_days == pytest.approx(fit.half_life * 252)
    assert fit.aic == pytest.approx(6.0 - 2.0 * fit.log_likelihood)


def test_mle_equals_statsmodels_ar1_mapping(ou_path: np.ndarray) -> None:
    ols = sm.OLS(ou_path[1:], sm.add_constant(ou_path[:-1])).fit()
    a, b = ols.params
    v = float(np.mean(ols.resid**2))  # MLE variance (divide by n)
    mu = -math.log(b) / DT
    fit = fit_ou(ou_path, dt=DT)
    assert fit.mu == pytest.approx(mu, rel=1e-10)
    assert fit.theta == pytest.approx(a / (1 - b), rel=1e-10)
    assert fit.sigma == pytest.approx(math.sqrt(2 * mu * v / (1 - b * b)), rel=1e-10)
    assert fit.log_likelihood == pytest.approx(ols.llf, rel=1e-10)


def test_mle_is_the_maximum_of_the_exact_likelihood(ou_path: np.ndarray) -> None:
    x = ou_path[:3000]
    fit = fit_ou(x, dt=DT)

    def nll(p: np.ndarray) -> float:
        return -ou_loglik(x, p[0], math.exp(p[1]), math.exp(p[2]), DT)

    res = optimize.minimize(
        nll,
        [1.0, math.log(3.0), math.log(0.3)],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20_000},
    )
    assert res.x[0] == pytest.approx(fit.theta, abs=1e-4)
    assert math.exp(res.x[1]) == pytest.approx(fit.mu, rel=1e-4)
    assert math.exp(res.x[2]) == pytest.approx(fit.sigma, rel=1e-5)
    assert -res.fun == pytest.approx(fit.log_likelihood, abs=1e-6)
    assert ou_loglik(x, fit.theta, fit.mu, fit.sigma, DT) == pytest.approx(fit.log_likelihood)


def test_mle_is_deterministic_for_a_seed() -> None:
    a = simulate_ou(500, 0.0, 5.0, 1.0, rng=7)
    b = simulate_ou(500, 0.0, 5.0, 1.0, rng=7)
    assert np.array_equal(a, b)


def test_no_mean_reversion_gives_a_status_not_a_number() -> None:
    rng = np.random.default_rng(3)
    trend = np.exp(0.002 * np.arange(600)) * 100 + rng.normal(0, 0.01, 600)  # explosive
    fit = fit_ou(trend, dt=DT)
    assert fit.status == OU_NOT_MEAN_REVERTING
    assert fit.ar_slope >= 1.0
    assert math.isnan(fit.mu) and math.isnan(fit.theta) and math.isnan(fit.half_life)
    assert "no mean reversion" in fit.message
    assert not fit.ok

    alternating = np.array([1.0, -1.0] * 50) + rng.normal(0, 0.05, 100)
    fit = fit_ou(alternating, dt=DT)
    assert fit.status == OU_NEGATIVE_AUTOCORRELATION
    assert math.isnan(fit.mu)


def test_mle_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        fit_ou([1.0, 2.0])
    with pytest.raises(ValueError, match="position 2"):
        fit_ou([1.0, 2.0, math.nan, 3.0])
    with pytest.raises(ValueError, match="dt"):
        fit_ou([1.0, 2.0, 1.5], dt=0.0)
    assert fit_ou(np.ones(10)).status == "degenerate"


# -- Leung & Li F and G ---------------------------------------------------------------------------


def _pcf(x: float, sign: float, r: float = R, p: dict[str, float] = GLD_GDX) -> float:
    nu = r / p["mu"]
    z = sign * math.sqrt(2 * p["mu"]) / p["sigma"] * (x - p["theta"])
    d, _ = special.pbdv(-nu, -z)
    return special.gamma(nu) * math.exp(z * z / 4) * d


@pytest.mark.parametrize("x", [0.40, 0.50, 0.5388, 0.60, 0.65])
def test_F_G_match_parabolic_cylinder_closed_form(x: float) -> None:
    p = GLD_GDX
    assert leung_li_F(x, p["theta"], p["mu"], p["sigma"], R) == pytest.approx(_pcf(x, 1), rel=1e-9)
    assert leung_li_G(x, p["theta"], p["mu"], p["sigma"], R) == pytest.approx(_pcf(x, -1), rel=1e-9)


@pytest.mark.parametrize("fn", [leung_li_F, leung_li_G])
def test_F_G_solve_the_ou_ode(fn) -> None:
    th, mu, sig = GLD_GDX["theta"], GLD_GDX["mu"], GLD_GDX["sigma"]
    for x in (0.48, 0.55, 0.6):
        h1, h2 = 1e-5, 3e-4  # the stationary std is 0.028: truncation O(h^2) stays below 1e-6
        d1 = (fn(x + h1, th, mu, sig, R) - fn(x - h1, th, mu, sig, R)) / (2 * h1)
        f0, fp, fm = (fn(x + d, th, mu, sig, R) for d in (0.0, h2, -h2))
        d2 = (fp - 2 * f0 + fm) / h2**2
        assert fn(x, th, mu, sig, R, derivative=True) == pytest.approx(d1, rel=1e-6)
        # sigma^2/2 u'' + mu (theta - x) u' - r u = 0 (relative to the size of each term)
        resid = 0.5 * sig**2 * d2 + mu * (th - x) * d1 - R * f0
        assert abs(resid) < 1e-4 * (abs(0.5 * sig**2 * d2) + abs(mu * (th - x) * d1) + R * f0)


# -- Leung & Li levels against direct maximisation ------------------------------------------------


def _F(x: float) -> float:
    return leung_li_F(x, GLD_GDX["theta"], GLD_GDX["mu"], GLD_GDX["sigma"], R)


def _G(x: float) -> float:
    return leung_li_G(x, GLD_GDX["theta"], GLD_GDX["mu"], GLD_GDX["sigma"], R)


def _argmax(f, lo: float, hi: float) -> float:
    opts = {"xatol": 1e-9}
    res = optimize.minimize_scalar(lambda v: -f(v), bounds=(lo, hi), method="bounded", options=opts)
    return float(res.x)


@pytest.mark.parametrize("c", [0.0, 0.02, 0.05])
def test_leung_li_without_stop_loss_matches_direct_maximisation(c: float) -> None:
    p = GLD_GDX
    lv = leung_li_levels(p["theta"], p["mu"], p["sigma"], r=R, c=c)
    assert lv.status == "ok"
    # exit: V(x) = sup_b (b - c) E[e^{-r tau_b}] = sup_b (b - c) F(x) / F(b)
    b_direct = _argmax(lambda b: (b - c) / _F(b), 0.5, 0.7)
    assert lv.exit_level == pytest.approx(b_direct, abs=2e-6)

    # entry: J(x) = sup_d (V(d) - d - c) G(x) / G(d) for x above d
    def V(x: float) -> float:
        return (lv.exit_level - c) * _F(x) / _F(lv.exit_level) if x < lv.exit_level else x - c

    d_direct = _argmax(lambda d: (V(d) - d - c) / _G(d), 0.35, lv.exit_level - 1e-6)
    assert lv.entry_level == pytest.approx(d_direct, abs=2e-6)
    assert lv.entry_value == pytest.approx(V(lv.entry_level) - lv.entry_level - c)
    # the paper's ordering: d* < theta < b*, and b* > L* = (mu theta + r c) / (mu + r)
    assert lv.entry_level < p["theta"] < lv.exit_level
    assert lv.exit_level > (p["mu"] * p["theta"] + R * c) / (p["mu"] + R)


def test_leung_li_gld_gdx_example_levels() -> None:
    """Leung & Li's GLD-GDX parameters, r = r_hat = 0.05, c = c_hat = 0.02: the levels pinned to
    6 decimals (checked above against direct maximisation and the closed-form F, G)."""
    p = GLD_GDX
    lv = leung_li_levels(p["theta"], p["mu"], p["sigma"], r=R, c=0.02)
    assert lv.exit_level == pytest.approx(0.592976, abs=1e-6)
    assert lv.entry_level == pytest.approx(0.459963, abs=1e-6)


def test_leung_li_stop_loss_matches_direct_maximisation() -> None:
    p, c, stop = GLD_GDX, 0.02, 0.45
    lv = leung_li_levels(p["theta"], p["mu"], p["sigma"], r=R, c=c, stop_loss=stop)
    assert lv.status == "ok"

    def value(x: float, b: float) -> float:
        # E[e^{-r tau} (X_tau - c)], tau = first exit from (L, b): two-sided Laplace transforms
        den = _F(b) * _G(stop) - _F(stop) * _G(b)
        up = (_F(x) * _G(stop) - _F(stop) * _G(x)) / den
        down = (_F(b) * _G(x) - _F(x) * _G(b)) / den
        return (b - c) * up + (stop - c) * down

    b_direct = _argmax(lambda b: value(0.5, b), stop + 1e-4, 0.7)
    assert lv.exit_level == pytest.approx(b_direct, abs=5e-6)

    def gain(x: float) -> float:
        return value(x, lv.exit_level) - x - c

    a_direct = _argmax(lambda a: gain(a) / _F(a), stop + 1e-6, 0.5)
    d_direct = _argmax(lambda d: gain(d) / _G(d), stop + 1e-6, lv.exit_level - 1e-6)
    assert lv.entry_lower == pytest.approx(a_direct, abs=5e-6)
    assert lv.entry_level == pytest.approx(d_direct, abs=5e-6)
    # the paper: the entry region is a bounded interval strictly above the stop-loss
    assert stop < lv.entry_lower < lv.entry_level < lv.exit_level


def test_leung_li_figure_parameters_with_stop_at_0_4834() -> None:
    """The GLD-GDX estimates with ``c = c_hat = 0.05`` and ``L = 0.4834`` (the stop-loss level
    third-party tests attribute to the paper's figure of a simulated path).

    * ``b*_L = 0.567304`` is what an independent re-implementation in the public code index
      (a Python port of Leung & Li's stop-loss exit problem) pins for these inputs;
    * no entry region exists: for every ``x > L`` the entry reward is at most
      ``(b*_L - c) - x - c_hat`` (``V_L`` never exceeds the exit payoff), negative for
      ``x > b*_L - 2c = 0.4673 < L``; so the solver must say ``no_entry``, not invent a level.
    """
    p, c, stop = GLD_GDX, 0.05, 0.4834
    lv = leung_li_levels(p["theta"], p["mu"], p["sigma"], r=R, c=c, stop_loss=stop)
    assert lv.exit_level == pytest.approx(0.567304, abs=5e-6)
    assert lv.exit_level - 2 * c < stop
    assert lv.status == "no_entry"
    assert math.isnan(lv.entry_level) and math.isnan(lv.entry_lower)
    assert lv.entry_value < 0


def test_leung_li_higher_stop_loss_lowers_take_profit() -> None:
    """Leung & Li (2015): "a higher stop-loss level always implies a lower optimal take-profit"."""
    p = GLD_GDX
    free = leung_li_levels(p["theta"], p["mu"], p["sigma"], r=R, c=0.02).exit_level
    exits = [
        leung_li_levels(p["theta"], p["mu"], p["sigma"], r=R, c=0.02, stop_loss=L).exit_level
        for L in (0.40, 0.45, 0.48, 0.50)
    ]
    assert exits[0] == pytest.approx(free, abs=1e-4)  # a far stop barely binds
    assert all(later < earlier for earlier, later in itertools.pairwise(exits))


def test_leung_li_rejects_non_mean_reverting_parameters() -> None:
    with pytest.raises(ValueError, match="mean-reversion speed"):
        leung_li_levels(0.5, 0.0, 0.1, r=0.05, c=0.01)
    with pytest.raises(ValueError, match="below theta"):
        leung_li_levels(0.5, 10.0, 0.1, r=0.05, c=0.01, stop_loss=0.6)


# -- Bertram --------------------------------------------------------------------------------------


def _fpt_moments(x0: float, b: float) -> tuple[float, float]:
    """Mean and variance of the first passage time of dX = -alpha X dt + eta dW from x0 up to
    b > x0, by quadrature of the moment ODEs (T_n'' eta^2/2 - alpha x T_n' = -n T_{n-1})."""
    k = B_ALPHA / B_ETA**2
    lo = -8.0 / math.sqrt(k)

    def m(z: float) -> float:  # speed density 2/eta^2 exp(-k z^2)
        return 2.0 / B_ETA**2 * math.exp(-k * z * z)

    def t1(x: float) -> float:
        inner = lambda y: math.sqrt(math.pi / k) * 0.5 * special.erfc(-math.sqrt(k) * y)  # noqa: E731
        return integrate.quad(
            lambda y: math.exp(k * y * y) * 2 / B_ETA**2 * inner(y), x, b, epsrel=1e-11
        )[0]

    def inner2(y: float) -> float:
        return integrate.quad(lambda z: m(z) * 2 * t1(z), lo, y, epsrel=1e-9, limit=200)[0]

    mean = t1(x0)
    second = integrate.quad(lambda y: math.exp(k * y * y) * inner2(y), x0, b, epsrel=1e-8)[0]
    return mean, second - mean**2


def test_bertram_trade_length_matches_first_passage_quadrature() -> None:
    a, m = -0.008, 0.006
    up_mean, up_var = _fpt_moments(a, m)
    down_mean, down_var = _fpt_moments(-m, -a)  # m -> a is a -> m for -X
    mean, var = bertram_trade_length(a, m, 0.0, B_ALPHA, B_ETA)
    assert mean == pytest.approx(up_mean + down_mean, rel=1e-9)
    assert var == pytest.approx(up_var + down_var, rel=1e-6)


def test_bertram_max_return_solves_the_analytic_condition_and_is_the_maximum() -> None:
    th = bertram_thresholds(0.0, B_ALPHA, B_ETA, c=B_C, objective="return")
    half = th.exit_level
    assert th.entry_level == pytest.approx(-half)
    a = -half
    lhs = math.exp(B_ALPHA * a * a / B_ETA**2) * (2 * a + B_C)
    rhs = B_ETA * math.sqrt(math.pi / B_ALPHA) * special.erfi(a * math.sqrt(B_ALPHA) / B_ETA)
    assert lhs == pytest.approx(rhs, rel=1e-9)
    direct = _argmax(lambda h: bertram_return(-h, h, B_C, 0.0, B_ALPHA, B_ETA)[0], 6e-4, 0.05)
    assert half == pytest.approx(direct, rel=1e-5)
    # asymmetric thresholds do worse (the paper: the optimum is symmetric)
    best = th.expected_return
    for da in (-5e-4, 5e-4):
        assert bertram_return(a + da, half, B_C, 0.0, B_ALPHA, B_ETA)[0] < best


def test_bertram_worked_example_values() -> None:
    """Bertram (2010) example (alpha = 180.9670, eta = 0.1538, c = 0.001; r_f = 0.01 for the
    Sharpe ratio). Published values as printed by arbitragelab's documentation of the paper:
    E[T] = 0.017122, V[T] = 0.00015438, return variance 0.0021857, expected return 0.492358,
    thresholds -/+0.004..., Sharpe thresholds -/+0.01125, Sharpe 3.86293."""
    th = bertram_thresholds(0.0, B_ALPHA, B_ETA, c=B_C, objective="return")
    assert th.entry_level == pytest.approx(-0.0047152, abs=1e-7)
    assert th.trade_length == pytest.approx(0.017122, abs=1e-6)
    assert th.trade_length_var == pytest.approx(0.00015438, abs=5e-8)
    assert th.return_std**2 == pytest.approx(0.0021857, abs=1e-6)
    assert th.expected_return == pytest.approx(0.492358, abs=1e-6)
    sh = bertram_thresholds(0.0, B_ALPHA, B_ETA, c=B_C, objective="sharpe", rf=B_RF)
    # ours: 0.011267 and 3.86188 -- within 2e-5 and 0.03% of the published 0.01125 / 3.86293
    assert sh.exit_level == pytest.approx(0.01125, abs=3e-5)
    assert sh.sharpe == pytest.approx(3.86293, rel=5e-4)
    direct = _argmax(
        lambda h: (
            (
                bertram_return(-h, h, B_C, 0.0, B_ALPHA, B_ETA)[0]
                - B_RF / bertram_trade_length(-h, h, 0.0, B_ALPHA, B_ETA)[0]
            )
            / bertram_return(-h, h, B_C, 0.0, B_ALPHA, B_ETA)[1]
        ),
        6e-4,
        0.05,
    )
    assert sh.exit_level == pytest.approx(direct, rel=1e-5)


def test_bertram_levels_shift_with_theta() -> None:
    base = bertram_thresholds(0.0, 20.0, 0.5, c=0.01)
    moved = bertram_thresholds(3.0, 20.0, 0.5, c=0.01)
    assert moved.entry_level == pytest.approx(base.entry_level + 3.0)
    assert moved.expected_return == pytest.approx(base.expected_return)
