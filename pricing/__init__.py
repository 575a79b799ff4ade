"""Option pricing for volsuite: Black-Scholes-Merton kernels and QuantLib references.

* :mod:`pricing.black_scholes` -- numba-compiled Black-Scholes-Merton prices, Greeks and
  implied volatility (Jäckel's "Let's be rational" scheme) in the normalised Black form,
  accurate down to one-minute (0DTE) expiries. NumPy-facing functions broadcast their
  inputs; the ``*_nb`` kernels can be called from other nopython code.
* :mod:`pricing.quantlib_engines` -- QuantLib 1.44 wrappers used as the independent
  reference (analytic and Crank-Nicolson engines, ``blackFormula`` and its implied
  standard deviation).

Conventions: ``tte`` in years ACT/365 (one minute = 1/525600), continuous ``rate`` and
``div_yield`` as decimals, ``vol`` decimal annualised, ``right`` ``'C'``/``'P'``. See
``docs/pricing.md``.
"""

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
from pricing.quantlib_engines import (
    ql_black_price,
    ql_bs_greeks,
    ql_bs_price,
    ql_implied_vol,
    whole_days,
)

__all__ = [
    "CALL",
    "IV_ABOVE_UPPER_BOUND",
    "IV_BAD_INPUT",
    "IV_BELOW_INTRINSIC",
    "IV_NO_CONVERGENCE",
    "IV_OK",
    "IV_STATUS_DESCRIPTIONS",
    "PUT",
    "Greeks",
    "IVResult",
    "IVStatus",
    "bs_greeks",
    "bs_price",
    "implied_vol",
    "implied_vol_status",
    "parse_right",
    "ql_black_price",
    "ql_bs_greeks",
    "ql_bs_price",
    "ql_implied_vol",
    "straddle_price",
    "whole_days",
]

# --- SABR, Heston, Merton (issue 4, part C) ---
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
from pricing.merton import merton_price, ql_bates_merton_price, ql_merton_price
from pricing.sabr import SabrFit, calibrate_sabr, sabr_atm_alpha, sabr_implied_vol

__all__ += [
    "DEFAULT_HESTON_BOUNDS",
    "HestonFit",
    "HestonParams",
    "SabrFit",
    "calibrate_heston",
    "calibrate_sabr",
    "heston_cf",
    "heston_implied_vol",
    "heston_price",
    "heston_price_and_gradient",
    "merton_price",
    "ql_bates_merton_price",
    "ql_heston_price",
    "ql_merton_price",
    "sabr_atm_alpha",
    "sabr_implied_vol",
]

# -- OU spreads: exact MLE, Leung-Li optimal stopping, Bertram thresholds (issue 6, ou_pairs) --
from pricing.ou import (  # noqa: E402
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

__all__ += [
    "BertramThresholds",
    "LeungLiLevels",
    "OUFit",
    "bertram_return",
    "bertram_thresholds",
    "bertram_trade_length",
    "fit_ou",
    "leung_li_F",
    "leung_li_G",
    "leung_li_levels",
    "ou_loglik",
    "simulate_ou",
]

# -- implied vols at chain scale, put-call-parity forwards (issue 4, part A) ------------------
from pricing.forwards import (  # noqa: E402
    PARITY_FORWARD_COLUMNS,
    parity_forwards,
    parity_pairs,
)
from pricing.iv_chain import (  # noqa: E402
    VEGA_NEGLIGIBLE_RATIO,
    implied_vol_chain,
    implied_vol_condition,
    implied_vols_from_quotes,
)

__all__ += [
    "PARITY_FORWARD_COLUMNS",
    "VEGA_NEGLIGIBLE_RATIO",
    "implied_vol_chain",
    "implied_vol_condition",
    "implied_vols_from_quotes",
    "parity_forwards",
    "parity_pairs",
]

# -- SVI / SSVI surfaces, static-arbitrage checks, term structure (issue 4, part B) -----------
from pricing.arbitrage import (  # noqa: E402
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
from pricing.ssvi import (  # noqa: E402
    SSVIFit,
    SSVIParams,
    fit_ssvi,
    ssvi_to_svi,
    ssvi_total_variance,
)
from pricing.svi import (  # noqa: E402
    SVIFit,
    SVIParams,
    fit_svi,
    fit_svi_slices,
    svi_derivatives,
    svi_implied_vol,
    svi_total_variance,
)
from pricing.term_structure import PowerLawFit, atm_vol_at, fit_power_law  # noqa: E402

__all__ += [
    "ArbitrageReport",
    "PowerLawFit",
    "SSVIFit",
    "SSVIParams",
    "SVIFit",
    "SVIParams",
    "SVISurfaceFit",
    "atm_vol_at",
    "butterfly_violations",
    "calendar_violations",
    "check_surface",
    "check_svi_surface",
    "fit_power_law",
    "fit_ssvi",
    "fit_svi",
    "fit_svi_slices",
    "fit_svi_surface",
    "g_function",
    "ssvi_to_svi",
    "ssvi_total_variance",
    "svi_derivatives",
    "svi_g",
    "svi_implied_vol",
    "svi_total_variance",
]
