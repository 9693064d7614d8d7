"""Webhooks: a JSON POST per (report, URL) with an ``Idempotency-Key``; Slack-style payloads.

A webhook receives ``{"job", "window_key", "report_id", "seq", "title", "format", "body",
"attachments": [{"name", "size", "data" (base64)}]}``; a ``slack:`` target receives Slack's
incoming-webhook shape ``{"text": "*title*\\n…"}``. Every POST carries ``Idempotency-Key``
(derived from window, report and target: the same on a repeat) and ``X-Agentcron-Window``.
2xx is sent; 408, 425, 429, 5xx and network errors are retried; any other status fails.
"""

from __future__ import annotations

from typing import Any

import httpx

from agentcron.delivery.errors import DeliveryError
from agentcron.delivery.outbox import Delivery
from agentcron.delivery.targets import TargetKind, delivery_key
from agentcron.reports.records import StoredReport

SLACK_TEXT_MAX = 3000
_RETRIED = {408, 425, 429}


def payload(report: StoredReport, item: Delivery) -> dict[str, Any]:
    """The JSON body for ``item``'s kind."""
    if item.kind == TargetKind.SLACK:
        text = report.text()
        if len(text) > SLACK_TEXT_MAX:
            text = text[:SLACK_TEXT_MAX] + "…"
        return {"text": f"*{report.title}*\n{text}"}
    return {"job": item.job, "window_key": item.window_key, "report_id": report.id,
            "seq": report.seq, "title": report.title, "format": report.format,
            "body": report.body,
            "attachments": [a.as_json() for a in report.attachments]}  # fmt: skip


def headers(item: Delivery) -> dict[str, str]:
    """Idempotency and window headers."""
    return {"Idempotency-Key": delivery_key(item.window_key, item.report_id, item.target),
            "X-Agentcron-Window": item.window_key, "User-Agent": "agentcron"}  # fmt: skip


class WebhookPoster:
    """POSTs over one pooled httpx client (redirects are not followed)."""

    def __init__(self, timeout: float = 30.0, client: httpx.Client | None = None) -> None:
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, url: str, report: StoredReport, item: Delivery) -> None:
        """POST; :class:`DeliveryError` when the receiver did not take it."""
        try:
            response = self.client.post(url, json=payload(report, item), headers=headers(item))
        except httpx.HTTPError as exc:  # the text may hold the URL: only the type is kept
            raise DeliveryError(f"HTTP {type(exc).__name__}", transient=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        raise DeliveryError(f"HTTP {status}", transient=status in _RETRIED or status >= 500)

    def close(self) -> None:
        """Close the pooled connections."""
        self.client.close()
