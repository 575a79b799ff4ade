"""``volsuite worker CONFIG --storage URL``: join a run's Optuna studies from another process.

The worker loads and prepares the same config and data as the run, then evaluates trials of every
fold's study (``{experiment}-{config hash}-fold{k}``, :mod:`experiments.workers`) until each has
its configured number of COMPLETE trials or its remaining trials run elsewhere; it writes nothing
but trials. Start the run (``volsuite run CONFIG --storage URL``) anywhere on the same storage: it
waits for each fold's trials before the out-of-sample step. docs/scaling.md has the layout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``volsuite worker`` to the command line."""
    app.command("worker")(worker)


def worker(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML), as the run's.")],
    storage: Annotated[
        str,
        typer.Option(
            help="Optuna storage URL shared with the run (sqlite:///... on one machine, "
            "postgresql+psycopg://user@host/db across machines)."
        ),
    ],
    trials: Annotated[int | None, typer.Option(help="As the run's --trials.")] = None,
    seed: Annotated[int | None, typer.Option(help="As the run's --seed.")] = None,
    engine: Annotated[str | None, typer.Option(help="As the run's --engine.")] = None,
    index: Annotated[
        int | None,
        typer.Option(help="Worker index for sampler seeds (default: seeded by the OS)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    heartbeat_interval: Annotated[
        int, typer.Option(help="Seconds between heartbeats (as the run's).", hidden=True)
    ] = 5,
    grace_period: Annotated[
        int, typer.Option(help="Seconds before a silent trial is retried.", hidden=True)
    ] = 20,
) -> None:
    """Evaluate trials of CONFIG's walk-forward studies on a shared storage."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.basicConfig(level=logging.WARNING)
    from data_feeds.errors import VolsuiteError
    from experiments.cli import _fail, console, quiet_on_error, run_progress
    from experiments.runner import run_worker
    from experiments.workers import NOT_REPRODUCIBLE

    progress, on_step, on_start, on_trial = run_progress()
    if quiet:
        progress.disable = True
    try:
        with progress, quiet_on_error(progress):
            n = run_worker(
                config,
                storage=storage,
                trials=trials,
                seed=seed,
                engine=engine,
                index=index,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                on_step=on_step,
                on_start=on_start,
                on_trial=on_trial,
            )
            on_step("done")
    except VolsuiteError as exc:
        _fail(exc)
        return
    console.print(
        f"worker done: {n} fold studies have their trials or are finishing elsewhere "
        f"({NOT_REPRODUCIBLE})",
        highlight=False,
        soft_wrap=True,
    )
