"""The audit log of a live session: every order, fill, cancel, rejection, retry, reconciliation and
kill-switch event, one JSON object per line.

Design document 002, section 14.2 asks for an "audit trail (all orders, executions, and signals
logged)". The log is an append-only JSONL file under ``results/paper/<session id>/audit.jsonl``;
every line is flushed and ``fsync``-ed before the call returns, so a crash loses at most the line
being written and never leaves a half-written earlier line. Read it back with :func:`read_audit`
(a DataFrame) or DuckDB (``SELECT * FROM read_json_auto('results/paper/*/audit.jsonl')``).

Fields of every record
----------------------
``seq``
    1, 2, 3 ... within the session.
``event``
    ``session_start``, ``session_end``, ``order_submitted``, ``order_accepted``, ``fill``,
    ``cancel``, ``rejection``, ``retry``, ``reconcile``, ``kill_switch``, ``settlement``,
    ``order_status``.
``venue_time``
    The venue clock (ISO, America/New_York): the recorded snapshot time in a replay.
``wall_time``
    UTC wall clock of the write (ISO).
``session``
    The session id.

plus event fields: ``client_order_id``, ``order_id``, ``legs`` (list of ``{symbol, root,
expiration, strike, right, ratio}``), ``quantity``, ``limit_price``, ``price``, ``reason``,
``tag``, ``detail``. Credentials never reach this module (nothing passes them in).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from data_feeds.contracts import OptionContract

EVENTS = (
    "session_start",
    "session_end",
    "order_submitted",
    "order_accepted",
    "order_status",
    "fill",
    "cancel",
    "rejection",
    "retry",
    "reconcile",
    "kill_switch",
    "settlement",
)
"""Event names written to the audit log."""


def legs_record(legs: Iterable[tuple[OptionContract, int]]) -> list[dict[str, Any]]:
    """Legs as JSON-able dicts: ``symbol`` (OCC), ``root, expiration, strike, right, ratio``."""
    from brokers.live.adapter import occ_symbol

    out = []
    for contract, ratio in legs:
        try:
            symbol = occ_symbol(contract)
        except ValueError:
            symbol = str(contract)
        out.append(
            {
                "symbol": symbol,
                "root": contract.root,
                "expiration": contract.expiration.isoformat(),
                "strike": float(contract.strike),
                "right": contract.right,
                "ratio": int(ratio),
            }
        )
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, OptionContract):
        return str(value)
    return value


class AuditLog:
    """Append-only JSONL audit log of one session.

    Parameters
    ----------
    path : str or pathlib.Path or None
        The ``.jsonl`` file (parents created); None keeps the records in memory only (tests,
        dry runs).
    session : str
        Session id written on every record.

    Attributes
    ----------
    records : list of dict
        Every record written, in order (also kept in memory for the status table and tests).
    """

    def __init__(self, path: str | Path | None, session: str) -> None:
        self.path = None if path is None else Path(path)
        self.session = session
        self.records: list[dict[str, Any]] = []
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")

    def write(
        self, event: str, venue_time: pd.Timestamp | dt.datetime | None, **fields: Any
    ) -> dict[str, Any]:
        """Append one record and flush it to disk.

        Parameters
        ----------
        event : str
            One of :data:`EVENTS`.
        venue_time : pandas.Timestamp or datetime or None
            The venue clock at the event.
        **fields
            Event fields (see the module docstring); NaN becomes ``null``.

        Returns
        -------
        dict
            The record written.

        Raises
        ------
        ValueError
            Unknown ``event``.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}; expected one of {EVENTS}")
        record = {
            "seq": len(self.records) + 1,
            "event": event,
            "venue_time": None if venue_time is None else pd.Timestamp(venue_time).isoformat(),
            "wall_time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "session": self.session,
            **{k: _jsonable(v) for k, v in fields.items()},
        }
        self.records.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record, sort_keys=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return record

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Records of one event kind (all when None), in order."""
        return [r for r in self.records if event is None or r["event"] == event]

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_audit(path: str | Path) -> pd.DataFrame:
    """An audit log as a DataFrame, one row per record in file order.

    Raises
    ------
    data_feeds.errors.DataValidationError
        A line is not a JSON object (names the file and the line number).
    """
    from data_feeds.errors import DataValidationError

    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataValidationError(str(path), f"not JSON ({exc})", row=f"line {n}") from None
            if not isinstance(row, dict):
                raise DataValidationError(str(path), "not a JSON object", row=f"line {n}")
            rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["EVENTS", "AuditLog", "legs_record", "read_audit"]
