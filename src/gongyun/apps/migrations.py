"""Each app's own Alembic branch, applied with its own version table.

An app's revisions live in the directory its manifest names and are recorded in
``alembic_version_app_<name>``, not in the platform's ``alembic_version``. So uninstalling
an app's package leaves the platform's upgrade untouched (Alembic would otherwise refuse to
start on a revision it cannot find), and reinstalling it finds its tables where it left them.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gongyun.db.engine import make_engine
from gongyun.db.migrate import alembic_config


def version_table(app: str) -> str:
    """The table that records which of ``app``'s revisions are applied."""
    return f"alembic_version_app_{app}"


def _config(conn: Connection, app: str, directory: Path) -> Config:
    cfg = alembic_config(conn)
    cfg.set_main_option("version_locations", str(directory))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["version_table"] = version_table(app)
    return cfg


def _pending(conn: Connection, app: str, directory: Path) -> set[str]:
    heads = set(ScriptDirectory.from_config(_config(conn, app, directory)).get_heads())
    current = MigrationContext.configure(conn, opts={"version_table": version_table(app)}).get_current_heads()
    return heads - set(current)


def _upgrade(conn: Connection, app: str, directory: Path) -> None:
    if conn.dialect.name == "postgresql":  # two processes starting at once apply it once
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": version_table(app)})
    command.upgrade(_config(conn, app, directory), "heads")


async def pending_revisions(url: str, app: str, directory: Path) -> set[str]:
    """Heads of ``app``'s branch that the database at ``url`` has not reached."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: _pending(c, app, directory))
    finally:
        await engine.dispose()


async def upgrade_app(url: str, app: str, directory: Path) -> None:
    """Apply every revision of ``app``'s branch to the database at ``url`` (one transaction)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: _upgrade(c, app, directory))
    finally:
        await engine.dispose()
