"""``celery -A workers.app agents …``: agentcron's commands inside the ``celery`` CLI.

Registered through the ``celery.commands`` entry point group (pyproject.toml), the way Celery
loads extra commands. Each sub-command is the very click command of ``agentcron …``:

| celery -A workers.app agents … | same as |
|---|---|
| ``list`` | ``agentcron jobs`` |
| ``next EXPR`` | ``agentcron next`` |
| ``runs`` | ``agentcron runs`` |
| ``trigger JOB [--force]`` | ``agentcron trigger`` |
| ``pause JOB`` / ``resume JOB`` | ``agentcron schedules pause|resume`` |
| ``check`` | ``agentcron check`` |
| ``backfill JOB --from ISO --to ISO`` | ``agentcron backfill`` |
| ``status`` | ``agentcron status`` |
| ``dead-letters [--json] [--requeue ID] [--purge]`` | ``agentcron dead-letters`` |
| ``reports [show ID]`` / ``deliveries [retry ID]`` | ``agentcron reports`` / ``deliveries`` |
"""

from __future__ import annotations

import click

from agentcron.cli.backfill import backfill_command, jobs_command
from agentcron.cli.check import check_command
from agentcron.cli.dead_letters import dead_letters_command
from agentcron.cli.failures import GuardedGroup
from agentcron.cli.reports import deliveries_group, reports_group
from agentcron.cli.runs import runs_command
from agentcron.cli.schedules import pause_command, resume_command
from agentcron.cli.status import status_command
from agentcron.cli.timing import next_command
from agentcron.cli.trigger import trigger_command


@click.group("agents", cls=GuardedGroup)
def agents() -> None:
    """agentcron: list, next, runs, trigger, pause, resume, check, backfill, status,
    dead-letters, reports, deliveries."""


agents.add_command(jobs_command, "list")
agents.add_command(next_command, "next")
agents.add_command(runs_command, "runs")
agents.add_command(trigger_command, "trigger")
agents.add_command(pause_command, "pause")
agents.add_command(resume_command, "resume")
agents.add_command(check_command, "check")
agents.add_command(backfill_command, "backfill")
agents.add_command(status_command, "status")
agents.add_command(dead_letters_command, "dead-letters")
agents.add_command(reports_group, "reports")
agents.add_command(deliveries_group, "deliveries")
