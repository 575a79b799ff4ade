"""The cost assumptions of a run: the ``[costs]`` section of an experiment config.

Costs are fixed by the config, never searched by the optimizer (an optimizer allowed to choose
its cost assumption chooses the cheapest one). :class:`CostsConfig` is the one typed source of
every cost a strategy or broker charges:

* option fills and settlement (:class:`brokers.costs.OptionCostModel`, the
  :class:`brokers.OptionsBroker` params of :meth:`CostsConfig.options_broker_params`);
* delta-hedge trades in the underlying (``hedge_half_spread``, ``hedge_commission_per_share``;
  :class:`strategies.hedging.HedgeConfig`);
* share trades of the pair strategies (``[costs.shares]``: half spread, square-root impact and
  commission of :func:`brokers.share_costs.share_trade_cost`).

Every field is finite (``inf``/``nan`` are refused) and non-negative.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class _Finite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ShareCostConfig(_Finite):
    """``[costs.shares]``: the cost of a share trade, :func:`brokers.share_costs.share_trade_cost`.

    ``cost = Q * max(P * half_spread_bps / 1e4, min_half_spread)
    + Q * P * impact_coefficient * sigma_d * (Q / V_d) ** impact_exponent
    + min(max(Q * commission_per_share, min_commission), max_commission_pct * Q * P)``
    for ``Q`` shares at ``P`` dollars, with the daily vol ``sigma_d`` and average daily volume
    ``V_d`` of the ``window_days`` sessions before the trade (Toth et al. 2011; Almgren et al.
    2005).
    """

    half_spread_bps: float = Field(
        1.0, ge=0.0, description="Half the quoted spread, basis points of the price (1.0 = 1 bp)."
    )
    min_half_spread: float = Field(
        0.005, ge=0.0, description="Floor of the half spread, dollars per share."
    )
    impact_coefficient: float = Field(
        1.0, ge=0.0, description="Square-root impact coefficient Y (dimensionless; 0 = no impact)."
    )
    impact_exponent: float = Field(
        0.5, gt=0.0, le=1.0, description="Impact exponent delta (0.5 = square-root law), (0, 1]."
    )
    commission_per_share: float = Field(0.005, ge=0.0, description="Dollars per share traded.")
    min_commission: float = Field(1.0, ge=0.0, description="Minimum commission, dollars per order.")
    max_commission_pct: float = Field(
        0.01,
        ge=0.0,
        description="Commission cap, decimal fraction of the trade value |Q| P (0.01 = 1%).",
    )
    window_days: int = Field(
        20,
        ge=2,
        le=252,
        description="Sessions of past closes and volumes giving sigma_d and V_d (trading days).",
    )

    def trade_cost_kwargs(self) -> dict[str, float]:
        """Keyword arguments of :func:`brokers.share_costs.share_trade_cost` (and of
        :class:`brokers.share_costs.ShareCostScheme`): every field but ``window_days``."""
        return self.model_dump(exclude={"window_days"})


class CostsConfig(_Finite):
    """``[costs]``: every cost assumption of a run (module docstring).

    Attributes
    ----------
    commission_per_contract : float
        Dollars per option contract per leg on every fill.
    slippage_spread_fraction : float
        Fill offset from mid as a fraction of the bid-ask spread (0 = mid, 0.5 = the touch).
    slippage_by_root : dict of str to float
        Per-root override of ``slippage_spread_fraction`` (e.g. ``{SPY = 0.3}``).
    settlement_fee_per_contract : float
        Dollars per contract at settlement, exercise or assignment.
    hedge_half_spread : float
        Half spread paid on a delta-hedge trade in the underlying, index points (dollars per
        share for an ETF).
    hedge_commission_per_share : float
        Dollars per unit of the underlying traded by the delta hedger (per share; per index
        unit for SPX).
    shares : ShareCostConfig
        Share-trade costs of the pair strategies.
    """

    commission_per_contract: float = Field(
        1.0, ge=0.0, description="Dollars per option contract per leg on every fill."
    )
    slippage_spread_fraction: float = Field(
        0.5,
        ge=0.0,
        le=2.0,
        description="Fill offset from mid, fraction of the bid-ask spread (0 mid, 0.5 touch).",
    )
    slippage_by_root: dict[str, Annotated[float, Field(ge=0.0, le=2.0)]] = Field(
        default_factory=dict,
        description="Per-root override of slippage_spread_fraction (fraction of the spread).",
    )
    settlement_fee_per_contract: float = Field(
        0.0, ge=0.0, description="Dollars per contract at settlement, exercise or assignment."
    )
    hedge_half_spread: float = Field(
        0.05,
        ge=0.0,
        description="Half spread of a delta-hedge trade, index points (dollars per share).",
    )
    hedge_commission_per_share: float = Field(
        0.005, ge=0.0, description="Dollars per share (index unit) traded by the delta hedger."
    )
    shares: ShareCostConfig = Field(
        default_factory=ShareCostConfig, description="Share-trade costs (pair strategies)."
    )

    def options_broker_params(self) -> dict[str, Any]:
        """The :class:`brokers.OptionsBroker` cost params: commission, slippage (and its
        per-root overrides when any) and settlement fee, dollars per contract / fraction of the
        spread."""
        out: dict[str, Any] = {
            "commission_per_contract": self.commission_per_contract,
            "slippage_spread_fraction": self.slippage_spread_fraction,
            "settlement_fee_per_contract": self.settlement_fee_per_contract,
        }
        if self.slippage_by_root:
            out["slippage_by_root"] = dict(self.slippage_by_root)
        return out
