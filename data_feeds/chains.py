"""``ChainSnapshot``: every quote of an option chain at one moment, and the queries on it.

A snapshot is what the chain store returns for ``(underlying, quote time)`` and what the chain feed
hands to a strategy on each bar. Its ``quotes`` table has one row per listed contract with the
columns of :data:`QUOTE_COLUMNS`:

========================  =========================================================================
column                    meaning (units)
========================  =========================================================================
root                      option root (``SPX``, ``SPXW``, ``SPY``)
expiration                expiration date (``datetime64[ns]``, naive, date only)
strike                    strike in dollars (index points for SPX)
right                     ``'C'`` or ``'P'``
bid, ask, mid             per-unit prices (dollars per share / index points); ``mid = (bid+ask)/2``
last                      last trade (NaN when absent)
volume, open_interest     contracts (NaN when absent)
vendor_implied_vol        the data vendor's implied vol (decimal; NaN when absent; not trusted)
vendor_delta ...          the vendor's greeks when given (``vendor_delta``, ``vendor_gamma``, ...)
is_liquid                 the store's liquidity flag (bool)
========================  =========================================================================

Derived columns (``implied_vol`` from the mid, model greeks) are added by the query methods of this
module, never taken from the vendor.

Time conventions: ``quote_time`` is tz-aware ``America/New_York``; ``tte`` is ACT/365 years from the
quote time to the settlement time of the contract (AM: 09:30 ET on the expiration date, the special
opening quotation; PM: the session close of the expiration date, 16:00 or 13:00 on half days;
physical (SPY): the 16:00 close); ``dte`` is calendar days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from data_feeds.calendar import MINUTES_PER_YEAR, TZ, _xnys
from data_feeds.contracts import ROOT_SPECS, OptionContract, OptionQuote

QUOTE_COLUMNS = (
    "root",
    "expiration",
    "strike",
    "right",
    "bid",
    "ask",
    "mid",
    "last",
    "volume",
    "open_interest",
    "vendor_implied_vol",
    "vendor_delta",
    "vendor_gamma",
    "vendor_theta",
    "vendor_vega",
    "is_liquid",
)
"""Columns of :attr:`ChainSnapshot.quotes` (see the module docstring for units)."""


def settlement_time(expiration: dt.date, settlement: str) -> pd.Timestamp:
    """Wall-clock settlement time of a contract expiring on ``expiration`` (tz-aware, ET).

    Parameters
    ----------
    expiration : datetime.date
        Expiration date.
    settlement : {'AM', 'PM', 'physical'}
        ``AM``: 09:30 ET (special opening quotation); ``PM`` and ``physical``: the NYSE session
        close of that date (16:00, or 13:00 on an early-close day).

    Returns
    -------
    pandas.Timestamp
        Tz-aware ``America/New_York``.

    Raises
    ------
    ValueError
        Unknown ``settlement``.
    """
    day = pd.Timestamp(expiration)
    if settlement == "AM":
        return pd.Timestamp.combine(day.date(), dt.time(9, 30)).tz_localize(TZ)
    if settlement not in ("PM", "physical"):
        raise ValueError(f"settlement must be 'AM', 'PM' or 'physical', got {settlement!r}")
    cal = _xnys()
    if cal.first_session <= day <= cal.last_session and cal.is_session(day):
        return cal.session_close(day).tz_convert(TZ)
    return pd.Timestamp.combine(day.date(), dt.time(16, 0)).tz_localize(TZ)


@dataclass(frozen=True)
class Combo:
    """A multi-leg option position per one combo unit, with its tradable quote.

    Parameters
    ----------
    name : str
        ``straddle``, ``strangle``, ``vertical``, ``iron_condor``, ``calendar`` or ``custom``.
    legs : tuple of (OptionContract, int)
        Contracts and signed ratios per combo unit (> 0 long, < 0 short), e.g. a long straddle
        ``((call, 1), (put, 1))``.
    bid, ask : float
        Combo quote per unit as a trader would cross the legs: ``bid`` (what selling one combo
        receives) ``= sum_{q>0} q * bid_i - sum_{q<0} |q| * ask_i``; ``ask`` (what buying one combo
        pays) ``= sum_{q>0} q * ask_i - sum_{q<0} |q| * bid_i``. Negative values are credits.
    mid : float
        ``sum q * mid_i``.
    """

    name: str
    legs: tuple[tuple[OptionContract, int], ...]
    bid: float
    ask: float
    mid: float


@dataclass
class ChainSnapshot:
    """All quotes of one underlying's option chain at ``quote_time``.

    Parameters
    ----------
    underlying : str
        Underlying symbol (``SPX``, ``SPY``).
    quote_time : pandas.Timestamp
        When the quotes were taken, tz-aware ``America/New_York``.
    underlying_price : float
        Underlying price at ``quote_time`` (index points / dollars); NaN when the source has none.
    quotes : pandas.DataFrame
        One row per contract, columns :data:`QUOTE_COLUMNS`.
    rate : float
        Continuously compounded risk-free rate (decimal) used for forwards and implied vols.
    source : str
        Where the quotes came from (store ``data_source``), for reports.

    Raises
    ------
    ValueError
        ``quote_time`` not tz-aware, or a missing column in ``quotes``.
    """

    underlying: str
    quote_time: pd.Timestamp
    underlying_price: float
    quotes: pd.DataFrame
    rate: float = 0.0
    source: str = ""
    _index: dict[tuple[str, dt.date, float, str], int] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.quote_time = pd.Timestamp(self.quote_time)
        if self.quote_time.tzinfo is None:
            raise ValueError(
                f"quote_time must be tz-aware (America/New_York), got {self.quote_time}"
            )
        self.quote_time = self.quote_time.tz_convert(TZ)
        missing = [c for c in QUOTE_COLUMNS if c not in self.quotes.columns]
        if missing:
            raise ValueError(f"ChainSnapshot quotes: missing columns {missing}")

    # -- lookups ----------------------------------------------------------------------------------
    @property
    def quote_date(self) -> dt.date:
        """Session date of the snapshot."""
        return self.quote_time.date()

    def _key_index(self) -> dict[tuple[str, dt.date, float, str], int]:
        if self._index is None:
            q = self.quotes
            exp = pd.DatetimeIndex(q["expiration"]).date
            self._index = {
                (r, e, float(k), c): i
                for i, (r, e, k, c) in enumerate(
                    zip(
                        q["root"].to_numpy(),
                        exp,
                        q["strike"].to_numpy(),
                        q["right"].to_numpy(),
                        strict=True,
                    )
                )
            }
        return self._index

    def has(self, contract: OptionContract) -> bool:
        """Whether ``contract`` is quoted in this snapshot."""
        key = (contract.root, contract.expiration, float(contract.strike), contract.right)
        return key in self._key_index()

    def row(self, contract: OptionContract) -> pd.Series:
        """The quotes row of ``contract``.

        Raises
        ------
        KeyError
            ``contract`` is not in the snapshot (names it and the snapshot time).
        """
        key = (contract.root, contract.expiration, float(contract.strike), contract.right)
        i = self._key_index().get(key)
        if i is None:
            raise KeyError(
                f"{contract} is not quoted in the {self.underlying} snapshot of "
                f"{self.quote_time:%Y-%m-%d %H:%M}"
            )
        return self.quotes.iloc[i]

    def quote(self, contract: OptionContract) -> OptionQuote:
        """Two-sided quote of ``contract`` (per unit).

        Raises
        ------
        KeyError
            ``contract`` is not in the snapshot.
        ValueError
            The stored quote is crossed or negative (the store quarantines those, so this means
            the snapshot was built by hand from bad data).
        """
        r = self.row(contract)
        return OptionQuote(float(r["bid"]), float(r["ask"]))

    def contract(self, root: str, expiration: dt.date, strike: float, right: str) -> OptionContract:
        """The :class:`OptionContract` for a quoted series (style/settlement from the root).

        Raises
        ------
        KeyError
            The series is not quoted in this snapshot.
        """
        c = OptionContract(root, expiration, float(strike), right)  # type: ignore[arg-type]
        self.row(c)
        return c

    def roots(self) -> list[str]:
        """Option roots present, sorted."""
        return sorted(self.quotes["root"].unique().tolist())

    def tte(self, expiration: dt.date, root: str) -> float:
        """ACT/365 years from ``quote_time`` to the settlement time of ``root`` expiring on
        ``expiration`` (to the minute; 0 if already past).

        Raises
        ------
        ValueError
            ``root`` is not a known root (see :data:`data_feeds.contracts.ROOT_SPECS`).
        """
        if root not in ROOT_SPECS:
            raise ValueError(f"unknown root {root!r}: known roots {sorted(ROOT_SPECS)}")
        end = settlement_time(expiration, ROOT_SPECS[root][1])
        minutes = (end - self.quote_time).total_seconds() / 60.0
        return max(minutes, 0.0) / MINUTES_PER_YEAR

    def mids(self) -> dict[OptionContract, float]:
        """Per-unit mid of every quoted contract (for marking a book)."""
        q = self.quotes
        exp = pd.DatetimeIndex(q["expiration"]).date
        return {
            OptionContract(r, e, float(k), c): float(m)
            for r, e, k, c, m in zip(
                q["root"].to_numpy(),
                exp,
                q["strike"].to_numpy(),
                q["right"].to_numpy(),
                q["mid"].to_numpy(),
                strict=True,
            )
        }

    def mid(self, contract: OptionContract) -> float:
        """Per-unit mid of ``contract``; NaN if not quoted."""
        key = (contract.root, contract.expiration, float(contract.strike), contract.right)
        i = self._key_index().get(key)
        return float("nan") if i is None else float(self.quotes["mid"].iat[i])

    # -- queries (implemented in the chain-queries work; signatures are the contract) -------------
    def expiries(self, root: str | None = None) -> list[dt.date]:
        """Expiration dates quoted (for ``root`` or all roots), ascending."""
        raise NotImplementedError

    def nearest_expiry(self, target_dte: float, root: str | None = None) -> dt.date:
        """Expiration whose calendar ``dte`` from the quote date is nearest ``target_dte`` (ties
        go to the earlier one).

        Raises
        ------
        ValueError
            No expiry quoted for ``root``.
        """
        raise NotImplementedError

    def forward(self, expiration: dt.date, root: str) -> float:
        """Forward price implied by put-call parity at the strike where ``|C_mid - P_mid|`` is
        smallest among strikes with both legs two-sided: ``F = K + exp(r * tte) * (C - P)``.

        Raises
        ------
        ValueError
            No strike with a two-sided call and put for that expiry.
        """
        raise NotImplementedError

    def atm_strike(self, expiration: dt.date, root: str) -> float:
        """Listed strike nearest the forward (ties go to the lower strike)."""
        raise NotImplementedError

    def with_implied_vols(
        self, expiration: dt.date | None = None, root: str | None = None
    ) -> pd.DataFrame:
        """Quotes (optionally of one expiry/root) plus ``forward``, ``tte``, ``log_moneyness``,
        ``implied_vol`` (from the mid, decimal, ACT/365), ``delta``, ``gamma``, ``vega``,
        ``theta`` (Black-76 on the forward; NaN where the mid is outside no-arbitrage bounds)."""
        raise NotImplementedError

    def strike_by_delta(self, expiration: dt.date, root: str, right: str, delta: float) -> float:
        """Listed strike whose model delta is nearest ``delta`` (calls > 0, puts < 0)."""
        raise NotImplementedError

    def combo(self, name: str, legs: list[tuple[OptionContract, int]]) -> Combo:
        """Quote an arbitrary combo of quoted legs (see :class:`Combo` for the crossing rule)."""
        raise NotImplementedError

    def straddle(self, expiration: dt.date, root: str, strike: float | None = None) -> Combo:
        """Long straddle (call + put, same strike; ATM by default)."""
        raise NotImplementedError

    def strangle(
        self,
        expiration: dt.date,
        root: str,
        call_strike: float | None = None,
        put_strike: float | None = None,
        delta: float = 0.25,
    ) -> Combo:
        """Long strangle (OTM call + OTM put; strikes by |delta| when not given)."""
        raise NotImplementedError

    def vertical(
        self, expiration: dt.date, root: str, right: str, long_strike: float, short_strike: float
    ) -> Combo:
        """Vertical spread: long ``long_strike``, short ``short_strike``, same right and expiry."""
        raise NotImplementedError

    def iron_condor(
        self,
        expiration: dt.date,
        root: str,
        put_long: float,
        put_short: float,
        call_short: float,
        call_long: float,
    ) -> Combo:
        """Short iron condor: long ``put_long`` put, short ``put_short`` put, short ``call_short``
        call, long ``call_long`` call (``put_long < put_short <= call_short < call_long``)."""
        raise NotImplementedError

    def calendar(
        self,
        near_expiration: dt.date,
        far_expiration: dt.date,
        strike: float,
        right: str,
        near_root: str,
        far_root: str | None = None,
    ) -> Combo:
        """Long calendar: short the near expiry, long the far expiry, same strike and right."""
        raise NotImplementedError


def empty_quotes() -> pd.DataFrame:
    """An empty quotes table with the :data:`QUOTE_COLUMNS` and their dtypes."""
    return pd.DataFrame(
        {
            "root": pd.Series(dtype=object),
            "expiration": pd.Series(dtype="datetime64[ns]"),
            "strike": pd.Series(dtype=float),
            "right": pd.Series(dtype=object),
            **{c: pd.Series(dtype=float) for c in QUOTE_COLUMNS[4:-1]},
            "is_liquid": pd.Series(dtype=bool),
        }
    )


__all__ = ["QUOTE_COLUMNS", "ChainSnapshot", "Combo", "empty_quotes", "settlement_time"]
