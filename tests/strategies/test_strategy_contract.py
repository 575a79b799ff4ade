"""Tests of the strategy contract's shared plumbing (issue 12: a strategy file is its idea).

What the bases do for every strategy, checked by hand on constructed inputs:
:meth:`strategies.book.Trade.option_pnl`, :meth:`StrategyPlugin.grid_combos` (against
``itertools.product``), the default :meth:`StrategyPlugin.trading_days`,
:meth:`StrategyPlugin.fingerprint_with`, :class:`strategies.base.ShareFills` and
:func:`strategies.base.share_fills_frame` (cash flows ``-size * price - commission`` by hand),
:meth:`ChainStrategy.finish_trade` / :meth:`ChainStrategy.finish_position` /
:meth:`ChainStrategy.book_positions_at_end` (the book's P&L by hand) and
:meth:`ChainPlugin.strategy_kwargs` / :meth:`ChainPlugin.signal_inputs`. The strategies that run
on these bases keep their own tests (``test_<strategy>.py``, ``test_books_identity.py``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from types import SimpleNamespace
from typing import Any, ClassVar

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from brokers.options_broker import OptionFill, OptionPosition
from data_feeds.contracts import OptionContract
from data_feeds.ohlc import fingerprint
from strategies.base import ShareFills, StrategyParams, share_fills_frame
from strategies.book import TradeBook
from strategies.option_strategy import ChainPlugin, ChainStrategy, ComboPosition
from strategies.risk import RiskLimits
from tests.strategies.test_book import _broker

E = dt.date(2021, 3, 19)
C = OptionContract("SPXW", E, 4000.0, "C")  # multiplier 100
P = OptionContract("SPXW", E, 3900.0, "P")


def _fill(c: OptionContract, qty: int, price: float, tag: str, hour: int = 10) -> OptionFill:
    commission = 0.65 * abs(qty)
    cash = -qty * price * c.multiplier - commission
    when = dt.datetime(2021, 3, 15, hour)
    return OptionFill(when, c, qty, price, price, price, commission, cash, tag)


class _Params(StrategyParams):
    tunable: ClassVar[frozenset[str]] = frozenset({"a", "b", "c"})
    a: int = 1
    b: float = 0.5
    c: str = "x"
    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = 0.0
    target_dte: float = 7.0


def test_trade_option_pnl_is_fills_settlements_and_legs_at_marks() -> None:
    """Bought 2 calls at 10.00 (commission 2 x 0.65), sold 1 put at 4.00 (0.65); marks 12.50 and
    3.00: option P&L = -2000 - 1.30 + 400 - 0.65 + 2 * 12.50 * 100 - 3.00 * 100 = 598.05."""
    broker = _broker()
    broker.option_fills += [_fill(C, 2, 10.0, "t"), _fill(P, -1, 4.0, "t")]
    broker.option_positions = {
        C: OptionPosition(C, 2, 10.0, 12.5),
        P: OptionPosition(P, -1, 4.0, 3.0),
    }
    book = TradeBook()
    book.sync(broker)
    trade = book.current("t")
    assert trade is not None
    assert trade.option_pnl(broker) == pytest.approx(598.05, abs=1e-9)
    # no shares: the option P&L is the trade's whole net P&L
    assert trade.option_pnl(broker) == pytest.approx(trade.net_pnl(broker), abs=1e-9)
    broker.option_positions = {}  # legs no longer held by the broker count 0
    assert trade.option_pnl(broker) == pytest.approx(-2000.0 - 1.30 + 400.0 - 0.65, abs=1e-9)


def test_grid_combos_is_the_product_of_the_searched_values() -> None:
    base = _Params()
    grid = {"a": [1, 2, 3], "c": ["x", "y"], "unrelated": [0]}
    combos = ChainPlugin.grid_combos(grid, base, ("a", "b", "c"))
    expected = [
        {"a": a, "b": 0.5, "c": c} for a, c in itertools.product([1, 2, 3], ["x", "y"])
    ]
    assert combos == expected
    assert ChainPlugin.grid_combos({}, base, ("a",)) == [{"a": 1}]


class _Plugin(ChainPlugin):
    name = "contract_test"
    description = "test plugin"
    Params = _Params
    required_data = ("underlying",)

    def prepare(self, data: Any, grid: Any) -> None:  # pragma: no cover - not used
        raise NotImplementedError

    def signal_table(self, params: _Params) -> pd.DataFrame:
        index = pd.DatetimeIndex(["2021-03-15", "2021-03-16"]).tz_localize("America/New_York")
        return pd.DataFrame({"z": [1.5, -0.5 * params.a]}, index=index)


class _Strategy(ChainStrategy):
    params = (("extra", None),)
    rules_cls = _Params


def test_trading_days_default_is_the_quote_dates_in_new_york() -> None:
    plugin = _Plugin()
    with pytest.raises(TypeError, match="quote_dates"):
        plugin.trading_days()
    plugin.quote_dates = [dt.date(2021, 3, 15), dt.date(2021, 3, 17)]
    days = plugin.trading_days()
    assert [d.date() for d in days] == plugin.quote_dates
    assert str(days.tz) == "America/New_York" and all(d.hour == 0 for d in days)


def test_fingerprint_with_joins_the_underlying_and_the_tables() -> None:
    plugin = _Plugin()
    index = pd.date_range("2021-03-01", periods=3, tz="America/New_York")
    ohlc = pd.DataFrame(
        {"open": [1.0, 2, 3], "high": [2.0, 3, 4], "low": [0.5, 1, 2], "close": [1.5, 2, 3]},
        index=index,
    )
    plugin.underlying = ohlc.assign(volume=[10, 20, 30])  # volume is left out
    table = pd.DataFrame({"x": [0.1, np.nan, 0.3]}, index=index)
    assert plugin.fingerprint_with(table) == fingerprint(ohlc) + fingerprint(table)
    assert plugin.fingerprint_with(table, sep="-") == fingerprint(ohlc) + "-" + fingerprint(table)
    assert plugin.fingerprint_with(table) != plugin.fingerprint_with(table.fillna(-1.0))
    joined = fingerprint(pd.concat([ohlc, table], axis=1))
    assert plugin.fingerprint_with(table, side_by_side=True) == joined


def test_strategy_kwargs_fill_every_declared_param() -> None:
    plugin = _Plugin(risk=RiskLimits(max_drawdown=0.3))
    plugin.strategy_cls = _Strategy
    params = _Params(a=4)
    inside = pd.DatetimeIndex(["2021-03-15", "2021-03-16"]).tz_localize("America/New_York")
    with pytest.raises(AttributeError, match="'extra'"):
        plugin.strategy_kwargs(params, inside)
    plugin.extra = "from the plugin"
    kwargs = plugin.strategy_kwargs(params, inside)
    assert set(kwargs) == {"rules", "signals", "last_day", "limits", "extra"}
    assert kwargs["rules"] is params and kwargs["limits"] is plugin.risk
    assert kwargs["last_day"] == dt.date(2021, 3, 16)
    assert kwargs["extra"] == "from the plugin"
    # the signal table by session date (a timestamp index taken at its date)
    signals = {dt.date(2021, 3, 15): {"z": 1.5}, dt.date(2021, 3, 16): {"z": -2.0}}
    assert kwargs["signals"] == signals
    plugin.signal_source = None
    assert "signals" not in plugin.strategy_kwargs(params, inside)


def _chain_self(book: TradeBook, broker: SimpleNamespace, **attrs: Any) -> SimpleNamespace:
    """What ChainStrategy's bookkeeping methods read of ``self``."""
    return SimpleNamespace(book=book, obroker=broker, trades=[], positions_open={},
                           positions_done=[], **attrs)  # fmt: skip


def test_finish_trade_books_the_exit_from_the_trade_book() -> None:
    """Bought 1 call at 10.00 (0.65 commission), sold at 12.00 (0.65): net 200 - 1.30."""
    broker = _broker()
    broker.option_fills += [_fill(C, 1, 10.0, "cal"), _fill(C, -1, 12.0, "close cal", hour=11)]
    book = TradeBook()
    book.sync(broker)
    row: dict[str, Any] = {"date": dt.date(2021, 3, 15)}
    trade_id = book.trade_id("cal")
    assert trade_id is not None
    me = _chain_self(book, broker, sync_on_finish=False, trade_fields_hidden=("bars", "row"))
    me.open_trade = {"trade_id": trade_id, "row": row, "bars": 3, "tag": "cal"}
    ChainStrategy.finish_trade(me, dt.date(2021, 3, 16), "target")  # type: ignore[arg-type]
    assert me.open_trade is None
    assert row["status"] == "traded" and row["exit_reason"] == "target"
    assert row["net_pnl"] == pytest.approx(200.0 - 1.30, abs=1e-9)
    (record,) = me.trades
    assert record == {
        "trade_id": trade_id,
        "tag": "cal",
        "exit_date": dt.date(2021, 3, 16),
        "exit_reason": "target",
        "bars_held": 3,
        "commissions": pytest.approx(1.30, abs=1e-9),
        "net_pnl": pytest.approx(198.70, abs=1e-9),
    }
    assert book.trade(trade_id).fields.get("exit_reason", "target") == "target"


def test_finish_position_and_the_window_end_marks() -> None:
    """Two positions: one closed (bought at 10.00, sold at 12.00), one still open (sold 1 put at
    4.00, marked 5.00 at the end: -100 - 0.65 at the marks)."""
    broker = _broker()
    broker.option_fills += [_fill(C, 1, 10.0, "a"), _fill(P, -1, 4.0, "b")]
    broker.option_fills.append(_fill(C, -1, 12.0, "close a", hour=11))
    broker.option_positions = {P: OptionPosition(P, -1, 4.0, 5.0)}
    book = TradeBook()
    book.sync(broker)
    pos_a = ComboPosition(tag="a", row={}, trade_id=book.trade_id("a") or 0)
    pos_b = ComboPosition(tag="b", row={}, trade_id=book.trade_id("b") or 0)
    me = _chain_self(book, broker)
    me.positions_open = {"a": pos_a, "b": pos_b}
    pos_a.closing_reason = "profit_target"
    ChainStrategy.finish_position(me, pos_a, dt.date(2021, 3, 16))  # type: ignore[arg-type]
    assert list(me.positions_open) == ["b"] and me.positions_done == [pos_a]
    assert pos_a.row["status"] == "traded" and pos_a.row["exit_reason"] == "profit_target"
    assert pos_a.row["exit_date"] == dt.date(2021, 3, 16)
    assert pos_a.row["net_pnl"] == pytest.approx(198.70, abs=1e-9)
    ChainStrategy.book_positions_at_end(me)  # type: ignore[arg-type]
    assert pos_b.row == {"status": "open_at_end", "net_pnl": pytest.approx(-100.65, abs=1e-9)}
    assert pos_a.row["status"] == "traded"


def test_share_fills_records_orders_and_the_frame_adds_up() -> None:
    """Two fills and a refusal through ``notify_order``; the frame's cash flows by hand."""
    day = dt.date(2009, 1, 5)
    data = SimpleNamespace(_name="EWA", datetime=SimpleNamespace(date=lambda ago: day))
    seen: list[tuple[float, float, float]] = []

    class Fake(ShareFills):
        def notify_fill(self, size: float, price: float, commission: float) -> None:
            seen.append((size, price, commission))

    me = Fake()
    me.datas = [data]  # type: ignore[attr-defined]
    me.fills = []
    status = SimpleNamespace(Completed=4, Canceled=5, Margin=7, Rejected=8)

    def order(state: int, size: float, price: float, comm: float) -> SimpleNamespace:
        return SimpleNamespace(
            **vars(status), status=state, data=data,
            executed=SimpleNamespace(size=size, price=price, comm=comm),
            getstatusname=lambda: {4: "Completed", 7: "Margin"}[state],
        )  # fmt: skip

    me.notify_order(order(4, 100.0, 20.0, 1.0))  # bought 100 at 20.00, $1 commission
    me.notify_order(order(4, -40.0, 21.5, 0.5))  # sold 40 at 21.50, $0.50
    me.notify_order(order(7, 0.0, 0.0, 0.0))  # refused for margin
    me.notify_order(order(2, 0.0, 0.0, 0.0))  # submitted: not recorded
    assert seen == [(100.0, 20.0, 1.0), (-40.0, 21.5, 0.5)]
    assert [f["status"] for f in me.fills] == ["Completed", "Completed", "Margin"]
    assert math.isnan(me.fills[2]["price"]) and me.fills[2]["size"] == 0.0
    broker = SimpleNamespace(getposition=lambda d: SimpleNamespace(size=60.0))
    feed = SimpleNamespace(
        _name="EWA", close={0: 22.0}, datetime=SimpleNamespace(date=lambda ago: day)
    )
    trades, closes = share_fills_frame(me.fills, broker, [feed])  # type: ignore[arg-type]
    # -100*20 - 1 = -2001; +40*21.5 - 0.5 = 859.5; refusal 0; window end: 60 sold at 22 = 1320
    assert trades["cash_flow"].tolist() == pytest.approx([-2001.0, 859.5, 0.0, 1320.0])
    assert closes["status"].tolist() == ["window_end"] and closes["size"].tolist() == [-60.0]
    assert list(trades.columns[:6]) == ["date", "leg", "size", "price", "commission", "status"]


def test_a_chain_strategy_needs_the_risk_layer() -> None:
    """``ChainStrategy`` alone (no OptionRiskMixin) is refused when the Cerebro builds it."""
    cerebro = bt.Cerebro(stdstats=False)
    index = pd.date_range("2021-03-15", periods=2)
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=index)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(_Strategy)
    with pytest.raises(TypeError, match="OptionRiskMixin"):
        cerebro.run()


def test_finish_gone_positions_tells_settled_from_risk_closed() -> None:
    """Two positions whose legs left the book: ``a`` (sold 1 call at 10.00) settled at 3.00
    intrinsic (-300 dollars) on 2021-03-19, ``b`` (bought 1 put) closed by the kill switch;
    ``c`` still holds legs and stays open."""
    from brokers.options_broker import OptionSettlement

    c2 = OptionContract("SPXW", E, 4100.0, "C")
    broker = _broker()
    broker.option_fills += [_fill(C, -1, 10.0, "a"), _fill(P, 1, 4.0, "b"), _fill(c2, 1, 1.0, "c")]
    broker.option_fills.append(_fill(P, -1, 4.5, "close b", hour=11))
    settled_at = dt.datetime(2021, 3, 19, 16)
    broker.option_settlements.append(OptionSettlement(settled_at, C, -1, 4003.0, 3.0, 0.0, -300.0))
    book = TradeBook()
    book.sync(broker)
    positions = {t: ComboPosition(tag=t, row={}, trade_id=book.trade_id(t) or 0) for t in "abc"}
    assert [p.trade_id for p in positions.values()] == [1, 2, 3]  # in order of opening
    me = _chain_self(book, broker, combos={"c": {c2: 1}}, risk=SimpleNamespace(kill_reason="dd"))
    me.positions_open = dict(positions)
    me.finish_position = lambda pos, day: ChainStrategy.finish_position(me, pos, day)
    day = dt.date(2021, 3, 22)
    ChainStrategy.finish_gone_positions(me, day, record_settlement=True)  # type: ignore[arg-type]
    a, b = positions["a"].row, positions["b"].row
    assert list(me.positions_open) == ["c"]
    assert a["exit_reason"] == "settled" and a["settled_legs"] == 1
    assert a["settled_on"] == a["exit_date"] == dt.date(2021, 3, 19)
    assert a["net_pnl"] == pytest.approx(1000.0 - 0.65 - 300.0, abs=1e-9)
    assert b["exit_reason"] == "risk: dd" and b["exit_date"] == day and "settled_on" not in b
    assert b["net_pnl"] == pytest.approx(50.0 - 1.30, abs=1e-9)
