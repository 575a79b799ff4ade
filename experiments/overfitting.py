"""How much to believe a Sharpe ratio: standard errors, deflation and backtest overfitting.

Pure statistics (numpy/scipy) behind issue 13 ("Honest numbers"); ``docs/metrics.md`` has a
section per statistic. Conventions:

* Inputs are **daily simple returns** (decimal) unless a docstring says otherwise.
* A **per-period** Sharpe ratio is ``mean / std(ddof=1)`` of the daily returns (risk-free rate
  0, as :func:`experiments.metrics.sharpe`); the **annualized** one is the per-period ratio times
  ``sqrt(periods)`` with ``periods = 252`` (:data:`experiments.metrics.PERIODS`). Standard errors
  annualize the same way. Every docstring says which of the two it takes and returns.
* Skewness and kurtosis are the population (moment) estimators ``E[(r - mean)^k] / sd^k`` with
  ``sd`` the ddof=0 standard deviation (``scipy.stats.skew`` / ``scipy.stats.kurtosis(...,
  fisher=False)`` with ``bias=True``); **kurtosis is non-excess** (3 for a normal).
* Malformed input (NaN/inf, too few observations, bad arguments) raises ``ValueError`` with a
  one-line message naming what was expected; nothing is dropped or filled silently.

References
----------
.. [1] A. W. Lo, "The Statistics of Sharpe Ratios", Financial Analysts Journal 58(4), 36-52,
   2002 (asymptotic standard error under iid normal returns).
.. [2] E. Mertens, "Comments on variance of the IID estimator in Lo (2002)", working paper,
   University of Basel, 2002; J. D. Opdyke, "Comparing Sharpe ratios: so where are the
   p-values?", Journal of Asset Management 8(5), 308-336, 2007 (non-normal iid standard error).
.. [3] D. H. Bailey and M. López de Prado, "The Sharpe Ratio Efficient Frontier", Journal of
   Risk 15(2), 3-44, 2012 (probabilistic Sharpe ratio and minimum track record length).
.. [4] D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection
   Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5),
   94-107, 2014 (expected maximum Sharpe ratio and DSR).
.. [5] D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "Pseudo-Mathematics and
   Financial Charlatanism: The Effects of Backtest Overfitting on Out-of-Sample Performance",
   Notices of the AMS 61(5), 458-471, 2014 (minimum backtest length).
.. [6] D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "The Probability of
   Backtest Overfitting", Journal of Computational Finance 20(4), 39-69, 2017 (CSCV and PBO).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

PERIODS = 252
"""Sessions per year used to annualize (the same 252 as :data:`experiments.metrics.PERIODS`,
which is this constant)."""

__all__ = [
    "EULER_GAMMA",
    "PBOResult",
    "ReturnMoments",
    "deflated_sharpe_from_trials",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "insufficient_sample",
    "min_backtest_length",
    "min_track_record_length",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "return_moments",
    "sharpe_confidence_interval",
    "sharpe_standard_error",
    "sharpe_standard_error_iid",
]

EULER_GAMMA: float = float(np.euler_gamma)
"""Euler-Mascheroni constant, ``0.5772...`` (expected maximum of Gaussian draws, [4])."""

_ZERO_SD_REL = 1e-6
"""A (sub-)sample whose std is below this fraction of its root mean square counts as zero
variance: constant returns, where rounding leaves a std of up to ~1e-8 of the level (a real
series would need a per-period Sharpe ratio above 1e6)."""


# --------------------------------------------------------------------------------------
# Sample moments of one return series
# --------------------------------------------------------------------------------------


class ReturnMoments(NamedTuple):
    """Sample statistics of a daily return series, as the Sharpe-ratio tests use them.

    Attributes
    ----------
    n : int
        Number of observations (days).
    sharpe : float
        Per-period (daily, not annualized) Sharpe ratio ``mean / std(ddof=1)``; NaN when the
        series has zero variance.
    skew : float
        Population skewness (dimensionless); NaN when the series has zero variance.
    kurtosis : float
        Population non-excess kurtosis (3 for a normal); NaN when the series has zero variance.
    """

    n: int
    sharpe: float
    skew: float
    kurtosis: float


def _as_returns(returns: ArrayLike | pd.Series, name: str = "returns") -> NDArray[np.float64]:
    """Return a finite 1-D float array or raise a one-line ``ValueError``."""
    r = np.asarray(returns, dtype=float)
    if r.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D series of daily returns, got shape {r.shape}")
    bad = ~np.isfinite(r)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        label = returns.index[first] if isinstance(returns, pd.Series) else first
        raise ValueError(
            f"{name}: {int(bad.sum())} NaN/inf values (first at {label!r}); expected finite daily "
            "simple returns (drop or fill them explicitly before calling)"
        )
    if len(r) < 3:
        raise ValueError(f"{name}: expected at least 3 daily returns, got {len(r)}")
    return r


def return_moments(returns: ArrayLike | pd.Series) -> ReturnMoments:
    """Observation count, per-period Sharpe ratio, skewness and kurtosis of daily returns.

    Parameters
    ----------
    returns : array_like or pandas.Series, shape (n,)
        Daily simple returns (decimal), finite, ``n >= 3``.

    Returns
    -------
    ReturnMoments
        ``n``, the **per-period** Sharpe ratio ``mean / std(ddof=1)``, population skewness and
        non-excess kurtosis (``scipy.stats.skew`` / ``scipy.stats.kurtosis(fisher=False)``,
        ``bias=True``). The three statistics are NaN when the series has zero variance.

    Raises
    ------
    ValueError
        If ``returns`` is not 1-D, holds NaN/inf, or has fewer than 3 values.
    """
    r = _as_returns(returns)
    sd = float(r.std(ddof=1))
    if sd <= _ZERO_SD_REL * float(np.sqrt(np.mean(r * r))):
        return ReturnMoments(len(r), math.nan, math.nan, math.nan)
    return ReturnMoments(
        n=len(r),
        sharpe=float(r.mean() / sd),
        skew=float(stats.skew(r, bias=True)),
        kurtosis=float(stats.kurtosis(r, fisher=False, bias=True)),
    )


# --------------------------------------------------------------------------------------
# Standard error and confidence interval of the Sharpe ratio
# --------------------------------------------------------------------------------------


def _sr_variance_factor(sr: float, skew: float, kurtosis: float) -> float:
    """``1 - skew*SR + (kurt - 1)/4 * SR^2`` (per-period SR): [2], [3], [4]."""
    return 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr


def sharpe_standard_error(returns: ArrayLike | pd.Series, *, periods: int = PERIODS) -> float:
    """Standard error of the **annualized** Sharpe ratio under non-normal iid returns.

    Mertens (2002) / Opdyke (2007) asymptotic form on the per-period ratio ``SR``:

    ``se_pp = sqrt((1 - skew * SR + (kurt - 1) / 4 * SR^2) / (n - 1))``,

    then annualized as ``se = se_pp * sqrt(periods)`` (the same scaling as the ratio itself).
    ``kurt`` is non-excess. With ``skew = 0`` and ``kurt = 3`` it reduces to Lo's iid-normal
    form ``sqrt((1 + SR^2 / 2) / (n - 1))``. The factor under the root is ``>= (1 - skew*SR/2)^2
    >= 0`` because sample moments satisfy ``kurt >= 1 + skew^2``.

    This is the standard error the product reports: option-selling P&L is strongly skewed and
    fat-tailed (short straddles: skew well below 0, kurtosis 10+), and for a positive Sharpe
    ratio a negative skew widens the error band, which Lo's iid-normal form ignores.

    Parameters
    ----------
    returns : array_like or pandas.Series, shape (n,)
        Daily simple returns (decimal), finite, ``n >= 3``.
    periods : int, default 252
        Periods per year used to annualize.

    Returns
    -------
    float
        Standard error of the annualized Sharpe ratio (same units as
        :func:`experiments.metrics.sharpe`); NaN when the series has zero variance (the ratio
        is undefined, ``metrics.sharpe`` reports it as 0).

    Raises
    ------
    ValueError
        If ``returns`` is not 1-D, holds NaN/inf, or has fewer than 3 values.

    References
    ----------
    Mertens (2002); Opdyke (2007), the iid non-normal case; Bailey & López de Prado (2012),
    the distribution of the estimated Sharpe ratio.
    """
    return _mertens_se(return_moments(returns), periods)


def _mertens_se(m: ReturnMoments, periods: int) -> float:
    """Annualized Mertens standard error from the sample moments (NaN for a flat series)."""
    if math.isnan(m.sharpe):
        return math.nan
    var_pp = _sr_variance_factor(m.sharpe, m.skew, m.kurtosis) / (m.n - 1)
    return math.sqrt(max(var_pp, 0.0)) * math.sqrt(periods)


def sharpe_standard_error_iid(returns: ArrayLike | pd.Series, *, periods: int = PERIODS) -> float:
    """Standard error of the **annualized** Sharpe ratio for iid normal returns (Lo 2002).

    Lo (2002), iid normal case (asymptotic variance ``1 + SR^2 / 2`` of
    ``sqrt(n) * SR_hat``), on the per-period ratio: ``se_pp = sqrt((1 + SR^2 / 2) / n)``;
    annualized ``se_pp * sqrt(periods)``.
    Kept for comparison; the product uses :func:`sharpe_standard_error` (Mertens), which allows
    for skew and fat tails.

    Parameters
    ----------
    returns : array_like or pandas.Series, shape (n,)
        Daily simple returns (decimal), finite, ``n >= 3``.
    periods : int, default 252
        Periods per year used to annualize.

    Returns
    -------
    float
        Standard error of the annualized Sharpe ratio; NaN when the series has zero variance.

    Raises
    ------
    ValueError
        If ``returns`` is not 1-D, holds NaN/inf, or has fewer than 3 values.
    """
    m = return_moments(returns)
    if math.isnan(m.sharpe):
        return math.nan
    return math.sqrt((1.0 + 0.5 * m.sharpe**2) / m.n) * math.sqrt(periods)


def sharpe_confidence_interval(
    returns: ArrayLike | pd.Series, level: float = 0.95, *, periods: int = PERIODS
) -> tuple[float, float]:
    """Two-sided confidence interval of the **annualized** Sharpe ratio (normal approximation).

    ``SR_ann -/+ z * se`` with ``SR_ann = mean / std(ddof=1) * sqrt(periods)`` (as
    :func:`experiments.metrics.sharpe`), ``se`` from :func:`sharpe_standard_error` (Mertens) and
    ``z = Phi^{-1}((1 + level) / 2)`` (1.96 at 95 %).

    Parameters
    ----------
    returns : array_like or pandas.Series, shape (n,)
        Daily simple returns (decimal), finite, ``n >= 3``.
    level : float, default 0.95
        Confidence level in (0, 1).
    periods : int, default 252
        Periods per year used to annualize.

    Returns
    -------
    tuple of float
        ``(lower, upper)`` annualized Sharpe ratios; ``(nan, nan)`` for a zero-variance series.

    Raises
    ------
    ValueError
        If ``level`` is not in (0, 1), or ``returns`` is malformed (see
        :func:`sharpe_standard_error`).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    m = return_moments(returns)
    if math.isnan(m.sharpe):
        return (math.nan, math.nan)
    sr_ann = m.sharpe * math.sqrt(periods)
    half = float(stats.norm.ppf(0.5 + level / 2.0)) * _mertens_se(m, periods)
    return (sr_ann - half, sr_ann + half)


# --------------------------------------------------------------------------------------
# Probabilistic and deflated Sharpe ratio
# --------------------------------------------------------------------------------------


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n: int, skew: float, kurtosis: float
) -> float:
    """Probability that the true Sharpe ratio exceeds a benchmark (PSR).

    Bailey & López de Prado (2012), PSR definition (restated in their 2014 DSR paper), all
    Sharpe ratios **per period**
    (not annualized):

    ``PSR = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2))``.

    Parameters
    ----------
    sr : float
        Observed per-period Sharpe ratio.
    sr_benchmark : float
        Benchmark per-period Sharpe ratio ``SR*``.
    n : int
        Number of return observations, ``>= 2``.
    skew : float
        Skewness of the returns.
    kurtosis : float
        Non-excess kurtosis of the returns (3 for a normal).

    Returns
    -------
    float
        A probability in [0, 1].

    Raises
    ------
    ValueError
        If an input is not finite, ``n < 2``, or the variance factor is not positive (moments
        that no distribution has: ``kurt < 1 + skew^2``).
    """
    for name, value in (
        ("sr", sr),
        ("sr_benchmark", sr_benchmark),
        ("skew", skew),
        ("kurtosis", kurtosis),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if n < 2:
        raise ValueError(f"n: expected at least 2 observations, got {n}")
    factor = _sr_variance_factor(sr, skew, kurtosis)
    if factor <= 0.0:
        raise ValueError(
            f"skew={skew}, kurtosis={kurtosis}, sr={sr}: variance factor "
            f"1 - skew*SR + (kurt-1)/4*SR^2 = {factor} <= 0; expected non-excess kurtosis "
            ">= 1 + skew^2"
        )
    return float(stats.norm.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(factor)))


def expected_max_sharpe(n_trials: int, var_sharpe: float, mean_sharpe: float = 0.0) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` independent trials (false-strategy theorem).

    Bailey & López de Prado (2014), expected maximum Sharpe ratio under the null (the false
    strategy result; also Bailey, Borwein, López de Prado & Zhu 2014):

    ``E[max SR] ~= mean + sqrt(V) * ((1 - g) * Phi^{-1}(1 - 1/N) + g * Phi^{-1}(1 - 1/(N e)))``

    with ``g`` the Euler-Mascheroni constant and ``e`` Euler's number. The result is in the
    units of ``var_sharpe``: pass a per-period variance to get a per-period Sharpe ratio, an
    annualized one for an annualized ratio (the formula is linear in ``sqrt(V)``).

    Parameters
    ----------
    n_trials : int
        Number of independent trials ``N >= 1``. ``N = 1`` returns ``mean_sharpe`` (no
        selection; the asymptotic formula needs ``N > 1``).
    var_sharpe : float
        Variance across trials of their Sharpe ratios, ``>= 0``.
    mean_sharpe : float, default 0.0
        Mean Sharpe ratio of the trials (0 under the null of no skill).

    Returns
    -------
    float
        Expected maximum Sharpe ratio, per period or annualized as ``var_sharpe``.

    Raises
    ------
    ValueError
        If ``n_trials < 1`` or ``var_sharpe`` is negative or not finite.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials: expected at least 1 trial, got {n_trials}")
    if not (math.isfinite(var_sharpe) and var_sharpe >= 0.0):
        raise ValueError(f"var_sharpe: expected a finite variance >= 0, got {var_sharpe!r}")
    if n_trials == 1:
        return float(mean_sharpe)
    return float(mean_sharpe + math.sqrt(var_sharpe) * _max_z(n_trials))


def _max_z(n_trials: int) -> float:
    """``(1 - g) Phi^{-1}(1 - 1/N) + g Phi^{-1}(1 - 1/(N e))`` for ``N >= 2`` ([4], [5])."""
    return float(
        (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(
    returns: ArrayLike | pd.Series,
    *,
    n_trials: int,
    var_trial_sharpe: float,
    periods: int = PERIODS,
) -> float:
    """Deflated Sharpe ratio (DSR) of the selected trial's daily returns.

    Bailey & López de Prado (2014), DSR definition: the PSR of the observed per-period Sharpe ratio
    against the expected maximum Sharpe ratio of ``n_trials`` skill-less trials,
    ``DSR = PSR(SR0)`` with ``SR0 = sqrt(V_pp) * ((1-g) Phi^{-1}(1-1/N) + g Phi^{-1}(1-1/(N e)))``.

    ``var_trial_sharpe`` is the variance across the study's trials of their **annualized**
    Sharpe ratios (what :func:`experiments.metrics.sharpe` and the optimizer report); it is
    converted to per-period as ``V_pp = var_trial_sharpe / periods``, and the observed ratio,
    skewness and kurtosis are computed per period from ``returns``.

    Parameters
    ----------
    returns : array_like or pandas.Series, shape (n,)
        Daily simple returns (decimal) of the selected trial, finite, ``n >= 3``.
    n_trials : int
        Number of independent trials of the study, ``>= 1`` (1: the PSR against 0).
    var_trial_sharpe : float
        Variance of the trials' annualized Sharpe ratios, ``>= 0``.
    periods : int, default 252
        Periods per year used to convert the annualized variance.

    Returns
    -------
    float
        DSR, the probability in [0, 1] that the true Sharpe ratio is above what selection
        among ``n_trials`` skill-less trials would produce; NaN for a zero-variance series.

    Raises
    ------
    ValueError
        If ``returns`` is malformed, ``n_trials < 1`` or ``var_trial_sharpe`` is negative.
    """
    m = return_moments(returns)
    sr0 = expected_max_sharpe(n_trials, var_trial_sharpe / periods)
    if math.isnan(m.sharpe):
        return math.nan
    return probabilistic_sharpe_ratio(m.sharpe, sr0, m.n, m.skew, m.kurtosis)


def deflated_sharpe_from_trials(
    returns: ArrayLike | pd.Series,
    trial_sharpes: ArrayLike,
    *,
    periods: int = PERIODS,
) -> float:
    """DSR with the number and dispersion of trials taken from the trials' Sharpe ratios.

    ``n_trials = len(trial_sharpes)`` and ``var_trial_sharpe = var(trial_sharpes, ddof=1)``,
    then :func:`deflated_sharpe_ratio`. Treats the trials as independent; correlated trials
    (neighbouring parameter sets) overstate the effective ``N`` and so understate the DSR
    (conservative).

    Parameters
    ----------
    returns : array_like or pandas.Series, shape (n,)
        Daily simple returns (decimal) of the selected trial.
    trial_sharpes : array_like, shape (n_trials,)
        **Annualized** Sharpe ratios of every trial of the study (including the selected one),
        finite, at least 2.
    periods : int, default 252
        Periods per year.

    Returns
    -------
    float
        DSR in [0, 1] (NaN for a zero-variance ``returns``).

    Raises
    ------
    ValueError
        If ``trial_sharpes`` has fewer than 2 values or NaN/inf, or ``returns`` is malformed.
    """
    s = np.asarray(trial_sharpes, dtype=float).ravel()
    if len(s) < 2:
        raise ValueError(f"trial_sharpes: expected at least 2 trials' Sharpe ratios, got {len(s)}")
    if not np.isfinite(s).all():
        raise ValueError(
            f"trial_sharpes: {int((~np.isfinite(s)).sum())} NaN/inf values; expected finite "
            "annualized Sharpe ratios, one per trial"
        )
    return deflated_sharpe_ratio(
        returns, n_trials=len(s), var_trial_sharpe=float(s.var(ddof=1)), periods=periods
    )


# --------------------------------------------------------------------------------------
# Minimum backtest length and minimum track record length
# --------------------------------------------------------------------------------------


def min_backtest_length(n_trials: int, target_sharpe: float) -> float:
    """Minimum backtest length in **years** (MinBTL) for ``n_trials`` skill-less trials.

    Bailey, Borwein, López de Prado & Zhu (2014), eq. 6 and the MinBTL theorem: with
    annualized Sharpe ratios of unit variance per year of data, the expected maximum of ``N``
    skill-less trials over ``y`` years is ``E[max_N] / sqrt(y)``; the backtest must be at least

    ``MinBTL = ((1-g) Phi^{-1}(1-1/N) + g Phi^{-1}(1-1/(N e)))^2 / SR_target^2``

    years long for that expected maximum to stay below ``SR_target``.

    Parameters
    ----------
    n_trials : int
        Number of independent trials ``N >= 1`` (1 needs no data: returns 0).
    target_sharpe : float
        **Annualized** Sharpe ratio the best in-sample trial must not reach by luck, ``> 0``.

    Returns
    -------
    float
        Minimum backtest length in years.

    Raises
    ------
    ValueError
        If ``n_trials < 1`` or ``target_sharpe <= 0``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials: expected at least 1 trial, got {n_trials}")
    if not (math.isfinite(target_sharpe) and target_sharpe > 0.0):
        raise ValueError(f"target_sharpe: expected an annualized Sharpe > 0, got {target_sharpe!r}")
    if n_trials == 1:
        return 0.0
    return _max_z(n_trials) ** 2 / target_sharpe**2


def min_track_record_length(
    sr: float, sr_benchmark: float, skew: float, kurtosis: float, level: float = 0.95
) -> float:
    """Minimum track record length in **observations** (MinTRL) for the PSR to reach ``level``.

    Bailey & López de Prado (2012), MinTRL definition, all Sharpe ratios **per period**:

    ``MinTRL = 1 + (1 - skew*SR + (kurt-1)/4*SR^2) * (Phi^{-1}(level) / (SR - SR*))^2``.

    Divide by 252 for years of daily data.

    Parameters
    ----------
    sr : float
        Observed per-period Sharpe ratio.
    sr_benchmark : float
        Benchmark per-period Sharpe ratio ``SR*``.
    skew : float
        Skewness of the returns.
    kurtosis : float
        Non-excess kurtosis of the returns.
    level : float, default 0.95
        Required probability that the true Sharpe ratio exceeds ``SR*``, in (0, 1).

    Returns
    -------
    float
        Number of observations; ``inf`` when ``sr <= sr_benchmark`` (no length suffices).

    Raises
    ------
    ValueError
        If ``level`` is not in (0, 1) or an input is not finite.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    for name, value in (
        ("sr", sr),
        ("sr_benchmark", sr_benchmark),
        ("skew", skew),
        ("kurtosis", kurtosis),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if sr <= sr_benchmark:
        return math.inf
    z = float(stats.norm.ppf(level))
    return 1.0 + _sr_variance_factor(sr, skew, kurtosis) * (z / (sr - sr_benchmark)) ** 2


# --------------------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PBOResult:
    """Outcome of combinatorially symmetric cross-validation (CSCV).

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: share of combinations whose logit is ``<= 0``
        (the in-sample best trial ranks at or below the out-of-sample median).
    logits : numpy.ndarray, shape (n_combinations,)
        ``ln(w / (1 - w))`` with ``w = rank_oos / (n_trials + 1)`` the relative out-of-sample
        rank of the in-sample best trial (rank 1 = worst, ties get their average rank).
    is_best : numpy.ndarray, shape (n_combinations,)
        In-sample metric of the in-sample best trial (per-period Sharpe ratio by default).
    oos_of_best : numpy.ndarray, shape (n_combinations,)
        The same trial's out-of-sample metric (the performance-degradation pair with
        ``is_best``).
    prob_oos_loss : float
        Share of combinations where ``oos_of_best < 0``.
    n_combinations : int
        ``C(n_splits, n_splits / 2)``.
    n_splits : int
        Number of contiguous blocks ``S``.
    n_trials : int
        Number of trials (columns) ``N``.
    n_rows_used : int
        Rows used, a multiple of ``n_splits``.
    n_rows_dropped : int
        Leading rows dropped so the rest splits evenly (``T mod S``).
    """

    pbo: float
    logits: NDArray[np.float64]
    is_best: NDArray[np.float64]
    oos_of_best: NDArray[np.float64]
    prob_oos_loss: float
    n_combinations: int
    n_splits: int
    n_trials: int
    n_rows_used: int
    n_rows_dropped: int


def _as_matrix(matrix: ArrayLike | pd.DataFrame) -> NDArray[np.float64]:
    """Return a finite 2-D float array (T x N) or raise naming the first bad cell."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(
            f"matrix: expected a 2-D T x N array (rows = days, columns = trials), got shape "
            f"{m.shape}"
        )
    bad = ~np.isfinite(m)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        if isinstance(matrix, pd.DataFrame):
            where = f"row {matrix.index[row]!r}, column {matrix.columns[col]!r}"
        else:
            where = f"row {row}, column {col}"
        raise ValueError(
            f"matrix: {int(bad.sum())} NaN/inf values (first at {where}); expected finite daily "
            "returns for every trial on every day"
        )
    return m


def probability_of_backtest_overfitting(
    matrix: ArrayLike | pd.DataFrame,
    *,
    n_splits: int = 16,
    metric: Callable[[NDArray[np.float64]], ArrayLike] | None = None,
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    Bailey, Borwein, López de Prado & Zhu (2017), section 2 (CSCV): drop the first ``T mod S``
    rows, split the remaining rows into ``S`` contiguous blocks of equal length, and for each of
    the ``C(S, S/2)`` choices of ``S/2`` blocks as the in-sample set (the other half out of
    sample, both kept in time order): pick the trial with the best in-sample metric, take its
    relative out-of-sample rank ``w = rank / (N + 1)`` and the logit ``ln(w / (1 - w))``.
    ``PBO`` is the share of logits ``<= 0``.

    The default metric is the per-period (daily, not annualized: ranks do not change) Sharpe
    ratio ``mean / std(ddof=1)``, 0 for a zero-variance column, computed for all combinations
    at once from per-block moments pooled through tables of subset sums (the C(16, 8) = 12,870
    combinations of a 1000 x 100 matrix take about 0.1 s). Ties for the in-sample best go to the
    first column; tied out-of-sample values share their average rank.

    Parameters
    ----------
    matrix : array_like or pandas.DataFrame, shape (T, N)
        Daily simple returns, one row per day (time order), one column per trial; finite.
    n_splits : int, default 16
        Number of blocks ``S``: even, ``>= 2``, with at least 2 rows per block.
    metric : callable, optional
        ``metric(sub) -> values`` mapping a ``(rows, N)`` sub-matrix to ``N`` scores (higher is
        better). Evaluated in a Python loop over the combinations (slower than the default).

    Returns
    -------
    PBOResult
        PBO, logits, the in-sample/out-of-sample pair of the selected trial per combination,
        and the counts (including how many leading rows were dropped).

    Raises
    ------
    ValueError
        If ``matrix`` is not 2-D, has NaN/inf (naming the first cell), has fewer than 2 columns
        or fewer than ``2 * n_splits`` rows; if ``n_splits`` is odd or ``< 2``; or if ``metric``
        returns the wrong shape or non-finite scores.
    """
    m = _as_matrix(matrix)
    t_rows, n_trials = m.shape
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise ValueError(f"n_splits: expected an even integer >= 2, got {n_splits!r}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits: expected an even integer >= 2, got {n_splits}")
    if n_trials < 2:
        raise ValueError(f"matrix: expected at least 2 trials (columns), got {n_trials}")
    block = t_rows // n_splits
    if block < 2:
        raise ValueError(
            f"matrix: {t_rows} rows cannot make {n_splits} blocks of at least 2 rows; expected "
            f">= {2 * n_splits} rows or fewer splits"
        )
    dropped = t_rows - block * n_splits
    used = m[dropped:]
    half = n_splits // 2
    combos = np.array(list(combinations(range(n_splits), half)), dtype=np.intp)
    n_comb = len(combos)
    in_mask = np.zeros((n_comb, n_splits), dtype=bool)
    in_mask[np.arange(n_comb)[:, None], combos] = True

    if metric is None:
        # Per-block means and centred sums of squares (exact zeros for idle blocks), pooled over
        # each half with Chan et al.'s parallel-variance formula through two matrix products.
        blocks = used.reshape(n_splits, block, n_trials)
        means = blocks.mean(axis=1)
        m2 = ((blocks - means[:, None, :]) ** 2).sum(axis=1)
        pooled = np.concatenate([means, means * means, m2], axis=1)  # (S, 3N)
        # Sums over a set of blocks = (sum over its blocks among the first S/2) + (sum over its
        # blocks among the last S/2), each looked up in a table of all 2^(S/2) subset sums.
        lo_sums = _subset_sums(pooled[:half])
        hi_sums = _subset_sums(pooled[half:])
        weights = 1 << np.arange(half)
        lo_in = in_mask[:, :half].astype(np.intp) @ weights
        hi_in = in_mask[:, half:].astype(np.intp) @ weights
        full = (1 << half) - 1
        is_metric = _pooled_sharpe(lo_sums[lo_in] + hi_sums[hi_in], half, block, n_trials)
        oos_metric = _pooled_sharpe(
            lo_sums[full ^ lo_in] + hi_sums[full ^ hi_in], half, block, n_trials
        )
    else:
        row_block = np.repeat(np.arange(n_splits), block)
        is_metric = np.empty((n_comb, n_trials))
        oos_metric = np.empty((n_comb, n_trials))
        for c in range(n_comb):
            rows_in = in_mask[c][row_block]
            is_metric[c] = _call_metric(metric, used[rows_in], n_trials)
            oos_metric[c] = _call_metric(metric, used[~rows_in], n_trials)

    best = np.argmax(is_metric, axis=1)
    idx = np.arange(n_comb)
    is_best = is_metric[idx, best]
    oos_best = oos_metric[idx, best]
    less = (oos_metric < oos_best[:, None]).sum(axis=1)
    leq = (oos_metric <= oos_best[:, None]).sum(axis=1)
    rank = (less + leq + 1) / 2.0  # average rank among ties, 1 = worst
    w = rank / (n_trials + 1.0)
    logits = np.log(w / (1.0 - w))
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        is_best=is_best,
        oos_of_best=oos_best,
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        n_combinations=n_comb,
        n_splits=n_splits,
        n_trials=n_trials,
        n_rows_used=block * n_splits,
        n_rows_dropped=dropped,
    )


def _subset_sums(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sums of every subset of the ``h`` rows: output row ``mask`` is the sum of the rows whose
    bit is set in ``mask`` (shape ``(2^h, K)``; row 0 is zeros)."""
    h = rows.shape[0]
    out = np.zeros((1 << h, rows.shape[1]))
    for mask in range(1, 1 << h):
        low = mask & -mask
        out[mask] = out[mask ^ low] + rows[low.bit_length() - 1]
    return out


def _pooled_sharpe(
    sums: NDArray[np.float64], k: int, block: int, n_trials: int
) -> NDArray[np.float64]:
    """Per-period Sharpe ``mean / std(ddof=1)`` of ``k`` pooled blocks of ``block`` rows.

    ``sums`` (C x 3N) holds, per combination, the sums over its blocks of the block means, the
    squared block means and the centred sums of squares. Pooled: ``mean = sum(m_b) / k``,
    ``M2 = sum(M2_b) + block * (sum(m_b^2) - k mean^2)``. 0 where the std is below
    ``_ZERO_SD_REL`` of the root mean square (a flat sample).
    """
    n = k * block
    mean = sums[:, :n_trials] / k
    mean_sq = mean * mean
    var = sums[:, n_trials : 2 * n_trials] - k * mean_sq  # in place from here: C x N arrays
    var *= block
    var += sums[:, 2 * n_trials :]
    np.maximum(var, 0.0, out=var)
    var /= n - 1
    mean_sq += var
    flat = var <= _ZERO_SD_REL**2 * mean_sq
    var[flat] = 1.0
    np.sqrt(var, out=var)
    mean /= var
    mean[flat] = 0.0
    return mean


def _call_metric(
    metric: Callable[[NDArray[np.float64]], ArrayLike], sub: NDArray[np.float64], n_trials: int
) -> NDArray[np.float64]:
    """Evaluate a user metric on a sub-matrix and check it returns N finite scores."""
    values = np.asarray(metric(sub), dtype=float).ravel()
    if values.shape != (n_trials,) or not np.isfinite(values).all():
        raise ValueError(
            f"metric: expected {n_trials} finite scores (one per trial column), got shape "
            f"{values.shape} with {int((~np.isfinite(values)).sum())} non-finite"
        )
    return values


# --------------------------------------------------------------------------------------
# Sample-size flag
# --------------------------------------------------------------------------------------


def insufficient_sample(
    n_trades: int | None, n_days: int, *, min_trades: int, min_days: int
) -> str | None:
    """Flag a run whose sample is too small for its statistics to mean much.

    Parameters
    ----------
    n_trades : int or None
        Number of trades (entries) in the run; None when the strategy has no trade count
        (only the day check applies).
    n_days : int
        Number of daily returns (sessions).
    min_trades : int
        Fewest trades that count as a sample.
    min_days : int
        Fewest days that count as a sample.

    Returns
    -------
    str or None
        ``"insufficient sample (3 trades)"``, ``"insufficient sample (40 days)"``,
        ``"insufficient sample (3 trades, 40 days)"`` (singular ``"1 trade"`` / ``"1 day"``),
        or None when both thresholds are met.

    Raises
    ------
    ValueError
        If a count or threshold is negative.
    """
    for name, value in (("n_days", n_days), ("min_trades", min_trades), ("min_days", min_days)):
        if value < 0:
            raise ValueError(f"{name}: expected a count >= 0, got {value}")
    if n_trades is not None and n_trades < 0:
        raise ValueError(f"n_trades: expected a count >= 0 or None, got {n_trades}")
    parts = []
    if n_trades is not None and n_trades < min_trades:
        parts.append(f"{n_trades} trade" + ("" if n_trades == 1 else "s"))
    if n_days < min_days:
        parts.append(f"{n_days} day" + ("" if n_days == 1 else "s"))
    return f"insufficient sample ({', '.join(parts)})" if parts else None
