"""The backtrader store of a live session: ``getdata`` for chain snapshots and bars of the
underlying, ``getbroker`` for the options-aware live broker, one venue behind both.

backtrader's live integrations (``IBStore``, ``OandaStore``) follow one pattern: a ``Store`` owns
the connection, hands out live data feeds (``islive() == True``: no preloading, bars as they come)
and a broker. :class:`LiveStore` does the same over a :class:`brokers.live.adapter.VenueAdapter`:

* :meth:`LiveStore.getdata` returns a :class:`data_feeds.ChainSnapshotFeed` whose bars are the
  venue's chain snapshots (the same lines and ``snapshot()`` method as
  :class:`data_feeds.chain_feed.ChainFeed`, so an :class:`strategies.OptionStrategy` cannot tell
  the difference), or with ``kind="bars"`` a :class:`LiveBarFeed` of the underlying's bars;
* :meth:`LiveStore.getbroker` returns a :class:`brokers.live.broker.LiveOptionsBroker`.

One feed drives the venue clock (the first one created): each of its bars is one ``venue.tick()``.
Before each tick the kill switch is checked; when it fires the broker cancels and flattens at the
current venue time and the feed ends the run, so stopping takes effect within one clock tick.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import backtrader as bt
import pandas as pd

from brokers.live.adapter import Bar, VenueAdapter
from brokers.live.audit import AuditLog
from brokers.live.broker import LiveOptionsBroker
from brokers.live.safety import KillSwitch, RetryPolicy, RiskLimits, new_session_id
from data_feeds.calendar import TZ
from data_feeds.snapshot_feed import ChainSnapshotFeed


def _naive(ts: pd.Timestamp) -> dt.datetime:
    return ts.tz_convert(TZ).tz_localize(None).to_pydatetime()


class LiveBarFeed(bt.feed.DataBase):
    """Live bars of the underlying from the venue (one per tick when a new bar has closed).

    Parameters (backtrader ``params``)
    ----------------------------------
    bars : callable
        Returns the latest :class:`brokers.live.adapter.Bar` after advancing the store's clock
        (None at the end, :data:`NO_DATA` when a following feed has no new bar at this tick).
    """

    params = (("bars", None),)

    def islive(self) -> bool:
        """Always live."""
        return True

    def _load(self) -> bool | None:
        bar = self.p.bars()
        if bar is None:
            return False
        if bar is NO_DATA:
            return None  # live: no bar at this tick
        assert isinstance(bar, Bar)
        self.lines.datetime[0] = bt.date2num(_naive(bar.time))
        self.lines.open[0] = bar.open
        self.lines.high[0] = bar.high
        self.lines.low[0] = bar.low
        self.lines.close[0] = bar.close
        self.lines.volume[0] = bar.volume
        self.lines.openinterest[0] = 0.0
        return True


class _PerInstance(bt.store.MetaSingleton):
    """backtrader's ``Store`` metaclass makes each store class a process-wide singleton; a session
    (and every test) needs its own store, so instances are created normally here."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return super(bt.store.MetaSingleton, cls).__call__(*args, **kwargs)


class LiveStore(bt.Store, metaclass=_PerInstance):
    """A live session's store: one venue, its feeds, its broker, the safety settings.

    Parameters
    ----------
    venue : VenueAdapter
        :class:`brokers.live.replay.ReplayVenue` or :class:`brokers.live.alpaca.AlpacaAdapter`.
    limits : RiskLimits, optional
        Pre-trade limits for the broker.
    kill_switch : KillSwitch or str or pathlib.Path, optional
        Kill-switch flag file.
    flatten_on_kill : bool
        The kill switch also closes every position.
    audit : AuditLog, optional
        Audit log (default: in memory).
    session : str, optional
        Session id (default :func:`brokers.live.safety.new_session_id`).
    retry : RetryPolicy, optional
        Backoff for transient venue errors.
    until : timestamp, optional
        Stop the feeds at this venue time (naive = America/New_York).
    on_tick : callable, optional
        Called with the venue time after each tick (the status display).

    Examples
    --------
    >>> store = LiveStore(ReplayVenue(chain_store, "SPX", roots=["SPXW"]))  # doctest: +SKIP
    >>> cerebro.adddata(store.getdata(roots=["SPXW"]))                      # doctest: +SKIP
    >>> cerebro.setbroker(store.getbroker(commission_per_contract=0.65))    # doctest: +SKIP
    """

    params = ()

    def __init__(
        self,
        venue: VenueAdapter,
        *,
        limits: RiskLimits | None = None,
        kill_switch: KillSwitch | str | Any | None = None,
        flatten_on_kill: bool = True,
        audit: AuditLog | None = None,
        session: str | None = None,
        retry: RetryPolicy | None = None,
        until: Any = None,
        on_tick: Callable[[pd.Timestamp], None] | None = None,
    ) -> None:
        super().__init__()
        self.venue = venue
        self.limits = limits or RiskLimits()
        if kill_switch is not None and not isinstance(kill_switch, KillSwitch):
            kill_switch = KillSwitch(kill_switch)
        self.kill_switch: KillSwitch | None = kill_switch
        self.flatten_on_kill = flatten_on_kill
        self.session = session or new_session_id()
        self.audit = audit or AuditLog(None, self.session)
        self.retry = retry or RetryPolicy()
        self.until = None if until is None else _aware(until)
        self.on_tick_callback = on_tick
        self.broker: LiveOptionsBroker | None = None
        self._driver: object | None = None
        self.ended = False

    # -- faces -------------------------------------------------------------------------------------
    def getdata(  # type: ignore[override]
        self,
        underlying: str | None = None,
        *,
        kind: str = "chain",
        roots: Sequence[str] | None = None,
        target_dte: float = 30.0,
        far_dte: float = 60.0,
        feature_root: str | None = None,
        features: bool = True,
        name: str | None = None,
    ) -> bt.feed.DataBase:
        """A live feed of the venue: chain snapshots (``kind="chain"``) or underlying bars
        (``kind="bars"``).

        Parameters
        ----------
        underlying : str, optional
            Underlying symbol (default: the venue's, e.g. ``ReplayVenue.underlying``).
        kind : {"chain", "bars"}
        roots : sequence of str, optional
            Option roots of the snapshots (all by default).
        target_dte, far_dte, feature_root, features
            Chain-feature settings (:class:`ChainSnapshotFeed`).
        name : str, optional
            backtrader data name.

        Returns
        -------
        ChainSnapshotFeed or LiveBarFeed

        Raises
        ------
        ValueError
            Unknown ``kind`` or no underlying.
        """
        symbol = (underlying or getattr(self.venue, "underlying", "") or "").upper()
        if not symbol:
            raise ValueError("getdata needs underlying= (the venue has no default)")
        if kind == "chain":
            source = _BoundSource(self, symbol, roots, "chain")
            feed: bt.feed.DataBase = ChainSnapshotFeed(
                snapshots=source,
                live=True,
                target_dte=target_dte,
                far_dte=far_dte,
                feature_root=feature_root,
                features=features,
                name=name or f"{symbol} chain",
            )
        elif kind == "bars":
            source = _BoundSource(self, symbol, None, "bars")
            feed = LiveBarFeed(bars=source, name=name or f"{symbol} bars")
        else:
            raise ValueError(f"kind must be 'chain' or 'bars', got {kind!r}")
        source.feed = feed
        feed._store = self
        if self._driver is None:
            self._driver = feed
        return feed

    def next_time(self) -> pd.Timestamp | None:
        """The venue's next scheduled update (:meth:`VenueAdapter.next_time`), None when unknown,
        at the end, or after ``until`` (the feeds stop there)."""
        nxt = self.venue.next_time()
        if nxt is None or (self.until is not None and nxt > self.until):
            return None
        return nxt

    def getbroker(self, **params: Any) -> LiveOptionsBroker:  # type: ignore[override]
        """The live options broker on this store's venue, with its safety settings.

        Parameters
        ----------
        **params
            :class:`brokers.OptionsBroker` / :class:`LiveOptionsBroker` params (costs,
            ``settlement_prices``, ``fill_timeout`` ...).

        Returns
        -------
        LiveOptionsBroker
        """
        broker = LiveOptionsBroker(
            venue=self.venue,
            limits=self.limits,
            kill_switch=self.kill_switch,
            flatten_on_kill=self.flatten_on_kill,
            audit=self.audit,
            session=self.session,
            retry=self.retry,
            **params,
        )
        broker._store = self
        self.broker = broker
        return broker

    # -- the clock ---------------------------------------------------------------------------------
    def advance(self, feed: object) -> bool:
        """One clock step for ``feed``: the driving feed checks the kill switch (firing it ends the
        run), then ticks the venue; other feeds read at the current time. False when the session
        ends (kill switch, ``until`` reached, no more data)."""
        if self.ended:
            return False
        if feed is self._driver:
            if self.broker is not None and self.broker.started:
                if self.broker.check_kill_switch():
                    self.ended = True
                    return False
            elif self.kill_switch is not None and self.kill_switch.engaged():
                self.ended = True
                return False
            if not self.venue.tick():
                self.ended = True
                return False
            if self.until is not None and self.venue.now() > self.until:
                self.ended = True
                return False
            if self.on_tick_callback is not None:
                self.on_tick_callback(self.venue.now())
        return True


NO_DATA = object()
"""Returned by a following feed's source when the driving feed's tick brought no new bar."""


class _BoundSource:
    """Callable handed to a live feed: advances the store's clock for that feed, then reads."""

    def __init__(
        self, store: LiveStore, symbol: str, roots: Sequence[str] | None, kind: str
    ) -> None:
        self.store, self.symbol, self.roots, self.kind = store, symbol, roots, kind
        self.feed: object | None = None
        self._last_bar: pd.Timestamp | None = None

    def __call__(self) -> Any:
        feed = self.feed
        if not self.store.advance(feed):
            return None
        if self.kind == "chain":
            return self.store.venue.chain_snapshot(self.symbol, self.roots)
        bar = self.store.venue.latest_bar(self.symbol)
        while bar is None or (self._last_bar is not None and bar.time <= self._last_bar):
            if feed is not self.store._driver:
                return NO_DATA  # a follower with no new bar at this tick: nothing to deliver now
            if not self.store.advance(feed):
                return None
            bar = self.store.venue.latest_bar(self.symbol)
        self._last_bar = bar.time
        return bar


def _aware(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(TZ) if ts.tzinfo is None else ts.tz_convert(TZ)


__all__ = ["LiveBarFeed", "LiveStore"]
