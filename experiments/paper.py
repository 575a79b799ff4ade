"""``volsuite paper``: run a strategy on a paper venue with the parameters a walk-forward chose.

The experiment config is the backtest's own; ``[broker] kind`` says where orders go:

* ``replay``: the local replay venue (:class:`brokers.live.ReplayVenue`) over the recorded chain
  store, at ``--speed`` recorded seconds per wall second;
* ``alpaca-paper``: Alpaca paper trading (:class:`brokers.live.alpaca.AlpacaAdapter`, keys from
  the environment).

Parameters: the config's ``[strategy.params]`` plus, with ``--from-run RUN``, the best
out-of-sample parameters of that walk-forward run (the last fold's ``best.*`` params: the ones a
live session would trade next), else the plugin's defaults for searched parameters. ``RUN`` is a
``volsuite run`` results folder (or its run id under ``results/<experiment>/``: its
``folds.csv``), or an MLflow run id (the fold child runs' params, else the ``folds.csv``
artifact).

The strategy class and its kwargs are the backtest's, unchanged, for every plugin: they come
from :meth:`strategies.base.StrategyPlugin.cerebro_spec` (by default captured from the plugin's
own ``backtest`` at its ``run_cerebro`` call). :func:`live_components` swaps the spec's chain feed
for the store's live chain feed and keeps other feeds (a market table, bars: the venue clock
follows them); the replay venue replays exactly the spec's chain-feed snapshots
(:func:`recorded_of`), else the plugin's
:meth:`~strategies.base.StrategyPlugin.recorded_quotes`, else ``[data.chains]``, else a quote-less
schedule of the bars (:func:`bar_snapshots`). The broker gets the backtest broker's params.
Everything the session does goes to the audit log
``results/paper/<session>/audit.jsonl``; at the end ``fills.csv``, ``orders.csv``,
``positions.csv`` and ``summary.json`` join it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from brokers.costs import OptionCostModel
from brokers.live import (
    AuditLog,
    KillSwitch,
    KillSwitchEngaged,
    LiveOptionsBroker,
    LiveStore,
    ReplayVenue,
    RetryPolicy,
    RiskLimits,
    new_session_id,
)
from brokers.live.adapter import VenueAdapter
from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot
from data_feeds.errors import VolsuiteError
from data_feeds.minute_bars import load_minute_bars
from data_feeds.snapshot_feed import ChainSnapshotFeed, ListedSnapshots
from experiments.config import ConfigError, ExperimentConfig, load_config
from experiments.paper_state import (
    STATE_FILE,
    kill_report,
    read_state,
    running_sessions,
    wait_for_kill,
)
from strategies import get_strategy
from strategies.base import CerebroSpec, StrategyParams, StrategyPlugin
from strategies.params import RENAMED_PARAMS

ROOTS_NOT_ON_ALPACA = frozenset({"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "VIX", "VIXW"})
"""Index option roots Alpaca does not list (it lists equity and ETF options)."""


# -- parameters ------------------------------------------------------------------------------------
def best_params_from_run(run_id: str, tracking_uri: str) -> tuple[dict[str, str], str]:
    """The best parameters of the last walk-forward fold of an MLflow run.

    Parameters
    ----------
    run_id : str
        The parent run of ``volsuite run`` (its child runs are the folds), or a fold run itself.
    tracking_uri : str
        MLflow tracking URI (``sqlite:///results/mlflow.db``).

    Returns
    -------
    params : dict of str to str
        Parameter name -> value as MLflow stored it (strings; the plugin's ``Params`` model
        converts them).
    source : str
        Which run/fold they came from (for the summary and the audit log).

    Raises
    ------
    ConfigError
        No such run, or no ``best.*`` params in its folds, the run itself or its ``folds.csv``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(f"--from-run {run_id}: not found in {tracking_uri} ({exc})") from None
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    folds = [c for c in children if any(k.startswith("best.") for k in c.data.params)]
    if folds:
        last = max(folds, key=lambda c: (c.data.params.get("test_end", ""), c.info.start_time))
        best = {k[5:]: v for k, v in last.data.params.items() if k.startswith("best.")}
        fold = last.data.tags.get("fold", "?")
        return (
            best,
            f"MLflow run {run_id}, fold {fold} (test end {last.data.params.get('test_end')})",
        )
    own = {k[5:]: v for k, v in run.data.params.items() if k.startswith("best.")}
    if own:
        return own, f"MLflow run {run_id}"
    try:
        local = client.download_artifacts(run_id, "folds.csv")
    except (MlflowException, OSError):
        local = None
    if local is not None:
        try:
            best, where = best_params_from_folds(local)
        except ConfigError:
            pass
        else:
            return best, f"MLflow run {run_id} artifact {where}"
    raise ConfigError(
        f"--from-run {run_id}: no best.* parameters in its folds, the run or folds.csv"
    )


def best_params_from_folds(path: str | Path) -> tuple[dict[str, str], str]:
    """The best parameters of the last fold (latest ``test_end``) of a run folder's ``folds.csv``
    (written by ``volsuite run`` next to the tearsheet, with or without MLflow).

    Raises
    ------
    ConfigError
        No ``best.*`` column or no row.
    """
    path = Path(path)
    frame = pd.read_csv(path, dtype=str)
    cols = [c for c in frame.columns if c.startswith("best.")]
    if not cols or frame.empty:
        raise ConfigError(f"{path}: no best.* parameters (not a walk-forward folds.csv?)")
    row = frame.sort_values("test_end").iloc[-1] if "test_end" in frame else frame.iloc[-1]
    best = {c[5:]: str(row[c]) for c in cols if not pd.isna(row[c])}
    return best, f"{path}, fold {row.get('fold', '?')} (test end {row.get('test_end', '?')})"


def _local_run(run: str, config: ExperimentConfig) -> Path | None:
    """The results folder of ``run``: a folder path, or ``<results_dir>/<experiment>/<run>``."""
    for folder in (
        Path(run),
        Path(config.tracking.results_dir) / config.experiment.name / run,
    ):
        if (folder / "folds.csv").is_file():
            return folder
    return None


def resolve_params(
    config: ExperimentConfig,
    plugin_cls: type[StrategyPlugin],
    *,
    from_run: str | None = None,
    tracking_uri: str | None = None,
) -> tuple[StrategyParams, str]:
    """The strategy parameters of a paper session: ``[strategy.params]`` + the run's best.

    Returns
    -------
    params : StrategyParams
        Validated by the plugin's ``Params`` model.
    source : str
        Where the searched parameters came from.

    Raises
    ------
    ConfigError
        The run's strategy differs from the config's; a parameter the plugin rejects.
    """
    fixed = dict(config.strategy.params)
    source = "config [strategy.params] and plugin defaults"
    if from_run is not None:
        folder = _local_run(from_run, config)
        if folder is not None:
            best, source = best_params_from_folds(folder / "folds.csv")
            meta = folder / "summary.json"
            ran = json.loads(meta.read_text()).get("strategy") if meta.is_file() else None
            if ran is not None and ran != plugin_cls.name:
                raise ConfigError(
                    f"--from-run {from_run}: a {ran} run, but the config runs {plugin_cls.name}"
                )
        else:
            uri = tracking_uri or default_tracking_uri(config)
            best, source = best_params_from_run(from_run, uri)
        fields = set(plugin_cls.Params.model_fields)
        renamed = {k: v for k, v in RENAMED_PARAMS.items() if k in best and v in fields}
        if renamed:  # a run made before the parameter names were unified
            best = {renamed.get(k, k): v for k, v in best.items()}
            source += " (former names " + ", ".join(f"{k} -> {v}" for k, v in renamed.items())
            source += ")"
        unknown = sorted(set(best) - fields)
        if unknown:
            raise ConfigError(
                f"--from-run {from_run}: parameters {unknown} are not parameters of "
                f"{plugin_cls.name}; was the run made with another strategy?"
            )
        fixed.update(best)
    try:
        params = plugin_cls.Params(**fixed)
    except ValueError as exc:
        raise ConfigError(f"strategy parameters for the paper session: {exc}") from None
    return params, source


def default_tracking_uri(config: ExperimentConfig) -> str:
    """``[tracking] mlflow_uri`` or ``sqlite:///<results_dir>/mlflow.db`` (as ``volsuite run``)."""
    if config.tracking.mlflow_uri:
        return config.tracking.mlflow_uri
    return f"sqlite:///{(Path(config.tracking.results_dir) / 'mlflow.db').resolve()}"


def apply_symbol_map(
    params: StrategyParams, symbol_map: Mapping[str, str]
) -> tuple[StrategyParams, list[str]]:
    """Replace string parameters equal to a ``symbol_map`` key by its value (``root = "SPXW"`` ->
    ``"SPY"``), re-validated; returns the new params and one note per replacement."""
    if not symbol_map:
        return params, []
    values = params.model_dump()
    notes = []
    for key, value in values.items():
        if isinstance(value, str) and value.upper() in symbol_map:
            values[key] = symbol_map[value.upper()]
            notes.append(f"strategy.params.{key}: {value} -> {values[key]} (symbol_map)")
    try:
        return type(params)(**values), notes
    except ValueError as exc:
        raise ConfigError(
            f"symbol_map {dict(symbol_map)}: the strategy does not accept the mapped symbols "
            f"({exc})"
        ) from None


# -- the session -----------------------------------------------------------------------------------
@dataclass
class PaperComponents:
    """What a paper session runs: the strategy class (unchanged from the backtest), its kwargs and
    its data feeds (live ones from the store, or the plugin's own historical feed)."""

    strategy_cls: type[bt.Strategy]
    strategy_kwargs: dict[str, Any]
    feeds: list[bt.feed.DataBase]
    note: str = ""


@dataclass
class PaperSession:
    """A paper session ready to run (:func:`build_session`) and, after :meth:`run`, its outcome.

    Attributes
    ----------
    config : ExperimentConfig
    params : StrategyParams
    params_source : str
    venue : VenueAdapter
    store : LiveStore
    broker : LiveOptionsBroker
    components : PaperComponents
    folder : pathlib.Path
        ``results/paper/<session>/``: audit log and end-of-session files.
    strategy : backtrader.Strategy or None
        The running / finished strategy instance.
    notes : list of str
        What the session wants the user to know (symbol map, windows).
    resumed : bool
        ``--resume``: the session id of an earlier run (same client order ids, same folder).
    bar_time : pandas.Timestamp or None
        Time of the strategy's last bar (ET): the replay clock of a strategy on its own feed.
    waited : list of float
        Wall seconds waited between bars to honour ``--speed`` on a strategy's own feed.
    plugin : StrategyPlugin or None
        The plugin whose :meth:`~strategies.base.StrategyPlugin.cerebro_spec` the session runs.
    days : pandas.DatetimeIndex or None
        The plugin's trading days of the replay window (the spec's ``start..end``; the last
        session only on a live venue).
    """

    config: ExperimentConfig
    params: StrategyParams
    params_source: str
    venue: VenueAdapter
    store: LiveStore
    broker: LiveOptionsBroker
    components: PaperComponents
    folder: Path
    cash: float
    notes: list[str] = field(default_factory=list)
    strategy: bt.Strategy | None = None
    on_bar: Callable[[PaperSession], None] | None = None
    resumed: bool = False
    sleep: Callable[[float], None] = time.sleep
    bar_time: pd.Timestamp | None = None
    waited: list[float] = field(default_factory=list)
    plugin: StrategyPlugin | None = None
    days: pd.DatetimeIndex | None = None

    def run(self) -> PaperSession:
        """Run the Cerebro to the end (data exhausted, ``--until``, kill switch) and write the
        end-of-session files. The audit log is written as it goes."""
        cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
        for feed in self.components.feeds:
            cerebro.adddata(feed)
        self.broker.setcash(self.cash)
        self.broker.stop_run = cerebro.runstop  # the kill switch stops a historical feed too
        cerebro.setbroker(self.broker)
        cerebro.addstrategy(self.components.strategy_cls, **self.components.strategy_kwargs)
        cerebro.addanalyzer(_Status, _name="paper_status", session=self)
        write_state(self, running=True)
        try:
            (self.strategy,) = cerebro.run()
        finally:
            try:
                if self.broker.started:  # an exception inside the run: close the session
                    self.broker.stop()
                if not math.isnan(self.broker.start_value):  # the session did start
                    self.write_outputs()
            finally:
                write_state(self, running=False)
                self.store.audit.close()
        return self

    def paces(self) -> bool:
        """The strategy runs on its own historical feed (not the store's live feeds) over a
        replay venue with a finite ``speed > 0``: :meth:`pace` does the waiting the venue's own
        ``tick`` would do."""
        from brokers.live.store import LiveBarFeed

        speed = getattr(self.venue, "speed", None)
        if not isinstance(self.venue, ReplayVenue) or not speed or not math.isfinite(speed):
            return False
        return not any(
            isinstance(f, ChainSnapshotFeed | LiveBarFeed) for f in self.components.feeds
        )

    def pace(self, bar_time: pd.Timestamp) -> float:
        """Wait ``(bar_time - previous bar) / speed`` wall seconds (``--speed`` for a strategy on
        its own feed, e.g. ``zero_dte_straddle``); returns the wait (0 on the first bar, when
        :meth:`paces` is False, or when the clock did not move)."""
        previous, self.bar_time = self.bar_time, bar_time
        if previous is None or not self.paces() or bar_time <= previous:
            return 0.0
        wait = (bar_time - previous).total_seconds() / float(self.venue.speed)  # type: ignore[attr-defined]
        self.waited.append(wait)
        self.sleep(wait)
        return wait

    def write_outputs(self) -> None:
        """``fills.csv``, ``orders.csv``, ``positions.csv``, ``summary.json`` next to the audit
        log."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.broker.fills_frame().to_csv(self.folder / "fills.csv", index=False)
        self.broker.orders_frame().to_csv(self.folder / "orders.csv", index=False)
        self.broker.positions_frame().to_csv(self.folder / "positions.csv", index=False)
        summary = {
            "session": self.store.session,
            "experiment": self.config.experiment.name,
            "strategy": self.config.strategy.name,
            "venue": self.venue.name,
            "params": self.params.model_dump(mode="json"),
            "params_source": self.params_source,
            "notes": self.notes,
            "value": _num(self.broker.getvalue()),
            "cash": _num(self.broker.cash),
            "pnl": _num(self.broker.pnl()),
            "orders": len(self.broker.venue_orders),
            "fills": len(self.broker.option_fills),
            "rejections": len(self.broker.rejections),
            "killed": self.broker.killed,
            "kill_complete": self.broker.kill_complete if self.broker.killed else None,
            "kill_status": self.broker.kill_status,
            "resumed": self.resumed,
            "reconciliations": [r.summary() for r in self.broker.reconciliations],
        }
        (self.folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


SESSION_CLOSE = dt.time(16, 0)
"""Time (ET) a daily bar's session is taken to end, for the replay clock of a strategy on daily
bars (the bars are stamped with their date)."""


class _Status(bt.Analyzer):
    """After every bar: ``--speed`` pacing of a strategy on its own feed, the state file, and the
    session's ``on_bar`` (the live status display)."""

    params = (("session", None),)

    def next(self) -> None:
        session = self.p.session
        if session is None:
            return
        session.strategy = self.strategy
        stamp = pd.Timestamp(self.strategy.datetime.datetime(0))
        stamp = stamp.tz_localize(TZ) if stamp.tzinfo is None else stamp.tz_convert(TZ)
        if stamp == stamp.normalize():  # a daily bar, stamped with its date: the whole session
            stamp = pd.Timestamp.combine(stamp.date(), SESSION_CLOSE).tz_localize(TZ)
        session.pace(stamp)
        write_state(session, running=True)
        if session.on_bar is not None:
            session.on_bar(session)


def _parse_time(text: Any, reference: dt.date | None) -> pd.Timestamp | None:
    """``--until``: a date-time, or a time of day on ``reference`` (ET)."""
    if text is None:
        return None
    if isinstance(text, dt.datetime | pd.Timestamp):
        ts = pd.Timestamp(text)
    elif isinstance(text, dt.date):
        ts = pd.Timestamp(text) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    else:
        raw = str(text).strip()
        try:
            clock = dt.time.fromisoformat(raw)
        except ValueError:
            clock = None
        if clock is not None:
            day = reference or dt.date.today()
            ts = pd.Timestamp.combine(day, clock)
        else:
            try:
                ts = pd.Timestamp(raw)
            except ValueError:
                raise ConfigError(f"--until {raw!r}: not a time or date-time") from None
            if len(raw) <= 10 and ts == ts.normalize():  # a date: the whole day
                ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts.tz_localize(TZ) if ts.tzinfo is None else ts.tz_convert(TZ)


def _session_folder(config: ExperimentConfig, session: str) -> Path:
    return Path(config.broker.safety.audit_dir) / session


def _safety(config: ExperimentConfig) -> tuple[RiskLimits, KillSwitch, RetryPolicy]:
    s = config.broker.safety
    limits = RiskLimits(
        max_contracts_per_order=s.max_contracts_per_order,
        max_open_positions=s.max_open_positions,
        max_notional=s.max_notional,
        allowed_roots=None if s.allowed_roots is None else frozenset(s.allowed_roots),
    )
    retry = RetryPolicy(
        max_attempts=s.max_retries, backoff=s.backoff_seconds, max_backoff=s.max_backoff_seconds
    )
    return limits, KillSwitch(s.kill_switch_file), retry


def _replay_days(plugin: StrategyPlugin, config: ExperimentConfig, until: Any) -> pd.DatetimeIndex:
    """The plugin's trading days inside ``[broker.replay] start..end`` (default: its last five)
    and not after ``--until``: the window whose backtest Cerebro the replay runs.

    Raises
    ------
    ConfigError
        No trading day of the strategy in the window.
    """
    rc = config.broker.replay
    days = plugin.trading_days()
    dates = pd.Index(days.date)
    if rc.start is not None:
        days = days[dates >= pd.Timestamp(rc.start).date()]
    if rc.end is not None:
        days = days[pd.Index(days.date) <= pd.Timestamp(rc.end).date()]
    if rc.start is None and rc.end is None:
        days = days[-5:]
    if len(days):
        stop = _parse_time(until, days[0].date())
        if stop is not None:
            days = days[pd.Index(days.date) <= stop.date()]
    if len(days) == 0:
        cut = "" if until is None else f" (--until {until})"
        every = plugin.trading_days()
        span = f"it trades {every[0].date()}..{every[-1].date()}" if len(every) else "none at all"
        raise ConfigError(
            f"[broker.replay] start = {rc.start}, end = {rc.end}{cut}: no trading day of "
            f"{plugin.name} in the window ({span})"
        )
    return days


def _chain_feed_of(spec: CerebroSpec) -> Any:
    """The spec's chain feed (the one the venue replaces), or None."""
    from data_feeds.chain_feed import ChainFeed

    for feed in spec.feeds:
        if isinstance(feed, ChainFeed | ChainSnapshotFeed):
            return feed
    return None


def recorded_of(feed: Any) -> tuple[str, list[str] | None, ListedSnapshots]:
    """What a backtest chain feed holds, as the replay venue's recorded snapshots.

    Parameters
    ----------
    feed : ChainFeed or ChainSnapshotFeed
        :func:`data_feeds.chain_feed.chain_feed` (one snapshot a day: its times and the same
        ``source.snapshot`` call the feed makes), or a historical
        :class:`data_feeds.snapshot_feed.ChainSnapshotFeed` over a list of snapshots.

    Returns
    -------
    underlying : str
    roots : list of str or None
    recorded : ListedSnapshots
        Exactly the feed's snapshots at the feed's times.
    """
    from data_feeds.chain_feed import ChainFeed

    if isinstance(feed, ChainFeed):
        source, underlying, args = feed._chain_source, feed._chain_underlying, feed._chain_args
        times = pd.DatetimeIndex(feed.features.index)
        times = times.tz_localize(TZ) if times.tz is None else times.tz_convert(TZ)
        dates = dict(zip(times, feed.features["quote_date"], strict=True))

        def load(when: pd.Timestamp) -> ChainSnapshot | None:
            day = dates.get(when)
            if day is None:
                return None
            return source.snapshot(
                underlying,
                day,
                args["quote_time"],
                args["roots"],
                args["liquid_only"],
                args["rate"],
            )

        roots = None if args["roots"] is None else list(args["roots"])
        return underlying.upper(), roots, ListedSnapshots(list(times), load)
    snaps = list(feed.p.snapshots)
    if not snaps:
        raise ConfigError("the strategy's snapshot feed holds no snapshot in the replay window")
    recorded = ListedSnapshots.of(snaps)
    roots = sorted({str(r) for s in snaps for r in s.quotes["root"].unique()})
    return snaps[0].underlying.upper(), roots, recorded


def bar_snapshots(feed: Any, days: pd.DatetimeIndex) -> ListedSnapshots:
    """A quote-less replay schedule for a strategy on bar feeds (no options: ``ou_pairs``): one
    snapshot without quotes per bar of ``feed`` inside ``days``, at that session's close
    (16:00 ET), priced at the bar's close. The venue keeps the clock, the account and the shares
    the broker mirrors to it (:meth:`brokers.live.adapter.VenueAdapter.trade_shares`).

    Raises
    ------
    ConfigError
        The feed is not a pandas bar feed, or has no bar in ``days``.
    """
    from data_feeds.chains import QUOTE_COLUMNS

    frame = getattr(getattr(feed, "p", None), "dataname", None)
    if not isinstance(frame, pd.DataFrame) or "close" not in frame:
        raise ConfigError(
            f"{type(feed).__name__}: the replay venue needs recorded quotes ([data.chains]) or "
            "a pandas bar feed with a close column to keep its clock"
        )
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize(TZ) if index.tz is None else index.tz_convert(TZ)
    close = pd.Series(frame["close"].to_numpy(dtype=float), index=index.normalize())
    close = close[close.index.isin(days.tz_convert(TZ).normalize())]
    if close.empty:
        raise ConfigError(f"{feed._name}: no bar inside the replay window")
    symbol = str(feed._name or "UNDERLYING").upper()
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in QUOTE_COLUMNS})
    snaps = {
        day + pd.Timedelta(hours=16): ChainSnapshot(
            symbol, day + pd.Timedelta(hours=16), float(price), empty, source="bars"
        )
        for day, price in close.items()
    }
    return ListedSnapshots(sorted(snaps), lambda t: snaps.get(t), symbol)


def _replay_venue(
    config: ExperimentConfig,
    data: Mapping[str, Any],
    plugin: StrategyPlugin,
    params: StrategyParams,
    spec: CerebroSpec,
    days: pd.DatetimeIndex,
    *,
    speed: float | None,
    sleep: Callable[[float], None] | None,
) -> tuple[ReplayVenue, dict[str, pd.DataFrame]]:
    """The replay venue of a spec. Its quotes, in this order: exactly the snapshots of the spec's
    chain feed (the backtest's own quotes and times); else the plugin's
    :meth:`~strategies.base.StrategyPlugin.recorded_quotes` (a strategy trading on its own
    table); else the chain store's snapshots of the window. A strategy on its own historical
    feed drives the venue clock through the broker. Settlement prices: the backtest broker's,
    else ``[broker.replay] settlement`` / ``[data.underlying]`` / the store's."""
    from data_feeds import load_ohlc
    from data_feeds.chain_store import ChainStore

    rc = config.broker.replay
    p = params.model_dump()
    chain = _chain_feed_of(spec)
    recorded: ListedSnapshots | None = None
    source: Any = None
    own = None if chain is not None else plugin.recorded_quotes(params, days[0], days[-1])
    if chain is not None:
        underlying, roots, recorded = recorded_of(chain)
        underlying = (rc.underlying or underlying).upper()
    elif own:
        recorded = ListedSnapshots.of(own)
        underlying = (rc.underlying or own[0].underlying).upper()
        roots = sorted({str(r) for snap in own for r in snap.quotes["root"].unique()})
    else:
        underlying = (
            rc.underlying
            or p.get("chain_symbol")
            or (config.data.underlying.root if config.data.underlying else None)
            or "SPX"
        ).upper()
        roots = rc.roots or ([p["root"]] if isinstance(p.get("root"), str) else None)
        if rc.db is not None:
            source = ChainStore(rc.db, read_only=True)
        elif "chains" in data:
            source = data["chains"]
        elif config.data.chains is not None:
            source = ChainStore(config.data.chains.db, read_only=True)
        else:
            recorded = bar_snapshots(spec.feeds[0], days)
            underlying = recorded.underlying
    if rc.settlement is not None:
        settlement = backtest_settlement(config, data, spec, underlying)
        settlement[underlying] = load_ohlc(rc.settlement, root=rc.settlement_root)
    else:
        settlement = backtest_settlement(config, data, spec, underlying)
        if underlying not in settlement and source is not None:
            settlement[underlying] = source.underlying_ohlc(underlying)
    bars = load_minute_bars(rc.underlying_bars, stamp="end") if rc.underlying_bars else None
    bp = _broker_params(spec.broker)
    costs = OptionCostModel(
        commission_per_contract=bp.get("commission_per_contract", 1.0),
        slippage_spread_fraction=bp.get("slippage_spread_fraction", 0.5),
        slippage_by_root=bp.get("slippage_by_root"),
        settlement_fee_per_contract=bp.get("settlement_fee_per_contract", 0.0),
        stock_commission_per_share=bp.get("stock_commission_per_share", 0.0),
    )
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    venue = ReplayVenue(
        source,
        underlying,
        roots=roots,
        start=days[0].normalize().tz_localize(None),
        end=days[-1].normalize().tz_localize(None),
        speed=rc.speed if speed is None else speed,
        costs=costs,
        settlement_prices=settlement,
        cash=spec.cash,
        underlying_bars=bars,
        rate=float(p.get("rate", 0.0) or 0.0),
        recorded=recorded,
        **kwargs,
    )
    return venue, settlement


def backtest_settlement(
    config: ExperimentConfig, data: Mapping[str, Any], spec: CerebroSpec, underlying: str
) -> dict[str, pd.DataFrame]:
    """The settlement prices the backtest settles with: its broker's ``settlement_prices``, else
    the config's ``[data.underlying]`` daily bars when they are ``underlying``'s (root -> OHLC
    frame; empty when neither has them)."""
    settlement: dict[str, pd.DataFrame] = dict(
        getattr(getattr(spec.broker, "p", None), "settlement_prices", None) or {}
    )
    if (
        underlying not in settlement
        and "underlying" in data
        and config.data.underlying is not None
        and (config.data.underlying.root or "").upper() in ("", underlying)
        and isinstance(data["underlying"], pd.DataFrame)
    ):
        settlement[underlying] = data["underlying"]
    return settlement


def _broker_params(broker: Any) -> dict[str, Any]:
    """The :class:`brokers.OptionsBroker` params of a backtest broker (empty for another
    broker, e.g. a plain ``BackBroker``)."""
    from brokers import OptionsBroker

    if not isinstance(broker, OptionsBroker):
        return {}
    names = [name for name, _ in OptionsBroker.params._gettuple()]
    return {name: getattr(broker.p, name) for name in names}


def _feed_names(spec: CerebroSpec) -> list[str]:
    return [str(getattr(f, "_name", "") or type(f).__name__) for f in spec.feeds]


def live_components(
    spec: CerebroSpec, store: LiveStore, *, venue_kind: str, name: str
) -> PaperComponents:
    """The paper session's Cerebro from a backtest's :class:`strategies.base.CerebroSpec`: the
    same strategy class and kwargs; the chain feed replaced by the store's live chain feed (same
    underlying and roots); other feeds (bars, a market table) kept, the venue clock following
    them through the broker (:meth:`brokers.live.adapter.VenueAdapter.sync`).

    Raises
    ------
    ConfigError
        On ``alpaca-paper``, a strategy whose feeds are all historical (it has no live feed to
        read there: replay only). On ``ibkr-paper`` such a strategy trades the days its own
        table holds, the venue clock waiting for each of its bars
        (:meth:`brokers.live.ibkr.IBKRAdapter.sync`): a replayed session.
    """
    from data_feeds.chain_feed import ChainFeed

    feeds: list[bt.feed.DataBase] = []
    live = 0
    for feed in spec.feeds:
        if isinstance(feed, ChainFeed):
            roots = feed._chain_args["roots"]
            feeds.append(
                store.getdata(
                    feed._chain_underlying,
                    roots=None if roots is None else list(roots),
                    features=False,
                    name=getattr(feed, "_name", None) or None,
                )
            )
            live += 1
        elif isinstance(feed, ChainSnapshotFeed):
            _, roots, _ = recorded_of(feed)
            feeds.append(store.getdata(roots=roots, features=bool(feed.p.features)))
            live += 1
        else:
            feeds.append(feed)
    if live == 0 and venue_kind == "alpaca-paper":
        raise ConfigError(
            f"{name} runs on its own historical feeds ({', '.join(_feed_names(spec))}), not on "
            "chain snapshots a live venue can stream; it paper-trades on [broker] kind = "
            "'replay' only"
        )
    how = "live chain feed" if live else "its own feed, the venue following its clock"
    return PaperComponents(
        spec.strategy_cls,
        dict(spec.strategy_kwargs),
        feeds,
        note=f"{name}: {spec.strategy_cls.__name__} on {how}",
    )


def _alpaca_venue(config: ExperimentConfig, params: StrategyParams) -> VenueAdapter:
    from brokers.live.alpaca import AlpacaAdapter

    ac = config.broker.alpaca
    return AlpacaAdapter(
        ac.underlying,
        roots=ac.roots,
        base_url=ac.base_url,
        data_url=ac.data_url,
        option_feed=ac.option_feed,
        stock_feed=ac.stock_feed,
        poll_seconds=ac.poll_seconds,
        max_dte=ac.max_dte,
        timeout=(5.0, ac.request_timeout_seconds),
    )


def _ibkr_venue(
    config: ExperimentConfig, *, sleep: Callable[[float], None] | None = None
) -> VenueAdapter:
    """The Interactive Brokers paper venue of ``[broker.ibkr]`` (connected when the session's
    broker starts)."""
    from brokers.live.ibkr import IBKRAdapter

    ic = config.broker.ibkr
    kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    return IBKRAdapter(
        ic.underlying,
        roots=ic.roots,
        host=ic.host,
        port=ic.port,
        client_id=ic.client_id,
        account=ic.account,
        market_data=ic.market_data,
        poll_seconds=ic.poll_seconds,
        max_dte=ic.max_dte,
        strike_range=ic.strike_range,
        min_tick=ic.min_tick,
        timeout=ic.request_timeout_seconds,
        **kwargs,
    )


def check_alpaca_symbols(params: StrategyParams, symbol_map: Mapping[str, str]) -> None:
    """Refuse an SPX-family strategy on Alpaca unless ``symbol_map`` maps it explicitly.

    Raises
    ------
    ConfigError
        A string parameter names an index root Alpaca does not list and has no mapping.
    """
    for key, value in params.model_dump().items():
        if isinstance(value, str) and value.upper() in ROOTS_NOT_ON_ALPACA:
            if value.upper() not in symbol_map:
                raise ConfigError(
                    f"strategy.params.{key} = {value!r}: Alpaca lists equity and ETF options "
                    f"(SPY), not SPX/SPXW: paper-trade {value.upper()} on [broker] kind = "
                    "'replay', or trade SPY instead (a different underlying: about 1/10 of the "
                    "index, American style, physically settled, pays dividends) with "
                    f'[broker.alpaca] symbol_map = {{ {value.upper()} = "SPY" }}'
                )


def build_session(
    config_path: str | Path,
    *,
    from_run: str | None = None,
    speed: float | None = None,
    until: Any = None,
    tracking_uri: str | None = None,
    sleep: Callable[[float], None] | None = None,
    on_bar: Callable[[PaperSession], None] | None = None,
    session: str | None = None,
    resume: str | None = None,
) -> PaperSession:
    """Load the config, the data and the parameters; build venue, store, broker and strategy.

    Parameters
    ----------
    config_path : str or pathlib.Path
        Experiment config with ``[broker] kind = "replay"`` or ``"alpaca-paper"``.
    from_run : str, optional
        MLflow run whose best out-of-sample parameters to trade.
    speed : float, optional
        Override ``[broker.replay] speed``.
    until : str or timestamp, optional
        Stop at this venue time (``"15:30"`` on the replay's first day / today, or a date-time).
    tracking_uri : str, optional
        MLflow URI (default: the config's).
    sleep : callable, optional
        Replaces ``time.sleep`` in the venue and broker (tests).
    on_bar : callable, optional
        Called with the session after each bar (the live status display).
    session : str, optional
        Session id (default: a new one).
    resume : str, optional
        ``--resume SESSION``: continue that earlier session (:func:`check_resume`): same id (so
        a decision made again carries its earlier client order id and is not sent twice), same
        folder (the audit log is appended to); the start-up reconciliation puts the venue's
        positions and open orders in the book before the strategy's first bar.

    Returns
    -------
    PaperSession

    Raises
    ------
    ConfigError
        ``kind = "backtest"``, an unsupported strategy/venue pair, an SPX strategy on Alpaca
        without ``symbol_map``, a bad ``--from-run``, a ``--resume`` that cannot be resumed.
    UnsafeEndpoint
        ``[broker.alpaca] base_url`` / ``data_url`` not Alpaca's paper / data host (or loopback).
    KillSwitchEngaged
        The kill-switch file exists (the switch latches until cleared).
    """
    from experiments.runner import build_plugin, load_data

    config = load_config(config_path)
    kind = config.broker.kind
    if kind == "backtest":
        raise ConfigError(
            f"{config_path}: [broker] kind = 'backtest'; set kind = 'replay', 'alpaca-paper' or "
            "'ibkr-paper' to paper-trade (volsuite run backtests whatever kind says)"
        )
    if kind == "alpaca-paper":  # before anything else: keys go to Alpaca's hosts only
        from brokers.live.alpaca import DATA_HOST, PAPER_HOST, check_endpoint

        check_endpoint(config.broker.alpaca.base_url, field="base_url", host=PAPER_HOST)
        check_endpoint(config.broker.alpaca.data_url, field="data_url", host=DATA_HOST)
    if resume is not None:
        check_resume(config, resume)
    plugin_cls = get_strategy(config.strategy.name)
    params, source = resolve_params(
        config, plugin_cls, from_run=from_run, tracking_uri=tracking_uri
    )
    notes: list[str] = [f"parameters: {source}"]
    if kind == "alpaca-paper":
        params, mapped = apply_symbol_map(params, config.broker.alpaca.symbol_map)
        notes.extend(mapped)
        check_alpaca_symbols(params, config.broker.alpaca.symbol_map)
    config.strategy.params = params.model_dump(exclude_unset=True)  # defaults re-apply; a
    # nested model (hedge) keeps only what was set, never its cost fields (costs are [costs])
    config.strategy.search_space = {}
    data, reports = load_data(config)
    notes.extend(reports)
    plugin = build_plugin(config, data)
    cash = config.experiment.initial_cash
    settlement: dict[str, pd.DataFrame] = {}
    if kind == "replay":
        days = _replay_days(plugin, config, until)
        spec = plugin.cerebro_spec(params, days[0], days[-1], cash=cash)
        replay, settlement = _replay_venue(
            config, data, plugin, params, spec, days, speed=speed, sleep=sleep
        )
        venue: VenueAdapter = replay
        first_day: dt.date | None = replay.schedule[0].date()
    else:
        days = plugin.trading_days()[-1:]
        spec = plugin.cerebro_spec(params, days[0], days[-1], cash=cash)
        venue = (
            _alpaca_venue(config, params)
            if kind == "alpaca-paper"
            else _ibkr_venue(config, sleep=sleep)
        )
        first_day = None
        if kind == "ibkr-paper":  # the backtest's own settlement prints, for the comparison
            settlement = backtest_settlement(config, data, spec, config.broker.ibkr.underlying)
    limits, kill_switch, retry = _safety(config)
    if kill_switch.engaged():
        raise KillSwitchEngaged(
            f"kill switch engaged ({kill_switch.path}): remove the file or run "
            "'volsuite paper stop --clear' before starting a session"
        )
    session_id = resume or session or new_session_id()
    stop_at = _parse_time(until, first_day)
    folder = _session_folder(config, session_id)
    audit = AuditLog(folder / "audit.jsonl", session_id)
    store = LiveStore(
        venue,
        limits=limits,
        kill_switch=kill_switch,
        flatten_on_kill=config.broker.safety.flatten_on_kill,
        audit=audit,
        session=session_id,
        retry=retry,
        until=stop_at,
    )
    fill_timeout = {
        "replay": 0.0,
        "alpaca-paper": config.broker.alpaca.fill_timeout_seconds,
        "ibkr-paper": config.broker.ibkr.fill_timeout_seconds,
    }[kind]
    broker_kwargs: dict[str, Any] = {
        **config.costs.options_broker_params(),
        **_broker_params(spec.broker),
        "fill_timeout": fill_timeout,
        "strategy_name": config.strategy.name,  # part of every client order id
    }
    if sleep is not None:
        broker_kwargs["sleep"] = sleep
    if settlement:
        broker_kwargs["settlement_prices"] = settlement
    broker = store.getbroker(**broker_kwargs)
    for key, info in getattr(spec.broker, "comminfo", {}).items():
        if key is not None:  # a backtest's per-data commission schemes (share costs)
            broker.addcommissioninfo(info, name=key)
    components = live_components(spec, store, venue_kind=kind, name=config.strategy.name)
    if components.note:
        notes.append(components.note)
    if resume is not None:
        notes.append(
            f"resuming session {resume}: the start-up reconciliation adopts the venue's positions "
            "and open orders; a decision this session already sent is not sent again"
        )
    return PaperSession(
        config,
        params,
        source,
        venue,
        store,
        broker,
        components,
        folder,
        cash,
        notes,
        on_bar=on_bar,
        resumed=resume is not None,
        sleep=sleep or time.sleep,
        plugin=plugin,
        days=days,
    )


def check_resume(config: ExperimentConfig, session: str) -> Path:
    """Whether ``--resume session`` can continue: its folder exists under ``audit_dir`` with an
    audit log, it is not running, and the venue keeps its state between processes.

    Returns
    -------
    pathlib.Path
        The session folder.

    Raises
    ------
    ConfigError
        Not a session id, no such session, the session still running, or ``kind = "replay"``
        (the replay venue's book lives in the session's process: nothing to resume).
    """
    if not session or not all(ch.isalnum() or ch in "-_" for ch in session):
        raise ConfigError(f"--resume {session!r}: a session id has letters, digits, '-', '_'")
    folder = _session_folder(config, session)
    if not (folder / "audit.jsonl").is_file():
        raise ConfigError(
            f"--resume {session}: no session {session} under {config.broker.safety.audit_dir} "
            "(no audit.jsonl)"
        )
    state = read_state(folder)
    if state is not None and state["alive"]:
        raise ConfigError(
            f"--resume {session}: the session is still running (pid {state.get('pid')}); stop "
            "it first ('volsuite paper stop')"
        )
    if config.broker.kind == "replay":
        raise ConfigError(
            f"--resume {session}: the replay venue keeps its book in the session's process, so "
            "a replay cannot be continued; start a new session"
        )
    return folder


def run_paper(config_path: str | Path, **kwargs: Any) -> PaperSession:
    """:func:`build_session` then :meth:`PaperSession.run` (same arguments)."""
    return build_session(config_path, **kwargs).run()


def run_live(
    strategy_cls: type[bt.Strategy],
    store: LiveStore,
    *,
    cash: float,
    roots: Sequence[str] | None = None,
    feed_kwargs: Mapping[str, Any] | None = None,
    strategy_kwargs: Mapping[str, Any] | None = None,
    broker_params: Mapping[str, Any] | None = None,
) -> tuple[bt.Strategy, LiveOptionsBroker]:
    """Run any chain-feed strategy class (an :class:`strategies.OptionStrategy` subclass) on a
    store's live chain feed and broker: the Python face of "same strategy, other broker".

    Returns
    -------
    strategy : backtrader.Strategy
    broker : LiveOptionsBroker
    """
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    cerebro.adddata(store.getdata(roots=roots, **dict(feed_kwargs or {})))
    broker = store.getbroker(**dict(broker_params or {}))
    broker.setcash(cash)
    broker.stop_run = cerebro.runstop
    cerebro.setbroker(broker)
    cerebro.addstrategy(strategy_cls, **dict(strategy_kwargs or {}))
    (strategy,) = cerebro.run()
    return strategy, broker


# -- session state: what `volsuite paper stop` and the status read ------------------------------
def replay_progress(session: PaperSession) -> dict[str, Any] | None:
    """How far a replay session is: the replay clock and the share of the window's recorded
    snapshots it has passed; None for a venue without a schedule (Alpaca).

    The replay clock is the later of the venue clock and the strategy's last bar (a strategy on
    its own feed moves the venue only when it trades). ``done`` is the number of scheduled
    snapshot times at or before the clock over their count (0 before the first tick, 1 at the
    end).

    Returns
    -------
    dict or None
        ``clock`` (ISO, ET), ``start``/``end`` (first/last snapshot), ``snapshots_done``,
        ``snapshots``, ``done`` (fraction in [0, 1]).
    """
    schedule = getattr(session.venue, "schedule", None)
    if not schedule:
        return None
    clock = session.venue.now()
    if session.bar_time is not None and session.bar_time > clock:
        clock = session.bar_time
    done = bisect.bisect_right(schedule, clock)
    return {
        "clock": clock.isoformat(),
        "start": schedule[0].isoformat(),
        "end": schedule[-1].isoformat(),
        "snapshots_done": done,
        "snapshots": len(schedule),
        "done": done / len(schedule),
    }


def session_state(session: PaperSession, *, running: bool) -> dict[str, Any]:
    """The content of the session's :data:`STATE_FILE` now (see there)."""
    broker = session.broker
    return {
        "session": session.store.session,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "running": running,
        "updated": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "venue": session.venue.name,
        "venue_time": session.venue.now().isoformat(),
        "replay": replay_progress(session),
        "resumed": session.resumed,
        "killed": broker.killed,
        "kill_complete": broker.kill_complete if broker.killed else None,
        "kill_status": broker.kill_status,
    }


def write_state(session: PaperSession, *, running: bool) -> Path:
    """Write :func:`session_state` to ``<session folder>/state.json`` (temporary file + rename:
    a reader never sees half a file)."""
    session.folder.mkdir(parents=True, exist_ok=True)
    path = session.folder / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(session_state(session, running=running), indent=1))
    tmp.replace(path)
    return path


# -- status ---------------------------------------------------------------------------------------
def book_greeks(broker: LiveOptionsBroker, snapshot: ChainSnapshot | None) -> dict[str, float]:
    """Dollar greeks of the broker's option book from ``snapshot`` (Black-76 on the parity
    forward, :meth:`ChainSnapshot.with_implied_vols`): ``sum quantity x multiplier x greek``.

    Units as :meth:`strategies.OptionStrategy.book_greeks`: delta per index point (dollar per
    share for SPY), gamma per point, vega per 1.00 of vol, theta per year; legs the snapshot
    cannot price are counted in ``legs_without_greeks``.
    """
    out = {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0, "legs_without_greeks": 0}
    legs = list(broker.option_positions.values())
    if not legs:
        return out
    if snapshot is None:
        out["legs_without_greeks"] = len(legs)
        return out
    return snapshot.position_greeks((p.contract, p.quantity) for p in legs)


def status_renderable(session: PaperSession) -> Any:
    """The live status display: account line, positions, book greeks, last orders (rich)."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    broker = session.broker
    venue = session.venue
    snap = None
    strategy = session.strategy
    if strategy is not None and hasattr(strategy, "snapshot") and strategy.snapshot is not None:
        snap = strategy.snapshot
    else:
        try:
            snap = venue.chain_snapshot(getattr(venue, "underlying", ""))
        except (VolsuiteError, ValueError):
            snap = None
    head = Table.grid(padding=(0, 2))
    for _ in range(6):
        head.add_column()
    progress = replay_progress(session)
    if progress is not None:
        clock = (
            f"replay {pd.Timestamp(progress['clock']):%Y-%m-%d %H:%M}, "
            f"{progress['done']:.0%} of the window ({progress['snapshots_done']}/"
            f"{progress['snapshots']} snapshots)"
        )
    else:
        clock = f"venue time {venue.now():%Y-%m-%d %H:%M}"
    if not broker.killed:
        kill = f"orders {len(broker.venue_orders)}"
    elif broker.kill_complete:
        kill = "[bold red]KILLED[/] (complete)"
    else:
        kill = f"[bold red]KILL NOT COMPLETE[/]: {escape(broker.kill_pending)}"
    head.add_row(
        f"[bold]{venue.name}[/]",
        f"session {session.store.session}",
        clock,
        f"value ${broker.getvalue():,.2f}",
        f"P&L ${broker.pnl():+,.2f}",
        kill,
    )
    pos = Table(title="positions", title_justify="left")
    for col in ("root", "expiration", "strike", "right", "qty", "avg", "mark", "value $"):
        pos.add_column(col, justify="right" if col not in ("root", "right") else "left")
    for p in broker.option_positions.values():
        c = p.contract
        pos.add_row(
            c.root,
            f"{c.expiration}",
            f"{c.strike:g}",
            c.right,
            f"{p.quantity:+d}",
            f"{p.avg_price:.2f}",
            f"{p.mark:.2f}",
            f"{p.market_value:,.0f}",
        )
    g = book_greeks(broker, snap)
    greeks = Table(title="book greeks ($)", title_justify="left")
    for col in ("delta /pt", "gamma /pt", "vega /vol pt", "theta /day", "unpriced legs"):
        greeks.add_column(col, justify="right")
    greeks.add_row(
        f"{g['delta']:,.0f}",
        f"{g['gamma']:,.1f}",
        f"{g['vega'] / 100:,.0f}",
        f"{g['theta'] / 365:,.0f}",
        f"{int(g['legs_without_greeks'])}",
    )
    orders = Table(title="last orders", title_justify="left")
    for col in ("time", "client id", "legs", "qty", "limit", "status", "tag"):
        orders.add_column(col)
    for row in list(broker.order_log)[-8:]:
        orders.add_row(
            f"{pd.Timestamp(row['time']):%H:%M:%S}",
            row["client_order_id"],
            row["legs"],
            str(row["quantity"]),
            f"{row['limit']:+.2f}",
            row["status"],
            row["tag"],
        )
    return Group(head, pos, greeks, orders)


__all__ = [
    "ROOTS_NOT_ON_ALPACA",
    "STATE_FILE",
    "PaperComponents",
    "PaperSession",
    "apply_symbol_map",
    "bar_snapshots",
    "best_params_from_folds",
    "best_params_from_run",
    "book_greeks",
    "build_session",
    "check_alpaca_symbols",
    "check_resume",
    "default_tracking_uri",

    "kill_report",
    "live_components",
    "read_state",
    "recorded_of",
    "replay_progress",
    "resolve_params",
    "run_live",
    "run_paper",
    "running_sessions",
    "session_state",
    "status_renderable",
    "wait_for_kill",
    "write_state",
]
