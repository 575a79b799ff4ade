"""Transaction-cost analysis of a run's option fills (``tca.csv``, docs/portfolio.md).

Every option fill of ``trades.csv`` (``event == "fill"``) is compared with the quote it was
filled against (``bid``, ``ask`` at the fill time, recorded by the broker). For a fill of
``q`` contracts (``> 0`` bought, ``< 0`` sold) at ``price``, with ``mid = (bid + ask) / 2``,
``spread = ask - bid`` and the touch ``ask`` for a buy, ``bid`` for a sell::

    cost_vs_mid     = q * (price - mid) * 100            dollars; > 0 paid away from mid
    cost_vs_touch   = q * (price - touch) * 100          dollars; 0 at the touch, < 0 inside
    spread_fraction = sign(q) * (price - mid) / spread    0.5 = paid the touch, 0 = mid

``cost_vs_mid`` summed over a run is :func:`experiments.metrics.trade_stats`' ``cost_slippage``.
Fills are grouped by strategy, root and DTE bucket (calendar days from the fill date to the
expiration: :data:`DTE_BUCKETS`). Fills without a two-sided quote (missing bid/ask, or
``ask <= bid``: no spread to measure) have NaN fractions and are counted in
``tca_unquoted_fills``, never dropped silently.

With the backtest's cost model (``costs``: :class:`brokers.costs.OptionCostModel`, e.g. for a
paper session, whose fills come from a venue), each fill is also compared with the price the
backtest would have assumed on the same quote, :meth:`~brokers.costs.OptionCostModel.fill_price`
(``mid ± f * spread``): ``model_price`` and ``cost_vs_model = q * (price - model_price) * 100``
dollars (> 0: the venue filled worse than the backtest assumes). A paper session's fills are its
``fills.csv`` (the same layout as ``trades.csv``): :func:`tca_folder`.

The run's headline number, ``cost_spread_fraction``, is the contract-weighted mean
``sum |q| sign(q) (price - mid) / sum |q| spread`` over the quoted fills (computed once here, by
:func:`tca_metrics`, stored in ``summary.json`` and shown by ``volsuite summary``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

OPTION_MULTIPLIER = 100.0
#: DTE buckets: (label, lowest, highest) calendar days, inclusive.
DTE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("0d", 0, 0),
    ("1-7d", 1, 7),
    ("8-30d", 8, 30),
    ("31-60d", 31, 60),
    ("61d+", 61, 100_000),
)
TCA_COLUMNS = (
    "time",
    "fold",
    "strategy",
    "root",
    "expiration",
    "strike",
    "right",
    "dte",
    "dte_bucket",
    "quantity",
    "price",
    "bid",
    "ask",
    "mid",
    "spread",
    "touch",
    "cost_vs_mid",
    "cost_vs_touch",
    "spread_fraction",
    "model_price",
    "cost_vs_model",
    "quoted",
    "tag",
)


def dte_bucket(dte: int | float) -> str:
    """Label of :data:`DTE_BUCKETS` holding ``dte`` calendar days ("n/a" when NaN)."""
    if dte is None or not np.isfinite(dte):
        return "n/a"
    for label, lo, hi in DTE_BUCKETS:
        if lo <= dte <= hi:
            return label
    return "n/a"


def tca_frame(trades: pd.DataFrame, strategy: str, costs: Any = None) -> pd.DataFrame:
    """One row per option fill (module docstring), columns :data:`TCA_COLUMNS`.

    Parameters
    ----------
    trades : pandas.DataFrame
        ``trades.csv`` (options-broker layout with ``event``; any other layout has no option
        fill and gives an empty frame).
    strategy : str
        Strategy name put on every row.
    costs : brokers.costs.OptionCostModel, optional
        The backtest cost model; without it ``model_price`` and ``cost_vs_model`` are NaN.

    Raises
    ------
    ValueError
        A fill row with a non-numeric or zero quantity or price (row named).
    """
    if trades is None or trades.empty or "event" not in trades:
        return pd.DataFrame(columns=list(TCA_COLUMNS))
    f = trades[trades["event"] == "fill"].copy()
    if f.empty:
        return pd.DataFrame(columns=list(TCA_COLUMNS))
    q = pd.to_numeric(f["quantity"], errors="coerce")
    price = pd.to_numeric(f["price"], errors="coerce")
    bad = q.isna() | (q == 0) | price.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"trades.csv fill row {f.index[i]}: quantity {f['quantity'].iloc[i]!r} and price "
            f"{f['price'].iloc[i]!r} must be numbers, quantity non-zero"
        )
    bid = pd.to_numeric(f.get("bid"), errors="coerce")
    ask = pd.to_numeric(f.get("ask"), errors="coerce")
    quoted = bid.notna() & ask.notna() & (ask > bid)
    mid = (bid + ask) / 2
    spread = ask - bid
    touch = np.where(q > 0, ask, bid)
    model = pd.Series(np.nan, index=f.index)
    if costs is not None:
        from data_feeds.contracts import OptionQuote

        for i in np.flatnonzero(quoted.to_numpy()):
            quote = OptionQuote(float(bid.iloc[i]), float(ask.iloc[i]))
            model.iloc[i] = costs.fill_price(quote, int(q.iloc[i]), str(f["root"].iloc[i]))
    day = pd.to_datetime(f["time"].astype(str).str[:10])
    dte = (pd.to_datetime(f["expiration"]) - day).dt.days
    out = pd.DataFrame(
        {
            "time": f["time"].astype(str),
            "fold": f.get("fold", pd.Series(0, index=f.index)),
            "strategy": strategy,
            "root": f["root"].astype(str),
            "expiration": f["expiration"],
            "strike": f["strike"],
            "right": f["right"],
            "dte": dte,
            "dte_bucket": [dte_bucket(d) for d in dte],
            "quantity": q,
            "price": price,
            "bid": bid,
            "ask": ask,
            "mid": mid.where(quoted),
            "spread": spread.where(quoted),
            "touch": pd.Series(touch, index=f.index).where(quoted),
            "cost_vs_mid": (q * (price - mid) * OPTION_MULTIPLIER).where(quoted),
            "cost_vs_touch": (q * (price - touch) * OPTION_MULTIPLIER).where(quoted),
            "spread_fraction": (np.sign(q) * (price - mid) / spread).where(quoted),
            "model_price": model,
            "cost_vs_model": q * (price - model) * OPTION_MULTIPLIER,
            "quoted": quoted,
            "tag": f.get("tag", pd.Series("", index=f.index)),
        }
    )
    return out.reset_index(drop=True)[list(TCA_COLUMNS)]


def tca_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, root and DTE bucket: fills, contracts, dollars vs mid and touch, and the
    contract-weighted spread fraction (quoted fills only; ``unquoted_fills`` counted)."""
    cols = [
        "strategy",
        "root",
        "dte_bucket",
        "fills",
        "unquoted_fills",
        "contracts",
        "cost_vs_mid",
        "cost_vs_touch",
        "spread_fraction",
    ]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (strategy, root, bucket), g in frame.groupby(["strategy", "root", "dte_bucket"], sort=True):
        m = _weighted(g)
        rows.append(
            {
                "strategy": strategy,
                "root": root,
                "dte_bucket": bucket,
                "fills": len(g),
                "unquoted_fills": int((~g["quoted"].astype(bool)).sum()),
                "contracts": float(g["quantity"].abs().sum()),
                "cost_vs_mid": float(g["cost_vs_mid"].sum()),
                "cost_vs_touch": float(g["cost_vs_touch"].sum()),
                "spread_fraction": m,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _weighted(g: pd.DataFrame) -> float | None:
    qd = g[g["quoted"].astype(bool)]
    den = float((qd["quantity"].abs() * qd["spread"]).sum())
    if den <= 0:
        return None
    num = float((qd["quantity"].abs() * np.sign(qd["quantity"]) * (qd["price"] - qd["mid"])).sum())
    return num / den


def tca_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    """``cost_spread_fraction`` (module docstring; None without a quoted fill),
    ``tca_fills``, ``tca_unquoted_fills`` and, when the frame was built with a cost model,
    ``tca_cost_vs_model`` (dollars)."""
    if frame.empty:
        return {"cost_spread_fraction": None, "tca_fills": 0.0, "tca_unquoted_fills": 0.0}
    out = {
        "cost_spread_fraction": _weighted(frame),
        "tca_fills": float(len(frame)),
        "tca_unquoted_fills": float((~frame["quoted"].astype(bool)).sum()),
    }
    if frame["model_price"].notna().any():
        out["tca_cost_vs_model"] = float(frame["cost_vs_model"].sum())
    return out


def write_tca(
    folder: Path, trades: pd.DataFrame, strategy: str, costs: Any = None
) -> dict[str, Any]:
    """Write ``tca.csv`` (per fill) and ``tca_summary.csv`` (per strategy, root, DTE bucket) into
    ``folder``; return :func:`tca_metrics` for ``summary.json``."""
    frame = tca_frame(trades, strategy, costs)
    frame.to_csv(folder / "tca.csv", index=False)
    tca_summary(frame).to_csv(folder / "tca_summary.csv", index=False)
    return tca_metrics(frame)


def tca_folder(folder: Path, config: Path | None = None) -> dict[str, Any]:
    """TCA of an existing run folder (``trades.csv``) or paper session (``fills.csv``).

    Parameters
    ----------
    folder : pathlib.Path
        ``results/<experiment>/<run id>/`` or ``results/paper/<session>/``.
    config : pathlib.Path, optional
        Experiment config whose ``[costs]`` give the backtest cost model (default: the run
        folder's ``config.toml`` when there is one; a paper session has none).

    Returns
    -------
    dict
        :func:`tca_metrics`.

    Raises
    ------
    FileNotFoundError
        Neither ``trades.csv`` nor ``fills.csv`` in ``folder``.
    """
    import json

    from brokers.costs import OptionCostModel

    fills = next((folder / n for n in ("trades.csv", "fills.csv") if (folder / n).exists()), None)
    if fills is None:
        raise FileNotFoundError(f"{folder}: no trades.csv (run) nor fills.csv (paper session)")
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    config = config or (folder / "config.toml" if (folder / "config.toml").exists() else None)
    costs = None
    if config is not None:
        from experiments.config import load_config

        costs = OptionCostModel(**load_config(config).costs.options_broker_params())
    try:
        trades = pd.read_csv(fills)
    except pd.errors.EmptyDataError:
        trades = pd.DataFrame()
    return write_tca(folder, trades, str(summary.get("strategy", "")), costs)


__all__ = [
    "DTE_BUCKETS",
    "TCA_COLUMNS",
    "dte_bucket",
    "tca_folder",
    "tca_frame",
    "tca_metrics",
    "tca_summary",
    "write_tca",
]
