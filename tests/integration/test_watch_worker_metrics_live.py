"""A real prefork worker in prometheus multiprocess mode serves the runs of its children, pings a
local HTTP server at start and success, and writes its heartbeat."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from agentcron.clock import SYSTEM_CLOCK
from agentcron.emission.envelope import emission_for
from agentcron.emission.publisher import CeleryPublisher, Outgoing
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from agentcron.schedule_file import load_jobs
from agentcron.watch.heartbeats import WORKER, RedisHeartbeats
from tests.integration.test_watch_cli_live import JOB, start, stop
from tests.integration.test_watch_cli_live import env as env
from tests.integration.test_watch_watchdog_live import http_server as http_server
from tests.services import free_port, wait_for

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[Celery]:
    celery = Celery("watch-worker-metrics", broker=env["AGENTCRON_BROKER_URL"])
    yield celery
    celery.close()


def test_prefork_worker_serves_children_metrics_pings_and_heartbeat(
    env: dict[str, str], app: Celery, tmp_path: Path, redis_client: Any,
    http_server: tuple[str, list[tuple[str, str, bytes]]],
) -> None:  # fmt: skip
    base, requests = http_server
    port = free_port()
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = env | {"AGENTCRON_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
                 "AGENTCRON_PING_URLS": json.dumps({JOB: f"{base}/ping/{JOB}"})}  # fmt: skip
    worker = start(env, tmp_path / "worker.log", "worker", "-Q", "agentcron.sync", "-c", "1",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-n", "watchm@%h", "-l", "INFO")  # fmt: skip
    try:
        beats = RedisHeartbeats(redis_client)
        wait_for(lambda: any("watchm@" in h.ident for h in beats.alive(WORKER)), timeout=60,
                 interval=0.3, what="the worker's heartbeat")  # fmt: skip
        spec = load_jobs(env["AGENTCRON_SCHEDULE_PATH"])[0]
        ledger = Ledger(env["AGENTCRON_DATABASE_URL"])
        first = SYSTEM_CLOCK.now() - timedelta(days=3)
        emissions = [emission_for(spec, spec.schedule.next_fire(first + timedelta(days=i)) or first,
                                  "backfill") for i in range(3)]  # fmt: skip
        ledger.record_scheduled([e.window for e in emissions])  # as backfill does, first
        CeleryPublisher(app).publish([Outgoing(e.task, e.queue, e.message()) for e in emissions])

        def done() -> bool:
            runs = ledger.list_runs(job=JOB)
            return len(runs) == 3 and all(r.state is RunState.SUCCEEDED for r in runs)

        wait_for(done, timeout=60, interval=0.3, what="three runs to succeed")
        key = ("agentcron_runs_total", (("job", JOB), ("state", "succeeded")))
        wait_for(lambda: scrape(port).get(key) == 3, timeout=30, interval=0.3,
                 what="the worker's /metrics to count three successes")  # fmt: skip
        values = scrape(port)
        assert values[("agentcron_run_duration_seconds_count", (("job", JOB),))] == 3
        assert values[("agentcron_start_lag_seconds_count", (("job", JOB),))] == 3
        wait_for(lambda: sum(r[1] == f"/ping/{JOB}" for r in requests) == 3, timeout=30,
                 what="three success pings")  # fmt: skip
        assert sum(r[1] == f"/ping/{JOB}/start" for r in requests) == 3
        ledger.close()
    finally:
        stop(worker)
    wait_for(lambda: not any("watchm@" in h.ident for h in RedisHeartbeats(redis_client).alive()),
             timeout=10, what="the heartbeat removed at a clean shutdown")  # fmt: skip
