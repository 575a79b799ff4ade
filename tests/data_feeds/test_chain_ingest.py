"""Chain ingest: adapters, date formats, validation rules and their order, liquidity flags, the
generic TOML mapping and config errors -- on small files written by the tests, whose expected
outcome is worked out by hand in each test."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from data_feeds.chain_ingest import (
    ChainIngestConfig,
    discover_files,
    load_ingest_config,
)
from data_feeds.chain_store import ChainStore
from data_feeds.errors import DataSourceError, DataValidationError

# the vendor layout of ../shared/data/options, including the ' exchange' column with a space
VENDOR_HEADER = [
    "underlying",
    "underlying_last",
    " exchange",
    "optionroot",
    "type",
    "expiration",
    "quotedate",
    "strike",
    "last",
    "bid",
    "ask",
    "volume",
    "openinterest",
    "impliedvol",
    "delta",
    "gamma",
    "theta",
    "vega",
]


def vendor_row(
    quotedate: str = "2021-01-04",
    expiration: str = "2021-01-29",
    strike: str = "370",
    kind: str = "call",
    bid: str = "5.00",
    ask: str = "5.20",
    *,
    spot: str = "368.79",
    root: str = "SPY",
    volume: str = "100",
    oi: str = "1000",
    last: str = "5.10",
) -> list[str]:
    """One vendor CSV row (SPY-like); the option symbol is built from the fields."""
    exp = expiration.replace("-", "")[2:] if "-" in expiration else "210129"
    right = "C" if kind.lower().startswith("c") else "P"
    try:
        k = f"{int(float(strike) * 1000):08d}"
    except ValueError:
        k = "00000000"
    symbol = f"{root}{exp}{right}{k}"
    return [
        "SPY" if root == "SPY" else "SPX",
        spot,
        "*",
        symbol,
        kind,
        expiration,
        quotedate,
        strike,
        last,
        bid,
        ask,
        volume,
        oi,
        "0.2",
        "0.5",
        "0.01",
        "-0.1",
        "0.3",
    ]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write a CSV (gzip when the name ends .gz)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def reasons_by_row(store: ChainStore) -> dict[int, str]:
    """source_row -> reason of every quarantined row."""
    q = store.quarantine()
    return dict(zip(q["source_row"].astype(int), q["reason"], strict=True))


@pytest.fixture
def store(tmp_path: Path):
    with ChainStore(tmp_path / "chains.duckdb") as s:
        yield s


# -- vendor adapter -----------------------------------------------------------------------------
def test_vendor_iso_and_us_dates_give_the_same_rows(tmp_path: Path) -> None:
    rows_iso = [
        vendor_row("2021-01-04", "2021-01-29", "370", "call", "5.00", "5.20"),
        vendor_row("2021-01-04", "2021-01-29", "370", "put", "6.10", "6.30"),
        vendor_row("2021-01-05", "2021-02-19", "380", "call", "3.00", "3.10"),
    ]
    rows_us = []
    for r in rows_iso:
        us = list(r)
        for i in (5, 6):  # expiration, quotedate -> MM/DD/YYYY
            y, m, d = us[i].split("-")
            us[i] = f"{m}/{d}/{y}"
        rows_us.append(us)
    iso = write_csv(tmp_path / "iso.csv", VENDOR_HEADER, rows_iso)
    us = write_csv(tmp_path / "us.csv.gz", VENDOR_HEADER, rows_us)
    snaps = []
    for i, f in enumerate((iso, us)):
        with ChainStore(tmp_path / f"s{i}.duckdb") as s:
            rep = s.ingest(f, "vendor")
            assert (rep.rows_read, rep.rows_added, rep.rows_quarantined) == (3, 3, 0)
            assert s.quote_dates("SPY") == [dt.date(2021, 1, 4), dt.date(2021, 1, 5)]
            snaps.append(s.snapshot("SPY", "2021-01-04"))
    a, b = snaps
    assert a.quotes.equals(b.quotes)
    q = a.quotes
    # hand values from the rows above
    assert list(q["right"]) == ["C", "P"]
    assert list(q["strike"]) == [370.0, 370.0]
    assert list(q["expiration"]) == [dt.datetime(2021, 1, 29)] * 2
    assert list(q["bid"]) == [5.0, 6.1] and list(q["ask"]) == [5.2, 6.3]
    assert q["mid"].tolist() == pytest.approx([5.1, 6.2], abs=1e-12)
    assert a.underlying_price == 368.79
    assert a.quote_time == pd.Timestamp("2021-01-04 15:45", tz="America/New_York")
    assert str(a.quote_time.tz) == "America/New_York"


def test_vendor_root_from_symbol_and_contract_terms(store: ChainStore, tmp_path: Path) -> None:
    f = write_csv(
        tmp_path / "spy.csv",
        VENDOR_HEADER,
        [vendor_row(), vendor_row(root="SPX", strike="3700", spot="3700.65", bid="50", ask="51")],
    )
    store.ingest(f, "vendor")
    got = store.connection.execute(
        "SELECT root, underlying, style, settlement, option_type, symbol FROM raw_options_chains "
        "ORDER BY root"
    ).fetchall()
    assert got == [
        ("SPX", "SPX", "european", "AM", "C", "SPX210129C03700000"),
        ("SPY", "SPY", "american", "physical", "C", "SPY210129C00370000"),
    ]


def test_vendor_without_underlying_column(store: ChainStore, tmp_path: Path) -> None:
    header = [h for h in VENDOR_HEADER if h != "underlying"]
    row = vendor_row(root="SPXW", strike="3700", spot="3700.65")[1:]
    rep = store.ingest(write_csv(tmp_path / "w.csv", header, [row]), "vendor")
    assert "underlying derived from the root (no underlying column)" in rep.notes
    assert store.quote_dates("SPX", roots=["SPXW"]) == [dt.date(2021, 1, 4)]


def test_vendor_snapshot_time_is_configurable(store: ChainStore, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "a.csv", VENDOR_HEADER, [vendor_row()])
    cfg = ChainIngestConfig(vendor_quote_time=dt.time(16, 0))
    store.ingest(f, "vendor", config=cfg)
    assert [t.time() for t in store.quote_times("SPY", "2021-01-04")] == [dt.time(16, 0)]


def test_unknown_root_is_an_error_naming_the_row(store: ChainStore, tmp_path: Path) -> None:
    rows = [vendor_row(), vendor_row(strike="371"), vendor_row(root="XSP", strike="372")]
    f = write_csv(tmp_path / "x.csv", VENDOR_HEADER, rows)
    with pytest.raises(DataValidationError) as err:
        store.ingest(f, "vendor")
    msg = str(err.value)
    assert "row #3" in msg and "field 'root'" in msg and "'XSP'" in msg and "x.csv" in msg
    assert store.table_counts()["raw_options_chains"] == 0  # nothing written
    cfg = ChainIngestConfig.from_dict(
        {"roots": {"XSP": {"style": "european", "settlement": "PM", "underlying": "SPX"}}}
    )
    store.ingest(f, "vendor", config=cfg)
    assert store.connection.execute(
        "SELECT style, settlement FROM raw_options_chains WHERE root = 'XSP'"
    ).fetchall() == [("european", "PM")]


def test_wrong_layout_and_missing_file(store: ChainStore, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "bars.csv", ["date", "close"], [["2021-01-04", "1"]])
    with pytest.raises(DataSourceError, match="not a vendor layout"):
        store.ingest(f, "vendor")
    with pytest.raises(DataSourceError, match="not found"):
        store.ingest(tmp_path / "nope.csv", "vendor")
    with pytest.raises(DataSourceError, match="unknown format"):
        store.ingest(f, "cboe")


# -- validation -----------------------------------------------------------------------------------
def test_each_rule_and_first_match_order(store: ChainStore, tmp_path: Path) -> None:
    r = vendor_row
    rows = {
        1: r(strike="360"),  # good
        2: r(strike="361", bid=""),  # missing bid
        3: r(strike="abc"),  # unparseable strike
        4: r(strike="0"),  # non-positive strike
        5: r(quotedate="2021-01-04", expiration="2021-01-03", strike="362"),  # expired
        6: r(strike="363", bid="-0.05", ask="-1"),  # negative AND crossed: negative comes first
        7: r(strike="364", bid="5.3", ask="5.2"),  # crossed
        8: r(strike="370000", bid="5.3", ask="5.2"),  # crossed AND wrong unit: crossed first
        9: r(strike="365000"),  # strike x1000: 365000 / 368.79 > 50
        10: r(strike="366", bid="0", ask="0.05"),  # no bid: kept
        11: r(strike="367"),  # identical duplicate pair: keep the first ...
        12: r(strike="367"),  # ... quarantine the second
        13: r(strike="368", bid="1.0"),  # conflicting duplicates: both out
        14: r(strike="368", bid="1.1"),
        15: r(strike="369", volume="-3"),  # negative volume
        16: r(strike="7"),  # 7 / 368.79 = 0.019 < 1/50: wrong unit
        17: r(strike="8"),  # 8 / 368.79 = 0.0217 > 1/50: kept (deep ITM, real strikes exist)
        18: r(strike="372", bid="5.1", ask="5.1"),  # locked (bid == ask): not crossed, kept
    }
    f = write_csv(tmp_path / "rules.csv", VENDOR_HEADER, list(rows.values()))
    rep = store.ingest(f, "vendor")
    expected = {
        2: "missing required field: bid",
        3: "unparseable field: strike",
        4: "non-positive strike",
        5: "expiration before quote date",
        6: "negative price",
        7: "crossed quote",
        8: "crossed quote",
        9: "strike in wrong unit",
        12: "duplicate",
        13: "conflicting duplicate",
        14: "conflicting duplicate",
        15: "negative volume, open interest or size",
        16: "strike in wrong unit",
    }
    assert reasons_by_row(store) == expected
    assert rep.rows_read == 18 and rep.rows_quarantined == len(expected)
    assert rep.rows_added == 18 - len(expected)
    assert sum(rep.quarantined_by_reason.values()) == len(expected)
    assert rep.quarantined_by_reason["crossed quote"] == 2
    # the report lists reasons in rule order
    order = list(rep.quarantined_by_reason)
    assert order.index("missing required field: bid") < order.index("crossed quote")
    assert order.index("crossed quote") < order.index("conflicting duplicate")
    stored = store.connection.execute(
        "SELECT strike, bid FROM raw_options_chains ORDER BY strike"
    ).fetchall()
    assert stored == [(8.0, 5.0), (360.0, 5.0), (366.0, 0.0), (367.0, 5.0), (372.0, 5.1)]
    q = store.quarantine("unparseable field")
    assert q["detail"].tolist() == ["strike=abc"]
    assert store.quarantine("crossed quote")["source_row"].tolist() == [7, 8]
    assert rep.rows_added + rep.rows_replaced + rep.rows_unchanged + rep.rows_quarantined == 18


def test_strike_unit_ratio_is_configurable(store: ChainStore, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "k.csv", VENDOR_HEADER, [vendor_row(strike="17")])  # K/S = 0.0461
    assert store.ingest(f, "vendor").rows_quarantined == 0  # default ratio 50: kept
    cfg = ChainIngestConfig.from_dict({"validation": {"strike_unit_ratio": 20}})
    rep = store.ingest(f, "vendor", config=cfg)  # 1/20 = 0.05 > 0.0461: quarantined
    assert rep.quarantined_by_reason == {"strike in wrong unit": 1}
    assert rep.partitions_replaced == 1  # a changed setting rewrites the partition


def test_holiday_snapshots(store: ChainStore, tmp_path: Path) -> None:
    # 2019-07-03 (session), 07-04 (holiday, repeats 07-03's underlying), 07-05 (session),
    # 07-06 (Saturday, a different underlying price)
    rows = [
        vendor_row("2019-07-03", "2019-07-19", "2990", spot="2995.82", root="SPX"),
        vendor_row("2019-07-04", "2019-07-19", "2990", spot="2995.82", root="SPX"),
        vendor_row("2019-07-05", "2019-07-19", "2990", spot="2989.36", root="SPX"),
        vendor_row("2019-07-06", "2019-07-19", "2990", spot="2990.00", root="SPX"),
        # a holiday row also crossed: the holiday rule comes first
        vendor_row(
            "2019-07-04", "2019-07-19", "2995", "call", "9", "8", spot="2995.82", root="SPX"
        ),
    ]
    f = write_csv(tmp_path / "h.csv", VENDOR_HEADER, rows)
    store.ingest(f, "vendor")
    assert reasons_by_row(store) == {
        2: "holiday snapshot repeating previous session",
        4: "quote date is not an NYSE session",
        5: "holiday snapshot repeating previous session",
    }
    info = store.info()
    assert info.loc[info["holiday"], "quote_date"].tolist() == [
        dt.date(2019, 7, 4),
        dt.date(2019, 7, 6),
    ]
    assert store.quote_dates("SPX") == [dt.date(2019, 7, 3), dt.date(2019, 7, 5)]


def test_source_row_points_at_the_file_line(store: ChainStore, tmp_path: Path) -> None:
    rows = [vendor_row(strike=str(300 + i)) for i in range(2000)]
    bad = {17, 1234, 1999}  # 1-based data rows made crossed
    for i in bad:
        rows[i - 1][9], rows[i - 1][10] = "9.9", "1.1"
    f = write_csv(tmp_path / "big.csv.gz", VENDOR_HEADER, rows)
    store.ingest(f, "vendor")
    q = store.quarantine("crossed quote")
    assert set(q["source_row"]) == bad
    # read the lines back with the csv module: the quarantined strikes are the ones on those rows
    with gzip.open(f, "rt") as fh:
        lines = list(csv.reader(fh))[1:]
    assert sorted(q["strike"]) == sorted(float(lines[i - 1][7]) for i in bad)


# -- liquidity ------------------------------------------------------------------------------------
def test_liquidity_flags_by_hand(store: ChainStore, tmp_path: Path) -> None:
    s = "100"  # spot; every row quoted 2021-01-04; hand-checked flags
    cases = [
        # (strike, expiration, bid, ask, volume, oi, liquid?, failing criteria)
        (
            "100",
            "2021-02-19",
            "4.5",
            "5.5",
            "10",
            "51",
            False,
            ["spread"],
        ),  # 1/5 = 20 %: not < 20 %
        ("99", "2021-02-19", "4.6", "5.4", "10", "51", True, []),  # 0.8/5 = 16 %
        ("98", "2021-02-19", "4.6", "5.4", "10", "50", False, ["open_interest"]),  # OI 50: not > 50
        ("97", "2021-02-19", "4.6", "5.4", "0", "51", False, ["volume"]),
        ("100", "2021-01-10", "4.6", "5.4", "10", "51", False, ["dte"]),  # 6 days
        ("100", "2021-01-11", "4.6", "5.4", "10", "51", True, []),  # 7 days
        ("100", "2023-01-04", "4.6", "5.4", "10", "51", True, []),  # 730 days
        ("100", "2023-01-05", "4.6", "5.4", "10", "51", False, ["dte"]),  # 731 days
        ("143", "2021-02-19", "4.6", "5.4", "10", "51", False, ["moneyness"]),  # S/K = 0.6993
        ("142", "2021-02-19", "4.6", "5.4", "10", "51", True, []),  # S/K = 0.7042
        ("77", "2021-02-19", "4.6", "5.4", "10", "51", True, []),  # S/K = 1.2987
        ("76", "2021-02-19", "4.6", "5.4", "10", "51", False, ["moneyness"]),  # S/K = 1.3158
        ("101", "2021-02-19", "0", "0.05", "0", "0", False, ["spread", "open_interest", "volume"]),
    ]
    rows = [
        vendor_row("2021-01-04", e, k, "call", b, a, spot=s, volume=v, oi=oi, root="SPY")
        for k, e, b, a, v, oi, _, _ in cases
    ]
    f = write_csv(tmp_path / "liq.csv", VENDOR_HEADER, rows)
    rep = store.ingest(f, "vendor")
    assert rep.rows_quarantined == 0
    got = store.connection.execute(
        "SELECT strike, expiration_date, bid, is_liquid FROM raw_options_chains"
    ).fetchall()
    flag = {(k, e, b): liq for k, e, b, liq in got}
    for k, e, b, _a, _v, _oi, liquid, _f in cases:
        assert flag[(float(k), dt.date.fromisoformat(e), float(b))] is liquid, (k, e, b)
    expected = {c: sum(c in f for *_, f in cases) for c in rep.liquidity_failures}
    assert rep.liquidity_failures == expected
    assert rep.liquid == sum(c[6] for c in cases) and rep.illiquid == len(cases) - rep.liquid
    # thresholds are configurable; a disabled criterion is reported as disabled
    cfg = ChainIngestConfig.from_dict(
        {"liquidity": {"min_open_interest": None, "min_dte": 0, "max_spread_to_mid": 0.25}}
    )
    rep2 = store.ingest(f, "vendor", config=cfg)
    assert rep2.liquidity_disabled == ["open_interest"]
    assert rep2.liquidity_failures["dte"] == 1  # only 731 days is left out
    assert rep2.liquidity_failures["spread"] == 1  # 20 % now passes, the no-bid row fails


# -- lean minute bars -----------------------------------------------------------------------------
LEAN_HEADER = (
    "date,time_et,root,expiration,strike,right,style,bid_open,bid_high,bid_low,bid_close,"
    "bid_size,ask_open,ask_high,ask_low,ask_close,ask_size"
).split(",")


def lean_row(time_et: str, strike: str, right: str, bid: str, bsize: str, ask: str) -> list[str]:
    return ["2021-01-04", time_et, "SPXW", "2021-01-04", strike, right, "european",
            bid, bid, bid, bid, bsize, ask, ask, ask, ask, "10"]  # fmt: skip


def test_lean_minute_bars(store: ChainStore, tmp_path: Path) -> None:
    rows = [
        lean_row("09:30", "3700", "C", "47.6", "5", "51.7"),
        lean_row("09:30", "3700", "P", "", "0", "0.15"),  # no bid (size 0): bid 0
        lean_row("09:31", "3700", "C", "47.0", "5", "51.0"),
        lean_row("09:31", "3700", "P", "", "3", "0.15"),  # empty bid with size 3: missing
        lean_row("09:32", "3700", "C", "52.0", "5", "51.0"),  # crossed
    ]
    f = write_csv(tmp_path / "minute.csv", LEAN_HEADER, rows)
    rep = store.ingest(f, "lean-minute")
    assert reasons_by_row(store) == {4: "missing required field: bid", 5: "crossed quote"}
    assert any("1 bars with no bid" in n for n in rep.notes)
    # bar start 09:30 -> quote time 09:31 (the bar's close)
    times = [t.strftime("%H:%M") for t in store.quote_times("SPX", "2021-01-04")]
    assert times == ["09:31", "09:32"]
    snap = store.snapshot("SPX", "2021-01-04", "09:31:30")
    assert snap.quote_time.strftime("%H:%M") == "09:31"
    assert snap.quotes[["right", "bid", "ask"]].values.tolist() == [
        ["C", 47.6, 51.7],
        ["P", 0.0, 0.15],
    ]
    assert snap.underlying_price != snap.underlying_price  # NaN: no underlying in minute bars
    # no open interest, volume or underlying: those criteria are skipped on every valid row
    assert rep.liquidity_skipped == {"open_interest": 3, "volume": 3, "moneyness": 3}
    assert rep.liquidity_failures["dte"] == 3  # 0DTE < 7 days


def test_lean_style_must_match_the_root(store: ChainStore, tmp_path: Path) -> None:
    row = lean_row("09:30", "3700", "C", "47.6", "5", "51.7")
    row[6] = "american"
    f = write_csv(tmp_path / "m.csv", LEAN_HEADER, [row])
    with pytest.raises(DataValidationError, match="field 'style'"):
        store.ingest(f, "lean-minute")


# -- generic --------------------------------------------------------------------------------------
def test_generic_mapping_from_toml(store: ChainStore, tmp_path: Path) -> None:
    data = tmp_path / "theirs.csv"
    data.write_text(
        "TradeDate;Expiry;K;CP;BidPx;AskPx;OI;Spot\n"
        "04.01.2021;15.01.2021;3700000;CALL;80.1;82.0;120;3700.65\n"
        "04.01.2021;15.01.2021;3700000;PUT;60.0;61.0;80;3700.65\n"
        "04.01.2021;15.01.2021;3800000;Put;;125.0;80;3700.65\n"
    )
    toml = tmp_path / "map.toml"
    toml.write_text(
        """
vendor_quote_time = "15:45"
[liquidity]
min_volume = 0
[generic]
date_format = "%d.%m.%Y"
quote_time = "10:00"
root = "SPX"
strike_divisor = 1000
delimiter = ";"
option_type_values = { CALL = "C", PUT = "P" }
[generic.columns]
quote_date = "TradeDate"
expiration_date = "Expiry"
strike = "K"
option_type = "CP"
bid = "BidPx"
ask = "AskPx"
open_interest = "OI"
underlying_price = "Spot"
"""
    )
    cfg = load_ingest_config(toml)
    rep = store.ingest(data, "generic", config=cfg)
    assert rep.data_source == "generic:theirs.csv"
    assert reasons_by_row(store) == {3: "missing required field: bid"}
    snap = store.snapshot("SPX", dt.date(2021, 1, 4))
    assert snap.quote_time.strftime("%H:%M") == "10:00"
    cols = ["root", "strike", "right", "bid", "ask", "open_interest"]
    assert snap.quotes[cols].values.tolist() == [
        ["SPX", 3700.0, "C", 80.1, 82.0, 120.0],
        ["SPX", 3700.0, "P", 60.0, 61.0, 80.0],
    ]
    assert snap.underlying_price == 3700.65
    assert list(snap.quotes["expiration"]) == [dt.datetime(2021, 1, 15)] * 2
    assert rep.liquidity_skipped == {"volume": 2}


def test_generic_needs_its_mapping(store: ChainStore, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "a.csv", VENDOR_HEADER, [vendor_row()])
    with pytest.raises(DataSourceError, match="generic"):
        store.ingest(f, "generic")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"liquidity": {"max_sprad": 0.1}}, "liquidity.max_sprad", "Extra inputs"),
        ({"liquidity": {"max_spread_to_mid": "wide"}}, "liquidity.max_spread_to_mid", "number"),
        ({"liquidity": {"min_dte": 30, "max_dte": 7}}, "liquidity", "min_dte"),
        ({"vendor_quote_time": "quarter to four"}, "vendor_quote_time", "time"),
        ({"roots": {"XSP": {"style": "bermudan", "settlement": "PM"}}}, "roots.XSP.style", ""),
        ({"generic": {"columns": {"strike": "K"}}}, "generic", "required field"),
        ({"generic": {"columns": {"strikes": "K"}}}, "generic.columns", "unknown store field"),
    ],
)
def test_config_errors_name_the_field(data: dict, field: str, words: str) -> None:
    with pytest.raises(DataValidationError) as err:
        ChainIngestConfig.from_dict(data, source="cfg.toml")
    msg = str(err.value)
    assert msg.startswith("cfg.toml") and field in msg and words in msg


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found"):
        ChainIngestConfig.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[liquidity\n")
    with pytest.raises(DataSourceError, match="not valid TOML"):
        ChainIngestConfig.from_toml(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[liquidity]\nmin_open_intrest = 10\n")
    with pytest.raises(DataValidationError, match=r"typo\.toml.*liquidity\.min_open_intrest"):
        ChainIngestConfig.from_toml(typo)


# -- directory discovery --------------------------------------------------------------------------
def test_discover_files_skips_with_reasons(tmp_path: Path) -> None:
    write_csv(tmp_path / "a_chain.csv", VENDOR_HEADER, [vendor_row()])
    write_csv(tmp_path / "a_underlying.csv", ["symbol", "date", "close"], [["SPY", "x", "1"]])
    write_csv(tmp_path / "minute.csv.gz", LEAN_HEADER, [lean_row("09:30", "1", "C", "1", "1", "2")])
    (tmp_path / "notes.txt").write_text("not data")
    files, skipped = discover_files([tmp_path], "vendor")
    assert [f.name for f in files] == ["a_chain.csv"]
    why = {p.name: r for p, r in skipped}
    assert set(why) == {"a_underlying.csv", "minute.csv.gz"}
    assert "underlying" in why["a_underlying.csv"]
    assert "not a vendor layout" in why["minute.csv.gz"]
    files, _ = discover_files([tmp_path], "lean-minute")
    assert [f.name for f in files] == ["minute.csv.gz"]
    with pytest.raises(DataSourceError, match="no such file"):
        discover_files([tmp_path / "nope"], "vendor")


def test_parquet_input_with_typed_columns(store: ChainStore, tmp_path: Path) -> None:
    """A parquet vendor file (typed TIMESTAMP dates, DOUBLE strikes) as in the 2019 data."""
    src = write_csv(tmp_path / "a.csv", VENDOR_HEADER, [vendor_row(), vendor_row(strike="375")])
    pq = tmp_path / "a.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (CAST(quotedate AS TIMESTAMP) AS quotedate, "
        f"CAST(expiration AS TIMESTAMP) AS expiration) FROM read_csv('{src}')) TO '{pq}'"
    )
    con.close()
    rep = store.ingest(pq, "vendor")
    assert rep.rows_added == 2 and rep.rows_quarantined == 0
    assert store.snapshot("SPY", "2021-01-04").quotes["strike"].tolist() == [370.0, 375.0]
