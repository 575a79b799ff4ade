"""The main job: config -> data -> indicators -> walk-forward backtests -> MLflow + tearsheet.

Nothing is written under ``results/`` until the config and every data source have been validated;
the run folder is assembled in a temporary folder and renamed into place at the end, so a failed
run leaves no half-written folder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from data_feeds import load_ohlc
from experiments.config import (
    ChainSourceSpec,
    ConfigError,
    ExperimentConfig,
    OptimizeConfig,
    load_config,
)
from experiments.metrics import fold_pbo, run_metrics
from experiments.summary import write_atomic
from experiments.tearsheet import write_tearsheet
from experiments.tracking import code_version, git_commit, log_run
from experiments.walkforward import WalkForwardResult, make_folds, run_walkforward
from experiments.workers import (
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    NOT_REPRODUCIBLE,
    open_storage,
    start_workers,
    stop_workers,
    study_prefix,
    worker_command,
)
from strategies import get_strategy
from strategies.base import StrategyPlugin
from strategies.book import closed_trades_csv
from strategies.risk import write_run_attribution

log = logging.getLogger(__name__)


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


def load_data(
    config: ExperimentConfig, *, on_step: Callable[[str], None] | None = None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Load and validate every ``[data]`` source (no file is written but a chain store ingest).

    Parameters
    ----------
    config : ExperimentConfig
    on_step : callable, optional
        Called with a one-line status per source (and the chain store's ingest steps).

    Returns
    -------
    data : dict
        Name -> validated frame; ``vvix`` a series (``[data.vvix]``); ``option_quotes`` and
        ``index_minute`` the paths of ``[data.option_quotes]`` / ``[data.index_minute]``
        (read by the strategy).

    Raises
    ------
    ConfigError
        A ``[data.option_quotes]`` / ``[data.index_minute]`` file does not exist.
    reports : list of str
        One summary line per source (rows kept, dropped per reason).
    """
    say = on_step or (lambda _msg: None)
    data, reports = {}, []
    for name, spec in config.data.sources().items():
        say(f"loading {name} ({spec.source})")
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
            say(f"loading leg {name} ({leg.source})")
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
        say(f"opening chain store {config.data.chains.db}")
        data["chains"], chain_reports = open_chain_store(config.data.chains, progress=say)
        reports.extend(chain_reports)
    for name in ("option_quotes", "index_minute"):  # read by the strategy's own loader
        spec = getattr(config.data, name)
        if spec is not None:
            if not Path(spec.source).is_file():
                raise ConfigError(f"data.{name}.source: file not found: {spec.source}")
            data[name] = Path(spec.source)
    if config.data.vvix is not None:
        from data_feeds import load_vvix

        data["vvix"], vreport = load_vvix(config.data.vvix.source)
        reports.append(
            f"VVIX {vreport.source}: kept {vreport.n_kept} of {vreport.n_read} rows "
            f"({vreport.n_before_start} before the start date dropped)"
        )
    return data, reports


def open_chain_store(
    spec: ChainSourceSpec, *, progress: Callable[[str], None] | None = None
) -> tuple[Any, list[str]]:
    """Open the ``[data.chains]`` store read-only, ingesting the listed files first when needed.

    The store is written only when a listed file is not yet in it (or was replaced since,
    :meth:`data_feeds.chain_store.ChainStore.pending`): then this process takes the store's
    exclusive lock, waiting for other readers to close it (``progress`` says so), ingests those
    files (one transaction each) and reopens read-only, so runs of chain configs, ``chains info``,
    surface reads and paper replays share the file.

    Parameters
    ----------
    spec : ChainSourceSpec
        The config's ``[data.chains]``.
    progress : callable, optional
        Called with a one-line status (waiting for the lock, ingesting a file).

    Returns
    -------
    store : data_feeds.chain_store.ChainStore
        Open read-only.
    reports : list of str
        One line per ingested file (rows added / unchanged / quarantined).

    Raises
    ------
    DataSourceError, DataValidationError
        A listed file is missing or invalid (as ``volsuite ingest chains``).
    """
    from data_feeds.chain_ingest import discover_files, load_ingest_config
    from data_feeds.chain_store import ChainStore

    say = progress or (lambda _msg: None)
    ingest_config = load_ingest_config(spec.ingest_config) if spec.ingest_config else None
    db = Path(spec.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    files = discover_files(spec.ingest, spec.format, ingest_config)[0] if spec.ingest else []

    def waiting_ingest() -> None:
        say(f"waiting for an ingest into {db} to finish")

    if db.is_file() and files:
        with ChainStore(db, read_only=True, on_wait=waiting_ingest) as ro:
            files = ro.pending(files, spec.format, ingest_config)
    reports = []
    if files or not db.is_file():
        with ChainStore(
            db, wait=None, on_wait=lambda: say(f"waiting for readers of {db} to close it")
        ) as store:
            for path in store.pending(files, spec.format, ingest_config):
                say(f"ingesting {Path(path).name} into {db}")
                report = store.ingest(path, spec.format, config=ingest_config)
                reports.append(report.summary())
    store = ChainStore(db, read_only=True, on_wait=waiting_ingest)
    return store, reports


def build_plugin(
    config: ExperimentConfig,
    data: dict[str, pd.DataFrame],
    *,
    on_step: Callable[[str], None] | None = None,
) -> StrategyPlugin:
    """Instantiate and prepare the configured strategy plugin (all indicators computed here).

    The plugin gets ``[strategy.params]`` as its fixed parameters and, apart from them, the
    config's costs (``config.costs``; its :class:`brokers.OptionsBroker` params too) and risk
    limits (``config.risk``). ``on_step`` receives the steps the plugin reports while preparing
    (:meth:`strategies.base.StrategyPlugin.progress`, e.g. XGBoost folds).
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
        raise ConfigError(f"[data] is missing {missing} needed by strategy {cls.name}")
    grid = {k: dim.values() for k, dim in config.strategy.search_space.items()}
    if on_step is not None:
        plugin.on_progress = on_step
    plugin.prepare(data, grid)
    return plugin


def run_experiment(
    config_path: str | Path,
    *,
    trials: int | None = None,
    seed: int | None = None,
    storage: str | None = None,
    engine: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_trial: Callable[[int, int], None] | None = None,
    track: bool = True,
    workers: int = 1,
    tracking_uri: str | None = None,
    on_step: Callable[[str], None] | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> RunOutcome:
    """Run an experiment config end to end.

    Parameters
    ----------
    config_path : str or pathlib.Path
        TOML experiment config.
    trials, seed : int, optional
        Override ``[optimize] trials`` / ``seed``.
    engine : {"backtrader", "vectorbt"}, optional
        Override ``[optimize] engine`` (in-sample trial scoring, docs/engines.md).
    storage : str, optional
        Optuna storage URL (default ``[tracking] optuna_storage``, else
        ``sqlite:///<results>/optuna.db``). Studies are named
        ``{experiment}-{config hash}-fold{k}`` (:func:`experiments.workers.study_prefix`), so
        ``volsuite worker`` processes on the same storage join them.
    on_start : callable, optional
        Called with the total number of trials (folds x trials) before optimizing.
    on_trial : callable, optional
        Called ``(fold, completed)`` with the fold study's COMPLETE trials (all workers).
    track : bool
        Log to MLflow (default True).
    workers : int
        Processes evaluating trials: this one and ``workers - 1`` local ``volsuite worker``
        processes started at once (they load and prepare the data beside this process). More
        than one is not bit-reproducible with TPE (:data:`experiments.workers.NOT_REPRODUCIBLE`).
        A worker that exits with an error adds a line to the outcome's ``load_reports`` (the
        studies are complete regardless: this process waits for them).
    tracking_uri : str, optional
        MLflow tracking URI (default ``[tracking] mlflow_uri``, else
        ``sqlite:///<results>/mlflow.db``); e.g. ``http://host:5000`` of an ``mlflow server``.
    on_step : callable, optional
        Called with a one-line status at each step (loading data, ingest, prepare steps the
        plugin reports, tearsheet, MLflow).
    heartbeat_interval, grace_period : int
        Seconds; see :mod:`experiments.workers`.

    Returns
    -------
    RunOutcome

    Raises
    ------
    ConfigError, DataSourceError, DataValidationError
        Before anything is written to ``results/`` (``workers < 1`` too).
    """
    say = on_step or (lambda _msg: None)
    config_path = Path(config_path)
    config = load_config(config_path)
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1 (got {workers})")
    if trials is not None or seed is not None or engine is not None:
        config.optimize = checked_overrides(
            config_path, config, trials=trials, seed=seed, engine=engine
        )
    results_dir = Path(config.tracking.results_dir)
    storage_url = (
        storage
        or config.tracking.optuna_storage
        or f"sqlite:///{(results_dir / 'optuna.db').resolve()}"
    )
    procs: list[Any] = []
    log_dir = Path(tempfile.mkdtemp(prefix="volsuite-workers-")) if workers > 1 else None
    if log_dir is not None:
        say(f"starting {workers - 1} worker process(es); {NOT_REPRODUCIBLE}")
        commands = [
            worker_command(
                config_path,
                storage=storage_url,
                trials=trials,
                seed=seed,
                engine=engine,
                index=i,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )
            for i in range(1, workers)
        ]
        procs = start_workers(commands, log_dir)
    ok = False
    try:
        say("loading data")
        data, reports = load_data(config, on_step=say)
        say(f"preparing {config.strategy.name}")
        plugin = build_plugin(config, data, on_step=say)
        reports.extend(getattr(plugin, "reports", []))
        folds = make_folds(plugin.trading_days(), config.walkforward)
        if on_start:
            on_start(len(folds) * config.optimize.trials)
        results_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(3)}"  # unique for runs started in the same second
        prefix = study_prefix(
            config.experiment.name,
            config.model_dump(mode="json"),
            plugin.data_fingerprint(),
            code_version(),
        )
        say("optimizing")
        wf = run_walkforward(
            plugin,
            fixed=config.strategy.params,
            space=config.strategy.search_space,
            wf=config.walkforward,
            opt=config.optimize,
            cash=config.experiment.initial_cash,
            storage=open_storage(
                storage_url, heartbeat_interval=heartbeat_interval, grace_period=grace_period
            ),
            study_prefix=prefix,
            on_trial=on_trial,
            folds=folds,
        )
        assert wf is not None
        ok = True
    finally:
        if procs:
            codes = stop_workers(procs, timeout=60.0 if ok else 0.0)
            for i, code in enumerate(codes, start=1):
                if ok and code != 0 and log_dir is not None:
                    # the studies are complete (this process waited for them): a note, not a failure
                    note = f"worker {i} exited with status {code}: "
                    note += _last_line(log_dir / f"worker-{i}.log")
                    log.warning("%s", note)
                    reports.append(note)
        if log_dir is not None:
            shutil.rmtree(log_dir, ignore_errors=True)
    say("computing metrics")
    metrics, pbos = walkforward_metrics(config, wf)
    market_source = str(wf.info.get("market_source", "n/a"))
    exp_dir = results_dir / config.experiment.name
    exp_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=exp_dir))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a run folder is as readable as any folder
    say("writing tearsheet and run files")
    try:
        _write_run_files(
            tmp,
            config_path,
            config,
            plugin,
            wf,
            metrics,
            market_source,
            reports,
            pbos,
            status=STATUS_MLFLOW_PENDING if track else STATUS_COMPLETE,
            study_prefix=prefix,
            workers=workers,
        )
        run_dir = exp_dir / run_id
        tmp.rename(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mlflow_id = None
    if track:
        say("logging to MLflow")
        uri = (
            tracking_uri
            or config.tracking.mlflow_uri
            or f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"
        )
        tags = {
            "git_commit": git_commit(Path.cwd()),
            "data_fingerprint": plugin.data_fingerprint(),
            "market_source": market_source,
            "strategy": config.strategy.name,
            "config_path": str(config_path),
            "results_dir": str(run_dir),
            "study_prefix": prefix,
            "workers": str(workers),
        }
        try:
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
        except BaseException as exc:
            why = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
            why = why.splitlines()[0]
            mark_status(run_dir, f"incomplete: MLflow logging did not finish ({why})")
            raise
        mark_status(run_dir, STATUS_COMPLETE, mlflow_run_id=mlflow_id)
    write_atomic(run_dir / COMPLETE_MARKER, dt.datetime.now(dt.UTC).isoformat() + "\n")
    return RunOutcome(config, run_id, run_dir, mlflow_id, metrics, wf, reports, market_source)


#: ``summary.json`` ``status`` of a run folder whose every output, MLflow included, is written.
STATUS_COMPLETE = "complete"
#: ``summary.json`` ``status`` while MLflow logging runs (left there if the process is killed).
STATUS_MLFLOW_PENDING = (
    "incomplete: MLflow logging not finished (if no volsuite process is writing this run, it "
    "was interrupted)"
)
#: File written last into a run folder: present only when the run is complete.
COMPLETE_MARKER = "COMPLETE"


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def mark_status(run_dir: Path, status: str, **fields: Any) -> None:
    """Set ``status`` (and ``fields``) in a run folder's ``summary.json`` (atomic rewrite)."""
    path = run_dir / "summary.json"
    payload = json.loads(path.read_text())
    payload.update(fields)
    payload["status"] = status
    write_atomic(path, json.dumps(payload, indent=2))


def run_worker(
    config_path: str | Path,
    *,
    storage: str,
    trials: int | None = None,
    seed: int | None = None,
    engine: str | None = None,
    index: int | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
    on_step: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_trial: Callable[[int, int], None] | None = None,
) -> int:
    """Join the studies of a config as a worker: evaluate trials of every fold, write nothing else.

    Parameters
    ----------
    config_path : str or pathlib.Path
        The same config (and ``trials``/``seed`` overrides) as the ``volsuite run`` it helps;
        the data must be the same too (the study names hash the config and data fingerprint).
    storage : str
        Optuna storage URL shared with the run (``postgresql+psycopg://...`` across machines).
    trials, seed : int, optional
        As ``volsuite run``.
    engine : {"backtrader", "vectorbt"}, optional
        As ``volsuite run --engine`` (part of the study names: it must match the run's).
    index : int or None
        Worker index (sampler seeds, see :func:`experiments.walkforward.run_walkforward`);
        None seeds from the operating system.
    heartbeat_interval, grace_period : int
        Seconds; must match the run's.
    on_step, on_start, on_trial : callable, optional
        Progress (as :func:`run_experiment`).

    Returns
    -------
    int
        The number of folds whose studies this worker visited.
    """
    say = on_step or (lambda _msg: None)
    config_path = Path(config_path)
    config = load_config(config_path)
    if trials is not None or seed is not None or engine is not None:
        config.optimize = checked_overrides(
            config_path, config, trials=trials, seed=seed, engine=engine
        )
    say("loading data")
    data, _ = load_data(config, on_step=say)
    say(f"preparing {config.strategy.name}")
    plugin = build_plugin(config, data, on_step=say)
    folds = make_folds(plugin.trading_days(), config.walkforward)
    prefix = study_prefix(
        config.experiment.name,
        config.model_dump(mode="json"),
        plugin.data_fingerprint(),
        code_version(),
    )
    say(f"joining studies {prefix}-fold0..{len(folds) - 1}")
    if on_start:
        on_start(len(folds) * config.optimize.trials)
    run_walkforward(
        plugin,
        fixed=config.strategy.params,
        space=config.strategy.search_space,
        wf=config.walkforward,
        opt=config.optimize,
        cash=config.experiment.initial_cash,
        storage=open_storage(
            storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period
        ),
        study_prefix=prefix,
        on_trial=on_trial,
        folds=folds,
        worker=index,
        optimize_only=True,
    )
    return len(folds)
def walkforward_metrics(
    config: ExperimentConfig, wf: WalkForwardResult
) -> tuple[dict[str, Any], list[tuple[float | None, str]]]:
    """Every reported number of a walk-forward, once (:func:`experiments.metrics.run_metrics`).

    Parameters
    ----------
    config : ExperimentConfig
        Its ``[report]`` thresholds of an insufficient sample.
    wf : WalkForwardResult
        The walk-forward (out-of-sample returns, trades, every trial's in-sample returns).

    Returns
    -------
    metrics : dict
        :func:`experiments.metrics.run_metrics` output (Sharpe and its interval, DSR, PBO, MinBTL
        in years, OOS/IS ratio, trades, costs in dollars, the sample note).
    pbos : list of (float or None, str)
        Per fold, the PBO by CSCV and its method note (:func:`experiments.metrics.fold_pbo`).
    """
    pbos = [fold_pbo(fr.trial_returns) for fr in wf.folds]
    metrics = run_metrics(
        wf.oos_returns,
        initial_cash=wf.initial_cash,
        final_equity=wf.final_equity,
        trades=wf.trades,
        trial_sharpes=wf.trial_sharpes(),
        fold_pbos=[p for p, _ in pbos],
        is_sharpes=[fr.in_sample.get("sharpe", float("nan")) for fr in wf.folds],
        min_trades=config.report.min_trades,
        min_days=config.report.min_days,
        costs=reported_costs(wf),
    )
    return metrics, pbos


def write_books(folder: Path, wf: WalkForwardResult) -> None:
    """Write the run's books: ``oos_returns.csv``, ``trades.csv``, ``closed_trades.csv`` (a
    strategy with a trade book), ``daily_log.csv`` and ``equity.csv`` (dollars; the byte layout
    ``volsuite audit`` compares between runs)."""
    wf.oos_returns.rename("oos_return").to_csv(folder / "oos_returns.csv", index_label="date")
    wf.trades.to_csv(folder / "trades.csv", index=False)
    closed = closed_trades_csv(
        [fr.out_of_sample for fr in wf.folds], [fr.fold.index for fr in wf.folds]
    )
    if closed is not None:  # strategies with a strategies.book.TradeBook
        closed.to_csv(folder / "closed_trades.csv", index=False)
    wf.daily_log.to_csv(folder / "daily_log.csv", index=False)
    equity = wf.equity.copy()
    equity["date"] = pd.DatetimeIndex(equity["date"]).date
    equity.to_csv(folder / "equity.csv", index=False, float_format="%.6f")


def checked_overrides(
    config_path: Path,
    config: ExperimentConfig,
    *,
    trials: int | None,
    seed: int | None,
    engine: str | None = None,
) -> OptimizeConfig:
    """``[optimize]`` with the command line's ``--trials`` / ``--seed`` applied and validated.

    Raises
    ------
    ConfigError
        One line naming the option: ``--trials`` below 1 or above the config limit, a negative
        ``--seed``.
    """
    updates: dict[str, Any] = {}
    if trials is not None:
        updates["trials"] = trials
    if seed is not None:
        if seed < 0:
            raise ConfigError(f"{config_path}: --seed: must be >= 0 (got {seed})")
        updates["seed"] = seed
    if engine is not None:
        updates["engine"] = engine
    try:
        return OptimizeConfig.model_validate({**config.optimize.model_dump(), **updates})
    except ValidationError as exc:
        err = exc.errors()[0]
        option = "--" + str(err["loc"][0]) if err["loc"] else "--trials"
        raise ConfigError(
            f"{config_path}: {option}: {err['msg']} (got {err.get('input')!r})"
        ) from None


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def benchmark_name(config: ExperimentConfig, plugin: StrategyPlugin) -> str:
    """Label of the tearsheet benchmark: the plugin's ``benchmark_label`` if it has one, else
    ``"<root> buy-and-hold"`` of the ``[data.underlying]`` source (its ``root``, the builtin's
    name, or the file name)."""
    label = getattr(plugin, "benchmark_label", None)
    if label:
        return str(label)
    spec = config.data.sources().get("underlying")
    if spec is None:
        return f"{config.strategy.name} benchmark"
    if spec.root:
        name = spec.root
    elif spec.source in BUILTIN_NAMES:
        name = BUILTIN_NAMES[spec.source]
    else:
        name = Path(spec.source.split(":", 1)[-1]).stem
    return f"{name} buy-and-hold"


#: Display names of the builtin data sources.
BUILTIN_NAMES = {"builtin:sp500": "S&P 500 (SPX)", "builtin:vix": "VIX"}


def _write_run_files(
    folder: Path,
    config_path: Path,
    config: ExperimentConfig,
    plugin: StrategyPlugin,
    wf: WalkForwardResult,
    metrics: dict[str, Any],
    market_source: str,
    reports: list[str],
    pbos: list[tuple[float | None, str]],
    *,
    status: str = "complete",
    study_prefix: str = "",
    workers: int = 1,
) -> None:
    shutil.copyfile(config_path, folder / "config.toml")
    metrics.update(plugin.write_artifacts(folder))
    write_books(folder, wf)
    from experiments.tca import write_tca  # tca.csv, tca_summary.csv; cost_spread_fraction

    metrics.update(write_tca(folder, wf.trades, config.strategy.name))
    rows: list[dict[str, Any]] = []
    for fr, (pbo, pbo_note) in zip(wf.folds, pbos, strict=True):
        is_sr, oos_sr = fr.in_sample.get("sharpe"), fr.oos_metrics.get("sharpe")
        rows.append(
            {
                "fold": fr.fold.index,
                "train_start": fr.fold.train_start.date(),
                "train_end": fr.fold.train_end.date(),
                "test_start": fr.fold.test_start.date(),
                "test_end": fr.fold.test_end.date(),
                "start_equity": fr.start_equity,
                "best_objective": fr.best_value,
                "n_trials": fr.n_trials,
                "n_pruned": fr.n_pruned,
                **{f"best.{k}": v for k, v in fr.best_params.items()},
                **{f"is_{k}": v for k, v in fr.in_sample.items()},
                **{f"oos_{k}": v for k, v in fr.oos_metrics.items()},
                "oos_is_sharpe_ratio": oos_sr / is_sr if is_sr and is_sr > 0 else None,
                "pbo": pbo,
                "pbo_method": pbo_note,
            }
        )
    folds_frame = pd.DataFrame(rows)
    folds_frame.to_csv(folder / "folds.csv", index=False)
    metrics.update(write_run_attribution([fr.out_of_sample for fr in wf.folds], folder))
    evaluation = (
        plugin.model_evaluation(wf.daily_log) if hasattr(plugin, "model_evaluation") else {}
    )
    for name, table in evaluation.items():
        table.to_csv(folder / f"evaluation_{name}.csv", index=False)
    bench_name = benchmark_name(config, plugin)
    benchmark = plugin.benchmark()
    # the benchmark's returns on the out-of-sample sessions (the dashboard's equity chart)
    benchmark.reindex(wf.oos_returns.index).rename("benchmark_return").to_csv(
        folder / "benchmark_returns.csv", index_label="date"
    )
    write_report(
        folder / "tearsheet.html",
        config=config,
        wf=wf,
        metrics=metrics,
        benchmark=benchmark,
        benchmark_name=bench_name,
        market_source=market_source,
        folds=folds_frame,
        evaluation=evaluation,
    )
    (folder / "summary.json").write_text(
        json.dumps(
            json_safe(
                {
                    "experiment": config.experiment.name,
                    "strategy": config.strategy.name,
                    "market_source": market_source,
                    "benchmark": bench_name,
                    "initial_cash": wf.initial_cash,
                    "final_equity": wf.final_equity,
                    "oos_start": str(wf.oos_returns.index[0].date()),
                    "oos_end": str(wf.oos_returns.index[-1].date()),
                    "metrics": metrics,
                    "data": reports,
                    "seed": config.optimize.seed,
                    "trials": config.optimize.trials,
                    "study_prefix": study_prefix,
                    "workers": workers,
                    "status": status,
                    "engine": config.optimize.engine,
                }
            ),
            indent=2,
        )
    )


#: Metrics shown in the tearsheet's headline table (the rest go to the account/costs table).
HEADLINE = (
    "sharpe",
    "sortino",
    "calmar",
    "cagr",
    "total_return",
    "max_drawdown",
    "volatility",
    "days",
    "trades",
    "deflated_sharpe",
    "pbo",
    "oos_is_sharpe_ratio",
    "min_backtest_years",
)
#: Dollar rows of the tearsheet's account and costs table: (metric, label).
ACCOUNT_ROWS = (
    ("initial_cash", "initial cash"),
    ("final_equity", "final equity"),
    ("net_pnl", "net P&L"),
    ("gross_pnl", "gross P&L (before costs)"),
    ("costs", "costs"),
    ("cost_commission", "  commissions and settlement fees"),
    ("cost_slippage", "  option fills vs mid"),
    ("cost_shares", "  share cost model"),
    ("cost_hedge_spread", "  delta-hedge half spreads"),
    ("notional", "traded notional"),
    ("window_end_exit_cost", "half spreads not paid on window-end closes at the mark"),
)


def write_report(
    path: Path,
    *,
    config: ExperimentConfig,
    wf: WalkForwardResult,
    metrics: dict[str, Any],
    benchmark: pd.Series,
    benchmark_name: str,
    market_source: str,
    folds: pd.DataFrame,
    evaluation: dict[str, pd.DataFrame],
) -> Path:
    """The run's tearsheet: our metrics (never quantstats' own) over the full OOS calendar.

    The benchmark's metrics come from the same :mod:`experiments.metrics` functions on the
    benchmark's returns over the out-of-sample sessions.
    """
    from experiments import metrics as perf

    bench = benchmark.reindex(wf.oos_returns.index)
    bench_metrics: dict[str, Any] = {
        "sharpe": perf.sharpe(bench),
        "sortino": perf.sortino(bench),
        "cagr": perf.cagr(bench),
        "volatility": perf.volatility(bench),
        "max_drawdown": perf.max_drawdown(bench),
        "calmar": perf.calmar(bench),
        "total_return": perf.total_return(bench),
        "days": float(bench.notna().sum()),
    }
    title = (
        f"{config.experiment.name}: {config.strategy.name}, walk-forward out-of-sample "
        f"({len(wf.folds)} folds) — market data: {market_source} — benchmark: {benchmark_name}"
    )
    fold_cols = [
        c
        for c in (
            "fold",
            "test_start",
            "test_end",
            "is_sharpe",
            "oos_sharpe",
            "oos_is_sharpe_ratio",
            "pbo",
            "oos_trades",
        )
        if c in folds.columns
    ]
    headline = {k: v for k, v in metrics.items() if k in HEADLINE or k.startswith("sharpe_ci")}
    headline["sample"] = metrics.get("sample")
    money = [
        (label, metrics.get(key)) for key, label in ACCOUNT_ROWS if metrics.get(key) is not None
    ]
    account = pd.DataFrame(
        {
            "item": [label for label, _ in money],
            "dollars": [f"{float(v):,.2f}" for _, v in money],
        }
    )
    sections = [
        ("Account and costs (dollars, out-of-sample)", account),
        ("Walk-forward folds: in-sample vs out-of-sample", folds[fold_cols]),
    ]
    sections += [(f"Model evaluation: {name}", table) for name, table in evaluation.items()]
    return write_tearsheet(
        wf.oos_returns,
        benchmark,
        path,
        title,
        metrics=headline,
        benchmark_metrics=bench_metrics,
        strategy_name=config.strategy.name,
        market_source=market_source,
        benchmark_name=benchmark_name,
        sections=sections,
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
