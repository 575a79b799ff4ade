"""Black-Scholes PDE (Crank-Nicolson) "theoretical price generator" against the closed form.

The design's theoretical price generator solves the Black-Scholes PDE with Crank-Nicolson for
a volatility forecast. Here the forecast is a GARCH(1,1) fitted by ``arch`` to the S&P 500
daily closes shipped with ``arch`` (1999-2018): for each expiry the vol is the square root of
the forecast average daily variance over the expiry's trading days, annualised with 252.
QuantLib's ``FdBlackScholesVanillaEngine`` with ``FdmSchemeDesc.CrankNicolson`` prices a grid
of strikes (80 %..120 % of spot) and expiries (7..182 calendar days) on an ``n x n``
(time x log-spot) grid, and the prices are compared with the closed form of
``pricing.bs_price`` (itself tested against QuantLib's analytic engine).

Tolerance: Crank-Nicolson is second order in both steps, so the error bound is stated as
``spot / n²`` (1e-4 of spot at n = 100, 2.5e-5 at n = 200); the observed error drops by a
factor close to 4 when the grid is doubled.
"""

from __future__ import annotations

import numpy as np
import pytest
from arch import arch_model

from pricing import IV_OK, bs_greeks, bs_price, ql_bs_price
from pricing.iv_chain import implied_vol_chain

DAY = 1.0 / 365.0
RATE = 0.024
DIV = 0.019
EXPIRY_DAYS = np.array([7, 30, 91, 182])
MONEYNESS = np.array([0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2])


@pytest.fixture(scope="module")
def forecast(sp500):
    """(spot, annualised vol per expiry) from a GARCH(1,1) fitted to S&P 500 returns."""
    close = sp500["close"]
    returns = 100.0 * np.log(close).diff().dropna()
    fit = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")
    daily_var = fit.forecast(horizon=200, reindex=False).variance.to_numpy()[0]  # %² per day
    trading_days = np.rint(EXPIRY_DAYS * 252 / 365).astype(int)
    vols = np.array([np.sqrt(daily_var[:h].mean() * 252.0) / 100.0 for h in trading_days])
    return float(close.iloc[-1]), vols


def _grid(spot, vols):
    k, t = np.meshgrid(spot * MONEYNESS, EXPIRY_DAYS * DAY, indexing="ij")
    v = np.broadcast_to(vols[None, :], k.shape)
    right = np.where(k >= spot, "C", "P")  # out-of-the-money side
    return k.ravel(), t.ravel(), v.ravel(), right.ravel()


def test_crank_nicolson_prices_from_a_vol_forecast_match_closed_form(forecast):
    spot, vols = forecast
    assert np.all((vols > 0.05) & (vols < 1.0))  # a plausible forecast term structure
    strike, tte, vol, right = _grid(spot, vols)
    closed = bs_price(spot, strike, tte, RATE, DIV, vol, right)
    errors = {}
    for n in (100, 200):
        fd = ql_bs_price(
            spot, strike, tte, RATE, DIV, vol, right, engine="crank_nicolson", t_grid=n, x_grid=n
        )
        errors[n] = np.abs(fd - closed)
        assert errors[n].max() <= spot / n**2, (n, errors[n].max())
    # second-order convergence: doubling the grid divides the error by about 4
    material = errors[100] > 1e-3
    assert material.sum() >= 10
    ratio = errors[100][material] / errors[200][material]
    assert np.all((ratio > 3.0) & (ratio < 5.0)), ratio


def test_theoretical_prices_give_back_the_forecast_vol(forecast):
    """Implied vols of the Crank-Nicolson prices return the forecast to within the price
    error divided by vega (about 1e-4 at n = 200)."""
    spot, vols = forecast
    strike, tte, vol, right = _grid(spot, vols)
    fd = ql_bs_price(
        spot, strike, tte, RATE, DIV, vol, right, engine="crank_nicolson", t_grid=200, x_grid=200
    )
    res = implied_vol_chain(fd, spot, strike, tte, RATE, DIV, right, underlying="spot")
    assert np.all(res.status == IV_OK)
    vega = bs_greeks(spot, strike, tte, RATE, DIV, vol, right).vega
    bound = (spot / 200**2) / vega
    assert np.all(np.abs(res.vol - vol) <= bound)
    at_the_money = np.abs(res.vol - vol).reshape(len(MONEYNESS), -1)[MONEYNESS == 1.0]
    assert at_the_money.max() < 1e-3  # a tenth of a vol point
