"""The deliveries table as a work queue: claim with a lease, then mark sent, retry or failed.

Portable SQL (SQLite and PostgreSQL): a claim picks due ``pending`` rows whose lease is free or
lapsed, and takes them with one conditional ``UPDATE … WHERE id IN (…) AND (lease free or
lapsed) RETURNING …``; only the sender whose update changed a row holds it. Every later mark is fenced on the
holder (``lease_owner``): a sender that lost its lease (paused past it) cannot overwrite what
the next holder did. A sender killed between its send and its mark leaves a lapsed lease, so
the row is sent again (with the same Message-ID / Idempotency-Key) by the next claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, update

from agentcron.clock import Clock
from agentcron.ledger.engine import begin_read, begin_write
from agentcron.ledger.outputs import DELIVERIES as D

STATES = ("pending", "sent", "failed")
ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class Delivery:
    """One row of the deliveries table."""

    id: int
    report_id: int
    job: str
    window_key: str
    seq: int
    target: str
    kind: str
    state: str
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None

    def summary(self) -> dict[str, Any]:
        """A JSON-safe dict for output (the target shown without a URL's path)."""
        from agentcron.delivery.targets import safe_target

        iso = {name: value.isoformat() if isinstance(value, datetime) else value
               for name, value in self.__dict__.items()}  # fmt: skip
        return iso | {"target": safe_target(self.target)}


def _delivery(row: Any) -> Delivery:
    m = row._mapping
    return Delivery(**{name: m[name] for name in Delivery.__dataclass_fields__})


class Outbox:
    """Claims and marks of delivery rows over one engine."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def claim(self, owner: str, lease_seconds: float, limit: int = 20) -> list[Delivery]:
        """Take up to ``limit`` due rows for ``owner`` until now + ``lease_seconds``; each claim
        counts one attempt."""
        now = self.clock.now()
        free = or_(D.c.lease_until.is_(None), D.c.lease_until < now)
        due = (select(D.c.id).where(D.c.state == "pending", D.c.next_attempt_at <= now, free)
               .order_by(D.c.next_attempt_at, D.c.id).limit(limit))  # fmt: skip
        until = now + timedelta(seconds=lease_seconds)
        with begin_read(self.engine) as conn:  # an idle pass takes no write lock (SQLite)
            ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        with begin_write(self.engine) as conn:
            # One conditional UPDATE takes them all: a row another sender took meanwhile no
            # longer matches (its lease is not free) and is not returned.
            taken = conn.execute(
                update(D).where(D.c.id.in_(ids), D.c.state == "pending",
                                D.c.next_attempt_at <= now, free)
                .values(lease_owner=owner, lease_until=until, attempts=D.c.attempts + 1,
                        updated_at=now)
                .returning(*D.c))  # fmt: skip
            return sorted((_delivery(row) for row in taken), key=lambda d: d.id)

    def _mark(self, item: Delivery, owner: str, **values: Any) -> bool:
        now = self.clock.now()
        with begin_write(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                # Not waiting for the WAL flush: a mark lost with a crash of the server itself
                # only makes the row go out again, under the same Message-ID/Idempotency-Key.
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            changed = conn.execute(
                update(D).where(D.c.id == item.id, D.c.state == "pending",
                                D.c.lease_owner == owner)
                .values(lease_until=None, updated_at=now, **values))  # fmt: skip
            return bool(changed.rowcount == 1)

    def mark_sent(self, item: Delivery, owner: str) -> bool:
        """The send succeeded; False if ``owner`` no longer holds the row."""
        return self._mark(item, owner, state="sent", sent_at=self.clock.now(), last_error=None)

    def mark_retry(self, item: Delivery, owner: str, error: str, at: datetime) -> bool:
        """A transient failure: try again at ``at``."""
        return self._mark(item, owner, next_attempt_at=at, last_error=error[:ERROR_MAX_CHARS])

    def mark_failed(self, item: Delivery, owner: str, error: str) -> bool:
        """Given up: the row ends ``failed`` with ``error``."""
        return self._mark(item, owner, state="failed", last_error=error[:ERROR_MAX_CHARS])

    def retry(self, ident: int) -> bool:
        """A failed row back to pending, due now, with a fresh maximum age (``deliveries
        retry``); False when there is no failed row ``ident``."""
        now = self.clock.now()
        with begin_write(self.engine) as conn:
            changed = conn.execute(
                update(D).where(D.c.id == ident, D.c.state == "failed")
                .values(state="pending", next_attempt_at=now, created_at=now, lease_owner=None,
                        lease_until=None, updated_at=now))  # fmt: skip
            return bool(changed.rowcount == 1)

    def get(self, ident: int) -> Delivery | None:
        """One row, or None."""
        with begin_read(self.engine) as conn:
            row = conn.execute(select(D).where(D.c.id == ident)).first()
        return None if row is None else _delivery(row)

    def list(self, state: str | None = None, window_key: str | None = None,
             limit: int = 50, job: str | None = None) -> list[Delivery]:  # fmt: skip
        """Rows, newest first, optionally of one state, window and/or job."""
        query = select(D).order_by(D.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(D.c.job == job)
        if state is not None:
            query = query.where(D.c.state == state)
        if window_key is not None:
            query = query.where(D.c.window_key == window_key)
        with begin_read(self.engine) as conn:
            return [_delivery(row) for row in conn.execute(query)]

    def counts(self) -> dict[tuple[str, str], int]:
        """How many rows per (state, kind)."""
        query = select(D.c.state, D.c.kind, func.count()).group_by(D.c.state, D.c.kind)
        with begin_read(self.engine) as conn:
            return {(str(s), str(k)): int(n) for s, k, n in conn.execute(query)}

    def oldest_pending(self) -> datetime | None:
        """When the oldest pending row was written (None when nothing is pending)."""
        query = select(func.min(D.c.created_at)).where(D.c.state == "pending")
        with begin_read(self.engine) as conn:
            value = conn.execute(query).scalar()
        return _aware(value)


def _aware(value: Any) -> datetime | None:
    """``min()`` of a UTC column comes back untyped on SQLite (naive text or datetime)."""
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    found: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return found
