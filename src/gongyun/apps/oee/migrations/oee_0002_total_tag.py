"""oee: a machine may count all parts (total) instead of good ones; good = total - scrap.

Revision ID: oee_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "oee_0002"
down_revision = "oee_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the total counter tag."""
    op.add_column("oee_machines", sa.Column("total_tag", sa.String(300)))


def downgrade() -> None:
    """Drop it."""
    op.drop_column("oee_machines", "total_tag")
