"""``QuoteUnavailable``: one error with a reason code for every ChainSnapshot query that has no
answer in the data (issue 12, point 6), on the real 2019 SPX chains.

Each case builds the situation from real quotes (an unlisted strike, an expiry with its puts
removed, a root not in the chain, ...) and checks the reason code, that the error is still a
``KeyError`` and a ``ValueError`` (callers written against the bare errors keep working) and a
``VolsuiteError``, and that its message is the plain one line (no ``KeyError`` quoting).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from data_feeds.chains import (
    QUOTE_UNAVAILABLE_REASONS,
    ChainSnapshot,
    QuoteUnavailable,
)
from data_feeds.contracts import OptionContract
from data_feeds.errors import VolsuiteError

EXP, ROOT = dt.date(2019, 6, 21), "SPXW"


@pytest.fixture(scope="module")
def snap(chain_store_2019):
    return chain_store_2019.snapshot("SPX", "2019-05-15", rate=0.024)


def without(snap, mask):
    return ChainSnapshot(
        snap.underlying, snap.quote_time, snap.underlying_price, snap.quotes[~mask],
        rate=snap.rate,
    )  # fmt: skip


def reason_of(call):
    with pytest.raises(QuoteUnavailable) as info:
        call()
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert isinstance(err, VolsuiteError)
    assert err.reason in QUOTE_UNAVAILABLE_REASONS
    assert str(err) == err.message and not str(err).startswith("'")
    assert "2019-05-15" in str(err)
    return err.reason


@pytest.mark.shared_data
def test_each_query_raises_quote_unavailable_with_its_reason(snap):
    q = snap.quotes
    this_expiry = (q["root"] == ROOT) & (pd.DatetimeIndex(q["expiration"]).date == EXP)
    unlisted = OptionContract(ROOT, EXP, 2851.5, "C")  # strikes are multiples of 5
    assert not snap.has(unlisted)
    assert reason_of(lambda: snap.row(unlisted)) == "not_quoted"
    assert reason_of(lambda: snap.quote(unlisted)) == "not_quoted"
    assert reason_of(lambda: snap.contract(ROOT, EXP, 2851.5, "C")) == "not_quoted"
    assert reason_of(lambda: snap.straddle(EXP, ROOT, strike=2851.5)) == "not_quoted"
    assert reason_of(lambda: snap.forward(dt.date(2019, 6, 22), ROOT)) == "no_quotes"
    assert reason_of(lambda: snap.with_implied_vols(dt.date(2019, 6, 22), ROOT)) == "no_quotes"
    assert reason_of(lambda: snap.nearest_expiry(30, root="SPY")) == "no_expiry"
    calls_only = without(snap, this_expiry & (q["right"] == "P"))
    assert reason_of(lambda: calls_only.forward(EXP, ROOT)) == "no_forward"
    assert reason_of(lambda: calls_only.atm_strike(EXP, ROOT)) == "no_forward"
    assert reason_of(lambda: calls_only.straddle(EXP, ROOT)) == "no_forward"
    assert reason_of(lambda: calls_only.strike_by_delta(EXP, ROOT, "P", -0.25)) == (
        "no_delta_strike"
    )
    # deltas of the real chain do not reach 0.999 on the call side within the listed strikes
    assert reason_of(lambda: snap.iv_at_delta(EXP, ROOT, "C", 0.999999)) == (
        "delta_not_bracketed"
    )
    # old-style callers still catch it
    for exc_type in (KeyError, ValueError):
        with pytest.raises(exc_type):
            calls_only.forward(EXP, ROOT)
    # the queries that have an answer are unchanged
    assert snap.atm_strike(EXP, ROOT) % 5 == 0
    assert 0.05 < snap.atm_iv(EXP, ROOT) < 0.5


def test_unknown_reason_is_rejected():
    with pytest.raises(ValueError, match="unknown QuoteUnavailable reason 'stale'"):
        QuoteUnavailable("stale", "x")
