"""The paper contract without market data: :func:`strategies.base.capture_cerebro` hands over
exactly what a backtest would run and runs nothing; the hook never leaks into a later backtest;
:class:`data_feeds.snapshot_feed.ListedSnapshots` and the replay venue's schedule
(:meth:`ReplayVenue.next_time`) on synthetic quote-less snapshots."""

from __future__ import annotations

import backtrader as bt
import pandas as pd
import pytest

from brokers.live.replay import ReplayVenue
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from data_feeds.snapshot_feed import ListedSnapshots
from strategies.base import CerebroSpec, capture_cerebro, run_cerebro


class Counter(bt.Strategy):
    """Counts its bars; ``boom=True`` raises on construction (must never run when captured)."""

    params = (("boom", False),)

    def __init__(self) -> None:
        if self.p.boom:
            raise AssertionError("the captured Cerebro ran")
        self.bars = 0

    def next(self) -> None:
        self.bars += 1


def bars(n: int) -> bt.feeds.PandasData:
    index = pd.bdate_range("2024-01-02", periods=n)
    frame = pd.DataFrame(
        {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0}, index=index
    )
    return bt.feeds.PandasData(dataname=frame)


def test_capture_hands_over_the_arguments_and_runs_nothing() -> None:
    feed, broker = bars(3), bt.brokers.BackBroker()
    spec = capture_cerebro(
        lambda: run_cerebro(Counter, [feed], broker, cash=123.0, strategy_kwargs={"boom": True})
    )
    assert isinstance(spec, CerebroSpec)
    assert spec.strategy_cls is Counter and spec.feeds == [feed] and spec.broker is broker
    assert spec.cash == 123.0 and spec.strategy_kwargs == {"boom": True}


def test_capture_without_a_cerebro_is_an_error_and_the_hook_does_not_leak() -> None:
    with pytest.raises(RuntimeError, match="without running a Cerebro"):
        capture_cerebro(lambda: None)
    with pytest.raises(ZeroDivisionError):  # the backtest's own errors pass through
        capture_cerebro(lambda: 1 / 0)
    strategy, value, _ = run_cerebro(Counter, [bars(7)], bt.brokers.BackBroker(), cash=10.0)
    assert strategy.bars == 7 and len(value) == 7  # one bar per row: it ran


def snapshot(when: str, price: float) -> ChainSnapshot:
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in QUOTE_COLUMNS})
    return ChainSnapshot("SPY", pd.Timestamp(when, tz="America/New_York"), price, empty)


def test_listed_snapshots_and_the_venue_schedule() -> None:
    snaps = [snapshot("2024-01-02 09:31", 470.0), snapshot("2024-01-02 09:32", 471.0)]
    snaps.append(snapshot("2024-01-03 09:31", 472.0))
    with pytest.raises(ValueError, match="share a quote time"):
        ListedSnapshots.of([snaps[0], snaps[0]])
    with pytest.raises(ValueError, match="must increase"):
        ListedSnapshots([snaps[1].quote_time, snaps[0].quote_time], lambda t: None)
    recorded = ListedSnapshots.of(list(reversed(snaps)))  # any order in, time order out
    assert [s.underlying_price for s in recorded] == [470.0, 471.0, 472.0]
    venue = ReplayVenue(None, "SPY", recorded=recorded, speed=0)
    assert venue.next_time() == snaps[0].quote_time  # before the first tick
    seen = []
    while venue.tick():
        seen.append((venue.now(), venue.next_time()))
    assert seen == [
        (snaps[0].quote_time, snaps[1].quote_time),
        (snaps[1].quote_time, snaps[2].quote_time),
        (snaps[2].quote_time, None),
    ]
