"""Fixtures: a store of each kind (DuckDB file, scratch PostgreSQL database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gongyun.telemetry.store import TimeSeriesStore, open_store
from tests.services import scratch_postgres_database


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TimeSeriesStore]:
    """The same contract suite runs on both backends."""
    if request.param == "duckdb":
        s = open_store(f"duckdb://{tmp_path / 'ts.duckdb'}")
        await s.open()
        try:
            yield s
        finally:
            await s.close()
        return
    with scratch_postgres_database() as url:
        s = open_store(url)
        await s.open()
        try:
            yield s
        finally:
            await s.close()


@pytest.fixture
async def duck(tmp_path: Path) -> AsyncIterator[TimeSeriesStore]:
    """An embedded store for tests that are not about the backend."""
    s = open_store(f"duckdb://{tmp_path / 'ts.duckdb'}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()
