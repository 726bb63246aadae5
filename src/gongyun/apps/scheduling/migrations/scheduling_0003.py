"""scheduling: machines followed through the OEE app's state; operators' progress reports.

Revision ID: scheduling_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduling_0003"
down_revision = "scheduling_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add scheduling_machines.oee_machine and the scheduling_progress table."""
    with op.batch_alter_table("scheduling_machines") as batch:
        batch.add_column(sa.Column("oee_machine", sa.String(32)))
    op.create_table(
        "scheduling_progress",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("op_id", sa.String(200), primary_key=True),
        sa.Column("machine", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("expected_end", sa.DateTime(timezone=True)),
        sa.Column("late_reported_at", sa.DateTime(timezone=True)),
        sa.Column("reported_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("scheduling_progress")
    with op.batch_alter_table("scheduling_machines") as batch:
        batch.drop_column("oee_machine")
