"""MLflow tracking: one parent run per experiment run, one child run per walk-forward fold.

The default store is SQLite under ``results/`` (``sqlite:///results/mlflow.db``) with artifacts in
``results/mlflow-artifacts/``; browse it with ``mlflow ui --backend-store-uri
sqlite:///results/mlflow.db``. Several machines log into one ``mlflow server`` backed by
PostgreSQL (``volsuite run --tracking-uri http://host:5000``, docs/scaling.md).
Broker credentials never reach MLflow: only the validated config
(which has no secret fields) and computed results are logged.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from data_feeds.file_lock import file_lock
from experiments.walkforward import WalkForwardResult


def git_commit(cwd: Path | None = None) -> str:
    """``git rev-parse HEAD`` (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_version(root: Path | None = None) -> str:
    """The source the trials run: ``git rev-parse HEAD``, plus ``-dirty-<12 hex>`` (sha256 of
    ``git diff HEAD``, tracked files) when the tree has uncommitted changes; ``unknown`` outside
    a git checkout.

    Parameters
    ----------
    root : pathlib.Path, optional
        A folder of the checkout (default: the one holding this module).

    Returns
    -------
    str
        Part of the study names (:func:`experiments.workers.study_prefix`): changed code gets
        new studies instead of reusing trials the old code scored.
    """
    import hashlib

    root = root or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD"], cwd=root, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + (f"-dirty-{hashlib.sha256(diff).hexdigest()[:12]}" if diff.strip() else "")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = (
            value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=str)
        )


def numeric_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics dict, keys prefixed (MLflow takes floats only; a value
    that could not be computed, None or NaN, is left out rather than logged as 0)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(float(v)):
            out[f"{prefix}{k}"] = float(v)
    return out


def metric_tags(metrics: dict[str, Any]) -> dict[str, str]:
    """The text metrics as MLflow tags (e.g. ``sample``: "insufficient sample (3 trades)")."""
    return {k: str(v) for k, v in metrics.items() if isinstance(v, str)}


def log_run(
    *,
    tracking_uri: str,
    artifact_root: Path,
    experiment: str,
    run_name: str,
    config: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    result: WalkForwardResult,
    run_dir: Path,
) -> str:
    """Log a finished walk-forward run to MLflow.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking URI: ``sqlite:////abs/results/mlflow.db`` (written under an exclusive
        lock on ``mlflow.db.lock``, so concurrent runs never race creating it),
        ``postgresql+psycopg://...`` (the store directly) or ``http://host:5000`` (an ``mlflow
        server``, which then chooses where artifacts go).
    artifact_root : pathlib.Path
        Folder for artifacts of a newly created MLflow experiment (local stores).
    experiment : str
        MLflow experiment name (the config's ``experiment.name``).
    run_name : str
        Parent run name (the run id of the results folder).
    config : dict
        Validated config as a dict (logged as flattened params).
    metrics : dict
        Out-of-sample summary metrics.
    tags : dict
        Tags (git commit, data fingerprint, market source, config path).
    result : WalkForwardResult
        Folds (child runs get best params and in/out-of-sample metrics).
    run_dir : pathlib.Path
        Results folder whose files are logged as artifacts.

    Returns
    -------
    str
        The parent MLflow run id.
    """
    import mlflow

    for name in ("alembic", "mlflow"):  # after the import: mlflow sets its own levels on import
        logging.getLogger(name).setLevel(logging.WARNING)

    lock: AbstractContextManager[None] = nullcontext()
    if tracking_uri.startswith("sqlite:///"):
        # one writer at a time on a SQLite store: two runs creating a fresh mlflow.db (or its
        # experiment) at once would race on the schema and on the experiment's unique name
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = file_lock(db)
    with lock:
        mlflow.set_tracking_uri(tracking_uri)
        client = mlflow.MlflowClient()
        remote = tracking_uri.startswith(("http://", "https://"))
        exp_id = experiment_id(client, experiment, None if remote else artifact_root)
        return _log(mlflow, exp_id, run_name, config, metrics, tags, result, run_dir)


def experiment_id(client: Any, experiment: str, artifact_root: Path | None) -> str:
    """The id of MLflow experiment ``experiment``, created if missing (a concurrent creation by
    another process is read back, not an error).

    Parameters
    ----------
    client : mlflow.MlflowClient
    experiment : str
        Experiment name.
    artifact_root : pathlib.Path or None
        Local folder for a new experiment's artifacts; None lets the tracking server choose
        (``mlflow server --artifacts-destination``).

    Returns
    -------
    str
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if artifact_root is not None:
        artifact_root.mkdir(parents=True, exist_ok=True)
        location = (artifact_root / experiment).as_uri()
    try:
        return str(client.create_experiment(experiment, artifact_location=location))
    except MlflowException:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return str(found.experiment_id)


def _log(
    mlflow: Any,
    exp_id: str,
    run_name: str,
    config: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    result: WalkForwardResult,
    run_dir: Path,
) -> str:
    params: dict[str, Any] = {}
    _flatten("", config, params)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as parent:
        mlflow.set_tags({**tags, **metric_tags(metrics)})
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        mlflow.log_metrics(numeric_metrics(metrics, prefix="oos_"))
        for fr in result.folds:
            with mlflow.start_run(
                experiment_id=exp_id, run_name=f"{run_name}-fold{fr.fold.index}", nested=True
            ):
                mlflow.set_tags({**tags, "fold": str(fr.fold.index), "study": fr.study_name})
                mlflow.log_params(
                    {
                        **{f"best.{k}": v for k, v in fr.best_params.items()},
                        "train_start": fr.fold.train_start.date().isoformat(),
                        "train_end": fr.fold.train_end.date().isoformat(),
                        "test_start": fr.fold.test_start.date().isoformat(),
                        "test_end": fr.fold.test_end.date().isoformat(),
                        "n_trials": fr.n_trials,
                        "n_pruned": fr.n_pruned,
                    }
                )
                mlflow.log_metrics(
                    {
                        **numeric_metrics(fr.in_sample, prefix="is_"),
                        **numeric_metrics(fr.oos_metrics, prefix="oos_"),
                        **numeric_metrics({"best_objective": fr.best_value}),
                    }
                )
        mlflow.log_artifacts(str(run_dir))
        return parent.info.run_id
