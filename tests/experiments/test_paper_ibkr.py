"""``volsuite paper`` on ``[broker] kind = "ibkr-paper"`` against the local fake TWS
(``tests/brokers/live/fake_tws.py``, 127.0.0.1 only): the shipped ``zero_dte_straddle_spx2019``
config over one replayed session of the 2019 SPXW chains. Orders go out as BAG combos, fills are
booked, the SPXW legs settle at the close at IB and in the book, and the session ends reconciled;
the same strategy sends the same orders on the replay venue over the same day.

Data: ``../shared/data/options/spx_chains_2019q2.parquet`` and the SPX daily file.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from data_feeds.calendar import TZ
from experiments.paper import build_session
from tests.brokers.live.fake_tws import FakeTWS, serve, stop

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
]

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
DAY = "2019-07-01"  # a Monday: SPXW expiring that day (0DTE), PM-settled at the 16:00 close
SLICE = ("2019-06-24", DAY)


@pytest.fixture(scope="module")
def store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chain store with the last week of June 2019 and the session day."""
    from data_feeds.chain_store import ChainStore

    folder = tmp_path_factory.mktemp("ibkr_chains")
    parquet = folder / "slice.parquet"
    duckdb.sql(
        "COPY (SELECT * FROM read_parquet("
        f"'{shared_data / 'options/spx_chains_2019q2.parquet'}') WHERE quotedate BETWEEN "
        f"DATE '{SLICE[0]}' AND DATE '{SLICE[1]}') TO '{parquet}' (FORMAT parquet)"
    )
    db = folder / "chains.duckdb"
    with ChainStore(db) as s:
        s.ingest(parquet, "vendor")
    return db


def session_config(kind: str, tmp: Path, shared: Path, db: Path, port: int = 0) -> Path:
    """The shipped config on ``kind`` for the session day: data up to that day, the sliced store,
    outputs in ``tmp``."""
    text = (CONFIGS / "zero_dte_straddle_spx2019.toml").read_text()
    text = text.replace("../shared/data", str(shared))
    text = re.sub(r'^db = "[^"]*"', f'db = "{db}"', text, flags=re.M)
    text = re.sub(r"^ingest = \[[^\]]*\]\n", "", text, flags=re.M | re.S)
    text = re.sub(r'^end = "[^"]*"', f'end = "{DAY}"', text, count=1, flags=re.M)
    text = re.sub(r'^kind = "backtest"', f'kind = "{kind}"', text, flags=re.M)
    text = re.sub(r"^\[tracking\][^\[]*", "", text, flags=re.M | re.S)
    if kind == "ibkr-paper":
        text += (
            f"\n[broker.ibkr]\nport = {port}\nclient_id = 7\npoll_seconds = 900\nmax_dte = 0\n"
            "strike_range = 0.015\nfill_timeout_seconds = 5\nrequest_timeout_seconds = 5\n"
        )
    else:
        text += f'\n[broker.replay]\nstart = "{DAY}"\nend = "{DAY}"\n'
    text += (
        f'[broker.safety]\naudit_dir = "{tmp}/paper"\nkill_switch_file = "{tmp}/KILL"\n'
        f'[tracking]\nresults_dir = "{tmp}/results"\n'
    )
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"zero_dte_{kind}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def snapshots(store: Path) -> list:
    """The session day's recorded snapshots (read before any session opens the store)."""
    from data_feeds.chain_store import ChainStore

    with ChainStore(store, read_only=True) as s:
        return [s.snapshot("SPX", d) for d in s.quote_dates("SPX") if str(d) == DAY]


@pytest.fixture
def tws(snapshots: list, shared_data: Path) -> Iterator[tuple[FakeTWS, int]]:
    """The fake TWS replaying the session day from 09:30, SPX daily closes for settlement."""
    from data_feeds import load_ohlc

    spx = load_ohlc(shared_data / "index/spx_vix_spy_qqq_daily.csv", root="SPX")
    fake = FakeTWS(
        snapshots=snapshots,
        clock=pd.Timestamp(f"{DAY} 09:30", tz=TZ),
        settlement_prices={"SPX": spx},
    )
    server, thread, port = serve(fake)
    try:
        yield fake, port
    finally:
        stop(server, thread)


def _first_contract(fake: FakeTWS):
    return fake.contracts[fake.settlements[0]["con_id"]]


def audit_events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]


def test_zero_dte_session_on_fake_tws(
    tws: tuple[FakeTWS, int],
    store: Path,
    shared_data: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, port = tws
    caplog.set_level(logging.ERROR, logger="ib_async")
    config = session_config("ibkr-paper", tmp_path, shared_data, store, port)
    session = build_session(config, sleep=fake.advance, until=f"{DAY} 16:30")
    session.run()
    # the protocol: ib_async decoded every message the fake sent
    assert not [r for r in caplog.records if "Error handling fields" in r.getMessage()]
    # orders went out as BAG combos of two SPXW legs expiring that day
    orders = list(fake.orders.values())
    assert orders, "the strategy sent no order"
    for order in orders:
        assert order.sec_type == "BAG" and len(order.legs) == 2
        assert order.order_ref  # the decision's client order id
        assert all(fake.contracts[c].root == "SPXW" for c, _ in order.legs)
    assert len({o.order_ref for o in orders}) == len(orders)
    # fills booked: the book's option fills are the fake's executions, leg by leg
    fills = session.broker.fills_frame()
    booked = fills[fills["event"] == "fill"]
    assert len(booked) == len(fake.executions)
    assert sorted(booked["price"].round(4)) == sorted(round(e["price"], 4) for e in fake.executions)
    # settlement at the SPXW close, at IB and in the book, for the same cash
    assert fake.settlements, "nothing settled at the fake"
    settled = fills[fills["event"].str.contains("settle")]
    assert len(settled) == len(fake.settlements)
    assert settled["cash_flow"].sum() == pytest.approx(sum(s["cash"] for s in fake.settlements))
    # the book settled at the backtest's print, IB at its own: the same SPX close
    close, label = session.broker.settlement_price(_first_contract(fake))
    assert label == "close"  # SPXW: PM-settled on the close of the expiry session
    assert {round(s["level"], 6) for s in fake.settlements} == {round(close, 6)}
    # reconciled: positions flat at IB and in the book, cash equal to the cent
    assert not fake.positions
    assert not session.broker.option_positions
    assert session.broker.getcash() == pytest.approx(fake.cash, abs=0.01)
    events = audit_events(session.folder)
    kinds = {e.get("event") for e in events}
    assert {"order_submitted", "order_accepted", "fill", "settlement", "reconcile"} <= kinds
    assert {"session_start", "session_end"} <= kinds
    last = [e for e in events if e.get("event") == "reconcile"][-1]
    assert not last.get("position_diffs")


def test_same_orders_as_the_replay_venue(
    tws: tuple[FakeTWS, int], store: Path, shared_data: Path, tmp_path: Path
) -> None:
    fake, port = tws
    ib_session = build_session(
        session_config("ibkr-paper", tmp_path / "ib", shared_data, store, port),
        sleep=fake.advance,
        until=f"{DAY} 16:30",
    )
    ib_session.run()
    copy = tmp_path / "replay_chains.duckdb"  # DuckDB: one configuration per file per process
    shutil.copyfile(store, copy)
    replay = build_session(
        session_config("replay", tmp_path / "replay", shared_data, copy), speed=0
    )
    replay.run()

    def legs(frame: pd.DataFrame) -> list[tuple]:
        f = frame[frame["event"] == "fill"]
        return sorted(
            (
                r.root,
                str(pd.Timestamp(r.expiration).date()),
                float(r.strike),
                r.right,
                int(r.quantity),
                round(float(r.price), 4),
            )
            for r in f.itertuples()
        )

    assert legs(ib_session.broker.fills_frame()) == legs(replay.broker.fills_frame())
    assert legs(replay.broker.fills_frame())
