"""``agentcron up``: run beat and both workers on this machine and watch them."""

from __future__ import annotations

import logging
import signal
import warnings
from pathlib import Path
from typing import Any

import click

from agentcron.errors import ConfigError
from agentcron.settings import Settings
from agentcron.timeouts import check_broker
from agentcron.up import Supervisor


def quiet_third_parties() -> None:
    """Keep alembic's INFO lines and kombu's deprecation warnings off the terminal."""
    for name in ("alembic", "kombu", "celery", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kombu(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sqlalchemy(\.|$)")


@click.command("up")
@click.option("--schedule", "schedule", type=click.Path(path_type=Path), default=None,
              help="The schedule file (default ./beat_schedule.py).")
@click.option("--data-dir", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Where embedded mode keeps its SQLite files and logs (default ./.agentcron).")
@click.option("--web-port", default=8787, show_default=True, type=click.IntRange(0, 65535),
              help="Serve the console on 127.0.0.1:PORT (0: no console).")
@click.option("--first-run/--no-first-run", default=True, show_default=True,
              help="Run the current window of each job that has never run, at start.")
def up_command(schedule: Path | None, data_dir: Path | None, web_port: int,
               first_run: bool) -> None:  # fmt: skip
    """Run beat, a sync worker and an async worker here; Ctrl-C stops them gracefully."""
    quiet_third_parties()
    overrides: dict[str, Any] = {}
    if schedule is not None:
        overrides["schedule_path"] = schedule.resolve()
    if data_dir is not None:
        overrides["data_dir"] = data_dir.resolve()
    try:
        settings = Settings.from_env(**overrides)
        check_broker(settings)  # a broker that is down is an error now, not children retrying
        supervisor = Supervisor(settings, click.echo, web_port=web_port, first_run=first_run)
        signal.signal(signal.SIGINT, supervisor.request_stop)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        status = supervisor.run()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    raise SystemExit(status)
