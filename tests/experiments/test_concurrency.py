"""results/ shared by concurrent processes: the chain store's reader/writer lock, run folders marked
complete only after MLflow, and two chain-config runs plus ``chains info`` side by side."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_feeds.chain_store import ChainStore
from data_feeds.errors import DataSourceError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CLI = [sys.executable, "-m", "experiments.cli"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "COLUMNS": "200"}

HOLD = (
    "import sys, time; from data_feeds.chain_store import ChainStore; "
    "s = ChainStore(sys.argv[1], read_only=sys.argv[2] == 'ro'); print('ready', flush=True); "
    "time.sleep(float(sys.argv[3])); s.close()"
)


def _hold(db: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db), mode, str(seconds)],
        env=ENV,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.communicate()[0]
    return proc


@pytest.fixture
def empty_store(tmp_path: Path) -> Path:
    db = tmp_path / "chains.duckdb"
    ChainStore(db).close()  # schema only
    return db


def test_writer_refused_while_another_process_reads(empty_store: Path) -> None:
    reader = _hold(empty_store, "ro", 30)
    try:
        with pytest.raises(DataSourceError, match="being read by another volsuite process"):
            ChainStore(empty_store)
        # a second reader is fine beside the first
        with ChainStore(empty_store, read_only=True) as ro:
            assert ro.table_counts()["raw_options_chains"] == 0
    finally:
        reader.kill()
        reader.wait()
    with ChainStore(empty_store) as rw:  # the reader is gone: writing works again
        assert not rw.read_only


def test_reader_waits_for_the_writer(empty_store: Path) -> None:
    writer = _hold(empty_store, "rw", 2.0)
    try:
        with pytest.raises(DataSourceError, match="an ingest is writing the chain store"):
            ChainStore(empty_store, read_only=True, wait=0.2)
        waited: list[str] = []
        t0 = time.monotonic()
        with ChainStore(empty_store, read_only=True, on_wait=lambda: waited.append("w")) as ro:
            assert ro.read_only
        assert waited == ["w"] and time.monotonic() - t0 > 0.5
    finally:
        writer.wait(timeout=60)


def test_ingest_command_fails_in_one_line_while_a_run_reads(empty_store: Path) -> None:
    reader = _hold(empty_store, "ro", 60)
    try:
        out = subprocess.run(
            [
                *CLI,
                "ingest",
                "underlying",
                "builtin:vix",
                "--symbol",
                "VIX",
                "--db",
                str(empty_store),
            ],
            env=ENV,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        reader.kill()
        reader.wait()
    assert out.returncode == 2
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "being read by another volsuite process" in lines[0], lines


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
window = { low = 5, high = 30 }
short_threshold = { low = 0.0, high = 1.0 }
[walkforward]
train_days = 252
test_days = 252
start = "2015-01-01"
end = "2017-12-31"
[optimize]
trials = 2
seed = 7
[tracking]
results_dir = "{results}"
"""


def test_run_folder_complete_only_after_mlflow(tmp_path: Path, monkeypatch) -> None:
    import experiments.runner as runner

    results = tmp_path / "results"
    config = tmp_path / "small.toml"
    config.write_text(SMALL.replace("{results}", str(results)))

    def interrupted(**_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "log_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(config)
    (broken,) = (results / "small").iterdir()
    status = json.loads((broken / "summary.json").read_text())["status"]
    assert status == "incomplete: MLflow logging did not finish (KeyboardInterrupt)"
    assert not (broken / "COMPLETE").exists()

    monkeypatch.undo()
    steps: list[str] = []
    trials: list[tuple[int, int]] = []
    outcome = runner.run_experiment(  # same config: its studies are reused
        config, on_step=steps.append, on_trial=lambda k, n: trials.append((k, n))
    )
    # progress from the first step to the last, in order
    want = [
        "loading data",
        "loading underlying (builtin:sp500)",
        "loading vix (builtin:vix)",
        "preparing zero_dte_straddle",
        "optimizing",
        "computing metrics",
        "writing tearsheet and run files",
        "logging to MLflow",
    ]
    assert [s for s in steps if s in want] == want
    assert (0, 2) in trials and (1, 2) in trials  # COMPLETE trials per fold study
    assert outcome.run_dir != broken and outcome.mlflow_run_id
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["mlflow_run_id"] == outcome.mlflow_run_id
    assert (outcome.run_dir / "COMPLETE").is_file()
    # run ids: a timestamp and a random suffix
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", outcome.run_id)
    checker = SHARED / "tools" / "check_run.py"
    if checker.is_file():
        out = subprocess.run(
            [sys.executable, str(checker), str(outcome.run_dir)], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stdout + out.stderr


def _chain_config(src: str, tmp_path: Path, shared_data: Path) -> Path:
    text = (REPO / "experiments" / "configs" / src).read_text()
    text = text.replace("../shared/data", str(shared_data))
    text = text.replace('db = "results/chains.duckdb"', f'db = "{tmp_path / "chains.duckdb"}"')
    text += f'\n[tracking]\nresults_dir = "{tmp_path / "results"}"\n'
    path = tmp_path / src
    path.write_text(text)
    return path


@pytest.mark.shared_data
def test_two_chain_runs_and_chains_info_side_by_side(tmp_path: Path, shared_data: Path) -> None:
    """Two runs of different chain configs on one fresh store (one ingests, the other waits for
    it, then both read) and ``chains info`` during them: all exit 0."""
    configs = [
        _chain_config(name, tmp_path, shared_data)
        for name in ("term_structure_slope_spx2019.toml", "vol_of_vol_spx2019.toml")
    ]
    runs = [
        subprocess.Popen(
            [*CLI, "run", str(c), "--trials", "2", "--no-mlflow"],
            env=ENV,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for c in configs
    ]
    db = tmp_path / "chains.duckdb"
    deadline = time.monotonic() + 600
    while not db.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    info = subprocess.run(
        [*CLI, "chains", "info", "--db", str(db)],
        env=ENV,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    outs = [p.communicate(timeout=1800)[0] for p in runs]
    assert info.returncode == 0, info.stdout + info.stderr
    assert [p.returncode for p in runs] == [0, 0], outs
    assert "SPX" in info.stdout
    for name in ("term_structure_slope_spx2019", "vol_of_vol_spx2019"):
        (run,) = (tmp_path / "results" / name).iterdir()
        assert (run / "COMPLETE").is_file()
    with ChainStore(db, read_only=True) as store:  # ingested once: the second run found it done
        assert len(store.ingest_log()) == 1


def test_plugin_progress_reaches_the_runner() -> None:
    from strategies import get_strategy

    plugin = get_strategy("zero_dte_straddle")()
    plugin.progress("nothing listens")  # a no-op without a listener
    seen: list[str] = []
    plugin.on_progress = seen.append
    plugin.progress("XGBoost fold", 3, 8)
    plugin.progress("features")
    assert seen == ["zero_dte_straddle: XGBoost fold 3/8", "zero_dte_straddle: features"]
