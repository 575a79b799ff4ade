"""In-sample trials per second with ``[optimize] engine = "vectorbt"`` against ``"backtrader"``.

Usage::

    python benchmarks/bench_sweep.py [--bt-trials 8] [--vec-trials 200]
        [--shared-run [both|vectorbt|backtrader]] [--no-rates]

Run from the repository root (the configs name ``../shared/data`` relative to it). One run prints:

* **trials/s** of ``zero_dte_straddle`` (``experiments/configs/zero_dte_straddle.toml``: arch's
  S&P 500 and VIX, 504-session training windows) and ``ou_pairs``
  (``ou_pairs_gld_gdx.toml``: GLD/GDX 2006-2019, 504-session windows, needs ``../shared/data``),
  each engine on the same prepared plugin and the same random parameter sets from the config's
  search space, cycling through the folds' training windows; the ratio (issue 15's target is
  >= 20x). The vectorized engine's first call (numba compilation or cache load, and the
  per-plugin tables: margin requirements, cost-model inputs) is timed apart and not in the rate.
  ``ou_pairs`` trials the kernel does not replay run through backtrader and are counted
  (``fallbacks``), inside the rate. ``vectorbt/s`` is the steady state (a second pass over the
  same sets); ``cold vec/s`` the first pass, which also builds the tables a study shares across
  trials (``ou_pairs``: Leung-Li / Bertram levels per formation and the feed lines, one set per
  searched (formation, health, levels) key; the backtrader trials, timed last, reuse the levels
  that pass cached, which flatters backtrader);
* with ``--shared-run``: the wall time of ``volsuite run experiments/configs/
  zero_dte_straddle_shared.toml`` (SPX/VIX 1995-2026, 20 trials per fold, no MLflow) with each
  engine, results written to a temporary folder (several minutes with backtrader).

Not a pytest test; numbers depend on the machine and its load (run on a quiet one).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "experiments" / "configs"


def _prepared(name: str) -> tuple[Any, Any, float]:
    from experiments.config import load_config
    from experiments.runner import build_plugin, load_data

    config = load_config(CONFIGS / name)
    t0 = time.perf_counter()
    data, _ = load_data(config)
    plugin = build_plugin(config, data)
    return plugin, config, time.perf_counter() - t0


def _param_sets(plugin: Any, config: Any, n: int, seed: int) -> list[Any]:
    import optuna

    from experiments.walkforward import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[Any] = []
    while len(out) < n:
        values = {**config.strategy.params, **suggest(study.ask(), config.strategy.search_space)}
        try:
            out.append(plugin.Params(**values))
        except ValueError:
            continue
    return out


def trial_rates(name: str, bt_trials: int, vec_trials: int) -> dict[str, float]:
    """Trials per second of each engine on config ``name`` (module docstring)."""
    from experiments.metrics import summary
    from experiments.walkforward import make_folds

    plugin, config, prep = _prepared(name)
    folds = make_folds(plugin.trading_days(), config.walkforward)
    cash = float(config.experiment.initial_cash)
    sets = _param_sets(plugin, config, max(bt_trials, vec_trials) + 1, seed=2024)
    windows = [folds[(k * 7) % len(folds)] for k in range(len(sets))]

    t0 = time.perf_counter()
    plugin.check_vector_engine()
    w = windows[-1]
    plugin.vector_backtest(sets[-1], w.train_start, w.train_end, cash=cash)
    warm = time.perf_counter() - t0

    def vec_pass() -> float:
        t0 = time.perf_counter()
        for p, f in zip(sets[:vec_trials], windows, strict=False):
            vec = plugin.vector_backtest(p, f.train_start, f.train_end, cash=cash)
            summary(vec.returns)
        return time.perf_counter() - t0

    cold = vec_pass()  # builds the per-key tables (ou_pairs: levels, feed lines) on the way
    vec_time = vec_pass()  # steady state: every table of the search space built

    t0 = time.perf_counter()
    for p, f in zip(sets[:bt_trials], windows, strict=False):
        res = plugin.backtest(p, f.train_start, f.train_end, cash=cash)
        summary(res.returns, res.trades)
    bt_time = time.perf_counter() - t0
    engine = getattr(plugin, "_vector_engine", None)
    return {
        "prepare_s": prep,
        "warmup_s": warm,
        "train_days": float(config.walkforward.train_days),
        "bt_rate": bt_trials / bt_time,
        "vec_rate": vec_trials / vec_time,
        "vec_cold_rate": vec_trials / cold,
        "fallbacks": float(getattr(engine, "fallbacks", 0)),
    }


def shared_run(engine: str) -> float:
    """Wall seconds of ``run_experiment`` on ``zero_dte_straddle_shared.toml`` with ``engine``
    (no MLflow; results in a temporary folder)."""
    from experiments.runner import run_experiment

    text = (CONFIGS / "zero_dte_straddle_shared.toml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results"
        text = re.sub(r"\[broker\]", f'[tracking]\nresults_dir = "{out}"\n\n[broker]', text)
        path = Path(tmp) / "zero_dte_straddle_shared.toml"
        path.write_text(text)
        t0 = time.perf_counter()
        run_experiment(path, engine=engine, track=False)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bt-trials", type=int, default=8, help="backtrader trials per strategy")
    ap.add_argument("--vec-trials", type=int, default=200, help="vectorbt trials per strategy")
    ap.add_argument(
        "--shared-run",
        nargs="?",
        const="both",
        choices=["both", "vectorbt", "backtrader"],
        help="also time volsuite run on zero_dte_straddle_shared.toml with both engines (or one)",
    )
    ap.add_argument(
        "--no-rates", action="store_true", help="skip the trials/s part (only --shared-run)"
    )
    args = ap.parse_args()
    from data_feeds.errors import VolsuiteError
    os.chdir(REPO)
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(
        f"bench_sweep: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'strategy (config)':30s} {'backtrader/s':>12s} {'vectorbt/s':>11s} {'ratio':>7s} "
        f"{'cold vec/s':>10s} {'cold ratio':>10s} {'warm-up s':>9s} {'fallbacks':>9s}"
    )
    for name in () if args.no_rates else ("zero_dte_straddle.toml", "ou_pairs_gld_gdx.toml"):
        try:
            r = trial_rates(name, args.bt_trials, args.vec_trials)
        except (FileNotFoundError, VolsuiteError) as exc:  # no ../shared/data
            print(f"{name:30s} skipped: {exc}")
            continue
        print(
            f"{name:30s} {r['bt_rate']:12.3f} {r['vec_rate']:11.2f} "
            f"{r['vec_rate'] / r['bt_rate']:6.1f}x {r['vec_cold_rate']:10.2f} "
            f"{r['vec_cold_rate'] / r['bt_rate']:9.1f}x {r['warmup_s']:9.2f} "
            f"{r['fallbacks']:9.0f}"
        )
    if args.shared_run:
        both = ("vectorbt", "backtrader")
        for engine in both if args.shared_run == "both" else (args.shared_run,):
            print(f"zero_dte_straddle_shared.toml engine={engine}: {shared_run(engine):.1f} s wall")


if __name__ == "__main__":
    main()
