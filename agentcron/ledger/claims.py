"""Recording and claiming windows in the SQL ledger.

A window's row is recorded 'scheduled' before its message is published; a claim stamps it with a
fencing token (``UNIQUE(job, window_start)`` makes the window exist once). On PostgreSQL a claim
that wins its window does so in one statement (:mod:`agentcron.ledger.pg_single`); batches take a
fixed number of statements (:mod:`agentcron.ledger.batch_sql`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, update

from agentcron.ledger import batch_sql, history, pg_single
from agentcron.ledger.engine import begin_write
from agentcron.ledger.records import (
    ACTIVE_STATES,
    Claim,
    ClaimRequest,
    ClaimStatus,
    NewWindow,
    RunRecord,
    RunState,
)
from agentcron.ledger.sql_base import ACTIVE_NAMES, RUNS, TERMINAL_NAMES, SqlLedgerBase, record_of


class SqlClaims(SqlLedgerBase):
    """Recording and claiming windows in the SQL ledger."""

    def record_scheduled(self, windows: Sequence[NewWindow]) -> list[str]:
        """Record ``windows`` as 'scheduled' unless they have a row; return the new keys."""
        with begin_write(self._engine) as conn:
            return self._insert_scheduled(conn, windows)

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
                       RUNS.c.state.not_in(TERMINAL_NAMES + ACTIVE_NAMES))
                .values(**values)
            )  # fmt: skip
            return result.rowcount == 1

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
        before = batch_sql.rows_by_key(conn, RUNS, keys, record_of)
        missing = {r.window.window_key: r.window for r in requests if r.window.window_key
                   not in before}  # fmt: skip
        self._insert_scheduled(conn, list(missing.values()))
        fast = [r for r in requests if not r.force and not (
            r.window.window_key in before and before[r.window.window_key].state.terminal)]
        if fast:
            conn.execute(batch_sql.claim_update(RUNS),
                         batch_sql.claim_params(fast, self._clock.now()))  # fmt: skip
        after = batch_sql.rows_by_key(conn, RUNS, keys, record_of)
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
        restart = RUNS.c.state.in_(TERMINAL_NAMES)
        claimable = [
            *self._match(window.job, window.window_start),
            RUNS.c.token.is_(None) | (RUNS.c.token < token),
        ]
        if not force:
            claimable += [RUNS.c.state.not_in(TERMINAL_NAMES), RUNS.c.attempt < request.max_attempts]
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
            return Claim(ClaimStatus.CLAIMED, record_of(claimed), previous)
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
            .where(*self._match(record.job, record.window_start), RUNS.c.state.not_in(TERMINAL_NAMES))
            .values(state=str(RunState.FAILED), error_type="WorkerLost",
                    error_message=f"worker lost {record.attempt} times",
                    finished_at=now, updated_at=now)
        )  # fmt: skip
        failed = self._fetch(conn, record.job, record.window_start)
        assert failed is not None
        return Claim(ClaimStatus.EXHAUSTED, failed)
