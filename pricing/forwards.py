"""Forwards, discount factors and implied carry per expiry from put-call parity.

For European options on one underlying and expiry, put-call parity holds for every strike:

    ``C(K) - P(K) = D (F - K)``

with the discount factor ``D = e^{-r tte}`` and the forward ``F = S e^{(r-q) tte}``. Regressing
the quoted ``C - P`` on ``K`` over liquid near-the-money pairs gives ``D = -slope`` and
``F = intercept / D``, hence the implied rate ``r = -ln(D)/tte`` and, with a spot, the carry
``r - q = ln(F/S)/tte`` and dividend yield ``q``. The regression is robust (quotes are noisy,
a few are stale): Huber's M-estimator by iteratively reweighted least squares, each pair
weighted by the inverse half-spread of its ``C - P`` quote, so that residuals are measured in
half-spreads (or Theil-Sen's median of pairwise slopes, unweighted, as an alternative).

One forward, one fallback: :func:`nearest_parity_forwards` is the forward at a known rate
(mean of ``K + e^{r tte}(C - P)`` over the ``n_strikes`` (3) pairs nearest the money),
used by ``ChainSnapshot.forward`` and the auction rows; :func:`forward_estimate` adds the one
fallback of the suite, :func:`carry_forward` ``S e^{(r - q) tte}``, when an expiry has fewer
than :data:`FALLBACK_MIN_PAIRS` two-sided pairs. :func:`parity_forwards` is the regression that
fits the discount factor as well (surface fitting).

:func:`parity_pairs` turns a long quotes table (one row per option, like
``ChainSnapshot.with_implied_vols()``) into call/put pairs; :func:`parity_forwards` fits all
expiries of a day at once (one compiled loop over the groups). The pricing layer takes numpy
arrays and pandas frames only; it does not import ``data_feeds``.

Units: strikes, prices and forwards in the underlying's units (dollars / index points);
``tte`` in years ACT/365; rates and yields continuously compounded decimals.

References
----------
.. [1] H. R. Stoll, "The Relationship Between Put and Call Option Prices", Journal of
   Finance 24(5), 801-824, 1969 (put-call parity).
.. [2] P. J. Huber, "Robust Estimation of a Location Parameter", Annals of Mathematical
   Statistics 35(1), 73-101, 1964; the IRLS scheme, the Huber ``t = 1.345`` norm, the MAD
   scale and the deviance stopping rule are those of ``statsmodels.robust.RLM`` (``HuberT``,
   ``scale_est="mad"``, ``conv="dev"``, ``tol=1e-8``, ``maxiter=50``), which the tests use
   as the reference.
.. [3] H. Theil (1950), P. K. Sen (1968): median of pairwise slopes
   (``scipy.stats.theilslopes``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numba import njit
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "FALLBACK_MIN_PAIRS",
    "HUBER_T",
    "PARITY_FORWARD_COLUMNS",
    "ForwardEstimate",
    "carry_forward",
    "forward_estimate",
    "nearest_parity_forwards",
    "parity_forwards",
    "parity_pairs",
]

HUBER_T: float = 1.345
"""Huber norm threshold (in units of the robust scale), as ``statsmodels.robust.norms.HuberT``."""

_MAD_C = 0.6744897501960817  # Φ⁻¹(3/4): MAD / 0.6745 estimates σ for normal residuals
_IRLS_TOL = 1e-8
_IRLS_MAXITER = 50

PARITY_FORWARD_COLUMNS = (
    "tte",
    "forward",
    "discount",
    "rate",
    "carry",
    "div_yield",
    "forward_se",
    "n_pairs",
    "n_two_sided",
    "n_used",
    "n_downweighted",
    "resid_rmse",
    "resid_max_abs",
    "resid_max_half_spreads",
    "robust_scale",
    "atm_half_spread",
    "note",
)
"""Columns of :func:`parity_forwards` (see its Returns section)."""

_NOTES = (
    "ok",
    "fewer than 3 two-sided call/put pairs",
    "degenerate fit (strikes all equal or slope >= 0)",
    "expired (tte = 0): quotes after settlement carry no forward",
)


# --------------------------------------------------------------------------------------
# Pairs from a long quotes table
# --------------------------------------------------------------------------------------


def parity_pairs(
    quotes: pd.DataFrame,
    *,
    keys: Sequence[str] = ("root", "expiration"),
    strike: str = "strike",
    right: str = "right",
    bid: str = "bid",
    ask: str = "ask",
    mid: str | None = None,
    tte: str = "tte",
) -> pd.DataFrame:
    """Call/put pairs (same expiry key and strike) from a table with one row per option.

    Parameters
    ----------
    quotes : pandas.DataFrame
        One row per option with the ``keys`` columns (e.g. ``root``, ``expiration``),
        ``strike``, ``right`` ('C'/'P'), ``bid``, ``ask``, optionally ``mid``, and ``tte``
        (years ACT/365 of the row's expiry). ``ChainSnapshot.with_implied_vols()`` has
        all of them.
    keys : sequence of str
        Columns identifying one expiry (one forward).
    strike, right, bid, ask, tte : str
        Column names.
    mid : str, optional
        Column of mids; default ``(bid + ask)/2``.

    Returns
    -------
    pandas.DataFrame
        One row per ``(keys, strike)`` quoted on both sides, sorted by keys then strike, with
        the key columns, ``strike``, ``tte``, ``call_bid``, ``call_ask``, ``call_mid``,
        ``put_bid``, ``put_ask``, ``put_mid``. Strikes quoted for only one right are left
        out (their count is ``len(quotes) - 2 * len(result)``).

    Raises
    ------
    KeyError
        A named column is missing (the message lists the frame's columns).
    ValueError
        A right other than 'C'/'P', or a ``(keys, strike, right)`` quoted twice (the
        message names the first duplicate).
    """
    cols = [*keys, strike, right, bid, ask, tte] + ([mid] if mid is not None else [])
    missing = [c for c in cols if c not in quotes.columns]
    if missing:
        raise KeyError(f"quotes frame lacks column(s) {missing}; it has {list(quotes.columns)}")
    rights = quotes[right].astype(str)
    bad = ~rights.isin(["C", "P"])
    if bad.any():
        first = quotes.index[np.flatnonzero(bad.to_numpy())[0]]
        raise ValueError(
            f"quotes row {first!r}, column {right!r}: expected 'C' or 'P', got "
            f"{quotes.at[first, right]!r}"
        )
    frame = quotes[cols].copy()
    if mid is None:
        frame["_mid"] = 0.5 * (frame[bid].astype(float) + frame[ask].astype(float))
    else:
        frame["_mid"] = frame[mid].astype(float)
    dup = frame.duplicated([*keys, strike, right])
    if dup.any():
        first = frame.index[np.flatnonzero(dup.to_numpy())[0]]
        raise ValueError(
            f"quotes row {first!r}: ({', '.join(keys)}, {strike}, {right}) = "
            f"{tuple(frame.loc[first, [*keys, strike, right]])} is quoted more than once"
        )
    ren = {bid: "bid", ask: "ask", "_mid": "mid"}
    calls = frame[rights == "C"].rename(columns=ren)
    puts = frame[rights == "P"].rename(columns=ren)
    on = [*keys, strike]
    pairs = calls[[*on, tte, "bid", "ask", "mid"]].merge(
        puts[[*on, "bid", "ask", "mid"]], on=on, how="inner", suffixes=("_c", "_p")
    )
    pairs = pairs.rename(
        columns={
            strike: "strike",
            tte: "tte",
            "bid_c": "call_bid",
            "ask_c": "call_ask",
            "mid_c": "call_mid",
            "bid_p": "put_bid",
            "ask_p": "put_ask",
            "mid_p": "put_mid",
        }
    )
    return pairs.sort_values([*keys, "strike"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------
# The forward of one rate: nearest-the-money parity pairs, with one fallback
# --------------------------------------------------------------------------------------

FALLBACK_MIN_PAIRS: int = 1
"""Two-sided call/put pairs below which :func:`forward_estimate` falls back to
:func:`carry_forward` (with one pair the parity forward exists)."""


class ForwardEstimate(NamedTuple):
    """One expiry's forward and where it came from.

    Attributes
    ----------
    forward : float
        Forward in the underlying's units (index points / dollars); NaN when ``source`` is
        ``"none"``.
    n_pairs : int
        Two-sided call/put pairs averaged (0 for the fallback).
    source : str
        ``"parity"`` (:func:`nearest_parity_forwards`), ``"carry"`` (:func:`carry_forward`
        of the spot: fewer than :data:`FALLBACK_MIN_PAIRS` two-sided pairs) or ``"none"``
        (no pair and no finite positive spot).
    """

    forward: float
    n_pairs: int
    source: str


def carry_forward(
    spot: ArrayLike, tte: ArrayLike, rate: ArrayLike, div_yield: ArrayLike = 0.0
) -> NDArray[np.float64]:
    """Cost-of-carry forward ``F = S e^{(r - q) tte}``, the one fallback of the suite.

    Used where an expiry has no two-sided call/put pair (sparse chains): it is the forward the
    Black-Scholes-Merton model assigns to the spot (Hull, "Options, Futures, and Other
    Derivatives", eq. 5.3 with a continuous yield; ``QuantLib`` ``BlackScholesMertonProcess``
    forward ``S · D_q(T) / D_r(T)`` with flat curves), so Black-76 on it with discount
    ``e^{-r tte}`` is Black-Scholes on the spot.

    Parameters
    ----------
    spot : array_like of float
        Underlying price (index points / dollars).
    tte : array_like of float
        Years to expiry, ACT/365.
    rate, div_yield : array_like of float
        Continuously compounded rate and dividend yield (decimals).

    Returns
    -------
    numpy.ndarray of float64
        The broadcast forwards (a 0-d array for scalar input; ``float()`` it). NaN propagates;
        no value is checked (a non-positive spot gives a non-positive forward).
    """
    s, t, r, q = (np.asarray(a, dtype=np.float64) for a in (spot, tte, rate, div_yield))
    return s * np.exp((r - q) * t)


def nearest_parity_forwards(
    group: ArrayLike,
    strike: ArrayLike,
    call_mid: ArrayLike,
    put_mid: ArrayLike,
    tte: ArrayLike,
    rate: float,
    *,
    n_groups: int | None = None,
    n_strikes: int = 3,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Put-call-parity forward of every expiry at a known rate, from the pairs nearest the money.

    Per group ``g``: ``F_K = K + e^{r tte_g} (C_mid(K) - P_mid(K))`` (Stoll 1969,
    ``C - P = e^{-r tte}(F - K)``) at each of the ``n_strikes`` pairs with the smallest
    ``|C_mid - P_mid|`` (ties: lower strike first); the forward is their mean. Near the money
    parity is least sensitive to the rate and to the quote widths; averaging three strikes
    halves the half-tick noise of one pair. This is the forward of
    :meth:`data_feeds.chains.ChainSnapshot.forward` and of the auction rows
    (``n_strikes=1``, rate 0); :func:`parity_forwards` is the regression that also fits the
    discount factor.

    Parameters
    ----------
    group : array_like of int, shape (n,)
        Group (expiry) code of each pair, in ``0 .. n_groups - 1``.
    strike, call_mid, put_mid : array_like of float, shape (n,)
        Strike and call/put mids of pairs whose call and put are both two-sided (the caller
        filters; this function uses every row given). Underlying units.
    tte : array_like of float, shape (n_groups,)
        Years to expiry (ACT/365) of each group.
    rate : float
        Continuously compounded rate (decimal).
    n_groups : int, optional
        Number of groups; default ``len(tte)``.
    n_strikes : int
        Pairs averaged per group (>= 1).

    Returns
    -------
    forward : numpy.ndarray of float64, shape (n_groups,)
        NaN for a group without pairs.
    n_used : numpy.ndarray of int64, shape (n_groups,)
        Pairs averaged (``min(n_strikes, pairs of the group)``).

    Raises
    ------
    ValueError
        ``n_strikes < 1``, arrays of different lengths, or a group code outside
        ``0 .. n_groups - 1``.
    """
    if n_strikes < 1:
        raise ValueError(f"n_strikes must be at least 1, got {n_strikes}")
    g = np.asarray(group, dtype=np.int64)
    k = np.asarray(strike, dtype=np.float64)
    c = np.asarray(call_mid, dtype=np.float64)
    p = np.asarray(put_mid, dtype=np.float64)
    tte_g = np.atleast_1d(np.asarray(tte, dtype=np.float64))
    n_groups = tte_g.size if n_groups is None else int(n_groups)
    if not (g.shape == k.shape == c.shape == p.shape) or g.ndim != 1:
        raise ValueError(
            f"group, strike, call_mid, put_mid must be 1-d of one length, got shapes "
            f"{g.shape}, {k.shape}, {c.shape}, {p.shape}"
        )
    if g.size and (g.min() < 0 or g.max() >= n_groups):
        raise ValueError(f"group codes must lie in 0..{n_groups - 1}, got {g.min()}..{g.max()}")
    gap = np.abs(c - p)
    order = np.lexsort((k, gap, g))
    g, k, c, p = g[order], k[order], c[order], p[order]
    first = np.searchsorted(g, g, side="left")
    keep = (np.arange(g.size) - first) < n_strikes
    g, k, c, p = g[keep], k[keep], c[keep], p[keep]
    f_i = k + np.exp(rate * tte_g[g]) * (c - p)
    count = np.bincount(g, minlength=n_groups).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        forward = np.bincount(g, weights=f_i, minlength=n_groups) / count
    forward[count == 0] = np.nan
    return forward, count


def forward_estimate(
    strike: ArrayLike,
    call_mid: ArrayLike,
    put_mid: ArrayLike,
    tte: float,
    rate: float,
    *,
    spot: float = math.nan,
    div_yield: float = 0.0,
    n_strikes: int = 3,
) -> ForwardEstimate:
    """Forward of one expiry: the parity forward, else the one documented fallback.

    With at least :data:`FALLBACK_MIN_PAIRS` two-sided pairs: :func:`nearest_parity_forwards`
    (``source="parity"``). Otherwise :func:`carry_forward` ``spot e^{(rate - div_yield) tte}``
    (``source="carry"``), or NaN with ``source="none"`` when the spot is not finite and
    positive.

    Parameters
    ----------
    strike, call_mid, put_mid : array_like of float, shape (n,)
        Two-sided call/put pairs of the expiry (may be empty).
    tte : float
        Years to expiry, ACT/365.
    rate, div_yield : float
        Continuously compounded rate and dividend yield (decimals); ``div_yield`` enters the
        fallback only.
    spot : float
        Underlying price for the fallback (NaN: no fallback).
    n_strikes : int
        See :func:`nearest_parity_forwards`.

    Returns
    -------
    ForwardEstimate
    """
    k = np.atleast_1d(np.asarray(strike, dtype=np.float64))
    if k.size >= FALLBACK_MIN_PAIRS:
        fwd, used = nearest_parity_forwards(
            np.zeros(k.size, dtype=np.int64), k, call_mid, put_mid, [tte], rate,
            n_strikes=n_strikes,
        )  # fmt: skip
        if math.isfinite(fwd[0]):
            return ForwardEstimate(float(fwd[0]), int(used[0]), "parity")
    if math.isfinite(spot) and spot > 0:
        return ForwardEstimate(float(carry_forward(spot, tte, rate, div_yield)), 0, "carry")
    return ForwardEstimate(math.nan, 0, "none")


# --------------------------------------------------------------------------------------
# Selection and robust regression, one compiled loop over the expiries
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _select_nb(
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    strike: NDArray[np.float64],
    tte: NDArray[np.float64],
    diff: NDArray[np.float64],
    two_sided: NDArray[np.bool_],
    window_sd: float,
    ref_vol: float,
    min_window: float,
    min_pairs: int,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.int64]]:
    """Pairs used per group: two-sided and within the log-moneyness window around the
    first-pass forward ``K* + (C - P)(K*)`` (``K*`` minimises ``|C - P|``); widened to the
    ``min_pairs`` nearest two-sided pairs when the window holds fewer."""
    n_groups = starts.size
    used = np.zeros(strike.size, dtype=np.bool_)
    f0 = np.full(n_groups, np.nan)
    n_two = np.zeros(n_groups, dtype=np.int64)
    for g in range(n_groups):
        a, b = starts[g], ends[g]
        best = -1
        for i in range(a, b):
            if two_sided[i]:
                n_two[g] += 1
                if best < 0 or abs(diff[i]) < abs(diff[best]):
                    best = i
        if best < 0:
            continue
        fg = strike[best] + diff[best]
        if not fg > 0.0:
            fg = strike[best]
        f0[g] = fg
        width = max(min_window, window_sd * ref_vol * math.sqrt(max(tte[a], 0.0)))
        dist = np.full(b - a, np.inf)
        count = 0
        for i in range(a, b):
            if two_sided[i]:
                dist[i - a] = abs(math.log(strike[i] / fg))
                if dist[i - a] <= width:
                    used[i] = True
                    count += 1
        if count < min_pairs:
            order = np.argsort(dist)
            for j in range(min(min_pairs, n_two[g])):
                used[a + order[j]] = True
    return used, f0, n_two


@njit(cache=True)
def _huber_rho_sum_nb(resid: NDArray[np.float64], scale: float) -> float:
    total = 0.0
    for r in resid:
        z = abs(r / scale)
        total += 0.5 * z * z if z <= HUBER_T else HUBER_T * z - 0.5 * HUBER_T * HUBER_T
    return total


@njit(cache=True)
def _wls_nb(
    y: NDArray[np.float64],
    x1: NDArray[np.float64],
    x2: NDArray[np.float64],
    w: NDArray[np.float64],
    p: int,
) -> tuple[float, float, float, float, float]:
    """Weighted least squares of ``y`` on the columns ``x1`` (``p = 1``) or ``x1, x2``.

    Returns ``(theta1, theta2, c11, c12, c22)`` with ``c = (X'WX)^{-1}``; NaN if singular.
    """
    s11 = 0.0
    s12 = 0.0
    s22 = 0.0
    t1 = 0.0
    t2 = 0.0
    for i in range(y.size):
        s11 += w[i] * x1[i] * x1[i]
        t1 += w[i] * x1[i] * y[i]
        if p == 2:
            s12 += w[i] * x1[i] * x2[i]
            s22 += w[i] * x2[i] * x2[i]
            t2 += w[i] * x2[i] * y[i]
    if p == 1:
        if not s11 > 0.0:
            return np.nan, 0.0, np.nan, 0.0, 0.0
        return t1 / s11, 0.0, 1.0 / s11, 0.0, 0.0
    det = s11 * s22 - s12 * s12
    if not det > 1e-13 * s11 * s22:
        return np.nan, np.nan, np.nan, np.nan, np.nan
    return (
        (s22 * t1 - s12 * t2) / det,
        (s11 * t2 - s12 * t1) / det,
        s22 / det,
        -s12 / det,
        s11 / det,
    )


@njit(cache=True)
def _huber_irls_nb(
    y: NDArray[np.float64], x1: NDArray[np.float64], x2: NDArray[np.float64], p: int
) -> tuple[float, float, float, float, float, float, NDArray[np.float64]]:
    """Huber M-estimate of ``y ~ theta1 x1 (+ theta2 x2)`` by IRLS, step for step as
    ``statsmodels.robust.RLM(y, X, M=HuberT()).fit()``: OLS start, MAD scale about 0, Huber
    weights, WLS, stop when the deviance (with the WLS residual scale) changes by at most
    1e-8 or after 50 iterations.

    Returns ``(theta1, theta2, v11, v12, v22, robust_scale, weights)``, ``v`` the covariance
    ``s² (X'WX)^{-1}`` of the last weighted fit (``s²`` its weighted residual variance).
    """
    n = y.size
    w = np.ones(n)
    t1, t2, c11, c12, c22 = _wls_nb(y, x1, x2, w, p)
    resid = y - t1 * x1 - t2 * x2
    wls_scale = np.sum(w * resid * resid) / (n - p)
    dev_prev = _huber_rho_sum_nb(resid, math.sqrt(wls_scale)) if wls_scale > 0.0 else 0.0
    scale = np.median(np.abs(resid)) / _MAD_C
    iteration = 1
    while scale > 0.0 and t1 == t1:
        for i in range(n):
            z = abs(resid[i] / scale)
            w[i] = 1.0 if z <= HUBER_T else HUBER_T / z
        t1, t2, c11, c12, c22 = _wls_nb(y, x1, x2, w, p)
        resid = y - t1 * x1 - t2 * x2
        wls_scale = np.sum(w * resid * resid) / (n - p)
        scale = np.median(np.abs(resid)) / _MAD_C
        dev = _huber_rho_sum_nb(resid, math.sqrt(wls_scale)) if wls_scale > 0.0 else 0.0
        iteration += 1
        if not (abs(dev - dev_prev) > _IRLS_TOL and iteration < _IRLS_MAXITER):
            break
        dev_prev = dev
    return t1, t2, wls_scale * c11, wls_scale * c12, wls_scale * c22, scale, w


@njit(cache=True)
def _fit_groups_nb(
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    strike: NDArray[np.float64],
    diff: NDArray[np.float64],
    half_spread: NDArray[np.float64],
    used: NDArray[np.bool_],
    discount_fixed: NDArray[np.float64],
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.int64],
]:
    """Huber fit of every group (rows ``starts[g]:ends[g]`` with ``used``).

    Returns per group ``forward, discount, forward_se, robust_scale, note`` and per row the
    Huber weight (NaN for rows not used).
    """
    n_groups = starts.size
    forward = np.full(n_groups, np.nan)
    discount = np.full(n_groups, np.nan)
    forward_se = np.full(n_groups, np.nan)
    robust_scale = np.full(n_groups, np.nan)
    weight = np.full(strike.size, np.nan)
    note = np.zeros(n_groups, dtype=np.int64)
    for g in range(n_groups):
        idx = np.flatnonzero(used[starts[g] : ends[g]]) + starts[g]
        m = idx.size
        if m < 3:
            note[g] = 1
            continue
        sig = half_spread[idx]
        k = strike[idx]
        fixed = discount_fixed[g]
        if fixed == fixed:
            # D known: C - P + D K = D F; rows scaled by 1/half-spread, one column D/sig
            y = (diff[idx] + fixed * k) / sig
            f, _, v11, _, _, scale, w = _huber_irls_nb(y, fixed / sig, np.zeros(m), 1)
            d = fixed
            var = v11
        else:
            # C - P = alpha + beta K; rows scaled by 1/half-spread: columns 1/sig, K/sig
            alpha, beta, v11, v12, v22, scale, w = _huber_irls_nb(
                diff[idx] / sig, 1.0 / sig, k / sig, 2
            )
            if not beta < 0.0:
                note[g] = 2
                continue
            d = -beta
            f = alpha / d
            # delta method for F = -alpha/beta
            ga = -1.0 / beta
            gb = alpha / (beta * beta)
            var = ga * ga * v11 + 2.0 * ga * gb * v12 + gb * gb * v22
        forward[g] = f
        discount[g] = d
        forward_se[g] = math.sqrt(var) if var >= 0.0 else np.nan
        robust_scale[g] = scale
        for j in range(m):
            weight[idx[j]] = w[j]
    return forward, discount, forward_se, robust_scale, weight, note


# --------------------------------------------------------------------------------------
# Public fit
# --------------------------------------------------------------------------------------


def parity_forwards(
    pairs: pd.DataFrame,
    *,
    keys: Sequence[str] = ("root", "expiration"),
    spot: float | None = None,
    rate: float | None = None,
    method: Literal["huber", "theil_sen"] = "huber",
    window_sd: float = 1.0,
    ref_vol: float = 0.25,
    min_window: float = 0.005,
    min_pairs: int = 5,
    return_pairs: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Forward, discount factor and implied carry of every expiry from put-call parity.

    Per expiry (group of ``keys``): the call/put pairs whose quotes are both two-sided
    (``bid > 0``, ``ask >= bid``) are candidates; a first-pass forward ``F0 = K* + (C - P)``
    at the strike ``K*`` with the smallest ``|C_mid - P_mid|`` centres a log-moneyness window
    ``|ln(K/F0)| <= max(min_window, window_sd · ref_vol · sqrt(tte))`` (widened to the
    ``min_pairs`` nearest candidates if it holds fewer); ``C_mid - P_mid = α + β K`` is fitted
    on those pairs and ``D = -β``, ``F = α/D``.

    ``method="huber"``: Huber M-estimator (``t = 1.345``, MAD scale) by IRLS with each pair
    weighted by ``1/h`` where ``h = (call_ask - call_bid)/2 + (put_ask - put_bid)/2`` is the
    half-spread of its ``C - P`` quote (floored at 0.1 of the group's median, for locked
    quotes), so residuals are in half-spreads; same iterations as
    ``statsmodels.robust.RLM(y/h, [1/h, K/h], M=HuberT()).fit()``. ``method="theil_sen"``:
    ``scipy.stats.theilslopes(method="joint")`` of ``C - P`` on ``K`` (unweighted; the
    intercept is the median of ``C - P - slope K``).

    Parameters
    ----------
    pairs : pandas.DataFrame
        One row per call/put pair (see :func:`parity_pairs`): the ``keys`` columns,
        ``strike``, ``tte`` (years ACT/365, ``>= 0``, constant within a group; 0 marks an
        expired expiry), ``call_bid``,
        ``call_ask``, ``put_bid``, ``put_ask`` and optionally ``call_mid``/``put_mid``
        (default: the bid/ask midpoints). Prices per unit, in the underlying's units.
    keys : sequence of str
        Columns identifying one expiry.
    spot : float, optional
        Underlying price at the quote time, for ``carry = ln(F/spot)/tte`` and
        ``div_yield = rate - carry``.
    rate : float, optional
        Continuously compounded rate (decimal). If given, the discount factor is fixed at
        ``e^{-rate tte}`` and only the forward is fitted (``C - P + D K = D F``, a robust
        location fit); use it for short expiries, where ``D`` is not identified by the
        quotes (the implied rate of a 0DTE expiry is noise).
    method : {"huber", "theil_sen"}
        Robust estimator (see above).
    window_sd, ref_vol, min_window : float
        Log-moneyness window: ``window_sd`` standard deviations at the reference vol
        ``ref_vol`` (decimal), at least ``min_window``.
    min_pairs : int
        Minimum pairs used (>= 3) when the window holds fewer.
    return_pairs : bool
        Also return the pairs (sorted by keys and strike) with the columns ``two_sided``,
        ``used``, ``half_spread`` (``h``), ``huber_weight`` (NaN unless used with
        ``method="huber"``) and ``resid`` (``C - P - D(F - K)``, price units).

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, pandas.DataFrame)
        Indexed by the ``keys`` (sorted), columns :data:`PARITY_FORWARD_COLUMNS`:

        ``tte``; ``forward`` (underlying units); ``discount`` ``D``; ``rate``
        ``-ln(D)/tte``; ``carry`` ``ln(F/spot)/tte`` (``r - q``, NaN without ``spot``);
        ``div_yield`` ``rate - carry``; ``forward_se`` standard error of the forward
        (delta method on the final weighted fit; NaN for Theil-Sen); ``n_pairs`` pairs in
        the group; ``n_two_sided`` pairs with both quotes two-sided; ``n_used`` pairs in the
        fit; ``n_downweighted`` pairs with Huber weight below 1 (Theil-Sen: scaled residual
        beyond ``1.345 ·`` robust scale); ``resid_rmse`` and ``resid_max_abs`` of
        ``C - P - D(F - K)`` over the used pairs (price units); ``resid_max_half_spreads``
        the largest ``|residual| / h``; ``robust_scale`` MAD scale of the residuals in
        half-spreads; ``atm_half_spread`` ``h`` of the used pair nearest the forward (price
        units; divide by ``D`` for forward units); ``note`` "ok" or why the forward is NaN
        (fewer than 3 two-sided pairs; a degenerate fit; an expired expiry, ``tte == 0``).

    Raises
    ------
    KeyError
        A needed column is missing (the message lists the frame's columns).
    ValueError
        An unknown ``method``, a bad window parameter, ``min_pairs < 3``, a non-positive or
        non-finite strike, a negative or non-finite tte (row named), or a ``tte`` that varies
        within a group.
    """
    if method not in ("huber", "theil_sen"):
        raise ValueError(f"method must be 'huber' or 'theil_sen', got {method!r}")
    if not (window_sd > 0 and ref_vol > 0 and min_window >= 0):
        raise ValueError(
            "window_sd and ref_vol must be > 0 and min_window >= 0, got "
            f"{window_sd!r}, {ref_vol!r}, {min_window!r}"
        )
    if min_pairs < 3:
        raise ValueError(f"min_pairs must be at least 3, got {min_pairs}")
    keys = list(keys)
    needed = [*keys, "strike", "tte", "call_bid", "call_ask", "put_bid", "put_ask"]
    missing = [c for c in needed if c not in pairs.columns]
    if missing:
        raise KeyError(f"pairs frame lacks column(s) {missing}; it has {list(pairs.columns)}")
    for col, lowest in (("strike", "> 0"), ("tte", ">= 0")):
        values = pairs[col].to_numpy(dtype=np.float64)
        ok = values > 0 if col == "strike" else values >= 0
        bad = ~(np.isfinite(values) & ok)
        if bad.any():
            row = pairs.index[np.flatnonzero(bad)[0]]
            raise ValueError(
                f"pairs row {row!r}, column {col!r}: expected a finite value {lowest}, got "
                f"{float(pairs.at[row, col])!r} ({int(bad.sum())} such rows)"
            )

    codes = pairs.groupby(keys, sort=True).ngroup().to_numpy()
    strike_all = pairs["strike"].to_numpy(dtype=np.float64)
    order = np.lexsort((strike_all, codes))
    codes = codes[order]
    n = codes.size
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if n else np.zeros(0, int)
    ends = np.r_[starts[1:], n].astype(np.int64)
    starts = starts.astype(np.int64)

    def col(name: str) -> NDArray[np.float64]:
        return pairs[name].to_numpy(dtype=np.float64)[order]

    strike = strike_all[order]
    tte = col("tte")
    tte_g = tte[starts]
    varies = np.abs(tte - np.repeat(tte_g, ends - starts)) > 1e-12 * np.maximum(tte, 1.0)
    if varies.any():
        row = pairs.index[order[np.flatnonzero(varies)[0]]]
        raise ValueError(
            f"pairs row {row!r}: tte {float(pairs.at[row, 'tte'])!r} differs from the rest of its "
            f"group {tuple(pairs.loc[row, keys])} (one expiry must have one tte)"
        )
    cb, ca, pb, pa = col("call_bid"), col("call_ask"), col("put_bid"), col("put_ask")
    cm = col("call_mid") if "call_mid" in pairs.columns else 0.5 * (cb + ca)
    pm = col("put_mid") if "put_mid" in pairs.columns else 0.5 * (pb + pa)
    with np.errstate(invalid="ignore"):
        two_sided = (cb > 0) & (pb > 0) & (ca >= cb) & (pa >= pb) & np.isfinite(cm + pm)
    diff = cm - pm
    half = 0.5 * (ca - cb) + 0.5 * (pa - pb)
    half = np.where(two_sided, half, np.nan)
    n_groups = starts.size
    gid = np.repeat(np.arange(n_groups), ends - starts)
    med = pd.Series(half).groupby(gid).median().reindex(range(n_groups)).to_numpy()
    half = np.maximum(half, 0.1 * med[gid])

    used, _, n_two = _select_nb(
        starts, ends, strike, tte, diff, two_sided, window_sd, ref_vol, min_window, min_pairs
    )
    expired = tte_g == 0.0
    used &= ~expired[np.repeat(np.arange(n_groups), ends - starts)]
    fixed = np.exp(-rate * tte_g) if rate is not None else np.full(n_groups, np.nan)
    if method == "huber":
        forward, discount, forward_se, robust_scale, weight, note = _fit_groups_nb(
            starts, ends, strike, diff, half, used, fixed
        )
    else:
        forward, discount, forward_se, robust_scale, weight, note = _theil_sen_groups(
            starts, ends, strike, diff, half, used, fixed
        )

    note[expired] = 3
    # residual diagnostics over the used pairs
    f_row = forward[gid]
    d_row = discount[gid]
    resid = diff - d_row * (f_row - strike)
    ok_row = used & np.isfinite(resid)
    r2 = np.where(ok_row, resid * resid, 0.0)
    n_used = np.bincount(gid, weights=used.astype(float), minlength=n_groups).astype(np.int64)
    n_ok = np.bincount(gid, weights=ok_row.astype(float), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.sqrt(np.bincount(gid, weights=r2, minlength=n_groups) / n_ok)
    abs_r = np.where(ok_row, np.abs(resid), -np.inf)
    abs_rh = np.where(ok_row, np.abs(resid) / half, -np.inf)
    max_abs = np.full(n_groups, -np.inf)
    max_h = np.full(n_groups, -np.inf)
    np.maximum.at(max_abs, gid, abs_r)
    np.maximum.at(max_h, gid, abs_rh)
    max_abs[~np.isfinite(max_abs)] = np.nan
    max_h[~np.isfinite(max_h)] = np.nan
    if method == "huber":
        down = ok_row & (weight < 1.0)
    else:
        with np.errstate(invalid="ignore"):
            down = ok_row & (np.abs(resid) / half > HUBER_T * robust_scale[gid])
    n_down = np.bincount(gid, weights=down.astype(float), minlength=n_groups).astype(np.int64)
    # half-spread of the used pair nearest the forward
    dist = np.where(ok_row, np.abs(strike - f_row), np.inf)
    atm_half = np.full(n_groups, np.nan)
    for g in range(n_groups):
        a, b = starts[g], ends[g]
        if b > a and np.isfinite(dist[a:b]).any():
            atm_half[g] = half[a + int(np.argmin(dist[a:b]))]

    with np.errstate(invalid="ignore", divide="ignore"):
        implied_rate = -np.log(discount) / tte_g
        if spot is not None:
            carry = np.log(forward / float(spot)) / tte_g
        else:
            carry = np.full(n_groups, np.nan)
    first = pairs.iloc[order[starts]]
    if len(keys) == 1:
        index = pd.Index(first[keys[0]].to_numpy(), name=keys[0])
    else:
        index = pd.MultiIndex.from_frame(first[keys].reset_index(drop=True))
    n_pairs = (ends - starts).astype(np.int64)
    out = pd.DataFrame(
        {
            "tte": tte_g,
            "forward": forward,
            "discount": discount,
            "rate": implied_rate,
            "carry": carry,
            "div_yield": implied_rate - carry,
            "forward_se": forward_se,
            "n_pairs": n_pairs,
            "n_two_sided": n_two,
            "n_used": n_used,
            "n_downweighted": n_down,
            "resid_rmse": rmse,
            "resid_max_abs": max_abs,
            "resid_max_half_spreads": max_h,
            "robust_scale": robust_scale,
            "atm_half_spread": atm_half,
            "note": [_NOTES[int(c)] for c in note],
        },
        index=index,
    )
    if not return_pairs:
        return out
    detail = pairs.iloc[order].copy()
    detail["two_sided"] = two_sided
    detail["used"] = used
    detail["half_spread"] = half
    detail["huber_weight"] = weight
    detail["resid"] = np.where(used, resid, np.nan)
    return out, detail


def _theil_sen_groups(
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    strike: NDArray[np.float64],
    diff: NDArray[np.float64],
    half: NDArray[np.float64],
    used: NDArray[np.bool_],
    fixed: NDArray[np.float64],
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.int64],
]:
    """Theil-Sen per group (``scipy.stats.theilslopes``, joint intercept; the median of
    ``(C - P)/D + K`` when the discount is fixed). Same outputs as :func:`_fit_groups_nb`."""
    from scipy.stats import theilslopes  # imported here: scipy.stats is slow to import

    n_groups = starts.size
    forward = np.full(n_groups, np.nan)
    discount = np.full(n_groups, np.nan)
    robust_scale = np.full(n_groups, np.nan)
    note = np.zeros(n_groups, dtype=np.int64)
    for g in range(n_groups):
        idx = np.flatnonzero(used[starts[g] : ends[g]]) + starts[g]
        if idx.size < 3:
            note[g] = 1
            continue
        k, dv = strike[idx], diff[idx]
        if np.isfinite(fixed[g]):
            d = float(fixed[g])
            f = float(np.median(dv / d + k))
        else:
            res = theilslopes(dv, k, method="joint")
            if not res.slope < 0.0:
                note[g] = 2
                continue
            d = -float(res.slope)
            f = float(res.intercept) / d
        forward[g] = f
        discount[g] = d
        scaled = (dv - d * (f - k)) / half[idx]
        robust_scale[g] = float(np.median(np.abs(scaled))) / _MAD_C
    return (
        forward,
        discount,
        np.full(n_groups, np.nan),
        robust_scale,
        np.full(strike.size, np.nan),
        note,
    )
