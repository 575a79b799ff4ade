"""``volsuite audit CONFIG [--trials N] [--seed S] [--dates K] [--folds F] [--results-dir D]``.

Runs the research-integrity audit of :mod:`experiments.audit` on any registered strategy's config
(built-in or a ``volsuite.strategies`` entry point), prints one row per check and the evidence
table, writes ``<results>/<experiment>/audit/<audit id>/{audit.json, audit.md}``.

Exit codes: 0 when no check failed (PASS or INSUFFICIENT evidence), 1 when a check failed, 2 when
the config or its data is invalid (one line, nothing written). Wire it with ``register(app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

#: Exit code when a check failed.
FAIL_EXIT = 1
#: Exit code of an invalid config or data (as ``volsuite run``).
ERROR_EXIT = 2

STYLE = {"PASS": "green", "FAIL": "bold red", "INSUFFICIENT": "yellow"}


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command to the ``volsuite`` app."""

    @app.command("audit")
    def audit(
        config: Annotated[Path, typer.Argument(help="Experiment config (TOML).")],
        trials: Annotated[
            int | None, typer.Option(help="Optuna trials per fold (overrides config).")
        ] = None,
        seed: Annotated[
            int | None, typer.Option(help="Sampler seed (overrides config); seed+1 is the other.")
        ] = None,
        dates: Annotated[int, typer.Option(help="Decision dates of the look-ahead check.")] = 3,
        folds: Annotated[
            int | None, typer.Option(help="Audit only the last F walk-forward folds.")
        ] = None,
        results_dir: Annotated[
            Path | None, typer.Option(help="Where audit/ goes (default: the config's).")
        ] = None,
    ) -> None:
        """Audit CONFIG's strategy: look-ahead, determinism, books, costs, evidence, data."""
        from data_feeds.errors import VolsuiteError
        from experiments.audit import EVIDENCE_ROWS, run_audit

        try:
            with console.status("audit") as status:
                report = run_audit(
                    config,
                    trials=trials,
                    seed=seed,
                    dates=dates,
                    folds=folds,
                    results_dir=results_dir,
                    on_step=lambda text: status.update(f"audit: {text}"),
                )
        except (VolsuiteError, KeyError) as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(code=ERROR_EXIT) from None
        table = Table(title=f"volsuite audit {config} — verdict {report.verdict}")
        table.add_column("check")
        table.add_column("status")
        table.add_column("evidence", overflow="fold")
        for c in report.checks:
            style = STYLE[c.status]
            table.add_row(c.name, f"[{style}]{c.status}[/]", escape(c.message))
        console.print(table)
        ev = report.check("evidence").evidence
        numbers = Table(title="evidence (experiments.metrics / overfitting)")
        numbers.add_column("statistic")
        numbers.add_column("value", justify="right")
        for key, label in EVIDENCE_ROWS:
            numbers.add_row(label, escape(_cell(ev.get(key))))
        console.print(numbers)
        if report.folder is not None:
            console.print(f"written: {report.folder}/audit.json, audit.md", soft_wrap=True)
        if report.verdict == "FAIL":
            raise typer.Exit(code=FAIL_EXIT)
