"""Alembic environment of the ledger. Run through :func:`agentcron.migrations.upgrade`.

The caller hands over an open connection in ``config.attributes["connection"]``; the upgrade runs
in one transaction. Two processes upgrading at once are serialised: SQLite by ``BEGIN IMMEDIATE``
(see agentcron.ledger.engine), PostgreSQL by a transaction-scoped advisory lock taken before
alembic reads the current revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

import agentcron.ledger.models  # noqa: F401  (registers the tables on the metadata)
from agentcron.ledger.orm import Base

MIGRATION_LOCK_ID = 0x61676E74  # "agnt": the advisory lock that serialises upgrades


def run_with(connection: Connection) -> None:
    """Run the pending migrations on ``connection`` in one transaction."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


def run_migrations() -> None:
    """Alembic's entry point: online mode only, with a connection given by the caller."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `agentcron db upgrade` (agentcron.migrations)")
    run_with(connection)


run_migrations()
