"""The risk manager: account and position guards, portfolio Greek limits, and the kill switch.

:class:`RiskManager` is plain Python (no backtrader): a strategy (or the mixins of
:mod:`strategies.risk.mixins`) calls :meth:`RiskManager.step` once per bar with the account value,
the book's Greeks and its positions' P&L, executes the :class:`RiskAction` list it returns, and
asks :meth:`RiskManager.check_order` before every new order. Every decision is recorded in
:attr:`RiskManager.events` (:meth:`RiskManager.events_frame`), deterministic for given inputs.

Rules (all optional, ``None`` switches a rule off; :class:`RiskConfig`)
----------------------------------------------------------------------
account max drawdown -> kill switch
    ``dd_t = 1 - V_t / max_{s <= t} V_s`` (the running peak includes ``initial_value``); when
    ``dd_t >= max_drawdown`` the kill switch trips: flatten the book, block every new order for
    the rest of the run (orders that only reduce a position stay allowed, so the book can be
    closed), log why. The switch never resets by itself (a human decision).
daily loss -> no new risk today
    ``1 - V_t / V_close(previous session) >= max_daily_loss``: new risk-increasing orders are
    refused until the next session.
position stop-loss
    A position (an option combo tag, or a group of share positions) whose P&L since entry is
    ``<= -stop_loss * basis`` (``basis`` = its max loss at entry, else the premium paid or
    received, else the entry notional) or ``<= -stop_loss_dollars`` is closed.
delta band -> re-hedge
    Book delta ``D`` (underlying units: shares / index units per 1 point, the units of
    :meth:`strategies.option_strategy.OptionStrategy.book_greeks`); when ``|D - target| > band``
    trade ``-(D - target)`` units of the underlying (``rehedge_to="target"``) or just enough to
    return to the nearest band edge (``"edge"``, the Whalley & Wilmott 1997 no-transaction band,
    "An asymptotic analysis of an optimal hedging model for option pricing with transaction
    costs", *Math. Finance* 7(3)). Hedge units are rounded toward zero to whole ``lot_size``.
gamma / vega caps -> block risk-increasing orders
    While ``|Gamma| > max_abs_gamma`` or ``|Vega| > max_abs_vega`` (book units: gamma = delta
    change per 1 point, vega = dollars per 1.00 of implied vol), and at any time for an order that
    would take the book beyond a cap, an order is refused unless it lowers ``|greek|`` for every
    capped greek it touches.

The design sketch's ``GreeksRiskMonitor`` (``002``, section 8.2) only alerts on gamma and sums
greeks without contract multipliers; here the greeks come from the broker's book in dollars per
contract multiplier and breaches block new risk instead of only alerting.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from data_feeds.chains import ChainSnapshot, Combo
from data_feeds.contracts import OptionContract

logger = logging.getLogger("volsuite.risk")

GREEKS = ("delta", "gamma", "vega", "theta")

EPS = 1e-12
"""Tolerance of the limit comparisons (a drawdown of exactly the limit trips it despite rounding:
``1 - 88_000 / 110_000`` is ``0.19999999999999996`` in floating point)."""

ActionKind = Literal[
    "kill",
    "hedge_delta",
    "stop_position",
    "greek_breach",
    "greek_ok",
    "daily_loss",
    "order_blocked",
    "flatten",
    "note",
]


class RiskConfig(BaseModel):
    """Limits of the risk layer; every field is optional (``None`` = rule off).

    Attributes
    ----------
    max_drawdown : float, optional
        Kill the run when the account drawdown from its peak reaches this (decimal, 0.2 = 20%).
    max_daily_loss : float, optional
        Refuse new risk for the rest of the session when the account lost this fraction since the
        previous session's last value (decimal).
    stop_loss : float, optional
        Close a position whose loss reaches ``stop_loss * basis`` (decimal multiple of its max
        loss at entry, premium or notional; 0.5 = half).
    stop_loss_dollars : float, optional
        Close a position whose loss reaches this many dollars.
    delta_band : float, optional
        Re-hedge when ``|delta - delta_target|`` exceeds this (underlying units).
    delta_target : float
        Target book delta (underlying units), default 0.
    rehedge_to : {'target', 'edge'}
        Hedge back to the target or to the nearest band edge.
    lot_size : int
        Hedge quantities are whole multiples of this (underlying units), rounded toward zero.
    max_abs_gamma : float, optional
        Cap on ``|book gamma|`` (delta units per point).
    max_abs_vega : float, optional
        Cap on ``|book vega|`` (dollars per 1.00 of implied vol; a cap of $5,000 per vol point is
        ``500_000``).

    Raises
    ------
    pydantic.ValidationError
        Unknown keys or out-of-range values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_drawdown: float | None = Field(None, gt=0.0, lt=1.0)
    max_daily_loss: float | None = Field(None, gt=0.0, lt=1.0)
    stop_loss: float | None = Field(None, gt=0.0)
    stop_loss_dollars: float | None = Field(None, gt=0.0)
    delta_band: float | None = Field(None, gt=0.0)
    delta_target: float = 0.0
    rehedge_to: Literal["target", "edge"] = "target"
    lot_size: int = Field(1, ge=1)
    max_abs_gamma: float | None = Field(None, gt=0.0)
    max_abs_vega: float | None = Field(None, gt=0.0)

    def caps(self) -> dict[str, float]:
        """The active Greek caps, ``{"gamma": ..., "vega": ...}``."""
        out = {}
        if self.max_abs_gamma is not None:
            out["gamma"] = self.max_abs_gamma
        if self.max_abs_vega is not None:
            out["vega"] = self.max_abs_vega
        return out


@dataclass(frozen=True)
class RiskAction:
    """One decision of the risk layer (also the record in :attr:`RiskManager.events`).

    Attributes
    ----------
    time : pandas.Timestamp
        Bar time.
    kind : str
        ``kill``, ``hedge_delta``, ``stop_position``, ``greek_breach``, ``greek_ok``,
        ``daily_loss``, ``order_blocked``, ``flatten`` or ``note``.
    name : str
        What it is about: a greek, a position tag, an order label, ``account``.
    value : float
        The measured value (drawdown, greek, P&L in dollars ...); NaN when not applicable.
    limit : float
        The limit it was compared with; NaN when not applicable.
    quantity : float
        ``hedge_delta``: signed underlying units to trade; otherwise 0.
    reason : str
        One line saying why.
    """

    time: pd.Timestamp
    kind: ActionKind
    name: str
    value: float = math.nan
    limit: float = math.nan
    quantity: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class OrderCheck:
    """Answer of :meth:`RiskManager.check_order`: ``allowed`` and, when refused, ``reason``."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class PositionRisk:
    """A position's state for the stop-loss rule.

    Attributes
    ----------
    name : str
        Tag / group name.
    pnl : float
        Dollars since entry (realized + open, net of costs paid).
    basis : float
        Dollars the stop fraction applies to (max loss at entry, premium, or notional), > 0; NaN
        disables the fractional stop for this position.
    """

    name: str
    pnl: float
    basis: float = math.nan


def hedge_quantity(
    delta: float,
    band: float,
    *,
    target: float = 0.0,
    rehedge_to: Literal["target", "edge"] = "target",
    lot_size: int = 1,
) -> float:
    """Underlying units to trade so that book delta returns inside ``target +- band``.

    Parameters
    ----------
    delta : float
        Book delta, underlying units (shares / index units per 1 point).
    band : float
        Half-width of the no-trade band, > 0, same units.
    target : float
        Center of the band.
    rehedge_to : {'target', 'edge'}
        ``target``: trade ``-(delta - target)``; ``edge``: trade to the nearest band edge
        (Whalley & Wilmott 1997).
    lot_size : int
        Round the quantity toward zero to a multiple of this.

    Returns
    -------
    float
        Signed units (0 inside the band, or when rounding leaves nothing to trade).

    Raises
    ------
    ValueError
        ``band <= 0``, non-finite ``delta``, ``lot_size < 1`` or unknown ``rehedge_to``.
    """
    if not band > 0:
        raise ValueError(f"band must be > 0, got {band!r}")
    if not math.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta!r}")
    if lot_size < 1:
        raise ValueError(f"lot_size must be >= 1, got {lot_size!r}")
    gap = delta - target
    if abs(gap) <= band:
        return 0.0
    if rehedge_to == "target":
        raw = -gap
    elif rehedge_to == "edge":
        raw = -(gap - math.copysign(band, gap))
    else:
        raise ValueError(f"rehedge_to must be 'target' or 'edge', got {rehedge_to!r}")
    lots = math.trunc(raw / lot_size)
    return float(lots * lot_size) + 0.0  # + 0.0: no -0.0


def combo_greeks(
    legs: Combo | list[tuple[OptionContract, int]] | tuple[tuple[OptionContract, int], ...],
    snapshot: ChainSnapshot,
    quantity: int = 1,
) -> dict[str, float]:
    """Greeks of ``quantity`` units of a combo, in the units of ``OptionStrategy.book_greeks``.

    ``sum ratio * quantity * multiplier * greek`` with the snapshot's Black-76 model greeks
    (:meth:`ChainSnapshot.with_implied_vols`).

    Parameters
    ----------
    legs : Combo or sequence of (OptionContract, int)
        Legs with signed ratios per unit.
    snapshot : ChainSnapshot
        Quotes the greeks come from.
    quantity : int
        Units (> 0 buy, < 0 sell).

    Returns
    -------
    dict
        ``delta`` (underlying units per point), ``gamma`` (per point), ``vega`` (dollars per
        1.00 vol), ``theta`` (dollars per year), ``legs_without_greeks`` (legs left out: not
        quoted or no implied vol).
    """
    pairs = legs.legs if isinstance(legs, Combo) else legs
    return snapshot.position_greeks((c, int(ratio) * int(quantity)) for c, ratio in pairs)


def _ts(time: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(time)


@dataclass
class RiskManager:
    """Stateful risk checks of one backtest (see the module docstring for the rules).

    Parameters
    ----------
    config : RiskConfig
        The limits.
    initial_value : float, optional
        Starting account value (dollars) for the drawdown peak; default the first value seen.

    Attributes
    ----------
    killed : bool
        The kill switch has tripped.
    kill_reason : str
        Why (empty while not killed).
    kill_time : pandas.Timestamp or None
        When.
    events : list of RiskAction
        Every decision, in order.
    greeks : dict
        The book greeks of the last :meth:`step`, plus those of orders recorded since with
        :meth:`record_fill`.
    """

    config: RiskConfig = field(default_factory=RiskConfig)
    initial_value: float | None = None
    killed: bool = False
    kill_reason: str = ""
    kill_time: pd.Timestamp | None = None
    events: list[RiskAction] = field(default_factory=list)
    greeks: dict[str, float] = field(default_factory=dict)
    _peak: float = math.nan
    _session: dt.date | None = None
    _session_open_value: float = math.nan
    _last_value: float = math.nan
    _no_new_risk_on: dt.date | None = None
    _breached: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.initial_value is not None:
            if not (math.isfinite(self.initial_value) and self.initial_value > 0):
                raise ValueError(f"initial_value must be > 0 dollars, got {self.initial_value!r}")
            self._peak = float(self.initial_value)
            self._last_value = float(self.initial_value)

    # -- records ----------------------------------------------------------------------------------
    def _log(self, action: RiskAction) -> RiskAction:
        self.events.append(action)
        return action

    def events_frame(self) -> pd.DataFrame:
        """Every decision as a frame: ``time, kind, name, value, limit, quantity, reason``."""
        cols = ["time", "kind", "name", "value", "limit", "quantity", "reason"]
        return pd.DataFrame([a.__dict__ for a in self.events], columns=cols)

    @property
    def drawdown(self) -> float:
        """Current drawdown from the peak (decimal), NaN before the first value."""
        if not (math.isfinite(self._peak) and math.isfinite(self._last_value)):
            return math.nan
        return 1.0 - self._last_value / self._peak

    # -- the kill switch --------------------------------------------------------------------------
    def kill(
        self,
        time: dt.datetime | pd.Timestamp,
        reason: str,
        *,
        value: float = math.nan,
        limit: float = math.nan,
    ) -> RiskAction:
        """Trip the kill switch now (idempotent: a second call only records a note).

        Parameters
        ----------
        time : datetime or pandas.Timestamp
            Bar time.
        reason : str
            Why (logged at WARNING on ``volsuite.risk`` and kept in :attr:`kill_reason`).
        value, limit : float
            The measurement that tripped it and its limit, for the record (NaN for a manual kill).

        Returns
        -------
        RiskAction
            The ``kill`` action (or a ``note`` when already killed).
        """
        ts = _ts(time)
        if self.killed:
            return self._log(RiskAction(ts, "note", "kill", reason=f"already killed: {reason}"))
        self.killed = True
        self.kill_reason = reason
        self.kill_time = ts
        logger.warning("kill switch at %s: %s", ts, reason)
        return self._log(RiskAction(ts, "kill", "account", value, limit, reason=reason))

    # -- the bar ----------------------------------------------------------------------------------
    def step(
        self,
        time: dt.datetime | pd.Timestamp,
        value: float,
        greeks: Mapping[str, float] | None = None,
        positions: Mapping[str, PositionRisk] | list[PositionRisk] | None = None,
    ) -> list[RiskAction]:
        """Evaluate every rule on this bar and return what to do.

        Parameters
        ----------
        time : datetime or pandas.Timestamp
            Bar time (its date is the session).
        value : float
            Account value, dollars, > 0.
        greeks : mapping, optional
            Book greeks (``delta``, ``gamma``, ``vega`` ...), units of ``book_greeks``; the
            delta includes any hedge already held.
        positions : mapping or list of PositionRisk, optional
            Open positions for the stop-loss rule.

        Returns
        -------
        list of RiskAction
            In this order: ``kill`` (then nothing else: the caller flattens), ``daily_loss``,
            ``greek_breach`` / ``greek_ok`` transitions, ``hedge_delta``, ``stop_position``.
            While killed, every bar returns the standing ``kill`` action again so the caller keeps
            flattening what could not be closed yet (it is recorded in :attr:`events` once).

        Raises
        ------
        ValueError
            A non-finite or non-positive ``value``.
        """
        ts = _ts(time)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"risk step at {ts}: account value must be > 0, got {value!r}")
        cfg = self.config
        out: list[RiskAction] = []
        day = ts.date()
        if self._session != day:
            prior = self._last_value
            self._session = day
            self._session_open_value = prior if math.isfinite(prior) else float(value)
        self._last_value = float(value)
        self._peak = float(value) if not math.isfinite(self._peak) else max(self._peak, value)
        self.greeks = {k: float(v) for k, v in (greeks or {}).items()}

        if self.killed:
            return [RiskAction(ts, "kill", "account", reason=self.kill_reason)]
        dd = self.drawdown
        if cfg.max_drawdown is not None and dd >= cfg.max_drawdown - EPS:
            reason = (
                f"account drawdown {dd:.2%} from peak ${self._peak:,.2f} reached the "
                f"{cfg.max_drawdown:.2%} limit (value ${value:,.2f})"
            )
            return [self.kill(ts, reason, value=dd, limit=cfg.max_drawdown)]

        if cfg.max_daily_loss is not None and self._no_new_risk_on != day:
            loss = 1.0 - value / self._session_open_value
            if loss >= cfg.max_daily_loss - EPS:
                self._no_new_risk_on = day
                out.append(
                    self._log(
                        RiskAction(
                            ts,
                            "daily_loss",
                            "account",
                            loss,
                            cfg.max_daily_loss,
                            reason=f"lost {loss:.2%} since the previous session "
                            f"(${self._session_open_value:,.2f}); no new risk until {day} ends",
                        )
                    )
                )

        for g, cap in cfg.caps().items():
            v = self.greeks.get(g)
            if v is None or not math.isfinite(v):
                continue
            if abs(v) > cap and g not in self._breached:
                self._breached.add(g)
                out.append(
                    self._log(
                        RiskAction(
                            ts,
                            "greek_breach",
                            g,
                            v,
                            cap,
                            reason=f"|{g}| {abs(v):,.4g} above the cap {cap:,.4g}: "
                            "risk-increasing orders blocked",
                        )
                    )
                )
            elif abs(v) <= cap and g in self._breached:
                self._breached.discard(g)
                out.append(
                    self._log(
                        RiskAction(ts, "greek_ok", g, v, cap, reason=f"|{g}| back within its cap")
                    )
                )

        if cfg.delta_band is not None and "delta" in self.greeks:
            d = self.greeks["delta"]
            if math.isfinite(d):
                q = hedge_quantity(
                    d,
                    cfg.delta_band,
                    target=cfg.delta_target,
                    rehedge_to=cfg.rehedge_to,
                    lot_size=cfg.lot_size,
                )
                if q != 0:
                    out.append(
                        self._log(
                            RiskAction(
                                ts,
                                "hedge_delta",
                                "delta",
                                d,
                                cfg.delta_band,
                                q,
                                reason=f"delta {d:,.2f} outside {cfg.delta_target:g} +- "
                                f"{cfg.delta_band:g}: trade {q:+g} underlying units",
                            )
                        )
                    )

        items = positions.values() if isinstance(positions, Mapping) else (positions or [])
        for p in items:
            hit = None
            if (
                cfg.stop_loss is not None
                and math.isfinite(p.basis)
                and p.basis > 0
                and p.pnl <= -cfg.stop_loss * p.basis
            ):
                hit = (
                    -cfg.stop_loss * p.basis,
                    f"P&L ${p.pnl:,.2f} <= -{cfg.stop_loss:g} x basis ${p.basis:,.2f}",
                )
            elif cfg.stop_loss_dollars is not None and p.pnl <= -cfg.stop_loss_dollars:
                hit = (
                    -cfg.stop_loss_dollars,
                    f"P&L ${p.pnl:,.2f} <= -${cfg.stop_loss_dollars:,.2f}",
                )
            if hit is not None:
                out.append(
                    self._log(RiskAction(ts, "stop_position", p.name, p.pnl, hit[0], reason=hit[1]))
                )
        return out

    # -- orders -----------------------------------------------------------------------------------
    def check_order(
        self,
        time: dt.datetime | pd.Timestamp,
        order_greeks: Mapping[str, float] | None = None,
        *,
        reduces_risk: bool = False,
        label: str = "",
    ) -> OrderCheck:
        """May a new order go out now?

        Parameters
        ----------
        time : datetime or pandas.Timestamp
            Now.
        order_greeks : mapping, optional
            Greeks the order adds to the book (:func:`combo_greeks`); needed for the cap rule.
        reduces_risk : bool
            The order only reduces an existing position (a close): always allowed.
        label : str
            Order label for the record.

        Returns
        -------
        OrderCheck
            Refusals are recorded as ``order_blocked`` events.
        """
        if reduces_risk:
            return OrderCheck(True)
        ts = _ts(time)
        reason = ""
        if self.killed:
            reason = f"kill switch active since {self.kill_time}: {self.kill_reason}"
        elif self._no_new_risk_on == ts.date():
            reason = f"daily loss limit hit on {ts.date()}: no new risk until the next session"
        else:
            for g, cap in self.config.caps().items():
                book = self.greeks.get(g, 0.0)
                if order_greeks is None:
                    if abs(book) > cap:
                        reason = f"|{g}| {abs(book):,.4g} above the cap {cap:,.4g}"
                        break
                    continue
                after = book + float(order_greeks.get(g, 0.0))
                if abs(after) > cap and abs(after) > abs(book):
                    reason = (
                        f"|{g}| would be {abs(after):,.4g} (now {abs(book):,.4g}) above the cap "
                        f"{cap:,.4g}"
                    )
                    break
        if reason:
            self._log(RiskAction(ts, "order_blocked", label or "order", reason=reason))
            return OrderCheck(False, reason)
        return OrderCheck(True)

    def blocks_new_risk(self, time: dt.datetime | pd.Timestamp) -> bool:
        """New risk is refused at ``time`` whatever the order (kill switch or daily loss)."""
        return self.killed or self._no_new_risk_on == _ts(time).date()

    def record_fill(self, order_greeks: Mapping[str, float]) -> None:
        """Add a filled order's greeks to :attr:`greeks` (so later orders of the same bar see
        them)."""
        for g in GREEKS:
            if g in order_greeks:
                self.greeks[g] = self.greeks.get(g, 0.0) + float(order_greeks[g])

    def note(self, time: dt.datetime | pd.Timestamp, name: str, reason: str) -> RiskAction:
        """Record a free-form event (e.g. a hedge that could not be executed)."""
        return self._log(RiskAction(_ts(time), "note", name, reason=reason))


__all__ = [
    "GREEKS",
    "OrderCheck",
    "PositionRisk",
    "RiskAction",
    "RiskConfig",
    "RiskManager",
    "combo_greeks",
    "hedge_quantity",
]
