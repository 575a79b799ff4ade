"""A local fake of Alpaca's REST API on 127.0.0.1 (``http.server`` in a thread), with fault
injection (the ``fake_alpaca`` fixture in ``conftest.py`` runs it).

The fake answers the subset of the Trading API v2 and the Market Data API that
``brokers.live.alpaca.AlpacaAdapter`` calls, with bodies shaped like Alpaca's published API
reference (field names and string-typed numbers as Alpaca sends them; ``mleg`` parents with empty
``symbol``/``side``); ``test_alpaca.py`` checks every body against alpaca-py's own response models.
It keeps its own book: orders fill at the touch (ask for a buy, bid for a sell) when marketable,
positions and cash follow, ``client_order_id`` is unique (HTTP 422 otherwise).

Faults (``FakeAlpaca.faults``, consumed in order by the first matching request):

``timeout_after_accept``  the order is recorded (and filled), the answer comes after ``delay``
                          seconds: later than the client's read timeout
``429``                   rate limited, nothing recorded (``Retry-After: 0``)
``500``                   HTTP 500, nothing recorded
``500_after_accept``      the order is recorded, then HTTP 500
``drop``                  the connection is closed without an answer, nothing recorded
``drop_after_accept``     the order is recorded, then the connection is closed without an answer

Outage and redirects:

``FakeAlpaca.down``       ``"503"``: every request is answered HTTP 503 (venue down, nothing
                          done); ``"drop"``: every connection is closed without an answer;
                          with ``down_paths`` only requests whose path starts with one of them
                          (the trading API down, market data up)
``FakeAlpaca.redirect``   every request is answered ``307`` with ``Location: <redirect><path>``
                          (an endpoint that moved to another host)
``FakeAlpaca.headers``    the key headers each request carried (``(key, secret)``), for the
                          redirect tests
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

KEY = "test-key-id"
SECRET = "test-secret-never-logged-7f3a"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _s(x: float) -> str:
    return f"{x:.10g}"


@dataclass
class Fault:
    """A fault for the next request matching ``method`` and ``path`` (prefix)."""

    kind: str
    method: str = "POST"
    path: str = "/v2/orders"
    delay: float = 0.6


@dataclass
class FakeAlpaca:
    """State of the fake venue (see the module docstring)."""

    cash: float = 100_000.0
    quotes: dict[str, tuple[float, float]] = field(default_factory=dict)
    stock_price: dict[str, float] = field(default_factory=dict)
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_client: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth_failures: int = 0
    down: str | None = None
    down_paths: tuple[str, ...] | None = None
    redirect: str | None = None
    headers: list[tuple[str | None, str | None]] = field(default_factory=list)
    page_size: int = 1000
    fill: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    account_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    # -- helpers used by tests --------------------------------------------------------------------
    def posts(self) -> int:
        """POST /v2/orders requests received (attempts, including failed ones)."""
        return sum(1 for m, p in self.requests if m == "POST" and p == "/v2/orders")

    def client_ids(self) -> list[str]:
        """client_order_id of every recorded order, in order."""
        return [o["client_order_id"] for o in self.orders.values()]

    def signed_positions(self) -> dict[str, int]:
        """Symbol -> signed quantity."""
        return {s: int(p["qty"]) for s, p in self.positions.items() if int(p["qty"]) != 0}

    # -- bodies ------------------------------------------------------------------------------------
    def account_body(self) -> dict[str, Any]:
        equity = self.cash + sum(
            int(p["qty"]) * self._mid(s) * (100 if self._is_option(s) else 1)
            for s, p in self.positions.items()
        )
        return {
            "id": self.account_id,
            "account_number": "PA3FAKE0001",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": _s(2 * equity),
            "regt_buying_power": _s(2 * equity),
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": _s(self.cash),
            "options_buying_power": _s(equity),
            "cash": _s(self.cash),
            "accrued_fees": "0",
            "portfolio_value": _s(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T15:00:00.000000Z",
            "trade_suspended_by_user": False,
            "multiplier": "2",
            "shorting_enabled": True,
            "equity": _s(equity),
            "last_equity": _s(equity),
            "long_market_value": "0",
            "short_market_value": "0",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "options_approved_level": 3,
            "options_trading_level": 3,
        }

    def clock_body(self) -> dict[str, Any]:
        return {
            "timestamp": _now(),
            "is_open": True,
            "next_open": "2030-01-02T14:30:00Z",
            "next_close": "2030-01-02T21:00:00Z",
        }

    @staticmethod
    def _is_option(symbol: str) -> bool:
        return len(symbol) > 15

    def _mid(self, symbol: str) -> float:
        if symbol in self.quotes:
            bid, ask = self.quotes[symbol]
            return 0.5 * (bid + ask)
        return self.stock_price.get(symbol, 0.0)

    def position_body(self, symbol: str, pos: dict[str, Any]) -> dict[str, Any]:
        qty = int(pos["qty"])
        mult = 100 if self._is_option(symbol) else 1
        mark = self._mid(symbol)
        return {
            "asset_id": pos["asset_id"],
            "symbol": symbol,
            "exchange": "",
            "asset_class": "us_option" if self._is_option(symbol) else "us_equity",
            "asset_marginable": True,
            "avg_entry_price": _s(pos["avg"]),
            "qty": str(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": _s(qty * mark * mult),
            "cost_basis": _s(qty * pos["avg"] * mult),
            "unrealized_pl": _s(qty * (mark - pos["avg"]) * mult),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": _s(mark),
            "lastday_price": _s(mark),
            "change_today": "0",
            "qty_available": str(qty),
        }

    def snapshot_body(self, symbol: str) -> dict[str, Any]:
        bid, ask = self.quotes[symbol]
        t = _now()
        return {
            "latestQuote": {
                "ap": ask,
                "as": 10,
                "ax": "C",
                "bp": bid,
                "bs": 12,
                "bx": "C",
                "c": "A",
                "t": t,
            },
            "latestTrade": {"c": "I", "p": round(0.5 * (bid + ask), 2), "s": 1, "t": t, "x": "C"},
            "greeks": {"delta": 0.5, "gamma": 0.05, "rho": 0.01, "theta": -0.3, "vega": 0.2},
            "impliedVolatility": 0.18,
        }

    # -- order book --------------------------------------------------------------------------------
    def new_order(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if cid in self.by_client:
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        if body.get("type") != "limit" or body.get("time_in_force") != "day":
            return 422, {"code": 40010001, "message": "options orders must be limit, day"}
        now = _now()
        oid = str(uuid.uuid4())
        qty = int(float(body["qty"]))
        mleg = body.get("order_class") == "mleg"
        legs_in = (
            body["legs"]
            if mleg
            else [{"symbol": body["symbol"], "ratio_qty": 1, "side": body["side"]}]
        )
        for leg in legs_in:
            if leg["symbol"] not in self.quotes:
                return 422, {"code": 40010001, "message": f"asset {leg['symbol']} not found"}
        order = {
            "id": oid,
            "client_order_id": cid,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": "" if mleg else str(uuid.uuid4()),
            "symbol": "" if mleg else body["symbol"],
            "asset_class": "" if mleg else "us_option",
            "notional": None,
            "qty": str(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "mleg" if mleg else "simple",
            "order_type": "limit",
            "type": "limit",
            "side": "" if mleg else body["side"],
            "position_intent": "" if mleg else body.get("position_intent", ""),
            "time_in_force": "day",
            "limit_price": _s(float(body["limit_price"])),
            "stop_price": None,
            "status": "new",
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }
        if mleg:
            order["legs"] = [
                {
                    **{k: v for k, v in order.items() if k not in ("legs",)},
                    "id": str(uuid.uuid4()),
                    "client_order_id": str(uuid.uuid4()),
                    "asset_id": str(uuid.uuid4()),
                    "symbol": leg["symbol"],
                    "asset_class": "us_option",
                    "side": leg["side"],
                    "position_intent": leg.get("position_intent", ""),
                    "ratio_qty": str(int(float(leg["ratio_qty"]))),
                    "qty": str(int(float(leg["ratio_qty"])) * qty),
                    "order_type": "",
                    "type": "",
                    "limit_price": None,
                }
                for leg in legs_in
            ]
        self.orders[oid] = order
        self.by_client[cid] = oid
        if self.fill:
            self.try_fill(order)
        return 200, order

    def try_fill(self, order: dict[str, Any]) -> None:
        if order["status"] not in ("new", "accepted"):
            return
        qty = int(order["qty"])
        legs = order["legs"] or [
            {"symbol": order["symbol"], "side": order["side"], "ratio_qty": "1"}
        ]
        prices = []
        for leg in legs:
            bid, ask = self.quotes[leg["symbol"]]
            prices.append(ask if leg["side"] == "buy" else bid)
        signs = [1 if leg["side"] == "buy" else -1 for leg in legs]
        ratios = [int(leg["ratio_qty"]) for leg in legs]
        limit = float(order["limit_price"])
        if order["order_class"] == "mleg":
            net = sum(s * r * p for s, r, p in zip(signs, ratios, prices, strict=True))
            if net > limit + 1e-9:
                return
        elif (signs[0] > 0 and prices[0] > limit + 1e-9) or (
            signs[0] < 0 and prices[0] < limit - 1e-9
        ):
            return
        now = _now()
        total = 0.0
        for leg, s, r, p in zip(legs, signs, ratios, prices, strict=True):
            n = s * r * qty
            self.book(leg["symbol"], n, p)
            total += s * r * p
            if order["legs"] is not None:
                leg.update(
                    filled_qty=str(r * qty),
                    filled_avg_price=_s(p),
                    status="filled",
                    filled_at=now,
                    updated_at=now,
                )
        order.update(
            status="filled",
            filled_qty=str(qty),
            filled_avg_price=_s(total if order["legs"] is not None else prices[0]),
            filled_at=now,
            updated_at=now,
        )

    def book(self, symbol: str, n: int, price: float) -> None:
        mult = 100 if self._is_option(symbol) else 1
        self.cash -= n * price * mult
        pos = self.positions.get(symbol)
        if pos is None:
            self.positions[symbol] = {"qty": n, "avg": price, "asset_id": str(uuid.uuid4())}
            return
        new = pos["qty"] + n
        if new == 0:
            del self.positions[symbol]
            return
        if (pos["qty"] > 0) == (n > 0):
            pos["avg"] = (pos["avg"] * pos["qty"] + price * n) / new
        elif (pos["qty"] > 0) != (new > 0):
            pos["avg"] = price
        pos["qty"] = new

    def cancel(self, oid: str) -> int:
        order = self.orders.get(oid)
        if order is None:
            return 404
        if order["status"] in ("filled", "canceled", "expired", "rejected"):
            return 422
        now = _now()
        order.update(status="canceled", canceled_at=now, updated_at=now)
        return 204

    def close_all(self) -> list[dict[str, Any]]:
        out = []
        for oid, order in list(self.orders.items()):
            if order["status"] in ("new", "accepted", "partially_filled"):
                self.cancel(oid)
        for symbol, pos in list(self.positions.items()):
            qty = int(pos["qty"])
            side = "sell" if qty > 0 else "buy"
            bid, ask = self.quotes.get(symbol, (0.0, 0.0))
            if side == "sell" and bid <= 0:
                out.append(
                    {
                        "symbol": symbol,
                        "status": 403,
                        "body": {"code": 40310000, "message": "no bid: cannot close"},
                    }
                )
                continue
            cid = f"close-{uuid.uuid4().hex[:12]}"
            status, order = self.new_order(
                {
                    "symbol": symbol,
                    "qty": abs(qty),
                    "side": side,
                    "type": "limit",
                    "time_in_force": "day",
                    "limit_price": ask if side == "buy" else bid,
                    "client_order_id": cid,
                    "position_intent": f"{side}_to_close",
                }
            )
            out.append({"symbol": symbol, "status": status, "body": order})
        return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one small answer per request: no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _fault(self, method: str, path: str) -> Fault | None:
        fake = self.server.fake
        for i, f in enumerate(fake.faults):
            if f.method == method and path.startswith(f.path):
                return fake.faults.pop(i)
        return None

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        url = urlparse(self.path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        with fake.lock:
            fake.requests.append((method, path))
            fake.headers.append(
                (self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY"))
            )
            if body is not None:
                fake.bodies.append(body)
        if fake.redirect is not None:
            self._send(307, {"message": "moved"}, {"Location": fake.redirect + self.path})
            return
        hit = fake.down_paths is None or path.startswith(fake.down_paths)
        if fake.down == "503" and hit:
            self._send(503, {"code": 50300000, "message": "service unavailable"})
            return
        if fake.down == "drop" and hit:
            self._drop()
            return
        if (
            self.headers.get("APCA-API-KEY-ID") != KEY
            or self.headers.get("APCA-API-SECRET-KEY") != SECRET
        ):
            fake.auth_failures += 1
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return
        fault = self._fault(method, path)
        if fault is not None and fault.kind in ("429", "500", "drop"):
            if fault.kind == "429":
                self._send(
                    429, {"code": 42910000, "message": "rate limit exceeded"}, {"Retry-After": "0"}
                )
            elif fault.kind == "500":
                self._send(500, {"code": 50010000, "message": "internal server error"})
            else:
                self._drop()
            return
        with fake.lock:
            status, out = self._route(method, path, query, body)
        if fault is not None:
            if fault.kind == "timeout_after_accept":
                time.sleep(fault.delay)
            elif fault.kind == "500_after_accept":
                self._send(500, {"code": 50010000, "message": "internal server error"})
                return
            elif fault.kind == "drop_after_accept":
                self._drop()
                return
        self._send(status, out)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        fake = self.server.fake
        if method == "GET" and path == "/v2/account":
            return 200, fake.account_body()
        if method == "GET" and path == "/v2/clock":
            return 200, fake.clock_body()
        if method == "GET" and path == "/v2/positions":
            return 200, [fake.position_body(s, p) for s, p in sorted(fake.positions.items())]
        if method == "DELETE" and path == "/v2/positions":
            return 207, fake.close_all()
        if method == "POST" and path == "/v2/orders":
            return fake.new_order(body)
        if method == "GET" and path == "/v2/orders":
            status = query.get("status", "open")
            rows = [
                o
                for o in fake.orders.values()
                if status != "open" or o["status"] in ("new", "accepted", "partially_filled")
            ]
            return 200, rows
        if method == "DELETE" and path == "/v2/orders":
            out = []
            for oid, o in list(fake.orders.items()):
                if o["status"] in ("new", "accepted", "partially_filled"):
                    fake.cancel(oid)
                    out.append({"id": oid, "status": 200, "body": None})
            return 207, out
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            oid = fake.by_client.get(query.get("client_order_id", ""))
            if oid is None:
                return 404, {"code": 40410000, "message": "order not found"}
            return 200, fake.orders[oid]
        if path.startswith("/v2/orders/"):
            oid = path.rsplit("/", 1)[-1]
            if method == "GET":
                if oid not in fake.orders:
                    return 404, {"code": 40410000, "message": "order not found"}
                return 200, fake.orders[oid]
            if method == "DELETE":
                status = fake.cancel(oid)
                if status == 204:
                    return 204, None
                return status, {"code": 42210000, "message": "order is not cancelable"}
        if method == "GET" and path.startswith("/v1beta1/options/snapshots/"):
            underlying = path.rsplit("/", 1)[-1]
            symbols = sorted(s for s in fake.quotes if s.startswith(underlying) and len(s) > 15)
            lte = query.get("expiration_date_lte")
            if lte:
                cut = dt.date.fromisoformat(lte).strftime("%y%m%d")
                symbols = [s for s in symbols if s[len(underlying) : len(underlying) + 6] <= cut]
            start = int(query.get("page_token") or 0)
            size = min(int(query.get("limit", 100)), fake.page_size)
            page = symbols[start : start + size]
            token = str(start + size) if start + size < len(symbols) else None
            return 200, {
                "snapshots": {s: fake.snapshot_body(s) for s in page},
                "next_page_token": token,
            }
        if method == "GET" and path == "/v2/stocks/trades/latest":
            sym = query["symbols"]
            p = fake.stock_price[sym]
            return 200, {
                "trades": {
                    sym: {"c": ["@"], "i": 1, "p": p, "s": 100, "t": _now(), "x": "V", "z": "B"}
                }
            }
        if method == "GET" and path == "/v2/stocks/bars/latest":
            sym = query["symbols"]
            p = fake.stock_price[sym]
            t = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=1)
            bar = {
                "c": p,
                "h": p,
                "l": p,
                "n": 10,
                "o": p,
                "t": t.isoformat().replace("+00:00", "Z"),
                "v": 1000,
                "vw": p,
            }
            return 200, {"bars": {sym: bar}}
        return 404, {"code": 40410000, "message": f"endpoint {method} {path} not found"}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeAlpaca


def occ(root: str, expiration: dt.date, right: str, strike: float) -> str:
    """OCC symbol (test-side construction, independent of brokers.live.adapter.occ_symbol)."""
    return f"{root}{expiration:%y%m%d}{right}{round(strike * 1000):08d}"


def spy_chain(today: dt.date) -> tuple[dict[str, tuple[float, float]], dt.date]:
    """A small SPY chain: two expiries (today + 3 and + 10 calendar days), strikes 570..590,
    quotes consistent with SPY at 580 (put-call parity holds at the mids)."""
    near = today + dt.timedelta(days=3)
    far = today + dt.timedelta(days=10)
    quotes: dict[str, tuple[float, float]] = {}
    for exp, extra in ((near, 0.0), (far, 1.5)):
        for strike in (570.0, 575.0, 580.0, 585.0, 590.0):
            intrinsic_c = max(580.0 - strike, 0.0)
            intrinsic_p = max(strike - 580.0, 0.0)
            tv = 4.0 + extra - abs(strike - 580.0) * 0.3
            c = intrinsic_c + tv
            p = intrinsic_p + tv
            quotes[occ("SPY", exp, "C", strike)] = (round(c - 0.05, 2), round(c + 0.05, 2))
            quotes[occ("SPY", exp, "P", strike)] = (round(p - 0.05, 2), round(p + 0.05, 2))
    return quotes, near
