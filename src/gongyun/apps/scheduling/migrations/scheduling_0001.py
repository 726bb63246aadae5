"""scheduling: machines, orders, routings, schedule versions.

Revision ID: scheduling_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduling_0001"
down_revision = None
branch_labels = ("scheduling",)
depends_on = None


def upgrade() -> None:
    """Create the scheduling tables."""
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "scheduling_machines",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("equipment", sa.String(500)),
        sa.Column("watch_tag", sa.String(300)),
        sa.Column("unavailable", sa.JSON),
        sa.Column("down_since", tz),
    )
    op.create_table(
        "scheduling_orders",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("product", sa.String(200), nullable=False, server_default=""),
        sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
        sa.Column("release_at", tz, nullable=False),
        sa.Column("due_at", tz),
        sa.Column("deadline_at", tz),
        sa.Column("weight", sa.Integer, nullable=False, server_default="1"),
        sa.Column("lot", sa.String(200)),
        sa.Column("created_at", tz, nullable=False),
    )
    op.create_table(
        "scheduling_routings",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("op_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("durations", sa.JSON, nullable=False),
        sa.Column("predecessors", sa.JSON, nullable=False),
        sa.Column("family", sa.String(64)),
    )
    op.create_table(
        "scheduling_schedules",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("base_version", sa.Integer),
        sa.Column("epoch", tz, nullable=False),
        sa.Column("objective", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("bound", sa.Float),
        sa.Column("makespan", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("instance", sa.JSON, nullable=False),
        sa.Column("assignments", sa.JSON, nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("changes", sa.JSON),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at", tz),
        sa.UniqueConstraint("tenant_id", "version", name="uq_scheduling_schedules_version"),
    )


def downgrade() -> None:
    """Drop them."""
    for name in ("scheduling_schedules", "scheduling_routings", "scheduling_orders", "scheduling_machines"):
        op.drop_table(name)
