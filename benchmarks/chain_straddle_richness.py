"""How rich the real SPXW ATM straddle is against its payoff (2019 snapshots).

See docs/zero_dte_straddle.md, "Market side: real chain quotes".

Run from the repository root after ingesting the 2019 file::

    volsuite ingest chains ../shared/data/options/spx_chains_2019q2.parquet --format vendor
    python benchmarks/chain_straddle_richness.py [--db results/chains.duckdb]

Prints, for the 0DTE and the next-expiry straddle of each quote date: the mean mid, the mean payoff
``|S_T - K|`` at the SPX close of expiry (SPXW PM settlement), their ratio, the ratio of squares
(variance terms) and the mean P&L of selling at the bid (index points per straddle).
"""

from __future__ import annotations

import argparse

from data_feeds import ChainStore, chain_market_table, load_ohlc

INDEX = "../shared/data/index/spx_vix_spy_qqq_daily.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="results/chains.duckdb")
    args = parser.parse_args()
    store = ChainStore(args.db, read_only=True)
    spx = load_ohlc(INDEX, root="SPX", start="2019-01-01", end="2019-07-31")
    print(
        f"{'straddle':>8} {'days':>5} {'mid':>7} {'payoff':>7} {'mid/pay':>8} {'var ratio':>9} "
        f"{'short@bid':>9}"
    )
    for expiry in ("0dte", "next"):
        table = chain_market_table(store, spx, expiry=expiry)
        ok = table[table["status"] == "ok"].dropna(subset=["settlement_price"])
        payoff = (ok["settlement_price"] - ok["strike"]).abs()
        mid = ok["straddle_mid"]
        print(
            f"{expiry:>8} {len(ok):>5} {mid.mean():>7.2f} {payoff.mean():>7.2f} "
            f"{mid.mean() / payoff.mean():>8.2f} {(mid**2).mean() / (payoff**2).mean():>9.2f} "
            f"{(ok['straddle_bid'] - payoff).mean():>9.2f}"
        )


if __name__ == "__main__":
    main()
