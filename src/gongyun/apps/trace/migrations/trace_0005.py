"""trace: room for sealed partner secrets; acknowledgements sent back to the sender.

A partner's grant ``token`` and ``notify_key`` are stored sealed by the platform's keyring
(``sealed:<version>:<base64>``, longer than the clear value), so the columns widen; values
stored in clear are sealed by the app's worker when it starts. A notice received from a partner
keeps when its acknowledgement reached the sender's node (``ack_sent_at``).

Revision ID: trace_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "trace_0005"
down_revision = "trace_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen the columns."""
    with op.batch_alter_table("trace_partners") as t:
        t.alter_column("token", type_=sa.String(600), existing_type=sa.String(200))
        t.alter_column("notify_key", type_=sa.String(600), existing_type=sa.String(200))
    with op.batch_alter_table("trace_recall_notices") as t:
        t.add_column(sa.Column("ack_sent_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Narrow them again (sealed values do not fit: clear them first)."""
    with op.batch_alter_table("trace_recall_notices") as t:
        t.drop_column("ack_sent_at")
    with op.batch_alter_table("trace_partners") as t:
        t.alter_column("notify_key", type_=sa.String(200), existing_type=sa.String(600))
        t.alter_column("token", type_=sa.String(200), existing_type=sa.String(600))
