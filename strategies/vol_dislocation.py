"""``vol_dislocation``: the 0DTE SPX opening straddle against a realized-vol forecast (issue 5).

Design document ``../shared/design/000_b5d10140c737cba0.txt``, section 3 ("Vol Dislocation
Signal": invert the auction price to ``sigma_auction``, compare with ``sigma_real`` from section
2, short vol above +threshold, long below -threshold) and section 4 ("Trade Lifecycle": exit at
11 AM, on IV reversion, or on loss/gain thresholds; "Delta-Hedging Module").

On each NYSE session ``D`` with a 0DTE SPXW opening straddle, at the 09:31 ET snapshot (close of
the 09:30-09:31 minute bar, the first moment the opening quotes are known):

1. **Auction vol** ``sigma_auction``: ``implied_vol`` of :func:`data_feeds.auction.auction_frame`
   (Black-76 vol of the 0DTE ATM straddle at the put-call-parity forward, rate 0; decimal,
   annualized on ACT/365 minutes to the 16:00 PM settlement); the straddle strike is its
   ``atm_strike``.
2. **Forecast** ``sigma_forecast``: the HAR-RV one-day-ahead forecast ``rv_har_D`` of the daily
   range-based vol (:func:`indicators.har.har_forecast`, Corsi 2009, eqs. 8-9; estimator
   ``rv_estimator`` = Parkinson / Garman-Klass / Rogers-Satchell / close-to-close; decimal,
   annualized with 252 sessions; fitted on daily SPX OHLC of sessions ``<= D-1`` only), put on
   the option's clock assuming the session variance is spread evenly over its minutes::

       sigma_forecast_D = rv_har_D * sqrt(MINUTES_PER_YEAR / (252 * session_minutes_D))

   i.e. ``sigma_forecast^2 * tte(t) = rv_har^2 / 252 * (minutes left / session minutes)`` at
   every minute ``t`` (390-minute session: factor ``sqrt(525600 / 98280) = 2.3126``), so one
   number serves the whole day (:func:`session_vol_factor`).
3. **Gap** ``gap_D = sigma_auction / sigma_forecast - 1`` (unitless; 0.2 = the market prices 20 %
   more vol than the model). ``gap > entry_threshold``: sell the straddle; ``gap <
   -entry_threshold``: buy it (``sides`` can restrict to one side).
4. **Size** (:mod:`strategies.risk`): units = :func:`strategies.risk.max_loss_contracts` of
   ``account_risk`` of the equity on the loss budget per unit ``stop_loss * premium * 100``
   (long: ``min(stop_loss, 1)``, the premium is the most a long can lose) plus the round-trip
   commission; the risk layer (:class:`strategies.risk.OptionRiskMixin`, ``RiskConfig``
   kill switch / daily-loss block) gates the order.
5. **Exits**, checked on every later minute snapshot of ``D``, first hit wins: ``exit_time``
   (first snapshot stamped at or after it; default 11:00 = the quotes at the close of the
   10:59-11:00 bar), take-profit (mid P&L ``>= take_profit * premium``), stop-loss (mid loss
   ``>= stop_loss * premium``), IV reversion (``|iv_t / sigma_forecast - 1| <= exit_gap`` with
   ``iv_t`` = :meth:`ChainSnapshot.atm_iv` of the 0DTE expiry on the current snapshot); closed
   at the snapshot's bid/ask (slippage fraction of the broker). A leg nobody bids for is left
   to the 0DTE PM cash settlement on the SPX daily close, as is a position when no exit fires.
6. **Hedge** (``delta_hedge``): :class:`strategies.hedging.DeltaHedger` with the ``band`` rule
   trades the SPX index itself as a proxy instrument (``hedge_half_spread`` + per-unit
   commission); the hedge is flattened at the position's exit (the band rule sees the options'
   delta gone) or on the session's last snapshot. P&L split option / hedge / costs per bar in
   ``info["pnl_breakdown"]`` (as ``skew_dislocation``).

Walk-forward calendar: every NYSE session of the ``[data]`` SPX daily file (days without an
opening straddle are flat), so ``volsuite run`` can make folds; the real minute quotes give 3
tradable days (2021-01-04, -06, -08): the out-of-sample result is a smoke test.
See ``docs/strategies/vol_dislocation.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from brokers import OptionsBroker
from brokers.cost_config import CostsConfig
from data_feeds.auction import (
    AUCTION_TIME,
    auction_frame,
    load_option_minute_quotes,
)
from data_feeds.calendar import MINUTES_PER_YEAR, TZ
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable, settlement_time
from data_feeds.minute_bars import load_minute_bars
from data_feeds.snapshot_feed import ChainSnapshotFeed, RecordedSnapshots
from indicators import DAILY_ESTIMATORS, Estimator
from indicators.har import har_forecast
from indicators.realized_vol import TRADING_DAYS
from strategies.base import BacktestResult, StrategyParams, run_cerebro
from strategies.book import TradeBook
from strategies.hedging import DeltaHedgedStrategy, HedgeConfig
from strategies.option_strategy import ChainPlugin, ChainStrategy
from strategies.params import AccountRisk, MaxContracts, StopLoss, TakeProfit
from strategies.risk import (
    UNATTRIBUTED,
    OptionRiskMixin,
    max_loss_contracts,
)

__all__ = [
    "VolDislocation",
    "VolDislocationParams",
    "VolDislocationStrategy",
    "dislocation_signals",
    "forecast_table",
    "session_vol_factor",
    "with_forward_price",
]

_OPEN = dt.time(9, 30)


class VolDislocationParams(StrategyParams):
    """Parameters of ``vol_dislocation`` (searchable ones in :attr:`tunable`; ``chain_symbol``,
    ``root``, ``rate``, ``har_fit_window`` and ``har_min_obs`` are fixed when
    :meth:`VolDislocation.prepare` reads the data; the quote and minute-bar files are
    ``[data.option_quotes]`` / ``[data.index_minute]``, not parameters).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the minute snapshots (``SPX``) and root traded (``SPXW``, same-day expiry).
    rate : float
        Continuous rate (decimal) put on the snapshots (implied vols, greeks).
    rv_estimator : indicators.Estimator
        Daily variance estimator of the HAR forecast (:func:`indicators.har.har_forecast`): one
        of :data:`indicators.DAILY_ESTIMATORS` (``parkinson``, ``garman_klass``,
        ``rogers_satchell``, ``close_to_close``; ``yang_zhang`` has no one-day form and is
        refused).
    har_fit_window, har_min_obs : int
        HAR OLS window (past daily samples; 0 = expanding) and samples needed before a forecast.
    entry_threshold : float
        ``|gap|`` needed to trade (unitless fraction, > 0).
    exit_gap : float
        IV reversion exit: ``|gap_t| <= exit_gap`` (``< entry_threshold``).
    exit_time : str
        ``HH:MM`` ET: close at the first snapshot stamped at or after it (09:32 .. 16:00).
    take_profit, stop_loss : float
        Fractions of the entry premium (per unit, fill prices): close when the mid P&L reaches
        ``take_profit * premium`` or the mid loss ``stop_loss * premium``.
    sides : {"both", "short", "long"}
        Which vol trades are allowed.
    account_risk : float
        Share of the equity risked per trade (decimal; module docstring, step 4).
    max_contracts : int
        Cap on units per trade.
    delta_hedge : bool
        Hedge the book delta with the SPX index (proxy instrument).
    hedge_band : float
        Half-width of the no-trade band, index units (:class:`HedgeConfig` ``band``).

    The kill switch (``max_drawdown``), daily-loss block (``max_daily_loss``) and the hedge's
    costs (``hedge_half_spread``, index points; ``hedge_commission_per_share``, dollars per index
    unit) are not parameters: they come from the config's ``[risk]`` / ``[costs]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "rv_estimator",
            "entry_threshold",
            "exit_gap",
            "exit_time",
            "take_profit",
            "stop_loss",
            "sides",
            "account_risk",
            "max_contracts",
            "delta_hedge",
            "hedge_band",
        }
    )

    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    rv_estimator: Estimator = "parkinson"
    har_fit_window: int = Field(1000, ge=0, le=10_000)
    har_min_obs: int = Field(250, ge=30, le=10_000)
    entry_threshold: float = Field(0.2, gt=0.0, le=5.0)
    exit_gap: float = Field(0.05, ge=0.0, le=5.0)
    exit_time: str = "11:00"
    take_profit: TakeProfit = Field(
        0.5, description="decimal fraction of the entry premium per unit (mid P&L)"
    )
    stop_loss: StopLoss = Field(
        1.0, description="decimal multiple of the entry premium per unit (mid loss)"
    )
    sides: Literal["both", "short", "long"] = "both"
    account_risk: AccountRisk = 0.02
    max_contracts: MaxContracts = 10
    delta_hedge: bool = False
    hedge_band: float = Field(10.0, gt=0.0)

    @field_validator("rv_estimator")
    @classmethod
    def _one_day_estimator(cls, value: str) -> str:
        if value not in DAILY_ESTIMATORS:
            raise ValueError(
                f"rv_estimator must have a one-day variance form for the HAR forecast "
                f"({', '.join(DAILY_ESTIMATORS)}), got {value!r}"
            )
        return value

    @field_validator("exit_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        try:
            t = dt.datetime.strptime(value, "%H:%M").time()
        except ValueError:
            raise ValueError(f"exit_time must be 'HH:MM' (ET), got {value!r}") from None
        if not dt.time(9, 32) <= t <= dt.time(16, 0):
            raise ValueError(f"exit_time must be within 09:32..16:00 ET, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> VolDislocationParams:
        if self.exit_gap >= self.entry_threshold:
            raise ValueError(
                f"exit_gap ({self.exit_gap}) must be < entry_threshold ({self.entry_threshold})"
            )
        if self.har_fit_window and self.har_fit_window < self.har_min_obs:
            raise ValueError(
                f"har_fit_window ({self.har_fit_window}) must be 0 (expanding) or >= "
                f"har_min_obs ({self.har_min_obs})"
            )
        return self

    def exit_clock(self) -> dt.time:
        """``exit_time`` as a :class:`datetime.time`."""
        return dt.datetime.strptime(self.exit_time, "%H:%M").time()

    def hedge_config(self, costs: CostsConfig) -> HedgeConfig:
        """The band-rule :class:`strategies.hedging.HedgeConfig` of these parameters and the
        config's hedge ``costs``."""
        return HedgeConfig(
            rule="band",
            band=self.hedge_band,
            half_spread=costs.hedge_half_spread,
            commission_per_share=costs.hedge_commission_per_share,
        )


# --------------------------------------------------------------------------------------
# signals (pure functions)
# --------------------------------------------------------------------------------------


def session_vol_factor(day: dt.date) -> float:
    """Factor turning a 252-annualized session vol into an ACT/365-minute implied vol.

    ``sqrt(MINUTES_PER_YEAR / (252 * session_minutes))`` with ``session_minutes`` from 09:30 ET
    to the PM settlement (:func:`data_feeds.chains.settlement_time`: 390 on a normal day, 210 on
    an early close). With variance spread evenly over the session, ``(factor * rv)^2 * tte(t)``
    equals ``rv^2 / 252 * (minutes left at t) / session_minutes`` at every minute ``t``.

    Parameters
    ----------
    day : datetime.date
        Session date.

    Returns
    -------
    float
        Unitless (2.3126 for a 390-minute session).
    """
    close = settlement_time(day, "PM")
    minutes = (close - pd.Timestamp.combine(day, _OPEN).tz_localize(TZ)).total_seconds() / 60.0
    return math.sqrt(MINUTES_PER_YEAR / (TRADING_DAYS * minutes))


def forecast_table(
    daily: pd.DataFrame, estimator: str, fit_window: int = 1000, min_obs: int = 250
) -> pd.DataFrame:
    """HAR forecast of each session's vol from earlier sessions, on the 0DTE option clock.

    Parameters
    ----------
    daily : pandas.DataFrame
        SPX daily ``open, high, low, close`` (index points), one row per session (ascending).
    estimator : str
        :func:`indicators.realized_vol.daily_variance` estimator.
    fit_window, min_obs : int
        :func:`indicators.har.har_forecast` settings.

    Returns
    -------
    pandas.DataFrame
        Index of ``daily``; ``rv_forecast`` (forecast of the session's vol made with sessions
        ``<= D-1`` only, decimal, 252-annualized) and ``sigma_forecast`` (``rv_forecast *``
        :func:`session_vol_factor`, decimal, ACT/365 on the option's minutes). NaN during the
        HAR warm-up.

    Raises
    ------
    ValueError
        Unknown estimator or invalid HAR settings (from :func:`indicators.har.har_forecast`).
    """
    rv = har_forecast(daily, estimator, fit_window=fit_window, min_obs=min_obs)
    factor = np.array([session_vol_factor(d) for d in pd.DatetimeIndex(daily.index).date])
    return pd.DataFrame(
        {"rv_forecast": rv.to_numpy(), "sigma_forecast": rv.to_numpy() * factor},
        index=daily.index,
    )


def dislocation_signals(auction: pd.DataFrame, forecast: pd.DataFrame) -> pd.DataFrame:
    """Per auction date: ``sigma_auction``, ``sigma_forecast`` and ``gap``.

    Parameters
    ----------
    auction : pandas.DataFrame
        :func:`data_feeds.auction.auction_frame` rows (09:31 ET stamps).
    forecast : pandas.DataFrame
        :func:`forecast_table` (session index).

    Returns
    -------
    pandas.DataFrame
        Index ``datetime.date``; ``atm_strike`` (index points), ``straddle_bid/ask`` (index
        points), ``sigma_auction`` (decimal, ACT/365), ``rv_forecast`` (decimal, 252),
        ``sigma_forecast`` (decimal, ACT/365), ``gap`` (``sigma_auction / sigma_forecast - 1``),
        ``overnight_return`` (decimal log return). Dates whose forecast is not a session of
        ``forecast`` get NaN forecasts (nothing is dropped).
    """
    days = pd.DatetimeIndex(auction.index).date
    f_days = pd.DatetimeIndex(forecast.index).date
    fc = forecast.set_axis(f_days).reindex(days)
    out = pd.DataFrame(
        {
            "atm_strike": auction["atm_strike"].to_numpy(float),
            "straddle_bid": auction["straddle_bid"].to_numpy(float),
            "straddle_ask": auction["straddle_ask"].to_numpy(float),
            "sigma_auction": auction["implied_vol"].to_numpy(float),
            "rv_forecast": fc["rv_forecast"].to_numpy(float),
            "sigma_forecast": fc["sigma_forecast"].to_numpy(float),
            "overnight_return": auction["overnight_return"].to_numpy(float),
        },
        index=pd.Index(days, name="date"),
    )
    out["gap"] = out["sigma_auction"] / out["sigma_forecast"] - 1.0
    return out


def with_forward_price(snapshot: ChainSnapshot, root: str) -> tuple[ChainSnapshot, str]:
    """The snapshot with an underlying price: its own, else the same-day expiry's parity forward.

    With rate 0 and under a day to expiry the put-call-parity forward
    (:meth:`ChainSnapshot.forward`) is the index level the options imply; it stands in for the
    SPX minute bar on dates the index file does not cover.

    Parameters
    ----------
    snapshot : ChainSnapshot
    root : str
        Root of the same-day expiry.

    Returns
    -------
    snapshot : ChainSnapshot
        The input when it has a finite price, else a copy priced at the forward (or the input,
        still NaN, when no forward exists).
    source : str
        ``"index"``, ``"forward"`` or ``"none"``.
    """
    if math.isfinite(snapshot.underlying_price):
        return snapshot, "index"
    try:
        fwd = snapshot.forward(snapshot.quote_date, root)
    except QuoteUnavailable:
        return snapshot, "none"
    snap = ChainSnapshot(
        snapshot.underlying,
        snapshot.quote_time,
        float(fwd),
        snapshot.quotes,
        rate=snapshot.rate,
        source=snapshot.source,
    )
    return snap, "forward"


# --------------------------------------------------------------------------------------
# backtrader strategy
# --------------------------------------------------------------------------------------


class VolDislocationStrategy(OptionRiskMixin, DeltaHedgedStrategy, ChainStrategy):
    """backtrader face of ``vol_dislocation`` (module docstring, steps 3-6).

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : VolDislocationParams
    signals : mapping of datetime.date to dict
        :func:`dislocation_signals` rows.
    hedge : HedgeConfig
        Used when ``rules.delta_hedge``.
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default ``RiskLimits()``).

    The decision of ``D`` is taken on its 09:31 snapshot and reads only ``signals[D]`` (auction
    quotes of the 09:30 bar, a forecast from sessions before ``D``) and that snapshot; exits read
    the current snapshot only. ``log_rows``: one row per session of the feed; the entry day's
    row gets ``status = "traded"``, ``exit_reason``, ``exit_time``, ``option_pnl`` (its trade in
    :attr:`book`: fills and its share of settlements), ``hedge_pnl`` (the share trades tagged
    with it: :meth:`hedge_tag`) and ``net_pnl`` (dollars).
    """

    rules_cls = VolDislocationParams
    counters = ("exit_deferred", "hedge_flattened")
    #: Tag prefix of the positions (the attribution sleeve).
    tag_prefix: ClassVar[str] = "vol"

    def __init__(self) -> None:
        super().__init__()
        self.trade: dict[str, Any] | None = None
        self._day: dt.date | None = None

    # -- the bar ----------------------------------------------------------------------------------
    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """Options (:meth:`next_options`), then the hedge; on the session's last snapshot the
        hedge is closed instead (the legs left settle on the close). A trade closed on this bar
        is booked after its hedge is flat."""
        self.next_options(snapshot)
        if self._last_bar_of_session():
            self._flatten_hedge(snapshot)
        elif self.rules.delta_hedge:
            self.hedger.hedge(self, snapshot, tag=self.hedge_tag())
        if self.trade is not None and self.trade.get("closed"):
            self._flatten_hedge(snapshot)  # what the band left (|units| <= hedge_band)
            self._finish(self.trade["reason"])

    def next_options(self, snapshot: ChainSnapshot) -> None:
        """Risk step, the open trade's exits, then the day's entry decision on its first bar."""
        self.risk_step()
        if self.trade is not None:
            self._manage(snapshot)
        day = snapshot.quote_date
        if day != self._day:
            self._day = day
            self._decide(snapshot, day)

    def stop(self) -> None:
        """Book a trade still in the book after the last bar (settled on the close, or open)."""
        if self.trade is not None:
            left = self.trade["tag"] in self.combos
            self._finish("open_at_end" if left else self.trade.get("reason") or "settled")

    # -- entry ------------------------------------------------------------------------------------
    def _decide(self, snap: ChainSnapshot, day: dt.date) -> None:
        r = self.rules
        row: dict[str, Any] = {"date": day}
        self.log_rows.append(row)
        sig = self.signals.get(day)
        if sig is None:
            row["status"] = "no_signal"
            return
        row.update(
            {
                k: sig.get(k, math.nan)
                for k in ("sigma_auction", "rv_forecast", "sigma_forecast", "gap")
            }
        )
        gap = float(sig.get("gap", math.nan))
        if snap.quote_time.time() != AUCTION_TIME:
            row["status"] = "no_0931_snapshot"
        elif not math.isfinite(gap):
            row["status"] = "no_gap"
        elif abs(gap) <= r.entry_threshold:
            row["status"] = "inside_threshold"
        elif (gap > 0 and r.sides == "long") or (gap < 0 and r.sides == "short"):
            row["status"] = "side_disabled"
        elif self.trade is not None:
            row["status"] = "position_open"
        elif self.risk_blocked():
            row["status"] = "risk_blocked"
        else:
            self._enter(snap, day, sig, -1 if gap > 0 else 1, row)

    def entry_combo(
        self, snap: ChainSnapshot, day: dt.date, sig: Mapping[str, Any], side: int, row: dict
    ) -> Combo:
        """The structure bought per unit (``side`` +1 long vol / -1 short vol is applied by the
        caller): the 0DTE straddle at the auction frame's ``atm_strike``.

        Raises
        ------
        data_feeds.chains.QuoteUnavailable
            A leg is not quoted / no strike (counted by reason, the row's ``no_combo``).
        """
        return snap.straddle(day, self.rules.root, float(sig["atm_strike"]))

    def _enter(
        self, snap: ChainSnapshot, day: dt.date, sig: Mapping[str, Any], side: int, row: dict
    ) -> None:
        r = self.rules
        try:
            combo = self.entry_combo(snap, day, sig, side, row)
            quotes = [(q, snap.row(c)) for c, q in combo.legs]
        except QuoteUnavailable as exc:
            self.count_unavailable(exc, row)
            row.update(status="no_combo", detail=str(exc))
            return
        if not all(float(qt["bid"]) > 0 for _, qt in quotes):
            row["status"] = "no_bid"
            return
        frac = self.obroker.costs.slippage_spread_fraction
        # expected fill per unit: mid +- frac * spread in the order's direction (broker's rule)
        premium_est = abs(
            sum(
                q * (0.5 * (float(b["bid"]) + float(b["ask"])))
                + abs(q) * side * frac * (float(b["ask"]) - float(b["bid"]))
                for q, b in quotes
            )
        )
        mult = combo.legs[0][0].multiplier
        n_legs = sum(abs(q) for _, q in combo.legs)
        commission = 2 * n_legs * self.obroker.costs.commission_per_contract
        loss_frac = min(r.stop_loss, 1.0) if side > 0 else r.stop_loss
        loss_unit = loss_frac * premium_est * mult + commission
        contracts = max_loss_contracts(
            self.broker.getvalue(), r.account_risk, loss_unit, max_contracts=r.max_contracts
        )
        row.update(
            side="long_vol" if side > 0 else "short_vol",
            structure="/".join(f"{side * q:+d}x{c.strike:g}{c.right}" for c, q in combo.legs),
            loss_budget_per_unit=loss_unit,
            contracts=contracts,
        )
        if contracts < 1:
            row["status"] = "size_zero"
            return
        tag = f"{self.tag_prefix} {day:%Y-%m-%d}"
        fills = self.open_combo(combo, side * contracts, tag=tag)
        if not fills:
            row.update(status="rejected", detail=self.rejections[-1][2] if self.rejections else "")
            return
        entry_value = sum(f.quantity * f.price for f in fills) / contracts  # signed, per unit
        row.update(status="open", premium=abs(entry_value))
        self.trade = {
            "tag": tag,
            "trade_id": int(self.last_trade_id or 0),
            "day": day,
            "side": side,
            "contracts": contracts,
            "entry_value": entry_value,
            "premium": abs(entry_value),
            "sigma_forecast": float(sig["sigma_forecast"]),
            "row": row,
            "reason": None,
        }

    # -- exits ------------------------------------------------------------------------------------
    def _manage(self, snap: ChainSnapshot) -> None:
        t = self.trade
        assert t is not None
        if t["tag"] not in self.combos:  # settled after the last bar, or flattened by the kill
            killed = f"risk: {self.risk.kill_reason or 'kill'}" if self.risk.killed else None
            self._finish(t["reason"] or killed or "settled")
            return
        r = self.rules
        legs = self.combos[t["tag"]]
        reason = t["reason"]
        if reason is None:
            if snap.quote_time.time() >= r.exit_clock() or snap.quote_date > t["day"]:
                reason = "time"
            else:
                reason = self._pnl_or_iv_exit(snap, legs, t)
        if reason is None:
            return
        t["reason"] = reason
        self.close_combo(t["tag"])
        if t["tag"] in self.combos:
            self.counts["exit_deferred"] += 1
            return
        t.update(exit_time=snap.quote_time, closed=True)

    def _pnl_or_iv_exit(
        self, snap: ChainSnapshot, legs: Mapping[Any, int], t: Mapping[str, Any]
    ) -> str | None:
        r = self.rules
        if all(snap.has(c) and math.isfinite(snap.mid(c)) for c in legs):
            value = sum(q * snap.mid(c) for c, q in legs.items()) / t["contracts"]
            pnl = value - t["entry_value"]  # per unit, index points (signed book value change)
            if pnl >= r.take_profit * t["premium"]:
                return "take_profit"
            if -pnl >= r.stop_loss * t["premium"]:
                return "stop_loss"
        try:
            iv = snap.atm_iv(t["day"], r.root)
        except QuoteUnavailable as exc:
            self.count_unavailable(exc)
            return None
        if abs(iv / t["sigma_forecast"] - 1.0) <= r.exit_gap:
            return "iv_reverted"
        return None

    def _flatten_hedge(self, snap: ChainSnapshot) -> None:
        """Close hedge units at the snapshot price -+ the half spread (their commission paid)."""
        cfg = self.hedger.config
        broker = self.obroker
        price = float(snap.underlying_price)
        for symbol, pos in list(broker.underlying_positions.items()):
            if not (math.isfinite(price) and price > cfg.half_spread):
                continue
            qty = -pos.quantity
            fill_px = price + cfg.half_spread if qty > 0 else price - cfg.half_spread
            broker.trade_underlying(
                symbol,
                qty,
                fill_px,
                snap.quote_time,
                commission=cfg.commission_per_share * abs(qty),
                tag=self.hedge_tag(),
            )
            self.counts["hedge_flattened"] += 1

    def hedge_tag(self) -> str:
        """The open trade's tag (one trade at a time: its hedge and the hedge flattening are
        allocated to its trade in :attr:`book`); :data:`strategies.hedging.HEDGE_TAG` when
        flat."""
        t = self.trade
        return t["tag"] if t is not None else super().hedge_tag()

    def _finish(self, reason: str) -> None:
        """Log the trade from its trade in :attr:`book`: ``option_pnl`` (option fills,
        commissions, its share of settlements, open legs at the marks), ``hedge_pnl`` (its share
        trades, open shares at the marks), ``net_pnl`` = their sum and ``commissions`` (option
        and share commissions and settlement fees of the trade), all dollars."""
        t = self.trade
        assert t is not None
        broker = self.obroker
        self.book.sync(self.obroker)  # share trades placed since the last sync
        self.book.note(t["trade_id"], reason)
        trade = self.book.trade(t["trade_id"])
        net = trade.net_pnl(broker)
        option = trade.option_pnl(broker)
        t["row"].update(
            status="traded",
            exit_reason=reason,
            exit_time=t.get("exit_time"),
            option_pnl=option,
            hedge_pnl=net - option,
            commissions=trade.commission,
            net_pnl=net,
        )
        self.trade = None


# --------------------------------------------------------------------------------------
# plugin
# --------------------------------------------------------------------------------------


class VolDislocation(ChainPlugin):
    """Plugin: auction frame, HAR forecasts, minute snapshots of the tradable days, one Cerebro
    per window (module docstring).

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params.
    """

    name = "vol_dislocation"
    description = "0DTE SPX opening straddle: auction IV vs HAR range-vol forecast, intraday exits"
    Params: ClassVar[type[StrategyParams]] = VolDislocationParams
    required_data = ("underlying", "chains", "option_quotes")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss"})
    strategy_cls: ClassVar[type[VolDislocationStrategy]] = VolDislocationStrategy
    #: Signal-table parameters (searchable; one table per combination, built in ``prepare``).
    signal_keys: ClassVar[tuple[str, ...]] = ("rv_estimator",)

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """Auction frame, forecasts of the search space, minute snapshots of tradable days.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated SPX daily OHLC: forecast, calendar, settlement),
            ``chains`` (a :class:`data_feeds.chain_store.ChainStore` holding the minute quotes,
            ``lean-minute`` ingest), ``option_quotes`` (path of ``[data.option_quotes]``: the
            minute option quote file, ``load_option_minute_quotes`` layout, the auction frame
            is built from; the same file as ``[data.chains]`` ingests) and optionally
            ``index_minute`` (path of ``[data.index_minute]``: SPX index minute bars ``date,
            time_et, open, high, low, close``, opening print of the auction frame and
            underlying price of the snapshots; without bars on a date, the snapshot's 0DTE
            put-call-parity forward is used, :func:`with_forward_price`).
        grid : mapping
            Searched parameter -> candidate values.

        Raises
        ------
        ValueError
            A load-time parameter is searched; the quote file has no date inside the daily
            sessions.
        """
        self.check_search_space(grid)
        p = self.Params(**self.fixed)
        assert isinstance(p, VolDislocationParams)
        self.base = p
        self.underlying = data["underlying"]
        self.source = data["chains"]
        self._forecasts: dict[str, pd.DataFrame] = {}
        self.quotes_file = data["option_quotes"]
        self.minute_file = data.get("index_minute")
        quotes = load_option_minute_quotes(self.quotes_file)
        index_minute = (
            load_minute_bars(self.minute_file, stamp="start") if self.minute_file else None
        )
        self.auction, report = auction_frame(
            quotes, daily=self.underlying, index_minute=index_minute
        )
        sessions = set(pd.DatetimeIndex(self.underlying.index).date)
        a_days = pd.DatetimeIndex(self.auction.index).date
        inside = np.array([d in sessions for d in a_days])
        n_straddle = int(np.isfinite(self.auction["implied_vol"]).sum())
        self.reports.append(
            f"auction frame: {report.dates} dates, {n_straddle}"
            f" with a 0DTE opening straddle (no 0DTE expiry: {report.no_0dte}; no two-sided "
            f"strike: {report.no_straddle}; {report.quotes_unusable} unusable 09:30 legs); "
            f"{int((~inside).sum())} outside the daily sessions"
        )
        if not inside.any():
            raise ValueError(
                f"no date of {self.quotes_file} inside the [data] underlying sessions "
                f"{min(sessions)}..{max(sessions)}"
            )
        for combo in self.grid_combos(grid, p, self.signal_keys):
            self.signal_table(p.model_copy(update=combo))
        base = self.signal_table(p)
        ok = base["gap"].notna() & base.index.isin(list(sessions))
        self.tradable = sorted(base.index[ok])
        no_fc = base["sigma_auction"].notna() & base["sigma_forecast"].isna()
        self.reports.append(
            f"tradable days (straddle and forecast): {[d.isoformat() for d in self.tradable]}; "
            f"{int(no_fc.sum())} straddle day(s) without a forecast (HAR warm-up)"
        )
        exits = [p.exit_clock()] + [
            p.model_copy(update={"exit_time": t}).exit_clock() for t in grid.get("exit_time", [])
        ]
        self._load_snapshots(p, max(exits))

    def _load_snapshots(self, p: VolDislocationParams, last_exit: dt.time) -> None:
        """Minute snapshots of every date with an opening straddle, 09:31 .. ``last_exit`` (the
        latest ``exit_time`` of the search space: every position is closed by then) plus the
        session's last snapshot (PM settlement of a leg left open, hedge flattened); read once
        and shared by the trials. Price: the index bar, else the 0DTE parity forward, else the
        day's last known price (counted in the report)."""
        candidates = sorted(self.signal_table(p).dropna(subset=["sigma_auction"]).index)
        self.day_snapshots: dict[dt.date, list[ChainSnapshot]] = {}
        if not candidates:
            return
        bars = load_minute_bars(self.minute_file, stamp="end") if self.minute_file else None
        recorded = RecordedSnapshots(
            self.source,
            p.chain_symbol,
            roots=[p.root],
            start=candidates[0],
            end=candidates[-1],
            rate=p.rate,
            underlying_bars=bars,
        )
        by_day: dict[dt.date, list[pd.Timestamp]] = {}
        for when in recorded.times:
            if when.date() in candidates:
                by_day.setdefault(when.date(), []).append(when)
        price_from: dict[str, int] = {}
        skipped = 0
        for day, times in by_day.items():
            keep = [t for t in times[:-1] if t.time() <= last_exit] + times[-1:]
            skipped += len(times) - len(keep)
            last_price = math.nan
            for when in keep:
                snap = recorded.snapshot_at(when)
                if snap is None:
                    continue
                snap, how = with_forward_price(snap, p.root)
                if how == "none" and math.isfinite(last_price):
                    snap = ChainSnapshot(
                        snap.underlying, snap.quote_time, last_price, snap.quotes,
                        rate=snap.rate, source=snap.source,
                    )  # fmt: skip
                    how = "carried"
                last_price = float(snap.underlying_price)
                price_from[how] = price_from.get(how, 0) + 1
                self.day_snapshots.setdefault(day, []).append(snap)
        self.reports.append(
            f"minute snapshots 09:31..{last_exit:%H:%M} + the last of the day, "
            f"{len(self.day_snapshots)} straddle day(s): "
            + ", ".join(f"{k}: {len(v)}" for k, v in self.day_snapshots.items())
            + f" ({skipped} later snapshots not read); underlying price from "
            + ", ".join(f"{k} {v}" for k, v in sorted(price_from.items()))
        )

    def forecast(self, estimator: str) -> pd.DataFrame:
        """:func:`forecast_table` of ``estimator`` (cached)."""
        if estimator not in self._forecasts:
            b = self.base
            self._forecasts[estimator] = forecast_table(
                self.underlying, estimator, b.har_fit_window, b.har_min_obs
            )
        return self._forecasts[estimator]

    def build_signals(self, params: StrategyParams) -> pd.DataFrame:
        """The signal table of ``params`` (:func:`dislocation_signals`); subclasses add
        columns."""
        assert isinstance(params, VolDislocationParams)
        return dislocation_signals(self.auction, self.forecast(params.rv_estimator))

    def signal_table(self, params: StrategyParams | None = None) -> pd.DataFrame:
        """Per auction date signals of ``params`` (default the fixed ones), cached by
        :attr:`signal_keys`."""
        p = params or self.base
        key = tuple(getattr(p, k) for k in self.signal_keys)
        if key not in self._tables:
            self._tables[key] = self.build_signals(p)
        return self._tables[key]

    def trading_days(self) -> pd.DatetimeIndex:
        """Every session of the ``[data]`` daily file (days without a trade are flat)."""
        return pd.DatetimeIndex(self.underlying.index)

    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """One Cerebro over the minute snapshots of the tradable days in ``[start, end]``; the
        other sessions of the window are flat (return 0).

        Raises
        ------
        ValueError
            No session inside the window.
        """
        assert isinstance(params, VolDislocationParams)
        p = params
        inside = self.window_days(start, end)
        lo, hi = inside[0].date(), inside[-1].date()
        snaps = [s for d, v in self.day_snapshots.items() if lo <= d <= hi for s in v]
        broker = OptionsBroker(
            **self.broker_params,
            settlement_prices={p.chain_symbol: self.underlying[["open", "close"]]},
        )
        info: dict[str, Any] = {"market_source": f"minute:{p.chain_symbol}:{p.root}"}
        flat_log = pd.DataFrame({"date": inside.date, "status": "no_opening_straddle"})
        if not snaps:
            broker.setcash(cash)
            value = pd.Series(cash, index=inside, name="value", dtype=float)
            info["sleeve_pnl"] = pd.DataFrame(
                {UNATTRIBUTED: 0.0}, index=pd.DatetimeIndex(inside.date, name="date")
            )
            info["closed_trades"] = TradeBook().closed_trades()
            return BacktestResult(
                returns=pd.Series(0.0, index=inside, name="returns"),
                value=value,
                trades=broker.fills_frame(),
                daily_log=flat_log,
                info=info,
            )
        feed = ChainSnapshotFeed(snapshots=snaps, live=False, features=False)
        strat, value, _ = run_cerebro(
            self.strategy_cls, [feed], broker, cash=cash,
            strategy_kwargs=self.strategy_kwargs(p, inside),
        )  # fmt: skip
        value = value.reindex(inside).ffill().fillna(cash)
        prev = np.concatenate([[cash], value.to_numpy()[:-1]])
        returns = pd.Series(value.to_numpy() / prev - 1.0, index=inside, name="returns")
        log = pd.DataFrame(strat.log_rows)
        flat_log = flat_log[~flat_log["date"].isin(set(log["date"]) if len(log) else set())]
        daily_log = pd.concat([flat_log, log], ignore_index=True).sort_values("date")
        info.update(self.backtest_info(strat, p), market_source=info["market_source"])
        # daily sleeve P&L from the per-bar breakdown (options incl. their costs / hedge incl.
        # its costs): strategies.risk.SleevePnL keeps one bar per date, not the day's sum, on
        # intraday feeds
        day_pnl = strat.hedger.daily_pnl()
        day_pnl.index = pd.DatetimeIndex(pd.to_datetime(list(day_pnl.index)), name="date")
        info["sleeve_pnl"] = pd.DataFrame(
            {
                self.strategy_cls.tag_prefix: day_pnl["option_pnl"]
                + day_pnl["option_commission"]
                + day_pnl["option_slippage"],
                "hedge": day_pnl["hedge_pnl"]
                + day_pnl["hedge_commission"]
                + day_pnl["hedge_spread"],
                UNATTRIBUTED: 0.0,
            }
        )
        info["sleeve_pnl"] = (
            info["sleeve_pnl"].reindex(pd.DatetimeIndex(inside.date, name="date")).fillna(0.0)
        )
        return BacktestResult(
            returns=returns,
            value=value.rename("value"),
            trades=broker.fills_frame(),
            daily_log=daily_log.reset_index(drop=True),
            info=info,
        )

    def data_fingerprint(self) -> str:
        """Hash of the daily bars and the auction frame."""
        cols = ["atm_strike", "straddle_bid", "straddle_ask", "implied_vol", "overnight_return"]
        return self.fingerprint_with(self.auction[cols].fillna(-1.0), sep="-")

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """``<name>/signals.csv`` (the fixed parameters' table) and ``<name>/report.txt``;
        returns the number of tradable days."""
        out = self.report_folder(folder, self.name)
        self.signal_table().to_csv(out / "signals.csv", index_label="date")
        return {f"{self.name}_tradable_days": float(len(self.tradable))}
