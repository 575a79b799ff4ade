"""``OptionStrategy`` on intraday snapshots: a 0DTE leg stays open and tradable until the session's
last bar, and is PM-settled once, on the SPX close (real SPXW minute quotes of 2021-01-06)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from brokers import OptionsBroker
from data_feeds import ChainStore, load_ohlc
from data_feeds.minute_bars import load_minute_bars
from data_feeds.snapshot_feed import ChainSnapshotFeed, RecordedSnapshots
from strategies import ComboSpec, OptionStrategy, run_cerebro

pytestmark = pytest.mark.shared_data

DAY = "2021-01-06"  # a Wednesday: SPXW expires that day


@pytest.fixture(scope="module")
def snapshots(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RecordedSnapshots:
    path = tmp_path_factory.mktemp("minute0dte") / "chains.duckdb"
    with ChainStore(path) as store:
        store.ingest(
            shared_data / "options/spx_spxw_spy_option_minute_quotes.csv.gz", "lean-minute"
        )
    store = ChainStore(path, read_only=True)
    bars = load_minute_bars(shared_data / "intraday/spx_index_minute_2021_2023.csv", stamp="end")
    return RecordedSnapshots(
        store, "SPX", roots=["SPXW"], start=DAY, end=DAY, underlying_bars=bars, cache=True
    )


@pytest.fixture(scope="module")
def spx_daily(shared_data: Path):
    return load_ohlc(str(shared_data / "index/spx_vix_spy_qqq_daily.csv"), root="SPX")


def _close(shared_data: Path) -> float:
    with open(shared_data / "index/spx_vix_spy_qqq_daily.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["root"] == "SPX" and row["Date"] == DAY:
                return float(row["Close"])
    raise AssertionError("no SPX close")


class Intraday0Dte(OptionStrategy):
    params = (("close_at", "14:01"),)

    def next_chain(self, snapshot) -> None:
        hhmm = f"{snapshot.quote_time:%H:%M}"
        if hhmm == "10:01":
            self.open_combo(ComboSpec(kind="straddle", root="SPXW", target_dte=0), 1, tag="s")
        if hhmm == self.p.close_at and "s" in self.combos:
            self.close_combo("s")


def _run(snapshots, spx_daily, close_at):
    feed = ChainSnapshotFeed(snapshots=snapshots, live=False, features=False)
    broker = OptionsBroker(settlement_prices={"SPX": spx_daily}, commission_per_contract=0.65)
    strategy, _, _ = run_cerebro(
        Intraday0Dte, [feed], broker, cash=100_000.0, strategy_kwargs={"close_at": close_at}
    )
    return strategy, broker


def test_0dte_leg_can_be_closed_later_the_same_day(snapshots, spx_daily, shared_data) -> None:
    strategy, broker = _run(snapshots, spx_daily, "14:01")
    fills = broker.option_fills
    assert [f.contract.expiration.isoformat() for f in fills] == [DAY] * 3
    # the call is sold at 14:01 (before the fix the 0DTE legs were settled on the first bar and
    # could not be traded again that day); the 3700 put has no bid by then, so it is left to
    # expire and is PM-settled worthless on the close
    assert [(f.time.strftime("%H:%M"), f.contract.right, f.quantity) for f in fills] == [
        ("10:01", "C", 1),
        ("10:01", "P", 1),
        ("14:01", "C", -1),
    ]
    (settled,) = broker.option_settlements
    assert settled.contract.right == "P" and settled.time.strftime("%H:%M") == "16:00"
    assert _close(shared_data) > settled.contract.strike and settled.cash_flow == 0.0
    assert strategy.combos == {}


def test_0dte_leg_held_is_settled_once_on_the_close(snapshots, spx_daily, shared_data) -> None:
    _, broker = _run(snapshots, spx_daily, "never")
    (call, put) = broker.option_fills
    settled = broker.option_settlements
    assert len(settled) == 2
    close = _close(shared_data)
    for s in settled:
        assert s.underlying_price == pytest.approx(close)
        assert s.time.strftime("%H:%M") == "16:00"
    paid = sum(s.cash_flow for s in settled)
    assert paid == pytest.approx(100 * abs(close - call.contract.strike), abs=0.005)
    assert broker.getvalue() == pytest.approx(
        100_000.0 + call.cash_flow + put.cash_flow + paid, abs=0.005
    )
