"""``zero_dte_straddle`` on real 2019 SPXW quotes: the chain market table against the raw vendor
rows, trade P&L by hand, positions carried to a later expiry, and no look-ahead."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from data_feeds import chain_market_table, load_ohlc
from strategies.zero_dte_straddle import ZeroDteStraddle

TZ = "America/New_York"
PARQUET = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"


@pytest.fixture(scope="module")
def spx(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="SPX", start="2015-01-01", end="2019-07-31")


@pytest.fixture(scope="module")
def spx_close(shared_data: Path) -> dict[dt.date, float]:
    """SPX closes read with the csv module (independent of load_ohlc)."""
    out = {}
    with open(shared_data / INDEX, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["root"] == "SPX" and row["Date"].startswith("2019"):
                out[dt.date.fromisoformat(row["Date"])] = float(row["Close"])
    return out


def _raw_straddle(shared_data: Path, day: str, expiration: str) -> dict[str, float]:
    """ATM SPXW straddle of the raw file by hand: forward = mean of K + C - P over the three
    two-sided strikes with the smallest |C - P| (rate 0), ATM = nearest paired strike."""
    con = duckdb.connect()
    rows = con.execute(
        f"""
        select c.strike, c.bid cb, c.ask ca, p.bid pb, p.ask pa, c.underlying_last u
        from '{shared_data / PARQUET}' c join '{shared_data / PARQUET}' p
          on c.strike = p.strike and c.expiration = p.expiration and c.quotedate = p.quotedate
         and c.root = p.root
        where c.root = 'SPXW' and c.type = 'call' and p.type = 'put'
          and c.quotedate = '{day}' and c.expiration = '{expiration}'
        order by c.strike
        """
    ).fetchall()
    two_sided = [r for r in rows if r[1] > 0 and r[3] > 0]
    two_sided.sort(key=lambda r: (abs((r[1] + r[2]) / 2 - (r[3] + r[4]) / 2), r[0]))
    forward = np.mean([k + (cb + ca) / 2 - (pb + pa) / 2 for k, cb, ca, pb, pa, _ in two_sided[:3]])
    atm = min(rows, key=lambda r: (abs(r[0] - forward), r[0]))
    k, cb, ca, pb, pa, u = atm
    return {"strike": k, "call_bid": cb, "call_ask": ca, "put_bid": pb, "put_ask": pa, "spot": u}


def test_chain_market_table_matches_raw_rows(shared_data, chain_store_2019, spx, spx_close):
    zero = chain_market_table(chain_store_2019, spx, expiry="0dte")
    nxt = chain_market_table(chain_store_2019, spx, expiry="next")
    cases = [
        (zero, "2019-05-24", "2019-05-24", 0.0),  # Friday 0DTE
        (nxt, "2019-05-24", "2019-05-28", 1.0),  # Friday -> Tuesday (Memorial Day moved it)
        (nxt, "2019-06-03", "2019-06-05", 2.0),  # Monday -> Wednesday: two sessions to bear
    ]
    for table, day, expiration, full_sessions in cases:
        row = table.loc[pd.Timestamp(day, tz=TZ)]
        raw = _raw_straddle(shared_data, day, expiration)
        assert row["status"] == "ok"
        assert row["strike"] == raw["strike"]
        assert row["spot"] == pytest.approx(raw["spot"])
        for col in ("call_bid", "call_ask", "put_bid", "put_ask"):
            assert row[col] == pytest.approx(raw[col], abs=1e-9), (day, col)
        assert row["straddle_bid"] == pytest.approx(raw["call_bid"] + raw["put_bid"], abs=1e-9)
        assert row["straddle_ask"] == pytest.approx(raw["call_ask"] + raw["put_ask"], abs=1e-9)
        # snapshot stored at 15:45 ET: 15 minutes to today's close, plus the later sessions
        exp = dt.date.fromisoformat(expiration)
        minutes = 15 + (exp - dt.date.fromisoformat(day)).days * 24 * 60
        assert row["tte"] == pytest.approx(minutes / 525_600, rel=1e-12)
        assert row["horizon_sessions"] == pytest.approx(15 / 390 + full_sessions, rel=1e-12)
        assert row["settlement_price"] == pytest.approx(spx_close[exp])
        assert dt.date.fromordinal(int(row["expiration_ordinal"])) == exp
        assert row["trade_minute"] == 15 * 60 + 45
    # 2019-05-27 (Memorial Day holiday snapshot) was quarantined: no row of the table is a holiday
    assert pd.Timestamp("2019-05-27", tz=TZ) not in zero.index
    # a Tuesday has no 0DTE SPXW expiry in 2019 (Mon/Wed/Fri listings)
    assert zero.loc[pd.Timestamp("2019-06-04", tz=TZ), "status"] == "no_0dte_expiry"


def _plugin(store, spx, **fixed) -> ZeroDteStraddle:
    params = {"market_source": "chain", "window": 10, "allow_long": False, **fixed}
    plugin = ZeroDteStraddle(fixed=params, broker={"commission_per_contract": 1.0})
    assert plugin.data_needed() == ("underlying", "chains")
    plugin.prepare({"underlying": spx, "chains": store}, {})
    return plugin


def test_short_0dte_straddle_pnl_by_hand(shared_data, chain_store_2019, spx, spx_close):
    plugin = _plugin(chain_store_2019, spx, chain_expiry="0dte", short_threshold=0.0)
    start, end = pd.Timestamp("2019-05-01", tz=TZ), pd.Timestamp("2019-06-28", tz=TZ)
    res = plugin.backtest(plugin.Params(**plugin.fixed), start, end, cash=100_000.0)
    traded = res.daily_log[res.daily_log["status"] == "traded"]
    assert len(traded) >= 5
    assert set(res.daily_log["market_source"]) == {"chain:SPXW:0dte"}
    for _, r in traded.iterrows():
        day = r["date"].isoformat()
        raw = _raw_straddle(shared_data, day, day)
        assert r["strike"] == raw["strike"]
        close = spx_close[r["date"]]
        # sold at the bids (slippage 0.5 = touch), $1 per contract per leg, PM-settled on the close
        hand = (raw["call_bid"] + raw["put_bid"]) * 100 - 2 * 1.0 - abs(close - raw["strike"]) * 100
        assert r["net_pnl"] == pytest.approx(hand, abs=0.005), day
    # every position is settled inside the window: final value = cash + the sum of trade P&L
    assert res.value.iloc[-1] == pytest.approx(100_000.0 + traded["net_pnl"].sum(), abs=0.005)


def test_next_expiry_positions_are_carried_and_marked(shared_data, chain_store_2019, spx):
    plugin = _plugin(chain_store_2019, spx, chain_expiry="next", short_threshold=0.0)
    start, end = pd.Timestamp("2019-06-03", tz=TZ), pd.Timestamp("2019-06-28", tz=TZ)
    res = plugin.backtest(plugin.Params(**plugin.fixed), start, end, cash=100_000.0)
    log = res.daily_log.set_index("date")
    traded = log[log["status"] == "traded"]
    assert len(traded) >= 3
    assert (traded["settlement_date"] > traded.index.to_series()).all()  # held overnight at least
    # a Monday short expiring Wednesday is marked on Tuesday at Tuesday's raw mids
    monday = dt.date(2019, 6, 10)
    assert log.loc[monday, "status"] == "traded"
    strike, exp = log.loc[monday, "strike"], log.loc[monday, "expiration"]
    assert exp == dt.date(2019, 6, 12)
    con = duckdb.connect()
    mids = dict(
        con.execute(
            f"select type, (bid + ask) / 2 from '{shared_data / PARQUET}' where root = 'SPXW' "
            f"and quotedate = '2019-06-11' and expiration = '2019-06-12' and strike = {strike}"
        ).fetchall()
    )
    monday_mids = dict(
        con.execute(
            f"select type, (bid + ask) / 2 from '{shared_data / PARQUET}' where root = 'SPXW' "
            f"and quotedate = '2019-06-10' and expiration = '2019-06-12' and strike = {strike}"
        ).fetchall()
    )
    # nothing trades or settles on Tuesday (the Wednesday expiry is held): the value moves only by
    # the re-mark of the short straddle from Monday's mids to Tuesday's mids
    assert log.loc[dt.date(2019, 6, 11), "status"] == "already_holding_expiry"
    change = (
        res.value.loc[pd.Timestamp("2019-06-11", tz=TZ)]
        - res.value.loc[pd.Timestamp("2019-06-10", tz=TZ)]
    )
    hand = -(mids["call"] + mids["put"] - monday_mids["call"] - monday_mids["put"]) * 100
    assert change == pytest.approx(hand, abs=0.005)
    assert res.value.iloc[-1] == pytest.approx(100_000.0 + traded["net_pnl"].sum(), abs=0.005)


def test_truncating_the_future_leaves_past_decisions_unchanged(chain_store_2019, spx):
    cut = pd.Timestamp("2019-06-07", tz=TZ)
    full = chain_market_table(chain_store_2019, spx, expiry="next")
    part = chain_market_table(chain_store_2019, spx.loc[:cut], expiry="next", end=cut)
    cols = [c for c in full.columns if c != "settlement_price"]  # settles after the cut
    pd.testing.assert_frame_equal(part[cols], full.loc[:cut, cols])

    plugin = _plugin(chain_store_2019, spx, chain_expiry="next", short_threshold=0.05)
    start = pd.Timestamp("2019-05-01", tz=TZ)
    p = plugin.Params(**plugin.fixed)
    long_run = plugin.backtest(p, start, pd.Timestamp("2019-07-22", tz=TZ), cash=1e5).daily_log
    short_run = plugin.backtest(p, start, cut, cash=1e5).daily_log
    decided = ["date", "forecast_vol", "market_iv", "model_iv", "iv_edge", "position"]
    a = long_run[long_run["date"] <= cut.date()][decided].reset_index(drop=True)
    pd.testing.assert_frame_equal(short_run[decided], a)
    assert math.isfinite(a["iv_edge"].dropna().iloc[0])
