"""quality: charts, limit versions, inspections, violations.

Revision ID: quality_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "quality_0001"
down_revision = None
branch_labels = ("quality",)
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "quality_charts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("tag", sa.String(300)),
        sa.Column("characteristic", sa.String(200)),
        sa.Column("subgroup", sa.JSON, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("alarm_tag", sa.String(300)),
        sa.Column("created_at", ts, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_quality_charts_name"),
    )
    op.create_table(
        "quality_limits",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("chart_id", sa.String(32), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("baseline_start", ts),
        sa.Column("baseline_end", ts),
        sa.Column("frozen_by", sa.String(200), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.UniqueConstraint("chart_id", "version", name="uq_quality_limits_version"),
    )
    op.create_table(
        "quality_inspections",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("lot", sa.String(200), nullable=False, index=True),
        sa.Column("characteristic", sa.String(200), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("sample_size", sa.Float),
        sa.Column("defects", sa.Float),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("recorded_at", ts, nullable=False),
    )
    op.create_table(
        "quality_violations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("chart_id", sa.String(32), nullable=False, index=True),
        sa.Column("subgroup", sa.String(64), nullable=False),
        sa.Column("ts", ts, nullable=False),
        sa.Column("rules", sa.String(200), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.UniqueConstraint("chart_id", "subgroup", name="uq_quality_violations_subgroup"),
    )


def downgrade() -> None:
    """Drop them."""
    for name in ("quality_violations", "quality_inspections", "quality_limits", "quality_charts"):
        op.drop_table(name)
