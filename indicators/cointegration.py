"""Pairs formation: rolling Engle-Granger hedge ratio and exact OU fit of the formation spread.

Used by ``ou_pairs`` (through :func:`formation_tables`). Every
``refit_days`` sessions a *formation* is estimated on the ``formation_days`` sessions ending the
session **before** it takes effect (window ``[t - formation_days, t)`` for the formation in force
from session ``t``):

1. hedge ratio: OLS ``y = alpha + beta x + e`` (Engle and Granger 1987, step one), by the
   centred closed form ``beta = S_xy / S_xx``, ``alpha = ybar - beta xbar`` (Greene,
   *Econometric Analysis*, 7th ed., eq. 3-9/3-10; the solution statsmodels ``OLS`` returns);
2. the formation spread ``y - beta x`` over the window and its exact OU maximum-likelihood fit
   (:func:`pricing.ou.ou_mle_nb`, the kernel of :func:`pricing.ou.fit_ou`; Leung and Li 2015).

Each session carries the formation in force (``formation_id = -1`` and NaN before the first),
so the row of session ``t`` reads closes up to ``t - 1`` only; the spread *value* on ``t`` is
``y_t - beta x_t`` with the formation's ``beta``. Prices in dollars per share; ``theta`` and
``sigma`` in spread units (dollars per spread unit; ``sigma`` per square-root year), ``mu`` per
year, ``half_life_days`` in sessions (``ln 2 / (mu dt)``).

The Engle-Granger cointegration p-value (ADF on the residual with MacKinnon p-values) stays with
statsmodels (:func:`engle_granger`): it is computed once per formation window, not per session.

Health gate: the pair is *healthy* when the cointegration p-value is at most ``max_pvalue``, the
OU fit is mean reverting, its half-life is at most ``max_half_life_days`` sessions, and the
half-life has not drifted by more than a factor ``max_half_life_drift`` from the previous
formation's (either way). A strategy stops trading (and flattens) when it is not.
:func:`formation_table` applies it; :func:`apply_health` re-applies other limits to a table
without refitting.

Faces: the numba kernels :func:`hedge_ratio_nb` and :func:`formation_nb`, the vectorbt
indicator :data:`PairFormation` (a ``formation_days`` x ``refit_days`` grid in one ``run``
call), and the per-session tables with the p-value and the health gate
(:func:`formation_table`, :func:`formation_tables`, :func:`apply_health`; pandas in, pandas out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

from pricing.ou import OU_OK, OU_STATUS_BY_CODE, ou_mle_nb, ou_status_message

__all__ = [
    "FORMATION_COLUMNS",
    "FORMATION_OUTPUTS",
    "HedgeFit",
    "PairFormation",
    "apply_health",
    "engle_granger",
    "formation_nb",
    "formation_table",
    "formation_tables",
    "hedge_ratio_nb",
]

#: Outputs of :func:`formation_nb` / :data:`PairFormation`, in order.
FORMATION_OUTPUTS: tuple[str, ...] = (
    "formation_id",
    "beta",
    "intercept",
    "ou_code",
    "theta",
    "mu",
    "sigma",
    "half_life_days",
    "ar_slope",
    "spread",
)

_NAN = np.nan


@njit(cache=True)
def hedge_ratio_nb(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """OLS of ``y`` on a constant and ``x``: ``(intercept, beta)``.

    Parameters
    ----------
    y, x : np.ndarray
        1-D float64 prices of the same sessions (dollars per share), shape ``(n,)``, finite.

    Returns
    -------
    intercept : float
        ``alpha`` (dollars).
    beta : float
        Hedge ratio: shares of ``x`` per share of ``y``. Both NaN when ``x`` is constant.

    Raises
    ------
    ValueError
        Different lengths.
    """
    n = y.shape[0]
    if x.shape[0] != n:
        raise ValueError("y and x must have the same length")
    sx = 0.0
    sy = 0.0
    for i in range(n):
        sx += x[i]
        sy += y[i]
    mx = sx / n
    my = sy / n
    sxx = 0.0
    sxy = 0.0
    for i in range(n):
        dx = x[i] - mx
        sxx += dx * dx
        sxy += dx * (y[i] - my)
    if not sxx > 0.0:
        return _NAN, _NAN
    b = sxy / sxx
    return my - b * mx, b


@njit(cache=True)
def formation_nb(
    y: np.ndarray, x: np.ndarray, formation_days: int, refit_days: int, dt: float
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
    """The formation in force on every session (module docstring).

    Parameters
    ----------
    y, x : np.ndarray
        1-D float64 closes of the two legs (dollars per share), shape ``(n,)``.
    formation_days : int
        Sessions per formation window (>= 3).
    refit_days : int
        Sessions between formations (>= 1).
    dt : float
        Years per session for the OU fit (> 0).

    Returns
    -------
    formation_id, beta, intercept, ou_code, theta, mu, sigma, half_life_days, ar_slope, spread
        float64 arrays of shape ``(n,)`` (:data:`FORMATION_OUTPUTS`): the formation in force
        (``formation_id`` ``k`` takes effect at session ``formation_days + k refit_days``; -1
        before the first), its OLS ``beta`` / ``intercept``, the OU kernel's status code
        (:data:`pricing.ou.OU_STATUS_BY_CODE`), ``theta``, ``mu``, ``sigma``,
        ``half_life_days`` (``ln 2 / (mu dt)``) and AR(1) slope of the formation spread, and
        ``spread = y - beta x`` on each session.

    Raises
    ------
    ValueError
        Different lengths, ``formation_days < 3``, ``refit_days < 1``, ``dt <= 0`` or a
        non-finite close inside a formation window.
    """
    n = y.shape[0]
    if x.shape[0] != n:
        raise ValueError("y and x must have the same length")
    if formation_days < 3 or refit_days < 1:
        raise ValueError("need formation_days >= 3 and refit_days >= 1")
    if not dt > 0.0:
        raise ValueError("dt must be > 0 (years)")
    fid = np.full(n, -1.0)
    beta = np.full(n, _NAN)
    intercept = np.full(n, _NAN)
    code = np.full(n, _NAN)
    theta = np.full(n, _NAN)
    mu = np.full(n, _NAN)
    sigma = np.full(n, _NAN)
    half_life = np.full(n, _NAN)
    ar_slope = np.full(n, _NAN)
    spread = np.full(n, _NAN)
    k = 0
    for t in range(formation_days, n, refit_days):
        lo = t - formation_days
        for i in range(lo, t):
            if not (math.isfinite(y[i]) and math.isfinite(x[i])):
                raise ValueError("non-finite close inside a formation window")
        a, b = hedge_ratio_nb(y[lo:t], x[lo:t])
        s = y[lo:t] - b * x[lo:t]
        c, _, slope, _, _, th, m, sg = ou_mle_nb(s, dt)
        hl = math.log(2.0) / m / dt if c == 0.0 else _NAN
        for u in range(t, min(t + refit_days, n)):
            fid[u] = k
            beta[u] = b
            intercept[u] = a
            code[u] = c
            theta[u] = th
            mu[u] = m
            sigma[u] = sg
            half_life[u] = hl
            ar_slope[u] = slope
            spread[u] = y[u] - b * x[u]
        k += 1
    return fid, beta, intercept, code, theta, mu, sigma, half_life, ar_slope, spread


def _check_formation(formation_days: object, refit_days: object, dt: object) -> None:
    for name, v, low in (("formation_days", formation_days, 3), ("refit_days", refit_days, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if not (isinstance(dt, float | int) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0 (years), got {dt!r}")


def _formation_apply(
    y: np.ndarray, x: np.ndarray, formation_days: int, refit_days: int, dt: float
) -> tuple[np.ndarray, ...]:
    _check_formation(formation_days, refit_days, dt)
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    outs = [np.empty(y.shape, dtype=np.float64) for _ in FORMATION_OUTPUTS]
    for j in range(y.shape[1]):
        res = formation_nb(
            np.ascontiguousarray(y[:, j]),
            np.ascontiguousarray(x[:, j]),
            int(formation_days),
            int(refit_days),
            float(dt),
        )
        for k, r in enumerate(res):
            outs[k][:, j] = r
    return tuple(outs)


PairFormation = vbt.IndicatorFactory(
    class_name="PairFormation",
    short_name="form",
    input_names=["y", "x"],
    param_names=["formation_days", "refit_days", "dt"],
    output_names=list(FORMATION_OUTPUTS),
).from_apply_func(_formation_apply, formation_days=252, refit_days=21, dt=1.0 / 252.0)
PairFormation.__doc__ = """vectorbt indicator: the pairs formation in force on every session.

``PairFormation.run(y, x, formation_days=[126, 252], refit_days=[21, 63], param_product=True)``
computes every (formation_days, refit_days) grid point in one call; outputs
:data:`FORMATION_OUTPUTS`, identical to :func:`formation_nb`. Bad parameters raise ValueError."""


# ------------------------------------------------------------------------------------------------
# Per-session formation tables and the health gate
# ------------------------------------------------------------------------------------------------
FORMATION_COLUMNS = (
    "formation_id",
    "formation_start",
    "formation_end",
    "beta",
    "intercept",
    "coint_pvalue",
    "coint_stat",
    "theta",
    "mu",
    "sigma",
    "half_life_days",
    "ou_status",
    "healthy",
    "health_reason",
)
"""Columns of :func:`formation_table` (besides ``y``, ``x`` and ``spread``)."""


@dataclass(frozen=True)
class HedgeFit:
    """Engle-Granger step one and the cointegration test on one window.

    Attributes
    ----------
    beta : float
        Hedge ratio: shares of ``x`` per share of ``y`` (OLS slope).
    intercept : float
        OLS intercept (dollars).
    coint_pvalue : float
        MacKinnon p-value of the Engle-Granger test (statsmodels ``coint``).
    coint_stat : float
        The test's t-statistic.
    n_obs : int
        Sessions in the window.
    """

    beta: float
    intercept: float
    coint_pvalue: float
    coint_stat: float
    n_obs: int


def engle_granger(y: np.ndarray, x: np.ndarray) -> HedgeFit:
    """Hedge ratio by OLS and Engle-Granger cointegration p-value of ``y`` on ``x``.

    Parameters
    ----------
    y, x : numpy.ndarray, shape (n,)
        Prices (dollars per share) on the same sessions, ``n >= 20``, all finite.

    Returns
    -------
    HedgeFit

    Raises
    ------
    ValueError
        Shapes differ, fewer than 20 observations, or non-finite values.

    References
    ----------
    Engle, R. F. and Granger, C. W. J. (1987). "Co-integration and error correction".
    *Econometrica* 55(2), 251-276. Hedge ratio: :func:`hedge_ratio_nb`
    (OLS closed form, checked against statsmodels ``OLS``); test: statsmodels
    ``tsa.stattools.coint`` (``trend="c"``, ADF lag by AIC, MacKinnon 2010 p-values).
    """
    y = np.ascontiguousarray(np.asarray(y, dtype=float))
    x = np.ascontiguousarray(np.asarray(x, dtype=float))
    if y.shape != x.shape or y.ndim != 1:
        raise ValueError(f"y and x must be 1-D of equal length, got {y.shape} and {x.shape}")
    if y.size < 20:
        raise ValueError(f"need at least 20 observations, got {y.size}")
    if not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise ValueError("y and x must be finite")
    intercept, beta = hedge_ratio_nb(y, x)
    stat, pvalue = _coint(y, x)
    return HedgeFit(
        beta=float(beta),
        intercept=float(intercept),
        coint_pvalue=pvalue,
        coint_stat=stat,
        n_obs=int(y.size),
    )


def _coint(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """``(t-statistic, MacKinnon p-value)`` of statsmodels ``coint(y, x, trend="c")``."""
    from statsmodels.tsa.stattools import coint

    stat, pvalue, _ = coint(y, x, trend="c")
    return float(stat), float(pvalue)


def formation_table(
    y: pd.Series,
    x: pd.Series,
    *,
    formation_days: int = 252,
    refit_days: int = 21,
    max_pvalue: float = 0.10,
    max_half_life_days: float = 126.0,
    max_half_life_drift: float = 3.0,
    dt: float = 1.0 / 252.0,
) -> pd.DataFrame:
    """The spread and the formation (hedge ratio, OU fit, health) in force on every session.

    Parameters
    ----------
    y, x : pandas.Series
        Closes of the two legs (dollars per share) on the same sessions
        (:func:`data_feeds.spread_feed.align_legs`).
    formation_days : int
        Sessions in each formation window (>= 30).
    refit_days : int
        Sessions between formations (>= 1).
    max_pvalue : float
        Largest Engle-Granger p-value for a healthy pair.
    max_half_life_days : float
        Largest OU half-life (sessions) for a healthy pair.
    max_half_life_drift : float
        Largest ratio (either way, >= 1) between the half-lives of consecutive formations.
    dt : float
        Years per session for the OU fit.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``y``: ``y``, ``x``, ``spread`` (``y - beta x`` with the formation in force,
        NaN before the first formation) and :data:`FORMATION_COLUMNS`. ``formation_start`` /
        ``formation_end`` are the first and last sessions of the window; the row of session
        ``t`` only uses closes up to ``t - 1``. ``healthy`` is False before the first formation.

    Raises
    ------
    ValueError
        Misaligned inputs, a bad parameter, or fewer than ``formation_days + 1`` sessions.
    """
    key = (formation_days, refit_days)
    return formation_tables(
        y,
        x,
        [key],
        max_pvalue=max_pvalue,
        max_half_life_days=max_half_life_days,
        max_half_life_drift=max_half_life_drift,
        dt=dt,
    )[key]


def formation_tables(
    y: pd.Series,
    x: pd.Series,
    windows: Sequence[tuple[int, int]],
    *,
    max_pvalue: float = 0.10,
    max_half_life_days: float = 126.0,
    max_half_life_drift: float = 3.0,
    dt: float = 1.0 / 252.0,
) -> dict[tuple[int, int], pd.DataFrame]:
    """:func:`formation_table` of every ``(formation_days, refit_days)`` in ``windows``.

    The hedge ratios and OU fits of the whole grid come from one
    :data:`PairFormation` call; the Engle-Granger p-value is computed
    once per distinct formation window (statsmodels ``coint``).

    Parameters
    ----------
    y, x : pandas.Series
        Closes of the two legs (dollars per share) on the same sessions
        (:func:`data_feeds.spread_feed.align_legs`).
    windows : sequence of (int, int)
        ``(formation_days, refit_days)`` pairs (``formation_days >= 30``, ``refit_days >= 1``).
    max_pvalue, max_half_life_days, max_half_life_drift, dt
        As :func:`formation_table`.

    Returns
    -------
    dict
        ``(formation_days, refit_days)`` -> the :func:`formation_table` frame.

    Raises
    ------
    ValueError
        As :func:`formation_table`, for any pair.
    """
    if not y.index.equals(x.index):
        raise ValueError("y and x must share one index (use data_feeds.spread_feed.align_legs)")
    keys = [(int(fd), int(rd)) for fd, rd in windows]
    n = len(y)
    for formation_days, refit_days in keys:
        if formation_days < 30:
            raise ValueError(f"formation_days must be >= 30, got {formation_days}")
        if refit_days < 1:
            raise ValueError(f"refit_days must be >= 1, got {refit_days}")
        if n <= formation_days:
            raise ValueError(
                f"{n} sessions: need more than formation_days={formation_days} to form the pair"
            )
    if not max_half_life_drift >= 1.0:
        raise ValueError(f"max_half_life_drift must be >= 1, got {max_half_life_drift}")
    yv = np.ascontiguousarray(y.to_numpy(dtype=float))
    xv = np.ascontiguousarray(x.to_numpy(dtype=float))
    res = PairFormation.run(
        yv, xv, formation_days=[k[0] for k in keys], refit_days=[k[1] for k in keys], dt=dt
    )
    outs = {name: getattr(res, name).to_numpy().reshape(n, len(keys)) for name in FORMATION_OUTPUTS}
    tests: dict[tuple[int, int], tuple[float, float]] = {}
    tables: dict[tuple[int, int], pd.DataFrame] = {}
    for i, (formation_days, refit_days) in enumerate(keys):
        rows: list[dict[str, object]] = []
        prev_half_life = math.nan
        # first session each formation is in force; its window is [t - formation_days, t)
        for k, t in enumerate(range(formation_days, n, refit_days)):
            lo = t - formation_days
            if (lo, t) not in tests:
                tests[(lo, t)] = _coint(yv[lo:t], xv[lo:t])
            stat, pvalue = tests[(lo, t)]
            code = int(outs["ou_code"][t, i])
            status = OU_STATUS_BY_CODE[code]
            ok = status == OU_OK
            half_life = float(outs["half_life_days"][t, i])
            reason_status = (
                status if ok else f"{status} ({ou_status_message(code, outs['ar_slope'][t, i])})"
            )
            healthy, reason = _health_values(
                pvalue,
                ok,
                reason_status,
                half_life,
                prev_half_life,
                max_pvalue,
                max_half_life_days,
                max_half_life_drift,
            )
            rows.append(
                {
                    "session": y.index[t],
                    "formation_id": k,
                    "formation_start": y.index[lo],
                    "formation_end": y.index[t - 1],
                    "beta": float(outs["beta"][t, i]),
                    "intercept": float(outs["intercept"][t, i]),
                    "coint_pvalue": pvalue,
                    "coint_stat": stat,
                    "theta": float(outs["theta"][t, i]),
                    "mu": float(outs["mu"][t, i]),
                    "sigma": float(outs["sigma"][t, i]),
                    "half_life_days": half_life,
                    "ou_status": status,
                    "healthy": healthy,
                    "health_reason": reason,
                }
            )
            prev_half_life = half_life if ok else math.nan
        forms = pd.DataFrame(rows).set_index("session")
        table = forms.reindex(y.index).ffill()  # the formation in force until the next one
        before = table.index < y.index[formation_days]
        table.loc[before, "healthy"] = False
        table.loc[before, "health_reason"] = "no formation yet"
        table["healthy"] = table["healthy"].astype(bool)
        table["formation_id"] = table["formation_id"].fillna(-1).astype(int)
        table.insert(0, "y", yv)
        table.insert(1, "x", xv)
        table.insert(2, "spread", outs["spread"][:, i])
        tables[(formation_days, refit_days)] = table
    return tables


def apply_health(
    table: pd.DataFrame,
    *,
    max_pvalue: float,
    max_half_life_days: float,
    max_half_life_drift: float,
) -> pd.DataFrame:
    """Recompute ``healthy`` / ``health_reason`` of a :func:`formation_table` with other limits.

    The estimates (hedge ratio, p-value, OU fit) do not depend on the limits, so a search over
    the limits reuses one table. Rules as in :func:`formation_table`; the drift compares each
    formation with the previous one.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`formation_table`.
    max_pvalue, max_half_life_days, max_half_life_drift : float
        As in :func:`formation_table`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``healthy`` and ``health_reason`` replaced.

    Raises
    ------
    ValueError
        ``max_half_life_drift < 1``.
    """
    if not max_half_life_drift >= 1.0:
        raise ValueError(f"max_half_life_drift must be >= 1, got {max_half_life_drift}")
    out = table.copy()
    forms = out.loc[out["formation_id"] >= 0].drop_duplicates("formation_id")
    verdict: dict[int, tuple[bool, str]] = {}
    prev = math.nan
    for row in forms.itertuples():
        hedge = HedgeFit(row.beta, row.intercept, row.coint_pvalue, row.coint_stat, 0)
        ok = row.ou_status == "ok"
        verdict[int(row.formation_id)] = _health_values(
            hedge.coint_pvalue,
            ok,
            str(row.ou_status),
            row.half_life_days,
            prev,
            max_pvalue,
            max_half_life_days,
            max_half_life_drift,
        )
        prev = row.half_life_days if ok else math.nan
    ids = out["formation_id"].to_numpy()
    out["healthy"] = [verdict[i][0] if i >= 0 else False for i in ids]
    out["health_reason"] = [verdict[i][1] if i >= 0 else "no formation yet" for i in ids]
    return out


def _health_values(
    pvalue: float,
    ou_ok: bool,
    ou_status: str,
    half_life_days: float,
    prev_half_life: float,
    max_pvalue: float,
    max_half_life_days: float,
    max_drift: float,
) -> tuple[bool, str]:
    if not pvalue <= max_pvalue:
        return False, f"cointegration p-value {pvalue:.3f} > {max_pvalue:g}"
    if not ou_ok:
        return False, f"OU fit: {ou_status}"
    hl = half_life_days
    if not hl <= max_half_life_days:
        return False, f"half-life {hl:.1f} sessions > {max_half_life_days:g}"
    if math.isfinite(prev_half_life) and prev_half_life > 0:
        drift = max(hl / prev_half_life, prev_half_life / hl)
        if drift > max_drift:
            return False, (
                f"half-life drifted from {prev_half_life:.1f} to {hl:.1f} sessions "
                f"(x{drift:.2f} > {max_drift:g})"
            )
    return True, "ok"
