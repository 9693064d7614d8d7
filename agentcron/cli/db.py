"""``agentcron db upgrade``: migrate the ledger's database to the newest schema."""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from agentcron.cli.failures import describe
from agentcron.errors import ConfigError
from agentcron.ledger import Ledger
from agentcron.migrations import current_revision
from agentcron.settings import Settings, redact_url


@click.group("db")
def db_group() -> None:
    """The ledger's database."""


@db_group.command("upgrade")
def upgrade_command() -> None:
    """Create or migrate the ledger's tables (AGENTCRON_DATABASE_URL; default SQLite)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    click.echo(f"upgrading {redact_url(settings.database_url)}")
    ledger = Ledger(settings.database_url, auto_migrate=False)
    try:
        ledger.upgrade()
        click.echo(f"at revision {current_revision(ledger.engine)}")
    except SQLAlchemyError as exc:
        message, code = describe(exc)
        click.echo(message.replace("error:", "error: upgrade failed:", 1), err=True)
        raise SystemExit(code) from exc
    finally:
        ledger.close()
