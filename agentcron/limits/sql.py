"""Fleet-wide limits in the SQL ledger (the embedded default; works on PostgreSQL too).

Each write is one transaction that first locks the limit's mutex row (``limit:{name}`` in the
``leases`` table: an insert-if-missing, then an update of it; on SQLite the first write takes
the database's write lock, on PostgreSQL the row lock queues the others), then drops expired
slots or old grants, counts and inserts. Time comes from the injected Clock, so all processes
must share a clock, as they share the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from agentcron.clock import Clock
from agentcron.leases.sql import LEASES, ensure_row
from agentcron.ledger.engine import READ_ONLY
from agentcron.ledger.spend_models import LimitGrantRow, LimitSlotRow
from agentcron.limits.declare import Limit

SLOTS: sa.Table = LimitSlotRow.__table__  # type: ignore[assignment]
GRANTS: sa.Table = LimitGrantRow.__table__  # type: ignore[assignment]


def _lock(conn: sa.Connection, name: str) -> None:
    row = f"limit:{name}"
    ensure_row(conn, row)
    conn.execute(sa.update(LEASES).where(LEASES.c.name == row).values(token=LEASES.c.token))


class SqlLimitStore:
    """A :class:`~agentcron.limits.base.LimitStore` on a SQLAlchemy engine."""

    def __init__(self, engine: sa.Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def acquire_slot(self, limit: Limit, holder: str) -> bool:
        now = self.clock.now()
        mine = sa.and_(SLOTS.c.name == limit.name, SLOTS.c.holder == holder)
        with self.engine.begin() as conn:
            _lock(conn, limit.name)
            conn.execute(sa.delete(SLOTS).where(SLOTS.c.name == limit.name,
                                                SLOTS.c.expires_at <= now))
            held = conn.execute(sa.select(SLOTS.c.holder).where(SLOTS.c.name == limit.name))
            holders = {str(h) for (h,) in held}
            expires = now + timedelta(seconds=limit.ttl)
            if holder in holders:
                conn.execute(sa.update(SLOTS).where(mine).values(expires_at=expires))
                return True
            if len(holders) >= (limit.concurrency or 0):
                return False
            conn.execute(sa.insert(SLOTS).values(name=limit.name, holder=holder,
                                                 expires_at=expires))
        return True

    def renew_slots(self, held: Sequence[tuple[Limit, str]]) -> list[bool]:
        now = self.clock.now()
        out: list[bool] = []
        with self.engine.begin() as conn:
            for limit, holder in held:
                stmt = (sa.update(SLOTS)
                        .where(SLOTS.c.name == limit.name, SLOTS.c.holder == holder,
                               SLOTS.c.expires_at > now)
                        .values(expires_at=now + timedelta(seconds=limit.ttl)))  # fmt: skip
                out.append(conn.execute(stmt).rowcount == 1)
        return out

    def release_slot(self, limit: Limit, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(SLOTS).where(SLOTS.c.name == limit.name,
                                                SLOTS.c.holder == holder))

    def take_rate(self, limit: Limit, tokens: int) -> float:
        if limit.tokens_per_minute is not None and tokens > limit.tokens_per_minute:
            raise ValueError(f"{tokens} tokens exceed limit {limit.name!r}'s "
                             f"tokens_per_minute of {limit.tokens_per_minute}")
        now = self.clock.now()
        since = now - timedelta(seconds=limit.period)
        with self.engine.begin() as conn:
            _lock(conn, limit.name)
            conn.execute(sa.delete(GRANTS).where(GRANTS.c.name == limit.name,
                                                 GRANTS.c.granted_at <= since))
            grants = conn.execute(sa.select(GRANTS.c.granted_at, GRANTS.c.tokens)
                                  .where(GRANTS.c.name == limit.name)
                                  .order_by(GRANTS.c.granted_at, GRANTS.c.id)).all()
            wait = _wait(limit, [(at, int(n)) for at, n in grants], tokens, now)
            if wait > 0:
                return wait
            conn.execute(sa.insert(GRANTS).values(name=limit.name, granted_at=now, tokens=tokens))
        return 0.0

    def mark_waiting(self, limit: Limit, holder: str, seconds: float) -> None:
        # Waiters are rows of the slots table under "{name}:waiting" (a limit name has no ':').
        expires = self.clock.now() + timedelta(seconds=seconds)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(SLOTS).where(SLOTS.c.name == _waiting(limit),
                                                SLOTS.c.holder == holder))
            conn.execute(sa.insert(SLOTS).values(name=_waiting(limit), holder=holder,
                                                 expires_at=expires))

    def unmark_waiting(self, limit: Limit, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(SLOTS).where(SLOTS.c.name == _waiting(limit),
                                                SLOTS.c.holder == holder))

    def waiters(self, limit: Limit) -> list[str]:
        return self._live(_waiting(limit))

    def holders(self, limit: Limit) -> list[str]:
        return self._live(limit.name)

    def _live(self, name: str) -> list[str]:
        query = sa.select(SLOTS.c.holder).where(SLOTS.c.name == name,
                                                SLOTS.c.expires_at > self.clock.now())
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            return [str(h) for (h,) in conn.execute(query)]

    def recent(self, limit: Limit) -> tuple[int, int]:
        since = self.clock.now() - timedelta(seconds=limit.period)
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(GRANTS.c.tokens), 0)) \
            .where(GRANTS.c.name == limit.name, GRANTS.c.granted_at > since)
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            count, tokens = conn.execute(query).one()
        return int(count), int(tokens)


def _waiting(limit: Limit) -> str:
    return f"{limit.name}:waiting"


def _wait(limit: Limit, grants: list[tuple[datetime, int]], tokens: int, now: datetime) -> float:
    """Seconds until one more grant of ``tokens`` fits the window (0.0: it fits now)."""
    period = timedelta(seconds=limit.period)
    wait = 0.0
    if limit.per_minute is not None and len(grants) + 1 > limit.per_minute:
        oldest = grants[len(grants) - limit.per_minute][0]
        wait = (oldest + period - now).total_seconds() + 0.001
    used = sum(n for _, n in grants)
    if limit.tokens_per_minute is not None and used + tokens > limit.tokens_per_minute:
        freed = 0
        for at, n in grants:
            freed += n
            if used - freed + tokens <= limit.tokens_per_minute:
                wait = max(wait, (at + period - now).total_seconds() + 0.001)
                break
    return wait
