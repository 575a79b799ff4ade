"""Vectorized ``ou_pairs`` trials: the pair-spread simulation of backtrader's ``BackBroker`` with
the share cost model and the risk layer, in one numba loop.

:func:`pair_values_nb` replays, bar by bar over the backtest feed (the window plus its warm-up
sessions, :meth:`strategies.ou_pairs.OUPairs.feed_lines`), what
:class:`strategies.ou_pairs.OUPairsStrategy` does on ``bt.brokers.BackBroker`` with
:class:`brokers.share_costs.ShareCostScheme` on each leg:

* the broker's bar (``BackBroker.next``): orders sent at the previous close are checked against
  the cash (``check_submitted``: pseudo-execution at their creation close), then filled at this
  bar's open; the cost of a fill is :func:`brokers.share_costs.share_trade_cost` (half spread +
  square-root impact + commission) with ``sigma_d`` and ``V_d`` from the ``window`` sessions
  before the fill bar (:func:`brokers.share_costs.past_daily_vol_and_adv`, computed once per
  session by the glue); cash moves as backtrader moves it for a stock-like instrument
  (``shortcash``: a short sale credits its proceeds); the value is ``cash + sum size * close``;
* the strategy's bar: book a finished round trip, the risk layer
  (:class:`strategies.risk.RiskManager`: drawdown kill switch that flattens and blocks new risk
  for good, daily-loss block, stop of the pair as one sleeve at ``stop_loss`` times its entry
  notional), then exit (window end, broken pair, take profit, stop-loss level) or entry at the
  formation's levels, sized by :func:`strategies.risk.fixed_fractional_units` (optionally scaled
  by the Moreira-Muir weight of :class:`strategies.risk.VolManagedSizer`).

One backtrader behaviour is replayed as it is: ``BackBroker.get_orders_open`` does not list
orders sent on the current bar (they wait in the submitted queue), so on a bar where the risk
layer closes the pair (stop or kill switch) and the strategy's own exit rule fires too,
:class:`~strategies.ou_pairs.OUPairsStrategy` sends a second set of closing orders; filled after
the first at the next open, they open the reverse pair, closed again by the exit rule the bar
after (``docs/engines.md`` reports it).

Paths the kernel does not replay (an order refused for cash by ``check_submitted``, an opening
fill nullified for lack of cash, a fill without the cost model's 20 past sessions, a non-positive
account value, a partial position) end the kernel with a flag; the glue then runs that one trial
through backtrader (:meth:`OUPairsVectorEngine.run` counts them in ``fallbacks``), so such a
trial is exactly the backtrader trial.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numba import njit

from strategies.fast import VectorTrial, session_index

if TYPE_CHECKING:
    from strategies.ou_pairs import OUPairs, OUPairsParams

RISK_EPS = 1e-12
"""Tolerance of the risk limits (:data:`strategies.risk.manager.EPS`)."""


@njit(cache=True, error_model="numpy")
def share_cost_nb(
    size: float,
    price: float,
    daily_vol: float,
    adv: float,
    half_spread_bps: float,
    min_half_spread: float,
    impact_coefficient: float,
    impact_exponent: float,
    commission_per_share: float,
    min_commission: float,
    max_commission_pct: float,
) -> float:
    """Dollars of :func:`brokers.share_costs.share_trade_cost` (``total``) for ``size`` shares
    at ``price`` (dollars per share) with daily vol ``daily_vol`` (decimal) and average volume
    ``adv`` (shares); the sign of ``size`` is ignored."""
    q = abs(size)
    if q == 0:
        return 0.0
    spread = q * max(price * half_spread_bps / 1e4, min_half_spread)
    impact = 0.0
    if impact_coefficient > 0:
        impact = q * price * impact_coefficient * daily_vol * (q / adv) ** impact_exponent
    commission = min(max(q * commission_per_share, min_commission), max_commission_pct * q * price)
    return spread + impact + commission


@njit(cache=True, error_model="numpy")
def pair_values_nb(
    cash0: float,
    y_open: np.ndarray,
    y_close: np.ndarray,
    x_open: np.ndarray,
    x_close: np.ndarray,
    y_vol: np.ndarray,
    y_adv: np.ndarray,
    x_vol: np.ndarray,
    x_adv: np.ndarray,
    cost_ok: np.ndarray,
    spread: np.ndarray,
    beta_line: np.ndarray,
    healthy: np.ndarray,
    tradable: np.ndarray,
    levels: np.ndarray,
    past_var: np.ndarray,
    cost_params: np.ndarray,
    allow_long: bool,
    allow_short: bool,
    gross_fraction: float,
    vol_target: float,
    vol_window: int,
    vol_floor: float,
    max_drawdown: float,
    max_daily_loss: float,
    stop_loss: float,
) -> tuple[np.ndarray, int, int]:
    """Account value at each bar's end of the OU pairs strategy (module docstring).

    Parameters
    ----------
    cash0 : float
        Starting cash (dollars).
    y_open, y_close, x_open, x_close : ndarray, shape (n,)
        Leg prices (dollars per share) of the feed's bars (warm-up included).
    y_vol, y_adv, x_vol, x_adv : ndarray, shape (n,)
        Cost-model inputs of a fill on each bar: daily vol (decimal) and average volume
        (shares) of the sessions before it.
    cost_ok : ndarray of bool, shape (n,)
        A fill on the bar has its cost inputs (enough past bars in the feed, volume > 0).
    spread, beta_line, healthy, tradable : ndarray, shape (n,)
        Feed lines of :data:`strategies.ou_pairs.FEED_LINES` (spread units, hedge ratio, 0/1).
    levels : ndarray, shape (n, 8)
        :data:`strategies.ou_pairs.LEVEL_COLUMNS` per bar (spread units).
    past_var : ndarray, shape (n,)
        Annualized variance of the ``vol_window`` spread returns before each bar
        (:meth:`strategies.risk.VolManagedSizer.weight`'s ``var``; NaN: weight 1).
    cost_params : ndarray, shape (7,)
        ``half_spread_bps, min_half_spread, impact_coefficient, impact_exponent,
        commission_per_share, min_commission, max_commission_pct``.
    allow_long, allow_short : bool
        Sides enabled.
    gross_fraction : float
        Gross notional as a fraction of equity.
    vol_target : float
        Moreira-Muir target vol (annual decimal); 0 = off.
    vol_window : int
        Returns in the vol-managed variance (21).
    vol_floor : float
        Floor of the vol-managed weight (its cap is ``1 / gross_fraction``).
    max_drawdown, max_daily_loss, stop_loss : float
        Risk limits (decimal); NaN = off.

    Returns
    -------
    values : ndarray, shape (n,)
        Account value (dollars) at each bar's end.
    trades : int
        Entries filled (opening orders).
    fallback : int
        0, or the 1-based bar at which the kernel stopped on a path it does not replay.
    """
    n = y_close.shape[0]
    values = np.full(n, np.nan)
    (hs_bps, min_hs, impact_y, impact_d, cps, cmin, cmax) = (
        cost_params[0], cost_params[1], cost_params[2], cost_params[3], cost_params[4],
        cost_params[5], cost_params[6],
    )
    cash = cash0
    size = np.zeros(2)  # y, x
    price = np.zeros(2)
    pend_n = 0
    pend_leg = np.zeros(4, dtype=np.int64)  # at most two closes per leg (see the module doc)
    pend_size = np.zeros(4)
    pend_created = np.zeros(4)
    clone = np.zeros(2)
    has_trade = False
    side = 0
    t_beta = 0.0
    t_exit = 0.0
    t_stop = 0.0
    peak = cash0
    last_value = cash0
    killed = False
    no_new_risk = -1
    trades = 0
    for k in range(n):
        opens = (y_open[k], x_open[k])
        closes = (y_close[k], x_close[k])
        vols = (y_vol[k], x_vol[k])
        advs = (y_adv[k], x_adv[k])
        # -- broker: check the submitted orders against the cash (pseudo-execution) ----------
        if pend_n > 0:
            if not cost_ok[k]:
                return values, trades, k + 1
            c = cash
            clone[0] = size[0]
            clone[1] = size[1]
            for j in range(pend_n):
                leg = pend_leg[j]
                q = pend_size[j]
                px = pend_created[j]
                comm = share_cost_nb(
                    q, px, vols[leg], advs[leg], hs_bps, min_hs, impact_y, impact_d, cps, cmin,
                    cmax,
                )
                if clone[leg] == 0:  # opening
                    c -= q * px
                    c -= comm
                    clone[leg] = q
                elif clone[leg] == -q:  # closing
                    c += (-q) * px + 0.0
                    c -= comm
                    clone[leg] = 0.0
                else:
                    return values, trades, k + 1
                if c < 0.0:
                    return values, trades, k + 1
            # -- broker: fill at this bar's open ---------------------------------------------
            opened_any = False
            for j in range(pend_n):
                leg = pend_leg[j]
                q = pend_size[j]
                px = opens[leg]
                comm = share_cost_nb(
                    q, px, vols[leg], advs[leg], hs_bps, min_hs, impact_y, impact_d, cps, cmin,
                    cmax,
                )
                if size[leg] == 0:
                    cash -= q * px
                    cash -= comm
                    if cash < 0.0:
                        return values, trades, k + 1
                    size[leg] = q
                    price[leg] = px
                    opened_any = True
                else:
                    held = size[leg]
                    pnl = held * (px - price[leg]) * 1.0
                    cash += held * price[leg] + pnl
                    cash -= comm
                    cash += 0.0
                    size[leg] = 0.0
                    price[leg] = 0.0
            if opened_any:
                trades += 1
            pend_n = 0
        # -- broker: value ---------------------------------------------------------------------
        pv = 0.0
        for leg in range(2):
            dvalue = size[leg] * closes[leg]
            if dvalue > 0:
                unreal = size[leg] * (closes[leg] - price[leg]) * 1.0
                pv += (dvalue - unreal) / 1.0
                pv += unreal
            else:
                pv += dvalue
        value = cash + pv
        values[k] = value
        # -- strategy ----------------------------------------------------------------------------
        flat = size[0] == 0 and size[1] == 0
        if has_trade and flat:
            has_trade = False
        if not tradable[k] > 0.5 and not has_trade and flat:
            continue
        if not (math.isfinite(value) and value > 0):
            return values, trades, k + 1
        # risk step (a new session on every bar)
        session_open = last_value
        last_value = value
        peak = max(peak, value)
        hit = False
        if killed:
            hit = True
        else:
            dd = 1.0 - last_value / peak
            if math.isfinite(max_drawdown) and dd >= max_drawdown - RISK_EPS:
                killed = True
                hit = True
            else:
                if math.isfinite(max_daily_loss) and no_new_risk != k:
                    loss = 1.0 - value / session_open
                    if loss >= max_daily_loss - RISK_EPS:
                        no_new_risk = k
                if not flat and math.isfinite(stop_loss):
                    pnl = 0.0
                    basis = 0.0
                    for leg in range(2):
                        if size[leg] != 0:
                            pnl += size[leg] * (closes[leg] - price[leg])
                            basis += abs(size[leg] * price[leg])
                    if basis > 0 and pnl <= -stop_loss * basis:
                        hit = True
        if hit:
            for leg in range(2):  # flatten / close the sleeve (both legs)
                if size[leg] != 0:
                    pend_leg[pend_n] = leg
                    pend_size[pend_n] = -size[leg]
                    pend_created[pend_n] = closes[leg]
                    pend_n += 1
        # backtrader's get_orders_open() does not list orders sent on this bar (they wait in
        # the broker's submitted queue), so the strategy goes on to _manage after the risk layer
        if has_trade:
            s = closes[0] - t_beta * closes[1]
            exit_now = False
            if not tradable[k] > 0.5:
                exit_now = True
            elif not healthy[k] > 0.5:
                exit_now = True
            elif side > 0:
                exit_now = s >= t_exit or s <= t_stop
            else:
                exit_now = s <= t_exit or s >= t_stop
            if exit_now:
                # on the bar the risk layer closed the pair this is a second set of closing
                # orders: filled after the first, it reverses the pair (module doc)
                for leg in range(2):
                    if size[leg] != 0:
                        pend_leg[pend_n] = leg
                        pend_size[pend_n] = -size[leg]
                        pend_created[pend_n] = closes[leg]
                        pend_n += 1
            continue
        if not tradable[k] > 0.5:
            continue
        if not healthy[k] > 0.5 or killed or no_new_risk == k:
            continue
        s = spread[k]
        beta = beta_line[k]
        lv = levels[k]
        new_side = 0
        exit_ = 0.0
        stop = 0.0
        if allow_long and lv[1] < s and s <= lv[0]:
            new_side, exit_, stop = 1, lv[2], lv[3]
        elif allow_short and lv[4] <= s and s < lv[5]:
            new_side, exit_, stop = -1, lv[6], lv[7]
        if new_side == 0:
            continue
        py, px = closes[0], closes[1]
        weight = 1.0
        if vol_target > 0 and (k + 1) > vol_window and math.isfinite(past_var[k]):
            cap = 1.0 / gross_fraction
            var = past_var[k]
            raw = vol_target**2 / var if var > 0 else np.inf
            weight = min(max(raw, vol_floor), cap)
        fraction = min(gross_fraction * weight, 1.0)
        risk_per_unit = py + abs(beta) * px
        if not (fraction > 0 and fraction <= 1) or not (
            math.isfinite(risk_per_unit) and risk_per_unit > 0
        ):
            return values, trades, k + 1
        units = 0.0
        if value > 0:
            units = math.floor(fraction * value / risk_per_unit + 1e-9)
        x_units = np.rint(abs(beta) * units)
        if units == 0 or x_units == 0:
            continue
        y_size = new_side * units
        x_size = -new_side * math.copysign(x_units, beta)
        pend_leg[0], pend_size[0], pend_created[0] = 0, y_size, py
        pend_leg[1], pend_size[1], pend_created[1] = 1, x_size, px
        pend_n = 2
        has_trade = True
        side = new_side
        t_beta, t_exit, t_stop = beta, exit_, stop
    return values, trades, 0


class OUPairsVectorEngine:
    """What every trial of one prepared ``ou_pairs`` plugin shares: the legs' prices and the
    cost-model inputs of a fill on each session (computed once, as
    :meth:`brokers.share_costs.ShareCostScheme.impact_inputs` computes them at a fill).

    Parameters
    ----------
    plugin : OUPairs
        A prepared plugin (``y``, ``x``, ``costs``, ``risk``).

    Attributes
    ----------
    fallbacks : int
        Trials run through backtrader because the kernel met a path it does not replay.
    """

    def __init__(self, plugin: OUPairs) -> None:
        from brokers.share_costs import past_daily_vol_and_adv

        self.plugin = plugin
        self.fallbacks = 0
        self._lines: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}
        shares = plugin.costs.shares
        kw = shares.trade_cost_kwargs()
        self.cost_params = np.array(
            [
                kw["half_spread_bps"],
                kw["min_half_spread"],
                kw["impact_coefficient"],
                kw["impact_exponent"],
                kw["commission_per_share"],
                kw["min_commission"],
                kw["max_commission_pct"],
            ],
            dtype=float,
        )
        self.window = int(shares.window_days)
        y, x = plugin.y, plugin.x
        self.legs = (y, x)  # the frames it was built from
        self.index = y.index
        n, w = len(y), self.window
        self.prices = {
            leg: (f["open"].to_numpy(float), f["close"].to_numpy(float))
            for leg, f in (("y", y), ("x", x))
        }
        self.vol_adv: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for leg, frame in (("y", y), ("x", x)):
            closes = frame["close"].to_numpy(float)
            volumes = (
                frame["volume"].to_numpy(float) if "volume" in frame else np.zeros(n, dtype=float)
            )
            vol, adv = np.full(n, np.nan), np.full(n, np.nan)
            for i in range(w + 1, n):
                try:
                    vol[i], adv[i] = past_daily_vol_and_adv(
                        closes[i - w - 1 : i], volumes[i - w : i], w
                    )
                except ValueError:
                    continue  # a fill here raises on backtrader too: the kernel falls back
            self.vol_adv[leg] = (vol, adv)
        risk = plugin.risk.risk_config()
        self.risk = tuple(
            math.nan if v is None else float(v)
            for v in (risk.max_drawdown, risk.max_daily_loss, risk.stop_loss)
        )
        if risk.stop_loss_dollars is not None or risk.caps() or risk.delta_band is not None:
            from strategies.fast import VectorEngineUnsupported

            raise VectorEngineUnsupported(
                "ou_pairs: the vectorbt engine replays max_drawdown, max_daily_loss and "
                "position_stop_loss; this [risk] sets another limit"
            )

    def lines(
        self, params: OUPairsParams, start: pd.Timestamp, end: pd.Timestamp, cash: float
    ) -> tuple[slice, dict[str, np.ndarray]]:
        """The feed lines :meth:`OUPairs.feed_lines` gives the backtest of ``[start, end]``, as
        arrays, and the rows of the legs' frames they cover (``start`` less the warm-up .. ``end``).

        The lines other than ``tradable`` are computed on the whole history and only sliced by a
        window, so they are built once per (formation, health, levels) key through
        :meth:`OUPairs.feed_lines` itself and cached; ``tradable`` follows its window rule (1 on
        ``start ..`` the third-to-last session).
        """
        from strategies.ou_pairs import FEED_LINES, LEVEL_COLUMNS, WARMUP_SESSIONS

        key = (
            params.formation_days,
            params.refit_days,
            params.max_pvalue,
            params.max_half_life_days,
            params.max_half_life_drift,
            params.level_method,
            params.discount_rate,
            params.stop_loss_std,
            params.bertram_rf,
            params.gross_fraction,
            round(cash, 2),
        )
        full = self._lines.get(key)
        index = self.index
        if full is None:
            frame = self.plugin.feed_lines(params, index[0], index[-1], cash)
            if not frame.index.equals(index):
                raise RuntimeError("ou_pairs: feed lines do not cover the legs' sessions")
            full = {c: frame[c].to_numpy(dtype=float) for c in FEED_LINES if c != "tradable"}
            full["levels"] = np.ascontiguousarray(frame[list(LEVEL_COLUMNS)].to_numpy(float))
            self._lines[key] = full
        if (index.get_indexer([start, end]) < 0).any():  # as feed_lines: snap to sessions
            start = index[index.searchsorted(start)]
            end = index[min(index.searchsorted(end, side="right") - 1, len(index) - 1)]
        i0 = max(index.get_loc(start) - WARMUP_SESSIONS, 0)
        rows = slice(i0, index.get_loc(end) + 1)
        out = {c: v[rows] for c, v in full.items()}
        window = index[rows]
        last_ok = window[-2] if len(window) >= 2 else window[0]
        out["tradable"] = ((window >= start) & (window < last_ok)).astype(float)
        return rows, out

    def run(
        self, params: OUPairsParams, start: pd.Timestamp, end: pd.Timestamp, cash: float
    ) -> VectorTrial:
        """One in-sample trial over ``[start, end]`` with ``cash`` dollars (module docstring);
        a path the kernel does not replay is run through :meth:`OUPairs.backtest`."""
        from strategies.risk import VolManagedSizer

        plugin = self.plugin
        rows, lines = self.lines(params, start, end, cash)
        ok_leg = []
        arrays = {}
        for leg in ("y", "x"):
            o, c = self.prices[leg]
            vol, adv = self.vol_adv[leg]
            arrays[leg] = (o[rows], c[rows], vol[rows], adv[rows])
            # ShareCostScheme.impact_inputs raises without a positive average volume
            ok_leg.append(np.isfinite(vol[rows]) & (adv[rows] > 0))
        n = len(lines["spread"])
        cost_ok = ok_leg[0] & ok_leg[1] & (np.arange(n) + 1 >= self.window + 2)
        sizer_floor, vol_window = 0.2, 21
        past_var = np.full(n, np.nan)
        if params.vol_target > 0:
            sizer = VolManagedSizer(target_vol=params.vol_target, cap=1.0 / params.gross_fraction)
            sizer_floor, vol_window = float(sizer.floor), int(sizer.window)
            ret = lines["spread_ret"]
            for k in range(vol_window, n):
                last = ret[k - vol_window : k]
                if np.isfinite(last).all():
                    mean = last.mean() if sizer.demean else 0.0
                    past_var[k] = 252 * float(np.mean((last - mean) ** 2))
        max_dd, max_dl, stop = self.risk
        values, trades, fallback = pair_values_nb(
            float(cash),
            arrays["y"][0],
            arrays["y"][1],
            arrays["x"][0],
            arrays["x"][1],
            arrays["y"][2],
            arrays["y"][3],
            arrays["x"][2],
            arrays["x"][3],
            cost_ok,
            lines["spread"],
            lines["beta"],
            lines["healthy"],
            lines["tradable"],
            lines["levels"],
            past_var,
            self.cost_params,
            bool(params.allow_long),
            bool(params.allow_short),
            float(params.gross_fraction),
            float(params.vol_target),
            vol_window,
            sizer_floor,
            max_dd,
            max_dl,
            stop,
        )
        if fallback:
            self.fallbacks += 1
            from experiments.metrics import trade_stats

            res = plugin.backtest(params, start, end, cash=cash)
            return VectorTrial(res.returns, res.value, int(trade_stats(res.trades)["trades"]))
        # the index run_cerebro gives: the bars' dates, localized to New York
        index = session_index(self.index[rows])
        prev = np.concatenate([[float(cash)], values[:-1]])
        value = pd.Series(values, index=index, name="value", dtype=float)
        returns = pd.Series(values / prev - 1.0, index=index, name="returns")
        keep = (index >= start) & (index <= end)
        return VectorTrial(returns.loc[keep], value.loc[keep], int(trades))


def engine_for(plugin: Any) -> OUPairsVectorEngine:
    """The plugin's :class:`OUPairsVectorEngine`, built on first use and kept on the plugin
    (rebuilt when ``prepare`` has aligned new legs since)."""
    engine = getattr(plugin, "_vector_engine", None)
    if engine is None or engine.legs[0] is not plugin.y or engine.legs[1] is not plugin.x:
        engine = OUPairsVectorEngine(plugin)
        plugin._vector_engine = engine
    return engine
