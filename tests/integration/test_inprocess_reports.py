"""The in-process schedulers with a ledger keep ctx.report's reports and run the sender.

A real HTTP receiver takes the webhooks; the agent reports on every attempt and fails its first
one, so each window must give exactly one POST (the succeeded attempt's).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.clock import SYSTEM_CLOCK
from agentcron.context import RunContext
from agentcron.delivery.outbox import Outbox
from agentcron.errors import ConfigError
from agentcron.inprocess import AgentScheduler, AsyncAgentScheduler, SchedulerOptions
from agentcron.ledger.store import Ledger
from agentcron.reports.records import list_reports
from tests.delivery_servers import HttpReceiver, http_receiver
from tests.services import wait_for


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HttpReceiver]:
    monkeypatch.setenv("AGENTCRON_DELIVERY_INTERVAL", "0.2")
    monkeypatch.setenv("AGENTCRON_DATA_DIR", str(tmp_path / "data"))
    with http_receiver() as receiver:
        yield receiver


def flaky(ctx: RunContext) -> str:
    ctx.report(f"attempt {ctx.attempt}", "draft")
    if ctx.attempt == 1:
        raise RuntimeError("reported, then failed")
    return "ok"


def check(url: str, http: HttpReceiver, job: str) -> None:
    ledger = Ledger(url)
    outbox = Outbox(ledger.engine, SYSTEM_CLOCK)
    keys = {r.window_key for r in list_reports(ledger.engine, job=job)}
    assert len(keys) >= 2
    wait_for(lambda: len(outbox.list(state="sent")) >= len(keys), timeout=20, what="sent")
    posts = Counter(r["json"]["window_key"] for r in http.requests)
    assert set(posts) >= keys and set(posts.values()) == {1}
    assert {r["json"]["title"] for r in http.requests} == {"attempt 2"}
    ledger.close()


def test_the_thread_scheduler_reports_and_delivers(tmp_path: Path, http: HttpReceiver) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    options = SchedulerOptions(backoff_base=0.05, backoff_cap=0.1, deliver=(http.url(),))
    scheduler = AgentScheduler(flaky, "t", name="thread_reports", database_url=url,
                               options=options)  # fmt: skip
    scheduler.start("*/1s", max_retries=2)
    ledger = Ledger(url)
    try:
        wait_for(lambda: len(list_reports(ledger.engine, job="thread_reports")) >= 2, timeout=20,
                 what="two reported windows")
        wait_for(lambda: len(http.requests) >= 2, timeout=20, what="two posts")
    finally:
        scheduler.stop(timeout=10)
        ledger.close()
    check(url, http, "thread_reports")


async def test_the_async_scheduler_reports_and_delivers(tmp_path: Path,
                                                        http: HttpReceiver) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"

    async def agent(ctx: RunContext) -> str:
        return flaky(ctx)

    options = SchedulerOptions(backoff_base=0.05, backoff_cap=0.1, deliver=(http.url(),))
    scheduler = AsyncAgentScheduler(agent, "t", name="loop_reports", database_url=url,
                                    options=options)  # fmt: skip
    await scheduler.start("*/1s", max_retries=2)
    try:
        for _ in range(200):
            if len(http.requests) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await scheduler.stop(timeout=10)
    await asyncio.to_thread(check, url, http, "loop_reports")


def test_bad_targets_are_refused_by_the_options() -> None:
    with pytest.raises(ConfigError, match="deliver: not an email address"):
        SchedulerOptions(deliver=("mailto:x",)).validate()
