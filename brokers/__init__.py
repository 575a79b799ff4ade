"""The options-aware backtest broker and its cost model.

Public API
----------
OptionsBroker
    backtrader ``BackBroker`` with a book of option legs, bid/ask fills and cash settlement.
OptionCostModel
    Fill price inside the spread and per-contract commission.
"""

from brokers.costs import OptionCostModel
from brokers.options_broker import OptionFill, OptionPosition, OptionsBroker, OptionSettlement

__all__ = ["OptionCostModel", "OptionFill", "OptionPosition", "OptionSettlement", "OptionsBroker"]
