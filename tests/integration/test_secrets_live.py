"""Secrets with real celery workers: an agent that leaks its resolved key in an exception (and
in its own log line) leaves no trace of it in the ledger, the worker log or the alert webhook."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.windows import window_key
from tests.integration.workers_support import celery_worker, use_broker, wait_ready, worker_env
from tests.services import free_port, wait_for
from workers.app import app

pytestmark = pytest.mark.integration

SECRET = "sk-proj-h4-LEAKME-0123456789abcdef"
AGENTS = '''
import logging

def leaky_sync(ctx):
    ctx.log.warning("calling the provider with %s", ctx.config["api_key"])
    raise RuntimeError(f"401 Unauthorized: invalid api key {ctx.config['api_key']}")

async def leaky_async(ctx):
    logging.getLogger("provider").error("Authorization: Bearer " + ctx.config["api_key"])
    raise PermissionError("rejected key " + ctx.config["api_key"] + " for model gpt")
'''
SCHEDULE = '''
from agentcron import Job

JOBS = [
    Job("leaky_sync", agent="secret_agents:leaky_sync", schedule="@yearly", max_retries=2,
        backoff_base=0.1, backoff_cap=0.2, config={"api_key": "env:H4_PROVIDER_KEY"}),
    Job("leaky_async", agent="secret_agents:leaky_async", schedule="@yearly", max_retries=1,
        config={"api_key": "env:H4_PROVIDER_KEY", "model": "gpt"}),
]
'''
START = datetime(2026, 1, 1, tzinfo=UTC)


class Hook(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Hook.bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.bodies = []
    server = HTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts?token=hook-token-123456"
    server.shutdown()
    server.server_close()


def test_a_leaked_key_reaches_no_ledger_row_log_or_webhook(
    tmp_path: Path, redis_client: Any, redis_url: str, postgres_url: str, webhook: str
) -> None:
    (tmp_path / "secret_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs WHERE job LIKE 'leaky%'"))
    use_broker(redis_url)
    env = worker_env(AGENTCRON_DATABASE_URL=postgres_url, H4_PROVIDER_KEY=SECRET,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"),
                     AGENTCRON_ALERT_WEBHOOK_URL=webhook)  # fmt: skip
    sync_log, async_log = tmp_path / "sync.log", tmp_path / "async.log"
    messages = {job: RunMessage(job, window_key(job, START), START, START, trigger="manual")
                for job in ("leaky_sync", "leaky_async")}  # fmt: skip
    ledger.record_scheduled([NewWindow(m.job, m.window_start, m.window_key, m.slot, m.trigger)
                             for m in messages.values()])  # recorded first, as trigger does
    with celery_worker("-Q", "agentcron.sync", "-c", "1", "-n", "sync@secrets", env=env,
                       log=sync_log), \
         celery_worker("-Q", "agentcron.async", "-n", "async@secrets",
                       env={**env, "AGENTCRON_WORKER_POOL": "async"}, log=async_log):  # fmt: skip
        wait_ready("sync@secrets")
        wait_ready("async@secrets")
        app.send_task(SYNC_TASK, kwargs=messages["leaky_sync"].to_kwargs(), queue="agentcron.sync")
        app.send_task(ASYNC_TASK, kwargs=messages["leaky_async"].to_kwargs(),
                      queue="agentcron.async")  # fmt: skip
        for msg in messages.values():
            wait_for(lambda m=msg: (r := ledger.get(m.job, m.window_start)) is not None
                     and r.state is RunState.FAILED, timeout=60, what=f"{msg.job} failed")  # fmt: skip
        wait_for(lambda: len(Hook.bodies) >= 2, timeout=30, what="two alert webhooks")
    records = {job: ledger.get(m.job, m.window_start) for job, m in messages.items()}
    ledger.close()
    sync_record, async_record = records["leaky_sync"], records["leaky_async"]
    assert sync_record is not None and async_record is not None
    assert sync_record.attempt == 2  # the retry's warning went through the scrubber too
    assert sync_record.error_message == "RuntimeError: 401 Unauthorized: invalid api key ***"
    assert async_record.error_message == "PermissionError: rejected key *** for model gpt"
    logs = sync_log.read_text() + async_log.read_text()
    assert "invalid api key ***" in logs and "calling the provider with ***" in logs
    assert "Bearer ***" in logs
    assert SECRET not in logs
    assert "hook-token-123456" not in logs
    reasons = [json.loads(body)["reason"] for body in Hook.bodies]
    assert all(SECRET not in r for r in reasons) and all(SECRET.encode() not in b for b in Hook.bodies)
    assert any("***" in r for r in reasons)
