"""End to end through the CLI: results, MLflow, determinism, and clean failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli import app

SMALL = """
[experiment]
name = "small"
[data]
start = "2010-01-01"
[data.underlying]
source = "builtin:sp500"
[data.vix]
source = "builtin:vix"
[strategy]
name = "zero_dte_straddle"
[strategy.params]
contracts = 1
[strategy.search_space]
rv_estimator = { choices = ["rogers_satchell", "yang_zhang"] }
window = { low = 5, high = 30 }
forecast = { choices = ["rolling", "har"] }
short_threshold = { low = 0.0, high = 1.0 }
long_threshold = { low = 0.0, high = 1.0 }
[walkforward]
train_days = 252
test_days = 252
start = "2015-01-01"
end = "2017-12-31"
[optimize]
trials = 4
seed = 7
[tracking]
results_dir = "{results}"
"""


def write_config(tmp_path: Path, results: Path, text: str = SMALL) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(text.replace("{results}", str(results)))
    return path


def test_run_writes_results_and_mlflow_and_is_deterministic(tmp_path: Path) -> None:
    results = tmp_path / "results"
    config = write_config(tmp_path, results)
    runner = CliRunner()
    out1 = runner.invoke(app, ["run", str(config)])
    assert out1.exit_code == 0, out1.output
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    out2 = runner.invoke(app, ["run", str(config), "--no-mlflow", "--storage", storage])
    assert out2.exit_code == 0, out2.output
    runs = sorted((results / "small").iterdir())
    assert len(runs) == 2
    for run in runs:
        for name in (
            "tearsheet.html",
            "oos_returns.csv",
            "trades.csv",
            "daily_log.csv",
            "folds.csv",
            "config.toml",
            "summary.json",
        ):
            assert (run / name).is_file(), name
    a = pd.read_csv(runs[0] / "oos_returns.csv")
    b = pd.read_csv(runs[1] / "oos_returns.csv")
    pd.testing.assert_frame_equal(a, b)
    # 2015-2017 sessions; fold 0 trains on 2015 and tests 2016, fold 1 trains 2016, tests 2017
    assert len(a) == 252 + 251  # NYSE sessions in 2016 and 2017
    html = (runs[0] / "tearsheet.html").read_text()
    assert "vix_proxy" in html
    assert "Sharpe" in out1.output and "vix_proxy" in out1.output

    import optuna

    # studies of run 1 in the default storage under results/, of run 2 where --storage said
    default = optuna.get_all_study_names(f"sqlite:///{results / 'optuna.db'}")
    elsewhere = optuna.get_all_study_names(storage)
    assert len(default) == 2 and len(elsewhere) == 2
    assert all(n.endswith(("fold0", "fold1")) for n in default + elsewhere)

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{results / 'mlflow.db'}")
    found = mlflow.search_runs(experiment_names=["small"], output_format="pandas")
    parents = found[found["tags.mlflow.parentRunId"].isna()]
    children = found[found["tags.mlflow.parentRunId"].notna()]
    assert len(parents) == 1 and len(children) == 2
    assert parents["tags.market_source"].iloc[0] == "vix_proxy"
    assert len(parents["tags.data_fingerprint"].iloc[0]) == 16
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(parents["run_id"].iloc[0])}
    assert {"tearsheet.html", "trades.csv", "config.toml"} <= names


def test_misspelled_key_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    config = write_config(tmp_path, results, SMALL.replace("contracts = 1", "contrcts = 1"))
    out = CliRunner().invoke(app, ["run", str(config)])
    assert out.exit_code == 2
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "strategy.params.contrcts: unknown key" in lines[0]
    assert not results.exists()


def test_high_below_low_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    import arch.data.sp500

    raw = arch.data.sp500.load()
    bad_day = raw.index[3000]
    raw.loc[bad_day, "High"] = raw.loc[bad_day, "Low"] - 1.0
    raw.rename_axis("Date").to_csv(tmp_path / "spx.csv")
    results = tmp_path / "results"
    text = SMALL.replace('source = "builtin:sp500"', f'source = "{tmp_path / "spx.csv"}"')
    out = CliRunner().invoke(app, ["run", str(write_config(tmp_path, results, text))])
    assert out.exit_code == 2
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert f"row {bad_day:%Y-%m-%d}, field 'high': high < low" in lines[0]
    assert not results.exists()


def test_list_shows_strategies_and_configs() -> None:
    out = CliRunner().invoke(app, ["list"])
    assert out.exit_code == 0
    assert "zero_dte_straddle" in out.output and "zero_dte_straddle_shared.toml" in out.output


@pytest.mark.slow
def test_default_config_runs(tmp_path: Path) -> None:
    """The README's command (1) job, with results in a temp folder (slow: minutes)."""
    src = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "zero_dte_straddle.toml"
    text = src.read_text() + f'\n[tracking]\nresults_dir = "{tmp_path / "results"}"\n'
    config = tmp_path / "default.toml"
    config.write_text(text)
    out = CliRunner().invoke(app, ["run", str(config)])
    assert out.exit_code == 0, out.output
