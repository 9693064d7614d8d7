"""Scenario 22: Redis stalls (``CLIENT PAUSE``) for longer than the lease TTL while runs finish
(issue 20, item 4).

The runs' outcomes are committed to the ledger while Redis is paused; releasing their leases then
times out. That is harmless (the lease expires within its TTL): a warning, never the run's error,
and the outcome stays as recorded.
"""

from __future__ import annotations

import time
from functools import partial

import pytest

from tests.faults.harness import Cluster, JobDecl, poll, window_message
from tests.faults.oracle import check

pytestmark = pytest.mark.faults


@pytest.mark.injects("CLIENT PAUSE ALL for 8 s (lease TTL 2 s) while a prefork run and an asyncio "
                     "run finish and release their leases")
def test_s22_redis_stall_past_the_lease_ttl(cluster: Cluster) -> None:
    options = {"config": {"seconds": 1.0}, "lease_ttl": 2}
    cluster.write_jobs([JobDecl("stall", options=options),
                        JobDecl("astall", asynchronous=True, options=options)])  # fmt: skip
    worker = cluster.worker("w1", concurrency=1)
    aworker = cluster.worker("a1", asynchronous=True)
    runs = [window_message("stall", 0), window_message("astall", 0)]
    cluster.publish(runs[0])
    cluster.publish(runs[1], asynchronous=True)
    for run in runs:
        poll(partial(cluster.rows, "starts", run.window_key), 30, f"{run.window_key} to start")
    client = cluster.redis()
    client.execute_command("CLIENT", "PAUSE", "8000", "ALL")
    paused_at = time.monotonic()
    for run in runs:
        assert cluster.wait_state(run, {"succeeded", "failed", "cancelled"}, 20) == "succeeded"
    poll(lambda: time.monotonic() - paused_at > 8.5, 15, "the pause to end", interval=0.5)
    poll(cluster.queue_empty, 30, "every delivery to be acknowledged")
    poll(lambda: all("releasing lease" in p.text() for p in (worker, aworker)), 20,
         "the failed releases to be logged")  # fmt: skip
    for proc in (worker, aworker):
        assert "raised unexpected" not in proc.text(), proc.text()[-4000:]
        assert proc.running()
    for run in runs:
        assert cluster.state(run) == "succeeded"
    check(cluster, [r.window_key for r in runs]).assert_ok(cluster.logs())
