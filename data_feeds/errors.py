"""Errors raised by volsuite when input data is missing or wrong.

Every error names the source (file, ``builtin:`` or ``yfinance:`` spec), and where it applies the
row (date) and the field, so that the one line a user sees says what to fix.
"""

from __future__ import annotations


class VolsuiteError(Exception):
    """Base class of errors a user can fix (bad config, bad data); the CLI prints them on one
    line."""


class DataSourceError(VolsuiteError):
    """A data source cannot be read: unknown spec, missing file, unrecognized layout, no network."""


class DataValidationError(VolsuiteError):
    """A data source was read but a row violates a rule.

    Parameters
    ----------
    source : str
        The data source spec (path, ``builtin:sp500``, ``yfinance:^GSPC``).
    message : str
        What rule was violated and what was expected.
    row : str, optional
        The offending row, usually its date as ``YYYY-MM-DD``.
    field : str, optional
        The offending column.
    """

    def __init__(
        self, source: str, message: str, *, row: str | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.row = row
        self.field = field
        where = source
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
