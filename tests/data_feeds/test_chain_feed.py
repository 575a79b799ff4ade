"""The chain feed on six real SPX sessions (2019-05-01 .. 05-08) from a small in-memory source:
bars and lines against the raw parquet and the source's own snapshots, every backtrader mode,
one snapshot in memory, and no look-ahead."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import backtrader as bt
import duckdb
import numpy as np
import pandas as pd
import pytest

from data_feeds.chain_feed import (
    CHAIN_FEED_LINES,
    SnapshotSource,
    chain_features,
    chain_feed,
)
from data_feeds.chains import ChainSnapshot

pytestmark = pytest.mark.shared_data

CHAINS = "options/spx_chains_2019q2.parquet"
DAYS = ["2019-05-01", "2019-05-02", "2019-05-03", "2019-05-06", "2019-05-07", "2019-05-08"]


class ParquetSource:
    """A tiny :class:`SnapshotSource` over a few sessions of the parquet, held in memory.

    Column map as the chain store's: type call/put -> C/P, impliedvol -> vendor_implied_vol,
    delta/gamma -> vendor_*, vendor_theta/vega NaN, openinterest -> open_interest,
    underlying_last -> underlying_price; quote time 15:45 ET by default; every row is_liquid.
    ``where`` filters rows (SQL) to build broken sources; ``calls`` counts ``snapshot`` calls.
    """

    def __init__(self, path: Path, days: Sequence[str], where: str = "true") -> None:
        sql = f"""
            select quotedate, root, expiration, strike,
                   case type when 'call' then 'C' when 'put' then 'P' end as "right",
                   bid, ask, (bid + ask) / 2 as mid, "last", volume::double as volume,
                   openinterest::double as open_interest, impliedvol as vendor_implied_vol,
                   delta as vendor_delta, gamma as vendor_gamma,
                   cast(null as double) as vendor_theta, cast(null as double) as vendor_vega,
                   true as is_liquid, underlying_last
            from read_parquet(?)
            where quotedate in ({", ".join("?::timestamp" for _ in days)})
              and not is_market_holiday and ({where})
            order by quotedate, root, expiration, strike, "right"
        """
        with duckdb.connect() as con:
            rows = con.execute(sql, [str(path), *days]).df()
        self._days = {
            day.date(): g.drop(columns="quotedate").reset_index(drop=True)
            for day, g in rows.groupby("quotedate")
        }
        self.calls = 0

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        assert underlying == "SPX"
        return sorted(self._days)

    def snapshot(
        self,
        underlying: str,
        quote_date: dt.date,
        quote_time: dt.time | None = None,
        roots: Sequence[str] | None = None,
        liquid_only: bool = False,
        rate: float = 0.0,
    ) -> ChainSnapshot:
        self.calls += 1
        df = self._days[quote_date]
        if roots is not None:
            df = df[df["root"].isin(list(roots))]
        if liquid_only:
            df = df[df["is_liquid"]]
        when = pd.Timestamp.combine(quote_date, quote_time or dt.time(15, 45))
        return ChainSnapshot(
            underlying,
            when.tz_localize("America/New_York"),
            float(df["underlying_last"].iloc[0]),
            df.drop(columns="underlying_last").reset_index(drop=True),
            rate=rate,
            source="parquet-test",
        )


class TruncatedSource:
    """``source`` as it was known on ``upto``: later sessions neither listed nor served."""

    def __init__(self, source: ParquetSource, upto: dt.date) -> None:
        self.source, self.upto = source, upto

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        return [d for d in self.source.quote_dates(underlying, roots) if d <= self.upto]

    def snapshot(self, underlying, quote_date, *args, **kwargs) -> ChainSnapshot:
        if quote_date > self.upto:
            raise AssertionError(f"look-ahead: asked for {quote_date} on {self.upto}")
        return self.source.snapshot(underlying, quote_date, *args, **kwargs)


@pytest.fixture(scope="module")
def chains(shared_data: Path) -> Path:
    return shared_data / CHAINS


@pytest.fixture(scope="module")
def source(chains: Path) -> ParquetSource:
    return ParquetSource(chains, DAYS)


@pytest.fixture(scope="module")
def features(source: ParquetSource) -> pd.DataFrame:
    return chain_features(source, "SPX")


def _date(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def test_source_is_a_snapshot_source(source: ParquetSource) -> None:
    assert isinstance(source, SnapshotSource)


def test_bars_against_the_raw_file(chains: Path, features: pd.DataFrame) -> None:
    with duckdb.connect() as con:
        ref = con.execute(
            "select quotedate, any_value(underlying_last) s, list(distinct expiration) e "
            "from read_parquet(?) where quotedate between '2019-05-01' and '2019-05-08' "
            "group by 1 order by 1",
            [str(chains)],
        ).df()
    assert list(features.index) == [pd.Timestamp(f"{d} 15:45") for d in DAYS]  # naive ET
    assert features.index.tz is None
    np.testing.assert_array_equal(features["close"].to_numpy(), ref["s"].to_numpy())
    for col in ("open", "high", "low"):
        np.testing.assert_array_equal(features[col].to_numpy(), features["close"].to_numpy())
    # dte of the expiry nearest 30 days, by hand from the raw expiry lists (ties: earlier)
    for (_, row), (_, bar) in zip(ref.iterrows(), features.iterrows(), strict=True):
        dtes = sorted((e - row["quotedate"]).days for e in row["e"])
        hand = min(dtes, key=lambda x: (abs(x - 30), x))
        assert bar["dte_atm"] == hand
    assert features["dte_atm"].iloc[0] == 30  # 2019-05-01 -> SPXW 2019-05-31
    assert (features["risk_reversal_25d"] < 0).all()  # put skew every day
    assert features["atm_iv"].between(0.05, 0.4).all()
    assert features.attrs["report"].summary() == "SPX: 6 snapshots; every feature present"


def test_lines_are_the_snapshot_queries_and_near_the_vendor(
    source: ParquetSource, features: pd.DataFrame
) -> None:
    for day in DAYS:
        snap = source.snapshot("SPX", _date(day))
        bar = features.loc[pd.Timestamp(f"{day} 15:45")]
        near = snap.nearest_expiry(30)
        far = snap.nearest_expiry(60)
        root = "SPX" if near in snap.expiries("SPX") else "SPXW"
        far_root = "SPX" if far in snap.expiries("SPX") else "SPXW"
        assert bar["atm_iv"] == snap.atm_iv(near, root)
        assert bar["atm_straddle_mid"] == snap.straddle(near, root).mid
        assert bar["risk_reversal_25d"] == snap.risk_reversal_25d(near, root)
        assert bar["atm_term_slope"] == snap.atm_iv(far, far_root) - snap.atm_iv(near, root)
        # independent: the vendor's vols at the ATM strike
        k = snap.atm_strike(near, root)
        q = snap.quotes
        vendor = q.loc[
            (q["root"] == root) & (q["expiration"] == pd.Timestamp(near)) & (q["strike"] == k),
            "vendor_implied_vol",
        ]
        assert len(vendor) == 2
        assert bar["atm_iv"] == pytest.approx(vendor.mean(), abs=0.003)


def test_feature_root_restricts_the_expiries(source: ParquetSource) -> None:
    spx = chain_features(source, "SPX", feature_root="SPX", end="2019-05-01")
    assert len(spx) == 1
    assert spx["dte_atm"].iloc[0] == 16  # SPX monthly 2019-05-17


@pytest.mark.parametrize(
    ("preload", "runonce"), [(True, True), (True, False), (False, False)], ids=str
)
def test_strategy_sees_the_current_snapshot_in_every_mode(
    chains: Path, preload: bool, runonce: bool
) -> None:
    src = ParquetSource(chains, DAYS)
    feed = chain_feed(src, "SPX", rate=0.01)
    built_calls = src.calls
    assert built_calls == len(DAYS)  # the bar table read each snapshot once
    seen: list[tuple] = []

    class Probe(bt.Strategy):
        def next(self) -> None:
            snap = self.data.snapshot()
            assert self.data.snapshot() is snap  # cached for the bar
            seen.append(
                (
                    self.data.datetime.datetime(0),
                    snap.quote_time,
                    snap.rate,
                    self.data.atm_iv[0],
                    self.data.close[0],
                    snap.underlying_price,
                )
            )

    cerebro = bt.Cerebro(stdstats=False, preload=preload, runonce=runonce)
    cerebro.adddata(feed)
    cerebro.addstrategy(Probe)
    cerebro.run()
    assert len(seen) == len(DAYS)
    assert src.calls - built_calls == len(DAYS)  # one load per bar despite two calls
    for (bar_time, quote_time, rate, atm_iv, close, spot), day in zip(seen, DAYS, strict=True):
        ref = src.snapshot("SPX", _date(day), rate=0.01)
        assert quote_time == ref.quote_time == pd.Timestamp(f"{day} 15:45", tz="America/New_York")
        assert bar_time == dt.datetime.fromisoformat(f"{day} 15:45")
        assert rate == 0.01
        assert atm_iv == ref.atm_iv(ref.nearest_expiry(30), "SPXW")
        assert close == spot == ref.underlying_price
    cached = feed._chain_cache
    assert cached is not None and cached[0] == _date(DAYS[-1])  # only the last bar's snapshot


def test_no_look_ahead(source: ParquetSource, features: pd.DataFrame) -> None:
    for day in DAYS:
        known = chain_features(TruncatedSource(source, _date(day)), "SPX")
        assert known.index[-1] == pd.Timestamp(f"{day} 15:45")
        pd.testing.assert_frame_equal(known, features.loc[: known.index[-1]], check_freq=False)


def test_missing_features_are_nan_and_reported(chains: Path) -> None:
    # on 2019-05-02 the puts of every expiry are missing: no parity forward that day
    broken = ParquetSource(
        chains, DAYS[:3], where="not (quotedate = '2019-05-02' and type = 'put')"
    )
    feats = chain_features(broken, "SPX")
    bad = feats.loc[pd.Timestamp("2019-05-02 15:45")]
    for name in ("atm_iv", "atm_straddle_mid", "risk_reversal_25d", "atm_term_slope"):
        assert math.isnan(bad[name])
    assert bad["dte_atm"] == 29 and bad["close"] > 0
    assert feats.drop(index=bad.name)[list(CHAIN_FEED_LINES)].notna().all().all()
    report = feats.attrs["report"]
    assert [d for d, _ in report.missing["atm_iv"]] == [dt.date(2019, 5, 2)]
    assert "no forward" in report.missing["atm_iv"][0][1]
    assert report.missing["dte_atm"] == []
    assert "atm_iv: 1 NaN" in report.summary()


def test_bad_arguments(source: ParquetSource) -> None:
    with pytest.raises(ValueError, match="far_dte"):
        chain_features(source, "SPX", target_dte=30, far_dte=30)
    with pytest.raises(ValueError, match="no SPX snapshot between 2020-01-01"):
        chain_features(source, "SPX", start="2020-01-01")
    window = chain_features(source, "SPX", start="2019-05-02", end=dt.date(2019, 5, 6))
    assert [t.date() for t in window.index] == [_date(d) for d in DAYS[1:4]]
