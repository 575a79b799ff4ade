"""OptionStrategy on a chain feed of real SPX sessions (2019-05-28 .. 06-07), with a tiny example
strategy (sell a 1-DTE SPXW iron condor each day, hold to the close of expiry).

References, independent of the broker and the strategy: quotes and mids read from the raw parquet
with a separate DuckDB query, SPX closes read from the index file with the ``csv`` module, and
Black-76 greeks recomputed with scipy from the implied vol, forward and tte.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import backtrader as bt
import duckdb
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from brokers import OptionsBroker
from data_feeds import load_ohlc
from data_feeds.chain_feed import chain_feed
from data_feeds.chains import ChainSnapshot
from strategies.base import run_cerebro
from strategies.option_strategy import ComboSpec, OptionStrategy

pytestmark = pytest.mark.shared_data

CHAINS = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
DAYS = ["2019-05-28", "2019-05-29", "2019-05-30", "2019-05-31", "2019-06-03", "2019-06-04"]
DAYS += ["2019-06-05", "2019-06-06", "2019-06-07"]
MAX_DTE = 10  # keep the snapshots small: expiries within 10 calendar days
COMMISSION = 0.65
CONDOR = ComboSpec(kind="iron_condor", root="SPXW", target_dte=1, delta=0.15, width=25)


class ParquetSource:
    """Minimal SnapshotSource over a few sessions of the raw parquet (quote time 15:45 ET)."""

    def __init__(self, path: Path, days: Sequence[str]) -> None:
        sql = f"""
            select quotedate, root, expiration, strike,
                   case type when 'call' then 'C' when 'put' then 'P' end as "right",
                   bid, ask, (bid + ask) / 2 as mid, "last", volume::double as volume,
                   openinterest::double as open_interest, impliedvol as vendor_implied_vol,
                   delta as vendor_delta, gamma as vendor_gamma,
                   cast(null as double) as vendor_theta, cast(null as double) as vendor_vega,
                   bid > 0 as is_liquid, underlying_last
            from read_parquet(?)
            where quotedate in ({", ".join("?::timestamp" for _ in days)})
              and expiration <= quotedate + interval {MAX_DTE} day
            order by quotedate, root, expiration, strike, "right"
        """
        with duckdb.connect() as con:
            rows = con.execute(sql, [str(path), *days]).df()
        self._days = {
            day.date(): g.drop(columns="quotedate").reset_index(drop=True)
            for day, g in rows.groupby("quotedate")
        }

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        return sorted(self._days)

    def snapshot(
        self,
        underlying: str,
        quote_date: dt.date,
        quote_time: dt.time | None = None,
        roots: Sequence[str] | None = None,
        liquid_only: bool = False,
        rate: float = 0.0,
    ) -> ChainSnapshot:
        df = self._days[quote_date]
        if roots is not None:
            df = df[df["root"].isin(list(roots))]
        when = pd.Timestamp.combine(quote_date, quote_time or dt.time(15, 45))
        return ChainSnapshot(
            underlying,
            when.tz_localize("America/New_York"),
            float(df["underlying_last"].iloc[0]),
            df.drop(columns="underlying_last").reset_index(drop=True),
            rate=rate,
            source="parquet-test",
        )


@pytest.fixture(scope="module")
def source(shared_data: Path) -> ParquetSource:
    return ParquetSource(shared_data / CHAINS, DAYS)


@pytest.fixture(scope="module")
def spx_daily(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="SPX")


@pytest.fixture(scope="module")
def raw_rows(shared_data: Path) -> dict[tuple, tuple[float, float]]:
    """(quote date, root, expiration, strike, right) -> (bid, ask), straight from the parquet."""
    days = ", ".join(f"DATE '{d}'" for d in DAYS)
    df = duckdb.sql(
        f"SELECT quotedate::DATE AS d, root, expiration::DATE AS e, strike, type, bid, ask "
        f"FROM read_parquet('{shared_data / CHAINS}') WHERE quotedate::DATE IN ({days})"
    ).df()
    return {
        (r.d.date(), r.root, r.e.date(), float(r.strike), "C" if r.type == "call" else "P"): (
            float(r.bid),
            float(r.ask),
        )
        for r in df.itertuples()
    }


def spx_close_by_csv(shared_data: Path) -> dict[dt.date, float]:
    with open(shared_data / INDEX, newline="") as fh:
        return {
            dt.date.fromisoformat(r["Date"]): float(r["Close"])
            for r in csv.DictReader(fh)
            if r["root"] == "SPX" and r["Date"].startswith("2019")
        }


def make_broker(spx_daily: pd.DataFrame) -> OptionsBroker:
    return OptionsBroker(commission_per_contract=COMMISSION, settlement_prices={"SPX": spx_daily})


class DailyCondor(OptionStrategy):
    """The example: sell a 1-DTE SPXW iron condor every day, hold it to expiry. (3 lines.)"""

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        self.open_combo(CONDOR, 1, tag=f"ic {snapshot.quote_date}")


def test_daily_condor_run_value_identity_and_hand_cash(
    source: ParquetSource, spx_daily: pd.DataFrame, raw_rows: dict, shared_data: Path
) -> None:
    checks: list[tuple[dt.date, float, float]] = []

    class Checked(DailyCondor):
        def next(self) -> None:
            super().next()
            day = self.snapshot.quote_date
            b = self.broker
            marks = sum(
                p.quantity * 0.5 * sum(raw_rows[(day, k.root, k.expiration, k.strike, k.right)])
                for k, p in b.option_positions.items()
            )
            checks.append((day, b.getvalue(), b.getcash() + 100 * marks))

    feed = chain_feed(source, "SPX", roots=["SPXW"], target_dte=1, far_dte=7)
    broker = make_broker(spx_daily)
    strat, value, _ = run_cerebro(Checked, [feed], broker, cash=100_000.0)

    assert len(checks) == len(DAYS)
    for day, got, parts in checks:  # value == cash + marks at raw mids, every bar
        assert got == pytest.approx(parts, abs=1e-6), day
    assert list(value.to_numpy()) == pytest.approx([v for _, v, _ in checks])

    fills = broker.option_fills
    assert len(fills) == 4 * len(DAYS) and strat.rejections == []
    cash = 100_000.0
    for f in fills:  # every fill at the raw touch: sells at the bid, buys at the ask
        bid, ask = raw_rows[
            (f.time.date(), "SPXW", f.contract.expiration, f.contract.strike, f.contract.right)
        ]
        assert f.price == pytest.approx(ask if f.quantity > 0 else bid, abs=1e-9)
        cash += -f.quantity * (ask if f.quantity > 0 else bid) * 100 - COMMISSION * abs(f.quantity)
    closes = spx_close_by_csv(shared_data)
    open_legs = {c: p.quantity for c, p in broker.option_positions.items()}
    for f in fills:  # every leg not still open settled at the SPX close of its expiry
        if f.contract not in open_legs:
            cash += f.quantity * f.contract.intrinsic(closes[f.contract.expiration]) * 100
    assert broker.getcash() == pytest.approx(cash, abs=0.005)
    # each condor was the nearest expiry to 1 DTE (same day on Mon/Wed/Fri); all have settled
    assert open_legs == {} and strat.combos == {}
    assert len(broker.option_settlements) == 4 * len(DAYS)


def test_decisions_never_see_the_close_but_the_value_includes_it(
    source: ParquetSource, spx_daily: pd.DataFrame, shared_data: Path
) -> None:
    seen: list[tuple[dt.date, int]] = []

    class ZeroDte(OptionStrategy):
        def next_chain(self, snapshot: ChainSnapshot) -> None:
            seen.append((snapshot.quote_date, len(self.broker.option_positions)))
            if snapshot.quote_date == dt.date(2019, 6, 3):
                self.open_combo(ComboSpec(kind="straddle", root="SPXW", target_dte=0), 2)
                assert len(self.broker.option_positions) == 2  # open while deciding

    feed = chain_feed(source, "SPX", roots=["SPXW"], target_dte=1, far_dte=7)
    broker = make_broker(spx_daily)
    _, value, _ = run_cerebro(ZeroDte, [feed], broker, cash=100_000.0)
    (open_fill_c, open_fill_p) = broker.option_fills
    strike = open_fill_c.contract.strike
    close = spx_close_by_csv(shared_data)[dt.date(2019, 6, 3)]
    paid = -(open_fill_c.cash_flow + open_fill_p.cash_flow)
    expected = 100_000.0 - paid + 2 * 100 * abs(close - strike)
    assert float(value.loc["2019-06-03"]) == pytest.approx(expected, abs=0.005)
    assert [s.time for s in broker.option_settlements] == [dt.datetime(2019, 6, 3, 16, 0)] * 2
    assert dict(seen)[dt.date(2019, 6, 4)] == 0  # settled before the next decision


def test_helpers_resolve_every_kind_and_close_all(
    source: ParquetSource, spx_daily: pd.DataFrame, raw_rows: dict
) -> None:
    day = dt.date(2019, 5, 30)
    specs = {
        "straddle": ComboSpec(kind="straddle", target_dte=1),
        "strangle": ComboSpec(kind="strangle", target_dte=1, delta=0.2),
        "vertical": ComboSpec(kind="vertical", target_dte=1, right="P", delta=0.2, width=10),
        "condor": CONDOR,
        "calendar": ComboSpec(kind="calendar", target_dte=1, far_dte=6, right="C"),
    }
    out: dict[str, object] = {}

    class Helpers(OptionStrategy):
        def next_chain(self, snapshot: ChainSnapshot) -> None:
            if snapshot.quote_date != day:
                return
            for tag, spec in specs.items():
                out[tag] = self.open_combo(spec, 1, tag=tag)
            out["bad"] = self.open_combo(ComboSpec(kind="straddle", root="SPY"), 1, tag="bad")
            out["frame"] = self.positions_frame()
            out["closed"] = self.close_all()
            out["left"] = dict(self.combos)
            out["rejections"] = list(self.rejections)

    feed = chain_feed(source, "SPX", roots=["SPXW"], start=day, end=day, target_dte=1)
    broker = make_broker(spx_daily)
    run_cerebro(Helpers, [feed], broker, cash=1_000_000.0)

    straddle, strangle, vertical, condor, calendar = (out[k] for k in specs)
    assert [(f.contract.right, f.quantity) for f in straddle] == [("C", 1), ("P", 1)]
    assert straddle[0].contract.strike == straddle[1].contract.strike
    assert strangle[1].contract.strike < strangle[0].contract.strike  # put below call
    long_leg, short_leg = vertical
    assert long_leg.quantity == 1 and short_leg.quantity == -1
    assert short_leg.contract.strike - long_leg.contract.strike == pytest.approx(10.0)
    ks = [f.contract.strike for f in condor]
    assert ks == sorted(ks) and [f.quantity for f in condor] == [1, -1, -1, 1]
    assert ks[1] - ks[0] == pytest.approx(25.0) and ks[3] - ks[2] == pytest.approx(25.0)
    near, far = calendar
    assert near.quantity == -1 and far.quantity == 1 and far.contract.expiration > day
    assert out["bad"] == [] and broker.rejections == []  # unresolvable spec: not sent
    ((_, tag, reason),) = out["rejections"]  # type: ignore[misc]
    assert tag == "bad" and "cannot resolve" in reason
    frame = out["frame"]
    assert sorted(frame["tags"].unique()) == sorted(specs)  # type: ignore[index]

    # close_all: every leg back at the other side of the raw quote; the round trip costs exactly
    # the spreads crossed and the commissions
    opened = [f for k in specs for f in out[k]]  # type: ignore[union-attr]
    closed = out["closed"]
    left = {c for legs in out["left"].values() for c in legs}  # type: ignore[union-attr]
    assert sorted((str(f.contract), -f.quantity) for f in closed) == sorted(
        (str(f.contract), f.quantity) for f in opened if f.contract not in left
    )
    for f in closed:
        bid, ask = raw_rows[
            (day, "SPXW", f.contract.expiration, f.contract.strike, f.contract.right)
        ]
        assert f.price == pytest.approx(ask if f.quantity > 0 else bid, abs=1e-9)
    assert left == set(broker.option_positions)
    for c in left:  # only longs without a bid may be left behind
        assert raw_rows[(day, c.root, c.expiration, c.strike, c.right)][0] == 0.0
    cost = 0.0
    for f in opened:
        bid, ask = raw_rows[
            (day, "SPXW", f.contract.expiration, f.contract.strike, f.contract.right)
        ]
        if f.contract in left:
            cost += ask * 100 * f.quantity + COMMISSION * abs(f.quantity)
        else:
            cost += (ask - bid) * 100 * abs(f.quantity) + 2 * COMMISSION * abs(f.quantity)
    assert broker.getcash() == pytest.approx(1_000_000.0 - cost, abs=0.005)


def test_book_greeks_match_black76_by_hand(source: ParquetSource) -> None:
    snap = source.snapshot("SPX", dt.date(2019, 6, 4), roots=["SPXW"])
    broker = OptionsBroker()
    broker.setcash(1_000_000.0)
    broker.start()
    exp = snap.nearest_expiry(2, "SPXW")
    combo = snap.strangle(exp, "SPXW", delta=0.3)

    class Probe(OptionStrategy):
        pass

    strat = Probe.__new__(Probe)  # helpers only: no Cerebro needed for book_greeks
    OptionStrategy.__init__(strat)
    strat.broker = broker  # type: ignore[misc]
    strat.snapshot = snap
    broker.execute_snapshot(combo, -3, snap)
    got = strat.book_greeks()

    table = snap.with_implied_vols(exp, "SPXW")
    want = {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0}
    for contract, ratio in combo.legs:
        row = table[(table["strike"] == contract.strike) & (table["right"] == contract.right)]
        f, k, t, v = (float(row[c].iloc[0]) for c in ("forward", "strike", "tte", "implied_vol"))
        d1 = (math.log(f / k) + 0.5 * v * v * t) / (v * math.sqrt(t))
        delta = norm.cdf(d1) - (contract.right == "P")
        gamma = norm.pdf(d1) / (f * v * math.sqrt(t))
        vega = f * norm.pdf(d1) * math.sqrt(t)
        theta = -f * norm.pdf(d1) * v / (2 * math.sqrt(t))  # r = 0: Black-76 theta per year
        for name, g in (("delta", delta), ("gamma", gamma), ("vega", vega), ("theta", theta)):
            want[name] += -3 * ratio * 100 * g
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-6), name
    assert got["legs_without_greeks"] == 0
    assert got["vega"] < 0 < got["theta"]  # short strangle: short vega, collects theta


def test_combo_spec_validation() -> None:
    with pytest.raises(ValidationError, match="width"):
        ComboSpec(kind="iron_condor")
    with pytest.raises(ValidationError, match="far_dte"):
        ComboSpec(kind="calendar", target_dte=7, far_dte=7)
    with pytest.raises(ValidationError):
        ComboSpec(kind="straddle", delta=0.7)
    with pytest.raises(ValidationError):
        ComboSpec(kind="straddle", expiry="2019-06-21")  # type: ignore[call-arg]


def test_helpers_need_an_options_broker(source: ParquetSource) -> None:
    class Nothing(OptionStrategy):
        pass

    feed = chain_feed(source, "SPX", roots=["SPXW"], start="2019-06-04", end="2019-06-04")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed)
    cerebro.addstrategy(Nothing)
    with pytest.raises(TypeError, match="OptionsBroker"):
        cerebro.run()
