"""An options-aware backtest broker on top of backtrader's ``BackBroker``.

Options are not backtrader data feeds (a chain has thousands of contracts), so the broker keeps a
book of option legs, and of shares received by assignment, next to backtrader's own positions.
Strategies send multi-leg orders against the chain snapshot of the moment (one order path,
:meth:`OptionsBroker.execute_snapshot`; quotes a strategy makes itself are wrapped by
:func:`quotes_snapshot`); the broker fills every leg at its bid/ask with the cost model (all legs or
none), checks margin, marks the book at mid, and settles expiring legs (one settlement path,
:meth:`OptionsBroker.settle_due`): SPX (AM) in cash on the opening print of the expiry date, SPXW
(PM) in cash on the close of the NYSE session (13:00 on half days), SPY (physical) by
exercise/assignment of in-the-money legs into shares.

The account identity holds after every operation::

    getvalue() == getcash() + options_value() + underlying_value()   (+ backtrader positions)

See ``docs/brokers.md`` for the conventions and what is not modelled (early exercise, maintenance
margin calls, SOQ prints).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import backtrader as bt
import numpy as np
import pandas as pd

from brokers.costs import OptionCostModel
from brokers.margin import MarginReport, book_requirement, underlying_of
from data_feeds.calendar import TZ
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot, Combo, QuoteUnavailable, settlement_time
from data_feeds.contracts import OptionContract, OptionQuote
from data_feeds.errors import DataSourceError, DataValidationError, VolsuiteError

WINDOW_END_TAG = "window end"
"""Tag of the fills of :meth:`OptionsBroker.close_out` (positions closed when a window ends)."""

ITM_THRESHOLD = 0.01
"""OCC exercise by exception: a physically settled leg at least this far in the money (dollars per
share) at the expiry close is exercised (long) / assigned (short); anything less expires."""

PRICE_SOURCE_AM = "open as SOQ proxy"
"""Label of an AM settlement priced at the index's daily open (no special opening quotation in the
data; the SOQ is computed from each component's first trade and differs from the open print)."""


class OrderRejected(VolsuiteError, ValueError):
    """The broker refused an order; nothing was filled and no cash moved.

    Parameters
    ----------
    reason : str
        What was wrong (names the leg and the rule).
    rejection : Rejection, optional
        The record appended to :attr:`OptionsBroker.rejections`.
    """

    def __init__(self, reason: str, rejection: Rejection | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejection = rejection


class MarginError(OrderRejected):
    """An order refused because the account value after it would not cover the margin
    requirement (``"margin: requirement $12,345 > equity $10,000"``)."""


@dataclass
class OptionPosition:
    """An open option leg: signed contracts, average entry price and last mark (per unit).

    ``marked_at`` is the time of the last mark (``None`` until marked by a snapshot); a leg a
    snapshot did not quote keeps its previous mark and time (see
    :attr:`OptionsBroker.stale_marks`).
    """

    contract: OptionContract
    quantity: int
    avg_price: float
    mark: float
    marked_at: dt.datetime | None = None

    @property
    def market_value(self) -> float:
        """Dollars: ``quantity * mark * multiplier`` (negative for shorts)."""
        return self.quantity * self.mark * self.contract.multiplier


@dataclass
class UnderlyingPosition:
    """Shares of an underlying held in the broker's book (from exercise / assignment).

    ``quantity`` in shares (negative short), ``avg_price`` and ``mark`` in dollars per share.
    """

    symbol: str
    quantity: int
    avg_price: float
    mark: float

    @property
    def market_value(self) -> float:
        """Dollars: ``quantity * mark`` (negative for a short)."""
        return self.quantity * self.mark


@dataclass(frozen=True)
class OptionFill:
    """One executed leg. ``price`` per unit; ``cash_flow`` in dollars (premium and commission)."""

    time: dt.datetime
    contract: OptionContract
    quantity: int
    price: float
    bid: float
    ask: float
    commission: float
    cash_flow: float
    tag: str = ""


@dataclass(frozen=True)
class OptionSettlement:
    """One leg settled at expiry.

    Attributes
    ----------
    time : datetime.datetime
        Settlement time (naive America/New_York wall clock).
    contract : OptionContract
    quantity : int
        Signed contracts settled.
    underlying_price : float
        Settlement value of the underlying (index points / dollars per share).
    value_per_unit : float
        Intrinsic value per unit at ``underlying_price``.
    fee : float
        Dollars of settlement fee.
    cash_flow : float
        Dollars received (> 0) or paid; for an exercise/assignment the strike paid or received for
        the shares.
    kind : str
        ``cash`` (index options), ``exercise`` / ``assignment`` (physical, in the money) or
        ``expired`` (physical, out of the money).
    price_source : str
        Where ``underlying_price`` came from: ``open as SOQ proxy`` (AM) or ``close``.
    shares : int
        Shares delivered into the book (physical settlement), signed.
    """

    time: dt.datetime
    contract: OptionContract
    quantity: int
    underlying_price: float
    value_per_unit: float
    fee: float
    cash_flow: float
    kind: str = "cash"
    price_source: str = "close"
    shares: int = 0


@dataclass(frozen=True)
class StockFill:
    """Shares traded in the broker's book (closing an assignment). Dollars per share / dollars."""

    time: dt.datetime
    symbol: str
    quantity: int
    price: float
    commission: float
    cash_flow: float
    tag: str = ""


@dataclass(frozen=True)
class Rejection:
    """An order the broker refused (see :class:`OrderRejected`)."""

    time: dt.datetime
    legs: tuple[tuple[OptionContract, int], ...]
    reason: str
    tag: str = ""


def _naive_et(time: dt.datetime | pd.Timestamp) -> dt.datetime:
    """A timestamp as a naive America/New_York wall-clock ``datetime`` (the records' convention)."""
    ts = pd.Timestamp(time)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(TZ).tz_localize(None)
    return ts.to_pydatetime()


@lru_cache(maxsize=4096)
def _due(contract: OptionContract) -> pd.Timestamp:
    """Settlement time of ``contract`` (tz-aware ET), cached: it is asked every bar per leg."""
    return settlement_time(contract.expiration, contract.settlement)


def _aware_et(time: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(time)
    return ts.tz_localize(TZ) if ts.tzinfo is None else ts.tz_convert(TZ)


def quotes_snapshot(
    underlying: str,
    time: dt.datetime | pd.Timestamp,
    underlying_price: float,
    quotes: Mapping[OptionContract, OptionQuote],
    *,
    rate: float = 0.0,
    source: str = "quotes",
) -> ChainSnapshot:
    """A :class:`data_feeds.chains.ChainSnapshot` holding one row per quoted contract, so that
    quotes a strategy makes itself trade through :meth:`OptionsBroker.execute_snapshot` like
    chain quotes (``zero_dte_straddle`` wraps its VIX-proxy straddle legs this way).

    Parameters
    ----------
    underlying : str
        Underlying symbol of the legs (``SPX`` for SPX/SPXW roots, ``SPY``).
    time : datetime.datetime or pandas.Timestamp
        Quote time: tz-aware, or naive America/New_York wall clock.
    underlying_price : float
        Underlying at ``time`` (index points / dollars per share; used by the margin check).
    quotes : mapping OptionContract -> OptionQuote
        Bid and ask per unit of each leg (an :class:`OptionQuote` is already validated: finite,
        non-negative, not crossed).
    rate : float
        Continuously compounded rate (decimal) carried by the snapshot.
    source : str
        Label of where the quotes come from (e.g. ``"vix_proxy"``).

    Returns
    -------
    ChainSnapshot
        Columns :data:`data_feeds.chains.QUOTE_COLUMNS`: ``mid = (bid + ask) / 2``,
        ``is_liquid = bid > 0``, vendor fields NaN.

    Raises
    ------
    ValueError
        No quotes, or a leg whose root belongs to another underlying than ``underlying``.
    """
    if not quotes:
        raise ValueError(f"quotes_snapshot({underlying!r}): no quotes given")
    wrong = [str(c) for c in quotes if underlying_of(c.root) != underlying]
    if wrong:
        raise ValueError(f"quotes_snapshot({underlying!r}): legs of another underlying {wrong}")
    contracts = list(quotes)
    bids = np.array([quotes[c].bid for c in contracts], dtype=float)
    asks = np.array([quotes[c].ask for c in contracts], dtype=float)
    columns: dict[str, np.ndarray] = {  # numpy columns: a strategy builds one per order
        "root": np.array([c.root for c in contracts], dtype=object),
        "expiration": np.array([c.expiration for c in contracts], dtype="datetime64[ns]"),
        "strike": np.array([c.strike for c in contracts], dtype=float),
        "right": np.array([c.right for c in contracts], dtype=object),
        "bid": bids,
        "ask": asks,
        "mid": 0.5 * (bids + asks),
        "is_liquid": bids > 0,
    }
    nan = np.full(len(contracts), np.nan)  # last, volume, open interest, vendor fields: unknown
    frame = pd.DataFrame({col: columns.get(col, nan) for col in QUOTE_COLUMNS})
    return ChainSnapshot(
        underlying,
        _aware_et(time),
        float(underlying_price),
        frame,
        rate=rate,
        source=source,
    )


class OptionsBroker(bt.brokers.BackBroker):
    """``BackBroker`` plus a book of option legs and shares, filled at bid/ask, margined, settled.

    Parameters (backtrader ``params``)
    ----------------------------------
    commission_per_contract : float
        Dollars per contract per leg (default 1.0).
    slippage_spread_fraction : float
        Fill offset from mid as a fraction of the spread; 0.5 (default) fills at the touch, 0 at
        mid (available, never the default).
    slippage_by_root : mapping str -> float, optional
        Per-root override of the slippage fraction.
    settlement_fee_per_contract : float
        Dollars per contract at settlement, exercise or assignment (default 0).
    stock_commission_per_share : float
        Dollars per share when closing shares from assignment (default 0).
    margin_check : bool
        Check margin on every order (:meth:`execute_snapshot`, default True).
    margin_rates : mapping str -> MarginRates, optional
        Per-root overrides of :data:`brokers.margin.ROOT_RATES`.
    stock_margin_rate : float
        Requirement on shares, share of market value (Reg-T 0.5).
    settlement_prices : mapping str -> pandas.DataFrame, optional
        Settlement source per underlying symbol (``SPX``, ``SPY``): daily ``open`` and ``close``
        indexed by session date (see :meth:`set_settlement_prices`).

    Notes
    -----
    Cash accounting: buying ``q`` contracts at ``p`` costs ``q * p * multiplier + commission``;
    selling credits the premium less commission; cash settlement pays ``q * intrinsic *
    multiplier``; exercise/assignment moves ``shares * strike`` of cash against the shares.
    Records carry naive America/New_York wall-clock times.
    """

    params = (
        ("commission_per_contract", 1.0),
        ("slippage_spread_fraction", 0.5),
        ("slippage_by_root", None),
        ("settlement_fee_per_contract", 0.0),
        ("stock_commission_per_share", 0.0),
        ("margin_check", True),
        ("margin_rates", None),
        ("stock_margin_rate", 0.5),
        ("settlement_prices", None),
    )

    def __init__(self) -> None:
        super().__init__()
        self.costs = OptionCostModel(
            commission_per_contract=self.p.commission_per_contract,
            slippage_spread_fraction=self.p.slippage_spread_fraction,
            settlement_fee_per_contract=self.p.settlement_fee_per_contract,
            slippage_by_root=self.p.slippage_by_root,
            stock_commission_per_share=self.p.stock_commission_per_share,
        )
        self.option_positions: dict[OptionContract, OptionPosition] = {}
        self.underlying_positions: dict[str, UnderlyingPosition] = {}
        self.option_fills: list[OptionFill] = []
        self.option_settlements: list[OptionSettlement] = []
        self.stock_fills: list[StockFill] = []
        self.window_end_fills: list[OptionFill | StockFill] = []
        self.rejections: list[Rejection] = []
        self.stale_marks: list[tuple[dt.datetime, OptionContract]] = []
        self.underlying_prices: dict[str, float] = {}
        self.margin_notes: list[str] = []
        self._settlement: dict[str, dict[dt.date, tuple[float, float]]] = {}
        #: the last snapshot marked per underlying symbol (its quotes close a window: close_out)
        self._last_snapshot: dict[str, ChainSnapshot] = {}
        for symbol, frame in (self.p.settlement_prices or {}).items():
            self.set_settlement_prices(frame, symbol)

    # -- settlement source ------------------------------------------------------------------------
    def set_settlement_prices(self, frame: pd.DataFrame, underlying: str) -> None:
        """Register the daily ``open``/``close`` of ``underlying`` used to settle expiring legs.

        Parameters
        ----------
        frame : pandas.DataFrame
            Columns ``open`` and ``close`` (index points / dollars per share), indexed by session
            date (``DatetimeIndex``, naive or tz-aware; only the date is used), e.g.
            ``load_ohlc("../shared/data/index/spx_vix_spy_qqq_daily.csv", root="SPX")``.
        underlying : str
            Underlying symbol (``SPX`` for SPX and SPXW legs, ``SPY``).

        Raises
        ------
        DataValidationError
            A missing ``open``/``close`` column or a duplicated date.
        """
        source = f"settlement prices[{underlying}]"
        missing = [c for c in ("open", "close") if c not in frame.columns]
        if missing:
            raise DataValidationError(
                source, f"missing column(s) {missing}; expected daily 'open' and 'close'"
            )
        dates = pd.DatetimeIndex(frame.index).date
        if len(set(dates)) != len(dates):
            dup = pd.Index(dates)[pd.Index(dates).duplicated()][0]
            raise DataValidationError(source, "duplicated date", row=f"{dup:%Y-%m-%d}")
        self._settlement[underlying] = dict(
            zip(
                dates,
                zip(
                    frame["open"].to_numpy(float).tolist(),
                    frame["close"].to_numpy(float).tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )

    def settlement_price(self, contract: OptionContract) -> tuple[float, str]:
        """Settlement value of the underlying for ``contract`` from the settlement source.

        AM legs settle at the open of the expiration date (labelled ``"open as SOQ proxy"``: the
        data has no special opening quotation), PM and physical legs at the close.

        Returns
        -------
        price : float
            Index points / dollars per share.
        source : str
            ``"open as SOQ proxy"`` or ``"close"``.

        Raises
        ------
        DataSourceError
            No settlement source for the underlying, no row for the expiration date, or a
            non-finite value there.
        """
        symbol = underlying_of(contract.root)
        table = self._settlement.get(symbol)
        if table is None:
            raise DataSourceError(
                f"{contract}: no settlement prices for {symbol}; give settlement_prices="
                f"{{'{symbol}': frame}} or call set_settlement_prices(frame, '{symbol}')"
            )
        row = table.get(contract.expiration)
        am = contract.settlement == "AM"
        field, label = ("open", PRICE_SOURCE_AM) if am else ("close", "close")
        value = float("nan") if row is None else row[0 if am else 1]
        if not math.isfinite(value):
            raise DataSourceError(
                f"settlement prices[{symbol}], row {contract.expiration:%Y-%m-%d}, field "
                f"'{field}': {'no row' if row is None else 'not finite'}; {contract} cannot settle"
            )
        return value, label

    def daily_close(self, symbol: str, day: dt.date) -> float | None:
        """Close of ``symbol`` on ``day`` from the settlement source, ``None`` if absent."""
        row = self._settlement.get(symbol, {}).get(day)
        return None if row is None or not math.isfinite(row[1]) else row[1]

    # -- orders -----------------------------------------------------------------------------------
    def _reject(
        self,
        reason: str,
        time: dt.datetime | pd.Timestamp,
        legs: Sequence[tuple[OptionContract, int]],
        tag: str,
        error: type[OrderRejected] = OrderRejected,
    ) -> OrderRejected:
        record = Rejection(_naive_et(time), tuple(legs), reason, tag)
        self.rejections.append(record)
        return error(reason, record)

    def execute_snapshot(
        self,
        legs_or_combo: Combo | Sequence[tuple[OptionContract, int]],
        quantity: int,
        snapshot: ChainSnapshot,
        tag: str = "",
    ) -> list[OptionFill]:
        """Fill ``quantity`` units of a combo against ``snapshot``'s bid/ask (all legs or none).

        The broker's only order path: every strategy sends its orders here, with a chain snapshot
        from the store or, for quotes a strategy makes itself (``zero_dte_straddle``'s VIX proxy),
        a one-row-per-leg snapshot from :func:`quotes_snapshot`. The same rules apply to every
        order: zero bids refused, margin checked (``margin_check``), legs past their settlement
        time refused. Each leg trades ``ratio * quantity`` contracts at the cost model's price
        (``mid +- f * spread``), pays the per-contract commission, and is marked at the snapshot
        mid.

        Parameters
        ----------
        legs_or_combo : Combo or sequence of (OptionContract, int)
            A :class:`data_feeds.chains.Combo` or legs with signed ratios per combo unit.
        quantity : int
            Combo units, non-zero; > 0 buys the combo as given, < 0 sells it (flips every leg).
        snapshot : ChainSnapshot
            The chain at the moment of the order; fills are stamped ``snapshot.quote_time``.
        tag : str
            Label carried into the fills.

        Returns
        -------
        list of OptionFill
            One per leg, in leg order.

        Raises
        ------
        OrderRejected
            (a ``ValueError``; logged in :attr:`rejections`, nothing filled) ``quantity`` or a
            ratio is zero; a leg expired before the snapshot date, is not quoted in the snapshot,
            has a non-finite bid/ask, is already settled at the snapshot time (an SPX AM leg on
            its expiry date at or after 09:30, a PM leg at or after the session close); a sold
            leg has bid 0 (nobody pays for it); a bought leg has ask 0 (no offer).
        MarginError
            ``margin_check`` is on and the account value after the order would be below the
            margin requirement while the order lowers the margin excess.
        """
        ratios = list(legs_or_combo.legs if isinstance(legs_or_combo, Combo) else legs_or_combo)
        time = snapshot.quote_time
        legs = [(c, int(r) * int(quantity)) for c, r in ratios]
        if quantity == 0 or not legs or any(r == 0 for _, r in ratios):
            raise self._reject(
                f"quantity ({quantity}) and every leg ratio must be non-zero", time, legs, tag
            )
        planned = []
        for contract, qty in legs:
            if contract.expiration < snapshot.quote_date:
                raise self._reject(
                    f"{contract}: expired before {snapshot.quote_date:%Y-%m-%d}", time, legs, tag
                )
            if not snapshot.has(contract):
                raise self._reject(
                    f"{contract}: not quoted in the {snapshot.underlying} snapshot of "
                    f"{time:%Y-%m-%d %H:%M} (no quote to fill at)",
                    time,
                    legs,
                    tag,
                )
            due = _due(contract)
            if time >= due:
                raise self._reject(
                    f"{contract}: already settled ({contract.settlement} settlement at "
                    f"{due:%Y-%m-%d %H:%M}); the quote at {time:%Y-%m-%d %H:%M} is not tradable",
                    time,
                    legs,
                    tag,
                )
            row = snapshot.row(contract)
            bid, ask = float(row["bid"]), float(row["ask"])
            if not (math.isfinite(bid) and math.isfinite(ask)) or bid < 0 or bid > ask:
                raise self._reject(
                    f"{contract}: no valid two-sided quote (bid={bid}, ask={ask})", time, legs, tag
                )
            if qty < 0 and bid <= 0:
                raise self._reject(
                    f"{contract}: bid is 0, nobody pays for it; refusing to sell "
                    f"{-qty} contract(s)",
                    time,
                    legs,
                    tag,
                )
            if qty > 0 and ask <= 0:
                raise self._reject(f"{contract}: ask is 0, no offer to buy", time, legs, tag)
            planned.append((contract, qty, OptionQuote(bid, ask)))
        if math.isfinite(snapshot.underlying_price):
            self.underlying_prices[underlying_of(snapshot.underlying)] = float(
                snapshot.underlying_price
            )
        self._pre_trade(legs, time, tag)
        if self.p.margin_check:
            prices = self._prices_or_parity_forward(snapshot, [c for c, _q, _ in planned])
            self._check_margin(planned, prices, time, tag)
        return self._fill(planned, time, tag)

    def _prices_or_parity_forward(
        self, snapshot: ChainSnapshot, contracts: Sequence[OptionContract]
    ) -> dict[str, float]:
        """Underlying prices for a margin check: the last seen ones, and for an underlying with
        no finite price the put-call-parity forward of the leg's expiry on ``snapshot``
        (:meth:`data_feeds.chains.ChainSnapshot.forward`; noted in :attr:`margin_notes`). An
        underlying with neither stays missing (the margin check then names it)."""
        prices = dict(self.underlying_prices)
        for c in contracts:
            sym = underlying_of(c.root)
            if math.isfinite(prices.get(sym, float("nan"))):
                continue
            try:
                fwd = snapshot.forward(c.expiration, c.root)
            except QuoteUnavailable:  # no two-sided pair: the margin check names the price
                continue
            if math.isfinite(fwd) and fwd > 0:
                prices[sym] = float(fwd)
                self.margin_notes.append(
                    f"{snapshot.quote_time:%Y-%m-%d %H:%M}: no {sym} price; margin used the "
                    f"parity forward {fwd:.2f} of {c.root} {c.expiration:%Y-%m-%d}"
                )
        return prices

    def _pre_trade(
        self,
        legs: Sequence[tuple[OptionContract, int]],
        time: dt.datetime | pd.Timestamp,
        tag: str,
    ) -> None:
        """Checks made before the margin check: none here; the live broker's kill switch and
        pre-trade limits (:class:`brokers.live.LiveOptionsBroker`) raise :class:`OrderRejected`."""

    def _fill(
        self,
        planned: Sequence[tuple[OptionContract, int, OptionQuote]],
        time: dt.datetime | pd.Timestamp,
        tag: str,
    ) -> list[OptionFill]:
        stamp = _naive_et(time)
        fills = []
        for contract, qty, quote in planned:
            price = self.costs.fill_price(quote, qty, contract.root)
            commission = self.costs.commission(qty)
            cash_flow = -qty * price * contract.multiplier - commission
            self.cash += cash_flow
            self._book(contract, qty, price, quote.mid, stamp)
            fill = OptionFill(
                stamp, contract, qty, price, quote.bid, quote.ask, commission, cash_flow, tag
            )
            self.option_fills.append(fill)
            fills.append(fill)
        self._refresh_value()
        return fills

    def _book(
        self,
        contract: OptionContract,
        qty: int,
        price: float,
        mark: float,
        time: dt.datetime | None = None,
    ) -> None:
        pos = self.option_positions.get(contract)
        if pos is None:
            self.option_positions[contract] = OptionPosition(contract, qty, price, mark, time)
            return
        new_qty = pos.quantity + qty
        if new_qty == 0:
            del self.option_positions[contract]
            return
        if (pos.quantity > 0) == (qty > 0):  # adding to the position: average the price
            pos.avg_price = (pos.avg_price * pos.quantity + price * qty) / new_qty
        elif (pos.quantity > 0) != (new_qty > 0):  # flipped through zero
            pos.avg_price = price
        pos.quantity = new_qty
        pos.mark = mark
        pos.marked_at = time

    # -- margin -----------------------------------------------------------------------------------
    def margin_report(
        self,
        underlying_prices: Mapping[str, float] | None = None,
        extra_legs: Sequence[tuple[OptionContract, int, float]] = (),
    ) -> MarginReport:
        """Margin requirement of the current book (plus ``extra_legs``), see :mod:`brokers.margin`.

        Parameters
        ----------
        underlying_prices : mapping str -> float, optional
            Underlying prices by symbol (default: the last seen, :attr:`underlying_prices`).
        extra_legs : sequence of (OptionContract, int, float)
            Hypothetical legs (contract, signed contracts, mark per unit) added to the book.

        Returns
        -------
        MarginReport
        """
        prices = dict(self.underlying_prices if underlying_prices is None else underlying_prices)
        book: dict[OptionContract, list] = {
            c: [p.quantity, p.mark] for c, p in self.option_positions.items()
        }
        for c, q, mark in extra_legs:
            entry = book.setdefault(c, [0, mark])
            entry[0] += q
            entry[1] = mark
        shares = {s: (p.quantity, p.mark) for s, p in self.underlying_positions.items()}
        return book_requirement(
            [(c, q, m) for c, (q, m) in book.items() if q != 0],
            prices,
            shares=shares,
            rates=self.p.margin_rates,
            stock_rate=self.p.stock_margin_rate,
        )

    def _check_margin(
        self,
        planned: Sequence[tuple[OptionContract, int, OptionQuote]],
        prices: Mapping[str, float],
        time: dt.datetime | pd.Timestamp,
        tag: str,
    ) -> None:
        legs = [(c, q) for c, q, _ in planned]
        try:
            before = self.margin_report(prices).requirement
            after = self.margin_report(prices, [(c, q, quote.mid) for c, q, quote in planned])
        except ValueError as exc:
            raise self._reject(f"margin: {exc}", time, legs, tag, MarginError) from exc
        value_before = self._get_value()
        cash_delta = 0.0
        book = {c: (p.quantity, p.mark) for c, p in self.option_positions.items()}
        touched: dict[OptionContract, tuple[int, float]] = {}
        for c, q, quote in planned:
            price = self.costs.fill_price(quote, q, c.root)
            cash_delta -= q * price * c.multiplier + self.costs.commission(q)
            qty, _ = touched.get(c, book.get(c, (0, quote.mid)))
            touched[c] = (qty + q, quote.mid)  # re-marked at this quote's mid after the fill
        mark_delta = sum(
            (qty * mark - book.get(c, (0, 0.0))[0] * book.get(c, (0, 0.0))[1]) * c.multiplier
            for c, (qty, mark) in touched.items()
        )
        value_after = value_before + cash_delta + mark_delta
        excess_before = value_before - before
        excess_after = value_after - after.requirement
        if excess_after < 0 and excess_after < excess_before:
            raise self._reject(
                f"margin: requirement ${after.requirement:,.0f} > equity ${value_after:,.0f}",
                time,
                legs,
                tag,
                MarginError,
            )

    # -- marks ------------------------------------------------------------------------------------
    def mark_options(self, marks: Mapping[OptionContract, float]) -> None:
        """Set per-unit marks (usually quote mids) of open legs; unknown contracts are ignored."""
        for contract, mark in marks.items():
            pos = self.option_positions.get(contract)
            if pos is not None:
                pos.mark = float(mark)
        self._refresh_value()

    def mark_to_snapshot(self, snapshot: ChainSnapshot) -> int:
        """Mark every open leg on ``snapshot``'s underlying at the snapshot mid, and its shares at
        the snapshot's underlying price.

        A leg the snapshot does not quote (or quotes with a NaN mid) keeps its last mark; each such
        case is appended to :attr:`stale_marks` as ``(time, contract)`` and counted. Legs whose
        settlement time has passed are left for settlement (not re-marked, not counted). The
        snapshot's underlying and each leg's root are compared through the one root table
        (:func:`data_feeds.contracts.underlying_of`), so a snapshot labelled with a root
        (``SPXW``) still marks its legs, and a leg it cannot mark is counted stale, never
        skipped.

        Parameters
        ----------
        snapshot : ChainSnapshot

        Returns
        -------
        int
            Number of legs left at a stale mark.
        """
        time = snapshot.quote_time
        stamp = _naive_et(time)
        symbol = underlying_of(snapshot.underlying)
        self._last_snapshot[symbol] = snapshot
        if math.isfinite(snapshot.underlying_price):
            self.underlying_prices[symbol] = float(snapshot.underlying_price)
            self.mark_underlying(symbol, float(snapshot.underlying_price))
        stale = 0
        for contract, pos in self.option_positions.items():
            if underlying_of(contract.root) != symbol:
                continue
            if time >= _due(contract):
                continue
            mid = snapshot.mid(contract)
            if math.isfinite(mid):
                pos.mark = mid
                pos.marked_at = stamp
            else:
                stale += 1
                self.stale_marks.append((stamp, contract))
        self._refresh_value()
        return stale

    def mark_underlying(self, symbol: str, price: float) -> None:
        """Mark shares of ``symbol`` at ``price`` (dollars per share) and remember the price.

        Raises
        ------
        ValueError
            ``price`` is not finite and positive.
        """
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"{symbol}: underlying price must be finite and > 0, got {price!r}")
        self.underlying_prices[symbol] = float(price)
        pos = self.underlying_positions.get(symbol)
        if pos is not None:
            pos.mark = float(price)
            self._refresh_value()

    # -- settlement -------------------------------------------------------------------------------
    def settle_due(
        self, until: dt.datetime | pd.Timestamp, *, advance: bool = False
    ) -> list[OptionSettlement]:
        """Settle every open leg whose settlement time is at or before ``until``, at the price of
        the settlement source (:meth:`settlement_price`): the broker's only settlement path.

        Settlement times come from :func:`data_feeds.chains.settlement_time` (the NYSE calendar of
        ``exchange_calendars``). AM legs settle at 09:30 ET of the expiration date at the day's
        open ("open as SOQ proxy"); PM legs at the session close (16:00, 13:00 on an early-close
        day such as 2019-07-03) at the day's close; physical (SPY) legs at the session close at
        the close: a leg at least $0.01 in the money is exercised (long) or assigned (short) into
        shares at the strike (long call +100 shares per contract, short call -100, long put -100,
        short put +100) and shares are marked at the close; out-of-the-money legs expire
        worthless. No early exercise. Each record is stamped with the leg's settlement time, not
        with ``until``.

        Parameters
        ----------
        until : datetime or pandas.Timestamp
            Tz-aware, or naive America/New_York wall clock.
        advance : bool
            ``until`` is the caller's own clock (a strategy on one bar per session saying its
            session is over). The backtest broker has no other clock and ignores it; a broker whose
            fills come from a venue first brings the venue clock to ``until``
            (:meth:`brokers.live.LiveOptionsBroker.settle_due`).

        Returns
        -------
        list of OptionSettlement

        Raises
        ------
        DataSourceError
            A due leg has no settlement price in the source (nothing is settled then).
        """
        limit = _aware_et(until)
        due = [c for c in self.option_positions if _due(c) <= limit]
        due.sort(key=lambda c: (c.expiration, c.settlement != "AM", str(c)))
        priced = {c: self.settlement_price(c) for c in due}  # all or nothing
        done = []
        for contract in due:
            price, label = priced[contract]
            when = _due(contract)
            done.append(self._settle_leg(contract, price, when, label))
        self._refresh_value()
        return done

    def _settle_leg(
        self,
        contract: OptionContract,
        price: float,
        time: dt.datetime | pd.Timestamp,
        label: str,
    ) -> OptionSettlement:
        pos = self.option_positions.pop(contract)
        value = contract.intrinsic(price)
        fee = self.costs.settlement_fee(pos.quantity)
        stamp = _naive_et(time)
        if contract.settlement != "physical":
            cash_flow = pos.quantity * value * contract.multiplier - fee
            self.cash += cash_flow
            record = OptionSettlement(
                stamp, contract, pos.quantity, price, value, fee, cash_flow, "cash", label
            )
        else:
            itm = price - contract.strike if contract.right == "C" else contract.strike - price
            if round(itm, 9) >= ITM_THRESHOLD:
                direction = 1 if contract.right == "C" else -1
                shares = direction * pos.quantity * contract.multiplier
                cash_flow = -shares * contract.strike - fee
                self.cash += cash_flow
                symbol = underlying_of(contract.root)
                self._book_shares(symbol, shares, contract.strike, price)
                self.underlying_prices[symbol] = price
                kind = "exercise" if pos.quantity > 0 else "assignment"
            else:
                shares, kind = 0, "expired"
                cash_flow = -fee
                self.cash += cash_flow
            record = OptionSettlement(
                stamp, contract, pos.quantity, price, value, fee, cash_flow, kind, label, shares
            )
        self.option_settlements.append(record)
        return record

    # -- shares -----------------------------------------------------------------------------------
    def _book_shares(self, symbol: str, qty: int, price: float, mark: float) -> None:
        pos = self.underlying_positions.get(symbol)
        if pos is None:
            self.underlying_positions[symbol] = UnderlyingPosition(symbol, qty, price, mark)
            return
        new_qty = pos.quantity + qty
        if new_qty == 0:
            del self.underlying_positions[symbol]
            return
        if (pos.quantity > 0) == (qty > 0):
            pos.avg_price = (pos.avg_price * pos.quantity + price * qty) / new_qty
        elif (pos.quantity > 0) != (new_qty > 0):
            pos.avg_price = price
        pos.quantity = new_qty
        pos.mark = mark

    def close_underlying(
        self,
        symbol: str,
        price: float,
        time: dt.datetime | pd.Timestamp,
        quantity: int | None = None,
        tag: str = "",
    ) -> StockFill:
        """Trade shares of ``symbol`` held in the book at ``price`` with the stock commission.

        Parameters
        ----------
        symbol : str
            Underlying symbol (``SPY``).
        price : float
            Dollars per share (no spread model: the caller chooses the price, e.g. the close).
        time : datetime or pandas.Timestamp
            Trade time.
        quantity : int, optional
            Signed shares to trade (default: ``-held``, i.e. flatten the position).
        tag : str
            Label.

        Returns
        -------
        StockFill

        Raises
        ------
        ValueError
            No shares of ``symbol`` held, ``quantity`` zero or larger than the holding in the
            closing direction, or a non-positive price.
        """
        pos = self.underlying_positions.get(symbol)
        if pos is None:
            raise ValueError(f"no {symbol} shares held")
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"{symbol}: price must be finite and > 0, got {price!r}")
        qty = -pos.quantity if quantity is None else int(quantity)
        if qty == 0 or (qty > 0) == (pos.quantity > 0) or abs(qty) > abs(pos.quantity):
            raise ValueError(
                f"{symbol}: close_underlying trades against the holding of {pos.quantity} "
                f"shares; got quantity {qty}"
            )
        commission = self.costs.stock_commission(qty)
        cash_flow = -qty * price - commission
        self.cash += cash_flow
        self._book_shares(symbol, qty, price, price)
        fill = StockFill(_naive_et(time), symbol, qty, float(price), commission, cash_flow, tag)
        self.stock_fills.append(fill)
        self._refresh_value()
        return fill

    def trade_underlying(
        self,
        symbol: str,
        quantity: int,
        price: float,
        time: dt.datetime | pd.Timestamp,
        *,
        commission: float | None = None,
        tag: str = "",
    ) -> StockFill:
        """Buy (``quantity > 0``) or sell shares of ``symbol`` at ``price``, opening, adding to,
        reducing or flipping the holding (e.g. a delta hedge); no margin check.

        Parameters
        ----------
        symbol : str
            Underlying symbol (``SPX`` index units, ``SPY`` shares).
        quantity : int
            Signed shares (index units) to trade, non-zero.
        price : float
            Dollars per share (index points per unit) paid or received: the caller's fill price
            including any half spread (no spread model here).
        time : datetime or pandas.Timestamp
            Trade time.
        commission : float, optional
            Dollars charged for the trade, >= 0 (default: ``stock_commission_per_share *
            |quantity|``).
        tag : str
            Label.

        Returns
        -------
        StockFill
            Appended to :attr:`stock_fills`; cash moves by ``-quantity * price - commission``.

        Raises
        ------
        ValueError
            ``quantity`` zero, non-positive or non-finite ``price``, negative or non-finite
            ``commission``.
        """
        qty = int(quantity)
        if qty == 0 or qty != quantity:
            raise ValueError(
                f"{symbol}: trade_underlying needs a non-zero integer quantity, got {quantity!r}"
            )
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"{symbol}: price must be finite and > 0, got {price!r}")
        fee = self.costs.stock_commission(qty) if commission is None else float(commission)
        if not (math.isfinite(fee) and fee >= 0):
            raise ValueError(f"{symbol}: commission must be finite and >= 0, got {commission!r}")
        cash_flow = -qty * price - fee
        self.cash += cash_flow
        mark = self.underlying_prices.get(symbol, float(price))
        self._book_shares(symbol, qty, float(price), mark)
        fill = StockFill(_naive_et(time), symbol, qty, float(price), fee, cash_flow, tag)
        self.stock_fills.append(fill)
        self._refresh_value()
        return fill

    # -- end of a backtest window ----------------------------------------------------------------
    def close_out(
        self, time: dt.datetime | pd.Timestamp, tag: str = WINDOW_END_TAG
    ) -> list[OptionFill | StockFill]:
        """Close every open leg and share position at its mark: the end of a backtest window.

        The closing fills are kept in :attr:`window_end_fills` (not in :attr:`option_fills` /
        :attr:`stock_fills`, which hold what the strategy traded) and appear in
        :meth:`fills_frame` as ``event = "window_end"``.

        A backtest window (an in-sample trial or an out-of-sample fold) ends flat, so the next
        fold's account starts from cash equal to this window's final equity, and the fills of
        ``trades.csv`` alone account for the window's change of equity (docs/brokers.md, "End of
        a window"). Each open leg becomes a fill at its last mark (the last snapshot's mid) with
        no commission, each share position a trade at its mark with no commission: the account
        value does not change, only positions turn into cash. The exit is free, which flatters
        a run by the spread and commission a real exit would pay; the fill keeps the last
        snapshot's bid/ask (when the leg was quoted there) so reports can show that cost
        (:func:`experiments.metrics.trade_stats`, ``window_end_exit_cost``).

        Parameters
        ----------
        time : datetime.datetime or pandas.Timestamp
            The window's end (e.g. the last session's close); stamps the closing fills.
        tag : str
            Tag of the closing fills (default ``"window end"``).

        Returns
        -------
        list of OptionFill and StockFill
            The closing fills, in book order; empty when the book is flat.
        """
        stamp = _naive_et(time)
        fills: list[OptionFill | StockFill] = []
        for contract, pos in list(self.option_positions.items()):
            bid = ask = pos.mark
            snap = self._last_snapshot.get(underlying_of(contract.root))
            if snap is not None and snap.quote_time < _due(contract) and snap.has(contract):
                row = snap.row(contract)
                if math.isfinite(float(row["bid"])) and math.isfinite(float(row["ask"])):
                    bid, ask = float(row["bid"]), float(row["ask"])
            qty = -pos.quantity
            cash_flow = -qty * pos.mark * contract.multiplier
            self.cash += cash_flow
            del self.option_positions[contract]
            fills.append(OptionFill(stamp, contract, qty, pos.mark, bid, ask, 0.0, cash_flow, tag))
        for symbol, shares in list(self.underlying_positions.items()):
            qty = -shares.quantity
            cash_flow = -qty * shares.mark
            self.cash += cash_flow
            del self.underlying_positions[symbol]
            fills.append(StockFill(stamp, symbol, qty, shares.mark, 0.0, cash_flow, tag))
        self.window_end_fills.extend(fills)
        self._refresh_value()
        return fills

    # -- value ------------------------------------------------------------------------------------
    def options_value(self) -> float:
        """Dollars: mark-to-market value of the option book (shorts negative)."""
        return float(sum(p.market_value for p in self.option_positions.values()))

    def underlying_value(self) -> float:
        """Dollars: shares in the book at their marks (shorts negative)."""
        return float(sum(p.market_value for p in self.underlying_positions.values()))

    def _get_value(self, datas=None, lever=False):
        value = super()._get_value(datas=datas, lever=lever)
        if datas:  # value of specific backtrader data positions requested: no option book
            return value
        book = self.options_value() + self.underlying_value()
        self._value += book
        self._valuelever += book
        return value + book

    def _refresh_value(self) -> None:
        self._get_value()

    # -- reports ----------------------------------------------------------------------------------
    def positions_frame(self) -> pd.DataFrame:
        """Open option legs and shares, one row each (dollars; per-unit prices).

        Columns: ``root, expiration, strike, right, settlement, quantity, avg_price, mark,
        market_value, marked_at``; shares have ``root`` = the symbol, ``right`` = ``"stock"``.
        """
        rows = [
            {
                **_contract_cols(p.contract),
                "settlement": p.contract.settlement,
                "quantity": p.quantity,
                "avg_price": p.avg_price,
                "mark": p.mark,
                "market_value": p.market_value,
                "marked_at": p.marked_at,
            }
            for p in self.option_positions.values()
        ]
        rows += [
            {
                "root": s.symbol,
                "right": "stock",
                "quantity": s.quantity,
                "avg_price": s.avg_price,
                "mark": s.mark,
                "market_value": s.market_value,
            }
            for s in self.underlying_positions.values()
        ]
        columns = [
            "root",
            "expiration",
            "strike",
            "right",
            "settlement",
            "quantity",
            "avg_price",
            "mark",
            "market_value",
            "marked_at",
        ]
        return pd.DataFrame(rows, columns=columns)

    def fills_frame(self) -> pd.DataFrame:
        """Fills, settlements, share trades and window-end closes as one frame, in time order (the
        trades CSV).

        ``event``: ``fill`` (option order fill), ``settlement`` (cash settlement, exercise,
        assignment, expiry), ``stock_fill`` (shares traded), ``window_end`` (a position closed at
        its mark when the backtest window ended, :meth:`close_out`; ``right = "stock"`` for
        shares). ``cash_flow`` in dollars; their sum is the window's change of account value.
        """
        rows = []
        for f in self.option_fills:
            rows.append(
                {
                    "time": f.time,
                    "event": "fill",
                    **_contract_cols(f.contract),
                    "quantity": f.quantity,
                    "price": f.price,
                    "bid": f.bid,
                    "ask": f.ask,
                    "commission": f.commission,
                    "cash_flow": f.cash_flow,
                    "tag": f.tag,
                }
            )
        for s in self.option_settlements:
            rows.append(
                {
                    "time": s.time,
                    "event": "settlement",
                    **_contract_cols(s.contract),
                    "quantity": s.quantity,
                    "price": s.value_per_unit,
                    "underlying_price": s.underlying_price,
                    "commission": s.fee,
                    "cash_flow": s.cash_flow,
                    "tag": f"settle {s.contract.settlement}",
                    "kind": s.kind,
                    "price_source": s.price_source,
                    "shares": s.shares,
                }
            )
        for w in self.window_end_fills:
            rows.append(
                {
                    "time": w.time,
                    "event": "window_end",
                    **(
                        _contract_cols(w.contract)
                        if isinstance(w, OptionFill)
                        else {"root": w.symbol, "right": "stock"}
                    ),
                    "quantity": w.quantity,
                    "price": w.price,
                    "bid": w.bid if isinstance(w, OptionFill) else None,
                    "ask": w.ask if isinstance(w, OptionFill) else None,
                    "commission": w.commission,
                    "cash_flow": w.cash_flow,
                    "tag": w.tag,
                }
            )
        for t in self.stock_fills:
            rows.append(
                {
                    "time": t.time,
                    "event": "stock_fill",
                    "root": t.symbol,
                    "quantity": t.quantity,
                    "price": t.price,
                    "commission": t.commission,
                    "cash_flow": t.cash_flow,
                    "tag": t.tag,
                }
            )
        columns = [
            "time",
            "event",
            "root",
            "expiration",
            "strike",
            "right",
            "quantity",
            "price",
            "bid",
            "ask",
            "underlying_price",
            "commission",
            "cash_flow",
            "tag",
            "kind",
            "price_source",
            "shares",
        ]
        if not rows:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(rows).sort_values(["time", "event"], kind="stable")
        return frame.reindex(columns=columns).reset_index(drop=True)

    def rejections_frame(self) -> pd.DataFrame:
        """Refused orders: ``time, legs, reason, tag``."""
        return pd.DataFrame(
            [
                {
                    "time": r.time,
                    "legs": ", ".join(f"{q:+d} {c}" for c, q in r.legs),
                    "reason": r.reason,
                    "tag": r.tag,
                }
                for r in self.rejections
            ],
            columns=["time", "legs", "reason", "tag"],
        )


def _contract_cols(contract: OptionContract) -> dict:
    return {
        "root": contract.root,
        "expiration": contract.expiration,
        "strike": contract.strike,
        "right": contract.right,
    }
