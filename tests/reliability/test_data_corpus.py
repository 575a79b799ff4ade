# ruff: noqa: E501  (the case tables below are one case per line, on purpose)
"""Bad-input corpus for chain ingest and OHLC loading (issue 17, "What to build").

Every case copies a slice of a real file from ``../shared/data`` into ``tmp_path``, corrupts it in
one way, and runs it through the user's path: ``volsuite ingest chains`` (typer's CliRunner) for
chain files, :func:`data_feeds.load_ohlc` plus ``volsuite ingest underlying`` for daily bars. The
expected outcome of each case is written in its row: rows stored, rows quarantined with their
reason, or ONE error line (naming the file, and the line where it applies) with its exit code.
Every case also asserts: no traceback, and no silent change to an existing store (a store that
already holds two other days is checksummed before and after; an error leaves it identical, a
success only adds the case's own days). Expected row counts are counted in the test from the
source rows with the ``csv`` module and by hand, never read from the code under test.

The table of cases is printed in ``docs/reliability.md`` (``PYTHONPATH=. python
tests/reliability/test_data_corpus.py`` prints it again).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.shared_data

SPY_CHAIN = "options/spy_options_subset_2021.csv.gz"
SPX_LADDER = "options/spx_options_subset_2017_2018.csv.gz"
SPX_2019 = "options/spx_chains_2019q2.parquet"
SPY_BARS = "options/spy_options_subset_2021_underlying.csv"
LONG_DAILY = "index/spx_vix_spy_qqq_daily.csv"
VIX_DAILY = "index/vix_daily.csv"

CASE_DAYS = 3  # the case files hold the first 60 SPY rows: 2021-01-04, 05, 06 (20 quotes each)
CASE_ROWS = 60
OTHER_ROWS = 40  # rows 61-100 (2021-01-07, 08): already in the store before every case


# -- source slices ---------------------------------------------------------------------------------
def spy_lines(shared: Path, n: int = CASE_ROWS, skip: int = 0) -> list[str]:
    """Header + data lines ``skip .. skip + n`` of the SPY vendor file, as text lines."""
    with gzip.open(shared / SPY_CHAIN, "rt") as fh:
        lines = fh.read().splitlines()
    return [lines[0], *lines[1 + skip : 1 + skip + n]]


def cols(lines: list[str]) -> list[str]:
    return lines[0].split(",")


def set_field(line: str, header: list[str], name: str, value: str) -> str:
    parts = next(csv.reader([line]))
    parts[header.index(name)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(parts)
    return buf.getvalue()


def write(path: Path, lines: list[str], *, newline: str = "\n", encoding: str = "utf-8") -> Path:
    data = (newline.join(lines) + newline).encode(encoding)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def redate(lines: list[str], fmt: Callable[[str], str]) -> list[str]:
    h = cols(lines)
    out = [lines[0]]
    for ln in lines[1:]:
        for name in ("expiration", "quotedate"):
            ln = set_field(ln, h, name, fmt(next(csv.reader([ln]))[h.index(name)]))
        out.append(ln)
    return out


def dmy(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def mdy(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{m}/{d}/{y}"


def mdyy(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{int(m)}/{int(d)}/{y[2:]}"


# -- expectations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    """The case's file is stored: ``added`` valid rows, ``quarantined`` by reason, ``exit``."""

    added: int
    quarantined: dict[str, int] = field(default_factory=dict)
    exit: int = 0

    def __str__(self) -> str:
        if self.added == -1:
            return "every row of the slice stored under SPX, quote date 2019-05-01; exit 0"
        q = ", ".join(f"{n} quarantined: {r}" for r, n in self.quarantined.items())
        return f"stored {self.added}" + (f"; {q}" if q else "") + f"; exit {self.exit}"


@dataclass(frozen=True)
class Fails:
    """One error line containing ``words`` (and ``line N`` when given); exit ``exit``; the
    existing store unchanged."""

    words: str
    exit: int = 2
    line: int | None = None

    def __str__(self) -> str:
        where = f" at line {self.line}" if self.line else ""
        return f"error{where}: '{self.words}'; exit {self.exit}; store unchanged"


@dataclass(frozen=True)
class Loaded:
    """``load_ohlc`` returns ``rows`` bars; ``check`` (on the report) holds."""

    rows: int
    what: str = ""
    check: Callable[[object], bool] | None = None

    def __str__(self) -> str:
        return f"loaded {self.rows} bars" + (f"; {self.what}" if self.what else "")


@dataclass(frozen=True)
class Case:
    id: str
    how: str
    make: Callable[[Path, Path], list[Path]]  # (shared, tmp) -> [setup files..., case file]
    expect: Stored | Fails | Loaded
    extra: tuple[str, ...] = ()
    fmt: str = "vendor"
    setup: int = 0  # leading files of make()'s list ingested before the checksum
    tz: str | None = None


def _one(fn: Callable[[Path, Path], Path]) -> Callable[[Path, Path], list[Path]]:
    return lambda s, t: [fn(s, t)]


# -- chain cases -----------------------------------------------------------------------------------
def _ragged_extra(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    ls[44] += ",surplus"
    return write(t / "ragged.csv", ls)


def _ragged_short(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    ls[29] = ",".join(ls[29].split(",")[:-3])
    return write(t / "short.csv", ls)


def _field(name: str, value: str, row: int = 10, file: str = "f.csv"):
    def make(s: Path, t: Path) -> Path:
        ls = spy_lines(s)
        ls[row] = set_field(ls[row], cols(ls), name, value)
        return write(t / file, ls)

    return make


def _latin1(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    data = ("\n".join(ls) + "\n").encode()
    pos = sum(len(x) + 1 for x in ls[:49])  # start of file line 50
    return _bytes(t / "latin1.csv", data[:pos] + b"\xc9" + data[pos + 1 :])


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _late_ragged(s: Path, t: Path) -> Path:
    with gzip.open(s / SPX_LADDER, "rt") as fh:
        ls = fh.read().splitlines()
    ls[15_001] += ",x"
    return write(t / "late.csv", ls)


def _late_latin1(s: Path, t: Path) -> Path:
    with gzip.open(s / SPX_LADDER, "rb") as fh:
        data = fh.read()
    starts = [0, *[i + 1 for i, b in enumerate(data) if b == 10]]
    pos = starts[15_001]  # file line 15,002
    return _bytes(t / "late_latin1.csv", data[:pos] + b"\xe9" + data[pos + 1 :])


def _dup_header(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    ls[0] = ls[0].replace("optionalias", "bid")
    return write(t / "duphead.csv", ls)


def _drop_column(s: Path, t: Path) -> Path:
    df = pd.read_csv(io.StringIO("\n".join(spy_lines(s))), dtype=str)
    path = t / "nobid.csv"
    df.drop(columns=["bid"]).to_csv(path, index=False)
    return path


def _ambiguous(s: Path, t: Path) -> Path:
    # quote dates 2021-01-04..06 and the rows expiring 2021-02-12 (day <= 12): every slash date
    # of the file reads as a valid day both ways
    ls = spy_lines(s)
    h = cols(ls)
    keep = [ln for ln in ls[1:] if next(csv.reader([ln]))[h.index("expiration")] == "2021-02-12"]
    rows = [ls[0], *keep] if keep else [ls[0]]
    rows += [set_field(ls[1], h, "expiration", "2021-03-05")]
    return write(t / "amb.csv", redate(rows, dmy))


def _swap_all(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    h = cols(ls)
    out = [ls[0]]
    for ln in ls[1:]:
        p = next(csv.reader([ln]))
        bid, ask = p[h.index("bid")], p[h.index("ask")]
        ln = set_field(ln, h, "bid", str(float(ask) + 1.0))
        out.append(set_field(ln, h, "ask", bid))
    return write(t / "crossed.csv", out)


def _one_row_day(s: Path, t: Path) -> list[Path]:
    ls = spy_lines(s)
    return [write(t / "full.csv", ls), write(t / "one.csv", [ls[0], ls[1]])]


def _folder(bad: bytes | None, extra_name: str) -> Callable[[Path, Path], list[Path]]:
    def make(s: Path, t: Path) -> list[Path]:
        d = t / "folder"
        d.mkdir()
        write(d / "a.csv", spy_lines(s))
        if bad is None:
            (d / extra_name).write_bytes((s / SPY_BARS).read_bytes())
        else:
            (d / extra_name).write_bytes(bad)
        return [d]

    return make


def _spx_parquet(s: Path, t: Path, *, tz: bool = False, underlying: str | None = None) -> Path:
    p = pd.read_parquet(s / SPX_2019)
    d = p[(p.quotedate == "2019-05-01") & (p.root == "SPXW") & (p.expiration <= "2019-05-03")]
    d = d.copy()
    if tz:
        for c in ("quotedate", "expiration"):
            d[c] = pd.to_datetime(d[c]).dt.tz_localize("UTC")
    if underlying:
        d["underlying"] = underlying
    path = t / ("spx_tz.parquet" if tz else "spx.parquet")
    d.to_parquet(path)
    return path


def spx_slice_counts(s: Path) -> tuple[int, int]:
    """(rows, crossed) of the 2019 SPXW slice, counted with pandas from the raw file."""
    p = pd.read_parquet(s / SPX_2019)
    d = p[(p.quotedate == "2019-05-01") & (p.root == "SPXW") & (p.expiration <= "2019-05-03")]
    return len(d), int((d.bid > d.ask).sum())


def _to_parquet(s: Path, t: Path) -> Path:
    df = pd.read_csv(io.StringIO("\n".join(spy_lines(s))))
    path = t / "spy.parquet"
    df.to_parquet(path)
    return path


def _bad_magic(s: Path, t: Path) -> Path:
    return write(t / "fake.parquet", spy_lines(s))


def _truncated_gz(s: Path, t: Path) -> Path:
    data = gzip.compress(("\n".join(spy_lines(s, 2000)) + "\n").encode())
    return _bytes(t / "cut.csv.gz", data[: len(data) // 2])


def _nul_mid(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    ls[39] = ls[39][:5] + "\x00" + ls[39][6:]
    return write(t / "nul.csv", ls)


def _unterminated(s: Path, t: Path) -> Path:
    ls = spy_lines(s)
    ls[29] = ls[29].replace(",call,", ',"call,').replace(",put,", ',"put,')
    return write(t / "quote.csv", ls)


def _duplicates(conflict: bool) -> Callable[[Path, Path], Path]:
    def make(s: Path, t: Path) -> Path:
        ls = spy_lines(s)
        dup = set_field(ls[5], cols(ls), "last", "99.99") if conflict else ls[5]
        return write(t / ("conflict.csv" if conflict else "dup.csv"), [*ls, dup])

    return make


CHAIN_CASES: list[Case] = [
    Case("C01", "first 60 SPY rows (3 days), unchanged", _one(lambda s, t: write(t / "spy.csv", spy_lines(s))), Stored(60)),
    Case("C02", "the same file twice (second ingest: idempotent)", lambda s, t: [write(t / "spy.csv", spy_lines(s))] * 2, Stored(60), setup=1),
    Case("C03", "gzip copy named .csv.gz", _one(lambda s, t: write(t / "spy.csv.gz", spy_lines(s))), Stored(60)),
    Case("C04", "converted to parquet (typed columns)", _one(_to_parquet), Stored(60)),
    Case("C05", "CRLF line endings", _one(lambda s, t: write(t / "crlf.csv", spy_lines(s), newline="\r\n")), Stored(60)),
    Case("C06", "UTF-8 byte-order mark", _one(lambda s, t: write(t / "bom.csv", ["\ufeff" + spy_lines(s)[0], *spy_lines(s)[1:]])), Stored(60)),
    Case("C07", "semicolon delimiter", _one(lambda s, t: write(t / "semi.csv", [ln.replace(",", ";") for ln in spy_lines(s)])), Stored(60)),
    Case("C08", "dates rewritten DD/MM/YYYY", _one(lambda s, t: write(t / "dmy.csv", redate(spy_lines(s), dmy))), Stored(60)),
    Case("C09", "dates rewritten MM/DD/YYYY", _one(lambda s, t: write(t / "mdy.csv", redate(spy_lines(s), mdy))), Stored(60)),
    Case("C10", "dates rewritten M/D/YY (2-digit years)", _one(lambda s, t: write(t / "mdyy.csv", redate(spy_lines(s), mdyy))), Stored(60)),
    Case("C11", "DD/MM file whose every date has day <= 12", _one(_ambiguous), Fails("ambiguous dates", 2)),
    Case("C12", "ragged row (extra field) at line 45", _one(_ragged_extra), Fails("ragged row, expected 18 columns, found 19", 2, 45)),
    Case("C13", "ragged row (3 fields short) at line 30", _one(_ragged_short), Fails("ragged row, expected 18 columns, found 15", 2, 30)),
    Case("C14", "ragged row at line 15,002 (after the sniffing sample)", _one(_late_ragged), Fails("ragged row", 2, 15_002)),
    Case("C15", "latin-1 byte at line 50", _one(_latin1), Fails("invalid UTF-8", 2, 50)),
    Case("C16", "latin-1 byte at line 15,002", _one(_late_latin1), Fails("invalid UTF-8", 2, 15_002)),
    Case("C17", "empty file (0 bytes)", _one(lambda s, t: _bytes(t / "empty.csv", b"")), Fails("empty file", 2, 1)),
    Case("C18", "header only", _one(lambda s, t: write(t / "head.csv", spy_lines(s, 0))), Fails("no data rows", 2, 2)),
    Case("C19", "gzip data named .csv", _one(lambda s, t: _bytes(t / "gz.csv", gzip.compress("\n".join(spy_lines(s)).encode()))), Fails("gzip-compressed", 2, 1)),
    Case("C20", "2 MB of random bytes named .csv", _one(lambda s, t: _bytes(t / "garbage.csv", np.random.default_rng(1).integers(0, 256, 2_000_000, np.uint8).tobytes())), Fails("not a CSV", 2)),
    Case("C21", "prose text with no delimiter", _one(lambda s, t: _bytes(t / "prose.csv", b"This is not a table\nat all\n")), Fails("no column delimiter", 2, 1)),
    Case("C22", "truncated .csv.gz (cut in half)", _one(_truncated_gz), Fails("cut.csv.gz", 2)),
    Case("C23", "NUL byte in line 40", _one(_nul_mid), Fails("binary data (NUL byte)", 2, 40)),
    Case("C24", "duplicate column name in the header", _one(_dup_header), Fails("appears twice", 2, 1)),
    Case("C25", "bid column removed", _one(_drop_column), Fails("not a vendor layout: missing column(s) ['bid']", 2)),
    Case("C26", "CSV text named .parquet", _one(_bad_magic), Fails("not a parquet file", 2)),
    Case("C27", 'ask "1,269.61" (quoted thousands separator) in row 10', _one(_field("ask", "1,269.61")), Stored(59, {"unparseable field: ask": 1})),
    Case("C28", "expiration 9999-12-31 in row 10", _one(_field("expiration", "9999-12-31")), Stored(59, {"expiration beyond horizon": 1})),
    Case("C29", "expiration 12 years out in row 10", _one(_field("expiration", "2033-01-21")), Stored(59, {"expiration beyond horizon": 1})),
    Case("C30", "bid > ask in row 10", _one(_field("bid", "99")), Stored(59, {"crossed quote": 1})),
    Case("C31", "negative bid in row 10", _one(_field("bid", "-1")), Stored(59, {"negative price": 1})),
    Case("C32", "strike 0 in row 10", _one(_field("strike", "0")), Stored(59, {"non-positive strike": 1})),
    Case("C33", "empty bid in row 10", _one(_field("bid", "")), Stored(59, {"missing required field: bid": 1})),
    Case("C34", "option type 'X' in row 10", _one(_field("type", "X")), Stored(59, {"unparseable field: option_type": 1})),
    Case("C35", "bid 'inf' in row 10", _one(_field("bid", "inf")), Stored(59, {"unparseable field: bid": 1})),
    Case("C36", "strike x1000 in row 10", _one(_field("strike", "355000")), Stored(59, {"strike in wrong unit": 1})),
    Case("C37", "quote date on a Saturday (2021-01-09) in row 10", _one(_field("quotedate", "2021-01-09")), Stored(59, {"quote date is not an NYSE session": 1})),
    Case("C38", "quote date '2021-13-45' in row 10", _one(_field("quotedate", "2021-13-45")), Stored(59, {"unparseable field: quote_date": 1})),
    Case("C39", "row 5 repeated at the end", _one(_duplicates(False)), Stored(60, {"duplicate": 1})),
    Case("C40", "row 5 repeated with another last price", _one(_duplicates(True)), Stored(59, {"conflicting duplicate": 2})),
    Case("C41", "unknown option root ZZZ in row 10", _one(_field("optionroot", "ZZZ210129P00345000")), Fails("add [roots.ZZZ] style", 2)),
    Case("C42", "every row crossed (bid and ask swapped)", _one(_swap_all), Stored(0, {"crossed quote": 60}, exit=4)),
    Case("C43", "one row for a stored day (after the 60-row file)", _one_row_day, Fails("refusing to replace SPY 2021-01-04: stored 20 rows", 5), setup=1),
    Case("C44", "the same with --replace-dates", _one_row_day, Stored(41), extra=("--replace-dates",), setup=1),
    Case("C45", "folder: good file + gzip bytes named .csv", _folder(gzip.compress(b"x"), "b.csv"), Stored(60, exit=3)),
    Case("C46", "folder: good file + the underlying bars file", _folder(None, "spy_underlying.csv"), Stored(60)),
    Case("C47", "2019 SPXW slice, underlying column says SPXW", _one(lambda s, t: _spx_parquet(s, t, underlying="SPXW")), Stored(-1)),
    Case("C48", "2019 SPXW slice, dates tz-aware UTC, machine TZ=America/New_York", _one(lambda s, t: _spx_parquet(s, t, tz=True)), Stored(-1), tz="America/New_York"),
    Case("C49", "unterminated quote opened in line 30", _one(_unterminated), Fails("unterminated quote", 2, 30)),
]  # fmt: skip


# -- OHLC cases ------------------------------------------------------------------------------------
def spx_2019(s: Path) -> pd.DataFrame:
    """SPX rows of 2019 from the long daily file, read with the csv module (the reference)."""
    with (s / LONG_DAILY).open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["root"] == "SPX" and r["Date"][:4] == "2019"]
    return pd.DataFrame(rows)


def vix_2019_lines(s: Path) -> list[str]:
    lines = (s / VIX_DAILY).read_text().splitlines()
    return [lines[0], *[ln for ln in lines[1:] if ln.split(",")[0].endswith("/2019")]]


def _ohlc_csv(name: str, mutate: Callable[[pd.DataFrame], pd.DataFrame] | None = None):
    def make(s: Path, t: Path) -> list[Path]:
        df = spx_2019(s).drop(columns=["root"])
        if mutate is not None:
            df = mutate(df)
        path = t / name
        df.to_csv(path, index=False)
        return [path]

    return make


def _vix(name: str, fn: Callable[[list[str]], list[str]], **kw: str) -> Callable:
    def make(s: Path, t: Path) -> list[Path]:
        return [write(t / name, fn(vix_2019_lines(s)), **kw)]

    return make


def _redate_vix(fmt: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def fn(ls: list[str]) -> list[str]:
        out = [ls[0]]
        for ln in ls[1:]:
            m, d, y = ln.split(",")[0].split("/")
            out.append(fmt(f"{y}-{m}-{d}") + ln[ln.index(",") :])
        return out

    return fn


def _insert(date: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        extra = df.iloc[[10]].copy()
        extra["Date"] = date
        return pd.concat([df, extra]).sort_values("Date")

    return fn


def _set(row: int, col: str, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.iloc[row, df.columns.get_loc(col)] = value
        return df

    return fn


def _ohlc_lines(name: str, fn: Callable[[list[str]], list[str]], encoding: str = "utf-8"):
    def make(s: Path, t: Path) -> list[Path]:
        buf = io.StringIO()
        spx_2019(s).drop(columns=["root"]).to_csv(buf, index=False)
        return [write(t / name, fn(buf.getvalue().splitlines()), encoding=encoding)]

    return make


def _with_line(i: int, fn: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def inner(ls: list[str]) -> list[str]:
        ls = list(ls)
        ls[i - 1] = fn(ls[i - 1])
        return ls

    return inner


SPX19 = 252  # NYSE sessions in 2019 (hand count: 261 weekdays - 9 holidays)
VIX19 = 252

OHLC_CASES: list[Case] = [
    Case("O01", "SPX 2019 rows of the long file, Yahoo layout", _ohlc_csv("spx2019.csv"), Loaded(SPX19, "0 missing sessions", lambda r: r.missing_sessions == 0 and r.holiday_rows == 0)),
    Case("O02", "VIX 2019 slice, Cboe MM/DD/YYYY", _vix("vix.csv", lambda ls: ls), Loaded(VIX19)),
    Case("O03", "VIX 2019 rewritten DD/MM/YYYY", _vix("vix_dmy.csv", _redate_vix(dmy)), Loaded(VIX19, "same dates as O02")),
    Case("O04", "VIX 2019 rewritten M/D/YY", _vix("vix_yy.csv", _redate_vix(mdyy)), Loaded(VIX19, "same dates as O02")),
    Case("O05", "VIX days 1-12 of each month only, DD/MM", _vix("vix_amb.csv", lambda ls: [ls[0], *[ln for ln in _redate_vix(dmy)(ls)[1:] if int(ln[:2]) <= 12]]), Fails("ambiguous dates", 2)),
    Case("O06", "SPX dates as UTC midnight timestamps (+00:00)", _ohlc_csv("utc.csv", lambda d: d.assign(Date=d.Date + "T00:00:00+00:00")), Loaded(SPX19, "first bar 2019-01-02, not the holiday before")),
    Case("O07", "SPX dates with New York offsets across DST", _ohlc_csv("dst.csv", lambda d: d.assign(Date=[x + (" 00:00:00-04:00" if "2019-03-10" < x < "2019-11-03" else " 00:00:00-05:00") for x in d.Date])), Loaded(SPX19, "same dates")),
    Case("O08", "SPX closing instants in UTC (21:00Z / 20:00Z)", _ohlc_csv("close_utc.csv", lambda d: d.assign(Date=[x + ("T20:00:00Z" if "2019-03-10" < x < "2019-11-03" else "T21:00:00Z") for x in d.Date])), Loaded(SPX19, "New York dates")),
    Case("O09", "a Saturday row with prices (2019-01-19)", _ohlc_csv("sat.csv", _insert("2019-01-19")), Fails("weekend", 2)),
    Case("O10", "a holiday row with prices (2019-07-04)", _ohlc_csv("hol.csv", _insert("2019-07-04")), Loaded(SPX19 + 1, "1 holiday row flagged", lambda r: r.holiday_rows == 1)),
    Case("O11", "30 sessions removed", _ohlc_csv("gaps.csv", lambda d: d.drop(d.index[100:130])), Loaded(SPX19 - 30, "30 missing sessions reported", lambda r: r.missing_sessions == 30)),
    Case("O12", "Close NaN on a trading day", _ohlc_csv("nan.csv", _set(20, "Close", "")), Fails("missing value on a trading day", 2)),
    Case("O13", "High below Low", _ohlc_csv("hl.csv", _set(20, "High", "1.0")), Fails("high < low", 2)),
    Case("O14", "duplicate date", _ohlc_csv("dup.csv", _insert("2019-01-16")), Fails("duplicate date", 2)),
    Case("O15", "ragged row at line 40", _ohlc_lines("ragged.csv", _with_line(40, lambda ln: ln + ",1")), Fails("ragged row", 2, 40)),
    Case("O16", 'Close "1,269.61" at row 30', _ohlc_csv("q.csv", _set(29, "Close", "1,269.61")), Fails("'1,269.61' is not a number", 2)),
    Case("O17", "latin-1 byte at line 100", _ohlc_lines("l1.csv", _with_line(100, lambda ln: ln + ",\xe9"[1:]), encoding="latin-1"), Fails("invalid UTF-8", 2, 100)),
    Case("O18", "empty file", lambda s, t: [_bytes(t / "e.csv", b"")], Fails("empty file", 2, 1)),
    Case("O19", "gzip data named .csv", lambda s, t: [_bytes(t / "g.csv", gzip.compress((s / VIX_DAILY).read_bytes()))], Fails("gzip-compressed", 2, 1)),
    Case("O20", "random bytes named .csv", lambda s, t: [_bytes(t / "r.csv", np.random.default_rng(2).integers(0, 256, 100_000, np.uint8).tobytes())], Fails("not a CSV", 2)),
    Case("O21", "date 'yesterday' at row 7", _ohlc_csv("y.csv", _set(6, "Date", "yesterday")), Fails("'yesterday' is neither ISO", 2)),
    Case("O22", "negative Close", _ohlc_csv("neg.csv", _set(15, "Close", "-5")), Fails("close must be > 0", 2)),
    Case("O23", "rows in reverse order", _ohlc_csv("rev.csv", lambda d: d.iloc[::-1]), Loaded(SPX19, "sorted and noted", lambda r: any("sorted" in n for n in r.notes))),
]  # fmt: skip

ALL_CASES = CHAIN_CASES + OHLC_CASES


# -- runners ---------------------------------------------------------------------------------------
def checksum(db: Path) -> tuple:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = []
        for table in ("raw_options_chains", "quarantined_quotes", "chain_partitions"):
            drop = " EXCLUDE (ingestion_timestamp)" if table != "chain_partitions" else ""
            sql = f"SELECT count(*), sum(hash(s)) FROM (SELECT *{drop} FROM {table}) s"
            out.append(con.execute(sql).fetchall()[0])
        return tuple(out)
    finally:
        con.close()


def cli(*args: str) -> tuple[int, str, BaseException | None]:
    from experiments.cli import app

    result = CliRunner().invoke(app, list(args))
    exc = result.exception
    return result.exit_code, result.output, None if isinstance(exc, SystemExit) else exc


@pytest.fixture
def tz_guard(monkeypatch: pytest.MonkeyPatch):
    yield lambda name: (monkeypatch.setenv("TZ", name), time.tzset())
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[c.id for c in CHAIN_CASES])
def test_chain_case(case: Case, shared_data: Path, tmp_path: Path, tz_guard) -> None:
    if case.tz:
        tz_guard(case.tz)
    db = tmp_path / "store.duckdb"
    other = write(tmp_path / "other_days.csv", spy_lines(shared_data, OTHER_ROWS, CASE_ROWS))
    code, out, exc = cli("ingest", "chains", str(other), "--db", str(db))
    assert (code, exc) == (0, None), out
    files = case.make(shared_data, tmp_path)
    for f in files[: case.setup]:
        code, out, exc = cli("ingest", "chains", str(f), "--db", str(db))
        assert (code, exc) == (0, None), out
    before = checksum(db)
    code, out, exc = cli(
        "ingest", "chains", *map(str, files[case.setup :]), "--db", str(db), *case.extra
    )
    assert exc is None, f"{case.id}: {exc!r}"
    assert "Traceback" not in out and "Possible fixes" not in out
    exp = case.expect
    assert code == exp.exit, f"{case.id}: exit {code}\n{out}"
    con = duckdb.connect(str(db), read_only=True)
    try:
        other_days = con.execute(
            "SELECT count(*) FROM raw_options_chains WHERE quote_date >= DATE '2021-01-07'"
        ).fetchall()[0][0]
        case_rows = con.execute(
            "SELECT count(*) FROM raw_options_chains WHERE quote_date < DATE '2021-01-07'"
        ).fetchall()[0][0]
        reasons = dict(
            con.execute(
                "SELECT reason, count(*) FROM quarantined_quotes WHERE data_source <> "
                "'vendor:other_days.csv' GROUP BY reason"
            ).fetchall()
        )
    finally:
        con.close()
    assert other_days == OTHER_ROWS  # the days already stored are never touched
    if isinstance(exp, Fails):
        errors = [ln for ln in out.splitlines() if ln.startswith(("error:", "skipped"))]
        assert len(errors) == 1, out
        assert exp.words in errors[0], errors[0]
        if exp.line is not None:
            assert f", line {exp.line}:" in errors[0], errors[0]
        assert checksum(db) == before
        return
    added = exp.added
    if added == -1:  # the 2019 slice: its size and crossed rows counted from the raw file
        n, crossed = spx_slice_counts(shared_data)
        con = duckdb.connect(str(db), read_only=True)
        try:
            got = con.execute(
                "SELECT underlying, quote_date, count(*) FROM raw_options_chains "
                "WHERE root = 'SPXW' GROUP BY ALL"
            ).fetchall()
        finally:
            con.close()
        assert got == [("SPX", pd.Timestamp("2019-05-01").date(), n - crossed)]
        return
    assert case_rows == added
    assert reasons == exp.quarantined
    if exp.exit == 3:
        assert any(ln.startswith("skipped") and "b.csv" in ln for ln in out.splitlines())


def _vix_reference_dates(s: Path) -> list[str]:
    out = []
    for ln in vix_2019_lines(s)[1:]:
        m, d, y = ln.split(",")[0].split("/")
        out.append(f"{y}-{m}-{d}")
    return out


def _spx_reference_dates(s: Path) -> list[str]:
    return sorted(spx_2019(s)["Date"])


@pytest.mark.parametrize("case", OHLC_CASES, ids=[c.id for c in OHLC_CASES])
def test_ohlc_case(case: Case, shared_data: Path, tmp_path: Path) -> None:
    from data_feeds import load_ohlc
    from data_feeds.errors import VolsuiteError

    (path,) = case.make(shared_data, tmp_path)
    root = None
    exp = case.expect
    if isinstance(exp, Fails):
        with pytest.raises(VolsuiteError) as info:
            load_ohlc(path, root=root)
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg and exp.words in msg, msg
        if exp.line is not None:
            assert f", line {exp.line}:" in msg, msg
        db = tmp_path / "u.duckdb"
        code, out, exc = cli("ingest", "underlying", str(path), "--symbol", "X", "--db", str(db))
        assert exc is None and code == exp.exit and "Traceback" not in out
        assert len([ln for ln in out.splitlines() if ln.startswith("error:")]) == 1, out
        assert not db.exists() or checksum(db)[0][0] == 0
        return
    df = load_ohlc(path, root=root)
    report = df.attrs["load_report"]
    assert len(df) == exp.rows, report.summary()
    assert exp.check is None or exp.check(report), report.summary()
    days = list(df.index.strftime("%Y-%m-%d"))
    if case.id in ("O02", "O03", "O04"):
        assert days == _vix_reference_dates(shared_data)
    if case.id in ("O01", "O06", "O07", "O08", "O11", "O23"):
        ref = _spx_reference_dates(shared_data)
        if case.id == "O11":
            ref = ref[:100] + ref[130:]
        assert days == ref


def test_corpus_size() -> None:
    assert len(ALL_CASES) >= 45 and len({c.id for c in ALL_CASES}) == len(ALL_CASES)


def case_table() -> str:
    """The markdown table of the corpus (docs/reliability.md)."""
    rows = ["| case | how it is made | expected |", "|---|---|---|"]
    rows += [f"| {c.id} | {c.how} | {c.expect} |" for c in ALL_CASES]
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("COLUMNS", "200")
    print(case_table())
