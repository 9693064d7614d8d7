"""Alerts: an ERROR log line, a JSON webhook, and Healthchecks.io / Cronitor pings per job.

Notifiers are chosen in :class:`~agentcron.settings.Settings`:

- ``AGENTCRON_ALERT_WEBHOOK_URL``: every alert is POSTed as JSON
  ``{"job", "window", "state", "reason"}``.
- ``AGENTCRON_PING_URLS``: a JSON object ``{"job": "https://hc-ping.com/<uuid>", ...}``;
  ``AGENTCRON_PING_STYLE`` ``healthchecks`` (``/start``, the URL itself, ``/fail``) or
  ``cronitor`` (``?state=run|complete|fail``).

HTTP uses the standard library with a short timeout; a failing notifier is logged and never
raises. Ping URLs carry secrets (their path is the credential): logs show the host only.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from agentcron.errors import ConfigError, Problem
from agentcron.secrets import scrub
from agentcron.settings import PREFIX, Settings

log = logging.getLogger("agentcron.alerts")
EVENTS = ("start", "success", "fail")
_CRONITOR_STATE = {"start": "run", "success": "complete", "fail": "fail"}


@dataclass(frozen=True)
class Alert:
    """One thing an operator must hear about: a window that ended badly."""

    job: str
    window: str
    state: str
    reason: str


class Notifier(Protocol):
    """Somewhere alerts go."""

    def notify(self, alert: Alert) -> None:
        """Deliver ``alert`` (may raise; the :class:`Alerter` logs and moves on)."""
        ...


Sender = Callable[[str, bytes | None, float], int]
"""``(url, json body or None for GET, timeout) -> HTTP status``."""


def http_send(url: str, body: bytes | None, timeout: float) -> int:
    """POST ``body`` as JSON (or GET when None) with a timeout; the HTTP status."""
    headers = {"User-Agent": "agentcron"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers,
                                     method="POST" if body is not None else "GET")  # fmt: skip
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def safe_target(url: str) -> str:
    """What logs may say about ``url``: scheme and host, never its path, query or password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


class WebhookNotifier:
    """POST each alert as JSON to one URL."""

    def __init__(self, url: str, timeout: float = 5.0, send: Sender = http_send) -> None:
        self.url = url
        self.timeout = timeout
        self.send = send

    def notify(self, alert: Alert) -> None:
        """POST ``{"job", "window", "state", "reason"}``."""
        self.send(self.url, json.dumps(asdict(alert)).encode(), self.timeout)


def ping_url(base: str, event: str, style: str = "healthchecks") -> str:
    """The URL that reports ``event`` (start, success, fail) to a ping monitor."""
    if event not in EVENTS:
        raise ValueError(f"unknown ping event {event!r}")
    if style == "cronitor":
        joiner = "&" if "?" in base else "?"
        return f"{base}{joiner}state={_CRONITOR_STATE[event]}"
    base = base.rstrip("/")
    return base if event == "success" else f"{base}/{event}"


def parse_ping_urls(raw: str) -> dict[str, str]:
    """``AGENTCRON_PING_URLS``: a JSON object of job name to ping URL."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError([Problem(None, f"{PREFIX}PING_URLS", "(hidden)", "not JSON")]) from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError([Problem(None, f"{PREFIX}PING_URLS", "(hidden)",
                                   'expected {"job": "https://…"}')])  # fmt: skip
    return {str(k): v for k, v in data.items()}


class Alerter:
    """Log, notify and ping; never raises."""

    def __init__(
        self,
        notifiers: Sequence[Notifier] = (),
        pings: Mapping[str, str] | None = None,
        *,
        ping_style: str = "healthchecks",
        timeout: float = 5.0,
        send: Sender = http_send,
    ) -> None:
        self.notifiers = list(notifiers)
        self.pings = dict(pings or {})
        self.ping_style = ping_style
        self.timeout = timeout
        self.send = send
        self.sent = 0

    def alert(self, alert: Alert, *, log_line: bool = True) -> None:
        """An ERROR line (unless the caller logged it), every notifier, and a ``fail`` ping for the
        job (reason scrubbed)."""
        alert = replace(alert, reason=scrub(alert.reason) or "")
        if log_line:
            log.error("ALERT %s window %s %s: %s", alert.job, alert.window, alert.state,
                      alert.reason)  # fmt: skip
        for notifier in self.notifiers:
            try:
                notifier.notify(alert)
                self.sent += 1
            except Exception as exc:
                log.warning("alert notifier %s failed: %s", type(notifier).__name__,
                            type(exc).__name__)  # fmt: skip
        self.ping(alert.job, "fail")

    def ping(self, job: str, event: str) -> bool:
        """Report ``event`` for ``job`` to its ping URL, if it has one; True if it answered."""
        base = self.pings.get(job)
        if base is None:
            return False
        url = ping_url(base, event, self.ping_style)
        try:
            self.send(url, None, self.timeout)
            return True
        except Exception as exc:
            log.warning("ping %s of %s to %s failed: %s", event, job, safe_target(url),
                        type(exc).__name__)  # fmt: skip
            return False


def alerter_from_settings(settings: Settings, send: Sender = http_send) -> Alerter:
    """The alerter the settings ask for."""
    notifiers: list[Notifier] = []
    if settings.alert_webhook_url:
        notifiers.append(WebhookNotifier(settings.alert_webhook_url, settings.alert_timeout, send))
    if settings.ping_style not in ("healthchecks", "cronitor"):
        raise ConfigError([Problem(None, f"{PREFIX}PING_STYLE", settings.ping_style,
                                   "one of healthchecks, cronitor")])  # fmt: skip
    return Alerter(notifiers, parse_ping_urls(settings.ping_urls), ping_style=settings.ping_style,
                   timeout=settings.alert_timeout, send=send)  # fmt: skip


def safe_alerter(settings: Settings) -> Alerter:
    """:func:`alerter_from_settings`, or (logged) a log-only alerter when the settings are bad:
    a worker or the watchdog must not fail because of a typo in a notifier setting."""
    try:
        return alerter_from_settings(settings)
    except ConfigError as exc:
        log.error("alert notifiers disabled, bad settings: %s", exc)
        return Alerter()
