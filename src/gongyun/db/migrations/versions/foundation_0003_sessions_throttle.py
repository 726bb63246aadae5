"""Foundation: API keys bound to their creating user; per-client-address login throttle.

Revision ID: foundation_0003
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "foundation_0003"
down_revision = "foundation_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``api_keys.creator_user_id`` (backfilled from ``created_by``) and ``login_throttle``."""
    op.add_column("api_keys", sa.Column("creator_user_id", sa.String(32), nullable=True))
    op.create_index("ix_api_keys_creator_user_id", "api_keys", ["creator_user_id"])
    # Usernames are global, so ``created_by`` names at most one user. Only a user of the key's
    # own tenant (or a platform admin) can have made it; a key made by another key carries that
    # key's name, so a name shared with a key of the same tenant stays unbound rather than guessed.
    op.execute(
        "UPDATE api_keys SET creator_user_id = "
        "(SELECT users.id FROM users WHERE users.username = api_keys.created_by "
        "AND (users.tenant_id = api_keys.tenant_id OR users.role = 'platform-admin')) "
        "WHERE NOT EXISTS (SELECT 1 FROM api_keys other WHERE other.tenant_id = api_keys.tenant_id "
        "AND other.name = api_keys.created_by)"
    )
    op.create_table(
        "login_throttle",
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("blocked_until", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_login_throttle_window_start", "login_throttle", ["window_start"])


def downgrade() -> None:
    """Drop the throttle table and the creator column."""
    op.drop_table("login_throttle")
    op.drop_index("ix_api_keys_creator_user_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("creator_user_id")
