"""brokers.margin: Reg-T style requirements checked against published worked examples and hand
arithmetic written out in each test (never the module's own output).

Published examples (third-party broker help pages applying the Cboe/FINRA strategy-based rules):

* short put, equity (edeltapro "Margin" knowledge base): short 1 200 put at $1.20, stock at $209:
  requirement $3,400, margin call after the proceeds $3,280.
* put credit spread (same page): long 120 put at $0.80, short 125 put at $1.24: margin call $456.
* short strangle, equity (tastytrade help "Short straddle/strangle"): stock $45, short 47 call at
  $2.10, short 43 put at $1.20: requirement $1,030.
"""

from __future__ import annotations

import datetime as dt

import pytest

from brokers.margin import (
    BROAD_BASED_INDEX,
    EQUITY,
    book_requirement,
    max_loss,
    naked_short_requirement,
    spread_requirement,
)
from data_feeds import OptionContract

EXP = dt.date(2019, 6, 21)
LATER = dt.date(2019, 7, 19)


def spy(strike: float, right: str, exp: dt.date = EXP) -> OptionContract:
    return OptionContract("SPY", exp, strike, right)  # type: ignore[arg-type]


def spx(strike: float, right: str, root: str = "SPXW", exp: dt.date = EXP) -> OptionContract:
    return OptionContract(root, exp, strike, right)  # type: ignore[arg-type]


def test_published_short_put_example() -> None:
    # 20% * 209 - (209 - 200) = 32.80 > 10% * 200 = 20 -> (1.20 + 32.80) * 100 = 3,400
    assert naked_short_requirement("P", 200.0, 209.0, 1.20) == pytest.approx(3400.0)
    report = book_requirement([(spy(200.0, "P"), -1, 1.20)], {"SPY": 209.0})
    (group,) = report.groups
    assert group.kind == "naked_short"
    assert group.cboe_requirement == pytest.approx(3400.0)
    assert report.requirement == pytest.approx(3280.0)  # the published margin call


def test_published_put_spread_example() -> None:
    legs = [(spy(120.0, "P"), 1, 0.80), (spy(125.0, "P"), -1, 1.24)]
    report = book_requirement(legs, {})  # defined risk: no underlying price needed
    (group,) = report.groups
    assert group.kind == "defined_risk"
    assert report.requirement == pytest.approx(500.0 - 44.0)  # width - credit = $456
    assert report.cboe_requirement == pytest.approx(500.0)  # the spread amount
    assert spread_requirement("P", 125.0, 120.0) == pytest.approx(500.0)


def test_published_short_strangle_example() -> None:
    # call: 20% * 45 - 2 = 7 vs 10% * 45 = 4.5 -> (7 + 2.10) * 100 = 910
    # put: 20% * 45 - 2 = 7 vs 10% * 43 = 4.3 -> (7 + 1.20) * 100 = 820
    # strangle: 910 + the put's premium 120 = 1,030
    legs = [(spy(47.0, "C"), -1, 2.10), (spy(43.0, "P"), -1, 1.20)]
    report = book_requirement(legs, {"SPY": 45.0})
    (group,) = report.groups
    assert group.kind == "short_straddle"
    assert group.cboe_requirement == pytest.approx(1030.0)
    assert group.requirement == pytest.approx(1030.0 - 330.0)  # both premiums are in the value


def test_index_naked_short_uses_15_percent_and_its_floors() -> None:
    # call 100 OTM: 15% * 2900 - 100 = 335 > 10% * 2900 = 290 -> (5 + 335) * 100
    assert naked_short_requirement(
        "C", 3000.0, 2900.0, 5.0, rates=BROAD_BASED_INDEX
    ) == pytest.approx(34_000.0)
    # put 900 OTM: 435 - 900 < 0, floor 10% of the strike 2000 = 200 -> (0.5 + 200) * 100 * 3
    assert naked_short_requirement(
        "P", 2000.0, 2900.0, 0.5, quantity=-3, rates=BROAD_BASED_INDEX
    ) == pytest.approx(60_150.0)
    # the book picks 15% for SPXW by root
    report = book_requirement([(spx(3000.0, "C"), -1, 5.0)], {"SPX": 2900.0})
    assert report.cboe_requirement == pytest.approx(34_000.0)
    # and 20% for SPY: 20% * 290 - 10 = 48 vs 29 -> (0.5 + 48) * 100
    assert naked_short_requirement("C", 300.0, 290.0, 0.5, rates=EQUITY) == pytest.approx(4850.0)


def test_iron_condor_is_the_wider_wing_minus_the_credit() -> None:
    legs = [
        (spx(2780.0, "P"), 1, 1.00),
        (spx(2850.0, "P"), -1, 4.00),
        (spx(2950.0, "C"), -1, 3.50),
        (spx(3000.0, "C"), 1, 0.50),
    ]
    credit = (4.00 - 1.00 + 3.50 - 0.50) * 100  # 600
    report = book_requirement(legs, {"SPX": 2900.0})
    (group,) = report.groups
    assert group.kind == "defined_risk"
    assert group.requirement == pytest.approx(70 * 100 - credit)  # put wing 70 > call wing 50


def test_long_butterfly_needs_its_debit_and_longs_their_value() -> None:
    legs = [(spx(2850.0, "C"), 1, 60.0), (spx(2900.0, "C"), -2, 30.0), (spx(2950.0, "C"), 1, 12.0)]
    report = book_requirement(legs, {"SPX": 2900.0})
    assert report.requirement == pytest.approx((60.0 - 60.0 + 12.0) * 100)  # debit 12 points
    lone = book_requirement([(spx(2950.0, "C"), 2, 12.0)], {})
    assert [g.kind for g in lone.groups] == ["long"]
    assert lone.requirement == pytest.approx(2 * 12.0 * 100) and lone.cboe_requirement == 0.0


def test_pairing_covers_what_it_can_and_leaves_the_rest_naked() -> None:
    # 2 short 2900 calls, 1 long 2950 call: one vertical + one naked call
    legs = [(spx(2900.0, "C"), -2, 20.0), (spx(2950.0, "C"), 1, 5.0)]
    report = book_requirement(legs, {"SPX": 2900.0})
    kinds = sorted(g.kind for g in report.groups)
    assert kinds == ["defined_risk", "naked_short"]
    vertical = (50.0 - (20.0 - 5.0)) * 100  # width - credit
    naked_add_on = 0.15 * 2900.0 * 100  # ATM: 15% of the index, premium already in the value
    assert report.requirement == pytest.approx(vertical + naked_add_on)


def test_am_and_pm_of_the_same_date_are_different_expiries() -> None:
    # short SPXW (PM) put covered only by a long that settles later; the SPX AM long settles
    # before it, so the short is naked and the long stands alone
    legs = [(spx(2900.0, "P", "SPXW"), -1, 10.0), (spx(2850.0, "P", "SPX"), 1, 4.0)]
    report = book_requirement(legs, {"SPX": 2900.0})
    assert sorted(g.kind for g in report.groups) == ["long", "naked_short"]
    # the other way round (AM short, PM long) is a covered calendar-style spread of width 50
    legs = [(spx(2900.0, "P", "SPX"), -1, 10.0), (spx(2850.0, "P", "SPXW"), 1, 4.0)]
    (group,) = book_requirement(legs, {"SPX": 2900.0}).groups
    assert group.kind == "calendar"
    assert group.cboe_requirement == pytest.approx(5000.0)
    assert group.requirement == pytest.approx(5000.0 - 1000.0 + 400.0)


def test_calendar_long_later_covers_short_near() -> None:
    legs = [(spy(300.0, "C"), -1, 2.0), (spy(300.0, "C", LATER), 1, 4.5)]
    (group,) = book_requirement(legs, {"SPY": 300.0}).groups
    assert group.kind == "calendar"
    assert group.cboe_requirement == 0.0  # same strike: no spread amount
    assert group.requirement == pytest.approx((4.5 - 2.0) * 100)  # the debit


def test_shares_and_errors() -> None:
    report = book_requirement([], {}, shares={"SPY": (-200, 390.0)})
    assert report.requirement == pytest.approx(0.5 * 200 * 390.0)
    with pytest.raises(ValueError, match="SPX price"):
        book_requirement([(spx(3000.0, "C"), -1, 5.0)], {})
    with pytest.raises(ValueError, match="unbounded"):
        max_loss([(spx(3000.0, "C"), -1, 5.0)])
    with pytest.raises(ValueError, match="right"):
        naked_short_requirement("X", 1.0, 1.0, 0.0)
