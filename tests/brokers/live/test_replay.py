"""The replay venue on one real recorded day, SPXW minute quotes of 2021-01-04 (Lean sample data,
``../shared/data/options/spx_spxw_spy_option_minute_quotes.csv.gz``, ingested with
``--format lean-minute``; SPX minute bars from ``../shared/data/intraday/``).

* The same ``OptionStrategy`` subclass gives the same orders and fills on the backtest broker
  (``OptionsBroker`` on a historical feed of the day's snapshots) and on the replay venue (live
  store, venue clock); fill prices are checked against the raw CSV rows read with ``csv``.
* Truncating the replay (``end`` at noon) leaves the morning's fills unchanged (look-ahead).
* The kill switch cancels the working order and flattens at the tick it is noticed.
* ``speed`` waits ``delta / speed`` wall seconds between snapshots (hand calculation).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import backtrader as bt
import pandas as pd
import pytest

from brokers import OptionsBroker
from brokers.live import (
    AuditLog,
    KillSwitch,
    KillSwitchEngaged,
    LiveStore,
    ReplayVenue,
)
from data_feeds import OptionContract, load_ohlc
from data_feeds.chain_store import ChainStore
from data_feeds.minute_bars import load_minute_bars
from data_feeds.snapshot_feed import ChainSnapshotFeed, RecordedSnapshots
from strategies import ComboSpec, OptionStrategy
from strategies.base import run_cerebro

pytestmark = pytest.mark.shared_data

MINUTE_QUOTES = "options/spx_spxw_spy_option_minute_quotes.csv.gz"
SPX_MINUTES = "intraday/spx_index_minute_2021_2023.csv"
SPX_DAILY = "index/spx_vix_spy_qqq_daily.csv"
DAY = "2021-01-04"
COMMISSION = 0.65
CASH = 100_000.0
COLUMNS = ["time", "event", "root", "expiration", "strike", "right", "quantity", "price"]
COLUMNS += ["commission", "cash_flow", "tag"]


@pytest.fixture(scope="module")
def minute_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("minute") / "chains.duckdb"
    with ChainStore(path) as store:
        store.ingest(shared_data / MINUTE_QUOTES, "lean-minute")
    store = ChainStore(path, read_only=True)
    yield store
    store.close()


@pytest.fixture(scope="module")
def spx_minutes(shared_data: Path) -> pd.DataFrame:
    return load_minute_bars(shared_data / SPX_MINUTES, stamp="end")


@pytest.fixture(scope="module")
def spx_daily(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / SPX_DAILY), root="SPX")


class HalfHourStraddle(OptionStrategy):
    """Every half hour until 15:00 buy the ATM straddle of the expiry nearest 2 days (SPXW
    2021-01-06), close each one 15 minutes later."""

    SPEC = ComboSpec(kind="straddle", root="SPXW", target_dte=2)

    def __init__(self) -> None:
        super().__init__()
        self.opened: dict[str, int] = {}

    def next_chain(self, snapshot) -> None:
        t = snapshot.quote_time
        minute = t.hour * 60 + t.minute
        for tag, at in list(self.opened.items()):
            if minute - at >= 15 and self.close_combo(tag):
                del self.opened[tag]
        if t.minute in (1, 31) and t.hour < 15:
            tag = f"straddle {t:%H:%M}"
            if self.open_combo(self.SPEC, 1, tag=tag):
                self.opened[tag] = minute


def backtest(snaps, daily):
    feed = ChainSnapshotFeed(snapshots=snaps, live=False, features=False)
    broker = OptionsBroker(settlement_prices={"SPX": daily}, commission_per_contract=COMMISSION)
    strategy, _, _ = run_cerebro(HalfHourStraddle, [feed], broker, cash=CASH)
    return strategy, broker


def replay(snaps, daily, end=None, **store_kw):
    venue = ReplayVenue(
        snaps.source,
        "SPX",
        roots=["SPXW"],
        start=DAY,
        end=end or DAY,
        settlement_prices={"SPX": daily},
        cash=CASH,
        costs=OptionsBroker(commission_per_contract=COMMISSION).costs,
        recorded=snaps,
    )
    live = LiveStore(venue, **store_kw)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(live.getdata(roots=["SPXW"], features=False))
    broker = live.getbroker(
        settlement_prices={"SPX": daily}, commission_per_contract=COMMISSION, fill_timeout=0
    )
    broker.setcash(CASH)
    cerebro.setbroker(broker)
    cerebro.addstrategy(HalfHourStraddle)
    (strategy,) = cerebro.run()
    return strategy, broker, venue, live


def raw_quote(shared_data: Path, minute: str, strike: float, right: str) -> tuple[float, float]:
    """(bid_close, ask_close) of the SPXW 2021-01-06 bar starting at ``minute`` on 2021-01-04,
    read from the raw file with ``csv`` (the lean ingest stamps a bar at its close, start + 1)."""
    with gzip.open(shared_data / MINUTE_QUOTES, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if (
                row["date"] == DAY
                and row["time_et"] == minute
                and row["root"] == "SPXW"
                and row["expiration"] == "2021-01-06"
                and float(row["strike"]) == strike
                and row["right"] == right
            ):
                return float(row["bid_close"]), float(row["ask_close"])
    raise AssertionError(f"no raw row for {minute} {strike}{right}")


@pytest.fixture(scope="module")
def day_snapshots(minute_store, spx_minutes) -> RecordedSnapshots:
    """The day's 405 SPXW minute snapshots, read once and shared by the runs of this module
    (the SPX price of each comes from the minute bar closed at its time)."""
    return RecordedSnapshots(
        minute_store,
        "SPX",
        roots=["SPXW"],
        start=DAY,
        end=DAY,
        underlying_bars=spx_minutes,
        cache=True,
    )


@pytest.fixture(scope="module")
def both_runs(day_snapshots, spx_daily):
    return backtest(day_snapshots, spx_daily), replay(day_snapshots, spx_daily)


def test_same_orders_and_fills_in_backtest_and_replay(both_runs, shared_data) -> None:
    (bt_strategy, bt_broker), (rp_strategy, rp_broker, venue, live) = both_runs
    ours = bt_broker.fills_frame()[COLUMNS]
    theirs = rp_broker.fills_frame()[COLUMNS]
    assert len(ours) == 44  # 11 straddles opened and closed: 22 orders of 2 legs
    pd.testing.assert_frame_equal(ours, theirs)
    # the replay's orders, as the venue received them, are the backtest's fills grouped by tag
    submitted = [r for r in live.audit.records if r["event"] == "order_submitted"]
    assert [r["tag"] for r in submitted] == list(dict.fromkeys(ours["tag"]))
    assert [
        [(leg["strike"], leg["right"], leg["ratio"]) for leg in r["legs"]] for r in submitted
    ] == [
        [(row.strike, row.right, int(row.quantity)) for row in g.itertuples()]
        for _, g in ours.groupby("tag", sort=False)
    ]
    assert bt_strategy.rejections == rp_strategy.rejections == []
    # independent reference: the raw file's closing quotes of the 09:30 / 09:45 bars
    first = ours.iloc[:4]
    call_bid_ask = raw_quote(shared_data, "09:30", 3800.0, "C")
    put_bid_ask = raw_quote(shared_data, "09:30", 3800.0, "P")
    assert list(first["price"][:2]) == pytest.approx([call_bid_ask[1], put_bid_ask[1]])  # asks
    assert list(first["price"][2:4]) == pytest.approx(
        [
            raw_quote(shared_data, "09:45", 3800.0, "C")[0],
            raw_quote(shared_data, "09:45", 3800.0, "P")[0],
        ]
    )  # sold at the bids
    # the account: cash only at the end (every straddle closed), the same on both sides
    expected_cash = CASH + float(ours["cash_flow"].sum())
    assert bt_broker.getvalue() == pytest.approx(expected_cash)
    assert rp_broker.getvalue() == pytest.approx(expected_cash)
    assert venue.account().cash == pytest.approx(expected_cash)
    assert rp_broker.reconciliations[-1].clean


def test_replay_has_no_look_ahead(both_runs, day_snapshots, spx_daily) -> None:
    (_, _), (_, full, _, _) = both_runs
    _, morning, venue, _ = replay(day_snapshots, spx_daily, end=f"{DAY} 12:00")
    cut = pd.Timestamp(f"{DAY} 12:00")
    whole = full.fills_frame()
    pd.testing.assert_frame_equal(
        morning.fills_frame()[COLUMNS], whole[whole["time"] <= cut][COLUMNS].reset_index(drop=True)
    )
    assert venue.schedule[-1] == pd.Timestamp(f"{DAY} 12:00", tz="America/New_York")


class KillAtTen(OptionStrategy):
    """Buy a straddle at 09:31, rest a far bid, raise the kill switch at 09:40."""

    def __init__(self, switch: KillSwitch, flatten: bool = True) -> None:
        super().__init__()
        self.switch, self.flatten = switch, flatten
        self.resting = None
        self.bars: list[pd.Timestamp] = []

    def next_chain(self, snapshot) -> None:
        t = snapshot.quote_time
        self.bars.append(t)
        if t.strftime("%H:%M") == "09:31":
            self.open_combo(ComboSpec(kind="straddle", root="SPXW", target_dte=2), 1)
            put = OptionContract("SPXW", dt.date(2021, 1, 6), 3700.0, "P")
            self.resting = self.broker.place_order([(put, 1)], 1, 0.05, tag="far bid")
        if t.strftime("%H:%M") == "09:40":
            self.switch.trigger("test: volsuite paper stop", flatten=self.flatten)


@pytest.mark.parametrize("flatten", [True, False])
def test_kill_switch_cancels_and_flattens_within_one_tick(
    day_snapshots, spx_daily, tmp_path, flatten
) -> None:
    switch = KillSwitch(tmp_path / "KILL")
    venue = ReplayVenue(
        day_snapshots.source,
        "SPX",
        roots=["SPXW"],
        start=DAY,
        end=DAY,
        settlement_prices={"SPX": spx_daily},
        cash=CASH,
        recorded=day_snapshots,
    )
    audit = AuditLog(tmp_path / "audit.jsonl", "kill")
    live = LiveStore(venue, kill_switch=switch, audit=audit, session="kill")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(live.getdata(roots=["SPXW"], features=False))
    broker = live.getbroker(settlement_prices={"SPX": spx_daily}, fill_timeout=0)
    broker.setcash(CASH)
    cerebro.setbroker(broker)
    cerebro.addstrategy(KillAtTen, switch=switch, flatten=flatten)
    (strategy,) = cerebro.run()
    ten = pd.Timestamp(f"{DAY} 09:40", tz="America/New_York")
    assert strategy.bars[-1] == ten  # no bar after the one that raised the flag
    assert venue.now() == ten  # the venue clock did not move: acted on within the tick
    kill, done = audit.events("kill_switch")  # engaged, then confirmed by the venue
    assert [kill["detail"]["phase"], done["detail"]["phase"]] == ["engaged", "complete"]
    assert pd.Timestamp(kill["venue_time"]) == pd.Timestamp(done["venue_time"]) == ten
    assert kill["flatten"] is flatten and broker.kill_complete
    assert venue.open_orders() == []
    assert venue.orders[strategy.resting.order_id].status == "canceled"
    cancels = audit.events("cancel")
    assert [c["order_id"] for c in cancels] == [strategy.resting.order_id]
    if flatten:
        assert venue.positions() == [] and broker.option_positions == {}
        flat = [r for r in audit.events("fill") if r["tag"] == "kill switch"]
        assert len(flat) == 2 and all(pd.Timestamp(r["venue_time"]) == ten for r in flat)
    else:
        assert len(venue.positions()) == 2 and len(broker.option_positions) == 2
    assert broker.reconciliations[-1].clean
    # the switch latches: a new session refuses to start until it is cleared
    again = LiveStore(venue, kill_switch=switch).getbroker()
    with pytest.raises(KillSwitchEngaged, match="remove the file"):
        again.start()
    assert switch.clear()


def test_speed_waits_recorded_time_over_speed(minute_store) -> None:
    waits: list[float] = []
    venue = ReplayVenue(
        minute_store, "SPX", roots=["SPXW"], start=f"{DAY} 09:31", speed=60.0, sleep=waits.append
    )
    for _ in range(4):
        assert venue.tick()
    # minute snapshots at speed 60: one recorded minute per wall second, no wait before the first
    assert waits == [1.0, 1.0, 1.0]
    assert venue.now() == pd.Timestamp(f"{DAY} 09:34", tz="America/New_York")


class ZeroDteAt1530(OptionStrategy):
    """Buy the SPXW 2021-01-04 3700 straddle (0DTE) at 15:31 and hold it to the PM settlement."""

    def next_chain(self, snapshot) -> None:
        if snapshot.quote_time.strftime("%H:%M") == "15:31":
            legs = [
                (OptionContract("SPXW", dt.date(2021, 1, 4), 3700.0, "C"), 1),
                (OptionContract("SPXW", dt.date(2021, 1, 4), 3700.0, "P"), 1),
            ]
            self.obroker.execute_snapshot(legs, 1, snapshot, tag="0dte")


def test_pm_settlement_waits_for_the_close(day_snapshots, spx_daily) -> None:
    """Live, a 0DTE leg settles at the first tick at or after the 16:00 close (the snapshot stamped
    16:00 closes the 15:59 bar), venue and book alike, never earlier in the day; on the SPX close
    of the daily file: 3700.65 -> the 3700 call pays 0.65 x 100 = $65, the put nothing."""
    venue = ReplayVenue(
        day_snapshots.source,
        "SPX",
        roots=["SPXW"],
        start=f"{DAY} 15:25",
        end=DAY,
        settlement_prices={"SPX": spx_daily},
        cash=CASH,
        recorded=day_snapshots,
    )
    live = LiveStore(venue)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(live.getdata(roots=["SPXW"], features=False))
    broker = live.getbroker(settlement_prices={"SPX": spx_daily}, fill_timeout=0)
    broker.setcash(CASH)
    cerebro.setbroker(broker)
    cerebro.addstrategy(ZeroDteAt1530)
    cerebro.run()
    (call_fill, put_fill) = broker.option_fills
    assert (call_fill.price, put_fill.price) == (1.2, 13.9)  # the 15:30 bar's asks (raw file)
    settled = {s.contract.right: s for s in broker.option_settlements}
    assert settled["C"].cash_flow == pytest.approx(65.0) and settled["P"].cash_flow == 0.0
    assert settled["C"].underlying_price == 3700.65 and settled["C"].price_source == "close"
    settle_audit = [r for r in live.audit.events("settlement") if r.get("price") is not None]
    assert {pd.Timestamp(r["venue_time"]).strftime("%H:%M") for r in settle_audit} == {"16:00"}
    expected = CASH - 100 * (1.2 + 13.9) - 2 * 1.0 + 65.0  # $1 commission per contract (default)
    assert broker.getvalue() == pytest.approx(expected)
    assert venue.account().cash == pytest.approx(expected)
    assert venue.positions() == [] and broker.reconciliations[-1].clean


def test_bar_feed_follows_the_venue_clock(day_snapshots, spx_minutes) -> None:
    venue = ReplayVenue(
        day_snapshots.source,
        "SPX",
        roots=["SPXW"],
        start=f"{DAY} 09:31",
        end=f"{DAY} 09:40",
        recorded=day_snapshots,
        underlying_bars=spx_minutes,
    )
    live = LiveStore(venue)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(live.getdata("SPX", kind="bars"))
    closes: list[tuple[dt.datetime, float]] = []

    class Record(bt.Strategy):
        def next(self) -> None:
            closes.append((self.data.datetime.datetime(0), self.data.close[0]))

    cerebro.addstrategy(Record)
    cerebro.run()
    # ten bars, each the minute bar closed at the venue time (file row start + 1 minute)
    expected = spx_minutes.loc[f"{DAY} 09:31" : f"{DAY} 09:40", "close"]
    assert [c for _, c in closes] == list(expected)
    assert closes[0][0] == dt.datetime(2021, 1, 4, 9, 31)


def test_bar_feed_keeps_step_with_the_chain_feed(day_snapshots, spx_minutes) -> None:
    venue = ReplayVenue(
        day_snapshots.source,
        "SPX",
        roots=["SPXW"],
        start=f"{DAY} 09:31",
        end=f"{DAY} 09:40",
        recorded=day_snapshots,
        underlying_bars=spx_minutes,
    )
    live = LiveStore(venue)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(live.getdata(roots=["SPXW"], features=False))  # drives the clock
    cerebro.adddata(live.getdata("SPX", kind="bars"))  # follows it
    rows: list[tuple[dt.datetime, dt.datetime, float, float]] = []

    class Record(bt.Strategy):
        def next(self) -> None:
            chain, bars = self.datas
            rows.append(
                (
                    chain.datetime.datetime(0),
                    bars.datetime.datetime(0),
                    chain.snapshot().underlying_price,
                    bars.close[0],
                )
            )

    cerebro.addstrategy(Record)
    cerebro.run()
    # ten ticks; the bar of each is the minute bar closed at that venue time, in step with the
    # chain snapshot of the same minute (whose index level came from the same bar)
    assert len(rows) == 10
    assert all(r[0] == r[1] and r[2] == r[3] for r in rows)
