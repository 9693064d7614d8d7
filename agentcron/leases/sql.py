"""Leases in the SQL ledger's ``leases`` table (SQLite for the embedded mode, PostgreSQL).

Two rows per lease name, never deleted: ``{name}`` holds the lease (``owner``, ``token`` of the
holder, ``expires_at``; release sets ``owner`` and ``expires_at`` to NULL) and ``fence:{name}``
holds the fencing counter in its ``token`` (so ``next_token`` can bump it without disturbing the
holder; job names cannot contain ``:``, so these names never collide with a lease).

Every write is one short transaction that starts with a write (``INSERT … ON CONFLICT DO
NOTHING``), then a conditional ``UPDATE … WHERE owner IS NULL OR expires_at <= now RETURNING``:
on PostgreSQL the row lock makes concurrent writers re-check the condition (exactly one wins); on
SQLite the first write takes the database's write lock, so there is no read-to-write upgrade and
concurrent processes queue on ``busy_timeout``. Only the winner bumps the counter (lease row
locked first, then the fence row; ``next_token`` locks only the fence row: no lock cycle). Time
comes from the injected Clock, so all processes must share a clock (NTP) as they share the
database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agentcron.clock import Clock
from agentcron.leases.base import Lease
from agentcron.ledger.engine import READ_ONLY
from agentcron.ledger.models import LeaseRow

LEASES: sa.Table = LeaseRow.__table__  # type: ignore[assignment]
OWNER_MAX = 100


def ensure_row(conn: sa.Connection, name: str) -> None:
    """Insert an empty lease row for ``name`` unless it exists (a write, first in the txn)."""
    values: dict[str, Any] = {"name": name, "owner": None, "token": 0, "expires_at": None}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(postgresql.insert(LEASES).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        conn.execute(sqlite.insert(LEASES).values(**values).on_conflict_do_nothing())
    else:
        exists = conn.execute(sa.select(LEASES.c.name).where(LEASES.c.name == name)).first()
        if exists is None:
            with conn.begin_nested():
                conn.execute(sa.insert(LEASES).values(**values))


def fence_row(name: str) -> str:
    """The ``leases`` row name that carries the fencing counter of ``name``."""
    return f"fence:{name}"


def _bump_fence(conn: sa.Connection, name: str) -> int:
    ensure_row(conn, fence_row(name))
    stmt = (
        sa.update(LEASES).where(LEASES.c.name == fence_row(name))
        .values(token=LEASES.c.token + 1).returning(LEASES.c.token)
    )
    return int(conn.execute(stmt).scalar_one())


def _is_ours(lease: Lease) -> sa.ColumnElement[bool]:
    return sa.and_(LEASES.c.name == lease.name, LEASES.c.owner == lease.owner,
                   LEASES.c.token == lease.token)


class SqlLeaseStore:
    """A :class:`~agentcron.leases.base.LeaseStore` on a SQLAlchemy engine."""

    def __init__(self, engine: sa.Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def _expiry(self, ttl: float) -> tuple[datetime, datetime]:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        now = self.clock.now()
        return now, now + timedelta(seconds=ttl)

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if nobody holds it; None if somebody does."""
        if len(owner) > OWNER_MAX:
            raise ValueError(f"lease owner longer than {OWNER_MAX} characters")
        now, expires = self._expiry(ttl)
        take = (
            sa.update(LEASES)
            .where(LEASES.c.name == name)
            .where(sa.or_(LEASES.c.owner.is_(None), LEASES.c.expires_at.is_(None),
                          LEASES.c.expires_at <= now))
            .values(owner=owner, expires_at=expires)
            .returning(LEASES.c.name)
        )
        with self.engine.begin() as conn:
            ensure_row(conn, name)
            if conn.execute(take).first() is None:
                return None
            token = _bump_fence(conn, name)
            conn.execute(sa.update(LEASES).where(LEASES.c.name == name).values(token=token))
        return Lease(name=name, owner=owner, token=token)

    def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend our lease to ``ttl`` seconds from now; False if we lost it."""
        now, expires = self._expiry(ttl)
        stmt = (
            sa.update(LEASES)
            .where(_is_ours(lease), LEASES.c.expires_at > now)
            .values(expires_at=expires)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def release(self, lease: Lease) -> bool:
        """Compare-and-delete (sets owner and expiry to NULL); False if no longer ours."""
        stmt = (
            sa.update(LEASES)
            .where(_is_ours(lease), LEASES.c.expires_at > self.clock.now())
            .values(owner=None, expires_at=None)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""
        stmt = sa.select(LEASES.c.owner, LEASES.c.token).where(
            LEASES.c.name == name, LEASES.c.owner.is_not(None),
            LEASES.c.expires_at > self.clock.now(),
        )
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else Lease(name=name, owner=str(row[0]), token=int(row[1]))

    def next_token(self, name: str) -> int:
        """A fresh fencing token for ``name`` without taking the lease."""
        with self.engine.begin() as conn:
            return _bump_fence(conn, name)
