"""Tests of data_feeds.auction on the real minute quotes: every SPX/SPXW day of the quote file,
the 09:30-09:31 opening straddle re-derived from the raw CSV (csv module), implied vol against
QuantLib's Black formula, prev close / open against the raw CSVs, front-month futures selection,
overnight realized variance, look-ahead, and the backtrader feed."""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import QuantLib as ql

from data_feeds import load_ohlc
from data_feeds.auction import (
    AUCTION_COLUMNS,
    auction_feed,
    auction_frame,
    load_futures_minute,
    load_option_minute_quotes,
)
from data_feeds.errors import DataSourceError
from data_feeds.minute_bars import load_minute_bars

QUOTES = "options/spx_spxw_spy_option_minute_quotes.csv.gz"
INDEX_MINUTE = "intraday/spx_index_minute_2021_2023.csv"
DAILY = "index/spx_vix_spy_qqq_daily.csv"
ES_1MIN = "intraday/es_futures_minute_2013_2020.csv.gz"


@pytest.fixture(scope="module")
def inputs(shared_data: Path) -> dict:
    return {
        "quotes": load_option_minute_quotes(shared_data / QUOTES),
        "index_minute": load_minute_bars(shared_data / INDEX_MINUTE, stamp="start"),
        "daily": load_ohlc(str(shared_data / DAILY), root="SPX"),
    }


@pytest.fixture(scope="module")
def built(inputs: dict) -> tuple[pd.DataFrame, object]:
    return auction_frame(
        inputs["quotes"], daily=inputs["daily"], index_minute=inputs["index_minute"]
    )


def _raw_quotes(shared_data: Path) -> list[dict]:
    with gzip.open(shared_data / QUOTES, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def _f(text: str) -> float:
    return float(text) if text not in ("", "nan", "NaN") else math.nan


def _reference_straddles(rows: list[dict]) -> dict[str, dict | None]:
    """Per SPX/SPXW date: the 0DTE straddle from the 09:30 bars' closing bid/ask, by hand."""
    legs: dict[str, dict[float, dict[str, tuple[float, float]]]] = defaultdict(dict)
    days = set()
    for r in rows:
        if r["root"] not in ("SPX", "SPXW"):
            continue
        days.add(r["date"])
        if r["root"] != "SPXW" or r["expiration"] != r["date"] or r["time_et"] != "09:30":
            continue
        bid, ask = _f(r["bid_close"]), _f(r["ask_close"])
        if not (bid > 0 and ask >= bid):  # no bid / crossed: unusable
            continue
        legs[r["date"]].setdefault(float(r["strike"]), {})[r["right"]] = (bid, ask)
    out: dict[str, dict | None] = {}
    for day in sorted(days):
        pairs = {k: v for k, v in legs.get(day, {}).items() if "C" in v and "P" in v}
        if not pairs:
            out[day] = None
            continue

        def gap(k: float, p: dict = pairs) -> float:
            c, q = p[k]["C"], p[k]["P"]
            return abs((c[0] + c[1]) / 2 - (q[0] + q[1]) / 2)

        k = min(pairs, key=gap)
        c, p = pairs[k]["C"], pairs[k]["P"]
        out[day] = {
            "strike": k,
            "bid": c[0] + p[0],
            "ask": c[1] + p[1],
            "call_mid": (c[0] + c[1]) / 2,
            "put_mid": (p[0] + p[1]) / 2,
            "n": len(pairs),
        }
    return out


def test_rows_for_every_spx_day_with_opening_straddle_from_raw_csv(
    shared_data: Path, built: tuple
) -> None:
    frame, report = built
    ref = _reference_straddles(_raw_quotes(shared_data))
    assert list(frame.index.strftime("%Y-%m-%d")) == sorted(ref)
    assert len(ref) == 7  # SPXW 2021-01-04..08, SPX 2021-01-14, SPXW 2023-06-26 (README)
    assert (frame.index.strftime("%H:%M") == "09:31").all()
    assert str(frame.index.tz) == "America/New_York"
    with_straddle = 0
    for stamp, row in frame.iterrows():
        day = stamp.strftime("%Y-%m-%d")
        r = ref[day]
        if r is None:
            for col in ("atm_strike", "straddle_mid", "implied_vol", "forward"):
                assert math.isnan(row[col]), (day, col)  # absent, not zero
            assert row["n_0dte_strikes"] == 0
            continue
        with_straddle += 1
        assert row["atm_strike"] == r["strike"]
        assert row["straddle_bid"] == pytest.approx(r["bid"], abs=1e-9)
        assert row["straddle_ask"] == pytest.approx(r["ask"], abs=1e-9)
        assert row["straddle_mid"] == pytest.approx((r["bid"] + r["ask"]) / 2, abs=1e-9)
        assert row["forward"] == pytest.approx(r["strike"] + r["call_mid"] - r["put_mid"])
        assert row["n_0dte_strikes"] == r["n"]
        # tte: 09:31 -> 16:00 ET = 389 minutes, ACT/365
        assert row["tte"] == pytest.approx(389 / (365 * 24 * 60), rel=1e-12)
        # QuantLib Black-76 implied std dev of each leg at the parity forward, discount 1
        # (accuracy 1e-12: the default 1e-6 is too loose for an ITM leg)
        for right, price in ((ql.Option.Call, r["call_mid"]), (ql.Option.Put, r["put_mid"])):
            std = ql.blackFormulaImpliedStdDev(
                right, r["strike"], row["forward"], price, 1.0, 0.0, 0.01, 1e-12, 1000
            )
            assert row["implied_vol"] == pytest.approx(std / math.sqrt(row["tte"]), rel=1e-8)
    assert with_straddle == 3  # 0DTE SPXW on 2021-01-04, 01-06, 01-08
    assert report.dates == 7 and report.rows_other_roots > 0  # SPY rows counted, not used
    assert sorted(report.no_0dte) == [d for d in sorted(ref) if ref[d] is None]


def test_prev_close_open_and_overnight_return_against_raw_csvs(
    shared_data: Path, built: tuple
) -> None:
    frame, _ = built
    closes, opens = {}, {}
    with open(shared_data / DAILY, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["root"] == "SPX":
                closes[r["Date"]] = float(r["Close"])
                opens[r["Date"]] = float(r["Open"])
    minute_open = {}
    with open(shared_data / INDEX_MINUTE, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["time_et"] == "09:30":
                minute_open[r["date"]] = (float(r["open"]), float(r["close"]))
    prev_session = {  # NYSE sessions before each date (2021-01-01 is a holiday)
        "2021-01-04": "2020-12-31",
        "2021-01-05": "2021-01-04",
        "2021-01-06": "2021-01-05",
        "2021-01-07": "2021-01-06",
        "2021-01-08": "2021-01-07",
        "2021-01-14": "2021-01-13",
        "2023-06-26": "2023-06-23",
    }
    for stamp, row in frame.iterrows():
        day = stamp.strftime("%Y-%m-%d")
        assert row["prev_close"] == pytest.approx(closes[prev_session[day]], rel=1e-12)
        if day in minute_open:
            assert row["open_source"] == "minute"
            assert row["open_print"] == minute_open[day][0]
            assert row["spot_0931"] == minute_open[day][1]
        else:
            assert row["open_source"] == "daily"
            assert row["open_print"] == pytest.approx(opens[day], rel=1e-12)
            assert math.isnan(row["spot_0931"])
        assert row["overnight_return"] == pytest.approx(
            math.log(row["open_print"] / closes[prev_session[day]]), rel=1e-12
        )
        # no futures bars overlap these dates: overnight fields absent (NaN), not zero
        assert math.isnan(row["overnight_vol"]) and math.isnan(row["jump_flag"])


def test_no_lookahead_truncating_after_each_open(inputs: dict, built: tuple) -> None:
    full, _ = built
    q, im, daily = inputs["quotes"], inputs["index_minute"], inputs["daily"]
    for stamp in full.index:
        cut_bar = stamp - pd.Timedelta(minutes=1)  # the 09:30 bar (start stamp) ends at 09:31
        day = stamp.normalize()
        d = daily[daily.index <= day].copy()
        d.loc[d.index == day, ["high", "low", "close"]] = np.nan  # unknown at 09:31
        part, _ = auction_frame(
            q[q["timestamp"] <= cut_bar], daily=d, index_minute=im[im.index <= cut_bar]
        )
        pd.testing.assert_frame_equal(part, full.loc[:stamp])


def test_front_month_by_volume_and_overnight_rv(shared_data: Path) -> None:
    fut, report = load_futures_minute(shared_data / ES_1MIN)
    # independent: CME session volume per contract month from the raw CSV
    vol: dict[tuple[str, str], int] = defaultdict(int)
    rows = []
    with gzip.open(shared_data / ES_1MIN, "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            ts = pd.Timestamp(r["timestamp_utc"], tz="UTC").tz_convert("America/New_York")
            session = (ts + pd.Timedelta(hours=6)).strftime("%Y-%m-%d")
            vol[(session, r["contract_month"])] += int(r["volume"])
            rows.append((ts, session, r["contract_month"], float(r["close"])))
    front = {}
    for (session, month), v in vol.items():
        if session not in front or v > vol[(session, front[session])]:
            front[session] = month
    assert {k: str(v) for k, v in report.front_month.items()} == front
    assert front["2013-12-18"] == "201403" and front["2013-10-08"] == "201312"  # the roll
    kept = [r for r in rows if r[2] == front[r[1]]]
    assert report.rows_in == len(rows) and report.rows_kept == len(kept) == len(fut)
    assert report.rows_back_months == len(rows) - len(kept)
    assert str(fut.index.tz) == "America/New_York"
    # overnight into 2013-10-08: 2013-10-07 16:00 ET .. 2013-10-08 09:29 ET, front month
    lo = pd.Timestamp("2013-10-07 16:00", tz="America/New_York")
    hi = pd.Timestamp("2013-10-08 09:29", tz="America/New_York")
    px = np.array([c for ts, _, m, c in sorted(kept) if lo <= ts <= hi])
    rv_ref = float(np.sum(np.diff(np.log(px)) ** 2))
    quote = pd.DataFrame(
        {
            "date": ["2013-10-08"], "time_et": ["09:30"], "root": ["SPXW"],
            "expiration": ["2013-10-11"], "strike": [1650.0], "right": ["C"],
            "bid_close": [10.0], "ask_close": [11.0],
        }
    )  # fmt: skip
    frame, rep = auction_frame(quote, futures_minute=fut)
    row = frame.iloc[0]
    assert row["overnight_rv"] == pytest.approx(rv_ref, rel=1e-10)
    assert row["overnight_vol"] == pytest.approx(math.sqrt(rv_ref), rel=1e-10)
    assert row["overnight_n_returns"] == px.size - 1
    assert row["jump_flag"] in (0.0, 1.0)
    assert rep.no_0dte == ["2013-10-08"] and math.isnan(row["straddle_mid"])


def test_five_minute_es_file_is_et_and_single_contract(shared_data: Path) -> None:
    fut, report = load_futures_minute(shared_data / "intraday/es_5min_2026.csv.gz")
    assert report.rows_back_months == 0 and report.rows_kept == report.rows_in == len(fut)
    # CME daily halt 17:00-18:00 ET: no bar starts inside it
    minutes = fut.index.hour * 60 + fut.index.minute
    assert not ((minutes >= 17 * 60) & (minutes < 18 * 60)).any()


def test_backtrader_feed_carries_every_line(built: tuple) -> None:
    frame, _ = built
    seen = []

    class Probe(bt.Strategy):
        def next(self) -> None:
            seen.append(
                (
                    self.data.datetime.datetime(0),
                    self.data.close[0],
                    self.data.straddle_mid[0],
                    self.data.implied_vol[0],
                    self.data.atm_forward[0],
                    self.data.overnight_vol[0],
                )
            )

    cerebro = bt.Cerebro()
    cerebro.adddata(auction_feed(frame))
    cerebro.addstrategy(Probe)
    cerebro.run()
    assert len(seen) == len(frame)
    for (when, close, mid, iv, fwd, onv), (stamp, row) in zip(seen, frame.iterrows(), strict=True):
        assert when == stamp.tz_localize(None).to_pydatetime()
        np.testing.assert_equal(
            [close, mid, iv, fwd, onv],
            [row["open_print"], row["straddle_mid"], row["implied_vol"], row["forward"],
             row["overnight_vol"]],
        )  # fmt: skip
    assert set(AUCTION_COLUMNS) <= set(frame.columns)


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "quotes.csv"
    bad.write_text("date,time_et,root\n2021-01-04,09:30,SPX\n")
    with pytest.raises(DataSourceError, match="missing column"):
        load_option_minute_quotes(bad)
    with pytest.raises(DataSourceError, match="not found"):
        load_minute_bars(tmp_path / "nope.csv", stamp="start")
    weird = tmp_path / "fut.csv"
    weird.write_text("time,price\n1,2\n")
    with pytest.raises(DataSourceError, match="unrecognized futures layout"):
        load_futures_minute(weird)
