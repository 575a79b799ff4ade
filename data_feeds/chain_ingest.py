"""Option-chain ingest: configuration, file adapters and validation for the chain store.

The store (:mod:`data_feeds.chain_store`) calls :func:`stage_file` to read one file into DuckDB
temporary tables, bulk, in SQL (``read_parquet`` / ``read_csv``, never a Python row loop):

1. an *adapter* maps the file's columns onto the store's column names (:data:`FIELDS`) as SQL
   expressions (``vendor``, ``lean-minute`` or ``generic`` from a TOML mapping);
2. every field is parsed (text, dates ISO or US ``MM/DD/YYYY``, times, numbers, call/put);
3. every row gets at most one quarantine ``reason`` -- the first rule that fails, in the order of
   :data:`REASON_ORDER` -- and the rows that pass get the liquidity flag ``is_liquid``.

Validation rules (first match wins)
-----------------------------------
====  ==========================================================================================
 1    ``missing required field: F`` -- a required field is empty (``underlying, root, quote_date,
      quote_time, expiration_date, strike, option_type, bid, ask``, in this order)
 2    ``unparseable field: F`` -- a field is present but not a number / date / time / call-put
      value (required fields first, then the optional ones; NaN and inf count as unparseable)
 3    ``non-positive strike``
 3a   ``date out of range`` -- the quote date is before 1900 or after 2199 (a mis-read year)
 4    ``holiday snapshot repeating previous session`` -- the quote date is not an NYSE session and
      the row's underlying price equals the previous session's (its last snapshot) in the same
      file; otherwise ``quote date is not an NYSE session``
 5    ``expiration before quote date``
 5a   ``expiration beyond horizon`` -- more than ``validation.max_expiry_years`` (10) years after
      the quote date (``9999-12-31`` placeholders)
 6    ``negative price`` -- bid, ask or last < 0 (a bid of 0 is *not* an error: no bid is a real
      market state)
 7    ``negative volume, open interest or size``
 8    ``crossed quote`` -- bid > ask
 9    ``strike in wrong unit`` -- the underlying price ``S`` is known and ``K / S >
      strike_unit_ratio`` or ``K / S < 1 / strike_unit_ratio`` (default ratio 50: a strike in
      cents or x1000 is off by 100-1000x, while the deepest real SPX strikes (100 with SPX near
      2900, ``K/S = 0.034``) stay in)
10    ``duplicate`` / ``conflicting duplicate`` -- among the rows that passed 1-9, several rows
      with the same natural key ``(root, quote_date, quote_time, expiration_date, strike,
      option_type)``: identical rows keep the first (file order) and quarantine the others as
      ``duplicate``; rows that differ are all quarantined as ``conflicting duplicate``
====  ==========================================================================================

An unknown root (not in :data:`data_feeds.contracts.ROOT_SPECS` and not configured in
``[roots.X]``) is not a row problem but a configuration one: it raises
:class:`~data_feeds.errors.DataValidationError` naming the file, the first row and the field.

Liquidity (``is_liquid``)
-------------------------
A flag, not a filter: liquid and illiquid rows are both stored. A row is liquid when it passes
every criterion of :class:`LiquidityConfig` that applies (design doc 004 section 2.2 defaults):
``(ask - bid) / mid < 0.20`` (``mid = 0`` fails), ``open_interest > 50``, ``volume > 0``, ``7 <=
dte <= 730`` calendar days, ``0.7 < S / K < 1.3``. A criterion whose input is missing on a row
(no open interest or volume in minute bars, no underlying price) is *skipped* for that row and
counted as skipped; a criterion set to ``None`` is disabled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_feeds.calendar import is_nyse_session, nyse_sessions
from data_feeds.contracts import ROOT_SPECS, ROOT_UNDERLYING
from data_feeds.errors import DataSourceError, DataValidationError

FORMATS = ("vendor", "lean-minute", "generic")
"""Input formats :func:`stage_file` understands."""

# (store field, kind, required)
FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("underlying", "text", True),
    ("root", "text", True),
    ("quote_date", "date", True),
    ("quote_time", "time", True),
    ("expiration_date", "date", True),
    ("strike", "double", True),
    ("option_type", "right", True),
    ("bid", "double", True),
    ("ask", "double", True),
    ("symbol", "text", False),
    ("last", "double", False),
    ("volume", "int", False),
    ("open_interest", "int", False),
    ("implied_volatility", "double", False),
    ("delta", "double", False),
    ("gamma", "double", False),
    ("theta", "double", False),
    ("vega", "double", False),
    ("rho", "double", False),
    ("bid_size", "int", False),
    ("ask_size", "int", False),
    ("underlying_price", "double", False),
)
"""Store fields an adapter fills: ``(name, kind, required)``. Units: prices and strikes in
dollars (index points for SPX), ``implied_volatility`` decimal, greeks as the vendor gives them,
sizes/volume/open interest in contracts; ``quote_time`` is the ET wall-clock snapshot time."""

FIELD_NAMES = tuple(f[0] for f in FIELDS)
REQUIRED_FIELDS = tuple(f[0] for f in FIELDS if f[2])

REASON_MISSING = "missing required field"
REASON_UNPARSEABLE = "unparseable field"
REASON_NONPOSITIVE_STRIKE = "non-positive strike"
REASON_HOLIDAY_REPEAT = "holiday snapshot repeating previous session"
REASON_NOT_SESSION = "quote date is not an NYSE session"
REASON_EXPIRED = "expiration before quote date"
REASON_DATE_RANGE = "date out of range"
REASON_FAR_EXPIRY = "expiration beyond horizon"
REASON_NEGATIVE_PRICE = "negative price"
REASON_NEGATIVE_SIZE = "negative volume, open interest or size"
REASON_CROSSED = "crossed quote"
REASON_STRIKE_UNIT = "strike in wrong unit"
REASON_DUPLICATE = "duplicate"
REASON_CONFLICT = "conflicting duplicate"

MIN_DATE, MAX_DATE = dt.date(1900, 1, 1), dt.date(2199, 12, 31)
"""Quote dates outside this range are quarantined as ``date out of range`` (a mis-read year such
as 0011); far expirations (``9999-12-31``) are ``expiration beyond horizon``."""

REASON_ORDER: tuple[str, ...] = (
    REASON_MISSING,
    REASON_UNPARSEABLE,
    REASON_NONPOSITIVE_STRIKE,
    REASON_DATE_RANGE,
    REASON_HOLIDAY_REPEAT,
    REASON_NOT_SESSION,
    REASON_EXPIRED,
    REASON_FAR_EXPIRY,
    REASON_NEGATIVE_PRICE,
    REASON_NEGATIVE_SIZE,
    REASON_CROSSED,
    REASON_STRIKE_UNIT,
    REASON_DUPLICATE,
    REASON_CONFLICT,
)
"""Quarantine reasons in rule order (parse reasons carry ``: <field>`` after the prefix)."""

LIQUIDITY_CRITERIA = ("spread", "open_interest", "volume", "dte", "moneyness")
"""Liquidity criteria, in report order."""


# -- configuration ---------------------------------------------------------------------------------
class LiquidityConfig(BaseModel):
    """Liquidity-flag thresholds (design doc 004 section 2.2); ``None`` disables a criterion.

    Parameters
    ----------
    max_spread_to_mid : float or None
        Liquid when ``(ask - bid) / mid < max_spread_to_mid`` (decimal, 0.20 = 20 % of mid); a
        zero mid fails.
    min_open_interest : int or None
        Liquid when ``open_interest > min_open_interest`` (contracts, strictly greater).
    min_volume : int or None
        Liquid when ``volume > min_volume`` (contracts traded that day, strictly greater; 0 means
        "traded at all").
    min_dte, max_dte : int or None
        Liquid when ``min_dte <= dte <= max_dte``, ``dte`` in calendar days from the quote date to
        the expiration date.
    min_moneyness, max_moneyness : float or None
        Liquid when ``min_moneyness < S / K < max_moneyness`` (``S`` the underlying price at the
        snapshot, ``K`` the strike).
    """

    model_config = ConfigDict(extra="forbid")

    max_spread_to_mid: float | None = Field(default=0.20, gt=0)
    min_open_interest: int | None = Field(default=50, ge=0)
    min_volume: int | None = Field(default=0, ge=0)
    min_dte: int | None = Field(default=7, ge=0)
    max_dte: int | None = Field(default=730, ge=0)
    min_moneyness: float | None = Field(default=0.7, gt=0)
    max_moneyness: float | None = Field(default=1.3, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LiquidityConfig:
        if self.min_dte is not None and self.max_dte is not None and self.min_dte > self.max_dte:
            raise ValueError(f"min_dte ({self.min_dte}) must be <= max_dte ({self.max_dte})")
        if (
            self.min_moneyness is not None
            and self.max_moneyness is not None
            and self.min_moneyness >= self.max_moneyness
        ):
            raise ValueError(
                f"min_moneyness ({self.min_moneyness}) must be < max_moneyness "
                f"({self.max_moneyness})"
            )
        return self


class ValidationConfig(BaseModel):
    """Settings of the validation rules.

    Parameters
    ----------
    strike_unit_ratio : float
        A row is quarantined as ``strike in wrong unit`` when the underlying price ``S`` is known
        and ``K / S`` is above this ratio or below its inverse (default 50, > 1).
    max_expiry_years : float
        A row whose expiration is more than this many years (365.25 days) after its quote date is
        quarantined as ``expiration beyond horizon`` (default 10: listed SPX LEAPS reach about 6
        years; ``9999-12-31`` placeholders and mis-read years are caught).
    """

    model_config = ConfigDict(extra="forbid")

    strike_unit_ratio: float = Field(default=50.0, gt=1.0)
    max_expiry_years: float = Field(default=10.0, gt=0.0)


class RootConfig(BaseModel):
    """Contract terms of an option root not in :data:`data_feeds.contracts.ROOT_SPECS` (or an
    override of one).

    Parameters
    ----------
    style : {'european', 'american'}
    settlement : {'AM', 'PM', 'physical'}
        ``AM``: special opening quotation of the expiration date; ``PM``: the close;
        ``physical``: delivery of the underlying.
    underlying : str, optional
        Underlying symbol (defaults to the root itself).
    """

    model_config = ConfigDict(extra="forbid")

    style: Literal["european", "american"]
    settlement: Literal["AM", "PM", "physical"]
    underlying: str | None = None


class GenericLayout(BaseModel):
    """Column mapping of a user file for ``--format generic``.

    Parameters
    ----------
    columns : dict of str to str
        Store field name (see :data:`FIELDS`) -> the file's column name. ``quote_date``,
        ``expiration_date``, ``strike``, ``option_type``, ``bid`` and ``ask`` are required;
        ``root``/``underlying``/``quote_time`` may instead be constants (below).
    date_format : str
        ``"auto"`` (ISO ``YYYY-MM-DD`` or US ``MM/DD/YYYY``, per value) or a ``strftime`` format.
    time_format : str
        ``"auto"`` (``HH:MM`` or ``HH:MM:SS``) or a ``strftime`` format for a quote-time column.
    quote_time : datetime.time, optional
        Snapshot wall-clock time (ET) when the file has no quote-time column.
    option_type_values : dict of str to {'C', 'P'}
        The file's call/put values (matched case-insensitively) -> ``'C'``/``'P'``.
    strike_divisor : float
        Strikes in the file are divided by this (e.g. 1000 for strikes quoted x1000).
    root, underlying : str, optional
        Constants when the file has no such column (``underlying`` otherwise defaults from the
        root: SPXW -> SPX).
    root_from_symbol : bool
        Take the root as the leading letters of the ``symbol`` column (OCC-style symbols).
    delimiter : str, optional
        CSV delimiter (auto-detected when absent).
    """

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str]
    date_format: str = "auto"
    time_format: str = "auto"
    quote_time: dt.time | None = None
    option_type_values: dict[str, Literal["C", "P"]] = Field(
        default_factory=lambda: {"C": "C", "P": "P", "CALL": "C", "PUT": "P"}
    )
    strike_divisor: float = Field(default=1.0, gt=0)
    root: str | None = None
    underlying: str | None = None
    root_from_symbol: bool = False
    delimiter: str | None = None

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown store field(s) {unknown}; expected some of {FIELD_NAMES}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> GenericLayout:
        needed = ("quote_date", "expiration_date", "strike", "option_type", "bid", "ask")
        missing = [f for f in needed if f not in self.columns]
        if missing:
            raise ValueError(f"columns must map the required field(s) {missing}")
        if "root" not in self.columns and self.root is None and not self.root_from_symbol:
            raise ValueError(
                "no root: map a 'root' column, give a constant 'root' or set root_from_symbol"
            )
        if self.root_from_symbol and "symbol" not in self.columns:
            raise ValueError("root_from_symbol needs a 'symbol' column mapping")
        if "quote_time" not in self.columns and self.quote_time is None:
            raise ValueError("no quote time: map a 'quote_time' column or give a constant")
        return self


class ChainIngestConfig(BaseModel):
    """Everything an ingest can be told (``--config TOML``); every format accepts it.

    Parameters
    ----------
    vendor_quote_time : datetime.time
        Snapshot wall-clock time (ET) of vendor end-of-day files, which carry no time column.
        Default 15:45: the data README says the 2019 SPX snapshot is taken late in the session
        (~15:00-16:00 ET), not at the close -- an assumption, stored in ``quote_time``.
    date_format : str
        Date format of text date columns of ``vendor`` and ``lean-minute`` files: ``"auto"``
        (decided once per file from all values, see :func:`data_feeds.calendar.day_month_order`)
        or a ``strftime`` format such as ``"%d/%m/%Y"`` (``generic`` files use
        ``generic.date_format``).
    liquidity : LiquidityConfig
        Thresholds of the ``is_liquid`` flag.
    validation : ValidationConfig
        Settings of the validation rules.
    roots : dict of str to RootConfig
        Style/settlement (and underlying) of roots not in ``ROOT_SPECS``.
    generic : GenericLayout, optional
        Column mapping; required by ``--format generic``.

    Examples
    --------
    A TOML file::

        vendor_quote_time = "15:45"
        [liquidity]
        min_open_interest = 100
        [generic]
        quote_time = "16:00"
        root = "SPX"
        [generic.columns]
        quote_date = "QuoteDate"
        expiration_date = "Expiry"
        strike = "Strike"
        option_type = "CP"
        bid = "Bid"
        ask = "Ask"
    """

    model_config = ConfigDict(extra="forbid")

    vendor_quote_time: dt.time = dt.time(15, 45)
    date_format: str = "auto"
    liquidity: LiquidityConfig = Field(default_factory=LiquidityConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    roots: dict[str, RootConfig] = Field(default_factory=dict)
    generic: GenericLayout | None = None

    @classmethod
    def from_toml(cls, path: str | Path) -> ChainIngestConfig:
        """Read a TOML config.

        Parameters
        ----------
        path : str or pathlib.Path
            TOML file (keys as the model's fields).

        Returns
        -------
        ChainIngestConfig

        Raises
        ------
        DataSourceError
            The file is missing or not valid TOML.
        DataValidationError
            A key is unknown or a value has the wrong type/range; the message names the file
            and the field (``liquidity.max_spread_to_mid``) and what was expected.
        """
        p = Path(path)
        if not p.is_file():
            raise DataSourceError(f"{p}: config file not found")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise DataSourceError(f"{p}: not valid TOML ({exc})") from exc
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ChainIngestConfig:
        """Validate a mapping (e.g. a parsed TOML table).

        Raises
        ------
        DataValidationError
            Naming ``source`` and the first offending field (all errors are in the message).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            parts = []
            for err in errors:
                loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
                parts.append(f"{loc}: {err['msg']}")
            first = ".".join(str(x) for x in errors[0]["loc"]) or None
            raise DataValidationError(
                source, "invalid chain-ingest config: " + "; ".join(parts), field=first
            ) from exc

    def root_terms(self) -> dict[str, tuple[str, str, str]]:
        """Known roots: ``root -> (style, settlement, underlying)`` (``ROOT_SPECS`` + ``roots``)."""
        terms = {
            r: (style, settle, ROOT_UNDERLYING.get(r, r))
            for r, (style, settle) in ROOT_SPECS.items()
        }
        for r, spec in self.roots.items():
            terms[r.upper()] = (spec.style, spec.settlement, (spec.underlying or r).upper())
        return terms

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the settings; part of every partition's content hash, so a
        changed threshold re-writes the partitions on the next ingest."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def load_ingest_config(path: str | Path | None) -> ChainIngestConfig:
    """The ingest config in TOML file ``path``, or the defaults when ``path`` is None.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        TOML file (see :class:`ChainIngestConfig`).

    Returns
    -------
    ChainIngestConfig

    Raises
    ------
    DataSourceError, DataValidationError
        See :meth:`ChainIngestConfig.from_toml`.
    """
    return ChainIngestConfig() if path is None else ChainIngestConfig.from_toml(path)


# -- report ----------------------------------------------------------------------------------------
@dataclass
class IngestReport:
    """What one :meth:`ChainStore.ingest` read, wrote, quarantined and flagged.

    Row counts partition the file: ``rows_added + rows_replaced + rows_unchanged +
    rows_quarantined == rows_read``.

    Attributes
    ----------
    path : str
        The file.
    format : str
        ``vendor``, ``lean-minute`` or ``generic``.
    data_source : str
        ``<format>:<file name>``, stored on every row.
    sha256 : str
        Of the file's bytes.
    rows_read : int
        Data rows in the file.
    rows_added : int
        Valid rows written into partitions new to the store.
    rows_replaced : int
        Valid rows written into partitions whose earlier content differed (deleted first).
    rows_deleted : int
        Stored rows (valid + quarantined) of the replaced partitions that were deleted.
    rows_unchanged : int
        Valid rows of partitions whose content hash matched: nothing written.
    rows_quarantined : int
        Rows of the file failing a validation rule (written to ``quarantined_quotes`` unless their
        partition was unchanged).
    quarantined_by_reason : dict of str to int
        Per reason, in rule order.
    liquid, illiquid : int
        Valid rows by ``is_liquid``.
    liquidity_failures : dict of str to int
        Valid rows failing each criterion (a row may fail several).
    liquidity_skipped : dict of str to int
        Valid rows where a criterion's input was missing (criterion skipped for the row).
    liquidity_disabled : list of str
        Criteria switched off in the config.
    partitions_new, partitions_replaced, partitions_unchanged : int
        ``(root, quote_date)`` partitions by outcome.
    replaced_sources : list of str
        Data sources whose partitions were replaced.
    notes : list of str
        Other facts (conversions, assumptions).
    seconds : float
        Wall time of the ingest.
    ingest_id : int
        Row id in ``ingest_log``.
    """

    path: str
    format: str
    data_source: str
    sha256: str = ""
    rows_read: int = 0
    rows_added: int = 0
    rows_replaced: int = 0
    rows_deleted: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    liquid: int = 0
    illiquid: int = 0
    liquidity_failures: dict[str, int] = field(default_factory=dict)
    liquidity_skipped: dict[str, int] = field(default_factory=dict)
    liquidity_disabled: list[str] = field(default_factory=list)
    partitions_new: int = 0
    partitions_replaced: int = 0
    partitions_unchanged: int = 0
    replaced_sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ingest_id: int = 0

    def summary(self) -> str:
        """One line: ``data_source: read N, added A, replaced R, unchanged U, quarantined Q``."""
        text = (
            f"{self.data_source}: read {self.rows_read}, added {self.rows_added}, replaced "
            f"{self.rows_replaced}, unchanged {self.rows_unchanged}, quarantined "
            f"{self.rows_quarantined}"
        )
        if self.quarantined_by_reason:
            text += (
                " (" + ", ".join(f"{k}={v}" for k, v in self.quarantined_by_reason.items()) + ")"
            )
        return text + f" in {self.seconds:.2f}s"


# -- SQL helpers -----------------------------------------------------------------------------------
def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


UNREADABLE = "unreadable"
"""Prefix of a :func:`discover_files` skip reason for a file that could not be read at all
(corrupt, empty, binary) -- as opposed to a readable file in another layout."""

_DELIMITERS = (",", ";", "\t", "|")


def _head_bytes(path: Path, n: int = 1 << 16) -> bytes:
    """The first ``n`` (decompressed) bytes of a file."""
    import gzip

    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as fh:
            return fh.read(n)
    except (OSError, EOFError) as exc:
        raise DataSourceError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def check_csv_file(path: Path, delimiter: str | None = None) -> tuple[str, list[str]]:
    """Pre-flight checks of a CSV file before DuckDB reads it; returns its dialect and header.

    Catches, each as one line naming the file (and the line where it applies): an empty file, a
    gzip file whose name does not end ``.gz``, binary data (NUL bytes or non-UTF-8 bytes in the
    header line), a header with no known delimiter, a header-only file.

    Parameters
    ----------
    path : pathlib.Path
        ``.csv``/``.csv.gz``/``.txt`` file.
    delimiter : str, optional
        The configured delimiter; detected from the header line (``, ; tab |``, the most
        frequent) when None.

    Returns
    -------
    delimiter : str
        The delimiter to read the file with.
    columns : list of str
        The header's column names (quotes removed).

    Raises
    ------
    DataSourceError
        One line: ``<file>, line N: <problem>``.
    """
    import csv

    if path.stat().st_size == 0:
        raise DataSourceError(f"{path}, line 1: empty file (0 bytes), expected a CSV header")
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b" and not path.name.lower().endswith(".gz"):
        raise DataSourceError(
            f"{path}, line 1: gzip-compressed data in a file named {path.suffix}; rename it to "
            f"{path.name}.gz"
        )
    head = _head_bytes(path)
    if not head.strip():
        raise DataSourceError(f"{path}, line 1: no CSV header (the file is blank)")
    first = head.split(b"\n", 1)[0]
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise DataSourceError(f"{path}, line {line}: binary data (NUL byte), not a CSV text file")
    try:
        header = first.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{path}, line 1: header is not UTF-8 text (byte 0x{first[exc.start]:02x} at "
            f"column {exc.start + 1}); not a CSV file or wrong encoding"
        ) from exc
    if delimiter is None:
        counts = {d: header.count(d) for d in _DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0:
            raise DataSourceError(
                f"{path}, line 1: no column delimiter (, ; tab |) in the header "
                f"{header[:60]!r}; not a CSV file"
            )
    rest = head.split(b"\n", 1)[1] if b"\n" in head else b""
    if not rest.strip() and len(head) < (1 << 16):
        raise DataSourceError(f"{path}, line 2: no data rows after the header")
    columns = next(csv.reader([header.rstrip("\r")], delimiter=delimiter))
    seen: set[str] = set()
    for i, c in enumerate(columns):
        if not c.strip():
            raise DataSourceError(f"{path}, line 1: column {i + 1} of the header has no name")
        if c in seen:
            raise DataSourceError(f"{path}, line 1: column name {c!r} appears twice in the header")
        seen.add(c)
    return delimiter, columns


def duckdb_error_line(path: Path | str, exc: BaseException) -> str:
    """One line for a DuckDB read error: ``<file>, line N: <problem>`` (no sniffer dump).

    Parameters
    ----------
    path : pathlib.Path or str
        The file being read.
    exc : BaseException
        The ``duckdb.Error``.

    Returns
    -------
    str
        The line and the problem (ragged row with its column counts, invalid UTF-8, unterminated
        quote, ...), or the first line of DuckDB's message when it names no line.
    """
    import re

    text = str(exc)
    m = re.search(r"CSV Error on Line: (\d+)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    where = f"{path}, line {m.group(1)}" if m else str(path)
    cols = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if cols:
        return f"{where}: ragged row, expected {cols.group(1)} columns, found {cols.group(2)}"
    if "Invalid unicode" in text or "not utf-8" in text.lower():
        return f"{where}: invalid UTF-8 byte sequence (the file is not UTF-8; re-save it as UTF-8)"
    # the problem statement: DuckDB's message is blank-line separated blocks -- "CSV Error on
    # Line: N" + the echoed row, then the problem, then advice ("Possible ...") and a dump
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    problem = [
        b.splitlines()[0]
        for b in blocks[1:]
        if not b.startswith(("Possible", "*", "Original Line")) and " = " not in b.splitlines()[0]
    ]
    if "sniffing file" in text or "automatically detect the CSV" in text:
        return f"{where}: not a delimited text file (DuckDB could not detect a CSV layout)"
    if m:
        detail = problem[0] if problem else "malformed row"
        return f"{where}: {detail.rstrip('.')}"
    first = lines[0] if lines else type(exc).__name__
    return f"{where}: cannot be read ({first[:200]})"


def _source_sql(path: Path, delimiter: str | None = None) -> str:
    """A DuckDB table function reading ``path`` (CSV read as text so nothing fails to load).

    CSV files are checked first (:func:`check_csv_file`) and read with an explicit dialect
    (the header's delimiter, ``"`` quotes, strict mode), so DuckDB never guesses a dialect from
    a sample and a fault anywhere in the file is reported with its line.
    """
    name = path.name.lower()
    p = _lit(str(path))
    if name.endswith(".parquet"):
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic != b"PAR1":
            raise DataSourceError(f"{path}: not a parquet file (no PAR1 magic bytes)")
        return f"read_parquet({p}, file_row_number = true)"
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        delim, names = check_csv_file(path, delimiter)
        columns = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in names) + "}"
        opts = (
            f"header = true, columns = {columns}, delim = {_lit(delim)}, quote = '\"', "
            "escape = '\"', strict_mode = true, auto_detect = false"
        )
        return f"read_csv({p}, {opts})"
    raise DataSourceError(f"{path}: unsupported file type; expected .parquet, .csv or .csv.gz")


def file_columns(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """Columns of a chain file, read from its header / parquet schema only.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Any connection (nothing is written).
    path : pathlib.Path
        ``.parquet``, ``.csv`` or ``.csv.gz`` file.

    Returns
    -------
    dict of str to str
        ``normalized name -> original name``; names are stripped and lower-cased (the vendor
        CSVs have a column ``' exchange'`` with a leading space).

    Raises
    ------
    DataSourceError
        The file is missing or cannot be read.
    """
    if not path.is_file():
        raise DataSourceError(f"{path}: file not found (relative paths resolve against cwd)")
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_source_sql(path)}").fetchall()
    except duckdb.Error as exc:
        raise DataSourceError(duckdb_error_line(path, exc)) from exc
    return {str(r[0]).strip().lower(): str(r[0]) for r in rows if r[0] != "file_row_number"}


_VENDOR_NEEDS = ("type", "expiration", "quotedate", "strike", "bid", "ask")
_LEAN_NEEDS = ("date", "time_et", "root", "expiration", "strike", "right", "bid_close", "ask_close")


def layout_problem(columns: Iterable[str], fmt: str, config: ChainIngestConfig) -> str | None:
    """Why a file with ``columns`` is not in layout ``fmt``.

    Parameters
    ----------
    columns : iterable of str
        The file's column names, normalized (stripped, lower-case; see :func:`file_columns`).
    fmt : {'vendor', 'lean-minute', 'generic'}
    config : ChainIngestConfig
        For ``generic``: the mapped columns are the ones required.

    Returns
    -------
    str or None
        ``"not a <fmt> layout: missing column(s) [...]"``, or None when the columns fit.

    Raises
    ------
    DataSourceError
        Unknown ``fmt``.
    """
    cols = set(columns)
    if fmt == "vendor":
        missing = [c for c in _VENDOR_NEEDS if c not in cols]
        if "root" not in cols and "optionroot" not in cols:
            missing.append("root or optionroot")
    elif fmt == "lean-minute":
        missing = [c for c in _LEAN_NEEDS if c not in cols]
    elif fmt == "generic":
        if config.generic is None:
            return "--format generic needs a [generic] table in the config"
        missing = [c for c in config.generic.columns.values() if c.strip().lower() not in cols]
    else:
        raise DataSourceError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if missing:
        return f"not a {fmt} layout: missing column(s) {missing}"
    return None


def discover_files(
    paths: Sequence[str | Path], fmt: str, config: ChainIngestConfig | None = None
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and directories into the files to ingest with ``fmt``.

    A directory contributes every ``.parquet``/``.csv``/``.csv.gz`` file whose columns match the
    layout (sorted by name); files with ``underlying`` in their name are skipped for ``vendor``
    (they hold the underlying's daily bars -- ingest them with ``volsuite ingest underlying``).
    A file named explicitly is always returned (a wrong layout fails at ingest, with the reason).

    Parameters
    ----------
    paths : sequence of str or pathlib.Path
        Files and directories.
    fmt : {'vendor', 'lean-minute', 'generic'}
    config : ChainIngestConfig, optional
        Needed for ``generic`` (the mapped columns decide what is recognised).

    Returns
    -------
    files : list of pathlib.Path
    skipped : list of (pathlib.Path, str)
        Directory entries not ingested, with the reason.

    Raises
    ------
    DataSourceError
        A path does not exist, or the format is unknown.
    """
    if fmt not in FORMATS:
        raise DataSourceError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    config = config or ChainIngestConfig()
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    con = duckdb.connect()
    try:
        for raw in paths:
            p = Path(raw)
            if p.is_file():
                files.append(p)
                continue
            if not p.is_dir():
                raise DataSourceError(f"{p}: no such file or directory")
            for f in sorted(p.iterdir()):
                name = f.name.lower()
                if not f.is_file() or not name.endswith((".parquet", ".csv", ".csv.gz")):
                    continue
                if fmt == "vendor" and "underlying" in name:
                    skipped.append((f, "underlying bars, not a chain (use 'ingest underlying')"))
                    continue
                try:
                    problem = layout_problem(file_columns(con, f), fmt, config)
                except DataSourceError as exc:
                    problem = f"{UNREADABLE}: {exc}"
                if problem:
                    skipped.append((f, problem))
                else:
                    files.append(f)
    finally:
        con.close()
    return files, skipped


# -- adapters --------------------------------------------------------------------------------------
@dataclass
class _Layout:
    source: str  # FROM clause
    row_expr: str  # 1-based data row number
    exprs: dict[str, str]  # store field -> SQL over the source
    types: dict[str, str]  # store field -> DuckDB type of the expression ('VARCHAR' if text)
    right_map: dict[str, str]
    date_format: str = "auto"
    time_format: str = "auto"
    time_offset_minutes: int = 0
    strike_divisor: float = 1.0
    notes: list[str] = field(default_factory=list)
    style_expr: str | None = None  # the file's own style column, checked against the root
    date_sql: dict[str, str] = field(default_factory=dict)  # field -> parse SQL over its raw


_DEFAULT_RIGHTS = {"C": "C", "P": "P", "CALL": "C", "PUT": "P"}


def _column_types(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _row_expr(source: str) -> str:
    return "file_row_number + 1" if source.startswith("read_parquet") else "rowid + 1"


def _materialize(con: duckdb.DuckDBPyConnection, source: str) -> str:
    """CSV sources are copied to a temp table so that ``rowid`` is the file's row order."""
    if source.startswith("read_parquet"):
        return source
    con.execute(f"CREATE OR REPLACE TEMP TABLE _src AS SELECT * FROM {source}")
    return "_src"


def _vendor_layout(
    con: duckdb.DuckDBPyConnection, path: Path, cols: dict[str, str], config: ChainIngestConfig
) -> _Layout:
    source = _materialize(con, _source_sql(path))
    types = _column_types(con, source)
    exprs: dict[str, str] = {}
    etypes: dict[str, str] = {}

    def take(store: str, theirs: str) -> None:
        if theirs in cols:
            exprs[store] = _ident(cols[theirs])
            etypes[store] = types[cols[theirs]]

    for store, theirs in (
        ("underlying", "underlying"),
        ("symbol", "optionroot"),
        ("root", "root"),
        ("quote_date", "quotedate"),
        ("expiration_date", "expiration"),
        ("strike", "strike"),
        ("option_type", "type"),
        ("bid", "bid"),
        ("ask", "ask"),
        ("last", "last"),
        ("volume", "volume"),
        ("open_interest", "openinterest"),
        ("implied_volatility", "impliedvol"),
        ("delta", "delta"),
        ("gamma", "gamma"),
        ("theta", "theta"),
        ("vega", "vega"),
        ("rho", "rho"),
        ("underlying_price", "underlying_last"),
    ):
        take(store, theirs)
    notes = []
    if "underlying" in exprs:
        _map_underlying_roots(con, source, exprs, etypes, config, notes)
    if "underlying" not in exprs:  # derived from the root below
        notes.append("underlying derived from the root (no underlying column)")
    if "root" not in exprs:
        sym = _ident(cols["optionroot"])
        exprs["root"] = (
            f"nullif(regexp_extract(trim(CAST({sym} AS VARCHAR)), '^([A-Za-z]+)', 1), '')"
        )
        etypes["root"] = "VARCHAR"
        notes.append("root derived from the optionroot symbol prefix")
    if "underlying" not in exprs:
        exprs["underlying"] = _root_to_underlying_sql(exprs["root"], config.root_terms())
        etypes["underlying"] = "VARCHAR"
    qt = config.vendor_quote_time
    exprs["quote_time"] = f"TIME '{qt:%H:%M:%S}'"
    etypes["quote_time"] = "TIME"
    notes.append(f"no quote time in vendor files: snapshot time assumed {qt:%H:%M} ET")
    return _Layout(source, _row_expr(source), exprs, etypes, dict(_DEFAULT_RIGHTS), notes=notes)


def _lean_layout(
    con: duckdb.DuckDBPyConnection, path: Path, cols: dict[str, str], config: ChainIngestConfig
) -> _Layout:
    source = _materialize(con, _source_sql(path))
    types = _column_types(con, source)
    c = {k: _ident(v) for k, v in cols.items()}
    exprs = {
        "root": c["root"],
        "quote_date": c["date"],
        "quote_time": c["time_et"],
        "expiration_date": c["expiration"],
        "strike": c["strike"],
        "option_type": c["right"],
        "ask": c["ask_close"],
    }
    theirs = {
        "root": "root",
        "quote_date": "date",
        "quote_time": "time_et",
        "expiration_date": "expiration",
        "strike": "strike",
        "option_type": "right",
        "ask": "ask_close",
    }
    etypes = {k: types[cols[theirs[k]]] for k in exprs}
    # a bar without a bid (empty bid_close with bid_size 0) is "no bid": stored as bid 0, counted
    bid, bsize = c["bid_close"], c.get("bid_size")
    notes = ["bid/ask = the bar's closing quotes; quote_time = bar start + 1 minute (bar close)"]
    if bsize is not None:
        blank = f"(nullif(trim(CAST({bid} AS VARCHAR)), '') IS NULL)"
        no_bid = f"({blank} AND try_cast(trim(CAST({bsize} AS VARCHAR)) AS DOUBLE) = 0)"
        exprs["bid"] = f"CASE WHEN {no_bid} THEN '0' ELSE CAST({bid} AS VARCHAR) END"
        n = con.execute(f"SELECT count(*) FROM {source} WHERE {no_bid}").fetchall()[0][0]
        if n:
            notes.append(f"{n} bars with no bid (empty bid_close, bid_size 0) stored as bid 0")
        exprs["bid_size"] = bsize
        etypes["bid_size"] = types[cols["bid_size"]]
    else:
        exprs["bid"] = bid
    etypes["bid"] = "VARCHAR" if bsize is not None else types[cols["bid_close"]]
    if "ask_size" in c:
        exprs["ask_size"] = c["ask_size"]
        etypes["ask_size"] = types[cols["ask_size"]]
    terms = config.root_terms()
    exprs["underlying"] = _root_to_underlying_sql(c["root"], terms)
    etypes["underlying"] = "VARCHAR"
    notes.append("no underlying price in minute bars: moneyness and strike-unit checks skipped")
    return _Layout(
        source,
        _row_expr(source),
        exprs,
        etypes,
        dict(_DEFAULT_RIGHTS),
        time_offset_minutes=1,
        notes=notes,
        style_expr=c.get("style"),
    )


def _map_underlying_roots(
    con: duckdb.DuckDBPyConnection,
    source: str,
    exprs: dict[str, str],
    etypes: dict[str, str],
    config: ChainIngestConfig,
    notes: list[str],
) -> None:
    """An ``underlying`` column that names an option root (``SPXW``) is mapped to the root's
    underlying (``SPX``) through the one root table (:data:`data_feeds.contracts.ROOT_UNDERLYING`
    plus configured ``[roots.X] underlying``); the mapped rows are counted in the notes."""
    terms = config.root_terms()
    col = exprs["underlying"]
    u = f"upper(trim(CAST({col} AS VARCHAR)))"
    moved = {k: v[2] for k, v in terms.items() if v[2] != k}
    if not moved:
        return
    keys = ", ".join(_lit(k) for k in sorted(moved))
    rows = con.execute(
        f"SELECT {u}, count(*) FROM {source} WHERE {u} IN ({keys}) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    exprs["underlying"] = _root_to_underlying_sql(col, terms)
    etypes["underlying"] = "VARCHAR"
    for root, n in rows:
        notes.append(
            f"{n} rows name the option root {root} as underlying: stored under {moved[root]}"
        )


def _root_to_underlying_sql(root_sql: str, terms: dict[str, tuple[str, str, str]]) -> str:
    r = f"upper(trim(CAST({root_sql} AS VARCHAR)))"
    whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v[2])}" for k, v in sorted(terms.items()))
    return f"CASE {r} {whens} ELSE {r} END"


def _generic_layout(
    con: duckdb.DuckDBPyConnection, path: Path, cols: dict[str, str], config: ChainIngestConfig
) -> _Layout:
    g = config.generic
    assert g is not None  # checked by layout_problem
    source = _materialize(con, _source_sql(path, g.delimiter))
    types = _column_types(con, source)
    exprs: dict[str, str] = {}
    etypes: dict[str, str] = {}
    for store, theirs in g.columns.items():
        orig = cols[theirs.strip().lower()]
        exprs[store] = _ident(orig)
        etypes[store] = types[orig]
    notes = []
    if "root" not in exprs:
        if g.root is not None:
            exprs["root"] = _lit(g.root.upper())
        else:
            sym = exprs["symbol"]
            exprs["root"] = (
                f"nullif(regexp_extract(trim(CAST({sym} AS VARCHAR)), '^([A-Za-z]+)', 1), '')"
            )
            notes.append("root derived from the symbol prefix")
        etypes["root"] = "VARCHAR"
    if "underlying" in exprs:
        _map_underlying_roots(con, source, exprs, etypes, config, notes)
    if "underlying" not in exprs:
        if g.underlying is not None:
            exprs["underlying"] = _lit(g.underlying.upper())
        else:
            exprs["underlying"] = _root_to_underlying_sql(exprs["root"], config.root_terms())
        etypes["underlying"] = "VARCHAR"
    if "quote_time" not in exprs:
        assert g.quote_time is not None
        exprs["quote_time"] = f"TIME '{g.quote_time:%H:%M:%S}'"
        etypes["quote_time"] = "TIME"
        notes.append(f"snapshot time {g.quote_time:%H:%M} ET from the config")
    rights = {k.strip().upper(): v for k, v in g.option_type_values.items()}
    if g.strike_divisor != 1.0:
        notes.append(f"strikes divided by {g.strike_divisor:g}")
    return _Layout(
        source,
        _row_expr(source),
        exprs,
        etypes,
        rights,
        date_format=g.date_format,
        time_format=g.time_format,
        strike_divisor=g.strike_divisor,
        notes=notes,
    )


_ADAPTERS = {"vendor": _vendor_layout, "lean-minute": _lean_layout, "generic": _generic_layout}


# -- parsing ---------------------------------------------------------------------------------------
_NUMERIC = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "DECIMAL",
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
    "UBIGINT",
    "UINTEGER",
    "USMALLINT",
    "UTINYINT",
)


def _is_text(sql_type: str) -> bool:
    return sql_type.upper().startswith("VARCHAR")


def _parse_sql(name: str, kind: str, raw: str, sql_type: str, lay: _Layout) -> str:
    """SQL parsing the raw expression ``raw`` (of type ``sql_type``) into the store type."""
    text = _is_text(sql_type)
    t = f"nullif(trim({raw}), '')" if text else f"CAST({raw} AS VARCHAR)"
    if kind == "text":
        out = t if name == "symbol" else f"upper({t})"
        return out
    if kind in ("double", "int"):
        if text or not sql_type.upper().startswith(_NUMERIC):
            d = f"try_cast({t} AS DOUBLE)"
        else:
            d = f"CAST({raw} AS DOUBLE)"
        d = f"CASE WHEN isfinite({d}) THEN {d} END"
        if kind == "int":
            return f"CASE WHEN {d} = round({d}) THEN try_cast({d} AS BIGINT) END"
        if name == "strike" and lay.strike_divisor != 1.0:
            return f"({d} / {lay.strike_divisor!r})"
        return d
    if kind == "date":
        up = sql_type.upper()
        if name in lay.date_sql:  # decided per file by _resolve_dates
            return lay.date_sql[name].replace("{t}", t).replace("{raw}", raw)
        if up == "DATE":
            return raw
        if up.startswith("TIMESTAMP"):
            return f"CAST({raw} AS DATE)"
        if lay.date_format == "auto":
            return (
                f"CAST(coalesce(try_strptime({t}, '%Y-%m-%d'), try_strptime({t}, '%m/%d/%Y'), "
                f"try_cast({t} AS TIMESTAMP)) AS DATE)"
            )
        return f"CAST(try_strptime({t}, {_lit(lay.date_format)}) AS DATE)"
    if kind == "time":
        up = sql_type.upper()
        if up == "TIME":
            base = raw
        elif lay.time_format == "auto":
            base = (
                f"CAST(coalesce(try_strptime({t}, '%H:%M:%S'), try_strptime({t}, '%H:%M')) AS TIME)"
            )
        else:
            base = f"CAST(try_strptime({t}, {_lit(lay.time_format)}) AS TIME)"
        if lay.time_offset_minutes:
            return f"({base} + INTERVAL {int(lay.time_offset_minutes)} MINUTE)"
        return base
    if kind == "right":
        whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in sorted(lay.right_map.items()))
        return f"CASE upper({t}) {whens} END"
    raise AssertionError(kind)


_ISO_DATE = r"^\d{4}-\d{1,2}-\d{1,2}$"
_ISO_STAMP = r"^\d{4}-\d{1,2}-\d{1,2}[ T]\d"
_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"
_MIDNIGHT = r"[ T]00:00(:00(\.0+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$"
_SLASH = r"^\d{1,2}/\d{1,2}/(\d{2}|\d{4})$"


def _resolve_dates(con: duckdb.DuckDBPyConnection, lay: _Layout, source_name: str) -> None:
    """Decide how each date field of the file is parsed, once per file from ALL its values.

    * a ``DATE`` column is taken as is; a naive ``TIMESTAMP`` by its (wall-clock) date;
    * a tz-aware timestamp (``TIMESTAMP WITH TIME ZONE`` or text with an offset) whose every
      value is midnight in its written zone is a date *label*: its written date is taken;
      otherwise each instant is converted to America/New_York (exchange time) and its date taken
      -- independent of the machine's ``TZ`` and of DuckDB's session time zone;
    * slash dates are MM/DD or DD/MM for the whole file (:func:`data_feeds.calendar.
      day_month_order`, evidence pooled over every date column); 2-digit years (``1/3/11``) are
      read with the POSIX pivot (69-99 -> 19xx, 00-68 -> 20xx) and noted in the report.
    """
    from data_feeds.calendar import TZ, day_month_order

    text_fields: list[tuple[str, str]] = []
    for name, kind, _req in FIELDS:
        if kind != "date" or name not in lay.exprs:
            continue
        expr, up = lay.exprs[name], lay.types[name].upper()
        if up in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            midnight = con.execute(
                f"SELECT coalesce(bool_and(CAST(timezone('UTC', {expr}) AS TIME) = TIME '00:00'), "
                f"TRUE) FROM {lay.source}"
            ).fetchall()[0][0]
            zone = "UTC" if midnight else TZ
            lay.date_sql[name] = f"CAST(timezone('{zone}', {{raw}}) AS DATE)"
            lay.notes.append(
                f"{name}: tz-aware timestamps "
                + (
                    "all at midnight UTC, read as date labels (the UTC date)"
                    if midnight
                    else "converted to America/New_York before taking the date"
                )
            )
        elif _is_text(up) and lay.date_format == "auto":
            text_fields.append((name, expr))
    if not text_fields:
        return
    stats: dict[str, tuple[Any, ...]] = {}
    for name, expr in text_fields:
        t = f"nullif(trim(CAST({expr} AS VARCHAR)), '')"
        s_ = f"regexp_full_match({t}, '{_SLASH[1:-1]}')"
        p1 = f"try_cast(split_part({t}, '/', 1) AS INTEGER)"
        p2 = f"try_cast(split_part({t}, '/', 2) AS INTEGER)"
        stamp = f"regexp_matches({t}, '{_ISO_STAMP}')"
        stats[name] = con.execute(
            f"""SELECT
                count(*) FILTER (WHERE {s_}),
                coalesce(max({p1}) FILTER (WHERE {s_} AND {p2} <= 12 AND {p1} <= 31), 0),
                coalesce(max({p2}) FILTER (WHERE {s_} AND {p1} <= 12 AND {p2} <= 31), 0),
                count(*) FILTER (WHERE {s_} AND {p1} <> {p2} AND {p1} <= 12 AND {p2} <= 12),
                any_value({t}) FILTER (WHERE {s_} AND {p1} <> {p2} AND {p1} <= 12
                    AND {p2} <= 12),
                count(*) FILTER (WHERE {s_} AND length(split_part({t}, '/', 3)) = 2),
                count(*) FILTER (WHERE {stamp} AND regexp_matches({t}, '{_OFFSET}')),
                coalesce(bool_and(regexp_matches({t}, '{_MIDNIGHT}')) FILTER (WHERE {stamp}),
                    TRUE)
            FROM {lay.source}"""
        ).fetchall()[0]
    slash = [v for v in stats.values() if v[0]]
    order = "%m/%d"
    if slash:
        example = next((v[4] for v in slash if v[4]), None)
        order = day_month_order(
            max(v[1] for v in slash),
            max(v[2] for v in slash),
            sum(v[3] for v in slash),
            source_name,
            repr(example) if example else None,
        )
        if order != "%m/%d":
            lay.notes.append("slash dates read as DD/MM (a first component above 12)")
    for name, _expr in text_fields:
        _n, _m1, _m2, _amb, _ex, n_yy, n_offset, all_midnight = stats[name]
        if n_yy:
            lay.notes.append(
                f"{name}: {n_yy} dates with 2-digit years read with the POSIX pivot "
                "(69-99 -> 19xx, 00-68 -> 20xx)"
            )
        if n_offset and all_midnight:
            stamp_sql = "CAST(try_strptime(left({t}, 10), '%Y-%m-%d') AS DATE)"
            lay.notes.append(f"{name}: timestamps at midnight read as date labels")
        elif n_offset:
            stamp_sql = f"CAST(timezone('{TZ}', try_cast({{t}} AS TIMESTAMPTZ)) AS DATE)"
            lay.notes.append(f"{name}: offsets converted to America/New_York before the date")
        else:
            stamp_sql = "CAST(try_cast({t} AS TIMESTAMP) AS DATE)"
        slash_sql = (
            f"CASE WHEN length(split_part({{t}}, '/', 3)) = 2 "
            f"THEN CAST(try_strptime({{t}}, '{order}/%y') AS DATE) "
            f"ELSE CAST(try_strptime({{t}}, '{order}/%Y') AS DATE) END"
        )
        lay.date_sql[name] = (
            f"CASE WHEN regexp_full_match({{t}}, '{_ISO_DATE[1:-1]}') "
            "THEN CAST(try_strptime({t}, '%Y-%m-%d') AS DATE) "
            f"WHEN regexp_full_match({{t}}, '{_SLASH[1:-1]}') THEN {slash_sql} "
            f"WHEN regexp_matches({{t}}, '{_ISO_STAMP}') THEN {stamp_sql} END"
        )


def _missing_sql(raw: str, sql_type: str) -> str:
    if _is_text(sql_type):
        return f"(nullif(trim({raw}), '') IS NULL)"
    return f"({raw} IS NULL)"


@dataclass
class StagedFile:
    """A file staged in the connection's temporary table ``_chk`` (one row per file row with its
    parsed fields, ``reason``, ``detail``, liquidity flags and ``partition_key``).

    Attributes
    ----------
    path : pathlib.Path
    format : str
    data_source : str
    rows_read : int
    notes : list of str
    config : ChainIngestConfig
    """

    path: Path
    format: str
    data_source: str
    rows_read: int
    notes: list[str]
    config: ChainIngestConfig


def stage_file(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    fmt: str,
    config: ChainIngestConfig | None = None,
) -> StagedFile:
    """Read, parse and validate one chain file into the temporary table ``_chk`` of ``con``.

    Nothing outside temporary tables is written. See the module docstring for the rules.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection whose temporary tables receive the staged rows.
    path : str or pathlib.Path
        ``.parquet``, ``.csv`` or ``.csv.gz`` file.
    fmt : {'vendor', 'lean-minute', 'generic'}
    config : ChainIngestConfig, optional
        Defaults to ``ChainIngestConfig()``.

    Returns
    -------
    StagedFile

    Raises
    ------
    DataSourceError
        Missing/unreadable file, unknown format, a layout that does not match ``fmt``.
    DataValidationError
        An unknown root (names file, row and field), or a file style that contradicts the
        root's contract terms.
    """
    config = config or ChainIngestConfig()
    if fmt not in FORMATS:
        raise DataSourceError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    p = Path(path)
    cols = file_columns(con, p)
    problem = layout_problem(cols, fmt, config)
    if problem:
        raise DataSourceError(f"{p}: {problem}; found {sorted(cols)}")
    data_source = f"{fmt}:{p.name}"
    try:
        lay = _ADAPTERS[fmt](con, p, cols, config)
        if fmt != "generic":
            lay.date_format = config.date_format
        _resolve_dates(con, lay, str(p))
        _parse(con, lay, str(p))
        rows_read = con.execute("SELECT count(*) FROM _stg").fetchall()[0][0]
        if rows_read == 0:
            raise DataSourceError(f"{p}, line 2: no data rows after the header")
        terms = config.root_terms()
        _check_roots(con, str(p), terms)
        if lay.style_expr is not None:
            _check_style(con, lay, str(p), terms)
        _validate(con, config, terms, data_source)
        con.execute("DROP TABLE IF EXISTS _src")
    except duckdb.Error as exc:  # a fault past the header: one line naming the file and line
        raise DataSourceError(duckdb_error_line(p, exc)) from exc
    return StagedFile(p, fmt, data_source, int(rows_read), lay.notes, config)


def _parse(con: duckdb.DuckDBPyConnection, lay: _Layout, source_name: str) -> None:
    raw_cols = [f"{lay.row_expr} AS source_row"]
    parsed_cols = ["source_row"]
    reason_whens: list[str] = []
    detail_whens: list[str] = []
    for name, kind, required in FIELDS:
        expr = lay.exprs.get(name)
        if expr is None:
            parsed_cols.append(f"CAST(NULL AS {_store_type(kind)}) AS {name}")
            if required:  # adapters fill every required field; guard anyway
                raise DataSourceError(f"{source_name}: adapter gives no '{name}'")
            continue
        raw = f"{name}__raw"
        raw_cols.append(f"{expr} AS {raw}")
        sql_type = lay.types[name]
        parsed = _parse_sql(name, kind, raw, sql_type, lay)
        parsed_cols.append(f"{parsed} AS {name}")
    for name, _kind, required in FIELDS:  # required fields: missing, then unparseable
        if name not in lay.exprs:
            continue
        raw, sql_type = f"{name}__raw", lay.types[name]
        if required:
            reason_whens.append(
                f"WHEN {_missing_sql(raw, sql_type)} THEN '{REASON_MISSING}: {name}'"
            )
            detail_whens.append(f"WHEN {_missing_sql(raw, sql_type)} THEN NULL")
    for name, _kind, _req in FIELDS:
        if name not in lay.exprs:
            continue
        raw, sql_type = f"{name}__raw", lay.types[name]
        bad = f"(NOT {_missing_sql(raw, sql_type)} AND {name} IS NULL)"
        reason_whens.append(f"WHEN {bad} THEN '{REASON_UNPARSEABLE}: {name}'")
        detail_whens.append(f"WHEN {bad} THEN {_lit(name + '=')} || CAST({raw} AS VARCHAR)")
    names = ", ".join(FIELD_NAMES)
    sql = f"""
        CREATE OR REPLACE TEMP TABLE _stg AS
        WITH r AS (SELECT {", ".join(raw_cols)} FROM {lay.source}),
        p AS (SELECT *, {", ".join(parsed_cols[1:])} FROM r)
        SELECT source_row, {names},
            CASE {" ".join(reason_whens)} END AS parse_reason,
            CASE {" ".join(detail_whens)} END AS detail
        FROM p
    """
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise DataSourceError(duckdb_error_line(source_name, exc)) from exc


def _store_type(kind: str) -> str:
    return {
        "text": "VARCHAR",
        "date": "DATE",
        "time": "TIME",
        "double": "DOUBLE",
        "int": "BIGINT",
        "right": "VARCHAR",
    }[kind]


def _check_roots(
    con: duckdb.DuckDBPyConnection, source: str, terms: dict[str, tuple[str, str, str]]
) -> None:
    known = ", ".join(_lit(k) for k in terms)
    rows = con.execute(
        f"SELECT root, min(source_row) FROM _stg WHERE root IS NOT NULL AND root NOT IN ({known}) "
        "GROUP BY root ORDER BY 2 LIMIT 1"
    ).fetchall()
    if rows:
        row = rows[0]
        raise DataValidationError(
            source,
            f"unknown option root {row[0]!r}: style and settlement are unknown; known roots "
            f"{sorted(terms)} -- add [roots.{row[0]}] style = ..., settlement = ... to the config",
            row=f"#{row[1]}",
            field="root",
        )


def _check_style(
    con: duckdb.DuckDBPyConnection,
    lay: _Layout,
    source: str,
    terms: dict[str, tuple[str, str, str]],
) -> None:
    rows = con.execute(
        f"SELECT upper(trim(CAST({lay.exprs['root']} AS VARCHAR))) AS root, "
        f"lower(trim(CAST({lay.style_expr} AS VARCHAR))) AS style, min({lay.row_expr}) "
        f"FROM {lay.source} GROUP BY ALL"
    ).fetchall()
    for root, style, first in rows:
        if root in terms and style and style != terms[root][0]:
            raise DataValidationError(
                source,
                f"style {style!r} contradicts root {root}, which is {terms[root][0]}",
                row=f"#{first}",
                field="style",
            )


def _validate(
    con: duckdb.DuckDBPyConnection,
    config: ChainIngestConfig,
    terms: dict[str, tuple[str, str, str]],
    data_source: str,
) -> None:
    # NYSE sessions of the file's quote dates, and each non-session's previous session
    dates = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT quote_date FROM _stg WHERE quote_date BETWEEN "
            f"DATE '{MIN_DATE}' AND DATE '{MAX_DATE}'"
        ).fetchall()
    ]
    sess = _session_table(dates)
    con.register("_sess_df", sess)
    con.execute("CREATE OR REPLACE TEMP TABLE _sess AS SELECT * FROM _sess_df")
    con.unregister("_sess_df")
    ratio = float(config.validation.strike_unit_ratio)
    horizon_days = float(config.validation.max_expiry_years) * 365.25
    liq = config.liquidity
    style = " ".join(f"WHEN {_lit(k)} THEN {_lit(v[0])}" for k, v in sorted(terms.items()))
    settle = " ".join(f"WHEN {_lit(k)} THEN {_lit(v[1])}" for k, v in sorted(terms.items()))
    fail = {
        "spread": (
            f"CASE WHEN mid > 0 THEN (ask - bid) / mid >= {liq.max_spread_to_mid!r} ELSE TRUE END"
            if liq.max_spread_to_mid is not None
            else "NULL"
        ),
        "open_interest": (
            f"open_interest <= {int(liq.min_open_interest)}"
            if liq.min_open_interest is not None
            else "NULL"
        ),
        "volume": f"volume <= {int(liq.min_volume)}" if liq.min_volume is not None else "NULL",
        "dte": _range_sql(
            "date_diff('day', quote_date, expiration_date)", liq.min_dte, liq.max_dte, strict=False
        ),
        "moneyness": _range_sql(
            "(underlying_price / strike)", liq.min_moneyness, liq.max_moneyness, strict=True
        ),
    }
    key_cols = ("root", "quote_date", "quote_time", "expiration_date", "strike", "option_type")
    key = ", ".join(key_cols)
    dup_on = " AND ".join(f"dup.{c} = a.{c}" for c in key_cols)
    content = ", ".join(
        "s." + c
        for c in (
            "underlying symbol bid ask last volume open_interest implied_volatility delta gamma "
            "theta vega rho bid_size ask_size underlying_price"
        ).split()
    )
    ds = _lit(data_source)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _chk AS
        WITH prev AS (
            SELECT underlying, quote_date, arg_max(underlying_price, quote_time) AS px
            FROM _stg WHERE parse_reason IS NULL GROUP BY ALL
        ),
        a AS (
            SELECT s.*,
                CASE
                    WHEN s.parse_reason IS NOT NULL THEN s.parse_reason
                    WHEN s.strike <= 0 THEN '{REASON_NONPOSITIVE_STRIKE}'
                    WHEN s.quote_date NOT BETWEEN DATE '{MIN_DATE}' AND DATE '{MAX_DATE}'
                        THEN '{REASON_DATE_RANGE}'
                    WHEN NOT d.is_session AND s.underlying_price = pv.px
                        THEN '{REASON_HOLIDAY_REPEAT}'
                    WHEN NOT d.is_session THEN '{REASON_NOT_SESSION}'
                    WHEN s.expiration_date < s.quote_date THEN '{REASON_EXPIRED}'
                    WHEN date_diff('day', s.quote_date, s.expiration_date) > {horizon_days!r}
                        THEN '{REASON_FAR_EXPIRY}'
                    WHEN s.bid < 0 OR s.ask < 0 OR s.last < 0 THEN '{REASON_NEGATIVE_PRICE}'
                    WHEN s.volume < 0 OR s.open_interest < 0 OR s.bid_size < 0 OR s.ask_size < 0
                        THEN '{REASON_NEGATIVE_SIZE}'
                    WHEN s.bid > s.ask THEN '{REASON_CROSSED}'
                    WHEN s.underlying_price > 0 AND (s.strike / s.underlying_price > {ratio!r}
                        OR s.strike / s.underlying_price < {1.0 / ratio!r})
                        THEN '{REASON_STRIKE_UNIT}'
                END AS reason1,
                hash({content}) AS h
            FROM _stg s
            LEFT JOIN _sess d ON d.quote_date = s.quote_date
            LEFT JOIN prev pv ON pv.underlying = s.underlying AND pv.quote_date = d.prev_session
        ),
        dup AS (
            SELECT {key}, count(*) AS n_key, min(h) AS h_min, max(h) AS h_max,
                min(source_row) AS first_row
            FROM a WHERE reason1 IS NULL GROUP BY ALL HAVING count(*) > 1
        ),
        v AS (
            SELECT a.* EXCLUDE (reason1, h, parse_reason),
                CASE
                    WHEN a.reason1 IS NOT NULL THEN a.reason1
                    WHEN dup.h_min <> dup.h_max THEN '{REASON_CONFLICT}'
                    WHEN a.source_row > dup.first_row THEN '{REASON_DUPLICATE}'
                END AS reason,
                CASE WHEN a.reason1 IS NULL AND dup.n_key > 1
                    THEN 'rows with this key: ' || CAST(dup.n_key AS VARCHAR) END AS dup_detail,
                CASE a.root {style} END AS style,
                CASE a.root {settle} END AS settlement,
                (a.bid + a.ask) / 2 AS mid
            FROM a LEFT JOIN dup ON a.reason1 IS NULL AND {dup_on}
        ),
        f AS (
            SELECT * EXCLUDE (detail, dup_detail), coalesce(detail, dup_detail) AS detail,
                CASE WHEN reason IS NULL THEN {fail["spread"]} END AS fail_spread,
                CASE WHEN reason IS NULL THEN {fail["open_interest"]} END AS fail_open_interest,
                CASE WHEN reason IS NULL THEN {fail["volume"]} END AS fail_volume,
                CASE WHEN reason IS NULL THEN {fail["dte"]} END AS fail_dte,
                CASE WHEN reason IS NULL THEN {fail["moneyness"]} END AS fail_moneyness
            FROM v
        )
        SELECT *,
            CASE WHEN reason IS NULL THEN NOT (coalesce(fail_spread, FALSE)
                OR coalesce(fail_open_interest, FALSE) OR coalesce(fail_volume, FALSE)
                OR coalesce(fail_dte, FALSE) OR coalesce(fail_moneyness, FALSE)) END AS is_liquid,
            CASE WHEN root IS NULL OR quote_date IS NULL THEN 'unkeyed|' || {ds}
                ELSE root || '|' || CAST(quote_date AS VARCHAR) END AS partition_key
        FROM f
        """
    )


def _range_sql(expr: str, lo: float | None, hi: float | None, *, strict: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{expr} {'<=' if strict else '<'} {lo!r}")
    if hi is not None:
        parts.append(f"{expr} {'>=' if strict else '>'} {hi!r}")
    return "(" + " OR ".join(parts) + ")" if parts else "NULL"


def _session_table(dates: list[dt.date]) -> pd.DataFrame:
    """``quote_date, is_session, prev_session`` for each date (prev: the NYSE session before)."""
    if not dates:
        return pd.DataFrame(
            {
                "quote_date": pd.Series(dtype="datetime64[us]"),
                "is_session": pd.Series(dtype=bool),
                "prev_session": pd.Series(dtype="datetime64[us]"),
            }
        )
    idx = pd.DatetimeIndex(pd.to_datetime(sorted(dates)))
    flags = is_nyse_session(idx).to_numpy()
    sessions = nyse_sessions(idx[0] - pd.Timedelta(days=15), idx[-1]).tz_localize(None)
    pos = sessions.searchsorted(idx, side="left") - 1
    prev = [sessions[i] if i >= 0 else pd.NaT for i in pos]
    return pd.DataFrame(
        {
            "quote_date": idx.astype("datetime64[us]"),
            "is_session": flags,
            "prev_session": pd.DatetimeIndex(prev).astype("datetime64[us]"),
        }
    )


def reason_rank(reason: str) -> int:
    """Position of ``reason`` in :data:`REASON_ORDER`, for sorting reports in rule order.

    Parameters
    ----------
    reason : str
        A quarantine reason (``"missing required field: bid"`` ranks by its prefix).

    Returns
    -------
    int
        0-based rule position; ``len(REASON_ORDER)`` for an unknown reason.
    """
    for i, prefix in enumerate(REASON_ORDER):
        if reason == prefix or reason.startswith(prefix + ":"):
            return i
    return len(REASON_ORDER)


def staged_counts(
    con: duckdb.DuckDBPyConnection, report: IngestReport, config: ChainIngestConfig
) -> None:
    """Fill the validation and liquidity counts of ``report`` from the staged ``_chk`` table.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection holding ``_chk`` (after :func:`stage_file`).
    report : IngestReport
        Filled in place: ``quarantined_by_reason`` (rule order), ``rows_quarantined``,
        ``liquid``, ``illiquid``, ``liquidity_failures``, ``liquidity_skipped``,
        ``liquidity_disabled``.
    config : ChainIngestConfig
        The config the file was staged with (which criteria are on).
    """
    reasons = con.execute(
        "SELECT reason, count(*) FROM _chk WHERE reason IS NOT NULL GROUP BY reason"
    ).fetchall()
    report.quarantined_by_reason = {
        r: int(n) for r, n in sorted(reasons, key=lambda x: (reason_rank(x[0]), x[0]))
    }
    report.rows_quarantined = sum(report.quarantined_by_reason.values())
    crit = LIQUIDITY_CRITERIA
    sel = ", ".join(
        f"count(*) FILTER (WHERE fail_{c}), count(*) FILTER (WHERE fail_{c} IS NULL)" for c in crit
    )
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE is_liquid), count(*) FILTER (WHERE NOT is_liquid), {sel} "
        "FROM _chk WHERE reason IS NULL"
    ).fetchall()[0]
    report.liquid, report.illiquid = int(row[0]), int(row[1])
    enabled = enabled_criteria(config)
    report.liquidity_failures, report.liquidity_skipped, report.liquidity_disabled = {}, {}, []
    for i, c in enumerate(crit):
        failing, missing = int(row[2 + 2 * i]), int(row[3 + 2 * i])
        if not enabled[c]:
            report.liquidity_disabled.append(c)
            continue
        report.liquidity_failures[c] = failing
        if missing:
            report.liquidity_skipped[c] = missing


def enabled_criteria(config: ChainIngestConfig) -> dict[str, bool]:
    """Which liquidity criteria are switched on in ``config``.

    Parameters
    ----------
    config : ChainIngestConfig

    Returns
    -------
    dict of str to bool
        Keyed by :data:`LIQUIDITY_CRITERIA`; a range criterion is on when either bound is set.
    """
    liq = config.liquidity
    return {
        "spread": liq.max_spread_to_mid is not None,
        "open_interest": liq.min_open_interest is not None,
        "volume": liq.min_volume is not None,
        "dte": liq.min_dte is not None or liq.max_dte is not None,
        "moneyness": liq.min_moneyness is not None or liq.max_moneyness is not None,
    }


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (read in 1 MiB blocks).

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    str
        64 hex digits (stored in ``ingest_log``).
    """
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = [
    "FIELDS",
    "FORMATS",
    "LIQUIDITY_CRITERIA",
    "REASON_ORDER",
    "ROOT_UNDERLYING",
    "UNREADABLE",
    "ChainIngestConfig",
    "GenericLayout",
    "IngestReport",
    "LiquidityConfig",
    "RootConfig",
    "StagedFile",
    "ValidationConfig",
    "check_csv_file",
    "discover_files",
    "duckdb_error_line",
    "enabled_criteria",
    "file_columns",
    "file_sha256",
    "layout_problem",
    "load_ingest_config",
    "reason_rank",
    "stage_file",
    "staged_counts",
]
