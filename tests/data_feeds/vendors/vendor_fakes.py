"""Fake Theta Terminal v3 and fake Massive REST API for the vendor tests (127.0.0.1, free port).

Both serve the vendors' documented formats (Theta: CSV with the header of
docs.thetadata.us ``/option/history/greeks/eod``, ``/option/history/open_interest``,
``/option/list/expirations``, ``/index/history/eod``; Massive: the JSON bodies of
``/v3/reference/options/contracts``, ``/v3/quotes/{ticker}``, ``/v2/aggs/...``, parsed in the
client by the official ``massive`` models) built from the shipped 2019 SPX chain rows, so a test
compares what the store holds with the source rows.

Fault injection: :class:`Fault` rules match a request (path substring + query values) and
answer ``429`` (with ``Retry-After``), ``500``, ``timeout`` (sleep past the client's timeout),
``truncated`` (declared ``Content-Length`` but half the body, then close), ``bad_json`` (a
body cut mid-way with a matching length), ``empty`` (no data) or ``redirect`` (302 to another
address); ``times`` counts how many matching requests get the fault.

Fields the 2019 source does not have (theta/vega/rho, sizes, exchanges, conditions, the legs'
intraday open/high/low) are served empty (Theta) or omitted (Massive), never invented; a
Massive daily bar has ``o = h = l = c = last`` and exists only when the contract traded
(``volume > 0``), as a real bar would.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd

DAYS = [
    dt.date(2019, 6, 24),
    dt.date(2019, 6, 25),
    dt.date(2019, 6, 26),
    dt.date(2019, 6, 27),
    dt.date(2019, 6, 28),
    dt.date(2019, 7, 1),
    dt.date(2019, 7, 2),
    dt.date(2019, 7, 3),  # early close, 13:00 ET
    dt.date(2019, 7, 5),  # after the 07-04 holiday (no session: never requested)
    dt.date(2019, 7, 8),
]
"""The 10 NYSE sessions 2019-06-24 .. 2019-07-08 (hand-listed: 07-04 is a holiday)."""

ET = "America/New_York"
CHAINS = Path("options") / "spx_chains_2019q2.parquet"
INDEX = Path("index") / "spx_vix_spy_qqq_daily.csv"

THETA_EOD_HEADER = (
    "symbol,expiration,strike,right,timestamp,open,high,low,close,volume,count,bid_size,"
    "bid_exchange,bid,bid_condition,ask_size,ask_exchange,ask,ask_condition,delta,theta,vega,rho,"
    "epsilon,lambda,gamma,vanna,charm,vomma,veta,vera,speed,zomma,color,ultima,d1,d2,dual_delta,"
    "dual_gamma,implied_vol,iv_error,underlying_timestamp,underlying_price"
).split(",")


def source_rows(
    shared: Path, days: list[dt.date], root: str = "SPXW", n_strikes: int = 4
) -> pd.DataFrame:
    """The served subset of the 2019 chains: per quote date, ``root``'s 3 nearest expiries and,
    per expiry, the ``n_strikes`` strikes nearest the snapshot's index level, calls and puts
    (24 rows/day with 4 strikes, fewer when an expiry lists fewer strikes)."""
    df = pd.read_parquet(shared / CHAINS)
    df = df[(df["root"] == root) & df["quotedate"].dt.date.isin(days)].copy()
    df["quotedate"] = df["quotedate"].dt.date
    df["expiration"] = df["expiration"].dt.date
    keep = []
    for _day, g in df.groupby("quotedate"):
        exps = sorted(g["expiration"].unique())[:3]
        for e in exps:
            ge = g[g["expiration"] == e]
            spot = float(ge["underlying_last"].iloc[0])
            strikes = sorted(ge["strike"].unique(), key=lambda k: (abs(k - spot), k))[:n_strikes]
            keep.append(ge[ge["strike"].isin(strikes)])
    out = pd.concat(keep).sort_values(["quotedate", "expiration", "strike", "type"])
    return out.reset_index(drop=True)


def minute_rows(shared: Path) -> pd.DataFrame:
    """The shipped Lean minute bid/ask bars (dates, times and expirations parsed)."""
    df = pd.read_csv(shared / "options" / "spx_spxw_spy_option_minute_quotes.csv.gz")
    df["date"] = pd.to_datetime(df["date"]).dt.date
    df["expiration"] = pd.to_datetime(df["expiration"]).dt.date
    df["time_et"] = pd.to_datetime(df["time_et"], format="%H:%M").dt.time
    return df


def index_bars(shared: Path, symbol: str = "SPX") -> pd.DataFrame:
    """Daily OHLC of ``symbol`` from the shipped index file (index: date)."""
    df = pd.read_csv(shared / INDEX)
    df = df[df["root"] == symbol].copy()
    df["date"] = pd.to_datetime(df["Date"]).dt.date
    return df.set_index("date")[["Open", "High", "Low", "Close", "Volume"]]


@dataclass
class Fault:
    """Answer matching requests with a fault.

    Parameters
    ----------
    kind : {'429', '500', 'timeout', 'truncated', 'bad_json', 'empty', 'half', 'redirect'}
        ``half``: a complete, valid CSV answer holding only the first half of the rows (a
        vendor's partial day).
    path : str
        Substring of the request path.
    query : dict
        Query values that must match exactly (e.g. ``{"start_date": "20190626"}``).
    times : int
        Matching requests that get the fault (then normal answers); -1 = always.
    retry_after : str
        ``Retry-After`` value sent with 429.
    location : str
        Target of ``redirect``.
    """

    kind: str
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    times: int = 1
    retry_after: str = "0"
    location: str = ""
    hits: int = 0


@dataclass
class Logged:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    host: str


class FakeServer:
    """A threaded HTTP server on 127.0.0.1:<free port>; subclasses implement :meth:`route`."""

    def __init__(self, timeout_sleep: float = 1.5) -> None:
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.delays: dict[str, float] = {}  # path substring -> seconds slept before answering
        self.timeout_sleep = timeout_sleep
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                outer._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client gave up
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_for(self, path_part: str, **query: str) -> list[Logged]:
        """Logged requests whose path contains ``path_part`` and whose query matches."""
        with self._lock:
            return [
                r
                for r in self.log
                if path_part in r.path and all(r.query.get(k) == v for k, v in query.items())
            ]

    def _fault(self, path: str, query: dict[str, str]) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.path in path and all(query.get(k) == v for k, v in f.query.items()):
                    if f.times == -1 or f.hits < f.times:
                        f.hits += 1
                        return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        u = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        with self._lock:
            self.log.append(Logged(u.path, query, dict(h.headers.items()), h.headers["Host"]))
        for part, secs in self.delays.items():
            if part in u.path:
                time.sleep(secs)
        fault = self._fault(u.path, query)
        if fault is not None and fault.kind not in ("empty", "half"):
            self._send_fault(h, fault, u.path, query)
            return
        empty = fault is not None and fault.kind == "empty"
        status, ctype, body, headers = self.route(u.path, query, empty=empty)
        if fault is not None and fault.kind == "half":  # a CSV day with half its rows
            lines = body.split(b"\r\n")[:-1]
            keep = lines[: 1 + (len(lines) - 1) // 2]
            body = b"\r\n".join(keep) + b"\r\n"
        self._send(h, status, ctype, body, headers)

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        ctype: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _send_fault(
        self, h: BaseHTTPRequestHandler, f: Fault, path: str, query: dict[str, str]
    ) -> None:
        if f.kind == "429":
            self._send(h, 429, "text/plain", b"Too Many Requests", {"Retry-After": f.retry_after})
        elif f.kind == "500":
            self._send(h, 500, "text/plain", b"Internal Server Error")
        elif f.kind == "timeout":
            time.sleep(self.timeout_sleep)
            h.close_connection = True
            try:
                self._send(h, 503, "text/plain", b"late")
            except OSError:
                pass
        elif f.kind == "redirect":
            self._send(h, 302, "text/plain", b"", {"Location": f.location})
        elif f.kind in ("truncated", "bad_json"):
            status, ctype, body, headers = self.route(path, query, empty=False)
            half = body[: max(1, len(body) // 2)]
            if f.kind == "bad_json":
                self._send(h, status, ctype, half, headers)
                return
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(half)
            h.wfile.flush()
            h.close_connection = True
        else:  # pragma: no cover - test typo
            raise AssertionError(f.kind)

    def route(
        self, path: str, query: dict[str, str], empty: bool
    ) -> tuple[int, str, bytes, dict[str, str]]:
        raise NotImplementedError


def _f(x: Any) -> str:
    """Exact text of a number (``repr`` round-trips a float); empty for NaN/None."""
    if x is None or (isinstance(x, float) and x != x):
        return ""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def _close_time(day: dt.date) -> str:
    return "13:00:00.000" if day == dt.date(2019, 7, 3) else "16:00:00.000"


class FakeThetaTerminal(FakeServer):
    """Theta Terminal v3 (``/v3/...``, CSV) serving :func:`source_rows`.

    ``page_rows``: when set, greeks-EOD answers are split into pages of that many rows linked
    by a ``Next-Page`` header (the v2 terminal's pagination).
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        bars: pd.DataFrame,
        page_rows: int | None = None,
        timeout_sleep: float = 1.5,
        minutes: pd.DataFrame | None = None,
    ) -> None:
        self.rows = rows
        self.bars = bars
        self.page_rows = page_rows
        self.minutes = minutes  # Lean minute bars (minute_rows) for /option/history/quote
        super().__init__(timeout_sleep)

    @staticmethod
    def _csv(header: list[str], lines: list[list[str]]) -> bytes:
        buf = io.StringIO()
        buf.write(",".join(header) + "\r\n")
        for ln in lines:
            buf.write(",".join(ln) + "\r\n")
        return buf.getvalue().encode()

    def route(
        self, path: str, query: dict[str, str], empty: bool
    ) -> tuple[int, str, bytes, dict[str, str]]:
        sym = query.get("symbol", "")
        mine = self.rows[self.rows["root"] == sym]
        if path == "/v3/option/list/expirations":
            exps = [] if empty else sorted(mine["expiration"].unique())
            return (
                200,
                "text/csv",
                self._csv(["symbol", "expiration"], [[sym, e.isoformat()] for e in exps]),
                {},
            )
        if path == "/v3/option/history/greeks/eod":
            lo = dt.datetime.strptime(query["start_date"], "%Y%m%d").date()
            hi = dt.datetime.strptime(query["end_date"], "%Y%m%d").date()
            sel = mine[(mine["quotedate"] >= lo) & (mine["quotedate"] <= hi)]
            lines = [] if empty else [self._eod_line(r) for r in sel.itertuples()]
            headers: dict[str, str] = {}
            if self.page_rows:
                page = int(query.get("_page", "0"))
                chunk = lines[page * self.page_rows : (page + 1) * self.page_rows]
                if (page + 1) * self.page_rows < len(lines):
                    q = "&".join(f"{k}={v}" for k, v in query.items() if k != "_page")
                    headers["Next-Page"] = f"{self.url}{path}?{q}&_page={page + 1}"
                lines = chunk
            return 200, "text/csv", self._csv(THETA_EOD_HEADER, lines), headers
        if path == "/v3/option/history/open_interest":
            day = dt.datetime.strptime(query["date"], "%Y%m%d").date()
            sel = mine[mine["quotedate"] == day]
            lines = (
                []
                if empty
                else [
                    [
                        r.root,
                        r.expiration.isoformat(),
                        f"{r.strike:.3f}",
                        r.type.upper(),
                        f"{day.isoformat()}T06:30:00.000",
                        str(int(r.openinterest)),
                    ]
                    for r in sel.itertuples()
                ]
            )
            header = ["symbol", "expiration", "strike", "right", "timestamp", "open_interest"]
            return 200, "text/csv", self._csv(header, lines), {}
        if path == "/v3/option/history/quote" and self.minutes is not None:
            day = dt.datetime.strptime(query["date"], "%Y%m%d").date()
            m = self.minutes
            sel = m[(m["root"] == sym) & (m["date"] == day)]
            header = [
                "symbol",
                "expiration",
                "strike",
                "right",
                "timestamp",
                "bid_size",
                "bid_exchange",
                "bid",
                "bid_condition",
                "ask_size",
                "ask_exchange",
                "ask",
                "ask_condition",
            ]
            lines = [] if empty else [self._quote_line(r) for r in sel.itertuples()]
            return 200, "text/csv", self._csv(header, lines), {}
        if path == "/v3/index/history/eod":
            lo = dt.datetime.strptime(query["start_date"], "%Y%m%d").date()
            hi = dt.datetime.strptime(query["end_date"], "%Y%m%d").date()
            b = self.bars[(self.bars.index >= lo) & (self.bars.index <= hi)]
            header = [
                "created",
                "last_trade",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "count",
                "bid_size",
                "bid_exchange",
                "bid",
                "bid_condition",
                "ask_size",
                "ask_exchange",
                "ask",
                "ask_condition",
            ]
            lines = (
                []
                if empty
                else [
                    [
                        f"{d.isoformat()}T17:15:00.000",
                        f"{d.isoformat()}T16:00:00.000",
                        _f(r.Open),
                        _f(r.High),
                        _f(r.Low),
                        _f(r.Close),
                        "0",
                        "0",
                        "0",
                        "0",
                        "0.00",
                        "0",
                        "0",
                        "0",
                        "0.00",
                        "0",
                    ]
                    for d, r in zip(b.index, b.itertuples(), strict=True)
                ]
            )
            return 200, "text/csv", self._csv(header, lines), {}
        return 404, "text/plain", b"No such endpoint", {}

    @staticmethod
    def _quote_line(r: Any) -> list[str]:
        """A Lean bar as Theta's interval quote: the last NBBO at the bar's end (start + 1 min);
        no bid (empty bid_close, size 0) is Theta's ``0.00`` bid with size 0."""
        stamp = (pd.Timestamp.combine(r.date, r.time_et) + pd.Timedelta(minutes=1)).isoformat()
        bid = "0.00" if r.bid_close != r.bid_close else _f(float(r.bid_close))
        return [
            r.root,
            r.expiration.isoformat(),
            f"{r.strike:.3f}",
            "CALL" if r.right == "C" else "PUT",
            stamp,
            _f(int(r.bid_size)),
            "",
            bid,
            "",
            _f(int(r.ask_size)),
            "",
            _f(float(r.ask_close)),
            "",
        ]

    @staticmethod
    def _eod_line(r: Any) -> list[str]:
        vals = dict.fromkeys(THETA_EOD_HEADER, "")
        vals.update(
            symbol=r.root,
            expiration=r.expiration.isoformat(),
            strike=f"{r.strike:.3f}",
            right=r.type.upper(),
            timestamp=f"{r.quotedate.isoformat()}T{_close_time(r.quotedate)}",
            close=_f(float(r.last)),
            volume=str(int(r.volume)),
            bid=_f(float(r.bid)),
            ask=_f(float(r.ask)),
            delta=_f(float(r.delta)),
            gamma=_f(float(r.gamma)),
            implied_vol=_f(float(r.impliedvol)),
            underlying_price=_f(float(r.underlying_last)),
        )
        return [vals[k] for k in THETA_EOD_HEADER]


def occ_ticker(root: str, exp: dt.date, right: str, strike: float) -> str:
    """Massive option ticker ``O:SPXW190628C02900000`` (strike x 1000, 8 digits)."""
    return f"O:{root}{exp:%y%m%d}{right[0].upper()}{round(strike * 1000):08d}"


class FakeMassive(FakeServer):
    """Massive REST (``/v3/reference/options/contracts``, ``/v3/quotes/{t}``, ``/v2/aggs``)
    serving :func:`source_rows`; ``page_limit`` caps contracts per page (``next_url`` with a
    cursor, on the real host as Massive sends it)."""

    def __init__(self, rows: pd.DataFrame, bars: pd.DataFrame, timeout_sleep: float = 1.5) -> None:
        self.rows = rows.copy()
        self.rows["ticker"] = [
            occ_ticker(r.root, r.expiration, r.type, r.strike) for r in rows.itertuples()
        ]
        self.bars = bars
        self.extra_quote_fields: dict[str, Any] = {}  # fields the official Quote model lacks
        super().__init__(timeout_sleep)

    @staticmethod
    def _json(obj: Any) -> tuple[int, str, bytes, dict[str, str]]:
        return 200, "application/json", json.dumps(obj).encode(), {}

    def route(
        self, path: str, query: dict[str, str], empty: bool
    ) -> tuple[int, str, bytes, dict[str, str]]:
        if path == "/v3/reference/options/contracts":
            day = dt.date.fromisoformat(query["as_of"])
            und = query["underlying_ticker"]
            sel = self.rows[(self.rows["quotedate"] == day) & (self.rows["underlying"] == und)]
            sel = sel[sel["expiration"] >= dt.date.fromisoformat(query["expiration_date.gte"])]
            limit = int(query.get("limit", "10"))
            start = int(query.get("cursor", "0"))
            chunk = [] if empty else list(sel.itertuples())[start : start + limit]
            results = [
                {
                    "cfi": "OCASPS",
                    "contract_type": r.type,
                    "exercise_style": "european",
                    "expiration_date": r.expiration.isoformat(),
                    "primary_exchange": "CBOE",
                    "shares_per_contract": 100,
                    "strike_price": float(r.strike),
                    "ticker": r.ticker,
                    "underlying_ticker": und,
                }
                for r in chunk
            ]
            body: dict[str, Any] = {"status": "OK", "request_id": "fake", "results": results}
            if not empty and start + limit < len(sel):
                body["next_url"] = (
                    f"https://api.massive.com/v3/reference/options/contracts?cursor={start + limit}"
                )
            return self._json(body)
        if path.startswith("/v3/quotes/"):
            ticker = path.rsplit("/", 1)[1]
            lte = int(query["timestamp.lte"])
            gte = int(query["timestamp.gte"])
            sel = self.rows[self.rows["ticker"] == ticker]
            results = []
            for r in sel.itertuples():
                snap = dt.time(12, 45) if r.quotedate == dt.date(2019, 7, 3) else dt.time(15, 45)
                ts = pd.Timestamp.combine(r.quotedate, snap).tz_localize(ET).value
                if gte <= ts <= lte and not empty:
                    results.append(
                        {
                            "ask_price": float(r.ask),
                            "bid_price": float(r.bid),
                            "sequence_number": 1,
                            "sip_timestamp": ts,
                            "participant_timestamp": ts,
                            **self.extra_quote_fields,
                        }
                    )
            results = sorted(results, key=lambda q: -q["sip_timestamp"])[:1]
            return self._json({"status": "OK", "request_id": "fake", "results": results})
        if path.startswith("/v2/aggs/ticker/"):
            parts = path.split("/")
            ticker, lo, hi = parts[4], parts[8], parts[9]
            lo_d, hi_d = dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)
            results = []
            if ticker.startswith("I:"):
                b = self.bars[(self.bars.index >= lo_d) & (self.bars.index <= hi_d)]
                for d, r in zip(b.index, b.itertuples(), strict=True):
                    t = pd.Timestamp(d).tz_localize(ET).value // 1_000_000
                    results.append({"o": r.Open, "h": r.High, "l": r.Low, "c": r.Close, "t": t})
            else:
                sel = self.rows[
                    (self.rows["ticker"] == ticker)
                    & (self.rows["quotedate"] >= lo_d)
                    & (self.rows["quotedate"] <= hi_d)
                    & (self.rows["volume"] > 0)
                ]
                for r in sel.itertuples():
                    t = pd.Timestamp(r.quotedate).tz_localize(ET).value // 1_000_000
                    last = float(r.last)
                    results.append(
                        {"o": last, "h": last, "l": last, "c": last, "v": int(r.volume), "t": t}
                    )
            if empty:
                results = []
            return self._json(
                {
                    "ticker": ticker,
                    "status": "OK",
                    "adjusted": False,
                    "queryCount": len(results),
                    "resultsCount": len(results),
                    "request_id": "fake",
                    "results": results,
                }
            )
        return 404, "application/json", b'{"status":"NOT_FOUND"}', {}
