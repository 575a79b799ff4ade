"""Cost of the risk layer inside backtests, against the same backtests without it.

Usage::

    python benchmarks/bench_risk.py [--repeat 3] [--data ../shared/data]

One run prints, each as the median wall time of ``--repeat`` runs and the ratio to its peer
measured in the same process:

* **option book**: a daily 7-DTE SPXW iron condor strategy on the real 2019 chains (56 sessions,
  chain store ingested once into a temporary folder; the chain feed is built outside the timer, so
  the time is the backtest: snapshot loads, fills, marks, settlement) as a plain ``OptionStrategy``
  (peer) and as ``OptionRiskMixin`` with every rule on (drawdown kill switch, daily loss, stop-loss
  per tag, vega/gamma caps, delta band) -- the overhead is ``risk_step`` (book greeks, tag ledger)
  and the order gate (combo greeks) per bar;
* **share costs**: a pairs-like share strategy on EWA (2006-2012 daily, ~1,500 bars) trading every
  five sessions, with backtrader's built-in percentage commission (peer) and with
  :class:`brokers.share_costs.ShareCostScheme` estimating volatility and volume from the past 20
  bars at each fill.

Not a pytest test; numbers depend on the machine (run on a quiet one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import backtrader as bt
import pandas as pd

from brokers import OptionsBroker
from brokers.share_costs import ShareCostScheme
from data_feeds import load_ohlc
from data_feeds.chain_feed import chain_feed
from data_feeds.chain_store import ChainStore
from data_feeds.chains import ChainSnapshot
from strategies.base import run_cerebro
from strategies.option_strategy import ComboSpec, OptionStrategy
from strategies.risk import OptionRiskMixin, RiskConfig

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONDOR = ComboSpec(kind="iron_condor", root="SPXW", target_dte=7, delta=0.15, width=25)
FULL = RiskConfig(
    max_drawdown=0.3,
    max_daily_loss=0.05,
    stop_loss=2.0,
    delta_band=500.0,
    max_abs_gamma=1e6,
    max_abs_vega=1e9,
)


class PlainCondors(OptionStrategy):
    def next_chain(self, snap: ChainSnapshot) -> None:
        self.open_combo(CONDOR, 1, tag=f"ic {snap.quote_date}")


class RiskCondors(OptionRiskMixin, OptionStrategy):
    def __init__(self) -> None:
        super().__init__()
        self.setup_risk(FULL)

    def next_chain(self, snap: ChainSnapshot) -> None:
        self.risk_step()
        self.open_combo(CONDOR, 1, tag=f"ic {snap.quote_date}")


class EveryFifth(bt.Strategy):
    def next(self) -> None:
        if len(self) > 25 and len(self) % 5 == 0:
            if self.position.size:
                self.close()
            else:
                self.buy(size=1_000)


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus")

    spx = load_ohlc(str(args.data / "index/spx_vix_spy_qqq_daily.csv"), root="SPX")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chains.duckdb"
        with ChainStore(path) as store:
            store.ingest(args.data / "options/spx_chains_2019q2.parquet", "vendor")
        store = ChainStore(path, read_only=True)
        try:

            def run(cls: type[bt.Strategy]) -> tuple[int, float]:
                # the feed (snapshot features of every session) is built outside the timer
                feed = chain_feed(store, "SPX", roots=["SPXW"], target_dte=7, far_dte=30)
                t0 = time.perf_counter()
                _, value, _ = run_cerebro(
                    cls, [feed], OptionsBroker(settlement_prices={"SPX": spx}), cash=1e6
                )
                return len(value), time.perf_counter() - t0

            n, _ = run(PlainCondors)  # warm-up (numba, caches)
            run(RiskCondors)
            plain = statistics.median(run(PlainCondors)[1] for _ in range(args.repeat))
            risky = statistics.median(run(RiskCondors)[1] for _ in range(args.repeat))
        finally:
            store.close()
    print(
        f"option book, {n} sessions: plain {plain:.3f} s, with risk layer {risky:.3f} s, "
        f"ratio {risky / plain:.2f}x ({(risky - plain) / n * 1e3:.2f} ms per bar)"
    )

    raw = pd.read_csv(args.data / "pairs/ewa_daily_2006_2012.csv")
    frame = pd.DataFrame(
        {
            "open": raw["op"].to_numpy(float),
            "high": raw["hi"].to_numpy(float),
            "low": raw["lo"].to_numpy(float),
            "close": raw["cl"].to_numpy(float),
            "volume": raw["vol"].to_numpy(float),
        },
        index=pd.to_datetime(raw["date"].astype(str), format="%Y%m%d"),
    )

    def shares(with_scheme: bool) -> float:
        cerebro = bt.Cerebro(stdstats=False)
        data = bt.feeds.PandasData(dataname=frame, openinterest=None, name="EWA")
        cerebro.adddata(data)
        cerebro.broker.setcash(1e6)
        if with_scheme:
            cerebro.broker.addcommissioninfo(ShareCostScheme(data=data), name="EWA")
        else:
            cerebro.broker.setcommission(commission=0.0005)
        cerebro.addstrategy(EveryFifth)
        cerebro.run()
        return cerebro.broker.getvalue()

    shares(True)
    peer = _median(lambda: shares(False), args.repeat)
    ours = _median(lambda: shares(True), args.repeat)
    print(
        f"share costs, {len(frame)} bars EWA: built-in % commission {peer:.3f} s, "
        f"ShareCostScheme {ours:.3f} s, ratio {ours / peer:.2f}x"
    )
    print(f"({dt.datetime.now():%Y-%m-%d %H:%M}, median of {args.repeat})")


if __name__ == "__main__":
    main()
