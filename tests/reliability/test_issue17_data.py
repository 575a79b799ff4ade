"""Issue 17 items 5-12 (dates and time zones, chains and marks, ingest errors): one test (or a
few) per item, each reproducing the reported fault on a small file written here. Every
expected value is worked out by hand in the test (calendar facts, a put-call parity sum, the
Gatheral-Jacquier g function by finite differences), never read back from the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from brokers import OptionsBroker
from data_feeds import load_ohlc
from data_feeds.chain_ingest import ChainIngestConfig
from data_feeds.chain_store import ChainStore, ReplaceRefusedError
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from data_feeds.contracts import OptionContract
from data_feeds.errors import DataSourceError, DataValidationError
from experiments.cli import app

ET = "America/New_York"

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


def vrow(
    quotedate: str,
    expiration: str,
    strike: str = "370",
    kind: str = "call",
    bid: str = "5.00",
    ask: str = "5.20",
    *,
    underlying: str = "SPY",
    root: str = "SPY",
    spot: str = "368.79",
) -> list[str]:
    """One vendor row; the option symbol starts with ``root`` (the root is read from it)."""
    right = "C" if kind.startswith("c") else "P"
    symbol = f"{root}210129{right}00370000"
    head = [underlying, spot, "*", symbol, kind, expiration, quotedate, strike, "5.1", bid, ask]
    return [*head, "100", "1000", "0.2", "0.5", "0.01", "-0.1", "0.3"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def machine_tz(monkeypatch: pytest.MonkeyPatch):
    """Set the process time zone (``TZ`` + ``time.tzset()``); restored after the test."""

    def set_tz(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


# -- item 5: tz-aware timestamps are dated in exchange time, whatever the machine's TZ -------------
@pytest.mark.parametrize("tz", ["America/New_York", "UTC"])
def test_item5_parquet_utc_dates_are_not_shifted_by_the_machine_tz(
    tmp_path: Path, machine_tz, tz: str
) -> None:
    machine_tz(tz)
    utc = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    frame = pd.DataFrame(
        {
            "underlying": ["SPY", "SPY"],
            "underlying_last": [368.79, 368.79],
            "optionroot": ["SPY210129C00370000", "SPY210129P00370000"],
            "type": ["call", "put"],
            # date labels written as midnight UTC: the written date is the date
            "expiration": [utc("2021-01-29"), utc("2021-01-29")],
            "quotedate": [utc("2021-01-04"), utc("2021-01-04")],
            "strike": [370.0, 370.0],
            "bid": [5.0, 6.1],
            "ask": [5.2, 6.3],
        }
    )
    path = tmp_path / "utc.parquet"
    frame.to_parquet(path)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = store.ingest(path, "vendor")
        assert (rep.rows_added, rep.rows_quarantined) == (2, 0)
        assert store.quote_dates("SPY") == [dt.date(2021, 1, 4)]
        exp = store.snapshot("SPY", "2021-01-04").quotes["expiration"].iloc[0]
        assert exp == pd.Timestamp("2021-01-29")


@pytest.mark.parametrize("tz", ["America/New_York", "UTC"])
def test_item5_intraday_utc_instants_take_the_new_york_date(
    tmp_path: Path, machine_tz, tz: str
) -> None:
    machine_tz(tz)
    # 2021-01-05 01:30 UTC is 2021-01-04 20:30 EST (UTC-5): the New York date is Jan 4
    frame = pd.DataFrame(
        {
            "underlying": ["SPY"],
            "underlying_last": [368.79],
            "optionroot": ["SPY210129C00370000"],
            "type": ["call"],
            "expiration": [pd.Timestamp("2021-01-29")],
            "quotedate": [pd.Timestamp("2021-01-05 01:30", tz="UTC")],
            "strike": [370.0],
            "bid": [5.0],
            "ask": [5.2],
        }
    )
    frame.to_parquet(tmp_path / "i.parquet")
    with ChainStore(tmp_path / "s.duckdb") as store:
        store.ingest(tmp_path / "i.parquet", "vendor")
        assert store.quote_dates("SPY") == [dt.date(2021, 1, 4)]


@pytest.mark.parametrize("tz", ["America/New_York", "UTC"])
def test_item5_ohlc_utc_date_strings_and_dst_offsets(tmp_path: Path, machine_tz, tz: str) -> None:
    machine_tz(tz)
    # 2019-01-01 was a holiday; the first bar is the session of 2019-01-02
    pd.DataFrame(
        {
            "Date": ["2019-01-02T00:00:00+00:00", "2019-01-03T00:00:00+00:00"],
            "Close": [2510.03, 2447.89],
        }
    ).to_csv(tmp_path / "utc.csv", index=False)
    df = load_ohlc(tmp_path / "utc.csv")
    assert list(df.index.strftime("%Y-%m-%d")) == ["2019-01-02", "2019-01-03"]
    # New York offsets change at DST (2019-03-10): -05:00 before, -04:00 after
    pd.DataFrame(
        {
            "Date": ["2019-03-08 00:00:00-05:00", "2019-03-11 00:00:00-04:00"],
            "Close": [2743.07, 2783.30],
        }
    ).to_csv(tmp_path / "dst.csv", index=False)
    df = load_ohlc(tmp_path / "dst.csv")
    assert list(df.index.strftime("%Y-%m-%d")) == ["2019-03-08", "2019-03-11"]
    assert str(df.index.tz) == ET
    # closing-time instants: 2019-03-08 16:00 EST = 21:00 UTC -> the New York date
    pd.DataFrame(
        {"Date": ["2019-03-08T21:00:00Z", "2019-03-11T20:00:00Z"], "Close": [1.0, 2.0]}
    ).to_csv(tmp_path / "close.csv", index=False)
    df = load_ohlc(tmp_path / "close.csv")
    assert list(df.index.strftime("%Y-%m-%d")) == ["2019-03-08", "2019-03-11"]


# -- item 6: date formats decided per file; 2-digit years; far expiries quarantined ---------------
def test_item6_day_first_file_is_read_day_first(tmp_path: Path) -> None:
    # 03/01/2017 is 3 January: the expiry 20/01/2017 (a first component above 12) proves DD/MM
    rows = [
        vrow("03/01/2017", "20/01/2017", "370", "call"),
        vrow("03/01/2017", "20/01/2017", "370", "put", "6.10", "6.30"),
    ]
    path = write_csv(tmp_path / "ddmm.csv", VENDOR_HEADER, rows)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = store.ingest(path, "vendor")
        assert (rep.rows_added, rep.rows_quarantined) == (2, 0)
        assert store.quote_dates("SPY") == [dt.date(2017, 1, 3)]
        q = store.snapshot("SPY", "2017-01-03").quotes
        assert set(q["expiration"]) == {pd.Timestamp("2017-01-20")}


def test_item6_ambiguous_file_asks_for_date_format(tmp_path: Path) -> None:
    rows = [vrow("03/01/2017", "06/01/2017"), vrow("03/01/2017", "06/01/2017", kind="put")]
    path = write_csv(tmp_path / "amb.csv", VENDOR_HEADER, rows)
    with ChainStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(DataValidationError) as info:
            store.ingest(path, "vendor")
        msg = str(info.value)
        assert "\n" not in msg and "amb.csv" in msg and "date_format" in msg
        assert store.table_counts()["raw_options_chains"] == 0
        cfg = ChainIngestConfig(date_format="%d/%m/%Y")
        store.ingest(path, "vendor", config=cfg)
        assert store.quote_dates("SPY") == [dt.date(2017, 1, 3)]


def test_item6_two_digit_years(tmp_path: Path) -> None:
    rows = [vrow("1/3/11", "1/21/11"), vrow("1/3/11", "1/21/11", kind="put")]
    path = write_csv(tmp_path / "yy.csv", VENDOR_HEADER, rows)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = store.ingest(path, "vendor")
        assert rep.rows_added == 2
        assert any("2-digit years" in n for n in rep.notes)
        assert store.quote_dates("SPY") == [dt.date(2011, 1, 3)]
        q = store.snapshot("SPY", "2011-01-03").quotes
        assert set(q["expiration"]) == {pd.Timestamp("2011-01-21")}
    pd.DataFrame({"DATE": ["1/3/11", "1/4/11", "1/14/11"], "VIX": [17.6, 17.4, 15.5]}).to_csv(
        tmp_path / "vix.csv", index=False
    )
    df = load_ohlc(tmp_path / "vix.csv")
    assert list(df.index.strftime("%Y-%m-%d")) == ["2011-01-03", "2011-01-04", "2011-01-14"]


def test_item6_far_expiry_is_quarantined_with_a_reason(tmp_path: Path) -> None:
    rows = [
        vrow("2021-01-04", "2021-01-29"),
        vrow("2021-01-04", "9999-12-31", kind="put"),
        vrow("2021-01-04", "2031-01-17", "375"),  # 10.04 years: beyond a 10-year horizon
        vrow("2021-01-04", "2030-12-20", "380"),  # 9.96 years: kept
    ]
    path = write_csv(tmp_path / "far.csv", VENDOR_HEADER, rows)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = store.ingest(path, "vendor")
        assert rep.quarantined_by_reason == {"expiration beyond horizon": 2}
        snap = store.snapshot("SPY", "2021-01-04").quotes
        assert sorted(snap["expiration"]) == [
            pd.Timestamp("2021-01-29"),
            pd.Timestamp("2030-12-20"),
        ]
        assert sorted(store.quarantine()["source_row"].astype(int)) == [2, 3]


# -- item 7: weekend / holiday rows and missing sessions are never silent -------------------------
def test_item7_weekend_holiday_and_missing_sessions(tmp_path: Path) -> None:
    # NYSE sessions of 2019-01-14 .. 2019-01-25 by hand: 14-18, 22-25 (21 is MLK day): 9
    dates = ["2019-01-14", "2019-01-15", "2019-01-18", "2019-01-21", "2019-01-22", "2019-01-25"]
    pd.DataFrame({"Date": dates, "Close": np.arange(1.0, 7.0)}).to_csv(
        tmp_path / "h.csv", index=False
    )
    df = load_ohlc(tmp_path / "h.csv")
    rep = df.attrs["load_report"]
    assert rep.holiday_rows == 1 and any("2019-01-21" in n for n in rep.notes)
    assert rep.missing_sessions == 4  # 16, 17, 23, 24
    assert any(
        "4 NYSE sessions missing (2019-01-16, 2019-01-17, 2019-01-23" in n for n in rep.notes
    )
    # a weekend row with prices (2019-01-19, a Saturday) is a violation
    pd.DataFrame({"Date": [*dates, "2019-01-19"], "Close": np.arange(1.0, 8.0)}).to_csv(
        tmp_path / "w.csv", index=False
    )
    with pytest.raises(DataValidationError, match=r"row 2019-01-19.*weekend"):
        load_ohlc(tmp_path / "w.csv")
    df = load_ohlc(tmp_path / "w.csv", on_invalid="drop")
    assert df.attrs["load_report"].dropped == {
        "invalid: dated on a weekend (no NYSE session), has prices": 1
    }


def test_item7_bad_us_date_names_its_own_row(tmp_path: Path) -> None:
    dates = ["01/14/2019", "01/15/2019", "01/16/2019", "01/17/2019", "13/45/2019"]
    pd.DataFrame({"DATE": dates, "VIX": [1.0, 2.0, 3.0, 4.0, 5.0]}).to_csv(
        tmp_path / "us.csv", index=False
    )
    with pytest.raises(DataValidationError) as info:
        load_ohlc(tmp_path / "us.csv")
    assert "row #5" in str(info.value) and "'13/45/2019'" in str(info.value)


# -- item 8: root named as underlying; marks; parity-forward margin --------------------------------
def test_item8_root_in_the_underlying_column_is_mapped(tmp_path: Path) -> None:
    rows = [
        vrow("2019-04-25", "2019-05-17", "2900", "call", "40", "41", underlying="SPXW",
             root="SPXW", spot="2926.17"),
        vrow("2019-04-25", "2019-05-17", "2900", "put", "20", "21", underlying="SPXW",
             root="SPXW", spot="2926.17"),
    ]  # fmt: skip
    path = write_csv(tmp_path / "spxw.csv", VENDOR_HEADER, rows)
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = store.ingest(path, "vendor")
        assert rep.rows_added == 2
        assert any("SPXW as underlying: stored under SPX" in n for n in rep.notes)
        assert store.quote_dates("SPX") == [dt.date(2019, 4, 25)]
        assert store.quote_dates("SPXW") == []


def _snapshot(underlying: str, price: float, rows: list[tuple]) -> ChainSnapshot:
    q = pd.DataFrame(rows, columns=["root", "expiration", "strike", "right", "bid", "ask"])
    q["expiration"] = pd.to_datetime(q["expiration"]).astype("datetime64[ns]")
    q["mid"] = 0.5 * (q["bid"] + q["ask"])
    for col in QUOTE_COLUMNS:
        if col not in q.columns:
            q[col] = float("nan")
    q["is_liquid"] = True
    t = pd.Timestamp("2019-04-25 15:45", tz=ET)
    return ChainSnapshot(underlying, t, price, q[list(QUOTE_COLUMNS)].copy())


def test_item8_snapshot_labelled_with_the_root_marks_and_counts_stale(tmp_path: Path) -> None:
    exp = "2019-05-17"
    quotes = [("SPXW", exp, 2900.0, "C", 40.0, 41.0), ("SPXW", exp, 2900.0, "P", 20.0, 21.0)]
    broker = OptionsBroker(margin_check=False)
    broker.setcash(100_000.0)
    broker.start()
    call = OptionContract("SPXW", dt.date(2019, 5, 17), 2900.0, "C")
    put = OptionContract("SPXW", dt.date(2019, 5, 17), 2900.0, "P")
    other = OptionContract("SPXW", dt.date(2019, 5, 17), 3000.0, "C")
    broker.execute_snapshot([(call, -1), (put, -1)], 1, _snapshot("SPX", 2926.17, quotes))
    broker.execute_snapshot(
        [(other, 1)], 1, _snapshot("SPX", 2926.17, [("SPXW", exp, 3000.0, "C", 5.0, 5.4)])
    )
    later = [("SPXW", exp, 2900.0, "C", 80.0, 82.0), ("SPXW", exp, 2900.0, "P", 2.0, 2.2)]
    stale = broker.mark_to_snapshot(_snapshot("SPXW", 2970.0, later))
    assert broker.option_positions[call].mark == pytest.approx(81.0)  # (80 + 82) / 2
    assert broker.option_positions[put].mark == pytest.approx(2.1)
    assert stale == 1 and broker.stale_marks[-1][1] == other
    assert broker.underlying_prices["SPX"] == 2970.0


def test_item8_margin_uses_the_parity_forward_without_an_underlying_price() -> None:
    exp = "2019-05-17"
    quotes = [
        ("SPXW", exp, 2900.0, "C", 40.0, 41.0),
        ("SPXW", exp, 2900.0, "P", 20.0, 21.0),
    ]
    broker = OptionsBroker(margin_check=True)
    broker.setcash(1_000_000.0)
    broker.start()
    put = OptionContract("SPXW", dt.date(2019, 5, 17), 2900.0, "P")
    snap = _snapshot("SPX", float("nan"), quotes)
    fills = broker.execute_snapshot([(put, -1)], 1, snap)
    assert len(fills) == 1
    # parity forward at rate 0: K + C_mid - P_mid = 2900 + 40.5 - 20.5 = 2920
    assert any("parity forward 2920.00" in n for n in broker.margin_notes)


# -- item 9: ATM strike sanity bound ---------------------------------------------------------------
def test_item9_thin_chain_has_no_far_atm_strike() -> None:
    exp = "2015-06-19"
    # only 975 has a two-sided call and put: forward = 975 + 1065 - 0.725 = 2039.275 (rate 0)
    rows = [
        ("SPX", exp, 975.0, "C", 1064.0, 1066.0),
        ("SPX", exp, 975.0, "P", 0.45, 1.0),
        ("SPX", exp, 2050.0, "C", 20.0, 21.0),
    ]
    thin = _snapshot("SPX", 2039.0, rows)
    fwd = 975.0 + 1065.0 - 0.725
    assert thin.forward(dt.date(2015, 6, 19), "SPX") == pytest.approx(fwd)
    with pytest.raises(ValueError, match=r"no ATM strike.*975.*52% away.*too thin"):
        thin.atm_strike(dt.date(2015, 6, 19), "SPX")
    near = _snapshot(
        "SPX",
        2039.0,
        [*rows[:2], ("SPX", exp, 2040.0, "C", 30.0, 31.0), ("SPX", exp, 2040.0, "P", 30.0, 31.0)],
    )
    assert near.atm_strike(dt.date(2015, 6, 19), "SPX") == 2040.0


# -- item 10: the butterfly check reaches the extrapolated wings ----------------------------------
VOGT = (-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)  # Gatheral & Jacquier (2014), Example 3.1


def _vogt_w(k: np.ndarray) -> np.ndarray:
    a, b, rho, m, s = VOGT
    return a + b * (rho * (k - m) + np.sqrt((k - m) ** 2 + s * s))


def _g_by_finite_differences(k: float, h: float = 1e-4) -> float:
    w0, wp, wm = (float(_vogt_w(np.array([x]))[0]) for x in (k, k + h, k - h))
    w1, w2 = (wp - wm) / (2 * h), (wp - 2 * w0 + wm) / (h * h)
    return (1 - k * w1 / (2 * w0)) ** 2 - w1 * w1 / 4 * (1 / w0 + 0.25) + w2 / 2


def test_item10_negative_density_beyond_the_quotes_is_counted() -> None:
    from pricing.arbitrage import fit_svi_surface

    # quotes only on |k| <= 0.4, where Vogt's slice is arbitrage-free ...
    k = np.linspace(-0.4, 0.4, 41)
    assert min(_g_by_finite_differences(x) for x in k) > 0
    # ... but its density is negative at k = 0.7 .. 0.79 (< 6 sd = 6 sqrt(w(0)) = 0.79)
    sd = math.sqrt(float(_vogt_w(np.zeros(1))[0]))
    assert _g_by_finite_differences(0.75) < 0 and 0.75 < 6 * sd
    fit = fit_svi_surface(
        k, _vogt_w(k), np.ones_like(k), np.array([0, k.size]), np.array([1.0]), repair=False
    )
    assert fit.k_grid.max() >= 6 * sd * 0.999
    assert fit.butterfly[0] > 0 and fit.min_g[0] < 0
    repaired = fit_svi_surface(
        k, _vogt_w(k), np.ones_like(k), np.array([0, k.size]), np.array([1.0]), repair=True
    )
    assert repaired.butterfly_before[0] > 0 and repaired.repair[0] != 0
    assert repaired.butterfly[0] < repaired.butterfly_before[0]


# -- item 11: one line naming the file and the line ------------------------------------------------
def _one_line(exc: BaseException, path: Path, line: int | None) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    assert str(path) in msg
    if line is not None:
        assert f"line {line}" in msg, msg


def _vendor_rows(n: int) -> list[list[str]]:
    days = pd.bdate_range("2021-01-04", periods=max(n // 40, 1) + 1)
    return [
        vrow(days[i // 40].strftime("%Y-%m-%d"), "2021-06-18", str(300 + i % 40), "call")
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("fault", "line", "words"),
    [
        ("ragged", 15_002, "ragged row, expected 18 columns, found 19"),
        ("latin1", 15_002, "invalid UTF-8"),
        ("empty", 1, "empty file"),
        ("gzip", 1, "gzip-compressed"),
        ("garbage", None, "not a CSV"),
    ],
)
def test_item11_csv_faults_are_one_line(tmp_path: Path, fault: str, line: int | None, words: str):
    lines = [",".join(VENDOR_HEADER)] + [",".join(r) for r in _vendor_rows(16_000)]
    path = tmp_path / "chain.csv"
    if fault == "ragged":
        lines[15_001] += ",extra"
        path.write_text("\n".join(lines) + "\n")
    elif fault == "latin1":
        lines[15_001] = lines[15_001].replace("SPY", "SP\xc9", 1)
        path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "gzip":
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    else:
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 2_000_000, np.uint8).tobytes())
    with ChainStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(DataSourceError) as info:
            store.ingest(path, "vendor")
        _one_line(info.value, path, line)
        assert words in str(info.value)
        assert store.table_counts()["raw_options_chains"] == 0
    code, out = _cli(str(path), "--db", str(tmp_path / "c.db"))
    assert code == 2 and "Traceback" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and words in errors[0]


def test_item11_quoted_thousands_separator_is_quarantined_with_its_value(tmp_path: Path) -> None:
    rows = [vrow("2021-01-04", "2021-01-29"), vrow("2021-01-04", "2021-01-29", kind="put")]
    rows[1][9] = "1,269.61"  # csv.writer quotes it: "1,269.61"
    path = write_csv(tmp_path / "q.csv", VENDOR_HEADER, rows)
    assert '"1,269.61"' in path.read_text()
    with ChainStore(tmp_path / "s.duckdb") as store:
        rep = store.ingest(path, "vendor")
        assert rep.quarantined_by_reason == {"unparseable field: bid": 1}
        q = store.quarantine()
        assert q["detail"].tolist() == ["bid=1,269.61"] and q["source_row"].tolist() == [2]


# -- item 12: exit codes and --replace-dates -------------------------------------------------------
def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ingest", "chains", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_item12_exit_codes(tmp_path: Path) -> None:
    good = [vrow("2021-01-04", "2021-01-29"), vrow("2021-01-04", "2021-01-29", kind="put")]
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a.csv", VENDOR_HEADER, good)
    (folder / "b.csv").write_bytes(gzip.compress(b"not really a csv"))
    db = str(tmp_path / "c.duckdb")
    code, out = _cli(str(folder), "--db", db)
    assert code == 3 and "b.csv" in out and "gzip-compressed" in out
    bad = [vrow("2021-01-05", "2021-01-29", bid="9", ask="1")]  # crossed: quarantined
    code, out = _cli(str(write_csv(tmp_path / "bad.csv", VENDOR_HEADER, bad)), "--db", db)
    assert code == 4 and "every row (1) quarantined" in out
    one = write_csv(tmp_path / "one.csv", VENDOR_HEADER, good[:1])
    with ChainStore(db, read_only=True) as store:
        before = store.table_counts()
    code, out = _cli(str(one), "--db", db)
    assert code == 5 and "refusing to replace SPY 2021-01-04: stored 2 rows" in out
    with ChainStore(db, read_only=True) as store:
        assert store.table_counts() == before
    code, out = _cli(str(one), "--db", db, "--replace-dates")
    assert code == 0
    with ChainStore(db, read_only=True) as store:
        assert store.table_counts()["raw_options_chains"] == 1


def test_item12_replace_refused_in_the_api(tmp_path: Path) -> None:
    good = [vrow("2021-01-04", "2021-01-29"), vrow("2021-01-04", "2021-01-29", kind="put")]
    with ChainStore(tmp_path / "s.duckdb") as store:
        store.ingest(write_csv(tmp_path / "a.csv", VENDOR_HEADER, good), "vendor")
        with pytest.raises(ReplaceRefusedError, match=r"stored 2 rows .* this file has 1"):
            store.ingest(write_csv(tmp_path / "b.csv", VENDOR_HEADER, good[:1]), "vendor")
        assert store.quote_dates("SPY") == [dt.date(2021, 1, 4)]
        assert store.table_counts()["raw_options_chains"] == 2
