"""Alembic migrations of the ledger, run from the installed package (no alembic.ini needed)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from agentcron.ledger.engine import begin_read, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An alembic Config pointing at this package's scripts (pass a connection in attributes)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


_UPGRADE_LOCK = threading.Lock()
"""Alembic's ``context`` is one per process: two threads migrating at once (a worker's run
runtime and its dead-letter store) break each other ("No context has been configured yet")."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate ``engine``'s database to ``revision``; idempotent and safe to run concurrently."""
    config = alembic_config()
    with _UPGRADE_LOCK, _sqlite_file_lock(engine), engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Processes migrating one SQLite file take turns on ``<file>.migrate.lock``: alembic runs
    SQLite DDL outside a transaction it owns (no transactional DDL there), so ``BEGIN
    IMMEDIATE`` alone let two processes apply the same migration (seen: "table run_usage
    already exists"). PostgreSQL serialises on an advisory lock in env.py instead."""
    path = sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    with begin_read(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()
