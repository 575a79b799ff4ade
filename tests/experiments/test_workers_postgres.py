"""PostgreSQL as the Optuna storage and MLflow's backend store, on a real server
(``postgres_server`` in ``tests/experiments/conftest.py``; skipped only when it cannot start)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_workers import REPO, _start

SMALL = """
[experiment]
name = "small_pg"
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
trials = 3
seed = 7
[tracking]
results_dir = "{results}"
"""


def test_two_workers_on_postgresql(postgres_server, tmp_path: Path) -> None:
    url = postgres_server.create_database("optuna_two_workers")
    procs = [_start(tmp_path, url, "pg", 6, 0.3) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study = optuna.load_study(study_name="pg", storage=url)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 6
    pids = {ln.split()[0] for ln in (tmp_path / "marker.txt").read_text().splitlines()}
    assert len(pids) == 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_with_postgres_storage_and_mlflow_server(postgres_server, tmp_path: Path) -> None:
    """``volsuite run --workers 2 --storage postgresql+psycopg://... --tracking-uri http://...``
    against ``mlflow server --backend-store-uri postgresql+psycopg://...``: both fold studies end
    with exactly 3 COMPLETE trials; the run, its fold children and artifacts are on the server."""
    optuna_url = postgres_server.create_database("optuna_run")
    mlflow_db = postgres_server.create_database("mlflow_run")
    artifacts = tmp_path / "mlflow-artifacts"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    server_log = open(tmp_path / "mlflow-server.log", "wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            mlflow_db,
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                server_log.flush()
                pytest.fail(
                    "mlflow server did not start: "
                    + (tmp_path / "mlflow-server.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(1)
        config = tmp_path / "small.toml"
        config.write_text(SMALL.replace("{results}", str(tmp_path / "results")))
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "experiments.cli",
                "run",
                str(config),
                "--workers",
                "2",
                "--storage",
                optuna_url,
                "--tracking-uri",
                uri,
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "not bit-reproducible" in out.stdout
        names = sorted(optuna.get_all_study_names(optuna_url))
        assert len(names) == 2 and names[0].endswith("fold0") and names[1].endswith("fold1")
        for name in names:
            study = optuna.load_study(study_name=name, storage=optuna_url)
            assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3

        import mlflow

        client = mlflow.MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("small_pg")
        assert exp is not None
        runs = client.search_runs([exp.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1 and len(runs) == 3
        assert parents[0].data.tags["workers"] == "2"
        arts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
        assert {"tearsheet.html", "summary.json", "folds.csv"} <= arts
        # the server stored them under --artifacts-destination
        assert list(artifacts.rglob("tearsheet.html"))
        (run_dir,) = (tmp_path / "results" / "small_pg").iterdir()
        assert (run_dir / "COMPLETE").is_file()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()
