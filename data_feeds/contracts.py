"""Core option types: ``OptionContract`` and ``OptionQuote``.

Conventions (see ``docs/architecture.md``): strikes and prices in dollars per share (index points
for SPX), one contract = ``multiplier`` (100) units; ``right`` is ``'C'`` or ``'P'``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

Right = Literal["C", "P"]
Style = Literal["european", "american"]
Settlement = Literal["AM", "PM", "physical"]

#: Contract specifications by root: (style, settlement). SPX monthlies settle on the special opening
#: quotation (AM) of expiry day, SPXW on the 16:00 close (PM); SPY is American, physically settled.
ROOT_SPECS: dict[str, tuple[Style, Settlement]] = {
    "SPX": ("european", "AM"),
    "SPXW": ("european", "PM"),
    "SPY": ("american", "physical"),
}

#: Underlying symbol of each option root (SPX weeklies are on the SPX index). The one root table:
#: chain ingest, margin and the broker map roots through :func:`underlying_of`.
ROOT_UNDERLYING: dict[str, str] = {"SPX": "SPX", "SPXW": "SPX", "SPY": "SPY"}


def underlying_of(root: str) -> str:
    """The underlying symbol of an option root (``SPXW -> SPX``).

    Parameters
    ----------
    root : str
        Option root (case-insensitive, surrounding blanks ignored).

    Returns
    -------
    str
        Upper-case underlying symbol from :data:`ROOT_UNDERLYING`; an unknown root maps to itself.
    """
    r = str(root).strip().upper()
    return ROOT_UNDERLYING.get(r, r)


@dataclass(frozen=True, slots=True)
class OptionContract:
    """One listed option.

    Parameters
    ----------
    root : str
        Option root (``SPX``, ``SPXW``, ``SPY``).
    expiration : datetime.date
        Expiration date (the settlement date for cash-settled index options).
    strike : float
        Strike in dollars (index points for SPX), > 0.
    right : {'C', 'P'}
        Call or put.
    style : {'european', 'american'}, optional
        Exercise style; defaults from :data:`ROOT_SPECS` for known roots.
    settlement : {'AM', 'PM', 'physical'}, optional
        Settlement; defaults from :data:`ROOT_SPECS` for known roots.
    multiplier : int
        Units per contract (100).

    Raises
    ------
    ValueError
        Non-positive or non-finite strike, a right other than 'C'/'P', an unknown root without
        explicit style and settlement.
    """

    root: str
    expiration: dt.date
    strike: float
    right: Right
    style: Style | None = None
    settlement: Settlement | None = None
    multiplier: int = 100

    def __post_init__(self) -> None:
        if self.right not in ("C", "P"):
            raise ValueError(f"right must be 'C' or 'P', got {self.right!r}")
        if not (math.isfinite(self.strike) and self.strike > 0):
            raise ValueError(f"strike must be a positive dollar amount, got {self.strike!r}")
        if self.multiplier <= 0:
            raise ValueError(f"multiplier must be positive, got {self.multiplier!r}")
        if self.style is None or self.settlement is None:
            if self.root not in ROOT_SPECS:
                raise ValueError(
                    f"unknown root {self.root!r}: give style and settlement explicitly "
                    f"(known roots: {sorted(ROOT_SPECS)})"
                )
            style, settlement = ROOT_SPECS[self.root]
            object.__setattr__(self, "style", self.style or style)
            object.__setattr__(self, "settlement", self.settlement or settlement)

    def intrinsic(self, underlying: float) -> float:
        """Exercise value per unit at ``underlying`` (dollars per share / index points)."""
        if self.right == "C":
            return max(underlying - self.strike, 0.0)
        return max(self.strike - underlying, 0.0)

    def __str__(self) -> str:
        return f"{self.root} {self.expiration:%Y-%m-%d} {self.strike:g}{self.right}"


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """A two-sided quote per unit (dollars per share / index points).

    Raises
    ------
    ValueError
        Negative or non-finite prices, or ``bid > ask`` (a crossed quote).
    """

    bid: float
    ask: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bid) and math.isfinite(self.ask)):
            raise ValueError(f"quote must be finite, got bid={self.bid} ask={self.ask}")
        if self.bid < 0 or self.ask < 0:
            raise ValueError(f"quote must be non-negative, got bid={self.bid} ask={self.ask}")
        if self.bid > self.ask:
            raise ValueError(f"crossed quote: bid {self.bid} > ask {self.ask}")

    @property
    def mid(self) -> float:
        """Midpoint ``(bid + ask) / 2``."""
        return 0.5 * (self.bid + self.ask)

    @property
    def spread(self) -> float:
        """``ask - bid``."""
        return self.ask - self.bid
