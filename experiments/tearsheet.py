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
    Flat returns (no out-of-sample trade: every daily return equal) make quantstats' regression
    against the benchmark fail; the tearsheet is then a short HTML page saying so, with the number
    of days and the benchmark's total return, rather than a crash at the end of a run.
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
    if strat.nunique() <= 1:
        return _flat_page(strat, bench, path, title)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(
            strat, benchmark=bench, output=str(path), title=title, download_filename=path.name
        )
    return path


def _flat_page(strat: pd.Series, bench: pd.Series, path: Path, title: str) -> Path:
    """A minimal HTML page for a run whose out-of-sample returns are all equal."""
    from html import escape

    total = float((1.0 + bench).prod() - 1.0)
    body = (
        f"<h1>{escape(title)}</h1>"
        f"<p>No out-of-sample trade: all {len(strat)} daily returns are "
        f"{float(strat.iloc[0]):.6g} ({strat.index[0]:%Y-%m-%d} .. {strat.index[-1]:%Y-%m-%d}). "
        "quantstats needs non-constant returns, so no tearsheet charts are drawn.</p>"
        f"<p>Benchmark total return over the same days: {total:.2%}.</p>"
        "<p>See daily_log.csv for why the strategy stood aside each day.</p>"
    )
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title></head><body>{body}</body></html>"
    )
    return path
