"""``ml_spreads``: XGBoost direction and volatility forecasts choosing real option spreads by rule.

The hybrid system of design document 001: machine learning predicts, rules trade.

1. **Features** (:func:`indicators.features.market_features`): technical, volatility and regime
   features of the daily underlying and VIX, every value at session ``t`` from sessions ``<= t``.
2. **Models** (:mod:`strategies.ml_models`): an XGBoost direction classifier (5-session forward
   return > +1 % bullish, < -1 % bearish, else neutral) and an XGBoost forecaster of the VIX rank
   5 sessions ahead, trained walk-forward (train 504, test 63, step 21 sessions) with a purge gap
   of the label horizon, in :meth:`MlSpreads.prepare`, before any backtest. Each session gets the
   prediction of the last model trained before it.
3. **Rules** (this module): on quote date ``D`` the strategy reads the features and predictions of
   the previous session ``D-1`` (the chain snapshot is taken before ``D``'s close), then

   * picks the structure from the strategy matrix (:func:`choose_structure`): bull call / bear
     put debit spreads, bull put / bear call credit spreads, short iron condor;
   * picks the DTE from the regime and the IV rank, clamped to 14-45 (:func:`select_dte`) and
     the listed expiry nearest it inside that range;
   * picks strikes by delta targets per regime (:data:`DELTA_TARGETS`): the near leg at the
     larger |delta|, the far leg further out of the money at the smaller one; each is the listed
     out-of-the-money strike whose Black-76 delta is nearest the target, and a target with no
     listed strike within ``delta_tolerance`` is flagged "not listed" (:func:`select_spread`);
   * sizes from account risk, regime and confidence, 1-10 contracts (:func:`design_contracts`);
   * trades the spread at the snapshot's bid/ask through :class:`brokers.OptionsBroker`, marks it
     daily at the snapshots' mids, and exits on DTE, profit target or stop (evaluated on fresh
     marks only) or at the end of the backtest window.

Deltas and prices come from the chain itself: the put-call-parity forward of each expiry
(:meth:`data_feeds.chains.ChainSnapshot.forward`), or, when no strike of the expiry has both a call
and a put (the sparse SPY 2021 subset), the chain's own underlying price carried at the rate
(:meth:`~data_feeds.chains.ChainSnapshot.forward_estimate`), flagged
``forward_source = "underlying_price"``. The ML inputs come from the ``[data]`` underlying and VIX.
When the chain's underlying price disagrees with the ``[data]`` underlying (the 2017-2018 SPX
subset is ~11 % away and uncorrelated day to day), the report says so (``docs/ml_spreads.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from brokers import OptionFill
from brokers.cost_config import CostsConfig
from data_feeds import SnapshotCache, align_to_index
from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot, Combo
from data_feeds.contracts import OptionContract
from data_feeds.ohlc import fingerprint
from indicators.features import REGIMES, RegimeThresholds, market_features
from pricing import bs_greeks, implied_vol
from strategies.base import StrategyParams
from strategies.evaluation import outcome_table, transition_counts
from strategies.ml_models import (
    DIRECTION_CLASSES,
    ModelSettings,
    WalkForwardModels,
    model_features,
    train_walk_forward,
)
from strategies.option_strategy import (
    ChainPlugin,
    ChainStrategy,
    ComboPosition,
)
from strategies.params import AccountRisk, ExitDte, MaxContracts, StopLoss, TakeProfit
from strategies.risk import (
    OptionRiskMixin,
    RiskLimits,
    combo_max_loss_at_fill,
    max_loss_contracts,
)

__all__ = [
    "BASE_DTE",
    "DELTA_TARGETS",
    "REGIME_SIZE_MULTIPLIER",
    "STRUCTURES",
    "MlSpreads",
    "MlSpreadsParams",
    "MlSpreadsStrategy",
    "NoSpread",
    "SpreadChoice",
    "chain_underlying_mismatch",
    "choose_structure",
    "delta_target_audit",
    "design_contracts",
    "select_dte",
    "select_spread",
    "side_deltas",
]

Structure = Literal["bull_call", "bear_put", "bull_put", "bear_call", "iron_condor"]

STRUCTURES: dict[str, dict[str, Any]] = {
    "bull_call": {"rights": ("C",), "credit": False},
    "bear_put": {"rights": ("P",), "credit": False},
    "bull_put": {"rights": ("P",), "credit": True},
    "bear_call": {"rights": ("C",), "credit": True},
    "iron_condor": {"rights": ("P", "C"), "credit": True},
}
"""Structures: the rights they trade and whether they open for a credit (sell the near leg, buy
the far one) or a debit (buy the near leg, sell the far one)."""

DELTA_TARGETS: dict[str, tuple[float, float]] = {
    "low_vol": (0.40, 0.30),
    "high_vol": (0.30, 0.20),
    "iv_contraction": (0.25, 0.15),
    "iv_expansion": (0.45, 0.35),
    "neutral": (0.35, 0.25),
}
"""``(near, far)`` absolute Black-76 deltas per regime (design doc 001, section 5.2, ``long`` /
``short``): the near leg is bought in a debit spread and sold in a credit spread."""

BASE_DTE: dict[str, int] = {
    "low_vol": 30,
    "high_vol": 21,
    "iv_contraction": 21,
    "iv_expansion": 45,
    "neutral": 30,
}
"""Base calendar days to expiry per regime (design doc 001, section 5.3)."""

REGIME_SIZE_MULTIPLIER: dict[str, float] = {
    "low_vol": 1.0,
    "high_vol": 0.5,
    "iv_contraction": 1.0,
    "iv_expansion": 0.75,
    "neutral": 0.75,
}
"""Risk multiplier per regime (design doc 001, section 5.4)."""


# --------------------------------------------------------------------------------------
# rules (pure functions)
# --------------------------------------------------------------------------------------


def choose_structure(
    regime: str,
    direction: str,
    confidence: float,
    *,
    neutral_regime_confidence: float = 0.3,
    allow_iron_condor: bool = True,
) -> tuple[str | None, str]:
    """The strategy matrix (design doc 001, section 5.1).

    ========================  ==============  ==============  ==================
    regime                    bullish         bearish         neutral
    ========================  ==============  ==============  ==================
    ``low_vol``               bull_call       bear_put        no trade
    ``high_vol``              bull_put        bear_call       iron_condor
    ``iv_contraction``        bull_put        bear_call       iron_condor
    ``iv_expansion``          bull_call       bear_put        no trade
    ``neutral`` (confident)   bull_call       bear_put        no trade
    ========================  ==============  ==============  ==================

    The design's "credit spreads" / "debit spreads" for any direction in ``iv_contraction`` /
    ``iv_expansion`` take their side from the direction; a neutral forecast gets the iron condor
    (credit) or nothing (debit). In the ``neutral`` regime a directional spread needs
    ``confidence >= neutral_regime_confidence``.

    Parameters
    ----------
    regime : str
        One of :data:`indicators.features.REGIMES`.
    direction : str
        One of :data:`strategies.ml_models.DIRECTION_CLASSES`.
    confidence : float
        Rescaled classifier confidence in ``[0, 1]``.
    neutral_regime_confidence : float
        Confidence needed in the ``neutral`` regime.
    allow_iron_condor : bool
        When False, the iron condor cells are "no trade".

    Returns
    -------
    structure : str or None
        A key of :data:`STRUCTURES`, or None.
    reason : str
        ``"matrix"`` when a structure is chosen, else why not (``matrix_no_trade``,
        ``neutral_regime_low_confidence``, ``iron_condor_disabled``).

    Raises
    ------
    ValueError
        Unknown regime or direction.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {REGIMES}")
    if direction not in DIRECTION_CLASSES:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTION_CLASSES}")
    if regime in ("high_vol", "iv_contraction"):
        if direction == "neutral":
            return (
                ("iron_condor", "matrix") if allow_iron_condor else (None, "iron_condor_disabled")
            )
        return ("bull_put" if direction == "bullish" else "bear_call"), "matrix"
    if direction == "neutral":
        return None, "matrix_no_trade"
    if regime == "neutral" and confidence < neutral_regime_confidence:
        return None, "neutral_regime_low_confidence"
    return ("bull_call" if direction == "bullish" else "bear_put"), "matrix"


def select_dte(regime: str, iv_rank: float, *, min_dte: int = 14, max_dte: int = 45) -> int:
    """Target calendar days to expiry (design doc 001, section 5.3).

    :data:`BASE_DTE` of the regime, minus 7 when ``iv_rank > 0.7``, plus 7 when ``iv_rank < 0.3``,
    clamped to ``[min_dte, max_dte]``.

    Parameters
    ----------
    regime : str
        One of :data:`indicators.features.REGIMES`.
    iv_rank : float
        IV (VIX) rank as a fraction; NaN leaves the base unchanged.
    min_dte, max_dte : int
        Clamp, calendar days (14, 45).

    Returns
    -------
    int
        Calendar days.

    Raises
    ------
    ValueError
        Unknown regime or ``min_dte > max_dte``.
    """
    if regime not in BASE_DTE:
        raise ValueError(f"unknown regime {regime!r}; expected one of {tuple(BASE_DTE)}")
    if min_dte > max_dte:
        raise ValueError(f"min_dte ({min_dte}) > max_dte ({max_dte})")
    dte = BASE_DTE[regime]
    if iv_rank > 0.7:
        dte -= 7
    elif iv_rank < 0.3:
        dte += 7
    return max(min_dte, min(max_dte, dte))


def design_contracts(
    account_value: float,
    max_loss_per_contract: float,
    regime: str,
    confidence: float,
    *,
    account_risk: float = 0.02,
    max_contracts: int = 10,
) -> tuple[int, bool]:
    """Contracts from account risk, regime and confidence (design doc 001, section 5.4).

    ``risk = account_value * account_risk * REGIME_SIZE_MULTIPLIER[regime] * (0.5 + 0.5 *
    confidence)``; ``contracts = floor(risk / max_loss_per_contract)`` clamped to
    ``[1, max_contracts]`` (computed by the risk layer's
    :func:`strategies.risk.max_loss_contracts` with ``min_contracts = 1``).

    Parameters
    ----------
    account_value : float
        Dollars.
    max_loss_per_contract : float
        Dollars lost by one spread at its worst expiry payoff from the entry price (> 0).
    regime : str
        Regime name.
    confidence : float
        Rescaled confidence in ``[0, 1]``.
    account_risk : float
        Share of the account risked per trade at full confidence (0.02).
    max_contracts : int
        Upper clamp (10).

    Returns
    -------
    contracts : int
        In ``[1, max_contracts]``.
    over_budget : bool
        True when even one contract risks more than the budget (the design's floor of 1
        contract then exceeds the account-risk rule; the caller decides whether to trade).

    Raises
    ------
    ValueError
        ``max_loss_per_contract <= 0``, unknown regime.
    """
    if not max_loss_per_contract > 0:
        raise ValueError(f"max_loss_per_contract must be > 0, got {max_loss_per_contract!r}")
    if regime not in REGIME_SIZE_MULTIPLIER:
        raise ValueError(f"unknown regime {regime!r}")
    conf = min(max(confidence, 0.0), 1.0) if math.isfinite(confidence) else 0.0
    fraction = account_risk * REGIME_SIZE_MULTIPLIER[regime] * (0.5 + 0.5 * conf)
    n = max_loss_contracts(
        account_value,
        fraction,
        max_loss_per_contract,
        min_contracts=1,
        max_contracts=max_contracts,
    )
    return n, fraction * account_value < max_loss_per_contract


# --------------------------------------------------------------------------------------
# strike selection on a real chain
# --------------------------------------------------------------------------------------


def _where(snap: ChainSnapshot, expiration: dt.date | None = None, root: str | None = None) -> str:
    """``"SPY snapshot of 2021-06-01 15:45, root SPY, expiry 2021-07-16"`` for messages."""
    out = f"{snap.underlying} snapshot of {snap.quote_time:%Y-%m-%d %H:%M}"
    if root is not None:
        out += f", root {root}"
    if expiration is not None:
        out += f", expiry {expiration:%Y-%m-%d}"
    return out


class NoSpread(ValueError):
    """No spread of the requested kind in a snapshot; ``reason`` is a short code for counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def side_deltas(
    snapshot: ChainSnapshot, expiration: dt.date, root: str, right: str
) -> tuple[pd.DataFrame, float, str]:
    """Out-of-the-money two-sided quotes of one right and expiry with their Black-76 deltas.

    The forward is the chain's put-call-parity forward of the expiry
    (:meth:`ChainSnapshot.forward`). When the expiry has no strike with both a call and a put
    two-sided (the sparse SPY 2021 subset), the suite's one fallback is used,
    :meth:`ChainSnapshot.forward_estimate`: the chain's underlying price carried at the rate,
    ``S e^{rate tte}`` (``forward_source = "underlying_price"``; no dividend yield: for SPY
    2021, with yields near 1 % or less, the difference is under 0.2 % at 45 days)
    and implied vols and deltas are recomputed on it with :func:`pricing.implied_vol` and
    :func:`pricing.bs_greeks` (Black-76 through the BSM kernels: spot
    ``F e^{-r tte}``, no dividend yield, as :meth:`ChainSnapshot.with_implied_vols`).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain.
    expiration : datetime.date
        Expiry.
    root : str
        Option root.
    right : {'C', 'P'}
        Right.

    Returns
    -------
    side : pandas.DataFrame
        Rows with ``strike``, ``bid``, ``ask``, ``mid``, ``implied_vol``, ``delta`` (Black-76
        forward delta: calls in ``(0, 1)``, puts in ``(-1, 0)``), out of the money with respect
        to the forward (calls ``strike >= forward``, puts ``strike <= forward``), two-sided,
        with a finite delta; sorted by strike.
    forward : float
        The forward used (index points / dollars).
    forward_source : str
        ``"parity"`` or ``"underlying_price"``.

    Raises
    ------
    NoSpread
        No forward and no underlying price (``no_forward``).
    KeyError
        Nothing quoted for the root and expiry.
    """
    table = snapshot.with_implied_vols(expiration, root)
    forward = float(table["forward"].iloc[0]) if len(table) else math.nan
    source = "parity"
    side = table[(table["right"] == right) & table["two_sided"]].copy()
    if not math.isfinite(forward):
        forward = snapshot.forward_estimate(expiration, root).forward
        source = "underlying_price"
        if not (math.isfinite(forward) and forward > 0):
            raise NoSpread(
                "no_forward",
                f"no parity forward and no underlying price in the {_where(snapshot, expiration)}",
            )
        if len(side):
            tte = float(side["tte"].iloc[0])
            pseudo_spot = forward * math.exp(-snapshot.rate * tte)
            strikes = side["strike"].to_numpy(dtype=float)
            iv = implied_vol(
                side["mid"].to_numpy(dtype=float),
                pseudo_spot,
                strikes,
                tte,
                snapshot.rate,
                0.0,
                right,
                return_status=True,
            )
            greeks = bs_greeks(pseudo_spot, strikes, tte, snapshot.rate, 0.0, iv.vol, right)
            side["implied_vol"] = iv.vol
            side["delta"] = greeks.delta
    otm = side["strike"] >= forward if right == "C" else side["strike"] <= forward
    side = side[otm & np.isfinite(side["delta"].to_numpy(dtype=float))]
    return side.sort_values("strike", kind="stable"), forward, source


@dataclass(frozen=True)
class LegChoice:
    """One leg picked by delta: the listed strike nearest the target.

    Attributes
    ----------
    right : str
        ``'C'`` / ``'P'``.
    role : str
        ``near`` (larger |delta|) or ``far``.
    target_delta : float
        Signed target (puts negative).
    strike : float
        Listed strike chosen.
    delta : float
        Its Black-76 delta.
    miss : float
        ``|delta - target_delta|``.
    listed : bool
        ``miss <= delta_tolerance``: the target delta is listed.
    """

    right: str
    role: str
    target_delta: float
    strike: float
    delta: float
    miss: float
    listed: bool


@dataclass(frozen=True)
class SpreadChoice:
    """A spread resolved in a snapshot by :func:`select_spread`.

    Attributes
    ----------
    structure : str
        Key of :data:`STRUCTURES`.
    combo : Combo
        Legs with signed ratios per unit, as bought (``quantity > 0`` opens the structure).
    expiration : datetime.date
        Expiry.
    dte : int
        Calendar days to it from the quote date.
    target_dte : int
        The DTE asked for.
    legs : tuple of LegChoice
        Near and far leg per right.
    forward : float
        Forward used for the deltas (of the last right resolved; both rights share it).
    forward_source : str
        ``parity`` or ``underlying_price``.
    entry_estimate : float
        Per-unit price paid at the touch (combo ask; negative = credit), index points / dollars.
    width : float
        Largest strike distance between the near and far legs of one right.
    max_loss, max_profit : float
        Per unit from ``entry_estimate`` at the worst / best expiry payoff (points / dollars).
    """

    structure: str
    combo: Combo
    expiration: dt.date
    dte: int
    target_dte: int
    legs: tuple[LegChoice, ...]
    forward: float
    forward_source: str
    entry_estimate: float
    width: float
    max_loss: float
    max_profit: float

    @property
    def targets_listed(self) -> bool:
        """Every leg's target delta is listed within the tolerance."""
        return all(leg.listed for leg in self.legs)


def payoff_bounds(legs: Sequence[tuple[OptionContract, int]]) -> tuple[float, float]:
    """Minimum and maximum expiry payoff per unit of a set of same-expiry legs.

    The payoff ``sum q * intrinsic(S)`` is piecewise linear in ``S``, so its extremes are at
    ``S = 0``, a strike, or ``S -> infinity`` (slope ``sum of call ratios``).

    Parameters
    ----------
    legs : sequence of (OptionContract, int)
        Contracts and signed ratios.

    Returns
    -------
    tuple of float
        ``(min, max)`` per unit (points / dollars); ``inf`` / ``-inf`` when unbounded.
    """
    strikes = sorted({c.strike for c, _ in legs})
    points = [0.0, *strikes]
    values = [sum(q * c.intrinsic(s) for c, q in legs) for s in points]
    slope = sum(q for c, q in legs if c.right == "C")
    lo, hi = min(values), max(values)
    if slope > 0:
        hi = math.inf
    elif slope < 0:
        lo = -math.inf
    return lo, hi


def _pick(
    side: pd.DataFrame, target: float, right: str, role: str, tolerance: float, max_miss: float
) -> LegChoice:
    d = side["delta"].to_numpy(dtype=float)
    i = int(np.argmin(np.abs(d - target)))
    miss = float(abs(d[i] - target))
    if miss > max_miss:
        raise NoSpread(
            f"{role}_delta_not_listed",
            f"{right} target delta {target:+.2f}: nearest listed out-of-the-money strike "
            f"{float(side['strike'].iat[i]):g} has delta {d[i]:+.3f} (miss {miss:.3f} > "
            f"{max_miss:.2f})",
        )
    return LegChoice(
        right, role, target, float(side["strike"].iat[i]), float(d[i]), miss, miss <= tolerance
    )


def select_spread(
    snapshot: ChainSnapshot,
    structure: str,
    regime: str,
    target_dte: int,
    *,
    root: str,
    min_dte: int = 14,
    max_dte: int = 45,
    delta_tolerance: float = 0.05,
    max_delta_miss: float = 0.20,
    delta_targets: Mapping[str, tuple[float, float]] | None = None,
) -> SpreadChoice:
    """Resolve a structure to listed contracts of ``snapshot``.

    Expiry: the listed expiry of ``root`` with ``min_dte <= dte <= max_dte`` nearest
    ``target_dte`` (ties to the earlier). Per right: the near leg is the out-of-the-money
    two-sided strike whose delta is nearest ``+-near`` (:data:`DELTA_TARGETS` of ``regime``),
    the far leg the one further out of the money nearest ``+-far`` (:func:`side_deltas`). A
    leg whose nearest listed delta misses its target by more than ``delta_tolerance`` is
    traded but flagged (``LegChoice.listed = False``); beyond ``max_delta_miss`` there is no
    spread.

    Parameters
    ----------
    snapshot : ChainSnapshot
        Chain at the decision time.
    structure : str
        Key of :data:`STRUCTURES`.
    regime : str
        Regime (delta targets).
    target_dte : int
        Calendar days wanted (:func:`select_dte`).
    root : str
        Option root.
    min_dte, max_dte : int
        Listed expiries outside this range are not used.
    delta_tolerance, max_delta_miss : float
        Absolute delta distances (0.05, 0.20).
    delta_targets : mapping, optional
        Override of :data:`DELTA_TARGETS`.

    Returns
    -------
    SpreadChoice

    Raises
    ------
    NoSpread
        ``no_expiry_in_range``, ``no_otm_quotes``, ``near_delta_not_listed``,
        ``far_delta_not_listed``, ``no_far_strike`` (nothing listed beyond the near leg),
        ``no_value`` (debit >= width or credit <= 0 at the touch: the quotes leave nothing to
        gain), ``no_forward``.
    ValueError
        Unknown structure or regime.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; expected one of {tuple(STRUCTURES)}")
    targets = dict(delta_targets or DELTA_TARGETS)
    if regime not in targets:
        raise ValueError(f"unknown regime {regime!r}")
    near_t, far_t = targets[regime]
    day = snapshot.quote_date
    expiries = [e for e in snapshot.expiries(root) if min_dte <= (e - day).days <= max_dte]
    if not expiries:
        raise NoSpread(
            "no_expiry_in_range",
            f"no {root} expiry with {min_dte}..{max_dte} DTE in the {_where(snapshot)}",
        )
    dtes = np.array([(e - day).days for e in expiries], dtype=float)
    exp = expiries[int(np.argmin(np.abs(dtes - target_dte)))]
    spec = STRUCTURES[structure]
    legs: list[LegChoice] = []
    contracts: dict[str, tuple[float, float]] = {}
    forward, source = math.nan, "parity"
    for right in spec["rights"]:
        side, forward, source = side_deltas(snapshot, exp, root, right)
        if side.empty:
            raise NoSpread(
                "no_otm_quotes",
                f"no two-sided out-of-the-money {right} quote in the {_where(snapshot, exp, root)}",
            )
        sign = 1.0 if right == "C" else -1.0
        near = _pick(side, sign * near_t, right, "near", delta_tolerance, max_delta_miss)
        beyond = (
            side[side["strike"] > near.strike]
            if right == "C"
            else side[side["strike"] < near.strike]
        )
        if beyond.empty:
            raise NoSpread(
                "no_far_strike",
                f"no two-sided {right} strike beyond the near strike {near.strike:g} in the "
                f"{_where(snapshot, exp, root)}",
            )
        far = _pick(beyond, sign * far_t, right, "far", delta_tolerance, max_delta_miss)
        legs += [near, far]
        contracts[right] = (near.strike, far.strike)
    if structure == "iron_condor":
        (p_near, p_far), (c_near, c_far) = contracts["P"], contracts["C"]
        combo = snapshot.iron_condor(exp, root, p_far, p_near, c_near, c_far)
    else:
        right = spec["rights"][0]
        near_k, far_k = contracts[right]
        long_k, short_k = (far_k, near_k) if spec["credit"] else (near_k, far_k)
        combo = snapshot.vertical(exp, root, right, long_k, short_k)
    lo, hi = payoff_bounds(combo.legs)
    entry = float(combo.ask)
    max_loss, max_profit = entry - lo, hi - entry
    if not (max_loss > 0 and max_profit > 0):
        raise NoSpread(
            "no_value",
            f"{structure} {exp} at {entry:+.2f} with expiry payoff in [{lo:g}, {hi:g}]: nothing "
            f"to gain or nothing at risk in the {_where(snapshot, exp, root)}",
        )
    width = max(abs(a - b) for a, b in contracts.values())
    return SpreadChoice(
        structure=structure,
        combo=combo,
        expiration=exp,
        dte=int((exp - day).days),
        target_dte=int(target_dte),
        legs=tuple(legs),
        forward=forward,
        forward_source=source,
        entry_estimate=entry,
        width=float(width),
        max_loss=float(max_loss),
        max_profit=float(max_profit),
    )


# --------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------

class MlSpreadsParams(StrategyParams):
    """Parameters of ``ml_spreads`` (searchable ones in :attr:`tunable`; the others are fixed
    when :meth:`MlSpreads.prepare` runs: the models and the chain audit depend on them).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the chain snapshots (``SPY``, ``SPX``) and the option root traded.
    rate : float
        Continuous rate (decimal) put on the snapshots for forwards, vols and deltas.
    settlement_source : {"underlying", "chain"}
        What settles legs left to expiry: the ``[data]`` underlying's daily open/close, or the
        chain's own underlying price on the expiry date (for a chain whose underlying is not the
        ``[data]`` one, as the 2017-2018 SPX subset; AM settlement then uses the snapshot price,
        labelled "open as SOQ proxy" by the broker).
    horizon : int
        Label horizon in sessions (5).
    direction_threshold : float
        Direction label threshold, decimal return (0.01).
    ml_train_days, ml_test_days, ml_step_days : int
        Walk-forward geometry of the models in sessions (504, 63, 21).
    ml_start : datetime.date, optional
        First session predicted out of sample (default: the first chain quote date); earlier
        dates score the models over a longer history (reported in the run's ML metrics).
    n_estimators, max_depth, learning_rate : int, int, float
        XGBoost settings (200, 5, 0.05; the other settings as design doc 001 section 4.1).
    seed : int
        XGBoost seed.
    garch_window, garch_refit_every, garch_min_obs : int
        :func:`indicators.features.garch_forecast` (rolling 1000 returns, refit every 21
        sessions, first fit after 250).
    top_confidence_fraction : float
        Share of predictions scored by the top-confidence accuracy (0.2).
    min_confidence : float
        Rescaled confidence below which nothing is opened (0 = any).
    neutral_regime_confidence : float
        Confidence needed for a directional spread in the ``neutral`` regime.
    allow_iron_condor : bool
        Trade the iron condor cells of the matrix.
    dte_iv_rank : {"forecast", "current"}
        IV rank used by :func:`select_dte`: the volatility model's 5-session-ahead VIX rank
        (default; how the volatility forecast enters the rules) or the current one.
    min_dte, max_dte : int
        DTE clamp and listed-expiry range (14, 45).
    exit_dte : int
        Close when the calendar days to expiry fall to this or below (7).
    take_profit : float
        Close when the mid P&L reaches this decimal fraction of the maximum profit (0.5).
    stop_loss : float
        Close when the mid loss reaches this decimal fraction of the maximum loss (0.5).
    account_risk : float
        Account share risked per trade at full confidence (decimal, 0.02 = 2%).
    max_contracts : int
        Contract cap per trade (spreads of 100-multiplier contracts; 10).
    skip_over_budget : bool
        Skip a trade whose single contract risks more than the budget (default False: the
        design's floor of one contract applies and the trade is flagged ``over_budget``).
    max_open_spreads : int
        Open positions at most (3); one per expiry.
    min_days_between_entries : int
        Sessions between entries (5, the label horizon).
    delta_tolerance, max_delta_miss : float
        Delta distance within which a target counts as listed (0.05) and beyond which no
        spread is traded (0.20).

    The risk layer's kill switch (``max_drawdown``), daily-loss block (``max_daily_loss``) and
    book vega cap (``max_vega_per_vol_point``, dollars per vol point) are not parameters: they
    come from the config's ``[risk]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "min_confidence",
            "neutral_regime_confidence",
            "allow_iron_condor",
            "dte_iv_rank",
            "exit_dte",
            "take_profit",
            "stop_loss",
            "account_risk",
            "max_contracts",
            "skip_over_budget",
            "max_open_spreads",
            "min_days_between_entries",
        }
    )

    chain_symbol: str = "SPY"
    root: str = "SPY"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    settlement_source: Literal["underlying", "chain"] = "underlying"
    horizon: int = Field(5, ge=1, le=63)
    direction_threshold: float = Field(0.01, gt=0.0, le=0.2)
    ml_train_days: int = Field(504, ge=50, le=5000)
    ml_test_days: int = Field(63, ge=1, le=1000)
    ml_step_days: int = Field(21, ge=1, le=1000)
    ml_start: dt.date | None = None
    n_estimators: int = Field(200, ge=1, le=5000)
    max_depth: int = Field(5, ge=1, le=16)
    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    seed: int = 42
    garch_window: int = Field(1000, ge=0, le=10000)
    garch_refit_every: int = Field(21, ge=1, le=1000)
    garch_min_obs: int = Field(250, ge=100, le=5000)
    top_confidence_fraction: float = Field(0.2, gt=0.0, le=1.0)
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    neutral_regime_confidence: float = Field(0.3, ge=0.0, le=1.0)
    allow_iron_condor: bool = True
    dte_iv_rank: Literal["forecast", "current"] = "forecast"
    min_dte: int = Field(14, ge=1, le=365)
    max_dte: int = Field(45, ge=1, le=365)
    exit_dte: ExitDte = 7
    take_profit: Annotated[TakeProfit, Field(le=1.0)] = Field(
        0.5, description="decimal fraction of the spread's maximum profit (mid P&L)"
    )
    stop_loss: Annotated[StopLoss, Field(le=1.0)] = Field(
        0.5, description="decimal fraction of the spread's maximum loss (mid loss)"
    )
    account_risk: AccountRisk = 0.02
    max_contracts: MaxContracts = 10
    skip_over_budget: bool = False
    max_open_spreads: int = Field(3, ge=1, le=50)
    min_days_between_entries: int = Field(5, ge=0, le=252)
    delta_tolerance: float = Field(0.05, ge=0.0, le=0.5)
    max_delta_miss: float = Field(0.20, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> MlSpreadsParams:
        if self.min_dte > self.max_dte:
            raise ValueError(f"min_dte ({self.min_dte}) must be <= max_dte ({self.max_dte})")
        if self.exit_dte >= self.min_dte:
            raise ValueError(
                f"exit_dte ({self.exit_dte}) must be < min_dte ({self.min_dte}): a new spread "
                "would be closed on its first day"
            )
        if self.ml_step_days > self.ml_test_days:
            raise ValueError("ml_step_days must be <= ml_test_days (every session predicted)")
        if self.max_delta_miss < self.delta_tolerance:
            raise ValueError("max_delta_miss must be >= delta_tolerance")
        return self

    def model_settings(self) -> ModelSettings:
        """The XGBoost settings (design defaults for the rest)."""
        return ModelSettings(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            seed=self.seed,
        )


# --------------------------------------------------------------------------------------
# backtrader strategy
# --------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class SpreadPosition(ComboPosition):
    """An open spread of the strategy (one per expiry): a
    :class:`~strategies.option_strategy.ComboPosition` (``tag`` = ``"<structure> <entry
    date>"``, ``row``, ``trade_id``, ``closing_reason``, ``contract_set``) and its terms.

    Attributes
    ----------
    choice : SpreadChoice
        What was resolved at entry.
    contracts : int
        Combo units opened.
    entry_date : datetime.date
        Quote date of the entry.
    entry_cost : float
        Per-unit signed fill price (> 0 paid, < 0 received; index points / dollars).
    """

    choice: SpreadChoice
    contracts: int
    entry_date: dt.date
    entry_cost: float


class MlSpreadsStrategy(OptionRiskMixin, ChainStrategy):
    """backtrader face: reads the day's signal, manages open spreads, opens at most one spread.

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : MlSpreadsParams
        Rule and risk parameters.
    signals : mapping of datetime.date to dict
        Per quote date, the signal built from the previous session (:meth:`MlSpreads.signals`):
        ``regime``, ``direction``, ``confidence``, probabilities, ``vix_rank``,
        ``vix_rank_forecast``.
    last_day : datetime.date, optional
        Last session of the backtest window: open spreads are closed there and nothing opens
        (default: none, positions run on).
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default ``RiskLimits()``).

    Each bar, after :class:`OptionStrategy` settled and marked the book:

    1. the risk layer (:class:`strategies.risk.OptionRiskMixin`, part C): max-drawdown kill
       switch (flattens the book and refuses every later order), daily-loss block, optional vega
       cap on new orders;
    2. shares delivered by physical settlement (SPY) are sold at the snapshot's underlying price;
    3. each open spread is checked for an exit -- ``window_end``, ``dte`` (calendar days to
       expiry ``<= exit_dte``), ``take_profit`` / ``stop_loss`` (mid P&L against the maximum
       profit / loss at entry, evaluated only when every leg has a fresh quote) -- and closed at
       bid/ask when every short leg is quoted with an ask and every long leg is quoted (a long
       leg bid at 0 is left to expire worthless); otherwise the exit waits (``exit_deferred``);
    4. the entry rules run (:func:`choose_structure`, :func:`select_dte`, :func:`select_spread`,
       :func:`design_contracts` on :func:`strategies.risk.combo_max_loss_at_fill`).

    The decision on quote date ``D`` reads only the signal of ``D`` (built from session ``D-1``)
    and ``D``'s snapshot.
    """

    rules_cls = MlSpreadsParams
    counters = ("exit_deferred", "stale_mark_days", "settled_legs", "shares_closed", "open_at_end")

    def __init__(self) -> None:
        super().__init__()
        self._last_entry: int | None = None
        self._bar = -1

    # -- the bar ----------------------------------------------------------------------------------
    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """Risk, settlements, exits, then the entry decision (see the class docstring)."""
        self._bar += 1
        day = snapshot.quote_date
        self.risk_step()
        self.finish_gone_positions(day, record_settlement=True)
        self._close_shares(snapshot)
        for tag in list(self.positions_open):
            self._manage(self.positions_open[tag], snapshot, day)
        row: dict[str, Any] = {"date": day, "open_spreads": len(self.positions_open)}
        self.log_rows.append(row)
        self._decide(snapshot, day, row)

    def stop(self) -> None:
        """Positions still open after the last bar (a leg not quoted there, so the window-end
        close could not trade) are logged ``open_at_end``; every row's ``net_pnl`` is its
        trade's in the book at the last marks (the window-end close, at those marks, keeps it)."""
        if self.snapshot is not None:
            self.finish_gone_positions(self.snapshot.quote_date, record_settlement=True)
        self.counts["settled_legs"] = len(self.obroker.option_settlements)
        self.counts["open_at_end"] += len(self.positions_open)
        self.book_positions_at_end()

    # -- bookkeeping (the book allocates; :mod:`strategies.book`) --------------------------------
    def _close_shares(self, snapshot: ChainSnapshot) -> None:
        """Sell/buy back shares delivered by physical settlement (SPY) at the snapshot's
        underlying price; the book gives the cash to the trades holding the shares."""
        broker = self.obroker
        price = float(snapshot.underlying_price)
        for symbol in list(broker.underlying_positions):
            if symbol != snapshot.underlying or not (math.isfinite(price) and price > 0):
                continue
            held = {p.tag: self.book.trade(p.trade_id).shares.get(symbol, 0.0) for p in self._all()}
            fill = broker.close_underlying(symbol, price, snapshot.quote_time, tag="assigned")
            self.counts["shares_closed"] += abs(fill.quantity)
            self.book.sync(broker)
            for pos in self._all():
                sold = self.book.trade(pos.trade_id).shares.get(symbol, 0.0) - held[pos.tag]
                if sold:
                    pos.row["shares_closed"] = pos.row.get("shares_closed", 0) + round(sold)
                    pos.row["net_pnl"] = self.book.net_pnl(pos.trade_id, broker)

    def _all(self) -> list[SpreadPosition]:
        return [*self.positions_done, *self.positions_open.values()]

    # -- exits ------------------------------------------------------------------------------------
    def _manage(self, pos: SpreadPosition, snap: ChainSnapshot, day: dt.date) -> None:
        legs = self.combos.get(pos.tag, {})
        quoted = all(snap.has(c) and math.isfinite(snap.mid(c)) for c in legs)
        if not quoted:
            self.counts["stale_mark_days"] += 1
        dte = (pos.choice.expiration - day).days
        reason = None
        if day >= self.last_day:
            reason = "window_end"
        elif dte <= self.rules.exit_dte:
            reason = "dte"
        elif quoted:
            value = sum(q * snap.mid(c) for c, q in legs.items()) / pos.contracts
            pnl = value - pos.entry_cost
            if pnl >= self.rules.take_profit * pos.choice.max_profit:
                reason = "take_profit"
            elif -pnl >= self.rules.stop_loss * pos.choice.max_loss:
                reason = "stop_loss"
        if reason is None:
            return
        closable = all(
            snap.has(c) and (q > 0 or float(snap.row(c)["ask"]) > 0) for c, q in legs.items()
        )
        if not closable:
            self.counts["exit_deferred"] += 1
            pos.row["exit_deferred"] = pos.row.get("exit_deferred", 0) + 1
            return
        self.close_combo(pos.tag)
        pos.closing_reason = pos.closing_reason or reason
        if pos.tag not in self.combos:
            self.finish_position(pos, pos.row.get("settled_on", day))

    # -- entries ----------------------------------------------------------------------------------
    def _decide(self, snap: ChainSnapshot, day: dt.date, row: dict[str, Any]) -> None:
        rules = self.rules
        sig = self.signals.get(day)
        if sig is None or not math.isfinite(sig.get("confidence", math.nan)):
            row["status"] = "no_signal"
            return
        row.update({k: sig[k] for k in SIGNAL_LOG_COLUMNS if k in sig})
        if day >= self.last_day:
            row["status"] = "window_end"
            return
        regime, direction = sig["regime"], sig["direction"]
        if regime not in REGIMES:
            row["status"] = "regime_undefined"
            return
        structure, why = choose_structure(
            regime,
            direction,
            sig["confidence"],
            neutral_regime_confidence=rules.neutral_regime_confidence,
            allow_iron_condor=rules.allow_iron_condor,
        )
        if structure is None:
            row["status"] = why
            return
        row["structure"] = structure
        if sig["confidence"] < rules.min_confidence:
            row["status"] = "low_confidence"
            return
        if len(self.positions_open) >= rules.max_open_spreads:
            row["status"] = "max_open_spreads"
            return
        if (
            self._last_entry is not None
            and self._bar - self._last_entry < rules.min_days_between_entries
        ):
            row["status"] = "entry_spacing"
            return
        if self.risk_blocked():
            row.update(status="risk_blocked", detail=self.risk.kill_reason or "daily loss")
            return
        rank = sig["vix_rank_forecast"] if rules.dte_iv_rank == "forecast" else sig["vix_rank"]
        target_dte = select_dte(
            regime,
            rank if math.isfinite(rank) else 0.5,
            min_dte=rules.min_dte,
            max_dte=rules.max_dte,
        )
        row["target_dte"] = target_dte
        try:
            choice = select_spread(
                snap,
                structure,
                regime,
                target_dte,
                root=rules.root,
                min_dte=rules.min_dte,
                max_dte=rules.max_dte,
                delta_tolerance=rules.delta_tolerance,
                max_delta_miss=rules.max_delta_miss,
            )
        except NoSpread as exc:
            row.update(status=exc.reason, detail=exc.detail)
            return
        _log_choice(row, choice)
        if any(p.choice.expiration == choice.expiration for p in self.positions_open.values()):
            row["status"] = "expiry_held"
            return
        loss = combo_max_loss_at_fill(choice.combo, snap, quantity=1, costs=self.obroker.costs)
        contracts, over = design_contracts(
            self.broker.getvalue(),
            loss,
            regime,
            sig["confidence"],
            account_risk=rules.account_risk,
            max_contracts=rules.max_contracts,
        )
        row.update(contracts=contracts, max_loss_dollars=loss, over_budget=over)
        if over and rules.skip_over_budget:
            row["status"] = "over_budget"
            return
        tag = f"{structure} {day:%Y-%m-%d}"
        fills = self.open_combo(choice.combo, contracts, tag=tag)
        if not fills:
            row.update(status="rejected", detail=self.rejections[-1][2] if self.rejections else "")
            return
        cost = _unit_cost(fills, contracts)
        row.update(status="open", entry_cost=cost, cash_open=sum(f.cash_flow for f in fills))
        self.positions_open[tag] = SpreadPosition(
            tag=tag,
            choice=choice,
            contracts=contracts,
            entry_date=day,
            entry_cost=cost,
            row=row,
            trade_id=int(self.last_trade_id or 0),
            contract_set=frozenset(c for c, _ in choice.combo.legs),
        )
        self._last_entry = self._bar


SIGNAL_LOG_COLUMNS = (
    "signal_date",
    "regime",
    "direction",
    "p_bearish",
    "p_neutral",
    "p_bullish",
    "confidence",
    "vix",
    "vix_rank",
    "vix_rank_forecast",
    "hv_iv_ratio",
    "fold",
)
"""Signal fields copied into the daily log."""


def _unit_cost(fills: Sequence[OptionFill], contracts: int) -> float:
    """Per-unit signed entry price (> 0 paid, < 0 received), excluding commissions."""
    return sum(f.quantity * f.price for f in fills) / contracts


def _log_choice(row: dict[str, Any], choice: SpreadChoice) -> None:
    row.update(
        expiration=choice.expiration,
        dte=choice.dte,
        forward=choice.forward,
        forward_source=choice.forward_source,
        entry_estimate=choice.entry_estimate,
        width=choice.width,
        max_loss=choice.max_loss,
        max_profit=choice.max_profit,
        targets_listed=choice.targets_listed,
        legs=" ".join(
            f"{'+' if q > 0 else '-'}{c.strike:g}{c.right}" for c, q in choice.combo.legs
        ),
    )
    for leg in choice.legs:
        key = f"{leg.role}_{leg.right}"
        row[f"{key}_target_delta"] = leg.target_delta
        row[f"{key}_delta"] = leg.delta
        row[f"{key}_listed"] = leg.listed


# --------------------------------------------------------------------------------------
# chain diagnostics
# --------------------------------------------------------------------------------------


def chain_underlying_mismatch(chain_price: pd.Series, close: pd.Series) -> dict[str, float]:
    """How far a chain's own underlying price is from a daily close series, on common dates.

    Parameters
    ----------
    chain_price : pandas.Series
        Chain underlying price per quote date (tz-aware session index).
    close : pandas.Series
        The ``[data]`` underlying's close on its sessions.

    Returns
    -------
    dict
        ``days`` (common dates), ``days_without_close``, ``mean_abs_rel_diff`` and
        ``max_abs_rel_diff`` (``|chain / close - 1|``, decimal), ``level_corr`` (Pearson of
        the levels) and ``return_corr`` (Pearson of the daily log changes over consecutive
        common dates).
    """
    joined = pd.concat([chain_price.rename("chain"), close.rename("close")], axis=1, join="inner")
    rel = (joined["chain"] / joined["close"] - 1.0).abs()
    r_chain = np.log(joined["chain"]).diff()
    r_close = np.log(joined["close"]).diff()
    return {
        "days": float(len(joined)),
        "days_without_close": float(len(chain_price) - len(joined)),
        "mean_abs_rel_diff": float(rel.mean()),
        "max_abs_rel_diff": float(rel.max()),
        "level_corr": float(joined["chain"].corr(joined["close"])),
        "return_corr": float(r_chain.corr(r_close)),
    }


def delta_target_audit(
    snapshots: Mapping[dt.date, ChainSnapshot],
    root: str,
    *,
    min_dte: int = 14,
    max_dte: int = 45,
    delta_tolerance: float = 0.05,
) -> pd.DataFrame:
    """For every quote date, regime and right: how close the listed strikes come to the targets.

    Per date, regime (expiry nearest :data:`BASE_DTE` inside ``[min_dte, max_dte]``) and right,
    the near and far delta targets of :data:`DELTA_TARGETS` are looked up among the
    out-of-the-money two-sided quotes (:func:`side_deltas`; the far leg beyond the near one).

    Parameters
    ----------
    snapshots : mapping of datetime.date to ChainSnapshot
        The chain per quote date.
    root : str
        Option root.
    min_dte, max_dte : int
        Expiry range.
    delta_tolerance : float
        A target is "listed" when the nearest delta is within this distance.

    Returns
    -------
    pandas.DataFrame
        One row per (date, regime, right, role): ``expiration``, ``forward_source``,
        ``target_delta``, ``strike`` and ``delta`` of the nearest listed (NaN when there is no
        candidate), ``miss``, ``listed`` and ``status`` (``ok``, ``no_expiry_in_range``,
        ``no_otm_quotes``, ``no_far_strike``, ``no_forward``).
    """
    rows: list[dict[str, Any]] = []
    for day, snap in snapshots.items():
        sides: dict[tuple[dt.date, str], tuple[pd.DataFrame | None, str, str]] = {}
        for regime, (near_t, far_t) in DELTA_TARGETS.items():
            expiries = [e for e in snap.expiries(root) if min_dte <= (e - day).days <= max_dte]
            for right in ("P", "C"):
                sign = 1.0 if right == "C" else -1.0
                base = {"date": day, "regime": regime, "right": right}
                if not expiries:
                    for role, t in (("near", near_t), ("far", far_t)):
                        rows.append(
                            {
                                **base,
                                "role": role,
                                "target_delta": sign * t,
                                "status": "no_expiry_in_range",
                            }
                        )
                    continue
                dtes = np.array([(e - day).days for e in expiries], dtype=float)
                exp = expiries[int(np.argmin(np.abs(dtes - BASE_DTE[regime])))]
                base["expiration"] = exp
                if (exp, right) not in sides:
                    try:
                        side, _, source = side_deltas(snap, exp, root, right)
                    except NoSpread as exc:
                        sides[(exp, right)] = (None, "", exc.reason)
                    else:
                        sides[(exp, right)] = (side, source, "ok" if len(side) else "no_otm_quotes")
                side, source, status = sides[(exp, right)]
                near_strike = math.nan
                for role, t in (("near", near_t), ("far", far_t)):
                    row = {**base, "role": role, "target_delta": sign * t, "forward_source": source}
                    cand = side
                    if cand is not None and role == "far" and math.isfinite(near_strike):
                        cand = cand[
                            cand["strike"] > near_strike
                            if right == "C"
                            else cand["strike"] < near_strike
                        ]
                    if cand is None or cand.empty:
                        row["status"] = status if status != "ok" else "no_far_strike"
                        rows.append(row)
                        continue
                    d = cand["delta"].to_numpy(dtype=float)
                    i = int(np.argmin(np.abs(d - sign * t)))
                    miss = float(abs(d[i] - sign * t))
                    strike = float(cand["strike"].iat[i])
                    if role == "near":
                        near_strike = strike
                    row.update(
                        strike=strike,
                        delta=float(d[i]),
                        miss=miss,
                        listed=miss <= delta_tolerance,
                        status="ok",
                    )
                    rows.append(row)
    return pd.DataFrame(rows)


def _audit_summary(audit: pd.DataFrame, tolerance: float) -> tuple[str, dict[str, float]]:
    n = len(audit)
    ok = audit["status"] == "ok"
    listed = ok & audit.get("listed", pd.Series(False, index=audit.index)).fillna(False).astype(
        bool
    )
    by_status = audit.loc[~ok, "status"].value_counts().to_dict()
    spot_fwd = audit.get("forward_source", pd.Series("", index=audit.index)) == "underlying_price"
    metrics = {
        "delta_targets": float(n),
        "delta_targets_listed": float(listed.sum()),
        "delta_targets_not_listed": float((ok & ~listed).sum()),
        "delta_targets_no_candidate": float((~ok).sum()),
        "delta_targets_spot_forward": float(spot_fwd.sum()),
    }
    median_miss = float(audit.loc[ok, "miss"].median()) if ok.any() else math.nan
    line = (
        f"delta targets (every quote date x regime x right x near/far leg): {n}; listed within "
        f"{tolerance:.2f} delta: {int(listed.sum())}; not listed (nearest strike traded, "
        f"flagged): {int((ok & ~listed).sum())} (median miss {median_miss:.3f}); no candidate: "
        f"{int((~ok).sum())}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in by_status.items())})" if by_status else "")
        + f"; forward from the chain's underlying price (no parity pair): {int(spot_fwd.sum())}"
    )
    return line, metrics


# --------------------------------------------------------------------------------------
# plugin
# --------------------------------------------------------------------------------------


class MlSpreads(ChainPlugin):
    """Plugin wiring the features, the walk-forward models and :class:`MlSpreadsStrategy`.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params (commission_per_contract,
        slippage_spread_fraction, settlement_fee_per_contract).
    """

    name = "ml_spreads"
    description = (
        "XGBoost direction/vol forecasts (purged walk-forward) choosing real option spreads by rule"
    )
    Params = MlSpreadsParams
    required_data = ("underlying", "vix", "chains")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss", "max_vega_per_vol_point"})
    strategy_cls = MlSpreadsStrategy
    feed_target_dte = 30.0
    signal_source = "_signals"
    signals_as_records = False

    def __init__(
        self,
        fixed: Mapping[str, Any] | None = None,
        broker: Mapping[str, Any] | None = None,
        costs: CostsConfig | None = None,
        risk: RiskLimits | None = None,
    ) -> None:
        super().__init__(fixed, broker, costs, risk)
        self.report_metrics: dict[str, float] = {}

    # -- load time ---------------------------------------------------------------------------------
    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """Features, walk-forward models, signals and chain diagnostics, before any backtest.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated OHLC), ``vix`` (validated frame with ``close``) and
            ``chains`` (a :class:`data_feeds.chain_store.ChainStore` or any snapshot source).
        grid : mapping
            Searched parameter -> candidate values.

        Raises
        ------
        ValueError
            A load-time parameter is in the search space; no chain quote date of
            ``chain_symbol`` / ``root`` inside the underlying's sessions; not enough history for
            the first model (names the sessions needed).
        """
        self.check_search_space(grid)
        p = MlSpreadsParams(**self.fixed)
        self.base = p
        self.underlying = data["underlying"]
        vix, report = align_to_index(
            data["vix"]["close"], self.underlying.index, max_fill=1, name="vix"
        )
        self.reports.append(report.summary())
        self.vix = vix
        self.progress("features (GARCH refits)")
        self.features = market_features(
            self.underlying,
            vix,
            garch_window=p.garch_window,
            garch_refit_every=p.garch_refit_every,
            garch_min_obs=p.garch_min_obs,
            thresholds=RegimeThresholds(),
        )
        fits = self.features.attrs["garch_fits"]
        self.reports.append(
            f"GARCH(1,1): {len(fits)} fits (rolling {p.garch_window or 'expanding'} returns, "
            f"refit every {p.garch_refit_every} sessions), "
            f"{int((~fits['converged']).sum()) if len(fits) else 0} with a convergence warning"
        )
        self.source = SnapshotCache(data["chains"])
        index = self.underlying.index
        all_dates = self.source.quote_dates(p.chain_symbol, [p.root])
        sessions = set(index.date)
        dates = [d for d in all_dates if d in sessions and d > index[0].date()]
        outside = len(all_dates) - len(dates)
        if not dates:
            raise ValueError(
                f"no {p.chain_symbol}/{p.root} chain quote date inside the underlying's sessions "
                f"{index[0]:%Y-%m-%d}..{index[-1]:%Y-%m-%d} ({len(all_dates)} quote dates stored)"
            )
        self.quote_dates = dates
        if outside:
            self.reports.append(
                f"{outside} chain quote dates outside the underlying's sessions are not traded"
            )
        before_first = index[index.searchsorted(pd.Timestamp(dates[0]).tz_localize(TZ)) - 1]
        first = before_first if p.ml_start is None else pd.Timestamp(p.ml_start).tz_localize(TZ)
        last = pd.Timestamp(dates[-1]).tz_localize(TZ)
        table = model_features(self.features, self.underlying["close"])
        self.progress("XGBoost walk-forward models (direction, volatility)")
        self.models: WalkForwardModels = train_walk_forward(
            table,
            self.underlying["close"],
            self.features["vix_rank"],
            first_test=min(first, before_first),
            last_test=last,
            horizon=p.horizon,
            threshold=p.direction_threshold,
            train_size=p.ml_train_days,
            test_size=p.ml_test_days,
            step=p.ml_step_days,
            settings=p.model_settings(),
            top_fraction=p.top_confidence_fraction,
        )
        self.reports.extend(self.models.notes)
        m = self.models.metrics
        self.reports.append(
            f"ML walk-forward ({len(self.models.splits)} folds, purge {p.horizon} sessions, "
            f"{int(m['n_scored_days'])} scored sessions "
            f"{self.models.predictions.index[0]:%Y-%m-%d}..): direction AUC(OvR) "
            f"{m['direction_auc_ovr']:.3f}, accuracy {m['direction_accuracy']:.3f} (majority "
            f"class {m['direction_baseline_accuracy']:.3f}), top-"
            f"{p.top_confidence_fraction:.0%} confidence accuracy "
            f"{m['direction_top_confidence_accuracy']:.3f}; VIX-rank RMSE {m['vol_rmse']:.3f} "
            f"(persistence {m['vol_persistence_rmse']:.3f}), MAE {m['vol_mae']:.3f}"
        )
        self.progress("signals and chain snapshots")
        self._signals = self._build_signals()
        snaps = {
            d: self.source.snapshot(p.chain_symbol, d, None, [p.root], False, p.rate) for d in dates
        }
        chain_px = pd.Series(
            [s.underlying_price for s in snaps.values()],
            index=pd.DatetimeIndex([pd.Timestamp(d) for d in snaps]).tz_localize(TZ),
        )
        mismatch = chain_underlying_mismatch(chain_px, self.underlying["close"])
        self.report_metrics.update({f"chain_underlying_{k}": v for k, v in mismatch.items()})
        verdict = (
            "consistent"
            if mismatch["mean_abs_rel_diff"] < 0.005
            else "NOT the [data] underlying: ML signals come from the [data] series, option "
            "prices and deltas from the chain's own forward"
        )
        self.reports.append(
            f"chain {p.chain_symbol} underlying price vs [data] close on "
            f"{int(mismatch['days'])} quote dates: mean |diff| "
            f"{mismatch['mean_abs_rel_diff']:.2%}, max {mismatch['max_abs_rel_diff']:.2%}, level "
            f"corr {mismatch['level_corr']:.3f}, daily-change corr {mismatch['return_corr']:.3f}"
            f" -> {verdict}"
        )
        self.audit = delta_target_audit(
            snaps,
            p.root,
            min_dte=p.min_dte,
            max_dte=p.max_dte,
            delta_tolerance=p.delta_tolerance,
        )
        line, audit_metrics = _audit_summary(self.audit, p.delta_tolerance)
        self.reports.append(line)
        self.report_metrics.update(audit_metrics)
        self.chain_price = chain_px
        if p.settlement_source == "chain":
            self.settlement = pd.DataFrame({"open": chain_px, "close": chain_px})
            self.reports.append(
                "settlement of legs held to expiry: the chain's own underlying price at the "
                "snapshot of the expiry date (AM legs too: labelled 'open as SOQ proxy')"
            )
        else:
            self.settlement = self.underlying[["open", "close"]]

    def _build_signals(self) -> dict[dt.date, dict[str, Any]]:
        """Signal of each session from the previous session's features and prediction."""
        pred = self.models.predictions
        feats = self.features
        idx = self.underlying.index
        prev = pd.Series(idx[:-1], index=idx[1:])
        out: dict[dt.date, dict[str, Any]] = {}
        pred_dates = set(pred.index)
        for today, before in prev.items():
            if before not in pred_dates:
                continue
            pr = pred.loc[before]
            code = feats.at[before, "regime"]
            regime = REGIMES[int(code)] if code >= 0 else "undefined"
            d = pr["direction"]
            out[today.date()] = {
                "signal_date": before.date(),
                "regime": regime,
                "direction": DIRECTION_CLASSES[int(d)] if math.isfinite(d) else "none",
                "p_bearish": float(pr["p_bearish"]),
                "p_neutral": float(pr["p_neutral"]),
                "p_bullish": float(pr["p_bullish"]),
                "confidence": float(pr["confidence"]),
                "vix": float(feats.at[before, "vix"]),
                "vix_rank": float(feats.at[before, "vix_rank"]),
                "vix_rank_forecast": float(pr["vix_rank_forecast"]),
                "hv_iv_ratio": float(feats.at[before, "hv_iv_ratio"]),
                "fold": int(pr["fold"]),
            }
        return out

    def signals(self) -> pd.DataFrame:
        """The signal table: one row per session with a prediction (index: the session acting
        on it; values from the previous session ``signal_date``)."""
        frame = pd.DataFrame.from_dict(self._signals, orient="index")
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index)).tz_localize(TZ)
        frame.index.name = "date"
        return frame

    def trading_days(self) -> pd.DatetimeIndex:
        """Chain quote dates with a signal (a prediction from the previous session)."""
        days = [d for d in self.quote_dates if d in self._signals]
        return pd.DatetimeIndex([pd.Timestamp(d) for d in days]).tz_localize(TZ)

    # -- backtest ---------------------------------------------------------------------------------
    def data_fingerprint(self) -> str:
        """Hash of the underlying, the aligned VIX and the chain's underlying price series."""
        frame = self.underlying[["open", "high", "low", "close"]].assign(vix=self.vix)
        chain = self.chain_price.rename("chain").to_frame()
        return fingerprint(frame) + "-" + fingerprint(chain)

    # -- artifacts --------------------------------------------------------------------------------
    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """Models, predictions, fold metrics, feature importance and the chain audit into
        ``folder/ml`` (logged to MLflow with the run folder); returns the ML and data metrics.

        Files: ``direction_model.json`` and ``volatility_model.json`` (XGBoost, the last fold),
        ``predictions.csv`` (stitched out-of-sample predictions), ``test_predictions.csv``
        (every fold's test window), ``fold_metrics.csv``, ``feature_importance.csv`` (mean gain),
        ``features.csv`` (the feature table), ``signals.csv``, ``delta_audit.csv``,
        ``garch_fits.csv``, ``ml_summary.json``.
        """
        out = Path(folder) / "ml"
        out.mkdir(parents=True, exist_ok=True)
        mdl = self.models
        mdl.direction_model.save_model(str(out / "direction_model.json"))
        mdl.volatility_model.save_model(str(out / "volatility_model.json"))
        mdl.predictions.to_csv(out / "predictions.csv")
        mdl.test_predictions.to_csv(out / "test_predictions.csv")
        mdl.fold_metrics.to_csv(out / "fold_metrics.csv", index=False)
        mdl.importance.to_csv(out / "feature_importance.csv")
        self.features.to_csv(out / "features.csv", index_label="date")
        self.signals().to_csv(out / "signals.csv")
        self.audit.to_csv(out / "delta_audit.csv", index=False)
        self.features.attrs["garch_fits"].to_csv(out / "garch_fits.csv", index=False)
        metrics = {f"ml_{k}": float(v) for k, v in mdl.metrics.items()}
        metrics.update(self.report_metrics)
        top = mdl.importance.head(10)
        (out / "ml_summary.json").write_text(
            json.dumps(
                {
                    "metrics": metrics,
                    "feature_columns": mdl.feature_columns,
                    "top_features_direction": top["direction"].to_dict(),
                    "reports": self.reports,
                    "params": self.base.model_dump(mode="json"),
                },
                indent=2,
                default=str,
            )
        )
        return {k: v for k, v in metrics.items() if math.isfinite(v)}


    # -- model evaluation (design doc 001: performance per regime, regime transitions) ----------
    def model_evaluation(self, daily_log: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Performance per regime and regime transitions over the out-of-sample days.

        Parameters
        ----------
        daily_log : pandas.DataFrame
            Stitched out-of-sample daily log (``date``, ``regime`` of the day's signal, built from
            the previous session; ``net_pnl`` in dollars on each spread's entry row, at the last
            marks for a spread still open at the end).

        Returns
        -------
        dict[str, pandas.DataFrame]
            ``regime_outcomes``: :func:`strategies.evaluation.outcome_table` by ``regime`` of the
            entry day (:data:`indicators.features.REGIMES` first; days without a signal under
            ``"(none)"``); ``regime_transitions``:
            :func:`strategies.evaluation.transition_counts` of the regime from session t-1 to t
            (consecutive log rows in date order; pairs with a missing regime not counted).
        """
        log = daily_log.sort_values("date", kind="stable") if "date" in daily_log else daily_log
        missing = pd.Series(np.nan, index=log.index)
        regime = log.get("regime", missing)
        return {
            "regime_outcomes": outcome_table(
                regime, log.get("net_pnl", missing), name="regime", order=list(REGIMES)
            ),
            "regime_transitions": transition_counts(regime, order=list(REGIMES)),
        }
