"""What the SQL ledger's parts share: the runs table, the engine, the row helpers.

:class:`~agentcron.ledger.store.Ledger` is :class:`SqlClaims` (recording and claiming windows,
:mod:`agentcron.ledger.claims`), :class:`SqlCompletions` (starting, retrying and completing
runs, :mod:`agentcron.ledger.completions`) and :class:`SqlQueries` (reading rows,
:mod:`agentcron.ledger.queries`) over this base.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Row, Table, select

from agentcron.clock import Clock
from agentcron.ledger import batch_sql
from agentcron.ledger.checks import check_result, clip
from agentcron.ledger.models import ReportRow, RunRow
from agentcron.ledger.records import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    NewWindow,
    RunRecord,
    RunState,
    record_from,
)

RUNS = cast(Table, RunRow.__table__)
REPORTS = cast(Table, ReportRow.__table__)
TERMINAL_NAMES = sorted(str(s) for s in TERMINAL_STATES)
ACTIVE_NAMES = sorted(str(s) for s in ACTIVE_STATES)


def record_of(row: Row[Any]) -> RunRecord:
    """A :class:`RunRecord` from a row of the runs table."""
    return record_from(row._mapping)


class SqlLedgerBase:
    """The engine, the clock, the limits and the row helpers every part of the ledger uses."""

    _engine: Engine
    _clock: Clock
    _postgres: bool
    _dialect: Any
    result_max_bytes: int
    error_max_chars: int

    def _new_rows(self, windows: Sequence[NewWindow], state: RunState) -> list[dict[str, Any]]:
        now = self._clock.now()
        return [
            {"job": w.job, "window_start": w.window_start, "window_key": w.window_key,
             "slot": w.slot, "trigger": w.trigger, "state": str(state), "attempt": 0,
             "scheduled_at": now, "updated_at": now}
            for w in windows
        ]  # fmt: skip

    def _insert_missing(self, conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
        if not rows:
            return []
        statement = self._dialect.insert(RUNS).on_conflict_do_nothing().returning(RUNS.c.window_key)
        return list(conn.execute(statement, rows).scalars())

    def _insert_scheduled(self, conn: Connection, windows: Sequence[NewWindow]) -> list[str]:
        if len(windows) > 1 and self._postgres:
            params = batch_sql.pg_insert_params(windows, self._clock.now())
            return list(conn.execute(batch_sql.PG_INSERT_SCHEDULED, params).scalars())
        return self._insert_missing(conn, self._new_rows(windows, RunState.SCHEDULED))

    def _fetch(self, conn: Connection, job: str, window_start: datetime,
               lock: bool = False) -> RunRecord | None:  # fmt: skip
        query = select(RUNS).where(RUNS.c.job == job, RUNS.c.window_start == window_start)
        query = query.with_for_update() if lock else query  # a forced claim keeps what it read
        row = conn.execute(query).first()
        return None if row is None else record_of(row)

    @staticmethod
    def _match(job: str, window_start: datetime) -> tuple[Any, Any]:
        return RUNS.c.job == job, RUNS.c.window_start == window_start

    def _check_result(self, result: Any) -> Any:
        return check_result(result, self.result_max_bytes)

    def _clip(self, text: str | None) -> str | None:
        return clip(text, self.error_max_chars)
