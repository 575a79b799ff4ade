"""The chain feed: one backtrader bar per option-chain snapshot, with chain features as lines.

Options are not backtrader data feeds (a chain has thousands of contracts). The chain feed is the
one feed that carries a chain: each bar is one :class:`~data_feeds.chains.ChainSnapshot`, its
price lines are the underlying at the snapshot, its extra lines are features of the chain computed
once per snapshot before the run, and :meth:`ChainFeed.snapshot` hands the strategy (or the
options broker) the full snapshot of the current bar.

Snapshots come from any object satisfying :class:`SnapshotSource` (the DuckDB ``ChainStore``
does; tests use a small in-memory source).

Lines (all computed from the snapshot alone, so there is no look-ahead):

==================  ===========================================================================
open/high/low/close the underlying price at the snapshot (one print: the four are equal; NaN if
                    the source has none)
atm_iv              :meth:`ChainSnapshot.atm_iv` of the expiry nearest ``target_dte`` (decimal)
atm_straddle_mid    mid of the ATM straddle of that expiry (index points / dollars per unit)
risk_reversal_25d   :meth:`ChainSnapshot.risk_reversal_25d` of that expiry (decimal vol)
atm_term_slope      ATM IV of the expiry nearest ``far_dte`` minus ATM IV of the expiry nearest
                    ``target_dte`` (decimal vol, far minus near; NaN when both are the same
                    expiry)
dte_atm             calendar days to the expiry nearest ``target_dte``
==================  ===========================================================================

A feature that a snapshot cannot answer (no two-sided quotes, 25 delta not bracketed, ...) is
NaN on that bar and listed with the reason in :class:`ChainFeatureReport`; nothing is filled.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import backtrader as bt
import numpy as np
import pandas as pd

from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot

CHAIN_FEED_LINES: tuple[str, ...] = (
    "atm_iv",
    "atm_straddle_mid",
    "risk_reversal_25d",
    "atm_term_slope",
    "dte_atm",
)
"""Extra lines of :class:`ChainFeed` (see the module docstring for their definitions)."""


@runtime_checkable
class SnapshotSource(Protocol):
    """What the chain feed needs from a store of chain snapshots.

    ``quote_dates`` lists the sessions with a snapshot (ascending); ``snapshot`` returns the
    snapshot of one session at ``quote_time`` (the source's default time when ``None``),
    restricted to ``roots`` and, with ``liquid_only``, to rows flagged ``is_liquid``; ``rate``
    is stored on the snapshot for forwards and implied vols.
    """

    def quote_dates(
        self, underlying: str, roots: Sequence[str] | None = None
    ) -> list[dt.date]: ...  # pragma: no cover

    def snapshot(
        self,
        underlying: str,
        quote_date: dt.date,
        quote_time: dt.time | None = None,
        roots: Sequence[str] | None = None,
        liquid_only: bool = False,
        rate: float = 0.0,
    ) -> ChainSnapshot: ...  # pragma: no cover


class SnapshotCache:
    """A :class:`SnapshotSource` that keeps every snapshot it served
    (56 snapshots of the 2019 chains are a few tens of MB; re-reading and re-computing implied
    vols for every Optuna trial would dominate the run).

    Parameters
    ----------
    source : SnapshotSource
        A :class:`data_feeds.chain_store.ChainStore` or any snapshot source.
    """

    def __init__(self, source: SnapshotSource) -> None:
        self.source = source
        self._cache: dict[tuple[object, ...], ChainSnapshot] = {}
        #: :func:`chain_features` rows of the snapshots served (every trial's chain feed asks
        #: for the same features: computed once per snapshot and feature arguments)
        self.feature_memo: dict[tuple[object, ...], tuple[object, ...]] = {}

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        """Quote dates of the source (ascending)."""
        return self.source.quote_dates(underlying, roots)

    def snapshot(
        self,
        underlying: str,
        quote_date: dt.date,
        quote_time: dt.time | None = None,
        roots: Sequence[str] | None = None,
        liquid_only: bool = False,
        rate: float = 0.0,
    ) -> ChainSnapshot:
        """The source's snapshot, read once per argument set."""
        key = (underlying, quote_date, quote_time, tuple(roots or ()), liquid_only, rate)
        snap = self._cache.get(key)
        if snap is None:
            snap = self.source.snapshot(
                underlying, quote_date, quote_time, roots, liquid_only, rate
            )
            self._cache[key] = snap
        return snap


@dataclass
class ChainFeatureReport:
    """What :func:`chain_features` computed and what it could not.

    Attributes
    ----------
    underlying : str
        Underlying symbol.
    n_snapshots : int
        Snapshots read (one bar each).
    missing : dict of str to list of (datetime.date, str)
        Per feature line, the sessions where it is NaN and why (the query's error message).
    """

    underlying: str
    n_snapshots: int = 0
    missing: dict[str, list[tuple[dt.date, str]]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: snapshots read and NaN counts per feature."""
        counts = ", ".join(f"{k}: {len(v)} NaN" for k, v in self.missing.items() if v)
        return f"{self.underlying}: {self.n_snapshots} snapshots" + (
            f"; {counts}" if counts else "; every feature present"
        )


def _pick_root(snapshot: ChainSnapshot, expiration: dt.date, root: str | None) -> str:
    """``root`` if given, else the first root (sorted) quoting ``expiration``."""
    if root is not None:
        return root
    for r in snapshot.roots():
        if expiration in snapshot.expiries(r):
            return r
    raise KeyError(f"no root quotes {expiration} in the {snapshot._where()}")  # pragma: no cover


def snapshot_features(
    snapshot: ChainSnapshot,
    *,
    target_dte: float = 30.0,
    far_dte: float = 60.0,
    root: str | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """The chain-feed features of one snapshot.

    Parameters
    ----------
    snapshot : ChainSnapshot
        The snapshot.
    target_dte : float
        Calendar days to the "near" expiry (the ATM features use the expiry nearest it).
    far_dte : float
        Calendar days to the "far" expiry of ``atm_term_slope``.
    root : str, optional
        Root whose expiries are used; by default every root's expiries are candidates and an
        expiry quoted by several roots (SPX and SPXW on a third Friday) uses the first root in
        alphabetical order (``SPX``, the AM-settled monthly).

    Returns
    -------
    values : dict of str to float
        One value per name of :data:`CHAIN_FEED_LINES` (NaN when not available).
    errors : dict of str to str
        For each NaN feature, the reason.

    Notes
    -----
    Each feature is computed from ``snapshot`` only; see the module docstring for definitions.
    """
    values = dict.fromkeys(CHAIN_FEED_LINES, math.nan)
    errors: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], float]) -> float:
        try:
            value = float(fn())
        except (KeyError, ValueError) as exc:
            errors[name] = str(exc).strip("'\"")
            return math.nan
        values[name] = value
        return value

    try:
        near = snapshot.nearest_expiry(target_dte, root)
        near_root = _pick_root(snapshot, near, root)
    except (KeyError, ValueError) as exc:
        for name in CHAIN_FEED_LINES:
            errors[name] = str(exc).strip("'\"")
        return values, errors
    values["dte_atm"] = float((near - snapshot.quote_date).days)
    near_iv = attempt("atm_iv", lambda: snapshot.atm_iv(near, near_root))
    attempt("atm_straddle_mid", lambda: snapshot.straddle(near, near_root).mid)
    attempt("risk_reversal_25d", lambda: snapshot.risk_reversal_25d(near, near_root))

    def slope() -> float:
        far = snapshot.nearest_expiry(far_dte, root)
        far_root = _pick_root(snapshot, far, root)
        if far == near and far_root == near_root:
            raise ValueError(
                f"the expiries nearest {target_dte:g} and {far_dte:g} DTE are the same "
                f"({far:%Y-%m-%d}) in the {snapshot._where()}"
            )
        if not math.isfinite(near_iv):
            raise ValueError(f"no near ATM implied vol: {errors.get('atm_iv', '')}")
        return snapshot.atm_iv(far, far_root) - near_iv

    attempt("atm_term_slope", slope)
    return values, errors


def _bar_time(snapshot: ChainSnapshot) -> pd.Timestamp:
    """Naive America/New_York wall-clock time of the snapshot (backtrader convention)."""
    return snapshot.quote_time.tz_convert(TZ).tz_localize(None)


def chain_features(
    source: SnapshotSource,
    underlying: str,
    roots: Sequence[str] | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    target_dte: float = 30.0,
    rate: float = 0.0,
    *,
    far_dte: float = 60.0,
    quote_time: dt.time | None = None,
    liquid_only: bool = False,
    feature_root: str | None = None,
) -> pd.DataFrame:
    """The bar table of :func:`chain_feed`: one row per snapshot with the feature lines.

    Parameters
    ----------
    source : SnapshotSource
        Where snapshots come from.
    underlying : str
        Underlying symbol (``SPX``).
    roots : sequence of str, optional
        Option roots to load (all of the source's by default).
    start, end : datetime.date or str, optional
        Inclusive session-date bounds.
    target_dte : float
        Calendar days to the expiry of the ATM features (nearest listed).
    rate : float
        Continuously compounded rate (decimal) passed to the source for forwards and vols.
    far_dte : float
        Calendar days to the far expiry of ``atm_term_slope``.
    quote_time : datetime.time, optional
        Snapshot time of day (ET); the source's default when omitted.
    liquid_only : bool
        Load only rows flagged ``is_liquid``.
    feature_root : str, optional
        Root whose expiries the features use (see :func:`snapshot_features`).

    Returns
    -------
    pandas.DataFrame
        Index ``datetime``: the snapshot's quote time as a naive America/New_York wall clock,
        increasing. Columns ``open, high, low, close`` (the underlying price at the snapshot, a
        single print), ``volume`` (0), ``quote_date`` (``datetime.date``) and
        :data:`CHAIN_FEED_LINES`. ``attrs["report"]`` is a :class:`ChainFeatureReport`.

    Raises
    ------
    ValueError
        No snapshot in ``[start, end]``, ``far_dte <= target_dte``, or snapshots not in
        increasing time.
    """
    if not far_dte > target_dte:
        raise ValueError(f"far_dte ({far_dte}) must be greater than target_dte ({target_dte})")
    lo = None if start is None else pd.Timestamp(start).date()
    hi = None if end is None else pd.Timestamp(end).date()
    dates = [
        d
        for d in source.quote_dates(underlying, roots)
        if (lo is None or d >= lo) and (hi is None or d <= hi)
    ]
    if not dates:
        raise ValueError(
            f"no {underlying} snapshot between {lo or 'the start'} and {hi or 'the end'} "
            f"(roots {list(roots) if roots else 'all'})"
        )
    report = ChainFeatureReport(underlying, missing={name: [] for name in CHAIN_FEED_LINES})
    rows: list[dict[str, object]] = []
    index: list[pd.Timestamp] = []
    memo = getattr(source, "feature_memo", None)  # SnapshotCache: computed once per snapshot
    for d in dates:
        key = (underlying, d, quote_time, tuple(roots or ()), liquid_only, rate, target_dte,
               far_dte, feature_root)  # fmt: skip
        hit = None if memo is None else memo.get(key)
        if hit is None:
            snap = source.snapshot(underlying, d, quote_time, roots, liquid_only, rate)
            values, errors = snapshot_features(
                snap, target_dte=target_dte, far_dte=far_dte, root=feature_root
            )
            hit = (values, errors, float(snap.underlying_price), _bar_time(snap))
            if memo is not None:
                memo[key] = hit
        values, errors, price, when = hit
        for name, reason in errors.items():
            report.missing[name].append((d, reason))
        rows.append(
            {
                "open": price,
                "high": price,
                "low": price,
                "close": price,
                "volume": 0.0,
                "quote_date": d,
                **values,
            }
        )
        index.append(when)
        report.n_snapshots += 1
    frame = pd.DataFrame(rows, index=pd.DatetimeIndex(index, name="datetime"))
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        raise ValueError(
            f"{underlying} snapshot times are not strictly increasing: "
            f"{[str(t) for t in frame.index]}"
        )
    frame.attrs["report"] = report
    return frame


class ChainFeed(bt.feeds.PandasData):
    """backtrader feed of chain snapshots; build it with :func:`chain_feed`.

    Bars are the rows of :func:`chain_features`; :meth:`snapshot` returns the current bar's
    :class:`ChainSnapshot`.
    """

    lines = CHAIN_FEED_LINES
    params = tuple((name, -1) for name in CHAIN_FEED_LINES)  # -1: column named like the line

    def _chain_setup(
        self,
        source: SnapshotSource,
        underlying: str,
        snapshot_args: dict[str, object],
        features: pd.DataFrame,
    ) -> None:
        self._chain_source = source
        self._chain_underlying = underlying
        self._chain_args = snapshot_args
        self.features = features
        self.report: ChainFeatureReport = features.attrs["report"]
        self._chain_dates = dict(zip(features.index.date, features["quote_date"], strict=True))
        self._chain_times = dict(zip(features["quote_date"], features.index, strict=True))
        self._chain_cache: tuple[dt.date, ChainSnapshot] | None = None

    def snapshot(self) -> ChainSnapshot:
        """The :class:`ChainSnapshot` of the current bar.

        Loaded from the source on first use in a bar and cached for that bar only (memory stays
        at one snapshot however long the run). Works in every backtrader mode (``preload``,
        ``runonce`` or neither): the bar is identified by the feed's current datetime.

        Returns
        -------
        ChainSnapshot

        Raises
        ------
        RuntimeError
            No current bar (called before the first ``next``), or the source returned a
            snapshot whose quote time differs from the bar's (the source changed under the
            run).
        """
        if len(self) == 0:
            raise RuntimeError("the chain feed has no current bar yet")
        bar_date = self.datetime.date(0)
        quote_date = self._chain_dates.get(bar_date)
        if quote_date is None:
            raise RuntimeError(f"the chain feed's bar of {bar_date} is not one of its snapshots")
        if self._chain_cache is not None and self._chain_cache[0] == quote_date:
            return self._chain_cache[1]
        args = self._chain_args
        snap = self._chain_source.snapshot(
            self._chain_underlying,
            quote_date,
            args["quote_time"],
            args["roots"],
            args["liquid_only"],
            args["rate"],
        )
        expected = self._chain_times[quote_date]
        if _bar_time(snap) != expected:
            raise RuntimeError(
                f"the source returned the {self._chain_underlying} snapshot of "
                f"{snap.quote_time} for the bar at {expected} (ET)"
            )
        self._chain_cache = (quote_date, snap)
        return snap


def chain_feed(
    source: SnapshotSource,
    underlying: str,
    roots: Sequence[str] | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    target_dte: float = 30.0,
    rate: float = 0.0,
    *,
    far_dte: float = 60.0,
    quote_time: dt.time | None = None,
    liquid_only: bool = False,
    feature_root: str | None = None,
    name: str | None = None,
) -> ChainFeed:
    """A backtrader feed with one bar per chain snapshot.

    Parameters
    ----------
    source, underlying, roots, start, end, target_dte, rate, far_dte, quote_time, liquid_only,
    feature_root
        As in :func:`chain_features`, which computes the bars (every snapshot is read once
        here, vectorised per snapshot; nothing is computed per bar in ``next``).
    name : str, optional
        backtrader data name.

    Returns
    -------
    ChainFeed
        ``timeframe=Days``; bar datetime = the quote time, naive America/New_York wall clock
        (e.g. 15:45), not midnight as for :func:`data_feeds.ohlc_feed`. Lines ``open .. close``
        (underlying at the snapshot), ``volume`` (0) and :data:`CHAIN_FEED_LINES`;
        ``feed.features`` is the bar table, ``feed.report`` its :class:`ChainFeatureReport`,
        ``feed.snapshot()`` the current bar's snapshot.

    Raises
    ------
    ValueError
        See :func:`chain_features`.
    """
    features = chain_features(
        source,
        underlying,
        roots,
        start,
        end,
        target_dte,
        rate,
        far_dte=far_dte,
        quote_time=quote_time,
        liquid_only=liquid_only,
        feature_root=feature_root,
    )
    bars = features.drop(columns="quote_date").astype(np.float64)
    feed = ChainFeed(dataname=bars, name=name, timeframe=bt.TimeFrame.Days, openinterest=None)
    feed._chain_setup(
        source,
        underlying,
        {
            "quote_time": quote_time,
            "roots": roots,
            "liquid_only": liquid_only,
            "rate": rate,
        },
        features,
    )
    return feed


__all__ = [
    "CHAIN_FEED_LINES",
    "ChainFeatureReport",
    "ChainFeed",
    "SnapshotSource",
    "chain_features",
    "chain_feed",
    "snapshot_features",
]
