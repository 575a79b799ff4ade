"""``volsuite surface``: fit, store and plot volatility surfaces of the chain store (typer + rich).

``volsuite surface fit [--db DB] (--date D | --all) [--model svi|ssvi|sabr|heston]``
    fits every expiry of the date(s) (:func:`experiments.surface_jobs.fit_surfaces`), stores
    ``fitted_surfaces`` and ``term_structure_params`` (a date's rows of the model replaced in
    one transaction), prints the per-expiry fit table of one date, or a per-date summary with a
    progress bar for ``--all``.
``volsuite surface plot --date D [--db DB] [--model svi] [--out FILE.html]``
    writes a plotly HTML page: the 3D implied-vol surface of the fitted expiries and one smile
    per expiry (market mid vols with bid/ask implied-vol bars, the fitted curve over them). The
    date is re-fitted in memory with the same code and settings as ``fit`` (deterministic:
    the numbers ``fit`` stores).
``volsuite surface vrp [--db DB] [--symbol SPX] [--model svi]``
    fills ``realized_volatility`` and ``vrp_metrics`` from the store's daily bars
    (``volsuite ingest underlying``) and the stored fits.
``volsuite surface term --date D [--db DB] [--model svi] [--csv FILE]``
    the stored ATM term structure of a date: per-expiry table, the power law ``a T^b`` and a
    sparkline of ATM vol by days to expiry (design document 004, section 6.1).
``volsuite surface params [--expiry-bucket 30d] [--db DB] [--model svi] [--csv FILE]``
    parameter evolution: per date, the fitted expiry nearest the bucket's days to expiry with
    its SVI parameters, ATM vol, RR25 and fit error; sparklines of ATM vol, RR25 and rho.

Wire it into the main app with :func:`register`. User errors print one line ``error: ...`` and
exit with status 2.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_feeds.errors import VolsuiteError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import plotly.graph_objects as go

    from data_feeds.chains import ChainSnapshot
    from pricing.surface_fit import SnapshotSurface

console = Console()
err_console = Console(stderr=True)

DEFAULT_DB = Path("results/chains.duckdb")
DbOption = Annotated[Path, typer.Option("--db", help="Chain store (DuckDB file).")]
ModelOption = Annotated[
    str, typer.Option("--model", help="Surface model: svi | ssvi | sabr | heston.")
]
ForwardsOption = Annotated[
    str,
    typer.Option(
        "--forwards",
        help="snapshot: parity forward of the 3 strikes nearest the money, rate 0 | parity: "
        "robust C - P = D (F - K) regression per expiry (forward and discount).",
    ),
]


def _analytics(forwards: str) -> Callable[[ChainSnapshot], pd.DataFrame] | None:
    """The ``analytics`` of :func:`pricing.surface_fit.fit_snapshot` for ``--forwards``."""
    from pricing.surface_fit import parity_analytics

    if forwards == "snapshot":
        return None
    if forwards == "parity":
        return parity_analytics
    raise VolsuiteError(f"--forwards must be 'snapshot' or 'parity', got {forwards!r}")


__all__ = ["register", "surface_figures"]


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _fmt(value: object, spec: str, scale: float = 1.0) -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if not math.isfinite(v) else format(scale * v, spec)


def _expiry_table(surf: SnapshotSurface) -> Table:
    """Per-expiry fit table of one date."""
    fitted = surf.fitted
    table = Table(
        title=(
            f"{surf.underlying} {surf.model.upper()} surface {surf.quote_time:%Y-%m-%d %H:%M %Z}: "
            f"{len(fitted)}/{len(surf.slices)} expiries fitted "
            f"({1e3 * surf.timings.get('total', float('nan')):.0f} ms)"
        ),
        title_justify="left",
    )
    for col in ("expiry", "dte", "quotes", "ATM%", "RR25", "RMSE", "max", "arb"):
        table.add_column(col, justify="left" if col in ("expiry", "arb") else "right", no_wrap=True)
    for r in surf.slices.itertuples():
        ok = r.status == "ok"
        rep = "".join(x[0] for x in str(r.repair or "").split("+") if x)
        table.add_row(
            f"{r.root} {r.expiration:%y-%m-%d}",
            _fmt(r.dte, ".0f"),
            f"{int(r.num_points)}/{int(r.n_quotes)}",
            _fmt(r.atm_vol, ".1f", 100.0),
            _fmt(r.skew_25delta, ".1f", 100.0),
            _fmt(r.rmse, ".2f"),
            _fmt(r.max_error, ".2f"),
            f"{r.butterfly_arbitrage_violations}/{r.calendar_arbitrage_violations} {rep}"
            if ok
            else "[yellow]skipped[/]",
        )
    table.caption = (
        "quotes: fitted/listed; ATM%: model vol at k = 0; RR25: IV(25d call) - IV(25d put) and "
        "RMSE, max (fit errors): vol points; arb: butterfly/calendar grid points left, "
        "repairs w(ings)/c(alendar)"
    )
    return table


def fit_cmd(
    db: DbOption = DEFAULT_DB,
    date: Annotated[str | None, typer.Option("--date", help="Quote date YYYY-MM-DD.")] = None,
    all_dates: Annotated[bool, typer.Option("--all", help="Every stored quote date.")] = False,
    model: ModelOption = "svi",
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying (SPX).")] = "SPX",
    forwards: ForwardsOption = "snapshot",
) -> None:
    """Fit and store the surfaces of one date (--date) or of every date (--all)."""
    from data_feeds.chain_store import ChainStore
    from experiments.surface_jobs import fit_surfaces

    if (date is None) == (not all_dates):
        _fail(VolsuiteError("give exactly one of --date D or --all"))
        return
    try:
        analytics = _analytics(forwards)
        store = ChainStore(db)
    except VolsuiteError as exc:
        _fail(exc)
        return
    with store:
        try:
            if all_dates:
                progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                )
                with progress:
                    task = progress.add_task(f"fitting {model.upper()} surfaces", total=None)

                    def on_date(i: int, n: int, day: dt.date) -> None:
                        progress.update(task, completed=i, total=n, description=f"{day}")

                    report = fit_surfaces(
                        store,
                        "all",
                        model,
                        underlying=underlying,
                        analytics=analytics,
                        progress=on_date,
                    )
            else:
                report = fit_surfaces(
                    store, date, model, underlying=underlying, analytics=analytics
                )
        except (VolsuiteError, ValueError) as exc:
            _fail(exc)
            return
    if report.added_columns:
        console.print(
            f"[dim]schema[/] added {len(report.added_columns)} columns to the surface tables",
            highlight=False,
        )
    if not all_dates:
        surf = report.surfaces[0]
        console.print(_expiry_table(surf))
        atm, skew = surf.term_structure()
        if atm is not None and skew is not None:
            console.print(
                f"term structure (dte >= 7): ATM vol = {atm.a:.4f} T^{atm.b:+.4f} (RMSE "
                f"{100 * atm.rmse:.2f} pts, {atm.n_points} expiries); RR25 = {skew.a:+.4f} "
                f"T^{skew.b:+.4f} (RMSE {100 * skew.rmse:.2f} pts)",
                highlight=False,
            )
        for r in surf.slices[surf.slices["status"] != "ok"].itertuples():
            console.print(
                f"[yellow]skipped[/] {r.root} {r.expiration:%Y-%m-%d}: {r.status}",
                highlight=False,
                soft_wrap=True,
            )
        removed = ", ".join(f"{k} {v:,}" for k, v in surf.removed.items() if v)
        console.print(f"[dim]left out of the fit[/] {removed}", highlight=False, soft_wrap=True)
    else:
        summary = report.summary()
        table = Table(title=f"{report.underlying} {model.upper()} surfaces", title_justify="left")
        for col in ("date", "fitted", "skipped", "med RMSE", "max RMSE", "arb", "repaired", "ms"):
            table.add_column(col, justify="left" if col == "date" else "right", no_wrap=True)
        for r in summary.itertuples():
            table.add_row(
                f"{r.quote_date:%Y-%m-%d}",
                str(r.fitted),
                str(r.skipped),
                _fmt(r.median_rmse, ".3f"),
                _fmt(r.max_rmse, ".3f"),
                str(r.butterfly + r.calendar),
                str(r.repaired),
                _fmt(r.seconds, ".0f", 1e3),
            )
        console.print(table)
    console.print(
        f"{report.rows_written} fitted_surfaces rows written to {db} "
        f"({len(report.surfaces)} date(s), {report.seconds:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )


def surface_figures(
    surf: SnapshotSurface, bid_ask_vols: tuple | None = None
) -> tuple[go.Figure, go.Figure]:
    """The 3D surface and the per-expiry smile figures of a fitted snapshot.

    Parameters
    ----------
    surf : SnapshotSurface
        From :func:`pricing.surface_fit.fit_snapshot`.
    bid_ask_vols : tuple of numpy.ndarray, optional
        ``(bid_vol, ask_vol)`` per row of ``surf.points`` (decimal; NaN where a price has no
        vol); default computed with :func:`pricing.implied_vol` (Black-76 on the row's forward).

    Returns
    -------
    tuple of plotly.graph_objects.Figure
        ``(surface, smiles)``: implied vol in percent against log-moneyness ``ln(K/F)`` and
        days to expiry.
    """
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from pricing import implied_vol
    from pricing.svi import svi_total_variance

    pts = surf.points
    if bid_ask_vols is None:
        f = pts["forward"].to_numpy(dtype=float)
        k = pts["strike"].to_numpy(dtype=float)
        t = pts["tte"].to_numpy(dtype=float)
        r = pts["right"].to_numpy(dtype=object)
        vols = []
        for side in ("bid", "ask"):
            vols.append(
                np.asarray(implied_vol(pts[side].to_numpy(dtype=float), f, k, t, 0.0, 0.0, r))
            )
        bid_ask_vols = (vols[0], vols[1])
    bid_vol, ask_vol = bid_ask_vols
    fitted = surf.fitted.reset_index(drop=True)
    svi_cols = ["svi_a", "svi_b", "svi_rho", "svi_m", "svi_sigma"]
    has_svi = np.isfinite(fitted[svi_cols].to_numpy(dtype=float)).all(axis=1)

    def model_vol(row: object, kk: np.ndarray) -> np.ndarray:
        sel = (pts["root"] == row.root) & (  # type: ignore[attr-defined]
            pts["expiration"].to_numpy().astype("datetime64[D]") == np.datetime64(row.expiration)  # type: ignore[attr-defined]
        )
        mk, mv = pts.loc[sel, "log_moneyness"], pts.loc[sel, "model_vol"]
        return np.interp(kk, mk.to_numpy(), mv.to_numpy())

    # 3D surface on a common log-moneyness grid (inside every slice's quoted range)
    surface = go.Figure()
    if len(fitted):
        lo = float(np.nanpercentile(fitted["k_min"], 50))
        hi = float(np.nanpercentile(fitted["k_max"], 50))
        kk = np.linspace(lo, hi, 61)
        z = np.full((len(fitted), kk.size), np.nan)
        for i, row in enumerate(fitted.itertuples()):
            if has_svi[i]:
                p = fitted.loc[i, svi_cols].to_numpy(dtype=float)
                z[i] = np.sqrt(np.maximum(svi_total_variance(kk, *p), 0.0) / row.tte)
            else:
                z[i] = model_vol(row, kk)
            z[i, (kk < row.k_min - 0.02) | (kk > row.k_max + 0.02)] = np.nan
        surface.add_trace(
            go.Surface(
                x=kk,
                y=fitted["dte"].to_numpy(dtype=float),
                z=100.0 * z,
                colorscale="Viridis",
                colorbar={"title": "IV %"},
                name="fitted",
            )
        )
    surface.update_layout(
        title=(
            f"{surf.underlying} {surf.model.upper()} implied-vol surface, "
            f"{surf.quote_time:%Y-%m-%d %H:%M %Z}"
        ),
        scene={
            "xaxis_title": "log-moneyness ln(K/F)",
            "yaxis_title": "days to expiry",
            "zaxis_title": "implied vol %",
        },
        height=700,
    )

    # one smile per fitted expiry
    n = len(fitted)
    cols = 4
    rows = max(1, math.ceil(n / cols))
    titles = [f"{r.root} {r.expiration:%Y-%m-%d} ({int(r.dte)}d)" for r in fitted.itertuples()]
    smiles = make_subplots(rows=rows, cols=cols, subplot_titles=titles or ["no fit"])
    exp_days = pts["expiration"].to_numpy().astype("datetime64[D]")
    for i, row in enumerate(fitted.itertuples()):
        rr, cc = i // cols + 1, i % cols + 1
        sel = ((pts["root"] == row.root).to_numpy()) & (exp_days == np.datetime64(row.expiration))
        mk = pts["log_moneyness"].to_numpy()[sel]
        mid = 100.0 * pts["implied_vol"].to_numpy()[sel]
        up = 100.0 * ask_vol[sel] - mid
        down = mid - 100.0 * bid_vol[sel]
        smiles.add_trace(
            go.Scatter(
                x=mk,
                y=mid,
                mode="markers",
                marker={"size": 4, "color": "black"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": np.where(np.isfinite(up), up, 0.0),
                    "arrayminus": np.where(np.isfinite(down), down, 0.0),
                    "thickness": 1,
                    "width": 0,
                },
                name="market (bid/ask)",
                showlegend=i == 0,
                legendgroup="market",
            ),
            row=rr,
            col=cc,
        )
        span = row.k_max - row.k_min
        kk = np.linspace(row.k_min - 0.1 * span, row.k_max + 0.1 * span, 121)
        if has_svi[i]:
            p = fitted.loc[i, svi_cols].to_numpy(dtype=float)
            fit_vol = np.sqrt(np.maximum(svi_total_variance(kk, *p), 0.0) / row.tte)
        else:
            kk = np.sort(mk)
            fit_vol = model_vol(row, kk)
        smiles.add_trace(
            go.Scatter(
                x=kk,
                y=100.0 * fit_vol,
                mode="lines",
                line={"color": "crimson"},
                name=f"{surf.model.upper()} fit",
                showlegend=i == 0,
                legendgroup="fit",
            ),
            row=rr,
            col=cc,
        )
    smiles.update_layout(
        title="smiles: market mid implied vol with bid/ask bars, fitted curve (IV % vs ln(K/F))",
        height=max(400, 260 * rows),
    )
    return surface, smiles


def plot_cmd(
    date: Annotated[str, typer.Option("--date", help="Quote date YYYY-MM-DD.")],
    db: DbOption = DEFAULT_DB,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default results/surface_<date>.html).")
    ] = None,
    model: ModelOption = "svi",
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying (SPX).")] = "SPX",
    forwards: ForwardsOption = "snapshot",
) -> None:
    """Write a plotly HTML page of one date's surface and smiles."""
    from data_feeds.chain_store import ChainStore
    from pricing.surface_fit import fit_snapshot

    try:
        analytics = _analytics(forwards)
        with ChainStore(db, read_only=True) as store:
            snap = store.snapshot(underlying, date)
        surf = fit_snapshot(snap, model, analytics=analytics)
    except (VolsuiteError, ValueError) as exc:
        _fail(exc)
        return
    surface, smiles = surface_figures(surf)
    path = out or Path("results") / f"surface_{underlying}_{surf.quote_time:%Y-%m-%d}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    html = (
        "<html><head><meta charset='utf-8'><title>"
        f"{underlying} {model.upper()} surface {surf.quote_time:%Y-%m-%d}</title></head><body>"
        + surface.to_html(full_html=False, include_plotlyjs=True)
        + smiles.to_html(full_html=False, include_plotlyjs=False)
        + "</body></html>"
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # nothing half-written
    console.print(
        f"{len(surf.fitted)} fitted expiries of {surf.quote_time:%Y-%m-%d} -> {path}",
        highlight=False,
        soft_wrap=True,
    )


def vrp_cmd(
    db: DbOption = DEFAULT_DB,
    symbol: Annotated[str, typer.Option("--symbol", help="Underlying with stored bars.")] = "SPX",
    model: ModelOption = "svi",
) -> None:
    """Fill realized_volatility and vrp_metrics from the stored bars and fits."""
    from data_feeds.chain_store import ChainStore
    from experiments.surface_jobs import store_realized_volatility, store_vrp_metrics

    try:
        with ChainStore(db) as store:
            rv = store_realized_volatility(store, symbol)
            vrp = store_vrp_metrics(store, symbol, model)
    except (VolsuiteError, ValueError) as exc:
        _fail(exc)
        return
    table = Table(title=f"{symbol} VRP ({model.upper()} ATM vol - trailing realized), last rows")
    for col in ("date", "IV 30d %", "RV 30d %", "VRP 30d", "VRP 60d", "VRP 90d", "z"):
        table.add_column(col, justify="left" if col == "date" else "right")
    for r in vrp.tail(10).itertuples():
        table.add_row(
            f"{r.date:%Y-%m-%d}",
            _fmt(r.implied_vol_30d, ".2f", 100.0),
            _fmt(r.realized_vol_30d, ".2f", 100.0),
            _fmt(r.vrp_30d, ".2f", 100.0),
            _fmt(r.vrp_60d, ".2f", 100.0),
            _fmt(r.vrp_90d, ".2f", 100.0),
            _fmt(r.vrp_zscore, ".2f"),
        )
    console.print(table)
    console.print(
        f"realized_volatility: {len(rv):,} sessions; vrp_metrics: {len(vrp):,} dates -> {db}",
        highlight=False,
        soft_wrap=True,
    )


CsvOption = Annotated[
    Path | None, typer.Option("--csv", help="Also write the table to this CSV file.")
]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` to ``path`` (temporary file + rename: nothing half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    console.print(f"{len(frame)} rows -> {path}", highlight=False, soft_wrap=True)


def term_cmd(
    date: Annotated[str, typer.Option("--date", help="Quote date YYYY-MM-DD.")],
    db: DbOption = DEFAULT_DB,
    model: ModelOption = "svi",
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying (SPX).")] = "SPX",
    csv: CsvOption = None,
) -> None:
    """ATM term structure of one date (stored fits): table, power law and sparkline."""
    from experiments.dashboard.data import sparkline, term_structure, with_store

    try:
        table, params = with_store(
            db, lambda store: term_structure(store, date, model, underlying=underlying)
        )
    except (VolsuiteError, ValueError) as exc:
        _fail(exc)
        return
    out = Table(
        title=f"{underlying} {model.upper()} ATM term structure {date} ({len(table)} expiries)",
        title_justify="left",
    )
    for col in ("expiry", "dte", "ATM%", "RR25", "RMSE"):
        out.add_column(col, justify="left" if col == "expiry" else "right", no_wrap=True)
    for r in table.itertuples():
        out.add_row(
            f"{r.root} {r.expiration:%Y-%m-%d}",
            _fmt(r.dte, ".0f"),
            _fmt(r.atm_vol, ".2f", 100.0),
            _fmt(r.skew_25delta, ".2f", 100.0),
            _fmt(r.rmse, ".2f"),
        )
    out.caption = "ATM%: model vol at k = 0; RR25: IV(25d call) - IV(25d put), vol points"
    console.print(out)
    console.print(
        f"ATM vol by days to expiry  {sparkline(table['atm_vol'])}  "
        f"({_fmt(table['atm_vol'].min(), '.1f', 100.0)}% .. "
        f"{_fmt(table['atm_vol'].max(), '.1f', 100.0)}%)",
        highlight=False,
        soft_wrap=True,
    )
    if params is not None:
        console.print(
            f"power law (dte >= {_fmt(params.get('min_dte'), '.0f')}): ATM vol = "
            f"{_fmt(params.get('atm_term_a'), '.4f')} T^{_fmt(params.get('atm_term_b'), '+.4f')} "
            f"(RMSE {_fmt(params.get('atm_term_rmse'), '.2f')} vol pts); RR25 = "
            f"{_fmt(params.get('skew_term_a'), '+.4f')} "
            f"T^{_fmt(params.get('skew_term_b'), '+.4f')}",
            highlight=False,
            soft_wrap=True,
        )
    if csv is not None:
        _write_csv(table, csv)


def params_cmd(
    expiry_bucket: Annotated[
        str, typer.Option("--expiry-bucket", help="Days to expiry of the tracked smile: 30d.")
    ] = "30d",
    db: DbOption = DEFAULT_DB,
    model: ModelOption = "svi",
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying (SPX).")] = "SPX",
    csv: CsvOption = None,
) -> None:
    """Parameter evolution of the fitted expiry nearest a days-to-expiry bucket, per date."""
    from experiments.dashboard.data import (
        expiry_bucket_days,
        param_evolution,
        sparkline,
        with_store,
    )

    try:
        days = expiry_bucket_days(expiry_bucket)
        frame = with_store(
            db, lambda store: param_evolution(store, days, model, underlying=underlying)
        )
    except (VolsuiteError, ValueError) as exc:
        _fail(exc)
        return
    out = Table(
        title=f"{underlying} {model.upper()} smile nearest {days} days to expiry, per date",
        title_justify="left",
    )
    cols = ("date", "expiry", "dte", "ATM%", "RR25", "RMSE", "a", "b", "rho", "m", "sigma", "arb")
    for col in cols:
        out.add_column(col, justify="left" if col in ("date", "expiry") else "right", no_wrap=True)
    for r in frame.itertuples():
        out.add_row(
            f"{r.quote_date:%Y-%m-%d}",
            f"{r.root} {r.expiration:%y-%m-%d}",
            _fmt(r.dte, ".0f"),
            _fmt(r.atm_vol, ".2f", 100.0),
            _fmt(r.skew_25delta, ".2f", 100.0),
            _fmt(r.rmse, ".2f"),
            _fmt(r.svi_a, ".4f"),
            _fmt(r.svi_b, ".4f"),
            _fmt(r.svi_rho, "+.3f"),
            _fmt(r.svi_m, "+.4f"),
            _fmt(r.svi_sigma, ".4f"),
            f"{_fmt(r.butterfly_arbitrage_violations, '.0f')}/"
            f"{_fmt(r.calendar_arbitrage_violations, '.0f')}",
        )
    out.caption = (
        "a b rho m sigma: raw SVI total variance w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + "
        "sigma^2)); ATM%, RR25, RMSE in vol points; arb: butterfly/calendar grid points"
    )
    console.print(out)
    for label, col in (("ATM vol", "atm_vol"), ("RR25", "skew_25delta"), ("SVI rho", "svi_rho")):
        console.print(
            f"{label:<8} {sparkline(frame[col])}", highlight=False, soft_wrap=True, markup=False
        )
    if csv is not None:
        _write_csv(frame, csv)


def register(app: typer.Typer) -> None:
    """Add the ``surface`` command group (``fit``, ``plot``, ``vrp``, ``term``, ``params``).

    Parameters
    ----------
    app : typer.Typer
        The ``volsuite`` app (``experiments.cli.app``) or any typer app.
    """
    surface_app = typer.Typer(
        no_args_is_help=True, help="Fit, store and plot volatility surfaces of the chain store."
    )
    surface_app.command("fit")(fit_cmd)
    surface_app.command("plot")(plot_cmd)
    surface_app.command("vrp")(vrp_cmd)
    surface_app.command("term")(term_cmd)
    surface_app.command("params")(params_cmd)
    app.add_typer(surface_app, name="surface")
