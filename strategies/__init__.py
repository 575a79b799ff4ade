"""backtrader strategies, one module per family, found by name through a registry.

Plugins are registered in :data:`STRATEGIES`; a user's own plugin registers through the
``volsuite.strategies`` entry-point group (``name = "package.module:PluginClass"``) without editing
the runner. See ``README.md`` ("Adding a strategy"). Option strategies on a chain feed subclass
:class:`OptionStrategy` (combo specs, book greeks, settlement bookkeeping; ``docs/brokers.md``).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from strategies.base import BacktestResult, StrategyParams, StrategyPlugin, run_cerebro
from strategies.directional_overlay import DirectionalOverlay
from strategies.hedging import (
    DeltaHedgedStrategy,
    DeltaHedger,
    HedgeConfig,
    HedgeDecision,
    whalley_wilmott_band,
)
from strategies.ml_spreads import MlSpreads
from strategies.option_strategy import ComboSpec, OptionStrategy
from strategies.ou_pairs import OUPairs
from strategies.skew_dislocation import SkewDislocation
from strategies.surface_arbitrage import SurfaceArbitrage
from strategies.term_structure_slope import TermStructureSlope
from strategies.vol_dislocation import VolDislocation
from strategies.vol_of_vol import VolOfVolGamma
from strategies.vrp_harvest import VrpHarvest
from strategies.zero_dte_straddle import ZeroDteStraddle

STRATEGIES: dict[str, type[StrategyPlugin]] = {
    ZeroDteStraddle.name: ZeroDteStraddle,
    OUPairs.name: OUPairs,
    MlSpreads.name: MlSpreads,
    VrpHarvest.name: VrpHarvest,
    SkewDislocation.name: SkewDislocation,
    TermStructureSlope.name: TermStructureSlope,
    VolDislocation.name: VolDislocation,
    DirectionalOverlay.name: DirectionalOverlay,
    VolOfVolGamma.name: VolOfVolGamma,
    SurfaceArbitrage.name: SurfaceArbitrage,
}


def get_strategy(name: str) -> type[StrategyPlugin]:
    """The plugin class registered as ``name`` (built-in or entry point).

    Raises
    ------
    KeyError
        No plugin has that name; the message lists the known ones.
    """
    if name in STRATEGIES:
        return STRATEGIES[name]
    for ep in entry_points(group="volsuite.strategies"):
        if ep.name == name:
            return ep.load()
    known = sorted(set(STRATEGIES) | {ep.name for ep in entry_points(group="volsuite.strategies")})
    raise KeyError(f"unknown strategy {name!r}; registered: {known}")


def list_strategies() -> dict[str, str]:
    """Name -> one-line description of every registered strategy."""
    out = {name: cls.description for name, cls in STRATEGIES.items()}
    for ep in entry_points(group="volsuite.strategies"):
        out.setdefault(ep.name, f"(entry point {ep.value})")
    return out


__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "ComboSpec",
    "DeltaHedgedStrategy",
    "DeltaHedger",
    "HedgeConfig",
    "HedgeDecision",
    "OptionStrategy",
    "StrategyParams",
    "StrategyPlugin",
    "get_strategy",
    "list_strategies",
    "run_cerebro",
    "whalley_wilmott_band",
]
