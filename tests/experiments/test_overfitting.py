"""Tests of experiments.overfitting against independent references.

References used:

* Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", J. Portfolio Management 40(5),
  numerical example: annualized SR 2.5 over five years of daily data (T = 1250 at 250
  observations a year), skewness -3, kurtosis 10, N = 100 trials whose annualized Sharpe ratios
  have variance 1/2 -> expected maximum SR0 = 0.1132 per period and DSR = 0.9004.
* Bailey, Borwein, López de Prado & Zhu (2014), "Pseudo-Mathematics and Financial
  Charlatanism", Notices of the AMS 61(5): E[max_N] of 10 standard normal Sharpe ratios is
  about 1.57, and with 5 years of data and a target annualized SR of 1 "no more than 45"
  independent configurations should be tried (E[max_45] / sqrt(5) = 0.9998); MinBTL is bounded
  above by 2 ln(N) / SR^2.
* Lo (2002) and Mertens (2002) formulas typed out by hand in the tests (with the moments from
  ``statistics`` / ``scipy.stats``), seeded Monte Carlo simulations, and a brute-force CSCV
  written here with ``itertools`` and ``scipy.stats.rankdata``.

Nothing is compared with a stored output of the code under test.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments import metrics
from experiments.overfitting import (
    EULER_GAMMA,
    deflated_sharpe_from_trials,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    insufficient_sample,
    min_backtest_length,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
    sharpe_confidence_interval,
    sharpe_standard_error,
    sharpe_standard_error_iid,
)

# --------------------------------------------------------------------------------------
# Deflated Sharpe ratio: the paper's numerical example
# --------------------------------------------------------------------------------------

PAPER_PERIODS = 250  # the example's five years of daily data are T = 1250 observations
PAPER_T = 1250
PAPER_SR_ANN = 2.5
PAPER_SKEW = -3.0
PAPER_KURT = 10.0
PAPER_N = 100
PAPER_VAR_ANN = 0.5
PAPER_SR0 = 0.1132  # per period, as published
PAPER_DSR = 0.9004  # as published


def _paper_series() -> np.ndarray:
    """1250 daily returns with annualized SR 2.5 (at 250/yr), skew ~ -3 and kurtosis ~ 10.

    Kurtosis >= 1 + skew^2 with equality only for two-point distributions, so skew -3 and
    kurtosis 10 is a two-point law with probability q = (13 - sqrt(117)) / 26 = 0.08397 on the
    low value; 105 of 1250 (q = 0.084) gives skew -2.9994 and kurtosis 9.9965.
    """
    x = np.r_[np.full(105, -1.0), np.zeros(PAPER_T - 105)]
    x = (x - x.mean()) / x.std()
    sd = 0.01
    sr_pp = PAPER_SR_ANN / math.sqrt(PAPER_PERIODS)
    return sr_pp * sd + sd * math.sqrt((PAPER_T - 1) / PAPER_T) * x


def test_expected_max_sharpe_matches_paper_example() -> None:
    sr0 = expected_max_sharpe(PAPER_N, PAPER_VAR_ANN / PAPER_PERIODS)
    assert sr0 == pytest.approx(PAPER_SR0, abs=5e-5)
    # Linear in sqrt(V): the annualized benchmark is the per-period one times sqrt(250).
    assert expected_max_sharpe(PAPER_N, PAPER_VAR_ANN) == pytest.approx(
        sr0 * math.sqrt(PAPER_PERIODS), rel=1e-12
    )


def test_psr_at_expected_max_matches_paper_dsr() -> None:
    sr0 = expected_max_sharpe(PAPER_N, PAPER_VAR_ANN / PAPER_PERIODS)
    dsr = probabilistic_sharpe_ratio(
        PAPER_SR_ANN / math.sqrt(PAPER_PERIODS), sr0, PAPER_T, PAPER_SKEW, PAPER_KURT
    )
    assert dsr == pytest.approx(PAPER_DSR, abs=5e-4)


def test_deflated_sharpe_ratio_from_returns_matches_paper() -> None:
    r = _paper_series()
    assert stats.skew(r) == pytest.approx(PAPER_SKEW, abs=1e-3)
    assert stats.kurtosis(r, fisher=False) == pytest.approx(PAPER_KURT, abs=5e-3)
    assert r.mean() / r.std(ddof=1) * math.sqrt(PAPER_PERIODS) == pytest.approx(PAPER_SR_ANN)
    dsr = deflated_sharpe_ratio(
        r, n_trials=PAPER_N, var_trial_sharpe=PAPER_VAR_ANN, periods=PAPER_PERIODS
    )
    assert dsr == pytest.approx(PAPER_DSR, abs=5e-4)
    # The same trials given as 100 annualized Sharpe ratios with sample variance 1/2.
    a = math.sqrt(PAPER_VAR_ANN * (PAPER_N - 1) / PAPER_N)
    trials = np.r_[np.full(50, 1.0 + a), np.full(50, 1.0 - a)]
    assert np.var(trials, ddof=1) == pytest.approx(PAPER_VAR_ANN)
    assert deflated_sharpe_from_trials(r, trials, periods=PAPER_PERIODS) == pytest.approx(
        PAPER_DSR, abs=5e-4
    )


def test_dsr_falls_with_more_trials_and_equals_psr_against_zero_for_one_trial() -> None:
    r = _paper_series()
    m = return_moments(r)
    one = deflated_sharpe_ratio(r, n_trials=1, var_trial_sharpe=0.5, periods=PAPER_PERIODS)
    assert one == pytest.approx(
        stats.norm.cdf(
            m.sharpe
            * math.sqrt(m.n - 1)
            / math.sqrt(1 - m.skew * m.sharpe + (m.kurtosis - 1) / 4 * m.sharpe**2)
        )
    )
    many = [
        deflated_sharpe_ratio(r, n_trials=n, var_trial_sharpe=0.5, periods=PAPER_PERIODS)
        for n in (10, 100, 1000)
    ]
    assert one > many[0] > many[1] > many[2]


# --------------------------------------------------------------------------------------
# Sharpe ratio standard error and confidence interval
# --------------------------------------------------------------------------------------


def test_lo_iid_standard_error_by_hand() -> None:
    r = [0.010, -0.020, 0.015, 0.005, -0.003, 0.012]
    sr = statistics.mean(r) / statistics.stdev(r)
    expected = math.sqrt((1 + sr * sr / 2) / len(r)) * math.sqrt(252)
    assert sharpe_standard_error_iid(np.array(r)) == pytest.approx(expected, rel=1e-12)


def test_mertens_by_hand_on_small_skewed_series() -> None:
    r = np.array([0.010, -0.050, 0.015, 0.005, -0.003, 0.012, 0.008])
    n = len(r)
    mu = sum(r) / n
    m2 = sum((x - mu) ** 2 for x in r) / n
    skew = sum((x - mu) ** 3 for x in r) / n / m2**1.5
    kurt = sum((x - mu) ** 4 for x in r) / n / m2**2
    sr = mu / statistics.stdev(r)
    expected = math.sqrt((1 - skew * sr + (kurt - 1) / 4 * sr * sr) / (n - 1)) * math.sqrt(252)
    assert sharpe_standard_error(r) == pytest.approx(expected, rel=1e-12)


def test_mertens_equals_lo_for_normal_moments() -> None:
    # mu - a and mu + a with probability 1/6 each, mu with 2/3: skewness 0, kurtosis
    # E[x^4] / E[x^2]^2 = (a^4 / 3) / (a^2 / 3)^2 = 3 exactly.
    x = np.tile([-1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 100) * 0.01 + 0.0008
    assert stats.skew(x) == pytest.approx(0.0, abs=1e-10)
    assert stats.kurtosis(x, fisher=False) == pytest.approx(3.0, abs=1e-10)
    n = len(x)
    sr = x.mean() / x.std(ddof=1)
    lo_n_minus_1 = math.sqrt((1 + sr * sr / 2) / (n - 1)) * math.sqrt(252)
    assert sharpe_standard_error(x) == pytest.approx(lo_n_minus_1, rel=1e-10)
    assert sharpe_standard_error(x) / sharpe_standard_error_iid(x) == pytest.approx(
        math.sqrt(n / (n - 1)), rel=1e-10
    )


@pytest.fixture(scope="module")
def skewed_samples() -> tuple[np.ndarray, float]:
    """3000 seeded samples of 1000 days of negatively skewed returns (mirrored lognormal,
    skew ~ -1.75, kurtosis ~ 8.9) with a true per-period Sharpe ratio of 0.2."""
    rng = np.random.default_rng(20261207)
    s = 0.5
    z = rng.lognormal(0.0, s, size=(1000, 3000))
    mean = math.exp(s * s / 2)
    sd = math.sqrt((math.exp(s * s) - 1) * math.exp(s * s))
    eps = -(z - mean) / sd
    true_sr = 0.2
    return 0.01 * (true_sr + eps), true_sr


def test_mertens_standard_error_matches_monte_carlo(skewed_samples) -> None:
    r, _ = skewed_samples
    sr_ann = r.mean(axis=0) / r.std(axis=0, ddof=1) * math.sqrt(252)
    empirical = sr_ann.std(ddof=1)
    mertens = np.mean([sharpe_standard_error(r[:, j]) for j in range(0, r.shape[1], 10)])
    lo = np.mean([sharpe_standard_error_iid(r[:, j]) for j in range(0, r.shape[1], 10)])
    assert mertens == pytest.approx(empirical, rel=0.10)
    # The test can tell the two apart: the iid-normal error is too small by more than 10 %.
    assert lo < 0.9 * empirical


def test_confidence_interval_centre_width_and_coverage(skewed_samples) -> None:
    r, true_sr = skewed_samples
    lo, hi = sharpe_confidence_interval(r[:, 0], 0.95)
    centre = metrics.sharpe(pd.Series(r[:, 0]))
    assert (lo + hi) / 2 == pytest.approx(centre, rel=1e-12)
    assert (hi - lo) / 2 == pytest.approx(1.959963985 * sharpe_standard_error(r[:, 0]), rel=1e-9)
    covered = [
        lo <= true_sr * math.sqrt(252) <= hi
        for lo, hi in (sharpe_confidence_interval(r[:, j], 0.90) for j in range(1000))
    ]
    # 1000 samples: the binomial std of the coverage is 0.0095; allow 3 of them.
    assert np.mean(covered) == pytest.approx(0.90, abs=0.03)


def test_zero_variance_and_bad_input() -> None:
    flat = np.zeros(50)
    assert math.isnan(sharpe_standard_error(flat))
    assert all(math.isnan(v) for v in sharpe_confidence_interval(flat))
    assert math.isnan(deflated_sharpe_ratio(flat, n_trials=10, var_trial_sharpe=0.5))
    s = pd.Series([0.01, np.nan, 0.02, -0.01], index=pd.bdate_range("2024-01-01", periods=4))
    with pytest.raises(ValueError, match=r"1 NaN/inf values \(first at Timestamp\('2024-01-02"):
        sharpe_standard_error(s)
    with pytest.raises(ValueError, match="at least 3 daily returns"):
        sharpe_standard_error([0.01, 0.02])
    with pytest.raises(ValueError, match="level"):
        sharpe_confidence_interval(np.arange(10.0), 1.5)
    with pytest.raises(ValueError, match="at least 2 trials"):
        deflated_sharpe_from_trials(np.arange(10.0), [1.0])
    with pytest.raises(ValueError, match="kurtosis >= 1 \\+ skew\\^2"):
        probabilistic_sharpe_ratio(0.5, 0.0, 100, 5.0, 2.0)  # 1 - 2.5 + 0.0625 < 0


# --------------------------------------------------------------------------------------
# Expected maximum Sharpe ratio, MinBTL and MinTRL
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_sharpe_matches_monte_carlo(n_trials: int) -> None:
    rng = np.random.default_rng(n_trials)
    var = 0.7
    reps = 4000
    draws = rng.normal(0.0, math.sqrt(var), size=(reps, n_trials)).max(axis=1)
    # The extreme-value approximation is ~2 % high at N = 10 and closer for larger N.
    assert expected_max_sharpe(n_trials, var) == pytest.approx(draws.mean(), rel=0.03)
    assert expected_max_sharpe(n_trials, var, mean_sharpe=0.4) == pytest.approx(
        0.4 + expected_max_sharpe(n_trials, var)
    )


def test_expected_max_sharpe_paper_values() -> None:
    assert expected_max_sharpe(10, 1.0) == pytest.approx(1.575, abs=1e-3)
    assert expected_max_sharpe(45, 1.0) / math.sqrt(5) == pytest.approx(0.9998, abs=1e-4)
    # By hand from the formula with scipy's normal quantiles.
    n = 20
    by_hand = (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n) + EULER_GAMMA * stats.norm.ppf(
        1 - 1 / (n * math.e)
    )
    assert expected_max_sharpe(n, 4.0) == pytest.approx(2.0 * by_hand, rel=1e-12)
    assert expected_max_sharpe(1, 4.0, mean_sharpe=0.3) == 0.3
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(ValueError, match="var_sharpe"):
        expected_max_sharpe(10, -1.0)


def test_min_backtest_length_paper_example() -> None:
    # Five years of data and a target annualized SR of 1 allow no more than 45 trials.
    assert min_backtest_length(45, 1.0) < 5.0 < min_backtest_length(46, 1.0)
    assert min_backtest_length(45, 1.0) == pytest.approx(5.0 * 0.9998**2, abs=1e-3)
    # Halving the target quadruples the length; the paper's upper bound 2 ln N / SR^2 holds.
    assert min_backtest_length(100, 0.5) == pytest.approx(4 * min_backtest_length(100, 1.0))
    for n in (2, 10, 100, 1000, 10_000):
        assert min_backtest_length(n, 1.0) < 2 * math.log(n)
    assert min_backtest_length(1, 1.0) == 0.0
    with pytest.raises(ValueError, match="target_sharpe"):
        min_backtest_length(10, 0.0)


def test_min_track_record_length_puts_psr_at_the_level() -> None:
    sr, sr_star, skew, kurt = 0.12, 0.03, -1.2, 7.0
    n = min_track_record_length(sr, sr_star, skew, kurt, level=0.95)
    z = (sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
    assert stats.norm.cdf(z) == pytest.approx(0.95, abs=1e-12)
    assert probabilistic_sharpe_ratio(sr, sr_star, math.ceil(n), skew, kurt) >= 0.95
    assert probabilistic_sharpe_ratio(sr, sr_star, math.floor(n) - 1, skew, kurt) < 0.95
    assert min_track_record_length(0.05, 0.05, 0.0, 3.0) == math.inf


# --------------------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)
# --------------------------------------------------------------------------------------


def _sharpe_exact(x: np.ndarray) -> np.ndarray:
    """Per-period Sharpe of each column; 0 for a constant column (exact test, no tolerance)."""
    out = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j]
        if np.ptp(col) > 0:
            out[j] = col.mean() / col.std(ddof=1)
    return out


def _brute_force_cscv(m: np.ndarray, s: int, metric=_sharpe_exact):
    """Reference CSCV: loop over itertools combinations, rank with scipy.stats.rankdata."""
    t, n = m.shape
    block = t // s
    m = m[t - block * s :]
    parts = np.array_split(np.arange(len(m)), s)
    logits, is_best, oos_best = [], [], []
    for combo in combinations(range(s), s // 2):
        rows_in = np.concatenate([parts[i] for i in combo])
        rows_out = np.concatenate([parts[i] for i in range(s) if i not in combo])
        is_m, oos_m = metric(m[rows_in]), metric(m[rows_out])
        best = int(np.argmax(is_m))
        w = stats.rankdata(oos_m)[best] / (n + 1)
        logits.append(math.log(w / (1 - w)))
        is_best.append(is_m[best])
        oos_best.append(oos_m[best])
    return np.array(logits), np.array(is_best), np.array(oos_best)


def test_pbo_exact_two_blocks_two_trials_by_hand() -> None:
    # Block 1 = rows 0-1, block 2 = rows 2-3 (percent returns).
    # Trial A: block 1 [1, 3] -> SR sqrt(2); block 2 [-1, 1] -> SR 0.
    # Trial B: block 1 [0, 2] -> SR 1/sqrt(2); block 2 [1, 3] -> SR sqrt(2).
    m = np.array([[1.0, 0.0], [3.0, 2.0], [-1.0, 1.0], [1.0, 3.0]]) / 100
    res = probability_of_backtest_overfitting(m, n_splits=2)
    # IS block 1: A is best (sqrt 2 > 1/sqrt 2), OOS it ranks 1 of 2 -> w = 1/3, logit ln(1/2).
    # IS block 2: B is best (sqrt 2 > 0), OOS block 1 it ranks 1 of 2 -> same logit.
    assert res.n_combinations == 2
    np.testing.assert_allclose(res.logits, [math.log(0.5), math.log(0.5)], rtol=1e-12)
    np.testing.assert_allclose(res.is_best, [math.sqrt(2), math.sqrt(2)], rtol=1e-12)
    np.testing.assert_allclose(res.oos_of_best, [0.0, 1 / math.sqrt(2)], atol=1e-12)
    assert res.pbo == 1.0 and res.prob_oos_loss == 0.0
    # Give B a losing block 2 ([-3, -1] -> SR -sqrt(2)): A is then best in sample in both
    # halves and beats B out of sample too (rank 2 of 2, w = 2/3, logit ln 2) -> PBO 0.
    m2 = m.copy()
    m2[2:, 1] = [-0.03, -0.01]
    res2 = probability_of_backtest_overfitting(m2, n_splits=2)
    assert res2.pbo == 0.0
    np.testing.assert_allclose(res2.logits, [math.log(2.0), math.log(2.0)], rtol=1e-12)


def test_pbo_matches_brute_force_with_flat_columns_and_ties() -> None:
    rng = np.random.default_rng(7)
    m = rng.normal(0.0, 0.01, size=(203, 6))
    m[:, 2] = 0.0  # never trades: Sharpe 0 everywhere
    m[:, 3] = 0.0004  # constant return: zero variance -> Sharpe 0
    m[:100, 4] = 0.0  # idle in the first half
    res = probability_of_backtest_overfitting(m, n_splits=6)
    logits, is_best, oos_best = _brute_force_cscv(m, 6)
    assert res.n_rows_dropped == 5 and res.n_rows_used == 198
    assert res.n_combinations == math.comb(6, 3) == len(logits)
    np.testing.assert_allclose(res.logits, logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.is_best, is_best, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(res.oos_of_best, oos_best, rtol=1e-9, atol=1e-14)
    assert res.pbo == pytest.approx(np.mean(logits <= 0))


def test_pbo_custom_metric_matches_brute_force() -> None:
    rng = np.random.default_rng(11)
    m = rng.normal(0.0, 0.01, size=(120, 5))

    def mean_return(x: np.ndarray) -> np.ndarray:
        return x.mean(axis=0)

    res = probability_of_backtest_overfitting(m, n_splits=4, metric=mean_return)
    logits, _, oos_best = _brute_force_cscv(m, 4, metric=mean_return)
    np.testing.assert_allclose(res.logits, logits, rtol=1e-12)
    np.testing.assert_allclose(res.oos_of_best, oos_best, rtol=1e-12)


def test_pbo_noise_is_near_one_half_and_drift_is_near_zero() -> None:
    rng = np.random.default_rng(2026)
    noise = rng.normal(0.0, 0.01, size=(1000, 50))
    res = probability_of_backtest_overfitting(noise, n_splits=16)
    assert 0.3 <= res.pbo <= 0.7
    # Under the null the selected trial's OOS rank is uniform on 1..N, so P(rank <= N/2) = 1/2
    # for even N. One matrix's PBO scatters widely (the 12,870 combinations share their data),
    # so the mean over 20 seeded matrices is held to 0.5 +/- 0.1 (its std is about 0.035).
    pbos = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(0.0, 0.01, size=(1000, 50)), n_splits=16
        ).pbo
        for seed in range(20)
    ]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.1)
    assert res.n_combinations == 12_870 and res.n_rows_dropped == 1000 % 16
    drift = noise.copy()
    drift[:, 17] += 0.004  # per-period Sharpe ~0.4 against pure noise
    res_drift = probability_of_backtest_overfitting(drift, n_splits=16)
    assert res_drift.pbo < 0.05
    assert res_drift.prob_oos_loss < 0.05


def test_pbo_truncation_equals_dropping_leading_rows() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(0.0, 0.01, size=(103, 4))
    full = probability_of_backtest_overfitting(m, n_splits=4)
    trimmed = probability_of_backtest_overfitting(m[3:], n_splits=4)
    assert full.n_rows_dropped == 3 and trimmed.n_rows_dropped == 0
    np.testing.assert_array_equal(full.logits, trimmed.logits)


def test_pbo_speed_16_splits_1000_by_100() -> None:
    # CPU time of this process (the machine is shared; wall time would measure the neighbours).
    # Single-threaded numpy, so CPU time is the unloaded wall time (~0.07 s measured).
    m = np.random.default_rng(1).normal(0.0, 0.01, size=(1000, 100))
    probability_of_backtest_overfitting(m, n_splits=4)  # warm-up
    best = math.inf
    for _ in range(2):
        t0 = time.process_time()
        res = probability_of_backtest_overfitting(m, n_splits=16)
        best = min(best, time.process_time() - t0)
    assert res.n_combinations == 12_870
    assert best < 0.5


def test_pbo_bad_input() -> None:
    m = np.zeros((40, 3))
    with pytest.raises(ValueError, match="n_splits: expected an even integer >= 2, got 3"):
        probability_of_backtest_overfitting(m, n_splits=3)
    with pytest.raises(ValueError, match="n_splits: expected an even integer >= 2, got 0"):
        probability_of_backtest_overfitting(m, n_splits=0)
    with pytest.raises(ValueError, match="at least 2 trials"):
        probability_of_backtest_overfitting(m[:, :1], n_splits=2)
    with pytest.raises(ValueError, match="expected >= 32 rows"):
        probability_of_backtest_overfitting(m[:20], n_splits=16)
    with pytest.raises(ValueError, match="2-D"):
        probability_of_backtest_overfitting(np.zeros(40), n_splits=2)
    bad = m.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN/inf values \(first at row 5, column 2\)"):
        probability_of_backtest_overfitting(bad, n_splits=2)
    frame = pd.DataFrame(bad, columns=["a", "b", "trial_c"])
    with pytest.raises(ValueError, match="column 'trial_c'"):
        probability_of_backtest_overfitting(frame, n_splits=2)
    with pytest.raises(ValueError, match="metric: expected 3 finite scores"):
        probability_of_backtest_overfitting(m, n_splits=2, metric=lambda x: x.mean())
    res = probability_of_backtest_overfitting(
        np.random.default_rng(0).normal(size=(40, 3)), n_splits=2
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.pbo = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# Sample-size flag
# --------------------------------------------------------------------------------------


def test_insufficient_sample_messages() -> None:
    assert (
        insufficient_sample(3, 400, min_trades=20, min_days=60) == "insufficient sample (3 trades)"
    )
    assert (
        insufficient_sample(1, 400, min_trades=20, min_days=60) == "insufficient sample (1 trade)"
    )
    assert (
        insufficient_sample(50, 40, min_trades=20, min_days=60) == "insufficient sample (40 days)"
    )
    assert insufficient_sample(50, 1, min_trades=20, min_days=60) == "insufficient sample (1 day)"
    assert (
        insufficient_sample(0, 10, min_trades=20, min_days=60)
        == "insufficient sample (0 trades, 10 days)"
    )
    assert insufficient_sample(20, 60, min_trades=20, min_days=60) is None
    assert insufficient_sample(None, 60, min_trades=20, min_days=60) is None
    with pytest.raises(ValueError, match="n_days"):
        insufficient_sample(1, -1, min_trades=1, min_days=1)
