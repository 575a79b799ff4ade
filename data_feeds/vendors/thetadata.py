"""Theta Data v3 client: the local Theta Terminal's REST API (``http://127.0.0.1:25503/v3``).

The terminal authenticates at launch with the user's credentials (they stay with the terminal;
this client sends none). Endpoints used (docs.thetadata.us, "v3" operations; CSV is the default
``format``, first line the header, rows end in ``\\r\\n``):

``/option/list/expirations?symbol=S``
    ``symbol,expiration`` (``YYYY-MM-DD``).
``/option/list/strikes?symbol=S&expiration=YYYYMMDD``
    ``symbol,strike`` (dollars).
``/option/history/greeks/eod?symbol=S&expiration=*&start_date=D&end_date=D``
    the national EOD report (generated 17:15 ET, the quote is the last NBBO at generation) with
    greeks: ``symbol,expiration,strike,right,timestamp,open,high,low,close,volume,count,
    bid_size,bid_exchange,bid,bid_condition,ask_size,ask_exchange,ask,ask_condition,delta,
    theta,vega,rho,...,gamma,...,implied_vol,iv_error,underlying_timestamp,underlying_price``.
``/option/history/open_interest?symbol=S&expiration=*&date=D``
    ``symbol,expiration,strike,right,timestamp,open_interest`` (OI reported that morning by
    OPRA, i.e. as of the previous session's close).
``/option/history/quote?symbol=S&expiration=*&date=D&interval=1m``
    one NBBO per contract and minute (``timestamp`` = the bar's time, ET).
``/index/history/eod?symbol=SPX&start_date=D1&end_date=D2`` and ``/stock/history/eod``
    daily ``created,last_trade,open,high,low,close,volume,...`` of the underlying.

Pagination: the v2 terminal split large responses and named the next page in a ``Next-Page``
response header; the v3 migration guide says v3 no longer does. The client follows a
``Next-Page`` header when present (and not ``null``) so both behave, but only to the terminal's
own host and port. Concurrency: the terminal serves at most 1/2/4/8 concurrent requests
(FREE/VALUE/STANDARD/PRO) and queues the rest (queue 16 by default), answering 429 when the
queue overflows (docs.thetadata.us, Articles/Data-And-Requests/Concurrent-Requests); the client
never has more than ``concurrency`` requests in flight. Redirects are never followed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import requests

from data_feeds.chain_ingest import FIELD_NAMES
from data_feeds.chains import settlement_time
from data_feeds.contracts import underlying_of
from data_feeds.errors import DataSourceError
from data_feeds.vendors._http import (
    RETRY_STATUSES,
    RetryPolicy,
    TransientVendorError,
    parse_retry_after,
)
from data_feeds.vendors.cache import RawCache

DEFAULT_BASE_URL = "http://127.0.0.1:25503/v3"
"""The v3 terminal's default REST address."""

VENDOR = "thetadata"

INDEX_SYMBOLS = frozenset({"SPX", "VIX", "NDX", "RUT", "XSP"})
"""Underlyings served by ``/index/...`` (the others by ``/stock/...``)."""


def _ymd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def snapshot_time(day: dt.date) -> dt.time:
    """ET wall-clock time stored as ``quote_time`` of an EOD chain of ``day``.

    The EOD quote is the last NBBO before the report (17:15 ET); it is stored at the NYSE
    session close of ``day`` (16:00, 13:00 on an early-close day such as 2019-07-03), from
    :func:`data_feeds.chains.settlement_time` (``exchange_calendars`` XNYS).
    """
    return settlement_time(day, "PM").time()


class ThetaTerminalClient:
    """REST client of a running Theta Terminal v3.

    Parameters
    ----------
    base_url : str
        ``http://127.0.0.1:25503/v3`` by default (the terminal's address; tests pass a fake's).
    concurrency : int
        Most requests in flight at once (the subscription's concurrent-request limit: 1 FREE,
        2 VALUE, 4 STANDARD, 8 PRO).
    timeout : float
        Seconds to wait for the connection and for each read.
    retry : RetryPolicy, optional
        Backoff on 429/5xx/timeouts/truncated bodies (default :class:`RetryPolicy`).
    cache : RawCache, optional
        Raw-response cache; a cached request is not sent again.

    Attributes
    ----------
    requests_sent : int
        HTTP requests actually sent (cache hits excluded, retries included).
    sent_paths : list of (str, dict)
        Path and parameters of every request sent, in order (for audits and tests).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        concurrency: int = 2,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        cache: RawCache | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DataSourceError(f"Theta Terminal URL {base_url!r}: expected http://host:port/v3")
        self._netloc = parsed.netloc
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self._sem = threading.BoundedSemaphore(concurrency)
        self._session = requests.Session()
        self._session.trust_env = False  # the terminal is local: never through a proxy
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.sent_paths: list[tuple[str, dict[str, Any]]] = []
        self._expirations: dict[str, list[dt.date]] = {}

    vendor = VENDOR

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    # -- transport ---------------------------------------------------------------------------
    def _send(self, url: str, params: dict[str, Any] | None, what: str) -> tuple[bytes, str]:
        """One GET; returns ``(body, next_page)`` or raises (transient errors for retry)."""
        with self._lock:
            self.requests_sent += 1
            self.sent_paths.append((urlparse(url).path, dict(params or {})))
        try:
            with self._sem:
                resp = self._session.get(
                    url, params=params, timeout=self.timeout, allow_redirects=False
                )
                body = resp.content
        except requests.Timeout as exc:
            raise TransientVendorError(f"{what}: timed out after {self.timeout:g}s") from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise TransientVendorError(f"{what}: truncated body ({exc})") from exc
        except requests.ConnectionError as exc:
            if "IncompleteRead" in str(exc) or "Connection broken" in str(exc):
                raise TransientVendorError(f"{what}: truncated body ({exc})") from exc
            raise DataSourceError(
                f"{what}: cannot connect to the Theta Terminal at {self.base_url} -- is it "
                "running (java -jar ThetaTerminalv3.jar)?"
            ) from exc
        status = resp.status_code
        if status in RETRY_STATUSES:
            raise TransientVendorError(
                f"{what}: HTTP {status}",
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                status=status,
            )
        if 300 <= status < 400:
            raise DataSourceError(
                f"{what}: HTTP {status} redirect to {resp.headers.get('Location')!r} refused"
            )
        if status != 200:
            text = body[:200].decode("utf-8", "replace").strip()
            raise DataSourceError(f"{what}: HTTP {status}: {text}")
        expected = resp.headers.get("Content-Length")
        if expected is not None and expected.isdigit() and int(expected) != len(body):
            raise TransientVendorError(
                f"{what}: truncated body ({len(body)} of {expected} bytes)", status=status
            )
        _check_csv_complete(body, what)
        return body, (resp.headers.get("Next-Page") or "").strip()

    def _page(self, url: str, params: dict[str, Any] | None, what: str) -> tuple[bytes, str]:
        u = urlparse(url)
        cache_path = u.path + (f"?{u.query}" if u.query else "")  # a next page: its own query
        if self.cache is not None:
            hit = self.cache.get(VENDOR, cache_path, params)
            if hit is not None:
                return hit.body, hit.next_page
        body, next_page = self.retry.call(lambda: self._send(url, params, what), what)
        if self.cache is not None and body.count(b"\n") > 1:  # never cache an empty answer
            self.cache.put(VENDOR, cache_path, params, body, next_page=next_page)
        return body, next_page

    def get_csv(self, path: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """GET ``base_url + path`` as CSV (all pages), every column as text.

        Parameters
        ----------
        path : str
            Endpoint path after ``/v3`` (``/option/history/eod``).
        params : dict, optional
            Query parameters.

        Returns
        -------
        pandas.DataFrame
            Columns as in the header (``str`` dtype, empty cells ``NaN``); no rows when the
            terminal had no data (HTTP 472 "no data" in v2/v3 or an empty body).

        Raises
        ------
        DataSourceError
            Terminal not running, a non-retryable HTTP status, a redirect, a ``Next-Page`` on
            another host, or retries exhausted (:class:`~data_feeds.vendors._http.
            RetriesExhaustedError`).
        """
        url = self.base_url + path
        what = f"thetadata {urlparse(url).netloc}{urlparse(url).path}"
        frames = []
        cur_params: dict[str, Any] | None = dict(params or {})
        seen = 0
        while True:
            try:
                body, next_page = self._page(url, cur_params, what)
            except DataSourceError as exc:
                if "HTTP 472" in str(exc):  # the terminal's "no data for this request"
                    body, next_page = b"", ""
                else:
                    raise
            if body.strip():
                frames.append(
                    pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])
                )
            if not next_page or next_page.lower() == "null":
                break
            nxt = urlparse(next_page)
            if nxt.netloc and nxt.netloc != self._netloc:
                raise DataSourceError(
                    f"{what}: Next-Page points to another host ({nxt.netloc}); refused"
                )
            url = next_page if nxt.netloc else self.base_url.rsplit("/v3", 1)[0] + next_page
            cur_params = None
            seen += 1
            if seen > 100_000:
                raise DataSourceError(f"{what}: more than 100000 pages; pagination loop?")
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    # -- endpoints ---------------------------------------------------------------------------
    def list_expirations(self, symbol: str) -> list[dt.date]:
        """Every expiration listed for option root ``symbol`` (``/option/list/expirations``)."""
        df = self.get_csv("/option/list/expirations", {"symbol": symbol})
        if df.empty:
            return []
        return sorted(pd.to_datetime(df["expiration"], format="%Y-%m-%d").dt.date)

    def expected_expirations(self, root: str, day: dt.date) -> list[dt.date]:
        """Expirations listed for ``root`` on or after ``day`` (for the missing-expiry count;
        the listing is fetched once per root and client)."""
        if root not in self._expirations:
            self._expirations[root] = self.list_expirations(root)
        return [e for e in self._expirations[root] if e >= day]

    def list_strikes(self, symbol: str, expiration: dt.date) -> list[float]:
        """Strikes (dollars) of ``symbol`` expiring ``expiration`` (``/option/list/strikes``)."""
        df = self.get_csv(
            "/option/list/strikes", {"symbol": symbol, "expiration": _ymd(expiration)}
        )
        return [] if df.empty else sorted(df["strike"].astype(float).tolist())

    def option_eod_greeks(self, symbol: str, day: dt.date) -> pd.DataFrame:
        """Raw EOD report with greeks of every contract of ``symbol`` on ``day``."""
        return self.get_csv(
            "/option/history/greeks/eod",
            {"symbol": symbol, "expiration": "*", "start_date": _ymd(day), "end_date": _ymd(day)},
        )

    def option_open_interest(self, symbol: str, day: dt.date) -> pd.DataFrame:
        """Raw open interest of every contract of ``symbol`` reported on ``day``."""
        return self.get_csv(
            "/option/history/open_interest",
            {"symbol": symbol, "expiration": "*", "date": _ymd(day)},
        )

    def option_quotes(self, symbol: str, day: dt.date, interval: str = "1m") -> pd.DataFrame:
        """Raw NBBO of every contract of ``symbol`` on ``day`` sampled every ``interval``."""
        return self.get_csv(
            "/option/history/quote",
            {"symbol": symbol, "expiration": "*", "date": _ymd(day), "interval": interval},
        )

    def chain_eod(self, root: str, day: dt.date) -> pd.DataFrame:
        """The EOD chain of ``root`` on ``day`` in the store's field names.

        Greeks EOD (quotes, volume, last = the day's closing trade, vendor IV and greeks,
        underlying price) joined with the open interest on ``(expiration, strike, right)``.

        Parameters
        ----------
        root : str
            Option root (``SPXW``, ``SPX``, ``SPY``): Theta's option symbol.
        day : datetime.date
            Quote date.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`data_feeds.chain_ingest.FIELD_NAMES` (strike in dollars, IV decimal,
            ``option_type`` as the vendor's ``CALL``/``PUT``, ``quote_time`` the session close
            -- :func:`snapshot_time`); empty when the terminal has no data for the day. Values
            are NOT validated here: :func:`data_feeds.vendors.jobs.store_chain_day` sends them
            through the file-ingest validation.
        """
        eod = self.option_eod_greeks(root, day)
        if eod.empty:
            return _empty_chain()
        oi = self.option_open_interest(root, day)
        return normalize_theta_eod(eod, oi, root, day)

    def chain_minutes(self, root: str, day: dt.date, interval: str = "1m") -> pd.DataFrame:
        """Minute NBBO snapshots of ``root`` on ``day`` in the store's field names
        (``quote_time`` = the bar's ET time; no greeks, OI or volume)."""
        q = self.option_quotes(root, day, interval)
        if q.empty:
            return _empty_chain()
        if "timestamp" not in q.columns:
            raise DataSourceError(f"thetadata {root} {day}: quote response has no 'timestamp'")
        ts = pd.to_datetime(q["timestamp"], format="ISO8601")
        out = _base_frame(q, root, day)
        out["quote_time"] = ts.dt.time.to_numpy()
        return out[list(FIELD_NAMES)]

    def underlying_eod(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Daily OHLC of ``symbol`` from ``start`` to ``end`` (index or stock EOD endpoint).

        Returns
        -------
        pandas.DataFrame
            Index: session dates (naive); columns ``open, high, low, close, volume`` (index
            points / dollars, volume in shares, 0 for an index).
        """
        kind = "index" if symbol.upper() in INDEX_SYMBOLS else "stock"
        df = self.get_csv(
            f"/{kind}/history/eod",
            {"symbol": symbol.upper(), "start_date": _ymd(start), "end_date": _ymd(end)},
        )
        if df.empty:
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume"])
        day = pd.to_datetime(df["created"], format="ISO8601").dt.normalize()
        out = pd.DataFrame(
            {c: pd.to_numeric(df[c], errors="raise") for c in ("open", "high", "low", "close")}
        )
        out["volume"] = pd.to_numeric(df.get("volume", 0), errors="raise")
        out.index = pd.DatetimeIndex(day.to_numpy(), name="date")
        return out


def _check_csv_complete(body: bytes, what: str) -> None:
    """A body cut short: no final newline, or a last row with fewer fields than the header."""
    if not body.strip():
        return
    if not body.endswith(b"\n"):
        raise TransientVendorError(f"{what}: truncated body (no final newline)")
    text = body.decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text)))
    width = len(rows[0])
    for i, row in enumerate(rows[1:], start=2):
        if row and len(row) != width:
            raise TransientVendorError(
                f"{what}: truncated body (line {i} has {len(row)} of {width} fields)"
            )


def _empty_chain() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FIELD_NAMES})


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)


_NEEDED = ("expiration", "strike", "right", "bid", "ask")


def _base_frame(raw: pd.DataFrame, root: str, day: dt.date) -> pd.DataFrame:
    missing = [c for c in _NEEDED if c not in raw.columns]
    if missing:
        raise DataSourceError(
            f"thetadata {root} {day}: response lacks column(s) {missing}; got {list(raw.columns)}"
        )
    out = pd.DataFrame(index=range(len(raw)))
    out["underlying"] = underlying_of(root)
    out["root"] = root.upper()
    out["quote_date"] = day
    out["quote_time"] = snapshot_time(day)
    out["expiration_date"] = pd.to_datetime(raw["expiration"], format="%Y-%m-%d").dt.date
    out["strike"] = _num(raw, "strike")
    out["option_type"] = raw["right"].str.upper().to_numpy()
    out["bid"] = _num(raw, "bid")
    out["ask"] = _num(raw, "ask")
    out["symbol"] = None
    for col in ("last", "volume", "open_interest", "implied_volatility", "delta", "gamma"):
        out[col] = np.nan
    for col in ("theta", "vega", "rho", "underlying_price"):
        out[col] = np.nan
    out["bid_size"] = _num(raw, "bid_size")
    out["ask_size"] = _num(raw, "ask_size")
    return out


def normalize_theta_eod(
    eod: pd.DataFrame, oi: pd.DataFrame, root: str, day: dt.date
) -> pd.DataFrame:
    """Map a raw greeks-EOD frame (+ open interest) onto the store's fields.

    Parameters
    ----------
    eod : pandas.DataFrame
        ``/option/history/greeks/eod`` rows as text (see the module docstring).
    oi : pandas.DataFrame
        ``/option/history/open_interest`` rows (may be empty: OI left null).
    root : str
    day : datetime.date

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~data_feeds.chain_ingest.FIELD_NAMES`, one row per EOD row, in order.
    """
    out = _base_frame(eod, root, day)
    out["last"] = _num(eod, "close")
    out["volume"] = _num(eod, "volume")
    out["implied_volatility"] = _num(eod, "implied_vol")
    for g in ("delta", "gamma", "theta", "vega", "rho", "underlying_price"):
        out[g] = _num(eod, g)
    if not oi.empty:
        key = ["expiration", "strike", "right"]
        o = oi[[*key, "open_interest"]].copy()
        o["strike"] = pd.to_numeric(o["strike"])
        o["right"] = o["right"].str.upper()
        o = o.drop_duplicates(key, keep="last")
        left = pd.DataFrame(
            {
                "expiration": eod["expiration"].to_numpy(),
                "strike": out["strike"].to_numpy(),
                "right": out["option_type"].to_numpy(),
            }
        )
        merged = left.merge(o, on=key, how="left")
        out["open_interest"] = pd.to_numeric(merged["open_interest"]).to_numpy(dtype=float)
    return out[list(FIELD_NAMES)]
