"""The small interface between the live broker and a trading venue, and the types it speaks.

A venue is anything that accepts option orders and reports fills, positions and the account: the
local replay venue (:class:`brokers.live.replay.ReplayVenue`) or Alpaca's paper endpoint
(:class:`brokers.live.alpaca.AlpacaAdapter`). :class:`brokers.live.broker.LiveOptionsBroker`
talks to a venue only through :class:`VenueAdapter`, so strategies never see which one it is.

Conventions
-----------
* Contracts are :class:`data_feeds.contracts.OptionContract`; on the wire they are OCC option
  symbols (``SPY240119C00450000``: root, ``YYMMDD`` expiry, right, strike x 1000 on 8 digits),
  see :func:`occ_symbol` / :func:`parse_occ_symbol`.
* An order is ``quantity`` units (> 0) of a combo whose legs carry signed, coprime ratios
  (> 0 buy, < 0 sell): a long straddle of 3 is ratios ``(+1, +1)`` x 3.
* ``limit_price`` is the signed net price per combo unit in dollars per share (index points):
  > 0 a debit (the most the buyer pays), < 0 a credit (the least the seller receives); an order
  fills when its net price at the venue is at or below it.
* Times are tz-aware ``pandas.Timestamp`` in ``America/New_York``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_feeds.contracts import ROOT_SPECS, OptionContract
from data_feeds.errors import VolsuiteError

if TYPE_CHECKING:  # annotations only: `volsuite paper stop` does not load pandas
    import pandas as pd

    from data_feeds.chains import ChainSnapshot

OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "partially_filled",
        "held",
        "pending_cancel",
        "pending_replace",
        "calculated",
    }
)
"""Order statuses (Alpaca's vocabulary) of an order that can still fill."""

TERMINAL_STATUSES = frozenset(
    {"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "stopped"}
)
"""Order statuses after which nothing more fills."""

_OCC = re.compile(r"^([A-Z][A-Z0-9]{0,5})(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")


class VenueError(VolsuiteError):
    """A venue call failed (base class)."""


class TransientVenueError(VenueError):
    """A venue call failed in a way that may succeed when retried: a timeout, a dropped
    connection, HTTP 429 (rate limit) or 5xx.

    Parameters
    ----------
    message : str
        What happened (never contains credentials).
    maybe_applied : bool
        The request may have reached the venue and been applied (a timeout or a dropped
        connection after the request was sent, a 5xx): an order submission must be looked up by
        its client order id before it is sent again.
    retry_after : float, optional
        Seconds the venue asked to wait (``Retry-After`` header of a 429).
    """

    def __init__(
        self, message: str, *, maybe_applied: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after


class VenueRejected(VenueError):
    """The venue refused the request for good (HTTP 4xx other than 429, an invalid order).

    Parameters
    ----------
    message : str
        The venue's reason.
    status : int, optional
        HTTP status.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DuplicateClientOrderId(VenueRejected):
    """The client order id was already used: the venue has the order (an earlier attempt of this
    submission reached it). Look it up with :meth:`VenueAdapter.get_order_by_client_id`."""


def occ_symbol(contract: OptionContract) -> str:
    """OCC option symbol of ``contract`` as Alpaca writes it (root not padded).

    ``ROOT + YYMMDD + C|P + strike x 1000 on 8 digits``; e.g. the SPY 2024-01-19 450 call is
    ``SPY240119C00450000`` (OCC Options Symbology Initiative, 2010; Alpaca drops the padding
    spaces of the 21-character OSI form).

    Raises
    ------
    ValueError
        The strike has more than three decimals or exceeds 99,999.999, or the root is not 1-6
        upper-case letters/digits.
    """
    milli = round(contract.strike * 1000)
    if abs(milli - contract.strike * 1000) > 1e-6 or not 0 < milli < 100_000_000:
        raise ValueError(f"{contract}: strike {contract.strike!r} does not fit an OCC symbol")
    if not re.fullmatch(r"[A-Z][A-Z0-9]{0,5}", contract.root):
        raise ValueError(f"{contract}: root {contract.root!r} does not fit an OCC symbol")
    return f"{contract.root}{contract.expiration:%y%m%d}{contract.right}{milli:08d}"


def parse_occ_symbol(symbol: str, *, multiplier: int = 100) -> OptionContract:
    """The :class:`OptionContract` of an OCC option symbol (inverse of :func:`occ_symbol`).

    Style and settlement come from :data:`data_feeds.contracts.ROOT_SPECS`; an unknown root is
    taken as an American, physically settled equity option (what Alpaca lists).

    Raises
    ------
    ValueError
        ``symbol`` is not an OCC option symbol.
    """
    m = _OCC.match(symbol.strip().upper())
    if m is None:
        raise ValueError(
            f"{symbol!r} is not an OCC option symbol (expected ROOT+YYMMDD+C|P+8-digit strike)"
        )
    root, yy, mm, dd, right, strike = m.groups()
    expiration = dt.date(2000 + int(yy), int(mm), int(dd))
    if root in ROOT_SPECS:
        return OptionContract(root, expiration, int(strike) / 1000.0, right, multiplier=multiplier)  # type: ignore[arg-type]
    return OptionContract(
        root,
        expiration,
        int(strike) / 1000.0,
        right,  # type: ignore[arg-type]
        style="american",
        settlement="physical",
        multiplier=multiplier,
    )


@dataclass(frozen=True)
class OrderLeg:
    """One leg of an order: the contract, its signed ratio per combo unit (> 0 buy) and whether it
    closes (part of) an open position (the position intent sent to the venue: ``buy_to_close``
    vs ``buy_to_open`` ...)."""

    contract: OptionContract
    ratio: int
    closes: bool = False

    @property
    def symbol(self) -> str:
        """OCC symbol of the contract."""
        return occ_symbol(self.contract)


@dataclass(frozen=True)
class OrderRequest:
    """An order as the live broker sends it.

    Attributes
    ----------
    client_order_id : str
        Idempotency key (at most 48 characters); a retried submission reuses it, so the venue
        never books the same order twice (:func:`brokers.live.safety.client_order_id`).
    legs : tuple of OrderLeg
        Legs with coprime signed ratios.
    quantity : int
        Combo units, > 0.
    limit_price : float
        Signed net limit per combo unit (module docstring).
    tag : str
        The strategy's label (kept locally and in the audit log; not sent).
    time_in_force : str
        ``day`` (the only value Alpaca accepts for options).
    reduce_only : bool
        Every leg reduces an open position (closing orders); used for the position intent.

    Raises
    ------
    ValueError
        No legs, a zero ratio, ``quantity < 1``, a non-finite limit.
    """

    client_order_id: str
    legs: tuple[OrderLeg, ...]
    quantity: int
    limit_price: float
    tag: str = ""
    time_in_force: str = "day"
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not self.legs or any(leg.ratio == 0 for leg in self.legs):
            raise ValueError(f"order {self.client_order_id}: legs must have non-zero ratios")
        if self.quantity < 1:
            raise ValueError(f"order {self.client_order_id}: quantity must be >= 1")
        if not math.isfinite(self.limit_price):
            raise ValueError(f"order {self.client_order_id}: limit price must be finite")

    def contracts(self) -> list[tuple[OptionContract, int]]:
        """Signed contracts per leg for the whole order (``ratio * quantity``)."""
        return [(leg.contract, leg.ratio * self.quantity) for leg in self.legs]


@dataclass(frozen=True)
class LegFill:
    """Contracts of one leg filled at one price (dollars per share / index points)."""

    contract: OptionContract
    quantity: int
    price: float
    time: pd.Timestamp


@dataclass
class VenueOrder:
    """An order as the venue reports it.

    Attributes
    ----------
    order_id : str
        The venue's id.
    client_order_id : str
    status : str
        Alpaca's vocabulary (``new``, ``accepted``, ``partially_filled``, ``filled``,
        ``canceled``, ``expired``, ``rejected``, ...).
    legs : tuple of OrderLeg
    quantity : int
        Combo units ordered.
    filled_quantity : int
        Combo units filled so far.
    limit_price : float or None
        Signed net limit per unit.
    fills : list of LegFill
        Per leg, cumulative: the signed contracts filled so far and their average price (one
        entry per leg that has filled; the broker books the increments).
    submitted_at : pandas.Timestamp or None
    reason : str
        Why the venue rejected or cancelled it, when it says.
    """

    order_id: str
    client_order_id: str
    status: str
    legs: tuple[OrderLeg, ...]
    quantity: int
    filled_quantity: int = 0
    limit_price: float | None = None
    fills: list[LegFill] = field(default_factory=list)
    submitted_at: pd.Timestamp | None = None
    reason: str = ""

    @property
    def is_open(self) -> bool:
        """The order can still fill."""
        return self.status in OPEN_STATUSES

    @property
    def is_terminal(self) -> bool:
        """Nothing more will fill."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class VenuePosition:
    """A position at the venue: signed quantity (contracts, or shares for stock) and average
    entry price per unit (dollars per share / index points)."""

    symbol: str
    quantity: int
    avg_price: float
    contract: OptionContract | None = None


@dataclass(frozen=True)
class AccountState:
    """Account figures in dollars: ``cash``, ``equity`` (cash + positions at the venue's
    marks) and ``buying_power``."""

    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"


@dataclass(frozen=True)
class Bar:
    """One bar of the underlying: time of the bar close (tz-aware ET) and OHLCV."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


class VenueAdapter(ABC):
    """What the live broker and the live feeds need from a venue.

    Implementations: :class:`brokers.live.replay.ReplayVenue` (recorded quotes, own clock) and
    :class:`brokers.live.alpaca.AlpacaAdapter` (Alpaca paper trading over REST). Every method
    may raise :class:`TransientVenueError` (retry it) or :class:`VenueRejected` (do not).
    """

    name: str = "venue"

    # -- clock and market data ---------------------------------------------------------------------
    @abstractmethod
    def now(self) -> pd.Timestamp:
        """The venue's clock (tz-aware ET): the current snapshot time for a replay, the wall clock
        for a live venue."""

    @abstractmethod
    def tick(self) -> bool:
        """Advance the clock to the next market-data update (replay: the next recorded snapshot,
        waiting ``delta / speed`` wall seconds; live: wait the poll interval). Resting orders are
        worked and due legs settled at the new time. Returns False when no more data comes."""

    @abstractmethod
    def chain_snapshot(self, underlying: str, roots: Sequence[str] | None = None) -> ChainSnapshot:
        """The option chain of ``underlying`` at :meth:`now`."""

    @abstractmethod
    def latest_bar(self, symbol: str) -> Bar | None:
        """The latest bar of ``symbol`` at :meth:`now` (None when the venue has none)."""

    def next_time(self) -> pd.Timestamp | None:
        """When the next market-data update is due, if the venue knows its schedule (a replay
        does: the next recorded snapshot time); None when it does not (a live venue) or when no
        update follows. Only the time, never the data: a strategy may ask whether the current
        bar is the session's last."""
        return None

    def sync(self, time: pd.Timestamp | dt.datetime) -> None:  # noqa: B027 - optional hook
        """Bring the venue clock forward to ``time`` when a strategy on its own (historical) feed
        sends an order stamped later than the venue clock (replay only; live venues ignore it)."""

    # -- account -----------------------------------------------------------------------------------
    @abstractmethod
    def account(self) -> AccountState:
        """Cash, equity and buying power."""

    @abstractmethod
    def positions(self) -> list[VenuePosition]:
        """Open positions."""

    # -- orders ------------------------------------------------------------------------------------
    @abstractmethod
    def submit_order(self, request: OrderRequest) -> VenueOrder:
        """Send an order. Raises :class:`DuplicateClientOrderId` when its client order id is
        already known to the venue."""

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
        """Book a share (index unit) trade the strategy made at its own price: a delta hedge
        (:meth:`brokers.OptionsBroker.trade_underlying`), mirrored at the venue so that its
        positions and cash keep agreeing with the book.

        Parameters
        ----------
        symbol : str
            Underlying symbol (``SPX`` index units, ``SPY`` shares).
        quantity : int
            Signed shares, non-zero (> 0 buy).
        price : float
            Dollars per share (index points per unit), the caller's fill price.
        time : timestamp
            Trade time.
        commission : float
            Dollars charged, >= 0.
        tag : str
            Label.

        Raises
        ------
        VenueRejected
            The venue takes no share orders (the default; the replay venue does).
        """
        raise VenueRejected(
            f"{self.name}: share orders are not supported by this venue ({symbol} x {quantity}: "
            "a delta-hedged strategy paper-trades on [broker] kind = 'replay')"
        )

    @abstractmethod
    def get_order(self, order_id: str) -> VenueOrder:
        """The order with the venue id ``order_id``."""

    @abstractmethod
    def get_order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        """The order with this client order id, or None when the venue does not know it."""

    @abstractmethod
    def open_orders(self) -> list[VenueOrder]:
        """Orders that can still fill."""

    @abstractmethod
    def cancel_order(self, order_id: str) -> None:
        """Request cancellation of one order (no error when it is already done)."""

    @abstractmethod
    def cancel_all_orders(self) -> list[str]:
        """Request cancellation of every open order; returns their ids."""

    @abstractmethod
    def close_all_positions(self) -> list[VenueOrder]:
        """Send orders that flatten every position (the kill switch); returns them."""

    # -- connection --------------------------------------------------------------------------------
    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the session (check credentials, read the clock)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close the session."""

    def consume_reconnect(self) -> bool:
        """True once after the venue came back from a dropped connection or timeout: the broker
        must reconcile positions and open orders (state may have changed meanwhile)."""
        return False


__all__ = [
    "OPEN_STATUSES",
    "TERMINAL_STATUSES",
    "AccountState",
    "Bar",
    "DuplicateClientOrderId",
    "LegFill",
    "OrderLeg",
    "OrderRequest",
    "TransientVenueError",
    "VenueAdapter",
    "VenueError",
    "VenueOrder",
    "VenuePosition",
    "VenueRejected",
    "occ_symbol",
    "parse_occ_symbol",
]
