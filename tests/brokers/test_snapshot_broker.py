"""OptionsBroker against real chain snapshots: fills, rejections, settlement, margin, value.

Snapshots are built from the raw rows of ``../shared/data/options`` (DuckDB query, one per quote
date, stamped 15:45 ET). Every expected number is computed in the test from raw rows read with a
separate query (``raw_quote``) or from the index file read with the ``csv`` module
(``raw_daily``), never from the broker.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import backtrader as bt
import duckdb
import pandas as pd
import pytest

from brokers import MarginError, OptionsBroker, OrderRejected
from data_feeds import OptionContract, load_ohlc
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot

pytestmark = pytest.mark.shared_data

SPX_FILE = "options/spx_chains_2019q2.parquet"
SPY_FILE = "options/spy_options_subset_2021.csv.gz"
SPY_DAILY = "options/spy_options_subset_2021_underlying.csv"
INDEX_FILE = "index/spx_vix_spy_qqq_daily.csv"
QUOTE_TIME = dt.time(15, 45)
COMMISSION = 0.65


def _reader(path: Path) -> str:
    return f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv_auto('{path}')"


def build_snapshot(path: Path, underlying: str, day: str, max_dte: int | None = None):
    """A ChainSnapshot of one quote date from the raw vendor rows (test-side conversion)."""
    where = f"quotedate = DATE '{day}'"
    if max_dte is not None:
        where += f" AND expiration <= DATE '{day}' + INTERVAL {max_dte} DAY"
    raw = duckdb.sql(f"SELECT * FROM {_reader(path)} WHERE {where}").df()
    root = raw["root"] if "root" in raw.columns else raw["underlying"]
    quotes = pd.DataFrame(
        {
            "root": root.astype(object),
            "expiration": pd.to_datetime(raw["expiration"]).astype("datetime64[ns]"),
            "strike": raw["strike"].astype(float),
            "right": raw["type"].map({"call": "C", "put": "P"}).astype(object),
            "bid": raw["bid"].astype(float),
            "ask": raw["ask"].astype(float),
        }
    )
    quotes["mid"] = 0.5 * (quotes["bid"] + quotes["ask"])
    for col in QUOTE_COLUMNS:
        if col not in quotes.columns:
            quotes[col] = float("nan")
    quotes["is_liquid"] = quotes["bid"] > 0
    time = pd.Timestamp.combine(pd.Timestamp(day).date(), QUOTE_TIME).tz_localize(
        "America/New_York"
    )
    price = float(raw["underlying_last"].iloc[0])
    return ChainSnapshot(underlying, time, price, quotes[list(QUOTE_COLUMNS)].copy())


def raw_quote(path: Path, day: str, root: str, exp: str, strike: float, right: str):
    """(bid, ask) of one contract straight from the raw file (a separate query)."""
    kind = {"C": "call", "P": "put"}[right]
    root_col = "root" if path.suffix == ".parquet" else "underlying"
    ((bid, ask),) = duckdb.sql(
        f"SELECT bid, ask FROM {_reader(path)} WHERE quotedate = DATE '{day}' AND "
        f"{root_col} = '{root}' AND expiration = DATE '{exp}' AND strike = {strike} "
        f"AND type = '{kind}'"
    ).fetchall()
    return float(bid), float(ask)


def raw_daily(path: Path, symbol: str, day: str) -> dict[str, float]:
    """One row of a daily OHLC file read with the csv module (not the project's loader)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            row = {k.lower(): v for k, v in row.items()}
            sym = row.get("root") or row.get("symbol")
            if sym == symbol and (row.get("date") or "")[:10] == day:
                return {"open": float(row["open"]), "close": float(row["close"])}
    raise KeyError(f"{symbol} {day} not in {path}")


def make_broker(shared: Path, cash: float = 1_000_000.0, **kw) -> OptionsBroker:
    spx = load_ohlc(str(shared / INDEX_FILE), root="SPX")
    broker = OptionsBroker(commission_per_contract=COMMISSION, settlement_prices={"SPX": spx}, **kw)
    broker.setcash(cash)
    broker.start()
    return broker


@pytest.fixture(scope="module")
def jun20(shared_data: Path) -> ChainSnapshot:
    return build_snapshot(shared_data / SPX_FILE, "SPX", "2019-06-20", max_dte=40)


def c(root: str, exp: str, strike: float, right: str) -> OptionContract:
    return OptionContract(root, dt.date.fromisoformat(exp), strike, right)  # type: ignore[arg-type]


@pytest.mark.parametrize("slippage", [0.5, 0.0])
def test_real_spxw_straddle_round_trip_costs_spread_plus_commissions(
    shared_data: Path, slippage: float
) -> None:
    path = shared_data / SPX_FILE
    snap = build_snapshot(path, "SPX", "2019-06-03", max_dte=3)
    call, put = c("SPXW", "2019-06-03", 2740.0, "C"), c("SPXW", "2019-06-03", 2740.0, "P")
    broker = make_broker(shared_data, slippage_spread_fraction=slippage)
    broker.execute_snapshot([(call, 1), (put, 1)], 2, snap, tag="open")
    broker.execute_snapshot([(call, 1), (put, 1)], -2, snap, tag="close")
    cb, ca = raw_quote(path, "2019-06-03", "SPXW", "2019-06-03", 2740.0, "C")
    pb, pa = raw_quote(path, "2019-06-03", "SPXW", "2019-06-03", 2740.0, "P")
    assert (cb, ca, pb, pa) == (3.90, 4.30, 3.40, 3.70)  # the rows this test is about
    spread_cost = ((ca - cb) + (pa - pb)) * 2 * 100 if slippage == 0.5 else 0.0
    commissions = 4 * 2 * COMMISSION  # 4 leg fills of 2 contracts
    loss = 1_000_000.0 - broker.getcash()
    assert loss == pytest.approx(spread_cost + commissions, abs=0.005)
    assert broker.option_positions == {} and broker.getvalue() == pytest.approx(broker.getcash())


def test_spx_am_and_spxw_pm_held_to_expiry_settle_on_open_and_close(
    shared_data: Path, jun20: ChainSnapshot
) -> None:
    path = shared_data / SPX_FILE
    am_call, am_put = c("SPX", "2019-06-21", 2950.0, "C"), c("SPX", "2019-06-21", 2950.0, "P")
    pm_call, pm_put = c("SPXW", "2019-06-21", 2945.0, "C"), c("SPXW", "2019-06-21", 2955.0, "P")
    broker = make_broker(shared_data)
    broker.execute_snapshot([(am_call, 1), (am_put, 1)], 2, jun20)  # long AM straddle x2
    broker.execute_snapshot([(pm_call, -1), (pm_put, -1)], 1, jun20)  # short PM strangle
    cash_after_open = broker.getcash()
    expected_open = -2 * 100 * (
        raw_quote(path, "2019-06-20", "SPX", "2019-06-21", 2950.0, "C")[1]
        + raw_quote(path, "2019-06-20", "SPX", "2019-06-21", 2950.0, "P")[1]
    ) + 100 * (
        raw_quote(path, "2019-06-20", "SPXW", "2019-06-21", 2945.0, "C")[0]
        + raw_quote(path, "2019-06-20", "SPXW", "2019-06-21", 2955.0, "P")[0]
    )
    assert cash_after_open - 1_000_000.0 == pytest.approx(expected_open - 6 * COMMISSION)

    spx_open = raw_daily(shared_data / INDEX_FILE, "SPX", "2019-06-21")["open"]
    spx_close = raw_daily(shared_data / INDEX_FILE, "SPX", "2019-06-21")["close"]
    morning = pd.Timestamp("2019-06-21 09:30", tz="America/New_York")
    am = broker.settle_due(morning)
    assert {s.contract for s in am} == {am_call, am_put}  # PM legs wait for the close
    assert all(s.price_source == "open as SOQ proxy" for s in am)
    am_cash = 2 * 100 * (max(spx_open - 2950.0, 0) + max(2950.0 - spx_open, 0))
    assert broker.getcash() == pytest.approx(cash_after_open + am_cash, abs=0.005)

    pm = broker.settle_due(pd.Timestamp("2019-06-21 16:00", tz="America/New_York"))
    assert {s.contract for s in pm} == {pm_call, pm_put}
    pm_cash = -100 * (max(spx_close - 2945.0, 0) + max(2955.0 - spx_close, 0))
    assert broker.getcash() == pytest.approx(cash_after_open + am_cash + pm_cash, abs=0.005)
    assert broker.option_positions == {} and broker.getvalue() == pytest.approx(broker.getcash())


def test_snapshot_orders_are_refused_with_a_reason_and_nothing_moves(
    shared_data: Path, jun20: ChainSnapshot
) -> None:
    broker = make_broker(shared_data, cash=10_000.0)
    zero_bid = jun20.quotes[
        (jun20.quotes["bid"] == 0) & (jun20.quotes["root"] == "SPXW") & (jun20.quotes["ask"] > 0)
    ].iloc[0]
    dead = c("SPXW", f"{zero_bid['expiration']:%Y-%m-%d}", float(zero_bid["strike"]), "C")
    dead = OptionContract("SPXW", dead.expiration, dead.strike, zero_bid["right"])
    with pytest.raises(OrderRejected, match="nobody pays for it"):
        broker.execute_snapshot([(dead, -1)], 1, jun20)
    with pytest.raises(OrderRejected, match="not quoted"):
        broker.execute_snapshot([(c("SPXW", "2019-06-21", 2951.0, "C"), 1)], 1, jun20)
    with pytest.raises(OrderRejected, match="non-zero"):
        broker.execute_snapshot([(c("SPXW", "2019-06-21", 2950.0, "C"), 1)], 0, jun20)
    # a naked short SPXW call: 15% of ~2952 index x 100 = ~$44,000 add-on > $10,000 of equity
    with pytest.raises(MarginError, match=r"margin: requirement \$[\d,]+ > equity \$[\d,]+"):
        broker.execute_snapshot([(c("SPXW", "2019-06-21", 2960.0, "C"), -1)], 1, jun20)
    # the same short covered by a long 2965 call is a $500-wide vertical: accepted
    fills = broker.execute_snapshot(
        [(c("SPXW", "2019-06-21", 2960.0, "C"), -1), (c("SPXW", "2019-06-21", 2965.0, "C"), 1)],
        1,
        jun20,
    )
    assert len(fills) == 2
    assert len(broker.rejections) == 4 and len(broker.option_fills) == 2
    assert "margin" in broker.rejections_frame()["reason"].iloc[-1]


def test_am_legs_are_not_tradable_after_their_opening_settlement(shared_data: Path) -> None:
    snap = build_snapshot(shared_data / SPX_FILE, "SPX", "2019-06-21", max_dte=0)
    broker = make_broker(shared_data)
    assert snap.has(c("SPX", "2019-06-21", 2950.0, "C"))  # the vendor still lists it at 15:45
    with pytest.raises(OrderRejected, match="already settled"):
        broker.execute_snapshot([(c("SPX", "2019-06-21", 2950.0, "C"), 1)], 1, snap)
    broker.execute_snapshot([(c("SPXW", "2019-06-21", 2950.0, "C"), 1)], 1, snap)  # PM: fine


def test_spy_legs_held_to_expiry_are_exercised_and_assigned_into_shares(
    shared_data: Path,
) -> None:
    path = shared_data / SPY_FILE
    snap = build_snapshot(path, "SPY", "2021-01-29")
    spy = load_ohlc(str(shared_data / SPY_DAILY), root="SPY")
    broker = OptionsBroker(
        commission_per_contract=COMMISSION,
        stock_commission_per_share=0.005,
        settlement_prices={"SPY": spy},
    )
    broker.setcash(100_000.0)
    broker.start()
    exp = "2021-02-19"
    legs = [
        (c("SPY", exp, 380.0, "C"), 2),  # ITM at expiry: exercise, +200 shares at 380
        (c("SPY", exp, 385.0, "C"), -1),  # ITM: assigned, -100 shares at 385
        (c("SPY", exp, 390.0, "C"), 1),  # ITM by 3 cents (>= $0.01): exercise, +100 at 390
        (c("SPY", exp, 380.0, "P"), -1),  # OTM: expires worthless
    ]
    broker.execute_snapshot(legs, 1, snap)
    premiums = 0.0
    for contract, q in legs:
        bid, ask = raw_quote(path, "2021-01-29", "SPY", exp, contract.strike, contract.right)
        premiums += -q * (ask if q > 0 else bid) * 100
    assert broker.getcash() == pytest.approx(100_000.0 + premiums - 5 * COMMISSION, abs=0.005)

    close = raw_daily(shared_data / SPY_DAILY, "SPY", exp)["close"]
    assert close == 390.03
    done = broker.settle_due(pd.Timestamp(f"{exp} 16:00", tz="America/New_York"))
    kinds = {s.contract.strike if s.contract.right == "C" else -1: s.kind for s in done}
    assert kinds == {380.0: "exercise", 385.0: "assignment", 390.0: "exercise", -1: "expired"}
    shares = 2 * 100 - 100 + 100
    strike_cash = -2 * 100 * 380.0 + 100 * 385.0 - 100 * 390.0
    cash = 100_000.0 + premiums - 5 * COMMISSION + strike_cash
    assert broker.underlying_positions["SPY"].quantity == shares
    assert broker.getcash() == pytest.approx(cash, abs=0.005)
    assert broker.getvalue() == pytest.approx(cash + shares * close, abs=0.005)
    assert broker.option_positions == {}

    broker.close_underlying("SPY", close, pd.Timestamp(f"{exp} 16:00"), tag="flatten")
    assert broker.underlying_positions == {}
    assert broker.getcash() == pytest.approx(cash + shares * close - shares * 0.005, abs=0.005)


def test_settlement_without_a_price_fails_loudly_and_settles_nothing(
    shared_data: Path, jun20: ChainSnapshot
) -> None:
    broker = OptionsBroker()
    broker.setcash(1_000_000.0)
    broker.start()
    broker.execute_snapshot([(c("SPXW", "2019-06-21", 2950.0, "C"), 1)], 1, jun20)
    from data_feeds import DataSourceError

    with pytest.raises(DataSourceError, match="no settlement prices for SPX"):
        broker.settle_due(pd.Timestamp("2019-06-21 16:00", tz="America/New_York"))
    assert len(broker.option_positions) == 1
    frame = pd.DataFrame({"open": [1.0], "close": [2.0]}, index=pd.to_datetime(["2019-06-20"]))
    broker.set_settlement_prices(frame, "SPX")
    with pytest.raises(DataSourceError, match="row 2019-06-21"):
        broker.settle_due(pd.Timestamp("2019-06-21 16:00", tz="America/New_York"))


# -- a whole run: value == cash + marks on every bar, marks checked against raw mids ---------
RUN_DATES = ["2019-06-10", "2019-06-11", "2019-06-12", "2019-06-13", "2019-06-19", "2019-06-20"]
RUN_DATES += ["2019-06-21", "2019-06-24"]

# (bar date, legs, combo quantity, tag): fixed trades so that the final cash is hand-computable
PLAN = {
    "2019-06-10": [
        ([(c("SPXW", "2019-06-14", 2890.0, "C"), 1), (c("SPXW", "2019-06-14", 2890.0, "P"), 1)], 1),
        ([(c("SPX", "2019-06-21", 2950.0, "C"), 1), (c("SPX", "2019-06-21", 3000.0, "C"), -1)], 2),
    ],
    "2019-06-11": [([(c("SPXW", "2019-06-12", 2890.0, "C"), 1)], 3)],
    "2019-06-12": [([(c("SPXW", "2019-06-21", 2900.0, "C"), 1)], 1)],
    "2019-06-13": [([(c("SPXW", "2019-06-21", 2900.0, "C"), 1)], -1)],
}


@pytest.fixture(scope="module")
def run_snapshots(shared_data: Path) -> dict[dt.date, ChainSnapshot]:
    return {
        dt.date.fromisoformat(d): build_snapshot(shared_data / SPX_FILE, "SPX", d, max_dte=12)
        for d in RUN_DATES
    }


def test_value_is_cash_plus_marks_on_every_bar_of_a_run(
    shared_data: Path, run_snapshots: dict[dt.date, ChainSnapshot]
) -> None:
    path = shared_data / SPX_FILE
    mids = duckdb.sql(
        f"SELECT quotedate::DATE AS d, root, expiration::DATE AS e, strike, type, "
        f"(bid + ask) / 2 AS mid FROM {_reader(path)} WHERE quotedate::DATE IN "
        f"({', '.join(repr(d) for d in RUN_DATES)})"
    ).df()
    raw_mid = {
        (r.d.date(), r.root, r.e.date(), float(r.strike), "C" if r.type == "call" else "P"): r.mid
        for r in mids.itertuples()
    }
    times = [s.quote_time.tz_localize(None) for s in run_snapshots.values()]
    bars = pd.DataFrame(
        {k: [s.underlying_price for s in run_snapshots.values()] for k in ("open", "close")},
        index=pd.DatetimeIndex(times),
    ).assign(high=lambda f: f["open"], low=lambda f: f["open"], volume=0.0)
    checks: list[tuple[dt.date, float, float]] = []

    class Run(bt.Strategy):
        def next(self) -> None:
            day = self.data.datetime.date(0)
            snap = run_snapshots[day]
            b = self.broker
            b.settle_due(snap.quote_time)
            b.mark_to_snapshot(snap)
            for legs, qty in PLAN.get(f"{day:%Y-%m-%d}", []):
                b.execute_snapshot(legs, qty, snap)
            marks = sum(
                p.quantity * raw_mid[(day, k.root, k.expiration, k.strike, k.right)] * 100
                for k, p in b.option_positions.items()
            )
            checks.append((day, b.getvalue(), b.getcash() + marks))
            b.settle_due(snap.quote_time.normalize() + pd.Timedelta(hours=16))
            checks.append((day, b.getvalue(), b.getcash() + b.options_value()))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=bars, timeframe=bt.TimeFrame.Days))
    broker = make_broker(shared_data, cash=100_000.0)
    cerebro.setbroker(broker)
    cerebro.addstrategy(Run)
    cerebro.run()
    assert len(checks) == 2 * len(RUN_DATES)
    for day, value, parts in checks:
        assert value == pytest.approx(parts, abs=1e-6), day

    # final cash by hand: premiums at the touch, commissions, settlements from the index file
    cash = 100_000.0
    for day, trades in PLAN.items():
        for legs, qty in trades:
            for k, ratio in legs:
                q = ratio * qty
                bid, ask = raw_quote(path, day, k.root, f"{k.expiration}", k.strike, k.right)
                cash += -q * (ask if q > 0 else bid) * 100 - abs(q) * COMMISSION
    daily = {d: raw_daily(shared_data / INDEX_FILE, "SPX", d) for d in ("2019-06-12", "2019-06-14")}
    daily["2019-06-21"] = raw_daily(shared_data / INDEX_FILE, "SPX", "2019-06-21")
    s14, s12 = daily["2019-06-14"]["close"], daily["2019-06-12"]["close"]
    s21_open = daily["2019-06-21"]["open"]
    cash += 100 * (max(s14 - 2890, 0) + max(2890 - s14, 0))  # SPXW 06-14 straddle, on 06-19's bar
    cash += 3 * 100 * max(s12 - 2890, 0)  # SPXW 06-12 calls at the 06-12 close
    cash += 2 * 100 * (max(s21_open - 2950, 0) - max(s21_open - 3000, 0))  # SPX AM call spread
    assert broker.getcash() == pytest.approx(cash, abs=0.005)
    assert broker.option_positions == {}
    kinds = broker.fills_frame().groupby("event").size().to_dict()
    assert kinds == {"fill": 7, "settlement": 5}


def test_close_out_ends_a_window_flat_at_the_marks_and_the_fills_add_up(
    shared_data: Path, jun20: ChainSnapshot
) -> None:
    """Positions open when a window ends are closed at their marks (raw mids) without costs;
    every cash flow of the window (fills + window-end closes) adds up to the value change."""
    path = shared_data / SPX_FILE
    broker = make_broker(shared_data, cash=100_000.0)
    call, put = c("SPXW", "2019-06-28", 2950.0, "C"), c("SPXW", "2019-06-28", 2950.0, "P")
    broker.execute_snapshot([(call, 1), (put, 1)], -2, jun20, tag="short straddle")
    broker.mark_to_snapshot(jun20)
    broker.trade_underlying("SPX", 3, 2950.0, jun20.quote_time, commission=0.0, tag="hedge")
    broker.mark_underlying("SPX", 2960.0)
    value_before = broker.getvalue()
    end = pd.Timestamp("2019-06-20 16:00").tz_localize("America/New_York")
    fills = broker.close_out(end)
    assert broker.option_positions == {} and broker.underlying_positions == {}
    assert len(fills) == 3 and broker.getvalue() == pytest.approx(value_before, abs=1e-9)
    cb, ca = raw_quote(path, "2019-06-20", "SPXW", "2019-06-28", 2950.0, "C")
    pb, pa = raw_quote(path, "2019-06-20", "SPXW", "2019-06-28", 2950.0, "P")
    frame = broker.fills_frame()
    closes = frame[frame["event"] == "window_end"]
    assert set(closes["tag"]) == {"window end"} and closes["commission"].sum() == 0.0
    opt = closes[closes["right"] != "stock"].set_index("right")
    assert opt.loc["C", "price"] == pytest.approx((cb + ca) / 2, abs=1e-9)
    assert opt.loc["P", "price"] == pytest.approx((pb + pa) / 2, abs=1e-9)
    assert (opt.loc["C", "bid"], opt.loc["C", "ask"]) == (cb, ca)  # kept for the exit cost
    # buying back 2 straddles at the mids and selling 3 index units at 2960
    assert closes["cash_flow"].sum() == pytest.approx(
        -2 * 100 * ((cb + ca) / 2 + (pb + pa) / 2) + 3 * 2960.0, abs=1e-6
    )
    assert frame["cash_flow"].sum() == pytest.approx(broker.getvalue() - 100_000.0, abs=1e-6)
    assert broker.close_out(end) == []  # already flat


def test_spxw_legs_expiring_on_a_half_day_settle_at_the_1300_close(shared_data: Path) -> None:
    """2019-07-03 was an NYSE early close (13:00 ET): SPXW legs expiring that day settle at 13:00
    at that day's SPX close (read here with the csv module), not at 16:00; from 13:00 on the
    legs are settled and no longer tradable, although the vendor file lists them at "15:45"."""
    path = shared_data / SPX_FILE
    jul2 = build_snapshot(path, "SPX", "2019-07-02", max_dte=3)
    exp = "2019-07-03"
    call, put = c("SPXW", exp, 2975.0, "C"), c("SPXW", exp, 2975.0, "P")
    wing = c("SPXW", exp, 2960.0, "P")
    broker = make_broker(shared_data)
    broker.execute_snapshot([(call, 1), (put, 1)], 2, jul2, tag="long straddle")
    broker.execute_snapshot([(wing, -1)], 1, jul2, tag="short put")
    cash_open = 1_000_000.0 - 2 * 100 * (
        raw_quote(path, "2019-07-02", "SPXW", exp, 2975.0, "C")[1]
        + raw_quote(path, "2019-07-02", "SPXW", exp, 2975.0, "P")[1]
    )
    cash_open += 100 * raw_quote(path, "2019-07-02", "SPXW", exp, 2960.0, "P")[0]
    cash_open -= 5 * COMMISSION
    assert broker.getcash() == pytest.approx(cash_open, abs=0.005)

    close = raw_daily(shared_data / INDEX_FILE, "SPX", exp)["close"]
    assert broker.settle_due(pd.Timestamp(f"{exp} 12:59", tz="America/New_York")) == []
    done = broker.settle_due(pd.Timestamp(f"{exp} 13:00", tz="America/New_York"))
    assert {s.contract for s in done} == {call, put, wing}
    assert {s.time for s in done} == {dt.datetime(2019, 7, 3, 13, 0)}
    assert {s.price_source for s in done} == {"close"}
    assert all(s.underlying_price == pytest.approx(close, abs=1e-9) for s in done)
    payoff = 2 * 100 * (max(close - 2975.0, 0) + max(2975.0 - close, 0)) - 100 * max(
        2960.0 - close, 0
    )
    assert broker.getcash() == pytest.approx(cash_open + payoff, abs=0.005)
    assert broker.option_positions == {} and broker.getvalue() == pytest.approx(broker.getcash())
    frame = broker.fills_frame()
    assert set(frame.loc[frame["event"] == "settlement", "time"]) == {pd.Timestamp(f"{exp} 13:00")}

    jul3 = build_snapshot(path, "SPX", exp, max_dte=2)
    assert jul3.has(call)  # the vendor still lists the settled legs at its 15:45 stamp
    with pytest.raises(
        OrderRejected, match=r"already settled \(PM settlement at 2019-07-03 13:00\)"
    ):
        broker.execute_snapshot([(call, 1)], 1, jul3)
