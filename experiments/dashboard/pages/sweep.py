"""Sweep: an Optuna study's trials with optuna's own plotly visualisations."""

from __future__ import annotations

import streamlit as st

from experiments.dashboard.common import cached, mtime, settings, show_error

cfg = settings()
st.title("Sweep")
storage = st.text_input("Optuna storage", cfg.optuna)
st.caption(
    "Study names are `<experiment>-<run id>-fold<k>` (one study per walk-forward fold); the "
    "objective is the config's `[optimize] objective` on the fold's in-sample window."
)
stamp = storage.removeprefix("sqlite:///")
try:
    studies = cached("list_studies", storage, stamp_path=stamp)
except Exception as exc:
    show_error(exc)
    st.stop()
if studies.empty:
    st.info("No study in this storage yet.")
    st.stop()
st.dataframe(studies, hide_index=True, height=240)
name = st.selectbox("study", list(studies["study"]), key="study")


@st.cache_resource(show_spinner=False, max_entries=8)
def _study(storage: str, name: str, stamp: float | tuple[float, ...]):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


study = _study(storage, name, mtime(stamp))
trials = study.trials_dataframe()
st.subheader(f"{len(trials)} trials")
st.dataframe(trials, hide_index=True, height=260)

import optuna.visualization as ov  # noqa: E402 - optuna only on this page

complete = [t for t in study.trials if t.state.name == "COMPLETE"]
if not complete:
    st.info("No completed trial: nothing to plot.")
    st.stop()
tabs = st.tabs(["Objective by parameter", "Parallel coordinates", "History", "Importance"])
with tabs[0]:
    st.plotly_chart(ov.plot_slice(study))
with tabs[1]:
    st.plotly_chart(ov.plot_parallel_coordinate(study))
with tabs[2]:
    st.plotly_chart(ov.plot_optimization_history(study))
with tabs[3]:
    try:
        st.plotly_chart(ov.plot_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        st.info(f"Parameter importance not available for this study: {exc}")
