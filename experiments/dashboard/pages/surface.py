"""Surface: 3D implied-vol surface and per-expiry smiles (bid/ask bars, fitted SVI) of a date."""

from __future__ import annotations

import streamlit as st

from experiments.dashboard.common import mtime, settings, show_error, store_read

cfg = settings()
st.title("Surface")
try:
    dates = store_read("store_dates", cfg.db, "SPX")
except Exception as exc:
    show_error(exc)
    st.stop()
if not dates:
    st.info(f"No SPX quote stored in `{cfg.db}`.")
    st.stop()
left, right = st.columns([3, 1])
day = left.select_slider("quote date", options=dates, value=dates[-1], key="surface_date")
model = right.selectbox("model", ["svi", "ssvi", "sabr"], key="surface_model")


@st.cache_data(show_spinner="fitting the surface ...", max_entries=32)
def _fit(db: str, day: str, model: str, stamp: float | tuple[float, ...]):
    """Fit the date in memory with the code and settings of ``volsuite surface fit`` and build
    the figures of ``volsuite surface plot`` (deterministic: the numbers ``fit`` stores)."""
    from data_feeds.chain_store import ChainStore
    from experiments.cli_surface import surface_figures
    from pricing.surface_fit import fit_snapshot

    with ChainStore(db, read_only=True) as store:
        snap = store.snapshot("SPX", day)
    surf = fit_snapshot(snap, model)
    surface, smiles = surface_figures(surf)
    table = surf.slices[
        [
            "root",
            "expiration",
            "dte",
            "status",
            "num_points",
            "n_quotes",
            "atm_vol",
            "skew_25delta",
            "rmse",
            "max_error",
            "butterfly_arbitrage_violations",
            "calendar_arbitrage_violations",
            "repair",
        ]
    ]
    return surface, smiles, table, dict(surf.removed)


try:
    surface, smiles, table, removed = _fit(
        str(cfg.db), str(day), model, (mtime(cfg.db), mtime(f"{cfg.db}.wal"))
    )
except Exception as exc:
    show_error(exc)
    st.stop()
st.plotly_chart(surface)
st.plotly_chart(smiles)
st.subheader("Fit errors and arbitrage flags per expiry")
st.caption(
    "RMSE / max error in vol points over the fitted quotes; butterfly / calendar: grid points "
    "violating no-arbitrage after the repair named in `repair`; status other than `ok`: not fitted."
)
flagged = table[
    (table["butterfly_arbitrage_violations"].fillna(0) > 0)
    | (table["calendar_arbitrage_violations"].fillna(0) > 0)
    | (table["status"] != "ok")
]
if len(flagged):
    st.warning(f"{len(flagged)} of {len(table)} expiries flagged (arbitrage left or not fitted)")
st.dataframe(table, hide_index=True)
st.caption(
    "left out of the fit: " + ", ".join(f"{k} {v:,}" for k, v in removed.items() if v) or "none"
)
