"""Scenarios 23 and 24, report delivery. 23: the async worker (and its outbox sender) killed
between an email's send and its commit; a second worker sends it again after the lease lapses,
with the same Message-ID.

The SMTP server (aiosmtpd, in this process) stores each message as soon as its data arrives and
holds back its reply to the first copy for a while, so the test can kill -9 the worker after the
send and before the row is marked sent. Oracle: the ledger's (one success per window, every side
effect once) and the outbox's: every succeeded window's report is delivered, at most one repeat
per kill, every copy of a window's email has one Message-ID, nothing for a failed attempt.
"""

from __future__ import annotations

import asyncio
import email
import signal
import socket
from typing import Any

import pytest

from agentcron.clock import SYSTEM_CLOCK
from agentcron.delivery.outbox import Outbox
from tests.faults.harness import Cluster, JobDecl, poll, window_message
from tests.faults.oracle import check, check_deliveries
from tests.services import free_port

pytestmark = pytest.mark.faults


class SlowFirstReply:
    """Keeps every message at once; answers the very first one late (the kill lands then)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[Any] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content)
        self.messages.append(msg)
        if len(self.messages) == 1:
            await asyncio.sleep(self.delay)
        return "250 OK"


@pytest.mark.injects("kill -9 of the async worker after its sender handed an email to the SMTP "
                     "server and before it recorded the send; a new worker takes over")
def test_s23_sender_killed_between_send_and_commit(cluster: Cluster) -> None:
    from aiosmtpd.controller import Controller

    handler = SlowFirstReply(delay=15)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        url = f"smtp://127.0.0.1:{controller.port}"
        settings = {"AGENTCRON_SMTP_URL": url, "AGENTCRON_MAIL_FROM": "faults@example.com",
                    "AGENTCRON_DELIVERY_INTERVAL": "0.2", "AGENTCRON_DELIVERY_LEASE": "6",
                    "AGENTCRON_DELIVERY_TIMEOUT": "5"}  # fmt: skip
        cluster.write_jobs([JobDecl("mailed", asynchronous=True, options={
            "config": {"seconds": 0.1, "report": True, "fail_attempts": 1}, "max_retries": 2,
            "backoff_base": 0.1, "backoff_cap": 0.2, "overlap": "allow",
            "deliver": ["mailto:team@example.com"]})])  # fmt: skip
        worker = cluster.worker("a1", asynchronous=True, environ=settings)
        messages = [window_message("mailed", n) for n in range(3)]
        for message in messages:
            cluster.publish(message, asynchronous=True)
        poll(lambda: handler.messages, 60, "the first email to reach the server")
        killed = frozenset(worker.family())
        worker.signal(signal.SIGKILL, with_children=True)
        worker.popen.wait(10)
        assert len(handler.messages) == 1
        cluster.worker("a2", asynchronous=True, environ=settings)
        keys = [m.window_key for m in messages]
        for message in messages:
            cluster.wait_state(message, {"succeeded", "failed"}, 60)
        outbox = Outbox(cluster.ledger.engine, SYSTEM_CLOCK)
        poll(lambda: len(outbox.list(state="sent")) == 3, 60, "every report to be sent")
        problems = check_deliveries(cluster, keys, handler.messages, kills=1)
        assert not problems, "\n".join(problems) + cluster.logs()[-8000:]
        assert len(handler.messages) == 4, "the killed send is repeated exactly once"
        assert {m["Subject"] for m in handler.messages} == {f"report of {k}" for k in keys}
        check(cluster, keys, killed).assert_ok(cluster.logs())
    finally:
        controller.stop()


class Keep:
    """Keeps every message; answers at once."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"


@pytest.mark.injects("SMTP server hung while 6 windows report (each first attempt reports, then "
                     "fails); the async worker killed -9 twice meanwhile; SMTP back on its port")
def test_s24_smtp_outage_and_worker_kills_lose_no_report(cluster: Cluster) -> None:
    from aiosmtpd.controller import Controller

    handler = Keep()
    # The outage: the port is held by a socket that never answers (a hung server), so nothing
    # else can take it before the real server starts there.
    hung = socket.create_server(("127.0.0.1", 0))
    port = hung.getsockname()[1]
    url = f"smtp://127.0.0.1:{port}"
    settings = {"AGENTCRON_SMTP_URL": url, "AGENTCRON_MAIL_FROM": "faults@example.com",
                "AGENTCRON_DELIVERY_INTERVAL": "0.2", "AGENTCRON_DELIVERY_LEASE": "6",
                "AGENTCRON_DELIVERY_TIMEOUT": "1", "AGENTCRON_DELIVERY_BACKOFF_BASE": "0.2",
                "AGENTCRON_DELIVERY_BACKOFF_CAP": "2"}  # fmt: skip
    cluster.write_jobs([JobDecl("mailed", asynchronous=True, options={
        "config": {"seconds": 0.1, "report": True, "fail_attempts": 1}, "max_retries": 2,
        "backoff_base": 0.1, "backoff_cap": 0.2, "overlap": "allow",
        "deliver": ["mailto:team@example.com"]})])  # fmt: skip
    worker = cluster.worker("a1", asynchronous=True, environ=settings)
    messages = [window_message("mailed", n) for n in range(6)]
    killed: set[int] = set()
    for n, message in enumerate(messages):
        cluster.publish(message, asynchronous=True)
        if n in (2, 4):  # kill the worker (and its sender) while the outbox fills up
            for sent in messages[: n + 1]:  # the sender is the target, not a run in flight
                cluster.wait_state(sent, {"succeeded", "failed"}, 60)
            killed.update(worker.family())
            worker.signal(signal.SIGKILL, with_children=True)
            worker.popen.wait(10)
            worker = cluster.worker(f"a{n}", asynchronous=True, environ=settings)
    keys = [m.window_key for m in messages]
    for message in messages:
        cluster.wait_state(message, {"succeeded", "failed"}, 60)
    outbox = Outbox(cluster.ledger.engine, SYSTEM_CLOCK)
    poll(lambda: any(r.attempts >= 2 for r in outbox.list()), 60, "sends failing during the outage")
    assert handler.messages == []
    hung.close()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        # Late, not lost: the retries (full jitter, capped at 2 s here) find the server back.
        try:
            poll(lambda: len(outbox.list(state="sent")) == 6, 90, "every report to be sent")
        except AssertionError as exc:
            rows = "\n".join(str(r) for r in outbox.list())
            lines = [line for line in cluster.logs().splitlines() if "deliver" in line]
            raise AssertionError(f"{exc}\n{rows}\n" + "\n".join(lines[-30:])) from None
        problems = check_deliveries(cluster, keys, handler.messages, kills=2)
        assert not problems, "\n".join(problems) + cluster.logs()[-8000:]
        assert {m["Subject"] for m in handler.messages} == {f"report of {k}" for k in keys}
        check(cluster, keys, frozenset(killed)).assert_ok(cluster.logs())
    finally:
        controller.stop()
