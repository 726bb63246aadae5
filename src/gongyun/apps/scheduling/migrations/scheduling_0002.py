"""scheduling: a machine's own down threshold for its watched tag.

Revision ID: scheduling_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "scheduling_0002"
down_revision = "scheduling_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add scheduling_machines.down_below (the machine is down while its tag reads below it)."""
    with op.batch_alter_table("scheduling_machines") as batch:
        batch.add_column(sa.Column("down_below", sa.Float, nullable=False, server_default="0.5"))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("scheduling_machines") as batch:
        batch.drop_column("down_below")
