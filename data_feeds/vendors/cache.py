"""A local cache of raw vendor responses, one parquet file per response.

Layout: ``<cache_dir>/raw/<vendor>/<key[:2]>/<key>.parquet``, ``key`` the sha256 of the vendor,
the request path and its sorted query parameters (never an API key: Massive sends it in a header
and it is not part of the key). Each file holds one row: ``vendor, path, params`` (JSON),
``status``, ``body`` (the response bytes as received), ``next_page`` (the Theta Terminal's
pagination header, empty when none) and ``fetched_at`` (UTC). Files are written to a temporary
name and renamed, so a killed run never leaves a half-written entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class CachedResponse:
    """One cached response: its body bytes and the next-page URL (``""`` when none)."""

    body: bytes
    next_page: str = ""


def cache_key(vendor: str, path: str, params: dict[str, Any] | None) -> str:
    """sha256 hex of ``vendor | path | sorted params`` (the request identity).

    Parameters
    ----------
    vendor : str
    path : str
        Request path (or method name for the Massive client).
    params : dict, optional
        Query parameters; values are stringified.

    Returns
    -------
    str
        64 hex digits.
    """
    items = sorted((str(k), str(v)) for k, v in (params or {}).items())
    text = json.dumps([vendor, path, items], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class RawCache:
    """Parquet cache of raw responses under ``root / "raw"``.

    Parameters
    ----------
    root : str or pathlib.Path
        Cache directory (created when missing).

    Attributes
    ----------
    hits, misses, writes : int
        Counters since construction (thread-safe).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self._lock = threading.Lock()

    def _file(self, vendor: str, key: str) -> Path:
        return self.root / "raw" / vendor / key[:2] / f"{key}.parquet"

    def get(self, vendor: str, path: str, params: dict[str, Any] | None) -> CachedResponse | None:
        """The cached response of a request, or None (a miss)."""
        f = self._file(vendor, cache_key(vendor, path, params))
        if not f.is_file():
            with self._lock:
                self.misses += 1
            return None
        table = pq.read_table(f)
        row = table.to_pylist()[0]
        with self._lock:
            self.hits += 1
        return CachedResponse(bytes(row["body"]), str(row["next_page"] or ""))

    def put(
        self,
        vendor: str,
        path: str,
        params: dict[str, Any] | None,
        body: bytes,
        *,
        status: int = 200,
        next_page: str = "",
    ) -> Path:
        """Store a response (atomically: temporary file then rename).

        Returns
        -------
        pathlib.Path
            The parquet file written.
        """
        key = cache_key(vendor, path, params)
        f = self._file(vendor, key)
        f.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "vendor": [vendor],
                "path": [path],
                "params": [json.dumps(sorted((str(k), str(v)) for k, v in (params or {}).items()))],
                "status": [int(status)],
                "body": pa.array([body], type=pa.binary()),
                "next_page": [next_page],
                "fetched_at": [dt.datetime.now(dt.UTC).replace(tzinfo=None)],
            }
        )
        tmp = f.with_name(f"{f.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, f)
        with self._lock:
            self.writes += 1
        return f
