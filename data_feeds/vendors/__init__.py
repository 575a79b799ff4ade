"""Market-data vendors that fill the chain store: Theta Data (v3 terminal) and Massive.

* :mod:`data_feeds.vendors.thetadata` -- :class:`ThetaTerminalClient` (local REST, CSV);
* :mod:`data_feeds.vendors.massive_client` -- :class:`MassiveChainClient` (official ``massive``
  client) and :func:`straddle_ohlc` (design doc 003);
* :mod:`data_feeds.vendors.jobs` -- :func:`backfill_chains` / :func:`backfill_underlying`
  (cache, retries, resume, one transaction per quote date through the ingest validation);
* :mod:`data_feeds.vendors.cache` -- raw responses as parquet.

Heavy imports (``massive``) happen inside the client constructors.
"""

from data_feeds.vendors._http import RetriesExhaustedError, RetryPolicy, TransientVendorError
from data_feeds.vendors.cache import RawCache

__all__ = ["RawCache", "RetriesExhaustedError", "RetryPolicy", "TransientVendorError"]
