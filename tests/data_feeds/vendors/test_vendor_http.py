"""Retry/backoff rules and the raw cache (no network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from data_feeds.errors import DataSourceError
from data_feeds.vendors import RawCache, RetriesExhaustedError, RetryPolicy, TransientVendorError
from data_feeds.vendors._http import parse_retry_after
from data_feeds.vendors.cache import cache_key
from data_feeds.vendors.thetadata import normalize_theta_eod


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    # RFC 9110 10.2.3 example date, 60 s after "now"
    now = dt.datetime(2015, 10, 21, 7, 27, tzinfo=dt.UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:26:00 GMT", now=now) == 0.0


def test_backoff_schedule_and_exhaustion() -> None:
    waits: list[float] = []
    pol = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=5.0, sleep=waits.append)
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise TransientVendorError("429", retry_after=30.0)
        raise TransientVendorError("500")

    with pytest.raises(RetriesExhaustedError, match="gave up after 5 attempts; last: 500"):
        pol.call(flaky, "x")
    # 1 s, then Retry-After 30 capped at 5, then 4, 8 -> 5 (capped)
    assert waits == [1.0, 5.0, 4.0, 5.0]
    assert calls["n"] == 5


def test_permanent_errors_are_not_retried() -> None:
    pol = RetryPolicy(sleep=lambda s: None)
    calls = {"n": 0}

    def bad() -> None:
        calls["n"] += 1
        raise DataSourceError("HTTP 403")

    with pytest.raises(DataSourceError, match="403"):
        pol.call(bad, "x")
    assert calls["n"] == 1


def test_cache_roundtrip_and_key(tmp_path: Path) -> None:
    c = RawCache(tmp_path)
    assert c.get("v", "/p", {"a": 1}) is None
    c.put("v", "/p", {"a": 1, "b": "x"}, b"body\r\n", next_page="http://h/n")
    hit = c.get("v", "/p", {"b": "x", "a": 1})  # parameter order does not matter
    assert hit is not None and hit.body == b"body\r\n" and hit.next_page == "http://h/n"
    assert (c.hits, c.misses, c.writes) == (1, 1, 1)
    assert cache_key("v", "/p", {"a": 1}) != cache_key("v", "/p", {"a": 2})


def test_theta_eod_without_required_columns_names_them() -> None:
    raw = pd.DataFrame({"expiration": ["2019-06-28"], "strike": ["2900.000"], "right": ["CALL"]})
    with pytest.raises(DataSourceError, match=r"lacks column\(s\) \['bid', 'ask'\]"):
        normalize_theta_eod(raw, pd.DataFrame(), "SPXW", dt.date(2019, 6, 24))
