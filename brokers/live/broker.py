"""``LiveOptionsBroker``: the options broker whose fills come from a venue.

It *is* an :class:`brokers.OptionsBroker` (same book, marks, margin check, settlement bookkeeping,
reports), so a strategy written for the backtest (:class:`strategies.OptionStrategy`, or any
strategy calling ``execute_snapshot``) runs unchanged: only the last step of an
order differs. Where the backtest fills the legs itself, the live broker

1. refuses the order if the kill switch is engaged or a pre-trade limit is broken
   (:func:`brokers.live.safety.pre_trade_check`; reason in the audit log and in ``rejections``);
2. sends it to the venue as one order (coprime leg ratios x units, a marketable limit at the
   cost model's expected net price) under an idempotent client order id, retrying timeouts,
   dropped connections, 429 and 5xx with backoff and looking the order up by its client order id
   before any resend (so a request that reached the venue is never doubled);
3. waits up to ``fill_timeout`` seconds for the fill, cancels what is left, and books exactly what
   the venue reports as filled (venue prices; commission from the cost model);
4. reconciles positions, cash and open orders with the venue at start-up, after every reconnect,
   after the kill switch and at the end (the venue is authoritative).

Every step is written to the :class:`brokers.live.audit.AuditLog`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from math import gcd
from typing import Any

import backtrader as bt
import pandas as pd

from brokers.live.adapter import (
    DuplicateClientOrderId,
    OrderLeg,
    OrderRequest,
    TransientVenueError,
    VenueAdapter,
    VenueError,
    VenueOrder,
    VenuePosition,
    VenueRejected,
    occ_symbol,
)
from brokers.live.audit import AuditLog, legs_record
from brokers.live.safety import (
    KillSwitch,
    ReconcileReport,
    RetryPolicy,
    RiskLimits,
    call_with_retries,
    client_order_id,
    decision_key,
    diff_positions,
    new_session_id,
    pre_trade_check,
    reduces_only,
)
from brokers.options_broker import (
    OptionFill,
    OptionPosition,
    OptionsBroker,
    OptionSettlement,
    OrderRejected,
    StockFill,
    UnderlyingPosition,
    _aware_et,
    _due,
    _naive_et,
)
from data_feeds.contracts import OptionContract, OptionQuote
from data_feeds.errors import DataSourceError, VolsuiteError


class KillSwitchEngaged(VolsuiteError):
    """A live session cannot start (or trade) while the kill switch flag file exists."""


class DecisionAlreadySent(VenueRejected):
    """A resumed session made a decision an earlier run of the same session already sent (same
    deterministic client order id): it is not sent twice."""


class LiveOptionsBroker(OptionsBroker):
    """:class:`brokers.OptionsBroker` that routes fills to a venue (see the module docstring).

    Parameters (backtrader ``params``, in addition to ``OptionsBroker``'s)
    ------------------------------------------------------------------------
    venue : VenueAdapter
        Where orders go (required).
    limits : RiskLimits, optional
        Pre-trade limits (default :class:`RiskLimits()`: 10 contracts per leg, 20 open legs).
    kill_switch : KillSwitch, optional
        The flag file watched every tick and before every order.
    flatten_on_kill : bool
        The kill switch also closes every position (default True; the flag file's ``flatten``
        overrides it).
    audit : AuditLog, optional
        Where every event goes (default: in memory only).
    session : str, optional
        Session id used in client order ids (default :func:`new_session_id`); a resumed session
        keeps its id, so a decision it makes again carries the same client order id
        (:func:`brokers.live.safety.client_order_id`) and is not sent twice.
    retry : RetryPolicy, optional
        Backoff for transient venue errors.
    fill_timeout : float
        Wall seconds to wait for a marketable order to fill before cancelling the rest (0: check
        once, as on the replay venue, which fills synchronously).
    poll_interval : float
        Wall seconds between order-status polls while waiting.
    sleep : callable, optional
        Waits the given seconds (default ``time.sleep``; injected in tests).
    adopt_venue_cash : bool
        Reconciliation sets the local cash to the venue's (default True).
    strategy_name : str
        The strategy's registered name, part of every client order id (default ``""``).
    kill_retry_rounds : int
        At the end of a session, rounds of clean-up tried for a kill the venue has not confirmed
        while it is unreachable (default 10; waits ``retry.delay(n)`` between rounds).

    Attributes
    ----------
    venue_orders : dict of str to VenueOrder
        Every order of the session by client order id (last known state).
    killed : bool
        The kill switch has fired: no new orders (latched).
    kill_complete : bool
        The venue confirmed the kill's clean-up: no open order and, when flattening, no position.
    kill_status : str
        One line on the kill (see :meth:`kill`).
    reconciliations : list of ReconcileReport
    order_log : collections.deque
        The last 50 orders as dicts (time, client id, legs, quantity, limit, status, tag) for the
        status table.
    stop_run : callable or None
        Called once the kill switch has fired (set it to ``cerebro.runstop`` so that a strategy on
        its own historical feed stops before its next decision; a live store feed ends by itself).
    """

    params = (
        ("venue", None),
        ("limits", None),
        ("kill_switch", None),
        ("flatten_on_kill", True),
        ("audit", None),
        ("session", None),
        ("retry", None),
        ("fill_timeout", 30.0),
        ("poll_interval", 0.5),
        ("sleep", None),
        ("adopt_venue_cash", True),
        ("kill_retry_rounds", 10),
        ("strategy_name", ""),
    )

    def __init__(self) -> None:
        super().__init__()
        if not isinstance(self.p.venue, VenueAdapter):
            raise TypeError(
                f"LiveOptionsBroker needs venue=<VenueAdapter>, got {type(self.p.venue).__name__}"
            )
        self.venue: VenueAdapter = self.p.venue
        self.limits: RiskLimits = self.p.limits or RiskLimits()
        self.kill_switch: KillSwitch | None = self.p.kill_switch
        self.session: str = self.p.session or new_session_id()
        self.audit: AuditLog = self.p.audit or AuditLog(None, self.session)
        self.retry: RetryPolicy = self.p.retry or RetryPolicy()
        self._sleep: Callable[[float], None] = self.p.sleep or time.sleep
        self.venue_orders: dict[str, VenueOrder] = {}
        self._tags: dict[str, str] = {}
        self._quotes: dict[str, dict[OptionContract, OptionQuote]] = {}
        self._booked: dict[str, dict[OptionContract, tuple[int, float]]] = {}
        self._decisions: dict[str, int] = {}
        self.killed = False
        self.kill_complete = False
        self.kill_flatten = False
        self.kill_reason = ""
        self.kill_pending = ""
        self.kill_transient = False
        self.kill_rounds = 0
        self.started = False
        self.reconciliations: list[ReconcileReport] = []
        self.order_log: deque[dict[str, Any]] = deque(maxlen=50)
        self.start_value = math.nan
        self.pending_settlement: set[OptionContract] = set()
        self.stop_run: Callable[[], None] | None = None
        self._mirrored: dict[int, tuple[int, float, float]] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, refuse to start under an engaged kill switch, reconcile with the venue.

        Raises
        ------
        KillSwitchEngaged
            The flag file exists.
        """
        super().start()
        if self.started:
            return
        if self.kill_switch is not None and self.kill_switch.engaged():
            raise KillSwitchEngaged(
                f"kill switch engaged ({self.kill_switch.path}): remove the file or run "
                "'volsuite paper stop --clear' before starting a session"
            )
        self.venue.connect()
        self.started = True
        self.audit.write(
            "session_start",
            self.venue.now(),
            venue=self.venue.name,
            detail={
                "limits": {
                    "max_contracts_per_order": self.limits.max_contracts_per_order,
                    "max_open_positions": self.limits.max_open_positions,
                    "max_notional": self.limits.max_notional,
                    "allowed_roots": sorted(self.limits.allowed_roots or []) or None,
                },
                "kill_switch": None if self.kill_switch is None else str(self.kill_switch.path),
                "flatten_on_kill": bool(self.p.flatten_on_kill),
            },
        )
        self.reconcile("start-up")
        self.startingcash = self.cash
        self.start_value = float(self.getvalue())

    def stop(self) -> None:
        """Settle what is due by the venue clock, reconcile a last time, close the session."""
        if self.started:
            try:
                if self.killed and not self.kill_complete:
                    self._finish_kill_at_stop()
                self.settle_due(self.venue.now())
                try:
                    self.reconcile("end")
                except VenueError as exc:
                    report = ReconcileReport("end", error=f"venue: {exc}")
                    report.kill_pending = self._kill_pending_text()
                    self.reconciliations.append(report)
                    self.audit.write(
                        "reconcile",
                        self.venue.now(),
                        reason="end",
                        detail={"clean": False, "summary": report.summary()},
                    )
            finally:
                self.audit.write(
                    "session_end",
                    self.venue.now(),
                    value=float(self.getvalue()),
                    cash=float(self.cash),
                    killed=self.killed,
                    detail={"kill_complete": self.kill_complete, "kill_status": self.kill_status},
                )
                self.venue.close()
                self.started = False
        super().stop()

    def next(self) -> None:
        """Each cerebro cycle: backtrader's own bookkeeping, then the kill switch, reconnects and
        fills of resting orders."""
        super().next()
        self.on_tick()

    def on_tick(self) -> None:
        """Kill switch check, reconcile after a reconnect, book fills of resting orders."""
        if not self.started:
            return
        if self.check_kill_switch():
            return  # the kill's clean-up (retried until confirmed) handles the open orders
        if self.venue.consume_reconnect():
            self.reconcile("reconnect")
        for cid, order in list(self.venue_orders.items()):
            if order.is_open:
                fresh = self._refresh(order)
                self._book_order(fresh, self._tags.get(cid, ""))

    # -- kill switch ------------------------------------------------------------------------------
    def check_kill_switch(self) -> bool:
        """Fire the kill switch if its flag file appeared, and while a fired kill is not confirmed
        by the venue, try once more to finish it; True when the session is killed (no new
        orders)."""
        if self.killed:
            if not self.kill_complete:
                self._finish_kill()
            return True
        if self.kill_switch is not None and self.kill_switch.engaged():
            state = self.kill_switch.state()
            flatten = state.get("flatten")
            self.kill(
                str(state.get("reason") or f"flag file {self.kill_switch.path}"),
                flatten=None if flatten is None else bool(flatten),
            )
        return self.killed

    def kill(self, reason: str, *, flatten: bool | None = None) -> None:
        """Stop trading now: refuse every later order, cancel every open order at the venue and
        (``flatten``) close every position, then check with the venue that it worked.

        The refusal of new orders latches at once (:attr:`killed`); the clean-up is done only when
        the venue confirms it (:attr:`kill_complete`: no open order and, when flattening, no
        position). A venue that is unreachable or refuses a close leaves the kill *pending*:
        the reason is in :attr:`kill_status`, the audit log (``kill_switch`` records with
        ``detail.phase = "incomplete"``) and every later reconciliation, and the clean-up is tried
        again at every tick, before any order and at the end of the session
        (:meth:`stop`, up to ``kill_retry_rounds`` rounds with backoff). Idempotent.

        Parameters
        ----------
        reason : str
            Recorded in the audit log.
        flatten : bool, optional
            Override ``flatten_on_kill``.
        """
        if self.killed:
            return
        self.killed = True
        self.kill_flatten = bool(self.p.flatten_on_kill if flatten is None else flatten)
        self.kill_reason = reason
        self.audit.write(
            "kill_switch",
            self.venue.now(),
            reason=reason,
            flatten=self.kill_flatten,
            detail={"phase": "engaged"},
        )
        self._finish_kill()
        if self.stop_run is not None:
            self.stop_run()

    @property
    def kill_status(self) -> str:
        """One line: ``"not engaged"``, ``"complete: ..."`` or ``"NOT complete: <why>"``."""
        if not self.killed:
            return "not engaged"
        what = "no open orders, no positions" if self.kill_flatten else "no open orders"
        if self.kill_complete:
            return f"complete: the venue confirms {what}"
        return (
            f"NOT complete after {self.kill_rounds} attempt(s): {self.kill_pending}; "
            f"retrying until the venue confirms {what}"
        )

    def _finish_kill(self) -> bool:
        """One round of the kill's clean-up (cancel, flatten, confirm); True when the venue
        confirms it. Venue errors are caught: they leave the kill pending (audit log)."""
        if self.kill_complete:
            return True
        self.kill_rounds += 1
        now = self.venue.now()
        try:
            cancelled = self._call(self.venue.cancel_all_orders)
            for oid in cancelled:
                self.audit.write(
                    "cancel", now, order_id=oid, reason=f"kill switch: {self.kill_reason}"
                )
            for cid, order in list(self.venue_orders.items()):
                if order.is_open:
                    self._book_order(self._refresh(order), self._tags.get(cid, ""))
            if self.kill_flatten and [p for p in self._call(self.venue.positions) if p.quantity]:
                self._flatten(now)
            open_orders = self._call(self.venue.open_orders)
            held = [p for p in self._call(self.venue.positions) if p.quantity]
        except VenueError as exc:
            self.kill_transient = isinstance(exc, TransientVenueError)
            self.kill_pending = f"venue: {exc}"
        else:
            self.kill_transient = False
            left = []
            if open_orders:
                left.append(f"{len(open_orders)} open order(s) at the venue")
            if self.kill_flatten and held:
                left.append(f"{len(held)} position(s) at the venue ({held[0].symbol} ...)")
            self.kill_pending = "; ".join(left)
            self.kill_complete = not left
        if self.kill_complete:
            self.kill_pending = ""
        self.audit.write(
            "kill_switch",
            self.venue.now(),
            reason=self.kill_reason,
            flatten=self.kill_flatten,
            detail={
                "phase": "complete" if self.kill_complete else "incomplete",
                "attempt": self.kill_rounds,
                "status": self.kill_status,
            },
        )
        if not self.kill_transient:
            try:
                self.reconcile("kill switch")
            except VenueError as exc:  # the venue went away between the round and now
                self.kill_transient = isinstance(exc, TransientVenueError)
        return self.kill_complete

    def _flatten(self, now: pd.Timestamp) -> None:
        """Close every position at the venue (the kill switch's closing orders keep working)."""
        closing = self._call(self.venue.close_all_positions)
        for order in closing:
            self.venue_orders[order.client_order_id] = order
            self._tags[order.client_order_id] = "kill switch"
            self.audit.write(
                "order_submitted",
                now,
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                legs=legs_record((leg.contract, leg.ratio) for leg in order.legs),
                quantity=order.quantity,
                limit_price=order.limit_price,
                tag="kill switch flatten",
            )
            done = (
                order
                if order.is_terminal or not order.order_id
                else self._await(order, cancel=False)
            )
            if done.status == "rejected" or (done.filled_quantity == 0 and done.is_terminal):
                self.audit.write(
                    "rejection",
                    now,
                    client_order_id=done.client_order_id,
                    order_id=done.order_id,
                    reason=f"flatten: {done.reason or done.status}",
                )
            self._book_order(done, "kill switch")

    def _finish_kill_at_stop(self) -> None:
        """At the end of a session: retry a pending kill while the venue is unreachable (up to
        ``kill_retry_rounds`` rounds, waiting the retry policy's backoff between them); a venue
        that answers but still holds something gets one more round (waiting cannot help it)."""
        rounds = 0
        while not self.kill_complete and rounds < int(self.p.kill_retry_rounds):
            rounds += 1
            if self._finish_kill() or not self.kill_transient:
                break
            self._sleep(self.retry.delay(rounds))

    # -- reconciliation ---------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Any:
        return call_with_retries(fn, self.retry, sleep=self._sleep, on_retry=self._on_retry)

    def _on_retry(self, attempt: int, exc: TransientVenueError, wait: float) -> None:
        self.audit.write(
            "retry", self.venue.now(), attempt=attempt, reason=str(exc), wait_seconds=wait
        )

    def _kill_pending_text(self) -> str | None:
        if not self.killed or self.kill_complete:
            return None
        return self.kill_pending or "not confirmed by the venue"

    def reconcile(self, when: str) -> ReconcileReport:
        """Make the local book agree with the venue (positions, cash, open orders).

        The venue is authoritative: a leg it holds and the book does not is added at the venue's
        average price; a leg the book holds and the venue does not is removed (closed, expired or
        assigned at the venue); a different size takes the venue's. Every change is in the report
        and the audit log.

        Parameters
        ----------
        when : str
            Label (``start-up``, ``reconnect``, ``kill switch``, ``end``).

        Returns
        -------
        ReconcileReport
        """
        positions: list[VenuePosition] = self._call(self.venue.positions)
        account = self._call(self.venue.account)
        open_orders: list[VenueOrder] = self._call(self.venue.open_orders)
        local = {occ_symbol(c): p.quantity for c, p in self.option_positions.items()}
        local.update({s: p.quantity for s, p in self.underlying_positions.items()})
        for data, pos in self.positions.items():  # shares of backtrader orders (mirrored)
            if pos.size:
                local[data._name] = local.get(data._name, 0) + int(pos.size)
        diffs = diff_positions(local, positions)
        by_symbol = {occ_symbol(c): c for c in self.option_positions}
        for d in diffs:
            if d.contract is not None or d.symbol in by_symbol:
                contract = d.contract or by_symbol[d.symbol]
                if d.venue_quantity == 0:
                    self.option_positions.pop(contract, None)
                    continue
                pos = self.option_positions.get(contract)
                if pos is None:
                    price = d.venue_avg_price
                    self.option_positions[contract] = OptionPosition(
                        contract, d.venue_quantity, price, price, None
                    )
                else:
                    pos.quantity = d.venue_quantity
            else:
                if d.venue_quantity == 0:
                    self.underlying_positions.pop(d.symbol, None)
                    continue
                spos = self.underlying_positions.get(d.symbol)
                if spos is None:
                    price = d.venue_avg_price
                    self.underlying_positions[d.symbol] = UnderlyingPosition(
                        d.symbol, d.venue_quantity, price, price
                    )
                else:
                    spos.quantity = d.venue_quantity
        report = ReconcileReport(when, diffs, cash_before=float(self.cash))
        if self.p.adopt_venue_cash:
            self.cash = float(account.cash)
        report.cash_after = float(self.cash)
        for order in open_orders:
            report.open_orders.append(order.client_order_id)
            if order.client_order_id not in self.venue_orders:
                report.adopted_orders.append(order.client_order_id)
                self.venue_orders[order.client_order_id] = order
                self._mark_booked(order)  # fills before adoption are in the venue's positions
                self._tags.setdefault(order.client_order_id, "adopted")
        if self.killed:
            held = [p for p in positions if p.quantity]
            if not open_orders and (not self.kill_flatten or not held):
                if not self.kill_complete:
                    self.kill_complete, self.kill_pending = True, ""
            else:
                self.kill_complete = False
                left = [f"{len(open_orders)} open order(s)"] if open_orders else []
                if self.kill_flatten and held:
                    left.append(f"{len(held)} position(s)")
                self.kill_pending = " and ".join(left) + " still at the venue"
        report.kill_pending = self._kill_pending_text()
        self._refresh_value()
        self.reconciliations.append(report)
        self.audit.write(
            "reconcile",
            self.venue.now(),
            reason=when,
            detail={
                "clean": report.clean,
                "kill_pending": report.kill_pending,
                "summary": report.summary(),
                "position_diffs": [
                    {
                        "symbol": d.symbol,
                        "kind": d.kind,
                        "local": d.local_quantity,
                        "venue": d.venue_quantity,
                    }
                    for d in diffs
                ],
                "cash_before": report.cash_before,
                "cash_after": report.cash_after,
                "venue_equity": account.equity,
                "open_orders": report.open_orders,
                "adopted_orders": report.adopted_orders,
            },
        )
        return report

    # -- settlement -------------------------------------------------------------------------------
    def settle_due(
        self, until: dt.datetime | pd.Timestamp, *, advance: bool = False
    ) -> list[OptionSettlement]:
        """Settle legs due by ``until`` **and** by the venue clock (a live session cannot book a
        close that has not happened yet); a leg without a settlement price is left for the venue
        to settle and reconciliation to remove (listed in :attr:`pending_settlement`).

        Parameters
        ----------
        until : datetime or pandas.Timestamp
            Tz-aware, or naive America/New_York wall clock.
        advance : bool
            ``until`` is the caller's clock (a strategy on one bar per session, such as
            ``zero_dte_straddle``, saying its session is over): the venue clock is first brought
            to ``until`` (:meth:`VenueAdapter.sync`: the replay venue follows, live venues ignore
            it). Off by default, so that a strategy on intraday bars never moves a replay ahead.

        Returns
        -------
        list of OptionSettlement
        """
        if advance:
            self.venue.sync(_aware_et(until))
        limit = min(_aware_et(until), self.venue.now())
        due = [c for c in self.option_positions if _due(c) <= limit]
        due.sort(key=lambda c: (c.expiration, c.settlement != "AM", str(c)))
        done = []
        for contract in due:
            try:
                price, label = self.settlement_price(contract)
            except DataSourceError:
                if contract not in self.pending_settlement:
                    self.pending_settlement.add(contract)
                    self.audit.write(
                        "settlement",
                        self.venue.now(),
                        legs=legs_record([(contract, self.option_positions[contract].quantity)]),
                        reason="no settlement price locally: left to the venue, reconciled later",
                    )
                continue
            record = self._settle_leg(contract, price, _due(contract), label)
            self.pending_settlement.discard(contract)
            done.append(record)
            self.audit.write(
                "settlement",
                self.venue.now(),
                legs=legs_record([(contract, record.quantity)]),
                price=record.value_per_unit,
                detail={
                    "underlying_price": record.underlying_price,
                    "price_source": record.price_source,
                    "cash_flow": record.cash_flow,
                    "kind": record.kind,
                },
            )
        self._refresh_value()
        return done

    # -- shares (delta hedges): mirrored at the venue ---------------------------------------------
    def trade_underlying(  # type: ignore[override]
        self,
        symbol: str,
        quantity: int,
        price: float,
        time: dt.datetime | pd.Timestamp,
        *,
        commission: float | None = None,
        tag: str = "",
    ) -> StockFill:
        """:meth:`brokers.OptionsBroker.trade_underlying`, first booked at the venue
        (:meth:`VenueAdapter.trade_shares`, same price and commission) so that reconciliation
        finds the same shares and cash there.

        Raises
        ------
        OrderRejected
            The venue refused the share trade (the book is left unchanged).
        """
        fee = self.costs.stock_commission(int(quantity)) if commission is None else commission
        self._mirror_shares(symbol, int(quantity), price, time, fee, tag)
        return super().trade_underlying(symbol, quantity, price, time, commission=fee, tag=tag)

    def close_underlying(
        self,
        symbol: str,
        price: float,
        time: dt.datetime | pd.Timestamp,
        quantity: int | None = None,
        tag: str = "",
    ) -> StockFill:
        """:meth:`brokers.OptionsBroker.close_underlying`, first booked at the venue (as
        :meth:`trade_underlying`)."""
        pos = self.underlying_positions.get(symbol)
        if pos is not None:
            qty = -pos.quantity if quantity is None else int(quantity)
            self._mirror_shares(symbol, qty, price, time, self.costs.stock_commission(qty), tag)
        return super().close_underlying(symbol, price, time, quantity, tag)

    def notify(self, order: Any) -> None:
        """backtrader's order notification; an execution of a plain backtrader share order
        (``self.buy(data=...)`` of a strategy on bar feeds, filled by backtrader's own matching
        at the bar's open as in the backtest) is first mirrored at the venue
        (:meth:`VenueAdapter.trade_shares`, symbol = the data's name), increment by increment,
        and listed in :attr:`stock_fills` (``fills.csv``; tag ``bt``)."""
        if order.status in (order.Partial, order.Completed) and order.data is not None:
            size0, value0, comm0 = self._mirrored.get(order.ref, (0, 0.0, 0.0))
            size = int(order.executed.size)
            value = float(order.executed.size) * float(order.executed.price)
            comm = float(order.executed.comm)
            if size != size0:
                when = bt.num2date(order.executed.dt) if order.executed.dt else self.venue.now()
                qty, fee = size - size0, comm - comm0
                price = (value - value0) / qty
                self._mirror_shares(order.data._name, qty, price, when, fee, "bt order")
                self._mirrored[order.ref] = (size, value, comm)
                self.stock_fills.append(  # the record only: backtrader moved the cash
                    StockFill(
                        _naive_et(when), order.data._name, qty, price, fee, -qty * price - fee, "bt"
                    )
                )
        super().notify(order)

    def _mirror_shares(
        self,
        symbol: str,
        qty: int,
        price: float,
        time: dt.datetime | pd.Timestamp,
        fee: float,
        tag: str,
    ) -> None:
        when = _aware_et(time)
        self.venue.sync(when)  # a strategy on its own bars drives the venue clock here
        try:
            self._call(
                lambda: self.venue.trade_shares(symbol, qty, price, when, commission=fee, tag=tag)
            )
        except VenueRejected as exc:
            self.audit.write("rejection", when, reason=str(exc), tag=tag)
            raise OrderRejected(str(exc)) from None
        self.audit.write(
            "fill",
            when,
            detail={
                "kind": "shares",
                "symbol": symbol,
                "quantity": qty,
                "price": price,
                "commission": fee,
            },
            tag=tag,
        )

    # -- orders -----------------------------------------------------------------------------------
    def _next_client_id(
        self,
        time: dt.datetime | pd.Timestamp,
        legs: Sequence[tuple[OptionContract, int]],
        quantity: int,
        tag: str,
    ) -> str:
        """The deterministic client order id of this decision (:func:`client_order_id` of the
        session, the strategy and :func:`decision_key`); identical decisions at one time are
        numbered."""
        base = decision_key(_aware_et(time), legs, quantity, tag, 0)
        self._decisions[base] = self._decisions.get(base, 0) + 1
        key = decision_key(_aware_et(time), legs, quantity, tag, self._decisions[base])
        return client_order_id(self.session, str(self.p.strategy_name or ""), key)

    def _mark_booked(self, order: VenueOrder) -> None:
        """Count ``order``'s fills so far as booked (they reached the book through
        reconciliation, not through this process)."""
        booked = self._booked.setdefault(order.order_id, {})
        for lf in order.fills:
            booked[lf.contract] = (lf.quantity, lf.price * lf.quantity)

    def _pre_trade(
        self,
        legs: Sequence[tuple[OptionContract, int]],
        time: dt.datetime | pd.Timestamp,
        tag: str,
    ) -> None:
        """Safety first: the kill switch, then the venue clock brought to the order (and a
        reconciliation after a reconnect), then the pre-trade limits
        (:func:`brokers.live.safety.pre_trade_check`), before the margin check of
        :meth:`OptionsBroker.execute_snapshot` and again in :meth:`_fill`.

        Raises
        ------
        OrderRejected
            Kill switch engaged or a pre-trade limit broken (reason in the audit log).
        """
        if self.check_kill_switch():
            raise self._reject("kill switch engaged: no new orders", time, legs, tag)
        self.venue.sync(_aware_et(time))
        if self.venue.consume_reconnect():
            self.reconcile("reconnect")
        positions = {c: p.quantity for c, p in self.option_positions.items()}
        reason = pre_trade_check(
            legs, positions=positions, underlying_prices=self.underlying_prices, limits=self.limits
        )
        if reason is not None:
            self.audit.write(
                "rejection", self.venue.now(), legs=legs_record(legs), reason=reason, tag=tag
            )
            raise self._reject(reason, time, legs, tag)

    def _fill(
        self,
        planned: Sequence[tuple[OptionContract, int, OptionQuote]],
        time: dt.datetime | pd.Timestamp,
        tag: str,
    ) -> list[OptionFill]:
        """The venue path of :meth:`execute_snapshot` (module docstring).

        Raises
        ------
        OrderRejected
            Kill switch engaged, pre-trade limit, venue rejection, or nothing filled in time.
        """
        legs = [(c, q) for c, q, _ in planned]
        self._pre_trade(legs, time, tag)  # again: a reconnect may have changed the book
        positions = {c: p.quantity for c, p in self.option_positions.items()}
        units = reduce(gcd, (abs(q) for _, q in legs))
        prices = [self.costs.fill_price(quote, q, c.root) for c, q, quote in planned]
        net = sum((q // units) * p for (_, q, _), p in zip(planned, prices, strict=True))
        request = OrderRequest(
            client_order_id=self._next_client_id(
                time, [(c, q // units) for c, q in legs], units, tag
            ),
            legs=tuple(OrderLeg(c, q // units, _closes(c, q, positions)) for c, q in legs),
            quantity=units,
            limit_price=float(net),
            tag=tag,
            reduce_only=reduces_only(legs, positions),
        )
        self._quotes[request.client_order_id] = {c: quote for c, _, quote in planned}
        try:
            order = self.submit(request)
        except VenueError as exc:
            self.audit.write(
                "rejection",
                self.venue.now(),
                client_order_id=request.client_order_id,
                legs=legs_record(legs),
                reason=f"venue: {exc}",
                tag=tag,
            )
            raise self._reject(f"venue: {exc}", time, legs, tag) from exc
        order = self._await(order)
        fills = self._book_order(order, tag)
        if not fills:
            why = order.reason or f"not filled at limit {request.limit_price:+.4f} ({order.status})"
            self.audit.write(
                "rejection",
                self.venue.now(),
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                legs=legs_record(legs),
                reason=f"venue: {why}",
                tag=tag,
            )
            raise self._reject(f"venue: {why}", time, legs, tag)
        if self.venue.consume_reconnect():
            self.reconcile("reconnect")
        return fills

    def place_order(
        self,
        legs: Sequence[tuple[OptionContract, int]],
        quantity: int,
        limit_price: float,
        tag: str = "",
    ) -> VenueOrder:
        """Send a working limit order without waiting for it (it may rest at the venue).

        Fills are booked on later ticks (:meth:`on_tick`); the kill switch cancels it.

        Parameters
        ----------
        legs : sequence of (OptionContract, int)
            Contracts and signed coprime ratios per unit (> 0 buy).
        quantity : int
            Units, >= 1.
        limit_price : float
            Signed net limit per unit (> 0 debit, < 0 credit), index points / dollars per share.
        tag : str
            Label.

        Returns
        -------
        VenueOrder

        Raises
        ------
        OrderRejected
            Kill switch engaged or a pre-trade limit broken (audit log has the reason).
        """
        when = self.venue.now()
        contracts = [(c, r * quantity) for c, r in legs]
        if self.check_kill_switch():
            raise self._reject("kill switch engaged: no new orders", when, contracts, tag)
        positions = {c: p.quantity for c, p in self.option_positions.items()}
        reason = pre_trade_check(
            contracts,
            positions=positions,
            underlying_prices=self.underlying_prices,
            limits=self.limits,
        )
        if reason is not None:
            self.audit.write("rejection", when, legs=legs_record(contracts), reason=reason, tag=tag)
            raise self._reject(reason, when, contracts, tag)
        request = OrderRequest(
            client_order_id=self._next_client_id(when, legs, quantity, tag),
            legs=tuple(OrderLeg(c, r, _closes(c, r * quantity, positions)) for c, r in legs),
            quantity=quantity,
            limit_price=float(limit_price),
            tag=tag,
            reduce_only=reduces_only(contracts, positions),
        )
        order = self.submit(request)
        self._book_order(order, tag)
        return order

    def submit(self, request: OrderRequest, check: bool = True) -> VenueOrder:  # type: ignore[override]
        """Send ``request`` exactly once, whatever the network does.

        A plain backtrader order (``self.buy(data=...)`` of a strategy on bar feeds) goes to
        backtrader's own ``BackBroker.submit`` (matched at the next bar as in the backtest; its
        executions are mirrored at the venue by :meth:`notify`).

        Transient errors are retried with backoff; before re-sending after an error that may have
        reached the venue (timeout, dropped connection, 5xx) the order is looked up by its client
        order id, and a ``DuplicateClientOrderId`` answer is resolved the same way. The venue's
        uniqueness of client order ids makes a doubled order impossible even if the lookup races
        the venue.

        Returns
        -------
        VenueOrder

        Raises
        ------
        TransientVenueError
            Still failing after ``retry.max_attempts`` attempts and the venue does not know the
            order.
        VenueRejected
            The venue refused it.
        DecisionAlreadySent
            An earlier run of this session (before a restart) already sent this decision: it is
            not sent again (its fills reached the book through the start-up reconciliation).
        """
        if isinstance(request, bt.Order):
            return super().submit(request, check)
        cid = request.client_order_id
        now = self.venue.now()
        if cid in self.venue_orders:  # adopted at start-up: sent by this session before a restart
            known = self.venue_orders[cid]
            self._already_sent(known, "open order adopted at start-up")
        self.audit.write(
            "order_submitted",
            now,
            client_order_id=cid,
            legs=legs_record((leg.contract, leg.ratio) for leg in request.legs),
            quantity=request.quantity,
            limit_price=request.limit_price,
            tag=request.tag,
        )
        self._tags[cid] = request.tag
        attempt = 1
        tried = False  # an earlier attempt of *this* call may have reached the venue
        order: VenueOrder | None = None
        while order is None:
            try:
                order = self.venue.submit_order(request)
            except DuplicateClientOrderId:
                order = self._call(lambda: self.venue.get_order_by_client_id(cid))
                if order is None:
                    raise VenueRejected(
                        f"{cid}: venue reports a duplicate client order id but has no such order"
                    ) from None
                if not tried:  # not our retry: an earlier run of the session sent it
                    self._already_sent(order, "the venue already has this client order id")
                self.audit.write(
                    "order_status",
                    self.venue.now(),
                    client_order_id=cid,
                    order_id=order.order_id,
                    reason="duplicate client order id: the earlier attempt reached the venue",
                    status=order.status,
                )
            except TransientVenueError as exc:
                tried = True
                found = None
                if exc.maybe_applied or attempt >= self.retry.max_attempts:
                    found = self._lookup_after_error(cid)
                if found is not None:
                    order = found
                    self.audit.write(
                        "order_status",
                        self.venue.now(),
                        client_order_id=cid,
                        order_id=found.order_id,
                        reason=f"found by client order id after: {exc}",
                        status=found.status,
                    )
                    break
                if attempt >= self.retry.max_attempts:
                    raise
                wait = self.retry.delay(attempt, exc.retry_after)
                self._on_retry(attempt, exc, wait)
                self._sleep(wait)
                attempt += 1
        self.venue_orders[cid] = order
        self.audit.write(
            "order_accepted",
            self.venue.now(),
            client_order_id=cid,
            order_id=order.order_id,
            status=order.status,
        )
        self.order_log.append(
            {
                "time": self.venue.now(),
                "client_order_id": cid,
                "legs": ", ".join(f"{leg.ratio:+d} {leg.contract}" for leg in request.legs),
                "quantity": request.quantity,
                "limit": request.limit_price,
                "status": order.status,
                "tag": request.tag,
            }
        )
        return order

    def _already_sent(self, order: VenueOrder, why: str) -> None:
        """Refuse to send again a decision an earlier run of this session sent (see
        :meth:`submit`): track the order, count its fills as booked, say so, raise."""
        cid = order.client_order_id
        self.venue_orders[cid] = order
        self._tags.setdefault(cid, "earlier run")
        self._mark_booked(order)
        reason = (
            f"decision already sent by an earlier run of session {self.session} ({cid}, "
            f"{order.status}; {why}): not sent again"
        )
        self.audit.write(
            "order_status",
            self.venue.now(),
            client_order_id=cid,
            order_id=order.order_id,
            reason=reason,
            status=order.status,
        )
        raise DecisionAlreadySent(reason, status=422)

    def _lookup_after_error(self, cid: str) -> VenueOrder | None:
        try:
            return self._call(lambda: self.venue.get_order_by_client_id(cid))
        except TransientVenueError:
            return None

    def _refresh(self, order: VenueOrder) -> VenueOrder:
        fresh = self._call(lambda: self.venue.get_order(order.order_id))
        self.venue_orders[fresh.client_order_id] = fresh
        for row in self.order_log:
            if row["client_order_id"] == fresh.client_order_id:
                row["status"] = fresh.status
        return fresh

    def _await(self, order: VenueOrder, *, cancel: bool = True) -> VenueOrder:
        """Poll ``order`` until done or ``fill_timeout``; cancel what is left (unless ``cancel``
        is False: the kill switch's closing orders keep working); final state."""
        deadline = time.monotonic() + float(self.p.fill_timeout)
        while order.is_open and order.filled_quantity < order.quantity:
            if time.monotonic() >= deadline:
                break
            self._sleep(float(self.p.poll_interval))
            order = self._refresh(order)
        if order.is_open and cancel:
            self._call(lambda: self.venue.cancel_order(order.order_id))
            self.audit.write(
                "cancel",
                self.venue.now(),
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                reason=f"not filled within {self.p.fill_timeout:g} s",
            )
            order = self._refresh(order)
        return order

    def _book_order(self, order: VenueOrder, tag: str) -> list[OptionFill]:
        """Book the fills of ``order`` not booked yet (venue fills are cumulative per leg)."""
        self.venue_orders[order.client_order_id] = order
        booked = self._booked.setdefault(order.order_id, {})
        quotes = self._quotes.get(order.client_order_id, {})
        out = []
        for lf in order.fills:
            q0, n0 = booked.get(lf.contract, (0, 0.0))
            dq = lf.quantity - q0
            if dq == 0:
                continue
            price = (lf.price * lf.quantity - n0) / dq
            booked[lf.contract] = (lf.quantity, lf.price * lf.quantity)
            quote = quotes.get(lf.contract)
            commission = self.costs.commission(dq)
            cash_flow = -dq * price * lf.contract.multiplier - commission
            self.cash += cash_flow
            stamp = _naive_et(lf.time)
            mark = quote.mid if quote is not None else price
            self._book(lf.contract, dq, price, mark, stamp)
            fill = OptionFill(
                stamp,
                lf.contract,
                dq,
                price,
                math.nan if quote is None else quote.bid,
                math.nan if quote is None else quote.ask,
                commission,
                cash_flow,
                tag,
            )
            self.option_fills.append(fill)
            out.append(fill)
            self.audit.write(
                "fill",
                lf.time,
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                legs=legs_record([(lf.contract, dq)]),
                quantity=dq,
                price=price,
                detail={"commission": commission, "cash_flow": cash_flow},
                tag=tag,
            )
        if out:
            self._refresh_value()
        return out

    # -- reports ----------------------------------------------------------------------------------
    def pnl(self) -> float:
        """Dollars: account value now minus the value after the start-up reconciliation."""
        return float(self.getvalue()) - self.start_value

    def orders_frame(self) -> pd.DataFrame:
        """The session's orders (last known state): client id, venue id, status, legs, units,
        filled units, limit, tag."""
        rows = [
            {
                "client_order_id": o.client_order_id,
                "order_id": o.order_id,
                "status": o.status,
                "legs": ", ".join(f"{leg.ratio:+d} {leg.contract}" for leg in o.legs),
                "quantity": o.quantity,
                "filled_quantity": o.filled_quantity,
                "limit_price": o.limit_price,
                "tag": self._tags.get(cid, ""),
            }
            for cid, o in self.venue_orders.items()
        ]
        return pd.DataFrame(
            rows,
            columns=[
                "client_order_id",
                "order_id",
                "status",
                "legs",
                "quantity",
                "filled_quantity",
                "limit_price",
                "tag",
            ],
        )


def _closes(contract: OptionContract, qty: int, positions: Mapping[OptionContract, int]) -> bool:
    held = positions.get(contract, 0)
    return held != 0 and (held > 0) != (qty > 0) and abs(qty) <= abs(held)


__all__ = ["DecisionAlreadySent", "KillSwitchEngaged", "LiveOptionsBroker"]
