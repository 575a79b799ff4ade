"""Aligning a secondary daily series (VIX, VVIX) onto the underlying's trading days."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class AlignReport:
    """What aligning a series onto a calendar did.

    Attributes
    ----------
    name : str
        Series name.
    target_days : int
        Days in the target index.
    matched : int
        Target days the series has a value for.
    filled : list[str]
        Target days filled with the previous day's value (at most ``max_fill`` in a row).
    missing : list[str]
        Target days inside the series' span left NaN (gap longer than ``max_fill``).
    outside : int
        Target days before the series' first or after its last value (left NaN).
    extra : int
        Series rows on days not in the target index (dropped from the aligned series).
    """

    name: str
    target_days: int = 0
    matched: int = 0
    filled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    outside: int = 0
    extra: int = 0

    def summary(self) -> str:
        """One line with the counts."""
        text = (
            f"{self.name}: {self.matched} of {self.target_days} days matched, "
            f"{len(self.filled)} forward-filled (one day max)"
        )
        if self.filled:
            text += f" [{', '.join(self.filled[:5])}{', ...' if len(self.filled) > 5 else ''}]"
        text += (
            f", {len(self.missing)} gap days left missing, {self.outside} days outside the "
            f"series' span, {self.extra} rows off the calendar dropped"
        )
        return text


def align_to_index(
    series: pd.Series, index: pd.DatetimeIndex, *, max_fill: int = 1, name: str | None = None
) -> tuple[pd.Series, AlignReport]:
    """Reindex ``series`` onto ``index``, forward-filling at most ``max_fill`` consecutive days.

    A value is never carried across a gap longer than ``max_fill`` trading days: those days stay NaN
    and are listed in the report, as are the days that were filled, so nothing is filled silently.

    Parameters
    ----------
    series : pandas.Series
        Daily values on a tz-aware date index (e.g. VIX close, in vol points).
    index : pandas.DatetimeIndex
        Target trading days (tz-aware, increasing).
    max_fill : int
        Longest run of consecutive missing target days to fill from the last value (default 1).
    name : str, optional
        Name used in the report (default ``series.name``).

    Returns
    -------
    aligned : pandas.Series
        Values on ``index`` (NaN where not available).
    report : AlignReport
        Counts and dates of what was matched, filled, missing and dropped.

    Raises
    ------
    ValueError
        ``max_fill`` < 0 or the two indexes have different timezones.
    """
    if max_fill < 0:
        raise ValueError(f"max_fill must be >= 0, got {max_fill}")
    if series.index.tz != index.tz:
        raise ValueError(f"timezone mismatch: series {series.index.tz} vs target {index.tz}")
    report = AlignReport(name=str(name or series.name), target_days=len(index))
    report.extra = int((~series.index.isin(index)).sum())
    direct = series.reindex(index)
    have = direct.notna().to_numpy()
    report.matched = int(have.sum())
    # Fill from the series' own last observation strictly before each missing target day, but only
    # if the run of missing target days so far is <= max_fill.
    last = series.reindex(index, method="ffill")
    values = direct.to_numpy(dtype=float).copy()
    valid = series.dropna().index
    first, last_day = (valid[0], valid[-1]) if len(valid) else (None, None)
    run = 0
    for i in range(len(index)):
        if have[i]:
            run = 0
            continue
        if first is None or index[i] < first or index[i] > last_day:
            report.outside += 1
            continue
        run += 1
        day = index[i].strftime("%Y-%m-%d")
        if run <= max_fill and np.isfinite(last.iloc[i]):
            values[i] = last.iloc[i]
            report.filled.append(day)
        else:
            report.missing.append(day)
    return pd.Series(values, index=index, name=series.name), report
