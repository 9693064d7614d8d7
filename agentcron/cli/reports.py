"""``agentcron reports [--job J] [--window KEY] [--json]``, ``agentcron reports show ID``,
``agentcron deliveries [--state S] [--json]`` and ``agentcron deliveries retry ID``.

Targets are shown as an email address or a URL's scheme and host (a webhook's path is often its
secret). Exit 2 for bad input, 1 when the ledger cannot be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from agentcron.clock import SYSTEM_CLOCK
from agentcron.delivery.outbox import STATES, Delivery, Outbox
from agentcron.errors import ConfigError
from agentcron.ledger import Ledger
from agentcron.reports.records import StoredReport, get_report, list_reports
from agentcron.settings import Settings

T = TypeVar("T")


@contextmanager
def _ledger() -> Iterator[Ledger]:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    ledger = Ledger.from_settings(settings)
    try:
        yield ledger
    finally:
        ledger.close()


def _read(call: Callable[[], T]) -> T:
    try:
        return call()
    except SQLAlchemyError as exc:
        click.echo(f"error: cannot read the ledger ({type(exc).__name__}); "
                   "has `agentcron db upgrade` run?", err=True)  # fmt: skip
        raise SystemExit(1) from exc


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    everything = [header, *rows]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in everything)  # fmt: skip


def _report_row(report: StoredReport) -> tuple[str, ...]:
    when = report.created_at.isoformat() if report.created_at else ""
    return (str(report.id), report.window_key, str(report.seq), report.format,
            report.title[:60], when)  # fmt: skip


@click.group("reports", invoke_without_command=True)
@click.option("--job", default=None, help="Only this job's reports.")
@click.option("--window", "window_key", default=None, help="Only this window key's reports.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1, max=10000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def reports_group(ctx: click.Context, job: str | None, window_key: str | None, limit: int,
                  as_json: bool) -> None:  # fmt: skip
    """List the reports of succeeded runs (newest first); `reports show ID` prints one."""
    if ctx.invoked_subcommand is not None:
        return
    with _ledger() as ledger:
        found = _read(lambda: list_reports(ledger.engine, job, window_key, limit))
    if as_json:
        click.echo(json.dumps([r.summary() for r in found], indent=2))
        return
    click.echo(_table(("id", "window key", "n", "format", "title", "created"),
                      [_report_row(r) for r in found]))  # fmt: skip


@reports_group.command("show")
@click.argument("report_id", type=click.IntRange(min=1, max=2**62))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the body).")
def show_command(report_id: int, as_json: bool) -> None:
    """Print report REPORT_ID: title, window, body, attachments."""
    with _ledger() as ledger:
        report = _read(lambda: get_report(ledger.engine, report_id))
    if report is None:
        click.echo(f"error: no report {report_id}", err=True)
        raise SystemExit(2)
    if as_json:
        click.echo(json.dumps(report.summary() | {"body": report.body}, indent=2))
        return
    click.echo(f"# {report.title}\nwindow {report.window_key} (report {report.seq}, "
               f"{report.format})\n")  # fmt: skip
    click.echo(report.text())
    for attachment in report.attachments:
        click.echo(f"\nattachment {attachment.name} ({len(attachment.data)} bytes)")


def _delivery_row(item: Delivery) -> tuple[str, ...]:
    summary: dict[str, Any] = item.summary()
    return (str(item.id), item.window_key, str(item.seq), item.kind, summary["target"][:50],
            item.state, str(item.attempts), (item.last_error or "")[:50])  # fmt: skip


@click.group("deliveries", invoke_without_command=True)
@click.option("--state", type=click.Choice(STATES), default=None, help="Only this state.")
@click.option("--window", "window_key", default=None, help="Only this window key.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1, max=10000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deliveries_group(ctx: click.Context, state: str | None, window_key: str | None, limit: int,
                     as_json: bool) -> None:  # fmt: skip
    """List report deliveries (newest first); `deliveries retry ID` sends a failed one again."""
    if ctx.invoked_subcommand is not None:
        return
    with _ledger() as ledger:
        found = _read(lambda: Outbox(ledger.engine, SYSTEM_CLOCK).list(state, window_key, limit))
    if as_json:
        click.echo(json.dumps([d.summary() for d in found], indent=2))
        return
    header = ("id", "window key", "n", "kind", "target", "state", "attempts", "last error")
    click.echo(_table(header, [_delivery_row(d) for d in found]))


@deliveries_group.command("retry")
@click.argument("delivery_id", type=click.IntRange(min=1, max=2**62))
def retry_command(delivery_id: int) -> None:
    """Send failed delivery DELIVERY_ID again (pending now, with a fresh maximum age)."""
    with _ledger() as ledger:
        done = _read(lambda: Outbox(ledger.engine, SYSTEM_CLOCK).retry(delivery_id))
    if not done:
        click.echo(f"error: no failed delivery {delivery_id}", err=True)
        raise SystemExit(2)
    click.echo(f"delivery {delivery_id} is pending again")
