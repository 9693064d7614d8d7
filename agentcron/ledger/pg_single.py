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

# Many requests bind arrays, unnested into a relation ``req`` (re-planned per batch, which a
# batch amortises). One request (a sync run, every time) binds scalars in a plain statement of
# the same meaning: PostgreSQL keeps its plan, and it cost ~20 % less CPU per run than the
# relation form with one row.
CLAIM_FIELDS = (("job", "varchar"), ("window_start", "timestamptz"), ("window_key", "varchar"),
                ("slot", "timestamptz"), ("trigger", "varchar"), ("state", "varchar"),
                ("token", "bigint"), ("worker", "varchar"), ("started", "timestamptz"),
                ("max_attempts", "integer"))  # fmt: skip
COMPLETE_FIELDS = (("job", "varchar"), ("window_start", "timestamptz"), ("token", "bigint"),
                   ("state", "varchar"), ("result", "text"), ("duration", "float8"),
                   ("error_type", "varchar"), ("error_message", "text"))  # fmt: skip


def _unnest(fields: tuple[tuple[str, str], ...]) -> str:
    arrays = ", ".join(f"CAST(%({n})s AS {t}[])" for n, t in fields)
    return f"(SELECT * FROM unnest({arrays}) AS u({', '.join(n for n, _ in fields)}))"


# What both claim statements return: the rows won (claimed or inserted), and as they stood.
_ROWS = f"""SELECT 'claimed' AS kind, {_LIST} FROM claimed
UNION ALL SELECT 'inserted', {_LIST} FROM inserted
UNION ALL SELECT 'previous', {_LIST} FROM prev
"""
_INSERT = ("INSERT INTO runs (job, window_start, window_key, slot, trigger, state, attempt, token,"
           " worker_id, scheduled_at, started_at, updated_at)")

# One row per window (the caller sends a window at most once). ``prev`` locks the rows that
# exist, in id order (two batches never wait on each other in a cycle), and keeps them as they
# stood; ``claimed`` fences each on its request's token, state and attempts; ``inserted`` writes
# the missing ones already claimed. The claim's commit does not wait for its WAL flush (see
# ``Ledger._relaxed_commit`` for why that is safe): ``set_config(..., true)`` is SET LOCAL as an
# expression; as an uncorrelated condition it runs once, before any row is read, and the
# statement's own commit obeys it.
_CLAIM = f"""
WITH req AS {{relation}}, prev AS (
    SELECT {_QUALIFIED} FROM runs JOIN req
      ON runs.job = req.job AND runs.window_start = req.window_start
    WHERE (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
    ORDER BY runs.id
    FOR UPDATE OF runs
), claimed AS (
    UPDATE runs SET state = req.state, token = req.token, worker_id = req.worker,
        attempt = runs.attempt + 1, started_at = req.started, finished_at = NULL,
        updated_at = %(now)s
    FROM prev, req
    WHERE runs.id = prev.id AND req.job = prev.job AND req.window_start = prev.window_start
      AND (runs.token IS NULL OR runs.token < req.token)
      AND runs.state NOT IN ({_TERMINAL}) AND runs.attempt < req.max_attempts
    RETURNING {_QUALIFIED}
), inserted AS (
    {_INSERT}
    SELECT req.job, req.window_start, req.window_key, req.slot, req.trigger, req.state, 1,
           req.token, req.worker, %(now)s, req.started, %(now)s
    FROM req
    WHERE req.max_attempts >= 1 AND NOT EXISTS (
        SELECT 1 FROM prev WHERE prev.job = req.job AND prev.window_start = req.window_start)
    ON CONFLICT DO NOTHING
    RETURNING {_LIST}
)
{_ROWS}"""

# A request won when its (job, window_start, token) comes back; one whose row is not active
# under its token is left alone (a stale holder).
_COMPLETE = f"""
UPDATE runs SET state = r.state, result = CAST(r.result AS json), finished_at = %(now)s,
    updated_at = %(now)s, duration = r.duration, error_type = r.error_type,
    error_message = r.error_message
FROM {{relation}} AS r
WHERE runs.job = r.job AND runs.window_start = r.window_start AND runs.token = r.token
  AND runs.state IN ({_ACTIVE})
RETURNING runs.job, runs.window_start, runs.token
"""

CLAIM_MANY_SQL = _CLAIM.format(relation=_unnest(CLAIM_FIELDS))
COMPLETE_MANY_SQL = _COMPLETE.format(relation=_unnest(COMPLETE_FIELDS))

CLAIM_ONE_SQL = f"""
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
    {_INSERT}
    SELECT %(job)s, %(window_start)s, %(window_key)s, %(slot)s, %(trigger)s, %(state)s, 1,
           %(token)s, %(worker)s, %(now)s, %(started)s, %(now)s
    WHERE NOT EXISTS (SELECT 1 FROM prev) AND %(max_attempts)s >= 1
    ON CONFLICT DO NOTHING
    RETURNING {_LIST}
)
{_ROWS}"""

COMPLETE_ONE_SQL = f"""
UPDATE runs SET state = %(state)s, result = CAST(%(result)s AS json), finished_at = %(now)s,
    updated_at = %(now)s, duration = %(duration)s, error_type = %(error_type)s,
    error_message = %(error_message)s
WHERE job = %(job)s AND window_start = %(window_start)s AND token = %(token)s
  AND state IN ({_ACTIVE})
RETURNING job, window_start, token
"""


def _bind(columns: dict[str, list[Any]], now: datetime, one_sql: str, many_sql: str,
          ) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The statement for this many requests, and its parameters: each field's value for one
    request (``one_sql``), its list of values for many (``many_sql``)."""
    if len(next(iter(columns.values()))) == 1:
        return one_sql, {"now": now} | {name: values[0] for name, values in columns.items()}
    return many_sql, {"now": now, **columns}


T = TypeVar("T")


def claim(engine: Engine, requests: Sequence[ClaimRequest], now: datetime,
          ) -> list[tuple[RunRecord, RunRecord | None] | None]:  # fmt: skip
    """Claim not-forced requests of distinct windows: for each, (the row claimed, the row
    before) if it won, else None (nothing was written for it)."""
    windows = [r.window for r in requests]
    columns: dict[str, list[Any]] = {
        "job": [w.job for w in windows], "window_start": [w.window_start for w in windows],
        "window_key": [w.window_key for w in windows], "slot": [w.slot for w in windows],
        "trigger": [w.trigger for w in windows],
        "state": [str(RunState.RUNNING if r.running else RunState.CLAIMED) for r in requests],
        "token": [r.token for r in requests], "worker": [r.worker_id for r in requests],
        "started": [now if r.running else None for r in requests],
        "max_attempts": [r.max_attempts for r in requests],
    }  # fmt: skip
    sql, params = _bind(columns, now, CLAIM_ONE_SQL, CLAIM_MANY_SQL)
    won: dict[str, RunRecord] = {}
    before: dict[str, RunRecord] = {}
    for row in _run(engine, sql, params, lambda c: c.fetchall()):
        record = _record(row)
        (before if row[0] == "previous" else won)[record.window_key] = record
    results: list[tuple[RunRecord, RunRecord | None] | None] = []
    for request in requests:
        key = request.window.window_key
        claimed = won.get(key)
        if claimed is not None and claimed.token == request.token:
            results.append((claimed, before.get(key)))
        else:
            results.append(None)
    return results


def complete(engine: Engine, requests: Sequence[CompleteRequest], now: datetime) -> list[bool]:
    """The fenced completions of ``requests`` (each with its duration); False where stale."""
    columns: dict[str, list[Any]] = {
        "job": [r.job for r in requests], "window_start": [r.window_start for r in requests],
        "token": [r.token for r in requests], "state": [str(r.state) for r in requests],
        "result": [None if r.result is None else json.dumps(r.result) for r in requests],
        "duration": [r.duration for r in requests], "error_type": [r.error_type for r in requests],
        "error_message": [r.error_message for r in requests],
    }  # fmt: skip
    sql, params = _bind(columns, now, COMPLETE_ONE_SQL, COMPLETE_MANY_SQL)
    won = _run(engine, sql, params, lambda c: c.fetchall())
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
