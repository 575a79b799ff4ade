"""``OptionStrategy``: a backtrader ``Strategy`` base with option helpers, so option strategies stay
short.

The strategy runs on a chain feed (:func:`data_feeds.chain_feed.chain_feed`, one bar per
:class:`~data_feeds.chains.ChainSnapshot`) with an :class:`brokers.OptionsBroker`. On each bar
(snapshot at quote time ``T`` on session ``D``) :meth:`OptionStrategy.next`:

1. settles what has settled by ``T``: AM legs of ``D`` (09:30 ET, opening print) and anything that
   expired on an earlier day not in the feed (the broker's settlement source gives the price);
2. marks the book at the snapshot mids (shares at the snapshot's underlying price);
3. calls the user hook :meth:`OptionStrategy.next_chain` with the snapshot;
4. on the session's last bar, books the end-of-day settlements of legs settling later on ``D``
   (SPXW PM cash settlement and SPY exercise/assignment at ``D``'s close) and marks shares at
   ``D``'s close (with intraday bars a 0DTE leg stays tradable until the last bar of the day).

Every cash flow is allocated to trades by the strategy's :class:`~strategies.book.TradeBook`
(:attr:`OptionStrategy.book`, one rule: :mod:`strategies.book`), synced after each step above and
after each helper order; :meth:`~OptionStrategy.open_combo` records the trade id
(:attr:`OptionStrategy.last_trade_id`) and :func:`run_chain_cerebro` syncs the window-end closes.

The decision of bar ``D`` (step 3) never sees ``D``'s close: the close enters the accounting only
(step 4), so the account value recorded for ``D`` includes that day's PM settlements.

A strategy subclasses :class:`OptionStrategy` and writes :meth:`~OptionStrategy.next_chain` with
the helpers :meth:`~OptionStrategy.open_combo`, :meth:`~OptionStrategy.close_combo`,
:meth:`~OptionStrategy.close_all`, :meth:`~OptionStrategy.book_greeks` and
:meth:`~OptionStrategy.positions_frame`; combos are described by a :class:`ComboSpec` resolved
against the snapshot with the :class:`~data_feeds.chains.ChainSnapshot` queries.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from brokers import OptionFill, OptionsBroker, OrderRejected
from brokers.margin import underlying_of
from data_feeds.chain_feed import SnapshotSource, chain_feed
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable, settlement_time
from data_feeds.contracts import OptionContract
from strategies.base import run_cerebro
from strategies.book import TradeBook


class ComboSpec(BaseModel):
    """A combo described by rule, resolved against a snapshot by :meth:`resolve`.

    Attributes
    ----------
    kind : {'straddle', 'strangle', 'vertical', 'iron_condor', 'calendar'}
        Structure. Legs carry the signs of the *bought* combo (``quantity > 0`` in
        :meth:`OptionStrategy.open_combo`):

        * ``straddle``: +call +put at ``strike`` (default the ATM strike,
          :meth:`ChainSnapshot.atm_strike`);
        * ``strangle``: +call at ``+delta``, +put at ``-delta``;
        * ``vertical``: -1 at the ``delta`` strike of ``right`` and +1 ``width`` further out of the
          money (a credit spread when bought; sell it, ``quantity < 0``, for the debit spread);
        * ``iron_condor``: short put and call at ``-delta`` / ``+delta``, long wings ``width``
          further out (bought = the short iron condor, collecting the credit);
        * ``calendar``: -1 near (``target_dte``) +1 far (``far_dte``) at ``strike`` (default the
          near ATM strike), ``right``.
    root : str
        Option root (``SPXW``, ``SPX``, ``SPY``).
    target_dte : float
        Calendar days to expiry; the expiry nearest it is used
        (:meth:`ChainSnapshot.nearest_expiry`), 0 for the same-day expiry.
    delta : float
        Absolute Black-76 forward delta of the short strikes (strangle longs), in ``(0, 0.5]``.
    width : float, optional
        Wing width in index points / dollars (vertical, iron condor); the listed strike nearest
        ``short +- width`` with a two-sided quote is used.
    right : {'C', 'P'}
        Right of a vertical or calendar.
    far_dte : float, optional
        Calendar days to the far expiry of a calendar (> ``target_dte``).
    strike : float, optional
        Explicit strike of a straddle or calendar.

    Raises
    ------
    pydantic.ValidationError
        Unknown keys, out-of-range values, a vertical / iron condor without ``width``, a calendar
        without ``far_dte > target_dte``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["straddle", "strangle", "vertical", "iron_condor", "calendar"]
    root: str = "SPXW"
    target_dte: float = Field(0.0, ge=0.0)
    delta: float = Field(0.25, gt=0.0, le=0.5)
    width: float | None = Field(None, gt=0.0)
    right: Literal["C", "P"] = "P"
    far_dte: float | None = Field(None, ge=0.0)
    strike: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _needs(self) -> ComboSpec:
        if self.kind in ("vertical", "iron_condor") and self.width is None:
            raise ValueError(f"a {self.kind} spec needs width (wing width in points)")
        if self.kind == "calendar" and (self.far_dte is None or self.far_dte <= self.target_dte):
            raise ValueError("a calendar spec needs far_dte > target_dte")
        return self

    def resolve(self, snapshot: ChainSnapshot) -> Combo:
        """The :class:`~data_feeds.chains.Combo` this spec means in ``snapshot``.

        Raises
        ------
        data_feeds.chains.QuoteUnavailable
            The snapshot cannot answer (``.reason``): a leg not quoted, no expiry for the root,
            no strike at the delta, short strikes that cross (``delta_not_bracketed``), no wing
            strike beyond the short one (``not_quoted``), or a calendar whose two expiries
            coincide (``no_expiry``).
        """
        snap, root = snapshot, self.root
        exp = snap.nearest_expiry(self.target_dte, root)
        if self.kind == "straddle":
            return snap.straddle(exp, root, self.strike)
        if self.kind == "strangle":
            return snap.strangle(exp, root, delta=self.delta)
        assert self.width is not None or self.kind == "calendar"
        if self.kind == "vertical":
            sign = 1.0 if self.right == "C" else -1.0
            short = snap.strike_by_delta(exp, root, self.right, sign * self.delta)
            wing = _wing(snap, exp, root, self.right, short, sign * float(self.width or 0.0))
            return snap.vertical(exp, root, self.right, wing, short)
        if self.kind == "iron_condor":
            put_short = snap.strike_by_delta(exp, root, "P", -self.delta)
            call_short = snap.strike_by_delta(exp, root, "C", self.delta)
            if put_short > call_short:  # the delta strikes cross on a sparse ladder
                raise QuoteUnavailable(
                    "delta_not_bracketed",
                    f"iron condor short put {put_short:g} above short call {call_short:g} at "
                    f"|delta| {self.delta:g} in the {root} {exp} snapshot of {snap.quote_time}",
                )
            w = float(self.width or 0.0)
            put_long = _wing(snap, exp, root, "P", put_short, -w)
            call_long = _wing(snap, exp, root, "C", call_short, w)
            return snap.iron_condor(exp, root, put_long, put_short, call_short, call_long)
        far = snap.nearest_expiry(float(self.far_dte or 0.0), root)
        if far <= exp:
            raise QuoteUnavailable(
                "no_expiry",
                f"calendar: the expiries nearest {self.target_dte:g} and {self.far_dte:g} DTE are "
                f"not ordered ({exp} / {far}) in the {root} snapshot of {snap.quote_time}"
            )
        strike = self.strike if self.strike is not None else snap.atm_strike(exp, root)
        return snap.calendar(exp, far, strike, self.right, root)


def _wing(
    snap: ChainSnapshot, exp: dt.date, root: str, right: str, short: float, offset: float
) -> float:
    """Listed two-sided strike of ``right`` nearest ``short + offset``, beyond ``short``."""
    side = snap.with_implied_vols(exp, root)
    side = side[(side["right"] == right) & side["two_sided"]]
    strikes = side["strike"].to_numpy(dtype=float)
    strikes = strikes[strikes > short] if offset > 0 else strikes[strikes < short]
    if strikes.size == 0:
        raise QuoteUnavailable(
            "not_quoted",
            f"no two-sided {root} {exp} {right} strike beyond {short:g} for a wing of {offset:+g}"
        )
    return float(strikes[int(np.argmin(np.abs(strikes - (short + offset))))])


class OptionStrategy(bt.Strategy):
    """backtrader ``Strategy`` base for option strategies on a chain feed (see module docstring).

    Subclasses implement :meth:`next_chain` (and call ``super().__init__()`` if they define
    ``__init__``). The first data feed must be a chain feed (its bars expose ``snapshot()``) and
    the broker an :class:`brokers.OptionsBroker` with a settlement source for the underlyings
    traded.

    Attributes
    ----------
    snapshot : ChainSnapshot or None
        The current bar's snapshot (``None`` before the first bar).
    combos : dict of str to dict of OptionContract to int
        Open legs per tag (signed contracts), as opened by :meth:`open_combo`; legs leave when
        closed or settled.
    rejections : list of (datetime.datetime, str, str)
        ``(time, tag, reason)`` of every helper order the broker refused.
    book : strategies.book.TradeBook
        The trade book: every fill, settlement, share trade and window-end close allocated to
        trades (:mod:`strategies.book`).
    last_trade_id : int or None
        Trade id of the last :meth:`open_combo` that filled.
    quote_unavailable : collections.Counter of str
        Chain queries this strategy asked that the snapshot could not answer, by
        :class:`~data_feeds.chains.QuoteUnavailable` reason (:meth:`count_unavailable`).
    log_rows : list of dict
        The strategy's daily log (one row per decision; a plugin hands it to
        :class:`~strategies.base.BacktestResult` as ``daily_log``); empty until the subclass
        appends.
    """

    def __init__(self) -> None:
        self.snapshot: ChainSnapshot | None = None
        self.combos: dict[str, dict[OptionContract, int]] = {}
        self.rejections: list[tuple[dt.datetime, str, str]] = []
        self.book = TradeBook()
        self.last_trade_id: int | None = None
        self.log_rows: list[dict[str, Any]] = []
        self.quote_unavailable: Counter[str] = Counter()

    @property
    def obroker(self) -> OptionsBroker:
        """The options broker (``self.broker``), type-checked.

        Raises
        ------
        TypeError
            The Cerebro's broker is not an :class:`brokers.OptionsBroker`.
        """
        if not isinstance(self.broker, OptionsBroker):
            raise TypeError(
                f"OptionStrategy needs an OptionsBroker, got {type(self.broker).__name__}: "
                "cerebro.setbroker(OptionsBroker(...))"
            )
        return self.broker

    # -- the bar ----------------------------------------------------------------------------------
    def next(self) -> None:
        """Settle, mark, decide (:meth:`next_chain`), book end-of-day settlements (module doc)."""
        broker = self.obroker
        snap = self.data.snapshot()
        self.snapshot = snap
        self._forget_settled(broker.settle_due(snap.quote_time))
        broker.mark_to_snapshot(snap)
        self.book.sync(broker)
        self.next_chain(snap)
        self.book.sync(broker)
        if self._last_bar_of_session():
            self._forget_settled(broker.settle_due(settlement_time(snap.quote_date, "PM")))
            self.book.sync(broker)
        for symbol in list(broker.underlying_positions):
            close = broker.daily_close(symbol, snap.quote_date)
            if close is not None:
                broker.mark_underlying(symbol, close)

    def _last_bar_of_session(self) -> bool:
        """Whether this bar is the session's last (then the day's PM/physical settlements are
        booked after it). On intraday bars a leg settling at today's close stays open, and
        tradable, until the session's last bar. Only the next bar's *timestamp* is read (known
        from the feed's schedule), never its data. A live feed is asked for its ``next_time()``
        (the replay venue's schedule); one that cannot tell (a live venue) counts every bar as the
        last, and the broker's own settlement clock takes over."""
        data = self.data
        if data.islive():  # a live feed may know when its next bar is due (a replay venue)
            peek = getattr(data, "next_time", None)
            upcoming = peek() if callable(peek) else None
            return upcoming is None or upcoming.date() != data.datetime.date(0)
        try:
            if len(data) >= data.buflen():
                return True
            return data.datetime.date(1) != data.datetime.date(0)
        except (IndexError, AttributeError):
            return True

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """User hook: decide on this bar's snapshot (book already settled and marked)."""

    def _forget_settled(self, settled: list) -> None:
        gone = {s.contract for s in settled}
        for legs in self.combos.values():
            for contract in gone & set(legs):
                del legs[contract]
        self.combos = {tag: legs for tag, legs in self.combos.items() if legs}

    # -- helpers ----------------------------------------------------------------------------------
    def open_combo(
        self, spec_or_combo: ComboSpec | Combo, quantity: int = 1, tag: str = ""
    ) -> list[OptionFill]:
        """Open ``quantity`` units of a combo at the current snapshot's bid/ask.

        Parameters
        ----------
        spec_or_combo : ComboSpec or Combo
            A spec (resolved with :meth:`ComboSpec.resolve`) or a ready combo.
        quantity : int
            Combo units; > 0 buys the combo as specified, < 0 sells it.
        tag : str
            Book label (default: the combo's name); :meth:`close_combo` closes by tag.

        Returns
        -------
        list of OptionFill
            The fills; empty when the spec cannot be resolved in this snapshot or the broker
            refused the order (reason in :attr:`rejections` and ``broker.rejections``). The
            trade the fills went to (a new one unless ``tag`` has an open trade) is
            :attr:`last_trade_id`.
        """
        snap = self._current()
        try:
            combo = (
                spec_or_combo.resolve(snap)
                if isinstance(spec_or_combo, ComboSpec)
                else spec_or_combo
            )
        except QuoteUnavailable as exc:
            self.count_unavailable(exc)
            self._log_rejection(tag, f"cannot resolve {spec_or_combo!r}: {exc}")
            return []
        tag = tag or combo.name
        try:
            fills = self.obroker.execute_snapshot(combo, quantity, snap, tag=tag)
        except OrderRejected as exc:
            self._log_rejection(tag, exc.reason)
            return []
        legs = self.combos.setdefault(tag, {})
        for f in fills:
            legs[f.contract] = legs.get(f.contract, 0) + f.quantity
            if legs[f.contract] == 0:
                del legs[f.contract]
        if not legs:
            del self.combos[tag]
        self.book.sync(self.obroker)
        self.last_trade_id = self.book.trade_id(tag)
        return fills

    def close_combo(self, tag: str) -> list[OptionFill]:
        """Close the open legs of ``tag`` at the current snapshot's bid/ask (one order).

        Long legs with a zero bid cannot be sold (nobody pays for them) and are left in the
        book to expire; legs the snapshot does not quote are left too. Both stay under ``tag``.

        Returns
        -------
        list of OptionFill
            The fills; empty if nothing was open, nothing closable, or the order was refused.
        """
        snap = self._current()
        legs = self.combos.get(tag, {})
        order = []
        for contract, qty in legs.items():
            if not snap.has(contract):
                continue
            if qty > 0 and not float(snap.row(contract)["bid"]) > 0:
                continue  # a long nobody bids for: left to expire
            order.append((contract, -qty))
        if not order:
            return []
        try:
            fills = self.obroker.execute_snapshot(order, 1, snap, tag=f"close {tag}")
        except OrderRejected as exc:
            self._log_rejection(tag, exc.reason)
            return []
        for f in fills:
            legs[f.contract] += f.quantity
            if legs[f.contract] == 0:
                del legs[f.contract]
        if not legs:
            self.combos.pop(tag, None)
        self.book.sync(self.obroker)
        return fills

    def close_all(self, tag: str | None = None) -> list[OptionFill]:
        """Close every tag's legs (or only ``tag``'s), see :meth:`close_combo`."""
        tags = list(self.combos) if tag is None else [tag]
        return [f for t in tags for f in self.close_combo(t)]

    def book_greeks(self, snapshot: ChainSnapshot | None = None) -> dict[str, float]:
        """Greeks of the option book in dollars: ``sum quantity * multiplier * model greek``.

        Model greeks are Black-76 on the parity forward from
        :meth:`ChainSnapshot.with_implied_vols` (of the current snapshot by default).

        Returns
        -------
        dict
            ``delta``: dollars per 1 point of the (discounted) forward; ``gamma``: change of
            that delta per point; ``vega``: dollars per 1.00 of implied vol (divide by 100 for
            one vol point); ``theta``: dollars per year of calendar time (divide by 365 for one
            day); ``legs_without_greeks``: open legs of this snapshot's underlying that have no
            model greek (not quoted, no implied vol, or past settlement) and are left out of the
            sums.
        """
        snap = snapshot or self._current()
        return snap.position_greeks(
            (p.contract, p.quantity)
            for p in self.obroker.option_positions.values()
            if underlying_of(p.contract.root) == snap.underlying
        )

    def positions_frame(self) -> pd.DataFrame:
        """The broker's open legs and shares (:meth:`OptionsBroker.positions_frame`) with a
        ``tags`` column (the helper tags holding each leg, comma-separated)."""
        frame = self.obroker.positions_frame()
        tags: dict[OptionContract, list[str]] = {}
        for tag, legs in self.combos.items():
            for contract in legs:
                tags.setdefault(contract, []).append(tag)
        keys = [
            (p.contract, ",".join(tags.get(p.contract, [])))
            for p in self.obroker.option_positions.values()
        ]
        frame["tags"] = [t for _, t in keys] + [""] * (len(frame) - len(keys))
        return frame

    def count_unavailable(
        self, exc: QuoteUnavailable, row: dict[str, Any] | None = None
    ) -> str:
        """Count a chain query the snapshot could not answer, by its reason.

        Parameters
        ----------
        exc : data_feeds.chains.QuoteUnavailable
            The caught error (a misspelled column or another bug is a plain ``KeyError`` /
            ``ValueError`` and is never caught this way).
        row : dict, optional
            The bar's daily-log row: its ``quote_unavailable`` column gets the reason (reasons
            of several queries on one bar are joined with ``,``).

        Returns
        -------
        str
            ``exc.reason`` (one of :data:`data_feeds.chains.QUOTE_UNAVAILABLE_REASONS`), also
            counted in :attr:`quote_unavailable`.
        """
        self.quote_unavailable[exc.reason] += 1
        if row is not None:
            before = row.get("quote_unavailable")
            row["quote_unavailable"] = f"{before},{exc.reason}" if before else exc.reason
        return exc.reason

    def log_unallocated(self, row: dict[str, Any]) -> None:
        """Put the P&L of the book's unallocated trade (e.g. an untagged portfolio delta hedge) on
        ``row`` (the window's last ``daily_log`` row) as ``unallocated_pnl``, dollars at the
        broker's marks, so ``net_pnl`` plus ``unallocated_pnl`` over the log add up to the
        account's change of value; call in ``stop`` (the window-end close happens at the same
        marks). Nothing is written when nothing was ever allocated to it."""
        trade = self.book.trade(0)
        if trade.entry_time is not None:
            row["unallocated_pnl"] = trade.net_pnl(self.obroker)

    # -- internals --------------------------------------------------------------------------------
    def _current(self) -> ChainSnapshot:
        if self.snapshot is None:
            raise RuntimeError("no snapshot yet: helpers work inside next_chain")
        return self.snapshot

    def _log_rejection(self, tag: str, reason: str) -> None:
        assert self.snapshot is not None
        when = self.snapshot.quote_time.tz_localize(None).to_pydatetime()
        self.rejections.append((when, tag, reason))


def run_chain_cerebro(
    strategy_cls: type[bt.Strategy],
    source: SnapshotSource,
    symbol: str,
    root: str,
    days: pd.DatetimeIndex,
    *,
    settlement: pd.DataFrame,
    broker_params: Mapping[str, Any],
    cash: float,
    target_dte: float,
    rate: float,
    strategy_kwargs: Mapping[str, Any] | None = None,
) -> tuple[bt.Strategy, pd.Series, pd.Series]:
    """One Cerebro of an option strategy over the chain snapshots of ``days``.

    The chain feed (:func:`data_feeds.chain_feed.chain_feed`, one bar per snapshot of ``root``
    from ``days[0]`` to ``days[-1]``) with an :class:`brokers.OptionsBroker` settling ``symbol``
    on ``settlement``, run by :func:`strategies.base.run_cerebro`.

    Parameters
    ----------
    strategy_cls : type of backtrader.Strategy
        Usually an :class:`OptionStrategy` subclass.
    source : data_feeds.chain_feed.SnapshotSource
        Where the snapshots come from (a chain store or a ``SnapshotCache`` over one).
    symbol, root : str
        Chain symbol (``"SPX"``) and option root (``"SPXW"``).
    days : pandas.DatetimeIndex
        The window's trading days (non-empty; e.g. :meth:`StrategyPlugin.window_days`).
    settlement : pandas.DataFrame
        Daily ``open``/``close`` of the underlying (index points) for AM/PM settlement.
    broker_params : mapping
        :class:`brokers.OptionsBroker` keyword arguments (``[broker]``).
    cash : float
        Starting cash in dollars.
    target_dte, rate : float
        Chain-feed line parameters: the expiry the feed's lines follow (calendar days) and the
        rate (decimal, continuous) of its implied vols.
    strategy_kwargs : mapping, optional
        Strategy params.

    Returns
    -------
    tuple
        ``(strategy, value, returns)`` as :func:`strategies.base.run_cerebro`; an
        :class:`OptionStrategy`'s :attr:`~OptionStrategy.book` has the window-end closes synced.
    """
    feed = chain_feed(
        source,
        symbol,
        roots=[root],
        start=days[0].date(),
        end=days[-1].date(),
        target_dte=float(target_dte),
        rate=rate,
    )
    broker = OptionsBroker(**broker_params, settlement_prices={symbol: settlement})
    out = run_cerebro(strategy_cls, [feed], broker, cash=cash, strategy_kwargs=strategy_kwargs)
    sync_window_end(out[0])
    return out


def sync_window_end(strategy: bt.Strategy) -> None:
    """Allocate the window-end closes (:meth:`brokers.OptionsBroker.close_out`, run by
    :func:`strategies.base.run_cerebro` after the last bar) in ``strategy``'s trade book; a no-op
    for a strategy without one. Plugins that call ``run_cerebro`` themselves call this after."""
    book = getattr(strategy, "book", None)
    if isinstance(book, TradeBook):
        book.sync(strategy.broker)


__all__ = ["ComboSpec", "OptionStrategy", "run_chain_cerebro", "sync_window_end"]
