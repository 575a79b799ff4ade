"""Signal aggregation across strategies on the same underlying: a confidence-weighted vote.

Each strategy emits, per underlying and time, a :class:`Signal` with a ``direction`` (+1 long /
bullish, -1 short / bearish, 0 neutral / flat) and a ``confidence`` in ``[0, 1]``. For one
underlying at one time, with ``B``, ``S``, ``N`` the summed confidences of the long, short and
neutral signals and ``n`` the number of signals::

    score      = (B - S) / (B + S + N)           in [-1, 1]
    confidence = |B - S| / n                      the net mean confidence
    trade      if |score| >= min_agreement and B + S > 0, in direction sign(score)

Otherwise there is no trade: ``conflict`` when both sides are present (opposing strategies cancel
out), ``weak`` when only one side is present but neutral votes dilute it below the threshold,
``flat`` when nobody has a direction. ``min_agreement = 0.2`` (default) is the design document's
rule "buy only if the buy weight exceeds 1.5 times the sell weight" (``002``, section 7.3:
``B > 1.5 S`` <=> ``(B - S) / (B + S) > 0.2`` without neutral votes); ``min_agreement = 1`` requires
unanimity. Unlike the sketch, a single signal goes through the same rule (it is a vote of one), and
neutral votes count as abstentions that weigh against acting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

SIGNAL_COLUMNS = ("time", "strategy", "underlying", "direction", "confidence")
"""Columns of a signal frame for :func:`aggregate_signals`."""

Decision = Literal["trade", "conflict", "weak", "flat"]


@dataclass(frozen=True)
class Signal:
    """One strategy's view on one underlying.

    Parameters
    ----------
    strategy : str
        Emitting strategy.
    underlying : str
        Underlying symbol (``SPX``, ``SPY``, a pair name ...).
    direction : {-1, 0, 1}
        Short / neutral / long.
    confidence : float
        In ``[0, 1]`` (e.g. a classifier's probability of its predicted class).
    time : pandas.Timestamp, optional
        When the signal is for.

    Raises
    ------
    ValueError
        ``direction`` not in {-1, 0, 1} or ``confidence`` outside ``[0, 1]``.
    """

    strategy: str
    underlying: str
    direction: int
    confidence: float
    time: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        if self.direction not in (-1, 0, 1):
            raise ValueError(
                f"signal of {self.strategy!r} on {self.underlying!r}: direction must be -1, 0 "
                f"or 1, got {self.direction!r}"
            )
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(
                f"signal of {self.strategy!r} on {self.underlying!r}: confidence must be in "
                f"[0, 1], got {self.confidence!r}"
            )


@dataclass(frozen=True)
class AggregateSignal:
    """The vote on one underlying (module docstring).

    Attributes
    ----------
    underlying : str
    direction : int
        +1 / -1 when ``decision == "trade"``, else 0.
    decision : {'trade', 'conflict', 'weak', 'flat'}
    score : float
        ``(B - S) / (B + S + N)``; NaN with no signal weight at all.
    confidence : float
        ``|B - S| / n``.
    long_weight, short_weight, neutral_weight : float
        ``B``, ``S``, ``N``.
    n_signals : int
    supporting : tuple of str
        Strategies voting in the decided direction (for a trade).
    opposing : tuple of str
        Strategies voting against it (for a trade), or the short side (for a conflict).
    """

    underlying: str
    direction: int
    decision: Decision
    score: float
    confidence: float
    long_weight: float
    short_weight: float
    neutral_weight: float
    n_signals: int
    supporting: tuple[str, ...]
    opposing: tuple[str, ...]


def vote(signals: Sequence[Signal], *, min_agreement: float = 0.2) -> AggregateSignal:
    """Confidence-weighted vote of signals on one underlying (module docstring).

    Parameters
    ----------
    signals : sequence of Signal
        All on the same underlying, at least one.
    min_agreement : float
        Threshold on ``|score|``, in ``(0, 1]``.

    Returns
    -------
    AggregateSignal

    Raises
    ------
    ValueError
        No signals, several underlyings, or ``min_agreement`` outside ``(0, 1]``.
    """
    if not (0 < min_agreement <= 1):
        raise ValueError(f"min_agreement must be in (0, 1], got {min_agreement!r}")
    if not signals:
        raise ValueError("vote needs at least one signal")
    names = {s.underlying for s in signals}
    if len(names) != 1:
        raise ValueError(f"vote is per underlying; got {sorted(names)}")
    b = sum(s.confidence for s in signals if s.direction > 0)
    s_ = sum(s.confidence for s in signals if s.direction < 0)
    n_ = sum(s.confidence for s in signals if s.direction == 0)
    total = b + s_ + n_
    score = (b - s_) / total if total > 0 else math.nan
    confidence = abs(b - s_) / len(signals)
    longs = tuple(s.strategy for s in signals if s.direction > 0 and s.confidence > 0)
    shorts = tuple(s.strategy for s in signals if s.direction < 0 and s.confidence > 0)
    if b + s_ == 0:
        decision: Decision = "flat"
    elif abs(score) >= min_agreement - 1e-12:
        decision = "trade"
    elif b > 0 and s_ > 0:
        decision = "conflict"
    else:
        decision = "weak"
    direction = (1 if score > 0 else -1) if decision == "trade" else 0
    if decision == "trade":
        supporting, opposing = (longs, shorts) if direction > 0 else (shorts, longs)
    else:
        supporting, opposing = longs, shorts
    return AggregateSignal(
        next(iter(names)),
        direction,
        decision,
        score,
        confidence,
        b,
        s_,
        n_,
        len(signals),
        supporting,
        opposing,
    )


def _frame_signals(frame: pd.DataFrame) -> list[Signal]:
    missing = [c for c in SIGNAL_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"signal frame: missing column(s) {missing}; expected {SIGNAL_COLUMNS}")
    out = []
    for i, row in enumerate(frame.itertuples(index=False)):
        try:
            out.append(
                Signal(
                    str(row.strategy),
                    str(row.underlying),
                    int(row.direction) if float(row.direction).is_integer() else row.direction,
                    float(row.confidence),
                    pd.Timestamp(row.time),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"signal frame, row {i}: {exc}") from exc
    return out


def aggregate_signals(
    signals: Iterable[Signal] | pd.DataFrame, *, min_agreement: float = 0.2
) -> pd.DataFrame:
    """:func:`vote` per ``(time, underlying)``.

    Parameters
    ----------
    signals : iterable of Signal, or pandas.DataFrame
        Signals, or a frame with columns :data:`SIGNAL_COLUMNS` (one row per strategy, time and
        underlying).
    min_agreement : float
        See :func:`vote`.

    Returns
    -------
    pandas.DataFrame
        One row per ``(time, underlying)`` sorted by both: ``time, underlying, direction,
        decision, score, confidence, long_weight, short_weight, neutral_weight, n_signals,
        supporting, opposing`` (the last two comma-separated strategy names).

    Raises
    ------
    ValueError
        A bad row (named by position), a missing column, or the same strategy twice for one
        ``(time, underlying)``.
    """
    items = _frame_signals(signals) if isinstance(signals, pd.DataFrame) else list(signals)
    groups: dict[tuple, list[Signal]] = {}
    for s in items:
        key = (pd.Timestamp(s.time) if s.time is not None else pd.NaT, s.underlying)
        group = groups.setdefault(key, [])
        if any(g.strategy == s.strategy for g in group):
            raise ValueError(
                f"strategy {s.strategy!r} signals twice on {s.underlying!r} at {key[0]}"
            )
        group.append(s)
    rows = []
    for (time, _), group in groups.items():
        a = vote(group, min_agreement=min_agreement)
        rows.append(
            {
                "time": time,
                "underlying": a.underlying,
                "direction": a.direction,
                "decision": a.decision,
                "score": a.score,
                "confidence": a.confidence,
                "long_weight": a.long_weight,
                "short_weight": a.short_weight,
                "neutral_weight": a.neutral_weight,
                "n_signals": a.n_signals,
                "supporting": ",".join(a.supporting),
                "opposing": ",".join(a.opposing),
            }
        )
    cols = [
        "time",
        "underlying",
        "direction",
        "decision",
        "score",
        "confidence",
        "long_weight",
        "short_weight",
        "neutral_weight",
        "n_signals",
        "supporting",
        "opposing",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.sort_values(["time", "underlying"], kind="stable").reset_index(drop=True)


__all__ = ["SIGNAL_COLUMNS", "AggregateSignal", "Signal", "aggregate_signals", "vote"]
