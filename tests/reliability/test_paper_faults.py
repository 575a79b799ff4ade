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
import itertools
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "brokers" / "live"))
from fake_alpaca import (
    KEY,
    SECRET,
    FakeAlpaca,
    _Handler,
    _Server,
    spy_chain,
)

from brokers import OptionsBroker, OrderRejected
from brokers.live import AuditLog, KillSwitch, LiveStore, RetryPolicy, VenueRejected, read_audit
from brokers.live.alpaca import AlpacaAdapter
from data_feeds.chain_feed import ChainFeed
from data_feeds.contracts import OptionContract
from strategies import ComboSpec, OptionStrategy
from strategies.base import CerebroSpec, StrategyParams, StrategyPlugin

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


# -- the `volsuite paper` command against the fake venue ------------------------------------------
class EnterWhenFlat(OptionStrategy):
    """Buy one ATM SPY straddle (about 3 days out) whenever the book holds no option: a strategy
    that re-enters only if it does not see the positions reconciliation adopted."""

    def next_chain(self, snapshot) -> None:
        if not self.obroker.option_positions:
            self.open_combo(ComboSpec(kind="straddle", root="SPY", target_dte=3), 1, tag="entry")


class NoParams(StrategyParams):
    """No parameters."""


class EnterWhenFlatPlugin(StrategyPlugin):
    """A paper-only plugin for these tests: :class:`EnterWhenFlat` on the venue's live SPY chain
    feed. Its :meth:`cerebro_spec` (the paper contract) names a SPY chain feed that the paper
    runner swaps for the store's live feed; it has no backtest."""

    name = "enter_when_flat_test"
    description = "test: straddle when flat"
    Params = NoParams
    required_data = ()

    def prepare(self, data, grid) -> None:
        self.days = pd.DatetimeIndex(data["underlying"].index)

    def trading_days(self) -> pd.DatetimeIndex:
        return self.days

    def backtest(self, params, start, end, *, cash):
        raise TypeError("enter_when_flat_test is a paper-trading test plugin: no backtest")

    def data_fingerprint(self) -> str:
        return "enter_when_flat_test"

    def cerebro_spec(self, params, start, end, *, cash) -> CerebroSpec:
        # a SPY chain feed in name only: live_components replaces it by the venue's live feed
        feed = ChainFeed(dataname=pd.DataFrame({"close": [1.0]}, index=[pd.Timestamp(start)]))
        feed._chain_underlying, feed._chain_args = "SPY", {"roots": ["SPY"]}
        return CerebroSpec(EnterWhenFlat, [feed], OptionsBroker(), cash)


ALPACA_CONFIG = """
[experiment]
name = "paper_faults"
[data]
start = "2009-01-02"
end = "2009-12-31"
[data.underlying]
source = "builtin:sp500"
[strategy]
name = "enter_when_flat_test"
[broker]
kind = "alpaca-paper"
commission_per_contract = 0.0
[broker.alpaca]
base_url = "{base_url}"
data_url = "{data_url}"
poll_seconds = 0.2
fill_timeout_seconds = 0.0
request_timeout_seconds = 1.0
max_dte = 12
[broker.safety]
audit_dir = "{tmp}/paper"
kill_switch_file = "{tmp}/KILL"
max_retries = 2
backoff_seconds = 0.0
max_backoff_seconds = 0.0
[tracking]
results_dir = "{tmp}/results"
"""


@pytest.fixture
def plugin_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from strategies import STRATEGIES

    monkeypatch.setitem(STRATEGIES, EnterWhenFlatPlugin.name, EnterWhenFlatPlugin)


def alpaca_config(tmp: Path, base_url: str, data_url: str | None = None) -> Path:
    path = tmp / "alpaca.toml"
    path.write_text(ALPACA_CONFIG.format(base_url=base_url, data_url=data_url or base_url, tmp=tmp))
    return path


def cli() -> typer.Typer:
    from experiments.cli_paper import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps 'paper' a named sub-command
        pass

    return app


def soon(seconds: float) -> str:
    return (pd.Timestamp.now(tz="America/New_York") + pd.Timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("base_url", "https://paper-api.evil.example"),
        ("base_url", "https://paper-api.alpaca.markets.evil.example"),
        ("data_url", "https://data.evil.example"),
    ],
)
def test_bad_hosts_fail_at_start_with_one_line(
    venue_url, tmp_path, plugin_registered, field: str, url: str
) -> None:
    fake, good = venue_url
    config = alpaca_config(
        tmp_path, url if field == "base_url" else good, url if field == "data_url" else good
    )
    out = CliRunner().invoke(cli(), ["paper", str(config), "--no-live"])
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: [broker.alpaca] " + field), out.output
    assert "Traceback" not in out.output and fake.requests == []
    assert not (tmp_path / "paper").exists()


def test_a_redirect_is_an_error_and_keys_do_not_follow(venue_url) -> None:
    """The venue answers 307 to another host (here: a second local server reached as
    ``localhost``): the adapter does not follow, the other host receives nothing."""
    fake, url = venue_url
    quotes, _ = spy_chain(dt.date.today())
    elsewhere = FakeAlpaca(quotes=quotes, stock_price={"SPY": 580.0})
    server, thread = _serve(elsewhere)
    try:
        fake.redirect = f"http://localhost:{server.server_address[1]}"
        with pytest.raises(VenueRejected, match=r"HTTP 307 redirect to localhost/v2/account: not"):
            adapter(url).account()
        assert elsewhere.requests == [] and elsewhere.headers == []
        assert len(fake.requests) == 1  # asked once, not retried, not followed
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_resume_continues_a_session_without_re_entering(
    venue_url, tmp_path, plugin_registered
) -> None:
    fake, url = venue_url
    config = alpaca_config(tmp_path, url)
    runner = CliRunner()
    first = runner.invoke(cli(), ["paper", str(config), "--no-live", "--until", soon(6.0)])
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "paper").iterdir()
    assert len(fake.orders) == 1 and len(fake.signed_positions()) == 2  # one straddle
    straddle = fake.signed_positions()
    resumed = runner.invoke(
        cli(), ["paper", str(config), "--no-live", "--until", soon(4.0), "--resume", folder.name]
    )
    assert resumed.exit_code == 0, resumed.output
    assert [p.name for p in (tmp_path / "paper").iterdir()] == [folder.name]  # same session
    assert len(fake.orders) == 1 and fake.signed_positions() == straddle  # no second straddle
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["resumed"] is True and summary["orders"] == 0
    start = [r for r in read_audit(folder / "audit.jsonl").itertuples() if r.event == "reconcile"]
    adopted = [r for r in start if "missing_locally" in str(r.detail)]
    assert len(adopted) == 1  # the resumed run's start-up reconciliation adopted the straddle
    state = json.loads((folder / "state.json").read_text())
    assert state["running"] is False and state["resumed"] is True
    # a session that does not exist, or a replay, cannot be resumed
    missing = runner.invoke(cli(), ["paper", str(config), "--no-live", "--resume", "nope"])
    assert missing.exit_code == 2 and "no session nope under" in missing.output


def test_stop_without_a_running_session_says_so(tmp_path) -> None:
    out = CliRunner().invoke(cli(), ["paper", "stop", "--flag-file", str(tmp_path / "KILL")])
    assert out.exit_code == 0, out.output
    assert "no paper session running" in out.output
    assert "next tick" not in out.output
    assert KillSwitch(tmp_path / "KILL").engaged()  # the switch still latches


def _session_in_thread(config: Path, seconds: float):
    """Run the paper session of ``config`` in a thread (the session's process; the CLI runner is
    not thread-safe, so the session is run through ``build_session``); returns the thread and a
    list receiving the finished session (or its exception)."""
    from experiments.paper import build_session

    done: list = []

    def target() -> None:
        try:
            done.append(build_session(config, until=soon(seconds)).run())
        except Exception as exc:  # reported by the test
            done.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, done


def _wait_running(folder_root: Path, timeout: float = 20.0) -> None:
    import time

    from experiments.paper import running_sessions

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_sessions(folder_root):
            return
        time.sleep(0.05)
    raise AssertionError(f"no session started under {folder_root}")


def test_stop_reports_that_the_kill_completed(venue_url, tmp_path, plugin_registered) -> None:
    fake, url = venue_url
    config = alpaca_config(tmp_path, url)
    thread, done = _session_in_thread(config, 30.0)
    _wait_running(tmp_path / "paper")
    while len(fake.signed_positions()) < 2:  # the straddle is on
        threading.Event().wait(0.05)
    out = CliRunner().invoke(cli(), ["paper", "stop", "--config", str(config), "--wait", "20"])
    thread.join(timeout=30)
    assert out.exit_code == 0, out.output
    assert "kill switch complete: the venue confirms no open orders, no positions" in out.output
    (session,) = done
    assert session.broker.killed and session.broker.kill_complete
    assert fake.signed_positions() == {} and open_orders_at(fake) == []


def test_stop_reports_a_kill_the_venue_did_not_confirm(
    venue_url, tmp_path, plugin_registered
) -> None:
    """The venue's trading API goes down just before the stop (market data stays up, so the
    session keeps ticking and sees the flag): the session cannot cancel or flatten; the stop
    command says so (exit 3), and so does the session's summary."""
    fake, url = venue_url
    config = alpaca_config(tmp_path, url)
    thread, done = _session_in_thread(config, 30.0)
    _wait_running(tmp_path / "paper")
    while len(fake.signed_positions()) < 2:  # the straddle is on
        threading.Event().wait(0.05)
    fake.down, fake.down_paths = "503", ("/v2/orders", "/v2/positions")
    out = CliRunner().invoke(cli(), ["paper", "stop", "--config", str(config), "--wait", "20"])
    thread.join(timeout=30)
    assert out.exit_code == 3, out.output
    assert "kill switch NOT complete" in out.output and "HTTP 503" in out.output
    (session,) = done
    assert session.broker.killed and not session.broker.kill_complete
    from rich.console import Console

    from experiments.paper import status_renderable

    console = Console(record=True, width=250)
    console.print(status_renderable(session))
    assert "KILL NOT COMPLETE: venue: " in console.export_text()
    (folder,) = (tmp_path / "paper").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["kill_complete"] is False
    assert "book matches the venue" not in summary["reconciliations"][-1]
    fake.down = None
    assert len(fake.signed_positions()) == 2  # exactly what was reported: still there


# -- item 4: --speed and replay progress for a strategy on its own feed ---------------------------
@pytest.fixture
def zero_dte_config(tmp_path, shared_data):
    """The ``zero_dte_straddle`` replay config of ``tests/experiments/test_paper.py`` over
    2019-05-28 .. 06-07 on a slice of the real 2019 SPXW chains (its helpers are reused)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import test_paper

    db = test_paper.small_store.__wrapped__(shared_data, _Factory(tmp_path / "store"))
    return test_paper.write_config(tmp_path, db, shared_data)


class _Factory:
    """``tmp_path_factory.mktemp`` for one folder (the reused module fixture's argument)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True)
        return folder


TRADING_DAYS = ["2019-05-28", "2019-05-29", "2019-05-30", "2019-05-31"]
TRADING_DAYS += ["2019-06-03", "2019-06-04", "2019-06-05", "2019-06-06", "2019-06-07"]


@pytest.mark.shared_data
def test_speed_paces_zero_dte_straddle_and_status_shows_progress(zero_dte_config) -> None:
    from rich.console import Console

    from experiments.paper import build_session, replay_progress, status_renderable

    waits: list[float] = []
    seen: list[tuple[float, str]] = []

    def on_bar(session) -> None:
        console = Console(record=True, width=200)
        console.print(status_renderable(session))
        seen.append((replay_progress(session)["done"], console.export_text()))

    # 86,400 recorded seconds per wall second: one wall second per calendar day between bars
    session = build_session(zero_dte_config, speed=86_400, sleep=waits.append, on_bar=on_bar)
    session.run()
    bars = [pd.Timestamp(d) for d in TRADING_DAYS]
    gaps = [(b - a).days for a, b in itertools.pairwise(bars)]
    assert gaps == [1, 1, 1, 3, 1, 1, 1, 1]  # the weekend of June 1-2 (hand count)
    assert session.waited == pytest.approx(gaps)
    assert waits[: len(gaps)] == pytest.approx(gaps)  # the waits went to the sleep function
    # progress: the share of the window's 9 daily snapshots (15:45) passed; a daily bar counts
    # as its whole session (to 16:00), so after the k-th day's bar, k of 9
    fractions = [f for f, _ in seen]
    assert fractions == pytest.approx([k / 9 for k in range(1, 10)])
    assert replay_progress(session) == {
        "clock": "2019-06-07T16:00:00-04:00",
        "start": "2019-05-28T15:45:00-04:00",
        "end": "2019-06-07T15:45:00-04:00",
        "snapshots_done": 9,
        "snapshots": 9,
        "done": 1.0,
    }
    assert "of the window (" in seen[2][1] and "replay 2019-05-30" in seen[2][1]
    state = json.loads((session.folder / "state.json").read_text())
    assert state["running"] is False and state["replay"]["done"] == 1.0


@pytest.mark.shared_data
def test_speed_zero_does_not_wait(zero_dte_config) -> None:
    from experiments.paper import build_session

    waits: list[float] = []
    session = build_session(zero_dte_config, speed=0, sleep=waits.append)
    session.run()
    assert session.waited == [] and waits == []


@pytest.mark.parametrize("stray", ["\r", " "])
def test_a_key_with_a_stray_character_never_reaches_the_cli_output(
    venue_url, tmp_path, plugin_registered, monkeypatch, stray: str
) -> None:
    """The issue's case: a secret with a stray carriage return used to come back inside the
    exception text the CLI printed. Now: one line naming the variable, no key, nothing sent."""
    fake, url = venue_url
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET + stray)
    out = CliRunner().invoke(cli(), ["paper", str(alpaca_config(tmp_path, url)), "--no-live"])
    assert out.exit_code == 2, out.output
    assert SECRET not in out.output and KEY not in out.output
    (error,) = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert "APCA_API_SECRET_KEY contains whitespace or a control character" in error
    assert fake.requests == []
