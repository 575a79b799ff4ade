"""Theta Data v3 backfill against a fake terminal serving the shipped 2019 SPXW rows.

Reference: the source rows themselves (the shipped parquet, read independently of the client)
and hand facts (2019-07-03 closed at 13:00 ET; 2019-07-04 was a holiday).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from vendor_fakes import DAYS, FakeThetaTerminal, Fault

from data_feeds.chain_store import ChainStore
from data_feeds.errors import DataSourceError
from data_feeds.vendors import RawCache, RetryPolicy
from data_feeds.vendors.jobs import JobState, backfill_chains, backfill_underlying
from data_feeds.vendors.thetadata import ThetaTerminalClient

pytestmark = pytest.mark.shared_data

START, END = DAYS[0], DAYS[-1]


def client(fake: FakeThetaTerminal, cache: Path | None, **kw: object) -> ThetaTerminalClient:
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, sleep=lambda s: None)
    return ThetaTerminalClient(
        fake.url + "/v3",
        concurrency=2,
        timeout=kw.pop("timeout", 5.0),  # type: ignore[arg-type]
        retry=kw.pop("retry", retry),  # type: ignore[arg-type]
        cache=RawCache(cache) if cache is not None else None,
    )


def stored(store: ChainStore) -> pd.DataFrame:
    return store.connection.execute(
        "SELECT * FROM raw_options_chains ORDER BY quote_date, expiration_date, strike, option_type"
    ).df()


def assert_matches_source(store: ChainStore, src: pd.DataFrame) -> pd.DataFrame:
    """Every source row stored once with the same values; nothing else stored."""
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
    for theirs, ours in (
        ("bid_src", "bid"),
        ("ask_src", "ask"),
        ("last_src", "last"),
        ("volume_src", "volume"),
        ("openinterest", "open_interest"),
        ("impliedvol", "implied_volatility"),
        ("delta_src", "delta"),
        ("gamma_src", "gamma"),
        ("underlying_last", "underlying_price"),
    ):
        np.testing.assert_array_equal(
            m[theirs].to_numpy(float), m[ours].to_numpy(float), err_msg=ours
        )
    return got


def test_backfill_stores_exactly_the_source_rows(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    c = client(theta, tmp_path / "cache")
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(c, store, "SPXW", START, END, cache_dir=tmp_path / "cache")
        assert [d.day for d in rep.days] == DAYS  # 07-04 (holiday) never asked for
        assert rep.count("stored") == 10
        assert rep.rows == len(src)
        got = assert_matches_source(store, src)
        per_day = got.groupby("quote_date").size()
        assert per_day.to_dict() == src.groupby("quotedate").size().to_dict()
        times = got.groupby("quote_date")["quote_time"].unique()
        assert [str(t) for t in times[dt.date(2019, 7, 3)]] == ["13:00:00"]  # early close
        assert [str(t) for t in times[dt.date(2019, 6, 24)]] == ["16:00:00"]
        assert got["root"].unique().tolist() == ["SPXW"]
        assert got["underlying"].unique().tolist() == ["SPX"]
        assert all(d.missing_expiries == 0 for d in rep.days)
    # 10 rows a page: a day's 24 rows take 3 pages followed by Next-Page
    assert len(theta.requests_for("/greeks/eod", start_date="20190624")) == 3
    assert not theta.requests_for("/greeks/eod", start_date="20190704")


def test_backfill_is_idempotent(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    with ChainStore(tmp_path / "s.duckdb") as store:
        backfill_chains(
            client(theta, tmp_path / "c1"), store, "SPXW", START, END, cache_dir=tmp_path / "c1"
        )
        before = stored(store)
        # a fresh cache: every day re-fetched over HTTP, nothing written
        n_req = len(theta.log)
        rep = backfill_chains(
            client(theta, tmp_path / "c2"), store, "SPXW", START, END, cache_dir=tmp_path / "c2"
        )
        assert len(theta.log) > n_req
        assert rep.count("unchanged") == 10
        after = stored(store)
        pd.testing.assert_frame_equal(before, after)
        # the same cache: nothing re-downloaded at all
        n_req = len(theta.log)
        c3 = client(theta, tmp_path / "c1")
        rep3 = backfill_chains(c3, store, "SPXW", START, END, cache_dir=tmp_path / "c1")
        assert rep3.count("unchanged") == 10
        assert rep3.requests_sent == 0 and len(theta.log) == n_req
        assert rep3.cache_hits > 0
        # the vendor corrects one quote: that day (only) is replaced
        theta.rows.loc[theta.rows.index[0], "bid"] = float(theta.rows["bid"].iloc[0]) + 0.05
        rep4 = backfill_chains(
            client(theta, None), store, "SPXW", START, END, cache_dir=tmp_path / "c4"
        )
        assert rep4.count("replaced") == 1 and rep4.count("unchanged") == 9
        assert len(stored(store)) == len(src)


def test_resume_after_a_crash_does_not_refetch_finished_dates(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    class Crash(RuntimeError):
        pass

    def crash_after_five(res: object, done: int, total: int) -> None:
        if done == 5:
            raise Crash("killed")

    cache = tmp_path / "cache"
    with ChainStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(Crash):
            backfill_chains(
                client(theta, cache),
                store,
                "SPXW",
                START,
                END,
                cache_dir=cache,
                on_day=crash_after_five,
            )
        state = JobState.for_job(cache, "thetadata", "SPXW", "eod")
        assert sorted(state.done) == DAYS[:5]
        theta.log.clear()
        rep = backfill_chains(
            client(theta, None), store, "SPXW", START, END, cache_dir=cache, resume=True
        )
        assert [d.status for d in rep.days] == ["skipped"] * 5 + ["stored"] * 5
        for day in DAYS[:5]:
            assert not theta.requests_for("/greeks/eod", start_date=f"{day:%Y%m%d}")
            assert not theta.requests_for("/open_interest", date=f"{day:%Y%m%d}")
        for day in DAYS[5:]:
            assert theta.requests_for("/greeks/eod", start_date=f"{day:%Y%m%d}")
        assert_matches_source(store, src)


def test_survives_every_fault(theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path) -> None:
    d = [f"{x:%Y%m%d}" for x in DAYS]
    theta.faults = [
        Fault("429", "/greeks/eod", {"start_date": d[0]}, times=2, retry_after="3"),
        Fault("500", "/greeks/eod", {"start_date": d[1]}),
        Fault("timeout", "/greeks/eod", {"start_date": d[2]}),
        Fault("truncated", "/greeks/eod", {"start_date": d[3]}),
        Fault("bad_json", "/open_interest", {"date": d[4]}),  # a CSV cut at a matching length
        Fault("500", "/open_interest", {"date": d[7]}, times=3),  # the early-close day
    ]
    theta.timeout_sleep = 4.0
    waits: list[float] = []
    retry = RetryPolicy(max_attempts=5, base_delay=0.25, sleep=waits.append)
    c = client(theta, tmp_path / "cache", timeout=1.5, retry=retry)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(c, store, "SPXW", START, END, cache_dir=tmp_path / "cache")
        assert rep.count("stored") == 10, rep.summary()
        assert_matches_source(store, src)
    assert all(f.hits == f.times for f in theta.faults)
    # Retry-After honoured (3 s twice); others exponential from 0.25 s: 0.25, 0.5, 1.0
    assert sorted(waits).count(3.0) == 2
    # each injected fault's waits; a request slowed past the timeout by a loaded machine may
    # add a retry (more waits), never fewer
    rest = sorted(w for w in waits if w != 3.0)
    for w in [0.25] * 4 + [0.25, 0.5, 1.0]:
        rest.remove(w)  # ValueError when a fault was not retried


def test_a_day_without_data_is_reported_and_retried_later(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    gap = f"{DAYS[6]:%Y%m%d}"
    theta.faults = [Fault("empty", "/greeks/eod", {"start_date": gap}, times=-1)]
    cache = tmp_path / "cache"
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(client(theta, cache), store, "SPXW", START, END, cache_dir=cache)
        assert [r.day for r in rep.days if r.status == "empty"] == [DAYS[6]]
        assert rep.count("stored") == 9
        assert DAYS[6] not in JobState.for_job(cache, "thetadata", "SPXW", "eod").done
        theta.faults = []
        theta.log.clear()
        rep2 = backfill_chains(
            client(theta, cache), store, "SPXW", START, END, cache_dir=cache, resume=True
        )
        assert [r.day for r in rep2.days if r.status == "stored"] == [DAYS[6]]
        assert {r.path for r in theta.log} <= {
            "/v3/option/history/greeks/eod",
            "/v3/option/history/open_interest",
            "/v3/option/list/expirations",
        }
        assert_matches_source(store, src)


def test_a_day_failing_every_retry_is_reported_and_the_job_goes_on(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    bad = f"{DAYS[2]:%Y%m%d}"
    theta.faults = [Fault("500", "/greeks/eod", {"start_date": bad}, times=-1)]
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_chains(
            client(theta, None), store, "SPXW", START, END, cache_dir=tmp_path / "c"
        )
        failed = [r for r in rep.days if r.status == "failed"]
        assert [r.day for r in failed] == [DAYS[2]]
        assert "gave up after 4 attempts" in failed[0].error and "HTTP 500" in failed[0].error
        assert rep.count("stored") == 9
        assert len(stored(store)) == len(src[src["quotedate"] != DAYS[2]])
    assert len(theta.requests_for("/greeks/eod", start_date=bad)) == 4


def test_next_page_to_another_host_and_redirects_are_refused(
    theta: FakeThetaTerminal, tmp_path: Path
) -> None:
    theta.faults = [Fault("redirect", "/greeks/eod", location="http://127.0.0.2:9/x", times=-1)]
    c = client(theta, None)
    with pytest.raises(DataSourceError, match=r"redirect .* refused"):
        c.option_eod_greeks("SPXW", DAYS[0])


def test_underlying_bars(theta: FakeThetaTerminal, spx_bars: pd.DataFrame, tmp_path: Path) -> None:
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = backfill_underlying(client(theta, None), store, "SPX", START, END)
        assert rep.added == 10  # sessions; the holiday has no bar in the source
        ohlc = store.underlying_ohlc("SPX")
        want = spx_bars.loc[DAYS]
        np.testing.assert_array_equal(ohlc["close"].to_numpy(), want["Close"].to_numpy(float))
        np.testing.assert_array_equal(ohlc["high"].to_numpy(), want["High"].to_numpy(float))
        rep2 = backfill_underlying(client(theta, None), store, "SPX", START, END)
        assert rep2.unchanged == 10


def test_minute_chain_matches_the_shipped_minute_bars(
    shared_data: Path, spx_bars: pd.DataFrame, tmp_path: Path
) -> None:
    """``--interval 1m``: Theta's interval quotes (last NBBO at each minute) built from the
    shipped Lean minute bars of SPXW on 2021-01-04; crossed bars are quarantined, the rest stored
    at bar start + 1 minute with the bar's closing bid/ask."""
    from vendor_fakes import minute_rows

    mins = minute_rows(shared_data)
    day = dt.date(2021, 1, 4)
    want = mins[(mins["root"] == "SPXW") & (mins["date"] == day)].copy()
    fake = FakeThetaTerminal(want.iloc[:0], spx_bars, minutes=mins)  # no EOD rows
    try:
        with ChainStore(tmp_path / "m.duckdb") as store:
            rep = backfill_chains(
                client(fake, None), store, "SPXW", day, day, cache_dir=tmp_path / "c", interval="1m"
            )
            got = store.connection.execute(
                "SELECT expiration_date, strike, option_type, quote_time, bid, ask "
                "FROM raw_options_chains"
            ).df()
            quar = store.quarantine()
    finally:
        fake.close()
    bid = want["bid_close"].fillna(0.0)  # no bid (size 0) is a 0 bid
    crossed = int((bid > want["ask_close"]).sum())
    assert rep.days[0].status == "stored" and rep.rows == len(want)
    assert len(quar) == crossed and set(quar["reason"]) <= {"crossed quote"}
    assert len(got) == len(want) - crossed
    w = want.assign(bid=bid)[bid <= want["ask_close"]]
    w_key = sorted(
        zip(
            w["expiration"],
            w["strike"],
            w["right"],
            [(dt.datetime.combine(day, t) + dt.timedelta(minutes=1)).time() for t in w["time_et"]],
            w["bid"],
            w["ask_close"],
            strict=True,
        )
    )
    g_key = sorted(
        zip(
            pd.to_datetime(got["expiration_date"]).dt.date,
            got["strike"],
            got["option_type"],
            got["quote_time"],
            got["bid"],
            got["ask"],
            strict=True,
        )
    )
    assert g_key == w_key


def test_a_half_day_never_silently_replaces_a_stored_day(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    """The vendor later serves only half of a stored day's rows: refused (reported ``failed``,
    store unchanged) unless replace_dates, which then stores exactly the half."""
    day = DAYS[3]
    with ChainStore(tmp_path / "s.duckdb") as store:
        backfill_chains(client(theta, None), store, "SPXW", START, END, cache_dir=tmp_path / "c")
        before = stored(store)
        theta.faults = [Fault("half", "/greeks/eod", {"start_date": f"{day:%Y%m%d}"}, times=-1)]
        rep = backfill_chains(
            client(theta, None), store, "SPXW", day, day, cache_dir=tmp_path / "c"
        )
        assert rep.days[0].status == "failed" and "refusing to replace" in rep.days[0].error
        pd.testing.assert_frame_equal(before, stored(store))
        rep2 = backfill_chains(
            client(theta, None),
            store,
            "SPXW",
            day,
            day,
            cache_dir=tmp_path / "c",
            replace_dates=True,
        )
        assert rep2.days[0].status == "replaced"
        n_day = int((src["quotedate"] == day).sum())
        got = stored(store)
        assert int((pd.to_datetime(got["quote_date"]).dt.date == day).sum()) == n_day // 2
        assert len(got) == len(src) - (n_day - n_day // 2)
