"""Data quality: per source days, roots, expiries per day, quarantine counts by reason,
liquidity flags and a calendar of missing sessions (read-only chain store)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from experiments.dashboard import charts
from experiments.dashboard.common import settings, show_error, store_read

cfg = settings()
st.title("Data quality")
st.caption(f"Chain store `{cfg.db}` (opened read-only).")
try:
    dq = store_read("data_quality", cfg.db)
except Exception as exc:
    show_error(exc)
    st.stop()
sources = dq["sources"]
if sources.empty:
    st.info("The store holds no quote.")
    st.stop()
st.subheader("Sources")
st.dataframe(sources, hide_index=True)

per_day = dq["per_day"]
per_day = per_day[per_day["rows"] > 0]
st.subheader("Expiries per day")
st.plotly_chart(
    px.line(
        per_day,
        x="quote_date",
        y="n_expiries",
        color="data_source",
        markers=True,
        labels={"n_expiries": "expiries", "quote_date": "quote date"},
    )
)

left, right = st.columns(2)
with left:
    st.subheader("Quarantined rows by reason")
    q = dq["quarantine"]
    if q.empty:
        st.caption("Nothing quarantined.")
    else:
        st.plotly_chart(
            px.bar(q, x="rows", y="reason", color="data_source", orientation="h", height=360)
        )
        st.dataframe(q, hide_index=True)
with right:
    st.subheader("Liquidity flags")
    st.caption("Stored rows per source by `is_liquid` (docs/data.md liquidity criteria).")
    st.dataframe(dq["liquidity"], hide_index=True)

st.subheader("Missing sessions")
missing = dq["missing"]
for i, src in enumerate(sources.itertuples()):
    mine = (per_day["underlying"] == src.underlying) & (per_day["data_source"] == src.data_source)
    days = per_day[mine & ~per_day["holiday"]]["quote_date"]
    gaps = missing[
        (missing["underlying"] == src.underlying) & (missing["data_source"] == src.data_source)
    ]["date"]
    st.plotly_chart(
        charts.calendar_figure(
            list(pd.to_datetime(days).dt.date),
            list(pd.to_datetime(gaps).dt.date) if len(gaps) else [],
            f"{src.underlying} {src.data_source}: NYSE sessions stored (green), missing (red)",
        ),
        key=f"calendar-{i}",
    )
if len(missing):
    st.dataframe(missing, hide_index=True)
else:
    st.caption("No NYSE session missing between a source's first and last stored date.")
