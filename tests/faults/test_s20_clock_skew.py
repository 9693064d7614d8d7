"""Scenario 20: processes whose wall clock is off by 90 s (issue 20, item 2).

Every decision about time is taken on one reference clock, the ledger's (PostgreSQL), measured as
an offset at start and refreshed (:mod:`agentcron.refclock`): workers 90 s fast run the windows
they receive instead of recording them ``missed``; a beat 90 s fast emits no window before its
slot; both warn about their clock. The skew comes from a small ``LD_PRELOAD`` shim built here
(``clockshift.c``: only ``CLOCK_REALTIME``, ``gettimeofday`` and ``time`` move; libfaketime
breaks Python 3.11's sleeps).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.faults.clockshift import clock_shift_env
from tests.faults.harness import Cluster, JobDecl, all_terminal, aware, poll, recorded, slot_windows
from tests.faults.oracle import check
from tests.services import POSTGRES_URL, missing

pytestmark = pytest.mark.faults
DATABASE = "faults_s20"
SCHEDULE = "*/3s"
JOBS = ("tick", "atick")
SKEW = 90


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """Environment that runs a process 90 s fast."""
    return clock_shift_env(tmp_path, SKEW)


@pytest.fixture
def pg_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster on a fresh PostgreSQL database (the reference clock is the ledger's)."""
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT",
                                     connect_args={"connect_timeout": 3})  # fmt: skip
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {DATABASE}"))
    except sqlalchemy.exc.OperationalError:
        missing(f"PostgreSQL at {POSTGRES_URL}")
    cluster.database_url = admin.url.set(database=DATABASE).render_as_string(hide_password=False)
    cluster.ledger.upgrade()
    options = {"config": {"seconds": 0.2}, "lease_ttl": 2}  # misfire grace: one period (3 s)
    cluster.write_jobs([JobDecl(name, schedule=SCHEDULE, asynchronous=n == 1, options=options)
                        for n, name in enumerate(JOBS)])  # fmt: skip
    try:
        yield cluster
    finally:
        cluster.close()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        admin.dispose()


def windows_of(cluster: Cluster) -> list[str]:
    poll(lambda: all_terminal(cluster, JOBS), 40, "every recorded window to end")
    return [w for job in JOBS for w in slot_windows(cluster, job, SCHEDULE)]


@pytest.mark.injects("prefork and asyncio workers 90 s fast (LD_PRELOAD shim on CLOCK_REALTIME), "
                     "beat on time; misfire grace one period (3 s)")
def test_s20_workers_clock_ahead(pg_cluster: Cluster, shim: dict[str, str]) -> None:
    cluster = pg_cluster
    workers = [cluster.worker("w1", concurrency=2, environ=shim),
               cluster.worker("a1", asynchronous=True, environ=shim)]
    beat = cluster.beat()
    poll(lambda: len(cluster.rows("effects")) >= 8, 60, "eight windows to run")
    cluster.stop(beat)
    verdict = check(cluster, windows_of(cluster))
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == verdict.expected, verdict.summary() + "\n" + cluster.logs()[-6000:]
    for worker in workers:
        assert "ahead of the reference (database now())" in worker.text(), worker.text()[-3000:]


@pytest.mark.injects("beat 90 s fast (LD_PRELOAD shim), workers on time")
def test_s20_beat_clock_ahead(pg_cluster: Cluster, shim: dict[str, str]) -> None:
    cluster = pg_cluster
    cluster.worker("w1", concurrency=2)
    cluster.worker("a1", asynchronous=True)
    beat = cluster.beat(**shim)
    first_seen: dict[str, float] = {}
    slots: dict[str, float] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline or len(first_seen) < 6:
        for job in JOBS:
            for row in recorded(cluster, job):
                first_seen.setdefault(row.window_key, time.time())
                slots[row.window_key] = aware(row.slot).timestamp()
        assert time.monotonic() < deadline + 30, "the beat emitted nothing"
        time.sleep(0.1)
    early = {k: round(slots[k] - seen, 1) for k, seen in first_seen.items() if seen < slots[k] - 0.5}
    assert not early, f"windows recorded before their slot (seconds early): {early}"
    assert "ahead of the reference (database now())" in beat.text(), beat.text()[-3000:]
    cluster.stop(beat)
    verdict = check(cluster, windows_of(cluster))
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == verdict.expected, verdict.summary()
