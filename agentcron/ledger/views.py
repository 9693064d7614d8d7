"""Read-side queries of the ledger for the console and ``agentcron runs show``.

Every query is bounded (a page of jobs, a range of windows, a limit) and uses an index:
``uq_runs_job_window`` (job, window_start) for per-job strips and timelines,
``ix_runs_state_scheduled`` for missed windows, ``ix_run_logs_window_key`` for log lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.ledger.engine import begin_read, begin_write
from agentcron.ledger.records import RunRecord, RunState, record_from
from agentcron.ledger.run_logs import RunLogRow
from agentcron.ledger.sql_base import RUNS
from agentcron.ledger.store import Ledger

RUN_LOGS = cast(Table, RunLogRow.__table__)
_CHUNK = 500


@dataclass(frozen=True)
class WindowCell:
    """A window as a strip of recent outcomes shows it."""

    job: str
    window_key: str
    window_start: datetime
    state: RunState


@dataclass(frozen=True)
class RunLog:
    """The lines one attempt of a run logged through ``ctx.log``."""

    attempt: int
    lines: list[str]
    created_at: datetime | None


def _chunks(names: Sequence[str]) -> list[list[str]]:
    unique = list(dict.fromkeys(names))
    return [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]


class LedgerViews:
    """Queries over one :class:`Ledger` that its writers never need."""

    def __init__(self, ledger: Ledger, clock: Clock = SYSTEM_CLOCK) -> None:
        self.ledger = ledger
        self.engine = ledger.engine
        self.clock = clock

    def recent_windows(self, jobs: Sequence[str], per_job: int = 30) -> dict[str, list[WindowCell]]:
        """The newest ``per_job`` windows of each of ``jobs``, newest first (one query per 500)."""
        out: dict[str, list[WindowCell]] = {job: [] for job in jobs}
        for chunk in _chunks(jobs):
            rank = func.row_number().over(partition_by=RUNS.c.job,
                                          order_by=RUNS.c.window_start.desc()).label("rank")
            inner = (select(RUNS.c.job, RUNS.c.window_key, RUNS.c.window_start, RUNS.c.state, rank)
                     .where(RUNS.c.job.in_(chunk)).subquery())  # fmt: skip
            query = (select(inner.c.job, inner.c.window_key, inner.c.window_start, inner.c.state)
                     .where(inner.c.rank <= per_job)
                     .order_by(inner.c.job, inner.c.window_start.desc()))  # fmt: skip
            with begin_read(self.engine) as conn:
                for job, key, start, state in conn.execute(query):
                    out[job].append(WindowCell(job, key, start, RunState(state)))
        return out

    def last_successes(self, jobs: Sequence[str]) -> dict[str, datetime]:
        """The slot of each job's newest succeeded window (jobs without one are absent)."""
        out: dict[str, datetime] = {}
        for chunk in _chunks(jobs):
            query = (select(RUNS.c.job, func.max(RUNS.c.slot))
                     .where(RUNS.c.job.in_(chunk), RUNS.c.state == str(RunState.SUCCEEDED))
                     .group_by(RUNS.c.job))  # fmt: skip
            with begin_read(self.engine) as conn:
                out.update({job: slot for job, slot in conn.execute(query) if slot is not None})
        return out

    def windows_between(self, job: str, start: datetime, end: datetime,
                        limit: int = 2000) -> list[RunRecord]:  # fmt: skip
        """``job``'s windows starting in ``[start, end)``, oldest first."""
        query = (select(RUNS)
                 .where(RUNS.c.job == job, RUNS.c.window_start >= start,
                        RUNS.c.window_start < end)
                 .order_by(RUNS.c.window_start).limit(limit))  # fmt: skip
        with begin_read(self.engine) as conn:
            return [record_from(row._mapping) for row in conn.execute(query)]

    def missed_since(self, since: datetime, limit: int = 200) -> list[RunRecord]:
        """Windows recorded ``missed`` at or after ``since``, newest first."""
        query = (select(RUNS)
                 .where(RUNS.c.state == str(RunState.MISSED), RUNS.c.scheduled_at >= since)
                 .order_by(RUNS.c.scheduled_at.desc()).limit(limit))  # fmt: skip
        with begin_read(self.engine) as conn:
            return [record_from(row._mapping) for row in conn.execute(query)]

    def save_run_log(self, window_key: str, attempt: int, lines: Sequence[str]) -> None:
        """Keep the (already capped) ``ctx.log`` lines of one attempt of a run."""
        row = {"window_key": window_key, "attempt": attempt, "lines": list(lines),
               "created_at": self.clock.now()}  # fmt: skip
        with begin_write(self.engine) as conn:
            conn.execute(RUN_LOGS.insert(), row)

    def run_log(self, window_key: str, limit: int = 50) -> list[RunLog]:
        """The kept log lines of a run, one entry per attempt that logged, oldest first."""
        query = (select(RUN_LOGS.c.attempt, RUN_LOGS.c.lines, RUN_LOGS.c.created_at)
                 .where(RUN_LOGS.c.window_key == window_key)
                 .order_by(RUN_LOGS.c.attempt, RUN_LOGS.c.id).limit(limit))  # fmt: skip
        with begin_read(self.engine) as conn:
            return [RunLog(int(a), [str(x) for x in (lines or [])], created)
                    for a, lines, created in conn.execute(query)]  # fmt: skip

