"""Shared fixtures: database backends (SQLite and PostgreSQL) and a running app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gongyun.db import Database, upgrade
from gongyun.platform import Platform
from tests.apphelp import running_app
from tests.services import drop_nats_leftovers, nats_snapshot, scratch_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh metadata database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}"
    else:
        with scratch_postgres_database() as url:
            yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated metadata database on each backend."""
    await upgrade(db_url)
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """An app on SQLite with its client (for tests that are not about the backend)."""
    async with running_app(tmp_path) as pair:
        yield pair


@pytest.fixture(scope="session", autouse=True)
def _clean_nats_after_session() -> Iterator[None]:
    """Remove what this session's test deployments left on the shared NATS server."""
    before = asyncio.run(nats_snapshot())
    yield
    if before is not None:
        asyncio.run(drop_nats_leftovers(before))
