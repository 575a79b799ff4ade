"""A portfolio of strategy runs: one book over members' out-of-sample returns (docs/portfolio.md).

``volsuite portfolio PORTFOLIO.toml`` reads the newest run folder of every member experiment
config (:func:`experiments.summary.newest_run`), aligns the members' out-of-sample daily returns
(``oos_returns.csv``) on the NYSE calendar and combines them with weights decided at each
rebalance from data up to the previous close only.

The book
--------
``R[t, i]`` is member ``i``'s out-of-sample simple return (decimal) on session ``t``; a member
without a return on a session of the portfolio calendar (outside its out-of-sample window) counts
0 there, and those sessions are counted per member in ``summary.json`` (``missing_days``).
``w[t, i]`` is the weight held during session ``t``, decided at the close of ``t - 1`` from
``R[:t]`` (and, for ``signal_vote``, the members' positions at that close). Weights are
fractions of portfolio equity; ``1 - sum_i w[t, i]`` is cash at 0 return (negative: borrowed at
0)::

    portfolio[t] = sum_i w[t, i] * R[t, i] - cost[t]                     (the identity)
    cost[t]      = rebalance_cost_bps / 1e4 * sum_i |w[t, i] - drift[t, i]|
    drift[t, i]  = w[t-1, i] * (1 + R[t-1, i]) / (1 + sum_j w[t-1, j] R[t-1, j])

``drift`` is what the previous weights became after session ``t - 1``'s returns (cash at 0).
On a rebalance session (every ``rebalance_days`` sessions, the first session included)
``w[t]`` is the scheme's target; between rebalances ``w[t] = drift[t]`` (no trade, cost 0).
``cost`` is the rebalancing cost as a fraction of equity: the traded weight times a flat
``rebalance_cost_bps`` (moving capital between sleeves; the members' own trading costs are already
in their returns). Its initial allocation (from cash) is charged on the first session.

Weighting schemes (target weights; ``H`` = the last ``lookback`` rows of ``R[:t]``)
-------------------------------------------------------------------------------------
``equal``
    ``1 / N``.
``inverse_vol``
    ``w_i ∝ 1 / sd_i(H)`` (ddof 1), summing to 1, over members with ``sd_i > 0``; a member with
    no variance in ``H`` (did not trade) gets 0.
``risk_parity``
    Equal risk contribution (Maillard, Roncalli & Teiletche 2010): ``w_i (Σ w)_i = w' Σ w / n``
    for the members with variance, ``Σ`` the Ledoit-Wolf (2004) shrunk covariance of ``H``
    (:class:`sklearn.covariance.LedoitWolf`), solved by :func:`erc_weights`.
``vol_target``
    Moreira & Muir (2017) scaling of the combined book: ``w_i = s / N`` with
    ``s = target_vol^2 / sigma^2`` capped and floored (:class:`strategies.risk.VolManagedSizer`),
    ``sigma^2`` the realized variance of the equal-weight book ``mean_i R[t-k, i]`` over the
    sizer's window before ``t``; ``s = 1`` until that window is full.
``signal_vote``
    :func:`strategies.risk.aggregate_signals` over the members' signals at the previous close.
    A member's signal (underlying ``"<root> vol"``, e.g. ``SPX vol``) is the side of the option
    premium it holds at that close, from its ``trades.csv`` (:func:`member_signals`): +1 when its
    net option contracts are long (long premium: long volatility), -1 when short, 0 when flat or
    net zero (a calendar or a risk reversal of equal sizes), confidence 1. When the vote decides
    ``trade`` the budget 1 is split equally among the supporting members (opposing and neutral
    members get 0); a conflict, a weak vote or no position leaves the book in cash.

Warm-up: until ``min_history`` sessions of history exist, ``inverse_vol`` and ``risk_parity``
use ``equal`` weights (counted in ``summary.json``: ``warmup_days``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data_feeds.errors import VolsuiteError
from strategies.risk.sizing import VolManagedSizer

Scheme = Literal["equal", "inverse_vol", "risk_parity", "vol_target", "signal_vote"]
SCHEMES: tuple[str, ...] = ("equal", "inverse_vol", "risk_parity", "vol_target", "signal_vote")

#: Default benchmark: SPX closes of the shared daily history (``../shared/data/index``).
DEFAULT_BENCHMARK = "../shared/data/index/spx_vix_spy_qqq_daily.csv"


class PortfolioError(VolsuiteError):
    """A portfolio config that does not validate, or a member that cannot be read."""


class MemberSpec(BaseModel):
    """One ``[[members]]`` entry: an experiment config (path relative to the working folder)."""

    model_config = ConfigDict(extra="forbid")

    config: str


class PortfolioSection(BaseModel):
    """``[portfolio]`` of a portfolio config (module docstring for the definitions).

    Attributes
    ----------
    name : str
        Output folder ``<results_dir>/portfolio/<name>/<run id>/``.
    weighting : str
        One of :data:`SCHEMES`.
    lookback : int
        Sessions of past returns for ``inverse_vol`` / ``risk_parity``.
    min_history : int
        Sessions of history before those schemes leave ``equal`` weights.
    rebalance_days : int
        Sessions between rebalances (1 = every session).
    rebalance_cost_bps : float
        Cost per unit of traded weight, basis points of equity.
    vol_target : VolManagedSizer
        ``[portfolio.vol_target]``: target_vol (decimal, annualized), window, cap, floor.
    min_agreement : float
        Vote threshold of :func:`strategies.risk.vote`.
    correlation_window : int
        Sessions of the rolling correlation chart.
    correlation_alert : float
        Alert level of a rolling pairwise correlation (absolute value), in (0, 1].
    initial_cash : float
        Dollars of the portfolio account (``summary.json`` equity figures).
    results_dir : str
        Output root (default ``results``).
    benchmark : str
        Daily OHLC source of the benchmark held long (:func:`data_feeds.load_ohlc`).
    benchmark_root : str
        Its ``root`` (long-format file).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    weighting: Scheme = "equal"
    lookback: int = Field(63, ge=5, le=2520)
    min_history: int = Field(10, ge=2, le=2520)
    rebalance_days: int = Field(1, ge=1, le=252)
    rebalance_cost_bps: float = Field(0.0, ge=0.0, le=1000.0)
    vol_target: VolManagedSizer = Field(default_factory=lambda: VolManagedSizer(target_vol=0.10))
    min_agreement: float = Field(0.2, gt=0.0, le=1.0)
    correlation_window: int = Field(21, ge=5, le=2520)
    correlation_alert: float = Field(0.7, gt=0.0, le=1.0)
    initial_cash: float = Field(100_000.0, gt=0.0)
    results_dir: str = "results"
    benchmark: str = DEFAULT_BENCHMARK
    benchmark_root: str | None = "SPX"

    @model_validator(mode="after")
    def _history(self) -> PortfolioSection:
        if self.min_history > self.lookback:
            raise ValueError(f"min_history ({self.min_history}) must be <= lookback")
        return self


class PortfolioConfig(BaseModel):
    """A whole portfolio TOML: ``[portfolio]`` and at least two ``[[members]]``."""

    model_config = ConfigDict(extra="forbid")

    portfolio: PortfolioSection
    members: list[MemberSpec] = Field(min_length=2)


def load_portfolio_config(path: str | Path) -> PortfolioConfig:
    """Read and validate a portfolio TOML.

    Raises
    ------
    PortfolioError
        Unreadable file, bad TOML, or a field that does not validate (one line naming the
        field), or a member config that does not exist.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PortfolioError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PortfolioError(f"{path}: invalid TOML ({exc})") from None
    try:
        cfg = PortfolioConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise PortfolioError(f"{path}: {loc}: {err['msg']} (got {err.get('input')!r})") from None
    for i, m in enumerate(cfg.members):
        if not Path(m.config).is_file():
            raise PortfolioError(f"{path}: members[{i}].config: no file {m.config!r}")
    return cfg


# -- weights ----------------------------------------------------------------------------------
def erc_weights(cov: np.ndarray, *, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """Equal-risk-contribution weights of a covariance matrix, summing to 1.

    Solves ``w_i (Σ w)_i = w' Σ w / n`` (Maillard, Roncalli & Teiletche 2010, eq. 3, long
    only) through the convex problem ``min_y 0.5 y'Σy - (1/n) sum_i log y_i`` (Spinu 2013),
    whose optimum satisfies ``y_i (Σ y)_i = 1/n``, by cyclical coordinate descent (Griveau-Billion,
    Richard & Roncalli 2013: each ``y_i`` is the positive root of
    ``Σ_ii y_i^2 + (Σ_{j≠i} Σ_ij y_j) y_i - 1/n = 0``), then ``w = y / sum(y)``.

    Parameters
    ----------
    cov : ndarray, shape (n, n)
        Symmetric positive definite covariance (any consistent units, e.g. daily decimal^2).
    tol : float
        Stop when no ``y_i`` moves by more than ``tol`` relative to ``max(y)``.
    max_iter : int
        Sweeps before giving up.

    Returns
    -------
    ndarray, shape (n,)
        Weights > 0, summing to 1.

    Raises
    ------
    ValueError
        Not square/symmetric, a non-positive diagonal, not positive definite, or no
        convergence in ``max_iter`` sweeps.
    """
    s = np.asarray(cov, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"covariance must be a square matrix, got shape {s.shape}")
    if not np.allclose(s, s.T, rtol=1e-10, atol=1e-14):
        raise ValueError("covariance is not symmetric")
    diag = np.diag(s)
    if not (np.all(np.isfinite(s)) and np.all(diag > 0)):
        raise ValueError(f"covariance needs a finite, positive diagonal; got {diag.tolist()}")
    if np.linalg.eigvalsh(s).min() <= 0:
        raise ValueError("covariance is not positive definite")
    n = s.shape[0]
    b = 1.0 / n
    y = 1.0 / np.sqrt(diag)
    y *= math.sqrt(b / float(y @ s @ y))  # a scaled inverse-vol start
    for _ in range(max_iter):
        moved = 0.0
        for i in range(n):
            a = float(s[i] @ y) - s[i, i] * y[i]
            new = (-a + math.sqrt(a * a + 4.0 * s[i, i] * b)) / (2.0 * s[i, i])
            moved = max(moved, abs(new - y[i]))
            y[i] = new
        if moved <= tol * float(y.max()):
            return y / y.sum()
    raise ValueError(f"equal risk contribution did not converge in {max_iter} sweeps")


def _equal(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def target_weights(
    history: np.ndarray,
    section: PortfolioSection,
    *,
    signal: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Target weights of one rebalance from the history before it (module docstring).

    Parameters
    ----------
    history : ndarray, shape (t, N)
        Member returns (decimal) of every session before the rebalance session, oldest first.
    section : PortfolioSection
        Scheme and its parameters.
    signal : ndarray, shape (N,), optional
        ``signal_vote`` only: each member's signal (-1, 0, 1) at the previous close.

    Returns
    -------
    weights : ndarray, shape (N,)
    note : str
        ``""``, or ``"warmup"`` when a scheme fell back to equal weights for lack of history.

    Raises
    ------
    ValueError
        ``signal_vote`` without ``signal``.
    """
    t, n = history.shape
    scheme = section.weighting
    if scheme == "equal":
        return _equal(n), ""
    if scheme == "vol_target":
        sizer = section.vol_target
        book = history.mean(axis=1) if t else np.empty(0)
        scale = sizer.weight(book) if t >= sizer.window else 1.0
        return _equal(n) * scale, "" if t >= sizer.window else "warmup"
    if scheme == "signal_vote":
        if signal is None:
            raise ValueError("signal_vote needs the members' signals at the previous close")
        return _vote_weights(signal, section.min_agreement), ""
    if t < section.min_history:
        return _equal(n), "warmup"
    h = history[-section.lookback :]
    sd = h.std(axis=0, ddof=1)
    live = sd > 0
    w = np.zeros(n)
    if not live.any():
        return _equal(n), "warmup"
    if scheme == "inverse_vol" or live.sum() == 1:
        w[live] = 1.0 / sd[live]
        return w / w.sum(), ""
    from sklearn.covariance import LedoitWolf

    cov = LedoitWolf().fit(h[:, live]).covariance_
    w[live] = erc_weights(cov)
    return w, ""


def _vote_weights(signal: np.ndarray, min_agreement: float) -> np.ndarray:
    from strategies.risk.signals import Signal, vote

    n = len(signal)
    sigs = [Signal(str(i), "book", int(signal[i]), 1.0) for i in range(n)]
    res = vote(sigs, min_agreement=min_agreement)
    w = np.zeros(n)
    if res.decision == "trade":
        support = [int(s) for s in res.supporting]
        w[support] = 1.0 / len(support)
    return w


@dataclass
class Book:
    """The combined book (module docstring).

    Attributes
    ----------
    returns : pandas.DataFrame
        Sessions x members (decimal), plus ``portfolio``.
    weights : pandas.DataFrame
        Sessions x members: weights held during each session, plus ``cash`` and ``cost``
        (fraction of equity charged that session) and ``rebalance`` (bool).
    notes : dict
        ``warmup_days`` and the vote decisions per session (``signal_vote``).
    """

    returns: pd.DataFrame
    weights: pd.DataFrame
    notes: dict[str, Any] = field(default_factory=dict)


def combine(
    member_returns: pd.DataFrame,
    section: PortfolioSection,
    *,
    signals: pd.DataFrame | None = None,
) -> Book:
    """Weights and portfolio returns of the book, each weight from the past only.

    Parameters
    ----------
    member_returns : pandas.DataFrame, shape (T, N)
        Aligned member returns (decimal), sessions oldest first, no NaN.
    section : PortfolioSection
    signals : pandas.DataFrame, shape (T, N), optional
        ``signal_vote``: each member's signal at the close of each session (-1, 0, 1); the
        weights of session ``t`` use row ``t - 1`` (flat before the first row).

    Returns
    -------
    Book

    Raises
    ------
    ValueError
        A NaN return, or ``signal_vote`` without signals aligned to the returns.
    """
    r = member_returns.to_numpy(dtype=float)
    if np.isnan(r).any():
        raise ValueError("member returns hold NaN; align them first (align_returns)")
    t_n, n = r.shape
    sig = None
    if section.weighting == "signal_vote":
        if signals is None or not signals.index.equals(member_returns.index):
            raise ValueError("signal_vote needs signals on the same sessions as the returns")
        sig = signals[member_returns.columns].to_numpy(dtype=float)
    w = np.zeros((t_n, n))
    cost = np.zeros(t_n)
    rebalance = np.zeros(t_n, dtype=bool)
    port = np.zeros(t_n)
    warm = 0
    prev = np.zeros(n)  # start in cash
    rate = section.rebalance_cost_bps / 1e4
    for t in range(t_n):
        if t == 0:
            drift = prev
        else:
            gross = float(w[t - 1] @ r[t - 1])
            drift = w[t - 1] * (1.0 + r[t - 1]) / (1.0 + gross)
        if t % section.rebalance_days == 0:
            s_prev = sig[t - 1] if (sig is not None and t > 0) else np.zeros(n)
            target, note = target_weights(r[:t], section, signal=s_prev)
            warm += note == "warmup"
            w[t] = target
            rebalance[t] = True
            cost[t] = rate * float(np.abs(target - drift).sum())
        else:
            w[t] = drift
        port[t] = float(w[t] @ r[t]) - cost[t]
    idx = member_returns.index
    returns = member_returns.copy()
    returns["portfolio"] = port
    weights = pd.DataFrame(w, index=idx, columns=member_returns.columns)
    weights["cash"] = 1.0 - w.sum(axis=1)
    weights["cost"] = cost
    weights["rebalance"] = rebalance
    return Book(returns, weights, {"warmup_days": warm})


# -- members ----------------------------------------------------------------------------------
@dataclass
class Member:
    """One member's newest run."""

    name: str
    config_path: Path
    run_dir: Path
    mlflow_run_id: str | None
    returns: pd.Series
    strategy: str


def resolve_members(
    config: PortfolioConfig,
    *,
    run: bool = False,
    rerun: bool = False,
    trials: int | None = None,
    track: bool = True,
    log: Any = None,
) -> list[Member]:
    """Each member's newest run folder (running the config first with ``run`` / ``rerun``).

    Raises
    ------
    PortfolioError
        A member config that does not validate, has no run folder (without ``run``), a run that
        fails, two members with the same experiment name.
    """
    from experiments.config import load_config
    from experiments.summary import RunFolderError, newest_run, read_oos_returns

    out: list[Member] = []
    for i, spec in enumerate(config.members):
        path = Path(spec.config)
        try:
            cfg = load_config(path)
        except VolsuiteError as exc:
            raise PortfolioError(f"members[{i}] {path}: invalid config: {exc}") from None
        name = cfg.experiment.name
        if any(m.name == name for m in out):
            raise PortfolioError(f"members[{i}] {path}: experiment {name!r} listed twice")
        exp_dir = Path(cfg.tracking.results_dir) / name
        run_dir = newest_run(exp_dir)
        if run and (rerun or run_dir is None):
            from experiments.runner import run_experiment

            if log:
                log(f"running member {name} ({path})")
            try:
                run_dir = run_experiment(path, trials=trials, track=track).run_dir
            except Exception as exc:
                raise PortfolioError(
                    f"members[{i}] {path}: run failed: {type(exc).__name__}: {exc}"
                ) from exc
        if run_dir is None:
            raise PortfolioError(
                f"members[{i}] {path}: no run folder under {exp_dir} (volsuite portfolio ... "
                "--run, or volsuite run it)"
            )
        try:
            returns = read_oos_returns(run_dir / "oos_returns.csv")
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, RunFolderError, json.JSONDecodeError) as exc:
            raise PortfolioError(f"members[{i}] {run_dir}: bad run folder: {exc}") from None
        out.append(
            Member(
                name,
                path,
                run_dir,
                summary.get("mlflow_run_id"),
                returns.rename(name),
                str(summary.get("strategy", cfg.strategy.name)),
            )
        )
    return out


def align_returns(members: list[Member]) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Members' returns on the NYSE sessions from the first to the last out-of-sample date.

    Returns
    -------
    frame : pandas.DataFrame, shape (T, N)
        Naive session dates x member names; 0 where a member has no return.
    counts : dict
        Per member: ``days`` (its own returns), ``missing_days`` (sessions filled with 0) and
        ``off_calendar`` (its dates that are not NYSE sessions: an error, see Raises).

    Raises
    ------
    PortfolioError
        A member return on a date that is not an NYSE session, or a NaN return.
    """
    from data_feeds.calendar import nyse_sessions

    start = min(m.returns.index.min() for m in members)
    end = max(m.returns.index.max() for m in members)
    sessions = pd.DatetimeIndex(nyse_sessions(start, end).tz_localize(None).normalize())
    frame = pd.DataFrame(index=sessions)
    counts: dict[str, dict[str, int]] = {}
    for m in members:
        off = m.returns.index.difference(sessions)
        if len(off):
            raise PortfolioError(
                f"{m.run_dir / 'oos_returns.csv'}: {len(off)} date(s) not NYSE sessions, first "
                f"{off[0].date()}"
            )
        if m.returns.isna().any():
            day = m.returns.index[m.returns.isna().to_numpy().argmax()].date()
            raise PortfolioError(f"{m.run_dir / 'oos_returns.csv'}: NaN oos_return on {day}")
        col = m.returns.reindex(sessions)
        counts[m.name] = {
            "days": len(m.returns),
            "missing_days": int(col.isna().sum()),
        }
        frame[m.name] = col.fillna(0.0)
    frame.index.name = "date"
    return frame, counts


def member_signals(trades: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.Series:
    """A member's ``signal_vote`` signal at each session's close, from its ``trades.csv``.

    The net option contracts held at the close (fills add their signed quantity, settlements
    remove the settled quantity, window-end closes add theirs, as
    :func:`experiments.metrics.opening_orders` counts them): +1 net long, -1 net short, 0 flat.
    Share fills (delta hedges) do not count. A run without option fills (share pairs) is 0.

    Parameters
    ----------
    trades : pandas.DataFrame
        ``trades.csv`` (either layout).
    sessions : pandas.DatetimeIndex
        Naive session dates.

    Returns
    -------
    pandas.Series of int, indexed by ``sessions``
    """
    from experiments.metrics import _fills

    if trades.empty or "event" not in trades:
        return pd.Series(0, index=sessions, dtype=int)
    f = _fills(trades)
    f = f[f["kind"].isin(["option", "settlement", "window_end"])]
    signed = np.where(f["kind"] == "settlement", -f["quantity"], f["quantity"])
    day = pd.to_datetime(f["time"].str[:10])
    daily = pd.Series(signed, index=day.to_numpy()).groupby(level=0).sum()
    net = daily.cumsum().reindex(sessions.union(daily.index)).ffill().fillna(0.0)
    net = net.reindex(sessions)
    return np.sign(net.round(9)).astype(int)


# -- outputs ----------------------------------------------------------------------------------
def rolling_correlations(returns: pd.DataFrame, window: int) -> pd.DataFrame:
    """Rolling Pearson correlation of every member pair over ``window`` sessions.

    Returns
    -------
    pandas.DataFrame
        Sessions x ``"a | b"`` pairs; NaN until the window is full or where a member is flat.
    """
    cols = list(returns.columns)
    out = {}
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            out[f"{a} | {b}"] = returns[a].rolling(window).corr(returns[b])
    return pd.DataFrame(out, index=returns.index)


def correlation_alerts(rolling: pd.DataFrame, level: float) -> list[dict[str, Any]]:
    """Sessions where a rolling correlation crosses ``|rho| >= level`` (from below).

    Returns
    -------
    list of dict
        ``date, pair, correlation`` of each crossing, in date order.
    """
    alerts = []
    for pair in rolling.columns:
        above = rolling[pair].abs() >= level
        crossed = above & ~above.shift(1, fill_value=False)
        for day in rolling.index[crossed.to_numpy()]:
            alerts.append(
                {"date": str(day.date()), "pair": pair, "correlation": float(rolling.at[day, pair])}
            )
    return sorted(alerts, key=lambda a: (a["date"], a["pair"]))


def write_correlation_html(
    path: Path,
    corr: pd.DataFrame,
    rolling: pd.DataFrame,
    level: float,
    alerts: list[dict[str, Any]],
    title: str,
) -> Path:
    """Plotly heatmap of the full-sample correlation and the rolling pairwise correlations with
    the alert lines ``±level``, and the list of crossings (self-contained HTML, plotly.js
    inlined once, nothing downloaded)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from experiments.summary import write_atomic

    fig = make_subplots(
        rows=2,
        cols=1,
        row_heights=[0.45, 0.55],
        subplot_titles=("Correlation of daily returns (full sample)", "Rolling correlation"),
        vertical_spacing=0.12,
    )
    fig.add_trace(
        go.Heatmap(
            z=corr.to_numpy(),
            x=list(corr.columns),
            y=list(corr.index),
            zmin=-1,
            zmax=1,
            colorscale="RdBu_r",
            text=np.round(corr.to_numpy(), 2),
            texttemplate="%{text}",
            colorbar={"len": 0.4, "y": 0.8},
        ),
        row=1,
        col=1,
    )
    for pair in rolling.columns:
        fig.add_trace(
            go.Scatter(x=rolling.index, y=rolling[pair], mode="lines", name=pair), row=2, col=1
        )
    for y in (level, -level):
        fig.add_hline(y=y, line_dash="dash", line_color="red", row=2, col=1)
    fig.update_layout(title=title, height=900)
    items = "".join(
        f"<li>{a['date']}: {a['pair']} rolling correlation {a['correlation']:.2f}</li>"
        for a in alerts
    )
    alert_html = f"<h2>Alerts: |rolling correlation| crossing {level:.2f}</h2>" + (
        f"<ul>{items}</ul>" if items else "<p>none</p>"
    )
    body = fig.to_html(full_html=False, include_plotlyjs=True)
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>{body}{alert_html}</body></html>"
    )
    write_atomic(path, html)
    return path


def benchmark_returns(section: PortfolioSection, start: pd.Timestamp, end: pd.Timestamp):
    """Close-to-close daily returns of the benchmark held long, naive session index.

    Raises
    ------
    DataSourceError, DataValidationError
        From :func:`data_feeds.load_ohlc`.
    """
    from data_feeds import load_ohlc

    frame = load_ohlc(
        section.benchmark,
        root=section.benchmark_root,
        start=start - pd.Timedelta(days=10),
        end=end,
    )
    close = frame["close"].copy()
    close.index = pd.DatetimeIndex(close.index.tz_localize(None).normalize())
    return close.pct_change().rename("benchmark")


@dataclass
class PortfolioOutcome:
    """What ``volsuite portfolio`` produced."""

    run_id: str
    run_dir: Path
    members: list[Member]
    book: Book
    metrics: dict[str, Any]
    alerts: list[dict[str, Any]]
    mlflow_run_id: str | None


def run_portfolio(
    path: str | Path,
    *,
    run: bool = False,
    rerun: bool = False,
    trials: int | None = None,
    track: bool = True,
    log: Any = None,
) -> PortfolioOutcome:
    """``volsuite portfolio``: read (or run) the members, combine, write the run folder.

    Writes ``<results_dir>/portfolio/<name>/<run id>/``: ``returns.csv``, ``weights.csv``,
    ``correlation.csv``, ``rolling_correlation.csv``, ``correlation.html``, ``oos_returns.csv``
    (the portfolio column, for ``volsuite summary``), ``tearsheet.html``, ``summary.json``,
    ``config.toml``, and ``signals.csv`` / ``votes.csv`` for ``signal_vote``. The folder is built
    in a temporary folder and renamed into place.

    Raises
    ------
    PortfolioError
        Bad config, member or member run.
    """
    from experiments import metrics as perf
    from experiments.runner import json_safe

    path = Path(path)
    config = load_portfolio_config(path)
    section = config.portfolio
    members = resolve_members(config, run=run, rerun=rerun, trials=trials, track=track, log=log)
    aligned, counts = align_returns(members)
    signals = None
    if section.weighting == "signal_vote":
        signals = pd.DataFrame(
            {m.name: member_signals(_read_trades(m.run_dir), aligned.index) for m in members},
            index=aligned.index,
        )
    book = combine(aligned, section, signals=signals)
    port = book.returns["portfolio"]
    final = section.initial_cash * float(np.prod(1.0 + port.to_numpy()))
    metrics = perf.run_metrics(
        port,
        initial_cash=section.initial_cash,
        final_equity=final,
        trades=None,
        trial_sharpes=[],
        fold_pbos=[],
        is_sharpes=[],
        min_trades=0,
        min_days=20,
    )
    rolling = rolling_correlations(aligned, section.correlation_window)
    alerts = correlation_alerts(rolling, section.correlation_alert)

    root = Path(section.results_dir) / "portfolio" / section.name
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    run_id = f"{stamp}-{hashlib.sha256(f'{stamp}{path.resolve()}'.encode()).hexdigest()[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=root))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    try:
        shutil.copyfile(path, tmp / "config.toml")
        book.returns.to_csv(tmp / "returns.csv", index_label="date", float_format="%.17g")
        book.weights.to_csv(tmp / "weights.csv", index_label="date", float_format="%.17g")
        port.rename("oos_return").to_csv(
            tmp / "oos_returns.csv", index_label="date", float_format="%.17g"
        )
        corr = aligned.corr()
        corr.to_csv(tmp / "correlation.csv", index_label="member")
        rolling.to_csv(tmp / "rolling_correlation.csv", index_label="date")
        title = f"portfolio {section.name} ({section.weighting})"
        write_correlation_html(
            tmp / "correlation.html", corr, rolling, section.correlation_alert, alerts, title
        )
        if signals is not None:
            signals.to_csv(tmp / "signals.csv", index_label="date")
        bench = benchmark_returns(section, aligned.index[0], aligned.index[-1])
        bench_name = f"{section.benchmark_root or Path(section.benchmark).stem} buy-and-hold"
        _write_tearsheet(
            tmp / "tearsheet.html", port, bench, bench_name, metrics, book, members, section, alerts
        )
        payload = {
            "experiment": f"portfolio/{section.name}",
            "strategy": f"portfolio:{section.weighting}",
            "market_source": "member runs",
            "benchmark": bench_name,
            "initial_cash": section.initial_cash,
            "final_equity": final,
            "oos_start": str(aligned.index[0].date()),
            "oos_end": str(aligned.index[-1].date()),
            "metrics": metrics,
            "weighting": section.weighting,
            "members": {
                m.name: {
                    "config": str(m.config_path),
                    "run_dir": str(m.run_dir),
                    "mlflow_run_id": m.mlflow_run_id,
                    "strategy": m.strategy,
                    **counts[m.name],
                }
                for m in members
            },
            "warmup_days": book.notes["warmup_days"],
            "rebalance_cost_total": float(book.weights["cost"].sum()),
            "correlation_alerts": alerts,
        }
        (tmp / "summary.json").write_text(json.dumps(json_safe(payload), indent=2))
        run_dir = root / run_id
        tmp.rename(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mlflow_id = None
    if track:
        mlflow_id = _log_mlflow(section, run_id, run_dir, metrics, members, path)
        summary_path = run_dir / "summary.json"
        data = json.loads(summary_path.read_text())
        data["mlflow_run_id"] = mlflow_id
        summary_path.write_text(json.dumps(data, indent=2))
    return PortfolioOutcome(run_id, run_dir, members, book, metrics, alerts, mlflow_id)


def _read_trades(run_dir: Path) -> pd.DataFrame:
    p = run_dir / "trades.csv"
    if not p.exists():
        raise PortfolioError(f"{run_dir}: no trades.csv (signal_vote reads the positions)")
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _write_tearsheet(
    out: Path,
    port: pd.Series,
    bench: pd.Series,
    bench_name: str,
    metrics: dict[str, Any],
    book: Book,
    members: list[Member],
    section: PortfolioSection,
    alerts: list[dict[str, Any]],
) -> None:
    from experiments import metrics as perf
    from experiments.runner import HEADLINE
    from experiments.tearsheet import write_tearsheet

    b = bench.reindex(port.index)
    bench_metrics = {
        "sharpe": perf.sharpe(b),
        "sortino": perf.sortino(b),
        "cagr": perf.cagr(b),
        "volatility": perf.volatility(b),
        "max_drawdown": perf.max_drawdown(b),
        "calmar": perf.calmar(b),
        "total_return": perf.total_return(b),
        "days": float(b.notna().sum()),
    }
    headline = {
        k: v
        for k, v in metrics.items()
        if (k in HEADLINE or k.startswith("sharpe_ci"))
        and k not in ("trades", "deflated_sharpe", "pbo", "oos_is_sharpe_ratio")
        and k != "min_backtest_years"
    }
    headline["sample"] = metrics.get("sample")
    rows = []
    for m in members:
        r = book.returns[m.name]
        rows.append(
            {
                "member": m.name,
                "strategy": m.strategy,
                "run": m.run_dir.name,
                "sharpe": perf.sharpe(r),
                "total_return": perf.total_return(r),
                "max_drawdown": perf.max_drawdown(r),
                "mean_weight": float(book.weights[m.name].mean()),
            }
        )
    notes = [
        f"Weights decided at the previous close ({section.weighting}); rebalancing cost "
        f"{section.rebalance_cost_bps:g} bp of traded weight, total "
        f"{book.weights['cost'].sum():.6f} of equity.",
        f"{len(alerts)} rolling-correlation alert(s) at |rho| >= {section.correlation_alert:g} "
        f"(window {section.correlation_window}); see correlation.html.",
    ]
    write_tearsheet(
        port,
        b,
        out,
        f"portfolio {section.name}: {section.weighting} over {len(members)} members",
        metrics=headline,
        benchmark_metrics=bench_metrics,
        strategy_name=f"portfolio:{section.weighting}",
        market_source="member runs",
        benchmark_name=bench_name,
        notes=notes,
        sections=[("Members", pd.DataFrame(rows))],
    )


def _log_mlflow(
    section: PortfolioSection,
    run_id: str,
    run_dir: Path,
    metrics: dict[str, Any],
    members: list[Member],
    config_path: Path,
) -> str:
    import logging

    import mlflow

    from experiments.tracking import git_commit, numeric_metrics

    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    results = Path(section.results_dir)
    mlflow.set_tracking_uri(f"sqlite:///{(results / 'mlflow.db').resolve()}")
    client = mlflow.MlflowClient()
    exp_name = f"portfolio-{section.name}"
    found = client.get_experiment_by_name(exp_name)
    if found is None:
        art = (results / "mlflow-artifacts").resolve()
        art.mkdir(parents=True, exist_ok=True)
        exp_id = client.create_experiment(exp_name, artifact_location=(art / exp_name).as_uri())
    else:
        exp_id = found.experiment_id
    tags = {
        "git_commit": git_commit(Path.cwd()),
        "weighting": section.weighting,
        "config_path": str(config_path),
        "results_dir": str(run_dir),
        **{f"member.{m.name}.run_id": m.mlflow_run_id or m.run_dir.name for m in members},
        **{f"member.{m.name}.run_dir": str(m.run_dir) for m in members},
    }
    with mlflow.start_run(experiment_id=exp_id, run_name=run_id) as active:
        mlflow.set_tags(tags)
        mlflow.log_params(section.model_dump(mode="json", exclude={"vol_target"}))
        mlflow.log_metrics(numeric_metrics(metrics, prefix="oos_"))
        mlflow.log_artifacts(str(run_dir))
        return active.info.run_id


__all__ = [
    "SCHEMES",
    "Book",
    "Member",
    "PortfolioConfig",
    "PortfolioError",
    "PortfolioOutcome",
    "PortfolioSection",
    "align_returns",
    "combine",
    "correlation_alerts",
    "erc_weights",
    "load_portfolio_config",
    "member_signals",
    "resolve_members",
    "rolling_correlations",
    "run_portfolio",
    "target_weights",
]
