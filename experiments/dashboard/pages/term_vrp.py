"""Term structure and VRP: ATM term structure per date, power-law parameters over time, implied
vs realized vol, VRP and its z-score (the stored ``volsuite surface fit`` / ``surface vrp``
tables)."""

from __future__ import annotations

import streamlit as st

from experiments.dashboard import charts
from experiments.dashboard.common import settings, show_error, store_read

cfg = settings()
st.title("Term structure and VRP")
model = st.selectbox("surface model", ["svi", "ssvi", "sabr"], key="ts_model")
try:
    history = store_read("term_structure_history", cfg.db, model)
    vrp = store_read("vrp_history", cfg.db, model)
except Exception as exc:
    show_error(exc)
    st.stop()

st.header("ATM term structure")
if history.empty:
    st.info(f"No stored {model.upper()} fit: `volsuite surface fit --all --model {model}`.")
else:
    dates = list(history["quote_date"])
    day = st.select_slider("quote date", options=dates, value=dates[-1], key="ts_date")
    try:
        table, params = store_read("term_structure", cfg.db, day, model)
    except Exception as exc:
        show_error(exc)
        st.stop()
    st.plotly_chart(charts.term_structure_figure(table, params, f"SPX ATM term structure {day}"))
    st.dataframe(table, hide_index=True, height=240)
    st.plotly_chart(charts.power_law_figure(history))

st.header("Implied vs realized vol and the VRP")
if vrp.empty:
    st.info("No vrp_metrics rows: `volsuite ingest underlying ...` then `volsuite surface vrp`.")
else:
    st.plotly_chart(charts.vrp_figure(vrp))
    st.dataframe(vrp, hide_index=True, height=240)
