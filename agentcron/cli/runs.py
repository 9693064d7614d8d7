"""``agentcron runs``: the ledger's runs, newest window first, as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from agentcron.cli.failures import describe
from agentcron.errors import ConfigError
from agentcron.ledger import Ledger
from agentcron.ledger.records import RunRecord, RunState
from agentcron.settings import Settings

COLUMNS = ("window key", "state", "attempt", "trigger", "started", "duration", "error")


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_to_dict(record: RunRecord) -> dict[str, Any]:
    """A run as JSON-ready values (times as ISO 8601 with ``Z``)."""
    return {
        "window_key": record.window_key, "job": record.job,
        "window_start": _instant(record.window_start), "slot": _instant(record.slot),
        "trigger": record.trigger, "state": str(record.state), "attempt": record.attempt,
        "token": record.token, "worker_id": record.worker_id,
        "scheduled_at": _instant(record.scheduled_at), "started_at": _instant(record.started_at),
        "finished_at": _instant(record.finished_at), "duration": record.duration,
        "error_type": record.error_type, "error_message": record.error_message,
        "result": record.result,
    }  # fmt: skip


def _row(record: RunRecord) -> tuple[str, ...]:
    error = ": ".join(p for p in (record.error_type, record.error_message) if p)
    duration = "" if record.duration is None else f"{record.duration:.2f}s"
    return (record.window_key, str(record.state), str(record.attempt), record.trigger,
            _instant(record.started_at) or "", duration, error.replace("\n", " ")[:60])  # fmt: skip


def render_table(records: list[RunRecord]) -> str:
    """A plain-text table of ``records`` (header first)."""
    rows = [COLUMNS, *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


def _check_state(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and value not in {str(s) for s in RunState}:
        choices = ", ".join(str(s) for s in RunState)
        raise click.BadParameter(f"unknown state {value!r}; one of {choices}")
    return value


@click.command("runs")
@click.option("--job", default=None, help="Only this job's runs.")
@click.option("--state", default=None, callback=_check_state, help="Only runs in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
def runs_command(job: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """List runs from the ledger, newest window first."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    ledger = Ledger.from_settings(settings)
    try:
        records = ledger.list_runs(job=job, state=state, limit=limit)
    except ProgrammingError as exc:  # no such table
        click.echo(f"error: cannot read runs ({type(exc).__name__}); "
                   "has `agentcron db upgrade` run?", err=True)  # fmt: skip
        raise SystemExit(1) from exc
    except SQLAlchemyError as exc:
        message, code = describe(exc)
        click.echo(message, err=True)
        raise SystemExit(code) from exc
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps([run_to_dict(r) for r in records], indent=2))
    else:
        click.echo(render_table(records))
