"""Streamlit entry of ``volsuite dashboard``: page setup and navigation over ``pages/``.

Run with ``volsuite dashboard`` (sets the ``VOLSUITE_*`` paths, :mod:`experiments.dashboard.common`)
or ``streamlit run experiments/dashboard/app.py`` from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the repository this file belongs to, before any installed copy
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="volsuite dashboard", page_icon="📈", layout="wide")

PAGES = Path(__file__).resolve().parent / "pages"
navigation = st.navigation(
    {
        "Research": [
            st.Page(PAGES / "runs.py", title="Runs", icon="📊", default=True),
            st.Page(PAGES / "sweep.py", title="Sweep", icon="🎛️"),
        ],
        "Market": [
            st.Page(PAGES / "surface.py", title="Surface", icon="🌋"),
            st.Page(PAGES / "term_vrp.py", title="Term structure and VRP", icon="📈"),
            st.Page(PAGES / "data_quality.py", title="Data quality", icon="🩺"),
        ],
        "Trading": [st.Page(PAGES / "paper.py", title="Paper", icon="📝")],
    }
)
navigation.run()
