"""Past-only rolling OLS (``indicators.regression``) against statsmodels / numpy references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from indicators.regression import PastOLS, past_ols, past_ols_nb

N = 120


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=N)
    y = -0.05 + 0.01 * x + rng.normal(scale=0.003, size=N)
    y[[4, 40, 41]] = np.nan
    x[[17, 90]] = np.nan
    return y, x


def _reference(y: np.ndarray, x: np.ndarray, fit_window: int, min_fit: int, model: str):
    """Independent loop: statsmodels OLS (regression) or numpy mean/std on the earlier points."""
    n = y.size
    ok = np.isfinite(y) & (np.isfinite(x) if model == "regression" else True)
    ref = {k: np.full(n, np.nan) for k in ("expected", "scale", "intercept", "slope")}
    n_fit = np.zeros(n, dtype=int)
    for i in range(n):
        past = np.flatnonzero(ok[:i])[-fit_window:]
        n_fit[i] = past.size
        if past.size < min_fit or not ok[i]:
            continue
        if model == "regression":
            fit = sm.OLS(y[past], sm.add_constant(x[past])).fit()
            a, b = fit.params
            ref["intercept"][i], ref["slope"][i] = a, b
            ref["expected"][i] = a + b * x[i]
            ref["scale"][i] = math.sqrt(fit.scale)
        else:
            ref["expected"][i] = y[past].mean()
            ref["scale"][i] = y[past].std(ddof=1)
    ref["gap"] = y - ref["expected"]
    ref["z"] = ref["gap"] / ref["scale"]
    ref["n_fit"] = n_fit
    return ref


@pytest.mark.parametrize("model", ["regression", "mean"])
@pytest.mark.parametrize(("fit_window", "min_fit"), [(12, 8), (30, 30), (60, 10)])
def test_kernel_matches_statsmodels(data, model: str, fit_window: int, min_fit: int) -> None:
    y, x = data
    out = past_ols(y, x, model=model, fit_window=fit_window, min_fit=min_fit)
    ref = _reference(y, x, fit_window, min_fit, model)
    for col in ("expected", "gap", "scale", "z", "intercept", "slope"):
        np.testing.assert_allclose(out[col], ref[col], rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(out["n_fit"], ref["n_fit"])
    assert out["z"].notna().sum() > N // 2  # the comparison is not vacuous


def test_polyfit_gives_the_same_line(data) -> None:
    y, x = data
    out = past_ols(y, x, fit_window=25, min_fit=10)
    ok = np.isfinite(y) & np.isfinite(x)
    i = 100
    past = np.flatnonzero(ok[:i])[-25:]
    b, a = np.polyfit(x[past], y[past], 1)
    assert out.loc[i, "slope"] == pytest.approx(b, rel=1e-10)
    assert out.loc[i, "intercept"] == pytest.approx(a, rel=1e-10)


def test_truncation_leaves_the_past_unchanged(data) -> None:
    y, x = data
    full = past_ols(y, x, fit_window=20, min_fit=10)
    for t in (30, 64, 101):
        cut = past_ols(y[: t + 1], x[: t + 1], fit_window=20, min_fit=10)
        pd.testing.assert_frame_equal(cut, full.iloc[: t + 1], check_exact=True)
    # y_t itself never moves its own fit
    y2 = y.copy()
    y2[70] += 5.0
    moved = past_ols(y2, x, fit_window=20, min_fit=10)
    assert moved.loc[70, "expected"] == full.loc[70, "expected"]
    assert moved.loc[70, "gap"] == pytest.approx(full.loc[70, "gap"] + 5.0, rel=1e-12)


def test_grid_call_equals_per_parameter_calls(data) -> None:
    y, x = data
    y2 = np.column_stack([y, y[::-1]])
    x2 = np.column_stack([x, x**2])
    fits = [(12, 8, "regression"), (40, 20, "regression"), (15, 10, "mean")]
    res = PastOLS.run(
        y2,
        x2,
        fit_window=[f[0] for f in fits],
        min_fit=[f[1] for f in fits],
        model=[f[2] for f in fits],
    )
    assert res.z.shape == (N, 6)
    for i, (fw, mf, model) in enumerate(fits):
        for j in range(2):
            one = past_ols(y2[:, j], x2[:, j], model=model, fit_window=fw, min_fit=mf)
            for name in ("expected", "gap", "scale", "z", "n_fit", "intercept", "slope"):
                got = getattr(res, name).to_numpy()[:, 2 * i + j]
                np.testing.assert_array_equal(got, one[name].to_numpy(dtype=float))


def test_zero_scale_gives_signed_infinity_like_ieee_division() -> None:
    x = np.arange(10.0)
    y = 2.0 + 3.0 * x  # exact line: residual sd 0
    y[9] += 1.0
    out = past_ols_nb(y, x, 5, 3, 0)
    assert out[2][8] == pytest.approx(0.0, abs=1e-12)
    assert out[3][9] == math.inf or out[3][9] > 1e10


def test_bad_input_is_refused(data) -> None:
    y, x = data
    with pytest.raises(ValueError, match="min_fit"):
        past_ols(y, x, fit_window=5, min_fit=8)
    with pytest.raises(ValueError, match="min_fit"):
        past_ols(y, x, fit_window=5, min_fit=2)
    with pytest.raises(ValueError, match="model"):
        past_ols(y, x, model="median")
    with pytest.raises(ValueError, match="shape"):
        past_ols(y, x[:-1])
    with pytest.raises(ValueError, match="min_fit"):
        PastOLS.run(y, x, fit_window=5, min_fit=8)
