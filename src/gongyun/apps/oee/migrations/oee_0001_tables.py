"""oee: machines, calendars, reason trees, stops.

Revision ID: oee_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "oee_0001"
down_revision = None
branch_labels = ("oee",)
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "oee_machines",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("line", sa.String(200), nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("good_tag", sa.String(300)),
        sa.Column("scrap_tag", sa.String(300)),
        sa.Column("ideal_cycle_s", sa.Float, nullable=False),
        sa.Column("micro_stop_s", sa.Float, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_oee_machines_name"),
    )
    op.create_table(
        "oee_calendars",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("line", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.UniqueConstraint("tenant_id", "line", name="uq_oee_calendars_line"),
    )
    op.create_table(
        "oee_reasons",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(64)),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("loss", sa.String(32), nullable=False),
        sa.UniqueConstraint("tenant_id", "code", name="uq_oee_reasons_code"),
    )
    op.create_table(
        "oee_stops",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("machine_id", sa.String(32), nullable=False, index=True),
        sa.Column("start", ts, nullable=False),
        sa.Column("end", ts),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("coded_by", sa.String(200)),
        sa.Column("coded_at", ts),
    )


def downgrade() -> None:
    """Drop them."""
    for name in ("oee_stops", "oee_reasons", "oee_calendars", "oee_machines"):
        op.drop_table(name)
