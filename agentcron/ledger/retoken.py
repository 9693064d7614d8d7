"""Moving a running window's row to a new fencing token (a reacquired lease, issue 20)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, Table, update

from agentcron.ledger.engine import begin_write
from agentcron.ledger.models import RunRow
from agentcron.ledger.records import ACTIVE_STATES

RUNS: Table = RunRow.__table__  # type: ignore[assignment]
_ACTIVE = sorted(str(s) for s in ACTIVE_STATES)


def retoken(engine: Engine, window_key: str, old: int, new: int, now: datetime) -> bool:
    """Move the active row of ``window_key`` from token ``old`` to ``new`` (one fenced UPDATE);
    False if the row no longer names ``old`` or is no longer active."""
    stmt = (update(RUNS)
            .where(RUNS.c.window_key == window_key, RUNS.c.token == old,
                   RUNS.c.state.in_(_ACTIVE))
            .values(token=new, updated_at=now))  # fmt: skip
    with begin_write(engine) as conn:
        return bool(conn.execute(stmt).rowcount == 1)
