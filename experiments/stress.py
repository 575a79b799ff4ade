"""Stress tests of the positions a run held at each close (``volsuite stress``, docs/portfolio.md).

Positions
---------
The book at the close of session ``d`` is rebuilt from the run's ``trades.csv`` (fills add their
signed quantity, settlements remove the settled quantity, window-end closes add theirs: the
bookkeeping of :func:`experiments.metrics.opening_orders`), per fold, for every session of
``equity.csv``. Each option leg is marked on that session's chain snapshot of the run's chain
store (:meth:`data_feeds.chain_store.ChainStore.snapshot`, latest snapshot of the day, the
config's ``rate``): forward ``F`` (put-call parity), ``tte`` (ACT/365 to settlement) and implied
vol ``sigma`` from the fitted SVI slice when the store holds one for that date and expiry
(:func:`data_feeds.surfaces.load_fitted_surfaces`, :func:`pricing.svi.svi_implied_vol`), otherwise
the quote's Black-76 implied vol (:meth:`data_feeds.chains.ChainSnapshot.with_implied_vols`); a
quote without an implied vol takes the nearest strike's of its slice (counted:
``legs_iv_fallback``); a leg not quoted that day is left out (counted: ``legs_unpriced``).
Share legs (delta hedges) are marked at the snapshot's underlying price. The rebuilt book is
written to ``positions.csv`` (``date, fold, root, expiration, strike, right, quantity,
multiplier, underlying_price, forward, tte, implied_vol, iv_source, mark``).

Repricing (full, Black-76 via :func:`pricing.bs_price` with ``spot = F e^{-r tte}``, ``q = 0``)
-------------------------------------------------------------------------------------------
A scenario moves the spot by a return ``x`` (``F1 = F (1 + x)``, shares ``S (1 + x)``), the
implied vols by ``dv`` (decimal vol; +0.10 = +10 vol points) under a skew rule, and time by
``days`` calendar days (``tte1 = max(tte - days / 365, 0)``)::

    sticky_strike     sigma1(K) = sigma0(K) + dv
    sticky_moneyness  sigma1(K) = sigma0(K) + smile0(ln(K / F1)) - smile0(ln(K / F)) + dv
                      (the smile moves with the forward; the leg keeps its own vol's offset
                      from the smile, so a zero shock reprices at sigma0 exactly)
    skew steepening   sigma1(K) = sigma0(K) - beta * ln(K / F)   (beta = skew_steepening)

``smile0`` is the date's SVI slice, or the linear interpolation in log-moneyness of the slice's
out-of-the-money quote vols (puts below the forward, calls at and above it; all quotes when fewer
than two are out of the money; flat beyond the last strikes). Vols are floored at 0.01. P&L
(dollars) is ``sum q * multiplier * (V1 - V0)`` with ``V0`` the model price at the unshocked
inputs, so the P&L is the shock's alone.

Scenarios
---------
* ``grid``: every ``(x, dv)`` of ``spot`` x ``vol`` under each rule in ``skew_rules``.
* ``skew_steepening``: ``beta`` alone; ``decay``: ``days = decay_days`` alone.
* ``historical``: the ``historical_worst`` largest one-day SPX falls and the as many largest
  one-day VIX rises of the shared daily history (:func:`historical_shocks`, found from the data),
  each applied as ``x`` = that day's SPX close-to-close return, ``dv`` = that day's VIX change /
  100, sticky strike, plus one day of decay.
* Monte Carlo: ``mc_paths`` one-day moves from a Merton (1976) jump-diffusion fitted by maximum
  likelihood (:func:`indicators.jumps.merton_fit`) to the ``mc_history_days`` SPX daily log
  returns before the run's first position date (no look-ahead); ``x = e^X - 1`` with
  ``X = mu + N m_J + sqrt(sigma^2 + N s_J^2) Z``, ``N ~ Poisson(lambda)``; the vols move by
  ``dv = b X`` sticky strike, ``b`` the OLS slope of daily VIX changes (decimal) on SPX log
  returns over the same history; one day of decay. ``VaR_a`` = minus the ``(1 - a)`` quantile
  of the P&L, ``ES_a`` = minus the mean P&L at or below ``-VaR_a`` (:func:`var_es`), a = 95%, 99%.

Limits (``[risk]`` of the run's config, :class:`strategies.risk.RiskLimits`) flagged per row:
``max_daily_loss`` when ``-pnl / equity >= max_daily_loss``; ``max_drawdown`` when the equity
after the P&L is at least ``max_drawdown`` below the running peak of ``equity.csv``;
``max_vega`` when the book's ``|vega|`` per vol point before the shock exceeds
``max_vega_per_vol_point``.

A portfolio run folder (``volsuite portfolio``) aggregates its members' books: on session ``d``
each member's P&L is scaled by ``w[d+1, i] * E_p[d] / E_i[d]`` (the weight held during the next
session, decided at the close of ``d``; ``E`` the equities), the same Monte Carlo draws are used
for every member, and the sums are reported.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_feeds.errors import VolsuiteError

SkewRule = Literal["sticky_strike", "sticky_moneyness"]
VOL_FLOOR = 0.01
DEFAULT_HISTORY = "../shared/data/index/spx_vix_spy_qqq_daily.csv"
#: Columns of ``positions.csv``.
POSITION_COLUMNS = (
    "date",
    "fold",
    "root",
    "expiration",
    "strike",
    "right",
    "quantity",
    "multiplier",
    "underlying_price",
    "forward",
    "tte",
    "rate",
    "implied_vol",
    "iv_source",
    "mark",
)


class StressError(VolsuiteError):
    """A stress target or scenario file that cannot be used."""


class StressSpec(BaseModel):
    """The scenario file (``--scenarios``, TOML; every key optional, module docstring).

    Attributes
    ----------
    spot : list of float
        Spot returns of the grid (decimal, -0.10 = -10%).
    vol : list of float
        ATM vol shifts of the grid (decimal vol, 0.10 = +10 vol points).
    skew_rules : list of str
        ``sticky_strike`` and/or ``sticky_moneyness``.
    skew_steepening : float
        ``beta``, decimal vol per unit of log-moneyness (0.5: +5 vol points at 10% below the
        forward, -5 at 10% above).
    decay_days : float
        Calendar days of the decay scenario.
    historical_worst : int
        Largest SPX falls and largest VIX rises taken each.
    history : str
        Daily SPX/VIX history (long format with ``root``).
    mc_paths, mc_seed, mc_history_days : int
        Monte Carlo draws, seed, and SPX sessions the Merton fit uses.
    """

    model_config = ConfigDict(extra="forbid")

    spot: list[float] = Field(
        default_factory=lambda: [-0.10, -0.05, -0.03, -0.01, 0.0, 0.01, 0.03, 0.05, 0.10]
    )
    vol: list[float] = Field(default_factory=lambda: [-0.10, -0.05, 0.0, 0.05, 0.10, 0.20, 0.30])
    skew_rules: list[SkewRule] = Field(
        default_factory=lambda: ["sticky_strike", "sticky_moneyness"]
    )
    skew_steepening: float = 0.5
    decay_days: float = Field(1.0, ge=0.0)
    historical_worst: int = Field(5, ge=1, le=50)
    history: str = DEFAULT_HISTORY
    mc_paths: int = Field(20_000, ge=100, le=1_000_000)
    mc_seed: int = Field(7, ge=0)
    mc_history_days: int = Field(2520, ge=100)


def load_spec(path: Path | None) -> StressSpec:
    """The scenario file, or the defaults when ``path`` is None.

    Raises
    ------
    StressError
        Unreadable file, bad TOML or a field that does not validate (named).
    """
    if path is None:
        return StressSpec()
    try:
        raw = tomllib.loads(Path(path).read_text())
        return StressSpec.model_validate(raw)
    except OSError as exc:
        raise StressError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StressError(f"{path}: invalid TOML ({exc})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise StressError(f"{path}: {loc}: {err['msg']} (got {err.get('input')!r})") from None


# -- the book ----------------------------------------------------------------------------------
@dataclass
class Slice:
    """One expiry slice's smile: ``vol(k)``, ``k = ln(K / F)``, from SVI or quote vols."""

    k: np.ndarray
    vols: np.ndarray
    svi: dict[str, float] | None = None
    tte: float = 0.0

    def vol(self, k: np.ndarray) -> np.ndarray:
        """Decimal implied vol at log-moneyness ``k`` (flat extrapolation of quote vols)."""
        if self.svi is not None:
            from pricing.svi import svi_implied_vol

            return np.asarray(svi_implied_vol(np.asarray(k, float), self.tte, **self.svi))
        return np.interp(k, self.k, self.vols)


@dataclass
class DayBook:
    """The legs held at one close, marked (module docstring).

    ``legs`` columns: ``kind`` (option / share), ``quantity``, ``multiplier``, ``spot`` (the
    underlying price), ``forward``, ``strike``, ``tte``, ``rate``, ``vol``, ``right``, ``slice``
    (key into ``slices``; options only).
    """

    date: pd.Timestamp
    legs: pd.DataFrame
    slices: dict[tuple[str, str], Slice] = field(default_factory=dict)
    legs_unpriced: int = 0
    legs_iv_fallback: int = 0


def _price(legs: pd.DataFrame, fwd_mult: np.ndarray, vols: np.ndarray, days: float) -> np.ndarray:
    """Dollar value of every leg (rows) under every scenario (columns)."""
    from pricing.black_scholes import bs_price

    opt = (legs["kind"] == "option").to_numpy()
    q = (legs["quantity"] * legs["multiplier"]).to_numpy(float)[:, None]
    out = np.zeros((len(legs), len(fwd_mult)))
    if opt.any():
        o = legs[opt]
        tte = np.maximum(o["tte"].to_numpy(float) - days / 365.0, 0.0)[:, None]
        rate = o["rate"].to_numpy(float)[:, None]
        fwd = o["forward"].to_numpy(float)[:, None] * fwd_mult[None, :]
        disc_spot = fwd * np.exp(-rate * tte)
        rights = np.broadcast_to(o["right"].to_numpy(str)[:, None], disc_spot.shape)
        out[opt] = bs_price(
            disc_spot, o["strike"].to_numpy(float)[:, None], tte, rate, 0.0, vols[opt], rights
        )
    if (~opt).any():
        out[~opt] = legs.loc[~opt, "spot"].to_numpy(float)[:, None] * fwd_mult[None, :]
    return q * out


def shocked_vols(
    book: DayBook,
    spot_ret: np.ndarray,
    dvol: np.ndarray,
    rule: SkewRule = "sticky_strike",
    steepening: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Implied vol of every leg (rows) under every scenario (columns), floored at 0.01.

    Parameters
    ----------
    book : DayBook
    spot_ret, dvol : ndarray, shape (M,)
        Spot returns (decimal) and vol shifts (decimal vol).
    rule : {'sticky_strike', 'sticky_moneyness'}
    steepening : float or ndarray (M,)
        ``beta`` of the skew steepening (decimal vol per unit log-moneyness).

    Returns
    -------
    ndarray, shape (L, M)
        NaN-free for options; the share rows are 0 (unused).
    """
    legs = book.legs
    m = len(spot_ret)
    out = np.zeros((len(legs), m))
    beta = np.broadcast_to(np.asarray(steepening, float), (m,))
    for i, leg in enumerate(legs.itertuples()):
        if leg.kind != "option":
            continue
        k0 = math.log(leg.strike / leg.forward)
        if rule == "sticky_moneyness":
            smile = book.slices[leg.slice]
            moved = smile.vol(np.log(leg.strike / (leg.forward * (1 + spot_ret))))
            base = leg.vol + moved - float(smile.vol(np.array([k0]))[0])
        else:
            base = np.full(m, leg.vol)
        out[i] = np.maximum(base + dvol - beta * k0, VOL_FLOOR)
    return out


def scenario_pnl(
    book: DayBook,
    spot_ret: np.ndarray,
    dvol: np.ndarray,
    *,
    rule: SkewRule = "sticky_strike",
    steepening: float | np.ndarray = 0.0,
    days: float = 0.0,
) -> np.ndarray:
    """Dollar P&L of the book under ``M`` scenarios, full Black-76 repricing (module docstring).

    Parameters
    ----------
    book : DayBook
    spot_ret : ndarray, shape (M,)
        Spot (and forward) returns, decimal.
    dvol : ndarray, shape (M,)
        Implied-vol shifts, decimal vol.
    rule : {'sticky_strike', 'sticky_moneyness'}
    steepening : float or ndarray (M,)
        Skew steepening ``beta``.
    days : float
        Calendar days of decay.

    Returns
    -------
    ndarray, shape (M,)
        Dollars.
    """
    spot_ret = np.atleast_1d(np.asarray(spot_ret, float))
    dvol = np.broadcast_to(np.asarray(dvol, float), spot_ret.shape)
    if book.legs.empty:
        return np.zeros(len(spot_ret))
    base_vols = book.legs["vol"].to_numpy(float)[:, None].copy()
    base_vols[np.isnan(base_vols)] = 0.0
    v0 = _price(book.legs, np.ones(1), base_vols, 0.0)[:, 0]
    vols = shocked_vols(book, spot_ret, dvol, rule, steepening)
    v1 = _price(book.legs, 1.0 + spot_ret, vols, days)
    return (v1 - v0[:, None]).sum(axis=0)


def book_greeks(book: DayBook) -> dict[str, float]:
    """Dollar greeks before the shock: ``delta`` (dollars per 1% spot move), ``gamma`` (change of
    that delta per 1% move), ``vega`` (dollars per vol point), ``theta`` (dollars per calendar
    day); Black-76 on the legs' inputs (:func:`pricing.bs_greeks` with ``spot = F e^{-r tte}``),
    shares delta 1."""
    from pricing.black_scholes import bs_greeks

    out = {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0}
    legs = book.legs
    if legs.empty:
        return out
    for leg in legs.itertuples():
        q = leg.quantity * leg.multiplier
        if leg.kind != "option":
            out["delta"] += q * leg.spot * 0.01
            continue
        if leg.tte <= 0:
            continue
        ds = leg.forward * math.exp(-leg.rate * leg.tte)
        g = bs_greeks(ds, leg.strike, leg.tte, leg.rate, 0.0, leg.vol, leg.right)
        out["delta"] += q * float(g.delta) * ds * 0.01
        out["gamma"] += q * float(g.gamma) * (ds * 0.01) ** 2
        out["vega"] += q * float(g.vega) / 100.0
        out["theta"] += q * float(g.theta) / 365.0
    return out


# -- reading a run ------------------------------------------------------------------------------
def held_positions(trades: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Signed quantities held at each session's close, per fold and contract.

    Parameters
    ----------
    trades : pandas.DataFrame
        ``trades.csv`` of the options-broker layout (``event`` column).
    sessions : pandas.DatetimeIndex
        Naive session dates (``equity.csv``), with their fold in ``sessions.name``-less order.

    Returns
    -------
    pandas.DataFrame
        ``date, fold, kind (option/share), root, expiration, strike, right, quantity`` for every
        non-zero holding.
    """
    from experiments.metrics import _fills

    cols = ["date", "fold", "kind", "root", "expiration", "strike", "right", "quantity"]
    if trades.empty or "event" not in trades:
        return pd.DataFrame(columns=cols)
    f = _fills(trades)
    signed = np.where(f["kind"] == "settlement", -f["quantity"], f["quantity"])
    f = f.assign(signed=signed, day=pd.to_datetime(f["time"].str[:10]))
    rows = []
    for (fold, key), grp in f.groupby(["fold", "key"], sort=False):
        daily = grp.groupby("day")["signed"].sum().cumsum()
        held = daily.reindex(sessions.union(daily.index)).ffill().reindex(sessions)
        held = held[held.round(9).fillna(0) != 0]
        parts = str(key).split("|")
        for day, qty in held.items():
            if parts[0] == "shares":
                rows.append([day, fold, "share", parts[1], None, np.nan, "stock", qty])
            else:
                root, exp, strike, right = parts
                if pd.Timestamp(exp) < day:  # expired: settled (the settlement row removes it)
                    continue
                rows.append([day, fold, "option", root, exp, float(strike), right, qty])
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["date", "fold", "kind", "root", "expiration", "strike", "right"])


@dataclass
class RunBook:
    """A run's books per session and its account."""

    name: str
    run_dir: Path
    books: dict[pd.Timestamp, DayBook]
    equity: pd.Series
    peak: pd.Series
    limits: Any
    positions: pd.DataFrame
    layout_ok: bool = True


def load_run_books(run_dir: Path) -> RunBook:
    """Rebuild and mark a run's end-of-day books (module docstring); writes ``positions.csv``.

    Raises
    ------
    StressError
        A missing file, a run without a chain store (no ``[data.chains]``: nothing to mark
        options on), or a contract whose root is unknown.
    """
    from data_feeds.chain_store import ChainStore
    from data_feeds.contracts import underlying_of
    from experiments.config import load_config

    for name in ("config.toml", "trades.csv", "equity.csv"):
        if not (run_dir / name).exists():
            raise StressError(f"{run_dir}: missing {name}")
    config = load_config(run_dir / "config.toml")
    eq = pd.read_csv(run_dir / "equity.csv")
    sessions = pd.DatetimeIndex(pd.to_datetime(eq["date"]))
    equity = pd.Series(eq["equity"].to_numpy(float), index=sessions)
    try:
        trades = pd.read_csv(run_dir / "trades.csv")
    except pd.errors.EmptyDataError:
        trades = pd.DataFrame()
    held = held_positions(trades, sessions)
    rate = float(config.strategy.params.get("rate", 0.0) or 0.0)
    books: dict[pd.Timestamp, DayBook] = {}
    pos_rows = []
    options = held[held["kind"] == "option"]
    if len(options) and config.data.chains is None:
        raise StressError(f"{run_dir}: option positions but no [data.chains] store to mark them")
    store = _open_store(ChainStore, config.data.chains.db) if len(options) else None
    try:
        for day, legs in held.groupby("date", sort=True):
            books[day] = _mark_day(day, legs, store, rate, underlying_of, pos_rows)
    finally:
        if store is not None:
            store.close()
    positions = pd.DataFrame(pos_rows, columns=list(POSITION_COLUMNS))
    positions.to_csv(run_dir / "positions.csv", index=False)
    return RunBook(
        config.experiment.name,
        run_dir,
        books,
        equity,
        equity.cummax(),
        config.risk,
        positions,
        trades.empty or "event" in trades,
    )


def _open_store(cls: Any, path: str) -> Any:
    """The chain store read-only; the default (read-write) configuration when this process
    already holds it open that way (DuckDB refuses a second configuration of one file in a
    process, e.g. after a run in the same process). Nothing is written either way."""
    from data_feeds.errors import DataSourceError

    try:
        return cls(path, read_only=True)
    except DataSourceError as exc:
        if "different configuration" not in str(exc):
            raise
        return cls(path)


def _mark_day(day, legs, store, rate, underlying_of, pos_rows) -> DayBook:
    from data_feeds.surfaces import load_fitted_surfaces

    book = DayBook(pd.Timestamp(day), pd.DataFrame())
    rows = []
    snaps: dict[str, Any] = {}
    opts = legs[legs["kind"] == "option"]
    symbols = sorted({underlying_of(r) for r in opts["root"]}) if len(opts) else []
    shares = legs[legs["kind"] == "share"]
    symbols = sorted(set(symbols) | set(shares["root"]))
    for sym in symbols:
        try:
            snaps[sym] = store.snapshot(sym, day.date(), rate=rate) if store else None
        except Exception:  # no quotes that day: the legs are counted unpriced
            snaps[sym] = None
    svi = {}
    if store is not None:
        for sym in symbols:
            fits = load_fitted_surfaces(store, day.date(), underlying=sym)
            for f in fits.to_dict("records") if len(fits) else []:
                if f.get("params") and str(f.get("status", "ok")).startswith("ok"):
                    svi[(str(f["symbol"]), str(pd.Timestamp(f["expiry"]).date()))] = (
                        f["params"],
                        float(f["tte_years"]),
                    )
    for leg in legs.itertuples():
        if leg.kind == "share":
            snap = snaps.get(leg.root)
            spot = float(snap.underlying_price) if snap is not None else math.nan
            if not math.isfinite(spot):
                book.legs_unpriced += 1
                continue
            rows.append(
                {
                    "kind": "share",
                    "quantity": leg.quantity,
                    "multiplier": 1.0,
                    "spot": spot,
                    "forward": spot,
                    "strike": math.nan,
                    "tte": 0.0,
                    "rate": rate,
                    "vol": math.nan,
                    "right": "C",
                    "slice": None,
                }
            )
            pos_rows.append(
                [
                    day.date(),
                    leg.fold,
                    leg.root,
                    None,
                    None,
                    "stock",
                    leg.quantity,
                    1.0,
                    spot,
                    spot,
                    0.0,
                    rate,
                    None,
                    None,
                    spot,
                ]
            )
            continue
        snap = snaps.get(underlying_of(leg.root))
        exp = pd.Timestamp(leg.expiration).date()
        try:
            table = snap.with_implied_vols(exp, leg.root)
        except Exception:
            book.legs_unpriced += 1
            continue
        hit = table[(table["strike"] == leg.strike) & (table["right"] == leg.right)]
        fwd = float(table["forward"].iloc[0])
        tte = float(table["tte"].iloc[0])
        if hit.empty or not math.isfinite(fwd):
            book.legs_unpriced += 1
            continue
        key = (leg.root, str(exp))
        if key not in book.slices:
            ok = table[table["implied_vol"].notna()]
            below = ok["strike"] < fwd
            otm = ok[(below & (ok["right"] == "P")) | (~below & (ok["right"] == "C"))]
            ok = otm if len(otm) >= 2 else ok
            k = np.log(ok["strike"].to_numpy(float) / fwd)
            order = np.argsort(k)
            fit = svi.get(key)
            book.slices[key] = Slice(
                k[order],
                ok["implied_vol"].to_numpy(float)[order],
                None
                if fit is None
                else {n: float(fit[0][n]) for n in ("a", "b", "rho", "m", "sigma")},
                tte if fit is None else fit[1],
            )
        sl = book.slices[key]
        vol = float(hit["implied_vol"].iloc[0])
        source = "quote"
        if sl.svi is not None and tte > 0:
            vol = float(sl.vol(np.array([math.log(leg.strike / fwd)]))[0])
            source = "svi"
        elif not math.isfinite(vol):
            if len(sl.k) == 0:
                book.legs_unpriced += 1
                continue
            vol = float(sl.vol(np.array([math.log(leg.strike / fwd)]))[0])
            source = "nearest_quote"
            book.legs_iv_fallback += 1
        rows.append(
            {
                "kind": "option",
                "quantity": leg.quantity,
                "multiplier": 100.0,
                "spot": float(snap.underlying_price),
                "forward": fwd,
                "strike": leg.strike,
                "tte": tte,
                "rate": rate,
                "vol": vol,
                "right": leg.right,
                "slice": key,
            }
        )
        pos_rows.append(
            [
                day.date(),
                leg.fold,
                leg.root,
                exp,
                leg.strike,
                leg.right,
                leg.quantity,
                100.0,
                float(snap.underlying_price),
                fwd,
                tte,
                rate,
                vol,
                source,
                float(hit["mid"].iloc[0]),
            ]
        )
    book.legs = pd.DataFrame(rows)
    return book


# -- history and Monte Carlo --------------------------------------------------------------------
def spx_vix_history(path: str | Path) -> pd.DataFrame:
    """SPX close and VIX close by naive session date, with ``spx_return`` (simple, decimal),
    ``spx_log_return`` and ``vix_change`` (index points) from the previous session.

    Raises
    ------
    DataSourceError, DataValidationError
        From :func:`data_feeds.load_ohlc`.
    """
    from data_feeds import load_ohlc

    spx = load_ohlc(path, root="SPX")["close"]
    vix = load_ohlc(path, root="VIX")["close"]
    frame = pd.DataFrame({"spx": spx, "vix": vix}).dropna()
    frame.index = pd.DatetimeIndex(frame.index.tz_localize(None).normalize())
    frame["spx_return"] = frame["spx"].pct_change()
    frame["spx_log_return"] = np.log(frame["spx"]).diff()
    frame["vix_change"] = frame["vix"].diff()
    return frame.iloc[1:]


def historical_shocks(history: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` largest one-day SPX falls and the ``n`` largest one-day VIX rises.

    Parameters
    ----------
    history : pandas.DataFrame
        :func:`spx_vix_history`.
    n : int

    Returns
    -------
    pandas.DataFrame
        ``date, spx_return, vix_change, reason`` (``spx_fall``, ``vix_jump`` or both), one row
        per date, largest SPX fall first.
    """
    falls = history.nsmallest(n, "spx_return").index
    jumps = history.nlargest(n, "vix_change").index
    dates = falls.union(jumps)
    out = history.loc[dates, ["spx_return", "vix_change"]].copy()
    out["reason"] = [
        "+".join(r for r, s in (("spx_fall", falls), ("vix_jump", jumps)) if d in s) for d in dates
    ]
    out.index.name = "date"
    return out.sort_values("spx_return").reset_index()


@dataclass
class MonteCarloModel:
    """Merton fit and VIX beta of the history before a date."""

    fit: Any
    vix_beta: float
    n_obs: int
    end: pd.Timestamp

    def draw(self, paths: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x, dv)``: simple spot returns and vol shifts (decimal) of ``paths`` one-day moves."""
        rng = np.random.default_rng(seed)
        f = self.fit
        jumps = rng.poisson(f.intensity, paths)
        z = rng.standard_normal(paths)
        log_x = f.mu + jumps * f.jump_mean + np.sqrt(f.sigma**2 + jumps * f.jump_vol**2) * z
        return np.expm1(log_x), self.vix_beta * log_x


def fit_monte_carlo(history: pd.DataFrame, before: pd.Timestamp, days: int) -> MonteCarloModel:
    """Merton MLE and the OLS VIX beta on the ``days`` sessions strictly before ``before``.

    Raises
    ------
    StressError
        Fewer than 100 sessions of history before ``before``.
    """
    from indicators.jumps import merton_fit

    h = history[history.index < before].tail(days)
    if len(h) < 100:
        raise StressError(f"Monte Carlo needs >= 100 sessions before {before.date()}, got {len(h)}")
    x = h["spx_log_return"].to_numpy(float)
    dv = h["vix_change"].to_numpy(float) / 100.0
    beta = float(np.polyfit(x, dv, 1)[0])
    return MonteCarloModel(merton_fit(x), beta, len(h), h.index[-1])


def var_es(pnl: np.ndarray, level: float) -> tuple[float, float]:
    """Value at risk and expected shortfall of a P&L sample (positive numbers = losses).

    ``VaR = -Q_{1-level}(pnl)`` (linear-interpolated quantile), ``ES = -mean(pnl | pnl <=
    -VaR)`` (Acerbi & Tasche 2002, the tail mean of the empirical distribution).

    Parameters
    ----------
    pnl : ndarray, shape (M,)
        Dollars (or any unit).
    level : float
        Confidence in (0, 1), e.g. 0.99.

    Returns
    -------
    tuple of float
        ``(VaR, ES)`` in the units of ``pnl``.

    Raises
    ------
    ValueError
        ``level`` outside (0, 1) or an empty sample.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    p = np.asarray(pnl, float)
    if p.size == 0:
        raise ValueError("var_es needs a non-empty sample")
    q = float(np.quantile(p, 1.0 - level))
    return -q, -float(p[p <= q].mean())


# -- the command -------------------------------------------------------------------------------
@dataclass
class StressOutcome:
    """What ``volsuite stress`` wrote and found."""

    target: Path
    table: pd.DataFrame
    csv: Path
    html: Path
    worst_historical: dict[str, Any] | None
    es99: dict[str, Any] | None
    notes: list[str]

    def lines(self) -> list[str]:
        """The console report."""
        out = list(self.notes)
        if self.worst_historical:
            w = self.worst_historical
            out.append(
                f"worst historical shock: {w['scenario']} on the book of {w['date']}: "
                f"${w['pnl']:,.0f} ({w['pnl_pct']:.2%} of equity)"
            )
        if self.es99:
            e = self.es99
            out.append(
                f"99% ES (worst day {e['date']}): ${-e['pnl']:,.0f} ({-e['pnl_pct']:.2%} of "
                f"equity); mean over days with positions ${e['mean']:,.0f}"
            )
        flagged = int((self.table["breach"] != "").sum()) if len(self.table) else 0
        out.append(f"rows {len(self.table)}, limit breaches flagged {flagged}")
        out.append(f"written    {self.csv}\n           {self.html}")
        return out


def resolve_target(target: str, results_dir: Path) -> Path:
    """A run folder from a path or a run id searched under ``results_dir`` (portfolios too).

    Raises
    ------
    StressError
        No such folder, or a run id found in more than one experiment.
    """
    p = Path(target)
    if p.is_dir():
        return p
    hits = sorted(results_dir.glob(f"*/{target}")) + sorted(
        results_dir.glob(f"portfolio/*/{target}")
    )
    hits = [h for h in hits if h.is_dir()]
    if not hits:
        raise StressError(f"{target}: no such run folder, nor a run id under {results_dir}")
    if len(hits) > 1:
        raise StressError(f"{target}: run id found in several folders: {hits}")
    return hits[0]


def _scenarios(spec: StressSpec, shocks: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rule in spec.skew_rules:
        for x in spec.spot:
            for v in spec.vol:
                out.append(
                    {
                        "scenario": f"grid {rule} spot {x:+.0%} vol {v * 100:+.0f}pt",
                        "kind": "grid",
                        "rule": rule,
                        "spot": x,
                        "dvol": v,
                        "beta": 0.0,
                        "days": 0.0,
                    }
                )
    out.append(
        {
            "scenario": f"skew steepening beta {spec.skew_steepening:g}",
            "kind": "skew",
            "rule": "sticky_strike",
            "spot": 0.0,
            "dvol": 0.0,
            "beta": spec.skew_steepening,
            "days": 0.0,
        }
    )
    out.append(
        {
            "scenario": f"decay {spec.decay_days:g} day",
            "kind": "decay",
            "rule": "sticky_strike",
            "spot": 0.0,
            "dvol": 0.0,
            "beta": 0.0,
            "days": spec.decay_days,
        }
    )
    for s in shocks.itertuples():
        out.append(
            {
                "scenario": f"historical {s.date.date()} ({s.reason}: SPX {s.spx_return:+.2%}, "
                f"VIX {s.vix_change:+.2f})",
                "kind": "historical",
                "rule": "sticky_strike",
                "spot": float(s.spx_return),
                "dvol": float(s.vix_change) / 100.0,
                "beta": 0.0,
                "days": 1.0,
            }
        )
    return out


def _member_books(run_dir: Path) -> tuple[list[RunBook], pd.DataFrame | None, pd.Series | None]:
    """One run, or a portfolio's members with the weights held on the next session."""
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if "members" in summary and (run_dir / "weights.csv").exists():
        books = [load_run_books(Path(m["run_dir"])) for m in summary["members"].values()]
        weights = pd.read_csv(run_dir / "weights.csv", index_col=0, parse_dates=True)
        ret = pd.read_csv(run_dir / "returns.csv", index_col=0, parse_dates=True)["portfolio"]
        cash = float(summary.get("initial_cash", 100_000.0))
        equity = cash * (1.0 + ret).cumprod()
        return books, weights, equity
    return [load_run_books(run_dir)], None, None


def stress_target(
    target: str | Path,
    *,
    scenarios: Path | None = None,
    results_dir: Path = Path("results"),
) -> StressOutcome:
    """``volsuite stress``: write ``stress.csv`` and ``stress.html`` into the run folder.

    ``stress.csv`` columns: ``date`` (the close whose book is shocked), ``scenario``, ``kind``
    (grid / skew / decay / historical / var / es), ``rule``, ``spot_shift``, ``vol_shift``
    (decimal), ``pnl`` (dollars; for ``var``/``es`` rows minus the VaR/ES), ``pnl_pct`` (of the
    equity at that close), ``equity``, ``delta, gamma, vega, theta`` (before the shock, units of
    :func:`book_greeks`), ``legs``, ``legs_unpriced``, ``legs_iv_fallback``, ``breach``
    (``;``-joined limits, module docstring).

    Raises
    ------
    StressError
        Bad target or scenario file, or nothing held on any day.
    """
    spec = load_spec(scenarios)
    run_dir = resolve_target(str(target), Path(results_dir))
    members, weights, port_equity = _member_books(run_dir)
    history = spx_vix_history(spec.history)
    shocks = historical_shocks(history, spec.historical_worst)
    scen = _scenarios(spec, shocks)
    days = sorted({d for m in members for d in m.books})
    if not days:
        raise StressError(f"{run_dir}: no position held at any close; nothing to stress")
    mc = fit_monte_carlo(history, days[0], spec.mc_history_days)
    x_mc, dv_mc = mc.draw(spec.mc_paths, spec.mc_seed)
    rows = []
    es_rows = []
    for day in days:
        total = np.zeros(len(scen))
        mc_total = np.zeros(spec.mc_paths)
        greeks = {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0}
        n_legs = unpriced = fallback = 0
        for m in members:
            book = m.books.get(day)
            if book is None:
                continue
            scale = 1.0
            if weights is not None:
                nxt = weights.index[weights.index > day]
                w_row = weights.loc[nxt[0]] if len(nxt) else weights.loc[day]
                scale = (
                    float(w_row[m.name])
                    * float(port_equity.get(day, np.nan))
                    / float(m.equity.get(day, np.nan))
                )
                if not math.isfinite(scale):
                    scale = 0.0
            pnl = np.array(
                [
                    scenario_pnl(
                        book,
                        np.array([s["spot"]]),
                        np.array([s["dvol"]]),
                        rule=s["rule"],
                        steepening=s["beta"],
                        days=s["days"],
                    )[0]
                    for s in scen
                ]
            )
            total += scale * pnl
            mc_total += scale * scenario_pnl(book, x_mc, dv_mc, days=1.0)
            for g, v in book_greeks(book).items():
                greeks[g] += scale * v
            n_legs += len(book.legs)
            unpriced += book.legs_unpriced
            fallback += book.legs_iv_fallback
        if weights is not None:
            equity = float(port_equity.get(day, np.nan))
            peak = float(port_equity[port_equity.index <= day].max())
            limits = None
        else:
            equity = float(members[0].equity[day])
            peak = float(members[0].peak[day])
            limits = members[0].limits
        common = {
            "date": day.date(),
            "equity": equity,
            **greeks,
            "legs": n_legs,
            "legs_unpriced": unpriced,
            "legs_iv_fallback": fallback,
        }
        for s, p in zip(scen, total, strict=True):
            rows.append(
                {
                    **common,
                    "scenario": s["scenario"],
                    "kind": s["kind"],
                    "rule": s["rule"],
                    "spot_shift": s["spot"],
                    "vol_shift": s["dvol"],
                    "pnl": p,
                    "pnl_pct": p / equity,
                    "breach": _breaches(p, equity, peak, greeks["vega"], limits),
                }
            )
        for level in (0.95, 0.99):
            var, es = var_es(mc_total, level)
            for kind, val in (("var", var), ("es", es)):
                rows.append(
                    {
                        **common,
                        "scenario": f"monte carlo {kind} {level:.0%}",
                        "kind": kind,
                        "rule": "sticky_strike",
                        "spot_shift": math.nan,
                        "vol_shift": math.nan,
                        "pnl": -val,
                        "pnl_pct": -val / equity,
                        "breach": _breaches(-val, equity, peak, greeks["vega"], limits),
                    }
                )
            if level == 0.99:
                es_rows.append((day, -es, -es / equity))
    cols = [
        "date",
        "scenario",
        "kind",
        "rule",
        "spot_shift",
        "vol_shift",
        "pnl",
        "pnl_pct",
        "equity",
        "delta",
        "gamma",
        "vega",
        "theta",
        "legs",
        "legs_unpriced",
        "legs_iv_fallback",
        "breach",
    ]
    table = pd.DataFrame(rows, columns=cols)
    csv = run_dir / "stress.csv"
    table.to_csv(csv, index=False)
    hist = table[table["kind"] == "historical"]
    worst = hist.loc[hist["pnl"].idxmin()].to_dict() if len(hist) else None
    es_frame = pd.DataFrame(es_rows, columns=["date", "pnl", "pnl_pct"])
    es_worst = None
    if len(es_frame):
        r = es_frame.loc[es_frame["pnl"].idxmin()]
        es_worst = {
            "date": str(r["date"].date()),
            "pnl": float(r["pnl"]),
            "pnl_pct": float(r["pnl_pct"]),
            "mean": float(-es_frame["pnl"].mean()),
        }
    notes = [
        f"target     {run_dir} ({len(members)} book(s), {len(days)} closes with positions)",
        f"monte carlo Merton fit on {mc.n_obs} SPX sessions to {mc.end.date()}: "
        f"sigma {mc.fit.sigma:.4f}/day, {mc.fit.intensity:.3f} jumps/day of mean "
        f"{mc.fit.jump_mean:+.4f} sd {mc.fit.jump_vol:.4f}; VIX beta {mc.vix_beta:.3f}; "
        f"{spec.mc_paths} paths, seed {spec.mc_seed}",
    ]
    for m in members:
        unpriced = sum(b.legs_unpriced for b in m.books.values())
        fallback = sum(b.legs_iv_fallback for b in m.books.values())
        notes.append(
            f"book       {m.name}: {len(m.books)} closes with positions, {len(m.positions)} "
            f"marked legs, {unpriced} unpriced, {fallback} with a fallback vol"
            + (
                ""
                if m.layout_ok
                else "; trades.csv is not the options-broker layout (share "
                "pairs): no position rebuilt, the book is not stressed"
            )
        )
    if worst is not None:
        worst["date"] = str(worst["date"])
    html = write_stress_html(run_dir / "stress.html", table, run_dir.name, notes)
    return StressOutcome(run_dir, table, csv, html, worst, es_worst, notes)


def _breaches(pnl: float, equity: float, peak: float, vega: float, limits: Any) -> str:
    if limits is None or not math.isfinite(equity) or equity <= 0:
        return ""
    out = []
    if limits.max_daily_loss is not None and -pnl / equity >= limits.max_daily_loss:
        out.append("max_daily_loss")
    if limits.max_drawdown is not None and (equity + pnl) <= peak * (1 - limits.max_drawdown):
        out.append("max_drawdown")
    if limits.max_vega_per_vol_point is not None and abs(vega) > limits.max_vega_per_vol_point:
        out.append("max_vega")
    return ";".join(out)


def write_stress_html(path: Path, table: pd.DataFrame, title: str, notes: list[str]) -> Path:
    """Plotly heatmaps of the spot x vol grid P&L (worst close per cell, one per skew rule) and
    the historical and Monte Carlo rows of the worst close (self-contained HTML)."""
    import plotly.graph_objects as go

    from experiments.summary import write_atomic

    parts = [f"<h1>Stress: {title}</h1>", "<ul>"]
    parts += [f"<li>{n}</li>" for n in notes]
    parts.append("</ul>")
    grid = table[table["kind"] == "grid"]
    first = True
    for rule, g in grid.groupby("rule"):
        worst = g.groupby(["spot_shift", "vol_shift"])["pnl"].min().unstack("vol_shift")
        fig = go.Figure(
            go.Heatmap(
                z=worst.to_numpy(),
                x=[f"{v * 100:+.0f}pt" for v in worst.columns],
                y=[f"{s:+.0%}" for s in worst.index],
                colorscale="RdYlGn",
                zmid=0,
                text=np.round(worst.to_numpy()),
                texttemplate="%{text:,.0f}",
                colorbar={"title": "$"},
            )
        )
        fig.update_layout(
            title=f"P&L ($), worst close per cell: spot x ATM vol, {rule}",
            xaxis_title="implied vol shift",
            yaxis_title="spot move",
            height=520,
        )
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    flagged = table[table["breach"] != ""]
    parts.append(f"<h2>Limit breaches flagged: {len(flagged)} rows</h2>")
    if len(flagged):
        summary = flagged.groupby(["date", "breach"]).size().rename("rows").reset_index()
        parts.append(summary.to_html(index=False))
    other = table[table["kind"].isin(["historical", "var", "es", "skew", "decay"])]
    if len(other):
        pivot = other.pivot_table(index="scenario", values="pnl", aggfunc="min").sort_values("pnl")
        parts.append("<h2>Historical, skew, decay and Monte Carlo rows (worst close)</h2>")
        parts.append(pivot.to_html(float_format=lambda v: f"{v:,.0f}"))
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>stress</title></head><body>"
        + "".join(parts)
        + "</body></html>"
    )
    write_atomic(path, html)
    return path


__all__ = [
    "DayBook",
    "MonteCarloModel",
    "Slice",
    "StressError",
    "StressOutcome",
    "StressSpec",
    "book_greeks",
    "fit_monte_carlo",
    "held_positions",
    "historical_shocks",
    "load_run_books",
    "scenario_pnl",
    "shocked_vols",
    "spx_vix_history",
    "stress_target",
    "var_es",
]
