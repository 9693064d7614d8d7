"""End to end: agents report in real ``celery`` workers; the async worker's loop sends the email.

Redis broker, PostgreSQL ledger, an aiosmtpd server started here. A sync agent reports and then
fails its first attempt (that report is never sent); an async agent reports once; each window is
published twice. Exactly one email per window arrives, from the async worker's sender.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.clock import SYSTEM_CLOCK
from agentcron.delivery.outbox import Outbox
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from tests.delivery_servers import SmtpServer, smtp_server
from tests.integration.test_workers_e2e import RECORDER, message, publish
from tests.integration.workers_support import celery_worker, use_broker, wait_ready, worker_env
from tests.services import wait_for

pytestmark = pytest.mark.integration

AGENTS = '''
async def churn(ctx):
    ctx.report("Weekly churn", "# Churn\\n\\n| customer | risk |\\n|---|---|\\n| acme | 0.9 |")
    return "ok"

def market(ctx):
    ctx.report(f"Market attempt {ctx.attempt}", "*draft*")
    if ctx.attempt == 1:
        raise RuntimeError("reported, then failed")
    return "ok"
'''

SCHEDULE = '''
from agentcron import Job

JOBS = [
    Job("churn_mail", agent="mail_agents:churn", schedule="@yearly", overlap="allow",
        deliver=["mailto:team@example.com"]),
    Job("market_mail", agent="mail_agents:market", schedule="@yearly", max_retries=2,
        backoff_base=0.1, backoff_cap=0.2, deliver=["mailto:desk@example.com"]),
]
'''


def decoded(part: Message) -> str:
    """A MIME part's payload, transfer-decoded, as text."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


@pytest.fixture
def deployment(tmp_path: Path, redis_client: Any, redis_url: str,
               postgres_url: str) -> Iterator[tuple[SmtpServer, Ledger]]:  # fmt: skip
    (tmp_path / "mail_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        for table in ("deliveries", "reports", "runs"):
            conn.execute(sqlalchemy.text(f"DELETE FROM {table}"))
    use_broker(redis_url)
    RECORDER[:] = [ledger]  # publish() records each manual window first, as trigger does
    with smtp_server() as smtp, ExitStack() as stack:
        env = worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                         AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                         AGENTCRON_DATA_DIR=str(tmp_path / "data"), AGENTCRON_SMTP_URL=smtp.url,
                         AGENTCRON_MAIL_FROM="agentcron@example.com",
                         AGENTCRON_DELIVERY_INTERVAL="0.2")  # fmt: skip
        stack.enter_context(celery_worker("-Q", "agentcron.sync", "-c", "1", "-n", "sync@mail",
                                          env=env, log=tmp_path / "sync.log"))  # fmt: skip
        stack.enter_context(celery_worker("-Q", "agentcron.async", "-n", "async@mail",
                                          env={**env, "AGENTCRON_WORKER_POOL": "async"},
                                          log=tmp_path / "async.log"))  # fmt: skip
        wait_ready("sync@mail")
        wait_ready("async@mail")
        yield smtp, ledger
    ledger.close()


def test_one_email_per_succeeded_window_from_real_workers(
    deployment: tuple[SmtpServer, Ledger],
) -> None:
    smtp, ledger = deployment
    churn = [message("churn_mail", n) for n in range(3)]
    market = message("market_mail")
    for msg in churn:
        publish(msg)
        publish(msg)
    publish(market, sync=True)
    publish(market, sync=True)
    for msg in [*churn, market]:
        wait_for(lambda m=msg: (r := ledger.get(m.job, m.window_start)) is not None
                 and r.state is RunState.SUCCEEDED, timeout=30, what=f"{msg.window_key} done")
    outbox = Outbox(ledger.engine, SYSTEM_CLOCK)
    wait_for(lambda: len(outbox.list(state="sent")) == 4, timeout=30, what="4 deliveries sent")
    by_window = {m["X-Agentcron-Window"]: m for m in smtp.messages}
    assert len(smtp.messages) == 4 and set(by_window) == {m.window_key for m in [*churn, market]}
    assert by_window[market.window_key]["Subject"] == "Market attempt 2"
    assert all(m["Message-ID"].endswith("@example.com>") for m in smtp.messages)
    html = [p for p in by_window[churn[0].window_key].walk() if p.get_content_type() == "text/html"]
    assert "<h1>Churn</h1>" in decoded(html[0])
