"""Walk-forward optimization: per-fold Optuna studies in-sample, best parameters out-of-sample.

For each fold the study maximizes the configured objective over the training sessions; the best
trial's parameters then run on the fold's test sessions; the test returns of all folds are stitched
into one out-of-sample series. Indicators are causal and computed once on the whole history
(``StrategyPlugin.prepare``), so a test window's first day has its full warm-up without seeing
anything after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from pydantic import ValidationError

from data_feeds.errors import VolsuiteError
from experiments.config import Choice, Dimension, FloatRange, IntRange, OptimizeConfig
from experiments.config import WalkForwardConfig as WFConfig
from experiments.metrics import OBJECTIVES, summary
from strategies.base import BacktestResult, StrategyPlugin


class WalkForwardError(VolsuiteError, ValueError):
    """The walk-forward layout does not fit the strategy's trading sessions."""


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: inclusive session bounds of its train and test windows."""

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
        Scheme (rolling/anchored), train/test/step lengths in sessions, optional start/end dates.

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
                days[test_start - 1],
                days[test_start],
                days[test_end],
                test_start - train_start,
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


@dataclass
class WalkForwardResult:
    """All folds plus the stitched out-of-sample series."""

    folds: list[FoldResult]
    oos_returns: pd.Series
    trades: pd.DataFrame
    daily_log: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def run_walkforward(
    plugin: StrategyPlugin,
    *,
    fixed: dict[str, Any],
    space: dict[str, Dimension],
    wf: WFConfig,
    opt: OptimizeConfig,
    cash: float,
    storage: str | None,
    study_prefix: str,
    on_trial: Callable[[int, int], None] | None = None,
    folds: Sequence[Fold] | None = None,
) -> WalkForwardResult:
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
        Trials, objective, sampler and seed. Fold ``k``'s sampler is seeded with ``seed + k``, so a
        config and seed give the same studies every time (single-threaded Optuna).
    cash : float
        Starting cash of every backtest (dollars).
    storage : str or None
        Optuna storage URL (``sqlite:///results/optuna.db``) or None for in-memory.
    study_prefix : str
        Study names are ``{study_prefix}-fold{k}``.
    on_trial : callable, optional
        Called ``(fold_index, trial_number)`` after each trial (progress bars).
    folds : sequence of Fold, optional
        Folds already cut by the caller (default: :func:`make_folds` on the plugin's days).

    Returns
    -------
    WalkForwardResult
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective_fn = OBJECTIVES[opt.objective]
    folds = list(folds) if folds is not None else make_folds(plugin.trading_days(), wf)
    results: list[FoldResult] = []
    for fold in folds:

        def objective(trial: optuna.Trial, fold: Fold = fold) -> float:
            values = {**fixed, **suggest(trial, space)}
            try:
                params = plugin.Params(**values)
            except ValidationError as exc:  # an invalid combination of values: skip the trial
                raise optuna.TrialPruned(str(exc.errors()[0]["msg"])) from None
            res = plugin.backtest(params, fold.train_start, fold.train_end, cash=cash)
            # kept on the trial so the best one's in-sample run need not be repeated
            trial.set_user_attr("in_sample", summary(res.returns, res.daily_log))
            return objective_fn(res.returns)

        sampler = (
            optuna.samplers.TPESampler(seed=opt.seed + fold.index)
            if opt.sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=opt.seed + fold.index)
        )
        name = f"{study_prefix}-fold{fold.index}"
        study = optuna.create_study(
            direction="maximize",
            sampler=sampler,
            storage=storage,
            study_name=name,
            load_if_exists=False,
        )
        callbacks = [lambda s, t, k=fold.index: on_trial(k, t.number)] if on_trial else []
        study.optimize(objective, n_trials=opt.trials, callbacks=callbacks, n_jobs=1)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            best_params, best_value = dict(study.best_params), float(study.best_value)
            in_sample = dict(study.best_trial.user_attrs["in_sample"])
            params = plugin.Params(**{**fixed, **best_params})
        else:  # every trial pruned: fall back to the fixed params and defaults
            best_params, best_value = {}, float("nan")
            params = plugin.Params(**fixed)
            ins = plugin.backtest(params, fold.train_start, fold.train_end, cash=cash)
            in_sample = summary(ins.returns, ins.daily_log)
        oos = plugin.backtest(params, fold.test_start, fold.test_end, cash=cash)
        results.append(
            FoldResult(
                fold=fold,
                best_params=params.model_dump(),
                best_value=best_value,
                n_trials=len(study.trials),
                n_pruned=len(study.trials) - len(complete),
                in_sample=in_sample,
                out_of_sample=oos,
                oos_metrics=summary(oos.returns, oos.daily_log),
                study_name=name,
            )
        )
    oos_returns = pd.concat([r.out_of_sample.returns for r in results]).rename("strategy")
    trades = pd.concat(
        [r.out_of_sample.trades.assign(fold=r.fold.index) for r in results], ignore_index=True
    )
    daily_log = pd.concat(
        [r.out_of_sample.daily_log.assign(fold=r.fold.index) for r in results], ignore_index=True
    )
    info = dict(results[0].out_of_sample.info) if results else {}
    return WalkForwardResult(results, oos_returns, trades, daily_log, info)
