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

Model of the queries: each ``(root, expiration)`` has a forward from put-call parity
(:meth:`ChainSnapshot.forward`, the mean over the :data:`PARITY_STRIKES` strikes with the smallest
``|C_mid - P_mid|``); implied vols and greeks are Black (1976) on that forward with discount
``exp(-rate * tte)``, computed by the Black-Scholes-Merton kernels of :mod:`pricing` with
``spot = F exp(-rate * tte)`` and ``div_yield = 0`` (see :meth:`ChainSnapshot.with_implied_vols`).
Deltas are Black-76 forward deltas ``N(d1)`` / ``N(d1) - 1``; "25-delta" means that delta.

Time conventions: ``quote_time`` is tz-aware ``America/New_York``; ``tte`` is ACT/365 years from the
quote time to the settlement time of the contract (AM: 09:30 ET on the expiration date, the special
opening quotation; PM: the session close of the expiration date, 16:00 or 13:00 on half days;
physical (SPY): the 16:00 close); ``dte`` is calendar days.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from data_feeds.calendar import MINUTES_PER_YEAR, TZ, _xnys
from data_feeds.contracts import ROOT_SPECS, OptionContract, OptionQuote
from data_feeds.errors import DataValidationError, VolsuiteError
from pricing import IV_STATUS_DESCRIPTIONS, bs_greeks, implied_vol
from pricing.forwards import (
    ForwardEstimate,
    forward_estimate,
    nearest_parity_forwards,
)

GREEK_COLUMNS = ("delta", "gamma", "vega", "theta")
"""Model greeks added by :meth:`ChainSnapshot.with_implied_vols` (per unit of the underlying)."""

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

PARITY_STRIKES = 3
"""Number of strikes (smallest ``|C_mid - P_mid|``) averaged by :meth:`ChainSnapshot.forward`."""

ATM_MAX_DISTANCE = 0.10
"""Sanity bound of :meth:`ChainSnapshot.atm_strike`: the ATM strike must lie within 10 % of the
forward (relative). SPX strikes are 5-25 points apart near the money (under 1 % of the index) and
the widest ladders in the shared data are a few percent apart; a strike further away is not at
the money, it is the only strike a thin chain quotes on both sides (issue 17 item 9)."""


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


_settlement_time_cached = lru_cache(maxsize=4096)(settlement_time)


QUOTE_UNAVAILABLE_REASONS = {
    "no_quotes": "nothing quoted for the root and expiry",
    "not_quoted": "the contract (or a combo leg) is not quoted",
    "no_expiry": "no expiry quoted for the root",
    "no_forward": "no strike with a two-sided call and put (no parity forward)",
    "no_pair_strike": "no strike with both a call and a put quoted",
    "no_delta_strike": "no two-sided quote with an implied vol on that side",
    "delta_not_bracketed": "the delta is not bracketed by out-of-the-money quotes",
    "no_atm_iv": "a leg at the ATM strike has no implied vol",
    "atm_too_far": "the nearest strike quoted on both sides is too far from the forward",
}
"""Reason codes of :class:`QuoteUnavailable` and what they mean."""


class QuoteUnavailable(VolsuiteError, KeyError, ValueError):
    """A chain query has no answer in this snapshot (a fact of the data, not a bug).

    Raised by the :class:`ChainSnapshot` queries (``row``, ``quote``, ``contract``, ``forward``,
    ``atm_strike``, ``atm_iv``, ``strike_by_delta``, ``iv_at_delta``, ``nearest_expiry``,
    ``with_implied_vols``, the combo builders). A subclass of ``KeyError`` *and* ``ValueError``
    so that callers written against the former bare errors keep working; new code catches
    ``QuoteUnavailable`` and counts ``reason``.

    Parameters
    ----------
    reason : str
        One of :data:`QUOTE_UNAVAILABLE_REASONS`.
    message : str
        One line naming the snapshot, root, expiry (and contract) and what is missing.

    Raises
    ------
    ValueError
        An unknown ``reason``.
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in QUOTE_UNAVAILABLE_REASONS:
            raise ValueError(
                f"unknown QuoteUnavailable reason {reason!r}; expected one of "
                f"{sorted(QUOTE_UNAVAILABLE_REASONS)}"
            )
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


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
    _group_rows: dict[tuple[str, dt.date], np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _iv_frame: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)
    _forwards: dict[tuple[str, dt.date], tuple[float, int]] | None = field(
        default=None, init=False, repr=False, compare=False
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
            raise QuoteUnavailable(
                "not_quoted",
                f"{contract} is not quoted in the {self.underlying} snapshot of "
                f"{self.quote_time:%Y-%m-%d %H:%M}",
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
        end = _settlement_time_cached(_as_date(expiration), ROOT_SPECS[root][1])
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

    # -- queries ----------------------------------------------------------------------------------
    def _where(self, expiration: dt.date | None = None, root: str | None = None) -> str:
        """``"SPX snapshot of 2019-05-01 15:45 EDT, root SPXW, expiry 2019-05-31"`` for errors."""
        where = f"{self.underlying} snapshot of {self.quote_time:%Y-%m-%d %H:%M %Z}"
        if root is not None:
            where += f", root {root}"
        if expiration is not None:
            where += f", expiry {expiration:%Y-%m-%d}"
        return where

    def _groups(self) -> dict[tuple[str, dt.date], np.ndarray]:
        """Row positions of each ``(root, expiration)``, keys sorted (cached)."""
        if self._group_rows is None:
            q = self.quotes
            if len(q) == 0:
                self._group_rows = {}
                return self._group_rows
            root_code, root_names = pd.factorize(q["root"].to_numpy(dtype=object), sort=True)
            day = pd.DatetimeIndex(q["expiration"]).normalize().to_numpy().astype("datetime64[D]")
            day_i = day.astype(np.int64)
            order = np.lexsort((day_i, root_code))
            rc, di = root_code[order], day_i[order]
            starts = np.flatnonzero(np.r_[True, (rc[1:] != rc[:-1]) | (di[1:] != di[:-1])])
            ends = np.r_[starts[1:], len(order)]
            self._group_rows = {
                (str(root_names[rc[a]]), day[order[a]].item()): np.sort(order[a:b])
                for a, b in zip(starts, ends, strict=True)
            }
        return self._group_rows

    def _rows(self, expiration: dt.date, root: str) -> np.ndarray:
        """Row positions of one ``(root, expiration)``.

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry (the message lists what is quoted).
        """
        rows = self._groups().get((root, expiration))
        if rows is None:
            quoted = self.expiries(root)
            have = (
                f"expiries quoted for {root}: {[f'{e:%Y-%m-%d}' for e in quoted]}"
                if quoted
                else f"roots quoted: {self.roots()}"
            )
            raise QuoteUnavailable(
                "no_quotes", f"no quotes in the {self._where(expiration, root)} ({have})"
            )
        return rows

    def _analytics(self) -> pd.DataFrame:
        """The whole snapshot with forwards, tte, implied vols and greeks (built once, cached)."""
        if self._iv_frame is None:
            self._iv_frame = self._build_analytics()
        return self._iv_frame

    def _build_analytics(self) -> pd.DataFrame:
        q = self.quotes
        n = len(q)
        right = q["right"].to_numpy(dtype=object)
        is_call = right == "C"
        bad = ~(is_call | (right == "P"))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataValidationError(
                self.source or self._where(),
                f"right must be 'C' or 'P', got {right[i]!r}",
                row=str(q.index[i]),
                field="right",
            )
        strike = q["strike"].to_numpy(dtype=float)
        bid = q["bid"].to_numpy(dtype=float)
        ask = q["ask"].to_numpy(dtype=float)
        mid = q["mid"].to_numpy(dtype=float)

        groups = self._groups()
        n_groups = len(groups)
        gid = np.empty(n, dtype=np.int64)
        tte_g = np.empty(n_groups)
        dte_g = np.empty(n_groups)
        for j, ((root, expiration), rows) in enumerate(groups.items()):
            gid[rows] = j
            tte_g[j] = self.tte(expiration, root)
            dte_g[j] = (expiration - self.quote_date).days

        # put-call parity forward per group (pricing.nearest_parity_forwards): mean over the
        # PARITY_STRIKES strikes with the smallest |C_mid - P_mid| among strikes whose call and
        # put are both two-sided
        two_sided = (bid > 0.0) & (ask >= bid) & np.isfinite(mid)
        c_idx = np.flatnonzero(is_call)
        p_idx = np.flatnonzero(~is_call)
        pairs = pd.DataFrame({"g": gid[c_idx], "k": strike[c_idx], "ci": c_idx}).merge(
            pd.DataFrame({"g": gid[p_idx], "k": strike[p_idx], "pi": p_idx}),
            on=["g", "k"],
            how="inner",
        )
        ci = pairs["ci"].to_numpy()
        pi = pairs["pi"].to_numpy()
        ok = two_sided[ci] & two_sided[pi]
        ci, pi = ci[ok], pi[ok]
        fwd_g, count = nearest_parity_forwards(
            gid[ci], strike[ci], mid[ci], mid[pi], tte_g, self.rate,
            n_groups=n_groups, n_strikes=PARITY_STRIKES,
        )  # fmt: skip
        self._forwards = {
            key: (float(fwd_g[j]), int(count[j])) for j, key in enumerate(groups.keys())
        }

        forward = fwd_g[gid]
        tte = tte_g[gid]
        # Black-76 on the forward through the BSM kernels: spot F e^{-r tte}, dividend yield 0
        pseudo_spot = forward * np.exp(-self.rate * tte)
        rights = np.where(is_call, "C", "P")
        iv = implied_vol(mid, pseudo_spot, strike, tte, self.rate, 0.0, rights, return_status=True)
        greeks = bs_greeks(pseudo_spot, strike, tte, self.rate, 0.0, iv.vol, rights)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_moneyness = np.log(strike / forward)
        derived = pd.DataFrame(
            {
                "forward": forward,
                "tte": tte,
                "dte": dte_g[gid],
                "log_moneyness": log_moneyness,
                "implied_vol": iv.vol,
                "iv_status": iv.status,
                "delta": greeks.delta,
                "gamma": greeks.gamma,
                "vega": greeks.vega,
                "theta": greeks.theta,
                "two_sided": two_sided,
            },
            index=q.index,
        )
        return pd.concat([q, derived], axis=1)

    def expiries(self, root: str | None = None) -> list[dt.date]:
        """Expiration dates quoted (for ``root`` or all roots), ascending; empty if none."""
        return sorted({e for r, e in self._groups() if root is None or r == root})

    def nearest_expiry(self, target_dte: float, root: str | None = None) -> dt.date:
        """Expiration whose calendar ``dte`` from the quote date is nearest ``target_dte`` (ties
        go to the earlier one).

        Parameters
        ----------
        target_dte : float
            Target calendar days to expiry (0 for the same-day expiry).
        root : str, optional
            Only expiries of this root; all roots when omitted.

        Returns
        -------
        datetime.date

        Raises
        ------
        ValueError
            No expiry quoted for ``root``, or ``target_dte`` not finite.
        """
        if not math.isfinite(target_dte):
            raise ValueError(f"target_dte must be a finite number of days, got {target_dte!r}")
        quoted = self.expiries(root)
        if not quoted:
            raise QuoteUnavailable(
                "no_expiry",
                f"no expiry quoted in the {self._where(root=root)} (roots quoted: {self.roots()})",
            )
        dte = np.array([(e - self.quote_date).days for e in quoted], dtype=float)
        return quoted[int(np.argmin(np.abs(dte - target_dte)))]

    def forward(self, expiration: dt.date, root: str) -> float:
        """Forward price to the settlement of ``root`` expiring on ``expiration``, implied by
        put-call parity.

        ``F_K = K + exp(r * tte) * (C_mid(K) - P_mid(K))`` at each of the
        :data:`PARITY_STRIKES` (3) strikes with the smallest ``|C_mid - P_mid|`` among strikes
        whose call and put both have ``bid > 0``; the forward is their mean. Near the forward
        the parity relation is least sensitive to the rate and to the width of the quotes;
        averaging three strikes halves the half-tick noise of one pair.

        Parameters
        ----------
        expiration : datetime.date
            Expiration date.
        root : str
            Option root.

        Returns
        -------
        float
            Forward in the underlying's units (index points / dollars). ``tte`` is ACT/365 from
            :meth:`tte`; the rate is :attr:`rate`.

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        ValueError
            No strike with a two-sided call and put for that expiry.
        """
        expiration = _as_date(expiration)
        self._rows(expiration, root)
        self._analytics()
        assert self._forwards is not None
        fwd, used = self._forwards[(root, expiration)]
        if used == 0:
            raise QuoteUnavailable(
                "no_forward",
                f"no forward in the {self._where(expiration, root)}: no strike has a call "
                "and a put both with bid > 0",
            )
        return fwd

    def forward_estimate(
        self, expiration: dt.date, root: str, *, div_yield: float = 0.0
    ) -> ForwardEstimate:
        """Forward of ``root`` expiring on ``expiration`` with the suite's one fallback.

        The parity forward of :meth:`forward` when the expiry has a strike with a two-sided call
        and put (``source="parity"``); otherwise :func:`pricing.forwards.carry_forward`
        ``underlying_price * exp((rate - div_yield) * tte)`` (``source="carry"``), or NaN with
        ``source="none"`` when the snapshot has no finite positive underlying price. See
        :func:`pricing.forwards.forward_estimate`.

        Parameters
        ----------
        expiration : datetime.date
            Expiration date.
        root : str
            Option root.
        div_yield : float, default 0.0
            Continuous dividend yield (decimal) of the fallback.

        Returns
        -------
        pricing.forwards.ForwardEstimate
            ``(forward, n_pairs, source)``; forward in the underlying's units.

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        """
        expiration = _as_date(expiration)
        self._rows(expiration, root)
        self._analytics()
        assert self._forwards is not None
        fwd, used = self._forwards[(root, expiration)]
        if used > 0:
            return ForwardEstimate(fwd, used, "parity")
        return forward_estimate(
            [], [], [], self.tte(expiration, root), self.rate,
            spot=float(self.underlying_price), div_yield=div_yield,
        )  # fmt: skip

    def _pair_strikes(self, expiration: dt.date, root: str) -> np.ndarray:
        """Ascending strikes where both the call and the put are quoted."""
        rows = self._rows(expiration, root)
        q = self.quotes
        strike = q["strike"].to_numpy(dtype=float)[rows]
        right = q["right"].to_numpy(dtype=object)[rows]
        return np.intersect1d(strike[right == "C"], strike[right == "P"])

    def atm_strike(self, expiration: dt.date, root: str) -> float:
        """Listed strike nearest the forward (ties go to the lower strike).

        Only strikes where both the call and the put are quoted count (so that a straddle at
        the ATM strike always exists).

        Returns
        -------
        float
            Strike in the underlying's units.

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        ValueError
            No forward (see :meth:`forward`), no strike with both rights quoted, or the nearest
            such strike is more than :data:`ATM_MAX_DISTANCE` (10 %) of the forward away (a thin
            chain: a far strike is not "at the money").
        """
        expiration = _as_date(expiration)
        fwd = self.forward(expiration, root)
        strikes = self._pair_strikes(expiration, root)
        if strikes.size == 0:
            raise QuoteUnavailable(
                "no_pair_strike",
                f"no strike with both a call and a put in the {self._where(expiration, root)}",
            )
        k = float(strikes[int(np.argmin(np.abs(strikes - fwd)))])
        if abs(k - fwd) > ATM_MAX_DISTANCE * fwd:
            raise QuoteUnavailable(
                "atm_too_far",
                f"no ATM strike in the {self._where(expiration, root)}: the strike nearest the "
                f"forward {fwd:.2f} with both a call and a put quoted is {k:g}, "
                f"{abs(k / fwd - 1):.0%} away (more than {ATM_MAX_DISTANCE:.0%}); the chain is "
                "too thin near the money"
            )
        return k

    def position_greeks(self, legs: Iterable[tuple[OptionContract, int]]) -> dict[str, float]:
        """Dollar greeks of option positions from this snapshot's model greeks.

        ``sum quantity * multiplier * greek`` over ``legs`` with the Black-76 greeks of
        :meth:`with_implied_vols` (read one expiry slice at a time).

        Parameters
        ----------
        legs : iterable of (OptionContract, int)
            Contracts and signed quantities in contracts (> 0 long, < 0 short).

        Returns
        -------
        dict
            ``delta``: dollars per 1 point of the (discounted) forward; ``gamma``: change of that
            delta per point; ``vega``: dollars per 1.00 of implied vol; ``theta``: dollars per
            year; ``legs_without_greeks``: legs left out of the sums (not quoted here, e.g. of
            another underlying, no implied vol, or past settlement).
        """
        out: dict[str, float] = {g: 0.0 for g in GREEK_COLUMNS}
        out["legs_without_greeks"] = 0
        by_slice: dict[tuple[str, dt.date], list[tuple[OptionContract, int]]] = {}
        for contract, qty in legs:
            by_slice.setdefault((contract.root, contract.expiration), []).append((contract, qty))
        for (root, expiration), group in by_slice.items():
            try:
                table = self.with_implied_vols(expiration, root)
            except KeyError:
                out["legs_without_greeks"] += len(group)
                continue
            index = {
                (float(k), r): i
                for i, (k, r) in enumerate(zip(table["strike"], table["right"], strict=True))
            }
            values = table[list(GREEK_COLUMNS)].to_numpy(dtype=float)
            for contract, qty in group:
                i = index.get((float(contract.strike), contract.right))
                row = values[i] if i is not None else None
                if row is None or not np.isfinite(row).all():
                    out["legs_without_greeks"] += 1
                    continue
                scale = int(qty) * contract.multiplier
                for g, v in zip(GREEK_COLUMNS, row, strict=True):
                    out[g] += scale * float(v)
        return out

    def with_implied_vols(
        self, expiration: dt.date | None = None, root: str | None = None
    ) -> pd.DataFrame:
        """Quotes (optionally of one expiry/root) plus forwards, implied vols and greeks.

        Added columns:

        ==================  ===================================================================
        forward             put-call-parity forward of the row's (root, expiry), see
                            :meth:`forward` (NaN where no strike has two-sided call and put)
        tte                 ACT/365 years to settlement (:meth:`tte`)
        dte                 calendar days from the quote date to the expiration
        log_moneyness       ``ln(strike / forward)``
        implied_vol         Black-76 implied vol of the mid (decimal, annualised on ACT/365);
                            NaN where ``iv_status != 0``
        iv_status           :func:`pricing.implied_vol` reason code (0 ok, 1 mid at/below the
                            discounted intrinsic, 2 at/above the upper bound, 3 bad input --
                            ``tte == 0`` or no forward --, 4 no convergence)
        delta               ``∂V/∂(F e^{-r tte})``: ``N(d1)`` for calls, ``N(d1) - 1`` for puts
                            (Black-76 forward delta, undiscounted)
        gamma               ``N'(d1) / (F e^{-r tte} vol sqrt(tte))`` per index point
        vega                ``F e^{-r tte} N'(d1) sqrt(tte)`` per 1.00 of decimal vol
        theta               per year of calendar time, discounted forward held fixed
        two_sided           ``bid > 0`` (and ``ask >= bid``): the mid is a price
        ==================  ===================================================================

        Parameters
        ----------
        expiration : datetime.date, optional
            Only this expiry.
        root : str, optional
            Only this root.

        Returns
        -------
        pandas.DataFrame
            A copy (the cached table is not exposed), rows in the order of :attr:`quotes`.

        Raises
        ------
        KeyError
            Nothing quoted for the requested root/expiry.

        Notes
        -----
        Model: Black (1976) on the forward, evaluated with the Black-Scholes-Merton kernels of
        :mod:`pricing.black_scholes` (:func:`pricing.implied_vol`, Jäckel 2015, and
        :func:`pricing.bs_greeks`) by passing ``spot = F e^{-r tte}`` and ``div_yield = 0``, so
        that the model forward is the parity forward and the discount is ``e^{-r tte}``. The
        greeks are therefore with respect to the discounted forward; multiply delta by
        ``F e^{-r tte} / S`` for the sensitivity to the index level ``S`` (a factor within
        0.5 % of 1 up to a year out). Mids of one-sided quotes (``bid == 0``) still get an
        implied vol; the strike-selecting queries use only ``two_sided`` rows. SPY options are
        American: their Black-76 vols ignore early exercise (biased up for deep in-the-money
        puts); near the money the difference is small.

        0DTE: ``tte`` is to the minute (15 minutes = 2.9e-5 years) and the solver handles it;
        after the settlement time ``tte == 0`` and the implied vol and greeks are NaN
        (``iv_status`` 3), so a straddle with ``tte == 0`` has no implied vol.

        The whole snapshot is computed once (vectorised, a few milliseconds for 14,000 quotes)
        and cached on the snapshot; a snapshot is treated as immutable after construction.
        """
        table = self._analytics()
        if expiration is None and root is None:
            return table.copy()
        groups = self._groups()
        exp = None if expiration is None else _as_date(expiration)
        if exp is not None and root is not None:
            return table.iloc[self._rows(exp, root)].copy()
        keys = [
            key
            for key in groups
            if (root is None or key[0] == root) and (exp is None or key[1] == exp)
        ]
        if not keys:
            raise QuoteUnavailable(
                "no_quotes",
                f"no quotes in the {self._where(exp, root)} (roots quoted: {self.roots()}, "
                f"expiries: {[f'{e:%Y-%m-%d}' for e in self.expiries()]})",
            )
        rows = np.sort(np.concatenate([groups[key] for key in keys]))
        return table.iloc[rows].copy()

    def _side(self, expiration: dt.date, root: str, right: str) -> pd.DataFrame:
        """Rows of one right of one expiry with valid implied vol and delta, two-sided,
        ascending strike (a view of the cache: do not modify)."""
        if right not in ("C", "P"):
            raise ValueError(f"right must be 'C' or 'P', got {right!r}")
        table = self._analytics()
        side = table.iloc[self._rows(expiration, root)]
        side = side[
            (side["right"] == right)
            & side["two_sided"]
            & np.isfinite(side["implied_vol"])
            & np.isfinite(side["delta"])
        ]
        return side.sort_values("strike", kind="stable")

    def strike_by_delta(self, expiration: dt.date, root: str, right: str, delta: float) -> float:
        """Listed strike whose model delta is nearest ``delta`` (calls > 0, puts < 0).

        Parameters
        ----------
        expiration : datetime.date
            Expiration date.
        root : str
            Option root.
        right : {'C', 'P'}
            Call or put.
        delta : float
            Target Black-76 forward delta (see :meth:`with_implied_vols`): in ``(0, 1)`` for
            calls, ``(-1, 0)`` for puts (``-0.25`` for the 25-delta put).

        Returns
        -------
        float
            The strike (only two-sided quotes with a valid implied vol are candidates; ties go
            to the lower strike).

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        ValueError
            Bad ``right`` or ``delta`` (wrong sign for the right), or no candidate strike.
        """
        expiration = _as_date(expiration)
        lo, hi = (0.0, 1.0) if right == "C" else (-1.0, 0.0)
        if right in ("C", "P") and not (lo < delta < hi):
            raise ValueError(
                f"delta for right {right!r} must be in ({lo:g}, {hi:g}), got {delta!r} "
                "(puts have negative delta: -0.25 for the 25-delta put)"
            )
        side = self._side(expiration, root, right)
        if side.empty:
            raise QuoteUnavailable(
                "no_delta_strike",
                f"no two-sided {right} quote with an implied vol in the "
                f"{self._where(expiration, root)}",
            )
        dist = np.abs(side["delta"].to_numpy() - delta)
        return float(side["strike"].iat[int(np.argmin(dist))])

    def atm_iv(self, expiration: dt.date, root: str) -> float:
        """At-the-money implied vol: mean of the call and put implied vols at
        :meth:`atm_strike`.

        Returns
        -------
        float
            Decimal vol, annualised on ACT/365 (see :meth:`with_implied_vols`).

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        ValueError
            No forward, or the call or put at the ATM strike has no implied vol (the message
            gives the :data:`pricing.IV_STATUS_DESCRIPTIONS` reason; for instance
            ``tte == 0`` after settlement).

        Notes
        -----
        The parity forward is taken at the strikes nearest the money, so the call and put vols
        at the ATM strike agree closely (differences are the width of the quotes); their mean
        is the straddle's vol to first order. The ATM strike moves in steps of the strike
        spacing (5 points for SPX), so the series carries the skew times half a spacing of
        jitter (about 0.1-0.2 vol point at 30 days).
        """
        expiration = _as_date(expiration)
        strike = self.atm_strike(expiration, root)
        table = self._analytics()
        rows = self._rows(expiration, root)
        at = table.iloc[rows]
        at = at[at["strike"] == strike]
        vols = {}
        for right in ("C", "P"):
            leg = at[at["right"] == right]
            iv = float(leg["implied_vol"].iat[0])
            if not math.isfinite(iv):
                reason = IV_STATUS_DESCRIPTIONS.get(int(leg["iv_status"].iat[0]), "unknown")
                raise QuoteUnavailable(
                    "no_atm_iv",
                    f"no ATM implied vol in the {self._where(expiration, root)}: the "
                    f"{strike:g}{right} mid {float(leg['mid'].iat[0]):g} has none ({reason})",
                )
            vols[right] = iv
        return 0.5 * (vols["C"] + vols["P"])

    def iv_at_delta(self, expiration: dt.date, root: str, right: str, delta: float) -> float:
        """Implied vol at a Black-76 forward ``delta``, linear in delta between the two
        out-of-the-money listed strikes that bracket it (scanning outward from the forward).

        Parameters
        ----------
        expiration : datetime.date
            Expiry.
        root : str
            Option root.
        right : {'C', 'P'}
            Calls (``delta`` in (0, 1)) scan strikes at or above the forward upward; puts
            (``delta`` in (-1, 0)) scan strikes at or below the forward downward.
        delta : float
            Target forward delta.

        Returns
        -------
        float
            Decimal implied vol, from two-sided quotes with a valid implied vol and delta
            (:meth:`with_implied_vols`).

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        ValueError
            Bad ``right``/``delta``, no forward, or ``delta`` not bracketed by listed strikes.
        """
        lo, hi = (0.0, 1.0) if right == "C" else (-1.0, 0.0)
        if right not in ("C", "P") or not (lo < delta < hi):
            raise ValueError(
                f"need right 'C' with delta in (0, 1) or 'P' in (-1, 0), got {right!r}, {delta!r}"
            )
        expiration = _as_date(expiration)
        fwd = self.forward(expiration, root)
        side = self._side(expiration, root, right)
        if right == "C":
            side = side[side["strike"] >= fwd]
        else:
            side = side[side["strike"] <= fwd].iloc[::-1]  # outward = descending strike
        d = side["delta"].to_numpy()
        v = side["implied_vol"].to_numpy()
        for i in range(len(d) - 1):
            if (d[i] - delta) * (d[i + 1] - delta) <= 0.0:
                if d[i] == d[i + 1]:
                    return float(v[i])
                w = (delta - d[i]) / (d[i + 1] - d[i])
                return float(v[i] + w * (v[i + 1] - v[i]))
        span = f"[{d.min():.3f}, {d.max():.3f}]" if d.size else "none"
        raise QuoteUnavailable(
            "delta_not_bracketed",
            f"delta {delta:g} is not bracketed by two-sided out-of-the-money {right} quotes in "
            f"the {self._where(expiration, root)} (their deltas span {span})",
        )

    def risk_reversal_25d(self, expiration: dt.date, root: str) -> float:
        """25-delta risk reversal ``IV(25-delta call) - IV(25-delta put)`` (decimal vol).

        Each implied vol is interpolated linearly in delta between the two listed
        out-of-the-money strikes (two-sided, valid implied vol) whose Black-76 forward deltas
        bracket ``+0.25`` (calls) and ``-0.25`` (puts). Interpolating rather than taking the
        nearest strike removes the jitter of the strike grid from a daily series.

        Returns
        -------
        float
            Decimal vol; negative for the usual equity-index put skew.

        Raises
        ------
        KeyError
            Nothing quoted for that root and expiry.
        ValueError
            No forward, or a 25-delta point not bracketed by listed strikes.
        """
        expiration = _as_date(expiration)
        return self.iv_at_delta(expiration, root, "C", 0.25) - self.iv_at_delta(
            expiration, root, "P", -0.25
        )

    def combo(self, name: str, legs: list[tuple[OptionContract, int]]) -> Combo:
        """Quote an arbitrary combo of quoted legs (see :class:`Combo` for the crossing rule).

        Parameters
        ----------
        name : str
            Label of the combo (``custom`` for a hand-made one).
        legs : list of (OptionContract, int)
            Contracts and signed non-zero integer ratios per combo unit.

        Returns
        -------
        Combo
            ``bid = sum_{q>0} q bid_i - sum_{q<0} |q| ask_i``,
            ``ask = sum_{q>0} q ask_i - sum_{q<0} |q| bid_i``, ``mid = sum q mid_i`` (per unit,
            index points / dollars; negative is a credit).

        Raises
        ------
        KeyError
            A leg is not quoted (names it and the snapshot time).
        ValueError
            No legs, a ratio that is not a non-zero integer, or a crossed leg quote.
        """
        if not legs:
            raise ValueError(f"combo {name!r} has no legs")
        bid = ask = mid = 0.0
        for contract, ratio in legs:
            if isinstance(ratio, bool) or not isinstance(ratio, int | np.integer) or ratio == 0:
                raise ValueError(
                    f"combo {name!r}: ratio of {contract} must be a non-zero integer, got {ratio!r}"
                )
            quote = self.quote(contract)
            if ratio > 0:
                bid += ratio * quote.bid
                ask += ratio * quote.ask
            else:
                bid += ratio * quote.ask
                ask += ratio * quote.bid
            mid += ratio * self.mid(contract)
        return Combo(name, tuple((c, int(r)) for c, r in legs), float(bid), float(ask), float(mid))

    def straddle(self, expiration: dt.date, root: str, strike: float | None = None) -> Combo:
        """Long straddle (call + put, same strike; :meth:`atm_strike` by default).

        Raises
        ------
        KeyError
            A leg is not quoted.
        ValueError
            No ATM strike (see :meth:`atm_strike`).
        """
        expiration = _as_date(expiration)
        k = self.atm_strike(expiration, root) if strike is None else float(strike)
        return self.combo(
            "straddle",
            [
                (self.contract(root, expiration, k, "C"), 1),
                (self.contract(root, expiration, k, "P"), 1),
            ],
        )

    def strangle(
        self,
        expiration: dt.date,
        root: str,
        call_strike: float | None = None,
        put_strike: float | None = None,
        delta: float = 0.25,
    ) -> Combo:
        """Long strangle (OTM call + OTM put; strikes by |delta| when not given).

        Parameters
        ----------
        expiration, root
            The expiry.
        call_strike, put_strike : float, optional
            Strikes; default :meth:`strike_by_delta` at ``+delta`` (call) and ``-delta`` (put).
        delta : float
            Absolute delta of the default strikes, in ``(0, 0.5]``.

        Raises
        ------
        KeyError
            A leg is not quoted.
        ValueError
            ``delta`` out of range, or ``put_strike > call_strike`` given.
        QuoteUnavailable
            ``delta_not_bracketed``: the put strike at ``-delta`` is above the call strike at
            ``+delta`` (a sparse ladder).
        """
        expiration = _as_date(expiration)
        if not 0.0 < delta <= 0.5:
            raise ValueError(f"strangle delta must be in (0, 0.5], got {delta!r}")
        kc = (
            self.strike_by_delta(expiration, root, "C", delta)
            if call_strike is None
            else float(call_strike)
        )
        kp = (
            self.strike_by_delta(expiration, root, "P", -delta)
            if put_strike is None
            else float(put_strike)
        )
        if kp > kc:
            message = (
                f"strangle put strike {kp:g} is above the call strike {kc:g} "
                f"in the {self._where(expiration, root)}"
            )
            if call_strike is None and put_strike is None:  # the delta strikes cross: data
                raise QuoteUnavailable("delta_not_bracketed", message)
            raise ValueError(message)
        return self.combo(
            "strangle",
            [
                (self.contract(root, expiration, kc, "C"), 1),
                (self.contract(root, expiration, kp, "P"), 1),
            ],
        )

    def vertical(
        self, expiration: dt.date, root: str, right: str, long_strike: float, short_strike: float
    ) -> Combo:
        """Vertical spread: long ``long_strike``, short ``short_strike``, same right and expiry.

        Raises
        ------
        KeyError
            A leg is not quoted.
        ValueError
            Bad ``right`` or equal strikes.
        """
        expiration = _as_date(expiration)
        if right not in ("C", "P"):
            raise ValueError(f"right must be 'C' or 'P', got {right!r}")
        if float(long_strike) == float(short_strike):
            raise ValueError(f"vertical needs two different strikes, got {long_strike:g} twice")
        return self.combo(
            "vertical",
            [
                (self.contract(root, expiration, long_strike, right), 1),
                (self.contract(root, expiration, short_strike, right), -1),
            ],
        )

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
        call, long ``call_long`` call (``put_long < put_short <= call_short < call_long``).

        The legs carry the position's signs, so ``bid``, ``ask`` and ``mid`` are negative:
        opening the condor (buying one unit of this combo) "pays" ``ask < 0``, i.e. collects
        the credit ``|ask|``; closing it receives ``bid < 0``, i.e. pays ``|bid|``.

        Raises
        ------
        KeyError
            A leg is not quoted.
        ValueError
            Strikes not in the order above.
        """
        expiration = _as_date(expiration)
        if not (put_long < put_short <= call_short < call_long):
            raise ValueError(
                "iron condor strikes must satisfy put_long < put_short <= call_short < "
                f"call_long, got {put_long:g}, {put_short:g}, {call_short:g}, {call_long:g}"
            )
        return self.combo(
            "iron_condor",
            [
                (self.contract(root, expiration, put_long, "P"), 1),
                (self.contract(root, expiration, put_short, "P"), -1),
                (self.contract(root, expiration, call_short, "C"), -1),
                (self.contract(root, expiration, call_long, "C"), 1),
            ],
        )

    def calendar(
        self,
        near_expiration: dt.date,
        far_expiration: dt.date,
        strike: float,
        right: str,
        near_root: str,
        far_root: str | None = None,
    ) -> Combo:
        """Long calendar: short the near expiry, long the far expiry, same strike and right.

        Parameters
        ----------
        near_expiration, far_expiration : datetime.date
            ``near_expiration < far_expiration``.
        strike : float
            Common strike.
        right : {'C', 'P'}
            Common right.
        near_root : str
            Root of the near leg.
        far_root : str, optional
            Root of the far leg (default ``near_root``).

        Raises
        ------
        KeyError
            A leg is not quoted.
        ValueError
            Bad ``right`` or the near expiry not before the far one.
        """
        near = _as_date(near_expiration)
        far = _as_date(far_expiration)
        if right not in ("C", "P"):
            raise ValueError(f"right must be 'C' or 'P', got {right!r}")
        if not near < far:
            raise ValueError(
                f"calendar near expiry {near:%Y-%m-%d} must be before the far expiry {far:%Y-%m-%d}"
            )
        return self.combo(
            "calendar",
            [
                (self.contract(near_root, near, strike, right), -1),
                (self.contract(far_root or near_root, far, strike, right), 1),
            ],
        )


def _as_date(value: dt.date | pd.Timestamp | str) -> dt.date:
    """A plain ``datetime.date`` from a date, datetime, Timestamp or ISO string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


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


def quotes_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A quotes table from venue rows: one dict per contract with the :data:`QUOTE_COLUMNS`
    keys, sorted by root, expiration, strike, right, with the columns' dtypes (an empty list
    gives :func:`empty_quotes`).

    Raises
    ------
    KeyError
        A row lacks one of the :data:`QUOTE_COLUMNS`.
    """
    if not rows:
        return empty_quotes()
    quotes = pd.DataFrame([{c: row[c] for c in QUOTE_COLUMNS} for row in rows])
    quotes = quotes.sort_values(["root", "expiration", "strike", "right"]).reset_index(drop=True)
    quotes["expiration"] = pd.to_datetime(quotes["expiration"]).astype("datetime64[ns]")
    quotes["is_liquid"] = quotes["is_liquid"].astype(bool)
    for col in ("strike", *QUOTE_COLUMNS[4:-1]):
        quotes[col] = quotes[col].astype(np.float64)
    return quotes


__all__ = [
    "ATM_MAX_DISTANCE",
    "PARITY_STRIKES",
    "QUOTE_COLUMNS",
    "QUOTE_UNAVAILABLE_REASONS",
    "ChainSnapshot",
    "Combo",
    "QuoteUnavailable",
    "empty_quotes",
    "quotes_frame",
    "settlement_time",
]
