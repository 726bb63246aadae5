"""Foundation: hash-chained audit events.

Revision ID: foundation_0002
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "foundation_0002"
down_revision = "foundation_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the audit tables."""
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("tenant_id", "seq", name="uq_audit_events_tenant_id"),
    )
    op.create_index("ix_audit_events_tenant_id", "audit_events", ["tenant_id"])


def downgrade() -> None:
    """Drop the audit tables."""
    op.drop_table("audit_events")
    op.drop_table("audit_heads")
