"""Walk-forward fold geometry, counted by hand."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from experiments.config import WalkForwardConfig
from experiments.walkforward import make_folds

DAYS = pd.bdate_range("2015-01-01", periods=1000, tz="America/New_York")


def test_rolling_folds_tile_the_test_period() -> None:
    folds = make_folds(DAYS, WalkForwardConfig(train_days=500, test_days=100))
    assert len(folds) == 5
    for k, f in enumerate(folds):
        assert f.test_start == DAYS[500 + 100 * k]
        assert f.train_start == DAYS[100 * k] and f.train_end == DAYS[499 + 100 * k]
        assert f.train_days == 500 and f.test_days == 100
        assert f.train_end < f.test_start
    assert folds[-1].test_end == DAYS[-1]
    for a, b in itertools.pairwise(folds):
        assert DAYS.get_loc(b.test_start) == DAYS.get_loc(a.test_end) + 1


def test_anchored_and_short_last_window() -> None:
    folds = make_folds(
        DAYS, WalkForwardConfig(scheme="anchored", train_days=450, test_days=100, min_test_days=20)
    )
    # tests start at 450, 550, ..., 950; the last has 50 sessions
    assert [DAYS.get_loc(f.test_start) for f in folds] == [450, 550, 650, 750, 850, 950]
    assert all(f.train_start == DAYS[0] for f in folds)
    assert folds[-1].test_days == 50
    strict = make_folds(DAYS, WalkForwardConfig(train_days=450, test_days=100, min_test_days=60))
    assert len(strict) == 5


def test_too_little_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="need at least train_days"):
        make_folds(DAYS[:100], WalkForwardConfig(train_days=504, test_days=126))


def test_start_end_restrict_the_calendar() -> None:
    folds = make_folds(
        DAYS,
        WalkForwardConfig(
            train_days=100, test_days=50, start=DAYS[200].date(), end=DAYS[399].date()
        ),
    )
    assert folds[0].train_start == DAYS[200] and folds[-1].test_end == DAYS[399]
