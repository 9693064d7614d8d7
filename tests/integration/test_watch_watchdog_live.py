"""The watchdog against the real Redis broker and the real PostgreSQL ledger, and alerts to a real
local HTTP server. Time for the watchdog's judgement comes from a FrozenClock."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from celery import Celery

from agentcron.alerts import alerter_from_settings
from agentcron.clock import FrozenClock
from agentcron.emission.emitter import Emitter
from agentcron.emission.envelope import emission_for
from agentcron.emission.publisher import CeleryPublisher
from agentcron.instants import parse_instant
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.leases.redis import RedisLeaseStore
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from agentcron.settings import Settings
from agentcron.watch.queued import RedisQueueInspector, message_window_key
from agentcron.watch.watchdog import Watchdog

pytestmark = pytest.mark.integration
QUEUE = "agentcron.sync"


def agent(ctx: object) -> str:
    return "ok"


def unique_daily() -> JobSpec:
    name = f"watch_{uuid.uuid4().hex[:10]}"
    return compile_job(Job(name, agent=agent, schedule="0 6 * * *"))


@pytest.fixture
def ledger(postgres_url: str, clock: FrozenClock) -> Iterator[Ledger]:
    store = Ledger(postgres_url, clock)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    celery = Celery("watch-test", broker=redis_url)
    celery.conf.broker_connection_retry_on_startup = True
    yield celery
    celery.close()


def queued_keys(client: Any) -> list[str]:
    return [k for k in map(message_window_key, client.lrange(QUEUE, 0, -1)) if k]


def test_window_whose_message_was_deleted_is_reenqueued(
    ledger: Ledger, app: Celery, redis_client: Any, clock: FrozenClock
) -> None:
    spec = unique_daily()
    publisher = CeleryPublisher(app)
    emission = emission_for(spec, parse_instant("2026-03-17T06:00:00Z"))
    assert Emitter(ledger, publisher, clock).emit([emission]) == 1
    key = emission.window.window_key
    assert queued_keys(redis_client) == [key]
    leases = RedisLeaseStore(redis_client)
    watchdog = Watchdog(ledger, publisher, clock, alerter_from_settings(Settings()), leases,
                        queued=RedisQueueInspector(redis_client, [QUEUE]))  # fmt: skip
    clock.advance(120)
    assert watchdog.check([spec]).republished == []  # the message is still on the broker

    redis_client.delete(QUEUE)  # Redis lost the queue (scenario 7)
    report = watchdog.check([spec])
    assert report.republished == [key]
    assert queued_keys(redis_client) == [key]
    row = ledger.get(spec.name, emission.window.window_start)
    assert row is not None and row.state is RunState.SCHEDULED

    redis_client.delete(QUEUE)  # a reserved message (in kombu's unacked hash) counts as queued
    raw = json.loads(publisher_message(app, spec))
    redis_client.hset("unacked", "tag-1", json.dumps([raw, "", QUEUE]))
    assert watchdog.check([spec]).republished == []


def publisher_message(app: Celery, spec: JobSpec) -> str:
    """One run message exactly as the Redis transport stores it (published, then popped)."""
    client = app.connection_for_write().default_channel.client
    emission = emission_for(spec, parse_instant("2026-03-17T06:00:00Z"))
    CeleryPublisher(app).publish([_outgoing(emission)])
    raw = client.rpop(QUEUE)
    assert raw is not None
    return str(raw.decode())


def _outgoing(emission: Any) -> Any:
    from agentcron.emission.publisher import Outgoing

    return Outgoing(emission.task, emission.queue, emission.message())


class Recorder(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, bytes]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.requests.append((self.command, self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    do_GET = _record
    do_POST = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.requests
    server.shutdown()
    server.server_close()


def test_missed_window_is_marked_and_alerted_once_over_http(
    ledger: Ledger, app: Celery, redis_client: Any, clock: FrozenClock,
    http_server: tuple[str, list[tuple[str, str, bytes]]],
) -> None:  # fmt: skip
    base, requests = http_server
    spec = unique_daily()
    settings = Settings(alert_webhook_url=f"{base}/hook",
                        ping_urls=json.dumps({spec.name: f"{base}/ping/{spec.name}"}))
    alerter = alerter_from_settings(settings)
    window = emission_for(spec, parse_instant("2026-03-17T06:00:00Z")).window
    ledger.record_scheduled([window])  # recorded by the beat, never run
    watchdogs = [Watchdog(ledger, CeleryPublisher(app), clock, alerter, RedisLeaseStore(redis_client),
                          queued=RedisQueueInspector(redis_client, [QUEUE])) for _ in range(2)]
    clock.set("2026-03-18T06:59:00Z")
    for watchdog in watchdogs:
        assert watchdog.check([spec]).missed == []
    assert requests == []
    clock.set("2026-03-18T07:00:00Z")  # slot + 25 h
    reports = [w.check([spec]) for w in watchdogs] + [w.check([spec]) for w in watchdogs]
    assert sum(len(r.missed) for r in reports) == 1
    assert sum(len(r.alerted) for r in reports) == 1
    row = ledger.get(spec.name, window.window_start)
    assert row is not None and row.state is RunState.MISSED
    posts = [r for r in requests if r[0] == "POST"]
    pings = [r[1] for r in requests if r[0] == "GET"]
    assert [(p[1], json.loads(p[2])) for p in posts] == [
        ("/hook", {"job": spec.name, "window": window.window_key, "state": "missed",
                   "reason": row.error_message})]
    assert pings == [f"/ping/{spec.name}/fail"]
