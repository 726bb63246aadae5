"""trace: items, genealogy links, templates, EPCIS events, recalls and notices.

Revision ID: trace_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "trace_0001"
down_revision = None
branch_labels = ("trace",)
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "trace_items",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("gtin", sa.String(14)),
        sa.Column("lot", sa.String(20)),
        sa.Column("serial", sa.String(20)),
        sa.Column("sscc", sa.String(18)),
        sa.Column("handle", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("receiver", sa.String(64)),
        sa.Column("machine", sa.String(100)),
        sa.Column("attrs", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "key", name="uq_trace_items_key"),
    )
    op.create_index("ix_trace_items_tenant_kind", "trace_items", ["tenant_id", "kind"])
    op.create_table(
        "trace_links",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("parent_id", ID, nullable=False),
        sa.Column("child_id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("qty", sa.Float),
        sa.Column("machine", sa.String(100)),
        sa.Column("operator", sa.String(100)),
        sa.Column("start_at", sa.DateTime(timezone=True)),
        sa.Column("end_at", sa.DateTime(timezone=True)),
        sa.Column("event_id", sa.String(100)),
    )
    op.create_index("ix_trace_links_parent", "trace_links", ["parent_id", "child_id"])
    op.create_index("ix_trace_links_child", "trace_links", ["child_id", "parent_id"])
    op.create_table(
        "trace_templates",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("next_seq", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "trace_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(8)),
        sa.Column("biz_step", sa.String(200)),
        sa.Column("disposition", sa.String(200)),
        sa.Column("read_point", sa.String(200)),
        sa.Column("biz_location", sa.String(200)),
        sa.Column("body", sa.JSON, nullable=False),
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_trace_events_id"),
    )
    op.create_index("ix_trace_events_time", "trace_events", ["tenant_id", "event_time"])
    op.create_table(
        "trace_event_keys",
        sa.Column("event_pk", ID, primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
    )
    op.create_index("ix_trace_event_keys_key", "trace_event_keys", ["tenant_id", "key"])
    op.create_table(
        "trace_recalls",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False, server_default=""),
        sa.Column("root_id", ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("affected", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.JSON),
    )
    op.create_index("ix_trace_recalls_tenant_id", "trace_recalls", ["tenant_id"])
    op.create_table(
        "trace_recall_items",
        sa.Column("recall_id", ID, primary_key=True),
        sa.Column("item_id", ID, primary_key=True),
        sa.Column("previous_status", sa.String(16), nullable=False),
    )
    op.create_table(
        "trace_recall_notices",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("recall_id", ID, nullable=False),
        sa.Column("sender", sa.String(32), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("keys", sa.JSON, nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True)),
        sa.Column("acked_by", sa.String(200)),
        sa.Column("local_recall_id", ID),
    )
    op.create_index("ix_trace_recall_notices_recall_id", "trace_recall_notices", ["recall_id"])
    op.create_index("ix_trace_recall_notices_receiver", "trace_recall_notices", ["receiver"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("trace_recall_notices")
    op.drop_table("trace_recall_items")
    op.drop_table("trace_recalls")
    op.drop_table("trace_event_keys")
    op.drop_table("trace_events")
    op.drop_table("trace_templates")
    op.drop_table("trace_links")
    op.drop_table("trace_items")
