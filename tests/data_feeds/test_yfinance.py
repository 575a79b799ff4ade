"""yfinance source: cache-first, atomic cache writes, offline fallback, clear error with no cache.

No network here: the downloader is replaced by a recorded frame in yfinance's ``download`` layout
(columns Open/High/Low/Close/Adj Close/Volume, tz-naive DatetimeIndex named Date), built from the
S&P 500 bars that ship with ``arch``.
"""

from __future__ import annotations

from pathlib import Path

import arch.data.sp500
import numpy as np
import pandas as pd
import pytest

from data_feeds import DataSourceError, load_ohlc


def recorded(_ticker: str) -> pd.DataFrame:
    raw = arch.data.sp500.load().iloc[-60:]
    raw.index.name = "Date"
    return raw[["Open", "High", "Low", "Close", "Adj Close", "Volume"]]


def offline(_ticker: str) -> pd.DataFrame:
    raise ConnectionError("no route to host")


def test_download_is_cached_then_read_offline(tmp_path: Path) -> None:
    first = load_ohlc("yfinance:^GSPC", cache_dir=tmp_path, downloader=recorded)
    assert (tmp_path / "_GSPC.parquet").exists()
    assert not list(tmp_path.glob("*.tmp"))
    assert any("downloaded" in n for n in first.attrs["load_report"].notes)
    second = load_ohlc("yfinance:^GSPC", cache_dir=tmp_path, downloader=offline)
    pd.testing.assert_frame_equal(first, second, check_freq=False)
    np.testing.assert_allclose(second["close"].to_numpy(), recorded("")["Close"].to_numpy())


def test_offline_without_cache_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        load_ohlc("yfinance:SPY", cache_dir=tmp_path, downloader=offline)
    msg = str(info.value)
    assert "yfinance:SPY: download failed (ConnectionError" in msg and "no cache" in msg
    assert not list(tmp_path.iterdir())


def test_multiindex_columns_from_newer_yfinance_are_flattened(tmp_path: Path) -> None:
    def multi(_t: str) -> pd.DataFrame:
        frame = recorded(_t)
        frame.columns = pd.MultiIndex.from_product(
            [frame.columns, ["SPY"]], names=["Price", "Ticker"]
        )
        return frame

    df = load_ohlc("yfinance:SPY", cache_dir=tmp_path, downloader=multi)
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
