"""Strategy-based (Reg-T style) margin for a book of option legs and shares: pure functions.

Every amount is in dollars; prices and strikes are per unit (index points for SPX, dollars per share
for SPY) and are multiplied by the contract ``multiplier`` (100).

Two forms of the same requirement
---------------------------------
The Cboe Margin Manual states requirements the way a margin clerk books them: a short option needs
"100% of the option proceeds plus ..." and the sale proceeds "may be applied" (they are in the cash
balance). A backtest account is valued the other way: ``value = cash + long marks - short marks +
shares``, so a short option's current value is already deducted from the value as a liability.
Each group of legs therefore carries both numbers:

``cboe_requirement``
    The manual's figure: includes the short options' current value, excludes the premium of longs
    (paid in full, no loan value).
``requirement``
    The same requirement in equity terms, ``cboe_requirement - short market value + long market
    value``: how much of the account *value* the group ties up. For a defined-risk group this is
    exactly its maximum loss from the current marks; for a long option it is its value (premium
    paid, no further requirement); for a naked short it is the Reg-T add-on beyond the premium.

The two are equivalent checks: ``value - requirement = cash + shares - cboe_requirement`` for a
book of options. The broker compares ``account value - requirement >= 0``.

Rules (Cboe Margin Manual, April 2000, "Initial and maintenance margin requirements"; Cboe
Rule 10.3, formerly 12.3; FINRA Rule 4210(f)(2) has the same minimums)
-------------------------------------------------------------------------------------------
long put or call (9 months or less)
    Pay in full; no loan value: ``requirement = market value``, ``cboe_requirement = 0``.
naked short put or call
    ``premium + max(pct * U - OTM, min_pct * base)`` per unit, ``U`` the underlying price, ``OTM``
    the out-of-the-money amount (calls ``max(K - U, 0)``, puts ``max(U - K, 0)``), ``base = U``
    for calls and ``K`` for puts. Broad-based index (SPX, SPXW): ``pct = 15%``; equity and ETF
    (SPY): ``pct = 20%``; ``min_pct = 10%`` for both (:data:`ROOT_RATES`).
short put and short call (straddle / strangle)
    The greater of the two naked requirements plus the premium of the other side.
spreads (verticals, iron condors, butterflies, any mix of covered shorts and longs of one expiry)
    The maximum loss at expiry: ``requirement = market value - min over S of payoff(S)``
    (``S >= 0``; the payoff is piecewise linear, so the minimum is at ``S = 0`` or a strike). For
    a credit vertical that is ``width * multiplier - credit``, for an iron condor
    ``max(put width, call width) * multiplier - credit``, for a long butterfly the debit.
    The Cboe relief "the lesser of the spread and the naked requirement" is not applied (max loss
    is the more conservative of the two).
calendar / diagonal (short covered by a long of the same right expiring later)
    Cboe spread amount ``max(K_long - K_short, 0)`` (calls) / ``max(K_short - K_long, 0)`` (puts)
    plus the long paid in full.
shares (from SPY assignment)
    Reg-T initial margin, 50% of ``|shares| * price`` for long and short stock (12 CFR 220.12).

Pairing algorithm (documented, greedy, not an optimiser)
--------------------------------------------------------
Legs are grouped by underlying (SPX and SPXW share the SPX index) and by *settlement key*
``(expiration, settlement)`` so that AM and PM legs of the same date are different expiries.

1. Per settlement key and right, shorts are covered by longs of the same key and right. Calls:
   shorts in ascending strike (most in the money first) take longs in ascending strike (the
   cheapest cover first); puts mirror it in descending strike. Quantities are split as needed.
2. Per settlement key, the covered pairs of both rights plus every remaining long of that key form
   one defined-risk group margined at its maximum loss (so a put spread and a call spread sold
   together are an iron condor: the wider wing's loss, not the sum).
3. Remaining shorts are covered, in the same order, by remaining longs of the same right that
   settle later (calendar / diagonal), margined by the Cboe spread amount.
4. Remaining naked calls and puts of the same settlement key are paired into straddles/strangles
   (largest requirement with largest requirement).
5. Whatever is left is naked (shorts) or plain long (longs that cover nothing).

Not modelled: the 75% loan value of long options over 9 months; covered calls / protective puts
against shares (shares and options are margined separately); portfolio margin; maintenance
calls (the broker checks margin when an order arrives, not every bar).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from data_feeds.contracts import ROOT_UNDERLYING, OptionContract, underlying_of


@dataclass(frozen=True, slots=True)
class MarginRates:
    """Percentages of the naked-short formula for one class of underlying.

    Parameters
    ----------
    underlying_pct : float
        Share of the underlying value required before the out-of-the-money reduction (0.15 for
        broad-based indexes, 0.20 for equities and ETFs).
    minimum_pct : float
        Floor: share of the underlying value (calls) or of the strike (puts), 0.10.

    Raises
    ------
    ValueError
        A percentage outside ``[0, 1]``.
    """

    underlying_pct: float
    minimum_pct: float = 0.10

    def __post_init__(self) -> None:
        for name in ("underlying_pct", "minimum_pct"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"MarginRates.{name} must be in [0, 1], got {v}")


BROAD_BASED_INDEX = MarginRates(0.15, 0.10)
"""Cboe broad-based index options (SPX, SPXW): 15% / 10%."""

EQUITY = MarginRates(0.20, 0.10)
"""Cboe equity and ETF options (SPY): 20% / 10%."""

ROOT_RATES: dict[str, MarginRates] = {"SPX": BROAD_BASED_INDEX, "SPXW": BROAD_BASED_INDEX}
"""Rates by option root; roots not listed (SPY) use :data:`EQUITY`."""

STOCK_MARGIN_RATE = 0.5
"""Reg-T initial margin on stock, long or short (12 CFR 220.12)."""


def rates_for(root: str, overrides: Mapping[str, MarginRates] | None = None) -> MarginRates:
    """Naked-short rates of ``root``: ``overrides``, then :data:`ROOT_RATES`, then
    :data:`EQUITY`."""
    if overrides and root in overrides:
        return overrides[root]
    return ROOT_RATES.get(root, EQUITY)


def _check_price(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite non-negative price, got {value!r}")


def naked_short_requirement(
    right: str,
    strike: float,
    underlying_price: float,
    option_price: float,
    *,
    quantity: int = 1,
    multiplier: int = 100,
    rates: MarginRates = EQUITY,
) -> float:
    """Cboe requirement of an uncovered short put or call (premium included).

    ``|quantity| * multiplier * (P + max(pct * U - OTM, min_pct * base))`` with ``OTM`` the
    out-of-the-money amount (calls ``max(K - U, 0)``, puts ``max(U - K, 0)``) and ``base = U``
    for calls, ``K`` for puts.

    Parameters
    ----------
    right : {'C', 'P'}
        Call or put.
    strike : float
        Strike ``K`` per unit.
    underlying_price : float
        Underlying price ``U`` (index points / dollars per share).
    option_price : float
        Current option value ``P`` per unit (the mark, or the sale price at entry).
    quantity : int
        Contracts; the sign is ignored.
    multiplier : int
        Units per contract.
    rates : MarginRates
        :data:`BROAD_BASED_INDEX` or :data:`EQUITY` (default).

    Returns
    -------
    float
        Dollars (Cboe form; subtract ``|quantity| * multiplier * P`` for the equity form).

    Raises
    ------
    ValueError
        ``right`` not 'C'/'P', or a negative / non-finite price.

    References
    ----------
    Cboe Margin Manual (April 2000), "Short Put or Short Call"; Cboe Rule 10.3(c)(5)(A).
    """
    if right not in ("C", "P"):
        raise ValueError(f"right must be 'C' or 'P', got {right!r}")
    for name, v in (("strike", strike), ("underlying_price", underlying_price)):
        _check_price(name, v)
    _check_price("option_price", option_price)
    if right == "C":
        otm = max(strike - underlying_price, 0.0)
        floor = rates.minimum_pct * underlying_price
    else:
        otm = max(underlying_price - strike, 0.0)
        floor = rates.minimum_pct * strike
    per_unit = option_price + max(rates.underlying_pct * underlying_price - otm, floor)
    return abs(quantity) * multiplier * per_unit


def spread_requirement(
    right: str,
    short_strike: float,
    long_strike: float,
    *,
    quantity: int = 1,
    multiplier: int = 100,
) -> float:
    """Cboe spread amount of a short covered by a long of the same right (long paid in full).

    Calls: ``max(K_long - K_short, 0)``; puts: ``max(K_short - K_long, 0)``; times
    ``|quantity| * multiplier``. The short's sale proceeds may be applied, so for a credit vertical
    the cash out of pocket is ``width * multiplier - credit`` (its maximum loss).

    Parameters
    ----------
    right : {'C', 'P'}
        Right of both legs.
    short_strike, long_strike : float
        Strikes per unit.
    quantity : int
        Spreads; the sign is ignored.
    multiplier : int
        Units per contract.

    Returns
    -------
    float
        Dollars (Cboe form).

    Raises
    ------
    ValueError
        ``right`` not 'C'/'P'.

    References
    ----------
    Cboe Margin Manual (April 2000), "Put Spread or Call Spread"; the long must expire at the same
    time as or after the short.
    """
    if right == "C":
        width = max(long_strike - short_strike, 0.0)
    elif right == "P":
        width = max(short_strike - long_strike, 0.0)
    else:
        raise ValueError(f"right must be 'C' or 'P', got {right!r}")
    return abs(quantity) * multiplier * width


def max_loss(legs: Iterable[tuple[OptionContract, int, float]]) -> float:
    """Maximum loss at a common expiry of a set of legs, measured from their current marks.

    ``sum q * mark * m - min_{S >= 0} sum q * intrinsic(S) * m``, the payoff minimum taken at
    ``S = 0`` and every strike (the payoff is piecewise linear in ``S``).

    Parameters
    ----------
    legs : iterable of (OptionContract, int, float)
        Contract, signed contracts, current mark per unit. All legs must settle on the same
        underlying price (same underlying and settlement key).

    Returns
    -------
    float
        Dollars, >= 0 (a group priced below its worst payoff has no requirement).

    Raises
    ------
    ValueError
        The payoff is unbounded below (more short calls than long calls): such a group is not
        defined-risk and needs :func:`naked_short_requirement`.
    """
    legs = list(legs)
    if not legs:
        return 0.0
    call_slope = sum(q * c.multiplier for c, q, _ in legs if c.right == "C")
    if call_slope < 0:
        raise ValueError(
            "max_loss: more short calls than long calls, the payoff is unbounded below; "
            "margin the uncovered calls as naked shorts"
        )
    value = sum(q * mark * c.multiplier for c, q, mark in legs)
    points = {0.0, *(c.strike for c, _, _ in legs)}
    worst = min(sum(q * c.intrinsic(s) * c.multiplier for c, q, _ in legs) for s in points)
    return max(value - worst, 0.0)


@dataclass(frozen=True)
class MarginGroup:
    """One margined group of legs.

    Attributes
    ----------
    kind : str
        ``long``, ``naked_short``, ``short_straddle``, ``defined_risk``, ``calendar`` or ``stock``.
    legs : tuple of (OptionContract, int)
        Contracts and signed quantities in the group (empty for ``stock``).
    cboe_requirement : float
        Dollars, Cboe form (short options' value included, long premium excluded).
    requirement : float
        Dollars, equity form (what the group ties up of the account value).
    note : str
        What the number is (e.g. ``"max loss"``, ``"15% index - OTM"``, ``"50% of 300 SPY"``).
    """

    kind: str
    legs: tuple[tuple[OptionContract, int], ...]
    cboe_requirement: float
    requirement: float
    note: str = ""


@dataclass(frozen=True)
class MarginReport:
    """Requirement of a whole book: its groups and totals (dollars)."""

    groups: tuple[MarginGroup, ...]

    @property
    def requirement(self) -> float:
        """Dollars of account value the book ties up (equity form)."""
        return float(sum(g.requirement for g in self.groups))

    @property
    def cboe_requirement(self) -> float:
        """Dollars in the Cboe form (short options' value included)."""
        return float(sum(g.cboe_requirement for g in self.groups))


_SettleKey = tuple[str, dt.date, int]  # (underlying, expiration, 0 = AM / 1 = PM or physical)


def _settle_key(c: OptionContract) -> _SettleKey:
    return (underlying_of(c.root), c.expiration, 0 if c.settlement == "AM" else 1)


@dataclass
class _Lot:
    contract: OptionContract
    qty: int  # remaining, unsigned
    mark: float


def _value(c: OptionContract, q: int, mark: float) -> float:
    return q * mark * c.multiplier


def book_requirement(
    legs: Iterable[tuple[OptionContract, int, float]],
    underlying_prices: Mapping[str, float],
    *,
    shares: Mapping[str, tuple[int, float]] | None = None,
    rates: Mapping[str, MarginRates] | None = None,
    stock_rate: float = STOCK_MARGIN_RATE,
) -> MarginReport:
    """Margin requirement of a book of option legs (and shares) by the pairing in the module doc.

    Parameters
    ----------
    legs : iterable of (OptionContract, int, float)
        Contract, signed contracts (> 0 long), current mark per unit (the mid).
    underlying_prices : mapping str -> float
        Underlying price by underlying symbol (``SPX``, ``SPY``; see :func:`underlying_of`);
        needed for every underlying with a naked short.
    shares : mapping str -> (int, float), optional
        Shares held per symbol and their price per share.
    rates : mapping str -> MarginRates, optional
        Per-root overrides of :data:`ROOT_RATES`.
    stock_rate : float
        Requirement on stock as a share of its market value (Reg-T 0.5).

    Returns
    -------
    MarginReport

    Raises
    ------
    ValueError
        A naked short on an underlying without a finite positive price in ``underlying_prices``,
        or a non-finite mark.
    """
    longs: dict[tuple[_SettleKey, str], list[_Lot]] = defaultdict(list)
    shorts: dict[tuple[_SettleKey, str], list[_Lot]] = defaultdict(list)
    for c, q, mark in legs:
        if q == 0:
            continue
        if not math.isfinite(mark):
            raise ValueError(f"{c}: mark must be finite for margin, got {mark!r}")
        side = longs if q > 0 else shorts
        side[(_settle_key(c), c.right)].append(_Lot(c, abs(int(q)), float(mark)))
    for key, lots in list(longs.items()) + list(shorts.items()):
        lots.sort(key=lambda lot: lot.contract.strike, reverse=key[1] == "P")

    groups: list[MarginGroup] = []
    # 1-2. same settlement key: covered pairs + remaining longs -> one defined-risk group
    keys = sorted({k for k, _ in longs} | {k for k, _ in shorts})
    for skey in keys:
        members: dict[OptionContract, list] = {}

        def add(lot: _Lot, q: int, members: dict = members) -> None:
            entry = members.setdefault(lot.contract, [0, lot.mark])
            entry[0] += q

        for right in ("C", "P"):
            for s in shorts.get((skey, right), []):
                for lg in longs.get((skey, right), []):
                    if s.qty == 0:
                        break
                    n = min(s.qty, lg.qty)
                    if n == 0:
                        continue
                    add(s, -n)
                    add(lg, n)
                    s.qty -= n
                    lg.qty -= n
        if not any(q < 0 for q, _ in members.values()):
            continue  # nothing covered at this key: longs stay for calendars / plain longs
        for right in ("C", "P"):
            for lg in longs.get((skey, right), []):
                if lg.qty:
                    add(lg, lg.qty)
                    lg.qty = 0
        group_legs = [(c, q, m) for c, (q, m) in members.items() if q != 0]
        loss = max_loss(group_legs)
        market = sum(_value(c, q, m) for c, q, m in group_legs)
        short_value = -sum(_value(c, q, m) for c, q, m in group_legs if q < 0)
        long_value = sum(_value(c, q, m) for c, q, m in group_legs if q > 0)
        groups.append(
            MarginGroup(
                "defined_risk",
                tuple((c, q) for c, q, _ in group_legs),
                cboe_requirement=loss + short_value - long_value,
                requirement=loss,
                note=f"max loss from marks (market value {market:,.2f})",
            )
        )

    # 3. calendars / diagonals: remaining shorts covered by longs of the same right settling later
    for (skey, right), s_lots in sorted(shorts.items()):
        for s in s_lots:
            if s.qty == 0:
                continue
            later = [
                lg
                for (lkey, lright), l_lots in sorted(longs.items())
                if lright == right and lkey[0] == skey[0] and lkey[1:] > skey[1:]
                for lg in l_lots
                if lg.qty
            ]
            later.sort(key=lambda lot: lot.contract.strike, reverse=right == "P")
            for lg in later:
                if s.qty == 0:
                    break
                n = min(s.qty, lg.qty)
                cboe = spread_requirement(
                    right,
                    s.contract.strike,
                    lg.contract.strike,
                    quantity=n,
                    multiplier=s.contract.multiplier,
                )
                long_value = _value(lg.contract, n, lg.mark)
                short_value = _value(s.contract, n, s.mark)
                groups.append(
                    MarginGroup(
                        "calendar",
                        ((s.contract, -n), (lg.contract, n)),
                        cboe_requirement=cboe,
                        requirement=cboe - short_value + long_value,
                        note="Cboe spread amount, long paid in full",
                    )
                )
                s.qty -= n
                lg.qty -= n

    # 4-5. naked shorts: straddles / strangles per settlement key, then singles
    def naked_unit(lot: _Lot) -> float:
        c = lot.contract
        u = underlying_prices.get(underlying_of(c.root), float("nan"))
        if not (math.isfinite(u) and u > 0):
            raise ValueError(
                f"{c}: naked short needs the {underlying_of(c.root)} price for margin, got {u!r}"
            )
        return naked_short_requirement(
            c.right, c.strike, u, lot.mark, multiplier=c.multiplier, rates=rates_for(c.root, rates)
        )

    for skey in keys:
        calls = [s for s in shorts.get((skey, "C"), []) if s.qty]
        puts = [s for s in shorts.get((skey, "P"), []) if s.qty]
        calls.sort(key=naked_unit, reverse=True)
        puts.sort(key=naked_unit, reverse=True)
        ci = pi = 0
        while ci < len(calls) and pi < len(puts):
            c_lot, p_lot = calls[ci], puts[pi]
            n = min(c_lot.qty, p_lot.qty)
            c_req, p_req = naked_unit(c_lot), naked_unit(p_lot)
            c_prem = c_lot.mark * c_lot.contract.multiplier
            p_prem = p_lot.mark * p_lot.contract.multiplier
            per = c_req + p_prem if c_req >= p_req else p_req + c_prem
            groups.append(
                MarginGroup(
                    "short_straddle",
                    ((c_lot.contract, -n), (p_lot.contract, -n)),
                    cboe_requirement=n * per,
                    requirement=n * (per - c_prem - p_prem),
                    note="greater side's naked requirement + other side's premium",
                )
            )
            c_lot.qty -= n
            p_lot.qty -= n
            ci += c_lot.qty == 0
            pi += p_lot.qty == 0
        for lot in calls[ci:] + puts[pi:]:
            if lot.qty == 0:
                continue
            c = lot.contract
            r = rates_for(c.root, rates)
            cboe = lot.qty * naked_unit(lot)
            groups.append(
                MarginGroup(
                    "naked_short",
                    ((c, -lot.qty),),
                    cboe_requirement=cboe,
                    requirement=cboe - _value(c, lot.qty, lot.mark),
                    note=f"premium + max({r.underlying_pct:.0%} underlying - OTM, "
                    f"{r.minimum_pct:.0%} {'underlying' if c.right == 'C' else 'strike'})",
                )
            )
            lot.qty = 0

    for _, l_lots in sorted(longs.items()):
        for lg in l_lots:
            if lg.qty:
                groups.append(
                    MarginGroup(
                        "long",
                        ((lg.contract, lg.qty),),
                        cboe_requirement=0.0,
                        requirement=_value(lg.contract, lg.qty, lg.mark),
                        note="premium paid in full, no loan value",
                    )
                )

    for symbol, (n_shares, price) in sorted((shares or {}).items()):
        if n_shares == 0:
            continue
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"{symbol}: shares need a finite positive price, got {price!r}")
        req = stock_rate * abs(n_shares) * price
        groups.append(
            MarginGroup("stock", (), req, req, f"{stock_rate:.0%} of {n_shares:+d} {symbol}")
        )
    return MarginReport(tuple(groups))


__all__ = [
    "BROAD_BASED_INDEX",
    "EQUITY",
    "ROOT_RATES",
    "ROOT_UNDERLYING",
    "STOCK_MARGIN_RATE",
    "MarginGroup",
    "MarginRates",
    "MarginReport",
    "book_requirement",
    "max_loss",
    "naked_short_requirement",
    "rates_for",
    "spread_requirement",
    "underlying_of",
]
