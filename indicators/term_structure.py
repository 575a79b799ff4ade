"""Front-expiry residual against the ATM-vol term-structure line of the same snapshot.

Used by ``term_structure_slope``. Each row is one chain snapshot (quote date ``D``); each
column one listed expiry of it, in ascending expiry order (a *slot*; rows with fewer expiries
are padded with NaN). From ``D``'s row only:

1. the expiries of the band ``front_min_dte <= dte <= fit_max_dte`` with a finite ATM IV; the
   first is the **front**, the second the **next**;
2. an OLS line ``iv = a + b x`` through the band's expiries *other than the front* (at least
   ``min_fit_expiries``), with ``x = tte`` (ACT/365 years) or ``x = sqrt(tte)``;
3. ``fair`` = the line at each slot's ``x``; ``residual = iv - fair`` (decimal vol); the signal
   is the front slot's residual.

The OLS is the centred closed form ``b = S_xy / S_xx``, ``a = ybar - b xbar`` (Greene,
*Econometric Analysis*, 7th ed., eq. 3-9/3-10), the solution of ``numpy.polyfit(x, iv, 1)`` and
``statsmodels.OLS``. Nothing outside a row enters it (no look-ahead by construction).

Three faces: the numba kernel :func:`front_curve_nb`, the per-snapshot Python API
:func:`front_curve` and the vectorbt indicator :data:`FrontCurve` (a grid of band / fit
parameters in one ``run`` call). Outputs are slot-shaped (``(n_dates, n_slots)``) as vectorbt
requires; per-row quantities (``slope``, ``intercept``, ``n_fit``, ``n_no_iv``, ``status``) are
repeated on every slot of the row.
"""

from __future__ import annotations

import math

import numpy as np
import vectorbt as vbt
from numba import njit

__all__ = [
    "CURVE_STATUS",
    "CURVE_X",
    "ROLE_FRONT",
    "ROLE_NEXT",
    "FrontCurve",
    "curve_x_id",
    "front_curve",
    "front_curve_nb",
]

#: Regressors of the line, in the order of their integer ids.
CURVE_X: tuple[str, ...] = ("tte", "sqrt_tte")

#: Row status codes of :func:`front_curve_nb`.
CURVE_STATUS: tuple[str, ...] = ("ok", "no_front", "no_next", "too_few_fit_expiries")

#: Slot roles: 0 outside the band, -1 in the band without an ATM IV, 1 front, 2 next (also in
#: the fit), 3 another expiry of the fit.
ROLE_FRONT: int = 1
ROLE_NEXT: int = 2
ROLE_FIT: int = 3
ROLE_NO_IV: int = -1

_NAN = np.nan


def curve_x_id(curve_x: str) -> int:
    """Map ``"tte"`` / ``"sqrt_tte"`` to the kernels' id.

    Parameters
    ----------
    curve_x : str
        One of :data:`CURVE_X`.

    Returns
    -------
    int
        Position in :data:`CURVE_X`.

    Raises
    ------
    ValueError
        Unknown regressor.
    """
    if isinstance(curve_x, str) and curve_x in CURVE_X:
        return CURVE_X.index(curve_x)
    raise ValueError(f"unknown curve_x {curve_x!r}; allowed values: {', '.join(CURVE_X)}")


def _check_band(front_min_dte: object, fit_max_dte: object, min_fit_expiries: object) -> None:
    for name, v in (
        ("front_min_dte", front_min_dte),
        ("fit_max_dte", fit_max_dte),
        ("min_fit_expiries", min_fit_expiries),
    ):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if min_fit_expiries < 2:  # type: ignore[operator]
        raise ValueError(f"min_fit_expiries must be >= 2, got {min_fit_expiries}")
    if front_min_dte > fit_max_dte:  # type: ignore[operator]
        raise ValueError(f"front_min_dte ({front_min_dte}) > fit_max_dte ({fit_max_dte})")


@njit(cache=True)
def front_curve_nb(
    dte: np.ndarray,
    tte: np.ndarray,
    iv: np.ndarray,
    front_min_dte: int,
    fit_max_dte: int,
    min_fit_expiries: int,
    curve_x_id: int,
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Per snapshot row: the line through the non-front expiries of the band and the residuals.

    Parameters
    ----------
    dte : np.ndarray
        Calendar days to expiry, float64 shape ``(n_dates, n_slots)`` (NaN = no expiry).
    tte : np.ndarray
        ACT/365 years to the settlement time, same shape.
    iv : np.ndarray
        ATM implied vol (decimal), same shape; NaN where the snapshot has none.
    front_min_dte, fit_max_dte : int
        Calendar-day band (inclusive).
    min_fit_expiries : int
        Expiries other than the front needed for the line (>= 2).
    curve_x_id : int
        0 ``x = tte``, 1 ``x = sqrt(tte)``.

    Returns
    -------
    fair, residual, role, slope, intercept, n_fit, n_no_iv, status : np.ndarray
        float64, shape ``(n_dates, n_slots)`` each. ``fair`` = line at the slot's ``x`` (decimal
        vol) for every slot with a ``tte``; ``residual = iv - fair``; ``role`` see
        :data:`ROLE_FRONT`; per-row and repeated on every slot: ``slope`` (decimal vol per unit
        of ``x``), ``intercept``, ``n_fit`` (expiries after the front in the band with an IV;
        0 without a next), ``n_no_iv`` (band expiries without an ATM IV), ``status`` (index in
        :data:`CURVE_STATUS`). ``fair``/``residual``/``slope``/``intercept`` are NaN unless
        ``status == 0``. A row whose fit expiries all share one ``x`` (no slope identified;
        not seen in listed chains) gets status 3 as well.

    Raises
    ------
    ValueError
        Shapes differ, ``min_fit_expiries < 2``, ``front_min_dte > fit_max_dte`` or an unknown
        ``curve_x_id``.
    """
    if dte.shape != tte.shape or dte.shape != iv.shape:
        raise ValueError("dte, tte and iv must have the same shape")
    if min_fit_expiries < 2:
        raise ValueError("min_fit_expiries must be >= 2")
    if front_min_dte > fit_max_dte:
        raise ValueError("front_min_dte > fit_max_dte")
    if curve_x_id != 0 and curve_x_id != 1:
        raise ValueError("unknown curve_x_id (allowed 0 tte, 1 sqrt_tte)")
    n, m = dte.shape
    fair = np.full((n, m), _NAN)
    residual = np.full((n, m), _NAN)
    role = np.zeros((n, m))
    slope = np.full((n, m), _NAN)
    intercept = np.full((n, m), _NAN)
    n_fit = np.zeros((n, m))
    n_no_iv = np.zeros((n, m))
    status = np.zeros((n, m))
    for i in range(n):
        front = -1
        n_others = 0
        no_iv = 0
        for j in range(m):
            d = dte[i, j]
            if math.isnan(d) or d < front_min_dte or d > fit_max_dte:
                continue
            if math.isnan(iv[i, j]):
                role[i, j] = ROLE_NO_IV
                no_iv += 1
            elif front < 0:
                front = j
                role[i, j] = ROLE_FRONT
            else:
                role[i, j] = ROLE_NEXT if n_others == 0 else ROLE_FIT
                n_others += 1
        n_no_iv[i, :] = no_iv
        if front < 0:
            status[i, :] = 1
            continue
        if n_others == 0:
            status[i, :] = 2
            continue
        n_fit[i, :] = n_others
        if n_others < min_fit_expiries:
            status[i, :] = 3
            continue
        sx = 0.0
        sy = 0.0
        for j in range(m):
            if role[i, j] >= ROLE_NEXT:
                x = math.sqrt(tte[i, j]) if curve_x_id == 1 else tte[i, j]
                sx += x
                sy += iv[i, j]
        mx = sx / n_others
        my = sy / n_others
        sxx = 0.0
        sxy = 0.0
        for j in range(m):
            if role[i, j] >= ROLE_NEXT:
                x = math.sqrt(tte[i, j]) if curve_x_id == 1 else tte[i, j]
                sxx += (x - mx) * (x - mx)
                sxy += (x - mx) * (iv[i, j] - my)
        if not sxx > 0.0:
            status[i, :] = 3  # no slope identified (all fit expiries at one tte)
            continue
        b = sxy / sxx
        a = my - b * mx
        slope[i, :] = b
        intercept[i, :] = a
        for j in range(m):
            if not math.isnan(tte[i, j]):
                x = math.sqrt(tte[i, j]) if curve_x_id == 1 else tte[i, j]
                fair[i, j] = a + b * x
                residual[i, j] = iv[i, j] - fair[i, j]
    return fair, residual, role, slope, intercept, n_fit, n_no_iv, status


#: Output names of :func:`front_curve_nb` / :data:`FrontCurve`, in order.
OUTPUTS: tuple[str, ...] = (
    "fair",
    "residual",
    "role",
    "slope",
    "intercept",
    "n_fit",
    "n_no_iv",
    "status",
)


def front_curve(
    dte: np.ndarray,
    tte: np.ndarray,
    iv: np.ndarray,
    *,
    front_min_dte: int = 5,
    fit_max_dte: int = 45,
    min_fit_expiries: int = 3,
    curve_x: str = "sqrt_tte",
) -> dict[str, np.ndarray]:
    """:func:`front_curve_nb` with validated parameters on a slot panel.

    Parameters
    ----------
    dte, tte, iv : np.ndarray
        Shape ``(n_dates, n_slots)`` (or ``(n_slots,)`` for one snapshot): calendar days,
        ACT/365 years and ATM implied vol (decimal; NaN where none).
    front_min_dte, fit_max_dte, min_fit_expiries : int
        Band and minimum fit size (module docstring).
    curve_x : {"tte", "sqrt_tte"}
        Regressor.

    Returns
    -------
    dict of str to np.ndarray
        :data:`OUTPUTS` -> arrays of the input's shape.

    Raises
    ------
    ValueError
        Bad parameters or shapes.
    """
    _check_band(front_min_dte, fit_max_dte, min_fit_expiries)
    arrays = [np.asarray(a, dtype=np.float64) for a in (dte, tte, iv)]
    one = arrays[0].ndim == 1
    arrays = [np.ascontiguousarray(np.atleast_2d(a)) for a in arrays]
    res = front_curve_nb(
        *arrays, int(front_min_dte), int(fit_max_dte), int(min_fit_expiries), curve_x_id(curve_x)
    )
    return {name: (r[0] if one else r) for name, r in zip(OUTPUTS, res, strict=True)}


def _front_curve_apply(
    dte: np.ndarray,
    years: np.ndarray,
    atm_iv: np.ndarray,
    front_min_dte: int,
    fit_max_dte: int,
    min_fit_expiries: int,
    curve_x: str,
) -> tuple[np.ndarray, ...]:
    out = front_curve(
        dte,
        years,
        atm_iv,
        front_min_dte=front_min_dte,
        fit_max_dte=fit_max_dte,
        min_fit_expiries=min_fit_expiries,
        curve_x=curve_x,
    )
    return tuple(out[name] for name in OUTPUTS)


FrontCurve = vbt.IndicatorFactory(
    class_name="FrontCurve",
    short_name="curve",
    input_names=["dte", "years", "atm_iv"],  # not "tte": vectorbt reads a str param equal to
    # an input name (curve_x="tte") as that input
    param_names=["front_min_dte", "fit_max_dte", "min_fit_expiries", "curve_x"],
    output_names=list(OUTPUTS),
).from_apply_func(
    _front_curve_apply, front_min_dte=5, fit_max_dte=45, min_fit_expiries=3, curve_x="sqrt_tte"
)
FrontCurve.__doc__ = """vectorbt indicator: per-snapshot ATM-vol line and the front residual.

``FrontCurve.run(dte, years, atm_iv, front_min_dte=5, fit_max_dte=45, min_fit_expiries=3,
curve_x="sqrt_tte")`` on slot panels of shape ``(n_dates, n_slots)``; lists for a grid (zipped,
or ``param_product=True``). Every parameter set returns ``n_slots`` columns of each output
(:data:`OUTPUTS`), identical to :func:`front_curve`. The front's residual of a row is the
``residual`` where ``role == ROLE_FRONT``."""
