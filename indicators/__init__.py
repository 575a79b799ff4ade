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
past_ols, PastOLS
    Past-only rolling OLS of ``y`` on ``x`` (or a past mean) and the residual z-score: the value
    at ``t`` is fitted on earlier points only (``skew_dislocation``, ``vol_of_vol``).
overnight_drift, overnight_returns, OvernightDrift
    Overnight GBM drift and volatility from the nights strictly before ``t`` and the
    standardized overnight move (``directional_overlay``).
front_curve, FrontCurve
    Per-snapshot OLS line of ATM IV on ``tte`` or ``sqrt(tte)`` through the expiries after the
    front, and the front's residual (``term_structure_slope``).
hedge_ratio_nb, formation_nb, PairFormation
    Pairs formation in force on every session: rolling OLS hedge ratio and exact OU fit of the
    formation spread on the window before it (``ou_pairs``).
rolling_skewness, RealizedSkewness
    Rolling bias-corrected sample skewness (``scipy.stats.skew(bias=False)``).
har_forecast, har_forecast_from_rv, har_fit, HarForecast, HarForecastIndicator
    HAR-RV one-day-ahead forecast (Corsi 2009); the value at ``t`` is the forecast of
    ``rv_t`` from bars up to ``t-1``.

Also: :mod:`indicators.features` (technical, volatility and regime features of ``ml_spreads``),
:mod:`indicators.vol_signals` (VVIX, IV rank/percentile, VRP z-score) and :mod:`indicators.jumps`
(realized and bipower variation, BNS jump test, Merton MLE).

See ``docs/indicators.md`` for formulas, alignment and references.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from indicators.cointegration import PairFormation, formation_nb, hedge_ratio_nb
    from indicators.drift import OvernightDrift, overnight_drift, overnight_returns
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
    from indicators.har import (
        HarFit,
        HarForecast,
        HarForecastIndicator,
        har_fit,
        har_forecast,
        har_forecast_from_rv,
    )
    from indicators.jumps import (
        JumpStats,
        MertonFit,
        merton_fit,
        merton_logpdf,
        session_jump_stats,
        session_labels,
    )
    from indicators.realized_vol import (
        DAILY_ESTIMATORS,
        ESTIMATORS,
        TRADING_DAYS,
        Estimator,
        RealizedVol,
        RealizedVolIndicator,
        daily_variance,
        realized_vol,
    )
    from indicators.regression import MODELS, PastOLS, past_ols, past_ols_nb
    from indicators.skewness import RealizedSkewness, rolling_skewness, rolling_skewness_nb
    from indicators.term_structure import CURVE_STATUS, CURVE_X, FrontCurve, front_curve
    from indicators.vol_signals import (
        IVRank,
        IVRankIndicator,
        PastZScore,
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

__all__ = [
    "CURVE_STATUS",
    "CURVE_X",
    "DAILY_ESTIMATORS",
    "ESTIMATORS",
    "MODELS",
    "REGIMES",
    "REGIME_FEATURE_COLUMNS",
    "TECHNICAL_FEATURE_COLUMNS",
    "TRADING_DAYS",
    "VOLATILITY_FEATURE_COLUMNS",
    "Bollinger",
    "Estimator",
    "FrontCurve",
    "GarchForecast",
    "HarFit",
    "HarForecast",
    "HarForecastIndicator",
    "IVRank",
    "IVRankIndicator",
    "JumpStats",
    "Macd",
    "MarketRegime",
    "MertonFit",
    "OvernightDrift",
    "PairFormation",
    "PastOLS",
    "PastZScore",
    "RealizedSkewness",
    "RealizedVol",
    "RealizedVolIndicator",
    "RegimeThresholds",
    "Rsi",
    "VRPIndicator",
    "VRPZScore",
    "VolOfVol",
    "VolOfVolIndicator",
    "VolRank",
    "bollinger",
    "daily_variance",
    "formation_nb",
    "front_curve",
    "garch_forecast",
    "har_fit",
    "har_forecast",
    "har_forecast_from_rv",
    "hedge_ratio_nb",
    "iv_rank_percentile",
    "macd",
    "market_features",
    "merton_fit",
    "merton_logpdf",
    "overnight_drift",
    "overnight_returns",
    "past_ols",
    "past_ols_nb",
    "past_zscore_nb",
    "realized_vol",
    "regime_features",
    "rolling_corr_nb",
    "rolling_skewness",
    "rolling_skewness_nb",
    "rsi",
    "session_jump_stats",
    "session_labels",
    "technical_features",
    "volatility_features",
    "vrp_signals",
    "vvix_signals",
]

lazy_package(__name__)
