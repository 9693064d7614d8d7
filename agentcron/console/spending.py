"""What jobs spent today and what their budgets have left, for a page of jobs, in one query.

"Today" is the calendar day of the job's own timezone (:func:`period_bounds`); a budget's
period is its own (day, week or month in the budget's timezone). Rows come from
:class:`~agentcron.spend.store.SpendStore`, never from SQL here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agentcron.jobs import JobSpec
from agentcron.spend.budgets import Budget, Spent
from agentcron.spend.periods import period_bounds
from agentcron.spend.report import usage_report
from agentcron.spend.store import SpendStore


@dataclass(frozen=True)
class JobSpend:
    """A job's spend since its local midnight, and its budget's state (None without one)."""

    cost_usd: float
    tokens: int
    budget: Budget | None = None
    budget_spent: Spent | None = None

    @property
    def left(self) -> str | None:
        """``$3.21 of $5 left per day`` (and/or tokens); None without a budget."""
        budget = self.budget
        if budget is None:
            return None
        if self.budget_spent is None:  # per window: no period to sum
            parts = [f"${budget.cost_usd:g}" if budget.cost_usd is not None else "",
                     f"{budget.tokens:,} tokens" if budget.tokens is not None else ""]
            return " and ".join(p for p in parts if p) + " per window"
        spent = self.budget_spent
        parts = []
        if budget.cost_usd is not None:
            parts.append(f"${max(budget.cost_usd - spent.cost_usd, 0.0):.2f} of ${budget.cost_usd:g}")
        if budget.tokens is not None:
            parts.append(f"{max(budget.tokens - spent.tokens, 0):,} of {budget.tokens:,} tokens")
        return " and ".join(parts) + f" left per {budget.per}"

    @property
    def exhausted(self) -> bool:
        return self.budget_spent is not None and self.budget_spent.exhausted


class SpendView:
    """Spend reads for the console's pages."""

    def __init__(self, engine: sa.Engine) -> None:
        self.store = SpendStore(engine)

    def today(self, specs: Sequence[JobSpec], now: datetime) -> dict[str, JobSpend]:
        """Each job's spend since local midnight and its budget's period spend (one query)."""
        groups: list[tuple[Sequence[str], datetime, datetime]] = []
        periods: dict[str, tuple[int, datetime, datetime]] = {}
        for spec in specs:
            start, end = period_bounds(now, "day", spec.job.tz)
            groups.append(((spec.name,), start, end))
        for spec in specs:
            budget = spec.budget
            if budget is None or budget.per == "window" or budget.name in periods:
                continue
            start, end = period_bounds(now, budget.per, budget.tz)
            periods[budget.name] = (len(groups), start, end)
            groups.append((spec.budget_jobs or (spec.name,), start, end))
        sums = self.store.spent_by_group(groups)
        found: dict[str, JobSpend] = {}
        for index, spec in enumerate(specs):
            cost, tokens = sums[index]
            spent = None
            if spec.budget is not None and spec.budget.name in periods:
                at, start, end = periods[spec.budget.name]
                spent = Spent(spec.budget, start, end, *sums[at])
            found[spec.name] = JobSpend(cost, tokens, spec.budget, spent)
        return found

    def of_run(self, job: str, window_start: datetime) -> dict[str, Any]:
        """Tokens and cost by model of every attempt of one window, and the total."""
        return usage_report(self.store.of_window(job, window_start))
