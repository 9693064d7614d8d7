"""One line, never a traceback: how every CLI command reports what went wrong.

:class:`GuardedGroup` is the click group of ``agentcron`` and of ``celery -A workers.app agents``:
an exception that escapes a command becomes ``error: …`` on stderr and an exit code — 2 for bad
input (:class:`~agentcron.errors.ConfigError`, a value out of range), 1 for a service that is down
or failing (database, broker, Redis) and for anything unexpected (its traceback is logged at
DEBUG only).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import click

from agentcron.errors import ConfigError

log = logging.getLogger("agentcron.cli")
BAD_INPUT, UNAVAILABLE = 2, 1
_MAX_CHARS = 300
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    text = " ".join(str(cause).split()) or type(cause).__name__
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…"


def _service(exc: BaseException) -> str | None:
    """Which service ``exc`` says is down or failing, or None if it is not a service error."""
    module = type(exc).__module__.split(".", 1)[0]
    if module in ("sqlalchemy", "psycopg", "psycopg2", "sqlite3", "alembic"):
        return "database"
    if module == "redis":
        return "Redis"
    if module in ("kombu", "amqp", "celery"):
        return "broker"
    if isinstance(exc, OSError):
        return "service"
    return None


def describe(exc: BaseException) -> tuple[str, int]:
    """The one-line message and the exit code for ``exc``."""
    if isinstance(exc, ConfigError):
        text = str(exc)
        return (f"error: {text}" if "\n" not in text else f"errors:\n{text}"), BAD_INPUT
    if isinstance(exc, OverflowError | RecursionError):
        return f"error: value out of range: {_first_line(exc)}", BAD_INPUT
    service = _service(exc)
    if service is not None:
        return f"error: {service} unavailable or failing: {_first_line(exc)}", UNAVAILABLE
    return f"error: unexpected {type(exc).__name__}: {_first_line(exc)}", UNAVAILABLE


class GuardedGroup(click.Group):
    """A click group whose commands never end in a traceback (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            log.debug("command failed", exc_info=True)
            message, code = describe(exc)
            click.echo(message, err=True)
            ctx.exit(code)
