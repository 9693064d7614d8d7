"""``agentcron web``: the operator console in the browser (see :mod:`agentcron.console`)."""

from __future__ import annotations

import click

from agentcron.cli.timing import load_runtime
from agentcron.console.server import DEFAULT_HOST, DEFAULT_PORT, login_url


def console_token(configured: str) -> str:
    """``AGENTCRON_WEB_TOKEN`` if set (16 characters at least), else a fresh one."""
    from agentcron.console import new_token

    if configured and len(configured) < 16:
        raise click.UsageError("AGENTCRON_WEB_TOKEN must have at least 16 characters")
    return configured or new_token()


@click.command("web")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to bind (the console is for this machine unless told otherwise).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
def web_command(host: str, port: int) -> None:
    """Serve the operator console: jobs, windows, runs, fleet; pause, resume, trigger, backfill."""
    from sqlalchemy.exc import SQLAlchemyError

    from agentcron.cli.up import quiet_third_parties
    from agentcron.console import ConsoleServer, create_app

    quiet_third_parties()
    try:
        runtime = load_runtime()
    except SQLAlchemyError as exc:
        click.echo(f"error: the ledger does not answer ({type(exc).__name__}); is the database "
                   "up, and has `agentcron db upgrade` run?", err=True)  # fmt: skip
        raise SystemExit(1) from None
    token = console_token(runtime.settings.web_token)
    readonly = runtime.settings.web_readonly
    server = ConsoleServer(create_app(runtime, token, readonly=readonly), host, port)
    click.echo(f"agentcron console{' (read-only)' if readonly else ''}: {login_url(host, port, token)}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: bound to {host}: anyone who can reach it and has the token can "
                   "operate your jobs; put it behind TLS", err=True)  # fmt: skip
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        pass
    finally:
        runtime.close()
    if not server.server.started:
        click.echo(f"error: cannot listen on {host}:{port} (in use?); try --port", err=True)
        raise SystemExit(1)
