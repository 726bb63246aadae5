"""Platform data: the alarm engine's leader term (fences the writes of a deposed leader).

Revision ID: assets_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "assets_0003"
down_revision = "assets_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the one-row leader term table."""
    table = op.create_table(
        "alarm_leader",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "term": 0}])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("alarm_leader")
