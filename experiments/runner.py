"""The main job: config -> data -> indicators -> walk-forward backtests -> MLflow + tearsheet.

Nothing is written under ``results/`` until the config and every data source have been validated;
the run folder is assembled in a temporary folder and renamed into place at the end, so a failed
run leaves no half-written folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from data_feeds import load_ohlc
from experiments.config import ChainSourceSpec, ExperimentConfig, load_config
from experiments.metrics import summary
from experiments.tearsheet import write_tearsheet
from experiments.tracking import git_commit, log_run
from experiments.walkforward import WalkForwardResult, make_folds, run_walkforward
from strategies import get_strategy
from strategies.base import StrategyPlugin
from strategies.risk import write_run_attribution


@dataclass
class RunOutcome:
    """What ``volsuite run`` produced."""

    config: ExperimentConfig
    run_id: str
    run_dir: Path
    mlflow_run_id: str | None
    metrics: dict[str, float]
    result: WalkForwardResult
    load_reports: list[str]
    market_source: str


def load_data(config: ExperimentConfig) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Load and validate every ``[data]`` source (no file is written).

    Returns
    -------
    data : dict
        Name -> validated frame.
    reports : list of str
        One summary line per source (rows kept, dropped per reason).
    """
    data, reports = {}, []
    for name, spec in config.data.sources().items():
        frame = load_ohlc(
            spec.source,
            root=spec.root,
            start=config.data.start,
            end=config.data.end,
            on_invalid=spec.on_invalid,
        )
        data[name] = frame
        reports.append(frame.attrs["load_report"].summary())
    if config.data.legs:
        from data_feeds.spread_feed import load_pair_leg

        for name, leg in config.data.legs.items():
            frame = load_pair_leg(
                leg.source,
                root=leg.root,
                start=config.data.start,
                end=config.data.end,
                on_invalid=leg.on_invalid,
                volume_scale=leg.volume_scale,
            )
            data[f"leg_{name}"] = frame
            reports.append(frame.attrs["load_report"].summary())
    if config.data.chains is not None:
        data["chains"], chain_reports = open_chain_store(config.data.chains)
        reports.extend(chain_reports)
    return data, reports


def open_chain_store(spec: ChainSourceSpec) -> tuple[Any, list[str]]:
    """Open the ``[data.chains]`` store, ingesting the listed files first (idempotent).

    Returns
    -------
    store : data_feeds.chain_store.ChainStore
    reports : list of str
        One line per ingested file (rows added / unchanged / quarantined).
    """
    from data_feeds.chain_ingest import load_ingest_config
    from data_feeds.chain_store import ChainStore

    ingest_config = load_ingest_config(spec.ingest_config) if spec.ingest_config else None
    Path(spec.db).parent.mkdir(parents=True, exist_ok=True)
    store = ChainStore(spec.db)
    reports = []
    for path in spec.ingest:
        for report in store.ingest_path(path, spec.format, config=ingest_config):
            reports.append(report.summary())
    return store, reports


def build_plugin(config: ExperimentConfig, data: dict[str, pd.DataFrame]) -> StrategyPlugin:
    """Instantiate and prepare the configured strategy plugin (all indicators computed here).

    The plugin gets ``[strategy.params]`` as its fixed parameters and, apart from them, the
    config's costs (``config.costs``; its :class:`brokers.OptionsBroker` params too) and risk
    limits (``config.risk``).
    """
    cls = get_strategy(config.strategy.name)
    plugin = cls(
        fixed=config.strategy.params,
        broker=config.costs.options_broker_params(),
        costs=config.costs,
        risk=config.risk,
    )
    missing = [k for k in plugin.data_needed() if k not in data]
    if missing:
        from experiments.config import ConfigError

        raise ConfigError(f"[data] is missing {missing} needed by strategy {cls.name}")
    grid = {k: dim.values() for k, dim in config.strategy.search_space.items()}
    plugin.prepare(data, grid)
    return plugin


def run_experiment(
    config_path: str | Path,
    *,
    trials: int | None = None,
    seed: int | None = None,
    storage: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_trial: Callable[[int, int], None] | None = None,
    track: bool = True,
) -> RunOutcome:
    """Run an experiment config end to end.

    Parameters
    ----------
    config_path : str or pathlib.Path
        TOML experiment config.
    trials, seed : int, optional
        Override ``[optimize] trials`` / ``seed``.
    storage : str, optional
        Optuna storage URL (default ``sqlite:///<results>/optuna.db``).
    on_start : callable, optional
        Called with the total number of trials (folds x trials) before optimizing.
    on_trial : callable, optional
        Called ``(fold, trial)`` after each trial.
    track : bool
        Log to MLflow (default True).

    Returns
    -------
    RunOutcome

    Raises
    ------
    ConfigError, DataSourceError, DataValidationError
        Before anything is written to ``results/``.
    """
    config_path = Path(config_path)
    config = load_config(config_path)
    if trials is not None:
        config.optimize.trials = trials
    if seed is not None:
        config.optimize.seed = seed
    data, reports = load_data(config)
    plugin = build_plugin(config, data)
    reports.extend(getattr(plugin, "reports", []))
    folds = make_folds(plugin.trading_days(), config.walkforward)
    if on_start:
        on_start(len(folds) * config.optimize.trials)

    results_dir = Path(config.tracking.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256(f"{stamp}{config_path.resolve()}".encode()).hexdigest()[:6]
    run_id = f"{stamp}-{digest}"
    storage_url = (
        storage
        or config.tracking.optuna_storage
        or f"sqlite:///{(results_dir / 'optuna.db').resolve()}"
    )
    wf = run_walkforward(
        plugin,
        fixed=config.strategy.params,
        space=config.strategy.search_space,
        wf=config.walkforward,
        opt=config.optimize,
        cash=config.experiment.initial_cash,
        storage=storage_url,
        study_prefix=f"{config.experiment.name}-{run_id}",
        on_trial=on_trial,
        folds=folds,
    )
    metrics = summary(wf.oos_returns, wf.daily_log)
    market_source = str(wf.info.get("market_source", "n/a"))
    exp_dir = results_dir / config.experiment.name
    exp_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=exp_dir))
    try:
        _write_run_files(tmp, config_path, config, plugin, wf, metrics, market_source, reports)
        run_dir = exp_dir / run_id
        tmp.rename(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mlflow_id = None
    if track:
        uri = config.tracking.mlflow_uri or f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"
        tags = {
            "git_commit": git_commit(Path.cwd()),
            "data_fingerprint": plugin.data_fingerprint(),
            "market_source": market_source,
            "strategy": config.strategy.name,
            "config_path": str(config_path),
            "results_dir": str(run_dir),
        }
        mlflow_id = log_run(
            tracking_uri=uri,
            artifact_root=(results_dir / "mlflow-artifacts").resolve(),
            experiment=config.experiment.name,
            run_name=run_id,
            config=config.model_dump(mode="json"),
            metrics=metrics,
            tags=tags,
            result=wf,
            run_dir=run_dir,
        )
        summary_path = run_dir / "summary.json"
        payload = json.loads(summary_path.read_text())
        payload["mlflow_run_id"] = mlflow_id
        summary_path.write_text(json.dumps(payload, indent=2))
    return RunOutcome(config, run_id, run_dir, mlflow_id, metrics, wf, reports, market_source)


def _write_run_files(
    folder: Path,
    config_path: Path,
    config: ExperimentConfig,
    plugin: StrategyPlugin,
    wf: WalkForwardResult,
    metrics: dict[str, float],
    market_source: str,
    reports: list[str],
) -> None:
    shutil.copyfile(config_path, folder / "config.toml")
    metrics.update(plugin.write_artifacts(folder))
    wf.oos_returns.rename("oos_return").to_csv(folder / "oos_returns.csv", index_label="date")
    wf.trades.to_csv(folder / "trades.csv", index=False)
    wf.daily_log.to_csv(folder / "daily_log.csv", index=False)
    rows: list[dict[str, Any]] = []
    for fr in wf.folds:
        rows.append(
            {
                "fold": fr.fold.index,
                "train_start": fr.fold.train_start.date(),
                "train_end": fr.fold.train_end.date(),
                "test_start": fr.fold.test_start.date(),
                "test_end": fr.fold.test_end.date(),
                "best_objective": fr.best_value,
                "n_trials": fr.n_trials,
                "n_pruned": fr.n_pruned,
                **{f"best.{k}": v for k, v in fr.best_params.items()},
                **{f"is_{k}": v for k, v in fr.in_sample.items()},
                **{f"oos_{k}": v for k, v in fr.oos_metrics.items()},
            }
        )
    pd.DataFrame(rows).to_csv(folder / "folds.csv", index=False)
    title = (
        f"{config.experiment.name}: {config.strategy.name}, walk-forward out-of-sample "
        f"({len(wf.folds)} folds) — market data: {market_source}"
    )
    write_tearsheet(wf.oos_returns, plugin.benchmark(), folder / "tearsheet.html", title)
    metrics.update(write_run_attribution([fr.out_of_sample for fr in wf.folds], folder))
    metrics.update(reported_costs(wf))
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "experiment": config.experiment.name,
                "strategy": config.strategy.name,
                "market_source": market_source,
                "oos_start": str(wf.oos_returns.index[0].date()),
                "oos_end": str(wf.oos_returns.index[-1].date()),
                "metrics": metrics,
                "data": reports,
                "seed": config.optimize.seed,
                "trials": config.optimize.trials,
            },
            indent=2,
        )
    )


#: Cost columns of :meth:`strategies.hedging.DeltaHedger.pnl_frame` summed into the run summary.
COST_COLUMNS = ("option_commission", "option_slippage", "hedge_commission", "hedge_spread", "costs")


def reported_costs(wf: WalkForwardResult) -> dict[str, float]:
    """Out-of-sample cost totals a plugin reports in its backtest ``info["pnl_breakdown"]``.

    The share fills of ``trades.csv`` carry the fill price but not the mid of a delta-hedge trade,
    so the hedge half spreads are only known to the plugin (:class:`strategies.hedging.DeltaHedger`
    per-bar breakdown, e.g. ``skew_dislocation``); ``volsuite summary`` reads them from here.

    Parameters
    ----------
    wf : WalkForwardResult
        The walk-forward result; each fold's out-of-sample ``info`` may hold ``pnl_breakdown``
        (a :meth:`~strategies.hedging.DeltaHedger.pnl_frame`).

    Returns
    -------
    dict
        ``oos_cost.<column>`` -> dollars summed over the folds' test windows, as charged (<= 0),
        for the :data:`COST_COLUMNS` present; empty when no fold reports a breakdown.
    """
    frames = [fr.out_of_sample.info.get("pnl_breakdown") for fr in wf.folds]
    frames = [f for f in frames if isinstance(f, pd.DataFrame)]
    if not frames:
        return {}
    out: dict[str, float] = {}
    for col in COST_COLUMNS:
        if any(col in f for f in frames):
            out[f"oos_cost.{col}"] = float(sum(f[col].sum() for f in frames if col in f))
    return out
