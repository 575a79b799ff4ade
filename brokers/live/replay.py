"""The local replay venue: a simulated exchange with its own clock that replays recorded quotes.

:class:`ReplayVenue` walks through the snapshot times stored in a chain store (one a day for the
2019 vendor chains, one a minute for the Lean minute quotes) and answers the venue interface of
:class:`brokers.live.adapter.VenueAdapter` against the snapshot of the moment:

* **Clock.** ``tick()`` moves to the next recorded snapshot time, waiting ``delta / speed`` wall
  seconds (``speed = 60``: one recorded minute per wall second; ``speed = None``: no waiting).
  ``sync(t)`` moves forward to ``t`` without waiting (a strategy on its own historical feed).
* **Fills like the backtest.** An order's legs are priced with the same
  :class:`brokers.costs.OptionCostModel` as :class:`brokers.OptionsBroker` (mid +- slippage
  fraction x spread, commission per contract) against the current snapshot's bid/ask. A
  marketable order (net price at or below its limit) fills completely at those prices, through an
  internal ``OptionsBroker`` book (so the cash arithmetic is the backtest's own); otherwise it
  rests and is re-checked on every tick until filled, cancelled or expired at the session close.
* **Settlement.** On every tick, legs whose settlement time has passed settle through the book's
  ``settle_due`` with the settlement source (SPX AM on the open, SPXW PM and SPY on the close).
* **Account.** Cash, equity (book value marked at the snapshot mids) and positions of that book.

Nothing here reads the wall clock except for waiting between ticks, so a replay is deterministic.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from brokers.costs import OptionCostModel
from brokers.live.adapter import (
    AccountState,
    Bar,
    DuplicateClientOrderId,
    LegFill,
    OrderLeg,
    OrderRequest,
    VenueAdapter,
    VenueOrder,
    VenuePosition,
    VenueRejected,
    occ_symbol,
)
from brokers.options_broker import OptionsBroker, OrderRejected
from data_feeds.chains import ChainSnapshot, settlement_time
from data_feeds.contracts import OptionContract, OptionQuote
from data_feeds.errors import DataSourceError
from data_feeds.snapshot_feed import ListedSnapshots, RecordedSnapshots, et_timestamp


class ReplayVenue(VenueAdapter):
    """A simulated venue replaying recorded chain snapshots (see the module docstring).

    Parameters
    ----------
    source : ChainStore or SnapshotSource
        Recorded snapshots (read only).
    underlying : str
        Underlying whose chain is replayed (``SPX``, ``SPY``).
    roots : sequence of str, optional
        Option roots replayed (all by default).
    start, end : date-like or timestamp, optional
        Replay window (:func:`data_feeds.snapshot_feed.replay_schedule`).
    speed : float, optional
        Recorded seconds per wall second between ticks; None or 0: no waiting.
    costs : OptionCostModel, optional
        Fill prices and commissions (default: the backtest default, fills at the touch, $1 per
        contract).
    settlement_prices : mapping str -> pandas.DataFrame, optional
        Daily ``open``/``close`` per underlying symbol for settlement
        (:meth:`brokers.OptionsBroker.set_settlement_prices`).
    cash : float
        Starting cash of the venue account, dollars.
    underlying_bars : pandas.DataFrame, optional
        Minute bars of the underlying stamped at the bar's end
        (:func:`data_feeds.minute_bars.load_minute_bars` with ``stamp="end"``), for snapshots
        without an underlying price and for :meth:`latest_bar`.
    rate : float
        Continuously compounded rate (decimal) put on the snapshots.
    sleep : callable
        Waits the given wall seconds (injected in tests).
    recorded : RecordedSnapshots or ListedSnapshots, optional
        Read snapshots through this (e.g. shared with a backtest, ``cache=True``, or exactly a
        backtest feed's snapshots) instead of a new one; ``start``/``end`` still bound the
        schedule.

    Raises
    ------
    DataSourceError
        No snapshot in the window.
    """

    name = "replay"

    def __init__(
        self,
        source: Any,
        underlying: str,
        *,
        roots: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        speed: float | None = None,
        costs: OptionCostModel | None = None,
        settlement_prices: Mapping[str, pd.DataFrame] | None = None,
        cash: float = 100_000.0,
        underlying_bars: pd.DataFrame | None = None,
        rate: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        recorded: RecordedSnapshots | ListedSnapshots | None = None,
    ) -> None:
        if speed is not None and (math.isnan(speed) or speed < 0):
            raise ValueError(f"speed must be >= 0 or None, got {speed!r}")
        self.underlying = underlying.strip().upper()
        if recorded is None:
            recorded = RecordedSnapshots(
                source,
                self.underlying,
                roots=roots,
                start=start,
                end=end,
                rate=rate,
                underlying_bars=underlying_bars,
            )
            self.schedule = recorded.times
        else:
            lo = None if start is None else et_timestamp(start)
            hi = None if end is None else et_timestamp(end)
            if hi is not None and hi == hi.normalize():
                hi = hi + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
            self.schedule = [
                t for t in recorded.times if (lo is None or t >= lo) and (hi is None or t <= hi)
            ]
            if not self.schedule:
                raise DataSourceError(f"no recorded {self.underlying} snapshot in {lo}..{hi}")
        self.recorded = recorded
        self.speed = speed
        self.costs = costs or OptionCostModel()
        self.bars = underlying_bars
        self._sleep = sleep
        self.book = OptionsBroker(
            commission_per_contract=self.costs.commission_per_contract,
            slippage_spread_fraction=self.costs.slippage_spread_fraction,
            slippage_by_root=self.costs.slippage_by_root,
            settlement_fee_per_contract=self.costs.settlement_fee_per_contract,
            stock_commission_per_share=self.costs.stock_commission_per_share,
            margin_check=False,
            settlement_prices=dict(settlement_prices or {}),
        )
        self.book.setcash(float(cash))
        self.book.start()
        self._idx = -1
        self._now: pd.Timestamp | None = None
        self._snap: ChainSnapshot | None = None
        self.orders: dict[str, VenueOrder] = {}
        self._by_client: dict[str, str] = {}
        self.ticks = 0
        self.waited: list[float] = []
        self.finished = False

    # -- clock ------------------------------------------------------------------------------------
    def now(self) -> pd.Timestamp:
        """The current snapshot time; before the first tick, one microsecond before it."""
        if self._now is None:
            return self.schedule[0] - pd.Timedelta(microseconds=1)
        return self._now

    def tick(self) -> bool:
        """Advance to the next recorded snapshot (waiting ``delta / speed`` wall seconds), settle
        due legs, work resting orders. False after the last one (the venue then settles what is
        due by the last session's close)."""
        return self._advance(wait=True)

    def next_time(self) -> pd.Timestamp | None:
        """The next recorded snapshot time of the schedule (None after the last one)."""
        if self._idx + 1 >= len(self.schedule):
            return None
        return self.schedule[self._idx + 1]

    def sync(self, time: pd.Timestamp | dt.datetime) -> None:
        """Move forward (without waiting) through every recorded snapshot at or before ``time``,
        then set the clock to ``time`` (quotes stay those of the last snapshot) and settle what is
        due by then: the venue follows a strategy that runs on its own historical feed."""
        when = et_timestamp(time)
        while self._idx + 1 < len(self.schedule) and self.schedule[self._idx + 1] <= when:
            self._advance(wait=False)
        if self._snap is not None and self._now is not None and when > self._now:
            self._now = when
            self._on_time()

    def _advance(self, *, wait: bool) -> bool:
        while True:
            if self._idx + 1 >= len(self.schedule):
                self._finish()
                return False
            previous = self._now
            self._idx += 1
            when = self.schedule[self._idx]
            snap = self.recorded.snapshot_at(when)
            if snap is None:  # these roots have no quote at this time: not a tick
                continue
            if wait and self.speed and previous is not None and math.isfinite(self.speed):
                pause = (when - previous).total_seconds() / self.speed
                self.waited.append(pause)
                self._sleep(pause)
            self._now, self._snap = when, snap
            self.ticks += 1
            self._on_time()
            return True

    def _on_time(self) -> None:
        assert self._snap is not None and self._now is not None
        self.book.settle_due(self._now)
        if self._now == self._snap.quote_time:
            self.book.mark_to_snapshot(self._snap)
        for order in list(self.orders.values()):
            if not order.is_open:
                continue
            if self._past_close(order):
                order.status, order.reason = "expired", "day order expired at the session close"
                continue
            self._try_fill(order)

    def _past_close(self, order: VenueOrder) -> bool:
        assert self._now is not None and order.submitted_at is not None
        close = settlement_time(order.submitted_at.date(), "PM")
        return self._now >= close

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        last = self.schedule[-1]
        close = settlement_time(last.date(), "PM")
        self._now = max(close, self._now or close)
        for order in self.orders.values():
            if order.is_open:
                order.status, order.reason = "expired", "replay ended"
        self.book.settle_due(self._now)

    # -- market data ------------------------------------------------------------------------------
    def _current(self) -> ChainSnapshot:
        if self._snap is None:
            raise VenueRejected("the replay venue has no quotes yet: call tick() first")
        return self._snap

    def chain_snapshot(self, underlying: str, roots: Sequence[str] | None = None) -> ChainSnapshot:
        """The current recorded snapshot (restricted to ``roots``).

        Raises
        ------
        VenueRejected
            Another underlying, or no tick yet.
        """
        if underlying.strip().upper() != self.underlying:
            raise VenueRejected(f"the replay venue replays {self.underlying}, not {underlying}")
        snap = self._current()
        if roots is None:
            return snap
        keep = snap.quotes["root"].isin(list(roots)).to_numpy()
        if keep.all():
            return snap
        return ChainSnapshot(
            snap.underlying,
            snap.quote_time,
            snap.underlying_price,
            snap.quotes[keep].reset_index(drop=True),
            rate=snap.rate,
            source=snap.source,
        )

    def latest_bar(self, symbol: str) -> Bar | None:
        """The last minute bar closed at or before now (``underlying_bars``), else the snapshot's
        underlying price as a one-print bar; None when neither exists."""
        if symbol.strip().upper() != self.underlying or self._now is None:
            return None
        if self.bars is not None:
            pos = self.bars.index.searchsorted(self._now, side="right") - 1
            if pos >= 0:
                row = self.bars.iloc[pos]
                return Bar(
                    self.bars.index[pos],
                    float(row["open"]),
                    float(row["high"]),
                    float(row["low"]),
                    float(row["close"]),
                    float(row["volume"]),
                )
        price = self._current().underlying_price
        if not math.isfinite(price):
            return None
        return Bar(self._now, price, price, price, price, 0.0)

    # -- account ----------------------------------------------------------------------------------
    def account(self) -> AccountState:
        """Cash and equity of the venue book (equity = cash + positions at the snapshot mids);
        buying power = equity - margin requirement (equity when the requirement is unknown)."""
        equity = float(self.book.getvalue())
        try:
            requirement = self.book.margin_report().requirement
        except ValueError:
            requirement = 0.0
        return AccountState(float(self.book.cash), equity, equity - requirement)

    def positions(self) -> list[VenuePosition]:
        """Option legs (OCC symbols) and shares of the venue book."""
        out = [
            VenuePosition(occ_symbol(c), p.quantity, p.avg_price, c)
            for c, p in self.book.option_positions.items()
        ]
        out += [
            VenuePosition(s, p.quantity, p.avg_price, None)
            for s, p in self.book.underlying_positions.items()
        ]
        return sorted(out, key=lambda p: p.symbol)

    # -- orders -----------------------------------------------------------------------------------
    def submit_order(self, request: OrderRequest) -> VenueOrder:
        """Accept an order and fill it now if it is marketable (see the module docstring).

        Raises
        ------
        DuplicateClientOrderId
            The client order id was used before.
        VenueRejected
            No tick yet.
        """
        if request.client_order_id in self._by_client:
            raise DuplicateClientOrderId(
                f"client_order_id {request.client_order_id} already used", status=422
            )
        self._current()
        order = VenueOrder(
            order_id=f"replay-{len(self.orders) + 1:06d}",
            client_order_id=request.client_order_id,
            status="new",
            legs=request.legs,
            quantity=request.quantity,
            limit_price=request.limit_price,
            submitted_at=self.now(),
        )
        self.orders[order.order_id] = order
        self._by_client[order.client_order_id] = order.order_id
        self._try_fill(order)
        return self._copy(order)

    def _try_fill(self, order: VenueOrder) -> None:
        """Fill the open remainder of ``order`` at the current snapshot if marketable."""
        snap = self._current()
        remaining = order.quantity - order.filled_quantity
        legs = [(leg.contract, leg.ratio * remaining) for leg in order.legs]
        quotes: dict[OptionContract, OptionQuote] = {}
        for contract, qty in legs:
            if snap.quote_time >= settlement_time(contract.expiration, contract.settlement or "PM"):
                order.status = "rejected"
                order.reason = f"{contract}: already settled"
                return
            if not snap.has(contract):
                return  # not quoted now: the order rests
            row = snap.row(contract)
            bid, ask = float(row["bid"]), float(row["ask"])
            if not (math.isfinite(bid) and math.isfinite(ask)) or bid < 0 or bid > ask:
                return
            if (qty < 0 and bid <= 0) or (qty > 0 and ask <= 0):
                return  # nobody to trade with on that side now
            quotes[contract] = OptionQuote(bid, ask)
        prices = [self.costs.fill_price(quotes[c], q, c.root) for c, q in legs]
        net = sum(leg.ratio * p for leg, p in zip(order.legs, prices, strict=True))
        if order.limit_price is not None and net > order.limit_price + 1e-9:
            return
        try:
            fills = self.book.execute_snapshot(
                [(leg.contract, leg.ratio) for leg in order.legs],
                remaining,
                snap,
                tag=order.client_order_id,
            )
        except OrderRejected as exc:  # pragma: no cover - validated above
            order.status, order.reason = "rejected", exc.reason
            return
        order.fills.extend(LegFill(f.contract, f.quantity, f.price, snap.quote_time) for f in fills)
        order.filled_quantity = order.quantity
        order.status = "filled"

    def trade_shares(
        self,
        symbol: str,
        quantity: int,
        price: float,
        time: pd.Timestamp | dt.datetime,
        *,
        commission: float,
        tag: str = "",
    ) -> None:
        """Book a share trade at the caller's price and commission in the venue book
        (:meth:`brokers.OptionsBroker.trade_underlying`: the backtest's own arithmetic; the
        backtest has no spread model for shares either, the strategy prices its hedge).

        Any symbol is accepted (the shares of a pair strategy's two legs as well as the chain's
        underlying): the venue takes the strategy's price, it has no share quotes of its own.

        Raises
        ------
        VenueRejected
            A quantity/price the book refuses.
        """
        try:
            self.book.trade_underlying(
                symbol, quantity, price, et_timestamp(time), commission=commission, tag=tag
            )
        except ValueError as exc:
            raise VenueRejected(str(exc)) from None

    @staticmethod
    def _copy(order: VenueOrder) -> VenueOrder:
        return replace(order, fills=list(order.fills))

    def get_order(self, order_id: str) -> VenueOrder:
        """The order with this venue id.

        Raises
        ------
        VenueRejected
            Unknown id (status 404).
        """
        if order_id not in self.orders:
            raise VenueRejected(f"order {order_id} not found", status=404)
        return self._copy(self.orders[order_id])

    def get_order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        """The order with this client order id, or None."""
        oid = self._by_client.get(client_order_id)
        return None if oid is None else self._copy(self.orders[oid])

    def open_orders(self) -> list[VenueOrder]:
        """Orders that can still fill, oldest first."""
        return [self._copy(o) for o in self.orders.values() if o.is_open]

    def cancel_order(self, order_id: str) -> None:
        """Cancel an open order (nothing happens to a finished one)."""
        order = self.orders.get(order_id)
        if order is not None and order.is_open:
            order.status, order.reason = "canceled", "cancel requested"

    def cancel_all_orders(self) -> list[str]:
        """Cancel every open order; their ids."""
        ids = [o.order_id for o in self.orders.values() if o.is_open]
        for oid in ids:
            self.cancel_order(oid)
        return ids

    def close_all_positions(self) -> list[VenueOrder]:
        """Close every option leg at the current snapshot at the cost model's price (market-like:
        no limit) and every share position at the underlying price.

        A long leg nobody bids for (bid 0) or a leg not quoted now cannot be closed: its order is
        ``rejected`` with the reason and the leg stays (it is reported, never hidden).
        """
        snap = self._current()
        out = []
        for contract, pos in list(self.book.option_positions.items()):
            qty = -pos.quantity
            order = VenueOrder(
                order_id=f"replay-{len(self.orders) + 1:06d}",
                client_order_id=f"flatten-{len(self.orders) + 1:06d}",
                status="new",
                legs=(OrderLeg(contract, 1 if qty > 0 else -1),),
                quantity=abs(qty),
                limit_price=None,
                submitted_at=self.now(),
            )
            self.orders[order.order_id] = order
            self._by_client[order.client_order_id] = order.order_id
            if not snap.has(contract):
                order.status, order.reason = "rejected", f"{contract}: not quoted now"
            else:
                row = snap.row(contract)
                if qty < 0 and not float(row["bid"]) > 0:
                    order.status = "rejected"
                    order.reason = f"{contract}: bid is 0, nobody pays for it"
                else:
                    self._try_fill(order)
                    if order.is_open:
                        order.status, order.reason = "rejected", f"{contract}: no valid quote now"
            out.append(self._copy(order))
        for symbol in list(self.book.underlying_positions):
            price = snap.underlying_price if symbol == self.underlying else math.nan
            if math.isfinite(price):
                self.book.close_underlying(symbol, price, snap.quote_time, tag="flatten")
        return out


__all__ = ["ReplayVenue"]
