"""Option transaction costs: where a fill lands inside the bid-ask spread, and commissions."""

from __future__ import annotations

from dataclasses import dataclass

from data_feeds.contracts import OptionQuote


@dataclass(frozen=True, slots=True)
class OptionCostModel:
    """Per-leg fill price and commission.

    A buy fills at ``mid + slippage_spread_fraction * (ask - bid)`` and a sell at
    ``mid - slippage_spread_fraction * (ask - bid)``: 0 fills at mid, 0.5 (the default) at the far
    touch (ask for buys, bid for sells), values above 0.5 beyond it.

    Parameters
    ----------
    commission_per_contract : float
        Dollars per contract per leg on every fill (commission + exchange and regulatory fees).
    slippage_spread_fraction : float
        Fraction of the bid-ask spread paid away from mid, >= 0.
    settlement_fee_per_contract : float
        Dollars per contract charged at expiry settlement (0 for cash-settled index options).

    Raises
    ------
    ValueError
        A negative parameter.
    """

    commission_per_contract: float = 1.0
    slippage_spread_fraction: float = 0.5
    settlement_fee_per_contract: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "commission_per_contract",
            "slippage_spread_fraction",
            "settlement_fee_per_contract",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def fill_price(self, quote: OptionQuote, quantity: int) -> float:
        """Fill price per unit for ``quantity`` contracts (> 0 buy, < 0 sell).

        Parameters
        ----------
        quote : OptionQuote
            Bid and ask per unit (index points / dollars per share).
        quantity : int
            Signed contracts; must be non-zero.

        Returns
        -------
        float
            Price per unit, floored at 0 for sells.

        Raises
        ------
        ValueError
            ``quantity`` is zero.
        """
        if quantity == 0:
            raise ValueError("quantity must be non-zero")
        offset = self.slippage_spread_fraction * quote.spread
        if quantity > 0:
            return quote.mid + offset
        return max(quote.mid - offset, 0.0)

    def commission(self, quantity: int) -> float:
        """Dollars of commission for ``|quantity|`` contracts."""
        return self.commission_per_contract * abs(quantity)
