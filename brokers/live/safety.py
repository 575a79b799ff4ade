"""Safety of live order flow: pre-trade checks, the kill switch, idempotent client order ids,
retries with backoff and position reconciliation.

Design document 002, section 14.2 ("Algorithmic Trading Controls", after SEC Rule 15c3-5 and
FINRA guidance) asks for pre-trade risk checks (position limits, order size limits), a kill switch
(stop all trading immediately) and an audit trail; this module holds the checks, the
:class:`brokers.live.broker.LiveOptionsBroker` applies them to every order and
:mod:`brokers.live.audit` writes the trail.

Everything here is plain Python with no venue or network dependency, so each rule is unit-tested
on its own (``tests/brokers/live/test_safety.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from brokers.live.adapter import TransientVenueError, VenuePosition
from brokers.margin import underlying_of
from data_feeds.contracts import OptionContract

T = TypeVar("T")

CLIENT_ORDER_ID_MAX = 48
"""Longest client order id accepted (Alpaca: 48 characters)."""

KEY_ENV = ("APCA_API_KEY_ID", "ALPACA_API_KEY")
"""Environment variables holding the Alpaca key id (first one set wins)."""

SECRET_ENV = ("APCA_API_SECRET_KEY", "ALPACA_SECRET_KEY")
"""Environment variables holding the Alpaca secret key (first one set wins)."""

_SCRUB_MIN = 4  # shorter values are not treated as secrets (they would blank ordinary words)


def scrub_secrets(text: str, names: Sequence[str] = KEY_ENV + SECRET_ENV) -> str:
    """``text`` with the value of every key variable in the environment replaced by ``***``.

    Each value is removed as it is, stripped of surrounding whitespace, and in its ``repr``
    form (``'abc\\r'``: how ``requests`` and Python quote a header value with a stray carriage
    return), so a key with a stray ``\\r`` or space cannot leak in an exception message, a log
    line or the audit log.

    Parameters
    ----------
    text : str
        A message about to be shown or written.
    names : sequence of str
        Environment variables whose values are secret (default: the Alpaca key variables).

    Returns
    -------
    str
    """
    out = str(text)
    for name in names:
        value = os.environ.get(name)
        if not value:
            continue
        forms = {value, value.strip(), repr(value)[1:-1], repr(value.strip())[1:-1]}
        for form in sorted(forms, key=len, reverse=True):
            if len(form) >= _SCRUB_MIN:
                out = out.replace(form, "***")
    return out


# -- pre-trade checks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits applied to every order before it leaves the process.

    Parameters
    ----------
    max_contracts_per_order : int or None
        Largest leg of an order, in contracts (``|ratio x quantity|``); None: no limit.
    max_open_positions : int or None
        Most distinct option legs (contracts) open after the order; None: no limit.
    max_notional : float or None
        Most underlying notional an order may add, in dollars:
        ``sum over legs |contracts| x multiplier x underlying price`` (e.g. one SPX straddle at
        3,700 is 2 x 100 x 3,700 = $740,000). None: no limit.
    allowed_roots : frozenset of str or None
        Option roots that may be traded (``{"SPXW", "SPY"}``); None: any root.

    Raises
    ------
    ValueError
        A limit below 1 (counts) or not positive and finite (notional), an empty root set.

    Notes
    -----
    An order whose every leg only reduces an open position (a close) is checked for its roots only:
    a size limit must never trap a position. The kill switch's flattening orders bypass the
    limits entirely.
    """

    max_contracts_per_order: int | None = 10
    max_open_positions: int | None = 20
    max_notional: float | None = None
    allowed_roots: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("max_contracts_per_order", "max_open_positions"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {v!r}")
        if self.max_notional is not None and not (
            math.isfinite(self.max_notional) and self.max_notional > 0
        ):
            raise ValueError(f"max_notional must be positive or None, got {self.max_notional!r}")
        if self.allowed_roots is not None:
            roots = frozenset(r.strip().upper() for r in self.allowed_roots)
            if not roots:
                raise ValueError("allowed_roots must name at least one root (or be None)")
            object.__setattr__(self, "allowed_roots", roots)


def reduces_only(
    legs: Sequence[tuple[OptionContract, int]], positions: Mapping[OptionContract, int]
) -> bool:
    """True when every leg trades against an open position without crossing through zero."""
    for contract, qty in legs:
        held = positions.get(contract, 0)
        if held == 0 or (held > 0) == (qty > 0) or abs(qty) > abs(held):
            return False
    return True


def pre_trade_check(
    legs: Sequence[tuple[OptionContract, int]],
    *,
    positions: Mapping[OptionContract, int],
    underlying_prices: Mapping[str, float],
    limits: RiskLimits,
) -> str | None:
    """Why an order breaks a pre-trade limit, or None when it passes.

    Parameters
    ----------
    legs : sequence of (OptionContract, int)
        Signed contracts of the whole order (> 0 buy).
    positions : mapping OptionContract -> int
        Signed contracts open now (the local book, reconciled with the venue).
    underlying_prices : mapping str -> float
        Last underlying price per symbol (``SPX``, ``SPY``; index points / dollars per share), for
        the notional.
    limits : RiskLimits

    Returns
    -------
    str or None
        One line naming the leg, the number and the limit, e.g. ``"pre-trade: SPXW 2021-01-06
        3700C 50 contracts > max_contracts_per_order 10"``.
    """
    if not legs:
        return "pre-trade: empty order"
    if limits.allowed_roots is not None:
        for contract, _ in legs:
            if contract.root not in limits.allowed_roots:
                return (
                    f"pre-trade: {contract}: root {contract.root} not in allowed_roots "
                    f"{sorted(limits.allowed_roots)}"
                )
    if reduces_only(legs, positions):
        return None
    if limits.max_contracts_per_order is not None:
        for contract, qty in legs:
            if abs(qty) > limits.max_contracts_per_order:
                return (
                    f"pre-trade: {contract} {abs(qty)} contracts > max_contracts_per_order "
                    f"{limits.max_contracts_per_order}"
                )
    if limits.max_open_positions is not None:
        after = {c: q for c, q in positions.items() if q != 0}
        for contract, qty in legs:
            after[contract] = after.get(contract, 0) + qty
            if after[contract] == 0:
                del after[contract]
        if len(after) > limits.max_open_positions:
            return (
                f"pre-trade: {len(after)} open legs after the order > max_open_positions "
                f"{limits.max_open_positions}"
            )
    if limits.max_notional is not None:
        notional = 0.0
        for contract, qty in legs:
            symbol = underlying_of(contract.root)
            price = underlying_prices.get(symbol, math.nan)
            if not (math.isfinite(price) and price > 0):
                return (
                    f"pre-trade: notional unknown, no {symbol} price for {contract} (max_notional "
                    "needs the underlying price)"
                )
            notional += abs(qty) * contract.multiplier * price
        if notional > limits.max_notional:
            return (
                f"pre-trade: order notional ${notional:,.0f} > max_notional "
                f"${limits.max_notional:,.0f}"
            )
    return None


# -- kill switch -----------------------------------------------------------------------------------
class KillSwitch:
    """A flag file that stops trading: while it exists, no order leaves the process; when the
    live broker notices it (every clock tick and before every order) it cancels every open order
    and, if asked, flattens every position.

    The switch latches: a session refuses to start while the file exists (remove it, or
    ``volsuite paper stop --clear``, once the cause is understood).

    Parameters
    ----------
    path : str or pathlib.Path
        The flag file (``results/paper/KILL`` by default in the config). Its content is JSON
        ``{"reason": ..., "flatten": bool, "time": ISO UTC}``; an empty or unreadable file still
        counts as engaged (flatten as configured).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def engaged(self) -> bool:
        """The flag file exists."""
        return self.path.exists()

    def state(self) -> dict[str, object]:
        """The file's content (``{}`` when absent or not JSON)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def trigger(self, reason: str = "manual stop", *, flatten: bool | None = None) -> Path:
        """Engage the switch (atomic write of the flag file).

        Parameters
        ----------
        reason : str
            Recorded in the file and in the audit log.
        flatten : bool, optional
            Override the session's ``flatten_on_kill``.

        Returns
        -------
        pathlib.Path
            The flag file.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, object] = {
            "reason": reason,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        if flatten is not None:
            payload["flatten"] = bool(flatten)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(self.path)
        return self.path

    def clear(self) -> bool:
        """Remove the flag file; True if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


# -- idempotent client order ids -------------------------------------------------------------------
def new_session_id() -> str:
    """A fresh session id: UTC ``YYMMDDHHMMSS`` plus 6 random hex digits (18 characters).

    Client order ids embed it, so ids of a new session never collide with an earlier session's
    orders at the venue; ``volsuite paper CONFIG --resume SESSION`` keeps the id instead, so a
    resumed session's repeated decisions carry their earlier ids (:func:`client_order_id`).
    """
    return dt.datetime.now(dt.UTC).strftime("%y%m%d%H%M%S") + secrets.token_hex(3)


def decision_key(
    time: object,
    legs: Iterable[tuple[OptionContract, int]],
    quantity: int,
    tag: str = "",
    occurrence: int = 1,
) -> str:
    """The identity of one trading decision, as text: decision time, legs, units, tag, and the
    how-many-th identical decision it is at that time (1 for the first).

    A strategy that re-runs the same bar (a resumed session, a replayed clock) makes the same
    decision with the same key; two different decisions never share one.

    Parameters
    ----------
    time : datetime-like
        The decision's time (the bar / snapshot time the strategy decided on; ISO text is used).
    legs : iterable of (OptionContract, int)
        Contracts and signed ratios (or contracts); order does not matter.
    quantity : int
        Units of the legs.
    tag : str
        The strategy's label of the order.
    occurrence : int
        1 for the first identical decision at ``time``, 2 for the second ...

    Returns
    -------
    str
    """
    stamp = time.isoformat() if hasattr(time, "isoformat") else str(time)
    leg_text = ",".join(sorted(f"{c}:{int(q):+d}" for c, q in legs))
    return f"{stamp}|{leg_text}|x{int(quantity)}|{tag}|#{int(occurrence)}"


def client_order_id(run: str, strategy: str, decision: str, prefix: str = "vs") -> str:
    """The client order id of ``decision`` of ``strategy`` in ``run``:
    ``vs-<run>-<16 hex digits of SHA-256(strategy, decision)>``.

    A pure function of its inputs: a retried submission, and the same decision made again by a
    restarted (``--resume``) session of the same run, carry the same id, and the venue refuses a
    second order under it (Alpaca: HTTP 422 ``client_order_id must be unique``), so no decision is
    ever sent twice. 64 bits of the hash make two different decisions of a run collide with
    probability about ``n^2 / 2^65`` (``n`` orders: 1e-11 for a million).

    Parameters
    ----------
    run : str
        The session id (kept by ``--resume``).
    strategy : str
        The strategy's registered name.
    decision : str
        :func:`decision_key` of the order.
    prefix : str

    Raises
    ------
    ValueError
        The id would exceed :data:`CLIENT_ORDER_ID_MAX` characters or contain characters other
        than letters, digits, ``-`` and ``_``.
    """
    digest = hashlib.sha256(f"{strategy}\x1f{decision}".encode()).hexdigest()[:16]
    cid = f"{prefix}-{run}-{digest}"
    if len(cid) > CLIENT_ORDER_ID_MAX:
        raise ValueError(f"client order id {cid!r} longer than {CLIENT_ORDER_ID_MAX} characters")
    if not all(ch.isalnum() or ch in "-_" for ch in cid):
        raise ValueError(f"client order id {cid!r}: only letters, digits, '-' and '_'")
    return cid


# -- retries ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient venue errors (timeouts, dropped connections, 429, 5xx).

    Attempt ``n`` (1-based) that failed waits ``min(backoff x multiplier^(n-1), max_backoff)``
    seconds, or the venue's ``Retry-After`` when larger (capped at ``max_backoff``), before the
    next attempt; after ``max_attempts`` attempts the last error is raised. No jitter: one client
    per account, and the waits are reproducible in tests.

    Raises
    ------
    ValueError
        ``max_attempts < 1`` or a negative / non-finite time.
    """

    max_attempts: int = 5
    backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("backoff", "multiplier", "max_backoff"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        wait = self.backoff * self.multiplier ** (attempt - 1)
        if retry_after is not None and math.isfinite(retry_after):
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, TransientVenueError, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, retrying :class:`TransientVenueError` with backoff.

    Only for idempotent calls (reads, cancels); order submission has its own loop in the live
    broker (it looks the order up by client order id before sending it again).

    Parameters
    ----------
    fn : callable
        The call.
    policy : RetryPolicy
    sleep : callable
        Waits the given seconds (injected in tests).
    on_retry : callable, optional
        ``(attempt, error, delay)`` before each wait (the audit log records it).

    Returns
    -------
    The call's result.

    Raises
    ------
    TransientVenueError
        Still failing after ``policy.max_attempts`` attempts.
    VenueRejected
        Not retried.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except TransientVenueError as exc:
            if attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, exc.retry_after)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
            attempt += 1


# -- reconciliation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PositionDiff:
    """One difference between the local book and the venue, in signed contracts / shares.

    ``kind``: ``missing_locally`` (the venue holds it, the book did not), ``missing_at_venue``
    (the book held it, the venue does not: closed, expired or assigned meanwhile) or ``quantity``
    (both hold it with different sizes). The venue is authoritative: the book takes
    ``venue_quantity``.
    """

    symbol: str
    kind: str
    local_quantity: int
    venue_quantity: int
    venue_avg_price: float = math.nan
    contract: OptionContract | None = None


@dataclass
class ReconcileReport:
    """What a reconciliation found and changed.

    Attributes
    ----------
    when : str
        ``start-up``, ``reconnect``, ``kill switch``, ``end`` ...
    position_diffs : list of PositionDiff
    cash_before, cash_after : float
        Local cash before and after (dollars; the venue's cash is authoritative).
    open_orders : list of str
        Client order ids open at the venue.
    adopted_orders : list of str
        Open venue orders the session did not know (tracked from now on).
    kill_pending : str or None
        The kill switch fired and the venue still holds what it must remove (open orders, and
        positions when flattening), or could not be asked: what remains. None otherwise.
    error : str or None
        The venue could not be reached: the reconciliation did not happen (nothing compared).
    """

    when: str
    position_diffs: list[PositionDiff] = field(default_factory=list)
    cash_before: float = math.nan
    cash_after: float = math.nan
    open_orders: list[str] = field(default_factory=list)
    adopted_orders: list[str] = field(default_factory=list)
    kill_pending: str | None = None
    error: str | None = None

    @property
    def clean(self) -> bool:
        """Nothing differed (positions, cash within a cent, no unknown open order), the venue
        answered, and no fired kill switch still waits for the venue to confirm its clean-up."""
        if self.error is not None or self.kill_pending is not None:
            return False
        cash_same = (
            math.isnan(self.cash_before)
            or math.isnan(self.cash_after)
            or abs(self.cash_before - self.cash_after) < 0.01
        )
        return not self.position_diffs and not self.adopted_orders and cash_same

    def summary(self) -> str:
        """One line for logs and the status table."""
        if self.clean:
            return f"reconcile ({self.when}): book matches the venue"
        parts = []
        if self.error is not None:
            parts.append(f"NOT reconciled, {self.error}")
        if self.kill_pending is not None:
            parts.append(f"KILL SWITCH NOT COMPLETE: {self.kill_pending}")
        parts += [
            f"{d.symbol} {d.kind} {d.local_quantity:+d} -> {d.venue_quantity:+d}"
            for d in self.position_diffs
        ]
        if not (math.isnan(self.cash_before) or math.isnan(self.cash_after)):
            if abs(self.cash_before - self.cash_after) >= 0.01:
                parts.append(f"cash {self.cash_before:,.2f} -> {self.cash_after:,.2f}")
        if self.adopted_orders:
            parts.append(f"adopted orders {self.adopted_orders}")
        return f"reconcile ({self.when}): " + "; ".join(parts)


def diff_positions(local: Mapping[str, int], venue: Iterable[VenuePosition]) -> list[PositionDiff]:
    """Differences between local signed quantities per symbol and the venue's positions.

    Parameters
    ----------
    local : mapping str -> int
        Symbol (OCC for options, ticker for shares) -> signed quantity in the local book.
    venue : iterable of VenuePosition

    Returns
    -------
    list of PositionDiff
        Sorted by symbol; empty when the two agree.
    """
    theirs = {p.symbol: p for p in venue if p.quantity != 0}
    out = []
    for symbol in sorted(set(local) | set(theirs)):
        mine = int(local.get(symbol, 0))
        pos = theirs.get(symbol)
        other = 0 if pos is None else int(pos.quantity)
        if mine == other:
            continue
        if mine == 0:
            kind = "missing_locally"
        elif other == 0:
            kind = "missing_at_venue"
        else:
            kind = "quantity"
        out.append(
            PositionDiff(
                symbol,
                kind,
                mine,
                other,
                math.nan if pos is None else pos.avg_price,
                None if pos is None else pos.contract,
            )
        )
    return out


__all__ = [
    "CLIENT_ORDER_ID_MAX",
    "KEY_ENV",
    "SECRET_ENV",
    "KillSwitch",
    "PositionDiff",
    "ReconcileReport",
    "RetryPolicy",
    "RiskLimits",
    "call_with_retries",
    "client_order_id",
    "decision_key",
    "diff_positions",
    "new_session_id",
    "pre_trade_check",
    "reduces_only",
    "scrub_secrets",
]
