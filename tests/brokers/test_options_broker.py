"""OptionsBroker: fills at bid/ask with the slippage fraction, commissions, marks, settlement,
margin on hand-made snapshots.

Every order goes through the one order path (``execute_snapshot``; hand-made quotes wrapped by
``quotes_snapshot``) and every settlement through ``settle_due`` with a hand-made settlement source.
Expected numbers are computed by hand in each test from the quotes (no call into the broker's own
arithmetic).
"""

from __future__ import annotations

import datetime as dt

import backtrader as bt
import pandas as pd
import pytest

from brokers import MarginError, OptionCostModel, OptionsBroker, OrderRejected, quotes_snapshot
from data_feeds import OptionContract, OptionQuote
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot

DAY = dt.date(2018, 3, 16)
OPEN = dt.datetime(2018, 3, 16, 9, 30)
CLOSE = dt.datetime(2018, 3, 16, 16, 0)
CALL = OptionContract("SPXW", DAY, 2750.0, "C")
PUT = OptionContract("SPXW", DAY, 2750.0, "P")
QUOTES = {CALL: OptionQuote(11.20, 11.70), PUT: OptionQuote(10.40, 10.90)}


def make_broker(**kw: float) -> OptionsBroker:
    broker = OptionsBroker(**kw)
    broker.setcash(100_000.0)
    broker.start()
    return broker


def snap(quotes: dict, time: dt.datetime = OPEN, price: float = 2750.0, underlying: str = "SPX"):
    """Hand-made quotes as a one-row-per-leg snapshot (the broker's one order path)."""
    return quotes_snapshot(underlying, time, price, quotes)


def settlement_source(day: dt.date, open_: float, close: float) -> pd.DataFrame:
    """A one-day settlement source (daily open and close) for ``settle_due``."""
    return pd.DataFrame({"open": [open_], "close": [close]}, index=pd.to_datetime([day]))


def test_round_trip_loses_exactly_the_spread_plus_commissions() -> None:
    broker = make_broker(commission_per_contract=1.25, slippage_spread_fraction=0.5)
    broker.execute_snapshot([(CALL, 1), (PUT, 1)], 2, snap(QUOTES))
    broker.execute_snapshot([(CALL, 1), (PUT, 1)], -2, snap(QUOTES))
    spread_cost = (0.50 + 0.50) * 2 * 100  # full spread per leg, 2 contracts, multiplier 100
    commissions = 1.25 * 2 * 4  # 4 leg-fills of 2 contracts
    assert broker.getcash() == pytest.approx(100_000.0 - spread_cost - commissions, abs=0.005)
    assert broker.option_positions == {}


def test_fills_are_at_the_touch_by_default_and_at_mid_with_zero_slippage() -> None:
    broker = make_broker()
    fills = broker.execute_snapshot([(CALL, 1), (PUT, -1)], 1, snap(QUOTES))
    assert [f.price for f in fills] == [pytest.approx(11.70), pytest.approx(10.40)]
    mid = make_broker(slippage_spread_fraction=0.0).execute_snapshot([(CALL, 1)], 1, snap(QUOTES))
    assert mid[0].price == pytest.approx(11.45)
    assert OptionCostModel(slippage_spread_fraction=0.25).fill_price(QUOTES[CALL], 1) == (
        pytest.approx(11.45 + 0.125)
    )


def test_value_is_cash_plus_option_marks() -> None:
    # margin is tested below; three short straddles need ~$124k of margin on $100k: off here
    broker = make_broker(commission_per_contract=1.0, margin_check=False)
    broker.execute_snapshot([(CALL, 1), (PUT, 1)], -3, snap(QUOTES))
    premium = (11.20 + 10.40) * 3 * 100
    assert broker.getcash() == pytest.approx(100_000.0 + premium - 6.0)
    marks = (11.45 + 10.65) * 3 * 100
    assert broker.getvalue() == pytest.approx(broker.getcash() - marks)
    broker.mark_options({CALL: 20.0, PUT: 1.0})
    assert broker.getvalue() == pytest.approx(broker.getcash() - (21.0 * 300))


def test_pm_settlement_pays_intrinsic_of_each_leg() -> None:
    broker = make_broker(commission_per_contract=0.0)
    broker.set_settlement_prices(settlement_source(DAY, 2745.0, 2761.35), "SPX")
    broker.execute_snapshot([(CALL, 1), (PUT, 1)], 1, snap(QUOTES))
    cash_after_buy = 100_000.0 - (11.70 + 10.90) * 100
    assert broker.settle_due(CLOSE - dt.timedelta(minutes=1)) == []  # PM: not before the close
    settled = broker.settle_due(CLOSE)
    assert {s.contract.right: s.value_per_unit for s in settled} == {
        "C": pytest.approx(11.35),
        "P": 0.0,
    }
    assert broker.getcash() == pytest.approx(cash_after_buy + 11.35 * 100)
    assert broker.getvalue() == pytest.approx(broker.getcash())
    assert broker.option_positions == {}


def test_settlement_by_style_and_physical_exercise() -> None:
    """AM legs settle alone at 09:30 (on the open), PM and physical legs at the close; a physical
    (SPY) leg in the money is exercised into shares (this broker version supports physical
    settlement; it used to refuse it)."""
    am = OptionContract("SPX", DAY, 2750.0, "P")
    broker = make_broker(commission_per_contract=0.0)
    # SPX opens at 2740 (the AM put's settlement) and closes at 2740: the PM call ends worthless
    broker.set_settlement_prices(settlement_source(DAY, 2740.0, 2740.0), "SPX")
    broker.set_settlement_prices(settlement_source(DAY, 279.0, 280.0), "SPY")
    eve = OPEN - dt.timedelta(hours=18)  # an AM leg trades until the day before its expiry
    broker.execute_snapshot(
        [(am, 1), (CALL, 1)], 1, snap({am: OptionQuote(5.0, 5.5), **QUOTES}, time=eve)
    )
    done = broker.settle_due(OPEN)
    assert [s.contract for s in done] == [am] and done[0].value_per_unit == pytest.approx(10.0)
    spy = OptionContract("SPY", DAY, 275.0, "C")
    broker.execute_snapshot([(spy, 1)], 1, snap({spy: OptionQuote(1.0, 1.1)}, underlying="SPY"))
    cash = broker.getcash()
    done = broker.settle_due(CLOSE)
    assert {s.contract for s in done} == {spy, CALL}
    (ex,) = [s for s in done if s.contract == spy]
    assert (ex.kind, ex.shares) == ("exercise", 100)
    assert broker.getcash() == pytest.approx(cash - 275.0 * 100)  # paid the strike for 100 shares
    assert broker.underlying_positions["SPY"].quantity == 100
    assert broker.underlying_value() == pytest.approx(280.0 * 100)


def test_bad_orders_are_rejected_before_any_cash_moves() -> None:
    broker = make_broker()
    with pytest.raises(ValueError, match="no quote"):
        broker.execute_snapshot(
            [(CALL, 1), (OptionContract("SPXW", DAY, 2800.0, "C"), 1)], 1, snap(QUOTES)
        )
    with pytest.raises(ValueError, match="expired"):
        broker.execute_snapshot([(CALL, 1)], 1, snap(QUOTES, time=OPEN + dt.timedelta(days=1)))
    # the same rules as chain quotes: a PM leg at its close is settled, a zero bid is not sold
    with pytest.raises(OrderRejected, match="already settled"):
        broker.execute_snapshot([(CALL, 1)], 1, snap(QUOTES, time=CLOSE))
    with pytest.raises(OrderRejected, match="nobody pays for it"):
        broker.execute_snapshot([(CALL, 1)], -1, snap({CALL: OptionQuote(0.0, 0.05)}))
    assert broker.getcash() == 100_000.0 and broker.option_fills == []
    assert len(broker.rejections) == 4


def test_quote_and_contract_validation() -> None:
    with pytest.raises(ValueError, match="crossed quote"):
        OptionQuote(2.0, 1.0)
    with pytest.raises(ValueError, match="right must be 'C' or 'P'"):
        OptionContract("SPXW", DAY, 100.0, "X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown root"):
        OptionContract("NDX", DAY, 100.0, "C")
    assert (CALL.style, CALL.settlement) == ("european", "PM")
    assert OptionContract("SPX", DAY, 1.0, "C").settlement == "AM"
    assert OptionContract("SPY", DAY, 1.0, "C").settlement == "physical"


def test_broker_value_inside_a_cerebro_run_includes_the_option_book(sp500) -> None:
    """Every bar: value == cash + option marks (no stock positions here)."""
    frame = sp500.loc["2018-03-01":"2018-03-31"]
    checks: list[tuple[float, float]] = []

    class Hold(bt.Strategy):
        def next(self) -> None:
            if len(self) == 1:
                exp = dt.date(2018, 12, 21)
                c = OptionContract("SPX", exp, 2700.0, "C")
                quotes = {c: OptionQuote(100.0, 101.0)}
                self.broker.execute_snapshot([(c, 1)], -1, snap(quotes, price=2700.0))
            self.broker.mark_options(
                {k: self.data.close[0] / 27.0 for k in self.broker.option_positions}
            )
            checks.append(
                (self.broker.getvalue(), self.broker.getcash() + self.broker.options_value())
            )

    from data_feeds import ohlc_feed

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ohlc_feed(frame))
    cerebro.setbroker(OptionsBroker())
    cerebro.broker.setcash(1_000_000.0)  # the naked short call needs ~$50k of margin
    cerebro.addstrategy(Hold)
    cerebro.run()
    assert len(checks) == len(frame)
    for value, parts in checks:
        assert value == pytest.approx(parts, abs=1e-9)


# -- snapshot path on hand-made snapshots (no shared data needed) ---------------------------------
def tiny_snapshot(day: dt.date, price: float, rows: list[tuple]) -> ChainSnapshot:
    """A ChainSnapshot at 15:45 ET of ``rows`` = (root, expiration, strike, right, bid, ask)."""
    q = pd.DataFrame(rows, columns=["root", "expiration", "strike", "right", "bid", "ask"])
    q["expiration"] = pd.to_datetime(q["expiration"]).astype("datetime64[ns]")
    q["mid"] = 0.5 * (q["bid"] + q["ask"])
    for col in QUOTE_COLUMNS:
        if col not in q.columns:
            q[col] = float("nan")
    q["is_liquid"] = q["bid"] > 0
    when = pd.Timestamp.combine(day, dt.time(15, 45)).tz_localize("America/New_York")
    return ChainSnapshot("SPX", when, price, q[list(QUOTE_COLUMNS)])


EXP = dt.date(2018, 3, 23)
PUT_2600 = OptionContract("SPXW", EXP, 2600.0, "P")
PUT_2500 = OptionContract("SPXW", EXP, 2500.0, "P")


def test_margin_blocks_new_risk_but_never_a_closing_order() -> None:
    day1 = tiny_snapshot(DAY, 2750.0, [("SPXW", EXP, 2600.0, "P", 4.0, 4.4)])
    broker = make_broker(commission_per_contract=0.0)
    broker.setcash(45_000.0)
    # naked short put, 150 OTM: 15% * 2750 - 150 = 262.5 > 10% * 2600 -> add-on $26,250
    broker.execute_snapshot([(PUT_2600, -1)], 1, day1)
    report = broker.margin_report()
    assert report.requirement == pytest.approx(26_250.0)
    assert report.cboe_requirement == pytest.approx(26_250.0 + 4.2 * 100)
    # the market falls 10%: the put is 125 in the money, marks and requirement jump
    day2 = tiny_snapshot(
        DAY + dt.timedelta(days=3),
        2475.0,
        [("SPXW", EXP, 2600.0, "P", 130.0, 134.0), ("SPXW", EXP, 2500.0, "P", 60.0, 64.0)],
    )
    broker.mark_to_snapshot(day2)
    value = broker.getvalue()
    assert value == pytest.approx(45_000.0 + 400.0 - 13_200.0)  # sold at the bid 4.0, mid 132
    assert broker.margin_report().requirement == pytest.approx(0.15 * 2475.0 * 100)
    with pytest.raises(MarginError, match="margin: requirement"):
        broker.execute_snapshot([(PUT_2500, -1)], 1, day2)  # more risk: refused
    broker.execute_snapshot([(PUT_2600, 1)], 1, day2)  # closing: accepted although short
    assert broker.option_positions == {}
    assert broker.getcash() == pytest.approx(45_000.0 + 400.0 - 13_400.0)
    assert [r.reason[:7] for r in broker.rejections] == ["margin:"]


def test_unquoted_leg_keeps_its_mark_and_is_recorded_as_stale() -> None:
    day1 = tiny_snapshot(DAY, 2750.0, [("SPXW", EXP, 2600.0, "P", 4.0, 4.4)])
    broker = make_broker(commission_per_contract=0.0)
    broker.execute_snapshot([(PUT_2600, 1)], 1, day1)
    later = tiny_snapshot(DAY + dt.timedelta(days=3), 2760.0, [("SPXW", EXP, 2500.0, "P", 1, 2)])
    assert broker.mark_to_snapshot(later) == 1
    assert broker.option_positions[PUT_2600].mark == pytest.approx(4.2)
    assert broker.stale_marks == [(dt.datetime(2018, 3, 19, 15, 45), PUT_2600)]


def test_slippage_per_root_overrides_the_default() -> None:
    model = OptionCostModel(slippage_spread_fraction=0.5, slippage_by_root={"SPY": 0.25})
    quote = OptionQuote(1.00, 1.20)
    assert model.fill_price(quote, 1, "SPY") == pytest.approx(1.10 + 0.05)
    assert model.fill_price(quote, -1, "SPXW") == pytest.approx(1.00)
    with pytest.raises(ValueError, match="slippage_by_root"):
        OptionCostModel(slippage_by_root={"SPY": -0.1})
    broker = make_broker(slippage_by_root={"SPXW": 0.0})
    day1 = tiny_snapshot(DAY, 2750.0, [("SPXW", EXP, 2600.0, "P", 4.0, 4.4)])
    (fill,) = broker.execute_snapshot([(PUT_2600, 1)], 1, day1)
    assert fill.price == pytest.approx(4.2)  # mid for SPXW by override


def test_physical_assignment_of_puts_and_the_itm_threshold() -> None:
    spy_put = OptionContract("SPY", DAY, 275.0, "P")
    spy_call = OptionContract("SPY", DAY, 270.0, "C")
    broker = make_broker(commission_per_contract=0.0, settlement_fee_per_contract=0.5)
    quotes = {spy_put: OptionQuote(1.0, 1.1), spy_call: OptionQuote(5.0, 5.1)}
    broker.set_settlement_prices(settlement_source(DAY, 275.0, 274.995), "SPY")
    broker.execute_snapshot(
        [(spy_put, -2), (spy_call, 1)], 1, snap(quotes, price=275.0, underlying="SPY")
    )
    cash = broker.getcash()
    # put 0.005 in the money: below OCC's $0.01 exercise-by-exception threshold, expires;
    # call 4.995 in the money: exercised, +100 shares at 270
    done = broker.settle_due(CLOSE)
    assert {s.contract.right: (s.kind, s.shares) for s in done} == {
        "P": ("expired", 0),
        "C": ("exercise", 100),
    }
    assert broker.getcash() == pytest.approx(cash - 270.0 * 100 - 3 * 0.5)
    # short put assigned 5 in the money: +200 shares bought at the strike
    broker.set_settlement_prices(settlement_source(DAY, 275.0, 270.0), "SPY")
    broker.execute_snapshot([(spy_put, 1)], -2, snap(quotes, price=275.0, underlying="SPY"))
    cash = broker.getcash()
    (s,) = broker.settle_due(CLOSE)
    assert (s.kind, s.shares) == ("assignment", 200)
    assert broker.getcash() == pytest.approx(cash - 275.0 * 200 - 2 * 0.5)
    held = broker.underlying_positions["SPY"]
    assert held.quantity == 300 and held.mark == 270.0
    assert held.avg_price == pytest.approx((270.0 * 100 + 275.0 * 200) / 300)
    assert broker.getvalue() == pytest.approx(broker.getcash() + 300 * 270.0)
