"""quantstats HTML tearsheet of out-of-sample returns against a benchmark from the same data."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pandas as pd


def write_tearsheet(returns: pd.Series, benchmark: pd.Series, path: Path, title: str) -> Path:
    """Write a quantstats HTML tearsheet; never downloads anything.

    Parameters
    ----------
    returns : pandas.Series
        Daily strategy returns (decimal), tz-aware or naive date index.
    benchmark : pandas.Series
        Daily benchmark returns on the same dates (e.g. the underlying held long); passed as a
        series so quantstats does not fetch a ticker.
    path : pathlib.Path
        Output file.
    title : str
        Report title (should name the strategy and the market data source).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        ``returns`` is empty, or the benchmark misses a strategy day.

    Notes
    -----
    Source: ``quantstats.reports.html``. The matplotlib backend is forced to Agg (headless).
    """
    if returns.empty:
        raise ValueError("no returns to report")
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib

    matplotlib.use("Agg")
    import quantstats as qs

    def naive(s: pd.Series) -> pd.Series:
        s = s.copy()
        if isinstance(s.index, pd.DatetimeIndex) and s.index.tz is not None:
            s.index = s.index.tz_localize(None)
        return s.astype(float)

    strat = naive(returns).rename("Strategy")
    bench = naive(benchmark).reindex(strat.index).rename("Benchmark")
    if bench.isna().any():
        day = bench.index[bench.isna().to_numpy().argmax()].date()
        raise ValueError(f"benchmark has no return on {day}; it must cover every strategy day")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(
            strat, benchmark=bench, output=str(path), title=title, download_filename=path.name
        )
    return path
