"""backtrader faces of volsuite frames: daily OHLC with extra lines."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import backtrader as bt
import pandas as pd


@lru_cache(maxsize=64)
def _feed_class(extra: tuple[str, ...]) -> type[bt.feeds.PandasData]:
    """A ``PandasData`` subclass with one extra line per name (cached per set of names)."""
    attrs = {
        "lines": extra,
        "params": tuple((name, -1) for name in extra),  # -1: autodetect column by line name
    }
    return type(f"OHLCFeed_{'_'.join(extra) or 'plain'}", (bt.feeds.PandasData,), attrs)


def ohlc_feed(
    frame: pd.DataFrame, *, extra: Sequence[str] = (), name: str | None = None
) -> bt.feeds.PandasData:
    """A backtrader daily feed of ``frame`` with ``extra`` columns as additional lines.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated daily frame (:func:`data_feeds.load_ohlc`), columns ``open, high, low, close``
        [``volume``] plus the ``extra`` columns; tz-aware date index.
    extra : sequence of str
        Column names to expose as lines (``data.<name>[0]`` in a strategy). NaN stays NaN: a
        strategy must treat it as "not available", the feed never fills it.
    name : str, optional
        backtrader data name.

    Returns
    -------
    backtrader.feeds.PandasData
        Bars timestamped at the session date (naive, America/New_York wall clock), timeframe Days.

    Raises
    ------
    ValueError
        A requested extra column is missing, or a name clashes with a standard line.
    """
    reserved = {"open", "high", "low", "close", "volume", "openinterest", "datetime"}
    missing = [c for c in extra if c not in frame.columns]
    if missing:
        raise ValueError(
            f"extra line column(s) {missing} not in frame columns {list(frame.columns)}"
        )
    clash = [c for c in extra if c in reserved]
    if clash:
        raise ValueError(f"extra line name(s) {clash} clash with backtrader's standard lines")
    df = frame.copy()
    if isinstance(df.index, pd.DatetimeIndex) and df.index.tz is not None:
        df.index = df.index.tz_localize(None)
    if "volume" not in df.columns:
        df["volume"] = 0.0
    cls = _feed_class(tuple(extra))
    return cls(dataname=df, name=name, timeframe=bt.TimeFrame.Days, openinterest=None)
