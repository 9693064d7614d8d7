"""Spend in the SQL ledger: usage rows per attempt and model, sums per budget period, and the
once-per-period alert marks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from agentcron.ledger.engine import begin_read
from agentcron.ledger.spend_models import BudgetAlertRow, RunUsageRow
from agentcron.spend.usage import ModelUsage

USAGE: sa.Table = RunUsageRow.__table__  # type: ignore[assignment]
ALERTS: sa.Table = BudgetAlertRow.__table__  # type: ignore[assignment]


class SpendStore:
    """Reads and writes of spend on the ledger's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, job: str, window_start: datetime, window_key: str, attempt: int,
               usage: Mapping[str, ModelUsage], now: datetime) -> None:  # fmt: skip
        """One row per model of what one attempt spent (nothing when it reported nothing)."""
        rows = [{"job": job, "window_start": window_start, "window_key": window_key,
                 "attempt": attempt, "model": model, "input_tokens": u.input_tokens,
                 "output_tokens": u.output_tokens, "cost_usd": u.cost_usd, "calls": u.calls,
                 "recorded_at": now} for model, u in usage.items()]  # fmt: skip
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(USAGE), rows)

    def spent(self, jobs: Sequence[str], start: datetime, end: datetime,
              window_start: datetime | None = None) -> tuple[float, int]:  # fmt: skip
        """``(cost_usd, tokens)`` of ``jobs`` recorded in ``[start, end)`` (or in one window)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(USAGE.c.cost_usd), 0.0),
                          sa.func.coalesce(sa.func.sum(USAGE.c.input_tokens
                                                       + USAGE.c.output_tokens), 0))
        query = query.where(USAGE.c.job.in_(list(jobs)))
        if window_start is not None:
            query = query.where(USAGE.c.window_start == window_start)
        else:
            query = query.where(USAGE.c.recorded_at >= start, USAGE.c.recorded_at < end)
        with begin_read(self.engine) as conn:
            cost, tokens = conn.execute(query).one()
        return float(cost), int(tokens)

    def spent_by_job(self, ranges: Sequence[tuple[Sequence[str], datetime, datetime]],
                     ) -> list[dict[str, tuple[float, int]]]:  # fmt: skip
        """For each range ``(jobs, start, end)``, in order: ``{job: (cost_usd, tokens)}`` of the
        jobs that spent in ``[start, end)``. One query, one part per range (a page of jobs in a
        few timezones costs one round trip and a few index scans, not one per row)."""
        parts = [sa.select(sa.literal(i).label("g"), USAGE.c.job,
                           sa.func.coalesce(sa.func.sum(USAGE.c.cost_usd), 0.0),
                           sa.func.coalesce(sa.func.sum(USAGE.c.input_tokens
                                                        + USAGE.c.output_tokens), 0))
                 .where(USAGE.c.job.in_(list(jobs)), USAGE.c.recorded_at >= start,
                        USAGE.c.recorded_at < end)
                 .group_by(USAGE.c.job)
                 for i, (jobs, start, end) in enumerate(ranges)]  # fmt: skip
        found: list[dict[str, tuple[float, int]]] = [{} for _ in ranges]
        if not parts:
            return found
        with begin_read(self.engine) as conn:
            for index, job, cost, tokens in conn.execute(sa.union_all(*parts)):
                found[int(index)][str(job)] = (float(cost), int(tokens))
        return found

    def of_window(self, job: str, window_start: datetime) -> dict[str, ModelUsage]:
        """What every attempt of one window spent, by model."""
        query = (sa.select(USAGE.c.model, sa.func.sum(USAGE.c.input_tokens),
                           sa.func.sum(USAGE.c.output_tokens), sa.func.sum(USAGE.c.cost_usd),
                           sa.func.sum(USAGE.c.calls))
                 .where(USAGE.c.job == job, USAGE.c.window_start == window_start)
                 .group_by(USAGE.c.model))  # fmt: skip
        with begin_read(self.engine) as conn:
            return {m: ModelUsage(int(i), int(o), float(c), int(n))
                    for m, i, o, c, n in conn.execute(query)}  # fmt: skip

    def by_job_and_model(self, start: datetime | None, end: datetime | None,
                         job: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Spend and tokens grouped by job and model in ``[start, end)``."""
        query = sa.select(USAGE.c.job, USAGE.c.model, sa.func.sum(USAGE.c.input_tokens),
                          sa.func.sum(USAGE.c.output_tokens), sa.func.sum(USAGE.c.cost_usd),
                          sa.func.sum(USAGE.c.calls), sa.func.count(sa.distinct(USAGE.c.window_key)))
        if start is not None and end is not None:
            query = query.where(USAGE.c.recorded_at >= start, USAGE.c.recorded_at < end)
        if job is not None:
            query = query.where(USAGE.c.job == job)
        query = query.group_by(USAGE.c.job, USAGE.c.model).order_by(USAGE.c.job, USAGE.c.model)
        with begin_read(self.engine) as conn:
            return [{"job": j, "model": m, "input_tokens": int(i), "output_tokens": int(o),
                     "cost_usd": round(float(c), 6), "calls": int(n), "runs": int(r)}
                    for j, m, i, o, c, n, r in conn.execute(query)]  # fmt: skip

    def mark_alerted(self, budget: str, period_start: datetime, now: datetime) -> bool:
        """True for the first caller of a budget period, fleet-wide (the primary key decides)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(ALERTS).values(budget=budget, period_start=period_start,
                                                      alerted_at=now))  # fmt: skip
        except IntegrityError:
            return False
        return True
