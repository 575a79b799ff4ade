"""Implied vols at chain scale: pricing.implied_vol_chain against its peers, in one run.

Usage::

    python benchmarks/bench_implied_vol.py [--n 1000000] [--date 2019-05-15] [--store PATH]
        [--n-quantlib 20000] [--n-brentq 2000] [--n-accuracy 1000] [--repeat 3] [--seed 7]

Two option sets of ``--n`` options each:

* **real**: the 2019 SPX/SPXW chain of ``--date`` (``../shared/data``, ingested into a temporary
  chain store unless ``--store`` names one), mids with the store's put-call-parity forwards and
  ACT/365 ``tte`` to the minute (0DTE included), rate 2.4 %, replicated to ``--n`` rows. It
  keeps the real mix: ~10 % of the mids are at or below intrinsic (status 1), deep wings,
  one-sided quotes;
* **synthetic**: forwards 100..5000, ``tte`` log-uniform from one minute to 2 years (10 % at
  one minute), vols 0.05..1.0, strikes -3..+3 standard deviations from the forward, calls and
  puts, prices from :func:`pricing.bs_price`.

For each set one run prints implied vols per second and the ratio to the new kernel (2
threads) of:

* ``pricing.implied_vol_chain`` (this issue) with 1 and 2 threads (``numba.set_num_threads``),
  best of ``--repeat`` timed calls after a warm-up (compilation and the one-off guess table
  excluded);
* the full Jäckel "Let's be rational" reference kernel of :mod:`pricing.black_scholes`
  (``implied_vol_1d_parallel_nb``; ``pricing.implied_vol`` itself is now the chain solver on the
  spot), 1 and 2 threads;
* ``py_vollib_vectorized`` (Black model) if it imports and runs (it is installed in the venv but
  is not a project dependency; with numba 0.68 its kernels fail to compile: skipped with the
  error);
* a Python loop over QuantLib's ``blackFormulaImpliedStdDev`` on a random subsample of
  ``--n-quantlib`` options, **extrapolated** to ``--n``;
* a Python loop over ``scipy.optimize.brentq`` on a ``math.erfc`` Black price on a subsample of
  ``--n-brentq`` options, **extrapolated** to ``--n``.

Accuracy: on ``--n-accuracy`` random contracts (synthetic mix plus deep wings) the exact
implied vol of each (double) price is found with 40-digit ``mpmath`` (if installed; otherwise
the vol that generated the price, which adds the price's own rounding). Printed: max absolute
vol error of every method over the well-conditioned contracts (condition number
``(P + DF F N(θd1) + DF K N(θd2))/vega <= 1e4``, see :mod:`pricing.iv_chain`) and
its failures (NaN) there. The machine is shared: absolute rates are noisy, the ratios
(measured back to back in the same run) are the comparison. This is not a pytest test.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import QuantLib as ql
from scipy.optimize import brentq
from scipy.stats import norm

from pricing import bs_price, parse_right
from pricing.black_scholes import implied_vol_1d_parallel_nb
from pricing.iv_chain import VEGA_NEGLIGIBLE_RATIO, guess_table, implied_vol_chain
from pricing.ql_helpers import black_implied_std_dev

RATE = 0.024
MINUTE = 1.0 / 525_600.0
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPX_2019 = DATA / "options" / "spx_chains_2019q2.parquet"


# --------------------------------------------------------------------------------------
# Option sets: arrays price, forward, strike, tte, right ('C'/'P'), rate
# --------------------------------------------------------------------------------------


def real_chain(n: int, date: str, store_path: str | None) -> dict[str, np.ndarray] | None:
    """The SPX chain of ``date`` with its parity forwards, replicated to ``n`` rows."""
    from data_feeds.chain_store import ChainStore

    if store_path is None and not SPX_2019.is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = store_path or str(Path(tmp) / "chains.duckdb")
        if store_path is None:
            t0 = time.perf_counter()
            with ChainStore(path) as store:
                store.ingest(SPX_2019, "vendor")
            took = time.perf_counter() - t0
            print(f"(ingested {SPX_2019.name} into a temporary store in {took:.1f} s)")
        with ChainStore(path, read_only=True) as store:
            snap = store.snapshot("SPX", date, rate=RATE)
            table = snap.with_implied_vols()
    print(
        f"real chain: SPX {date}, {len(table):,} quotes, {table['expiration'].nunique()} "
        f"expiries, tte {table['tte'].min() * 525600:.0f} minutes .. {table['tte'].max():.2f} years"
    )
    reps = -(-n // len(table))

    def rep(col: str) -> np.ndarray:
        return np.ascontiguousarray(np.tile(table[col].to_numpy(), reps)[:n])

    return {
        "price": rep("mid").astype(np.float64),
        "forward": rep("forward").astype(np.float64),
        "strike": rep("strike").astype(np.float64),
        "tte": rep("tte").astype(np.float64),
        "right": rep("right").astype("<U1"),
    }


def synthetic(n: int, seed: int, z_max: float = 3.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    forward = rng.uniform(100.0, 5000.0, n)
    tte = np.exp(rng.uniform(math.log(MINUTE), math.log(2.0), n))
    tte[rng.random(n) < 0.1] = MINUTE
    vol = rng.uniform(0.05, 1.0, n)
    strike = forward * np.exp(rng.uniform(-z_max, z_max, n) * vol * np.sqrt(tte))
    right = np.where(rng.random(n) < 0.5, "C", "P")
    price = bs_price(forward * np.exp(-RATE * tte), strike, tte, RATE, 0.0, vol, right)
    return {
        "price": price,
        "forward": forward,
        "strike": strike,
        "tte": tte,
        "right": right,
        "vol": vol,
    }


def condition_number(price, forward, strike, tte, vol, right) -> np.ndarray:
    """``(P + DF F N(θ d1) + DF K N(θ d2)) / vega`` (vol units), with scipy."""
    s = vol * np.sqrt(tte)
    d1 = np.log(forward / strike) / s + 0.5 * s
    theta = np.where(right == "C", 1.0, -1.0)
    df = np.exp(-RATE * tte)
    vega = df * forward * norm.pdf(d1) * np.sqrt(tte)
    sens = df * (forward * norm.cdf(theta * d1) + strike * norm.cdf(theta * (d1 - s)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (price + sens) / vega


# --------------------------------------------------------------------------------------
# Methods: each maps a set (dict of arrays) to implied vols
# --------------------------------------------------------------------------------------


def ours_new(d: dict[str, np.ndarray]) -> np.ndarray:
    return implied_vol_chain(
        d["price"], d["forward"], d["strike"], d["tte"], RATE, 0.0, d["right"], parallel=True
    ).vol


def ours_old(d: dict[str, np.ndarray]) -> np.ndarray:
    """The full Jäckel reference kernel (``pricing.implied_vol`` is now the chain solver)."""
    spot = d["forward"] * np.exp(-RATE * d["tte"])
    return implied_vol_1d_parallel_nb(
        np.ascontiguousarray(d["price"], dtype=np.float64),
        np.ascontiguousarray(spot, dtype=np.float64),
        np.ascontiguousarray(d["strike"], dtype=np.float64),
        np.ascontiguousarray(d["tte"], dtype=np.float64),
        np.array([RATE]),
        np.array([0.0]),
        parse_right(d["right"]),
    )[0]


def quantlib_loop(d: dict[str, np.ndarray]) -> np.ndarray:
    out = np.empty(d["price"].size)
    for i in range(out.size):
        t = float(d["tte"][i])
        std = black_implied_std_dev(
            d["right"][i], d["strike"][i], d["forward"][i], d["price"][i], math.exp(-RATE * t)
        )
        out[i] = std / math.sqrt(t) if t > 0 else math.nan
    return out


def _black_py(forward: float, strike: float, t: float, vol: float, theta: float) -> float:
    s = vol * math.sqrt(t)
    d1 = math.log(forward / strike) / s + 0.5 * s
    d2 = d1 - s
    return (
        math.exp(-RATE * t)
        * theta
        * (
            forward * 0.5 * math.erfc(-theta * d1 / math.sqrt(2.0))
            - strike * 0.5 * math.erfc(-theta * d2 / math.sqrt(2.0))
        )
    )


def brentq_loop(d: dict[str, np.ndarray]) -> np.ndarray:
    out = np.empty(d["price"].size)
    for i in range(out.size):
        f, k, t, p = (float(d[c][i]) for c in ("forward", "strike", "tte", "price"))
        theta = 1.0 if d["right"][i] == "C" else -1.0
        try:
            out[i] = brentq(
                lambda v, f=f, k=k, t=t, th=theta, p=p: _black_py(f, k, t, v, th) - p,
                1e-6,
                10.0,
                xtol=1e-15,
                maxiter=300,
            )
        except (ValueError, ZeroDivisionError):  # no sign change / t == 0
            out[i] = math.nan
    return out


def py_vollib(d: dict[str, np.ndarray]) -> np.ndarray:
    import py_vollib_vectorized as pvv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iv = pvv.vectorized_implied_volatility_black(
            d["price"],
            d["forward"],
            d["strike"],
            RATE,
            d["tte"],
            np.char.lower(d["right"]),
            return_as="numpy",
            on_error="ignore",
        )
    return np.asarray(iv, dtype=np.float64).reshape(-1)


def py_vollib_status() -> str | None:
    """None if py_vollib_vectorized imports and runs, else why not."""
    try:
        py_vollib(synthetic(8, 0))
    except Exception as exc:  # any import or numba compilation failure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{type(exc).__name__}: {first}"
    return None


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def best_time(func: Callable[[], object], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def subset(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v[idx]) for k, v in d.items()}


def run_set(name: str, d: dict[str, np.ndarray], args: argparse.Namespace, pvv_error: str | None):
    n = d["price"].size
    rng = np.random.default_rng(args.seed + 1)
    rows: list[tuple[str, int, float]] = []  # (method, options timed, IV/s)
    results: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # method -> (indices, vols)
    threads_before = numba.get_num_threads()
    small = subset(d, np.arange(min(n, 1000)))
    for label, func in (
        ("pricing.implied_vol_chain (new)", ours_new),
        ("Jäckel reference (implied_vol_1d_parallel_nb)", ours_old),
    ):
        func(small)  # compile / build the guess table outside the timing
        for threads in (1, 2):
            if threads > numba.config.NUMBA_NUM_THREADS:
                continue
            numba.set_num_threads(threads)
            t = best_time(lambda func=func: func(d), args.repeat)
            rows.append((f"{label}, {threads} thread{'s' * (threads > 1)}", n, n / t))
        numba.set_num_threads(threads_before)
        results[label] = (np.arange(n), func(d))
    if pvv_error is None:
        py_vollib(small)
        t = best_time(lambda: py_vollib(d), 1)
        rows.append(("py_vollib_vectorized (Black)", n, n / t))
        results["py_vollib_vectorized"] = (np.arange(n), py_vollib(d))
    for label, func, m in (
        ("QuantLib blackFormulaImpliedStdDev loop", quantlib_loop, args.n_quantlib),
        ("scipy brentq loop (math.erfc Black)", brentq_loop, args.n_brentq),
    ):
        idx = np.sort(rng.choice(n, size=min(m, n), replace=False))
        sub = subset(d, idx)
        start = time.perf_counter()
        vols = func(sub)
        rows.append((label + " *", idx.size, idx.size / (time.perf_counter() - start)))
        results[label] = (idx, vols)

    new_rows = {lbl: r for lbl, _, r in rows if lbl.startswith("pricing.implied_vol_chain")}
    ref_rate = new_rows.get("pricing.implied_vol_chain (new), 2 threads", rows[0][2])
    print(f"\n== {name}: {n:,} options ==")
    print(f"{'method':<46}{'timed on':>10}{'IV/s':>15}{'time for n':>12}{'new(2t) is':>12}")
    for label, timed, rate in rows:
        print(f"{label:<46}{timed:>10,}{rate:>15,.0f}{n / rate:>11.3f}s{ref_rate / rate:>11.1f}x")
    print("* timed on a random subsample, time for n extrapolated")
    new_vol = results["pricing.implied_vol_chain (new)"][1]
    valid = np.isfinite(new_vol)
    print(f"new kernel: {valid.mean():.1%} of the options have a vol (status 0)")
    for label, (idx, vols) in results.items():
        if label.startswith("pricing.implied_vol_chain"):
            continue
        both = valid[idx] & np.isfinite(vols)
        diff = np.abs(vols - new_vol[idx])[both]
        print(
            f"  max |{label} - new| where both have a vol: {diff.max():.2e} "
            f"({both.sum():,} options; median {np.median(diff):.1e})"
        )
    return ref_rate


def accuracy(args: argparse.Namespace, pvv_error: str | None) -> None:
    m = args.n_accuracy
    d = synthetic(m, args.seed + 2, z_max=6.0)
    kappa = condition_number(d["price"], d["forward"], d["strike"], d["tte"], d["vol"], d["right"])
    good = (kappa * VEGA_NEGLIGIBLE_RATIO <= 1.0) & (d["price"] > 1e-280)
    try:
        import mpmath
    except ImportError:
        mpmath = None
    if mpmath is not None:
        mpmath.mp.dps = 40
        exact = np.full(m, np.nan)
        start = time.perf_counter()
        for i in np.flatnonzero(good):
            f, k, t, p = (mpmath.mpf(float(d[c][i])) for c in ("forward", "strike", "tte", "price"))
            theta = 1 if d["right"][i] == "C" else -1
            df = mpmath.exp(-mpmath.mpf(RATE) * t)

            def black(v, f=f, k=k, t=t, th=theta, df=df):
                s = v * mpmath.sqrt(t)
                d1 = mpmath.log(f / k) / s + s / 2
                return df * th * (f * mpmath.ncdf(th * d1) - k * mpmath.ncdf(th * (d1 - s)))

            exact[i] = float(mpmath.findroot(lambda v, black=black, p=p: black(v) - p, d["vol"][i]))
        ref_name = (
            f"40-digit mpmath root of each double price ({time.perf_counter() - start:.1f} s)"
        )
    else:
        exact = d["vol"]
        ref_name = "the generating vol (mpmath not installed: includes the price's rounding)"
    methods: list[tuple[str, Callable[[dict[str, np.ndarray]], np.ndarray]]] = [
        ("pricing.implied_vol_chain (new)", ours_new),
        ("Jäckel reference (implied_vol_1d_parallel_nb)", ours_old),
        ("QuantLib blackFormulaImpliedStdDev", quantlib_loop),
        ("scipy brentq (math.erfc Black)", brentq_loop),
    ]
    if pvv_error is None:
        methods.append(("py_vollib_vectorized", py_vollib))
    print(f"\n== accuracy: {m:,} contracts (1 min..2 y, strikes to 6 sd) ==")
    print(f"{good.sum():,} well conditioned (condition number <= 1e4)")
    print(f"reference: {ref_name}")
    print(f"{'method':<40}{'max |vol - exact|':>20}{'NaN':>8}")
    for label, func in methods:
        vols = func(d)
        err = np.abs(vols - exact)[good]
        print(f"{label:<40}{np.nanmax(err):>20.2e}{int(np.isnan(err).sum()):>8}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--date", default="2019-05-15", help="real chain quote date")
    parser.add_argument("--store", default=None, help="existing chain store (skips ingest)")
    parser.add_argument("--n-quantlib", type=int, default=20_000)
    parser.add_argument("--n-brentq", type=int, default=2_000)
    parser.add_argument("--n-accuracy", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
        f"QuantLib {ql.__version__}, load average {os.getloadavg()[0]:.1f}"
    )
    t0 = time.perf_counter()
    guess_table()
    print(f"guess table built in {time.perf_counter() - t0:.2f} s (once per process)")
    pvv_error = py_vollib_status()
    if pvv_error:
        print(f"py_vollib_vectorized skipped: {pvv_error}")
    rates = {}
    real = real_chain(args.n, args.date, args.store)
    if real is None:
        print(f"real chain skipped: {SPX_2019} not found")
    else:
        rates["real SPX chain"] = run_set(f"real SPX chain {args.date}", real, args, pvv_error)
    rates["synthetic mix"] = run_set("synthetic mix", synthetic(args.n, args.seed), args, pvv_error)
    accuracy(args, pvv_error)
    print()
    for name, rate in rates.items():
        verdict = "meets" if rate >= 1e7 else "MISSES"
        print(f"target >= 10,000,000 IV/s on 2 threads, {name}: {rate:,.0f} ({verdict})")


if __name__ == "__main__":
    main()
