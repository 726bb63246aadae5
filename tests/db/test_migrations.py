"""Migrations: every room's branch applies, twice is a no-op, tables match the models."""

from __future__ import annotations

from sqlalchemy import inspect, text

import gongyun.db.models  # noqa: F401  (registers every table)
from gongyun.db import Base, Database, upgrade


async def test_upgrade_twice_reaches_every_head_and_creates_every_table(db_url: str) -> None:
    await upgrade(db_url)
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            versions = {r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))}
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await db.dispose()
    assert {"foundation_0003", "idres_0001", "assets_0002"} <= versions
    missing = set(Base.metadata.tables) - tables
    assert not missing, f"models without a migration: {sorted(missing)}"
