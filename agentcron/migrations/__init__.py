"""Alembic migrations of the ledger, run from the installed package (no alembic.ini needed)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from agentcron.ledger.engine import begin_read

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
    with _UPGRADE_LOCK, engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    with begin_read(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()
