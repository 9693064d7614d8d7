"""What ``ctx.report(...)`` collects: a checked report, kept in memory until the run succeeds.

A report is a title, a body and a format (``markdown`` | ``text`` | ``html`` | ``json``; a dict
or list body is JSON), with optional attachments ``{"name.csv": bytes}``. Everything is checked
when the agent calls ``ctx.report``, so a bad report fails the agent's attempt (and is retried
like any other failure) instead of failing the ledger write that ends the run.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FORMATS = ("markdown", "text", "html", "json")
TITLE_MAX_CHARS = 200
BODY_MAX_BYTES = 1024 * 1024
ATTACHMENTS_MAX_BYTES = 10 * 1024 * 1024
REPORTS_PER_RUN = 20
_ATTACHMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,99}")


class ReportError(ValueError):
    """A report the agent passed to ``ctx.report`` is not valid (says which part, and why)."""


@dataclass(frozen=True)
class Attachment:
    """A file sent with a report: its name and bytes."""

    name: str
    data: bytes

    def as_json(self) -> dict[str, Any]:
        """How the ledger keeps it (base64 in a JSON column)."""
        return {"name": self.name, "size": len(self.data),
                "data": base64.b64encode(self.data).decode()}  # fmt: skip

    @staticmethod
    def from_json(value: Mapping[str, Any]) -> Attachment:
        """The inverse of :meth:`as_json`."""
        return Attachment(str(value["name"]), base64.b64decode(value["data"]))


@dataclass(frozen=True)
class PendingReport:
    """One checked report of a run, not yet written (it is, with the run's success)."""

    title: str
    body: Any
    format: str
    attachments: tuple[Attachment, ...] = ()

    def body_text(self) -> str:
        """The body as text (JSON bodies pretty-printed)."""
        return body_text(self.body, self.format)


def body_text(body: Any, fmt: str) -> str:
    """A stored body as text: strings as they are, JSON indented."""
    if isinstance(body, str) and fmt != "json":
        return body
    return json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True)


def make_report(title: Any, body: Any, fmt: Any = "markdown",
                attachments: Mapping[str, bytes] | None = None) -> PendingReport:  # fmt: skip
    """A checked :class:`PendingReport`; :class:`ReportError` names what is wrong."""
    if not isinstance(title, str) or not title.strip():
        raise ReportError("report title must be non-empty text")
    if len(title) > TITLE_MAX_CHARS or any(ord(c) < 32 for c in title):
        raise ReportError(f"report title must be one line of at most {TITLE_MAX_CHARS} characters")
    if fmt not in FORMATS:
        raise ReportError(f"report format {fmt!r} unknown; one of {', '.join(FORMATS)}")
    if isinstance(body, dict | list):
        fmt = "json"
    elif not isinstance(body, str):
        raise ReportError(f"report body must be text, a dict or a list, not {type(body).__name__}")
    try:
        encoded = json.dumps(body, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ReportError(f"report body is not JSON: {exc}") from exc
    if len(encoded.encode()) > BODY_MAX_BYTES:
        raise ReportError(f"report body too large: {len(encoded.encode())} bytes, "
                          f"limit {BODY_MAX_BYTES} bytes")  # fmt: skip
    return PendingReport(title, json.loads(encoded), str(fmt), _attachments(attachments))


def _attachments(attachments: Mapping[str, bytes] | None) -> tuple[Attachment, ...]:
    if attachments is None:
        return ()
    if not isinstance(attachments, Mapping):
        raise ReportError("report attachments must be a dict of file name to bytes")
    found: list[Attachment] = []
    total = 0
    for name, data in attachments.items():
        if not isinstance(name, str) or not _ATTACHMENT_NAME.fullmatch(name):
            raise ReportError(f"attachment name {name!r} must be a plain file name (letters, "
                              "digits, '.', '_', '-', space; at most 100)")  # fmt: skip
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes | bytearray):
            raise ReportError(f"attachment {name!r} must be bytes, not {type(data).__name__}")
        total += len(data)
        found.append(Attachment(name, bytes(data)))
    if total > ATTACHMENTS_MAX_BYTES:
        raise ReportError(f"attachments too large: {total} bytes, limit {ATTACHMENTS_MAX_BYTES}")
    return tuple(found)
