"""What a volsuite strategy plugin provides, and the backtrader plumbing every plugin shares.

A plugin couples a backtrader ``Strategy`` with what the experiment runner needs around it:

* ``Params``: a pydantic model of every parameter (defaults, bounds); an experiment config's
  ``[strategy.params]`` and ``[strategy.search_space]`` are validated against it.
* ``prepare(data, grid)``: compute every indicator once for all parameter values of the search space
  (vectorbt broadcast), before any backtest.
* ``backtest(params, start, end)``: one backtrader Cerebro over ``[start, end]``.
* ``benchmark()``: the underlying's buy-and-hold daily returns for the tearsheet.
* ``cerebro_spec(params, start, end, cash=...)``: what ``backtest`` hands to Cerebro (strategy
  class, its kwargs, the feeds, the broker), without running it. The paper runner
  (``experiments.paper``) runs that same strategy class with the same kwargs on the live broker,
  the chain feeds swapped for the venue's live feeds. The default captures the spec from
  :func:`run_cerebro` inside :meth:`StrategyPlugin.backtest`, so a plugin whose backtest ends in
  :func:`run_cerebro` (every shipped one) paper-trades with no code of its own.

The runner (``experiments``) finds plugins by name in :data:`strategies.STRATEGIES` (or the
``volsuite.strategies`` entry-point group) and knows nothing else about them.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from brokers import OptionsBroker
from brokers.cost_config import CostsConfig
from data_feeds.calendar import TZ
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot, settlement_time
from data_feeds.ohlc import fingerprint
from strategies.fast import VectorEngineUnsupported, VectorTrial

if TYPE_CHECKING:  # strategies.risk imports this module (run_cerebro)
    from strategies.risk.limits import RiskLimits


class StrategyParams(BaseModel):
    """Base of every plugin's parameter model: unknown keys are errors, values are validated
    (numbers finite).

    Only the fields named in :attr:`tunable` may be searched (``[strategy.search_space]``); the
    others (data choices, parameters fixed when ``prepare`` builds its tables, cost-like
    assumptions) are set in ``[strategy.params]``. Costs and risk limits are not parameters at
    all: they come from the config's ``[costs]`` / ``[risk]`` (``StrategyPlugin.costs`` /
    ``StrategyPlugin.risk``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Fields the optimizer may search.
    tunable: ClassVar[frozenset[str]] = frozenset()


@dataclass
class BacktestResult:
    """What one backtest produced.

    Attributes
    ----------
    returns : pandas.Series
        Daily simple returns of account value (decimal), indexed by session date; the first day is
        measured against the starting cash.
    value : pandas.Series
        Account value in dollars at each session's end.
    trades : pandas.DataFrame
        Every option fill and settlement (``OptionsBroker.fills_frame``).
    daily_log : pandas.DataFrame
        The strategy's per-day decision log (one row per session).
    info : dict
        Facts for reports, e.g. ``market_source``.
    """

    returns: pd.Series
    value: pd.Series
    trades: pd.DataFrame
    daily_log: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        strategy: bt.Strategy,
        value: pd.Series,
        returns: pd.Series,
        info: dict[str, Any] | None = None,
    ) -> BacktestResult:
        """The result of a finished :func:`run_cerebro` run: ``returns`` and ``value`` as it
        gave them, the broker's fills (``strategy.broker.fills_frame()``, an
        :class:`brokers.OptionsBroker`) and the strategy's ``log_rows`` as the daily log."""
        return cls(
            returns=returns,
            value=value,
            trades=strategy.broker.fills_frame(),
            daily_log=pd.DataFrame(strategy.log_rows),
            info=dict(info or {}),
        )


@dataclass
class CerebroSpec:
    """One Cerebro as a backtest builds it, before it runs: the paper contract.

    Attributes
    ----------
    strategy_cls : type of backtrader.Strategy
        The strategy class the backtest runs (unchanged on a paper venue).
    feeds : list of backtrader data feeds
        The backtest's feeds, the first drives the calendar. Chain feeds
        (:class:`data_feeds.chain_feed.ChainFeed`, :class:`data_feeds.ChainSnapshotFeed`) are
        what the paper runner swaps for the venue's live chain feed; other feeds (bars, a
        market table) are kept and the venue clock follows them.
    broker : backtrader.brokers.BackBroker
        The backtest broker (usually :class:`brokers.OptionsBroker`): its params (cost model,
        settlement source) and commission schemes are copied onto the live broker.
    cash : float
        Starting cash in dollars.
    strategy_kwargs : dict
        The strategy's backtrader params.
    """

    strategy_cls: type[bt.Strategy]
    feeds: list[Any]
    broker: bt.brokers.BackBroker
    cash: float
    strategy_kwargs: dict[str, Any] = field(default_factory=dict)


_CEREBRO_HOOK: ContextVar[Callable[[CerebroSpec], Any] | None] = ContextVar(
    "volsuite_cerebro_hook", default=None
)


class _SpecCaptured(BaseException):
    """Control flow of :func:`capture_cerebro` (a ``BaseException``: no ``except Exception`` in
    a backtest swallows it); never escapes it."""

    def __init__(self, spec: CerebroSpec) -> None:
        super().__init__("cerebro spec captured")
        self.spec = spec


@contextmanager
def _cerebro_hook(hook: Callable[[CerebroSpec], Any]) -> Iterator[None]:
    token = _CEREBRO_HOOK.set(hook)
    try:
        yield
    finally:
        _CEREBRO_HOOK.reset(token)


def capture_cerebro(build: Callable[[], Any]) -> CerebroSpec:
    """Run ``build`` (a plugin's ``backtest`` call) up to its :func:`run_cerebro` call and return
    what it would have run, without running it.

    Parameters
    ----------
    build : callable
        No-argument callable that ends in :func:`run_cerebro` (or
        :func:`strategies.option_strategy.run_chain_cerebro`).

    Returns
    -------
    CerebroSpec

    Raises
    ------
    RuntimeError
        ``build`` returned without calling :func:`run_cerebro` (e.g. a window without any
        tradable snapshot, where a backtest returns a flat result directly).
    """

    def hook(spec: CerebroSpec) -> Any:
        raise _SpecCaptured(spec)

    try:
        with _cerebro_hook(hook):
            build()
    except _SpecCaptured as captured:
        return captured.spec
    raise RuntimeError(
        "the backtest returned without running a Cerebro (nothing to trade in this window?)"
    )


class StrategyPlugin(ABC):
    """Base class of a registered strategy (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    required_data: ClassVar[tuple[str, ...]]
    #: ``[risk]`` fields this strategy enforces (a config setting another one is refused at load).
    risk_limits: ClassVar[frozenset[str]] = frozenset()
    #: This strategy's defaults of ``[risk]`` fields (the config's ``[risk]`` overrides them).
    default_risk: ClassVar[Mapping[str, Any]] = {}
    #: Attribute holding the market table (:data:`data_feeds.MARKET_COLUMNS` per session plus
    #: ``source``) a strategy without a chain feed trades from; :meth:`recorded_quotes` replays
    #: it. None: the strategy trades on a chain feed.
    quote_table: ClassVar[str | None] = None

    def __init__(
        self,
        fixed: Mapping[str, Any] | None = None,
        broker: Mapping[str, Any] | None = None,
        costs: CostsConfig | None = None,
        risk: RiskLimits | None = None,
    ) -> None:
        """Keep the fixed parameters (``[strategy.params]``, validated by the runner), the cost
        assumptions (``[costs]``) and risk limits (``[risk]``), which are not parameters, an
        empty list of report lines filled by :meth:`prepare` and an empty signal-table cache
        (``_tables``, key -> table).

        Parameters
        ----------
        fixed : mapping, optional
            ``[strategy.params]``.
        broker : mapping, optional
            :class:`brokers.OptionsBroker` params; default ``costs.options_broker_params()``.
        costs : brokers.cost_config.CostsConfig, optional
            Cost assumptions; default ``CostsConfig()``.
        risk : strategies.risk.limits.RiskLimits, optional
            Risk limits; default ``RiskLimits(**default_risk)``.
        """
        from strategies.risk.limits import RiskLimits

        self.fixed = dict(fixed or {})
        self.costs = costs if costs is not None else CostsConfig()
        self.risk = risk if risk is not None else RiskLimits(**self.default_risk)
        self.broker_params = (
            dict(broker) if broker is not None else self.costs.options_broker_params()
        )
        self.reports: list[str] = []
        #: Signal tables :meth:`prepare` builds, by the parameter values they depend on.
        self._tables: dict[Any, pd.DataFrame] = {}
        #: Set by the runner: receives :meth:`progress` lines (None: progress goes nowhere).
        self.on_progress: Callable[[str], None] | None = None

    def progress(self, step: str, done: int | None = None, total: int | None = None) -> None:
        """Report a step of :meth:`prepare` (e.g. ``progress("XGBoost fold", 3, 8)``) to the
        runner's progress display; a no-op when nothing listens. Call it from long preparations
        (model folds, leave-one-out fits) so a user sees work from the first second."""
        listener = getattr(self, "on_progress", None)  # a subclass may skip __init__
        if listener is not None:
            count = f" {done}/{total}" if done is not None and total is not None else ""
            listener(f"{self.name}: {step}{count}")

    def data_needed(self) -> tuple[str, ...]:
        """``[data]`` entries this instance needs (default :attr:`required_data`; a plugin whose
        needs depend on its fixed parameters overrides this)."""
        return self.required_data

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """Write plugin-specific run artifacts (fitted models, feature importance, diagnostics)
        into ``folder`` (the run folder, logged to MLflow with it) and return extra metrics for the
        run summary and MLflow (names without spaces). Called once after the walk-forward; the
        default writes nothing."""
        return {}

    def model_evaluation(self, daily_log: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Model-evaluation tables over the stitched out-of-sample daily log (name -> table).

        Parameters
        ----------
        daily_log : pandas.DataFrame
            The out-of-sample folds' :attr:`BacktestResult.daily_log` rows concatenated in date
            order (one row per out-of-sample session).

        Returns
        -------
        dict[str, pandas.DataFrame]
            Table name (a file-name stem without spaces) -> table; the runner writes each to
            ``evaluation_<name>.csv`` and shows it in the tearsheet. The default is ``{}``.
        """
        return {}

    @abstractmethod
    def prepare(self, data: Mapping[str, pd.DataFrame], grid: Mapping[str, Sequence[Any]]) -> None:
        """Load-time work: indicators for every value in ``grid`` (parameter name -> values)."""

    def trading_days(self) -> pd.DatetimeIndex:
        """Sessions on which the strategy can act (inputs available); the walk-forward calendar.

        The default: the chain quote dates :meth:`prepare` kept (``self.quote_dates``, dates
        with a snapshot inside the underlying's sessions), as New York session timestamps.

        Raises
        ------
        TypeError
            The plugin keeps no ``quote_dates`` and does not override this method.
        """
        dates = getattr(self, "quote_dates", None)
        if dates is None:
            raise TypeError(
                f"{type(self).__name__} keeps no 'quote_dates': override trading_days()"
            )
        return pd.DatetimeIndex([pd.Timestamp(d) for d in dates]).tz_localize(TZ)

    @abstractmethod
    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """Run one backtest over sessions ``start..end`` (inclusive) with ``cash`` dollars."""

    def check_vector_engine(self) -> None:
        """Refuse ``[optimize] engine = "vectorbt"`` when this plugin (or its configuration) has
        no vectorized trial kernel (docs/engines.md); the default has none.

        Raises
        ------
        strategies.fast.VectorEngineUnsupported
            No kernel (a ``ValueError``).
        """
        raise VectorEngineUnsupported(
            f"{self.name}: no vectorized trial engine; use [optimize] engine = \"backtrader\""
        )

    def vector_backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> VectorTrial:
        """An in-sample trial over ``start..end`` scored by the plugin's numba kernel: the daily
        returns :meth:`backtest` would produce (same fills, costs, settlement, sizing, risk
        limits), without a Cerebro (``[optimize] engine = "vectorbt"``, docs/engines.md).

        Raises
        ------
        strategies.fast.VectorEngineUnsupported
            The plugin has no kernel (the default).
        """
        self.check_vector_engine()
        raise VectorEngineUnsupported(f"{self.name}: no vectorized trial engine")

    def benchmark(self) -> pd.Series:
        """Daily returns of the underlying held long (the tearsheet's benchmark).

        The close-to-close returns of ``self.underlying`` (the ``[data]`` underlying frame kept
        by :meth:`prepare`); a plugin benchmarked on something else (``ou_pairs``: leg ``y``)
        overrides this.

        Raises
        ------
        TypeError
            The plugin keeps no ``underlying`` frame and does not override this method.
        """
        return self._own_underlying("benchmark")["close"].pct_change().rename("benchmark")

    def _own_underlying(self, method: str) -> pd.DataFrame:
        """The ``underlying`` frame :meth:`prepare` kept, for the defaults that read it.

        Raises
        ------
        TypeError
            The plugin keeps no ``underlying`` frame (then it must override ``method``).
        """
        underlying = getattr(self, "underlying", None)
        if underlying is None:
            raise TypeError(
                f"{type(self).__name__} keeps no 'underlying' frame: override {method}()"
            )
        return underlying

    def fingerprint_with(
        self, *frames: pd.DataFrame, sep: str = "", side_by_side: bool = False
    ) -> str:
        """A hash of the underlying's OHLC bars (``self.underlying``) followed by one of each
        frame of ``frames`` (the tables a plugin's decisions read), joined by ``sep``
        (:func:`data_feeds.ohlc.fingerprint`): the body of most :meth:`data_fingerprint`. With
        ``side_by_side``: one hash of the bars and the frames put side by side on the bars'
        index (``pandas.concat(axis=1)``) instead.

        Raises
        ------
        TypeError
            The plugin keeps no ``underlying`` frame.
        """
        ohlc = self._own_underlying("data_fingerprint")[["open", "high", "low", "close"]]
        if side_by_side:
            return fingerprint(pd.concat([ohlc, *frames], axis=1))
        return sep.join([fingerprint(ohlc), *(fingerprint(f) for f in frames)])

    def report_folder(self, folder: Path, name: str, report: str = "report.txt") -> Path:
        """``folder/name`` (created) with :attr:`reports` written to ``report`` in it, one line
        each: the start of a plugin's :meth:`write_artifacts`.

        Returns
        -------
        pathlib.Path
            ``folder/name``.
        """
        out = Path(folder) / name
        out.mkdir(parents=True, exist_ok=True)
        (out / report).write_text("\n".join(self.reports) + "\n")
        return out

    @staticmethod
    def grid_combos(
        grid: Mapping[str, Sequence[Any]], base: StrategyParams, keys: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Every combination of the values of ``keys`` in ``grid`` (a key not searched at its
        value in ``base``), in product order (the last key varies fastest): the parameter
        settings :meth:`prepare` builds signal tables for.

        Returns
        -------
        list of dict
            Key -> value, one dict per combination.
        """
        combos: list[dict[str, Any]] = [{}]
        for k in keys:
            values = list(grid.get(k, [getattr(base, k)]))
            combos = [{**c, k: v} for c in combos for v in values]
        return combos

    def check_search_space(self, grid: Mapping[str, Sequence[Any]]) -> None:
        """Refuse a parameter in the search space that ``Params.tunable`` does not name.

        Raises
        ------
        ValueError
            A parameter that is not tunable (fixed at load time, when :meth:`prepare` builds
            its tables, or by the config) is in ``grid``.
        """
        fixed = set(grid) - self.Params.tunable
        if fixed:
            raise ValueError(
                f"parameters {sorted(fixed)} are not tunable (fixed at load time or by the "
                "config); move them from [strategy.search_space] to [strategy.params]"
            )

    def chain_quote_dates(
        self, source: Any, symbol: str, root: str, sessions: pd.Index
    ) -> list[dt.date]:
        """The stored quote dates of ``symbol``/``root`` that are sessions of the underlying.

        Parameters
        ----------
        source : data_feeds.chain_feed.SnapshotSource
            Where the chains are (``quote_dates(symbol, roots)``).
        symbol, root : str
            Chain symbol (e.g. ``"SPX"``) and option root (e.g. ``"SPXW"``).
        sessions : pandas.Index
            The underlying's session timestamps.

        Returns
        -------
        list of datetime.date
            Quote dates inside the sessions; how many stored dates were left out is appended to
            :attr:`reports`.

        Raises
        ------
        ValueError
            No stored quote date is a session of the underlying.
        """
        stored = source.quote_dates(symbol, [root])
        inside = set(pd.DatetimeIndex(sessions).date)
        dates = [d for d in stored if d in inside]
        if not dates:
            raise ValueError(
                f"no {symbol}/{root} quote date inside the underlying's sessions "
                f"({len(stored)} stored)"
            )
        if len(stored) > len(dates):
            self.reports.append(
                f"{len(stored) - len(dates)} {symbol}/{root} quote dates outside the underlying's "
                "sessions are not traded"
            )
        return dates

    def window_days(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        """The :meth:`trading_days` inside ``[start, end]`` (a backtest window).

        Raises
        ------
        ValueError
            No trading day inside the window.
        """
        days = self.trading_days()
        inside = days[(days >= start) & (days <= end)]
        if len(inside) == 0:
            raise ValueError(f"no trading day of {self.name} between {start} and {end}")
        return inside

    def cerebro_spec(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> CerebroSpec:
        """The Cerebro :meth:`backtest` would run over ``start..end``: strategy class, kwargs,
        feeds and broker (the paper contract, see the module docstring).

        The default runs :meth:`backtest` up to its :func:`run_cerebro` call and captures the
        arguments (:func:`capture_cerebro`): the strategy class and kwargs are by construction
        the backtest's. A plugin that does not end its backtest in :func:`run_cerebro`
        overrides this method.

        Raises
        ------
        RuntimeError
            The backtest ran no Cerebro for this window.
        ValueError
            As :meth:`backtest` (no trading day in the window).
        """
        return capture_cerebro(lambda: self.backtest(params, start, end, cash=cash))

    def recorded_quotes(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp
    ) -> list[ChainSnapshot] | None:
        """Quotes for the replay venue of a strategy whose backtest has no chain feed (it trades
        on quotes of its own table): one :class:`data_feeds.chains.ChainSnapshot` per quote time
        in ``start..end``, holding every contract the strategy may trade or hold then.

        With :attr:`quote_table` set: one snapshot per session of that market table at its
        ``trade_minute`` (New York wall clock), with the session's straddle legs at the table's
        bid/ask (root ``params.root``, strike ``strike``, expiry ``expiration_ordinal``) and the
        legs of the previous session's straddle still alive at their mids (``held_strike``,
        ``held_call_mid``, ``held_put_mid``: a kill-switch flatten can trade them); sessions
        without legs or a quote minute are skipped. Symbol ``params.chain_symbol``, rate
        ``params.rate``, source the table's ``source`` label.

        Without it (None) the venue replays the ``[data.chains]`` store (a chain feed's strategy
        never needs this: the venue replays the feed's own snapshots).
        """
        if self.quote_table is None:
            return None
        full = getattr(self, self.quote_table)
        table, p = full.loc[start:end], cast(Any, params)
        out, label = [], str(full["source"].iloc[0])
        held_expiry: dt.date | None = None
        for day, row in table.iterrows():
            legs = []
            if np.isfinite(row["expiration_ordinal"]) and np.isfinite(row["strike"]):
                expiry = dt.date.fromordinal(int(row["expiration_ordinal"]))
                for right in ("C", "P"):
                    side = "call" if right == "C" else "put"
                    bid, ask = row[f"{side}_bid"], row[f"{side}_ask"]
                    legs.append((expiry, row["strike"], right, bid, ask))
            else:
                expiry = None
            held = held_expiry is not None and held_expiry > day.date()
            if held and np.isfinite(row["held_strike"]):
                for right, mid in (("C", row["held_call_mid"]), ("P", row["held_put_mid"])):
                    legs.append((held_expiry, row["held_strike"], right, mid, mid))
            held_expiry = expiry if expiry is not None else held_expiry
            if not legs or not np.isfinite(row["trade_minute"]):
                continue
            minute = int(row["trade_minute"])
            clock = dt.time(minute // 60, minute % 60)
            when = pd.Timestamp(dt.datetime.combine(day.date(), clock))
            quotes = pd.DataFrame(legs, columns=["expiration", "strike", "right", "bid", "ask"])
            quotes["expiration"] = pd.to_datetime(quotes["expiration"])
            quotes.insert(0, "root", p.root)
            quotes["mid"] = (quotes["bid"] + quotes["ask"]) / 2.0
            for col in QUOTE_COLUMNS:
                if col not in quotes:
                    quotes[col] = True if col == "is_liquid" else np.nan
            out.append(
                ChainSnapshot(
                    p.chain_symbol,
                    when.tz_localize(TZ),
                    float(row["spot"]),
                    quotes[list(QUOTE_COLUMNS)],
                    rate=p.rate,
                    source=label,
                )
            )
        return out

    def data_fingerprint(self) -> str:
        """A hash of the inputs (for MLflow tags).

        The default hashes the ``[data]`` underlying frame kept by :meth:`prepare`
        (``self.underlying``, :func:`data_feeds.ohlc.fingerprint`); a plugin whose decisions read
        other inputs (a table it built from the chains, a second leg) overrides this.

        Raises
        ------
        TypeError
            The plugin keeps no ``underlying`` frame and does not override this method.
        """
        underlying = self._own_underlying("data_fingerprint")
        return fingerprint(underlying)


class DailyValue(bt.Analyzer):
    """Records ``broker.getvalue()`` and ``broker.getcash()`` at the end of each bar, after the
    strategy has traded (the last bar of a day wins)."""

    def start(self) -> None:
        self.values: dict[dt.date, float] = {}
        self.cash: dict[dt.date, float] = {}

    def next(self) -> None:
        day = self.data.datetime.date(0)
        self.values[day] = self.strategy.broker.getvalue()
        self.cash[day] = self.strategy.broker.getcash()

    def get_analysis(self) -> dict[dt.date, float]:
        return self.values


def run_cerebro(
    strategy_cls: type[bt.Strategy],
    feeds: Sequence[bt.feeds.PandasData],
    broker: bt.brokers.BackBroker,
    *,
    cash: float,
    strategy_kwargs: Mapping[str, Any] | None = None,
) -> tuple[bt.Strategy, pd.Series, pd.Series]:
    """Run a Cerebro with one strategy and return it with its daily value and returns.

    Parameters
    ----------
    strategy_cls : type of backtrader.Strategy
        Strategy to run.
    feeds : sequence of backtrader data feeds
        Data, the first one drives the calendar.
    broker : backtrader.brokers.BackBroker
        Broker instance (e.g. :class:`brokers.OptionsBroker`).
    cash : float
        Starting cash in dollars.
    strategy_kwargs : mapping, optional
        Strategy params.

    Returns
    -------
    strategy : backtrader.Strategy
        The finished strategy instance.
    value : pandas.Series
        Account value (dollars) per session, tz-aware index. ``value.attrs["cash"]`` maps each
        session timestamp to the broker's cash (dollars), so positions value = value - cash.
    returns : pandas.Series
        Daily simple returns; the first against ``cash``.

    Notes
    -----
    The window ends flat: with an :class:`brokers.OptionsBroker`, positions still open after the
    last bar are closed at their marks (:meth:`brokers.OptionsBroker.close_out`, fills tagged
    ``window end``; the value does not change), so the broker's fills (``fills_frame``) account
    for the whole change of value. Inside :func:`capture_cerebro` (the paper runner's
    :meth:`StrategyPlugin.cerebro_spec`) nothing runs: the arguments are handed over as a
    :class:`CerebroSpec`. ``stdstats=False`` and no plotting: backtrader's plotting forces TkAgg
    and must never run headless. ``runonce`` vectorizes indicators; ``preload`` is on.
    """
    hook = _CEREBRO_HOOK.get()
    if hook is not None:
        kwargs = dict(strategy_kwargs or {})
        return hook(CerebroSpec(strategy_cls, list(feeds), broker, cash, kwargs))
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    for feed in feeds:
        cerebro.adddata(feed)
    broker.setcash(cash)
    cerebro.setbroker(broker)
    cerebro.addstrategy(strategy_cls, **dict(strategy_kwargs or {}))
    cerebro.addanalyzer(DailyValue, _name="daily_value")
    (strategy,) = cerebro.run()
    analyzer = strategy.analyzers.daily_value
    values, cash_by_day = dict(analyzer.values), dict(analyzer.cash)
    if values and isinstance(broker, OptionsBroker):
        last = max(values)
        if broker.close_out(settlement_time(last, "PM")):
            cash_by_day[last] = broker.getcash()
    index = pd.DatetimeIndex(pd.to_datetime(list(values.keys()))).tz_localize("America/New_York")
    value = pd.Series(list(values.values()), index=index, name="value", dtype=float)
    # a plain dict (not a Series): pandas compares attrs when it combines frames
    value.attrs["cash"] = {ts: float(cash_by_day[d]) for ts, d in zip(index, values, strict=True)}
    prev = np.concatenate([[cash], value.to_numpy()[:-1]])
    returns = pd.Series(value.to_numpy() / prev - 1.0, index=index, name="returns")
    return strategy, value, returns


SHARE_FILL_COLUMNS = ("date", "leg", "size", "price", "commission", "status")
"""Columns of a share strategy's fill records (:class:`ShareFills`)."""


class ShareFills:
    """Mixin of a backtrader share strategy (before ``bt.Strategy``): every order's outcome is
    recorded in ``self.fills`` (a list the strategy creates in ``__init__``), one dict of
    :data:`SHARE_FILL_COLUMNS` each, dated by the first data's bar; a completed order then
    calls :meth:`notify_fill`. :func:`share_fills_frame` turns the records into a backtest's
    ``trades``.

    A canceled, margin-refused or rejected order is recorded with ``size = 0``, ``price = nan``
    and its status name; a completed one with the executed size (shares, signed), price
    (dollars) and commission (dollars).
    """

    fills: list[dict[str, Any]]

    def notify_order(self, order: bt.Order) -> None:
        """Record the order's fill or refusal (class docstring)."""
        head = (self.datas[0].datetime.date(0), order.data._name)  # type: ignore[attr-defined]
        if order.status != order.Completed:
            if order.status in (order.Canceled, order.Margin, order.Rejected):
                refused = (*head, 0.0, math.nan, 0.0, order.getstatusname())
                self.fills.append(dict(zip(SHARE_FILL_COLUMNS, refused, strict=True)))
            return
        ex = order.executed
        filled = (*head, float(ex.size), float(ex.price), float(ex.comm), "Completed")
        self.fills.append(dict(zip(SHARE_FILL_COLUMNS, filled, strict=True)))
        self.notify_fill(float(ex.size), float(ex.price), float(ex.comm))

    def notify_fill(self, size: float, price: float, commission: float) -> None:
        """Hook: a completed fill of ``size`` shares (signed) at ``price``, ``commission``
        dollars; the default does nothing."""


def share_fills_frame(
    fills: Sequence[Mapping[str, Any]],
    broker: bt.brokers.BackBroker,
    feeds: Sequence[bt.feeds.DataBase],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A share strategy's ``trades`` frame: its fill records (:class:`ShareFills`) with
    ``cash_flow = -size * price - commission`` (dollars; 0 for a refused order) followed by
    the window-end rows of the positions still open (:func:`window_end_rows`).

    Returns
    -------
    trades : pandas.DataFrame
        Columns :data:`SHARE_FILL_COLUMNS` and ``cash_flow``.
    closes : pandas.DataFrame
        The window-end rows alone.
    """
    frame = pd.DataFrame(list(fills), columns=list(SHARE_FILL_COLUMNS))
    frame["cash_flow"] = -frame["size"] * frame["price"].fillna(0.0) - frame["commission"]
    closes = window_end_rows(broker, feeds)
    return pd.concat([frame, closes], ignore_index=True), closes


def window_end_rows(
    broker: bt.brokers.BackBroker, feeds: Sequence[bt.feeds.DataBase]
) -> pd.DataFrame:
    """Share positions of a backtrader broker still open after the last bar, as window-end rows.

    The share-strategy twin of :meth:`brokers.OptionsBroker.close_out`: each open position is
    closed at its data's last close with no cost (the account value does not change), so the
    fills of a window plus these rows account for its whole change of value.

    Parameters
    ----------
    broker : backtrader.brokers.BackBroker
        The finished run's broker.
    feeds : sequence of backtrader data feeds
        The traded data; ``_name`` names the leg.

    Returns
    -------
    pandas.DataFrame
        Columns ``date, leg, size, price, commission, status, cash_flow`` (dollars; ``size`` in
        shares, the closing trade's sign; ``status = "window_end"``); empty when flat.
    """
    rows = []
    for data in feeds:
        size = float(broker.getposition(data).size)
        if size:
            price = float(data.close[0])
            rows.append(
                {
                    "date": data.datetime.date(0),
                    "leg": data._name,
                    "size": -size,
                    "price": price,
                    "commission": 0.0,
                    "status": "window_end",
                    "cash_flow": size * price,
                }
            )
    columns = ["date", "leg", "size", "price", "commission", "status", "cash_flow"]
    return pd.DataFrame(rows, columns=columns)
