"""trace: recall notices pushed to partners (an outbox) and received from them.

A partner may name the endpoint its node takes recall notices at (``notify_url``) and the API
key to call it with (``notify_key``). A notice to such a partner waits in
``trace_recall_notices`` until it is delivered (``delivered_at``; ``attempts``,
``next_attempt_at`` and ``last_error`` while it is retried); a notice received from a partner
keeps the sender's notice id (``remote_notice``), so a retried delivery is stored once.

Revision ID: trace_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "trace_0004"
down_revision = "trace_0003"
branch_labels = None
depends_on = None
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the columns."""
    with op.batch_alter_table("trace_partners") as t:
        t.add_column(sa.Column("notify_url", sa.String(300)))
        t.add_column(sa.Column("notify_key", sa.String(200)))
    with op.batch_alter_table("trace_recall_notices") as t:
        t.add_column(sa.Column("push", sa.Integer, nullable=False, server_default="0"))
        t.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True)))
        t.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        t.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True)))
        t.add_column(sa.Column("last_error", sa.String(300)))
        t.add_column(sa.Column("remote_notice", ID))
        t.create_index("ix_trace_recall_notices_outbox", ["push", "delivered_at"])
        t.create_unique_constraint("uq_trace_recall_notices_remote", ["receiver", "sender", "remote_notice"])


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("trace_recall_notices") as t:
        t.drop_constraint("uq_trace_recall_notices_remote", type_="unique")
        t.drop_index("ix_trace_recall_notices_outbox")
        for c in ("remote_notice", "last_error", "next_attempt_at", "attempts", "delivered_at", "push"):
            t.drop_column(c)
    with op.batch_alter_table("trace_partners") as t:
        t.drop_column("notify_key")
        t.drop_column("notify_url")
