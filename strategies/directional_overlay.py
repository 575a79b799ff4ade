"""``directional_overlay``: ``vol_dislocation`` with the structure tilted by the overnight drift.

Design document ``../shared/design/000_b5d10140c737cba0.txt``, section 3 ("Directional Bias
Overlay": an overnight drift estimate from the SDE model + futures imbalance "adds directional
skew to the straddle (e.g. shift to strangle or call-weighted if bullish bias)"), issue 5.

Everything of :mod:`strategies.vol_dislocation` (signal, side, sizing, exits, hedge, risk layer)
is reused; only the structure opened at 09:31 changes:

1. **Drift estimate** (known at 09:31 on ``D``): the overnight log return ``r_D = ln(open_D /
   close_{D-1})`` of the auction frame, standardized by a GBM fitted on the *past* overnight
   returns of the daily file (sessions ``D - drift_window .. D - 1``; maximum-likelihood drift
   and volatility of a Gaussian increment = their mean ``mu`` and standard deviation ``s``,
   ``ddof = 1``)::

       drift_z_D = (r_D - mu_D) / s_D        (unitless)

   Futures order-book imbalance is in none of our data sets (not a zero input).
2. **Tilt**: ``drift_z >= tilt_z`` -> bias up, ``<= -tilt_z`` -> bias down, else the straddle.
   The tilt gives the book a delta of the drift's sign whatever the vol side:

   * ``tilt_mode = "ratio"``: at the ATM strike, ``tilt_ratio`` units of the favoured right to
     one of the other: long vol + up = ``+2C +1P``, long vol + down = ``+1C +2P``; short vol + up
     = ``-1C -2P`` (fewer short calls), short vol + down = ``-2C -1P``;
   * ``tilt_mode = "strangle"``: the favoured side at the ATM strike, the other right at the
     listed strike nearest Black-76 ``|delta| = wing_delta`` further out of the money
     (long vol + up: ATM call + OTM put; short vol + up: short ATM put + short OTM call).
     Without such a strike the day is logged ``no_combo`` (no silent fallback).

See ``docs/strategies/directional_overlay.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from data_feeds.chains import ChainSnapshot, Combo, QuoteUnavailable
from indicators.drift import OvernightDrift, overnight_returns
from strategies.base import StrategyParams
from strategies.vol_dislocation import (
    VolDislocation,
    VolDislocationParams,
    VolDislocationStrategy,
)

__all__ = [
    "DirectionalOverlay",
    "DirectionalOverlayParams",
    "DirectionalOverlayStrategy",
    "drift_zscore",
    "drift_zscores",
    "tilt_legs",
]


class DirectionalOverlayParams(VolDislocationParams):
    """:class:`strategies.vol_dislocation.VolDislocationParams` plus the tilt.

    Attributes
    ----------
    drift_window : int
        Past overnight returns in the GBM fit (sessions, >= 10).
    tilt_z : float
        ``|drift_z|`` needed to tilt (standard deviations of the overnight move, > 0).
    tilt_mode : {"ratio", "strangle"}
        Tilted structure (module docstring).
    tilt_ratio : int
        Units of the favoured right per unit of the other (``ratio`` mode, >= 2).
    wing_delta : float
        ``|delta|`` of the out-of-the-money leg (``strangle`` mode), in ``(0, 0.5)``.
    """

    tunable: ClassVar[frozenset[str]] = VolDislocationParams.tunable | {
        "drift_window",
        "tilt_z",
        "tilt_mode",
        "tilt_ratio",
        "wing_delta",
    }

    drift_window: int = Field(60, ge=10, le=2000)
    tilt_z: float = Field(1.0, gt=0.0, le=10.0)
    tilt_mode: Literal["ratio", "strangle"] = "ratio"
    tilt_ratio: int = Field(2, ge=2, le=5)
    wing_delta: float = Field(0.25, gt=0.0, lt=0.5)


def drift_zscore(overnight_return: pd.Series, daily: pd.DataFrame, window: int) -> pd.DataFrame:
    """Standardized overnight move of each date against a GBM fitted on earlier nights.

    Parameters
    ----------
    overnight_return : pandas.Series
        ``r_D`` (decimal log return) indexed by ``datetime.date`` (the auction frame's, known at
        09:31 ET).
    daily : pandas.DataFrame
        Daily ``open`` and ``close`` (index points), session index, ascending.
    window : int
        Past nights in the fit (>= 2).

    Returns
    -------
    pandas.DataFrame
        Index of ``overnight_return``: ``drift_mu``, ``drift_sd`` (decimal per night; mean and
        ``ddof = 1`` standard deviation of ``ln(open_t / close_{t-1})`` over the ``window``
        sessions before ``D``), ``drift_z`` (unitless). NaN without ``window`` past nights or
        when ``D`` is not a session of ``daily``.

    Raises
    ------
    ValueError
        ``window < 2``.
    """
    if window < 2:
        raise ValueError(f"drift window must be >= 2 nights, got {window}")
    return drift_zscores(overnight_return, daily, [window])[window]


def drift_zscores(
    overnight_return: pd.Series, daily: pd.DataFrame, windows: Sequence[int]
) -> dict[int, pd.DataFrame]:
    """:func:`drift_zscore` of every window in one :data:`indicators.drift.OvernightDrift` call.

    Parameters
    ----------
    overnight_return, daily
        As :func:`drift_zscore`.
    windows : sequence of int
        Past nights in the fit (each >= 2).

    Returns
    -------
    dict of int to pandas.DataFrame
        Window -> the :func:`drift_zscore` frame.

    Raises
    ------
    ValueError
        A window below 2.
    """
    ws = sorted({int(w) for w in windows})
    days = pd.DatetimeIndex(daily.index).date
    move = overnight_return.reindex(days).to_numpy(dtype=float)
    night = overnight_returns(daily).to_numpy(dtype=float)
    res = OvernightDrift.run(night, move, window=ws)
    outs = [o.to_numpy().reshape(len(days), len(ws)) for o in (res.mu, res.sd, res.z)]
    return {
        w: pd.DataFrame(
            {name: out[:, i] for name, out in zip(DRIFT_COLUMNS, outs, strict=True)}, index=days
        ).reindex(overnight_return.index)
        for i, w in enumerate(ws)
    }


DRIFT_COLUMNS = ("drift_mu", "drift_sd", "drift_z")
"""Columns :func:`drift_zscore` adds to the signal table."""


def tilt_legs(side: int, bias: int, ratio: int) -> dict[str, int]:
    """Signed units per right of the ``ratio`` structure (module docstring, step 2).

    Parameters
    ----------
    side : {+1, -1}
        Long vol / short vol.
    bias : {+1, 0, -1}
        Up, none, down.
    ratio : int
        Units of the favoured right per unit of the other.

    Returns
    -------
    dict
        ``{"C": n_calls, "P": n_puts}``, signed (the book delta has the sign of ``bias``).

    Raises
    ------
    ValueError
        ``side`` not +-1 or ``bias`` not in {-1, 0, 1}.
    """
    if side not in (1, -1) or bias not in (1, 0, -1):
        raise ValueError(f"side must be +-1 and bias in (-1, 0, 1), got {side}, {bias}")
    if bias == 0:
        return {"C": side, "P": side}
    # the right whose delta has the bias's sign when held with sign ``side``: a long call and a
    # short put are long delta
    up_right = "C" if side > 0 else "P"
    heavy = up_right if bias > 0 else ("P" if up_right == "C" else "C")
    return {r: side * (ratio if r == heavy else 1) for r in ("C", "P")}


class DirectionalOverlayStrategy(VolDislocationStrategy):
    """:class:`strategies.vol_dislocation.VolDislocationStrategy` whose entry structure is
    tilted by ``drift_z`` of the signal row (module docstring)."""

    tag_prefix: ClassVar[str] = "tilt"

    def entry_combo(
        self, snap: ChainSnapshot, day: dt.date, sig: Mapping[str, Any], side: int, row: dict
    ) -> Combo:
        """The tilted structure per unit *bought*: ``side`` is applied by the caller, so the
        legs here carry ``tilt_legs(side, bias) * side`` (``side**2 = 1``).

        Raises
        ------
        data_feeds.chains.QuoteUnavailable
            A leg is not quoted, or no wing strike beyond the ATM strike (``strangle``,
            ``delta_not_bracketed``).
        """
        r = self.rules
        assert isinstance(r, DirectionalOverlayParams)
        z = float(sig.get("drift_z", math.nan))
        bias = 0 if not math.isfinite(z) else (1 if z >= r.tilt_z else -1 if z <= -r.tilt_z else 0)
        row.update(drift_z=z, bias={1: "up", -1: "down", 0: "none"}[bias])
        k = float(sig["atm_strike"])
        if bias == 0:
            return snap.straddle(day, r.root, k)
        if r.tilt_mode == "ratio":
            units = tilt_legs(side, bias, r.tilt_ratio)
            return snap.combo(
                "custom",
                [(snap.contract(r.root, day, k, right), units[right] * side) for right in "CP"],
            )
        # strangle: the right with the bias's delta (held with sign ``side``) stays at the ATM
        # strike; the other goes out of the money
        atm_right = ("C" if side > 0 else "P") if bias > 0 else ("P" if side > 0 else "C")
        wing_right = "P" if atm_right == "C" else "C"
        sign = 1.0 if wing_right == "C" else -1.0
        wing = snap.strike_by_delta(day, r.root, wing_right, sign * r.wing_delta)
        if (wing - k) * sign <= 0:
            raise QuoteUnavailable(
                "delta_not_bracketed",
                f"no {wing_right} strike beyond the ATM strike {k:g} at |delta| {r.wing_delta}"
                f" (nearest {wing:g})"
            )
        strikes = {atm_right: k, wing_right: wing}
        return snap.combo(
            "strangle", [(snap.contract(r.root, day, strikes[x], x), 1) for x in ("C", "P")]
        )


class DirectionalOverlay(VolDislocation):
    """Plugin: :class:`strategies.vol_dislocation.VolDislocation` with ``drift_z`` in the signal
    table and :class:`DirectionalOverlayStrategy` (module docstring)."""

    name = "directional_overlay"
    description = "vol_dislocation with the 0DTE structure tilted by the overnight drift z-score"
    Params: ClassVar[type[StrategyParams]] = DirectionalOverlayParams
    strategy_cls: ClassVar[type[VolDislocationStrategy]] = DirectionalOverlayStrategy
    signal_keys: ClassVar[tuple[str, ...]] = ("rv_estimator", "drift_window")

    def prepare(self, data: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> None:
        """:meth:`strategies.vol_dislocation.VolDislocation.prepare`; the drift z-scores of
        every searched ``drift_window`` come from one :data:`indicators.drift.OvernightDrift`
        call (:meth:`drift_table`)."""
        base = DirectionalOverlayParams(**self.fixed)
        self._drift_windows = sorted(
            {int(w) for w in grid.get("drift_window", [])} | {base.drift_window}
        )
        self._drift: dict[int, pd.DataFrame] = {}
        super().prepare(data, grid)

    def drift_table(self, overnight_return: pd.Series, window: int) -> pd.DataFrame:
        """:func:`drift_zscore` of ``window``; on the first call every window of the search
        space is computed at once (:func:`drift_zscores`)."""
        cache: dict[int, pd.DataFrame] = self.__dict__.setdefault("_drift", {})
        if window not in cache:
            windows = {window, *self.__dict__.get("_drift_windows", [])}
            cache.update(drift_zscores(overnight_return, self.underlying, sorted(windows)))
        return cache[window]

    def build_signals(self, params: StrategyParams) -> pd.DataFrame:
        """:func:`strategies.vol_dislocation.dislocation_signals` plus :func:`drift_zscore`."""
        assert isinstance(params, DirectionalOverlayParams)
        table = super().build_signals(params)
        drift = self.drift_table(table["overnight_return"], params.drift_window)
        return pd.concat([table, drift], axis=1)
