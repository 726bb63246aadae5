"""Scheme answers (GS1 Digital Link, OID, Ecode) are kept, and forgotten on every change."""

from __future__ import annotations

import asyncio
import time

import httpx

from gongyun.db import Database
from gongyun.idres.asgi import AsgiApp
from gongyun.idres.bulk import import_records
from gongyun.idres.changes import ChangeWatcher
from gongyun.idres.registry import Registry
from gongyun.idres.schemes import install_schemes
from gongyun.idres.values import decode_values

from .conftest import TENANT

GTIN = "09506000134352"


def _values(url: str, ttl: int = 86400) -> list:  # type: ignore[type-arg]
    return decode_values(
        [
            {"index": 1, "type": "GS1_GTIN", "data": GTIN, "ttl": ttl},
            {"index": 2, "type": "URL", "data": url, "ttl": ttl},
            {"index": 3, "type": "OID", "data": "1.2.156.77.1", "ttl": ttl},
        ]
    )


async def test_answers_are_kept_and_forgotten(registry: Registry, db: Database) -> None:
    await registry.put(TENANT, "88.100.1/p", _values("https://a.example/1"))
    app = AsgiApp()
    cache = install_schemes(app, registry, TENANT)
    watcher = ChangeWatcher(db.url, cache.changed, poll_s=0.05)
    await watcher.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://id.test") as c:
            r = await c.get(f"/01/{GTIN}")
            assert (r.status_code, r.headers["location"]) == (307, "https://a.example/1")
            hits = cache.hits
            r = await c.get(f"/01/{GTIN}")
            assert r.headers["location"] == "https://a.example/1" and cache.hits == hits + 1
            # the lean server's hook answers the same bytes without the app
            raw = app.fast_raw(f"/01/{GTIN}".encode(), [(b"host", b"id.test"), (b"accept", b"*/*")], True)  # type: ignore[misc]
            assert raw is not None and raw.startswith(b"HTTP/1.1 307 ")
            assert b"location: https://a.example/1\r\n" in raw
            # with credentials nothing is answered from the cache
            assert app.fast_raw(f"/01/{GTIN}".encode(), [(b"authorization", b"x")], True) is None  # type: ignore[misc]
            assert (await c.get("/oid/1.2.156.77.1")).json()["handle"] == "88.100.1/p"

            # a write through this process's registry forgets at once
            await registry.put(TENANT, "88.100.1/p", _values("https://a.example/2"), overwrite=True)
            assert (await c.get(f"/01/{GTIN}")).headers["location"] == "https://a.example/2"

            # a write through another process (another registry on the database) arrives by the feed
            other = Database(db.url)
            try:
                await Registry(other).put(
                    TENANT, "88.100.1/p", _values("https://a.example/3"), overwrite=True
                )
            finally:
                await other.dispose()
            deadline = time.monotonic() + 5
            while (await c.get(f"/01/{GTIN}")).headers["location"] != "https://a.example/3":
                assert time.monotonic() < deadline, "the change feed did not reach the answer cache"
                await asyncio.sleep(0.05)
            # a 404 is never kept: a record added later answers at once
            assert (await c.get("/oid/1.2.156.77.9")).status_code == 404
            assert not [k for k in cache.answers if b"/oid/1.2.156.77.9" in k]
    finally:
        await watcher.stop()


async def test_a_bulk_import_makes_every_node_forget_its_answers(registry: Registry, db: Database) -> None:
    await registry.put(TENANT, "88.100.1/p", _values("https://a.example/1"))
    app = AsgiApp()
    cache = install_schemes(app, registry, TENANT)
    watcher = ChangeWatcher(db.url, cache.changed, poll_s=0.05)
    await watcher.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://id.test") as c:
            assert (await c.get(f"/01/{GTIN}")).status_code == 307
            assert cache.answers
            new = [{"index": 1, "type": "URL", "data": "https://b.example/lot"}]
            stats = await import_records(registry.db, TENANT, [("88.100.1/lot-1", new)])
            assert stats.inserted == 1
            deadline = time.monotonic() + 5
            while cache.answers:
                assert time.monotonic() < deadline, "the import's announcement did not reach the cache"
                await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
