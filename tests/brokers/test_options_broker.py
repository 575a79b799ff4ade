"""OptionsBroker: fills at bid/ask with the slippage fraction, commissions, marks, cash settlement.

Expected numbers are computed by hand in each test from the quotes (no call into the broker's own
arithmetic).
"""

from __future__ import annotations

import datetime as dt

import backtrader as bt
import pytest

from brokers import OptionCostModel, OptionsBroker
from data_feeds import OptionContract, OptionQuote

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


def test_round_trip_loses_exactly_the_spread_plus_commissions() -> None:
    broker = make_broker(commission_per_contract=1.25, slippage_spread_fraction=0.5)
    broker.execute_combo([(CALL, 2), (PUT, 2)], QUOTES, OPEN)
    broker.execute_combo([(CALL, -2), (PUT, -2)], QUOTES, OPEN)
    spread_cost = (0.50 + 0.50) * 2 * 100  # full spread per leg, 2 contracts, multiplier 100
    commissions = 1.25 * 2 * 4  # 4 leg-fills of 2 contracts
    assert broker.getcash() == pytest.approx(100_000.0 - spread_cost - commissions, abs=0.005)
    assert broker.option_positions == {}


def test_fills_are_at_the_touch_by_default_and_at_mid_with_zero_slippage() -> None:
    broker = make_broker()
    fills = broker.execute_combo([(CALL, 1), (PUT, -1)], QUOTES, OPEN)
    assert [f.price for f in fills] == [pytest.approx(11.70), pytest.approx(10.40)]
    mid = make_broker(slippage_spread_fraction=0.0).execute_combo([(CALL, 1)], QUOTES, OPEN)
    assert mid[0].price == pytest.approx(11.45)
    assert OptionCostModel(slippage_spread_fraction=0.25).fill_price(QUOTES[CALL], 1) == (
        pytest.approx(11.45 + 0.125)
    )


def test_value_is_cash_plus_option_marks() -> None:
    broker = make_broker(commission_per_contract=1.0)
    broker.execute_combo([(CALL, -3), (PUT, -3)], QUOTES, OPEN)
    premium = (11.20 + 10.40) * 3 * 100
    assert broker.getcash() == pytest.approx(100_000.0 + premium - 6.0)
    marks = (11.45 + 10.65) * 3 * 100
    assert broker.getvalue() == pytest.approx(broker.getcash() - marks)
    broker.mark_options({CALL: 20.0, PUT: 1.0})
    assert broker.getvalue() == pytest.approx(broker.getcash() - (21.0 * 300))


def test_pm_settlement_pays_intrinsic_of_each_leg() -> None:
    broker = make_broker(commission_per_contract=0.0)
    broker.execute_combo([(CALL, 1), (PUT, 1)], QUOTES, OPEN)
    cash_after_buy = 100_000.0 - (11.70 + 10.90) * 100
    settled = broker.settle_expiring(DAY, 2761.35, CLOSE)
    assert {s.contract.right: s.value_per_unit for s in settled} == {
        "C": pytest.approx(11.35),
        "P": 0.0,
    }
    assert broker.getcash() == pytest.approx(cash_after_buy + 11.35 * 100)
    assert broker.getvalue() == pytest.approx(broker.getcash())
    assert broker.option_positions == {}


def test_settlement_filter_by_style_and_physical_is_refused() -> None:
    am = OptionContract("SPX", DAY, 2750.0, "P")
    broker = make_broker(commission_per_contract=0.0)
    broker.execute_combo([(am, 1), (CALL, 1)], {am: OptionQuote(5.0, 5.5), **QUOTES}, OPEN)
    done = broker.settle_expiring(DAY, 2740.0, OPEN, settlement="AM")
    assert [s.contract for s in done] == [am] and done[0].value_per_unit == pytest.approx(10.0)
    spy = OptionContract("SPY", DAY, 275.0, "C")
    broker.execute_combo([(spy, 1)], {spy: OptionQuote(1.0, 1.1)}, OPEN)
    with pytest.raises(ValueError, match="physical settlement"):
        broker.settle_expiring(DAY, 280.0, CLOSE, settlement="physical")


def test_bad_orders_are_rejected_before_any_cash_moves() -> None:
    broker = make_broker()
    with pytest.raises(ValueError, match="no quote"):
        broker.execute_combo(
            [(CALL, 1), (OptionContract("SPXW", DAY, 2800.0, "C"), 1)], QUOTES, OPEN
        )
    with pytest.raises(ValueError, match="expired"):
        broker.execute_combo([(CALL, 1)], QUOTES, OPEN + dt.timedelta(days=1))
    assert broker.getcash() == 100_000.0 and broker.option_fills == []


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
                self.broker.execute_combo([(c, -1)], {c: OptionQuote(100.0, 101.0)}, OPEN)
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
    cerebro.addstrategy(Hold)
    cerebro.run()
    assert len(checks) == len(frame)
    for value, parts in checks:
        assert value == pytest.approx(parts, abs=1e-9)
