"""Settings and cached readers shared by the dashboard pages (Streamlit).

Paths come from environment variables that ``volsuite dashboard`` sets for the Streamlit process
(defaults relative to the working directory):

``VOLSUITE_RESULTS``  results folder (``results``): run folders ``<experiment>/<run id>/``.
``VOLSUITE_DB``       chain store (``<results>/chains.duckdb``), opened read-only.
``VOLSUITE_OPTUNA``   Optuna storage URL (``sqlite:///<results>/optuna.db``).
``VOLSUITE_PAPER``    paper sessions (``<results>/paper``).
``VOLSUITE_MLFLOW``   MLflow tracking URI (optional; the Runs page lists its runs).

Every reader is cached with ``st.cache_data`` keyed on its arguments and the file's modification
time, so a page loads from memory after the first visit and sees new runs when files change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from experiments.dashboard import data

__all__ = ["Settings", "cached", "mtime", "settings", "show_error"]


@dataclass(frozen=True)
class Settings:
    """Where the dashboard reads (see the module docstring)."""

    results: Path
    db: Path
    optuna: str
    paper: Path
    mlflow: str | None


def settings() -> Settings:
    """The dashboard's :class:`Settings` from the ``VOLSUITE_*`` environment variables."""
    results = Path(os.environ.get("VOLSUITE_RESULTS", "results"))
    return Settings(
        results=results,
        db=Path(os.environ.get("VOLSUITE_DB", str(results / "chains.duckdb"))),
        optuna=os.environ.get("VOLSUITE_OPTUNA", f"sqlite:///{(results / 'optuna.db').resolve()}"),
        paper=Path(os.environ.get("VOLSUITE_PAPER", str(results / "paper"))),
        mlflow=os.environ.get("VOLSUITE_MLFLOW") or None,
    )


def mtime(path: str | Path) -> float:
    """Modification time of ``path`` (0 when absent): part of every cache key."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def show_error(exc: BaseException) -> None:
    """One red line naming what could not be read (no traceback on the page)."""
    st.error(f"{type(exc).__name__}: {exc}")


@st.cache_data(show_spinner=False, max_entries=64)
def _cached(name: str, args: tuple[Any, ...], stamp: float | tuple[float, ...]) -> Any:
    return getattr(data, name)(*args)


def cached(
    name: str, *args: Any, stamp_path: str | Path | Sequence[str | Path] | None = None
) -> Any:
    """``experiments.dashboard.data.<name>(*args)``, cached on the arguments and the
    modification times of ``stamp_path`` (one path or several; default: the first argument)."""
    paths = stamp_path if stamp_path is not None else args[0]
    if isinstance(paths, str | Path):
        paths = [paths]
    stamp = tuple(mtime(p) for p in paths)
    return _cached(name, tuple(str(a) if isinstance(a, Path) else a for a in args), stamp)


@st.cache_data(show_spinner=False, max_entries=64)
def _store_read(name: str, db: str, args: tuple[Any, ...], stamp: float | tuple[float, ...]) -> Any:
    fn = getattr(data, name)
    return data.with_store(db, lambda store: fn(store, *args))


def store_read(name: str, db: str | Path, *args: Any) -> Any:
    """``experiments.dashboard.data.<name>(store, *args)`` on the chain store opened read-only,
    cached on the arguments and the store file's modification time."""
    stamp = (mtime(db), mtime(f"{db}.wal"))  # DuckDB keeps recent writes in the .wal file
    return _store_read(name, str(db), args, stamp)
