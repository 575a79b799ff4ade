"""Paper-trading faults against the local fake of Alpaca's REST API (``tests/brokers/live/
fake_alpaca.py``, served on 127.0.0.1; never the internet): the venue going down while the kill
switch fires, a session restarted in the middle, an endpoint that redirects to another host, and
endpoints on hosts that are not Alpaca's.

Each test reproduces an item of issue 17 (paper trading, items 1-3) and failed before its fix.
Expected outcomes are the venue's own state (the fake's book: open orders, positions, the key
headers it received), never the broker's view of itself.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "brokers" / "live"))
from fake_alpaca import (
    KEY,
    SECRET,
    FakeAlpaca,
    _Handler,
    _Server,
    spy_chain,
)

from brokers import OrderRejected
from brokers.live import AuditLog, KillSwitch, LiveStore, RetryPolicy
from brokers.live.alpaca import AlpacaAdapter
from data_feeds.contracts import OptionContract

pytestmark = pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning")

FAST = RetryPolicy(max_attempts=3, backoff=0.0, max_backoff=0.0)


def _serve(fake: FakeAlpaca) -> tuple[_Server, threading.Thread]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def venue_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAlpaca, str]]:
    """A running fake Alpaca (SPY chain at 580) and its URL; the test keys in the environment."""
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    quotes, _ = spy_chain(dt.date.today())
    fake = FakeAlpaca(quotes=quotes, stock_price={"SPY": 580.0})
    server, thread = _serve(fake)
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def near() -> dt.date:
    return dt.date.today() + dt.timedelta(days=3)


def spy(strike: float, right: str) -> OptionContract:
    return OptionContract("SPY", near(), strike, right)


def adapter(url: str, **kw) -> AlpacaAdapter:
    return AlpacaAdapter(
        "SPY", base_url=url, data_url=url, timeout=(1.0, 0.5), poll_seconds=0.0, **kw
    )


def start_broker(url: str, folder: Path, session: str = "s1", **kw):
    venue = adapter(url)
    audit = AuditLog(folder / "audit.jsonl", session)
    store = LiveStore(venue, audit=audit, retry=FAST, session=session, **kw)
    broker = store.getbroker(
        commission_per_contract=0.0,
        fill_timeout=0.0,
        sleep=lambda s: None,
        strategy_name="test_strategy",
    )
    broker.setcash(100_000.0)
    broker.start()
    return venue, broker


def open_orders_at(fake: FakeAlpaca) -> list[str]:
    return [
        o["client_order_id"]
        for o in fake.orders.values()
        if o["status"] in ("new", "accepted", "partially_filled")
    ]


# -- item 1: the kill switch finishes ------------------------------------------------------------
def _straddle_and_resting_bid(fake: FakeAlpaca, url: str, tmp_path: Path):
    switch = KillSwitch(tmp_path / "KILL")
    venue, broker = start_broker(url, tmp_path, kill_switch=switch)
    snap = venue.chain_snapshot("SPY")
    broker.execute_snapshot([(spy(580, "C"), 1), (spy(580, "P"), 1)], 1, snap, tag="straddle")
    fake.fill = False
    broker.place_order([(spy(570, "P"), 1)], 1, 0.05, tag="resting bid")
    fake.fill = True
    assert len(open_orders_at(fake)) == 1 and len(fake.signed_positions()) == 2
    return switch, snap, broker


@pytest.mark.parametrize("outage", ["503", "drop"])
def test_kill_during_an_outage_finishes_when_the_venue_returns(
    venue_url, tmp_path, outage: str
) -> None:
    fake, url = venue_url
    switch, snap, broker = _straddle_and_resting_bid(fake, url, tmp_path)
    fake.down = outage
    switch.trigger("outage test")
    broker.on_tick()  # the kill fires while the venue is down: no exception, nothing done
    assert broker.killed and not broker.kill_complete
    assert broker.kill_status.startswith("NOT complete")
    assert len(open_orders_at(fake)) == 1 and len(fake.signed_positions()) == 2
    pending = [
        r for r in broker.audit.events("kill_switch") if r["detail"]["phase"] == "incomplete"
    ]
    assert pending and "venue" in pending[-1]["detail"]["status"]
    with pytest.raises(OrderRejected, match="kill switch"):
        broker.execute_snapshot([(spy(575, "C"), 1)], 1, snap)  # still no new order
    fake.down = None
    broker.on_tick()  # the venue is back: the clean-up is retried and confirmed
    assert broker.kill_complete, broker.kill_status
    assert open_orders_at(fake) == [] and fake.signed_positions() == {}
    assert broker.option_positions == {}
    broker.stop()
    end = broker.reconciliations[-1]
    assert end.when == "end" and end.clean, end.summary()
    (last,) = broker.audit.events("session_end")
    assert last["detail"]["kill_complete"] is True


def test_kill_finishes_at_the_end_of_the_session_when_the_venue_returns(
    venue_url, tmp_path
) -> None:
    """The issue's sequence: kill during the outage, venue back, session ends: the end of the
    session finishes the clean-up before its reconciliation (which then really matches)."""
    fake, url = venue_url
    switch, _, broker = _straddle_and_resting_bid(fake, url, tmp_path)
    fake.down = "503"
    switch.trigger("outage test")
    broker.check_kill_switch()
    fake.down = None
    broker.stop()
    assert open_orders_at(fake) == [] and fake.signed_positions() == {}
    assert broker.kill_complete and broker.reconciliations[-1].clean


def test_end_reconcile_never_says_matches_while_the_kill_is_pending(venue_url, tmp_path) -> None:
    fake, url = venue_url
    switch, _, broker = _straddle_and_resting_bid(fake, url, tmp_path)
    fake.down = "503"
    switch.trigger("outage test")
    broker.on_tick()
    broker.stop()  # the venue never came back
    end = broker.reconciliations[-1]
    assert end.when == "end" and not end.clean
    assert "book matches the venue" not in end.summary()
    assert "KILL SWITCH NOT COMPLETE" in end.summary()
    assert not broker.kill_complete
    (last,) = broker.audit.events("session_end")
    assert last["detail"]["kill_complete"] is False
    # the venue returns after the session: open orders and positions are still there, exactly
    # what the session said
    fake.down = None
    assert len(open_orders_at(fake)) == 1 and len(fake.signed_positions()) == 2


def test_reconcile_with_orders_left_after_a_kill_is_not_clean(venue_url, tmp_path) -> None:
    """The venue answers but an order stays open (a cancel it acknowledged without doing): the
    kill is not confirmed and no reconciliation calls the book matched."""
    fake, url = venue_url
    switch, _, broker = _straddle_and_resting_bid(fake, url, tmp_path)
    fake.cancel = lambda oid: 204  # acknowledges, cancels nothing
    switch.trigger("stuck cancel")
    broker.on_tick()
    assert not broker.kill_complete
    assert "1 open order" in broker.kill_status
    broker.stop()
    assert "KILL SWITCH NOT COMPLETE: 1 open order" in broker.reconciliations[-1].summary()


# -- item 2: a restarted session does not send a decision twice ---------------------------------
def test_a_restarted_session_never_sends_a_decision_twice(venue_url, tmp_path) -> None:
    """The first run of session ``run1`` makes two decisions (a straddle on the 10:00 bar, a put
    on the 10:01 bar) and dies; the restarted run (same session) replays both bars, in the other
    order. The venue keeps one straddle and one put, and the book agrees with it."""
    from dataclasses import replace

    import pandas as pd

    fake, url = venue_url
    venue, first = start_broker(url, tmp_path / "a", session="run1")
    snap = venue.chain_snapshot("SPY")
    t1 = snap.quote_time.floor("min")
    bar1, bar2 = replace(snap, quote_time=t1), replace(snap, quote_time=t1 + pd.Timedelta("1min"))
    straddle = [(spy(580, "C"), 1), (spy(580, "P"), 1)]
    first.execute_snapshot(straddle, 1, bar1, tag="open")
    first.execute_snapshot([(spy(575, "P"), 1)], 2, bar2, tag="hedge")
    venue_after_first = fake.signed_positions()
    assert len(fake.orders) == 2
    # the process dies here (no stop); the session is restarted with the same id
    _, second = start_broker(url, tmp_path / "b", session="run1")
    assert {c: p.quantity for c, p in second.option_positions.items()} == {
        spy(580, "C"): 1,
        spy(580, "P"): 1,
        spy(575, "P"): 2,
    }
    for bar, legs, n, tag in (
        (bar2, [(spy(575, "P"), 1)], 2, "hedge"),
        (bar1, straddle, 1, "open"),
    ):
        with pytest.raises(OrderRejected, match="already sent by an earlier run of session run1"):
            second.execute_snapshot(legs, n, bar, tag=tag)
    assert len(fake.orders) == 2 and fake.signed_positions() == venue_after_first
    assert {c: p.quantity for c, p in second.option_positions.items()} == {
        spy(580, "C"): 1,
        spy(580, "P"): 1,
        spy(575, "P"): 2,
    }
    assert second.cash == pytest.approx(fake.cash)
    # a new decision of the restarted run goes through
    second.execute_snapshot([(spy(585, "C"), 1)], 1, bar2, tag="new")
    assert len(fake.orders) == 3
    second.stop()
    assert second.reconciliations[-1].clean, second.reconciliations[-1].summary()
