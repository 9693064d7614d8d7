"""Spend and fleet-wide limits: run_usage, budget_alerts, limit_slots, limit_grants.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the four tables (as agentcron/ledger/spend_models.py declares them)."""
    op.create_table(
        "run_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("window_start", _utc(), nullable=False),
        sa.Column("window_key", sa.String(160), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("recorded_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_usage"),
    )
    op.create_index("ix_run_usage_job_recorded", "run_usage", ["job", "recorded_at"])
    op.create_index("ix_run_usage_window", "run_usage", ["job", "window_start"])
    op.create_table(
        "budget_alerts",
        sa.Column("budget", sa.String(160), nullable=False),
        sa.Column("period_start", _utc(), nullable=False),
        sa.Column("alerted_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("budget", "period_start", name="pk_budget_alerts"),
    )
    op.create_table(
        "limit_slots",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", "holder", name="pk_limit_slots"),
    )
    op.create_table(
        "limit_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("granted_at", _utc(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_limit_grants"),
    )
    op.create_index("ix_limit_grants_name_at", "limit_grants", ["name", "granted_at"])


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_index("ix_limit_grants_name_at", table_name="limit_grants")
    op.drop_table("limit_grants")
    op.drop_table("limit_slots")
    op.drop_table("budget_alerts")
    op.drop_index("ix_run_usage_window", table_name="run_usage")
    op.drop_index("ix_run_usage_job_recorded", table_name="run_usage")
    op.drop_table("run_usage")
