"""Email: a multipart message per (report, address), sent over SMTP or kept as an .eml file.

The message is built with the standard library's ``email`` package: a text part, an HTML part
rendered from markdown with markdown-it-py (raw HTML in the markdown is escaped, not passed
through), and the report's attachments. Its ``Message-ID`` comes from the window key, the
report and the target, and ``X-Agentcron-Window`` names the window, so a message sent
twice (a sender killed between its send and its commit) can be dropped by the receiver
(see :func:`agentcron.delivery.targets.delivery_key`). The
``Date`` is the report's creation time, the same on a repeat.

``AGENTCRON_SMTP_URL``: ``smtp://host:25``, ``smtp+starttls://user:pass@host:587`` or
``smtps://user:pass@host:465`` (user and password percent-encoded); without it, messages are
written to ``<data-dir>/outbox/<window>-<n>-<key>.eml``.
"""

from __future__ import annotations

import functools
import html
import mimetypes
import os
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from agentcron.delivery.errors import DeliveryError
from agentcron.delivery.outbox import Delivery
from agentcron.delivery.targets import delivery_key
from agentcron.errors import ConfigError, Problem
from agentcron.reports.records import StoredReport
from agentcron.settings import PREFIX

SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
# Reply codes that will not get better by trying again (RFC 5321 5yz), except 552 (storage).
_PERMANENT = range(500, 600)


def render_html(report: StoredReport) -> str | None:
    """The HTML part: markdown rendered, html as given, text and JSON in a <pre>; None for none."""
    if report.format == "html":
        return str(report.body)
    if report.format == "markdown":
        return str(_markdown().render(report.text()))
    return f"<pre>{html.escape(report.text())}</pre>"


@functools.cache
def _markdown() -> Any:
    """One CommonMark renderer (plus GitHub-style tables) for the process; raw HTML escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def message_id(item: Delivery, mail_from: str) -> str:
    """``<key@domain>``: the same for every send of this (window, report, target)."""
    domain = mail_from.rsplit("@", 1)[1] if "@" in mail_from else "agentcron.invalid"
    return f"<{delivery_key(item.window_key, item.report_id, item.target)}@{domain.strip('<> ')}>"


def build_message(report: StoredReport, item: Delivery, to: str, mail_from: str) -> EmailMessage:
    """The multipart message of ``report`` for ``to``."""
    msg = EmailMessage()
    msg["Subject"] = report.title
    msg["From"] = mail_from
    msg["To"] = to
    msg["Message-ID"] = message_id(item, mail_from)
    msg["X-Agentcron-Window"] = item.window_key
    msg["X-Agentcron-Job"] = item.job
    if report.created_at is not None:
        msg["Date"] = format_datetime(report.created_at)
    msg.set_content(report.text())
    rendered = render_html(report)
    if rendered is not None:
        msg.add_alternative(f"<!doctype html><html><body>{rendered}</body></html>",
                            subtype="html")  # fmt: skip
    for attachment in report.attachments:
        kind = mimetypes.guess_type(attachment.name)[0] or "application/octet-stream"
        main, sub = kind.split("/", 1)
        msg.add_attachment(attachment.data, maintype=main, subtype=sub, filename=attachment.name)
    return msg


def check_smtp_url(url: str) -> None:
    """Raise a ConfigError naming ``AGENTCRON_SMTP_URL`` (password hidden) when it is unusable."""
    from agentcron.settings import redact_url

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError([Problem(None, f"{PREFIX}SMTP_URL", "(hidden)", "not a URL")]) from exc
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
        raise ConfigError([Problem(None, f"{PREFIX}SMTP_URL", redact_url(url),
                                   "use smtp://, smtp+starttls:// or smtps://host[:port]")])


class SmtpMailer:
    """Sends messages through the server of ``AGENTCRON_SMTP_URL`` (a connection per send)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        check_smtp_url(url)
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or SMTP_SCHEMES[parts.scheme]
        self.user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self.timeout = timeout

    def send(self, msg: EmailMessage) -> None:
        """Send ``msg``; :class:`DeliveryError` (transient or not) when it did not go."""
        try:
            self._send(msg)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(self._scrub(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"),
                                transient=exc.smtp_code not in _PERMANENT) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(f"SMTP recipient refused: {codes}",
                                transient=not all(c in _PERMANENT for c in codes)) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(self._scrub(f"SMTP {type(exc).__name__}: {exc}"),
                                transient=True) from None

    @functools.cached_property
    def _tls(self) -> ssl.SSLContext:
        """Made once (loading the CA certificates costs tens of milliseconds)."""
        return ssl.create_default_context()

    def _send(self, msg: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.scheme == "smtp+starttls":
                smtp.starttls(context=self._tls)
            if self.user:
                smtp.login(self.user, self._password)
            smtp.send_message(msg)

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


class FolderMailer:
    """Writes each message to ``folder`` as ``<window>-<n>-<key>.eml`` (same name on a repeat)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, msg: EmailMessage) -> Path:
        """Where ``msg`` goes."""
        window = re.sub(r"[^A-Za-z0-9._-]", "_", str(msg["X-Agentcron-Window"] or "window"))
        key = str(msg["Message-ID"]).strip("<>").split("@", 1)[0][:12]
        return self.folder / f"{window}-{key}.eml"

    def send(self, msg: EmailMessage) -> None:
        """Write ``msg`` atomically (a temporary file renamed into place)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.path_for(msg)
            partial = path.with_suffix(".eml.partial")
            partial.write_bytes(bytes(msg))
            os.replace(partial, path)
        except OSError as exc:
            raise DeliveryError(f"outbox folder: {type(exc).__name__}: {exc.strerror}",
                                transient=True) from None
