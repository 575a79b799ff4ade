"""The tearsheet writer: quantstats for real returns, a plain page (not a crash) for flat ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiments.tearsheet import write_tearsheet


def _days(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range("2019-01-02", periods=n, tz="America/New_York")


def test_flat_returns_give_a_page_not_a_crash(tmp_path: Path) -> None:
    idx = _days(30)
    bench = pd.Series(np.full(30, 0.001), index=idx)
    path = write_tearsheet(pd.Series(0.0, index=idx), bench, tmp_path / "t.html", "flat run")
    html = path.read_text()
    assert "No out-of-sample trade: all 30 daily returns are 0" in html
    assert f"{1.001**30 - 1:.2%}" in html  # the benchmark's compounded return, by hand


def test_real_returns_go_through_quantstats(tmp_path: Path) -> None:
    idx = _days(60)
    rng = np.random.default_rng(3)
    strat = pd.Series(rng.normal(0.0005, 0.01, 60), index=idx)
    bench = pd.Series(rng.normal(0.0003, 0.01, 60), index=idx)
    html = write_tearsheet(strat, bench, tmp_path / "q.html", "noisy run").read_text()
    assert "No out-of-sample trade" not in html
    assert "Sharpe" in html and len(html) > 20_000  # quantstats' full report
