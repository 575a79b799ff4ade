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

Definitions
-----------
Every number comes from the run's ``summary.json`` (``metrics``), which
:func:`experiments.metrics.run_metrics` computed once when the run finished; the definitions are in
``experiments/metrics.py`` and docs/metrics.md (Sharpe annualized with 252 sessions, rf = 0, on the
one continuous out-of-sample account; ``trades`` = opening orders; ``turnover``; ``costs`` and
``costs_share``; ``deflated_sharpe``; ``pbo``). The Sharpe ratio is re-computed from
``oos_returns.csv`` as a check (a mismatch above 1e-9 is a ``warn`` status). A run whose ``sample``
is "insufficient sample (...)" shows that text instead of its Sharpe ratio and interval in the
printed and Markdown tables (the CSV keeps the numbers and the ``sample`` column).
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from data_feeds.errors import DataSourceError, DataValidationError, VolsuiteError

if TYPE_CHECKING:  # imported where used: `volsuite --help` does not load pandas
    import pandas as pd

console = Console()
err_console = Console(stderr=True)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: A run folder name: ``<UTC stamp>-<6 hex digits>`` (:func:`experiments.runner.run_experiment`).
RUN_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")
SHARPE_TOL = 1e-9
RUN_FILES = ("summary.json", "oos_returns.csv")

COLUMNS = [
    "experiment",
    "strategy",
    "market_source",
    "oos_start",
    "oos_end",
    "days",
    "sharpe",
    "sharpe_ci_low",
    "sharpe_ci_high",
    "deflated_sharpe",
    "pbo",
    "oos_is_sharpe_ratio",
    "min_backtest_years",
    "sample",
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
    "cost_spread_fraction",
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
    import pandas as pd
    return pd.DatetimeIndex(pd.to_datetime([str(v)[:10] for v in labels], format="%Y-%m-%d"))


def read_oos_returns(path: Path) -> pd.Series:
    """``oos_returns.csv`` as a float series indexed by naive session date.

    Raises
    ------
    RunFolderError
        No ``date`` / ``oos_return`` column, or a duplicated date.
    """
    import pandas as pd
    frame = pd.read_csv(path)
    if not {"date", "oos_return"} <= set(frame.columns):
        raise RunFolderError(f"{path}: expected columns date, oos_return; got {list(frame)}")
    out = pd.Series(
        frame["oos_return"].astype(float).to_numpy(), index=_session_dates(frame["date"])
    )
    if out.index.has_duplicates:
        raise RunFolderError(f"{path}: duplicated date {out.index[out.index.duplicated()][0]}")
    return out.rename("oos_return")


# -- one row ---------------------------------------------------------------------------------------
def summarize_run(run_dir: Path) -> dict[str, Any]:
    """One summary row from a ``volsuite run`` folder: the run's own ``summary.json`` metrics.

    Parameters
    ----------
    run_dir : pathlib.Path
        ``<results_dir>/<experiment>/<run id>/`` with ``summary.json`` and ``oos_returns.csv``.

    Returns
    -------
    dict
        The :data:`COLUMNS` except ``config``.

    Raises
    ------
    RunFolderError
        A needed file is missing or malformed, or ``summary.json`` predates the one metrics
        source (no ``final_equity``: rerun the config).
    """
    import json

    from experiments import metrics as perf

    missing = [name for name in RUN_FILES if not (run_dir / name).exists()]
    if missing:
        raise RunFolderError(f"{run_dir}: missing {', '.join(missing)}")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{run_dir / 'summary.json'}: invalid JSON ({exc})") from None
    m = summary.get("metrics", {})
    if "final_equity" not in m:
        raise RunFolderError(
            f"{run_dir / 'summary.json'}: written before the continuous account (no "
            "metrics.final_equity); rerun the config (volsuite summary --run --rerun)"
        )
    returns = read_oos_returns(run_dir / "oos_returns.csv")
    warnings = []
    sharpe = perf.sharpe(returns)
    if not math.isclose(sharpe, float(m["sharpe"]), rel_tol=0.0, abs_tol=SHARPE_TOL):
        warnings.append(
            f"Sharpe {sharpe:.6g} from oos_returns.csv != {float(m['sharpe']):.6g} in summary.json"
        )
    if m.get("unquoted_fills"):
        warnings.append(f"{int(m['unquoted_fills'])} option fills without bid/ask: slippage 0")
    row = {c: m.get(c) for c in COLUMNS if c in m}
    row.update(
        experiment=summary.get("experiment", run_dir.parent.name),
        strategy=summary.get("strategy", ""),
        market_source=summary.get("market_source", ""),
        oos_start=summary.get("oos_start", ""),
        oos_end=summary.get("oos_end", ""),
        status="warn: " + "; ".join(warnings) if warnings else "ok",
        run_dir=str(run_dir),
    )
    return row


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
    from experiments.config import TrackingConfig, load_config
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
    import pandas as pd
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    for col in ("days", "trades"):
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    return frame


def build_summary(configs: Sequence[Path], **kwargs: Any) -> pd.DataFrame:
    """One row per config (:func:`summary_row` with ``kwargs``), columns :data:`COLUMNS`."""
    return summary_frame([summary_row(Path(c), **kwargs) for c in configs])


# -- output ----------------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
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
    import pandas as pd
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


def display_cells(row: Mapping[str, Any]) -> list[str]:
    """The :data:`DISPLAY` cells of one row; an insufficient sample replaces the Sharpe ratio
    and its interval by the ``sample`` note."""
    import pandas as pd
    cells = []
    sample = row.get("sample")
    note = sample if isinstance(sample, str) and sample else None  # a frame holds NaN for None
    for col, _, kind in DISPLAY:
        if col in ("sharpe", "sharpe_ci") and note:
            cells.append(note if col == "sharpe" else "")
        elif kind == "ci":
            lo, hi = row.get("sharpe_ci_low"), row.get("sharpe_ci_high")
            cells.append(
                "n/a"
                if lo is None or hi is None or pd.isna(lo) or pd.isna(hi)
                else f"[{lo:.2f}, {hi:.2f}]"
            )
        else:
            cells.append(_fmt(row.get(col), kind))
    return cells


#: Columns of the printed and Markdown tables: (column, header, format).
DISPLAY = [
    ("experiment", "experiment", "text"),
    ("strategy", "strategy", "text"),
    ("oos_start", "OOS start", "text"),
    ("oos_end", "OOS end", "text"),
    ("market_source", "market", "text"),
    ("days", "days", "int"),
    ("sharpe", "Sharpe", "x"),
    ("sharpe_ci", "Sharpe 95% CI", "ci"),
    ("deflated_sharpe", "DSR", "x"),
    ("pbo", "PBO", "x"),
    ("oos_is_sharpe_ratio", "OOS/IS", "x"),
    ("min_backtest_years", "MinBTL y", "x"),
    ("total_return", "total return", "pct"),
    ("max_drawdown", "max DD", "pct"),
    ("trades", "trades", "int"),
    ("turnover", "turnover /yr", "x"),
    ("gross_pnl", "gross P&L $", "money"),
    ("costs", "costs $", "money"),
    ("costs_share", "costs/|gross|", "pct"),
    ("cost_spread_fraction", "fill/spread", "x"),
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
        cells = [c.replace("|", "\\|") for c in display_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every number is the run's summary.json (experiments.metrics.run_metrics, computed "
        "once). Sharpe: annualized (252), rf = 0, on the one continuous out-of-sample account, "
        "95% interval from its non-normal standard error (Mertens 2002). DSR: deflated Sharpe "
        "ratio over the study's trials (Bailey and Lopez de Prado 2014). PBO: probability of "
        "backtest overfitting by CSCV, mean over folds (Bailey et al. 2017). OOS/IS: "
        "out-of-sample Sharpe / mean best in-sample Sharpe. MinBTL y: minimum backtest length "
        "in years for that many trials (Bailey et al. 2014). trades: opening "
        "orders. turnover: traded notional / mean equity, per year. costs: commissions + "
        "settlement fees + option slippage vs mid + share cost model + hedge half spreads; "
        "gross P&L = net + costs. fill/spread: option fills' mean cost vs mid as a fraction of "
        "the quoted spread, contract-weighted (0.5 = the touch; experiments/tca.py). "
        "Definitions: docs/metrics.md.",
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
    write_atomic(csv_path, frame.to_csv(index=False))
    write_atomic(md_path, to_markdown(frame))
    return csv_path, md_path


def rich_table(frame: pd.DataFrame) -> Table:
    """The summary as a rich table (:data:`DISPLAY` columns)."""
    table = Table(title="strategy run summary (out-of-sample)", title_justify="left")
    for _, header, kind in DISPLAY:
        table.add_column(header, justify="left" if kind == "text" else "right", overflow="fold")
    for row in frame.to_dict("records"):
        status = str(row["status"])
        style = "green" if status == "ok" else "yellow" if status.startswith("warn") else "red"
        cells = [escape(c) for c in display_cells(row)]
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
    from experiments.config import TrackingConfig
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
    "display_cells",
    "newest_run",
    "register",
    "summarize_run",
    "summary_frame",
    "summary_row",
    "write_atomic",
    "write_summary",
]
