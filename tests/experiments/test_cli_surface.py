"""``volsuite surface fit|plot|vrp`` (experiments.cli_surface) through typer's CliRunner.

A chain store of three real 2019 quote dates is built in a temporary folder (a subset of the
shared parquet file written there by DuckDB, then ingested): ``--all`` fits exactly those
dates, checked against the stored rows read back with plain SQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from data_feeds import load_ohlc
from data_feeds.chain_store import ChainStore
from experiments.cli_surface import register

pytestmark = pytest.mark.shared_data

DAYS = ("2019-05-14", "2019-05-15", "2019-05-16")


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def db(shared_data: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_surface")
    subset = folder / "spx_3days.parquet"
    src = shared_data / "options/spx_chains_2019q2.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{src}') WHERE CAST(quotedate AS DATE) IN "
            f"({', '.join(repr(d) for d in DAYS)})) TO '{subset}' (FORMAT parquet)"
        )
    path = folder / "chains.duckdb"
    with ChainStore(path) as store:
        store.ingest(subset, "vendor")
        bars = load_ohlc(shared_data / "index/spx_vix_spy_qqq_daily.csv", root="SPX")
        store.ingest_underlying(bars, "SPX", data_source="spx_vix_spy_qqq_daily.csv")
    return path


def _count(db: Path, sql: str) -> int:
    with ChainStore(db, read_only=True) as store:
        return int(store.connection.execute(sql).fetchall()[0][0])


def test_fit_one_date_prints_the_expiry_table_and_stores_it(app, db):
    result = CliRunner().invoke(app, ["surface", "fit", "--db", str(db), "--date", DAYS[1]])
    assert result.exit_code == 0, result.output
    assert "SPX SVI surface 2019-05-15" in result.output
    assert "SPXW 19-05-17" in result.output and "term structure" in result.output
    m = re.search(r"(\d+) fitted_surfaces rows written", result.output)
    assert m is not None
    stored = _count(
        db,
        f"SELECT count(*) FROM fitted_surfaces WHERE quote_date = '{DAYS[1]}' "
        "AND model_type = 'SVI'",
    )
    assert stored == int(m.group(1)) > 30


def test_fit_all_fits_every_stored_date_with_a_progress_bar(app, db):
    result = CliRunner().invoke(app, ["surface", "fit", "--db", str(db), "--all"])
    assert result.exit_code == 0, result.output
    for day in DAYS:
        assert day in result.output
    assert "3 date(s)" in result.output
    assert _count(db, "SELECT count(DISTINCT quote_date) FROM fitted_surfaces") == 3
    assert _count(db, "SELECT count(*) FROM term_structure_params") == 3
    violations = _count(
        db,
        "SELECT coalesce(sum(butterfly_arbitrage_violations + calendar_arbitrage_violations), 0) "
        "FROM fitted_surfaces WHERE status = 'ok'",
    )
    assert violations == 0


def test_plot_writes_a_surface_and_smiles_with_bid_ask_bars(app, db, tmp_path):
    out = tmp_path / "surface.html"
    result = CliRunner().invoke(
        app, ["surface", "plot", "--db", str(db), "--date", DAYS[0], "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.count("Plotly.newPlot(") == 2  # the 3D surface and the smiles
    assert '"error_y"' in html and '"arrayminus"' in html  # bid/ask implied-vol bars
    n_fitted = int(re.search(r"(\d+) fitted expiries", result.output).group(1))
    assert html.count('"name":"SVI fit"') == n_fitted > 30  # one fitted curve per expiry
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


def test_figures_hold_the_surface_and_market_bid_ask_vols_from_quantlib(db):
    """The error bars of a smile end at the QuantLib implied vols of the bid and the ask."""
    import numpy as np

    from experiments.cli_surface import surface_figures
    from pricing import ql_implied_vol
    from pricing.surface_fit import fit_snapshot

    with ChainStore(db, read_only=True) as store:
        surf = fit_snapshot(store.snapshot("SPX", DAYS[0]))
    surface, smiles = surface_figures(surf)
    assert [t.type for t in surface.data] == ["surface"]
    market = [t for t in smiles.data if t.mode == "markers"]
    fits = [t for t in smiles.data if t.mode == "lines"]
    assert len(market) == len(fits) == len(surf.fitted)
    pts = surf.points
    first = surf.fitted.iloc[5]
    sel = (pts["root"] == first["root"]) & (
        pts["expiration"].to_numpy().astype("datetime64[D]") == np.datetime64(first["expiration"])
    )
    q = pts[sel].iloc[len(pts[sel]) // 2]
    trace = market[5]
    j = int(np.argmin(np.abs(np.asarray(trace.x) - q["log_moneyness"])))
    mid = trace.y[j]
    ask = ql_implied_vol(q["ask"], q["forward"], q["strike"], q["tte"], 0.0, 0.0, q["right"])
    bid = ql_implied_vol(q["bid"], q["forward"], q["strike"], q["tte"], 0.0, 0.0, q["right"])
    assert mid + trace.error_y.array[j] == pytest.approx(100 * ask, abs=1e-6)
    assert mid - trace.error_y.arrayminus[j] == pytest.approx(100 * bid, abs=1e-6)


def test_vrp_fills_realized_and_vrp_tables(app, db):
    CliRunner().invoke(app, ["surface", "fit", "--db", str(db), "--all"])
    result = CliRunner().invoke(app, ["surface", "vrp", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert _count(db, "SELECT count(*) FROM vrp_metrics") == 3
    assert _count(db, "SELECT count(*) FROM realized_volatility WHERE rv_21d IS NOT NULL") > 7000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2019-01-02"], "no SPX quotes on 2019-01-02"),
        ([], "give exactly one of --date D or --all"),
        (["--date", DAYS[0], "--all"], "give exactly one of --date D or --all"),
        (["--date", DAYS[0], "--model", "gvv"], "unknown surface model 'gvv'"),
    ],
)
def test_user_errors_exit_2_with_one_line(app, db, args, message):
    result = CliRunner().invoke(app, ["surface", "fit", "--db", str(db), *args])
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output


def test_missing_store_is_a_user_error(app, tmp_path):
    result = CliRunner().invoke(
        app, ["surface", "plot", "--db", str(tmp_path / "none.duckdb"), "--date", DAYS[0]]
    )
    assert result.exit_code == 2 and "chain store not found" in result.output


# -- volsuite surface term | params (CLI views of the stored fits) --------------------------------
@pytest.fixture(scope="module")
def fitted_db(app, db) -> Path:
    """The three-day store with every date fitted (``surface fit --all``, idempotent)."""
    result = CliRunner().invoke(app, ["surface", "fit", "--db", str(db), "--all"])
    assert result.exit_code == 0, result.output
    return db


def _sql(db: Path, sql: str):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).df()


def test_term_prints_the_stored_term_structure_and_exports_csv(app, fitted_db, tmp_path):
    import pandas as pd

    out = tmp_path / "term.csv"
    result = CliRunner().invoke(
        app,
        ["surface", "term", "--db", str(fitted_db), "--date", DAYS[1], "--csv", str(out)],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert f"ATM term structure {DAYS[1]}" in result.output
    assert "power law" in result.output and "ATM vol by days to expiry" in result.output
    # the CSV holds exactly the fitted ('ok') expiries of the date, as plain SQL reads them
    ref = _sql(
        fitted_db,
        "SELECT symbol, expiration_date, atm_vol FROM fitted_surfaces WHERE quote_date = "
        f"'{DAYS[1]}' AND model_type = 'SVI' AND status = 'ok' ORDER BY tte_years, symbol",
    )
    got = pd.read_csv(out)
    assert len(got) == len(ref) > 30
    assert list(got["root"]) == list(ref["symbol"])
    assert got["atm_vol"].to_numpy() == pytest.approx(ref["atm_vol"].to_numpy(), rel=1e-12)
    # the sparkline has one character per expiry, ▁ at the lowest ATM vol and █ at the highest
    line = next(x for x in result.output.splitlines() if "ATM vol by days to expiry" in x)
    spark = line.split("expiry", 1)[1].split("(")[0].strip()
    assert len(spark) == len(ref)
    assert spark[int(ref["atm_vol"].to_numpy().argmin())] == "▁"
    assert spark[int(ref["atm_vol"].to_numpy().argmax())] == "█"


def test_params_tracks_the_expiry_nearest_the_bucket(app, fitted_db, tmp_path):
    import pandas as pd

    out = tmp_path / "params.csv"
    result = CliRunner().invoke(
        app,
        ["surface", "params", "--db", str(fitted_db), "--expiry-bucket", "30d", "--csv", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    assert [str(d)[:10] for d in got["quote_date"]] == list(DAYS)
    # per date the smallest |dte - 30| among the fitted expiries, by SQL
    ref = _sql(
        fitted_db,
        "SELECT quote_date, min(abs(dte - 30)) AS gap FROM fitted_surfaces WHERE "
        "model_type = 'SVI' AND status = 'ok' GROUP BY 1 ORDER BY 1",
    )
    assert (got["dte"] - 30).abs().tolist() == ref["gap"].tolist()
    # the SVI parameters shown are the stored row's
    first = got.iloc[0]
    row = _sql(
        fitted_db,
        f"SELECT svi_a, svi_rho FROM fitted_surfaces WHERE quote_date = '{DAYS[0]}' AND "
        f"symbol = '{first['root']}' AND expiration_date = '{str(first['expiration'])[:10]}' "
        "AND model_type = 'SVI'",
    )
    assert first["svi_a"] == pytest.approx(row["svi_a"].iloc[0], rel=1e-12)
    assert first["svi_rho"] == pytest.approx(row["svi_rho"].iloc[0], rel=1e-12)
    assert "ATM vol" in result.output and "SVI rho" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["params", "--expiry-bucket", "thirty"], "--expiry-bucket must look like 30d"),
        (["params", "--expiry-bucket", "0d"], "--expiry-bucket must look like 30d"),
        (["term", "--date", "2019-01-02"], "no SVI fit of SPX on 2019-01-02"),
    ],
)
def test_view_user_errors_exit_2_with_one_line(app, fitted_db, args, message):
    result = CliRunner().invoke(app, ["surface", *args[:1], "--db", str(fitted_db), *args[1:]])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output


def test_views_never_create_a_store(app, tmp_path):
    missing = tmp_path / "none.duckdb"
    result = CliRunner().invoke(app, ["surface", "term", "--db", str(missing), "--date", DAYS[0]])
    assert result.exit_code == 2 and "no chain store" in result.output
    assert not missing.exists()


def test_sparkline_levels_by_hand():
    from experiments.dashboard.data import sparkline

    # levels round(7 (v - min) / (max - min)): 0 -> 0, 7 -> 7, 3.5 -> round(3.5) = 4, 1 -> 1
    assert sparkline([0.0, 7.0, 3.5, 1.0, float("nan")]) == "▁█▅▂ "
    assert sparkline([2.0, 2.0]) == "▄▄"
