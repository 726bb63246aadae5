"""maintenance: model registry, watched equipment, work orders.

Revision ID: maintenance_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "maintenance_0001"
down_revision = None
branch_labels = ("maintenance",)
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "maintenance_models",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("equipment", sa.String(200), nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("artifact", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint(
            "tenant_id", "kind", "equipment", "version", name="uq_maintenance_models_version"
        ),
    )
    op.create_index("ix_maintenance_models_tenant", "maintenance_models", ["tenant_id", "kind", "equipment"])
    op.create_table(
        "maintenance_equipment",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False, server_default=""),
        sa.Column("weight", sa.Float, nullable=False, server_default="1"),
        sa.Column("health", sa.Float),
        sa.Column("score", sa.Float),
        sa.Column("rul", sa.Float),
        sa.Column("rul_low", sa.Float),
        sa.Column("rul_high", sa.Float),
        sa.Column("fault", sa.String(64)),
        sa.Column("fault_confidence", sa.Float),
        sa.Column("contributors", sa.JSON),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "name", name="uq_maintenance_equipment_name"),
    )
    op.create_table(
        "maintenance_work_orders",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("equipment", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(200)),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("notes", sa.Text),
        sa.Column("label", sa.String(64)),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_maintenance_work_orders_tenant", "maintenance_work_orders", ["tenant_id", "state"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("maintenance_work_orders")
    op.drop_table("maintenance_equipment")
    op.drop_table("maintenance_models")
