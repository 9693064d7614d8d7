"""Reading the runs table: :class:`SqlQueries` (the ledger's reads) and the questions the beat
and the watchdog ask (no SQL on ledger tables outside ``ledger/``).

- :func:`last_slots`: the newest slot of each job (the beat's catch-up after downtime);
- :func:`first_slots`: the oldest slot of each job (windows before it are not owed);
- :func:`active_rows`: rows still ``claimed`` / ``running`` and untouched for a while (the
  watchdog's candidates for stranded windows).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from agentcron.ledger import batch_sql
from agentcron.ledger.engine import begin_read, begin_write
from agentcron.ledger.records import ACTIVE_STATES, RunRecord, RunState, record_from
from agentcron.ledger.sql_base import REPORTS, RUNS, SqlLedgerBase, record_of

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


class SqlQueries(SqlLedgerBase):
    """Reading rows of the runs and reports tables."""

    def get(self, job: str, window_start: datetime) -> RunRecord | None:
        """The row of one window, or None."""
        with begin_read(self._engine) as conn:
            return self._fetch(conn, job, window_start)

    def get_many(self, window_keys: Sequence[str]) -> dict[str, RunRecord]:
        """The rows of ``window_keys`` that exist, by key (one query per 500 keys)."""
        with begin_read(self._engine) as conn:
            return batch_sql.rows_by_key(conn, RUNS, list(dict.fromkeys(window_keys)), record_of)

    def get_by_key(self, window_key: str) -> RunRecord | None:
        """The row of the window named ``window_key``, or None."""
        with begin_read(self._engine) as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.window_key == window_key)).first()
            return None if row is None else record_of(row)

    def pending(self, older_than: datetime, limit: int = 1000, *,
                jobs: Collection[str] | None = None) -> list[RunRecord]:  # fmt: skip
        """Rows still 'scheduled' since ``older_than`` or earlier, oldest first (of ``jobs``
        only, when given)."""
        query = (
            select(RUNS)
            .where(RUNS.c.state == str(RunState.SCHEDULED), RUNS.c.scheduled_at <= older_than)
            .order_by(RUNS.c.scheduled_at, RUNS.c.id)
            .limit(limit)
        )
        if jobs is not None:
            query = query.where(RUNS.c.job.in_(sorted(jobs)))
        with begin_read(self._engine) as conn:
            return [record_of(row) for row in conn.execute(query)]

    def list_runs(
        self, job: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest window first, optionally of one job and/or one state."""
        query = select(RUNS).order_by(RUNS.c.window_start.desc(), RUNS.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(RUNS.c.job == job)
        if state is not None:
            query = query.where(RUNS.c.state == str(RunState(state)))
        with begin_read(self._engine) as conn:
            return [record_of(row) for row in conn.execute(query)]

    def count_by_state(self, job: str | None = None) -> dict[str, int]:
        """How many runs are in each state (only states that occur)."""
        query = select(RUNS.c.state, func.count()).group_by(RUNS.c.state)
        if job is not None:
            query = query.where(RUNS.c.job == job)
        with begin_read(self._engine) as conn:
            return {str(state): int(count) for state, count in conn.execute(query)}

    def save_report(self, job: str, window_key: str, title: str, body: Any) -> None:
        """Keep an agent's report (``body`` must be JSON)."""
        row = {"job": job, "window_key": window_key, "title": title[:200],
               "body": self._check_result(body), "created_at": self._clock.now()}  # fmt: skip
        with begin_write(self._engine) as conn:
            conn.execute(REPORTS.insert(), row)

    def list_reports(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Reports, newest first, as dicts (job, window_key, title, body, created_at)."""
        query = select(REPORTS).order_by(REPORTS.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(REPORTS.c.job == job)
        with begin_read(self._engine) as conn:
            return [
                {key: row._mapping[key] for key in ("job", "window_key", "title", "body",
                                                    "created_at")}
                for row in conn.execute(query)
            ]  # fmt: skip
