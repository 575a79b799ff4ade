"""Tests of indicators.jumps: BV / BNS statistic against a numpy transcription of the papers'
formulas, look-ahead, session windows, and Merton MLE recovery on a seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from indicators.jumps import (
    JumpStats,
    merton_fit,
    merton_logpdf,
    session_jump_stats,
    session_labels,
)


def _reference(prices: np.ndarray) -> dict[str, float]:
    """RV, BV, TQ and the linear BNS z of one session, straight from the papers.

    BNS (2004): BV = mu1^-2 sum_{j=2}^n |r_j||r_{j-1}|, mu1 = sqrt(2/pi).
    BNS (2006): TQ = n mu_{4/3}^-3 sum_{j=3}^n |r_j|^{4/3}|r_{j-1}|^{4/3}|r_{j-2}|^{4/3},
    mu_{4/3} = 2^{2/3} Gamma(7/6)/Gamma(1/2); z = (RV - BV) / sqrt(((pi^2/4) + pi - 5) TQ / n).
    """
    r = np.diff(np.log(prices))
    n = r.size
    mu1 = math.sqrt(2 / math.pi)
    mu43 = 2 ** (2 / 3) * special.gamma(7 / 6) / special.gamma(0.5)
    rv = np.sum(r**2)
    bv = np.sum(np.abs(r[1:]) * np.abs(r[:-1])) / mu1**2
    tq = n / mu43**3 * np.sum((np.abs(r[2:]) * np.abs(r[1:-1]) * np.abs(r[:-2])) ** (4 / 3))
    z = (rv - bv) / math.sqrt((math.pi**2 / 4 + math.pi - 5) * tq / n)
    return {"rv": rv, "bv": bv, "tq": tq, "z": z, "n": n}


def _two_sessions(seed: int, jump: float = 0.0) -> pd.Series:
    """Two RTH sessions of 390 one-minute bars (ET), 20 %/yr diffusion; optional jump in day 2."""
    rng = np.random.default_rng(seed)
    sig = 0.20 / math.sqrt(252 * 390)
    idx = []
    for day in ("2024-03-04", "2024-03-05"):
        idx.append(pd.date_range(f"{day} 09:30", periods=390, freq="1min", tz="America/New_York"))
    index = idx[0].append(idx[1])
    r = sig * rng.standard_normal(index.size)
    r[390 + 200] += jump
    return pd.Series(4000.0 * np.exp(np.cumsum(r)), index=index)


def test_bv_and_bns_statistic_match_paper_formulas() -> None:
    close = _two_sessions(11, jump=0.01)
    out = session_jump_stats(close, "intraday")
    assert list(out.index.strftime("%Y-%m-%d")) == ["2024-03-04", "2024-03-05"]
    for i, day in enumerate(out.index):
        ref = _reference(close.to_numpy()[i * 390 : (i + 1) * 390])
        row = out.loc[day]
        assert row["n_returns"] == ref["n"] == 389
        for key, col in (("rv", "rv"), ("bv", "bv"), ("tq", "tq"), ("z", "jump_stat")):
            assert row[col] == pytest.approx(ref[key], rel=1e-10), (day, col)
        assert row["vol_ann"] == pytest.approx(math.sqrt(252 * ref["rv"]), rel=1e-12)
    # the 1 % jump (about 100 minute-sigmas) is detected; the diffusion day is not flagged
    assert out["jump_flag"].tolist() == [0.0, 1.0]
    assert out["jump_stat"].iloc[1] > 5.0


def test_vectorbt_face_equals_reference_and_has_no_lookahead() -> None:
    close = _two_sessions(5, jump=0.004)
    labels = session_labels(close.index, "intraday")
    full = JumpStats.run(close, labels, alpha=[0.01, 0.001])
    ref = _reference(close.to_numpy()[390:])
    assert full.jump_stat.iloc[-1, 0] == pytest.approx(ref["z"], rel=1e-10)
    assert full.bv.iloc[-1, 1] == pytest.approx(ref["bv"], rel=1e-10)
    # first bar of each session has no return: NaN, not 0
    assert np.isnan(full.rv.iloc[0, 0]) and np.isnan(full.rv.iloc[390, 0])
    # truncating the future leaves every past running value unchanged
    for cut in (100, 391, 600):
        part = JumpStats.run(close.iloc[:cut], labels[:cut], alpha=[0.01, 0.001])
        for name in ("rv", "bv", "jump_stat", "jump_flag"):
            a = getattr(full, name).iloc[:cut].to_numpy()
            b = getattr(part, name).to_numpy()
            np.testing.assert_array_equal(a, b)


def test_session_labels_overnight_and_intraday_windows() -> None:
    stamps = pd.DatetimeIndex(
        [
            "2024-03-08 16:30",  # Friday after the close -> Monday
            "2024-03-10 18:00",  # Sunday Globex reopen -> Monday
            "2024-03-11 09:29",  # Monday pre-open -> Monday
            "2024-03-11 09:30",  # regular session
            "2024-03-11 15:59",
            "2024-03-11 16:00",  # -> Tuesday
        ]
    ).tz_localize("America/New_York")
    assert session_labels(stamps, "overnight").tolist() == [
        20240311, 20240311, 20240311, -1, -1, 20240312,
    ]  # fmt: skip
    assert session_labels(stamps, "intraday").tolist() == [-1, -1, -1, 20240311, 20240311, -1]
    # UTC stamps are converted: 13:30 UTC in March 2024 (EDT) is 09:30 ET
    utc = pd.DatetimeIndex(["2024-03-11 13:29", "2024-03-11 13:30"]).tz_localize("UTC")
    assert session_labels(utc, "intraday").tolist() == [-1, 20240311]
    with pytest.raises(ValueError, match="kind"):
        session_labels(stamps, "weekly")


def test_session_jump_stats_rejects_bad_input() -> None:
    close = _two_sessions(1)
    with pytest.raises(ValueError, match="sorted"):
        session_jump_stats(close.iloc[::-1])
    with pytest.raises(ValueError, match="alpha"):
        session_jump_stats(close, alpha=1.5)
    bad = close.copy()
    bad.iloc[3] = 0.0
    with pytest.raises(ValueError, match="> 0"):
        session_jump_stats(bad)


def test_merton_logpdf_is_the_poisson_normal_mixture() -> None:
    params = (0.0003, 0.006, 0.3, -0.02, 0.03)
    x = np.array([-0.08, -0.02, 0.0, 0.01])
    ref = sum(
        stats.poisson.pmf(k, params[2])
        * stats.norm.pdf(
            x, params[0] + k * params[3], math.sqrt(params[1] ** 2 + k * params[4] ** 2)
        )
        for k in range(40)
    )
    np.testing.assert_allclose(np.exp(merton_logpdf(x, *params, n_terms=40)), ref, rtol=1e-12)
    total, _ = integrate.quad(
        lambda v: math.exp(merton_logpdf(np.array([v]), *params)[0]), -0.5, 0.5, points=[0, -0.02]
    )
    assert total == pytest.approx(1.0, abs=1e-6)


def test_merton_mle_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    mu, sigma, lam, mj, sj = 0.0004, 0.006, 0.08, -0.015, 0.02
    jumps = rng.poisson(lam, n)
    x = (
        mu
        + sigma * rng.standard_normal(n)
        + mj * jumps
        + sj * np.sqrt(jumps) * rng.standard_normal(n)
    )
    fit = merton_fit(x)
    assert fit.converged and fit.n_obs == n
    assert fit.intensity == pytest.approx(lam, abs=0.025)
    assert fit.jump_mean == pytest.approx(mj, abs=0.005)
    assert fit.jump_vol == pytest.approx(sj, abs=0.006)
    assert fit.sigma == pytest.approx(sigma, rel=0.05)
    assert fit.mu == pytest.approx(mu, abs=3 * sigma / math.sqrt(n))
    # an MLE cannot be beaten by the true parameters (likelihood written out with scipy here)
    true_ll = np.log(
        sum(
            stats.poisson.pmf(k, lam)
            * stats.norm.pdf(x, mu + k * mj, math.sqrt(sigma**2 + k * sj**2))
            for k in range(30)
        )
    ).sum()
    assert fit.loglik >= true_ll - 1e-6
    with pytest.raises(ValueError, match=">= 50"):
        merton_fit(x[:10])
