"""The state file of a paper session: what ``volsuite paper stop``, the status and the dashboard
read (stdlib only, so ``volsuite paper stop`` engages the kill switch without loading backtrader).

Written by :func:`experiments.paper.write_state`; the session itself is :mod:`experiments.paper`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "kill_report", "read_state", "running_sessions", "wait_for_kill"]

STATE_FILE = "state.json"
"""Written (atomically) next to a session's audit log at its start, after every bar and at its
end: ``session, pid, host, running, updated, venue, venue_time, replay, killed, kill_complete,
kill_status``."""


def read_state(folder: str | Path) -> dict[str, Any] | None:
    """A session folder's state (None when it has none or it is not JSON), with ``alive``: the
    state says running and its process exists on this host."""
    try:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    state["alive"] = bool(state.get("running")) and _process_alive(state)
    return state


def _process_alive(state: Mapping[str, Any]) -> bool:
    if state.get("host") != socket.gethostname():
        return True  # another machine: trust its own word
    try:
        os.kill(int(state.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def running_sessions(audit_dir: str | Path) -> list[dict[str, Any]]:
    """States of the sessions under ``audit_dir`` whose process is running (see
    :func:`read_state`), oldest update first."""
    root = Path(audit_dir)
    if not root.is_dir():
        return []
    states = [read_state(d) for d in root.iterdir() if d.is_dir()]
    alive = [st for st in states if st is not None and st["alive"]]
    return sorted(alive, key=lambda st: str(st.get("updated", "")))


def wait_for_kill(
    audit_dir: str | Path,
    sessions: Sequence[str],
    *,
    timeout: float,
    poll: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Wait until every session in ``sessions`` reports its kill complete or has ended, at most
    ``timeout`` wall seconds; their last states (a session without a readable state maps to
    ``{}``)."""
    deadline = time.monotonic() + max(float(timeout), 0.0)
    while True:
        states = {s: read_state(Path(audit_dir) / s) or {} for s in sessions}
        settled = all(st.get("kill_complete") or not st.get("alive") for st in states.values())
        if settled or time.monotonic() >= deadline:
            return states
        sleep(poll)


def kill_report(session: str, state: Mapping[str, Any]) -> tuple[bool, str]:
    """One line on a session's kill from its state, and whether the kill is complete."""
    if not state:
        return False, f"session {session}: no state file; cannot tell whether the kill completed"
    status = str(state.get("kill_status", "?"))
    if state.get("kill_complete"):
        ended = "" if state.get("alive") else " (session ended)"
        return True, f"session {session}: kill switch {status}{ended}"
    if not state.get("killed"):
        if state.get("alive"):
            return False, (
                f"session {session}: has not acted on the kill switch yet (it checks the flag at "
                "its next tick / order); run 'volsuite paper stop' again to see"
            )
        return False, f"session {session}: ended without acting on the kill switch"
    where = "still running and retrying" if state.get("alive") else "ended"
    return False, f"session {session}: kill switch {status} (session {where})"
