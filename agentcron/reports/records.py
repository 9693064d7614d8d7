"""Reports in the ledger: written with a run's success (and its delivery rows), read back.

:func:`write_outputs` runs inside the ledger's completion transaction, after the fenced
``UPDATE`` of the run won: the success, its reports and one ``deliveries`` row per (report,
target) commit together or not at all (the transactional outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select

from agentcron.delivery.targets import parse_target
from agentcron.ledger.engine import begin_read
from agentcron.ledger.models import DeliveryRow, ReportRow
from agentcron.reports.content import Attachment, PendingReport, body_text

REPORTS = cast(Table, ReportRow.__table__)
DELIVERIES = cast(Table, DeliveryRow.__table__)


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


def write_outputs(conn: Connection, job: str, window_key: str, reports: Sequence[PendingReport],
                  deliver: Sequence[str], now: datetime) -> None:  # fmt: skip
    """Insert ``reports`` and a pending delivery per (report, target) on ``conn``."""
    kinds = {text: str(parse_target(text).kind) for text in deliver}
    for seq, report in enumerate(reports, start=1):
        row = {"job": job, "window_key": window_key, "title": report.title,
               "body": report.body, "format": report.format, "seq": seq,
               "attachments": [a.as_json() for a in report.attachments] or None,
               "created_at": now}  # fmt: skip
        report_id = conn.execute(REPORTS.insert().returning(REPORTS.c.id), row).scalar_one()
        if kinds:
            conn.execute(DELIVERIES.insert(), [
                {"report_id": report_id, "job": job, "window_key": window_key, "seq": seq,
                 "target": text, "kind": kind, "state": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now, "updated_at": now}
                for text, kind in kinds.items()])  # fmt: skip


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
