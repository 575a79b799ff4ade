"""SVI fit quality on every real 2019 SPX quote date: RMSE, arbitrage, time (design doc 004 bar).

Usage::

    python benchmarks/svi_quality.py [--file ../shared/data/options/spx_chains_2019q2.parquet]
                                     [--db STORE] [--model svi] [--keep STORE]

The 2019 SPX/SPXW file is ingested into a fresh chain store in a temporary folder (or ``--db``
names an existing store with those chains, which is then written to), then
:func:`experiments.surface_jobs.fit_surfaces` fits and stores every quote date. What is fitted per
root: every ``(root, expiry)`` is its own slice -- SPX (AM-settled monthlies, settling on the
opening print) and SPXW (PM-settled weeklies/end-of-month, settling on the close) have different
settlement times, hence different ``tte`` and forwards even on a shared expiration date; both
enter the calendar check in ``tte`` order (the SPX AM slice before the SPXW PM slice of the same
date).

Printed: one line per date (fitted/skipped expiries, fitted quotes, median / p95 / max RMSE in
vol points over the fitted (liquid OTM) quotes, arbitrage violations left after the repair and
found before it, slices repaired, the date's fit time) and a summary:

* the quality bar: median RMSE < 0.5 vol points and 95th percentile < 2 vol points over all
  fitted slices of all dates; zero arbitrage violations in the *stored* fits (read back from
  ``fitted_surfaces``);
* the same per root, skipped expiries by reason, fit time per date (median / max);
* for transparency, calendar crossings of the stored slices on the *whole* check grid
  (extrapolated wings beyond the quotes of either expiry included), which the stored counts
  leave out by design (``docs/surfaces.md``).

This is not a pytest test (it takes about a minute); ``tests/data_feeds/test_surfaces.py``
checks a few dates.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data_feeds.chain_store import ChainStore
from data_feeds.surfaces import load_fitted_surfaces
from experiments.surface_jobs import fit_surfaces
from pricing.arbitrage import check_svi_surface

DEFAULT_FILE = (
    Path(__file__).resolve().parents[1].parent / "shared/data/options/spx_chains_2019q2.parquet"
)


def _run(store: ChainStore, model: str) -> None:
    t0 = time.perf_counter()
    report = fit_surfaces(store, "all", model)
    wall = time.perf_counter() - t0
    summary = report.summary()
    print(
        f"{'date':10} {'fit/skip':>8} {'quotes':>6} {'med':>6} {'p95':>6} {'max':>6} "
        f"{'fly':>4} {'cal':>4} {'fly0':>6} {'cal0':>5} {'rep':>4} {'ms':>6}"
    )
    for s, row in zip(report.surfaces, summary.itertuples(), strict=True):
        print(
            f"{row.quote_date:%Y-%m-%d} {row.fitted:>4}/{row.skipped:<3} "
            f"{int(s.fitted['num_points'].sum()):>6} {row.median_rmse:6.3f} {row.p95_rmse:6.3f} "
            f"{row.max_rmse:6.3f} {row.butterfly:>4} {row.calendar:>4} "
            f"{row.butterfly_before:>6} {row.calendar_before:>5} {row.repaired:>4} "
            f"{1e3 * row.seconds:6.1f}"
        )
    slices = pd.concat([s.fitted.assign(quote_date=s.quote_time.date()) for s in report.surfaces])
    rmse = slices["rmse"].to_numpy(dtype=float)
    med, p95 = float(np.median(rmse)), float(np.percentile(rmse, 95))
    stored = load_fitted_surfaces(store, None, model)
    ok = stored[stored["status"] == "ok"]
    stored_viol = int(
        ok["butterfly_arbitrage_violations"].sum() + ok["calendar_arbitrage_violations"].sum()
    )
    not_passing = int((~ok["passes_no_arbitrage"].astype(bool)).sum())
    print()
    print(
        f"{len(report.surfaces)} quote dates, {len(slices)} fitted slices "
        f"({int(slices['num_points'].sum()):,} quotes), {len(stored) - len(ok)} expiries "
        f"skipped; total {wall:.1f} s"
    )
    print(
        f"RMSE (vol points) over all fitted slices: median {med:.3f}  p95 {p95:.3f}  "
        f"max {rmse.max():.3f}"
    )
    print(
        f"  bar median < 0.5: {'PASS' if med < 0.5 else 'FAIL'};  bar p95 < 2: "
        f"{'PASS' if p95 < 2.0 else 'FAIL'}"
    )
    print(
        f"stored fits: {len(ok)} ok slices, arbitrage violations {stored_viol}, not passing "
        f"{not_passing}  -> {'PASS' if stored_viol == 0 and not_passing == 0 else 'FAIL'}"
    )
    for root, g in slices.groupby("root"):
        r = g["rmse"].to_numpy(dtype=float)
        print(
            f"  {root:5} {len(g):5} slices  median {np.median(r):.3f}  p95 "
            f"{np.percentile(r, 95):.3f}  max {r.max():.3f}  repaired "
            f"{int((g['repair'].fillna('') != '').sum())}"
        )
    skipped = stored[stored["status"] != "ok"]["status"]
    if len(skipped):
        reasons = skipped.str.replace(r"^\d+ quotes", "N quotes", regex=True).value_counts()
        for reason, n in reasons.items():
            print(f"  skipped {n:4}  {reason}")
    before = int(summary["butterfly_before"].sum() + summary["calendar_before"].sum())
    print(
        f"violations found before repair: butterfly {int(summary['butterfly_before'].sum())}, "
        f"calendar {int(summary['calendar_before'].sum())} grid points ({before} total); "
        f"slices repaired {int(summary['repaired'].sum())}"
    )
    secs = summary["seconds"].to_numpy() * 1e3
    print(
        f"full-day fit (IV + forwards + fits + checks + repair), ms: median "
        f"{np.median(secs):.1f}  max {secs.max():.1f}  (see benchmarks/bench_surface.py)"
    )
    # calendar crossings on the whole grid (wings extrapolated beyond either expiry's quotes)
    strict = 0
    for s in report.surfaces:
        f = s.fitted
        rep = check_svi_surface(
            f[["svi_a", "svi_b", "svi_rho", "svi_m", "svi_sigma"]].to_numpy(dtype=float),
            f["tte"].to_numpy(dtype=float),
            s.k_grid,
        )
        strict += int(rep.calendar.sum())
    print(
        f"for information: calendar crossings on the whole check grid incl. extrapolated "
        f"wings: {strict} grid points (not counted as arbitrage, docs/surfaces.md)"
    )


def main() -> None:
    """Run the report and print it."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--db", type=Path, default=None, help="existing store with the chains")
    ap.add_argument("--model", default="svi", choices=["svi", "ssvi", "sabr", "heston"])
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, model {args.model}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if args.db is not None:
        with ChainStore(args.db) as store:
            _run(store, args.model)
        return
    if not args.file.is_file():
        raise SystemExit(f"{args.file} not found (the shared data folder is ../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        with ChainStore(Path(tmp) / "chains.duckdb") as store:
            t0 = time.perf_counter()
            store.ingest(args.file, "vendor")
            print(f"ingested {args.file.name} in {time.perf_counter() - t0:.1f} s")
            _run(store, args.model)


if __name__ == "__main__":
    main()
