"""A local fake of Interactive Brokers' TWS / IB Gateway on 127.0.0.1: enough of the TWS API socket
protocol for ``ib_async`` to run unmodified against it, with recorded option quotes, its own
clock, its own book, and fault injection.

Protocol (what a real TWS speaks at server version 157, the lowest ``ib_async`` 2.x accepts):
every message is a 4-byte big-endian length followed by NUL-terminated text fields. The client
opens with ``API\\0`` + ``v157..178``; the server answers its version and a time; the client
sends ``startApi`` (71) and waits for ``nextValidId`` (9) and ``managedAccounts`` (15). Field
layouts below follow ``ib_async.decoder`` (incoming) and ``ib_async.client`` (outgoing) message
by message; a field the fake gets wrong makes the decoder log "Error handling fields", which the
tests check for.

Requests answered: ``startApi`` 71, ``reqPositions`` 61, ``reqOpenOrders`` 5,
``reqCompletedOrders`` 99, ``reqAccountUpdates`` 6, ``reqAccountUpdatesMulti`` 76,
``reqExecutions`` 7, ``reqContractDetails`` 9, ``reqSecDefOptParams`` 78, ``reqMarketDataType`` 59,
``reqMktData`` 1 (snapshots), ``reqCurrentTime`` 49, ``reqIds`` 8, ``placeOrder`` 3,
``cancelOrder`` 4, ``reqGlobalCancel`` 58. Others are recorded and ignored.

Market data: ``snapshots`` (recorded :class:`data_feeds.chains.ChainSnapshot`), the latest one at
or before the fake's clock on the clock's date. Fills: a BAG (or single option) limit order
fills when its limit reaches the net touch (ask for a bought leg, bid for a sold one), at the
touch per leg, ``commission`` dollars per contract per leg. Settlement: when the clock passes a
leg's settlement time (AM: the session open; PM: the close, 13:00 on a half day) the fake pays
its intrinsic value at ``settlement_prices`` and removes the position, as IB does overnight.

Faults (``FakeTWS.faults``, each consumed once by the first matching event):

``reject``           the next order is rejected (error 201, status Inactive -> Cancelled)
``partial``          the next order fills one combo unit now, the rest at the next clock step
``drop_after_order`` the next order is recorded (and filled), then the connection is closed
``pacing``           the next market-data request gets error 100 (pacing violation), no data
``farm``             error 2104/2106/2158 farm messages are sent after the next request
Also ``FakeTWS.delayed_only``: market data comes as delayed ticks (66/67) after error 10167.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import socket
import socketserver
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot, settlement_time
from data_feeds.contracts import OptionContract

SERVER_VERSION = 157
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INT = 2**31 - 1
INDEX_CON_ID = {"SPX": 416904, "SPY": 756733}
PAPER_ACCOUNT = "DU1234567"


def _frame(*fields: Any) -> bytes:
    text = "".join(f"{_text(f)}\0" for f in fields)
    raw = text.encode()
    return struct.pack(">I", len(raw)) + raw


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


@dataclass
class FakeOrder:
    """An order at the fake: its contract legs ``(con_id, signed ratio)``, quantity, limit."""

    order_id: int
    client_id: int
    perm_id: int
    symbol: str
    sec_type: str
    con_id: int
    legs: list[tuple[int, int]]
    action: str
    quantity: int
    order_type: str
    limit: float
    order_ref: str
    tif: str
    status: str = "PreSubmitted"
    filled: int = 0
    fills: list[tuple[int, int, float]] = field(default_factory=list)  # (con_id, signed, price)
    pending_rest: int = 0

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("PreSubmitted", "Submitted")


@dataclass
class FakeTWS:
    """State of the fake TWS (see the module docstring).

    Parameters
    ----------
    snapshots : sequence of ChainSnapshot
        Recorded chains, served as of the clock.
    clock : pandas.Timestamp
        The fake's time (tz-aware ET); :meth:`advance` moves it.
    settlement_prices : mapping
        Underlying -> daily OHLC frame (``open``/``close``) for expiry settlement.
    """

    snapshots: Sequence[ChainSnapshot] = ()
    clock: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("2019-07-03 09:30", tz=TZ))
    settlement_prices: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    account: str = PAPER_ACCOUNT
    cash: float = 100_000.0
    commission: float = 1.0
    delayed_only: bool = False
    faults: list[str] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    avg_cost: dict[int, float] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    settlements: list[dict[str, Any]] = field(default_factory=list)
    decode_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.clients: list[_Handler] = []
        self._perm = itertools.count(900_001)
        self._exec = itertools.count(1)
        self._next_id = 1
        self.contracts: dict[int, OptionContract] = {}
        self.con_ids: dict[OptionContract, int] = {}
        keys = sorted(
            {
                (str(r.root), pd.Timestamp(r.expiration).date(), float(r.strike), str(r.right))
                for snap in self.snapshots
                for r in snap.quotes[["root", "expiration", "strike", "right"]].itertuples()
            }
        )
        for n, (root, expiry, strike, right) in enumerate(keys):
            contract = OptionContract(root, expiry, strike, right)  # type: ignore[arg-type]
            self.contracts[10_000_000 + n] = contract
            self.con_ids[contract] = 10_000_000 + n
        self._by_time = sorted(self.snapshots, key=lambda s: s.quote_time)

    # -- clock ---------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward: settle due legs, finish partial fills (the
        ``sleep`` of the adapter in tests)."""
        with self.lock:
            self.clock = self.clock + pd.Timedelta(seconds=float(seconds))
            self._settle()
            for order in list(self.orders.values()):
                if order.is_open and order.pending_rest:
                    self._fill(order, order.pending_rest)
                    order.pending_rest = 0

    def snapshot(self) -> ChainSnapshot | None:
        """The latest recorded snapshot at or before the clock, on the clock's date."""
        best = None
        for snap in self._by_time:
            if snap.quote_time <= self.clock and snap.quote_time.date() == self.clock.date():
                best = snap
        return best

    def quote(self, con_id: int) -> tuple[float, float]:
        snap = self.snapshot()
        contract = self.contracts.get(con_id)
        if snap is None or contract is None:
            return math.nan, math.nan
        q = snap.quotes
        row = q[
            (q["root"] == contract.root)
            & (pd.to_datetime(q["expiration"]).dt.date == contract.expiration)
            & (q["strike"] == contract.strike)
            & (q["right"] == contract.right)
        ]
        if row.empty:
            return math.nan, math.nan
        return float(row["bid"].iloc[0]), float(row["ask"].iloc[0])

    # -- book ----------------------------------------------------------------------------------
    def _settle(self) -> None:
        for con_id, qty in list(self.positions.items()):
            contract = self.contracts[con_id]
            due = settlement_time(contract.expiration, contract.settlement)
            if qty == 0 or self.clock < due:
                continue
            frame = self.settlement_prices["SPX" if contract.root in ("SPX", "SPXW") else "SPY"]
            rows = frame[[d.date() == contract.expiration for d in frame.index]]
            if rows.empty:
                continue  # no print for that day: the position stays (reconciliation shows it)
            day = rows.iloc[0]
            level = float(day["open"] if contract.settlement == "AM" else day["close"])
            intrinsic = max(level - contract.strike, 0.0)
            if contract.right == "P":
                intrinsic = max(contract.strike - level, 0.0)
            cash = qty * intrinsic * contract.multiplier
            self.cash += cash
            self.settlements.append(
                {"con_id": con_id, "quantity": qty, "level": level, "cash": cash, "time": due}
            )
            del self.positions[con_id]
            self.avg_cost.pop(con_id, None)

    def _fill(self, order: FakeOrder, units: int) -> None:
        sign = 1 if order.action == "BUY" else -1
        for con_id, ratio in order.legs:
            bid, ask = self.quote(con_id)
            qty = sign * ratio * units
            price = ask if qty > 0 else bid
            self._book(con_id, qty, price)
            order.fills.append((con_id, qty, price))
            self._execution(order, con_id, qty, price, units)
        order.filled += units
        order.status = "Filled" if order.remaining == 0 else "Submitted"
        self._status(order)

    def _book(self, con_id: int, qty: int, price: float) -> None:
        old = self.positions.get(con_id, 0)
        new = old + qty
        if new == 0:
            self.positions.pop(con_id, None)
            self.avg_cost.pop(con_id, None)
        else:
            if old == 0 or (old > 0) == (qty > 0):
                cost = self.avg_cost.get(con_id, 0.0) * abs(old) + price * 100 * abs(qty)
                self.avg_cost[con_id] = cost / abs(new)
            self.positions[con_id] = new
        self.cash -= qty * price * 100 + self.commission * abs(qty)

    def _execution(self, order: FakeOrder, con_id: int, qty: int, price: float, units: int) -> None:
        exec_id = f"0000e0d5.{next(self._exec):08d}.01.01"
        record = {
            "exec_id": exec_id,
            "order_id": order.order_id,
            "client_id": order.client_id,
            "perm_id": order.perm_id,
            "con_id": con_id,
            "side": "BOT" if qty > 0 else "SLD",
            "shares": abs(qty),
            "price": price,
            "order_ref": order.order_ref,
            "time": self.clock,
            "commission": self.commission * abs(qty),
        }
        self.executions.append(record)
        self._broadcast(self._exec_fields(-1, record))
        self._broadcast(self._commission_fields(record))

    # -- encoding ------------------------------------------------------------------------------
    def contract_fields(self, con_id: int) -> list[Any]:
        """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency,
        localSymbol, tradingClass."""
        if con_id in self.contracts:
            c = self.contracts[con_id]
            symbol = "SPX" if c.root in ("SPX", "SPXW") else c.root
            local = f"{c.root:<6}{c.expiration:%y%m%d}{c.right}{round(c.strike * 1000):08d}"
            return [
                con_id,
                symbol,
                "OPT",
                f"{c.expiration:%Y%m%d}",
                c.strike,
                c.right,
                "100",
                "SMART",
                "USD",
                local,
                c.root,
            ]
        for symbol, cid in INDEX_CON_ID.items():
            if cid == con_id:
                sec = "IND" if symbol == "SPX" else "STK"
                return [cid, symbol, sec, "", 0.0, "", "", "SMART", "USD", symbol, symbol]
        return [con_id, "?", "BAG", "", 0.0, "", "", "SMART", "USD", "", ""]

    def _exec_fields(self, req_id: int, r: Mapping[str, Any]) -> bytes:
        c = self.contract_fields(r["con_id"])
        when = r["time"].tz_convert("UTC").strftime("%Y%m%d %H:%M:%S") + " UTC"
        return _frame(
            11,
            req_id,
            r["order_id"],
            *c,
            r["exec_id"],
            when,
            self.account,
            "CBOE",
            r["side"],
            r["shares"],
            r["price"],
            r["perm_id"],
            r["client_id"],
            0,
            r["shares"],
            r["price"],
            r["order_ref"],
            "",
            "",
            "",
            1,
        )

    @staticmethod
    def _commission_fields(r: Mapping[str, Any]) -> bytes:
        return _frame(59, 1, r["exec_id"], r["commission"], "USD", UNSET_DOUBLE, UNSET_DOUBLE, "")

    def _status(self, order: FakeOrder) -> None:
        avg = 0.0
        self._broadcast(
            _frame(
                3,
                order.order_id,
                order.status,
                order.filled,
                order.remaining,
                avg,
                order.perm_id,
                0,
                avg,
                order.client_id,
                "",
                0.0,
            )
        )

    def open_order_fields(self, o: FakeOrder) -> bytes:
        """``openOrder`` (5) in the layout ``ib_async.decoder.Decoder.openOrder`` reads at server
        version 157."""
        if o.sec_type == "BAG":
            head = [0, o.symbol, "BAG", "", 0.0, "", "", "SMART", "USD", "", ""]
        else:
            c = self.contract_fields(o.con_id)
            head = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]]
        fields: list[Any] = [5, o.order_id, *head, o.action, o.quantity, o.order_type, o.limit]
        fields += ["", o.tif, "", self.account, "O", 0, o.order_ref, o.client_id, o.perm_id]
        fields += [0, 0, 0.0, "", "", "", "", ""]  # outsideRth .. faPercentage
        fields += [""]  # faProfile (< 177)
        fields += ["", "", "", "", "", 0, "", "", 0, "", "", "", "", "", "", 0, 0, 0, ""]
        fields += ["", 0, 0, "", 0, 0, "", 0, "", ""]  # .. deltaNeutralAuxPrice
        fields += [0, 0, "", "", "", "", ""]  # continuousUpdate .. comboLegsDescrip
        legs = o.legs if o.sec_type == "BAG" else []
        fields += [len(legs)]
        for con_id, ratio in legs:
            fields += [con_id, abs(ratio), "BUY" if ratio > 0 else "SELL", "SMART", 0, 0, "", -1]
        fields += [0, 0]  # order combo legs, smart combo routing params
        fields += ["", "", ""]  # scale init/subs level, price increment
        fields += [""]  # hedgeType
        fields += [0, "", "", 0, 0]  # optOutSmartRouting .. dncPresent
        fields += [""]  # algoStrategy
        fields += [0, 0, o.status] + [""] * 9 + ["", "", "", "", "", 0, 0]
        fields += [0]  # conditions
        fields += ["", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, "", 0]
        return _frame(*fields)

    # -- connections ---------------------------------------------------------------------------
    def _broadcast(self, data: bytes) -> None:
        for client in list(self.clients):
            client.send(data)

    def drop_connections(self) -> None:
        """Close every client socket (a dropped connection)."""
        for client in list(self.clients):
            client.close()

    def take(self, fault: str) -> bool:
        with self.lock:
            if fault in self.faults:
                self.faults.remove(fault)
                return True
            return False

    def next_order_id(self) -> int:
        return max([self._next_id, *(o + 1 for o in self.orders)])

    # -- requests ------------------------------------------------------------------------------
    def handle(self, client: _Handler, f: list[str]) -> None:
        msg = int(f[0])
        self.requests.append(msg)
        send = client.send
        if msg == 71:  # startApi
            send(_frame(9, 1, self.next_order_id()))
            send(_frame(15, 1, self.account))
            send(_frame(4, 2, -1, 2104, "Market data farm connection is OK:usopt", ""))
        elif msg == 61:  # reqPositions
            for con_id, qty in sorted(self.positions.items()):
                c = self.contract_fields(con_id)
                send(_frame(61, 3, self.account, *c, qty, self.avg_cost.get(con_id, 0.0)))
            send(_frame(62, 1))
        elif msg == 5:  # reqOpenOrders
            for order in self.orders.values():
                if order.is_open:
                    send(self.open_order_fields(order))
            send(_frame(53, 1))
        elif msg == 99:  # reqCompletedOrders
            send(_frame(102))
        elif msg == 6:  # reqAccountUpdates
            for key, value in self.account_values().items():
                send(_frame(6, 2, key, value, "USD", self.account))
            send(_frame(8, 1, self.clock.strftime("%H:%M")))
            send(_frame(54, 1, self.account))
        elif msg == 76:  # reqAccountUpdatesMulti
            req = int(f[2])
            for key, value in self.account_values().items():
                send(_frame(73, 1, req, self.account, "", key, value, "USD"))
            send(_frame(74, 1, req))
        elif msg == 7:  # reqExecutions
            req = int(f[2])
            for r in self.executions:
                send(self._exec_fields(req, r))
                send(self._commission_fields(r))
            send(_frame(55, 1, req))
        elif msg == 9:  # reqContractDetails
            self._contract_details(send, int(f[2]), f[3:15])
        elif msg == 78:  # reqSecDefOptParams
            self._sec_def(send, int(f[1]), f[2])
        elif msg == 59:  # reqMarketDataType
            pass
        elif msg == 1:  # reqMktData
            self._market_data(send, int(f[2]), int(f[3] or 0))
        elif msg == 49:  # reqCurrentTime
            send(_frame(49, 1, int(self.clock.timestamp())))
        elif msg == 8:  # reqIds
            send(_frame(9, 1, self.next_order_id()))
        elif msg == 3:  # placeOrder
            self._place(client, f)
        elif msg == 4:  # cancelOrder
            self._cancel(int(f[2]))
        elif msg == 58:  # reqGlobalCancel
            for order_id, order in list(self.orders.items()):
                if order.is_open:
                    self._cancel(order_id)
        if self.take("farm"):
            send(_frame(4, 2, -1, 2104, "Market data farm connection is OK:usfarm", ""))
            send(_frame(4, 2, -1, 2106, "HMDS data farm connection is OK:ushmds", ""))
            send(_frame(4, 2, -1, 2158, "Sec-def data farm connection is OK:secdefnj", ""))

    def account_values(self) -> dict[str, float]:
        value = self.cash
        for con_id, qty in self.positions.items():
            bid, ask = self.quote(con_id)
            mid = 0.5 * (bid + ask)
            value += qty * (0.0 if math.isnan(mid) else mid) * 100
        return {
            "TotalCashValue": round(self.cash, 2),
            "NetLiquidation": round(value, 2),
            "BuyingPower": round(max(value, 0.0) * 4, 2),
        }

    def _contract_details(self, send: Any, req: int, c: list[str]) -> None:
        con_id, symbol, sec_type, expiry, strike, right = c[0], c[1], c[2], c[3], c[4], c[5]
        trading_class = c[11]
        hits: list[int] = []
        if sec_type in ("IND", "STK") and symbol in INDEX_CON_ID:
            hits = [INDEX_CON_ID[symbol]]
        elif con_id and int(con_id) in self.contracts:
            hits = [int(con_id)]
        elif sec_type == "OPT":
            for cid, k in self.contracts.items():
                if (
                    (trading_class or k.root) == k.root
                    and symbol in ("SPX", k.root)
                    and (not expiry or f"{k.expiration:%Y%m%d}" == expiry)
                    and (not strike or float(strike) == k.strike)
                    and (not right or right[0] == k.right)
                ):
                    hits.append(cid)
        if not hits:
            send(
                _frame(4, 2, req, 200, "No security definition has been found for the request", "")
            )
            return
        for cid in hits:
            cf = self.contract_fields(cid)
            _, sym, sec, last, k, r, mult, _exch, cur, local, tclass = cf
            send(
                _frame(
                    10,
                    8,
                    req,
                    sym,
                    sec,
                    last,
                    k,
                    r,
                    "SMART",
                    cur,
                    local,
                    tclass,
                    tclass,
                    cid,
                    0.05,
                    "",
                    mult,
                    "LMT,MKT",
                    "SMART,CBOE",
                    1,
                    INDEX_CON_ID.get("SPX", 0),
                    f"{sym} option",
                    "CBOE",
                    "",
                    "",
                    "",
                    "",
                    "US/Eastern",
                    "",
                    "",
                    "",
                    "",
                    0,
                    "",
                    sym,
                    "IND",
                    "",
                    last,
                    "",
                )
            )
        send(_frame(52, 1, req))

    def _sec_def(self, send: Any, req: int, symbol: str) -> None:
        by_class: dict[str, tuple[set[str], set[float]]] = {}
        for k in self.contracts.values():
            expiries, strikes = by_class.setdefault(k.root, (set(), set()))
            expiries.add(f"{k.expiration:%Y%m%d}")
            strikes.add(k.strike)
        for tclass, (expiries, strikes) in sorted(by_class.items()):
            send(
                _frame(
                    75,
                    req,
                    "SMART",
                    INDEX_CON_ID.get(symbol, 0),
                    tclass,
                    "100",
                    len(expiries),
                    *sorted(expiries),
                    len(strikes),
                    *sorted(strikes),
                )
            )
        send(_frame(76, req))

    def _market_data(self, send: Any, req: int, con_id: int) -> None:
        if self.take("pacing"):
            send(_frame(4, 2, req, 100, "Max rate of messages per second has been exceeded", ""))
            return
        bid_t, ask_t, last_t = (66, 67, 68) if self.delayed_only else (1, 2, 4)
        if self.delayed_only:
            send(_frame(58, 1, req, 3))
            send(
                _frame(
                    4,
                    2,
                    req,
                    10167,
                    "Requested market data is not subscribed. Displaying delayed market data.",
                    "",
                )
            )
        if con_id in self.contracts:
            bid, ask = self.quote(con_id)
            if not math.isnan(bid):
                send(_frame(1, 6, req, bid_t, bid, 10, 0))
                send(_frame(1, 6, req, ask_t, ask, 10, 0))
        elif con_id in INDEX_CON_ID.values():
            snap = self.snapshot()
            if snap is not None:
                send(_frame(1, 6, req, last_t, snap.underlying_price, 0, 0))
        send(_frame(57, 1, req))

    def _place(self, client: _Handler, f: list[str]) -> None:
        order_id = int(f[1])
        con_id, symbol, sec_type = int(f[2] or 0), f[3], f[4]
        action, qty, otype, lmt = f[16], int(float(f[17])), f[18], f[19]
        tif, order_ref = f[21], f[26]
        legs: list[tuple[int, int]] = []
        if sec_type == "BAG":
            n = int(f[35])
            for i in range(n):
                leg = f[36 + 8 * i : 44 + 8 * i]
                legs.append((int(leg[0]), int(leg[1]) * (1 if leg[2] == "BUY" else -1)))
        else:
            legs = [(con_id, 1)]
        with self.lock:
            if order_id in self.orders:
                client.send(_frame(4, 2, order_id, 103, "Duplicate order id", ""))
                return
            order = FakeOrder(
                order_id,
                client.client_id,
                next(self._perm),
                symbol,
                sec_type,
                con_id,
                legs,
                action,
                qty,
                otype,
                float(lmt) if lmt else math.nan,
                order_ref,
                tif,
            )
            self.orders[order_id] = order
            self._next_id = max(self._next_id, order_id + 1)
            if self.take("reject"):
                order.status = "Inactive"
                self._broadcast(self.open_order_fields(order))
                self._status(order)
                self._broadcast(
                    _frame(4, 2, order_id, 201, "Order rejected - reason:fake venue rejects", "")
                )
                return
            order.status = "Submitted"
            self._broadcast(self.open_order_fields(order))
            self._status(order)
            if self._marketable(order):
                units = order.quantity
                if self.take("partial") and order.quantity > 1:
                    units = 1
                    order.pending_rest = order.quantity - 1
                self._fill(order, units)
            drop = self.take("drop_after_order")
        if drop:
            self.drop_connections()

    def _marketable(self, order: FakeOrder) -> bool:
        sign = 1 if order.action == "BUY" else -1
        net = 0.0
        for con_id, ratio in order.legs:
            bid, ask = self.quote(con_id)
            if math.isnan(bid) or math.isnan(ask):
                return False
            net += ratio * sign * (ask if ratio * sign > 0 else bid)
        if order.order_type == "MKT":
            return True
        limit = order.limit * sign  # signed net per unit the client accepts (> 0 debit)
        return net <= limit + 1e-9

    def _cancel(self, order_id: int) -> None:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or not order.is_open:
                return
            order.status = "Cancelled"
            order.pending_rest = 0
            self._status(order)


class _Handler(socketserver.BaseRequestHandler):
    fake: FakeTWS
    client_id: int = 0

    def setup(self) -> None:
        self._send_lock = threading.Lock()
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        with self._send_lock:
            try:
                self.request.sendall(data)
            except OSError:
                self.closed = True

    def close(self) -> None:
        self.closed = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _message(self) -> list[str]:
        size = struct.unpack(">I", self._read(4))[0]
        return self._read(size).decode().split("\0")[:-1]

    def handle(self) -> None:
        fake = self.server.fake  # type: ignore[attr-defined]
        try:
            if self._read(4) != b"API\0":
                return
            self._message()  # "v157..178"
            when = fake.clock.tz_convert("UTC").strftime("%Y%m%d %H:%M:%S") + " UTC"
            self.send(_frame(SERVER_VERSION, when))
            start = self._message()
            self.client_id = int(start[2])
            with fake.lock:
                fake.clients.append(self)
                fake.handle(self, start)
            while not self.closed:
                fields = self._message()
                with fake.lock:
                    fake.handle(self, fields)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            with fake.lock:
                if self in fake.clients:
                    fake.clients.remove(self)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeTWS


def serve(fake: FakeTWS) -> tuple[_Server, threading.Thread, int]:
    """Start ``fake`` on 127.0.0.1 and a free port; returns (server, thread, port)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread, server.server_address[1]


def stop(server: _Server, thread: threading.Thread) -> None:
    """Shut the fake down."""
    server.fake.drop_connections()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def day_start(day: dt.date) -> pd.Timestamp:
    """09:30 ET of ``day``."""
    return pd.Timestamp(dt.datetime.combine(day, dt.time(9, 30)), tz=TZ)


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - run by hand
    """Run the fake TWS as a server for a ``volsuite paper`` session by hand: recorded snapshots
    of one day from a chain store, a clock running ``--speed`` times wall time from ``--start``.

    ``python -m tests.brokers.live.fake_tws --db results/chains.duckdb --day 2019-07-01
    --settlement ../shared/data/index/spx_vix_spy_qqq_daily.csv --port 7497``
    """
    import argparse
    import time

    from data_feeds import load_ohlc
    from data_feeds.chain_store import ChainStore

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--db", required=True, help="chain store with the day's snapshots")
    ap.add_argument("--day", required=True, help="session date, YYYY-MM-DD")
    ap.add_argument("--start", default="09:30", help="clock start, HH:MM ET")
    ap.add_argument("--speed", type=float, default=3600.0, help="clock seconds per wall second")
    ap.add_argument("--settlement", required=True, help="SPX daily OHLC file")
    ap.add_argument("--port", type=int, default=7497)
    ap.add_argument("--account", default=PAPER_ACCOUNT)
    args = ap.parse_args(argv)
    with ChainStore(args.db, read_only=True) as store:
        snaps = [store.snapshot("SPX", d) for d in store.quote_dates("SPX") if str(d) == args.day]
    fake = FakeTWS(
        snapshots=snaps,
        clock=pd.Timestamp(f"{args.day} {args.start}", tz=TZ),
        settlement_prices={"SPX": load_ohlc(args.settlement, root="SPX")},
        account=args.account,
    )
    server = _Server(("127.0.0.1", args.port), _Handler)
    server.fake = fake
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    print(
        f"fake TWS on 127.0.0.1:{args.port}, {len(snaps)} snapshot(s), clock {fake.clock} "
        "(runs from the first connection)",
        flush=True,
    )
    step = 0.05
    try:
        while True:
            time.sleep(step)
            if fake.clients or fake.requests:
                fake.advance(step * args.speed)
    except KeyboardInterrupt:
        print(
            f"orders {len(fake.orders)}, executions {len(fake.executions)}, "
            f"settlements {len(fake.settlements)}, cash {fake.cash:,.2f}"
        )


if __name__ == "__main__":  # pragma: no cover
    main()
