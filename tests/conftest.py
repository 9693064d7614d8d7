"""Fixtures for the real services and an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentcron.clock import FrozenClock
from tests.services import POSTGRES_URL, REDIS_URL, missing


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-17T06:00:00Z")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception:
        missing(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A client on a flushed test database (flushed again afterwards)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception:
        missing(f"PostgreSQL at {POSTGRES_URL}")
    return POSTGRES_URL


@pytest.fixture
def driver_statements(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every statement psycopg sends from now on, with whether its connection was in autocommit
    (a statement on its own, no BEGIN/COMMIT round trips around it)."""
    import psycopg

    seen: list[tuple[str, bool]] = []
    execute = psycopg.Cursor.execute

    def spy(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((str(query), cursor.connection.autocommit))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", spy)
    return seen
