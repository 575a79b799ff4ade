"""Massive (formerly Polygon.io) client: option chains, underlying bars, the straddle OHLC.

Built on the official ``massive`` package (``from massive import RESTClient``; 2.9): its methods
build the URLs and its models (``Agg``, ``Quote``, ``OptionsContract``) parse every result, so a
body the official client cannot read is rejected. Endpoints (REST, ``https://api.massive.com``;
the ``base`` option of ``RESTClient`` points it elsewhere, e.g. at the tests' fake):

``/v3/reference/options/contracts``
    ``list_options_contracts(underlying_ticker=, as_of=, expiration_date_gte=, limit=)``: the
    contracts listed on a date (``ticker`` ``O:SPXW190628C02900000``, ``contract_type``,
    ``expiration_date``, ``strike_price``); paginated by a ``next_url`` carrying a ``cursor``.
``/v3/quotes/{ticker}``
    ``list_quotes(ticker, timestamp_gte=, timestamp_lte=, order="desc", sort="timestamp",
    limit=1)``: the last NBBO at or before the snapshot time (``bid_price``, ``ask_price``,
    ``bid_size``, ``ask_size``, ``sip_timestamp`` in ns).
``/v2/aggs/ticker/{ticker}/range/1/day/{from}/{to}``
    ``get_aggs``: daily bars (``o h l c v vw t n``; ``t`` the bar start in ms); ``I:SPX`` for the
    index, the option ticker for a contract.

A historical EOD chain of one date therefore costs ``ceil(n / 1000)`` contract pages, one quote
and one aggregate request per contract and one index bar: about ``2 n`` requests for ``n``
contracts. Massive's historical REST gives no open interest, implied vol or greeks (they are in
its *snapshot* endpoints, current day only): those store fields stay empty and the ingest's
liquidity flag skips the open-interest criterion for these rows (counted in the report).

Key handling: the key comes from ``MASSIVE_API_KEY`` (or the ``api_key`` argument), goes only in
the ``Authorization`` header the official client sets, only to the configured host: this
module wraps the client's connection pool so that a request to any other host is refused before
it is sent and no redirect is ever followed (a 3xx is an error). The key is never logged, never
part of a cache key or file and never in an error message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from data_feeds.chain_ingest import FIELD_NAMES
from data_feeds.contracts import underlying_of
from data_feeds.errors import DataSourceError
from data_feeds.vendors._http import (
    RETRY_STATUSES,
    RetryPolicy,
    TransientVendorError,
    parse_retry_after,
)
from data_feeds.vendors.cache import RawCache
from data_feeds.vendors.thetadata import snapshot_time

DEFAULT_BASE_URL = "https://api.massive.com"
"""The official client's default REST host."""

ENV_KEY = "MASSIVE_API_KEY"
VENDOR = "massive"

INDEX_TICKERS = {"SPX": "I:SPX", "VIX": "I:VIX", "NDX": "I:NDX", "RUT": "I:RUT"}
"""Massive's index tickers (``I:`` prefix); other underlyings are stock tickers."""


def underlying_ticker(symbol: str) -> str:
    """Massive ticker of an underlying (``SPX -> I:SPX``, ``SPY -> SPY``)."""
    s = symbol.strip().upper()
    return INDEX_TICKERS.get(s, s)


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.value)


class _GuardedPool:
    """Wraps the official client's ``urllib3.PoolManager``: only the configured host, never a
    redirect, and the last response kept per thread (for its status and ``Retry-After``)."""

    def __init__(self, pool: Any, netloc: str) -> None:
        self._pool = pool
        self._netloc = netloc
        self._local = threading.local()

    def request(self, method: str, url: str, **kw: Any) -> Any:
        host = urlparse(url).netloc
        if host != self._netloc:
            raise DataSourceError(
                f"massive: refusing a request to {host!r} (configured host is "
                f"{self._netloc!r}); the key is sent to that host only"
            )
        kw["redirect"] = False
        self._local.resp = None
        resp = self._pool.request(method, url, **kw)
        self._local.resp = resp
        return resp

    def last_response(self) -> Any:
        return getattr(self._local, "resp", None)

    def clear(self) -> None:
        self._pool.clear()


class MassiveChainClient:
    """Option chains and bars from Massive through the official ``massive.RESTClient``.

    Parameters
    ----------
    api_key : str, optional
        Defaults to the ``MASSIVE_API_KEY`` environment variable.
    base_url : str
        REST host (``https://api.massive.com``); the official client's ``base`` option.
    concurrency : int
        Requests in flight at once (contracts fetched in parallel).
    timeout : float
        Connect and read timeout, seconds.
    retry : RetryPolicy, optional
    cache : RawCache, optional
        Raw JSON bodies by (method, arguments); a cached request is not sent again.
    page_limit : int
        ``limit`` of the contracts listing (max 1000).

    Attributes
    ----------
    requests_sent : int
        Requests sent (cache hits excluded, retries included).

    Raises
    ------
    DataSourceError
        No key in the environment or arguments (the message names the variable, not a value).
    """

    vendor = VENDOR

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        concurrency: int = 4,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        cache: RawCache | None = None,
        page_limit: int = 1000,
    ) -> None:
        from massive import RESTClient
        from urllib3.util.retry import Retry

        key = api_key if api_key is not None else os.environ.get(ENV_KEY)
        if not key:
            raise DataSourceError(f"massive: no API key; set the {ENV_KEY} environment variable")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DataSourceError(f"massive: base URL {base_url!r} is not http(s)://host")
        self.base_url = base_url.rstrip("/")
        self._rest = RESTClient(
            api_key=key,
            base=self.base_url,
            connect_timeout=timeout,
            read_timeout=timeout,
            retries=0,
            pagination=False,
            maxsize=concurrency,
            connection_pool_kw={"retries": Retry(total=False, redirect=False)},
        )
        self._guard = _GuardedPool(self._rest.client, parsed.netloc)
        self._rest.client = self._guard
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self.page_limit = page_limit
        self._lock = threading.Lock()
        self._sem = threading.BoundedSemaphore(concurrency)
        self.requests_sent = 0
        self._contracts: dict[tuple[str, dt.date], list[Any]] = {}

    def __repr__(self) -> str:
        return f"MassiveChainClient(base_url={self.base_url!r})"

    # -- transport ---------------------------------------------------------------------------
    def _send(self, method: str, kwargs: dict[str, Any], what: str) -> bytes:
        import urllib3
        from massive.exceptions import BadResponse

        with self._lock:
            self.requests_sent += 1
        try:
            with self._sem:
                # the official client adds every query value to a passed ``params`` dict: a copy
                args = {k: dict(v) if isinstance(v, dict) else v for k, v in kwargs.items()}
                resp = getattr(self._rest, method)(**args, raw=True)
        except BadResponse as exc:
            last = self._guard.last_response()
            status = int(last.status) if last is not None else 0
            if status in RETRY_STATUSES:
                raise TransientVendorError(
                    f"{what}: HTTP {status}",
                    retry_after=parse_retry_after(last.headers.get("Retry-After")),
                    status=status,
                ) from None
            if 300 <= status < 400:
                raise DataSourceError(
                    f"{what}: HTTP {status} redirect to {last.headers.get('Location')!r} refused "
                    "(the key is never sent across a redirect)"
                ) from None
            text = str(exc)[:200]
            raise DataSourceError(f"{what}: HTTP {status}: {text}") from None
        except urllib3.exceptions.TimeoutError as exc:
            raise TransientVendorError(f"{what}: timed out after {self.timeout:g}s") from exc
        except urllib3.exceptions.NewConnectionError as exc:
            raise DataSourceError(f"{what}: cannot connect to {self.base_url}") from exc
        except urllib3.exceptions.ProtocolError as exc:
            raise TransientVendorError(f"{what}: truncated body ({type(exc).__name__})") from exc
        body = bytes(resp.data)
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise TransientVendorError(f"{what}: truncated or invalid JSON body") from exc
        if not isinstance(obj, dict) or obj.get("status") == "ERROR":
            raise DataSourceError(f"{what}: error response {str(obj)[:200]}")
        return body

    def _call(self, method: str, cache_empty: bool = True, **kwargs: Any) -> dict[str, Any]:
        """One request through the official client, cached, retried; the decoded JSON.

        ``cache_empty=False``: an answer without results is not cached (the contracts listing:
        a day the vendor has nothing for is asked again next run); a contract's empty quote or
        bar list is a real answer (no trade that day) and is cached."""
        what = f"massive {urlparse(self.base_url).netloc} {method}"
        if self.cache is not None:
            hit = self.cache.get(VENDOR, method, kwargs)
            if hit is not None:
                return json.loads(hit.body)
        body = self.retry.call(lambda: self._send(method, kwargs, what), what)
        obj = json.loads(body)
        if self.cache is not None and (cache_empty or obj.get("results")):
            self.cache.put(VENDOR, method, kwargs, body)
        return obj

    # -- endpoints ---------------------------------------------------------------------------
    def contracts(self, root: str, day: dt.date) -> list[Any]:
        """Contracts of ``root`` listed on ``day`` and expiring on or after it.

        Returns
        -------
        list of massive.rest.models.OptionsContract
            Parsed by the official model; only tickers of exactly this root
            (``O:<root>YYMMDD[CP]<strike x1000, 8 digits>``), in listing order.
        """
        from massive.rest.models import OptionsContract

        key = (root.upper(), day)
        if key in self._contracts:
            return self._contracts[key]
        pat = re.compile(rf"^O:{re.escape(root.upper())}\d{{6}}[CP]\d{{8}}$")
        out: list[Any] = []
        cursor: str | None = None
        pages = 0
        while True:
            kwargs: dict[str, Any] = {
                "underlying_ticker": underlying_of(root),
                "as_of": day.isoformat(),
                "expiration_date_gte": day.isoformat(),
                "limit": self.page_limit,
            }
            if cursor:
                kwargs["params"] = {"cursor": cursor}
            obj = self._call("list_options_contracts", cache_empty=False, **kwargs)
            for r in obj.get("results", []):
                c = OptionsContract.from_dict(r)
                if c.ticker and pat.match(c.ticker):
                    out.append(c)
            nxt = obj.get("next_url")
            if not nxt:
                break
            cursor = (parse_qs(urlparse(nxt).query).get("cursor") or [None])[0]
            pages += 1
            if not cursor or pages > 10_000:
                raise DataSourceError(f"massive: bad next_url {nxt!r} in the contracts listing")
        self._contracts[key] = out
        return out

    def last_quote(self, ticker: str, day: dt.date, at: pd.Timestamp) -> Any | None:
        """The last NBBO of ``ticker`` on ``day`` at or before ``at`` (``massive`` ``Quote``)."""
        from massive.rest.models import Quote

        start = pd.Timestamp(day).tz_localize("America/New_York")
        obj = self._call(
            "list_quotes",
            ticker=ticker,
            timestamp_gte=_ns(start),
            timestamp_lte=_ns(at),
            order="desc",
            sort="timestamp",
            limit=1,
        )
        res = obj.get("results") or []
        return Quote.from_dict(res[0]) if res else None

    def daily_aggs(self, ticker: str, start: dt.date, end: dt.date) -> list[Any]:
        """Daily bars of ``ticker`` (``massive`` ``Agg``; ``timestamp`` ms at the bar start)."""
        from massive.rest.models import Agg

        obj = self._call(
            "get_aggs",
            ticker=ticker,
            multiplier=1,
            timespan="day",
            from_=start.isoformat(),
            to=end.isoformat(),
            adjusted=False,
            sort="asc",
            limit=50000,
        )
        return [Agg.from_dict(r) for r in obj.get("results") or []]

    def expected_expirations(self, root: str, day: dt.date) -> list[dt.date]:
        """Expirations of the contracts listed on ``day`` (missing-expiry count)."""
        return sorted(
            {dt.date.fromisoformat(str(c.expiration_date)) for c in self.contracts(root, day)}
        )

    def chain_eod(self, root: str, day: dt.date) -> pd.DataFrame:
        """The chain of ``root`` at the close of ``day`` in the store's field names.

        Per listed contract: the last quote at or before the session close
        (:func:`~data_feeds.vendors.thetadata.snapshot_time`) and the day's bar (``last`` = its
        close, ``volume`` = its volume; a contract without a bar did not trade: volume 0,
        ``last`` empty). ``underlying_price`` = the underlying's daily close. A contract
        without a quote that day keeps empty bid/ask and is quarantined by the ingest
        (``missing required field: bid``), never dropped.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`~data_feeds.chain_ingest.FIELD_NAMES`; empty when nothing is listed.
        """
        contracts = self.contracts(root, day)
        if not contracts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in FIELD_NAMES})
        qt = snapshot_time(day)
        at = pd.Timestamp.combine(day, qt).tz_localize("America/New_York")
        und = self.daily_aggs(underlying_ticker(underlying_of(root)), day, day)
        spot = float(und[0].close) if und and und[0].close is not None else math.nan

        def one(c: Any) -> dict[str, Any]:
            q = self.last_quote(c.ticker, day, at)
            bars = self.daily_aggs(c.ticker, day, day)
            bar = bars[0] if bars else None
            return {
                "underlying": underlying_of(root),
                "root": root.upper(),
                "quote_date": day,
                "quote_time": qt,
                "expiration_date": dt.date.fromisoformat(str(c.expiration_date)),
                "strike": c.strike_price,
                "option_type": str(c.contract_type or "").upper(),
                "bid": None if q is None else q.bid_price,
                "ask": None if q is None else q.ask_price,
                "symbol": c.ticker,
                "last": None if bar is None else bar.close,
                "volume": 0 if bar is None else bar.volume,
                "open_interest": None,
                "implied_volatility": None,
                "delta": None,
                "gamma": None,
                "theta": None,
                "vega": None,
                "rho": None,
                "bid_size": None if q is None else q.bid_size,
                "ask_size": None if q is None else q.ask_size,
                "underlying_price": spot,
            }

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            rows = list(pool.map(one, contracts))
        return pd.DataFrame(rows, columns=list(FIELD_NAMES))

    def chain_minutes(self, root: str, day: dt.date, interval: str = "1m") -> pd.DataFrame:
        """Not offered for Massive: a minute chain costs one quotes request per contract and
        minute (~5 million a day for SPXW). Use ``--vendor thetadata --interval 1m``.

        Raises
        ------
        DataSourceError
            Always.
        """
        raise DataSourceError(
            "massive: --interval 1m is not supported (one request per contract and minute); "
            "use --vendor thetadata for minute chains"
        )

    def underlying_eod(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Daily OHLC of ``symbol`` (``I:SPX`` for SPX) from ``start`` to ``end``.

        Returns
        -------
        pandas.DataFrame
            Index: session dates (naive, the ET date of the bar start ``t``); columns ``open,
            high, low, close, volume`` (index points / dollars).
        """
        bars = self.daily_aggs(underlying_ticker(symbol), start, end)
        if not bars:
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume"])
        t = pd.to_datetime([b.timestamp for b in bars], unit="ms", utc=True)
        idx = pd.DatetimeIndex(t.tz_convert("America/New_York").tz_localize(None).normalize())
        return pd.DataFrame(
            {
                "open": [b.open for b in bars],
                "high": [b.high for b in bars],
                "low": [b.low for b in bars],
                "close": [b.close for b in bars],
                "volume": [b.volume if b.volume is not None else np.nan for b in bars],
            },
            index=idx.rename("date"),
        ).astype(float)

    def straddle_ohlc(self, call_ticker: str, put_ticker: str, day: dt.date) -> pd.Series:
        """Design doc 003's straddle bar of ``day`` from its legs' daily aggregates.

        See :func:`straddle_ohlc`.

        Raises
        ------
        DataSourceError
            A leg has no bar that day (it did not trade: no OHLC to sum).
        """
        legs = []
        for t in (call_ticker, put_ticker):
            bars = self.daily_aggs(t, day, day)
            if not bars:
                raise DataSourceError(f"massive: no daily bar for {t} on {day} (no trades)")
            legs.append(bars[0])
        c, p = legs
        return straddle_ohlc((c.open, c.high, c.low, c.close), (p.open, p.high, p.low, p.close))


def straddle_ohlc(
    call: tuple[float, float, float, float], put: tuple[float, float, float, float]
) -> pd.Series:
    """OHLC of a straddle (call + put) from the legs' OHLC, with the bounds that are knowable.

    With ``S(t) = C(t) + P(t)`` over the bar:

    * ``open = Oc + Op`` and ``close = Cc + Cp`` are well defined (sums of the legs' first and
      last prints; the two prints need not be simultaneous -- a caveat of trade bars);
    * the high is NOT ``Hc + Hp``: the legs reach their highs at different times (a call peaks
      when the underlying rallies, the put then bottoms). Only bounds follow:
      ``max(open, close, Hc + Lp, Lc + Hp) <= high <= Hc + Hp`` -- at the moment the call
      makes its high the put is at least ``Lp``, and so on;
    * symmetrically ``Lc + Lp <= low <= min(open, close, Hc + Lp, Lc + Hp)``.

    Design doc 003 uses ``high = max(...)`` (``high_min`` here, the tightest lower bound of the
    true high) and ``low = min(...)`` (``low_max``, the tightest upper bound of the true low).

    Parameters
    ----------
    call, put : tuple of float
        ``(open, high, low, close)`` of each leg, dollars (index points for SPX).

    Returns
    -------
    pandas.Series
        ``open, close, high_min, high_max, low_min, low_max`` (dollars), plus ``high`` =
        ``high_min`` and ``low`` = ``low_max`` (doc 003's convention).

    Raises
    ------
    ValueError
        A leg's bar is inconsistent (``low > min(open, close)`` or ``high < max(open, close)``)
        or has a non-finite value.
    """
    for name, (o, h, lo, c) in (("call", call), ("put", put)):
        vals = np.array([o, h, lo, c], dtype=float)
        if not np.isfinite(vals).all():
            raise ValueError(
                f"{name} bar has a non-finite value: {call if name == 'call' else put}"
            )
        if lo > min(o, c) or h < max(o, c):
            raise ValueError(f"{name} bar is inconsistent: open {o}, high {h}, low {lo}, close {c}")
    oc, hc, lc, cc = (float(x) for x in call)
    op, hp, lp, cp = (float(x) for x in put)
    s_open, s_close = oc + op, cc + cp
    cross = (hc + lp, lc + hp)
    high_min = max(s_open, s_close, *cross)
    low_max = min(s_open, s_close, *cross)
    return pd.Series(
        {
            "open": s_open,
            "close": s_close,
            "high_min": high_min,
            "high_max": hc + hp,
            "low_min": lc + lp,
            "low_max": low_max,
            "high": high_min,
            "low": low_max,
        }
    )
