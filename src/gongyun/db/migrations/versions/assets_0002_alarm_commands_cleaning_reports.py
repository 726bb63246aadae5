"""Platform data: queued alarm commands (any API process to the alarm engine) and cleaning reports.

Revision ID: assets_0002
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "assets_0002"
down_revision = "assets_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the alarm command queue and the cleaning report history."""
    op.create_table(
        "alarm_commands",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("user", sa.String(64), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.String(500), nullable=True),
    )
    op.create_index("ix_alarm_commands_tenant_id", "alarm_commands", ["tenant_id"])
    op.create_index("ix_alarm_commands_status_requested", "alarm_commands", ["status", "requested_at"])
    op.create_table(
        "telemetry_cleaning_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(300), nullable=False),
        sa.Column("range_start", UTCDateTime(), nullable=False),
        sa.Column("range_end", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("input_count", sa.Integer(), nullable=False),
        sa.Column("output_count", sa.Integer(), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_telemetry_cleaning_reports_tenant_id", "telemetry_cleaning_reports", ["tenant_id"])
    op.create_index(
        "ix_cleaning_reports_tenant_tag_created",
        "telemetry_cleaning_reports",
        ["tenant_id", "tag", "created_at"],
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("telemetry_cleaning_reports")
    op.drop_table("alarm_commands")
