"""The ``volsuite`` command line (typer + rich).

``volsuite run CONFIG [--trials N] [--seed S] [--storage URL] [--workers N] [--tracking-uri URI]``
runs an experiment config; ``volsuite worker CONFIG --storage URL`` joins its studies from another
process or machine (``experiments/cli_worker.py``, ``docs/scaling.md``);
``volsuite list`` shows the registered strategies and the configs in ``experiments/configs``;
``volsuite paper CONFIG [--from-run RUN] [--speed X] [--until T]`` paper-trades a config on the
venue of its ``[broker] kind``; ``volsuite paper stop [--no-flatten] [--clear]`` triggers the kill
switch (``experiments/cli_paper.py``, ``docs/paper_trading.md``);
``volsuite surface fit (--date D | --all) [--model svi|ssvi|sabr|heston]``, ``surface plot --date D
[--out F.html]`` and ``surface vrp`` fill and show the fitted-surface, term-structure, realized-vol
and VRP tables, ``surface term --date D`` and ``surface params --expiry-bucket 30d`` view them
(``experiments/cli_surface.py``, ``docs/surfaces.md``);
``volsuite dashboard [--results DIR] [--db PATH] [--port N] [--headless]`` serves the read-only
Streamlit app over runs, sweeps, surfaces, data quality and paper sessions
(``experiments/cli_dashboard.py``, ``docs/dashboard.md``).

Startup: this module and the ``cli_*`` modules import only typer, rich and light volsuite
modules at the top; every heavy library (numba kernels, vectorbt, mlflow, quantstats, xgboost,
optuna, backtrader, streamlit) is imported inside the command that needs it
(``tests/experiments/test_cli_startup.py``).

The option-chain store (``data_feeds.chain_store``, default ``results/chains.duckdb``):

``volsuite ingest chains PATH [PATH...] --format vendor|lean-minute|generic [--db DB]
[--config TOML]``
    validate and store chain files (a directory: every recognised file); one table per file.
``volsuite ingest underlying SOURCE --root SPX [--symbol SPX] [--db DB]``
    daily bars (any ``load_ohlc`` source) into ``underlying_prices``.
``volsuite chains info [--db DB]``
    per-source summary, quarantine reasons, flagged holiday snapshots.

User errors (bad config, bad data) print one line ``error: ...`` and exit with status 2.
``ingest chains`` has more exit codes (docs/reliability.md): 3 a file found in a folder was
skipped as unreadable, 4 a file's every row was quarantined, 5 a stored day was not replaced by a
file with fewer rows (give ``--replace-dates``); 2 wins over 5, 5 over 4, 4 over 3.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperOption

from data_feeds.errors import VolsuiteError

if TYPE_CHECKING:
    from data_feeds.chain_ingest import IngestReport

def _flag_display_type(self: Any, ctx: Any) -> str | None:
    """Help column of an option's type: nothing for a flag (``--mlflow/--no-mlflow``, ``--all``).

    typer 0.29's rich help shows ``<bool>`` after a flag, which reads as if it took a value;
    its plain help (``get_help_record``) shows no type for flags, as this does.
    """
    if getattr(self, "is_flag", False):
        return None
    return _typer_display_type(self, ctx)


_typer_display_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_display_type  # type: ignore[method-assign]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="volsuite: option and volatility strategy research.",
)
console = Console()
err_console = Console(stderr=True)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _fail(exc: Exception) -> None:
    # escaped: a message naming a TOML section ("[strategy.params]") is not rich markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML).")],
    trials: Annotated[
        int | None, typer.Option(help="Optuna trials per fold (overrides config).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampler seed (overrides config).")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL.")] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the run to MLflow.")
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            help="Processes evaluating trials (this one + N-1 local workers; N > 1 is not "
            "bit-reproducible with TPE)."
        ),
    ] = 1,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (e.g. http://host:5000).")
    ] = None,
    heartbeat_interval: Annotated[
        int, typer.Option(help="Seconds between a running trial's heartbeats.", hidden=True)
    ] = 5,
    grace_period: Annotated[
        int, typer.Option(help="Seconds before a silent trial is failed and retried.", hidden=True)
    ] = 20,
    engine: Annotated[
        str | None,
        typer.Option(
            help="In-sample trial engine: backtrader or vectorbt (overrides [optimize] engine; "
            "out-of-sample runs are always backtrader)."
        ),
    ] = None,
) -> None:
    """Walk-forward optimize CONFIG, then write the tearsheet and log the run to MLflow.

    Studies are shared: `volsuite worker CONFIG --storage URL` on other machines joins them
    (docs/scaling.md).
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.basicConfig(level=logging.WARNING)
    from experiments.runner import run_experiment

    progress, on_step, on_start, on_trial = run_progress()
    try:
        with progress, quiet_on_error(progress):
            outcome = run_experiment(
                config,
                trials=trials,
                seed=seed,
                storage=storage,
                engine=engine,
                on_start=on_start,
                on_trial=on_trial,
                track=mlflow,
                workers=workers,
                tracking_uri=tracking_uri,
                on_step=on_step,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )
            on_step("done")
    except VolsuiteError as exc:
        _fail(exc)
        return
    for line in outcome.load_reports:
        console.print(Text("data ", style="dim") + Text(line), highlight=False, soft_wrap=True)
    console.print(run_table(outcome))
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
    if workers > 1:
        from experiments.workers import NOT_REPRODUCIBLE

        console.print(f"note       {NOT_REPRODUCIBLE}", highlight=False, soft_wrap=True)


@contextmanager
def quiet_on_error(progress: Progress) -> Iterator[None]:
    """Erase the progress display when the body raises (an error stays one line)."""
    try:
        yield
    except BaseException:
        progress.live.transient = True
        raise


def run_progress() -> tuple[Progress, Any, Any, Any]:
    """A rich progress display for a run or worker: a step line (what is happening now, with
    its elapsed time) from the first second, and the trial bar (COMPLETE trials of all workers).

    Returns
    -------
    progress : rich.progress.Progress
        Use as a context manager.
    on_step : callable
        ``(text)``: the current step.
    on_start : callable
        ``(total trials)``: adds the trial bar.
    on_trial : callable
        ``(fold, completed)``: the fold study's COMPLETE trials (any worker's).
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    state: dict[str, Any] = {"task": None, "per_fold": {}, "step": None, "text": None}

    def on_step(text: str) -> None:
        if text == state["text"]:
            return
        if state["step"] is not None:  # a finished step stays on screen with its time
            progress.update(state["step"], total=1, completed=1)
        state["text"] = text
        state["step"] = progress.add_task(text, total=1 if text == "done" else None)
        if text == "done":
            progress.update(state["step"], completed=1)

    def on_start(total: int) -> None:
        state["task"] = progress.add_task("trials (all workers)", total=total)

    def on_trial(fold: int, completed: int) -> None:
        per_fold = state["per_fold"]
        per_fold[fold] = max(per_fold.get(fold, 0), completed)
        if state["task"] is not None:
            progress.update(
                state["task"],
                completed=sum(per_fold.values()),
                description=f"trials (all workers), fold {fold}",
            )

    return progress, on_step, on_start, on_trial


def run_table(outcome: Any) -> Table:
    """The console table of a finished run: the metrics of ``summary.json``, as the tearsheet
    shows them (an insufficient sample replaces every ratio by its note)."""
    m = outcome.metrics
    oos = outcome.result.oos_returns
    table = Table(
        title=f"{outcome.config.experiment.name}: out-of-sample ({len(outcome.result.folds)} "
        f"folds, {oos.index[0].date()} .. {oos.index[-1].date()})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    sample = m.get("sample")

    def num(key: str, fmt: str, ratio: bool = False) -> str:
        value = m.get(key)
        if ratio and sample:
            return str(sample)
        return "n/a" if value is None else format(value, fmt)

    lo, hi = m.get("sharpe_ci_low"), m.get("sharpe_ci_high")
    rows = [
        ("market data", str(outcome.market_source)),
        ("Sharpe", num("sharpe", ".2f", True)),
        (
            "Sharpe 95% interval",
            str(sample) if sample else "n/a" if lo is None else f"[{lo:.2f}, {hi:.2f}]",
        ),
        ("deflated Sharpe (DSR)", num("deflated_sharpe", ".2f")),
        ("PBO", num("pbo", ".2f")),
        ("Sortino", num("sortino", ".2f", True)),
        ("CAGR", num("cagr", ".2%", True)),
        ("total return", num("total_return", ".2%")),
        ("net P&L $", num("net_pnl", ",.2f")),
        ("max drawdown", num("max_drawdown", ".2%")),
        ("trades (opening orders)", num("trades", ".0f")),
        ("days", num("days", ".0f")),
    ]
    for label, value in rows:
        table.add_row(Text(label), Text(value))
    return table


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


# -- option-chain store ----------------------------------------------------------------------------
ingest_app = typer.Typer(no_args_is_help=True, help="Load market data into the chain store.")
chains_app = typer.Typer(no_args_is_help=True, help="Inspect the option-chain store.")
app.add_typer(ingest_app, name="ingest")
app.add_typer(chains_app, name="chains")

DEFAULT_DB = Path("results/chains.duckdb")
EXIT_ERROR = 2
"""A user error, or a named file that could not be ingested."""
EXIT_SKIPPED = 3
"""A file found in a folder was skipped because it could not be read (corrupt, empty, binary)."""
EXIT_ALL_QUARANTINED = 4
"""A file was read but every row was quarantined: nothing was stored from it."""
EXIT_REPLACE_REFUSED = 5
"""A stored day would have been replaced by fewer rows; refused (``--replace-dates``)."""
DbOption = Annotated[Path, typer.Option("--db", help="Chain store (DuckDB file).")]


def _ingest_table(r: IngestReport) -> Table:
    """A rich table of one :class:`data_feeds.chain_ingest.IngestReport`."""
    table = Table(title=f"{r.data_source}  ({r.seconds:.2f} s)", title_justify="left")
    table.add_column("rows", overflow="fold")
    table.add_column("count", justify="right")
    table.add_row("read", f"{r.rows_read:,}")
    table.add_row("added", f"{r.rows_added:,}")
    replaced = f"{r.rows_replaced:,}"
    if r.rows_deleted:
        replaced += f" (deleted {r.rows_deleted:,} old)"
    table.add_row("replaced", replaced)
    table.add_row("unchanged", f"{r.rows_unchanged:,}")
    table.add_row("quarantined", f"{r.rows_quarantined:,}")
    for reason, n in r.quarantined_by_reason.items():
        table.add_row(f"  {reason}", f"{n:,}")
    table.add_row("liquid", f"{r.liquid:,}")
    table.add_row("illiquid", f"{r.illiquid:,}")
    valid = r.liquid + r.illiquid
    for crit, n in r.liquidity_failures.items():
        skipped = r.liquidity_skipped.get(crit, 0)
        if valid and skipped == valid:
            table.add_row(f"  {crit}", "skipped: no input")
            continue
        note = f" (skipped on {skipped:,}: no input)" if skipped else ""
        table.add_row(f"  fails {crit}", f"{n:,}{note}")
    for crit in r.liquidity_disabled:
        table.add_row(f"  {crit}", "disabled")
    table.add_row(
        "partitions new/replaced/unchanged",
        f"{r.partitions_new}/{r.partitions_replaced}/{r.partitions_unchanged}",
    )
    return table


@ingest_app.command("chains")
def ingest_chains(
    paths: Annotated[list[Path], typer.Argument(help="Chain files or directories.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="vendor | lean-minute | generic.")
    ] = "vendor",
    db: DbOption = DEFAULT_DB,
    config: Annotated[Path | None, typer.Option("--config", help="ChainIngestConfig TOML.")] = None,
    replace_dates: Annotated[
        bool,
        typer.Option("--replace-dates", help="Allow replacing a stored day with fewer rows."),
    ] = False,
) -> None:
    """Validate option-chain files and store them (idempotent; see docs/data.md).

    Exit codes: 0 ok, 2 error, 3 a folder file skipped as unreadable, 4 a file entirely
    quarantined, 5 a stored day not replaced by fewer rows (see docs/reliability.md).
    """
    import duckdb

    from data_feeds.chain_ingest import UNREADABLE, discover_files, load_ingest_config
    from data_feeds.chain_store import ChainStore, ReplaceRefusedError

    try:
        cfg = load_ingest_config(config)
        files, skipped = discover_files(paths, fmt, cfg)
    except VolsuiteError as exc:
        _fail(exc)
        return
    unreadable = 0
    for path, why in skipped:
        if why.startswith(UNREADABLE):
            unreadable += 1
            err_console.print(
                f"[bold red]skipped[/] {escape(why)}", highlight=False, soft_wrap=True
            )
        else:
            console.print(
                f"[dim]skipped[/] {escape(str(path))}: {escape(why)}",
                highlight=False,
                soft_wrap=True,
            )
    if not files:
        _fail(VolsuiteError(f"no {fmt} chain file found in {[str(p) for p in paths]}"))
    failed = refused = all_quarantined = 0
    totals = {"added": 0, "replaced": 0, "unchanged": 0, "quarantined": 0}
    try:
        store = ChainStore(db)
    except VolsuiteError as exc:
        _fail(exc)
        return
    with store:
        for i, path in enumerate(files, start=1):
            try:
                with console.status(f"ingesting {path.name} ({i}/{len(files)} files)"):
                    report = store.ingest(path, fmt, config=cfg, replace_dates=replace_dates)
            except VolsuiteError as exc:
                if isinstance(exc, ReplaceRefusedError):
                    refused += 1
                else:
                    failed += 1
                err_console.print(
                    f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
                )
                continue
            except (OSError, duckdb.Error) as exc:  # never a traceback: one line, exit 2
                failed += 1
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                err_console.print(
                    f"[bold red]error:[/] {escape(str(path))}: {type(exc).__name__}: "
                    f"{escape(first)}",
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            if report.rows_read and report.rows_quarantined == report.rows_read:
                all_quarantined += 1
                err_console.print(
                    f"[bold red]error:[/] {escape(str(path))}: every row "
                    f"({report.rows_read:,}) quarantined, nothing stored: "
                    + ", ".join(f"{k}={v}" for k, v in report.quarantined_by_reason.items()),
                    highlight=False,
                    soft_wrap=True,
                )
            console.print(_ingest_table(report))
            for note in report.notes:
                console.print(f"  [dim]note[/] {note}", highlight=False, soft_wrap=True)
            totals["added"] += report.rows_added
            totals["replaced"] += report.rows_replaced
            totals["unchanged"] += report.rows_unchanged
            totals["quarantined"] += report.rows_quarantined
    console.print(
        f"{len(files) - failed} file(s) into {db}: "
        + ", ".join(f"{k} {v:,}" for k, v in totals.items()),
        highlight=False,
        soft_wrap=True,
    )
    for n, code in (
        (failed, EXIT_ERROR),
        (refused, EXIT_REPLACE_REFUSED),
        (all_quarantined, EXIT_ALL_QUARANTINED),
        (unreadable, EXIT_SKIPPED),
    ):
        if n:
            raise typer.Exit(code=code)


@ingest_app.command("underlying")
def ingest_underlying(
    source: Annotated[str, typer.Argument(help="A load_ohlc source (file, builtin:, yfinance:).")],
    root: Annotated[
        str | None, typer.Option("--root", help="Series of a long-format file (SPX).")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="Stored symbol (default: --root).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Store daily bars of the underlying (for AM/PM settlement values)."""
    from data_feeds.chain_store import ChainStore
    from data_feeds.ohlc import load_ohlc

    name = symbol or root
    try:
        if name is None:
            raise VolsuiteError("give --symbol (or --root for a long-format file)")
        with console.status(f"reading {source}"):
            frame = load_ohlc(source, root=root)
        with ChainStore(db) as store, console.status(f"writing {name} bars into {db}"):
            report = store.ingest_underlying(frame, name, data_source=str(source))
    except VolsuiteError as exc:
        _fail(exc)
        return
    console.print(
        f"{report.symbol} from {source}: {report.rows:,} bars "
        f"({frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d}); added {report.added:,}, "
        f"updated {report.updated:,}, unchanged {report.unchanged:,} -> {db}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"[dim]data[/] {frame.attrs['load_report'].summary()}", highlight=False)


@chains_app.command("info")
def chains_info(db: DbOption = DEFAULT_DB) -> None:
    """Per-source summary of the chain store and the flagged holiday snapshots."""
    import numpy as np

    from data_feeds.chain_store import ChainStore

    try:
        store = ChainStore(db, read_only=True)
    except VolsuiteError as exc:
        _fail(exc)
        return
    with store:
        info = store.info()
        reasons = store.quarantine_summary()
        bars = store.connection.execute(
            "SELECT symbol, min(date), max(date), count(*) FROM underlying_prices GROUP BY 1 "
            "ORDER BY 1"
        ).fetchall()
    table = Table(title=f"chain store {db}", title_justify="left")
    for col, justify in (
        ("underlying", "left"),
        ("data source", "left"),
        ("trading days", "right"),
        ("date range", "left"),
        ("roots", "left"),
        ("expiries/date min/med/max", "right"),
        ("snapshots", "right"),
        ("rows", "right"),
        ("quarantined", "right"),
    ):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    known = info[info["underlying"].notna()]
    for (und, source), grp in known.groupby(["underlying", "data_source"], sort=True):
        days = grp[(grp["rows"] > 0) & ~grp["holiday"]]
        stored = grp[grp["rows"] > 0]
        exp = stored["n_expiries"].to_numpy()
        roots = sorted({r for rs in grp["roots"].dropna() for r in rs.split(",")})
        span = (
            f"{stored['quote_date'].min():%Y-%m-%d} .. {stored['quote_date'].max():%Y-%m-%d}"
            if len(stored)
            else "-"
        )
        table.add_row(
            str(und),
            str(source),
            f"{len(days)}",
            span,
            ",".join(roots),
            f"{exp.min()}/{np.median(exp):g}/{exp.max()}" if len(exp) else "-",
            f"{int(stored['snapshots'].sum()):,}",
            f"{int(grp['rows'].sum()):,}",
            f"{int(grp['quarantined'].sum()):,}",
        )
    console.print(table)
    if len(reasons):
        qt = Table(title="quarantined rows by reason", title_justify="left")
        qt.add_column("data source", overflow="fold")
        qt.add_column("reason", overflow="fold")
        qt.add_column("rows", justify="right")
        for _, r in reasons.iterrows():
            qt.add_row(str(r["data_source"]), str(r["reason"]), f"{int(r['rows']):,}")
        console.print(qt)
    holidays = info[info["holiday"]]
    if len(holidays):
        ht = Table(title="holiday snapshots (quote date not an NYSE session)", title_justify="left")
        for col in ("quote date", "underlying", "data source", "stored rows", "quarantined"):
            ht.add_column(col, overflow="fold")
        for _, r in holidays.iterrows():
            ht.add_row(
                f"{r['quote_date']:%Y-%m-%d}",
                str(r["underlying"]),
                str(r["data_source"]),
                f"{int(r['rows']):,}",
                f"{int(r['quarantined']):,}",
            )
        console.print(ht)
    if bars:
        bt_ = Table(title="underlying daily bars", title_justify="left")
        for col in ("symbol", "first", "last", "bars"):
            bt_.add_column(col)
        for sym, first, last, n in bars:
            bt_.add_row(sym, f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}", f"{n:,}")
        console.print(bt_)


def _register_plugins() -> None:
    """Command groups living in their own modules (``experiments/cli_<area>.py``)."""
    from experiments.cli_paper import register as register_paper
    from experiments.cli_surface import register as register_surface
    from experiments.cli_worker import register as register_worker

    register_paper(app)
    register_surface(app)
    register_worker(app)
    from experiments.summary import register as register_summary  # volsuite summary

    register_summary(app)
    from experiments.cli_dashboard import register as register_dashboard  # volsuite dashboard

    register_dashboard(app)
    from experiments.cli_fetch import register as register_fetch  # volsuite fetch / update

    register_fetch(app)
    from experiments.cli_portfolio import register as register_portfolio  # portfolio, stress

    register_portfolio(app)
    from experiments.cli_audit import register as register_audit  # volsuite audit

    register_audit(app)


_register_plugins()


def main() -> None:  # pragma: no cover - console entry for `python -m experiments.cli`
    """Entry point."""
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
