"""Vectorized ``zero_dte_straddle`` trials: daily straddles opened and settled the same session.

The kernel :func:`straddle_values_nb` replays, session by session, what
:class:`strategies.zero_dte_straddle.ZeroDteStraddleStrategy` does on :class:`brokers.OptionsBroker`
when every straddle expires on its trade date (``market_source = "vix_proxy"``, or
``"chain"`` with ``chain_expiry = "0dte"``):

1. decide from the forecast and the market table (``model_iv = sqrt(f^2 / 252 * horizon / tte)``,
   ``iv_edge = market_iv / model_iv - 1``; sell above ``short_threshold``, buy below
   ``-long_threshold``); stand aside on a quote at or after the expiry's settlement time;
2. margin check of :meth:`brokers.OptionsBroker._check_margin` (account value after the order
   minus the requirement of :func:`brokers.margin.book_requirement`, which the glue computes once
   per session and size with the broker's own :meth:`~brokers.OptionsBroker.margin_report`):
   a refused order is no trade;
3. fill both legs at ``mid +- f * spread`` (sells floored at 0,
   :class:`brokers.costs.OptionCostModel`) with the per-contract commission;
4. cash-settle both legs at the session close (``q * max(+-(S_T - K), 0) * multiplier`` less the
   settlement fee).

The book is empty before every decision (yesterday's straddle settled at yesterday's close), so the
account value at a session's end is its cash. Overnight holds (``chain_expiry = "next"``) are not
vectorized (:class:`strategies.fast.VectorEngineUnsupported`).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numba import njit

from data_feeds.calendar import TZ
from data_feeds.chains import settlement_time
from data_feeds.contracts import OptionContract, OptionQuote
from data_feeds.market import MARKET_COLUMNS
from strategies.fast import VectorEngineUnsupported, VectorTrial, session_index

if TYPE_CHECKING:
    from strategies.zero_dte_straddle import ZeroDteStraddle, ZeroDteStraddleParams

ERR_NONE = 0
ERR_QUOTE = 1
"""Kernel error: a trade on a session whose leg quotes are not a valid two-sided quote (the
backtrader path raises there too: :class:`data_feeds.contracts.OptionQuote`)."""
ERR_NO_BID = 2
"""Kernel error: a sell of a leg whose bid is 0 (:class:`brokers.OrderRejected` on backtrader)."""
ERR_NO_ASK = 3
"""Kernel error: a buy of a leg whose ask is 0."""


@njit(cache=True, error_model="numpy")
def straddle_values_nb(
    cash0: float,
    forecast: np.ndarray,
    market_iv: np.ndarray,
    tte: np.ndarray,
    horizon: np.ndarray,
    expiry_ord: np.ndarray,
    last_ord: int,
    tradable: np.ndarray,
    strike: np.ndarray,
    call_bid: np.ndarray,
    call_ask: np.ndarray,
    put_bid: np.ndarray,
    put_ask: np.ndarray,
    settle: np.ndarray,
    req_short: np.ndarray,
    req_long: np.ndarray,
    margin_check: bool,
    short_threshold: float,
    long_threshold: float,
    allow_short: bool,
    allow_long: bool,
    contracts: int,
    slippage: float,
    commission: float,
    settlement_fee: float,
    multiplier: int,
) -> tuple[np.ndarray, int, int, int]:
    """Account value at each session's end of a same-day straddle strategy.

    Parameters
    ----------
    cash0 : float
        Starting cash (dollars).
    forecast : ndarray, shape (n,)
        Forecast vol of each session (decimal, 252-annualized, from bars before it).
    market_iv, tte, horizon, expiry_ord : ndarray, shape (n,)
        Market-table columns: ATM implied vol (decimal), time to expiry (years, ACT/365), sessions
        of variance to expiry, expiration ``date.toordinal()``.
    last_ord : int
        Ordinal of the window's last session (no trade expiring after it).
    tradable : ndarray of bool, shape (n,)
        The quote time is before the expiry's settlement time.
    strike, call_bid, call_ask, put_bid, put_ask : ndarray, shape (n,)
        Strike and leg quotes (index points).
    settle : ndarray, shape (n,)
        Settlement price of the session's expiry (its close, index points).
    req_short, req_long : ndarray, shape (n,)
        Margin requirement (dollars, equity terms) of ``contracts`` short / long straddles on an
        empty book at the session's quotes (``inf``: the margin check cannot price it).
    margin_check : bool
        The broker checks margin.
    short_threshold, long_threshold : float
        Relative IV edges of the strategy.
    allow_short, allow_long : bool
        Sides enabled.
    contracts : int
        Straddles per trade.
    slippage, commission, settlement_fee : float
        Spread fraction, dollars per contract, dollars per contract at settlement.
    multiplier : int
        Contract multiplier (100).

    Returns
    -------
    values : ndarray, shape (n,)
        Account value (dollars) at each session's end.
    trades : int
        Straddles opened.
    error : int
        ``ERR_*`` code of the first session the backtrader path would raise on (0: none).
    error_at : int
        Its position (-1: none).
    """
    n = forecast.shape[0]
    values = np.empty(n)
    cash = cash0
    trades = 0
    for i in range(n):
        f = forecast[i]
        iv = market_iv[i]
        t = tte[i]
        values[i] = cash
        if not (math.isfinite(f) and f > 0):
            continue
        if not math.isfinite(iv) or not t > 0:
            continue
        model_iv = math.sqrt(f * f / 252.0 * horizon[i] / t)
        edge = iv / model_iv - 1.0
        position = 0
        if allow_short and edge > short_threshold:
            position = -1
        elif allow_long and edge < -long_threshold:
            position = 1
        if position == 0:
            continue
        if expiry_ord[i] > last_ord:
            continue
        if not tradable[i]:
            continue
        cb, ca, pb, pa = call_bid[i], call_ask[i], put_bid[i], put_ask[i]
        ok = (
            math.isfinite(cb) and math.isfinite(ca) and math.isfinite(pb) and math.isfinite(pa)
            and cb >= 0 and pb >= 0 and cb <= ca and pb <= pa
        )
        if not ok:
            return values, trades, ERR_QUOTE, i
        q = position * contracts
        if q < 0 and (cb <= 0 or pb <= 0):
            return values, trades, ERR_NO_BID, i
        if q > 0 and (ca <= 0 or pa <= 0):
            return values, trades, ERR_NO_ASK, i
        c_mid = 0.5 * (cb + ca)
        p_mid = 0.5 * (pb + pa)
        if q > 0:
            c_px = c_mid + slippage * (ca - cb)
            p_px = p_mid + slippage * (pa - pb)
        else:
            c_px = max(c_mid - slippage * (ca - cb), 0.0)
            p_px = max(p_mid - slippage * (pa - pb), 0.0)
        comm = commission * abs(q)
        if margin_check:
            req = req_short[i] if q < 0 else req_long[i]
            cash_delta = 0.0
            cash_delta -= q * c_px * multiplier + comm
            cash_delta -= q * p_px * multiplier + comm
            mark_delta = 0.0 + (q * c_mid - 0.0) * multiplier
            mark_delta = mark_delta + (q * p_mid - 0.0) * multiplier
            value_after = cash + cash_delta + mark_delta
            excess_after = value_after - req
            if not math.isfinite(req) or (excess_after < 0 and excess_after < cash - 0.0):
                continue
        cash += -q * c_px * multiplier - comm
        cash += -q * p_px * multiplier - comm
        trades += 1
        s = settle[i]
        k = strike[i]
        fee = settlement_fee * abs(q)
        cash += q * max(s - k, 0.0) * multiplier - fee
        cash += q * max(k - s, 0.0) * multiplier - fee
        values[i] = cash
    return values, trades, ERR_NONE, -1


class ZeroDteVectorEngine:
    """Per-plugin arrays the kernel reads, built once from the prepared plugin and shared by every
    trial (the market table, the settlement closes, the margin requirement per trade size).

    Parameters
    ----------
    plugin : ZeroDteStraddle
        A prepared plugin (``market``, ``underlying``, ``broker_params``, ``fixed``).

    Raises
    ------
    VectorEngineUnsupported
        ``market_source = "chain"`` with ``chain_expiry = "next"`` (straddles held overnight).
    """

    def __init__(self, plugin: ZeroDteStraddle) -> None:
        from brokers import OptionsBroker
        from strategies.zero_dte_straddle import ZeroDteStraddleParams

        base = ZeroDteStraddleParams(**plugin.fixed)
        if base.market_source == "chain" and base.chain_expiry != "0dte":
            raise VectorEngineUnsupported(
                "zero_dte_straddle: the vectorbt engine covers straddles settled on their trade "
                f"date; chain_expiry = {base.chain_expiry!r} holds them overnight (use [optimize] "
                'engine = "backtrader")'
            )
        self.plugin = plugin
        self.base = base
        market = plugin.market
        self.market = market
        index = plugin.underlying.index
        self.index = index
        self.ordinals = np.array([d.toordinal() for d in index.date], dtype=np.int64)
        col = {c: market[c].to_numpy(dtype=float) for c in MARKET_COLUMNS}
        self.col = col
        self.expiry_ord = np.where(
            np.isfinite(col["expiration_ordinal"]), col["expiration_ordinal"], -1.0
        ).astype(np.int64)
        decidable = np.isfinite(col["market_iv"]) & (col["tte"] > 0)
        same_day = self.expiry_ord[decidable] == self.ordinals[decidable]
        if not same_day.all():
            bad = index[decidable][int(np.argmin(same_day))]
            raise VectorEngineUnsupported(
                f"zero_dte_straddle: market table row {bad:%Y-%m-%d} expires on another day; the "
                "vectorbt engine covers same-day straddles only"
            )
        self.decidable = decidable
        # quote time before the expiry's settlement (quote_after_settlement otherwise)
        tradable = np.zeros(len(index), dtype=np.bool_)
        for i in np.flatnonzero(decidable & np.isfinite(col["trade_minute"])):
            day = index[i].date()
            minute = int(col["trade_minute"][i])
            when = pd.Timestamp(dt.datetime.combine(day, dt.time(minute // 60, minute % 60)))
            tradable[i] = when.tz_localize(TZ) < settlement_time(day, "PM")
        self.tradable = tradable
        self.settle = plugin.underlying["close"].to_numpy(dtype=float)
        self._broker = OptionsBroker(**plugin.broker_params)
        costs = self._broker.costs
        self.slippage = float(costs.slippage(base.root))
        self.commission = float(costs.commission_per_contract)
        self.settlement_fee = float(costs.settlement_fee_per_contract)
        self.margin_check = bool(self._broker.p.margin_check)
        self.multiplier = int(OptionContract(base.root, dt.date(2000, 1, 3), 1.0, "C").multiplier)
        self._requirements: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def requirements(self, contracts: int) -> tuple[np.ndarray, np.ndarray]:
        """Margin requirement (dollars) of ``contracts`` short and long straddles on an empty
        book at each decidable session's quotes, by the broker's own
        :meth:`brokers.OptionsBroker.margin_report` (NaN elsewhere; ``inf`` where it raises)."""
        if contracts in self._requirements:
            return self._requirements[contracts]
        n = len(self.index)
        short, long_ = np.full(n, np.nan), np.full(n, np.nan)
        if self.margin_check:
            col, root = self.col, self.base.root
            from brokers.margin import underlying_of

            symbol = underlying_of(root)
            for i in np.flatnonzero(self.decidable & self.tradable):
                expiry = dt.date.fromordinal(int(self.expiry_ord[i]))
                k = float(col["strike"][i])
                spot = float(col["spot"][i])
                try:
                    c_mid = OptionQuote(col["call_bid"][i], col["call_ask"][i]).mid
                    p_mid = OptionQuote(col["put_bid"][i], col["put_ask"][i]).mid
                    call = OptionContract(root, expiry, k, "C")
                    put = OptionContract(root, expiry, k, "P")
                except ValueError:  # no trade can fill here (the kernel reports it)
                    short[i] = long_[i] = math.inf
                    continue
                prices = {symbol: spot} if math.isfinite(spot) else {}
                for out, q in ((short, -contracts), (long_, contracts)):
                    try:
                        rep = self._broker.margin_report(
                            prices, [(call, q, c_mid), (put, q, p_mid)]
                        )
                        out[i] = rep.requirement
                    except ValueError:
                        out[i] = math.inf
        self._requirements[contracts] = (short, long_)
        return short, long_

    def window(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, int]:
        """Positions ``[i0, i1)`` of the underlying rows inside ``[start, end]`` (the rows of the
        backtrader feed, :meth:`ZeroDteStraddle.frame`)."""
        i0 = int(self.index.searchsorted(start, side="left"))
        i1 = int(self.index.searchsorted(end, side="right"))
        if i1 <= i0:
            raise ValueError(f"zero_dte_straddle: no session between {start} and {end}")
        return i0, i1

    def run(
        self, params: ZeroDteStraddleParams, start: pd.Timestamp, end: pd.Timestamp, cash: float
    ) -> VectorTrial:
        """One in-sample trial over ``[start, end]`` with ``cash`` dollars (see the module doc).

        Raises
        ------
        KeyError
            The forecast of ``params`` was not prepared.
        ValueError
            A trade on a session the backtrader path would also fail on (invalid quote, selling
            a zero bid, buying a zero ask), naming the session.
        """
        forecast = self.plugin.forecast_series(params).to_numpy(dtype=float)
        i0, i1 = self.window(start, end)
        req_short, req_long = self.requirements(int(params.contracts))
        col = self.col
        sl = slice(i0, i1)
        values, trades, err, at = straddle_values_nb(
            float(cash),
            forecast[sl],
            col["market_iv"][sl],
            col["tte"][sl],
            col["horizon_sessions"][sl],
            self.expiry_ord[sl],
            int(self.ordinals[i1 - 1]),
            self.tradable[sl],
            col["strike"][sl],
            col["call_bid"][sl],
            col["call_ask"][sl],
            col["put_bid"][sl],
            col["put_ask"][sl],
            self.settle[sl],
            req_short[sl],
            req_long[sl],
            self.margin_check,
            float(params.short_threshold),
            float(params.long_threshold),
            bool(params.allow_short),
            bool(params.allow_long),
            int(params.contracts),
            self.slippage,
            self.commission,
            self.settlement_fee,
            self.multiplier,
        )
        if err != ERR_NONE:
            what = {ERR_QUOTE: "no valid two-sided leg quote", ERR_NO_BID: "a leg bid is 0",
                    ERR_NO_ASK: "a leg ask is 0"}[err]
            raise ValueError(
                f"zero_dte_straddle market table, row {self.index[i0 + at]:%Y-%m-%d}: {what}; "
                "the straddle cannot trade there"
            )
        return _trial(self.index[sl], values, float(cash), trades)


def _trial(index: pd.DatetimeIndex, values: np.ndarray, cash: float, trades: int) -> VectorTrial:
    """Value and returns as :func:`strategies.base.run_cerebro` reports them."""
    index = session_index(index)
    value = pd.Series(values, index=index, name="value", dtype=float)
    prev = np.concatenate([[cash], values[:-1]])
    returns = pd.Series(values / prev - 1.0, index=index, name="returns")
    return VectorTrial(returns=returns, value=value, trades=int(trades))


def engine_for(plugin: Any) -> ZeroDteVectorEngine:
    """The plugin's :class:`ZeroDteVectorEngine`, built on first use and kept on the plugin
    (rebuilt when ``prepare`` has built a new market table since)."""
    engine = getattr(plugin, "_vector_engine", None)
    if engine is None or engine.market is not plugin.market:
        engine = ZeroDteVectorEngine(plugin)
        plugin._vector_engine = engine
    return engine
