"""Scenario 18: poison entries on the queues, among good messages, for both pools and both
transports (a private redis-server, and the embedded SQLite broker of ``agentcron up``).

Before dead letters, one raw non-JSON entry made the sync worker exit ("Unrecoverable error")
and made the async worker lose the batch it was in (5 good + 1 bad + 5 good: all gone).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcron.deadletters import DeadLetterStore
from tests.faults.harness import Cluster, JobDecl, poll, window_message
from tests.faults.oracle import check
from tests.poison_entries import kind_of_label, poison_entries, push

pytestmark = pytest.mark.faults
MAX_BYTES = 16 * 1024
GOOD_PER_SIDE = 5
INJECTED = ("7 poison entries per queue (not JSON, a JSON array, over the size limit, pickle, "
            "YAML, an unknown task, an unhashable task id) between 5 + 5 good messages, queued "
            "before a prefork and an asyncio worker start")


def _run_scenario(cluster: Cluster) -> None:
    cluster.settings["message_max_bytes"] = MAX_BYTES
    cluster.write_jobs([JobDecl("sync_job", options={"overlap": "allow"}),
                        JobDecl("async_job", asynchronous=True, options={"overlap": "allow"})])
    windows, expected_kinds = [], []
    for job, asynchronous in (("sync_job", False), ("async_job", True)):
        queue = "agentcron.async" if asynchronous else "agentcron.sync"
        messages = [window_message(job, n) for n in range(2 * GOOD_PER_SIDE)]
        for message in messages[:GOOD_PER_SIDE]:
            cluster.publish(message, asynchronous=asynchronous)
        poison = poison_entries(queue, MAX_BYTES)
        for raw in poison.values():
            push(cluster.env()["AGENTCRON_BROKER_URL"], queue, raw)
        for message in messages[GOOD_PER_SIDE:]:
            cluster.publish(message, asynchronous=asynchronous)
        windows += [m.window_key for m in messages]
        expected_kinds += [(queue, kind_of_label(label)) for label in poison]
    workers = [cluster.worker("sync", concurrency=2), cluster.worker("async", asynchronous=True)]
    store = DeadLetterStore(cluster.ledger.engine)
    poll(lambda: store.count() >= len(expected_kinds), 90, "every poison entry dead-lettered")
    poll(lambda: all(cluster.ledger.get_by_key(w) is not None
                     and cluster.ledger.get_by_key(w).state.terminal  # type: ignore[union-attr]
                     for w in windows), 90, "every good window terminal")  # fmt: skip
    assert sorted((d.queue, d.kind) for d in store.list()) == sorted(expected_kinds)
    assert all(w.running() for w in workers), cluster.logs()
    logs = cluster.logs()
    assert "Unrecoverable error" not in logs, logs
    verdict = check(cluster, windows)
    verdict.assert_ok(logs)
    assert verdict.succeeded == len(windows), verdict.summary()


@pytest.mark.injects(INJECTED + "; Redis broker")
def test_s18_poison_queue_redis(cluster: Cluster) -> None:
    _run_scenario(cluster)
    poll(cluster.queue_empty, 30, "both queues empty and nothing unacknowledged")


@pytest.mark.injects(INJECTED + "; embedded SQLite broker")
def test_s18_poison_queue_embedded_sqlite(cluster: Cluster, tmp_path: Path) -> None:
    cluster.settings["broker_url"] = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    _run_scenario(cluster)
