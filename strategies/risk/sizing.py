"""Position sizing: volatility-managed weights, fixed-fractional units, contracts from max loss.

Volatility-managed sizing (Moreira & Muir 2017)
-----------------------------------------------
The managed portfolio of Moreira & Muir (2017, "Volatility-managed portfolios", *Journal of
Finance* 72(4), 1611-1644, eq. 1) holds ``w_t = c / sigma_t^2`` of the unmanaged return over the
next period, where ``sigma_t^2`` is the realized variance of *the previous* period's daily returns
(their section I: the previous month's daily returns). Here::

    sigma_t^2 = (A / n) * sum_{i=1..n} (r_{t-i} - rbar_t)^2      (strictly before day t)
    w_t       = clip(target_vol^2 / sigma_t^2, floor, cap)

with ``n`` = ``window`` sessions (21 ~ one month), ``rbar_t`` their mean (``demean=False`` uses 0),
``A`` = 252 (annualized variance, so ``target_vol`` is an annualized decimal volatility). The
paper picks ``c`` so that the managed and unmanaged series have the same full-sample volatility,
which uses the whole sample (look-ahead in a backtest); ``c = target_vol^2`` is the causal
equivalent used by practitioners and by our design document (``002``, section 8.1). The cap and
floor bound the leverage (the paper reports leverage-constrained versions too, section II).

Fixed-fractional sizing
-----------------------
Risk a fixed fraction ``f`` of equity ``E`` per trade (Vince 1990, *Portfolio Management
Formulas*, ch. 4; Tharp's "percent risk" model): ``units = floor(f * E / risk_per_unit)``, where
``risk_per_unit`` is what one unit can lose (the price for a notional budget, ``|entry - stop|``
for a stopped share position, a combo's maximum loss for a defined-risk option spread). Floor,
never round: the budget is an upper bound.

Max-loss sizing for option combos
---------------------------------
:func:`combo_max_loss` is the worst loss at expiry of one combo unit from its entry prices
(:func:`brokers.margin.max_loss`, payoff minimum over ``S >= 0`` at 0 and every strike) plus
the opening commission; :func:`max_loss_contracts` divides the account risk budget by it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from brokers.costs import OptionCostModel
from brokers.margin import max_loss
from data_feeds.chains import ChainSnapshot, Combo
from data_feeds.contracts import OptionContract, OptionQuote

TRADING_DAYS = 252
"""Sessions per year used to annualize daily variance (``docs/architecture.md``)."""


def past_realized_variance(
    returns: pd.Series | np.ndarray,
    window: int = 21,
    *,
    annualization: float = TRADING_DAYS,
    demean: bool = True,
) -> pd.Series:
    """Annualized realized variance of the ``window`` returns strictly *before* each day.

    ``sigma_t^2 = (A / n) sum_{i=1..n} (r_{t-i} - rbar_t)^2`` (module docstring): the value on
    day ``t`` uses returns ``t-n .. t-1`` only, so it is known before ``r_t`` is.

    Parameters
    ----------
    returns : pandas.Series or numpy.ndarray, shape (T,)
        Daily simple or log returns (decimal), oldest first.
    window : int
        ``n``, number of past returns, >= 2.
    annualization : float
        ``A``, periods per year (252).
    demean : bool
        Subtract the window mean (the paper's definition) or not (``rbar = 0``).

    Returns
    -------
    pandas.Series, shape (T,)
        Annualized variance (decimal^2 per year); NaN for the first ``window`` days (not enough
        history) and wherever the window holds a NaN return.

    Raises
    ------
    ValueError
        ``window < 2`` or ``annualization <= 0``.

    References
    ----------
    Moreira & Muir (2017), section I (realized variance of the previous month's daily returns).
    """
    if int(window) < 2:
        raise ValueError(f"window must be >= 2 returns, got {window!r}")
    if not annualization > 0:
        raise ValueError(f"annualization must be > 0, got {annualization!r}")
    r = returns if isinstance(returns, pd.Series) else pd.Series(np.asarray(returns, float))
    r = r.astype(float)
    if demean:
        var = r.rolling(window, min_periods=window).var(ddof=0)
    else:
        var = (r * r).rolling(window, min_periods=window).mean()
    return (var * annualization).shift(1).rename("realized_variance")


class VolManagedSizer(BaseModel):
    """Moreira & Muir (2017) volatility-managed exposure ``w = target_vol^2 / sigma^2``, capped
    and floored (module docstring).

    Attributes
    ----------
    target_vol : float
        Annualized target volatility (decimal, 0.15 = 15%); ``c = target_vol^2``.
    window : int
        Past returns in ``sigma^2`` (21 sessions, about a month as in the paper).
    cap, floor : float
        Bounds of the weight (leverage multiple of the base position), ``0 <= floor <= cap``.
        Defaults 2.0 and 0.2 as in the design document (``002``, section 8.1).
    demean : bool
        Demean within the window (the paper) or not.

    Raises
    ------
    pydantic.ValidationError
        Out-of-range values or ``floor > cap``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_vol: float = Field(0.15, gt=0.0, le=5.0)
    window: int = Field(21, ge=2, le=2520)
    cap: float = Field(2.0, gt=0.0)
    floor: float = Field(0.2, ge=0.0)
    demean: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> VolManagedSizer:
        if self.floor > self.cap:
            raise ValueError(f"floor ({self.floor}) must be <= cap ({self.cap})")
        return self

    def _clip(self, variance: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            raw = np.where(variance > 0, self.target_vol**2 / variance, np.inf)
        return np.where(np.isnan(variance), np.nan, np.clip(raw, self.floor, self.cap))

    def weights(self, returns: pd.Series | np.ndarray) -> pd.Series:
        """Weight for every day from the returns strictly before it (vectorised).

        Parameters
        ----------
        returns : pandas.Series or numpy.ndarray, shape (T,)
            Daily returns (decimal) of what is being sized (the strategy's own returns, or the
            underlying's), oldest first.

        Returns
        -------
        pandas.Series, shape (T,)
            ``w_t`` in ``[floor, cap]``; NaN for the first ``window`` days (no history). A window
            of zero variance gives ``cap``.
        """
        var = past_realized_variance(returns, self.window, demean=self.demean)
        return pd.Series(self._clip(var.to_numpy()), index=var.index, name="vol_managed_weight")

    def weight(self, past_returns: Sequence[float] | np.ndarray | pd.Series) -> float:
        """Weight for the next day from the returns observed so far (event-driven use).

        Parameters
        ----------
        past_returns : sequence of float
            Returns up to and including the last *completed* day (oldest first); the last
            ``window`` are used.

        Returns
        -------
        float
            ``w`` in ``[floor, cap]``, equal to :meth:`weights` on the next day.

        Raises
        ------
        ValueError
            Fewer than ``window`` returns, or a NaN among the last ``window``.
        """
        r = np.asarray(past_returns, dtype=float)
        if r.size < self.window:
            raise ValueError(
                f"VolManagedSizer needs {self.window} past returns, got {r.size}; "
                "wait for the warm-up"
            )
        last = r[-self.window :]
        if not np.isfinite(last).all():
            raise ValueError("VolManagedSizer: a non-finite return in the last window")
        mean = last.mean() if self.demean else 0.0
        var = TRADING_DAYS * float(np.mean((last - mean) ** 2))
        return float(self._clip(np.array([var]))[0])


def fixed_fractional_units(
    equity: float,
    fraction: float,
    risk_per_unit: float,
    *,
    max_units: int | None = None,
) -> int:
    """Units whose total risk stays within ``fraction`` of ``equity``: ``floor(f E / risk)``.

    Parameters
    ----------
    equity : float
        Account value, dollars (<= 0 gives 0 units).
    fraction : float
        ``f``, share of equity put at risk, in ``(0, 1]`` (0.02 = 2%).
    risk_per_unit : float
        Dollars one unit can lose, > 0 (price per share for a notional budget, ``|entry -
        stop|`` per share, a combo's max loss per unit).
    max_units : int, optional
        Upper bound.

    Returns
    -------
    int
        >= 0.

    Raises
    ------
    ValueError
        ``fraction`` outside ``(0, 1]``, a non-positive or non-finite ``risk_per_unit``, a
        non-finite ``equity``, or a negative ``max_units``.

    References
    ----------
    Vince (1990), *Portfolio Management Formulas*, ch. 4 (fixed fractional trading).
    """
    if not (0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if not (math.isfinite(risk_per_unit) and risk_per_unit > 0):
        raise ValueError(f"risk_per_unit must be finite and > 0 dollars, got {risk_per_unit!r}")
    if not math.isfinite(equity):
        raise ValueError(f"equity must be finite, got {equity!r}")
    if max_units is not None and max_units < 0:
        raise ValueError(f"max_units must be >= 0, got {max_units!r}")
    if equity <= 0:
        return 0
    # a tiny tolerance so that e.g. 0.02 * 10_000 / 200 = 1 exactly is not floored to 0
    units = math.floor(fraction * equity / risk_per_unit + 1e-9)
    return min(units, max_units) if max_units is not None else units


def max_loss_contracts(
    equity: float,
    risk_fraction: float,
    max_loss_per_unit: float,
    *,
    min_contracts: int = 0,
    max_contracts: int | None = None,
) -> int:
    """Combo units from the account risk budget and one unit's maximum loss.

    ``clip(floor(risk_fraction * equity / max_loss_per_unit), min_contracts, max_contracts)``.

    Parameters
    ----------
    equity : float
        Account value, dollars.
    risk_fraction : float
        Share of equity the combo may lose at worst, in ``(0, 1]``.
    max_loss_per_unit : float
        Dollars one combo unit can lose (:func:`combo_max_loss`), > 0.
    min_contracts : int
        Lower bound applied *after* the budget (e.g. 1 for a strategy that always trades; then the
        budget can be exceeded, which the caller chooses knowingly). Default 0.
    max_contracts : int, optional
        Upper bound (e.g. 10).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        As :func:`fixed_fractional_units`, or ``min_contracts > max_contracts``.
    """
    if max_contracts is not None and min_contracts > max_contracts:
        raise ValueError(f"min_contracts {min_contracts} > max_contracts {max_contracts}")
    n = fixed_fractional_units(equity, risk_fraction, max_loss_per_unit, max_units=max_contracts)
    return max(n, int(min_contracts))


def combo_max_loss(
    legs: Sequence[tuple[OptionContract, int]],
    prices: Mapping[OptionContract, float],
    *,
    quantity: int = 1,
    commission_per_contract: float = 0.0,
) -> float:
    """Worst loss at expiry of ``quantity`` units of a combo entered at ``prices``, in dollars.

    ``sum q p m - min_{S >= 0} sum q intrinsic(S) m + commission * sum |q|`` with ``q`` the signed
    contracts (``ratio * quantity``), ``p`` the entry price per unit and ``m`` the multiplier
    (:func:`brokers.margin.max_loss`). A debit vertical loses its debit, a credit vertical
    ``width * m - credit``, an iron condor ``max(wing widths) * m - credit``.

    Parameters
    ----------
    legs : sequence of (OptionContract, int)
        Contracts and signed ratios per combo unit (all legs settle on the same underlying price:
        same underlying and expiry).
    prices : mapping OptionContract -> float
        Entry price per unit of each leg (index points / dollars per share), e.g. the fill price
        from :meth:`brokers.OptionCostModel.fill_price`.
    quantity : int
        Combo units; > 0 buys the combo as given, < 0 sells it.
    commission_per_contract : float
        Dollars per contract paid to open (closing or settling costs are not included).

    Returns
    -------
    float
        Dollars, >= 0.

    Raises
    ------
    ValueError
        ``quantity == 0``, a leg without a price, or an unbounded loss (more short calls than long
        calls): such a combo cannot be sized by max loss.
    KeyError
        Never; a missing price is a ``ValueError`` naming the leg.
    """
    if quantity == 0:
        raise ValueError("quantity must be non-zero")
    missing = [str(c) for c, _ in legs if c not in prices]
    if missing:
        raise ValueError(f"combo_max_loss: no entry price for {missing}")
    signed = [(c, int(r) * int(quantity), float(prices[c])) for c, r in legs]
    try:
        loss = max_loss(signed)
    except ValueError as exc:
        raise ValueError(f"combo_max_loss: the combo's loss is unbounded ({exc})") from exc
    return loss + commission_per_contract * sum(abs(q) for _, q, _ in signed)


def combo_max_loss_at_fill(
    combo: Combo | Sequence[tuple[OptionContract, int]],
    snapshot: ChainSnapshot,
    *,
    quantity: int = 1,
    costs: OptionCostModel | None = None,
) -> float:
    """:func:`combo_max_loss` at the prices the broker would fill now (slippage + commission).

    Parameters
    ----------
    combo : Combo or sequence of (OptionContract, int)
        Legs with signed ratios per unit.
    snapshot : ChainSnapshot
        Quotes to fill against.
    quantity : int
        Combo units (> 0 buy, < 0 sell).
    costs : OptionCostModel, optional
        The broker's cost model (``OptionsBroker.costs``); default ``OptionCostModel()``.

    Returns
    -------
    float
        Dollars for ``quantity`` units.

    Raises
    ------
    KeyError
        A leg is not quoted in ``snapshot``.
    ValueError
        See :func:`combo_max_loss`.
    """
    costs = costs or OptionCostModel()
    legs = list(combo.legs if isinstance(combo, Combo) else combo)
    prices = {}
    for c, r in legs:
        row = snapshot.row(c)
        quote = OptionQuote(float(row["bid"]), float(row["ask"]))
        prices[c] = costs.fill_price(quote, int(r) * int(quantity), c.root)
    return combo_max_loss(
        legs, prices, quantity=quantity, commission_per_contract=costs.commission_per_contract
    )


__all__ = [
    "TRADING_DAYS",
    "VolManagedSizer",
    "combo_max_loss",
    "combo_max_loss_at_fill",
    "fixed_fractional_units",
    "max_loss_contracts",
    "past_realized_variance",
]
