"""``volsuite fetch`` and ``volsuite update``: vendor data into the chain store (typer + rich).

``volsuite fetch chains --vendor thetadata|massive --root SPX|SPXW|SPY --start D --end D
[--interval eod|1m] [--db PATH] [--resume] [--dry-run] [--cache DIR]``
    backfills option chains one NYSE session at a time through the file-ingest validation
    (:func:`data_feeds.vendors.jobs.backfill_chains`), with a progress bar of dates done/left
    and rows.
``volsuite fetch underlying --vendor ... --symbol SPX --start D --end D [--db PATH]``
    daily bars of the underlying (:func:`data_feeds.vendors.jobs.backfill_underlying`).
``volsuite update --config update.toml [--date D]``
    the daily job for cron: yesterday's chains and bars for the configured roots, surface fits,
    RV/VRP tables, one data-quality line per root
    (:func:`data_feeds.vendors.jobs.run_update`).

Keys: Massive's only from ``MASSIVE_API_KEY``; Theta Data's credentials stay with the Theta
Terminal. User errors print one line ``error: ...`` and exit with status 2; a backfill with
failed dates exits with status 1.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from data_feeds.errors import VolsuiteError

console = Console()
err_console = Console(stderr=True)

VENDORS = ("thetadata", "massive")
ROOTS = ("SPX", "SPXW", "SPY")

VendorOpt = Annotated[str, typer.Option("--vendor", help="thetadata | massive.")]
StartOpt = Annotated[str, typer.Option("--start", help="First quote date, YYYY-MM-DD.")]
EndOpt = Annotated[str, typer.Option("--end", help="Last quote date, YYYY-MM-DD (inclusive).")]
DbOpt = Annotated[Path, typer.Option("--db", help="Chain store (DuckDB file).")]
CacheOpt = Annotated[
    Path,
    typer.Option("--cache", help="Cache dir: raw responses (parquet), staging files, job state."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="Vendor address (default: Theta Terminal http://127.0.0.1:25503/v3, Massive "
        "https://api.massive.com).",
    ),
]
ConcOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        help="Requests in flight (Theta: your plan's concurrent-request limit, 1/2/4/8).",
    ),
]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Seconds per request.")]


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _date(text: str, opt: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date YYYY-MM-DD", param_hint=opt) from None


def _check_choice(value: str, choices: tuple[str, ...], opt: str) -> str:
    v = value.strip()
    if v.lower() in choices:
        return v.lower()
    if v.upper() in choices:
        return v.upper()
    raise typer.BadParameter(f"{value!r}: expected one of {', '.join(choices)}", param_hint=opt)


def chains_cmd(
    vendor: VendorOpt,
    root: Annotated[str, typer.Option("--root", help="Option root: SPX | SPXW | SPY.")],
    start: StartOpt,
    end: EndOpt,
    interval: Annotated[
        str, typer.Option("--interval", help="eod (one snapshot a day) | 1m (Theta only).")
    ] = "eod",
    db: DbOpt = Path("results/chains.duckdb"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip dates done before (job state + store).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be fetched; send nothing.")
    ] = False,
    cache: CacheOpt = Path("results/vendor_cache"),
    base_url: BaseUrlOpt = None,
    concurrency: ConcOpt = None,
    timeout: TimeoutOpt = None,
    replace_dates: Annotated[
        bool,
        typer.Option("--replace-dates", help="Let a re-fetch with fewer rows replace a day."),
    ] = False,
) -> None:
    """Backfill option chains from a vendor into the chain store, one transaction per date."""
    from data_feeds.vendors.jobs import (
        INTERVALS,
        JobState,
        backfill_chains,
        make_client,
        plan_days,
        rich_progress,
        sessions_between,
    )

    vendor = _check_choice(vendor, VENDORS, "--vendor")
    root = _check_choice(root, ROOTS, "--root")
    interval = _check_choice(interval, INTERVALS, "--interval")
    d0, d1 = _date(start, "--start"), _date(end, "--end")
    try:
        days = sessions_between(d0, d1)
        state = JobState.for_job(cache, vendor, root, interval)
        if dry_run:
            from data_feeds.chain_store import ChainStore

            store = ChainStore(db, read_only=True) if db.is_file() else None
            try:
                todo, done = plan_days(store, state, days, resume)
            finally:
                if store is not None:
                    store.close()
            per_day = (
                "2 (greeks EOD + open interest)"
                if vendor == "thetadata"
                else (
                    "about 2 x contracts + 2 (contracts pages, one quote and one bar per contract)"
                )
            )
            console.print(
                f"dry run: {vendor} {root} {interval} {d0}..{d1}: {len(days)} NYSE sessions, "
                f"{len(done)} done (skipped), {len(todo)} to fetch; requests per date: {per_day}; "
                f"store {db}; cache {cache}",
                highlight=False,
            )
            for d in todo:
                console.print(f"  would fetch {d:%Y-%m-%d}", highlight=False)
            return
        from data_feeds.chain_store import ChainStore

        client = make_client(
            vendor, cache_dir=cache, base_url=base_url, concurrency=concurrency, timeout=timeout
        )
        db.parent.mkdir(parents=True, exist_ok=True)
        with ChainStore(db) as store, rich_progress(len(days), f"{vendor} {root}") as on_day:
            rep = backfill_chains(
                client,
                store,
                root,
                d0,
                d1,
                cache_dir=cache,
                interval=interval,
                resume=resume,
                replace_dates=replace_dates,
                on_day=on_day,
            )
    except VolsuiteError as exc:
        _fail(exc)
        return
    console.print(rep.summary(), highlight=False)
    for d in rep.days:
        if d.status in ("failed", "empty"):
            console.print(f"  {d.day:%Y-%m-%d} {d.status}: {d.error}", highlight=False)
    if rep.count("failed"):
        raise typer.Exit(code=1)


def underlying_cmd(
    vendor: VendorOpt,
    symbol: Annotated[str, typer.Option("--symbol", help="Underlying: SPX (index) | SPY.")],
    start: StartOpt,
    end: EndOpt,
    db: DbOpt = Path("results/chains.duckdb"),
    cache: CacheOpt = Path("results/vendor_cache"),
    base_url: BaseUrlOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be fetched.")] = (
        False
    ),
    timeout: TimeoutOpt = None,
) -> None:
    """Fetch daily bars of the underlying into the store (upsert; idempotent)."""
    from data_feeds.vendors.jobs import backfill_underlying, make_client, sessions_between

    vendor = _check_choice(vendor, VENDORS, "--vendor")
    d0, d1 = _date(start, "--start"), _date(end, "--end")
    try:
        if dry_run:
            n = len(sessions_between(d0, d1))
            console.print(
                f"dry run: {vendor} {symbol.upper()} daily bars {d0}..{d1} ({n} sessions), one "
                f"request; store {db}",
                highlight=False,
            )
            return
        from data_feeds.chain_store import ChainStore

        client = make_client(vendor, cache_dir=cache, base_url=base_url, timeout=timeout)
        db.parent.mkdir(parents=True, exist_ok=True)
        with ChainStore(db) as store:
            rep = backfill_underlying(client, store, symbol, d0, d1)
    except VolsuiteError as exc:
        _fail(exc)
        return
    console.print(
        f"{rep.symbol}: read {rep.rows_read}, added {rep.added}, updated {rep.updated}, "
        f"unchanged {rep.unchanged} ({rep.data_source})",
        highlight=False,
    )


def update_cmd(
    config: Annotated[
        Path, typer.Option("--config", help="update.toml (see experiments/update.example.toml).")
    ],
    date: Annotated[
        str | None,
        typer.Option("--date", help="Session to fetch (default: the session before today)."),
    ] = None,
) -> None:
    """Daily job: yesterday's chains + bars, surface fits, RV/VRP, a data-quality line per root."""
    from data_feeds.vendors.jobs import UpdateConfig, run_update

    day = _date(date, "--date") if date else None
    try:
        cfg = UpdateConfig.from_toml(config)
        lines = run_update(cfg, day, echo=lambda s: console.print(s, highlight=False))
    except VolsuiteError as exc:
        _fail(exc)
        return
    if any(ln.status == "failed" for ln in lines):
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``fetch`` (``chains``, ``underlying``) and ``update`` to ``app``.

    Parameters
    ----------
    app : typer.Typer
        The ``volsuite`` app (``experiments.cli.app``).
    """
    fetch_app = typer.Typer(
        no_args_is_help=True, help="Fetch option chains and bars from Theta Data or Massive."
    )
    fetch_app.command("chains")(chains_cmd)
    fetch_app.command("underlying")(underlying_cmd)
    app.add_typer(fetch_app, name="fetch")
    app.command("update")(update_cmd)
