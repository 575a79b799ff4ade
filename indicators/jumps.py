"""Realized variance, bipower variation and the BNS jump test on minute bars; Merton jump fit.

Faces
-----
* numba kernel :func:`session_jump_terms_nb` (running within-session sums, one series) and its
  column-wise :func:`session_jump_terms_2d_nb`;
* the Python API :func:`session_labels` (intraday / overnight windows in America/New_York) and
  :func:`session_jump_stats` (one row per session);
* the vectorbt indicator :data:`JumpStats` (running values per bar, grid over ``alpha``);
* :func:`merton_fit`, a maximum-likelihood fit of Merton (1976) jump-diffusion increments
  (a Poisson mixture of normals) by :func:`scipy.optimize.minimize`.

Conventions
-----------
* Returns are natural-log close-to-close returns of consecutive bars **of the same session**
  (the first bar of a session has no return). Units: decimal (0.01 = 1 %).
* ``rv = sum r_j^2`` and ``bv = mu_1^{-2} sum_{j>=2} |r_j| |r_{j-1}|`` are variances over the
  window (per session, not annualized); ``vol = sqrt(rv)`` is the decimal vol of the window and
  ``vol_ann = sqrt(252 rv)`` annualizes as if the window were one trading day.
* The running value at bar ``t`` uses bars of its session up to ``t`` only (no look-ahead).
  A NaN close makes the rest of that session NaN (NaNs are not skipped).
* No finite-sample ``n/(n-1)`` corrections are applied (the paper's asymptotic forms).

References
----------
.. [1] Barndorff-Nielsen, O. E. and Shephard, N. (2004). "Power and Bipower Variation with
   Stochastic Volatility and Jumps". *Journal of Financial Econometrics* 2(1), 1-37
   (bipower variation ``mu_1^{-2} sum |r_j||r_{j-1}|``, ``mu_1 = sqrt(2/pi)``; asymptotic
   variance ``(pi^2/4 + pi - 5) int sigma^4`` of ``RV - BV``).
.. [2] Barndorff-Nielsen, O. E. and Shephard, N. (2006). "Econometrics of Testing for Jumps in
   Financial Economics Using Bipower Variation". *Journal of Financial Econometrics* 4(1),
   1-30 (linear test statistic with tripower quarticity
   ``TQ = n mu_{4/3}^{-3} sum |r_j r_{j-1} r_{j-2}|^{4/3}``,
   ``mu_{4/3} = 2^{2/3} Gamma(7/6) / Gamma(1/2)``).
.. [3] Merton, R. C. (1976). "Option Pricing when Underlying Stock Returns are Discontinuous".
   *Journal of Financial Economics* 3, 125-144 (Poisson-normal jump density).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit
from scipy import optimize, special, stats

__all__ = [
    "MU1",
    "MU43",
    "THETA_BNS",
    "JumpStats",
    "MertonFit",
    "merton_fit",
    "merton_logpdf",
    "session_jump_stats",
    "session_jump_terms_2d_nb",
    "session_jump_terms_nb",
    "session_labels",
]

#: ``E|Z| = sqrt(2/pi)`` for standard normal ``Z`` (BNS 2004).
MU1: float = math.sqrt(2.0 / math.pi)
#: ``E|Z|^{4/3} = 2^{2/3} Gamma(7/6) / Gamma(1/2)`` (BNS 2006).
MU43: float = 2.0 ** (2.0 / 3.0) * math.gamma(7.0 / 6.0) / math.gamma(0.5)
#: Asymptotic variance factor of ``RV - BV``: ``pi^2/4 + pi - 5`` (BNS 2004, 2006).
THETA_BNS: float = math.pi**2 / 4.0 + math.pi - 5.0

_NYSE_TZ = "America/New_York"


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(cache=True)
def session_jump_terms_nb(
    close: np.ndarray, session: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Running within-session RV, BV, tripower quarticity, BNS statistic and return count.

    Parameters
    ----------
    close : ndarray of float64, shape (n,)
        Bar closes (price units), in time order.
    session : ndarray of int64, shape (n,)
        Session label of each bar; a change of label starts a new session. Bars labelled
        ``-1`` are outside every window: their outputs are NaN and they break the session.

    Returns
    -------
    rv, bv, tq, z, count : ndarray of float64, shape (n,)
        At bar ``t``: realized variance ``sum r^2``, bipower variation
        ``MU1^-2 sum |r_j||r_{j-1}|``, tripower quarticity
        ``count * MU43^-3 sum |r_j r_{j-1} r_{j-2}|^{4/3}`` (estimates ``int sigma^4``),
        the BNS (2006) linear statistic ``(rv - bv) / sqrt(THETA_BNS * tq / count)`` and the
        number of returns, all over the bars of ``t``'s session up to ``t``. ``rv``/``bv`` are
        NaN before 1/2 returns, ``tq``/``z`` before 3 returns or when ``tq == 0``.
    """
    n = close.shape[0]
    rv = np.full(n, np.nan)
    bv = np.full(n, np.nan)
    tq = np.full(n, np.nan)
    z = np.full(n, np.nan)
    count = np.full(n, np.nan)
    s_rv = 0.0
    s_bv = 0.0
    s_tq = 0.0
    k = 0
    r1 = np.nan  # previous return
    r2 = np.nan  # the one before
    for t in range(n):
        if session[t] < 0:
            k = -1
            continue
        if t == 0 or session[t] != session[t - 1] or k < 0:
            s_rv = 0.0
            s_bv = 0.0
            s_tq = 0.0
            k = 0
            r1 = np.nan
            r2 = np.nan
            count[t] = 0.0
            continue
        r = math.log(close[t] / close[t - 1])
        k += 1
        s_rv += r * r
        if k >= 2:
            s_bv += abs(r) * abs(r1)
        if k >= 3:
            s_tq += (abs(r) * abs(r1) * abs(r2)) ** (4.0 / 3.0)
        r2 = r1
        r1 = r
        count[t] = k
        rv[t] = s_rv
        if k >= 2:
            bv[t] = s_bv / (MU1 * MU1)
        if k >= 3:
            q = k * s_tq / MU43**3
            tq[t] = q
            if q > 0.0:
                z[t] = (s_rv - bv[t]) / math.sqrt(THETA_BNS * q / k)
    return rv, bv, tq, z, count


@njit(cache=True)
def session_jump_terms_2d_nb(
    close: np.ndarray, session: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise :func:`session_jump_terms_nb`.

    Parameters
    ----------
    close, session : ndarray, shape (n, m)
        Closes (float64) and session labels (int64) per column.

    Returns
    -------
    rv, bv, tq, z, count : ndarray of float64, shape (n, m)
    """
    n, m = close.shape
    rv = np.empty((n, m))
    bv = np.empty((n, m))
    tq = np.empty((n, m))
    z = np.empty((n, m))
    count = np.empty((n, m))
    for j in range(m):
        a, b, c, d, e = session_jump_terms_nb(close[:, j], session[:, j])
        rv[:, j] = a
        bv[:, j] = b
        tq[:, j] = c
        z[:, j] = d
        count[:, j] = e
    return rv, bv, tq, z, count


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, float | int) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be a significance level in (0, 1), got {alpha!r}")
    return float(alpha)


def session_labels(
    index: pd.DatetimeIndex,
    kind: str = "intraday",
    *,
    open_time: str = "09:30",
    close_time: str = "16:00",
) -> np.ndarray:
    """Session label (``YYYYMMDD`` of the trading date) of each bar, ``-1`` outside the window.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Bar timestamps (bar start). Tz-aware stamps are converted to America/New_York; naive
        stamps are taken as America/New_York wall-clock time already.
    kind : {'intraday', 'overnight'}
        ``intraday``: bars stamped in ``[open_time, close_time)`` are labelled by their date.
        ``overnight``: bars stamped at/after ``close_time`` or before ``open_time`` are labelled by
        the date of the next open: the same date before ``open_time``, else the next weekday
        (Friday evening and Sunday evening go to Monday). Exchange holidays are not known here:
        pass your own labels to :func:`session_jump_terms_nb` if a window spans one.
    open_time, close_time : str
        ``HH:MM`` ET of the regular session (defaults: NYSE 09:30-16:00).

    Returns
    -------
    ndarray of int64, shape (len(index),)

    Raises
    ------
    ValueError
        Unknown ``kind`` or a non-DatetimeIndex.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"index must be a pandas.DatetimeIndex, got {type(index).__name__}")
    if kind not in ("intraday", "overnight"):
        raise ValueError(f"kind must be 'intraday' or 'overnight', got {kind!r}")
    et = index.tz_convert(_NYSE_TZ) if index.tz is not None else index
    minutes = et.hour * 60 + et.minute
    o_h, o_m = (int(x) for x in open_time.split(":"))
    c_h, c_m = (int(x) for x in close_time.split(":"))
    t_open, t_close = o_h * 60 + o_m, c_h * 60 + c_m
    day = et.normalize().tz_localize(None) if et.tz is not None else et.normalize()
    ymd = np.asarray(day.year * 10000 + day.month * 100 + day.day, dtype=np.int64)
    mins = np.asarray(minutes)
    if kind == "intraday":
        return np.where((mins >= t_open) & (mins < t_close), ymd, -1).astype(np.int64)
    after = mins >= t_close
    nxt = pd.DatetimeIndex(day) + pd.offsets.BDay(1)
    nxt_ymd = np.asarray(nxt.year * 10000 + nxt.month * 100 + nxt.day, dtype=np.int64)
    # weekend bars (Sunday evening) roll to the next weekday as well
    weekend = np.asarray(day.day_of_week >= 5)
    label = np.where(after | weekend, nxt_ymd, ymd)
    return np.where(after | (mins < t_open) | weekend, label, -1).astype(np.int64)


def session_jump_stats(
    close: pd.Series,
    kind: str = "intraday",
    *,
    alpha: float = 0.001,
    labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-session realized variance, bipower variation and BNS jump test of minute bars.

    Parameters
    ----------
    close : pandas.Series
        Bar closes indexed by a sorted, unique DatetimeIndex (see :func:`session_labels`).
    kind : {'intraday', 'overnight'}
        Window definition passed to :func:`session_labels` (ignored when ``labels`` is given).
    alpha : float, default 0.001
        One-sided significance of the jump flag: ``jump_flag = z > Phi^{-1}(1 - alpha)``
        (BNS 2006 reject for large positive ``RV - BV``).
    labels : ndarray of int64, optional
        Own session labels (``-1`` = outside every window), same length as ``close``.

    Returns
    -------
    pandas.DataFrame
        Index ``date`` (session date, naive midnight); columns ``n_returns``, ``rv``, ``bv``,
        ``tq``, ``jump_stat`` (z), ``jump_flag`` (1.0/0.0, NaN when ``jump_stat`` is NaN),
        ``vol`` (``sqrt(rv)``, decimal per window) and ``vol_ann`` (``sqrt(252 rv)``).
        Values are the session's last running values of :func:`session_jump_terms_nb`.

    Raises
    ------
    ValueError
        Unsorted / duplicate index, non-positive closes, bad ``alpha`` or ``labels`` shape.
    """
    alpha = _check_alpha(alpha)
    if not isinstance(close, pd.Series) or not isinstance(close.index, pd.DatetimeIndex):
        raise ValueError("close must be a pandas.Series indexed by a DatetimeIndex")
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise ValueError("close index must be sorted ascending without duplicate timestamps")
    values = close.to_numpy(dtype=np.float64)
    if np.any(values <= 0.0):
        bad = close.index[np.argmax(values <= 0.0)]
        raise ValueError(f"close must be > 0 (log returns), got {values[values <= 0][0]} at {bad}")
    lab = session_labels(close.index, kind) if labels is None else np.asarray(labels, np.int64)
    if lab.shape != values.shape:
        raise ValueError(f"labels must have shape {values.shape}, got {lab.shape}")
    rv, bv, tq, z, count = session_jump_terms_nb(values, lab)
    frame = pd.DataFrame(
        {"label": lab, "n_returns": count, "rv": rv, "bv": bv, "tq": tq, "jump_stat": z}
    )
    frame = frame[frame["label"] >= 0]
    # a label may recur after an interruption; only contiguous runs are sessions (last run wins
    # would hide data), so refuse it
    runs = (frame["label"] != frame["label"].shift()).sum()
    if runs != frame["label"].nunique():
        raise ValueError("a session label occurs in two separate runs of bars (unsorted data?)")
    last = frame.groupby("label", sort=True).last()
    crit = stats.norm.ppf(1.0 - alpha)
    out = pd.DataFrame(index=pd.to_datetime(last.index.astype(str), format="%Y%m%d"))
    out.index.name = "date"
    for col in ("n_returns", "rv", "bv", "tq", "jump_stat"):
        out[col] = last[col].to_numpy()
    out["jump_flag"] = np.where(
        np.isnan(out["jump_stat"]), np.nan, (out["jump_stat"] > crit).astype(float)
    )
    out["vol"] = np.sqrt(out["rv"])
    out["vol_ann"] = np.sqrt(252.0 * out["rv"])
    return out


# --------------------------------------------------------------------------------------
# vectorbt face
# --------------------------------------------------------------------------------------


def _jump_apply(close: np.ndarray, session: np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    alpha = _check_alpha(alpha)
    rv, bv, _tq, z, _count = session_jump_terms_2d_nb(
        np.asarray(close, dtype=np.float64), np.asarray(session, dtype=np.int64)
    )
    crit = stats.norm.ppf(1.0 - alpha)
    flag = np.where(np.isnan(z), np.nan, (z > crit).astype(np.float64))
    return rv, bv, z, flag


JumpStats = vbt.IndicatorFactory(
    class_name="JumpStats",
    short_name="jump",
    input_names=["close", "session"],
    param_names=["alpha"],
    output_names=["rv", "bv", "jump_stat", "jump_flag"],
).from_apply_func(_jump_apply, alpha=0.001)
JumpStats.__doc__ = """vectorbt indicator: running within-session RV, BV and BNS jump test.

``JumpStats.run(close, session, alpha=0.001)``; ``session`` holds int64 labels from
:func:`session_labels` (``-1`` outside every window). Outputs per bar: ``rv``, ``bv``
(variances of the session so far, decimal^2), ``jump_stat`` (BNS 2006 z) and ``jump_flag``
(``z > Phi^{-1}(1 - alpha)``, NaN where z is NaN); a list of ``alpha`` values computes a grid.
Values equal :func:`session_jump_terms_nb`; the value at bar ``t`` uses bars up to ``t`` only.

References
----------
See the module docstring (Barndorff-Nielsen & Shephard 2004, 2006).
"""


# --------------------------------------------------------------------------------------
# Merton jump-diffusion MLE
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MertonFit:
    """Maximum-likelihood Merton (1976) jump-diffusion parameters of return increments.

    Attributes
    ----------
    mu : float
        Diffusion drift per interval (decimal log return; no Ito term is separated).
    sigma : float
        Diffusion vol per interval (decimal, not annualized).
    intensity : float
        Poisson jump intensity ``lambda`` per interval (expected jumps per interval).
    jump_mean, jump_vol : float
        Mean and standard deviation of one log jump (decimal).
    loglik : float
        Maximized log-likelihood.
    n_obs : int
        Number of returns fitted.
    converged : bool
        Whether the best optimizer run reported success.
    """

    mu: float
    sigma: float
    intensity: float
    jump_mean: float
    jump_vol: float
    loglik: float
    n_obs: int
    converged: bool


def merton_logpdf(
    x: np.ndarray,
    mu: float,
    sigma: float,
    intensity: float,
    jump_mean: float,
    jump_vol: float,
    n_terms: int = 12,
) -> np.ndarray:
    """Log density of one Merton increment: a Poisson mixture of normals.

    ``f(x) = sum_{k=0}^{K-1} e^{-lambda} lambda^k / k! * N(x; mu + k m_J, sigma^2 + k s_J^2)``
    (Merton 1976, eq. 12 with the Poisson sum truncated at ``K = n_terms`` terms).

    Parameters
    ----------
    x : ndarray of float64, shape (n,)
        Log returns (decimal) over one interval each.
    mu, sigma, intensity, jump_mean, jump_vol : float
        See :class:`MertonFit` (``sigma > 0``, ``intensity >= 0``, ``jump_vol >= 0``).
    n_terms : int, default 12
        Poisson terms kept (the neglected mass is ``P(N >= K)``).

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    x = np.asarray(x, dtype=np.float64)[:, None]
    k = np.arange(n_terms, dtype=np.float64)[None, :]
    var = sigma**2 + k * jump_vol**2
    log_pois = -intensity + k * math.log(max(intensity, 1e-300)) - special.gammaln(k + 1.0)
    log_norm = -0.5 * (np.log(2.0 * math.pi * var) + (x - mu - k * jump_mean) ** 2 / var)
    return special.logsumexp(log_pois + log_norm, axis=1)


def merton_fit(
    returns: pd.Series | np.ndarray,
    *,
    n_terms: int = 12,
    starts: tuple[float, ...] = (0.02, 0.1, 0.3),
) -> MertonFit:
    """Fit a Merton jump-diffusion to i.i.d. return increments by maximum likelihood.

    Minimizes the negative of :func:`merton_logpdf` summed over ``returns`` with
    :func:`scipy.optimize.minimize` (L-BFGS-B on ``(mu, log sigma, log lambda, m_J, log s_J)``),
    from robust starting values (median, MAD) and each starting intensity in ``starts`` with
    jumps of either sign; the best run is returned.

    Parameters
    ----------
    returns : pandas.Series or ndarray, shape (n,)
        Log returns over equal intervals (e.g. overnight close-to-open returns), decimal.
    n_terms : int, default 12
        Poisson terms kept in the density.
    starts : tuple of float
        Starting jump intensities per interval.

    Returns
    -------
    MertonFit

    Raises
    ------
    ValueError
        Fewer than 50 returns or non-finite values (the fit needs the tails).

    References
    ----------
    Merton, R. C. (1976), J. Financial Economics 3, 125-144; Press, S. J. (1967), "A Compound
    Events Model for Security Prices", J. Business 40(3), 317-335 (the MLE of this mixture).
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1 or x.size < 50:
        raise ValueError(f"merton_fit needs a 1-d array of >= 50 returns, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"returns contain {int((~np.isfinite(x)).sum())} non-finite values")
    med = float(np.median(x))
    mad = float(stats.median_abs_deviation(x, scale="normal"))
    sd = float(np.std(x))
    scale = max(mad, 1e-8)

    def nll(p: np.ndarray) -> float:
        mu, ls, ll, mj, lsj = p
        val = -merton_logpdf(x, mu, math.exp(ls), math.exp(ll), mj, math.exp(lsj), n_terms).sum()
        return float(val) if np.isfinite(val) else 1e300

    best = None
    bounds = [
        (None, None),
        (math.log(scale) - 5, math.log(scale) + 5),
        (math.log(1e-4), math.log(5.0)),
        (None, None),
        (math.log(scale) - 5, math.log(scale) + 6),
    ]
    for lam0 in starts:
        for sign in (-1.0, 1.0):
            p0 = np.array(
                [med, math.log(scale), math.log(lam0), sign * 2.0 * sd, math.log(2.0 * sd)]
            )
            res = optimize.minimize(nll, p0, method="L-BFGS-B", bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
    assert best is not None
    mu, ls, ll, mj, lsj = best.x
    return MertonFit(
        mu=float(mu),
        sigma=math.exp(ls),
        intensity=math.exp(ll),
        jump_mean=float(mj),
        jump_vol=math.exp(lsj),
        loglik=-float(best.fun),
        n_obs=int(x.size),
        converged=bool(best.success),
    )
