"""``surface_arbitrage``: trade single options whose executable vol is far from the fitted smile.

Design document ``../shared/design/002_fed880b40d6caff5.txt`` (sections 1.2 "Stochastic
Volatility Arbitrage", 7.1 "Volatility Surface Arbitrage Signals") and issue 5. On each chain
quote date ``D`` (one snapshot, ~15:45 ET for the 2019 SPX chains):

1. **Fit** (:func:`pricing.surface_fit.fit_snapshot`, the surface engine; no second fitter): one
   smile per expiry of ``root`` from ``D``'s quotes at the snapshot -- raw SVI with the
   arbitrage repair (default) or Hagan SABR (``beta = 0.5``) -- on the engine's fit set
   (two-sided, out of the money, ``|delta| >= 0.02``, spread-weighted).
2. **Model vol per option** at its ``log_moneyness`` / ``tte``. "Before the trade" means: the
   fit uses ``D``'s quotes at the snapshot and the trade fills on the same snapshot, and with
   ``leave_one_out`` (default) the option's *own* quote is left out: its expiry is re-fitted
   without it (:func:`pricing.svi.fit_svi`, same weights, the wing constraint when the engine
   repaired the slice's wings) and the model vol is that fit at the option's ``k``. Otherwise a
   quote pulls the fit toward itself and its gap shrinks by its leverage (PRESS residual
   ``e / (1 - h)``): for the tight near-the-money quotes the spread weights favour most.
3. **Executable gaps** (relative, unitless), from the Black-76 vols of the bid and the ask
   (:func:`pricing.iv_chain.implied_vols_from_quotes` on the parity forward)::

       buy_gap  = (model_iv - ask_iv) / model_iv    # the ask is cheap against the model
       sell_gap = (bid_iv - model_iv) / model_iv    # the bid is rich against the model
       gap = max(buy_gap, sell_gap), side = +1 (buy) / -1 (sell)

4. **Confidence score** in ``[0, 1]`` (:func:`confidence_score`), a product of three factors::

       fit      = max(0, 1 - rmse / rmse_max) * [no butterfly/calendar violation in the slice]
       spread   = edge / (edge + spread_vol)   # edge = gap * model_iv beyond the touch,
                                               # spread_vol = ask_iv - bid_iv (both vol points)
       maturity = 1 if min_dte <= dte <= max_dte else 0

   ``rmse`` is the slice's fit RMSE (vol points, all fitted quotes). ``spread = 1/2`` when the
   edge beyond the touch equals one bid-ask spread in vol (what a round trip costs).
5. **Entry**: ``gap > entry_gap`` and ``score >= min_confidence``; the ``max_new`` best by
   ``score * gap`` are traded (``contracts`` each, at the bid/ask), at most ``max_open``
   positions, never twice the same contract; the book is delta-hedged every snapshot with the
   index (:class:`strategies.hedging.DeltaHedger`, P&L split option / hedge / costs).
6. **Exit** (in this order): end of the window, ``dte <= exit_dte``, ``max_hold_days`` snapshots,
   a vol stop (the option's mid IV moved ``stop_vol`` vol points against the position since
   entry), or the gap closed: ``|mid_gap| <= exit_gap`` with ``mid_gap = (mid_iv - model_iv) /
   model_iv`` of the new snapshot's fit (leave-one-out value where the option is in the day's
   candidate set, else the in-sample slice at its ``k``). Closed at the bid/ask.
7. **Risk** (:class:`strategies.risk.OptionRiskMixin`, as ``vrp_harvest``): max-drawdown kill
   switch, daily-loss block, book vega cap (``[risk] max_vega_per_vol_point``, dollars per vol
   point) refusing orders that would exceed it.

The fits do not depend on any searched parameter: :meth:`SurfaceArbitrage.prepare` computes the
candidate table of every quote date once; a backtest only scores and filters it.

Where the design differs (``docs/strategies/surface_arbitrage.md``): its ``HestonCalibrator``
(section 4.1) calibrates in price space with DE + LM and its signal (7.1) compares the model to
the *mid* vol with a fixed 2-vol-point threshold, delta-hedges "with futures" and has no notion of
the option's own quote pulling the fit; here gaps are relative, executable (bid/ask vols), the
fit is leave-one-out, and the confidence combines fit quality, spread and maturity.
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
from data_feeds.chains import ChainSnapshot, QuoteUnavailable
from data_feeds.contracts import OptionContract
from pricing.iv_chain import implied_vols_from_quotes
from pricing.sabr import sabr_implied_vol
from pricing.surface_fit import SurfaceFitConfig, fit_snapshot
from pricing.svi import fit_svi, svi_implied_vol
from strategies.base import BacktestResult, StrategyParams
from strategies.hedging import DeltaHedgedStrategy, HedgeConfig
from strategies.option_strategy import ChainPlugin, ChainStrategy
from strategies.params import Contracts, ExitDte, MaxHoldDays
from strategies.risk import (
    OptionRiskMixin,
    RiskConfig,
    RiskLimits,
)

__all__ = [
    "SurfaceArbitrage",
    "SurfaceArbitrageParams",
    "SurfaceArbitrageStrategy",
    "confidence_score",
    "slice_model_vol",
    "snapshot_candidates",
]

class SurfaceArbitrageParams(StrategyParams):
    """Parameters of ``surface_arbitrage`` (searchable ones in :attr:`tunable`; ``chain_symbol``,
    ``root``, ``rate``, ``model``, ``leave_one_out``, ``scan_min_dte``, ``scan_max_dte``,
    ``min_abs_delta`` and ``max_abs_delta`` are fixed when :meth:`SurfaceArbitrage.prepare` fits
    the snapshots).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the snapshots (``SPX``) and the root fitted and traded (``SPXW``).
    rate : float
        Continuous rate (decimal) for forwards and implied vols.
    model : {"svi", "sabr"}
        Smile model of :func:`pricing.surface_fit.fit_snapshot`.
    leave_one_out : bool
        Model vol of an option from its expiry re-fitted without its quote (SVI only).
    scan_min_dte, scan_max_dte : int
        Calendar days to expiry of the options scanned (model vol, gaps) in ``prepare``.
    min_abs_delta, max_abs_delta : float
        ``|Black-76 forward delta|`` band of the options scanned (the fit set is out of the money,
        so ``<= 0.5``).
    min_dte, max_dte : int
        Maturity band of the confidence score (inside the scanned band).
    entry_gap : float
        Trade when the executable relative gap exceeds this (0.015 = the ask vol 1.5 % below
        the model vol, or the bid vol 1.5 % above; on the 2019 SPXW fits no gap reaches 5 %).
    exit_gap : float
        Close when ``|mid_gap| <= exit_gap`` (< ``entry_gap``).
    rmse_max : float
        Slice RMSE (vol points) at which the fit factor of the score reaches 0.
    min_confidence : float
        Score needed to trade, in ``[0, 1]``.
    max_new, max_open : int
        New positions per snapshot / open positions at most.
    contracts : int
        Contracts per position.
    max_hold_days : int
        Sessions: close after this many daily chain snapshots (one per stored quote date; a
        session without a stored chain is not counted).
    exit_dte : int
        Close at this many calendar days to expiry or fewer (< ``min_dte``).
    stop_vol : float
        Close when the option's mid IV moved this many vol points against the position.
    delta_hedge : bool
        Hedge the book delta every snapshot with the index.
    hedge_rule : {"interval", "band", "whalley_wilmott"}
        :class:`strategies.hedging.HedgeConfig` rule (``interval`` = every snapshot).

    The book vega cap (``max_vega_per_vol_point``, dollars per vol point, default 5,000 for this
    strategy), kill switch, daily-loss block and the hedge's costs are not parameters: they
    come from the config's ``[risk]`` / ``[costs]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "min_dte",
            "max_dte",
            "entry_gap",
            "exit_gap",
            "rmse_max",
            "min_confidence",
            "max_new",
            "max_open",
            "contracts",
            "max_hold_days",
            "exit_dte",
            "stop_vol",
            "delta_hedge",
            "hedge_rule",
        }
    )

    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    model: Literal["svi", "sabr"] = "svi"
    leave_one_out: bool = True
    scan_min_dte: int = Field(5, ge=1, le=730)
    scan_max_dte: int = Field(90, ge=1, le=730)
    min_abs_delta: float = Field(0.05, ge=0.02, lt=0.5)
    max_abs_delta: float = Field(0.5, gt=0.02, le=0.5)
    min_dte: int = Field(7, ge=1, le=730)
    max_dte: int = Field(60, ge=1, le=730)
    entry_gap: float = Field(0.015, gt=0.0, le=1.0)
    exit_gap: float = Field(0.003, ge=0.0, le=1.0)
    rmse_max: float = Field(0.5, gt=0.0, le=10.0)
    min_confidence: float = Field(0.2, ge=0.0, le=1.0)
    max_new: int = Field(2, ge=1, le=50)
    max_open: int = Field(6, ge=1, le=200)
    contracts: Contracts = 1
    max_hold_days: MaxHoldDays = 5
    exit_dte: ExitDte = 3
    stop_vol: float = Field(3.0, gt=0.0, le=100.0)
    delta_hedge: bool = True
    hedge_rule: Literal["interval", "band", "whalley_wilmott"] = "interval"

    @model_validator(mode="after")
    def _consistent(self) -> SurfaceArbitrageParams:
        if self.exit_gap >= self.entry_gap:
            raise ValueError(f"exit_gap ({self.exit_gap}) must be < entry_gap ({self.entry_gap})")
        if not self.scan_min_dte <= self.min_dte <= self.max_dte <= self.scan_max_dte:
            raise ValueError(
                "need scan_min_dte <= min_dte <= max_dte <= scan_max_dte, got "
                f"{self.scan_min_dte}, {self.min_dte}, {self.max_dte}, {self.scan_max_dte}"
            )
        if self.exit_dte >= self.min_dte:
            raise ValueError(
                f"exit_dte ({self.exit_dte}) must be < min_dte ({self.min_dte}): a new position "
                "would be closed on its first day"
            )
        if self.min_abs_delta >= self.max_abs_delta:
            raise ValueError(
                f"min_abs_delta ({self.min_abs_delta}) must be < max_abs_delta "
                f"({self.max_abs_delta})"
            )
        if self.max_new > self.max_open:
            raise ValueError(f"max_new ({self.max_new}) must be <= max_open ({self.max_open})")
        if self.leave_one_out and self.model != "svi":
            raise ValueError(
                f"leave_one_out needs model = 'svi' (a {self.model} refit per option is too "
                "slow); set leave_one_out = false"
            )
        return self

    def hedge_config(self, costs: CostsConfig) -> HedgeConfig:
        """The :class:`strategies.hedging.HedgeConfig` of these parameters and the config's
        hedge ``costs``."""
        return HedgeConfig(
            rule=self.hedge_rule,
            half_spread=costs.hedge_half_spread,
            commission_per_share=costs.hedge_commission_per_share,
        )

    def risk_config(self, limits: RiskLimits) -> RiskConfig:
        """The :class:`strategies.risk.RiskConfig` of the config's ``limits`` (kill switch,
        daily loss, vega cap: ``[risk] max_vega_per_vol_point`` in dollars per vol point,
        converted once by :meth:`RiskLimits.risk_config` to the risk manager's ``max_abs_vega``
        in dollars per 1.00 of vol)."""
        return limits.risk_config()


# --------------------------------------------------------------------------------------
# signals (pure functions)
# --------------------------------------------------------------------------------------


def slice_model_vol(slice_row: Mapping[str, Any], log_moneyness: float, model: str) -> float:
    """Model implied vol of one fitted slice at ``log_moneyness``.

    Parameters
    ----------
    slice_row : mapping
        A row of :attr:`pricing.surface_fit.SnapshotSurface.slices` (``tte`` years, ``forward``
        index points, ``params`` dict, ``status``).
    log_moneyness : float
        ``k = ln(strike / forward)`` on the slice's forward.
    model : {"svi", "sabr"}
        Slice model: raw SVI ``sqrt(w(k) / tte)`` (:func:`pricing.svi.svi_implied_vol`) or
        Hagan's SABR at ``strike = forward * e^k`` (:func:`pricing.sabr.sabr_implied_vol`).

    Returns
    -------
    float
        Decimal vol; NaN when the slice has no fit or ``k`` is not finite.
    """
    par = slice_row.get("params")
    tte = float(slice_row["tte"])
    if slice_row.get("status") != "ok" or not par or not math.isfinite(log_moneyness):
        return math.nan
    if not tte > 0:
        return math.nan
    if model == "svi":
        keys = ("a", "b", "rho", "m", "sigma")
        return float(svi_implied_vol(log_moneyness, tte, *(par[k] for k in keys)))
    fwd = float(slice_row["forward"])
    keys = ("alpha", "beta", "rho", "nu")
    return float(sabr_implied_vol(fwd * math.exp(log_moneyness), fwd, tte, *(par[k] for k in keys)))


def _loo_vols(points: pd.DataFrame, rows: np.ndarray, wings: bool) -> np.ndarray:
    """Leave-one-out SVI vols at ``points.iloc[rows]`` (one slice, points sorted by ``k``)."""
    k = points["log_moneyness"].to_numpy(dtype=float)
    w = points["total_variance"].to_numpy(dtype=float)
    om = points["weight"].to_numpy(dtype=float)
    tte = float(points["tte"].iloc[0])
    out = np.full(rows.size, np.nan)
    for j, i in enumerate(rows):
        keep = np.ones(k.size, dtype=bool)
        keep[i] = False
        fit = fit_svi(k[keep], w[keep], om[keep], wings=wings)
        if fit.params is not None:
            out[j] = float(fit.params.implied_vol(k[i], tte))
    return out


CANDIDATE_COLUMNS = (
    "root",
    "expiration",
    "strike",
    "right",
    "dte",
    "tte",
    "forward",
    "log_moneyness",
    "delta",
    "vega",
    "bid",
    "ask",
    "mid",
    "bid_iv",
    "ask_iv",
    "mid_iv",
    "model_iv_fit",
    "model_iv",
    "slice_rmse",
    "slice_arbitrage",
    "buy_gap",
    "sell_gap",
    "gap",
    "side",
    "mid_gap",
    "spread_vol",
)
"""Columns of :func:`snapshot_candidates` (units in its docstring)."""


def snapshot_candidates(
    snapshot: ChainSnapshot, params: SurfaceArbitrageParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Fit ``snapshot``'s smiles and compute the model vol and gaps of every scanned option.

    Parameters
    ----------
    snapshot : ChainSnapshot
        One snapshot holding (at least) ``params.root``.
    params : SurfaceArbitrageParams
        Load-time settings (model, leave-one-out, scan band).

    Returns
    -------
    candidates : pandas.DataFrame
        One row per scanned option, columns :data:`CANDIDATE_COLUMNS`: contract fields, ``dte``
        (calendar days), ``tte`` (years ACT/365), ``forward``/``bid``/``ask``/``mid`` (index
        points), ``log_moneyness``, ``delta`` (Black-76 forward delta), ``vega`` (points per
        1.00 vol), ``bid_iv``/``ask_iv``/``mid_iv`` (decimal; NaN when not invertible),
        ``model_iv_fit`` (in-sample model vol) and ``model_iv`` (the one used: leave-one-out or
        in-sample; decimal), ``slice_rmse`` (vol points), ``slice_arbitrage`` (butterfly +
        calendar violations left in the slice), ``buy_gap``/``sell_gap``/``gap``/``mid_gap``
        (relative, module docstring step 3), ``side`` (+1 buy, -1 sell), ``spread_vol``
        (``ask_iv - bid_iv``, vol points).
    slices : pandas.DataFrame
        :attr:`pricing.surface_fit.SnapshotSurface.slices` of ``params.root``.
    counts : dict of str to int
        ``fitted`` quotes, ``scanned`` options, and options left out by rule (``not_root``,
        ``dte_outside_scan``, ``delta_outside_band``, ``slice_not_fitted``, ``no_bid_ask_iv``).
    """
    p = params
    surf = fit_snapshot(snapshot, p.model, SurfaceFitConfig(rate=p.rate))
    slices = surf.slices[surf.slices["root"] == p.root].reset_index(drop=True)
    pts = surf.points.reset_index(drop=True)
    day = np.datetime64(snapshot.quote_date, "D")
    dte = (pts["expiration"].to_numpy().astype("datetime64[D]") - day).astype(int)
    counts = {"fitted": len(pts)}
    rules = {
        "not_root": pts["root"].to_numpy() != p.root,
        "dte_outside_scan": (dte < p.scan_min_dte) | (dte > p.scan_max_dte),
        "delta_outside_band": ~(
            (np.abs(pts["delta"].to_numpy()) >= p.min_abs_delta)
            & (np.abs(pts["delta"].to_numpy()) <= p.max_abs_delta)
        ),
        "slice_not_fitted": ~np.isfinite(pts["model_vol"].to_numpy(dtype=float)),
    }
    keep = np.ones(len(pts), dtype=bool)
    for name, fails in rules.items():
        counts[name] = int((keep & fails).sum())
        keep &= ~fails
    sel = pts[keep].copy()
    sel["dte"] = dte[keep]
    ivs = implied_vols_from_quotes(sel, sides=("bid", "ask"), rate=p.rate)
    sel["bid_iv"], sel["ask_iv"] = ivs["implied_vol_bid"], ivs["implied_vol_ask"]
    no_iv = ~(np.isfinite(sel["bid_iv"]) & np.isfinite(sel["ask_iv"]))
    counts["no_bid_ask_iv"] = int(no_iv.sum())
    sel = sel[~no_iv]
    sel["mid_iv"] = sel["implied_vol"]
    sel["model_iv_fit"] = sel["model_vol"]
    meta = slices.set_index("expiration")
    exp_dates = pd.DatetimeIndex(sel["expiration"]).date
    sel["slice_rmse"] = meta["rmse"].reindex(exp_dates).to_numpy(dtype=float)
    arb = meta["butterfly_arbitrage_violations"].astype(float) + meta[
        "calendar_arbitrage_violations"
    ].astype(float)
    sel["slice_arbitrage"] = arb.reindex(exp_dates).to_numpy(dtype=float)
    model_iv = sel["model_vol"].to_numpy(dtype=float).copy()
    if p.leave_one_out and len(sel):
        exp_all = pts["expiration"].to_numpy()
        for exp in np.unique(sel["expiration"].to_numpy()):
            in_slice = np.flatnonzero((exp_all == exp) & (pts["root"].to_numpy() == p.root))
            slice_pts = pts.iloc[in_slice]
            pos = {orig: j for j, orig in enumerate(in_slice)}
            mine = np.flatnonzero(sel["expiration"].to_numpy() == exp)
            rows = np.array([pos[i] for i in sel.index[mine]])
            repair = meta.at[pd.Timestamp(exp).date(), "repair"] or ""
            model_iv[mine] = _loo_vols(slice_pts, rows, wings="wings" in repair)
    sel["model_iv"] = model_iv
    mv = sel["model_iv"].to_numpy(dtype=float)
    sel["buy_gap"] = (mv - sel["ask_iv"]) / mv
    sel["sell_gap"] = (sel["bid_iv"] - mv) / mv
    sel["side"] = np.where(sel["buy_gap"] >= sel["sell_gap"], 1, -1)
    sel["gap"] = np.maximum(sel["buy_gap"], sel["sell_gap"])
    sel["mid_gap"] = (sel["mid_iv"] - mv) / mv
    sel["spread_vol"] = 100.0 * (sel["ask_iv"] - sel["bid_iv"])
    sel["expiration"] = exp_dates
    counts["scanned"] = len(sel)
    return sel[list(CANDIDATE_COLUMNS)].reset_index(drop=True), slices, counts


def confidence_score(candidates: pd.DataFrame, params: SurfaceArbitrageParams) -> pd.DataFrame:
    """Score factors and the confidence score of candidate rows (module docstring step 4).

    Parameters
    ----------
    candidates : pandas.DataFrame
        Rows of :func:`snapshot_candidates` (``gap``, ``model_iv``, ``spread_vol``,
        ``slice_rmse``, ``slice_arbitrage``, ``dte``).
    params : SurfaceArbitrageParams
        ``rmse_max``, ``min_dte``, ``max_dte``.

    Returns
    -------
    pandas.DataFrame
        Same index: ``fit_factor``, ``spread_factor``, ``maturity_factor``, ``score`` (their
        product, in ``[0, 1]``) and ``rank`` (``score * max(gap, 0)``). ``edge`` (vol points)
        is ``max(gap, 0) * model_iv * 100``; the spread factor is ``edge / (edge +
        spread_vol)`` (0 when both are 0).
    """
    c = candidates
    fit = np.clip(1.0 - c["slice_rmse"].to_numpy(float) / params.rmse_max, 0.0, 1.0)
    fit = np.where(c["slice_arbitrage"].to_numpy(float) == 0, fit, 0.0)
    edge = np.maximum(c["gap"].to_numpy(float), 0.0) * c["model_iv"].to_numpy(float) * 100.0
    spread = np.maximum(c["spread_vol"].to_numpy(float), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread_f = np.where(edge + spread > 0, edge / (edge + spread), 0.0)
    dte = c["dte"].to_numpy(float)
    mat = ((dte >= params.min_dte) & (dte <= params.max_dte)).astype(float)
    score = fit * spread_f * mat
    return pd.DataFrame(
        {
            "fit_factor": fit,
            "spread_factor": spread_f,
            "maturity_factor": mat,
            "score": score,
            "rank": score * np.maximum(c["gap"].to_numpy(float), 0.0),
        },
        index=c.index,
    )


def select_trades(candidates: pd.DataFrame, params: SurfaceArbitrageParams) -> pd.DataFrame:
    """Candidates passing ``gap > entry_gap`` and ``score >= min_confidence``, best
    ``score * gap`` first (ties: expiration, strike, right -- deterministic)."""
    scored = pd.concat([candidates, confidence_score(candidates, params)], axis=1)
    ok = (scored["gap"] > params.entry_gap) & (scored["score"] >= params.min_confidence)
    out = scored[ok]
    return out.sort_values(
        ["rank", "expiration", "strike", "right"], ascending=[False, True, True, True]
    )


# --------------------------------------------------------------------------------------
# backtrader strategy
# --------------------------------------------------------------------------------------


class SurfaceArbitrageStrategy(OptionRiskMixin, DeltaHedgedStrategy, ChainStrategy):
    """backtrader face of ``surface_arbitrage`` (module docstring, steps 5-7).

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : SurfaceArbitrageParams
    candidates : mapping of datetime.date to pandas.DataFrame
        :func:`snapshot_candidates` of each quote date (fitted on that date's snapshot only).
    slices : mapping of datetime.date to pandas.DataFrame
        The fitted slices of each quote date (exits of options outside the candidate set).
    last_day : datetime.date
        Last session of the window: positions are closed there, nothing opens.
    hedge : HedgeConfig
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default: this strategy's default limits).

    The decision of ``D`` reads ``candidates[D]`` / ``slices[D]`` and ``D``'s quotes only.
    ``log_rows``: one row per snapshot (the backtest's ``daily_log`` adds one ``kind =
    "position"`` row per position, ``status = "traded"``, on its entry date); ``trades``: one
    row per position (``net_pnl``: its trade in :attr:`book`, option fills and its share of the
    leg's settlement, dollars; the untagged hedge shares sit in the book's unallocated trade and
    in ``hedger.pnl_frame()``).
    """

    params = (("candidates", None), ("slices", None))
    rules_cls = SurfaceArbitrageParams
    counters = ("exit_deferred", "no_exit_mark", "risk_closed")
    default_risk: ClassVar[Mapping[str, Any]] = {"max_vega_per_vol_point": 5000.0}

    def __init__(self) -> None:
        super().__init__()
        self.candidates: Mapping[dt.date, pd.DataFrame] = self.p.candidates or {}
        self.slices: Mapping[dt.date, pd.DataFrame] = self.p.slices or {}
        self.open_pos: dict[str, dict[str, Any]] = {}

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """:meth:`next_options`, then the hedge when ``delta_hedge``."""
        self.next_options(snapshot)
        if self.rules.delta_hedge:
            self.hedger.hedge(self, snapshot)

    def next_options(self, snapshot: ChainSnapshot) -> None:
        """Risk step, book closed positions, exits, then entries."""
        day = snapshot.quote_date
        self.risk_step()
        row: dict[str, Any] = {"date": day}
        self.log_rows.append(row)
        for tag in list(self.open_pos):
            if tag not in self.combos:
                reason = "settled" if not self.risk.killed else f"risk: {self.risk.kill_reason}"
                self.counts["risk_closed"] += reason != "settled"
                self._finish(tag, day, reason)
        for tag in list(self.open_pos):
            self._manage(tag, snapshot, day)
        row["open_positions"] = len(self.open_pos)
        self._enter(snapshot, day, row)

    # -- exits ------------------------------------------------------------------------------------
    def _exit_gap(self, pos: dict[str, Any], snap: ChainSnapshot, day: dt.date) -> tuple:
        """``(mid_iv, model_iv, mid_gap)`` of a held option on ``day`` (NaN when unknown)."""
        c: OptionContract = pos["contract"]
        cand = self.candidates.get(day)
        if cand is not None and len(cand):
            hit = cand[
                (cand["expiration"] == c.expiration)
                & (cand["strike"] == c.strike)
                & (cand["right"] == c.right)
            ]
            if len(hit):
                h = hit.iloc[0]
                return float(h["mid_iv"]), float(h["model_iv"]), float(h["mid_gap"])
        try:
            q = snap.with_implied_vols(c.expiration, c.root)
        except QuoteUnavailable as exc:
            self.count_unavailable(exc)
            return math.nan, math.nan, math.nan
        q = q[(q["strike"] == c.strike) & (q["right"] == c.right)]
        sl = self.slices.get(day)
        if q.empty or sl is None:
            return math.nan, math.nan, math.nan
        mid_iv = float(q["implied_vol"].iloc[0])
        srow = sl[sl["expiration"] == c.expiration]
        if srow.empty:
            return mid_iv, math.nan, math.nan
        model = slice_model_vol(
            srow.iloc[0].to_dict(), float(q["log_moneyness"].iloc[0]), self.rules.model
        )
        return mid_iv, model, (mid_iv - model) / model

    def _manage(self, tag: str, snap: ChainSnapshot, day: dt.date) -> None:
        pos, r = self.open_pos[tag], self.rules
        pos["bars"] += 1
        mid_iv, model_iv, mid_gap = self._exit_gap(pos, snap, day)
        pos.update(last_mid_iv=mid_iv, last_model_iv=model_iv, last_mid_gap=mid_gap)
        if not math.isfinite(mid_gap):
            self.counts["no_exit_mark"] += 1
        moved = pos["side"] * (mid_iv - pos["entry_mid_iv"]) * 100.0  # vol points, + = for us
        reason = None
        if day >= self.last_day:
            reason = "window_end"
        elif (pos["contract"].expiration - day).days <= r.exit_dte:
            reason = "dte"
        elif pos["bars"] >= r.max_hold_days:
            reason = "time"
        elif math.isfinite(moved) and -moved >= r.stop_vol:
            reason = "stop"
        elif math.isfinite(mid_gap) and abs(mid_gap) <= r.exit_gap:
            reason = "gap_closed"
        if reason is None:
            return
        self.close_combo(tag)
        if tag in self.combos:
            self.counts["exit_deferred"] += 1
            return
        self._finish(tag, day, reason)

    def _finish(self, tag: str, day: dt.date, reason: str) -> None:
        """Log the exit with the book's net P&L of the trade (at the marks while still open)."""
        pos = self.open_pos.pop(tag)
        self.book.note(pos["trade_id"], reason)
        trade = self.book.trade(pos["trade_id"])
        c = pos["contract"]
        self.trades.append(
            {
                "tag": tag,
                "entry_date": pos["entry_date"],
                "exit_date": day,
                "exit_reason": reason,
                "expiration": c.expiration,
                "strike": c.strike,
                "right": c.right,
                "side": pos["side"],
                "contracts": pos["contracts"],
                "entry_gap": pos["entry_gap"],
                "entry_score": pos["entry_score"],
                "entry_model_iv": pos["entry_model_iv"],
                "entry_mid_iv": pos["entry_mid_iv"],
                "exit_mid_iv": pos.get("last_mid_iv", math.nan),
                "exit_model_iv": pos.get("last_model_iv", math.nan),
                "exit_mid_gap": pos.get("last_mid_gap", math.nan),
                "bars_held": pos["bars"],
                "trade_id": pos["trade_id"],
                "commissions": trade.commission,
                "net_pnl": trade.net_pnl(self.obroker),
            }
        )

    # -- entries ----------------------------------------------------------------------------------
    def _enter(self, snap: ChainSnapshot, day: dt.date, row: dict[str, Any]) -> None:
        r = self.rules
        cand = self.candidates.get(day)
        if cand is None:
            row["status"] = "no_fit"
            return
        picks = select_trades(cand, r)
        row.update(scanned=len(cand), passing=len(picks), opened=0)
        if day >= self.last_day:
            row["status"] = "window_end"
            return
        if picks.empty:
            row["status"] = "no_candidate"
            return
        if self.risk_blocked():
            row["status"] = "risk_blocked"
            return
        held = {p["contract"] for p in self.open_pos.values()}
        opened = 0
        for _, c in picks.iterrows():
            if opened >= r.max_new or len(self.open_pos) >= r.max_open:
                break
            contract = snap.contract(r.root, c["expiration"], float(c["strike"]), c["right"])
            if contract in held:
                continue
            side = int(c["side"])
            tag = f"sa {day:%Y-%m-%d} {c['expiration']:%Y-%m-%d} {c['strike']:g}{c['right']}"
            try:
                combo = snap.combo("single", [(contract, 1)])
            except QuoteUnavailable as exc:
                self.count_unavailable(exc)
                continue
            if not self.open_combo(combo, side * r.contracts, tag=tag):
                continue
            opened += 1
            self.open_pos[tag] = {
                "trade_id": int(self.last_trade_id or 0),
                "contract": contract,
                "side": side,
                "contracts": r.contracts,
                "entry_date": day,
                "entry_gap": float(c["gap"]),
                "entry_score": float(c["score"]),
                "entry_model_iv": float(c["model_iv"]),
                "entry_mid_iv": float(c["mid_iv"]),
                "bars": 0,
            }
        row.update(opened=opened, status="opened" if opened else "not_opened")

    def stop(self) -> None:
        """Positions still open after the last bar are logged ``open_at_end`` at their marks."""
        day = self.snapshot.quote_date if self.snapshot is not None else dt.date.min
        for tag in list(self.open_pos):
            self._finish(tag, day, "open_at_end")
        if self.log_rows:  # the hedge: the book's unallocated trade
            self.log_unallocated(self.log_rows[-1])


# --------------------------------------------------------------------------------------
# plugin
# --------------------------------------------------------------------------------------


class SurfaceArbitrage(ChainPlugin):
    """Plugin: fit every quote date's smiles once, score the candidates per trial, one Cerebro
    per window.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params.
    """

    name = "surface_arbitrage"
    description = "Delta-hedged single options whose bid/ask vol is far from the fitted smile"
    Params = SurfaceArbitrageParams
    required_data = ("underlying", "chains")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss", "max_vega_per_vol_point"})
    default_risk = SurfaceArbitrageStrategy.default_risk
    strategy_cls = SurfaceArbitrageStrategy
    feed_target_dte = "min_dte"
    signal_source = None
    info_tables: ClassVar[Mapping[str, str]] = {"sa_trades": "trades"}

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """Fit the smiles and compute the candidate table of every quote date.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated daily OHLC: settlement, benchmark) and ``chains``
            (a :class:`data_feeds.chain_store.ChainStore` or any snapshot source).
        grid : mapping
            Searched parameter -> candidate values (none may be load-time).

        Raises
        ------
        ValueError
            A load-time parameter is searched; no quote date inside the underlying's sessions.
        """
        p = self.setup_chains(data, grid)
        assert isinstance(p, SurfaceArbitrageParams)
        self.candidates: dict[dt.date, pd.DataFrame] = {}
        self.slices: dict[dt.date, pd.DataFrame] = {}
        rows = []
        for i, d in enumerate(self.quote_dates, start=1):
            self.progress(f"{p.model.upper()} fits, quote date", i, len(self.quote_dates))
            snap = self.source.snapshot(p.chain_symbol, d, None, [p.root], False, p.rate)
            cand, slices, counts = snapshot_candidates(snap, p)
            self.candidates[d], self.slices[d] = cand, slices
            ok = slices[(slices["status"] == "ok") & slices["dte"].between(p.min_dte, p.max_dte)]
            rows.append(
                {
                    "date": d,
                    **counts,
                    "slices_fitted": int((slices["status"] == "ok").sum()),
                    "median_rmse_band": float(ok["rmse"].median()) if len(ok) else math.nan,
                    "passing_base": len(select_trades(cand, p)),
                }
            )
        self.fit_report = pd.DataFrame(rows).set_index("date")
        fr = self.fit_report
        removed = {
            k: int(fr[k].sum())
            for k in (
                "not_root",
                "dte_outside_scan",
                "delta_outside_band",
                "slice_not_fitted",
                "no_bid_ask_iv",
            )
        }
        how = "leave-one-out" if p.leave_one_out else "in-sample"
        self.reports.append(
            f"{p.model.upper()} fits on {len(fr)} quote dates ({how} model vols): "
            f"{int(fr['scanned'].sum())} options scanned of "
            f"{int(fr['fitted'].sum())} fitted quotes; left out: "
            + ", ".join(f"{k} {v}" for k, v in removed.items())
        )
        self.reports.append(
            f"median slice RMSE in the {p.min_dte}-{p.max_dte} DTE band "
            f"{fr['median_rmse_band'].median():.3f} vol points; candidates passing the base "
            f"params per day: mean {fr['passing_base'].mean():.2f}, max {fr['passing_base'].max()}"
        )

    def finish_backtest(
        self, result: BacktestResult, strat: Any, params: Any
    ) -> BacktestResult:
        """``info["positions"]`` (positions opened in the window) and, in the daily log, one
        ``kind = "position"`` row per position on its entry date next to the ``kind = "day"``
        rows (the runner counts the ``traded`` ones)."""
        trades = result.info["sa_trades"]
        result.info["positions"] = float(len(trades))
        log = result.daily_log.assign(kind="day")
        if len(trades):
            pos = trades.assign(
                kind="position",
                date=trades["entry_date"],
                status=np.where(trades["exit_reason"] == "open_at_end", "open_at_end", "traded"),
            )
            log = pd.concat([log, pos], ignore_index=True).sort_values(
                "date", kind="stable", ignore_index=True
            )
        result.daily_log = log
        return result

    def data_fingerprint(self) -> str:
        """Hash of the underlying and of every date's candidate gaps."""
        gaps = pd.concat(
            [c[["strike", "model_iv", "gap"]].assign(d=str(d)) for d, c in self.candidates.items()]
        ).set_index("d")
        return self.fingerprint_with(gaps.fillna(-1.0))

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """``surface_arbitrage/fit_report.csv`` (per date: counts, RMSE, candidates passing the
        base params), ``passing.csv`` (those candidates, scored) and ``report.txt``; returns the
        mean candidates per day and the median band RMSE (vol points)."""
        out = self.report_folder(folder, "surface_arbitrage")
        self.fit_report.to_csv(out / "fit_report.csv")
        passing = [select_trades(c, self.base).assign(date=d) for d, c in self.candidates.items()]
        pd.concat(passing).to_csv(out / "passing.csv", index=False)
        return {
            "sa_candidates_per_day": float(self.fit_report["passing_base"].mean()),
            "sa_median_rmse_vol_pts": float(self.fit_report["median_rmse_band"].median()),
        }
