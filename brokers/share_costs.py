"""Share (stock / ETF) transaction costs: half spread + square-root market impact + commission.

One trade of ``Q`` shares (sign ignored) at price ``P`` (dollars per share) costs, in dollars::

    spread     = |Q| * max(P * half_spread_bps / 1e4, min_half_spread)
    impact     = |Q| * P * Y * sigma_d * (|Q| / V_d) ** delta
    commission = min(max(|Q| * c_share, c_min), c_max_pct * |Q| * P)
    total      = spread + impact + commission

with ``sigma_d`` the daily volatility of returns (decimal, *not* annualised), ``V_d`` the average
daily volume in shares, ``Y`` the impact coefficient and ``delta`` the impact exponent.

Sources
-------
Half spread
    A market order crosses half the quoted spread from mid: the effective half spread of Roll
    (1984) and of the cost decompositions in Frazzini, Israel & Moskowitz (2018), "Trading Costs",
    SSRN 3229719. ``min_half_spread`` is half the $0.01 tick (SEC Rule 612: no sub-penny quotes on
    shares above $1), below which no quoted spread can go.
Square-root impact
    The "square-root law" of market impact: the price moves by ``Y sigma_d sqrt(Q / V_d)`` when a
    metaorder of ``Q`` shares is executed within a day, with ``Y`` "of order unity" (Toth et al.
    2011, "Anomalous price impact and the critical nature of liquidity in financial markets",
    Phys. Rev. X 1, 021006, section I; Bouchaud, Bonart, Donier & Gould 2018, *Trades, Quotes
    and Prices*, Cambridge UP, ch. 12 "The square-root law"). Default ``Y = 1``,
    ``delta = 1/2``. The cost charged is ``|Q| * P *`` that relative move, i.e. every share pays
    the peak impact: a conservative reading (the average price paid over a metaorder executed
    at a constant rate is below its peak impact).
    Almgren, Thum, Hauptmann & Li (2005), "Direct estimation of equity market impact", *Risk*
    18(7), fit the temporary impact ``eta sigma (X / (V T)) ** beta`` with ``beta = 3/5`` and
    ``eta = 0.142`` on Citigroup US equity orders: ``impact_coefficient=0.142,
    impact_exponent=0.6`` reproduces their temporary term for a one-day execution (``T = 1``).
Commission
    The per-share schedule of a US retail/prop broker (Interactive Brokers "fixed": $0.005 per
    share, minimum $1.00 per order, maximum 1% of trade value); every parameter can be changed.

The design sketch (``../shared/design/002``, section 9.2) charges the *full* quoted spread one way,
switches impact on only above 5% of daily volume (a jump in cost at 5%) and hard-codes commission
as 0.5 bp; this module charges half the spread per trade (the full spread over a round trip), the
impact continuously from the first share, and commission from the per-share schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import backtrader as bt
import numpy as np


@dataclass(frozen=True)
class ShareCost:
    """Cost of one share trade in dollars, by component (all >= 0).

    Attributes
    ----------
    spread, impact, commission : float
        Half spread, market impact and commission, dollars.
    daily_vol : float
        ``sigma_d`` used (decimal per day).
    adv : float
        ``V_d`` used (shares per day).
    """

    spread: float
    impact: float
    commission: float
    daily_vol: float
    adv: float

    @property
    def total(self) -> float:
        """Dollars: ``spread + impact + commission``."""
        return self.spread + self.impact + self.commission


def _check_nonneg(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def share_trade_cost(
    quantity: float,
    price: float,
    *,
    daily_vol: float,
    adv: float,
    half_spread_bps: float = 1.0,
    min_half_spread: float = 0.005,
    impact_coefficient: float = 1.0,
    impact_exponent: float = 0.5,
    commission_per_share: float = 0.005,
    min_commission: float = 1.0,
    max_commission_pct: float = 0.01,
) -> ShareCost:
    """Dollar cost of trading ``quantity`` shares at ``price`` (module docstring formula).

    Parameters
    ----------
    quantity : float
        Shares; the sign (buy / sell) is ignored. 0 costs nothing.
    price : float
        Dollars per share, > 0.
    daily_vol : float
        ``sigma_d``: standard deviation of daily returns, decimal per day (0.015 = 1.5% a day;
        annualised vol / sqrt(252)).
    adv : float
        ``V_d``: average daily volume in shares, > 0 (unless ``impact_coefficient`` is 0).
    half_spread_bps : float
        Half the quoted spread in basis points of ``price`` (1.0 = 1 bp; a liquid ETF).
    min_half_spread : float
        Floor of the half spread, dollars per share (half a cent).
    impact_coefficient : float
        ``Y`` (1.0; 0 switches impact off).
    impact_exponent : float
        ``delta`` (0.5, the square-root law; 0.6 for Almgren et al. 2005), in ``(0, 1]``.
    commission_per_share : float
        Dollars per share.
    min_commission : float
        Minimum dollars per order (trade).
    max_commission_pct : float
        Cap as a fraction of the trade value ``|Q| P`` (0.01 = 1%); it wins over the minimum.

    Returns
    -------
    ShareCost

    Raises
    ------
    ValueError
        A negative or non-finite input, ``price <= 0``, ``adv <= 0`` with impact on, or an
        exponent outside ``(0, 1]``.

    References
    ----------
    Toth et al. (2011); Bouchaud et al. (2018) ch. 12; Almgren et al. (2005); see the module
    docstring.
    """
    q = abs(float(quantity))
    if not math.isfinite(q):
        raise ValueError(f"quantity must be finite, got {quantity!r}")
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be finite and > 0 (dollars per share), got {price!r}")
    for name, v in (
        ("daily_vol", daily_vol),
        ("half_spread_bps", half_spread_bps),
        ("min_half_spread", min_half_spread),
        ("impact_coefficient", impact_coefficient),
        ("commission_per_share", commission_per_share),
        ("min_commission", min_commission),
        ("max_commission_pct", max_commission_pct),
    ):
        _check_nonneg(name, v)
    if not (0 < impact_exponent <= 1):
        raise ValueError(f"impact_exponent must be in (0, 1], got {impact_exponent!r}")
    if impact_coefficient > 0 and not (math.isfinite(adv) and adv > 0):
        raise ValueError(f"adv (average daily volume, shares) must be > 0, got {adv!r}")
    if q == 0:
        return ShareCost(0.0, 0.0, 0.0, float(daily_vol), float(adv))
    spread = q * max(price * half_spread_bps / 1e4, min_half_spread)
    impact = 0.0
    if impact_coefficient > 0:
        impact = q * price * impact_coefficient * daily_vol * (q / adv) ** impact_exponent
    commission = min(max(q * commission_per_share, min_commission), max_commission_pct * q * price)
    return ShareCost(spread, impact, commission, float(daily_vol), float(adv))


def past_daily_vol_and_adv(
    closes: np.ndarray, volumes: np.ndarray, window: int = 20
) -> tuple[float, float]:
    """``sigma_d`` and ``V_d`` from the ``window`` sessions *before* the trade.

    Parameters
    ----------
    closes : numpy.ndarray, shape (window + 1,)
        Closes (dollars per share) of the last ``window + 1`` past sessions, oldest first.
    volumes : numpy.ndarray, shape (window,)
        Volumes (shares) of the last ``window`` past sessions, oldest first.
    window : int
        Number of past sessions, >= 2.

    Returns
    -------
    daily_vol : float
        Sample standard deviation (``ddof=1``) of the ``window`` daily log returns, decimal per
        day (not annualised).
    adv : float
        Mean volume, shares per day.

    Raises
    ------
    ValueError
        Wrong lengths, non-positive closes, or non-finite values.
    """
    closes = np.asarray(closes, dtype=float)
    volumes = np.asarray(volumes, dtype=float)
    if window < 2 or closes.shape != (window + 1,) or volumes.shape != (window,):
        raise ValueError(
            f"need window >= 2, {window + 1} closes and {window} volumes; got window={window}, "
            f"{closes.shape} closes, {volumes.shape} volumes"
        )
    if not (np.isfinite(closes).all() and (closes > 0).all() and np.isfinite(volumes).all()):
        raise ValueError("closes must be finite and > 0 and volumes finite")
    rets = np.diff(np.log(closes))
    return float(np.std(rets, ddof=1)), float(np.mean(volumes))


class ShareCostScheme(bt.CommInfoBase):
    """backtrader commission scheme charging :func:`share_trade_cost` on every share fill.

    backtrader fills at the bar price (open for market orders); this scheme charges the half
    spread and the impact as part of the commission, so cash, ``order.executed.comm`` and trade
    P&L net of commission carry the whole cost (same account effect as a worse fill price).
    Register per data: ``cerebro.broker.addcommissioninfo(ShareCostScheme(data=feed), name=...)``.

    Parameters (backtrader ``params``)
    ----------------------------------
    half_spread_bps, min_half_spread, impact_coefficient, impact_exponent,
    commission_per_share, min_commission, max_commission_pct
        As in :func:`share_trade_cost`.
    daily_vol, adv : float, optional
        Fixed ``sigma_d`` (decimal per day) and ``V_d`` (shares per day).
    data : backtrader data feed, optional
        When ``daily_vol``/``adv`` are not given: estimate both at each fill from the feed's
        ``window`` bars *before* the current one (:func:`past_daily_vol_and_adv`; the fill bar's
        own close and volume are never used). The feed needs ``close`` and ``volume`` lines.
    window : int
        Past sessions for the estimate (20).

    Raises
    ------
    ValueError
        At construction: neither fixed ``daily_vol``/``adv`` nor ``data`` while impact is on, or
        a bad parameter. At a fill: fewer than ``window`` past bars in ``data`` (trade later or
        give fixed values), or zero average volume (no impact estimate possible).

    Notes
    -----
    backtrader charges an order that reverses a position (long to short) in two calls, the
    closing part and the opening part: the minimum commission and the concave impact then apply
    to each part, so a reversal costs slightly more than one trade of the same size.
    ``stocklike`` is True (cash pays the full price; no futures margin).
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("half_spread_bps", 1.0),
        ("min_half_spread", 0.005),
        ("impact_coefficient", 1.0),
        ("impact_exponent", 0.5),
        ("commission_per_share", 0.005),
        ("min_commission", 1.0),
        ("max_commission_pct", 0.01),
        ("daily_vol", None),
        ("adv", None),
        ("data", None),
        ("window", 20),
    )

    def __init__(self) -> None:
        super().__init__()
        p = self.p
        fixed = p.daily_vol is not None and p.adv is not None
        if p.impact_coefficient > 0 and not fixed and p.data is None:
            raise ValueError(
                "ShareCostScheme: give daily_vol and adv, or data (to estimate them from past "
                "bars), or impact_coefficient=0"
            )
        if int(p.window) < 2:
            raise ValueError(f"ShareCostScheme: window must be >= 2, got {p.window!r}")
        # validate the constant parameters once, on a one-share trade
        share_trade_cost(1, 1.0, daily_vol=p.daily_vol or 0.0, adv=p.adv or 1.0, **self._kw())

    def _kw(self) -> dict[str, float]:
        p = self.p
        return {
            "half_spread_bps": p.half_spread_bps,
            "min_half_spread": p.min_half_spread,
            "impact_coefficient": p.impact_coefficient,
            "impact_exponent": p.impact_exponent,
            "commission_per_share": p.commission_per_share,
            "min_commission": p.min_commission,
            "max_commission_pct": p.max_commission_pct,
        }

    def impact_inputs(self) -> tuple[float, float]:
        """``(sigma_d, V_d)`` for a fill now: the fixed params, or the past-bar estimate.

        Raises
        ------
        ValueError
            See the class docstring.
        """
        p = self.p
        if p.daily_vol is not None and p.adv is not None:
            return float(p.daily_vol), float(p.adv)
        if p.impact_coefficient == 0 and p.data is None:
            return 0.0, 1.0
        data, n = p.data, int(p.window)
        name = getattr(data, "_name", "") or "data"
        if len(data) < n + 2:  # the current bar plus n + 1 past closes
            raise ValueError(
                f"ShareCostScheme[{name}]: {len(data) - 1} past bars at "
                f"{data.datetime.date(0)}; the impact estimate needs {n + 1} (window={n}). "
                "Trade later or give daily_vol and adv"
            )
        closes = np.array([data.close[-i] for i in range(n + 1, 0, -1)], dtype=float)
        volumes = np.array([data.volume[-i] for i in range(n, 0, -1)], dtype=float)
        vol, adv = past_daily_vol_and_adv(closes, volumes, n)
        if not adv > 0:
            raise ValueError(
                f"ShareCostScheme[{name}]: average volume of the {n} sessions before "
                f"{data.datetime.date(0)} is {adv}; no impact estimate"
            )
        return vol, adv

    def cost(self, size: float, price: float) -> ShareCost:
        """The :class:`ShareCost` of ``size`` shares at ``price`` now (see class docstring)."""
        vol, adv = self.impact_inputs()
        return share_trade_cost(size, price, daily_vol=vol, adv=adv, **self._kw())

    def _getcommission(self, size, price, pseudoexec):  # backtrader hook
        if size == 0:
            return 0.0
        return self.cost(size, price).total


__all__ = ["ShareCost", "ShareCostScheme", "past_daily_vol_and_adv", "share_trade_cost"]
