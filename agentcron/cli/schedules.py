"""``agentcron schedules add|list|pause|resume|remove``: dynamic schedules in the ledger.

A running beat picks every change up within ``AGENTCRON_SCHEDULE_REFRESH_INTERVAL`` seconds
(2 by default) without a restart.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from agentcron.agents import DeclaredModules
from agentcron.cli.timing import fail
from agentcron.clock import SYSTEM_CLOCK
from agentcron.errors import ConfigError
from agentcron.jobs import Declared, Job, compile_job
from agentcron.ledger.schedules import ScheduleStore
from agentcron.limits.declare import named_limits
from agentcron.schedule_file import load_declarations
from agentcron.secrets import literal_secrets, redact
from agentcron.settings import Settings


def open_store(settings: Settings) -> ScheduleStore:
    """The schedules table of the configured ledger (migrated if needed)."""
    from agentcron.ledger.store import Ledger

    ledger = Ledger.from_settings(settings, SYSTEM_CLOCK)
    ledger.upgrade()
    return ScheduleStore(ledger.engine, SYSTEM_CLOCK)


def declared_agent_modules(settings: Settings) -> DeclaredModules:
    """``AGENTCRON_AGENT_MODULES`` plus the modules of the schedule file's jobs."""
    return file_declarations(settings)[0]


def file_declarations(settings: Settings) -> tuple[DeclaredModules, Declared]:
    """The declared agent modules, and the schedule file's BUDGETS and LIMITS (with
    ``AGENTCRON_LIMITS``) that a runtime schedule may name."""
    path = settings.schedule_path
    if path.is_file():
        jobs, declarations = load_declarations(path, settings.limits)
    else:
        jobs, declarations = [], Declared({}, named_limits([], settings.limits))
    return DeclaredModules.of(settings.agent_modules, jobs), declarations


def _search_paths(settings: Settings) -> list[Path]:
    return [settings.schedule_path.parent.resolve(), Path.cwd()]


@click.group("schedules")
def schedules_group() -> None:
    """Add, list, pause, resume and remove schedules at runtime."""


@schedules_group.command("add")
@click.argument("name")
@click.option("--agent", required=True, help="Import path 'module:attr' of the agent.")
@click.option("--schedule", "expr", required=True, help="Cron, interval or one-shot expression.")
@click.option("--task", default="", help="Task text given to agent objects.")
@click.option("--tz", default="UTC", show_default=True)
@click.option("--window", default="slot", show_default=True)
@click.option("--overlap", default="skip", show_default=True)
@click.option("--max-retries", default=3, show_default=True, type=int, help="Total attempts.")
@click.option("--catchup-window", default=None, help="Duration, e.g. 15m (default: one period).")
@click.option("--coalesce", default="latest", show_default=True)
@click.option("--jitter", default="0", show_default=True, help="Maximum jitter, e.g. 30s.")
@click.option("--timeout", default="3600", show_default=True)
@click.option("--queue", default=None, help="Override the queue (default: by agent kind).")
@click.option("--config", "config_json", default="{}", help="JSON object given as ctx.config.")
@click.option("--paused", is_flag=True, help="Add it paused.")
@click.option("--deliver", multiple=True, help="Report target (repeatable): mailto:…, https://…, "
              "slack:https://…")
@click.option("--budget", default=None, help="Name of a budget of the schedule file's BUDGETS.")
@click.option("--limit", "limits", multiple=True, help="Name of a limit of the schedule file's "
              "LIMITS (repeatable).")
def add_command(name: str, agent: str, expr: str, config_json: str, paused: bool,
                deliver: tuple[str, ...], limits: tuple[str, ...], **options: Any) -> None:  # fmt: skip
    """Add (or replace) the schedule NAME."""
    settings = Settings.from_env()
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        fail(f"--config is not JSON: {exc}")
        return
    fields = {k: v for k, v in options.items() if v is not None}
    for key in ("jitter", "timeout", "catchup_window"):
        if key in fields:
            with contextlib.suppress(ValueError):  # a number of seconds; else a text like 15m
                fields[key] = float(fields[key])
    try:
        declared, declarations = file_declarations(settings)
        declared.check(agent)  # one line, before anything is imported
        job = Job(name, agent=agent, schedule=expr, config=config, enabled=not paused,
                  deliver=list(deliver), limits=list(limits), **fields)
        spec = compile_job(job, _search_paths(settings), settings.config_max_bytes, declared,
                           declarations)  # an unknown budget or limit name is refused here
    except (ConfigError, TypeError) as exc:
        fail(str(exc))
        return
    for key in literal_secrets(config):
        click.echo(f"warning: config key {key!r} holds a literal secret, kept in the ledger; "
                   "write it as env:NAME to keep it out", err=True)  # fmt: skip
    revision = open_store(settings).add(job)
    nxt = spec.schedule.next_fire(SYSTEM_CLOCK.now())
    when = nxt.strftime("%Y-%m-%dT%H:%M:%SZ") if nxt else "never"
    click.echo(f"added {name} ({spec.kind.value} -> {spec.queue}); next {when}; revision {revision}")


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """List the schedules the ledger holds (file and runtime ones)."""
    entries = open_store(Settings.from_env()).entries()
    if as_json:
        click.echo(json.dumps([{"name": e.name, "enabled": e.enabled, "source": e.source,
                                "revision": e.revision, **redact(e.definition)} for e in entries],
                              default=str))  # fmt: skip
        return
    if not entries:
        click.echo("no schedules")
    for e in entries:
        state = "active" if e.enabled else "paused"
        click.echo(f"{e.name:<32} {state:<7} {e.source:<13} {e.definition.get('schedule')!s:<20} "
                   f"{e.definition.get('agent')}")  # fmt: skip


def _change(action: str, name: str) -> None:
    store = open_store(Settings.from_env())
    done = {"pause": store.pause, "resume": store.resume, "remove": store.remove}[action](name)
    if not done:
        click.echo(f"error: no schedule named {name!r}", err=True)
        raise SystemExit(1)
    click.echo(f"{action}d {name}" if action != "pause" else f"paused {name}")


@schedules_group.command("pause")
@click.argument("name")
def pause_command(name: str) -> None:
    """Stop scheduling NAME (history kept)."""
    _change("pause", name)


@schedules_group.command("resume")
@click.argument("name")
def resume_command(name: str) -> None:
    """Schedule NAME again."""
    _change("resume", name)


@schedules_group.command("remove")
@click.argument("name")
def remove_command(name: str) -> None:
    """Remove NAME from the schedules (its run history is kept)."""
    _change("remove", name)
