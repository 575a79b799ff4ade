"""Screenshots of every dashboard page, for a closing note or a review.

Usage::

    python benchmarks/dashboard_screens.py [--results results] [--out results/dashboard/screens]

Starts ``volsuite dashboard --headless`` on a free port over ``--results`` (run folders,
``optuna.db``, ``chains.duckdb``, ``paper/``), waits for ``/_stcore/health`` to answer ``ok``,
opens each page in Debian's headless Chromium (Playwright with ``executable_path``; nothing is
downloaded) and writes ``<out>/<page>.png``, printing the seconds each step took. This is not a
pytest test (``tests/experiments/test_dashboard.py`` drives the same code).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

from experiments.dashboard.screens import capture, serve


def main() -> None:
    """Serve, capture, print where the pictures are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("results/dashboard/screens"))
    parser.add_argument("--timeout", type=float, default=180.0)
    opts = parser.parse_args()
    t0 = time.perf_counter()
    with serve(opts.results.resolve(), timeout=opts.timeout) as base:
        print(f"healthy after {time.perf_counter() - t0:.1f} s at {base}")
        t1 = time.perf_counter()
        shots = capture(base, opts.out.resolve())
        print(f"{len(shots)} pages rendered in {time.perf_counter() - t1:.1f} s")
    for page, path in shots.items():
        print(f"{page:<13} {path}")


if __name__ == "__main__":
    main()
