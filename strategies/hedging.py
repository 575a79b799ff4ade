"""Delta hedging with the underlying for any :class:`~strategies.option_strategy.OptionStrategy`,
and the per-bar / per-day P&L breakdown (option P&L, hedge P&L, costs).

Rules (:class:`HedgeConfig`, ``rule``)
--------------------------------------
``interval``
    Every ``interval_bars`` bars (the first bar included) trade the book delta back to
    ``target`` (:func:`strategies.risk.hedge_quantity` with the tiny ``min_band``).
``band``
    Every bar, trade when ``|delta - target| > band`` (a fixed half-width in shares / index
    units), back to the target or to the band edge (``rehedge_to``).
``whalley_wilmott``
    As ``band`` with the gamma-aware half-width of Whalley & Wilmott (1997), "An asymptotic
    analysis of an optimal hedging model for option pricing with transaction costs",
    *Mathematical Finance* 7(3), 307-324 (the hedging bandwidth of their section 4; also
    Zakamouline 2006, "Efficient analytic approximation of the optimal hedging strategy for a
    European call option with transaction costs", *Quantitative Finance* 6(5), 435-445)::

        H = ( 3/2 * exp(-r tau) * lambda * S * Gamma**2 / gamma_ra ) ** (1/3)

    with ``lambda * S = c`` the cost of trading one share (``half_spread + commission_per_share``,
    dollars), ``Gamma`` the book gamma in shares per point (:meth:`OptionStrategy.book_greeks`),
    ``gamma_ra`` the exponential-utility risk aversion (1 / dollars) and ``exp(-r tau)`` taken as 1
    (``discount``; our snapshots use ``r = 0`` and 0-60 DTE books). Units: ``c Gamma**2 /
    gamma_ra`` is ``($/sh) (sh**2/$)**2 $ = sh**3``, so ``H`` is in shares. ``H`` is floored at
    ``min_band`` (a flat-gamma book would otherwise trade every bar).

Costs of a hedge trade
----------------------
The underlying price of the snapshot is its mid ``S``; a hedge buy fills at ``S + half_spread``, a
sell at ``S - half_spread``, and pays ``commission_per_share * |q|``
(:meth:`brokers.OptionsBroker.trade_underlying`). Shares are marked at the snapshot's underlying
price and, after the session's last bar, at the day's close (:meth:`OptionStrategy.next`).

The delta hedged is the Black-76 book delta of :meth:`OptionStrategy.book_greeks` (dollars per
point of the discounted forward, i.e. ``delta_F * DF`` per unit, equal to the spot delta when there
are no dividends) plus the shares held. For SPX the "underlying" is the index itself (a proxy for
futures or SPY x 10: no tradable instrument in our data); the cost parameters are the user's.

P&L breakdown (:meth:`DeltaHedger.pnl_frame`), per bar, dollars
--------------------------------------------------------------------
Between two records (end of bar ``t-1`` and end of bar ``t``, after the end-of-day settlements and
close marks)::

    option_pnl = d options_value + sum fills (-q * mid * multiplier)
                 + sum settlements (cash_flow + fee + shares * settle price)
    hedge_pnl  = d underlying_value + sum share trades (-q * mid)
                 - sum settlements (shares * settle price)
    costs      = -(option commissions + option fees + option slippage (fill vs mid)
                   + share commissions + hedge half spreads)          (<= 0)
    option_pnl + hedge_pnl + costs == d account value

``mid`` of an option fill is ``(bid + ask) / 2`` of the fill record; the mid of a hedge trade is
the snapshot's underlying price; a share trade not made by the hedger counts its price as the mid.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from brokers import OptionsBroker, StockFill
from data_feeds.chains import ChainSnapshot
from strategies.option_strategy import OptionStrategy
from strategies.risk.manager import hedge_quantity

HEDGE_TAG = "delta hedge"
"""Tag of a hedge of the whole book (no trade of its own: the book's unallocated trade)."""


class HedgeConfig(BaseModel):
    """Parameters of :class:`DeltaHedger` (see the module docstring for the rules).

    Attributes
    ----------
    rule : {'interval', 'band', 'whalley_wilmott'}
        When to hedge.
    interval_bars : int
        ``interval`` rule: hedge every this many bars (>= 1; 1 = every bar).
    band : float
        ``band`` rule: half-width of the no-trade band, shares (index units), > 0.
    risk_aversion : float
        ``whalley_wilmott`` rule: exponential-utility risk aversion ``gamma_ra``, 1 / dollars, > 0.
    discount : float
        ``whalley_wilmott`` rule: ``exp(-r tau)`` factor, in (0, 1].
    half_spread : float
        Half the underlying's quoted spread, index points (dollars per share), >= 0.
    commission_per_share : float
        Dollars per share (index unit) traded, >= 0.
    min_band : float
        Floor of every band, shares, > 0 (with ``lot_size`` 1, 0.5 trades any whole share).
    target : float
        Delta the hedge aims at, shares.
    rehedge_to : {'target', 'edge'}
        Trade back to ``target`` or to the nearest band edge (Whalley & Wilmott 1997).
    lot_size : int
        Trade quantities are rounded toward zero to multiples of this, >= 1.
    symbol : str, optional
        Underlying symbol traded (default: the snapshot's underlying, e.g. ``SPX``).

    Raises
    ------
    pydantic.ValidationError
        Unknown keys or out-of-range values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["interval", "band", "whalley_wilmott"] = "whalley_wilmott"
    interval_bars: int = Field(1, ge=1)
    band: float = Field(10.0, gt=0.0)
    risk_aversion: float = Field(1e-4, gt=0.0)
    discount: float = Field(1.0, gt=0.0, le=1.0)
    half_spread: float = Field(0.05, ge=0.0)
    commission_per_share: float = Field(0.005, ge=0.0)
    min_band: float = Field(0.5, gt=0.0)
    target: float = 0.0
    rehedge_to: Literal["target", "edge"] = "target"
    lot_size: int = Field(1, ge=1)
    symbol: str | None = None


def whalley_wilmott_band(
    gamma: float, cost_per_share: float, risk_aversion: float, discount: float = 1.0
) -> float:
    """Whalley & Wilmott (1997) half-width of the no-trade band around the target delta.

    ``H = (3/2 * discount * cost_per_share * gamma**2 / risk_aversion) ** (1/3)`` (module
    docstring; ``cost_per_share = lambda * S`` of the paper's proportional cost ``lambda``).

    Parameters
    ----------
    gamma : float
        Book gamma, shares (index units) per point; its sign does not matter.
    cost_per_share : float
        Dollars to trade one share (half spread + commission), >= 0.
    risk_aversion : float
        Exponential-utility risk aversion, 1 / dollars, > 0.
    discount : float
        ``exp(-r tau)``, in (0, 1].

    Returns
    -------
    float
        Half-width in shares (0 when ``gamma`` or the cost is 0).

    Raises
    ------
    ValueError
        Non-finite inputs, negative cost, non-positive risk aversion or discount outside (0, 1].
    """
    for name, value in (("gamma", gamma), ("cost_per_share", cost_per_share)):
        if not math.isfinite(value):
            raise ValueError(f"whalley_wilmott_band: {name} must be finite, got {value!r}")
    if cost_per_share < 0:
        raise ValueError(f"whalley_wilmott_band: cost_per_share must be >= 0, got {cost_per_share}")
    if not (math.isfinite(risk_aversion) and risk_aversion > 0):
        raise ValueError(f"whalley_wilmott_band: risk_aversion must be > 0, got {risk_aversion!r}")
    if not 0 < discount <= 1:
        raise ValueError(f"whalley_wilmott_band: discount must be in (0, 1], got {discount!r}")
    return (1.5 * discount * cost_per_share * gamma * gamma / risk_aversion) ** (1.0 / 3.0)


@dataclass(frozen=True)
class HedgeDecision:
    """One bar's hedge decision.

    Attributes
    ----------
    time : datetime.datetime
        Snapshot time (naive America/New_York).
    delta : float
        Book delta before the trade (options + shares), shares.
    gamma : float
        Option book gamma, shares per point.
    band : float
        Half-width applied, shares (``nan`` on bars the interval rule skips).
    quantity : int
        Shares traded (0: none).
    mid : float
        Underlying price of the snapshot (points / dollars per share).
    reason : str
        Why traded or not (``inside band``, ``not an interval bar``, ``legs without greeks``...).
    """

    time: dt.datetime
    delta: float
    gamma: float
    band: float
    quantity: int
    mid: float
    reason: str


class DeltaHedger:
    """Delta-hedges an :class:`OptionStrategy`'s book with the underlying and keeps the P&L
    breakdown.

    Use through :class:`DeltaHedgedStrategy`, or by hand: call :meth:`hedge` from
    ``next_chain`` after the option trades and :meth:`record` at the end of every bar (after
    ``OptionStrategy.next``).

    Parameters
    ----------
    config : HedgeConfig
        Rule and costs.

    Attributes
    ----------
    decisions : list of HedgeDecision
        One per :meth:`hedge` call.
    """

    def __init__(self, config: HedgeConfig | None = None) -> None:
        self.config = config or HedgeConfig()
        self.decisions: list[HedgeDecision] = []
        self._bars = 0
        self._hedge_mids: dict[int, float] = {}  # id(StockFill) -> mid of the hedge trade
        self._fills: list[StockFill] = []  # keeps the ids above alive
        self._rows: list[dict] = []
        self._last: dict | None = None

    # -- the decision -----------------------------------------------------------------------------
    def band_for(self, gamma: float) -> float:
        """Half-width of the no-trade band for a book gamma (shares per point), in shares.

        ``band``: the fixed ``band``; ``whalley_wilmott``: :func:`whalley_wilmott_band`;
        ``interval``: ``min_band``. Never below ``min_band``.
        """
        cfg = self.config
        if cfg.rule == "band":
            width = cfg.band
        elif cfg.rule == "whalley_wilmott":
            cost = cfg.half_spread + cfg.commission_per_share
            width = whalley_wilmott_band(gamma, cost, cfg.risk_aversion, cfg.discount)
        else:
            width = cfg.min_band
        return max(width, cfg.min_band)

    def hedge(
        self, strategy: OptionStrategy, snapshot: ChainSnapshot, tag: str = HEDGE_TAG
    ) -> HedgeDecision:
        """Decide and trade this bar's hedge (call once per bar, after the option trades).

        Parameters
        ----------
        strategy : OptionStrategy
            Its broker's book is hedged; its :meth:`~OptionStrategy.book_greeks` give the delta.
        snapshot : ChainSnapshot
            The current bar's snapshot (only it is read: no look-ahead).
        tag : str, optional
            Tag of the share trade. :data:`HEDGE_TAG` (a hedge of the whole book) names no trade,
            so :class:`strategies.book.TradeBook` gives it to the trades holding the shares, else
            to its unallocated trade; the tag of an open trade (a strategy hedging one position)
            allocates the hedge to that trade.

        Returns
        -------
        HedgeDecision
            Also appended to :attr:`decisions`. No trade when a leg of the book has no model
            greek (the delta would be partial), when the underlying price is not finite, between
            interval bars, or inside the band.
        """
        cfg = self.config
        broker = strategy.obroker
        symbol = cfg.symbol or snapshot.underlying
        stamp = snapshot.quote_time.tz_localize(None).to_pydatetime()
        bar = self._bars
        self._bars += 1
        mid = float(snapshot.underlying_price)
        greeks = strategy.book_greeks(snapshot)
        held = broker.underlying_positions.get(symbol)
        delta = greeks["delta"] + (held.quantity if held is not None else 0)
        gamma = greeks["gamma"]

        def decide(band: float, qty: int, reason: str) -> HedgeDecision:
            d = HedgeDecision(stamp, delta, gamma, band, qty, mid, reason)
            self.decisions.append(d)
            return d

        if greeks["legs_without_greeks"]:
            return decide(math.nan, 0, f"{greeks['legs_without_greeks']} legs without greeks")
        if not (math.isfinite(mid) and mid > cfg.half_spread):
            return decide(math.nan, 0, f"underlying price {mid!r} not usable")
        if cfg.rule == "interval" and bar % cfg.interval_bars:
            return decide(math.nan, 0, "not an interval bar")
        band = self.band_for(gamma)
        qty = int(
            hedge_quantity(
                delta, band, target=cfg.target, rehedge_to=cfg.rehedge_to, lot_size=cfg.lot_size
            )
        )
        if qty == 0:
            return decide(band, 0, "inside band")
        price = mid + cfg.half_spread if qty > 0 else mid - cfg.half_spread
        fill = broker.trade_underlying(
            symbol,
            qty,
            price,
            snapshot.quote_time,
            commission=cfg.commission_per_share * abs(qty),
            tag=tag,
        )
        self._hedge_mids[id(fill)] = mid
        self._fills.append(fill)
        return decide(band, qty, f"delta {delta:+.2f} outside {cfg.target:g} +- {band:.2f}")

    # -- the P&L breakdown ------------------------------------------------------------------------
    def record(self, broker: OptionsBroker, time: dt.datetime | pd.Timestamp) -> None:
        """Record the book at the end of a bar (the first call only sets the baseline).

        Parameters
        ----------
        broker : OptionsBroker
            The strategy's broker.
        time : datetime or pandas.Timestamp
            Bar time (the row label of :meth:`pnl_frame`).
        """
        state = {
            "value": float(broker.getvalue()),
            "options": broker.options_value(),
            "shares": broker.underlying_value(),
            "n_fills": len(broker.option_fills),
            "n_settle": len(broker.option_settlements),
            "n_stock": len(broker.stock_fills),
        }
        if self._last is None:
            self._last = state
            return
        last = self._last
        opt = state["options"] - last["options"]
        hedge = state["shares"] - last["shares"]
        costs = {"option_commission": 0.0, "option_slippage": 0.0}
        costs |= {"hedge_commission": 0.0, "hedge_spread": 0.0}
        for f in broker.option_fills[last["n_fills"] : state["n_fills"]]:
            mult = f.contract.multiplier
            mid = 0.5 * (f.bid + f.ask)
            opt += -f.quantity * mid * mult
            costs["option_commission"] += f.commission
            costs["option_slippage"] += f.quantity * (f.price - mid) * mult
        for s in broker.option_settlements[last["n_settle"] : state["n_settle"]]:
            delivered = s.shares * s.underlying_price
            opt += s.cash_flow + s.fee + delivered
            hedge -= delivered
            costs["option_commission"] += s.fee
        for t in broker.stock_fills[last["n_stock"] : state["n_stock"]]:
            mid = self._hedge_mids.get(id(t), t.price)
            hedge += -t.quantity * mid
            costs["hedge_commission"] += t.commission
            costs["hedge_spread"] += t.quantity * (t.price - mid)
        total_cost = -sum(costs.values())
        self._rows.append(
            {
                "time": pd.Timestamp(time).tz_localize(None)
                if pd.Timestamp(time).tzinfo
                else pd.Timestamp(time),
                "option_pnl": opt,
                "hedge_pnl": hedge,
                "costs": total_cost,
                **{k: -v for k, v in costs.items()},
                "account_value": state["value"],
                "value_change": state["value"] - last["value"],
            }
        )
        self._last = state

    def pnl_frame(self) -> pd.DataFrame:
        """Per-bar breakdown, dollars, indexed by bar time.

        Returns
        -------
        pandas.DataFrame
            Columns ``option_pnl, hedge_pnl, costs`` (``costs <= 0``, the sum of
            ``option_commission, option_slippage, hedge_commission, hedge_spread``, each <= 0 as
            charged), ``account_value`` (end of bar) and ``value_change``; ``option_pnl +
            hedge_pnl + costs == value_change`` up to float rounding (module docstring).
        """
        columns = ["option_pnl", "hedge_pnl", "costs", "option_commission", "option_slippage"]
        columns += ["hedge_commission", "hedge_spread", "account_value", "value_change"]
        if not self._rows:
            return pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], name="time"))
        return pd.DataFrame(self._rows).set_index("time")[columns]

    def daily_pnl(self) -> pd.DataFrame:
        """:meth:`pnl_frame` summed per session date (``account_value`` = the day's last).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``date`` (datetime.date), same columns as :meth:`pnl_frame`.
        """
        frame = self.pnl_frame()
        day = pd.Index([t.date() for t in frame.index], name="date")
        agg = {c: "sum" for c in frame.columns} | {"account_value": "last"}
        return frame.groupby(day).agg(agg)[list(frame.columns)]

    def decisions_frame(self) -> pd.DataFrame:
        """:attr:`decisions` as a frame (columns of :class:`HedgeDecision`)."""
        cols = ["time", "delta", "gamma", "band", "quantity", "mid", "reason"]
        return pd.DataFrame([d.__dict__ for d in self.decisions], columns=cols)


class DeltaHedgedStrategy(OptionStrategy):
    """:class:`OptionStrategy` whose book is delta-hedged every bar by a :class:`DeltaHedger`.

    Subclasses write :meth:`next_options` (instead of ``next_chain``); the hedge runs after it on
    the same snapshot, and the P&L breakdown is recorded at the end of every bar.

    Parameters (backtrader ``params``)
    ----------------------------------
    hedge : HedgeConfig or dict, optional
        Hedge configuration (default :class:`HedgeConfig` ()).

    Attributes
    ----------
    hedger : DeltaHedger
    """

    params = (("hedge", None),)

    def __init__(self) -> None:
        super().__init__()
        cfg = self.p.hedge
        self.hedger = DeltaHedger(
            cfg if isinstance(cfg, HedgeConfig) else HedgeConfig(**(cfg or {}))
        )

    def next(self) -> None:
        """Baseline record on the first bar, :meth:`OptionStrategy.next`, then record."""
        if self.hedger._last is None:
            self.hedger.record(self.obroker, self.data.datetime.datetime(0))
        super().next()
        self.hedger.record(self.obroker, self.data.datetime.datetime(0))

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """:meth:`next_options`, then the hedge (its share trade tagged :meth:`hedge_tag`)."""
        self.next_options(snapshot)
        self.hedger.hedge(self, snapshot, tag=self.hedge_tag())

    def hedge_tag(self) -> str:
        """Tag of this bar's hedge trade: :data:`HEDGE_TAG` (the whole book; the trade book's
        unallocated trade). A strategy that holds one position at a time returns that
        position's tag, so the book allocates the hedge to its trade."""
        return HEDGE_TAG

    def next_options(self, snapshot: ChainSnapshot) -> None:
        """User hook: option trades of this bar (book settled and marked)."""


__all__ = [
    "HEDGE_TAG",
    "DeltaHedgedStrategy",
    "DeltaHedger",
    "HedgeConfig",
    "HedgeDecision",
    "whalley_wilmott_band",
]
