"""``agentcron check``: one watchdog pass now (re-enqueue lost windows, mark and alert missed)."""

from __future__ import annotations

import json

import click

from agentcron.cli.timing import load_runtime
from agentcron.timeouts import cli_app


@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the window keys as JSON.")
def check_command(as_json: bool) -> None:
    """Run the watchdog once: re-enqueue lost windows, mark missed ones and alert."""
    from agentcron.watch.watchdog import run_watchdog

    runtime = load_runtime()
    app = cli_app(runtime.settings, "agentcron-check")
    try:
        report = run_watchdog(runtime, app)
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps({"jobs": report.jobs, "enqueued": report.enqueued,
                               "republished": report.republished, "missed": report.missed,
                               "alerted": report.alerted}, indent=2))  # fmt: skip
    else:
        click.echo(report.summary())
        for label, keys in (("enqueued", report.enqueued), ("re-published", report.republished),
                            ("missed", report.missed)):  # fmt: skip
            for key in keys:
                click.echo(f"  {label}: {key}")
