"""``vrp_harvest``: sell ATM straddles or strangles when the variance risk premium is rich.

Design document ``../shared/design/004_ae9ef73fd2ccce0b.txt`` (VRP), issue 5.

On each chain quote date ``D`` (one snapshot, ~15:45 ET for the 2019 SPX chains):

1. **Implied vol** ``atm_iv_D``: ATM implied vol of the listed expiry nearest ``target_dte``
   inside ``[min_dte, max_dte]`` (:func:`snapshot_atm_iv`: :meth:`ChainSnapshot.atm_iv` on the
   put-call-parity forward; where no strike has a two-sided call and put -- the sparse SPY 2021
   ladder -- the mean Black-Scholes implied vol of the call and the put nearest the snapshot's
   underlying price, ``iv_source = "nearest_strikes"``).
2. **Forecast realized vol** ``rv_D``: :func:`indicators.realized_vol` of the ``[data]`` daily
   bars over ``rv_window`` sessions, taken at the session **before** ``D`` (decimal, annualized
   with 252).
3. **VRP** ``atm_iv_D - rv_D`` and its z-score against its own strict past
   (:func:`indicators.vol_signals.vrp_signals`, expanding or rolling ``z_window``).
4. **Entry**: ``vrp_zscore >= entry_z`` (and ``vrp > min_vrp``), fewer than ``max_open``
   positions, the risk layer not blocking: sell ``contracts`` units of the straddle (ATM strike)
   or strangle (``strangle_delta``) at the snapshot's bid/ask.
5. **Size** (:mod:`strategies.risk.sizing`): a short straddle has no bounded maximum loss, so the
   loss budgeted per unit is the stop: ``stop_loss * credit * multiplier`` plus the round-trip
   commission; :func:`strategies.risk.max_loss_contracts` turns ``account_risk`` of the equity
   into units; ``sizing = "vol_managed"`` multiplies that by the Moreira-Muir weight
   (:class:`strategies.risk.VolManagedSizer`) of the underlying's returns up to ``D-1``.
6. **Exit** (daily marks at the snapshot mids): ``dte <= exit_dte``, profit target (mid P&L
   ``>= take_profit * credit``), stop (mid loss ``>= stop_loss * credit``), or the end of the
   backtest window; closed at the bid/ask. P&L rules are evaluated only on days where every leg
   is quoted (a missing quote is counted as a stale mark day, never filled).

The design sketch (section 5.2 ``calculate_vrp``) takes the ATM IV from the fitted surfaces and
"the corresponding realized vol" with a z-score "relative to the historical VRP distribution";
here the ATM IV is read from the traded chain itself (the same quotes the trade uses), the realized
side is a forecast from bars strictly before the quote date, and the z-score uses earlier dates
only (issue 5), so nothing of ``D``'s close or of later dates enters ``D``'s decision.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from brokers import OptionFill
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable
from indicators import Estimator, realized_vol
from indicators.vol_signals import vrp_signals
from pricing import implied_vol_chain
from pricing.forwards import carry_forward
from strategies.base import StrategyParams
from strategies.evaluation import signal_evaluation
from strategies.option_strategy import ChainPlugin, ChainStrategy, ComboPosition
from strategies.params import AccountRisk, ExitDte, MaxContracts, StopLoss, TakeProfit
from strategies.risk import (
    OptionRiskMixin,
    VolManagedSizer,
    max_loss_contracts,
)

__all__ = [
    "VrpHarvest",
    "VrpHarvestParams",
    "VrpHarvestStrategy",
    "VrpPosition",
    "snapshot_atm_iv",
    "vrp_signal_table",
]

class VrpHarvestParams(StrategyParams):
    """Parameters of ``vrp_harvest`` (searchable ones in :attr:`tunable`; ``chain_symbol``,
    ``root``, ``rate``, ``target_dte``, ``min_dte``, ``max_dte`` and ``settlement_source`` are
    fixed when :meth:`VrpHarvest.prepare` reads the chains).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the chain snapshots (``SPX``, ``SPY``) and option root traded
        (``SPXW``, ``SPX``, ``SPY``).
    rate : float
        Continuous rate (decimal) for forwards and implied vols.
    settlement_source : {"underlying", "chain"}
        What settles a leg left to expiry: the ``[data]`` daily open/close, or the chain's own
        underlying price on the expiry date.
    target_dte, min_dte, max_dte : int
        Calendar days to expiry: the expiry nearest ``target_dte`` inside ``[min_dte, max_dte]``
        gives the implied vol and is traded.
    structure : {"straddle", "strangle"}
        Sold structure: ATM straddle or ``strangle_delta`` strangle (Black-76 forward deltas).
    strangle_delta : float
        ``|delta|`` of the strangle's call and put, in ``(0, 0.5]``.
    rv_estimator : indicators.Estimator
        :func:`indicators.realized_vol` estimator (``close_to_close``, ``parkinson``,
        ``garman_klass``, ``rogers_satchell``, ``yang_zhang``).
    rv_window : int
        Sessions in the realized-vol forecast.
    z_window : int
        0: expanding z-score; ``>= 2``: rolling over that many previous quote dates.
    z_min_periods : int
        Expanding mode: past VRP values needed before a z-score exists.
    entry_z : float
        Sell when ``vrp_zscore >= entry_z`` (standard deviations).
    min_vrp : float
        And when ``vrp > min_vrp`` (decimal vol; default 0: options must be rich in level too).
    exit_dte : int
        Close when calendar days to expiry ``<= exit_dte``; must be ``< min_dte``.
    take_profit : float
        Close when the mid P&L reaches this decimal fraction of the credit (0.5).
    stop_loss : float
        Close when the mid loss reaches this decimal multiple of the credit (1.0); also the
        loss per unit budgeted by the sizing.
    sizing : {"max_loss", "vol_managed"}
        :func:`strategies.risk.max_loss_contracts` on the stop-defined loss, optionally scaled by
        the :class:`strategies.risk.VolManagedSizer` weight.
    account_risk : float
        Share of the equity risked per trade (decimal, 0.02 = 2%).
    max_contracts : int
        Cap on units per trade.
    vm_target_vol, vm_window : float, int
        Vol-managed sizing: target annualized vol (decimal) and return window (sessions).
    max_open : int
        Open positions at most (one per expiry).

    The risk layer's kill switch (``max_drawdown``) and daily-loss block (``max_daily_loss``)
    are not parameters: they come from the config's ``[risk]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "structure",
            "strangle_delta",
            "rv_estimator",
            "rv_window",
            "z_window",
            "z_min_periods",
            "entry_z",
            "min_vrp",
            "exit_dte",
            "take_profit",
            "stop_loss",
            "sizing",
            "account_risk",
            "max_contracts",
            "vm_target_vol",
            "vm_window",
            "max_open",
        }
    )

    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    settlement_source: Literal["underlying", "chain"] = "underlying"
    target_dte: int = Field(30, ge=1, le=365)
    min_dte: int = Field(14, ge=1, le=365)
    max_dte: int = Field(60, ge=1, le=365)
    structure: Literal["straddle", "strangle"] = "straddle"
    strangle_delta: float = Field(0.25, gt=0.0, le=0.5)
    rv_estimator: Estimator = "close_to_close"
    rv_window: int = Field(21, ge=2, le=504)
    z_window: int = Field(0, ge=0, le=1000)
    z_min_periods: int = Field(10, ge=2, le=1000)
    entry_z: float = Field(1.0, ge=-5.0, le=10.0)
    min_vrp: float = Field(0.0, ge=-1.0, le=1.0)
    exit_dte: ExitDte = 7
    take_profit: Annotated[TakeProfit, Field(le=1.0)] = Field(
        0.5, description="decimal fraction of the credit received (mid P&L)"
    )
    stop_loss: StopLoss = Field(1.0, description="decimal multiple of the credit (mid loss)")
    sizing: Literal["max_loss", "vol_managed"] = "max_loss"
    account_risk: AccountRisk = 0.02
    max_contracts: MaxContracts = 10
    vm_target_vol: float = Field(0.15, gt=0.0, le=5.0)
    vm_window: int = Field(21, ge=2, le=504)
    max_open: int = Field(1, ge=1, le=20)

    @model_validator(mode="after")
    def _consistent(self) -> VrpHarvestParams:
        if not self.min_dte <= self.target_dte <= self.max_dte:
            raise ValueError(
                f"need min_dte <= target_dte <= max_dte, got {self.min_dte}, {self.target_dte}, "
                f"{self.max_dte}"
            )
        if self.exit_dte >= self.min_dte:
            raise ValueError(
                f"exit_dte ({self.exit_dte}) must be < min_dte ({self.min_dte}): a new position "
                "would be closed on its first day"
            )
        if self.z_window == 1:
            raise ValueError("z_window must be 0 (expanding) or >= 2")
        return self


# --------------------------------------------------------------------------------------
# signals (pure functions)
# --------------------------------------------------------------------------------------


def _expiries(snap: ChainSnapshot, p: VrpHarvestParams) -> list[dt.date]:
    """Listed expiries of ``p.root`` with ``min_dte <= dte <= max_dte``, nearest ``target_dte``
    first (ties: the earlier one).

    Raises
    ------
    data_feeds.chains.QuoteUnavailable
        No expiry in the band (``no_expiry``).
    """
    day = snap.quote_date
    inside = [
        e for e in snap.expiries(p.root) if p.min_dte <= (e - day).days <= p.max_dte and e > day
    ]
    if not inside:
        raise QuoteUnavailable(
            "no_expiry",
            f"no {p.root} expiry with {p.min_dte} <= dte <= {p.max_dte} in the snapshot of "
            f"{snap.quote_time}"
        )
    return sorted(inside, key=lambda e: (abs((e - day).days - p.target_dte), e))


def snapshot_atm_iv(
    snap: ChainSnapshot, expiration: dt.date, root: str, rate: float = 0.0
) -> tuple[float, str]:
    """ATM implied vol of one expiry and how it was obtained.

    Parameters
    ----------
    snap : ChainSnapshot
        The snapshot.
    expiration : datetime.date
        Expiry.
    root : str
        Option root.
    rate : float
        Continuous rate (decimal), used by the fallback.

    Returns
    -------
    implied_vol : float
        Decimal vol annualized on ACT/365 (``tte`` of :meth:`ChainSnapshot.tte`); NaN when
        neither method gives one.
    source : str
        ``"parity_forward"`` (:meth:`ChainSnapshot.atm_iv`: mean call/put Black-76 vol at the
        ATM strike of the put-call-parity forward), ``"nearest_strikes"`` (no parity forward:
        mean Black-76 vol (:func:`pricing.implied_vol_chain`) on the fallback forward
        :func:`pricing.forwards.carry_forward`
        ``S e^{rate tte}`` -- Black-Scholes on the spot with no dividend yield -- of the
        two-sided call and put whose strikes are nearest the snapshot's underlying price)
        or the reason it failed.
    """
    try:
        return float(snap.atm_iv(expiration, root)), "parity_forward"
    except QuoteUnavailable as exc:
        reason = f"{exc.reason}: {exc}"
    spot = float(snap.underlying_price)
    tte = snap.tte(expiration, root)
    side = snap.with_implied_vols(expiration, root)
    side = side[side["two_sided"]]
    vols = []
    for right in ("C", "P"):
        legs = side[side["right"] == right]
        if legs.empty or not (spot > 0 and tte > 0):
            return math.nan, f"no ATM IV: {reason}; no two-sided {right} for the fallback"
        row = legs.iloc[int(np.argmin(np.abs(legs["strike"].to_numpy(float) - spot)))]
        mid = 0.5 * (float(row["bid"]) + float(row["ask"]))
        # Black-76 on the suite's fallback forward S e^{rate tte} (pricing.carry_forward),
        # i.e. Black-Scholes on the spot with no dividend yield
        fwd = carry_forward(spot, tte, rate)
        strike = float(row["strike"])
        vols.append(float(implied_vol_chain(mid, fwd, strike, tte, rate, 0.0, right).vol))
    value = float(np.mean(vols))
    if not math.isfinite(value):
        return math.nan, f"no ATM IV: {reason}; fallback vol not computable"
    return value, "nearest_strikes"


def vrp_signal_table(
    atm: pd.DataFrame,
    underlying: pd.DataFrame,
    *,
    estimator: str,
    rv_window: int,
    z_window: int,
    z_min_periods: int,
) -> pd.DataFrame:
    """VRP and its past-only z-score per quote date.

    Parameters
    ----------
    atm : pandas.DataFrame
        Index: quote dates (tz-aware sessions); column ``atm_iv`` (decimal).
    underlying : pandas.DataFrame
        Validated daily OHLC of the underlying (tz-aware sessions).
    estimator, rv_window : str, int
        :func:`indicators.realized_vol` settings.
    z_window, z_min_periods : int
        :func:`indicators.vol_signals.vrp_signals` settings.

    Returns
    -------
    pandas.DataFrame
        ``atm_iv``, ``rv_forecast`` (realized vol through the session before the quote date,
        decimal annualized), ``vrp``, ``vrp_zscore`` on the quote dates of ``atm``.

    Raises
    ------
    ValueError
        A quote date is not a session of ``underlying``.
    """
    rv = realized_vol(underlying, estimator, rv_window).shift(1)
    missing = atm.index.difference(rv.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} quote dates are not sessions of the [data] underlying "
            f"(first {missing[0]:%Y-%m-%d})"
        )
    forecast = rv.reindex(atm.index).rename("rv_forecast")
    sig = vrp_signals(atm["atm_iv"], forecast, window=z_window, min_periods=z_min_periods)
    return pd.concat([atm["atm_iv"], forecast, sig], axis=1)


# --------------------------------------------------------------------------------------
# backtrader strategy
# --------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class VrpPosition(ComboPosition):
    """An open short straddle/strangle (:class:`~strategies.option_strategy.ComboPosition`:
    ``tag``, ``row``, ``trade_id``, ``closing_reason``, ``contract_set``) and its terms.

    Attributes
    ----------
    expiration : datetime.date
        Expiry of the legs.
    contracts : int
        Units sold.
    credit : float
        Per-unit credit received at the fills (index points / dollars per share, > 0).
    """

    expiration: dt.date
    contracts: int
    credit: float


class VrpHarvestStrategy(OptionRiskMixin, ChainStrategy):
    """backtrader face of ``vrp_harvest`` (module docstring, steps 4-6).

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : VrpHarvestParams
    signals : pandas.DataFrame
        :func:`vrp_signal_table` indexed by ``datetime.date``.
    returns : pandas.Series
        Daily close-to-close returns of the underlying indexed by ``datetime.date`` (sizing).
    last_day : datetime.date
        Last session of the window: positions are closed there, nothing opens.
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default ``RiskLimits()``).

    The decision on ``D`` reads only row ``D`` of the signal table (implied vol of ``D``'s
    snapshot, realized vol through ``D-1``, z-score against earlier dates) and returns before
    ``D``.
    """

    params = (("returns", None),)
    rules_cls = VrpHarvestParams
    counters = ("stale_mark_days", "exit_deferred", "settled_legs", "shares_closed")

    def __init__(self) -> None:
        super().__init__()
        self.returns: pd.Series = self.p.returns

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """Risk step, settlements, exits, then the entry decision."""
        day = snapshot.quote_date
        self.risk_step()
        self.finish_gone_positions(day)
        self._close_shares(snapshot)
        for tag in list(self.positions_open):
            self._manage(self.positions_open[tag], snapshot, day)
        row: dict[str, Any] = {"date": day, "open_positions": len(self.positions_open)}
        self.log_rows.append(row)
        self._decide(snapshot, day, row)

    def stop(self) -> None:
        """Log positions still open after the last bar; every row's ``net_pnl`` is its trade's
        in the book at the last marks (the window-end close, at those marks, keeps it)."""
        self.counts["settled_legs"] = len(self.obroker.option_settlements)
        self.book_positions_at_end()

    def _close_shares(self, snapshot: ChainSnapshot) -> None:
        """Sell/buy back shares delivered by physical settlement (SPY assignment) at the
        snapshot's underlying price (the book gives the cash to the trades holding the shares)."""
        broker = self.obroker
        price = float(snapshot.underlying_price)
        for symbol in list(broker.underlying_positions):
            if symbol != snapshot.underlying or not (math.isfinite(price) and price > 0):
                continue
            fill = broker.close_underlying(symbol, price, snapshot.quote_time, tag="assigned")
            self.counts["shares_closed"] += abs(fill.quantity)
        self.book.sync(broker)

    def _manage(self, pos: VrpPosition, snap: ChainSnapshot, day: dt.date) -> None:
        legs = self.combos.get(pos.tag, {})
        quoted = all(snap.has(c) and math.isfinite(snap.mid(c)) for c in legs)
        if not quoted:
            self.counts["stale_mark_days"] += 1
        reason = None
        if day >= self.last_day:
            reason = "window_end"
        elif (pos.expiration - day).days <= self.rules.exit_dte:
            reason = "dte"
        elif quoted:
            cost_to_close = -sum(q * snap.mid(c) for c, q in legs.items()) / pos.contracts
            pnl = pos.credit - cost_to_close
            if pnl >= self.rules.take_profit * pos.credit:
                reason = "take_profit"
            elif -pnl >= self.rules.stop_loss * pos.credit:
                reason = "stop_loss"
        if reason is None:
            return
        if not all(snap.has(c) and float(snap.row(c)["ask"]) > 0 for c in legs):
            self.counts["exit_deferred"] += 1
            return
        self.close_combo(pos.tag)
        pos.closing_reason = pos.closing_reason or reason
        if pos.tag not in self.combos:
            self.finish_position(pos, day)

    def _decide(self, snap: ChainSnapshot, day: dt.date, row: dict[str, Any]) -> None:
        r = self.rules
        if day not in self.signals.index:
            row["status"] = "no_signal"
            return
        sig = self.signals.loc[day]
        row.update({k: float(sig[k]) for k in ("atm_iv", "rv_forecast", "vrp", "vrp_zscore")})
        z, vrp = float(sig["vrp_zscore"]), float(sig["vrp"])
        if day >= self.last_day:
            row["status"] = "window_end"
        elif not math.isfinite(z):
            row["status"] = "no_zscore"
        elif z < r.entry_z or not vrp > r.min_vrp:
            row["status"] = "below_threshold"
        elif len(self.positions_open) >= r.max_open:
            row["status"] = "max_open"
        elif self.risk_blocked():
            row["status"] = "risk_blocked"
        else:
            self._enter(snap, day, row)

    def _enter(self, snap: ChainSnapshot, day: dt.date, row: dict[str, Any]) -> None:
        r = self.rules
        exp = self.signals.at[day, "iv_expiry"]
        try:
            combo: Combo = (
                snap.straddle(exp, r.root)
                if r.structure == "straddle"
                else snap.strangle(exp, r.root, delta=r.strangle_delta)
            )
            quotes = [snap.row(c) for c, _ in combo.legs]
        except QuoteUnavailable as exc:
            self.count_unavailable(exc, row)
            row.update(status="no_combo", detail=str(exc))
            return
        if any(exp == p.expiration for p in self.positions_open.values()):
            row["status"] = "expiry_held"
            return
        if not all(float(q["bid"]) > 0 for q in quotes):
            row["status"] = "no_bid"
            return
        mult = combo.legs[0][0].multiplier
        frac = self.obroker.costs.slippage_spread_fraction
        credit_est = sum(  # expected sale price: mid minus frac of the spread (the broker's rule)
            0.5 * (float(q["bid"]) + float(q["ask"])) - frac * (float(q["ask"]) - float(q["bid"]))
            for q in quotes
        )
        commission = 2 * len(combo.legs) * self.obroker.costs.commission_per_contract
        loss_unit = r.stop_loss * credit_est * mult + commission
        contracts = max_loss_contracts(
            self.broker.getvalue(), r.account_risk, loss_unit, max_contracts=r.max_contracts
        )
        weight = 1.0
        if r.sizing == "vol_managed":
            past = self.returns[self.returns.index < day]
            sizer = VolManagedSizer(target_vol=r.vm_target_vol, window=r.vm_window)
            weight = sizer.weight(past.to_numpy()) if len(past) >= r.vm_window else math.nan
            contracts = math.floor(contracts * weight) if math.isfinite(weight) else 0
        row.update(
            expiration=exp,
            dte=(exp - day).days,
            strikes="/".join(f"{c.strike:g}{c.right}" for c, _ in combo.legs),
            loss_budget_per_unit=loss_unit,
            size_weight=weight,
            contracts=contracts,
        )
        if contracts < 1:
            row["status"] = "size_zero"
            return
        tag = f"vrp {day:%Y-%m-%d}"
        fills = self.open_combo(combo, -contracts, tag=tag)
        if not fills:
            row.update(status="rejected", detail=self.rejections[-1][2] if self.rejections else "")
            return
        credit = -_unit_price(fills, contracts)
        row.update(status="open", credit=credit, cash_open=sum(f.cash_flow for f in fills))
        self.positions_open[tag] = VrpPosition(
            tag=tag,
            expiration=exp,
            contracts=contracts,
            credit=credit,
            row=row,
            trade_id=int(self.last_trade_id or 0),
            contract_set=frozenset(c for c, _ in combo.legs),
        )


def _unit_price(fills: Sequence[OptionFill], contracts: int) -> float:
    """Per-unit signed fill price (> 0 paid, < 0 received), excluding commissions."""
    return sum(f.quantity * f.price for f in fills) / contracts


# --------------------------------------------------------------------------------------
# plugin
# --------------------------------------------------------------------------------------


SIGNAL_KEYS = ("rv_estimator", "rv_window", "z_window", "z_min_periods")
"""Parameters of the VRP table (:meth:`VrpHarvest.signals`), in the order of its key."""


class VrpHarvest(ChainPlugin):
    """Plugin: ATM IV per quote date, VRP z-scores for the search space, one Cerebro per window.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params.
    """

    name = "vrp_harvest"
    description = "Sell ATM straddles/strangles when the chain's VRP z-score is high"
    Params = VrpHarvestParams
    required_data = ("underlying", "chains")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss"})
    strategy_cls = VrpHarvestStrategy
    signal_source = "signals"
    signals_as_records = False

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """ATM IV of every quote date and the VRP table of every searched signal setting.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated daily OHLC) and ``chains`` (a
            :class:`data_feeds.chain_store.ChainStore` or any snapshot source).
        grid : mapping
            Searched parameter -> candidate values.

        Raises
        ------
        ValueError
            A load-time parameter is searched; no quote date inside the underlying's sessions;
            no quote date with an ATM implied vol.
        """
        p = self.setup_chains(data, grid, quote_dates=False)
        assert isinstance(p, VrpHarvestParams)
        index = self.underlying.index
        sessions = {d: ts for ts, d in zip(index, index.date, strict=True)}
        all_dates = self.source.quote_dates(p.chain_symbol, [p.root])
        dates = [d for d in all_dates if d in sessions and d > index[0].date()]
        if not dates:
            raise ValueError(
                f"no {p.chain_symbol}/{p.root} quote date inside the underlying's sessions "
                f"{index[0]:%Y-%m-%d}..{index[-1]:%Y-%m-%d} ({len(all_dates)} stored)"
            )
        if len(all_dates) > len(dates):
            self.reports.append(
                f"{len(all_dates) - len(dates)} quote dates outside the underlying's sessions"
            )
        rows, chain_px = [], {}
        for d in dates:
            snap = self.source.snapshot(p.chain_symbol, d, None, [p.root], False, p.rate)
            chain_px[sessions[d]] = float(snap.underlying_price)
            try:
                candidates = _expiries(snap, p)
            except QuoteUnavailable as exc:
                rows.append({"date": sessions[d], "atm_iv": math.nan, "iv_source": str(exc)})
                continue
            # nearest expiry to target_dte with an ATM IV (sparse ladders lack a side some days)
            for exp in candidates:
                iv, how = snapshot_atm_iv(snap, exp, p.root, p.rate)
                if math.isfinite(iv):
                    break
            rows.append({"date": sessions[d], "atm_iv": iv, "iv_source": how, "iv_expiry": exp})
        atm = pd.DataFrame(rows).set_index("date")
        self.atm = atm
        counts = (
            atm["iv_source"]
            .where(atm["iv_source"].isin(["parity_forward", "nearest_strikes"]), "missing")
            .value_counts()
        )
        self.reports.append(
            f"ATM IV on {len(atm)} quote dates: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        if not atm["atm_iv"].notna().any():
            raise ValueError(f"no {p.chain_symbol}/{p.root} quote date has an ATM implied vol")
        self.chain_price = pd.Series(chain_px, name="chain")
        for c in self.grid_combos(grid, p, SIGNAL_KEYS):
            self._table(c["rv_estimator"], *(int(c[k]) for k in SIGNAL_KEYS[1:]))
        self.returns = self.underlying["close"].pct_change().dropna()
        self.returns.index = self.returns.index.date
        if p.settlement_source == "chain":
            self.settlement = pd.DataFrame({"open": self.chain_price, "close": self.chain_price})
        else:
            self.settlement = self.underlying[["open", "close"]]
        self.quote_dates = [d for d in dates if math.isfinite(atm.at[sessions[d], "atm_iv"])]

    def _table(self, est: str, window: int, z_window: int, z_min: int) -> pd.DataFrame:
        key = (est, window, z_window, z_min)
        if key not in self._tables:
            table = vrp_signal_table(
                self.atm[["atm_iv"]],
                self.underlying,
                estimator=est,
                rv_window=window,
                z_window=z_window,
                z_min_periods=z_min,
            )
            table["iv_expiry"] = self.atm["iv_expiry"]
            table.index = table.index.date
            self._tables[key] = table
        return self._tables[key]

    def signals(self, params: VrpHarvestParams | None = None) -> pd.DataFrame:
        """The VRP table of ``params`` (default: the fixed parameters), index ``datetime.date``."""
        p = params or self.base
        return self._table(p.rv_estimator, p.rv_window, p.z_window, p.z_min_periods)

    def data_fingerprint(self) -> str:
        """Hash of the underlying bars and the chain's ATM implied vols."""
        return self.fingerprint_with(self.atm[["atm_iv"]].fillna(-1.0), sep="-")

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """``vrp/atm_iv.csv`` (per quote date, with the IV source) and ``vrp/signals.csv`` (the
        fixed parameters' VRP table); returns the share of quote dates with an ATM IV."""
        out = Path(folder) / "vrp"
        out.mkdir(parents=True, exist_ok=True)
        self.atm.to_csv(out / "atm_iv.csv", index_label="date")
        self.signals().to_csv(out / "signals.csv", index_label="date")
        return {"vrp_atm_iv_coverage": float(self.atm["atm_iv"].notna().mean())}


    # -- model evaluation (issue 13: signal hit rates) --------------------------------------------
    #: Statuses a log row reaches only after the entry signal fired (``vrp_zscore >= entry_z``
    #: and ``vrp > min_vrp``); the trade is booked on the row as ``traded`` / ``open_at_end``.
    ENTRY_STATUSES = frozenset(
        {"max_open", "risk_blocked", "no_combo", "expiry_held", "no_bid", "size_zero",
         "rejected", "open", "traded", "open_at_end"}
    )
    #: Statuses of rows whose signal did not fire or was not evaluated.
    NO_ENTRY_STATUSES = frozenset(
        {"no_signal", "window_end", "no_zscore", "below_threshold"}
    )
    #: Edges of the ``vrp_zscore`` buckets of ``signal_buckets`` (left-closed).
    ZSCORE_EDGES = (-np.inf, 0.0, 1.0, 2.0, 3.0, np.inf)

    def model_evaluation(self, daily_log: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Hit rates of the entry signal, overall and by ``vrp_zscore`` bucket.

        Parameters
        ----------
        daily_log : pandas.DataFrame
            Stitched out-of-sample daily log (``status``, ``vrp_zscore``, ``net_pnl`` in dollars
            on each position's entry row, at the last marks for one still open at the end).

        Returns
        -------
        dict[str, pandas.DataFrame]
            ``signal_hit_rates`` and ``signal_buckets`` of
            :func:`strategies.evaluation.signal_evaluation` (:attr:`ENTRY_STATUSES` signalled,
            buckets :attr:`ZSCORE_EDGES` of ``vrp_zscore``).
        """
        return signal_evaluation(
            daily_log,
            entry_statuses=self.ENTRY_STATUSES,
            other_statuses=self.NO_ENTRY_STATUSES,
            signal_column="vrp_zscore",
            edges=self.ZSCORE_EDGES,
        )
