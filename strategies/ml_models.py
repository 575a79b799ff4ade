"""The models of ``ml_spreads``: labels, purged walk-forward splits, XGBoost training, metrics.

Design document 001 (section 4) specifies two XGBoost models on the daily market features
(:func:`indicators.features.market_features`):

* a **direction classifier**: the 5-session forward return ``C_{t+5} / C_t - 1`` labelled
  bearish (< -1 %), neutral or bullish (> +1 %), ``multi:softprob`` with 3 classes;
* a **volatility forecaster**: the VIX range rank (IV rank) 5 sessions ahead,
  ``reg:squarederror``.

Both are trained walk-forward: a test window of ``test_size`` sessions starts every ``step``
sessions; its models are fitted on the ``train_size`` sessions before it **minus a purge gap of
the label horizon** (Lopez de Prado 2018, ch. 7.4.1): the label of sample ``i`` is built from
sessions ``i+1 .. i+horizon``, so a training sample whose label reaches into the test window
(``i + horizon >= test_start``) is removed. Training always precedes testing, so no embargo is
needed (an embargo protects training samples *after* a test window).

Each session gets the prediction of the most recent fold whose test window contains it (the
model trained last before it); metrics are computed per fold on the whole test window and on
that stitched series.

References
----------
.. [1] Lopez de Prado, M. (2018). *Advances in Financial Machine Learning*. Wiley, ch. 7
   ("Cross-Validation in Finance": purging, section 7.4.1).
.. [2] Chen, T. and Guestrin, C. (2016). "XGBoost: A Scalable Tree Boosting System". KDD '16.
.. [3] Design document 001 ("ML Options Trading System - Implementation Plan"), sections 4.1
   and 4.2 (model parameters, labels, walk-forward 504/63/21, target metrics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DIRECTION_CLASSES",
    "LEVEL_COLUMNS",
    "ModelSettings",
    "PurgedSplit",
    "WalkForwardModels",
    "direction_labels",
    "forward_return",
    "model_features",
    "ovr_auc",
    "purge",
    "purged_walk_forward_splits",
    "train_walk_forward",
]

#: Direction classes in the order of their label codes (0, 1, 2).
DIRECTION_CLASSES: tuple[str, str, str] = ("bearish", "neutral", "bullish")

LEVEL_COLUMNS: tuple[str, ...] = (
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "bb_upper",
    "bb_lower",
    "high_52w",
    "low_52w",
    "macd",
    "macd_signal",
    "macd_histogram",
    "regime",
)
"""Feature columns not given to the trees: price levels (a tree cannot extrapolate a level it
never saw in training; the scale-free versions ``price_vs_sma*``, ``bb_position``,
``dist_from_*`` and ``macd*_norm`` carry the information) and the regime code (its one-hot
columns are kept)."""


class ModelSettings(BaseModel):
    """XGBoost settings shared by both models (design doc 001, section 4.1 / 4.2 defaults).

    Attributes
    ----------
    n_estimators : int
        Boosting rounds (200).
    max_depth : int
        Tree depth (5).
    learning_rate : float
        Shrinkage ``eta`` (0.05).
    subsample, colsample_bytree : float
        Row / column sampling per tree (0.8).
    min_child_weight : float
        Minimum hessian per leaf (3).
    gamma : float
        Minimum loss reduction to split (0.1).
    reg_alpha, reg_lambda : float
        L1 / L2 leaf-weight penalties (0.1 / 1.0; the design gives ``reg_alpha`` only for the
        classifier, both models use it here).
    seed : int
        XGBoost seed (fold ``k`` uses ``seed + k``): results are deterministic for a seed.
    n_jobs : int
        XGBoost threads (1: the machine is shared; ``hist`` is deterministic for a given count).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_estimators: int = Field(200, ge=1, le=5000)
    max_depth: int = Field(5, ge=1, le=16)
    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    subsample: float = Field(0.8, gt=0.0, le=1.0)
    colsample_bytree: float = Field(0.8, gt=0.0, le=1.0)
    min_child_weight: float = Field(3.0, ge=0.0)
    gamma: float = Field(0.1, ge=0.0)
    reg_alpha: float = Field(0.1, ge=0.0)
    reg_lambda: float = Field(1.0, ge=0.0)
    seed: int = 42
    n_jobs: int = Field(1, ge=1, le=64)

    def booster_params(self, objective: str, fold: int) -> dict[str, object]:
        """``xgboost.train`` parameters for ``objective`` in fold ``fold``."""
        params: dict[str, object] = {
            "objective": objective,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "gamma": self.gamma,
            "alpha": self.reg_alpha,
            "lambda": self.reg_lambda,
            "seed": self.seed + fold,
            "nthread": self.n_jobs,
            "tree_method": "hist",
            "verbosity": 0,
        }
        if objective == "multi:softprob":
            params["num_class"] = len(DIRECTION_CLASSES)
        return params


# --------------------------------------------------------------------------------------
# labels and features
# --------------------------------------------------------------------------------------


def forward_return(close: pd.Series, horizon: int = 5) -> pd.Series:
    """Simple forward return ``C_{t+horizon} / C_t - 1`` (decimal).

    Parameters
    ----------
    close : pandas.Series
        Closes, shape ``(n,)``.
    horizon : int, default 5
        Sessions ahead (>= 1).

    Returns
    -------
    pandas.Series
        ``forward_return_<horizon>``; NaN for the last ``horizon`` sessions (unknown yet).

    Raises
    ------
    ValueError
        ``horizon < 1``.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return (close.shift(-horizon) / close - 1.0).rename(f"forward_return_{horizon}")


def direction_labels(close: pd.Series, horizon: int = 5, threshold: float = 0.01) -> pd.Series:
    """Direction label of the forward return (design doc 001, section 4.1).

    ``2`` bullish if ``forward_return > threshold``, ``0`` bearish if ``< -threshold``, else
    ``1`` neutral (the boundaries ``+-threshold`` are neutral).

    Parameters
    ----------
    close : pandas.Series
        Closes, shape ``(n,)``.
    horizon : int, default 5
        Sessions ahead.
    threshold : float, default 0.01
        Decimal return threshold (> 0).

    Returns
    -------
    pandas.Series
        Float codes (index into :data:`DIRECTION_CLASSES`); NaN where the forward return is
        unknown (the last ``horizon`` sessions).

    Raises
    ------
    ValueError
        ``threshold <= 0`` or ``horizon < 1``.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    r = forward_return(close, horizon).to_numpy()
    codes = np.where(r > threshold, 2.0, np.where(r < -threshold, 0.0, 1.0))
    codes[np.isnan(r)] = np.nan
    return pd.Series(codes, index=close.index, name="direction_label")


def model_features(features: pd.DataFrame, close: pd.Series) -> pd.DataFrame:
    """The model's input table: the market features without :data:`LEVEL_COLUMNS`, plus MACD
    scaled by the close.

    Parameters
    ----------
    features : pandas.DataFrame
        :func:`indicators.features.market_features` output.
    close : pandas.Series
        Closes on the same index.

    Returns
    -------
    pandas.DataFrame
        Scale-free columns; ``macd_norm``, ``macd_signal_norm``, ``macd_histogram_norm`` are
        the MACD lines divided by the close (decimal).

    Raises
    ------
    ValueError
        ``close`` not on the features' index.
    """
    if not features.index.equals(close.index):
        raise ValueError("close must be on the same index as features")
    table = features.drop(columns=[c for c in LEVEL_COLUMNS if c in features.columns])
    for col in ("macd", "macd_signal", "macd_histogram"):
        if col in features.columns:
            table[f"{col}_norm"] = features[col] / close
    return table


# --------------------------------------------------------------------------------------
# purged walk-forward splits
# --------------------------------------------------------------------------------------


def purge(
    candidates: np.ndarray, label_end: np.ndarray, test_start: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training candidates into kept and purged by label overlap with a test window.

    A candidate ``i`` whose label uses sessions up to ``label_end[i]`` overlaps a test window
    starting at ``test_start`` when ``label_end[i] >= test_start`` (Lopez de Prado 2018,
    section 7.4.1; the candidates all precede the test window).

    Parameters
    ----------
    candidates : numpy.ndarray
        Session positions, shape ``(m,)``, each ``< test_start``.
    label_end : numpy.ndarray
        Last session position used by the label of each candidate, shape ``(m,)``.
    test_start : int
        First session position of the test window.

    Returns
    -------
    kept, purged : numpy.ndarray
        Positions whose labels end before ``test_start``, and the others.

    Raises
    ------
    ValueError
        Shapes differ, or a candidate is not before ``test_start``.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    label_end = np.asarray(label_end, dtype=np.int64)
    if candidates.shape != label_end.shape:
        raise ValueError(f"candidates {candidates.shape} and label_end {label_end.shape} differ")
    if candidates.size and candidates.max() >= test_start:
        raise ValueError("every training candidate must precede the test window")
    overlap = label_end >= test_start
    return candidates[~overlap], candidates[overlap]


@dataclass(frozen=True)
class PurgedSplit:
    """One walk-forward fold of session positions.

    Attributes
    ----------
    fold : int
        Fold number (0-based, in time order).
    train : numpy.ndarray
        Training positions (``train_size`` of them before any row filtering), every label
        ending before ``test[0]``.
    purged : numpy.ndarray
        The ``horizon`` positions between the training window and the test window whose labels
        overlap the test window.
    test : numpy.ndarray
        Test positions (``test_size``, fewer at the end of the data).
    """

    fold: int
    train: np.ndarray
    purged: np.ndarray
    test: np.ndarray


def purged_walk_forward_splits(
    n_sessions: int,
    first_test: int,
    *,
    train_size: int = 504,
    test_size: int = 63,
    step: int = 21,
    horizon: int = 5,
    last_test: int | None = None,
) -> list[PurgedSplit]:
    """Rolling walk-forward folds with a purge gap of the label horizon.

    Fold ``k`` tests positions ``[s_k, s_k + test_size)`` (clipped to the data) with
    ``s_k = first_test + k * step`` while ``s_k <= last_test``; it trains on the
    ``train_size`` positions ``[s_k - horizon - train_size, s_k - horizon)``. The ``horizon``
    positions ``[s_k - horizon, s_k)`` are purged (:func:`purge` with ``label_end = i +
    horizon``): their labels use sessions of the test window.

    Parameters
    ----------
    n_sessions : int
        Number of sessions in the data.
    first_test : int
        Position of the first test session.
    train_size, test_size, step : int
        Sessions (504, 63, 21 in design doc 001); ``step <= test_size`` so every session from
        ``first_test`` on is tested.
    horizon : int
        Label horizon in sessions (5).
    last_test : int, optional
        Last position a fold may start at (default ``n_sessions - 1``).

    Returns
    -------
    list of PurgedSplit
        In time order.

    Raises
    ------
    ValueError
        Not enough history before ``first_test`` (names how many sessions are needed), bad
        sizes, or ``first_test`` outside the data.
    """
    for name, v, lo in (
        ("train_size", train_size, 1),
        ("test_size", test_size, 1),
        ("step", step, 1),
        ("horizon", horizon, 1),
    ):
        if v < lo:
            raise ValueError(f"{name} must be >= {lo}, got {v}")
    if step > test_size:
        raise ValueError(f"step ({step}) must be <= test_size ({test_size}) to test every session")
    if not 0 <= first_test < n_sessions:
        raise ValueError(f"first_test {first_test} is outside the data (0..{n_sessions - 1})")
    need = train_size + horizon
    if first_test < need:
        raise ValueError(
            f"the first test session (position {first_test}) needs {need} sessions of history "
            f"before it (train_size {train_size} + purge {horizon}); it has {first_test}"
        )
    last = n_sessions - 1 if last_test is None else min(last_test, n_sessions - 1)
    splits = []
    s = first_test
    while s <= last:
        candidates = np.arange(s - horizon - train_size, s, dtype=np.int64)
        kept, purged = purge(candidates, candidates + horizon, s)
        test = np.arange(s, min(s + test_size, n_sessions), dtype=np.int64)
        splits.append(PurgedSplit(len(splits), kept, purged, test))
        s += step
    return splits


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------


def ovr_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC of a 3-class probability forecast.

    The mean over classes of the binary AUC of ``proba[:, k]`` for ``y == k``
    (``sklearn.metrics.roc_auc_score``); a class absent from ``y`` (or the only one present)
    is left out of the mean.

    Parameters
    ----------
    y : numpy.ndarray
        Integer labels 0..2, shape ``(m,)``.
    proba : numpy.ndarray
        Class probabilities, shape ``(m, 3)``.

    Returns
    -------
    float
        In ``[0, 1]`` (0.5 = no skill); NaN if no class can be scored.
    """
    from sklearn.metrics import roc_auc_score

    scores = []
    for k in range(proba.shape[1]):
        pos = y == k
        if pos.any() and not pos.all():
            scores.append(roc_auc_score(pos, proba[:, k]))
    return float(np.mean(scores)) if scores else math.nan


def _direction_metrics(
    y: np.ndarray, proba: np.ndarray, baseline_class: int, top_fraction: float
) -> dict[str, float]:
    if y.size == 0:
        return {
            "auc_ovr": math.nan,
            "accuracy": math.nan,
            "top_confidence_accuracy": math.nan,
            "baseline_accuracy": math.nan,
        }
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    k = max(1, math.ceil(top_fraction * y.size))
    top = np.argsort(-conf, kind="stable")[:k]
    return {
        "auc_ovr": ovr_auc(y, proba),
        "accuracy": float((pred == y).mean()),
        "top_confidence_accuracy": float((pred[top] == y[top]).mean()),
        "baseline_accuracy": float((y == baseline_class).mean()),
    }


def _vol_metrics(pred: np.ndarray, y: np.ndarray, now: np.ndarray) -> dict[str, float]:
    if y.size == 0:
        return dict.fromkeys(("rmse", "mae", "persistence_rmse", "direction_accuracy"), math.nan)
    err = pred - y
    moved = y != now
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "persistence_rmse": float(np.sqrt(np.mean((now - y) ** 2))),
        "direction_accuracy": float(
            (np.sign(pred[moved] - now[moved]) == np.sign(y[moved] - now[moved])).mean()
        )
        if moved.any()
        else math.nan,
    }


# --------------------------------------------------------------------------------------
# walk-forward training
# --------------------------------------------------------------------------------------


@dataclass
class WalkForwardModels:
    """What :func:`train_walk_forward` produced.

    Attributes
    ----------
    predictions : pandas.DataFrame
        One row per session from the first test session on, from the most recent fold whose
        test window holds it: ``fold``, ``p_bearish``, ``p_neutral``, ``p_bullish``,
        ``direction`` (code into :data:`DIRECTION_CLASSES`), ``confidence`` (``(p_max - 1/3) /
        (2/3)`` in ``[0, 1]``), ``vix_rank_forecast`` (fraction), and the realized
        ``direction_label`` / ``vix_rank_future`` (NaN while unknown). NaN predictions where
        a feature is missing.
    test_predictions : pandas.DataFrame
        Every fold's predictions on its whole test window (long format, column ``fold``).
    fold_metrics : pandas.DataFrame
        One row per fold: dates, training rows used / dropped, direction metrics
        (``auc_ovr``, ``accuracy``, ``top_confidence_accuracy``, ``baseline_accuracy``),
        volatility metrics (``rmse``, ``mae``, ``persistence_rmse``, ``direction_accuracy``).
    metrics : dict of str to float
        The same metrics on :attr:`predictions` (each session once), prefixed
        ``direction_`` / ``vol_``, plus ``n_folds`` and ``n_scored_days``.
    importance : pandas.DataFrame
        Mean XGBoost ``gain`` per feature over folds, columns ``direction``, ``volatility``
        (0 for a feature never split on), sorted by direction gain.
    direction_model, volatility_model : xgboost.Booster
        The last fold's models.
    splits : list of PurgedSplit
        The folds.
    feature_columns : list of str
        Model inputs, in order.
    notes : list of str
        What was dropped (training rows with a missing feature or label), per reason.
    """

    predictions: pd.DataFrame
    test_predictions: pd.DataFrame
    fold_metrics: pd.DataFrame
    metrics: dict[str, float]
    importance: pd.DataFrame
    direction_model: xgb.Booster
    volatility_model: xgb.Booster
    splits: list[PurgedSplit]
    feature_columns: list[str]
    notes: list[str] = field(default_factory=list)


def train_walk_forward(
    table: pd.DataFrame,
    close: pd.Series,
    vix_rank: pd.Series,
    *,
    first_test: pd.Timestamp,
    last_test: pd.Timestamp | None = None,
    feature_columns: Sequence[str] | None = None,
    horizon: int = 5,
    threshold: float = 0.01,
    train_size: int = 504,
    test_size: int = 63,
    step: int = 21,
    settings: ModelSettings | None = None,
    top_fraction: float = 0.2,
) -> WalkForwardModels:
    """Train both models walk-forward with purging and collect out-of-sample predictions.

    Parameters
    ----------
    table : pandas.DataFrame
        Model inputs per session (:func:`model_features`), causal (row ``t`` from sessions
        ``<= t``).
    close : pandas.Series
        Closes (direction labels, :func:`direction_labels`).
    vix_rank : pandas.Series
        VIX range rank (fraction); the volatility target is its value ``horizon`` sessions
        ahead.
    first_test : pandas.Timestamp
        First session to predict (the first session on or after it starts fold 0).
    last_test : pandas.Timestamp, optional
        No fold starts after it (default: the data's last session).
    feature_columns : sequence of str, optional
        Columns of ``table`` to use (all by default).
    horizon, threshold : int, float
        Label horizon (sessions) and direction threshold (decimal return).
    train_size, test_size, step : int
        Walk-forward geometry in sessions (:func:`purged_walk_forward_splits`).
    settings : ModelSettings, optional
        XGBoost settings (design defaults).
    top_fraction : float
        Share of the most confident predictions scored by ``top_confidence_accuracy``.

    Returns
    -------
    WalkForwardModels

    Raises
    ------
    ValueError
        Inputs not on one index, not enough history before ``first_test``, a training window
        without a usable row, or ``first_test`` after the data.
    """
    settings = settings or ModelSettings()
    if not (table.index.equals(close.index) and table.index.equals(vix_rank.index)):
        raise ValueError("table, close and vix_rank must share one index")
    cols = list(feature_columns) if feature_columns is not None else list(table.columns)
    index = table.index
    n = len(index)
    start = int(index.searchsorted(pd.Timestamp(first_test)))
    if start >= n:
        raise ValueError(f"first_test {first_test} is after the last session {index[-1]}")
    stop = None if last_test is None else int(index.searchsorted(pd.Timestamp(last_test), "right"))
    splits = purged_walk_forward_splits(
        n,
        start,
        train_size=train_size,
        test_size=test_size,
        step=step,
        horizon=horizon,
        last_test=None if stop is None else stop - 1,
    )
    x = table[cols].to_numpy(dtype=np.float64)
    x_ok = np.isfinite(x).all(axis=1)
    y_dir = direction_labels(close, horizon, threshold).to_numpy()
    rank = vix_rank.to_numpy(dtype=np.float64)
    y_vol = vix_rank.shift(-horizon).to_numpy(dtype=np.float64)
    folds: list[dict[str, object]] = []
    frames: list[pd.DataFrame] = []
    gains_dir: list[dict[str, float]] = []
    gains_vol: list[dict[str, float]] = []
    dropped = {"feature": 0, "label": 0}
    dir_model = vol_model = None
    for sp in splits:
        tr = sp.train
        ok_x = x_ok[tr]
        ok_y = np.isfinite(y_dir[tr]) & np.isfinite(y_vol[tr])
        use = tr[ok_x & ok_y]
        dropped["feature"] += int((~ok_x).sum())
        dropped["label"] += int((ok_x & ~ok_y).sum())
        if use.size == 0:
            raise ValueError(
                f"fold {sp.fold}: no training row with every feature and label "
                f"({index[tr[0]]:%Y-%m-%d}..{index[tr[-1]]:%Y-%m-%d}); start later"
            )
        dtrain = xgb.DMatrix(x[use], label=y_dir[use], feature_names=cols)
        dir_model = xgb.train(
            settings.booster_params("multi:softprob", sp.fold),
            dtrain,
            num_boost_round=settings.n_estimators,
        )
        vtrain = xgb.DMatrix(x[use], label=y_vol[use], feature_names=cols)
        vol_model = xgb.train(
            settings.booster_params("reg:squarederror", sp.fold),
            vtrain,
            num_boost_round=settings.n_estimators,
        )
        gains_dir.append(dir_model.get_score(importance_type="gain"))
        gains_vol.append(vol_model.get_score(importance_type="gain"))
        te = sp.test[x_ok[sp.test]]
        proba = np.full((sp.test.size, 3), np.nan)
        vol_pred = np.full(sp.test.size, np.nan)
        if te.size:
            dtest = xgb.DMatrix(x[te], feature_names=cols)
            where = np.searchsorted(sp.test, te)
            proba[where] = dir_model.predict(dtest)
            vol_pred[where] = vol_model.predict(dtest)
        frame = pd.DataFrame(
            {
                "fold": sp.fold,
                "p_bearish": proba[:, 0],
                "p_neutral": proba[:, 1],
                "p_bullish": proba[:, 2],
                "vix_rank_forecast": vol_pred,
                "direction_label": y_dir[sp.test],
                "vix_rank": rank[sp.test],
                "vix_rank_future": y_vol[sp.test],
            },
            index=index[sp.test],
        )
        frames.append(frame)
        counts = np.bincount(y_dir[use].astype(np.int64), minlength=3)
        scored = _scored(frame)
        row: dict[str, object] = {
            "fold": sp.fold,
            "train_start": index[tr[0]],
            "train_end": index[tr[-1]],
            "purged_start": index[sp.purged[0]],
            "purged_end": index[sp.purged[-1]],
            "test_start": index[sp.test[0]],
            "test_end": index[sp.test[-1]],
            "train_rows": int(use.size),
            "train_rows_dropped": int(tr.size - use.size),
            **{f"train_{c}": int(counts[i]) for i, c in enumerate(DIRECTION_CLASSES)},
        }
        row.update(_frame_metrics(scored, int(np.argmax(counts)), top_fraction))
        folds.append(row)
    assert dir_model is not None and vol_model is not None
    test_predictions = pd.concat(frames)
    test_predictions.index.name = "date"
    latest = test_predictions[~test_predictions.index.duplicated(keep="last")]
    predictions = _with_decisions(latest)
    fold_metrics = pd.DataFrame(folds)
    majority = int(
        np.argmax(fold_metrics[[f"train_{c}" for c in DIRECTION_CLASSES]].sum().to_numpy())
    )
    overall = _frame_metrics(_scored(predictions), majority, top_fraction)
    metrics = {
        **{k: float(v) for k, v in overall.items()},
        "n_folds": float(len(splits)),
    }
    importance = pd.DataFrame(
        {
            "direction": pd.DataFrame(gains_dir).reindex(columns=cols).fillna(0.0).mean(),
            "volatility": pd.DataFrame(gains_vol).reindex(columns=cols).fillna(0.0).mean(),
        }
    ).sort_values("direction", ascending=False)
    importance.index.name = "feature"
    notes = []
    if dropped["feature"] or dropped["label"]:
        notes.append(
            f"training rows dropped over {len(splits)} folds: {dropped['feature']} with a "
            f"missing feature, {dropped['label']} with a missing label"
        )
    return WalkForwardModels(
        predictions=predictions,
        test_predictions=test_predictions,
        fold_metrics=fold_metrics,
        metrics=metrics,
        importance=importance,
        direction_model=dir_model,
        volatility_model=vol_model,
        splits=splits,
        feature_columns=cols,
        notes=notes,
    )


def _scored(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a prediction and known labels."""
    ok = (
        frame[["p_bearish", "p_neutral", "p_bullish", "vix_rank_forecast"]].notna().all(axis=1)
        & frame["direction_label"].notna()
        & frame["vix_rank_future"].notna()
        & frame["vix_rank"].notna()
    )
    return frame[ok]


def _frame_metrics(scored: pd.DataFrame, baseline: int, top_fraction: float) -> dict[str, float]:
    proba = scored[["p_bearish", "p_neutral", "p_bullish"]].to_numpy()
    y = scored["direction_label"].to_numpy().astype(np.int64)
    d = _direction_metrics(y, proba, baseline, top_fraction)
    v = _vol_metrics(
        scored["vix_rank_forecast"].to_numpy(),
        scored["vix_rank_future"].to_numpy(),
        scored["vix_rank"].to_numpy(),
    )
    return {
        **{f"direction_{k}": val for k, val in d.items()},
        **{f"vol_{k}": val for k, val in v.items()},
        "n_scored_days": float(len(scored)),
    }


def _with_decisions(frame: pd.DataFrame) -> pd.DataFrame:
    proba = frame[["p_bearish", "p_neutral", "p_bullish"]].to_numpy()
    ok = np.isfinite(proba).all(axis=1)
    direction = np.full(len(frame), np.nan)
    confidence = np.full(len(frame), np.nan)
    direction[ok] = proba[ok].argmax(axis=1)
    confidence[ok] = (proba[ok].max(axis=1) - 1.0 / 3.0) / (2.0 / 3.0)
    out = frame.copy()
    out.insert(4, "direction", direction)
    out.insert(5, "confidence", confidence)
    return out
