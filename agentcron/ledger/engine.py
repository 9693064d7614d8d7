"""SQLAlchemy engines for the ledger: SQLite tuned for several writer processes, PostgreSQL pooled.

SQLite: WAL, ``busy_timeout`` 30 s, ``synchronous=NORMAL``, and every transaction begins
``IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe: the driver's own BEGIN is switched off and
a ``begin`` event emits ours), so two writers queue on the busy handler instead of failing with
"database is locked" when a read transaction tries to upgrade to a write. A connection opened with
:data:`READ_ONLY` begins ``DEFERRED`` instead (WAL readers never block writers).
PostgreSQL: psycopg 3, a small pool; a connection idle over :data:`PING_IDLE_SECONDS` is pinged
before use (``pool_pre_ping`` for every checkout costs a round trip per transaction). Connecting
gives up after a few seconds and TCP keepalives notice a vanished server
(:func:`agentcron.timeouts.postgres_connect_args`; options in the URL's query win).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from agentcron.private_files import private_file

BUSY_TIMEOUT_SECONDS = 30.0
PING_IDLE_SECONDS = 5.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use."""
READ_ONLY = {"agentcron_read_only": True}
"""Execution options for a connection that only reads (SQLite then begins DEFERRED)."""


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine_for(url: str, **options: Any) -> Engine:
    """An engine for ``url`` with the ledger's connection settings (see the module docstring)."""
    if is_sqlite(url):
        return _sqlite_engine(url, **options)
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        from agentcron.timeouts import postgres_connect_args

        connect_args = dict(options.pop("connect_args", {}))
        for key, value in postgres_connect_args().items():
            if key not in parsed.query:
                connect_args.setdefault(key, value)
        options["connect_args"] = connect_args
    engine = create_engine(url, **options)
    if not options.get("pool_pre_ping"):
        event.listen(engine, "checkin", _on_checkin)
        event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["agentcron_checkin"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for connections idle a while only.

    ``pool_pre_ping`` costs one round trip per transaction (two per guarded run). A connection
    back in use within :data:`PING_IDLE_SECONDS` skips the ping: if the server went away in
    that time, its first statement fails as a disconnect, SQLAlchemy invalidates the whole
    pool, and the callers retry (the guard with backoff, the beat and the watchdog next tick).
    """
    idle = time.monotonic() - record.info.get("agentcron_checkin", float("-inf"))
    if idle < PING_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # leave no transaction open: the caller may set autocommit
    except Exception as exc:  # the pool discards this connection and checks out another
        raise DisconnectionError(f"stale connection: {exc}") from exc


def _sqlite_engine(url: str, **options: Any) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        private_file(path)  # 0600 in a folder created 0700: runs hold results and errors
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 40)
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("timeout", BUSY_TIMEOUT_SECONDS)
    engine = create_engine(url, connect_args=connect_args, **options)
    busy_ms = int(float(connect_args["timeout"]) * 1000)
    event.listen(engine, "connect", partial(_on_sqlite_connect, busy_ms))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(busy_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # No implicit BEGIN from the driver: the "begin" event below emits our own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get("agentcron_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success, else rolls back."""
    with engine.begin() as conn:
        yield conn


@contextmanager
def begin_read(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (``BEGIN DEFERRED`` on SQLite)."""
    with engine.connect() as conn, conn.execution_options(**READ_ONLY).begin():
        yield conn
