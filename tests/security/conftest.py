"""Fixtures shared by the security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gongyun.db import Database, upgrade


@pytest.fixture
async def two_processes(db_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two independent engines on one database, as two server processes would have."""
    await upgrade(db_url)
    first, second = Database(db_url), Database(db_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()
