"""VIX alignment (never more than one day carried, every fill listed) and the backtrader feed."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from data_feeds import align_to_index, load_ohlc, ohlc_feed, session_minutes


def _days(*dates: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(list(dates)).tz_localize("America/New_York")


def test_one_missing_day_is_filled_and_listed_two_are_not() -> None:
    target = _days(
        "2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08", "2020-01-09"
    )
    series = pd.Series([10.0, 11.0, 14.0], index=_days("2020-01-02", "2020-01-06", "2020-01-10"))
    aligned, report = align_to_index(series, target, max_fill=1)
    # 01-03 missing (1 day): filled from 01-02; 01-07/08/09 missing (3 days): only 01-07 filled
    assert aligned.tolist()[:4] == [10.0, 10.0, 11.0, 11.0]
    assert np.isnan(aligned.iloc[4]) and np.isnan(aligned.iloc[5])
    assert report.filled == ["2020-01-03", "2020-01-07"]
    assert report.missing == ["2020-01-08", "2020-01-09"]
    assert report.extra == 1 and report.matched == 2


def test_real_vix_on_sp500_calendar(sp500: pd.DataFrame) -> None:
    vix = load_ohlc("builtin:vix")
    aligned, report = align_to_index(vix["close"], sp500.index, max_fill=1, name="vix")
    inside = sp500.index[sp500.index >= vix.index[0]]
    total = report.matched + len(report.filled) + len(report.missing) + report.outside
    assert total == len(sp500)
    assert report.outside == int((sp500.index < vix.index[0]).sum())
    # every session of 2014-2018 has a VIX print: nothing filled after VIX starts
    assert not [d for d in report.filled if d >= "2014-01-03"]
    assert aligned.loc[inside].notna().all()


def test_feed_exposes_extra_lines_and_keeps_nan() -> None:
    frame = load_ohlc("builtin:sp500", start="2018-01-01", end="2018-01-31")
    frame["forecast_vol"] = np.arange(len(frame), dtype=float)
    frame.iloc[3, frame.columns.get_loc("forecast_vol")] = np.nan
    seen: list[tuple] = []

    class Probe(bt.Strategy):
        def next(self) -> None:
            seen.append((self.data.datetime.date(0), self.data.close[0], self.data.forecast_vol[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ohlc_feed(frame, extra=["forecast_vol"]))
    cerebro.addstrategy(Probe)
    cerebro.run()
    assert len(seen) == len(frame)
    assert seen[0][0] == frame.index[0].date() and seen[0][1] == frame["close"].iloc[0]
    assert np.isnan(seen[3][2]) and seen[4][2] == 4.0


def test_feed_rejects_unknown_or_reserved_columns() -> None:
    frame = load_ohlc("builtin:sp500", start="2018-01-01", end="2018-01-31")
    with pytest.raises(ValueError, match="not in frame columns"):
        ohlc_feed(frame, extra=["nope"])
    with pytest.raises(ValueError, match="clash"):
        ohlc_feed(frame, extra=["volume"])


def test_session_minutes_know_half_days() -> None:
    minutes = session_minutes(_days("2018-11-23", "2018-11-26", "2018-12-24"))
    assert minutes.tolist() == [210.0, 390.0, 210.0]
    with pytest.raises(ValueError, match="2018-12-25 is not an NYSE session"):
        session_minutes(_days("2018-12-25"))
