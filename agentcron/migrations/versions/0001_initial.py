"""The ledger's four tables: runs, schedules, leases, reports.

Revision ID: 0001
Revises:
Create Date: 2026-03-17 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create runs, schedules, leases and reports (as agentcron/ledger/models.py declares them)."""
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("window_start", _utc(), nullable=False),
        sa.Column("window_key", sa.String(160), nullable=False),
        sa.Column("slot", _utc(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("scheduled_at", _utc(), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("error_type", sa.String(200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("job", "window_start", name="uq_runs_job_window"),
        sa.UniqueConstraint("window_key", name="uq_runs_window_key"),
    )
    op.create_index("ix_runs_state_scheduled", "runs", ["state", "scheduled_at"])
    op.create_index("ix_runs_job_slot", "runs", ["job", "slot"])
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )
    op.create_index("ix_schedules_revision", "schedules", ["revision"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("window_key", sa.String(160), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )
    op.create_index("ix_reports_job", "reports", ["job"])


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_index("ix_reports_job", table_name="reports")
    op.drop_table("reports")
    op.drop_table("leases")
    op.drop_index("ix_schedules_revision", table_name="schedules")
    op.drop_table("schedules")
    op.drop_index("ix_runs_job_slot", table_name="runs")
    op.drop_index("ix_runs_state_scheduled", table_name="runs")
    op.drop_table("runs")
