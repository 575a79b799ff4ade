"""An options-aware backtest broker on top of backtrader's ``BackBroker``.

Options are not backtrader data feeds (a chain has thousands of contracts), so the broker keeps a
book of option legs next to backtrader's own positions: strategies send multi-leg orders with the
quotes of the moment, the broker fills every leg at its bid/ask with the cost model, marks the book
at mid, and settles expiring legs in cash. ``getvalue()`` = cash + backtrader positions + option
marks on every bar.

This first version fills immediately against the quotes it is given (a strategy passes the current
quotes; the chain feed of the next issue will pass its snapshot) and cash-settles European index
options (SPX AM, SPXW PM). Physical settlement (SPY assignment) and margin arrive with the
chain-store issue and are refused here with a clear error rather than approximated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import backtrader as bt
import pandas as pd

from brokers.costs import OptionCostModel
from data_feeds.contracts import OptionContract, OptionQuote


@dataclass
class OptionPosition:
    """An open option leg: signed contracts, average entry price and last mark (per unit)."""

    contract: OptionContract
    quantity: int
    avg_price: float
    mark: float

    @property
    def market_value(self) -> float:
        """Dollars: ``quantity * mark * multiplier`` (negative for shorts)."""
        return self.quantity * self.mark * self.contract.multiplier


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
    """One leg settled at expiry: settlement price of the underlying and dollars received/paid."""

    time: dt.datetime
    contract: OptionContract
    quantity: int
    underlying_price: float
    value_per_unit: float
    fee: float
    cash_flow: float


class OptionsBroker(bt.brokers.BackBroker):
    """``BackBroker`` plus a book of option legs filled at bid/ask and cash-settled at expiry.

    Parameters (backtrader ``params``)
    ----------------------------------
    commission_per_contract : float
        Dollars per contract per leg (default 1.0).
    slippage_spread_fraction : float
        Fill offset from mid as a fraction of the spread; 0.5 (default) fills at the touch, 0 at
        mid.
    settlement_fee_per_contract : float
        Dollars per contract at settlement (default 0).

    Notes
    -----
    Cash accounting: buying ``q`` contracts at ``p`` costs ``q * p * multiplier + commission``;
    selling credits the premium less commission; settlement pays ``q * intrinsic * multiplier``.
    """

    params = (
        ("commission_per_contract", 1.0),
        ("slippage_spread_fraction", 0.5),
        ("settlement_fee_per_contract", 0.0),
    )

    def __init__(self) -> None:
        super().__init__()
        self.costs = OptionCostModel(
            commission_per_contract=self.p.commission_per_contract,
            slippage_spread_fraction=self.p.slippage_spread_fraction,
            settlement_fee_per_contract=self.p.settlement_fee_per_contract,
        )
        self.option_positions: dict[OptionContract, OptionPosition] = {}
        self.option_fills: list[OptionFill] = []
        self.option_settlements: list[OptionSettlement] = []

    # -- orders -----------------------------------------------------------------------------
    def execute_combo(
        self,
        legs: Sequence[tuple[OptionContract, int]],
        quotes: Mapping[OptionContract, OptionQuote],
        time: dt.datetime,
        tag: str = "",
    ) -> list[OptionFill]:
        """Fill every leg of a combo now against ``quotes`` (all legs or none).

        Parameters
        ----------
        legs : sequence of (OptionContract, int)
            Contracts and signed quantities (> 0 buy, < 0 sell), e.g. a long straddle
            ``[(call, 1), (put, 1)]``.
        quotes : mapping OptionContract -> OptionQuote
            Current two-sided quotes per unit.
        time : datetime.datetime
            Fill time (America/New_York wall clock).
        tag : str
            Label carried into the fills (e.g. ``"open"``).

        Returns
        -------
        list of OptionFill
            One fill per leg.

        Raises
        ------
        ValueError
            A leg has quantity 0, no quote, or an expiration before ``time``'s date.
        """
        for contract, qty in legs:
            if qty == 0:
                raise ValueError(f"{contract}: quantity must be non-zero")
            if contract not in quotes:
                raise ValueError(f"{contract}: no quote given; cannot fill the combo")
            if contract.expiration < time.date():
                raise ValueError(f"{contract}: expired before {time:%Y-%m-%d}")
        fills = []
        for contract, qty in legs:
            quote = quotes[contract]
            price = self.costs.fill_price(quote, qty)
            commission = self.costs.commission(qty)
            cash_flow = -qty * price * contract.multiplier - commission
            self.cash += cash_flow
            self._book(contract, qty, price, quote.mid)
            fill = OptionFill(
                time, contract, qty, price, quote.bid, quote.ask, commission, cash_flow, tag
            )
            self.option_fills.append(fill)
            fills.append(fill)
        self._refresh_value()
        return fills

    def _book(self, contract: OptionContract, qty: int, price: float, mark: float) -> None:
        pos = self.option_positions.get(contract)
        if pos is None:
            self.option_positions[contract] = OptionPosition(contract, qty, price, mark)
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

    # -- marks and settlement -------------------------------------------------------------------
    def mark_options(self, marks: Mapping[OptionContract, float]) -> None:
        """Set per-unit marks (usually quote mids) of open legs; unknown contracts are ignored."""
        for contract, mark in marks.items():
            pos = self.option_positions.get(contract)
            if pos is not None:
                pos.mark = float(mark)
        self._refresh_value()

    def settle_expiring(
        self,
        expiration: dt.date,
        underlying_price: float,
        time: dt.datetime,
        settlement: str | None = None,
    ) -> list[OptionSettlement]:
        """Cash-settle every open leg expiring on ``expiration`` at ``underlying_price``.

        Parameters
        ----------
        expiration : datetime.date
            Expiration date to settle.
        underlying_price : float
            Settlement value of the index: the special opening quotation for ``AM`` contracts, the
            official close for ``PM`` contracts (index points).
        time : datetime.datetime
            Settlement time.
        settlement : {'AM', 'PM'}, optional
            Settle only legs with this settlement style (default: all cash-settled legs expiring).

        Returns
        -------
        list of OptionSettlement

        Raises
        ------
        ValueError
            A physically settled leg (SPY) expires: assignment into shares is not supported by this
            broker version.
        """
        done = []
        for contract, pos in list(self.option_positions.items()):
            if contract.expiration != expiration:
                continue
            if settlement is not None and contract.settlement != settlement:
                continue
            if contract.settlement == "physical":
                raise ValueError(
                    f"{contract}: physical settlement (assignment into shares) is "
                    "not supported by this broker version"
                )
            value = contract.intrinsic(underlying_price)
            fee = self.costs.settlement_fee_per_contract * abs(pos.quantity)
            cash_flow = pos.quantity * value * contract.multiplier - fee
            self.cash += cash_flow
            del self.option_positions[contract]
            record = OptionSettlement(
                time, contract, pos.quantity, underlying_price, value, fee, cash_flow
            )
            self.option_settlements.append(record)
            done.append(record)
        self._refresh_value()
        return done

    # -- value ------------------------------------------------------------------------------------
    def options_value(self) -> float:
        """Dollars: mark-to-market value of the option book (shorts negative)."""
        return float(sum(p.market_value for p in self.option_positions.values()))

    def _get_value(self, datas=None, lever=False):
        value = super()._get_value(datas=datas, lever=lever)
        if datas:  # value of specific backtrader data positions requested: no option book
            return value
        book = self.options_value()
        self._value += book
        self._valuelever += book
        return value + book

    def _refresh_value(self) -> None:
        self._get_value()

    def fills_frame(self) -> pd.DataFrame:
        """Fills and settlements as one frame, in time order (the trades CSV of a run)."""
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
        ]
        if not rows:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(rows).sort_values(["time", "event"], kind="stable")
        return frame.reindex(columns=columns).reset_index(drop=True)


def _contract_cols(contract: OptionContract) -> dict:
    return {
        "root": contract.root,
        "expiration": contract.expiration,
        "strike": contract.strike,
        "right": contract.right,
    }
