"""``agentcron dead-letters``: list, requeue or purge the entries workers could not run."""

from __future__ import annotations

import json

import click
import redis
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy.exc import SQLAlchemyError

from agentcron.deadletters import DeadLetter, DeadLetterStore
from agentcron.deadletters.requeue import RequeueError, requeue
from agentcron.errors import ConfigError
from agentcron.ledger import Ledger
from agentcron.settings import Settings

COLUMNS = ("id", "time", "queue", "kind", "size", "reason")
UNAVAILABLE = (SQLAlchemyError, redis.RedisError, KombuOperationalError, OSError)


def render_table(letters: list[DeadLetter]) -> str:
    """A plain-text table of ``letters`` (header first)."""
    rows = [COLUMNS, *((str(d.id), d.summary()["created_at"], d.queue, d.kind, str(d.size),
                        d.reason.replace("\n", " ")[:70]) for d in letters)]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


@click.command("dead-letters")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--requeue", "requeue_id", type=click.IntRange(min=1), default=None,
              help="Put dead letter ID back on its queue (and remove it here).")
@click.option("--purge", is_flag=True, help="Delete every dead letter.")
def dead_letters_command(as_json: bool, limit: int, requeue_id: int | None, purge: bool) -> None:
    """Queue entries that workers could not run (undecodable, too large, refused content
    type, unknown task), newest first, with their reason."""
    if requeue_id is not None and purge:
        raise click.UsageError("--requeue and --purge are exclusive")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    ledger = Ledger.from_settings(settings)
    store = DeadLetterStore(ledger.engine, keep=settings.dead_letters_keep,
                            raw_max_bytes=settings.message_max_bytes)  # fmt: skip
    try:
        if requeue_id is not None:
            letter = requeue(store, settings.broker_url, requeue_id)
            click.echo(f"requeued dead letter #{letter.id} onto {letter.queue}")
        elif purge:
            click.echo(f"purged {store.purge()} dead letter(s)")
        elif as_json:
            click.echo(json.dumps([d.summary() for d in store.list(limit)], indent=2))
        else:
            click.echo(render_table(store.list(limit)))
    except RequeueError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    except UNAVAILABLE as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        click.echo(f"error: dead letters unavailable ({type(exc).__name__}: {first_line}); "
                   "is the service up and has `agentcron db upgrade` run?", err=True)  # fmt: skip
        raise SystemExit(1) from exc
    finally:
        ledger.close()
