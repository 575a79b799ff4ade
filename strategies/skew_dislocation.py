"""``skew_dislocation``: the 25-delta risk reversal against the skew the return history implies.

From design document ``000`` ("Skew Dislocation": 25-delta call vs put IV against the skew
expected from the overnight return distribution) and issue 5. On each quote date ``D``:

1. **Market skew** (``D``'s snapshot only): ``risk_reversal_25d`` of the ``root`` expiry nearest
   ``target_dte`` (:meth:`data_feeds.chains.ChainSnapshot.risk_reversal_25d`, decimal vol,
   negative for the usual put skew), and the listed strikes nearest Black-76 delta +0.25 (call)
   and -0.25 (put) (:meth:`~data_feeds.chains.ChainSnapshot.strike_by_delta`).
2. **Realized skewness** ``x_D``: the sample skewness (:func:`scipy.stats.skew`, ``bias=False``)
   of the last ``skew_window`` log returns of the ``[data]`` underlying known at the 15:45
   snapshot: close-to-close returns up to ``D-1`` (``returns = "daily"``) or overnight returns
   ``ln(open_t / close_{t-1})`` up to ``t = D`` (``returns = "overnight"``; ``D``'s open is
   printed at 09:30, before the snapshot).
3. **Expected skew**, fitted on *past* quote dates only (the last ``fit_window`` dates before
   ``D`` with both values, at least ``min_fit``):

   * ``model = "regression"``: OLS ``rr_d = a + b x_d``; ``expected_D = a + b x_D``;
     ``scale`` = residual standard deviation (``ddof = 2``);
   * ``model = "mean"``: ``expected_D`` = mean of the past ``rr_d``; ``scale`` = their standard
     deviation (``ddof = 1``).

   ``gap = rr_D - expected_D`` (decimal vol), ``z = gap / scale``.
4. **Trade** (one position at a time): ``z > entry_z`` (calls rich against puts relative to the
   model) sells the risk reversal (short 25-delta call, long 25-delta put); ``z < -entry_z``
   buys it. Closed at bid/ask when ``z`` is back inside ``exit_z`` (``reverted``), after
   ``max_hold_days`` snapshots (``time``), at ``exit_dte`` days to expiry (``dte``) or at the end of
   the window (``window_end``). Optionally delta-hedged every bar with the underlying by
   :class:`strategies.hedging.DeltaHedger` (``delta_hedge``), whose P&L split (option, hedge,
   costs) is returned in the backtest info.
5. **Risk layer** (:mod:`strategies.risk`, ``docs/risk.md``; :class:`OptionRiskMixin` first in
   the MRO, before :class:`~strategies.hedging.DeltaHedgedStrategy`), first thing each bar:

   * ``max_drawdown`` kill switch: the book is flattened at the snapshot (option legs at
     bid/ask, hedge shares at the snapshot's underlying price), every later entry is refused
     and the hedger stops trading; ``max_daily_loss`` refuses entries for the rest of the
     session;
   * ``stop_loss``: the position is closed when its P&L since entry (legs at the broker's mid
     marks, net of the costs paid, plus the hedge's P&L since entry) reaches ``-stop_loss`` x
     the **gross premium** of its legs at the fills (``sum |q| price multiplier``): a risk
     reversal has no bounded maximum loss (the short call) and its net premium can be ~0, so
     the gross premium is the scale, as the credit is for ``vrp_harvest``'s short straddle;
   * ``sizing = "max_loss"``: units from :func:`strategies.risk.max_loss_contracts` on the
     stop-defined loss per unit ``stop_loss * gross premium * multiplier`` + round-trip
     commission, gross premium at the broker's fill rule; ``"fixed"`` (default): ``contracts``.

See ``docs/strategies/skew_dislocation.md`` for limits (56 quote dates; the model is fitted on
~10-20 points).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from brokers.cost_config import CostsConfig
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable
from data_feeds.contracts import OptionQuote
from indicators.regression import OUTPUTS as OLS_OUTPUTS
from indicators.regression import PastOLS, past_ols
from indicators.skewness import RealizedSkewness, rolling_skewness
from strategies.base import StrategyParams
from strategies.hedging import DeltaHedgedStrategy, HedgeConfig
from strategies.option_strategy import ChainPlugin, ChainStrategy
from strategies.params import AccountRisk, Contracts, ExitDte, MaxContracts, MaxHoldDays, StopLoss
from strategies.risk import (
    OptionRiskMixin,
    PositionRisk,
    RiskConfig,
    RiskLimits,
    max_loss_contracts,
)

__all__ = [
    "SkewDislocation",
    "SkewDislocationParams",
    "SkewDislocationStrategy",
    "expected_skew",
    "realized_skewness",
    "skew_returns",
    "snapshot_skew",
]


def snapshot_skew(snapshot: ChainSnapshot, root: str, target_dte: float) -> dict[str, Any]:
    """25-delta risk reversal and 25-delta strikes of the expiry nearest ``target_dte``.

    Parameters
    ----------
    snapshot : ChainSnapshot
        One chain snapshot.
    root : str
        Option root.
    target_dte : float
        Calendar days.

    Returns
    -------
    dict
        ``status`` (``ok`` or ``no_expiry`` / ``no_risk_reversal`` / ``no_strikes`` with
        ``reason``), ``expiration``, ``dte``, ``risk_reversal_25d`` (decimal vol),
        ``call_strike``, ``put_strike`` (index points).
    """
    out: dict[str, Any] = {
        "status": "ok",
        "reason": "",
        "expiration": None,
        "dte": math.nan,
        "risk_reversal_25d": math.nan,
        "call_strike": math.nan,
        "put_strike": math.nan,
    }
    try:
        exp = snapshot.nearest_expiry(target_dte, root)
    except QuoteUnavailable as exc:
        return {**out, "status": "no_expiry", "reason": f"{exc.reason}: {exc}"}
    out.update(expiration=exp, dte=(exp - snapshot.quote_date).days)
    try:
        out["risk_reversal_25d"] = snapshot.risk_reversal_25d(exp, root)
    except QuoteUnavailable as exc:
        return {**out, "status": "no_risk_reversal", "reason": f"{exc.reason}: {exc}"}
    try:
        out["call_strike"] = snapshot.strike_by_delta(exp, root, "C", 0.25)
        out["put_strike"] = snapshot.strike_by_delta(exp, root, "P", -0.25)
    except QuoteUnavailable as exc:
        return {**out, "status": "no_strikes", "reason": f"{exc.reason}: {exc}"}
    return out


def skew_returns(
    ohlc: pd.DataFrame, returns: Literal["daily", "overnight"] = "overnight"
) -> pd.Series:
    """Log returns known at each session's afternoon snapshot (input of the skewness).

    Parameters
    ----------
    ohlc : pandas.DataFrame
        Daily ``open`` and ``close`` (index points), session index.
    returns : {"daily", "overnight"}
        ``daily``: at ``D`` the close-to-close return of ``D-1`` (``ln(close_{D-1} /
        close_{D-2})``); ``overnight``: ``ln(open_D / close_{D-1})`` (``D``'s open is printed
        at 09:30, before the 15:45 snapshot).

    Returns
    -------
    pandas.Series
        Natural-log returns on ``ohlc``'s index (NaN where not yet defined).

    Raises
    ------
    ValueError
        An unknown ``returns``.
    """
    close = ohlc["close"].astype(float)
    if returns == "daily":
        return np.log(close / close.shift(1)).shift(1)  # known at D: up to D-1
    if returns == "overnight":
        return np.log(ohlc["open"].astype(float) / close.shift(1))
    raise ValueError(f"returns must be 'daily' or 'overnight', got {returns!r}")


def realized_skewness(
    ohlc: pd.DataFrame, window: int, returns: Literal["daily", "overnight"] = "overnight"
) -> pd.Series:
    """Sample skewness of the log returns known at each session's afternoon snapshot.

    Parameters
    ----------
    ohlc : pandas.DataFrame
        Daily ``open`` and ``close`` (index points), session index.
    window : int
        Returns per estimate (>= 3).
    returns : {"daily", "overnight"}
        :func:`skew_returns`: ``daily`` uses ``ln(close_t / close_{t-1})`` for ``t <= D-1``;
        ``overnight`` uses ``ln(open_t / close_{t-1})`` for ``t <= D``.

    Returns
    -------
    pandas.Series
        Unitless skewness (:func:`indicators.skewness.rolling_skewness_nb`, equal to
        :func:`scipy.stats.skew` with ``bias=False``), NaN until ``window`` returns exist.

    Raises
    ------
    ValueError
        ``window < 3`` or an unknown ``returns``.
    """
    if window < 3:
        raise ValueError(f"window must be >= 3 returns, got {window}")
    out = rolling_skewness(skew_returns(ohlc, returns), window)
    return out.rename(f"realized_skew_{returns}_{window}")


def expected_skew(
    rr: np.ndarray,
    x: np.ndarray,
    *,
    model: Literal["regression", "mean"] = "regression",
    fit_window: int = 15,
    min_fit: int = 10,
) -> pd.DataFrame:
    """Expected risk reversal at each point, fitted on earlier points only.

    Parameters
    ----------
    rr : numpy.ndarray, shape (n,)
        Risk reversal per quote date (decimal vol), ascending dates.
    x : numpy.ndarray, shape (n,)
        Realized skewness per quote date (same order).
    model : {"regression", "mean"}
        See the module docstring.
    fit_window : int
        At most this many earlier points with both values finite.
    min_fit : int
        At least this many (>= 3).

    Returns
    -------
    pandas.DataFrame
        ``n`` rows: ``expected``, ``gap`` (``rr - expected``), ``scale``, ``z``, ``n_fit``,
        ``intercept``, ``slope`` (NaN for ``mean``). Rows without enough history are NaN.

    Raises
    ------
    ValueError
        Shapes differ, ``min_fit < 3`` or ``fit_window < min_fit``.

    Notes
    -----
    :func:`indicators.regression.past_ols` (numba kernel
    :func:`~indicators.regression.past_ols_nb`); checked against ``statsmodels.OLS``.
    """
    return past_ols(rr, x, model=model, fit_window=fit_window, min_fit=min_fit)


class SkewDislocationParams(StrategyParams):
    """Parameters of ``skew_dislocation`` (searchable ones in :attr:`tunable`; ``chain_symbol``,
    ``root``, ``rate`` and ``target_dte`` are fixed when :meth:`SkewDislocation.prepare` reads
    the snapshots).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the snapshots (``SPX``) and root traded (``SPXW``).
    rate : float
        Continuous rate (decimal) for forwards, vols and deltas.
    target_dte : float
        Calendar days to the expiry traded (DTE; nearest listed, 30).
    returns : {"overnight", "daily"}
        Returns of the realized skewness (:func:`realized_skewness`).
    skew_window : int
        Returns per skewness estimate (sessions).
    model : {"regression", "mean"}
        Expected-skew model (:func:`expected_skew`).
    fit_window, min_fit : int
        Past quote dates in the fit (at most / at least).
    entry_z, exit_z : float
        Open when ``|z| > entry_z``; close when ``side_z <= exit_z`` (``exit_z < entry_z``;
        z units: standard deviations of the skew residual).
    max_hold_days : int
        Sessions: close after this many daily chain snapshots (one per stored quote date; a
        session without a stored chain is not counted).
    exit_dte : int
        Close at this many calendar days to expiry or fewer.
    contracts : int
        Risk reversals per trade with ``sizing = "fixed"``.
    sizing : {"fixed", "max_loss"}
        ``fixed``: ``contracts``; ``max_loss``: :func:`strategies.risk.max_loss_contracts` of
        ``account_risk`` on the stop-defined loss per unit (module docstring, step 5; needs
        ``stop_loss``), capped at ``max_contracts``.
    account_risk : float
        Share of the equity a position may lose at its stop (decimal, 0.02 = 2%).
    max_contracts : int
        Cap on units per trade with ``sizing = "max_loss"``.
    stop_loss : float, optional
        Close the position when its P&L since entry (options + hedge, dollars) is
        ``<= -stop_loss`` x the gross premium of its legs at entry; ``None``: no stop.
    delta_hedge : bool
        Hedge the book delta every bar with the underlying
        (:class:`strategies.hedging.DeltaHedger`).
    hedge_rule : {"interval", "band", "whalley_wilmott"}
        Hedge rule (:class:`strategies.hedging.HedgeConfig`; ``interval`` = every bar).

    The kill switch (``max_drawdown``), daily-loss block (``max_daily_loss``) and the hedge's
    costs are not parameters: they come from the config's ``[risk]`` / ``[costs]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "returns",
            "skew_window",
            "model",
            "fit_window",
            "min_fit",
            "entry_z",
            "exit_z",
            "max_hold_days",
            "exit_dte",
            "contracts",
            "sizing",
            "account_risk",
            "max_contracts",
            "stop_loss",
            "delta_hedge",
            "hedge_rule",
        }
    )

    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    target_dte: float = Field(30.0, ge=1.0, le=365.0)
    returns: Literal["overnight", "daily"] = "overnight"
    skew_window: int = Field(63, ge=5, le=1000)
    model: Literal["regression", "mean"] = "regression"
    fit_window: int = Field(15, ge=3, le=500)
    min_fit: int = Field(10, ge=3, le=500)
    entry_z: float = Field(1.0, gt=0.0, le=10.0)
    exit_z: float = Field(0.0, ge=-10.0, le=10.0)
    max_hold_days: MaxHoldDays = 5
    exit_dte: ExitDte = 7
    contracts: Contracts = 1
    sizing: Literal["fixed", "max_loss"] = "fixed"
    account_risk: AccountRisk = 0.02
    max_contracts: MaxContracts = 10
    stop_loss: StopLoss | None = Field(
        None,
        description=(
            "decimal multiple of the gross premium of the legs at entry (options + hedge P&L); "
            "None: no stop"
        ),
    )
    delta_hedge: bool = True
    hedge_rule: Literal["interval", "band", "whalley_wilmott"] = "interval"

    @model_validator(mode="after")
    def _consistent(self) -> SkewDislocationParams:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be < entry_z ({self.entry_z})")
        if self.min_fit > self.fit_window:
            raise ValueError(f"min_fit ({self.min_fit}) must be <= fit_window ({self.fit_window})")
        if self.exit_dte >= self.target_dte:
            raise ValueError("exit_dte must be < target_dte")
        if self.sizing == "max_loss" and self.stop_loss is None:
            raise ValueError(
                "sizing = 'max_loss' needs stop_loss: a risk reversal's loss is unbounded, the "
                "loss budgeted per unit is the stop"
            )
        return self

    def risk_config(self, limits: RiskLimits) -> RiskConfig:
        """The :class:`strategies.risk.RiskConfig` of the config's ``limits`` (kill switch,
        daily loss) and this strategy's position stop."""
        return limits.risk_config(stop_loss=self.stop_loss)

    def hedge_config(self, costs: CostsConfig) -> HedgeConfig:
        """The :class:`strategies.hedging.HedgeConfig` of these parameters and the config's
        hedge ``costs``."""
        return HedgeConfig(
            rule=self.hedge_rule,
            half_spread=costs.hedge_half_spread,
            commission_per_share=costs.hedge_commission_per_share,
        )


class SkewDislocationStrategy(OptionRiskMixin, DeltaHedgedStrategy, ChainStrategy):
    """backtrader face: one risk reversal at a time, optionally delta-hedged, under the risk
    layer (module docstring, step 5).

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : SkewDislocationParams
    signals : mapping of datetime.date to dict
        Per quote date: :func:`snapshot_skew` fields plus ``z`` (:func:`expected_skew`).
    last_day : datetime.date, optional
        Last session of the window (the position is closed there, nothing opens).
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default ``RiskLimits()``).
    hedge : HedgeConfig
        Used when ``rules.delta_hedge``.

    The decision of ``D`` reads ``signals[D]`` (``D``'s snapshot, returns known at 15:45 on
    ``D``, a model fitted on earlier dates) and ``D``'s quotes. ``log_rows``: one row per bar,
    the entry day's row gets ``status = "traded"`` with ``exit_date``, ``exit_reason`` and
    ``net_pnl`` (its trade in :attr:`book`, dollars: option fills, its share of settlements and
    its hedge: one risk reversal is open at a time, so each hedge share trade is tagged with it,
    :meth:`hedge_tag`, and the book allocates it there; shares still held when it closes are
    unwound by the next hedge and go to it too, as the holder; read after the last bar, once the
    hedge is unwound, :meth:`stop`); ``trades``: one row per risk reversal (``contracts``,
    ``basis`` = gross premium at the fills, ``option_pnl`` = its legs' P&L, ``hedge_pnl`` =
    ``net_pnl - option_pnl``, dollars). Exit reasons added by the risk layer:
    ``kill_switch`` and ``stop_loss``; a blocked entry is logged ``risk_blocked``.
    """

    rules_cls = SkewDislocationParams
    counters = ("exit_deferred",)
    trade_fields_hidden = ("bars", "row", "hedge_base")
    sync_on_finish = True  # the hedge's share trades placed since the last sync belong to it

    def __init__(self) -> None:
        super().__init__()
        self._traded_rows: list[dict[str, Any]] = []  # log row of each entry of trades

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """Risk step (kill switch, stop), :meth:`next_options`, then the hedge when
        ``delta_hedge`` and the kill switch is off (a killed book is flat: re-hedging what the
        flatten left would only be unwound again on the next bar)."""
        self.risk_step()
        self.next_options(snapshot)
        if self.rules.delta_hedge and not self.risk.killed:
            self.hedger.hedge(self, snapshot, tag=self.hedge_tag())

    def hedge_tag(self) -> str:
        """The open risk reversal's tag (one at a time: its hedge is allocated to its trade in
        :attr:`book`); :data:`strategies.hedging.HEDGE_TAG` when flat (an unwind of leftover
        shares then goes to the trade holding them)."""
        t = self.open_trade
        return t["tag"] if t is not None else super().hedge_tag()

    def risk_positions(self) -> list[PositionRisk]:
        """The open risk reversal for the stop rule: P&L = its trade in the risk ledger
        (:class:`TagLedger`: legs at cash + mid marks, and its hedge shares, tagged with it)
        + any untagged share P&L since entry (ledger tag ``""``); basis = gross premium at the
        fills (dollars). Empty without ``stop_loss``."""
        t = self.open_trade
        if t is None or self.rules.stop_loss is None or t["tag"] not in self.combos:
            return []
        broker = self.obroker
        self.risk_ledger.sync(broker)
        hedge = self.risk_ledger.pnl("", broker) - t["hedge_base"]
        return [PositionRisk(t["tag"], self.risk_ledger.pnl(t["tag"], broker) + hedge, t["basis"])]

    def _size(self, combo: Combo, side: int, snapshot: ChainSnapshot) -> tuple[int, float]:
        """Units and the loss budgeted per unit (dollars) under ``sizing = "max_loss"``:
        ``stop_loss * sum |q| fill_price * multiplier + 2 * legs * commission`` with the
        broker's fill rule (:meth:`brokers.costs.OptionCostModel.fill_price`)."""
        r = self.rules
        costs = self.obroker.costs
        gross = 0.0
        for c, q in combo.legs:
            row = snapshot.row(c)
            quote = OptionQuote(float(row["bid"]), float(row["ask"]))
            gross += abs(q) * costs.fill_price(quote, q * side, c.root) * c.multiplier
        assert r.stop_loss is not None  # the params validator
        loss = r.stop_loss * gross + 2 * len(combo.legs) * costs.commission_per_contract
        if not (math.isfinite(loss) and loss > 0):
            return 0, loss
        n = max_loss_contracts(
            self.broker.getvalue(), r.account_risk, loss, max_contracts=r.max_contracts
        )
        return n, loss

    def next_options(self, snapshot: ChainSnapshot) -> None:
        """Manage the open risk reversal, then decide on a new one."""
        day = snapshot.quote_date
        sig = self.signals.get(day, {})
        z = float(sig.get("z", math.nan))
        row: dict[str, Any] = {"date": day, "z": z, "signal": sig.get("status")}
        self.log_rows.append(row)
        if self.open_trade is not None:
            self._manage(day, z, row)
            if self.open_trade is not None or row.get("exit_reason") == "stop_loss":
                return  # still open, or stopped out on this snapshot: no re-entry on it
        if day >= self.last_day:
            row.setdefault("status", "window_end")
            return
        if sig.get("status") != "ok" or not math.isfinite(z):
            row.setdefault("status", "no_signal")
            return
        r = self.rules
        side = -1 if z > r.entry_z else (1 if z < -r.entry_z else 0)
        if side == 0:
            row.setdefault("status", "stand_aside")
            return
        try:
            exp = sig["expiration"]
            combo = snapshot.combo(
                "risk_reversal_25d",
                [
                    (snapshot.contract(r.root, exp, sig["call_strike"], "C"), 1),
                    (snapshot.contract(r.root, exp, sig["put_strike"], "P"), -1),
                ],
            )
        except QuoteUnavailable as exc:
            self.count_unavailable(exc, row)
            row["status"] = "not_quoted"
            return
        if self.risk_blocked():
            row["status"] = "risk_blocked"
            return
        contracts = r.contracts
        if r.sizing == "max_loss":
            contracts, loss = self._size(combo, side, snapshot)
            row.update(loss_budget_per_unit=loss, contracts=contracts)
            if contracts < 1:
                row["status"] = "size_zero"
                return
        tag = f"rr {day:%Y-%m-%d}"
        broker = self.obroker
        self.risk_ledger.sync(broker)
        hedge_base = self.risk_ledger.pnl("", broker)
        fills = self.open_combo(combo, side * contracts, tag=tag)
        if not fills:
            row["status"] = "rejected"
            return
        self.open_trade = {
            "tag": tag,
            "trade_id": int(self.last_trade_id or 0),
            "side": side,
            "entry_date": day,
            "entry_z": z,
            "expiration": exp,
            "call_strike": float(sig["call_strike"]),
            "put_strike": float(sig["put_strike"]),
            "contracts": contracts,
            "basis": sum(abs(f.quantity) * f.price * f.contract.multiplier for f in fills),
            "hedge_base": hedge_base,
            "bars": 0,
            "row": row,
        }
        row.update(status="opened", side=side)

    def _manage(self, day: dt.date, z: float, row: dict[str, Any]) -> None:
        t = self.open_trade
        assert t is not None
        t["bars"] += 1
        if t["tag"] not in self.combos:  # closed by the risk layer this bar, or settled
            stops = {a.name for a in self.risk.events if a.kind == "stop_position"}
            reason = (
                "kill_switch"
                if self.risk.killed
                else ("stop_loss" if t["tag"] in stops else "settled")
            )
            if reason != "settled":
                row.update(status="closed", exit_reason=reason)
            self.finish_trade(day, reason)
            return
        r = self.rules
        reason = None
        if day >= self.last_day:
            reason = "window_end"
        elif (t["expiration"] - day).days <= r.exit_dte:
            reason = "dte"
        elif t["bars"] >= r.max_hold_days:
            reason = "time"
        elif math.isfinite(z) and -t["side"] * z <= r.exit_z:
            reason = "reverted"
        if reason is None:
            row["status"] = "holding"
            return
        self.close_combo(t["tag"])
        if t["tag"] in self.combos:
            self.counts["exit_deferred"] += 1
            row["status"] = "exit_deferred"
            return
        row.update(status="closed", exit_reason=reason)
        self.finish_trade(day, reason)

    def finish_trade(self, day: dt.date, reason: str) -> None:
        """:meth:`ChainStrategy.finish_trade`, the record split into ``option_pnl`` (the legs'
        fills, settlements and open legs at the marks, dollars:
        :meth:`strategies.book.Trade.option_pnl`) and ``hedge_pnl`` (the rest: the delta hedge
        tagged to this risk reversal). Both are refreshed by :meth:`stop` once the hedge is
        unwound."""
        t = self.open_trade
        assert t is not None
        row = t["row"]
        super().finish_trade(day, reason)
        rec = self.trades[-1]
        rec["option_pnl"] = self.book.trade(rec["trade_id"]).option_pnl(self.obroker)
        rec["hedge_pnl"] = rec["net_pnl"] - rec["option_pnl"]
        self._traded_rows.append(row)

    def stop(self) -> None:
        """A position still open after the last bar is logged ``open_at_end`` at its marks; every
        risk reversal's ``net_pnl`` (log row and :attr:`trades`) is then its trade's in the book
        at the last marks, its hedge unwound or held at the marks (the window-end close, at
        those marks, keeps it); whatever the book could not allocate (none when every hedge
        was tagged) is the last row's ``unallocated_pnl``."""
        if self.open_trade is not None:
            day = self.snapshot.quote_date if self.snapshot is not None else dt.date.min
            self.finish_trade(day, "open_at_end")
        broker = self.obroker
        self.book.sync(broker)
        for rec, row in zip(self.trades, self._traded_rows, strict=True):
            rec["net_pnl"] = row["net_pnl"] = self.book.net_pnl(rec["trade_id"], broker)
            rec["hedge_pnl"] = rec["net_pnl"] - rec["option_pnl"]
        if self.log_rows:
            self.log_unallocated(self.log_rows[-1])


class SkewDislocation(ChainPlugin):
    """Plugin wiring the skew signals and :class:`SkewDislocationStrategy`.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params.
    """

    name = "skew_dislocation"
    description = "25-delta risk reversal vs the skew implied by realized return skewness"
    Params = SkewDislocationParams
    required_data = ("underlying", "chains")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss"})
    strategy_cls = SkewDislocationStrategy
    info_tables: ClassVar[Mapping[str, str]] = {"rr_trades": "trades"}

    def __init__(
        self,
        fixed: Mapping[str, Any] | None = None,
        broker: Mapping[str, Any] | None = None,
        costs: CostsConfig | None = None,
        risk: RiskLimits | None = None,
    ) -> None:
        super().__init__(fixed, broker, costs, risk)
        self._signal_cache: dict[tuple[Any, ...], pd.DataFrame] = {}

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """Risk reversals of every quote date and the signal tables of the search space.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated OHLC: realized skewness, settlement, benchmark) and
            ``chains`` (snapshot source).
        grid : mapping
            Searched parameter -> candidate values.

        Raises
        ------
        ValueError
            A load-time parameter in the search space; no quote date inside the underlying's
            sessions.
        """
        p = self.setup_chains(data, grid)
        assert isinstance(p, SkewDislocationParams)
        rows = [
            snapshot_skew(
                self.source.snapshot(p.chain_symbol, d, None, [p.root], False, p.rate),
                p.root,
                p.target_dte,
            )
            for d in self.quote_dates
        ]
        self.skew = pd.DataFrame(rows)
        self.skew.index = self.trading_days()
        counts = self.skew["status"].value_counts().to_dict()
        self.reports.append(
            f"risk reversal on {len(self.skew)} quote dates (expiry nearest {p.target_dte:g} "
            "DTE): " + ", ".join(f"{k}: {v}" for k, v in counts.items())
        )
        combos = self.grid_combos(grid, p, SIGNAL_KEYS)  # min_fit > fit_window: refused
        fits = [c for c in combos if c["min_fit"] <= c["fit_window"]]
        self._signal_tables([*fits, _signal_combo(p)])

    def signal_table(self, params: SkewDislocationParams) -> pd.DataFrame:
        """Per quote date: the risk reversal, realized skewness and :func:`expected_skew`."""
        combo = _signal_combo(params)
        key = tuple(combo.values())
        if key not in self._signal_cache:
            self._signal_tables([combo])
        return self._signal_cache[key]

    def _signal_tables(self, combos: Sequence[Mapping[str, Any]]) -> None:
        """The signal tables of ``combos`` (dicts of :data:`SIGNAL_KEYS`) into the cache, in one
        call per indicator: :data:`indicators.skewness.RealizedSkewness` over every
        ``(returns, skew_window)``, then :data:`indicators.regression.PastOLS` over every
        ``(fit_window, min_fit, model)`` on every skewness column at the quote dates."""
        kinds = sorted({c["returns"] for c in combos})
        windows = sorted({int(c["skew_window"]) for c in combos})
        fits = sorted({(int(c["fit_window"]), int(c["min_fit"]), c["model"]) for c in combos})
        rets = pd.DataFrame({k: skew_returns(self.underlying, k) for k in kinds})
        skewness = RealizedSkewness.run(rets, window=windows, param_product=True).skewness
        xs = skewness.reindex(self.skew.index)
        if xs.columns.nlevels == 1:  # vectorbt drops the level of a single input column
            xs.columns = pd.MultiIndex.from_tuples(
                [(c, kinds[0]) if len(kinds) == 1 else (windows[0], c) for c in xs.columns]
            )
        x_cols = [(int(w), str(k)) for w, k in xs.columns]  # (window, returns kind)
        rr = self.skew["risk_reversal_25d"].to_numpy(dtype=float)
        fit = PastOLS.run(
            np.repeat(rr[:, None], len(x_cols), axis=1),
            xs.to_numpy(dtype=float),
            fit_window=[f[0] for f in fits],
            min_fit=[f[1] for f in fits],
            model=[f[2] for f in fits],
        )
        outs = {name: getattr(fit, name).to_numpy() for name in OLS_OUTPUTS}
        for c in combos:
            j = x_cols.index((int(c["skew_window"]), c["returns"]))
            col = fits.index((int(c["fit_window"]), int(c["min_fit"]), c["model"])) * len(x_cols)
            frame = pd.DataFrame(
                {name: out[:, col + j] for name, out in outs.items()}, index=self.skew.index
            )
            frame["n_fit"] = frame["n_fit"].astype(int)
            table = pd.concat([self.skew, frame.assign(realized_skew=xs.iloc[:, j])], axis=1)
            self._signal_cache[tuple(c[k] for k in SIGNAL_KEYS)] = table

    def data_fingerprint(self) -> str:
        """Hash of the underlying and the risk-reversal series."""
        rr = self.skew[["risk_reversal_25d", "call_strike", "put_strike"]]
        return self.fingerprint_with(rr)

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """``skew/skew_signals.csv`` (the base parameters' table) and ``skew/report.txt``;
        returns the share of dates with a z-score."""
        out = self.report_folder(folder, "skew")
        table = self.signal_table(self.base)
        table.to_csv(out / "skew_signals.csv")
        return {"skew_z_days_share": float(np.isfinite(table["z"]).mean())}


SIGNAL_KEYS = ("returns", "skew_window", "model", "fit_window", "min_fit")
"""Parameters of the signal table (:meth:`SkewDislocation.signal_table`)."""


def _signal_combo(params: SkewDislocationParams) -> dict[str, Any]:
    return {k: getattr(params, k) for k in SIGNAL_KEYS}
