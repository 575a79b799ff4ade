"""Volatility indicators for volsuite: one numba implementation, three faces.

Every signal input is a numba kernel (``*_nb``) exposed three ways:

* a Python API on an OHLC ``DataFrame`` (lowercase ``open``/``high``/``low``/``close``
  columns) returning an aligned ``Series``;
* a vectorbt ``IndicatorFactory`` indicator computing a whole parameter grid in one
  ``run`` call;
* a ``backtrader.Indicator`` for event-driven use (``once()`` for runonce mode, ``next()``
  for live/next mode), backed by the same kernel.

Contents
--------
realized_vol, daily_variance, ESTIMATORS, RealizedVol, RealizedVolIndicator
    Close-to-close, Parkinson (1980), Garman-Klass (1980), Rogers-Satchell (1991) and
    Yang-Zhang (2000) realized volatility, decimal, annualized with 252 days. The value at
    bar ``t`` uses bars up to ``t`` only.
har_forecast, har_forecast_from_rv, har_fit, HarForecast, HarForecastIndicator
    HAR-RV one-day-ahead forecast (Corsi 2009); the value at ``t`` is the forecast of
    ``rv_t`` from bars up to ``t-1``.

See ``docs/indicators.md`` for formulas, alignment and references.
"""

from indicators.har import (
    HarFit,
    HarForecast,
    HarForecastIndicator,
    har_fit,
    har_forecast,
    har_forecast_from_rv,
)
from indicators.realized_vol import (
    ESTIMATORS,
    TRADING_DAYS,
    RealizedVol,
    RealizedVolIndicator,
    daily_variance,
    realized_vol,
)

__all__ = [
    "ESTIMATORS",
    "TRADING_DAYS",
    "HarFit",
    "HarForecast",
    "HarForecastIndicator",
    "RealizedVol",
    "RealizedVolIndicator",
    "daily_variance",
    "har_fit",
    "har_forecast",
    "har_forecast_from_rv",
    "realized_vol",
]

# -- market features: technical, volatility, regime (indicators.features; docs/ml_spreads.md) ----
from indicators.features import (
    REGIME_FEATURE_COLUMNS,
    REGIMES,
    TECHNICAL_FEATURE_COLUMNS,
    VOLATILITY_FEATURE_COLUMNS,
    Bollinger,
    GarchForecast,
    Macd,
    MarketRegime,
    RegimeThresholds,
    Rsi,
    VolRank,
    bollinger,
    garch_forecast,
    macd,
    market_features,
    regime_features,
    rsi,
    technical_features,
    volatility_features,
)

__all__ += [
    "REGIMES",
    "REGIME_FEATURE_COLUMNS",
    "TECHNICAL_FEATURE_COLUMNS",
    "VOLATILITY_FEATURE_COLUMNS",
    "Bollinger",
    "GarchForecast",
    "Macd",
    "MarketRegime",
    "RegimeThresholds",
    "Rsi",
    "VolRank",
    "bollinger",
    "garch_forecast",
    "macd",
    "market_features",
    "regime_features",
    "rsi",
    "technical_features",
    "volatility_features",
]

# -- vol-of-vol, IV rank/percentile and VRP signals (issue 5) --------------------------------
from indicators.vol_signals import (  # noqa: E402
    IVRank,
    IVRankIndicator,
    VolOfVol,
    VolOfVolIndicator,
    VRPIndicator,
    VRPZScore,
    iv_rank_percentile,
    past_zscore_nb,
    rolling_corr_nb,
    vrp_signals,
    vvix_signals,
)

__all__ += [
    "IVRank",
    "IVRankIndicator",
    "VRPIndicator",
    "VRPZScore",
    "VolOfVol",
    "VolOfVolIndicator",
    "iv_rank_percentile",
    "past_zscore_nb",
    "rolling_corr_nb",
    "vrp_signals",
    "vvix_signals",
]

# -- jumps: RV, bipower variation, BNS (2004/2006) jump test, Merton MLE (issue 5) --------------
from indicators.jumps import (  # noqa: E402
    JumpStats,
    MertonFit,
    merton_fit,
    merton_logpdf,
    session_jump_stats,
    session_labels,
)

__all__ += [
    "JumpStats",
    "MertonFit",
    "merton_fit",
    "merton_logpdf",
    "session_jump_stats",
    "session_labels",
]
