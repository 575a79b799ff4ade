"""The Alpaca adapter against a local fake of Alpaca's REST API (``conftest.py``), never the
internet: request bodies, response shapes (checked with alpaca-py's own response models),
fault injection (timeout after the order was accepted, 429, 500, dropped connection) ending with
no duplicate order and positions reconciled, the kill switch, and key hygiene.

References: the JSON fields of Alpaca's API reference (order: ``order_class``, ``legs[].symbol,
ratio_qty, side, position_intent``, ``limit_price``, ``client_order_id``), alpaca-py's ``Order``,
``Position``, ``TradeAccount``, ``Clock``, ``OptionsSnapshot`` models (maintained by Alpaca), and
the fake's own book (ask for buys, bid for sells), computed by hand below.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fake_alpaca import KEY, SECRET, Fault, occ

from brokers import OptionsBroker, OrderRejected
from brokers.live import (
    AuditLog,
    KillSwitch,
    LiveStore,
    OrderLeg,
    OrderRequest,
    RetryPolicy,
    RiskLimits,
    VenueRejected,
    parse_occ_symbol,
)
from brokers.live.alpaca import AlpacaAdapter
from data_feeds.contracts import OptionContract
from strategies import ComboSpec, OptionStrategy

pytestmark = pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning")

FAST = RetryPolicy(max_attempts=5, backoff=0.0, max_backoff=0.0)


def adapter(url: str, **kw) -> AlpacaAdapter:
    return AlpacaAdapter(
        "SPY", base_url=url, data_url=url, timeout=(1.0, 0.3), poll_seconds=0.0, **kw
    )


def live_broker(url: str, tmp_path, **kw):
    venue = adapter(url)
    audit = AuditLog(tmp_path / "audit.jsonl", "t1")
    store = LiveStore(venue, audit=audit, retry=FAST, session="t1", **kw)
    broker = store.getbroker(commission_per_contract=0.0, fill_timeout=0.0, sleep=lambda s: None)
    broker.setcash(100_000.0)
    broker.start()
    return venue, store, broker


def near_expiry() -> dt.date:
    return dt.date.today() + dt.timedelta(days=3)


def spy(strike: float, right: str) -> OptionContract:
    return OptionContract("SPY", near_expiry(), strike, right)


# -- wire format -----------------------------------------------------------------------------------
def test_order_bodies_follow_the_api_reference(fake_alpaca) -> None:
    _, url = fake_alpaca
    venue = adapter(url)
    call, put = spy(580, "C"), spy(580, "P")
    straddle = OrderRequest(
        "vs-x-00001", (OrderLeg(call, 1), OrderLeg(put, 1)), 2, limit_price=8.123
    )
    body = venue.order_body(straddle)
    exp = near_expiry()
    assert body == {
        "qty": 2.0,
        "type": "limit",
        "time_in_force": "day",
        "order_class": "mleg",
        "client_order_id": "vs-x-00001",
        "limit_price": 8.13,  # rounded up to the cent: marketable direction
        "legs": [
            {
                "symbol": occ("SPY", exp, "C", 580),
                "ratio_qty": 1.0,
                "side": "buy",
                "position_intent": "buy_to_open",
            },
            {
                "symbol": occ("SPY", exp, "P", 580),
                "ratio_qty": 1.0,
                "side": "buy",
                "position_intent": "buy_to_open",
            },
        ],
    }
    close = OrderRequest("vs-x-00002", (OrderLeg(call, -1, closes=True),), 1, limit_price=-4.057)
    body = venue.order_body(close)
    assert body == {
        "symbol": occ("SPY", exp, "C", 580),
        "qty": 1.0,
        "side": "sell",
        "type": "limit",
        "time_in_force": "day",
        "client_order_id": "vs-x-00002",
        "position_intent": "sell_to_close",
        "limit_price": 4.05,  # a sell's limit rounds down
    }


def test_fake_bodies_parse_with_alpaca_py_models(fake_alpaca) -> None:
    """The fake speaks Alpaca's shapes: every body validates with alpaca-py's response models."""
    import requests
    from alpaca.data.models.snapshots import OptionsSnapshot
    from alpaca.trading.models import Clock, Order, Position, TradeAccount

    fake, url = fake_alpaca
    h = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    venue = adapter(url)
    c = spy(580, "C")
    venue.submit_order(OrderRequest("vs-p-00001", (OrderLeg(c, 1),), 1, 5.0))
    venue.submit_order(
        OrderRequest("vs-p-00002", (OrderLeg(spy(575, "P"), 1), OrderLeg(spy(585, "C"), 1)), 1, 9)
    )
    TradeAccount(**requests.get(f"{url}/v2/account", headers=h, timeout=2).json())
    Clock(**requests.get(f"{url}/v2/clock", headers=h, timeout=2).json())
    for raw in requests.get(f"{url}/v2/positions", headers=h, timeout=2).json():
        assert Position(**raw).asset_class.value == "us_option"
    orders = [Order(**raw) for raw in fake.orders.values()]
    assert [o.order_class.value for o in orders] == ["simple", "mleg"]
    assert orders[1].symbol is None and len(orders[1].legs) == 2
    snaps = requests.get(f"{url}/v1beta1/options/snapshots/SPY", headers=h, timeout=2).json()
    for sym, raw in snaps["snapshots"].items():
        assert OptionsSnapshot(sym, raw).latest_quote.ask_price > 0


def test_chain_snapshot_pages_and_parses(fake_alpaca) -> None:
    fake, url = fake_alpaca
    fake.page_size = 3  # force several pages
    snap = adapter(url, max_dte=5).chain_snapshot("SPY")
    # max_dte=5 keeps the near expiry only: 5 strikes x 2 rights, over 4 pages
    assert len(snap.quotes) == 10
    assert snap.underlying_price == 580.0
    row = snap.row(spy(585, "P"))
    assert (row["bid"], row["ask"]) == fake.quotes[occ("SPY", near_expiry(), "P", 585)]
    assert sum(1 for m, p in fake.requests if p.startswith("/v1beta1/options")) == 4


def test_occ_symbols_of_the_api_reference() -> None:
    # examples from Alpaca's options docs
    c = parse_occ_symbol("AAPL250321C00150000")
    assert (c.root, c.expiration, c.strike, c.right) == ("AAPL", dt.date(2025, 3, 21), 150.0, "C")
    assert c.settlement == "physical" and c.style == "american"
    p = parse_occ_symbol("SPY240119P00450500")
    assert (p.strike, p.right, p.settlement) == (450.5, "P", "physical")
    with pytest.raises(ValueError, match="not an OCC option symbol"):
        parse_occ_symbol("SPY")


# -- orders through the live broker ----------------------------------------------------------------
def test_straddle_fills_at_the_touch(fake_alpaca, tmp_path) -> None:
    fake, url = fake_alpaca
    venue, _, broker = live_broker(url, tmp_path)
    snap = venue.chain_snapshot("SPY")
    call, put = spy(580, "C"), spy(580, "P")
    fills = broker.execute_snapshot([(call, 1), (put, 1)], 2, snap, tag="straddle")
    ask_c = fake.quotes[occ("SPY", near_expiry(), "C", 580)][1]
    ask_p = fake.quotes[occ("SPY", near_expiry(), "P", 580)][1]
    assert [(f.quantity, f.price) for f in fills] == [(2, ask_c), (2, ask_p)]
    assert broker.cash == pytest.approx(100_000.0 - 200 * (ask_c + ask_p))
    assert broker.cash == pytest.approx(fake.cash)
    assert {str(c): p.quantity for c, p in broker.option_positions.items()} == {
        str(call): 2,
        str(put): 2,
    }
    body = fake.bodies[-1]
    assert body["order_class"] == "mleg" and body["qty"] == 2.0


FAULTS = ["timeout_after_accept", "429", "500", "500_after_accept", "drop", "drop_after_accept"]


@pytest.mark.parametrize("kind", FAULTS)
def test_fault_on_submit_never_doubles_the_order(fake_alpaca, tmp_path, kind: str) -> None:
    fake, url = fake_alpaca
    venue, _, broker = live_broker(url, tmp_path)
    snap = venue.chain_snapshot("SPY")
    fake.faults.append(Fault(kind))
    fills = broker.execute_snapshot([(spy(580, "C"), 1)], 1, snap, tag="one call")
    assert len(fills) == 1
    assert len(fake.orders) == 1, fake.client_ids()  # the venue booked exactly one order
    assert fake.posts() >= 2 if kind in ("429", "500", "drop") else fake.posts() >= 1
    assert fake.signed_positions() == {occ("SPY", near_expiry(), "C", 580): 1}
    assert {c: p.quantity for c, p in broker.option_positions.items()} == {spy(580, "C"): 1}
    assert broker.cash == pytest.approx(fake.cash)
    events = [r["event"] for r in broker.audit.records]
    assert "retry" in events or "order_status" in events
    if kind.startswith("drop") or kind.startswith("timeout"):
        # a dropped connection / timeout is a reconnect: reconciled right after the order
        assert broker.reconciliations[-1].when == "reconnect"
        assert broker.reconciliations[-1].clean


def test_a_session_of_faults_ends_without_duplicates_and_reconciled(fake_alpaca, tmp_path) -> None:
    fake, url = fake_alpaca
    venue, _, broker = live_broker(url, tmp_path)
    snap = venue.chain_snapshot("SPY")
    strikes = [570.0, 575.0, 580.0, 585.0, 590.0, 570.0]
    for kind, strike in zip(FAULTS, strikes, strict=True):
        fake.faults.append(Fault(kind))
        broker.execute_snapshot([(spy(strike, "P"), 1)], 1, snap, tag=kind)
    fake.faults.append(Fault("drop", "GET", "/v2/positions"))
    broker.execute_snapshot([(spy(590, "C"), -1)], 1, snap, tag="clean")
    ids = fake.client_ids()
    assert len(ids) == len(set(ids)) == 7  # seven orders intended, seven at the venue
    assert fake.posts() >= 7 + 3  # the 429, 500 and drop attempts were re-sent
    expected = {occ("SPY", near_expiry(), "P", k): 0 for k in strikes}
    for k in strikes:
        expected[occ("SPY", near_expiry(), "P", k)] += 1
    expected[occ("SPY", near_expiry(), "C", 590)] = -1
    assert fake.signed_positions() == expected
    broker.stop()
    last = broker.reconciliations[-1]
    assert last.when == "end" and last.clean, last.summary()


def test_reconnect_reconciles_a_change_made_at_the_venue(fake_alpaca, tmp_path) -> None:
    """While the connection was down, the venue closed a position (e.g. an exercise): after the
    reconnect the book follows the venue, and the audit log says what changed."""
    fake, url = fake_alpaca
    venue, _, broker = live_broker(url, tmp_path)
    snap = venue.chain_snapshot("SPY")
    broker.execute_snapshot([(spy(580, "C"), 1), (spy(580, "P"), 1)], 1, snap)
    sym_c = occ("SPY", near_expiry(), "C", 580)
    with fake.lock:
        del fake.positions[sym_c]
        fake.cash += 250.0
    fake.fill = False  # a working order the broker polls on every tick
    order = broker.place_order([(spy(570, "P"), 1)], 1, 0.05)
    fake.faults.append(Fault("drop", "GET", "/v2/orders/"))
    broker.on_tick()  # polls the order: the first attempt is dropped, the retry succeeds
    broker.on_tick()  # the reconnect is noticed: reconcile
    assert {c: p.quantity for c, p in broker.option_positions.items()} == {spy(580, "P"): 1}
    assert broker.cash == pytest.approx(fake.cash)
    rec = [r for r in broker.reconciliations if r.when == "reconnect"][-1]
    assert [(d.symbol, d.kind, d.local_quantity, d.venue_quantity) for d in rec.position_diffs] == [
        (sym_c, "missing_at_venue", 1, 0)
    ]
    assert order.client_order_id in fake.client_ids()


def test_start_up_adopts_positions_and_open_orders(fake_alpaca, tmp_path) -> None:
    fake, url = fake_alpaca
    fake.fill = False
    fake.new_order(
        {
            "symbol": occ("SPY", near_expiry(), "P", 570),
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "time_in_force": "day",
            "limit_price": 0.5,
            "client_order_id": "earlier-session-1",
        }
    )
    fake.book(occ("SPY", near_expiry(), "C", 585), -3, 2.1)
    _, _, broker = live_broker(url, tmp_path)
    first = broker.reconciliations[0]
    assert first.when == "start-up"
    assert first.adopted_orders == ["earlier-session-1"]
    assert {c: p.quantity for c, p in broker.option_positions.items()} == {spy(585, "C"): -3}
    assert broker.option_positions[spy(585, "C")].avg_price == pytest.approx(2.1)


# -- safety ----------------------------------------------------------------------------------------
def test_oversized_order_is_rejected_before_the_venue(fake_alpaca, tmp_path) -> None:
    fake, url = fake_alpaca
    venue, _, broker = live_broker(url, tmp_path, limits=RiskLimits(max_contracts_per_order=5))
    snap = venue.chain_snapshot("SPY")
    with pytest.raises(OrderRejected, match="max_contracts_per_order 5"):
        broker.execute_snapshot([(spy(580, "C"), 1)], 6, snap)
    assert fake.posts() == 0
    (rej,) = broker.audit.events("rejection")
    assert "6 contracts > max_contracts_per_order 5" in rej["reason"]


def test_kill_switch_cancels_and_flattens_at_alpaca(fake_alpaca, tmp_path) -> None:
    fake, url = fake_alpaca
    switch = KillSwitch(tmp_path / "KILL")
    venue, _, broker = live_broker(url, tmp_path, kill_switch=switch)
    snap = venue.chain_snapshot("SPY")
    broker.execute_snapshot([(spy(580, "C"), 1), (spy(580, "P"), 1)], 1, snap)
    fake.fill = False
    resting = broker.place_order([(spy(570, "P"), 1)], 1, 0.05, tag="resting bid")
    assert resting.is_open
    fake.fill = True
    switch.trigger("test")
    broker.on_tick()
    assert broker.killed
    assert fake.orders[resting.order_id]["status"] == "canceled"
    assert fake.signed_positions() == {}
    assert broker.option_positions == {}
    with pytest.raises(OrderRejected, match="kill switch"):
        broker.execute_snapshot([(spy(575, "C"), 1)], 1, snap)
    events = [r["event"] for r in broker.audit.records]
    assert events.index("kill_switch") < events.index("cancel")


def test_keys_come_from_the_environment_and_are_never_written(
    fake_alpaca, tmp_path, monkeypatch
) -> None:
    _, url = fake_alpaca
    venue, _, broker = live_broker(url, tmp_path)
    broker.execute_snapshot([(spy(580, "C"), 1)], 1, venue.chain_snapshot("SPY"))
    broker.stop()
    broker.audit.close()
    assert SECRET not in (tmp_path / "audit.jsonl").read_text()
    assert KEY not in (tmp_path / "audit.jsonl").read_text()
    assert SECRET not in repr(venue)
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(VenueRejected, match="APCA_API_SECRET_KEY") as err:
        adapter(url).account()
    assert KEY not in str(err.value)


BAD_BASE = [
    "https://api.alpaca.markets",  # live trading
    "https://paper-api.evil.example",  # starts like Alpaca's host
    "https://paper-api.alpaca.markets.evil.example",  # ends elsewhere
    "https://evil.example/paper-api.alpaca.markets",
    "https://paper-api.alpaca.markets@evil.example",  # user info: the host is evil.example
    "http://paper-api.alpaca.markets",  # keys in clear text
    "https://paper-api.alpaca.markets:8443",
    "https://paper-api.alpaca.markets/v2",  # a path
    "https://data.alpaca.markets",  # the data host is not the trading host
    "https://127.0.0.1.evil.example",
    "ftp://127.0.0.1",
]


@pytest.mark.parametrize("url", BAD_BASE)
def test_keys_go_only_to_the_exact_paper_host(url: str) -> None:
    from brokers.live.alpaca import UnsafeEndpoint
    from data_feeds.errors import VolsuiteError

    with pytest.raises(UnsafeEndpoint, match=r"\[broker.alpaca\] base_url = .*paper-api") as err:
        AlpacaAdapter("SPY", base_url=url)
    assert isinstance(err.value, VolsuiteError) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    ["https://data.evil.example", "https://paper-api.alpaca.markets", "http://data.alpaca.markets"],
)
def test_data_url_is_checked_too(url: str) -> None:
    from brokers.live.alpaca import UnsafeEndpoint

    with pytest.raises(UnsafeEndpoint, match=r"data_url = .*https://data.alpaca.markets"):
        AlpacaAdapter("SPY", data_url=url)


def test_the_exact_hosts_and_loopback_are_accepted() -> None:
    venue = AlpacaAdapter("SPY")
    assert (venue.base_url, venue.data_url) == (
        "https://paper-api.alpaca.markets",
        "https://data.alpaca.markets",
    )
    for url in (
        "http://127.0.0.1:8123",
        "http://localhost:9/",
        "https://PAPER-API.alpaca.markets/",
    ):
        assert AlpacaAdapter("SPY", base_url=url).base_url in (
            "http://127.0.0.1:8123",
            "http://localhost:9",
            "https://paper-api.alpaca.markets",
        )


@pytest.mark.parametrize("stray", ["\r", " ", "\n", "\t"])
def test_a_key_with_a_stray_character_is_refused_without_showing_it(
    fake_alpaca, monkeypatch, stray: str
) -> None:
    fake, url = fake_alpaca
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET + stray)
    with pytest.raises(VenueRejected, match="APCA_API_SECRET_KEY contains whitespace") as err:
        adapter(url).account()
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    assert fake.requests == []  # nothing was sent


def test_scrub_secrets_removes_every_form_of_a_key(monkeypatch) -> None:
    from brokers.live.safety import scrub_secrets

    monkeypatch.setenv("APCA_API_KEY_ID", "AKID1234")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cr3t-value\r")
    text = (
        "Invalid return character or leading space in header: APCA-API-SECRET-KEY "
        "'s3cr3t-value\\r' key AKID1234 and s3cr3t-value"
    )
    out = scrub_secrets(text)
    assert "s3cr3t" not in out and "AKID1234" not in out
    assert out.count("***") == 3
    assert scrub_secrets("nothing secret here") == "nothing secret here"


# -- the same strategy class, live on the fake venue -----------------------------------------------
class BuyThenClose(OptionStrategy):
    """Buy the ATM straddle of the expiry nearest 3 days on the first bar, close it on the third."""

    def next_chain(self, snapshot) -> None:
        n = len(self)
        if n == 1:
            self.open_combo(ComboSpec(kind="straddle", root="SPY", target_dte=3), 1, tag="s")
        elif n == 3:
            self.close_all()


def test_option_strategy_runs_unchanged_on_alpaca(fake_alpaca, tmp_path) -> None:
    import backtrader as bt

    fake, url = fake_alpaca
    venue = adapter(url, max_ticks=4)
    store = LiveStore(venue, retry=FAST, session="t2")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(store.getdata("SPY", roots=["SPY"], target_dte=3, far_dte=10))
    broker = store.getbroker(commission_per_contract=0.0, fill_timeout=0.0)
    broker.setcash(100_000.0)
    cerebro.setbroker(broker)
    cerebro.addstrategy(BuyThenClose)
    (strat,) = cerebro.run()
    assert isinstance(broker, OptionsBroker)
    assert [(f.contract.strike, f.contract.right, f.quantity) for f in broker.option_fills] == [
        (580.0, "C", 1),
        (580.0, "P", 1),
        (580.0, "C", -1),
        (580.0, "P", -1),
    ]
    # bought at the asks, sold at the bids: the round trip loses both spreads (0.10 each) x 100
    assert broker.getvalue() == pytest.approx(100_000.0 - 2 * 0.10 * 100)
    assert fake.signed_positions() == {} and len(fake.orders) == 2
    assert strat.rejections == []


def test_the_fake_venue_refuses_a_duplicate_client_order_id_as_alpaca_does(fake_alpaca) -> None:
    """Alpaca answers HTTP 422 ``client_order_id must be unique`` to a second order under an id
    it has seen; the fake does the same (and books nothing), and the adapter raises
    ``DuplicateClientOrderId``."""
    from brokers.live.adapter import DuplicateClientOrderId

    fake, url = fake_alpaca
    venue = adapter(url)
    order = OrderRequest("vs-dup-0001", (OrderLeg(spy(580, "C"), 1),), 1, 5.0)
    venue.submit_order(order)
    with pytest.raises(DuplicateClientOrderId, match=r"client_order_id must be unique"):
        venue.submit_order(order)
    assert fake.client_ids() == ["vs-dup-0001"] and fake.posts() == 2
    assert fake.signed_positions() == {occ("SPY", near_expiry(), "C", 580): 1}
