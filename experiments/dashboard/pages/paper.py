"""Paper: a paper session's state, P&L, positions, orders, fills and audit events; refreshes
every few seconds while the session runs."""

from __future__ import annotations

import streamlit as st

from experiments.dashboard.common import settings, show_error
from experiments.dashboard.data import list_paper_sessions, load_paper_session

cfg = settings()
st.title("Paper")
st.caption(f"Sessions under `{cfg.paper}` (`volsuite paper CONFIG`).")
sessions = list_paper_sessions(cfg.paper)
if sessions.empty:
    st.info("No paper session yet: `volsuite paper CONFIG` writes one.")
    st.stop()
st.dataframe(sessions.drop(columns=["path"]), hide_index=True)
name = st.selectbox("session", list(sessions["session"]), key="paper_session")
row = sessions[sessions["session"] == name].iloc[0]
every = 2.0 if bool(row["running"]) else None


@st.fragment(run_every=every)
def session_view(path: str) -> None:
    """The session's files, re-read on every refresh (running sessions only)."""
    try:
        s = load_paper_session(path)
    except Exception as exc:
        show_error(exc)
        return
    state, summary = s["state"] or {}, s["summary"] or {}
    cols = st.columns(5)
    cols[0].metric("running", "yes" if state.get("alive") else "no")
    cols[1].metric("venue", str(state.get("venue") or summary.get("venue") or "n/a"))
    pnl = summary.get("pnl")
    cols[2].metric("P&L $", "n/a (at session end)" if pnl is None else f"{pnl:+,.2f}")
    cols[3].metric("orders", len(s["orders"]))
    cols[4].metric("kill switch", "engaged" if state.get("killed") else "off")
    if state.get("kill_status"):
        st.caption(f"kill switch: {state['kill_status']}")
    replay = state.get("replay")
    if replay:
        st.progress(
            float(replay.get("done", 0.0)),
            text=f"replay: {replay.get('snapshots_done')}/{replay.get('snapshots')} recorded "
            f"snapshots, clock {replay.get('clock')} "
            f"({replay.get('start')} .. {replay.get('end')})",
        )
    for problem in s["problems"]:
        st.warning(problem)
    greeks = summary.get("greeks") or state.get("greeks")
    st.subheader("Greeks")
    if greeks:
        st.json(greeks)
    else:
        st.caption(
            "The session files carry no book greeks (the live status table in the terminal shows "
            "them); positions below."
        )
    tabs = st.tabs(["Positions", "Orders", "Fills", "Audit events"])
    for tab, key in zip(tabs, ("positions", "orders", "fills", "audit"), strict=True):
        with tab:
            frame = s[key]
            if frame.empty:
                st.caption(f"no {key}")
            else:
                st.dataframe(frame, hide_index=True)


session_view(str(row["path"]))
