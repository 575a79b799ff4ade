"""Tests of :class:`strategies.book.TradeBook`: the allocation rule by hand on constructed broker
records, and the book identity (sum of trade P&L == broker cash flows + positions value) on real
chains for the migrated strategies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from brokers.options_broker import (
    OptionFill,
    OptionPosition,
    OptionSettlement,
    StockFill,
    UnderlyingPosition,
)
from data_feeds.contracts import OptionContract
from strategies.book import TradeBook

E = dt.date(2021, 3, 19)
X = OptionContract("SPXW", E, 4000.0, "C")  # PM cash-settled, multiplier 100
P = OptionContract("SPY", E, 400.0, "P")  # physical, multiplier 100


def _t(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2021, 3, day, hour, 0)


def _fill(time: dt.datetime, c: OptionContract, qty: int, price: float, tag: str) -> OptionFill:
    commission = 0.65 * abs(qty)
    cash = -qty * price * c.multiplier - commission
    return OptionFill(time, c, qty, price, price, price, commission, cash, tag)


def _stock(time: dt.datetime, qty: int, price: float, fee: float, tag: str) -> StockFill:
    return StockFill(time, "SPY", qty, price, fee, -qty * price - fee, tag)


def _broker() -> SimpleNamespace:
    """The records and marks a TradeBook reads from an OptionsBroker."""
    return SimpleNamespace(
        option_fills=[],
        option_settlements=[],
        stock_fills=[],
        window_end_fills=[],
        option_positions={},
        underlying_positions={},
        underlying_prices={},
    )


def _records_cash(b: SimpleNamespace) -> float:
    return sum(
        r.cash_flow
        for rs in (b.option_fills, b.option_settlements, b.stock_fills, b.window_end_fills)
        for r in rs
    )


def _positions_value(b: SimpleNamespace) -> float:
    opts = sum(p.quantity * p.mark * p.contract.multiplier for p in b.option_positions.values())
    return opts + sum(p.quantity * p.mark for p in b.underlying_positions.values())


def test_allocation_rule_by_hand() -> None:
    b, book = _broker(), TradeBook()
    # two trades share X: a sells 2 at 10, b sells 1 at 10; a buys 1 back at 4
    b.option_fills += [_fill(_t(1), X, -2, 10.0, "a"), _fill(_t(1), X, -1, 10.0, "b")]
    b.option_fills.append(_fill(_t(2), X, 1, 4.0, "close a"))
    book.sync(b)
    ta, tb = book.current("a"), book.current("b")
    assert ta is not None and tb is not None and ta.trade_id != tb.trade_id
    assert ta.legs == {X: -1} and tb.legs == {X: -1}
    # marks: X at 5.0; identity before any settlement
    b.option_positions = {X: OptionPosition(X, -2, 10.0, 5.0)}
    cash_so_far = (2000 - 1.30) + (1000 - 0.65) + (-400 - 0.65)
    assert book.total_pnl(b) == pytest.approx(cash_so_far - 2 * 500.0, abs=1e-9)
    assert book.net_pnl(ta.trade_id, b) == pytest.approx(1998.70 - 400.65 - 500.0, abs=1e-9)

    # X settles at 3.00 intrinsic, broker short 2: -600 split by signed quantity -1/-2 each
    b.option_settlements.append(OptionSettlement(_t(19, 16), X, -2, 4003.0, 3.0, 0.0, -600.0))
    b.option_positions = {}
    # P: c sells 3 at 2.00, d sells 1 at 2.50; both assigned at 395 -> +400 shares for -160,000
    b.option_fills += [_fill(_t(2), P, -3, 2.0, "c"), _fill(_t(2), P, -1, 2.5, "d")]
    b.option_settlements.append(
        OptionSettlement(_t(19, 16), P, -4, 395.0, 5.0, 0.0, -160_000.0, "assignment", "close", 400)
    )
    # the assigned shares are sold next morning (tag names no trade -> holders pro rata)
    b.stock_fills.append(_stock(_t(22), -400, 396.0, 2.0, "assigned"))
    book.sync(b)
    assert ta.exit_time == _t(19, 16) and ta.reason == "cash"
    assert ta.cash == pytest.approx(1998.70 - 400.65 - 300.0, abs=1e-9)  # 1298.05
    assert tb.cash == pytest.approx(999.35 - 300.0, abs=1e-9)  # 699.35
    tc, td = book.current("c"), book.current("d")
    assert tc is not None and td is not None
    assert tc.settlement == pytest.approx(-120_000.0) and td.settlement == pytest.approx(-40_000.0)
    assert tc.share_cash == pytest.approx(0.75 * 158_398.0)
    assert tc.cash == pytest.approx(598.05 - 120_000.0 + 118_798.5, abs=1e-9)  # -603.45
    assert td.cash == pytest.approx(249.35 - 40_000.0 + 39_599.5, abs=1e-9)  # -151.15
    assert not tc.is_open and tc.reason == "shares" and tc.commission == pytest.approx(1.95 + 1.5)

    # e buys 1 X at 5 and hedges with -50 SPY tagged "e"; an untagged +20 SPY goes unallocated
    b.option_fills.append(_fill(_t(22, 11), X, 1, 5.0, "e"))
    b.stock_fills.append(_stock(_t(22, 11), -50, 396.0, 0.25, "e"))
    b.stock_fills.append(_stock(_t(22, 12), 20, 396.0, 0.0, ""))
    book.sync(b)
    te = book.current("e")
    assert te is not None and te.shares == {"SPY": -50.0}
    assert book.trade(0).shares == {"SPY": 20.0} and book.trade(0).cash == pytest.approx(-7920.0)
    b.option_positions = {X: OptionPosition(X, 1, 5.0, 6.0)}
    b.underlying_positions = {"SPY": UnderlyingPosition("SPY", -30, 396.0, 397.0)}
    assert te.open_value(b) == pytest.approx(600.0 - 50 * 397.0)
    assert book.total_pnl(b) == pytest.approx(_records_cash(b) + _positions_value(b), abs=1e-6)

    # window end: X closed at its mark 6.00, -30 SPY bought back at 397 (split -50/+20 over -30)
    b.window_end_fills += [
        OptionFill(_t(22, 16), X, -1, 6.0, 6.0, 6.0, 0.0, 600.0, "window end"),
        StockFill(_t(22, 16), "SPY", 30, 397.0, 0.0, -11_910.0, "window end"),
    ]
    b.option_positions, b.underlying_positions = {}, {}
    book.sync(b)
    assert not te.is_open and te.reason == "window_end"
    assert te.window_end == pytest.approx(600.0 - 19_850.0)
    assert te.cash == pytest.approx(-500.65 + 19_799.75 + 600.0 - 19_850.0, abs=1e-9)  # 49.10
    assert book.trade(0).cash == pytest.approx(20.0, abs=1e-9) and not book.trade(0).is_open
    total = 1298.05 + 699.35 - 603.45 - 151.15 + 49.10 + 20.0
    assert book.total_pnl(b) == pytest.approx(total, abs=0.005)
    assert _records_cash(b) == pytest.approx(total, abs=0.005)
    closed = book.closed_frame()
    assert sorted(closed["tag"]) == ["", "a", "b", "c", "d", "e"]
    assert closed["net_pnl"].sum() == pytest.approx(total, abs=0.005)

    # a tag reused after its trade closed opens a new trade
    b.option_fills.append(_fill(_t(23), X, -1, 7.0, "a"))
    book.sync(b)
    ta2 = book.current("a")
    assert ta2 is not None and ta2.trade_id not in (ta.trade_id, 0) and ta2.is_open


def test_settlement_part_no_trade_holds_goes_unallocated() -> None:
    b, book = _broker(), TradeBook()
    b.option_fills.append(_fill(_t(1), X, -1, 10.0, "a"))
    book.sync(b)
    # the broker settles 2 (one it got outside the book's records): half to a, half unallocated
    b.option_settlements.append(OptionSettlement(_t(19, 16), X, -2, 4003.0, 3.0, 0.0, -600.0))
    book.sync(b)
    assert book.current("a").cash == pytest.approx(999.35 - 300.0)  # type: ignore[union-attr]
    assert book.trade(0).cash == pytest.approx(-300.0)
    assert book.total_pnl(b) == pytest.approx(_records_cash(b), abs=1e-9)


def test_note_keeps_the_strategy_reason_and_fields() -> None:
    b, book = _broker(), TradeBook()
    b.option_fills.append(_fill(_t(1), X, -1, 10.0, "a"))
    book.sync(b)
    tid = book.trade_id("a")
    assert tid is not None
    book.note(tid, "profit_target", credit=10.0)
    b.option_fills.append(_fill(_t(2), X, 1, 4.0, "close a"))
    book.sync(b)
    row = book.closed_frame().set_index("trade_id").loc[tid]
    assert row["reason"] == "profit_target" and row["credit"] == 10.0
    assert row["net_pnl"] == pytest.approx(1000 - 0.65 - 400 - 0.65)
    with pytest.raises(KeyError, match="no trade 99"):
        book.note(99, "x")


# -- real chains: the identity for each migrated strategy --------------------------------------


def _with_identity_checks(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[float]:
    """Wrap ``cls.next`` to record, after every bar, book total P&L minus the broker's change of
    value (cash flows + positions value - starting cash), in dollars."""
    gaps: list[float] = []
    original = cls.next

    def next_checked(self) -> None:  # type: ignore[no-untyped-def]
        original(self)
        broker = self.obroker
        gaps.append(self.book.total_pnl(broker) - (broker.getvalue() - broker.startingcash))

    monkeypatch.setattr(cls, "next", next_checked)
    return gaps


def _check_run(res, book: TradeBook, gaps: list[float], cash: float) -> None:  # type: ignore[no-untyped-def]
    assert gaps and max(abs(g) for g in gaps) < 0.005
    flows = float(res.trades["cash_flow"].sum())
    change = float(res.value.iloc[-1]) - cash
    assert flows == pytest.approx(change, abs=0.01)
    closed = book.closed_frame()
    assert not any(t.is_open for t in book.trades.values())  # the window ends flat
    assert float(closed["net_pnl"].sum()) == pytest.approx(flows, abs=0.01)
    # the daily log adds up too: its positions' net_pnl plus the unallocated P&L (the hedge)
    log = res.daily_log
    extra = log["unallocated_pnl"].dropna() if "unallocated_pnl" in log else log["date"].iloc[:0]
    assert len(extra) == (0 if book.trade(0).entry_time is None else 1)
    assert float(extra.sum()) == pytest.approx(book.trade(0).cash, abs=0.01)
    logged = float(log["net_pnl"].fillna(0.0).sum()) + float(extra.sum())
    assert logged == pytest.approx(flows, abs=0.01)


@pytest.fixture(scope="module")
def spy_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Chain store of the real SPY 2021 subset (physical settlement: assignments into shares)."""
    from data_feeds.chain_store import ChainStore

    path = tmp_path_factory.mktemp("spy2021_book") / "chains.duckdb"
    with ChainStore(path) as store:
        store.ingest(shared_data / "options/spy_options_subset_2021.csv.gz", "vendor")
    store = ChainStore(path, read_only=True)
    yield store
    store.close()


def _capture_book(monkeypatch: pytest.MonkeyPatch, cls: type) -> dict:
    captured: dict = {}
    original_stop = cls.stop

    def stop_capture(self) -> None:  # type: ignore[no-untyped-def]
        original_stop(self)
        captured["book"] = self.book

    monkeypatch.setattr(cls, "stop", stop_capture)
    return captured


@pytest.mark.shared_data
def test_vrp_harvest_book_identity(
    shared_data: Path, spy_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPY 2021 strangles left to expire (the sparse subset has no quotes under ~20 DTE):
    assignments into shares, their sale next morning, and a position open at the window's end
    holding shares. Before the book the daily log missed the shares of the open position
    (log sum $7,350.70 against $6,862.70 of cash flows on this window)."""
    from data_feeds import load_ohlc
    from strategies.vrp_harvest import VrpHarvest, VrpHarvestStrategy

    daily = load_ohlc(
        shared_data / "index/spx_vix_spy_qqq_daily.csv",
        root="SPY",
        start="2019-01-01",
        end="2021-12-31",
    )
    fixed = {
        "chain_symbol": "SPY",
        "root": "SPY",
        "rate": 0.0005,
        "target_dte": 35,
        "min_dte": 21,
        "max_dte": 60,
        "exit_dte": 20,
        "structure": "strangle",
        "strangle_delta": 0.4,
        "z_min_periods": 20,
        "account_risk": 0.02,
        "max_contracts": 10,
        "max_open": 2,
        "entry_z": -2.0,  # enter whenever possible: many trades, settlements and assignments
    }
    plugin = VrpHarvest(fixed, {"commission_per_contract": 0.65, "slippage_spread_fraction": 0.5})
    plugin.prepare({"underlying": daily, "chains": spy_store}, {})
    days = plugin.trading_days()
    gaps = _with_identity_checks(monkeypatch, VrpHarvestStrategy)
    captured = _capture_book(monkeypatch, VrpHarvestStrategy)
    res = plugin.backtest(plugin.base, days[20], days[-1], cash=100_000.0)
    book: TradeBook = captured["book"]
    kinds = set(res.trades["event"])
    assert {"settlement", "stock_fill", "window_end"} <= kinds  # the cases this test is about
    assert (res.daily_log["status"] == "open_at_end").any()
    _check_run(res, book, gaps, 100_000.0)
    # each logged position's net_pnl is its trade's in the book
    by_id = book.closed_frame().set_index("tag")["net_pnl"]
    opened = res.daily_log.dropna(subset=["credit"])
    for _, row in opened.iterrows():
        tag = f"vrp {row['date']:%Y-%m-%d}"
        assert row["net_pnl"] == pytest.approx(by_id[tag], abs=1e-6)


@pytest.mark.shared_data
def test_skew_dislocation_book_identity(
    shared_data: Path, chain_store_2019, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delta-hedged risk reversals on the real 2019 SPXW chains: one trade per risk reversal,
    its hedge shares (tagged with it) in its trade, nothing unallocated, every bar reconciled."""
    from data_feeds import load_ohlc
    from strategies.skew_dislocation import SkewDislocation, SkewDislocationStrategy

    spx = load_ohlc(
        shared_data / "index/spx_vix_spy_qqq_daily.csv",
        root="SPX",
        start="2018-06-01",
        end="2019-07-31",
    )
    plugin = SkewDislocation(
        {"skew_window": 21, "entry_z": 0.3, "max_hold_days": 3, "delta_hedge": True},
        {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5},
    )
    plugin.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    days = plugin.trading_days()
    gaps = _with_identity_checks(monkeypatch, SkewDislocationStrategy)
    captured = _capture_book(monkeypatch, SkewDislocationStrategy)
    res = plugin.backtest(plugin.base, days[0], days[-1], cash=1_000_000.0)
    book: TradeBook = captured["book"]
    rr = res.info["rr_trades"]
    stock = res.trades[res.trades["event"] == "stock_fill"]
    assert len(rr) >= 2 and len(stock) > 0
    _check_run(res, book, gaps, 1_000_000.0)
    assert book.trade(0).cash == 0.0 and book.trade(0).entry_time is None  # nothing unallocated
    hedged = {book.trade(int(t)).share_cash for t in rr["trade_id"]}
    assert any(abs(c) > 0 for c in hedged)  # the hedge is in the risk reversals' trades
    closed = book.closed_frame().set_index("trade_id")
    for _, t in rr.iterrows():
        assert t["net_pnl"] == pytest.approx(closed.loc[t["trade_id"], "net_pnl"], abs=1e-6)


class _UpTo:
    """A snapshot source showing only the store's quote dates ``<= last`` (a short window)."""

    def __init__(self, source, last: dt.date) -> None:  # type: ignore[no-untyped-def]
        self.source, self.last = source, last

    def quote_dates(self, underlying: str, roots=None) -> list[dt.date]:  # type: ignore[no-untyped-def]
        return [d for d in self.source.quote_dates(underlying, roots) if d <= self.last]

    def snapshot(self, underlying, quote_date, *args, **kwargs):  # type: ignore[no-untyped-def]
        if quote_date > self.last:
            raise KeyError(f"{quote_date} is after the window's last date {self.last}")
        return self.source.snapshot(underlying, quote_date, *args, **kwargs)


@pytest.mark.shared_data
def test_surface_arbitrage_book_identity(
    shared_data: Path, chain_store_2019, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single-option surface trades, delta-hedged, over the first 10 2019 quote dates."""
    from data_feeds import load_ohlc
    from strategies.surface_arbitrage import SurfaceArbitrage, SurfaceArbitrageStrategy

    spx = load_ohlc(
        shared_data / "index/spx_vix_spy_qqq_daily.csv",
        root="SPX",
        start="2019-01-01",
        end="2019-07-31",
    )
    dates = chain_store_2019.quote_dates("SPX", ["SPXW"])
    fixed = {
        "scan_max_dte": 45,
        "max_dte": 45,
        "min_abs_delta": 0.1,
        "delta_hedge": True,
        "max_hold_days": 3,
    }
    plugin = SurfaceArbitrage(
        fixed, {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}
    )
    plugin.prepare({"underlying": spx, "chains": _UpTo(chain_store_2019, dates[9])}, {})
    days = plugin.trading_days()
    gaps = _with_identity_checks(monkeypatch, SurfaceArbitrageStrategy)
    captured = _capture_book(monkeypatch, SurfaceArbitrageStrategy)
    res = plugin.backtest(plugin.base, days[0], days[-1], cash=1_000_000.0)
    book: TradeBook = captured["book"]
    sa = res.info["sa_trades"]
    assert len(sa) >= 2
    _check_run(res, book, gaps, 1_000_000.0)
    closed = book.closed_frame().set_index("trade_id")
    for _, t in sa.iterrows():
        assert t["net_pnl"] == pytest.approx(closed.loc[t["trade_id"], "net_pnl"], abs=1e-6)


@pytest.mark.shared_data
def test_ml_spreads_book_identity(spy_store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bull put spreads on the real SPY 2021 subset with a hand-made bullish signal (the sparse
    ladder leaves legs to expire: assignments, share sales). Before the book the share-sale cash
    went to the last position settled, whatever position the shares came from."""
    import pandas as pd

    from brokers import OptionsBroker
    from data_feeds.chain_feed import chain_feed
    from data_feeds.chains import TZ
    from strategies.base import run_cerebro
    from strategies.ml_spreads import MlSpreadsParams, MlSpreadsStrategy
    from strategies.option_strategy import sync_window_end

    days = [
        d for d in spy_store.quote_dates("SPY") if dt.date(2021, 3, 1) <= d <= dt.date(2021, 8, 31)
    ]
    signals = {
        d: {
            "regime": "iv_contraction",
            "direction": "bullish",
            "confidence": 0.5,
            "vix_rank": 0.5,
            "vix_rank_forecast": 0.5,
        }
        for d in days
    }
    px = {d: spy_store.snapshot("SPY", d).underlying_price for d in days}
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in px]).tz_localize(TZ)
    settle = pd.DataFrame({"open": list(px.values()), "close": list(px.values())}, index=index)
    gaps = _with_identity_checks(monkeypatch, MlSpreadsStrategy)
    feed = chain_feed(spy_store, "SPY", roots=["SPY"], start=days[0], end=days[-1])
    broker = OptionsBroker(commission_per_contract=0.65, settlement_prices={"SPY": settle})
    strat, value, _ = run_cerebro(
        MlSpreadsStrategy,
        [feed],
        broker,
        cash=100_000.0,
        strategy_kwargs={
            "rules": MlSpreadsParams(min_dte=21, exit_dte=20),
            "signals": signals,
            "last_day": days[-1],
        },
    )
    sync_window_end(strat)
    book: TradeBook = strat.book
    fills = broker.fills_frame()
    assert {"settlement", "fill"} <= set(fills["event"])
    assert gaps and max(abs(g) for g in gaps) < 0.005
    flows = float(fills["cash_flow"].sum())
    assert flows == pytest.approx(float(value.iloc[-1]) - 100_000.0, abs=0.01)
    assert not any(t.is_open for t in book.trades.values())
    assert float(book.closed_frame()["net_pnl"].sum()) == pytest.approx(flows, abs=0.01)
    assert book.trade(0).entry_time is None  # nothing untagged: every dollar in a position
    log = pd.DataFrame(strat.log_rows)
    assert float(log["net_pnl"].fillna(0.0).sum()) == pytest.approx(flows, abs=0.01)


def test_closed_trade_records_by_hand() -> None:
    import json

    import numpy as np

    from strategies.book import CLOSED_TRADE_COLUMNS, closed_trades_csv

    b, book = _broker(), TradeBook()
    # trade "a": sells 2 X at 10, buys 1 back at 4, the last one settles at 3.00 (4003 close);
    # a hedge share trade tagged "a"; an untagged share trade (unallocated)
    b.option_fills += [_fill(_t(1), X, -2, 10.0, "a"), _fill(_t(2), X, 1, 4.0, "close a")]
    b.stock_fills += [_stock(_t(2), 10, 400.0, 0.5, "a"), _stock(_t(3), -10, 401.0, 0.5, "a")]
    b.stock_fills.append(_stock(_t(3), 5, 401.0, 0.25, ""))
    b.option_settlements.append(OptionSettlement(_t(19, 16), X, -1, 4003.0, 3.0, 0.0, -300.0))
    book.sync(b)
    tid = book.trade_id("a")
    assert tid is not None
    book.note(tid, credit=np.float64(2000.0), entry_day=dt.date(2021, 3, 1))
    rec = book.closed_trades()
    assert list(rec.columns) == [c for c in CLOSED_TRADE_COLUMNS if c != "fold"]
    row = rec.set_index("trade_id").loc[tid]
    # by hand: opening 2 * 10 * 100 - 2 * 0.65; closing -400 - 0.65; shares -4000.5 + 4009.5
    assert row["opening_cash"] == pytest.approx(2000.0 - 1.30)
    assert row["closing_cash"] == pytest.approx(-400.0 - 0.65)
    assert row["share_cash"] == pytest.approx(-4000.5 + 4009.5)
    assert row["settlement"] == pytest.approx(-300.0)
    assert row["commission"] == pytest.approx(1.30 + 0.65 + 1.0)
    assert row["net_pnl"] == pytest.approx(1998.70 - 400.65 + 9.0 - 300.0)
    assert row["reason"] == "cash" and row["legs"] == f"-2 {X} @ 10"  # closed by settlement
    assert json.loads(row["fields"]) == {"credit": 2000.0, "entry_day": "2021-03-01"}
    unalloc = rec.set_index("trade_id").loc[0]
    assert unalloc["net_pnl"] == pytest.approx(-5 * 401.0 - 0.25)
    # every broker cash flow is in one record
    assert rec["net_pnl"].sum() == pytest.approx(_records_cash(b), abs=1e-9)
    # the run folder's file: records with their fold
    results = [SimpleNamespace(info={"closed_trades": rec}), SimpleNamespace(info={})]
    with pytest.raises(ValueError, match=r"folds \[4\] carry no"):
        closed_trades_csv(results, [3, 4])
    results[1].info["closed_trades"] = TradeBook().closed_trades()
    out = closed_trades_csv(results, [3, 4])
    assert out is not None and list(out.columns) == list(CLOSED_TRADE_COLUMNS)
    assert set(out["fold"]) == {3} and len(out) == 2
    assert closed_trades_csv([SimpleNamespace(info={})], [0]) is None
