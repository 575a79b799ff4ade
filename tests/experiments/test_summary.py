"""``volsuite summary`` (experiments.summary) and the run metrics it shows, by hand.

The trade, cost and account columns are computed once by :func:`experiments.metrics.run_metrics`
when a run finishes; here they are checked by hand on synthetic fills and returns (numpy for the
Sharpe ratio, the arithmetic written out for costs, notional, equity and P&L). Run folders are
written with the ``summary.json`` a run writes, and the summary must show exactly those numbers.
One slow test runs a real config end to end on the shared 2019 SPX chains and checks the cost
columns against the raw fills.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data_feeds.errors import DataSourceError
from experiments.metrics import costs_share, run_metrics, trade_stats
from experiments.runner import reported_costs
from experiments.summary import COLUMNS, RunFolderError, newest_run, summarize_run, summary_row

OPTION_COLS = (
    "time,event,root,expiration,strike,right,quantity,price,bid,ask,underlying_price,"
    "commission,cash_flow,tag,kind,price_source,shares,fold"
)

# fold 0: a short SPXW straddle (one order), a delta hedge, the call bought back, the put settled;
# fold 1: an SPY call bought, added to, then flipped short (three opening orders)
OPTION_TRADES = f"""{OPTION_COLS}
2020-01-02 15:45:00,fill,SPXW,2020-01-17,3200.0,C,-1,10.0,10.0,10.4,,1.0,999.0,open,,,,0
2020-01-02 15:45:00,fill,SPXW,2020-01-17,3200.0,P,-1,8.0,8.0,8.2,,1.0,799.0,open,,,,0
2020-01-02 15:45:00,stock_fill,SPX,,,,5,3210.0,,,,0.025,-16050.025,delta hedge,,,,0
2020-01-03 15:45:00,fill,SPXW,2020-01-17,3200.0,C,1,11.0,10.6,11.0,,1.0,-1101.0,close,,,,0
2020-01-03 16:00:00,settlement,SPXW,2020-01-17,3200.0,P,-1,0.0,,,3250.0,0.5,-0.5,settle,cash,,0.0,0
2020-01-06 15:45:00,fill,SPY,2020-02-21,300.0,C,2,5.0,4.9,5.0,,1.3,-1001.3,buy,,,,1
2020-01-07 15:45:00,fill,SPY,2020-02-21,300.0,C,1,5.2,5.0,5.2,,0.65,-520.65,add,,,,1
2020-01-08 15:45:00,fill,SPY,2020-02-21,300.0,C,-4,5.5,5.5,5.7,,2.6,2197.4,flip,,,,1
"""
OPTION_RETURNS = {
    "2020-01-02": 0.01,
    "2020-01-03": -0.02,
    "2020-01-06": 0.03,
    "2020-01-07": 0.0,
    "2020-01-08": -0.01,
}
OPTION_FOLDS = [("2020-01-02", "2020-01-03"), ("2020-01-06", "2020-01-08")]

SHARE_TRADES = """fold,date,leg,size,price,commission,status
0,2020-01-02,AAA,100.0,50.0,2.0,Completed
0,2020-01-02,BBB,-80.0,60.0,1.5,Completed
0,2020-01-03,AAA,0.0,,0.0,Margin
0,2020-01-03,AAA,-100.0,52.0,2.1,Completed
0,2020-01-03,BBB,80.0,59.0,1.4,Completed
"""


def np_sharpe(r: list[float]) -> float:
    """mean / std(ddof=1) * sqrt(252); 0 for fewer than 2 days or a zero std (quantstats)."""
    a = np.asarray(r, dtype=float)
    if len(a) < 2 or a.std(ddof=1) == 0:
        return 0.0
    return float(a.mean() / a.std(ddof=1) * np.sqrt(252))


def write_run(
    root: Path,
    experiment: str,
    run_id: str,
    *,
    returns: dict[str, float],
    trades: str,
    folds: list[tuple[str, str]] | None,
    cash: float,
    metrics: dict[str, float] | None = None,
    strategy: str = "vrp_harvest",
    skip: tuple[str, ...] = (),
) -> Path:
    """A run folder as ``volsuite run`` writes it (only the files the summary reads)."""
    folder = root / experiment / run_id
    folder.mkdir(parents=True)
    dates = [f"{d} 00:00:00-05:00" for d in returns]
    pd.DataFrame({"date": dates, "oos_return": list(returns.values())}).to_csv(
        folder / "oos_returns.csv", index=False
    )
    (folder / "trades.csv").write_text(trades)
    if folds is not None:
        pd.DataFrame(
            [{"fold": k, "test_start": a, "test_end": b} for k, (a, b) in enumerate(folds)]
        ).to_csv(folder / "folds.csv", index=False)
    (folder / "config.toml").write_text(
        f'[experiment]\nname = "{experiment}"\ninitial_cash = {cash}\n'
    )
    r = pd.Series(list(returns.values()), index=pd.to_datetime(list(returns)))
    computed = run_metrics(
        r,
        initial_cash=cash,
        final_equity=cash * float(np.prod(1.0 + r.to_numpy())),
        trades=pd.read_csv(folder / "trades.csv") if trades.strip().count("\n") else None,
        trial_sharpes=[],
        fold_pbos=[],
        is_sharpes=[],
        min_trades=0,
        min_days=0,
        costs=metrics,
    )
    payload = {
        "experiment": experiment,
        "strategy": strategy,
        "market_source": "chain:SPX:SPXW",
        "oos_start": next(iter(returns)),
        "oos_end": list(returns)[-1],
        "metrics": computed,
    }
    (folder / "summary.json").write_text(json.dumps(payload))
    for name in skip:
        (folder / name).unlink()
    return folder


def write_config(path: Path, experiment: str, results_dir: Path) -> Path:
    path.write_text(
        f'[experiment]\nname = "{experiment}"\n[data.underlying]\nsource = "none.csv"\n'
        f'[strategy]\nname = "vrp_harvest"\n[tracking]\nresults_dir = "{results_dir}"\n'
    )
    return path


@pytest.fixture
def option_run(tmp_path: Path) -> Path:
    return write_run(
        tmp_path / "results",
        "opt",
        "20200110T000000-abcdef",
        returns=OPTION_RETURNS,
        trades=OPTION_TRADES,
        folds=OPTION_FOLDS,
        cash=10_000.0,
        metrics={"oos_cost.hedge_spread": -0.25},
    )


def test_option_run_every_column_by_hand(option_run: Path):
    row = summarize_run(option_run)
    r = list(OPTION_RETURNS.values())
    # one continuous account: 10100, 9898, 10194.94, 10194.94, 10092.9906
    path = [10_100.0, 9_898.0, 9_898.0 * 1.03, 9_898.0 * 1.03, 9_898.0 * 1.03 * 0.99]
    mean_equity = sum(path) / 5
    net = path[-1] - 10_000
    # slippage vs mid, contracts x (price - mid) x 100: 20 + 10 + 20 + 10 + 10 + 40
    slippage = 20 + 10 + 20 + 10 + 10 + 40
    commission = 1 + 1 + 1 + 1.3 + 0.65 + 2.6 + 0.5  # fills + the settlement fee
    costs = slippage + commission + 0.025 + 0.25
    notional = 1000 + 800 + 1100 + 1000 + 520 + 2200 + 5 * 3210
    assert row["experiment"] == "opt" and row["strategy"] == "vrp_harvest"
    assert (row["oos_start"], row["oos_end"], row["days"]) == ("2020-01-02", "2020-01-08", 5)
    assert row["sharpe"] == pytest.approx(np_sharpe(r), rel=1e-12)
    assert row["total_return"] == pytest.approx(1.01 * 0.98 * 1.03 * 1.0 * 0.99 - 1, rel=1e-12)
    assert row["max_drawdown"] == pytest.approx(-0.02, rel=1e-12)  # 1.01 -> 0.9898
    assert row["trades"] == 4  # straddle, buy, add, flip; not the close, the hedge, the settlement
    assert row["net_pnl"] == pytest.approx(net, abs=1e-8)
    assert row["cost_slippage"] == pytest.approx(slippage, abs=1e-9)
    assert row["cost_commission"] == pytest.approx(commission, abs=1e-12)
    assert row["cost_shares"] == pytest.approx(0.025, abs=1e-12)
    assert row["cost_hedge_spread"] == pytest.approx(0.25, abs=1e-12)
    assert row["costs"] == pytest.approx(costs, abs=1e-9)
    assert row["gross_pnl"] == pytest.approx(net + costs, abs=1e-8)
    assert row["costs_share"] == pytest.approx(costs / (net + costs), rel=1e-12)
    assert row["turnover"] == pytest.approx(notional / mean_equity / (5 / 252), rel=1e-12)
    assert row["status"] == "ok"


def test_share_run_counts_round_trips_and_share_costs(tmp_path: Path):
    returns = {"2020-01-02": 0.001, "2020-01-03": 0.002}
    run = write_run(
        tmp_path,
        "pairs",
        "20200110T000000-000001",
        returns=returns,
        trades=SHARE_TRADES,
        folds=None,  # no folds.csv: one window
        cash=100_000.0,
        strategy="ou_pairs",
    )
    row = summarize_run(run)
    net = 100_000 * (1.001 * 1.002 - 1)  # one window: the account compounds
    costs = 2.0 + 1.5 + 2.1 + 1.4  # the Margin row (size 0) costs nothing
    notional = 100 * 50 + 80 * 60 + 100 * 52 + 80 * 59
    mean_equity = (100_100 + 100_000 * 1.001 * 1.002) / 2
    assert row["trades"] == 1  # the pair opened in one order and closed in one
    assert row["cost_shares"] == pytest.approx(costs)
    assert row["cost_slippage"] == 0 and row["cost_commission"] == 0
    assert row["net_pnl"] == pytest.approx(net, abs=1e-8)
    assert row["gross_pnl"] == pytest.approx(net + costs, abs=1e-8)
    assert row["turnover"] == pytest.approx(notional / mean_equity / (2 / 252), rel=1e-12)
    assert row["status"] == "ok"


def test_costs_share_sign_and_zero():
    assert costs_share(10.0, -40.0) == 0.25  # gross loss: still >= 0, read with gross_pnl
    assert costs_share(10.0, 8.0) == 1.25  # above 1: costs turned a gross gain into a net loss
    assert costs_share(0.0, 0.0) == 0.0
    assert costs_share(0.0, -3.0) == 0.0
    assert math.isnan(costs_share(5.0, 0.0))


def test_losing_run_with_costs_larger_than_the_gross_loss(tmp_path: Path):
    fill = "2020-01-02 15:45:00,fill,SPY,2020-02-21,300.0,C,1,5.2,4.8,5.2,,1.0,-521.0,buy,,,,0"
    trades = f"{OPTION_COLS}\n{fill}\n"
    run = write_run(
        tmp_path,
        "loss",
        "20200110T000000-000002",
        returns={"2020-01-02": -0.005},
        trades=trades,
        folds=None,
        cash=10_000.0,
    )
    row = summarize_run(run)
    # net -50; costs 1 commission + 1 x (5.2 - 5.0) x 100 = 21; gross -29
    assert row["net_pnl"] == pytest.approx(-50.0)
    assert row["costs"] == pytest.approx(21.0)
    assert row["gross_pnl"] == pytest.approx(-29.0)
    assert row["costs_share"] == pytest.approx(21.0 / 29.0)
    assert row["sharpe"] == 0.0  # one day: no standard deviation
    assert row["sharpe_ci_low"] is None and row["deflated_sharpe"] is None  # n/a, not NaN


def test_empty_trades_file_is_zero_trades_and_costs(tmp_path: Path):
    run = write_run(
        tmp_path,
        "idle",
        "20200110T000000-000003",
        returns={"2020-01-02": 0.0, "2020-01-03": 0.0},
        trades=OPTION_COLS + "\n",
        folds=None,
        cash=10_000.0,
    )
    row = summarize_run(run)
    assert (row["trades"], row["costs"], row["turnover"]) == (0, 0.0, 0.0)
    assert row["costs_share"] == 0.0 and row["status"] == "ok"
    assert trade_stats(pd.DataFrame())["trades"] == 0.0


def test_warnings_sharpe_mismatch_and_unreported_hedge_costs(tmp_path: Path):
    run = write_run(
        tmp_path,
        "w",
        "20200110T000000-000004",
        returns=OPTION_RETURNS,
        trades=OPTION_TRADES,
        folds=OPTION_FOLDS,
        cash=10_000.0,
    )
    payload = json.loads((run / "summary.json").read_text())
    payload["metrics"]["sharpe"] += 0.01
    (run / "summary.json").write_text(json.dumps(payload))
    row = summarize_run(run)
    assert row["status"].startswith("warn: ")
    assert "Sharpe" in row["status"] and "summary.json" in row["status"]
    payload["metrics"].pop("final_equity")  # a run folder from before the continuous account
    (run / "summary.json").write_text(json.dumps(payload))
    with pytest.raises(RunFolderError, match="rerun the config"):
        summarize_run(run)


def test_newest_run_ignores_temporary_and_foreign_folders(tmp_path: Path):
    exp = tmp_path / "e"
    for name in ("20200101T000000-aaaaaa", "20200102T000000-bbbbbb", ".20200103T000000-cc-x"):
        (exp / name).mkdir(parents=True)
    (exp / "notes").mkdir()
    assert newest_run(exp) == exp / "20200102T000000-bbbbbb"
    assert newest_run(tmp_path / "missing") is None


def test_status_rows_missing_folder_invalid_config_bad_folder(tmp_path: Path):
    results = tmp_path / "results"
    cfg = write_config(tmp_path / "a.toml", "never_run", results)
    row = summary_row(cfg)
    assert row["status"].startswith("no run: ") and str(results / "never_run") in row["status"]
    assert row["experiment"] == "never_run" and row["sharpe"] is None
    bad = tmp_path / "b.toml"
    bad.write_text(cfg.read_text().replace('name = "never_run"', 'name = "b"\nnmae = 1'))
    row = summary_row(bad)
    assert row["status"].startswith("invalid config: ") and "nmae" in row["status"]
    assert row["experiment"] == "b"
    write_run(
        results,
        "broken",
        "20200110T000000-000005",
        returns=OPTION_RETURNS,
        trades=OPTION_TRADES,
        folds=OPTION_FOLDS,
        cash=10_000.0,
        skip=("oos_returns.csv",),
    )
    row = summary_row(write_config(tmp_path / "c.toml", "broken", results))
    assert row["status"].startswith("bad run folder: ") and "oos_returns.csv" in row["status"]


def test_run_option_runs_only_configs_without_folder_and_reports_failures(tmp_path: Path):
    results = tmp_path / "results"
    calls: list[tuple[Path, int | None, bool]] = []

    def runner(path: Path, *, trials: int | None, track: bool) -> SimpleNamespace:
        calls.append((path, trials, track))
        run_dir = write_run(
            results,
            "fresh",
            f"20200110T000000-{6 + len(calls) - 1:06d}",
            returns=OPTION_RETURNS,
            trades=OPTION_TRADES,
            folds=OPTION_FOLDS,
            cash=10_000.0,
        )
        return SimpleNamespace(run_dir=run_dir)

    cfg = write_config(tmp_path / "fresh.toml", "fresh", results)
    row = summary_row(cfg, run=True, trials=3, track=False, runner=runner)
    assert calls == [(cfg, 3, False)] and row["trades"] == 4
    row = summary_row(cfg, run=True, runner=runner)  # has a folder now: not run again
    assert len(calls) == 1 and row["experiment"] == "fresh"

    def missing(path: Path, **kw: object) -> None:
        raise DataSourceError("none.csv: file not found")

    def broken(path: Path, **kw: object) -> None:
        raise RuntimeError("boom")

    cfg2 = write_config(tmp_path / "x.toml", "x", results)
    assert summary_row(cfg2, run=True, runner=missing)["status"] == (
        "missing data: none.csv: file not found"
    )
    assert summary_row(cfg2, run=True, runner=broken)["status"] == "run failed: RuntimeError: boom"
    row = summary_row(cfg, run=True, rerun=True, runner=runner)  # --rerun: run it anyway
    assert len(calls) == 2 and row["run_dir"].endswith("20200110T000000-000007")


def test_reported_costs_sums_the_folds_breakdown():
    def fold(info: dict) -> SimpleNamespace:
        return SimpleNamespace(out_of_sample=SimpleNamespace(info=info))

    a = pd.DataFrame({"hedge_spread": [-0.5, -0.25], "costs": [-3.0, -1.0]})
    b = pd.DataFrame({"hedge_spread": [-1.0], "costs": [-2.0]})
    wf = SimpleNamespace(folds=[fold({"pnl_breakdown": a}), fold({}), fold({"pnl_breakdown": b})])
    assert reported_costs(wf) == {"oos_cost.hedge_spread": -1.75, "oos_cost.costs": -6.0}
    assert reported_costs(SimpleNamespace(folds=[fold({"market_source": "x"})])) == {}


def test_cli_writes_csv_and_markdown_atomically(tmp_path: Path, option_run: Path):
    from experiments.cli import app

    results = tmp_path / "results"
    cfgs = tmp_path / "cfgs"
    cfgs.mkdir()
    write_config(cfgs / "opt.toml", "opt", results)
    write_config(cfgs / "zz_missing.toml", "zz_missing", results)
    out = CliRunner().invoke(
        app,
        ["summary", "--configs", str(cfgs / "*.toml"), "--results-dir", str(results)],
        env={"COLUMNS": "250"},
    )
    assert out.exit_code == 0, out.output
    assert "opt" in out.output and "zz_missing" in out.output
    folder = results / "summary"
    assert sorted(p.name for p in folder.iterdir()) == [
        "strategy_summary.csv",
        "strategy_summary.md",
    ]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    for p in folder.iterdir():  # readable like any file written with open() (not mkstemp's 0600)
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    table = pd.read_csv(folder / "strategy_summary.csv")
    assert list(table.columns) == COLUMNS
    assert list(table["experiment"]) == ["opt", "zz_missing"]
    assert table.loc[0, "trades"] == 4 and table.loc[0, "status"] == "ok"
    assert table.loc[0, "sharpe"] == pytest.approx(np_sharpe(list(OPTION_RETURNS.values())))
    assert table.loc[1, "status"].startswith("no run: ") and pd.isna(table.loc[1, "trades"])
    md = (folder / "strategy_summary.md").read_text()
    assert md.count("\n| ") == 3
    sharpe = np_sharpe(list(OPTION_RETURNS.values()))
    head = "| opt | vrp_harvest | 2020-01-02 | 2020-01-08 | chain:SPX:SPXW | 5 |"
    assert f"{head} {sharpe:.2f} |" in md
    bad = CliRunner().invoke(app, ["summary", "--configs", str(tmp_path / "nope*.toml")])
    assert bad.exit_code == 2 and "matches no config file" in bad.output


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_run_costs_match_the_raw_fills(
    shared_data: Path, chain_store_2019_path: Path, tmp_path: Path
):
    """vrp_harvest_spx2019 run for real (1 trial, its own copy of the 2019 chain store):
    commission = $1 x contracts (+ settlement fees) and, with fills at the touch (slippage
    fraction 0.5), slippage = contracts x half spread x 100, both from the raw fill rows."""
    db = tmp_path / "chains.duckdb"
    shutil.copyfile(chain_store_2019_path, db)
    src = Path(__file__).resolve().parents[2] / "experiments/configs/vrp_harvest_spx2019.toml"
    text = src.read_text().replace("../shared/data/", f"{shared_data}/")
    text = text.replace('db = "results/chains.duckdb"', f'db = "{db}"')
    text = re.sub(r"ingest = \[[^\]]*\]", "ingest = []", text)
    cfg = tmp_path / "vrp.toml"
    cfg.write_text(text + f'\n[tracking]\nresults_dir = "{tmp_path}"\n')
    row = summary_row(cfg, run=True, trials=1, track=False)
    assert row["status"] == "ok", row["status"]
    trades = pd.read_csv(Path(row["run_dir"]) / "trades.csv")
    fills = trades[trades["event"] == "fill"]
    assert len(fills) > 0
    settle_fees = trades.loc[trades["event"] == "settlement", "commission"].sum()
    assert row["cost_commission"] == pytest.approx(
        fills["quantity"].abs().sum() * 1.0 + settle_fees
    )
    half = (fills["ask"] - fills["bid"]) / 2 * 100 * fills["quantity"].abs()
    assert row["cost_slippage"] == pytest.approx(half.sum(), abs=1e-6)
    summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
    assert row["sharpe"] == pytest.approx(summary["metrics"]["sharpe"], abs=1e-12)


def test_display_shows_the_sharpe_unless_the_sample_is_insufficient():
    """A frame with one insufficient and one sufficient run: pandas stores the missing note of
    the sufficient run as NaN in a string column, which must not read as a note."""
    from experiments.summary import DISPLAY, display_cells, summary_frame

    rows = [
        {"experiment": "a", "sharpe": 1.234, "sample": None, "status": "ok"},
        {"experiment": "b", "sharpe": -2.5, "sample": "insufficient sample (1 trade)"},
    ]
    frame = summary_frame(rows).to_dict("records")
    at = [c for c, _, _ in DISPLAY].index("sharpe")
    assert display_cells(frame[0])[at] == "1.23"
    assert display_cells(frame[1])[at] == "insufficient sample (1 trade)"
