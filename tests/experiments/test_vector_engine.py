"""The vectorized trial engine (``[optimize] engine = "vectorbt"``, docs/engines.md).

Parity: for random parameter sets drawn from each shipped config's search space, an in-sample
trial scored by the numba kernel has the objective (and daily returns, trade count) of the
backtrader Cerebro with the options broker / BackBroker, to 1e-9 relative. The reference is the
backtrader path itself (the engine must reproduce it), run on the same prepared plugin. Five sets
per config run by default, fifty under ``-m slow``.

Look-ahead: truncating the kernels' inputs after a session leaves every earlier value unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from brokers.share_costs import share_trade_cost
from experiments.config import OptimizeConfig, load_config
from experiments.metrics import OBJECTIVES, summary
from experiments.runner import build_plugin, load_data
from experiments.walkforward import make_folds, run_walkforward, suggest
from strategies.base import StrategyPlugin
from strategies.fast import VectorEngineUnsupported
from strategies.fast.ou_pairs import pair_values_nb, share_cost_nb
from strategies.fast.zero_dte import straddle_values_nb

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "experiments" / "configs"
RTOL = 1e-9


@contextmanager
def _at_repo_root() -> Iterator[None]:
    """Configs name ``../shared/data`` relative to the repository root (as ``volsuite run``)."""
    here = Path.cwd()
    os.chdir(REPO_ROOT)
    try:
        yield
    finally:
        os.chdir(here)


def _prepared(name: str, chains: object | None = None) -> tuple[StrategyPlugin, object]:
    """The config's plugin, prepared as ``volsuite run`` prepares it (chains from ``chains``
    instead of the config's store, so nothing is written to ``results/``)."""
    with _at_repo_root():
        config = load_config(CONFIGS / name)
        if chains is not None:
            config.data.chains = None
        data, _ = load_data(config)
        if chains is not None:
            data["chains"] = chains
        return build_plugin(config, data), config


def _param_sets(plugin: StrategyPlugin, config: object, n: int, seed: int) -> list:
    """``n`` valid parameter sets drawn at random from the config's search space (Optuna's
    RandomSampler, as a study draws them)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    while len(out) < n:
        trial = study.ask()
        values = {**config.strategy.params, **suggest(trial, config.strategy.search_space)}
        try:
            out.append(plugin.Params(**values))
        except ValueError:  # pydantic: an invalid combination (the study prunes it too)
            continue
    return out


def _assert_parity(plugin: StrategyPlugin, config: object, n: int, seed: int = 7) -> int:
    """Every set on a fold's training window (cycling through the folds): the vectorized trial
    equals the Cerebro. Returns the trades seen (a parity check on idle trials proves little)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = make_folds(plugin.trading_days(), config.walkforward)
    objective = OBJECTIVES[config.optimize.objective]
    cash = float(config.experiment.initial_cash)
    traded = 0
    for k, params in enumerate(_param_sets(plugin, config, n, seed)):
        fold = folds[(k * 7) % len(folds)]
        ref = plugin.backtest(params, fold.train_start, fold.train_end, cash=cash)
        vec = plugin.vector_backtest(params, fold.train_start, fold.train_end, cash=cash)
        assert vec.returns.index.equals(ref.returns.index), (k, params)
        np.testing.assert_allclose(vec.value.to_numpy(), ref.value.to_numpy(), rtol=RTOL)
        want, got = objective(ref.returns), objective(vec.returns)
        assert got == pytest.approx(want, rel=RTOL, abs=1e-12), (k, params, fold.index)
        assert vec.trades == summary(ref.returns, ref.trades)["trades"], (k, params)
        traded += vec.trades
    return traded


# -- zero_dte_straddle on the VIX proxy (arch's bundled S&P 500 / VIX: always runs) ------------
@pytest.fixture(scope="module")
def proxy() -> tuple[StrategyPlugin, object]:
    return _prepared("zero_dte_straddle.toml")


def test_proxy_parity_5(proxy) -> None:
    assert _assert_parity(*proxy, n=5) > 0


@pytest.mark.slow
def test_proxy_parity_50(proxy) -> None:
    assert _assert_parity(*proxy, n=50, seed=11) > 0


def test_walkforward_vectorbt_equals_backtrader(proxy) -> None:
    """Whole studies: same trials' values, best parameters and out-of-sample account."""
    plugin, config = proxy
    folds = make_folds(plugin.trading_days(), config.walkforward)[:2]
    runs = {}
    for engine in ("backtrader", "vectorbt"):
        opt = OptimizeConfig(trials=3, objective="sharpe", sampler="tpe", seed=3, engine=engine)
        runs[engine] = run_walkforward(
            plugin,
            fixed=config.strategy.params,
            space=config.strategy.search_space,
            wf=config.walkforward,
            opt=opt,
            cash=100_000.0,
            storage=None,
            study_prefix=f"parity-{engine}",
            folds=folds,
        )
    bt_run, vec_run = runs["backtrader"], runs["vectorbt"]
    for a, b in zip(bt_run.folds, vec_run.folds, strict=True):
        assert a.best_params == b.best_params
        assert b.best_value == pytest.approx(a.best_value, rel=RTOL)
        assert b.in_sample["trades"] == a.in_sample["trades"]
        pd.testing.assert_frame_equal(a.trial_returns, b.trial_returns, rtol=RTOL)
    pd.testing.assert_series_equal(bt_run.oos_returns, vec_run.oos_returns)


# -- zero_dte_straddle on SPX/VIX 1995-2026 and on real 2019 SPXW 0DTE quotes -------------------
@pytest.fixture(scope="module")
def shared_proxy(shared_data: Path) -> tuple[StrategyPlugin, object]:
    return _prepared("zero_dte_straddle_shared.toml")


@pytest.mark.shared_data
def test_shared_proxy_parity_5(shared_proxy) -> None:
    assert _assert_parity(*shared_proxy, n=5) > 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_shared_proxy_parity_50(shared_proxy) -> None:
    assert _assert_parity(*shared_proxy, n=50, seed=11) > 0


@pytest.fixture(scope="module")
def chain_0dte(chain_store_2019) -> tuple[StrategyPlugin, object]:
    return _prepared("zero_dte_straddle_spx2019.toml", chains=chain_store_2019)


@pytest.mark.shared_data
def test_chain_0dte_parity_5(chain_0dte) -> None:
    assert _assert_parity(*chain_0dte, n=5) > 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_chain_0dte_parity_50(chain_0dte) -> None:
    assert _assert_parity(*chain_0dte, n=50, seed=11) > 0


@pytest.mark.shared_data
def test_chain_next_expiry_is_refused(chain_store_2019) -> None:
    plugin, _ = _prepared("zero_dte_straddle_spx2019_next.toml", chains=chain_store_2019)
    with pytest.raises(VectorEngineUnsupported, match="overnight"):
        plugin.check_vector_engine()


# -- ou_pairs on the shipped pairs ---------------------------------------------------------------
@pytest.fixture(scope="module")
def gld_gdx(shared_data: Path) -> tuple[StrategyPlugin, object]:
    return _prepared("ou_pairs_gld_gdx.toml")


@pytest.mark.shared_data
def test_ou_pairs_parity_5(gld_gdx) -> None:
    assert _assert_parity(*gld_gdx, n=5, seed=1) > 0


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name", ["ou_pairs_gld_gdx.toml", "ou_pairs_ko_pep.toml", "ou_pairs_ewa_ewc.toml"]
)
def test_ou_pairs_parity_50(shared_data: Path, name: str) -> None:
    plugin, config = _prepared(name)
    _assert_parity(plugin, config, n=50, seed=11)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "extra",
    [
        {"vol_target": 0.1},
        {"vol_target": 0.3, "gross_fraction": 0.9, "level_method": "bertram_return"},
        {"gross_fraction": 1.0, "level_method": "bertram_sharpe", "stop_loss_std": 3.0},
        {"allow_long": False, "level_method": "bertram_return"},
    ],
)
def test_ou_pairs_parity_off_the_shipped_grid(gld_gdx, extra: dict) -> None:
    """Volatility-managed sizing, a full-equity gross, one side only: still the Cerebro."""
    plugin, config = gld_gdx
    params = plugin.Params(**{**config.strategy.params, **extra})
    fold = make_folds(plugin.trading_days(), config.walkforward)[1]
    ref = plugin.backtest(params, fold.train_start, fold.train_end, cash=1e5)
    vec = plugin.vector_backtest(params, fold.train_start, fold.train_end, cash=1e5)
    np.testing.assert_allclose(vec.value.to_numpy(), ref.value.to_numpy(), rtol=RTOL)
    assert vec.trades == summary(ref.returns, ref.trades)["trades"]


# -- the kernels: look-ahead, cost formula, refusal ----------------------------------------------
def test_share_cost_kernel_equals_share_trade_cost() -> None:
    rng = np.random.default_rng(5)
    kw = {
        "half_spread_bps": 2.0,
        "min_half_spread": 0.005,
        "impact_coefficient": 0.142,
        "impact_exponent": 0.6,
        "commission_per_share": 0.005,
        "min_commission": 1.0,
        "max_commission_pct": 0.01,
    }
    for _ in range(200):
        q = float(rng.integers(-5000, 5000))
        price, vol, adv = rng.uniform(1, 300), rng.uniform(0.001, 0.05), rng.uniform(1e4, 1e7)
        want = share_trade_cost(q, price, daily_vol=vol, adv=adv, **kw).total
        got = share_cost_nb(q, price, vol, adv, *kw.values())
        assert got == pytest.approx(want, rel=1e-15, abs=0.0)


def _straddle_inputs(plugin: StrategyPlugin, params: object, i0: int, i1: int) -> list:
    from strategies.fast.zero_dte import engine_for

    eng = engine_for(plugin)
    short, long_ = eng.requirements(params.contracts)
    forecast = plugin.forecast_series(params).to_numpy(float)
    col, sl = eng.col, slice(i0, i1)
    return [
        forecast[sl], col["market_iv"][sl], col["tte"][sl], col["horizon_sessions"][sl],
        eng.expiry_ord[sl], int(eng.ordinals[-1]), eng.tradable[sl], col["strike"][sl],
        col["call_bid"][sl], col["call_ask"][sl], col["put_bid"][sl], col["put_ask"][sl],
        eng.settle[sl], short[sl], long_[sl],
    ]  # fmt: skip


def test_straddle_kernel_has_no_look_ahead(proxy) -> None:
    """Values up to session m depend on inputs up to m only: cutting the arrays after m, or
    replacing every later input by garbage, leaves them unchanged."""
    plugin, config = proxy
    params = plugin.Params(
        **{**config.strategy.params, "short_threshold": 0.05, "long_threshold": 0.05}
    )
    i1 = len(plugin.underlying)
    i0 = i1 - 1000  # arch's VIX starts in 2014
    rest = (True, 0.05, 0.05, True, True, 1, 0.5, 1.0, 0.0, 100)
    full = _straddle_inputs(plugin, params, i0, i1)
    values, trades, err, _ = straddle_values_nb(1e5, *full, *rest)
    assert err == 0 and trades > 100
    for m in (10, 400, 999):
        cut = [a[:m] if isinstance(a, np.ndarray) else a for a in full]
        past, _, _, _ = straddle_values_nb(1e5, *cut, *rest)
        np.testing.assert_array_equal(past, values[:m])
        noisy = [
            np.concatenate([a[:m], a[m:][::-1]]) if isinstance(a, np.ndarray) else a
            for a in full
        ]
        again, _, _, _ = straddle_values_nb(1e5, *noisy, *rest)
        np.testing.assert_array_equal(again[:m], values[:m])


@pytest.mark.shared_data
def test_pair_kernel_has_no_look_ahead(gld_gdx) -> None:
    plugin, config = gld_gdx
    from strategies.fast.ou_pairs import engine_for
    from strategies.ou_pairs import LEVEL_COLUMNS

    eng = engine_for(plugin)
    params = plugin.Params(**{**config.strategy.params, "level_method": "bertram_return"})
    days = plugin.trading_days()
    start, end = days[0], days[min(len(days) - 1, 1500)]
    lines = plugin.feed_lines(params, start, end, 1e5)
    pos = eng.index.get_indexer(lines.index)
    (yo, yc), (xo, xc) = eng.prices["y"], eng.prices["x"]
    (yv, ya), (xv, xa) = eng.vol_adv["y"], eng.vol_adv["x"]
    cost_ok = np.isfinite(yv[pos]) & (ya[pos] > 0) & np.isfinite(xv[pos]) & (xa[pos] > 0)
    arrays = [
        yo[pos], yc[pos], xo[pos], xc[pos], yv[pos], ya[pos], xv[pos], xa[pos], cost_ok,
        lines["spread"].to_numpy(float), lines["beta"].to_numpy(float),
        lines["healthy"].to_numpy(float), lines["tradable"].to_numpy(float),
        np.ascontiguousarray(lines[list(LEVEL_COLUMNS)].to_numpy(float)),
        np.full(len(pos), np.nan),
    ]  # fmt: skip
    rest = (eng.cost_params, True, True, 0.5, 0.0, 21, 0.2, *eng.risk)
    values, trades, fallback = pair_values_nb(1e5, *arrays, *rest)
    assert fallback == 0 and trades > 3
    for m in (30, 700, len(pos) - 5):
        cut = [a[:m] for a in arrays]
        past, _, _ = pair_values_nb(1e5, *cut, *rest)
        np.testing.assert_array_equal(past, values[:m])


def test_engine_is_refused_for_a_strategy_without_kernel() -> None:
    from strategies.vrp_harvest import VrpHarvest

    with pytest.raises(VectorEngineUnsupported, match="backtrader"):
        VrpHarvest(fixed={}).check_vector_engine()


def test_optimize_engine_default_and_values() -> None:
    assert OptimizeConfig().engine == "backtrader"
    assert OptimizeConfig(engine="vectorbt").engine == "vectorbt"
    with pytest.raises(ValueError, match="engine"):
        OptimizeConfig(engine="zipline")


def test_cli_engine_flag_is_validated_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from experiments.cli import app

    results = tmp_path / "results"
    text = (CONFIGS / "zero_dte_straddle.toml").read_text()
    config = tmp_path / "zds.toml"
    tracking = f'[tracking]\nresults_dir = "{results}"\n\n[broker]'
    config.write_text(text.replace("[broker]", tracking))
    out = CliRunner().invoke(app, ["run", str(config), "--engine", "zipline"])
    assert out.exit_code == 2
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--engine" in lines[0] and "vectorbt" in lines[0]
    assert not results.exists()


@pytest.mark.shared_data
def test_chain_features_are_computed_once_per_snapshot(chain_store_2019, monkeypatch) -> None:
    """A SnapshotCache keeps each snapshot's chain-feed features (every chain strategy's trial
    builds the same feed): the rows equal a fresh computation and a second feed computes none."""
    import importlib

    from data_feeds import SnapshotCache

    cf = importlib.import_module("data_feeds.chain_feed")  # the package exports a function too

    args = ("SPX", ["SPXW"], "2019-05-01", "2019-05-31", 7.0)
    plain = cf.chain_features(chain_store_2019, *args)
    cache = SnapshotCache(chain_store_2019)
    first = cf.chain_features(cache, *args)
    calls: list[int] = []
    real = cf.snapshot_features

    def spy(*a: object, **k: object) -> object:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(cf, "snapshot_features", spy)
    again = cf.chain_features(cache, *args)
    other = cf.chain_features(cache, "SPX", ["SPXW"], "2019-05-01", "2019-05-31", 14.0)
    pd.testing.assert_frame_equal(first, plain)
    pd.testing.assert_frame_equal(again, plain)
    assert again.attrs["report"].missing == plain.attrs["report"].missing
    assert len(calls) == len(other) > 0  # a new target_dte is computed, the old one is not
