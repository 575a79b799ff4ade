"""Experiment configs and the runner: walk-forward Optuna, MLflow tracking, tearsheets, CLI.

This is the only layer that knows all the others. Public API: :func:`load_config`,
:func:`run_experiment`, :func:`make_folds`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from experiments.config import ConfigError, ExperimentConfig, load_config

__all__ = ["ConfigError", "ExperimentConfig", "load_config"]

lazy_package(__name__)
