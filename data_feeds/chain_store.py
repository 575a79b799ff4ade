"""The option-chain store: a DuckDB file of option quotes, quarantined rows and underlying bars.

``ChainStore`` holds every ingested chain quote in one table, ``raw_options_chains`` (design doc
004 section 2.1, with the changes listed in ``docs/data.md``), and answers the queries the rest of
volsuite needs: which dates and snapshot times exist, the :class:`~data_feeds.chains.ChainSnapshot`
at a time, and the underlying's daily bars for settlement.

Tables
------
``meta``
    ``key, value``; ``schema_version`` (:data:`SCHEMA_VERSION`).
``raw_options_chains``
    One row per valid quote. Natural key ``(root, quote_date, quote_time, expiration_date,
    strike, option_type)``; ``option_type`` is ``'C'``/``'P'`` (not ``CALL``/``PUT``); prices are
    DOUBLE dollars (index points for SPX); ``quote_time`` is the ET wall-clock snapshot time.
``quarantined_quotes``
    The same columns as far as they parsed, plus ``reason``, ``detail``, ``source_row`` (1-based
    data row of the input file, header excluded) and ``partition_key``.
``chain_partitions``
    One row per ``(root, quote_date)`` partition: the content hash of what the last ingest wrote
    there, the data source, row counts. Ingesting a file compares hashes: an equal partition is
    left alone (``unchanged``), a different one is deleted and re-written (``replaced``) in the
    same transaction as everything else of that file.
``ingest_log``
    One row per ingest: file, sha256, format, counts, quarantine reasons (JSON), seconds.
``underlying_prices``
    Daily OHLC per ``(symbol, date)``.
``fitted_surfaces``, ``term_structure_params``, ``realized_volatility``, ``vrp_metrics``
    Empty, with the design's columns; later work fills them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data_feeds.calendar import TZ, is_nyse_session
from data_feeds.chain_ingest import (
    FORMATS,
    ChainIngestConfig,
    IngestReport,
    discover_files,
    file_sha256,
    reason_rank,
    stage_file,
    staged_counts,
)
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from data_feeds.errors import DataSourceError, DataValidationError, VolsuiteError
from data_feeds.file_lock import LockTimeoutError, acquire, release

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
"""Version of the table layout written to ``meta``; a store of another version is refused."""

DEFAULT_PATH = Path("results/chains.duckdb")
"""Default store file, relative to the working directory."""

RAW_COLUMNS = (
    "underlying",
    "symbol",
    "root",
    "quote_date",
    "quote_time",
    "expiration_date",
    "strike",
    "option_type",
    "style",
    "settlement",
    "bid",
    "ask",
    "mid",
    "last",
    "volume",
    "open_interest",
    "implied_volatility",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
    "bid_size",
    "ask_size",
    "underlying_price",
    "is_liquid",
)
"""Columns of ``raw_options_chains`` filled from a file (then ``data_source``,
``ingestion_timestamp``)."""

_RAW_DDL = """
CREATE TABLE IF NOT EXISTS raw_options_chains (
    underlying VARCHAR NOT NULL,
    symbol VARCHAR,
    root VARCHAR NOT NULL,
    quote_date DATE NOT NULL,
    quote_time TIME NOT NULL,
    expiration_date DATE NOT NULL,
    strike DOUBLE NOT NULL,
    option_type VARCHAR NOT NULL,
    style VARCHAR NOT NULL,
    settlement VARCHAR NOT NULL,
    bid DOUBLE NOT NULL,
    ask DOUBLE NOT NULL,
    mid DOUBLE NOT NULL,
    last DOUBLE,
    volume BIGINT,
    open_interest BIGINT,
    implied_volatility DOUBLE,
    delta DOUBLE,
    gamma DOUBLE,
    theta DOUBLE,
    vega DOUBLE,
    rho DOUBLE,
    bid_size BIGINT,
    ask_size BIGINT,
    underlying_price DOUBLE,
    is_liquid BOOLEAN NOT NULL,
    data_source VARCHAR NOT NULL,
    ingestion_timestamp TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantined_quotes (
    underlying VARCHAR,
    symbol VARCHAR,
    root VARCHAR,
    quote_date DATE,
    quote_time TIME,
    expiration_date DATE,
    strike DOUBLE,
    option_type VARCHAR,
    style VARCHAR,
    settlement VARCHAR,
    bid DOUBLE,
    ask DOUBLE,
    mid DOUBLE,
    last DOUBLE,
    volume BIGINT,
    open_interest BIGINT,
    implied_volatility DOUBLE,
    delta DOUBLE,
    gamma DOUBLE,
    theta DOUBLE,
    vega DOUBLE,
    rho DOUBLE,
    bid_size BIGINT,
    ask_size BIGINT,
    underlying_price DOUBLE,
    is_liquid BOOLEAN,
    reason VARCHAR NOT NULL,
    detail VARCHAR,
    source_row BIGINT,
    partition_key VARCHAR NOT NULL,
    data_source VARCHAR NOT NULL,
    ingestion_timestamp TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_partitions (
    partition_key VARCHAR NOT NULL,
    root VARCHAR,
    quote_date DATE,
    data_source VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    rows_stored BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    ingest_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS ingest_id_seq START 1;
CREATE TABLE IF NOT EXISTS ingest_log (
    ingest_id BIGINT NOT NULL,
    file VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    data_source VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_added BIGINT NOT NULL,
    rows_replaced BIGINT NOT NULL,
    rows_deleted BIGINT NOT NULL,
    rows_unchanged BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    quarantined_by_reason VARCHAR NOT NULL,
    liquidity VARCHAR NOT NULL,
    partitions_new BIGINT NOT NULL,
    partitions_replaced BIGINT NOT NULL,
    partitions_unchanged BIGINT NOT NULL,
    config_fingerprint VARCHAR NOT NULL,
    seconds DOUBLE NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS underlying_prices (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE NOT NULL,
    volume DOUBLE,
    data_source VARCHAR NOT NULL,
    PRIMARY KEY (symbol, date)
);
CREATE TABLE IF NOT EXISTS fitted_surfaces (
    symbol VARCHAR NOT NULL,
    quote_date DATE NOT NULL,
    expiration_date DATE NOT NULL,
    tte_years DOUBLE,
    svi_a DOUBLE,
    svi_b DOUBLE,
    svi_rho DOUBLE,
    svi_m DOUBLE,
    svi_sigma DOUBLE,
    atm_vol DOUBLE,
    skew_25delta DOUBLE,
    rmse DOUBLE,
    mae DOUBLE,
    max_error DOUBLE,
    num_points INTEGER,
    passes_no_arbitrage BOOLEAN,
    butterfly_arbitrage_violations INTEGER,
    calendar_arbitrage_violations INTEGER,
    model_type VARCHAR DEFAULT 'SVI',
    model_version VARCHAR,
    fit_timestamp TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (symbol, quote_date, expiration_date, model_type)
);
CREATE TABLE IF NOT EXISTS term_structure_params (
    symbol VARCHAR NOT NULL,
    quote_date DATE NOT NULL,
    atm_term_a DOUBLE,
    atm_term_b DOUBLE,
    atm_term_rmse DOUBLE,
    skew_term_a DOUBLE,
    skew_term_b DOUBLE,
    skew_term_rmse DOUBLE,
    num_expirations INTEGER,
    model_type VARCHAR DEFAULT 'power_law',
    fit_timestamp TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (symbol, quote_date, model_type)
);
CREATE TABLE IF NOT EXISTS realized_volatility (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    rv_10d DOUBLE,
    rv_21d DOUBLE,
    rv_63d DOUBLE,
    rv_252d DOUBLE,
    parkinson_10d DOUBLE,
    parkinson_21d DOUBLE,
    gk_10d DOUBLE,
    gk_21d DOUBLE,
    calculation_timestamp TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (symbol, date)
);
CREATE TABLE IF NOT EXISTS vrp_metrics (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    vrp_30d DOUBLE,
    vrp_60d DOUBLE,
    vrp_90d DOUBLE,
    implied_vol_30d DOUBLE,
    realized_vol_30d DOUBLE,
    vrp_zscore DOUBLE,
    calculation_timestamp TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (symbol, date)
);
"""

TABLES = (
    "meta",
    "raw_options_chains",
    "quarantined_quotes",
    "chain_partitions",
    "ingest_log",
    "underlying_prices",
    "fitted_surfaces",
    "term_structure_params",
    "realized_volatility",
    "vrp_metrics",
)
"""Tables of a store."""

_TEMP_TABLES = ("_src", "_stg", "_sess", "_chk", "_parts", "_plan")


class StoreKeyError(VolsuiteError, KeyError):
    """Something asked of the store is not in it (a ``KeyError`` and a :class:`VolsuiteError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ReplaceRefusedError(DataValidationError):
    """An ingest would replace a stored ``(root, quote_date)`` partition with fewer rows and
    ``replace_dates`` was not given; nothing was written."""


class SnapshotNotFoundError(StoreKeyError):
    """No snapshot of the requested underlying/date/time (and roots) in the store."""


@dataclass
class UnderlyingIngestReport:
    """What :meth:`ChainStore.ingest_underlying` wrote.

    Attributes
    ----------
    symbol, data_source : str
    rows : int
        Bars in the frame.
    added : int
        ``(symbol, date)`` bars new to the store.
    updated : int
        Bars already stored with different values (overwritten).
    unchanged : int
        Bars already stored with equal values (nothing written).
    """

    symbol: str
    data_source: str
    rows: int
    added: int
    updated: int
    unchanged: int


def _as_date(value: Any) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return (value.tz_convert(TZ) if value.tzinfo is not None else value).date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def _as_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str) and len(value) <= 8 and ":" in value and "-" not in value:
        return dt.time.fromisoformat(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(TZ)
    return ts.time()


class ChainStore:
    """A DuckDB option-chain store (see the module docstring for the tables).

    Parameters
    ----------
    path : str or pathlib.Path
        The DuckDB file (default ``results/chains.duckdb`` relative to the working directory);
        created with its tables when missing (unless ``read_only``).
    read_only : bool
        Open read-only (several processes may read one file; no ingest).
    wait : float or None, optional
        Seconds to wait for the store's lock (see Notes). Default: a reader waits as long as an
        ingest takes (``None``); a writer does not wait (``0``).
    on_wait : callable, optional
        Called once when the lock is busy and the store waits for it (e.g. print a line).

    Raises
    ------
    DataSourceError
        ``read_only`` and the file does not exist; the file is not a DuckDB database or another
        process holds it; the store was written by another schema version; a writer did not get
        the lock within ``wait`` seconds because other processes read the store (one line naming
        the file).

    Notes
    -----
    Use as a context manager (``with ChainStore(path) as store: ...``) or call :meth:`close`.

    DuckDB lets many processes open a file read-only, or one process read-write, never both.
    Every volsuite process therefore takes an advisory lock on ``<path>.lock``
    (:mod:`data_feeds.file_lock`) for as long as the store is open: shared when read-only (runs,
    ``chains info``, surface reads, paper replays), exclusive when writing (``ingest``). A
    reader started during an ingest waits for it to finish; ``volsuite ingest`` started while
    another process reads the store stops at once with a one-line error (docs/scaling.md).
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        read_only: bool = False,
        *,
        wait: float | None = -1.0,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._index: dict[tuple[str, dt.date], _DateIndex] | None = None
        self._lock: str | None = None
        if read_only and not self.path.is_file():
            raise DataSourceError(f"{self.path}: chain store not found (ingest chains first)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if wait is not None and wait < 0:  # the default of each mode
            wait = None if read_only else 0.0
        try:
            self._lock = acquire(self.path, shared=read_only, wait=wait, on_wait=on_wait)
        except LockTimeoutError:
            raise DataSourceError(
                f"{self.path}: the chain store is being read by another volsuite process (a run, "
                "chains info, a surface command or a paper replay); write to it when they finish"
                if not read_only
                else f"{self.path}: an ingest is writing the chain store; gave up after {wait} s"
            ) from None
        except OSError as exc:  # no lock file possible (read-only folder): DuckDB still guards
            log.warning("%s: no lock file (%s); opening without it", self.path, exc)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            self._unlock()
            raise DataSourceError(f"{self.path}: cannot open the chain store ({exc})") from exc
        try:
            self._con.execute("SET enable_progress_bar = false")
            self._init_schema()
        except BaseException:
            self._con.close()
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._lock is not None:
            release(self._lock)
            self._lock = None

    # -- lifecycle --------------------------------------------------------------------------------
    def _init_schema(self) -> None:
        con = self._con
        has_meta = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' "
            "AND table_schema = 'main'"
        ).fetchall()[0][0]
        if has_meta:
            rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            version = rows[0][0] if rows else None
            if version != SCHEMA_VERSION:
                raise DataSourceError(
                    f"{self.path}: chain store schema version {version!r}; this volsuite expects "
                    f"{SCHEMA_VERSION!r} (re-ingest into a new file)"
                )
            return
        if self.read_only:
            raise DataSourceError(f"{self.path}: not a chain store (no 'meta' table)")
        con.execute("BEGIN")
        try:
            con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            con.execute(_RAW_DDL)
            con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?), ('created_at', ?)",
                [SCHEMA_VERSION, dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection (for ad-hoc SQL; do not write to the chain tables directly)."""
        return self._con

    def close(self) -> None:
        """Close the connection and release the store's lock (idempotent)."""
        self._con.close()
        self._unlock()

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"ChainStore({str(self.path)!r}, {mode})"

    def _require_writable(self) -> None:
        if self.read_only:
            raise DataSourceError(f"{self.path}: chain store opened read-only")

    # -- ingest -----------------------------------------------------------------------------------
    def ingest(
        self,
        path: str | Path,
        format: str,
        *,
        config: ChainIngestConfig | None = None,
        replace_dates: bool = False,
    ) -> IngestReport:
        """Validate one chain file and write it, atomically and idempotently.

        The file is read bulk into DuckDB temporary tables, every row validated
        (:mod:`data_feeds.chain_ingest`), and split into ``(root, quote_date)`` partitions. A
        partition whose content hash equals the stored one is left alone; a new partition is
        added; a partition with different content (a corrected file, or another file with the
        same root and date) replaces the stored one: its valid and quarantined rows are deleted
        and re-inserted. All writes of the file happen in one transaction: an error part-way
        leaves the store as it was.

        Parameters
        ----------
        path : str or pathlib.Path
            ``.parquet``, ``.csv`` or ``.csv.gz`` file.
        format : {'vendor', 'lean-minute', 'generic'}
            The file layout (see ``docs/data.md``).
        config : ChainIngestConfig, optional
            Liquidity thresholds, vendor snapshot time, extra roots, the generic mapping.
        replace_dates : bool
            Allow a stored ``(root, quote_date)`` partition to be replaced by one with FEWER
            rows (valid + quarantined). Without it such a file is refused, nothing written.

        Returns
        -------
        IngestReport
            Counts read/added/replaced/unchanged/quarantined (by reason), liquidity counts.

        Raises
        ------
        DataSourceError
            Missing/unreadable file (one line naming the file and line), layout not matching
            ``format``, store opened read-only.
        DataValidationError
            Unknown root (names the row), a style that contradicts the root.
        ReplaceRefusedError
            A stored day would be replaced by fewer rows and ``replace_dates`` is False (names
            the root, the date and both row counts); the store is unchanged.
        """
        t0 = time.perf_counter()
        self._require_writable()
        config = config or ChainIngestConfig()
        if format not in FORMATS:
            raise DataSourceError(f"unknown format {format!r}; expected one of {FORMATS}")
        p = Path(path)
        con = self._con
        try:
            staged = stage_file(con, p, format, config)
            report = IngestReport(
                path=str(p),
                format=format,
                data_source=staged.data_source,
                sha256=file_sha256(p),
                rows_read=staged.rows_read,
                notes=list(staged.notes),
            )
            staged_counts(con, report, config)
            fingerprint = f"{SCHEMA_VERSION}|{format}|{config.fingerprint()}"
            self._plan(staged.data_source, fingerprint)
            if not replace_dates:
                self._refuse_shrinking(p)
            self._apply(report, fingerprint, t0)
        finally:
            self._index = None
            for name in _TEMP_TABLES:
                con.execute(f"DROP TABLE IF EXISTS {name}")
        return report

    def ingest_path(
        self,
        path: str | Path,
        format: str,
        *,
        config: ChainIngestConfig | None = None,
        replace_dates: bool = False,
    ) -> list[IngestReport]:
        """:meth:`ingest` a file, or every recognised file of a directory.

        Directory entries whose columns do not match ``format`` (and, for ``vendor``, files
        named ``*underlying*``) are skipped; the skips are listed in the first report's
        ``notes`` (see :func:`data_feeds.chain_ingest.discover_files`).

        Parameters
        ----------
        path : str or pathlib.Path
            File or directory.
        format : {'vendor', 'lean-minute', 'generic'}
        config : ChainIngestConfig, optional
        replace_dates : bool
            See :meth:`ingest`.

        Returns
        -------
        list of IngestReport
            One per ingested file, in file-name order (each file is its own transaction).

        Raises
        ------
        DataSourceError, DataValidationError
            As :meth:`ingest`; a directory with no recognised file raises ``DataSourceError``.
        """
        config = config or ChainIngestConfig()
        files, skipped = discover_files([path], format, config)
        if not files:
            why = "; ".join(f"{f.name}: {r}" for f, r in skipped) or "empty"
            raise DataSourceError(f"{path}: no {format} chain file to ingest ({why})")
        reports = [
            self.ingest(f, format, config=config, replace_dates=replace_dates) for f in files
        ]
        reports[0].notes.extend(f"skipped {f.name}: {r}" for f, r in skipped)
        return reports

    def pending(
        self, files: Sequence[str | Path], format: str, config: ChainIngestConfig | None = None
    ) -> list[Path]:
        """The files an :meth:`ingest` would still change (read-only check; a run calls it so
        that an already-ingested store is only ever opened read-only).

        A file is current when ``ingest_log`` has its sha256 with this ``format`` and ingest
        config fingerprint, and every partition that ingest stored or kept still belongs to its
        data source (no later file replaced one).

        Parameters
        ----------
        files : sequence of path
            Chain files (not directories: see :func:`data_feeds.chain_ingest.discover_files`).
        format : str
            Their layout.
        config : ChainIngestConfig, optional
            The ingest settings they would be ingested with.

        Returns
        -------
        list of pathlib.Path
            The files not current, in the given order.
        """
        config = config or ChainIngestConfig()
        fingerprint = f"{SCHEMA_VERSION}|{format}|{config.fingerprint()}"
        out = []
        for f in files:
            row = self._con.execute(
                """
                SELECT data_source, partitions_new + partitions_replaced + partitions_unchanged
                FROM ingest_log WHERE sha256 = ? AND format = ? AND config_fingerprint = ?
                ORDER BY ingest_id DESC LIMIT 1
                """,
                [file_sha256(Path(f)), format, fingerprint],
            ).fetchall()
            if row:
                held = self._con.execute(
                    "SELECT count(*) FROM chain_partitions WHERE data_source = ?", [row[0][0]]
                ).fetchall()[0][0]
                if held >= row[0][1]:
                    continue
            out.append(Path(f))
        return out

    def _plan(self, data_source: str, fingerprint: str) -> None:
        """Partitions of the staged file and what happens to each (``_plan``)."""
        con = self._con
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _parts AS
            SELECT partition_key, any_value(root) AS root, any_value(quote_date) AS quote_date,
                count(*) FILTER (WHERE reason IS NULL) AS n_valid,
                count(*) FILTER (WHERE reason IS NOT NULL) AS n_quarantined,
                md5(concat_ws('|', ?, ?, CAST(sum(CAST(hash(c) AS HUGEINT)) AS VARCHAR),
                    CAST(count(*) AS VARCHAR))) AS content_hash
            FROM _chk c GROUP BY partition_key
            """,
            [fingerprint, data_source],
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _plan AS
            SELECT n.partition_key, n.root, n.quote_date, n.n_valid, n.n_quarantined,
                n.content_hash, o.data_source AS old_source,
                coalesce(o.rows_stored, 0) AS old_stored,
                coalesce(o.rows_quarantined, 0) AS old_quarantined,
                CASE WHEN o.partition_key IS NULL THEN 'new'
                     WHEN o.content_hash = n.content_hash THEN 'unchanged'
                     ELSE 'replaced' END AS status
            FROM _parts n LEFT JOIN chain_partitions o USING (partition_key)
            UNION ALL
            SELECT o.partition_key, o.root, o.quote_date, 0, 0, o.content_hash, o.data_source,
                o.rows_stored, o.rows_quarantined, 'removed'
            FROM chain_partitions o
            WHERE o.partition_key = 'unkeyed|' || ?
                AND o.partition_key NOT IN (SELECT partition_key FROM _parts)
            """,
            [data_source],
        )

    def _refuse_shrinking(self, path: Path) -> None:
        """Raise :class:`ReplaceRefusedError` when a replaced partition would hold fewer rows."""
        rows = self._con.execute(
            """
            SELECT root, quote_date, old_stored, old_quarantined, n_valid, n_quarantined,
                old_source, count(*) OVER ()
            FROM _plan
            WHERE status = 'replaced' AND n_valid + n_quarantined < old_stored + old_quarantined
            ORDER BY quote_date, root
            """
        ).fetchall()
        if rows:
            root, day, old_v, old_q, new_v, new_q, source, n = rows[0]
            more = f" (and {n - 1} more day(s))" if n > 1 else ""
            raise ReplaceRefusedError(
                str(path),
                f"refusing to replace {root} {day:%Y-%m-%d}: stored {old_v + old_q:,} rows "
                f"({old_v:,} valid, {old_q:,} quarantined, from {source}), this file has "
                f"{new_v + new_q:,} ({new_v:,} valid, {new_q:,} quarantined){more}; pass "
                "--replace-dates (replace_dates=True) to replace a stored day with fewer rows",
                row=f"{day:%Y-%m-%d}",
                field="quote_date",
            )

    def _apply(self, report: IngestReport, fingerprint: str, t0: float) -> None:
        """Write the plan in one transaction (delete replaced partitions, insert, log)."""
        con = self._con
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        stats = con.execute(
            """
            SELECT status, count(*), sum(n_valid), sum(n_quarantined),
                sum(old_stored + old_quarantined), list(DISTINCT old_source)
            FROM _plan GROUP BY status
            """
        ).fetchall()
        by = {s[0]: s for s in stats}

        def n(status: str, i: int) -> int:
            return int(by[status][i] or 0) if status in by else 0

        report.partitions_new = n("new", 1)
        report.partitions_replaced = n("replaced", 1)
        report.partitions_unchanged = n("unchanged", 1)
        report.rows_added = n("new", 2)
        report.rows_replaced = n("replaced", 2)
        report.rows_unchanged = n("unchanged", 2)
        report.rows_deleted = n("replaced", 4) + n("removed", 4)
        report.replaced_sources = sorted(
            {s for st in ("replaced", "removed") if st in by for s in by[st][5] if s}
        )
        con.execute("BEGIN")
        try:
            self._delete_replaced()
            ingest_id = int(con.execute("SELECT nextval('ingest_id_seq')").fetchall()[0][0])
            self._insert_rows(report.data_source, now)
            con.execute(
                """
                INSERT INTO chain_partitions
                SELECT partition_key, root, quote_date, ?, content_hash, n_valid, n_quarantined,
                    ?, ?
                FROM _plan WHERE status IN ('new', 'replaced')
                """,
                [report.data_source, ingest_id, now],
            )
            report.ingest_id = ingest_id
            report.seconds = time.perf_counter() - t0
            liquidity = {
                "liquid": report.liquid,
                "illiquid": report.illiquid,
                "failures": report.liquidity_failures,
                "skipped": report.liquidity_skipped,
                "disabled": report.liquidity_disabled,
            }
            con.execute(
                "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?)",
                [
                    ingest_id,
                    str(Path(report.path).resolve()),
                    report.sha256,
                    report.format,
                    report.data_source,
                    report.rows_read,
                    report.rows_added,
                    report.rows_replaced,
                    report.rows_deleted,
                    report.rows_unchanged,
                    report.rows_quarantined,
                    json.dumps(report.quarantined_by_reason),
                    json.dumps(liquidity),
                    report.partitions_new,
                    report.partitions_replaced,
                    report.partitions_unchanged,
                    fingerprint,
                    report.seconds,
                    now,
                ],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _delete_replaced(self) -> None:
        con = self._con
        con.execute(
            """
            DELETE FROM raw_options_chains r USING _plan p
            WHERE p.status = 'replaced' AND r.root = p.root AND r.quote_date = p.quote_date
            """
        )
        con.execute(
            """
            DELETE FROM quarantined_quotes q USING _plan p
            WHERE p.status IN ('replaced', 'removed') AND q.partition_key = p.partition_key
            """
        )
        con.execute(
            """
            DELETE FROM chain_partitions c USING _plan p
            WHERE p.status IN ('replaced', 'removed') AND c.partition_key = p.partition_key
            """
        )

    def _insert_rows(self, data_source: str, now: dt.datetime) -> None:
        con = self._con
        cols = ", ".join(RAW_COLUMNS)
        con.execute(
            f"""
            INSERT INTO raw_options_chains ({cols}, data_source, ingestion_timestamp)
            SELECT {", ".join("c." + x for x in RAW_COLUMNS)}, ?, ?
            FROM _chk c JOIN _plan p USING (partition_key)
            WHERE p.status IN ('new', 'replaced') AND c.reason IS NULL
            ORDER BY c.underlying, c.quote_date, c.quote_time, c.root, c.expiration_date,
                c.strike, c.option_type
            """,
            [data_source, now],
        )
        con.execute(
            f"""
            INSERT INTO quarantined_quotes ({cols}, reason, detail, source_row, partition_key,
                data_source, ingestion_timestamp)
            SELECT {", ".join("c." + x for x in RAW_COLUMNS)}, c.reason, c.detail, c.source_row,
                c.partition_key, ?, ?
            FROM _chk c JOIN _plan p USING (partition_key)
            WHERE p.status IN ('new', 'replaced') AND c.reason IS NOT NULL
            ORDER BY c.source_row
            """,
            [data_source, now],
        )

    def ingest_underlying(
        self, frame: pd.DataFrame, symbol: str, data_source: str
    ) -> UnderlyingIngestReport:
        """Upsert daily bars of ``symbol`` (e.g. a :func:`data_feeds.load_ohlc` frame).

        Parameters
        ----------
        frame : pandas.DataFrame
            Columns ``close`` and optionally ``open, high, low, volume`` (index points / dollars);
            index: session dates (tz-aware or naive; the ET date is used).
        symbol : str
            Stored symbol (``SPX``).
        data_source : str
            Where the bars came from (stored per row).

        Returns
        -------
        UnderlyingIngestReport

        Raises
        ------
        DataValidationError
            No ``close`` column, an index that is not dates, duplicate dates, a non-finite close.
        DataSourceError
            Store opened read-only.
        """
        self._require_writable()
        sym = symbol.strip().upper()
        if "close" not in frame.columns:
            raise DataValidationError(data_source, "no 'close' column", field="close")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise DataValidationError(data_source, "index must be session dates", field="date")
        idx = frame.index.tz_convert(TZ) if frame.index.tz is not None else frame.index
        dates = pd.DatetimeIndex(idx.tz_localize(None) if idx.tz is not None else idx).normalize()
        if dates.has_duplicates:
            day = dates[dates.duplicated()][0].strftime("%Y-%m-%d")
            raise DataValidationError(data_source, "duplicate date", row=day, field="date")
        out = pd.DataFrame({"date": dates.date})
        for col in ("open", "high", "low", "close", "volume"):
            values = (
                frame[col].to_numpy(dtype=float)
                if col in frame.columns
                else np.full(len(frame), np.nan)
            )
            out[col] = values
        bad = ~np.isfinite(out["close"].to_numpy())
        if bad.any():
            day = dates[int(np.argmax(bad))].strftime("%Y-%m-%d")
            raise DataValidationError(data_source, "close is not a number", row=day, field="close")
        for col in ("open", "high", "low", "volume"):  # NaN -> NULL
            out[col] = out[col].astype(object).where(np.isfinite(out[col].to_numpy()), None)
        con = self._con
        con.register("_bars_df", out)
        try:
            con.execute("BEGIN")
            try:
                con.execute(
                    """
                    CREATE OR REPLACE TEMP TABLE _bars AS
                    SELECT b.*, CASE WHEN u.symbol IS NULL THEN 'added'
                        WHEN u.open IS NOT DISTINCT FROM CAST(b.open AS DOUBLE)
                            AND u.high IS NOT DISTINCT FROM CAST(b.high AS DOUBLE)
                            AND u.low IS NOT DISTINCT FROM CAST(b.low AS DOUBLE)
                            AND u.close = b.close
                            AND u.volume IS NOT DISTINCT FROM CAST(b.volume AS DOUBLE)
                            AND u.data_source = ? THEN 'unchanged'
                        ELSE 'updated' END AS status
                    FROM _bars_df b LEFT JOIN underlying_prices u
                        ON u.symbol = ? AND u.date = CAST(b.date AS DATE)
                    """,
                    [data_source, sym],
                )
                counts = dict(
                    con.execute("SELECT status, count(*) FROM _bars GROUP BY status").fetchall()
                )
                con.execute(
                    """
                    INSERT INTO underlying_prices
                    SELECT ?, CAST(date AS DATE), CAST(open AS DOUBLE), CAST(high AS DOUBLE),
                        CAST(low AS DOUBLE), close, CAST(volume AS DOUBLE), ?
                    FROM _bars WHERE status <> 'unchanged'
                    ON CONFLICT (symbol, date) DO UPDATE SET open = excluded.open,
                        high = excluded.high, low = excluded.low, close = excluded.close,
                        volume = excluded.volume, data_source = excluded.data_source
                    """,
                    [sym, data_source],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister("_bars_df")
            con.execute("DROP TABLE IF EXISTS _bars")
        return UnderlyingIngestReport(
            sym,
            data_source,
            len(out),
            int(counts.get("added", 0)),
            int(counts.get("updated", 0)),
            int(counts.get("unchanged", 0)),
        )

    # -- queries ----------------------------------------------------------------------------------
    @staticmethod
    def _roots(roots: Sequence[str] | str | None) -> tuple[str, ...] | None:
        if roots is None:
            return None
        if isinstance(roots, str):
            roots = [roots]
        return tuple(r.strip().upper() for r in roots)

    def _snapshot_index(self) -> dict[tuple[str, dt.date], _DateIndex]:
        """Stored snapshots per ``(underlying, quote_date)``: built by one GROUP BY on first use
        and dropped by every ingest (DuckDB lets no other process write while this one has the
        file open, so it cannot go stale)."""
        if self._index is None:
            rows = self._con.execute(
                """
                SELECT underlying, quote_date, quote_time, root, data_source,
                    max(underlying_price) AS px
                FROM raw_options_chains GROUP BY ALL
                ORDER BY underlying, quote_date, quote_time, root, data_source
                """
            ).fetchall()
            index: dict[tuple[str, dt.date], _DateIndex] = {}
            for und, day, qt, root, source, px in rows:
                entry = index.setdefault((und, day), _DateIndex())
                entry.add(qt, root, source, px)
            self._index = index
        return self._index

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        """Quote dates with stored (valid) quotes, ascending.

        Parameters
        ----------
        underlying : str
            ``SPX``, ``SPY`` ...
        roots : sequence of str, optional
            Only dates with quotes of these roots (``["SPXW"]``).

        Returns
        -------
        list of datetime.date
        """
        und = underlying.strip().upper()
        want = self._roots(roots)
        return sorted(
            day
            for (u, day), entry in self._snapshot_index().items()
            if u == und and (want is None or entry.roots & set(want))
        )

    def quote_times(self, underlying: str, quote_date: Any) -> list[pd.Timestamp]:
        """Snapshot times stored on ``quote_date``, ascending.

        Parameters
        ----------
        underlying : str
        quote_date : date-like
            ``datetime.date``, ``"YYYY-MM-DD"`` or a Timestamp (its ET date).

        Returns
        -------
        list of pandas.Timestamp
            Tz-aware ``America/New_York`` (vendor EOD files: one time, the configured snapshot
            time; minute bars: the close of each bar). Empty when the date has no quotes.
        """
        d = _as_date(quote_date)
        entry = self._snapshot_index().get((underlying.strip().upper(), d))
        if entry is None:
            return []
        return [pd.Timestamp.combine(d, qt).tz_localize(TZ) for qt in entry.times]

    def snapshot(
        self,
        underlying: str,
        quote_date: Any,
        quote_time: Any = None,
        roots: Sequence[str] | None = None,
        liquid_only: bool = False,
        rate: float = 0.0,
    ) -> ChainSnapshot:
        """The chain of ``underlying`` at one snapshot time.

        Parameters
        ----------
        underlying : str
            ``SPX`` (roots SPX and SPXW), ``SPY``.
        quote_date : date-like
            Session date.
        quote_time : datetime.time, str or pandas.Timestamp, optional
            ``None``: the latest snapshot of the date. Otherwise the latest snapshot at or before
            this ET wall-clock time (``"10:00"``, ``datetime.time(10)``, a tz-aware Timestamp
            converted to ET). The snapshot time is chosen over the selected roots; only rows of
            exactly that time are returned.
        roots : sequence of str, optional
            Restrict to these roots.
        liquid_only : bool
            Only rows with ``is_liquid``.
        rate : float
            Continuously compounded risk-free rate (decimal) put on the snapshot.

        Returns
        -------
        ChainSnapshot
            ``quotes`` with :data:`~data_feeds.chains.QUOTE_COLUMNS`, sorted by root, expiration,
            strike, right; ``expiration`` naive ``datetime64[ns]``; volume/open interest float
            (NaN when absent); ``underlying_price`` NaN when the source has none; ``source`` the
            data source(s).

        Raises
        ------
        SnapshotNotFoundError
            No snapshot of ``underlying`` on that date (at or before ``quote_time``, for those
            roots). A ``KeyError`` and a ``VolsuiteError``.
        ValueError
            ``quote_time`` is a date-time on another (ET) date than ``quote_date``.
        """
        und = underlying.strip().upper()
        d = _as_date(quote_date)
        t = None if quote_time is None else _as_time(quote_time)
        if isinstance(quote_time, dt.datetime | pd.Timestamp) and _as_date(quote_time) != d:
            raise ValueError(
                f"quote_time {quote_time} is not on quote_date {d:%Y-%m-%d} (ET wall clock)"
            )
        want = self._roots(roots)
        entry = self._snapshot_index().get((und, d))
        found = None if entry is None else entry.resolve(t, want)
        if found is None:
            at = "" if t is None else f" at or before {t:%H:%M:%S} ET"
            which = "" if want is None else f" for roots {list(want)}"
            have = "no quotes that day" if entry is None else f"times {entry.describe()}"
            raise SnapshotNotFoundError(
                f"no {und} snapshot on {d:%Y-%m-%d}{at}{which} in {self.path} ({have})"
            )
        qt, sources, price = found
        root_list = sorted({e[0] for e in entry.by_time[qt]})  # type: ignore[union-attr]
        sql = (
            "SELECT list_position(?, root) - 1 AS root_code, expiration_date, strike, "
            "option_type = 'P' AS is_put, bid, ask, mid, last, "
            "CAST(volume AS DOUBLE) AS volume, CAST(open_interest AS DOUBLE) AS open_interest, "
            "implied_volatility, delta, gamma, theta, vega, is_liquid "
            "FROM raw_options_chains WHERE underlying = ? AND quote_date = ? AND quote_time = ?"
        )
        params: list[Any] = [root_list, und, d, qt]
        if want is not None:
            sql += f" AND root IN ({', '.join('?' * len(want))})"
            params.extend(want)
        if liquid_only:
            sql += " AND is_liquid"
        res = self._con.execute(sql, params).fetchnumpy()
        return ChainSnapshot(
            underlying=und,
            quote_time=pd.Timestamp.combine(d, qt).tz_localize(TZ),
            underlying_price=price,
            quotes=_quotes_frame(res, root_list),
            rate=rate,
            source=", ".join(sources),
        )

    def underlying_ohlc(self, symbol: str) -> pd.DataFrame:
        """Daily bars of ``symbol`` (for settlement: SPX AM = open of the expiry day, PM = close).

        Parameters
        ----------
        symbol : str
            ``SPX``, ``SPY`` ...

        Returns
        -------
        pandas.DataFrame
            Columns ``open, high, low, close, volume`` (float64, NaN where absent), index
            tz-aware ``America/New_York`` session dates named ``date`` (as
            :func:`data_feeds.load_ohlc`); ``attrs["source"]`` the data source(s).

        Raises
        ------
        StoreKeyError
            No bars of ``symbol`` in the store.
        """
        sym = symbol.strip().upper()
        df = self._con.execute(
            "SELECT date, open, high, low, close, volume, data_source FROM underlying_prices "
            "WHERE symbol = ? ORDER BY date",
            [sym],
        ).df()
        if df.empty:
            have = [
                r[0]
                for r in self._con.execute(
                    "SELECT DISTINCT symbol FROM underlying_prices ORDER BY 1"
                ).fetchall()
            ]
            raise StoreKeyError(
                f"no daily bars of {sym!r} in {self.path} (symbols: {have}); load them with "
                f"'volsuite ingest underlying SOURCE --root {sym}'"
            )
        index = pd.DatetimeIndex(pd.to_datetime(df["date"])).tz_localize(TZ)
        index.name = "date"
        out = pd.DataFrame(
            {c: df[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")},
            index=index,
        )
        out.attrs["source"] = ", ".join(sorted(df["data_source"].unique()))
        return out

    def info(self) -> pd.DataFrame:
        """Per ``(underlying, data_source, quote_date)``: what is stored and quarantined.

        Returns
        -------
        pandas.DataFrame
            Columns ``underlying, data_source, quote_date`` (datetime.date), ``roots`` (comma
            separated), ``n_expiries``, ``rows`` (valid stored), ``quarantined``, ``holiday``
            (the quote date is not an NYSE session), ``snapshots`` (distinct quote times); sorted.
            Quarantined rows whose underlying or date did not parse appear with those NULL.
        """
        df = self._con.execute(
            """
            WITH r AS (
                SELECT underlying, data_source, quote_date,
                    string_agg(DISTINCT root, ',' ORDER BY root) AS roots,
                    count(DISTINCT expiration_date) AS n_expiries,
                    count(DISTINCT quote_time) AS snapshots, count(*) AS rows
                FROM raw_options_chains GROUP BY ALL
            ),
            q AS (
                SELECT underlying, data_source, quote_date,
                    string_agg(DISTINCT root, ',' ORDER BY root) AS q_roots,
                    count(*) AS quarantined
                FROM quarantined_quotes GROUP BY ALL
            )
            SELECT underlying, data_source, quote_date, coalesce(roots, q_roots) AS roots,
                coalesce(n_expiries, 0) AS n_expiries, coalesce(rows, 0) AS rows,
                coalesce(quarantined, 0) AS quarantined, coalesce(snapshots, 0) AS snapshots
            FROM r FULL OUTER JOIN q USING (underlying, data_source, quote_date)
            ORDER BY underlying NULLS LAST, data_source, quote_date NULLS LAST
            """
        ).df()
        dates = pd.to_datetime(df["quote_date"])
        holiday = np.zeros(len(df), dtype=bool)
        known = dates.notna().to_numpy()
        if known.any():
            holiday[known] = ~is_nyse_session(pd.DatetimeIndex(dates[known])).to_numpy()
        df["quote_date"] = [None if pd.isna(x) else x.date() for x in dates]
        df["holiday"] = holiday
        for c in ("n_expiries", "rows", "quarantined", "snapshots"):
            df[c] = df[c].astype("int64")
        return df[
            [
                "underlying",
                "data_source",
                "quote_date",
                "roots",
                "n_expiries",
                "rows",
                "quarantined",
                "holiday",
                "snapshots",
            ]
        ]

    def quarantine(self, reason: str | None = None) -> pd.DataFrame:
        """Quarantined rows, optionally of one reason.

        Parameters
        ----------
        reason : str, optional
            A reason (``"crossed quote"``) or a reason prefix (``"missing required field"``
            matches every ``missing required field: <field>``).

        Returns
        -------
        pandas.DataFrame
            The ``quarantined_quotes`` columns, sorted by data source and source row.
        """
        sql = "SELECT * FROM quarantined_quotes"
        params: list[Any] = []
        if reason is not None:
            sql += " WHERE reason = ? OR starts_with(reason, ?)"
            params = [reason, reason + ":"]
        return self._con.execute(sql + " ORDER BY data_source, source_row", params).df()

    def quarantine_summary(self) -> pd.DataFrame:
        """Quarantined row counts per ``(data_source, reason)``, reasons in rule order.

        Returns
        -------
        pandas.DataFrame
            Columns ``data_source, reason, rows``.
        """
        df = self._con.execute(
            "SELECT data_source, reason, count(*) AS rows FROM quarantined_quotes GROUP BY ALL"
        ).df()
        if df.empty:
            return df
        df["_rank"] = [reason_rank(r) for r in df["reason"]]
        df = df.sort_values(["data_source", "_rank", "reason"]).drop(columns="_rank")
        return df.reset_index(drop=True)

    def ingest_log(self) -> pd.DataFrame:
        """The ``ingest_log`` table, oldest first.

        Returns
        -------
        pandas.DataFrame
            One row per ingest (file, sha256, format, row counts, ``quarantined_by_reason`` and
            ``liquidity`` as JSON text, partitions, config fingerprint, seconds, UTC time).
        """
        return self._con.execute("SELECT * FROM ingest_log ORDER BY ingest_id").df()

    def table_counts(self) -> dict[str, int]:
        """Row count of every table.

        Returns
        -------
        dict of str to int
            Keyed by :data:`TABLES`.
        """
        return {
            t: int(self._con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in TABLES
        }


class _DateIndex:
    """Snapshot times of one ``(underlying, quote_date)``: per time, root -> (sources, price)."""

    __slots__ = ("by_time", "roots", "times")

    def __init__(self) -> None:
        self.times: list[dt.time] = []
        self.by_time: dict[dt.time, list[tuple[str, str, float | None]]] = {}
        self.roots: set[str] = set()

    def add(self, qt: dt.time, root: str, source: str, px: float | None) -> None:
        if qt not in self.by_time:
            self.times.append(qt)  # rows arrive sorted by time
            self.by_time[qt] = []
        self.by_time[qt].append((root, source, px))
        self.roots.add(root)

    def resolve(
        self, t: dt.time | None, roots: tuple[str, ...] | None
    ) -> tuple[dt.time, list[str], float] | None:
        """Latest time ``<= t`` (any time if None) with a quote of ``roots`` (any if None):
        ``(time, sorted sources, underlying price or NaN)``."""
        for qt in reversed(self.times):
            if t is not None and qt > t:
                continue
            entries = [e for e in self.by_time[qt] if roots is None or e[0] in roots]
            if entries:
                prices = [e[2] for e in entries if e[2] is not None and np.isfinite(e[2])]
                price = float(max(prices)) if prices else float("nan")
                return qt, sorted({e[1] for e in entries}), price
        return None

    def describe(self) -> str:
        first, last = self.times[0], self.times[-1]
        roots = ",".join(sorted(self.roots))
        if first == last:
            return f"{first:%H:%M:%S} ({roots})"
        return f"{first:%H:%M:%S}..{last:%H:%M:%S} ({roots})"


def _filled(values: Any) -> np.ndarray:
    if np.ma.isMaskedArray(values):
        return np.ma.filled(values.astype(float), np.nan)
    return np.asarray(values, dtype=float)


_FLOAT_COLUMNS = {
    "bid": "bid",
    "ask": "ask",
    "mid": "mid",
    "last": "last",
    "volume": "volume",
    "open_interest": "open_interest",
    "vendor_implied_vol": "implied_volatility",
    "vendor_delta": "delta",
    "vendor_gamma": "gamma",
    "vendor_theta": "theta",
    "vendor_vega": "vega",
}


def _quotes_frame(res: dict[str, Any], roots: list[str]) -> pd.DataFrame:
    """``fetchnumpy`` result -> the :data:`QUOTE_COLUMNS` frame, sorted by root, expiration,
    strike, right.

    Rows are inserted in that order, so a scan usually returns them sorted: a vectorized check
    confirms it and ``numpy.lexsort`` sorts only when needed (both cheaper than an SQL
    ``ORDER BY`` for one snapshot). ``root_code`` indexes the sorted ``roots``.
    """
    codes = np.asarray(res["root_code"], dtype=np.int64)
    is_put = np.asarray(res["is_put"], dtype=bool)
    exp = np.asarray(res["expiration_date"]).astype("datetime64[ns]")
    strike = np.asarray(res["strike"], dtype=float)
    order = None
    if len(codes) > 1:
        keys = (codes, exp.view("int64"), strike, is_put.astype(np.int8))
        diffs = [np.diff(k) for k in keys]
        ok = diffs[3] > 0
        for dk in reversed(diffs[:3]):
            ok = (dk > 0) | ((dk == 0) & ok)
        if not ok.all():
            order = np.lexsort(keys[::-1])

    def take(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    data: dict[str, Any] = {
        "root": pd.Series(take(np.asarray(roots, dtype=object)[codes]), dtype=object),
        "expiration": take(exp),
        "strike": take(strike),
        "right": pd.Series(take(_RIGHTS[is_put.astype(np.int8)]), dtype=object),
    }
    for out, col in _FLOAT_COLUMNS.items():
        data[out] = take(_filled(res[col]))
    data["is_liquid"] = take(np.asarray(res["is_liquid"], dtype=bool))
    return pd.DataFrame(data, columns=list(QUOTE_COLUMNS))


_RIGHTS = np.array(["C", "P"], dtype=object)


__all__ = [
    "DEFAULT_PATH",
    "RAW_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "ChainStore",
    "ReplaceRefusedError",
    "SnapshotNotFoundError",
    "StoreKeyError",
    "UnderlyingIngestReport",
]
