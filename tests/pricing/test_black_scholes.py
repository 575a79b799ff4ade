"""Tests of pricing.black_scholes against independent references.

References used: put-call parity and the no-arbitrage bounds (closed-form identities
computed here), central finite differences of the price, QuantLib's ``blackFormula`` and
the true volatility used to generate a price (round trip). Nothing is compared with a
stored output of the code under test.

"Negligible vega" (round trip): an option whose vega (per 1.00 vol) is below 1e-4 of its
price, or whose price is below 1e-280 (numerically zero). Outside that set a price
rounding error of a few ulps moves the implied vol by less than ~1e-12, so the round trip is
held to 1e-10 absolute in vol.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from pricing import (
    IV_ABOVE_UPPER_BOUND,
    IV_BAD_INPUT,
    IV_BELOW_INTRINSIC,
    IV_OK,
    bs_greeks,
    bs_price,
    implied_vol,
    implied_vol_status,
    ql_black_price,
    straddle_price,
)
from pricing.black_scholes import (
    CALL,
    PUT,
    bs_greeks_nb,
    bs_price_nb,
    bs_vega_nb,
    implied_vol_1d_nb,
    implied_vol_1d_parallel_nb,
    implied_vol_nb,
    implied_vol_status_nb,
    norm_cdf_nb,
    norm_ppf_nb,
    normalised_black_otm_nb,
    normalised_implied_vol_otm_nb,
    normalised_vega_nb,
    parse_right,
    straddle_price_nb,
)

RATE = 0.045
DIV = 0.013
MINUTE = 1.0 / 525_600.0
DAY = 1.0 / 365.0


def _grid(spots, moneyness, ttes, vols):
    """Flat arrays over the full product (both rights)."""
    s, m, t, v, r = np.meshgrid(spots, moneyness, ttes, vols, [0, 1], indexing="ij")
    s = s.ravel()
    right = np.where(r.ravel() == 0, "C", "P")
    return s, s * m.ravel(), t.ravel(), v.ravel(), right


@pytest.fixture(scope="module")
def wide_grid():
    """Spot 100 and 4500, moneyness 0.5..1.5 plus a dense ±5% 0DTE band, tte 1 min..2 y."""
    moneyness = np.unique(np.concatenate([np.linspace(0.5, 1.5, 21), np.linspace(0.95, 1.05, 21)]))
    ttes = np.array([1, 5, 60, 390]) * MINUTE
    ttes = np.concatenate([ttes, np.array([1, 7, 30, 365, 730]) * DAY])
    vols = np.array([0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0])
    return _grid([100.0, 4500.0], moneyness, ttes, vols)


# --------------------------------------------------------------------------------------
# Parity, bounds and special cases
# --------------------------------------------------------------------------------------


def test_put_call_parity(wide_grid):
    spot, strike, tte, vol, _ = wide_grid
    call = bs_price(spot, strike, tte, RATE, DIV, vol, "C")
    put = bs_price(spot, strike, tte, RATE, DIV, vol, "P")
    forward_pv = spot * np.exp(-DIV * tte) - strike * np.exp(-RATE * tte)
    # absolute 1e-10 on prices up to ~4500 (~2e-14 of spot)
    np.testing.assert_allclose(call - put, forward_pv, rtol=0, atol=1e-10)


def test_price_within_no_arbitrage_bounds(wide_grid):
    spot, strike, tte, vol, right = wide_grid
    price = bs_price(spot, strike, tte, RATE, DIV, vol, right)
    a = spot * np.exp(-DIV * tte)
    b = strike * np.exp(-RATE * tte)
    is_call = right == "C"
    lower = np.where(is_call, np.maximum(a - b, 0.0), np.maximum(b - a, 0.0))
    upper = np.where(is_call, a, b)
    assert np.all(price >= lower - 1e-12 * spot)
    assert np.all(price <= upper)


def test_straddle_is_call_plus_put_from_quantlib():
    spot = 4500.0
    strike = np.array([4300.0, 4480.0, 4500.0, 4525.0, 4700.0])
    tte = 37 * MINUTE
    vol = 0.18
    ref = ql_black_price(spot, strike, tte, RATE, DIV, vol, "C") + ql_black_price(
        spot, strike, tte, RATE, DIV, vol, "P"
    )
    np.testing.assert_allclose(straddle_price(spot, strike, tte, RATE, DIV, vol), ref, atol=1e-10)


def test_expiry_and_zero_vol_limits():
    spot, strike = 100.0, np.array([90.0, 100.0, 110.0])
    np.testing.assert_array_equal(bs_price(spot, strike, 0.0, RATE, DIV, 0.2, "C"), [10.0, 0, 0])
    np.testing.assert_array_equal(bs_price(spot, strike, 0.0, RATE, DIV, 0.2, "P"), [0, 0, 10.0])
    np.testing.assert_array_equal(straddle_price(spot, strike, 0.0, RATE, DIV, 0.2), [10, 0, 10])
    tte = 0.5
    a, b = spot * math.exp(-DIV * tte), strike * np.exp(-RATE * tte)
    np.testing.assert_allclose(
        bs_price(spot, strike, tte, RATE, DIV, 0.0, "C"), np.maximum(a - b, 0), atol=1e-13
    )
    np.testing.assert_allclose(
        bs_price(spot, strike, tte, RATE, DIV, 0.0, "P"), np.maximum(b - a, 0), atol=1e-13
    )


@pytest.mark.parametrize(
    ("spot", "strike", "tte", "vol"),
    [
        (-1.0, 100, 1, 0.2),
        (100, 0.0, 1, 0.2),
        (100, 100, -1e-9, 0.2),
        (100, 100, 1, -0.1),
        (np.nan, 100, 1, 0.2),
        (100, 100, np.inf, 0.2),
        (100, 100, 1, np.nan),
    ],
)
def test_invalid_price_inputs_give_nan(spot, strike, tte, vol):
    assert np.isnan(bs_price(spot, strike, tte, RATE, DIV, vol, "C"))
    assert np.all(np.isnan(bs_greeks(spot, strike, tte, RATE, DIV, vol, "P")))


def test_greeks_nan_at_expiry_and_zero_vol():
    assert np.all(np.isnan(bs_greeks(100.0, 100.0, 0.0, RATE, DIV, 0.2, "C")))
    assert np.all(np.isnan(bs_greeks(100.0, 100.0, 0.1, RATE, DIV, 0.0, "C")))


# --------------------------------------------------------------------------------------
# Rights, shapes and dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "canonical"), [("c", "C"), ("call", "C"), ("CALL", "C")])
def test_right_aliases_call(alias, canonical):
    ref = ql_black_price(100.0, 95.0, 0.25, RATE, DIV, 0.3, canonical)
    assert bs_price(100.0, 95.0, 0.25, RATE, DIV, 0.3, alias) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("alias", ["p", "put", "Put", "P"])
def test_right_aliases_put(alias):
    ref = ql_black_price(100.0, 95.0, 0.25, RATE, DIV, 0.3, "P")
    assert bs_price(100.0, 95.0, 0.25, RATE, DIV, 0.3, alias) == pytest.approx(ref, abs=1e-12)


def test_right_arrays_mixed_and_object():
    strikes = np.array([90.0, 100.0, 110.0, 120.0])
    rights = ["C", "put", "p", "Call"]
    ref = np.array(
        [
            ql_black_price(100.0, k, 0.25, RATE, DIV, 0.3, r)
            for k, r in zip(strikes, rights, strict=True)
        ]
    )
    got = bs_price(100.0, strikes, 0.25, RATE, DIV, 0.3, rights)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    got_obj = bs_price(100.0, strikes, 0.25, RATE, DIV, 0.3, np.array(rights, dtype=object))
    np.testing.assert_allclose(got_obj, ref, atol=1e-12)
    np.testing.assert_array_equal(parse_right(np.array(["C", "p", "c", "P"])), [1, -1, 1, -1])


@pytest.mark.parametrize("bad", ["X", "calls", "", " C", "Q"])
def test_bad_right_string_raises_naming_it(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        bs_price(100.0, 100.0, 0.1, RATE, DIV, 0.2, bad)


def test_bad_right_in_array_raises_naming_it():
    with pytest.raises(ValueError, match="'Q'"):
        bs_price(100.0, [90.0, 100.0, 110.0], 0.1, RATE, DIV, 0.2, ["C", "Q", "P"])
    with pytest.raises(ValueError, match="'puts'"):
        implied_vol(1.0, 100.0, [90.0, 100.0], 0.1, RATE, DIV, ["put", "puts"])
    with pytest.raises(ValueError, match="'Z'"):
        bs_greeks(100.0, 100.0, 0.1, RATE, DIV, 0.2, np.array(["C", "Z"], dtype=object))
    with pytest.raises(ValueError, match="1"):
        bs_price(100.0, 100.0, 0.1, RATE, DIV, 0.2, 1)
    with pytest.raises(ValueError, match="None"):
        bs_price(100.0, 100.0, 0.1, RATE, DIV, 0.2, [None, "C"])


def test_scalar_inputs_give_float64_scalars():
    p = bs_price(100.0, 100.0, 0.1, RATE, DIV, 0.2, "C")
    assert isinstance(p, np.float64) and np.ndim(p) == 0
    g = bs_greeks(100.0, 100.0, 0.1, RATE, DIV, 0.2, "C")
    assert all(isinstance(x, np.float64) for x in g)
    res = implied_vol(p, 100.0, 100.0, 0.1, RATE, DIV, "C", return_status=True)
    assert isinstance(res.vol, np.float64) and res.status.dtype == np.int8


def test_broadcasting_matches_elementwise_quantlib():
    strikes = np.array([[90.0], [100.0], [115.0]])  # (3, 1)
    ttes = np.array([[5 * MINUTE, 2 * DAY, 0.5, 1.5]])  # (1, 4)
    price = bs_price(100.0, strikes, ttes, RATE, DIV, 0.25, "P")
    assert price.shape == (3, 4)
    ref = ql_black_price(100.0, strikes, ttes, RATE, DIV, 0.25, "P")
    np.testing.assert_allclose(price, ref, atol=1e-12)
    vol = implied_vol(price, 100.0, strikes, ttes, RATE, DIV, "P")
    assert vol.shape == (3, 4)
    vega = bs_greeks(100.0, strikes, ttes, RATE, DIV, 0.25, "P").vega
    ok = (vega >= 1e-4 * price) & (price > 1e-280)  # non-negligible vega
    assert ok.sum() >= 8
    np.testing.assert_allclose(vol[ok], 0.25, rtol=0, atol=1e-10)
    with pytest.raises(ValueError):
        bs_price(100.0, np.ones(3), np.ones(4), RATE, DIV, 0.2, "C")


# --------------------------------------------------------------------------------------
# Implied volatility: round trip and status codes
# --------------------------------------------------------------------------------------


def test_round_trip_wide_grid(wide_grid):
    spot, strike, tte, vol, right = wide_grid
    price = bs_price(spot, strike, tte, RATE, DIV, vol, right)
    vega = bs_greeks(spot, strike, tte, RATE, DIV, vol, right).vega
    non_negligible = (vega >= 1e-4 * price) & (price > 1e-280)
    assert non_negligible.sum() > 0.6 * price.size
    res = implied_vol_status(price, spot, strike, tte, RATE, DIV, right)
    assert np.all(res.status[non_negligible] == IV_OK)
    err = np.abs(res.vol - vol)[non_negligible]
    assert err.max() < 1e-10, err.max()
    # includes one-minute expiries and the full 0.05..3.0 vol range
    sel = non_negligible & (tte == MINUTE)
    assert sel.sum() > 50
    assert set(np.unique(vol[sel])) == {0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0}


def test_round_trip_random_zero_dte():
    rng = np.random.default_rng(7)
    n = 20_000
    spot = rng.uniform(100.0, 5000.0, n)
    tte = rng.integers(1, 391, n) * MINUTE
    vol = rng.uniform(0.05, 3.0, n)
    strike = spot * rng.uniform(0.95, 1.05, n)
    right = np.where(rng.random(n) < 0.5, "C", "P")
    price = bs_price(spot, strike, tte, RATE, DIV, vol, right)
    vega = bs_greeks(spot, strike, tte, RATE, DIV, vol, right).vega
    non_negligible = (vega >= 1e-4 * price) & (price > 1e-280)
    iv, status = implied_vol(price, spot, strike, tte, RATE, DIV, right, return_status=True)
    assert np.all(status[non_negligible] == IV_OK)
    assert np.max(np.abs(iv - vol)[non_negligible]) < 1e-10


def test_parallel_and_serial_kernels_agree_bitwise():
    rng = np.random.default_rng(3)
    n = 5000
    spot = np.full(n, 100.0)
    strike = rng.uniform(60.0, 140.0, n)
    tte = np.exp(rng.uniform(np.log(MINUTE), np.log(2.0), n))
    vol = rng.uniform(0.05, 1.5, n)
    cp = np.where(rng.random(n) < 0.5, CALL, PUT).astype(np.int8)
    price = np.array(
        [
            bs_price_nb(100.0, k, t, RATE, DIV, v, c)
            for k, t, v, c in zip(strike, tte, vol, cp, strict=True)
        ]
    )
    args = (price, spot, strike, tte, np.array([RATE]), np.array([DIV]), cp)
    v1, s1 = implied_vol_1d_nb(*args)
    v2, s2 = implied_vol_1d_parallel_nb(*args)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(v1, v2)
    ok = s1 == IV_OK
    assert ok.mean() > 0.5
    vega = np.array(
        [bs_vega_nb(100.0, k, t, RATE, DIV, v) for k, t, v in zip(strike, tte, vol, strict=True)]
    )
    good = ok & (vega >= 1e-4 * price)
    np.testing.assert_allclose(v1[good], vol[good], rtol=0, atol=1e-10)


@pytest.mark.parametrize("right", ["C", "P"])
@pytest.mark.parametrize("tte", [MINUTE, 30 * DAY])
def test_status_below_intrinsic(right, tte):
    spot = 100.0
    strike = 90.0 if right == "C" else 110.0  # in the money
    a, b = spot * math.exp(-DIV * tte), strike * math.exp(-RATE * tte)
    intrinsic = abs(a - b)
    prices = np.array([intrinsic * (1 - 1e-6), intrinsic])
    res = implied_vol_status(prices, spot, strike, tte, RATE, DIV, right)
    assert np.all(np.isnan(res.vol))
    np.testing.assert_array_equal(res.status, IV_BELOW_INTRINSIC)
    # just above intrinsic is solvable
    res_ok = implied_vol_status(intrinsic + 1e-3, spot, strike, tte, RATE, DIV, right)
    assert res_ok.status == IV_OK and res_ok.vol > 0


@pytest.mark.parametrize("right", ["C", "P"])
@pytest.mark.parametrize("tte", [MINUTE, 30 * DAY, 2.0])
def test_status_above_upper_bound(right, tte):
    spot, strike = 100.0, 100.0
    upper = spot * math.exp(-DIV * tte) if right == "C" else strike * math.exp(-RATE * tte)
    res = implied_vol_status(np.array([upper, upper * 1.01]), spot, strike, tte, RATE, DIV, right)
    assert np.all(np.isnan(res.vol))
    np.testing.assert_array_equal(res.status, IV_ABOVE_UPPER_BOUND)


@pytest.mark.parametrize(
    ("price", "spot", "strike", "tte"),
    [
        (1.0, 100.0, 100.0, 0.0),
        (1.0, 100.0, 100.0, -0.1),
        (0.0, 100.0, 100.0, 0.1),
        (-1.0, 100.0, 100.0, 0.1),
        (1.0, 0.0, 100.0, 0.1),
        (1.0, 100.0, -5.0, 0.1),
        (np.nan, 100.0, 100.0, 0.1),
        (np.inf, 100.0, 100.0, 0.1),
        (1.0, 100.0, 100.0, np.nan),
        (1.0, np.inf, 100.0, 0.1),
    ],
)
def test_status_bad_input(price, spot, strike, tte):
    res = implied_vol_status(price, spot, strike, tte, RATE, DIV, "C")
    assert np.isnan(res.vol)
    assert res.status == IV_BAD_INPUT
    assert np.isnan(implied_vol(price, spot, strike, tte, RATE, DIV, "C"))


def test_status_bad_rate_or_dividend():
    assert implied_vol_status(1.0, 100.0, 100.0, 0.1, np.nan, DIV, "C").status == IV_BAD_INPUT
    assert implied_vol_status(1.0, 100.0, 100.0, 0.1, RATE, np.inf, "P").status == IV_BAD_INPUT


def test_iv_deep_otm_and_extreme_vols_against_true_vol():
    # deep OTM 0DTE and very high / very low vols, still with non-negligible vega
    cases = [
        (4500.0, 4600.0, 30 * MINUTE, 0.9, "C"),
        (4500.0, 4400.0, 30 * MINUTE, 0.9, "P"),
        (100.0, 100.2, MINUTE, 0.3, "C"),
        (100.0, 150.0, 0.25, 0.05 * 12, "C"),
        (100.0, 100.0, MINUTE, 0.05, "P"),
        (100.0, 60.0, 2.0, 3.0, "C"),
        (100.0, 140.0, 2.0, 3.0, "P"),
    ]
    for spot, strike, tte, vol, right in cases:
        price = bs_price(spot, strike, tte, RATE, DIV, vol, right)
        assert implied_vol(price, spot, strike, tte, RATE, DIV, right) == pytest.approx(
            vol, abs=1e-10
        ), (spot, strike, tte, vol, right)


# --------------------------------------------------------------------------------------
# Greeks against central finite differences of the price
# --------------------------------------------------------------------------------------


def _fd_greeks(spot, strike, tte, vol, right):
    s = vol * np.sqrt(tte)
    hs = 1e-3 * spot * s  # spot bump, small against the price's curvature scale S·vol·√T
    hv = 1e-4 * vol
    ht = 1e-4 * tte

    def p(**kw):
        args = {"spot": spot, "strike": strike, "tte": tte, "vol": vol} | kw
        return bs_price(args["spot"], args["strike"], args["tte"], RATE, DIV, args["vol"], right)

    up, mid, dn = p(spot=spot + hs), p(), p(spot=spot - hs)
    delta = (up - dn) / (2 * hs)
    gamma = (up - 2 * mid + dn) / hs**2
    vega = (p(vol=vol + hv) - p(vol=vol - hv)) / (2 * hv)
    theta = -(p(tte=tte + ht) - p(tte=tte - ht)) / (2 * ht)
    return delta, gamma, vega, theta


@pytest.mark.parametrize("right", ["C", "P"])
@pytest.mark.parametrize("tte", [MINUTE, 60 * MINUTE, 7 * DAY, 0.5, 2.0])
def test_greeks_match_finite_differences(right, tte):
    spot = np.array([100.0, 4500.0])[:, None]
    vol = 0.25
    # strikes within ±2.5 standard deviations of the forward: Greeks are not negligible
    z = np.linspace(-2.5, 2.5, 11)[None, :]
    strike = spot * np.exp((RATE - DIV) * tte + z * vol * math.sqrt(tte))
    spot, strike = np.broadcast_arrays(spot, strike)
    g = bs_greeks(spot, strike, tte, RATE, DIV, vol, right)
    fd = _fd_greeks(spot, strike, tte, vol, right)
    for name, got, ref in zip(("delta", "gamma", "vega", "theta"), g, fd, strict=True):
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-9 * np.abs(ref).max(), err_msg=name)


def test_greeks_sign_conventions():
    g_c = bs_greeks(100.0, 100.0, 0.5, RATE, DIV, 0.2, "C")
    g_p = bs_greeks(100.0, 100.0, 0.5, RATE, DIV, 0.2, "P")
    assert 0 < g_c.delta < 1 and -1 < g_p.delta < 0
    assert g_c.delta - g_p.delta == pytest.approx(math.exp(-DIV * 0.5), abs=1e-14)
    assert g_c.gamma == pytest.approx(g_p.gamma, rel=1e-14) and g_c.gamma > 0
    assert g_c.vega == pytest.approx(g_p.vega, rel=1e-14) and g_c.vega > 0
    assert g_c.theta < 0


# --------------------------------------------------------------------------------------
# Nopython kernels
# --------------------------------------------------------------------------------------


@njit(cache=False)
def _nopython_user(spot, strike, tte, vol):
    price = bs_price_nb(spot, strike, tte, RATE, DIV, vol, CALL)
    iv, status = implied_vol_status_nb(price, spot, strike, tte, RATE, DIV, CALL)
    iv2 = implied_vol_nb(price, spot, strike, tte, RATE, DIV, CALL)
    delta, _, vega, _ = bs_greeks_nb(spot, strike, tte, RATE, DIV, vol, PUT)
    straddle = straddle_price_nb(spot, strike, tte, RATE, DIV, vol)
    return price, iv, iv2, status, delta, vega, straddle


def test_kernels_callable_from_nopython():
    spot, strike, tte, vol = 4500.0, 4520.0, 45 * MINUTE, 0.16
    price, iv, iv2, status, delta, vega, straddle = _nopython_user(spot, strike, tte, vol)
    assert price == pytest.approx(ql_black_price(spot, strike, tte, RATE, DIV, vol, "C"), abs=1e-10)
    assert status == IV_OK and iv == pytest.approx(vol, abs=1e-12) and iv2 == iv
    put_ref = ql_black_price(spot, strike, tte, RATE, DIV, vol, "P")
    assert straddle == pytest.approx(price + put_ref, abs=1e-10)
    h = 1e-3
    fd_delta = (
        ql_black_price(spot + h, strike, tte, RATE, DIV, vol, "P")
        - ql_black_price(spot - h, strike, tte, RATE, DIV, vol, "P")
    ) / (2 * h)
    assert delta == pytest.approx(fd_delta, rel=1e-6)
    assert vega > 0


def test_normal_helpers_against_closed_forms():
    assert norm_cdf_nb(0.0) == 0.5
    # Φ(-10) = erfc(10/√2)/2 ≈ 7.619853024160527e-24 (tabulated value)
    assert norm_cdf_nb(-10.0) == pytest.approx(7.619853024160527e-24, rel=1e-13)
    for p in (1e-300, 1e-20, 1e-5, 0.02, 0.3, 0.5, 0.8, 0.999):
        z = norm_ppf_nb(p)
        assert norm_cdf_nb(z) == pytest.approx(p, rel=1e-13)


# --------------------------------------------------------------------------------------
# Normalised Black form
# --------------------------------------------------------------------------------------


def _ql_normalised_call(x: float, s: float) -> float:
    """b(x, s) from QuantLib: undiscounted Black call with F = e^{x/2}, K = e^{-x/2}."""
    import QuantLib as ql

    return ql.blackFormula(ql.Option.Call, math.exp(-x / 2), math.exp(x / 2), s, 1.0)


@pytest.mark.parametrize("x", [-2.0, -0.5, -0.05, -1e-4, 0.0])
def test_normalised_black_and_vega_against_quantlib(x):
    for s in (1e-4, 3e-3, 0.05, 0.2, 0.41, 0.43, 1.0, 3.0):
        ref = _ql_normalised_call(x, s)
        assert normalised_black_otm_nb(x, s) == pytest.approx(ref, rel=1e-12, abs=1e-15)
        h = 1e-4 * s  # QuantLib's b has ~1e-16 absolute noise: the step cannot be tiny
        fd = (_ql_normalised_call(x, s + h) - _ql_normalised_call(x, s - h)) / (2 * h)
        assert normalised_vega_nb(x, s) == pytest.approx(fd, rel=2e-5, abs=1e-12)
        # round trip from the true s (QuantLib's b is only ~1e-16 accurate in absolute terms)
        beta = normalised_black_otm_nb(x, s)
        if normalised_vega_nb(x, s) >= 1e-4 * beta and beta > 1e-280:
            s_iv, status = normalised_implied_vol_otm_nb(beta, x)
            assert status == IV_OK
            assert s_iv == pytest.approx(s, rel=1e-13)


def test_normalised_implied_vol_status_codes():
    assert normalised_implied_vol_otm_nb(0.0, -0.1)[1] == IV_BELOW_INTRINSIC
    assert normalised_implied_vol_otm_nb(-1e-3, -0.1)[1] == IV_BELOW_INTRINSIC
    assert normalised_implied_vol_otm_nb(1e-310, -0.1)[1] == IV_BELOW_INTRINSIC  # subnormal
    assert normalised_implied_vol_otm_nb(math.exp(-0.05), -0.1)[1] == IV_ABOVE_UPPER_BOUND
    assert normalised_implied_vol_otm_nb(0.5, 0.1)[1] == IV_BAD_INPUT  # x > 0 is not OTM
    assert normalised_implied_vol_otm_nb(np.nan, -0.1)[1] == IV_BAD_INPUT
    assert math.isnan(normalised_implied_vol_otm_nb(0.0, -0.1)[0])
