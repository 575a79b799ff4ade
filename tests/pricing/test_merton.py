"""Merton (1976) jump-diffusion: our numba series vs two QuantLib routes.

* :func:`pricing.ql_merton_price` -- QuantLib's ``JumpDiffusionEngine`` algorithm with
  QuantLib's ``PoissonDistribution`` and ``AnalyticEuropeanEngine`` (the engine itself is not
  exported by the QuantLib-Python 1.44 wheel), accuracy 1e-15;
* :func:`pricing.ql_bates_merton_price` -- QuantLib's Fourier ``BatesEngine`` with the Heston
  part switched off (an independent route: characteristic function + Gauss-Laguerre);
* ``ql.blackFormula`` for the no-jump limit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql

from pricing import merton_price, ql_bates_merton_price, ql_merton_price

SPOT = 100.0
RATE = 0.05
DIV = 0.02
STRIKES = np.array([50.0, 70, 80, 90, 95, 100, 105, 110, 130, 150, 200])
# (vol, jumps per year, mean log jump, log jump vol)
PARAM_SETS = {
    "crash": (0.2, 0.5, -0.10, 0.15),
    "frequent": (0.1, 3.0, -0.05, 0.10),
    "upjumps": (0.3, 0.1, 0.20, 0.30),
    "many_small": (0.15, 50.0, -0.01, 0.02),
}


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_matches_quantlib_jump_diffusion_engine(name: str) -> None:
    """Relative 1e-8 where the price is at least 1e-6 x spot (below that QuantLib's two-term
    Black formula loses relative accuracy), absolute 1e-10 x spot everywhere (QuantLib's
    Poisson weights, from its Lanczos log-gamma, are good to ~1e-10 relative when
    lambda T ~ 100; our series is checked to 1e-12 in 40-digit arithmetic below)."""
    vol, lam, mu, dj = PARAM_SETS[name]
    k = np.tile(STRIKES, 4)
    t = np.repeat(np.array([1, 7, 91, 730]) / 365.0, STRIKES.size)
    for right in ("C", "P"):
        ours, terms = merton_price(
            SPOT, k, t, RATE, DIV, vol, lam, mu, dj, right, return_terms=True
        )
        ref = ql_merton_price(SPOT, k, t, RATE, DIV, vol, lam, mu, dj, right, min_iterations=40)
        err = np.abs(ours - ref)
        assert err.max() <= 1e-10 * SPOT, err.max()
        big = ref >= 1e-6 * SPOT
        rel = err[big] / ref[big]
        assert rel.max() <= 1e-8, (name, right, rel.max())
        assert terms.min() >= 1


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_matches_quantlib_bates_engine(name: str) -> None:
    """Independent Fourier route (``BatesEngine``, Gauss-Laguerre 192). Its own accuracy is
    ~1e-13 x spot absolute from 7 days out (at 1 day the Laguerre rule is too coarse for
    QuantLib), so: absolute 1e-11 x spot and relative 1e-8 where the price >= 1e-3 x spot."""
    vol, lam, mu, dj = PARAM_SETS[name]
    k = np.tile(STRIKES, 3)
    t = np.repeat(np.array([7, 91, 730]) / 365.0, STRIKES.size)
    ours = merton_price(SPOT, k, t, RATE, DIV, vol, lam, mu, dj, "C")
    ref = ql_bates_merton_price(SPOT, k, t, RATE, DIV, vol, lam, mu, dj, "C")
    err = np.abs(ours - ref)
    assert err.max() <= 1e-11 * SPOT, err.max()
    big = ref >= 1e-3 * SPOT
    assert (err[big] / ref[big]).max() <= 1e-8


def test_quantlib_stopping_rule_pitfall_is_avoided() -> None:
    """QuantLib's rule stops at the first negligible addendum: for a 7-day 130 call (the
    no-jump term is ~1e-79) it returns ~1e-79. Our series and the Bates engine agree on
    2.8e-4."""
    args = (SPOT, 130.0, 7 / 365.0, RATE, DIV, 0.1, 3.0, -0.05, 0.1, "C")
    ql_default = float(ql_merton_price(*args))  # QuantLib's behaviour (min_iterations=0)
    ours = float(merton_price(*args))
    bates = float(ql_bates_merton_price(*args))
    assert ql_default < 1e-12
    assert ours > 1e-6
    assert ours == pytest.approx(bates, rel=1e-6)


def test_series_against_40_digit_arithmetic() -> None:
    """Merton's sum evaluated in 40-digit arithmetic (mpmath) to convergence."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40

    def exact(strike, tte, vol, lam, mu, dj, cp):
        s, k, t, r, q, v, lm, m0, d = (
            mp.mpf(x) for x in (SPOT, strike, tte, RATE, DIV, vol, lam, mu, dj)
        )
        fwd = s * mp.exp((r - q) * t)
        m = m0 + d * d / 2
        jump = mp.exp(m) - 1
        total = mp.mpf(0)
        for n in range(int(lam * tte) + 120):
            w = mp.exp(-lm * t) * (lm * t) ** n / mp.factorial(n)
            fn = fwd * mp.exp(-lm * jump * t + n * m)
            sd = mp.sqrt(v * v * t + n * d * d)
            d1 = (mp.log(fn / k) + sd * sd / 2) / sd
            d2 = d1 - sd
            total += w * cp * (fn * mp.ncdf(cp * d1) - k * mp.ncdf(cp * d2))
        return float(mp.exp(-r * t) * total)

    for strike, tte, name, right in [
        (100.0, 2.0, "many_small", "C"),
        (80.0, 0.25, "crash", "P"),
        (130.0, 7 / 365, "frequent", "C"),
        (150.0, 1.0, "upjumps", "C"),
    ]:
        vol, lam, mu, dj = PARAM_SETS[name]
        ref = exact(strike, tte, vol, lam, mu, dj, 1 if right == "C" else -1)
        ours = float(merton_price(SPOT, strike, tte, RATE, DIV, vol, lam, mu, dj, right))
        assert ours == pytest.approx(ref, rel=1e-12), (strike, tte, name)


def test_no_jumps_is_black_scholes() -> None:
    for tte in (1 / 365, 0.5, 3.0):
        fwd = SPOT * math.exp((RATE - DIV) * tte)
        disc = math.exp(-RATE * tte)
        for strike in (60.0, 100.0, 150.0):
            for right, ql_type in (("C", ql.Option.Call), ("P", ql.Option.Put)):
                ref = disc * ql.blackFormula(ql_type, strike, fwd, 0.25 * math.sqrt(tte))
                ours = float(
                    merton_price(SPOT, strike, tte, RATE, DIV, 0.25, 0.0, -0.1, 0.1, right)
                )
                assert ours == pytest.approx(ref, rel=1e-10, abs=1e-14 * SPOT)
    # zero jump size (mean 0, vol 0) is also Black-Scholes
    same = merton_price(SPOT, STRIKES, 0.5, RATE, DIV, 0.25, 5.0, 0.0, 0.0, "C")
    bs = merton_price(SPOT, STRIKES, 0.5, RATE, DIV, 0.25, 0.0, 0.0, 0.0, "C")
    np.testing.assert_allclose(same, bs, rtol=1e-13, atol=1e-14 * SPOT)


def test_truncation_tolerance_is_honoured() -> None:
    """A loose tolerance changes the price by less than that fraction of it (tail bound)."""
    vol, lam, mu, dj = PARAM_SETS["frequent"]
    k = np.tile(STRIKES, 2)
    t = np.repeat([0.25, 2.0], STRIKES.size)
    for right in ("C", "P"):
        tight = merton_price(SPOT, k, t, RATE, DIV, vol, lam, mu, dj, right)
        for tol in (1e-4, 1e-8):
            loose, terms = merton_price(
                SPOT, k, t, RATE, DIV, vol, lam, mu, dj, right, tol=tol, return_terms=True
            )
            assert np.all(loose <= tight * (1 + 1e-14))  # truncating drops positive terms
            assert np.all(tight - loose <= tol * tight)
            assert terms.max() < 60


def test_large_intensity_does_not_underflow() -> None:
    """lambda T = 400: exp(-lambda T) underflows a direct evaluation; weights are computed in
    logs. Checked against QuantLib's engine port (which sums at least lambda' T terms)."""
    strikes = np.array([80.0, 100.0, 125.0])
    tte = 730 / 365.0
    ours, terms = merton_price(
        SPOT, strikes, tte, RATE, DIV, 0.1, 200.0, -0.002, 0.01, "C", return_terms=True
    )
    assert np.all(np.isfinite(ours)) and terms.min() > 400
    ref = ql_merton_price(SPOT, strikes, tte, RATE, DIV, 0.1, 200.0, -0.002, 0.01, "C")
    np.testing.assert_allclose(ours, ref, rtol=1e-8)


def test_broadcasting_and_invalid_inputs() -> None:
    out = merton_price(
        SPOT, STRIKES.reshape(1, -1), np.array([[0.1], [1.0]]), RATE, DIV, 0.2, 1.0, -0.1, 0.1
    )
    assert out.shape == (2, STRIKES.size)
    bad = merton_price(
        SPOT, [-1.0, 100.0, 100.0], [1.0, -1.0, 0.0], RATE, DIV, 0.2, 1.0, -0.1, 0.1, "P"
    )
    assert np.isnan(bad[0]) and np.isnan(bad[1]) and bad[2] == 0.0
    assert np.isnan(merton_price(SPOT, 100.0, 1.0, RATE, DIV, 0.2, -1.0, -0.1, 0.1))
    with pytest.raises(ValueError, match="tol"):
        merton_price(SPOT, 100.0, 1.0, RATE, DIV, 0.2, 1.0, -0.1, 0.1, tol=0.0)
    with pytest.raises(ValueError, match="right"):
        merton_price(SPOT, 100.0, 1.0, RATE, DIV, 0.2, 1.0, -0.1, 0.1, "X")
