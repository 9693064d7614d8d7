"""One run's claim, and the completion of any number of runs, on PostgreSQL: ONE autocommit
statement each.

A sync run (one prefork child, one run at a time) cannot batch its ledger writes, so what it
pays per run is round trips: the general path is BEGIN, SET LOCAL, SELECT, UPDATE, COMMIT for
the claim and BEGIN, UPDATE, COMMIT for the completion, each statement built and compiled by
SQLAlchemy. Here the claim is one statement of fixed text (prepared by psycopg after a few
uses) that reads the row as it stood (``FOR UPDATE``), claims it or inserts it already claimed,
and returns both; the completion of N runs is one fenced ``UPDATE … FROM unnest(…) RETURNING``
of the runs it finished (the async worker's batches of completions too: it replaces an
executemany and a read-back in a transaction). Each is its own transaction, run on the
driver's cursor of a pooled connection (SQLAlchemy's result machinery cost more CPU than the
statement); errors come out as SQLAlchemy's, as from any other ledger call.

Only the common outcome is decided here: the claim was won. Anything else (the window is done,
held by a newer token, out of attempts, or inserted by a racing worker) returns None and the
caller takes the general path, which owns those rules; nothing was written in that case.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from agentcron.ledger.records import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    ClaimRequest,
    CompleteRequest,
    RunRecord,
    RunState,
    record_from,
)

COLUMNS = ("id", "job", "window_start", "window_key", "slot", "trigger", "state", "attempt",
           "token", "worker_id", "scheduled_at", "started_at", "finished_at", "duration",
           "error_type", "error_message", "result", "updated_at")  # fmt: skip
_LIST = ", ".join(COLUMNS)
_QUALIFIED = ", ".join(f"runs.{name}" for name in COLUMNS)
_TERMINAL = ", ".join(f"'{s}'" for s in sorted(str(s) for s in TERMINAL_STATES))
_ACTIVE = ", ".join(f"'{s}'" for s in sorted(str(s) for s in ACTIVE_STATES))

# The claim's commit does not wait for its WAL flush (see ``Ledger._relaxed_commit`` for why
# that is safe): ``set_config(..., true)`` is SET LOCAL as an expression; as an uncorrelated
# condition it runs once, before the row is read, and the statement's own commit obeys it.
CLAIM_SQL = f"""
WITH prev AS (
    SELECT {_LIST} FROM runs
    WHERE job = %(job)s AND window_start = %(window_start)s
      AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
    FOR UPDATE
), claimed AS (
    UPDATE runs SET state = %(state)s, token = %(token)s, worker_id = %(worker)s,
        attempt = runs.attempt + 1, started_at = %(started)s, finished_at = NULL,
        updated_at = %(now)s
    FROM prev
    WHERE runs.id = prev.id AND (runs.token IS NULL OR runs.token < %(token)s)
      AND runs.state NOT IN ({_TERMINAL}) AND runs.attempt < %(max_attempts)s
    RETURNING {_QUALIFIED}
), inserted AS (
    INSERT INTO runs (job, window_start, window_key, slot, trigger, state, attempt, token,
                      worker_id, scheduled_at, started_at, updated_at)
    SELECT %(job)s, %(window_start)s, %(window_key)s, %(slot)s, %(trigger)s, %(state)s, 1,
           %(token)s, %(worker)s, %(now)s, %(started)s, %(now)s
    WHERE NOT EXISTS (SELECT 1 FROM prev) AND %(max_attempts)s >= 1
    ON CONFLICT DO NOTHING
    RETURNING {_LIST}
)
SELECT 'claimed' AS kind, {_LIST} FROM claimed
UNION ALL SELECT 'inserted', {_LIST} FROM inserted
UNION ALL SELECT 'previous', {_LIST} FROM prev
"""

# Each request is a row of the arrays; a request won when its (job, window_start, token) comes
# back. A request whose row is not active under its token is left alone (a stale holder).
COMPLETE_SQL = f"""
UPDATE runs SET state = r.state, result = CAST(r.result AS json), finished_at = %(now)s,
    updated_at = %(now)s, duration = r.duration, error_type = r.error_type,
    error_message = r.error_message
FROM unnest(CAST(%(jobs)s AS varchar[]), CAST(%(starts)s AS timestamptz[]),
            CAST(%(tokens)s AS bigint[]), CAST(%(states)s AS varchar[]),
            CAST(%(results)s AS text[]), CAST(%(durations)s AS float8[]),
            CAST(%(error_types)s AS varchar[]), CAST(%(error_messages)s AS text[]))
    AS r(job, window_start, token, state, result, duration, error_type, error_message)
WHERE runs.job = r.job AND runs.window_start = r.window_start AND runs.token = r.token
  AND runs.state IN ({_ACTIVE})
RETURNING runs.job, runs.window_start, runs.token
"""


T = TypeVar("T")


def usable(engine: Engine) -> bool:
    """Whether this engine's database takes these statements."""
    return engine.dialect.name == "postgresql"


def claim(engine: Engine, request: ClaimRequest, now: datetime,
          ) -> tuple[RunRecord, RunRecord | None] | None:  # fmt: skip
    """Claim a not-forced request: (the row claimed, the row before) if won, else None."""
    window = request.window
    state = RunState.RUNNING if request.running else RunState.CLAIMED
    params = {"job": window.job, "window_start": window.window_start,
              "window_key": window.window_key, "slot": window.slot, "trigger": window.trigger,
              "state": str(state), "token": request.token, "worker": request.worker_id,
              "started": now if request.running else None, "now": now,
              "max_attempts": request.max_attempts}  # fmt: skip
    rows = {row[0]: row for row in _run(engine, CLAIM_SQL, params, lambda c: c.fetchall())}
    won = rows.get("claimed") or rows.get("inserted")
    if won is None:
        return None
    previous = rows.get("previous")
    return _record(won), None if previous is None else _record(previous)


def complete(engine: Engine, requests: Sequence[CompleteRequest], now: datetime) -> list[bool]:
    """The fenced completions of ``requests`` (each with its duration); False where stale."""
    params = {"now": now, "jobs": [r.job for r in requests],
              "starts": [r.window_start for r in requests],
              "tokens": [r.token for r in requests], "states": [str(r.state) for r in requests],
              "results": [None if r.result is None else json.dumps(r.result) for r in requests],
              "durations": [r.duration for r in requests],
              "error_types": [r.error_type for r in requests],
              "error_messages": [r.error_message for r in requests]}  # fmt: skip
    won = _run(engine, COMPLETE_SQL, params, lambda c: c.fetchall())
    finished = {(job, start.astimezone(UTC), token) for job, start, token in won}
    return [(r.job, r.window_start.astimezone(UTC), r.token) in finished for r in requests]


def _run(engine: Engine, sql: str, params: dict[str, Any], read: Callable[[Any], T]) -> T:
    """``sql`` as its own transaction on a pooled connection; what ``read`` takes of its cursor.

    The connection goes back to the pool as it came (autocommit off). Any error discards it
    (it may be broken, or interrupted mid-statement by a time limit); a driver error is raised
    as SQLAlchemy's, marked invalidated when the server went away, so the guard's retry on an
    unreachable ledger sees what it sees from every other ledger call. Its text leaves out the
    parameters (a result or an error message may carry what should not reach a log).
    """
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()  # the pool lets a failed connect's driver error out
    except dbapi_error as exc:
        raise _wrapped(engine, sql, params, exc, broken=False) from exc
    driver: Any = pooled.driver_connection
    try:
        driver.autocommit = True
        found = read(driver.execute(sql, params))
        driver.autocommit = False
        return found
    except BaseException as exc:
        pooled.invalidate(exc)
        if not isinstance(exc, dbapi_error):
            raise
        broken = engine.dialect.is_disconnect(exc, driver, None)
        raise _wrapped(engine, sql, params, exc, broken) from exc
    finally:
        pooled.close()


def _wrapped(engine: Engine, sql: str, params: dict[str, Any], exc: Exception,
             broken: bool) -> BaseException:  # fmt: skip
    dbapi_error = engine.dialect.loaded_dbapi.Error
    return DBAPIError.instance(sql, params, exc, dbapi_error, hide_parameters=True,
                               connection_invalidated=broken, dialect=engine.dialect)


def _record(row: Any) -> RunRecord:
    """A row of ``kind, *COLUMNS`` as a record (datetimes in UTC, as the typed columns give)."""
    values = {name: value.astimezone(UTC) if isinstance(value, datetime) else value
              for name, value in zip(COLUMNS, row[1:], strict=True)}  # fmt: skip
    return record_from(values)
