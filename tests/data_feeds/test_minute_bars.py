"""The one minute-bar loader (data_feeds.minute_bars.load_minute_bars) on the real SPX index
minute file, against its raw rows read with the csv module: ``stamp="start"`` puts each bar at the
``date time_et`` written in the file, ``stamp="end"`` one minute later, with the same prices; plus
the one-line errors on bad files."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import pandas as pd
import pytest

from data_feeds.errors import DataSourceError, DataValidationError
from data_feeds.minute_bars import load_minute_bars

INDEX_MINUTE = "intraday/spx_index_minute_2021_2023.csv"


@pytest.fixture(scope="module")
def raw_rows(shared_data: Path) -> list[dict[str, str]]:
    with open(shared_data / INDEX_MINUTE, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.shared_data
@pytest.mark.parametrize("stamp, offset", [("start", 0), ("end", 1)])
def test_both_stamps_match_the_raw_rows(shared_data: Path, raw_rows, stamp: str, offset: int):
    """Every row is kept; 200 seeded random rows plus the first and last, each at its file
    stamp (+1 minute for ``end``) in New York time, with the file's prices to the cent."""
    bars = load_minute_bars(shared_data / INDEX_MINUTE, stamp=stamp)
    assert len(bars) == len(raw_rows)
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert str(bars.index.tz) == "America/New_York"
    rng = random.Random(12)
    picks = [0, len(raw_rows) - 1, *rng.sample(range(len(raw_rows)), 200)]
    for i in picks:
        row = raw_rows[i]
        naive = dt.datetime.strptime(f"{row['date']} {row['time_et']}", "%Y-%m-%d %H:%M")
        when = pd.Timestamp(naive + dt.timedelta(minutes=offset), tz="America/New_York")
        got = bars.loc[when]
        for col in ("open", "high", "low", "close"):
            assert got[col] == pytest.approx(float(row[col]), abs=1e-9), (i, col)
        assert got["volume"] == 0.0  # the index file has no volume column


@pytest.mark.shared_data
def test_the_0930_bar_under_each_stamp(shared_data: Path, raw_rows):
    """The first bar of 2021-01-04 (time_et 09:30 in the file): at 09:30 with ``start``, at
    09:31 with ``end``; nothing of that day before it under either stamp."""
    row = next(r for r in raw_rows if r["date"] == "2021-01-04" and r["time_et"] == "09:30")
    start = load_minute_bars(shared_data / INDEX_MINUTE, stamp="start")
    end = load_minute_bars(shared_data / INDEX_MINUTE, stamp="end")
    day = pd.Timestamp("2021-01-04", tz="America/New_York")
    first_start = start.loc[day : day + pd.Timedelta(days=1)].index[0]
    first_end = end.loc[day : day + pd.Timedelta(days=1)].index[0]
    assert first_start == pd.Timestamp("2021-01-04 09:30", tz="America/New_York")
    assert first_end == pd.Timestamp("2021-01-04 09:31", tz="America/New_York")
    assert start.at[first_start, "open"] == float(row["open"])
    assert end.at[first_end, "close"] == float(row["close"])


def test_stamp_must_be_start_or_end(tmp_path: Path):
    with pytest.raises(ValueError, match="stamp must be 'start' or 'end', got 'close'"):
        load_minute_bars(tmp_path / "x.csv", stamp="close")  # type: ignore[arg-type]


def test_bad_files_fail_on_one_line_naming_the_problem(tmp_path: Path):
    with pytest.raises(DataSourceError, match="minute bar file not found"):
        load_minute_bars(tmp_path / "nope.csv", stamp="start")
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("open,high,low,close\n1,2,0.5,1.5\n")
    with pytest.raises(DataSourceError, match=r"missing column\(s\) \['date\+time_et or "):
        load_minute_bars(no_time, stamp="end")
    crossed = tmp_path / "crossed.csv"
    crossed.write_text("date,time_et,open,high,low,close\n2021-01-04,09:30,10,9,11,10\n")
    with pytest.raises(DataValidationError, match="high < low"):
        load_minute_bars(crossed, stamp="start")
    dup = tmp_path / "dup.csv"
    dup.write_text(
        "date,time_et,open,high,low,close\n2021-01-04,09:30,10,11,9,10\n2021-01-04,09:30,10,11,9,10\n"
    )
    with pytest.raises(DataValidationError, match="duplicated bar"):
        load_minute_bars(dup, stamp="end")
    zero = tmp_path / "zero.csv"
    zero.write_text("date,time_et,open,high,low,close\n2021-01-04,09:30,0,11,9,10\n")
    with pytest.raises(DataValidationError, match="price not finite and > 0"):
        load_minute_bars(zero, stamp="start")
