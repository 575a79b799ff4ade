"""The surface and VRP tables of the chain store: their columns, schema migration and reads.

The tables live in the chain store's DuckDB file (:class:`~data_feeds.chain_store.ChainStore`);
the jobs that fill them (read the store, fit, write back) are in :mod:`experiments.surface_jobs`
and the fitting itself in :mod:`pricing.surface_fit`.

``fitted_surfaces``
    One row per ``(root, expiry, model)`` of the date -- also for expiries that could not be
    fitted (``status`` says why, parameters NULL). ``symbol`` is the option root (``SPX``,
    ``SPXW``); the row carries ``underlying``. RMSE / MAE / max error are in **vol points**
    (0.01 of decimal vol) over the fitted quotes; ``atm_vol`` (decimal) is the model vol at
    ``k = 0``; ``skew_25delta`` is the model's 25-delta risk reversal ``IV(25d call) - IV(25d
    put)`` in decimal vol (negative for a put skew), the deltas being Black-76 forward deltas
    ``N(d1)`` of the model smile; arbitrage counts are grid points (see
    :func:`pricing.arbitrage.fit_svi_surface`).
``term_structure_params``
    Per date: power laws ``atm_vol(T) = a T^b`` and ``rr25(T) = a T^b`` over the fitted expiries
    with ``dte >= term_min_dte`` (:func:`pricing.term_structure.fit_power_law`); RMSE in vol
    points; ``model_type`` is ``power_law:<MODEL>``.
``realized_volatility``
    Per session: close-to-close, Parkinson and Garman-Klass vol over 10/21/63/252 sessions
    (:func:`indicators.realized_vol`; decimal, annualised with 252).
``vrp_metrics``
    Per quote date: ATM implied vol at 30/60/90 calendar days (linear in total variance between
    the fitted expiries, :func:`pricing.term_structure.atm_vol_at`) minus the trailing realized
    vol over 21/42/63 sessions ending the session *before* the quote date (the 2019 vendor
    snapshot is at 15:45 ET, before that day's close); ``vrp_zscore`` of ``vrp_30d`` against
    its own strictly earlier values (expanding mean and sample std).

Every write replaces the date's (or symbol's) rows of one model in one transaction, so running
twice gives the same tables. Columns the design's table layout lacks are added by
:func:`migrate_surface_tables` (``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from data_feeds.errors import DataSourceError

if TYPE_CHECKING:
    import duckdb

    from data_feeds.chain_store import ChainStore

__all__ = [
    "MODEL_VERSION",
    "RV_WINDOWS",
    "VRP_HORIZONS",
    "as_date",
    "insert_frame",
    "load_fitted_surfaces",
    "migrate_surface_tables",
]


MODEL_VERSION = "volsuite-surfaces-1"
"""Written to ``fitted_surfaces.model_version``."""

RV_WINDOWS = (10, 21, 63, 252)
"""Realized-vol windows (sessions) of ``realized_volatility``."""

VRP_HORIZONS = {30: 21, 60: 42, 90: 63}
"""VRP horizon in calendar days -> trailing realized-vol window in sessions."""

# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------
_ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "fitted_surfaces": (
        ("underlying", "VARCHAR"),
        ("quote_time", "TIME"),
        ("forward", "DOUBLE"),
        ("dte", "INTEGER"),
        ("status", "VARCHAR"),
        ("params", "VARCHAR"),
        ("k_min", "DOUBLE"),
        ("k_max", "DOUBLE"),
        ("n_quotes", "INTEGER"),
        ("min_g", "DOUBLE"),
        ("repair", "VARCHAR"),
        ("butterfly_violations_before", "INTEGER"),
        ("calendar_violations_before", "INTEGER"),
        ("weighting", "VARCHAR"),
    ),
    "term_structure_params": (
        ("quote_time", "TIME"),
        ("atm_term_n", "INTEGER"),
        ("skew_term_n", "INTEGER"),
        ("min_dte", "DOUBLE"),
        ("status", "VARCHAR"),
    ),
    "realized_volatility": (
        ("parkinson_63d", "DOUBLE"),
        ("parkinson_252d", "DOUBLE"),
        ("gk_63d", "DOUBLE"),
        ("gk_252d", "DOUBLE"),
        ("data_source", "VARCHAR"),
    ),
    "vrp_metrics": (
        ("implied_vol_60d", "DOUBLE"),
        ("implied_vol_90d", "DOUBLE"),
        ("realized_vol_60d", "DOUBLE"),
        ("realized_vol_90d", "DOUBLE"),
        ("surface_model", "VARCHAR"),
        ("realized_estimator", "VARCHAR"),
        ("zscore_n", "INTEGER"),
    ),
}
"""Columns :func:`migrate_surface_tables` adds to the design's tables (docs/surfaces.md)."""


def migrate_surface_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Add the columns this pipeline needs to the store's surface tables (idempotent).

    ``ALTER TABLE <t> ADD COLUMN IF NOT EXISTS <c> <type>`` for every column of
    :data:`_ADDED_COLUMNS`, in one transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable connection to a chain store (``ChainStore.connection``).

    Returns
    -------
    list of str
        ``"table.column"`` of the columns that were missing before.

    Raises
    ------
    DataSourceError
        A surface table is missing (not a chain store).
    """
    existing = {
        (t, c)
        for t, c in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'main'"
        ).fetchall()
    }
    tables = {t for t, _ in existing}
    missing_tables = [t for t in _ADDED_COLUMNS if t not in tables]
    if missing_tables:
        raise DataSourceError(f"not a chain store: tables {missing_tables} are missing")
    added = [
        f"{t}.{c}" for t, cols in _ADDED_COLUMNS.items() for c, _ in cols if (t, c) not in existing
    ]
    if not added:
        return []
    con.execute("BEGIN")
    try:
        for table, cols in _ADDED_COLUMNS.items():
            for col, typ in cols:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {typ}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return added



# ------------------------------------------------------------------------------------------------
# Writes and reads
# ------------------------------------------------------------------------------------------------
def as_date(value: Any) -> dt.date:
    """A date from a date, datetime, ``pandas.Timestamp`` or date string (``YYYY-MM-DD``).

    Raises
    ------
    ValueError
        A string pandas cannot parse as a date.
    """
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()

def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Insert ``frame``'s rows into ``table`` (columns by name; the caller owns the transaction).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable chain-store connection.
    table : str
        One of the surface tables (``fitted_surfaces``, ``term_structure_params``,
        ``realized_volatility``, ``vrp_metrics``).
    frame : pandas.DataFrame
        Columns named as the table's.

    Raises
    ------
    duckdb.Error
        A column the table lacks or a type it cannot take.
    """
    con.register("_surface_rows", frame)
    try:
        cols = ", ".join(frame.columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _surface_rows")
    finally:
        con.unregister("_surface_rows")

def load_fitted_surfaces(
    store: ChainStore,
    quote_date: Any = None,
    model: str = "svi",
    *,
    underlying: str = "SPX",
) -> pd.DataFrame:
    """Stored ``fitted_surfaces`` rows of ``underlying`` and ``model`` (one date or all).

    Parameters
    ----------
    store : ChainStore
    quote_date : date-like, optional
        One date; all dates when omitted.
    model : str
        One of :data:`pricing.surface_fit.MODELS`.
    underlying : str

    Returns
    -------
    pandas.DataFrame
        The table's columns, sorted by quote date and ``tte_years``; ``params`` parsed to
        dicts. Empty when nothing is stored (or the columns were never added).
    """
    con = store.connection
    cols = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'fitted_surfaces'"
        ).fetchall()
    }
    if "underlying" not in cols:
        return pd.DataFrame()
    sql = "SELECT * FROM fitted_surfaces WHERE underlying = ? AND model_type = ?"
    params: list[Any] = [underlying.strip().upper(), model.upper()]
    if quote_date is not None:
        sql += " AND quote_date = ?"
        params.append(as_date(quote_date))
    df = con.execute(sql + " ORDER BY quote_date, tte_years, symbol", params).df()
    if len(df):
        df["params"] = [
            None if p is None or (isinstance(p, float) and math.isnan(p)) else json.loads(p)
            for p in df["params"]
        ]
    return df
