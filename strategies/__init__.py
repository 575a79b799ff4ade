"""backtrader strategies, one module per family, found by name through a registry.

Plugins are registered in :data:`STRATEGIES`; a user's own plugin registers through the
``volsuite.strategies`` entry-point group (``name = "package.module:PluginClass"``) without editing
the runner. See ``README.md`` ("Adding a strategy"). Option strategies on a chain feed subclass
:class:`OptionStrategy` (combo specs, book greeks, settlement bookkeeping; ``docs/brokers.md``).
"""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from strategies.base import BacktestResult, StrategyParams, StrategyPlugin, run_cerebro
    from strategies.hedging import (
        DeltaHedgedStrategy,
        DeltaHedger,
        HedgeConfig,
        HedgeDecision,
        whalley_wilmott_band,
    )
    from strategies.option_strategy import ComboSpec, OptionStrategy

    STRATEGIES: dict[str, type[StrategyPlugin]]

BUILTIN: dict[str, str] = {
    "zero_dte_straddle": "strategies.zero_dte_straddle:ZeroDteStraddle",
    "ou_pairs": "strategies.ou_pairs:OUPairs",
    "ml_spreads": "strategies.ml_spreads:MlSpreads",
    "vrp_harvest": "strategies.vrp_harvest:VrpHarvest",
    "skew_dislocation": "strategies.skew_dislocation:SkewDislocation",
    "term_structure_slope": "strategies.term_structure_slope:TermStructureSlope",
    "vol_dislocation": "strategies.vol_dislocation:VolDislocation",
    "directional_overlay": "strategies.directional_overlay:DirectionalOverlay",
    "vol_of_vol": "strategies.vol_of_vol:VolOfVolGamma",
    "surface_arbitrage": "strategies.surface_arbitrage:SurfaceArbitrage",
}
"""Registered name -> ``module:Class`` of the built-in plugins (imported on first use: a plugin
module loads numba kernels, vectorbt and backtrader)."""


def _load(target: str) -> type[StrategyPlugin]:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def _registry() -> dict[str, type[StrategyPlugin]]:
    """:data:`STRATEGIES`: name -> plugin class of every built-in plugin (imports them all)."""
    return {name: _load(target) for name, target in BUILTIN.items()}


def _plugins() -> dict[str, type[StrategyPlugin]]:
    """The registry (``strategies.STRATEGIES``, built on first access; tests patch it)."""
    import strategies

    return strategies.STRATEGIES


def get_strategy(name: str) -> type[StrategyPlugin]:
    """The plugin class registered as ``name`` (built-in or entry point).

    Raises
    ------
    KeyError
        No plugin has that name; the message lists the known ones.
    """
    plugins = _plugins()
    if name in plugins:
        return plugins[name]
    for ep in entry_points(group="volsuite.strategies"):
        if ep.name == name:
            return ep.load()
    known = sorted(set(plugins) | {ep.name for ep in entry_points(group="volsuite.strategies")})
    raise KeyError(f"unknown strategy {name!r}; registered: {known}")


def builtin_description(name: str) -> str:
    """The ``description`` class attribute of built-in plugin ``name``, read from its source
    without importing it (``volsuite list`` answers without loading every plugin).

    Raises
    ------
    KeyError
        ``name`` is not a built-in plugin, or its class has no literal ``description``.
    """
    module, cls = BUILTIN[name].split(":")
    path = Path(__file__).resolve().parent / (module.split(".", 1)[1].replace(".", "/") + ".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "description" for t in stmt.targets)
                    and isinstance(stmt.value, ast.Constant | ast.JoinedStr | ast.BinOp)
                ):
                    value = ast.literal_eval(stmt.value)
                    if isinstance(value, str):
                        return value
    raise KeyError(f"{path}: class {cls} has no literal 'description'")


def list_strategies() -> dict[str, str]:
    """Name -> one-line description of every registered strategy.

    The built-ins are described from their source (no import) unless the registry was already
    loaded (then from the classes, which includes plugins added to it at run time).
    """
    import strategies

    if "STRATEGIES" in vars(strategies):
        out = {name: cls.description for name, cls in strategies.STRATEGIES.items()}
    else:
        out = {name: builtin_description(name) for name in BUILTIN}
    for ep in entry_points(group="volsuite.strategies"):
        out.setdefault(ep.name, f"(entry point {ep.value})")
    return out


__all__ = [
    "BUILTIN",
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
    "builtin_description",
    "get_strategy",
    "list_strategies",
    "run_cerebro",
    "whalley_wilmott_band",
]

lazy_package(__name__, computed={"STRATEGIES": _registry})
