"""Model-evaluation tables of the plugins (issue 13 point 4), checked by hand.

Each table is recomputed in the test from a small constructed daily log with plain Python (lists,
``collections.Counter``, explicit sums); the zero_dte_straddle forecast errors on a real backtest
are recomputed from the Rogers-Satchell (1991) formula, a Black-Scholes straddle written out with
``scipy.stats.norm`` and the settlement closes of the data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from data_feeds import load_ohlc
from indicators.features import REGIMES
from strategies.base import StrategyPlugin
from strategies.evaluation import bucket_labels, error_stats, outcome_table
from strategies.ml_spreads import MlSpreads
from strategies.vol_of_vol import VolOfVolGamma
from strategies.vrp_harvest import VrpHarvest
from strategies.zero_dte_straddle import QUADRANTS, ZeroDteStraddle, ZeroDteStraddleParams

NAN = float("nan")


def _rows(table: pd.DataFrame, key: str) -> dict[str, dict]:
    return {r[key]: r for r in table.to_dict("records")}


# -- building blocks -------------------------------------------------------------------------------
def test_outcome_table_by_hand() -> None:
    labels = pd.Series(["a", "b", "a", None, "a", "b"])
    pnl = pd.Series([10.0, NAN, -4.0, NAN, 6.0, -1.0])
    table = outcome_table(labels, pnl, name="g", order=["b", "a", "c"])
    assert list(table["g"]) == ["b", "a", "c", "(none)", "all"]
    rows = _rows(table, "g")
    # a: days 0, 2, 4; trades +10, -4, +6 -> 2 wins of 3, total 12, mean 4
    assert (rows["a"]["n_days"], rows["a"]["n_trades"], rows["a"]["n_wins"]) == (3, 3, 2)
    assert rows["a"]["hit_rate"] == pytest.approx(2 / 3)
    assert rows["a"]["total_net_pnl"] == 12.0 and rows["a"]["mean_net_pnl"] == 4.0
    # b: one trade of -1
    assert (rows["b"]["n_days"], rows["b"]["n_trades"], rows["b"]["hit_rate"]) == (2, 1, 0.0)
    # c never seen: zero counts, no hit rate
    assert rows["c"]["n_days"] == 0 and math.isnan(rows["c"]["hit_rate"])
    assert rows["(none)"]["n_days"] == 1 and rows["(none)"]["n_trades"] == 0
    assert rows["all"]["n_days"] == 6 and rows["all"]["n_trades"] == 4
    assert rows["all"]["total_net_pnl"] == 10 - 4 + 6 - 1
    assert rows["all"]["hit_rate"] == 2 / 4


def test_outcome_table_refuses_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="share one index"):
        outcome_table(pd.Series(["a"]), pd.Series([1.0], index=[5]), name="g")


def test_error_stats_by_hand() -> None:
    f = np.array([1.0, 2.0, NAN, 5.0])
    r = np.array([2.0, 2.0, 1.0, 1.0])
    out = error_stats(f, r)  # errors -1, 0, 4 (third pair dropped: no forecast)
    assert out["n"] == 3
    assert out["mae"] == pytest.approx(5 / 3)
    assert out["rmse"] == pytest.approx(math.sqrt(17 / 3))
    assert out["bias"] == pytest.approx(1.0)
    assert math.isnan(error_stats(np.array([NAN]), np.array([1.0]))["mae"])


def test_bucket_labels_are_left_closed() -> None:
    got = bucket_labels(pd.Series([-0.5, 0.0, 0.99, 1.0, NAN, 7.0]), [-np.inf, 0, 1, np.inf])
    assert list(got.iloc[[0, 1, 2, 3, 5]]) == ["[-inf, 0)", "[0, 1)", "[0, 1)", "[1, inf)",
                                                "[1, inf)"]
    assert pd.isna(got.iloc[4])


def test_default_model_evaluation_is_empty() -> None:
    class Plain(StrategyPlugin):
        name, description, Params, required_data = "plain", "", None, ()

        def prepare(self, data, grid):  # type: ignore[no-untyped-def]
            pass

        def trading_days(self):  # type: ignore[no-untyped-def]
            return pd.DatetimeIndex([])

        def backtest(self, params, start, end, *, cash):  # type: ignore[no-untyped-def]
            raise AssertionError

        def data_fingerprint(self) -> str:
            return ""

    assert Plain().model_evaluation(pd.DataFrame({"date": []})) == {}


# -- ml_spreads ------------------------------------------------------------------------------------
def test_ml_spreads_regime_outcomes_and_transitions_by_hand() -> None:
    days = [dt.date(2019, 4, d) for d in (1, 2, 3, 4, 5, 8, 9)]
    regimes = ["low_vol", "low_vol", "high_vol", None, "neutral", "low_vol", "high_vol"]
    pnl = [100.0, NAN, -50.0, NAN, NAN, -20.0, 30.0]
    log = pd.DataFrame({"date": days, "regime": regimes, "net_pnl": pnl})
    shuffled = log.iloc[[3, 0, 6, 2, 5, 1, 4]]  # the method orders by date itself
    tables = MlSpreads().model_evaluation(shuffled)
    perf = _rows(tables["regime_outcomes"], "regime")
    assert list(tables["regime_outcomes"]["regime"]) == [*REGIMES, "(none)", "all"]
    # low_vol: days 1, 2, 8; trades +100 and -20
    assert (perf["low_vol"]["n_days"], perf["low_vol"]["n_trades"]) == (3, 2)
    assert perf["low_vol"]["hit_rate"] == 0.5 and perf["low_vol"]["total_net_pnl"] == 80.0
    assert perf["high_vol"]["mean_net_pnl"] == pytest.approx((-50 + 30) / 2)
    assert perf["iv_expansion"]["n_days"] == 0
    assert perf["all"]["n_trades"] == 4 and perf["all"]["total_net_pnl"] == 60.0

    pairs = Counter(
        (a, b) for a, b in pairwise(regimes) if a and b
    )  # low->low, low->high, neutral->low, low->high: the None day breaks two pairs
    trans = tables["regime_transitions"].set_index("from")
    assert list(trans.index) == list(REGIMES) and list(trans.columns) == [*REGIMES, "total"]
    for a in REGIMES:
        for b in REGIMES:
            assert trans.loc[a, b] == pairs.get((a, b), 0), (a, b)
    assert trans["total"].sum() == sum(pairs.values()) == 4


# -- vrp_harvest and vol_of_vol --------------------------------------------------------------------
def test_vrp_signal_hit_rates_by_hand() -> None:
    status = ["below_threshold", "traded", "traded", "max_open", "no_signal", "open_at_end",
              "no_bid", "traded", "window_end"]
    z = [0.2, 1.5, 2.5, 1.2, NAN, 3.4, 0.9, 1.1, 2.0]
    pnl = [NAN, 120.0, -80.0, NAN, NAN, 15.0, NAN, -5.0, NAN]
    log = pd.DataFrame({"status": status, "vrp_zscore": z, "net_pnl": pnl})
    tables = VrpHarvest().model_evaluation(log)
    hits = _rows(tables["signal_hit_rates"], "signal")
    # signalled: traded x3, max_open, open_at_end, no_bid = 6; trades: 4 with P&L, 2 winners
    assert hits["signal"]["n_signals"] == 6 and hits["signal"]["n_trades"] == 4
    assert hits["signal"]["hit_rate"] == 0.5 and hits["signal"]["signal_win_share"] == 2 / 6
    assert hits["signal"]["mean_net_pnl"] == pytest.approx((120 - 80 + 15 - 5) / 4)
    assert hits["no signal"]["n_days"] == 3 and hits["no signal"]["n_trades"] == 0
    buckets = _rows(tables["signal_buckets"], "bucket")
    # [1, 2): z 1.5 (+120), 1.2 (max_open), 1.1 (-5) -> 3 signals, 2 trades, 1 win
    assert (buckets["[1, 2)"]["n_signals"], buckets["[1, 2)"]["n_trades"]) == (3, 2)
    assert buckets["[1, 2)"]["hit_rate"] == 0.5
    # [2, 3): z 2.5 (-80) and 2.0 (window_end: not a signal)
    assert (buckets["[2, 3)"]["n_days"], buckets["[2, 3)"]["n_signals"]) == (2, 1)
    assert buckets["[2, 3)"]["hit_rate"] == 0.0
    assert buckets["[3, inf)"]["total_net_pnl"] == 15.0
    assert buckets["[0, 1)"]["n_signals"] == 1 and buckets["[0, 1)"]["n_trades"] == 0
    assert buckets["(none)"]["n_days"] == 1


def test_vol_of_vol_signal_hit_rates_and_unknown_status() -> None:
    status = ["below_threshold", "traded", "holding", "closed", "traded", "size_zero",
              "no_fit", "mystery"]
    rz = [-0.2, -2.4, -0.1, 0.3, -3.5, -1.5, NAN, -1.0]
    pnl = [NAN, 400.0, NAN, NAN, -100.0, NAN, NAN, NAN]
    log = pd.DataFrame({"status": status, "residual_z": rz, "net_pnl": pnl})
    tables = VolOfVolGamma().model_evaluation(log)
    hits = _rows(tables["signal_hit_rates"], "signal")
    assert hits["signal"]["n_signals"] == 3 and hits["signal"]["n_trades"] == 2
    assert hits["signal"]["hit_rate"] == 0.5 and hits["signal"]["total_net_pnl"] == 300.0
    assert hits["no signal"]["n_days"] == 4
    assert hits["unknown status mystery"]["n_days"] == 1  # shown, not guessed
    buckets = _rows(tables["signal_buckets"], "bucket")
    assert buckets["[-3, -2)"]["hit_rate"] == 1.0 and buckets["[-inf, -3)"]["hit_rate"] == 0.0
    assert buckets["[-2, -1)"]["n_signals"] == 1 and buckets["[-2, -1)"]["n_trades"] == 0


# -- zero_dte_straddle -----------------------------------------------------------------------------
def _bs_straddle(s: float, k: float, t: float, vol: float) -> float:
    """Black-Scholes call + put, zero rate and dividend, written out (Hull, eq. 15.20-15.21)."""
    d1 = (math.log(s / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    call = s * norm.cdf(d1) - k * norm.cdf(d2)
    put = k * norm.cdf(-d2) - s * norm.cdf(-d1)
    return call + put


def _rs_vol_before(ohlc: pd.DataFrame, day: pd.Timestamp, window: int) -> float:
    """Rogers-Satchell (1991) over the `window` sessions before `day`, 252-annualized."""
    past = ohlc.loc[:day].iloc[:-1].iloc[-window:]
    o, h, lo, c = (past[k].to_numpy() for k in ("open", "high", "low", "close"))
    return math.sqrt(252 * np.mean(np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)))


def test_zero_dte_quadrant_outcomes_by_hand() -> None:
    q = list(QUADRANTS.values())
    log = pd.DataFrame({"quadrant": [q[3], q[3], q[0], None], "net_pnl": [50.0, -10.0, NAN, NAN]})
    rows = _rows(ZeroDteStraddle().quadrant_outcomes(log), "quadrant")
    assert rows[q[3]]["n_days"] == 2 and rows[q[3]]["hit_rate"] == 0.5
    assert rows[q[3]]["total_net_pnl"] == 40.0
    assert rows[q[0]]["n_days"] == 1 and rows[q[0]]["n_trades"] == 0
    assert rows[q[1]]["n_days"] == 0 and rows["(none)"]["n_days"] == 1


@pytest.fixture(scope="module")
def zero_dte_run(sp500: pd.DataFrame) -> tuple[ZeroDteStraddle, pd.DataFrame]:
    """Real backtest on the builtin S&P 500 / VIX data: rolling Rogers-Satchell over 21 days."""
    plugin = ZeroDteStraddle(fixed={}, broker={"commission_per_contract": 1.0})
    grid = {"rv_estimator": ["rogers_satchell", "parkinson"], "window": [10, 21],
            "forecast": ["rolling", "har"]}
    plugin.prepare({"underlying": sp500, "vix": load_ohlc("builtin:vix")}, grid)
    params = ZeroDteStraddleParams(rv_estimator="rogers_satchell", window=21)
    start = pd.Timestamp("2017-03-01", tz="America/New_York")
    end = pd.Timestamp("2017-05-31", tz="America/New_York")
    log = plugin.backtest(params, start, end, cash=100_000.0).daily_log
    return plugin, log


def test_zero_dte_forecast_errors_on_a_real_backtest(
    zero_dte_run: tuple[ZeroDteStraddle, pd.DataFrame], sp500: pd.DataFrame
) -> None:
    plugin, log = zero_dte_run
    csv_like = log.astype({"date": str, "expiration": str})  # as read back from daily_log.csv
    table = plugin.forecast_errors(csv_like).set_index("model")
    assert list(table.index) == ["selected", "rogers_satchell rolling", "rogers_satchell har",
                                 "parkinson rolling", "parkinson har", "market"]
    model_usd, paid_usd, model_pts, real_pts, market_usd = [], [], [], [], []
    for r in log.itertuples():
        day = pd.Timestamp(r.date).tz_localize("America/New_York")
        close = sp500.loc[day, "close"]  # expiry = the session itself (0DTE, VIX proxy)
        f = _rs_vol_before(sp500, day, 21)
        iv = math.sqrt(f * f / 252 / r.tte)
        model_usd.append(_bs_straddle(r.spot, r.strike, r.tte, iv) * 100)
        paid_usd.append(abs(close - r.strike) * 100)
        model_pts.append(iv * 100)
        real_pts.append(abs(math.log(close / r.spot)) / math.sqrt(2 / math.pi * r.tte) * 100)
        market_usd.append(r.market_straddle * 100)
    e_usd = np.array(model_usd) - np.array(paid_usd)
    e_pts = np.array(model_pts) - np.array(real_pts)
    assert len(log) > 55
    for model in ("selected", "rogers_satchell rolling"):  # the run used RS over 21 days
        row = table.loc[model]
        assert row["n"] == row["n_days"] == len(log) and row["n_unsettled"] == 0
        assert row["mae_usd"] == pytest.approx(np.mean(np.abs(e_usd)), rel=1e-9)
        assert row["rmse_usd"] == pytest.approx(np.sqrt(np.mean(e_usd**2)), rel=1e-9)
        assert row["bias_usd"] == pytest.approx(np.mean(e_usd), rel=1e-9)
        assert row["mae_vol_pts"] == pytest.approx(np.mean(np.abs(e_pts)), rel=1e-9)
        assert row["bias_vol_pts"] == pytest.approx(np.mean(e_pts), rel=1e-9)
    assert table.loc["rogers_satchell rolling", "windows"] == "21"
    assert table.loc["parkinson rolling", "windows"] == "21"
    e_mkt = np.array(market_usd) - np.array(paid_usd)
    assert table.loc["market", "bias_usd"] == pytest.approx(np.mean(e_mkt), rel=1e-9)
    # A different estimator gives different errors (the rows are not copies of one another).
    assert table.loc["parkinson rolling", "mae_usd"] != table.loc["selected", "mae_usd"]


def test_zero_dte_model_evaluation_names(
    zero_dte_run: tuple[ZeroDteStraddle, pd.DataFrame],
) -> None:
    plugin, log = zero_dte_run
    tables = plugin.model_evaluation(log)
    assert set(tables) == {"forecast_errors", "quadrant_outcomes"}
    quad = _rows(tables["quadrant_outcomes"], "quadrant")
    traded = log[np.isfinite(log["net_pnl"])] if "net_pnl" in log else log.iloc[:0]
    assert quad["all"]["n_trades"] == len(traded)
    assert quad["all"]["total_net_pnl"] == pytest.approx(traded["net_pnl"].sum())
    with pytest.raises(ValueError, match="not a session"):
        plugin.forecast_errors(log.assign(date=dt.date(2017, 3, 4)))  # a Saturday


# -- real chain runs (shared data) -----------------------------------------------------------------
@pytest.mark.shared_data
def test_vrp_signalled_rows_match_the_signal_rule(shared_data: Path, chain_store_2019) -> None:
    fixed = {"chain_symbol": "SPX", "root": "SPXW", "rate": 0.024, "entry_z": 0.5,
             "z_min_periods": 5, "account_risk": 0.10, "stop_loss": 0.5, "take_profit": 0.5,
             "max_contracts": 5}  # the settings of test_vrp_harvest.py
    daily = shared_data / "index/spx_vix_spy_qqq_daily.csv"
    spx = load_ohlc(daily, root="SPX", start="2017-01-01", end="2019-07-31")
    plugin = VrpHarvest(fixed, {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5})
    plugin.prepare({"underlying": spx, "chains": chain_store_2019}, {})
    days = plugin.trading_days()
    log = plugin.backtest(plugin.base, days[0], days[-1], cash=100_000.0).daily_log
    hits = _rows(plugin.model_evaluation(log)["signal_hit_rates"], "signal")
    assert not [k for k in hits if k.startswith("unknown")]
    # Independent rule: the signal fires on a day before the window's last with z >= entry_z and
    # vrp > min_vrp (the plugin's fixed thresholds).
    z, vrp = log["vrp_zscore"].to_numpy(float), log["vrp"].to_numpy(float)
    before_end = (log["status"] != "window_end").to_numpy()
    fired = (z >= plugin.base.entry_z) & (vrp > plugin.base.min_vrp) & before_end
    assert hits["signal"]["n_signals"] == int(fired.sum()) > 0
    trades = log.loc[np.isfinite(log["net_pnl"].to_numpy(float)), "net_pnl"]
    assert hits["signal"]["n_trades"] == len(trades)
    assert hits["signal"]["hit_rate"] == pytest.approx((trades > 0).mean())


@pytest.mark.shared_data
def test_vol_of_vol_signalled_rows_match_the_signal_rule(
    shared_data: Path, chain_store_2019
) -> None:
    from data_feeds import load_vvix

    start, end = "2017-01-01", "2019-07-31"
    spx = load_ohlc(str(shared_data / "index/spx_vix_spy_qqq_daily.csv"), root="SPX",
                    start=start, end=end)
    vix = load_ohlc(str(shared_data / "index/vix_daily.csv"), start=start, end=end)
    vvix, _ = load_vvix(shared_data / "index/vvix_daily.csv")
    fixed = {"rate": 0.024, "fit_window": 252, "min_fit": 63, "vvix_threshold": 0.5,
             "residual_threshold": 0.5, "account_risk": 0.02,
             "max_contracts": 5}  # the settings of test_vol_of_vol.py
    plugin = VolOfVolGamma(fixed, {"commission_per_contract": 1.0, "slippage_spread_fraction": 0.5})
    plugin.prepare({"underlying": spx, "vix": vix, "vvix": vvix, "chains": chain_store_2019}, {})
    days = plugin.trading_days()
    log = plugin.backtest(plugin.base, days[0], days[-1], cash=1_000_000.0).daily_log
    hits = _rows(plugin.model_evaluation(log)["signal_hit_rates"], "signal")
    assert not [k for k in hits if k.startswith("unknown")]
    # Independent rule: with a flat book (not holding / closing) and before the window's last
    # day, the signal fires when vvix_stat > vvix_threshold and residual_z < -residual_threshold.
    flat = ~log["status"].isin(["holding", "closed", "exit_deferred", "window_end"]).to_numpy()
    stat, rz = log["vvix_stat"].to_numpy(float), log["residual_z"].to_numpy(float)
    fired = flat & (stat > plugin.base.vvix_threshold) & (rz < -plugin.base.residual_threshold)
    assert hits["signal"]["n_signals"] == int(fired.sum()) > 0
    pnl = log.get("net_pnl", pd.Series(np.nan, index=log.index)).to_numpy(float)
    trades = pnl[np.isfinite(pnl)]
    assert hits["signal"]["n_trades"] == len(trades)
    assert hits["signal"]["total_net_pnl"] == pytest.approx(trades.sum())
