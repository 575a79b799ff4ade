"""Per-tag bookkeeping of an :class:`brokers.OptionsBroker` book, rebuilt from its records.

The broker nets legs per contract; strategies label each order with a *tag* (``open_combo(...,
tag=...)``; closes are tagged ``"close <tag>"``). :class:`TagLedger` reads the broker's fills,
settlements and share trades incrementally and keeps, per tag, the cumulative cash flow, the open
legs and shares, and the entry prices, so that::

    pnl(tag) = cash(tag) + open option value(tag) + share value(tag)

is the tag's profit since its first fill, net of premiums, commissions and settlement (dollars).
Used by the stop-loss rule (:class:`strategies.risk.mixins.OptionRiskMixin`) and by the
per-strategy attribution (:class:`strategies.risk.attribution.SleevePnL`).

Allocation rules: a settlement (cash, exercise or assignment) is split over the tags holding the
contract in proportion to their contracts; shares delivered follow the same split; a share trade
goes to the tag named in its fill tag when that tag holds the symbol, else pro rata over the
holders. Anything that cannot be allocated goes to the tag ``""`` (untagged).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from brokers.margin import max_loss, underlying_of
from brokers.options_broker import OptionsBroker
from data_feeds.contracts import OptionContract

CLOSE_PREFIX = "close "
"""Prefix :meth:`OptionStrategy.close_combo` puts before the tag of closing fills."""


def base_tag(fill_tag: str) -> str:
    """The position tag of a fill tag (``"close ic 1"`` -> ``"ic 1"``)."""
    return fill_tag[len(CLOSE_PREFIX) :] if fill_tag.startswith(CLOSE_PREFIX) else fill_tag


@dataclass
class _Entry:
    qty: int = 0
    cost: float = 0.0  # sum qty * price (per unit)
    commission: float = 0.0


@dataclass
class TagLedger:
    """Cash, open legs, shares and entry basis per tag (module docstring).

    Attributes
    ----------
    cash : dict of str to float
        Cumulative dollars per tag (premiums, commissions, settlements, share trades).
    legs : dict of str to dict of OptionContract to int
        Open signed contracts per tag.
    shares : dict of str to dict of str to int
        Shares per tag and symbol (from exercise / assignment).
    """

    cash: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    legs: dict[str, dict[OptionContract, int]] = field(default_factory=dict)
    shares: dict[str, dict[str, int]] = field(default_factory=dict)
    _entries: dict[str, dict[OptionContract, _Entry]] = field(default_factory=dict)
    _last_price: dict[OptionContract, float] = field(default_factory=dict)
    _n_fills: int = 0
    _n_settlements: int = 0
    _n_stock: int = 0

    def sync(self, broker: OptionsBroker) -> None:
        """Read the broker records added since the last call."""
        for f in broker.option_fills[self._n_fills :]:
            tag = base_tag(f.tag)
            legs = self.legs.setdefault(tag, {})
            held = legs.get(f.contract, 0)
            opening = held == 0 or (held > 0) == (f.quantity > 0)
            new = held + f.quantity
            if new == 0:
                legs.pop(f.contract, None)
            else:
                legs[f.contract] = new
            self.cash[tag] += f.cash_flow
            self._last_price[f.contract] = f.price
            if opening:
                e = self._entries.setdefault(tag, {}).setdefault(f.contract, _Entry())
                e.qty += f.quantity
                e.cost += f.quantity * f.price
                e.commission += f.commission
        self._n_fills = len(broker.option_fills)

        for s in broker.option_settlements[self._n_settlements :]:
            holders = [
                (tag, legs[s.contract])
                for tag, legs in self.legs.items()
                if s.contract in legs and (legs[s.contract] > 0) == (s.quantity > 0)
            ]
            total = sum(q for _, q in holders)
            if not holders:
                holders, total = [("", s.quantity)], s.quantity
            for tag, q in holders:
                share = q / total
                self.cash[tag] += s.cash_flow * share
                if tag in self.legs:
                    self.legs[tag].pop(s.contract, None)
                if s.shares:
                    symbol = underlying_of(s.contract.root)
                    book = self.shares.setdefault(tag, {})
                    book[symbol] = book.get(symbol, 0) + round(s.shares * share)
                    if book[symbol] == 0:
                        del book[symbol]
        self._n_settlements = len(broker.option_settlements)

        for t in broker.stock_fills[self._n_stock :]:
            tag = base_tag(t.tag)
            if t.symbol in self.shares.get(tag, {}):
                split = [(tag, 1.0)]
            else:
                owners = [(k, v[t.symbol]) for k, v in self.shares.items() if t.symbol in v]
                held = sum(abs(q) for _, q in owners)
                split = [(k, abs(q) / held) for k, q in owners] if held else [("", 1.0)]
            for tag, w in split:
                self.cash[tag] += t.cash_flow * w
                book = self.shares.setdefault(tag, {})
                book[t.symbol] = book.get(t.symbol, 0) + round(t.quantity * w)
                if book[t.symbol] == 0:
                    del book[t.symbol]
        self._n_stock = len(broker.stock_fills)

    # -- queries ----------------------------------------------------------------------------------
    def tags(self) -> list[str]:
        """Every tag seen (cash or legs), sorted."""
        return sorted(set(self.cash) | set(self.legs) | set(self.shares))

    def is_open(self, tag: str) -> bool:
        """The tag still holds legs or shares."""
        return bool(self.legs.get(tag)) or bool(self.shares.get(tag))

    def open_value(self, tag: str, broker: OptionsBroker) -> float:
        """Dollars: the tag's open legs at the broker's marks (last fill price for a contract the
        broker no longer holds) plus its shares at the last underlying price."""
        value = 0.0
        for c, q in self.legs.get(tag, {}).items():
            pos = broker.option_positions.get(c)
            mark = pos.mark if pos is not None else self._last_price.get(c, 0.0)
            value += q * mark * c.multiplier
        for symbol, n in self.shares.get(tag, {}).items():
            pos = broker.underlying_positions.get(symbol)
            price = pos.mark if pos is not None else broker.underlying_prices.get(symbol, 0.0)
            value += n * price
        return value

    def pnl(self, tag: str, broker: OptionsBroker) -> float:
        """Dollars since the tag's first fill: cash + open value (module docstring)."""
        return self.cash.get(tag, 0.0) + self.open_value(tag, broker)

    def basis(self, tag: str) -> float:
        """Dollars at risk at entry, for the fractional stop-loss.

        The maximum loss at expiry of the tag's opening legs at their average entry prices plus
        opening commissions (:func:`brokers.margin.max_loss`) when every leg has the same
        expiration and the loss is bounded; otherwise the absolute premium paid or received
        (``|sum q p m|`` + commissions). NaN when neither is positive.
        """
        entries = {c: e for c, e in self._entries.get(tag, {}).items() if e.qty != 0}
        if not entries:
            return math.nan
        commission = sum(e.commission for e in entries.values())
        legs = [(c, e.qty, e.cost / e.qty) for c, e in entries.items()]
        premium = abs(sum(q * p * c.multiplier for c, q, p in legs)) + commission
        if len({c.expiration for c in entries}) == 1:
            try:
                loss = max_loss(legs) + commission
            except ValueError:
                loss = math.nan
            if math.isfinite(loss) and loss > 0:
                return loss
        return premium if premium > 0 else math.nan


__all__ = ["CLOSE_PREFIX", "TagLedger", "base_tag"]
