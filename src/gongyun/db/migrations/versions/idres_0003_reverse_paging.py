"""Identifier resolution: the reverse-lookup index ends with the identifier, for keyset pages.

An exact ``TYPE=value`` reverse lookup reads its page as one range scan of
``(tenant_id, type, value_key, handle_norm)`` in identifier order, whatever the number of matches.

Revision ID: idres_0003
"""

from alembic import op

revision = "idres_0003"
down_revision = "idres_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rebuild ``ix_idres_values_lookup`` with ``handle_norm`` last."""
    op.drop_index("ix_idres_values_lookup", table_name="idres_values")
    op.create_index(
        "ix_idres_values_lookup", "idres_values", ["tenant_id", "type", "value_key", "handle_norm"]
    )


def downgrade() -> None:
    """Back to ``(tenant_id, type, value_key)``."""
    op.drop_index("ix_idres_values_lookup", table_name="idres_values")
    op.create_index("ix_idres_values_lookup", "idres_values", ["tenant_id", "type", "value_key"])
