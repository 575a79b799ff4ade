"""strategies.ou_pairs: the plugin's backtest on synthetic and real pairs (through the plugin API;
``volsuite run`` needs the ``[data.legs]`` extension, see docs/ou_pairs.md)."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brokers.share_costs import past_daily_vol_and_adv, share_trade_cost
from data_feeds.calendar import TZ
from data_feeds.spread_feed import load_pair_leg
from pricing.ou import simulate_ou
from strategies.ou_pairs import OUPairs, OUPairsParams
from strategies.risk import RiskLimits

CASH = 100_000.0
CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"


def _legs(n: int = 700, seed: int = 5, break_at: int | None = None) -> dict[str, pd.DataFrame]:
    """Cointegrated OHLCV legs: x a random walk near 40, y = 5 + 1.2 x + OU (half-life ~6
    sessions); after ``break_at`` y wanders off on its own."""
    rng = np.random.default_rng(seed)
    x = 40.0 + np.cumsum(rng.normal(0, 0.4, n))
    y = 5.0 + 1.2 * x + simulate_ou(n - 1, 0.0, 30.0, 5.0, rng=rng)
    if break_at is not None:
        y[break_at:] = y[break_at] + np.cumsum(rng.normal(0, 1.2, n - break_at))
    idx = pd.bdate_range("2012-01-03", periods=n, tz=TZ, name="date")

    def frame(close: np.ndarray) -> pd.DataFrame:
        opn = np.concatenate([[close[0]], close[:-1]]) + rng.normal(0, 0.05, n)
        hi = np.maximum(opn, close) + 0.1
        lo = np.minimum(opn, close) - 0.1
        vol = rng.uniform(2e6, 4e6, n)
        return pd.DataFrame(
            {"open": opn, "high": hi, "low": lo, "close": close, "volume": vol}, index=idx
        )

    return {"leg_y": frame(y), "leg_x": frame(x)}


FIXED = {
    "y_symbol": "YY",
    "x_symbol": "XX",
    "formation_days": 250,
    "refit_days": 21,
    "discount_rate": 0.5,  # r/mu ~ 1/60: levels close enough to the mean to trade often
}


def _run(data: dict[str, pd.DataFrame], **params):
    plugin = OUPairs({**FIXED, **params})
    plugin.prepare(data, {})
    days = plugin.trading_days()
    res = plugin.backtest(OUPairsParams(**{**FIXED, **params}), days[0], days[-1], cash=CASH)
    return plugin, days, res


@pytest.fixture(scope="module")
def synthetic():
    return _run(_legs())


def test_round_trips_reconcile_with_fills_and_value(synthetic) -> None:
    _, days, res = synthetic
    trips = res.info["trips"]
    assert len(trips) >= 3
    fills = res.trades.loc[res.trades["status"] == "Completed"]
    cash_flow = float((-fills["size"] * fills["price"] - fills["commission"]).sum())
    # flat at the end (the last session is never tradable): value = cash + all fill cash flows
    assert res.value.iloc[-1] == pytest.approx(CASH + cash_flow, abs=1e-6)
    assert trips["net_pnl"].sum() == pytest.approx(cash_flow, abs=1e-6)
    traded = res.daily_log.loc[res.daily_log["status"] == "traded"]
    assert len(traded) == len(trips)
    assert res.returns.index[0] == days[0]
    assert (1 + res.returns).prod() == pytest.approx(res.value.iloc[-1] / CASH)


def test_fills_pay_the_share_cost_model(synthetic) -> None:
    plugin, _, res = synthetic
    fill = res.trades.loc[res.trades["status"] == "Completed"].iloc[0]
    frame = plugin.y if fill["leg"] == "YY" else plugin.x
    i = frame.index.get_loc(pd.Timestamp(fill["date"], tz=TZ))
    vol, adv = past_daily_vol_and_adv(
        frame["close"].to_numpy()[i - 21 : i], frame["volume"].to_numpy()[i - 20 : i], 20
    )
    # by hand: half spread 1 bp (floor half a cent), sqrt impact, IB-style commission
    q, p = abs(fill["size"]), fill["price"]
    spread = q * max(p * 1e-4, 0.005)
    impact = q * p * vol * math.sqrt(q / adv)
    commission = min(max(0.005 * q, 1.0), 0.01 * q * p)
    assert fill["commission"] == pytest.approx(spread + impact + commission, rel=1e-9)
    assert fill["commission"] == pytest.approx(
        share_trade_cost(q, p, daily_vol=vol, adv=adv).total, rel=1e-12
    )


def test_entries_and_exits_follow_the_formation_levels(synthetic) -> None:
    plugin, _, res = synthetic
    params = OUPairsParams(**FIXED)
    levels = plugin.levels(params, CASH)
    log = res.daily_log
    for row in log.loc[log["action"].isin(["entry_long", "entry_short"])].itertuples():
        lv = levels.loc[row.formation_id]
        if row.action == "entry_long":
            assert lv["long_lower"] < row.spread <= lv["long_entry"]
        else:
            assert lv["short_entry"] <= row.spread < lv["short_upper"]
    trips = res.info["trips"]
    for t in trips.itertuples():
        if t.exit_reason == "take_profit":
            ok = t.exit_spread >= t.exit if t.side == "long" else t.exit_spread <= t.exit
            assert ok
    # levels bracket the OU mean of their formation: long entry < theta < long exit
    table = plugin.table(params)
    forms = table.drop_duplicates("formation_id").set_index("formation_id").loc[levels.index]
    ok = levels["level_status"] == "ok"
    assert (levels.loc[ok, "long_entry"] < forms.loc[ok, "theta"]).all()
    assert (forms.loc[ok, "theta"] < levels.loc[ok, "long_exit"]).all()


def test_no_look_ahead_truncating_the_future_keeps_past_decisions() -> None:
    data = _legs()
    full, days, _ = _run(data)
    start, end = days[0], days[len(days) // 2]
    cut = {k: v.loc[: days[len(days) // 2 + 5]] for k, v in data.items()}
    short = OUPairs(FIXED)
    short.prepare(cut, {})
    params = OUPairsParams(**FIXED)
    a = full.backtest(params, start, end, cash=CASH)
    b = short.backtest(params, start, end, cash=CASH)
    pd.testing.assert_frame_equal(a.daily_log, b.daily_log)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_series_equal(a.value, b.value)
    # hedge ratio and levels in force up to `end` come from formations ending before them
    lines_a = full.feed_lines(params, start, end, CASH)
    lines_b = short.feed_lines(params, start, end, CASH)
    pd.testing.assert_frame_equal(lines_a, lines_b)


def test_a_broken_pair_is_flattened_and_not_traded_again() -> None:
    plugin, _, res = _run(_legs(n=900, seed=8, break_at=520), max_pvalue=0.05)
    table = plugin.table(OUPairsParams(**FIXED, max_pvalue=0.05))
    log = res.daily_log.assign(date=lambda d: pd.to_datetime(d["date"]).dt.tz_localize(TZ))
    unhealthy = set(table.index[~table["healthy"]])
    entries = log.loc[log["action"].fillna("").str.startswith("entry")]
    assert not entries["date"].isin(unhealthy).any()
    last_healthy = table.index[table["healthy"]].max()
    assert (entries["date"] <= last_healthy).all()
    held = log.loc[log["status"] == "holding", "date"]
    assert not held.isin(unhealthy).any()


def test_kill_switch_flattens_and_blocks(synthetic) -> None:
    plugin, days, _ = synthetic
    killer = copy.copy(plugin)  # the limit is the config's [risk], not a parameter
    killer.risk = RiskLimits(max_drawdown=0.002)
    res = killer.backtest(OUPairsParams(**FIXED), days[0], days[-1], cash=CASH)
    events = res.info["risk_events"]
    kills = events.loc[events["kind"] == "kill"]
    assert len(kills) == 1
    kill_day = pd.Timestamp(kills["time"].iloc[0]).date()
    log = res.daily_log
    after = log.loc[pd.to_datetime(log["date"]).dt.date > kill_day]
    assert not after["action"].fillna("").str.startswith("entry").any()
    assert res.info["trips"]["exit_reason"].str.startswith("risk").any()
    final = res.trades.groupby("leg")["size"].sum()
    assert (final == 0).all()


def test_bertram_levels_trade_too(synthetic) -> None:
    method = "bertram_sharpe"
    plugin, days, _ = synthetic
    params = OUPairsParams(**FIXED, level_method=method, stop_loss_std=4.0)
    res = plugin.backtest(params, days[0], days[-1], cash=CASH)
    levels = plugin.levels(OUPairsParams(**FIXED, level_method=method, stop_loss_std=4.0), CASH)
    ok = levels["level_status"] == "ok"
    assert ok.any()
    ret = synthetic[0].levels(OUPairsParams(**FIXED, level_method="bertram_return"), CASH)
    # the two objectives give different thresholds (with r_f = 0 the Sharpe optimum is tighter)
    both = ok & (ret["level_status"] == "ok")
    assert (ret.loc[both, "long_entry"] < levels.loc[both, "long_entry"]).all()
    mid = (levels.loc[ok, "long_entry"] + levels.loc[ok, "long_exit"]) / 2
    # symmetric about theta (Bertram's optimum)
    table = plugin.table(OUPairsParams(**FIXED))
    theta = table.drop_duplicates("formation_id").set_index("formation_id").loc[mid.index, "theta"]
    np.testing.assert_allclose(mid.to_numpy(), theta.to_numpy(), rtol=1e-9)
    assert len(res.info["trips"]) >= 1


def test_example_configs_fit_the_plugin(shared_data: Path) -> None:
    for name in ("ou_pairs_ewa_ewc", "ou_pairs_ko_pep", "ou_pairs_gld_gdx"):
        raw = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
        assert raw["strategy"]["name"] == "ou_pairs"
        OUPairsParams(**raw["strategy"]["params"])
        for key, dim in raw["strategy"]["search_space"].items():
            values = dim.get("choices", [dim.get("low"), dim.get("high")])
            for v in values:
                OUPairsParams(**{**raw["strategy"]["params"], key: v})
        for leg in ("y", "x"):
            spec = raw["data"]["legs"][leg]
            path = Path(spec["source"].replace("../shared/data", str(shared_data)))
            assert path.is_file(), path


@pytest.mark.slow
def test_real_pairs_tearsheets(shared_data: Path, tmp_path: Path) -> None:
    """Walk-forward on each example config's data through the plugin API, risk layer on."""
    from experiments.config import OptimizeConfig, WalkForwardConfig, load_config
    from experiments.tearsheet import write_tearsheet
    from experiments.walkforward import run_walkforward

    for name in ("ou_pairs_ewa_ewc", "ou_pairs_ko_pep", "ou_pairs_gld_gdx"):
        raw = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
        legs = {}
        for leg in ("y", "x"):
            spec = dict(raw["data"]["legs"][leg])
            src = spec.pop("source").replace("../shared/data", str(shared_data))
            legs[f"leg_{leg}"] = load_pair_leg(
                src, start=raw["data"].get("start"), end=raw["data"].get("end"), **spec
            )
        config = load_config(CONFIGS / f"{name}.toml")  # its [costs] and [risk] too
        plugin = OUPairs(raw["strategy"]["params"], costs=config.costs, risk=config.risk)
        space = {}
        from experiments.config import StrategyConfig

        space = StrategyConfig.model_validate(raw["strategy"]).search_space
        plugin.prepare(legs, {k: d.values() for k, d in space.items()})
        wf = run_walkforward(
            plugin,
            fixed=raw["strategy"]["params"],
            space=space,
            wf=WalkForwardConfig(**raw["walkforward"]),
            opt=OptimizeConfig(**{**raw["optimize"], "trials": 3}),
            cash=raw["experiment"]["initial_cash"],
            storage=None,
            study_prefix=name,
        )
        out = write_tearsheet(wf.oos_returns, plugin.benchmark(), tmp_path / f"{name}.html", name)
        assert out.stat().st_size > 10_000
        assert wf.oos_returns.notna().all()
