"""Fixtures of the live-broker tests: a running fake Alpaca server (``fake_alpaca.py``)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from fake_alpaca import KEY, SECRET, FakeAlpaca, _Handler, _Server, spy_chain


@pytest.fixture
def fake_alpaca(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAlpaca, str]]:
    """A running fake Alpaca server with a small SPY chain; yields (state, base URL). The test
    keys are put in the environment for the duration of the test."""
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    quotes, _ = spy_chain(dt.date.today())
    fake = FakeAlpaca(quotes=quotes, stock_price={"SPY": 580.0})
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
