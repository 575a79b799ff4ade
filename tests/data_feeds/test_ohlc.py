"""load_ohlc: every supported layout, validation errors that name source/row/field, reports."""

from __future__ import annotations

from pathlib import Path

import arch.data.sp500
import numpy as np
import pandas as pd
import pytest

from data_feeds import DataSourceError, DataValidationError, load_ohlc

RAW = arch.data.sp500.load()


def _write_yahoo_csv(path: Path, rows: int = 30) -> pd.DataFrame:
    raw = RAW.iloc[:rows].copy()
    raw.index.name = "Date"
    raw.to_csv(path)
    return raw


def test_builtin_sp500_matches_arch_and_is_validated(sp500: pd.DataFrame) -> None:
    assert list(sp500.columns) == ["open", "high", "low", "close", "volume"]
    assert str(sp500.index.tz) == "America/New_York"
    assert sp500.index.is_monotonic_increasing and sp500.index.is_unique
    assert len(sp500) == len(RAW) == 5031
    np.testing.assert_array_equal(sp500["close"].to_numpy(), RAW["Close"].to_numpy())
    assert sp500.attrs["load_report"].rows_kept == 5031


def test_builtin_vix_drops_only_nyse_holidays_and_counts_them() -> None:
    import arch.data.vix

    raw = arch.data.vix.load()
    vix = load_ohlc("builtin:vix")
    report = vix.attrs["load_report"]
    n_nan = int(raw["vix"].isna().sum())
    assert n_nan > 0
    assert report.dropped == {"exchange closed (NYSE holiday), no prices": n_nan}
    assert len(vix) == len(raw) - n_nan
    assert list(vix.columns) == ["close"]
    # Christmas 2017 was a holiday: removed; 2017-12-26 a session: kept
    assert pd.Timestamp("2017-12-25", tz="America/New_York") not in vix.index
    assert pd.Timestamp("2017-12-26", tz="America/New_York") in vix.index


def test_nan_on_a_trading_day_is_an_error_naming_row_and_field(tmp_path: Path) -> None:
    raw = _write_yahoo_csv(tmp_path / "x.csv")
    raw.iloc[5, raw.columns.get_loc("Close")] = np.nan
    raw.to_csv(tmp_path / "x.csv")
    with pytest.raises(DataValidationError) as info:
        load_ohlc(tmp_path / "x.csv")
    day = raw.index[5].strftime("%Y-%m-%d")
    assert f"row {day}" in str(info.value) and "field 'close'" in str(info.value)


def test_yahoo_csv_layout_iso_dates(tmp_path: Path) -> None:
    raw = _write_yahoo_csv(tmp_path / "spx.csv")
    df = load_ohlc(tmp_path / "spx.csv")
    np.testing.assert_allclose(df["high"].to_numpy(), raw["High"].to_numpy())
    assert df.index[0].strftime("%Y-%m-%d") == raw.index[0].strftime("%Y-%m-%d")


def test_cboe_layout_us_dates_and_parquet(tmp_path: Path) -> None:
    raw = RAW.iloc[:20]
    cboe = pd.DataFrame(
        {
            "DATE": raw.index.strftime("%m/%d/%Y"),
            "OPEN": raw["Open"].to_numpy(),
            "HIGH": raw["High"].to_numpy(),
            "LOW": raw["Low"].to_numpy(),
            "CLOSE": raw["Close"].to_numpy(),
        }
    )
    cboe.to_csv(tmp_path / "cboe.csv", index=False)
    cboe.to_parquet(tmp_path / "cboe.parquet")
    for path in (tmp_path / "cboe.csv", tmp_path / "cboe.parquet"):
        df = load_ohlc(path)
        assert list(df.columns) == ["open", "high", "low", "close"]
        assert df.index[3].strftime("%Y-%m-%d") == raw.index[3].strftime("%Y-%m-%d")


def test_long_format_needs_root_and_selects_it(tmp_path: Path) -> None:
    a = RAW.iloc[:10].assign(root="SPX")
    b = (RAW.iloc[:10] / 100).assign(root="VIX")
    pd.concat([a, b]).rename_axis("Date").to_csv(tmp_path / "long.csv")
    with pytest.raises(DataSourceError, match=r"pass root= one of \['SPX', 'VIX'\]"):
        load_ohlc(tmp_path / "long.csv")
    with pytest.raises(DataSourceError, match="root 'QQQ' not in the file"):
        load_ohlc(tmp_path / "long.csv", root="QQQ")
    vix = load_ohlc(tmp_path / "long.csv", root="VIX")
    np.testing.assert_allclose(vix["close"].to_numpy(), RAW["Close"].iloc[:10].to_numpy() / 100)


def test_single_column_series_is_close_only(tmp_path: Path) -> None:
    pd.DataFrame({"DATE": ["01/03/2017", "01/04/2017"], "VVIX": [90.1, 88.2]}).to_csv(
        tmp_path / "vvix.csv", index=False
    )
    # both dates read as a month (DD/MM) or a day (MM/DD) apart: ambiguous, the file must say
    with pytest.raises(DataValidationError, match=r"ambiguous dates: '01/03/2017'.*date_format"):
        load_ohlc(tmp_path / "vvix.csv")
    df = load_ohlc(tmp_path / "vvix.csv", date_format="%m/%d/%Y")
    assert df.index[0].strftime("%Y-%m-%d") == "2017-01-03"
    assert list(df.columns) == ["close"]
    assert df["close"].tolist() == [90.1, 88.2]


def test_high_below_low_fails_with_one_line_naming_row_and_field(tmp_path: Path) -> None:
    raw = _write_yahoo_csv(tmp_path / "bad.csv")
    raw.iloc[7, raw.columns.get_loc("High")] = raw["Low"].iloc[7] - 1.0
    raw.to_csv(tmp_path / "bad.csv")
    with pytest.raises(DataValidationError) as info:
        load_ohlc(tmp_path / "bad.csv")
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path / "bad.csv") in msg
    assert f"row {raw.index[7]:%Y-%m-%d}" in msg and "field 'high'" in msg and "high < low" in msg


def test_drop_policy_counts_each_rule(tmp_path: Path) -> None:
    raw = _write_yahoo_csv(tmp_path / "bad.csv")
    raw.iloc[3, raw.columns.get_loc("Open")] = raw["High"].iloc[3] + 5.0  # high < open
    raw.iloc[9, raw.columns.get_loc("Close")] = -1.0  # non-positive (and below low)
    raw.to_csv(tmp_path / "bad.csv")
    df = load_ohlc(tmp_path / "bad.csv", on_invalid="drop")
    report = df.attrs["load_report"]
    assert len(df) == 28 and report.rows_read == 30
    assert report.dropped["invalid: high < open (expected low <= open <= high)"] == 1
    assert report.dropped["invalid: close must be > 0"] == 1
    assert sum(report.dropped.values()) == 2  # a row breaking two rules is counted once


def test_duplicate_date_is_an_error(tmp_path: Path) -> None:
    raw = RAW.iloc[:5]
    pd.concat([raw, raw.iloc[[2]]]).rename_axis("Date").to_csv(tmp_path / "dup.csv")
    with pytest.raises(DataValidationError, match=f"row {raw.index[2]:%Y-%m-%d}.*duplicate"):
        load_ohlc(tmp_path / "dup.csv")


def test_unsorted_rows_are_sorted_and_noted(tmp_path: Path) -> None:
    RAW.iloc[:10].iloc[::-1].rename_axis("Date").to_csv(tmp_path / "rev.csv")
    df = load_ohlc(tmp_path / "rev.csv")
    assert df.index.is_monotonic_increasing
    assert any("sorted" in n for n in df.attrs["load_report"].notes)


def test_start_end_filter_is_counted(sp500: pd.DataFrame) -> None:
    df = load_ohlc("builtin:sp500", start="2010-01-01", end="2010-12-31")
    report = df.attrs["load_report"]
    expected = sp500.loc["2010-01-01":"2010-12-31"]
    assert len(df) == len(expected) == 252
    assert report.dropped["before start"] + report.dropped["after end"] == len(sp500) - 252


def test_unknown_sources_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="unknown builtin"):
        load_ohlc("builtin:nope")
    with pytest.raises(DataSourceError, match="file not found"):
        load_ohlc(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataSourceError, match="unsupported file type"):
        load_ohlc(tmp_path / "x.json")


def test_unparsable_date_names_the_row(tmp_path: Path) -> None:
    pd.DataFrame({"Date": ["2020-01-02", "yesterday"], "Close": [1.0, 2.0]}).to_csv(
        tmp_path / "d.csv", index=False
    )
    with pytest.raises(DataValidationError, match=r"row #2, field 'date'.*'yesterday'"):
        load_ohlc(tmp_path / "d.csv")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("name", "root", "policy", "first", "columns"),
    [
        ("spx_vix_spy_qqq_daily.csv", "SPX", "raise", "1995-01-03", 5),
        ("spx_vix_spy_qqq_daily.csv", "VIX", "raise", "1995-01-03", 5),
        ("vix_daily.csv", None, "drop", "1990-01-02", 4),
        ("vvix_daily.csv", None, "raise", "2006-03-06", 1),
        ("skew_daily.csv", None, "raise", "1990-01-02", 1),
    ],
)
def test_every_shared_index_layout_loads(
    shared_data: Path, name: str, root: str | None, policy: str, first: str, columns: int
) -> None:
    df = load_ohlc(shared_data / "index" / name, root=root, on_invalid=policy)
    assert df.index[0].strftime("%Y-%m-%d") == first
    assert df.shape[1] == columns
    assert df.index.is_unique and df.index.is_monotonic_increasing


@pytest.mark.shared_data
def test_cboe_vix_file_bad_opens_raise_by_default_and_are_counted_when_dropped(
    shared_data: Path,
) -> None:
    path = shared_data / "index" / "vix_daily.csv"
    with pytest.raises(DataValidationError, match=r"row 1992-02-11, field 'high': high < open"):
        load_ohlc(path)
    raw = pd.read_csv(path)
    bad = (
        (raw.LOW > raw.OPEN)
        | (raw.LOW > raw.CLOSE)
        | (raw.HIGH < raw.OPEN)
        | (raw.HIGH < raw.CLOSE)
        | (raw.HIGH < raw.LOW)
    )
    df = load_ohlc(path, on_invalid="drop")
    assert sum(df.attrs["load_report"].dropped.values()) == int(bad.sum())
    assert len(df) == len(raw) - int(bad.sum())
