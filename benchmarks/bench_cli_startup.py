"""CLI startup time of ``volsuite --help``, ``list`` and ``paper stop``, before vs after.

Usage::

    python benchmarks/bench_cli_startup.py [--before /work/main] [--after .] [--repeat 3]

Each command runs as a fresh process ``python -m experiments.cli ...`` with the tree as working
directory and first on ``PYTHONPATH`` (so that tree's packages are imported), ``--repeat`` times;
the median and the minimum wall time in seconds are printed per tree and command. ``paper stop``
gets ``--flag-file`` in a temporary folder (no session runs there: it engages the switch and
returns). The ``before`` tree is any checkout without the lazy imports (e.g. the main branch), so
both numbers come from the same machine in the same minute. Target (issue 16): under 1.5 s. The
machine is shared: the minimum is the least disturbed run. This is not a pytest test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: dict[str, list[str]] = {
    "volsuite --help": ["--help"],
    "volsuite list": ["list"],
    "volsuite paper stop": ["paper", "stop", "--flag-file", "{tmp}/KILL", "--wait", "0"],
}


def time_command(tree: Path, args: list[str], repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` runs of ``python -m experiments.cli ARGS`` in ``tree``.

    Raises
    ------
    RuntimeError
        The command exited with a non-zero status (its stderr's last line is in the message).
    """
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="100")
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            argv = [a.replace("{tmp}", tmp) for a in args]
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "experiments.cli", *argv],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"{tree}: {' '.join(argv)} exited {proc.returncode}: {last}")
    return times


def main() -> None:
    """Print the before/after table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=Path("/work/main"))
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    trees = {"before": opts.before.resolve(), "after": opts.after.resolve()}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, repeat {opts.repeat}")
    for label, tree in trees.items():
        print(f"{label:>6}: {tree}")
    print(f"{'command':<22} {'tree':<7} {'median s':>9} {'min s':>7}")
    for name, args in COMMANDS.items():
        for label, tree in trees.items():
            if not (tree / "experiments" / "cli.py").exists():
                print(f"{name:<22} {label:<7} {'(no experiments/cli.py)':>17}")
                continue
            t = time_command(tree, args, opts.repeat)
            print(f"{name:<22} {label:<7} {statistics.median(t):9.2f} {min(t):7.2f}")


if __name__ == "__main__":
    main()
