"""Option pricing for volsuite: Black-Scholes-Merton kernels and QuantLib references.

* :mod:`pricing.black_scholes` -- numba-compiled Black-Scholes-Merton prices, Greeks and
  implied volatility (Jäckel's "Let's be rational" scheme) in the normalised Black form,
  accurate down to one-minute (0DTE) expiries. NumPy-facing functions broadcast their
  inputs; the ``*_nb`` kernels can be called from other nopython code.
* :mod:`pricing.quantlib_engines` -- QuantLib 1.44 wrappers used as the independent
  reference (analytic and Crank-Nicolson engines, ``blackFormula`` and its implied
  standard deviation).
* :mod:`pricing.iv_chain` -- ``implied_vol_chain``: a whole chain in one parallel numba call.
* :mod:`pricing.forwards` -- forwards and implied carry per expiry from put-call parity.
* :mod:`pricing.svi`, :mod:`pricing.ssvi`, :mod:`pricing.arbitrage`,
  :mod:`pricing.term_structure` -- SVI / SSVI smiles, static-arbitrage checks, term structure.
* :mod:`pricing.sabr`, :mod:`pricing.heston`, :mod:`pricing.merton` -- SABR, Heston and Merton
  models with calibration and QuantLib references.
* :mod:`pricing.ou` -- Ornstein-Uhlenbeck MLE and optimal trading levels (Leung-Li, Bertram).

Conventions: ``tte`` in years ACT/365 (one minute = 1/525600), continuous ``rate`` and
``div_yield`` as decimals, ``vol`` decimal annualised, ``right`` ``'C'``/``'P'``. See
``docs/pricing.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_feeds.lazy_exports import lazy_package

if TYPE_CHECKING:
    from pricing.arbitrage import (
        ArbitrageReport,
        SVISurfaceFit,
        butterfly_violations,
        calendar_violations,
        check_surface,
        check_svi_surface,
        fit_svi_surface,
        g_function,
        svi_g,
    )
    from pricing.black_scholes import (
        CALL,
        IV_ABOVE_UPPER_BOUND,
        IV_BAD_INPUT,
        IV_BELOW_INTRINSIC,
        IV_NO_CONVERGENCE,
        IV_OK,
        IV_STATUS_DESCRIPTIONS,
        PUT,
        Greeks,
        IVResult,
        IVStatus,
        bs_greeks,
        bs_price,
        implied_vol,
        implied_vol_status,
        parse_right,
        straddle_price,
    )
    from pricing.forwards import (
        FALLBACK_MIN_PAIRS,
        PARITY_FORWARD_COLUMNS,
        ForwardEstimate,
        carry_forward,
        forward_estimate,
        nearest_parity_forwards,
        parity_forwards,
        parity_pairs,
    )
    from pricing.heston import (
        DEFAULT_HESTON_BOUNDS,
        HestonFit,
        HestonParams,
        calibrate_heston,
        heston_cf,
        heston_implied_vol,
        heston_price,
        heston_price_and_gradient,
        ql_heston_price,
    )
    from pricing.iv_chain import (
        VEGA_NEGLIGIBLE_RATIO,
        implied_vol_chain,
        implied_vol_condition,
        implied_vols_from_quotes,
    )
    from pricing.merton import (
        merton_price,
        ql_bates_merton_price,
        ql_merton_price,
    )
    from pricing.ou import (
        BertramThresholds,
        LeungLiLevels,
        OUFit,
        bertram_return,
        bertram_thresholds,
        bertram_trade_length,
        fit_ou,
        leung_li_F,
        leung_li_G,
        leung_li_levels,
        ou_loglik,
        simulate_ou,
    )
    from pricing.quantlib_engines import (
        ql_black_price,
        ql_bs_greeks,
        ql_bs_price,
        ql_implied_vol,
        whole_days,
    )
    from pricing.sabr import (
        SabrFit,
        calibrate_sabr,
        sabr_atm_alpha,
        sabr_implied_vol,
    )
    from pricing.ssvi import (
        SSVIFit,
        SSVIParams,
        fit_ssvi,
        ssvi_to_svi,
        ssvi_total_variance,
    )
    from pricing.svi import (
        SVIFit,
        SVIParams,
        fit_svi,
        fit_svi_slices,
        svi_derivatives,
        svi_implied_vol,
        svi_total_variance,
    )
    from pricing.term_structure import (
        PowerLawFit,
        atm_vol_at,
        fit_power_law,
    )

__all__ = [
    "CALL",
    "DEFAULT_HESTON_BOUNDS",
    "FALLBACK_MIN_PAIRS",
    "IV_ABOVE_UPPER_BOUND",
    "IV_BAD_INPUT",
    "IV_BELOW_INTRINSIC",
    "IV_NO_CONVERGENCE",
    "IV_OK",
    "IV_STATUS_DESCRIPTIONS",
    "PARITY_FORWARD_COLUMNS",
    "PUT",
    "VEGA_NEGLIGIBLE_RATIO",
    "ArbitrageReport",
    "BertramThresholds",
    "ForwardEstimate",
    "Greeks",
    "HestonFit",
    "HestonParams",
    "IVResult",
    "IVStatus",
    "LeungLiLevels",
    "OUFit",
    "PowerLawFit",
    "SSVIFit",
    "SSVIParams",
    "SVIFit",
    "SVIParams",
    "SVISurfaceFit",
    "SabrFit",
    "atm_vol_at",
    "bertram_return",
    "bertram_thresholds",
    "bertram_trade_length",
    "bs_greeks",
    "bs_price",
    "butterfly_violations",
    "calendar_violations",
    "calibrate_heston",
    "calibrate_sabr",
    "carry_forward",
    "check_surface",
    "check_svi_surface",
    "fit_ou",
    "fit_power_law",
    "fit_ssvi",
    "fit_svi",
    "fit_svi_slices",
    "fit_svi_surface",
    "forward_estimate",
    "g_function",
    "heston_cf",
    "heston_implied_vol",
    "heston_price",
    "heston_price_and_gradient",
    "implied_vol",
    "implied_vol_chain",
    "implied_vol_condition",
    "implied_vol_status",
    "implied_vols_from_quotes",
    "leung_li_F",
    "leung_li_G",
    "leung_li_levels",
    "merton_price",
    "nearest_parity_forwards",
    "ou_loglik",
    "parity_forwards",
    "parity_pairs",
    "parse_right",
    "ql_bates_merton_price",
    "ql_black_price",
    "ql_bs_greeks",
    "ql_bs_price",
    "ql_heston_price",
    "ql_implied_vol",
    "ql_merton_price",
    "sabr_atm_alpha",
    "sabr_implied_vol",
    "simulate_ou",
    "ssvi_to_svi",
    "ssvi_total_variance",
    "straddle_price",
    "svi_derivatives",
    "svi_g",
    "svi_implied_vol",
    "svi_total_variance",
    "whole_days",
]

lazy_package(__name__)
