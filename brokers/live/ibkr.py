"""Interactive Brokers paper trading as a venue: SPX / SPXW / SPY option chains, BAG combo orders,
positions, executions, commissions and the account, through TWS or IB Gateway with ``ib_async``.

Imported only when a config asks for ``[broker] kind = "ibkr-paper"``.

How it talks to IB
------------------
``ib_async`` (the maintained successor of ``ib_insync``) speaks the TWS API socket protocol to TWS
or IB Gateway on ``[broker.ibkr] host:port`` (7497 TWS paper, 4002 Gateway paper). The login is
TWS's: no credential passes through the config, the environment or this module. The session
refuses an account that is not a paper account (IB paper accounts start with ``DU``).

* **Contracts.** SPX index options trade as two trading classes of the symbol ``SPX``: ``SPX``
  (monthlies, AM-settled on the opening print) and ``SPXW`` (weeklies and dailies, PM-settled on
  the close); the option root of :class:`data_feeds.contracts.OptionContract` is the trading
  class. Contracts are qualified through ``reqContractDetails`` and cached by (root, expiry,
  strike, right); a contract IB does not list is counted in :attr:`IBKRAdapter.unlisted`.
* **Market data.** One snapshot (``reqMktData`` with ``snapshot=True``, i.e. ``reqTickers``) per
  contract of the chain around the money (``strike_range`` of the underlying price, expirations
  within ``max_dte`` days, from ``reqSecDefOptParams``), mapped into the
  :class:`data_feeds.chains.ChainSnapshot` the backtest uses, IB's model greeks as ``vendor_*``
  columns. Delayed data (no options subscription: TWS answers error 10167 and delayed ticks) is
  flagged in the snapshot's ``source`` (``ibkr:delayed``) and :attr:`IBKRAdapter.delayed`.
  A pacing violation (error 100) is waited out and the request repeated (at most three times).
* **Orders.** A multi-leg order is one ``BAG`` order of the legs' contract ids with signed
  ratios (``action = BUY``, the limit signed: > 0 a debit, < 0 a credit); a one-leg order is a
  plain option order. The limit is rounded to ``min_tick`` in the marketable direction. The
  decision's client order id (:func:`brokers.live.safety.client_order_id`, deterministic per
  decision) is the order's ``orderRef``: after a restart or a reconnect, an order is found by it
  among open orders and executions, so a decision is never sent twice. Order ids come from TWS's
  ``nextValidId`` (always above every id used on the account).
* **Fills.** Per leg, from the executions of the order's option legs (the ``BAG`` execution line
  is skipped), commissions from IB's commission reports.
* **Clock.** :meth:`IBKRAdapter.now` is TWS's time (``reqCurrentTime``), read at each
  :meth:`~IBKRAdapter.tick`.
* **Reconnects.** A dropped connection is re-opened by the next call (same client id);
  :meth:`~IBKRAdapter.consume_reconnect` then tells the live broker to reconcile. Farm status
  messages (2104, 2106, 2158) are information, not errors.

Status vocabulary: IB's order states are mapped to Alpaca's, which the live broker speaks
(:data:`STATUS_MAP`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

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
    occ_symbol,
)
from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot, quotes_frame
from data_feeds.contracts import OptionContract, underlying_of

STATUS_MAP = {
    "PendingSubmit": "pending_new",
    "ApiPending": "pending_new",
    "PreSubmitted": "accepted",
    "Submitted": "new",
    "PendingCancel": "pending_cancel",
    "ApiCancelled": "canceled",
    "Cancelled": "canceled",
    "Filled": "filled",
    "Inactive": "rejected",
    "ValidationError": "new",
}
"""IB order status -> the live broker's (Alpaca's) vocabulary; ``Submitted`` with a partial fill
is ``partially_filled``, a ``Cancelled`` order whose log carries a rejection code is
``rejected``."""

INFO_CODES = frozenset({2104, 2106, 2107, 2108, 2119, 2158})
"""TWS farm-status messages: information, never an error."""

REJECT_CODES = frozenset({103, 110, 201, 202, 203, 321, 382, 383, 399, 404, 434, 10147})
"""Error codes that end an order as rejected (202 is a cancel confirmation, see
:meth:`IBKRAdapter._status`)."""

PACING = 100
DELAYED_CODES = frozenset({10167, 10168, 354})
PAPER_PREFIX = "DU"


class IBKRAdapter(VenueAdapter):
    """Interactive Brokers paper account as a :class:`brokers.live.adapter.VenueAdapter`.

    Parameters
    ----------
    underlying : str
        ``SPX`` (index options, trading classes ``SPX`` and ``SPXW``) or an ETF (``SPY``).
    roots : sequence of str, optional
        Trading classes kept in snapshots (default: ``SPX`` + ``SPXW`` for SPX, else the
        underlying).
    host, port, client_id : str, int, int
        TWS / IB Gateway API endpoint and client id.
    account : str, optional
        The paper account to trade when the login manages several.
    market_data : {"live", "delayed"}
        ``reqMarketDataType`` 1 or 3.
    poll_seconds : float
        Seconds between ticks (passed to ``sleep``).
    max_dte : int
        Expirations within this many calendar days of :meth:`now`.
    strike_range : float
        Strikes within this fraction of the underlying price.
    min_tick : float
        Limit price tick, dollars per share.
    timeout : float
        Seconds to wait for an API answer.
    sleep : callable
        Waits between ticks (injected in tests: the fake TWS's clock advances instead).
    max_ticks : int, optional
        End the session after this many ticks.
    ib : ib_async.IB, optional
        Client instance (default: a new one).

    Raises
    ------
    ValueError
        An unknown underlying, a non-positive tick or range.
    """

    name = "ibkr-paper"

    def __init__(
        self,
        underlying: str = "SPX",
        *,
        roots: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        account: str | None = None,
        market_data: str = "live",
        poll_seconds: float = 60.0,
        max_dte: int = 7,
        strike_range: float = 0.03,
        min_tick: float = 0.05,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        max_ticks: int | None = None,
        ib: Any = None,
    ) -> None:
        self.underlying = underlying.strip().upper()
        if self.underlying == "SPX":
            default_roots = ["SPX", "SPXW"]
        else:
            default_roots = [self.underlying]
        self.roots = [r.upper() for r in roots] if roots else default_roots
        if min_tick <= 0 or strike_range <= 0:
            raise ValueError("[broker.ibkr] min_tick and strike_range must be > 0")
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.account_id = account
        self.market_data = market_data
        self.poll_seconds = float(poll_seconds)
        self.max_dte = int(max_dte)
        self.strike_range = float(strike_range)
        self.min_tick = float(min_tick)
        self.timeout = float(timeout)
        self._sleep = sleep
        self.max_ticks = max_ticks
        self._ib = ib
        self._ticks = 0
        self._time: pd.Timestamp | None = None
        self._broken = False
        self._reconnected = False
        self._contracts: dict[tuple[str, dt.date, float, str], Any] = {}
        self._by_con_id: dict[int, OptionContract] = {}
        self._requests: dict[str, OrderRequest] = {}
        self._chains: dict[tuple[str, dt.date], list[Any]] = {}
        self._underlying_contract: Any = None
        self.errors: deque[tuple[int, int, str]] = deque(maxlen=200)
        self.info: list[str] = []
        self.delayed = False
        self.unlisted = 0
        self.pacing_waits = 0
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"IBKRAdapter({self.underlying!r}, {self.host}:{self.port}, client {self.client_id})"

    # -- connection -------------------------------------------------------------------------------
    @property
    def ib(self) -> Any:
        """The ``ib_async.IB`` client (created on first use)."""
        if self._ib is None:
            from ib_async import IB

            self._ib = IB()
        return self._ib

    def connect(self) -> None:
        """Connect, check that the account is a paper account, set the market-data type and read
        the clock.

        Raises
        ------
        TransientVenueError
            TWS / Gateway does not answer (not running, API disabled, wrong port).
        VenueRejected
            The account is not a paper account (``DU...``), or several accounts and none chosen.
        """
        ib = self.ib
        ib.RaiseRequestErrors = False
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnect
        try:
            self._open()
        except TransientVenueError:  # a stale disconnect notice of another socket: once more
            self._open()
        accounts = list(ib.managedAccounts())
        if self.account_id is None:
            if len(accounts) != 1:
                ib.disconnect()
                raise VenueRejected(
                    f"the login manages {len(accounts)} accounts ({', '.join(accounts)}): set "
                    "[broker.ibkr] account to the paper account to trade"
                )
            self.account_id = accounts[0]
        if self.account_id not in accounts or not self.account_id.startswith(PAPER_PREFIX):
            ib.disconnect()
            raise VenueRejected(
                f"account {self.account_id} is not a paper account of this login (IB paper "
                f"accounts start with {PAPER_PREFIX}; managed: {', '.join(accounts)}): "
                "ibkr-paper trades paper accounts only"
            )
        self._time = self._server_time()

    def _open(self) -> None:
        ib = self.ib
        try:
            ib.connect(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.timeout,
                account=self.account_id or "",
            )
        except (ConnectionError, OSError, TimeoutError, asyncio.CancelledError) as exc:
            self._broken = True
            raise TransientVenueError(
                f"TWS / IB Gateway at {self.host}:{self.port} did not answer "
                f"({type(exc).__name__}): is it running with the API enabled on this port?"
            ) from None
        ib.reqMarketDataType(1 if self.market_data == "live" else 3)
        self._broken = False

    def _ensure(self) -> None:
        """Reopen a dropped connection (same client id); the next :meth:`consume_reconnect`
        says so. A stale disconnect notice of the old socket can cancel the first attempt, so
        there are two."""
        if self.ib.isConnected() and not self._broken:
            return
        for attempt in range(2):
            try:
                self.ib.disconnect()
            except (ConnectionError, OSError):
                pass
            try:
                self._open()
                break
            except TransientVenueError:
                if attempt == 1:
                    raise
        self.reconnects += 1
        self._reconnected = True

    @contextmanager
    def _wire(self, what: str, *, maybe_applied: bool = False) -> Iterator[None]:
        """Turn a connection lost during an API call into :class:`TransientVenueError` (the
        next call reconnects)."""
        try:
            yield
        except (ConnectionError, OSError, asyncio.CancelledError) as exc:
            self._broken = True
            raise TransientVenueError(
                f"{what}: connection to TWS lost ({type(exc).__name__})",
                maybe_applied=maybe_applied,
            ) from None

    def close(self) -> None:
        """Disconnect."""
        if self._ib is not None and self._ib.isConnected():
            self._ib.disconnect()

    def consume_reconnect(self) -> bool:
        """True once after the connection was re-opened."""
        out, self._reconnected = self._reconnected, False
        return out

    def _on_disconnect(self) -> None:
        self._broken = True

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code in INFO_CODES:
            self.info.append(f"{code}: {message}")
            return
        if code in DELAYED_CODES:
            self.delayed = True
        self.errors.append((int(req_id), int(code), str(message)))

    # -- clock ------------------------------------------------------------------------------------
    def _server_time(self) -> pd.Timestamp:
        self._ensure()
        with self._wire("reqCurrentTime"):
            when = self.ib.reqCurrentTime()
        return pd.Timestamp(when).tz_convert(TZ)

    def now(self) -> pd.Timestamp:
        """TWS's time at the last :meth:`tick` (tz-aware ET)."""
        if self._time is None:
            return pd.Timestamp.now(tz=TZ)
        return self._time

    def tick(self) -> bool:
        """Wait ``poll_seconds`` (not before the first tick), then read TWS's clock; True until
        ``max_ticks``."""
        if self.max_ticks is not None and self._ticks >= self.max_ticks:
            return False
        if self._ticks > 0 and self.poll_seconds > 0:
            self._sleep(self.poll_seconds)
        self._time = self._server_time()
        self._ticks += 1
        return True

    def sync(self, time: pd.Timestamp | dt.datetime) -> None:
        """Wait until TWS's clock reaches ``time`` (a strategy on its own feed sending an order
        stamped later than the venue clock: its bar's time has to come at the venue first).
        Waits in steps of at most ``poll_seconds``; stops waiting when the clock does not move
        in three steps (a stalled clock is reported by the next tick, not waited for forever)."""
        target = pd.Timestamp(time)
        target = target.tz_localize(TZ) if target.tzinfo is None else target.tz_convert(TZ)
        stalled = 0
        while self._time is not None and self._time < target and stalled < 3:
            before = self._time
            step = (target - self._time).total_seconds()
            self._sleep(min(step, self.poll_seconds) if self.poll_seconds > 0 else step)
            self._time = self._server_time()
            stalled = stalled + 1 if self._time <= before else 0

    # -- contracts --------------------------------------------------------------------------------
    def _underlying(self) -> Any:
        if self._underlying_contract is None:
            from ib_async import Index, Stock

            if self.underlying == "SPX":
                contract = Index("SPX", "CBOE", "USD")
            else:
                contract = Stock(self.underlying, "SMART", "USD")
            with self._wire("qualifyContracts"):
                (qualified,) = self.ib.qualifyContracts(contract) or [None]
            if qualified is None:
                raise VenueRejected(f"IB does not know the underlying {self.underlying}")
            self._underlying_contract = qualified
        return self._underlying_contract

    def option_contract(self, contract: OptionContract) -> Any:
        """The qualified IB contract of ``contract`` (cached), or None when IB does not list it.

        Raises
        ------
        TransientVenueError
            The connection dropped.
        """
        key = (contract.root, contract.expiration, float(contract.strike), contract.right)
        if key not in self._contracts:
            from ib_async import Option

            self._ensure()
            option = Option(
                underlying_of(contract.root),
                f"{contract.expiration:%Y%m%d}",
                float(contract.strike),
                contract.right,
                "SMART",
                multiplier=str(contract.multiplier),
                currency="USD",
                tradingClass=contract.root,
            )
            with self._wire("qualifyContracts"):
                found = self.ib.qualifyContracts(option)
            qualified = found[0] if found and found[0] is not None else None
            self._contracts[key] = qualified
            if qualified is not None:
                self._by_con_id[int(qualified.conId)] = contract
        return self._contracts[key]

    def _option_of(self, ib_contract: Any) -> OptionContract | None:
        con_id = int(getattr(ib_contract, "conId", 0) or 0)
        if con_id in self._by_con_id:
            return self._by_con_id[con_id]
        if getattr(ib_contract, "secType", "") != "OPT":
            return None
        expiry = dt.datetime.strptime(ib_contract.lastTradeDateOrContractMonth[:8], "%Y%m%d")
        root = ib_contract.tradingClass or ib_contract.symbol
        contract = OptionContract(
            root,
            expiry.date(),
            float(ib_contract.strike),
            ib_contract.right[0],
            multiplier=int(float(ib_contract.multiplier or 100)),
        )
        if con_id:
            self._by_con_id[con_id] = contract
        return contract

    # -- market data ------------------------------------------------------------------------------
    def _tickers(self, contracts: Sequence[Any]) -> list[Any]:
        """Snapshot tickers of ``contracts``; a pacing violation (error 100) is waited out and the
        request repeated (three attempts)."""
        for attempt in range(3):
            self._ensure()
            before = len(self.errors)
            with self._wire("reqMktData"):
                tickers = list(self.ib.reqTickers(*contracts))
            fresh = list(self.errors)[before:] if len(self.errors) >= before else []
            if not any(code == PACING for _, code, _ in fresh):
                return tickers
            self.pacing_waits += 1
            self._sleep(1.0 + attempt)
        raise TransientVenueError("IB pacing violation (error 100) three times in a row")

    def _spot(self) -> float:
        (ticker,) = self._tickers([self._underlying()])
        for value in (ticker.last, ticker.close, ticker.marketPrice()):
            if value is not None and math.isfinite(value) and value > 0:
                return float(value)
        return math.nan

    def _chain_contracts(self, spot: float) -> list[tuple[OptionContract, Any]]:
        today = self.now().date()
        key = (self.underlying, today)
        if key not in self._chains:
            und = self._underlying()
            with self._wire("reqSecDefOptParams"):
                params = self.ib.reqSecDefOptParams(und.symbol, "", und.secType, int(und.conId))
            last = today + dt.timedelta(days=self.max_dte)
            wanted: list[OptionContract] = []
            for chain in params:
                if chain.tradingClass not in self.roots:
                    continue
                for expiry in chain.expirations:
                    day = dt.datetime.strptime(expiry, "%Y%m%d").date()
                    if not today <= day <= last:
                        continue
                    for strike in chain.strikes:
                        if abs(strike - spot) <= self.strike_range * spot:
                            for right in ("C", "P"):
                                wanted.append(
                                    OptionContract(chain.tradingClass, day, float(strike), right)  # type: ignore[arg-type]
                                )
            pairs = []
            for contract in sorted(set(wanted), key=str):
                qualified = self.option_contract(contract)
                if qualified is None:
                    self.unlisted += 1
                    continue
                pairs.append((contract, qualified))
            self._chains[key] = pairs
        return self._chains[key]

    def chain_snapshot(self, underlying: str, roots: Sequence[str] | None = None) -> ChainSnapshot:
        """The chain around the money now: bid/ask and IB's model greeks per contract.

        Returns
        -------
        ChainSnapshot
            ``source`` is ``ibkr`` or ``ibkr:delayed``; bid/ask NaN for a contract without a
            quote; ``is_liquid`` = a two-sided, uncrossed quote.
        """
        keep = {r.upper() for r in (roots or self.roots)}
        now = self.now()
        spot = self._spot()
        rows: list[dict[str, Any]] = []
        if math.isfinite(spot):
            pairs = [(c, q) for c, q in self._chain_contracts(spot) if c.root in keep]
            tickers = self._tickers([q for _, q in pairs]) if pairs else []
            for (contract, _), ticker in zip(pairs, tickers, strict=True):
                bid, ask = _price(ticker.bid), _price(ticker.ask)
                greeks = ticker.modelGreeks
                rows.append(
                    {
                        "root": contract.root,
                        "expiration": pd.Timestamp(contract.expiration),
                        "strike": contract.strike,
                        "right": contract.right,
                        "bid": bid,
                        "ask": ask,
                        "mid": 0.5 * (bid + ask),
                        "last": _price(ticker.last),
                        "volume": math.nan,
                        "open_interest": math.nan,
                        "vendor_implied_vol": _greek(greeks, "impliedVol"),
                        "vendor_delta": _greek(greeks, "delta"),
                        "vendor_gamma": _greek(greeks, "gamma"),
                        "vendor_theta": _greek(greeks, "theta"),
                        "vendor_vega": _greek(greeks, "vega"),
                        "is_liquid": bool(bid > 0 and ask > 0 and ask >= bid),
                    }
                )
                if getattr(ticker, "marketDataType", 1) in (3, 4):
                    self.delayed = True
        quotes = quotes_frame(rows)
        source = "ibkr:delayed" if self.delayed else "ibkr"
        return ChainSnapshot(underlying.upper(), now, spot, quotes, source=source)

    def latest_bar(self, symbol: str) -> Bar | None:
        """The underlying's last price as a one-price bar at :meth:`now` (IB's bars are not read:
        the strategies run on chain snapshots); None without a price."""
        if symbol.strip().upper() != self.underlying:
            return None
        spot = self._spot()
        if not math.isfinite(spot):
            return None
        return Bar(self.now(), spot, spot, spot, spot)

    # -- account ----------------------------------------------------------------------------------
    def account(self) -> AccountState:
        """``TotalCashValue``, ``NetLiquidation`` and ``BuyingPower`` (USD) of the paper account,
        freshly requested."""
        self._ensure()
        with self._wire("reqAccountUpdates"):
            self.ib.reqAccountUpdates(self.account_id)
        values = {
            v.tag: float(v.value)
            for v in self.ib.accountValues(self.account_id)
            if v.currency in ("USD", "") and _is_number(v.value)
        }
        return AccountState(
            values.get("TotalCashValue", math.nan),
            values.get("NetLiquidation", math.nan),
            values.get("BuyingPower", math.nan),
        )

    def positions(self) -> list[VenuePosition]:
        """Open positions (options by OCC symbol; IB's ``avgCost`` per contract divided by the
        multiplier)."""
        self._ensure()
        out = []
        with self._wire("reqPositions"):
            held = self.ib.reqPositions()
        for pos in held:
            if pos.account != self.account_id or not pos.position:
                continue
            contract = self._option_of(pos.contract)
            if contract is not None:
                symbol = occ_symbol(contract)
                avg = float(pos.avgCost) / contract.multiplier
            else:
                symbol, avg = str(pos.contract.symbol), float(pos.avgCost)
            out.append(VenuePosition(symbol, round(pos.position), avg, contract))
        return sorted(out, key=lambda p: p.symbol)

    # -- orders -----------------------------------------------------------------------------------
    def _round(self, price: float, up: bool) -> float:
        ticks = price / self.min_tick
        n = math.ceil(round(ticks, 6)) if up else math.floor(round(ticks, 6))
        return round(n * self.min_tick, 10)

    def ib_order(self, request: OrderRequest) -> tuple[Any, Any]:
        """The IB contract and order of ``request``: one BAG of the legs (``BUY``, signed limit)
        or, for one leg of ratio 1, the option itself (``BUY``/``SELL``, positive limit).

        Raises
        ------
        VenueRejected
            A leg IB does not list.
        """
        from ib_async import ComboLeg, Contract, LimitOrder

        qualified = []
        for leg in request.legs:
            contract = self.option_contract(leg.contract)
            if contract is None:
                raise VenueRejected(f"IB does not list {leg.contract}")
            qualified.append((leg, contract))
        if len(qualified) == 1 and abs(qualified[0][0].ratio) == 1:
            leg, contract = qualified[0]
            buy = leg.ratio > 0
            price = self._round(abs(request.limit_price), up=buy)
            order = LimitOrder("BUY" if buy else "SELL", request.quantity, price)
        else:
            contract = Contract(
                secType="BAG",
                symbol=underlying_of(request.legs[0].contract.root),
                currency="USD",
                exchange="SMART",
                comboLegs=[
                    ComboLeg(
                        conId=int(c.conId),
                        ratio=abs(leg.ratio),
                        action="BUY" if leg.ratio > 0 else "SELL",
                        exchange="SMART",
                    )
                    for leg, c in qualified
                ],
            )
            order = LimitOrder("BUY", request.quantity, self._round(request.limit_price, up=True))
        order.orderRef = request.client_order_id
        order.tif = "DAY"
        order.account = self.account_id or ""
        return contract, order

    def submit_order(self, request: OrderRequest) -> VenueOrder:
        """Place the order (see :meth:`ib_order`) and wait for TWS to acknowledge it.

        Raises
        ------
        DuplicateClientOrderId
            An order with this ``orderRef`` is already at IB.
        TransientVenueError
            The connection dropped before the acknowledgement (``maybe_applied``: look the order
            up by its client order id before sending again).
        """
        self._ensure()
        if self._find_trade(request.client_order_id) is not None or self._fills_of(
            request.client_order_id
        ):
            raise DuplicateClientOrderId(
                f"orderRef {request.client_order_id} is already at IB", status=None
            )
        contract, order = self.ib_order(request)
        self._requests[request.client_order_id] = request
        with self._wire("placeOrder", maybe_applied=True):
            trade = self.ib.placeOrder(contract, order)
        deadline = time.monotonic() + self.timeout
        while trade.orderStatus.status in ("PendingSubmit", "ApiPending", ""):
            if self._broken or not self.ib.isConnected():
                self._broken = True
                raise TransientVenueError(
                    "placeOrder: connection lost before TWS acknowledged the order",
                    maybe_applied=True,
                )
            if time.monotonic() > deadline:
                raise TransientVenueError(
                    f"placeOrder: no acknowledgement within {self.timeout:g} s", maybe_applied=True
                )
            with self._wire("placeOrder", maybe_applied=True):
                self.ib.sleep(0.01)
        with self._wire("placeOrder", maybe_applied=True):
            self.ib.sleep(0.05)  # executions and commission reports that follow the status
        return self._order(trade)

    def _find_trade(self, client_order_id: str) -> Any:
        for trade in self.ib.trades():
            if trade.order.orderRef == client_order_id:
                return trade
        return None

    def _fills_of(self, client_order_id: str) -> list[Any]:
        return [
            f
            for f in self.ib.fills()
            if f.execution.orderRef == client_order_id and f.contract.secType == "OPT"
        ]

    def get_order(self, order_id: str) -> VenueOrder:
        """The order with IB order id ``order_id`` (open or filled, this connection or earlier).

        Raises
        ------
        VenueRejected
            IB does not know the order.
        """
        self._ensure()
        with self._wire("orders"):
            self.ib.sleep(0)
        for trade in self.ib.trades():
            if str(trade.order.orderId) == str(order_id):
                return self._order(trade)
        self._refresh()
        for trade in self.ib.trades():
            if str(trade.order.orderId) == str(order_id):
                return self._order(trade)
        for fill in self.ib.fills():
            if str(fill.execution.orderId) == str(order_id):
                return self._order_from_fills(fill.execution.orderRef)
        raise VenueRejected(f"IB does not know order {order_id}")

    def get_order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        """The order whose ``orderRef`` is ``client_order_id``: from this connection's orders,
        else IB's open orders and executions; None when IB has neither."""
        self._ensure()
        trade = self._find_trade(client_order_id)
        if trade is None:
            self._refresh()
            trade = self._find_trade(client_order_id)
        if trade is not None:
            return self._order(trade)
        if self._fills_of(client_order_id):
            return self._order_from_fills(client_order_id)
        return None

    def _refresh(self) -> None:
        with self._wire("reqOpenOrders/reqExecutions"):
            self.ib.reqOpenOrders()
            self.ib.reqExecutions()

    def open_orders(self) -> list[VenueOrder]:
        """IB's open orders of this client (``reqOpenOrders``)."""
        self._ensure()
        with self._wire("reqOpenOrders"):
            self.ib.reqOpenOrders()
        return [self._order(t) for t in self.ib.openTrades()]

    def cancel_order(self, order_id: str) -> None:
        """Cancel one order (nothing when it is already done)."""
        self._ensure()
        for trade in self.ib.openTrades():
            if str(trade.order.orderId) == str(order_id):
                with self._wire("cancelOrder"):
                    self.ib.cancelOrder(trade.order)
                    self.ib.sleep(0.05)
                return

    def cancel_all_orders(self) -> list[str]:
        """``reqGlobalCancel``; returns the ids of the orders that were open."""
        self._ensure()
        ids = [str(t.order.orderId) for t in self.ib.openTrades()]
        with self._wire("reqGlobalCancel"):
            self.ib.reqGlobalCancel()
            self.ib.sleep(0.05)
        return ids

    def close_all_positions(self) -> list[VenueOrder]:
        """Cancel open orders, then send a market order closing each option position (the kill
        switch); returns them."""
        from ib_async import MarketOrder

        self.cancel_all_orders()
        out = []
        for pos in self.positions():
            if pos.contract is None:
                continue
            contract = self.option_contract(pos.contract)
            if contract is None:
                continue
            action = "SELL" if pos.quantity > 0 else "BUY"
            order = MarketOrder(action, abs(pos.quantity))
            order.orderRef = f"kill-{pos.symbol}"[:48]
            order.account = self.account_id or ""
            with self._wire("placeOrder (flatten)", maybe_applied=True):
                trade = self.ib.placeOrder(contract, order)
                self.ib.sleep(0.05)
            out.append(self._order(trade))
        return out

    # -- parsing ----------------------------------------------------------------------------------
    def _status(self, trade: Any) -> tuple[str, str]:
        status = STATUS_MAP.get(trade.orderStatus.status, "new")
        reason = ""
        for entry in trade.log:
            code = getattr(entry, "errorCode", 0)
            if code in REJECT_CODES and code != 202:
                status, reason = "rejected", entry.message
        for req_id, code, message in self.errors:  # an error after the order went Inactive
            if req_id == trade.order.orderId and code in REJECT_CODES and code != 202:
                status, reason = "rejected", f"error {code}: {message}"
        filled, total = trade.orderStatus.filled, trade.order.totalQuantity
        if status in ("new", "accepted") and 0 < filled < total:
            status = "partially_filled"
        return status, reason

    def _legs(self, trade: Any) -> tuple[OrderLeg, ...]:
        ref = trade.order.orderRef
        if ref in self._requests:
            return self._requests[ref].legs
        contract = trade.contract
        sign = 1 if trade.order.action == "BUY" else -1
        if contract.secType == "BAG":
            legs = []
            for leg in contract.comboLegs or []:
                option = self._by_con_id.get(int(leg.conId))
                if option is None:
                    continue
                ratio = int(leg.ratio) * (1 if leg.action == "BUY" else -1) * sign
                legs.append(OrderLeg(option, ratio))
            return tuple(legs)
        option = self._option_of(contract)
        return () if option is None else (OrderLeg(option, sign),)

    def _leg_fills(self, fills: Sequence[Any]) -> list[LegFill]:
        by_leg: dict[OptionContract, list[tuple[int, float, pd.Timestamp]]] = {}
        for fill in fills:
            if fill.contract.secType != "OPT":
                continue  # the BAG line of a combo execution
            option = self._option_of(fill.contract)
            if option is None:
                continue
            ex = fill.execution
            qty = round(ex.shares) * (1 if ex.side == "BOT" else -1)
            when = pd.Timestamp(ex.time).tz_convert(TZ)
            by_leg.setdefault(option, []).append((qty, float(ex.price), when))
        out = []
        for option, parts in by_leg.items():
            qty = sum(p[0] for p in parts)
            if qty == 0:
                continue
            price = sum(abs(p[0]) * p[1] for p in parts) / sum(abs(p[0]) for p in parts)
            out.append(LegFill(option, qty, price, max(p[2] for p in parts)))
        return out

    def _order(self, trade: Any) -> VenueOrder:
        status, reason = self._status(trade)
        fills = self._leg_fills(trade.fills)
        limit = trade.order.lmtPrice
        limit_price = (
            None
            if limit is None or not math.isfinite(limit) or abs(limit) > 1e300
            else (
                float(limit)
                if trade.contract.secType == "BAG" or trade.order.action == "BUY"
                else -float(limit)
            )
        )
        return VenueOrder(
            order_id=str(trade.order.orderId),
            client_order_id=trade.order.orderRef,
            status=status,
            legs=self._legs(trade),
            quantity=round(trade.order.totalQuantity),
            filled_quantity=round(trade.orderStatus.filled),
            limit_price=limit_price,
            fills=fills,
            submitted_at=self.now(),
            reason=reason,
        )

    def _order_from_fills(self, client_order_id: str) -> VenueOrder:
        """A filled order known only from its executions (filled before this connection)."""
        fills = self._fills_of(client_order_id)
        request = self._requests.get(client_order_id)
        leg_fills = self._leg_fills(fills)
        if request is not None:
            legs, quantity = request.legs, request.quantity
            first = request.legs[0]
            done = next(
                (
                    abs(f.quantity) // abs(first.ratio)
                    for f in leg_fills
                    if f.contract == first.contract
                ),
                0,
            )
        else:
            legs = tuple(OrderLeg(f.contract, int(math.copysign(1, f.quantity))) for f in leg_fills)
            quantity = done = min((abs(f.quantity) for f in leg_fills), default=0)
        return VenueOrder(
            order_id=str(fills[0].execution.orderId) if fills else "",
            client_order_id=client_order_id,
            status="filled" if done >= quantity else "partially_filled",
            legs=legs,
            quantity=quantity,
            filled_quantity=done,
            limit_price=None if request is None else request.limit_price,
            fills=leg_fills,
            submitted_at=self.now(),
        )


def _price(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) and x >= 0 else math.nan


def _greek(greeks: Any, name: str) -> float:
    value = getattr(greeks, name, None) if greeks is not None else None
    return math.nan if value is None else float(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


__all__ = ["INFO_CODES", "STATUS_MAP", "IBKRAdapter"]
