"""Alembic environment: runs on the connection handed in by ``gongyun.db.migrate``."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through gongyun.db.migrate.upgrade")
context.configure(
    connection=connection,
    target_metadata=None,  # migrations are written by hand; tests compare them with the models
    render_as_batch=connection.dialect.name == "sqlite",
    # an app's branch keeps its own version table (see gongyun.apps.migrations)
    version_table=context.config.attributes.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()
