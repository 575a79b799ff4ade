"""Recorded chain snapshots and the backtrader feed over them (one bar per snapshot).

:func:`replay_schedule` lists the recorded snapshot times of an underlying in a chain store (one a
day for the 2019 vendor chains, one a minute for the Lean minute quotes); :class:`RecordedSnapshots`
reads them one after the other and :class:`ListedSnapshots` serves an explicit list;
:class:`ChainSnapshotFeed` turns either (or, live, a callable returning the next snapshot) into a
backtrader feed with the lines of :class:`data_feeds.chain_feed.ChainFeed` and ``snapshot()``.

The same sources drive a backtest (through this feed) and the replay venue
(:class:`brokers.live.replay.ReplayVenue`), which live in ``brokers/live`` only as the venue;
a backtest strategy imports them from here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import backtrader as bt
import pandas as pd

from data_feeds.calendar import TZ
from data_feeds.chain_feed import CHAIN_FEED_LINES, snapshot_features
from data_feeds.chains import ChainSnapshot
from data_feeds.errors import DataSourceError

__all__ = [
    "ChainSnapshotFeed",
    "ListedSnapshots",
    "RecordedSnapshots",
    "et_timestamp",
    "replay_schedule",
]


def et_timestamp(value: Any) -> pd.Timestamp:
    """``value`` as a tz-aware America/New_York timestamp (naive input is taken as ET wall clock).

    Raises
    ------
    ValueError
        ``value`` is not a timestamp pandas can parse.
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize(TZ) if ts.tzinfo is None else ts.tz_convert(TZ)


def replay_schedule(
    source: Any,
    underlying: str,
    *,
    roots: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
) -> list[pd.Timestamp]:
    """Every recorded snapshot time of ``underlying`` between ``start`` and ``end``, ascending.

    Parameters
    ----------
    source : ChainStore or SnapshotSource
        Needs ``quote_dates(underlying, roots)``; ``quote_times(underlying, date)`` when it has
        several snapshots a day (:class:`data_feeds.chain_store.ChainStore`), else one snapshot per
        date at the source's default time is assumed (its time is read from the snapshot).
    underlying : str
        ``SPX``, ``SPY``.
    roots : sequence of str, optional
        Only dates with quotes of these roots.
    start, end : date-like or timestamp, optional
        Inclusive bounds. A date (or a midnight timestamp) as ``end`` means the whole day; a
        timestamp with a time bounds to that time (naive = America/New_York).

    Returns
    -------
    list of pandas.Timestamp
        Tz-aware ET.

    Raises
    ------
    DataSourceError
        No snapshot in the window.
    """
    lo = None if start is None else et_timestamp(start)
    hi = None if end is None else et_timestamp(end)
    if hi is not None and hi == hi.normalize():
        hi = hi + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    out: list[pd.Timestamp] = []
    for day in source.quote_dates(underlying, roots):
        if lo is not None and day < lo.date():
            continue
        if hi is not None and day > hi.date():
            continue
        if hasattr(source, "quote_times"):
            times = list(source.quote_times(underlying, day))
        else:
            times = [source.snapshot(underlying, day, roots=roots).quote_time]
        out.extend(t for t in times if (lo is None or t >= lo) and (hi is None or t <= hi))
    if not out:
        raise DataSourceError(
            f"no {underlying} snapshot between {lo or 'the start'} and {hi or 'the end'} "
            f"(roots {list(roots) if roots else 'all'})"
        )
    return sorted(out)


def _with_price(snap: ChainSnapshot, bars: pd.DataFrame | None) -> ChainSnapshot:
    """``snap`` with the underlying price of the last bar closed at or before its time (when the
    snapshot has none and bars are given)."""
    if bars is None or math.isfinite(snap.underlying_price):
        return snap
    pos = bars.index.searchsorted(snap.quote_time, side="right") - 1
    if pos < 0 or bars.index[pos].date() != snap.quote_date:
        return snap
    return ChainSnapshot(
        snap.underlying,
        snap.quote_time,
        float(bars["close"].iloc[pos]),
        snap.quotes,
        rate=snap.rate,
        source=snap.source,
    )


class RecordedSnapshots:
    """The snapshots of a replay schedule, one after the other: the historical (backtest) side of a
    replay, for :class:`ChainSnapshotFeed` with ``live=False``.

    Parameters
    ----------
    source, underlying, roots, start, end
        As :func:`replay_schedule`.
    rate : float
        Continuously compounded rate (decimal) put on the snapshots.
    underlying_bars : pandas.DataFrame, optional
        Minute bars stamped at the bar's **end** (:func:`data_feeds.minute_bars.load_minute_bars`
        with ``stamp="end"``) giving the underlying price where the snapshot has
        none (Lean minute quotes).
    cache : bool
        Keep every snapshot read (memory: the whole window); lets a backtest and a replay of the
        same window share one read of the store (default False: one store query per snapshot).
    """

    def __init__(
        self,
        source: Any,
        underlying: str,
        *,
        roots: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        rate: float = 0.0,
        underlying_bars: pd.DataFrame | None = None,
        cache: bool = False,
    ) -> None:
        self.source = source
        self.underlying = underlying
        self.roots = None if roots is None else list(roots)
        self.rate = rate
        self.bars = underlying_bars
        self.times = replay_schedule(source, underlying, roots=roots, start=start, end=end)
        self._cache: dict[pd.Timestamp, ChainSnapshot | None] | None = {} if cache else None

    def snapshot_at(self, when: pd.Timestamp) -> ChainSnapshot | None:
        """The snapshot recorded at exactly ``when`` (None when those roots have none then)."""
        when = et_timestamp(when)
        if self._cache is not None and when in self._cache:
            return self._cache[when]
        snap: ChainSnapshot | None = self.source.snapshot(
            self.underlying, when.date(), when.time(), self.roots, False, self.rate
        )
        snap = None if snap is None or snap.quote_time != when else _with_price(snap, self.bars)
        if self._cache is not None:
            self._cache[when] = snap
        return snap

    def __iter__(self) -> Iterator[ChainSnapshot]:
        for when in self.times:
            snap = self.snapshot_at(when)
            if snap is not None:
                yield snap


class ListedSnapshots:
    """Recorded snapshots given explicitly: a schedule of times and a loader, the same face as
    :class:`RecordedSnapshots` (``times``, ``snapshot_at``, iteration), for
    :class:`brokers.live.replay.ReplayVenue` ``recorded=``.

    The paper runner replays exactly the snapshots a backtest's chain feed holds (one a day at
    the feed's quote time for :func:`data_feeds.chain_feed.chain_feed`, the strategy's own list
    for a :class:`ChainSnapshotFeed`), so the venue and the backtest see the same
    quotes at the same times.

    Parameters
    ----------
    times : sequence of timestamp
        Snapshot times, strictly increasing (naive = America/New_York).
    load : callable
        ``load(time) -> ChainSnapshot | None``: the snapshot recorded at that time.
    underlying : str
        Underlying symbol of the snapshots (informative).

    Raises
    ------
    ValueError
        Times not strictly increasing, or none.
    """

    def __init__(
        self,
        times: Sequence[Any],
        load: Callable[[pd.Timestamp], ChainSnapshot | None],
        underlying: str = "",
    ) -> None:
        self.underlying = underlying
        self.times = [et_timestamp(t) for t in times]
        if not self.times:
            raise ValueError("ListedSnapshots needs at least one snapshot time")
        bad = [b for a, b in zip(self.times, self.times[1:], strict=False) if b <= a]
        if bad:
            raise ValueError(f"snapshot times must increase: {bad[0]} is not after its predecessor")
        self._load = load

    @classmethod
    def of(cls, snapshots: Sequence[ChainSnapshot]) -> ListedSnapshots:
        """The snapshots of a list (e.g. a :class:`ChainSnapshotFeed`'s)."""
        by_time = {s.quote_time: s for s in snapshots}
        if len(by_time) != len(snapshots):
            raise ValueError("two snapshots share a quote time")
        underlying = snapshots[0].underlying if snapshots else ""
        return cls(sorted(by_time), lambda t: by_time.get(t), underlying)

    def snapshot_at(self, when: pd.Timestamp) -> ChainSnapshot | None:
        """The snapshot recorded at exactly ``when`` (None when there is none)."""
        return self._load(et_timestamp(when))

    def __iter__(self) -> Iterator[ChainSnapshot]:
        for when in self.times:
            snap = self.snapshot_at(when)
            if snap is not None:
                yield snap


def _naive(ts: pd.Timestamp) -> dt.datetime:
    return ts.tz_convert(TZ).tz_localize(None).to_pydatetime()


class ChainSnapshotFeed(bt.feed.DataBase):
    """backtrader feed with one bar per chain snapshot from a snapshot iterator.

    Live (``live=True``, from :meth:`brokers.live.store.LiveStore.getdata`): each bar asks the
    store for the next venue tick. Historical (``live=False``, e.g. over
    :class:`RecordedSnapshots`): the iterator's snapshots, preloaded like any
    backtest feed; this is how an intraday recorded day runs through the backtest broker.

    Lines: ``open/high/low/close`` the underlying price at the snapshot (NaN if none), ``volume`` 0
    and :data:`data_feeds.chain_feed.CHAIN_FEED_LINES` from
    :func:`data_feeds.chain_feed.snapshot_features` (the snapshot alone: no look-ahead). Bar
    datetime: the snapshot time, naive America/New_York wall clock.

    Parameters (backtrader ``params``)
    ----------------------------------
    snapshots : iterable of ChainSnapshot or callable
        Historical: an iterable (re-iterated by ``start``); live: a callable returning the next
        snapshot or None at the end.
    live : bool
        Report ``islive()`` (cerebro then runs bar by bar without preloading).
    target_dte, far_dte, feature_root
        As :func:`data_feeds.chain_feed.snapshot_features`.
    features : bool
        Compute the feature lines (default True); False leaves them NaN (a strategy that reads only
        ``snapshot()`` saves the per-bar implied-vol work).
    """

    lines = CHAIN_FEED_LINES
    params = (
        ("snapshots", None),
        ("live", False),
        ("target_dte", 30.0),
        ("far_dte", 60.0),
        ("feature_root", None),
        ("features", True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._cache: OrderedDict[float, ChainSnapshot] = OrderedDict()
        self._iter: Iterator[ChainSnapshot] | None = None
        self.report: list[tuple[dt.datetime, dict[str, str]]] = []

    def islive(self) -> bool:
        """True for the live face (no preload, bar by bar)."""
        return bool(self.p.live)

    def start(self) -> None:
        super().start()
        self._cache.clear()
        source = self.p.snapshots
        if not callable(source):
            self._iter = iter(source)

    def _next_snapshot(self) -> ChainSnapshot | None:
        if self._iter is not None:
            return next(self._iter, None)
        return self.p.snapshots()

    def _load(self) -> bool:
        snap = self._next_snapshot()
        if snap is None:
            return False
        when = _naive(snap.quote_time)
        stamp = bt.date2num(when)
        if len(self) > 1 and stamp <= self.lines.datetime[-1]:
            raise RuntimeError(
                f"snapshot times must increase: {snap.quote_time} after "
                f"{bt.num2date(self.lines.datetime[-1])}"
            )
        if self.p.features:
            values, errors = snapshot_features(
                snap,
                target_dte=self.p.target_dte,
                far_dte=self.p.far_dte,
                root=self.p.feature_root,
            )
        else:
            values, errors = dict.fromkeys(CHAIN_FEED_LINES, math.nan), {}
        if errors:
            self.report.append((when, errors))
        price = float(snap.underlying_price)
        self.lines.datetime[0] = stamp
        for name in ("open", "high", "low", "close"):
            getattr(self.lines, name)[0] = price
        self.lines.volume[0] = 0.0
        self.lines.openinterest[0] = 0.0
        for name in CHAIN_FEED_LINES:
            getattr(self.lines, name)[0] = values[name]
        self._cache[stamp] = snap
        keep = 4 if self.p.live else 1_000_000
        while len(self._cache) > keep:
            self._cache.popitem(last=False)
        return True

    def next_time(self) -> pd.Timestamp | None:
        """Live face: when the venue's next snapshot is due
        (:meth:`brokers.live.store.LiveStore.next_time`), so that a strategy can tell the
        session's last bar (``OptionStrategy._last_bar_of_session``); None when unknown or at
        the end. The historical face returns None (backtrader knows its preloaded bars)."""
        store = getattr(self, "_store", None)
        if not self.p.live or store is None:
            return None
        return store.next_time()

    def snapshot(self) -> ChainSnapshot:
        """The :class:`ChainSnapshot` of the current bar.

        Raises
        ------
        RuntimeError
            No current bar.
        """
        if len(self) == 0:
            raise RuntimeError("the snapshot feed has no current bar yet")
        snap = self._cache.get(self.lines.datetime[0])
        if snap is None:
            raise RuntimeError(
                f"no snapshot cached for the bar at {bt.num2date(self.lines.datetime[0])}"
            )
        return snap
