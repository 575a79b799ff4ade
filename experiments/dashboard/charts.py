"""The dashboard's plotly figures, built from what :mod:`experiments.dashboard.data` read.

Dollars are dollars, returns and vols are plotted in percent (decimal x 100), days to expiry in
calendar days. Nothing here recomputes a metric: curves are cumulative products of the stored
daily returns (the same compounding as ``equity.csv``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "calendar_figure",
    "compare_figure",
    "equity_figure",
    "growth",
    "model_vs_market_figure",
    "params_figure",
    "power_law_figure",
    "term_structure_figure",
    "vrp_figure",
]


def growth(returns: pd.Series, start: float = 1.0) -> pd.Series:
    """``start x prod(1 + r)`` up to each day: the account of daily returns ``r`` (decimal)."""
    return start * (1.0 + returns.fillna(0.0)).cumprod()


def equity_figure(
    equity: pd.DataFrame | None,
    returns: pd.Series | None,
    benchmark: pd.Series | None,
    *,
    initial_cash: float,
    benchmark_name: str = "benchmark",
) -> go.Figure:
    """Equity (dollars, ``equity.csv``) and drawdown (percent) against the benchmark held with
    the same starting cash over the same out-of-sample sessions."""
    import pandas as pd

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.04
    )
    if equity is not None and len(equity):
        curve = pd.Series(equity["equity"].to_numpy(float), index=pd.to_datetime(equity["date"]))
    elif returns is not None:
        curve = growth(returns, initial_cash)
    else:
        curve = pd.Series(dtype=float)
    series = [("strategy", curve, "#1f77b4")]
    if benchmark is not None and len(benchmark):
        series.append((benchmark_name, growth(benchmark, initial_cash), "#7f7f7f"))
    for name, s, color in series:
        fig.add_trace(
            go.Scatter(x=s.index, y=s.values, name=name, line={"color": color}), row=1, col=1
        )
        dd = 100.0 * (s / s.cummax() - 1.0)
        fig.add_trace(
            go.Scatter(
                x=dd.index,
                y=dd.values,
                name=f"{name} drawdown",
                line={"color": color, "width": 1},
                fill="tozeroy",
                showlegend=False,
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="equity $", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_layout(title="Out-of-sample equity and drawdown", height=560, hovermode="x unified")
    return fig


def compare_figure(curves: dict[str, pd.Series]) -> go.Figure:
    """Growth of $1 of several runs' out-of-sample returns on one chart."""
    fig = go.Figure()
    for label, returns in curves.items():
        g = growth(returns)
        fig.add_trace(go.Scatter(x=g.index, y=g.values, name=label))
    fig.update_layout(
        title="Runs side by side: growth of $1 out of sample",
        yaxis_title="growth of $1",
        height=480,
        hovermode="x unified",
    )
    return fig


def params_figure(folds: pd.DataFrame) -> go.Figure:
    """The numeric ``best.*`` parameters of each fold (one line per parameter, by fold)."""
    import pandas as pd

    fig = go.Figure()
    for col in [c for c in folds.columns if c.startswith("best.")]:
        values = pd.to_numeric(folds[col], errors="coerce")
        if values.notna().any() and values.nunique() > 1:
            fig.add_trace(go.Scatter(x=folds["fold"], y=values, name=col[5:], mode="lines+markers"))
    fig.update_layout(
        title="Chosen parameters per fold (those that vary)", xaxis_title="fold", height=380
    )
    return fig


def model_vs_market_figure(log: pd.DataFrame) -> go.Figure:
    """``zero_dte_straddle``'s daily log: forecast (model) vs market implied vol, percent, with
    the day's quadrant as the marker colour."""
    import pandas as pd

    x = pd.to_datetime(log["date"])
    fig = go.Figure()
    model_col = "model_iv" if "model_iv" in log else "forecast_vol"
    fig.add_trace(
        go.Scatter(x=x, y=100 * log[model_col], name=f"model ({model_col})", mode="lines")
    )
    fig.add_trace(go.Scatter(x=x, y=100 * log["market_iv"], name="market IV", mode="lines"))
    if "quadrant" in log:
        for quadrant, grp in log.groupby("quadrant", sort=True):
            fig.add_trace(
                go.Scatter(
                    x=pd.to_datetime(grp["date"]),
                    y=100 * grp["market_iv"],
                    mode="markers",
                    marker={"size": 5},
                    name=str(quadrant),
                )
            )
    fig.update_layout(
        title="Model vs market implied vol per day (markers: quadrant)",
        yaxis_title="implied vol %",
        height=480,
    )
    return fig


def term_structure_figure(
    table: pd.DataFrame, params: dict[str, Any] | None, title: str
) -> go.Figure:
    """ATM vol (percent) against days to expiry of one date, with the power law ``a T^b``."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=table["dte"],
            y=100 * table["atm_vol"],
            mode="markers+lines",
            name="ATM vol (fitted smile at k = 0)",
            text=table["root"] + " " + table["expiration"].astype(str),
        )
    )
    if params and np.isfinite(params.get("atm_term_a", np.nan)):
        dte = np.linspace(max(1.0, float(table["dte"].min())), float(table["dte"].max()), 200)
        a, b = float(params["atm_term_a"]), float(params["atm_term_b"])
        fig.add_trace(
            go.Scatter(
                x=dte,
                y=100 * a * (dte / 365.0) ** b,
                name=f"power law {a:.3f} T^{b:+.3f}",
                line={"dash": "dash"},
            )
        )
    fig.update_layout(
        title=title, xaxis_title="days to expiry", yaxis_title="ATM implied vol %", height=420
    )
    return fig


def power_law_figure(history: pd.DataFrame) -> go.Figure:
    """Power-law parameters ``a`` (ATM vol at one year, percent) and ``b`` over time."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = history["quote_date"]
    fig.add_trace(go.Scatter(x=x, y=100 * history["atm_term_a"], name="a (ATM vol at T = 1y, %)"))
    fig.add_trace(
        go.Scatter(x=x, y=history["atm_term_b"], name="b (exponent)", line={"dash": "dot"}),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="a %", secondary_y=False)
    fig.update_yaxes(title_text="b", secondary_y=True)
    fig.update_layout(title="ATM term structure power law over time", height=380)
    return fig


def vrp_figure(vrp: pd.DataFrame) -> go.Figure:
    """Implied vs realized vol (30 days, percent), the VRP (vol points) and its z-score."""
    fig = make_subplots(
        rows=3, cols=1, shared_xaxes=True, row_heights=[0.45, 0.3, 0.25], vertical_spacing=0.05
    )
    x = vrp["date"]
    fig.add_trace(go.Scatter(x=x, y=100 * vrp["implied_vol_30d"], name="implied 30d"), 1, 1)
    fig.add_trace(
        go.Scatter(x=x, y=100 * vrp["realized_vol_30d"], name="realized 21 sessions"), 1, 1
    )
    fig.add_trace(go.Bar(x=x, y=100 * vrp["vrp_30d"], name="VRP 30d (vol pts)"), 2, 1)
    fig.add_trace(
        go.Scatter(x=x, y=vrp["vrp_zscore"], name="VRP z-score", mode="lines+markers"), 3, 1
    )
    fig.update_yaxes(title_text="vol %", row=1, col=1)
    fig.update_yaxes(title_text="vol pts", row=2, col=1)
    fig.update_yaxes(title_text="z", row=3, col=1)
    fig.update_layout(title="Implied vs realized vol and the VRP", height=620)
    return fig


def calendar_figure(stored: list[dt.date], missing: list[dt.date], title: str) -> go.Figure:
    """A calendar of sessions: one cell per weekday (rows) and week (columns); stored sessions
    green, missing NYSE sessions red."""
    fig = go.Figure()
    for label, days, color in (("stored", stored, "#2ca02c"), ("missing", missing, "#d62728")):
        if not days:
            continue
        week = [d - dt.timedelta(days=d.weekday()) for d in days]
        fig.add_trace(
            go.Scatter(
                x=week,
                y=[d.strftime("%a") for d in days],
                mode="markers",
                marker={"symbol": "square", "size": 12, "color": color},
                name=f"{label} ({len(days)})",
                text=[d.isoformat() for d in days],
                hovertemplate="%{text}<extra>" + label + "</extra>",
            )
        )
    fig.update_yaxes(categoryorder="array", categoryarray=["Fri", "Thu", "Wed", "Tue", "Mon"])
    fig.update_layout(title=title, xaxis_title="week of", height=300)
    return fig
