"""The budget gate: a window whose budget is spent is not run; a run that crosses it is told.

Before a run (under the job's overlap lease, before the claim) the gate sums what the budget's
jobs recorded in the current period. Spent: the window ends ``skipped`` with a reason naming the
budget, the amount and when it resets, and the first such skip of a budget period (fleet-wide,
by the ``budget_alerts`` primary key) is alerted. During the run every ``ctx.usage`` compares
the period's spend at the start plus this run's own: once over, ``ctx.cancel_requested`` turns
True and, for a ``hard`` budget, ``ctx.usage`` raises :class:`BudgetExceeded`. What each attempt
spent is written before its completion (and before the lease is released), so the next run of
the job sees it: runs that the job's overlap lease serialises are counted exactly; runs that
overlap (``overlap="allow"``, or jobs sharing a budget) may together overshoot it by what the
concurrent runs spend.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from agentcron.clock import Clock
from agentcron.context import BudgetExceeded, RunContext
from agentcron.jobs import JobSpec
from agentcron.spend.budgets import Budget, Spent
from agentcron.spend.periods import period_bounds
from agentcron.spend.store import SpendStore
from agentcron.spend.usage import ModelUsage, Price, UsageMeter

log = logging.getLogger("agentcron.spend")
# (what was spent, the job whose window it refused); called once per budget period, fleet-wide.
ExhaustedHook = Callable[[Spent, str], None]
# (job, usage by model of one attempt, the budget's spend after it or None); every attempt.
UsageHook = Callable[[str, Mapping[str, ModelUsage], "Spent | None"], None]


class BudgetGate:
    """Budget checks and usage records for one process's guard."""

    def __init__(self, store: SpendStore, clock: Clock, prices: Mapping[str, Price]) -> None:
        self.store = store
        self.clock = clock
        self.prices = prices
        self.on_exhausted: list[ExhaustedHook] = []
        self.on_usage: list[UsageHook] = []
        self.on_skip: list[ExhaustedHook] = []  # every window a spent budget skips
        self._plain = functools.partial(UsageMeter, prices)  # one factory for runs without budget

    def spent(self, budget: Budget, jobs: tuple[str, ...], window_start: datetime) -> Spent:
        """What ``jobs`` spent in the budget's current period (blocking)."""
        now = self.clock.now()
        if budget.per == "window":
            cost, tokens = self.store.spent(jobs, now, now, window_start=window_start)
            return Spent(budget, window_start, window_start, cost, tokens)
        start, end = period_bounds(now, budget.per, budget.tz)
        cost, tokens = self.store.spent(jobs, start, end)
        return Spent(budget, start, end, cost, tokens)

    def check(self, spec: JobSpec, window_start: datetime) -> tuple[Spent | None, str | None]:
        """``(spend so far, None)``, or ``(spend, reason)`` when the budget is spent (blocking)."""
        if spec.budget is None:
            return None, None
        spent = self.spent(spec.budget, spec.budget_jobs or (spec.name,), window_start)
        if not spent.exhausted:
            return spent, None
        reason = spent.describe()
        hooks = list(self.on_skip)
        if self.store.mark_alerted(spec.budget.name, spent.start, self.clock.now()):
            hooks += self.on_exhausted
        for hook in hooks:
            try:
                hook(spent, spec.name)
            except Exception as exc:  # an alert must never fail a run
                log.warning("budget hook failed: %s", type(exc).__name__)
        return spent, reason

    def meter_for(self, ctx: RunContext, spent: Spent | None) -> Callable[[], UsageMeter]:
        """The factory of ``ctx``'s meter: priced, and watching the budget when there is one."""
        if spent is None:
            return self._plain

        def watch(meter: UsageMeter) -> None:
            now = Spent(spent.budget, spent.start, spent.end, spent.cost_usd + meter.cost_usd,
                        spent.tokens + meter.tokens)  # fmt: skip
            if now.exhausted:
                reason = now.describe()
                ctx.request_cancel(reason)
                if spent.budget.hard:
                    raise BudgetExceeded(reason)

        return lambda: UsageMeter(self.prices, watch)

    def record(self, spec: JobSpec, ctx: RunContext, spent: Spent | None) -> None:
        """Write what this attempt spent (nothing if it reported nothing); blocking. The meter
        keeps the run's total across attempts, so a budget watches every attempt's spend."""
        meter: UsageMeter | None = ctx.__dict__.get("meter")  # made only if the agent used it
        usage = meter.unrecorded() if meter is not None else {}
        if meter is None or not usage:
            return
        self.store.record(ctx.job, ctx.window_start, ctx.window_key, ctx.attempt, usage,
                          self.clock.now())  # fmt: skip
        after = None if spent is None else Spent(
            spent.budget, spent.start, spent.end, spent.cost_usd + meter.cost_usd,
            spent.tokens + meter.tokens)  # fmt: skip
        for hook in self.on_usage:
            try:
                hook(spec.name, usage, after)
            except Exception as exc:
                log.warning("usage hook failed: %s", type(exc).__name__)


def open_gate(engine: object, clock: Clock, prices_json: str) -> BudgetGate:
    """The gate on the ledger's engine with the price table of ``AGENTCRON_PRICES``."""
    from sqlalchemy import Engine

    from agentcron.errors import ConfigError, Problem
    from agentcron.spend.usage import parse_prices

    assert isinstance(engine, Engine)
    try:
        prices = parse_prices(prices_json)
    except ValueError as exc:
        raise ConfigError([Problem(None, "AGENTCRON_PRICES", "(see reason)", str(exc))]) from exc
    return BudgetGate(SpendStore(engine), clock, prices)
