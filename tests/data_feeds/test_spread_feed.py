"""data_feeds.spread_feed: pair legs (real EWA and GLD files, the compact layout's errors) and
their alignment. The formation and its health gate: tests/indicators/test_formation_health.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_feeds.calendar import TZ
from data_feeds.errors import DataValidationError
from data_feeds.spread_feed import align_legs, load_pair_leg


def test_compact_layout_loads_real_ewa(shared_data: Path) -> None:
    path = shared_data / "pairs" / "ewa_daily_2006_2012.csv"
    leg = load_pair_leg(path, volume_scale=100)
    first = path.read_text().splitlines()[1].split(",")  # date,hi,lo,cl,op,vol
    assert leg.index[0] == pd.Timestamp("2006-04-26", tz=TZ)
    row = leg.iloc[0]
    assert (row["high"], row["low"], row["close"], row["open"]) == tuple(map(float, first[1:5]))
    assert row["volume"] == float(first[5]) * 100
    report = leg.attrs["load_report"]
    assert report.rows_read == report.rows_kept == len(leg) == 1500
    assert any("volume multiplied by 100" in n for n in report.notes)


def test_yahoo_layout_goes_through_load_ohlc(shared_data: Path) -> None:
    leg = load_pair_leg(shared_data / "pairs" / "gld_daily.csv.gz", start="2010-01-01")
    assert leg.index[0] >= pd.Timestamp("2010-01-01", tz=TZ)
    assert {"open", "high", "low", "close", "volume"} <= set(leg.columns)
    assert leg.attrs["load_report"].dropped.get("before start", 0) > 0


def test_compact_layout_bad_date_names_row(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("date,hi,lo,cl,op,vol\n20060426,2,1,1.5,1.5,10\n2006-04-27,2,1,1.5,1.5,10\n")
    with pytest.raises(DataValidationError, match=r"row #2, field 'date'.*YYYYMMDD"):
        load_pair_leg(f)
    f.write_text("date,hi,lo,cl,op,vol\n20060426,2,1,1.5,1.5,10\n20060427,1,2,1.5,1.5,10\n")
    with pytest.raises(DataValidationError, match=r"2006-04-27.*high < low"):
        load_pair_leg(f)


def test_align_legs_counts_what_each_side_lost() -> None:
    idx = pd.bdate_range("2015-01-02", periods=50, tz=TZ, name="date")
    y = pd.Series(np.linspace(60.0, 70.0, 50), idx, name="y")
    x = pd.Series(np.linspace(40.0, 45.0, 50), idx, name="x")
    yf = y.to_frame("close").drop(y.index[[3, 4]])
    xf = x.to_frame("close").drop(x.index[[10]])
    ya, xa, report = align_legs(yf, xf, y_name="Y", x_name="X")
    assert len(ya) == len(xa) == report.common == 47
    assert report.y_only == [x.index[10]]
    assert report.x_only == list(y.index[[3, 4]])
    assert "dropped 1 with only Y" in report.summary()
