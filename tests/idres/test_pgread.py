"""Batched point reads on PostgreSQL: one query per batch, right answers, errors per batch.

The identifiers asked for in one turn of the event loop are read together; another tenant's
records are not answered; a failed read answers its whole batch with DatabaseUnavailable and
the next batch reads on a new connection. The lean server answers such reads without the app.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest

from gongyun.db import Database, upgrade
from gongyun.errors import DatabaseUnavailable
from gongyun.idres import prefixes as pfx
from gongyun.idres.auth import hash_secret
from gongyun.idres.http import HandleService, make_app
from gongyun.idres.pgread import PointReader
from gongyun.idres.registry import Registry
from gongyun.idres.values import ADMIN_ONLY, HandleValue, admin_value, string_value
from tests.idres.serving import serve_lean_in_thread
from tests.services import scratch_postgres_database

pytestmark = pytest.mark.postgres
MINE, THEIRS = "t1", "t2"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database."""
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture
async def registry(pg_url: str) -> AsyncIterator[Registry]:
    """t1 owns 88.100.1 with records A0..A9 and an admin; t2 owns 88.200 with B0."""
    await upgrade(pg_url)
    db = Database(pg_url)
    async with db.session() as s:
        await pfx.submit(s, MINE, "88.100.1", "enterprise", status=pfx.FilingStatus.active)
        await pfx.submit(s, THEIRS, "88.200", "secondary", status=pfx.FilingStatus.active)
    reg = Registry(db)
    for i in range(10):
        await reg.put(MINE, f"88.100.1/A{i}", [string_value(1, "URL", f"https://a.example/{i}")])
    await reg.put(THEIRS, "88.200/B0", [string_value(1, "URL", "https://b.example/0")])
    secret = HandleValue(300, "HS_SECKEY", "string", hash_secret("s3cret"), permissions=ADMIN_ONLY)
    await reg.put(MINE, "88.100.1/admin", [admin_value("88.100.1/admin", 300), secret])
    try:
        yield reg
    finally:
        await db.dispose()


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


async def test_one_query_for_a_batch_of_hits_misses_and_another_tenants(registry: Registry) -> None:
    reader = PointReader(str(registry.db.engine.url.render_as_string(hide_password=False)), MINE)
    try:
        wanted = ["88.100.1/A1", "88.100.1/A7", "88.200/B0", "88.100.1/NOPE", "88.100.1/A1"]
        rows = await asyncio.gather(*(reader.get(n) for n in wanted))
        assert reader.queries == 1 and reader.read == 4  # the repeated identifier shares its read
        assert rows[0] is not None and rows[0][0] == "88.100.1/A1" and rows[0][4] == MINE
        assert '"https://a.example/1"' in rows[0][1]
        assert rows[1] is not None and '"https://a.example/7"' in rows[1][2]
        assert rows[2] is None  # t2's record: not this node's
        assert rows[3] is None
        assert rows[4] == rows[0]
        # every tenant's reader sees t2's record
        everyone = PointReader(reader.conninfo, None)
        try:
            row = await everyone.get("88.200/B0")
            assert row is not None and row[4] == THEIRS
        finally:
            await everyone.close()
    finally:
        await reader.close()


async def test_a_failed_read_answers_its_batch_and_the_next_reconnects(registry: Registry) -> None:
    url = registry.db.engine.url.render_as_string(hide_password=False)
    reader = PointReader(url, MINE)
    try:
        assert await reader.get("88.100.1/A0") is not None  # a connection is open and idle now
        async with await psycopg.AsyncConnection.connect(_dsn(url), autocommit=True) as admin:
            await admin.execute("ALTER TABLE idres_records RENAME TO idres_records_away")
            try:
                results = await asyncio.gather(
                    *(reader.get(f"88.100.1/A{i}") for i in (2, 3, 4)), return_exceptions=True
                )
                assert all(isinstance(r, DatabaseUnavailable) for r in results), results
                assert reader.flights == {} and reader.idle == []  # the broken connection is gone
            finally:
                await admin.execute("ALTER TABLE idres_records_away RENAME TO idres_records")
        row = await reader.get("88.100.1/A3")
        assert row is not None and row[0] == "88.100.1/A3"
    finally:
        await reader.close()
    unreachable = PointReader("postgresql+psycopg://postgres@127.0.0.1:1/none", MINE)
    results = await asyncio.gather(*(unreachable.get(f"X/{i}") for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, DatabaseUnavailable) for r in results), results


async def test_lean_server_answers_concurrent_reads_in_batches(registry: Registry) -> None:
    url = registry.db.engine.url.render_as_string(hide_password=False)
    reader = PointReader(url, MINE, size=2)
    service = HandleService(registry, MINE, reader=reader)
    app = make_app(service)
    app.on_shutdown.append(reader.close)
    token = base64.b64encode(b"300:88.100.1/admin:s3cret").decode()
    names = [f"88.100.1/A{i}" for i in range(10)]
    try:
        with serve_lean_in_thread(app) as base:
            limits = httpx.Limits(max_connections=40)
            async with httpx.AsyncClient(base_url=base, trust_env=False, limits=limits) as c:
                paths = [*names, "88.200/B0", "88.100.1/NOPE", "no-slash", *names]
                answers = await asyncio.gather(*(c.get(f"/api/handles/{p}") for p in paths))
                for name, r in zip(names, answers[:10], strict=True):
                    assert r.status_code == 200 and r.json()["handle"] == name
                    assert r.json()["values"][0]["data"]["value"] == f"https://a.example/{name[-1]}"
                assert answers[10].status_code == 404  # another tenant's identifier
                assert answers[10].json()["responseCode"] == 301  # its prefix is not homed here
                assert answers[11].status_code == 404 and answers[11].json()["responseCode"] == 100
                assert answers[12].status_code == 400
                assert [r.content for r in answers[13:]] == [r.content for r in answers[:10]]
                assert reader.read <= 14 and reader.queries < reader.read  # batched, each read once
                # kept: the answers come from the cache, the "not found" from the negative cache
                before = reader.read
                again = await asyncio.gather(*(c.get(f"/api/handles/{p}") for p in [*names, "88.100.1/NOPE"]))
                assert [r.status_code for r in again] == [200] * 10 + [404]
                assert reader.read == before
                # a write drops the kept "not found" (here at once; elsewhere by the change feed)
                await registry.put(MINE, "88.100.1/NOPE", [string_value(1, "URL", "https://a.example/n")])
                r = await c.get("/api/handles/88.100.1/NOPE")
                assert (
                    r.status_code == 200 and r.json()["values"][0]["data"]["value"] == "https://a.example/n"
                )
                # a remembered credential without a read grant is answered on the fast path too
                auth = {"Authorization": f"Basic {token}"}
                r = await c.get("/api/handles/88.100.1/A5", headers=auth)  # the app checks it first
                assert r.status_code == 200
                answers = await asyncio.gather(
                    *(c.get(f"/api/handles/{n}", headers=auth) for n in [*names, "88.100.1/GONE"])
                )
                assert [r.status_code for r in answers] == [200] * 10 + [404]
                assert service._plain  # known to carry no read grant
    finally:
        service.close()
