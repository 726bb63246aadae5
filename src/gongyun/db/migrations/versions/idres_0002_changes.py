"""Identifier resolution: the change log that SQLite nodes poll to invalidate their caches.

Revision ID: idres_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "idres_0002"
down_revision = "idres_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``idres_changes``."""
    op.create_table(
        "idres_changes",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("handle_norm", sa.String(1024), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop ``idres_changes``."""
    op.drop_table("idres_changes")
