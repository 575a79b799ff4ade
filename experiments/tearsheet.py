"""HTML tearsheet of the out-of-sample run: our headline metrics first, quantstats' charts after.

The headline numbers are never computed here. The runner computes them once
(:mod:`experiments.metrics`, on the one continuous out-of-sample equity curve) and passes them in;
this module only formats them, so the tearsheet, the console table and ``summary.json`` agree.
quantstats contributes charts only (cumulative returns, drawdowns, monthly heatmap, ...): its own
metrics, end-of-year and worst-drawdown tables are not rendered, and the charts are drawn on the
full out-of-sample calendar (``quantstats.reports.html`` would trim leading flat days through
``_match_dates``; the ``quantstats.plots`` functions are called directly with
``prepare_returns=False`` instead).
"""

from __future__ import annotations

import io
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from html import escape
from numbers import Number
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.summary import write_atomic

log = logging.getLogger(__name__)

MetricValue = float | str | None

#: Headline rows in page order: metrics key -> (label, format). ``pct``: decimal shown as a
#: percentage with 2 decimals; ``ratio``: 2 decimals; ``count``: integer.
_ROWS: dict[str, tuple[str, str]] = {
    "sharpe": ("Sharpe", "ratio"),
    "sharpe_ci": ("Sharpe 95% interval", "interval"),
    "sortino": ("Sortino", "ratio"),
    "calmar": ("Calmar", "ratio"),
    "cagr": ("CAGR", "pct"),
    "total_return": ("Total return", "pct"),
    "max_drawdown": ("Max drawdown", "pct"),
    "volatility": ("Volatility (annualised)", "pct"),
    "days": ("Days", "count"),
    "trades": ("Trades", "count"),
    "hit_rate": ("Hit rate", "pct"),
    "deflated_sharpe": ("Deflated Sharpe ratio (DSR)", "ratio"),
    "pbo": ("Probability of backtest overfitting (PBO)", "ratio"),
    "oos_is_sharpe_ratio": ("OOS / IS Sharpe", "ratio"),
    "min_backtest_years": ("Minimum backtest length (years)", "ratio"),
}
#: Rows whose Note cell carries the insufficient-sample message.
_RATIO_ROWS = ("sharpe", "sortino", "calmar", "cagr", "deflated_sharpe")
#: Statistics of the strategy's selection or trading that a buy-and-hold benchmark does not have:
#: a missing benchmark value renders as an em dash rather than "n/a".
_STRATEGY_ONLY = (
    "trades", "hit_rate", "deflated_sharpe", "pbo", "oos_is_sharpe_ratio", "min_backtest_years"
)
_NOT_ROWS = ("sample", "sharpe_ci_low", "sharpe_ci_high")
_DASH = "\u2014"
#: Window of the rolling-volatility chart (sessions; quantstats' 6-month default).
_ROLLING_DAYS = 126

_CSS = (
    "body{font:13px/1.4 Arial,sans-serif;margin:30px;color:#000}"
    ".container{max-width:960px;margin:auto}h1{font-weight:400;margin:0 0 6px}"
    "h2{font-size:15px;margin:28px 0 8px}table{border-spacing:0;margin:0 0 24px}"
    "td,th{text-align:right;padding:4px 10px}td:first-child,th:first-child{text-align:left}"
    "th{background:#eee}.banner{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;"
    "margin:12px 0;font-weight:700}.meta{color:#555}svg{width:100%;height:auto}"
)


def write_tearsheet(
    returns: pd.Series,
    benchmark: pd.Series,
    path: Path,
    title: str,
    *,
    metrics: Mapping[str, MetricValue],
    benchmark_metrics: Mapping[str, MetricValue],
    strategy_name: str,
    market_source: str,
    benchmark_name: str,
    notes: Sequence[str] = (),
    sections: Sequence[tuple[str, pd.DataFrame]] = (),
) -> Path:
    """Write the run's HTML tearsheet (headline table, notes, extra tables, quantstats charts).

    Parameters
    ----------
    returns : pandas.Series
        Full out-of-sample daily return calendar of the strategy (decimal simple returns, zeros on
        flat days, never trimmed), tz-aware or naive date index; length ``n >= 1``.
    benchmark : pandas.Series
        Benchmark daily returns (decimal) on at least every date of ``returns``.
    path : pathlib.Path
        Output HTML file; written atomically (temporary file in the same folder, then renamed).
    title : str
        Report title (``<title>`` and first heading).
    metrics : Mapping[str, float | str | None]
        The strategy's metrics as computed by :mod:`experiments.metrics` (keys such as
        ``sharpe``, ``sharpe_ci_low``, ``sharpe_ci_high``, ``sortino``, ``cagr``,
        ``total_return``, ``max_drawdown``, ``calmar``, ``volatility``, ``days``, ``trades``,
        ``hit_rate``, ``deflated_sharpe``, ``pbo``, ``oos_is_sharpe_ratio``,
        ``min_backtest_years``; returns, drawdown, volatility and hit rate as decimals) and
        ``sample``: ``None`` or a message such as ``"insufficient sample (3 trades)"``.
        Keys outside this list are rendered after the known rows with their key as label.
    benchmark_metrics : Mapping[str, float | str | None]
        The same metrics of the benchmark (keys it lacks render as ``n/a``, or an em dash for the
        strategy-only statistics: trades, hit rate, DSR, PBO, OOS/IS Sharpe, minimum length).
    strategy_name : str
        Strategy plugin name, shown in the header.
    market_source : str
        Market data source (e.g. ``"vix_proxy"``), shown in the header.
    benchmark_name : str
        Benchmark name (e.g. ``"SPX buy-and-hold"``), shown in the header and on the charts.
    notes : Sequence[str], optional
        Free-text notes listed below the headline table.
    sections : Sequence[tuple[str, pandas.DataFrame]], optional
        Extra tables (title, frame) rendered after the headline table, e.g. model evaluation or
        per-fold in-sample vs out-of-sample Sharpe; NaN/None cells render as ``n/a``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        ``returns`` is empty or has a NaN; the benchmark misses a strategy day (or is NaN on it),
        naming the first such date.

    Notes
    -----
    The first ``<table>`` of the page is the headline table, rows of the exact form
    ``<tr><td>Sharpe</td><td>1.23</td><td>0.45</td><td></td></tr>`` (Metric, Strategy,
    Benchmark, Note), which ``check_run.py`` parses. When ``metrics["sample"]`` is a string it
    appears as a banner above the table and in the Note cell of the Sharpe, Sortino, Calmar, CAGR
    and DSR rows; the Strategy cells keep their numbers.

    Charts: ``quantstats.plots`` (returns, drawdowns_periods, drawdown, monthly_heatmap,
    yearly_returns, daily_returns, histogram, distribution, rolling_volatility) on the full
    calendar, matplotlib Agg backend, SVG with text kept as text. A chart that quantstats cannot
    draw is replaced by a visible one-line message (and a logged warning), not a crash. Flat
    returns (every daily return equal: no out-of-sample trade) give the headline table and a note
    without charts. Nothing is downloaded.
    """
    if returns.empty:
        raise ValueError("no returns to report")
    strat = _naive(returns).rename(strategy_name)
    if strat.isna().any():
        day = strat.index[strat.isna().to_numpy().argmax()].date()
        raise ValueError(f"strategy return is NaN on {day}; expected a number on every day")
    bench = _naive(benchmark).reindex(strat.index).rename(benchmark_name)
    if bench.isna().any():
        day = bench.index[bench.isna().to_numpy().argmax()].date()
        raise ValueError(f"benchmark has no return on {day}; it must cover every strategy day")

    first, last = strat.index[0], strat.index[-1]
    parts = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='meta'>Strategy: <b>{escape(strategy_name)}</b> &middot; Market data: "
        f"<b>{escape(market_source)}</b> &middot; Benchmark: <b>{escape(benchmark_name)}</b>"
        f" &middot; Out-of-sample: {first:%Y-%m-%d} .. {last:%Y-%m-%d} ({len(strat)} days)</p>",
    ]
    sample = metrics.get("sample")
    if isinstance(sample, str) and sample:
        parts.append(
            f"<p class='banner'>{escape(sample)}: the ratios below are shown but mean little.</p>"
        )
    parts.append(headline_table(metrics, benchmark_metrics))
    flat = strat.nunique() <= 1
    all_notes = list(notes)
    if flat:
        all_notes.append(
            f"No out-of-sample trade: all {len(strat)} daily returns are "
            f"{float(strat.iloc[0]):.6g} ({first:%Y-%m-%d} .. {last:%Y-%m-%d}); no charts are "
            "drawn. See daily_log.csv for why the strategy stood aside each day."
        )
    if all_notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in all_notes) + "</ul>")
    for name, frame in sections:
        parts.append(f"<h2>{escape(name)}</h2>")
        parts.append(frame_table(frame))
    if not flat:
        parts.append(_charts(strat, bench))
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><div class='container'>{''.join(parts)}</div></body></html>"
    )
    write_atomic(path, html)
    return path


def headline_table(
    metrics: Mapping[str, MetricValue], benchmark_metrics: Mapping[str, MetricValue]
) -> str:
    """The headline metrics as an HTML table: Metric, Strategy, Benchmark, Note.

    Parameters
    ----------
    metrics, benchmark_metrics : Mapping[str, float | str | None]
        As in :func:`write_tearsheet`.

    Returns
    -------
    str
        ``<table>`` whose rows carry no attributes, one row per key present in either mapping
        (the Sharpe row always), known keys first in a fixed order.

    Notes
    -----
    Ratios and percentages with 2 decimals (``f"{x:.2f}"``, ``f"{100 x:,.2f}%"``), counts as
    integers. Missing, ``None`` or non-finite values render ``n/a``; a strategy-only statistic
    missing from the benchmark renders an em dash.
    """
    sample = metrics.get("sample")
    note = sample if isinstance(sample, str) else ""
    keys = set(metrics) | set(benchmark_metrics)
    rows = ["<tr><th>Metric</th><th>Strategy</th><th>Benchmark</th><th>Note</th></tr>"]
    for key, (label, kind) in _ROWS.items():
        if kind == "interval":
            if not {"sharpe_ci_low", "sharpe_ci_high"} & keys:
                continue
            s_cell = _interval(metrics)
            b_cell = _interval(benchmark_metrics)
        else:
            if key != "sharpe" and key not in keys:
                continue
            s_cell = _fmt(metrics.get(key), kind)
            b_cell = _fmt(benchmark_metrics.get(key), kind)
            if b_cell == "n/a" and key in _STRATEGY_ONLY:
                b_cell = _DASH
        row_note = note if key in _RATIO_ROWS else ""
        rows.append(_row(label, s_cell, b_cell, row_note))
    for key in sorted(keys - set(_ROWS) - set(_NOT_ROWS)):
        s_cell = _fmt(metrics.get(key), "other")
        b_cell = _fmt(benchmark_metrics.get(key), "other")
        rows.append(_row(key, s_cell, b_cell, ""))
    return "<table>" + "".join(rows) + "</table>"


def frame_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a plain HTML table (index as first column unless it is a default range).

    Parameters
    ----------
    frame : pandas.DataFrame
        Any table; cells that are NaN/None/NA render ``n/a``, empty strings an em dash (not
        applicable); floats with 4 significant digits below 100 in absolute value, else with
        thousands separators and 2 decimals.

    Returns
    -------
    str
        ``<table>`` with a header row; all text HTML-escaped.
    """
    show_index = not (
        isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    )
    cols = [str(c) for c in frame.columns]
    head = ([str(frame.index.name or "")] if show_index else []) + cols
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for idx, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = ([_cell(idx)] if show_index else []) + [_cell(v) for v in values]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


# -- formatting ------------------------------------------------------------------------------------
def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, Number) and not isinstance(value, bool) and not math.isfinite(
        float(value)  # type: ignore[arg-type]
    )


def _fmt(value: MetricValue, kind: str) -> str:
    if _missing(value):
        return "n/a"
    if isinstance(value, str):
        return value
    x = float(value)
    if kind == "pct":
        return f"{100.0 * x:,.2f}%"
    if kind == "ratio":
        return f"{x:.2f}"
    if kind == "count":
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _interval(m: Mapping[str, MetricValue]) -> str:
    lo, hi = m.get("sharpe_ci_low"), m.get("sharpe_ci_high")
    if _missing(lo) or _missing(hi) or isinstance(lo, str) or isinstance(hi, str):
        return "n/a"
    return f"{float(lo):.2f} to {float(hi):.2f}"


def _cell(value: Any) -> str:
    if _missing(value):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, Number | np.number) and not isinstance(value, int | np.integer):
        x = float(value)  # type: ignore[arg-type]
        return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else str(value)
    return str(value) if str(value) else _DASH


def _row(label: str, strategy: str, bench: str, note: str) -> str:
    return (
        f"<tr><td>{escape(label)}</td><td>{escape(strategy)}</td><td>{escape(bench)}</td>"
        f"<td>{escape(note)}</td></tr>"
    )


# -- charts ----------------------------------------------------------------------------------------
def _naive(s: pd.Series) -> pd.Series:
    s = s.copy()
    if isinstance(s.index, pd.DatetimeIndex) and s.index.tz is not None:
        s.index = s.index.tz_localize(None)
    return s.astype(float)


def _charts(strat: pd.Series, bench: pd.Series) -> str:
    """quantstats charts of ``strat`` against ``bench`` on their full common calendar, as SVG."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import quantstats as qs

    if bool((strat >= 0).all()) and float(strat.max()) > 1.0:
        # quantstats' _prepare_returns (called inside drawdown, heatmap, rolling volatility)
        # would read such a series as prices.
        return (
            "<p>No charts: every daily return is >= 0 and one exceeds 100%, which quantstats "
            "would read as prices.</p>"
        )
    p = qs.plots
    common = {"show": False}
    save = {"format": "svg", "metadata": {"Date": None}}  # no timestamp: same input, same page
    charts: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        ("Cumulative returns", p.returns,
         {"benchmark": bench, "compound": True, "prepare_returns": False, "ylabel": ""}),
        ("Worst drawdown periods", p.drawdowns_periods,
         {"title": strat.name, "compounded": True, "prepare_returns": False, "ylabel": False}),
        ("Underwater plot", p.drawdown, {"ylabel": ""}),
        ("Monthly returns (%)", p.monthly_heatmap,
         {"benchmark": bench, "returns_label": strat.name, "cbar": False, "ylabel": False}),
        ("Yearly returns", p.yearly_returns,
         {"benchmark": bench, "compounded": True, "prepare_returns": False, "ylabel": False}),
        ("Daily returns", p.daily_returns,
         {"benchmark": bench, "prepare_returns": False, "ylabel": ""}),
        ("Distribution of monthly returns", p.histogram,
         {"benchmark": bench, "compounded": True, "prepare_returns": False, "ylabel": False}),
        ("Return quantiles", p.distribution,
         {"title": strat.name, "compounded": True, "prepare_returns": False, "ylabel": False}),
    ]
    out = ["<h2>Charts (quantstats, full out-of-sample calendar)</h2>"]
    if len(strat) > _ROLLING_DAYS:
        charts.append(
            ("Rolling volatility (6 months)", p.rolling_volatility,
             {"benchmark": bench, "period": _ROLLING_DAYS, "ylabel": ""})
        )
    else:
        out.append(
            f"<p>Rolling volatility: not drawn, its {_ROLLING_DAYS}-day window needs more than "
            f"the {len(strat)} out-of-sample days.</p>"
        )
    with warnings.catch_warnings(), matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "volsuite"}
    ):
        warnings.simplefilter("ignore")
        for name, fn, kwargs in charts:
            buf = io.BytesIO()
            try:
                fig = fn(strat.copy(), savefig={**save, "fname": buf}, **common, **kwargs)
            except Exception as exc:  # a chart quantstats cannot draw is reported, not fatal
                log.warning("tearsheet chart %r not drawn: %s: %s", name, type(exc).__name__, exc)
                out.append(
                    f"<p>{escape(name)}: not drawn ({escape(type(exc).__name__)}: "
                    f"{escape(str(exc))})</p>"
                )
                continue
            finally:
                plt.close("all")
            del fig
            svg = buf.getvalue().decode("utf-8")
            svg = svg[svg.find("<svg"):]  # drop the XML prolog and DOCTYPE
            out.append(f"<div class='chart' title='{escape(name)}'>{svg}</div>")
    return "".join(out)
