"""``agentcron trigger JOB [--force]``: run the window that contains now.

Without ``--force`` the run is deduped against the scheduled run of that window: if the window
already has a row (scheduled, running or done), nothing is sent. ``--force`` sends a run that
the guard executes even over a finished window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from agentcron.cli.timing import load_runtime
from agentcron.clock import Clock
from agentcron.emission.envelope import task_for
from agentcron.emission.publisher import Outgoing, Publisher
from agentcron.jobs import JobSpec
from agentcron.ledger.history import grant_force
from agentcron.ledger.records import NewWindow
from agentcron.ledger.store import Ledger
from agentcron.messages import RunMessage
from agentcron.timeouts import cli_app
from agentcron.windows import window_key, window_start


def current_slot(spec: JobSpec, now: datetime) -> datetime:
    """The slot whose window contains ``now``: the last fire at or before now (or now)."""
    if spec.job.window != "slot":
        return now
    horizon = (spec.schedule.period or timedelta(days=1)) * 2
    last = spec.schedule.previous_fire(now, horizon)
    return last if last is not None else now.replace(microsecond=0)


def manual_message(spec: JobSpec, now: datetime, force: bool) -> RunMessage:
    """The manual run message for the window of ``spec`` that contains ``now``."""
    slot = current_slot(spec, now)
    start = window_start(slot, spec.job.window, spec.job.tz)
    return RunMessage(spec.name, window_key(spec.name, start), start, slot, "manual", 1, force)


def trigger(spec: JobSpec, ledger: Ledger, publisher: Publisher, clock: Clock, force: bool) -> str:
    """Record and publish a manual run; a sentence saying what happened."""
    message = manual_message(spec, clock.now(), force)
    window = NewWindow(spec.name, message.window_start, message.window_key, message.slot, "manual")
    fresh = ledger.record_scheduled([window])
    if not fresh and not force:
        row = ledger.get(spec.name, message.window_start)
        state = row.state.value if row is not None else "recorded"
        return f"deduped: {message.window_key} is already {state} (use --force to run it again)"
    if force:  # workers honour a force only with a grant in the ledger (a forged one has none)
        grant_force(ledger.engine, [message.window_key], clock.now(), "trigger")
    publisher.publish([Outgoing(task_for(spec), spec.queue, message)])
    return f"sent {message.short()}{' (forced)' if force else ''} to {spec.queue}"


@click.command("trigger")
@click.argument("job")
@click.option("--force", is_flag=True, help="Run even if the window already ran.")
def trigger_command(job: str, force: bool) -> None:
    """Run JOB now, in the window that contains now."""
    from agentcron.beat.factory import open_publisher

    runtime = load_runtime()
    try:
        spec = runtime.spec(job)
    except KeyError:
        click.echo(f"error: no job named {job!r}", err=True)
        raise SystemExit(1) from None
    app = cli_app(runtime.settings, "agentcron-trigger")
    try:
        publisher = open_publisher(app, runtime.settings)
        click.echo(trigger(spec, runtime.ledger, publisher, runtime.clock, force))
    finally:
        runtime.close()
