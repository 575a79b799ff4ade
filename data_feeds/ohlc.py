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

from data_feeds.calendar import TZ, is_nyse_session
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
    """

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, count: int) -> None:
        """Record ``count`` rows removed for ``reason`` (zero counts are not recorded)."""
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def summary(self) -> str:
        """One line: ``source: kept K of N rows (dropped: reason=n, ...)``."""
        text = f"{self.source}: kept {self.rows_kept} of {self.rows_read} rows"
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
        ``high < open/close``; the message names the source, the row (date) and the field.
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
    frame = _normalize(raw, report.source, root, report)
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
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz", ".txt")):
            return pd.read_csv(path)
    except Exception as exc:
        raise DataSourceError(f"{path}: cannot be read ({exc})") from exc
    raise DataSourceError(f"{path}: unsupported file type; expected .csv, .csv.gz or .parquet")


def _parse_dates(values: pd.Series, source: str) -> pd.DatetimeIndex:
    """Parse ISO or US (MM/DD/YYYY) dates; name the first row that is neither."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.DatetimeIndex(values)
    else:
        text = values.astype(str).str.strip()
        parsed = None
        for fmt in ("ISO8601", "%m/%d/%Y"):
            try:
                parsed = pd.DatetimeIndex(pd.to_datetime(text, format=fmt))
                break
            except (ValueError, TypeError):
                continue
        if parsed is None:
            bad = pd.to_datetime(text, format="ISO8601", errors="coerce").isna()
            pos = int(np.argmax(bad.to_numpy()))
            raise DataValidationError(
                source,
                f"date {text.iloc[pos]!r} is neither ISO (YYYY-MM-DD) nor US (MM/DD/YYYY)",
                row=f"#{pos + 1}",
                field="date",
            )
    if parsed.tz is not None:
        parsed = parsed.tz_convert(TZ).tz_localize(None)
    return parsed.normalize().tz_localize(TZ)


def _normalize(
    raw: pd.DataFrame, source: str, root: str | None, report: LoadReport
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
    out = pd.DataFrame(index=_parse_dates(dates, source))
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
    report.rows_kept = len(frame)
    frame.attrs["load_report"] = report
    frame.attrs["source"] = report.source
    frame.attrs["fingerprint"] = fingerprint(frame)
    return frame


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
