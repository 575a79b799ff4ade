"""Per-snapshot ATM-vol line (``indicators.term_structure``) against statsmodels OLS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from indicators.term_structure import (
    CURVE_STATUS,
    ROLE_FRONT,
    ROLE_NEXT,
    FrontCurve,
    front_curve,
    front_curve_nb,
)

N_DATES = 40
N_SLOTS = 12


@pytest.fixture(scope="module")
def panel() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic snapshots: expiries every 1-4 days from 0 DTE, a sqrt-tte term structure plus
    noise, some ATM vols missing, some rows shorter (NaN-padded)."""
    rng = np.random.default_rng(17)
    dte = np.full((N_DATES, N_SLOTS), np.nan)
    for i in range(N_DATES):
        k = rng.integers(2, N_SLOTS + 1)
        dte[i, :k] = np.cumsum(rng.integers(1, 5, size=k)) - 1.0
    tte = (dte * 1440 + 15) / (365 * 1440)
    iv = 0.12 + 0.05 * np.sqrt(tte) + rng.normal(0, 0.004, dte.shape)
    iv[rng.random(dte.shape) < 0.1] = np.nan
    iv[np.isnan(dte)] = np.nan
    return dte, tte, iv


def _reference(dte, tte, iv, lo, hi, min_fit, curve_x):
    """Row by row: band, front, statsmodels OLS through the others, residual of the front."""
    out = []
    for i in range(dte.shape[0]):
        band = [j for j in range(dte.shape[1]) if lo <= dte[i, j] <= hi]
        with_iv = [j for j in band if np.isfinite(iv[i, j])]
        rec = {"n_no_iv": len(band) - len(with_iv), "front": None, "next": None, "n_fit": 0}
        if not with_iv:
            out.append({**rec, "status": "no_front"})
            continue
        rec["front"] = with_iv[0]
        others = with_iv[1:]
        if not others:
            out.append({**rec, "status": "no_next"})
            continue
        rec.update(next=others[0], n_fit=len(others))
        if len(others) < min_fit:
            out.append({**rec, "status": "too_few_fit_expiries"})
            continue
        f = np.sqrt if curve_x == "sqrt_tte" else (lambda a: a)
        fit = sm.OLS(iv[i, others], sm.add_constant(f(tte[i, others]))).fit()
        a, b = fit.params
        x0 = f(tte[i, with_iv[0]])
        rec.update(status="ok", intercept=a, slope=b, residual=iv[i, with_iv[0]] - (a + b * x0))
        out.append(rec)
    return out


@pytest.mark.parametrize(
    ("lo", "hi", "min_fit", "curve_x"),
    [(5, 45, 3, "sqrt_tte"), (2, 20, 2, "tte"), (1, 60, 6, "sqrt_tte")],
)
def test_matches_statsmodels_row_by_row(panel, lo, hi, min_fit, curve_x) -> None:
    dte, tte, iv = panel
    got = front_curve(
        dte, tte, iv, front_min_dte=lo, fit_max_dte=hi, min_fit_expiries=min_fit, curve_x=curve_x
    )
    ref = _reference(dte, tte, iv, lo, hi, min_fit, curve_x)
    n_ok = 0
    for i, r in enumerate(ref):
        assert CURVE_STATUS[int(got["status"][i, 0])] == r["status"], i
        assert got["n_no_iv"][i, 0] == r["n_no_iv"] and got["n_fit"][i, 0] == r["n_fit"]
        role = got["role"][i]
        assert (np.flatnonzero(role == ROLE_FRONT).tolist() or [None])[0] == r["front"]
        assert (np.flatnonzero(role == ROLE_NEXT).tolist() or [None])[0] == r["next"]
        if r["status"] == "ok":
            n_ok += 1
            j = r["front"]
            assert got["intercept"][i, j] == pytest.approx(r["intercept"], rel=1e-10, abs=1e-12)
            assert got["slope"][i, j] == pytest.approx(r["slope"], rel=1e-10, abs=1e-12)
            assert got["residual"][i, j] == pytest.approx(r["residual"], rel=1e-10, abs=1e-12)
        else:
            assert np.isnan(got["residual"][i]).all()
    assert n_ok >= 5  # the comparison is not vacuous


def test_lstsq_gives_the_same_line_on_one_snapshot() -> None:
    dte = np.array([5.0, 8, 12, 19, 26, 33, 40])
    tte = dte / 365.0
    iv = np.array([0.16, 0.141, 0.139, 0.145, 0.148, 0.152, 0.153])
    got = front_curve(dte, tte, iv, min_fit_expiries=3, curve_x="sqrt_tte")
    x = np.column_stack([np.ones(6), np.sqrt(tte[1:])])
    (a, b), *_ = np.linalg.lstsq(x, iv[1:], rcond=None)
    assert got["slope"][0] == pytest.approx(b, rel=1e-10)
    assert got["fair"][0] == pytest.approx(a + b * math.sqrt(tte[0]), rel=1e-10)
    assert got["residual"][0] == pytest.approx(iv[0] - a - b * math.sqrt(tte[0]), rel=1e-10)


def test_truncation_leaves_earlier_snapshots_unchanged(panel) -> None:
    dte, tte, iv = panel
    full = front_curve_nb(dte, tte, iv, 5, 45, 3, 1)
    for t in (10, 25):
        cut = front_curve_nb(dte[:t].copy(), tte[:t].copy(), iv[:t].copy(), 5, 45, 3, 1)
        for a, b in zip(cut, full, strict=True):
            np.testing.assert_array_equal(a, b[:t])


def test_grid_call_equals_per_parameter_calls(panel) -> None:
    dte, tte, iv = panel
    sets = [(5, 45, 3, "sqrt_tte"), (2, 20, 2, "tte"), (1, 60, 6, "tte")]
    res = FrontCurve.run(
        dte,
        tte,
        iv,
        front_min_dte=[s[0] for s in sets],
        fit_max_dte=[s[1] for s in sets],
        min_fit_expiries=[s[2] for s in sets],
        curve_x=[s[3] for s in sets],
    )
    for k, (lo, hi, mf, cx) in enumerate(sets):
        one = front_curve(
            dte, tte, iv, front_min_dte=lo, fit_max_dte=hi, min_fit_expiries=mf, curve_x=cx
        )
        for name, arr in one.items():
            got = getattr(res, name).to_numpy()[:, k * N_SLOTS : (k + 1) * N_SLOTS]
            np.testing.assert_array_equal(got, arr)


def test_bad_input_is_refused(panel) -> None:
    dte, tte, iv = panel
    with pytest.raises(ValueError, match="min_fit_expiries"):
        front_curve(dte, tte, iv, min_fit_expiries=1)
    with pytest.raises(ValueError, match="front_min_dte"):
        front_curve(dte, tte, iv, front_min_dte=50, fit_max_dte=45)
    with pytest.raises(ValueError, match="curve_x"):
        front_curve(dte, tte, iv, curve_x="log_tte")
    with pytest.raises(ValueError, match="same shape"):
        front_curve_nb(dte, tte[:, :-1].copy(), iv, 5, 45, 3, 1)
