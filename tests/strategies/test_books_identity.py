"""The books identity for every shipped config, on real data (issue 12, point 1).

For each config in ``experiments/configs/`` (data paths pointed at ``../shared/data``, chain
stores as in ``tests/experiments/test_paper_parity.py``: slices ingested once into temporary
DuckDB files), the strategy runs two consecutive windows chained as the walk-forward chains its
folds (the second starts with the first's final account value). Per window:

1. the sum of the trades frame's ``cash_flow`` (fills, settlements, share trades and the
   window-end closes of :meth:`brokers.OptionsBroker.fills_frame`) equals the change of account
   value, to $0.01 -- the account identity ``V_end - V_start = sum of cash flows`` of a book that
   ends flat;
2. the window ends flat: per option contract, ``fills + window-end closes - settled = 0``
   contracts, per share symbol ``share trades + delivered + window-end = 0`` shares;
3. the strategy's own P&L (``daily_log`` ``net_pnl`` plus ``unallocated_pnl``, both read from
   its :class:`strategies.book.TradeBook`) adds up to that change of value.
4. the book's closed-trade records (``BacktestResult.info["closed_trades"]``, written per fold
   to the run folder's ``closed_trades.csv``): ``sum(net_pnl)`` of the closed trades plus the
   unallocated trade's equals the sum of the trades frame's ``cash_flow``, to $0.01; each
   record's cash columns add up to its ``net_pnl``; every closed trade has an exit time, a
   reason and its legs.

The references are the broker's records and the account value (never the book itself).
``ou_pairs`` trades shares with backtrader orders (no option book): its fills give
``-size * price - commission`` (recomputed here) and its round trips the log's ``net_pnl``.
Windows hold trades (asserted); ``[strategy.params]`` overrides fix parameters where the shipped
defaults trade nothing in the short window. Configs whose ``prepare`` is slow are marked
``slow``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from experiments.config import load_config
from experiments.runner import build_plugin, load_data
from tests.experiments.test_paper_parity import CASES as PARITY_CASES
from tests.experiments.test_paper_parity import CONFIGS, paper_config, stores  # noqa: F401

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
]

# config stem -> (store, start, end, [strategy.params] overrides): the parity windows, plus the
# configs the parity test does not run
CASES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    **PARITY_CASES,
    "zero_dte_straddle_spx2019": ("spx2019", "2019-06-03", "2019-06-14", {}),
    "zero_dte_straddle_spx2019_next": ("spx2019", "2019-06-03", "2019-06-28", {}),
    "vrp_harvest_spy2021": ("vendor", "2021-06-01", "2021-07-30", {}),
    "zero_dte_straddle": ("none", "2018-03-01", "2018-03-29", {}),
    "zero_dte_straddle_shared": ("none", "2020-03-02", "2020-03-27", {}),
    "ou_pairs_ewa_ewc": ("none", "2009-01-02", "2009-12-31", {}),
    "ou_pairs_ko_pep": ("none", "2009-01-02", "2009-12-31", {}),
}
SLOW = {"ml_spreads_spy2021", "ml_spreads_spx2017", "surface_arbitrage_spx2019"}
CASH = 1_000_000.0


def test_every_shipped_config_has_a_case() -> None:
    assert sorted(CASES) == sorted(p.stem for p in CONFIGS.glob("*.toml"))


def _flat(trades: pd.DataFrame) -> list[str]:
    """Contracts / symbols left open by the broker's records (module docstring, 2)."""
    left = []
    opts = trades[trades["right"].isin(["C", "P"])]
    if len(opts):
        sign = opts["event"].map({"fill": 1, "window_end": 1, "settlement": -1})
        assert sign.notna().all(), sorted(set(opts["event"]))
        key = opts[["root", "expiration", "strike", "right"]].astype(str).agg(" ".join, axis=1)
        net = (opts["quantity"] * sign).groupby(key).sum()
        left += [f"{k}: {q:+g}" for k, q in net.items() if q != 0]
    shares = trades[trades["event"].isin(["stock_fill", "window_end"])]
    shares = shares[~shares["right"].isin(["C", "P"])]
    held = shares.groupby("root")["quantity"].sum()
    settled = trades[trades["event"] == "settlement"]
    if "shares" in settled and len(settled):
        delivered = settled.assign(sym=settled["root"].map(_underlying))
        held = held.add(delivered.groupby("sym")["shares"].sum().fillna(0.0), fill_value=0.0)
    left += [f"{s}: {q:+g} shares" for s, q in held.items() if abs(q) > 1e-9]
    return left


def _underlying(root: str) -> str:
    from brokers.margin import underlying_of

    return underlying_of(root)


def _strategy_pnl(result) -> float:
    """Dollars: the strategy's own trade P&L over the window (module docstring, 3)."""
    log = result.daily_log
    total = 0.0
    for col in ("net_pnl", "unallocated_pnl"):
        if col in log:
            total += float(pd.to_numeric(log[col], errors="coerce").fillna(0.0).sum())
    return total


def _cash_flows(result) -> float:
    """Dollars: the trades frame's cash flows; for backtrader share orders (``ou_pairs``: no
    ``event`` column) recomputed from the fills, ``-size * price - commission``, plus its
    window-end rows."""
    trades = result.trades
    if "event" in trades:
        return float(trades["cash_flow"].sum())
    done = trades[trades["status"] == "Completed"]
    ends = trades[trades["status"] == "window_end"]
    filled = (-done["size"] * done["price"] - done["commission"]).sum()
    return float(filled + ends["cash_flow"].sum())


def _flat_shares(trades: pd.DataFrame) -> list[str]:
    """Legs of a backtrader share strategy left open: filled + window-end shares != 0."""
    rows = trades[trades["status"].isin(["Completed", "window_end"])]
    net = rows.groupby("leg")["size"].sum()
    return [f"{leg}: {q:+g} shares" for leg, q in net.items() if abs(q) > 1e-9]


def _check_closed_trades(stem: str, result, flows: float) -> None:
    """Module docstring, 4: the book's closed-trade records (``info["closed_trades"]``, the run
    folder's ``closed_trades.csv`` of this fold) hold every cash flow of the window."""
    closed = result.info.get("closed_trades")
    if "event" not in result.trades:  # ou_pairs: backtrader share orders, no trade book
        assert closed is None, stem
        return
    assert closed is not None, f"{stem}: no info['closed_trades']"
    trades = closed[closed["trade_id"] != 0]
    unallocated = float(closed.loc[closed["trade_id"] == 0, "net_pnl"].sum())
    total = float(trades["net_pnl"].sum()) + unallocated
    assert total == pytest.approx(flows, abs=0.01), (stem, total, flows)
    parts = ["opening_cash", "closing_cash", "share_cash", "settlement", "window_end"]
    gaps = (closed[parts].astype(float).sum(axis=1) - closed["net_pnl"].astype(float)).abs()
    assert not (gaps > 1e-6).any(), stem
    assert trades["exit_time"].notna().all() and trades["reason"].ne("").all(), stem
    assert trades["legs"].str.len().gt(0).all(), stem
    assert all(isinstance(json.loads(f), dict) for f in closed["fields"]), stem


@pytest.mark.parametrize(
    "stem", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in sorted(CASES)]
)
def test_books_add_up_over_two_chained_windows(
    stem: str,
    tmp_path: Path,
    shared_data: Path,
    stores: dict[str, Path],  # noqa: F811
) -> None:
    store, start, end, overrides = CASES[stem]
    path = paper_config(stem, tmp_path, shared_data, stores.get(store), start, end, overrides)
    config = load_config(path)
    config.strategy.search_space = {}
    data, _ = load_data(config)
    plugin = build_plugin(config, data)
    params = plugin.Params(**config.strategy.params)
    days = plugin.trading_days()
    dates = pd.Index(days.date)
    days = days[(dates >= pd.Timestamp(start).date()) & (dates <= pd.Timestamp(end).date())]
    half = len(days) // 2
    assert half >= 1, f"{stem}: {len(days)} sessions in {start}..{end}"
    cash, traded = CASH, 0
    for window in (days[:half], days[half:]):
        result = plugin.backtest(params, window[0], window[-1], cash=cash)
        change = float(result.value.iloc[-1]) - cash
        flows = _cash_flows(result)
        assert flows == pytest.approx(change, abs=0.01), (stem, window[0], flows, change)
        if "event" in result.trades:
            assert _flat(result.trades) == [], (stem, window[0])
            traded += int((result.trades["event"] != "settlement").sum())
        else:
            assert _flat_shares(result.trades) == [], (stem, window[0])
            traded += int((result.trades["status"] == "Completed").sum())
        pnl = _strategy_pnl(result)
        assert math.isfinite(pnl)
        assert pnl == pytest.approx(change, abs=0.01), (stem, window[0], pnl, change)
        _check_closed_trades(stem, result, flows)
        cash = float(result.value.iloc[-1])
    assert traded > 0, f"{stem}: no trade in {start}..{end}: a vacuous identity"
