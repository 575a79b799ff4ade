"""Our metrics against quantstats (the tearsheet's library) on real S&P 500 returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from experiments import metrics


@pytest.fixture(scope="module")
def returns(sp500: pd.DataFrame) -> pd.Series:
    r = sp500["close"].pct_change().dropna().loc["2007-01-01":"2012-12-31"]
    r.index = r.index.tz_localize(None)
    return r


def test_sharpe_sortino_cagr_drawdown_match_quantstats(returns: pd.Series) -> None:
    assert metrics.sharpe(returns) == pytest.approx(qs.stats.sharpe(returns), rel=1e-10)
    assert metrics.sortino(returns) == pytest.approx(qs.stats.sortino(returns), rel=1e-10)
    assert metrics.cagr(returns) == pytest.approx(qs.stats.cagr(returns), rel=1e-10)
    assert metrics.max_drawdown(returns) == pytest.approx(qs.stats.max_drawdown(returns), rel=1e-10)
    assert metrics.calmar(returns) == pytest.approx(qs.stats.calmar(returns), rel=1e-10)


def test_hand_computed_small_series() -> None:
    r = pd.Series([0.10, -0.20, 0.05], index=pd.bdate_range("2020-01-01", periods=3))
    assert metrics.total_return(r) == pytest.approx(1.10 * 0.80 * 1.05 - 1)
    # equity 1.10, 0.88, 0.924; peak 1.10 -> drawdown 0.88/1.10 - 1 = -0.2
    assert metrics.max_drawdown(r) == pytest.approx(-0.2)
    mean, sd = np.mean([0.10, -0.20, 0.05]), np.std([0.10, -0.20, 0.05], ddof=1)
    assert metrics.sharpe(r) == pytest.approx(mean / sd * np.sqrt(252))


def test_degenerate_series() -> None:
    flat = pd.Series(0.0, index=pd.bdate_range("2020-01-01", periods=10))
    assert metrics.sharpe(flat) == 0.0 and metrics.max_drawdown(flat) == 0.0
    assert metrics.calmar(flat) == 0.0
    wiped = pd.Series([-1.0, 0.0], index=pd.bdate_range("2020-01-01", periods=2))
    assert metrics.cagr(wiped) == -1.0


def test_summary_counts_opening_orders() -> None:
    """A straddle opened in one order and closed in another is one trade (opening orders)."""
    fills = pd.DataFrame(
        {
            "time": ["2019-06-03 15:45"] * 2 + ["2019-06-04 15:45"] * 2,
            "event": ["fill"] * 4,
            "root": ["SPXW"] * 4,
            "expiration": ["2019-06-21"] * 4,
            "strike": [2750.0] * 4,
            "right": ["C", "P", "C", "P"],
            "quantity": [1, 1, -1, -1],
            "price": [4.0, 3.0, 4.5, 2.5],
            "bid": [3.9, 2.9, 4.5, 2.5],
            "ask": [4.0, 3.0, 4.6, 2.6],
            "commission": [1.0] * 4,
            "cash_flow": [-401.0, -301.0, 449.0, 249.0],
            "tag": ["open", "open", "close open", "close open"],
        }
    )
    out = metrics.summary(pd.Series([0.01, 0.0, -0.01, 0.002]), fills)
    assert out["trades"] == 1 and out["days"] == 4
