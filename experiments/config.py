"""Experiment configs: TOML files validated with pydantic into :class:`ExperimentConfig`.

Unknown keys, wrong types and out-of-range values fail with :class:`ConfigError`, one line naming
the file and the key (``experiments/configs/x.toml: strategy.params.windw: unknown key``).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data_feeds.errors import VolsuiteError


class ConfigError(VolsuiteError):
    """An experiment config is invalid; the message is one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSourceSpec(_Strict):
    """One input series: ``source`` spec (see :func:`data_feeds.load_ohlc`) and options."""

    source: str
    root: str | None = None
    on_invalid: Literal["raise", "drop"] = "raise"


class ChainSourceSpec(_Strict):
    """``[data.chains]``: the option-chain store a strategy reads snapshots from.

    Attributes
    ----------
    db : str
        DuckDB file of the chain store (created if missing).
    ingest : list of str
        Files or folders ingested before the run (idempotent: an unchanged file adds nothing).
    format : {"vendor", "lean-minute", "generic"}
        Layout of the ``ingest`` files.
    ingest_config : str, optional
        TOML of :class:`data_feeds.chain_ingest.ChainIngestConfig` (column map, snapshot time,
        liquidity filters).
    """

    db: str = "results/chains.duckdb"
    ingest: list[str] = Field(default_factory=list)
    format: Literal["vendor", "lean-minute", "generic"] = "vendor"
    ingest_config: str | None = None


class DataConfig(_Strict):
    """``[data]``: the series a strategy needs and the date range loaded (warm-up included)."""

    start: dt.date | None = None
    end: dt.date | None = None
    underlying: DataSourceSpec
    vix: DataSourceSpec | None = None
    chains: ChainSourceSpec | None = None

    def sources(self) -> dict[str, DataSourceSpec]:
        """Name -> spec for every series given."""
        return {k: v for k, v in (("underlying", self.underlying), ("vix", self.vix)) if v}


class IntRange(_Strict):
    """Integer search dimension ``low..high`` (inclusive) with ``step``."""

    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def values(self) -> list[int]:
        """Every value the dimension can take (for indicator grids)."""
        return list(range(self.low, self.high + 1, self.step))


class FloatRange(_Strict):
    """Float search dimension ``low..high`` (optional ``step``, optional log scale)."""

    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0")
        return self

    def values(self) -> list[float]:
        """The two bounds (floats are not gridded)."""
        return [self.low, self.high]


class Choice(_Strict):
    """Categorical search dimension."""

    choices: list[Any] = Field(min_length=1)

    def values(self) -> list[Any]:
        """The choices."""
        return list(self.choices)


Dimension = IntRange | FloatRange | Choice


class StrategyConfig(_Strict):
    """``[strategy]``: registered name, fixed ``params`` and the Optuna ``search_space``."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    search_space: dict[str, Dimension] = Field(default_factory=dict)


class WalkForwardConfig(_Strict):
    """``[walkforward]``: fold geometry in sessions of the strategy's trading calendar.

    ``rolling``: train on the ``train_days`` sessions before each test window. ``anchored``: train
    from the first session. Test windows of ``test_days`` sessions advance by ``step_days`` (default
    ``test_days``, so out-of-sample windows tile without overlap); the last one may be shorter
    (at least ``min_test_days``).
    """

    scheme: Literal["rolling", "anchored"] = "rolling"
    train_days: int = Field(504, ge=20)
    test_days: int = Field(126, ge=5)
    step_days: int | None = Field(None, ge=5)
    min_test_days: int = Field(20, ge=1)
    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _step(self) -> WalkForwardConfig:
        if self.step_days is not None and self.step_days < self.test_days:
            raise ValueError("step_days < test_days would make out-of-sample windows overlap")
        return self


class OptimizeConfig(_Strict):
    """``[optimize]``: the per-fold Optuna study."""

    trials: int = Field(30, ge=1, le=10_000)
    objective: Literal["sharpe", "sortino", "cagr", "calmar", "total_return"] = "sharpe"
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 42


class BrokerConfig(_Strict):
    """``[broker]``: which broker runs the strategy and its costs."""

    kind: Literal["backtest"] = "backtest"
    commission_per_contract: float = Field(1.0, ge=0.0)
    slippage_spread_fraction: float = Field(0.5, ge=0.0, le=2.0)
    settlement_fee_per_contract: float = Field(0.0, ge=0.0)


class ExperimentSection(_Strict):
    """``[experiment]``: name (results folder, MLflow experiment), cash, description."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    initial_cash: float = Field(100_000.0, gt=0)


class TrackingConfig(_Strict):
    """``[tracking]``: where results go (defaults under ``results/``)."""

    results_dir: str = "results"
    mlflow_uri: str | None = None
    optuna_storage: str | None = None


class ExperimentConfig(_Strict):
    """A whole experiment config (one TOML file)."""

    experiment: ExperimentSection
    data: DataConfig
    strategy: StrategyConfig
    walkforward: WalkForwardConfig = Field(default_factory=WalkForwardConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


def _format_error(path: Path | str, err: ValidationError) -> str:
    errors = err.errors()
    # a misspelled key shows up as "unknown key" and "required key missing": name the misspelling
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "tagged")))
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = first["msg"]
        if "input" in first and kind not in ("model_type",):
            msg += f" (got {first['input']!r})"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc}: {msg}{more}"


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment config, including the strategy's own parameters.

    Parameters
    ----------
    path : str or pathlib.Path
        TOML file.

    Returns
    -------
    ExperimentConfig
        Validated config.

    Raises
    ------
    ConfigError
        Missing file, TOML syntax error, unknown key, wrong type or bad range; unknown strategy;
        a ``[strategy.params]`` or ``[strategy.search_space]`` key the strategy does not have, or a
        search bound the strategy rejects. One line naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    validate_strategy_section(config, path)
    return config


def validate_strategy_section(config: ExperimentConfig, path: Path | str) -> None:
    """Check ``[strategy]`` against the registered plugin's ``Params`` model.

    Every fixed param and both ends of every search dimension are validated (each choice of a
    categorical), so a bad bound fails now, not in trial 17 of fold 4.

    Raises
    ------
    ConfigError
        Unknown strategy name, unknown parameter, or a value the strategy rejects.
    """
    from strategies import get_strategy

    try:
        plugin = get_strategy(config.strategy.name)
    except KeyError as exc:
        raise ConfigError(f"{path}: strategy.name: {exc.args[0]}") from None
    fields = plugin.Params.model_fields
    for section in ("params", "search_space"):
        for key in getattr(config.strategy, section):
            if key not in fields:
                raise ConfigError(
                    f"{path}: strategy.{section}.{key}: unknown key (parameters of "
                    f"{plugin.name}: {', '.join(sorted(fields))})"
                )
    overlap = set(config.strategy.params) & set(config.strategy.search_space)
    if overlap:
        key = sorted(overlap)[0]
        raise ConfigError(f"{path}: strategy.search_space.{key}: also fixed in strategy.params")
    _check(plugin, config.strategy.params, path, "strategy.params")
    for key, dim in config.strategy.search_space.items():
        for value in dim.values():
            trial = {**config.strategy.params, key: value}
            _check(plugin, trial, path, f"strategy.search_space.{key}", only=key)


def _check(
    plugin: Any, values: dict[str, Any], path: Path | str, where: str, only: str | None = None
) -> None:
    try:
        plugin.Params(**values)
    except ValidationError as exc:
        errs = [e for e in exc.errors() if only is None or (e["loc"] and e["loc"][0] == only)]
        if not errs:
            return  # an error from a combination of values, allowed per-trial (trial is pruned)
        first = errs[0]
        loc = ".".join(str(p) for p in first["loc"])
        key = where if only else f"{where}.{loc}"
        raise ConfigError(f"{path}: {key}: {first['msg']} (got {first.get('input')!r})") from None
