"""Two deliberately leaky strategies for ``volsuite audit``'s look-ahead check (test fixtures).

Both are :class:`volsuite_demo_plugin.DayTrader` (open-to-close day trades decided at the open)
with a signal that uses information not available at the open:

* :class:`OpenPeek` reads the session's own close (``close / open - 1`` of the same session).
* :class:`ChainPeek` reads tomorrow's chain: its signal for quote date ``d`` is the move of the
  chain's underlying price from ``d``'s snapshot to the next stored quote date's, a feature table
  built in ``prepare`` from the chain store.

:class:`Unseeded` is no leak but draws unseeded random numbers in ``prepare``: the
determinism check must fail it.

Registered by the tests only (``strategies.STRATEGIES``), never shipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
from volsuite_demo_plugin import DayTrader


class OpenPeek(DayTrader):
    """Decides at the open from the same session's close (look-ahead)."""

    name: ClassVar[str] = "leaky_open_peek"
    description: ClassVar[str] = "LEAKY test fixture: reads the session's close at the open"

    def open_signal(self, data: Mapping[str, Any]) -> pd.Series:
        bars = data["underlying"]
        return bars["close"] / bars["open"] - 1.0


class ChainPeek(DayTrader):
    """Decides at the open of ``d`` from the next quote date's chain (look-ahead)."""

    name: ClassVar[str] = "leaky_chain_peek"
    description: ClassVar[str] = "LEAKY test fixture: reads tomorrow's chain"
    required_data: ClassVar[tuple[str, ...]] = ("underlying", "chains")

    def open_signal(self, data: Mapping[str, Any]) -> pd.Series:
        store = data["chains"]
        dates = store.quote_dates("SPX", ["SPXW"])
        price = {d: store.snapshot("SPX", d, roots=["SPXW"]).underlying_price for d in dates}
        moves = {
            pd.Timestamp(d).tz_localize("America/New_York"): price[nxt] / price[d] - 1.0
            for d, nxt in itertools.pairwise(dates)
        }
        return pd.Series(moves, dtype=float)


class Unseeded(DayTrader):
    """Not a leak: an unseeded random tilt of the signal, so two runs differ (check 2 fixture)."""

    name: ClassVar[str] = "unseeded_noise"
    description: ClassVar[str] = "BROKEN test fixture: unseeded randomness in prepare"

    def open_signal(self, data: Mapping[str, Any]) -> pd.Series:
        import numpy as np

        base = super().open_signal(data)
        return base + np.random.default_rng().normal(0.0, 0.02, len(base))
