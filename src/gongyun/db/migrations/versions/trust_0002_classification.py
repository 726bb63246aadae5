"""Trust: data keys for envelope encryption, sealed core points, four-eyes export requests.

Revision ID: trust_0002
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "trust_0002"
down_revision = "trust_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the classification tables."""
    op.create_table(
        "data_keys",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("master_id", sa.String(16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "sealed_points",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("tag", sa.String(200), primary_key=True),
        sa.Column("ts", sa.BigInteger(), primary_key=True),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "export_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("requester_id", sa.String(32), nullable=False),
        sa.Column("requester", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approver", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("downloads", sa.SmallInteger(), nullable=False),
    )
    op.create_index("ix_export_requests_tenant_id", "export_requests", ["tenant_id"])


def downgrade() -> None:
    """Drop the classification tables."""
    op.drop_index("ix_export_requests_tenant_id", "export_requests")
    op.drop_table("export_requests")
    op.drop_table("sealed_points")
    op.drop_table("data_keys")
