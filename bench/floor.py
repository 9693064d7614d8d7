"""The physical floor of a beat boundary: the same rows and envelopes, with nothing else.

For N every-minute jobs at one boundary: COPY the N ``runs`` rows agentcron's beat records
('scheduled', attempt 0) into the ledger, then LPUSH the N Celery envelopes its fast publisher
builds, 500 values per LPUSH and 5,000 per pipeline round trip, as it does. The rows and
envelopes are built before the clock starts; the floor is the insert plus the pushes, one after
the other. Everything it writes is removed afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COLUMNS = "job, window_start, window_key, slot, trigger, state, attempt, scheduled_at, updated_at"
SCRATCH = "bench:floor"
VALUES_PER_LPUSH = 500
VALUES_PER_ROUND_TRIP = 5000


@dataclass(frozen=True)
class FloorTrial:
    """Seconds of the insert and of the pushes."""

    insert_s: float
    push_s: float

    @property
    def total_s(self) -> float:
        """Insert plus pushes."""
        return self.insert_s + self.push_s


def boundary_of(trial: int) -> datetime:
    """A boundary far from any the benchmark's beats reach (so no row collides)."""
    return datetime(2031, 1, 1, tzinfo=UTC) + timedelta(minutes=trial)


def build(n: int, boundary: datetime) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The rows and envelopes of jobs ``j0``…``j{n-1}`` at ``boundary``."""
    from agentcron.beat.fastpublish import RedisListPublisher, header_template, reply_to_of
    from agentcron.emission.publisher import Outgoing
    from agentcron.messages import SYNC_TASK, RunMessage
    from agentcron.windows import window_key
    from workers.app import app

    publisher = RedisListPublisher(None, header_template(app), reply_to=reply_to_of(app))
    now = datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    envelopes: list[str] = []
    for i in range(n):
        job = f"j{i}"
        key = window_key(job, boundary)
        rows.append((job, boundary, key, boundary, "schedule", "scheduled", 0, now, now))
        message = RunMessage(job, key, boundary, boundary)
        envelopes.append(publisher.encode(Outgoing(SYNC_TASK, "agentcron.sync", message),
                                          f"floor-{i:012x}"))  # fmt: skip
    return rows, envelopes


def measure(n: int, trial: int, postgres_url: str, redis_client: Any) -> FloorTrial:
    """One floor trial of ``n`` rows and envelopes."""
    import psycopg

    boundary = boundary_of(trial)
    rows, envelopes = build(n, boundary)
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        began = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY runs ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        insert_s = time.perf_counter() - began
        began = time.perf_counter()
        push(redis_client, envelopes)
        push_s = time.perf_counter() - began
        conn.execute("DELETE FROM runs WHERE window_start = %s", (boundary,))
        conn.commit()
    redis_client.delete(SCRATCH)
    return FloorTrial(insert_s, push_s)


def push(client: Any, envelopes: list[str]) -> None:
    """Multi-value LPUSHes onto the scratch list, pipelined as the fast publisher does."""
    pipe = client.pipeline(transaction=False)
    queued = 0
    for first in range(0, len(envelopes), VALUES_PER_LPUSH):
        values = envelopes[first : first + VALUES_PER_LPUSH]
        pipe.lpush(SCRATCH, *values)
        queued += len(values)
        if queued >= VALUES_PER_ROUND_TRIP:
            pipe.execute()
            queued = 0
    if queued:
        pipe.execute()
