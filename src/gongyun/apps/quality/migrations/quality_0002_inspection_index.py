"""quality: an index for reading a characteristic's inspections over a time window.

Revision ID: quality_0002
"""

from alembic import op

revision = "quality_0002"
down_revision = "quality_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index inspections by tenant, characteristic and time."""
    op.create_index(
        "ix_quality_inspections_char_time",
        "quality_inspections",
        ["tenant_id", "characteristic", "recorded_at"],
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_quality_inspections_char_time", table_name="quality_inspections")
