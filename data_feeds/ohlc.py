"""Daily OHLC loading and validation.

``load_ohlc(source)`` reads one daily price series from any of the sources volsuite knows and
returns a validated frame. Every row a filter removes is counted in a :class:`LoadReport` that
travels with the frame (``frame.attrs["load_report"]``) and is printed by the CLI.

Sources
-------
``builtin:sp500``
    S&P 500 daily OHLC + volume, 1999-01-04 .. 2018-12-31, shipped by ``arch``
    (``arch.data.sp500``).
``builtin:vix``
    Cboe VIX daily close, 2014-01-03 .. 2019-01-03, shipped by ``arch`` (``arch.data.vix``). Close
    only.
``yfinance:<ticker>``
    Yahoo Finance daily bars through ``yfinance``, cached as parquet (see :func:`load_yfinance`).
a path
    ``.csv``, ``.csv.gz`` or ``.parquet`` in any of these layouts: long format with a ``root``
    (or ``symbol``/``ticker``) column (pass ``root=``); Cboe ``DATE,OPEN,HIGH,LOW,CLOSE``; Yahoo
    ``Date,Open,High,Low,Close,Adj Close,Volume``; a single-value series such as ``DATE,VVIX``
    (returned as a ``close``-only frame). Dates ISO (``YYYY-MM-DD``) or US (``MM/DD/YYYY``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_feeds.calendar import DAY_FIRST, TZ, day_month_order, is_nyse_session, nyse_sessions
from data_feeds.errors import DataSourceError, DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close")
_DATE_NAMES = ("date", "datetime", "timestamp", "time", "quote_date")
_ROOT_NAMES = ("root", "symbol", "ticker")
_IGNORED = ("adj_close", "adjclose", "dividends", "stock_splits", "capital_gains")


@dataclass
class LoadReport:
    """What a load read, kept and removed, and why.

    Attributes
    ----------
    source : str
        The source spec as given.
    rows_read : int
        Rows in the source after selecting ``root`` (long format).
    rows_kept : int
        Rows in the returned frame.
    dropped : dict[str, int]
        Rows removed, per reason.
    notes : list[str]
        Other facts a user should know (layout detected, close-only, cache used).
    holiday_rows : int
        Kept rows with prices on a weekday the NYSE was closed (Cboe publishes VIX on some NYSE
        holidays); listed in ``notes``. Weekend rows are violations, never kept silently.
    missing_sessions : int
        NYSE sessions between the first and last kept date with no row (listed in ``notes``).
    """

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    holiday_rows: int = 0
    missing_sessions: int = 0

    def drop(self, reason: str, count: int) -> None:
        """Record ``count`` rows removed for ``reason`` (zero counts are not recorded)."""
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def summary(self) -> str:
        """One line: ``source: kept K of N rows (dropped: reason=n, ...)``."""
        text = f"{self.source}: kept {self.rows_kept} of {self.rows_read} rows"
        if self.holiday_rows or self.missing_sessions:
            text += (
                f" ({self.holiday_rows} on NYSE holidays, {self.missing_sessions} NYSE sessions "
                "missing)"
            )
        if self.dropped:
            text += " (dropped: " + ", ".join(f"{k}={v}" for k, v in self.dropped.items()) + ")"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def load_ohlc(
    source: str | Path,
    *,
    root: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    cache_dir: str | Path | None = None,
    downloader: Callable[[str], pd.DataFrame] | None = None,
    on_invalid: str = "raise",
    date_format: str = "auto",
) -> pd.DataFrame:
    """Load one daily OHLC series as a validated frame.

    Parameters
    ----------
    source : str or pathlib.Path
        ``builtin:sp500``, ``builtin:vix``, ``yfinance:<ticker>`` or a CSV/parquet path (see the
        module docstring for the layouts).
    root : str, optional
        Which series to take from a long-format file (value of its ``root``/``symbol`` column).
        Required for long-format files, rejected for the others.
    start, end : str or pandas.Timestamp, optional
        Inclusive session-date bounds; rows outside are counted as ``outside [start, end]``.
    cache_dir : str or pathlib.Path, optional
        Cache folder for ``yfinance:`` sources (default ``$VOLSUITE_CACHE_DIR`` or
        ``results/cache/yfinance``).
    downloader : callable, optional
        ``ticker -> DataFrame`` used instead of ``yfinance.download`` (tests, proxies).
    on_invalid : {"raise", "drop"}
        What a rule violation does: ``"raise"`` (default) stops with a :class:`DataValidationError`;
        ``"drop"`` removes the row and counts it per rule in the report (for vendor files with known
        bad rows, e.g. Cboe's 1992 VIX opens outside the day's range).
    date_format : str
        ``"auto"`` (default): the date column's format is decided once from ALL its values -- ISO,
        ``MM/DD/YYYY`` or ``DD/MM/YYYY`` (an ambiguous column is an error asking for
        ``date_format``), 2-digit years with the POSIX pivot, tz-aware timestamps converted to
        America/New_York before the date is taken (date labels at midnight keep their written
        date); or a ``strftime`` format.

    Returns
    -------
    pandas.DataFrame
        Columns ``open, high, low, close`` (index points or dollars, float64) and ``volume`` when
        the source has it; a single-value series gives ``close`` only. Index: unique, increasing,
        tz-aware (``America/New_York``) session dates named ``date``. ``attrs["load_report"]`` holds
        the :class:`LoadReport`, ``attrs["source"]`` the spec, ``attrs["fingerprint"]`` a sha256 of
        the values.

    Raises
    ------
    DataSourceError
        Unknown builtin, missing file, unrecognized layout, missing ``root``, failed download with
        no cache.
    DataValidationError
        Duplicate dates, NaN on a trading day, non-positive prices, ``low > open/close`` or
        ``high < open/close``, a row dated on a weekend, ambiguous or unparseable dates; the
        message names the source, the row (date or row number) and the field.
    """
    spec = str(source)
    report = LoadReport(source=spec if root is None else f"{spec}[{root}]")
    if spec.startswith("builtin:"):
        if root is not None:
            raise DataSourceError(f"{spec}: 'root' applies to long-format files only")
        raw = _load_builtin(spec, report)
    elif spec.startswith("yfinance:"):
        if root is not None:
            raise DataSourceError(f"{spec}: 'root' applies to long-format files only")
        raw = load_yfinance(
            spec.split(":", 1)[1], cache_dir=cache_dir, downloader=downloader, report=report
        )
    else:
        raw = _read_file(Path(spec), report)
    frame = _normalize(raw, report.source, root, report, date_format)
    return validate_ohlc(
        frame, report.source, report=report, start=start, end=end, on_invalid=on_invalid
    )


def _load_builtin(spec: str, report: LoadReport) -> pd.DataFrame:
    name = spec.split(":", 1)[1]
    if name == "sp500":
        import arch.data.sp500

        report.notes.append("S&P 500 daily bars shipped by arch (arch.data.sp500)")
        return arch.data.sp500.load()
    if name == "vix":
        import arch.data.vix

        report.notes.append("VIX daily close shipped by arch (arch.data.vix)")
        return arch.data.vix.load().rename(columns={"vix": "close"})
    raise DataSourceError(f"{spec}: unknown builtin source; expected builtin:sp500 or builtin:vix")


def _read_file(path: Path, report: LoadReport) -> pd.DataFrame:
    if not path.exists():
        raise DataSourceError(
            f"{path}: file not found (relative paths resolve against {Path.cwd()})"
        )
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            return pd.read_parquet(path)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataSourceError(f"{path}: not a readable parquet file ({first})") from exc
    if name.endswith((".csv", ".csv.gz", ".txt")):
        from data_feeds.chain_ingest import check_csv_file

        delimiter, _names = check_csv_file(path)
        try:
            return pd.read_csv(path, sep=delimiter, encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataSourceError(
                f"{path}, line {_first_non_utf8_line(path)}: invalid UTF-8 byte sequence (the "
                "file is not UTF-8; re-save it as UTF-8)"
            ) from exc
        except pd.errors.ParserError as exc:
            import re

            m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if m:
                raise DataSourceError(
                    f"{path}, line {m.group(2)}: ragged row, expected {m.group(1)} columns, "
                    f"found {m.group(3)}"
                ) from exc
            raise DataSourceError(f"{path}: cannot be parsed ({str(exc).strip()})") from exc
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataSourceError(f"{path}: cannot be read ({first})") from exc
    raise DataSourceError(f"{path}: unsupported file type; expected .csv, .csv.gz or .parquet")


def _first_non_utf8_line(path: Path) -> int:
    """1-based line of the first line that is not valid UTF-8 (error path only)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        for i, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return i
    return 0


def _bad_date(source: str, text: pd.Series, pos: int, why: str) -> DataValidationError:
    return DataValidationError(
        source,
        f"date {text.iloc[pos]!r} {why} (file line {pos + 2} of a CSV with a header)",
        row=f"#{pos + 1}",
        field="date",
    )


def _aware_to_dates(stamps: pd.DatetimeIndex, wall: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Session dates of tz-aware instants: a column whose every value is midnight in its written
    zone (``wall``, naive) holds date labels, so the written date is taken; otherwise each instant
    is converted to America/New_York (exchange time) before taking its date."""
    if bool((wall == wall.normalize()).all()):
        return wall.normalize()
    return stamps.tz_convert(TZ).tz_localize(None).normalize()


def _parse_dates(
    values: pd.Series, source: str, date_format: str = "auto", report: LoadReport | None = None
) -> pd.DatetimeIndex:
    """Session dates of a date column, decided once for the whole column (never value by value).

    ISO dates, US/European slash dates (``MM/DD`` vs ``DD/MM`` decided from all values by
    :func:`data_feeds.calendar.day_month_order`; 2-digit years with the POSIX pivot, noted),
    timestamps (tz-aware ones to exchange time, see :func:`_aware_to_dates`), or ``date_format``.
    The first value that does not parse is named by its row.
    """
    notes = report.notes if report is not None else []
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.DatetimeIndex(values)
        if parsed.tz is not None:
            parsed = _aware_to_dates(parsed, parsed.tz_localize(None))
        return parsed.normalize().tz_localize(TZ)
    text = values.astype(str).str.strip().reset_index(drop=True)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if date_format != "auto":
        out = pd.Series(pd.to_datetime(text, format=date_format, errors="coerce"))
        bad = out.isna().to_numpy()
        if bad.any():
            raise _bad_date(source, text, int(np.argmax(bad)), f"does not match {date_format!r}")
        return pd.DatetimeIndex(out).normalize().tz_localize(TZ)
    iso = text.str.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}").to_numpy()
    slash = text.str.fullmatch(r"\d{1,2}/\d{1,2}/(\d{2}|\d{4})").to_numpy()
    stamp = text.str.match(r"\d{4}-\d{1,2}-\d{1,2}[ T]\d").to_numpy() & ~iso
    other = ~(iso | slash | stamp)
    if other.any():
        raise _bad_date(
            source,
            text,
            int(np.argmax(other)),
            "is neither ISO (YYYY-MM-DD) nor a slash date (MM/DD/YYYY); set date_format",
        )
    if iso.any():
        out[iso] = pd.to_datetime(text[iso], format="%Y-%m-%d", errors="coerce")
    if slash.any():
        parts = text[slash].str.split("/", expand=True)
        a, b = parts[0].astype(int), parts[1].astype(int)
        amb = (a != b) & (a <= 12) & (b <= 12)
        # evidence only from values that are a date in one of the orders (13/45 is in neither:
        # it stays unparsed and is named by its row below)
        order = day_month_order(
            int(np.max(a[(b <= 12) & (a <= 31)].to_numpy(), initial=0)),
            int(np.max(b[(a <= 12) & (b <= 31)].to_numpy(), initial=0)),
            int(amb.sum()),
            source,
            repr(text[slash][amb].iloc[0]) if amb.any() else None,
        )
        short = parts[2].str.len() == 2
        if order == DAY_FIRST:
            notes.append("slash dates read as DD/MM (a first component above 12)")
        if short.any():
            notes.append(
                f"{int(short.sum())} dates with 2-digit years read with the POSIX pivot "
                "(69-99 -> 19xx, 00-68 -> 20xx)"
            )
        idx = text[slash].index
        out[idx[~short.to_numpy()]] = pd.to_datetime(
            text[idx[~short.to_numpy()]], format=f"{order}/%Y", errors="coerce"
        )
        out[idx[short.to_numpy()]] = pd.to_datetime(
            text[idx[short.to_numpy()]], format=f"{order}/%y", errors="coerce"
        )
    if stamp.any():
        st = text[stamp]
        offset = st.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
        if offset.any():
            if not offset.all():
                pos = int(np.flatnonzero(stamp)[int(np.argmax(~offset.to_numpy()))])
                raise _bad_date(source, text, pos, "has no UTC offset while others have one")
            inst = pd.DatetimeIndex(pd.to_datetime(st, utc=True, format="ISO8601", errors="coerce"))
            wall_text = st.str.replace(r"\s*(?:Z|[+-]\d{2}:?\d{2})$", "", regex=True)
            wall = pd.DatetimeIndex(pd.to_datetime(wall_text, format="ISO8601", errors="coerce"))
            if inst.isna().any() or wall.isna().any():
                bad = inst.isna() | wall.isna()
                pos = int(np.flatnonzero(stamp)[int(np.argmax(bad))])
                raise _bad_date(source, text, pos, "is not a valid timestamp")
            dates = _aware_to_dates(inst, wall)
            notes.append(
                "timestamps with UTC offsets: "
                + (
                    "all at midnight, read as date labels"
                    if bool((wall == wall.normalize()).all())
                    else "converted to America/New_York before taking the date"
                )
            )
            out[st.index] = dates.to_numpy()
        else:
            out[st.index] = pd.to_datetime(st, format="ISO8601", errors="coerce").dt.normalize()
    bad = out.isna().to_numpy()
    if bad.any():
        raise _bad_date(source, text, int(np.argmax(bad)), "is not a valid calendar date")
    return pd.DatetimeIndex(out).normalize().tz_localize(TZ)


def _normalize(
    raw: pd.DataFrame,
    source: str,
    root: str | None,
    report: LoadReport,
    date_format: str = "auto",
) -> pd.DataFrame:
    """Map any supported layout onto lowercase ``open/high/low/close[/volume]`` and a date index."""
    df = raw.copy()
    if isinstance(df.columns, pd.MultiIndex):  # yfinance (Price, Ticker) columns
        df.columns = df.columns.get_level_values(0)
    df.columns = [str(c).strip().lower().replace(" ", "_") for c in df.columns]
    date_col = next((c for c in _DATE_NAMES if c in df.columns), None)
    if date_col is not None:
        dates = df.pop(date_col)
    elif isinstance(df.index, pd.DatetimeIndex):
        dates = pd.Series(df.index, index=df.index)
    else:
        raise DataSourceError(
            f"{source}: no date column; expected one of {', '.join(_DATE_NAMES)} or a date index"
        )
    root_col = next((c for c in _ROOT_NAMES if c in df.columns), None)
    if root_col is not None:
        roots = sorted(df[root_col].astype(str).unique())
        if root is None:
            raise DataSourceError(
                f"{source}: long-format file with a '{root_col}' column; pass root= one of {roots}"
            )
        mask = (df[root_col].astype(str) == root).to_numpy()
        if not mask.any():
            raise DataSourceError(f"{source}: root {root!r} not in the file; available: {roots}")
        df, dates = df.loc[mask], dates.loc[mask]
        df = df.drop(columns=[root_col])
    elif root is not None:
        raise DataSourceError(
            f"{source}: root={root!r} given but the file has no root/symbol column"
        )
    report.rows_read = len(df)
    present = [c for c in PRICE_COLUMNS if c in df.columns]
    ignored = [c for c in df.columns if c in _IGNORED]
    if ignored:
        report.notes.append(f"ignored columns {ignored} (raw, unadjusted prices are used)")
    if present == list(PRICE_COLUMNS):
        cols = [*PRICE_COLUMNS, *(["volume"] if "volume" in df.columns else [])]
    elif present == ["close"]:
        report.notes.append("close-only series")
        cols = ["close"]
    elif not present:
        value_cols = [c for c in df.columns if c not in ignored and c != "volume"]
        if len(value_cols) != 1:
            raise DataSourceError(
                f"{source}: expected open/high/low/close columns or a single value column; "
                f"found {list(df.columns)}"
            )
        report.notes.append(f"single-value series '{value_cols[0]}' loaded as close")
        df = df.rename(columns={value_cols[0]: "close"})
        cols = ["close"]
    else:
        missing = [c for c in PRICE_COLUMNS if c not in df.columns]
        raise DataSourceError(f"{source}: OHLC layout is missing column(s) {missing}")
    out = pd.DataFrame(index=_parse_dates(dates, source, date_format, report))
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) & df[col].notna().to_numpy()
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataValidationError(
                source,
                f"value {df[col].iloc[pos]!r} is not a number",
                row=out.index[pos].strftime("%Y-%m-%d"),
                field=col,
            )
        out[col] = values
    out.index.name = "date"
    return out


def validate_ohlc(
    frame: pd.DataFrame,
    source: str,
    *,
    report: LoadReport | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    on_invalid: str = "raise",
) -> pd.DataFrame:
    """Check a daily price frame and return it sorted, with counted removals.

    Rules: index tz-aware, unique after sorting; a row whose prices are all NaN on a day the NYSE
    was closed is removed (reason ``exchange closed``); any other NaN is a violation; prices > 0;
    ``low <= high``, ``low <= min(open, close)`` and ``high >= max(open, close)``; volume >= 0.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns from ``open, high, low, close, volume`` (``close`` at least), date index.
    source : str
        Source spec used in error messages.
    report : LoadReport, optional
        Report to fill (a new one is made otherwise).
    start, end : str or pandas.Timestamp, optional
        Inclusive date bounds.
    on_invalid : {"raise", "drop"}
        ``"raise"``: the first violation raises. ``"drop"``: violating rows are removed and counted
        per rule in the report. Duplicate dates always raise (there is no right row to keep).

    Returns
    -------
    pandas.DataFrame
        The validated frame with ``attrs`` ``load_report``, ``source`` and ``fingerprint``.

    Raises
    ------
    DataValidationError
        Naming the source, the row (date) and the field of the first violation found.
    ValueError
        ``on_invalid`` is not ``"raise"`` or ``"drop"``.
    """
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    report = report or LoadReport(source=source, rows_read=len(frame))
    if "close" not in frame.columns:
        raise DataValidationError(source, "no 'close' column", field="close")
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise DataValidationError(source, "index must be tz-aware session dates", field="date")
    if not idx.is_monotonic_increasing:
        report.notes.append("rows were out of date order and have been sorted")
        frame = frame.sort_index(kind="stable")
    dup = frame.index.duplicated()
    if dup.any():
        day = frame.index[int(np.argmax(dup))].strftime("%Y-%m-%d")
        raise DataValidationError(
            source, "duplicate date (expected one row per session)", row=day, field="date"
        )
    prices = [c for c in PRICE_COLUMNS if c in frame.columns]
    all_nan = frame[prices].isna().all(axis=1).to_numpy()
    if all_nan.any():
        closed = ~is_nyse_session(frame.index).to_numpy()
        holiday_rows = all_nan & closed
        report.drop("exchange closed (NYSE holiday), no prices", int(holiday_rows.sum()))
        frame = frame.loc[~holiday_rows]
    if start is not None:
        lo = _as_et(start)
        report.drop("before start", int((frame.index < lo).sum()))
        frame = frame.loc[frame.index >= lo]
    if end is not None:
        hi = _as_et(end)
        report.drop("after end", int((frame.index > hi).sum()))
        frame = frame.loc[frame.index <= hi]
    cols = [*prices, *(["volume"] if "volume" in frame.columns else [])]
    values = frame[cols].to_numpy(dtype=float)
    rules: list[tuple[str, str, np.ndarray]] = []
    weekend = frame.index.day_of_week.to_numpy() >= 5
    rules.append(("date", "dated on a weekend (no NYSE session), has prices", weekend))
    for j, col in enumerate(cols):
        rules.append((col, "missing value on a trading day (NaN)", np.isnan(values[:, j])))
    with np.errstate(invalid="ignore"):
        for col in prices:
            rules.append((col, f"{col} must be > 0", frame[col].to_numpy() <= 0.0))
        if len(prices) == 4:
            o, h, lo_, c = (frame[k].to_numpy() for k in PRICE_COLUMNS)
            rules += [
                ("high", "high < low", h < lo_),
                ("low", "low > open (expected low <= open <= high)", lo_ > o),
                ("low", "low > close (expected low <= close <= high)", lo_ > c),
                ("high", "high < open (expected low <= open <= high)", h < o),
                ("high", "high < close (expected low <= close <= high)", h < c),
            ]
        if "volume" in frame.columns:
            rules.append(("volume", "volume must be >= 0", frame["volume"].to_numpy() < 0))
    violated = [(int(np.argmax(mask)), col, message) for col, message, mask in rules if mask.any()]
    if violated and on_invalid == "raise":
        pos, col, message = min(violated, key=lambda item: item[0])  # earliest row first
        raise DataValidationError(source, message, row=_day(frame, pos), field=col)
    keep = np.ones(len(frame), dtype=bool)
    for _col, message, mask in rules:
        if not mask.any():
            continue
        report.drop(f"invalid: {message}", int((mask & keep).sum()))
        keep &= ~mask
    frame = frame.loc[keep, cols].astype(float)
    if frame.empty:
        raise DataValidationError(source, "no rows left after filtering", field="date")
    _session_coverage(frame, report)
    report.rows_kept = len(frame)
    frame.attrs["load_report"] = report
    frame.attrs["source"] = report.source
    frame.attrs["fingerprint"] = fingerprint(frame)
    return frame


def _session_coverage(frame: pd.DataFrame, report: LoadReport) -> None:
    """Count (and list in the notes) kept rows on NYSE weekday holidays and NYSE sessions with no
    row between the first and last date -- flagged, never silent."""
    closed = ~is_nyse_session(frame.index).to_numpy()
    report.holiday_rows = int(closed.sum())
    if report.holiday_rows:
        days = ", ".join(frame.index[closed][:5].strftime("%Y-%m-%d"))
        more = ", ..." if report.holiday_rows > 5 else ""
        report.notes.append(
            f"{report.holiday_rows} rows with prices on NYSE holidays kept and flagged "
            f"({days}{more})"
        )
    sessions = nyse_sessions(frame.index[0], frame.index[-1])
    missing = sessions.difference(frame.index)
    report.missing_sessions = len(missing)
    if len(missing):
        days = ", ".join(missing[:5].strftime("%Y-%m-%d"))
        more = ", ..." if len(missing) > 5 else ""
        report.notes.append(f"{len(missing)} NYSE sessions missing ({days}{more})")


def _as_et(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(TZ) if ts.tz is None else ts.tz_convert(TZ)


def _day(frame: pd.DataFrame, pos: int) -> str:
    return frame.index[pos].strftime("%Y-%m-%d")


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 (first 16 hex digits) of a frame's index, columns and values: identifies input data.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame.

    Returns
    -------
    str
        16 hex characters; equal frames give equal fingerprints.
    """
    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(frame.index.asi8.tobytes() if isinstance(frame.index, pd.DatetimeIndex) else b"")
    h.update(np.ascontiguousarray(frame.to_numpy(dtype=float)).tobytes())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$VOLSUITE_CACHE_DIR`` or ``results/cache/yfinance`` (relative to the working directory)."""
    return Path(os.environ.get("VOLSUITE_CACHE_DIR", "results/cache/yfinance"))


def _yf_download(ticker: str) -> pd.DataFrame:
    import yfinance as yf

    data = yf.download(
        ticker,
        period="max",
        interval="1d",
        auto_adjust=False,
        progress=False,
        multi_level_index=False,
        threads=False,
    )
    if data is None or data.empty:
        raise DataSourceError(f"yfinance:{ticker}: download returned no rows")
    return data


def load_yfinance(
    ticker: str,
    *,
    cache_dir: str | Path | None = None,
    downloader: Callable[[str], pd.DataFrame] | None = None,
    refresh: bool = False,
    report: LoadReport | None = None,
) -> pd.DataFrame:
    """Daily bars of ``ticker`` from Yahoo Finance, cached on disk as parquet.

    The cache is read first (so a config gives the same result run after run); ``refresh=True`` or
    a missing cache downloads. A download is written to a temporary file and renamed, so a crash
    never leaves half a cache file.

    Parameters
    ----------
    ticker : str
        Yahoo symbol (``^GSPC``, ``SPY``, ``^VIX``).
    cache_dir : str or pathlib.Path, optional
        Cache folder (see :func:`default_cache_dir`).
    downloader : callable, optional
        ``ticker -> DataFrame`` in ``yfinance.download`` layout; defaults to ``yfinance.download``.
    refresh : bool
        Download even when a cache file exists.
    report : LoadReport, optional
        Report to add notes to.

    Returns
    -------
    pandas.DataFrame
        Raw Yahoo layout (``Open, High, Low, Close, Adj Close, Volume``, date index), not yet
        validated (:func:`load_ohlc` validates).

    Raises
    ------
    DataSourceError
        The download failed (offline) and there is no cache file.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in ticker)
    path = folder / f"{safe}.parquet"
    notes = report.notes if report is not None else []
    if path.exists() and not refresh:
        notes.append(f"read from cache {path}")
        return pd.read_parquet(path)
    try:
        data = (downloader or _yf_download)(ticker)
    except Exception as exc:
        if path.exists():
            notes.append(f"download failed ({type(exc).__name__}); read stale cache {path}")
            return pd.read_parquet(path)
        raise DataSourceError(
            f"yfinance:{ticker}: download failed ({type(exc).__name__}: {exc}) and there is no "
            f"cache at {path}; run once online or point the config at a CSV/parquet file"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".parquet.tmp")
    os.close(fd)
    try:
        data.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    notes.append(f"downloaded and cached at {path}")
    return data
