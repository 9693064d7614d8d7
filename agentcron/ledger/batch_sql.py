"""Set-based claims and completions: a few statements per batch, whatever its size.

A batch of N claims is: one SELECT of the N rows, one bulk INSERT of the missing ones, one
executemany UPDATE (compiled once; fenced per row on its own token, attempt cap and state), and
one SELECT to read back who won. A request won its row exactly when the row now carries its token
(tokens are unique: they come from a counter that only grows). A batch of N completions is one
executemany fenced UPDATE and one SELECT. Anything unusual (a forced claim, an exhausted window,
a completion without a duration) goes through the one-row path, which has the same semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, TextClause, bindparam, or_, select, text, update

from agentcron.ledger.records import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    ClaimRequest,
    CompleteRequest,
    NewWindow,
    RunRecord,
    RunState,
)

# Spelled out as plain comparisons: IN-lists expand at execution and executemany refuses them.
_TERMINAL = sorted(str(s) for s in TERMINAL_STATES)
_ACTIVE = sorted(str(s) for s in ACTIVE_STATES)
Record = Callable[[Any], RunRecord]


# PostgreSQL: new windows in ONE statement of fixed text (arrays, not a VALUES list that changes
# with the batch size and is re-parsed every time): rows 'scheduled', attempt 0, stamped now.
PG_INSERT_SCHEDULED: TextClause = text(
    "INSERT INTO runs (job, window_start, window_key, slot, trigger, state, attempt,"
    " scheduled_at, updated_at)"
    " SELECT u.job, u.window_start, u.window_key, u.slot, u.trigger, 'scheduled', 0, :now, :now"
    " FROM unnest(string_to_array(:jobs, chr(10)),"
    " CAST(string_to_array(:starts, chr(10)) AS timestamptz[]), string_to_array(:keys, chr(10)),"
    " CAST(string_to_array(:slots, chr(10)) AS timestamptz[]), string_to_array(:triggers, chr(10)))"
    " AS u(job, window_start, window_key, slot, trigger)"
    " ON CONFLICT DO NOTHING RETURNING window_key"
)


def pg_insert_params(windows: Sequence[NewWindow], now: datetime) -> dict[str, Any]:
    """Parameters of :data:`PG_INSERT_SCHEDULED`: each column one newline-separated text (the
    driver's array dumping cost 1.3 s per 100,000 windows; a join costs milliseconds). Job
    names, window keys and triggers never hold a newline; a value that did is refused."""
    texts: dict[datetime, str] = {}  # a boundary's windows share a few instants

    def instant(value: datetime) -> str:
        found = texts.get(value)
        if found is None:
            found = texts[value] = value.isoformat()
        return found

    texts_of = {"jobs": "\n".join([w.job for w in windows]),
                "keys": "\n".join([w.window_key for w in windows]),
                "triggers": "\n".join([w.trigger for w in windows])}  # fmt: skip
    lines = max(len(windows) - 1, 0)
    if any(text.count("\n") != lines for text in texts_of.values()):
        raise ValueError("a job name, window key or trigger holds a newline")
    return {"now": now, **texts_of,
            "starts": "\n".join([instant(w.window_start) for w in windows]),
            "slots": "\n".join([instant(w.slot) for w in windows])}  # fmt: skip


def rows_by_key(conn: Connection, runs: Table, keys: Sequence[str], record: Record,
                ) -> dict[str, RunRecord]:  # fmt: skip
    """The rows of ``keys`` (window keys), by key."""
    found: dict[str, RunRecord] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for row in conn.execute(select(runs).where(runs.c.window_key.in_(chunk))):
            found[row._mapping["window_key"]] = record(row)
    return found


def claim_update(runs: Table) -> Any:
    """The fenced claim of one row, for executemany (claimed straight into ``running``)."""
    c = runs.c
    return (
        update(runs)
        .where(c.window_key == bindparam("b_key"),
               c.token.is_(None) | (c.token < bindparam("b_token")),
               *(c.state != state for state in _TERMINAL), c.attempt < bindparam("b_max"))
        .values(state=bindparam("b_state"), token=bindparam("b_token"),
                worker_id=bindparam("b_worker"), attempt=c.attempt + 1,
                started_at=bindparam("b_started", type_=c.started_at.type), finished_at=None,
                updated_at=bindparam("b_now", type_=c.updated_at.type))
    )  # fmt: skip


def claim_params(requests: Sequence[ClaimRequest], now: datetime) -> list[dict[str, Any]]:
    """executemany parameters of :func:`claim_update`."""
    return [
        {"b_key": r.window.window_key, "b_token": r.token, "b_max": r.max_attempts,
         "b_state": str(RunState.RUNNING if r.running else RunState.CLAIMED),
         "b_worker": r.worker_id, "b_started": now if r.running else None, "b_now": now}
        for r in requests
    ]  # fmt: skip


def complete_update(runs: Table) -> Any:
    """The fenced completion of one row, for executemany."""
    c = runs.c
    return (
        update(runs)
        .where(c.window_key == bindparam("b_key"), c.token == bindparam("b_token"),
               or_(*(c.state == state for state in _ACTIVE)))
        .values(state=bindparam("b_state"), result=bindparam("b_result", type_=c.result.type),
                finished_at=bindparam("b_now", type_=c.finished_at.type),
                updated_at=bindparam("b_now2", type_=c.updated_at.type),
                duration=bindparam("b_duration"), error_type=bindparam("b_error_type"),
                error_message=bindparam("b_error_message"))
    )  # fmt: skip


def complete_params(requests: Sequence[CompleteRequest], keys: Sequence[str], now: datetime,
                    ) -> list[dict[str, Any]]:  # fmt: skip
    """executemany parameters of :func:`complete_update`."""
    return [
        {"b_key": key, "b_token": r.token, "b_state": str(r.state), "b_result": r.result,
         "b_now": now, "b_now2": now, "b_duration": r.duration, "b_error_type": r.error_type,
         "b_error_message": r.error_message}
        for r, key in zip(requests, keys, strict=True)
    ]  # fmt: skip
