"""``volsuite fetch`` / ``volsuite update``: help, dry run, a real kill of a running backfill
(subprocess, SIGKILL) and its resume, the daily update's quality line (fake Theta Terminal)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner
from vendor_fakes import DAYS, FakeThetaTerminal, index_bars, source_rows

from data_feeds.chain_store import ChainStore
from data_feeds.vendors.jobs import UpdateConfig, estimate_backfill_seconds

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def _app():
    from experiments.cli import app

    return app


def test_help_lists_the_options() -> None:
    res = runner.invoke(_app(), ["fetch", "chains", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for opt in (
        "--vendor",
        "--root",
        "--start",
        "--end",
        "--interval",
        "--db",
        "--resume",
        "--dry-run",
        "--cache",
    ):
        assert opt in res.output, opt
    res = runner.invoke(_app(), ["update", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--config" in res.output
    res = runner.invoke(_app(), ["fetch", "underlying", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--symbol" in res.output


def test_bad_vendor_is_one_line_error() -> None:
    res = runner.invoke(
        _app(),
        [
            "fetch",
            "chains",
            "--vendor",
            "yahoo",
            "--root",
            "SPXW",
            "--start",
            "2019-06-24",
            "--end",
            "2019-06-25",
        ],
    )
    assert res.exit_code == 2 and "thetadata, massive" in res.output


@pytest.mark.shared_data
def test_dry_run_sends_nothing(theta: FakeThetaTerminal, tmp_path: Path) -> None:
    res = runner.invoke(
        _app(),
        [
            "fetch",
            "chains",
            "--vendor",
            "thetadata",
            "--root",
            "SPXW",
            "--start",
            "2019-06-24",
            "--end",
            "2019-07-08",
            "--dry-run",
            "--db",
            str(tmp_path / "s.duckdb"),
            "--cache",
            str(tmp_path / "c"),
            "--base-url",
            theta.url + "/v3",
        ],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    assert "10 NYSE sessions" in res.output and "10 to fetch" in res.output
    assert "would fetch 2019-07-05" in res.output and "2019-07-04" not in res.output
    assert theta.log == [] and not (tmp_path / "s.duckdb").exists()


@pytest.mark.shared_data
def test_kill_mid_backfill_then_resume(
    theta: FakeThetaTerminal, src: pd.DataFrame, tmp_path: Path
) -> None:
    """A real process killed with SIGKILL while fetching; the resume fetches only the rest."""
    theta.delays["/greeks/eod"] = 0.5  # slow enough to kill it mid-way
    db, cache = tmp_path / "s.duckdb", tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "experiments.cli",
        "fetch",
        "chains",
        "--vendor",
        "thetadata",
        "--root",
        "SPXW",
        "--start",
        "2019-06-24",
        "--end",
        "2019-07-08",
        "--db",
        str(db),
        "--cache",
        str(cache),
        "--base-url",
        theta.url + "/v3",
        "--concurrency",
        "1",
    ]
    state = cache / "state" / "thetadata_SPXW_eod.json"
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and len(json.loads(state.read_text())["done"]) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = sorted(dt.date.fromisoformat(d) for d in json.loads(state.read_text())["done"])
    assert 3 <= len(done) < 10 and done == DAYS[: len(done)]
    theta.log.clear()
    theta.delays.clear()
    res = runner.invoke(_app(), [*args[3:], "--resume"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for day in done:
        assert not theta.requests_for("/greeks/eod", start_date=f"{day:%Y%m%d}")
    # the rest came from the network, or from the raw cache when the killed run had prefetched
    assert theta.requests_for("/greeks/eod", start_date=f"{DAYS[-1]:%Y%m%d}")
    with ChainStore(db, read_only=True) as store:
        n = store.connection.execute("SELECT count(*) FROM raw_options_chains").fetchone()[0]
        per_day = dict(
            store.connection.execute(
                "SELECT quote_date, count(*) FROM raw_options_chains GROUP BY 1"
            ).fetchall()
        )
    assert n == len(src)
    assert per_day == src.groupby("quotedate").size().to_dict()


@pytest.mark.shared_data
def test_update_prints_a_quality_line_per_root(shared_data: Path, tmp_path: Path) -> None:
    """``volsuite update --config`` against a fake terminal: one line per root whose counts
    match the served rows; surfaces and RV stored."""
    day = DAYS[-1]
    rows = source_rows(shared_data, [*DAYS[-3:]], "SPXW", n_strikes=14)
    fake = FakeThetaTerminal(rows, index_bars(shared_data, "SPX"))
    cfg_path = tmp_path / "update.toml"
    cfg_path.write_text(
        f'vendor = "thetadata"\nroots = ["SPXW"]\ndb = "{tmp_path / "s.duckdb"}"\n'
        f'cache = "{tmp_path / "c"}"\nbars_lookback_days = 40\n'
        f'[thetadata]\nbase_url = "{fake.url}/v3"\n'
    )
    try:
        res = runner.invoke(
            _app(),
            ["update", "--config", str(cfg_path), "--date", str(day)],
            env={"COLUMNS": "300"},
        )
    finally:
        fake.close()
    assert res.exit_code == 0, res.output
    want = rows[rows["quotedate"] == day]
    with ChainStore(tmp_path / "s.duckdb", read_only=True) as store:
        rmse = store.connection.execute(
            "SELECT rmse FROM fitted_surfaces WHERE quote_date = ? AND symbol = 'SPXW'", [day]
        ).df()["rmse"]
        n_rv = store.connection.execute("SELECT count(*) FROM realized_volatility").fetchone()[0]
    assert len(rmse) > 0 and n_rv > 0
    line = (
        f"SPXW {day:%Y-%m-%d} stored: quotes {len(want)}, quarantined 0, missing expiries 0, "
        f"fit RMSE {float(rmse.median()):.4f} ({len(rmse)} expiries)"
    )
    assert line in res.output


def test_update_config_errors_name_the_field(tmp_path: Path) -> None:
    from data_feeds.errors import DataValidationError

    p = tmp_path / "u.toml"
    p.write_text('vendor = "yahoo"\nroots = ["SPXW"]\n')
    with pytest.raises(DataValidationError, match="vendor"):
        UpdateConfig.from_toml(p)
    example = ROOT / "experiments" / "update.example.toml"
    cfg = UpdateConfig.from_toml(example)
    assert cfg.vendor == "thetadata" and cfg.roots == ["SPXW", "SPX"]


def test_backfill_estimate_by_hand() -> None:
    # Theta, standard plan (4 concurrent): 252 x (0.820 + 1.191) s / 4 = 126.693 s
    assert estimate_backfill_seconds("thetadata", 252, 10_098, concurrency=4) == pytest.approx(
        126.693
    )
    # Theta free: 504 requests at 20 a minute = 25.2 min, above the 506.772 s of work
    assert estimate_backfill_seconds("thetadata", 252, 10_098, plan="free") == pytest.approx(1512.0)
    # Massive paid: 252 x (11 pages + 2 x 10,098 + 1) = 5,092,416 requests at 100/s
    assert estimate_backfill_seconds("massive", 252, 10_098) == pytest.approx(50_924.16)
    assert estimate_backfill_seconds("massive", 252, 10_098, plan="free") == pytest.approx(
        5_092_416 * 12.0
    )
