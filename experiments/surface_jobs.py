"""Surface jobs: read the chain store, fit, write the surface / RV / VRP tables back.

:func:`fit_surfaces` fits every (or the given) quote date of an underlying with
:func:`pricing.surface_fit.fit_snapshot` and writes ``fitted_surfaces`` and
``term_structure_params``; :func:`store_realized_volatility` and :func:`store_vrp_metrics` fill
``realized_volatility`` and ``vrp_metrics`` (columns and units in :mod:`data_feeds.surfaces`,
which owns the tables and their migration). ``volsuite surface`` (:mod:`experiments.cli_surface`)
is the command-line face.

Every write replaces the date's (or symbol's) rows of one model in one transaction, so running
twice gives the same tables. Columns the design's table layout lacks are added by
:func:`data_feeds.surfaces.migrate_surface_tables` first.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from data_feeds.errors import DataSourceError
from data_feeds.surfaces import (
    MODEL_VERSION,
    RV_WINDOWS,
    VRP_HORIZONS,
    as_date,
    insert_frame,
    load_fitted_surfaces,
    migrate_surface_tables,
)
from pricing.surface_fit import (
    SnapshotSurface,
    SurfaceFitConfig,
    check_model_available,
    fit_snapshot,
)
from pricing.term_structure import atm_vol_at

if TYPE_CHECKING:
    from data_feeds.chain_store import ChainStore
    from data_feeds.chains import ChainSnapshot

__all__ = [
    "SurfaceFitReport",
    "fit_surfaces",
    "realized_volatility_frame",
    "store_realized_volatility",
    "store_vrp_metrics",
    "vrp_frame",
]


# ------------------------------------------------------------------------------------------------
# The store: fitted_surfaces and term_structure_params
# ------------------------------------------------------------------------------------------------
@dataclass
class SurfaceFitReport:
    """What :func:`fit_surfaces` did.

    Attributes
    ----------
    underlying, model : str
    surfaces : list of SnapshotSurface
        One per fitted quote date, in date order.
    added_columns : list of str
        Columns the schema migration added (empty when already there).
    rows_written : int
        ``fitted_surfaces`` rows written (replacing the dates' earlier rows of the model).
    seconds : float
    """

    underlying: str
    model: str
    surfaces: list[SnapshotSurface]
    added_columns: list[str]
    rows_written: int
    seconds: float

    def summary(self) -> pd.DataFrame:
        """One row per date: slices, fitted, skipped, median/p95/max RMSE (vol points),
        arbitrage violations after and before repair, repaired slices, seconds."""
        rows = []
        for s in self.surfaces:
            f = s.fitted
            rows.append(
                {
                    "quote_date": s.quote_time.date(),
                    "slices": len(s.slices),
                    "fitted": len(f),
                    "skipped": len(s.slices) - len(f),
                    "median_rmse": float(f["rmse"].median()) if len(f) else np.nan,
                    "p95_rmse": float(f["rmse"].quantile(0.95)) if len(f) else np.nan,
                    "max_rmse": float(f["rmse"].max()) if len(f) else np.nan,
                    "butterfly": int(f["butterfly_arbitrage_violations"].sum()),
                    "calendar": int(f["calendar_arbitrage_violations"].sum()),
                    "butterfly_before": int(f["butterfly_violations_before"].sum()),
                    "calendar_before": int(f["calendar_violations_before"].sum()),
                    "repaired": int((f["repair"].fillna("") != "").sum()),
                    "seconds": s.timings.get("total", np.nan),
                }
            )
        return pd.DataFrame(rows)


def _resolve_dates(
    store: ChainStore, underlying: str, date: Any, roots: Sequence[str] | None
) -> list[dt.date]:
    have = store.quote_dates(underlying, roots)
    if date is None or (isinstance(date, str) and date.lower() == "all"):
        if not have:
            raise DataSourceError(
                f"{store.path}: no {underlying} quotes stored (ingest chains first)"
            )
        return have
    wanted = [as_date(d) for d in (date if isinstance(date, list | tuple) else [date])]
    missing = [d for d in wanted if d not in set(have)]
    if missing:
        span = f"{have[0]:%Y-%m-%d} .. {have[-1]:%Y-%m-%d}" if have else "none"
        raise DataSourceError(
            f"{store.path}: no {underlying} quotes on "
            f"{', '.join(f'{d:%Y-%m-%d}' for d in missing)} (stored dates: {len(have)}, {span})"
        )
    return wanted


def _surface_rows(surf: SnapshotSurface, config: SurfaceFitConfig) -> pd.DataFrame:
    s = surf.slices
    d = surf.quote_time.date()
    qt = surf.quote_time.time()
    return pd.DataFrame(
        {
            "symbol": s["root"].to_numpy(dtype=object),
            "quote_date": [d] * len(s),
            "expiration_date": s["expiration"].to_numpy(dtype=object),
            "tte_years": s["tte"].to_numpy(dtype=float),
            **{
                c: s[c].to_numpy(dtype=float)
                for c in (
                    "svi_a",
                    "svi_b",
                    "svi_rho",
                    "svi_m",
                    "svi_sigma",
                    "atm_vol",
                    "skew_25delta",
                    "rmse",
                    "mae",
                    "max_error",
                    "forward",
                    "k_min",
                    "k_max",
                    "min_g",
                )
            },
            "num_points": s["num_points"].astype("Int64"),
            "passes_no_arbitrage": s["passes_no_arbitrage"],
            "butterfly_arbitrage_violations": s["butterfly_arbitrage_violations"],
            "calendar_arbitrage_violations": s["calendar_arbitrage_violations"],
            "model_type": [surf.model.upper()] * len(s),
            "model_version": [MODEL_VERSION] * len(s),
            "underlying": [surf.underlying] * len(s),
            "quote_time": [qt] * len(s),
            "dte": s["dte"].astype("Int64"),
            "status": s["status"].to_numpy(dtype=object),
            "params": [None if p is None else json.dumps(p, sort_keys=True) for p in s["params"]],
            "n_quotes": s["n_quotes"].astype("Int64"),
            "repair": s["repair"].to_numpy(dtype=object),
            "butterfly_violations_before": s["butterfly_violations_before"],
            "calendar_violations_before": s["calendar_violations_before"],
            "weighting": [config.weighting] * len(s),
        }
    )


def _term_row(surf: SnapshotSurface, config: SurfaceFitConfig) -> dict[str, Any]:
    atm, skew = surf.term_structure(config.term_min_dte)
    f = surf.fitted
    n_elig = int((f["dte"] >= config.term_min_dte).sum())
    status = (
        "ok"
        if atm is not None and skew is not None
        else (f"{n_elig} fitted expiries with dte >= {config.term_min_dte:g} (need 2)")
    )
    return {
        "symbol": surf.underlying,
        "quote_date": surf.quote_time.date(),
        "atm_term_a": None if atm is None else atm.a,
        "atm_term_b": None if atm is None else atm.b,
        "atm_term_rmse": None if atm is None else 100.0 * atm.rmse,
        "skew_term_a": None if skew is None else skew.a,
        "skew_term_b": None if skew is None else skew.b,
        "skew_term_rmse": None if skew is None else 100.0 * skew.rmse,
        "num_expirations": len(f),
        "model_type": f"power_law:{surf.model.upper()}",
        "quote_time": surf.quote_time.time(),
        "atm_term_n": None if atm is None else atm.n_points,
        "skew_term_n": None if skew is None else skew.n_points,
        "min_dte": float(config.term_min_dte),
        "status": status,
    }


def fit_surfaces(
    store: ChainStore,
    date: Any = "all",
    model: str = "svi",
    *,
    underlying: str = "SPX",
    roots: Sequence[str] | None = None,
    config: SurfaceFitConfig | None = None,
    analytics: Callable[[ChainSnapshot], pd.DataFrame] | None = None,
    progress: Callable[[int, int, dt.date], None] | None = None,
) -> SurfaceFitReport:
    """Fit the surfaces of one, several or all quote dates and store them.

    For each date: the latest snapshot of the date (:meth:`ChainStore.snapshot`),
    :func:`fit_snapshot`, then in **one transaction** the date's earlier ``fitted_surfaces`` rows
    of ``(underlying, model)`` and its ``term_structure_params`` row of the model are deleted
    and the new ones inserted (idempotent: a re-run replaces, never duplicates).

    Parameters
    ----------
    store : ChainStore
        Opened read-write.
    date : date-like, list of date-likes, or "all"
        Quote date(s); ``"all"`` (or None) for every stored date of ``underlying``.
    model : {'svi', 'ssvi', 'sabr', 'heston'}
    underlying : str
        ``SPX`` (roots SPX and SPXW), ``SPY`` ...
    roots : sequence of str, optional
        Only these roots.
    config : SurfaceFitConfig, optional
    analytics : callable, optional
        Forward/IV engine seam of :func:`fit_snapshot`.
    progress : callable, optional
        ``progress(i, n, date)`` after each date (CLI progress bar).

    Returns
    -------
    SurfaceFitReport

    Raises
    ------
    DataSourceError
        Store opened read-only, no quotes stored, a requested date without quotes.
    ValueError, ModelNotAvailableError
        Unknown or unavailable model.
    """
    t0 = time.perf_counter()
    cfg = config or SurfaceFitConfig()
    check_model_available(model)
    if store.read_only:
        raise DataSourceError(f"{store.path}: chain store opened read-only; cannot store surfaces")
    und = underlying.strip().upper()
    dates = _resolve_dates(store, und, date, roots)
    con = store.connection
    added = migrate_surface_tables(con)
    surfaces: list[SnapshotSurface] = []
    written = 0
    mtype = model.upper()
    for i, d in enumerate(dates):
        snap = store.snapshot(und, d, roots=roots, rate=cfg.rate)
        surf = fit_snapshot(snap, model, cfg, analytics=analytics)
        rows = _surface_rows(surf, cfg)
        term = pd.DataFrame([_term_row(surf, cfg)])
        con.execute("BEGIN")
        try:
            con.execute(
                "DELETE FROM fitted_surfaces WHERE underlying = ? AND quote_date = ? AND "
                "model_type = ?"
                + ("" if roots is None else f" AND symbol IN ({', '.join('?' * len(roots))})"),
                [und, d, mtype, *([r.strip().upper() for r in roots] if roots else [])],
            )
            con.execute(
                "DELETE FROM term_structure_params WHERE symbol = ? AND quote_date = ? AND "
                "model_type = ?",
                [und, d, f"power_law:{mtype}"],
            )
            insert_frame(con, "fitted_surfaces", rows)
            insert_frame(con, "term_structure_params", term)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        written += len(rows)
        surfaces.append(surf)
        if progress is not None:
            progress(i + 1, len(dates), d)
    return SurfaceFitReport(und, model, surfaces, added, written, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------
# Realized volatility and VRP
# ------------------------------------------------------------------------------------------------
def realized_volatility_frame(
    ohlc: pd.DataFrame, windows: Sequence[int] = RV_WINDOWS
) -> pd.DataFrame:
    """Close-to-close, Parkinson and Garman-Klass realized vol at several windows.

    Parameters
    ----------
    ohlc : pandas.DataFrame
        Daily bars with ``open, high, low, close`` (a :func:`data_feeds.load_ohlc` frame or
        :meth:`ChainStore.underlying_ohlc`), session-date index.
    windows : sequence of int
        Windows in sessions.

    Returns
    -------
    pandas.DataFrame
        Same index; columns ``rv_<w>d`` (close-to-close, sample std of log returns),
        ``parkinson_<w>d`` and ``gk_<w>d`` per window: decimal vol annualised with 252
        (:func:`indicators.realized_vol`; the value at session ``t`` uses bars up to ``t``).

    Raises
    ------
    ValueError
        A missing column or a window below 2 (from :func:`indicators.realized_vol`).
    """
    from indicators import realized_vol

    out = {}
    for wdw in windows:
        out[f"rv_{wdw}d"] = realized_vol(ohlc, "close_to_close", wdw)
        out[f"parkinson_{wdw}d"] = realized_vol(ohlc, "parkinson", wdw)
        out[f"gk_{wdw}d"] = realized_vol(ohlc, "garman_klass", wdw)
    return pd.DataFrame(out, index=ohlc.index)


def _ohlc(store: ChainStore, symbol: str, ohlc: pd.DataFrame | None) -> pd.DataFrame:
    return store.underlying_ohlc(symbol) if ohlc is None else ohlc


def store_realized_volatility(
    store: ChainStore, symbol: str = "SPX", ohlc: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Compute :func:`realized_volatility_frame` and replace ``symbol``'s rows of
    ``realized_volatility`` in one transaction.

    Parameters
    ----------
    store : ChainStore
        Read-write.
    symbol : str
    ohlc : pandas.DataFrame, optional
        Daily bars; default the store's ``underlying_prices`` (:meth:`ChainStore.underlying_ohlc`).

    Returns
    -------
    pandas.DataFrame
        The rows written (``date`` column plus the vols; sessions before the first full window
        are NULL in the table, NaN here).

    Raises
    ------
    DataSourceError
        Read-only store.
    StoreKeyError
        No daily bars of ``symbol`` in the store (and none given).
    """
    if store.read_only:
        raise DataSourceError(f"{store.path}: chain store opened read-only")
    sym = symbol.strip().upper()
    bars = _ohlc(store, sym, ohlc)
    rv = realized_volatility_frame(bars)
    idx = pd.DatetimeIndex(bars.index)
    dates = (idx.tz_convert("America/New_York") if idx.tz is not None else idx).date
    frame = pd.DataFrame(
        {"symbol": sym, "date": dates, **{c: rv[c].to_numpy() for c in rv.columns}}
    )
    frame["data_source"] = str(bars.attrs.get("source", ""))
    con = store.connection
    migrate_surface_tables(con)
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM realized_volatility WHERE symbol = ?", [sym])
        insert_frame(con, "realized_volatility", frame)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return frame


def vrp_frame(
    surfaces: pd.DataFrame,
    ohlc: pd.DataFrame,
    *,
    estimator: str = "close_to_close",
    zscore_min_periods: int = 20,
) -> pd.DataFrame:
    """ATM implied minus trailing realized vol at 30/60/90 days, and the VRP z-score.

    Parameters
    ----------
    surfaces : pandas.DataFrame
        Fitted slices with ``quote_date``, ``tte_years`` and ``atm_vol`` (decimal) -- the
        ``fitted_surfaces`` rows with ``status = 'ok'``.
    ohlc : pandas.DataFrame
        Daily bars of the underlying (session-date index).
    estimator : str
        Realized-vol estimator of :func:`indicators.realized_vol`.
    zscore_min_periods : int
        Past values needed before a z-score is given.

    Returns
    -------
    pandas.DataFrame
        One row per quote date (ascending): ``date``, ``implied_vol_30d/60d/90d`` (ATM vol at
        30/60/90 calendar days, linear in total variance between fitted expiries; NaN outside
        the fitted range), ``realized_vol_30d/60d/90d`` (trailing 21/42/63 sessions ending the
        last session *before* the quote date), ``vrp_30d/60d/90d`` (implied minus realized,
        decimal vol), ``vrp_zscore`` (``(vrp_30d - mean) / std`` of the strictly earlier
        finite ``vrp_30d`` values, sample std; NaN with fewer than ``zscore_min_periods`` of
        them; :func:`indicators.vol_signals.past_zscore_nb` with ``window=0``) and
        ``zscore_n`` (how many).

    Notes
    -----
    Nothing at or after the quote date's close enters a row: the trailing realized vol ends the
    session before, and the z-score uses earlier rows only (truncating the input after a date
    leaves every earlier row unchanged -- the look-ahead test).
    """
    from indicators import realized_vol

    if zscore_min_periods < 2:
        raise ValueError(f"zscore_min_periods must be >= 2, got {zscore_min_periods}")
    s = surfaces[np.isfinite(surfaces["atm_vol"].to_numpy(dtype=float))]
    idx = pd.DatetimeIndex(ohlc.index)
    sess = pd.DatetimeIndex(
        idx.tz_convert("America/New_York").tz_localize(None) if idx.tz is not None else idx
    ).normalize()
    rvs = {h: realized_vol(ohlc, estimator, n).to_numpy() for h, n in VRP_HORIZONS.items()}
    rows = []
    for d, g in s.groupby("quote_date", sort=True):
        tte = g["tte_years"].to_numpy(dtype=float)
        wv = g["atm_vol"].to_numpy(dtype=float) ** 2 * tte
        row: dict[str, Any] = {"date": as_date(d)}
        j = (
            int(
                np.searchsorted(
                    sess.to_numpy(), np.datetime64(pd.Timestamp(as_date(d))), side="left"
                )
            )
            - 1
        )
        for h in VRP_HORIZONS:
            iv = float(atm_vol_at(h / 365.0, tte, wv))
            rv = float(rvs[h][j]) if j >= 0 else float("nan")
            row[f"implied_vol_{h}d"] = iv
            row[f"realized_vol_{h}d"] = rv
            row[f"vrp_{h}d"] = iv - rv
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    # the suite's one VRP z-score kernel (indicators.vol_signals.past_zscore_nb, expanding)
    from indicators.vol_signals import past_zscore_nb

    v = np.ascontiguousarray(out["vrp_30d"].to_numpy(dtype=float))
    finite = np.isfinite(v)
    out["vrp_zscore"] = past_zscore_nb(np.where(finite, v, np.nan), 0, zscore_min_periods)
    out["zscore_n"] = (np.cumsum(finite) - finite).astype(np.int64)
    return out


def store_vrp_metrics(
    store: ChainStore,
    symbol: str = "SPX",
    model: str = "svi",
    *,
    ohlc: pd.DataFrame | None = None,
    estimator: str = "close_to_close",
    zscore_min_periods: int = 20,
) -> pd.DataFrame:
    """:func:`vrp_frame` from the stored fits of ``model``; replaces ``symbol``'s
    ``vrp_metrics`` rows in one transaction.

    Parameters
    ----------
    store : ChainStore
        Read-write, with ``fitted_surfaces`` of ``(symbol, model)``.
    symbol : str
        The underlying (``SPX``).
    model : str
    ohlc : pandas.DataFrame, optional
        Daily bars; default the store's ``underlying_prices``.
    estimator : str
    zscore_min_periods : int

    Returns
    -------
    pandas.DataFrame
        The rows written.

    Raises
    ------
    DataSourceError
        Read-only store, or no stored fits of ``model`` for ``symbol`` (run
        :func:`fit_surfaces` first).
    StoreKeyError
        No daily bars of ``symbol``.
    """
    if store.read_only:
        raise DataSourceError(f"{store.path}: chain store opened read-only")
    sym = symbol.strip().upper()
    fits = load_fitted_surfaces(store, None, model, underlying=sym)
    if fits.empty or not (fits["status"] == "ok").any():
        raise DataSourceError(
            f"{store.path}: no fitted {model.upper()} surfaces of {sym} (run 'volsuite surface "
            "fit' first)"
        )
    bars = _ohlc(store, sym, ohlc)
    frame = vrp_frame(
        fits[fits["status"] == "ok"],
        bars,
        estimator=estimator,
        zscore_min_periods=zscore_min_periods,
    )
    frame.insert(0, "symbol", sym)
    frame["surface_model"] = model.upper()
    frame["realized_estimator"] = estimator
    con = store.connection
    migrate_surface_tables(con)
    cols = [
        "symbol",
        "date",
        "vrp_30d",
        "vrp_60d",
        "vrp_90d",
        "implied_vol_30d",
        "realized_vol_30d",
        "vrp_zscore",
        "implied_vol_60d",
        "implied_vol_90d",
        "realized_vol_60d",
        "realized_vol_90d",
        "surface_model",
        "realized_estimator",
        "zscore_n",
    ]
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM vrp_metrics WHERE symbol = ?", [sym])
        insert_frame(con, "vrp_metrics", frame[cols])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return frame
