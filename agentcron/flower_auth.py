"""Flower only with authentication: ``celery -A workers.app flower`` refuses to start without it.

Flower's API can shut workers down and start any task, so reaching it is run-code privilege.
Flower itself starts with no authentication, listening on every interface. Through this app it
needs ``--basic-auth=user:password`` (or ``FLOWER_BASIC_AUTH``) or OAuth (``--auth`` /
``FLOWER_AUTH`` with its provider), and it binds to 127.0.0.1 unless ``--address`` says otherwise.

:func:`check_flower` runs from Celery's ``import_modules`` signal, which Flower sends after it has
read its options (command line, ``FLOWER_*`` variables, ``flowerconfig.py``) and before it binds.
"""

from __future__ import annotations

import sys
from typing import Any

LOOPBACK = "127.0.0.1"
MESSAGE = ("error: Flower would start without authentication: pass --basic-auth=user:password "
           "(or set FLOWER_BASIC_AUTH), or configure OAuth with --auth and --auth_provider "
           "(FLOWER_AUTH, FLOWER_AUTH_PROVIDER); its API can stop workers and start tasks")


def auth_problem(basic_auth: list[str] | None, auth: str | None) -> str | None:
    """Why these Flower options leave it open, or None when it authenticates every request."""
    users = [entry for entry in (basic_auth or []) if _user_and_password(entry)]
    if users or (auth or "").strip():
        return None
    return MESSAGE


def _user_and_password(entry: str) -> bool:
    user, _, password = entry.partition(":")
    return bool(user.strip()) and bool(password)


def running_flower() -> bool:
    """Whether this process is ``celery ... flower`` (the innermost click command)."""
    import click

    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name == "flower"


def check_flower(**_: Any) -> None:
    """Exit 2 with :data:`MESSAGE` when Flower is starting without authentication; default its
    address to loopback."""
    if not running_flower():
        return
    from tornado.options import options

    problem = auth_problem(options.basic_auth, options.auth)
    if problem is not None:
        print(problem, file=sys.stderr, flush=True)
        raise SystemExit(2)
    if not options.address and not options.unix_socket:
        options.address = LOOPBACK
