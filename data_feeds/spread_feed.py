"""Two-leg spread feed: leg loading, Engle-Granger hedge ratio on a rolling formation window, the
spread, its exact OU fit and a cointegration health check.

A pair is two daily price series, ``y`` and ``x``; the spread traded is one share of ``y`` short
``beta`` shares of ``x``: ``spread_t = y_t - beta x_t`` (dollars per spread unit; the regression
intercept is not subtracted, the OU mean ``theta`` absorbs it).

Formation and timing
--------------------
Every ``refit_days`` sessions a *formation* is estimated on the ``formation_days`` sessions that
end on the session *before* it takes effect:

1. hedge ratio: OLS ``y = alpha + beta x + e`` and the Engle-Granger cointegration test of the
   residual (statsmodels ``tsa.stattools.coint``, constant trend);
2. the formation spread ``y - beta x`` over the window and its exact OU maximum-likelihood fit
   (``dt = 1/252`` years per session); steps 1-2 are the numba kernels of
   :mod:`indicators.cointegration` (:data:`~indicators.cointegration.PairFormation`, the whole
   ``formation_days`` x ``refit_days`` grid in one call; :func:`pricing.ou.ou_mle_nb`);
3. health: the pair is *healthy* when the cointegration p-value is at most ``max_pvalue``, the
   OU fit is mean reverting, its half-life is at most ``max_half_life_days`` sessions, and the
   half-life has not drifted by more than a factor ``max_half_life_drift`` from the previous
   formation's (either way). A strategy stops trading (and flattens) when it is not.

The formation in force on session ``t`` is the latest one whose window ended before ``t``: every
column of :func:`formation_table` at ``t`` is a function of closes up to ``t - 1`` only, so
truncating the future never changes a past row (tested). The spread *value* on ``t`` uses the
closes of ``t`` with the formation's ``beta``.

Loading
-------
:func:`load_pair_leg` reads every layout of :func:`data_feeds.load_ohlc` plus the compact
``date,hi,lo,cl,op,vol`` layout with ``YYYYMMDD`` dates of the classic EWA/EWC files in
``../shared/data/pairs/``; :func:`align_legs` keeps the sessions both legs have and counts what
each side lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_feeds.bt_feeds import ohlc_feed
from data_feeds.calendar import TZ
from data_feeds.errors import DataSourceError, DataValidationError
from data_feeds.ohlc import LoadReport, load_ohlc, validate_ohlc
from indicators.cointegration import FORMATION_OUTPUTS, PairFormation, hedge_ratio_nb
from pricing.ou import OU_OK, OU_STATUS_BY_CODE, ou_status_message

__all__ = [
    "FORMATION_COLUMNS",
    "HedgeFit",
    "PairAlignReport",
    "align_legs",
    "apply_health",
    "engle_granger",
    "formation_table",
    "formation_tables",
    "load_pair_leg",
    "pair_feeds",
]

_COMPACT = {"hi": "high", "lo": "low", "cl": "close", "op": "open", "vol": "volume"}

FORMATION_COLUMNS = (
    "formation_id",
    "formation_start",
    "formation_end",
    "beta",
    "intercept",
    "coint_pvalue",
    "coint_stat",
    "theta",
    "mu",
    "sigma",
    "half_life_days",
    "ou_status",
    "healthy",
    "health_reason",
)
"""Columns of :func:`formation_table` (besides ``y``, ``x`` and ``spread``)."""


def load_pair_leg(
    source: str | Path,
    *,
    root: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    on_invalid: str = "raise",
    volume_scale: float = 1.0,
) -> pd.DataFrame:
    """Load one leg of a pair as a validated daily OHLC frame.

    Parameters
    ----------
    source : str or pathlib.Path
        Any :func:`data_feeds.load_ohlc` source, or a CSV in the compact layout
        ``date,hi,lo,cl,op,vol`` with ``YYYYMMDD`` dates (``ewa_daily_2006_2012.csv``).
    root : str, optional
        Series of a long-format file (``symbol`` column), as in :func:`data_feeds.load_ohlc`.
    start, end : str or pandas.Timestamp, optional
        Inclusive session-date bounds (removals counted in the report).
    on_invalid : {"raise", "drop"}
        As in :func:`data_feeds.load_ohlc`.
    volume_scale : float
        Multiplier applied to the volume column (shares per unit of the file's volume; e.g. 100
        when a file counts round lots). Recorded in the report notes when not 1.

    Returns
    -------
    pandas.DataFrame
        ``open, high, low, close`` (dollars per share) and ``volume`` (shares) when present;
        tz-aware session index named ``date``; ``attrs["load_report"]`` as
        :func:`data_feeds.load_ohlc`.

    Raises
    ------
    DataSourceError
        Missing file or unknown layout; ``root`` given for the compact layout; bad
        ``volume_scale``.
    DataValidationError
        A date that is not ``YYYYMMDD``, a non-numeric value, or a row violating the OHLC rules
        (the message names the file, the row and the field).
    """
    if not (math.isfinite(volume_scale) and volume_scale > 0):
        raise DataSourceError(f"{source}: volume_scale must be > 0, got {volume_scale!r}")
    path = Path(str(source))
    header = _compact_header(path)
    if header is None:
        frame = load_ohlc(source, root=root, start=start, end=end, on_invalid=on_invalid)
    else:
        if root is not None:
            raise DataSourceError(
                f"{source}: root={root!r} given but the file has no symbol column"
            )
        frame = _load_compact(path, start=start, end=end, on_invalid=on_invalid)
    if volume_scale != 1.0 and "volume" in frame.columns:
        report = frame.attrs["load_report"]
        frame = frame.assign(volume=frame["volume"] * volume_scale)
        report.notes.append(f"volume multiplied by {volume_scale:g}")
        frame.attrs["load_report"] = report
        frame.attrs["source"] = report.source
    return frame


def _compact_header(path: Path) -> list[str] | None:
    """The header of a compact ``date,hi,lo,cl,op,vol`` CSV, else None (any other layout)."""
    name = path.name.lower()
    if not path.exists() or not name.endswith((".csv", ".csv.gz", ".txt")):
        return None
    try:
        cols = pd.read_csv(path, nrows=0).columns
    except Exception:
        return None
    lower = [str(c).strip().lower() for c in cols]
    return lower if {"date", "hi", "lo", "cl", "op"} <= set(lower) else None


def _load_compact(
    path: Path,
    *,
    start: str | pd.Timestamp | None,
    end: str | pd.Timestamp | None,
    on_invalid: str,
) -> pd.DataFrame:
    source = str(path)
    report = LoadReport(source=source)
    try:
        raw = pd.read_csv(path, dtype={"date": str})
    except Exception as exc:
        raise DataSourceError(f"{path}: cannot be read ({exc})") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    report.rows_read = len(raw)
    report.notes.append("compact layout date,hi,lo,cl,op,vol (YYYYMMDD dates)")
    text = raw.pop("date").astype(str).str.strip()
    dates = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    if dates.isna().any():
        pos = int(np.argmax(dates.isna().to_numpy()))
        raise DataValidationError(
            source, f"date {text.iloc[pos]!r} is not YYYYMMDD", row=f"#{pos + 1}", field="date"
        )
    index = pd.DatetimeIndex(dates).tz_localize(TZ)
    index.name = "date"
    out = pd.DataFrame(index=index)
    for short, col in _COMPACT.items():
        if short not in raw.columns:
            continue
        values = pd.to_numeric(raw[short], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) & raw[short].notna().to_numpy()
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataValidationError(
                source,
                f"value {raw[short].iloc[pos]!r} is not a number",
                row=index[pos].strftime("%Y-%m-%d"),
                field=col,
            )
        out[col] = values
    return validate_ohlc(out, source, report=report, start=start, end=end, on_invalid=on_invalid)


@dataclass
class PairAlignReport:
    """What aligning two legs on common sessions removed.

    Attributes
    ----------
    y_name, x_name : str
        Leg labels.
    common : int
        Sessions kept (both legs present).
    y_only, x_only : list of pandas.Timestamp
        Sessions dropped because only that leg had a bar.
    """

    y_name: str
    x_name: str
    common: int
    y_only: list[pd.Timestamp] = field(default_factory=list)
    x_only: list[pd.Timestamp] = field(default_factory=list)

    def summary(self) -> str:
        """One line: sessions kept and dropped per leg (first few dates listed)."""

        def dates(items: list[pd.Timestamp]) -> str:
            head = ", ".join(f"{d:%Y-%m-%d}" for d in items[:5])
            return head + (", ..." if len(items) > 5 else "")

        text = f"pair {self.y_name}/{self.x_name}: {self.common} common sessions"
        if self.y_only:
            text += f"; dropped {len(self.y_only)} with only {self.y_name} ({dates(self.y_only)})"
        if self.x_only:
            text += f"; dropped {len(self.x_only)} with only {self.x_name} ({dates(self.x_only)})"
        return text


def align_legs(
    y: pd.DataFrame, x: pd.DataFrame, *, y_name: str = "y", x_name: str = "x"
) -> tuple[pd.DataFrame, pd.DataFrame, PairAlignReport]:
    """Keep the sessions both legs have (no filling), counting what each side lost.

    Parameters
    ----------
    y, x : pandas.DataFrame
        Validated leg frames (tz-aware session index, ``close`` at least).
    y_name, x_name : str
        Labels for the report.

    Returns
    -------
    y_aligned, x_aligned : pandas.DataFrame
        Both restricted to the common sessions.
    report : PairAlignReport

    Raises
    ------
    DataValidationError
        Fewer than 2 common sessions.
    """
    common = y.index.intersection(x.index)
    report = PairAlignReport(
        y_name,
        x_name,
        len(common),
        list(y.index.difference(common)),
        list(x.index.difference(common)),
    )
    if len(common) < 2:
        raise DataValidationError(
            f"{y_name}/{x_name}", f"only {len(common)} common sessions", field="date"
        )
    return y.loc[common], x.loc[common], report


@dataclass(frozen=True)
class HedgeFit:
    """Engle-Granger step one and the cointegration test on one window.

    Attributes
    ----------
    beta : float
        Hedge ratio: shares of ``x`` per share of ``y`` (OLS slope).
    intercept : float
        OLS intercept (dollars).
    coint_pvalue : float
        MacKinnon p-value of the Engle-Granger test (statsmodels ``coint``).
    coint_stat : float
        The test's t-statistic.
    n_obs : int
        Sessions in the window.
    """

    beta: float
    intercept: float
    coint_pvalue: float
    coint_stat: float
    n_obs: int


def engle_granger(y: np.ndarray, x: np.ndarray) -> HedgeFit:
    """Hedge ratio by OLS and Engle-Granger cointegration p-value of ``y`` on ``x``.

    Parameters
    ----------
    y, x : numpy.ndarray, shape (n,)
        Prices (dollars per share) on the same sessions, ``n >= 20``, all finite.

    Returns
    -------
    HedgeFit

    Raises
    ------
    ValueError
        Shapes differ, fewer than 20 observations, or non-finite values.

    References
    ----------
    Engle, R. F. and Granger, C. W. J. (1987). "Co-integration and error correction".
    *Econometrica* 55(2), 251-276. Hedge ratio: :func:`indicators.cointegration.hedge_ratio_nb`
    (OLS closed form, checked against statsmodels ``OLS``); test: statsmodels
    ``tsa.stattools.coint`` (``trend="c"``, ADF lag by AIC, MacKinnon 2010 p-values).
    """
    y = np.ascontiguousarray(np.asarray(y, dtype=float))
    x = np.ascontiguousarray(np.asarray(x, dtype=float))
    if y.shape != x.shape or y.ndim != 1:
        raise ValueError(f"y and x must be 1-D of equal length, got {y.shape} and {x.shape}")
    if y.size < 20:
        raise ValueError(f"need at least 20 observations, got {y.size}")
    if not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise ValueError("y and x must be finite")
    intercept, beta = hedge_ratio_nb(y, x)
    stat, pvalue = _coint(y, x)
    return HedgeFit(
        beta=float(beta),
        intercept=float(intercept),
        coint_pvalue=pvalue,
        coint_stat=stat,
        n_obs=int(y.size),
    )


def _coint(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """``(t-statistic, MacKinnon p-value)`` of statsmodels ``coint(y, x, trend="c")``."""
    from statsmodels.tsa.stattools import coint

    stat, pvalue, _ = coint(y, x, trend="c")
    return float(stat), float(pvalue)


def formation_table(
    y: pd.Series,
    x: pd.Series,
    *,
    formation_days: int = 252,
    refit_days: int = 21,
    max_pvalue: float = 0.10,
    max_half_life_days: float = 126.0,
    max_half_life_drift: float = 3.0,
    dt: float = 1.0 / 252.0,
) -> pd.DataFrame:
    """The spread and the formation (hedge ratio, OU fit, health) in force on every session.

    Parameters
    ----------
    y, x : pandas.Series
        Closes of the two legs (dollars per share) on the same sessions (:func:`align_legs`).
    formation_days : int
        Sessions in each formation window (>= 30).
    refit_days : int
        Sessions between formations (>= 1).
    max_pvalue : float
        Largest Engle-Granger p-value for a healthy pair.
    max_half_life_days : float
        Largest OU half-life (sessions) for a healthy pair.
    max_half_life_drift : float
        Largest ratio (either way, >= 1) between the half-lives of consecutive formations.
    dt : float
        Years per session for the OU fit.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``y``: ``y``, ``x``, ``spread`` (``y - beta x`` with the formation in force,
        NaN before the first formation) and :data:`FORMATION_COLUMNS`. ``formation_start`` /
        ``formation_end`` are the first and last sessions of the window; the row of session
        ``t`` only uses closes up to ``t - 1``. ``healthy`` is False before the first formation.

    Raises
    ------
    ValueError
        Misaligned inputs, a bad parameter, or fewer than ``formation_days + 1`` sessions.
    """
    key = (formation_days, refit_days)
    return formation_tables(
        y,
        x,
        [key],
        max_pvalue=max_pvalue,
        max_half_life_days=max_half_life_days,
        max_half_life_drift=max_half_life_drift,
        dt=dt,
    )[key]


def formation_tables(
    y: pd.Series,
    x: pd.Series,
    windows: Sequence[tuple[int, int]],
    *,
    max_pvalue: float = 0.10,
    max_half_life_days: float = 126.0,
    max_half_life_drift: float = 3.0,
    dt: float = 1.0 / 252.0,
) -> dict[tuple[int, int], pd.DataFrame]:
    """:func:`formation_table` of every ``(formation_days, refit_days)`` in ``windows``.

    The hedge ratios and OU fits of the whole grid come from one
    :data:`indicators.cointegration.PairFormation` call; the Engle-Granger p-value is computed
    once per distinct formation window (statsmodels ``coint``).

    Parameters
    ----------
    y, x : pandas.Series
        Closes of the two legs (dollars per share) on the same sessions (:func:`align_legs`).
    windows : sequence of (int, int)
        ``(formation_days, refit_days)`` pairs (``formation_days >= 30``, ``refit_days >= 1``).
    max_pvalue, max_half_life_days, max_half_life_drift, dt
        As :func:`formation_table`.

    Returns
    -------
    dict
        ``(formation_days, refit_days)`` -> the :func:`formation_table` frame.

    Raises
    ------
    ValueError
        As :func:`formation_table`, for any pair.
    """
    if not y.index.equals(x.index):
        raise ValueError("y and x must share one index (use align_legs)")
    keys = [(int(fd), int(rd)) for fd, rd in windows]
    n = len(y)
    for formation_days, refit_days in keys:
        if formation_days < 30:
            raise ValueError(f"formation_days must be >= 30, got {formation_days}")
        if refit_days < 1:
            raise ValueError(f"refit_days must be >= 1, got {refit_days}")
        if n <= formation_days:
            raise ValueError(
                f"{n} sessions: need more than formation_days={formation_days} to form the pair"
            )
    if not max_half_life_drift >= 1.0:
        raise ValueError(f"max_half_life_drift must be >= 1, got {max_half_life_drift}")
    yv = np.ascontiguousarray(y.to_numpy(dtype=float))
    xv = np.ascontiguousarray(x.to_numpy(dtype=float))
    res = PairFormation.run(
        yv, xv, formation_days=[k[0] for k in keys], refit_days=[k[1] for k in keys], dt=dt
    )
    outs = {name: getattr(res, name).to_numpy().reshape(n, len(keys)) for name in FORMATION_OUTPUTS}
    tests: dict[tuple[int, int], tuple[float, float]] = {}
    tables: dict[tuple[int, int], pd.DataFrame] = {}
    for i, (formation_days, refit_days) in enumerate(keys):
        rows: list[dict[str, object]] = []
        prev_half_life = math.nan
        # first session each formation is in force; its window is [t - formation_days, t)
        for k, t in enumerate(range(formation_days, n, refit_days)):
            lo = t - formation_days
            if (lo, t) not in tests:
                tests[(lo, t)] = _coint(yv[lo:t], xv[lo:t])
            stat, pvalue = tests[(lo, t)]
            code = int(outs["ou_code"][t, i])
            status = OU_STATUS_BY_CODE[code]
            ok = status == OU_OK
            half_life = float(outs["half_life_days"][t, i])
            reason_status = (
                status if ok else f"{status} ({ou_status_message(code, outs['ar_slope'][t, i])})"
            )
            healthy, reason = _health_values(
                pvalue,
                ok,
                reason_status,
                half_life,
                prev_half_life,
                max_pvalue,
                max_half_life_days,
                max_half_life_drift,
            )
            rows.append(
                {
                    "session": y.index[t],
                    "formation_id": k,
                    "formation_start": y.index[lo],
                    "formation_end": y.index[t - 1],
                    "beta": float(outs["beta"][t, i]),
                    "intercept": float(outs["intercept"][t, i]),
                    "coint_pvalue": pvalue,
                    "coint_stat": stat,
                    "theta": float(outs["theta"][t, i]),
                    "mu": float(outs["mu"][t, i]),
                    "sigma": float(outs["sigma"][t, i]),
                    "half_life_days": half_life,
                    "ou_status": status,
                    "healthy": healthy,
                    "health_reason": reason,
                }
            )
            prev_half_life = half_life if ok else math.nan
        forms = pd.DataFrame(rows).set_index("session")
        table = forms.reindex(y.index).ffill()  # the formation in force until the next one
        before = table.index < y.index[formation_days]
        table.loc[before, "healthy"] = False
        table.loc[before, "health_reason"] = "no formation yet"
        table["healthy"] = table["healthy"].astype(bool)
        table["formation_id"] = table["formation_id"].fillna(-1).astype(int)
        table.insert(0, "y", yv)
        table.insert(1, "x", xv)
        table.insert(2, "spread", outs["spread"][:, i])
        tables[(formation_days, refit_days)] = table
    return tables


def apply_health(
    table: pd.DataFrame,
    *,
    max_pvalue: float,
    max_half_life_days: float,
    max_half_life_drift: float,
) -> pd.DataFrame:
    """Recompute ``healthy`` / ``health_reason`` of a :func:`formation_table` with other limits.

    The estimates (hedge ratio, p-value, OU fit) do not depend on the limits, so a search over
    the limits reuses one table. Rules as in :func:`formation_table`; the drift compares each
    formation with the previous one.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`formation_table`.
    max_pvalue, max_half_life_days, max_half_life_drift : float
        As in :func:`formation_table`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``healthy`` and ``health_reason`` replaced.

    Raises
    ------
    ValueError
        ``max_half_life_drift < 1``.
    """
    if not max_half_life_drift >= 1.0:
        raise ValueError(f"max_half_life_drift must be >= 1, got {max_half_life_drift}")
    out = table.copy()
    forms = out.loc[out["formation_id"] >= 0].drop_duplicates("formation_id")
    verdict: dict[int, tuple[bool, str]] = {}
    prev = math.nan
    for row in forms.itertuples():
        hedge = HedgeFit(row.beta, row.intercept, row.coint_pvalue, row.coint_stat, 0)
        ok = row.ou_status == "ok"
        verdict[int(row.formation_id)] = _health_values(
            hedge.coint_pvalue,
            ok,
            str(row.ou_status),
            row.half_life_days,
            prev,
            max_pvalue,
            max_half_life_days,
            max_half_life_drift,
        )
        prev = row.half_life_days if ok else math.nan
    ids = out["formation_id"].to_numpy()
    out["healthy"] = [verdict[i][0] if i >= 0 else False for i in ids]
    out["health_reason"] = [verdict[i][1] if i >= 0 else "no formation yet" for i in ids]
    return out


def _health_values(
    pvalue: float,
    ou_ok: bool,
    ou_status: str,
    half_life_days: float,
    prev_half_life: float,
    max_pvalue: float,
    max_half_life_days: float,
    max_drift: float,
) -> tuple[bool, str]:
    if not pvalue <= max_pvalue:
        return False, f"cointegration p-value {pvalue:.3f} > {max_pvalue:g}"
    if not ou_ok:
        return False, f"OU fit: {ou_status}"
    hl = half_life_days
    if not hl <= max_half_life_days:
        return False, f"half-life {hl:.1f} sessions > {max_half_life_days:g}"
    if math.isfinite(prev_half_life) and prev_half_life > 0:
        drift = max(hl / prev_half_life, prev_half_life / hl)
        if drift > max_drift:
            return False, (
                f"half-life drifted from {prev_half_life:.1f} to {hl:.1f} sessions "
                f"(x{drift:.2f} > {max_drift:g})"
            )
    return True, "ok"


def pair_feeds(
    y: pd.DataFrame,
    x: pd.DataFrame,
    lines: pd.DataFrame,
    *,
    y_name: str = "y",
    x_name: str = "x",
) -> tuple[object, object]:
    """backtrader feeds of both legs; the first carries ``lines`` as extra lines.

    Parameters
    ----------
    y, x : pandas.DataFrame
        Leg OHLC[V] frames on the same sessions.
    lines : pandas.DataFrame
        Numeric columns on the same sessions (spread, levels, health as 0/1 ...); NaN stays NaN.
    y_name, x_name : str
        backtrader data names.

    Returns
    -------
    feed_y, feed_x : backtrader.feeds.PandasData

    Raises
    ------
    ValueError
        Indexes differ or a column clashes with a standard line.
    """
    if not (y.index.equals(x.index) and y.index.equals(lines.index)):
        raise ValueError("y, x and lines must share one index")
    cols = [c for c in ("open", "high", "low", "close", "volume") if c in y.columns]
    frame_y = pd.concat([y[cols], lines], axis=1)
    feed_y = ohlc_feed(frame_y, extra=tuple(lines.columns), name=y_name)
    feed_x = ohlc_feed(x[[c for c in cols if c in x.columns]], name=x_name)
    return feed_y, feed_x
