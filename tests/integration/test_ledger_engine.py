"""PostgreSQL pool: idle connections are pinged before use, hot ones are not (one round trip
less per transaction), and a server that dropped a hot connection costs one failed call."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from agentcron.ledger import engine as engine_module
from agentcron.ledger.engine import create_engine_for

pytestmark = pytest.mark.integration


def _kill_backends(url: str) -> None:
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                             " AND application_name = 'agentcron-ping-test'"))
    admin.dispose()


def _engine(url: str) -> sa.Engine:
    return create_engine_for(url, connect_args={"application_name": "agentcron-ping-test"})


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen


def test_a_connection_back_in_use_at_once_is_not_pinged(postgres_url: str) -> None:
    engine = _engine(postgres_url)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 41"))
    seen = _statements(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 42"))
    assert seen == ["SELECT 42"]  # no ping, and SQLAlchemy's own pre-ping is off
    engine.dispose()


def test_an_idle_connection_dropped_by_the_server_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(postgres_url)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    _kill_backends(postgres_url)
    monkeypatch.setattr(engine_module, "PING_IDLE_SECONDS", 0.0)  # every checkout is "idle"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 7")).scalar() == 7
    engine.dispose()


def test_a_hot_connection_dropped_by_the_server_fails_once_then_the_pool_recovers(
    postgres_url: str,
) -> None:
    engine = _engine(postgres_url)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    _kill_backends(postgres_url)
    with pytest.raises(sa.exc.OperationalError) as failed, engine.connect() as conn:
        conn.execute(sa.text("SELECT 8"))
    assert failed.value.connection_invalidated  # what the guard's retry treats as transient
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 9")).scalar() == 9
    engine.dispose()
