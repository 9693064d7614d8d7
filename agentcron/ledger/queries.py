"""Read-only questions about the runs table that the beat and the watchdog ask (no SQL on ledger
tables outside ``ledger/``).

- :func:`last_slots`: the newest slot of each job (the beat's catch-up after downtime);
- :func:`first_slots`: the oldest slot of each job (windows before it are not owed);
- :func:`active_rows`: rows still ``claimed`` / ``running`` and untouched for a while (the
  watchdog's candidates for stranded windows).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, func, select

from agentcron.ledger.engine import begin_read
from agentcron.ledger.records import ACTIVE_STATES, RunRecord, record_from
from agentcron.ledger.store import RUNS

MAX_ACTIVE_ROWS = 1000


def last_slots(engine: Engine) -> dict[str, datetime]:
    """The newest slot the ledger holds for each job (one grouped query)."""
    query = select(RUNS.c.job, func.max(RUNS.c.slot)).group_by(RUNS.c.job)
    with begin_read(engine) as conn:
        return {job: slot for job, slot in conn.execute(query) if slot is not None}


def first_slots(engine: Engine) -> dict[str, datetime]:
    """The oldest slot the ledger holds for each job: windows before it are not owed."""
    query = select(RUNS.c.job, func.min(RUNS.c.slot)).group_by(RUNS.c.job)
    with begin_read(engine) as conn:
        return {job: slot for job, slot in conn.execute(query) if slot is not None}


def active_rows(engine: Engine, jobs: Iterable[str], untouched_since: datetime,
                limit: int = MAX_ACTIVE_ROWS) -> list[RunRecord]:  # fmt: skip
    """Active rows of ``jobs`` not written since ``untouched_since`` (oldest first)."""
    names = sorted(set(jobs))
    if not names:
        return []
    query = (
        select(RUNS)
        .where(RUNS.c.state.in_(sorted(str(s) for s in ACTIVE_STATES)), RUNS.c.job.in_(names),
               RUNS.c.updated_at <= untouched_since)
        .order_by(RUNS.c.updated_at, RUNS.c.id)
        .limit(limit)
    )  # fmt: skip
    with begin_read(engine) as conn:
        return [record_from(row._mapping) for row in conn.execute(query)]
