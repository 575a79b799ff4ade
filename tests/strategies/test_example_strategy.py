"""The README's "Adding a strategy" example (``tests/strategies/example_strategy.py``) is real code:
the README block is the file, and the strategy runs through ``volsuite run`` and ``paper`` on the
real 2019 SPXW chains with the books identity holding in the run folder.

Data: the 2019 SPX chains (``../shared/data/options/spx_chains_2019q2.parquet``), SPXW quotes with
expiries within 45 days of the quote date, ingested into a temporary chain store; SPX daily bars
from ``../shared/data/index``. References are independent of the plugin: the percentile is
recounted by hand from the chain store's own ``ChainSnapshot.atm_iv``; the books identity from
the written CSV files with pandas; the paper fills against the plugin's backtest fills.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import strategies
from data_feeds.chains import ChainSnapshot, Combo
from experiments.cli import app
from strategies.option_strategy import ComboSpec, OptionStrategy, run_chain_cerebro
from tests.strategies.example_strategy import IvCondor, IvCondorParams

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
CHAINS = "options/spx_chains_2019q2.parquet"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
PAPER_WINDOW = ("2019-07-01", "2019-07-12")
FILL_COLUMNS = ["time", "event", "root", "expiration", "strike", "right", "quantity", "price"]
FILL_COLUMNS += ["commission", "cash_flow"]

CONFIG = """
[experiment]
name = "iv_condor_test"
initial_cash = 100000.0
[data]
start = "2018-06-01"
end = "2019-07-31"
[data.underlying]
source = "{index}"
root = "SPX"
[data.chains]
db = "{db}"
[strategy]
name = "iv_condor"
[strategy.params]
iv_window = 10
[strategy.search_space]
delta = {{ low = 0.10, high = 0.25 }}
iv_quantile = {{ low = 0.3, high = 0.7 }}
[walkforward]
scheme = "rolling"
train_days = 20
test_days = 10
min_test_days = 5
[optimize]
trials = 2
seed = 3
[broker]
kind = "{kind}"
[broker.replay]
start = "{paper_start}"
end = "{paper_end}"
[broker.safety]
audit_dir = "{tmp}/paper"
kill_switch_file = "{tmp}/KILL"
[tracking]
results_dir = "{tmp}/results"
"""


def test_readme_block_is_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Adding a strategy", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    code = (Path(__file__).parent / "example_strategy.py").read_text()
    assert blocks == [code]
    assert len(code.splitlines()) < 80


@pytest.fixture(scope="module")
def registered() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(strategies.STRATEGIES, IvCondor.name, IvCondor)
        yield


@pytest.fixture(scope="module")
def store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_feeds.chain_store import ChainStore

    folder = tmp_path_factory.mktemp("iv_condor_chains")
    parquet = folder / "spxw_2019_45d.parquet"
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet('{shared_data / CHAINS}') "
        "WHERE root = 'SPXW' AND expiration <= quotedate + INTERVAL 45 DAY) "
        f"TO '{parquet}' (FORMAT parquet)"
    )
    db = folder / "chains.duckdb"
    with ChainStore(db) as chain_store:
        chain_store.ingest(parquet, "vendor")
    return db


def write_config(tmp: Path, db: Path, shared: Path, kind: str = "backtest") -> Path:
    path = tmp / "iv_condor.toml"
    text = CONFIG.format(index=shared / INDEX, db=db, tmp=tmp, kind=kind,
                         paper_start=PAPER_WINDOW[0], paper_end=PAPER_WINDOW[1])
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def run(registered, store, shared_data, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("iv_condor_run")
    config = write_config(tmp, store, shared_data)
    out = CliRunner().invoke(app, ["run", str(config), "--no-mlflow"])
    assert out.exit_code == 0, out.output
    (folder,) = sorted((tmp / "results" / "iv_condor_test").iterdir())
    return folder, tmp


def test_signal_is_the_percentile_of_the_stored_atm_iv(registered, store, shared_data) -> None:
    """Hand recount: share of the 10 previous quote dates whose 30-day ATM IV is below today's,
    the ATM IV read straight from each stored snapshot."""
    from data_feeds.chain_store import ChainStore
    from experiments.config import load_config
    from experiments.runner import build_plugin, load_data

    cfg = load_config(write_config(Path(str(store)).parent, store, shared_data))
    cfg.strategy.search_space = {}
    data, _ = load_data(cfg)
    plugin = build_plugin(cfg, data)
    data["chains"].close()
    with ChainStore(store, read_only=True) as chain_store:
        days = chain_store.quote_dates("SPX", ["SPXW"])[:16]
        iv = []
        for d in days:
            snap = chain_store.snapshot("SPX", d, None, ["SPXW"], False, 0.0)
            iv.append(snap.atm_iv(snap.nearest_expiry(30, "SPXW"), "SPXW"))
    assert np.isnan(plugin.signal.loc[days[9]])  # fewer than 10 previous dates
    for t in range(10, 16):
        expected = sum(iv[j] < iv[t] for j in range(t - 10, t)) / 10
        assert plugin.signal.loc[days[t]] == pytest.approx(expected, abs=1e-12), days[t]


def test_run_folder_books_add_up_per_fold(run) -> None:
    folder, _ = run
    summary = json.loads((folder / "summary.json").read_text())
    equity = pd.read_csv(folder / "equity.csv")
    trades = pd.read_csv(folder / "trades.csv")
    folds = pd.read_csv(folder / "folds.csv")
    assert len(folds) >= 2 and set(folds.columns) >= {"best.delta", "best.iv_quantile"}
    assert (trades["event"] == "fill").sum() > 0  # the condor traded
    start = summary["initial_cash"]
    for k, grp in equity.groupby("fold", sort=True):
        end = float(grp["equity"].iloc[-1])
        flows = trades.loc[trades["fold"] == k, "cash_flow"].sum()
        assert flows == pytest.approx(end - start, abs=0.01), k
        start = end
    log = pd.read_csv(folder / "daily_log.csv")
    assert set(log["status"]) <= {"below_quantile", "holding", "open", "rejected"}


def test_paper_on_replay_trades_like_the_backtest(run, store, shared_data) -> None:
    from experiments.config import load_config
    from experiments.paper import run_paper
    from experiments.runner import build_plugin, load_data

    folder, tmp = run
    config = write_config(tmp, store, shared_data, kind="replay")
    session = run_paper(config, from_run=folder.name, sleep=lambda s: None)
    assert session.venue.name == "replay" and not session.broker.killed
    assert "book matches the venue" in session.broker.reconciliations[-1].summary()
    paper = session.broker.fills_frame()
    cfg = load_config(config)
    cfg.strategy.search_space = {}
    data, _ = load_data(cfg)
    plugin = build_plugin(cfg, data)
    params = IvCondorParams(**session.params.model_dump())
    days = plugin.trading_days()
    days = days[(days >= pd.Timestamp(PAPER_WINDOW[0], tz=days.tz))]
    days = days[days <= pd.Timestamp(PAPER_WINDOW[1], tz=days.tz)]
    reference = plugin.backtest(params, days[0], days[-1], cash=100_000.0).trades
    data["chains"].close()
    reference = reference[reference["event"] != "window_end"]
    paper = paper[paper["event"] != "window_end"]
    assert len(reference) > 0
    ours = paper[FILL_COLUMNS].reset_index(drop=True)
    theirs = reference[FILL_COLUMNS].reset_index(drop=True)
    for frame in (ours, theirs):
        frame["expiration"] = pd.to_datetime(frame["expiration"]).dt.strftime("%Y-%m-%d")
        frame["time"] = pd.to_datetime(frame["time"]).dt.tz_localize(None)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


class _TypoSpec(ComboSpec):
    """A spec whose resolution has a bug: a misspelled column of ``with_implied_vols``."""

    def resolve(self, snapshot: ChainSnapshot) -> Combo:
        exp = snapshot.nearest_expiry(self.target_dte, self.root)
        side = snapshot.with_implied_vols(exp, self.root)
        strike = float(side["implied_volatility"].idxmin())  # the column is 'implied_vol'
        return snapshot.straddle(exp, self.root, strike)


class _OneSpec(OptionStrategy):
    params = (("spec", None),)

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        self.open_combo(self.p.spec, 1)


def _run_spec(store_path: Path, shared_data: Path, spec: ComboSpec) -> OptionStrategy:
    from data_feeds import load_ohlc
    from data_feeds.chain_store import ChainStore

    spx = load_ohlc(shared_data / INDEX, root="SPX")
    days = pd.DatetimeIndex(["2019-06-03", "2019-06-04"]).tz_localize("America/New_York")
    with ChainStore(store_path, read_only=True) as chain_store:
        strat, _, _ = run_chain_cerebro(
            _OneSpec, chain_store, "SPX", "SPXW", days, settlement=spx[["open", "close"]],
            broker_params={}, cash=100_000.0, target_dte=30, rate=0.0,
            strategy_kwargs={"spec": spec})
    return strat


def test_a_misspelled_column_raises_but_a_missing_quote_is_counted(
    store, shared_data, tmp_path
) -> None:
    """Before, ``open_combo`` caught every ``KeyError`` as "cannot resolve": a bug in a spec was
    logged as a missing quote. Now only ``QuoteUnavailable`` is caught, and counted by reason."""
    store = Path(shutil.copy(store, tmp_path / "chains.duckdb"))  # others hold the original open
    with pytest.raises(KeyError, match="implied_volatility"):
        _run_spec(store, shared_data, _TypoSpec(kind="straddle", target_dte=2))
    # a strike of 1 point is not listed: one not_quoted per bar, no fill
    strat = _run_spec(store, shared_data, ComboSpec(kind="straddle", target_dte=2, strike=1.0))
    assert dict(strat.quote_unavailable) == {"not_quoted": 2}
    assert len(strat.rejections) == 2 and strat.broker.fills_frame().empty
