"""Measure the bias of the VIX proxy of the 0DTE straddle against realized session variance.

Run: ``python benchmarks/proxy_bias.py`` (uses the arch data; adds the shared SPX/VIX file when
``../shared/data`` is present). Prints, per data set, the ratio of the proxy's per-session implied
variance ``(VIX_{t-1}/100)^2 / 252`` to the realized open-to-close, close-to-close and
Rogers-Satchell per-session variances (means over sessions). See docs/zero_dte_straddle.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_feeds import align_to_index, load_ohlc

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "index"


def measure(label: str, underlying, vix) -> None:
    aligned, _ = align_to_index(vix["close"], underlying.index)
    implied = (aligned.shift(1) / 100.0) ** 2 / 252.0
    o, h, lo, c = (underlying[k] for k in ("open", "high", "low", "close"))
    oc = np.log(c / o) ** 2
    cc = np.log(c / c.shift(1)) ** 2
    rs = np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)
    m = implied.notna() & cc.notna()
    print(
        f"{label}: {int(m.sum())} sessions {underlying.index[m][0].date()}.."
        f"{underlying.index[m][-1].date()}"
    )
    print(
        f"  proxy / open-to-close {implied[m].mean() / oc[m].mean():.3f}   "
        f"proxy / close-to-close {implied[m].mean() / cc[m].mean():.3f}   "
        f"proxy / Rogers-Satchell {implied[m].mean() / rs[m].mean():.3f}   "
        f"open-to-close share {oc[m].mean() / cc[m].mean():.3f}"
    )


if __name__ == "__main__":
    measure("builtin S&P 500 + VIX", load_ohlc("builtin:sp500"), load_ohlc("builtin:vix"))
    path = SHARED / "spx_vix_spy_qqq_daily.csv"
    if path.exists():
        measure("shared SPX + VIX", load_ohlc(path, root="SPX"), load_ohlc(path, root="VIX"))
    else:
        print(f"(skipped the shared data set: {path} not found)")
