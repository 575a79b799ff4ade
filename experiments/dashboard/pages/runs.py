"""Runs: every ``volsuite run`` folder, one run in detail, and 2-4 runs side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from experiments.dashboard import charts
from experiments.dashboard.common import cached, settings, show_error
from experiments.dashboard.data import audit_verdict_path

cfg = settings()
st.title("Runs")
st.caption(
    f"Run folders under `{cfg.results}`; every number is read from the run's `summary.json` "
    "(Sharpe annualized with 252 sessions; interval 95%; DSR = deflated Sharpe probability; "
    "PBO = probability of backtest overfitting; costs share = costs / gross P&L)."
)

# a new run folder changes its experiment folder; a finished run (summary.json) its own folder
runs = cached("list_runs", cfg.results, stamp_path=[cfg.results, *cfg.results.glob("*/*")])
if runs.empty:
    st.info(f"No run folder under `{cfg.results}` yet: `volsuite run CONFIG` writes one.")
    st.stop()

left, mid, right = st.columns(3)
experiments = left.multiselect("experiment", sorted(runs["experiment"].dropna().unique()))
strategies = mid.multiselect("strategy", sorted(runs["strategy"].dropna().unique()))
sources = right.multiselect("market source", sorted(runs["market_source"].dropna().unique()))
view = runs
if experiments:
    view = view[view["experiment"].isin(experiments)]
if strategies:
    view = view[view["strategy"].isin(strategies)]
if sources:
    view = view[view["market_source"].isin(sources)]
bad = view[view["status"] != "ok"]
if len(bad):
    st.warning(f"{len(bad)} run folder(s) without a readable summary.json (status column).")
st.dataframe(
    view.drop(columns=["path"]),
    hide_index=True,
    column_config={
        "date": st.column_config.DatetimeColumn("date (UTC)", format="YYYY-MM-DD HH:mm"),
        "sharpe": st.column_config.NumberColumn("OOS Sharpe", format="%.2f"),
        "sharpe_ci_low": st.column_config.NumberColumn("CI low", format="%.2f"),
        "sharpe_ci_high": st.column_config.NumberColumn("CI high", format="%.2f"),
        "deflated_sharpe": st.column_config.NumberColumn("DSR", format="%.3f"),
        "pbo": st.column_config.NumberColumn("PBO", format="%.2f"),
        "trades": st.column_config.NumberColumn("trades", format="%d"),
        "costs_share": st.column_config.NumberColumn("costs share", format="percent"),
        "total_return": st.column_config.NumberColumn("total return", format="percent"),
        "max_drawdown": st.column_config.NumberColumn("max DD", format="percent"),
    },
)

ok = view[view["status"] == "ok"]
labels = {f"{r.experiment} / {r.run_id}": r.path for r in ok.itertuples()}
if not labels:
    st.stop()

st.header("Run detail")
choice = st.selectbox("run", list(labels), key="run")
try:
    run = cached(
        "load_run",
        labels[choice],
        stamp_path=[labels[choice], audit_verdict_path(labels[choice])],
    )
except Exception as exc:
    show_error(exc)
    st.stop()
m = run.summary.get("metrics", {})
for problem in run.problems:
    st.warning(problem)


def num(key: str, fmt: str) -> str:
    value = m.get(key)
    return "n/a" if value is None else format(value, fmt)


cols = st.columns([1, 1.6, 1, 1, 1, 1])
sample = m.get("sample")
cols[0].metric("OOS Sharpe", sample or num("sharpe", ".2f"))
lo, hi = m.get("sharpe_ci_low"), m.get("sharpe_ci_high")
cols[1].metric("95% interval", "n/a" if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]")
cols[2].metric("DSR", num("deflated_sharpe", ".3f"))
cols[3].metric("PBO", num("pbo", ".2f"))
cols[4].metric("trades", num("trades", ".0f"))
cols[5].metric("costs share", num("costs_share", ".1%"))
st.caption(
    f"strategy `{run.summary.get('strategy')}` · market data `{run.summary.get('market_source')}` "
    f"· out of sample {run.summary.get('oos_start')} .. {run.summary.get('oos_end')} · "
    f"benchmark: {run.summary.get('benchmark', 'n/a')} · folder `{run.path}`"
)

# --- audit verdict (volsuite audit writes it; shown when present) ---------------------------------
with st.container(border=True):
    st.subheader("Audit verdict")
    if run.audit is not None:
        verdict = run.audit.get("verdict", run.audit.get("status", "see below"))
        st.markdown(
            f"**verdict:** `{verdict}` (audit `{run.audit.get('run_id', '?')}` of "
            f"`{run.audit.get('config', '?')}`: the experiment's newest `volsuite audit`)"
        )
        st.json(run.audit, expanded=False)
    else:
        st.caption(
            f"No audit yet: `volsuite audit CONFIG` writes `{audit_verdict_path(run.path)}`; "
            "the experiment's newest verdict shows here and in the runs list."
        )

tabs = st.tabs(["Equity", "Folds", "Parameters", "Trades", "Attribution", "Daily log", "Tearsheet"])
with tabs[0]:
    if run.benchmark is None:
        st.caption("No benchmark_returns.csv in this run folder (older run): strategy only.")
    st.plotly_chart(
        charts.equity_figure(
            run.equity,
            run.returns,
            run.benchmark,
            initial_cash=float(run.summary.get("initial_cash") or 1.0),
            benchmark_name=str(run.summary.get("benchmark", "benchmark")),
        ),
    )
with tabs[1]:
    if run.folds is None:
        st.info("No folds.csv.")
    else:
        keep = [
            c
            for c in run.folds.columns
            if not c.startswith("best.")
            and (
                c in ("fold", "train_start", "train_end", "test_start", "test_end", "pbo")
                or c.startswith(("is_sharpe", "oos_sharpe", "is_total", "oos_total", "n_"))
                or c in ("best_objective", "oos_is_sharpe_ratio", "is_trades", "oos_trades")
            )
        ]
        st.caption("In-sample (is_) vs out-of-sample (oos_) per fold, from folds.csv.")
        st.dataframe(run.folds[keep], hide_index=True)
with tabs[2]:
    if run.folds is None:
        st.info("No folds.csv.")
    else:
        best = ["fold"] + [c for c in run.folds.columns if c.startswith("best.")]
        st.dataframe(run.folds[best], hide_index=True)
        st.plotly_chart(charts.params_figure(run.folds))
with tabs[3]:
    if run.trades is None:
        st.info("No trades.csv.")
    else:
        st.caption(f"{len(run.trades):,} fills and settlements (trades.csv; cash flow in dollars).")
        st.dataframe(run.trades, hide_index=True, height=320)
        if run.daily_log is not None and "net_pnl" in run.daily_log:
            traded = run.daily_log[run.daily_log["net_pnl"].notna()]
            st.caption(f"Per-trade net P&L (daily_log.csv, {len(traded)} trades, dollars)")
            st.bar_chart(traded.set_index("date")["net_pnl"])
with tabs[4]:
    if run.attribution is None:
        st.info("No attribution.csv (single-sleeve strategy or older run).")
    else:
        st.dataframe(run.attribution, hide_index=True)
        st.bar_chart(run.attribution.set_index("sleeve")["pnl"])
with tabs[5]:
    if run.daily_log is None:
        st.info("No daily_log.csv.")
    else:
        if {"market_iv", "date"} <= set(run.daily_log.columns) and (
            "model_iv" in run.daily_log or "forecast_vol" in run.daily_log
        ):
            st.plotly_chart(charts.model_vs_market_figure(run.daily_log))
        st.dataframe(run.daily_log, hide_index=True, height=320)
        for name, table in run.evaluations.items():
            st.caption(f"evaluation: {name}")
            st.dataframe(table, hide_index=True)
with tabs[6]:
    if run.tearsheet is None:
        st.info("No tearsheet.html.")
    else:
        st.iframe(Path(run.tearsheet), height=900)  # the quantstats page, as written

st.header("Runs side by side")
picked = st.multiselect(
    "2 to 4 runs", list(labels), default=list(labels)[: min(2, len(labels))], max_selections=4
)
if len(picked) >= 2:
    curves = {}
    for label in picked:
        r = cached("load_run", labels[label])
        if r.returns is not None:
            curves[label] = r.returns
    st.plotly_chart(charts.compare_figure(curves))
    table = runs.set_index("path").loc[[labels[p] for p in picked]]
    st.dataframe(
        table[["experiment", "run_id", "sharpe", "deflated_sharpe", "pbo", "trades"]],
        hide_index=True,
    )
else:
    st.caption("Pick at least two runs.")

if cfg.mlflow:
    with st.expander(f"MLflow runs ({cfg.mlflow})"):
        if st.checkbox("load the MLflow store", key="mlflow"):
            try:
                import mlflow

                mlflow.set_tracking_uri(cfg.mlflow)
                found = mlflow.search_runs(search_all_experiments=True, max_results=200)
                st.dataframe(pd.DataFrame(found), hide_index=True)
            except Exception as exc:
                show_error(exc)
