"""Reports: what an agent keeps with ``ctx.report(...)``, stored with its run's success.

Only the succeeded attempt's reports are kept: they are written in the same ledger transaction
as the run's success, together with one delivery row per job target (see
:mod:`agentcron.delivery`).
"""

from agentcron.reports.content import (
    FORMATS,
    Attachment,
    PendingReport,
    ReportError,
    body_text,
    make_report,
)

__all__ = ["FORMATS", "Attachment", "PendingReport", "ReportError", "body_text", "make_report"]
