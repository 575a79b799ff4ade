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
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from brokers import OptionsBroker
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
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from data_feeds.ohlc import fingerprint
from indicators import RealizedVol, har_forecast
from pricing.black_scholes import straddle_price_nb
from strategies.base import BacktestResult, StrategyParams, StrategyPlugin, run_cerebro

Estimator = Literal["close_to_close", "parkinson", "garman_klass", "rogers_satchell", "yang_zhang"]

QUADRANTS = {
    (True, True): "model_iv_above_model_straddle_above",
    (True, False): "model_iv_above_model_straddle_below",
    (False, True): "model_iv_below_model_straddle_above",
    (False, False): "model_iv_below_model_straddle_below",
}
"""Quadrant labels keyed by (model IV > market IV, model straddle > market straddle)."""

MARKET_LINES = MARKET_COLUMNS
"""Market-table columns fed to the strategy as lines."""


class ZeroDteStraddleParams(StrategyParams):
    """Parameters of ``zero_dte_straddle``.

    Attributes
    ----------
    estimator : str
        Realized-vol estimator of the forecast (``rogers_satchell`` default, per design doc 003).
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
    """

    estimator: Estimator = "rogers_satchell"
    window: int = Field(21, ge=2, le=252)
    forecast: Literal["rolling", "har"] = "rolling"
    har_fit_window: int = Field(1000, ge=100, le=5000)
    short_threshold: float = Field(0.10, ge=0.0, le=5.0)
    long_threshold: float = Field(0.10, ge=0.0, le=5.0)
    allow_short: bool = True
    allow_long: bool = True
    contracts: int = Field(1, ge=1, le=1000)
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
        if self.forecast == "har" and self.estimator == "yang_zhang":
            raise ValueError("forecast='har' needs a one-day estimator; yang_zhang has none")
        return self


class ZeroDteStraddleStrategy(bt.Strategy):
    """backtrader face of the strategy: reads forecast and market lines, trades through the broker.

    Data lines used (one bar per session): ``forecast_vol`` (decimal, 252-annualized, from bars
    before this session), the market-table lines (:data:`MARKET_LINES`: the spot and the straddle
    quotes at ``trade_minute``) and ``close`` (the PM settlement value, read only to settle legs
    expiring today after the day's decision). Nothing from the bar's open, high, low or close enters
    a decision.

    Each bar: (1) mark legs carried from an earlier day at today's mids (``held_*_mid``); (2) decide
    and trade the straddle at the market table's quotes; (3) PM-settle every leg expiring today at
    the close. A trade whose expiration is after ``last_day_ordinal`` (the end of the backtest
    window) is not opened, so no position outlives the window.
    """

    params = (
        ("short_threshold", 0.10),
        ("long_threshold", 0.10),
        ("allow_short", True),
        ("allow_long", True),
        ("contracts", 1),
        ("rate", 0.0),
        ("div_yield", 0.0),
        ("root", "SPXW"),
        ("market_source", "vix_proxy"),
        ("last_day_ordinal", None),
    )

    def start(self) -> None:
        self.log_rows: list[dict[str, Any]] = []
        self.open_trades: dict[dt.date, dict[str, Any]] = {}  # expiration -> its log row

    def next(self) -> None:
        d = self.data
        day = d.datetime.date(0)
        self._mark_held(d)
        row: dict[str, Any] = {"date": day, "market_source": self.p.market_source}
        self.log_rows.append(row)
        self._decide(d, day, row)
        self._settle_today(d, day)

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
            straddle_price_nb(spot, strike, tte, self.p.rate, self.p.div_yield, model_iv)
        )
        market_straddle = d.straddle_mid[0]
        iv_edge = market_iv / model_iv - 1.0
        quadrant = QUADRANTS[(model_iv > market_iv, model_straddle > market_straddle)]
        position = 0
        if self.p.allow_short and iv_edge > self.p.short_threshold:
            position = -1
        elif self.p.allow_long and iv_edge < -self.p.long_threshold:
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
        call = OptionContract(self.p.root, expiry, strike, "C")
        put = OptionContract(self.p.root, expiry, strike, "P")
        quotes = {
            call: OptionQuote(d.call_bid[0], d.call_ask[0]),
            put: OptionQuote(d.put_bid[0], d.put_ask[0]),
        }
        qty = position * self.p.contracts
        minute = int(d.trade_minute[0])
        trade_time = dt.datetime.combine(day, dt.time(minute // 60, minute % 60))
        fills = self.broker.execute_combo([(call, qty), (put, qty)], quotes, trade_time, tag="open")
        row.update(
            status="open",
            entry_price=sum(f.price for f in fills),
            commissions=sum(f.commission for f in fills),
            cash_open=sum(f.cash_flow for f in fills),
        )
        self.open_trades[expiry] = row

    def _settle_today(self, d: Any, day: dt.date) -> None:
        row = self.open_trades.pop(day, None)
        if row is None:
            return
        settlement = d.close[0]  # SPXW PM settlement: the official close of expiry day
        settled = self.broker.settle_expiring(
            day, settlement, dt.datetime.combine(day, dt.time(16, 0))
        )
        commissions = row["commissions"] + sum(s.fee for s in settled)
        cash = row.pop("cash_open") + sum(s.cash_flow for s in settled)
        row.update(
            status="traded",
            settlement_date=day,
            settlement_price=settlement,
            settlement_value=abs(settlement - row["strike"]),
            commissions=commissions,
            net_pnl=cash,
            gross_pnl=cash + commissions,
        )


class ZeroDteStraddle(StrategyPlugin):
    """Plugin wiring :class:`ZeroDteStraddleStrategy` to data, indicators and the options broker.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]`` (validated by the runner).
    broker : mapping
        :class:`brokers.OptionsBroker` params (commission_per_contract, slippage_spread_fraction).
    """

    name = "zero_dte_straddle"
    description = "0DTE SPX ATM straddle: realized-vol forecast vs market IV, held to the close"
    Params = ZeroDteStraddleParams
    required_data = ("underlying", "vix")
    """Data needed with the default ``market_source = "vix_proxy"``; ``chain`` needs
    ``("underlying", "chains")`` (see :meth:`data_needed`)."""

    def __init__(
        self, fixed: Mapping[str, Any] | None = None, broker: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(fixed, broker)
        self._rolling: dict[tuple[str, int], np.ndarray] = {}
        self._har: dict[str, np.ndarray] = {}

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
            Searched parameter -> candidate values (``estimator``, ``window``, ``forecast``, ...).

        Raises
        ------
        ValueError
            A market-table parameter is in the search space (it is fixed at load time).
        """
        tunable_market = {
            "strike_increment",
            "proxy_spread_fraction",
            "proxy_min_leg_spread",
            "rate",
            "div_yield",
            "market_source",
            "har_fit_window",
            "chain_expiry",
            "chain_symbol",
            "root",
        } & set(grid)
        if tunable_market:
            raise ValueError(
                f"parameters {sorted(tunable_market)} are fixed at load time; "
                "move them from [strategy.search_space] to [strategy.params]"
            )
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
            self.reports.append(_chain_table_report(self.market, base))
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
        estimators = list(grid.get("estimator", [base.estimator]))
        windows = sorted({int(w) for w in grid.get("window", [base.window])})
        forecasts = set(grid.get("forecast", [base.forecast]))
        o, h, lo, c = (self.underlying[k] for k in ("open", "high", "low", "close"))
        if "rolling" in forecasts:
            for est in estimators:
                rv = RealizedVol.run(o, h, lo, c, window=windows, estimator=est).vol
                rv = rv.to_frame() if isinstance(rv, pd.Series) else rv
                for j, w in enumerate(windows):
                    col = rv.iloc[:, j].to_numpy(dtype=float)
                    self._rolling[(est, w)] = np.concatenate([[np.nan], col[:-1]])  # t uses <= t-1
        if "har" in forecasts:
            for est in estimators:
                if est != "yang_zhang":
                    self._har[est] = har_forecast(
                        self.underlying, estimator=est, fit_window=base.har_fit_window
                    ).to_numpy(float)

    def forecast_series(self, params: ZeroDteStraddleParams) -> pd.Series:
        """The forecast vol (decimal, 252-annualized) for each session, from bars before it."""
        if params.forecast == "har":
            values = self._har.get(params.estimator)
        else:
            values = self._rolling.get((params.estimator, params.window))
        if values is None:
            raise KeyError(
                f"forecast for {params.estimator}/{params.forecast}/{params.window} was "
                "not prepared: is it inside the search space?"
            )
        return pd.Series(values, index=self.underlying.index, name="forecast_vol")

    def market_label(self) -> str:
        """Where the market straddle comes from (``vix_proxy`` or ``chain:<root>:<expiry>``)."""
        return str(self.market["source"].iloc[0])

    def recorded_quotes(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp
    ) -> list[ChainSnapshot]:
        """The market table as the replay venue's quotes (paper contract): one snapshot per
        session at its ``trade_minute`` with the straddle's two legs (bid/ask of the table, VIX
        proxy or chain) and the legs still held from the previous session (at their mids, for a
        kill-switch flatten)."""
        assert isinstance(params, ZeroDteStraddleParams)
        table = self.market.loc[start:end]
        root, out = params.root, []
        held_expiry: dt.date | None = None
        for day, row in table.iterrows():
            legs = []
            if np.isfinite(row["expiration_ordinal"]) and np.isfinite(row["strike"]):
                expiry = dt.date.fromordinal(int(row["expiration_ordinal"]))
                for right in ("C", "P"):
                    side = "call" if right == "C" else "put"
                    bid, ask = row[f"{side}_bid"], row[f"{side}_ask"]
                    legs.append((expiry, row["strike"], right, bid, ask))
            else:
                expiry = None
            held = held_expiry is not None and held_expiry > day.date()
            if held and np.isfinite(row["held_strike"]):
                for right, mid in (("C", row["held_call_mid"]), ("P", row["held_put_mid"])):
                    legs.append((held_expiry, row["held_strike"], right, mid, mid))
            held_expiry = expiry if expiry is not None else held_expiry
            if not legs or not np.isfinite(row["trade_minute"]):
                continue
            minute = int(row["trade_minute"])
            clock = dt.time(minute // 60, minute % 60)
            when = pd.Timestamp(dt.datetime.combine(day.date(), clock))
            quotes = pd.DataFrame(legs, columns=["expiration", "strike", "right", "bid", "ask"])
            quotes["expiration"] = pd.to_datetime(quotes["expiration"])
            quotes.insert(0, "root", root)
            quotes["mid"] = (quotes["bid"] + quotes["ask"]) / 2.0
            for col in QUOTE_COLUMNS:
                if col not in quotes:
                    quotes[col] = True if col == "is_liquid" else np.nan
            out.append(
                ChainSnapshot(
                    params.chain_symbol,
                    when.tz_localize(TZ),
                    float(row["spot"]),
                    quotes[list(QUOTE_COLUMNS)],
                    rate=params.rate,
                    source=self.market_label(),
                )
            )
        return out

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
        kwargs = {
            k: getattr(params, k)
            for k, _ in ZeroDteStraddleStrategy.params._gettuple()
            if k != "last_day_ordinal"
        }
        kwargs["market_source"] = self.market_label()
        kwargs["last_day_ordinal"] = self.underlying.loc[start:end].index[-1].date().toordinal()
        strat, value, returns = run_cerebro(
            ZeroDteStraddleStrategy, [feed], broker, cash=cash, strategy_kwargs=kwargs
        )
        log = pd.DataFrame(strat.log_rows)
        return BacktestResult(
            returns=returns,
            value=value,
            trades=broker.fills_frame(),
            daily_log=log,
            info={"market_source": self.market_label()},
        )

    def data_fingerprint(self) -> str:
        """Hash of the underlying and the market table."""
        return fingerprint(
            pd.concat(
                [
                    self.underlying[["open", "high", "low", "close"]],
                    self.market[list(MARKET_LINES)],
                ],
                axis=1,
            )
        )


def _chain_table_report(market: pd.DataFrame, params: ZeroDteStraddleParams) -> str:
    """One line: what the chain market table holds between its first and last quote date."""
    quoted = market.index[market["status"] != "no_snapshot"]
    head = f"chain market table {params.chain_symbol}/{params.root}/{params.chain_expiry}: "
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
