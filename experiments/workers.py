"""Many worker processes on one walk-forward study: storage, exact trial counts, local workers.

Every fold's Optuna study has a deterministic name, ``{experiment}-{config hash}-fold{k}``
(:func:`study_prefix`: a hash of the effective config, the data fingerprint and the source
version), and is created
with ``load_if_exists=True``; so any process that loads the same config and data joins the same
studies: the ``volsuite run`` process itself, the workers ``--workers N`` starts beside it, and
``volsuite worker CONFIG --storage URL`` on other machines (docs/scaling.md). A re-run of an
unchanged config on the same storage finds its studies complete and only repeats the
out-of-sample step.

Trial budget (:func:`run_trials`): a study ends with exactly ``n`` COMPLETE trials. Workers stop
with ``optuna.study.MaxTrialsCallback(n, states=(COMPLETE,))``; a trial about to start when the
completed trials plus the running trials numbered before it already reach ``n`` is not evaluated
(it is recorded FAILED with the user attribute ``surplus``), so two workers finishing together
cannot overshoot. Pruned trials (an invalid combination of values) do not count toward ``n``; at
most ``10 n`` of them are tried. A killed worker's trial stops sending heartbeats
(``heartbeat_interval``); after ``grace_period`` seconds any other worker marks it FAILED and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (Optuna's successor of
``RetryFailedTrialCallback``) queues a copy with the same parameters, which
the next worker to ask evaluates.

Storage: heartbeats exist only in Optuna's RDB storage (``optuna.storages.RDBStorage``; the
journal storage has none in Optuna 5.1), so one machine uses SQLite (``results/optuna.db``,
default) and several machines PostgreSQL (``postgresql+psycopg://...``).

Reproducibility: with one process (``--workers 1``) a config and seed give the same trials every
time. With several workers the order in which trials finish, and so what TPE conditions on, depends
on timing: results are NOT bit-reproducible (``RandomSampler`` draws are, but which worker
draws which one is not).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from data_feeds.file_lock import file_lock

#: Seconds between a running trial's heartbeats.
HEARTBEAT_INTERVAL = 5
#: Seconds without a heartbeat after which a running trial is failed (and retried).
GRACE_PERIOD = 20
#: Times a failed (stale) trial is re-queued.
MAX_RETRY = 3
#: User attribute of a trial holding its in-sample daily returns (:func:`encode_returns`).
RETURNS_ATTR = "is_returns"
#: User attribute marking a trial that was not evaluated because the budget was reached.
SURPLUS_ATTR = "surplus"
#: Pruned trials allowed per configured trial before a study gives up on more.
MAX_PRUNED_PER_TRIAL = 10

NOT_REPRODUCIBLE = (
    "several workers: trials finish in a timing-dependent order, so TPE results are not "
    "bit-reproducible (use --workers 1 for that)"
)


class SurplusTrial(Exception):
    """A trial asked for after the study already had its budget of trials."""


def study_prefix(
    experiment: str, config: dict[str, Any], data_fingerprint: str, code: str = ""
) -> str:
    """The deterministic study-name prefix of a run: ``{experiment}-{12 hex digits}``.

    Parameters
    ----------
    experiment : str
        ``[experiment] name``.
    config : dict
        The effective config (command-line overrides applied) as JSON-able dict; its
        ``tracking`` and ``report`` sections are left out (they do not change any trial).
    data_fingerprint : str
        :meth:`strategies.base.StrategyPlugin.data_fingerprint` of the prepared plugin.
    code : str
        The source version (:func:`experiments.tracking.code_version`): other code, other
        studies.

    Returns
    -------
    str
        Study ``k`` is ``f"{prefix}-fold{k}"``.
    """
    kept = {k: v for k, v in config.items() if k not in ("tracking", "report")}
    blob = json.dumps(
        {"config": kept, "data": data_fingerprint, "code": code}, sort_keys=True, default=str
    )
    return f"{experiment}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def open_storage(
    url: str | None,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
    attempts: int = 5,
) -> BaseStorage | None:
    """An Optuna storage with heartbeats and retry of failed trials, created safely under races.

    Parameters
    ----------
    url : str or None
        SQLAlchemy URL (``sqlite:////abs/results/optuna.db``,
        ``postgresql+psycopg://user@host:5432/optuna``); None gives None (in-memory studies,
        one process only).
    heartbeat_interval, grace_period : int
        Seconds (see the module docstring).
    attempts : int
        Tries when the schema is being created by another process at the same moment.

    Returns
    -------
    optuna.storages.RDBStorage or None

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError
        The database cannot be reached or created after ``attempts`` tries.

    Notes
    -----
    Two processes creating a fresh SQLite file at once race on Optuna's schema
    (``UNIQUE constraint failed: alembic_version``): for SQLite the creation runs under an
    exclusive :func:`data_feeds.file_lock.file_lock` on ``<db>.lock``; for a server database a
    failed creation is retried.
    """
    if url is None:
        return None
    from sqlalchemy.exc import SQLAlchemyError

    sqlite = url.startswith("sqlite:///")
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.1
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                kwargs: dict[str, Any] = {
                    "heartbeat_interval": heartbeat_interval,
                    "grace_period": grace_period,
                    "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                        max_retry=MAX_RETRY
                    ),
                }
                if not sqlite:
                    return RDBStorage(url, **kwargs)
                kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
                db = Path(url.removeprefix("sqlite:///"))
                db.parent.mkdir(parents=True, exist_ok=True)
                with file_lock(db):
                    return RDBStorage(url, **kwargs)
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def encode_returns(returns: pd.Series) -> dict[str, Any]:
    """A daily-returns series as JSON (a trial user attribute, shared by every worker).

    Returns
    -------
    dict
        ``{"tz": str or None, "unit": "ns"/"us"/..., "ns": [int nanoseconds since the epoch,
        UTC], "values": [float, ...]}``; floats round-trip
        exactly through JSON (``repr``), NaN included.
    """
    index = pd.DatetimeIndex(returns.index)
    tz = None if index.tz is None else str(index.tz)
    ns = (index.tz_convert("UTC") if tz else index).as_unit("ns").asi8
    return {
        "tz": tz,
        "unit": index.unit,
        "ns": [int(x) for x in ns],
        "values": [float(x) for x in np.asarray(returns, dtype=float)],
    }


def decode_returns(blob: dict[str, Any]) -> pd.Series:
    """Inverse of :func:`encode_returns` (the index back in its time zone)."""
    index = pd.DatetimeIndex(np.asarray(blob["ns"], dtype="datetime64[ns]"))
    index = index.as_unit(blob.get("unit", "ns"))
    if blob.get("tz"):
        index = index.tz_localize("UTC").tz_convert(blob["tz"])
    return pd.Series(np.asarray(blob["values"], dtype=float), index=index)


def _counts(study: optuna.Study) -> tuple[int, int, int]:
    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
    )
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return complete, running, len(trials) - complete - running


def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's COMPLETE trials, by trial number."""
    return sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number
    )


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    *,
    wait: bool = True,
    on_progress: Callable[[int], None] | None = None,
    poll: float = 0.5,
) -> None:
    """Evaluate trials of ``study`` until it has ``n_trials`` COMPLETE trials (any worker's).

    Parameters
    ----------
    study : optuna.Study
        Created or loaded on a shared storage (or in memory for one process).
    objective : callable
        The trial objective.
    n_trials : int
        The budget of COMPLETE trials.
    wait : bool
        Return only when the study has its ``n_trials`` COMPLETE trials (True, the process that
        goes on to the out-of-sample step), or as soon as no further trial may start because the
        remaining ones run elsewhere (False, a worker moving on to the next fold).
    on_progress : callable, optional
        Called with the study's COMPLETE trial count after each trial and each poll.
    poll : float
        Seconds between checks while other workers' trials run.

    Notes
    -----
    While waiting, stale trials (no heartbeat for the grace period) are failed and re-queued by
    :func:`optuna.storages.fail_stale_trials`, so a killed worker's trial is evaluated again.
    """
    max_pruned = MAX_PRUNED_PER_TRIAL * n_trials

    def guarded(trial: optuna.Trial) -> float:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        ahead = sum(
            t.state == TrialState.COMPLETE
            or (t.state == TrialState.RUNNING and t.number < trial.number)
            for t in trials
        )
        if ahead >= n_trials:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise SurplusTrial(f"trial {trial.number}: the study has its {n_trials} trials")
        return objective(trial)

    def after(st: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(SURPLUS_ATTR):
            st.stop()
        if on_progress is not None:
            on_progress(_counts(st)[0])

    heartbeat = _has_heartbeat(study)
    while True:
        complete, running, pruned = _counts(study)
        if on_progress is not None:
            on_progress(complete)
        if complete >= n_trials or pruned >= max_pruned:
            return
        if complete + running >= n_trials:
            if not wait:
                return
            if heartbeat:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
            time.sleep(poll)
            continue
        study.optimize(
            guarded,
            n_trials=n_trials - complete,
            catch=(SurplusTrial,),
            callbacks=[MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE,)), after],
            n_jobs=1,
        )


def _has_heartbeat(study: optuna.Study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(study._storage))


def worker_command(
    config_path: str | Path,
    *,
    storage: str,
    trials: int | None,
    seed: int | None,
    index: int,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
    engine: str | None = None,
) -> list[str]:
    """The ``volsuite worker`` command line of local worker ``index`` (``python -m
    experiments.cli worker ...``, this interpreter)."""
    cmd = [sys.executable, "-m", "experiments.cli", "worker", str(config_path)]
    cmd += ["--storage", storage, "--index", str(index), "--quiet"]
    cmd += ["--heartbeat-interval", str(heartbeat_interval), "--grace-period", str(grace_period)]
    if trials is not None:
        cmd += ["--trials", str(trials)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if engine is not None:
        cmd += ["--engine", engine]
    return cmd


def start_workers(commands: Sequence[list[str]], log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start local worker processes (their output to ``log_dir/worker-<i>.log``).

    Parameters
    ----------
    commands : sequence of list of str
        One command line each (:func:`worker_command`).
    log_dir : pathlib.Path
        Folder of the workers' logs (created).

    Returns
    -------
    list of subprocess.Popen
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    env = {**os.environ, "MPLBACKEND": "Agg"}
    for i, cmd in enumerate(commands, start=1):
        with open(log_dir / f"worker-{i}.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            procs.append(proc)
    return procs


def stop_workers(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> list[int]:
    """Wait for local workers to exit (``timeout`` seconds), then terminate the rest.

    Returns
    -------
    list of int
        Exit codes (negative: ended by a signal).
    """
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return [int(p.returncode) for p in procs]
