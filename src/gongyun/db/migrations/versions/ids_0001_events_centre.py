"""Security events centre: IDS sensors, events, incidents and endpoint links.

Revision ID: ids_0001
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "ids_0001"
down_revision = None
branch_labels = ("ids",)
depends_on = "foundation_0001"


def upgrade() -> None:
    """Create the events centre's tables."""
    op.create_table(
        "ids_sensors",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("health_json", sa.Text(), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_ids_sensors_tenant_name"),
    )
    op.create_index("ix_ids_sensors_tenant_id", "ids_sensors", ["tenant_id"])
    op.create_table(
        "ids_events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("sensor", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("msg", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("technique", sa.String(16), nullable=False),
        sa.Column("proto", sa.String(16), nullable=False),
        sa.Column("src", sa.String(80), nullable=False),
        sa.Column("dst", sa.String(80), nullable=False),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("first_ts", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_ids_events_tenant_id", "ids_events", ["tenant_id"])
    op.create_index("ix_ids_events_dedup_key", "ids_events", ["dedup_key"])
    op.create_index("ix_ids_events_first_ts", "ids_events", ["first_ts"])
    op.create_index("ix_ids_events_incident_id", "ids_events", ["incident_id"])
    op.create_table(
        "ids_incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("techniques_json", sa.Text(), nullable=False),
        sa.Column("src_host", sa.String(64), nullable=False),
        sa.Column("dst", sa.String(80), nullable=False),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("first_ts", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.Column("timeline_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_ids_incidents_tenant_id", "ids_incidents", ["tenant_id"])
    op.create_index("ix_ids_incidents_first_ts", "ids_incidents", ["first_ts"])
    op.create_table(
        "ids_links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(80), nullable=False),
        sa.Column("device", sa.String(255), nullable=True),
        sa.Column("asset_path", sa.String(1024), nullable=True),
        sa.Column("identifier", sa.String(1024), nullable=True),
        sa.UniqueConstraint("tenant_id", "endpoint", name="uq_ids_links_tenant_endpoint"),
    )
    op.create_index("ix_ids_links_tenant_id", "ids_links", ["tenant_id"])


def downgrade() -> None:
    """Drop the events centre's tables."""
    for table in ("ids_links", "ids_incidents", "ids_events", "ids_sensors"):
        op.drop_table(table)
