"""Platform data: ISA-95 asset hierarchy, devices, tags; alarm rules, states, history, targets.

Revision ID: assets_0001
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "assets_0001"
down_revision = None
branch_labels = ("assets",)
depends_on = "foundation_0001"


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(32), nullable=False)


def upgrade() -> None:
    """Create the asset and alarm tables."""
    op.create_table(
        "asset_nodes",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column(
            "parent_id", sa.String(32), sa.ForeignKey("asset_nodes.id", ondelete="RESTRICT"), nullable=True
        ),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "parent_id", "name", name="uq_asset_nodes_sibling_name"),
    )
    op.create_index("ix_asset_nodes_tenant_id", "asset_nodes", ["tenant_id"])
    op.create_index("ix_asset_nodes_parent_id", "asset_nodes", ["parent_id"])
    op.create_table(
        "asset_devices",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column(
            "equipment_id", sa.String(32), sa.ForeignKey("asset_nodes.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_asset_devices_tenant_name"),
    )
    op.create_index("ix_asset_devices_tenant_id", "asset_devices", ["tenant_id"])
    op.create_index("ix_asset_devices_equipment_id", "asset_devices", ["equipment_id"])
    op.create_table(
        "asset_tags",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column(
            "device_id", sa.String(32), sa.ForeignKey("asset_devices.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(150), nullable=False),
        sa.Column("data_type", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("source_unit", sa.String(32), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("cleaning_json", sa.Text(), nullable=True),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("device_id", "name", name="uq_asset_tags_device_name"),
    )
    op.create_index("ix_asset_tags_tenant_id", "asset_tags", ["tenant_id"])
    op.create_index("ix_asset_tags_device_id", "asset_tags", ["device_id"])
    op.create_table(
        "alarm_rules",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_alarm_rules_tenant_name"),
    )
    op.create_index("ix_alarm_rules_tenant_id", "alarm_rules", ["tenant_id"])
    op.create_table(
        "alarm_states",
        sa.Column(
            "rule_id", sa.String(32), sa.ForeignKey("alarm_rules.id", ondelete="CASCADE"), primary_key=True
        ),
        _tenant(),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("condition", sa.Boolean(), nullable=False),
        sa.Column("shelved_until", UTCDateTime(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_alarm_states_tenant_id", "alarm_states", ["tenant_id"])
    op.create_table(
        "alarm_events",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("before", sa.String(16), nullable=False),
        sa.Column("after", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("user", sa.String(64), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
    )
    op.create_index("ix_alarm_events_tenant_id", "alarm_events", ["tenant_id"])
    op.create_index("ix_alarm_events_rule_id", "alarm_events", ["rule_id"])
    op.create_index("ix_alarm_events_tenant_ts", "alarm_events", ["tenant_id", "ts"])
    op.create_table(
        "alarm_notifiers",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_alarm_notifiers_tenant_name"),
    )
    op.create_index("ix_alarm_notifiers_tenant_id", "alarm_notifiers", ["tenant_id"])


def downgrade() -> None:
    """Drop the asset and alarm tables."""
    for table in (
        "alarm_notifiers",
        "alarm_events",
        "alarm_states",
        "alarm_rules",
        "asset_tags",
        "asset_devices",
        "asset_nodes",
    ):
        op.drop_table(table)
