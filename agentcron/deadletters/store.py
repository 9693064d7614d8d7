"""The dead-letter store: a bounded table in the ledger (``dead_letters``, migration 0002).

The ledger is what every transport shares (the embedded SQLite broker and Redis alike), so dead
letters live there. The table keeps the newest ``keep`` entries; each insert removes older ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.deadletters.classify import fingerprint, kind_of, preview
from agentcron.ledger.dead_letter_rows import DeadLetterRow
from agentcron.ledger.engine import begin_read

REASON_MAX_CHARS = 500
Counts = list[tuple[str, str, int]]  # (queue, kind, how many)


@dataclass(frozen=True)
class DeadLetter:
    """One stored dead letter."""

    id: int
    queue: str
    kind: str
    reason: str
    raw: bytes
    size: int
    truncated: bool
    created_at: datetime

    def summary(self) -> dict[str, Any]:
        """JSON-safe fields for listings: a short preview of the entry, never all of it."""
        return {"id": self.id, "queue": self.queue, "kind": self.kind, "reason": self.reason,
                "size": self.size, "truncated": self.truncated,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
                "entry": preview(self.raw)}  # fmt: skip


class DeadLetterStore:
    """Dead letters in the ledger's ``dead_letters`` table, newest ``keep`` kept."""

    def __init__(self, engine: Engine, *, keep: int = 10_000, raw_max_bytes: int = 256 * 1024,
                 clock: Clock = SYSTEM_CLOCK) -> None:  # fmt: skip
        self.engine = engine
        self.keep = max(1, keep)
        self.raw_max_bytes = raw_max_bytes
        self.clock = clock

    def add(self, reason: str, queue: str, raw: bytes | str) -> int:
        """Store one entry (cut at ``raw_max_bytes``); its id. Trims the table to ``keep``."""
        return self.add_entry(reason, queue, raw)[0]

    def add_entry(self, reason: str, queue: str, raw: bytes | str) -> tuple[int, bool]:
        """:meth:`add`, and whether the entry is new: a broker message already stored (the same
        :func:`~agentcron.deadletters.classify.fingerprint`, redelivered) is not stored again."""
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        mark = fingerprint(queue, data)
        row = {"queue": queue[:200], "kind": kind_of(reason), "reason": reason[:REASON_MAX_CHARS],
               "raw": data[: self.raw_max_bytes], "size": len(data),
               "truncated": len(data) > self.raw_max_bytes, "created_at": self.clock.now(),
               "fingerprint": mark}  # fmt: skip
        try:
            with self.engine.begin() as conn:
                key = conn.execute(insert(DeadLetterRow).values(**row)).inserted_primary_key
                new_id = int(key[0]) if key is not None else 0
                if new_id > self.keep:
                    conn.execute(delete(DeadLetterRow).where(DeadLetterRow.id <= new_id - self.keep))
        except IntegrityError:
            if mark is None:
                raise
            with begin_read(self.engine) as conn:
                same = conn.execute(select(DeadLetterRow.id)
                                    .where(DeadLetterRow.fingerprint == mark)).scalar()  # fmt: skip
            if same is None:  # trimmed or requeued in between: store it after all
                return self.add_entry(reason, queue, raw)
            return int(same), False
        return new_id, True

    def list(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first."""
        query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        with begin_read(self.engine) as conn:
            return [_letter(row) for row in conn.execute(query)]

    def get(self, letter_id: int) -> DeadLetter | None:
        """One dead letter by id."""
        query = select(DeadLetterRow).where(DeadLetterRow.id == letter_id)
        with begin_read(self.engine) as conn:
            row = conn.execute(query).first()
        return _letter(row) if row is not None else None

    def remove(self, letter_id: int) -> bool:
        """Delete one dead letter; whether it was there."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(DeadLetterRow).where(DeadLetterRow.id == letter_id))
        return bool(result.rowcount)

    def purge(self) -> int:
        """Delete every dead letter; how many there were."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(DeadLetterRow)).rowcount or 0)

    def counts(self) -> Counts:
        """``(queue, kind, how many)`` of the stored dead letters, by queue then kind."""
        query = (select(DeadLetterRow.queue, DeadLetterRow.kind, func.count())
                 .group_by(DeadLetterRow.queue, DeadLetterRow.kind)
                 .order_by(DeadLetterRow.queue, DeadLetterRow.kind))  # fmt: skip
        with begin_read(self.engine) as conn:
            return [(str(q), str(k), int(n)) for q, k, n in conn.execute(query)]

    def count(self) -> int:
        """How many dead letters are stored."""
        with begin_read(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(DeadLetterRow)).scalar_one())


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(id=row.id, queue=row.queue, kind=row.kind, reason=row.reason,
                      raw=bytes(row.raw), size=row.size, truncated=bool(row.truncated),
                      created_at=row.created_at)  # fmt: skip
