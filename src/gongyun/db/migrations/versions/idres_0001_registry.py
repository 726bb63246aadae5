"""Identifier resolution: prefixes, records, reverse-lookup values, templates.

Revision ID: idres_0001
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "idres_0001"
down_revision = None
branch_labels = ("idres",)
depends_on = "foundation_0001"


def upgrade() -> None:
    """Create the identifier registry tables."""
    op.create_table(
        "idres_prefixes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("prefix", sa.String(255), nullable=False),
        sa.Column("prefix_norm", sa.String(255), nullable=False),
        sa.Column("parent", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("org_name", sa.String(255), nullable=False),
        sa.Column("contact", sa.String(255), nullable=False),
        sa.Column("site_json", sa.Text(), nullable=True),
        sa.Column("history_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("prefix_norm", name="uq_idres_prefixes_prefix_norm"),
    )
    op.create_index("ix_idres_prefixes_tenant_id", "idres_prefixes", ["tenant_id"])
    op.create_index("ix_idres_prefixes_status", "idres_prefixes", ["status"])
    op.create_table(
        "idres_records",
        sa.Column("handle_norm", sa.String(1024), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("handle", sa.String(1024), nullable=False),
        sa.Column("prefix_norm", sa.String(255), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.Column("public_json", sa.Text(), nullable=False),
        sa.Column("all_public", sa.Boolean(), nullable=False),
        sa.Column("min_ttl", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_idres_records_tenant_id", "idres_records", ["tenant_id"])
    op.create_index(
        "ix_idres_records_tenant_prefix", "idres_records", ["tenant_id", "prefix_norm", "handle_norm"]
    )
    op.create_table(
        "idres_values",
        sa.Column("handle_norm", sa.String(1024), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("value_key", sa.String(255), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_idres_values_lookup", "idres_values", ["tenant_id", "type", "value_key"])
    op.create_table(
        "idres_templates",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("prefix_norm", sa.String(255), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "prefix_norm", "name", "version", name="uq_idres_templates_tenant_id"
        ),
    )
    op.create_index("ix_idres_templates_tenant_id", "idres_templates", ["tenant_id"])


def downgrade() -> None:
    """Drop the identifier registry tables."""
    for table in ("idres_templates", "idres_values", "idres_records", "idres_prefixes"):
        op.drop_table(table)
