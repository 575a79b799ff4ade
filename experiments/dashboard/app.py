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

st.set_page_config(
    page_title="volsuite dashboard", page_icon=":material/show_chart:", layout="wide"
)

PAGES = Path(__file__).resolve().parent / "pages"
navigation = st.navigation(
    {
        "Research": [
            st.Page(PAGES / "runs.py", title="Runs", icon=":material/table_chart:", default=True),
            st.Page(PAGES / "sweep.py", title="Sweep", icon=":material/tune:"),
        ],
        "Market": [
            st.Page(PAGES / "surface.py", title="Surface", icon=":material/landscape:"),
            st.Page(
                PAGES / "term_vrp.py", title="Term structure and VRP", icon=":material/show_chart:"
            ),
            st.Page(PAGES / "data_quality.py", title="Data quality", icon=":material/fact_check:"),
        ],
        "Trading": [st.Page(PAGES / "paper.py", title="Paper", icon=":material/receipt_long:")],
    }
)
navigation.run()
