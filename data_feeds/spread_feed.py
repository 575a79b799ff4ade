"""Two-leg spread data: leg loading, alignment and the backtrader feeds of a pair.

A pair is two daily price series, ``y`` and ``x``; the spread traded is one share of ``y`` short
``beta`` shares of ``x``. The formation (Engle-Granger hedge ratio, OU fit) and the health gate
are indicators: :mod:`indicators.cointegration` (:func:`~indicators.cointegration.formation_table`,
:func:`~indicators.cointegration.apply_health`).

Loading
-------
:func:`load_pair_leg` reads every layout of :func:`data_feeds.load_ohlc` plus the compact
``date,hi,lo,cl,op,vol`` layout with ``YYYYMMDD`` dates of the classic EWA/EWC files in
``../shared/data/pairs/``; :func:`align_legs` keeps the sessions both legs have and counts what
each side lost; :func:`pair_feeds` makes the backtrader feeds of both legs (the first carrying
the spread lines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_feeds.bt_feeds import ohlc_feed
from data_feeds.calendar import TZ
from data_feeds.errors import DataSourceError, DataValidationError
from data_feeds.ohlc import LoadReport, load_ohlc, validate_ohlc

__all__ = [
    "PairAlignReport",
    "align_legs",
    "load_pair_leg",
    "pair_feeds",
]

_COMPACT = {"hi": "high", "lo": "low", "cl": "close", "op": "open", "vol": "volume"}


def load_pair_leg(
    source: str | Path,
    *,
    root: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    on_invalid: str = "raise",
    volume_scale: float = 1.0,
) -> pd.DataFrame:
    """Load one leg of a pair as a validated daily OHLC frame.

    Parameters
    ----------
    source : str or pathlib.Path
        Any :func:`data_feeds.load_ohlc` source, or a CSV in the compact layout
        ``date,hi,lo,cl,op,vol`` with ``YYYYMMDD`` dates (``ewa_daily_2006_2012.csv``).
    root : str, optional
        Series of a long-format file (``symbol`` column), as in :func:`data_feeds.load_ohlc`.
    start, end : str or pandas.Timestamp, optional
        Inclusive session-date bounds (removals counted in the report).
    on_invalid : {"raise", "drop"}
        As in :func:`data_feeds.load_ohlc`.
    volume_scale : float
        Multiplier applied to the volume column (shares per unit of the file's volume; e.g. 100
        when a file counts round lots). Recorded in the report notes when not 1.

    Returns
    -------
    pandas.DataFrame
        ``open, high, low, close`` (dollars per share) and ``volume`` (shares) when present;
        tz-aware session index named ``date``; ``attrs["load_report"]`` as
        :func:`data_feeds.load_ohlc`.

    Raises
    ------
    DataSourceError
        Missing file or unknown layout; ``root`` given for the compact layout; bad
        ``volume_scale``.
    DataValidationError
        A date that is not ``YYYYMMDD``, a non-numeric value, or a row violating the OHLC rules
        (the message names the file, the row and the field).
    """
    if not (math.isfinite(volume_scale) and volume_scale > 0):
        raise DataSourceError(f"{source}: volume_scale must be > 0, got {volume_scale!r}")
    path = Path(str(source))
    header = _compact_header(path)
    if header is None:
        frame = load_ohlc(source, root=root, start=start, end=end, on_invalid=on_invalid)
    else:
        if root is not None:
            raise DataSourceError(
                f"{source}: root={root!r} given but the file has no symbol column"
            )
        frame = _load_compact(path, start=start, end=end, on_invalid=on_invalid)
    if volume_scale != 1.0 and "volume" in frame.columns:
        report = frame.attrs["load_report"]
        frame = frame.assign(volume=frame["volume"] * volume_scale)
        report.notes.append(f"volume multiplied by {volume_scale:g}")
        frame.attrs["load_report"] = report
        frame.attrs["source"] = report.source
    return frame


def _compact_header(path: Path) -> list[str] | None:
    """The header of a compact ``date,hi,lo,cl,op,vol`` CSV, else None (any other layout)."""
    name = path.name.lower()
    if not path.exists() or not name.endswith((".csv", ".csv.gz", ".txt")):
        return None
    try:
        cols = pd.read_csv(path, nrows=0).columns
    except Exception:
        return None
    lower = [str(c).strip().lower() for c in cols]
    return lower if {"date", "hi", "lo", "cl", "op"} <= set(lower) else None


def _load_compact(
    path: Path,
    *,
    start: str | pd.Timestamp | None,
    end: str | pd.Timestamp | None,
    on_invalid: str,
) -> pd.DataFrame:
    source = str(path)
    report = LoadReport(source=source)
    try:
        raw = pd.read_csv(path, dtype={"date": str})
    except Exception as exc:
        raise DataSourceError(f"{path}: cannot be read ({exc})") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    report.rows_read = len(raw)
    report.notes.append("compact layout date,hi,lo,cl,op,vol (YYYYMMDD dates)")
    text = raw.pop("date").astype(str).str.strip()
    dates = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    if dates.isna().any():
        pos = int(np.argmax(dates.isna().to_numpy()))
        raise DataValidationError(
            source, f"date {text.iloc[pos]!r} is not YYYYMMDD", row=f"#{pos + 1}", field="date"
        )
    index = pd.DatetimeIndex(dates).tz_localize(TZ)
    index.name = "date"
    out = pd.DataFrame(index=index)
    for short, col in _COMPACT.items():
        if short not in raw.columns:
            continue
        values = pd.to_numeric(raw[short], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) & raw[short].notna().to_numpy()
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataValidationError(
                source,
                f"value {raw[short].iloc[pos]!r} is not a number",
                row=index[pos].strftime("%Y-%m-%d"),
                field=col,
            )
        out[col] = values
    return validate_ohlc(out, source, report=report, start=start, end=end, on_invalid=on_invalid)


@dataclass
class PairAlignReport:
    """What aligning two legs on common sessions removed.

    Attributes
    ----------
    y_name, x_name : str
        Leg labels.
    common : int
        Sessions kept (both legs present).
    y_only, x_only : list of pandas.Timestamp
        Sessions dropped because only that leg had a bar.
    """

    y_name: str
    x_name: str
    common: int
    y_only: list[pd.Timestamp] = field(default_factory=list)
    x_only: list[pd.Timestamp] = field(default_factory=list)

    def summary(self) -> str:
        """One line: sessions kept and dropped per leg (first few dates listed)."""

        def dates(items: list[pd.Timestamp]) -> str:
            head = ", ".join(f"{d:%Y-%m-%d}" for d in items[:5])
            return head + (", ..." if len(items) > 5 else "")

        text = f"pair {self.y_name}/{self.x_name}: {self.common} common sessions"
        if self.y_only:
            text += f"; dropped {len(self.y_only)} with only {self.y_name} ({dates(self.y_only)})"
        if self.x_only:
            text += f"; dropped {len(self.x_only)} with only {self.x_name} ({dates(self.x_only)})"
        return text


def align_legs(
    y: pd.DataFrame, x: pd.DataFrame, *, y_name: str = "y", x_name: str = "x"
) -> tuple[pd.DataFrame, pd.DataFrame, PairAlignReport]:
    """Keep the sessions both legs have (no filling), counting what each side lost.

    Parameters
    ----------
    y, x : pandas.DataFrame
        Validated leg frames (tz-aware session index, ``close`` at least).
    y_name, x_name : str
        Labels for the report.

    Returns
    -------
    y_aligned, x_aligned : pandas.DataFrame
        Both restricted to the common sessions.
    report : PairAlignReport

    Raises
    ------
    DataValidationError
        Fewer than 2 common sessions.
    """
    common = y.index.intersection(x.index)
    report = PairAlignReport(
        y_name,
        x_name,
        len(common),
        list(y.index.difference(common)),
        list(x.index.difference(common)),
    )
    if len(common) < 2:
        raise DataValidationError(
            f"{y_name}/{x_name}", f"only {len(common)} common sessions", field="date"
        )
    return y.loc[common], x.loc[common], report


def pair_feeds(
    y: pd.DataFrame,
    x: pd.DataFrame,
    lines: pd.DataFrame,
    *,
    y_name: str = "y",
    x_name: str = "x",
) -> tuple[object, object]:
    """backtrader feeds of both legs; the first carries ``lines`` as extra lines.

    Parameters
    ----------
    y, x : pandas.DataFrame
        Leg OHLC[V] frames on the same sessions.
    lines : pandas.DataFrame
        Numeric columns on the same sessions (spread, levels, health as 0/1 ...); NaN stays NaN.
    y_name, x_name : str
        backtrader data names.

    Returns
    -------
    feed_y, feed_x : backtrader.feeds.PandasData

    Raises
    ------
    ValueError
        Indexes differ or a column clashes with a standard line.
    """
    if not (y.index.equals(x.index) and y.index.equals(lines.index)):
        raise ValueError("y, x and lines must share one index")
    cols = [c for c in ("open", "high", "low", "close", "volume") if c in y.columns]
    frame_y = pd.concat([y[cols], lines], axis=1)
    feed_y = ohlc_feed(frame_y, extra=tuple(lines.columns), name=y_name)
    feed_x = ohlc_feed(x[[c for c in cols if c in x.columns]], name=x_name)
    return feed_y, feed_x
