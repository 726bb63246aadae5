"""oee: a machine with recorded stops is retired, not removed, so its history stays.

Revision ID: oee_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "oee_0003"
down_revision = "oee_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the retirement time."""
    op.add_column("oee_machines", sa.Column("retired_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop it."""
    op.drop_column("oee_machines", "retired_at")
