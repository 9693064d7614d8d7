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
        """Each job's spend since local midnight and its budget's period spend: one query with
        one part per distinct period (the page's timezones and budgets), never one per row."""
        ranges: dict[tuple[datetime, datetime], set[str]] = {}
        days: dict[str, tuple[datetime, datetime]] = {}
        budgets: dict[str, tuple[tuple[datetime, datetime], tuple[str, ...]]] = {}
        for spec in specs:
            days[spec.name] = period_bounds(now, "day", spec.job.tz)
            ranges.setdefault(days[spec.name], set()).add(spec.name)
            budget = spec.budget
            if budget is not None and budget.per != "window" and budget.name not in budgets:
                jobs = spec.budget_jobs or (spec.name,)
                budgets[budget.name] = (period_bounds(now, budget.per, budget.tz), jobs)
                ranges.setdefault(budgets[budget.name][0], set()).update(jobs)
        keys = list(ranges)
        sums = dict(zip(keys, self.store.spent_by_job([(sorted(ranges[k]), *k) for k in keys]),
                        strict=True))  # fmt: skip
        found: dict[str, JobSpend] = {}
        for spec in specs:
            cost, tokens = sums[days[spec.name]].get(spec.name, (0.0, 0))
            spent = None
            if spec.budget is not None and spec.budget.name in budgets:
                (start, end), jobs = budgets[spec.budget.name]
                rows = [sums[(start, end)].get(job, (0.0, 0)) for job in jobs]
                spent = Spent(spec.budget, start, end, sum(r[0] for r in rows),
                              sum(r[1] for r in rows))  # fmt: skip
            found[spec.name] = JobSpend(cost, tokens, spec.budget, spent)
        return found

    def of_run(self, job: str, window_start: datetime) -> dict[str, Any]:
        """Tokens and cost by model of every attempt of one window, and the total."""
        return usage_report(self.store.of_window(job, window_start))
