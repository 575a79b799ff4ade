"""``directional_overlay`` on the real SPXW minute quotes of 2021-01: the drift z-score by hand
from the daily CSV, the tilt rule, one tilted trade's P&L from the raw quote rows, look-ahead and
parameter validation."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from data_feeds import ChainStore, load_ohlc
from strategies import STRATEGIES
from strategies.directional_overlay import (
    DirectionalOverlay,
    DirectionalOverlayParams,
    drift_zscore,
    tilt_legs,
)

pytestmark = pytest.mark.shared_data

DAY = dt.date(2021, 1, 6)  # short vol (gap +0.36) after a -0.39 % night: drift_z -1.01
CASH = 1_000_000.0
BROKER = {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5}


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="America/New_York")


@pytest.fixture(scope="module")
def files(shared_data: Path) -> dict[str, str]:
    return {
        "quotes": str(shared_data / "options/spx_spxw_spy_option_minute_quotes.csv.gz"),
        "minute": str(shared_data / "intraday/spx_index_minute_2021_2023.csv"),
        "daily": str(shared_data / "index/spx_vix_spy_qqq_daily.csv"),
    }


@pytest.fixture(scope="module")
def overlay(files, tmp_path_factory: pytest.TempPathFactory) -> DirectionalOverlay:
    db = tmp_path_factory.mktemp("overlay") / "chains_minute.duckdb"
    with ChainStore(db) as store:
        store.ingest(files["quotes"], "lean-minute")
    spx = load_ohlc(files["daily"], root="SPX", start="2019-06-01", end="2021-01-29")
    plug = DirectionalOverlay(fixed={}, broker=BROKER)
    data = {"option_quotes": Path(files["quotes"]), "index_minute": Path(files["minute"])}
    plug.prepare({"underlying": spx, "chains": ChainStore(db, read_only=True), **data}, {})
    return plug


def test_registered() -> None:
    assert STRATEGIES["directional_overlay"] is DirectionalOverlay


def test_drift_z_by_hand_from_the_daily_csv(overlay, files) -> None:
    with open(files["daily"], newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["root"] == "SPX" and r["Date"] >= "2019-06-01"]
    dates = [r["Date"] for r in rows]
    i = dates.index(DAY.isoformat())
    nights = [
        math.log(float(rows[j]["Open"]) / float(rows[j - 1]["Close"])) for j in range(i - 60, i)
    ]
    mu, sd = float(np.mean(nights)), float(np.std(nights, ddof=1))
    r_day = math.log(float(rows[i]["Open"]) / float(rows[i - 1]["Close"]))  # no minute bar
    row = overlay.signal_table().loc[DAY]
    assert row["overnight_return"] == pytest.approx(r_day, rel=1e-12)
    assert row["drift_mu"] == pytest.approx(mu, rel=1e-9)
    assert row["drift_sd"] == pytest.approx(sd, rel=1e-9)
    assert row["drift_z"] == pytest.approx((r_day - mu) / sd, rel=1e-9)
    assert row["drift_z"] < -1.0


@pytest.mark.parametrize(
    ("side", "bias", "calls", "puts"),
    [
        (1, 1, 2, 1),  # long vol, up: call-weighted
        (1, -1, 1, 2),  # long vol, down: put-weighted
        (-1, 1, -1, -2),  # short vol, up: fewer short calls (book delta > 0)
        (-1, -1, -2, -1),  # short vol, down: fewer short puts (book delta < 0)
        (1, 0, 1, 1),
        (-1, 0, -1, -1),
    ],
)
def test_tilt_rule_by_hand(side: int, bias: int, calls: int, puts: int) -> None:
    assert tilt_legs(side, bias, 2) == {"C": calls, "P": puts}
    # at the ATM strike a call has delta ~ +0.5 and a put ~ -0.5: the sign follows the bias
    delta = 0.5 * calls - 0.5 * puts
    assert np.sign(delta) == bias


def test_tilted_trade_pnl_by_hand_from_raw_quotes(overlay, files) -> None:
    p = DirectionalOverlayParams(
        **overlay.fixed,
        tilt_z=0.5,
        exit_gap=0.0,
        exit_time="10:15",
        take_profit=10.0,
        stop_loss=10.0,
        account_risk=0.5,
        max_contracts=1,
    )
    res = overlay.backtest(p, _ts("2021-01-06"), _ts("2021-01-06"), cash=CASH)
    (row,) = res.daily_log[res.daily_log["status"] == "traded"].to_dict("records")
    assert (row["side"], row["bias"], row["exit_reason"]) == ("short_vol", "down", "time")
    quotes: dict[tuple[str, str], tuple[float, float]] = {}
    with gzip.open(files["quotes"], "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            key = (r["date"], r["root"], r["expiration"], r["strike"])
            if key == ("2021-01-06", "SPXW", "2021-01-06", "3700.0"):
                quotes[(r["time_et"], r["right"])] = (float(r["bid_close"]), float(r["ask_close"]))
    legs = {"C": -2, "P": -1}  # short vol + down bias: 2 short calls, 1 short put
    pnl = 0.0
    for right, q in legs.items():
        bid, ask = quotes[("09:30", right)]  # 09:31 snapshot, slippage 0.5 = the touch
        entry = bid if q < 0 else ask
        bid, ask = quotes[("10:14", right)]  # the quotes standing at 10:15
        exit_ = ask if q < 0 else bid
        pnl += q * (exit_ - entry) * 100
    pnl -= 2 * 3 * BROKER["commission_per_contract"]
    got = res.trades[res.trades["event"] == "fill"]
    assert sorted(got["quantity"]) == [-2, -1, 1, 2]
    assert row["net_pnl"] == pytest.approx(pnl, abs=1e-6)
    assert res.value.iloc[-1] - CASH == pytest.approx(pnl, abs=1e-6)


def test_strangle_mode_without_a_wing_strike_is_logged_not_replaced(overlay) -> None:
    p = DirectionalOverlayParams(**overlay.fixed, tilt_z=0.5, tilt_mode="strangle")
    res = overlay.backtest(p, _ts("2021-01-06"), _ts("2021-01-06"), cash=CASH)
    row = res.daily_log.set_index("date").loc[DAY]
    # short vol + down: short ATM 3700 call, the put should go below 3700: none is listed
    assert row["status"] == "no_combo" and "beyond the ATM strike" in row["detail"]
    assert res.trades.empty


def test_look_ahead_drift_ignores_the_day_and_later(overlay) -> None:
    spx = overlay.underlying
    r = overlay.signal_table()["overnight_return"]
    base = drift_zscore(r, spx, 60)
    bumped = spx.copy()
    later = bumped.index >= _ts(DAY.isoformat())
    bumped.loc[later, ["open", "close"]] *= 1.03
    moved = drift_zscore(r, bumped, 60)
    assert base.loc[DAY].equals(moved.loc[DAY])
    assert not np.isclose(
        base.loc[dt.date(2021, 1, 8), "drift_mu"], moved.loc[dt.date(2021, 1, 8), "drift_mu"]
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tilt_ratio": 1}, "tilt_ratio"),
        ({"wing_delta": 0.5}, "wing_delta"),
        ({"drift_window": 5}, "drift_window"),
        ({"tilt_z": 0.0}, "tilt_z"),
        ({"tilt_mode": "calls"}, "tilt_mode"),
        ({"exit_gap": 0.5}, "exit_gap"),
    ],
)
def test_param_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        DirectionalOverlayParams(**kwargs)


def test_tilt_legs_and_drift_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="side must be"):
        tilt_legs(0, 1, 2)
    with pytest.raises(ValueError, match="drift window"):
        drift_zscore(pd.Series(dtype=float), pd.DataFrame({"open": [], "close": []}), 1)
