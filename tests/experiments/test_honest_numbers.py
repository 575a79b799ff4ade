"""Issue 13's identities on a real (small) walk-forward run through the CLI.

* one continuous out-of-sample account: fold k+1 starts with fold k's final equity, the fills
  of ``trades.csv`` add up to each fold's equity change (to the cent) and ``total_return`` is
  ``(final equity - initial cash) / initial cash``;
* one metrics source: the Sharpe ratio is the same in the console, ``summary.json``, MLflow,
  ``volsuite summary`` and the tearsheet;
* input hygiene: ``--trials 0`` and ``--seed -1`` fail with one line; an insufficient sample is
  said instead of a bare ratio.

The expected values are recomputed here from the written CSV files with pandas (not with the
project's metrics functions), except where equality across outputs is the point.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli import app
from experiments.metrics import opening_orders, trade_stats
from tests.experiments.test_runner import SMALL, write_config


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("honest")
    results = tmp / "results"
    config = write_config(tmp, results)
    out = CliRunner().invoke(app, ["run", str(config)])
    assert out.exit_code == 0, out.output
    (run,) = sorted((results / "small").iterdir())
    return run, results, out.output


def test_folds_chain_their_equity_and_fills_add_up_to_each_fold(small_run) -> None:
    run, _, _ = small_run
    summary = json.loads((run / "summary.json").read_text())
    cash0 = summary["initial_cash"]
    equity = pd.read_csv(run / "equity.csv")
    trades = pd.read_csv(run / "trades.csv")
    folds = pd.read_csv(run / "folds.csv")
    assert list(equity.columns) == ["date", "fold", "cash", "positions_value", "equity"]
    assert (equity["cash"] + equity["positions_value"] - equity["equity"]).abs().max() < 1e-6
    start = cash0
    for k, grp in equity.groupby("fold", sort=True):
        # fold k starts with what fold k-1 ended with (fold 0 with the initial cash)
        assert folds.loc[folds["fold"] == k, "start_equity"].iloc[0] == pytest.approx(start)
        end = float(grp["equity"].iloc[-1])
        flows = trades.loc[trades["fold"] == k, "cash_flow"].sum()
        assert flows == pytest.approx(end - start, abs=0.01), k
        assert grp["positions_value"].iloc[-1] == pytest.approx(0.0, abs=1e-6)  # ends flat
        start = end
    final = float(equity["equity"].iloc[-1])
    assert summary["final_equity"] == pytest.approx(final)
    # equity.csv has 6 decimals of a dollar
    assert summary["metrics"]["total_return"] == pytest.approx(final / cash0 - 1, abs=1e-10)
    assert summary["metrics"]["net_pnl"] == pytest.approx(trades["cash_flow"].sum(), abs=0.01)
    # the stitched returns are the equity curve's, so they compound to the same total
    oos = pd.read_csv(run / "oos_returns.csv")["oos_return"].to_numpy()
    assert np.prod(1 + oos) - 1 == pytest.approx(final / cash0 - 1, rel=1e-9)
    prev = np.concatenate([[cash0], equity["equity"].to_numpy()[:-1]])
    np.testing.assert_allclose(oos, equity["equity"].to_numpy() / prev - 1, rtol=0, atol=1e-9)


def test_shared_check_run_tool_accepts_the_run_folder(small_run) -> None:
    run, _, _ = small_run
    tool = Path(__file__).resolve().parents[2].parent / "shared" / "tools" / "check_run.py"
    if not tool.exists():
        pytest.skip(f"{tool} not present (the shared folder is absent)")
    import runpy

    check = runpy.run_path(str(tool))["check"]
    assert check(run) == []


def test_the_sharpe_ratio_is_the_same_in_all_five_outputs(small_run) -> None:
    run, results, console = small_run
    reported = json.loads((run / "summary.json").read_text())["metrics"]
    sharpe = reported["sharpe"]
    # 1. console (2 decimals)
    assert re.search(rf"Sharpe\s*│\s*{sharpe:.2f}\s*│", console), console
    # 2. MLflow parent run
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{results / 'mlflow.db'}")
    found = mlflow.search_runs(experiment_names=["small"], output_format="pandas")
    parent = found[found["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert parent["metrics.oos_sharpe"] == pytest.approx(sharpe, abs=1e-12)
    assert parent["metrics.oos_deflated_sharpe"] == pytest.approx(reported["deflated_sharpe"])
    # 3. volsuite summary
    config = run / "config.toml"
    out = CliRunner().invoke(
        app, ["summary", "--configs", str(config), "--results-dir", str(results)]
    )
    assert out.exit_code == 0, out.output
    table = pd.read_csv(results / "summary" / "strategy_summary.csv")
    assert table["sharpe"].iloc[0] == pytest.approx(sharpe, abs=1e-12)
    assert table["pbo"].iloc[0] == pytest.approx(reported["pbo"], abs=1e-12)
    # 4. tearsheet headline table: the first Sharpe row, Strategy column
    html = (run / "tearsheet.html").read_text()
    row = re.search(r"<tr><td>Sharpe</td><td>(.*?)</td>", html)
    assert row is not None and float(row.group(1)) == pytest.approx(round(sharpe, 2))
    # 5. the Sharpe recomputed by hand from oos_returns.csv
    r = pd.read_csv(run / "oos_returns.csv")["oos_return"]
    assert r.mean() / r.std(ddof=1) * math.sqrt(252) == pytest.approx(sharpe, rel=1e-12)


def test_summary_json_carries_the_statistics_of_belief(small_run) -> None:
    run, _, _ = small_run
    m = json.loads((run / "summary.json").read_text())["metrics"]
    assert 0.0 <= m["deflated_sharpe"] <= 1.0 and 0.0 <= m["pbo"] <= 1.0
    assert m["sharpe_ci_low"] < m["sharpe"] < m["sharpe_ci_high"]
    folds = pd.read_csv(run / "folds.csv")
    assert m["n_trials"] == (folds["n_trials"] - folds["n_pruned"]).sum()  # completed trials
    completed = folds["n_trials"] - folds["n_pruned"]
    per_study = completed[completed >= 2].mean()  # studies with a variance of trial Sharpes
    assert m["dsr_trials_per_study"] == round(per_study)
    ratio = folds["oos_sharpe"] / folds["is_sharpe"]
    expect = ratio.where(folds["is_sharpe"] > 0)
    np.testing.assert_allclose(folds["oos_is_sharpe_ratio"], expect, equal_nan=True)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trials", "0"], "--trials"),
        (["--trials", "-3"], "--trials"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_overrides_fail_with_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    results = tmp_path / "results"
    out = CliRunner().invoke(app, ["run", str(write_config(tmp_path, results)), *args])
    assert out.exit_code == 2
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.output
    assert not (results / "small").exists()


def test_an_insufficient_sample_is_said_instead_of_the_ratio(tmp_path: Path) -> None:
    results = tmp_path / "results"
    text = SMALL.replace("[tracking]", "[report]\nmin_trades = 100000\n[tracking]")
    text = text.replace("trials = 4", "trials = 2")
    out = CliRunner().invoke(
        app, ["run", str(write_config(tmp_path, results, text)), "--no-mlflow"]
    )
    assert out.exit_code == 0, out.output
    (run,) = sorted((results / "small").iterdir())
    m = json.loads((run / "summary.json").read_text())["metrics"]
    n = int(m["trades"])
    note = f"insufficient sample ({n} trades)"
    assert m["sample"] == note and isinstance(m["sharpe"], float)
    console_sharpe = next(ln for ln in out.output.splitlines() if "│ Sharpe " in ln)
    assert "insufficient sample" in console_sharpe
    assert note in (run / "tearsheet.html").read_text()


def test_opening_orders_by_hand_with_window_end_rows() -> None:
    """Two orders open (a straddle, then an add), one closes, the rest closes at the window
    end: 2 trades; the window-end half spread is (ask - bid) / 2 x 100 x |qty|."""
    rows = [
        ("2019-06-03 15:45", "fill", "C", 2, 4.0, 3.9, 4.1, "open"),
        ("2019-06-03 15:45", "fill", "P", 2, 3.0, 2.9, 3.1, "open"),
        ("2019-06-04 15:45", "fill", "C", 1, 4.5, 4.4, 4.6, "add"),
        ("2019-06-05 15:45", "fill", "C", -2, 5.0, 4.9, 5.1, "close"),
        ("2019-06-05 16:00", "window_end", "C", -1, 5.0, 4.8, 5.2, "window end"),
        ("2019-06-05 16:00", "window_end", "P", -2, 2.0, 1.9, 2.1, "window end"),
    ]
    trades = pd.DataFrame(
        [
            {
                "time": t,
                "event": e,
                "root": "SPXW",
                "expiration": "2019-06-21",
                "strike": 2750.0,
                "right": right,
                "quantity": q,
                "price": p,
                "bid": b,
                "ask": a,
                "commission": 0.0,
                "cash_flow": -q * p * 100,
                "tag": tag,
                "fold": 0,
            }
            for t, e, right, q, p, b, a, tag in rows
        ]
    )
    stats = trade_stats(trades)
    assert stats["trades"] == 2 and stats["window_end_legs"] == 2
    assert stats["window_end_exit_cost"] == pytest.approx(1 * 0.2 * 100 + 2 * 0.1 * 100)
    # window-end rows are not traded notional
    assert stats["notional"] == pytest.approx(100 * (2 * 4.0 + 2 * 3.0 + 4.5 + 2 * 5.0))
    from experiments.metrics import _fills

    assert opening_orders(_fills(trades), "option") == 2


def test_run_folder_has_the_usual_permissions(small_run) -> None:
    """Issue 17 item 14: the run folder is as readable as any folder (mkdtemp makes 0700)."""
    import os

    run, _, _ = small_run
    umask = os.umask(0)
    os.umask(umask)
    assert run.stat().st_mode & 0o777 == 0o777 & ~umask
