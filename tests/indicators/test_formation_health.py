"""The pairs formation tables and the OU health gate (indicators.cointegration: engle_granger,
formation_table, apply_health) on a simulated cointegrated pair: the hedge ratio against
numpy's least squares, the formation window refitted by hand, look-ahead by truncation, and a
broken pair stopped by the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_feeds.calendar import TZ
from indicators.cointegration import apply_health, engle_granger, formation_table
from pricing.ou import simulate_ou


def _pair(n: int = 700, seed: int = 11, break_at: int | None = None) -> tuple[pd.Series, pd.Series]:
    """x a random walk around 50, y = 10 + 1.5 x + OU noise (half-life ~ 5 sessions); after
    ``break_at`` y follows its own random walk (the pair breaks)."""
    rng = np.random.default_rng(seed)
    x = 50.0 + np.cumsum(rng.normal(0, 0.5, n))
    noise = simulate_ou(n - 1, 0.0, 35.0, 4.0, rng=rng)
    y = 10.0 + 1.5 * x + noise
    if break_at is not None:
        y[break_at:] = y[break_at] + np.cumsum(rng.normal(0, 1.5, n - break_at))
    idx = pd.bdate_range("2015-01-02", periods=n, tz=TZ, name="date")
    return pd.Series(y, idx, name="y"), pd.Series(x, idx, name="x")


def test_engle_granger_beta_matches_least_squares() -> None:
    y, x = _pair(400)
    fit = engle_granger(y.to_numpy(), x.to_numpy())
    slope, intercept = np.polyfit(x.to_numpy(), y.to_numpy(), 1)
    assert fit.beta == pytest.approx(slope, rel=1e-10)
    assert fit.intercept == pytest.approx(intercept, rel=1e-8)
    assert fit.beta == pytest.approx(1.5, abs=0.05)
    assert fit.coint_pvalue < 0.01
    with pytest.raises(ValueError, match="at least 20"):
        engle_granger(np.ones(5), np.ones(5))


def test_formation_uses_only_the_window_before_it() -> None:
    y, x = _pair(700)
    table = formation_table(y, x, formation_days=252, refit_days=21)
    # row of session t: window ends the session before; refitted by hand from the raw data
    t = y.index[252 + 21 * 5]
    row = table.loc[t]
    lo = y.index.get_loc(t) - 252
    hand = engle_granger(y.to_numpy()[lo : lo + 252], x.to_numpy()[lo : lo + 252])
    assert row["beta"] == pytest.approx(hand.beta)
    assert row["formation_end"] == y.index[y.index.get_loc(t) - 1]
    assert row["spread"] == pytest.approx(y[t] - hand.beta * x[t])
    assert not table["healthy"].iloc[:252].any()
    assert (table["formation_id"].iloc[:252] == -1).all()


def test_formation_table_has_no_look_ahead() -> None:
    y, x = _pair(700)
    full = formation_table(y, x, formation_days=252, refit_days=21)
    cut = 500
    part = formation_table(y.iloc[:cut], x.iloc[:cut], formation_days=252, refit_days=21)
    pd.testing.assert_frame_equal(part, full.iloc[:cut])


def test_health_check_stops_a_broken_pair() -> None:
    y, x = _pair(900, break_at=500)
    table = formation_table(y, x, formation_days=252, refit_days=21, max_pvalue=0.05)
    forms = table.drop_duplicates("formation_id").iloc[1:]
    early = forms.loc[forms["formation_end"] < y.index[480]]
    late = forms.loc[forms["formation_start"] > y.index[520]]
    assert early["healthy"].all()
    assert not late["healthy"].any()
    assert late["health_reason"].str.contains("cointegration|half-life|OU fit").all()
    # the limits can be changed without refitting
    loose = apply_health(table, max_pvalue=1.0, max_half_life_days=1e9, max_half_life_drift=1e9)
    assert loose["healthy"].sum() > table["healthy"].sum()
    again = apply_health(table, max_pvalue=0.05, max_half_life_days=126, max_half_life_drift=3)
    pd.testing.assert_series_equal(again["healthy"], table["healthy"])
