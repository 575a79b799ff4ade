"""The DuckDB chain store: idempotent and atomic ingest, partition replacement, the snapshot
queries, underlying bars, info, the CLI -- and the known facts of the real option files in
``../shared/data/options``, each checked against an independent read of the raw file (a separate
DuckDB query or the ``csv`` module), never against the store's own code."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data_feeds.chain_ingest import ChainIngestConfig
from data_feeds.chain_store import (
    SCHEMA_VERSION,
    ChainStore,
    ReplaceRefusedError,
    SnapshotNotFoundError,
    StoreKeyError,
)
from data_feeds.chains import QUOTE_COLUMNS
from data_feeds.errors import DataSourceError, DataValidationError, VolsuiteError

HEADER = (
    "underlying,underlying_last, exchange,optionroot,type,expiration,quotedate,strike,last,bid,"
    "ask,volume,openinterest,impliedvol,delta,gamma"
).split(",")
LEAN_HEADER = (
    "date,time_et,root,expiration,strike,right,style,bid_open,bid_high,bid_low,bid_close,"
    "bid_size,ask_open,ask_high,ask_low,ask_close,ask_size"
).split(",")
TABLES = ("raw_options_chains", "quarantined_quotes", "chain_partitions", "underlying_prices")


def spy(day: str, strike: int, kind: str, bid: float, ask: float) -> list[str]:
    """A vendor row of SPY expiring 2021-01-29 (spot 368.79)."""
    right = kind[0].upper()
    symbol = f"SPY210129{right}{strike * 1000:08d}"
    return ["SPY", "368.79", "*", symbol, kind, "2021-01-29", day, str(strike), "1",
            str(bid), str(ask), "100", "1000", "0.2", "0.5", "0.01"]  # fmt: skip


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def version1(path: Path) -> Path:
    """Two quote dates, three rows each; one crossed quote on the second date (row 6)."""
    return write(
        path,
        [
            spy("2021-01-04", 370, "call", 5.0, 5.2),
            spy("2021-01-04", 370, "put", 6.1, 6.3),
            spy("2021-01-04", 375, "call", 3.0, 3.1),
            spy("2021-01-05", 370, "call", 5.5, 5.7),
            spy("2021-01-05", 370, "put", 5.9, 6.1),
            spy("2021-01-05", 375, "call", 3.6, 3.4),
        ],
    )


def version2(path: Path) -> Path:
    """Version 1 with the second date corrected (crossed quote fixed, one bid changed)."""
    return write(
        path,
        [
            spy("2021-01-04", 370, "call", 5.0, 5.2),
            spy("2021-01-04", 370, "put", 6.1, 6.3),
            spy("2021-01-04", 375, "call", 3.0, 3.1),
            spy("2021-01-05", 370, "call", 5.45, 5.7),
            spy("2021-01-05", 370, "put", 5.9, 6.1),
            spy("2021-01-05", 375, "call", 3.3, 3.4),
        ],
    )


def checksum(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    """Row count and an order-free hash of every row, per table (plain SQL, not store code)."""
    out = {}
    for t in (*TABLES, "ingest_log"):
        n, h = con.execute(f"SELECT count(*), CAST(sum(hash(t)) AS VARCHAR) FROM {t} t").fetchall()[
            0
        ]
        out[t] = (int(n), str(h))
    return out


@pytest.fixture
def store(tmp_path: Path):
    with ChainStore(tmp_path / "chains.duckdb") as s:
        yield s


# -- idempotency and atomicity --------------------------------------------------------------------
def test_second_ingest_adds_nothing(store: ChainStore, tmp_path: Path) -> None:
    f = version1(tmp_path / "chain.csv")
    r1 = store.ingest(f, "vendor")
    assert (r1.rows_read, r1.rows_added, r1.rows_quarantined) == (6, 5, 1)
    assert r1.quarantined_by_reason == {"crossed quote": 1}
    assert (r1.partitions_new, r1.partitions_replaced, r1.partitions_unchanged) == (2, 0, 0)
    before = checksum(store.connection)
    r2 = store.ingest(f, "vendor")
    assert (r2.rows_added, r2.rows_replaced, r2.rows_unchanged, r2.rows_deleted) == (0, 0, 5, 0)
    assert r2.rows_quarantined == 1  # still found in the file, not written again
    assert (r2.partitions_new, r2.partitions_replaced, r2.partitions_unchanged) == (0, 0, 2)
    after = checksum(store.connection)
    assert {t: after[t] for t in TABLES} == {t: before[t] for t in TABLES}
    log = store.ingest_log()
    assert log["rows_added"].tolist() == [5, 0] and log["rows_unchanged"].tolist() == [0, 5]
    assert log["sha256"].nunique() == 1 and len(log["sha256"].iloc[0]) == 64


def test_corrected_file_replaces_exactly_its_changed_partitions(
    store: ChainStore, tmp_path: Path
) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    store.ingest(version1(tmp_path / "v1" / "chain.csv"), "vendor")
    stamps = dict(
        store.connection.execute(
            "SELECT quote_date, min(ingestion_timestamp) FROM raw_options_chains GROUP BY 1"
        ).fetchall()
    )
    rep = store.ingest(version2(tmp_path / "v2" / "chain.csv"), "vendor")
    assert (rep.partitions_new, rep.partitions_replaced, rep.partitions_unchanged) == (0, 1, 1)
    assert (rep.rows_added, rep.rows_replaced, rep.rows_unchanged) == (0, 3, 3)
    assert rep.rows_deleted == 3  # two stored + one quarantined row of 2021-01-05
    assert rep.rows_quarantined == 0
    assert store.table_counts()["quarantined_quotes"] == 0  # its quarantine rows went too
    assert store.table_counts()["raw_options_chains"] == 6
    new_stamps = dict(
        store.connection.execute(
            "SELECT quote_date, min(ingestion_timestamp) FROM raw_options_chains GROUP BY 1"
        ).fetchall()
    )
    assert new_stamps[dt.date(2021, 1, 4)] == stamps[dt.date(2021, 1, 4)]  # untouched
    assert new_stamps[dt.date(2021, 1, 5)] > stamps[dt.date(2021, 1, 5)]
    snap = store.snapshot("SPY", "2021-01-05")
    assert snap.quotes["bid"].tolist() == [5.45, 5.9, 3.3]


def test_another_file_with_the_same_partition_replaces_it(store: ChainStore, tmp_path: Path):
    store.ingest(version1(tmp_path / "a.csv"), "vendor")
    b = write(tmp_path / "b.csv", [spy("2021-01-05", 380, "call", 1, 1.1)])
    before = checksum(store.connection)
    # one row for a stored day of 2 rows: refused with the counts unless replace_dates (issue 17)
    with pytest.raises(
        ReplaceRefusedError,
        match=r"SPY 2021-01-05: stored 3 rows \(2 valid, 1 quarantined.* has 1 \(1 valid",
    ):
        store.ingest(b, "vendor")
    assert checksum(store.connection) == before
    rep = store.ingest(b, "vendor", replace_dates=True)
    assert rep.partitions_replaced == 1 and rep.replaced_sources == ["vendor:a.csv"]
    rows = store.connection.execute(
        "SELECT quote_date, data_source, count(*) FROM raw_options_chains GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert rows == [
        (dt.date(2021, 1, 4), "vendor:a.csv", 3),
        (dt.date(2021, 1, 5), "vendor:b.csv", 1),
    ]


@pytest.mark.parametrize("first", [True, False])
def test_crash_after_the_delete_leaves_the_store_as_it_was(
    store: ChainStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: bool
) -> None:
    (tmp_path / "v2").mkdir()
    if not first:
        store.ingest(version1(tmp_path / "chain.csv"), "vendor")
    before = checksum(store.connection)
    seen = {}

    def boom(self: ChainStore, data_source: str, now: dt.datetime) -> None:
        # inside the transaction, after the delete of the replaced partition
        seen["rows"] = self.connection.execute(
            "SELECT count(*) FROM raw_options_chains"
        ).fetchall()[0][0]
        raise RuntimeError("disk full")

    monkeypatch.setattr(ChainStore, "_insert_rows", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        store.ingest(version2(tmp_path / "v2" / "chain.csv"), "vendor")
    if not first:
        assert seen["rows"] == 3  # the 2021-01-05 partition had been deleted
    assert checksum(store.connection) == before
    monkeypatch.undo()
    rep = store.ingest(version2(tmp_path / "v2" / "chain.csv"), "vendor")  # works afterwards
    assert rep.rows_replaced + rep.rows_added == (6 if first else 3)


def test_unparseable_key_rows_are_scoped_to_their_file(store: ChainStore, tmp_path: Path):
    rows = [spy("2021-01-04", 370, "call", 5.0, 5.2), spy("not a date", 371, "call", 5.0, 5.2)]
    f = write(tmp_path / "k.csv", rows)
    store.ingest(f, "vendor")
    q = store.quarantine("unparseable field")
    assert q["reason"].tolist() == ["unparseable field: quote_date"]
    assert q["partition_key"].tolist() == ["unkeyed|vendor:k.csv"]
    assert store.ingest(f, "vendor").rows_added == 0
    assert store.table_counts()["quarantined_quotes"] == 1  # not duplicated
    write(tmp_path / "k.csv", rows[:1])  # corrected file: the unkeyed quarantine row goes
    rep = store.ingest(f, "vendor")
    assert rep.rows_deleted == 1 and store.table_counts()["quarantined_quotes"] == 0


# -- queries --------------------------------------------------------------------------------------
def lean(t: str, root: str, strike: str, right: str, bid: str, ask: str) -> list[str]:
    return ["2021-01-04", t, root, "2021-01-15", strike, right, "european",
            bid, bid, bid, bid, "5", ask, ask, ask, ask, "5"]  # fmt: skip


@pytest.fixture
def minute_store(store: ChainStore, tmp_path: Path) -> ChainStore:
    """SPX bars at 09:30, 09:31 and SPXW bars at 09:30, 09:32 (quote times = bar + 1 minute)."""
    rows = [
        lean("09:30", "SPX", "3700", "C", "80.1", "82.0"),
        lean("09:30", "SPX", "3700", "P", "12.0", "18.0"),  # 40 % spread: illiquid
        lean("09:31", "SPX", "3700", "C", "80.5", "82.5"),
        lean("09:30", "SPXW", "3700", "C", "79.0", "81.0"),
        lean("09:32", "SPXW", "3700", "C", "78.0", "80.0"),
        lean("09:32", "SPXW", "3650", "P", "10.0", "10.5"),
    ]
    store.ingest(write(tmp_path / "m.csv", rows, LEAN_HEADER), "lean-minute")
    return store


def test_snapshot_time_resolution(minute_store: ChainStore) -> None:
    s = minute_store
    hm = lambda snap: snap.quote_time.strftime("%H:%M")  # noqa: E731
    assert s.quote_dates("SPX") == [dt.date(2021, 1, 4)]
    assert s.quote_dates("SPX", roots=["SPXW"]) == [dt.date(2021, 1, 4)]
    assert s.quote_dates("SPX", roots=["SPY"]) == [] and s.quote_dates("SPY") == []
    assert [t.strftime("%H:%M") for t in s.quote_times("SPX", "2021-01-04")] == [
        "09:31",
        "09:32",
        "09:33",
    ]
    assert all(str(t.tz) == "America/New_York" for t in s.quote_times("SPX", "2021-01-04"))
    latest = s.snapshot("SPX", "2021-01-04")
    assert hm(latest) == "09:33" and latest.roots() == ["SPXW"]
    assert latest.quotes["strike"].tolist() == [3650.0, 3700.0]
    assert hm(s.snapshot("SPX", "2021-01-04", roots=["SPX"])) == "09:32"
    at = s.snapshot("SPX", dt.date(2021, 1, 4), quote_time="09:32:59")
    assert hm(at) == "09:32" and at.quotes["bid"].tolist() == [80.5]
    both = s.snapshot("SPX", "2021-01-04", dt.time(9, 31))
    assert both.quotes[["root", "right", "bid"]].values.tolist() == [
        ["SPX", "C", 80.1],
        ["SPX", "P", 12.0],
        ["SPXW", "C", 79.0],
    ]
    utc = s.snapshot("SPX", "2021-01-04", pd.Timestamp("2021-01-04 14:32", tz="UTC"))
    assert hm(utc) == "09:32"  # 14:32 UTC = 09:32 EST
    liquid = s.snapshot("SPX", "2021-01-04", "09:31", liquid_only=True)
    assert liquid.quotes["right"].tolist() == ["C", "C"]  # the 40 %-spread put is out
    with pytest.raises(SnapshotNotFoundError) as err:
        s.snapshot("SPX", "2021-01-04", "09:30")
    assert isinstance(err.value, KeyError) and isinstance(err.value, VolsuiteError)
    assert "09:30:00" in str(err.value) and "09:31:00..09:33:00" in str(err.value)
    with pytest.raises(SnapshotNotFoundError, match="no quotes that day"):
        s.snapshot("SPX", "2021-01-05")
    with pytest.raises(SnapshotNotFoundError, match="roots"):
        s.snapshot("SPX", "2021-01-04", roots=["SPY"])
    with pytest.raises(ValueError, match="not on quote_date"):
        s.snapshot("SPX", "2021-01-04", pd.Timestamp("2021-01-05 10:00", tz="America/New_York"))


def test_snapshot_frame_layout(minute_store: ChainStore) -> None:
    snap = minute_store.snapshot("SPX", "2021-01-04", "09:31", rate=0.01)
    q = snap.quotes
    assert tuple(q.columns) == QUOTE_COLUMNS
    assert q["expiration"].dtype == np.dtype("datetime64[ns]")
    assert q["expiration"].iloc[0] == pd.Timestamp("2021-01-15")
    assert q["is_liquid"].dtype == bool
    assert q[["volume", "open_interest", "vendor_implied_vol"]].isna().all().all()
    assert q["mid"].tolist() == pytest.approx([81.05, 15.0, 80.0])
    assert snap.rate == 0.01 and snap.source == "lean-minute:m.csv"
    assert snap.tte(dt.date(2021, 1, 15), "SPX") == pytest.approx(
        (11 * 24 * 60 - 1) / 525_600  # 09:31 Jan 4 -> 09:30 Jan 15 (AM settlement)
    )


def test_snapshot_sorts_rows_inserted_out_of_order(store: ChainStore, tmp_path: Path) -> None:
    # SPXW written by one ingest, SPX by a later one: the scan returns SPXW first
    store.ingest(write(tmp_path / "w.csv", [lean("09:30", "SPXW", "3700", "C", "1", "2")],
                       LEAN_HEADER), "lean-minute")  # fmt: skip
    store.ingest(write(tmp_path / "x.csv", [lean("09:30", "SPX", "3800", "P", "1", "2"),
                                            lean("09:30", "SPX", "3700", "C", "1", "2")],
                       LEAN_HEADER), "lean-minute")  # fmt: skip
    q = store.snapshot("SPX", "2021-01-04").quotes
    assert q[["root", "strike"]].values.tolist() == [["SPX", 3700.0], ["SPX", 3800.0],
                                                    ["SPXW", 3700.0]]  # fmt: skip


def test_info_and_quarantine(store: ChainStore, tmp_path: Path) -> None:
    store.ingest(version1(tmp_path / "c.csv"), "vendor")
    info = store.info()
    cols = ["quote_date", "roots", "n_expiries", "rows", "quarantined", "holiday"]
    assert info[cols].values.tolist() == [
        [dt.date(2021, 1, 4), "SPY", 1, 3, 0, False],
        [dt.date(2021, 1, 5), "SPY", 1, 2, 1, False],
    ]
    q = store.quarantine("crossed quote")
    assert q[["source_row", "strike", "bid", "ask"]].values.tolist() == [[6, 375.0, 3.6, 3.4]]
    assert store.quarantine("no such reason").empty
    assert store.quarantine_summary().values.tolist() == [["vendor:c.csv", "crossed quote", 1]]


# -- underlying bars ------------------------------------------------------------------------------
def bars(closes: list[float]) -> pd.DataFrame:
    idx = pd.DatetimeIndex(["2021-01-04", "2021-01-05", "2021-01-06"][: len(closes)], name="date")
    return pd.DataFrame(
        {"open": 100.0, "high": 110.0, "low": 90.0, "close": closes},
        index=idx.tz_localize("America/New_York"),
    )


def test_underlying_upsert(store: ChainStore) -> None:
    r = store.ingest_underlying(bars([101.0, 102.0]), "spx", "test")
    assert (r.symbol, r.added, r.updated, r.unchanged) == ("SPX", 2, 0, 0)
    r = store.ingest_underlying(bars([101.0, 102.5, 103.0]), "SPX", "test")
    assert (r.added, r.updated, r.unchanged) == (1, 1, 1)
    out = store.underlying_ohlc("SPX")
    assert out["close"].tolist() == [101.0, 102.5, 103.0]
    assert str(out.index.tz) == "America/New_York" and out.index.name == "date"
    assert out["volume"].isna().all()
    with pytest.raises(StoreKeyError, match="QQQ"):
        store.underlying_ohlc("QQQ")
    dup = bars([1.0, 2.0])
    dup.index = dup.index[[0, 0]]
    with pytest.raises(DataValidationError, match="duplicate"):
        store.ingest_underlying(dup, "SPX", "test")


@pytest.mark.shared_data
def test_underlying_from_the_shared_index_file(store: ChainStore, shared_data: Path) -> None:
    from data_feeds.ohlc import load_ohlc

    path = shared_data / "index" / "spx_vix_spy_qqq_daily.csv"
    r = store.ingest_underlying(load_ohlc(path, root="SPX"), "SPX", str(path))
    with open(path, newline="") as fh:
        raw = [row for row in csv.DictReader(fh) if row["root"] == "SPX"]
    assert r.added == len(raw)
    day = next(row for row in raw if row["Date"].startswith("2019-06-21"))
    out = store.underlying_ohlc("SPX")
    got = out.loc[pd.Timestamp("2019-06-21", tz="America/New_York")]
    assert got["open"] == float(day["Open"]) and got["close"] == float(day["Close"])
    assert store.ingest_underlying(load_ohlc(path, root="SPX"), "SPX", str(path)).added == 0


# -- store file -----------------------------------------------------------------------------------
def test_read_only_missing_and_foreign_stores(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found"):
        ChainStore(tmp_path / "none.duckdb", read_only=True)
    path = tmp_path / "s.duckdb"
    ChainStore(path).close()
    with ChainStore(path, read_only=True) as ro:
        with pytest.raises(DataSourceError, match="read-only"):
            ro.ingest(version1(tmp_path / "c.csv"), "vendor")
        assert ro.table_counts()["raw_options_chains"] == 0
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(DataSourceError, match="schema version"):
        ChainStore(path)
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(DataSourceError, match="not a chain store"):
        ChainStore(other, read_only=True)


def test_schema(store: ChainStore) -> None:
    con = store.connection
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [
        (SCHEMA_VERSION,)
    ]
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'raw_options_chains'"
        ).fetchall()
    )
    assert types["strike"] == types["bid"] == types["mid"] == "DOUBLE"
    assert types["quote_time"] == "TIME" and types["quote_date"] == "DATE"
    for table, col in (
        ("fitted_surfaces", "svi_sigma"),
        ("term_structure_params", "atm_term_b"),
        ("realized_volatility", "gk_21d"),
        ("vrp_metrics", "vrp_zscore"),
    ):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)]
        assert col in [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_ingest_and_info(tmp_path: Path) -> None:
    from experiments.cli import app

    db = tmp_path / "c.duckdb"
    f = version1(tmp_path / "chain.csv")
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, ["ingest", "chains", str(tmp_path), "--format", "vendor", "--db",
                              str(db)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "crossed quote" in res.output and "added 5" in res.output
    res = runner.invoke(app, ["ingest", "chains", str(f), "--db", str(db)])
    assert res.exit_code == 0 and "added 0" in res.output and "unchanged 5" in res.output
    res = runner.invoke(app, ["chains", "info", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "vendor:chain.csv" in res.output and "2021-01-04 .. 2021-01-05" in res.output
    res = runner.invoke(app, ["ingest", "chains", str(f), "--format", "cboe", "--db", str(db)])
    assert res.exit_code == 2 and "unknown format" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[liquidity]\nmax_sprad = 1\n")
    res = runner.invoke(app, ["ingest", "chains", str(f), "--config", str(bad), "--db", str(db)])
    assert res.exit_code == 2 and "liquidity.max_sprad" in res.output
    res = runner.invoke(app, ["chains", "info", "--db", str(tmp_path / "missing.duckdb")])
    assert res.exit_code == 2 and "not found" in res.output


# -- the real files ------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_2019_chains_facts(chain_store_2019: ChainStore, shared_data: Path) -> None:
    path = shared_data / "options" / "spx_chains_2019q2.parquet"
    con = duckdb.connect()
    rows, ndates = con.execute(
        f"SELECT count(*), count(DISTINCT quotedate) FROM read_parquet('{path}')"
    ).fetchall()[0]
    holidays = {
        r[0].date()
        for r in con.execute(
            f"SELECT DISTINCT quotedate FROM read_parquet('{path}') WHERE is_market_holiday"
        ).fetchall()
    }
    all_dates = {
        r[0].date()
        for r in con.execute(f"SELECT DISTINCT quotedate FROM read_parquet('{path}')").fetchall()
    }
    con.close()
    assert (rows, ndates) == (809_782, 58)
    assert holidays == {dt.date(2019, 5, 27), dt.date(2019, 7, 4)}
    s = chain_store_2019
    assert s.quote_dates("SPX") == sorted(all_dates - holidays)
    assert len(s.quote_dates("SPX")) == 56
    counts = s.table_counts()
    assert counts["raw_options_chains"] + counts["quarantined_quotes"] == rows
    info = s.info()
    assert set(info.loc[info["holiday"], "quote_date"]) == holidays
    assert (info.loc[info["holiday"], "rows"] == 0).all()
    q = s.quarantine_summary()
    assert q["reason"].tolist() == ["holiday snapshot repeating previous session"]
    trading = info[~info["holiday"]]
    assert len(trading) == 56 and trading["n_expiries"].between(34, 39).all()


@pytest.mark.shared_data
def test_2019_snapshot_matches_the_parquet(chain_store_2019: ChainStore, shared_data: Path):
    path = shared_data / "options" / "spx_chains_2019q2.parquet"
    raw = pd.read_parquet(path, filters=[("quotedate", "==", pd.Timestamp("2019-05-24"))])
    snap = chain_store_2019.snapshot("SPX", "2019-05-24")
    assert len(snap.quotes) == len(raw) == 13_752
    assert snap.underlying_price == raw["underlying_last"].iloc[0]
    raw = raw.assign(
        right=raw["type"].str[0].str.upper(), expiration=raw["expiration"].astype("datetime64[ns]")
    )
    merged = snap.quotes.merge(raw, on=["root", "expiration", "strike", "right"], how="inner")
    assert len(merged) == len(raw)
    assert (merged["bid_x"] == merged["bid_y"]).all() and (merged["ask_x"] == merged["ask_y"]).all()
    assert (merged["open_interest"] == merged["openinterest"]).all()
    assert (merged["vendor_delta"] == merged["delta"]).all()
    assert snap.quotes["vendor_theta"].isna().all()  # no theta in the 2019 file
    # 54,695 rows with bid 0 in the whole file are kept (no bid is a market state)
    assert (snap.quotes["bid"] == 0).sum() == (raw["bid"] == 0).sum() > 0
    spxw = chain_store_2019.snapshot("SPX", "2019-05-24", roots=["SPXW"])
    assert spxw.roots() == ["SPXW"] and len(spxw.quotes) == (raw["root"] == "SPXW").sum()


@pytest.mark.shared_data
def test_spy_2021_crossed_quotes_are_quarantined(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "options" / "spy_options_subset_2021.csv.gz"
    with gzip.open(path, "rt", newline="") as fh:
        raw = list(csv.DictReader(fh))
    crossed = {i + 1 for i, r in enumerate(raw) if float(r["bid"]) > float(r["ask"])}
    assert len(crossed) == 17
    with ChainStore(tmp_path / "s.duckdb") as s:
        rep = s.ingest(path, "vendor")
        assert rep.quarantined_by_reason == {"crossed quote": 17}
        q = s.quarantine("crossed quote")
        assert set(q["source_row"]) == crossed
        assert rep.rows_added == len(raw) - 17
        assert s.connection.execute(
            "SELECT DISTINCT root, style, settlement FROM raw_options_chains"
        ).fetchall() == [("SPY", "american", "physical")]


@pytest.mark.shared_data
def test_minute_file_crossed_bars_and_bar_close_times(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "options" / "spx_spxw_spy_option_minute_quotes.csv.gz"
    with gzip.open(path, "rt", newline="") as fh:
        raw = list(csv.DictReader(fh))
    crossed = {
        i + 1
        for i, r in enumerate(raw)
        if r["bid_close"] and r["ask_close"] and float(r["bid_close"]) > float(r["ask_close"])
    }
    no_bid = sum(1 for r in raw if not r["bid_close"] and r["bid_size"] == "0")
    assert len(crossed) == 56
    with ChainStore(tmp_path / "m.duckdb") as s:
        rep = s.ingest(path, "lean-minute")
        assert rep.quarantined_by_reason == {"crossed quote": 56}
        assert set(s.quarantine()["source_row"]) == crossed
        assert any(f"{no_bid} bars with no bid" in n for n in rep.notes)
        first = raw[0]  # 2021-01-04 09:30 SPX bar -> snapshot 09:31
        snap = s.snapshot("SPX", first["date"], "09:31", roots=[first["root"]])
        row = snap.quotes[
            (snap.quotes["strike"] == float(first["strike"]))
            & (snap.quotes["right"] == first["right"])
        ]
        assert row["bid"].tolist() == [float(first["bid_close"])]
        assert row["ask"].tolist() == [float(first["ask_close"])]


@pytest.mark.shared_data
def test_ingest_the_whole_options_folder_twice(shared_data: Path, tmp_path: Path) -> None:
    from experiments.cli import app

    folder = shared_data / "options"
    db = str(tmp_path / "all.duckdb")
    runner = CliRunner(env={"COLUMNS": "200"})
    outputs = []
    for _ in range(2):
        for fmt in ("vendor", "lean-minute"):
            res = runner.invoke(app, ["ingest", "chains", str(folder), "-f", fmt, "--db", db])
            assert res.exit_code == 0, res.output
            outputs.append(res.output)
    first = outputs[0] + outputs[1]
    second = outputs[2] + outputs[3]
    assert "spx_options_subset_2017_2018_underlyings.csv.gz: underlying bars" in first
    assert "added 805,175" in outputs[0] and "added 29,572" in outputs[1]
    assert "added 0, replaced 0" in outputs[2] and "added 0, replaced 0" in outputs[3]
    assert second.count("crossed quote") == 2  # SPY 2021 (17) and minute bars (56) again
    res = runner.invoke(app, ["chains", "info", "--db", db])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "vendor:spx_chains_2019q2.parquet" in x)
    assert " 56 " in line and "2019-04-25 .. 2019-07-22" in line
    assert "2019-05-27" in res.output and "2019-07-04" in res.output
    with ChainStore(db, read_only=True) as s:
        assert len(s.ingest_log()) == 8
        assert s.ingest_log()["rows_added"].iloc[4:].sum() == 0
        dup_keys = s.connection.execute(
            "SELECT count(*) FROM (SELECT root, quote_date, quote_time, expiration_date, strike, "
            "option_type FROM raw_options_chains GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        assert dup_keys == 0  # the natural key is unique without a constraint


def test_ingest_path_expands_directories(store: ChainStore, tmp_path: Path) -> None:
    version1(tmp_path / "a.csv")
    write(tmp_path / "b_underlying.csv", [["x"]], ["symbol"])
    reports = store.ingest_path(tmp_path, "vendor", config=ChainIngestConfig())
    assert [r.data_source for r in reports] == ["vendor:a.csv"]
    assert any("b_underlying.csv" in n for n in reports[0].notes)
    with pytest.raises(DataSourceError, match="no lean-minute chain file"):
        store.ingest_path(tmp_path, "lean-minute")
