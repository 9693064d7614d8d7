"""Delivery targets of a job: ``mailto:``, ``https://`` webhooks and ``slack:https://``.

``Job(..., deliver=["mailto:team@example.com", "https://hooks.example.com/x",
"slack:https://hooks.slack.com/services/…"])`` is checked when the job is registered; a bad
target is one :class:`~agentcron.errors.ConfigError` line naming the job, ``deliver`` and the
target (a URL shown by scheme and host only: a webhook's path is often its secret).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from agentcron.errors import ConfigError, Problem

TARGETS_PER_JOB = 20
TARGET_MAX_CHARS = 2000
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class TargetKind(enum.StrEnum):
    """How a target is reached."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    SLACK = "slack"


@dataclass(frozen=True)
class Target:
    """One parsed target: its kind, and the address (email) or URL (webhook, slack)."""

    kind: TargetKind
    address: str
    text: str

    def safe(self) -> str:
        """What output may show: an email address, or a URL's scheme and host only."""
        return safe_target(self.text)


def safe_target(text: str) -> str:
    """A target as output may show it (no URL path, query or password)."""
    if text.startswith("mailto:"):
        return text
    prefix = "slack:" if text.startswith("slack:") else ""
    parts = urlsplit(text[len(prefix):])
    port = f":{parts.port}" if _port(parts.netloc) else ""
    return f"{prefix}{parts.scheme}://{parts.hostname or '?'}{port}/…"


def _port(netloc: str) -> bool:
    try:
        return urlsplit(f"//{netloc}").port is not None
    except ValueError:
        return False


def delivery_key(window_key: str, report_id: int, target: str) -> str:
    """The stable identity of one delivery (the Message-ID's and Idempotency-Key's text): every
    send of one (window, report, target) row carries it; a forced re-run of the window writes
    new reports, so its email is a new message, not a duplicate to drop."""
    digest = hashlib.sha256(f"{window_key}\n{report_id}\n{target}".encode()).hexdigest()
    return digest[:40]


def parse_target(text: object) -> Target:
    """One target, or a ConfigError (field ``deliver``) saying what is wrong."""
    if not isinstance(text, str):
        raise _problem(repr(text)[:80], "a target is text: mailto:…, https://… or slack:https://…")
    if len(text) > TARGET_MAX_CHARS or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise _problem(text[:80], f"no spaces or control characters, at most {TARGET_MAX_CHARS}")
    if text.startswith("mailto:"):
        address = text[len("mailto:"):]
        if not _ADDRESS.fullmatch(address):
            raise _problem(text, "not an email address (mailto:name@example.com)")
        return Target(TargetKind.EMAIL, address, text)
    kind, url = (TargetKind.SLACK, text[len("slack:"):]) if text.startswith("slack:") else (
        TargetKind.WEBHOOK, text)
    _check_url(url, text)
    return Target(kind, url, text)


def _check_url(url: str, text: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _problem(safe_target(text), f"not a URL ({exc})") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _problem(safe_target(text) if parts.scheme else text[:80],
                       "unknown target; use mailto:…, https://… or slack:https://…")
    if parts.password is not None:
        raise _problem(safe_target(text), "no password in a webhook URL")


def parse_targets(values: object) -> tuple[Target, ...]:
    """Every target of ``Job.deliver`` (a list of texts); all problems in one ConfigError."""
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise _problem(repr(values)[:80], 'must be a list, e.g. ["mailto:team@example.com"]')
    if len(values) > TARGETS_PER_JOB:
        raise _problem(f"{len(values)} targets", f"at most {TARGETS_PER_JOB} targets")
    problems: list[Problem] = []
    found: list[Target] = []
    for value in values:
        try:
            target = parse_target(value)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if target.text in {t.text for t in found}:
            problems.append(Problem(None, "deliver", target.safe(), "listed twice"))
        found.append(target)
    if problems:
        raise ConfigError(problems)
    return tuple(found)


def _problem(value: str, reason: str) -> ConfigError:
    return ConfigError([Problem(None, "deliver", value, reason)])
