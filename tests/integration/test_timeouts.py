"""Issue 13 item 10: every client gives up on a dead service within seconds — the leases' and
heartbeats' Redis clients, the broker (Celery/kombu, as the worker app and the CLI configure it),
the ledger's engine. Dead = a closed port, a rediss:// closed port, or a port that accepts TCP
connections and never answers (a stalled server). Elapsed time is an upper bound with a generous
margin (the issue's hang was over 40 s), not a benchmark."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import SYSTEM_CLOCK
from agentcron.leases.factory import open_async_lease_store, open_lease_store
from agentcron.ledger.store import Ledger
from agentcron.settings import Settings
from agentcron.timeouts import check_broker, cli_app
from agentcron.watch.heartbeats import open_heartbeats
from tests.services import free_port

pytestmark = pytest.mark.integration
BOUND = 10.0 + 5.0


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def _fails_within(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        call()
    took = time.monotonic() - started
    assert took < BOUND, f"{info.value!r} after {took:.1f}s"
    return took


def _urls(silent_port: int) -> list[str]:
    closed = free_port()
    return [f"redis://127.0.0.1:{closed}/0", f"rediss://127.0.0.1:{closed}/0",
            f"redis://127.0.0.1:{silent_port}/0", f"rediss://127.0.0.1:{silent_port}/0"]  # fmt: skip


def test_redis_clients_give_up(silent_port: int, tmp_path: Path) -> None:
    for url in _urls(silent_port):
        settings = Settings(data_dir=tmp_path, broker_url=url)
        leases = open_lease_store(settings, None, SYSTEM_CLOCK)
        _fails_within(partial(leases.acquire, "job", "owner", 5.0))
        heartbeats = open_heartbeats(settings, SYSTEM_CLOCK)
        _fails_within(heartbeats.alive)


async def test_async_redis_clients_give_up(silent_port: int, tmp_path: Path) -> None:
    for url in _urls(silent_port):
        leases = open_async_lease_store(Settings(data_dir=tmp_path, broker_url=url), None, SYSTEM_CLOCK)
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017
            await leases.acquire("job", "owner", 5.0)
        assert time.monotonic() - started < BOUND


def test_broker_gives_up(silent_port: int, tmp_path: Path) -> None:
    from agentcron.emission.publisher import CeleryPublisher, Outgoing
    from agentcron.messages import SYNC_TASK, RunMessage

    slot = SYSTEM_CLOCK.now().replace(microsecond=0)
    message = RunMessage("j", f"j@{slot:%Y-%m-%dT%H:%M:%SZ}", slot, slot)
    for url in _urls(silent_port):
        settings = Settings(data_dir=tmp_path, broker_url=url)
        _fails_within(partial(check_broker, settings))
        app = cli_app(settings, "timeouts-test")
        _fails_within(partial(CeleryPublisher(app).publish,
                              [Outgoing(SYNC_TASK, "agentcron.sync", message)]))  # fmt: skip


def test_worker_app_bounds_its_broker_connections(tmp_path: Path) -> None:
    from workers.app import celery_config

    config = celery_config(Settings(data_dir=tmp_path, broker_url="rediss://127.0.0.1:1/0"))
    transport = config["broker_transport_options"]
    assert transport["socket_connect_timeout"] <= 5 and transport["socket_timeout"] <= 10
    assert config["broker_connection_timeout"] <= 5
    assert config["broker_use_ssl"]["ssl_cert_reqs"] != 0  # certificates are checked
    assert transport["visibility_timeout"] > 0  # the existing options are kept


def test_ledger_gives_up(silent_port: int) -> None:
    for url in (f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
                f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/x"):
        ledger = Ledger(url, auto_migrate=False)
        try:
            _fails_within(partial(ledger.list_runs, limit=1))
        finally:
            ledger.close()
