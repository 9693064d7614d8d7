"""``agentcron backfill JOB --from ISO --to ISO`` and ``agentcron jobs``."""

from __future__ import annotations

import json

import click

from agentcron.cli.timing import load_runtime
from agentcron.errors import ConfigError
from agentcron.instants import format_instant, parse_instant
from agentcron.timeouts import cli_app
from agentcron.watch.backfill import DEFAULT_LIMIT, MAX_LIMIT


@click.command("backfill")
@click.argument("job")
@click.option("--from", "start", required=True, help="ISO 8601 instant: first slot (inclusive).")
@click.option("--to", "end", required=True, help="ISO 8601 instant: last slot (inclusive).")
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True,
              type=click.IntRange(1, MAX_LIMIT),
              help=f"Refuse ranges with more windows than this (at most {MAX_LIMIT}).")
def backfill_command(job: str, start: str, end: str, limit: int) -> None:
    """Enqueue JOB's windows in a past range (trigger 'backfill'), skipping succeeded ones."""
    from agentcron.emission.publisher import CeleryPublisher
    from agentcron.watch.backfill import BackfillError, backfill

    try:
        first, last = parse_instant(start), parse_instant(end)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc
    runtime = load_runtime()
    try:
        spec = runtime.spec(job)
        app = cli_app(runtime.settings, "agentcron-backfill")
        publisher = CeleryPublisher(app, signing_key=runtime.settings.signing_key)
        report = backfill(spec, runtime.ledger, publisher, first, last, limit)
    except KeyError:
        click.echo(f"error: no job named {job!r}", err=True)
        raise SystemExit(1) from None
    except BackfillError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    finally:
        runtime.close()
    click.echo(report.summary())
    for key in report.sent:
        click.echo(f"  sent {key}{' (forced re-run)' if key in report.forced else ''}")


@click.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_command(as_json: bool) -> None:
    """List the jobs (schedule file and runtime schedules) with their next fire."""
    from agentcron.watch.watchdog import enabled_specs

    runtime = load_runtime()
    try:
        active = {s.name for s in enabled_specs(runtime)}
        specs = {s.name: s for s in runtime.specs()}
        now = runtime.clock.now()
    finally:
        runtime.close()
    rows = []
    for name in sorted(specs):
        spec = specs[name]
        upcoming = spec.schedule.next_fire(now)
        rows.append({"job": name, "state": "active" if name in active else "paused",
                     "schedule": spec.job.schedule, "tz": spec.job.tz, "queue": spec.queue,
                     "next": format_instant(upcoming) if upcoming else None})  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['job']:<32} {row['state']:<7} {row['schedule']!s:<20} {row['queue']:<16} "
                   f"next {row['next'] or 'never'}")
