"""Trading-day calendar (NYSE, via ``exchange_calendars``) and the timezone convention.

Daily bars carry a tz-aware index at midnight ``America/New_York`` of the session date.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

TZ = "America/New_York"
"""Timezone of every timestamp volsuite produces."""


@lru_cache(maxsize=1)
def _xnys() -> xcals.ExchangeCalendar:
    with warnings.catch_warnings():  # exchange_calendars 4.13 trips a pandas 3.1 deprecation
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return xcals.get_calendar("XNYS", start="1990-01-01")


def nyse_sessions(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE session dates between ``start`` and ``end`` (inclusive), tz-aware at midnight ET.

    Parameters
    ----------
    start, end : pandas.Timestamp
        Bounds, naive or tz-aware; only the date part is used.

    Returns
    -------
    pandas.DatetimeIndex
        Session dates, localized to ``America/New_York``.

    Notes
    -----
    Source: ``exchange_calendars.get_calendar("XNYS").sessions_in_range``. The calendar covers
    1990 onward; earlier dates raise ``exchange_calendars`` errors.
    """
    cal = _xnys()
    lo = max(pd.Timestamp(start.date()), cal.first_session)
    hi = min(pd.Timestamp(end.date()), cal.last_session)
    sessions = cal.sessions_in_range(lo, hi)
    return pd.DatetimeIndex(sessions.tz_localize(None)).tz_localize(TZ)


def is_nyse_session(dates: pd.DatetimeIndex) -> pd.Series:
    """Whether each date was an NYSE trading session (True/False per date).

    Parameters
    ----------
    dates : pandas.DatetimeIndex
        Session dates (tz-aware or naive); only the date part is used.

    Returns
    -------
    pandas.Series of bool
        Indexed like ``dates``. Dates outside the calendar's range (before 1990) count as sessions,
        so that nothing is dropped on a guess.
    """
    cal = _xnys()
    naive = pd.DatetimeIndex(dates).tz_localize(None).normalize()
    inside = (naive >= cal.first_session) & (naive <= cal.last_session)
    sessions = cal.sessions_in_range(cal.first_session, cal.last_session)
    flags = naive.isin(sessions) | ~inside
    return pd.Series(flags, index=dates)


MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0
"""ACT/365 minutes in a year: ``tte`` in years = minutes / ``MINUTES_PER_YEAR``."""


def session_minutes(dates: pd.DatetimeIndex) -> pd.Series:
    """Minutes from the open to the close of each NYSE session (390 on a full day, 210 on a half
    day).

    Parameters
    ----------
    dates : pandas.DatetimeIndex
        Session dates (tz-aware or naive).

    Returns
    -------
    pandas.Series of float
        Minutes, indexed like ``dates``; a date that is not a session raises.

    Raises
    ------
    ValueError
        A date is not an NYSE session (names the first one).

    Notes
    -----
    Source: ``ExchangeCalendar.session_open`` / ``session_close`` (early closes such as the day
    after Thanksgiving are 13:00 ET).
    """
    cal = _xnys()
    naive = pd.DatetimeIndex(dates).tz_localize(None).normalize()
    inside = (naive >= cal.first_session) & (naive <= cal.last_session)
    ok = naive.isin(cal.sessions_in_range(cal.first_session, cal.last_session))
    if not (ok | ~inside).all():
        bad = naive[~(ok | ~inside)][0].strftime("%Y-%m-%d")
        raise ValueError(f"{bad} is not an NYSE session")
    # before the calendar's range: assume a regular 09:30-16:00 session (390 minutes)
    minutes = np.full(len(naive), 390.0)
    sched = cal.schedule.loc[naive[inside], ["open", "close"]]
    minutes[inside] = (sched["close"] - sched["open"]).dt.total_seconds().to_numpy() / 60.0
    return pd.Series(minutes, index=dates, dtype=float)


DAY_FIRST = "%d/%m"
MONTH_FIRST = "%m/%d"


def day_month_order(
    max_first: int, max_second: int, n_ambiguous: int, source: str, example: str | None = None
) -> str:
    """Decide, from ALL slash dates of a file, whether they are ``MM/DD`` or ``DD/MM``.

    The decision is made once per file, never value by value (``03/01/2017`` must not be read as
    March 1st in a file whose other dates show it is January 3rd).

    Parameters
    ----------
    max_first, max_second : int
        Largest first and second ``/``-separated component over all slash dates of the file.
    n_ambiguous : int
        Slash dates whose first and second components differ and are both <= 12 (they read as
        two different days).
    source : str
        File name for the error message.
    example : str, optional
        One ambiguous value, quoted in the error.

    Returns
    -------
    str
        :data:`MONTH_FIRST` (``"%m/%d"``) or :data:`DAY_FIRST` (``"%d/%m"``).

    Raises
    ------
    DataValidationError
        Both components exceed 12 somewhere (mixed orders), or no value exceeds 12 while some
        values are ambiguous: the message asks for ``date_format``.
    """
    from data_feeds.errors import DataValidationError

    if max_first > 12 and max_second > 12:
        raise DataValidationError(
            source,
            "slash dates mix DD/MM and MM/DD (a first and a second component above 12); set "
            "date_format to the file's format",
            field="date",
        )
    if max_first > 12:
        return DAY_FIRST
    if max_second > 12 or n_ambiguous == 0:
        return MONTH_FIRST
    raise DataValidationError(
        source,
        f"ambiguous dates: {example or 'a slash date'} could be DD/MM or MM/DD (no day above 12 "
        'in the file); set date_format = "%m/%d/%Y" or "%d/%m/%Y"',
        field="date",
    )
