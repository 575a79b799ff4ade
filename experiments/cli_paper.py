"""``volsuite paper``: paper-trade an experiment config, or stop a running session.

``volsuite paper CONFIG [--from-run RUN] [--speed X] [--until T] [--resume SESSION]``
    run the config's strategy on the venue of ``[broker] kind`` (``replay`` or
    ``alpaca-paper``) with the run's best out-of-sample parameters (or the config's), with a live
    status table (positions, book greeks, P&L, replay progress, last orders); the audit log and
    the session files go to ``results/paper/<session>/``. ``--resume SESSION`` continues an
    earlier session (Alpaca): same session id and client order ids, positions adopted at start.
    Exit 3 when the session ends with its kill switch not confirmed by the venue.
``volsuite paper stop [--flag-file PATH | --config CONFIG] [--no-flatten] [--reason TEXT]
[--wait S]``
    engage the kill switch, then report for every running session (the ``state.json`` files
    under the audit directory: ``--config``'s ``audit_dir``, else the flag file's folder)
    whether its kill completed (no open order, and flat unless ``--no-flatten``, confirmed by the
    venue) within ``--wait`` seconds: exit 0 when every kill completed or no session runs, 3 when
    one has not (yet).
``volsuite paper stop --clear``
    remove the flag file (a session refuses to start while it exists).

One command whose argument is either a config path or the word ``stop`` (a config file literally
named ``stop`` can be given as ``./stop``). Wire it with ``register(app)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from data_feeds.errors import VolsuiteError

console = Console()
err_console = Console(stderr=True)

DEFAULT_FLAG = Path("results/paper/KILL")


KILL_INCOMPLETE_EXIT = 3
"""Exit code when a kill switch is not confirmed complete by the venue."""


def _fail(exc: Exception | str) -> None:
    from brokers.live.safety import scrub_secrets

    text = scrub_secrets(str(exc))
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _stop(
    flag_file: Path | None,
    config: Path | None,
    no_flatten: bool,
    clear: bool,
    reason: str,
    wait: float = 30.0,
) -> None:
    from brokers.live import KillSwitch

    path = flag_file
    audit_dir: Path | None = None
    if config is not None:
        from experiments.config import load_config

        try:
            safety = load_config(config).broker.safety
        except VolsuiteError as exc:
            _fail(exc)
            return
        path = path or Path(safety.kill_switch_file)
        audit_dir = Path(safety.audit_dir)
    switch = KillSwitch(path or DEFAULT_FLAG)
    audit_dir = audit_dir or switch.path.parent
    if clear:
        removed = switch.clear()
        console.print(
            f"kill switch {'cleared' if removed else 'was not engaged'}: {switch.path}",
            highlight=False,
            markup=False,
        )
        return
    from experiments.paper_state import kill_report, running_sessions, wait_for_kill

    running = [str(st["session"]) for st in running_sessions(audit_dir)]
    switch.trigger(reason, flatten=not no_flatten)
    say = {"highlight": False, "soft_wrap": True, "markup": False}
    if not running:
        console.print(
            f"no paper session running (none under {audit_dir}); kill switch engaged: "
            f"{switch.path}: new sessions refuse to start until 'volsuite paper stop --clear'",
            **say,
        )
        return
    action = "cancel open orders" if no_flatten else "cancel open orders and flatten"
    console.print(
        f"kill switch engaged: {switch.path}; waiting up to {wait:g} s for {len(running)} "
        f"session(s) to {action} and the venue to confirm",
        **say,
    )
    states = wait_for_kill(audit_dir, running, timeout=wait)
    complete = True
    for session, state in states.items():
        done, line = kill_report(session, state)
        complete = complete and done
        console.print(line, **say)
    if not complete:
        raise typer.Exit(code=KILL_INCOMPLETE_EXIT)


def paper(
    target: Annotated[
        str, typer.Argument(help="Experiment config (TOML) to paper-trade, or 'stop'.")
    ],
    from_run: Annotated[
        str | None,
        typer.Option(
            "--from-run",
            help="Run to take the best out-of-sample params from: MLflow run id, or a "
            "volsuite run results folder / run id.",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="Replay speed: recorded seconds per wall second (0 = no waiting)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Stop at this venue time: 'HH:MM' (first replay day / today) or a date-time."
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow URI (default: the config's).")
    ] = None,
    no_live: Annotated[
        bool, typer.Option("--no-live", help="No live display: print the status at the end.")
    ] = False,
    flag_file: Annotated[
        Path | None, typer.Option("--flag-file", help="stop: the kill-switch file.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="stop: read the kill-switch file from CONFIG.")
    ] = None,
    no_flatten: Annotated[
        bool, typer.Option("--no-flatten", help="stop: cancel orders but keep positions.")
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="stop: remove the flag file.")] = False,
    reason: Annotated[str, typer.Option(help="stop: reason written to the audit log.")] = (
        "volsuite paper stop"
    ),
    wait: Annotated[
        float,
        typer.Option(
            min=0.0, help="stop: seconds to wait for the running session(s) to confirm the kill."
        ),
    ] = 30.0,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue this earlier session (alpaca-paper): same id and client order ids; "
            "the venue's positions are adopted before the first bar.",
        ),
    ] = None,
) -> None:
    """Paper-trade CONFIG on the venue of its broker kind, or 'stop' the running session."""
    if target == "stop":
        _stop(flag_file, config, no_flatten, clear, reason, wait)
        return
    os.environ.setdefault("MPLBACKEND", "Agg")
    from experiments.paper import build_session, status_renderable

    live_display: Any = None

    def on_bar(session: Any) -> None:
        if live_display is not None:
            live_display.update(status_renderable(session))

    try:
        session = build_session(
            Path(target),
            from_run=from_run,
            speed=speed,
            until=until,
            tracking_uri=tracking_uri,
            on_bar=on_bar,
            resume=resume,
        )
    except VolsuiteError as exc:
        _fail(exc)
        return
    for note in session.notes:
        console.print(f"[dim]paper[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(
        f"session {session.store.session} on {session.venue.name}; audit log "
        f"{session.folder / 'audit.jsonl'}; stop with 'volsuite paper stop'",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    try:
        if console.is_terminal and not no_live:
            from rich.live import Live

            with Live(console=console, refresh_per_second=4) as live:
                live_display = live
                session.run()
        else:
            session.run()
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: open orders stay at the venue; 'volsuite paper stop' cancels them",
            highlight=False,
        )
        raise typer.Exit(code=130) from None
    except VolsuiteError as exc:
        _fail(exc)
        return
    console.print(status_renderable(session))
    broker = session.broker
    console.print(
        f"{'KILLED; ' if broker.killed else ''}value ${broker.getvalue():,.2f}, P&L "
        f"${broker.pnl():+,.2f}, {len(broker.venue_orders)} orders, "
        f"{len(broker.rejections)} rejected; {broker.reconciliations[-1].summary()}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    console.print(f"results    {session.folder}", highlight=False, soft_wrap=True, markup=False)
    if broker.killed and not broker.kill_complete:
        err_console.print(
            f"KILL SWITCH NOT COMPLETE: {broker.kill_status}; open orders / positions remain "
            "at the venue: close them there (the flag file stays engaged)",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(code=KILL_INCOMPLETE_EXIT)


def register(app: typer.Typer) -> None:
    """Add ``volsuite paper`` (run a config, or ``stop``) to ``app``."""
    app.command("paper")(paper)


__all__ = ["paper", "register"]
