"""Reports keep their format, place and attachments; the deliveries outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add reports.format/seq/attachments and its window index; create deliveries."""
    op.add_column("reports", sa.Column("format", sa.String(16), nullable=True))
    op.add_column("reports", sa.Column("seq", sa.Integer(), nullable=True))
    op.add_column("reports", sa.Column("attachments", sa.JSON(), nullable=True))
    op.create_index("ix_reports_window_key", "reports", ["window_key"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("window_key", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("report_id", "target", name="uq_deliveries_report_target"),
    )
    op.create_index("ix_deliveries_state_next", "deliveries", ["state", "next_attempt_at"])


def downgrade() -> None:
    """Drop deliveries and the new report columns."""
    op.drop_index("ix_deliveries_state_next", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_reports_window_key", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("attachments")
        batch.drop_column("seq")
        batch.drop_column("format")
