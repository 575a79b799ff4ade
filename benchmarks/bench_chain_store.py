"""Chain store speed: ingest throughput, re-ingest, snapshot latency -- against pandas peers.

Usage::

    python benchmarks/bench_chain_store.py [--file ../shared/data/options/spx_chains_2019q2.parquet]
                                           [--repeat 3]

One run prints

* **ingest**: rows per second of :meth:`ChainStore.ingest` of the 2019 SPX file (809,782 rows)
  into a fresh DuckDB file in a temporary folder -- read, parse, validate, liquidity flags,
  partition hashes, one transaction -- median of ``--repeat`` fresh stores;
* **re-ingest**: the same file again (every partition unchanged, nothing written), median;
* **snapshot latency**: :meth:`ChainStore.snapshot` (latest snapshot, all roots) of every
  quote date (56), ``--repeat`` passes after one warm-up pass; median and p95 in ms;
* **peers**, each producing the same rows of one quote date:
  ``pandas.read_parquet`` of the whole file once (its load time printed), then a boolean filter
  + sort per date (median/p95); ``pandas.read_parquet(filters=[quotedate == d])`` per date
  (pyarrow row-group pruning); a DuckDB query straight on the parquet file per date.

Row counts of the store's snapshot and of each peer are compared (they must match). This is not
a pytest test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from data_feeds.chain_store import ChainStore

DEFAULT_FILE = (
    Path(__file__).resolve().parents[1].parent / "shared/data/options/spx_chains_2019q2.parquet"
)


def _lat(fn: Callable[[object], int], days: list, repeat: int) -> tuple[float, float]:
    """Median and p95 latency (ms) of ``fn(day)`` over ``repeat`` passes of ``days``."""
    for d in days:  # warm-up pass
        fn(d)
    times = []
    for _ in range(repeat):
        for d in days:
            t0 = time.perf_counter()
            fn(d)
            times.append(time.perf_counter() - t0)
    arr = np.array(times) * 1e3
    return float(np.median(arr)), float(np.percentile(arr, 95))


def main() -> None:
    """Run the benchmark and print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path: Path = args.file
    if not path.is_file():
        raise SystemExit(f"{path} not found (the shared data folder is ../shared/data)")
    print(
        f"python {platform.python_version()}, duckdb {duckdb.__version__}, pandas "
        f"{pd.__version__}, {os.cpu_count()} CPUs, file {path.name}"
    )

    ingest_s, reingest_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            db = Path(tmp) / f"bench{i}.duckdb"
            with ChainStore(db) as store:
                t0 = time.perf_counter()
                rep = store.ingest(path, "vendor")
                ingest_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                again = store.ingest(path, "vendor")
                reingest_s.append(time.perf_counter() - t0)
                assert again.rows_added == 0 and again.rows_replaced == 0
        rows = rep.rows_read
        t_in = statistics.median(ingest_s)
        t_re = statistics.median(reingest_s)
        print(f"\ningest {rows:,} rows (fresh store, median of {args.repeat})")
        print(f"  ChainStore.ingest     {t_in:7.2f} s   {rows / t_in:12,.0f} rows/s")
        print(f"  re-ingest (unchanged) {t_re:7.2f} s   {rows / t_re:12,.0f} rows/s")
        print(
            f"  stored {rep.rows_added:,}, quarantined {rep.rows_quarantined:,} "
            f"({rep.quarantined_by_reason})"
        )

        with ChainStore(Path(tmp) / "bench0.duckdb", read_only=True) as store:
            days = store.quote_dates("SPX")

            def store_snapshot(d: object) -> int:
                return len(store.snapshot("SPX", d).quotes)

            med, p95 = _lat(store_snapshot, days, args.repeat)
            sizes = [len(store.snapshot("SPX", d).quotes) for d in days]

    t0 = time.perf_counter()
    full = pd.read_parquet(path)
    t_load = time.perf_counter() - t0
    qd = full["quotedate"].to_numpy()

    def pandas_filter(d: object) -> int:
        sel = full[qd == np.datetime64(pd.Timestamp(d))]
        sel = sel.sort_values(["root", "expiration", "strike", "type"])
        return len(sel)

    def pandas_pushdown(d: object) -> int:
        return len(pd.read_parquet(path, filters=[("quotedate", "==", pd.Timestamp(d))]))

    con = duckdb.connect()

    def duckdb_parquet(d: object) -> int:
        return len(
            con.execute(
                f"SELECT * FROM read_parquet('{path}') WHERE quotedate = ? "
                "ORDER BY root, expiration, strike, type",
                [pd.Timestamp(d).to_pydatetime()],
            ).fetchnumpy()["strike"]
        )

    peers = {}
    for name, fn in (
        ("pandas in-memory filter+sort", pandas_filter),
        ("pandas read_parquet(filters=)", pandas_pushdown),
        ("duckdb on the parquet file", duckdb_parquet),
    ):
        peers[name] = _lat(fn, days, args.repeat)
        counts = [fn(d) for d in days]
        assert counts == sizes, f"{name}: row counts differ from the store's snapshots"

    print(
        f"\nsnapshot latency over {len(days)} quote dates x {args.repeat} passes "
        f"({min(sizes):,}-{max(sizes):,} rows, median {int(np.median(sizes)):,})"
    )
    print(f"  {'method':34s} {'median ms':>10s} {'p95 ms':>10s}")
    print(f"  {'ChainStore.snapshot':34s} {med:10.2f} {p95:10.2f}   (ChainSnapshot, 16 columns)")
    for name, (m, p) in peers.items():
        print(f"  {name:34s} {m:10.2f} {p:10.2f}")
    print(f"  (pandas read_parquet of the whole file, once: {t_load:.2f} s)")


if __name__ == "__main__":
    main()
