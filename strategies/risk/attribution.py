"""Per-strategy (per-sleeve) performance attribution: daily P&L by sleeve, and the table the
runner writes next to the tearsheet.

Sleeves
-------
A *sleeve* is what the attribution is by: a strategy of a multi-strategy run, a combo family of
an option strategy (``"bull_put"``, ``"iron_condor"``), a pair of a pairs strategy. The
:class:`SleevePnL` analyzer records, each bar, the P&L of every sleeve::

    pnl_{i,t} = (open value_{i,t} + cumulative cash_{i,t}) - (same at t-1)

from the option book per tag (the strategy's :class:`strategies.book.TradeBook`, ``strategy.book``,
when it has one, else a :class:`strategies.risk.ledger.TagLedger` with the same allocation rule:
fills, settlements, share trades, window-end closes) and from backtrader positions per data
(``size * close`` and the cash of executed orders, commissions included), mapped to sleeves by
``sleeve_of(tag or data name)``. Whatever the sleeves do not explain
(``value_t - value_{t-1} - sum_i pnl_{i,t}``: interest, untagged fills) is the column
``unattributed``; the columns add up to the account's daily P&L exactly.

Return contributions (Carino linking)
-------------------------------------
With ``R_t`` the account's daily return and ``V_{t-1} = V_t / (1 + R_t)`` the value it is measured
against, sleeve ``i`` contributes ``c_{i,t} = pnl_{i,t} / V_{t-1}`` on day ``t`` and
``sum_i c_{i,t} = R_t``. Arithmetic sums of ``c_{i,t}`` do not add up to the compounded total
return ``R = prod(1 + R_t) - 1``; the Carino (1999) linking coefficients do::

    k_t = ln(1 + R_t) / R_t  (1 when R_t = 0),   k = ln(1 + R) / R  (1 when R = 0)
    contribution_i = sum_t (k_t / k) c_{i,t}     and  sum_i contribution_i = R exactly

(Carino, D. 1999, "Combining attribution effects over time", *Journal of Performance
Measurement* 3(4), 5-14; also Bacon 2008, *Practical Portfolio Performance Measurement and
Attribution*, 2nd ed., the multi-period "smoothing" algorithms). Because
``V_{t-1}`` comes from each day's own return, stitched walk-forward folds (each restarting from
the initial cash) are handled day by day.

The design sketch (``002``, section 10.2) weights strategy returns by "capital allocated", which
a backtest of one account does not have; contributions here are P&L over the account value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from brokers.options_broker import OptionsBroker
from strategies.risk.ledger import TagLedger

UNATTRIBUTED = "unattributed"
"""Column / row name of the P&L no sleeve explains."""

TOTAL = "total"
"""Row name of the account total in :func:`attribution_table`."""


def _identity(name: str) -> str:
    return name


class SleevePnL(bt.Analyzer):
    """Daily P&L per sleeve (module docstring); add with ``cerebro.addanalyzer(SleevePnL,
    _name="sleeves", sleeve_of=...)``.

    Parameters (backtrader ``params``)
    ----------------------------------
    sleeve_of : callable str -> str, optional
        Maps an option tag (closing fills already mapped to their tag) or a data name to a sleeve
        name; default the tag / name itself. Tag ``""`` (untagged option fills) maps to
        ``sleeve_of("")``.
    include_datas : bool
        Attribute backtrader positions per data (default True; the chain feed of an option
        strategy never holds a position, so it contributes nothing).

    Notes
    -----
    :meth:`get_analysis` returns the frame (index: session dates; one column per sleeve plus
    ``unattributed``; dollars); :meth:`trades` the closed positions per sleeve with their P&L.
    Partial fills are accounted as they come (the order's executed value so far).
    """

    params = (("sleeve_of", None), ("include_datas", True))

    def start(self) -> None:
        self._map: Callable[[str], str] = self.p.sleeve_of or _identity
        book = getattr(self.strategy, "book", None)
        self.ledger: TagLedger = book if isinstance(book, TagLedger) else TagLedger()
        self._data_cash: dict[str, float] = {}
        self._order_seen: dict[int, tuple[float, float]] = {}
        self._level_prev: dict[str, float] = {}
        self._value_prev = float(self.strategy.broker.startingcash)
        self._rows: dict = {}
        self._values: dict = {}
        self._closed: list[dict] = []
        self._open_since: dict[str, object] = {}

    def notify_order(self, order: bt.Order) -> None:
        if order.status not in (order.Partial, order.Completed):
            return
        name = getattr(order.data, "_name", "") or "data"
        size, price, comm = order.executed.size, order.executed.price, order.executed.comm
        cash_now = -(size * price) - comm
        seen = self._order_seen.get(order.ref, (0.0, 0.0))[1]
        self._data_cash[name] = self._data_cash.get(name, 0.0) + cash_now - seen
        self._order_seen[order.ref] = (size, cash_now)

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            name = getattr(trade.data, "_name", "") or "data"
            self._closed.append(
                {
                    "sleeve": self._map(name),
                    "position": name,
                    "open_time": bt.num2date(trade.dtopen),
                    "close_time": bt.num2date(trade.dtclose),
                    "pnl": float(trade.pnlcomm),
                }
            )

    def _levels(self) -> dict[str, float]:
        levels: dict[str, float] = {}
        broker = self.strategy.broker
        if isinstance(broker, OptionsBroker):
            self.ledger.sync(broker)
            for tag in self.ledger.tags():
                sleeve = self._map(tag)
                levels[sleeve] = levels.get(sleeve, 0.0) + self.ledger.pnl(tag, broker)
                is_open = self.ledger.is_open(tag)
                now = self.data.datetime.datetime(0)
                if tag in self._open_since and not is_open:
                    self._closed.append(
                        {
                            "sleeve": sleeve,
                            "position": tag,
                            "open_time": self._open_since.pop(tag),
                            "close_time": now,
                            "pnl": self.ledger.pnl(tag, broker),
                        }
                    )
                elif is_open:
                    self._open_since.setdefault(tag, now)
        if self.p.include_datas:
            for data in self.strategy.datas:
                name = getattr(data, "_name", "") or "data"
                pos = broker.getposition(data)
                level = self._data_cash.get(name, 0.0) + pos.size * float(data.close[0])
                if level != 0.0 or name in self._data_cash:
                    sleeve = self._map(name)
                    levels[sleeve] = levels.get(sleeve, 0.0) + level
        return levels

    def next(self) -> None:
        levels = self._levels()
        value = float(self.strategy.broker.getvalue())
        row = {k: v - self._level_prev.get(k, 0.0) for k, v in levels.items()}
        for k in self._level_prev:
            row.setdefault(k, 0.0)
        residual = (value - self._value_prev) - sum(row.values())
        row[UNATTRIBUTED] = row.get(UNATTRIBUTED, 0.0) + residual
        day = self.data.datetime.date(0)
        if day in self._rows:  # intraday bars: the session's P&L is the sum over its bars
            for k, v in self._rows[day].items():
                row[k] = row.get(k, 0.0) + v
        self._rows[day] = row
        self._values[day] = value
        self._level_prev = levels
        self._value_prev = value

    def get_analysis(self) -> pd.DataFrame:
        """Daily P&L per sleeve in dollars (index: session dates, a ``DatetimeIndex``)."""
        frame = pd.DataFrame.from_dict(self._rows, orient="index").fillna(0.0)
        if frame.empty:
            return frame
        frame.index = pd.DatetimeIndex(pd.to_datetime(list(self._rows)), name="date")
        cols = [*sorted(c for c in frame.columns if c != UNATTRIBUTED), UNATTRIBUTED]
        return frame[cols]

    def values(self) -> pd.Series:
        """Account value per session (dollars), as seen by the analyzer."""
        return pd.Series(
            list(self._values.values()),
            index=pd.DatetimeIndex(pd.to_datetime(list(self._values)), name="date"),
            name="value",
        )

    def trades(self) -> pd.DataFrame:
        """Closed positions: ``sleeve, position, open_time, close_time, pnl`` (dollars, net of
        costs). Option tags close when their last leg is closed or settled."""
        return pd.DataFrame(
            self._closed, columns=["sleeve", "position", "open_time", "close_time", "pnl"]
        )


def _carino(r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(np.abs(r) < 1e-15, 1.0, np.log1p(r) / r)
    return k


def attribution_table(
    pnl: pd.DataFrame,
    value: pd.Series,
    returns: pd.Series | None = None,
    *,
    trades: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-sleeve P&L and return contribution (module docstring) as a table.

    Parameters
    ----------
    pnl : pandas.DataFrame, shape (T, n_sleeves)
        Daily P&L per sleeve in dollars (:class:`SleevePnL`), index = session dates, may include
        an ``unattributed`` column. Several walk-forward folds may be concatenated.
    value : pandas.Series, shape (T,)
        Account value at each session's end (dollars), same index.
    returns : pandas.Series, shape (T,), optional
        Account daily returns (decimal), same index (the stitched out-of-sample returns); default
        ``value / value.shift(1) - 1`` with the first day measured against
        ``value_0 - sum_i pnl_{i,0}``.
    trades : pandas.DataFrame, optional
        Closed positions with columns ``sleeve`` and ``pnl`` (dollars), for ``n_trades`` and
        ``win_rate``.

    Returns
    -------
    pandas.DataFrame
        Index: sleeves, then ``unattributed``, then ``total``. Columns:

        ==================== =============================================================
        pnl                  dollars over the period
        pnl_share            ``pnl / total pnl`` (NaN when the total is 0)
        contribution         Carino-linked return contribution (decimal); the sleeves and
                             ``unattributed`` add up to ``total`` = compounded return
        arithmetic_contrib   ``sum_t c_{i,t}`` (unlinked)
        active_days          days with non-zero P&L
        hit_rate             share of active days with P&L > 0
        best_day, worst_day  dollars
        max_drawdown         largest fall of the sleeve's cumulative P&L, dollars (>= 0)
        n_trades, win_rate   closed positions and share with P&L > 0 (NaN without trades)
        ==================== =============================================================

    Raises
    ------
    ValueError
        Misaligned indexes, non-finite inputs, or a day whose return is <= -100%.
    """
    if not pnl.index.equals(value.index):
        raise ValueError("attribution_table: pnl and value must share the same index (dates)")
    if returns is not None and not returns.index.equals(value.index):
        raise ValueError("attribution_table: returns and value must share the same index")
    p = pnl.astype(float)
    if not np.isfinite(p.to_numpy()).all() or not np.isfinite(value.to_numpy(float)).all():
        raise ValueError("attribution_table: pnl and value must be finite")
    v = value.to_numpy(float)
    if returns is None:
        first_prev = v[0] - float(p.iloc[0].sum())
        prev = np.concatenate([[first_prev], v[:-1]])
        r = v / prev - 1.0
    else:
        r = returns.to_numpy(float)
        if not np.isfinite(r).all():
            raise ValueError("attribution_table: returns must be finite")
    if (r <= -1.0).any():
        raise ValueError("attribution_table: a daily return <= -100%; nothing to link")
    base = v / (1.0 + r)
    contrib = p.to_numpy() / base[:, None]
    names = [c for c in p.columns if c != UNATTRIBUTED]
    cols = {c: i for i, c in enumerate(p.columns)}
    residual = r - contrib.sum(axis=1)
    un = contrib[:, cols[UNATTRIBUTED]] + residual if UNATTRIBUTED in cols else residual
    un_pnl = p[UNATTRIBUTED].to_numpy() if UNATTRIBUTED in cols else np.zeros(len(p))
    un_pnl = un_pnl + residual * base

    total_r = float(np.prod(1.0 + r) - 1.0)
    k_t = _carino(r)
    k = float(_carino(np.array([total_r]))[0])
    weights = k_t / k

    def row(name: str, daily: np.ndarray, c: np.ndarray) -> dict:
        active = daily[np.abs(daily) > 1e-9]
        cum = np.cumsum(daily)
        dd = float(np.max(np.maximum.accumulate(np.concatenate([[0.0], cum]))[1:] - cum))
        out = {
            "pnl": float(daily.sum()),
            "contribution": float((weights * c).sum()),
            "arithmetic_contrib": float(c.sum()),
            "active_days": int(active.size),
            "hit_rate": float((active > 0).mean()) if active.size else math.nan,
            "best_day": float(daily.max()) if daily.size else math.nan,
            "worst_day": float(daily.min()) if daily.size else math.nan,
            "max_drawdown": max(dd, 0.0),
            "n_trades": math.nan,
            "win_rate": math.nan,
        }
        if trades is not None and name not in (UNATTRIBUTED, TOTAL):
            t = trades[trades["sleeve"] == name]
            out["n_trades"] = len(t)
            out["win_rate"] = float((t["pnl"] > 0).mean()) if len(t) else math.nan
        return out

    rows = {n: row(n, p[n].to_numpy(), contrib[:, cols[n]]) for n in names}
    rows[UNATTRIBUTED] = row(UNATTRIBUTED, un_pnl, un)
    total_daily = v - base
    rows[TOTAL] = row(TOTAL, total_daily, r)
    rows[TOTAL]["contribution"] = total_r
    if trades is not None:
        rows[TOTAL]["n_trades"] = len(trades)
        rows[TOTAL]["win_rate"] = float((trades["pnl"] > 0).mean()) if len(trades) else math.nan
    table = pd.DataFrame.from_dict(rows, orient="index")
    total_pnl = rows[TOTAL]["pnl"]
    table.insert(1, "pnl_share", table["pnl"] / total_pnl if total_pnl != 0 else math.nan)
    table.index.name = "sleeve"
    return table


def attribution_from_results(
    results: list[tuple[pd.DataFrame, pd.Series, pd.Series]],
    *,
    trades: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`attribution_table` over stitched walk-forward folds.

    Parameters
    ----------
    results : list of (pnl frame, value series, returns series)
        Per out-of-sample fold, in time order (e.g. ``BacktestResult.info["sleeve_pnl"]``,
        ``BacktestResult.value``, ``BacktestResult.returns``); indexes are normalised to dates.
    trades : pandas.DataFrame, optional
        Closed positions (``sleeve``, ``pnl``) of all folds.

    Returns
    -------
    pandas.DataFrame
        As :func:`attribution_table`.
    """

    def dates(x):
        idx = pd.DatetimeIndex(x.index)
        if idx.tz is not None:
            idx = idx.tz_localize(None)
        return x.set_axis(idx.normalize())

    pnl = pd.concat([dates(p) for p, _, _ in results]).fillna(0.0)
    value = pd.concat([dates(v) for _, v, _ in results])
    returns = pd.concat([dates(r) for _, _, r in results])
    return attribution_table(pnl, value, returns, trades=trades)


def write_attribution(
    table: pd.DataFrame, folder: str | Path, name: str = "attribution.csv"
) -> dict[str, float]:
    """Write the table to ``folder/name`` (CSV) and return run metrics.

    Writes to a temporary file first and renames it, so no half-written file is left.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`attribution_table`.
    folder : str or pathlib.Path
        Run folder (next to ``tearsheet.html``); must exist.
    name : str
        File name.

    Returns
    -------
    dict
        ``{"contribution.<sleeve>": value}`` for every sleeve (names without spaces, for MLflow).

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"write_attribution: no folder {folder}")
    path = folder / name
    tmp = folder / f".{name}.tmp"
    table.to_csv(tmp, index_label="sleeve")
    tmp.replace(path)
    return {
        f"contribution.{str(k).replace(' ', '_')}": float(v)
        for k, v in table["contribution"].items()
        if k != TOTAL
    }


SLEEVE_ANALYZER = "sleeves"
"""Name of the :class:`SleevePnL` analyzer added by :func:`track_sleeves`."""


def track_sleeves(strategy: bt.Strategy, sleeve_of: Callable[[str], str] | None = None) -> None:
    """Add a :class:`SleevePnL` analyzer (named :data:`SLEEVE_ANALYZER`) from inside a
    strategy's ``__init__`` (plugins that build their Cerebro with ``run_cerebro`` cannot add
    analyzers themselves).

    Parameters
    ----------
    strategy : backtrader.Strategy
        ``self`` in ``__init__``.
    sleeve_of : callable, optional
        Tag / data name -> sleeve (:class:`SleevePnL`).
    """
    strategy._addanalyzer(SleevePnL, _name=SLEEVE_ANALYZER, sleeve_of=sleeve_of)


def sleeve_info(strategy: bt.Strategy) -> dict[str, pd.DataFrame]:
    """After the run: ``{"sleeve_pnl": daily P&L frame, "sleeve_trades": closed positions}`` to
    put into ``BacktestResult.info`` (read back by :func:`write_run_attribution`).

    Raises
    ------
    KeyError
        The strategy did not call :func:`track_sleeves`.
    """
    try:
        an = strategy.analyzers.getbyname(SLEEVE_ANALYZER)
    except (KeyError, AttributeError) as exc:
        raise KeyError(
            f"{type(strategy).__name__} has no {SLEEVE_ANALYZER!r} analyzer: call "
            "track_sleeves(self, ...) in __init__"
        ) from exc
    return {"sleeve_pnl": an.get_analysis(), "sleeve_trades": an.trades()}


def write_run_attribution(results: Sequence, folder: str | Path) -> dict[str, float]:
    """The runner's hook: attribution of the out-of-sample folds, written next to the tearsheet.

    Parameters
    ----------
    results : sequence of strategies.base.BacktestResult
        The out-of-sample backtests in time order (``[fr.out_of_sample for fr in wf.folds]``).
        Each must carry ``info["sleeve_pnl"]`` (and optionally ``info["sleeve_trades"]``), see
        :func:`sleeve_info`.
    folder : str or pathlib.Path
        Run folder.

    Returns
    -------
    dict
        Metrics from :func:`write_attribution`; ``{}`` (and nothing written) when no result
        carries sleeve P&L (a plugin without sleeve tracking).

    Raises
    ------
    ValueError
        Some folds carry sleeve P&L and others do not (an incomplete table would mislead).
    """
    has = [("sleeve_pnl" in r.info) for r in results]
    if not any(has):
        return {}
    if not all(has):
        missing = [i for i, h in enumerate(has) if not h]
        raise ValueError(f"write_run_attribution: folds {missing} carry no info['sleeve_pnl']")
    trades = [r.info["sleeve_trades"] for r in results if "sleeve_trades" in r.info]
    table = attribution_from_results(
        [(r.info["sleeve_pnl"], r.value, r.returns) for r in results],
        trades=pd.concat(trades, ignore_index=True) if trades else None,
    )
    return write_attribution(table, folder)


def sleeve_by_prefix(prefixes: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """A ``sleeve_of`` mapping tags to sleeves by their first word (``"bull_put 2017-03-01"`` ->
    ``"bull_put"``), or by the longest matching prefix in ``prefixes`` (prefix -> sleeve)."""

    def sleeve_of(tag: str) -> str:
        if prefixes:
            hits = [p for p in prefixes if tag.startswith(p)]
            if hits:
                return prefixes[max(hits, key=len)]
        return tag.split(" ", 1)[0] if tag else UNATTRIBUTED

    return sleeve_of


__all__ = [
    "SLEEVE_ANALYZER",
    "TOTAL",
    "UNATTRIBUTED",
    "SleevePnL",
    "attribution_from_results",
    "attribution_table",
    "sleeve_by_prefix",
    "sleeve_info",
    "track_sleeves",
    "write_attribution",
    "write_run_attribution",
]
