"""trace: a recall campaign holds its items as ranges of consecutive item ids.

A recall writes a handful of rows instead of one per item (and no item row): an item reads as
frozen while a campaign's range holds it. Existing campaigns' items become one-item ranges.

Revision ID: trace_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "trace_0003"
down_revision = "trace_0002"
branch_labels = None
depends_on = None
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the ranges from the per-item rows, then drop those."""
    op.create_table(
        "trace_recall_ranges",
        sa.Column("recall_id", ID, primary_key=True),
        sa.Column("lo", ID, primary_key=True),
        sa.Column("hi", ID, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO trace_recall_ranges (recall_id, lo, hi, n) "
        "SELECT recall_id, item_id, item_id, 1 FROM trace_recall_items"
    )
    op.drop_table("trace_recall_items")


def downgrade() -> None:
    """One row per item again."""
    op.create_table(
        "trace_recall_items",
        sa.Column("recall_id", ID, primary_key=True),
        sa.Column("item_id", ID, primary_key=True),
        sa.Column("previous_status", sa.String(16), nullable=False),
    )
    op.execute(
        "INSERT INTO trace_recall_items (recall_id, item_id, previous_status) "
        "SELECT r.recall_id, i.id, i.status FROM trace_recall_ranges r "
        "JOIN trace_items i ON i.id BETWEEN r.lo AND r.hi"
    )
    op.drop_table("trace_recall_ranges")
