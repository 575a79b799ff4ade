"""Transaction-cost analysis: fills vs mid and touch by hand, the run's spread fraction, and the
same dollars vs mid as the metrics module's slippage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from experiments.metrics import trade_stats
from experiments.tca import dte_bucket, tca_folder, tca_frame, tca_metrics, tca_summary, write_tca

COLS = [
    "time",
    "event",
    "root",
    "expiration",
    "strike",
    "right",
    "quantity",
    "price",
    "bid",
    "ask",
    "commission",
    "cash_flow",
    "tag",
    "fold",
]


def trades() -> pd.DataFrame:
    rows = [
        # buy 2 at the ask: mid 10.25, spread 0.5 -> $50 vs mid, $0 vs touch, fraction 0.5
        (
            "2019-06-03 15:45:00",
            "fill",
            "SPXW",
            "2019-06-28",
            2800.0,
            "C",
            2,
            10.5,
            10.0,
            10.5,
            2.0,
            -2102.0,
            "open",
            0,
        ),
        # sell 1 at 9.9 inside 9.8/10.2: mid 10 -> $10 vs mid, -$10 vs touch, fraction 0.25
        (
            "2019-06-03 15:45:00",
            "fill",
            "SPXW",
            "2019-06-28",
            2700.0,
            "P",
            -1,
            9.9,
            9.8,
            10.2,
            1.0,
            989.0,
            "open",
            0,
        ),
        # 0DTE sell without a quote: counted, not measured
        (
            "2019-06-05 15:45:00",
            "fill",
            "SPXW",
            "2019-06-05",
            2850.0,
            "P",
            -1,
            1.0,
            None,
            None,
            1.0,
            99.0,
            "0dte",
            0,
        ),
        (
            "2019-06-05 15:45:00",
            "stock_fill",
            "SPX",
            None,
            None,
            None,
            3,
            2850.0,
            None,
            None,
            0.1,
            -8550.1,
            "delta hedge",
            0,
        ),
        # 45 DTE SPX buy at mid: $0, fraction 0
        (
            "2019-06-05 15:45:00",
            "fill",
            "SPX",
            "2019-07-20",
            2900.0,
            "C",
            1,
            20.0,
            19.5,
            20.5,
            1.0,
            -2001.0,
            "open",
            0,
        ),
    ]
    return pd.DataFrame(rows, columns=COLS)


def test_fills_against_mid_and_touch_by_hand():
    f = tca_frame(trades(), "demo")
    assert len(f) == 4  # option fills only
    assert f["cost_vs_mid"].tolist()[:2] == pytest.approx([50.0, 10.0])
    assert f["cost_vs_touch"].tolist()[:2] == pytest.approx([0.0, -10.0])
    assert f["spread_fraction"].tolist()[:2] == pytest.approx([0.5, 0.25])
    assert pd.isna(f.loc[2, "spread_fraction"]) and not f.loc[2, "quoted"]
    assert f["spread_fraction"].iloc[3] == pytest.approx(0.0)
    assert f["dte_bucket"].tolist() == ["8-30d", "8-30d", "0d", "31-60d"]
    m = tca_metrics(f)
    # contract-weighted: (2 * 0.25 + 1 * 0.1 + 1 * 0) / (2 * 0.5 + 1 * 0.4 + 1 * 1.0)
    assert m["cost_spread_fraction"] == pytest.approx(0.6 / 2.4)
    assert m["tca_fills"] == 4 and m["tca_unquoted_fills"] == 1


def test_dollars_vs_mid_equal_the_metrics_slippage():
    """tca's cost_vs_mid over the run equals experiments.metrics.trade_stats' cost_slippage
    (computed there independently from the raw fills)."""
    t = trades()
    assert tca_frame(t, "x")["cost_vs_mid"].sum() == pytest.approx(trade_stats(t)["cost_slippage"])


def test_summary_groups_by_strategy_root_and_dte_bucket():
    s = tca_summary(tca_frame(trades(), "demo"))
    assert list(zip(s["root"], s["dte_bucket"], strict=True)) == [
        ("SPX", "31-60d"),
        ("SPXW", "0d"),
        ("SPXW", "8-30d"),
    ]
    row = s[(s["root"] == "SPXW") & (s["dte_bucket"] == "8-30d")].iloc[0]
    assert row["contracts"] == 3 and row["cost_vs_mid"] == pytest.approx(60.0)
    assert row["spread_fraction"] == pytest.approx(0.6 / 1.4)
    zero = s[s["dte_bucket"] == "0d"].iloc[0]
    assert zero["unquoted_fills"] == 1 and pd.isna(zero["spread_fraction"])


def test_bad_fill_row_is_named():
    t = trades()
    t.loc[1, "quantity"] = 0
    with pytest.raises(ValueError, match="fill row 1"):
        tca_frame(t, "x")


def test_buckets_and_share_layout():
    assert [dte_bucket(d) for d in (0, 1, 7, 8, 30, 31, 60, 61, float("nan"))] == [
        "0d",
        "1-7d",
        "1-7d",
        "8-30d",
        "8-30d",
        "31-60d",
        "31-60d",
        "61d+",
        "n/a",
    ]
    shares = pd.DataFrame(
        {"date": ["2020-01-02"], "leg": ["y"], "size": [10], "price": [1.0], "commission": [0.0]}
    )
    assert tca_frame(shares, "ou").empty
    assert tca_metrics(tca_frame(shares, "ou"))["cost_spread_fraction"] is None


def test_summary_shows_the_stored_fraction(tmp_path: Path):
    """write_tca's metrics go to summary.json; volsuite summary's row and table carry them."""
    from experiments.summary import DISPLAY, display_cells, summarize_run

    m = write_tca(tmp_path, trades(), "demo")
    assert (tmp_path / "tca.csv").is_file() and (tmp_path / "tca_summary.csv").is_file()
    (tmp_path / "oos_returns.csv").write_text("date,oos_return\n2019-06-03,0.0\n2019-06-04,0.0\n")
    metrics = {"sharpe": 0.0, "final_equity": 1.0, **m}
    (tmp_path / "summary.json").write_text(json.dumps({"metrics": metrics}))
    row = summarize_run(tmp_path)
    assert row["cost_spread_fraction"] == pytest.approx(0.25)
    at = [c for c, _, _ in DISPLAY].index("cost_spread_fraction")
    assert display_cells(row)[at] == "0.25"


def test_fills_against_the_backtest_cost_model_by_hand():
    """Cost model f = 0.3: the backtest would buy at mid + 0.3 spread and sell at mid - 0.3
    spread. Buy 2 at 10.5 vs 10.25 + 0.15 = 10.40: +$20; sell 1 at 9.9 vs 10 - 0.12 = 9.88: -$2;
    buy 1 at 20.0 vs 20 + 0.3 = 20.3: -$30; the unquoted fill has no model price."""
    from brokers.costs import OptionCostModel

    f = tca_frame(trades(), "paper", OptionCostModel(slippage_spread_fraction=0.3))
    assert f["model_price"].tolist()[:2] == pytest.approx([10.4, 9.88])
    assert f["cost_vs_model"].tolist()[:2] == pytest.approx([20.0, -2.0])
    assert f["cost_vs_model"].iloc[3] == pytest.approx(-30.0)
    assert pd.isna(f["model_price"].iloc[2])
    assert tca_metrics(f)["tca_cost_vs_model"] == pytest.approx(-12.0)


def test_paper_session_folder(tmp_path: Path):
    """A paper session folder holds fills.csv (same layout); no config: no model comparison."""
    trades().to_csv(tmp_path / "fills.csv", index=False)
    (tmp_path / "summary.json").write_text(json.dumps({"strategy": "vrp_harvest"}))
    m = tca_folder(tmp_path)
    assert m["tca_fills"] == 4 and "tca_cost_vs_model" not in m
    out = pd.read_csv(tmp_path / "tca.csv")
    assert set(out["strategy"]) == {"vrp_harvest"}
    with pytest.raises(FileNotFoundError, match=r"no trades\.csv"):
        tca_folder(tmp_path / "nothing")
