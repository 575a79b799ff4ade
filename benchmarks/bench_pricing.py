"""Implied-volatility throughput: pricing.implied_vol vs QuantLib vs scipy brentq.

Usage::

    python benchmarks/bench_pricing.py [--n 1000000] [--n-quantlib 20000] [--n-brentq 5000]

One run prints implied vols per second for

* our numba kernel on all ``n`` options, single-threaded and multi-threaded (``prange``),
  best of ``--repeat`` timed runs after a warm-up call (compilation excluded);
* a Python loop over ``ql.blackFormulaImpliedStdDev`` (QuantLib's fastest implied-vol route)
  on a random subsample of ``--n-quantlib`` options, extrapolated to ``n``;
* a Python loop over ``scipy.optimize.brentq`` on a ``math.erfc`` Black-Scholes price on a
  subsample of ``--n-brentq`` options, extrapolated to ``n``;

with the speed ratios, and the accuracy: max absolute difference to QuantLib on its
subsample and max absolute error against the true volatility, both where the vega is
non-negligible (vega >= 1e-4 x price, price >= 1e-8 x spot).

The sample: spot U(100, 5000), tte log-uniform from one minute to two years, vol
U(0.05, 1.0), strike ``F exp(z vol sqrt(T))`` with z U(-2.5, 2.5) (near- to far-from-the-money
in standard deviations), rate 4.5 %, dividend 1.3 %, calls and puts at random; prices from
:func:`pricing.bs_price`. This is not a pytest test.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import numba
import numpy as np
import QuantLib as ql
from scipy.optimize import brentq

from pricing import bs_greeks, bs_price, implied_vol
from pricing.ql_helpers import black_implied_std_dev

RATE = 0.045
DIV = 0.013
MINUTE = 1.0 / 525_600.0


def make_sample(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random options (see the module docstring) with their true vol and BSM price."""
    rng = np.random.default_rng(seed)
    spot = rng.uniform(100.0, 5000.0, n)
    tte = np.exp(rng.uniform(math.log(MINUTE), math.log(2.0), n))
    vol = rng.uniform(0.05, 1.0, n)
    forward = spot * np.exp((RATE - DIV) * tte)
    strike = forward * np.exp(rng.uniform(-2.5, 2.5, n) * vol * np.sqrt(tte))
    right = np.where(rng.random(n) < 0.5, "C", "P")
    price = bs_price(spot, strike, tte, RATE, DIV, vol, right)
    return {
        "spot": spot,
        "strike": strike,
        "tte": tte,
        "vol": vol,
        "right": right,
        "price": price,
    }


def best_time(func: Callable[[], object], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def ql_iv_loop(price, spot, strike, tte, right) -> np.ndarray:
    out = np.empty(price.size)
    for i in range(price.size):
        t = tte[i]
        forward = spot[i] * math.exp((RATE - DIV) * t)
        std = black_implied_std_dev(right[i], strike[i], forward, price[i], math.exp(-RATE * t))
        out[i] = std / math.sqrt(t)
    return out


def _bs_price_py(spot: float, strike: float, t: float, vol: float, theta: float) -> float:
    s = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (RATE - DIV) * t) / s + 0.5 * s
    d2 = d1 - s
    return theta * (
        spot * math.exp(-DIV * t) * 0.5 * math.erfc(-theta * d1 / math.sqrt(2.0))
        - strike * math.exp(-RATE * t) * 0.5 * math.erfc(-theta * d2 / math.sqrt(2.0))
    )


def brentq_iv_loop(price, spot, strike, tte, right) -> np.ndarray:
    out = np.empty(price.size)
    for i in range(price.size):
        theta = 1.0 if right[i] == "C" else -1.0
        args = (spot[i], strike[i], tte[i])

        def f(v: float, p=price[i], args=args, theta=theta) -> float:
            return _bs_price_py(*args, v, theta) - p

        try:
            out[i] = brentq(f, 1e-6, 10.0, xtol=1e-15, maxiter=200)
        except ValueError:  # no sign change: price outside what [1e-6, 10] spans
            out[i] = math.nan
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="options for our kernel")
    parser.add_argument("--n-quantlib", type=int, default=20_000, help="QuantLib subsample")
    parser.add_argument("--n-brentq", type=int, default=5_000, help="brentq subsample")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of our kernel")
    parser.add_argument("--seed", type=int, default=20240115)
    args = parser.parse_args(argv)

    n = args.n
    sample = make_sample(n, args.seed)
    price, spot, strike = sample["price"], sample["spot"], sample["strike"]
    tte, vol, right = sample["tte"], sample["vol"], sample["right"]
    vega = bs_greeks(spot, strike, tte, RATE, DIV, vol, right).vega
    relevant = (vega >= 1e-4 * price) & (price >= 1e-8 * spot)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
        f"QuantLib {ql.__version__}"
    )
    print(f"sample: {n:,} options, {relevant.sum():,} with non-negligible vega")

    # ---- ours ------------------------------------------------------------------------
    iv_args = (price, spot, strike, tte, RATE, DIV, right)
    implied_vol(*(a[:100] if isinstance(a, np.ndarray) else a for a in iv_args), parallel=False)
    implied_vol(*(a[:100] if isinstance(a, np.ndarray) else a for a in iv_args), parallel=True)
    t_serial = best_time(lambda: implied_vol(*iv_args, parallel=False), args.repeat)
    t_parallel = best_time(lambda: implied_vol(*iv_args, parallel=True), args.repeat)
    ours = implied_vol(*iv_args)
    err_true_ours = np.nanmax(np.abs(ours - vol)[relevant])
    nan_ours = int(np.isnan(ours[relevant]).sum())

    # ---- QuantLib subsample ----------------------------------------------------------
    rng = np.random.default_rng(args.seed + 1)
    idx_ql = rng.choice(n, size=min(args.n_quantlib, n), replace=False)
    sub = (price[idx_ql], spot[idx_ql], strike[idx_ql], tte[idx_ql], right[idx_ql])
    start = time.perf_counter()
    iv_ql = ql_iv_loop(*sub)
    t_ql = time.perf_counter() - start
    rel_ql = relevant[idx_ql] & np.isfinite(iv_ql)
    err_vs_ql = np.max(np.abs(ours[idx_ql] - iv_ql)[rel_ql])
    err_true_ql = np.max(np.abs(iv_ql - vol[idx_ql])[rel_ql])

    # ---- scipy brentq subsample ------------------------------------------------------
    idx_bq = rng.choice(n, size=min(args.n_brentq, n), replace=False)
    sub = (price[idx_bq], spot[idx_bq], strike[idx_bq], tte[idx_bq], right[idx_bq])
    start = time.perf_counter()
    iv_bq = brentq_iv_loop(*sub)
    t_bq = time.perf_counter() - start
    rel_bq = relevant[idx_bq] & np.isfinite(iv_bq)
    err_true_bq = np.max(np.abs(iv_bq - vol[idx_bq])[rel_bq])

    rate_serial = n / t_serial
    rate_parallel = n / t_parallel
    rate_ql = idx_ql.size / t_ql
    rate_bq = idx_bq.size / t_bq
    rows = [
        ("pricing.implied_vol, 1 thread", n, n, rate_serial, err_true_ours),
        (
            f"pricing.implied_vol, {numba.config.NUMBA_NUM_THREADS} threads",
            n,
            n,
            rate_parallel,
            err_true_ours,
        ),
        ("QuantLib blackFormulaImpliedStdDev loop", idx_ql.size, n, rate_ql, err_true_ql),
        ("scipy brentq loop (math.erfc price)", idx_bq.size, n, rate_bq, err_true_bq),
    ]
    print()
    print(f"{'method':<42}{'timed on':>10}{'IV/s':>14}{'time for n':>12}{'max |err|':>12}")
    for name, timed, total, rate, err in rows:
        print(f"{name:<42}{timed:>10,}{rate:>14,.0f}{total / rate:>11.3f}s{err:>12.2e}")
    print()
    print("time for n of QuantLib and brentq is extrapolated from their subsample")
    print("max |err| = max |IV - true vol| over options with non-negligible vega")
    print(
        f"speed-up of our multi-threaded kernel: {rate_parallel / rate_ql:,.0f}x QuantLib, "
        f"{rate_parallel / rate_bq:,.0f}x brentq "
        f"(single thread: {rate_serial / rate_ql:,.0f}x, {rate_serial / rate_bq:,.0f}x)"
    )
    print(
        f"max |ours - QuantLib| on the QuantLib subsample ({int(rel_ql.sum()):,} options): "
        f"{err_vs_ql:.2e}"
    )
    print(f"our NaNs among non-negligible-vega options: {nan_ours}")


if __name__ == "__main__":
    main()
