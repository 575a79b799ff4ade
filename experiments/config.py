"""Experiment configs: TOML files validated with pydantic into :class:`ExperimentConfig`.

Unknown keys, wrong types and out-of-range values fail with :class:`ConfigError`, one line naming
the file and the key (``experiments/configs/x.toml: strategy.params.windw: unknown key``).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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


class LegSpec(DataSourceSpec):
    """One leg of a pair (``[data.legs.y]`` / ``[data.legs.x]``).

    Attributes
    ----------
    volume_scale : float
        Multiplier turning the file's volume column into shares (e.g. 100 for round lots).
    """

    volume_scale: float = Field(1.0, gt=0.0)


class DataConfig(_Strict):
    """``[data]``: the series a strategy needs and the date range loaded (warm-up included).

    ``underlying`` is required unless the strategy trades a pair given as ``[data.legs.y]`` and
    ``[data.legs.x]`` (loaded as ``leg_y`` / ``leg_x``).
    """

    start: dt.date | None = None
    end: dt.date | None = None
    underlying: DataSourceSpec | None = None
    vix: DataSourceSpec | None = None
    chains: ChainSourceSpec | None = None
    legs: dict[Literal["y", "x"], LegSpec] | None = None

    @model_validator(mode="after")
    def _needs_data(self) -> DataConfig:
        if self.underlying is None and not self.legs:
            raise ValueError("[data] needs underlying (or legs y and x for a pair strategy)")
        if self.legs is not None and set(self.legs) != {"y", "x"}:
            raise ValueError("[data.legs] needs exactly y and x")
        return self

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
    purge_days: int = Field(
        0,
        ge=0,
        description="sessions left out between a training window's end and its test window",
    )
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


def _timestamp_like(value: Any) -> Any:
    """Accept a TOML date/datetime or a string pandas can read as a timestamp."""
    if value is None or isinstance(value, dt.date):
        return value
    import pandas as pd

    try:
        pd.Timestamp(str(value))
    except (ValueError, TypeError):
        raise ValueError(f"not a date or date-time: {value!r}") from None
    return str(value)


class ReplayBrokerConfig(_Strict):
    """``[broker.replay]``: the local replay venue (``kind = "replay"``).

    Attributes
    ----------
    underlying : str, optional
        Underlying replayed (default: the strategy's chain symbol, else ``[data.underlying]``'s
        root, else ``SPX``).
    roots : list of str, optional
        Option roots replayed (default: the strategy's ``root`` parameter when it has one).
    start, end : date, date-time or str, optional
        Replay window (default: the whole store); a date as ``end`` means the whole day.
    speed : float
        Recorded seconds per wall second (60: a recorded minute per second); 0 = no waiting.
    db : str, optional
        Chain store to replay (default ``[data.chains].db``).
    underlying_bars : str, optional
        Minute bars of the underlying (CSV, ``brokers.live.load_minute_bars``) for snapshots
        without an underlying price (Lean minute quotes).
    settlement : str, optional
        Daily OHLC source (``load_ohlc`` spec) for settlement; default ``[data.underlying]``,
        else the store's ``underlying_prices``.
    settlement_root : str, optional
        ``root`` of a long-format ``settlement`` file (default: the underlying).
    """

    underlying: str | None = None
    roots: list[str] | None = None
    start: dt.datetime | dt.date | str | None = None
    end: dt.datetime | dt.date | str | None = None
    speed: float = Field(0.0, ge=0.0)
    db: str | None = None
    underlying_bars: str | None = None
    settlement: str | None = None
    settlement_root: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _timestamp_like(value)


class AlpacaBrokerConfig(_Strict):
    """``[broker.alpaca]``: Alpaca paper trading (``kind = "alpaca-paper"``).

    Keys are read from the environment (``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``); a config
    has no place for them.

    Attributes
    ----------
    base_url, data_url : str
        Trading (paper) and market-data endpoints.
    underlying : str
        Underlying whose chain is read (Alpaca lists equity/ETF options: ``SPY``, not SPX).
    roots : list of str, optional
        Option roots kept (default: the underlying).
    symbol_map : dict of str to str
        Explicit mapping of the strategy's symbols/roots to Alpaca's (``{SPX = "SPY", SPXW =
        "SPY"}``). SPY is a different underlying (about a tenth of the index, American style,
        physically settled, dividends), not a rescaled SPX; an SPX/SPXW strategy is refused
        without this map.
    option_feed : {"indicative", "opra"}
    stock_feed : {"iex", "sip"}
    poll_seconds : float
        Wall seconds between chain snapshots.
    max_dte : int, optional
        Expirations within this many calendar days.
    fill_timeout_seconds : float
        Wait for a marketable order to fill before cancelling the rest.
    request_timeout_seconds : float
        HTTP read timeout.
    """

    base_url: str = "https://paper-api.alpaca.markets"
    data_url: str = "https://data.alpaca.markets"
    underlying: str = "SPY"
    roots: list[str] | None = None
    symbol_map: dict[str, str] = Field(default_factory=dict)
    option_feed: Literal["indicative", "opra"] = "indicative"
    stock_feed: Literal["iex", "sip"] = "iex"
    poll_seconds: float = Field(60.0, ge=0.0)
    max_dte: int | None = Field(7, ge=0)
    fill_timeout_seconds: float = Field(30.0, ge=0.0)
    request_timeout_seconds: float = Field(10.0, gt=0.0)

    @model_validator(mode="after")
    def _upper(self) -> AlpacaBrokerConfig:
        self.symbol_map = {k.strip().upper(): v.strip().upper() for k, v in self.symbol_map.items()}
        self.underlying = self.underlying.strip().upper()
        return self


class SafetyConfig(_Strict):
    """``[broker.safety]``: pre-trade limits, kill switch, retries, audit log of live sessions.

    See :class:`brokers.live.safety.RiskLimits` for the exact rules.
    """

    max_contracts_per_order: int | None = Field(10, ge=1)
    max_open_positions: int | None = Field(20, ge=1)
    max_notional: float | None = Field(None, gt=0.0)
    allowed_roots: list[str] | None = Field(None, min_length=1)
    kill_switch_file: str = "results/paper/KILL"
    flatten_on_kill: bool = True
    max_retries: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(0.5, ge=0.0)
    max_backoff_seconds: float = Field(8.0, ge=0.0)
    audit_dir: str = "results/paper"


class BrokerConfig(_Strict):
    """``[broker]``: which broker runs the strategy and its costs.

    ``kind`` is the one line that moves a strategy from the backtest to a paper venue:
    ``backtest`` (``volsuite run``: walk-forward on :class:`brokers.OptionsBroker`), ``replay``
    (``volsuite paper``: recorded quotes on the local replay venue, ``[broker.replay]``) or
    ``alpaca-paper`` (``volsuite paper``: Alpaca paper trading, ``[broker.alpaca]``). The cost
    fields apply to all three; ``[broker.safety]`` to the paper kinds. ``volsuite run`` always
    backtests, whatever ``kind`` says.

    The sub-sections are excluded from ``model_dump()`` (they are not ``OptionsBroker`` params);
    :meth:`backtest_params` is the cost part.
    """

    kind: Literal["backtest", "replay", "alpaca-paper"] = "backtest"
    commission_per_contract: float = Field(1.0, ge=0.0)
    slippage_spread_fraction: float = Field(0.5, ge=0.0, le=2.0)
    settlement_fee_per_contract: float = Field(0.0, ge=0.0)
    replay: ReplayBrokerConfig = Field(default_factory=ReplayBrokerConfig, exclude=True)
    alpaca: AlpacaBrokerConfig = Field(default_factory=AlpacaBrokerConfig, exclude=True)
    safety: SafetyConfig = Field(default_factory=SafetyConfig, exclude=True)

    def backtest_params(self) -> dict[str, float]:
        """The :class:`brokers.OptionsBroker` cost params (commission, slippage, settlement
        fee)."""
        return self.model_dump(exclude={"kind"})


class ExperimentSection(_Strict):
    """``[experiment]``: name (results folder, MLflow experiment), cash, description."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    initial_cash: float = Field(100_000.0, gt=0)


class ReportConfig(_Strict):
    """``[report]``: when a run's sample is too small for its ratios to mean anything.

    A run with fewer than ``min_trades`` trades (opening orders, ``experiments.metrics``) or fewer
    than ``min_days`` out-of-sample sessions shows "insufficient sample (n trades)" next to every
    ratio (console, ``volsuite summary``, tearsheet); ``summary.json`` keeps the numbers and the
    note (``metrics.sample``).
    """

    min_trades: int = Field(10, ge=0)
    min_days: int = Field(60, ge=0)


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
    report: ReportConfig = Field(default_factory=ReportConfig)
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
