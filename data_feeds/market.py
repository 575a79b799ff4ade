"""Daily 0DTE market tables: the market side of the ``zero_dte_straddle`` model.

A market table has one row per session with the at-the-money 0DTE straddle as it could be traded at
the open: ``spot, strike, tte, call_bid, call_ask, put_bid, put_ask, straddle_bid, straddle_ask,
straddle_mid, market_iv`` and a ``source`` label. This module builds it from VIX as a documented
proxy (:func:`vix_proxy_market_table`); the chain store of a later issue builds it from real SPXW
quotes with the same columns.

Units: prices in index points (dollars per unit; one SPX contract = 100 units); ``tte`` in ACT/365
years from 09:30 ET to the session close; ``market_iv`` decimal, annualized on that ACT/365 clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from data_feeds.calendar import MINUTES_PER_YEAR, TZ, nyse_sessions, session_minutes
from data_feeds.contracts import OptionContract
from pricing import bs_price

if TYPE_CHECKING:
    from data_feeds.chain_feed import SnapshotSource

MARKET_COLUMNS = (
    "trade_minute",
    "expiration_ordinal",
    "horizon_sessions",
    "spot",
    "strike",
    "tte",
    "call_bid",
    "call_ask",
    "put_bid",
    "put_ask",
    "straddle_bid",
    "straddle_ask",
    "straddle_mid",
    "market_iv",
    "held_strike",
    "held_call_mid",
    "held_put_mid",
)
"""Columns of a market table, all floats so that they can be backtrader lines.

``trade_minute`` is the ET wall-clock minute of the quotes (570 = 09:30); ``expiration_ordinal`` the
straddle's expiration as ``datetime.date.toordinal()``; ``horizon_sessions`` the sessions of
variance the straddle bears until settlement (1.0 for an open-to-close 0DTE; the remaining fraction
of today plus each later session to expiry for a snapshot taken during the day);
``held_strike``, ``held_call_mid``/``held_put_mid`` the strike and the mids, in today's quotes, of
the straddle listed on the previous row when it is still alive today (NaN otherwise): the marks of
a position carried overnight.
"""


def atm_strike(spot: np.ndarray | float, increment: float = 5.0) -> np.ndarray:
    """Listed strike nearest to ``spot`` on a grid of ``increment`` (ties round up).

    Parameters
    ----------
    spot : float or numpy.ndarray
        Underlying price (index points).
    increment : float
        Strike spacing (5 for SPX/SPXW near the money).

    Returns
    -------
    numpy.ndarray
        Strikes, same shape as ``spot``.

    Raises
    ------
    ValueError
        ``increment`` <= 0.
    """
    if increment <= 0:
        raise ValueError(f"strike increment must be > 0, got {increment}")
    return np.floor(np.asarray(spot, dtype=float) / increment + 0.5) * increment


def vix_proxy_market_table(
    underlying: pd.DataFrame,
    vix: pd.Series,
    *,
    rate: float = 0.0,
    div_yield: float = 0.0,
    strike_increment: float = 5.0,
    spread_fraction: float = 0.03,
    min_leg_spread: float = 0.10,
) -> pd.DataFrame:
    """Market 0DTE ATM straddle at the open, proxied from the previous session's VIX close.

    For session ``t`` (all inputs known before 09:30 ET on ``t``):

    * per-session implied variance ``v_t = (VIX_{t-1} / 100)^2 / 252`` (VIX read as an
      annualized vol on 252 sessions, the trader's rule "VIX / 15.87 = expected daily move");
    * ``tte_t`` = minutes from the open to the close of session ``t`` / 525,600 (ACT/365,
      390 minutes on a full day, 210 on a half day);
    * ``market_iv_t = sqrt(v_t / tte_t)`` (the implied vol a chain solver would report for a 0DTE
      option on the ACT/365 clock);
    * spot = the session's opening print, strike = nearest ``strike_increment``;
    * call and put mids = Black-Scholes-Merton at ``market_iv_t``; each leg quoted
      ``mid -/+ max(spread_fraction * mid, min_leg_spread) / 2`` (bid floored at 0).

    Known biases (``docs/zero_dte_straddle.md``): VIX is a 30-day variance-swap rate over all
    strikes, so it carries the variance risk premium, the skew (VIX > ATM IV by ~1-2 vol points) and
    overnight/weekend variance that an open-to-close 0DTE straddle does not bear; the spread model
    is an assumption, not a quote.

    Parameters
    ----------
    underlying : pandas.DataFrame
        Validated daily OHLC of the index (``open`` used), tz-aware session index.
    vix : pandas.Series
        VIX close in vol points, aligned to ``underlying.index`` (NaN where unavailable).
    rate, div_yield : float
        Continuous risk-free rate and dividend yield (decimal) for the BSM legs.
    strike_increment : float
        Strike grid spacing in index points.
    spread_fraction : float
        Leg bid-ask spread as a fraction of the leg mid.
    min_leg_spread : float
        Minimum leg spread in index points.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MARKET_COLUMNS` plus ``vix_prev`` and ``source`` (``"vix_proxy"``), indexed
        like ``underlying``; rows without a previous VIX value are NaN (the strategy stands aside
        and counts them).

    Raises
    ------
    ValueError
        ``vix`` not aligned to ``underlying.index``, or a negative spread parameter.
    """
    if not vix.index.equals(underlying.index):
        raise ValueError("vix must be aligned to underlying.index (use data_feeds.align_to_index)")
    if spread_fraction < 0 or min_leg_spread < 0:
        raise ValueError("spread_fraction and min_leg_spread must be >= 0")
    idx = underlying.index
    vix_prev = vix.shift(1).to_numpy(dtype=float)  # known before today's open
    spot = underlying["open"].to_numpy(dtype=float)
    strike = atm_strike(spot, strike_increment)
    tte = session_minutes(idx).to_numpy() / MINUTES_PER_YEAR
    market_iv = np.sqrt((vix_prev / 100.0) ** 2 / 252.0 / tte)
    ok = np.isfinite(market_iv)
    iv = np.where(ok, market_iv, 0.2)  # placeholder vol where VIX is missing; masked below
    call_mid = bs_price(spot, strike, tte, rate, div_yield, iv, "C")
    put_mid = bs_price(spot, strike, tte, rate, div_yield, iv, "P")

    def quote(mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spread = np.maximum(spread_fraction * mid, min_leg_spread)
        bid = np.maximum(mid - spread / 2.0, 0.0)
        return bid, bid + spread

    call_bid, call_ask = quote(call_mid)
    put_bid, put_ask = quote(put_mid)
    table = pd.DataFrame(
        {
            "spot": spot,
            "strike": strike,
            "tte": tte,
            "call_bid": call_bid,
            "call_ask": call_ask,
            "put_bid": put_bid,
            "put_ask": put_ask,
            "straddle_bid": call_bid + put_bid,
            "straddle_ask": call_ask + put_ask,
            "market_iv": market_iv,
        },
        index=idx,
    )
    table["straddle_mid"] = 0.5 * (table["straddle_bid"] + table["straddle_ask"])
    table["trade_minute"] = 570.0
    table["expiration_ordinal"] = [float(d.toordinal()) for d in idx.date]
    table["horizon_sessions"] = 1.0
    table["held_strike"] = np.nan
    table["held_call_mid"] = np.nan
    table["held_put_mid"] = np.nan
    priced = [c for c in MARKET_COLUMNS if c.startswith(("call_", "put_", "straddle_", "market_"))]
    table.loc[~ok, priced] = np.nan
    table["vix_prev"] = vix_prev
    table["source"] = "vix_proxy"
    return table[[*MARKET_COLUMNS, "vix_prev", "source"]]


def chain_market_table(
    source: SnapshotSource,
    underlying: pd.DataFrame,
    *,
    symbol: str = "SPX",
    root: str = "SPXW",
    expiry: Literal["0dte", "next"] = "0dte",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    rate: float = 0.0,
) -> pd.DataFrame:
    """Market table of the ATM straddle from real chain snapshots, one row per NYSE session.

    For each quote date of ``symbol`` in ``source`` (the latest snapshot of the date), the ATM
    straddle of ``root`` expiring either on the quote date (``expiry="0dte"``) or on the first
    listed expiration after it (``expiry="next"``: one to three calendar days for 2019 SPXW,
    which listed Monday/Wednesday/Friday expiries) as it could be traded at the snapshot time:
    leg bids and asks, straddle bid/ask/mid, ``market_iv`` (:meth:`ChainSnapshot.atm_iv`),
    ``tte`` to the PM settlement at the session close (ACT/365, to the minute) and the
    settlement value.

    Parameters
    ----------
    source : SnapshotSource
        Where snapshots come from (:class:`data_feeds.chain_store.ChainStore`).
    underlying : pandas.DataFrame
        Daily OHLC of the index (tz-aware session index): the rows of the table and the settlement
        values (``close`` of the expiration date = SPXW PM settlement).
    symbol, root : str
        Underlying symbol in the store and option root traded (PM-settled ``SPXW``).
    expiry : {"0dte", "next"}
        Which straddle (see above).
    start, end : pandas.Timestamp, optional
        Quote-date bounds.
    rate : float
        Continuous rate (decimal) for forwards and implied vols.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``underlying``; columns :data:`MARKET_COLUMNS` (prices in index points,
        ``spot`` = the index at the snapshot) plus ``quote_time``, ``expiration``, ``dte``
        (calendar days), ``settlement_price`` (NaN when the expiration is past the data) and
        ``source`` (``chain:<root>:<expiry>``). Sessions without a snapshot, or without the
        wanted expiry or a two-sided ATM straddle, have NaN prices (the strategy stands aside)
        and a ``status`` saying why (``status_detail`` holds the query's message).

    Notes
    -----
    The 2019 vendor snapshots are taken late in the session (stored at 15:45 ET, an assumption
    recorded at ingest): the 0DTE straddle covers only the last minutes of the day, the next-expiry
    straddle covers those minutes, the overnight gap and the following session(s).
    """
    from data_feeds.chains import settlement_time

    idx = underlying.index
    table = pd.DataFrame(np.nan, index=idx, columns=list(MARKET_COLUMNS), dtype=float)
    table["quote_time"] = pd.Series(pd.NaT, index=idx, dtype=f"datetime64[ns, {TZ}]")
    table["expiration"] = pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")
    table["dte"] = np.nan
    table["settlement_price"] = np.nan
    table["status"] = "no_snapshot"
    table["status_detail"] = ""
    closes = pd.Series(underlying["close"].to_numpy(float), index=idx.date)
    session_dates = list(idx.date)
    position = {d: i for i, d in enumerate(session_dates)}
    held: tuple[OptionContract, OptionContract] | None = None
    for day in source.quote_dates(symbol, roots=[root]):
        if day not in position or (start is not None and day < start.date()):
            continue
        if end is not None and day > end.date():
            continue
        snap = source.snapshot(symbol, day, roots=[root], rate=rate)
        row = table.index[position[day]]
        if held is not None and held[0].expiration > day:
            table.loc[row, "held_strike"] = held[0].strike
            table.loc[row, "held_call_mid"] = snap.mid(held[0])
            table.loc[row, "held_put_mid"] = snap.mid(held[1])
        held = None
        expiries = snap.expiries(root)
        wanted = [e for e in expiries if (e == day if expiry == "0dte" else e > day)]
        if not wanted:
            table.loc[row, "status"] = f"no_{expiry}_expiry"
            continue
        expiration = wanted[0]
        try:
            combo = snap.straddle(expiration, root)
            market_iv = snap.atm_iv(expiration, root)
        except (KeyError, ValueError) as exc:
            table.loc[row, "status"] = "no_straddle"
            table.loc[row, "status_detail"] = str(exc)
            continue
        (call, _), (put, _) = combo.legs
        cq, pq = snap.quote(call), snap.quote(put)
        if cq.bid <= 0 or pq.bid <= 0:
            table.loc[row, "status"] = "one_sided_straddle"
            continue
        today_close = settlement_time(day, "PM")
        today_minutes = session_minutes(pd.DatetimeIndex([pd.Timestamp(day)])).iloc[0]
        left_today = max((today_close - snap.quote_time).total_seconds() / 60.0, 0.0)
        # NYSE sessions after today through expiry, from the calendar (not from the data, which
        # may end before the expiry)
        later = len(nyse_sessions(pd.Timestamp(day), pd.Timestamp(expiration))) - 1
        table.loc[row, list(MARKET_COLUMNS)] = [
            snap.quote_time.hour * 60 + snap.quote_time.minute,
            float(expiration.toordinal()),
            left_today / today_minutes + later,
            snap.underlying_price,
            call.strike,
            snap.tte(expiration, root),
            cq.bid,
            cq.ask,
            pq.bid,
            pq.ask,
            combo.bid,
            combo.ask,
            combo.mid,
            market_iv,
            table.loc[row, "held_strike"],
            table.loc[row, "held_call_mid"],
            table.loc[row, "held_put_mid"],
        ]
        table.loc[row, "quote_time"] = snap.quote_time
        table.loc[row, "expiration"] = pd.Timestamp(expiration)
        table.loc[row, "dte"] = float((expiration - day).days)
        table.loc[row, "settlement_price"] = closes.get(expiration, np.nan)
        table.loc[row, "status"] = "ok"
        held = (call, put)
    table["source"] = f"chain:{root}:{expiry}"
    return table


def chain_market_report(market: pd.DataFrame, symbol: str, root: str, expiry: str) -> str:
    """One line: what a :func:`chain_market_table` holds between its first and last quote date
    (sessions with a two-sided ATM straddle, the other statuses counted, the sessions without a
    snapshot listed), for a run's report.

    Parameters
    ----------
    market : pandas.DataFrame
        A :func:`chain_market_table` (its ``status`` column).
    symbol, root, expiry : str
        The table's chain symbol, option root and expiry choice (``"0dte"`` / ``"next"``), named
        in the line.

    Returns
    -------
    str
    """
    quoted = market.index[market["status"] != "no_snapshot"]
    head = f"chain market table {symbol}/{root}/{expiry}: "
    if len(quoted) == 0:
        return head + "no snapshot on any session of the underlying"
    inside = market.loc[quoted[0] : quoted[-1]]
    counts = inside["status"].value_counts()
    missing = inside.index[inside["status"] == "no_snapshot"]
    line = (
        f"{len(quoted)} quote dates {quoted[0]:%Y-%m-%d}..{quoted[-1]:%Y-%m-%d}, "
        f"{int(counts.get('ok', 0))} with a two-sided ATM straddle"
    )
    others = [f"{k}: {v}" for k, v in counts.items() if k not in ("ok", "no_snapshot")]
    if others:
        line += " (" + ", ".join(others) + ")"
    if len(missing):
        line += f"; {len(missing)} sessions without a snapshot: " + ", ".join(
            f"{d:%Y-%m-%d}" for d in missing
        )
    return head + line
