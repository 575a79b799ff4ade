"""Backfill and update jobs: vendor chains and underlying bars into the chain store.

One quote date at a time, in date order:

1. the vendor client fetches the day (raw responses cached as parquet under ``cache_dir``,
   :mod:`data_feeds.vendors.cache`; retries with backoff on 429/5xx/timeouts/truncated bodies
   honouring ``Retry-After``, :mod:`data_feeds.vendors._http`);
2. the day's rows, in the store's field names, are written to a *staging* parquet file
   ``cache_dir/staging/<vendor>_<root>_<interval>_<YYYYMMDD>.parquet`` and ingested with
   :meth:`data_feeds.chain_store.ChainStore.ingest` in the ``generic`` layout -- the same parsing,
   validation, quarantine and liquidity flag as a file ingest, and **one transaction** per quote
   date;
3. the date is recorded as done in the job state file ``cache_dir/state/<vendor>_<root>_
   <interval>.json`` (written atomically).

Idempotent: the staging file name is fixed per (vendor, root, interval, date) and its rows are
the vendor's, so a re-fetch of a stored day hashes to the same partition content and writes
nothing (``unchanged``); a day whose vendor data changed is replaced. Resumable: with
``resume=True`` a date is skipped (not fetched, not ingested) when the state file lists it as done
AND the store holds its partition from this vendor. A day the vendor returns no rows for is
reported as ``empty`` and NOT marked done (a later run asks again); a day whose requests keep
failing is reported as ``failed`` and the job goes on with the next date.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_feeds.calendar import nyse_sessions
from data_feeds.chain_ingest import FIELDS, ChainIngestConfig, GenericLayout, IngestReport
from data_feeds.chain_store import ChainStore, ReplaceRefusedError, UnderlyingIngestReport
from data_feeds.errors import DataSourceError
from data_feeds.vendors._http import RetriesExhaustedError

INTERVALS = ("eod", "1m")
"""Snapshot intervals a job can fetch."""

_ARROW = {
    "text": pa.string(),
    "right": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "double": pa.float64(),
    "int": pa.float64(),  # nullable; the ingest checks integrality
}
STAGING_SCHEMA = pa.schema([(name, _ARROW[kind]) for name, kind, _ in FIELDS])
"""Arrow schema of a staging file: every store field, typed."""


class ChainSource(Protocol):
    """What a vendor client offers the jobs (see ``thetadata.py`` and ``massive_client.py``)."""

    vendor: str
    requests_sent: int

    def chain_eod(self, root: str, day: dt.date) -> pd.DataFrame: ...

    def chain_minutes(self, root: str, day: dt.date, interval: str = "1m") -> pd.DataFrame: ...

    def expected_expirations(self, root: str, day: dt.date) -> list[dt.date]: ...

    def underlying_eod(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame: ...


def vendor_ingest_config(base: ChainIngestConfig | None = None) -> ChainIngestConfig:
    """``base`` (liquidity, validation, roots) with the identity ``generic`` mapping of a
    staging file (every store field is a column of the same name)."""
    base = base or ChainIngestConfig()
    generic = GenericLayout(columns={name: name for name, _, _ in FIELDS})
    return base.model_copy(update={"generic": generic})


def staging_name(vendor: str, root: str, interval: str, day: dt.date) -> str:
    """File name of a day's staging parquet; also the store's ``data_source`` suffix."""
    return f"{vendor}_{root.upper()}_{interval}_{day:%Y%m%d}.parquet"


def data_source_of(vendor: str, root: str, interval: str, day: dt.date) -> str:
    """``data_source`` the store records for a vendor day (``generic:<staging name>``)."""
    return f"generic:{staging_name(vendor, root, interval, day)}"


def write_staging(frame: pd.DataFrame, path: Path) -> Path:
    """Write a normalized chain frame (columns ``FIELD_NAMES``) as a typed parquet file.

    Raises
    ------
    DataSourceError
        A store field is missing from ``frame`` (names it).
    """
    missing = [n for n, _, _ in FIELDS if n not in frame.columns]
    if missing:
        raise DataSourceError(f"{path.name}: vendor frame lacks store field(s) {missing}")
    arrays = []
    for name, kind, _ in FIELDS:
        col = frame[name]
        if kind in ("double", "int"):
            arrays.append(pa.array(pd.to_numeric(col, errors="coerce"), type=pa.float64()))
        elif kind in ("text", "right"):
            vals = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in col]
            arrays.append(pa.array(vals, type=pa.string()))
        else:
            arrays.append(pa.array(list(col), type=_ARROW[kind]))
    table = pa.Table.from_arrays(arrays, schema=STAGING_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def store_chain_day(
    store: ChainStore,
    frame: pd.DataFrame,
    *,
    vendor: str,
    root: str,
    day: dt.date,
    interval: str,
    staging_dir: Path,
    config: ChainIngestConfig | None = None,
    replace_dates: bool = False,
) -> IngestReport:
    """Validate and store one vendor day in one transaction (the file-ingest path).

    Parameters
    ----------
    store : ChainStore
        Read-write.
    frame : pandas.DataFrame
        The day's rows, columns :data:`~data_feeds.chain_ingest.FIELD_NAMES`.
    vendor, root, interval : str
    day : datetime.date
    staging_dir : pathlib.Path
        Where the staging parquet goes.
    config : ChainIngestConfig, optional
        Liquidity/validation settings (the generic mapping is added).
    replace_dates : bool
        Allow replacing a stored day by fewer rows (see :meth:`ChainStore.ingest`).

    Returns
    -------
    IngestReport

    Raises
    ------
    DataSourceError, DataValidationError, ReplaceRefusedError
        As :meth:`ChainStore.ingest`.
    """
    path = write_staging(frame, staging_dir / staging_name(vendor, root, interval, day))
    return store.ingest(
        path, "generic", config=vendor_ingest_config(config), replace_dates=replace_dates
    )


# -- state -------------------------------------------------------------------------------------
class JobState:
    """The dates a backfill finished, in ``cache_dir/state/<vendor>_<root>_<interval>.json``.

    Parameters
    ----------
    path : pathlib.Path
        JSON file ``{"vendor", "root", "interval", "done": [ISO dates], "updated_at"}``.
    """

    def __init__(self, path: Path, vendor: str, root: str, interval: str) -> None:
        self.path = path
        self.vendor, self.root, self.interval = vendor, root, interval
        self.done: set[dt.date] = set()
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                self.done = {dt.date.fromisoformat(d) for d in data.get("done", [])}
            except (ValueError, TypeError) as exc:
                raise DataSourceError(f"{path}: unreadable job state ({exc})") from exc

    @classmethod
    def for_job(cls, cache_dir: Path, vendor: str, root: str, interval: str) -> JobState:
        """The state file of a (vendor, root, interval) job under ``cache_dir``."""
        name = f"{vendor}_{root.upper()}_{interval}.json"
        return cls(cache_dir / "state" / name, vendor, root.upper(), interval)

    def mark_done(self, day: dt.date) -> None:
        """Record ``day`` as done and rewrite the file atomically."""
        self.done.add(day)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "vendor": self.vendor,
            "root": self.root,
            "interval": self.interval,
            "done": sorted(d.isoformat() for d in self.done),
            "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


def stored_vendor_days(store: ChainStore, vendor: str, root: str, interval: str) -> set[dt.date]:
    """Quote dates whose ``(root, date)`` partition holds this vendor's staging data."""
    prefix = f"generic:{vendor}_{root.upper()}_{interval}_"
    rows = store.connection.execute(
        "SELECT DISTINCT quote_date FROM chain_partitions WHERE root = ? AND starts_with("
        "data_source, ?)",
        [root.upper(), prefix],
    ).fetchall()
    return {r[0] for r in rows}


# -- reports -----------------------------------------------------------------------------------
@dataclass
class DayResult:
    """What happened to one quote date.

    Attributes
    ----------
    day : datetime.date
    status : {'stored', 'unchanged', 'replaced', 'empty', 'failed', 'skipped'}
        ``stored``: new rows written; ``unchanged``: re-fetched, identical; ``replaced``: the
        vendor's data changed; ``empty``: the vendor had no rows (not marked done);
        ``failed``: retries exhausted or the store refused (message in ``error``);
        ``skipped``: done in an earlier run (``resume``).
    rows : int
        Rows the vendor returned.
    quarantined : int
        Of those, rows failing validation (stored in ``quarantined_quotes``).
    missing_expiries : int
        Expirations the vendor lists for the day with no valid stored row.
    error : str
    """

    day: dt.date
    status: str
    rows: int = 0
    quarantined: int = 0
    missing_expiries: int = 0
    error: str = ""


@dataclass
class BackfillReport:
    """A chain backfill's outcome.

    Attributes
    ----------
    vendor, root, interval : str
    days : list of DayResult
        One per NYSE session in the range, in date order.
    requests_sent : int
        HTTP requests the client sent (cache hits excluded).
    cache_hits : int
    """

    vendor: str
    root: str
    interval: str
    days: list[DayResult] = field(default_factory=list)
    requests_sent: int = 0
    cache_hits: int = 0

    def count(self, status: str) -> int:
        """Days with ``status``."""
        return sum(d.status == status for d in self.days)

    @property
    def rows(self) -> int:
        """Rows fetched over the job."""
        return sum(d.rows for d in self.days)

    @property
    def quarantined(self) -> int:
        """Rows quarantined over the job."""
        return sum(d.quarantined for d in self.days)

    def summary(self) -> str:
        """One line: dates by status, rows, quarantined, requests."""
        parts = [
            f"{s} {self.count(s)}"
            for s in ("stored", "replaced", "unchanged", "skipped", "empty", "failed")
            if self.count(s)
        ]
        return (
            f"{self.vendor} {self.root} {self.interval}: {len(self.days)} dates ("
            + ", ".join(parts or ["none"])
            + f"), rows {self.rows:,}, quarantined {self.quarantined:,}, requests "
            f"{self.requests_sent:,}, cache hits {self.cache_hits:,}"
        )


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """NYSE sessions from ``start`` to ``end`` inclusive (``exchange_calendars`` XNYS).

    Raises
    ------
    DataSourceError
        ``end`` before ``start``.
    """
    if end < start:
        raise DataSourceError(f"--end {end} is before --start {start}")
    return [d.date() for d in nyse_sessions(pd.Timestamp(start), pd.Timestamp(end))]


def plan_days(
    store: ChainStore | None,
    state: JobState,
    days: list[dt.date],
    resume: bool,
) -> tuple[list[dt.date], list[dt.date]]:
    """Split ``days`` into ``(to_fetch, done)``; ``done`` only when ``resume``: in the state
    file and in the store (a state entry whose partition is gone is fetched again)."""
    if not resume:
        return list(days), []
    stored = (
        stored_vendor_days(store, state.vendor, state.root, state.interval)
        if store is not None
        else set()
    )
    done = [d for d in days if d in state.done and (store is None or d in stored)]
    return [d for d in days if d not in set(done)], done


def _cache_hits(client: Any) -> int:
    cache = getattr(client, "cache", None)
    return int(cache.hits) if cache is not None else 0


def backfill_chains(
    client: ChainSource,
    store: ChainStore,
    root: str,
    start: dt.date,
    end: dt.date,
    *,
    cache_dir: Path,
    interval: str = "eod",
    resume: bool = False,
    config: ChainIngestConfig | None = None,
    replace_dates: bool = False,
    prefetch: int = 2,
    on_day: Callable[[DayResult, int, int], None] | None = None,
) -> BackfillReport:
    """Fetch and store the chains of ``root`` for every NYSE session from ``start`` to ``end``.

    Parameters
    ----------
    client : ChainSource
        A :class:`~data_feeds.vendors.thetadata.ThetaTerminalClient` or
        :class:`~data_feeds.vendors.massive_client.MassiveChainClient`.
    store : ChainStore
        Read-write.
    root : str
        ``SPX``, ``SPXW`` or ``SPY``.
    start, end : datetime.date
        Inclusive range of quote dates.
    cache_dir : pathlib.Path
        Holds ``raw/`` (the client's cache), ``staging/`` and ``state/``.
    interval : {'eod', '1m'}
    resume : bool
        Skip dates done in an earlier run (state file + store).
    config : ChainIngestConfig, optional
    replace_dates : bool
        Let a re-fetch with fewer rows replace a stored day.
    prefetch : int
        Dates fetched ahead of the one being stored (>= 1; the client's own concurrency limit
        still bounds requests in flight).
    on_day : callable, optional
        ``on_day(result, done_count, total)`` after each date (progress bars; tests inject a
        crash here).

    Returns
    -------
    BackfillReport

    Raises
    ------
    DataSourceError
        Unknown interval, a permanent vendor error (terminal not running, HTTP 403, a redirect),
        or the store's errors other than :class:`ReplaceRefusedError` (reported per day).
    """
    if interval not in INTERVALS:
        raise DataSourceError(f"unknown interval {interval!r}; expected one of {INTERVALS}")
    root = root.upper()
    vendor = client.vendor
    state = JobState.for_job(cache_dir, vendor, root, interval)
    days = sessions_between(start, end)
    todo, done = plan_days(store, state, days, resume)
    report = BackfillReport(vendor, root, interval)
    hits0, req0 = _cache_hits(client), client.requests_sent
    results = {d: DayResult(d, "skipped") for d in done}
    total = len(days)
    n_done = 0
    for d in done:
        n_done += 1
        if on_day is not None:
            on_day(results[d], n_done, total)

    def fetch(day: dt.date) -> pd.DataFrame:
        if interval == "eod":
            return client.chain_eod(root, day)
        return client.chain_minutes(root, day, interval)

    with ThreadPoolExecutor(max_workers=max(1, prefetch)) as pool:
        futures: dict[dt.date, Future[pd.DataFrame]] = {}
        queue = list(todo)
        try:
            for day in todo:
                while queue and len(futures) < max(1, prefetch):
                    nxt = queue.pop(0)
                    futures[nxt] = pool.submit(fetch, nxt)
                fut = futures.pop(day)
                results[day] = _store_day(
                    fut,
                    store,
                    vendor,
                    root,
                    day,
                    interval,
                    cache_dir,
                    config,
                    replace_dates,
                    state,
                    client,
                )
                n_done += 1
                if on_day is not None:
                    on_day(results[day], n_done, total)
        finally:
            for f in futures.values():
                f.cancel()
    report.days = [results[d] for d in days if d in results]
    report.requests_sent = client.requests_sent - req0
    report.cache_hits = _cache_hits(client) - hits0
    return report


def _store_day(
    fut: Future[pd.DataFrame],
    store: ChainStore,
    vendor: str,
    root: str,
    day: dt.date,
    interval: str,
    cache_dir: Path,
    config: ChainIngestConfig | None,
    replace_dates: bool,
    state: JobState,
    client: ChainSource,
) -> DayResult:
    try:
        frame = fut.result()
    except RetriesExhaustedError as exc:
        return DayResult(day, "failed", error=str(exc))
    if frame.empty:
        return DayResult(day, "empty", error="the vendor returned no rows for this session")
    try:
        rep = store_chain_day(
            store,
            frame,
            vendor=vendor,
            root=root,
            day=day,
            interval=interval,
            staging_dir=cache_dir / "staging",
            config=config,
            replace_dates=replace_dates,
        )
    except ReplaceRefusedError as exc:
        return DayResult(day, "failed", rows=len(frame), error=str(exc))
    if rep.partitions_replaced:
        status = "replaced"
    elif rep.partitions_new:
        status = "stored"
    else:
        status = "unchanged"
    state.mark_done(day)
    missing = _missing_expiries(store, client, root, day)
    return DayResult(day, status, len(frame), rep.rows_quarantined, missing)


def _missing_expiries(store: ChainStore, client: ChainSource, root: str, day: dt.date) -> int:
    """Vendor-listed expirations of ``day`` (from ``day`` to the last stored expiry) with no
    valid stored row."""
    stored = {
        r[0]
        for r in store.connection.execute(
            "SELECT DISTINCT expiration_date FROM raw_options_chains WHERE root = ? AND "
            "quote_date = ?",
            [root, day],
        ).fetchall()
    }
    try:
        listed = client.expected_expirations(root, day)
    except RetriesExhaustedError:
        return -1
    hi = max(stored) if stored else day
    return sum(1 for e in listed if day <= e <= hi and e not in stored)


def backfill_underlying(
    client: ChainSource, store: ChainStore, symbol: str, start: dt.date, end: dt.date
) -> UnderlyingIngestReport:
    """Fetch daily bars of ``symbol`` and upsert them (:meth:`ChainStore.ingest_underlying`,
    ``data_source`` ``<vendor>:<SYMBOL>``; idempotent)."""
    frame = client.underlying_eod(symbol, start, end)
    if frame.empty:
        raise DataSourceError(f"{client.vendor}: no daily bars for {symbol} {start}..{end}")
    return store.ingest_underlying(frame, symbol.upper(), f"{client.vendor}:{symbol.upper()}")


@contextmanager
def rich_progress(total: int, label: str) -> Iterator[Callable[[DayResult, int, int], None]]:
    """A rich progress bar of dates done/left and rows; yields an ``on_day`` callback."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    rows = {"n": 0, "q": 0}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "dates | {task.fields[left]} left | rows {task.fields[rows]} "
            "(quarantined {task.fields[q]}) | {task.fields[last]}"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=total, rows="0", q="0", left=str(total), last="")

        def on_day(res: DayResult, done: int, tot: int) -> None:
            rows["n"] += res.rows
            rows["q"] += res.quarantined
            progress.update(
                task,
                completed=done,
                rows=f"{rows['n']:,}",
                q=f"{rows['q']:,}",
                left=str(tot - done),
                last=f"{res.day} {res.status}",
            )

        yield on_day


# -- daily update --------------------------------------------------------------------------------
class VendorSettings(BaseModel):
    """Connection settings of one vendor in ``update.toml``.

    Parameters
    ----------
    base_url : str, optional
        Terminal / API address (default: the vendor's).
    concurrency : int
        Requests in flight (Theta: the subscription's concurrent-request limit).
    timeout : float
        Seconds.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    concurrency: int = Field(default=2, ge=1, le=64)
    timeout: float = Field(default=60.0, gt=0)


class UpdateConfig(BaseModel):
    """``volsuite update --config update.toml`` (see ``experiments/update.example.toml``).

    Parameters
    ----------
    vendor : {'thetadata', 'massive'}
    roots : list of str
        Option roots to fetch (``SPXW``, ``SPX``, ``SPY``).
    db : pathlib.Path
        Chain store.
    cache : pathlib.Path
        Cache directory (raw responses, staging files, job state).
    model : str
        Surface model fitted (``svi`` ...).
    bars_lookback_days : int
        Calendar days of underlying bars re-fetched each run (fills gaps; idempotent).
    thetadata, massive : VendorSettings
    """

    model_config = ConfigDict(extra="forbid")

    vendor: Literal["thetadata", "massive"]
    roots: list[str] = Field(min_length=1)
    db: Path = Path("results/chains.duckdb")
    cache: Path = Path("results/vendor_cache")
    model: str = "svi"
    bars_lookback_days: int = Field(default=10, ge=1)
    thetadata: VendorSettings = Field(default_factory=lambda: VendorSettings(concurrency=2))
    massive: VendorSettings = Field(default_factory=lambda: VendorSettings(concurrency=4))

    @classmethod
    def from_toml(cls, path: str | Path) -> UpdateConfig:
        """Read and validate ``path``.

        Raises
        ------
        DataSourceError
            Missing file or invalid TOML.
        DataValidationError
            Unknown key / wrong value (names the file and the field).
        """
        import tomllib

        from data_feeds.errors import DataValidationError

        p = Path(path)
        if not p.is_file():
            raise DataSourceError(f"{p}: update config not found")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise DataSourceError(f"{p}: not valid TOML ({exc})") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            raise DataValidationError(str(p), f"{loc}: {err['msg']}", field=loc) from exc


def make_client(
    vendor: str,
    *,
    cache_dir: Path | None,
    base_url: str | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
) -> ChainSource:
    """A vendor client with a raw cache under ``cache_dir`` (None: no cache).

    Raises
    ------
    DataSourceError
        Unknown vendor; Massive without ``MASSIVE_API_KEY``.
    """
    from data_feeds.vendors.cache import RawCache

    cache = RawCache(cache_dir) if cache_dir is not None else None
    if vendor == "thetadata":
        from data_feeds.vendors.thetadata import DEFAULT_BASE_URL, ThetaTerminalClient

        return ThetaTerminalClient(
            base_url or DEFAULT_BASE_URL,
            concurrency=concurrency or 2,
            timeout=timeout or 60.0,
            cache=cache,
        )
    if vendor == "massive":
        from data_feeds.vendors.massive_client import DEFAULT_BASE_URL as MASSIVE_URL
        from data_feeds.vendors.massive_client import MassiveChainClient

        return MassiveChainClient(
            base_url=base_url or MASSIVE_URL,
            concurrency=concurrency or 4,
            timeout=timeout or 30.0,
            cache=cache,
        )
    raise DataSourceError(f"unknown vendor {vendor!r}; expected thetadata or massive")


@dataclass
class QualityLine:
    """The data-quality line of one root after an update.

    Attributes
    ----------
    root : str
    day : datetime.date
    status : str
        The day's :class:`DayResult` status.
    quotes : int
        Valid quotes stored for the day.
    quarantined : int
    missing_expiries : int
    fit_rmse : float
        Median over the day's fitted expiries of ``fitted_surfaces.rmse`` (implied-vol RMSE,
        decimal vol); NaN when nothing was fitted.
    fitted_expiries : int
    error : str
    """

    root: str
    day: dt.date
    status: str
    quotes: int
    quarantined: int
    missing_expiries: int
    fit_rmse: float
    fitted_expiries: int
    error: str = ""

    def text(self) -> str:
        """``SPXW 2026-12-04 stored: quotes 14,012, quarantined 3, missing expiries 0, fit
        RMSE 0.0042 (38 expiries)``."""
        rmse = "n/a" if self.fit_rmse != self.fit_rmse else f"{self.fit_rmse:.4f}"
        line = (
            f"{self.root} {self.day:%Y-%m-%d} {self.status}: quotes {self.quotes:,}, quarantined "
            f"{self.quarantined:,}, missing expiries {self.missing_expiries}, fit RMSE {rmse} "
            f"({self.fitted_expiries} expiries)"
        )
        return line + (f" -- {self.error}" if self.error else "")


def previous_session(today: dt.date) -> dt.date:
    """The last NYSE session strictly before ``today`` ("yesterday's chains")."""
    days = sessions_between(today - dt.timedelta(days=10), today - dt.timedelta(days=1))
    return days[-1]


def run_update(
    cfg: UpdateConfig,
    day: dt.date | None = None,
    *,
    client: ChainSource | None = None,
    echo: Callable[[str], None] = print,
) -> list[QualityLine]:
    """Fetch one session's chains and bars, fit surfaces, fill RV/VRP, report quality.

    Steps: (1) :func:`backfill_chains` of every configured root for ``day``; (2)
    :func:`backfill_underlying` of each root's underlying over the last ``bars_lookback_days``;
    (3) :func:`experiments.surface_jobs.fit_surfaces` for ``day``; (4)
    ``store_realized_volatility`` and ``store_vrp_metrics``; (5) one :class:`QualityLine` per
    root, echoed.

    Parameters
    ----------
    cfg : UpdateConfig
    day : datetime.date, optional
        Default: the session before today (ET).
    client : ChainSource, optional
        Default: :func:`make_client` from ``cfg`` (tests pass one bound to a fake).
    echo : callable
        Receives each line.

    Returns
    -------
    list of QualityLine
    """
    from data_feeds.contracts import underlying_of
    from experiments.surface_jobs import fit_surfaces, store_realized_volatility, store_vrp_metrics

    if day is None:
        today = pd.Timestamp.now(tz="America/New_York").date()
        day = previous_session(today)
    settings = cfg.thetadata if cfg.vendor == "thetadata" else cfg.massive
    if client is None:
        client = make_client(
            cfg.vendor,
            cache_dir=cfg.cache,
            base_url=settings.base_url,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
        )
    cfg.db.parent.mkdir(parents=True, exist_ok=True)
    lines: list[QualityLine] = []
    with ChainStore(cfg.db) as store:
        results: dict[str, DayResult] = {}
        for root in cfg.roots:
            rep = backfill_chains(client, store, root, day, day, cache_dir=cfg.cache)
            results[root.upper()] = rep.days[0] if rep.days else DayResult(day, "no session")
        unds = sorted({underlying_of(r) for r in cfg.roots})
        fits: dict[str, tuple[float, int]] = {}
        for und in unds:
            lo = day - dt.timedelta(days=cfg.bars_lookback_days)
            try:
                backfill_underlying(client, store, und, lo, day)
            except DataSourceError as exc:
                echo(f"{und}: bars not updated -- {exc}")
            roots = [r.upper() for r in cfg.roots if underlying_of(r) == und]
            try:
                fit_surfaces(store, day, cfg.model, underlying=und, roots=roots)
                store_realized_volatility(store, und)
                store_vrp_metrics(store, und, cfg.model)
            except DataSourceError as exc:
                echo(f"{und}: surfaces/RV/VRP not updated -- {exc}")
            for r in roots:
                try:
                    row = store.connection.execute(
                        "SELECT median(rmse), count(*) FROM fitted_surfaces WHERE underlying = ? "
                        "AND quote_date = ? AND model_type = ? AND symbol = ?",
                        [und, day, cfg.model.upper(), r],
                    ).fetchone()
                except duckdb.Error:  # no fit ever stored: the table has no 'underlying' yet
                    row = None
                fits[r] = (
                    float(row[0]) if row and row[0] is not None else float("nan"),
                    int(row[1]) if row else 0,
                )
        for root in cfg.roots:
            r = root.upper()
            res = results[r]
            quotes = store.connection.execute(
                "SELECT count(*) FROM raw_options_chains WHERE root = ? AND quote_date = ?",
                [r, day],
            ).fetchone()[0]
            quar = store.connection.execute(
                "SELECT count(*) FROM quarantined_quotes q JOIN chain_partitions p USING "
                "(partition_key) WHERE p.root = ? AND p.quote_date = ?",
                [r, day],
            ).fetchone()[0]
            rmse, n_fit = fits.get(r, (float("nan"), 0))
            line = QualityLine(
                r,
                day,
                res.status,
                int(quotes),
                int(quar),
                max(res.missing_expiries, 0),
                rmse,
                n_fit,
                res.error,
            )
            echo(line.text())
            lines.append(line)
    return lines


# -- backfill time estimate ------------------------------------------------------------------------
THETA_P90_SECONDS = {"greeks_eod": 0.820, "open_interest": 1.191}
"""p90 request durations the Theta v3 OpenAPI spec publishes (``x-concurrent-limit-ttl-ms`` of
``/option/history/greeks/eod`` and ``/option/history/open_interest``, 30 days to 2026-07-08)."""

MASSIVE_FREE_PER_MINUTE = 5
"""Massive free tier: 5 requests a minute (massive.com knowledge base, "What is the request limit
for Massive's RESTful APIs?")."""

MASSIVE_PAID_PER_SECOND = 100.0
"""Paid Massive plans have no hard limit; Massive recommends staying under 100 requests a
second (same article)."""


def requests_per_date(vendor: str, contracts: int, page_limit: int = 1000) -> int:
    """HTTP requests an EOD chain of one date costs.

    Theta: 2 (greeks EOD + open interest, both ``expiration=*``). Massive:
    ``ceil(contracts / page_limit)`` listing pages + one quote and one daily bar per contract +
    one underlying bar.

    Raises
    ------
    DataSourceError
        Unknown vendor.
    """
    if vendor == "thetadata":
        return 2
    if vendor == "massive":
        return -(-contracts // page_limit) + 2 * contracts + 1
    raise DataSourceError(f"unknown vendor {vendor!r}")


def estimate_backfill_seconds(
    vendor: str,
    sessions: int,
    contracts: int,
    *,
    concurrency: int = 1,
    plan: str = "paid",
) -> float:
    """Lower-bound wall time (seconds) of an EOD backfill from the vendors' documented limits.

    Theta Data (no request-rate limit on paid plans; a concurrent-request limit): ``sessions x
    (p90 greeks EOD + p90 open interest) / concurrency`` (:data:`THETA_P90_SECONDS`); on the
    free plan also at most 20 requests a minute. Massive: ``sessions x`` :func:`requests_per_date`
    at 100 requests/s (paid, the recommended ceiling) or 5 a minute (free). Ingest time and the
    size of whole-chain responses are not included (a lower bound).

    Parameters
    ----------
    vendor : {'thetadata', 'massive'}
    sessions : int
        Quote dates (252 in a year).
    contracts : int
        Contracts listed per date (SPXW 2019: median 10,098 in the shipped data).
    concurrency : int
        Theta: concurrent requests of the plan (1 free, 2 value, 4 standard, 8 pro).
    plan : {'paid', 'free'}

    Returns
    -------
    float
        Seconds.
    """
    n_req = sessions * requests_per_date(vendor, contracts)
    if vendor == "thetadata":
        work = sessions * sum(THETA_P90_SECONDS.values()) / concurrency
        return max(work, n_req / (20 / 60)) if plan == "free" else work
    if plan == "free":
        return n_req / (MASSIVE_FREE_PER_MINUTE / 60)
    return n_req / MASSIVE_PAID_PER_SECOND
