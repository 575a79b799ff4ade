"""``volsuite paper`` on ``alpaca-paper`` for the shipped configs: SPX-family configs are refused at
start with one line naming the root Alpaca does not list and pointing at ``replay`` /
``symbol_map``; an SPY config runs its own strategy class on the live chain feed of a local fake
Alpaca (``tests/brokers/live/fake_alpaca.py``, 127.0.0.1 only) and ends reconciled.

Data: the shipped configs' daily files and the 2021 SPY chain subset under ``../shared/data``.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from experiments.config import ConfigError
from experiments.paper import ROOTS_NOT_ON_ALPACA, build_session
from tests.brokers.live.fake_alpaca import KEY, SECRET, FakeAlpaca, _Handler, _Server, spy_chain

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"


def alpaca_config(stem: str, tmp: Path, shared: Path, url: str, db: Path) -> Path:
    """The shipped config on ``alpaca-paper`` against ``url`` (data under ``shared``, chains in
    ``db``, outputs in ``tmp``)."""
    text = (CONFIGS / f"{stem}.toml").read_text().replace("../shared/data", str(shared))
    text = re.sub(r'^db = "[^"]*"', f'db = "{db}"', text, flags=re.M)
    text = re.sub(r'^kind = "backtest"', 'kind = "alpaca-paper"', text, flags=re.M)
    if not re.search(r"^\[broker\]", text, flags=re.M):
        text += '\n[broker]\nkind = "alpaca-paper"\n'
    text = re.sub(r"^\[tracking\][^\[]*", "", text, flags=re.M | re.S)
    text += (
        f'\n[broker.alpaca]\nbase_url = "{url}"\ndata_url = "{url}"\npoll_seconds = 0.2\n'
        f"fill_timeout_seconds = 1\n"
        f'[broker.safety]\naudit_dir = "{tmp}/paper"\nkill_switch_file = "{tmp}/KILL"\n'
        f'[tracking]\nresults_dir = "{tmp}/results"\n'
    )
    path = tmp / f"{stem}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def fake_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A running fake Alpaca (small SPY chain expiring around today) on 127.0.0.1."""
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    quotes, _ = spy_chain(dt.date.today())
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeAlpaca(quotes=quotes, stock_price={"SPY": 580.0})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def spx_family(stem: str) -> str | None:
    """The first index root a shipped config's strategy trades (by its params), else None."""
    from strategies import get_strategy

    raw = tomllib.loads((CONFIGS / f"{stem}.toml").read_text())
    plugin = get_strategy(raw["strategy"]["name"])
    fixed = {k: v for k, v in raw["strategy"].get("params", {}).items()}
    try:
        params = plugin.Params(**fixed).model_dump()
    except ValueError:
        return None
    for value in params.values():
        if isinstance(value, str) and value.upper() in ROOTS_NOT_ON_ALPACA:
            return value.upper()
    return None


SPX_CONFIGS = [p.stem for p in sorted(CONFIGS.glob("*.toml")) if spx_family(p.stem)]


def test_the_spx_configs_are_the_ones_alpaca_cannot_list() -> None:
    """Every shipped config but the two SPY and three ETF-pair configs trades SPX/SPXW options."""
    spy_or_etf = {"vrp_harvest_spy2021", "ml_spreads_spy2021"} | {
        p.stem for p in CONFIGS.glob("ou_pairs_*.toml")
    }
    assert set(SPX_CONFIGS) == {p.stem for p in CONFIGS.glob("*.toml")} - spy_or_etf


@pytest.mark.parametrize("stem", SPX_CONFIGS)
def test_spx_configs_fail_at_start_with_one_line(stem: str, tmp_path: Path) -> None:
    config = alpaca_config(stem, tmp_path, tmp_path, "http://127.0.0.1:9", tmp_path / "x.duckdb")
    with pytest.raises(ConfigError) as err:
        build_session(config)  # refused before any data is read or any request is sent
    message = str(err.value)
    root = spx_family(stem)
    assert "\n" not in message
    assert f"'{root}'" in message and "kind = 'replay'" in message and "symbol_map" in message
    assert not (tmp_path / "paper").exists()  # no session was opened


@pytest.mark.shared_data
def test_spy_config_runs_its_strategy_on_the_fake_alpaca(
    fake_url: str, tmp_path: Path, shared_data: Path
) -> None:
    from strategies.vrp_harvest import VrpHarvestStrategy

    config = alpaca_config("vrp_harvest_spy2021", tmp_path, shared_data, fake_url, tmp_path / "c")
    bars: list[pd.Timestamp] = []
    session = build_session(config, on_bar=lambda s: bars.append(s.venue.now()))
    assert session.components.strategy_cls is VrpHarvestStrategy  # the backtest's class
    (feed,) = session.components.feeds
    assert feed.islive() and feed.p.live
    session.store.until = pd.Timestamp.now(tz="America/New_York") + pd.Timedelta(seconds=2)
    session.run()
    assert len(bars) >= 2  # chain snapshots polled from the fake venue, one bar each
    assert session.broker.reconciliations[-1].clean
    audit = pd.read_json(next((tmp_path / "paper").iterdir()) / "audit.jsonl", lines=True)
    assert audit["event"].iloc[0] == "session_start" and audit["event"].iloc[-1] == "session_end"


@pytest.mark.shared_data
def test_a_strategy_on_its_own_bars_is_refused_on_alpaca(tmp_path: Path, shared_data: Path) -> None:
    """ou_pairs reads formation lines precomputed on its daily bars: no live feed to stream."""
    config = alpaca_config(
        "ou_pairs_gld_gdx", tmp_path, shared_data, "http://127.0.0.1:9", tmp_path / "c"
    )
    with pytest.raises(
        ConfigError, match=r"ou_pairs runs on its own historical feeds \(GLD, GDX\)"
    ):
        build_session(config)
