"""The metrics endpoint after a few guarded runs (PostgreSQL ledger, Redis leases, real HTTP)."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agentcron.emission.envelope import emission_for
from agentcron.instants import parse_instant
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.runtime import Runtime
from agentcron.series import Metrics, serve
from agentcron.settings import Settings
from agentcron.watch.metrics import RunObserver
from tests.services import free_port

pytestmark = pytest.mark.integration


def good(ctx: Any) -> str:
    return "ok"


def bad(ctx: Any) -> str:
    raise RuntimeError("agent failed")


@pytest.fixture
def runtime(postgres_url: str, redis_url: str, redis_client: Any) -> Iterator[Runtime]:
    settings = Settings(database_url=postgres_url, broker_url=redis_url)
    built = Runtime(settings, loaders=())
    built.ledger.upgrade()
    yield built
    built.close()


def spec(name: str, agent: Any) -> JobSpec:
    return compile_job(Job(name, agent=agent, schedule="*/10s", max_retries=1, misfire_grace=3600))


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_endpoint_exposes_run_series(runtime: Runtime) -> None:
    tag = uuid.uuid4().hex[:8]
    ok, failing = spec(f"metrics_ok_{tag}", good), spec(f"metrics_bad_{tag}", bad)
    registry = CollectorRegistry()
    observer = RunObserver(runtime.ledger, Metrics(registry), background=False)
    runtime.guard.observers.append(observer)
    now = runtime.clock.now()
    start = now.replace(second=now.second // 10 * 10, microsecond=0) - timedelta(seconds=60)
    for i in range(3):
        message = emission_for(ok, start + timedelta(seconds=10 * i)).message()
        assert runtime.guard.run_sync(ok, message).state is not None
    repeat = emission_for(ok, start).message()
    assert runtime.guard.run_sync(ok, repeat).duplicate  # a redelivery of a done window
    runtime.guard.run_sync(failing, emission_for(failing, start).message())
    port = free_port()
    server = serve(port, registry=registry)
    try:
        values = samples(port)
    finally:
        server.shutdown()

    def value(name: str, **labels: str) -> float:
        return values.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("agentcron_runs_total", job=ok.name, state="succeeded") == 3
    assert value("agentcron_runs_total", job=ok.name, state="duplicate") == 1
    assert value("agentcron_duplicates_suppressed_total", job=ok.name) == 1
    assert value("agentcron_runs_total", job=failing.name, state="failed") == 1
    assert value("agentcron_run_duration_seconds_count", job=ok.name) == 3
    assert value("agentcron_start_lag_seconds_count", job=ok.name) == 3
    mean_lag = value("agentcron_start_lag_seconds_sum", job=ok.name) / 3  # start - slot
    assert 30 < mean_lag < 120  # slots 40-60 s ago
    assert value("agentcron_overlap_skips_total", job=ok.name) == 0


def test_queue_depths_read_from_the_real_broker(redis_url: str, redis_client: Any) -> None:
    from celery import Celery

    from agentcron.emission.publisher import CeleryPublisher, Outgoing
    from agentcron.watch.queued import queue_depths

    app = Celery("watch-depth", broker=redis_url)
    ok = spec(f"depth_{uuid.uuid4().hex[:8]}", good)
    start = parse_instant("2026-03-17T06:00:00Z")
    batch = [Outgoing(e.task, e.queue, e.message())
             for e in (emission_for(ok, start + timedelta(seconds=10 * i)) for i in range(3))]
    CeleryPublisher(app).publish(batch)
    assert queue_depths(app, ["agentcron.sync", "agentcron.async"]) == {
        "agentcron.sync": 3, "agentcron.async": 0}
    app.close()
