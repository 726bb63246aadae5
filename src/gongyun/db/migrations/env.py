"""Alembic environment: runs on the connection handed in by ``gongyun.db.migrate``."""

from __future__ import annotations

from alembic import context

import gongyun.db.models  # noqa: F401  (registers every room's tables on Base.metadata)
from gongyun.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through gongyun.db.migrate.upgrade")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    # an app's branch keeps its own version table (see gongyun.apps.migrations)
    version_table=context.config.attributes.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()
