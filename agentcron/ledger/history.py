"""Keeping and reading the earlier records of re-run windows (the ``run_history`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select

from agentcron.ledger.engine import begin_read
from agentcron.ledger.models import RunHistoryRow
from agentcron.ledger.records import RunRecord, record_from

HISTORY = cast(Table, RunHistoryRow.__table__)


def keep(conn: Connection, earlier: RunRecord, now: datetime, replaced_by: str) -> None:
    """Copy ``earlier`` (a terminal record about to be taken over) into ``run_history``, in the
    caller's transaction (the one whose claim replaces it)."""
    values: dict[str, Any] = asdict(earlier)
    values["state"] = str(earlier.state)
    conn.execute(HISTORY.insert(), values | {"replaced_at": now, "replaced_by": replaced_by[:200]})


def history_of(engine: Engine, window_keys: Sequence[str]) -> dict[str, list[RunRecord]]:
    """The earlier records of ``window_keys``, oldest first, by key (only keys that have any)."""
    found: dict[str, list[RunRecord]] = {}
    keys = list(dict.fromkeys(window_keys))
    with begin_read(engine) as conn:
        for offset in range(0, len(keys), 500):
            query = (select(HISTORY).where(HISTORY.c.window_key.in_(keys[offset:offset + 500]))
                     .order_by(HISTORY.c.id))  # fmt: skip
            for row in conn.execute(query):
                record = record_from(row._mapping)
                found.setdefault(record.window_key, []).append(record)
    return found
