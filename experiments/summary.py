"""``volsuite summary``: one table over all strategies from their newest ``volsuite run`` folders.

``volsuite summary [--configs GLOB ...] [--results-dir DIR] [--out DIR] [--run [--rerun]
[--trials N] [--no-mlflow]]``

For every experiment config (default ``experiments/configs/*.toml``) the newest run folder
``<results_dir>/<experiment.name>/<run id>/`` (written by :func:`experiments.runner.run_experiment`)
is read and turned into one row; the table goes to ``<out>/strategy_summary.csv`` and ``.md``
(default ``results/summary/``; each file written to a temporary file and renamed into place) and is
printed. With ``--run`` the configs without a run folder (all of them with ``--rerun``) are run
first. A config that does not validate, has no run folder, or whose run fails is a row with a
``status`` saying why, never a crash.

Definitions (dollars unless said otherwise)
-------------------------------------------
``sharpe``, ``total_return``, ``max_drawdown``
    :func:`experiments.metrics.sharpe` / ``total_return`` / ``max_drawdown`` of the stitched
    out-of-sample daily returns in ``oos_returns.csv`` (Sharpe annualized with 252 sessions,
    ``rf = 0``); the Sharpe is checked against ``summary.json`` (a mismatch above 1e-9 is a
    ``warn`` status).
``days``
    Out-of-sample sessions (rows of ``oos_returns.csv``).
equity
    Each fold's test window is a fresh backtest starting from ``[experiment] initial_cash``
    (:func:`experiments.walkforward.run_walkforward`), so the equity of a day is the initial cash
    compounded by that fold's returns up to the day (folds from ``folds.csv``).
``net_pnl``
    Sum over folds of ``initial_cash * (prod(1 + r) - 1)``.
``trades``
    Opening orders: an order is the fills sharing ``fold``, ``time`` (``date`` for share-only
    runs) and ``tag``; it is opening when at least one of its fills makes the absolute position
    in its contract grow or change sign (positions tracked per fold through fills and
    settlements). Counted on the run's primary instrument: option fills when the run has any
    (delta-hedge share trades and sales of assigned shares are then not trades), else share fills
    (``ou_pairs``). A two-leg spread opened in one order is one trade; its closing order is not.
``turnover``
    Traded notional per year over mean equity: ``notional / mean(equity) / (days / 252)``, times
    per year. Notional of an option fill ``|price| * 100 * |quantity|`` (premium, multiplier 100
    for SPX, SPXW and SPY), of a share fill ``|price * shares|`` (SPX hedge units in index points).
    Settlements, exercises and assignments are not trades and add no notional.
``costs`` (>= 0)
    ``cost_commission`` (option commissions and settlement fees, the ``commission`` column of
    option fill and settlement rows) + ``cost_slippage`` (option fills vs mid:
    ``quantity * (price - (bid + ask) / 2) * 100``, positive for buys above and sells below the
    mid; the proxy quotes of ``zero_dte_straddle``'s VIX-proxy market count as quotes) +
    ``cost_shares`` (the ``commission`` column of share fills: the whole
    :class:`brokers.share_costs.ShareCostScheme` cost for ``ou_pairs`` (half spread, impact,
    commission), the per-share commission for the options broker's share trades) +
    ``cost_hedge_spread`` (delta-hedge half spreads, which ``trades.csv`` cannot show since it has
    no mid of a share trade: ``-summary.json metrics["oos_cost.hedge_spread"]`` written by
    :func:`experiments.runner.reported_costs`; a run with ``delta hedge`` share fills and no such
    metric gets a ``warn`` status).
``gross_pnl``
    ``net_pnl + costs`` (P&L before costs).
``costs_share``
    ``costs / |gross_pnl|``: the share of the gross P&L eaten by costs, >= 0 whatever the sign of
    the gross P&L (read it with ``gross_pnl``: above 1 the costs turned a gross gain into a net
    loss; with a gross loss the costs add to it); 0 when ``costs`` is 0; NaN (``n/a``) when
    ``gross_pnl`` is 0 and costs are not.
``status``
    ``ok``; ``warn: ...`` (row computed, something to check); ``no run: ...``; ``invalid config:
    ...``; ``missing data: ...`` (``--run`` and a data source cannot be read); ``run failed:
    ...``; ``bad run folder: ...`` (a file is missing or unreadable).
"""

from __future__ import annotations

import glob
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from data_feeds.errors import DataSourceError, DataValidationError, VolsuiteError
from experiments import metrics as perf
from experiments.config import ExperimentSection, TrackingConfig, load_config

console = Console()
err_console = Console(stderr=True)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
OPTION_MULTIPLIER = 100.0
#: A run folder name: ``<UTC stamp>-<6 hex digits>`` (:func:`experiments.runner.run_experiment`).
RUN_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")
SHARPE_TOL = 1e-9
RUN_FILES = ("summary.json", "oos_returns.csv", "trades.csv")

COLUMNS = [
    "experiment",
    "strategy",
    "market_source",
    "oos_start",
    "oos_end",
    "days",
    "sharpe",
    "total_return",
    "max_drawdown",
    "trades",
    "turnover",
    "net_pnl",
    "gross_pnl",
    "costs",
    "costs_share",
    "cost_commission",
    "cost_slippage",
    "cost_shares",
    "cost_hedge_spread",
    "status",
    "config",
    "run_dir",
]


class RunFolderError(VolsuiteError):
    """A run folder lacks a file the summary needs, or a file has the wrong layout."""


# -- the run folder -------------------------------------------------------------------------------
def newest_run(exp_dir: Path) -> Path | None:
    """The newest run folder of an experiment.

    Parameters
    ----------
    exp_dir : pathlib.Path
        ``<results_dir>/<experiment.name>``.

    Returns
    -------
    pathlib.Path or None
        The sub-folder with the largest run id (``YYYYMMDDTHHMMSS-xxxxxx``, UTC, so the name order
        is the time order); None when there is none. Temporary folders of a run in progress
        (``.<run id>-...``) and other names are ignored.
    """
    if not exp_dir.is_dir():
        return None
    runs = sorted(p for p in exp_dir.iterdir() if p.is_dir() and RUN_ID.match(p.name))
    return runs[-1] if runs else None


def _session_dates(labels: Iterable[Any]) -> pd.DatetimeIndex:
    """Session dates (naive midnight) of labels like ``2019-06-04 00:00:00-04:00``."""
    return pd.DatetimeIndex(pd.to_datetime([str(v)[:10] for v in labels], format="%Y-%m-%d"))


def read_oos_returns(path: Path) -> pd.Series:
    """``oos_returns.csv`` as a float series indexed by naive session date.

    Raises
    ------
    RunFolderError
        No ``date`` / ``oos_return`` column, or a duplicated date.
    """
    frame = pd.read_csv(path)
    if not {"date", "oos_return"} <= set(frame.columns):
        raise RunFolderError(f"{path}: expected columns date, oos_return; got {list(frame)}")
    out = pd.Series(
        frame["oos_return"].astype(float).to_numpy(), index=_session_dates(frame["date"])
    )
    if out.index.has_duplicates:
        raise RunFolderError(f"{path}: duplicated date {out.index[out.index.duplicated()][0]}")
    return out.rename("oos_return")


def fold_ids(returns: pd.Series, folds: pd.DataFrame | None) -> np.ndarray:
    """The fold of each out-of-sample date.

    Parameters
    ----------
    returns : pandas.Series
        Daily returns indexed by session date (:func:`read_oos_returns`).
    folds : pandas.DataFrame or None
        ``folds.csv`` (``test_start``, ``test_end`` dates, inclusive). None or empty: one fold.

    Returns
    -------
    numpy.ndarray
        int, shape ``(len(returns),)``: the row number of the fold whose test window holds the
        date.

    Raises
    ------
    RunFolderError
        A date outside every test window.
    """
    ids = np.zeros(len(returns), dtype=int)
    if folds is None or folds.empty:
        return ids
    ids[:] = -1
    for k, row in enumerate(folds.itertuples()):
        start, end = pd.Timestamp(row.test_start), pd.Timestamp(row.test_end)
        ids[(returns.index >= start) & (returns.index <= end)] = k
    if (ids < 0).any():
        day = returns.index[ids < 0][0].date()
        raise RunFolderError(f"oos_returns.csv: {day} is outside every test window of folds.csv")
    return ids


def fold_equity(returns: pd.Series, folds: pd.DataFrame | None, cash: float) -> pd.Series:
    """End-of-day account value of the out-of-sample backtests, dollars.

    Parameters
    ----------
    returns : pandas.Series
        Daily simple returns (decimal), indexed by session date (:func:`read_oos_returns`).
    folds : pandas.DataFrame or None
        ``folds.csv``: each fold's test window is a fresh backtest from ``cash``
        (:func:`experiments.walkforward.run_walkforward`). None: one window over the whole series.
    cash : float
        ``[experiment] initial_cash``, dollars.

    Returns
    -------
    pandas.Series
        ``cash * cumprod(1 + r)`` within each fold, same index as ``returns``.

    Raises
    ------
    RunFolderError
        A return date outside every fold's test window.
    """
    growth = (1.0 + returns.fillna(0.0)).groupby(fold_ids(returns, folds)).cumprod()
    return (cash * growth).rename("equity")


def net_pnl(returns: pd.Series, folds: pd.DataFrame | None, cash: float) -> float:
    """Dollars gained out of sample: ``sum over folds of cash * (prod(1 + r) - 1)``.

    Same inputs as :func:`fold_equity`.
    """
    growth = (1.0 + returns.fillna(0.0)).groupby(fold_ids(returns, folds)).prod()
    return float((cash * (growth - 1.0)).sum())


# -- trades.csv -----------------------------------------------------------------------------------
def _fills(trades: pd.DataFrame) -> pd.DataFrame:
    """Normalize the two trades.csv layouts to one frame of fills and settlements.

    Options broker layout (``event`` column: fill / settlement / stock_fill) or share layout
    (``ou_pairs``: ``fold, date, leg, size, price, commission, status``). Columns of the result:
    ``fold, time, tag, key, kind`` (option / share / settlement), ``quantity, price, bid, ask,
    commission``; rows of not-completed share orders (size 0) are dropped.
    """
    if "event" in trades:
        t = trades
        kind = t["event"].map({"fill": "option", "stock_fill": "share", "settlement": "settlement"})
        unknown = kind.isna()
        if unknown.any():
            raise RunFolderError(
                f"trades.csv: unknown event {t.loc[unknown, 'event'].iloc[0]!r} "
                "(expected fill, stock_fill or settlement)"
            )
        key = (
            t["root"].astype(str)
            + "|"
            + t.get("expiration", pd.Series("", index=t.index)).astype(str)
            + "|"
            + t.get("strike", pd.Series("", index=t.index)).astype(str)
            + "|"
            + t.get("right", pd.Series("", index=t.index)).astype(str)
        )
        out = pd.DataFrame(
            {
                "fold": t.get("fold", pd.Series(0, index=t.index)),
                "time": t["time"].astype(str),
                "tag": t.get("tag", pd.Series("", index=t.index)).fillna("").astype(str),
                "key": key.where(kind != "share", "shares|" + t["root"].astype(str)),
                "kind": kind,
                "quantity": t["quantity"].astype(float),
                "price": t["price"].astype(float),
                "bid": t.get("bid", pd.Series(np.nan, index=t.index)).astype(float),
                "ask": t.get("ask", pd.Series(np.nan, index=t.index)).astype(float),
                "commission": t["commission"].fillna(0.0).astype(float),
            }
        )
        return out
    need = {"date", "leg", "size", "price", "commission"}
    if not need <= set(trades.columns):
        raise RunFolderError(
            f"trades.csv: expected an 'event' column (options broker) or columns {sorted(need)} "
            f"(share fills); got {list(trades.columns)}"
        )
    t = trades[trades["size"].astype(float) != 0.0]
    if "status" in t:
        t = t[t["status"] == "Completed"]
    return pd.DataFrame(
        {
            "fold": t.get("fold", pd.Series(0, index=t.index)),
            "time": t["date"].astype(str),
            "tag": "",
            "key": "shares|" + t["leg"].astype(str),
            "kind": "share",
            "quantity": t["size"].astype(float),
            "price": t["price"].astype(float),
            "bid": np.nan,
            "ask": np.nan,
            "commission": t["commission"].fillna(0.0).astype(float),
        }
    ).reset_index(drop=True)


def opening_orders(fills: pd.DataFrame, kind: str) -> int:
    """Number of opening orders of one instrument kind (see the module docstring, ``trades``).

    Parameters
    ----------
    fills : pandas.DataFrame
        :func:`_fills` output in file (time) order.
    kind : {"option", "share"}
        The instrument counted; settlements always update the option positions.

    Returns
    -------
    int
    """
    opening: set[tuple[Any, str, str]] = set()
    for _, grp in fills.groupby("fold", sort=False):
        pos: dict[str, float] = {}
        for row in grp.itertuples():
            before = pos.get(row.key, 0.0)
            if row.kind == "settlement":  # the settled quantity leaves the book
                pos[row.key] = before - row.quantity
                continue
            after = before + row.quantity
            pos[row.key] = after
            if row.kind == kind and (abs(after) > abs(before) + 1e-9 or before * after < 0):
                opening.add((row.fold, row.time, row.tag))
    return len(opening)


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    """Trades, notional and costs of one run's ``trades.csv`` (module docstring definitions).

    Parameters
    ----------
    trades : pandas.DataFrame
        ``trades.csv`` as read by :func:`pandas.read_csv` (either layout).

    Returns
    -------
    dict
        ``trades`` (opening orders), ``notional`` (dollars), ``cost_commission``,
        ``cost_slippage``, ``cost_shares`` (dollars, as charged), ``hedge_fills`` (share fills
        tagged ``delta hedge``) and ``unquoted_fills`` (option fills without a bid/ask, whose
        slippage is unknown and counted as 0).

    Raises
    ------
    RunFolderError
        Unknown layout or event.
    """
    if trades.empty:
        zero = ("trades", "notional", "cost_commission", "cost_slippage", "cost_shares")
        return {k: 0.0 for k in (*zero, "hedge_fills", "unquoted_fills")}
    f = _fills(trades)
    opt = f[f["kind"] == "option"]
    shares = f[f["kind"] == "share"]
    settle = f[f["kind"] == "settlement"]
    quoted = opt["bid"].notna() & opt["ask"].notna()
    mid = 0.5 * (opt["bid"] + opt["ask"])
    slippage = (opt["quantity"] * (opt["price"] - mid) * OPTION_MULTIPLIER)[quoted]
    notional = float((opt["price"].abs() * OPTION_MULTIPLIER * opt["quantity"].abs()).sum())
    notional += float((shares["price"] * shares["quantity"]).abs().sum())
    return {
        "trades": float(opening_orders(f, "option" if len(opt) else "share")),
        "notional": notional,
        "cost_commission": float(opt["commission"].sum() + settle["commission"].sum()),
        "cost_slippage": float(slippage.sum()),
        "cost_shares": float(shares["commission"].sum()),
        "hedge_fills": float((shares["tag"] == "delta hedge").sum()),
        "unquoted_fills": float((~quoted).sum()),
    }


def costs_share(costs: float, gross: float) -> float:
    """``costs / |gross|``; 0 when ``costs`` is 0, NaN when ``gross`` is 0 and costs are not."""
    if costs == 0:
        return 0.0
    return float("nan") if gross == 0 else costs / abs(gross)


# -- one row ---------------------------------------------------------------------------------------
def _initial_cash(run_dir: Path) -> float:
    """``[experiment] initial_cash`` of the run's ``config.toml`` (model default if absent)."""
    default = float(ExperimentSection.model_fields["initial_cash"].default)
    path = run_dir / "config.toml"
    if not path.exists():
        return default
    try:
        return float(
            tomllib.loads(path.read_text()).get("experiment", {}).get("initial_cash", default)
        )
    except (tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        raise RunFolderError(f"{path}: experiment.initial_cash unreadable ({exc})") from None


def summarize_run(run_dir: Path) -> dict[str, Any]:
    """One summary row from a ``volsuite run`` folder.

    Parameters
    ----------
    run_dir : pathlib.Path
        ``<results_dir>/<experiment>/<run id>/`` with ``summary.json``, ``oos_returns.csv``,
        ``trades.csv`` (``folds.csv`` and ``config.toml`` used when present).

    Returns
    -------
    dict
        The :data:`COLUMNS` except ``config`` (module docstring definitions).

    Raises
    ------
    RunFolderError
        A needed file is missing or malformed.
    """
    import json

    missing = [name for name in RUN_FILES if not (run_dir / name).exists()]
    if missing:
        raise RunFolderError(f"{run_dir}: missing {', '.join(missing)}")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{run_dir / 'summary.json'}: invalid JSON ({exc})") from None
    reported = summary.get("metrics", {})
    returns = read_oos_returns(run_dir / "oos_returns.csv")
    folds = pd.read_csv(run_dir / "folds.csv") if (run_dir / "folds.csv").exists() else None
    cash = _initial_cash(run_dir)
    equity = fold_equity(returns, folds, cash)
    net = net_pnl(returns, folds, cash)
    try:
        trades = pd.read_csv(run_dir / "trades.csv", low_memory=False)
    except pd.errors.EmptyDataError:  # a run without any fill writes an empty file
        trades = pd.DataFrame()
    stats = trade_stats(trades)
    hedge_spread = reported.get("oos_cost.hedge_spread")
    cost_hedge = 0.0 - float(hedge_spread) if hedge_spread is not None else 0.0
    cost_parts = {
        "cost_commission": stats["cost_commission"],
        "cost_slippage": stats["cost_slippage"],
        "cost_shares": stats["cost_shares"],
        "cost_hedge_spread": cost_hedge,
    }
    costs = float(sum(cost_parts.values()))
    gross = net + costs
    days = len(returns)
    mean_equity = float(equity.mean()) if days else float("nan")
    years = days / perf.PERIODS
    turnover = stats["notional"] / mean_equity / years if days and mean_equity > 0 else float("nan")
    sharpe = perf.sharpe(returns)
    warnings = []
    if "sharpe" in reported and not math.isclose(
        sharpe, float(reported["sharpe"]), rel_tol=0.0, abs_tol=SHARPE_TOL
    ):
        warnings.append(
            f"Sharpe {sharpe:.6g} from oos_returns.csv != {float(reported['sharpe']):.6g} in "
            "summary.json"
        )
    if stats["hedge_fills"] and hedge_spread is None:
        warnings.append(
            f"{int(stats['hedge_fills'])} delta-hedge share fills but no oos_cost.hedge_spread in "
            "summary.json (run predates it): hedge half spreads not in costs"
        )
    if stats["unquoted_fills"]:
        warnings.append(f"{int(stats['unquoted_fills'])} option fills without bid/ask: slippage 0")
    return {
        "experiment": summary.get("experiment", run_dir.parent.name),
        "strategy": summary.get("strategy", ""),
        "market_source": summary.get("market_source", ""),
        "oos_start": str(returns.index[0].date()) if days else "",
        "oos_end": str(returns.index[-1].date()) if days else "",
        "days": days,
        "sharpe": sharpe,
        "total_return": perf.total_return(returns),
        "max_drawdown": perf.max_drawdown(returns),
        "trades": int(stats["trades"]),
        "turnover": turnover,
        "net_pnl": net,
        "gross_pnl": gross,
        "costs": costs,
        "costs_share": costs_share(costs, gross),
        **cost_parts,
        "status": "warn: " + "; ".join(warnings) if warnings else "ok",
        "run_dir": str(run_dir),
    }


def _status_row(experiment: str, strategy: str, config: Path, status: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, None)
    row.update(experiment=experiment, strategy=strategy, config=str(config), status=status)
    return row


def _names(path: Path) -> tuple[str, str]:
    """Experiment and strategy names read without validation (for rows of invalid configs)."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return path.stem, ""
    return (
        str(raw.get("experiment", {}).get("name", path.stem)),
        str(raw.get("strategy", {}).get("name", "")),
    )


def _failure_status(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if isinstance(exc, DataSourceError | DataValidationError):
        return f"missing data: {msg}"
    return f"run failed: {type(exc).__name__}: {msg}"


def summary_row(
    config_path: Path,
    *,
    results_dir: Path | None = None,
    run: bool = False,
    rerun: bool = False,
    trials: int | None = None,
    track: bool = True,
    runner: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """The summary row of one experiment config (never raises for a bad config, data or run).

    Parameters
    ----------
    config_path : pathlib.Path
        Experiment config (TOML).
    results_dir : pathlib.Path, optional
        Where run folders are looked up (default: the config's ``[tracking] results_dir``).
    run, rerun : bool
        ``run``: run the config first when it has no run folder; ``rerun``: run it anyway.
    trials : int, optional
        Optuna trials per fold of such a run (default: the config's).
    track : bool
        Log such a run to MLflow.
    runner : callable, optional
        :func:`experiments.runner.run_experiment` (injectable for tests).

    Returns
    -------
    dict
        :data:`COLUMNS` -> value; ``status`` says what happened.
    """
    experiment, strategy = _names(config_path)
    try:
        config = load_config(config_path)
    except VolsuiteError as exc:
        return _status_row(experiment, strategy, config_path, f"invalid config: {exc}")
    except Exception as exc:  # e.g. a strategy module that fails to import: a row, not a crash
        status = f"invalid config: {type(exc).__name__}: {exc}"
        return _status_row(experiment, strategy, config_path, status)
    experiment, strategy = config.experiment.name, config.strategy.name
    base = Path(results_dir or config.tracking.results_dir or TrackingConfig().results_dir)
    run_dir = newest_run(base / experiment)
    if run and (rerun or run_dir is None):
        if runner is None:
            from experiments.runner import run_experiment as runner
        try:
            run_dir = runner(config_path, trials=trials, track=track).run_dir
        except Exception as exc:  # any failure of one config is a row, not a crash
            return _status_row(experiment, strategy, config_path, _failure_status(exc))
    if run_dir is None:
        return _status_row(
            experiment,
            strategy,
            config_path,
            f"no run: no run folder under {base / experiment} (volsuite run {config_path}, or "
            "volsuite summary --run)",
        )
    try:
        row = summarize_run(run_dir)
    except (RunFolderError, OSError, ValueError, KeyError) as exc:
        row = _status_row(experiment, strategy, config_path, f"bad run folder: {exc}")
        row["run_dir"] = str(run_dir)
        return row
    row["config"] = str(config_path)
    return row


def resolve_configs(patterns: Sequence[str] | None) -> list[Path]:
    """Config paths from globs / paths (default every ``experiments/configs/*.toml``), sorted.

    Raises
    ------
    VolsuiteError
        A pattern matches no file.
    """
    if not patterns:
        return sorted(CONFIG_DIR.glob("*.toml"))
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(Path(m) for m in glob.glob(pattern)) if set(pattern) & set("*?[") else []
        if not matches and Path(pattern).is_file():
            matches = [Path(pattern)]
        if not matches:
            raise VolsuiteError(f"--configs: {pattern!r} matches no config file")
        found.extend(m for m in matches if m not in found)
    return found


def summary_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows of :func:`summary_row` as a frame with :data:`COLUMNS` (``days``, ``trades`` as
    nullable integers: empty for status-only rows)."""
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    for col in ("days", "trades"):
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    return frame


def build_summary(configs: Sequence[Path], **kwargs: Any) -> pd.DataFrame:
    """One row per config (:func:`summary_row` with ``kwargs``), columns :data:`COLUMNS`."""
    return summary_frame([summary_row(Path(c), **kwargs) for c in configs])


# -- output ----------------------------------------------------------------------------------------
def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in ``path``'s folder, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is as readable as any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fmt(value: Any, kind: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a" if kind != "text" else ""
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "x":
        return f"{value:.2f}"
    if kind == "int":
        return f"{int(value)}"
    return str(value)


#: Columns of the printed and Markdown tables: (column, header, format).
DISPLAY = [
    ("experiment", "experiment", "text"),
    ("strategy", "strategy", "text"),
    ("oos_start", "OOS start", "text"),
    ("oos_end", "OOS end", "text"),
    ("days", "days", "int"),
    ("sharpe", "Sharpe", "x"),
    ("total_return", "total return", "pct"),
    ("max_drawdown", "max DD", "pct"),
    ("trades", "trades", "int"),
    ("turnover", "turnover /yr", "x"),
    ("gross_pnl", "gross P&L $", "money"),
    ("costs", "costs $", "money"),
    ("costs_share", "costs/|gross|", "pct"),
    ("status", "status", "text"),
]


def to_markdown(frame: pd.DataFrame) -> str:
    """The summary as a Markdown table plus the definitions (module docstring, in short)."""
    lines = [
        "# Strategy run summary",
        "",
        "| " + " | ".join(h.replace("|", "\\|") for _, h, _ in DISPLAY) + " |",
        "|" + "|".join("---" if k == "text" else "---:" for _, _, k in DISPLAY) + "|",
    ]
    for row in frame.to_dict("records"):
        cells = [_fmt(row[c], k).replace("|", "\\|") for c, _, k in DISPLAY]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Sharpe: annualized (252), rf = 0, from oos_returns.csv. trades: opening orders of the "
        "primary instrument (options, else shares). turnover: traded notional (options |premium| "
        "x 100 x qty, shares |price x shares|) / mean equity, per year. costs: commissions + "
        "settlement fees + option slippage vs mid + share cost model + hedge half spreads; "
        "gross P&L = net + costs; costs/|gross| >= 0 (n/a when gross is 0). Definitions: "
        "`experiments/summary.py`.",
        "",
    ]
    return "\n".join(lines)


def write_summary(frame: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """Write ``strategy_summary.csv`` and ``strategy_summary.md`` into ``out_dir`` atomically.

    Returns
    -------
    tuple of pathlib.Path
        The CSV and Markdown paths.
    """
    csv_path, md_path = out_dir / "strategy_summary.csv", out_dir / "strategy_summary.md"
    _write_atomic(csv_path, frame.to_csv(index=False))
    _write_atomic(md_path, to_markdown(frame))
    return csv_path, md_path


def rich_table(frame: pd.DataFrame) -> Table:
    """The summary as a rich table (:data:`DISPLAY` columns)."""
    table = Table(title="strategy run summary (out-of-sample)", title_justify="left")
    for _, header, kind in DISPLAY:
        table.add_column(header, justify="left" if kind == "text" else "right", overflow="fold")
    for row in frame.to_dict("records"):
        status = str(row["status"])
        style = "green" if status == "ok" else "yellow" if status.startswith("warn") else "red"
        cells = [escape(_fmt(row[c], k)) for c, _, k in DISPLAY]
        cells[-1] = f"[{style}]{escape(status)}[/]"
        table.add_row(*cells)
    return table


# -- the command -----------------------------------------------------------------------------------
def summary_cmd(
    configs: Annotated[
        list[str] | None,
        typer.Option(
            "--configs",
            help="Config files or globs (repeatable; default experiments/configs/*.toml).",
        ),
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option(
            "--results-dir", help="Where run folders are (default: each config's results_dir)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default <results-dir or results>/summary)."),
    ] = None,
    run: Annotated[
        bool, typer.Option("--run", help="First run the configs that have no run folder.")
    ] = False,
    rerun: Annotated[bool, typer.Option("--rerun", help="With --run: run every config.")] = False,
    trials: Annotated[
        int | None, typer.Option(help="Optuna trials per fold of those runs.")
    ] = None,
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not log those runs to MLflow.")
    ] = False,
) -> None:
    """Summarize the newest run of every experiment config into one table (results/summary/)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        paths = resolve_configs(configs)
    except VolsuiteError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=2) from None
    if not paths:
        err_console.print(f"[bold red]error:[/] no config in {CONFIG_DIR}", highlight=False)
        raise typer.Exit(code=2)
    rows = []
    for path in paths:
        if run:
            console.print(f"[dim]config[/] {escape(str(path))}", highlight=False)
        rows.append(
            summary_row(
                path,
                results_dir=results_dir,
                run=run or rerun,
                rerun=rerun,
                trials=trials,
                track=not no_mlflow,
            )
        )
    frame = summary_frame(rows)
    target = out or Path(results_dir or TrackingConfig().results_dir) / "summary"
    csv_path, md_path = write_summary(frame, target)
    console.print(rich_table(frame))
    console.print(f"written    {csv_path}\n           {md_path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``volsuite summary`` to ``app`` (``experiments.cli.app`` or any typer app)."""
    app.command("summary")(summary_cmd)


__all__ = [
    "COLUMNS",
    "build_summary",
    "costs_share",
    "fold_equity",
    "fold_ids",
    "net_pnl",
    "newest_run",
    "opening_orders",
    "register",
    "summarize_run",
    "summary_frame",
    "summary_row",
    "trade_stats",
    "write_summary",
]
