"""The resolution caches: one contract for memory and Redis, and the shared record cache in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gongyun.idres.auth import Principal, static_token_auth
from gongyun.idres.cache import MemoryCache, RedisCache
from gongyun.idres.http import HandleService, make_app
from gongyun.idres.registry import Registry
from gongyun.idres.rescache import SharedRecords
from tests.apphelp import admin_headers, running_app
from tests.services import REDIS_URL, require_service, scratch_postgres_database

from .conftest import TENANT

OP = {"Authorization": "Bearer tok"}


async def _redis(namespace: str) -> RedisCache:
    require_service("redis")
    return RedisCache(REDIS_URL, namespace)


async def _drop_namespace(cache: RedisCache) -> None:
    keys = [k async for k in cache.client.scan_iter(match=cache.ns + "*")]
    if keys:
        await cache.client.delete(*keys)
    await cache.close()


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[MemoryCache | RedisCache]:
    """Each cache implementation, Redis under a key prefix of its own (removed afterwards)."""
    if request.param == "memory":
        yield MemoryCache(100)
        return
    redis_cache = await _redis(f"gy:test:{uuid.uuid4().hex}:")
    try:
        yield redis_cache
    finally:
        await _drop_namespace(redis_cache)


async def test_cache_contract(cache: MemoryCache | RedisCache) -> None:
    await cache.set("a", b"1", 0.3)
    await cache.set("b", b"2", 30)
    await cache.set("never", b"3", 0)
    assert (await cache.get("a"), await cache.get("b"), await cache.get("never")) == (b"1", b"2", None)
    await cache.delete("b", "absent")
    assert await cache.get("b") is None
    await asyncio.sleep(0.45)
    assert await cache.get("a") is None  # expired after its TTL


async def test_shared_records_contract(cache: MemoryCache | RedisCache) -> None:
    shared = SharedRecords(cache, negative_ttl=30, max_ttl=60)
    loads: list[str] = []
    stored: dict[str, bytes] = {"88.1/A": b"rec-a"}

    async def load(norm: str) -> tuple[bytes, float] | None:
        loads.append(norm)
        return (stored[norm], 10.0) if norm in stored else None

    for _ in range(3):
        assert await shared.get("api", "t1", "88.1/A", lambda: load("88.1/A")) == b"rec-a"
        assert await shared.get("api", "t1", "88.1/B", lambda: load("88.1/B")) is None  # negative
    assert loads == ["88.1/A", "88.1/B"] and (shared.hits, shared.misses) == (4, 2)
    stored["88.1/B"], stored["88.1/A"] = b"rec-b", b"rec-a2"
    await shared.forget(["88.1/A", "88.1/B"], ("t1",))
    assert await shared.get("api", "t1", "88.1/A", lambda: load("88.1/A")) == b"rec-a2"
    assert await shared.get("api", "t1", "88.1/B", lambda: load("88.1/B")) == b"rec-b"


@pytest.fixture
async def redis_shared() -> AsyncIterator[SharedRecords]:
    """A shared record cache in Redis under a key prefix of its own."""
    redis_cache = await _redis(f"gy:test:{uuid.uuid4().hex}:")
    try:
        yield SharedRecords(redis_cache)
    finally:
        await _drop_namespace(redis_cache)


async def test_api_resolution_through_redis(tmp_path: Path, redis_shared: SharedRecords) -> None:
    cache = redis_shared.cache
    assert isinstance(cache, RedisCache)
    async with running_app(tmp_path, redis_url=REDIS_URL) as (client, platform):
        assert platform.records is not None  # redis_url makes the platform open the shared cache
        await platform.records.close()
        platform.records = redis_shared
        h = await admin_headers(client)
        await client.post("/api/v1/identifiers/prefixes", headers=h, json={"prefix": "88.300"})
        for status in ("verified", "active"):
            await client.post(
                "/api/v1/identifiers/prefixes/88.300/status", headers=h, json={"status": status}
            )
        url = "/api/v1/identifiers/records/88.300/P1"
        one = [{"index": 1, "type": "URL", "data": "https://x.example/1", "ttl": 120}]
        assert (await client.get(url, headers=h)).status_code == 404  # remembered as not found
        r = await client.put(url, headers=h, json={"values": one})
        assert r.status_code == 200 and r.json()["created"]  # the write removed the negative entry
        first = await client.get(url, headers=h)
        assert first.status_code == 200
        keys = [k async for k in cache.client.scan_iter(match=cache.ns + "api:*")]
        assert len(keys) == 1 and 0 < await cache.client.ttl(keys[0]) <= 120  # TTL from the record
        async with platform.db.session() as s:  # change the row behind the cache's back
            await s.execute(
                text("UPDATE idres_records SET values_json = :v WHERE handle_norm = '88.300/P1'"),
                {"v": '[{"index":1,"type":"URL","data":{"format":"string","value":"behind"}}]'},
            )
        hits = redis_shared.hits
        second = await client.get(url, headers=h)
        assert second.content == first.content and redis_shared.hits == hits + 1  # served from Redis
        assert b"behind" not in second.content
        two = [{"index": 1, "type": "URL", "data": "https://x.example/2", "ttl": 120}]
        r = await client.put(url, headers=h, json={"values": two, "overwrite": True})
        assert r.status_code == 200
        after = await client.get(url, headers=h)
        assert after.json()["values"][0]["data"]["value"] == "https://x.example/2"
        assert (await client.delete(url, headers=h)).status_code == 204
        assert (await client.get(url, headers=h)).status_code == 404


@pytest.mark.postgres
async def test_nodes_share_redis(registry: Registry, redis_shared: SharedRecords) -> None:
    if registry.db.dialect != "postgresql":
        pytest.skip("a SQLite node reads its file directly; the shared cache serves PostgreSQL nodes")
    auth = [static_token_auth({"tok": Principal("op", None, operator=True)})]
    a = HandleService(registry, TENANT, authenticators=auth, shared=redis_shared)
    b = HandleService(Registry(registry.db), TENANT, authenticators=auth, shared=redis_shared)
    ta, tb = httpx.ASGITransport(app=make_app(a)), httpx.ASGITransport(app=make_app(b))
    async with (
        httpx.AsyncClient(transport=ta, base_url="http://a") as ca,
        httpx.AsyncClient(transport=tb, base_url="http://b") as cb,
    ):
        values = {"values": [{"index": 1, "type": "URL", "data": "https://n.example/1"}]}
        assert (await ca.get("/api/handles/88.100.1/n1")).status_code == 404  # negative entry
        assert (await cb.put("/api/handles/88.100.1/n1", json=values, headers=OP)).status_code == 201
        assert (await ca.get("/api/handles/88.100.1/n1")).status_code == 200  # B's write reached A
        misses = redis_shared.misses
        assert (await cb.get("/api/handles/88.100.1/N1")).status_code == 200
        assert redis_shared.misses == misses  # the second process read Redis, not the database
        values["values"][0]["data"] = "https://n.example/2"
        r = await cb.put("/api/handles/88.100.1/n1?overwrite=true", json=values, headers=OP)
        assert r.status_code == 200
        got = (await ca.get("/api/handles/88.100.1/n1")).json()["values"][0]["data"]["value"]
        assert got == "https://n.example/2"
        assert (await cb.delete("/api/handles/88.100.1/n1", headers=OP)).status_code == 200
        assert (await ca.get("/api/handles/88.100.1/n1")).status_code == 404


@pytest.mark.postgres
async def test_api_writes_reach_an_enterprise_node_at_once(
    tmp_path: Path, redis_shared: SharedRecords
) -> None:
    from gongyun.idres import prefixes as pfx
    from gongyun.idres.nodes import NodeConfig, Role, build_app

    cache = redis_shared.cache
    assert isinstance(cache, RedisCache)
    with scratch_postgres_database() as url:
        async with running_app(tmp_path, db_url=url, redis_url=REDIS_URL) as (client, platform):
            assert platform.records is not None
            await platform.records.close()
            platform.records = redis_shared  # the API and the node share one key prefix
            h = await admin_headers(client)
            tenant_id = (await client.get("/api/v1/tenants", headers=h)).json()[0]["id"]
            async with platform.db.session() as s:
                await pfx.submit(s, tenant_id, "88.400", "enterprise", status=pfx.FilingStatus.active)
            config = NodeConfig(
                role=Role.enterprise,
                db_url=platform.settings.effective_database_url,
                tenant=tenant_id,
                prefixes=["88.400"],
                cache_url=REDIS_URL,
                cache_namespace=cache.ns,
            )
            app = build_app(config)  # what `gongyun idnode --role enterprise --cache redis://…` runs
            node = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
            try:
                handle, api = "/api/handles/88.400/C1", "/api/v1/identifiers/records/88.400/C1"
                assert (await node.get(handle)).status_code == 404  # remembered as not found
                one = [{"index": 1, "type": "URL", "data": "https://c.example/1"}]
                assert (await client.put(api, headers=h, json={"values": one})).status_code == 200
                assert (await node.get(handle)).json()["values"][0]["data"]["value"] == "https://c.example/1"
                assert await cache.client.exists(f"{cache.ns}node:{tenant_id}:88.400/C1") == 1
                two = [{"index": 1, "type": "URL", "data": "https://c.example/2"}]
                r = await client.put(api, headers=h, json={"values": two, "overwrite": True})
                assert r.status_code == 200
                assert (await node.get(handle)).json()["values"][0]["data"]["value"] == "https://c.example/2"
                assert (await client.delete(api, headers=h)).status_code == 204
                assert (await node.get(handle)).status_code == 404
            finally:
                await node.aclose()
                for hook in app.on_shutdown:
                    await hook()


@pytest.mark.postgres
async def test_a_nodes_own_routes_invalidate_too(redis_shared: SharedRecords) -> None:
    from gongyun.idres.nodes import NodeConfig, Role, build_app, prepare

    cache = redis_shared.cache
    assert isinstance(cache, RedisCache)
    with scratch_postgres_database() as url:
        config = NodeConfig(
            role=Role.secondary,
            db_url=url,
            prefixes=["88.500"],
            cache_url=REDIS_URL,
            cache_namespace=cache.ns,
            admin_token="tok",
        )
        await prepare(config)
        app = build_app(config)
        node = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
        try:
            record = "/api/handles/0.NA/88.500.7"
            assert (await node.get(record)).status_code == 404  # remembered as not found in Redis
            site = {"address": "127.0.0.1", "port": 8200}
            r = await node.post("/api/allocations", headers=OP, json={"prefix": "88.500.7", "site": site})
            assert r.status_code == 201, r.text
            assert (await node.get(record)).status_code == 200  # the allocation dropped the entry
        finally:
            await node.aclose()
            for hook in app.on_shutdown:
                await hook()


async def test_deployments_sharing_a_redis_server_keep_their_keys_apart(tmp_path: Path) -> None:
    """Each deployment's resolution cache lives under its deployment_id; one never reads the other's."""
    opened: list[RedisCache] = []
    try:
        async with (
            running_app(tmp_path / "a", redis_url=REDIS_URL, deployment_id=f"a{uuid.uuid4().hex[:8]}") as (
                ca,
                pa,
            ),
            running_app(tmp_path / "b", redis_url=REDIS_URL, deployment_id=f"b{uuid.uuid4().hex[:8]}") as (
                cb,
                pb,
            ),
        ):
            assert pa.records is not None and pb.records is not None
            for platform in (pa, pb):
                assert isinstance(platform.records.cache, RedisCache)
                opened.append(platform.records.cache)
                assert platform.records.cache.ns == f"gy:{platform.settings.deployment_id}:idres:"
            for client, value in ((ca, "https://a.example"), (cb, "https://b.example")):
                h = await admin_headers(client)
                await client.post("/api/v1/identifiers/prefixes", headers=h, json={"prefix": "88.301"})
                for status in ("verified", "active"):
                    await client.post(
                        "/api/v1/identifiers/prefixes/88.301/status", headers=h, json={"status": status}
                    )
                url = "/api/v1/identifiers/records/88.301/SAME"
                r = await client.put(
                    url, headers=h, json={"values": [{"index": 1, "type": "URL", "data": value}]}
                )
                assert r.status_code == 200, r.text
                got = await client.get(url, headers=h)  # cached under this deployment's namespace
                assert got.json()["values"][0]["data"]["value"] == value
            # the same handle, the same tenant-less key shape: each deployment still reads its own
            for client, value in ((ca, "https://a.example"), (cb, "https://b.example")):
                h = await admin_headers(client)
                got = await client.get("/api/v1/identifiers/records/88.301/SAME", headers=h)
                assert got.json()["values"][0]["data"]["value"] == value
    finally:
        for cache in opened:
            await _drop_namespace(await _redis(cache.ns))
