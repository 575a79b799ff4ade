"""The risk layer inside backtrader strategies: a mixin for share strategies and one for option
strategies.

Usage (shares, e.g. a pairs strategy)::

    class Pairs(RiskMixin, bt.Strategy):
        def __init__(self):
            self.setup_risk(RiskConfig(max_drawdown=0.2, stop_loss=0.1),
                            sleeve_of=lambda name: "EWA/EWC")   # both legs: one position
        def next(self):
            self.risk_step()          # first thing each bar: guards, stops, kill switch
            if self.risk_blocked():   # optional: skip the signal logic when nothing may open
                return
            ...

Usage (options, on :class:`strategies.option_strategy.OptionStrategy`)::

    class Spreads(OptionRiskMixin, OptionStrategy):
        def __init__(self):
            super().__init__()
            self.setup_risk(RiskConfig(max_drawdown=0.25, max_abs_vega=2e5, stop_loss=0.5))
        def next_chain(self, snapshot):
            self.risk_step()          # book settled and marked: guards, greeks, stops
            self.open_combo(spec, 2, tag="bull put 2017-03-01")   # refused while blocked

The mixins go *before* the backtrader base class. What they add:

* :meth:`RiskMixin.risk_step` runs :meth:`RiskManager.step` and executes its actions: the kill
  switch flattens the book (:meth:`RiskMixin.flatten`), a stop closes the position, a delta breach
  calls :meth:`RiskMixin.execute_hedge`;
* new orders are checked: ``buy``/``sell`` (share strategies) and ``open_combo`` (option
  strategies) are refused (return ``None`` / ``[]``, recorded as ``order_blocked`` in
  ``self.risk.events``) while the kill switch is on, after a daily-loss breach, or when an option
  order would push a capped greek beyond its cap. Orders that only reduce a position (closes,
  the flattening itself) always pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import backtrader as bt
import pandas as pd

from brokers.margin import underlying_of
from brokers.options_broker import OptionsBroker
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable
from strategies.option_strategy import ComboSpec
from strategies.risk.ledger import TagLedger
from strategies.risk.manager import (
    PositionRisk,
    RiskAction,
    RiskConfig,
    RiskManager,
    combo_greeks,
)


def _data_name(data: bt.AbstractDataBase) -> str:
    return getattr(data, "_name", "") or f"data{id(data)}"


class RiskMixin:
    """Risk layer for a backtrader ``Strategy`` trading backtrader data (shares, ETFs).

    Attributes
    ----------
    risk : RiskManager
        Set by :meth:`setup_risk`.
    """

    risk: RiskManager

    # -- setup ------------------------------------------------------------------------------------
    def setup_risk(
        self,
        config: RiskConfig | RiskManager | None = None,
        *,
        sleeve_of: Callable[[str], str] | None = None,
        hedge_data: bt.AbstractDataBase | None = None,
        hedge_units_per_delta: float = 1.0,
    ) -> RiskManager:
        """Attach a :class:`RiskManager` (call from ``__init__``).

        Parameters
        ----------
        config : RiskConfig or RiskManager, optional
            Limits (default: no limits, the kill switch still works by hand via
            :meth:`risk_kill`).
        sleeve_of : callable, optional
            Maps a data name to a position group for the stop-loss rule (both legs of a pair
            form one position); default each data on its own.
        hedge_data : backtrader data feed, optional
            Instrument for delta re-hedges (option strategies); without it hedge actions are
            recorded as not executed.
        hedge_units_per_delta : float
            Hedge-instrument units per unit of book delta (e.g. 10 SPY shares per SPX index
            unit).

        Returns
        -------
        RiskManager
        """
        if isinstance(config, RiskManager):
            self.risk = config
        else:
            start = float(self.broker.startingcash) if hasattr(self, "broker") else None
            self.risk = RiskManager(config or RiskConfig(), initial_value=start or None)
        self._risk_sleeve_of = sleeve_of or (lambda name: name)
        self._risk_hedge_data = hedge_data
        if not (math.isfinite(hedge_units_per_delta) and hedge_units_per_delta > 0):
            raise ValueError(f"hedge_units_per_delta must be > 0, got {hedge_units_per_delta!r}")
        self._risk_hedge_ratio = float(hedge_units_per_delta)
        self._risk_bypass = False
        return self.risk

    def _risk(self) -> RiskManager:
        risk = getattr(self, "risk", None)
        if risk is None:
            raise RuntimeError(
                f"{type(self).__name__}: call self.setup_risk(RiskConfig(...)) in __init__ "
                "before using the risk layer"
            )
        return risk

    # -- the bar ----------------------------------------------------------------------------------
    def risk_time(self) -> pd.Timestamp:
        """Current bar time (naive wall clock of the first data)."""
        return pd.Timestamp(self.datas[0].datetime.datetime(0))

    def risk_greeks(self) -> dict[str, float] | None:
        """Book greeks for the Greek rules (none for share strategies)."""
        return None

    def risk_positions(self) -> list[PositionRisk]:
        """Open share positions grouped by ``sleeve_of``: P&L ``sum size * (close - entry
        price)``, basis ``sum |size * entry price|`` (entry notional)."""
        groups: dict[str, list[float]] = {}
        for data in self.datas:
            pos = self.getposition(data)
            if pos.size == 0 or data is self._risk_hedge_data:
                continue
            key = self._risk_sleeve_of(_data_name(data))
            g = groups.setdefault(key, [0.0, 0.0])
            g[0] += pos.size * (float(data.close[0]) - pos.price)
            g[1] += abs(pos.size * pos.price)
        return [PositionRisk(k, pnl, basis) for k, (pnl, basis) in groups.items()]

    def risk_step(self) -> list[RiskAction]:
        """Run the risk rules on this bar and execute their actions (call first in ``next``).

        Returns
        -------
        list of RiskAction
            What :meth:`RiskManager.step` returned (the kill action is repeated on every bar
            after the switch tripped, and the book is flattened again if anything is left).
        """
        risk = self._risk()
        time = self.risk_time()
        actions = risk.step(
            time, float(self.broker.getvalue()), self.risk_greeks(), self.risk_positions()
        )
        for a in actions:
            if a.kind == "kill":
                self.flatten(a.reason)
                break
            if a.kind == "stop_position":
                self.close_position(a.name)
            elif a.kind == "hedge_delta":
                self.execute_hedge(a)
        return actions

    def risk_blocked(self) -> bool:
        """No new risk may be opened now (kill switch or daily loss)."""
        return self._risk().blocks_new_risk(self.risk_time())

    def risk_kill(self, reason: str) -> RiskAction:
        """Trip the kill switch by hand and flatten now."""
        action = self._risk().kill(self.risk_time(), reason)
        self.flatten(reason)
        return action

    # -- actions ----------------------------------------------------------------------------------
    def flatten(self, reason: str) -> int:
        """Close every backtrader position (market orders; pending closes are not doubled).

        Returns
        -------
        int
            Orders sent.
        """
        sent = 0
        pending = {o.data for o in self.broker.get_orders_open()}
        for data in self.datas:
            if self.getposition(data).size != 0 and data not in pending:
                if self.close(data=data) is not None:
                    sent += 1
        if sent:
            self._risk().note(self.risk_time(), "flatten", f"{sent} close order(s): {reason}")
        return sent

    def close_position(self, name: str) -> int:
        """Close the datas of position group ``name`` (stop-loss). Returns orders sent."""
        sent = 0
        pending = {o.data for o in self.broker.get_orders_open()}
        for data in self.datas:
            if self._risk_sleeve_of(_data_name(data)) != name or data in pending:
                continue
            if self.getposition(data).size != 0 and self.close(data=data) is not None:
                sent += 1
        return sent

    def execute_hedge(self, action: RiskAction) -> bool:
        """Trade ``action.quantity`` delta units on the hedge instrument.

        Sends ``action.quantity * hedge_units_per_delta`` (rounded to whole units) of
        ``hedge_data`` as a market order; without a hedge instrument records a ``note`` and
        returns False. Override to hedge differently.
        """
        data = self._risk_hedge_data
        if data is None:
            self._risk().note(
                action.time, "hedge_delta", f"not executed (no hedge instrument): {action.reason}"
            )
            return False
        units = round(action.quantity * self._risk_hedge_ratio)
        if units == 0:
            return False
        self._risk_bypass = True  # a hedge reduces risk by construction
        try:
            order = (
                bt.Strategy.buy(self, data=data, size=units)
                if units > 0
                else bt.Strategy.sell(self, data=data, size=-units)
            )
        finally:
            self._risk_bypass = False
        return order is not None

    # -- order gate -------------------------------------------------------------------------------
    def _reduces(self, data: bt.AbstractDataBase, signed: float) -> bool:
        held = float(self.getposition(data).size)
        for o in self.broker.get_orders_open():
            if o.data is data:
                held += float(o.executed.remsize)  # signed, < 0 for sells
        return held != 0 and (signed > 0) != (held > 0) and abs(signed) <= abs(held)

    def _gate(self, data, size, isbuy: bool, label: str) -> bool:
        risk = getattr(self, "risk", None)
        if risk is None or self._risk_bypass:
            return True
        data = self.getdatabyname(data) if isinstance(data, str) else data
        data = data if data is not None else self.datas[0]
        size = size if size is not None else self.getsizing(data, isbuy=isbuy)
        if not size:
            return True
        signed = abs(size) if isbuy else -abs(size)
        check = risk.check_order(
            self.risk_time(), reduces_risk=self._reduces(data, signed), label=label
        )
        return check.allowed

    def buy(self, data=None, size=None, *args, **kwargs):
        """``bt.Strategy.buy``, refused (``None``) when the risk layer blocks new risk."""
        if not self._gate(data, size, True, "buy"):
            return None
        return super().buy(data, size, *args, **kwargs)

    def sell(self, data=None, size=None, *args, **kwargs):
        """``bt.Strategy.sell``, refused (``None``) when the risk layer blocks new risk."""
        if not self._gate(data, size, False, "sell"):
            return None
        return super().sell(data, size, *args, **kwargs)


class OptionRiskMixin(RiskMixin):
    """Risk layer for :class:`strategies.option_strategy.OptionStrategy` on an
    :class:`brokers.OptionsBroker` (see the module docstring).

    Positions are the combo tags (:class:`strategies.risk.ledger.TagLedger`): P&L since entry at
    the broker's marks, basis = max loss at entry (else premium). Greeks are
    ``OptionStrategy.book_greeks`` of the current snapshot, with the delta of shares held in the
    broker book (assignments) and of a backtrader hedge position added, in underlying units.
    """

    def setup_risk(
        self,
        config: RiskConfig | RiskManager | None = None,
        *,
        sleeve_of: Callable[[str], str] | None = None,
        hedge_data: bt.AbstractDataBase | None = None,
        hedge_units_per_delta: float = 1.0,
    ) -> RiskManager:
        """As :meth:`RiskMixin.setup_risk`; ``sleeve_of`` is unused (positions are tags)."""
        risk = super().setup_risk(
            config,
            sleeve_of=sleeve_of,
            hedge_data=hedge_data,
            hedge_units_per_delta=hedge_units_per_delta,
        )
        # the strategy's own trade book (strategies.book): stops read the same allocation as the
        # daily log, trades and attribution; a fresh book only for a strategy without one
        book = getattr(self, "book", None)
        self.risk_ledger = book if isinstance(book, TagLedger) else TagLedger()
        return risk

    def risk_time(self) -> pd.Timestamp:
        """The current snapshot's quote time (tz-aware ET)."""
        snap = getattr(self, "snapshot", None)
        if snap is None:
            return super().risk_time()
        return snap.quote_time

    def risk_greeks(self) -> dict[str, float] | None:
        """Book greeks of the snapshot (``OptionStrategy.book_greeks`` units) plus the delta of
        shares of its underlying and of the hedge position (``hedge size /
        hedge_units_per_delta``), in underlying units."""
        snap: ChainSnapshot = self.snapshot
        broker: OptionsBroker = self.obroker
        # the book's legs on this underlying through combo_greeks: the same sums as
        # OptionStrategy.book_greeks (tested equal) with per-expiry lookups instead of an index
        # over the whole snapshot (~14,000 SPX rows) every bar
        legs = [
            (c, p.quantity)
            for c, p in broker.option_positions.items()
            if underlying_of(c.root) == snap.underlying
        ]
        greeks = combo_greeks(legs, snap, 1)
        pos = broker.underlying_positions.get(snap.underlying)
        if pos is not None:
            greeks["delta"] += pos.quantity
        if self._risk_hedge_data is not None:
            greeks["delta"] += self.getposition(self._risk_hedge_data).size / self._risk_hedge_ratio
        return greeks

    def risk_positions(self) -> list[PositionRisk]:
        """Open combo tags with their P&L and basis (:class:`TagLedger`: the strategy's
        ``book``)."""
        ledger: TagLedger = self.risk_ledger
        broker = self.obroker
        ledger.sync(broker)
        out = []
        for tag in ledger.tags():
            if tag and ledger.is_open(tag) and tag in self.combos:
                out.append(PositionRisk(tag, ledger.pnl(tag, broker), ledger.basis(tag)))
        return out

    def risk_step(self) -> list[RiskAction]:
        """As :meth:`RiskMixin.risk_step`; call first in ``next_chain`` (book settled and
        marked)."""
        if getattr(self, "snapshot", None) is None:
            raise RuntimeError("OptionRiskMixin.risk_step works inside next_chain")
        return super().risk_step()

    def flatten(self, reason: str) -> int:
        """Close every combo at the snapshot's bid/ask, shares from assignment at the last
        underlying price, and backtrader positions; record what is left.

        Long legs with a zero bid and legs the snapshot does not quote cannot be closed (see
        ``OptionStrategy.close_combo``); they stay and are retried on the next bar.

        Returns
        -------
        int
            Option fills + share trades + backtrader close orders.
        """
        broker = self.obroker
        time = self.risk_time()
        n = len(self.close_all())
        for symbol in list(broker.underlying_positions):
            price = broker.underlying_prices.get(symbol)
            if price is not None and math.isfinite(price) and price > 0:
                broker.close_underlying(symbol, price, time, tag="risk flatten")
                n += 1
        n += RiskMixin.flatten(self, reason)
        left = len(broker.option_positions) + len(broker.underlying_positions)
        if n or left:
            self._risk().note(
                time,
                "flatten",
                f"{n} fill(s)/order(s), {left} position(s) left open: {reason}",
            )
        return n

    def close_position(self, name: str) -> int:
        """Close combo tag ``name`` (stop-loss). Returns fills."""
        return len(self.close_combo(name))

    def open_combo(
        self, spec_or_combo: ComboSpec | Combo, quantity: int = 1, tag: str = ""
    ) -> list:
        """``OptionStrategy.open_combo`` behind the risk gate.

        The combo is resolved, its greeks computed (:func:`combo_greeks`) and
        :meth:`RiskManager.check_order` asked; a refusal returns ``[]`` and is logged in
        ``self.rejections`` (``"risk: ..."``) and ``self.risk.events``. Filled orders add their
        greeks to the manager's book for later orders of the bar.
        """
        risk = getattr(self, "risk", None)
        if risk is None:
            return super().open_combo(spec_or_combo, quantity, tag)
        snap = self._current()
        try:
            combo = (
                spec_or_combo.resolve(snap)
                if isinstance(spec_or_combo, ComboSpec)
                else spec_or_combo
            )
        except QuoteUnavailable:
            return super().open_combo(spec_or_combo, quantity, tag)  # counts and logs it
        label = tag or combo.name
        greeks = combo_greeks(combo, snap, quantity)
        check = risk.check_order(snap.quote_time, greeks, label=label)
        if not check.allowed:
            self._log_rejection(label, f"risk: {check.reason}")
            return []
        fills = super().open_combo(combo, quantity, tag)
        if fills:
            risk.record_fill(greeks)
        return fills

    def execute_hedge(self, action: RiskAction) -> bool:
        """As :meth:`RiskMixin.execute_hedge` (the hedge is a backtrader order on
        ``hedge_data``; shares of the option underlying are not traded in the broker book)."""
        return super().execute_hedge(action)


__all__ = ["OptionRiskMixin", "RiskMixin"]
