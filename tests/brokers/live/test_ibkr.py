"""The Interactive Brokers adapter (``brokers.live.ibkr``) against the local fake TWS
(``fake_tws.py``, 127.0.0.1 only) with ``ib_async`` unmodified: the paper-account check, BAG combo
orders at the touch, and every injected fault (rejection, partial fill of a combo, a dropped
connection after the order reached TWS, a resting order across a reconnect, farm messages, a
pacing violation, delayed data only) ending with exactly one order per decision at the venue and
a reconciled book; the kill switch flattens at IB.

References: the fake's own book (ask for a bought leg, bid for a sold one), computed by hand
below; the TWS API message layouts of ``ib_async.decoder`` (a field the fake gets wrong is logged
as "Error handling fields", which every test checks for).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from fake_tws import FakeTWS, serve, stop

from brokers import OrderRejected
from brokers.live import AuditLog, KillSwitch, LiveStore, RetryPolicy, VenueRejected
from brokers.live.ibkr import IBKRAdapter
from data_feeds.calendar import TZ
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from data_feeds.contracts import OptionContract

CASH = 5_000_000.0  # short SPX straddles need about $60k of margin each
FAST = RetryPolicy(max_attempts=5, backoff=0.0, max_backoff=0.0)
DAY = dt.date(2019, 7, 1)
SPOT = 2964.0
STRIKES = (2950.0, 2955.0, 2960.0, 2965.0, 2970.0, 2975.0)


def chain(when: pd.Timestamp) -> ChainSnapshot:
    """A small SPXW 0DTE chain: calls and puts around 2964, a 0.20-wide market."""
    rows = []
    for k in STRIKES:
        for right in ("C", "P"):
            intrinsic = max(SPOT - k, 0.0) if right == "C" else max(k - SPOT, 0.0)
            bid = round(intrinsic + 1.0, 2)
            rows.append(
                {
                    "root": "SPXW",
                    "expiration": pd.Timestamp(DAY),
                    "strike": k,
                    "right": right,
                    "bid": bid,
                    "ask": bid + 0.2,
                    "mid": bid + 0.1,
                    "last": np.nan,
                    "volume": np.nan,
                    "open_interest": np.nan,
                    "vendor_implied_vol": np.nan,
                    "vendor_delta": np.nan,
                    "vendor_gamma": np.nan,
                    "vendor_theta": np.nan,
                    "vendor_vega": np.nan,
                    "is_liquid": True,
                }
            )
    return ChainSnapshot("SPX", when, SPOT, pd.DataFrame(rows, columns=list(QUOTE_COLUMNS)))


def leg(strike: float, right: str) -> OptionContract:
    return OptionContract("SPXW", DAY, strike, right)  # type: ignore[arg-type]


@pytest.fixture
def tws(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[FakeTWS, int]]:
    """The fake at 2019-07-01 10:00 ET with one recorded snapshot (09:45); after the test, no
    message was mis-decoded."""
    caplog.set_level(logging.ERROR, logger="ib_async")
    fake = FakeTWS(
        cash=CASH,
        snapshots=[chain(pd.Timestamp(f"{DAY} 09:45", tz=TZ))],
        clock=pd.Timestamp(f"{DAY} 10:00", tz=TZ),
        settlement_prices={"SPX": pd.DataFrame({"open": [2960.0], "close": [SPOT]},
                                               index=pd.DatetimeIndex([pd.Timestamp(DAY)]))},
    )  # fmt: skip
    server, thread, port = serve(fake)
    try:
        yield fake, port
    finally:
        stop(server, thread)
        decoded_badly = [r for r in caplog.records if "Error handling fields" in r.getMessage()]
        assert not decoded_badly, decoded_badly[0].getMessage()


OPEN: list[IBKRAdapter] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Disconnect every adapter a test opened (a client left connected to a stopped fake would
    report its dropped socket into the next test's event loop)."""
    yield
    while OPEN:
        OPEN.pop().close()


def live_broker(fake: FakeTWS, port: int, tmp_path, **kw):
    venue = IBKRAdapter("SPX", port=port, client_id=3, poll_seconds=60.0, sleep=fake.advance)
    OPEN.append(venue)
    audit = AuditLog(tmp_path / "audit.jsonl", "t1")
    store = LiveStore(venue, audit=audit, retry=FAST, session="t1", **kw)
    broker = store.getbroker(
        commission_per_contract=fake.commission, fill_timeout=5.0, sleep=fake.advance
    )
    broker.setcash(CASH)
    broker.start()
    return venue, store, broker


def book(broker) -> dict[OptionContract, int]:
    return {c: p.quantity for c, p in broker.option_positions.items()}


def fake_book(fake: FakeTWS) -> dict[OptionContract, int]:
    return {fake.contracts[c]: q for c, q in fake.positions.items()}


def test_refuses_an_account_that_is_not_paper(tws) -> None:
    fake, port = tws
    fake.account = "U7654321"
    venue = IBKRAdapter("SPX", port=port, client_id=4)
    OPEN.append(venue)
    with pytest.raises(VenueRejected, match="U7654321 is not a paper account"):
        venue.connect()


def test_straddle_is_one_bag_filled_at_the_touch(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, broker = live_broker(fake, port, tmp_path)
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    assert venue.delayed is False and snap.source == "ibkr"
    assert len(snap.quotes) == 2 * len(STRIKES) and snap.underlying_price == SPOT
    call, put = leg(2965, "C"), leg(2965, "P")
    fills = broker.execute_snapshot([(call, 1), (put, 1)], 2, snap, tag="straddle")
    # by hand: the 2965 call's bid is max(2964-2965, 0) + 1 = 1.00, ask 1.20; the put's bid
    # 1 + 1 = 2.00, ask 2.20; a bought straddle pays the asks
    assert sorted((f.quantity, f.price) for f in fills) == [(2, 1.2), (2, 2.2)]
    (order,) = fake.orders.values()
    assert order.sec_type == "BAG" and order.action == "BUY" and order.quantity == 2
    assert sorted(order.legs) == sorted([(fake.con_ids[call], 1), (fake.con_ids[put], 1)])
    assert broker.cash == pytest.approx(CASH - 200 * (1.2 + 2.2) - 4 * fake.commission)
    assert broker.cash == pytest.approx(fake.cash)
    assert book(broker) == fake_book(fake) == {call: 2, put: 2}
    assert venue.positions()[0].avg_price == pytest.approx(1.2)


def test_rejected_order_books_nothing(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, broker = live_broker(fake, port, tmp_path)
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    fake.faults.append("reject")
    with pytest.raises(OrderRejected, match="rejected"):
        broker.execute_snapshot([(leg(2960, "C"), -1), (leg(2960, "P"), -1)], 1, snap)
    (order,) = fake.orders.values()
    assert venue.get_order(str(order.order_id)).reason.endswith("fake venue rejects")
    assert len(fake.orders) == 1 and not fake.positions
    assert not book(broker) and broker.cash == pytest.approx(fake.cash)


def test_partial_fill_of_a_combo_completes(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, broker = live_broker(fake, port, tmp_path)
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    fake.faults.append("partial")
    broker.execute_snapshot([(leg(2960, "C"), -1), (leg(2960, "P"), -1)], 3, snap)
    (order,) = fake.orders.values()
    assert order.filled == 3 and len(order.fills) == 4  # 1 unit, then the other 2, per leg
    assert book(broker) == fake_book(fake) == {leg(2960, "C"): -3, leg(2960, "P"): -3}
    assert broker.cash == pytest.approx(fake.cash)


def test_dropped_connection_after_the_order_never_doubles_it(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, broker = live_broker(fake, port, tmp_path)
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    fake.faults.append("drop_after_order")
    broker.execute_snapshot([(leg(2955, "P"), 1)], 1, snap, tag="one put")
    assert len(fake.orders) == 1
    assert book(broker) == fake_book(fake) == {leg(2955, "P"): 1}
    assert broker.cash == pytest.approx(fake.cash)
    assert venue.reconnects >= 1
    broker.on_tick()  # the reconnect is noticed: reconcile
    rec = [r for r in broker.reconciliations if r.when == "reconnect"]
    assert rec and rec[-1].clean, rec[-1].summary() if rec else "no reconnect reconciliation"


def test_resting_order_survives_a_reconnect(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, broker = live_broker(fake, port, tmp_path)
    order = broker.place_order([(leg(2970, "P"), 1)], 1, 0.05, tag="resting bid")
    assert order.is_open and len(fake.orders) == 1
    fake.drop_connections()
    broker.on_tick()  # polls the order: reconnects, finds it by its orderRef
    broker.on_tick()
    assert len(fake.orders) == 1
    (resting,) = venue.open_orders()
    assert resting.client_order_id == order.client_order_id
    broker.stop()
    assert broker.reconciliations[-1].clean, broker.reconciliations[-1].summary()


def test_farm_messages_pacing_and_delayed_data(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, _ = live_broker(fake, port, tmp_path)
    fake.faults += ["farm", "pacing"]
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    assert venue.pacing_waits == 1 and len(snap.quotes) == 2 * len(STRIKES)
    assert {i.split(":")[0] for i in venue.info} >= {"2104", "2106", "2158"}
    assert not [e for e in venue.errors if e[1] in (2104, 2106, 2158)]
    fake.delayed_only = True
    delayed = venue.chain_snapshot("SPX", ["SPXW"])
    assert venue.delayed and delayed.source == "ibkr:delayed"
    assert delayed.quotes["bid"].tolist() == snap.quotes["bid"].tolist()


def test_a_session_of_faults_ends_one_order_per_decision_and_reconciled(tws, tmp_path) -> None:
    fake, port = tws
    venue, _, broker = live_broker(fake, port, tmp_path)
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    decisions = [("partial", 2950.0), ("drop_after_order", 2955.0), ("farm", 2960.0)]
    decisions += [("pacing", 2965.0), (None, 2970.0)]
    for fault, strike in decisions:
        if fault:
            fake.faults.append(fault)
        broker.execute_snapshot([(leg(strike, "P"), 1), (leg(strike, "C"), 1)], 2, snap)
        broker.on_tick()
    refs = [o.order_ref for o in fake.orders.values()]
    assert len(refs) == len(set(refs)) == len(decisions)
    assert book(broker) == fake_book(fake)
    broker.stop()
    last = broker.reconciliations[-1]
    assert last.when == "end" and last.clean, last.summary()
    assert broker.cash == pytest.approx(fake.cash)


def test_kill_switch_cancels_and_flattens_at_ib(tws, tmp_path) -> None:
    fake, port = tws
    switch = KillSwitch(tmp_path / "KILL")
    venue, _, broker = live_broker(fake, port, tmp_path, kill_switch=switch)
    snap = venue.chain_snapshot("SPX", ["SPXW"])
    broker.execute_snapshot([(leg(2965, "C"), 1), (leg(2965, "P"), 1)], 1, snap)
    resting = broker.place_order([(leg(2970, "P"), 1)], 1, 0.05, tag="resting bid")
    switch.trigger("test")
    broker.on_tick()
    assert broker.killed
    assert fake.orders[int(resting.order_id)].status == "Cancelled"
    assert not fake.positions


def test_spx_am_leg_settles_on_the_open_at_ib_and_in_the_book(tmp_path, caplog) -> None:
    """An SPX (AM) call bought on the Friday settles on the Monday's opening print at IB and in
    the book (the open as the SOQ stand-in), for the same cash; the end reconciliation is clean."""
    caplog.set_level(logging.ERROR, logger="ib_async")
    friday = pd.Timestamp("2019-06-28 10:00", tz=TZ)
    snap = chain(friday)
    am = snap.quotes.copy()
    am["root"] = "SPX"
    am = am[(am["strike"] == 2950.0) & (am["right"] == "C")]
    quotes = pd.concat([snap.quotes, am], ignore_index=True)
    friday_chain = ChainSnapshot("SPX", friday, SPOT, quotes)
    prints = pd.DataFrame(
        {"open": [2941.76, 2971.41], "close": [2941.76, 2964.33]},
        index=pd.DatetimeIndex([pd.Timestamp("2019-06-28"), pd.Timestamp(DAY)]),
    )
    fake = FakeTWS(
        cash=CASH, snapshots=[friday_chain], clock=friday, settlement_prices={"SPX": prints}
    )
    server, thread, port = serve(fake)
    try:
        venue = IBKRAdapter("SPX", port=port, client_id=5, poll_seconds=3600.0, sleep=fake.advance)
        OPEN.append(venue)
        store = LiveStore(venue, audit=AuditLog(tmp_path / "audit.jsonl", "am"), retry=FAST)
        broker = store.getbroker(
            commission_per_contract=fake.commission,
            fill_timeout=5.0,
            sleep=fake.advance,
            settlement_prices={"SPX": prints},
        )
        broker.setcash(CASH)
        broker.start()
        call = OptionContract("SPX", DAY, 2950.0, "C")  # type: ignore[arg-type]
        broker.execute_snapshot([(call, 1)], 1, venue.chain_snapshot("SPX", ["SPX"]))
        # by hand: the call's ask is max(2964 - 2950, 0) + 1 + 0.2 = 15.20
        assert broker.cash == pytest.approx(CASH - 1520.0 - fake.commission)
        venue.sync(pd.Timestamp(f"{DAY} 09:31", tz=TZ))  # over the weekend to Monday's open
        (record,) = broker.settle_due(venue.now())
        assert record.price_source == "open as SOQ proxy"
        (at_ib,) = fake.settlements
        assert at_ib["level"] == 2971.41 and at_ib["cash"] == pytest.approx(100 * (2971.41 - 2950))
        assert record.cash_flow == pytest.approx(at_ib["cash"])
        broker.stop()
        assert broker.reconciliations[-1].clean, broker.reconciliations[-1].summary()
        assert broker.cash == pytest.approx(fake.cash)
    finally:
        stop(server, thread)
    assert not [r for r in caplog.records if "Error handling fields" in r.getMessage()]
