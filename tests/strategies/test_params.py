"""The shared exit and sizing fields: one definition per name, the same bounds everywhere."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from indicators import DAILY_ESTIMATORS, ESTIMATORS, Estimator
from strategies import STRATEGIES
from strategies.params import MOVED_TO_DATA, RENAMED_PARAMS

#: name -> (a value the shared definition refuses, one it accepts); the bounds as the glossary
#: states them (``docs/glossary.md``).
SHARED = {
    "take_profit": (0.0, 0.5),
    "stop_loss": (0.0, 0.5),
    "exit_dte": (-1, 1),
    "max_hold_days": (0, 3),
    "contracts": (0, 2),
    "max_contracts": (1001, 2),
    "account_risk": (0.51, 0.01),
}


def _plugins_with(field: str) -> list[str]:
    return sorted(n for n, p in STRATEGIES.items() if field in p.Params.model_fields)


@pytest.mark.parametrize("field", sorted(SHARED))
def test_every_strategy_with_a_shared_field_applies_its_bounds(field: str) -> None:
    bad, good = SHARED[field]
    names = _plugins_with(field)
    assert names, f"no strategy has {field}"
    for name in names:
        params = STRATEGIES[name].Params
        with pytest.raises(ValidationError) as info:
            params(**{field: bad})
        assert any(e["loc"] == (field,) for e in info.value.errors()), name
        base = params()
        assert field in params.model_fields
        # the accepted value is valid on its own (a combination rule may still refuse it)
        errs = []
        try:
            params(**{**base.model_dump(exclude={"hedge"}), field: good})
        except ValidationError as exc:
            errs = [e for e in exc.errors() if e["loc"] == (field,)]
        assert not errs, (name, errs)
        assert params.model_fields[field].description, (name, field)


def test_no_strategy_keeps_a_former_name() -> None:
    for name, plugin in STRATEGIES.items():
        fields = set(plugin.Params.model_fields)
        assert not fields & set(RENAMED_PARAMS), name
        assert not fields & set(MOVED_TO_DATA), name
        assert not plugin.Params.tunable & set(RENAMED_PARAMS), name


def test_one_estimator_type() -> None:
    assert get_args(Estimator) == ESTIMATORS == (
        "close_to_close",
        "parkinson",
        "garman_klass",
        "rogers_satchell",
        "yang_zhang",
    )
    assert set(DAILY_ESTIMATORS) == set(ESTIMATORS) - {"yang_zhang"}
    users = _plugins_with("rv_estimator")
    assert {"zero_dte_straddle", "vrp_harvest", "vol_dislocation", "directional_overlay"} <= set(
        users
    )
    for name in users:
        field = STRATEGIES[name].Params.model_fields["rv_estimator"]
        assert field.annotation == Estimator, name


def test_a_strategy_supporting_a_subset_names_it() -> None:
    params = STRATEGIES["vol_dislocation"].Params
    with pytest.raises(ValidationError, match="one-day variance form"):
        params(rv_estimator="yang_zhang")
    assert params(rv_estimator="rogers_satchell").rv_estimator == "rogers_satchell"


def test_tighter_bounds_where_the_basis_caps_them() -> None:
    # a short premium cannot gain more than its credit, a long one cannot lose more than it paid
    with pytest.raises(ValidationError):
        STRATEGIES["vrp_harvest"].Params(take_profit=1.5)
    with pytest.raises(ValidationError):
        STRATEGIES["vol_of_vol"].Params(stop_loss=1.5)
    assert STRATEGIES["vol_dislocation"].Params(take_profit=1.5).take_profit == 1.5
