"""volsuite audit (experiments/audit.py, experiments/cli_audit.py).

The perturbations checked by hand; two deliberately leaky strategies (the session's close read at
the open, tomorrow's chain read in ``prepare``) fail the look-ahead check with the input and the
date named while their honest twin passes; unseeded randomness fails the determinism check; broken
books and off-model fills fail checks 3 and 4; a plugin from its own package, found through a
``volsuite.strategies`` entry point, is audited by the CLI in a subprocess; the CLI passes checks
1-4 on a shipped arch-data config and a shipped chain config (small K, few folds and trials).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from data_feeds.chains import ChainSnapshot
from experiments.audit import (
    SCALE,
    Perturbation,
    PerturbedChainSource,
    check_books,
    check_costs_and_fills,
    first_difference,
    perturb_frame,
    run_audit,
)
from experiments.config import load_config
from strategies.base import BacktestResult

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "audit_fixtures"
DEMO = FIXTURES / "demo_plugin"
TZ = "America/New_York"
CHECKS_1_TO_4 = ("look_ahead", "determinism", "books", "costs_and_fills")


def day(s: str) -> pd.Timestamp:
    return pd.Timestamp(s).tz_localize(TZ)


@pytest.fixture
def bars() -> pd.DataFrame:
    idx = pd.DatetimeIndex([day(f"2020-01-0{i}") for i in (2, 3, 6, 7, 8)], name="date")
    return pd.DataFrame(
        {
            "open": [100.0, 101.0, 102.0, 103.0, 104.0],
            "high": [102.0, 103.0, 104.0, 105.0, 106.0],
            "low": [99.0, 100.0, 101.0, 102.0, 103.0],
            "close": [101.0, 100.5, 103.5, 102.0, 105.0],
            "volume": [1e6, 2e6, 3e6, 4e6, 5e6],
        },
        index=idx,
    )


# -- the perturbations, by hand -----------------------------------------------------------------
def test_truncate_and_scale_touch_only_rows_after_the_cut(bars: pd.DataFrame) -> None:
    cut = day("2020-01-03")
    short = perturb_frame(bars, Perturbation("truncate", cut))
    assert list(short.index) == list(bars.index[:2])
    scaled = perturb_frame(bars, Perturbation("scale", cut))
    pd.testing.assert_frame_equal(scaled.iloc[:2], bars.iloc[:2])
    assert scaled.loc[day("2020-01-07"), "close"] == pytest.approx(102.0 * 1.1, rel=1e-15)
    assert scaled.loc[day("2020-01-08"), "volume"] == pytest.approx(5e6 * 1.1, rel=1e-15)
    assert SCALE == 1.1


def test_shuffle_permutes_later_rows_whole(bars: pd.DataFrame) -> None:
    cut = day("2020-01-03")
    out = perturb_frame(bars, Perturbation("shuffle", cut, seed=3))
    pd.testing.assert_frame_equal(out.iloc[:2], bars.iloc[:2])
    later = {tuple(r) for r in bars.iloc[2:].to_numpy()}
    assert {tuple(r) for r in out.iloc[2:].to_numpy()} == later  # whole bars moved, none made up
    assert not out.iloc[2:].equals(bars.iloc[2:])  # seed 3 moves them (3 rows, 6 orders)


def test_intraday_reflects_the_sessions_bar_about_its_open(bars: pd.DataFrame) -> None:
    cut = day("2020-01-06")
    p = Perturbation("intraday", cut, decision_time=cut + pd.Timedelta(hours=9, minutes=30))
    out = perturb_frame(bars, p)
    row = out.loc[cut]
    # open 102, high 104, low 101, close 103.5 -> high 2*102-101, low 2*102-104, close 2*102-103.5
    assert (row["open"], row["high"], row["low"], row["close"]) == (102.0, 103.0, 100.0, 100.5)
    assert row["volume"] == pytest.approx(3e6 * 1.1)
    assert out.loc[day("2020-01-07"), "close"] == pytest.approx(102.0 * 1.1)
    pd.testing.assert_frame_equal(out.iloc[:2], bars.iloc[:2])


def test_intraday_minute_bars_change_only_after_the_decision() -> None:
    idx = pd.date_range("2020-01-06 09:30", periods=4, freq="1min", tz=TZ)
    bars = pd.DataFrame({"close": [1.0, 2.0, 3.0, 4.0]}, index=idx)
    p = Perturbation("intraday", day("2020-01-06"), decision_time=idx[1])
    out = perturb_frame(bars, p)
    assert list(out["close"]) == pytest.approx([1.0, 2.0, 3.3, 4.4])


def _snapshot(date: str, price: float) -> ChainSnapshot:
    quotes = pd.DataFrame(
        {
            "root": ["SPXW"],
            "expiration": [pd.Timestamp(date)],
            "strike": [price],
            "right": ["C"],
            "bid": [1.0],
            "ask": [1.2],
            "mid": [1.1],
            "last": [1.1],
            "volume": [10.0],
            "open_interest": [100.0],
            "vendor_implied_vol": [0.2],
            "vendor_delta": [0.5],
            "vendor_gamma": [0.01],
            "vendor_theta": [-1.0],
            "vendor_vega": [1.0],
            "is_liquid": [True],
        }
    )
    stamp = pd.Timestamp(f"{date} 15:45").tz_localize(TZ)
    return ChainSnapshot("SPX", stamp, price, quotes)


class FakeStore:
    """Three quote dates; ``snapshot`` raises KeyError for an unknown date (as the store)."""

    def __init__(self) -> None:
        self.dates = [dt.date(2020, 1, 2), dt.date(2020, 1, 3), dt.date(2020, 1, 6)]
        self.prices = dict(zip(self.dates, (3000.0, 3010.0, 2990.0), strict=True))

    def quote_dates(self, underlying: str, roots=None) -> list[dt.date]:
        return list(self.dates)

    def quote_times(self, underlying: str, quote_date) -> list[pd.Timestamp]:
        return []

    def snapshot(self, underlying: str, quote_date, *args, **kwargs) -> ChainSnapshot:
        d = pd.Timestamp(quote_date).date()
        if d not in self.prices:
            raise KeyError(d)
        return _snapshot(str(d), self.prices[d])


def test_chain_source_truncates_scales_and_leaves_the_past() -> None:
    cut = day("2020-01-03")
    store = FakeStore()
    trunc = PerturbedChainSource(store, Perturbation("truncate", cut))
    assert trunc.quote_dates("SPX") == store.dates[:2]
    with pytest.raises(KeyError, match="truncated after 2020-01-03"):
        trunc.snapshot("SPX", store.dates[2])
    scaled = PerturbedChainSource(store, Perturbation("scale", cut))
    later = scaled.snapshot("SPX", store.dates[2])
    assert later.underlying_price == pytest.approx(2990.0 * 1.1)
    assert later.quotes["bid"].iloc[0] == pytest.approx(1.1)
    past = scaled.snapshot("SPX", store.dates[1])
    assert past.underlying_price == 3010.0 and past.quotes["bid"].iloc[0] == 1.0


def _result(log_values: list[float], prices: list[float]) -> BacktestResult:
    days = pd.DatetimeIndex([day("2020-01-02"), day("2020-01-03"), day("2020-01-06")])
    log = pd.DataFrame({"date": days.date, "signal": log_values})
    trades = pd.DataFrame(
        {
            "time": [pd.Timestamp(f"{d.date()} 09:30") for d in days],
            "event": "stock_fill",
            "root": "SPX",
            "quantity": [1, 1, 1],
            "price": prices,
            "commission": 0.0,
            "cash_flow": [-p for p in prices],
        }
    )
    value = pd.Series([1.0, 1.0, 1.0], index=days)
    return BacktestResult(value * 0, value, trades, log)


def test_first_difference_names_the_first_changed_decision() -> None:
    base = _result([0.1, 0.2, 0.3], [10.0, 11.0, 12.0])
    later_change = _result([0.1, 0.2, 9.9], [10.0, 11.0, 12.0])
    assert first_difference(base, later_change, Perturbation("scale", day("2020-01-03"))) is None
    early = _result([0.1, 0.25, 0.3], [10.0, 11.5, 12.0])
    diff = first_difference(base, early, Perturbation("scale", day("2020-01-03")))
    assert diff == {
        "table": "daily_log",
        "date": "2020-01-03",
        "field": "signal",
        "baseline": 0.2,
        "perturbed": 0.25,
    }
    # a column no row filled is absent from a log built from dicts: NaN either way, no change
    no_action = base.daily_log.assign(action=np.nan)
    same = BacktestResult(base.returns, base.value, base.trades, no_action)
    assert first_difference(same, base, Perturbation("scale", day("2020-01-03"))) is None
    acted = base.daily_log.assign(action=[np.nan, "buy", np.nan])
    moved = BacktestResult(base.returns, base.value, base.trades, acted)
    diff = first_difference(base, moved, Perturbation("scale", day("2020-01-03")))
    assert (diff["date"], diff["field"], diff["perturbed"]) == ("2020-01-03", "action", "buy")
    # a truncated window's last two sessions (01-03, 01-06) are its window end: not compared
    assert first_difference(base, moved, Perturbation("truncate", day("2020-01-06"))) is None
    early_act = base.daily_log.assign(action=["buy", np.nan, np.nan])
    moved = BacktestResult(base.returns, base.value, base.trades, early_act)
    diff = first_difference(base, moved, Perturbation("truncate", day("2020-01-06")))
    assert (diff["date"], diff["field"]) == ("2020-01-02", "action")
    # an outcome written on the entry row when the position exits later is not a decision
    exits = base.daily_log.assign(exit_reason=["target", "stop", "target"], net_pnl=[1.0, 2, 3])
    later = base.daily_log.assign(exit_reason=["target", "window_end", "x"], net_pnl=[1.0, 5, 3])
    a = BacktestResult(base.returns, base.value, base.trades, exits)
    b = BacktestResult(base.returns, base.value, base.trades, later)
    assert first_difference(a, b, Perturbation("scale", day("2020-01-03"))) is None
    diff = first_difference(a, b, Perturbation("scale", day("2020-01-03")), outcomes=())
    assert (diff["date"], diff["field"]) == ("2020-01-03", "exit_reason")


# -- checks 3 and 4 on hand-made books -----------------------------------------------------------
def _wf(cash_flows: list[float], equity_end: float) -> SimpleNamespace:
    days = pd.DatetimeIndex([day("2020-01-02"), day("2020-01-03")])
    fold = SimpleNamespace(
        fold=SimpleNamespace(index=0), start_equity=1000.0, out_of_sample=SimpleNamespace(info={})
    )
    equity = pd.DataFrame({"date": days, "fold": 0, "equity": [1000.0, equity_end]})
    returns = pd.Series([0.0, equity_end / 1000.0 - 1.0], index=days)
    trades = pd.DataFrame({"fold": 0, "cash_flow": cash_flows})
    return SimpleNamespace(
        folds=[fold],
        trades=trades,
        equity=equity,
        oos_returns=returns,
        final_equity=equity_end,
        initial_cash=1000.0,
    )


def test_books_pass_when_cash_flows_explain_equity_and_fail_otherwise() -> None:
    ok = check_books(_wf([-300.0, 350.0], 1050.0))
    assert ok.status == "PASS" and ok.evidence["worst_gap_dollars"] == pytest.approx(0.0)
    bad = check_books(_wf([-300.0, 350.0], 1050.02))
    assert bad.status == "FAIL" and "fold 0" in bad.message


def test_fills_off_the_spread_model_and_wrong_settlements_fail(sp500: pd.DataFrame) -> None:
    config = load_config(REPO / "experiments" / "configs" / "zero_dte_straddle.toml")
    close = float(sp500.loc[day("2016-01-04"), "close"])
    bid, ask = 10.0, 10.4  # slippage_spread_fraction 0.5: a sale fills at the bid
    rows = [
        {
            "time": pd.Timestamp("2016-01-04 09:30"),
            "event": "fill",
            "root": "SPXW",
            "expiration": "2016-01-04",
            "strike": 2040.0,
            "right": "P",
            "quantity": -1,
            "price": bid,
            "bid": bid,
            "ask": ask,
            "underlying_price": np.nan,
            "commission": 1.0,
        },
        {
            "time": pd.Timestamp("2016-01-04 16:00"),
            "event": "settlement",
            "root": "SPXW",
            "expiration": "2016-01-04",
            "strike": 2040.0,
            "right": "P",
            "quantity": -1,
            "price": 2040.0 - close,  # intrinsic of the put at the close, by hand
            "bid": np.nan,
            "ask": np.nan,
            "underlying_price": close,
            "commission": 0.0,
        },
    ]
    plugin = SimpleNamespace(underlying=sp500)
    good = pd.DataFrame(rows)
    wf = SimpleNamespace(trades=good)
    res = check_costs_and_fills(config, plugin, {}, wf, seed=0)
    assert res.status == "PASS", res.message
    assert res.evidence["settlements_checked"] == 1
    at_mid = good.copy()
    at_mid.loc[0, "price"] = 10.2
    res = check_costs_and_fills(config, plugin, {}, SimpleNamespace(trades=at_mid), seed=0)
    assert res.status == "FAIL" and "spread model says 10.0000" in res.message
    am = good.copy()
    am.loc[1, "time"] = pd.Timestamp("2016-01-04 09:30")  # SPXW is PM-settled
    res = check_costs_and_fills(config, plugin, {}, SimpleNamespace(trades=am), seed=0)
    assert res.status == "FAIL" and "PM settlement is 2016-01-04 16:00:00" in res.message


# -- the leaky strategies -----------------------------------------------------------------------
@pytest.fixture
def fixture_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fixture strategies (the demo package and the leaky module) for this test."""
    import strategies

    monkeypatch.syspath_prepend(str(DEMO))
    monkeypatch.syspath_prepend(str(FIXTURES))
    from leaky_plugins import ChainPeek, OpenPeek, Unseeded
    from volsuite_demo_plugin import PrevDayDrive

    for cls in (OpenPeek, ChainPeek, Unseeded, PrevDayDrive):
        monkeypatch.setitem(strategies.STRATEGIES, cls.name, cls)


def day_trader_config(tmp_path: Path, strategy: str) -> Path:
    path = tmp_path / f"{strategy}.toml"
    path.write_text((FIXTURES / "day_trader.toml").read_text().replace("STRATEGY", strategy))
    return path


def test_reading_the_sessions_close_at_the_open_fails_look_ahead(
    fixture_plugins: None, tmp_path: Path
) -> None:
    config = day_trader_config(tmp_path, "leaky_open_peek")
    report = run_audit(config, dates=2, folds=2, write=False)
    check = report.check("look_ahead")
    assert check.status == "FAIL" and report.verdict == "FAIL"
    assert "input 'underlying'" in check.message
    failing = [r for r in check.evidence["runs"] if r.get("changed")]
    # only the same-session perturbation (after the 09:30 decision) can reveal this leak
    assert failing and {r["variant"] for r in failing} == {"intraday"}
    first = failing[0]
    assert first["changed"]["date"].startswith(first["date"])
    assert first["changed"]["date"][:10] in check.message
    assert (first["changed"]["table"], first["changed"]["field"]) == ("trades", "quantity")


def test_the_honest_twin_passes_look_ahead(fixture_plugins: None, tmp_path: Path) -> None:
    report = run_audit(day_trader_config(tmp_path, "demo_prev_day"), dates=2, folds=2, write=False)
    check = report.check("look_ahead")
    assert check.status == "PASS", check.message
    assert check.evidence["errors"] == 0 and len(check.evidence["runs"]) == 8
    for name in CHECKS_1_TO_4:
        assert report.check(name).status == "PASS", report.check(name).message


def test_unseeded_randomness_fails_determinism(fixture_plugins: None, tmp_path: Path) -> None:
    report = run_audit(day_trader_config(tmp_path, "unseeded_noise"), dates=1, folds=2, write=False)
    check = report.check("determinism")
    assert check.status == "FAIL" and "different bytes" in check.message
    assert check.evidence["identical"]["oos_returns.csv"] is False


@pytest.fixture
def chain_db(chain_store_2019_path: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested 2019 chain store (the audit opens it read-write)."""
    db = tmp_path / "chains.duckdb"
    shutil.copyfile(chain_store_2019_path, db)
    return db


@pytest.mark.shared_data
def test_reading_tomorrows_chain_fails_look_ahead(
    fixture_plugins: None, shared_data: Path, chain_db: Path, tmp_path: Path
) -> None:
    text = (FIXTURES / "chain_peek.toml").read_text()
    path = tmp_path / "chain_peek.toml"
    path.write_text(text.replace("@SHARED@", str(shared_data)).replace("@DB@", str(chain_db)))
    report = run_audit(path, dates=2, folds=2, write=False)
    check = report.check("look_ahead")
    assert check.status == "FAIL"
    assert "input 'chains'" in check.message
    failing = [r for r in check.evidence["runs"] if r.get("changed")]
    # every variant that changes the next day's chain under the cut day's decision catches it
    # (truncation compares the sessions before the cut only: the cut day's own signal reads the
    # next day's chain, which truncation removes, but that day ends the truncated window)
    assert {r["variant"] for r in failing} == {"scale", "shuffle", "intraday"}
    for r in failing:
        assert r["changed"]["date"][:10] <= r["date"]
    assert any(r["changed"]["date"][:10] in check.message for r in failing)


# -- the CLI: a plugin from its own package, and two shipped configs -----------------------------
def _run_cli(args: list[str], env_path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", MPLBACKEND="Agg")
    if env_path:
        env["PYTHONPATH"] = env_path
    return subprocess.run(
        [sys.executable, "-m", "experiments.cli", "audit", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _audit_json(results: Path, experiment: str) -> dict:
    folders = list((results / experiment / "audit").iterdir())
    assert len(folders) == 1 and not folders[0].name.startswith(".")
    assert sorted(p.name for p in folders[0].iterdir()) == ["audit.json", "audit.md"]
    return json.loads((folders[0] / "audit.json").read_text())


def _install_plugin_package(site: Path) -> None:
    """What ``pip install`` of a one-module package leaves: the module and a dist-info whose
    ``entry_points.txt`` registers the strategies (``importlib.metadata`` finds it on sys.path)."""
    site.mkdir()
    shutil.copy(DEMO / "volsuite_demo_plugin.py", site)
    shutil.copy(FIXTURES / "leaky_plugins.py", site)
    info = site / "volsuite_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: volsuite-demo-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[volsuite.strategies]\n"
        "demo_prev_day = volsuite_demo_plugin:PrevDayDrive\n"
        "leaky_open_peek = leaky_plugins:OpenPeek\n"
    )


def test_entry_point_plugin_is_audited_by_the_cli(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_plugin_package(site)
    results = tmp_path / "results"
    honest = day_trader_config(tmp_path, "demo_prev_day")
    out = _run_cli(
        [str(honest), "--dates", "2", "--folds", "2", "--results-dir", str(results)], str(site)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    payload = _audit_json(results, "audit_demo_prev_day")
    assert set(payload) == {"config", "run_id", "checks", "verdict"}
    by_name = {c["name"]: c for c in payload["checks"]}
    assert set(by_name) == {*CHECKS_1_TO_4, "evidence", "data"}
    for name in CHECKS_1_TO_4:
        assert by_name[name]["status"] == "PASS", by_name[name]["message"]
    for c in payload["checks"]:
        assert set(c) == {"name", "status", "evidence", "message"}
    leaky = day_trader_config(tmp_path, "leaky_open_peek")
    out = _run_cli(
        [str(leaky), "--dates", "2", "--folds", "2", "--results-dir", str(results)], str(site)
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout and "underlying" in out.stdout
    assert _audit_json(results, "audit_leaky_open_peek")["verdict"] == "FAIL"


def _assert_cli_passes_1_to_4(out: subprocess.CompletedProcess[str], payload: dict) -> None:
    assert out.returncode == 0, out.stdout + out.stderr
    by_name = {c["name"]: c for c in payload["checks"]}
    for name in CHECKS_1_TO_4:
        assert by_name[name]["status"] == "PASS", (name, by_name[name]["message"])
    assert by_name["look_ahead"]["evidence"]["errors"] == 0
    assert "deflated Sharpe" in out.stdout and "MinBTL" in out.stdout


def test_cli_audit_passes_the_shipped_arch_config(tmp_path: Path) -> None:
    results = tmp_path / "results"
    config = "experiments/configs/zero_dte_straddle.toml"
    args = [config, "--trials", "2", "--dates", "1", "--folds", "2", "--results-dir", str(results)]
    out = _run_cli(args)
    _assert_cli_passes_1_to_4(out, _audit_json(results, "zero_dte_straddle"))


@pytest.mark.shared_data
def test_cli_audit_passes_a_shipped_chain_config(
    shared_data: Path, chain_db: Path, tmp_path: Path
) -> None:
    text = (REPO / "experiments" / "configs" / "zero_dte_straddle_spx2019.toml").read_text()
    assert 'db = "results/chains.duckdb"' in text
    config = tmp_path / "zero_dte_straddle_spx2019.toml"
    config.write_text(text.replace('db = "results/chains.duckdb"', f'db = "{chain_db}"'))
    results = tmp_path / "results"
    args = [str(config), "--trials", "2", "--dates", "1", "--folds", "2"]
    out = _run_cli([*args, "--results-dir", str(results)])
    payload = _audit_json(results, "zero_dte_straddle_spx2019")
    _assert_cli_passes_1_to_4(out, payload)
    fills = {c["name"]: c for c in payload["checks"]}["costs_and_fills"]["evidence"]
    assert fills["store_sample"]["matched"] == fills["store_sample"]["checked"] > 0


@pytest.mark.slow
def test_cli_audit_full_arch_config_three_trials(tmp_path: Path) -> None:
    """The issue's acceptance run: every fold, 3 trials, 3 look-ahead dates (minutes)."""
    results = tmp_path / "results"
    args = ["experiments/configs/zero_dte_straddle.toml", "--trials", "3"]
    out = _run_cli([*args, "--results-dir", str(results)])
    payload = _audit_json(results, "zero_dte_straddle")
    _assert_cli_passes_1_to_4(out, payload)
    look = {c["name"]: c for c in payload["checks"]}["look_ahead"]["evidence"]
    assert len(look["dates"]) == 3


def test_cli_refuses_bad_options_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    config = "experiments/configs/zero_dte_straddle.toml"
    out = _run_cli([config, "--dates", "0", "--results-dir", str(results)])
    assert out.returncode == 2
    assert "--dates: must be >= 1 (got 0)" in out.stderr
    assert not results.exists()


def test_fold_params_take_the_validated_model_back() -> None:
    """A params dump with a nested table (vol_of_vol's ``hedge``) carries its cost fields'
    defaults, which the params model refuses as input: the audit reruns a fold with the model
    the walk-forward kept (this crashed the audit of vol_of_vol_spx2019 before)."""
    import types

    from experiments.audit import _fold_params
    from strategies import get_strategy

    plugin_cls = get_strategy("vol_of_vol")
    params = plugin_cls.Params(hedge={"rule": "interval"})
    with pytest.raises(ValueError, match="is a cost, not a parameter"):
        plugin_cls.Params(**params.model_dump())
    fold = types.SimpleNamespace(best_params=params.model_dump(), params=params)
    assert _fold_params(types.SimpleNamespace(Params=plugin_cls.Params), fold) is params


def test_an_entry_rows_final_status_is_an_outcome() -> None:
    """An entry row's final status (closed later: ``traded``; still open when a truncated window
    ends: ``open_at_end``) is written by a later session: compared as ``entered``; a changed
    decision (``stand_aside`` instead of an entry) still differs."""
    from experiments.audit import _entry_status

    a = pd.DataFrame({"date": ["2021-11-02", "2021-11-03"], "status": ["traded", "stand_aside"]})
    b = pd.DataFrame({"date": ["2021-11-02", "2021-11-03"], "status": ["open_at_end", "open"]})
    assert _entry_status(a)["status"].tolist() == ["entered", "stand_aside"]
    assert _entry_status(b)["status"].tolist() == ["entered", "open"]


def test_settlement_fields_of_an_entry_row_are_outcomes() -> None:
    """``settled_legs`` / ``settled_on`` are written on an entry row when its legs settle later
    (:meth:`strategies.option_strategy.ChainStrategy.finish_gone_positions`): outcomes, never
    compared as decisions (truncating ml_spreads_spy2021's data changed them)."""
    from experiments.audit import outcome_columns

    log = pd.DataFrame(columns=["date", "status", "settled_legs", "settled_on", "contracts"])
    assert set(outcome_columns(log)) == {"settled_legs", "settled_on"}
