"""Backtest broker vs replay venue, strategy by strategy: over the same days and parameters the
paper session (``volsuite paper`` on ``[broker] kind = "replay"``) sends the orders and books the
fills the plugin's own backtest makes.

Each case takes a shipped config (``experiments/configs/``), points its data at
``../shared/data`` and a temporary chain store, sets ``kind = "replay"`` on a short window and
runs :func:`experiments.paper.build_session` (the strategy class and kwargs come from the plugin's
:meth:`~strategies.base.StrategyPlugin.cerebro_spec`). The reference is an independent run of the
plugin's ``backtest`` on :class:`brokers.OptionsBroker` (never the paper code path).

What must agree, to the cent:

* every option fill and every share (hedge) fill: time, contract, side, quantity, price,
  commission, cash flow;
* the orders: one venue order per backtest order (fills grouped by time and tag), same legs;
* settlements: same contract, quantity, price and cash. Their **time stamp** is the one
  difference by design (``docs/paper_trading.md``): the backtest books a PM settlement in the bar
  of the decision, the live broker when the venue clock passes the close, stamped then; the test
  asserts the paper stamp is not earlier than the backtest's;
* the end-of-session reconciliation is clean (the venue's positions and cash equal the book's).

Data: the real 2019 SPX/SPXW chains (a slice of quote dates written to a temporary parquet), the
2017-2018 SPX and 2021 SPY vendor subsets, the Lean minute quotes, SPX/VIX/SPY daily bars and the
pair ETFs' daily bars, all under ``../shared/data`` (never copied into the repository).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from experiments.paper import PaperSession, build_session

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
]

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
SPX2019 = "options/spx_chains_2019q2.parquet"
SLICES_2019 = {  # quote dates kept in the temporary 2019 stores
    "spx2019": ("2019-05-20", "2019-06-28"),
    "spx2019_short": ("2019-05-28", "2019-06-07"),  # surface_arbitrage fits every quote date
}

TRADE = ["time", "event", "root", "expiration", "strike", "right", "quantity", "price"]
TRADE += ["commission", "cash_flow"]
SETTLE = ["event", "root", "expiration", "strike", "right", "quantity", "price", "cash_flow"]

# config stem -> (store, replay start, replay end, [strategy.params] overrides). Windows hold at
# least one trade of the backtest; overrides are fixed parameters (the parity holds for any), used
# where the shipped defaults trade nothing in the sliced data (vol_of_vol's searched thresholds)
# or make the load slow (ml_spreads' walk-forward models start later, refit less often).
CASES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "vrp_harvest_spx2019": ("spx2019", "2019-06-20", "2019-06-28", {}),
    "skew_dislocation_spx2019": ("spx2019", "2019-06-03", "2019-06-07", {}),
    "surface_arbitrage_spx2019": ("spx2019_short", "2019-06-03", "2019-06-07", {}),
    "term_structure_slope_spx2019": ("spx2019", "2019-06-03", "2019-06-14", {}),
    "vol_of_vol_spx2019": (
        "spx2019",
        "2019-06-17",
        "2019-06-28",
        {"vvix_threshold": "0.0", "residual_threshold": "0.25", "max_hold_days": "2"}
        | {"fit_window": "126"},
    ),
    "zero_dte_straddle_spx2019_next": ("spx2019", "2019-06-03", "2019-06-07", {}),
    "vrp_harvest_spy2021": ("vendor", "2021-06-14", "2021-06-25", {}),
    "ml_spreads_spy2021": (
        "vendor",
        "2021-06-14",
        "2021-06-25",
        {"ml_start": '"2021-01-04"', "ml_step_days": "63"},
    ),
    "ml_spreads_spx2017": (
        "vendor",
        "2018-06-18",
        "2018-06-29",
        {"ml_start": '"2018-01-02"', "ml_step_days": "63"},
    ),
    "vol_dislocation_spx2021": ("minute", "2021-01-04", "2021-01-08", {}),
    "directional_overlay_spx2021": ("minute", "2021-01-04", "2021-01-08", {}),
    "ou_pairs_gld_gdx": ("none", "2009-01-02", "2009-12-31", {}),
}
PAIRS = ["date", "leg", "size", "price", "commission", "status"]


@pytest.fixture(scope="module")
def stores(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Temporary chain stores: a slice of the 2019 chains, the two small vendor subsets, the
    Lean minute quotes (ingested once for the module)."""
    from data_feeds.chain_store import ChainStore

    folder = tmp_path_factory.mktemp("parity_chains")
    out = {"vendor": folder / "vendor.duckdb", "minute": folder / "minute.duckdb"}
    for name, (lo, hi) in SLICES_2019.items():
        parquet = folder / f"{name}.parquet"
        duckdb.sql(
            f"COPY (SELECT * FROM read_parquet('{shared_data / SPX2019}') WHERE quotedate "
            f"BETWEEN DATE '{lo}' AND DATE '{hi}') TO '{parquet}' (FORMAT parquet)"
        )
        out[name] = folder / f"{name}.duckdb"
        with ChainStore(out[name]) as store:
            store.ingest(parquet, "vendor")
    with ChainStore(out["vendor"]) as store:
        store.ingest(shared_data / "options/spy_options_subset_2021.csv.gz", "vendor")
        store.ingest(shared_data / "options/spx_options_subset_2017_2018.csv.gz", "vendor")
    with ChainStore(out["minute"]) as store:
        store.ingest(
            shared_data / "options/spx_spxw_spy_option_minute_quotes.csv.gz", "lean-minute"
        )
    return out


def paper_config(
    stem: str,
    tmp: Path,
    shared: Path,
    db: Path | None,
    start: str,
    end: str,
    overrides: dict[str, str] | None = None,
) -> Path:
    """The shipped config ``stem`` on the replay venue over ``start..end``: data paths under
    ``shared``, the chain store ``db`` (already ingested: no ``ingest`` list), outputs in
    ``tmp``, ``overrides`` (TOML values) fixed in ``[strategy.params]`` (and out of the search
    space)."""
    text = (CONFIGS / f"{stem}.toml").read_text()
    for key, value in (overrides or {}).items():
        text = re.sub(rf"^{key} = \{{.*\n", "", text, flags=re.M)
        if re.search(rf"^{key} = ", text, flags=re.M):
            text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        else:
            head = "[strategy.params]\n"
            text = text.replace(head, f"{head}{key} = {value}\n", 1)
    text = text.replace("../shared/data", str(shared))
    if db is not None:
        text = re.sub(r'^db = "[^"]*"', f'db = "{db}"', text, flags=re.M)
        text = re.sub(r"^ingest = \[[^\]]*\]\n", "", text, flags=re.M | re.S)
    text = re.sub(r'^kind = "backtest"', 'kind = "replay"', text, flags=re.M)
    if not re.search(r"^\[broker\]", text, flags=re.M):
        text += '\n[broker]\nkind = "replay"\n'
    text = re.sub(r"^\[tracking\][^\[]*", "", text, flags=re.M | re.S)
    text += (
        f'\n[broker.replay]\nstart = "{start}"\nend = "{end}"\n'
        f'[broker.safety]\naudit_dir = "{tmp}/paper"\nkill_switch_file = "{tmp}/KILL"\n'
        "max_contracts_per_order = 1000\nmax_open_positions = 500\n"
        f'[tracking]\nresults_dir = "{tmp}/results"\n'
    )
    path = tmp / f"{stem}.toml"
    path.write_text(text)
    return path


def run_both(config: Path) -> tuple[PaperSession, pd.DataFrame]:
    """The paper session (run) and the reference backtest's trades over the same days."""
    session = build_session(config, speed=0)
    assert session.plugin is not None and session.days is not None
    reference = session.plugin.backtest(
        session.params, session.days[0], session.days[-1], cash=session.cash
    ).trades
    session.run()
    return session, reference


def trade_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[frame["event"].isin(["fill", "stock_fill"])][TRADE].reset_index(drop=True)
    rows["expiration"] = pd.to_datetime(rows["expiration"]).dt.strftime("%Y-%m-%d")
    return rows


def order_legs(frame: pd.DataFrame) -> list[tuple[pd.Timestamp, frozenset]]:
    """Backtest option orders: fills grouped by (time, tag), each a set of signed legs."""
    fills = frame[frame["event"] == "fill"]
    out = []
    for (time, _), group in fills.groupby(["time", "tag"], sort=True):
        legs = frozenset(
            (r.root, pd.Timestamp(r.expiration).date(), float(r.strike), r.right, int(r.quantity))
            for r in group.itertuples()
        )
        out.append((pd.Timestamp(time), legs))
    return out


@pytest.mark.parametrize("stem", sorted(CASES))
def test_replay_venue_trades_like_the_backtest_broker(
    stem: str, tmp_path: Path, shared_data: Path, stores: dict[str, Path]
) -> None:
    store, start, end, overrides = CASES[stem]
    config = paper_config(stem, tmp_path, shared_data, stores.get(store), start, end, overrides)
    session, reference = run_both(config)
    if "event" not in reference:  # backtrader share orders (ou_pairs): the strategy's own fills
        check_share_strategy(session, reference)
        return
    ours = session.broker.fills_frame()
    theirs = reference
    assert len(trade_rows(theirs)) > 0, f"{stem}: no trade in {start}..{end}: a vacuous parity"
    # fills: identical, to the cent
    pd.testing.assert_frame_equal(
        trade_rows(ours), trade_rows(theirs), check_dtype=False, atol=0.005, rtol=0.0
    )
    # orders: one filled venue order per backtest order, same signed legs
    orders = session.broker.orders_frame()
    assert (orders["status"] == "filled").all(), orders
    assert len(orders) == len(order_legs(theirs))
    # the backtest window ends flat (window-end closes at the marks); the paper session keeps
    # those positions open at its end: same contracts, opposite quantities
    ends = theirs[theirs["event"] == "window_end"]
    held = session.broker.positions_frame()
    want = sorted(
        (r.root, str(pd.Timestamp(r.expiration).date()), float(r.strike), r.right, -int(r.quantity))
        for r in ends[ends["right"] != "stock"].itertuples()
    )
    got = sorted(
        (r.root, str(pd.Timestamp(r.expiration).date()), float(r.strike), r.right, int(r.quantity))
        for r in held[held["right"] != "stock"].itertuples()
    )
    assert got == want
    # settlements: same cash; stamped no earlier than the backtest's (the one difference)
    settled_ours = ours[~ours["event"].isin(["fill", "stock_fill", "window_end"])]
    settled_theirs = theirs[~theirs["event"].isin(["fill", "stock_fill", "window_end"])]
    pd.testing.assert_frame_equal(
        settled_ours[SETTLE].reset_index(drop=True),
        settled_theirs[SETTLE].reset_index(drop=True),
        check_dtype=False,
        atol=0.005,
        rtol=0.0,
    )
    assert (
        pd.to_datetime(settled_ours["time"]).to_numpy()
        >= pd.to_datetime(settled_theirs["time"]).to_numpy()
    ).all()
    # the venue agrees with the book at the end
    assert session.broker.reconciliations[-1].clean, session.broker.reconciliations[-1].summary()


def check_share_strategy(session: PaperSession, reference: pd.DataFrame) -> None:
    """A strategy trading shares with backtrader orders: the same fills in the strategy's record
    (filled by backtrader's matching at the next open, as in the backtest), the same share trades
    booked at the venue, a clean reconciliation."""
    assert session.strategy is not None
    assert len(reference) > 0, "no share fill in the window: a vacuous parity"
    ours = pd.DataFrame(session.strategy.fills)[PAIRS]
    pd.testing.assert_frame_equal(ours, reference[PAIRS], check_dtype=False, atol=1e-9, rtol=0)
    venue = session.venue.book.stock_fills  # type: ignore[attr-defined]
    done = reference[reference["status"] == "Completed"]
    assert [(f.symbol, f.quantity) for f in venue] == list(
        zip(done["leg"], done["size"].astype(int), strict=True)
    )
    assert [round(f.price, 6) for f in venue] == [round(p, 6) for p in done["price"]]
    assert sum(f.commission for f in venue) == pytest.approx(done["commission"].sum(), abs=1e-9)
    assert session.broker.reconciliations[-1].clean, session.broker.reconciliations[-1].summary()
