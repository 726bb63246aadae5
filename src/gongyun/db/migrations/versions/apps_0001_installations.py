"""Apps: the per-tenant installations of apps.

Revision ID: apps_0001
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "apps_0001"
down_revision = None
branch_labels = ("apps",)
depends_on = "foundation_0001"


def upgrade() -> None:
    """Create the installations table."""
    op.create_table(
        "app_installations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("app", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("installed_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.UniqueConstraint("tenant_id", "app", name="uq_app_installations_tenant_id"),
    )
    op.create_index("ix_app_installations_tenant_id", "app_installations", ["tenant_id"])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("app_installations")
