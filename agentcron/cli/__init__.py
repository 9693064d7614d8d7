"""The ``agentcron`` command line (click, as Celery's own CLI).

Each command group lives in its own module and is registered here. Exit codes: 0 success,
2 bad input (click's usage code), 1 a runtime failure or a service that is down; always one line
on stderr, never a traceback (:class:`agentcron.cli.failures.GuardedGroup`).
"""

from __future__ import annotations

import logging

import click

from agentcron.cli.backfill import backfill_command, jobs_command
from agentcron.cli.check import check_command
from agentcron.cli.db import db_group
from agentcron.cli.dead_letters import dead_letters_command
from agentcron.cli.failures import GuardedGroup
from agentcron.cli.reports import deliveries_group, reports_group
from agentcron.cli.runs import runs_command
from agentcron.cli.schedules import schedules_group
from agentcron.cli.spend import limits_command, spend_command
from agentcron.cli.status import status_command
from agentcron.cli.timing import next_command, validate_command
from agentcron.cli.trigger import trigger_command
from agentcron.cli.up import up_command
from agentcron.cli.web import web_command


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentcron")
def main() -> None:
    """Run AI-agent jobs on a clock, exactly one success per schedule window."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # no migration chatter on a terminal


main.add_command(next_command)
main.add_command(validate_command)
main.add_command(db_group)
main.add_command(runs_command)
main.add_command(schedules_group)
main.add_command(trigger_command)
main.add_command(up_command)
main.add_command(check_command)
main.add_command(status_command)
main.add_command(backfill_command)
main.add_command(jobs_command)
main.add_command(web_command)
main.add_command(dead_letters_command)
main.add_command(spend_command)
main.add_command(limits_command)
main.add_command(reports_group)
main.add_command(deliveries_group)
