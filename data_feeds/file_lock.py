"""Advisory file locks between volsuite processes on one machine (POSIX ``flock``).

Used where several processes share a file under ``results/``: the DuckDB chain store (many
read-only processes or one writer, :class:`data_feeds.chain_store.ChainStore`) and the first
creation of the Optuna and MLflow SQLite databases (:mod:`experiments.workers`,
:mod:`experiments.tracking`). The lock lives in a sibling file ``<path>.lock``; ``flock`` locks are
released by the kernel when the holding process exits, so a killed process never leaves a stale
lock behind.

A process that already holds a lock on a path re-enters it without asking the kernel again (a
second ``flock`` on another descriptor of the same file would block against the first).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from data_feeds.errors import VolsuiteError


class LockTimeoutError(VolsuiteError, TimeoutError):
    """Another process holds the lock longer than the caller was willing to wait."""


_HELD: dict[str, list[int]] = {}  # lock path -> [fd, depth, exclusive (1/0)]
_GUARD = threading.Lock()


def lock_path(path: str | Path) -> Path:
    """The lock file of ``path``: ``<path>.lock`` beside it (absolute)."""
    p = Path(path).resolve()
    return p.with_name(p.name + ".lock")


def acquire(
    path: str | Path,
    *,
    shared: bool = False,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
    poll: float = 0.1,
) -> str:
    """Take a shared or exclusive lock on ``path`` (its ``<path>.lock`` file).

    Parameters
    ----------
    path : str or pathlib.Path
        The protected file (it need not exist; its folder must).
    shared : bool
        Shared (many holders, e.g. readers) instead of exclusive (one holder, e.g. a writer).
    wait : float or None
        Seconds to wait for the lock; ``None`` waits as long as it takes, ``0`` does not wait.
    on_wait : callable, optional
        Called once, the first time the lock is found busy (e.g. to print "waiting for ...").
    poll : float
        Seconds between attempts while waiting.

    Returns
    -------
    str
        A key for :func:`release`.

    Raises
    ------
    LockTimeoutError
        The lock was still busy after ``wait`` seconds (message names the lock file).
    OSError
        The lock file cannot be created or opened.
    """
    lp = lock_path(path)
    key = str(lp)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:  # this process holds it already: re-enter
            held[1] += 1
            return key
    try:
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(key, os.O_RDONLY)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = None if wait is None else time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                os.close(fd)
                kind = "shared" if shared else "exclusive"
                raise LockTimeoutError(
                    f"{path}: busy ({kind} lock {lp} not granted after {wait:g} s)"
                ) from None
            if not told and on_wait is not None:
                on_wait()
                told = True
            time.sleep(poll)
    with _GUARD:
        _HELD[key] = [fd, 1, 0 if shared else 1]
    return key


def release(key: str) -> None:
    """Release a lock taken by :func:`acquire` (the kernel lock goes with the last holder)."""
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[key]
    fcntl.flock(held[0], fcntl.LOCK_UN)
    os.close(held[0])


@contextmanager
def file_lock(
    path: str | Path,
    *,
    shared: bool = False,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Context manager around :func:`acquire` / :func:`release` (same parameters)."""
    key = acquire(path, shared=shared, wait=wait, on_wait=on_wait)
    try:
        yield
    finally:
        release(key)
