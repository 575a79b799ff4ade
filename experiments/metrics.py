"""The one metrics source: every number a run reports is computed here, once.

The optimizer's objectives, the fold tables, ``summary.json``, the console table, MLflow,
``volsuite summary`` and the tearsheet all show what :func:`run_metrics` returns for a run
(docs/metrics.md has the definitions).

* Return metrics take daily simple returns (decimal) of one continuous account and annualize
  with 252 sessions; ``rf = 0``; every session of the out-of-sample calendar counts, flat days
  (return 0) included; definitions follow quantstats (``quantstats.stats``), and tests check them
  against it.
* A **trade** is an opening order (:func:`opening_orders`): the fills of one order (same fold,
  time and tag) that open or add to a position; its closing order, settlements and window-end
  closes are not trades.
* Statistics of belief (Sharpe standard error and interval, deflated Sharpe ratio, minimum
  backtest length, PBO) come from :mod:`experiments.overfitting`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from data_feeds.errors import VolsuiteError
from experiments import overfitting
from experiments.overfitting import PERIODS

OPTION_MULTIPLIER = 100.0


class TradesLayoutError(VolsuiteError, ValueError):
    """A trades table (``trades.csv``) in neither known layout, or with an unknown event."""


def sharpe(returns: pd.Series) -> float:
    """Annualized Sharpe ratio ``mean / std(ddof=1) * sqrt(252)``; 0 when the std is 0 or n < 2."""
    r = returns.dropna().to_numpy()
    if len(r) < 2:
        return 0.0
    sd = r.std(ddof=1)
    return 0.0 if sd == 0 or not np.isfinite(sd) else float(r.mean() / sd * math.sqrt(PERIODS))


def sortino(returns: pd.Series) -> float:
    """Annualized Sortino ratio ``mean / sqrt(mean(min(r, 0)^2)) * sqrt(252)`` (quantstats form)."""
    r = returns.dropna().to_numpy()
    if len(r) < 2:
        return 0.0
    downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / len(r))
    return 0.0 if downside == 0 else float(r.mean() / downside * math.sqrt(PERIODS))


def total_return(returns: pd.Series) -> float:
    """Compounded return ``prod(1 + r) - 1``."""
    return float(np.prod(1.0 + returns.dropna().to_numpy()) - 1.0)


def cagr(returns: pd.Series) -> float:
    """Compound annual growth ``(1 + total)^(252 / n) - 1`` over ``n`` sessions (quantstats
    ``cagr``).

    Returns -1.0 when the account was wiped out (growth <= 0).
    """
    r = returns.dropna()
    if len(r) < 1:
        return 0.0
    growth = 1.0 + total_return(r)
    if growth <= 0:
        return -1.0
    return float(growth ** (PERIODS / len(r)) - 1.0)


def max_drawdown(returns: pd.Series) -> float:
    """Largest peak-to-trough loss of the compounded equity curve (negative decimal, 0 if none).

    The peak includes the starting value 1.0, as quantstats does.
    """
    equity = np.cumprod(1.0 + returns.dropna().to_numpy())
    if len(equity) == 0:
        return 0.0
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.min(equity / peak - 1.0))


def calmar(returns: pd.Series) -> float:
    """CAGR over the absolute max drawdown (0 when there is no drawdown)."""
    dd = max_drawdown(returns)
    return 0.0 if dd == 0 else cagr(returns) / abs(dd)


OBJECTIVES = {
    "sharpe": sharpe,
    "sortino": sortino,
    "cagr": cagr,
    "calmar": calmar,
    "total_return": total_return,
}


def volatility(returns: pd.Series) -> float:
    """Annualized volatility ``std(ddof=1) * sqrt(252)`` (decimal); 0 when n < 2."""
    r = returns.dropna().to_numpy()
    return float(r.std(ddof=1) * math.sqrt(PERIODS)) if len(r) > 1 else 0.0


def summary(returns: pd.Series, trades: pd.DataFrame | None = None) -> dict[str, float]:
    """Return metrics of one backtest window (a trial or a fold) and its trade count.

    Parameters
    ----------
    returns : pandas.Series
        Daily simple returns (decimal) of the window.
    trades : pandas.DataFrame, optional
        The window's fills (``fills_frame`` / share-fill layout); ``trades`` is the number of
        opening orders (:func:`opening_orders`).

    Returns
    -------
    dict
        ``sharpe, sortino, cagr, max_drawdown, total_return, days`` and, with ``trades``,
        ``trades``.
    """
    out = {
        "sharpe": sharpe(returns),
        "sortino": sortino(returns),
        "cagr": cagr(returns),
        "max_drawdown": max_drawdown(returns),
        "total_return": total_return(returns),
        "days": float(returns.notna().sum()),
    }
    if trades is not None:
        out["trades"] = trade_stats(trades)["trades"]
    return out


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def pbo_splits(rows: int, max_splits: int = 16) -> int:
    """The CSCV block count used for ``rows`` sessions: the largest even ``S <= max_splits``
    with at least 2 rows per block (0 when ``rows < 4``: no PBO)."""
    s = min(max_splits, rows // 2)
    s -= s % 2
    return s if s >= 2 else 0


def fold_pbo(trial_returns: pd.DataFrame) -> tuple[float | None, str]:
    """PBO of one fold's study by CSCV on its trials' in-sample daily returns.

    Parameters
    ----------
    trial_returns : pandas.DataFrame
        Sessions x completed trials (daily returns of each trial's in-sample backtest).

    Returns
    -------
    pbo : float or None
        :func:`experiments.overfitting.probability_of_backtest_overfitting` with
        :func:`pbo_splits` blocks; None when fewer than 2 trials or 4 sessions.
    note : str
        How it was computed, or why not.
    """
    m = trial_returns.dropna(how="any")
    n_rows, n_trials = m.shape
    splits = pbo_splits(n_rows)
    if n_trials < 2 or splits == 0:
        return None, f"no PBO: {n_trials} trials x {n_rows} sessions (need 2 x 4)"
    res = overfitting.probability_of_backtest_overfitting(m.to_numpy(), n_splits=splits)
    return float(res.pbo), (
        f"CSCV S={splits}, {res.n_combinations} combinations, {n_trials} trials x "
        f"{res.n_rows_used} sessions ({res.n_rows_dropped} leading dropped)"
    )


def run_metrics(
    returns: pd.Series,
    *,
    initial_cash: float,
    final_equity: float,
    trades: pd.DataFrame | None,
    trial_sharpes: Sequence[Sequence[float]],
    fold_pbos: Sequence[float | None],
    is_sharpes: Sequence[float],
    min_trades: int,
    min_days: int,
    costs: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Every metric of a walk-forward run, computed once (docs/metrics.md).

    Parameters
    ----------
    returns : pandas.Series
        Daily returns of the continuous out-of-sample account, every session of the calendar.
    initial_cash, final_equity : float
        Dollars at the start of fold 0 and at the end of the last fold.
    trades : pandas.DataFrame or None
        All out-of-sample fills with ``fold`` (:func:`trade_stats`).
    trial_sharpes : sequence of sequences of float
        Per fold (one Optuna study each), the annualized in-sample Sharpe ratio of every
        completed trial. The deflated Sharpe ratio uses the number of trials per study and the
        variance of their Sharpe ratios within a study, averaged over the folds: each fold's
        parameters are the best of its own study, so the selection bias is that of one study
        (pooling the folds would add the fold-to-fold spread of Sharpe ratios, which is regime,
        not selection). ``n_trials`` reports all completed trials of the run.
    fold_pbos : sequence of float or None
        PBO of each fold's study (:func:`fold_pbo`).
    is_sharpes : sequence of float
        Each fold's best in-sample Sharpe ratio (annualized).
    min_trades, min_days : int
        ``[report]`` thresholds of a sufficient sample.
    costs : mapping, optional
        Extra cost totals reported by the plugin (``oos_cost.*``, dollars).

    Returns
    -------
    dict
        ``sharpe, sharpe_se, sharpe_ci_low, sharpe_ci_high, sortino, cagr, volatility,
        max_drawdown, calmar, total_return, net_pnl, initial_cash, final_equity, days,
        positive_days, trades, notional, turnover, cost_*``, ``window_end_*``,
        ``deflated_sharpe, n_trials, dsr_trials_per_study, trial_sharpe_var, pbo, cscv_folds,
        min_backtest_years,
        oos_is_sharpe_ratio, is_sharpe_mean, sample`` (None or "insufficient sample (...)").
        Values that cannot be computed are None (never NaN).

    Raises
    ------
    ValueError
        ``total_return`` from the returns and from the equity disagree by more than 1e-9
        (the continuous-account identity is broken).
    """
    r = returns.astype(float).fillna(0.0)
    n = len(r)
    total = final_equity / initial_cash - 1.0
    compounded = total_return(r)
    if not math.isclose(compounded, total, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(
            f"continuous account broken: returns compound to {compounded:.12g}, equity says "
            f"{total:.12g}"
        )
    stats = trade_stats(trades)
    sr = sharpe(r)
    flat = n < 3 or float(r.std(ddof=1)) == 0.0
    if flat:
        se = lo = hi = None
    else:
        se = _finite(overfitting.sharpe_standard_error(r))
        lo_, hi_ = overfitting.sharpe_confidence_interval(r, 0.95)
        lo, hi = _finite(lo_), _finite(hi_)
    studies = [
        np.asarray([x for x in fold if math.isfinite(x)], dtype=float) for fold in trial_sharpes
    ]
    ts = np.concatenate(studies) if studies else np.empty(0)
    # each fold's study picks the best of its own trials: N and V per study, averaged
    sized = [s for s in studies if len(s) >= 2]
    n_study = round(float(np.mean([len(s) for s in sized]))) if sized else max(len(ts), 1)
    v_study = float(np.mean([s.var(ddof=1) for s in sized])) if sized else 0.0
    if flat:
        dsr = 0.0 if len(ts) else None  # no variance: no evidence of skill
    else:
        dsr = _finite(
            overfitting.deflated_sharpe_ratio(r, n_trials=n_study, var_trial_sharpe=v_study)
        )
    pbos = [p for p in fold_pbos if p is not None]
    min_btl = (
        _finite(overfitting.min_backtest_length(n_study, sr)) if n_study >= 2 and sr > 0 else None
    )
    is_mean = float(np.mean(is_sharpes)) if len(is_sharpes) else float("nan")
    dd = max_drawdown(r)
    equity_mean = initial_cash * float(np.mean(np.cumprod(1.0 + r.to_numpy()))) if n else 0.0
    years = n / PERIODS
    extra = {k: float(v) for k, v in (costs or {}).items()}
    hedge_spread = -extra.get("oos_cost.hedge_spread", 0.0)
    cost_total = (
        stats["cost_commission"] + stats["cost_slippage"] + stats["cost_shares"] + hedge_spread
    )
    net = final_equity - initial_cash
    out: dict[str, Any] = {
        "sharpe": sr,
        "sharpe_se": se,
        "sharpe_ci_low": lo,
        "sharpe_ci_high": hi,
        "sortino": sortino(r),
        "cagr": cagr(r),
        "volatility": volatility(r),
        "max_drawdown": dd,
        "calmar": calmar(r),
        "total_return": total,
        "net_pnl": net,
        "initial_cash": float(initial_cash),
        "final_equity": float(final_equity),
        "days": float(n),
        "positive_days": float((r > 0).sum()),
        "trades": stats["trades"],
        "notional": stats["notional"],
        "turnover": stats["notional"] / equity_mean / years if n and equity_mean > 0 else None,
        "cost_commission": stats["cost_commission"],
        "cost_slippage": stats["cost_slippage"],
        "cost_shares": stats["cost_shares"],
        "cost_hedge_spread": hedge_spread,
        "costs": cost_total,
        "gross_pnl": net + cost_total,
        "costs_share": costs_share(cost_total, net + cost_total),
        "window_end_legs": stats["window_end_legs"],
        "window_end_exit_cost": stats["window_end_exit_cost"],
        "deflated_sharpe": dsr,
        "n_trials": float(len(ts)),
        "dsr_trials_per_study": float(n_study),
        "trial_sharpe_var": _finite(v_study) if sized else None,
        "pbo": float(np.mean(pbos)) if pbos else None,
        "cscv_folds": float(len(pbos)),
        "min_backtest_years": min_btl,
        "is_sharpe_mean": _finite(is_mean),
        "oos_is_sharpe_ratio": _finite(sr / is_mean) if is_mean > 0 else None,
        "sample": overfitting.insufficient_sample(
            int(stats["trades"]), n, min_trades=min_trades, min_days=min_days
        ),
        **{k: v for k, v in extra.items() if k.startswith("oos_cost.")},
    }
    out["costs_share"] = _finite(out["costs_share"])
    return out


def costs_share(costs: float, gross: float) -> float:
    """``costs / |gross|``; 0 when ``costs`` is 0, NaN when ``gross`` is 0 and costs are not."""
    if costs == 0:
        return 0.0
    return float("nan") if gross == 0 else costs / abs(gross)


# -- trades: the one definition ----------------------------------------------------------------
def _fills(trades: pd.DataFrame) -> pd.DataFrame:
    """Normalize the two trades.csv layouts to one frame of fills and settlements.

    Options broker layout (``event`` column: fill / settlement / stock_fill) or share layout
    (``ou_pairs``: ``fold, date, leg, size, price, commission, status``). Columns of the result:
    ``fold, time, tag, key, kind`` (option / share / settlement), ``quantity, price, bid, ask,
    commission``; rows of not-completed share orders (size 0) are dropped.
    """
    if "event" in trades:
        t = trades
        kind = t["event"].map(
            {
                "fill": "option",
                "stock_fill": "share",
                "settlement": "settlement",
                "window_end": "window_end",
            }
        )
        unknown = kind.isna()
        if unknown.any():
            raise TradesLayoutError(
                f"trades.csv: unknown event {t.loc[unknown, 'event'].iloc[0]!r} "
                "(expected fill, stock_fill, settlement or window_end)"
            )
        key = (
            t["root"].astype(str)
            + "|"
            + t.get("expiration", pd.Series("", index=t.index)).astype(str)
            + "|"
            + t.get("strike", pd.Series("", index=t.index)).astype(str)
            + "|"
            + t.get("right", pd.Series("", index=t.index)).astype(str)
        )
        out = pd.DataFrame(
            {
                "fold": t.get("fold", pd.Series(0, index=t.index)),
                "time": t["time"].astype(str),
                "tag": t.get("tag", pd.Series("", index=t.index)).fillna("").astype(str),
                "key": key.where(
                    (kind != "share") & (t.get("right", "") != "stock"),
                    "shares|" + t["root"].astype(str),
                ),
                "kind": kind,
                "quantity": t["quantity"].astype(float),
                "price": t["price"].astype(float),
                "bid": t.get("bid", pd.Series(np.nan, index=t.index)).astype(float),
                "ask": t.get("ask", pd.Series(np.nan, index=t.index)).astype(float),
                "commission": t["commission"].fillna(0.0).astype(float),
            }
        )
        return out
    need = {"date", "leg", "size", "price", "commission"}
    if not need <= set(trades.columns):
        raise TradesLayoutError(
            f"trades.csv: expected an 'event' column (options broker) or columns {sorted(need)} "
            f"(share fills); got {list(trades.columns)}"
        )
    t = trades[trades["size"].astype(float) != 0.0]
    if "status" in t:
        t = t[t["status"].isin(["Completed", "window_end"])]
    status = t.get("status", pd.Series("Completed", index=t.index))
    return pd.DataFrame(
        {
            "fold": t.get("fold", pd.Series(0, index=t.index)),
            "time": t["date"].astype(str),
            "tag": "",
            "key": "shares|" + t["leg"].astype(str),
            "kind": np.where(status == "window_end", "window_end", "share"),
            "quantity": t["size"].astype(float),
            "price": t["price"].astype(float),
            "bid": np.nan,
            "ask": np.nan,
            "commission": t["commission"].fillna(0.0).astype(float),
        }
    ).reset_index(drop=True)


def opening_orders(fills: pd.DataFrame, kind: str) -> int:
    """Number of opening orders of one instrument kind (see the module docstring, ``trades``).

    Parameters
    ----------
    fills : pandas.DataFrame
        :func:`_fills` output in file (time) order.
    kind : {"option", "share"}
        The instrument counted; settlements always update the option positions.

    Returns
    -------
    int
    """
    opening: set[tuple[Any, str, str]] = set()
    for _, grp in fills.groupby("fold", sort=False):
        pos: dict[str, float] = {}
        for row in grp.itertuples():
            before = pos.get(row.key, 0.0)
            if row.kind == "settlement":  # the settled quantity leaves the book
                pos[row.key] = before - row.quantity
                continue
            if row.kind == "window_end":  # closed at its mark when the window ended
                pos[row.key] = before + row.quantity
                continue
            after = before + row.quantity
            pos[row.key] = after
            if row.kind == kind and (abs(after) > abs(before) + 1e-9 or before * after < 0):
                opening.add((row.fold, row.time, row.tag))
    return len(opening)


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    """Trades, notional and costs of one run's ``trades.csv`` (module docstring definitions).

    Parameters
    ----------
    trades : pandas.DataFrame
        ``trades.csv`` as read by :func:`pandas.read_csv` (either layout).

    Returns
    -------
    dict
        ``trades`` (opening orders), ``notional`` (dollars), ``cost_commission``,
        ``cost_slippage``, ``cost_shares`` (dollars, as charged), ``hedge_fills`` (share fills
        tagged ``delta hedge``), ``unquoted_fills`` (option fills without a bid/ask, whose
        slippage is unknown and counted as 0), ``window_end_legs`` (positions closed at their
        mark when a backtest window ended) and ``window_end_exit_cost`` (dollars: the half
        spreads those option legs would have paid at the last quote; not charged).

    Raises
    ------
    TradesLayoutError
        Unknown layout or event.
    """
    zero = ("trades", "notional", "cost_commission", "cost_slippage", "cost_shares")
    if trades is None or trades.empty:
        return {
            k: 0.0
            for k in (
                *zero,
                "hedge_fills",
                "unquoted_fills",
                "window_end_legs",
                "window_end_exit_cost",
            )
        }
    f = _fills(trades)
    ends = f[(f["kind"] == "window_end") & f["bid"].notna() & f["ask"].notna()]
    opt = f[f["kind"] == "option"]
    shares = f[f["kind"] == "share"]
    settle = f[f["kind"] == "settlement"]
    quoted = opt["bid"].notna() & opt["ask"].notna()
    mid = 0.5 * (opt["bid"] + opt["ask"])
    slippage = (opt["quantity"] * (opt["price"] - mid) * OPTION_MULTIPLIER)[quoted]
    notional = float((opt["price"].abs() * OPTION_MULTIPLIER * opt["quantity"].abs()).sum())
    notional += float((shares["price"] * shares["quantity"]).abs().sum())
    return {
        "trades": float(opening_orders(f, "option" if len(opt) else "share")),
        "notional": notional,
        "cost_commission": float(opt["commission"].sum() + settle["commission"].sum()),
        "cost_slippage": float(slippage.sum()),
        "cost_shares": float(shares["commission"].sum()),
        "hedge_fills": float((shares["tag"] == "delta hedge").sum()),
        "unquoted_fills": float((~quoted).sum()),
        "window_end_legs": float((f["kind"] == "window_end").sum()),
        "window_end_exit_cost": float(
            (ends["quantity"].abs() * (ends["ask"] - ends["bid"]) / 2 * OPTION_MULTIPLIER).sum()
        ),
    }
