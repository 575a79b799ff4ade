"""``TradeBook``: one trade book per backtest, allocating every cash flow of an
:class:`brokers.OptionsBroker` to trades by one rule.

The broker nets legs per contract and records what happened (``option_fills``,
``option_settlements``, ``stock_fills``, ``window_end_fills``); strategies label each order with a
*tag* (``OptionStrategy.open_combo(..., tag=...)``; closes are tagged ``"close <tag>"``). The book
reads those records incrementally (:meth:`TradeBook.sync`, in time order; at equal times
settlements, then option fills, then share trades, then window-end closes) and keeps *trades*: a
trade opens with the first fill of a tag that has no open trade, and closes when it holds neither
legs nor shares.

Allocation rule (the only one)
------------------------------
1. An option fill goes to the open trade of its tag (``"close X"`` -> ``X``); a tag without an open
   trade opens a new one. Commissions ride with their fill.
2. A settlement (cash, exercise, assignment, expiry) of contract ``c`` and a window-end close of
   ``c`` are split over the open trades holding ``c`` pro rata to the *signed* quantity each holds
   at that moment: trade ``i`` holding ``q_i`` of the broker's ``Q`` gets ``q_i / Q`` of the cash
   and of the shares delivered. Shares from an exercise or assignment therefore follow the trade
   whose legs were exercised or assigned.
3. A share trade goes to the open trade its tag names (a hedge tagged with its trade's tag); a
   share trade with a tag that names no open trade (e.g. ``"assigned"``, a window-end close) is
   split over the trades holding that symbol's shares pro rata to their signed shares.
4. Whatever rules 1-3 cannot place goes to the explicit *unallocated* trade (id 0, tag ``""``),
   which is reported like any other and never dropped: untagged (``tag=""``) option fills and
   share trades, a share trade nobody holds shares for, the part of a settlement no trade holds.

Because every broker cash flow lands in exactly one trade (or is split with weights summing to
one), at every moment::

    sum over trades (cash_i + open value_i) = sum of fills_frame cash_flow + positions value

(the account's change of value since the start), which ``tests/strategies/test_book.py`` checks to
the cent on constructed and real books. A trade's net P&L is ``cash + open value at the broker's
marks``; for a closed trade it is its cash.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from brokers.margin import max_loss, underlying_of
from brokers.options_broker import OptionFill, OptionsBroker, OptionSettlement, StockFill
from data_feeds.contracts import OptionContract

CLOSE_PREFIX = "close "
"""Prefix :meth:`OptionStrategy.close_combo` puts before the tag of closing fills."""

UNALLOCATED = ""
"""Tag of the unallocated trade (trade id 0)."""

_EPS = 1e-9


CLOSED_TRADE_COLUMNS = (
    "fold",
    "trade_id",
    "tag",
    "entry_time",
    "exit_time",
    "reason",
    "legs",
    "opening_cash",
    "closing_cash",
    "share_cash",
    "settlement",
    "window_end",
    "commission",
    "net_pnl",
    "fields",
)
"""Columns of ``closed_trades.csv`` (:meth:`TradeBook.closed_trades`, :func:`closed_trades_csv`)."""


def _legs_text(trade: Trade) -> str:
    """Opening fills as text: ``"+1 SPXW 2021-01-15 3700C @ 12.3; -1 ..."``."""
    return "; ".join(f"{q:+d} {c} @ {p:g}" for c, q, p in trade.opened_legs)


def _json_value(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars as Python values, NaN/inf as ``null``, dates and
    timestamps in ISO form, mappings and sequences recursively, anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def closed_trades_csv(results: Sequence[Any], folds: Sequence[int]) -> pd.DataFrame | None:
    """The run folder's ``closed_trades.csv``: the closed-trade records of the out-of-sample
    backtests with their fold.

    Parameters
    ----------
    results : sequence of strategies.base.BacktestResult
        Out-of-sample backtests in fold order; each carries its book's records as
        ``info["closed_trades"]`` (:meth:`TradeBook.closed_trades`).
    folds : sequence of int
        Fold index of each result.

    Returns
    -------
    pandas.DataFrame or None
        Columns :data:`CLOSED_TRADE_COLUMNS`; ``None`` when no result carries records (a
        strategy without a :class:`TradeBook`, e.g. ``ou_pairs``).

    Raises
    ------
    ValueError
        ``results`` and ``folds`` differ in length, or some results carry records and others
        do not (the file would miss folds).
    """
    if len(results) != len(folds):
        raise ValueError(f"{len(results)} results for {len(folds)} folds")
    have = [r.info.get("closed_trades") for r in results]
    if all(h is None for h in have):
        return None
    missing = [k for k, h in zip(folds, have, strict=True) if h is None]
    if missing:
        raise ValueError(f"folds {missing} carry no info['closed_trades'] (others do)")
    frames = [h.assign(fold=k) for k, h in zip(folds, have, strict=True) if len(h)]
    if not frames:
        return pd.DataFrame(columns=list(CLOSED_TRADE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CLOSED_TRADE_COLUMNS)]


def base_tag(fill_tag: str) -> str:
    """The position tag of a fill tag (``"close ic 1"`` -> ``"ic 1"``)."""
    return fill_tag[len(CLOSE_PREFIX) :] if fill_tag.startswith(CLOSE_PREFIX) else fill_tag


@dataclass
class _Entry:
    qty: int = 0
    cost: float = 0.0  # sum qty * price (per unit)
    commission: float = 0.0


@dataclass
class Trade:
    """One trade of a :class:`TradeBook` (dollars; quantities signed).

    Attributes
    ----------
    trade_id : int
        0 for the unallocated trade, then 1, 2, ... in order of opening.
    tag : str
        The strategy's tag of the opening fill.
    entry_time, exit_time : datetime.datetime or None
        First event and the event that left it flat (naive ET); ``exit_time`` is ``None`` while
        open.
    reason : str
        Why it closed: set by the strategy (:meth:`TradeBook.note`), else ``"closed"`` (a fill),
        the settlement kind (``cash``, ``exercise``, ``assignment``, ``expired``), ``"shares"``
        (its last shares sold) or ``"window_end"``.
    legs : dict of OptionContract to int
        Open signed contracts.
    shares : dict of str to float
        Open shares per symbol (from exercise / assignment / hedges).
    option_cash : float
        Cash of its option fills, commissions included (dollars, > 0 received):
        ``opening_cash + closing_cash``.
    opening_cash, closing_cash : float
        The part of ``option_cash`` from fills that opened or added to a leg / that reduced or
        closed one (dollars, commissions included).
    commission : float
        Dollars of option and share commissions and settlement fees paid (>= 0).
    settlement : float
        Settlement cash allocated, fees included (strike cash for an exercise/assignment).
    share_cash : float
        Cash of share trades allocated (commissions included).
    window_end : float
        Cash of window-end closes allocated.
    settled_legs : int
        Settlements (cash, exercise, assignment, expiry) it took part in.
    settled_at : datetime.datetime or None
        Time of the last of them (naive ET).
    opened_legs : list of (OptionContract, int, float)
        Opening fills: contract, signed quantity, price per unit.
    fields : dict
        Strategy-specific values (:meth:`TradeBook.note`), reported with the trade.
    """

    trade_id: int
    tag: str
    entry_time: dt.datetime | None = None
    exit_time: dt.datetime | None = None
    reason: str = ""
    legs: dict[OptionContract, int] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    option_cash: float = 0.0
    opening_cash: float = 0.0
    closing_cash: float = 0.0
    commission: float = 0.0
    settlement: float = 0.0
    share_cash: float = 0.0
    window_end: float = 0.0
    settled_legs: int = 0
    settled_at: dt.datetime | None = None
    opened_legs: list[tuple[OptionContract, int, float]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    _entries: dict[OptionContract, _Entry] = field(default_factory=dict)
    _last_event: str = ""

    @property
    def cash(self) -> float:
        """Dollars: every cash flow allocated to the trade (option fills net of commissions,
        settlements, share trades, window-end closes)."""
        return self.option_cash + self.settlement + self.share_cash + self.window_end

    @property
    def is_open(self) -> bool:
        """Holds legs or shares."""
        return bool(self.legs) or any(abs(n) > _EPS for n in self.shares.values())

    def open_value(self, broker: OptionsBroker) -> float:
        """Dollars: open legs at the broker's marks plus shares at the underlying's mark (the
        broker's last price when it no longer holds the position)."""
        value = 0.0
        for c, q in self.legs.items():
            pos = broker.option_positions.get(c)
            value += q * (pos.mark if pos is not None else 0.0) * c.multiplier
        for symbol, n in self.shares.items():
            pos = broker.underlying_positions.get(symbol)
            price = pos.mark if pos is not None else broker.underlying_prices.get(symbol, 0.0)
            value += n * price
        return value

    def option_pnl(self, broker: OptionsBroker) -> float:
        """Dollars: the option side of the trade, its option fills (net of commissions) and
        settlements plus its open legs at the broker's marks (0 for a leg the broker no longer
        holds); share trades are left out."""
        value = self.option_cash + self.settlement
        for c, q in self.legs.items():
            pos = broker.option_positions.get(c)
            value += q * (pos.mark if pos is not None else 0.0) * c.multiplier
        return value

    def net_pnl(self, broker: OptionsBroker) -> float:
        """Dollars: cash + open value (the cash alone once closed)."""
        return self.cash + (self.open_value(broker) if self.is_open else 0.0)


class TradeBook:
    """Trades of one backtest, allocated by the module's rule.

    Call :meth:`sync` with the broker whenever its records may have grown (``OptionStrategy``
    does it after settlements, after each helper order, after the strategy's hook and after the
    window-end close); then read trades with :meth:`trade`, :meth:`current`, :meth:`net_pnl`,
    :meth:`closed_frame` and :meth:`open_frame`.

    The tag-level queries :meth:`tags`, :meth:`is_open`, :meth:`pnl`, :meth:`open_value` and
    :meth:`basis` (cumulative over every trade of a tag) serve the risk layer and the sleeve
    attribution (:mod:`strategies.risk.ledger`, :mod:`strategies.risk.attribution`).
    """

    def __init__(self) -> None:
        self.trades: dict[int, Trade] = {0: Trade(0, UNALLOCATED, reason="unallocated")}
        self._open_by_tag: dict[str, int] = {}
        self._by_tag: dict[str, list[int]] = {UNALLOCATED: [0]}
        self._next_id = 1
        self._seen = [0, 0, 0, 0]  # option fills, settlements, stock fills, window-end fills

    # -- reading the broker -----------------------------------------------------------------------
    def sync(self, broker: OptionsBroker) -> None:
        """Allocate the broker records added since the last call (module docstring)."""
        events: list[tuple[dt.datetime, int, int, Any]] = []
        lists = (
            broker.option_fills,
            broker.option_settlements,
            broker.stock_fills,
            broker.window_end_fills,
        )
        order = (1, 0, 2, 3)  # at equal times: settlements, fills, share trades, window end
        seq = 0
        for k, records in enumerate(lists):
            for rec in records[self._seen[k] :]:
                events.append((rec.time, order[k], seq, rec))
                seq += 1
            self._seen[k] = len(records)
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        for _, kind, _, rec in events:
            if kind == 3:
                self._window_end(rec)
            elif kind == 0:
                self._settlement(rec)
            elif kind == 1:
                self._option_fill(rec)
            else:
                self._stock_fill(rec, base_tag(rec.tag))

    def _new_trade(self, tag: str, time: dt.datetime) -> Trade:
        trade = Trade(self._next_id, tag, entry_time=time)
        self.trades[trade.trade_id] = trade
        self._open_by_tag[tag] = trade.trade_id
        self._by_tag.setdefault(tag, []).append(trade.trade_id)
        self._next_id += 1
        return trade

    def _trade_for_tag(self, tag: str, time: dt.datetime) -> Trade:
        if tag == UNALLOCATED:
            return self.trades[0]
        tid = self._open_by_tag.get(tag)
        return self.trades[tid] if tid is not None else self._new_trade(tag, time)

    def _option_fill(self, f: OptionFill) -> None:
        trade = self._trade_for_tag(base_tag(f.tag), f.time)
        held = trade.legs.get(f.contract, 0)
        if held == 0 or (held > 0) == (f.quantity > 0):
            trade.opened_legs.append((f.contract, f.quantity, f.price))
            e = trade._entries.setdefault(f.contract, _Entry())
            e.qty += f.quantity
            e.cost += f.quantity * f.price
            e.commission += f.commission
            trade.opening_cash += f.cash_flow
        else:
            trade.closing_cash += f.cash_flow
        self._move_legs(trade, f.contract, f.quantity)
        trade.option_cash += f.cash_flow
        trade.commission += f.commission
        self._touch(trade, f.time, "closed")

    def _holders(self, contract: OptionContract) -> list[Trade]:
        return [
            self.trades[tid]
            for tid in self._open_ids()
            if self.trades[tid].legs.get(contract, 0) != 0
        ]

    def _open_ids(self) -> Iterator[int]:
        yield from sorted({*self._open_by_tag.values(), 0})

    def _split(self, held: list[tuple[Trade, float]], total: float) -> list[tuple[Trade, float]]:
        """Weights ``q_i / total`` and the remainder to the unallocated trade."""
        if total == 0:
            return [(self.trades[0], 1.0)]
        out = [(t, q / total) for t, q in held]
        rest = 1.0 - sum(w for _, w in out)
        if abs(rest) > _EPS:
            out.append((self.trades[0], rest))
        return out

    def _settlement(self, s: OptionSettlement) -> None:
        holders = [(t, float(t.legs[s.contract])) for t in self._holders(s.contract)]
        symbol = underlying_of(s.contract.root)
        for trade, w in self._split(holders, float(s.quantity)):
            trade.settlement += s.cash_flow * w
            trade.commission += s.fee * w
            trade.legs.pop(s.contract, None)
            trade.settled_legs += 1
            trade.settled_at = s.time
            if s.shares:
                trade.shares[symbol] = trade.shares.get(symbol, 0.0) + s.shares * w
            self._touch(trade, s.time, s.kind)

    def _stock_fill(self, t: StockFill, tag: str, window_end: bool = False) -> None:
        named = self._open_by_tag.get(tag) if tag != UNALLOCATED else None
        if tag == UNALLOCATED and not window_end:
            split = [(self.trades[0], 1.0)]
        elif named is not None and not window_end:
            split = [(self.trades[named], 1.0)]
        else:
            holders = [
                (self.trades[tid], self.trades[tid].shares.get(t.symbol, 0.0))
                for tid in self._open_ids()
                if abs(self.trades[tid].shares.get(t.symbol, 0.0)) > _EPS
            ]
            total = sum(q for _, q in holders)
            split = self._split(holders, total) if holders else [(self.trades[0], 1.0)]
        for trade, w in split:
            if window_end:
                trade.window_end += t.cash_flow * w
            else:
                trade.share_cash += t.cash_flow * w
                trade.commission += t.commission * w
            n = trade.shares.get(t.symbol, 0.0) + t.quantity * w
            if abs(n) > _EPS:
                trade.shares[t.symbol] = n
            else:
                trade.shares.pop(t.symbol, None)
            self._touch(trade, t.time, "window_end" if window_end else "shares")

    def _window_end(self, w: OptionFill | StockFill) -> None:
        if isinstance(w, StockFill):
            self._stock_fill(w, UNALLOCATED, window_end=True)
            return
        holders = [(t, float(t.legs[w.contract])) for t in self._holders(w.contract)]
        for trade, share in self._split(holders, float(-w.quantity)):
            trade.window_end += w.cash_flow * share
            self._move_legs(trade, w.contract, round(w.quantity * share))
            self._touch(trade, w.time, "window_end")

    def _move_legs(self, trade: Trade, contract: OptionContract, qty: int) -> None:
        n = trade.legs.get(contract, 0) + qty
        if n == 0:
            trade.legs.pop(contract, None)
        else:
            trade.legs[contract] = n

    def _touch(self, trade: Trade, time: dt.datetime, event: str) -> None:
        trade._last_event = event
        if trade.entry_time is None:
            trade.entry_time = time
        if trade.trade_id == 0:
            return
        if trade.is_open:
            trade.exit_time = None
            self._open_by_tag[trade.tag] = trade.trade_id
        elif self._open_by_tag.get(trade.tag) == trade.trade_id:
            del self._open_by_tag[trade.tag]
            trade.exit_time = time
            trade.reason = trade.reason or ("window_end" if event == "window_end" else event)

    # -- trades -----------------------------------------------------------------------------------
    def trade(self, trade_id: int) -> Trade:
        """The trade ``trade_id``.

        Raises
        ------
        KeyError
            No such trade.
        """
        try:
            return self.trades[trade_id]
        except KeyError:
            raise KeyError(f"TradeBook: no trade {trade_id}") from None

    def current(self, tag: str) -> Trade | None:
        """The open trade of ``tag``, else the last trade of ``tag``, else ``None``."""
        tid = self._open_by_tag.get(tag)
        if tid is not None:
            return self.trades[tid]
        ids = self._by_tag.get(tag)
        return self.trades[ids[-1]] if ids else None

    def trade_id(self, tag: str) -> int | None:
        """Id of :meth:`current` of ``tag`` (``None`` when the tag never traded)."""
        trade = self.current(tag)
        return None if trade is None else trade.trade_id

    def note(self, trade_id: int, reason: str | None = None, **fields: Any) -> None:
        """Record the strategy's exit reason (kept if already set, unless the trade is still
        open) and strategy-specific fields of a trade.

        Raises
        ------
        KeyError
            No such trade.
        """
        trade = self.trade(trade_id)
        if reason is not None and (trade.is_open or not trade.reason):
            trade.reason = reason
        trade.fields.update(fields)

    def net_pnl(self, trade_id: int, broker: OptionsBroker) -> float:
        """Dollars: the trade's cash plus its open value at the broker's marks."""
        return self.trade(trade_id).net_pnl(broker)

    def total_pnl(self, broker: OptionsBroker) -> float:
        """Dollars: sum over all trades (unallocated included) of net P&L; equals the broker's
        cash flows plus its positions value (module docstring)."""
        return sum(t.net_pnl(broker) for t in self.trades.values())

    def _closed(self) -> Iterator[Trade]:
        """Closed trades in order of opening, plus the unallocated trade when it carries cash."""
        for t in self.trades.values():
            if t.is_open and t.trade_id != 0:
                continue
            if t.trade_id == 0 and abs(t.cash) < _EPS and not t.is_open:
                continue
            yield t

    def closed_frame(self) -> pd.DataFrame:
        """Closed trades, one row each, in order of exit, plus the unallocated trade when it
        carries any cash.

        Columns: ``trade_id, tag, entry_time, exit_time, reason, legs`` (opening fills,
        ``"+1 SPXW 2021-01-15 3700C @ 12.3"``), ``option_cash, commission, settlement,
        share_cash, window_end, net_pnl`` (dollars), then one column per strategy field.
        """
        rows = [
            {
                "trade_id": t.trade_id,
                "tag": t.tag,
                "entry_time": t.entry_time,
                "exit_time": t.exit_time,
                "reason": t.reason,
                "legs": _legs_text(t),
                "option_cash": t.option_cash,
                "commission": t.commission,
                "settlement": t.settlement,
                "share_cash": t.share_cash,
                "window_end": t.window_end,
                "net_pnl": t.cash,
                **t.fields,
            }
            for t in self._closed()
        ]
        columns = [
            "trade_id",
            "tag",
            "entry_time",
            "exit_time",
            "reason",
            "legs",
            "option_cash",
            "commission",
            "settlement",
            "share_cash",
            "window_end",
            "net_pnl",
        ]
        frame = pd.DataFrame(rows)
        return frame if rows else pd.DataFrame(columns=columns)

    def closed_trades(self, broker: OptionsBroker | None = None) -> pd.DataFrame:
        """The closed-trade records of the run folder's ``closed_trades.csv`` (one row per
        closed trade, plus the unallocated trade, ``trade_id`` 0, when it carries cash).

        Parameters
        ----------
        broker : brokers.OptionsBroker, optional
            Synced first (:meth:`sync`), so records the strategy has not read yet (the
            window-end closes placed after its last bar) are allocated.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`CLOSED_TRADE_COLUMNS` without ``fold`` (the runner adds it):
            ``trade_id``; ``tag``; ``entry_time``, ``exit_time`` (naive ET); ``reason``;
            ``legs`` (opening fills as text); dollars, > 0 received: ``opening_cash`` and
            ``closing_cash`` (option fills that opened / closed legs, commissions included),
            ``share_cash`` (hedge and delivered-share trades, commissions included),
            ``settlement`` (settlement cash net of fees), ``window_end`` (window-end closes at
            the mark), ``commission`` (option and share commissions and settlement fees paid,
            >= 0, already inside the cash columns), ``net_pnl`` (= ``opening_cash +
            closing_cash + share_cash + settlement + window_end``); ``fields`` (the strategy's
            :meth:`note` fields as a JSON object).

        Notes
        -----
        Every broker cash flow is in exactly one trade (module docstring), so over a window
        that ends flat ``sum(net_pnl)`` equals the sum of the broker's ``fills_frame``
        ``cash_flow`` (the run folder's ``trades.csv`` of that fold).
        """
        if broker is not None:
            self.sync(broker)
        rows = [
            {
                "trade_id": t.trade_id,
                "tag": t.tag,
                "entry_time": t.entry_time,
                "exit_time": t.exit_time,
                "reason": t.reason,
                "legs": _legs_text(t),
                "opening_cash": t.opening_cash,
                "closing_cash": t.closing_cash,
                "share_cash": t.share_cash,
                "settlement": t.settlement,
                "window_end": t.window_end,
                "commission": t.commission,
                "net_pnl": t.cash,
                "fields": json.dumps(_json_value(t.fields), sort_keys=True, allow_nan=False),
            }
            for t in self._closed()
        ]
        return pd.DataFrame(rows, columns=[c for c in CLOSED_TRADE_COLUMNS if c != "fold"])

    def open_frame(self, broker: OptionsBroker) -> pd.DataFrame:
        """Open trades at the broker's marks: ``trade_id, tag, entry_time, cash, open_value,
        net_pnl`` (dollars)."""
        rows = [
            {
                "trade_id": t.trade_id,
                "tag": t.tag,
                "entry_time": t.entry_time,
                "cash": t.cash,
                "open_value": t.open_value(broker),
                "net_pnl": t.net_pnl(broker),
            }
            for t in self.trades.values()
            if t.is_open
        ]
        return pd.DataFrame(
            rows, columns=["trade_id", "tag", "entry_time", "cash", "open_value", "net_pnl"]
        )

    # -- tag-level queries (risk layer, sleeve attribution) --------------------------------------
    def tags(self) -> list[str]:
        """Every tag seen, sorted (``""`` is the unallocated trade)."""
        return sorted(self._by_tag)

    def _of_tag(self, tag: str) -> list[Trade]:
        return [self.trades[i] for i in self._by_tag.get(tag, [])]

    def is_open(self, tag: str) -> bool:
        """A trade of ``tag`` holds legs or shares."""
        return any(t.is_open for t in self._of_tag(tag))

    def open_value(self, tag: str, broker: OptionsBroker) -> float:
        """Dollars: open value of the trades of ``tag`` at the broker's marks."""
        return sum(t.open_value(broker) for t in self._of_tag(tag) if t.is_open)

    def pnl(self, tag: str, broker: OptionsBroker) -> float:
        """Dollars: net P&L summed over every trade of ``tag`` (closed and open)."""
        return sum(t.net_pnl(broker) for t in self._of_tag(tag))

    def basis(self, tag: str) -> float:
        """Dollars at risk at entry of the open trade of ``tag``, for the fractional stop-loss.

        The maximum loss at expiry of the opening legs at their average entry prices plus
        opening commissions (:func:`brokers.margin.max_loss`) when every leg has the same
        expiration and the loss is bounded; otherwise the absolute premium paid or received
        (``|sum q p m|`` + commissions). NaN when neither is positive.
        """
        trade = self.current(tag)
        if trade is None:
            return math.nan
        entries = {c: e for c, e in trade._entries.items() if e.qty != 0}
        if not entries:
            return math.nan
        commission = sum(e.commission for e in entries.values())
        legs = [(c, e.qty, e.cost / e.qty) for c, e in entries.items()]
        premium = abs(sum(q * p * c.multiplier for c, q, p in legs)) + commission
        if len({c.expiration for c in entries}) == 1:
            try:
                loss = max_loss(legs) + commission
            except ValueError:
                loss = math.nan
            if math.isfinite(loss) and loss > 0:
                return loss
        return premium if premium > 0 else math.nan


__all__ = [
    "CLOSED_TRADE_COLUMNS",
    "CLOSE_PREFIX",
    "UNALLOCATED",
    "Trade",
    "TradeBook",
    "base_tag",
    "closed_trades_csv",
]
