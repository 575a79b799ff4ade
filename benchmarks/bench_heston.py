"""Heston: our calibration and pricer against QuantLib, measured in the same run.

Usage::

    python benchmarks/bench_heston.py [--repeat 5] [--maturities 20] [--strikes 100]
                                      [--n-quantlib 400]

Part 1 -- QuantLib's DAX calibration example (``test-suite/hestonmodel.cpp``,
``testDAXCalibration``; data in ``tests/pricing/heston_dax_data.py``): QuantLib's own
calibration (``HestonModel`` + ``HestonModelHelper(ImpliedVolError)`` +
``LevenbergMarquardt(1e-8, 1e-8, 1e-8)``, engines ``AnalyticHestonEngine(model, 64)`` as in
the test and ``COSHestonEngine(model, 12, 75)``) against :func:`pricing.calibrate_heston`
from the same start point and from our default start; wall time of the calibration call
(best of ``--repeat``, after one warm-up call that loads the numba cache), SSE in vol
points squared (reference 177.2), and the speed ratio.

Part 2 -- pricing throughput: ``--maturities`` x ``--strikes`` European options (whole-day
maturities 7 days .. 2 years, strikes 60 %..160 % of spot, out-of-the-money rights) priced by
one :func:`pricing.heston_price` call, against a Python loop over QuantLib's
``AnalyticHestonEngine`` (default Gauss-Laguerre order 144, and adaptive Gauss-Lobatto 1e-14,
the accuracy reference) on a random subsample of ``--n-quantlib`` options, extrapolated;
options per second, ratios, and the largest difference to the Gauss-Lobatto prices.

Absolute timings depend on the machine and its load; the ratios are measured in the same run.
This is not a pytest test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np
import QuantLib as ql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "pricing"))

import heston_dax_data as dax  # noqa: E402

from pricing import HestonParams, calibrate_heston, heston_price, ql_heston_price  # noqa: E402

SPOT = 100.0
RATE = 0.03
DIV = 0.01
PARAMS = HestonParams(v0=0.04, kappa=1.5, theta=0.05, sigma=0.6, rho=-0.7)


def _best(fn, repeat: int) -> tuple[float, object]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_dax(repeat: int) -> None:
    print("== DAX calibration (QuantLib testDAXCalibration, 104 options, reference SSE 177.2) ==")
    d = dax.option_arrays()
    start = HestonParams(**dax.START)

    def ours_from_ql_start():
        return calibrate_heston(
            d["strike"], d["tte"], d["forward"], d["implied_vol"], initial=start
        )

    def ours_default():
        return calibrate_heston(d["strike"], d["tte"], d["forward"], d["implied_vol"])

    ours_from_ql_start()  # warm-up: loads the numba cache
    t_ours, fit = _best(ours_from_ql_start, repeat)
    t_default, fit_default = _best(ours_default, repeat)
    rows = []
    for engine in ("analytic64", "cos"):
        runs = [dax.ql_calibrate(engine) for _ in range(repeat)]
        rows.append((engine, min(r.seconds for r in runs), runs[0]))
    print(f"{'calibration':<44}{'seconds':>10}{'SSE':>12}{'evals':>7}{'QL/ours':>9}")
    for engine, seconds, run in rows:
        label = {
            "analytic64": "QuantLib LM, AnalyticHestonEngine(64)",
            "cos": "QuantLib LM, COSHestonEngine(12, 75)",
        }[engine]
        print(f"{label:<44}{seconds:>10.4f}{run.sse:>12.4f}{'':>7}{'':>9}")
    t_ql = rows[0][1]
    print(
        f"{'ours LM, analytic Jacobian, QuantLib start':<44}{t_ours:>10.4f}"
        f"{fit.sse_vol_points:>12.4f}{fit.nfev:>7d}{t_ql / t_ours:>8.1f}x"
    )
    print(
        f"{'ours, default start (12 candidates) + LM':<44}{t_default:>10.4f}"
        f"{fit_default.sse_vol_points:>12.4f}{fit_default.nfev:>7d}{t_ql / t_default:>8.1f}x"
    )
    q = rows[0][2].params
    print(
        "parameters (v0, kappa, theta, sigma, rho): QuantLib "
        f"({q['v0']:.5f}, {q['kappa']:.4f}, {q['theta']:.5f}, {q['sigma']:.4f}, {q['rho']:.4f}); "
        f"ours ({fit.params.v0:.5f}, {fit.params.kappa:.4f}, {fit.params.theta:.5f}, "
        f"{fit.params.sigma:.4f}, {fit.params.rho:.4f}); Feller ratio {fit.feller_ratio:.3f}"
    )
    print(
        f"|SSE ours - SSE QuantLib(64)| = {abs(fit.sse_vol_points - rows[0][2].sse):.2e}; "
        f"|SSE ours - 177.2| = {abs(fit.sse_vol_points - dax.REFERENCE_SSE):.3f} (target <= 1.0); "
        f"speed ratio QuantLib/ours = {t_ql / t_ours:.1f}x (target >= 5x)"
    )


def bench_pricing(repeat: int, n_mat: int, n_strikes: int, n_ql: int, seed: int) -> None:
    print(f"\n== Pricing throughput ({n_mat} maturities x {n_strikes} strikes) ==")
    days = np.unique(np.geomspace(7, 730, n_mat).round().astype(int))
    strikes = np.linspace(60.0, 160.0, n_strikes)
    k = np.tile(strikes, days.size)
    t = np.repeat(days / 365.0, strikes.size)
    right = np.where(k >= SPOT, "C", "P")
    n = k.size
    heston_price(SPOT, k[:10], t[:10], RATE, DIV, PARAMS, right[:10])  # warm-up
    t_ours, ours = _best(lambda: heston_price(SPOT, k, t, RATE, DIV, PARAMS, right), repeat)
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=min(n_ql, n), replace=False)
    t0 = time.perf_counter()
    ql_fast = ql_heston_price(
        SPOT, k[idx], t[idx], RATE, DIV, PARAMS, right[idx], integration_order=144
    )
    t_fast = (time.perf_counter() - t0) * n / idx.size
    t0 = time.perf_counter()
    ql_ref = ql_heston_price(SPOT, k[idx], t[idx], RATE, DIV, PARAMS, right[idx])
    t_ref = (time.perf_counter() - t0) * n / idx.size
    big = ql_ref >= 1e-6 * SPOT
    rel = np.abs(ours[idx] - ql_ref)[big] / ql_ref[big]
    rel_fast = np.abs(ql_fast - ql_ref)[big] / ql_ref[big]
    print(f"{'pricer':<46}{'options/s':>14}{'ours is':>10}")
    print(f"{'ours, one numba call':<46}{n / t_ours:>14,.0f}{'':>10}")
    for label, seconds in (
        ("QuantLib AnalyticHestonEngine (Laguerre 144)", t_fast),
        ("QuantLib AnalyticHestonEngine (Lobatto 1e-14)", t_ref),
    ):
        print(f"{label:<46}{n / seconds:>14,.0f}{seconds / t_ours:>9.0f}x")
    print(
        f"accuracy vs Lobatto 1e-14 on {idx.size} options (price >= 1e-6 spot): ours max rel "
        f"{rel.max():.1e}, max abs {np.abs(ours[idx] - ql_ref).max():.1e}; Laguerre-144 max rel "
        f"{rel_fast.max():.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--maturities", type=int, default=20)
    parser.add_argument("--strikes", type=int, default=100)
    parser.add_argument("--n-quantlib", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, numba {numba.__version__} "
        f"({numba.get_num_threads()} threads), QuantLib {ql.__version__}\n"
    )
    bench_dax(args.repeat)
    bench_pricing(args.repeat, args.maturities, args.strikes, args.n_quantlib, args.seed)


if __name__ == "__main__":
    main()
