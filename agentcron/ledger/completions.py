"""Starting, retrying and completing runs in the SQL ledger, each fenced on the claim's token.

Every write of a run is an ``UPDATE … WHERE token = :token``: 0 rows means the caller is a stale
holder and is dropped (a warning). A success's reports and delivery rows are written in its
completion's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from agentcron.ledger import batch_sql, pg_single
from agentcron.ledger.checks import completion, stale_completion
from agentcron.ledger.engine import begin_write
from agentcron.ledger.outputs import write_outputs
from agentcron.ledger.records import ACTIVE_STATES, CompleteRequest, RunState
from agentcron.ledger.sql_base import RUNS, SqlLedgerBase, record_of
from agentcron.reports.content import PendingReport
from agentcron.windows import window_key


class SqlCompletions(SqlLedgerBase):
    """Starting, retrying and completing runs in the SQL ledger, each fenced on the claim's token."""

    def _fenced(self, job: str, window_start: datetime, token: int, *states: RunState) -> Any:
        return update(RUNS).where(
            *self._match(job, window_start),
            RUNS.c.token == token,
            RUNS.c.state.in_([str(s) for s in states]),
        )

    def start(self, job: str, window_start: datetime, token: int) -> bool:
        """claimed -> running for the holder of ``token``; False if fenced out."""
        now = self._clock.now()
        statement = self._fenced(job, window_start, token, RunState.CLAIMED).values(
            state=str(RunState.RUNNING), started_at=now, updated_at=now
        )
        with begin_write(self._engine) as conn:
            return bool(conn.execute(statement).rowcount == 1)

    def retry(
        self, job: str, window_start: datetime, token: int, error_type: str, error_message: str
    ) -> int | None:
        """Count another in-process attempt, keep its error; the new attempt, None if fenced."""
        statement = (
            self._fenced(job, window_start, token, *ACTIVE_STATES)
            .values(attempt=RUNS.c.attempt + 1, error_type=error_type[:200],
                    error_message=self._clip(error_message), updated_at=self._clock.now())
            .returning(RUNS.c.attempt)
        )  # fmt: skip
        with begin_write(self._engine) as conn:
            attempt = conn.execute(statement).scalar()
            return None if attempt is None else int(attempt)

    def complete(
        self,
        job: str,
        window_start: datetime,
        token: int,
        state: RunState,
        *,
        result: Any = None,
        error_type: str | None = None,
        error_message: str | None = None,
        duration: float | None = None,
    ) -> bool:
        """Finish the run of the holder of ``token`` as ``state``; False (and a warning) if fenced.

        ``duration`` (seconds) is computed from ``started_at`` when not given.
        Raises :class:`ResultError` when ``result`` is not JSON or larger than the limit.
        """
        request = self.complete_request(job, window_start, token, state, result=result,
                                        error_type=error_type, error_message=error_message,
                                        duration=duration)  # fmt: skip
        return self.complete_many([request])[0]

    def complete_request(
        self, job: str, window_start: datetime, token: int, state: RunState, *,
        result: Any = None, error_type: str | None = None, error_message: str | None = None,
        duration: float | None = None, reports: Sequence[PendingReport] = (),
        deliver: Sequence[str] = (),
    ) -> CompleteRequest:  # fmt: skip
        """A checked completion (raises ResultError now) to pass to :meth:`complete_many`;
        a success's ``reports`` (and a delivery row per report and ``deliver`` target) are
        written in the completion's transaction if it wins."""
        return completion(job, window_start, token, state, result=result, error_type=error_type,
                          error_message=error_message, duration=duration, reports=reports,
                          deliver=deliver, result_max_bytes=self.result_max_bytes,
                          error_max_chars=self.error_max_chars)  # fmt: skip

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[bool]:
        """:meth:`complete` for many runs in ONE transaction; each fenced on its own token (one
        statement on PostgreSQL when each has its duration: :mod:`agentcron.ledger.pg_single`)."""
        if not requests:
            return []
        if self._postgres and all(r.duration is not None and not r.reports for r in requests):
            results = pg_single.complete(self._engine, requests, self._clock.now())
        else:
            results = self._complete_batch(requests)
        for request, done in zip(requests, results, strict=True):
            if not done:
                stale_completion(request)
        return results

    def _complete_batch(self, requests: Sequence[CompleteRequest]) -> list[bool]:
        with begin_write(self._engine) as conn:
            if len(requests) > 1 and all(r.duration is not None and not r.reports
                                         for r in requests):  # fmt: skip
                return self._complete_set(conn, requests)
            return [self._complete_in(conn, request) for request in requests]

    def _complete_set(self, conn: Connection, requests: Sequence[CompleteRequest]) -> list[bool]:
        keys = [window_key(r.job, r.window_start) for r in requests]
        conn.execute(batch_sql.complete_update(RUNS),
                     batch_sql.complete_params(requests, keys, self._clock.now()))  # fmt: skip
        after = batch_sql.rows_by_key(conn, RUNS, keys, record_of)
        return [key in after and after[key].token == r.token and after[key].state == r.state
                for r, key in zip(requests, keys, strict=True)]  # fmt: skip

    def _complete_in(self, conn: Connection, request: CompleteRequest) -> bool:
        now = self._clock.now()
        duration = request.duration
        if duration is None:
            current = self._fetch(conn, request.job, request.window_start)
            started = current.started_at if current is not None else None
            duration = (now - started).total_seconds() if started else None
        statement = self._fenced(request.job, request.window_start, request.token,
                                 *ACTIVE_STATES).values(
            state=str(request.state), result=request.result, finished_at=now, updated_at=now,
            duration=duration, error_type=request.error_type,
            error_message=request.error_message,
        )  # fmt: skip
        won = bool(conn.execute(statement).rowcount == 1)
        if won and request.reports:
            write_outputs(conn, request.job, window_key(request.job, request.window_start),
                          request.reports, request.deliver, now)  # fmt: skip
        return won
