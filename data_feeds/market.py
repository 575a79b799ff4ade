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

import numpy as np
import pandas as pd

from data_feeds.calendar import MINUTES_PER_YEAR, session_minutes
from pricing import bs_price

MARKET_COLUMNS = (
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
)


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
    table.loc[~ok, [c for c in MARKET_COLUMNS if c not in ("spot", "strike", "tte")]] = np.nan
    table["vix_prev"] = vix_prev
    table["source"] = "vix_proxy"
    return table[[*MARKET_COLUMNS, "vix_prev", "source"]]
