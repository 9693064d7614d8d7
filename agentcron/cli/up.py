"""``agentcron up``: run beat and both workers on this machine and watch them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from agentcron.errors import ConfigError
from agentcron.settings import Settings
from agentcron.timeouts import check_broker
from agentcron.up import Supervisor


@click.command("up")
@click.option("--schedule", "schedule", type=click.Path(path_type=Path), default=None,
              help="The schedule file (default ./beat_schedule.py).")
@click.option("--data-dir", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Where embedded mode keeps its SQLite files and logs (default ./.agentcron).")
def up_command(schedule: Path | None, data_dir: Path | None) -> None:
    """Run beat, a sync worker and an async worker here; Ctrl-C stops them gracefully."""
    overrides: dict[str, Any] = {}
    if schedule is not None:
        overrides["schedule_path"] = schedule.resolve()
    if data_dir is not None:
        overrides["data_dir"] = data_dir.resolve()
    try:
        settings = Settings.from_env(**overrides)
        check_broker(settings)  # a broker that is down is an error now, not children retrying
        supervisor = Supervisor(settings, click.echo)
        signal.signal(signal.SIGINT, supervisor.request_stop)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        status = supervisor.run()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    raise SystemExit(status)
