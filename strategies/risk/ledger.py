"""Per-tag bookkeeping of an :class:`brokers.OptionsBroker` book: the tag-level face of the
strategy's trade book.

There is one allocation rule for the whole suite, the one of :class:`strategies.book.TradeBook`
(fills to their tag's open trade; settlements, exercise/assignment shares and window-end closes
pro rata to the signed quantity each open trade holds; share trades to the trade their tag names,
else pro rata to the holders of the shares; the rest to the unallocated trade, tag ``""``).
:class:`TagLedger` *is* that book: ``sync(broker)``, ``tags()``, ``is_open(tag)``,
``open_value(tag, broker)``, ``pnl(tag, broker)`` and ``basis(tag)`` aggregate the trades of a tag,
so that::

    pnl(tag) = cash(tag) + open option value(tag) + share value(tag)

is the tag's profit since its first fill, net of premiums, commissions and settlement (dollars).
Used by the stop-loss rule (:class:`strategies.risk.mixins.OptionRiskMixin`) and by the
per-strategy attribution (:class:`strategies.risk.attribution.SleevePnL`, which reads the
strategy's own ``book`` when it has one), so ``attribution.csv`` and the strategies' trade P&L
come from the same allocation.
"""

from __future__ import annotations

from strategies.book import CLOSE_PREFIX, TradeBook, base_tag

TagLedger = TradeBook
"""The tag-level view of :class:`strategies.book.TradeBook` (module docstring)."""

__all__ = ["CLOSE_PREFIX", "TagLedger", "base_tag"]
