"""Forced runs in the ledger: the grants that allow them (``force_grants``) and the earlier
records they replaced (``run_history``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select, update

from agentcron.ledger.engine import begin_read, begin_write
from agentcron.ledger.models import ForceGrantRow, RunHistoryRow
from agentcron.ledger.records import RunRecord, record_from

HISTORY = cast(Table, RunHistoryRow.__table__)
GRANTS = cast(Table, ForceGrantRow.__table__)


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


def grant_force(engine: Engine, window_keys: Sequence[str], now: datetime, by: str) -> None:
    """Allow one forced run of each of ``window_keys`` (written before the message is sent)."""
    if not window_keys:
        return
    with begin_write(engine) as conn:
        conn.execute(GRANTS.insert(), [{"window_key": key, "granted_by": by[:32],
                                        "granted_at": now} for key in window_keys])  # fmt: skip


def use_force(engine: Engine, window_key: str, now: datetime) -> bool:
    """Use one unused grant of ``window_key``; False when there is none (the ``force`` of the
    message asking is forged or a replay). Two deliveries never use the same grant."""
    oldest = (select(GRANTS.c.id).where(GRANTS.c.window_key == window_key,
                                        GRANTS.c.used_at.is_(None))
              .order_by(GRANTS.c.id).limit(1).scalar_subquery())  # fmt: skip
    statement = (update(GRANTS).where(GRANTS.c.id == oldest, GRANTS.c.used_at.is_(None))
                 .values(used_at=now))  # fmt: skip
    with begin_write(engine) as conn:
        return bool(conn.execute(statement).rowcount == 1)
