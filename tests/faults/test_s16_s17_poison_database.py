"""Scenarios 16 and 17: a poison window that kills its worker, the database down at completion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy

from tests.faults.harness import Cluster, JobDecl, poll, window_message
from tests.faults.oracle import check
from tests.services import POSTGRES_URL, missing

pytestmark = pytest.mark.faults
DATABASE = "faults_s17"


@pytest.mark.injects("an agent that kill -9s its own prefork child on every attempt")
def test_s16_poison_window(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("poison", options={"config": {"poison": True}, "lease_ttl": 1,
                                                   "max_retries": 3})])  # fmt: skip
    cluster.worker("w1", concurrency=2)
    message = window_message("poison", 0)
    cluster.publish(message)
    assert cluster.wait_state(message, {"failed", "succeeded"}, 60) == "failed"
    record = cluster.ledger.get(message.job, message.window_start)
    assert record is not None and record.error_message == "worker lost 3 times", record
    assert len(cluster.rows("starts")) == 3
    poll(lambda: cluster.alerts(), 15, "the failure alert")
    assert cluster.alerts()[0][:2] == (message.window_key, "failed")
    poll(cluster.queue_empty, 15, "the message to be acknowledged")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.fixture
def admin() -> Iterator[sqlalchemy.Engine]:
    """An autocommit engine on the test PostgreSQL server; a fresh database for the scenario."""
    engine = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT",
                                      connect_args={"connect_timeout": 3})  # fmt: skip
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {DATABASE}"))
    except sqlalchemy.exc.OperationalError:
        missing(f"PostgreSQL at {POSTGRES_URL}")
    yield engine
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"ALTER DATABASE {DATABASE} ALLOW_CONNECTIONS true"))
        conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
    engine.dispose()


def set_available(admin: sqlalchemy.Engine, available: bool) -> None:
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(
            f"ALTER DATABASE {DATABASE} ALLOW_CONNECTIONS {'true' if available else 'false'}"))
        if not available:
            conn.execute(sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                {"db": DATABASE})  # fmt: skip


@pytest.mark.injects("PostgreSQL refuses connections (backends terminated) while the run "
                     "completes, back ~3 s later")
def test_s17_database_down_at_completion(cluster: Cluster, admin: sqlalchemy.Engine) -> None:
    url = admin.url.set(database=DATABASE).render_as_string(hide_password=False)
    cluster.database_url = url
    cluster.settings["visibility_timeout"] = 20
    cluster.ledger.upgrade()
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 2}, "lease_ttl": 3})])
    worker = cluster.worker("w1", concurrency=1)
    message = window_message("slow", 0)
    cluster.publish(message)
    cluster.wait_state(message, {"running"}, 30)
    set_available(admin, False)
    cluster.ledger.close()
    poll(lambda: cluster.rows("effects"), 15, "the agent to finish")
    poll(lambda: "ledger unavailable" in worker.text(), 15, "the completion to be retried")
    client = cluster.redis()
    assert client.hlen("unacked") == 1, "acknowledged before the row committed"
    set_available(admin, True)
    assert cluster.wait_state(message, {"succeeded"}, 30) == "succeeded"
    poll(cluster.queue_empty, 15, "the message to be acknowledged after the commit")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())
