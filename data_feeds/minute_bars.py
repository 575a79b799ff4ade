"""The one minute-bar loader of the suite: OHLC minute bars of an underlying, stamped as asked.

Minute files stamp a bar with its **start** (``time_et = 09:30`` is the bar from 09:30:00 to
09:31:00 ET). Two uses need two stamps: the opening-auction feed reads the 09:30 bar as "the
09:30 bar" (``stamp="start"``), while a strategy or venue that asks "what was the last price at
time ``t``" must only see bars that have *closed* by ``t`` (``stamp="end"``: the 09:30 bar is
known at 09:31). One function serves both; the caller says which stamp it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from data_feeds.calendar import TZ
from data_feeds.errors import DataSourceError, DataValidationError

__all__ = ["BAR_MINUTES", "load_minute_bars"]

BAR_MINUTES = 1
"""Length of one bar in minutes (the distance between the start and the end stamp)."""


def load_minute_bars(
    path: str | Path,
    *,
    stamp: Literal["start", "end"],
    symbol: str | None = None,
) -> pd.DataFrame:
    """Minute OHLC bars of an underlying, indexed by the bar's start or end time (ET).

    Layouts: ``date, time_et, open, high, low, close`` (Lean minute files in
    ``../shared/data/intraday/``, e.g. ``spx_index_minute_2021_2023.csv``: ``time_et`` is the bar
    start, ET wall clock) or ``datetime, open, high, low, close[, volume]`` (``datetime`` = bar
    start, ET); column names are matched case-insensitively; a ``symbol`` column is filtered when
    ``symbol`` is given.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV (optionally gzipped).
    stamp : {"start", "end"}
        ``"start"``: the index is the bar's start as written in the file (the 09:30 bar at
        09:30); ``"end"``: the bar's close time, start + 1 minute (the 09:30 bar at 09:31, the
        first time its close is known). Required: the caller states which one it needs.
    symbol : str, optional
        Rows of this symbol (files with a ``symbol`` column).

    Returns
    -------
    pandas.DataFrame
        ``open, high, low, close`` (index points or dollars per share, as in the file) and
        ``volume`` (0 when the file has none), float; tz-aware America/New_York index ``time``,
        increasing and unique.

    Raises
    ------
    ValueError
        ``stamp`` not ``"start"`` or ``"end"``.
    DataSourceError
        Missing file or columns.
    DataValidationError
        A non-finite or non-positive price, ``high < low``, a duplicated bar (names the row).
    """
    if stamp not in ("start", "end"):
        raise ValueError(f"stamp must be 'start' or 'end', got {stamp!r}")
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"{path}: minute bar file not found")
    raw = pd.read_csv(path)
    cols = {c.strip().lower(): c for c in raw.columns}
    raw = raw.rename(columns={v: k for k, v in cols.items()})
    if symbol is not None and "symbol" in raw.columns:
        raw = raw[raw["symbol"].astype(str).str.upper() == symbol.upper()]
    missing = [c for c in ("open", "high", "low", "close") if c not in raw.columns]
    if "date" in raw.columns and "time_et" in raw.columns:
        start = pd.to_datetime(raw["date"].astype(str) + " " + raw["time_et"].astype(str))
    elif "datetime" in raw.columns:
        start = pd.to_datetime(raw["datetime"])
    else:
        missing.append("date+time_et or datetime")
    if missing:
        raise DataSourceError(f"{path}: missing column(s) {missing} for minute bars")
    index = pd.DatetimeIndex(start).tz_localize(TZ)
    if stamp == "end":
        index = index + pd.Timedelta(minutes=BAR_MINUTES)
    frame = pd.DataFrame(
        {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(float) for c in ("open", "high", "low")}
        | {"close": pd.to_numeric(raw["close"], errors="coerce").to_numpy(float)},
        index=index,
    )
    frame["volume"] = (
        pd.to_numeric(raw["volume"], errors="coerce").to_numpy(float)
        if "volume" in raw.columns
        else 0.0
    )
    frame.index.name = "time"
    values = frame[["open", "high", "low", "close"]].to_numpy()
    bad = ~(np.isfinite(values) & (values > 0)).all(axis=1)
    if bad.any():
        at = frame.index[np.argmax(bad)]
        raise DataValidationError(str(path), "price not finite and > 0", row=f"{at}")
    crossed = frame["high"].to_numpy() < frame["low"].to_numpy()
    if crossed.any():
        at = frame.index[np.argmax(crossed)]
        raise DataValidationError(str(path), "high < low", row=f"{at}", field="high")
    if frame.index.has_duplicates:
        at = frame.index[frame.index.duplicated()][0]
        raise DataValidationError(str(path), "duplicated bar", row=f"{at}")
    return frame.sort_index()
