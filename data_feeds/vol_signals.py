"""Daily volatility-signal table from the chain store (skew, term structure) and the VVIX series.

Per quote date, from one chain snapshot (:meth:`data_feeds.chain_store.ChainStore.snapshot`):

======================  ===========================================================================
atm_iv                  ATM implied vol of the expiry nearest ``target_dte``
                        (:meth:`ChainSnapshot.atm_iv`; decimal, ACT/365)
dte_atm                 calendar days to that expiry
iv_25c, iv_25p          implied vol at Black-76 forward delta +0.25 (call) and -0.25 (put), linear
                        in delta between the two bracketing out-of-the-money listed strikes (the
                        rule of :meth:`ChainSnapshot.risk_reversal_25d`)
risk_reversal_25d       ``iv_25c - iv_25p`` (:meth:`ChainSnapshot.risk_reversal_25d`; negative for
                        the usual put skew)
butterfly_25d           ``(iv_25c + iv_25p) / 2 - atm_iv`` (the "smile" or strangle-minus-ATM
                        butterfly quoted in vol)
term_slope              OLS slope of ATM IV on ``tte`` (years) over the expiries with
                        ``term_min_dte <= dte <= term_max_dte`` (decimal vol per year)
atm_iv_0dte             intercept of that regression: ATM IV extrapolated to ``tte = 0``
n_term_expiries         number of expiries in the regression
n_term_skipped          expiries in the DTE band left out because they have no ATM IV
======================  ===========================================================================

All values at a date use that date's snapshot only (no look-ahead). A value that cannot be
computed is NaN, and the reason is counted and kept in :class:`VolSignalReport` (never silently
dropped).

The design sketch (``../shared/design/000_b5d10140c737cba0.txt``, "Term Structure Slope
Signal") builds the curve from the 0DTE and 1DTE options only. Our daily chains are end-of-day
snapshots (15:45 ET), where the same-day expiry has 15 minutes left and no usable ATM IV, so by
default we fit a line through every expiry in a 1..60 DTE band; ``term_min_dte=0,
term_max_dte=1`` gives the sketch's two-expiry version on intraday snapshots. The two-point
slope (far minus near) stays available as ``atm_term_slope`` of
:func:`data_feeds.chain_features`.

VVIX: :func:`load_vvix` reads ``../shared/data/index/vvix_daily.csv`` (Cboe ``DATE,VVIX``,
``MM/DD/YYYY``). Six 2006 values in that file are wrong (15.71 on 2006-03-15 for example, VVIX
closes from 2007 on are all above 59); by default the series starts on 2007-01-01 and every dropped
row is counted in :class:`VVIXReport`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_feeds.chain_feed import _pick_root
from data_feeds.chains import ChainSnapshot, QuoteUnavailable
from data_feeds.errors import DataSourceError, DataValidationError

__all__ = [
    "VOL_SIGNAL_COLUMNS",
    "VVIXReport",
    "VolSignalReport",
    "load_vvix",
    "snapshot_vol_signals",
    "vol_signal_table",
]

VOL_SIGNAL_COLUMNS: tuple[str, ...] = (
    "atm_iv",
    "dte_atm",
    "iv_25c",
    "iv_25p",
    "risk_reversal_25d",
    "butterfly_25d",
    "term_slope",
    "atm_iv_0dte",
    "n_term_expiries",
    "n_term_skipped",
)
"""Columns of :func:`vol_signal_table` (see the module docstring)."""


def snapshot_vol_signals(
    snapshot: ChainSnapshot,
    *,
    target_dte: float = 30.0,
    root: str | None = None,
    term_min_dte: int = 1,
    term_max_dte: int = 60,
) -> tuple[dict[str, float], dict[str, str]]:
    """The vol signals of one snapshot (one row of :func:`vol_signal_table`).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain at the signal time.
    target_dte : float, default 30
        Calendar days to the expiry used for ``atm_iv``, the wings and the butterfly.
    root : str, optional
        Only this root's expiries; by default every root, an expiry quoted by several roots
        using the alphabetically first (``SPX``, the AM-settled monthly, over ``SPXW``).
    term_min_dte, term_max_dte : int
        Calendar-day band of the expiries in the term regression (``term_min_dte >= 0``;
        the default 1 leaves out the same-day expiry, whose ATM IV at the close is undefined).

    Returns
    -------
    values : dict of str to float
        One value per :data:`VOL_SIGNAL_COLUMNS` (NaN when not available).
    errors : dict of str to str
        For each NaN value, the reason.

    Raises
    ------
    ValueError
        ``term_min_dte > term_max_dte`` or negative.
    """
    if not (0 <= term_min_dte <= term_max_dte):
        raise ValueError(
            f"need 0 <= term_min_dte <= term_max_dte, got {term_min_dte!r}, {term_max_dte!r}"
        )
    values = dict.fromkeys(VOL_SIGNAL_COLUMNS, math.nan)
    errors: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], float]) -> float:
        try:
            values[name] = float(fn())
        except QuoteUnavailable as exc:
            errors[name] = f"{exc.reason}: {exc}"
        return values[name]

    try:
        near = snapshot.nearest_expiry(target_dte, root)
        near_root = _pick_root(snapshot, near, root)
    except QuoteUnavailable as exc:
        for name in VOL_SIGNAL_COLUMNS:
            errors[name] = f"{exc.reason}: {exc}"
        return values, errors
    values["dte_atm"] = float((near - snapshot.quote_date).days)
    atm = attempt("atm_iv", lambda: snapshot.atm_iv(near, near_root))
    c25 = attempt("iv_25c", lambda: snapshot.iv_at_delta(near, near_root, "C", 0.25))
    p25 = attempt("iv_25p", lambda: snapshot.iv_at_delta(near, near_root, "P", -0.25))
    attempt("risk_reversal_25d", lambda: snapshot.risk_reversal_25d(near, near_root))
    if math.isfinite(atm) and math.isfinite(c25) and math.isfinite(p25):
        values["butterfly_25d"] = 0.5 * (c25 + p25) - atm
    else:
        errors["butterfly_25d"] = "needs atm_iv, iv_25c and iv_25p: " + "; ".join(
            errors[k] for k in ("atm_iv", "iv_25c", "iv_25p") if k in errors
        )

    tte: list[float] = []
    ivs: list[float] = []
    skipped = 0
    for expiration in snapshot.expiries(root):
        dte = (expiration - snapshot.quote_date).days
        if not (term_min_dte <= dte <= term_max_dte):
            continue
        r = _pick_root(snapshot, expiration, root)
        try:
            iv = snapshot.atm_iv(expiration, r)
        except QuoteUnavailable:
            skipped += 1  # reported as n_term_skipped
            continue
        tte.append(snapshot.tte(expiration, r))
        ivs.append(iv)
    values["n_term_expiries"] = float(len(tte))
    values["n_term_skipped"] = float(skipped)
    if len(tte) >= 2 and np.ptp(tte) > 0.0:
        slope, intercept = np.polyfit(np.asarray(tte), np.asarray(ivs), 1)
        values["term_slope"] = float(slope)
        values["atm_iv_0dte"] = float(intercept)
    else:
        msg = (
            f"{len(tte)} expiries with an ATM implied vol in {term_min_dte}..{term_max_dte} DTE "
            "(need 2)"
        )
        errors["term_slope"] = msg
        errors["atm_iv_0dte"] = msg
    return values, errors


@dataclass
class VolSignalReport:
    """What :func:`vol_signal_table` could not compute.

    Attributes
    ----------
    n_dates : int
        Quote dates processed.
    missing : dict of str to int
        Per column, the number of dates where it is NaN.
    errors : list of (date, column, reason)
        Every NaN with its reason.
    """

    n_dates: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[dt.date, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line: dates processed and NaN counts per column."""
        bad = ", ".join(f"{k}={v}" for k, v in self.missing.items() if v) or "none"
        return f"{self.n_dates} dates; NaN counts: {bad}"


def vol_signal_table(
    store: object,
    underlying: str = "SPX",
    *,
    quote_dates: Sequence[dt.date] | None = None,
    quote_time: dt.time | str | None = None,
    roots: Sequence[str] | None = None,
    root: str | None = None,
    target_dte: float = 30.0,
    term_min_dte: int = 1,
    term_max_dte: int = 60,
    liquid_only: bool = False,
    rate: float = 0.0,
) -> tuple[pd.DataFrame, VolSignalReport]:
    """Daily vol-signal table: 25-delta RR and butterfly, ATM IV, term slope and 0DTE intercept.

    Parameters
    ----------
    store : data_feeds.chain_store.ChainStore
        The chain store (read-only is fine).
    underlying : str, default "SPX"
    quote_dates : sequence of datetime.date, optional
        Dates to compute; all stored dates of ``underlying`` (and ``roots``) by default.
    quote_time : datetime.time or str, optional
        Snapshot time of day (ET); the latest snapshot of each date by default.
    roots : sequence of str, optional
        Roots loaded from the store.
    root : str, optional
        Root used for the signals (see :func:`snapshot_vol_signals`).
    target_dte, term_min_dte, term_max_dte
        See :func:`snapshot_vol_signals`.
    liquid_only : bool
        Only the store's liquid rows.
    rate : float
        Continuously compounded rate (decimal) for forwards and implied vols.

    Returns
    -------
    table : pandas.DataFrame
        Index ``quote_date`` (``datetime64``), columns :data:`VOL_SIGNAL_COLUMNS`.
    report : VolSignalReport
        NaN counts and reasons.

    Raises
    ------
    data_feeds.chain_store.SnapshotNotFoundError
        A requested date has no snapshot.
    ValueError
        Bad DTE band.
    """
    dates = list(quote_dates) if quote_dates is not None else store.quote_dates(underlying, roots)
    rows = []
    report = VolSignalReport(n_dates=len(dates), missing=dict.fromkeys(VOL_SIGNAL_COLUMNS, 0))
    for d in dates:
        snap = store.snapshot(
            underlying, d, quote_time, roots=roots, liquid_only=liquid_only, rate=rate
        )
        values, errors = snapshot_vol_signals(
            snap,
            target_dte=target_dte,
            root=root,
            term_min_dte=term_min_dte,
            term_max_dte=term_max_dte,
        )
        rows.append(values)
        for name, reason in errors.items():
            report.missing[name] += 1
            report.errors.append((snap.quote_date, name, reason))
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in dates], name="quote_date")
    table = pd.DataFrame(rows, index=index, columns=list(VOL_SIGNAL_COLUMNS), dtype=float)
    return table, report


@dataclass(frozen=True)
class VVIXReport:
    """Rows read and dropped by :func:`load_vvix`.

    Attributes
    ----------
    source : str
        The file read.
    n_read : int
        Data rows in the file.
    n_before_start : int
        Rows dropped because they are before ``start`` (the wrong 2006 values among them).
    n_kept : int
        Rows returned.
    """

    source: str
    n_read: int
    n_before_start: int
    n_kept: int


def load_vvix(
    path: str | Path, start: str | dt.date | None = "2007-01-01"
) -> tuple[pd.Series, VVIXReport]:
    """Read the Cboe VVIX daily close file.

    Parameters
    ----------
    path : str or Path
        CSV with header ``DATE,VVIX``, dates ``MM/DD/YYYY`` (Cboe download format), e.g.
        ``../shared/data/index/vvix_daily.csv``.
    start : date-like or None, default "2007-01-01"
        First date kept; earlier rows are dropped and counted. ``None`` keeps everything
        (including the six wrong 2006 values).

    Returns
    -------
    vvix : pandas.Series
        Name ``vvix``, index ``date`` (``datetime64``, ascending, unique), values in index points.
    report : VVIXReport

    Raises
    ------
    DataSourceError
        File missing or without the ``DATE`` and ``VVIX`` columns.
    DataValidationError
        A date that does not parse as ``MM/DD/YYYY``, a duplicated date, or a VVIX value that is
        not a finite positive number (names the row and field).
    """
    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise DataSourceError(f"{src}: VVIX file not found")
    raw = pd.read_csv(p, dtype=str, keep_default_na=False)
    cols = {c.strip().upper(): c for c in raw.columns}
    if "DATE" not in cols or "VVIX" not in cols:
        raise DataSourceError(f"{src}: expected columns DATE,VVIX, got {list(raw.columns)}")
    dates = pd.to_datetime(raw[cols["DATE"]].str.strip(), format="%m/%d/%Y", errors="coerce")
    for i in np.flatnonzero(dates.isna().to_numpy()):
        raise DataValidationError(
            src,
            f"date {raw[cols['DATE']].iat[i]!r} is not MM/DD/YYYY",
            row=f"line {i + 2}",
            field="DATE",
        )
    values = pd.to_numeric(raw[cols["VVIX"]].str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(values) & (values > 0.0))
    for i in np.flatnonzero(bad):
        raise DataValidationError(
            src,
            f"VVIX {raw[cols['VVIX']].iat[i]!r} is not a finite positive number",
            row=f"{dates.iat[i]:%Y-%m-%d}",
            field="VVIX",
        )
    dup = dates.duplicated().to_numpy()
    for i in np.flatnonzero(dup):
        raise DataValidationError(
            src, "date appears more than once", row=f"{dates.iat[i]:%Y-%m-%d}", field="DATE"
        )
    s = pd.Series(values, index=pd.DatetimeIndex(dates, name="date"), name="vvix").sort_index()
    n_read = len(s)
    if start is not None:
        s = s[s.index >= pd.Timestamp(start)]
    return s, VVIXReport(src, n_read, n_read - len(s), len(s))
