"""dead_letters.fingerprint: one row per broker message, however often it is delivered.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable fingerprint column and its unique index (NULLs never collide)."""
    op.add_column("dead_letters", sa.Column("fingerprint", sa.String(64), nullable=True))
    op.create_index("ux_dead_letters_fingerprint", "dead_letters", ["fingerprint"], unique=True)


def downgrade() -> None:
    """Drop the fingerprint."""
    op.drop_index("ux_dead_letters_fingerprint", table_name="dead_letters")
    op.drop_column("dead_letters", "fingerprint")
