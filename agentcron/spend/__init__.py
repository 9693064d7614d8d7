"""LLM spend: usage per run (tokens and cost by model), prices, and budget periods.

Budgets live in :mod:`agentcron.spend.budgets`, their checks in :mod:`agentcron.spend.gate`.
"""

from agentcron.spend.periods import PERIODS, period_bounds
from agentcron.spend.usage import ModelUsage, Price, UsageMeter, parse_prices, usage_of

__all__ = [
    "PERIODS",
    "ModelUsage",
    "Price",
    "UsageMeter",
    "parse_prices",
    "period_bounds",
    "usage_of",
]
