"""Foundation: indexes for live-session checks and pruning; known sign-in addresses.

Revision ID: foundation_0004
"""

import sqlalchemy as sa
from alembic import op

from gongyun.db.base import UTCDateTime

revision = "foundation_0004"
down_revision = "foundation_0003"
branch_labels = None
depends_on = None

# Written out rather than imported: a revision must not change when the models do.
_LIVE = "used_at IS NULL AND revoked_at IS NULL"
_UNUSED = "used_at IS NULL"


def upgrade() -> None:
    """Index refresh tokens by live family, unused expiry and expiry; add ``login_known_addresses``."""
    op.create_index(
        "ix_refresh_tokens_live_family",
        "refresh_tokens",
        ["family_id", "expires_at"],
        postgresql_where=sa.text(_LIVE),
        sqlite_where=sa.text(_LIVE),
    )
    op.create_index(
        "ix_refresh_tokens_unused_expires_at",
        "refresh_tokens",
        ["expires_at"],
        postgresql_where=sa.text(_UNUSED),
        sqlite_where=sa.text(_UNUSED),
    )
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])
    op.create_table(
        "login_known_addresses",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("address_hash", sa.String(64), primary_key=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_login_known_addresses_last_success_at", "login_known_addresses", ["last_success_at"])


def downgrade() -> None:
    """Drop the known-address table and the refresh-token indexes."""
    op.drop_table("login_known_addresses")
    op.drop_index("ix_refresh_tokens_expires_at", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_unused_expires_at", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_live_family", table_name="refresh_tokens")
