"""The recursive resolver against root and enterprise nodes, with memory and Redis caches."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gongyun.db import Database
from gongyun.idres.cache import MemoryCache, RedisCache, open_cache
from gongyun.idres.nodes import NodeConfig, build_app, prepare
from gongyun.idres.registry import Registry
from gongyun.idres.resolver import Resolver
from gongyun.idres.values import admin_value, decode_values, site_value
from tests.services import REDIS_URL, require_service

from .serving import serve_lean_in_thread


async def _seed(root_db: str, ent_db: str, ent_port: int) -> None:
    db = Database(root_db)
    await Registry(db).put(
        "default", "0.NA/88.100.1", [site_value("127.0.0.1", ent_port, ttl=60), admin_value("0.NA/88.100.1")]
    )
    await db.dispose()
    db = Database(ent_db)
    values = decode_values([{"index": 1, "type": "URL", "data": "https://x.example/1", "ttl": 1}])
    await Registry(db).put("default", "88.100.1/A", values)
    await db.dispose()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[str, str]]:
    root = NodeConfig(role="root", db_url=f"sqlite+aiosqlite:///{tmp_path / 'root.db'}")
    ent = NodeConfig(
        role="enterprise", db_url=f"sqlite+aiosqlite:///{tmp_path / 'ent.db'}", prefixes=["88.100.1"]
    )
    asyncio.run(prepare(root))
    asyncio.run(prepare(ent))
    with serve_lean_in_thread(build_app(ent)) as ent_url:
        port = int(ent_url.rsplit(":", 1)[1])
        asyncio.run(_seed(root.db_url or "", ent.db_url or "", port))
        with serve_lean_in_thread(build_app(root)) as root_url:
            yield root_url, ent_url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_service("redis")
        return REDIS_URL
    return "memory"


async def test_resolve_cache_ttl_negative(network: tuple[str, str], cache_url: str) -> None:
    root_url, _ = network
    cache = open_cache(cache_url, namespace=f"gy:test:{uuid.uuid4().hex}:")
    assert isinstance(cache, MemoryCache | RedisCache)
    resolver = Resolver(["http://127.0.0.1:1", root_url], cache, negative_ttl=5)
    try:
        a = await resolver.resolve("88.100.1/a")
        assert a.status == 200 and not a.cached
        up = resolver.stats.upstream
        b = await resolver.resolve("88.100.1/A")
        assert b.cached and b.body == a.body and resolver.stats.upstream == up
        await asyncio.sleep(1.2)  # the value's TTL is 1 s
        c = await resolver.resolve("88.100.1/A")
        assert not c.cached and resolver.stats.upstream > up
        n1 = await resolver.resolve("99.1/x")
        assert n1.status == 404 and not n1.cached
        n2 = await resolver.resolve("99.1/x")
        assert n2.status == 404 and n2.cached and resolver.stats.negative_hits == 1
        missing = await resolver.resolve("88.100.1/none")
        assert missing.status == 404
        assert resolver.stats.upstream_errors >= 1  # the dead first root was skipped
    finally:
        await resolver.close()


def test_open_cache_rejects_unknown() -> None:
    with pytest.raises(Exception, match="unknown cache URL"):
        open_cache("memcached://x")
