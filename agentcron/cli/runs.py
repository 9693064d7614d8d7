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
from agentcron.ledger.history import history_of
from agentcron.ledger.records import RunRecord, RunState
from agentcron.ledger.views import LedgerViews, RunLog
from agentcron.secrets import redact, scrub
from agentcron.settings import Settings
from agentcron.spend.report import render_usage, usage_report
from agentcron.spend.store import SpendStore

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
        "error_type": record.error_type, "error_message": scrub(record.error_message),
        "result": redact(record.result),
    }  # fmt: skip


def _row(record: RunRecord) -> tuple[str, ...]:
    error = ": ".join(p for p in (record.error_type, scrub(record.error_message)) if p)
    duration = "" if record.duration is None else f"{record.duration:.2f}s"
    return (record.window_key, str(record.state), str(record.attempt), record.trigger,
            _instant(record.started_at) or "", duration, error.replace("\n", " ")[:60])  # fmt: skip


def render_table(records: list[RunRecord],
                 earlier: dict[str, list[RunRecord]] | None = None) -> str:  # fmt: skip
    """A plain-text table of ``records`` (header first); each window's earlier records (kept
    when a forced run took it over) follow it, their state marked ``(earlier)``."""
    rows: list[tuple[str, ...]] = [COLUMNS]
    for record in records:
        rows.append(_row(record))
        for old in (earlier or {}).get(record.window_key, []):
            row = _row(old)
            rows.append((row[0], f"{row[1]} (earlier)", *row[2:]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


def _check_state(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and value not in {str(s) for s in RunState}:
        choices = ", ".join(str(s) for s in RunState)
        raise click.BadParameter(f"unknown state {value!r}; one of {choices}")
    return value


def _open_ledger() -> Ledger:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    return Ledger.from_settings(settings)


def _unreadable(exc: SQLAlchemyError) -> SystemExit:
    """One line for a ledger that cannot be read: the upgrade hint only when a table is missing."""
    if isinstance(exc, ProgrammingError):  # no such table
        click.echo(f"error: cannot read runs ({type(exc).__name__}); "
                   "has `agentcron db upgrade` run?", err=True)  # fmt: skip
        return SystemExit(1)
    message, code = describe(exc)
    click.echo(message, err=True)
    return SystemExit(code)


@click.group("runs", invoke_without_command=True)
@click.option("--job", default=None, help="Only this job's runs.")
@click.option("--state", default=None, callback=_check_state, help="Only runs in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@click.pass_context
def runs_command(ctx: click.Context, job: str | None, state: str | None, limit: int,
                 as_json: bool) -> None:  # fmt: skip
    """List runs from the ledger, newest window first; `runs show KEY` shows one in full."""
    if ctx.invoked_subcommand is not None:
        return
    ledger = _open_ledger()
    try:
        records = ledger.list_runs(job=job, state=state, limit=limit)
        earlier = history_of(ledger.engine, [r.window_key for r in records])
    except SQLAlchemyError as exc:
        raise _unreadable(exc) from exc
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps([run_to_dict(r) | {"history": [run_to_dict(old) for old in
                                                              earlier.get(r.window_key, [])]}
                               for r in records], indent=2))  # fmt: skip
    else:
        click.echo(render_table(records, earlier))


def render_run(record: RunRecord, logs: list[RunLog], usage: dict[str, Any] | None = None) -> str:
    """One run in full: its fields, its usage and cost by model, then the lines each attempt
    logged through ``ctx.log``."""
    data = run_to_dict(record)
    if record.duration is not None:
        data["duration"] = f"{record.duration:.3f}s"
    width = max(len(k) for k in data)
    lines = [f"{key:<{width}}  {'' if value is None else json.dumps(value) if key == 'result' else value}"
             for key, value in data.items() if key != "token"]  # fmt: skip
    if usage is not None:
        lines.extend(render_usage(usage))
    if not logs:
        lines.append("log: (nothing logged through ctx.log)")
    for entry in logs:
        lines.append(f"log of attempt {entry.attempt}:")
        lines.extend(f"  {line}" for line in entry.lines)
    return "\n".join(lines)


@runs_command.command("show")
@click.argument("window_key")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its log lines as JSON.")
def show_command(window_key: str, as_json: bool) -> None:
    """Show the run of WINDOW_KEY (job@YYYY-MM-DDTHH:MM:SSZ) with the lines it logged."""
    if not window_key or len(window_key) > 160 or "@" not in window_key or not window_key.isprintable():
        raise click.BadParameter("expected a window key like job@2026-03-17T06:00:00Z",
                                 param_hint="WINDOW_KEY")  # fmt: skip
    ledger = _open_ledger()
    try:
        record = ledger.get_by_key(window_key)
        logs = LedgerViews(ledger).run_log(window_key) if record is not None else []
        usage = None if record is None else usage_report(
            SpendStore(ledger.engine).of_window(record.job, record.window_start))
    except SQLAlchemyError as exc:
        raise _unreadable(exc) from exc
    finally:
        ledger.close()
    if record is None:
        click.echo(f"error: no run {window_key!r} in the ledger", err=True)
        raise SystemExit(1)
    if as_json:
        logs_json = [{"attempt": e.attempt, "lines": e.lines} for e in logs]
        click.echo(json.dumps(run_to_dict(record) | {"usage": usage, "log": logs_json}, indent=2))
    else:
        click.echo(render_run(record, logs, usage))
