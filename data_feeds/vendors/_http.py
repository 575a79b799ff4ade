"""Retries with exponential backoff for the vendor clients (shared by Theta Data and Massive).

A request is *transient* when the vendor answers 429 (rate limit / queue full) or a 5xx, when it
times out, or when the body is cut short (a truncated CSV/JSON body, an incomplete read). Those
are retried up to :attr:`RetryPolicy.max_attempts` times; the wait before attempt ``k + 1`` is the
server's ``Retry-After`` (seconds, RFC 9110 section 10.2.3) when it sent one, else
``min(base_delay * 2**(k - 1), max_delay)`` seconds (exponential backoff, no jitter so a run is
reproducible). Anything else (4xx other than 429, a redirect, a parse error of a complete body)
is permanent and raised at once.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from data_feeds.errors import DataSourceError

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses retried (429 rate limit / queue overflow, 5xx server faults)."""


class TransientVendorError(DataSourceError):
    """A retryable failure (429, 5xx, timeout, truncated body).

    Parameters
    ----------
    message : str
        One line naming the host, path and what happened (never the API key).
    retry_after : float, optional
        Seconds the server asked to wait (``Retry-After``), when it sent the header.
    status : int, optional
        HTTP status, when there was a response.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class RetriesExhaustedError(DataSourceError):
    """Every attempt of a request failed transiently; the message names the last failure."""


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value.

    Parameters
    ----------
    value : str or None
        Delay in seconds (``"2"``) or an HTTP date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
    now : datetime.datetime, optional
        Current UTC time for the HTTP-date form (default: now).

    Returns
    -------
    float or None
        Seconds (>= 0), or None when absent or unparseable (the backoff schedule applies).
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass
class RetryPolicy:
    """How transient failures are retried.

    Parameters
    ----------
    max_attempts : int
        Attempts per request, first included (default 6).
    base_delay : float
        Seconds before the 2nd attempt when the server gave no ``Retry-After``; doubles each
        attempt (default 1.0).
    max_delay : float
        Cap of one wait, seconds (default 60; also caps a ``Retry-After``).
    sleep : callable
        ``sleep(seconds)``; tests pass a recorder.
    waits : list of float
        Every wait taken, in order (for reports and tests).
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` until it succeeds or fails permanently.

        Parameters
        ----------
        fn : callable
            Raises :class:`TransientVendorError` for a retryable failure.
        what : str
            Names the request in the final error (host and path, never a key).

        Returns
        -------
        The value of ``fn``.

        Raises
        ------
        RetriesExhaustedError
            ``max_attempts`` transient failures in a row.
        DataSourceError
            Any permanent failure raised by ``fn`` (passed through).
        """
        last: TransientVendorError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except TransientVendorError as exc:
                last = exc
                if attempt == self.max_attempts:
                    break
                wait = self.delay(attempt, exc.retry_after)
                self.waits.append(wait)
                self.sleep(wait)
        raise RetriesExhaustedError(
            f"{what}: gave up after {self.max_attempts} attempts; last: {last}"
        )
