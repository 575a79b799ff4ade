"""Safety rules on their own: pre-trade checks, retries with backoff, client order ids, the kill
switch file, reconciliation diffs, OCC symbols and the audit log. Expected values are hand
calculations written in the tests (and DuckDB's JSON reader for the audit file)."""

from __future__ import annotations

import datetime as dt
import json
import math

import duckdb
import pytest

from brokers.live import (
    AuditLog,
    KillSwitch,
    RetryPolicy,
    RiskLimits,
    TransientVenueError,
    VenueRejected,
    client_order_id,
    occ_symbol,
    parse_occ_symbol,
    pre_trade_check,
    read_audit,
)
from brokers.live.adapter import VenuePosition
from brokers.live.safety import (
    call_with_retries,
    decision_key,
    diff_positions,
    new_session_id,
)
from data_feeds.contracts import OptionContract

EXP = dt.date(2021, 1, 6)
C3800 = OptionContract("SPXW", EXP, 3800.0, "C")
P3700 = OptionContract("SPXW", EXP, 3700.0, "P")
SPY_C = OptionContract("SPY", dt.date(2024, 1, 19), 450.0, "C")


def check(legs, positions=None, prices=None, **limits):
    return pre_trade_check(
        legs,
        positions=positions or {},
        underlying_prices=prices or {"SPX": 3700.0, "SPY": 450.0},
        limits=RiskLimits(**limits),
    )


def test_max_contracts_per_order() -> None:
    assert check([(C3800, 10), (P3700, 10)], max_contracts_per_order=10) is None
    reason = check([(C3800, 11), (P3700, 1)], max_contracts_per_order=10)
    assert reason == "pre-trade: SPXW 2021-01-06 3800C 11 contracts > max_contracts_per_order 10"
    assert check([(C3800, -11)], max_contracts_per_order=10) is not None  # sells count too


def test_closing_orders_are_never_trapped_by_size_limits() -> None:
    held = {C3800: -25}
    assert check([(C3800, 25)], positions=held, max_contracts_per_order=10) is None
    # crossing through zero is not a pure close
    assert check([(C3800, 26)], positions=held, max_contracts_per_order=10) is not None
    # roots are still checked on closes
    assert check([(C3800, 25)], positions=held, allowed_roots=frozenset({"SPY"})) is not None


def test_max_open_positions_counts_legs_after_the_order() -> None:
    held = {C3800: 1, P3700: 1}
    other = OptionContract("SPXW", EXP, 3750.0, "C")
    assert check([(other, 1)], positions=held, max_open_positions=3) is None
    assert check([(other, 1)], positions=held, max_open_positions=2) == (
        "pre-trade: 3 open legs after the order > max_open_positions 2"
    )
    # a leg that closes frees a slot in the same order
    assert check([(other, 1), (C3800, -1)], positions=held, max_open_positions=2) is None


def test_max_notional_is_underlying_notional() -> None:
    # 2 legs x 1 contract x 100 x 3,700 = $740,000
    assert check([(C3800, 1), (P3700, 1)], max_notional=740_000.0) is None
    assert check([(C3800, 1), (P3700, 1)], max_notional=739_999.0) == (
        "pre-trade: order notional $740,000 > max_notional $739,999"
    )
    # unknown underlying price: refused, not guessed
    reason = check([(C3800, 1)], prices={"SPY": 450.0}, max_notional=1e9)
    assert reason is not None and "no SPX price" in reason


def test_allowed_roots() -> None:
    assert check([(SPY_C, 1)], allowed_roots=frozenset({"spy"})) is None  # case-insensitive
    assert "not in allowed_roots ['SPY']" in check([(C3800, 1)], allowed_roots=frozenset({"SPY"}))


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_contracts_per_order"):
        RiskLimits(max_contracts_per_order=0)
    with pytest.raises(ValueError, match="max_notional"):
        RiskLimits(max_notional=-1.0)
    with pytest.raises(ValueError, match="allowed_roots"):
        RiskLimits(allowed_roots=frozenset())


def test_backoff_delays_are_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=7, backoff=0.5, multiplier=2.0, max_backoff=8.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(1, retry_after=3.0) == 3.0  # the venue's Retry-After wins when longer
    assert policy.delay(1, retry_after=60.0) == 8.0  # but is capped


def test_call_with_retries_retries_transient_errors_only() -> None:
    waits: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientVenueError("HTTP 503")
        return "ok"

    policy = RetryPolicy(max_attempts=5, backoff=0.1, multiplier=3.0)
    assert call_with_retries(flaky, policy, sleep=waits.append) == "ok"
    assert waits == pytest.approx([0.1, 0.3])
    with pytest.raises(TransientVenueError):
        call_with_retries(
            lambda: (_ for _ in ()).throw(TransientVenueError("down")),
            RetryPolicy(max_attempts=2, backoff=0.0),
            sleep=waits.append,
        )

    def refused() -> None:
        raise VenueRejected("insufficient buying power", status=403)

    n_waits = len(waits)
    with pytest.raises(VenueRejected):
        call_with_retries(refused, policy, sleep=waits.append)
    assert len(waits) == n_waits  # never retried


def test_client_order_ids_are_deterministic_per_run_strategy_and_decision() -> None:
    import hashlib

    session = new_session_id()
    assert len(session) == 18
    t = dt.datetime(2021, 1, 4, 9, 45, tzinfo=dt.UTC)
    key = decision_key(t, [(C3800, 1), (P3700, 1)], 2, "open")
    # the key lists the legs in a fixed order: the same decision however the legs are ordered
    assert key == decision_key(t, [(P3700, 1), (C3800, 1)], 2, "open")
    assert key == (
        "2021-01-04T09:45:00+00:00|SPXW 2021-01-06 3700P:+1,SPXW 2021-01-06 3800C:+1|x2|open|#1"
    )
    # the id: 16 hex digits of SHA-256 over strategy, unit separator, key (hashlib by hand)
    digest = hashlib.sha256(("zero_dte_straddle\x1f" + key).encode()).hexdigest()[:16]
    cid = client_order_id(session, "zero_dte_straddle", key)
    assert cid == f"vs-{session}-{digest}" and len(cid) == 38 <= 48
    assert cid == client_order_id(session, "zero_dte_straddle", key)  # a restart: same id
    others = {
        client_order_id(new_session_id() + "x", "zero_dte_straddle", key),  # another run
        client_order_id(session, "vrp_harvest", key),  # another strategy
        client_order_id(session, "zero_dte_straddle", key.replace("x2", "x1")),
        client_order_id(session, "zero_dte_straddle", key.replace("#1", "#2")),
        client_order_id(session, "zero_dte_straddle", key.replace("09:45", "09:46")),
    }
    assert cid not in others and len(others) == 5
    with pytest.raises(ValueError, match="longer than 48"):
        client_order_id("x" * 40, "s", key)
    with pytest.raises(ValueError, match="only letters"):
        client_order_id("a b", "s", key)


def test_kill_switch_file(tmp_path) -> None:
    switch = KillSwitch(tmp_path / "paper" / "KILL")
    assert not switch.engaged() and switch.state() == {}
    switch.trigger("risk desk", flatten=False)
    assert switch.engaged()
    state = switch.state()
    assert state["reason"] == "risk desk" and state["flatten"] is False
    (tmp_path / "paper" / "KILL").write_text("")  # an empty file still stops trading
    assert switch.engaged() and switch.state() == {}
    assert switch.clear() and not switch.engaged() and not switch.clear()


def test_diff_positions() -> None:
    a, b, c = "SPY240119C00450000", "SPY240119P00440000", "SPY"
    venue = [VenuePosition(a, 2, 3.1), VenuePosition(c, 100, 450.0)]
    diffs = diff_positions({a: 1, b: -1}, venue)
    assert [(d.symbol, d.kind, d.local_quantity, d.venue_quantity) for d in diffs] == [
        (c, "missing_locally", 0, 100),
        (a, "quantity", 1, 2),
        (b, "missing_at_venue", -1, 0),
    ]
    assert diff_positions({a: 2, c: 100}, venue) == []


def test_occ_symbol_round_trip() -> None:
    # OCC OSI example: SPY 2024-01-19 450 call; SPXW weeklies keep their root
    assert occ_symbol(SPY_C) == "SPY240119C00450000"
    assert occ_symbol(C3800) == "SPXW210106C03800000"
    back = parse_occ_symbol("SPXW210106C03800000")
    assert back == C3800 and back.settlement == "PM"
    assert occ_symbol(OptionContract("SPY", EXP, 392.5, "P")) == "SPY210106P00392500"
    with pytest.raises(ValueError, match="does not fit"):
        occ_symbol(OptionContract("SPY", EXP, 1.2345, "P"))


def test_audit_log_is_jsonl_readable_by_duckdb(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "s1")
    log.write("order_submitted", None, client_order_id="vs-s1-00001", limit_price=1.25)
    log.write("rejection", dt.datetime(2021, 1, 4, 9, 31), reason="pre-trade: x", price=math.nan)
    log.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    assert json.loads(lines[1])["price"] is None  # NaN is written as null, valid JSON
    frame = read_audit(path)
    assert list(frame["event"]) == ["order_submitted", "rejection"]
    rows = duckdb.sql(f"SELECT event, reason FROM read_json_auto('{path}') ORDER BY seq").fetchall()
    assert rows == [("order_submitted", None), ("rejection", "pre-trade: x")]
    with pytest.raises(ValueError, match="unknown audit event"):
        AuditLog(None, "s1").write("oops", None)
