"""Checked request parameters: a clear 400 for anything out of shape."""

from __future__ import annotations

from datetime import datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request

from agentcron.errors import ConfigError
from agentcron.instants import parse_instant

MAX_TEXT = 200


def text(request: Request, name: str, default: str = "", choices: tuple[str, ...] = ()) -> str:
    """A query parameter as printable text of at most :data:`MAX_TEXT` characters."""
    value = request.query_params.get(name, default)
    if len(value) > MAX_TEXT or not value.isprintable():
        raise HTTPException(400, f"parameter {name!r} is too long or not printable")
    if choices and value not in choices:
        raise HTTPException(400, f"parameter {name!r} must be one of {', '.join(choices)}")
    return value


def number(request: Request, name: str, default: int, top: int = 1_000_000) -> int:
    """A positive integer query parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 7 or not 1 <= int(raw) <= top:
        raise HTTPException(400, f"parameter {name!r} must be a whole number from 1 to {top}")
    return int(raw)


def instant(form: dict[str, str], name: str) -> datetime:
    """An ISO 8601 instant from a form field (a bare date-time is read as UTC)."""
    raw = form.get(name, "").strip()
    if not raw:
        raise HTTPException(400, f"field {name!r} is required (ISO 8601, e.g. 2026-03-01T00:00Z)")
    if len(raw) <= 16 and "T" in raw:
        raw += ":00Z"
    try:
        return parse_instant(raw if raw.endswith(("Z", "z")) or "+" in raw[10:] else raw + "Z")
    except (ConfigError, ValueError) as exc:
        raise HTTPException(400, f"field {name!r}: {exc}") from exc
