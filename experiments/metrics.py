"""Performance metrics of daily return series (the optimizer's objectives and the run summary).

All take daily simple returns (decimal) and annualize with 252 sessions; definitions follow
quantstats (``quantstats.stats``) with ``rf = 0``, and tests check them against it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERIODS = 252


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


def summary(returns: pd.Series, daily_log: pd.DataFrame | None = None) -> dict[str, float]:
    """The run summary: Sharpe, Sortino, CAGR, max drawdown, total return, trades and hit rate.

    Parameters
    ----------
    returns : pandas.Series
        Daily returns.
    daily_log : pandas.DataFrame, optional
        Strategy log with ``status`` and ``net_pnl`` columns: ``trades`` counts rows with status
        ``traded`` and ``hit_rate`` is the share of those with ``net_pnl > 0``.

    Returns
    -------
    dict
        Metric name -> value.
    """
    out = {
        "sharpe": sharpe(returns),
        "sortino": sortino(returns),
        "cagr": cagr(returns),
        "max_drawdown": max_drawdown(returns),
        "total_return": total_return(returns),
        "days": float(returns.notna().sum()),
    }
    if daily_log is not None and "status" in daily_log:
        traded = daily_log[daily_log["status"] == "traded"]
        out["trades"] = float(len(traded))
        out["hit_rate"] = float((traded["net_pnl"] > 0).mean()) if len(traded) else 0.0
    return out
