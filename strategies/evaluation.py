"""Building blocks of the plugins' model-evaluation tables (``StrategyPlugin.model_evaluation``).

Every function reads columns of a stitched out-of-sample daily log (one row per session) and
returns a plain table with a default integer index (write it with ``to_csv(index=False)``):

* :func:`outcome_table`: per group of days (regime, quadrant, signal bucket), how many days,
  signals and trades, the trades' hit rate and their mean / total net P&L;
* :func:`transition_counts`: counts of label changes from one session to the next;
* :func:`error_stats`: MAE, RMSE and bias of a forecast against its realized value;
* :func:`bucket_labels`: left-closed buckets ``[a, b)`` of a signal value.

A trade is a log row with a finite net P&L (the strategies book each position's P&L on its entry
row); a trade wins when that P&L is > 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

ALL = "all"
"""Label of the total row of :func:`outcome_table`."""
NO_LABEL = "(none)"
"""Group of the days without a label (no signal that day)."""


def outcome_table(
    labels: pd.Series,
    pnl: pd.Series,
    *,
    name: str,
    order: Sequence[str] = (),
    signalled: pd.Series | None = None,
) -> pd.DataFrame:
    """Days, signals, trades, hit rate and net P&L per label, plus an ``all`` row.

    Parameters
    ----------
    labels : pandas.Series
        Group label of each log row (str); NaN/None rows form the group ``"(none)"``.
    pnl : pandas.Series
        Net P&L of the trade entered on that row (dollars), NaN when no trade was entered; same
        index as ``labels``.
    name : str
        Name of the label column (``regime``, ``quadrant``, ``bucket``).
    order : Sequence[str], optional
        Labels listed first, in this order, even when no row has them (zero counts); labels seen
        but not listed follow in sorted order, then ``"(none)"`` if any, then ``all``.
    signalled : pandas.Series of bool, optional
        Rows whose entry signal fired; adds ``n_signals`` and ``signal_win_share`` (winning
        trades / signals: signals that could not be traded count as not winning).

    Returns
    -------
    pandas.DataFrame
        Columns ``name, n_days, [n_signals,] n_trades, n_wins, hit_rate, [signal_win_share,]
        mean_net_pnl, total_net_pnl``: ``hit_rate = n_wins / n_trades`` (decimal, NaN without
        trades), ``mean_net_pnl`` per trade and ``total_net_pnl`` in dollars.

    Raises
    ------
    ValueError
        ``labels``, ``pnl`` (and ``signalled``) are not on the same index.
    """
    if not labels.index.equals(pnl.index) or (
        signalled is not None and not labels.index.equals(signalled.index)
    ):
        raise ValueError("outcome_table: labels, pnl and signalled must share one index")
    lab = labels.astype(object).where(labels.notna(), NO_LABEL).astype(str)
    values = pd.to_numeric(pnl, errors="raise").astype(float)
    seen = set(lab)
    groups = [*order, *sorted(seen - set(order) - {NO_LABEL})]
    if NO_LABEL in seen:
        groups.append(NO_LABEL)
    rows = [_outcome_row(name, g, lab == g, values, signalled) for g in groups]
    rows.append(_outcome_row(name, ALL, pd.Series(True, index=lab.index), values, signalled))
    return pd.DataFrame(rows)


def _outcome_row(
    name: str, label: str, mask: pd.Series, pnl: pd.Series, signalled: pd.Series | None
) -> dict[str, object]:
    trades = pnl[mask & np.isfinite(pnl)]
    wins = int((trades > 0).sum())
    row: dict[str, object] = {name: label, "n_days": int(mask.sum())}
    if signalled is not None:
        row["n_signals"] = int((mask & signalled.astype(bool)).sum())
    row.update(n_trades=len(trades), n_wins=wins)
    row["hit_rate"] = wins / len(trades) if len(trades) else np.nan
    if signalled is not None:
        row["signal_win_share"] = wins / row["n_signals"] if row["n_signals"] else np.nan
    row["mean_net_pnl"] = float(trades.mean()) if len(trades) else np.nan
    row["total_net_pnl"] = float(trades.sum())
    return row


def transition_counts(labels: pd.Series, order: Sequence[str] = ()) -> pd.DataFrame:
    """Counts of ``label on session t-1 -> label on session t`` over consecutive log rows.

    Parameters
    ----------
    labels : pandas.Series
        One label per session in date order; a pair with a missing (NaN/None) label on either
        side is not counted.
    order : Sequence[str], optional
        Labels shown first (rows and columns) even when never seen; others follow sorted.

    Returns
    -------
    pandas.DataFrame
        Column ``from`` (label on t-1), then one integer column per label on t, then ``total``
        (transitions out of that label).
    """
    lab = labels.astype(object).reset_index(drop=True)
    prev, cur = lab.shift(1), lab
    ok = prev.notna() & cur.notna()
    prev, cur = prev[ok].astype(str), cur[ok].astype(str)
    seen = set(prev) | set(cur) | set(lab.dropna().astype(str))
    states = [*order, *sorted(seen - set(order))]
    counts = pd.crosstab(prev, cur).reindex(index=states, columns=states, fill_value=0)
    out = counts.astype(int).reset_index(drop=True)
    out.insert(0, "from", states)
    out["total"] = out[states].sum(axis=1)
    out.columns.name = None
    return out


def error_stats(forecast: np.ndarray, realized: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and bias of ``forecast - realized`` over the pairs where both are finite.

    Parameters
    ----------
    forecast, realized : numpy.ndarray
        Same shape ``(n,)``, same unit (dollars, vol points).

    Returns
    -------
    dict
        ``n`` (pairs used), ``mae = mean|e|``, ``rmse = sqrt(mean e^2)``, ``bias = mean e``
        with ``e = forecast - realized`` (bias > 0: the forecast is too high); NaN when ``n = 0``.
    """
    f = np.asarray(forecast, dtype=float)
    r = np.asarray(realized, dtype=float)
    if f.shape != r.shape:
        raise ValueError(f"error_stats: forecast shape {f.shape} != realized shape {r.shape}")
    e = (f - r)[np.isfinite(f) & np.isfinite(r)]
    if len(e) == 0:
        return {"n": 0, "mae": np.nan, "rmse": np.nan, "bias": np.nan}
    return {
        "n": len(e),
        "mae": float(np.mean(np.abs(e))),
        "rmse": float(np.sqrt(np.mean(e**2))),
        "bias": float(np.mean(e)),
    }


def bucket_labels(values: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Left-closed buckets ``[a, b)`` of ``values`` over increasing ``edges`` (``-inf``/``inf``
    allowed); labels like ``"[1, 2)"``, NaN where the value is NaN or outside the edges."""
    cats = pd.cut(pd.to_numeric(values, errors="raise"), list(edges), right=False)
    return pd.Series(
        [f"[{c.left:g}, {c.right:g})" if isinstance(c, pd.Interval) else np.nan for c in cats],
        index=values.index,
        dtype=object,
    )


def bucket_order(edges: Sequence[float]) -> list[str]:
    """The labels of :func:`bucket_labels` for ``edges``, in increasing order."""
    return [f"[{a:g}, {b:g})" for a, b in pairwise(edges)]


def signal_evaluation(
    daily_log: pd.DataFrame,
    *,
    entry_statuses: frozenset[str],
    other_statuses: frozenset[str],
    signal_column: str,
    edges: Sequence[float],
) -> dict[str, pd.DataFrame]:
    """Entry-signal hit rates of a signal strategy, overall and by bucket of its signal value.

    Parameters
    ----------
    daily_log : pandas.DataFrame
        Stitched out-of-sample log with ``status`` and (when any trade) ``net_pnl`` (dollars,
        on the entry row); ``signal_column`` when the signal value was computed that day.
    entry_statuses : frozenset of str
        Statuses a row can only have once its entry signal fired (traded, or not traded for a
        reason after the signal: risk block, no quote, size zero, ...).
    other_statuses : frozenset of str
        Statuses of rows whose signal did not fire or was not evaluated (below threshold, no
        signal, holding a position, window end).
    signal_column : str
        Log column of the signal value bucketed in ``signal_buckets``.
    edges : Sequence[float]
        Increasing bucket edges of :func:`bucket_labels`.

    Returns
    -------
    dict[str, pandas.DataFrame]
        ``signal_hit_rates``: :func:`outcome_table` by ``signal`` (``"signal"``,
        ``"no signal"``, and ``"unknown status <s>"`` for a status in neither set, shown rather
        than guessed); ``signal_buckets``: :func:`outcome_table` by ``bucket`` of
        ``signal_column`` (``"(none)"`` where the value is missing), with ``n_signals``.
    """
    missing = pd.Series(np.nan, index=daily_log.index)
    status = daily_log.get("status", missing).astype(object).where(lambda s: s.notna(), "")
    status = status.astype(str)
    signalled = status.isin(entry_statuses)
    kind = pd.Series(
        np.where(
            signalled,
            "signal",
            np.where(status.isin(other_statuses), "no signal", "unknown status " + status),
        ),
        index=daily_log.index,
    )
    pnl = daily_log.get("net_pnl", missing)
    value = daily_log.get(signal_column, missing)
    return {
        "signal_hit_rates": outcome_table(
            kind, pnl, name="signal", order=["signal", "no signal"], signalled=signalled
        ),
        "signal_buckets": outcome_table(
            bucket_labels(value, edges),
            pnl,
            name="bucket",
            order=bucket_order(edges),
            signalled=signalled,
        ),
    }
