"""Alpaca paper trading as a venue: stock bars, option chain snapshots, single- and multi-leg option
orders, positions, account and order status over Alpaca's REST API.

Imported only when a config asks for ``[broker] kind = "alpaca-paper"`` (``alpaca-py`` is not
needed for anything else).

How it talks to Alpaca
----------------------
Request bodies are built with ``alpaca-py``'s request models (``LimitOrderRequest``,
``OptionLegRequest``: the same JSON ``TradingClient.submit_order`` sends) and responses are
parsed with its response models (``Order``, ``Position``, ``TradeAccount``, ``Clock``,
``OptionsSnapshot``, ``Quote``, ``Bar``). The HTTP transport is ``requests`` directly rather than
``alpaca-py``'s ``TradingClient``, because that client

* sends requests without a timeout (a venue that accepts an order and never answers would hang the
  session), and
* retries 429/504 itself, re-POSTing an order without first checking whether the earlier attempt
  reached the venue.

Here every request has a (connect, read) timeout, and retries belong to the live broker
(:meth:`brokers.live.broker.LiveOptionsBroker.submit`), which looks an order up by its client
order id before any resend.

Endpoints used (Alpaca Trading API v2 and Market Data API):

=====================================================  ========================================
``GET /v2/account``, ``GET /v2/clock``                  account figures, server time
``GET /v2/positions``                                   positions (OCC symbols for options)
``POST /v2/orders``                                     single-leg (``symbol``/``side``) and
                                                        multi-leg (``order_class: mleg``) limit
                                                        orders with ``client_order_id``
``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``  order status, lookup by client id
``GET /v2/orders?status=open&nested=true``              open orders
``DELETE /v2/orders/{id}``, ``DELETE /v2/orders``       cancel one / all
``DELETE /v2/positions?cancel_orders=true``             close everything (kill switch)
``GET /v1beta1/options/snapshots/{underlying}``         chain snapshot (latest quotes, greeks, IV)
``GET /v2/stocks/trades/latest``, ``/bars/latest``      underlying price and minute bar
=====================================================  ========================================

Keys come from the environment only (``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``, or
``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``), go into request headers and nowhere else: never into
messages, logs, the audit log or ``repr`` (every error message is passed through
:func:`brokers.live.safety.scrub_secrets`; a key with whitespace or a control character, such as a
stray ``\\r``, is refused before any request). They are sent to exactly two hosts,
``https://paper-api.alpaca.markets`` (trading) and ``https://data.alpaca.markets`` (market data),
or to ``127.0.0.1`` / ``localhost`` for tests (:func:`check_endpoint`); redirects are never
followed (a 3xx answer is an error, and the keys do not go to the new location).

Alpaca lists equity and ETF options (SPY), **not SPX/SPXW**; see ``docs/paper_trading.md`` for
``symbol_map``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlparse

import pandas as pd
import requests

from brokers.live.adapter import (
    AccountState,
    Bar,
    DuplicateClientOrderId,
    LegFill,
    OrderLeg,
    OrderRequest,
    TransientVenueError,
    VenueAdapter,
    VenueOrder,
    VenuePosition,
    VenueRejected,
    parse_occ_symbol,
)
from brokers.live.safety import KEY_ENV, SECRET_ENV, scrub_secrets
from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot, quotes_frame
from data_feeds.errors import VolsuiteError

PAPER_URL = "https://paper-api.alpaca.markets"
"""Alpaca's paper-trading endpoint (the default)."""

DATA_URL = "https://data.alpaca.markets"
"""Alpaca's market-data endpoint."""

PAPER_HOST = "paper-api.alpaca.markets"
DATA_HOST = "data.alpaca.markets"
TEST_HOSTS = frozenset({"127.0.0.1", "localhost"})
"""Hosts a test may point both endpoints at (the local fake venue)."""


class UnsafeEndpoint(VolsuiteError, ValueError):
    """An Alpaca endpoint on a host the keys must not go to (one line; a ``ValueError`` too)."""


def check_endpoint(url: str, *, field: str = "base_url", host: str = PAPER_HOST) -> str:
    """``url`` without a trailing slash if the keys may go there, else :class:`UnsafeEndpoint`.

    Accepted: ``https://<host>`` exactly (default port, no user, path, query or fragment), or
    ``http(s)://127.0.0.1[:port]`` / ``http(s)://localhost[:port]`` (the local fake venue of the
    tests). A host that merely starts or ends like Alpaca's (``paper-api.evil.example``,
    ``paper-api.alpaca.markets.evil.example``) is refused.

    Parameters
    ----------
    url : str
        The endpoint from ``[broker.alpaca]``.
    field : str
        Its config key, for the message (``base_url`` or ``data_url``).
    host : str
        The one remote host allowed for this endpoint (:data:`PAPER_HOST` or :data:`DATA_HOST`).

    Raises
    ------
    UnsafeEndpoint
        Any other URL (one line naming the key and the hosts accepted).
    """
    what = (
        f"[broker.alpaca] {field} = {url!r}: Alpaca keys are sent only to https://{host} "
        "(or http://127.0.0.1 / http://localhost for tests); volsuite sends no live orders"
    )
    try:
        parsed = urlparse(str(url).strip())
        name = (parsed.hostname or "").lower()
        port = parsed.port
    except ValueError:
        raise UnsafeEndpoint(f"{what} (not a URL)") from None
    extra = parsed.username or parsed.password or parsed.query or parsed.fragment
    if parsed.path not in ("", "/") or extra:
        raise UnsafeEndpoint(f"{what} (no path, user, query or fragment allowed)")
    if name in TEST_HOSTS and parsed.scheme in ("http", "https"):
        return str(url).strip().rstrip("/")
    if name != host or parsed.scheme != "https" or port not in (None, 443):
        raise UnsafeEndpoint(what)
    return f"https://{host}"


def _env(names: Sequence[str]) -> str | None:
    """The first of ``names`` set in the environment, refused if it holds whitespace or a control
    character (a stray ``\\r`` from a Windows file; the value is never shown)."""
    for name in names:
        value = os.environ.get(name)
        if value:
            if any(ch.isspace() or not ch.isprintable() for ch in value):
                raise VenueRejected(
                    f"{name} contains whitespace or a control character (a stray \\r or space?); "
                    "set it to the key alone"
                )
            return value
    return None


def _f(value: Any, default: float = math.nan) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC").tz_convert(TZ) if ts.tzinfo is None else ts.tz_convert(TZ)


class AlpacaAdapter(VenueAdapter):
    """Alpaca paper trading behind :class:`brokers.live.adapter.VenueAdapter`.

    Parameters
    ----------
    underlying : str
        Underlying whose chain the feed reads (``SPY``).
    roots : sequence of str, optional
        Option roots kept in snapshots (default: the underlying's own).
    base_url, data_url : str
        Trading and market-data endpoints (paper by default).
    option_feed : {"indicative", "opra"}
        Options data feed (``indicative`` is free and delayed; ``opra`` needs a subscription).
    stock_feed : {"iex", "sip"}
        Stock data feed.
    poll_seconds : float
        Wall seconds between ticks (chain snapshots).
    max_dte : int, optional
        Only expirations within this many calendar days (keeps the chain small).
    timeout : (float, float)
        Connect and read timeouts, seconds.
    sleep : callable
        Waits the given seconds (injected in tests).
    session : requests.Session, optional
        HTTP session (default: a new one).
    max_ticks : int, optional
        End the session after this many ticks (a bounded dry run; None: until stopped).

    Raises
    ------
    UnsafeEndpoint
        ``base_url`` is not the paper endpoint or ``data_url`` not the data endpoint (or a
        loopback test URL: :func:`check_endpoint`).
    """

    name = "alpaca-paper"

    def __init__(
        self,
        underlying: str = "SPY",
        *,
        roots: Sequence[str] | None = None,
        base_url: str = PAPER_URL,
        data_url: str = DATA_URL,
        option_feed: str = "indicative",
        stock_feed: str = "iex",
        poll_seconds: float = 60.0,
        max_dte: int | None = 7,
        timeout: tuple[float, float] = (5.0, 10.0),
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        max_ticks: int | None = None,
    ) -> None:
        self.underlying = underlying.strip().upper()
        self.roots = [r.upper() for r in roots] if roots else [self.underlying]
        self.base_url = check_endpoint(base_url, field="base_url", host=PAPER_HOST)
        self.data_url = check_endpoint(data_url, field="data_url", host=DATA_HOST)
        self.option_feed = option_feed
        self.stock_feed = stock_feed
        self.poll_seconds = float(poll_seconds)
        self.max_dte = max_dte
        self.timeout = timeout
        self._sleep = sleep
        self._session = session or requests.Session()
        self._offset = pd.Timedelta(0)
        self._broken = False
        self._reconnected = False
        self._ticks = 0
        self.max_ticks = max_ticks
        self.requests_sent = 0

    def __repr__(self) -> str:  # never shows credentials
        return f"AlpacaAdapter({self.underlying!r}, base_url={self.base_url!r})"

    # -- transport --------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        key, secret = _env(KEY_ENV), _env(SECRET_ENV)
        if not key or not secret:
            raise VenueRejected(
                "no Alpaca keys in the environment: set APCA_API_KEY_ID and APCA_API_SECRET_KEY "
                "(or ALPACA_API_KEY and ALPACA_SECRET_KEY)"
            )
        return {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        not_found_ok: bool = False,
    ) -> Any:
        where = f"{method} {urlparse(url).path}"
        self.requests_sent += 1
        try:
            resp = self._session.request(
                method,
                url,
                params=params,
                json=body,
                headers=self._headers(),
                timeout=self.timeout,
                allow_redirects=False,  # the key headers must never follow a redirect
            )
        except requests.Timeout as exc:
            self._broken = True
            raise TransientVenueError(
                f"{where}: no answer within {self.timeout[1]:g} s ({type(exc).__name__})",
                maybe_applied=method != "GET",
            ) from None
        except requests.ConnectionError as exc:
            self._broken = True
            raise TransientVenueError(
                f"{where}: connection failed or dropped ({type(exc).__name__})",
                maybe_applied=method != "GET",
            ) from None
        except requests.RequestException as exc:  # e.g. an invalid header: never show its value
            raise VenueRejected(
                scrub_secrets(f"{where}: request not sent ({type(exc).__name__}: {exc})")
            ) from None
        if self._broken:
            self._broken = False
            self._reconnected = True
        status = resp.status_code
        if 300 <= status < 400:
            target = urlparse(resp.headers.get("Location", ""))
            raise VenueRejected(
                scrub_secrets(
                    f"{where}: HTTP {status} redirect to {target.hostname or '?'}{target.path}: "
                    "not followed (keys go only to the configured endpoint; check base_url / "
                    "data_url)"
                ),
                status=status,
            )
        if status == 429:
            retry_after = _f(resp.headers.get("Retry-After"), math.nan)
            raise TransientVenueError(
                f"{where}: HTTP 429 rate limited",
                retry_after=None if math.isnan(retry_after) else retry_after,
            )
        if status >= 500:
            raise TransientVenueError(
                f"{where}: HTTP {status} ({self._message(resp)})", maybe_applied=method != "GET"
            )
        if status == 404 and not_found_ok:
            return None
        if status >= 400:
            message = self._message(resp)
            if "client_order_id" in message and "unique" in message:
                raise DuplicateClientOrderId(f"{where}: {message}", status=status)
            raise VenueRejected(f"{where}: HTTP {status} ({message})", status=status)
        if not resp.content:
            return None
        return resp.json()

    @staticmethod
    def _message(resp: requests.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            return scrub_secrets(resp.text[:200])
        if isinstance(data, dict):
            return scrub_secrets(str(data.get("message") or data)[:300])
        return scrub_secrets(str(data)[:300])

    def consume_reconnect(self) -> bool:
        """True once after a request succeeded following a timeout or dropped connection."""
        out, self._reconnected = self._reconnected, False
        return out

    # -- clock and session ------------------------------------------------------------------------
    def connect(self) -> None:
        """Check the keys and the account, and align :meth:`now` with the server clock.

        Raises
        ------
        VenueRejected
            No keys, or the account is not active.
        """
        from alpaca.trading.models import Clock, TradeAccount

        account = TradeAccount(**self._request("GET", f"{self.base_url}/v2/account"))
        if str(getattr(account.status, "value", account.status)).upper() != "ACTIVE":
            raise VenueRejected(f"Alpaca account status is {account.status}, not ACTIVE")
        clock = Clock(**self._request("GET", f"{self.base_url}/v2/clock"))
        server = pd.Timestamp(clock.timestamp)
        server = server.tz_localize("UTC") if server.tzinfo is None else server
        self._offset = server - pd.Timestamp.now(tz="UTC")

    def now(self) -> pd.Timestamp:
        """Wall clock (ET) corrected by the server clock offset measured at :meth:`connect`."""
        return (pd.Timestamp.now(tz="UTC") + self._offset).tz_convert(TZ)

    def tick(self) -> bool:
        """Wait ``poll_seconds`` (not before the first tick); True until ``max_ticks`` (a live
        session otherwise ends by ``until``, the kill switch or Ctrl-C)."""
        if self.max_ticks is not None and self._ticks >= self.max_ticks:
            return False
        if self._ticks > 0 and self.poll_seconds > 0:
            self._sleep(self.poll_seconds)
        self._ticks += 1
        return True

    # -- market data ------------------------------------------------------------------------------
    def chain_snapshot(self, underlying: str, roots: Sequence[str] | None = None) -> ChainSnapshot:
        """The option chain now: every contract's latest quote, trade, greeks and IV (Alpaca's
        ``OptionsSnapshot``), expirations within ``max_dte`` days, the underlying's last trade.

        Returns
        -------
        ChainSnapshot
            ``vendor_implied_vol`` / ``vendor_*`` greeks are Alpaca's; bid/ask NaN for a contract
            without a quote; ``is_liquid`` = a two-sided, uncrossed quote.
        """
        from alpaca.data.models.snapshots import OptionsSnapshot

        symbol = underlying.strip().upper()
        keep = {r.upper() for r in (roots or self.roots)}
        now = self.now()
        params: dict[str, Any] = {"feed": self.option_feed, "limit": 1000}
        if self.max_dte is not None:
            last = now.date() + dt.timedelta(days=self.max_dte)
            params["expiration_date_lte"] = last.isoformat()
        rows: list[dict[str, Any]] = []
        for _ in range(100):
            data = self._request(
                "GET", f"{self.data_url}/v1beta1/options/snapshots/{quote(symbol)}", params=params
            )
            for occ, raw in (data.get("snapshots") or {}).items():
                snap = OptionsSnapshot(occ, raw)
                contract = parse_occ_symbol(occ)
                if contract.root not in keep:
                    continue
                q, g = snap.latest_quote, snap.greeks
                bid = _f(q.bid_price) if q is not None else math.nan
                ask = _f(q.ask_price) if q is not None else math.nan
                rows.append(
                    {
                        "root": contract.root,
                        "expiration": pd.Timestamp(contract.expiration),
                        "strike": contract.strike,
                        "right": contract.right,
                        "bid": bid,
                        "ask": ask,
                        "mid": 0.5 * (bid + ask),
                        "last": _f(snap.latest_trade.price) if snap.latest_trade else math.nan,
                        "volume": math.nan,
                        "open_interest": math.nan,
                        "vendor_implied_vol": _f(snap.implied_volatility),
                        "vendor_delta": _f(g.delta) if g else math.nan,
                        "vendor_gamma": _f(g.gamma) if g else math.nan,
                        "vendor_theta": _f(g.theta) if g else math.nan,
                        "vendor_vega": _f(g.vega) if g else math.nan,
                        "is_liquid": bool(bid > 0 and ask > 0 and ask >= bid),
                    }
                )
            token = data.get("next_page_token")
            if not token:
                break
            params["page_token"] = token
        quotes = quotes_frame(rows)
        return ChainSnapshot(
            symbol,
            now,
            self._last_price(symbol),
            quotes,
            source=f"alpaca:{self.option_feed}",
        )

    def _last_price(self, symbol: str) -> float:
        from alpaca.data.models.trades import Trade

        data = self._request(
            "GET",
            f"{self.data_url}/v2/stocks/trades/latest",
            params={"symbols": symbol, "feed": self.stock_feed},
        )
        raw = (data.get("trades") or {}).get(symbol)
        return math.nan if raw is None else _f(Trade(symbol, raw).price)

    def latest_bar(self, symbol: str) -> Bar | None:
        """The latest minute bar (``GET /v2/stocks/bars/latest``), stamped at its close."""
        from alpaca.data.models.bars import Bar as AlpacaBar

        sym = symbol.strip().upper()
        data = self._request(
            "GET",
            f"{self.data_url}/v2/stocks/bars/latest",
            params={"symbols": sym, "feed": self.stock_feed},
        )
        raw = (data.get("bars") or {}).get(sym)
        if raw is None:
            return None
        bar = AlpacaBar(sym, raw)
        start = _ts(bar.timestamp)
        assert start is not None
        return Bar(
            start + pd.Timedelta(minutes=1),
            float(bar.open),
            float(bar.high),
            float(bar.low),
            float(bar.close),
            float(bar.volume),
        )

    # -- account ----------------------------------------------------------------------------------
    def account(self) -> AccountState:
        """``GET /v2/account``: cash, equity, options buying power (else buying power)."""
        from alpaca.trading.models import TradeAccount

        acct = TradeAccount(**self._request("GET", f"{self.base_url}/v2/account"))
        bp = acct.options_buying_power or acct.buying_power
        return AccountState(_f(acct.cash), _f(acct.equity), _f(bp), acct.currency or "USD")

    def positions(self) -> list[VenuePosition]:
        """``GET /v2/positions``: signed quantities (``side: short`` made negative)."""
        from alpaca.trading.models import Position

        out = []
        for raw in self._request("GET", f"{self.base_url}/v2/positions") or []:
            pos = Position(**raw)
            qty = round(_f(pos.qty, 0.0))
            if str(getattr(pos.side, "value", pos.side)) == "short" and qty > 0:
                qty = -qty
            asset_class = str(getattr(pos.asset_class, "value", pos.asset_class))
            contract = parse_occ_symbol(pos.symbol) if asset_class == "us_option" else None
            out.append(VenuePosition(pos.symbol, int(qty), _f(pos.avg_entry_price), contract))
        return sorted(out, key=lambda p: p.symbol)

    # -- orders -----------------------------------------------------------------------------------
    def order_body(self, request: OrderRequest) -> dict[str, Any]:
        """The JSON body of ``POST /v2/orders`` for ``request`` (built with alpaca-py's
        ``LimitOrderRequest``; a one-leg order is a plain option order, more legs ``mleg``).

        The limit is rounded to the cent in the marketable direction (up): Alpaca's options tick.
        """
        import json

        from alpaca.trading.enums import (
            OrderClass,
            OrderSide,
            OrderType,
            PositionIntent,
            TimeInForce,
        )
        from alpaca.trading.requests import LimitOrderRequest, OptionLegRequest

        def intent(leg: OrderLeg) -> PositionIntent:
            if leg.ratio > 0:
                return PositionIntent.BUY_TO_CLOSE if leg.closes else PositionIntent.BUY_TO_OPEN
            return PositionIntent.SELL_TO_CLOSE if leg.closes else PositionIntent.SELL_TO_OPEN

        limit = math.ceil(round(request.limit_price * 100, 6)) / 100
        if len(request.legs) == 1 and abs(request.legs[0].ratio) == 1:
            leg = request.legs[0]
            side = OrderSide.BUY if leg.ratio > 0 else OrderSide.SELL
            if leg.ratio > 0:
                price = limit
            else:  # a sell's limit is the least it accepts: round down
                price = math.floor(round(-request.limit_price * 100, 6)) / 100
            model = LimitOrderRequest(
                symbol=leg.symbol,
                qty=request.quantity,
                side=side,
                type=OrderType.LIMIT,
                time_in_force=TimeInForce.DAY,
                limit_price=max(price, 0.01),
                client_order_id=request.client_order_id,
                position_intent=intent(leg),
            )
        else:
            model = LimitOrderRequest(
                qty=request.quantity,
                type=OrderType.LIMIT,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.MLEG,
                limit_price=limit,
                client_order_id=request.client_order_id,
                legs=[
                    OptionLegRequest(
                        symbol=leg.symbol,
                        ratio_qty=abs(leg.ratio),
                        side=OrderSide.BUY if leg.ratio > 0 else OrderSide.SELL,
                        position_intent=intent(leg),
                    )
                    for leg in request.legs
                ],
            )
        return json.loads(json.dumps(model.to_request_fields(), default=str))

    def submit_order(self, request: OrderRequest) -> VenueOrder:
        """``POST /v2/orders`` (see :meth:`order_body`)."""
        raw = self._request("POST", f"{self.base_url}/v2/orders", body=self.order_body(request))
        return self._order(raw)

    def get_order(self, order_id: str) -> VenueOrder:
        """``GET /v2/orders/{order_id}?nested=true``."""
        raw = self._request(
            "GET", f"{self.base_url}/v2/orders/{quote(order_id)}", params={"nested": "true"}
        )
        return self._order(raw)

    def get_order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        """``GET /v2/orders:by_client_order_id``; None on 404."""
        raw = self._request(
            "GET",
            f"{self.base_url}/v2/orders:by_client_order_id",
            params={"client_order_id": client_order_id},
            not_found_ok=True,
        )
        return None if raw is None else self._order(raw)

    def open_orders(self) -> list[VenueOrder]:
        """``GET /v2/orders?status=open&nested=true&limit=500``."""
        raw = self._request(
            "GET",
            f"{self.base_url}/v2/orders",
            params={"status": "open", "nested": "true", "limit": 500, "direction": "asc"},
        )
        return [self._order(r) for r in raw or []]

    def cancel_order(self, order_id: str) -> None:
        """``DELETE /v2/orders/{order_id}`` (a 422 "not cancelable", i.e. already done, is
        ignored)."""
        try:
            self._request("DELETE", f"{self.base_url}/v2/orders/{quote(order_id)}")
        except VenueRejected as exc:
            if exc.status not in (404, 422):
                raise

    def cancel_all_orders(self) -> list[str]:
        """``DELETE /v2/orders``: ids of the orders Alpaca set to cancel."""
        raw = self._request("DELETE", f"{self.base_url}/v2/orders") or []
        return [str(r.get("id")) for r in raw]

    def close_all_positions(self) -> list[VenueOrder]:
        """``DELETE /v2/positions?cancel_orders=true``: Alpaca cancels open orders and sends a
        closing market order per position; a position it could not close comes back as a
        ``rejected`` order carrying Alpaca's message."""
        raw = self._request(
            "DELETE", f"{self.base_url}/v2/positions", params={"cancel_orders": "true"}
        )
        out = []
        for item in raw or []:
            body = item.get("body") or {}
            if int(item.get("status", 200)) < 300 and "id" in body:
                out.append(self._order(body))
                continue
            symbol = str(item.get("symbol", ""))
            try:
                legs: tuple[OrderLeg, ...] = (OrderLeg(parse_occ_symbol(symbol), 1),)
            except ValueError:
                legs = ()
            out.append(
                VenueOrder(
                    order_id="",
                    client_order_id=f"close-{symbol}",
                    status="rejected",
                    legs=legs,
                    quantity=1,
                    reason=f"{symbol}: {str(body.get('message', body))[:300]}",
                )
            )
        return out

    # -- parsing ----------------------------------------------------------------------------------
    def _order(self, raw: dict[str, Any]) -> VenueOrder:
        """An Alpaca order (validated by alpaca-py's ``Order``) as a :class:`VenueOrder`.

        Single-leg: one leg of ratio +-1, ``qty`` contracts (a share order has no legs: shares are
        reconciled, not booked). Multi-leg (``order_class: mleg``): ``qty`` combo units, each
        leg's ``ratio_qty`` and ``side``; a leg's ``filled_qty`` is in contracts. Signed net
        limit: the single-leg limit is positive for a buy, negated for a sell; an ``mleg`` limit is
        already signed (> 0 debit).
        """
        from alpaca.trading.models import Order

        order = Order(**raw)
        when = _ts(order.filled_at) or _ts(order.updated_at) or self.now()
        status = str(getattr(order.status, "value", order.status))
        order_class = str(getattr(order.order_class, "value", order.order_class))
        legs: list[OrderLeg] = []
        fills: list[LegFill] = []
        if order_class == "mleg" and order.legs:
            for leg in order.legs:
                contract = parse_occ_symbol(str(leg.symbol))
                sign = 1 if str(getattr(leg.side, "value", leg.side)) == "buy" else -1
                ratio = round(_f(leg.ratio_qty, 1.0))
                legs.append(OrderLeg(contract, sign * int(ratio)))
                done = round(_f(leg.filled_qty, 0.0))
                if done:
                    price = _f(leg.filled_avg_price)
                    at = _ts(leg.filled_at) or when
                    fills.append(LegFill(contract, sign * int(done), price, at))
            limit = _f(order.limit_price)
        else:
            sign = 1 if str(getattr(order.side, "value", order.side)) == "buy" else -1
            limit = sign * _f(order.limit_price)
            try:
                contract = parse_occ_symbol(str(order.symbol))
            except ValueError:  # a share order (closing assigned shares): reconciled, not booked
                contract = None
            if contract is not None:
                legs.append(OrderLeg(contract, sign))
                done = round(_f(order.filled_qty, 0.0))
                if done:
                    price = _f(order.filled_avg_price)
                    fills.append(LegFill(contract, sign * int(done), price, when))
        return VenueOrder(
            order_id=str(order.id),
            client_order_id=order.client_order_id,
            status=status,
            legs=tuple(legs),
            quantity=round(_f(order.qty, 0.0)),
            filled_quantity=round(_f(order.filled_qty, 0.0)),
            limit_price=None if math.isnan(limit) else limit,
            fills=fills,
            submitted_at=_ts(order.submitted_at),
        )


__all__ = [
    "DATA_HOST",
    "DATA_URL",
    "PAPER_HOST",
    "PAPER_URL",
    "TEST_HOSTS",
    "AlpacaAdapter",
    "UnsafeEndpoint",
    "check_endpoint",
]
