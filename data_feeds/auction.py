"""The SPX opening-auction feed: overnight move, overnight vol and jumps, 0DTE opening straddle.

One row per trading date of the SPX/SPXW minute option quotes, stamped 09:31 ET (the end of the
09:30-09:31 bar, the first moment every field is known):

=========================  ==============================================================
column                     meaning (units)
=========================  ==============================================================
prev_close                 SPX close of the previous NYSE session (index points)
open_print                 SPX opening print: open of the 09:30 index minute bar, else the
                           daily ``open`` (index points); ``open_source`` says which
overnight_return           ``log(open_print / prev_close)`` (decimal)
spot_0931                  SPX index at 09:31: close of the 09:30 minute bar (index points)
overnight_n_returns        futures returns in the overnight window (count)
overnight_rv               sum of squared futures log returns 16:00 -> 09:30 ET (decimal^2)
overnight_vol              ``sqrt(overnight_rv)`` (decimal per overnight, not annualized)
overnight_jump_stat        Barndorff-Nielsen & Shephard (2006) z of the overnight bars
jump_flag                  1.0 if ``overnight_jump_stat > Phi^{-1}(1 - jump_alpha)`` else 0.0
atm_strike                 0DTE SPXW strike minimizing ``|call_mid - put_mid|`` at 09:31
forward                    ``atm_strike + call_mid - put_mid`` (put-call parity, rate 0)
straddle_bid/ask/mid       0DTE ATM straddle quote at 09:31: sums of the legs' bid_close /
                           ask_close of the 09:30 bar (index points; x100 for dollars)
tte                        years ACT/365 from 09:31 ET to the SPXW settlement (16:00 ET)
implied_vol                Black (1976) implied vol of the ATM straddle mid at ``forward``
                           and ``tte``, rate 0 (decimal, annualized)
n_0dte_strikes             0DTE strikes with a usable call and put quote at 09:31
=========================  ==============================================================

Absent data is NaN, never zero: no futures bars for the date -> the ``overnight_*`` columns and
``jump_flag`` are NaN; no SPXW contract expiring that day (or no strike with both legs quoted,
uncrossed, with a bid) -> the straddle columns are NaN; no index minute bars -> ``spot_0931``
NaN and ``open_print`` from the daily file. Order-book imbalance and auction volume are not in
any of our data sets and are not columns at all.

Time zones: the option and index minute files are ET wall-clock (bar start stamps); the
1-minute ES file is UTC and is converted; the 5-minute ES file is ET wall-clock (its daily halt
is 17:00-18:00 in its own stamps, which only fits ET). All outputs are America/New_York.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from data_feeds.calendar import TZ, nyse_sessions
from data_feeds.chains import settlement_time
from data_feeds.errors import DataSourceError, DataValidationError
from indicators.jumps import session_jump_stats
from pricing import implied_vol
from pricing.forwards import nearest_parity_forwards

__all__ = [
    "AUCTION_COLUMNS",
    "AUCTION_LINES",
    "AuctionFeed",
    "AuctionReport",
    "FuturesLoadReport",
    "auction_feed",
    "auction_frame",
    "load_futures_minute",
    "load_option_minute_quotes",
]

OPTION_COLUMNS = (
    "date",
    "time_et",
    "root",
    "expiration",
    "strike",
    "right",
    "bid_close",
    "ask_close",
)

#: Numeric columns of :func:`auction_frame` (all are lines of :class:`AuctionFeed`).
AUCTION_COLUMNS: tuple[str, ...] = (
    "prev_close",
    "open_print",
    "overnight_return",
    "spot_0931",
    "overnight_n_returns",
    "overnight_rv",
    "overnight_vol",
    "overnight_jump_stat",
    "jump_flag",
    "atm_strike",
    "forward",
    "straddle_bid",
    "straddle_ask",
    "straddle_mid",
    "tte",
    "implied_vol",
    "n_0dte_strikes",
)

#: Feed line names of frame columns that clash with backtrader attributes (``forward`` is a
#: ``LineSeries`` method).
_LINE_RENAMES: dict[str, str] = {"forward": "atm_forward"}

#: Extra lines of :class:`AuctionFeed` (``open``/``close`` carry ``open_print``; the
#: ``forward`` column is the line ``atm_forward``).
AUCTION_LINES: tuple[str, ...] = tuple(
    _LINE_RENAMES.get(c, c) for c in AUCTION_COLUMNS if c != "open_print"
)

#: Stamp of a feed row: the end of the 09:30-09:31 bar.
AUCTION_TIME = dt.time(9, 31)
_OPEN_BAR = "09:30"
_CLOSE_BAR = "15:59"


def _read_csv(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataSourceError(f"{p}: file not found")
    frame = pd.read_csv(p)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataSourceError(
            f"{p}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}"
        )
    return frame


def _et_stamps(date: pd.Series, time: pd.Series) -> pd.DatetimeIndex:
    naive = pd.to_datetime(date.astype(str) + " " + time.astype(str), format="%Y-%m-%d %H:%M")
    return pd.DatetimeIndex(naive).tz_localize(TZ)


def load_option_minute_quotes(path: str | Path) -> pd.DataFrame:
    """Read the minute option quote bars (``spx_spxw_spy_option_minute_quotes.csv.gz`` layout).

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with ``date, time_et, root, expiration, strike, right, bid_*, ask_*`` (dollars per
        share = index points, ET wall-clock bar-start stamps).

    Returns
    -------
    pandas.DataFrame
        The file's columns plus ``timestamp`` (tz-aware America/New_York bar start).

    Raises
    ------
    DataSourceError
        Missing file or column.
    DataValidationError
        A ``right`` other than C/P (names the row).
    """
    frame = _read_csv(path, OPTION_COLUMNS)
    bad = ~frame["right"].isin(["C", "P"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError(
            str(path), f"right must be 'C' or 'P', got {frame['right'].iloc[i]!r}",
            row=f"line {i + 2}", field="right",
        )  # fmt: skip
    frame["timestamp"] = _et_stamps(frame["date"], frame["time_et"])
    return frame


@dataclass
class FuturesLoadReport:
    """What :func:`load_futures_minute` kept and removed.

    Attributes
    ----------
    source : str
    rows_in, rows_kept, rows_back_months : int
        Rows read, kept (front month) and removed (other contract months of the session).
    front_month : dict
        CME session date (``YYYY-MM-DD``, the session ending 17:00 ET that day) -> front
        contract month chosen (largest volume in that session).
    """

    source: str
    rows_in: int = 0
    rows_kept: int = 0
    rows_back_months: int = 0
    front_month: dict[str, int] = field(default_factory=dict)


def load_futures_minute(path: str | Path) -> tuple[pd.DataFrame, FuturesLoadReport]:
    """Read ES futures bars, normalize to America/New_York and keep the front month.

    Two layouts are recognized: ``timestamp_utc, contract_month, open..volume`` (UTC, several
    contract months side by side: ``es_futures_minute_2013_2020.csv.gz``) and
    ``datetime, open..volume, symbol`` (ET wall-clock, one continuous front contract:
    ``es_5min_2026.csv.gz``). With several months, each CME session (18:00 ET of the previous
    day to 17:00 ET; dated by its end) keeps the contract month with the largest total volume
    in that session; the other months' rows are counted in the report and dropped.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    frame : pandas.DataFrame
        ``open, high, low, close, volume, contract_month`` (``-1`` when the file has none)
        indexed by tz-aware America/New_York bar start, sorted, unique.
    report : FuturesLoadReport

    Raises
    ------
    DataSourceError
        Missing file or unrecognized layout.
    DataValidationError
        Duplicate timestamps within the kept contract, or non-positive prices.
    """
    p = Path(path)
    if not p.is_file():
        raise DataSourceError(f"{p}: file not found")
    raw = pd.read_csv(p)
    report = FuturesLoadReport(source=str(p), rows_in=len(raw))
    cols = ["open", "high", "low", "close", "volume"]
    if {"timestamp_utc", "contract_month", *cols} <= set(raw.columns):
        ts = pd.DatetimeIndex(pd.to_datetime(raw["timestamp_utc"])).tz_localize("UTC")
        raw.index = ts.tz_convert(TZ)
    elif {"datetime", *cols} <= set(raw.columns):
        raw.index = pd.DatetimeIndex(pd.to_datetime(raw["datetime"])).tz_localize(TZ)
        raw["contract_month"] = -1
    else:
        raise DataSourceError(
            f"{p}: unrecognized futures layout (expected timestamp_utc+contract_month or "
            f"datetime columns with open, high, low, close, volume); found {', '.join(raw.columns)}"
        )
    raw = raw[[*cols, "contract_month"]]
    # CME session date: bars from 18:00 ET belong to the next day's session
    session = (raw.index + pd.Timedelta(hours=6)).tz_localize(None).normalize()
    vol = raw.groupby([session, raw["contract_month"]])["volume"].sum()
    front = vol.groupby(level=0).idxmax().map(lambda t: t[1])
    keep = raw["contract_month"].to_numpy() == front.reindex(session).to_numpy()
    report.front_month = {d.strftime("%Y-%m-%d"): int(m) for d, m in front.items()}
    out = raw[keep].sort_index()
    report.rows_kept = len(out)
    report.rows_back_months = int((~keep).sum())
    if out.index.has_duplicates:
        ts0 = out.index[out.index.duplicated()][0]
        raise DataValidationError(
            str(p), "duplicate bar timestamp in the front month", row=str(ts0)
        )
    if (out[["open", "high", "low", "close"]] <= 0).any().any():
        raise DataValidationError(str(p), "prices must be > 0", field="open/high/low/close")
    return out, report


@dataclass
class AuctionReport:
    """Per-date account of what :func:`auction_frame` could and could not fill.

    Attributes
    ----------
    dates : int
        Rows built.
    no_0dte : list of str
        Dates without an SPXW contract expiring that day in the quotes.
    no_straddle : list of str
        Dates with 0DTE contracts but no strike with a usable call and put at 09:31.
    quotes_unusable : int
        0DTE 09:30-bar legs dropped: missing bid/ask or crossed (bid_close > ask_close).
    no_prev_close, no_open, no_futures : list of str
        Dates whose prev_close / open_print / overnight fields are NaN.
    rows_other_roots : int
        Quote rows of other roots (e.g. SPY) ignored.
    """

    dates: int = 0
    no_0dte: list[str] = field(default_factory=list)
    no_straddle: list[str] = field(default_factory=list)
    quotes_unusable: int = 0
    no_prev_close: list[str] = field(default_factory=list)
    no_open: list[str] = field(default_factory=list)
    no_futures: list[str] = field(default_factory=list)
    rows_other_roots: int = 0


def _opening_straddle(day: pd.DataFrame, date: pd.Timestamp, report: AuctionReport) -> dict:
    """0DTE ATM straddle fields of one date from its 09:30 quote bars (SPXW rows only)."""
    nan = math.nan
    out = dict.fromkeys(
        ("atm_strike", "forward", "straddle_bid", "straddle_ask", "straddle_mid", "tte",
         "implied_vol"), nan,
    )  # fmt: skip
    out["n_0dte_strikes"] = 0.0
    iso = date.strftime("%Y-%m-%d")
    zero = day[(day["root"] == "SPXW") & (day["expiration"] == iso)]
    if zero.empty:
        report.no_0dte.append(iso)
        return out
    bar = zero[zero["time_et"] == _OPEN_BAR]
    ok = (
        bar["bid_close"].notna()
        & bar["ask_close"].notna()
        & (bar["bid_close"] > 0)
        & (bar["bid_close"] <= bar["ask_close"])
    )
    report.quotes_unusable += int((~ok).sum())
    bar = bar[ok]
    calls = bar[bar["right"] == "C"].set_index("strike")
    puts = bar[bar["right"] == "P"].set_index("strike")
    strikes = calls.index.intersection(puts.index).sort_values()
    out["n_0dte_strikes"] = float(len(strikes))
    if len(strikes) == 0:
        report.no_straddle.append(iso)
        return out
    c_mid = (calls.loc[strikes, "bid_close"] + calls.loc[strikes, "ask_close"]) / 2.0
    p_mid = (puts.loc[strikes, "bid_close"] + puts.loc[strikes, "ask_close"]) / 2.0
    k = float((c_mid - p_mid).abs().idxmin())
    # the suite's parity forward (pricing.nearest_parity_forwards) at the one pair nearest the
    # money, rate 0: K + C - P
    fwd_g, _ = nearest_parity_forwards(
        np.zeros(len(strikes), dtype=np.int64),
        strikes.to_numpy(dtype=float),
        c_mid.to_numpy(dtype=float),
        p_mid.to_numpy(dtype=float),
        [0.0],
        0.0,
        n_strikes=1,
    )
    fwd = float(fwd_g[0])
    stamp = pd.Timestamp.combine(date.date(), AUCTION_TIME).tz_localize(TZ)
    tte = (settlement_time(date.date(), "PM") - stamp).total_seconds() / (365.0 * 86400.0)
    mid = float(c_mid[k] + p_mid[k])
    # Black-76 at the parity forward with rate 0: call and put give the same vol; invert the
    # out-of-the-money leg (better conditioned)
    right = "C" if k >= fwd else "P"
    leg = float(c_mid[k] if right == "C" else p_mid[k])
    out.update(
        atm_strike=k,
        forward=fwd,
        straddle_bid=float(calls.loc[k, "bid_close"] + puts.loc[k, "bid_close"]),
        straddle_ask=float(calls.loc[k, "ask_close"] + puts.loc[k, "ask_close"]),
        straddle_mid=mid,
        tte=tte,
        implied_vol=float(implied_vol(leg, fwd, k, tte, 0.0, 0.0, right)),
    )
    return out


def auction_frame(
    option_quotes: pd.DataFrame,
    *,
    daily: pd.DataFrame | None = None,
    index_minute: pd.DataFrame | None = None,
    futures_minute: pd.DataFrame | None = None,
    jump_alpha: float = 0.001,
) -> tuple[pd.DataFrame, AuctionReport]:
    """Build the auction rows: one per SPX/SPXW trading date of ``option_quotes``.

    Parameters
    ----------
    option_quotes : pandas.DataFrame
        From :func:`load_option_minute_quotes`. Rows of roots other than SPX/SPXW are ignored
        (counted in the report).
    daily : pandas.DataFrame, optional
        SPX daily ``open``/``close`` indexed by date (e.g.
        ``load_ohlc(".../spx_vix_spy_qqq_daily.csv", root="SPX")``): source of ``prev_close``
        and, without index minute bars, of ``open_print``.
    index_minute : pandas.DataFrame, optional
        From :func:`data_feeds.minute_bars.load_minute_bars` with ``stamp="start"`` (bars
        indexed by their start): ``open_print`` (09:30 bar open), ``spot_0931`` (its close)
        and, when ``daily`` lacks the date, ``prev_close`` (previous session's 15:59 bar
        close).
    futures_minute : pandas.DataFrame, optional
        From :func:`load_futures_minute`: overnight window bars (16:00 -> 09:30 ET, see
        :func:`indicators.jumps.session_labels`) give ``overnight_rv``/``vol``/``jump_stat``.
    jump_alpha : float, default 0.001
        One-sided significance of ``jump_flag``.

    Returns
    -------
    frame : pandas.DataFrame
        Index: tz-aware America/New_York timestamps at 09:31 of each date; columns
        :data:`AUCTION_COLUMNS` plus ``open_source`` (``'minute'``, ``'daily'`` or ``''``).
        Only data stamped before 09:31 of the row's date is used.
    report : AuctionReport

    Raises
    ------
    DataValidationError
        ``option_quotes`` has no SPX/SPXW rows.
    """
    report = AuctionReport()
    spx = option_quotes[option_quotes["root"].isin(["SPX", "SPXW"])]
    report.rows_other_roots = len(option_quotes) - len(spx)
    if spx.empty:
        raise DataValidationError(
            "option_quotes", "no SPX/SPXW rows (auction feed is SPX only)", field="root"
        )
    dates = pd.DatetimeIndex(sorted(pd.to_datetime(spx["date"].unique())))
    sessions = nyse_sessions(dates[0] - pd.Timedelta(days=10), dates[-1]).tz_localize(None)
    daily_open = daily_close = None
    if daily is not None:
        d_index = pd.DatetimeIndex(daily.index)
        d_index = d_index.tz_localize(None) if d_index.tz is not None else d_index
        daily_open = pd.Series(daily["open"].to_numpy(), index=d_index.normalize())
        daily_close = pd.Series(daily["close"].to_numpy(), index=d_index.normalize())
    overnight = None
    if futures_minute is not None and not futures_minute.empty:
        overnight = session_jump_stats(futures_minute["close"], "overnight", alpha=jump_alpha)
    rows = []
    for date in dates:
        iso = date.strftime("%Y-%m-%d")
        row: dict[str, float | str] = {}
        prev = sessions[sessions < date]
        prev_day = prev[-1] if len(prev) else None
        prev_close = math.nan
        if prev_day is not None and daily_close is not None and prev_day in daily_close.index:
            prev_close = float(daily_close[prev_day])
        elif prev_day is not None and index_minute is not None:
            stamp = pd.Timestamp(f"{prev_day:%Y-%m-%d} {_CLOSE_BAR}").tz_localize(TZ)
            if stamp in index_minute.index:
                prev_close = float(index_minute.at[stamp, "close"])
        open_print, spot, source = math.nan, math.nan, ""
        stamp = pd.Timestamp(f"{iso} {_OPEN_BAR}").tz_localize(TZ)
        if index_minute is not None and stamp in index_minute.index:
            open_print = float(index_minute.at[stamp, "open"])
            spot = float(index_minute.at[stamp, "close"])
            source = "minute"
        elif daily_open is not None and date in daily_open.index:
            open_print, source = float(daily_open[date]), "daily"
        if math.isnan(prev_close):
            report.no_prev_close.append(iso)
        if math.isnan(open_print):
            report.no_open.append(iso)
        row.update(
            prev_close=prev_close,
            open_print=open_print,
            overnight_return=math.log(open_print / prev_close),
            spot_0931=spot,
            open_source=source,
        )
        on = dict.fromkeys(
            ("overnight_n_returns", "overnight_rv", "overnight_vol", "overnight_jump_stat",
             "jump_flag"), math.nan,
        )  # fmt: skip
        if overnight is not None and date in overnight.index:
            o = overnight.loc[date]
            on.update(
                overnight_n_returns=float(o["n_returns"]),
                overnight_rv=float(o["rv"]),
                overnight_vol=float(o["vol"]),
                overnight_jump_stat=float(o["jump_stat"]),
                jump_flag=float(o["jump_flag"]),
            )
        else:
            report.no_futures.append(iso)
        row.update(on)
        row.update(_opening_straddle(spx[spx["date"] == iso], date, report))
        rows.append(row)
    index = pd.DatetimeIndex(
        [pd.Timestamp.combine(d.date(), AUCTION_TIME) for d in dates], name="datetime"
    ).tz_localize(TZ)
    frame = pd.DataFrame(rows, index=index)[[*AUCTION_COLUMNS, "open_source"]]
    report.dates = len(frame)
    return frame, report


class AuctionFeed(bt.feeds.PandasData):
    """backtrader feed of :func:`auction_frame` rows: one bar per date at 09:31 ET.

    ``open`` and ``close`` carry the opening print (``high``/``low``/``volume`` are absent);
    every other :data:`AUCTION_COLUMNS` field is a line of the same name (NaN where the data
    cannot give it), except ``forward``, which is the line ``atm_forward`` (backtrader feeds
    have a ``forward()`` method). Build it with :func:`auction_feed`.
    """

    lines = AUCTION_LINES
    params = (
        ("datetime", None),
        ("open", "open_print"),
        ("high", -1),
        ("low", -1),
        ("close", "open_print"),
        ("volume", -1),
        ("openinterest", -1),
        *((name, name) for name in AUCTION_LINES),
    )


def auction_feed(frame: pd.DataFrame, **kwargs: object) -> AuctionFeed:
    """Wrap an :func:`auction_frame` result as an :class:`AuctionFeed`.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`auction_frame` (tz-aware ET index).
    **kwargs
        Passed to :class:`AuctionFeed` (e.g. ``name``).

    Returns
    -------
    AuctionFeed
        Datetimes are naive America/New_York wall-clock (backtrader's convention).

    Raises
    ------
    ValueError
        Missing :data:`AUCTION_COLUMNS`.
    """
    missing = [c for c in AUCTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"auction frame lacks column(s) {', '.join(missing)}")
    data = frame[list(AUCTION_COLUMNS)].astype(float).rename(columns=_LINE_RENAMES)
    idx = pd.DatetimeIndex(frame.index)
    data.index = idx.tz_convert(TZ).tz_localize(None) if idx.tz is not None else idx
    return AuctionFeed(dataname=data, **kwargs)
