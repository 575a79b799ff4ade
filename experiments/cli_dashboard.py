"""``volsuite dashboard``: start the read-only Streamlit app (``experiments/dashboard``).

``volsuite dashboard [--results DIR] [--db PATH] [--optuna URL] [--paper DIR] [--mlflow URI]
[--port N] [--address HOST] [--headless]``
    runs ``streamlit run experiments/dashboard/app.py`` in a child process on
    ``http://<address>:<port>`` (default ``127.0.0.1:8501``: this machine only) with the paths in
    ``VOLSUITE_*`` environment variables (:mod:`experiments.dashboard.common`). ``--headless``
    does not open a browser (servers, tests). Health check: ``GET /_stcore/health`` answers
    ``ok``. Stop with Ctrl-C. See ``docs/dashboard.md``.

Wire it with :func:`register`. User errors print one line ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["APP", "dashboard", "dashboard_command", "register"]

APP = Path(__file__).resolve().parent / "dashboard" / "app.py"
"""The Streamlit entry script."""

console = Console()
err_console = Console(stderr=True)


def dashboard_command(
    *,
    results: Path,
    db: Path | None = None,
    optuna: str | None = None,
    paper: Path | None = None,
    mlflow: str | None = None,
    port: int = 8501,
    address: str = "127.0.0.1",
    headless: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the Streamlit child process.

    Parameters
    ----------
    results : Path
        Results folder (run folders, ``optuna.db``, ``paper/``).
    db : Path, optional
        Chain store (default ``<results>/chains.duckdb``).
    optuna : str, optional
        Optuna storage URL (default ``sqlite:///<results>/optuna.db``).
    paper : Path, optional
        Paper sessions folder (default ``<results>/paper``).
    mlflow : str, optional
        MLflow tracking URI listed on the Runs page.
    port : int
        TCP port.
    address : str
        Interface to listen on (``127.0.0.1``: local only).
    headless : bool
        Do not open a browser.

    Returns
    -------
    (list of str, dict of str to str)
        ``argv`` and the full environment (the repository first on ``PYTHONPATH``, so the app
        imports this checkout's packages).
    """
    results = results.resolve()
    env = dict(os.environ)
    root = str(APP.parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env["VOLSUITE_RESULTS"] = str(results)
    env["VOLSUITE_DB"] = str((db or results / "chains.duckdb").resolve())
    env["VOLSUITE_OPTUNA"] = optuna or f"sqlite:///{results / 'optuna.db'}"
    env["VOLSUITE_PAPER"] = str((paper or results / "paper").resolve())
    if mlflow:
        env["VOLSUITE_MLFLOW"] = mlflow
    else:
        env.pop("VOLSUITE_MLFLOW", None)
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true" if headless else "false",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
    ]
    return argv, env


def dashboard(
    results: Annotated[
        Path, typer.Option("--results", help="Results folder (run folders, optuna.db, paper/).")
    ] = Path("results"),
    db: Annotated[
        Path | None,
        typer.Option("--db", help="Chain store (default <results>/chains.duckdb), read-only."),
    ] = None,
    optuna: Annotated[
        str | None,
        typer.Option(
            "--optuna", help="Optuna storage URL (default sqlite:///<results>/optuna.db)."
        ),
    ] = None,
    paper: Annotated[
        Path | None, typer.Option("--paper", help="Paper sessions (default <results>/paper).")
    ] = None,
    mlflow: Annotated[
        str | None, typer.Option("--mlflow", help="MLflow tracking URI to list on the Runs page.")
    ] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8501,
    address: Annotated[
        str, typer.Option("--address", help="Interface to listen on (default: this machine).")
    ] = "127.0.0.1",
    headless: Annotated[
        bool, typer.Option("--headless", help="Do not open a browser (servers, tests).")
    ] = False,
) -> None:
    """Browse runs, sweeps, surfaces, term structure/VRP, data quality and paper sessions."""
    if not results.is_dir():
        err_console.print(
            f"[bold red]error:[/] {escape(str(results))}: no results folder (run 'volsuite run "
            "CONFIG' first, or give --results DIR)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=2)
    argv, env = dashboard_command(
        results=results,
        db=db,
        optuna=optuna,
        paper=paper,
        mlflow=mlflow,
        port=port,
        address=address,
        headless=headless,
    )
    console.print(
        f"volsuite dashboard on http://{address}:{port} (results {env['VOLSUITE_RESULTS']}, "
        f"chain store {env['VOLSUITE_DB']}); Ctrl-C stops it",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    try:
        code = subprocess.run(argv, env=env, check=False).returncode
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add ``volsuite dashboard`` to ``app``."""
    app.command("dashboard")(dashboard)
