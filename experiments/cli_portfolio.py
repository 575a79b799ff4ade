"""``volsuite portfolio`` and ``volsuite stress`` (docs/portfolio.md).

``volsuite portfolio PORTFOLIO.toml [--run] [--rerun] [--trials N] [--no-mlflow]``
    combine the newest runs of the member configs into one book
    (:func:`experiments.portfolio.run_portfolio`); writes
    ``<results_dir>/portfolio/<name>/<run id>/``.
``volsuite stress RUN_ID_OR_PORTFOLIO [--scenarios FILE]``
    reprice the positions a run (or every member of a portfolio run) held at each close under a
    scenario grid, historical shocks and a Monte Carlo of one-day moves
    (:func:`experiments.stress.stress_target`); writes ``stress.csv`` and ``stress.html`` into the
    run folder.
``volsuite tca FOLDER [--config CONFIG]``
    transaction-cost analysis of a run folder or paper session (:func:`experiments.tca.tca_folder`;
    every new run writes its ``tca.csv`` already).

Heavy libraries are imported inside the commands. Wire it with ``register(app)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from data_feeds.errors import VolsuiteError

console = Console()
err_console = Console(stderr=True)


def _fail(exc: Exception | str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def portfolio(
    config: Annotated[Path, typer.Argument(help="Portfolio TOML (experiments/portfolios/).")],
    run: Annotated[
        bool, typer.Option("--run", help="Run the member configs that have no run folder.")
    ] = False,
    rerun: Annotated[bool, typer.Option("--rerun", help="Run every member config.")] = False,
    trials: Annotated[
        int | None, typer.Option(help="Optuna trials per fold of those member runs.")
    ] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log to MLflow.")] = False,
) -> None:
    """Combine member runs into one portfolio (weights from the past only)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from experiments.portfolio import run_portfolio

    def log(msg: str) -> None:
        console.print(f"[dim]{escape(msg)}[/]", highlight=False)

    try:
        out = run_portfolio(
            config, run=run or rerun, rerun=rerun, trials=trials, track=not no_mlflow, log=log
        )
    except (VolsuiteError, ValueError, OSError) as exc:
        _fail(exc)
        return
    m = out.metrics
    console.print(
        f"portfolio  {len(out.members)} members, {int(m['days'])} sessions, Sharpe "
        f"{m['sharpe']:.2f}, total return {m['total_return']:.2%}, max DD "
        f"{m['max_drawdown']:.2%}",
        highlight=False,
    )
    for mem in out.members:
        n = int((out.book.returns.index.difference(mem.returns.index)).size)
        console.print(
            f"member     {escape(mem.name)}: run {mem.run_dir.name}, {len(mem.returns)} days, "
            f"{n} session(s) without a return counted as 0",
            highlight=False,
        )
    for a in out.alerts:
        console.print(
            f"[yellow]alert[/]      {a['date']} {escape(a['pair'])} rolling correlation "
            f"{a['correlation']:.2f}",
            highlight=False,
        )
    console.print(f"written    {out.run_dir}", highlight=False, soft_wrap=True)


def stress(
    target: Annotated[
        str,
        typer.Argument(
            help="Run folder, run id (searched under results/), or a portfolio run folder."
        ),
    ],
    scenarios: Annotated[
        Path | None, typer.Option("--scenarios", help="Scenario TOML (default: built-in grid).")
    ] = None,
    results_dir: Annotated[
        Path, typer.Option("--results-dir", help="Where run ids are looked up.")
    ] = Path("results"),
) -> None:
    """Reprice a run's (or portfolio's) end-of-day positions under stress scenarios."""
    from experiments.stress import stress_target

    try:
        out = stress_target(target, scenarios=scenarios, results_dir=results_dir)
    except (VolsuiteError, ValueError, OSError) as exc:
        _fail(exc)
        return
    for line in out.lines():
        console.print(line, highlight=False, soft_wrap=True)


def tca(
    folder: Annotated[
        Path, typer.Argument(help="Run folder (trades.csv) or paper session (fills.csv).")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Experiment config whose [costs] the fills are compared to."),
    ] = None,
) -> None:
    """Transaction-cost analysis of a run's or paper session's option fills (tca.csv)."""
    from experiments.tca import tca_folder

    try:
        m = tca_folder(folder, config)
    except (VolsuiteError, ValueError, OSError) as exc:
        _fail(exc)
        return
    frac = m["cost_spread_fraction"]
    line = (
        f"fills      {int(m['tca_fills'])} ({int(m['tca_unquoted_fills'])} without a quote); "
        f"mean cost vs mid {'n/a' if frac is None else f'{frac:.3f}'} of the spread"
    )
    if "tca_cost_vs_model" in m:
        line += f"; vs the backtest cost model ${m['tca_cost_vs_model']:,.2f}"
    console.print(line, highlight=False)
    console.print(f"written    {folder / 'tca.csv'}\n           {folder / 'tca_summary.csv'}")


def register(app: typer.Typer) -> None:
    """Add ``volsuite portfolio``, ``volsuite stress`` and ``volsuite tca`` to ``app``."""
    app.command("portfolio")(portfolio)
    app.command("stress")(stress)
    app.command("tca")(tca)


__all__ = ["portfolio", "register", "stress", "tca"]
