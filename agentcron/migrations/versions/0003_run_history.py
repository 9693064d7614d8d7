"""run_history and force_grants: a forced run keeps the earlier record, and needs a grant.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create run_history and force_grants (as agentcron/ledger/history_models.py declares)."""
    op.create_table(
        "run_history",
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
        sa.Column("replaced_at", _utc(), nullable=False),
        sa.Column("replaced_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_history"),
    )
    op.create_index("ix_run_history_window_key", "run_history", ["window_key"])
    op.create_table(
        "force_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("window_key", sa.String(160), nullable=False),
        sa.Column("granted_by", sa.String(32), nullable=False),
        sa.Column("granted_at", _utc(), nullable=False),
        sa.Column("used_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_force_grants"),
    )
    op.create_index("ix_force_grants_window_key", "force_grants", ["window_key"])


def downgrade() -> None:
    """Drop force_grants and run_history."""
    op.drop_index("ix_force_grants_window_key", table_name="force_grants")
    op.drop_table("force_grants")
    op.drop_index("ix_run_history_window_key", table_name="run_history")
    op.drop_table("run_history")
