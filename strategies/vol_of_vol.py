"""``vol_of_vol``: buy gamma when VVIX rises while SPX implied vol stays flat.

Design document ``../shared/design/000_b5d10140c737cba0.txt``, section 3 "Overnight Vol-of-Vol
Signal" ("track VIX/VVIX ...; model historical correlation between vol-of-vol and SPX 0DTE IV;
signal: if VVIX is up but SPX IV is flat, buy gamma") and issue 5 ("per the fitted historical
relation").

Daily closes (VIX, VVIX; session ``t``)
---------------------------------------
1. **Changes** (:func:`indicators.vvix_signals`): ``dvvix_t = VVIX_t - VVIX_{t-1}`` (index
   points) and ``div_t = IV_t - IV_{t-1}`` with the ATM-IV proxy ``IV = VIX / 100`` (decimal
   vol); ``change_kind = "log"`` uses log changes of both.
2. **Fitted relation**: OLS ``div_s = a + b dvvix_s + e_s`` over the last ``fit_window`` sessions
   ``s < t`` (at least ``min_fit``; :func:`indicators.regression.past_ols`, a rolling
   OLS on earlier points only). ``expected_t = a + b dvvix_t``, ``residual_t = div_t -
   expected_t`` (decimal vol), ``residual_sd`` = the fit's residual standard deviation (ddof 2),
   ``residual_z = residual_t / residual_sd``.
3. **VVIX rise** ``vvix_stat_t``: ``vvix_measure = "zscore"``: ``dvvix_t`` against the mean and
   standard deviation of the ``vvix_z_window`` previous changes
   (:func:`indicators.vol_signals.past_zscore_nb`); ``"pct"``: ``VVIX_t / VVIX_{t-1} - 1``
   (decimal).

Decision at the chain snapshot of quote date ``D`` (~15:45 ET)
--------------------------------------------------------------
VIX and VVIX print their closes at 16:15 ET, after the snapshot, so ``D`` reads the row of the
previous session ``t = D-1`` only (whose fit uses sessions up to ``D-2``):

* **entry** (flat book, risk layer not blocking): ``vvix_stat > vvix_threshold`` and
  ``residual_z < -residual_threshold`` (VVIX rose, IV rose less than the relation predicts) ->
  buy the ATM straddle (:meth:`data_feeds.chains.ChainSnapshot.straddle`) of the ``root``
  expiry nearest ``target_dte`` at the snapshot's ask, ``contracts =
  max_loss_contracts(equity, account_risk, premium * 100 + commissions)``
  (:func:`strategies.risk.combo_max_loss_at_fill`: a long straddle can lose its premium);
* **hedge**: the book delta is traded back to 0 every snapshot with the index
  (:class:`strategies.hedging.DeltaHedger`, costs paid), P&L split into option / hedge / costs;
* **exits** (first that holds, at the snapshot's bid): ``window_end``; ``dte`` (``<= exit_dte``
  calendar days left); ``stop_loss`` / ``take_profit`` (straddle mid value vs the premium
  paid: ``<= -stop_loss`` / ``>= take_profit`` as a fraction); ``catch_up`` (the IV shortfall
  has closed: the residuals summed from the signal session to ``D-1``, over the entry's
  ``residual_sd``, are ``>= exit_residual_z``); ``time`` (``max_hold_days`` snapshots); a kill
  switch of the risk layer (``max_drawdown``) flattens the book.

Nothing of ``D``'s close or of a later date enters ``D``'s decision (tested by perturbing ``D``'s
closes and by truncating the data). See ``docs/strategies/vol_of_vol.md`` for the sources, the
choice of VIX as the implied-vol proxy and the limits of the 2019 sample.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from brokers.cost_config import CostsConfig
from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot, QuoteUnavailable
from indicators import vvix_signals
from indicators.regression import OUTPUTS as OLS_OUTPUTS
from indicators.regression import PastOLS, past_ols
from indicators.vol_signals import PastZScore, past_zscore_nb
from strategies.base import BacktestResult, StrategyParams
from strategies.book import TradeBook
from strategies.evaluation import signal_evaluation
from strategies.hedging import DeltaHedgedStrategy, HedgeConfig
from strategies.option_strategy import ChainPlugin, ChainStrategy
from strategies.params import AccountRisk, ExitDte, MaxContracts, MaxHoldDays, StopLoss, TakeProfit
from strategies.risk import (
    OptionRiskMixin,
    base_tag,
    combo_max_loss_at_fill,
    max_loss_contracts,
)

__all__ = [
    "SIGNAL_KEYS",
    "VolOfVolGamma",
    "VolOfVolParams",
    "VolOfVolStrategy",
    "daily_panel",
    "vol_of_vol_signals",
]

HEDGE_COST_KEYS = {
    "half_spread": "hedge_half_spread",
    "commission_per_share": "hedge_commission_per_share",
}
"""``HedgeConfig`` cost fields -> their ``[costs]`` key."""

SIGNAL_KEYS = ("change_kind", "fit_window", "min_fit", "vvix_measure", "vvix_z_window")
"""Parameters of the daily signal table (:func:`vol_of_vol_signals`); each combination of the
search space is computed once in :meth:`VolOfVolGamma.prepare`."""


class VolOfVolParams(StrategyParams):
    """Parameters of ``vol_of_vol`` (searchable ones in :attr:`tunable`; ``chain_symbol``,
    ``root``, ``rate`` and ``target_dte`` are fixed when :meth:`VolOfVolGamma.prepare` reads
    the data; the VVIX file is ``[data.vvix]``, not a parameter).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the snapshots (``SPX``) and root traded (``SPXW``).
    rate : float
        Continuous rate (decimal) for forwards, implied vols and the hedge deltas.
    target_dte : int
        Calendar days to the straddle's expiry (the listed expiry nearest it; 10).
    change_kind : {"diff", "log"}
        Daily changes: VVIX points and decimal vol, or log changes of both.
    fit_window, min_fit : int
        Sessions in the rolling OLS of the IV change on the VVIX change (at most / at least).
    vvix_measure : {"zscore", "pct"}
        How the VVIX rise is measured (module docstring, step 3).
    vvix_z_window : int
        Previous changes in the VVIX-change z-score.
    vvix_threshold : float
        Entry needs ``vvix_stat > vvix_threshold`` (z units, or a decimal fraction for
        ``pct``: 0.03 = VVIX up 3 %).
    residual_threshold : float
        Entry needs ``residual_z < -residual_threshold`` (residual standard deviations).
    exit_residual_z : float
        ``catch_up`` exit level of the cumulative residual z (> ``-residual_threshold``).
    max_hold_days : int
        Sessions: close after this many daily chain snapshots (one per stored quote date; a
        session without a stored chain is not counted).
    exit_dte : int
        Close at this many calendar days to expiry or fewer (< ``target_dte``).
    take_profit, stop_loss : float
        Close when the straddle's mid value is up ``take_profit`` / down ``stop_loss`` as a
        fraction of the premium paid.
    account_risk : float
        Share of the equity the premium (the straddle's maximum loss) may be (decimal).
    max_contracts : int
        Cap on straddles per trade.
    delta_hedge : bool
        Hedge the book delta with the underlying (:class:`strategies.hedging.DeltaHedger`).
    hedge : HedgeConfig
        Hedge rule (default: every snapshot). Its costs (``half_spread``,
        ``commission_per_share``) are refused here: they are the config's
        ``[costs] hedge_half_spread`` / ``hedge_commission_per_share``.

    The risk layer's kill switch (``max_drawdown``) and daily-loss block (``max_daily_loss``)
    are not parameters: they come from the config's ``[risk]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "change_kind",
            "fit_window",
            "min_fit",
            "vvix_measure",
            "vvix_z_window",
            "vvix_threshold",
            "residual_threshold",
            "exit_residual_z",
            "max_hold_days",
            "exit_dte",
            "take_profit",
            "stop_loss",
            "account_risk",
            "max_contracts",
            "delta_hedge",
        }
    )

    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    target_dte: int = Field(10, ge=1, le=90)
    change_kind: Literal["diff", "log"] = "diff"
    fit_window: int = Field(252, ge=3, le=5000)
    min_fit: int = Field(126, ge=3, le=5000)
    vvix_measure: Literal["zscore", "pct"] = "zscore"
    vvix_z_window: int = Field(63, ge=2, le=5000)
    vvix_threshold: float = Field(1.0, ge=-10.0, le=10.0)
    residual_threshold: float = Field(1.0, ge=0.0, le=10.0)
    exit_residual_z: float = Field(0.0, ge=-10.0, le=10.0)
    max_hold_days: MaxHoldDays = 5
    exit_dte: ExitDte = 2
    take_profit: TakeProfit = Field(
        0.5, description="decimal rise of the straddle's mid value over the premium paid"
    )
    stop_loss: Annotated[StopLoss, Field(le=1.0)] = Field(
        0.5, description="decimal fall of the straddle's mid value below the premium paid"
    )
    account_risk: AccountRisk = 0.02
    max_contracts: MaxContracts = 5
    delta_hedge: bool = True
    hedge: HedgeConfig = HedgeConfig(rule="interval")

    @field_validator("hedge", mode="before")
    @classmethod
    def _no_costs_in_hedge(cls, value: Any) -> Any:
        given = set(value) if isinstance(value, Mapping) else set()
        if isinstance(value, HedgeConfig):
            given = set(value.model_fields_set)
        costs = sorted(given & set(HEDGE_COST_KEYS))
        if costs:
            raise ValueError(
                f"hedge.{costs[0]} is a cost, not a parameter: set "
                f"costs.{HEDGE_COST_KEYS[costs[0]]}"
            )
        return value

    def hedge_config(self, costs: CostsConfig) -> HedgeConfig:
        """:attr:`hedge` with the config's hedge ``costs``."""
        return self.hedge.model_copy(
            update={
                "half_spread": costs.hedge_half_spread,
                "commission_per_share": costs.hedge_commission_per_share,
            }
        )

    @model_validator(mode="after")
    def _consistent(self) -> VolOfVolParams:
        if self.min_fit > self.fit_window:
            raise ValueError(f"min_fit ({self.min_fit}) must be <= fit_window ({self.fit_window})")
        if self.exit_dte >= self.target_dte:
            raise ValueError(
                f"exit_dte ({self.exit_dte}) must be < target_dte ({self.target_dte}): a new "
                "straddle would be closed on its first day"
            )
        if self.exit_residual_z <= -self.residual_threshold:
            raise ValueError(
                f"exit_residual_z ({self.exit_residual_z}) must be > -residual_threshold "
                f"({-self.residual_threshold}): the catch-up exit would hold at entry"
            )
        return self


# --------------------------------------------------------------------------------------
# signals (pure functions)
# --------------------------------------------------------------------------------------


def daily_panel(vix: pd.DataFrame, vvix: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """VIX and VVIX closes on the sessions both have.

    Parameters
    ----------
    vix : pandas.DataFrame
        Validated daily VIX bars (:func:`data_feeds.load_ohlc`; column ``close`` in index
        points, tz-aware session index).
    vvix : pandas.Series
        VVIX closes (:func:`data_feeds.load_vvix`; index points, naive or tz-aware dates).

    Returns
    -------
    panel : pandas.DataFrame
        ``iv_proxy`` (VIX / 100, decimal vol) and ``vvix`` (points) on the common sessions
        (tz-aware America/New_York, ascending).
    report : list of str
        What the inner join dropped (never silent).

    Raises
    ------
    ValueError
        No ``close`` column, or no common session.
    """
    if "close" not in vix:
        raise ValueError(f"vix: expected a 'close' column, got {list(vix.columns)}")
    v = vvix.astype(float)
    if v.index.tz is None:
        v.index = pd.DatetimeIndex(v.index).tz_localize(TZ)
    vix_close = vix["close"].astype(float)
    common = vix_close.index.intersection(v.index)
    if len(common) == 0:
        raise ValueError(
            f"vix and vvix have no session in common ({len(vix_close)} VIX, {len(v)} VVIX rows)"
        )
    inside = v[(v.index >= vix_close.index[0]) & (v.index <= vix_close.index[-1])]
    only_vix = vix_close.index.difference(v.index)
    only_vvix = inside.index.difference(vix_close.index)
    report = [
        f"VIX/VVIX panel: {len(common)} sessions {common[0]:%Y-%m-%d}..{common[-1]:%Y-%m-%d}; "
        f"dropped {len(only_vix)} VIX sessions without a VVIX close"
        + (f" ({', '.join(f'{d:%Y-%m-%d}' for d in only_vix[:5])})" if len(only_vix) else "")
        + f", {len(only_vvix)} VVIX closes without a VIX session in the VIX range"
    ]
    panel = pd.DataFrame(
        {"iv_proxy": vix_close.reindex(common) / 100.0, "vvix": v.reindex(common)}, index=common
    )
    return panel, report


def vol_of_vol_signals(
    iv: pd.Series,
    vvix: pd.Series,
    *,
    change_kind: Literal["diff", "log"] = "diff",
    fit_window: int = 252,
    min_fit: int = 126,
    vvix_measure: Literal["zscore", "pct"] = "zscore",
    vvix_z_window: int = 63,
) -> pd.DataFrame:
    """Per daily close ``t``: VVIX and IV changes, the past-only fitted relation and its residual.

    Parameters
    ----------
    iv : pandas.Series
        ATM implied-vol proxy per session (decimal vol, e.g. VIX / 100), shape ``(n,)``.
    vvix : pandas.Series
        VVIX close on the same index (index points).
    change_kind : {"diff", "log"}
        :func:`indicators.vvix_signals` ``kind``.
    fit_window, min_fit : int
        Earlier sessions in the OLS (at most / at least; ``3 <= min_fit <= fit_window``).
    vvix_measure : {"zscore", "pct"}
        ``vvix_stat``: the change's z-score against the ``vvix_z_window`` previous changes
        (:func:`indicators.vol_signals.past_zscore_nb`, ddof 1) or ``VVIX_t / VVIX_{t-1} - 1``.
    vvix_z_window : int
        See ``vvix_measure`` (>= 2).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``iv``: ``iv_proxy``, ``vvix``, ``vvix_change``, ``iv_change`` (decimal
        vol, or log change), ``vvix_stat``, ``intercept``, ``slope`` (IV change per VVIX
        change), ``n_fit``, ``expected_change``, ``residual`` (``iv_change -
        expected_change``), ``residual_sd`` (ddof 2), ``residual_z``, ``residual_cum`` (running
        sum of ``residual``, NaN counted as 0) and ``vvix_iv_corr`` (21-session Pearson
        correlation of the two change series, information only). Row ``t`` uses sessions
        ``<= t``; the fit of row ``t`` uses sessions ``< t`` only.

    Raises
    ------
    ValueError
        Different indexes, ``min_fit``/``fit_window`` out of order, an unknown
        ``vvix_measure`` or a ``vvix_z_window < 2``.

    Notes
    -----
    The OLS is :func:`indicators.regression.past_ols` (numba kernel on the earlier points),
    checked against ``statsmodels.OLS`` in the tests.
    """
    if not iv.index.equals(vvix.index):
        raise ValueError("iv and vvix must share one index (use daily_panel)")
    _check_stat(vvix_measure, vvix_z_window)
    changes = vvix_signals(vvix.astype(float), iv.astype(float), kind=change_kind)
    dv = changes["vvix_change"].to_numpy(dtype=float)
    fit = past_ols(
        changes["atm_iv_change"].to_numpy(dtype=float),
        dv,
        model="regression",
        fit_window=fit_window,
        min_fit=min_fit,
    )
    if vvix_measure == "zscore":
        stat = past_zscore_nb(np.ascontiguousarray(dv), vvix_z_window, 2)
    else:
        stat = _vvix_pct(vvix)
    return _signal_frame(iv, vvix, changes, stat, {k: fit[k].to_numpy() for k in OLS_OUTPUTS})


def _check_stat(vvix_measure: str, vvix_z_window: int) -> None:
    if vvix_measure not in ("zscore", "pct"):
        raise ValueError(f"vvix_measure must be 'zscore' or 'pct', got {vvix_measure!r}")
    if vvix_z_window < 2:
        raise ValueError(f"vvix_z_window must be >= 2, got {vvix_z_window}")


def _vvix_pct(vvix: pd.Series) -> np.ndarray:
    """``VVIX_t / VVIX_{t-1} - 1`` (decimal), NaN on the first session."""
    level = vvix.to_numpy(dtype=float)
    return np.concatenate([[np.nan], level[1:] / level[:-1] - 1.0])


def _signal_frame(
    iv: pd.Series,
    vvix: pd.Series,
    changes: pd.DataFrame,
    stat: np.ndarray,
    fit: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """The :func:`vol_of_vol_signals` table from its parts: ``changes`` of
    :func:`indicators.vvix_signals`, the VVIX statistic and the
    :func:`indicators.regression.past_ols_nb` outputs ``fit`` (arrays by output name)."""
    out = pd.DataFrame(
        {
            "iv_proxy": iv.to_numpy(dtype=float),
            "vvix": vvix.to_numpy(dtype=float),
            "vvix_change": changes["vvix_change"].to_numpy(dtype=float),
            "iv_change": changes["atm_iv_change"].to_numpy(dtype=float),
            "vvix_stat": stat,
            "intercept": fit["intercept"],
            "slope": fit["slope"],
            "n_fit": np.asarray(fit["n_fit"]).astype(int),
            "expected_change": fit["expected"],
            "residual": fit["gap"],
            "residual_sd": fit["scale"],
            "residual_z": fit["z"],
        },
        index=iv.index,
    )
    out["residual_cum"] = np.nancumsum(out["residual"].to_numpy())
    out["vvix_iv_corr"] = changes["vvix_iv_corr"].to_numpy()
    return out


# --------------------------------------------------------------------------------------
# backtrader strategy
# --------------------------------------------------------------------------------------


def _sleeve_of(tag: str) -> str:
    """Attribution sleeves: the straddles (tags ``vov ...``, their hedge shares included: the
    hedge is tagged with the open straddle) and everything else, i.e. the unallocated trade
    (``""``: hedge shares nobody holds, none in practice)."""
    return "straddle" if tag.startswith("vov") else "delta_hedge"


class VolOfVolStrategy(OptionRiskMixin, DeltaHedgedStrategy, ChainStrategy):
    """backtrader face of ``vol_of_vol``: one long straddle at a time, delta-hedged.

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : VolOfVolParams
    signals : mapping of datetime.date to dict
        Per quote date ``D``: the :func:`vol_of_vol_signals` row of the previous session
        (``signal_day``) and ``status`` (``ok`` or why there is none).
    last_day : datetime.date, optional
        Last session of the window: the position is closed there, nothing opens.
    hedge : HedgeConfig
        Used when ``rules.delta_hedge``.
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default ``RiskLimits()``).

    ``log_rows``: one row per snapshot; the entry row ends with ``status = "traded"``,
    ``exit_date``, ``exit_reason`` and ``option_pnl`` (dollars: premiums at the fills,
    commissions, settlements of its legs). ``trades``: one row per straddle.
    """

    rules_cls = VolOfVolParams
    counters = ("stale_mark_days", "exit_deferred")

    def __init__(self) -> None:
        super().__init__()
        self.position_open: dict[str, Any] | None = None

    def sleeve_of(self) -> Callable[[str], str]:
        """Attribution sleeves: :func:`_sleeve_of`."""
        return _sleeve_of

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """:meth:`next_options`, then the hedge when ``delta_hedge``."""
        self.next_options(snapshot)
        if self.rules.delta_hedge:
            self.hedger.hedge(self, snapshot, tag=self.hedge_tag())

    def next_options(self, snapshot: ChainSnapshot) -> None:
        """Risk step, manage the open straddle, then decide on a new one."""
        day = snapshot.quote_date
        self.risk_step()
        sig = self.signals.get(day, {"status": "no_signal"})
        row: dict[str, Any] = {
            "date": day,
            "signal_day": sig.get("signal_day"),
            **{k: sig.get(k, math.nan) for k in ("vvix_stat", "residual", "residual_z")},
        }
        self.log_rows.append(row)
        if self.position_open is not None:
            self._manage(snapshot, day, sig, row)
            return  # holding, or closed today: no new straddle on an exit day
        r = self.rules
        if day >= self.last_day:
            row["status"] = "window_end"
        elif sig.get("status") != "ok":
            row["status"] = str(sig.get("status"))
        elif not (
            float(sig["vvix_stat"]) > r.vvix_threshold
            and float(sig["residual_z"]) < -r.residual_threshold
        ):
            row["status"] = "below_threshold"
        elif self.risk_blocked():
            row["status"] = "risk_blocked"
        else:
            self._enter(snapshot, day, sig, row)

    def _enter(
        self, snap: ChainSnapshot, day: dt.date, sig: Mapping[str, Any], row: dict[str, Any]
    ) -> None:
        r = self.rules
        try:
            exp = snap.nearest_expiry(float(r.target_dte), r.root)
            if (exp - day).days <= r.exit_dte:
                row.update(status="expiry_too_near", expiration=exp)
                return
            combo = snap.straddle(exp, r.root)
            unit_loss = combo_max_loss_at_fill(combo, snap, quantity=1, costs=self.obroker.costs)
        except QuoteUnavailable as exc:
            self.count_unavailable(exc, row)
            row.update(status="no_combo", detail=str(exc))
            return
        contracts = max_loss_contracts(
            self.broker.getvalue(), r.account_risk, unit_loss, max_contracts=r.max_contracts
        )
        strike = combo.legs[0][0].strike
        row.update(
            expiration=exp,
            dte=(exp - day).days,
            strike=strike,
            loss_budget_per_unit=unit_loss,
            contracts=contracts,
        )
        if contracts < 1:
            row["status"] = "size_zero"
            return
        tag = f"vov {day:%Y-%m-%d}"
        fills = self.open_combo(combo, contracts, tag=tag)
        if not fills:
            row.update(status="rejected", detail=self.rejections[-1][2] if self.rejections else "")
            return
        premium = sum(f.quantity * f.price for f in fills) / contracts
        row.update(status="opened", premium=premium)
        self.position_open = {
            "tag": tag,
            "trade_id": int(self.last_trade_id or 0),
            "entry_date": day,
            "signal_day": sig["signal_day"],
            "expiration": exp,
            "strike": strike,
            "contracts": contracts,
            "premium": premium,
            "entry_residual_z": float(sig["residual_z"]),
            "residual_sd": float(sig["residual_sd"]),
            "cum_before": float(sig["residual_cum"]) - float(sig["residual"]),
            "bars": 0,
            "row": row,
        }

    def _manage(
        self, snap: ChainSnapshot, day: dt.date, sig: Mapping[str, Any], row: dict[str, Any]
    ) -> None:
        pos = self.position_open
        assert pos is not None
        pos["bars"] += 1
        r = self.rules
        if pos["tag"] not in self.combos:  # settled, or flattened by the kill switch
            reason = f"risk: {self.risk.kill_reason}" if self.risk.killed else "settled"
            row.update(status="closed", exit_reason=reason)
            self._finish(day, reason)
            return
        legs = self.combos[pos["tag"]]
        quoted = all(snap.has(c) and math.isfinite(snap.mid(c)) for c in legs)
        value = sum(q * snap.mid(c) for c, q in legs.items()) / pos["contracts"]
        change = value / pos["premium"] - 1.0 if quoted else math.nan
        shortfall = math.nan
        if sig.get("status") == "ok" and pos["residual_sd"] > 0:
            shortfall = (float(sig["residual_cum"]) - pos["cum_before"]) / pos["residual_sd"]
        if not quoted:
            self.counts["stale_mark_days"] += 1
        row.update(premium_change=change, shortfall_z=shortfall)
        reason = None
        if day >= self.last_day:
            reason = "window_end"
        elif (pos["expiration"] - day).days <= r.exit_dte:
            reason = "dte"
        elif change <= -r.stop_loss:
            reason = "stop_loss"
        elif change >= r.take_profit:
            reason = "take_profit"
        elif shortfall >= r.exit_residual_z:
            reason = "catch_up"
        elif pos["bars"] >= r.max_hold_days:
            reason = "time"
        if reason is None:
            row["status"] = "holding"
            return
        self.close_combo(pos["tag"])
        if pos["tag"] in self.combos:
            self.counts["exit_deferred"] += 1
            row.update(status="exit_deferred", detail=reason)
            return
        row.update(status="closed", exit_reason=reason)
        self._finish(day, reason)

    def hedge_tag(self) -> str:
        """The open straddle's tag (one straddle at a time, so the hedge is its trade's: the
        book allocates it there); :data:`strategies.hedging.HEDGE_TAG` when flat (an unwind of
        leftover shares then goes to the trade holding them)."""
        pos = self.position_open
        return pos["tag"] if pos is not None else super().hedge_tag()

    def _finish(self, day: dt.date, reason: str) -> None:
        """Log the closed (or, at the end, still open) straddle: option P&L of its trade in
        :attr:`book` (option fills, commissions, settlements, plus open legs at the marks).
        Its ``net_pnl`` (option and hedge) is read from the book after the window
        (:meth:`VolOfVolGamma.backtest`), once the hedge shares are unwound."""
        pos = self.position_open
        assert pos is not None
        broker = self.obroker
        self.book.sync(self.obroker)  # share trades placed since the last sync
        self.book.note(pos["trade_id"], reason)
        trade = self.book.trade(pos["trade_id"])
        pnl = trade.option_pnl(broker)
        fills = [f for f in broker.option_fills if base_tag(f.tag) == pos["tag"]]
        pos["row"].update(status="traded", exit_date=day, exit_reason=reason, option_pnl=pnl)
        self.trades.append(
            {
                **{k: v for k, v in pos.items() if k not in ("bars", "row", "cum_before")},
                "exit_date": day,
                "exit_reason": reason,
                "bars_held": pos["bars"],
                "commissions": sum(f.commission for f in fills),
                "option_pnl": pnl,
            }
        )
        self.position_open = None

    def stop(self) -> None:
        """A straddle still open after the last bar is logged ``open_at_end`` at its marks."""
        if self.position_open is not None:
            day = self.snapshot.quote_date if self.snapshot is not None else dt.date.min
            self._finish(day, "open_at_end")


# --------------------------------------------------------------------------------------
# plugin
# --------------------------------------------------------------------------------------


class VolOfVolGamma(ChainPlugin):
    """Plugin: VIX/VVIX signal tables for the search space, one hedged Cerebro per window.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params.
    """

    name = "vol_of_vol"
    description = "Buy delta-hedged SPXW straddles when VVIX rises and VIX lags the fitted relation"
    Params = VolOfVolParams
    required_data = ("underlying", "vix", "vvix", "chains")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss"})
    strategy_cls = VolOfVolStrategy
    signal_source = "decision_table"

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """VIX/VVIX panel, quote dates and the signal table of every searched setting.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated SPX daily OHLC: sessions, settlement, benchmark), ``vix``
            (validated VIX daily bars), ``chains`` (snapshot source) and ``vvix`` (the
            ``[data.vvix]`` series as :func:`data_feeds.load_vvix` returns, index points).
        grid : mapping
            Searched parameter -> candidate values.

        Raises
        ------
        ValueError
            A load-time parameter is searched; no quote date with a previous session in the
            underlying.
        """
        p = self.setup_chains(data, grid, quote_dates=False)
        assert isinstance(p, VolOfVolParams)
        if data.get("vvix") is None:
            raise ValueError('vol_of_vol needs the VVIX series: set [data.vvix] source = "..."')
        self.panel, lines = daily_panel(data["vix"], data["vvix"])
        self.reports.extend(lines)
        sessions = self.underlying.index
        stored = self.source.quote_dates(p.chain_symbol, [p.root])
        pos = {d: i for i, d in enumerate(sessions.date)}
        self.quote_dates = [d for d in stored if pos.get(d, 0) > 0]
        # the previous session of the underlying: its closes are the last known at D's snapshot
        self.signal_day = {d: sessions[pos[d] - 1] for d in self.quote_dates}
        if not self.quote_dates:
            raise ValueError(
                f"no {p.chain_symbol}/{p.root} quote date with a previous session in the "
                f"underlying ({len(stored)} stored, sessions "
                f"{sessions[0]:%Y-%m-%d}..{sessions[-1]:%Y-%m-%d})"
            )
        if len(stored) > len(self.quote_dates):
            self.reports.append(
                f"{len(stored) - len(self.quote_dates)} quote dates without a previous "
                "underlying session dropped"
            )
        combos = self.grid_combos(grid, p, SIGNAL_KEYS)  # min_fit > fit_window: refused
        fits = [c for c in combos if c["min_fit"] <= c["fit_window"]]
        self._signal_tables([*fits, {k: getattr(p, k) for k in SIGNAL_KEYS}])
        table = self.decision_table(p)
        counts = table["status"].value_counts().to_dict()
        self.reports.append(
            f"vol_of_vol signal on {len(table)} quote dates (closes of the previous session): "
            + ", ".join(f"{k}: {v}" for k, v in counts.items())
        )

    def signal_table(self, params: VolOfVolParams | None = None) -> pd.DataFrame:
        """:func:`vol_of_vol_signals` on the panel for ``params`` (default the fixed ones)."""
        p = params or self.base
        key = tuple(getattr(p, k) for k in SIGNAL_KEYS)
        if key not in self._tables:
            self._signal_tables([dict(zip(SIGNAL_KEYS, key, strict=True))])
        return self._tables[key]

    def _signal_tables(self, combos: Sequence[Mapping[str, Any]]) -> None:
        """The :func:`vol_of_vol_signals` tables of ``combos`` (dicts of :data:`SIGNAL_KEYS`)
        into the cache, one call per indicator over the whole grid: the changes per
        ``change_kind`` (:func:`indicators.vvix_signals`), :data:`indicators.regression.PastOLS`
        over every ``(fit_window, min_fit)`` on every change kind, and
        :data:`indicators.vol_signals.PastZScore` over every ``vvix_z_window``."""
        for c in combos:
            _check_stat(c["vvix_measure"], int(c["vvix_z_window"]))
        iv, vvix = self.panel["iv_proxy"], self.panel["vvix"]
        kinds = sorted({c["change_kind"] for c in combos})
        changes = {k: vvix_signals(vvix.astype(float), iv.astype(float), kind=k) for k in kinds}
        dv = np.column_stack([changes[k]["vvix_change"].to_numpy(dtype=float) for k in kinds])
        di = np.column_stack([changes[k]["atm_iv_change"].to_numpy(dtype=float) for k in kinds])
        fits = sorted({(int(c["fit_window"]), int(c["min_fit"])) for c in combos})
        ols = PastOLS.run(
            di,
            dv,
            fit_window=[f[0] for f in fits],
            min_fit=[f[1] for f in fits],
            model="regression",
        )
        outs = {name: getattr(ols, name).to_numpy() for name in OLS_OUTPUTS}
        z_windows = sorted({int(c["vvix_z_window"]) for c in combos})
        zs = PastZScore.run(dv, window=z_windows, min_periods=2).zscore.to_numpy()
        pct = _vvix_pct(vvix)
        for c in combos:
            j = kinds.index(c["change_kind"])
            col = fits.index((int(c["fit_window"]), int(c["min_fit"]))) * len(kinds) + j
            if c["vvix_measure"] == "zscore":
                stat = zs[:, z_windows.index(int(c["vvix_z_window"])) * len(kinds) + j]
            else:
                stat = pct
            fit = {name: out[:, col] for name, out in outs.items()}
            key = tuple(c[k] for k in SIGNAL_KEYS)
            self._tables[key] = _signal_frame(iv, vvix, changes[c["change_kind"]], stat, fit)

    def decision_table(self, params: VolOfVolParams | None = None) -> pd.DataFrame:
        """Per quote date ``D`` (index ``datetime.date``): the signal row of the previous
        session ``signal_day`` and ``status`` (``ok``, ``no_close``: the panel has no close that
        session, ``no_fit``: the fit or the VVIX statistic is not available yet)."""
        table = self.signal_table(params)
        prev = pd.DatetimeIndex([self.signal_day[d] for d in self.quote_dates])
        out = table.reindex(prev)
        out.index = pd.Index(self.quote_dates, name="date")
        out.insert(0, "signal_day", [ts.date() for ts in prev])
        status = np.where(prev.isin(table.index), "ok", "no_close").astype(object)
        missing = ~np.isfinite(out[["vvix_stat", "residual_z"]].to_numpy()).all(axis=1)
        status[(status == "ok") & missing] = "no_fit"
        out.insert(1, "status", status)
        return out

    def finish_backtest(
        self, result: BacktestResult, strat: Any, params: Any
    ) -> BacktestResult:
        """``info["vov_trades"]``: one row per straddle with its hedged P&L
        (:func:`_with_hedge_pnl`), also put on its entry row of the daily log."""
        trades = _with_hedge_pnl(
            pd.DataFrame(strat.trades), result.info["pnl_breakdown"], strat.book
        )
        log = result.daily_log
        if len(trades):  # the entry row of each straddle gets its hedged P&L
            by_entry = trades.set_index("entry_date")
            for col in ("hedge_pnl", "hedge_costs", "net_pnl"):
                log[col] = log["date"].map(by_entry[col]).where(log["status"] == "traded")
        result.info["vov_trades"] = trades
        return result

    def data_fingerprint(self) -> str:
        """Hash of the underlying bars and the VIX/VVIX panel."""
        return self.fingerprint_with(self.panel)

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """``vov/signals.csv`` (the fixed parameters' daily table from a year before the first
        quote date), ``vov/decisions.csv`` (per quote date) and ``vov/report.txt``; returns the
        number of quote dates whose signal fires with the fixed thresholds."""
        out = self.report_folder(folder, "vov")
        first = self.trading_days()[0] - pd.Timedelta(days=365)
        table = self.signal_table()
        table[table.index >= first].to_csv(out / "signals.csv", index_label="date")
        dec = self.decision_table()
        dec.to_csv(out / "decisions.csv")
        p = self.base
        fires = (dec["vvix_stat"] > p.vvix_threshold) & (dec["residual_z"] < -p.residual_threshold)
        return {"vov_fire_dates": float(fires.sum()), "vov_quote_dates": float(len(dec))}


    # -- model evaluation (issue 13: signal hit rates) --------------------------------------------
    #: Statuses a log row reaches only after the entry signal fired (``vvix_stat >
    #: vvix_threshold`` and ``residual_z < -residual_threshold``, flat book); the straddle's
    #: hedged P&L is booked on its entry row, whose status becomes ``traded``.
    ENTRY_STATUSES = frozenset(
        {"risk_blocked", "expiry_too_near", "no_combo", "size_zero", "rejected", "opened",
         "traded"}
    )
    #: Statuses of rows whose signal did not fire or was not evaluated (holding a straddle).
    NO_ENTRY_STATUSES = frozenset(
        {"window_end", "no_signal", "no_close", "no_fit", "below_threshold", "holding",
         "exit_deferred", "closed"}
    )
    #: Edges of the ``residual_z`` buckets of ``signal_buckets`` (left-closed; the signal needs a
    #: negative residual: implied vol lagging the fitted relation).
    RESIDUAL_Z_EDGES = (-np.inf, -3.0, -2.0, -1.0, 0.0, np.inf)

    def model_evaluation(self, daily_log: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Hit rates of the entry signal, overall and by ``residual_z`` bucket.

        Parameters
        ----------
        daily_log : pandas.DataFrame
            Stitched out-of-sample daily log (``status``, ``residual_z``, ``net_pnl`` = option +
            hedge P&L + hedge costs in dollars on each straddle's entry row).

        Returns
        -------
        dict[str, pandas.DataFrame]
            ``signal_hit_rates`` and ``signal_buckets`` of
            :func:`strategies.evaluation.signal_evaluation` (:attr:`ENTRY_STATUSES` signalled,
            buckets :attr:`RESIDUAL_Z_EDGES` of ``residual_z``).
        """
        return signal_evaluation(
            daily_log,
            entry_statuses=self.ENTRY_STATUSES,
            other_statuses=self.NO_ENTRY_STATUSES,
            signal_column="residual_z",
            edges=self.RESIDUAL_Z_EDGES,
        )


def _with_hedge_pnl(trades: pd.DataFrame, pnl: pd.DataFrame, book: TradeBook) -> pd.DataFrame:
    """Add each straddle's ``net_pnl`` (its trade's cash in ``book`` after the window-end
    close: options, settlements and the hedge shares tagged with it, commissions and spreads
    included), ``hedge_costs`` (hedge commissions and half spreads of the bars from its entry
    to its exit date, dollars; :meth:`strategies.hedging.DeltaHedger.pnl_frame`) and
    ``hedge_pnl = net_pnl - option_pnl - hedge_costs`` (its shares, including any unwound after
    the exit date). The hedge is tagged with the open straddle (one at a time), so the
    ``net_pnl`` of the straddles add up to the window's change of value."""
    if trades.empty:
        return trades
    days = np.array([t.date() for t in pnl.index]) if len(pnl) else np.array([])
    costs = []
    for a, b in zip(trades["entry_date"], trades["exit_date"], strict=True):
        rows = pnl[(days >= a) & (days <= b)] if len(pnl) else pnl
        costs.append(
            float((rows["hedge_commission"] + rows["hedge_spread"]).sum()) if len(rows) else 0.0
        )
    out = trades.copy()
    out["net_pnl"] = [book.trade(int(tid)).cash for tid in out["trade_id"]]
    out["hedge_costs"] = costs
    out["hedge_pnl"] = out["net_pnl"] - out["option_pnl"] - out["hedge_costs"]
    return out
