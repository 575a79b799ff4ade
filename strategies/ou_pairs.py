"""``ou_pairs``: trade a cointegrated pair's OU spread at optimal-stopping levels.

From our design document ``002`` ("optimal mean reversion": OU spread, Leung & Li optimal double
stopping, Bertram thresholds). Each session ``t``:

1. the formation in force (:func:`indicators.cointegration.formation_table`: Engle-Granger hedge
   ratio ``beta`` and exact OU MLE on the ``formation_days`` sessions before the formation took
   effect, refitted every ``refit_days``) gives the spread ``s_t = y_t - beta x_t`` and its health;
2. the formation's levels (computed once per formation, from the fit and the transaction cost
   per spread unit of the share cost model): Leung & Li (2015) optimal entry ``d*`` / exit ``b*``
   (with a stop-loss ``L``: the entry interval ``(a*_L, d*_L)`` and exit ``b*_L``), or Bertram's
   (2010) thresholds maximising the expected return or the Sharpe ratio. A short spread position
   uses the same problem for ``-s`` (levels mirrored);
3. at the close of ``t``: enter long the spread (buy ``n`` shares of ``y``, sell ``round(beta n)``
   of ``x``) when ``s_t`` is in the long entry region, short symmetrically; exit at the exit
   level or the stop-loss; flatten when the pair is unhealthy (cointegration lost, no mean
   reversion, half-life too long or drifting). Orders fill at the next session's open through
   backtrader's ``BackBroker`` with :class:`brokers.share_costs.ShareCostScheme` on each leg
   (half spread + square-root impact + commission, from the 20 sessions before the fill);
4. the risk layer (:class:`strategies.risk.RiskMixin`: max-drawdown kill switch, daily-loss block,
   per-position stop on the pair as one sleeve) runs first on every bar; size is a fixed fraction
   of equity (:func:`strategies.risk.fixed_fractional_units`), optionally scaled by the
   Moreira-Muir volatility-managed weight of the spread's past returns.

An open position keeps the hedge ratio and levels of the formation it was entered with until it
exits (a refit never silently rebalances it); only a health failure or the end of the backtest
window closes it early. The design sketch's k-sigma entry heuristic is replaced by the papers'
levels (``docs/ou_pairs.md``).

Data: the plugin needs two legs, ``data["leg_y"]`` and ``data["leg_x"]`` (validated daily OHLCV
frames, e.g. from :func:`data_feeds.spread_feed.load_pair_leg`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import Field

from brokers.cost_config import CostsConfig
from brokers.share_costs import ShareCostScheme, past_daily_vol_and_adv, share_trade_cost
from data_feeds.ohlc import fingerprint
from data_feeds.spread_feed import align_legs, pair_feeds
from indicators.cointegration import apply_health, formation_tables
from pricing.ou import bertram_thresholds, leung_li_levels
from strategies.base import (
    BacktestResult,
    ShareFills,
    StrategyParams,
    StrategyPlugin,
    run_cerebro,
    share_fills_frame,
)
from strategies.risk import RiskLimits, RiskMixin, VolManagedSizer, fixed_fractional_units

LEVEL_COLUMNS = (
    "long_entry",
    "long_lower",
    "long_exit",
    "long_stop",
    "short_entry",
    "short_upper",
    "short_exit",
    "short_stop",
)
"""Per-formation levels (spread units, dollars per spread unit)."""

FEED_LINES = ("spread", "beta", "healthy", "formation_id", "tradable", *LEVEL_COLUMNS, "spread_ret")
"""Extra lines of the ``y`` feed read by :class:`OUPairsStrategy`."""

WARMUP_SESSIONS = 25
"""Sessions fed before the backtest window so the cost model has 20 past bars at the first fill."""


class OUPairsParams(StrategyParams):
    """Parameters of ``ou_pairs``.

    Attributes
    ----------
    y_symbol, x_symbol : str
        Labels of the legs (reports, data names).
    formation_days : int
        Sessions in each formation window (hedge ratio, cointegration test, OU fit).
    refit_days : int
        Sessions between formations.
    max_pvalue : float
        Largest Engle-Granger p-value of a healthy pair.
    max_half_life_days : float
        Largest OU half-life (sessions) of a healthy pair.
    max_half_life_drift : float
        Largest ratio between consecutive formations' half-lives.
    level_method : {"leung_li", "bertram_return", "bertram_sharpe"}
        Optimal levels: Leung & Li (2015) double stopping, or Bertram (2010) thresholds
        maximising the expected return / the Sharpe ratio.
    discount_rate : float
        Leung-Li discount rate ``r = r_hat`` per year (0.05 as in the paper).
    stop_loss_std : float
        Stop-loss ``L = theta - k * sigma / sqrt(2 mu)`` (``k`` stationary standard deviations
        below the mean for a long spread, above for a short); 0 = no stop-loss.
    bertram_rf : float
        Bertram's risk-free return per trade cycle in the Sharpe objective.
    allow_long, allow_short : bool
        Enable each side.
    gross_fraction : float
        Gross notional of a spread position (``n (P_y + |beta| P_x)``) as a fraction of equity.
    vol_target : float
        Moreira-Muir target volatility (annual decimal) scaling ``gross_fraction`` by
        ``target^2 / sigma^2`` of the spread's past 21 daily returns (capped at 1/gross_fraction,
        floored at 0.2); 0 = off.

    The risk layer's limits (kill switch ``max_drawdown``, ``max_daily_loss``, and
    ``position_stop_loss``: close the pair when its loss reaches this fraction of its entry
    notional) and the share cost model (half spread, square-root impact, commission; its
    ``window_days``) are not parameters: they come from the config's ``[risk]`` and
    ``[costs.shares]``. The legs' labels are not searchable.
    """

    tunable: ClassVar[frozenset[str]] = frozenset(
        {
            "formation_days",
            "refit_days",
            "max_pvalue",
            "max_half_life_days",
            "max_half_life_drift",
            "level_method",
            "discount_rate",
            "stop_loss_std",
            "bertram_rf",
            "allow_long",
            "allow_short",
            "gross_fraction",
            "vol_target",
        }
    )

    y_symbol: str = "Y"
    x_symbol: str = "X"
    formation_days: int = Field(252, ge=60, le=2520)
    refit_days: int = Field(21, ge=1, le=504)
    max_pvalue: float = Field(0.10, gt=0.0, le=1.0)
    max_half_life_days: float = Field(63.0, gt=0.0)
    max_half_life_drift: float = Field(3.0, ge=1.0)
    level_method: Literal["leung_li", "bertram_return", "bertram_sharpe"] = "leung_li"
    discount_rate: float = Field(0.05, gt=0.0, le=1.0)
    stop_loss_std: float = Field(0.0, ge=0.0, le=20.0)
    bertram_rf: float = Field(0.0, ge=0.0)
    allow_long: bool = True
    allow_short: bool = True
    gross_fraction: float = Field(0.5, gt=0.0, le=1.0)
    vol_target: float = Field(0.0, ge=0.0, le=2.0)


class OUPairsStrategy(RiskMixin, ShareFills, bt.Strategy):
    """backtrader face: two legs, decisions at the close, fills at the next open.

    Data: ``datas[0]`` is leg ``y`` with the extra lines :data:`FEED_LINES` (spread with the
    formation in force, its beta, health, levels, ``tradable`` = 1 inside the backtest window
    except its last session), ``datas[1]`` is leg ``x``. Nothing later than the bar's close
    enters a decision; every level on the bar comes from formations ending before it.

    Attributes (after the run)
    --------------------------
    log_rows : list of dict
        One row per session. ``status``: ``warmup``, ``flat``, ``holding``, ``pending``,
        ``entry_long``, ``entry_short``, ``exit``, ``window_end``, or ``traded`` on the session a
        round trip's last fill happened (with its ``net_pnl``; it wins over an entry decided the
        same session). ``action`` records every entry / exit decision.
    fills : list of dict
        Every share fill (date, leg, size, price, commission).
    trips : list of dict
        Every round trip (side, entry/exit dates, reason, net P&L in dollars).
    """

    params = (
        ("allow_long", True),
        ("allow_short", True),
        ("gross_fraction", 0.5),
        ("vol_target", 0.0),
        ("risk_config", None),
        ("pair_name", "pair"),
    )

    def __init__(self) -> None:
        self.setup_risk(self.p.risk_config, sleeve_of=lambda name: self.p.pair_name)
        self.y, self.x = self.datas[0], self.datas[1]
        self.log_rows: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self.trips: list[dict[str, Any]] = []
        self.trade: dict[str, Any] | None = None  # the open round trip
        self._seen_tradable = False
        self._vol_sizer = (
            VolManagedSizer(target_vol=self.p.vol_target, cap=1.0 / self.p.gross_fraction)
            if self.p.vol_target > 0
            else None
        )

    # -- fills ----------------------------------------------------------------------------------
    def notify_fill(self, size: float, price: float, commission: float) -> None:
        """A completed fill (:class:`strategies.base.ShareFills`) goes to the open round trip."""
        if self.trade is not None:
            self.trade["cash"] += -size * price - commission
            self.trade["commissions"] += commission

    def _finish_trip(self, day: Any, row: dict[str, Any]) -> None:
        """Book the round trip whose last fill happened on this bar (called before deciding)."""
        trip = self.trade
        assert trip is not None
        trip["exit_fill_date"] = day
        trip["net_pnl"] = trip.pop("cash")
        trip.pop("exiting", None)
        trip.setdefault("exit_reason", "closed")
        self.trips.append(trip)
        self.trade = None
        row.update(
            status="traded",
            net_pnl=trip["net_pnl"],
            side=trip["side"],
            exit_reason=trip["exit_reason"],
        )

    def _flat(self) -> bool:
        return self.getposition(self.y).size == 0 and self.getposition(self.x).size == 0

    def _pending(self) -> bool:
        return bool(self.broker.get_orders_open())

    # -- the bar --------------------------------------------------------------------------------
    def next(self) -> None:
        y = self.y
        day = y.datetime.date(0)
        row: dict[str, Any] = {
            "date": day,
            "spread": y.spread[0],
            "beta": y.beta[0],
            "formation_id": int(y.formation_id[0]),
            "healthy": bool(y.healthy[0] > 0.5),
        }
        self.log_rows.append(row)
        if self.trade is not None and self._flat() and not self._pending():
            if self.trade.get("exiting") or self.trade.get("filled"):
                self._finish_trip(day, row)  # exit fills (ours or the risk layer's) done
            else:  # the entry orders were refused (margin / rejected): no position opened
                self.trade = None
                row["status"] = "entry_failed"
        elif self.trade is not None and not self._flat():
            self.trade["filled"] = True
        if not y.tradable[0] > 0.5 and self.trade is None and self._flat():
            row.setdefault("status", "window_end" if self._seen_tradable else "warmup")
            return
        self._seen_tradable = True
        actions = self.risk_step()
        hits = [a for a in actions if a.kind in ("kill", "stop_position")]
        if hits and self.trade is not None:  # the risk layer sent the closing orders
            self.trade.update(exiting=True, exit_reason=f"risk: {hits[0].kind}", exit_date=day)
        if self._pending():
            row.setdefault("status", "pending")
            return
        if self.trade is not None:
            self._manage(day, row)
        elif y.tradable[0] > 0.5:
            self._maybe_enter(day, row)
        row.setdefault("status", "flat" if self.trade is None else "holding")

    def _manage(self, day: Any, row: dict[str, Any]) -> None:
        t = self.trade
        assert t is not None
        s = float(self.y.close[0]) - t["beta"] * float(self.x.close[0])
        row["position_spread"] = s
        reason = None
        if not self.y.tradable[0] > 0.5:
            reason = "end_of_window"
        elif not self.y.healthy[0] > 0.5:
            reason = "pair_broken"
        elif t["side"] == "long":
            if s >= t["exit"]:
                reason = "take_profit"
            elif s <= t["stop"]:
                reason = "stop_loss"
        else:
            if s <= t["exit"]:
                reason = "take_profit"
            elif s >= t["stop"]:
                reason = "stop_loss"
        if reason is None:
            return
        t.update(exiting=True, exit_reason=reason, exit_date=day, exit_spread=s)
        self._risk_bypass = True  # closing never adds risk
        try:
            for data in (self.y, self.x):
                if self.getposition(data).size != 0:
                    self.close(data=data)
        finally:
            self._risk_bypass = False
        row["action"] = "exit"
        row.setdefault("status", "exit")
        row["exit_reason"] = reason

    def _maybe_enter(self, day: Any, row: dict[str, Any]) -> None:
        y = self.y
        if not y.healthy[0] > 0.5 or self.risk_blocked():
            return
        s, beta = float(y.spread[0]), float(y.beta[0])
        side = None
        if self.p.allow_long and y.long_lower[0] < s <= y.long_entry[0]:
            side, exit_, stop = "long", float(y.long_exit[0]), float(y.long_stop[0])
        elif self.p.allow_short and y.short_entry[0] <= s < y.short_upper[0]:
            side, exit_, stop = "short", float(y.short_exit[0]), float(y.short_stop[0])
        if side is None:
            return
        py, px = float(y.close[0]), float(self.x.close[0])
        fraction = self.p.gross_fraction * self._vol_weight()
        units = fixed_fractional_units(
            float(self.broker.getvalue()), min(fraction, 1.0), py + abs(beta) * px
        )
        x_units = round(abs(beta) * units)
        if units == 0 or x_units == 0:
            row["status"] = "size_zero"
            return
        sign = 1 if side == "long" else -1
        y_size = sign * units
        x_size = -sign * int(math.copysign(x_units, beta))
        orders = [
            self.buy(data=y, size=y_size) if y_size > 0 else self.sell(data=y, size=-y_size),
            self.buy(data=self.x, size=x_size)
            if x_size > 0
            else self.sell(data=self.x, size=-x_size),
        ]
        if any(o is None for o in orders):  # refused by the risk layer
            for o in orders:
                if o is not None:
                    self.cancel(o)
            row["status"] = "blocked"
            return
        self.trade = {
            "side": side,
            "entry_date": day,
            "entry_spread": s,
            "beta": beta,
            "formation_id": int(y.formation_id[0]),
            "exit": exit_,
            "stop": stop,
            "y_size": y_size,
            "x_size": x_size,
            "cash": 0.0,
            "commissions": 0.0,
        }
        row.update(
            action=f"entry_{side}", y_size=y_size, x_size=x_size, exit_level=exit_, stop_level=stop
        )
        row.setdefault("status", f"entry_{side}")  # "traded" wins when a trip closed today

    def _vol_weight(self) -> float:
        if self._vol_sizer is None:
            return 1.0
        n = self._vol_sizer.window
        if len(self.y) <= n:
            return 1.0
        past = np.array([self.y.spread_ret[-i] for i in range(n, 0, -1)], dtype=float)
        if not np.isfinite(past).all():
            return 1.0
        return self._vol_sizer.weight(past)


def _book_open_trip(strat: OUPairsStrategy, closes: pd.DataFrame) -> None:
    """Book a round trip still open after the last bar as closed at the window-end marks
    (``closes``: :func:`strategies.base.window_end_rows`, no cost), ``exit_reason =
    "window_end"``, on the last log row (added to a ``net_pnl`` already there), so the trips'
    ``net_pnl`` add up to the window's change of value as the window-end rows do for the fills.
    Positions left without a round trip (none by construction) stay in the window-end rows."""
    if strat.trade is None or not strat.log_rows:
        return
    if closes.empty and strat.trade["cash"] == 0.0:  # entry orders never filled: no trip
        strat.trade = None
        return
    row = strat.log_rows[-1]
    before = row.get("net_pnl", 0.0) if row.get("status") == "traded" else 0.0
    strat.trade["cash"] += float(closes["cash_flow"].sum())
    strat.trade.setdefault("exit_reason", "window_end")
    strat._finish_trip(row["date"], row)
    row["net_pnl"] += before


class OUPairs(StrategyPlugin):
    """Plugin wiring :class:`OUPairsStrategy` to the two legs, the spread feed and the levels.

    Parameters
    ----------
    fixed : mapping
        Fixed parameter values from ``[strategy.params]``.
    broker : mapping
        ``[broker]`` section (option-contract costs; not used: share costs are parameters of this
        strategy, see :class:`OUPairsParams`). Kept for the runner's call signature.
    """

    name = "ou_pairs"
    description = "OU pairs: Engle-Granger spread, exact OU MLE, Leung-Li / Bertram levels"
    Params = OUPairsParams
    required_data = ("leg_y", "leg_x")

    risk_limits = frozenset({"max_drawdown", "max_daily_loss", "position_stop_loss"})

    def __init__(
        self,
        fixed: Mapping[str, Any] | None = None,
        broker: Mapping[str, Any] | None = None,
        costs: CostsConfig | None = None,
        risk: RiskLimits | None = None,
    ) -> None:
        super().__init__(fixed, broker, costs, risk)
        self._levels: dict[tuple[Any, ...], pd.DataFrame] = {}

    # -- load time ------------------------------------------------------------------------------
    def prepare(self, data: Mapping[str, pd.DataFrame], grid: Mapping[str, Sequence[Any]]) -> None:
        """Align the legs and estimate every formation table the search space can ask for.

        Parameters
        ----------
        data : mapping
            ``leg_y`` and ``leg_x``: validated daily frames (``close`` at least; ``open`` for
            fills and ``volume`` for the impact model).
        grid : mapping
            Searched parameter -> candidate values (``formation_days``, ``refit_days`` give the
            tables computed here; the rest is evaluated per backtest).

        Raises
        ------
        KeyError
            A leg is missing.
        ValueError
            ``y_symbol``/``x_symbol`` in the search space, a leg without ``volume`` while the
            impact model is on, or too few sessions to form the pair.
        """
        self.check_search_space(grid)
        for key in self.required_data:
            if key not in data:
                raise KeyError(f"ou_pairs needs data[{key!r}] (a validated OHLCV frame)")
        base = OUPairsParams(**self.fixed)
        y, x, report = align_legs(
            data["leg_y"], data["leg_x"], y_name=base.y_symbol, x_name=base.x_symbol
        )
        self.reports.append(report.summary())
        for name, frame in ((base.y_symbol, y), (base.x_symbol, x)):
            if "open" not in frame.columns:
                frame["open"] = frame["close"]
                self.reports.append(f"{name}: no open prices, fills at the previous close")
            if "volume" not in frame.columns and self.costs.shares.impact_coefficient > 0:
                raise ValueError(
                    f"leg {name} has no volume column: the square-root impact needs it "
                    "(set [costs.shares] impact_coefficient = 0 to trade without impact)"
                )
        self.y, self.x = y, x
        self.base = base
        fds = sorted({int(v) for v in grid.get("formation_days", [base.formation_days])})
        rds = sorted({int(v) for v in grid.get("refit_days", [base.refit_days])})
        # one PairFormation call for the whole (formation_days, refit_days) grid
        self._tables.update(
            formation_tables(y["close"], x["close"], [(fd, rd) for fd in fds for rd in rds])
        )
        self._first_trade = y.index[
            max(fd for fd, _ in self._tables) + WARMUP_SESSIONS
            if len(y) > max(fd for fd, _ in self._tables) + WARMUP_SESSIONS
            else len(y) - 1
        ]

    def table(self, params: OUPairsParams) -> pd.DataFrame:
        """The formation table of ``params`` with its health limits applied.

        Raises
        ------
        KeyError
            The (formation_days, refit_days) pair was not prepared.
        """
        key = (params.formation_days, params.refit_days)
        if key not in self._tables:
            raise KeyError(f"formation table {key} was not prepared: is it in the search space?")
        return apply_health(
            self._tables[key],
            max_pvalue=params.max_pvalue,
            max_half_life_days=params.max_half_life_days,
            max_half_life_drift=params.max_half_life_drift,
        )

    def levels(self, params: OUPairsParams, cash: float) -> pd.DataFrame:
        """Levels of every formation (one row per formation id), cached.

        The transaction cost per spread unit ``c`` (spread units, per transaction) is the share
        cost model's dollars for ``n`` units of ``y`` and ``|beta| n`` of ``x`` divided by ``n``,
        with ``n`` the units a ``gross_fraction * cash`` position buys at the formation's last
        closes, and the daily vol / average volume of the ``[costs.shares] window_days``
        sessions ending there.
        Bertram's ``c`` is per cycle: twice that.

        Returns
        -------
        pandas.DataFrame
            Index ``formation_id``; columns :data:`LEVEL_COLUMNS`, ``cost_per_unit``,
            ``level_status``.
        """
        key = (
            params.formation_days,
            params.refit_days,
            params.level_method,
            params.discount_rate,
            params.stop_loss_std,
            params.bertram_rf,
            params.gross_fraction,
            round(cash, 2),
            tuple(sorted(self.costs.shares.model_dump().items())),
        )
        if key in self._levels:
            return self._levels[key]
        table = self._tables[(params.formation_days, params.refit_days)]
        forms = table.loc[table["formation_id"] >= 0].drop_duplicates("formation_id")
        rows = []
        for row in forms.itertuples():
            rows.append(self._formation_levels(row, params, cash))
        out = pd.DataFrame(rows).set_index("formation_id")
        self._levels[key] = out
        return out

    def _cost_per_unit(self, row: Any, params: OUPairsParams, cash: float) -> float:
        end = self.y.index.get_loc(row.formation_end)
        shares = self.costs.shares
        w = shares.window_days
        py, px = float(self.y["close"].iloc[end]), float(self.x["close"].iloc[end])
        beta = abs(float(row.beta))
        units = params.gross_fraction * cash / (py + beta * px)
        if units <= 0:
            return math.nan
        total = 0.0
        for frame, qty, price in ((self.y, units, py), (self.x, beta * units, px)):
            if shares.impact_coefficient > 0 and end >= w:
                vol, adv = past_daily_vol_and_adv(
                    frame["close"].to_numpy(float)[end - w : end + 1],
                    frame["volume"].to_numpy(float)[end - w + 1 : end + 1],
                    w,
                )
            else:
                vol, adv = 0.0, 1.0
            kw = shares.trade_cost_kwargs()
            if not adv > 0:
                kw["impact_coefficient"] = 0.0
                adv = 1.0
            total += share_trade_cost(qty, price, daily_vol=vol, adv=adv, **kw).total
        return total / units

    def _formation_levels(self, row: Any, params: OUPairsParams, cash: float) -> dict[str, Any]:
        out: dict[str, Any] = {"formation_id": int(row.formation_id)}
        nan = math.nan
        blank = {
            "long_entry": -math.inf,
            "long_lower": -math.inf,
            "long_exit": nan,
            "long_stop": -math.inf,
            "short_entry": math.inf,
            "short_upper": math.inf,
            "short_exit": nan,
            "short_stop": math.inf,
        }
        out.update(blank)
        if row.ou_status != "ok":
            out.update(cost_per_unit=nan, level_status=f"no OU fit ({row.ou_status})")
            return out
        theta, mu, sigma = float(row.theta), float(row.mu), float(row.sigma)
        sd = sigma / math.sqrt(2.0 * mu)
        c = self._cost_per_unit(row, params, cash)
        out["cost_per_unit"] = c
        k = params.stop_loss_std
        try:
            if params.level_method == "leung_li":
                # Leung & Li buy a portfolio of positive value (their GLD-GDX portfolio); their
                # value function is not translation invariant (the price level is discounted),
                # so the problem is solved for the orientation of positive mean, P = sign(theta)
                # X, and the other side is its mirror about theta (the reflected spread
                # 2 theta - X has the same OU law and the same P&L as the opposite trade).
                sgn = 1.0 if theta > 0 else -1.0
                lv = leung_li_levels(
                    sgn * theta,
                    mu,
                    sigma,
                    r=params.discount_rate,
                    c=c,
                    stop_loss=sgn * theta - k * sd if k > 0 else None,
                )
                if lv.status != "ok":
                    out["level_status"] = f"leung_li {lv.status}"
                    return out
                pos = {  # the positive-orientation side, in X units
                    "entry": sgn * lv.entry_level,
                    "bound": sgn * lv.entry_lower,
                    "exit": sgn * lv.exit_level,
                    "stop": sgn * lv.stop_loss,
                }
                mirror = {key: 2.0 * theta - v for key, v in pos.items()}
                long_side, short_side = (pos, mirror) if sgn > 0 else (mirror, pos)
                out.update(
                    long_entry=long_side["entry"],
                    long_lower=long_side["bound"],
                    long_exit=long_side["exit"],
                    long_stop=long_side["stop"],
                    short_entry=short_side["entry"],
                    short_upper=short_side["bound"],
                    short_exit=short_side["exit"],
                    short_stop=short_side["stop"],
                    level_status="ok",
                )
            else:
                objective = "return" if params.level_method == "bertram_return" else "sharpe"
                th = bertram_thresholds(
                    theta, mu, sigma, c=2.0 * c, objective=objective, rf=params.bertram_rf
                )
                stop_lo = theta - k * sd if k > 0 else -math.inf
                stop_hi = theta + k * sd if k > 0 else math.inf
                if k > 0 and not (stop_lo < th.entry_level):
                    out["level_status"] = "stop-loss inside the entry threshold"
                    return out
                out.update(
                    long_entry=th.entry_level,
                    long_lower=stop_lo,
                    long_exit=th.exit_level,
                    long_stop=stop_lo,
                    short_entry=th.exit_level,
                    short_upper=stop_hi,
                    short_exit=th.entry_level,
                    short_stop=stop_hi,
                    level_status="ok",
                )
        except (ValueError, ArithmeticError) as exc:
            out.update(blank)
            out["level_status"] = f"levels failed: {exc}"
        return out

    def feed_lines(
        self, params: OUPairsParams, start: pd.Timestamp, end: pd.Timestamp, cash: float
    ) -> pd.DataFrame:
        """The extra lines of the ``y`` feed over ``[start - warmup, end]`` (:data:`FEED_LINES`).

        ``tradable`` is 1 on sessions ``start .. end`` except the last two: the strategy
        flattens at the close of the second-to-last (filled at the last session's open), so no
        position outlives the window.
        """
        table = self.table(params)
        levels = self.levels(params, cash)
        lines = pd.DataFrame(index=table.index)
        lines["spread"] = table["spread"]
        lines["beta"] = table["beta"]
        lines["healthy"] = table["healthy"].astype(float)
        lines["formation_id"] = table["formation_id"].astype(float)
        joined = levels.reindex(table["formation_id"].to_numpy())
        for col in LEVEL_COLUMNS:
            lines[col] = joined[col].to_numpy(dtype=float)
        lines.loc[table["formation_id"].to_numpy() < 0, list(LEVEL_COLUMNS)] = np.nan
        # spread return per unit of gross notional with yesterday's beta (for vol sizing)
        gross = table["y"] + table["beta"].abs() * table["x"]
        dspread = table["y"].diff() - table["beta"].shift(1) * table["x"].diff()
        lines["spread_ret"] = dspread / gross.shift(1)
        pos = self.y.index.get_indexer([start, end])
        if (pos < 0).any():
            start = self.y.index[self.y.index.searchsorted(start)]
            end = self.y.index[
                min(self.y.index.searchsorted(end, side="right") - 1, len(self.y) - 1)
            ]
        i0 = max(self.y.index.get_loc(start) - WARMUP_SESSIONS, 0)
        i1 = self.y.index.get_loc(end)
        window = lines.iloc[i0 : i1 + 1].copy()
        window["tradable"] = 0.0
        # the last two sessions are not tradable: a position still open is closed at the close
        # of the second-to-last one and fills at the last session's open
        last_ok = window.index[-2] if len(window) >= 2 else window.index[0]
        inside = (window.index >= start) & (window.index < last_ok)
        window.loc[inside, "tradable"] = 1.0
        return window[list(FEED_LINES)]

    # -- runs -----------------------------------------------------------------------------------
    def trading_days(self) -> pd.DatetimeIndex:
        """Sessions after the longest prepared formation window and the cost-model warm-up."""
        return self.y.index[self.y.index >= self._first_trade]

    def backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> BacktestResult:
        """One Cerebro over ``[start, end]``: BackBroker + ShareCostScheme on both legs.

        Returns
        -------
        BacktestResult
            Returns and value on ``start .. end`` (warm-up sessions trade nothing and are cut),
            the share fills as ``trades``, the daily log (round trips as ``traded`` rows).
        """
        assert isinstance(params, OUPairsParams)
        lines = self.feed_lines(params, start, end, cash)
        idx = lines.index
        feed_y, feed_x = pair_feeds(
            self.y.loc[idx], self.x.loc[idx], lines, y_name=params.y_symbol, x_name=params.x_symbol
        )
        broker = bt.brokers.BackBroker()
        kw = self.costs.shares.trade_cost_kwargs()
        window = self.costs.shares.window_days
        broker.addcommissioninfo(
            ShareCostScheme(data=feed_y, window=window, **kw), name=params.y_symbol
        )
        broker.addcommissioninfo(
            ShareCostScheme(data=feed_x, window=window, **kw), name=params.x_symbol
        )
        strat, value, returns = run_cerebro(
            OUPairsStrategy,
            [feed_y, feed_x],
            broker,
            cash=cash,
            strategy_kwargs={
                "allow_long": params.allow_long,
                "allow_short": params.allow_short,
                "gross_fraction": params.gross_fraction,
                "vol_target": params.vol_target,
                "risk_config": self.risk.risk_config(),
                "pair_name": f"{params.y_symbol}/{params.x_symbol}",
            },
        )
        keep = (value.index >= start) & (value.index <= end)
        fills, closes = share_fills_frame(strat.fills, broker, [feed_y, feed_x])
        _book_open_trip(strat, closes)
        log = pd.DataFrame(strat.log_rows)
        if not log.empty:
            log = log.loc[pd.to_datetime(log["date"]) >= start.tz_localize(None)]
        return BacktestResult(
            returns=returns.loc[keep],
            value=value.loc[keep],
            trades=fills,
            daily_log=log.reset_index(drop=True),
            info={
                "market_source": f"pair {params.y_symbol}/{params.x_symbol} daily closes",
                "trips": pd.DataFrame(strat.trips),
                "risk_events": strat.risk.events_frame(),
            },
        )

    def check_vector_engine(self) -> None:
        """The vectorbt engine replays this strategy (:mod:`strategies.fast.ou_pairs`); raises
        ``VectorEngineUnsupported`` for a ``[risk]`` limit it does not replay."""
        from strategies.fast.ou_pairs import engine_for

        engine_for(self)

    def vector_backtest(
        self, params: StrategyParams, start: pd.Timestamp, end: pd.Timestamp, *, cash: float
    ) -> Any:
        """:meth:`backtest`'s daily returns from the numba kernel
        (:class:`strategies.fast.ou_pairs.OUPairsVectorEngine`)."""
        from strategies.fast.ou_pairs import engine_for

        assert isinstance(params, OUPairsParams)
        return engine_for(self).run(params, start, end, cash)

    @property
    def benchmark_label(self) -> str:
        """Name of the tearsheet benchmark: leg ``y`` held long."""
        return f"{self.fixed.get('y_symbol', 'leg y')} buy-and-hold"

    def benchmark(self) -> pd.Series:
        """Daily close-to-close returns of leg ``y`` held long."""
        return self.y["close"].pct_change().rename("benchmark")

    def data_fingerprint(self) -> str:
        """Hash of both legs' prices."""
        return fingerprint(
            pd.concat([self.y[["open", "close"]], self.x[["open", "close"]]], axis=1)
        )

    def write_artifacts(self, folder: Path) -> dict[str, float]:
        """Write the formation table(s) (hedge ratio, p-value, OU fit, health) as CSV.

        Returns
        -------
        dict
            ``healthy_share``: fraction of formations judged healthy with the fixed limits.
        """
        base = OUPairsParams(**self.fixed)
        metrics: dict[str, float] = {}
        for (fd, rd), raw in self._tables.items():
            table = apply_health(
                raw,
                max_pvalue=base.max_pvalue,
                max_half_life_days=base.max_half_life_days,
                max_half_life_drift=base.max_half_life_drift,
            )
            forms = table.loc[table["formation_id"] >= 0].drop_duplicates("formation_id")
            forms.to_csv(folder / f"formations_{fd}_{rd}.csv", index_label="first_session")
            if (fd, rd) == (base.formation_days, base.refit_days):
                metrics["healthy_share"] = float(forms["healthy"].mean())
        return metrics
