"""What the dashboard and the ``volsuite surface term|params`` views read: run folders, the chain
store (read-only), Optuna studies and paper sessions. No Streamlit here (the pages cache these).

Every number is read, never recomputed: a run's metrics come from its ``summary.json``
(:func:`experiments.metrics.run_metrics` wrote them), the surface numbers from the chain store's
``fitted_surfaces`` / ``term_structure_params`` / ``vrp_metrics`` tables (``volsuite surface fit``
and ``surface vrp`` wrote them; ``docs/surfaces.md``). A file or row that cannot be read is
reported (``problems``), never dropped silently.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from data_feeds.errors import DataSourceError, VolsuiteError

if TYPE_CHECKING:
    import pandas as pd

    from data_feeds.chain_store import ChainStore

__all__ = [
    "RUN_COLUMNS",
    "RunFiles",
    "audit_verdict_path",
    "data_quality",
    "expiry_bucket_days",
    "list_paper_sessions",
    "list_runs",
    "list_studies",
    "load_paper_session",
    "load_run",
    "missing_sessions",
    "param_evolution",
    "sparkline",
    "store_dates",
    "term_structure",
    "term_structure_history",
    "vrp_history",
    "with_store",
]

T = TypeVar("T")

#: A run folder name: ``<UTC stamp>-<6 hex digits>`` (:func:`experiments.runner.run_experiment`).
RUN_ID = re.compile(r"^(\d{8}T\d{6})-[0-9a-f]{6}$")

RUN_COLUMNS = [
    "experiment",
    "run_id",
    "date",
    "strategy",
    "market_source",
    "sharpe",
    "sharpe_ci_low",
    "sharpe_ci_high",
    "deflated_sharpe",
    "pbo",
    "trades",
    "costs_share",
    "total_return",
    "max_drawdown",
    "days",
    "sample",
    "audit",
    "oos_start",
    "oos_end",
    "status",
    "path",
]
"""Columns of :func:`list_runs` (the metrics as ``summary.json`` holds them: ratios decimal,
``costs_share`` = costs / gross P&L, ``trades`` = opening orders; ``date`` the run's UTC start;
``audit`` the verdict of the experiment's newest ``volsuite audit``, :func:`audit_verdict_path`)."""


# -- run folders ----------------------------------------------------------------------------------
def list_runs(results_dir: str | Path) -> pd.DataFrame:
    """Every run folder ``<results_dir>/<experiment>/<run id>/`` with its ``summary.json`` metrics.

    Parameters
    ----------
    results_dir : str or Path
        The results folder (``results/``).

    Returns
    -------
    pandas.DataFrame
        :data:`RUN_COLUMNS`, newest run first. A folder whose ``summary.json`` is missing or not
        JSON is a row with ``status`` saying so (metrics empty); ``status`` is ``ok`` otherwise.
    """
    import pandas as pd

    root = Path(results_dir)
    rows: list[dict[str, Any]] = []
    for run_dir in sorted(root.glob("*/*")) if root.is_dir() else []:
        m = RUN_ID.match(run_dir.name)
        if not run_dir.is_dir() or m is None:
            continue
        row: dict[str, Any] = {
            "experiment": run_dir.parent.name,
            "run_id": run_dir.name,
            "date": pd.Timestamp(dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S")),
            "path": str(run_dir),
            "status": "ok",
        }
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            metrics = summary["metrics"]
        except FileNotFoundError:
            row["status"] = "no summary.json (run unfinished or failed)"
        except (ValueError, KeyError, TypeError) as exc:
            row["status"] = f"summary.json unreadable: {type(exc).__name__}: {exc}"
        else:
            row.update(
                {k: summary.get(k) for k in ("strategy", "market_source", "oos_start", "oos_end")}
            )
            row["experiment"] = summary.get("experiment", row["experiment"])
            verdict = audit_verdict_path(run_dir)
            if verdict.is_file():
                try:
                    row["audit"] = json.loads(verdict.read_text(encoding="utf-8")).get("verdict")
                except (OSError, ValueError) as exc:
                    row["audit"] = f"unreadable: {type(exc).__name__}"
            for key in RUN_COLUMNS:
                if key in metrics:
                    row[key] = metrics[key]
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.sort_values("date", ascending=False, kind="stable").reset_index(drop=True)


def audit_verdict_path(run_dir: str | Path) -> Path:
    """The ``volsuite audit`` verdict shown beside a run: ``audit.json`` of the newest audit of
    the run's experiment (``results/<experiment>/audit/<audit id>/``; an audit checks the config
    with its own walk-forward, so it is the experiment's, not one run folder's). The path that
    would be written when no audit exists yet (``run_dir`` = ``results/<experiment>/<run id>``)."""
    run = Path(run_dir)
    audits = sorted((run.parent / "audit").glob("*/audit.json"))
    return audits[-1] if audits else run.parent / "audit" / "<audit id>" / "audit.json"


@dataclass
class RunFiles:
    """The files of one run folder, read (``None`` where a file is absent).

    Attributes
    ----------
    path : Path
    summary : dict
        ``summary.json``.
    equity : pandas.DataFrame or None
        ``equity.csv``: ``date, fold, cash, positions_value, equity`` (dollars).
    returns : pandas.Series or None
        ``oos_returns.csv``: daily out-of-sample returns (decimal), indexed by session date.
    benchmark : pandas.Series or None
        ``benchmark_returns.csv``: the benchmark's daily returns on the same sessions.
    folds, trades, daily_log, attribution : pandas.DataFrame or None
        ``folds.csv``, ``trades.csv``, ``daily_log.csv``, ``attribution.csv``.
    evaluations : dict of str to pandas.DataFrame
        ``evaluation_<name>.csv`` files.
    tearsheet : Path or None
        ``tearsheet.html``.
    audit : dict or None
        The ``volsuite audit`` verdict (:func:`audit_verdict_path`) when it exists.
    problems : list of str
        Files present but unreadable (one line each).
    """

    path: Path
    summary: dict[str, Any]
    equity: pd.DataFrame | None = None
    returns: pd.Series | None = None
    benchmark: pd.Series | None = None
    folds: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    daily_log: pd.DataFrame | None = None
    attribution: pd.DataFrame | None = None
    evaluations: dict[str, pd.DataFrame] = field(default_factory=dict)
    tearsheet: Path | None = None
    audit: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def _session_index(labels: Any) -> pd.DatetimeIndex:
    """Naive session dates of labels like ``2019-06-04 00:00:00-04:00`` or ``2019-06-04``."""
    import pandas as pd

    return pd.DatetimeIndex(pd.to_datetime([str(v)[:10] for v in labels], format="%Y-%m-%d"))


def load_run(run_dir: str | Path) -> RunFiles:
    """Read a run folder (see :class:`RunFiles`).

    Raises
    ------
    data_feeds.errors.DataSourceError
        No readable ``summary.json`` in ``run_dir``.
    """
    import pandas as pd

    run = Path(run_dir)
    try:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataSourceError(f"{run / 'summary.json'}: cannot read ({exc})") from exc
    out = RunFiles(path=run, summary=summary)

    def csv(name: str) -> pd.DataFrame | None:
        path = run / name
        if not path.is_file():
            return None
        try:
            return pd.read_csv(path)
        except (OSError, ValueError) as exc:
            out.problems.append(f"{path}: {type(exc).__name__}: {exc}")
            return None

    out.equity = csv("equity.csv")
    for name, col, attr in (
        ("oos_returns.csv", "oos_return", "returns"),
        ("benchmark_returns.csv", "benchmark_return", "benchmark"),
    ):
        frame = csv(name)
        if frame is None:
            continue
        if not {"date", col} <= set(frame.columns):
            out.problems.append(f"{run / name}: expected columns date, {col}; got {list(frame)}")
            continue
        setattr(out, attr, pd.Series(frame[col].to_numpy(), index=_session_index(frame["date"])))
    out.folds = csv("folds.csv")
    out.trades = csv("trades.csv")
    out.daily_log = csv("daily_log.csv")
    out.attribution = csv("attribution.csv")
    for path in sorted(run.glob("evaluation_*.csv")):
        frame = csv(path.name)
        if frame is not None:
            out.evaluations[path.stem.removeprefix("evaluation_")] = frame
    if (run / "tearsheet.html").is_file():
        out.tearsheet = run / "tearsheet.html"
    verdict = audit_verdict_path(run)
    if verdict.is_file():
        try:
            out.audit = json.loads(verdict.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out.problems.append(f"{verdict}: {type(exc).__name__}: {exc}")
    return out


# -- Optuna studies -------------------------------------------------------------------------------
def list_studies(storage: str) -> pd.DataFrame:
    """Studies of an Optuna storage (``sqlite:///results/optuna.db``).

    Returns
    -------
    pandas.DataFrame
        ``study, trials, best_value, started`` (UTC), newest first; empty when the storage
        holds none.

    Raises
    ------
    data_feeds.errors.DataSourceError
        A ``sqlite:///`` storage whose file does not exist (never created by a read).
    """
    import optuna
    import pandas as pd

    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise DataSourceError(f"{storage}: no Optuna database (run 'volsuite run' first)")
    summaries = optuna.study.get_all_study_summaries(storage, include_best_trial=True)
    rows = [
        {
            "study": s.study_name,
            "trials": s.n_trials,
            "best_value": s.best_trial.value if s.best_trial is not None else math.nan,
            "started": s.datetime_start,
        }
        for s in summaries
    ]
    frame = pd.DataFrame(rows, columns=["study", "trials", "best_value", "started"])
    return frame.sort_values("started", ascending=False, na_position="last").reset_index(drop=True)


# -- chain store ----------------------------------------------------------------------------------
def with_store(db: str | Path, read: Callable[[ChainStore], T]) -> T:
    """``read(store)`` on the chain store opened read-only (DuckDB ``read_only=True``), closed
    after.

    Raises
    ------
    data_feeds.errors.DataSourceError
        No store at ``db`` (a read never creates one), or it cannot be opened.
    """
    from data_feeds.chain_store import ChainStore

    path = Path(db)
    if not path.is_file():
        raise DataSourceError(f"{path}: no chain store (volsuite ingest chains ... --db {path})")
    with ChainStore(path, read_only=True) as store:
        return read(store)


def _has_table(store: ChainStore, table: str) -> bool:
    n = store.connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchall()[0][0]
    return bool(n)


def store_dates(store: ChainStore, underlying: str = "SPX") -> list[dt.date]:
    """Quote dates of ``underlying`` with stored quotes, ascending."""
    return store.quote_dates(underlying)


def term_structure(
    store: ChainStore, quote_date: Any, model: str = "svi", *, underlying: str = "SPX"
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The stored ATM term structure of one date: per fitted expiry, and its power-law fit.

    Parameters
    ----------
    store : ChainStore
    quote_date : date-like
    model : str
        Surface model of the stored fits (``svi``).
    underlying : str

    Returns
    -------
    (pandas.DataFrame, dict or None)
        Rows ``root, expiration, dte, tte_years, atm_vol, skew_25delta, rmse, status`` of the
        ``fitted_surfaces`` rows with ``status == 'ok'`` sorted by ``tte_years`` (``atm_vol``,
        ``skew_25delta`` decimal; ``rmse`` vol points), and the ``term_structure_params`` row
        (``atm_term_a``, ``atm_term_b``: ``atm_vol(T) = a T^b`` with ``T`` in years; RMSE in vol
        points) or None when the date has none.

    Raises
    ------
    data_feeds.errors.DataSourceError
        Nothing fitted for that date and model (``volsuite surface fit --date D``).
    """
    from data_feeds.surfaces import as_date, load_fitted_surfaces

    day = as_date(quote_date)
    fits = load_fitted_surfaces(store, day, model, underlying=underlying)
    if fits.empty:
        raise DataSourceError(
            f"{store.path}: no {model.upper()} fit of {underlying} on {day} "
            f"(volsuite surface fit --date {day} --model {model})"
        )
    ok = fits[fits["status"] == "ok"]
    table = ok.rename(columns={"symbol": "root", "expiration_date": "expiration"})[
        ["root", "expiration", "dte", "tte_years", "atm_vol", "skew_25delta", "rmse", "status"]
    ].reset_index(drop=True)
    params = None
    if _has_table(store, "term_structure_params"):
        rows = store.connection.execute(
            "SELECT * FROM term_structure_params WHERE symbol = ? AND quote_date = ? "
            "AND model_type = ?",
            [underlying.upper(), day, f"power_law:{model.upper()}"],
        ).df()
        if len(rows):
            params = rows.iloc[0].to_dict()
    return table, params


def term_structure_history(
    store: ChainStore, model: str = "svi", *, underlying: str = "SPX"
) -> pd.DataFrame:
    """``term_structure_params`` of every date (power-law parameters over time), by date.

    Returns
    -------
    pandas.DataFrame
        The table's rows (``quote_date`` as ``datetime.date``, ``atm_term_a``, ``atm_term_b``,
        ``atm_term_rmse``, ``skew_term_a``, ``skew_term_b``, ``num_expirations`` ...); empty when
        none is stored.
    """
    import pandas as pd

    if not _has_table(store, "term_structure_params"):
        return pd.DataFrame()
    frame = store.connection.execute(
        "SELECT * FROM term_structure_params WHERE symbol = ? AND model_type = ? "
        "ORDER BY quote_date",
        [underlying.upper(), f"power_law:{model.upper()}"],
    ).df()
    frame["quote_date"] = [pd.Timestamp(d).date() for d in frame["quote_date"]]
    return frame


def vrp_history(store: ChainStore, model: str = "svi", *, symbol: str = "SPX") -> pd.DataFrame:
    """``vrp_metrics`` rows of ``symbol`` and surface ``model`` by date (implied and realized vol
    decimal, VRP = implied - realized in decimal vol, ``vrp_zscore`` against strictly earlier
    values); empty when none is stored (``volsuite surface vrp``)."""
    import pandas as pd

    if not _has_table(store, "vrp_metrics"):
        return pd.DataFrame()
    cols = {
        r[0]
        for r in store.connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'vrp_metrics'"
        ).fetchall()
    }
    sql = "SELECT * FROM vrp_metrics WHERE symbol = ?"
    params: list[Any] = [symbol.upper()]
    if "surface_model" in cols:
        sql += " AND surface_model = ?"
        params.append(model.upper())
    return store.connection.execute(sql + " ORDER BY date", params).df()


def expiry_bucket_days(text: str) -> int:
    """Days of an expiry bucket like ``30d`` (or ``30``).

    Raises
    ------
    data_feeds.errors.VolsuiteError
        Not ``<positive integer>d``.
    """
    m = re.fullmatch(r"\s*(\d+)\s*d?\s*", text)
    if m is None or int(m.group(1)) <= 0:
        raise VolsuiteError(f"--expiry-bucket must look like 30d (days to expiry), got {text!r}")
    return int(m.group(1))


def param_evolution(
    store: ChainStore, bucket_days: int, model: str = "svi", *, underlying: str = "SPX"
) -> pd.DataFrame:
    """Per quote date, the fitted expiry nearest ``bucket_days`` days to expiry, and its
    parameters: how the ``bucket_days`` smile evolved.

    Parameters
    ----------
    store : ChainStore
    bucket_days : int
        Target days to expiry (calendar days).
    model : str
    underlying : str

    Returns
    -------
    pandas.DataFrame
        ``quote_date, root, expiration, dte, atm_vol, skew_25delta, rmse, max_error,
        butterfly_arbitrage_violations, calendar_arbitrage_violations`` and the raw SVI
        ``svi_a, svi_b, svi_rho, svi_m, svi_sigma`` (total variance in years x vol^2); one row
        per date with a fitted expiry; the nearest expiry by ``|dte - bucket_days|``, ties to the
        shorter one.

    Raises
    ------
    data_feeds.errors.DataSourceError
        No stored fit of ``model`` (``volsuite surface fit --all``).
    """
    from data_feeds.surfaces import load_fitted_surfaces

    fits = load_fitted_surfaces(store, None, model, underlying=underlying)
    if fits.empty:
        raise DataSourceError(
            f"{store.path}: no {model.upper()} fits of {underlying} "
            f"(volsuite surface fit --all --model {model})"
        )
    ok = fits[fits["status"] == "ok"].copy()
    ok["_gap"] = (ok["dte"].astype(float) - bucket_days).abs()
    ok = ok.sort_values(["quote_date", "_gap", "dte"], kind="stable")
    best = ok.groupby("quote_date", sort=True).head(1)
    cols = [
        "quote_date",
        "symbol",
        "expiration_date",
        "dte",
        "atm_vol",
        "skew_25delta",
        "rmse",
        "max_error",
        "butterfly_arbitrage_violations",
        "calendar_arbitrage_violations",
        "svi_a",
        "svi_b",
        "svi_rho",
        "svi_m",
        "svi_sigma",
    ]
    out = best[cols].rename(columns={"symbol": "root", "expiration_date": "expiration"})
    return out.reset_index(drop=True)


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Any) -> str:
    """A one-line unicode chart of ``values`` (min -> ``▁``, max -> ``█``; NaN -> space).

    Eight levels: ``level = round(7 (v - min) / (max - min))``; a constant series is all ``▄``.
    """
    vals = [float(v) for v in values]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return " " * len(vals)
    lo, hi = min(finite), max(finite)
    out = []
    for v in vals:
        if not math.isfinite(v):
            out.append(" ")
        elif hi == lo:
            out.append(SPARK[3])
        else:
            out.append(SPARK[round(7 * (v - lo) / (hi - lo))])
    return "".join(out)


# -- data quality ---------------------------------------------------------------------------------
def missing_sessions(dates: Any) -> list[dt.date]:
    """NYSE sessions between the first and last of ``dates`` that are not among them
    (``exchange_calendars`` XNYS, :func:`data_feeds.calendar.nyse_sessions`)."""
    import pandas as pd

    from data_feeds.calendar import nyse_sessions

    have = sorted({pd.Timestamp(d).date() for d in dates})
    if not have:
        return []
    sessions = nyse_sessions(pd.Timestamp(have[0]), pd.Timestamp(have[-1]))
    return [d.date() for d in sessions if d.date() not in set(have)]


def data_quality(store: ChainStore) -> dict[str, pd.DataFrame]:
    """The data-quality tables of a chain store, per data source.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``sources``: per ``(underlying, data_source)``: ``days`` (stored NYSE sessions),
        ``first``, ``last``, ``roots``, ``expiries_min/median/max`` per day, ``rows``,
        ``quarantined``, ``holiday_snapshots``, ``missing_sessions`` (count);
        ``per_day``: :meth:`ChainStore.info` rows; ``quarantine``: counts by
        ``(data_source, reason)``; ``liquidity``: per data source ``liquid`` and ``illiquid``
        stored rows (``is_liquid``); ``missing``: ``underlying, data_source, date`` of every NYSE
        session between a source's first and last date with no stored quote.
    """
    import pandas as pd

    info = store.info()
    known = info[info["underlying"].notna()]
    rows, missing = [], []
    for (und, source), grp in known.groupby(["underlying", "data_source"], sort=True):
        stored = grp[grp["rows"] > 0]
        days = stored[~stored["holiday"]]
        exp = stored["n_expiries"]
        gaps = missing_sessions(days["quote_date"])
        missing += [{"underlying": und, "data_source": source, "date": d} for d in gaps]
        rows.append(
            {
                "underlying": und,
                "data_source": source,
                "days": len(days),
                "first": stored["quote_date"].min() if len(stored) else None,
                "last": stored["quote_date"].max() if len(stored) else None,
                "roots": ",".join(
                    sorted({r for rs in grp["roots"].dropna() for r in rs.split(",")})
                ),
                "expiries_min": int(exp.min()) if len(exp) else None,
                "expiries_median": float(exp.median()) if len(exp) else None,
                "expiries_max": int(exp.max()) if len(exp) else None,
                "rows": int(grp["rows"].sum()),
                "quarantined": int(grp["quarantined"].sum()),
                "holiday_snapshots": int(grp["holiday"].sum()),
                "missing_sessions": len(gaps),
            }
        )
    liquidity = store.connection.execute(
        "SELECT data_source, count(*) FILTER (WHERE is_liquid) AS liquid, "
        "count(*) FILTER (WHERE NOT is_liquid) AS illiquid FROM raw_options_chains "
        "GROUP BY 1 ORDER BY 1"
    ).df()
    return {
        "sources": pd.DataFrame(rows),
        "per_day": info,
        "quarantine": store.quarantine_summary(),
        "liquidity": liquidity,
        "missing": pd.DataFrame(missing, columns=["underlying", "data_source", "date"]),
    }


# -- paper sessions -------------------------------------------------------------------------------
def list_paper_sessions(paper_dir: str | Path) -> pd.DataFrame:
    """Paper sessions under ``paper_dir`` (``results/paper``): folders with an ``audit.jsonl``.

    Returns
    -------
    pandas.DataFrame
        ``session, running, updated, venue, killed, path`` from each ``state.json``
        (:func:`experiments.paper_state.read_state`; ``running`` = its process is alive), most
        recently updated first; a session without a state file has them empty.
    """
    import pandas as pd

    from experiments.paper_state import read_state

    root = Path(paper_dir)
    rows = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder / "audit.jsonl").is_file():
            continue
        state = read_state(folder) or {}
        rows.append(
            {
                "session": folder.name,
                "running": bool(state.get("alive", False)),
                "updated": state.get("updated"),
                "venue": state.get("venue"),
                "killed": state.get("killed"),
                "path": str(folder),
            }
        )
    frame = pd.DataFrame(rows, columns=["session", "running", "updated", "venue", "killed", "path"])
    return frame.sort_values("updated", ascending=False, na_position="last").reset_index(drop=True)


def load_paper_session(folder: str | Path) -> dict[str, Any]:
    """A paper session's files: ``state`` (dict or None), ``summary`` (``summary.json`` written
    at its end, or None), ``audit`` (:func:`brokers.live.audit.read_audit`), ``orders``,
    ``fills``, ``positions`` (the session's CSV files, else derived from the audit log's
    ``order_submitted`` / ``fill`` events while it runs) and ``problems``.

    Raises
    ------
    data_feeds.errors.DataValidationError
        A line of ``audit.jsonl`` is not a JSON object (names the file and line).
    """
    import pandas as pd

    from brokers.live.audit import read_audit
    from experiments.paper_state import read_state

    path = Path(folder)
    out: dict[str, Any] = {"state": read_state(path), "summary": None, "problems": []}
    audit = read_audit(path / "audit.jsonl") if (path / "audit.jsonl").is_file() else None
    out["audit"] = audit if audit is not None else pd.DataFrame()
    if (path / "summary.json").is_file():
        try:
            out["summary"] = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out["problems"].append(f"{path / 'summary.json'}: {exc}")
    events = out["audit"]["event"] if "event" in out["audit"] else pd.Series(dtype=object)
    for name, event in (("orders", "order_submitted"), ("fills", "fill"), ("positions", None)):
        csv = path / f"{name}.csv"
        if csv.is_file():
            try:
                out[name] = pd.read_csv(csv)
                continue
            except (OSError, ValueError) as exc:
                out["problems"].append(f"{csv}: {exc}")
        out[name] = (
            out["audit"][events == event].reset_index(drop=True)
            if event is not None
            else pd.DataFrame()
        )
    return out
