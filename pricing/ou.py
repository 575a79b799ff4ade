"""Ornstein-Uhlenbeck spreads: exact maximum likelihood, Leung-Li optimal double stopping and
Bertram's optimal statistical-arbitrage thresholds.

Notation follows Leung & Li (2015), which differs from the textbook ``kappa/theta`` notation::

    dX_t = mu (theta - X_t) dt + sigma dB_t

* ``theta`` -- long-run mean of the spread (spread units, e.g. dollars per spread unit);
* ``mu`` -- speed of mean reversion, per year (``mu > 0`` means mean reverting);
* ``sigma`` -- instantaneous volatility, spread units per square-root year.

The half-life of a deviation is ``ln 2 / mu`` years. Time steps ``dt`` are in years (``1/252`` for
daily sessions). Bertram (2010) writes the zero-mean process ``dX = -alpha X dt + eta dW``: his
``alpha`` is ``mu`` and his ``eta`` is ``sigma`` here, and every level is shifted by ``theta``.

Contents
--------
fit_ou, ou_loglik, simulate_ou, OUFit
    Exact maximum likelihood on the exact AR(1) discretization (Leung & Li 2015, pairs
    formation by MLE; the transition density is Gaussian with mean
    ``theta + (x - theta) e^{-mu dt}`` and variance ``sigma^2 (1 - e^{-2 mu dt}) / (2 mu)``).
    ``mu <= 0`` is reported with a status, never as a number.
leung_li_F, leung_li_G, leung_li_levels, LeungLiLevels
    The optimal entry and exit levels of Leung & Li (2015) with transaction costs and an optional
    stop-loss, from the paper's integral representations of ``F`` and ``G`` and its
    smooth-pasting equations, solved numerically (``scipy.integrate.quad`` + ``brentq``).
bertram_trade_length, bertram_return, bertram_thresholds, BertramThresholds
    Mean and variance of the trade-cycle length and of the return per unit time of Bertram
    (2010), and the thresholds maximising the expected return (the paper's exact analytic
    condition) or the Sharpe ratio (numerical maximisation, as in the paper).

References
----------
.. [1] Leung, T. and Li, X. (2015). "Optimal mean reversion trading with transaction costs and
   stop-loss exit". *International Journal of Theoretical and Applied Finance* 18(3), 1550020.
   arXiv:1411.5062.
.. [2] Bertram, W. K. (2010). "Analytic solutions for optimal statistical arbitrage trading".
   *Physica A* 389(11), 2234-2243.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray
from scipy import integrate, optimize, special

__all__ = [
    "OU_DEGENERATE",
    "OU_NEGATIVE_AUTOCORRELATION",
    "OU_NOT_MEAN_REVERTING",
    "OU_OK",
    "OU_STATUS_BY_CODE",
    "BertramThresholds",
    "LeungLiLevels",
    "OUFit",
    "bertram_return",
    "bertram_thresholds",
    "bertram_trade_length",
    "fit_ou",
    "leung_li_F",
    "leung_li_G",
    "leung_li_levels",
    "ou_loglik",
    "ou_mle_nb",
    "ou_status_message",
    "simulate_ou",
]

OU_OK = "ok"
"""Fit status: mean reverting (``0 < e^{-mu dt} < 1``), parameters are numbers."""
OU_NOT_MEAN_REVERTING = "not_mean_reverting"
"""Fit status: the AR(1) slope is >= 1, i.e. ``mu <= 0``: a random walk or explosive process."""
OU_NEGATIVE_AUTOCORRELATION = "negative_autocorrelation"
"""Fit status: the AR(1) slope is <= 0; no OU process has a non-positive one-step correlation."""
OU_DEGENERATE = "degenerate"
"""Fit status: the series (or its residuals) has no variance."""

_Z_MAX = 35.0  # |x - theta| in stationary standard deviations where F, G are still finite


# --------------------------------------------------------------------------------------
# Exact maximum likelihood
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OUFit:
    """Exact maximum-likelihood fit of an OU process to equally spaced observations.

    Attributes
    ----------
    theta, mu, sigma : float
        Long-run mean (series units), speed (per year) and volatility (series units per
        square-root year); NaN unless ``status == "ok"``.
    half_life : float
        ``ln 2 / mu`` in years; NaN unless ``status == "ok"``.
    log_likelihood : float
        Maximised conditional log-likelihood (sum over the ``n_obs - 1`` transitions; Leung & Li
        report the average, ``log_likelihood / (n_obs - 1)``). For a non-OK status this is the
        maximised likelihood of the unrestricted Gaussian AR(1) (diagnostic only).
    aic : float
        ``2 * 3 - 2 * log_likelihood``.
    n_obs : int
        Number of observations ``n + 1`` (``n`` transitions).
    dt : float
        Time step in years.
    ar_intercept, ar_slope, resid_var : float
        The AR(1) ``x_i = a + b x_{i-1} + e_i`` estimates: ``b = e^{-mu dt}``,
        ``a = theta (1 - b)``, ``resid_var = sigma^2 (1 - b^2) / (2 mu)`` (MLE, divided by ``n``).
    status : str
        :data:`OU_OK`, :data:`OU_NOT_MEAN_REVERTING`, :data:`OU_NEGATIVE_AUTOCORRELATION` or
        :data:`OU_DEGENERATE`.
    message : str
        Human-readable reason for a non-OK status (empty when OK).
    """

    theta: float
    mu: float
    sigma: float
    half_life: float
    log_likelihood: float
    aic: float
    n_obs: int
    dt: float
    ar_intercept: float
    ar_slope: float
    resid_var: float
    status: str
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the series is mean reverting and the parameters are numbers."""
        return self.status == OU_OK

    @property
    def half_life_days(self) -> float:
        """Half-life in time steps (sessions for daily data): ``half_life / dt``."""
        return self.half_life / self.dt

    @property
    def stationary_std(self) -> float:
        """Standard deviation of the stationary law, ``sigma / sqrt(2 mu)`` (series units)."""
        return self.sigma / math.sqrt(2.0 * self.mu) if self.ok else math.nan


def _as_series(x: ArrayLike, name: str = "x") -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < 3:
        raise ValueError(f"{name} needs at least 3 observations, got {arr.size}")
    if not np.isfinite(arr).all():
        pos = int(np.argmax(~np.isfinite(arr)))
        raise ValueError(f"{name} has a non-finite value at position {pos}: {arr[pos]!r}")
    return arr


def _check_dt(dt: float) -> float:
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0 (years), got {dt!r}")
    return float(dt)


def _not_ok(
    n: int,
    dt: float,
    status: str,
    message: str,
    a: float = math.nan,
    b: float = math.nan,
    v: float = math.nan,
    loglik: float = math.nan,
) -> OUFit:
    nan = math.nan
    aic = 2.0 * 3.0 - 2.0 * loglik
    return OUFit(nan, nan, nan, nan, loglik, aic, n + 1, dt, a, b, v, status, message)


def fit_ou(x: ArrayLike, dt: float = 1.0 / 252.0) -> OUFit:
    """Exact maximum-likelihood estimate of ``(theta, mu, sigma)`` from one observed path.

    The exact discretization of the OU process is the Gaussian AR(1)
    ``x_i = theta (1 - b) + b x_{i-1} + e_i`` with ``b = e^{-mu dt}`` and
    ``Var e = sigma^2 (1 - b^2) / (2 mu)``. Maximising the exact conditional likelihood (Leung &
    Li 2015, pairs formation, average log-likelihood ``l(theta, mu, sigma)``) over ``(theta, mu,
    sigma)`` is therefore the same as maximising it over ``(a, b, v)`` and mapping back, which has
    the closed form of ordinary least squares with the variance divided by ``n``::

        b = (n Sxy - Sx Sy) / (n Sxx - Sx^2),   a = (Sy - b Sx) / n,   v = sum(e^2) / n
        mu = -ln(b) / dt,   theta = a / (1 - b),   sigma^2 = 2 mu v / (1 - b^2)

    (no Euler approximation: the design sketch's ``sigma = std(resid) / sqrt(dt)`` is the Euler
    value and is biased when ``mu dt`` is not small).

    Parameters
    ----------
    x : array_like, shape (n + 1,)
        Equally spaced observations (spread units), ``n + 1 >= 3``, all finite.
    dt : float
        Time step in years (``1/252`` for daily sessions).

    Returns
    -------
    OUFit
        With ``status == "ok"`` when ``0 < b < 1``. ``b >= 1`` (``mu <= 0``: not mean reverting)
        and ``b <= 0`` give NaN ``theta, mu, sigma, half_life`` and the status says why.

    Raises
    ------
    ValueError
        ``x`` not one-dimensional, fewer than 3 observations, a non-finite value, or a bad ``dt``.

    References
    ----------
    Leung & Li (2015), pairs formation (transition density and average log-likelihood).
    """
    arr = _as_series(x)
    dt = _check_dt(dt)
    code, a, b, v, loglik, theta, mu, sigma = ou_mle_nb(arr, dt)
    n = arr.size - 1
    status = OU_STATUS_BY_CODE[int(code)]
    if status != OU_OK:
        return _not_ok(n, dt, status, ou_status_message(int(code), b), a, b, v, loglik)
    return OUFit(
        theta=theta,
        mu=mu,
        sigma=sigma,
        half_life=math.log(2.0) / mu,
        log_likelihood=loglik,
        aic=2.0 * 3.0 - 2.0 * loglik,
        n_obs=n + 1,
        dt=dt,
        ar_intercept=a,
        ar_slope=b,
        resid_var=v,
        status=OU_OK,
    )


OU_STATUS_BY_CODE: tuple[str, ...] = (
    OU_OK,
    OU_DEGENERATE,
    OU_DEGENERATE,
    OU_NOT_MEAN_REVERTING,
    OU_NEGATIVE_AUTOCORRELATION,
)
"""Fit status of each :func:`ou_mle_nb` code (1: constant series, 2: zero residual variance)."""


def ou_status_message(code: int, ar_slope: float) -> str:
    """Reason of a non-OK :func:`ou_mle_nb` code (empty for 0).

    Parameters
    ----------
    code : int
        Status code of :func:`ou_mle_nb`.
    ar_slope : float
        The AR(1) slope ``b`` (quoted in the message).

    Returns
    -------
    str
        Human-readable reason.
    """
    if code == 1:
        return "the series is constant (no variance to fit)"
    if code == 2:
        return "zero residual variance (the series is deterministic)"
    if code == 3:
        return f"AR(1) slope {ar_slope:.6f} >= 1: mu = -ln(b)/dt <= 0, no mean reversion"
    if code == 4:
        return f"AR(1) slope {ar_slope:.6f} <= 0: no OU process has this autocorrelation"
    return ""


@njit(cache=True)
def ou_mle_nb(
    x: np.ndarray, dt: float
) -> tuple[float, float, float, float, float, float, float, float]:
    """Numba kernel of :func:`fit_ou`: exact OU maximum likelihood via the AR(1) closed form.

    Parameters
    ----------
    x : np.ndarray
        1-D float64 observations (spread units), ``n + 1 >= 3``, finite (not checked here).
    dt : float
        Time step in years (> 0).

    Returns
    -------
    tuple of float
        ``(code, a, b, v, loglik, theta, mu, sigma)``: status code (0 ok, 1 constant series,
        2 zero residual variance, 3 ``b >= 1``, 4 ``b <= 0``; :data:`OU_STATUS_BY_CODE`), the
        AR(1) intercept, slope and MLE residual variance (``sum e^2 / n``), the maximised
        conditional log-likelihood, and ``theta`` (series units), ``mu`` (per year), ``sigma``
        (series units per sqrt year). Quantities not defined for the code are NaN (``a, b, v``
        for code 1; ``loglik`` for codes 1-2; ``theta, mu, sigma`` unless code 0).

    References
    ----------
    Leung & Li (2015), pairs formation (see :func:`fit_ou` for the closed form).
    """
    nan = math.nan
    n = x.shape[0] - 1
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    sxy = 0.0
    for i in range(n):
        p = x[i]
        q = x[i + 1]
        sx += p
        sy += q
        sxx += p * p
        sxy += p * q
    den = n * sxx - sx * sx
    if not den > 1e-300 * max(1.0, n * sxx):
        return 1.0, nan, nan, nan, nan, nan, nan, nan
    b = (n * sxy - sx * sy) / den
    a = (sy - b * sx) / n
    ss = 0.0
    for i in range(n):
        e = x[i + 1] - a - b * x[i]
        ss += e * e
    v = ss / n
    if not v > 0:
        return 2.0, a, b, v, nan, nan, nan, nan
    loglik = -0.5 * n * (math.log(2.0 * math.pi * v) + 1.0)
    if b >= 1.0:
        return 3.0, a, b, v, loglik, nan, nan, nan
    if b <= 0.0:
        return 4.0, a, b, v, loglik, nan, nan, nan
    mu = -math.log(b) / dt
    theta = a / (1.0 - b)
    sigma = math.sqrt(2.0 * mu * v / (1.0 - b * b))
    return 0.0, a, b, v, loglik, theta, mu, sigma


def ou_loglik(x: ArrayLike, theta: float, mu: float, sigma: float, dt: float = 1.0 / 252) -> float:
    """Exact conditional log-likelihood of a path under ``dX = mu (theta - X) dt + sigma dB``.

    ``sum_i ln f(x_i | x_{i-1})`` with the Gaussian transition density of Leung & Li (2015),
    pairs formation: mean ``theta + (x_{i-1} - theta) e^{-mu dt}``, variance
    ``sigma^2 (1 - e^{-2 mu dt}) / (2 mu)``.

    Parameters
    ----------
    x : array_like, shape (n + 1,)
        Observations.
    theta, mu, sigma : float
        Parameters; ``mu > 0``, ``sigma > 0``.
    dt : float
        Step in years.

    Returns
    -------
    float
        The log-likelihood (natural log, summed over ``n`` transitions).

    Raises
    ------
    ValueError
        ``mu <= 0``, ``sigma <= 0`` or bad ``x`` / ``dt``.
    """
    arr = _as_series(x)
    dt = _check_dt(dt)
    if not (mu > 0 and sigma > 0):
        raise ValueError(f"mu and sigma must be > 0, got mu={mu!r}, sigma={sigma!r}")
    b = math.exp(-mu * dt)
    var = sigma * sigma * (1.0 - b * b) / (2.0 * mu)
    e = arr[1:] - theta - (arr[:-1] - theta) * b
    n = e.size
    return float(-0.5 * n * math.log(2.0 * math.pi * var) - 0.5 * (e @ e) / var)


def simulate_ou(
    n: int,
    theta: float,
    mu: float,
    sigma: float,
    *,
    dt: float = 1.0 / 252,
    x0: float | None = None,
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.float64]:
    """A path of the OU process sampled exactly (no discretization error) on a grid of ``dt``.

    ``x_i = theta + (x_{i-1} - theta) e^{-mu dt} + sqrt(sigma^2 (1 - e^{-2 mu dt}) / (2 mu)) z_i``.

    Parameters
    ----------
    n : int
        Number of steps; the path has ``n + 1`` points.
    theta, mu, sigma : float
        Parameters (``mu > 0``, ``sigma > 0``).
    dt : float
        Step in years.
    x0 : float, optional
        Start value (default ``theta``).
    rng : numpy.random.Generator or int, optional
        Generator or seed (deterministic for a given seed).

    Returns
    -------
    numpy.ndarray, shape (n + 1,)

    Raises
    ------
    ValueError
        ``n < 1``, ``mu <= 0``, ``sigma <= 0`` or a bad ``dt``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (mu > 0 and sigma > 0):
        raise ValueError(f"mu and sigma must be > 0, got mu={mu!r}, sigma={sigma!r}")
    dt = _check_dt(dt)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    b = math.exp(-mu * dt)
    sd = sigma * math.sqrt((1.0 - b * b) / (2.0 * mu))
    z = gen.standard_normal(n)
    out = np.empty(n + 1)
    out[0] = theta if x0 is None else x0
    for i in range(n):
        out[i + 1] = theta + (out[i] - theta) * b + sd * z[i]
    return out


# --------------------------------------------------------------------------------------
# Leung & Li (2015): optimal double stopping with transaction costs and stop-loss
# --------------------------------------------------------------------------------------


def _check_ou_params(theta: float, mu: float, sigma: float, r: float) -> None:
    for name, v in (("theta", theta), ("mu", mu), ("sigma", sigma), ("r", r)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if not (mu > 0 and sigma > 0):
        raise ValueError(
            f"mu (mean-reversion speed) and sigma must be > 0, got mu={mu!r}, sigma={sigma!r}"
        )
    if not r > 0:
        raise ValueError(f"discount rate r must be > 0 (per year), got {r!r}")


def _kernel(power: float, z: float) -> float:
    """``int_0^inf u^power exp(z u - u^2 / 2) du`` for ``power > -1`` (finite for any real z).

    The algebraic end-point singularity at ``u = 0`` (``power`` close to ``-1`` when ``r << mu``)
    is integrated with QUADPACK's QAWS rule (``weight="alg"``); the smooth rest by QAGS/QAGI,
    split at the integrand's peak ``u = z``.
    """

    def smooth(u: float) -> float:
        return math.exp(z * u - 0.5 * u * u)

    head, _ = integrate.quad(
        smooth, 0.0, 1.0, weight="alg", wvar=(power, 0.0), epsabs=0.0, epsrel=1e-12, limit=200
    )
    if power == 0.0:
        full = smooth
    else:

        def full(u: float) -> float:
            return u**power * math.exp(z * u - 0.5 * u * u)

    mid_end = max(2.0, z + 12.0)
    mid, _ = integrate.quad(full, 1.0, mid_end, epsabs=0.0, epsrel=1e-12, limit=200)
    tail, _ = integrate.quad(full, mid_end, np.inf, epsabs=0.0, epsrel=1e-12, limit=200)
    return head + mid + tail


def _z(x: float, theta: float, mu: float, sigma: float) -> float:
    z = math.sqrt(2.0 * mu) / sigma * (x - theta)
    if abs(z) > _Z_MAX:
        raise ValueError(
            f"level {x!r} is {z:.1f} stationary standard deviations from theta={theta!r}; "
            f"F and G overflow beyond {_Z_MAX:.0f}"
        )
    return z


def leung_li_F(
    x: float, theta: float, mu: float, sigma: float, r: float, *, derivative: bool = False
) -> float:
    """Leung & Li's increasing solution ``F`` of ``(L - r) u = 0`` (or its derivative ``F'``).

    ``F(x) = int_0^inf u^{r/mu - 1} exp( sqrt(2 mu / sigma^2) (x - theta) u - u^2 / 2 ) du``
    (Leung & Li 2015, the classical solutions of ``L u = r u``), with
    ``L = sigma^2/2 d^2/dx^2 + mu (theta - x) d/dx`` the OU generator.
    ``F'`` is differentiated under the integral sign.

    Parameters
    ----------
    x : float
        Spread level (spread units).
    theta, mu, sigma : float
        OU parameters (``mu > 0`` per year, ``sigma > 0``).
    r : float
        Discount rate per year, ``> 0``.
    derivative : bool
        Return ``F'(x)`` (per spread unit) instead of ``F(x)``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Bad parameters, or ``x`` more than 35 stationary standard deviations from ``theta``.
    """
    _check_ou_params(theta, mu, sigma, r)
    z = _z(x, theta, mu, sigma)
    nu = r / mu
    if derivative:
        return math.sqrt(2.0 * mu) / sigma * _kernel(nu, z)
    return _kernel(nu - 1.0, z)


def leung_li_G(
    x: float, theta: float, mu: float, sigma: float, r: float, *, derivative: bool = False
) -> float:
    """Leung & Li's decreasing solution ``G`` of ``(L - r) u = 0`` (or its derivative ``G'``).

    ``G(x) = int_0^inf u^{r/mu - 1} exp( sqrt(2 mu / sigma^2) (theta - x) u - u^2 / 2 ) du``
    (Leung & Li 2015). Parameters, returns and errors as :func:`leung_li_F`.
    """
    _check_ou_params(theta, mu, sigma, r)
    z = _z(x, theta, mu, sigma)
    nu = r / mu
    if derivative:
        return -math.sqrt(2.0 * mu) / sigma * _kernel(nu, -z)
    return _kernel(nu - 1.0, -z)


@dataclass(frozen=True)
class LeungLiLevels:
    """Optimal levels for a long position in the spread (buy low, sell high).

    Attributes
    ----------
    exit_level : float
        Optimal take-profit level: ``b*`` (no stop-loss) or ``b*_L`` (with stop-loss); liquidate
        when the spread reaches it from below.
    entry_level : float
        Upper end of the entry region: ``d*`` or ``d*_L``; enter when the spread falls to it.
    entry_lower : float
        Lower end of the entry region: ``a*_L`` with a stop-loss (do not enter below it, too
        close to the stop), ``-inf`` without.
    stop_loss : float
        ``L`` (``-inf`` without stop-loss).
    status : str
        ``"ok"``, or ``"no_entry"`` when no level is worth entering (costs too high relative to
        the spread's range; then ``entry_level`` and ``entry_lower`` are NaN).
    entry_value : float
        ``J(d) = V(d) - d - c_entry`` at the entry level (spread units; expected discounted
        profit of entering there).
    """

    exit_level: float
    entry_level: float
    entry_lower: float
    stop_loss: float
    status: str
    entry_value: float


class _LeungLi:
    """The functions of the problem for one parameter set (kept together to keep calls short)."""

    def __init__(
        self, theta: float, mu: float, sigma: float, r: float, c: float, r_hat: float, c_hat: float
    ) -> None:
        self.theta, self.mu, self.sigma = theta, mu, sigma
        self.r, self.c, self.r_hat, self.c_hat = r, c, r_hat, c_hat
        self.scale = sigma / math.sqrt(2.0 * mu)  # stationary standard deviation

    def F(self, x: float, r: float | None = None, d: bool = False) -> float:
        rate = self.r if r is None else r
        return leung_li_F(x, self.theta, self.mu, self.sigma, rate, derivative=d)

    def G(self, x: float, r: float | None = None, d: bool = False) -> float:
        rate = self.r if r is None else r
        return leung_li_G(x, self.theta, self.mu, self.sigma, rate, derivative=d)

    # -- exit ------------------------------------------------------------------------------

    def exit_no_stop(self) -> float:
        """``b*``: root of ``F(b) - (b - c) F'(b) = 0`` (Leung & Li 2015, optimal liquidation)."""
        c = self.c

        def h(b: float) -> float:
            return self.F(b) - (b - c) * self.F(b, d=True)

        # h' = -(b - c) F''(b) with F convex: h increases below c (from h(-inf) = 0+) and
        # decreases above, so h(c) = F(c) > 0 and the root b* > c is unique.
        lo = c
        hi = max(self.theta, c) + self.scale
        while h(hi) > 0:
            hi += self.scale
            if hi > self.theta + 30.0 * self.scale:
                raise ArithmeticError("no exit level b* within 30 stationary std of theta")
        return float(optimize.brentq(h, lo, hi, xtol=1e-12 * max(1.0, abs(hi)), maxiter=200))

    def value_no_stop(self, x: float, b: float) -> tuple[float, float]:
        """``V(x) = (b - c) F(x) / F(b)`` below ``b``, ``x - c`` above, and ``V'(x)``."""
        if x >= b:
            return x - self.c, 1.0
        k = (b - self.c) / self.F(b)
        return k * self.F(x), k * self.F(x, d=True)

    def exit_stop(self, stop: float, b_free: float) -> float:
        """``b*_L``: root of Leung & Li's (2015) stop-loss exit equation in ``(L, b*]``.

        ``F'(b)[(L - c) G(b) - (b - c) G(L)] + G'(b)[(b - c) F(L) - (L - c) F(b)]
        = G(b) F(L) - G(L) F(b)`` (smooth pasting of ``C F + D G`` at ``b``).
        """
        c = self.c
        fl, gl = self.F(stop), self.G(stop)

        def h(b: float) -> float:
            fb, gb = self.F(b), self.G(b)
            return (
                self.F(b, d=True) * ((stop - c) * gb - (b - c) * gl)
                + self.G(b, d=True) * ((b - c) * fl - (stop - c) * fb)
                - (gb * fl - gl * fb)
            )

        # h has a trivial zero at b = L; scan from above L for the sign change
        hi = b_free + 1e-9 * max(1.0, abs(b_free))
        grid = np.linspace(stop, hi, 41)[1:]
        vals = [h(b) for b in grid]
        for i in range(len(grid) - 1, 0, -1):
            if np.sign(vals[i]) != np.sign(vals[i - 1]):
                return float(optimize.brentq(h, grid[i - 1], grid[i], xtol=1e-13, maxiter=200))
        return float(b_free)  # the stop-loss is too far below to bind: b*_L = b*

    def value_stop(self, x: float, stop: float, b: float) -> tuple[float, float]:
        """``V_L(x)``: ``x - c`` outside ``(L, b)``, ``C F(x) + D G(x)`` inside, and ``V_L'``."""
        c = self.c
        if x <= stop or x >= b:
            return x - c, 1.0
        fl, gl, fb, gb = self.F(stop), self.G(stop), self.F(b), self.G(b)
        den = fb * gl - fl * gb
        cc = ((b - c) * gl - (stop - c) * gb) / den
        dd = ((stop - c) * fb - (b - c) * fl) / den
        return (cc * self.F(x) + dd * self.G(x), cc * self.F(x, d=True) + dd * self.G(x, d=True))

    # -- entry -----------------------------------------------------------------------------

    def entry(self, value, lo: float, hi: float) -> tuple[float, float, float, str]:
        """Entry interval ``(a*, d*)`` for the entry payoff ``g(x) = V(x) - x - c_hat``.

        ``d*`` solves ``G(d) g'(d) = G'(d) g(d)`` (Leung & Li 2015, optimal entry)
        between the maximum of ``g`` and its upper zero; ``a*`` (stop-loss case only, ``lo``
        finite) solves ``F(a) g'(a) = F'(a) g(a)`` (entry with stop-loss) between the lower
        zero of ``g`` and its maximum. All functions use the entry rate ``r_hat``.
        """
        ch, rh = self.c_hat, self.r_hat

        def g(x: float) -> tuple[float, float]:
            v, vp = value(x)
            return v - x - ch, vp - 1.0

        res = optimize.minimize_scalar(
            lambda x: -g(x)[0],
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-10 * max(1.0, abs(hi))},
        )
        x_max = float(res.x)
        g_max = g(x_max)[0]
        if not g_max > 0:
            return math.nan, math.nan, g_max, "no_entry"
        # upper zero of g in (x_max, hi]: g(hi) < 0 because V(b) - b - c_hat = -c - c_hat
        x2 = hi if g(hi)[0] >= 0 else optimize.brentq(lambda x: g(x)[0], x_max, hi, xtol=1e-13)

        def hd(d: float) -> float:
            gv, gp = g(d)
            return self.G(d, rh) * gp - self.G(d, rh, d=True) * gv

        # with zero costs g(b) = 0 and hd(b) = 0 at the exit level itself: step inside
        if not hd(x2) < 0:
            width, step = x2 - x_max, 1e-9
            while not hd(x2 - step * width) < 0 and step < 0.5:
                step *= 2.0
            x2 -= step * width
        d_star = float(optimize.brentq(hd, x_max, x2, xtol=1e-13, maxiter=200))
        if not math.isfinite(lo) or lo < self.theta - 29.0 * self.scale:
            return -math.inf, d_star, g(d_star)[0], "ok"
        x1 = lo if g(lo)[0] >= 0 else optimize.brentq(lambda x: g(x)[0], lo, x_max, xtol=1e-13)

        def ha(a: float) -> float:
            gv, gp = g(a)
            return self.F(a, rh) * gp - self.F(a, rh, d=True) * gv

        a_star = float(optimize.brentq(ha, x1, x_max, xtol=1e-13, maxiter=200))
        return a_star, d_star, g(d_star)[0], "ok"


def leung_li_levels(
    theta: float,
    mu: float,
    sigma: float,
    *,
    r: float,
    c: float,
    r_entry: float | None = None,
    c_entry: float | None = None,
    stop_loss: float | None = None,
) -> LeungLiLevels:
    """Optimal entry and exit levels of Leung & Li (2015) for a long position in an OU spread.

    Exit (liquidation) problem ``V(x) = sup_tau E[e^{-r tau} (X_tau - c)]`` and entry problem
    ``J(x) = sup_nu E[e^{-r_hat nu} (V(X_nu) - X_nu - c_hat)]``. Without a stop-loss (the
    paper's optimal liquidation and optimal entry results) the strategy buys when the spread
    falls to ``d*`` and sells when it rises to ``b*``. With a stop-loss ``L`` (the position is
    also liquidated at ``L``) the exit level becomes ``b*_L <= b*`` and the entry region is the
    bounded interval ``(a*_L, d*_L)`` strictly above ``L``.

    Each level is the root of the paper's smooth-pasting equation, solved with ``brentq`` on
    ``F``/``G`` from their integral representations (:func:`leung_li_F`, :func:`leung_li_G`);
    roots are bracketed from the shape of the value functions, not guessed. A short position
    in the spread is the long problem for ``-X`` (an OU with mean ``-theta``): negate the
    levels.

    Parameters
    ----------
    theta, mu, sigma : float
        OU parameters (spread units, per year, spread units per sqrt year), ``mu, sigma > 0``.
    r : float
        Discount rate of the exit problem, per year (``> 0``; the paper uses 0.05).
    c : float
        Transaction cost paid at exit, spread units per unit of spread (``>= 0``).
    r_entry, c_entry : float, optional
        ``r_hat`` and ``c_hat`` of the entry problem (default ``r`` and ``c``).
    stop_loss : float, optional
        ``L`` (spread units), below ``theta``; None for no stop-loss.

    Returns
    -------
    LeungLiLevels

    Raises
    ------
    ValueError
        ``mu <= 0`` or ``sigma <= 0`` (not mean reverting: no levels exist), ``r <= 0``, a
        negative cost, or a stop-loss not below ``theta``.
    ArithmeticError
        No root in the bracket (never for valid parameters; reported rather than guessed).

    References
    ----------
    Leung & Li (2015): optimal liquidation (``F(b) = (b - c) F'(b)``), optimal entry
    (``G(d)(V'(d) - 1) = G'(d)(V(d) - d - c_hat)``) and the stop-loss exit and entry equations.
    """
    r_hat = r if r_entry is None else r_entry
    c_hat = c if c_entry is None else c_entry
    _check_ou_params(theta, mu, sigma, r)
    _check_ou_params(theta, mu, sigma, r_hat)
    for name, v in (("c", c), ("c_entry", c_hat)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0 (spread units), got {v!r}")
    model = _LeungLi(theta, mu, sigma, r, c, r_hat, c_hat)
    b_free = model.exit_no_stop()
    if stop_loss is None:
        a, d, jd, status = model.entry(
            lambda x: model.value_no_stop(x, b_free), theta - 30.0 * model.scale, b_free
        )
        return LeungLiLevels(b_free, d, -math.inf, -math.inf, status, jd)
    if not (math.isfinite(stop_loss) and stop_loss < theta):
        raise ValueError(
            f"stop_loss must be a finite level below theta={theta!r}, got {stop_loss!r}"
        )
    if stop_loss < theta - 29.0 * model.scale:
        raise ValueError(
            f"stop_loss {stop_loss!r} is more than 29 stationary std below theta; use None"
        )
    b_stop = model.exit_stop(stop_loss, b_free)
    a, d, jd, status = model.entry(
        lambda x: model.value_stop(x, stop_loss, b_stop), stop_loss, b_stop
    )
    return LeungLiLevels(b_stop, d, a, stop_loss, status, jd)


# --------------------------------------------------------------------------------------
# Bertram (2010): optimal thresholds from first-passage times
# --------------------------------------------------------------------------------------

_SERIES_TERMS = 400


def _w1(z: float) -> float:
    """Bertram (2010) ``w1(z) = (1/2 sum_k Gamma(k/2) (sqrt2 z)^k / k!)^2
    - (1/2 sum_k (-1)^k Gamma(k/2) (sqrt2 z)^k / k!)^2``."""
    if z == 0.0:
        return 0.0
    k = np.arange(1, _SERIES_TERMS + 1, dtype=np.float64)
    y = math.sqrt(2.0) * abs(z)
    mag = np.exp(special.gammaln(k / 2.0) + k * math.log(y) - special.gammaln(k + 1.0))
    sgn = np.sign(z) ** k
    s_plus = 0.5 * math.fsum(mag * sgn)
    s_minus = 0.5 * math.fsum(mag * sgn * (-1.0) ** k)
    return s_plus * s_plus - s_minus * s_minus


def _w2(z: float) -> float:
    """Bertram (2010) ``w2(z) = sum_k Gamma((2k-1)/2) Psi((2k-1)/2) (sqrt2 z)^{2k-1} / (2k-1)!``
    with ``Psi(x) = psi(x) - psi(1)``."""
    if z == 0.0:
        return 0.0
    k = np.arange(1, _SERIES_TERMS + 1, dtype=np.float64)
    n = 2.0 * k - 1.0
    y = math.sqrt(2.0) * abs(z)
    mag = np.exp(special.gammaln(n / 2.0) + n * math.log(y) - special.gammaln(n + 1.0))
    psi = special.digamma(n / 2.0) - special.digamma(1.0)
    return math.copysign(1.0, z) * math.fsum(mag * psi)


def _check_bertram(a: float, m: float, mu: float, sigma: float) -> None:
    if not (mu > 0 and sigma > 0):
        raise ValueError(f"mu and sigma must be > 0, got mu={mu!r}, sigma={sigma!r}")
    if not (math.isfinite(a) and math.isfinite(m) and a < m):
        raise ValueError(f"need finite entry a < exit m, got a={a!r}, m={m!r}")


def bertram_trade_length(
    a: float, m: float, theta: float, mu: float, sigma: float
) -> tuple[float, float]:
    """Mean and variance of the trade-cycle length ``T`` (years) of Bertram's strategy.

    The cycle is: enter at ``a``, exit at ``m > a``, wait to re-enter at ``a``. With
    ``s = sqrt(mu) / sigma`` and levels measured from ``theta``:
    ``E[T] = pi / mu (Erfi(s (m - theta)) - Erfi(s (a - theta)))`` (Bertram 2010) and
    ``V[T] = (w1(M) - w1(A) - w2(M) + w2(A)) / mu^2`` with ``M, A = sqrt(2 mu) / sigma *
    (m - theta, a - theta)`` (Bertram 2010).

    Parameters
    ----------
    a, m : float
        Entry and exit levels (spread units), ``a < m``.
    theta, mu, sigma : float
        OU parameters.

    Returns
    -------
    mean, variance : float
        Years and years squared.

    Raises
    ------
    ValueError
        Bad parameters or ``a >= m``.
    """
    _check_bertram(a, m, mu, sigma)
    s = math.sqrt(mu) / sigma
    mean = (
        math.pi / mu * (float(special.erfi(s * (m - theta))) - float(special.erfi(s * (a - theta))))
    )
    s2 = math.sqrt(2.0 * mu) / sigma
    zm, za = s2 * (m - theta), s2 * (a - theta)
    var = (_w1(zm) - _w1(za) - _w2(zm) + _w2(za)) / (mu * mu)
    return mean, var


def bertram_return(
    a: float, m: float, c: float, theta: float, mu: float, sigma: float
) -> tuple[float, float]:
    """Expected return and its standard deviation per unit time of Bertram's strategy.

    ``mu_s = r / E[T]`` and ``sigma_s^2 = r^2 V[T] / E[T]^3`` with ``r = m - a - c`` the return of
    one cycle (Bertram 2010; for a log-price spread ``r`` is a continuously
    compounded return, for a price spread it is spread units per unit).

    Parameters
    ----------
    a, m : float
        Entry and exit levels, ``a < m``.
    c : float
        Transaction cost per cycle (spread units), ``>= 0``.
    theta, mu, sigma : float
        OU parameters.

    Returns
    -------
    mean, std : float
        Per year.

    Raises
    ------
    ValueError
        Bad parameters.
    """
    if not (math.isfinite(c) and c >= 0):
        raise ValueError(f"c must be finite and >= 0, got {c!r}")
    mean_t, var_t = bertram_trade_length(a, m, theta, mu, sigma)
    ret = m - a - c
    return ret / mean_t, abs(ret) * math.sqrt(max(var_t, 0.0) / mean_t**3)


@dataclass(frozen=True)
class BertramThresholds:
    """Bertram's optimal thresholds (symmetric about ``theta``).

    Attributes
    ----------
    entry_level : float
        ``a``: buy the spread when it falls to ``a`` (below ``theta``).
    exit_level : float
        ``m = 2 theta - a``: sell when it rises to ``m``.
    expected_return, return_std : float
        ``mu_s`` and ``sigma_s`` per year at the optimum.
    sharpe : float
        ``(mu_s - r_f / E[T]) / sigma_s`` at the optimum.
    trade_length, trade_length_var : float
        ``E[T]`` (years) and ``V[T]`` (years squared).
    objective : str
        ``"return"`` or ``"sharpe"``.
    """

    entry_level: float
    exit_level: float
    expected_return: float
    return_std: float
    sharpe: float
    trade_length: float
    trade_length_var: float
    objective: str


def bertram_thresholds(
    theta: float,
    mu: float,
    sigma: float,
    *,
    c: float,
    objective: Literal["return", "sharpe"] = "return",
    rf: float = 0.0,
) -> BertramThresholds:
    """Bertram's (2010) thresholds maximising the expected return or the Sharpe ratio per unit time.

    Bertram shows both optima are symmetric, ``m - theta = theta - a``. For the expected return
    the optimum is the exact solution of the paper's analytic first-order condition, written with
    ``A = a - theta < -c/2``::

        exp(mu A^2 / sigma^2) (2 A + c) = sigma sqrt(pi / mu) Erfi(A sqrt(mu) / sigma)

    solved with ``brentq``. For the Sharpe ratio ``S = (mu_s - r_f / E[T]) / sigma_s`` (the
    paper's definition: ``r_f`` is charged per trade cycle) there is no closed form; ``S`` is
    maximised over the symmetric ``a`` with bounded Brent search, as in the paper.

    Parameters
    ----------
    theta, mu, sigma : float
        OU parameters.
    c : float
        Transaction cost per cycle (spread units), ``>= 0``.
    objective : {"return", "sharpe"}
        What to maximise.
    rf : float
        Risk-free return per cycle for the Sharpe objective (``>= 0``).

    Returns
    -------
    BertramThresholds

    Raises
    ------
    ValueError
        Bad parameters or objective.
    """
    if not (mu > 0 and sigma > 0):
        raise ValueError(
            f"mu and sigma must be > 0 (mean reverting), got mu={mu!r}, sigma={sigma!r}"
        )
    if not (math.isfinite(c) and c >= 0):
        raise ValueError(f"c must be finite and >= 0, got {c!r}")
    if objective not in ("return", "sharpe"):
        raise ValueError(f"objective must be 'return' or 'sharpe', got {objective!r}")
    scale = sigma / math.sqrt(2.0 * mu)  # stationary std
    s = math.sqrt(mu) / sigma
    lo = c / 2.0 + 1e-12 * max(1.0, scale)  # half-width must exceed c/2 for a positive return
    hi = lo + 8.0 * scale
    if objective == "return":

        def cond(half: float) -> float:
            # A = -half: exp(mu A^2/s^2)(2A + c) - sigma sqrt(pi/mu) Erfi(A sqrt(mu)/sigma), * -1
            return math.exp(mu * half * half / sigma**2) * (2.0 * half - c) - sigma * math.sqrt(
                math.pi / mu
            ) * float(special.erfi(s * half))

        while cond(hi) < 0:
            hi += 4.0 * scale
        half = float(optimize.brentq(cond, lo, hi, xtol=1e-14, maxiter=300))
    else:
        if not (math.isfinite(rf) and rf >= 0):
            raise ValueError(f"rf must be finite and >= 0, got {rf!r}")

        def neg_sharpe(half: float) -> float:
            mean_t, _ = bertram_trade_length(theta - half, theta + half, theta, mu, sigma)
            m_s, s_s = bertram_return(theta - half, theta + half, c, theta, mu, sigma)
            return -(m_s - rf / mean_t) / s_s

        res = optimize.minimize_scalar(
            neg_sharpe, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * max(1, hi)}
        )
        half = float(res.x)
    a, m = theta - half, theta + half
    mean_t, var_t = bertram_trade_length(a, m, theta, mu, sigma)
    m_s, s_s = bertram_return(a, m, c, theta, mu, sigma)
    return BertramThresholds(
        entry_level=a,
        exit_level=m,
        expected_return=m_s,
        return_std=s_s,
        sharpe=(m_s - rf / mean_t) / s_s if s_s > 0 else math.nan,
        trade_length=mean_t,
        trade_length_var=var_t,
        objective=objective,
    )
