"""Option transaction costs: where a fill lands inside the bid-ask spread, and commissions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from data_feeds.contracts import OptionQuote


@dataclass(frozen=True)
class OptionCostModel:
    """Per-leg fill price and commission.

    A buy fills at ``mid + f * (ask - bid)`` and a sell at ``mid - f * (ask - bid)`` with ``f`` the
    slippage spread fraction: 0 fills at mid, 0.5 (the default) at the far touch (ask for buys,
    bid for sells), values above 0.5 beyond it. Mid fills are available (``f = 0``) but never the
    default.

    Parameters
    ----------
    commission_per_contract : float
        Dollars per contract per leg on every fill (commission + exchange and regulatory fees).
    slippage_spread_fraction : float
        Fraction ``f`` of the bid-ask spread paid away from mid, >= 0.
    settlement_fee_per_contract : float
        Dollars per contract charged at expiry settlement, exercise or assignment (0 for
        cash-settled index options by default).
    slippage_by_root : mapping str -> float, optional
        Per-root override of ``slippage_spread_fraction`` (e.g. ``{"SPY": 0.3}``); roots not listed
        use the default.
    stock_commission_per_share : float
        Dollars per share when shares from assignment are traded (:meth:`stock_commission`).

    Raises
    ------
    ValueError
        A negative or non-finite parameter.
    """

    commission_per_contract: float = 1.0
    slippage_spread_fraction: float = 0.5
    settlement_fee_per_contract: float = 0.0
    slippage_by_root: Mapping[str, float] | None = field(default=None, hash=False)
    stock_commission_per_share: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "commission_per_contract",
            "slippage_spread_fraction",
            "settlement_fee_per_contract",
            "stock_commission_per_share",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        for root, v in (self.slippage_by_root or {}).items():
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"slippage_by_root[{root!r}] must be finite and >= 0, got {v}")
        if self.slippage_by_root is not None:
            object.__setattr__(self, "slippage_by_root", dict(self.slippage_by_root))

    def slippage(self, root: str | None = None) -> float:
        """Slippage spread fraction for ``root`` (the per-root override, else the default)."""
        if root is not None and self.slippage_by_root and root in self.slippage_by_root:
            return self.slippage_by_root[root]
        return self.slippage_spread_fraction

    def fill_price(self, quote: OptionQuote, quantity: int, root: str | None = None) -> float:
        """Fill price per unit for ``quantity`` contracts (> 0 buy, < 0 sell).

        Parameters
        ----------
        quote : OptionQuote
            Bid and ask per unit (index points / dollars per share).
        quantity : int
            Signed contracts; must be non-zero.
        root : str, optional
            Option root, to apply a :attr:`slippage_by_root` override.

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
        offset = self.slippage(root) * quote.spread
        if quantity > 0:
            return quote.mid + offset
        return max(quote.mid - offset, 0.0)

    def commission(self, quantity: int) -> float:
        """Dollars of commission for ``|quantity|`` contracts."""
        return self.commission_per_contract * abs(quantity)

    def settlement_fee(self, quantity: int) -> float:
        """Dollars charged at settlement / exercise / assignment of ``|quantity|`` contracts."""
        return self.settlement_fee_per_contract * abs(quantity)

    def stock_commission(self, shares: int) -> float:
        """Dollars of commission for trading ``|shares|`` shares."""
        return self.stock_commission_per_share * abs(shares)
