"""Scenario 19: the broker is down for several periods while beat leads (issue 20, item 1).

Leadership lives in the ledger's ``leases`` table, so a Redis outage does not make the beat step
down: it keeps recording each window ``scheduled`` and publishes them when Redis answers. The
misfire grace counts from that publication, so the windows run late instead of ending
``missed``. No job here raises its misfire grace or catch-up window: both stay one period.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.harness import Cluster, JobDecl, all_terminal, aware, poll, recorded, slot_windows
from tests.faults.oracle import check

pytestmark = pytest.mark.faults
SCHEDULE = "*/4s"
JOBS = ("tick", "atick")


def effects(cluster: Cluster) -> int:
    return len(cluster.rows("effects"))


@pytest.mark.injects("redis-server (broker and run leases) stopped for 3+ periods (13 s) of a */4s "
                     "job while beat leads; default misfire grace and catch-up window (1 period)")
def test_s19_broker_outage_while_beat_leads(cluster: Cluster) -> None:
    options = {"config": {"seconds": 0.3}, "lease_ttl": 2, "overlap": "buffer_all"}
    cluster.write_jobs([JobDecl(name, schedule=SCHEDULE, asynchronous=n == 1, options=options)
                        for n, name in enumerate(JOBS)])  # fmt: skip
    cluster.worker("w1", concurrency=2)
    cluster.worker("a1", asynchronous=True)
    beat = cluster.beat()
    poll(lambda: effects(cluster) >= 2, 60, "the first windows to run")
    cluster.stop_redis(signal.SIGTERM)
    down_at = time.time()
    poll(lambda: time.time() - down_at > 13, 20, "three periods to pass", interval=0.5)
    during = [r for job in JOBS for r in recorded(cluster, job)
              if down_at + 1 < aware(r.slot).timestamp() < time.time() - 1]
    assert len(during) >= 4, f"beat recorded {len(during)} window(s) during the outage"
    cluster.start_redis()
    up_at = time.time()
    poll(lambda: all(aware(r.slot).timestamp() > up_at or r.state.terminal
                     for job in JOBS for r in recorded(cluster, job)), 60,
         "every window of the outage to end")  # fmt: skip
    assert "stepped down" not in beat.text(), beat.text()[-3000:]
    cluster.stop(beat)
    poll(lambda: all_terminal(cluster, JOBS), 40, "every recorded window to end")
    windows = [w for job in JOBS for w in slot_windows(cluster, job, SCHEDULE)]
    verdict = check(cluster, windows)
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == verdict.expected, verdict.summary() + "\n" + cluster.logs()[-6000:]
