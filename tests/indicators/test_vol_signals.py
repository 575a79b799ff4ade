"""Vol-of-vol, IV rank/percentile and VRP signals against plain pandas/numpy references."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from indicators.vol_signals import (
    IVRank,
    IVRankIndicator,
    VolOfVol,
    VolOfVolIndicator,
    VRPIndicator,
    VRPZScore,
    iv_rank_percentile,
    past_zscore_nb,
    vrp_signals,
    vvix_signals,
)

N = 400


@pytest.fixture(scope="module")
def series() -> tuple[pd.Series, pd.Series, pd.Series]:
    rng = np.random.default_rng(7)
    idx = pd.bdate_range("2020-01-01", periods=N)
    vvix = pd.Series(90.0 * np.exp(np.cumsum(rng.normal(0, 0.05, N))), index=idx)
    shock = rng.normal(0, 0.01, N)
    atm_iv = pd.Series(0.18 * np.exp(np.cumsum(3.0 * shock + 0.01 * rng.normal(size=N))), index=idx)
    forecast = pd.Series(0.15 + 0.02 * np.sin(np.arange(N) / 30.0), index=idx)
    return vvix, atm_iv, forecast


def test_vvix_changes_and_corr_match_pandas(series) -> None:
    vvix, atm_iv, _ = series
    out = vvix_signals(vvix, atm_iv, periods=1, kind="diff", corr_window=21)
    ref_dv = vvix.diff()
    ref_di = atm_iv.diff()
    ref_corr = ref_dv.rolling(21).corr(ref_di)
    np.testing.assert_allclose(out["vvix"], vvix.to_numpy())
    np.testing.assert_allclose(out["vvix_change"], ref_dv, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out["atm_iv_change"], ref_di, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out["vvix_iv_corr"], ref_corr, atol=1e-10, equal_nan=True)
    assert out["vvix_iv_corr"].notna().sum() == N - 21

    log = vvix_signals(vvix, atm_iv, periods=5, kind="log", corr_window=30)
    ref = np.log(vvix).diff(5)
    np.testing.assert_allclose(log["vvix_change"], ref, atol=1e-14, equal_nan=True)
    ref_c = ref.rolling(30).corr(np.log(atm_iv).diff(5))
    np.testing.assert_allclose(log["vvix_iv_corr"], ref_c, atol=1e-10, equal_nan=True)


def test_iv_rank_and_percentile_match_numpy(series) -> None:
    _, atm_iv, _ = series
    w = 60
    out = iv_rank_percentile(atm_iv, w)
    lo = atm_iv.rolling(w).min()
    hi = atm_iv.rolling(w).max()
    np.testing.assert_allclose(
        out["iv_rank"], (atm_iv - lo) / (hi - lo), atol=1e-12, equal_nan=True
    )
    x = atm_iv.to_numpy()
    ref = np.full(N, np.nan)
    for t in range(w - 1, N):
        ref[t] = np.mean(x[t - w + 1 : t] < x[t])
    np.testing.assert_allclose(out["iv_percentile"], ref, atol=1e-12, equal_nan=True)
    assert out["iv_rank"].between(0, 1).sum() == N - w + 1


def test_vrp_zscore_uses_only_the_past(series) -> None:
    _, atm_iv, forecast = series
    vrp = atm_iv - forecast
    roll = vrp_signals(atm_iv, forecast, window=40)
    ref = (vrp - vrp.rolling(40).mean().shift(1)) / vrp.rolling(40).std().shift(1)
    np.testing.assert_allclose(roll["vrp"], vrp, rtol=1e-14)
    np.testing.assert_allclose(roll["vrp_zscore"], ref, atol=1e-9, equal_nan=True)

    exp = vrp_signals(atm_iv, forecast, window=0, min_periods=20)
    past = vrp.shift(1)
    ref_e = (vrp - past.expanding(20).mean()) / past.expanding(20).std()
    np.testing.assert_allclose(exp["vrp_zscore"], ref_e, atol=1e-9, equal_nan=True)
    assert exp["vrp_zscore"].first_valid_index() == vrp.index[20]


def test_expanding_zscore_skips_nothing_silently() -> None:
    x = np.array([1.0, 2.0, np.nan, 3.0, 4.0, 10.0])
    z = past_zscore_nb(x, 0, 2)
    # past of 4.0 is [1, 2, 3] (NaN not counted): mean 2, sd 1
    assert np.isnan(z[2])
    assert z[4] == pytest.approx(2.0)
    assert z[5] == pytest.approx((10 - 2.5) / np.std([1, 2, 3, 4], ddof=1))


def test_no_look_ahead(series) -> None:
    vvix, atm_iv, forecast = series
    k = 250
    full = pd.concat(
        [
            vvix_signals(vvix, atm_iv),
            iv_rank_percentile(atm_iv, 60),
            vrp_signals(atm_iv, forecast),
            vrp_signals(atm_iv, forecast, window=40).add_suffix("_roll"),
        ],
        axis=1,
    )
    cut = pd.concat(
        [
            vvix_signals(vvix[:k], atm_iv[:k]),
            iv_rank_percentile(atm_iv[:k], 60),
            vrp_signals(atm_iv[:k], forecast[:k]),
            vrp_signals(atm_iv[:k], forecast[:k], window=40).add_suffix("_roll"),
        ],
        axis=1,
    )
    pd.testing.assert_frame_equal(full.iloc[:k], cut)
    # scrambling the future changes nothing in the past
    rng = np.random.default_rng(1)
    iv2 = atm_iv.copy()
    iv2.iloc[k:] = rng.uniform(0.05, 0.9, N - k)
    again = vrp_signals(iv2, forecast)
    pd.testing.assert_frame_equal(again.iloc[:k], full[["vrp", "vrp_zscore"]].iloc[:k])


def test_bad_input_raises(series) -> None:
    vvix, atm_iv, forecast = series
    with pytest.raises(ValueError, match="corr_window"):
        vvix_signals(vvix, atm_iv, corr_window=2)
    with pytest.raises(ValueError, match="kind"):
        vvix_signals(vvix, kind="pct")
    with pytest.raises(ValueError, match="same index"):
        vvix_signals(vvix, atm_iv.iloc[1:])
    with pytest.raises(ValueError, match="window must be 0"):
        vrp_signals(atm_iv, forecast, window=1)
    with pytest.raises(TypeError):
        iv_rank_percentile(atm_iv.to_numpy(), 20)


def test_vectorbt_faces_match_api(series) -> None:
    vvix, atm_iv, forecast = series
    vov = VolOfVol.run(vvix, atm_iv, corr_window=[10, 21])
    ref = vvix_signals(vvix, atm_iv, corr_window=21)
    np.testing.assert_allclose(vov.corr[21].to_numpy(), ref["vvix_iv_corr"], equal_nan=True)
    ivr = IVRank.run(atm_iv, window=60)
    ref = iv_rank_percentile(atm_iv, 60)
    np.testing.assert_allclose(ivr.rank.to_numpy(), ref["iv_rank"], equal_nan=True)
    np.testing.assert_allclose(ivr.percentile.to_numpy(), ref["iv_percentile"], equal_nan=True)
    z = VRPZScore.run(atm_iv, forecast, window=[0, 40])
    np.testing.assert_allclose(
        z.zscore[40].to_numpy(),
        vrp_signals(atm_iv, forecast, window=40)["vrp_zscore"],
        equal_nan=True,
    )


class _Collect(bt.Strategy):
    def __init__(self) -> None:
        self.vov = VolOfVolIndicator(self.datas[0], self.datas[1], corr_window=21)
        self.ivr = IVRankIndicator(self.datas[1], window=60)
        self.vrp = VRPIndicator(self.datas[1], self.datas[2], window=0, min_periods=20)
        self.rows: list[tuple[float, ...]] = []

    def next(self) -> None:
        self.rows.append(
            (self.vov.corr[0], self.ivr.rank[0], self.ivr.percentile[0], self.vrp.zscore[0])
        )


@pytest.mark.parametrize("runonce", [True, False])
def test_backtrader_faces_match_api(series, runonce: bool) -> None:
    vvix, atm_iv, forecast = series
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    for s in (vvix, atm_iv, forecast):
        frame = pd.DataFrame({c: s for c in ("open", "high", "low", "close")})
        cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(_Collect)
    strat = cerebro.run()[0]
    got = np.array(strat.rows)
    start = N - len(got)  # first bar where every indicator's minimum period is met
    ref = pd.concat(
        [
            vvix_signals(vvix, atm_iv)["vvix_iv_corr"],
            iv_rank_percentile(atm_iv, 60),
            vrp_signals(atm_iv, forecast)["vrp_zscore"],
        ],
        axis=1,
    ).to_numpy()[start:]
    np.testing.assert_allclose(got, ref, atol=1e-12, equal_nan=True)
