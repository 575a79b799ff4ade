"""Walk-forward optimization: per-fold Optuna studies in-sample, best parameters out-of-sample.

For each fold the study maximizes the configured objective over the training sessions; the best
trial's parameters then run on the fold's test sessions. Indicators are causal and computed once on
the whole history (``StrategyPlugin.prepare``), so a test window's first day has its full warm-up
without seeing anything after it.

One continuous out-of-sample account: fold ``k``'s test backtest starts with the equity fold
``k - 1`` ended with (fold 0 with ``[experiment] initial_cash``). Every backtest window ends flat:
positions still open after its last bar are closed at their marks (``window end`` rows of
``trades.csv``, :meth:`brokers.OptionsBroker.close_out`), so fold ``k + 1`` starts in cash and the
stitched returns compound to ``final equity / initial cash - 1`` exactly (docs/metrics.md).

Purge and embargo (López de Prado 2018, ch. 7): an in-sample trial is a backtest that ends flat at
its training window's last session, so no in-sample trade's holding period reaches into the test
window and its P&L uses no price after the training window. ``[walkforward] purge_days`` leaves a
further gap of sessions between the two windows when wanted. Training windows always precede their
test window, so the embargo of that chapter (dropping training data right after a test window)
never applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from pydantic import ValidationError

from data_feeds.errors import VolsuiteError
from experiments.config import Choice, Dimension, FloatRange, IntRange, OptimizeConfig
from experiments.config import WalkForwardConfig as WFConfig
from experiments.metrics import OBJECTIVES, summary
from experiments.workers import (
    RETURNS_ATTR,
    completed_trials,
    decode_returns,
    encode_returns,
    run_trials,
)
from strategies.base import BacktestResult, StrategyPlugin


class WalkForwardError(VolsuiteError, ValueError):
    """The walk-forward layout does not fit the strategy's trading sessions."""


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: inclusive session bounds of its train and test windows (the train
    window ends ``purge`` sessions before the test window starts)."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    train_days: int
    test_days: int


def make_folds(days: pd.DatetimeIndex, config: WFConfig) -> list[Fold]:
    """Cut a trading calendar into walk-forward folds.

    Parameters
    ----------
    days : pandas.DatetimeIndex
        The strategy's trading sessions (increasing).
    config : WalkForwardConfig
        Scheme (rolling/anchored), train/test/step lengths in sessions, ``purge_days`` (the
        training window ends that many sessions before its test window), optional start/end dates.

    Returns
    -------
    list of Fold
        In time order; test windows do not overlap; the last may be shorter than ``test_days``
        but not shorter than ``min_test_days``.

    Raises
    ------
    WalkForwardError
        Fewer sessions than one training window plus ``min_test_days`` (a ``ValueError``).
    """
    if config.start is not None:
        days = days[days >= pd.Timestamp(config.start).tz_localize(days.tz)]
    if config.end is not None:
        days = days[days <= pd.Timestamp(config.end).tz_localize(days.tz)]
    n, train, test = len(days), config.train_days, config.test_days
    step = config.step_days or test
    purge = config.purge_days
    if purge < 0 or purge >= train - 1:
        raise WalkForwardError(
            f"walkforward: purge_days ({purge}) must be >= 0 and leave at least 2 of the "
            f"train_days ({train}) sessions"
        )
    if n < train + config.min_test_days:
        raise WalkForwardError(
            f"walkforward: {n} trading sessions, need at least train_days ({train}) + "
            f"min_test_days ({config.min_test_days})"
        )
    folds = []
    test_start = train
    while test_start + config.min_test_days <= n:
        test_end = min(test_start + test, n) - 1
        train_start = 0 if config.scheme == "anchored" else test_start - train
        folds.append(
            Fold(
                len(folds),
                days[train_start],
                days[test_start - 1 - purge],
                days[test_start],
                days[test_end],
                test_start - purge - train_start,
                test_end - test_start + 1,
            )
        )
        test_start += step
    return folds


def suggest(trial: optuna.Trial, space: dict[str, Dimension]) -> dict[str, Any]:
    """Draw one value per search dimension from an Optuna trial."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, IntRange):
            out[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
        elif isinstance(dim, FloatRange):
            out[name] = trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(name, dim.choices)
    return out


@dataclass
class FoldResult:
    """A fold's study outcome and its out-of-sample backtest."""

    fold: Fold
    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    n_pruned: int
    in_sample: dict[str, float]
    out_of_sample: BacktestResult
    oos_metrics: dict[str, float]
    study_name: str
    start_equity: float = 0.0
    trial_returns: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The validated params the out-of-sample run used (``best_params`` is their dump, which a
    #: params model with nested cost-free tables, e.g. ``hedge``, does not take back as input).
    params: Any = None


@dataclass
class WalkForwardResult:
    """All folds plus the one continuous out-of-sample account.

    Attributes
    ----------
    folds : list of FoldResult
        In time order; ``trial_returns`` of each holds every completed trial's in-sample daily
        returns (sessions x trial numbers), the matrix of the PBO.
    oos_returns : pandas.Series
        Daily returns of the continuous out-of-sample equity (``equity[t] / equity[t-1] - 1``,
        the first day against the initial cash).
    trades : pandas.DataFrame
        Every out-of-sample fill, settlement and window-end close, with its ``fold``.
    daily_log : pandas.DataFrame
        The strategy's out-of-sample decision log, with ``fold``.
    equity : pandas.DataFrame
        ``date, fold, cash, positions_value, equity`` (dollars) per out-of-sample session.
    initial_cash : float
        Dollars at the start of fold 0.
    info : dict
        The first fold's backtest ``info`` (e.g. ``market_source``).
    """

    folds: list[FoldResult]
    oos_returns: pd.Series
    trades: pd.DataFrame
    daily_log: pd.DataFrame
    equity: pd.DataFrame = field(default_factory=pd.DataFrame)
    initial_cash: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final_equity(self) -> float:
        """Dollars at the end of the last fold."""
        return float(self.equity["equity"].iloc[-1]) if len(self.equity) else self.initial_cash

    def trial_sharpes(self) -> list[list[float]]:
        """Per fold (one study each), the annualized in-sample Sharpe ratio of every completed
        trial."""
        from experiments.metrics import sharpe

        return [
            [sharpe(fr.trial_returns[c]) for c in fr.trial_returns.columns] for fr in self.folds
        ]


def run_walkforward(
    plugin: StrategyPlugin,
    *,
    fixed: dict[str, Any],
    space: dict[str, Dimension],
    wf: WFConfig,
    opt: OptimizeConfig,
    cash: float,
    storage: str | optuna.storages.BaseStorage | None,
    study_prefix: str,
    on_trial: Callable[[int, int], None] | None = None,
    folds: Sequence[Fold] | None = None,
    worker: int | None = 0,
    optimize_only: bool = False,
) -> WalkForwardResult | None:
    """Run the walk-forward loop.

    Parameters
    ----------
    plugin : StrategyPlugin
        Prepared plugin.
    fixed : dict
        Fixed parameter values.
    space : dict
        Search space (name -> dimension).
    wf : WalkForwardConfig
        Fold geometry.
    opt : OptimizeConfig
        Trials, objective, sampler, seed and engine. Fold ``k``'s sampler is seeded with
        ``seed + k``, so a config and seed give the same studies every time with one process
        (several workers: see :mod:`experiments.workers`). Each fold's study ends with exactly
        ``trials`` COMPLETE trials (pruned trials do not count;
        :func:`experiments.workers.run_trials`). ``engine = "vectorbt"`` scores in-sample trials
        with :meth:`StrategyPlugin.vector_backtest` (the out-of-sample run is always
        backtrader's).
    cash : float
        Dollars: the starting cash of every in-sample trial and of fold 0's test backtest; fold
        ``k``'s test backtest starts with fold ``k - 1``'s final equity.
    storage : str, optuna.storages.BaseStorage or None
        Optuna storage (URL ``sqlite:///results/optuna.db``, or one opened by
        :func:`experiments.workers.open_storage` with heartbeats) or None for in-memory.
    study_prefix : str
        Study names are ``{study_prefix}-fold{k}``, loaded if they exist (other workers' trials
        count).
    on_trial : callable, optional
        Called ``(fold_index, completed)`` with the fold study's COMPLETE trial count (all
        workers) after each trial and while waiting for other workers (progress bars).
    folds : sequence of Fold, optional
        Folds already cut by the caller (default: :func:`make_folds` on the plugin's days).
    worker : int or None
        This process's worker index: 0 (the run itself) seeds fold ``k``'s sampler with
        ``seed + k``; worker ``i`` with ``seed + k + 7919 i`` (other draws than the run's);
        None seeds from the operating system (a worker joining from another machine).
    optimize_only : bool
        A worker: evaluate trials of every fold's study and return None, without waiting for
        other workers' trials or running out-of-sample backtests.

    Returns
    -------
    WalkForwardResult or None
        None when ``optimize_only``.
    """
    # ERROR: a worker's surplus trial (experiments.workers) is a FAIL Optuna would warn about
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    objective_fn = OBJECTIVES[opt.objective]
    if opt.engine == "vectorbt":
        plugin.check_vector_engine()  # VectorEngineUnsupported before any study
    folds = list(folds) if folds is not None else make_folds(plugin.trading_days(), wf)
    results: list[FoldResult] = []
    equity = float(cash)
    for fold in folds:
        trial_returns: dict[int, pd.Series] = {}

        def objective(
            trial: optuna.Trial, fold: Fold = fold, kept: dict[int, pd.Series] = trial_returns
        ) -> float:
            values = {**fixed, **suggest(trial, space)}
            try:
                params = plugin.Params(**values)
            except ValidationError as exc:  # an invalid combination of values: skip the trial
                raise optuna.TrialPruned(str(exc.errors()[0]["msg"])) from None
            if opt.engine == "vectorbt":  # the strategy's numba kernel (docs/engines.md)
                vec = plugin.vector_backtest(params, fold.train_start, fold.train_end, cash=cash)
                returns = vec.returns
                in_sample = {**summary(vec.returns), "trades": float(vec.trades)}
            else:
                res = plugin.backtest(params, fold.train_start, fold.train_end, cash=cash)
                returns, in_sample = res.returns, summary(res.returns, res.trades)
            # kept on the trial so the best one's in-sample run need not be repeated
            trial.set_user_attr("in_sample", in_sample)
            kept[trial.number] = returns
            return objective_fn(returns)

        seed = None if worker is None else opt.seed + fold.index + 7919 * worker
        sampler = (
            optuna.samplers.TPESampler(seed=seed)
            if opt.sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=seed)
        )
        name = f"{study_prefix}-fold{fold.index}"
        study = optuna.create_study(
            direction="maximize",
            sampler=sampler,
            storage=storage,
            study_name=name,
            load_if_exists=True,
        )

        def scored(
            trial: optuna.Trial,
            fold_objective: Callable[..., float] = objective,
            kept: dict[int, pd.Series] = trial_returns,
        ) -> float:
            # the trial's in-sample returns go to the storage, so any worker's trials reach the PBO
            value = fold_objective(trial)
            trial.set_user_attr(RETURNS_ATTR, encode_returns(kept.pop(trial.number)))
            return value

        progress = (lambda n, k=fold.index: on_trial(k, n)) if on_trial else None
        run_trials(study, scored, opt.trials, wait=not optimize_only, on_progress=progress)
        if optimize_only:
            continue
        complete = completed_trials(study)
        n_pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
        for t in complete:
            trial_returns[t.number] = decode_returns(t.user_attrs[RETURNS_ATTR])
        if complete:
            best = max(complete, key=lambda t: (t.value, -t.number))
            best_params, best_value = dict(best.params), float(best.value)
            in_sample = dict(best.user_attrs["in_sample"])
            params = plugin.Params(**{**fixed, **best_params})
        else:  # every trial pruned: fall back to the fixed params and defaults
            best_params, best_value = {}, float("nan")
            params = plugin.Params(**fixed)
            ins = plugin.backtest(params, fold.train_start, fold.train_end, cash=cash)
            in_sample = summary(ins.returns, ins.trades)
        oos = plugin.backtest(params, fold.test_start, fold.test_end, cash=equity)
        start_equity = equity
        if len(oos.value):
            equity = float(oos.value.iloc[-1])
        results.append(
            FoldResult(
                fold=fold,
                best_params=params.model_dump(),
                best_value=best_value,
                n_trials=len(complete) + n_pruned,
                n_pruned=n_pruned,
                in_sample=in_sample,
                out_of_sample=oos,
                oos_metrics=summary(oos.returns, oos.trades),
                study_name=name,
                start_equity=start_equity,
                trial_returns=pd.DataFrame({t.number: trial_returns[t.number] for t in complete}),
                params=params,
            )
        )
    if optimize_only:
        return None
    trades = pd.concat(
        [r.out_of_sample.trades.assign(fold=r.fold.index) for r in results], ignore_index=True
    )
    daily_log = pd.concat(
        [r.out_of_sample.daily_log.assign(fold=r.fold.index) for r in results], ignore_index=True
    )
    equity_frame = equity_table(results)
    values = equity_frame["equity"].to_numpy()
    prev = np.concatenate([[float(cash)], values[:-1]])
    oos_returns = pd.Series(
        values / prev - 1.0, index=pd.DatetimeIndex(equity_frame.index), name="strategy"
    )
    info = dict(results[0].out_of_sample.info) if results else {}
    return WalkForwardResult(
        results,
        oos_returns,
        trades,
        daily_log,
        equity_frame.reset_index(names="date"),
        float(cash),
        info,
    )


def equity_table(results: Sequence[FoldResult]) -> pd.DataFrame:
    """The continuous out-of-sample account: ``fold, cash, positions_value, equity`` per session.

    Parameters
    ----------
    results : sequence of FoldResult
        Folds in time order; each out-of-sample backtest's ``value`` (dollars) and, where the
        plugin ran :func:`strategies.base.run_cerebro`, its cash (``value.attrs["cash"]``).

    Returns
    -------
    pandas.DataFrame
        Indexed by session (tz-aware), dollars. ``cash`` is NaN for a backtest that did not
        record it (then ``positions_value`` is NaN too).
    """
    frames = []
    for r in results:
        value = r.out_of_sample.value.astype(float)
        cash_map = value.attrs.get("cash") or {}
        cash = pd.Series([cash_map.get(ts, np.nan) for ts in value.index], index=value.index)
        frames.append(
            pd.DataFrame(
                {
                    "fold": r.fold.index,
                    "cash": cash,
                    "positions_value": value - cash,
                    "equity": value,
                },
                index=value.index,
            )
        )
    if not frames:
        return pd.DataFrame(columns=["fold", "cash", "positions_value", "equity"])
    return pd.concat(frames)
