"""Reports in the ledger, read back (they are written with the run's success by
:func:`agentcron.ledger.outputs.write_outputs`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from agentcron.ledger.engine import begin_read
from agentcron.ledger.outputs import DELIVERIES, REPORTS
from agentcron.reports.content import Attachment, body_text

__all__ = ["DELIVERIES", "REPORTS", "StoredReport", "get_report", "get_reports", "list_reports"]


@dataclass(frozen=True)
class StoredReport:
    """A report as the ledger keeps it."""

    id: int
    job: str
    window_key: str
    seq: int
    title: str
    format: str
    body: Any
    attachments: tuple[Attachment, ...]
    created_at: datetime | None

    def text(self) -> str:
        """The body as text (JSON indented)."""
        return body_text(self.body, self.format)

    def summary(self) -> dict[str, Any]:
        """A JSON-safe dict without the body and attachment bytes."""
        return {"id": self.id, "job": self.job, "window_key": self.window_key, "seq": self.seq,
                "title": self.title, "format": self.format,
                "attachments": [{"name": a.name, "size": len(a.data)} for a in self.attachments],
                "created_at": self.created_at.isoformat() if self.created_at else None}  # fmt: skip


def stored(row: Any) -> StoredReport:
    """A :class:`StoredReport` from a reports row."""
    m = row._mapping
    attachments = tuple(Attachment.from_json(a) for a in (m["attachments"] or ()))
    return StoredReport(m["id"], m["job"], m["window_key"], m["seq"] or 1, m["title"],
                        m["format"] or "json", m["body"], attachments, m["created_at"])  # fmt: skip


def list_reports(engine: Engine, job: str | None = None, window_key: str | None = None,
                 limit: int = 50) -> list[StoredReport]:  # fmt: skip
    """Reports, newest first, optionally of one job and/or one window."""
    query = select(REPORTS).order_by(REPORTS.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(REPORTS.c.job == job)
    if window_key is not None:
        query = query.where(REPORTS.c.window_key == window_key)
    with begin_read(engine) as conn:
        return [stored(row) for row in conn.execute(query)]


def get_report(engine: Engine, report_id: int) -> StoredReport | None:
    """One report by id, or None."""
    return get_reports(engine, [report_id]).get(report_id)


def get_reports(engine: Engine, report_ids: Sequence[int]) -> dict[int, StoredReport]:
    """The reports of ``report_ids`` that exist, by id (one query)."""
    with begin_read(engine) as conn:
        rows = conn.execute(select(REPORTS).where(REPORTS.c.id.in_(list(report_ids))))
        return {report.id: report for report in map(stored, rows)}
