"""``zero_dte_straddle``: the 0DTE SPX ATM straddle priced from a realized-volatility forecast.

From our design documents ``003`` ("0DTE ATM straddle model": Rogers-Satchell forecast, model vs
market IV and straddle, four outcomes) and ``000`` ("vol dislocation": short vol when the market's
implied vol exceeds the forecast by a threshold, long below). Each session ``t``:

1. forecast the session's volatility from bars strictly before ``t`` (a rolling estimator over
   ``window`` sessions ending at ``t-1``, or a HAR-RV one-day-ahead forecast fitted on data up to
   ``t-1``), annualized on 252 sessions;
2. turn it into a model ATM implied vol on the ACT/365 clock to the close,
   ``model_iv = sqrt(forecast_vol^2 / 252 / tte)``, and a Black-Scholes model straddle at the open;
3. compare with the market ATM IV and straddle (from the market table) and classify the day into the
   four quadrants (model IV above/below market IV x model straddle above/below market straddle);
4. ``iv_edge = market_iv / model_iv - 1``: sell the straddle at the open if ``iv_edge >
   short_threshold``, buy it if ``iv_edge < -long_threshold``; hold to PM cash settlement at the
   close; fills at bid/ask through :class:`brokers.OptionsBroker` (slippage fraction, commission).

The design document's sketch takes a log of the volatility (``np.log(np.sqrt(var)*sqrt(252)*100)``);
that is not a volatility and is not used here (``docs/zero_dte_straddle.md``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar, Literal

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from brokers import MarginError, OptionsBroker, quotes_snapshot, underlying_of
from data_feeds import (
    MARKET_COLUMNS,
    OptionContract,
    OptionQuote,
    align_to_index,
    chain_market_table,
    ohlc_feed,
    vix_proxy_market_table,
)
from data_feeds.calendar import TZ
from data_feeds.chains import settlement_time
from data_feeds.market import chain_market_report
from indicators import DAILY_ESTIMATORS, Estimator, RealizedVol, har_forecast
from pricing.black_scholes import straddle_price_nb
from strategies.base import BacktestResult, StrategyParams, StrategyPlugin, run_cerebro
from strategies.book import TradeBook
from strategies.evaluation import error_stats, outcome_table
from strategies.params import Contracts

QUADRANTS = {
    (True, True): "model_iv_above_model_straddle_above",
    (True, False): "model_iv_above_model_straddle_below",
    (False, True): "model_iv_below_model_straddle_above",
    (False, False): "model_iv_below_model_straddle_below",
}
"""Quadrant labels keyed by (model IV > market IV, model straddle > market straddle)."""

MARKET_LINES = MARKET_COLUMNS
"""Market-table columns fed to the strategy as lines."""


@lru_cache(maxsize=16384)
def _session_close(day: dt.date) -> pd.Timestamp:
    """PM settlement time of ``day`` (the NYSE close: 16:00, 13:00 on half days), cached: it is
    asked on every bar of every trial."""
    return settlement_time(day, "PM")


class ZeroDteStraddleParams(StrategyParams):
    """Parameters of ``zero_dte_straddle``.

    Attributes
    ----------
    rv_estimator : indicators.Estimator
        Realized-vol estimator of the forecast (``rogers_satchell`` default, per design doc 003;
        formerly ``estimator``).
    window : int
        Rolling window in sessions (``forecast = "rolling"``).
    forecast : {"rolling", "har"}
        ``rolling``: the estimator over ``window`` sessions ending at ``t-1``. ``har``: Corsi (2009)
        HAR-RV forecast of session ``t`` on the estimator's per-day vol, refitted daily on the
        ``har_fit_window`` sessions before ``t`` (``window`` unused; not available for yang_zhang,
        which has no one-day form).
    har_fit_window : int
        Sessions in the HAR rolling OLS fit.
    short_threshold, long_threshold : float
        Relative IV edge (``market_iv / model_iv - 1``) above which to sell / below minus which to
        buy the straddle (0.10 = market IV 10% above the model).
    allow_short, allow_long : bool
        Enable each side.
    contracts : int
        Straddles per trade (each leg ``contracts`` contracts of 100).
    rate, div_yield : float
        Continuous rate and dividend yield (decimal) used in the model straddle.
    strike_increment : float
        ATM strike grid (index points).
    market_source : {"vix_proxy", "chain"}
        Where the market straddle comes from: ``vix_proxy`` (the 0DTE straddle at the open, proxied
        from the previous VIX close, :func:`data_feeds.vix_proxy_market_table`) or ``chain`` (real
        SPXW quotes from the chain store at the snapshot time,
        :func:`data_feeds.chain_market_table`; needs ``[data.chains]``).
    chain_expiry : {"0dte", "next"}
        With ``market_source = "chain"``: trade the straddle expiring on the quote date, or the one
        on the first later expiration (held overnight, marked at the next snapshot's mids).
    chain_symbol : str
        Underlying symbol of the chain snapshots (``SPX``).
    proxy_spread_fraction, proxy_min_leg_spread : float
        Leg bid-ask spread of the VIX proxy: ``max(fraction * mid, min)`` (index points).
    root : str
        Option root traded (``SPXW``: PM-settled on the close).

    Searchable (:attr:`tunable`): the forecast and the trade rules. The market-table parameters
    (``rate``, ``div_yield``, ``strike_increment``, the proxy's spread, ``market_source``,
    ``chain_expiry``, ``chain_symbol``, ``root``, ``har_fit_window``) are fixed when
    :meth:`ZeroDteStraddle.prepare` builds the market table and forecasts.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "rv_estimator",
            "window",
            "forecast",
            "short_threshold",
            "long_threshold",
            "allow_short",
            "allow_long",
            "contracts",
        }
    )

    rv_estimator: Estimator = "rogers_satchell"
    window: int = Field(21, ge=2, le=252)
    forecast: Literal["rolling", "har"] = "rolling"
    har_fit_window: int = Field(1000, ge=100, le=5000)
    short_threshold: float = Field(0.10, ge=0.0, le=5.0)
    long_threshold: float = Field(0.10, ge=0.0, le=5.0)
    allow_short: bool = True
    allow_long: bool = True
    contracts: Contracts = 1
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    div_yield: float = Field(0.0, ge=0.0, le=0.2)
    strike_increment: float = Field(5.0, gt=0.0)
    market_source: Literal["vix_proxy", "chain"] = "vix_proxy"
    chain_expiry: Literal["0dte", "next"] = "0dte"
    chain_symbol: str = "SPX"
    proxy_spread_fraction: float = Field(0.03, ge=0.0, le=1.0)
    proxy_min_leg_spread: float = Field(0.10, ge=0.0)
    root: Literal["SPXW"] = "SPXW"

    @model_validator(mode="after")
    def _har_needs_one_day_estimator(self) -> ZeroDteStraddleParams:
        if self.forecast == "har" and self.rv_estimator not in DAILY_ESTIMATORS:
            raise ValueError(
                f"forecast='har' needs a one-day rv_estimator ({', '.join(DAILY_ESTIMATORS)}); "
                f"{self.rv_estimator} has none"
            )
        return self


class ZeroDteStraddleStrategy(bt.Strategy):
    """backtrader face of the strategy: reads forecast and market lines, trades through the broker.

    Data lines used (one bar per session): ``forecast_vol`` (decimal, 252-annualized, from bars
    before this session) and the market-table lines (:data:`MARKET_LINES`: the spot and the
    straddle quotes at ``trade_minute``). Nothing from the bar's open, high, low or close enters a
    decision. The broker needs a settlement source for the underlying (``SPX``): the plugin's
    :meth:`ZeroDteStraddle.backtest` registers the underlying's daily open/close.

    Each bar: (1) mark legs carried from an earlier day at today's mids (``held_*_mid``); (2) decide
    and trade the straddle at the market table's quotes, wrapped as a one-row-per-leg snapshot
    (:func:`brokers.quotes_snapshot`) through :meth:`OptionsBroker.execute_snapshot`, with its
    rules (zero bids, margin: a short straddle the account cannot margin is logged as
    ``margin_rejected``); (3) :meth:`OptionsBroker.settle_due` at the session close from the NYSE
    calendar (13:00 on half days): legs expiring today settle at the day's close. A trade whose
    expiration is after ``last_day_ordinal`` (the end of the backtest window) is not opened, so no
    position outlives the window.

    Parameters (backtrader ``params``): ``rules`` (:class:`ZeroDteStraddleParams`, the trial's
    parameters; default the model's defaults), ``market_source`` (label logged on every row)
    and ``last_day_ordinal`` (proleptic ordinal of the window's last session, or None).
    """

    params = (("rules", None), ("market_source", "vix_proxy"), ("last_day_ordinal", None))

    def start(self) -> None:
        self.rules: ZeroDteStraddleParams = self.p.rules or ZeroDteStraddleParams()
        self.log_rows: list[dict[str, Any]] = []
        self.open_trades: dict[dt.date, dict[str, Any]] = {}  # expiration -> its log row
        self._settled_seen = len(self.broker.option_settlements)
        self.book = TradeBook()  # one trade per straddle (tag "open <expiration>")

    def next(self) -> None:
        d = self.data
        day = d.datetime.date(0)
        self._mark_held(d)
        row: dict[str, Any] = {"date": day, "market_source": self.p.market_source}
        self.log_rows.append(row)
        self._decide(d, day, row)
        self._settle(day)

    def _mark_held(self, d: Any) -> None:
        """Re-mark carried legs (the previous row's straddle, still alive) at today's mids."""
        held_strike = d.held_strike[0]
        if not math.isfinite(held_strike):
            return
        today = d.datetime.date(0)
        mids = {"C": d.held_call_mid[0], "P": d.held_put_mid[0]}
        marks = {
            c: mids[c.right]
            for c in self.broker.option_positions
            if c.expiration > today and c.strike == held_strike and math.isfinite(mids[c.right])
        }
        if marks:
            self.broker.mark_options(marks)

    def _decide(self, d: Any, day: dt.date, row: dict[str, Any]) -> None:
        forecast_vol = d.forecast_vol[0]
        market_iv = d.market_iv[0]
        tte = d.tte[0]
        row.update(forecast_vol=forecast_vol, market_iv=market_iv, tte=tte)
        if not math.isfinite(forecast_vol) or forecast_vol <= 0:
            row["status"] = "no_forecast"
            return
        if not math.isfinite(market_iv) or not tte > 0:
            row["status"] = "no_market"
            return
        spot, strike = d.spot[0], d.strike[0]
        horizon = d.horizon_sessions[0]
        expiry = dt.date.fromordinal(int(d.expiration_ordinal[0]))
        model_iv = math.sqrt(forecast_vol**2 / 252.0 * horizon / tte)
        model_straddle = float(
            straddle_price_nb(spot, strike, tte, self.rules.rate, self.rules.div_yield, model_iv)
        )
        market_straddle = d.straddle_mid[0]
        iv_edge = market_iv / model_iv - 1.0
        quadrant = QUADRANTS[(model_iv > market_iv, model_straddle > market_straddle)]
        position = 0
        if self.rules.allow_short and iv_edge > self.rules.short_threshold:
            position = -1
        elif self.rules.allow_long and iv_edge < -self.rules.long_threshold:
            position = 1
        row.update(
            expiration=expiry,
            horizon_sessions=horizon,
            spot=spot,
            strike=strike,
            model_iv=model_iv,
            iv_edge=iv_edge,
            model_straddle=model_straddle,
            market_straddle=market_straddle,
            straddle_bid=d.straddle_bid[0],
            straddle_ask=d.straddle_ask[0],
            quadrant=quadrant,
            position=position,
        )
        if position == 0:
            row["status"] = "stand_aside"
            return
        last = self.p.last_day_ordinal
        if last is not None and expiry.toordinal() > last:
            row["status"] = "expires_after_window"
            return
        if expiry in self.open_trades:
            row["status"] = "already_holding_expiry"
            return
        minute = int(d.trade_minute[0])
        trade_time = dt.datetime.combine(day, dt.time(minute // 60, minute % 60))
        if pd.Timestamp(trade_time).tz_localize(TZ) >= _session_close(expiry):
            row["status"] = "quote_after_settlement"  # e.g. a 15:45 quote on a 13:00 half day
            return
        call = OptionContract(self.rules.root, expiry, strike, "C")
        put = OptionContract(self.rules.root, expiry, strike, "P")
        # the market table's straddle legs, one row per leg, through the broker's one order path
        snapshot = quotes_snapshot(
            underlying_of(self.rules.root),
            trade_time,
            spot,
            {
                call: OptionQuote(d.call_bid[0], d.call_ask[0]),
                put: OptionQuote(d.put_bid[0], d.put_ask[0]),
            },
            source=self.p.market_source,
        )
        tag = f"open {expiry:%Y-%m-%d}"  # one straddle per expiration (already_holding_expiry)
        try:
            fills = self.broker.execute_snapshot(
                [(call, 1), (put, 1)], position * self.rules.contracts, snapshot, tag=tag
            )
        except MarginError as exc:  # the account cannot carry the short straddle: no trade
            row.update(status="margin_rejected", reason=exc.reason)
            return
        row.update(
            status="open",
            entry_price=sum(f.price for f in fills),
            commissions=sum(f.commission for f in fills),
        )
        self.open_trades[expiry] = row

    def _settle(self, day: dt.date) -> None:
        """Settle what is due by this session's close (the broker's one settlement path: SPXW PM
        legs at the NYSE close, 13:00 on half days, at the settlement source's close) and book
        every settlement record not seen yet on the log row of the trade with that expiration
        (a live broker may settle legs on its own clock: the records, not the return value,
        are read). ``net_pnl`` is the straddle's trade in :attr:`book`
        (:class:`strategies.book.TradeBook`: its fills, tagged ``"open <expiration>"``, and the
        settlements of its legs; one straddle per expiration -- a second one is refused,
        ``already_holding_expiry`` -- so each tag is one trade at a time)."""
        self.broker.settle_due(_session_close(day), advance=True)
        records = self.broker.option_settlements
        new, self._settled_seen = records[self._settled_seen :], len(records)
        by_expiry: dict[dt.date, list[Any]] = {}
        for record in new:
            by_expiry.setdefault(record.contract.expiration, []).append(record)
        self.book.sync(self.broker)
        for expiry, settled in sorted(by_expiry.items()):
            row = self.open_trades.pop(expiry, None)
            if row is None:
                continue
            trade = self.book.current(f"open {expiry:%Y-%m-%d}")
            if trade is None:  # fills not recorded (cannot happen with OptionsBroker records)
                raise RuntimeError(f"zero_dte_straddle: no trade booked for expiry {expiry}")
            price = settled[0].underlying_price
            commissions = trade.commission  # opening commissions + settlement fees
            cash = trade.net_pnl(self.broker)  # its cash once both legs settled
            self.book.note(trade.trade_id, "settled", expiration=expiry)
            row.update(
                status="traded",
                settlement_date=expiry,
                settlement_time=settled[0].time,
                settlement_price=price,
                settlement_value=abs(price - row["strike"]),
                commissions=commissions,
                net_pnl=cash,
                gross_pnl=cash + commissions,
            )


def forecast_grid(
    underlying: pd.DataFrame,
    *,
    estimators: Sequence[str],
    windows: Sequence[int],
    forecasts: Collection[str],
    har_fit_window: int,
) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, np.ndarray]]:
    """Every forecast vol a search grid can ask for, each value for session t from bars up to
    t-1 only (decimal, 252-annualized).

    Parameters
    ----------
    underlying : pandas.DataFrame
        Daily OHLC (index points), one row per session.
    estimators : sequence of str
        Realized-variance estimators (:data:`indicators.Estimator`).
    windows : sequence of int
        Rolling windows, sessions.
    forecasts : collection of {"rolling", "har"}
        Forecast kinds searched.
    har_fit_window : int
        Sessions of the HAR regression (:func:`indicators.har.har_forecast`).

    Returns
    -------
    rolling : dict
        ``(estimator, window)`` -> array over the sessions: the rolling realized vol
        (:class:`indicators.RealizedVol`, one broadcast call per estimator over every window)
        shifted one session.
    har : dict
        ``estimator`` -> array: the HAR forecast (Corsi 2009, eqs. 8-9; ``yang_zhang`` has no
        one-day variance and is left out).
    """
    rolling: dict[tuple[str, int], np.ndarray] = {}
    har: dict[str, np.ndarray] = {}
    o, h, lo, c = (underlying[k] for k in ("open", "high", "low", "close"))
    if "rolling" in forecasts:
        for est in estimators:
            rv = RealizedVol.run(o, h, lo, c, window=list(windows), estimator=est).vol
            rv = rv.to_frame() if isinstance(rv, pd.Series) else rv
            for j, w in enumerate(windows):
                col = rv.iloc[:, j].to_numpy(dtype=float)
                rolling[(est, w)] = np.concatenate([[np.nan], col[:-1]])  # t uses <= t-1
    if "har" in forecasts:
        for est in estimators:
            if est != "yang_zhang":
                har[est] = har_forecast(
                    underlying, estimator=est, fit_window=har_fit_window
                ).to_numpy(float)
    return rolling, har


class ZeroDteStraddle(StrategyPlugin):
    """Plugin wiring :class:`ZeroDteStraddleStrategy` to data, indicators and the options broker.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]`` (validated by the runner).
    broker : mapping
        :class:`brokers.OptionsBroker` params (commission_per_contract, slippage_spread_fraction).
    costs, risk : optional
        The config's ``[costs]`` / ``[risk]`` (:class:`strategies.base.StrategyPlugin`); this
        strategy enforces no ``[risk]`` limit.
    """

    name = "zero_dte_straddle"
    description = "0DTE SPX ATM straddle: realized-vol forecast vs market IV, held to the close"
    Params = ZeroDteStraddleParams
    required_data = ("underlying", "vix")
    """Data needed with the default ``market_source = "vix_proxy"``; ``chain`` needs
    ``("underlying", "chains")`` (see :meth:`data_needed`)."""
    quote_table = "market"

    def data_needed(self) -> tuple[str, ...]:
        """``[data]`` entries this configuration needs (depends on ``market_source``)."""
        if self.fixed.get("market_source", "vix_proxy") == "chain":
            return ("underlying", "chains")
        return self.required_data

    def prepare(self, data: Mapping[str, pd.DataFrame], grid: Mapping[str, Sequence[Any]]) -> None:
        """Align VIX, build the market table and every forecast the search space can ask for.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated OHLC) and ``vix`` (validated frame with ``close``) for the
            VIX proxy; ``underlying`` and ``chains`` (a :class:`data_feeds.chain_store.ChainStore`
            or any snapshot source) for real chain quotes.
        grid : mapping
            Searched parameter -> candidate values (``rv_estimator``, ``window``, ``forecast``,
            ...).

        Raises
        ------
        ValueError
            A market-table parameter is in the search space (it is fixed at load time).
        """
        self.check_search_space(grid)
        base = ZeroDteStraddleParams(**self.fixed)
        self.underlying = data["underlying"]
        if base.market_source == "chain":
            self.market = chain_market_table(
                data["chains"],
                self.underlying,
                symbol=base.chain_symbol,
                root=base.root,
                expiry=base.chain_expiry,
                rate=base.rate,
            )
            self.reports.append(
                chain_market_report(self.market, base.chain_symbol, base.root, base.chain_expiry)
            )
        else:
            vix, report = align_to_index(
                data["vix"]["close"], self.underlying.index, max_fill=1, name="vix"
            )
            self.reports.append(report.summary())
            self.market = vix_proxy_market_table(
                self.underlying,
                vix,
                rate=base.rate,
                div_yield=base.div_yield,
                strike_increment=base.strike_increment,
                spread_fraction=base.proxy_spread_fraction,
                min_leg_spread=base.proxy_min_leg_spread,
            )
        self._rolling, self._har = forecast_grid(
            self.underlying,
            estimators=list(grid.get("rv_estimator", [base.rv_estimator])),
            windows=sorted({int(w) for w in grid.get("window", [base.window])}),
            forecasts=set(grid.get("forecast", [base.forecast])),
            har_fit_window=base.har_fit_window,
        )

    def forecast_series(self, params: ZeroDteStraddleParams) -> pd.Series:
        """The forecast vol (decimal, 252-annualized) for each session, from bars before it."""
        if params.forecast == "har":
            values = self._har.get(params.rv_estimator)
        else:
            values = self._rolling.get((params.rv_estimator, params.window))
        if values is None:
            raise KeyError(
                f"forecast for {params.rv_estimator}/{params.forecast}/{params.window} was "
                "not prepared: is it inside the search space?"
            )
        return pd.Series(values, index=self.underlying.index, name="forecast_vol")

    def check_vector_engine(self) -> None:
        """The vectorbt engine covers same-day straddles (VIX proxy, chain ``0dte``), see
        :mod:`strategies.fast.zero_dte`; raises ``VectorEngineUnsupported`` otherwise."""
        from strategies.fast.zero_dte import engine_for

        engine_for(self)

    def vector_backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> Any:
        """:meth:`backtest`'s daily returns from the numba kernel
        (:class:`strategies.fast.zero_dte.ZeroDteVectorEngine`)."""
        from strategies.fast.zero_dte import engine_for

        assert isinstance(params, ZeroDteStraddleParams)
        return engine_for(self).run(params, start, end, cash)

    def market_label(self) -> str:
        """Where the market straddle comes from (``vix_proxy`` or ``chain:<root>:<expiry>``)."""
        return str(self.market["source"].iloc[0])

    def trading_days(self) -> pd.DatetimeIndex:
        """Sessions with a market straddle (previous VIX known)."""
        return self.market.index[np.isfinite(self.market["market_iv"].to_numpy())]

    def frame(
        self, params: ZeroDteStraddleParams, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """The feed frame: OHLC + ``forecast_vol`` + market lines over ``[start, end]``."""
        frame = self.underlying[["open", "high", "low", "close"]].copy()
        frame["forecast_vol"] = self.forecast_series(params)
        for col in MARKET_LINES:
            frame[col] = self.market[col]
        return frame.loc[start:end]

    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """One Cerebro over ``[start, end]`` with :class:`brokers.OptionsBroker`."""
        assert isinstance(params, ZeroDteStraddleParams)
        feed = ohlc_feed(self.frame(params, start, end), extra=("forecast_vol", *MARKET_LINES))
        broker = OptionsBroker(**self.broker_params)
        # settlement source of the SPXW legs: the underlying's daily open/close (PM legs settle
        # at the close; read only by settle_due once a leg's settlement time has come)
        broker.set_settlement_prices(self.underlying[["open", "close"]], underlying_of(params.root))
        kwargs = {
            "rules": params,
            "market_source": self.market_label(),
            "last_day_ordinal": self.underlying.loc[start:end].index[-1].date().toordinal(),
        }
        strat, value, returns = run_cerebro(
            ZeroDteStraddleStrategy, [feed], broker, cash=cash, strategy_kwargs=kwargs
        )
        info = {
            "market_source": self.market_label(),
            "closed_trades": strat.book.closed_trades(strat.broker),
        }
        return BacktestResult.of(strat, value, returns, info)

    def data_fingerprint(self) -> str:
        """Hash of the underlying and the market table."""
        return self.fingerprint_with(self.market[list(MARKET_LINES)], side_by_side=True)

    # -- model evaluation (design doc 003: forecast vs realized, outcomes per quadrant) ----------
    def model_evaluation(self, daily_log: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Forecast errors by estimator and outcomes per quadrant over the out-of-sample log.

        Parameters
        ----------
        daily_log : pandas.DataFrame
            Stitched out-of-sample daily log of this plugin (columns of
            ``docs/zero_dte_straddle.md``; ``date`` and ``expiration`` as dates or ISO strings).

        Returns
        -------
        dict[str, pandas.DataFrame]
            ``forecast_errors`` (:meth:`forecast_errors`) and ``quadrant_outcomes``
            (:meth:`quadrant_outcomes`).
        """
        return {
            "forecast_errors": self.forecast_errors(daily_log),
            "quadrant_outcomes": self.quadrant_outcomes(daily_log),
        }

    def quadrant_outcomes(self, daily_log: pd.DataFrame) -> pd.DataFrame:
        """Days, trades, hit rate and net P&L (dollars) per quadrant of :data:`QUADRANTS`.

        A day belongs to the quadrant logged for it (days without a decision: ``"(none)"``); a
        trade is a row with a finite ``net_pnl`` (booked on its entry row). See
        :func:`strategies.evaluation.outcome_table`.
        """
        missing = pd.Series(np.nan, index=daily_log.index)
        quadrant = daily_log.get("quadrant", missing)
        pnl = daily_log.get("net_pnl", missing)
        return outcome_table(quadrant, pnl, name="quadrant", order=list(QUADRANTS.values()))

    def forecast_errors(self, daily_log: pd.DataFrame) -> pd.DataFrame:
        """Model straddle vs settled straddle, and model IV vs realized vol, per forecast.

        For every out-of-sample day with a decision (finite ``spot``, ``strike``, ``tte``,
        ``horizon_sessions``) whose expiry close is in the underlying data, the settled straddle
        is ``|close_T - K|`` (index points) and the realized vol on the option's clock is
        ``|ln(close_T / spot)| / (sqrt(2 / pi) sqrt(tte))`` (decimal; the mean-absolute-deviation
        estimator of sigma: ``E|X| = sigma sqrt(tte) sqrt(2/pi)`` for ``X ~ N(0, sigma^2 tte)``).
        Each model prices the day as the strategy does: ``model_iv = sqrt(f^2 / 252 * horizon /
        tte)`` from forecast ``f``, Black-Scholes straddle at ``spot``, ``strike``, ``tte`` and the
        fixed ``rate`` / ``div_yield`` (:func:`pricing.black_scholes.straddle_price_nb`).

        Rows:

        * ``selected``: the forecast each day actually used (the log's ``model_straddle`` and
          ``model_iv``: the fold's best parameters);
        * ``<estimator> rolling``, for every prepared estimator: the estimator over the rolling
          window the selected forecast used that day (identified by matching the logged
          ``forecast_vol`` to the prepared forecasts); on days the selection was a HAR forecast,
          the fixed ``window`` parameter (column ``windows`` lists the windows used);
        * ``<estimator> har``, for every prepared HAR forecast;
        * ``market``: the market straddle mid and market IV, the benchmark a model must beat.

        Returns
        -------
        pandas.DataFrame
            Columns ``model, estimator, forecast, windows, n_days, n_unsettled, n, mae_usd,
            rmse_usd, bias_usd, mae_vol_pts, rmse_vol_pts, bias_vol_pts``: ``n_days`` decided
            and settled days (``n_unsettled``: decided days whose expiry close is not in the
            data, left out), ``n`` of them with a forecast; errors of ``model - realized`` per
            straddle of one contract per leg (x multiplier 100: dollars) and in vol points
            (x100 decimal vol); bias > 0: the model is too rich.
            :func:`strategies.evaluation.error_stats`.

        Raises
        ------
        ValueError
            A log date is not a session of the underlying data.
        """
        cols = ["spot", "strike", "tte", "horizon_sessions"]
        cols_out = [
            "model", "estimator", "forecast", "windows", "n_days", "n_unsettled", "n",
            "mae_usd", "rmse_usd", "bias_usd", "mae_vol_pts", "rmse_vol_pts", "bias_vol_pts",
        ]
        if daily_log.empty or not set(cols) <= set(daily_log):
            return pd.DataFrame(columns=cols_out)
        log = daily_log.reset_index(drop=True)
        num = {c: pd.to_numeric(log[c], errors="raise").to_numpy(float) for c in cols}
        index = self.underlying.index
        naive = (index.tz_localize(None) if index.tz is not None else index).normalize()
        pos = naive.get_indexer(pd.to_datetime(log["date"]).dt.normalize())
        if (pos < 0).any():
            bad = log["date"].iloc[int(np.argmax(pos < 0))]
            raise ValueError(f"daily_log date {bad} is not a session of the underlying data")
        expiry = pd.to_datetime(log.get("expiration", log["date"])).dt.normalize()
        exp_pos = np.full(len(log), -1)
        has_expiry = expiry.notna().to_numpy()
        exp_pos[has_expiry] = naive.get_indexer(expiry[has_expiry])
        close = self.underlying["close"].to_numpy(float)
        settle = np.where(exp_pos >= 0, close[np.maximum(exp_pos, 0)], np.nan)
        decided = np.all([np.isfinite(num[c]) for c in cols], axis=0) & (num["tte"] > 0)
        use = decided & np.isfinite(settle)
        unsettled = int((decided & ~use).sum())
        spot, strike, tte, horizon = (num[c][use] for c in cols)
        pos, settle = pos[use], settle[use]
        paid = np.abs(settle - strike)
        realized_vol = np.abs(np.log(settle / spot)) / (math.sqrt(2.0 / math.pi) * np.sqrt(tte))
        base = ZeroDteStraddleParams(**self.fixed)
        mult = float(OptionContract(base.root, dt.date(2000, 1, 1), 1.0, "C").multiplier)

        def straddles(forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            iv = np.sqrt(forecast**2 / 252.0 * horizon / tte)
            px = np.array(
                [
                    straddle_price_nb(s, k, t, base.rate, base.div_yield, v)
                    if math.isfinite(v) and v > 0
                    else np.nan
                    for s, k, t, v in zip(spot, strike, tte, iv, strict=True)
                ]
            )
            return px, iv

        def row(model: str, est: str, kind: str, windows: str, px: np.ndarray, iv: np.ndarray):
            usd = error_stats(px * mult, paid * mult)
            pts = error_stats(iv * 100.0, realized_vol * 100.0)
            return {
                "model": model, "estimator": est, "forecast": kind, "windows": windows,
                "n_days": int(use.sum()), "n_unsettled": unsettled, "n": usd["n"],
                "mae_usd": usd["mae"], "rmse_usd": usd["rmse"], "bias_usd": usd["bias"],
                "mae_vol_pts": pts["mae"], "rmse_vol_pts": pts["rmse"], "bias_vol_pts": pts["bias"],
            }

        def logged(c: str) -> np.ndarray:
            if c not in log:
                return np.full(int(use.sum()), np.nan)
            return pd.to_numeric(log[c], errors="raise").to_numpy(float)[use]

        rows = [
            row("selected", "", "", "", logged("model_straddle"), logged("model_iv")),
        ]
        # The selected rolling window of each day: the prepared forecast equal to the logged one.
        chosen = logged("forecast_vol")
        window = np.full(len(pos), float(base.window))
        for (_, w), values in sorted(self._rolling.items()):
            window[np.isclose(values[pos], chosen, rtol=1e-12, atol=0.0)] = w
        estimators = list(dict.fromkeys([e for e, _ in self._rolling] + list(self._har)))
        for est in estimators:
            if any(e == est for e, _ in self._rolling):
                f = np.array(
                    [
                        self._rolling[(est, int(w))][p] if (est, int(w)) in self._rolling
                        else np.nan
                        for w, p in zip(window, pos, strict=True)
                    ]
                )
                used = ", ".join(str(int(w)) for w in np.unique(window[np.isfinite(f)]))
                rows.append(row(f"{est} rolling", est, "rolling", used, *straddles(f)))
            if est in self._har:
                rows.append(row(f"{est} har", est, "har", "", *straddles(self._har[est][pos])))
        rows.append(row("market", "", "", "", logged("market_straddle"), logged("market_iv")))
        return pd.DataFrame(rows, columns=cols_out)
