"""trace: partners (other enterprises) and the read grants given to them.

Revision ID: trace_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "trace_0002"
down_revision = "trace_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "trace_partners",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(100)),
        sa.Column("resolver_url", sa.String(300)),
        sa.Column("grant_handle", sa.String(255)),
        sa.Column("token", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "trace_grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("handle", sa.String(255), nullable=False),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("handles", sa.JSON, nullable=False),
        sa.Column("events", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_trace_grants_tenant_id", "trace_grants", ["tenant_id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("trace_grants")
    op.drop_table("trace_partners")
