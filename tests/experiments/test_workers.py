"""Many workers on one study (experiments.workers): exact COMPLETE-trial budgets, a killed worker's
trial failed by heartbeat and retried, race-free storage creation, returns shared through storage.

The worker processes here run a small objective (a sleep and a known function of the parameter)
through :func:`experiments.workers.run_trials`, the loop every ``volsuite run``/``worker`` uses, so
the process mechanics are tested in seconds; ``test_run_workers_cli`` runs the real command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from experiments.workers import (
    RETURNS_ATTR,
    SURPLUS_ATTR,
    decode_returns,
    encode_returns,
    open_storage,
    run_trials,
    study_prefix,
)

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import os, sys, time
    import optuna
    from experiments.workers import open_storage, run_trials

    url, name, n, marker, sleep = sys.argv[1:6]
    n, sleep = int(n), float(sleep)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(url, heartbeat_interval=1, grace_period=3)
    study = optuna.create_study(
        study_name=name, storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=os.getpid()),
    )

    def objective(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()} start {trial.number}\\n")
        time.sleep(sleep)
        return -(x - 0.25) ** 2

    run_trials(study, objective, n, wait=True, poll=0.2)
    print("done", os.getpid())
    """
)


def _start(tmp_path: Path, url: str, name: str, n: int, sleep: float) -> subprocess.Popen[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), url, name, str(n), str(tmp_path / "marker.txt"), str(sleep)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _states(url: str, name: str) -> dict[str, int]:
    study = optuna.load_study(study_name=name, storage=url)
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_two_workers_end_with_exactly_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    procs = [_start(tmp_path, url, "s", 7, 0.3) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study = optuna.load_study(study_name="s", storage=url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 7
    # both processes evaluated trials (the marker lines name two pids)
    pids = {ln.split()[0] for ln in (tmp_path / "marker.txt").read_text().splitlines()}
    assert len(pids) == 2
    # a trial not evaluated because the budget was reached is a FAIL marked surplus, never COMPLETE
    for t in study.trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get(SURPLUS_ATTR) is True


def test_killed_worker_trial_is_failed_by_heartbeat_and_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    n = 6
    victim = _start(tmp_path, url, "k", n, 2.0)
    marker = tmp_path / "marker.txt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the victim is inside a trial
        if marker.exists() and str(victim.pid) in marker.read_text():
            break
        time.sleep(0.1)
    else:
        victim.kill()
        pytest.fail(f"worker never started a trial: {victim.communicate()[0]}")
    survivor = _start(tmp_path, url, "k", n, 0.2)
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)  # mid-trial: its 2-second sleep has not ended
    victim.wait(timeout=30)
    killed_trial = int(
        [ln for ln in marker.read_text().splitlines() if ln.startswith(str(victim.pid))][
            -1
        ].split()[-1]
    )
    out = survivor.communicate(timeout=300)[0]
    assert survivor.returncode == 0, out
    study = optuna.load_study(study_name="k", storage=url)
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed_trial].state == TrialState.FAIL  # failed by the stale heartbeat
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n
    # the retry re-ran the killed trial's parameters
    assert any(
        t.params == by_number[killed_trial].params and t.number != killed_trial for t in complete
    )


def test_single_process_budget_counts_complete_not_pruned(tmp_path: Path) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, 9)
        if x % 3 == 0:
            raise optuna.TrialPruned("invalid")
        return float(x)

    seen: list[int] = []
    run_trials(study, objective, 5, on_progress=seen.append)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 5
    # every value drawn divisible by 3 was pruned and did not count
    pruned_x = [t.params["x"] for t in study.trials if t.state == TrialState.PRUNED]
    assert all(x % 3 == 0 for x in pruned_x)
    assert seen[-1] == 5


def test_returns_round_trip_exactly_through_json() -> None:
    import json

    idx = pd.DatetimeIndex(["2016-01-04", "2016-01-05", "2016-01-06"], tz="America/New_York")
    s = pd.Series([0.1 + 0.2, np.nan, -1.0 / 3.0], index=idx)
    back = decode_returns(json.loads(json.dumps(encode_returns(s))))
    assert back.index.equals(idx) and str(back.index.tz) == "America/New_York"
    assert back.iloc[0] == 0.30000000000000004 and np.isnan(back.iloc[1])
    assert back.iloc[2] == -1.0 / 3.0


def test_study_prefix_ignores_tracking_but_not_trials() -> None:
    base = {"optimize": {"trials": 4}, "tracking": {"results_dir": "a"}}
    same = {"optimize": {"trials": 4}, "tracking": {"results_dir": "b"}}
    other = {"optimize": {"trials": 5}, "tracking": {"results_dir": "a"}}
    a = study_prefix("x", base, "fp")
    assert a == study_prefix("x", same, "fp")
    assert a != study_prefix("x", other, "fp") and a != study_prefix("x", base, "fp2")
    assert a.startswith("x-") and len(a) == len("x-") + 12
    assert a != study_prefix("x", base, "fp", "other code")


def test_code_version_names_the_checkout(tmp_path: Path) -> None:
    from experiments.tracking import code_version

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    version = code_version()
    assert version.split("-dirty-")[0] == head
    dirty = subprocess.run(["git", "diff", "HEAD", "--quiet"], cwd=REPO).returncode != 0
    assert ("-dirty-" in version) == dirty
    assert code_version(tmp_path) == "unknown"  # not a git checkout


def test_fresh_sqlite_storage_created_by_racing_processes(tmp_path: Path) -> None:
    """Four processes open a fresh optuna.db at once (before the lock, one failed with
    ``UNIQUE constraint failed: alembic_version``)."""
    url = f"sqlite:///{tmp_path / 'fresh' / 'optuna.db'}"
    code = (
        "import sys, optuna; from experiments.workers import open_storage; "
        "st = open_storage(sys.argv[1]); "
        "optuna.create_study(study_name='s', storage=st, load_if_exists=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert optuna.get_all_study_names(url) == ["s"]


def test_open_storage_none_is_in_memory() -> None:
    assert open_storage(None) is None
    assert RETURNS_ATTR == "is_returns"


SMALL = """
[experiment]
name = "small_workers"
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


def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "experiments.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )


def _complete_per_study(url: str) -> dict[str, int]:
    return {
        name: sum(
            t.state == TrialState.COMPLETE
            for t in optuna.load_study(study_name=name, storage=url).trials
        )
        for name in optuna.get_all_study_names(url)
    }


def test_run_workers_cli(tmp_path: Path) -> None:
    """``volsuite run --workers 2``: every fold's study has exactly the configured COMPLETE
    trials (pruned har/yang_zhang draws do not count), the PBO matrix holds all of them, and
    the run says results are not bit-reproducible."""
    results = tmp_path / "results"
    config = tmp_path / "small.toml"
    config.write_text(SMALL.replace("{results}", str(results)))
    out = _run_cli(["run", str(config), "--workers", "2", "--no-mlflow"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "not bit-reproducible" in out.stdout
    counts = _complete_per_study(f"sqlite:///{results / 'optuna.db'}")
    assert len(counts) == 2 and set(counts.values()) == {4}
    (run,) = (results / "small_workers").iterdir()
    folds = pd.read_csv(run / "folds.csv")
    assert (folds["n_trials"] - folds["n_pruned"] == 4).all()
    import json

    summary = json.loads((run / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["status"] == "complete"
    assert summary["metrics"]["dsr_trials_per_study"] == 4.0


@pytest.mark.slow
def test_default_config_two_workers_ten_trials(tmp_path: Path) -> None:
    """The issue's command: ``volsuite run experiments/configs/zero_dte_straddle.toml --workers 2
    --trials 10`` ends with exactly 10 COMPLETE trials in every fold's study (slow: minutes)."""
    src = REPO / "experiments" / "configs" / "zero_dte_straddle.toml"
    results = tmp_path / "results"
    config = tmp_path / "zero_dte_straddle.toml"
    config.write_text(src.read_text() + f'\n[tracking]\nresults_dir = "{results}"\n')
    out = _run_cli(["run", str(config), "--workers", "2", "--trials", "10", "--no-mlflow"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = _complete_per_study(f"sqlite:///{results / 'optuna.db'}")
    assert counts and set(counts.values()) == {10}, counts
