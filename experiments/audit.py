"""``volsuite audit CONFIG``: a research-integrity audit of any registered strategy and config.

Six checks, each PASS / FAIL / INSUFFICIENT with its numbers (``docs/audit.md``):

1. ``look_ahead``: for K sampled decision dates ``t`` the strategy's out-of-sample backtest (the
   fold's best parameters, the fold's test window and starting equity) is rerun with every input
   after ``t`` perturbed (prices scaled, rows shuffled, chain quotes replaced by another day's),
   with the inputs truncated at ``t``, and with the part of session ``t`` after the decision time
   perturbed (the day's high/low/close, later snapshots and minute bars); every decision (daily
   log row), fill and account value at or before ``t`` must be unchanged. The perturbation is
   applied where the inputs enter: the frames and the chain store :func:`experiments.runner.
   load_data` hands to :meth:`strategies.base.StrategyPlugin.prepare` (``prepare`` runs on the
   perturbed data, so feature tables a plugin builds from them are covered), and the data loaders
   a plugin's module calls itself (:data:`LOADERS`: minute bars, VVIX, OHLC files).
2. ``determinism``: two runs with the same seed (each with its own ``prepare``) write
   byte-identical ``oos_returns.csv``, ``trades.csv``, ``equity.csv``; a run with another seed
   differs only through the parameters the sampler chose (each fold's out-of-sample backtest is
   reproduced from those parameters).
3. ``books``: per fold, trade cash flows equal the change of equity; the attribution (when the
   plugin tracks sleeves) sums to the total.
4. ``costs_and_fills``: no cost or risk field in the search space; option fills at
   ``mid + sign * fraction * (ask - bid)`` (a sample checked against the chain store's quotes
   too); commissions per contract as configured; expiring legs settled at the right print and time.
5. ``evidence``: OOS days and trades vs the minimum backtest length, the Sharpe interval, DSR,
   PBO, IS vs OOS (all from :func:`experiments.runner.walkforward_metrics`, never recomputed).
6. ``data``: the data fingerprint, the share of out-of-sample sessions with a missing input,
   quarantined quotes touching traded contracts, fills and window-end marks without a quote.

The report goes to ``results/<experiment>/audit/<audit id>/{audit.json, audit.md}`` (written in a
temporary folder and renamed into place).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from data_feeds.chain_store import SnapshotNotFoundError, StoreKeyError
from data_feeds.errors import VolsuiteError
from experiments.config import COST_AND_RISK_KEYS, ExperimentConfig, load_config
from strategies.base import BacktestResult, StrategyPlugin

Status = Literal["PASS", "FAIL", "INSUFFICIENT"]
Variant = Literal["truncate", "scale", "shuffle", "intraday"]

TZ = "America/New_York"
#: Multiplier applied to every float input after the cut in the ``scale`` variant.
SCALE = 1.1
#: Relative tolerance of two floats being "unchanged" (a rerun of the same code on the same
#: inputs is bit-identical; this only absorbs summation-order noise of a truncated history).
RTOL = 1e-9
#: Dollars of tolerance of the books identities (as ``../shared/tools/check_run.py``).
BOOKS_TOL = 0.01
#: Fills recomputed against the chain store in check 4.
FILL_SAMPLE = 50
#: Share of out-of-sample sessions with a missing input above which check 6 is INSUFFICIENT.
MISSING_MAX = 0.05


class AuditError(VolsuiteError, ValueError):
    """The audit cannot run (e.g. the walk-forward produced no out-of-sample session)."""


@dataclass
class CheckResult:
    """One audit check.

    Attributes
    ----------
    name : str
        ``look_ahead``, ``determinism``, ``books``, ``costs_and_fills``, ``evidence``, ``data``.
    status : {"PASS", "FAIL", "INSUFFICIENT"}
    evidence : dict
        The numbers behind the status (JSON-safe).
    message : str
        One line: what was checked and, on FAIL, the first thing that broke.
    """

    name: str
    status: Status
    evidence: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass
class AuditReport:
    """All checks of one audit (``audit.json``: ``config, run_id, checks, verdict``)."""

    config: str
    run_id: str
    checks: list[CheckResult]
    folder: Path | None = None

    @property
    def verdict(self) -> str:
        """``FAIL`` when a check failed, ``INSUFFICIENT`` when none failed but one lacks
        evidence, else ``PASS``."""
        states = {c.status for c in self.checks}
        if "FAIL" in states:
            return "FAIL"
        return "INSUFFICIENT" if "INSUFFICIENT" in states else "PASS"

    def to_json(self) -> dict[str, Any]:
        """The ``audit.json`` payload (NaN/inf as null)."""
        from experiments.runner import json_safe

        return json_safe(
            {
                "config": self.config,
                "run_id": self.run_id,
                "checks": [dataclasses.asdict(c) for c in self.checks],
                "verdict": self.verdict,
            }
        )

    def check(self, name: str) -> CheckResult:
        """The check called ``name``.

        Raises
        ------
        KeyError
            No such check in this report.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r} in the audit (have {[c.name for c in self.checks]})")


# -- perturbing the inputs --------------------------------------------------------------------
@dataclass(frozen=True)
class Perturbation:
    """How the inputs of one rerun are changed.

    Attributes
    ----------
    variant : {"truncate", "scale", "shuffle", "intraday"}
        ``truncate``: inputs after session ``cut`` removed; ``scale``: every float after ``cut``
        times :data:`SCALE`; ``shuffle``: rows after ``cut`` permuted (seeded) and chain quotes
        after ``cut`` replaced by another later day's; ``intraday``: ``scale`` plus session
        ``cut`` itself after ``decision_time`` (daily bars: every field but ``open``).
    cut : pandas.Timestamp
        Session date ``t`` (tz-aware midnight ET).
    decision_time : pandas.Timestamp, optional
        ``intraday`` only: the first fill time of session ``t`` (tz-aware ET).
    only : str, optional
        Perturb this input only (attribution of a difference); None perturbs all.
    seed : int
        Seed of the ``shuffle`` permutation.
    """

    variant: Variant
    cut: pd.Timestamp
    decision_time: pd.Timestamp | None = None
    only: str | None = None
    seed: int = 0

    def applies(self, name: str) -> bool:
        """Whether input ``name`` is perturbed."""
        return self.only is None or self.only == name

    def describe(self) -> str:
        """One phrase naming the perturbation."""
        what = {
            "truncate": f"inputs truncated after {self.cut.date()}",
            "scale": f"inputs after {self.cut.date()} scaled by {SCALE}",
            "shuffle": f"inputs after {self.cut.date()} shuffled / chains from a shifted day",
            "intraday": (
                f"session {self.cut.date()} after {_clock(self.decision_time)} (high/low/close "
                "reflected about the open, later snapshots and minute bars scaled) and every later "
                "input scaled"
            ),
        }[self.variant]
        return what if self.only is None else f"{what} (input {self.only})"


def _clock(ts: pd.Timestamp | None) -> str:
    return "n/a" if ts is None else f"{ts:%H:%M}"


def _et_stamps(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert(TZ) if idx.tz is not None else idx.tz_localize(TZ)


def perturb_frame(frame: pd.DataFrame | pd.Series, p: Perturbation) -> pd.DataFrame | pd.Series:
    """``frame`` with the rows after ``p.cut`` perturbed as ``p.variant`` says.

    Parameters
    ----------
    frame : pandas.DataFrame or pandas.Series
        Indexed by time (daily bars stamped at midnight, or intraday stamps; tz-aware or naive
        ET). A frame without a ``DatetimeIndex`` is returned unchanged.
    p : Perturbation

    Returns
    -------
    pandas.DataFrame or pandas.Series
        A copy (``attrs`` kept); float columns scaled / rows shuffled / rows dropped.
    """
    if not isinstance(frame.index, pd.DatetimeIndex) or len(frame) == 0:
        return frame
    stamps = _et_stamps(frame.index)
    day = pd.Index(stamps.date)
    cut_day = p.cut.date()
    after = np.asarray(day > cut_day)
    if p.variant == "truncate":
        out = frame.loc[~after].copy()
        out.attrs = dict(frame.attrs)
        return out
    out = frame.copy()
    out.attrs = dict(frame.attrs)
    mask = after.copy()
    if p.variant == "intraday":
        today = np.asarray(day == cut_day)
        intraday = bool((stamps.hour != 0).any() | (stamps.minute != 0).any())
        if intraday and p.decision_time is not None:
            mask |= today & np.asarray(stamps > p.decision_time)
        elif isinstance(out, pd.DataFrame):
            _reflect_session(out, np.flatnonzero(today))
        else:  # a daily series (a close) is known at the session's end
            mask |= today
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return out
    if p.variant == "shuffle":
        perm = np.random.default_rng(p.seed).permutation(rows)
        if isinstance(out, pd.Series):
            out.iloc[rows] = frame.to_numpy()[perm]
        else:
            for j in range(out.shape[1]):
                out.iloc[rows, j] = frame.iloc[perm, j].to_numpy()
        return out
    if isinstance(out, pd.Series):
        if pd.api.types.is_float_dtype(out):
            out.iloc[rows] = out.to_numpy()[rows] * SCALE
        return out
    for j, c in enumerate(out.columns):
        if pd.api.types.is_float_dtype(out[c]):
            out.iloc[rows, j] = out[c].to_numpy()[rows] * SCALE
    return out


#: Daily-bar fields reflected about the open in the ``intraday`` variant (case-insensitive).
REFLECTED = ("high", "low", "close", "adj close", "adj_close")


def _reflect_session(frame: pd.DataFrame, rows: np.ndarray) -> None:
    """In place: on ``rows`` (one session's daily bar), every field known only after the open
    changes while the open stays: high/low/close reflected about the open (``2 * open - x``,
    high and low swapped so the bar stays valid: any sign of ``close - open`` flips), every other
    float field but ``open`` times :data:`SCALE`."""
    if len(rows) == 0:
        return
    cols = {str(c).lower(): c for c in frame.columns}
    opens = frame[cols["open"]].to_numpy(dtype=float)[rows] if "open" in cols else None
    original = {
        c: frame[c].to_numpy()[rows].astype(float)
        for c in frame.columns
        if pd.api.types.is_float_dtype(frame[c])
    }
    for c, values in original.items():
        low = str(c).lower()
        if low == "open":
            continue
        j = frame.columns.get_loc(c)
        if opens is not None and low in REFLECTED:
            partner = {"high": "low", "low": "high"}.get(low)
            src = original.get(cols[partner], values) if partner in cols else values
            frame.iloc[rows, j] = 2.0 * opens - src
        else:
            frame.iloc[rows, j] = values * SCALE


#: Quote columns of a :class:`data_feeds.chains.ChainSnapshot` changed by a perturbation.
QUOTE_PRICE_COLUMNS = ("bid", "ask", "mid", "last")


class PerturbedChainSource:
    """A chain store (:class:`data_feeds.chain_store.ChainStore` or any ``SnapshotSource``) whose
    snapshots after a cut are perturbed; everything else is delegated unchanged.

    Parameters
    ----------
    store : object
        The real source (``quote_dates``, ``quote_times``, ``snapshot``, ``underlying_ohlc``).
    p : Perturbation
        ``truncate``: no quote date after the cut; ``scale``: bid/ask/mid/last and the
        underlying price times :data:`SCALE`; ``shuffle``: each later date's quotes replaced by
        the next later stored date's (matched by root, expiration offset, strike and right;
        unmatched rows scaled); ``intraday``: ``scale``, plus snapshots of the cut session taken
        after ``p.decision_time``.
    """

    def __init__(self, store: Any, p: Perturbation) -> None:
        self._store = store
        self._p = p

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def quote_dates(self, underlying: str, roots: Sequence[str] | None = None) -> list[dt.date]:
        """As the store's, without the dates after the cut when truncating."""
        dates = self._store.quote_dates(underlying, roots)
        if self._p.variant == "truncate":
            return [d for d in dates if d <= self._p.cut.date()]
        return dates

    def quote_times(self, underlying: str, quote_date: Any) -> list[pd.Timestamp]:
        """As the store's; empty after the cut when truncating."""
        if self._p.variant == "truncate" and pd.Timestamp(quote_date).date() > self._p.cut.date():
            return []
        return self._store.quote_times(underlying, quote_date)

    def underlying_ohlc(self, symbol: str) -> pd.DataFrame:
        """The store's daily bars, perturbed as the other frames."""
        return perturb_frame(self._store.underlying_ohlc(symbol), self._p)

    def snapshot(self, underlying: str, quote_date: Any, *args: Any, **kwargs: Any) -> Any:
        """The store's snapshot, perturbed when it lies after the cut (see the class).

        Raises
        ------
        data_feeds.chain_store.SnapshotNotFoundError
            As the store, and for every date after the cut when truncating.
        """
        from data_feeds.chain_store import SnapshotNotFoundError

        day = pd.Timestamp(quote_date).date()
        cut = self._p.cut.date()
        if day > cut and self._p.variant == "truncate":
            raise SnapshotNotFoundError(
                f"no {underlying} snapshot on {day} (audit: inputs truncated after {cut})"
            )
        snap = self._store.snapshot(underlying, quote_date, *args, **kwargs)
        if day > cut:
            if self._p.variant == "shuffle":
                return self._shifted(snap, underlying, day, args, kwargs)
            return _scaled_snapshot(snap)
        if day == cut and self._p.variant == "intraday" and self._p.decision_time is not None:
            if pd.Timestamp(snap.quote_time) > self._p.decision_time:
                return _scaled_snapshot(snap)
        return snap

    def _shifted(self, snap: Any, underlying: str, day: dt.date, args: tuple, kwargs: dict) -> Any:
        later = [d for d in self._store.quote_dates(underlying) if d > self._p.cut.date()]
        if len(later) < 2:
            return _scaled_snapshot(snap)
        other = later[(later.index(day) + 1) % len(later)] if day in later else later[0]
        kw = dict(kwargs)
        kw.pop("quote_time", None)
        args = args[1:] if args else args
        try:
            donor = self._store.snapshot(underlying, other, None, *args, **kw)
        except KeyError:
            return _scaled_snapshot(snap)
        shift = pd.Timedelta(days=(other - day).days)
        q = snap.quotes.copy()
        d = donor.quotes.copy()
        d["expiration"] = pd.to_datetime(d["expiration"]) - shift
        keys = ["root", "expiration", "strike", "right"]
        q["expiration"] = pd.to_datetime(q["expiration"])
        merged = q[keys].merge(
            d[keys + list(QUOTE_PRICE_COLUMNS)].drop_duplicates(keys), on=keys, how="left"
        )
        for c in QUOTE_PRICE_COLUMNS:
            if c in q:
                donor_vals = merged[c].to_numpy()
                q[c] = np.where(np.isnan(donor_vals), q[c].to_numpy() * SCALE, donor_vals)
        q["expiration"] = snap.quotes["expiration"].to_numpy()
        price = donor.underlying_price
        return dataclasses.replace(snap, quotes=q, underlying_price=price)


def _scaled_snapshot(snap: Any) -> Any:
    q = snap.quotes.copy()
    for c in QUOTE_PRICE_COLUMNS:
        if c in q:
            q[c] = q[c].to_numpy(dtype=float) * SCALE
    return dataclasses.replace(snap, quotes=q, underlying_price=snap.underlying_price * SCALE)


def _loaders() -> dict[Callable[..., Any], str]:
    """Data loaders a plugin may call itself (function -> input label)."""
    import data_feeds
    from data_feeds.minute_bars import load_minute_bars

    out: dict[Callable[..., Any], str] = {
        load_minute_bars: "minute bars",
        data_feeds.load_ohlc: "bars",
    }
    for name, label in (("load_vvix", "VVIX"), ("load_minute_bars", "minute bars")):
        fn = getattr(data_feeds, name, None)
        if fn is not None:
            out[fn] = label
    return out


LOADERS = _loaders
"""The data loaders wrapped in a plugin's modules (:func:`_loaders`): minute bars
(:func:`data_feeds.minute_bars.load_minute_bars`), VVIX (:func:`data_feeds.load_vvix`) and
:func:`data_feeds.load_ohlc`."""


def _loader_input(label: str, args: tuple, kwargs: dict) -> str:
    first = args[0] if args else next(iter(kwargs.values()), "")
    return f"{label} {first}"


@contextlib.contextmanager
def perturbed_loaders(
    plugin_cls: type, p: Perturbation, seen: set[str] | None = None
) -> Iterator[None]:
    """Inside the block, the data loaders bound in the plugin's modules (its class and base
    classes, :data:`LOADERS`) return perturbed frames.

    Parameters
    ----------
    plugin_cls : type
        The plugin class.
    p : Perturbation
        Applied to the loaded frame (or to the first element of a returned tuple); an input is
        named ``"<label> <first argument>"`` (``"minute bars data/x.csv"``) for ``p.only``.
    seen : set of str, optional
        Collects the names of the inputs loaded this way.
    """
    known = LOADERS()
    patched: list[tuple[Any, str, Any]] = []
    for klass in plugin_cls.__mro__:
        module = sys.modules.get(klass.__module__)
        if module is None or module.__name__ in ("builtins", "abc", "strategies.base"):
            continue
        for attr, value in list(vars(module).items()):
            try:
                label = known.get(value) if callable(value) else None
            except TypeError:  # an unhashable callable is no loader
                label = None
            if label is None:
                continue

            def wrapped(*a: Any, _fn: Any = value, _label: str = label, **kw: Any) -> Any:
                name = _loader_input(_label, a, kw)
                if seen is not None:
                    seen.add(name)
                result = _fn(*a, **kw)
                if not p.applies(name):
                    return result
                if isinstance(result, tuple) and result:
                    head = result[0]
                    if isinstance(head, pd.DataFrame | pd.Series):
                        return (perturb_frame(head, p), *result[1:])
                    return result
                if isinstance(result, pd.DataFrame | pd.Series):
                    return perturb_frame(result, p)
                return result

            patched.append((module, attr, value))
            setattr(module, attr, wrapped)
    try:
        yield
    finally:
        for module, attr, value in reversed(patched):
            setattr(module, attr, value)


def perturbed_data(data: Mapping[str, Any], p: Perturbation) -> dict[str, Any]:
    """The runner's ``data`` (name -> frame, ``chains`` -> store) with ``p`` applied to each
    input ``p.applies`` to; the chain store becomes a :class:`PerturbedChainSource`."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if not p.applies(name):
            out[name] = value
        elif isinstance(value, pd.DataFrame | pd.Series):
            out[name] = perturb_frame(value, p)
        elif hasattr(value, "snapshot"):
            out[name] = PerturbedChainSource(value, p)
        else:
            out[name] = value
    return out


# -- comparing two backtests --------------------------------------------------------------------
def _day_of(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values.astype(str), errors="coerce", format="mixed")
    return pd.Series(stamps.dt.date, index=values.index)


def _log_dates(log: pd.DataFrame) -> pd.Series:
    if "date" in log:
        return _day_of(log["date"])
    return _day_of(pd.Series(log.index.astype(str), index=log.index))


def _trade_times(trades: pd.DataFrame) -> pd.Series:
    col = "time" if "time" in trades else "date"
    return pd.to_datetime(trades[col].astype(str), errors="coerce", format="mixed")


def _is_window_end(trades: pd.DataFrame) -> pd.Series:
    out = pd.Series(False, index=trades.index)
    for col in ("event", "status"):
        if col in trades:
            out |= trades[col].astype(str).eq("window_end")
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-12)
    try:
        if pd.isna(a) and pd.isna(b):
            return True
    except (TypeError, ValueError):
        pass
    return bool(a == b) if not isinstance(a == b, np.ndarray) else bool(np.all(a == b))


def _first_row_difference(
    base: pd.DataFrame,
    other: pd.DataFrame,
    when: pd.Series,
    table: str,
    when_other: pd.Series | None = None,
) -> dict[str, Any] | None:
    """First row (in order) and field where ``other`` differs from ``base``; a column one frame
    lacks counts as NaN there (a log built from dicts has no column no row filled)."""
    base = base.reset_index(drop=True)
    other = other.reset_index(drop=True)
    when = when.reset_index(drop=True)
    when_other = when.copy() if when_other is None else when_other.reset_index(drop=True)
    columns = [*base.columns, *(c for c in other.columns if c not in base.columns)]
    for i in range(max(len(base), len(other))):
        if i >= len(base) or i >= len(other):
            stamps = when if i < len(base) else when_other
            return {
                "table": table,
                "date": str(stamps.iloc[i]) if i < len(stamps) else "n/a",
                "field": "(row)",
                "baseline": "present" if i < len(base) else "absent",
                "perturbed": "present" if i < len(other) else "absent",
            }
        for col in columns:
            a = base.at[i, col] if col in base.columns else np.nan
            b = other.at[i, col] if col in other.columns else np.nan
            if not _same(a, b):
                return {
                    "table": table,
                    "date": str(when.iloc[i]),
                    "field": str(col),
                    "baseline": _plain(a),
                    "perturbed": _plain(b),
                }
    return None


def _diff_day(diff: Mapping[str, Any]) -> dt.date:
    stamp = pd.to_datetime(diff["date"], errors="coerce")
    return dt.date.min if pd.isna(stamp) else stamp.date()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float | int | bool | str) or value is None:
        return value
    return str(value)


#: Daily-log columns holding a position's outcome, written when it exits (possibly after the
#: cut) on the row of its entry: never compared (the fills and account values cover the money).
#: A plugin names its own with a ``log_outcome_columns`` attribute (names or ``prefix*``).
OUTCOME_COLUMNS = (
    "exit_*",
    "net_pnl",
    "gross_pnl",
    "pnl",
    "realized_pnl",
    "settlement_*",
    "settled_*",
    "days_held",
    "holding_days",
)


ENTRY_OUTCOMES = frozenset({"traded", "open_at_end"})
"""Final ``status`` values an entry row gets from a later session
(:meth:`strategies.option_strategy.ChainStrategy.finish_trade`: closed, or still open when the
window ended): an outcome, compared as ``"entered"``. A decision that changed (``stand_aside``
vs an entry) still differs, and the orders and fills at or before t are compared as well."""


def _entry_status(log: pd.DataFrame) -> pd.DataFrame:
    if "status" not in log or not len(log):
        return log
    status = log["status"].where(~log["status"].isin(ENTRY_OUTCOMES), "entered")
    return log.assign(status=status)


def outcome_columns(*logs: pd.DataFrame, patterns: Sequence[str] = OUTCOME_COLUMNS) -> list[str]:
    """Columns of ``logs`` matching ``patterns`` (exact names, or ``prefix*``)."""
    names = {str(c) for log in logs for c in log.columns}
    out = []
    for name in sorted(names):
        for pat in patterns:
            if (pat.endswith("*") and name.startswith(pat[:-1])) or name == pat:
                out.append(name)
                break
    return out


def first_difference(
    base: BacktestResult,
    other: BacktestResult,
    p: Perturbation,
    outcomes: Sequence[str] = OUTCOME_COLUMNS,
) -> dict[str, Any] | None:
    """The first decision, fill or account value at or before the cut that ``other`` changed.

    What is compared: ``scale``/``shuffle``: daily-log rows, trades and account values dated on
    or before ``p.cut``; ``truncate``: those dated before the session preceding ``p.cut`` (the
    truncated window ends at the cut, and a strategy may legitimately act differently on its
    window's last two sessions, e.g. order a close-out at the penultimate close that fills at the
    last bar: ``scale`` and ``shuffle`` cover those sessions); ``intraday``: daily-log rows and
    values before ``p.cut`` and the trades up to ``p.decision_time``. ``window_end`` rows
    (positions closed at their marks after a window) and the daily log's outcome columns
    (:data:`OUTCOME_COLUMNS`) are never compared.

    Parameters
    ----------
    base, other : BacktestResult
        The baseline and the perturbed rerun.
    p : Perturbation
    outcomes : sequence of str
        Daily-log outcome columns not compared (names or ``prefix*``).

    Returns
    -------
    dict or None
        ``table`` (daily_log / trades / value), ``date``, ``field``, ``baseline``,
        ``perturbed``; None when nothing changed.
    """
    cut = p.cut.date()
    strict = p.variant in ("intraday", "truncate")
    if p.variant == "truncate":  # the truncated window's last two sessions are its window end
        before = sorted(d for d in _et_stamps(base.value.index).date if d < cut)
        cut = before[-1] if before else cut

    def keep_days(days: pd.Series) -> pd.Series:
        return (days < cut) if strict else (days <= cut)

    tables: list[tuple[pd.Timestamp | dt.date, dict[str, Any]]] = []
    lb, lo = base.daily_log, other.daily_log
    if len(lb) or len(lo):
        db, do = _log_dates(lb), _log_dates(lo)
        skip = outcome_columns(lb, lo, patterns=outcomes)
        lb, lo = (
            lb.drop(columns=skip, errors="ignore"),
            lo.drop(columns=skip, errors="ignore"),
        )
        a, b = lb[keep_days(db).to_numpy()], lo[keep_days(do).to_numpy()]
        a, b = _entry_status(a), _entry_status(b)
        diff = _first_row_difference(a, b, db[keep_days(db)], "daily_log", do[keep_days(do)])
        if diff:
            tables.append((_diff_day(diff), diff))
    tb, to = base.trades, other.trades
    if len(tb) or len(to):

        def sel(t: pd.DataFrame) -> pd.DataFrame:
            if not len(t):
                return t
            times = _trade_times(t)
            if strict and p.decision_time is not None:
                limit = p.decision_time.tz_localize(None)
                ok = (
                    times.dt.tz_localize(None) <= limit
                    if times.dt.tz is not None
                    else (times <= limit)
                )
            elif strict:
                ok = pd.Series(times.dt.date < cut, index=t.index)
            else:
                ok = pd.Series(times.dt.date <= cut, index=t.index)
            return t[ok.to_numpy() & ~_is_window_end(t).to_numpy()]

        a, b = sel(tb), sel(to)
        when = _trade_times(a) if len(a) else pd.Series(dtype="datetime64[ns]")
        when_b = _trade_times(b) if len(b) else pd.Series(dtype="datetime64[ns]")
        diff = _first_row_difference(a, b, when, "trades", when_b)
        if diff:
            tables.append((_diff_day(diff), diff))
    vb, vo = base.value, other.value
    db = pd.Series(_et_stamps(vb.index).date, index=vb.index)
    do = pd.Series(_et_stamps(vo.index).date, index=vo.index)
    a = vb[keep_days(db).to_numpy()].to_frame("value").assign(date=db[keep_days(db)].astype(str))
    b = vo[keep_days(do).to_numpy()].to_frame("value").assign(date=do[keep_days(do)].astype(str))
    diff = _first_row_difference(a, b, db[keep_days(db)], "value", do[keep_days(do)])
    if diff:
        tables.append((_diff_day(diff), diff))
    if not tables:
        return None
    order = ("daily_log", "trades", "value")
    return min(tables, key=lambda x: (x[0], order.index(x[1]["table"])))[1]


# -- the audit --------------------------------------------------------------------------------
@dataclass
class _Run:
    plugin: StrategyPlugin
    wf: Any
    metrics: dict[str, Any]
    files: dict[str, bytes]


def _walkforward(
    config: ExperimentConfig,
    plugin: StrategyPlugin,
    seed: int,
    folds_limit: int | None,
    on_trial: Callable[[int, int], None] | None,
) -> tuple[Any, dict[str, Any]]:
    from experiments.runner import walkforward_metrics
    from experiments.walkforward import make_folds, run_walkforward

    folds = make_folds(plugin.trading_days(), config.walkforward)
    if folds_limit is not None:
        folds = folds[-folds_limit:]
    opt = config.optimize.model_copy(update={"seed": seed})
    wf = run_walkforward(
        plugin,
        fixed=config.strategy.params,
        space=config.strategy.search_space,
        wf=config.walkforward,
        opt=opt,
        cash=config.experiment.initial_cash,
        storage=None,
        study_prefix=f"audit-{config.experiment.name}-{seed}",
        on_trial=on_trial,
        folds=folds,
    )
    if len(wf.oos_returns) == 0:
        raise AuditError(f"{config.experiment.name}: the walk-forward has no out-of-sample session")
    metrics, _ = walkforward_metrics(config, wf)
    return wf, metrics


BOOK_FILES = ("oos_returns.csv", "trades.csv", "equity.csv")
"""Files whose bytes two runs with the same seed must share (check 2)."""


def _book_bytes(wf: Any) -> dict[str, bytes]:
    from experiments.runner import write_books

    with tempfile.TemporaryDirectory(prefix="volsuite-audit-") as tmp:
        write_books(Path(tmp), wf)
        return {name: (Path(tmp) / name).read_bytes() for name in BOOK_FILES}


def _fold_params(plugin: StrategyPlugin, fr: Any) -> Any:
    """The params a fold's out-of-sample run used (the validated model when the walk-forward
    kept it: a dump with nested tables such as ``hedge`` carries their cost fields' defaults,
    which the params model refuses as input)."""
    params = getattr(fr, "params", None)
    return params if params is not None else plugin.Params(**fr.best_params)


def sample_decision_dates(wf: Any, k: int, seed: int) -> list[tuple[int, pd.Timestamp]]:
    """``k`` out-of-sample sessions with a decision to check, spread over the folds.

    Candidates are the sessions of each fold's test window, except its last, with a fill (any
    daily-log session when the run never trades); drawn without replacement with
    ``numpy.random.default_rng(seed)`` and returned in time order as ``(fold index in wf.folds,
    session)``.
    """
    candidates: list[tuple[int, pd.Timestamp]] = []
    fallback: list[tuple[int, pd.Timestamp]] = []
    for i, fr in enumerate(wf.folds):
        days = _et_stamps(fr.out_of_sample.value.index).normalize()
        if len(days) < 2:
            continue
        inner = set(days[:-1].date)
        trades = fr.out_of_sample.trades
        traded: set[dt.date] = set()
        if len(trades):
            ok = ~_is_window_end(trades)
            traded = set(_trade_times(trades[ok.to_numpy()]).dt.date)
        for d in sorted(inner):
            stamp = pd.Timestamp(d).tz_localize(TZ)
            (candidates if d in traded else fallback).append((i, stamp))
    pool = candidates or fallback
    if not pool:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    return sorted((pool[j] for j in picks), key=lambda x: x[1])


def _decision_time(trades: pd.DataFrame, day: pd.Timestamp) -> pd.Timestamp | None:
    """First fill time of session ``day`` when it is inside the session (before 16:00 ET)."""
    if not len(trades) or "time" not in trades:
        return None
    ok = ~_is_window_end(trades)
    if "event" in trades:
        ok &= trades["event"].astype(str).isin(["fill", "stock_fill"])
    times = _trade_times(trades[ok.to_numpy()])
    times = times[times.dt.date == day.date()]
    if times.empty:
        return None
    first = times.min()
    first = first.tz_convert(TZ) if first.tzinfo else first.tz_localize(TZ)
    if first.hour == 0 and first.minute == 0:
        return None
    close = pd.Timestamp.combine(day.date(), dt.time(16, 0)).tz_localize(TZ)
    return first if first < close else None


def check_look_ahead(
    config: ExperimentConfig,
    data: Mapping[str, Any],
    base_plugin: StrategyPlugin,
    wf: Any,
    *,
    dates: int,
    seed: int,
    on_step: Callable[[str], None] | None = None,
) -> CheckResult:
    """Check 1 (module docstring): look-ahead by perturbation at the data boundary.

    Parameters
    ----------
    config : ExperimentConfig
    data : mapping
        :func:`experiments.runner.load_data`'s inputs (frames and the chain store).
    base_plugin : StrategyPlugin
        The prepared plugin of the walk-forward (for its class).
    wf : WalkForwardResult
        The walk-forward whose fold-best parameters and out-of-sample backtests are the baseline.
    dates : int
        Decision dates sampled (:func:`sample_decision_dates`).
    seed : int
        Seed of the date sample and of the shuffles.

    Returns
    -------
    CheckResult
        FAIL names the variant, the input, the first changed decision's date, table and field.
    """
    from experiments.runner import build_plugin

    cls = type(base_plugin)
    outcomes = (*OUTCOME_COLUMNS, *getattr(cls, "log_outcome_columns", ()))
    picks = sample_decision_dates(wf, dates, seed)
    runs: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    inputs_seen: set[str] = set()
    loader_inputs: set[str] = set()

    def rerun(p: Perturbation, fr: Any) -> BacktestResult:
        end = min(fr.fold.test_end, p.cut) if p.variant == "truncate" else fr.fold.test_end
        with perturbed_loaders(cls, p, loader_inputs):
            plugin = build_plugin(config, perturbed_data(data, p))
            return plugin.backtest(
                _fold_params(plugin, fr), fr.fold.test_start, end, cash=fr.start_equity
            )

    for n, (fi, day) in enumerate(picks):
        fr = wf.folds[fi]
        base = fr.out_of_sample
        decision = _decision_time(base.trades, day)
        variants: list[Perturbation] = [
            Perturbation("truncate", day, seed=seed + n),
            Perturbation("scale", day, seed=seed + n),
            Perturbation("shuffle", day, seed=seed + n),
        ]
        if decision is not None:
            variants.append(Perturbation("intraday", day, decision, seed=seed + n))
        for p in variants:
            if on_step:
                on_step(f"look-ahead {day.date()} {p.variant}")
            entry: dict[str, Any] = {
                "date": str(day.date()),
                "variant": p.variant,
                "perturbation": p.describe(),
            }
            if p.decision_time is not None:
                entry["decision_time"] = _clock(p.decision_time)
            try:
                other = rerun(p, fr)
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
                runs.append(entry)
                continue
            diff = first_difference(base, other, p, outcomes)
            entry["changed"] = diff
            if diff is not None:
                entry["input"] = _attribute(p, data, loader_inputs, rerun, base, fr, outcomes)
                failures.append(entry)
            runs.append(entry)
    inputs_seen = set(data) | loader_inputs
    evidence: dict[str, Any] = {
        "dates": [str(d.date()) for _, d in picks],
        "inputs": sorted(inputs_seen),
        "reruns": len(runs),
        "errors": sum("error" in r for r in runs),
        "runs": runs,
    }
    if failures:  # the earliest changed decision, a changed field before a missing row
        f = min(
            failures,
            key=lambda e: (e["changed"]["field"] == "(row)", e["changed"]["date"]),
        )
        ch = f["changed"]
        return CheckResult(
            "look_ahead",
            "FAIL",
            evidence,
            (
                f"decision on {ch['date']} changed ({ch['table']}.{ch['field']}: "
                f"{ch['baseline']} -> {ch['perturbed']}) when input {f['input']!r} was "
                f"perturbed: {f['perturbation']}"
            ),
        )
    compared = [r for r in runs if "error" not in r]
    if not compared:
        why = "no out-of-sample decision to sample" if not picks else "every rerun failed"
        return CheckResult("look_ahead", "INSUFFICIENT", evidence, why)
    return CheckResult(
        "look_ahead",
        "PASS",
        evidence,
        (
            f"{len(compared)} reruns over {len(picks)} dates (inputs {sorted(inputs_seen)}) left "
            "every decision, fill and value at or before the date unchanged"
            + (f"; {evidence['errors']} reruns could not run" if evidence["errors"] else "")
        ),
    )


def _attribute(
    p: Perturbation,
    data: Mapping[str, Any],
    loader_inputs: set[str],
    rerun: Callable[[Perturbation, Any], BacktestResult],
    base: BacktestResult,
    fr: Any,
    outcomes: Sequence[str] = OUTCOME_COLUMNS,
) -> str:
    """The first input whose perturbation alone reproduces a difference (or ``"all inputs"``)."""
    for name in [*data, *sorted(loader_inputs)]:
        single = dataclasses.replace(p, only=name)
        try:
            other = rerun(single, fr)
        except Exception:
            continue
        if first_difference(base, other, single, outcomes) is not None:
            return name
    return "all inputs together"


def check_determinism(
    first: _Run, second: _Run, other_seed: _Run, seed: int, seed2: int
) -> CheckResult:
    """Check 2: byte-identical books for one seed; another seed changes only the sampler's
    choices (each of its out-of-sample folds reproduced from its parameters on the first run's
    plugin)."""
    same = {name: first.files[name] == second.files[name] for name in BOOK_FILES}
    digests = {name: hashlib.sha256(first.files[name]).hexdigest()[:16] for name in BOOK_FILES}
    reproduced, chosen_differs, mismatch = 0, 0, None
    for fr_a, fr_c in zip(first.wf.folds, other_seed.wf.folds, strict=True):
        if fr_a.best_params != fr_c.best_params:
            chosen_differs += 1
        params = _fold_params(first.plugin, fr_c)
        res = first.plugin.backtest(
            params, fr_c.fold.test_start, fr_c.fold.test_end, cash=fr_c.start_equity
        )
        p = Perturbation("scale", fr_c.fold.test_end)
        diff = first_difference(fr_c.out_of_sample, res, p)
        if diff is None:
            reproduced += 1
        elif mismatch is None:
            mismatch = {"fold": fr_c.fold.index, **diff}
    evidence = {
        "seed": seed,
        "other_seed": seed2,
        "identical": same,
        "sha256_16": digests,
        "folds": len(first.wf.folds),
        "folds_with_other_params": chosen_differs,
        "folds_reproduced_from_params": reproduced,
        "first_unexplained_difference": mismatch,
    }
    if not all(same.values()):
        bad = [k for k, v in same.items() if not v]
        return CheckResult(
            "determinism", "FAIL", evidence, f"same seed {seed}, different bytes in {bad}"
        )
    if mismatch is not None:
        return CheckResult(
            "determinism",
            "FAIL",
            evidence,
            (
                f"seed {seed2}: fold {mismatch['fold']} out-of-sample differs from a rerun of its "
                f"own parameters ({mismatch['table']}.{mismatch['field']} on {mismatch['date']})"
            ),
        )
    return CheckResult(
        "determinism",
        "PASS",
        evidence,
        (
            f"seed {seed} twice: {', '.join(BOOK_FILES)} byte-identical; seed {seed2}: "
            f"{chosen_differs} of {len(first.wf.folds)} folds chose other parameters, every fold "
            "reproduced from its parameters"
        ),
    )


def check_books(wf: Any) -> CheckResult:
    """Check 3: per fold, the trades' cash flows equal the equity change (within
    :data:`BOOKS_TOL` dollars; the identity of ``../shared/tools/check_run.py``), total return
    equals the equity curve, and the attribution (when the plugin tracks sleeves) sums to the
    total P&L and its Carino contributions to the compounded return."""
    trades, equity = wf.trades, wf.equity
    if not len(equity):
        return CheckResult("books", "INSUFFICIENT", {}, "no out-of-sample equity")
    if "cash_flow" not in trades and len(trades):
        return CheckResult(
            "books",
            "INSUFFICIENT",
            {"columns": list(trades.columns)},
            "trades carry no cash_flow column: the books cannot be reconciled",
        )
    rows, worst = [], 0.0
    for fr in wf.folds:
        k = fr.fold.index
        flows = float(trades.loc[trades["fold"] == k, "cash_flow"].sum()) if len(trades) else 0.0
        eq = equity.loc[equity["fold"] == k, "equity"]
        change = float(eq.iloc[-1]) - fr.start_equity if len(eq) else 0.0
        gap = abs(flows - change)
        worst = max(worst, gap)
        rows.append({"fold": k, "cash_flows": flows, "equity_change": change, "gap": gap})
    total = float(np.prod(1.0 + wf.oos_returns.to_numpy()) - 1.0)
    account = wf.final_equity / wf.initial_cash - 1.0
    evidence: dict[str, Any] = {
        "folds": rows,
        "worst_gap_dollars": worst,
        "compounded_return": total,
        "equity_return": account,
    }
    problems = []
    if worst > BOOKS_TOL:
        bad = max(rows, key=lambda r: r["gap"])
        problems.append(
            f"fold {bad['fold']}: cash flows {bad['cash_flows']:.2f} vs equity change "
            f"{bad['equity_change']:.2f}"
        )
    if not math.isclose(total, account, rel_tol=1e-9, abs_tol=1e-9):
        problems.append(f"compounded returns {total:.8f} vs equity {account:.8f}")
    results = [fr.out_of_sample for fr in wf.folds]
    if any("sleeve_pnl" in r.info for r in results):
        from strategies.risk.attribution import attribution_from_results

        sleeve_trades = [r.info["sleeve_trades"] for r in results if "sleeve_trades" in r.info]
        table = attribution_from_results(
            [(r.info["sleeve_pnl"], r.value, r.returns) for r in results],
            trades=pd.concat(sleeve_trades, ignore_index=True) if sleeve_trades else None,
        )
        parts = table.drop(index="total")
        pnl_gap = abs(float(parts["pnl"].sum()) - float(table.loc["total", "pnl"]))
        net = wf.final_equity - wf.initial_cash
        contrib_gap = abs(float(parts["contribution"].sum()) - account)
        evidence["attribution"] = {
            "sleeves": [str(s) for s in parts.index],
            "sleeve_pnl_sum": float(parts["pnl"].sum()),
            "total_pnl": float(table.loc["total", "pnl"]),
            "net_pnl": net,
            "contribution_sum": float(parts["contribution"].sum()),
        }
        if pnl_gap > BOOKS_TOL or abs(float(parts["pnl"].sum()) - net) > BOOKS_TOL:
            problems.append(f"attribution P&L sums to {parts['pnl'].sum():.2f}, net is {net:.2f}")
        if contrib_gap > 1e-9:
            problems.append(f"attribution contributions miss the return by {contrib_gap:.2e}")
    else:
        evidence["attribution"] = "the strategy tracks no sleeves"
    if problems:
        return CheckResult("books", "FAIL", evidence, "; ".join(problems))
    return CheckResult(
        "books",
        "PASS",
        evidence,
        f"{len(rows)} folds: cash flows = equity change within ${worst:.4f}; returns compound to "
        "the equity curve",
    )


def check_costs_and_fills(
    config: ExperimentConfig, plugin: StrategyPlugin, data: Mapping[str, Any], wf: Any, seed: int
) -> CheckResult:
    """Check 4: no cost/risk field searched; option fills at ``mid + sign(q) * f * (ask - bid)``
    with ``f`` the configured (per-root) spread fraction; a sample of fills' bid/ask equal to the
    chain store's quote at the fill time; commissions ``commission_per_contract * |q|`` (and the
    settlement fee); each settlement at :func:`data_feeds.chains.settlement_time` of its root's
    style (:data:`data_feeds.contracts.ROOT_SPECS`) on the open (AM) or close (PM / physical) of
    the settlement source, paying the intrinsic value."""
    from data_feeds.chains import settlement_time
    from data_feeds.contracts import ROOT_SPECS, underlying_of

    costs = config.costs
    searched = sorted(set(config.strategy.search_space) & set(COST_AND_RISK_KEYS))
    t = wf.trades
    evidence: dict[str, Any] = {
        "searched_cost_or_risk_fields": searched,
        "commission_per_contract": costs.commission_per_contract,
        "slippage_spread_fraction": costs.slippage_spread_fraction,
        "slippage_by_root": dict(costs.slippage_by_root),
        "settlement_fee_per_contract": costs.settlement_fee_per_contract,
    }
    problems: list[str] = []
    if searched:
        problems.append(f"cost/risk fields in the search space: {searched}")
    option_cols = {"event", "bid", "ask", "price", "quantity", "commission", "root"}
    if not len(t) or not option_cols <= set(t.columns) or not (t["event"] == "fill").any():
        evidence["note"] = "no option fills (share strategy or no trade): option checks not run"
        status: Status = "FAIL" if problems else "PASS"
        return CheckResult(
            "costs_and_fills",
            status,
            evidence,
            "; ".join(problems) or ("no cost or risk field searched; no option fills to recompute"),
        )
    fills = t[t["event"] == "fill"]
    quoted = fills[fills["bid"].notna() & fills["ask"].notna()]
    frac = quoted["root"].map(
        lambda r: costs.slippage_by_root.get(r, costs.slippage_spread_fraction)
    )
    mid = 0.5 * (quoted["bid"] + quoted["ask"])
    want = mid + np.sign(quoted["quantity"]) * frac * (quoted["ask"] - quoted["bid"])
    price_gap = (quoted["price"] - want).abs()
    bad_price = quoted[price_gap > 1e-6 * np.maximum(1.0, want.abs())]
    want_comm = costs.commission_per_contract * fills["quantity"].abs()
    bad_comm = fills[(fills["commission"] - want_comm).abs() > 1e-9]
    evidence.update(
        {
            "option_fills": len(fills),
            "quoted_fills": len(quoted),
            "fills_off_spread_model": len(bad_price),
            "worst_fill_gap": float(price_gap.max()) if len(price_gap) else 0.0,
            "commission_mismatches": len(bad_comm),
        }
    )
    if len(bad_price):
        r = bad_price.iloc[0]
        problems.append(
            f"fill {r['time']} {r['root']} {r['strike']}{r['right']} at {r['price']:.4f}, spread "
            f"model says {want.loc[bad_price.index[0]]:.4f}"
        )
    if len(bad_comm):
        r = bad_comm.iloc[0]
        problems.append(
            f"fill {r['time']} commission {r['commission']} for {abs(r['quantity'])} contracts "
            f"(configured {costs.commission_per_contract} per contract)"
        )
    store = data.get("chains")
    if store is not None and len(quoted):
        rng = np.random.default_rng(seed)
        pick = quoted.iloc[
            np.sort(rng.choice(len(quoted), size=min(FILL_SAMPLE, len(quoted)), replace=False))
        ]
        matched, missing, off = 0, 0, []
        for _, r in pick.iterrows():
            stamp = pd.Timestamp(r["time"])
            try:
                snap = store.snapshot(
                    underlying_of(str(r["root"])), stamp.date(), stamp.time(), roots=[r["root"]]
                )
            except SnapshotNotFoundError:  # counted: a fill whose snapshot is not stored
                missing += 1
                continue
            q = snap.quotes
            exp = pd.Timestamp(r["expiration"])
            row = q[
                (q["root"] == r["root"])
                & (pd.to_datetime(q["expiration"]) == exp)
                & np.isclose(q["strike"], float(r["strike"]))
                & (q["right"] == r["right"])
            ]
            if row.empty:
                missing += 1
                continue
            bid, ask = float(row["bid"].iloc[0]), float(row["ask"].iloc[0])
            if math.isclose(bid, r["bid"], abs_tol=1e-9) and math.isclose(
                ask, r["ask"], abs_tol=1e-9
            ):
                matched += 1
            else:
                off.append(f"{stamp} {r['root']} {r['strike']}{r['right']}")
        evidence["store_sample"] = {
            "checked": len(pick),
            "matched": matched,
            "not_in_store": missing,
            "different_quote": len(off),
        }
        if off:
            problems.append(f"fill quotes differ from the chain store: {off[:3]}")
    else:
        evidence["store_sample"] = (
            "no chain store: fills are checked against the quotes the strategy recorded"
        )
    settle = t[t["event"] == "settlement"]
    checked, bad_settle = 0, []
    bars_cache: dict[str, pd.DataFrame | None] = {}

    def bars(symbol: str) -> pd.DataFrame | None:
        if symbol not in bars_cache:
            frame = None
            if store is not None:
                try:
                    frame = store.underlying_ohlc(symbol)
                except StoreKeyError:  # no bars of symbol stored: the plugin's own bars below
                    frame = None
            if frame is None:
                frame = getattr(plugin, "underlying", None)
            bars_cache[symbol] = frame
        return bars_cache[symbol]

    for _, r in settle.iterrows():
        root = str(r["root"])
        if root not in ROOT_SPECS:
            continue
        style = ROOT_SPECS[root][1]
        exp = pd.Timestamp(r["expiration"]).date()
        when = settlement_time(exp, style).tz_localize(None)
        got = pd.Timestamp(r["time"])
        got = got.tz_convert(TZ).tz_localize(None) if got.tzinfo else got
        frame = bars(underlying_of(root))
        problem = None
        if got != when:
            problem = f"settled at {got}, {style} settlement is {when}"
        elif frame is not None:
            idx = pd.Index(_et_stamps(frame.index).date)
            if exp in set(idx):
                col = "open" if style == "AM" else "close"
                px = float(frame[col].to_numpy()[idx.get_loc(exp)])
                if not math.isclose(px, float(r["underlying_price"]), rel_tol=1e-9):
                    problem = f"underlying {r['underlying_price']} vs the {col} {px} of {exp}"
        k, s = float(r["strike"]), float(r["underlying_price"])
        intrinsic = max(s - k, 0.0) if r["right"] == "C" else max(k - s, 0.0)
        if problem is None and not math.isclose(intrinsic, float(r["price"]), abs_tol=1e-6):
            problem = f"paid {r['price']} per unit, intrinsic is {intrinsic}"
        fee = costs.settlement_fee_per_contract * abs(float(r["quantity"]))
        if (
            problem is None
            and "commission" in r
            and not math.isclose(float(r["commission"] or 0.0), fee, abs_tol=1e-9)
        ):
            problem = f"settlement fee {r['commission']}, configured {fee}"
        checked += 1
        if problem:
            bad_settle.append(f"{root} {k}{r['right']} exp {exp}: {problem}")
    evidence["settlements_checked"] = checked
    evidence["settlement_mismatches"] = len(bad_settle)
    if bad_settle:
        problems.append(f"{len(bad_settle)} settlements wrong, first: {bad_settle[0]}")
    if problems:
        return CheckResult("costs_and_fills", "FAIL", evidence, "; ".join(problems))
    return CheckResult(
        "costs_and_fills",
        "PASS",
        evidence,
        (
            f"no cost/risk field searched; {len(quoted)} fills at the spread model, "
            f"{len(fills)} commissions as configured, {checked} settlements at the right print"
        ),
    )


def check_evidence(metrics: Mapping[str, Any]) -> CheckResult:
    """Check 5: the statistics of belief as :func:`experiments.runner.walkforward_metrics`
    reports them; INSUFFICIENT when the sample note is set, the out-of-sample years are fewer
    than the minimum backtest length, the DSR is below 0.95 or missing, or the PBO is above 0.5
    or missing. Never FAIL: weak evidence is not a broken backtest."""
    from experiments.overfitting import PERIODS

    keys = (
        "days",
        "trades",
        "sharpe",
        "sharpe_ci_low",
        "sharpe_ci_high",
        "deflated_sharpe",
        "n_trials",
        "pbo",
        "cscv_folds",
        "min_backtest_years",
        "is_sharpe_mean",
        "oos_is_sharpe_ratio",
        "sample",
    )
    ev = {k: metrics.get(k) for k in keys}
    years = float(metrics.get("days") or 0.0) / PERIODS
    ev["oos_years"] = years
    reasons = []
    if metrics.get("sample"):
        reasons.append(str(metrics["sample"]))
    minbtl = metrics.get("min_backtest_years")
    if minbtl is None or not math.isfinite(float(minbtl)) or years < float(minbtl):
        shown = "n/a" if minbtl is None else f"{float(minbtl):.2f}"
        reasons.append(f"{years:.2f} OOS years < MinBTL {shown} years")
    dsr = metrics.get("deflated_sharpe")
    if dsr is None or not math.isfinite(float(dsr)) or float(dsr) < 0.95:
        reasons.append("DSR n/a" if dsr is None else f"DSR {float(dsr):.3f} < 0.95")
    pbo = metrics.get("pbo")
    if pbo is None or not math.isfinite(float(pbo)) or float(pbo) > 0.5:
        reasons.append("PBO n/a" if pbo is None else f"PBO {float(pbo):.2f} > 0.5")
    if reasons:
        return CheckResult(
            "evidence", "INSUFFICIENT", ev, "insufficient evidence: " + "; ".join(reasons)
        )
    return CheckResult(
        "evidence",
        "PASS",
        ev,
        f"Sharpe {metrics['sharpe']:.2f} [{metrics['sharpe_ci_low']:.2f}, "
        f"{metrics['sharpe_ci_high']:.2f}], DSR {dsr:.3f}, PBO {pbo:.2f}, {years:.1f} OOS years",
    )


def check_data(
    plugin: StrategyPlugin, data: Mapping[str, Any], wf: Any, reports: Sequence[str]
) -> CheckResult:
    """Check 6: fingerprint, share of the sessions of the out-of-sample span (the underlying's
    calendar, else the out-of-sample days) missing from each input, quarantined quotes of traded
    contracts on their trade dates, fills without a quote and window-end marks."""
    from data_feeds.contracts import underlying_of
    from experiments.metrics import trade_stats

    try:
        fp = plugin.data_fingerprint()
    except TypeError as exc:
        fp = f"n/a ({exc})"
    oos = _et_stamps(wf.oos_returns.index)
    calendar = data.get("underlying")
    if isinstance(calendar, pd.DataFrame) and isinstance(calendar.index, pd.DatetimeIndex):
        # the underlying's sessions over the out-of-sample span: a session the strategy could not
        # trade for lack of another input counts as missing it
        stamps = _et_stamps(calendar.index)
        sessions = set(stamps[(stamps >= oos.min()) & (stamps <= oos.max())].date)
    else:
        sessions = set(oos.date)
    missing: dict[str, float] = {}
    for name, value in data.items():
        if isinstance(value, pd.DataFrame | pd.Series) and isinstance(
            value.index, pd.DatetimeIndex
        ):
            have = set(_et_stamps(value.index).date)
            missing[name] = len(sessions - have) / len(sessions) if sessions else 0.0
    store = data.get("chains")
    t = wf.trades
    quarantined_touching = None
    if store is not None and hasattr(store, "quote_dates"):
        roots = sorted(set(t["root"].astype(str))) if len(t) and "root" in t else []
        unds = sorted({underlying_of(r) for r in roots if r != "nan"}) or []
        for und in unds:
            have = set(store.quote_dates(und))
            missing[f"chains {und}"] = len(sessions - have) / len(sessions) if sessions else 0.0
        if hasattr(store, "quarantine") and len(t) and "strike" in t:
            q = store.quarantine()
            if len(q):
                fills = t[t["event"] == "fill"] if "event" in t else t
                keys = set(
                    zip(
                        fills["root"].astype(str),
                        pd.to_datetime(fills["time"]).dt.date,
                        pd.to_datetime(fills["expiration"]).dt.date,
                        fills["strike"].astype(float),
                        fills["right"].astype(str),
                        strict=True,
                    )
                )
                qk = zip(
                    q["root"].astype(str),
                    pd.to_datetime(q["quote_date"]).dt.date,
                    pd.to_datetime(q["expiration_date"]).dt.date,
                    q["strike"].astype(float),
                    q["option_type"].astype(str).str[:1].str.upper(),
                    strict=True,
                )
                quarantined_touching = sum(1 for k in qk if k in keys)
            else:
                quarantined_touching = 0
    stats = trade_stats(t) if len(t) else {}
    worst = max(missing.values(), default=0.0)
    ev = {
        "fingerprint": fp,
        "load_reports": list(reports),
        "missing_session_share": missing,
        "quarantined_quotes_touching_traded_contracts": quarantined_touching,
        "unquoted_fills": stats.get("unquoted_fills"),
        "window_end_marks": stats.get("window_end_legs"),
    }
    problems = []
    if worst > MISSING_MAX:
        name = max(missing, key=lambda k: missing[k])
        problems.append(f"{worst:.1%} of OOS sessions have no {name}")
    if quarantined_touching:
        problems.append(f"{quarantined_touching} quarantined quotes touch traded contracts")
    if problems:
        return CheckResult("data", "INSUFFICIENT", ev, "; ".join(problems))
    return CheckResult(
        "data",
        "PASS",
        ev,
        f"fingerprint {str(fp)[:12]}; at most {worst:.1%} of OOS sessions miss an input; "
        f"{quarantined_touching or 0} quarantined quotes touch traded contracts",
    )


def run_audit(
    config_path: str | Path,
    *,
    trials: int | None = None,
    seed: int | None = None,
    dates: int = 3,
    folds: int | None = None,
    write: bool = True,
    results_dir: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audit one experiment config (module docstring).

    Parameters
    ----------
    config_path : str or pathlib.Path
        Experiment config (TOML).
    trials, seed : int, optional
        Override ``[optimize] trials`` / ``seed`` (the second seed is ``seed + 1``).
    dates : int
        Decision dates of the look-ahead check (each costs 3-4 ``prepare`` + backtest reruns).
    folds : int, optional
        Audit only the last ``folds`` walk-forward folds (default all).
    write : bool
        Write ``<results_dir>/<experiment>/audit/<audit id>/{audit.json, audit.md}``.
    results_dir : str or pathlib.Path, optional
        Default the config's ``[tracking] results_dir``.
    on_step : callable, optional
        Called with a short description before each step.

    Returns
    -------
    AuditReport

    Raises
    ------
    ConfigError, DataSourceError, DataValidationError
        As ``volsuite run``, before anything is written.
    AuditError
        ``dates`` or ``folds`` below 1, or no out-of-sample session.
    """
    from experiments.runner import build_plugin, checked_overrides, load_data

    if dates < 1:
        raise AuditError(f"--dates: must be >= 1 (got {dates})")
    if folds is not None and folds < 1:
        raise AuditError(f"--folds: must be >= 1 (got {folds})")
    config_path = Path(config_path)
    config = load_config(config_path)
    if trials is not None or seed is not None:
        config.optimize = checked_overrides(config_path, config, trials=trials, seed=seed)
    seed_a = config.optimize.seed
    seed_b = seed_a + 1

    def step(text: str) -> None:
        if on_step:
            on_step(text)

    step("load data and prepare")
    data, reports = load_data(config)
    plugin = build_plugin(config, data)
    reports = [*reports, *getattr(plugin, "reports", [])]
    step(f"walk-forward, seed {seed_a}")
    wf_a, metrics_a = _walkforward(config, plugin, seed_a, folds, None)
    run_a = _Run(plugin, wf_a, metrics_a, _book_bytes(wf_a))
    step(f"walk-forward again, seed {seed_a} (fresh prepare)")
    data_2, _ = load_data(config)
    plugin_2 = build_plugin(config, data_2)
    wf_2, m_2 = _walkforward(config, plugin_2, seed_a, folds, None)
    run_2 = _Run(plugin_2, wf_2, m_2, _book_bytes(wf_2))
    step(f"walk-forward, seed {seed_b}")
    wf_b, m_b = _walkforward(config, plugin, seed_b, folds, None)
    run_b = _Run(plugin, wf_b, m_b, _book_bytes(wf_b))

    checks = [
        check_look_ahead(config, data, plugin, wf_a, dates=dates, seed=seed_a, on_step=step),
        check_determinism(run_a, run_2, run_b, seed_a, seed_b),
        check_books(wf_a),
        check_costs_and_fills(config, plugin, data, wf_a, seed_a),
        check_evidence(metrics_a),
        check_data(plugin, data, wf_a, reports),
    ]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256(f"{stamp}{config_path.resolve()}".encode()).hexdigest()[:6]
    report = AuditReport(str(config_path), f"{stamp}-{digest}", checks)
    if write:
        root = Path(results_dir) if results_dir is not None else Path(config.tracking.results_dir)
        report.folder = write_report(report, root, config)
    return report


#: Rows of the evidence table: (metric of check 5, label).
EVIDENCE_ROWS = (
    ("days", "OOS days"),
    ("oos_years", "OOS years"),
    ("trades", "trades"),
    ("min_backtest_years", "MinBTL (years)"),
    ("sharpe", "Sharpe"),
    ("sharpe_ci_low", "Sharpe 95% low"),
    ("sharpe_ci_high", "Sharpe 95% high"),
    ("deflated_sharpe", "deflated Sharpe"),
    ("n_trials", "trials (DSR)"),
    ("pbo", "PBO"),
    ("is_sharpe_mean", "IS Sharpe (mean)"),
    ("oos_is_sharpe_ratio", "OOS / IS Sharpe"),
    ("sample", "sample note"),
)


def render_markdown(report: AuditReport) -> str:
    """``audit.md``: the verdict, one table row per check, then each check's evidence."""
    lines = [
        f"# volsuite audit: {report.config}",
        "",
        f"Audit `{report.run_id}` — verdict **{report.verdict}**",
        "",
        "| check | status | message |",
        "|---|---|---|",
    ]
    for c in report.checks:
        lines.append(f"| {c.name} | {c.status} | {c.message.replace('|', '/')} |")
    ev = (
        report.check("evidence").evidence
        if any(c.name == "evidence" for c in report.checks)
        else {}
    )
    lines += ["", "| evidence | value |", "|---|---|"]
    for key, label in EVIDENCE_ROWS:
        value = ev.get(key)
        shown = "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else value
        lines.append(f"| {label} | {shown} |")
    payload = report.to_json()
    for c in payload["checks"]:
        lines += ["", f"## {c['name']}: {c['status']}", "", "```json"]
        lines.append(json.dumps(c["evidence"], indent=2, default=str))
        lines.append("```")
    return "\n".join(lines) + "\n"


def write_report(report: AuditReport, results_dir: Path, config: ExperimentConfig) -> Path:
    """Write ``audit.json`` and ``audit.md`` into ``results_dir/<experiment>/audit/<id>/``,
    assembled in a temporary folder and renamed into place (no half-written audit)."""
    parent = results_dir / config.experiment.name / "audit"
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{report.run_id}-", dir=parent))
    try:
        (tmp / "audit.json").write_text(json.dumps(report.to_json(), indent=2, default=str))
        (tmp / "audit.md").write_text(render_markdown(report))
        tmp.chmod(0o755)
        final = parent / report.run_id
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
