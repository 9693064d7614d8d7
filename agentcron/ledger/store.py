"""The SQL run ledger: one row per window, fenced claims and completions (SQLite or PostgreSQL).

The row's ``UNIQUE(job, window_start)`` makes a window exist once; a claim stamps the row with a
fencing token, and every later write of the run (start, retry, complete) is an
``UPDATE … WHERE token = :token``: 0 rows means the caller is a stale holder and is dropped.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Row, Table, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.ledger import batch_sql, history, pg_single
from agentcron.ledger.engine import begin_read, begin_write, create_engine_for, is_sqlite
from agentcron.ledger.models import ReportRow, RunRow
from agentcron.ledger.outputs import write_outputs
from agentcron.ledger.records import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Claim,
    ClaimRequest,
    ClaimStatus,
    CompleteRequest,
    NewWindow,
    RunRecord,
    RunState,
    record_from,
)
from agentcron.reports.content import PendingReport
from agentcron.settings import Settings
from agentcron.windows import window_key

log = logging.getLogger(__name__)

RUNS = cast(Table, RunRow.__table__)
REPORTS = cast(Table, ReportRow.__table__)
_TERMINAL = sorted(str(s) for s in TERMINAL_STATES)
_ACTIVE = sorted(str(s) for s in ACTIVE_STATES)


class ResultError(ValueError):
    """A run's result is not JSON-serialisable or larger than the configured limit."""


def _record(row: Row[Any]) -> RunRecord:
    return record_from(row._mapping)


class Ledger:
    """The run ledger over one SQLAlchemy engine (see the module docstring)."""

    def __init__(
        self,
        url: str,
        clock: Clock = SYSTEM_CLOCK,
        *,
        result_max_bytes: int = 256 * 1024,
        error_max_chars: int = 2000,
        auto_migrate: bool | None = None,
    ) -> None:
        self._engine = create_engine_for(url)
        self._clock = clock
        self._postgres = self._engine.dialect.name == "postgresql"
        self._dialect = postgresql if self._postgres else sqlite
        self.result_max_bytes = result_max_bytes
        self.error_max_chars = error_max_chars
        if auto_migrate if auto_migrate is not None else is_sqlite(url):
            self.upgrade()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Ledger:
        """A ledger on ``settings.database_url`` with the configured limits."""
        return cls(settings.database_url, clock, result_max_bytes=settings.result_max_bytes,
                   error_max_chars=settings.error_max_chars)  # fmt: skip

    @property
    def engine(self) -> Engine:
        """The engine (shared by the SQL lease store and the dynamic schedules)."""
        return self._engine

    def upgrade(self) -> None:
        """Migrate to the newest schema (alembic head); idempotent, safe concurrently."""
        from agentcron.migrations import upgrade

        upgrade(self._engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    # -- windows ------------------------------------------------------------------------------

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

    def record_scheduled(self, windows: Sequence[NewWindow]) -> list[str]:
        """Record ``windows`` as 'scheduled' unless they have a row; return the new keys."""
        with begin_write(self._engine) as conn:
            return self._insert_scheduled(conn, windows)

    def _fetch(self, conn: Connection, job: str, window_start: datetime,
               lock: bool = False) -> RunRecord | None:  # fmt: skip
        query = select(RUNS).where(RUNS.c.job == job, RUNS.c.window_start == window_start)
        query = query.with_for_update() if lock else query  # a forced claim keeps what it read
        row = conn.execute(query).first()
        return None if row is None else _record(row)

    def get(self, job: str, window_start: datetime) -> RunRecord | None:
        """The row of one window, or None."""
        with begin_read(self._engine) as conn:
            return self._fetch(conn, job, window_start)

    def get_many(self, window_keys: Sequence[str]) -> dict[str, RunRecord]:
        """The rows of ``window_keys`` that exist, by key (one query per 500 keys)."""
        with begin_read(self._engine) as conn:
            return batch_sql.rows_by_key(conn, RUNS, list(dict.fromkeys(window_keys)), _record)

    def get_by_key(self, window_key: str) -> RunRecord | None:
        """The row of the window named ``window_key``, or None."""
        with begin_read(self._engine) as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.window_key == window_key)).first()
            return None if row is None else _record(row)

    def pending(self, older_than: datetime, limit: int = 1000) -> list[RunRecord]:
        """Rows still 'scheduled' since ``older_than`` or earlier, oldest first."""
        query = (
            select(RUNS)
            .where(RUNS.c.state == str(RunState.SCHEDULED), RUNS.c.scheduled_at <= older_than)
            .order_by(RUNS.c.scheduled_at, RUNS.c.id)
            .limit(limit)
        )
        with begin_read(self._engine) as conn:
            return [_record(row) for row in conn.execute(query)]

    def mark_terminal(self, window: NewWindow, state: RunState, reason: str) -> bool:
        """Record ``window`` as ``state`` with ``reason`` unless already terminal or active."""
        state = RunState(state)
        if not state.terminal:
            raise ValueError(f"mark_terminal needs a terminal state, not {state!r}")
        now = self._clock.now()
        values = {"state": str(state), "error_message": self._clip(reason), "finished_at": now,
                  "updated_at": now}  # fmt: skip
        with begin_write(self._engine) as conn:
            row = self._new_rows([window], state)[0] | values
            if self._insert_missing(conn, [row]):
                return True
            result = conn.execute(
                update(RUNS)
                .where(*self._match(window.job, window.window_start),
                       RUNS.c.state.not_in(_TERMINAL + _ACTIVE))
                .values(**values)
            )  # fmt: skip
            return result.rowcount == 1

    # -- claims -------------------------------------------------------------------------------

    @staticmethod
    def _match(job: str, window_start: datetime) -> tuple[Any, Any]:
        return RUNS.c.job == job, RUNS.c.window_start == window_start

    def claim(
        self, window: NewWindow, token: int, worker_id: str, max_attempts: int, force: bool = False,
        *, running: bool = False,
    ) -> Claim:  # fmt: skip
        """Claim ``window`` for the holder of ``token`` (see :class:`ClaimStatus`).

        With ``running=True`` the claimed row goes straight to 'running' (started now): the
        guard's claim and start in one statement.
        """
        return self.claim_many([ClaimRequest(window, token, worker_id, max_attempts, force,
                                             running)])[0]  # fmt: skip

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """:meth:`claim` for many windows with a fixed number of statements, whatever their
        number (see :mod:`agentcron.ledger.batch_sql`; each claim stands alone, none waits for
        the others). On PostgreSQL the requests that win their window do so in one statement
        first (:mod:`agentcron.ledger.pg_single`); the rest (and forced claims, and a window
        asked for twice) take the general path, one transaction, after it."""
        claims: dict[int, Claim] = {}
        if self._postgres:
            twice = {key for key, n in Counter(r.window.window_key for r in requests).items()
                     if n > 1}  # fmt: skip
            fast = [i for i, r in enumerate(requests)
                    if not r.force and r.window.window_key not in twice]  # fmt: skip
            if fast:
                won = pg_single.claim(self._engine, [requests[i] for i in fast], self._clock.now())
                claims = {i: Claim(ClaimStatus.CLAIMED, *w) for i, w in zip(fast, won, strict=True)
                          if w is not None}  # fmt: skip
        rest = [i for i in range(len(requests)) if i not in claims]
        if rest:
            with begin_write(self._engine) as conn:
                self._relaxed_commit(conn)
                others = [requests[i] for i in rest]
                found = ([self._claim_in(conn, others[0])] if len(others) == 1
                         else self._claim_set(conn, others))  # fmt: skip
            claims.update(zip(rest, found, strict=True))
        return [claims[i] for i in range(len(requests))]

    def _relaxed_commit(self, conn: Connection) -> None:
        """A claim's commit does not wait for its WAL flush on PostgreSQL.

        Only a crash of the PostgreSQL server itself within ~200 ms (``wal_writer_delay``)
        can lose such a commit, and then safely: the completion that follows commits
        synchronously, and a synchronous commit flushes the WAL up to itself, so a completion
        that is acknowledged also made its claim durable; a completion whose claim was lost
        finds no row with its token and is fenced out, the message is acknowledged as a
        duplicate, and the watchdog re-enqueues the window (the same at-least-once execution as
        any crash mid-run). A worker killed after its claim (the poison window's count) does
        not lose it: the server flushes the WAL on its own. It saves one WAL flush per run.
        """
        if self._postgres:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

    def _claim_set(self, conn: Connection, requests: Sequence[ClaimRequest]) -> list[Claim]:
        keys = [r.window.window_key for r in requests]
        before = batch_sql.rows_by_key(conn, RUNS, keys, _record)
        missing = {r.window.window_key: r.window for r in requests if r.window.window_key
                   not in before}  # fmt: skip
        self._insert_scheduled(conn, list(missing.values()))
        fast = [r for r in requests if not r.force and not (
            r.window.window_key in before and before[r.window.window_key].state.terminal)]
        if fast:
            conn.execute(batch_sql.claim_update(RUNS),
                         batch_sql.claim_params(fast, self._clock.now()))  # fmt: skip
        after = batch_sql.rows_by_key(conn, RUNS, keys, _record)
        claims: list[Claim] = []
        for request, key in zip(requests, keys, strict=True):
            previous, row = before.get(key), after[key]
            if request.force:
                claims.append(self._claim_in(conn, request))
            elif previous is not None and previous.state.terminal:
                claims.append(Claim(ClaimStatus.DONE, previous, previous))
            elif row.token == request.token and row.state in ACTIVE_STATES:
                claims.append(Claim(ClaimStatus.CLAIMED, row, previous))
            else:
                found = self._classify(conn, row, request.token, request.max_attempts)
                claims.append(Claim(found.status, found.record, previous))
        return claims

    def _claim_in(self, conn: Connection, request: ClaimRequest) -> Claim:
        window, token, force = request.window, request.token, request.force
        restart = RUNS.c.state.in_(_TERMINAL)
        claimable = [
            *self._match(window.job, window.window_start),
            RUNS.c.token.is_(None) | (RUNS.c.token < token),
        ]
        if not force:
            claimable += [RUNS.c.state.not_in(_TERMINAL), RUNS.c.attempt < request.max_attempts]
        now = self._clock.now()
        values: dict[str, Any] = {
            "state": str(RunState.RUNNING if request.running else RunState.CLAIMED),
            "token": token, "worker_id": request.worker_id,
            "attempt": case((restart, 1), else_=RUNS.c.attempt + 1) if force
            else RUNS.c.attempt + 1,
            "started_at": now if request.running else None, "finished_at": None,
            "updated_at": now,
        }  # fmt: skip
        if force:
            cleared = ("duration", "error_type", "error_message", "result")
            values |= {name: case((restart, None), else_=RUNS.c[name]) for name in cleared}
        previous = self._fetch(conn, window.job, window.window_start, lock=force)
        if previous is None:
            self._insert_missing(conn, self._new_rows([window], RunState.SCHEDULED))
        elif previous.state.terminal and not force:
            return Claim(ClaimStatus.DONE, previous, previous)
        statement = update(RUNS).where(*claimable).values(**values).returning(*RUNS.c)
        claimed = conn.execute(statement).first()
        if claimed is not None:
            if previous is not None and previous.state.terminal:  # history is never overwritten
                history.keep(conn, previous, now, f"forced {window.trigger} run, token {token}")
            return Claim(ClaimStatus.CLAIMED, _record(claimed), previous)
        record = self._fetch(conn, window.job, window.window_start)
        assert record is not None
        found = self._classify(conn, record, token, request.max_attempts)
        return Claim(found.status, found.record, previous)

    def _classify(
        self, conn: Connection, record: RunRecord, token: int, max_attempts: int
    ) -> Claim:
        if record.state.terminal:
            return Claim(ClaimStatus.DONE, record)
        newer_holder = record.token is not None and record.token >= token
        if newer_holder or record.attempt < max_attempts:
            return Claim(ClaimStatus.ACTIVE, record)
        now = self._clock.now()
        conn.execute(
            update(RUNS)
            .where(*self._match(record.job, record.window_start), RUNS.c.state.not_in(_TERMINAL))
            .values(state=str(RunState.FAILED), error_type="WorkerLost",
                    error_message=f"worker lost {record.attempt} times",
                    finished_at=now, updated_at=now)
        )  # fmt: skip
        failed = self._fetch(conn, record.job, record.window_start)
        assert failed is not None
        return Claim(ClaimStatus.EXHAUSTED, failed)

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
        state = RunState(state)
        if not state.terminal:
            raise ValueError(f"complete needs a terminal state, not {state!r}")
        return CompleteRequest(job, window_start, token, state, self._check_result(result),
                               error_type[:200] if error_type else None,
                               self._clip(error_message), duration,
                               tuple(reports) if state is RunState.SUCCEEDED else (),
                               tuple(deliver))  # fmt: skip

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
                self._stale(request)
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
        after = batch_sql.rows_by_key(conn, RUNS, keys, _record)
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

    @staticmethod
    def _stale(request: CompleteRequest) -> None:
        log.warning("stale completion of %s@%s with token %s dropped (fenced out)",
                    request.job, request.window_start.isoformat(), request.token)  # fmt: skip

    def _check_result(self, result: Any) -> Any:
        if result is None:
            return None
        try:
            encoded = json.dumps(result, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ResultError(f"result not serialisable: {exc}") from exc
        size = len(encoded.encode())
        if size > self.result_max_bytes:
            limit = self.result_max_bytes
            raise ResultError(f"result too large: {size} bytes, limit {limit} bytes")
        return json.loads(encoded)

    def _clip(self, text: str | None) -> str | None:
        if text is None or len(text) <= self.error_max_chars:
            return text
        return text[: max(self.error_max_chars - 1, 0)] + "…"

    # -- reading ------------------------------------------------------------------------------

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
            return [_record(row) for row in conn.execute(query)]

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
