"""Fixtures: a migrated database on each backend (SQLite file, scratch PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gongyun.db import Database, upgrade
from gongyun.idres import prefixes as pfx
from gongyun.idres.registry import Registry
from tests.services import scratch_postgres_database

TENANT = "t1"
OTHER = "t2"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL per backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'idres.db'}"
    else:
        with scratch_postgres_database() as url:
            yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database."""
    await upgrade(db_url)
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def registry(db: Database) -> Registry:
    """A registry where tenant t1 owns active 88.100.1 and t2 owns active 88.200."""
    async with db.session() as s:
        await pfx.submit(s, TENANT, "88.100.1", "enterprise", status=pfx.FilingStatus.active)
        await pfx.submit(s, OTHER, "88.200", "secondary", status=pfx.FilingStatus.active)
    return Registry(db)
