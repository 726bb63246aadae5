"""Identifier resolution: a record keeps its public rendering only when it differs from the full one.

Most records have only public values; their ``public_json`` was a second copy of ``values_json``
(about a third of the registry on disk). From here on it is NULL for them and readers fall back
to ``values_json``. Rows written before stay as they are (readers accept both) and are compacted
as they are rewritten: on PostgreSQL the upgrade only changes the catalogue; SQLite cannot relax a
column in place, so there the table is copied once (seconds per million records).

Revision ID: idres_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "idres_0004"
down_revision = "idres_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Let ``idres_records.public_json`` be NULL."""
    with op.batch_alter_table("idres_records") as batch:
        batch.alter_column("public_json", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    """Fill the NULLs back in with the full rendering and make the column required again."""
    op.execute("UPDATE idres_records SET public_json = values_json WHERE public_json IS NULL")
    with op.batch_alter_table("idres_records") as batch:
        batch.alter_column("public_json", existing_type=sa.Text(), nullable=False)
