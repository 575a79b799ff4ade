"""The risk limits of a run: the ``[risk]`` section of an experiment config.

Limits are fixed by the config, never searched by the optimizer (an optimizer allowed to choose
its drawdown limit chooses the one that never trips on the training window). A strategy receives
them apart from its parameters (``StrategyPlugin.risk``) and turns them into the
:class:`strategies.risk.RiskConfig` of its :class:`strategies.risk.RiskManager` with
:meth:`RiskLimits.risk_config`, adding its own exit rules (e.g. a premium stop).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from strategies.risk.manager import RiskConfig

VEGA_POINTS_PER_UNIT = 100.0
"""Vol points in 1.00 of implied vol: a book vega of $V per vol point is $100 V per 1.00."""


class RiskLimits(BaseModel):
    """``[risk]``: the risk layer's limits (``None`` = rule off).

    Attributes
    ----------
    max_drawdown : float, optional
        Kill switch: account drawdown from its peak, decimal (0.25 = 25%), that flattens the
        book and blocks every later order.
    max_daily_loss : float, optional
        Loss since the previous session's last account value, decimal, that blocks new risk for
        the rest of the session.
    position_stop_loss : float, optional
        Max loss per trade: a position is closed when its loss reaches this multiple of its
        basis (entry notional for shares, max loss at entry for options), decimal (0.10 = 10%).
    max_vega_per_vol_point : float, optional
        Book vega cap, dollars per vol point (per 0.01 of implied vol): orders that would raise
        ``|vega|`` above it are refused (``RiskConfig.max_abs_vega = 100 *`` this, dollars per
        1.00 of vol).

    Raises
    ------
    pydantic.ValidationError
        Unknown key, non-finite value or a value out of range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_drawdown: float | None = Field(
        0.25, gt=0.0, lt=1.0, description="Kill switch: drawdown from the peak, decimal."
    )
    max_daily_loss: float | None = Field(
        None, gt=0.0, lt=1.0, description="Daily loss blocking new risk, decimal of account."
    )
    position_stop_loss: float | None = Field(
        None, gt=0.0, description="Max loss per trade, decimal multiple of the position's basis."
    )
    max_vega_per_vol_point: float | None = Field(
        None, gt=0.0, description="Book vega cap, dollars per vol point."
    )

    def risk_config(self, *, stop_loss: float | None = None) -> RiskConfig:
        """The :class:`strategies.risk.RiskConfig` of these limits.

        Parameters
        ----------
        stop_loss : float, optional
            The strategy's own position stop (decimal multiple of the basis), used when
            :attr:`position_stop_loss` is off; the tighter of the two otherwise.

        Returns
        -------
        RiskConfig
            ``max_drawdown``, ``max_daily_loss``, ``stop_loss`` and ``max_abs_vega`` (dollars per
            1.00 of vol) set from these limits.
        """
        stops = [s for s in (self.position_stop_loss, stop_loss) if s is not None]
        vega = self.max_vega_per_vol_point
        return RiskConfig(
            max_drawdown=self.max_drawdown,
            max_daily_loss=self.max_daily_loss,
            stop_loss=min(stops) if stops else None,
            max_abs_vega=None if vega is None else VEGA_POINTS_PER_UNIT * vega,
        )
