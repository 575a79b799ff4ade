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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from brokers import OptionFill, OptionsBroker, OrderRejected
from brokers.margin import underlying_of
from data_feeds.chain_feed import SnapshotCache, SnapshotSource, chain_feed
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable, settlement_time
from data_feeds.contracts import OptionContract
from strategies.base import BacktestResult, StrategyParams, StrategyPlugin, run_cerebro
from strategies.book import TradeBook

if TYPE_CHECKING:  # strategies.risk imports this module (its OptionRiskMixin wraps open_combo)
    from strategies.risk.limits import RiskLimits
    from strategies.risk.manager import RiskConfig


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


@dataclass
class ComboPosition:
    """One open position of a :class:`ChainStrategy` holding several at once (its
    :attr:`~ChainStrategy.positions_open`); a strategy subclasses it with its own fields
    (``@dataclass(kw_only=True)``).

    Attributes
    ----------
    tag : str
        Book tag; fills carry ``tag`` and ``close <tag>``.
    row : dict
        The entry day's log row, completed at the exit (:meth:`ChainStrategy.finish_position`).
    trade_id : int
        Its trade in the strategy's :class:`~strategies.book.TradeBook` (fills, its share of
        settlements, the shares they delivered and their sale, window-end close).
    closing_reason : str or None
        Why it is being closed (None while no exit is under way).
    contract_set : frozenset of OptionContract
        Its legs.
    """

    tag: str
    row: dict[str, Any]
    trade_id: int = 0
    closing_reason: str | None = None
    contract_set: frozenset[OptionContract] = field(default_factory=frozenset)


class ChainStrategy(OptionStrategy):
    """An :class:`OptionStrategy` run by a :class:`ChainPlugin`: its rules, signals, window end
    and risk limits arrive as backtrader params and are unpacked here once, with the risk layer
    and the attribution analyzer, so a subclass's ``__init__`` only adds its own state.

    A subclass mixes in :class:`strategies.risk.OptionRiskMixin` before this class
    (``class S(OptionRiskMixin, ChainStrategy)``) and declares :attr:`rules_cls` (its params
    model) and :attr:`counters`.

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : StrategyParams, optional
        The trial's parameters (default ``rules_cls()``).
    signals : mapping of datetime.date to dict, or pandas.DataFrame, optional
        The signal table the plugin hands over (:meth:`ChainPlugin.signal_inputs`); default
        ``{}``.
    last_day : datetime.date, optional
        Last session of the window (nothing opens there); default ``datetime.date.max``.
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]``; default ``RiskLimits(**default_risk)``.

    Attributes
    ----------
    rules, signals, last_day
        The params above, defaults applied.
    counts : dict of str to int
        One counter per name of :attr:`counters` (in that order), starting at 0; the plugin
        reports them in ``BacktestResult.info``.
    open_trade : dict or None
        The open position of a strategy that holds one at a time (:meth:`finish_trade`): at
        least ``trade_id`` (its trade in :attr:`book`), ``row`` (its entry day's log row) and
        ``bars`` (bars held).
    trades : list of dict
        One record per finished position (:meth:`finish_trade`).
    positions_open : dict of str to ComboPosition
        A strategy holding several positions at once: the open ones by tag
        (:meth:`finish_position`).
    positions_done : list of ComboPosition
        The finished ones, in order of exit.
    """

    params = (("rules", None), ("signals", None), ("last_day", None), ("limits", None))

    #: The strategy's params model (the default ``rules``).
    rules_cls: ClassVar[type[StrategyParams]] = StrategyParams
    #: Names of the event counters (:attr:`counts`).
    counters: ClassVar[tuple[str, ...]] = ()
    #: ``[risk]`` defaults when no ``limits`` are passed (``RiskLimits`` fields).
    default_risk: ClassVar[Mapping[str, Any]] = {}
    #: Sync :attr:`book` before an exit is booked (:meth:`finish_trade`).
    sync_on_finish: ClassVar[bool] = False
    #: Keys of :attr:`open_trade` not copied into its record in :attr:`trades`.
    trade_fields_hidden: ClassVar[tuple[str, ...]] = ("bars", "row")

    def __init__(self) -> None:
        """Unpack the params, attach the risk manager (:meth:`risk_config`) and the attribution
        analyzer (:meth:`sleeve_of`).

        Raises
        ------
        TypeError
            The class does not mix in :class:`strategies.risk.OptionRiskMixin`.
        """
        from strategies.risk import RiskLimits, track_sleeves

        super().__init__()
        self.rules: Any = self.p.rules or self.rules_cls()
        self.signals: Any = self.p.signals if self.p.signals is not None else {}
        self.last_day: dt.date = self.p.last_day or dt.date.max
        self.counts: dict[str, int] = dict.fromkeys(self.counters, 0)
        self.open_trade: dict[str, Any] | None = None
        self.trades: list[dict[str, Any]] = []
        self.positions_open: dict[str, ComboPosition] = {}
        self.positions_done: list[ComboPosition] = []
        setup = getattr(self, "setup_risk", None)
        if setup is None:
            raise TypeError(
                f"{type(self).__name__} needs the risk layer: "
                "class ...(OptionRiskMixin, ChainStrategy)"
            )
        setup(self.risk_config(self.p.limits or RiskLimits(**self.default_risk)))
        track_sleeves(self, self.sleeve_of())

    def finish_trade(self, day: dt.date, reason: str) -> None:
        """Book the exit of :attr:`open_trade` on ``day``: the reason noted on its trade in
        :attr:`book`, its entry row completed (``status = "traded"``, ``exit_date``,
        ``exit_reason``, ``net_pnl``) and a record appended to :attr:`trades` (its fields but
        :attr:`trade_fields_hidden`, ``exit_date``, ``exit_reason``, ``bars_held``,
        ``commissions``, ``net_pnl``); then no trade is open. ``net_pnl`` and ``commissions``
        are the trade's in the book, dollars (at the broker's marks while legs are still
        held)."""
        t = self.open_trade
        assert t is not None
        if self.sync_on_finish:
            self.book.sync(self.obroker)  # share trades placed since the last sync
        self.book.note(t["trade_id"], reason)
        trade = self.book.trade(t["trade_id"])
        pnl = trade.net_pnl(self.obroker)
        t["row"].update(status="traded", exit_date=day, exit_reason=reason, net_pnl=pnl)
        self.trades.append(
            {
                **{k: v for k, v in t.items() if k not in self.trade_fields_hidden},
                "exit_date": day,
                "exit_reason": reason,
                "bars_held": t["bars"],
                "commissions": trade.commission,
                "net_pnl": pnl,
            }
        )
        self.open_trade = None

    def finish_position(self, pos: ComboPosition, exit_date: dt.date) -> None:
        """Book the exit of ``pos`` (one of :attr:`positions_open`): it moves to
        :attr:`positions_done`, its reason (``pos.closing_reason``, default ``"closed"``) is
        noted on its trade in :attr:`book` and its entry row completed (``status = "traded"``,
        ``exit_reason``, ``exit_date``, ``net_pnl``: the trade's in the book, dollars, shares
        still held at their mark; refreshed by :meth:`book_positions_at_end`)."""
        self.positions_open.pop(pos.tag, None)
        self.positions_done.append(pos)
        reason = pos.closing_reason or "closed"
        self.book.note(pos.trade_id, reason)
        pos.row.update(
            status="traded",
            exit_reason=reason,
            exit_date=exit_date,
            net_pnl=self.book.net_pnl(pos.trade_id, self.obroker),
        )

    def finish_gone_positions(self, day: dt.date, *, record_settlement: bool = False) -> None:
        """Finish (:meth:`finish_position`) the open positions whose legs are all gone from
        :attr:`combos`: ``closing_reason`` (unless one is set) ``"settled"`` when their trade in
        :attr:`book` had legs settled, else ``"risk: <kill reason>"`` (closed by the risk layer).
        With ``record_settlement`` a settled position's row gets ``settled_legs`` and
        ``settled_on`` (the settlement date, also its ``exit_date``); the exit date is ``day``
        otherwise."""
        for tag in list(self.positions_open):
            if tag in self.combos:
                continue
            pos = self.positions_open[tag]
            trade = self.book.trade(pos.trade_id)
            settled = trade.settled_legs > 0 and trade.settled_at is not None
            if settled and record_settlement:
                pos.row["settled_legs"] = trade.settled_legs
                pos.row["settled_on"] = trade.settled_at.date()
            risk = cast(Any, self).risk  # the OptionRiskMixin's manager
            pos.closing_reason = pos.closing_reason or (
                "settled" if settled else "risk: " + (risk.kill_reason or "closed")
            )
            self.finish_position(pos, pos.row.get("settled_on", day))

    def book_positions_at_end(self) -> None:
        """After the last bar: the positions still open get ``status = "open_at_end"`` and
        every position's row its trade's ``net_pnl`` in the book at the last marks (the
        window-end close, at those marks, keeps it)."""
        for pos in self.positions_open.values():
            pos.row["status"] = "open_at_end"
        for pos in [*self.positions_done, *self.positions_open.values()]:
            pos.row["net_pnl"] = self.book.net_pnl(pos.trade_id, self.obroker)

    def stop(self) -> None:
        """A position still open after the last bar is booked ``open_at_end`` at the last marks
        (:meth:`finish_trade`; the window-end close that follows happens at the same marks);
        the book's unallocated trade goes on the last log row
        (:meth:`OptionStrategy.log_unallocated`)."""
        if self.open_trade is not None:
            last = self.snapshot.quote_date if self.snapshot is not None else dt.date.min
            self.finish_trade(last, "open_at_end")
        if self.log_rows:
            self.log_unallocated(self.log_rows[-1])

    def risk_config(self, limits: RiskLimits) -> RiskConfig:
        """The risk manager's config: ``rules.risk_config(limits)`` when the params model
        defines one (a strategy with its own stop rule), else ``limits.risk_config()``."""
        own = getattr(self.rules, "risk_config", None)
        return own(limits) if callable(own) else limits.risk_config()

    def sleeve_of(self) -> Callable[[str], str]:
        """Tag -> attribution sleeve (default: the tag's first word,
        :func:`strategies.risk.sleeve_by_prefix`)."""
        from strategies.risk import sleeve_by_prefix

        return sleeve_by_prefix()


class ChainPlugin(StrategyPlugin):
    """A plugin whose backtest is one :class:`ChainStrategy` over the chain snapshots of its
    window (:func:`run_chain_cerebro`), declared rather than written.

    A subclass sets :attr:`strategy_cls` (and, where they differ from the defaults,
    :attr:`feed_target_dte`, :attr:`signal_source`, :attr:`signals_as_records`,
    :attr:`info_counts`, :attr:`info_tables`); its ``prepare`` starts with
    :meth:`setup_chains` and builds the signal tables. :meth:`backtest` then:

    1. runs :attr:`strategy_cls` over :meth:`window_days` with the broker settling
       ``params.chain_symbol`` on ``self.settlement`` (default the underlying's open/close);
    2. hands the strategy each backtrader param it declares (:meth:`strategy_kwargs`):
       ``rules`` (the trial's params), ``signals`` (:meth:`signal_inputs`; none when
       :attr:`signal_source` is None), ``last_day`` (the
       window's last day), ``limits`` (``[risk]``), ``hedge`` (``params.hedge_config(costs)``),
       any other name from the plugin attribute of that name;
    3. returns the broker's fills, the strategy's ``log_rows`` and :meth:`backtest_info`,
       passed through :meth:`finish_backtest` (default unchanged).

    The params model has ``chain_symbol``, ``root`` and ``rate`` fields.
    """

    #: The backtrader strategy of a backtest.
    strategy_cls: ClassVar[type[bt.Strategy]]
    #: The chain feed's line expiry: a params field name, or calendar days.
    feed_target_dte: ClassVar[str | float] = "target_dte"
    #: The plugin's method giving the trial's signal table (``method(params)``), or an attribute
    #: holding one table for every trial; None: the strategy gets no ``signals``.
    signal_source: ClassVar[str | None] = "signal_table"
    #: Hand the strategy ``{date: row dict}`` (True) or the table itself (False).
    signals_as_records: ClassVar[bool] = True
    #: Counters reported in ``info`` (None: every one of ``strategy.counts``).
    info_counts: ClassVar[tuple[str, ...] | None] = None
    #: ``info`` key -> strategy attribute (a list of dicts) reported as a frame.
    info_tables: ClassVar[Mapping[str, str]] = {}

    def setup_chains(
        self,
        data: Mapping[str, Any],
        grid: Mapping[str, Sequence[Any]],
        *,
        cache: bool = True,
        quote_dates: bool = True,
    ) -> StrategyParams:
        """The head of every chain plugin's ``prepare``: refuse fixed parameters in ``grid``
        (:meth:`check_search_space`), keep the fixed params (``self.base``), the underlying
        (``self.underlying``), the snapshot source (``self.source``, a
        :class:`data_feeds.SnapshotCache` over ``data["chains"]`` unless ``cache=False``) and,
        with ``quote_dates``, the quote dates of ``chain_symbol``/``root`` inside the
        underlying's sessions (``self.quote_dates``, :meth:`chain_quote_dates`).

        Returns
        -------
        StrategyParams
            The fixed parameters (``self.base``).

        Raises
        ------
        ValueError
            A parameter of ``grid`` is not tunable; (``quote_dates``) no quote date inside the
            underlying's sessions.
        """
        self.check_search_space(grid)
        p: Any = self.Params(**self.fixed)
        self.base = p
        self.underlying = data["underlying"]
        self.source = SnapshotCache(data["chains"]) if cache else data["chains"]
        if quote_dates:
            self.quote_dates = self.chain_quote_dates(
                self.source, p.chain_symbol, p.root, self.underlying.index
            )
        return p

    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """One Cerebro over the chain snapshots of ``[start, end]`` (class docstring).

        Raises
        ------
        TypeError
            ``params`` is not this plugin's params model.
        ValueError
            No trading day inside the window.
        """
        if not isinstance(params, self.Params):
            raise TypeError(f"{self.name} backtest needs {self.Params.__name__}")
        p: Any = params
        inside = self.window_days(start, end)
        target = self.feed_target_dte
        settlement = getattr(self, "settlement", None)
        if settlement is None:
            settlement = self.underlying[["open", "close"]]
        strat, value, returns = run_chain_cerebro(
            self.strategy_cls,
            self.source,
            p.chain_symbol,
            p.root,
            inside,
            settlement=settlement,
            broker_params=self.broker_params,
            cash=cash,
            target_dte=getattr(p, target) if isinstance(target, str) else float(target),
            rate=p.rate,
            strategy_kwargs=self.strategy_kwargs(p, inside),
        )
        result = BacktestResult.of(strat, value, returns, self.backtest_info(strat, p))
        return self.finish_backtest(result, strat, p)

    def signal_inputs(self, params: StrategyParams) -> Any:
        """The ``signals`` param of the strategy: the table of ``params`` from
        :attr:`signal_source` (its method, or the table it names), as ``{datetime.date: row
        dict}`` (a timestamp index is taken at its date) or, without
        :attr:`signals_as_records`, the table itself."""
        source = getattr(self, self.signal_source)
        table = source(params) if callable(source) else source
        if not self.signals_as_records:
            return table
        days = [d.date() if isinstance(d, pd.Timestamp) else d for d in table.index]
        return dict(zip(days, table.to_dict("records"), strict=True))

    def strategy_kwargs(self, params: Any, inside: pd.DatetimeIndex) -> dict[str, Any]:
        """Every backtrader param :attr:`strategy_cls` declares, filled as the class docstring
        says (step 2).

        Raises
        ------
        AttributeError
            A declared param that is none of the known inputs and no plugin attribute.
        """
        known: dict[str, Callable[[], Any]] = {
            "rules": lambda: params,
            "signals": lambda: self.signal_inputs(params),
            "last_day": lambda: inside[-1].date(),
            "limits": lambda: self.risk,
            "hedge": lambda: params.hedge_config(self.costs),
        }
        kwargs = {}
        for key in self.strategy_cls.params._getkeys():
            if key == "signals" and self.signal_source is None:
                continue
            if key in known:
                kwargs[key] = known[key]()
            elif hasattr(self, key):
                kwargs[key] = getattr(self, key)
            else:
                raise AttributeError(
                    f"{self.name}: {self.strategy_cls.__name__} declares the param {key!r}, "
                    f"which is no known input and no attribute of {type(self).__name__}"
                )
        return kwargs

    def backtest_info(self, strat: Any, params: Any) -> dict[str, Any]:
        """``BacktestResult.info`` of a finished run: the market source, the counters
        (:attr:`info_counts`), stale marks and rejections (counts), the risk events and kill
        flag, the attribution (:func:`strategies.risk.sleeve_info`), the frames of
        :attr:`info_tables`, the closed-trade records
        (:meth:`strategies.book.TradeBook.closed_trades`) and, for a hedged strategy
        (``strat.hedger``), ``pnl_breakdown``
        and the sums of its ``option_pnl``, ``hedge_pnl`` and ``costs`` columns (dollars)."""
        from strategies.risk import sleeve_info

        names = strat.counts if self.info_counts is None else self.info_counts
        info: dict[str, Any] = {
            "market_source": f"chain:{params.chain_symbol}:{params.root}",
            **{k: float(strat.counts[k]) for k in names},
            "stale_marks": float(len(strat.broker.stale_marks)),
            "rejections": float(len(strat.broker.rejections)),
            "risk_events": strat.risk.events_frame(),
            "killed": strat.risk.killed,
            **sleeve_info(strat),
            "closed_trades": strat.book.closed_trades(strat.broker),
        }
        for key, attr in self.info_tables.items():
            info[key] = pd.DataFrame(getattr(strat, attr))
        hedger = getattr(strat, "hedger", None)
        if hedger is not None:
            pnl = hedger.pnl_frame()
            info["pnl_breakdown"] = pnl
            for col in ("option_pnl", "hedge_pnl", "costs"):
                if col in pnl:
                    info[col] = float(pnl[col].sum())
        return info

    def finish_backtest(
        self, result: BacktestResult, strat: Any, params: Any
    ) -> BacktestResult:
        """Hook: a plugin's last touches on a backtest's result (extra info, log columns);
        the default returns ``result`` unchanged."""
        return result


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


__all__ = [
    "ChainPlugin",
    "ChainStrategy",
    "ComboPosition",
    "ComboSpec",
    "OptionStrategy",
    "run_chain_cerebro",
    "sync_window_end",
]
