"""Experiment configs: TOML files validated with pydantic into :class:`ExperimentConfig`.

Unknown keys, wrong types and out-of-range values fail with :class:`ConfigError`, one line naming
the file and the key (``experiments/configs/x.toml: strategy.params.windw: unknown key``).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from brokers.cost_config import CostsConfig, ShareCostConfig
from data_feeds.errors import VolsuiteError
from strategies.params import MOVED_TO_DATA, RENAMED_PARAMS
from strategies.risk.limits import RiskLimits


class ConfigError(VolsuiteError):
    """An experiment config is invalid; the message is one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


class DataFileSpec(_Strict):
    """One input file a strategy reads with its own loader (``[data.option_quotes]``,
    ``[data.index_minute]``, ``[data.vvix]``).

    Attributes
    ----------
    source : str
        Path of the file; relative paths resolve from the working directory, as every other
        ``[data]`` source (the shipped configs use ``../shared/data/...`` from the repository
        root).
    """

    source: str


class DataConfig(_Strict):
    """``[data]``: the series a strategy needs and the date range loaded (warm-up included).

    ``underlying`` is required unless the strategy trades a pair given as ``[data.legs.y]`` and
    ``[data.legs.x]`` (loaded as ``leg_y`` / ``leg_x``).

    Attributes
    ----------
    option_quotes : DataFileSpec, optional
        Minute option quote file (``data_feeds.load_option_minute_quotes`` layout) of the
        auction frame (``vol_dislocation``, ``directional_overlay``); handed to the strategy as
        the path ``data["option_quotes"]``.
    index_minute : DataFileSpec, optional
        SPX index minute bars (``data_feeds.load_minute_bars`` layout) of the same strategies;
        the path ``data["index_minute"]``.
    vvix : DataFileSpec, optional
        Cboe VVIX daily file (``data_feeds.load_vvix``, ``vol_of_vol``); loaded by the runner
        into the series ``data["vvix"]`` (index points).
    """

    start: dt.date | None = None
    end: dt.date | None = None
    underlying: DataSourceSpec | None = None
    vix: DataSourceSpec | None = None
    chains: ChainSourceSpec | None = None
    legs: dict[Literal["y", "x"], LegSpec] | None = None
    option_quotes: DataFileSpec | None = None
    index_minute: DataFileSpec | None = None
    vvix: DataFileSpec | None = None

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
    """Categorical search dimension (at least one choice)."""

    choices: list[Any]

    @field_validator("choices")
    @classmethod
    def _not_empty(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("empty list (expected at least one choice)")
        return value

    def values(self) -> list[Any]:
        """The choices."""
        return list(self.choices)


def _dimension_kind(value: Any) -> str | None:
    """Which search dimension a table is: ``choices`` -> categorical, integer bounds -> integer
    range, else float range (so a bad bound is reported as such, not as an unknown key)."""
    for cls, tag in ((IntRange, "int"), (FloatRange, "float"), (Choice, "choices")):
        if isinstance(value, cls):  # serializing a validated config
            return tag
    if not isinstance(value, dict):
        return None
    if "choices" in value:
        return "choices"
    bounds = [value.get(k) for k in ("low", "high")]
    if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) and not isinstance(
        value.get("step"), float
    ):
        return "int"
    return "float"


Dimension = Annotated[
    Annotated[IntRange, Tag("int")]
    | Annotated[FloatRange, Tag("float")]
    | Annotated[Choice, Tag("choices")],
    Discriminator(
        _dimension_kind,
        custom_error_type="dimension",
        custom_error_message="expected {low, high} or {choices}",
    ),
]


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
    """``[optimize]``: the per-fold Optuna study.

    ``engine`` scores the in-sample trials: ``backtrader`` (a Cerebro per trial, the default) or
    ``vectorbt`` (the strategy's numba kernel, same fills, costs and settlement; only strategies
    with a kernel, docs/engines.md). The out-of-sample run of each fold's best parameters always
    goes through backtrader.
    """

    trials: int = Field(30, ge=1, le=10_000)
    objective: Literal["sharpe", "sortino", "cagr", "calmar", "total_return"] = "sharpe"
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = Field(42, ge=0)
    engine: Literal["backtrader", "vectorbt"] = "backtrader"


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
        Minute bars of the underlying (CSV, ``data_feeds.load_minute_bars``) for snapshots
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


class IBKRBrokerConfig(_Strict):
    """``[broker.ibkr]``: Interactive Brokers paper trading through TWS or IB Gateway
    (``kind = "ibkr-paper"``, :class:`brokers.live.ibkr.IBKRAdapter`).

    The session refuses to start unless the connected account is a paper account (``DU...``).
    TWS / Gateway hold the login; the config and the environment hold no IB credential.

    Attributes
    ----------
    host : str
        Where TWS / IB Gateway listens (``127.0.0.1``: run it on the same machine).
    port : int
        API port: 7497 (TWS paper) or 4002 (IB Gateway paper).
    client_id : int
        API client id (one session per id at a time).
    account : str, optional
        The paper account (``DU1234567``); needed only when the login manages several.
    underlying : str
        Underlying whose chain is read (``SPX``: SPX monthlies AM-settled, SPXW PM-settled, by
        trading class; ``SPY``).
    roots : list of str, optional
        Trading classes kept (default: ``SPX`` and ``SPXW`` for SPX, else the underlying).
    market_data : {"live", "delayed"}
        Market data type requested (``reqMarketDataType`` 1 or 3); without an options
        subscription TWS sends delayed data, which the session flags.
    poll_seconds : float
        Wall seconds between chain snapshots.
    max_dte : int
        Expirations within this many calendar days.
    strike_range : float
        Strikes within this fraction of the underlying price (0.03 = +-3 %).
    min_tick : float
        Limit prices are rounded to this tick in the marketable direction (dollars per share).
    fill_timeout_seconds : float
        Wait for a marketable order to fill before cancelling the rest.
    request_timeout_seconds : float
        Timeout of each API request.
    """

    host: str = "127.0.0.1"
    port: int = Field(7497, ge=1, le=65535)
    client_id: int = Field(1, ge=0)
    account: str | None = None
    underlying: str = "SPX"
    roots: list[str] | None = None
    market_data: Literal["live", "delayed"] = "live"
    poll_seconds: float = Field(60.0, ge=0.0)
    max_dte: int = Field(7, ge=0)
    strike_range: float = Field(0.03, gt=0.0, le=0.5)
    min_tick: float = Field(0.05, gt=0.0)
    fill_timeout_seconds: float = Field(30.0, ge=0.0)
    request_timeout_seconds: float = Field(10.0, gt=0.0)

    @model_validator(mode="after")
    def _upper(self) -> IBKRBrokerConfig:
        self.underlying = self.underlying.strip().upper()
        if self.roots is not None:
            self.roots = [r.strip().upper() for r in self.roots]
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
    """``[broker]``: which broker runs the strategy.

    ``kind`` is the one line that moves a strategy from the backtest to a paper venue:
    ``backtest`` (``volsuite run``: walk-forward on :class:`brokers.OptionsBroker`), ``replay``
    (``volsuite paper``: recorded quotes on the local replay venue, ``[broker.replay]``) or
    ``alpaca-paper`` (``volsuite paper``: Alpaca paper trading, ``[broker.alpaca]``) or
    ``ibkr-paper`` (``volsuite paper``: Interactive Brokers paper account through TWS / IB
    Gateway, ``[broker.ibkr]``).
    ``[broker.safety]`` applies to the paper kinds. ``volsuite run`` always backtests, whatever
    ``kind`` says.

    Costs are in ``[costs]`` (:class:`brokers.cost_config.CostsConfig`, the same for all three
    kinds). The former ``[broker]`` keys ``commission_per_contract``,
    ``slippage_spread_fraction`` and ``settlement_fee_per_contract`` are still read, as aliases
    moved into ``[costs]`` at load (``config.costs`` is the one source after load).
    """

    kind: Literal["backtest", "replay", "alpaca-paper", "ibkr-paper"] = "backtest"
    replay: ReplayBrokerConfig = Field(default_factory=ReplayBrokerConfig, exclude=True)
    alpaca: AlpacaBrokerConfig = Field(default_factory=AlpacaBrokerConfig, exclude=True)
    ibkr: IBKRBrokerConfig = Field(default_factory=IBKRBrokerConfig, exclude=True)
    safety: SafetyConfig = Field(default_factory=SafetyConfig, exclude=True)


BROKER_COST_ALIASES = (
    "commission_per_contract",
    "slippage_spread_fraction",
    "settlement_fee_per_contract",
)
"""``[broker]`` keys read as aliases of the same ``[costs]`` keys (configs written before
``[costs]`` existed)."""


class ExperimentSection(_Strict):
    """``[experiment]``: name (results folder, MLflow experiment), cash, description."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    initial_cash: float = Field(100_000.0, gt=0, description="Starting cash, dollars (finite).")

    @field_validator("name")
    @classmethod
    def _inside_results(cls, value: str) -> str:
        if set(value) == {"."}:
            raise ValueError(
                f"{value!r} would put the run folder outside results_dir/<name> "
                "(expected letters, digits, '_', '-', '.')"
            )
        return value


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
    costs: CostsConfig = Field(default_factory=CostsConfig)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    report: ReportConfig = Field(default_factory=ReportConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="before")
    @classmethod
    def _broker_cost_aliases(cls, raw: Any) -> Any:
        """Move the ``[broker]`` cost aliases into ``[costs]`` (refused when both set one)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("broker"), dict):
            return raw
        broker = dict(raw["broker"])
        moved = {k: broker.pop(k) for k in BROKER_COST_ALIASES if k in broker}
        if not moved:
            return raw
        costs = raw.get("costs", {})
        if not isinstance(costs, dict):
            return raw
        both = sorted(set(moved) & set(costs))
        if both:
            raise ValueError(f"broker.{both[0]}: also set as costs.{both[0]} (keep one)")
        return {**raw, "broker": broker, "costs": {**costs, **moved}}


_DIMENSION_TAGS = {"int", "float", "choices"}


def _loc(loc: tuple[Any, ...]) -> str:
    """Dotted key of a pydantic error location, without union tags."""
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "tagged"))]
    if len(parts) > 3 and parts[:2] == ["strategy", "search_space"] and parts[3] in _DIMENSION_TAGS:
        del parts[3]  # the search dimension's discriminator tag
    return ".".join(parts)


def _format_error(path: Path | str, err: ValidationError) -> str:
    errors = err.errors()
    # a misspelled key shows up as "unknown key" and "required key missing": name the misspelling
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _loc(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = first["msg"].removeprefix("Value error, ")
        if "input" in first and kind not in ("model_type", "value_error"):
            msg += f" (got {first['input']!r})"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc}: {msg}{more}" if loc else f"{path}: {msg}{more}"


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML table of ``path``; :class:`ConfigError` for a file that is not UTF-8 text or not
    TOML (one line naming the file and the byte offset / TOML position)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at byte offset {exc.start}); "
            "save the config as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def _check_results_dir(config: ExperimentConfig, path: Path | str) -> None:
    """Refuse a ``results_dir`` that cannot be a folder (it or a parent is a regular file)."""
    results = Path(config.tracking.results_dir)
    for folder in (results, *results.parents):
        if folder.exists() and not folder.is_dir():
            where = "is" if folder == results else f"is under {str(folder)!r}, which is"
            raise ConfigError(
                f"{path}: tracking.results_dir: {str(results)!r} {where} a regular file "
                "(expected a folder)"
            )


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment config, including the strategy's own parameters.

    Parameters
    ----------
    path : str or pathlib.Path
        TOML file (UTF-8).

    Returns
    -------
    ExperimentConfig
        Validated config; ``config.risk`` holds the strategy's default limits
        (``StrategyPlugin.default_risk``) where ``[risk]`` does not set them.

    Raises
    ------
    ConfigError
        Missing file, a file that is not UTF-8 (the byte offset is named), TOML syntax error,
        unknown key, wrong type, non-finite number or bad range; a run name of only dots; a
        ``results_dir`` under a regular file; unknown strategy; a ``[strategy.params]`` or
        ``[strategy.search_space]`` key the strategy does not have, a search bound the strategy
        rejects, a searched parameter the strategy does not mark tunable (costs and risk limits
        never are), a cost or limit set as a parameter, a ``[risk]`` limit the strategy does
        not enforce. One line naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = _read_toml(path)
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    _check_results_dir(config, path)
    validate_strategy_section(config, path)
    return config


def _cost_and_risk_keys() -> dict[str, str]:
    """Former parameter names of costs and risk limits -> where they are set now."""
    keys = {k: f"costs.{k}" for k in CostsConfig.model_fields if k != "shares"}
    keys |= {k: f"costs.shares.{k}" for k in ShareCostConfig.model_fields}
    keys |= {k: f"risk.{k}" for k in RiskLimits.model_fields}
    keys |= {
        "cost_window": "costs.shares.window_days",
        "max_vega": "risk.max_vega_per_vol_point",
        "max_abs_vega": "risk.max_vega_per_vol_point (dollars per vol point)",
    }
    return keys


COST_AND_RISK_KEYS = _cost_and_risk_keys()
"""Names of costs and risk limits (and their former parameter names) -> their config key."""


def validate_strategy_section(config: ExperimentConfig, path: Path | str) -> None:
    """Check ``[strategy]`` against the registered plugin's ``Params`` model, and ``[risk]``
    against the limits the plugin enforces.

    Every fixed param and both ends of every search dimension are validated (each choice of a
    categorical), so a bad bound fails now, not in trial 17 of fold 4. Only parameters in
    ``Params.tunable`` may be searched. ``config.risk`` gets the plugin's
    :attr:`~strategies.base.StrategyPlugin.default_risk` for the limits ``[risk]`` leaves unset.

    Raises
    ------
    ConfigError
        Unknown strategy name, unknown parameter, a renamed parameter
        (:data:`strategies.params.RENAMED_PARAMS`: ``strategy.params.profit_target: renamed to
        take_profit``), a data file given as a parameter (:data:`strategies.params.MOVED_TO_DATA`),
        a cost or risk limit in ``[strategy]``, a
        searched parameter that is not tunable, a value the strategy rejects, a ``[risk]`` limit
        the strategy does not enforce.
    """
    from strategies import get_strategy

    try:
        plugin = get_strategy(config.strategy.name)
    except KeyError as exc:
        raise ConfigError(f"{path}: strategy.name: {exc.args[0]}") from None
    fields = plugin.Params.model_fields
    for section in ("params", "search_space"):
        for key in getattr(config.strategy, section):
            where = f"{path}: strategy.{section}.{key}"
            if key in RENAMED_PARAMS and key not in fields:
                raise ConfigError(f"{where}: renamed to {RENAMED_PARAMS[key]}")
            if key in MOVED_TO_DATA and key not in fields:
                raise ConfigError(
                    f"{where}: a data file, not a parameter: moved to {MOVED_TO_DATA[key]}"
                )
            if key in COST_AND_RISK_KEYS and key not in fields:
                if section == "search_space":
                    raise ConfigError(
                        f"{where}: not tunable (costs and risk limits are fixed by the config)"
                    )
                raise ConfigError(
                    f"{where}: a cost or risk limit, not a parameter: set {COST_AND_RISK_KEYS[key]}"
                )
            if key not in fields:
                raise ConfigError(
                    f"{where}: unknown key (parameters of "
                    f"{plugin.name}: {', '.join(sorted(fields))})"
                )
            if section == "search_space" and key not in plugin.Params.tunable:
                raise ConfigError(
                    f"{where}: not tunable (fixed by {plugin.name}; set it in [strategy.params])"
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
    unenforced = sorted(config.risk.model_fields_set - plugin.risk_limits)
    if unenforced:
        enforced = ", ".join(sorted(plugin.risk_limits)) or "none"
        raise ConfigError(
            f"{path}: risk.{unenforced[0]}: not enforced by strategy {plugin.name} "
            f"(it enforces: {enforced})"
        )
    if plugin.default_risk:
        set_here = config.risk.model_dump(include=config.risk.model_fields_set)
        config.risk = RiskLimits(**{**plugin.default_risk, **set_here})


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
