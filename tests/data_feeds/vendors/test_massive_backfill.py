"""Massive backfill through the official ``massive`` client pointed at a fake API (its ``base``
option), serving the shipped 2019 SPXW rows; key handling; the straddle OHLC of design doc 003.

References: the source rows (read independently), the shipped SPX index file for the underlying
close, hand facts (2019-07-03 closed at 13:00 ET), a simulated intraday path for the straddle
bounds.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from vendor_fakes import DAYS, FakeMassive, Fault, occ_ticker

from data_feeds.chain_store import ChainStore
from data_feeds.errors import DataSourceError
from data_feeds.vendors import RawCache, RetryPolicy
from data_feeds.vendors.jobs import JobState, backfill_chains, backfill_underlying
from data_feeds.vendors.massive_client import MassiveChainClient, straddle_ohlc

START, END = DAYS[0], DAYS[-1]
KEY = "mk-test-DO-NOT-LEAK-4f2a9c"


def client(fake: FakeMassive, cache: Path | None, **kw: object) -> MassiveChainClient:
    retry = kw.pop("retry", RetryPolicy(max_attempts=4, base_delay=0.01, sleep=lambda s: None))
    return MassiveChainClient(
        KEY,
        base_url=fake.url,
        concurrency=4,
        timeout=kw.pop("timeout", 5.0),  # type: ignore[arg-type]
        retry=retry,  # type: ignore[arg-type]
        cache=RawCache(cache) if cache is not None else None,
        page_limit=10,
    )


def stored(store: ChainStore) -> pd.DataFrame:
    return store.connection.execute(
        "SELECT * FROM raw_options_chains ORDER BY quote_date, expiration_date, strike, option_type"
    ).df()


def assert_matches_source(store: ChainStore, src: pd.DataFrame, bars: pd.DataFrame) -> None:
    got = stored(store)
    assert len(got) == len(src)
    assert store.connection.execute("SELECT count(*) FROM quarantined_quotes").fetchone()[0] == 0
    got["quote_date"] = pd.to_datetime(got["quote_date"]).dt.date
    got["expiration_date"] = pd.to_datetime(got["expiration_date"]).dt.date
    s = src.assign(option_type=src["type"].str[0].str.upper())
    m = s.merge(
        got,
        left_on=["quotedate", "expiration", "strike", "option_type"],
        right_on=["quote_date", "expiration_date", "strike", "option_type"],
        how="outer",
        indicator=True,
        suffixes=("_src", ""),
    )
    assert (m["_merge"] == "both").all()
    for theirs, ours in (("bid_src", "bid"), ("ask_src", "ask"), ("volume_src", "volume")):
        np.testing.assert_array_equal(m[theirs].to_numpy(float), m[ours].to_numpy(float))
    traded = m["volume_src"] > 0
    np.testing.assert_array_equal(m.loc[traded, "last_src"], m.loc[traded, "last"])
    assert m.loc[~traded, "last"].isna().all()  # no bar that day: no last trade, not 0
    want_spot = bars.loc[list(m["quotedate"]), "Close"].to_numpy(float)
    np.testing.assert_array_equal(m["underlying_price"].to_numpy(float), want_spot)
    tickers = [
        occ_ticker("SPXW", e, t, k)
        for e, t, k in zip(m["expiration"], m["type"], m["strike"], strict=True)
    ]
    assert m["symbol"].tolist() == tickers
    for col in ("open_interest", "implied_volatility", "delta", "gamma"):
        assert m[col].isna().all(), col  # Massive's historical REST has none
    t = m.groupby("quote_date")["quote_time"].unique()
    assert [str(x) for x in t[dt.date(2019, 7, 3)]] == ["13:00:00"]
    assert [str(x) for x in t[dt.date(2019, 6, 24)]] == ["16:00:00"]


def test_backfill_stores_exactly_the_source_rows(
    massive: FakeMassive, src: pd.DataFrame, spx_bars: pd.DataFrame, tmp_path: Path
) -> None:
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(
            client(massive, tmp_path / "c"), store, "SPXW", START, END, cache_dir=tmp_path / "c"
        )
        assert rep.count("stored") == 10 and rep.rows == len(src)
        assert_matches_source(store, src, spx_bars)
    # 24 contracts a day, 10 a page: 3 pages
    assert len(massive.requests_for("/v3/reference/options/contracts", as_of="2019-06-24")) == 3


def test_backfill_is_idempotent_and_cached(
    massive: FakeMassive, src: pd.DataFrame, spx_bars: pd.DataFrame, tmp_path: Path
) -> None:
    with ChainStore(tmp_path / "s.duckdb") as store:
        backfill_chains(
            client(massive, tmp_path / "c1"), store, "SPXW", START, END, cache_dir=tmp_path / "c1"
        )
        before = stored(store)
        rep = backfill_chains(
            client(massive, tmp_path / "c2"), store, "SPXW", START, END, cache_dir=tmp_path / "c2"
        )
        assert rep.count("unchanged") == 10 and rep.requests_sent > 0
        pd.testing.assert_frame_equal(before, stored(store))
        n = len(massive.log)
        rep3 = backfill_chains(
            client(massive, tmp_path / "c1"), store, "SPXW", START, END, cache_dir=tmp_path / "c1"
        )
        assert rep3.count("unchanged") == 10
        assert rep3.requests_sent == 0 and len(massive.log) == n


def test_resume_after_a_crash_does_not_refetch_finished_dates(
    massive: FakeMassive, src: pd.DataFrame, spx_bars: pd.DataFrame, tmp_path: Path
) -> None:
    class Crash(RuntimeError):
        pass

    def crash(res: object, done: int, total: int) -> None:
        if done == 4:
            raise Crash("killed")

    cache = tmp_path / "cache"
    with ChainStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(Crash):
            backfill_chains(
                client(massive, cache), store, "SPXW", START, END, cache_dir=cache, on_day=crash
            )
        assert sorted(JobState.for_job(cache, "massive", "SPXW", "eod").done) == DAYS[:4]
        massive.log.clear()
        rep = backfill_chains(
            client(massive, None), store, "SPXW", START, END, cache_dir=cache, resume=True
        )
        assert [d.status for d in rep.days] == ["skipped"] * 4 + ["stored"] * 6
        for day in DAYS[:4]:
            iso = day.isoformat()
            assert not massive.requests_for("/contracts", as_of=iso)
            assert not massive.requests_for(f"/range/1/day/{iso}/{iso}")
        assert_matches_source(store, src, spx_bars)


def test_survives_every_fault(
    massive: FakeMassive, src: pd.DataFrame, spx_bars: pd.DataFrame, tmp_path: Path
) -> None:
    r = src.iloc[0]
    t0 = occ_ticker("SPXW", r["expiration"], r["type"], r["strike"])
    r5 = src[src["quotedate"] == DAYS[5]].iloc[3]
    t5 = occ_ticker("SPXW", r5["expiration"], r5["type"], r5["strike"])
    d2, d7 = DAYS[2].isoformat(), DAYS[7].isoformat()
    massive.faults = [
        Fault("429", "/contracts", {"as_of": DAYS[0].isoformat()}, times=2, retry_after="7"),
        Fault("500", f"/v3/quotes/{t0}"),
        Fault("timeout", f"/range/1/day/{d2}/{d2}", times=1),
        Fault("truncated", f"/v3/quotes/{t5}"),
        Fault("bad_json", "/contracts", {"as_of": DAYS[8].isoformat()}),
        Fault("500", f"/I:SPX/range/1/day/{d7}/{d7}", times=3),  # the early-close day
    ]
    massive.timeout_sleep = 4.0
    retry = RetryPolicy(max_attempts=5, base_delay=0.25, sleep=(waits := []).append)
    c = client(massive, tmp_path / "c", timeout=1.5, retry=retry)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(c, store, "SPXW", START, END, cache_dir=tmp_path / "c")
        assert rep.count("stored") == 10, rep.summary()
        assert_matches_source(store, src, spx_bars)
    assert all(f.hits == f.times for f in massive.faults)
    assert sorted(waits).count(7.0) == 2  # Retry-After honoured
    # each injected fault's waits; a request slowed past the timeout by a loaded machine may
    # add a retry (more waits), never fewer
    rest = sorted(w for w in waits if w != 7.0)
    for w in [0.25] * 4 + [0.25, 0.5, 1.0]:
        rest.remove(w)  # ValueError when a fault was not retried


def test_key_only_to_the_configured_host_never_logged_never_across_a_redirect(
    massive: FakeMassive,
    src: pd.DataFrame,
    spx_bars: pd.DataFrame,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = FakeMassive(src, spx_bars)
    try:
        caplog.set_level(logging.DEBUG)
        cache = tmp_path / "cache"
        c = client(massive, cache)
        assert KEY not in repr(c)
        with ChainStore(tmp_path / "s.duckdb") as store:
            backfill_chains(c, store, "SPXW", START, DAYS[1], cache_dir=cache)
            backfill_underlying(c, store, "SPX", START, DAYS[1])
        massive.faults = [Fault("redirect", "/contracts", location=other.url + "/steal", times=-1)]
        with pytest.raises(DataSourceError, match="redirect") as err:
            client(massive, None).contracts("SPXW", DAYS[3])
        assert KEY not in str(err.value)
        assert other.log == []  # nothing (and no key) ever reached the redirect target
        hosts = {r.host for r in massive.log}
        assert hosts == {f"127.0.0.1:{massive.port}"}
        assert {r.headers.get("Authorization") for r in massive.log} == {f"Bearer {KEY}"}
        out = capsys.readouterr()
        assert KEY not in caplog.text and KEY not in out.out and KEY not in out.err
        for f in [*cache.rglob("*"), tmp_path / "s.duckdb"]:
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f
    finally:
        other.close()


def test_no_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    with pytest.raises(DataSourceError, match="MASSIVE_API_KEY"):
        MassiveChainClient(base_url="http://127.0.0.1:9")


def test_underlying_bars(massive: FakeMassive, spx_bars: pd.DataFrame, tmp_path: Path) -> None:
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_underlying(client(massive, None), store, "SPX", START, END)
        assert rep.added == 10
        ohlc = store.underlying_ohlc("SPX")
        want = spx_bars.loc[DAYS]
        np.testing.assert_array_equal(ohlc["close"].to_numpy(), want["Close"].to_numpy(float))
        np.testing.assert_array_equal(ohlc["low"].to_numpy(), want["Low"].to_numpy(float))


def test_straddle_ohlc_hand_example() -> None:
    # call (open 10, high 14, low 9, close 12), put (open 8, high 9, low 5, close 6)
    s = straddle_ohlc((10.0, 14.0, 9.0, 12.0), (8.0, 9.0, 5.0, 6.0))
    assert s["open"] == 18.0 and s["close"] == 18.0
    assert s["high_max"] == 23.0  # 14 + 9: only if both peaked together
    assert s["high_min"] == 19.0  # max(18, 18, 14 + 5, 9 + 9)
    assert s["low_min"] == 14.0  # 9 + 5
    assert s["low_max"] == 18.0  # min(18, 18, 19, 18)
    assert (s["high"], s["low"]) == (19.0, 18.0)  # design doc 003's formulas
    with pytest.raises(ValueError, match="call bar is inconsistent"):
        straddle_ohlc((10.0, 9.0, 8.0, 9.5), (8.0, 9.0, 5.0, 6.0))


def test_straddle_bounds_contain_the_true_high_and_low() -> None:
    """Simulated minute paths of a call and a put on one underlying path: the straddle's true
    OHLC (from the summed path) lies inside the bounds built from the legs' OHLC only."""
    rng = np.random.default_rng(7)
    tight_high = 0
    for _ in range(200):
        s = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 390)))
        k = 100.0
        call = np.maximum(s - k, 0) + 0.5 + rng.normal(0, 0.02, 390).cumsum() * 0.01
        put = np.maximum(k - s, 0) + 0.5 + rng.normal(0, 0.02, 390).cumsum() * 0.01
        leg = lambda x: (x[0], x.max(), x.min(), x[-1])  # noqa: E731
        b = straddle_ohlc(leg(call), leg(put))
        st = call + put
        assert b["open"] == pytest.approx(st[0]) and b["close"] == pytest.approx(st[-1])
        assert b["high_min"] - 1e-12 <= st.max() <= b["high_max"] + 1e-12
        assert b["low_min"] - 1e-12 <= st.min() <= b["low_max"] + 1e-12
        tight_high += st.max() < b["high_max"] - 1e-9
    assert tight_high > 100  # summing the highs overstates the straddle's high most days


def test_a_quote_without_a_bid_is_quarantined_not_dropped(
    massive: FakeMassive, src: pd.DataFrame, tmp_path: Path
) -> None:
    """A quote whose ``bid_price`` is null (the official model keeps None): every row of the day
    reaches the store's quarantine with the reason, none is dropped or filled."""
    massive.extra_quote_fields = {"bid_price": None}
    day = DAYS[0]
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(
            client(massive, None), store, "SPXW", day, day, cache_dir=tmp_path / "c"
        )
        n = int((src["quotedate"] == day).sum())
        assert rep.days[0].rows == n and rep.days[0].quarantined == n
        q = store.quarantine()
        assert len(q) == n and set(q["reason"]) == {"missing required field: bid"}
        assert (
            store.connection.execute("SELECT count(*) FROM raw_options_chains").fetchone()[0] == 0
        )
