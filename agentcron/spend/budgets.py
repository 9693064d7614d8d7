"""Budgets: how much a job (or a named group of jobs) may spend per period.

``Job(..., budget={"cost_usd": 5.0, "per": "day"})`` or ``{"tokens": 2_000_000, "per":
"month"}`` (both limits may be given), or a name: ``Job(..., budget="openai-prod")`` with
``BUDGETS = [Budget("openai-prod", cost_usd=50, per="day")]`` in the schedule file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from agentcron.context import BudgetExceeded
from agentcron.errors import ConfigError, Problem
from agentcron.spend.periods import PERIODS
from agentcron.windows import is_job_name

__all__ = ["Budget", "BudgetExceeded", "Spent"]


@dataclass(frozen=True)
class Budget:
    """A spending limit per period: USD and/or tokens. ``tz`` places the period's midnight.

    ``hard=True`` makes ``ctx.usage`` raise :class:`BudgetExceeded` once the budget is crossed
    during a run (every budget sets ``ctx.cancel_requested`` then).
    """

    name: str
    cost_usd: float | None = None
    tokens: int | None = None
    per: str = "day"
    tz: str = "UTC"
    hard: bool = False


@dataclass(frozen=True)
class Spent:
    """What a budget's jobs spent in one period, and where that period ends."""

    budget: Budget
    start: datetime
    end: datetime
    cost_usd: float
    tokens: int

    @property
    def exhausted(self) -> bool:
        b = self.budget
        return ((b.cost_usd is not None and self.cost_usd >= b.cost_usd)
                or (b.tokens is not None and self.tokens >= b.tokens))  # fmt: skip

    def fraction(self) -> float:
        """The larger of cost/limit and tokens/limit (1.0 = spent)."""
        parts = [0.0]
        if self.budget.cost_usd:
            parts.append(self.cost_usd / self.budget.cost_usd)
        if self.budget.tokens:
            parts.append(self.tokens / self.budget.tokens)
        return max(parts)

    def describe(self) -> str:
        b = self.budget
        parts = []
        if b.cost_usd is not None:
            parts.append(f"${self.cost_usd:.4f} of ${b.cost_usd:g}")
        if b.tokens is not None:
            parts.append(f"{self.tokens} of {b.tokens} tokens")
        resets = "with the next window" if b.per == "window" else \
            f"resets {self.end:%Y-%m-%dT%H:%M:%SZ}"
        return f"budget {b.name!r} spent: {', '.join(parts)} per {b.per}; {resets}"


def check_budget(budget: Budget, inline: bool = False) -> Budget:
    """``budget`` if valid; a ConfigError naming the wrong field otherwise."""
    from agentcron.instants import get_timezone

    def bad(name: str, value: object, reason: str) -> ConfigError:
        return ConfigError([Problem(None, f"budget.{name}", repr(value), reason)])

    if not inline and (not isinstance(budget.name, str) or not is_job_name(budget.name)):
        raise bad("name", budget.name, "1-128 letters, digits, '_', '.', '-'")
    if budget.per not in PERIODS:
        raise bad("per", budget.per, f"one of {', '.join(PERIODS)}")
    if budget.cost_usd is None and budget.tokens is None:
        raise bad("cost_usd", None, "give cost_usd and/or tokens")
    cost = budget.cost_usd
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float)
                             or not math.isfinite(cost) or cost < 0):  # fmt: skip
        raise bad("cost_usd", cost, "a finite number >= 0")
    if budget.tokens is not None and (isinstance(budget.tokens, bool)
                                      or not isinstance(budget.tokens, int) or budget.tokens < 0):
        raise bad("tokens", budget.tokens, "a whole number >= 0")
    if not isinstance(budget.hard, bool):
        raise bad("hard", budget.hard, "True or False")
    try:
        get_timezone(budget.tz)
    except ConfigError as exc:
        raise bad("tz", budget.tz, "unknown timezone") from exc
    return budget


def job_budget(job: str, value: object, tz: str, named: Mapping[str, Budget]) -> Budget | None:
    """The budget of a job's ``budget=`` field: None, a name from BUDGETS, or a dict."""
    if value is None:
        return None
    if isinstance(value, str):
        found = named.get(value)
        if found is None:
            known = ", ".join(sorted(named)) or "none declared"
            raise ConfigError([Problem(None, "budget", value, f"no BUDGETS entry of that name "
                                                              f"({known})")])
        return found
    if isinstance(value, Budget):  # a Job is data (it is stored as JSON): refer to it by name
        raise ConfigError([Problem(None, "budget", value.name,
                                   "declare it in BUDGETS and give its name: budget="
                                   f"{value.name!r}")])
    if not isinstance(value, Mapping) or set(value) - {"cost_usd", "tokens", "per", "hard"}:
        raise ConfigError([Problem(None, "budget", repr(value)[:80],
                                   "a budget name or {'cost_usd'|'tokens': n, 'per': ...}")])
    return check_budget(Budget(f"job:{job}", value.get("cost_usd"), value.get("tokens"),
                               value.get("per", "day"), tz, value.get("hard", False)),
                        inline=True)


def named_budgets(values: Sequence[object]) -> dict[str, Budget]:
    """BUDGETS of a schedule file by name; every problem in one ConfigError."""
    problems: list[Problem] = []
    found: dict[str, Budget] = {}
    for value in values:
        if not isinstance(value, Budget):
            problems.append(Problem(None, "BUDGETS", repr(value)[:80], "not a Budget(...)"))
            continue
        try:
            check_budget(value)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if value.name in found:
            problems.append(Problem(None, "BUDGETS", value.name, "duplicate budget name"))
        found[value.name] = value
    if problems:
        raise ConfigError(problems)
    return found
