"""``volsuite paper``: the ``[broker]`` config section, parameters from an MLflow run, the
``zero_dte_straddle`` plugin's own strategy on the replay venue giving the same trades as its
backtest, pre-trade rejections in the audit log, the ``stop`` command and the status table.

Data: a slice of the real 2019 SPXW chains (``../shared/data/options/spx_chains_2019q2.parquet``,
quote dates 2019-05-22 .. 2019-06-07, expiries within 7 days) written to a temporary parquet and
ingested into a temporary store; SPX daily bars from ``../shared/data/index``. The reference
trades come from the plugin's own ``backtest`` on the same window (the backtest broker), and the
MLflow parameters are written by the test itself.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from experiments.cli_paper import register
from experiments.config import ConfigError, load_config
from experiments.paper import (
    apply_symbol_map,
    best_params_from_folds,
    best_params_from_run,
    build_session,
    check_alpaca_symbols,
    status_renderable,
)
from strategies.zero_dte_straddle import ZeroDteStraddleParams

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CHAINS = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
WINDOW = ("2019-05-28", "2019-06-07")
FILL_COLUMNS = ["time", "event", "root", "expiration", "strike", "right", "quantity", "price"]
FILL_COLUMNS += ["commission", "cash_flow"]

CONFIG = """
[experiment]
name = "paper_test"
initial_cash = 100000.0
[data]
start = "2018-06-01"
end = "2019-06-30"
[data.underlying]
source = "{index}"
root = "SPX"
[data.chains]
db = "{db}"
[strategy]
name = "zero_dte_straddle"
[strategy.params]
market_source = "chain"
chain_expiry = "next"
root = "SPXW"
contracts = {contracts}
[strategy.search_space]
window = {{ low = 5, high = 40 }}
short_threshold = {{ low = 0.0, high = 1.0 }}
[broker]
kind = "{kind}"
commission_per_contract = 0.65
[broker.replay]
start = "{start}"
end = "{end}"
[broker.safety]
audit_dir = "{tmp}/paper"
kill_switch_file = "{tmp}/KILL"
max_contracts_per_order = 5
[tracking]
results_dir = "{tmp}/results"
"""


@pytest.fixture(scope="module")
def small_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chain store with a slice of the real 2019 SPXW chains (never copied into the repo)."""
    from data_feeds.chain_store import ChainStore

    folder = tmp_path_factory.mktemp("paper_chains")
    parquet = folder / "spxw_2019_slice.parquet"
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet('{shared_data / CHAINS}') "
        "WHERE quotedate BETWEEN DATE '2019-05-22' AND DATE '2019-06-07' "
        "AND expiration <= quotedate + INTERVAL 7 DAY AND root = 'SPXW') "
        f"TO '{parquet}' (FORMAT parquet)"
    )
    db = folder / "chains.duckdb"
    with ChainStore(db) as store:
        store.ingest(parquet, "vendor")
    return db


def write_config(tmp: Path, db: Path, shared: Path, *, kind="replay", contracts=1) -> Path:
    path = tmp / "paper.toml"
    path.write_text(
        CONFIG.format(
            index=shared / INDEX,
            db=db,
            tmp=tmp,
            kind=kind,
            contracts=contracts,
            start=WINDOW[0],
            end=WINDOW[1],
        )
    )
    return path


def log_walkforward_run(uri: str) -> str:
    """A parent run with two fold child runs, shaped like ``experiments.tracking.log_run``."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    exp = mlflow.set_experiment("paper_test")
    with mlflow.start_run(experiment_id=exp.experiment_id, run_name="wf") as parent:
        mlflow.set_tags({"strategy": "zero_dte_straddle"})
        for fold, (end, window, threshold) in enumerate(
            [("2019-05-10", "30", "0.5"), ("2019-05-24", "12", "0.0")]
        ):
            with mlflow.start_run(run_name=f"wf-fold{fold}", nested=True):
                mlflow.set_tags({"fold": str(fold)})
                mlflow.log_params(
                    {"best.window": window, "best.short_threshold": threshold, "test_end": end}
                )
    return parent.info.run_id


def write_results_run(results: Path, run: str = "20190601T000000-abc123") -> str:
    """A ``volsuite run`` results folder with ``folds.csv`` and ``summary.json`` (the columns
    ``experiments.runner`` writes): two folds, the last one's best params are window 12,
    short_threshold 0."""
    folder = results / "paper_test" / run
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "fold": [0, 1],
            "train_start": ["2019-03-01", "2019-03-15"],
            "train_end": ["2019-04-26", "2019-05-10"],
            "test_start": ["2019-04-29", "2019-05-13"],
            "test_end": ["2019-05-10", "2019-05-24"],
            "best_objective": [1.2, 0.7],
            "best.window": [30, 12],
            "best.short_threshold": [0.5, 0.0],
        }
    ).to_csv(folder / "folds.csv", index=False)
    (folder / "summary.json").write_text(json.dumps({"strategy": "zero_dte_straddle"}))
    return run


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return uri, log_walkforward_run(uri)


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command, so that 'paper' stays a named sub-command
        pass

    return app


# -- config ----------------------------------------------------------------------------------------
def test_shipped_configs_keep_working() -> None:
    """Every shipped config's [broker] section validates unchanged, defaults to the backtest, and
    hands the plugin the same OptionsBroker params as before (costs are in [costs] now; the
    broker sub-sections are excluded from the dump)."""
    import tomllib

    from experiments.config import BrokerConfig, load_config

    for path in sorted(Path("experiments/configs").glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        broker = BrokerConfig.model_validate(raw.get("broker", {}))
        assert broker.kind == "backtest"
        assert broker.model_dump(exclude={"kind"}) == {}
        costs = {**raw.get("broker", {}), **raw.get("costs", {})}
        assert load_config(path).costs.options_broker_params() == {
            "commission_per_contract": costs.get("commission_per_contract", 1.0),
            "slippage_spread_fraction": costs.get("slippage_spread_fraction", 0.5),
            "settlement_fee_per_contract": costs.get("settlement_fee_per_contract", 0.0),
        }


def test_broker_kind_errors_name_the_key(tmp_path, small_store, shared_data) -> None:
    path = write_config(tmp_path, small_store, shared_data, kind="live")
    with pytest.raises(ConfigError, match=r"paper\.toml: broker\.kind: Input should be"):
        load_config(path)
    text = path.read_text().replace('kind = "live"', 'kind = "replay"')
    path.write_text(text.replace("[broker.replay]", "[broker.replay]\nsped = 3"))
    with pytest.raises(ConfigError, match=r"broker\.replay\.sped: unknown key"):
        load_config(path)


# -- parameters ------------------------------------------------------------------------------------
@pytest.mark.slow  # creating an MLflow sqlite store takes ~5-12 s (alembic migrations)
def test_best_params_come_from_the_last_mlflow_fold(mlflow_run) -> None:
    uri, run_id = mlflow_run
    best, source = best_params_from_run(run_id, uri)
    assert best == {"window": "12", "short_threshold": "0.0"}  # the fold ending 2019-05-24
    assert "fold 1" in source
    with pytest.raises(ConfigError, match="not found"):
        best_params_from_run("0" * 32, uri)


def test_symbol_map_is_explicit() -> None:
    params = ZeroDteStraddleParams(root="SPXW", chain_symbol="SPX")
    with pytest.raises(ConfigError, match="not SPX/SPXW"):
        check_alpaca_symbols(params, {})
    with pytest.raises(ConfigError, match="does not accept the mapped symbols"):
        apply_symbol_map(params, {"SPXW": "SPY"})  # this plugin trades SPXW only


# -- the session -----------------------------------------------------------------------------------
def test_best_params_from_a_results_folder(tmp_path) -> None:
    run = write_results_run(tmp_path)
    best, source = best_params_from_folds(tmp_path / "paper_test" / run / "folds.csv")
    assert best == {"window": "12", "short_threshold": "0.0"}  # the fold ending 2019-05-24
    assert "fold 1" in source


def test_paper_replay_trades_like_the_backtest(tmp_path, small_store, shared_data) -> None:
    from experiments.runner import build_plugin, load_data

    config = write_config(tmp_path, small_store, shared_data)
    run_id = write_results_run(tmp_path / "results")  # [tracking] results_dir of the config
    result = CliRunner().invoke(cli(), ["paper", str(config), "--from-run", run_id, "--no-live"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "paper").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["params"]["window"] == 12 and summary["params"]["short_threshold"] == 0.0
    assert summary["venue"] == "replay" and not summary["killed"]
    paper_fills = pd.read_csv(folder / "fills.csv", parse_dates=["time"])
    # the reference: the plugin's own backtest over the window, same parameters
    cfg = load_config(config)
    cfg.strategy.params = {**cfg.strategy.params, "window": 12, "short_threshold": 0.0}
    cfg.strategy.search_space = {}
    data, _ = load_data(cfg)
    plugin = build_plugin(cfg, data)
    params = plugin.Params(**cfg.strategy.params)
    days = plugin.trading_days()
    days = days[(days >= pd.Timestamp(WINDOW[0], tz=days.tz))]
    days = days[days <= pd.Timestamp(WINDOW[1], tz=days.tz)]
    reference = plugin.backtest(params, days[0], days[-1], cash=100_000.0).trades
    data["chains"].close()
    assert len(reference) > 0
    ours = paper_fills[FILL_COLUMNS].reset_index(drop=True)
    theirs = reference[FILL_COLUMNS].reset_index(drop=True)
    theirs["expiration"] = pd.to_datetime(theirs["expiration"]).dt.strftime("%Y-%m-%d")
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    audit = pd.read_json(folder / "audit.jsonl", lines=True)
    opens = reference[(reference["event"] == "fill")]
    assert (audit["event"] == "order_submitted").sum() == len(opens) // 2  # one straddle order
    assert audit["event"].iloc[0] == "session_start" and audit["event"].iloc[-1] == "session_end"
    assert "book matches the venue" in summary["reconciliations"][-1]


def test_oversized_orders_are_rejected_with_the_reason_in_the_audit_log(
    tmp_path, small_store, shared_data
) -> None:
    from brokers import OrderRejected

    config = write_config(tmp_path, small_store, shared_data, contracts=6)  # limit is 5
    session = build_session(config)
    # zero_dte_straddle does not catch refused orders (its backtest broker never refuses one):
    # the refusal ends the session, as an OrderRejected with the reason
    with pytest.raises(OrderRejected, match="6 contracts > max_contracts_per_order 5"):
        session.run()
    assert session.broker.option_fills == []
    audit = pd.read_json(session.folder / "audit.jsonl", lines=True)
    (rejection,) = audit[audit["event"] == "rejection"].itertuples()
    assert rejection.reason == (
        "pre-trade: SPXW 2019-05-29 2815C 6 contracts > max_contracts_per_order 5"
    )
    assert (audit["event"] == "order_submitted").sum() == 0  # nothing reached the venue
    assert audit["event"].iloc[-1] == "session_end"
    assert session.venue.orders == {}


def test_stop_command_and_latch(tmp_path, small_store, shared_data) -> None:
    config = write_config(tmp_path, small_store, shared_data)
    runner = CliRunner()
    out = runner.invoke(cli(), ["paper", "stop", "--config", str(config), "--no-flatten"])
    assert out.exit_code == 0, out.output
    flag = json.loads((tmp_path / "KILL").read_text())
    assert flag == {"reason": "volsuite paper stop", "time": flag["time"], "flatten": False}
    refused = runner.invoke(cli(), ["paper", str(config), "--no-live"])
    assert refused.exit_code == 2 and "kill switch engaged" in refused.output
    assert not (tmp_path / "paper").exists()  # nothing written by a refused session
    cleared = runner.invoke(
        cli(), ["paper", "stop", "--flag-file", str(tmp_path / "KILL"), "--clear"]
    )
    assert cleared.exit_code == 0 and not (tmp_path / "KILL").exists()


def test_kill_switch_stops_a_strategy_on_its_own_feed(tmp_path, small_store, shared_data) -> None:
    """zero_dte_straddle runs on its own (historical) market-table feed: the kill switch raised
    after its first trade flattens at the venue and stops the run before its next decision."""
    from brokers.live import KillSwitch

    config = write_config(tmp_path, small_store, shared_data)
    switch = KillSwitch(tmp_path / "KILL")

    def on_bar(session) -> None:
        if session.broker.option_positions and not switch.engaged():
            switch.trigger("test")

    session = build_session(config, on_bar=on_bar)
    session.run()  # ends cleanly, no exception
    assert session.broker.killed and session.venue.positions() == []
    opens = [f for f in session.broker.option_fills if f.tag.startswith("open ")]
    flattens = [f for f in session.broker.option_fills if f.tag == "kill switch"]
    assert len(opens) == 2  # one straddle, then the stop: no second day's trade
    assert {(str(f.contract), -f.quantity) for f in flattens} == {
        (str(f.contract), f.quantity) for f in opens
    }
    summary = json.loads((session.folder / "summary.json").read_text())
    assert summary["killed"] is True
    switch.clear()


def test_backtest_kind_and_alpaca_without_map_are_refused(
    tmp_path, small_store, shared_data
) -> None:
    for kind, message in (
        ("backtest", "kind = 'backtest'"),
        ("alpaca-paper", "not SPX/SPXW"),
    ):
        config = write_config(tmp_path, small_store, shared_data, kind=kind)
        out = CliRunner().invoke(cli(), ["paper", str(config), "--no-live"])
        assert out.exit_code == 2, out.output
        assert message in out.output


def test_status_table_shows_positions_greeks_and_orders(tmp_path, small_store, shared_data) -> None:
    from rich.console import Console

    config = write_config(tmp_path, small_store, shared_data)
    seen: list[str] = []

    def on_bar(session) -> None:
        if session.broker.option_positions and not seen:
            console = Console(record=True, width=160)
            console.print(status_renderable(session))
            seen.append(console.export_text())

    session = build_session(config, on_bar=on_bar, until="2019-05-29").run()
    assert session.venue.now().date() <= dt.date(2019, 5, 29)  # --until: nothing after that day
    (text,) = seen
    for word in ("positions", "book greeks", "last orders", "SPXW", "P&L", "filled"):
        assert word in text
