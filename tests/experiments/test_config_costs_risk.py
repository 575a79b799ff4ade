"""``[costs]`` and ``[risk]``: costs and risk limits are config sections, never strategy parameters.

The reference for the shipped configs is what they set before the sections existed (their
``[strategy.params]`` / ``[broker]`` lines, copied below by hand from the pre-migration files, and
the former ``Params`` defaults); the effective values after loading must be the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from brokers.cost_config import CostsConfig, ShareCostConfig
from experiments.config import COST_AND_RISK_KEYS, ConfigError, load_config
from experiments.runner import build_plugin
from strategies import STRATEGIES, get_strategy
from strategies.risk import RiskLimits

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"

# -- the pre-migration reference ---------------------------------------------------------------
OLD_DEFAULTS = {
    # [broker] defaults and every strategy's former Params defaults
    "commission_per_contract": 1.0,
    "slippage_spread_fraction": 0.5,
    "settlement_fee_per_contract": 0.0,
    "hedge_half_spread": 0.05,
    "hedge_commission_per_share": 0.005,
    "shares.half_spread_bps": 1.0,
    "shares.min_half_spread": 0.005,
    "shares.impact_coefficient": 1.0,
    "shares.impact_exponent": 0.5,
    "shares.commission_per_share": 0.005,
    "shares.min_commission": 1.0,
    "shares.max_commission_pct": 0.01,
    "shares.window_days": 20,
    "max_drawdown": 0.25,
    "max_daily_loss": None,
    "position_stop_loss": None,
    "max_vega_per_vol_point": None,
}
"""Values a config got when it did not set the field (old ``[broker]`` and ``Params``
defaults; surface_arbitrage's ``max_vega`` default 5000 is in :data:`OLD_SET`)."""

OLD_SET = {
    "directional_overlay_spx2021.toml": {"max_drawdown": 0.25},
    "ml_spreads_spx2017.toml": {},
    "ml_spreads_spy2021.toml": {"commission_per_contract": 0.65},
    "ou_pairs_ewa_ewc.toml": {
        "max_drawdown": 0.25,
        "position_stop_loss": 0.10,
        "shares.half_spread_bps": 2.0,
    },
    "ou_pairs_gld_gdx.toml": {"max_drawdown": 0.25, "position_stop_loss": 0.10},
    "ou_pairs_ko_pep.toml": {"max_drawdown": 0.25, "position_stop_loss": 0.10},
    "skew_dislocation_spx2019.toml": {"max_drawdown": 0.10, "max_daily_loss": 0.03},
    "surface_arbitrage_spx2019.toml": {"max_vega_per_vol_point": 5000.0},
    "term_structure_slope_spx2019.toml": {"max_drawdown": 0.10, "max_daily_loss": 0.03},
    "vol_dislocation_spx2021.toml": {},
    "vol_of_vol_spx2019.toml": {},
    "vrp_harvest_spx2019.toml": {},
    "vrp_harvest_spy2021.toml": {"commission_per_contract": 0.65},
    "zero_dte_straddle.toml": {},
    "zero_dte_straddle_shared.toml": {},
    "zero_dte_straddle_spx2019.toml": {},
    "zero_dte_straddle_spx2019_next.toml": {},
}
"""What each shipped config set before the migration (anything else: :data:`OLD_DEFAULTS`)."""


def _effective(name: str) -> dict[str, object]:
    config = load_config(CONFIGS / name)
    costs, risk = config.costs, config.risk
    out: dict[str, object] = {
        k: getattr(costs, k)
        for k in (
            "commission_per_contract",
            "slippage_spread_fraction",
            "settlement_fee_per_contract",
            "hedge_half_spread",
            "hedge_commission_per_share",
        )
    }
    out |= {f"shares.{k}": v for k, v in costs.shares.model_dump().items()}
    out |= risk.model_dump()
    return out


def test_every_shipped_config_is_in_the_reference() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.toml")) == sorted(OLD_SET)


@pytest.mark.parametrize("name", sorted(OLD_SET))
def test_shipped_configs_keep_their_costs_and_limits(name: str) -> None:
    expected = {**OLD_DEFAULTS, **OLD_SET[name]}
    assert _effective(name) == expected


@pytest.mark.parametrize("name", sorted(OLD_SET))
def test_shipped_configs_hand_the_plugin_the_same_numbers(name: str) -> None:
    """The plugin built by the runner gets ``config.costs`` / ``config.risk`` apart from its
    parameters, and the broker params from ``[costs]``; its risk layer gets the same limits."""
    config = load_config(CONFIGS / name)
    expected = {**OLD_DEFAULTS, **OLD_SET[name]}
    cls = get_strategy(config.strategy.name)
    plugin = cls(
        fixed=config.strategy.params,
        broker=config.costs.options_broker_params(),
        costs=config.costs,
        risk=config.risk,
    )
    assert plugin.broker_params == {
        "commission_per_contract": expected["commission_per_contract"],
        "slippage_spread_fraction": expected["slippage_spread_fraction"],
        "settlement_fee_per_contract": expected["settlement_fee_per_contract"],
    }
    rc = plugin.risk.risk_config()
    assert (rc.max_drawdown, rc.max_daily_loss) == (
        expected["max_drawdown"],
        expected["max_daily_loss"],
    )
    vega = expected["max_vega_per_vol_point"]
    assert rc.max_abs_vega == (None if vega is None else 100.0 * vega)  # $ per 1.00 of vol
    assert not set(config.strategy.params) & set(COST_AND_RISK_KEYS)


def test_build_plugin_passes_costs_and_risk(monkeypatch) -> None:
    """``build_plugin`` hands the plugin ``config.costs`` / ``config.risk`` apart from its
    parameters (``prepare`` stubbed: no data needed to check the wiring)."""
    config = load_config(CONFIGS / "ou_pairs_ewa_ewc.toml")
    cls = get_strategy("ou_pairs")
    monkeypatch.setattr(cls, "prepare", lambda self, data, grid: None)
    plugin = build_plugin(config, {"leg_y": None, "leg_x": None})
    assert plugin.costs is config.costs and plugin.risk is config.risk
    assert plugin.costs.shares.half_spread_bps == 2.0
    assert plugin.risk.position_stop_loss == 0.10
    assert "half_spread_bps" not in plugin.fixed


def test_plugin_defaults_when_not_given() -> None:
    plugin = get_strategy("vrp_harvest")()
    assert plugin.costs == CostsConfig()
    assert plugin.risk == RiskLimits()
    assert plugin.broker_params == {
        "commission_per_contract": 1.0,
        "slippage_spread_fraction": 0.5,
        "settlement_fee_per_contract": 0.0,
    }
    # broker params follow the costs when only the costs are given
    costs = CostsConfig(commission_per_contract=0.65, slippage_by_root={"SPY": 0.3})
    plugin = get_strategy("vrp_harvest")(costs=costs)
    assert plugin.broker_params["commission_per_contract"] == 0.65
    assert plugin.broker_params["slippage_by_root"] == {"SPY": 0.3}
    # surface_arbitrage's own default limit: $5,000 of book vega per vol point
    assert get_strategy("surface_arbitrage")().risk.max_vega_per_vol_point == 5000.0


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_strategy_parameter_is_a_cost_or_a_limit(name: str) -> None:
    params = STRATEGIES[name].Params
    assert not set(params.model_fields) & set(COST_AND_RISK_KEYS)
    assert params.tunable <= set(params.model_fields)
    assert STRATEGIES[name].risk_limits <= set(RiskLimits.model_fields)


def test_risk_config_units_and_stop_rule() -> None:
    """Vega cap: $50 per vol point is $5,000 per 1.00 of vol; the tighter stop wins."""
    limits = RiskLimits(max_vega_per_vol_point=50.0, position_stop_loss=0.4)
    rc = limits.risk_config(stop_loss=0.5)
    assert rc.max_abs_vega == 5000.0 and rc.stop_loss == 0.4
    assert RiskLimits().risk_config(stop_loss=0.5).stop_loss == 0.5
    assert RiskLimits(position_stop_loss=0.1).risk_config().stop_loss == 0.1
    assert RiskLimits().risk_config().stop_loss is None


def test_share_cost_kwargs_feed_the_cost_function() -> None:
    """[costs.shares] is the keyword set of share_trade_cost: 1,000 shares at $50, 2 bp half
    spread, no impact: spread 1000 * max(50 * 2e-4, 0.005) = $10, commission max(1000 * 0.005,
    1) = $5 (cap 1% of $50,000 not binding)."""
    from brokers.share_costs import share_trade_cost

    kw = ShareCostConfig(half_spread_bps=2.0, impact_coefficient=0.0).trade_cost_kwargs()
    cost = share_trade_cost(1000, 50.0, daily_vol=0.01, adv=1e6, **kw)
    assert (cost.spread, cost.impact, cost.commission) == pytest.approx((10.0, 0.0, 5.0))


# -- load-time errors ----------------------------------------------------------------------------
SKEW = (CONFIGS / "skew_dislocation_spx2019.toml").read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


def test_searching_a_cost_fails_with_the_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = SKEW.replace(
        "[strategy.search_space]\n",
        "[strategy.search_space]\nhedge_half_spread = { low = 0.0, high = 0.1 }\n",
    )
    _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config("x.toml")
    assert str(err.value) == (
        "x.toml: strategy.search_space.hedge_half_spread: not tunable "
        "(costs and risk limits are fixed by the config)"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "max_drawdown = { low = 0.05, high = 0.5 }",
            "strategy.search_space.max_drawdown: not tunable (costs and risk limits are fixed",
        ),
        (
            "commission_per_contract = { low = 0.0, high = 1.0 }",
            "strategy.search_space.commission_per_contract: not tunable (costs and risk limits",
        ),
        (
            'root = { choices = ["SPXW", "SPX"] }',
            "strategy.search_space.root: not tunable (fixed by skew_dislocation; set it in "
            "[strategy.params])",
        ),
    ],
)
def test_searching_a_fixed_field_fails(tmp_path: Path, line: str, expected: str) -> None:
    text = SKEW.replace("[strategy.search_space]\n", f"[strategy.search_space]\n{line}\n")
    with pytest.raises(ConfigError, match="not tunable") as err:
        load_config(_write(tmp_path, text))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_cost_in_strategy_params_names_its_new_place(tmp_path: Path) -> None:
    text = SKEW.replace("[strategy.params]\n", "[strategy.params]\nhedge_half_spread = 0.02\n")
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert str(err.value).endswith(
        "strategy.params.hedge_half_spread: a cost or risk limit, not a parameter: set "
        "costs.hedge_half_spread"
    )


def test_broker_aliases_fill_costs(tmp_path: Path) -> None:
    text = SKEW.replace("[costs]", "[costs_old]").replace(
        'kind = "backtest"\n',
        'kind = "backtest"\ncommission_per_contract = 0.7\nsettlement_fee_per_contract = 0.1\n',
    )
    text = text[: text.index("[costs_old]")] + text[text.index("[risk]") :]
    config = load_config(_write(tmp_path, text))
    assert config.costs.commission_per_contract == 0.7
    assert config.costs.settlement_fee_per_contract == 0.1
    both = SKEW.replace('kind = "backtest"\n', 'kind = "backtest"\ncommission_per_contract = 0.7\n')
    with pytest.raises(ConfigError, match=r"broker\.commission_per_contract: also set as costs"):
        load_config(_write(tmp_path, both))


def test_a_limit_the_strategy_does_not_enforce_is_refused(tmp_path: Path) -> None:
    text = SKEW.replace("[risk]", "[risk]\nmax_vega_per_vol_point = 100.0")
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert str(err.value).endswith(
        "risk.max_vega_per_vol_point: not enforced by strategy skew_dislocation (it enforces: "
        "max_daily_loss, max_drawdown)"
    )
