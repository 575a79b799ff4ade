"""MLflow tracking: one parent run per experiment run, one child run per walk-forward fold.

The default store is SQLite under ``results/`` (``sqlite:///results/mlflow.db``) with artifacts in
``results/mlflow-artifacts/``; browse it with ``mlflow ui --backend-store-uri
sqlite:///results/mlflow.db``. Broker credentials never reach MLflow: only the validated config
(which has no secret fields) and computed results are logged.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from pathlib import Path
from typing import Any

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
        MLflow tracking URI (e.g. ``sqlite:////abs/results/mlflow.db``).
    artifact_root : pathlib.Path
        Folder for artifacts of a newly created MLflow experiment.
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

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        artifact_root.mkdir(parents=True, exist_ok=True)
        exp_id = client.create_experiment(
            experiment, artifact_location=(artifact_root / experiment).as_uri()
        )
    else:
        exp_id = found.experiment_id
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
