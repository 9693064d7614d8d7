"""``agentcron next`` and ``agentcron validate``: schedules and declarations, no services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agentcron.clock import SYSTEM_CLOCK
from agentcron.errors import ConfigError
from agentcron.instants import format_instant, parse_instant
from agentcron.schedule_file import load_jobs
from agentcron.schedules import parse_schedule

if TYPE_CHECKING:
    from agentcron.runtime import Runtime

MAX_NEXT = 10_000
"""``next -n`` at most: a larger count is refused at once (exit 2) instead of running for minutes."""


def fail(error: ConfigError | str) -> None:
    """Print every problem to stderr and exit 2."""
    text = str(error)
    click.echo(f"error: {text}" if "\n" not in text else f"errors:\n{text}", err=True)
    raise SystemExit(2)


def load_runtime() -> Runtime:
    """This process's runtime from the environment; a bad configuration exits 2 naming it."""
    from agentcron.runtime import Runtime
    from agentcron.settings import Settings

    try:
        return Runtime.from_settings(Settings.from_env(), SYSTEM_CLOCK)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc


@click.command("next")
@click.argument("expr")
@click.option("--tz", default="UTC", show_default=True, help="IANA timezone of the schedule.")
@click.option("--after", default=None, help="ISO 8601 instant (default: now).")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, MAX_NEXT),
              help=f"How many fire times (at most {MAX_NEXT}).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of UTC times.")
def next_command(expr: str, tz: str, after: str | None, count: int, as_json: bool) -> None:
    """Print the next fire times of EXPR in UTC."""
    try:
        schedule = parse_schedule(expr, tz)
        moment = parse_instant(after) if after else SYSTEM_CLOCK.now()
    except ConfigError as exc:
        fail(exc)
        return
    fires: list[str] = []
    current = schedule.next_fire(moment)
    while current is not None and len(fires) < count:
        fires.append(format_instant(current))
        current = schedule.next_fire(current)
    if as_json:
        click.echo(json.dumps(fires))
        return
    click.echo(f"{expr!r} in {tz}: {schedule.describe()}")
    for fire in fires:
        click.echo(f"  {fire}")
    if not fires:
        click.echo(f"  no fire time after {format_instant(moment)}")


@click.command("validate")
@click.argument("path", default="beat_schedule.py", type=click.Path(path_type=Path))
def validate_command(path: Path) -> None:
    """Check a schedule file; print each job, its next fire and its schedule in words."""
    try:
        specs = load_jobs(path)
    except ConfigError as exc:
        fail(exc)
        return
    now = SYSTEM_CLOCK.now()
    click.echo(f"{path}: {len(specs)} job(s) valid")
    for spec in specs:
        upcoming = spec.schedule.next_fire(now)
        when = format_instant(upcoming) if upcoming else "never"
        state = "" if spec.job.enabled else " [disabled]"
        click.echo(
            f"  {spec.name}{state}: next {when}; {spec.schedule.describe()}; "
            f"{spec.kind.value} agent {spec.agent.ref} -> {spec.queue}; overlap={spec.job.overlap}"
        )
