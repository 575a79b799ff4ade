"""The ``volsuite`` command line (typer + rich).

``volsuite run CONFIG [--trials N] [--seed S] [--storage URL]`` runs an experiment config;
``volsuite list`` shows the registered strategies and the configs in ``experiments/configs``.
User errors (bad config, bad data) print one line ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_feeds.errors import VolsuiteError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="volsuite: option and volatility strategy research.",
)
console = Console()
err_console = Console(stderr=True)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML).")],
    trials: Annotated[
        int | None, typer.Option(help="Optuna trials per fold (overrides config).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampler seed (overrides config).")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Skip MLflow logging.")] = False,
) -> None:
    """Walk-forward optimize CONFIG, then write the tearsheet and log the run to MLflow."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.basicConfig(level=logging.WARNING)
    from experiments.runner import run_experiment

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = None

    def on_start(total: int) -> None:
        nonlocal task
        task = progress.add_task("walk-forward trials", total=total)

    def on_trial(fold: int, number: int) -> None:
        if task is not None:
            progress.update(task, advance=1, description=f"fold {fold} trial {number}")

    try:
        with progress:
            outcome = run_experiment(
                config,
                trials=trials,
                seed=seed,
                storage=storage,
                on_start=on_start,
                on_trial=on_trial,
                track=not no_mlflow,
            )
    except VolsuiteError as exc:
        _fail(exc)
        return
    for line in outcome.load_reports:
        console.print(f"[dim]data[/] {line}", highlight=False, soft_wrap=True)
    m = outcome.metrics
    table = Table(
        title=f"{outcome.config.experiment.name}: out-of-sample "
        f"({len(outcome.result.folds)} folds, "
        f"{outcome.result.oos_returns.index[0].date()} .. "
        f"{outcome.result.oos_returns.index[-1].date()})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("market data", outcome.market_source)
    table.add_row("Sharpe", f"{m['sharpe']:.2f}")
    table.add_row("CAGR", f"{m['cagr']:.2%}")
    table.add_row("max drawdown", f"{m['max_drawdown']:.2%}")
    table.add_row("hit rate", f"{m.get('hit_rate', 0.0):.1%}")
    table.add_row("trades", f"{int(m.get('trades', 0))}")
    console.print(table)
    # paths in full (a table cell would truncate them on a narrow terminal)
    console.print(
        f"tearsheet  {outcome.run_dir / 'tearsheet.html'}", highlight=False, soft_wrap=True
    )
    console.print(f"results    {outcome.run_dir}", highlight=False, soft_wrap=True)
    console.print(
        f"MLflow run {outcome.mlflow_run_id or '(not logged: --no-mlflow)'}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("list")
def list_cmd() -> None:
    """List registered strategies and the configs shipped in experiments/configs."""
    from strategies import list_strategies

    table = Table(title="strategies")
    table.add_column("name")
    table.add_column("description")
    for name, desc in list_strategies().items():
        table.add_row(name, desc)
    console.print(table)
    configs = Table(title=f"configs ({CONFIG_DIR})")
    configs.add_column("config")
    configs.add_column("strategy")
    for path in sorted(CONFIG_DIR.glob("*.toml")):
        import tomllib

        try:
            strategy = tomllib.loads(path.read_text()).get("strategy", {}).get("name", "?")
        except tomllib.TOMLDecodeError:
            strategy = "(invalid TOML)"
        configs.add_row(
            str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path),
            strategy,
        )
    console.print(configs)


def main() -> None:  # pragma: no cover - console entry for `python -m experiments.cli`
    """Entry point."""
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
