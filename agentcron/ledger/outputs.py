"""A success's outputs in the ledger: its reports and their delivery rows (the outbox).

:func:`write_outputs` runs inside the ledger's completion transaction, after the fenced
``UPDATE`` of the run won: the success, its reports and one ``deliveries`` row per (report,
target) commit together or not at all (the transactional outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table

from agentcron.delivery.targets import parse_target
from agentcron.ledger.models import DeliveryRow, ReportRow
from agentcron.reports.content import PendingReport

REPORTS = cast(Table, ReportRow.__table__)
DELIVERIES = cast(Table, DeliveryRow.__table__)


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
