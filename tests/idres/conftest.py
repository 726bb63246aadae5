"""Fixtures: a migrated database on each backend (SQLite file, scratch PostgreSQL)."""

from __future__ import annotations

import pytest

from gongyun.db import Database
from gongyun.idres import prefixes as pfx
from gongyun.idres.registry import Registry

TENANT = "t1"
OTHER = "t2"


@pytest.fixture
async def registry(db: Database) -> Registry:
    """A registry where tenant t1 owns active 88.100.1 and t2 owns active 88.200."""
    async with db.session() as s:
        await pfx.submit(s, TENANT, "88.100.1", "enterprise", status=pfx.FilingStatus.active)
        await pfx.submit(s, OTHER, "88.200", "secondary", status=pfx.FilingStatus.active)
    return Registry(db)
