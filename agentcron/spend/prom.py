"""Prometheus series of spend and fleet-wide limits, fed by the guard's budget and limit gates.

| series | type | labels |
|---|---|---|
| ``agentcron_llm_tokens_total`` | counter | job, model, kind (input, output) |
| ``agentcron_llm_cost_usd_total`` | counter | job, model |
| ``agentcron_budget_used_ratio`` (spent / limit, after the last run) | gauge | budget |
| ``agentcron_budget_left_usd`` / ``agentcron_budget_left_tokens`` | gauge | budget |
| ``agentcron_budget_skips_total`` (windows skipped by a spent budget) | counter | budget, job |
| ``agentcron_limit_waiting`` / ``agentcron_limit_held`` (now, this process) | gauge | limit |
| ``agentcron_limit_granted_total`` / ``agentcron_limit_refused_total`` | counter | limit |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from agentcron.spend.budgets import Spent
from agentcron.spend.usage import ModelUsage

if TYPE_CHECKING:
    from agentcron.alerts import Alerter


class SpendMetrics:
    """The series above, on one registry (the default unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        gauge: dict[str, Any] = {"multiprocess_mode": "livemax", **kw}
        self.tokens = Counter("agentcron_llm_tokens", "LLM tokens reported by runs.",
                              ["job", "model", "kind"], **kw)  # fmt: skip
        self.cost = Counter("agentcron_llm_cost_usd", "LLM cost (USD) reported by runs.",
                            ["job", "model"], **kw)  # fmt: skip
        self.used = Gauge("agentcron_budget_used_ratio", "Budget spent / limit this period.",
                          ["budget"], **gauge)  # fmt: skip
        self.left_usd = Gauge("agentcron_budget_left_usd", "USD left in the budget's period.",
                              ["budget"], **gauge)  # fmt: skip
        self.left_tokens = Gauge("agentcron_budget_left_tokens", "Tokens left this period.",
                                 ["budget"], **gauge)  # fmt: skip
        self.skips = Counter("agentcron_budget_skips", "Windows skipped by a spent budget.",
                             ["budget", "job"], **kw)  # fmt: skip
        live: dict[str, Any] = {"multiprocess_mode": "livesum", **kw}
        self.waiting = Gauge("agentcron_limit_waiting", "Holds waiting for a limit now.",
                             ["limit"], **live)  # fmt: skip
        self.held = Gauge("agentcron_limit_held", "Holds of a limit now.", ["limit"], **live)
        self.granted = Counter("agentcron_limit_granted", "Holds granted.", ["limit"], **kw)
        self.refused = Counter("agentcron_limit_refused", "Holds given up after their wait.",
                               ["limit"], **kw)  # fmt: skip

    def usage(self, job: str, usage: Mapping[str, ModelUsage], after: Spent | None) -> None:
        """One attempt's usage (a ``BudgetGate.on_usage`` hook)."""
        for model, used in usage.items():
            self.tokens.labels(job, model, "input").inc(used.input_tokens)
            self.tokens.labels(job, model, "output").inc(used.output_tokens)
            self.cost.labels(job, model).inc(used.cost_usd)
        if after is not None:
            self.budget(after)

    def budget(self, spent: Spent) -> None:
        name = spent.budget.name
        self.used.labels(name).set(spent.fraction())
        if spent.budget.cost_usd is not None:
            self.left_usd.labels(name).set(max(spent.budget.cost_usd - spent.cost_usd, 0.0))
        if spent.budget.tokens is not None:
            self.left_tokens.labels(name).set(max(spent.budget.tokens - spent.tokens, 0))

    def limit_event(self, limit: str, event: str, delta: int) -> None:
        """A ``LimitGate.observe`` hook: waiting/held move by ``delta``; granted/refused count."""
        if event == "waiting":
            self.waiting.labels(limit).inc(delta)
        elif event == "held":
            self.held.labels(limit).inc(delta)
        elif event == "granted":
            self.granted.labels(limit).inc(delta)
        elif event == "refused":
            self.refused.labels(limit).inc(delta)


_default: SpendMetrics | None = None


def install(guard: Any, alerter: Alerter | None) -> SpendMetrics:
    """Feed the default registry's spend and limit series from ``guard``; alert a spent
    budget (once per period, fleet-wide) through ``alerter``."""
    global _default
    if _default is None:
        _default = SpendMetrics()
    metrics = _default

    def exhausted(spent: Spent, job: str) -> None:
        metrics.budget(spent)
        if alerter is not None:
            from agentcron.alerts import Alert

            alerter.alert(Alert(job, spent.budget.name, "skipped", spent.describe()))

    guard.spend.on_usage.append(metrics.usage)
    guard.spend.on_exhausted.append(exhausted)
    guard.spend.on_skip.append(lambda spent, job: metrics.skips.labels(spent.budget.name, job).inc())
    guard.limits.observe = metrics.limit_event
    return metrics
