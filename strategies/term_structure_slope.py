"""``term_structure_slope``: trade the front expiry against the next when it sits off the curve.

From design document ``000`` ("Term Structure Slope Signal", ``../shared/design/000_*.txt``) and
issue 5. On each quote date ``D``, from ``D``'s chain snapshot only:

1. ATM implied vol (:meth:`data_feeds.chains.ChainSnapshot.atm_iv`, decimal, ACT/365) of every
   ``root`` expiry with ``front_min_dte <= dte <= fit_max_dte``;
2. the **front** is the first of them, the **next** the one after it;
3. the curve is an OLS line of ATM IV on ``x = tte`` or ``x = sqrt(tte)`` (``curve_x``) fitted on
   the *other* expiries of the band (the front left out), at least ``min_fit_expiries`` of them;
   the fair front IV is the line at the front's ``x``;
4. ``residual = front_iv - fair_front_iv`` (decimal vol; +0.01 = one vol point rich).

Rules: with no position open, ``residual > entry_threshold`` sells the front and buys the next
expiry at the front's ATM strike (the long calendar of
:meth:`~data_feeds.chains.ChainSnapshot.calendar`, bought); ``residual < -entry_threshold`` does
the opposite (the calendar sold). The position is closed at bid/ask when the residual has come
back inside ``exit_threshold`` (``reverted``), after ``max_hold_days`` snapshots (``time``;
sessions: one snapshot per quote date), when the front has ``exit_dte`` calendar days left or
fewer (``dte``), or on the last day of the backtest window (``window_end``). The calendar is
marked daily at the snapshot mids by :class:`strategies.option_strategy.OptionStrategy`; fills,
commissions and slippage come from :class:`brokers.OptionsBroker`.

Risk layer (:mod:`strategies.risk`, ``docs/risk.md``; :class:`OptionRiskMixin` first in the MRO),
first thing each bar: the ``max_drawdown`` kill switch flattens the book at the snapshot's
bid/ask and refuses every later entry; ``max_daily_loss`` refuses entries for the rest of the
session; ``stop_loss`` closes the calendar when its P&L since entry (legs at the mid marks, net
of costs paid) reaches ``-stop_loss`` x its premium at entry (the debit paid or credit received,
plus opening commissions: :meth:`strategies.risk.TagLedger.basis` of a two-expiry position).
``sizing = "max_loss"`` sizes with :func:`strategies.risk.max_loss_contracts` on the loss per
unit: the **debit** for a bought calendar (its maximum loss while the front is alive: the long
back-month option is worth at least the short front one at the same strike), ``stop_loss`` x the
**credit** for a sold one (its loss is not bounded by the credit: the stop defines it, as for
``vrp_harvest``), plus the round-trip commission, prices at the broker's fill rule.

The design sketch builds the curve from the 0DTE and 1DTE options of an intraday chain. Our 2019
chains are 15:45 ET snapshots, where a same-day expiry has minutes left, so the front starts at
``front_min_dte`` (5) days and the curve comes from the expiries after it
(``docs/strategies/term_structure_slope.md``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from data_feeds.calendar import TZ
from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable
from data_feeds.contracts import OptionQuote
from indicators.term_structure import CURVE_STATUS, ROLE_FRONT, ROLE_NEXT, FrontCurve, front_curve
from indicators.term_structure import OUTPUTS as CURVE_OUTPUTS
from strategies.base import BacktestResult, StrategyParams
from strategies.option_strategy import ChainPlugin, ChainStrategy
from strategies.params import AccountRisk, Contracts, ExitDte, MaxContracts, MaxHoldDays, StopLoss
from strategies.risk import (
    OptionRiskMixin,
    RiskConfig,
    RiskLimits,
    max_loss_contracts,
)

__all__ = [
    "TERM_SIGNAL_COLUMNS",
    "TermStructureSlope",
    "TermStructureSlopeParams",
    "TermStructureSlopeStrategy",
    "front_curve_signal",
    "term_signal_table",
]

TERM_SIGNAL_COLUMNS: tuple[str, ...] = (
    "status",
    "front_expiration",
    "next_expiration",
    "front_dte",
    "next_dte",
    "front_tte",
    "front_iv",
    "next_iv",
    "fair_front_iv",
    "residual",
    "curve_slope",
    "curve_intercept",
    "n_fit",
    "n_no_iv",
    "atm_strike",
)
"""Columns of :func:`term_signal_table` (see :func:`front_curve_signal`)."""


def front_curve_signal(
    snapshot: ChainSnapshot,
    root: str,
    *,
    front_min_dte: int = 5,
    fit_max_dte: int = 45,
    min_fit_expiries: int = 3,
    curve_x: Literal["tte", "sqrt_tte"] = "sqrt_tte",
) -> dict[str, Any]:
    """Front ATM IV against the line fitted through the other expiries of one snapshot.

    Parameters
    ----------
    snapshot : ChainSnapshot
        One chain snapshot (its ``rate`` is used for forwards and implied vols).
    root : str
        Option root (``SPXW``).
    front_min_dte, fit_max_dte : int
        Calendar-day band of the expiries used (front = the first with an ATM IV).
    min_fit_expiries : int
        Expiries (other than the front) needed for the line (>= 2).
    curve_x : {"tte", "sqrt_tte"}
        Regressor: years ACT/365, or its square root.

    Returns
    -------
    dict
        Keys :data:`TERM_SIGNAL_COLUMNS`. ``status`` is ``ok`` or why there is no signal
        (``no_front``: no expiry in the band with an ATM IV; ``no_next``: only one;
        ``too_few_fit_expiries``). ``front_iv``, ``next_iv``, ``fair_front_iv``, ``residual``
        are decimal vols; ``curve_slope`` is decimal vol per unit of ``curve_x``; ``n_no_iv``
        counts expiries of the band left out because they have no ATM IV (never silently).

    Raises
    ------
    ValueError
        ``min_fit_expiries < 2`` or ``front_min_dte > fit_max_dte``.

    Notes
    -----
    The line is :func:`indicators.term_structure.front_curve_nb` (OLS, checked against
    ``statsmodels.OLS`` in the tests).
    """
    kw = {
        "front_min_dte": front_min_dte,
        "fit_max_dte": fit_max_dte,
        "min_fit_expiries": min_fit_expiries,
        "curve_x": curve_x,
    }
    slots = [_snapshot_slots(snapshot, root, front_min_dte, fit_max_dte)]
    return _curve_rows(slots, front_curve(*_slot_panel(slots), **kw))[0]


def _snapshot_slots(
    snapshot: ChainSnapshot, root: str, front_min_dte: int, fit_max_dte: int
) -> list[tuple[dt.date, int, float, float, float]]:
    """``(expiration, dte, tte, atm_iv, atm_strike)`` of every ``root`` expiry of the band,
    ascending; ``atm_iv``/``atm_strike`` NaN where the snapshot has no ATM IV."""
    day = snapshot.quote_date
    rows: list[tuple[dt.date, int, float, float, float]] = []
    for exp in snapshot.expiries(root):
        dte = (exp - day).days
        if not front_min_dte <= dte <= fit_max_dte:
            continue
        try:
            iv = snapshot.atm_iv(exp, root)
        except QuoteUnavailable:  # NaN slot: the curve fit reports the missing expiry
            rows.append((exp, dte, snapshot.tte(exp, root), math.nan, math.nan))
            continue
        rows.append((exp, dte, snapshot.tte(exp, root), iv, snapshot.atm_strike(exp, root)))
    return rows


def _slot_panel(
    slots: Sequence[Sequence[tuple[dt.date, int, float, float, float]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dte, tte, iv)`` arrays of shape ``(n_dates, max slots)``, NaN-padded."""
    width = max([1, *(len(r) for r in slots)])
    panel = np.full((3, len(slots), width), np.nan)
    for i, rows in enumerate(slots):
        for j, (_, dte, tte, iv, _) in enumerate(rows):
            panel[:, i, j] = (dte, tte, iv)
    return panel[0], panel[1], panel[2]


def _curve_rows(
    slots: Sequence[Sequence[tuple[dt.date, int, float, float, float]]],
    curve: Mapping[str, np.ndarray],
) -> list[dict[str, Any]]:
    """:data:`TERM_SIGNAL_COLUMNS` dicts from the slots and the
    :func:`indicators.term_structure.front_curve_nb` outputs (arrays ``(n_dates, n_slots)``)."""
    out: list[dict[str, Any]] = []
    for i, rows in enumerate(slots):
        rec: dict[str, Any] = dict.fromkeys(TERM_SIGNAL_COLUMNS, math.nan)
        rec.update(front_expiration=None, next_expiration=None, n_fit=0, n_no_iv=0)
        rec["status"] = CURVE_STATUS[int(curve["status"][i, 0])]
        rec["n_fit"] = int(curve["n_fit"][i, 0])
        rec["n_no_iv"] = int(curve["n_no_iv"][i, 0])
        role = curve["role"][i]
        for j, (exp, dte, tte, iv, strike) in enumerate(rows):
            if role[j] == ROLE_FRONT:
                rec.update(
                    front_expiration=exp, front_dte=dte, front_tte=tte, front_iv=iv,
                    atm_strike=strike,
                )  # fmt: skip
                if rec["status"] == "ok":
                    rec.update(
                        fair_front_iv=float(curve["fair"][i, j]),
                        residual=float(curve["residual"][i, j]),
                        curve_slope=float(curve["slope"][i, j]),
                        curve_intercept=float(curve["intercept"][i, j]),
                    )
            elif role[j] == ROLE_NEXT:
                rec.update(next_expiration=exp, next_dte=dte, next_iv=iv)
        out.append(rec)
    return out


def term_signal_table(
    source: Any,
    symbol: str,
    root: str,
    dates: Sequence[dt.date],
    *,
    rate: float = 0.0,
    front_min_dte: int = 5,
    fit_max_dte: int = 45,
    min_fit_expiries: int = 3,
    curve_x: Literal["tte", "sqrt_tte"] = "sqrt_tte",
) -> pd.DataFrame:
    """:func:`front_curve_signal` for each quote date, each from its own snapshot only.

    Parameters
    ----------
    source : SnapshotSource
        Chain snapshots.
    symbol, root : str
        Underlying (``SPX``) and option root (``SPXW``).
    dates : sequence of datetime.date
        Quote dates.
    rate : float
        Continuous rate (decimal) put on the snapshots.
    front_min_dte, fit_max_dte, min_fit_expiries, curve_x
        See :func:`front_curve_signal`.

    Returns
    -------
    pandas.DataFrame
        Index ``date`` (tz-aware America/New_York midnight), columns :data:`TERM_SIGNAL_COLUMNS`.

    Raises
    ------
    ValueError
        ``min_fit_expiries < 2`` or ``front_min_dte > fit_max_dte``.

    Notes
    -----
    The ATM vols of every snapshot form one ``(n_dates, n_slots)`` panel; the lines of all
    dates come from one :data:`indicators.term_structure.FrontCurve` call.
    """
    slots = [
        _snapshot_slots(
            source.snapshot(symbol, d, None, [root], False, rate), root, front_min_dte, fit_max_dte
        )
        for d in dates
    ]
    res = FrontCurve.run(
        *_slot_panel(slots),
        front_min_dte=front_min_dte,
        fit_max_dte=fit_max_dte,
        min_fit_expiries=min_fit_expiries,
        curve_x=curve_x,
    )
    width = max([1, *(len(r) for r in slots)])
    curve = {
        name: getattr(res, name).to_numpy().reshape(len(slots), width) for name in CURVE_OUTPUTS
    }
    frame = pd.DataFrame(_curve_rows(slots, curve), columns=list(TERM_SIGNAL_COLUMNS))
    frame.index = pd.DatetimeIndex([pd.Timestamp(d) for d in dates]).tz_localize(TZ)
    frame.index.name = "date"
    return frame


class TermStructureSlopeParams(StrategyParams):
    """Parameters of ``term_structure_slope`` (searchable ones in :attr:`tunable`; ``chain_symbol``,
    ``root``, ``rate``, ``front_min_dte``, ``fit_max_dte``, ``min_fit_expiries`` and ``curve_x``
    are fixed when :meth:`TermStructureSlope.prepare` builds the signal table).

    Attributes
    ----------
    chain_symbol, root : str
        Underlying of the snapshots (``SPX``) and the root traded (``SPXW``).
    rate : float
        Continuous rate (decimal) for forwards and implied vols.
    front_min_dte, fit_max_dte, min_fit_expiries, curve_x
        See :func:`front_curve_signal` (5 days, 45 days, 3, ``sqrt_tte``).
    entry_threshold : float
        |residual| (decimal vol) needed to open (0.005 = half a vol point).
    exit_threshold : float
        Close when ``sign * residual`` falls to this or below (decimal vol; 0 = back on the
        curve); must be < ``entry_threshold``.
    max_hold_days : int
        Sessions: close after this many daily chain snapshots (one per stored quote date; a
        session without a stored chain is not counted).
    exit_dte : int
        Close when the front has this many calendar days left or fewer (< ``front_min_dte``).
    right : {'C', 'P'}
        Right of the calendar's two legs.
    contracts : int
        Calendars per trade with ``sizing = "fixed"``.
    allow_long, allow_short : bool
        Enable buying (front rich) / selling (front cheap) the calendar.
    sizing : {"fixed", "max_loss"}
        ``fixed``: ``contracts``; ``max_loss``: :func:`strategies.risk.max_loss_contracts` of
        ``account_risk`` on the loss per unit (module docstring; a sold calendar needs
        ``stop_loss``), capped at ``max_contracts``.
    account_risk : float
        Share of the equity a calendar may lose (decimal, 0.02 = 2%).
    max_contracts : int
        Cap on calendars per trade with ``sizing = "max_loss"``.
    stop_loss : float, optional
        Close the calendar when its P&L since entry is ``<= -stop_loss`` x its premium at entry
        (decimal multiple); ``None``: no stop.

    The kill switch (``max_drawdown``) and daily-loss block (``max_daily_loss``) are not
    parameters: they come from the config's ``[risk]``.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "entry_threshold",
            "exit_threshold",
            "max_hold_days",
            "exit_dte",
            "right",
            "contracts",
            "allow_long",
            "allow_short",
            "sizing",
            "account_risk",
            "max_contracts",
            "stop_loss",
        }
    )

    chain_symbol: str = "SPX"
    root: str = "SPXW"
    rate: float = Field(0.0, ge=-0.05, le=0.25)
    front_min_dte: int = Field(5, ge=1, le=60)
    fit_max_dte: int = Field(45, ge=2, le=365)
    min_fit_expiries: int = Field(3, ge=2, le=30)
    curve_x: Literal["tte", "sqrt_tte"] = "sqrt_tte"
    entry_threshold: float = Field(0.005, gt=0.0, le=0.2)
    exit_threshold: float = Field(0.0, ge=-0.2, le=0.2)
    max_hold_days: MaxHoldDays = 5
    exit_dte: Annotated[ExitDte, Field(le=59)] = 2
    right: Literal["C", "P"] = "C"
    contracts: Contracts = 1
    allow_long: bool = True
    allow_short: bool = True
    sizing: Literal["fixed", "max_loss"] = "fixed"
    account_risk: AccountRisk = 0.02
    max_contracts: MaxContracts = 10
    stop_loss: StopLoss | None = Field(
        None, description="decimal multiple of the calendar's premium at entry; None: no stop"
    )

    @model_validator(mode="after")
    def _consistent(self) -> TermStructureSlopeParams:
        if self.exit_threshold >= self.entry_threshold:
            raise ValueError(
                f"exit_threshold ({self.exit_threshold}) must be < entry_threshold "
                f"({self.entry_threshold})"
            )
        if self.exit_dte >= self.front_min_dte:
            raise ValueError(
                f"exit_dte ({self.exit_dte}) must be < front_min_dte ({self.front_min_dte}): a "
                "new calendar would be closed on its first day"
            )
        if self.front_min_dte > self.fit_max_dte:
            raise ValueError("front_min_dte must be <= fit_max_dte")
        if self.sizing == "max_loss" and self.allow_short and self.stop_loss is None:
            raise ValueError(
                "sizing = 'max_loss' with allow_short needs stop_loss: a sold calendar's loss is "
                "not bounded by its credit, the loss budgeted per unit is the stop"
            )
        return self

    def risk_config(self, limits: RiskLimits) -> RiskConfig:
        """The :class:`strategies.risk.RiskConfig` of the config's ``limits`` (kill switch,
        daily loss) and this strategy's position stop."""
        return limits.risk_config(stop_loss=self.stop_loss)


class TermStructureSlopeStrategy(OptionRiskMixin, ChainStrategy):
    """backtrader face: one calendar at a time, opened and closed on the day's signal, under the
    risk layer (module docstring).

    Parameters (backtrader ``params``)
    ----------------------------------
    rules : TermStructureSlopeParams
        Rule parameters.
    signals : mapping of datetime.date to dict
        Per quote date, :func:`front_curve_signal` of that date's snapshot.
    last_day : datetime.date, optional
        Last session of the window: the open calendar is closed there, nothing opens.
    limits : strategies.risk.RiskLimits, optional
        The config's ``[risk]`` (default ``RiskLimits()``).

    The decision of quote date ``D`` reads only ``signals[D]`` (from ``D``'s snapshot) and
    ``D``'s quotes. ``log_rows`` holds one row per bar (``status``: ``no_signal``,
    ``stand_aside``, ``traded`` (the entry day of a calendar, completed with ``exit_date``,
    ``exit_reason`` and ``net_pnl`` when it closes: what the run summary counts), ``holding``,
    ``closed``, ``exit_deferred``, ``window_end``, ``strike_not_quoted``, ``rejected``,
    ``risk_blocked``, ``size_zero``, ``no_premium``) and ``trades`` one row per calendar
    (entry/exit dates, ``contracts``, reason -- ``kill_switch`` and ``stop_loss`` from the risk
    layer --, net P&L in dollars of its trade in :attr:`book`).
    """

    rules_cls = TermStructureSlopeParams
    counters = ("exit_deferred", "trades")
    sync_on_finish = True

    def next_chain(self, snapshot: ChainSnapshot) -> None:
        """Risk step, manage the open calendar, then decide on a new one (class docstring)."""
        self.risk_step()
        day = snapshot.quote_date
        sig = self.signals.get(day, {})
        residual = float(sig.get("residual", math.nan))
        row: dict[str, Any] = {"date": day, "residual": residual, "signal": sig.get("status")}
        self.log_rows.append(row)
        if self.open_trade is not None:
            self._manage(snapshot, day, residual, row)
            if self.open_trade is not None or row.get("exit_reason") == "stop_loss":
                return  # still open, or stopped out on this snapshot: no re-entry on it
        if day >= self.last_day:
            row.setdefault("status", "window_end")
            return
        if sig.get("status") != "ok" or not math.isfinite(residual):
            row.setdefault("status", "no_signal")
            return
        r = self.rules
        side = 0
        if r.allow_long and residual > r.entry_threshold:
            side = 1
        elif r.allow_short and residual < -r.entry_threshold:
            side = -1
        if side == 0:
            row.setdefault("status", "stand_aside")
            return
        try:
            combo = snapshot.calendar(
                sig["front_expiration"], sig["next_expiration"], sig["atm_strike"], r.right, r.root
            )
        except QuoteUnavailable as exc:
            self.count_unavailable(exc, row)
            row["status"] = "strike_not_quoted"
            return
        if self.risk_blocked():
            row["status"] = "risk_blocked"
            return
        contracts = r.contracts
        if r.sizing == "max_loss":
            contracts, loss = self._size(combo, side, snapshot)
            row.update(loss_budget_per_unit=loss, contracts=contracts)
            if contracts < 1:
                row["status"] = "size_zero" if loss > 0 else "no_premium"
                return
        tag = f"calendar {day:%Y-%m-%d}"
        fills = self.open_combo(combo, side * contracts, tag=tag)
        if not fills:
            row["status"] = "rejected"
            return
        self.counts["trades"] += 1
        self.open_trade = {
            "tag": tag,
            "trade_id": int(self.last_trade_id or 0),
            "side": side,
            "entry_date": day,
            "entry_residual": residual,
            "front_expiration": sig["front_expiration"],
            "next_expiration": sig["next_expiration"],
            "strike": float(sig["atm_strike"]),
            "entry_price": combo.ask if side > 0 else combo.bid,
            "contracts": contracts,
            "bars": 0,
            "row": row,
        }
        row.update(status="opened", side=side, strike=float(sig["atm_strike"]))

    def _manage(self, snap: ChainSnapshot, day: dt.date, residual: float, row: dict) -> None:
        t = self.open_trade
        assert t is not None
        t["bars"] += 1
        if t["tag"] not in self.combos:  # closed by the risk layer this bar, or settled
            reason = "settled"  # (a deferred exit ran past expiry)
            if self.risk.killed:
                reason = "kill_switch"
            elif any(a.kind == "stop_position" and a.name == t["tag"] for a in self.risk.events):
                reason = "stop_loss"
            if reason != "settled":
                row.update(status="closed", exit_reason=reason)
            self.finish_trade(day, reason)
            return
        r = self.rules
        reason = None
        if day >= self.last_day:
            reason = "window_end"
        elif (t["front_expiration"] - day).days <= r.exit_dte:
            reason = "dte"
        elif t["bars"] >= r.max_hold_days:
            reason = "time"
        elif math.isfinite(residual) and t["side"] * residual <= r.exit_threshold:
            reason = "reverted"
        if reason is None:
            row["status"] = "holding"
            return
        self.close_combo(t["tag"])
        if t["tag"] in self.combos:
            self.counts["exit_deferred"] += 1
            row["status"] = "exit_deferred"
            return
        row["status"] = "closed"
        row["exit_reason"] = reason
        self.finish_trade(day, reason)

    def _size(self, combo: Combo, side: int, snap: ChainSnapshot) -> tuple[int, float]:
        """Calendars and the loss budgeted per unit (dollars) under ``sizing = "max_loss"``.

        ``premium = side * sum ratio * fill_price`` per unit at the broker's fill rule
        (:meth:`brokers.costs.OptionCostModel.fill_price`): a debit for ``side = 1`` (loss =
        the debit), a credit for ``side = -1`` (loss = ``stop_loss`` x the credit); times the
        multiplier, plus ``2 * legs`` commissions. ``(0, 0.0)`` when the premium is not
        positive (a calendar that pays to buy or costs to sell is not traded).
        """
        r = self.rules
        costs = self.obroker.costs
        paid = 0.0  # dollars per unit, > 0 paid
        for c, ratio in combo.legs:
            q = snap.row(c)
            quote = OptionQuote(float(q["bid"]), float(q["ask"]))
            paid += ratio * side * costs.fill_price(quote, ratio * side, c.root) * c.multiplier
        premium = paid if side > 0 else -paid
        if not premium > 0:
            return 0, 0.0
        scale = 1.0 if side > 0 else float(r.stop_loss or math.nan)
        loss = scale * premium + 2 * len(combo.legs) * costs.commission_per_contract
        n = max_loss_contracts(
            self.broker.getvalue(), r.account_risk, loss, max_contracts=r.max_contracts
        )
        return n, loss


class TermStructureSlope(ChainPlugin):
    """Plugin wiring :func:`term_signal_table` and :class:`TermStructureSlopeStrategy`.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        :class:`brokers.OptionsBroker` params.
    """

    name = "term_structure_slope"
    description = "Front ATM IV vs the line through the other expiries: trade the calendar"
    Params = TermStructureSlopeParams
    required_data = ("underlying", "chains")
    risk_limits = frozenset({"max_drawdown", "max_daily_loss"})
    strategy_cls = TermStructureSlopeStrategy
    feed_target_dte = 30.0
    signal_source = "_signals"
    signals_as_records = False
    info_counts = ("exit_deferred",)
    info_tables: ClassVar[Mapping[str, str]] = {"calendar_trades": "trades"}

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """The signal table of every quote date inside the underlying's sessions.

        Parameters
        ----------
        data : mapping
            ``underlying`` (validated OHLC: settles legs left to expiry, benchmark) and
            ``chains`` (a :class:`data_feeds.chain_store.ChainStore` or any snapshot source).
        grid : mapping
            Searched parameter -> candidate values.

        Raises
        ------
        ValueError
            A load-time parameter in the search space, or no quote date of
            ``chain_symbol`` / ``root`` inside the underlying's sessions.
        """
        p = self.setup_chains(data, grid)
        assert isinstance(p, TermStructureSlopeParams)
        self.table = term_signal_table(
            self.source,
            p.chain_symbol,
            p.root,
            self.quote_dates,
            rate=p.rate,
            front_min_dte=p.front_min_dte,
            fit_max_dte=p.fit_max_dte,
            min_fit_expiries=p.min_fit_expiries,
            curve_x=p.curve_x,
        )
        counts = self.table["status"].value_counts().to_dict()
        ok = self.table[self.table["status"] == "ok"]
        self.reports.append(
            f"term signal on {len(self.table)} quote dates: "
            + ", ".join(f"{k}: {v}" for k, v in counts.items())
            + f"; expiries without ATM IV left out: {int(self.table['n_no_iv'].sum())}; "
            f"residual mean {ok['residual'].mean():+.4f}, sd {ok['residual'].std():.4f} "
            "(decimal vol)"
        )
        self._signals = {
            d: rec for d, rec in zip(self.quote_dates, self.table.to_dict("records"), strict=True)
        }

    def finish_backtest(
        self, result: BacktestResult, strat: Any, params: Any
    ) -> BacktestResult:
        """``info["trades"]``: the calendars logged in the window (closed or open at its end)."""
        result.info["trades"] = float(len(strat.trades))
        return result

    def data_fingerprint(self) -> str:
        """Hash of the underlying and the signal table's numeric columns."""
        num = self.table[["front_iv", "next_iv", "fair_front_iv", "residual"]]
        return self.fingerprint_with(num)

    def write_artifacts(self, folder: Any) -> dict[str, float]:
        """``term_signals.csv`` and ``term_report.txt`` into ``folder/term_structure``; returns
        the share of quote dates with a signal and the residual's mean and sd."""
        out = self.report_folder(folder, "term_structure", "term_report.txt")
        self.table.to_csv(out / "term_signals.csv")
        ok = self.table[self.table["status"] == "ok"]["residual"]
        metrics = {
            "term_signal_days_share": float(len(ok) / max(len(self.table), 1)),
            "term_residual_mean": float(ok.mean()),
            "term_residual_sd": float(ok.std()),
        }
        return {k: v for k, v in metrics.items() if math.isfinite(v)}
