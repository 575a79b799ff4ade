"""The tearsheet shows the metrics it is given (one metrics source), on the full calendar.

The regexes are those of ``/work/shared/tools/check_run.py``: the first ``<tr><td>Sharpe</td>`` row
of the page is read and its Strategy cell compared with ``summary.json``'s Sharpe.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.tearsheet import headline_table, write_tearsheet

SHARPE_ROW = re.compile(r"<tr><td>Sharpe</td>(.*?)</tr>", re.S)
HEAD_ROW = re.compile(r"<tr><th>Metric</th>(.*?)</tr>", re.S)
CELL = re.compile(r"<td>(.*?)</td>")
SAMPLE = "insufficient sample (3 trades)"

# Deliberately not what any library would compute from the returns below: the page must show these.
METRICS = {
    "sharpe": 7.7749,
    "sharpe_ci_low": -1.234,
    "sharpe_ci_high": 3.456,
    "sortino": float("nan"),
    "calmar": 2.5,
    "cagr": 0.123456,
    "total_return": 0.0456,
    "max_drawdown": -0.0789,
    "volatility": 0.2,
    "days": 51,
    "trades": 3,
    "hit_rate": 2 / 3,
    "deflated_sharpe": 0.41,
    "pbo": None,
    "oos_is_sharpe_ratio": 0.55,
    "min_backtest_years": 1.7,
    "sample": SAMPLE,
}
BENCH_METRICS = {"sharpe": 0.456, "cagr": 0.031, "total_return": 0.012, "max_drawdown": -0.02,
                 "volatility": 0.15, "days": 51, "sortino": 0.7, "calmar": None}


def _days(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range("2019-01-02", periods=n, tz="America/New_York")


def _headline(html: str) -> list[list[str]]:
    """Cells of the rows of the first table of the page (header row excluded)."""
    table = html[html.index("<table>"): html.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    return [CELL.findall(r) for r in rows[1:]]


def _write(tmp: Path, strat: pd.Series, bench: pd.Series, **kw) -> str:
    args = dict(metrics=METRICS, benchmark_metrics=BENCH_METRICS, strategy_name="zero_dte_straddle",
                market_source="vix_proxy", benchmark_name="SPX buy-and-hold")
    args.update(kw)
    path = write_tearsheet(strat, bench, tmp / "tearsheet.html", "zero_dte_straddle run", **args)
    return path.read_text()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One full page: 20 flat days, then 31 days of returns; an insufficient-sample run."""
    tmp = tmp_path_factory.mktemp("ts")
    idx = _days(51)
    rng = np.random.default_rng(3)
    strat = pd.Series(np.r_[np.zeros(20), rng.normal(0.001, 0.01, 31)], index=idx)
    bench = pd.Series(rng.normal(0.0003, 0.01, 51), index=idx)
    folds = pd.DataFrame({"is_sharpe": [1.5, np.nan], "oos_sharpe": [0.9, 0.2], "x": ["", "y"]},
                         index=pd.Index([0, 1], name="fold"))
    html = _write(tmp, strat, bench, notes=["walk-forward: 2 folds"],
                  sections=[("In-sample vs out-of-sample Sharpe per fold", folds)])
    return html, tmp


def test_headline_sharpe_is_the_passed_metric(page: tuple[str, Path]) -> None:
    html, _ = page
    head = HEAD_ROW.search(html)
    assert head is not None and re.findall(r"<th>(.*?)</th>", head.group(1)) == [
        "Strategy", "Benchmark", "Note"]
    row = SHARPE_ROW.search(html)  # first match wins, as in check_run.py
    assert row is not None
    assert html.index(row.group(0)) < html.index("</table>")  # it is in the first table
    cells = CELL.findall(row.group(1))
    assert float(cells[0]) == round(METRICS["sharpe"], 2) == 7.77
    assert float(cells[1]) == round(BENCH_METRICS["sharpe"], 2)
    assert html.count("<tr><td>Sharpe</td>") == 1  # no second (quantstats) Sharpe row


def test_formats_and_missing_values(page: tuple[str, Path]) -> None:
    rows = {r[0]: r[1:] for r in _headline(page[0])}
    assert rows["CAGR"][:2] == ["12.35%", "3.10%"]
    assert rows["Max drawdown"][:2] == ["-7.89%", "-2.00%"]
    assert rows["Hit rate"][:2] == ["66.67%", "\u2014"]  # strategy-only: dash for the benchmark
    assert rows["Sharpe 95% interval"][:2] == ["-1.23 to 3.46", "n/a"]
    assert rows["Sortino"][:2] == ["n/a", "0.70"]  # NaN -> n/a
    assert rows["Calmar"][:2] == ["2.50", "n/a"]  # None -> n/a
    assert rows["Probability of backtest overfitting (PBO)"][:2] == ["n/a", "\u2014"]
    assert rows["Deflated Sharpe ratio (DSR)"][:2] == ["0.41", "\u2014"]
    assert rows["Trades"][:2] == ["3", "\u2014"] and rows["Days"][:2] == ["51", "51"]
    for label, cells in rows.items():
        assert all(c not in ("", "nan", "NaN", "None") for c in cells[:2]), label


def test_no_nan_none_or_benchmark_placeholder_anywhere(page: tuple[str, Path]) -> None:
    html = page[0]
    assert not re.search(r"\bnan\b|\bNaN\b|\bNone\b", html)
    assert "BENCHMARK" not in html and "Key Performance Metrics" not in html  # no quantstats table
    assert "<h3>EOY Returns" not in html and "Worst 10 Drawdowns" not in html
    assert "SPX buy-and-hold" in html and "vix_proxy" in html and "zero_dte_straddle" in html


def test_insufficient_sample_note_on_ratio_rows_and_banner(page: tuple[str, Path]) -> None:
    html = page[0]
    banner = html.index(f"<p class='banner'>{SAMPLE}")
    assert banner < html.index("<table>")
    rows = {r[0]: r for r in _headline(html)}
    for label in ("Sharpe", "Sortino", "Calmar", "CAGR", "Deflated Sharpe ratio (DSR)"):
        assert rows[label][3] == SAMPLE, label
        assert rows[label][1] != SAMPLE  # the number stays in the Strategy cell
    assert rows["Sharpe"][1] == "7.77"
    assert rows["Days"][3] == "" and rows["Max drawdown"][3] == ""


def test_leading_flat_days_are_kept(page: tuple[str, Path]) -> None:
    html = page[0]
    assert "Out-of-sample: 2019-01-02 .. 2019-03-13 (51 days)" in html
    # quantstats' cumulative-returns chart subtitles its own date range (SVG text kept as text):
    # it starts at the first flat day, 2 Jan 2019, not at the first trade (30 Jan 2019).
    assert "2 Jan '19 - 13 Mar '19" in html
    assert "30 Jan '19 -" not in html
    assert html.count("<svg") >= 7  # the charts are there


def test_sections_after_headline_with_na(page: tuple[str, Path]) -> None:
    html = page[0]
    at = html.index("<h2>In-sample vs out-of-sample Sharpe per fold</h2>")
    assert at > html.index("</table>")
    assert ("<tr><th>fold</th><th>is_sharpe</th><th>oos_sharpe</th><th>x</th></tr>"
            "<tr><td>0</td><td>1.5</td><td>0.9</td><td>\u2014</td></tr>"
            "<tr><td>1</td><td>n/a</td><td>0.2</td><td>y</td></tr>") in html
    assert "<li>walk-forward: 2 folds</li>" in html


def test_written_atomically_and_readable(page: tuple[str, Path]) -> None:
    _, tmp = page
    assert [p.name for p in tmp.iterdir()] == ["tearsheet.html"]  # no temporary file left
    assert (tmp / "tearsheet.html").stat().st_mode & stat.S_IROTH or (
        (tmp / "tearsheet.html").stat().st_mode & stat.S_IRGRP)


def test_flat_returns_give_a_page_not_a_crash(tmp_path: Path) -> None:
    idx = _days(30)
    bench = pd.Series(np.full(30, 0.001), index=idx)
    html = _write(tmp_path, pd.Series(0.0, index=idx), bench,
                  metrics={"sharpe": 0.0, "trades": 0, "sample": "insufficient sample (0 trades)"})
    assert "No out-of-sample trade: all 30 daily returns are 0 (2019-01-02 .. 2019-02-12)" in html
    assert CELL.findall(SHARPE_ROW.search(html).group(1))[:2] == ["0.00", "0.46"]
    assert "<svg" not in html


def test_benchmark_missing_a_day_names_it(tmp_path: Path) -> None:
    idx = _days(10)
    strat = pd.Series(np.linspace(-0.01, 0.01, 10), index=idx)
    with pytest.raises(ValueError, match="benchmark has no return on 2019-01-09"):
        _write(tmp_path, strat, strat.drop(idx[5]))
    with pytest.raises(ValueError, match="strategy return is NaN on 2019-01-03"):
        _write(tmp_path, strat.where(strat.index != idx[1]), strat)
    assert not (tmp_path / "tearsheet.html").exists()


def test_headline_rows_only_for_present_keys() -> None:
    html = headline_table({"sharpe": None, "mystery_stat": 12345.678}, {})
    assert html.startswith("<table><tr><th>Metric</th><th>Strategy</th><th>Benchmark</th>"
                           "<th>Note</th></tr><tr><td>Sharpe</td><td>n/a</td><td>n/a</td><td></td>")
    assert "<tr><td>mystery_stat</td><td>1.235e+04</td><td>n/a</td><td></td></tr>" in html
    assert "Sortino" not in html and "interval" not in html
