"""``vol_dislocation`` on the real SPXW minute quotes of 2021-01: forecast vs a numpy HAR, the
auction vol vs a scipy Black-76 inversion, one trade's P&L from the raw quote rows, look-ahead,
flat days and parameter validation."""

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
from scipy.optimize import brentq
from scipy.stats import norm

from data_feeds import ChainStore, load_ohlc
from strategies import STRATEGIES
from strategies.vol_dislocation import (
    VolDislocation,
    VolDislocationParams,
    forecast_table,
)

pytestmark = pytest.mark.shared_data

DAY = dt.date(2021, 1, 6)  # gap +0.36: a short straddle (3700 strike)
CASH = 1_000_000.0
BROKER = {"commission_per_contract": 0.65, "slippage_spread_fraction": 0.25}


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="America/New_York")


@pytest.fixture(scope="module")
def paths(shared_data: Path) -> dict[str, str]:
    return {
        "option_quotes": str(shared_data / "options/spx_spxw_spy_option_minute_quotes.csv.gz"),
        "index_minute": str(shared_data / "intraday/spx_index_minute_2021_2023.csv"),
        "daily": str(shared_data / "index/spx_vix_spy_qqq_daily.csv"),
    }


@pytest.fixture(scope="module")
def daily(paths: dict[str, str]) -> pd.DataFrame:
    return load_ohlc(paths["daily"], root="SPX", start="2019-06-01", end="2021-01-29")


@pytest.fixture(scope="module")
def plugin(paths, daily, tmp_path_factory: pytest.TempPathFactory) -> VolDislocation:
    db = tmp_path_factory.mktemp("vold") / "chains_minute.duckdb"
    with ChainStore(db) as store:
        store.ingest(paths["option_quotes"], "lean-minute")
    plug = VolDislocation(fixed={}, broker=BROKER)
    files = {k: Path(paths[k]) for k in ("option_quotes", "index_minute")}
    plug.prepare({"underlying": daily, "chains": ChainStore(db, read_only=True), **files}, {})
    return plug


def _raw_rows(path: str, day: str, time_et: str) -> dict[tuple[float, str], dict[str, str]]:
    """0DTE SPXW rows of one minute bar straight from the gzipped CSV."""
    out = {}
    with gzip.open(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if (row["date"], row["time_et"], row["root"], row["expiration"]) == (
                day,
                time_et,
                "SPXW",
                day,
            ):
                out[(float(row["strike"]), row["right"])] = row
    return out


def _black76(f: float, k: float, t: float, vol: float, right: str) -> float:
    d1 = (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if right == "C":
        return f * norm.cdf(d1) - k * norm.cdf(d2)
    return k * norm.cdf(-d2) - f * norm.cdf(-d1)


def test_registered() -> None:
    assert STRATEGIES["vol_dislocation"] is VolDislocation


def test_forecast_equals_numpy_har_and_session_scaling(plugin, paths) -> None:
    raw = pd.read_csv(paths["daily"])
    raw = raw[
        (raw["root"] == "SPX") & (raw["Date"] >= "2019-06-01") & (raw["Date"] <= "2021-01-29")
    ]
    dates = list(raw["Date"])
    rv = np.sqrt(252 * np.log(raw["High"] / raw["Low"]).to_numpy() ** 2 / (4 * math.log(2)))
    i = dates.index(DAY.isoformat())

    def regressors(s: int) -> list[float]:  # information up to s-1
        return [1.0, rv[s - 1], rv[s - 5 : s].mean(), rv[s - 22 : s].mean()]

    targets = list(range(22, i))[-1000:]  # targets s <= D-1
    x = np.array([regressors(s) for s in targets])
    beta = np.linalg.lstsq(x, rv[targets], rcond=None)[0]
    expected = float(np.array(regressors(i)) @ beta)
    row = plugin.signal_table().loc[DAY]
    assert row["rv_forecast"] == pytest.approx(expected, rel=1e-9)
    # 390-minute session: sigma^2 * tte = rv^2 / 252 * minutes_left / 390 at every minute
    assert row["sigma_forecast"] == pytest.approx(expected * math.sqrt(525_600 / (252 * 390)))
    assert row["gap"] == pytest.approx(row["sigma_auction"] / row["sigma_forecast"] - 1.0)
    assert row["gap"] > 0.2  # the short-vol day of the trade test below


def test_auction_vol_is_black76_of_the_raw_0930_quotes(plugin, paths) -> None:
    rows = _raw_rows(paths["option_quotes"], DAY.isoformat(), "09:30")
    mid = {
        r: (float(rows[(3700.0, r)]["bid_close"]) + float(rows[(3700.0, r)]["ask_close"])) / 2
        for r in "CP"
    }
    fwd = 3700.0 + mid["C"] - mid["P"]  # 3714.4 > K: the put is out of the money
    tte = 389 / 525_600  # 09:31 -> 16:00, ACT/365 minutes
    vol = brentq(lambda v: _black76(fwd, 3700.0, tte, v, "P") - mid["P"], 1e-4, 5.0)
    assert plugin.signal_table().loc[DAY, "sigma_auction"] == pytest.approx(vol, rel=1e-6)


def test_one_trade_pnl_by_hand_from_raw_quotes(plugin, paths) -> None:
    params = VolDislocationParams(
        **plugin.fixed,
        entry_threshold=0.2,
        exit_gap=0.0,
        exit_time="10:00",
        take_profit=10.0,
        stop_loss=10.0,
        account_risk=0.5,
        max_contracts=2,
    )
    res = plugin.backtest(params, _ts("2021-01-06"), _ts("2021-01-06"), cash=CASH)
    (row,) = res.daily_log[res.daily_log["status"] == "traded"].to_dict("records")
    assert row["side"] == "short_vol" and row["exit_reason"] == "time"
    n = 2  # account_risk 0.5 of $1M over a ~$30k budget per unit, capped by max_contracts
    frac, fee = BROKER["slippage_spread_fraction"], BROKER["commission_per_contract"]
    entry = _raw_rows(paths["option_quotes"], "2021-01-06", "09:30")  # the 09:31 snapshot
    exit_ = _raw_rows(paths["option_quotes"], "2021-01-06", "09:59")  # quotes standing at 10:00
    pnl = 0.0
    for right in "CP":
        b, a = (float(entry[(3700.0, right)][k]) for k in ("bid_close", "ask_close"))
        sold = (b + a) / 2 - frac * (a - b)
        b, a = (float(exit_[(3700.0, right)][k]) for k in ("bid_close", "ask_close"))
        bought = (b + a) / 2 + frac * (a - b)
        pnl += (sold - bought) * 100 * n
    pnl -= 4 * n * fee  # two legs opened and closed
    assert row["contracts"] == n
    assert row["net_pnl"] == pytest.approx(pnl, abs=1e-6)
    assert res.value.loc[_ts("2021-01-06")] - CASH == pytest.approx(pnl, abs=1e-6)
    fills = res.trades[res.trades["event"] == "fill"]
    assert [t.strftime("%H:%M") for t in fills["time"]] == ["09:31", "09:31", "10:00", "10:00"]


def test_flat_days_and_calendar(plugin, daily) -> None:
    assert len(plugin.trading_days()) == len(daily)
    assert plugin.tradable == [dt.date(2021, 1, 4), dt.date(2021, 1, 6), dt.date(2021, 1, 8)]
    res = plugin.backtest(plugin.base, _ts("2020-12-01"), _ts("2020-12-31"), cash=CASH)
    assert len(res.returns) == 22 and (res.returns == 0).all()
    assert set(res.daily_log["status"]) == {"no_opening_straddle"}


def test_look_ahead_forecast_ignores_the_day_and_later(daily) -> None:
    base = forecast_table(daily, "garman_klass")
    bumped = daily.copy()
    later = bumped.index >= _ts(DAY.isoformat())
    rng = np.random.default_rng(3)
    for col in ("open", "high", "low", "close"):
        bumped.loc[later, col] *= 1 + rng.uniform(0.0, 0.02, later.sum())
    bumped["high"] = bumped[["open", "high", "low", "close"]].max(axis=1)
    bumped["low"] = bumped[["open", "high", "low", "close"]].min(axis=1)
    moved = forecast_table(bumped, "garman_klass")
    upto = base.index <= _ts(DAY.isoformat())
    pd.testing.assert_frame_equal(base[upto], moved[upto])
    assert not np.allclose(base[~upto], moved[~upto])  # the test can fail


def test_look_ahead_truncated_minutes_leave_decision_and_entry(plugin) -> None:
    params = plugin.base.model_copy(update={"exit_time": "10:30"})
    full = plugin.backtest(params, _ts("2021-01-06"), _ts("2021-01-06"), cash=CASH)
    snaps = plugin.day_snapshots[DAY]
    try:
        plugin.day_snapshots[DAY] = [s for s in snaps if s.quote_time.time() <= dt.time(9, 45)]
        cut = plugin.backtest(params, _ts("2021-01-06"), _ts("2021-01-06"), cash=CASH)
    finally:
        plugin.day_snapshots[DAY] = snaps
    cols = ["status", "gap", "side", "contracts", "premium"]
    a = full.daily_log.set_index("date").loc[DAY]
    b = cut.daily_log.set_index("date").loc[DAY]
    assert a["side"] == "short_vol" and a["status"] == "traded"
    for c in cols[2:]:
        assert a[c] == b[c]
    early = [t for t in full.trades.itertuples() if t.time.time() <= dt.time(9, 45)]
    assert [(t.time, t.quantity, t.price) for t in early] == [
        (t.time, t.quantity, t.price)
        for t in cut.trades.itertuples()
        if t.time.time() <= dt.time(9, 45)
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"exit_gap": 0.3, "entry_threshold": 0.2}, "exit_gap"),
        ({"exit_time": "25:00"}, "exit_time"),
        ({"exit_time": "09:31"}, "exit_time"),
        ({"har_fit_window": 100, "har_min_obs": 250}, "har_fit_window"),
        ({"entry_threshold": 0.0}, "entry_threshold"),
        ({"sides": "up"}, "sides"),
        ({"rv_estimator": "yang_zhang"}, "rv_estimator"),
        ({"entry_treshold": 0.2}, "entry_treshold"),
    ],
)
def test_param_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        VolDislocationParams(**kwargs)


def test_load_time_params_are_not_searchable() -> None:
    with pytest.raises(ValueError, match="fixed at load time"):
        VolDislocation().prepare({}, {"har_min_obs": [100, 250]})
