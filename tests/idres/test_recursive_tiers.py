"""The recursive node's tiers: a worker's memory, Redis shared by workers, misses passed through."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from gongyun.db import Database
from gongyun.idres.cache import RedisCache
from gongyun.idres.nodes import NodeConfig, build_app, prepare
from gongyun.idres.rectier import SharedTier, pack, unpack
from gongyun.idres.registry import Registry
from gongyun.idres.resolver import Resolver, _min_ttl
from gongyun.idres.resp import RespError, _Incomplete, command, parse
from gongyun.idres.values import admin_value, decode_values, site_value
from tests.services import REDIS_URL, require_service

from .serving import serve_lean_in_thread

COUNT = 40


async def _seed(ent_db: str, ent_port: int) -> None:
    db = Database(ent_db)
    reg = Registry(db)
    await reg.put(
        "default", "0.NA/88.100.1", [site_value("127.0.0.1", ent_port, ttl=60), admin_value("0.NA/88.100.1")]
    )
    await reg.put(
        "default", "88.100.1/SHORT", decode_values([{"index": 1, "type": "URL", "data": "u", "ttl": 1}])
    )
    for i in range(COUNT):
        values = [{"index": 1, "type": "URL", "data": f"https://x.example/{i}", "ttl": 600}]
        await reg.put("default", f"88.100.1/P{i}", decode_values(values))
    await db.dispose()


@pytest.fixture
def enterprise(tmp_path: Path) -> Iterator[str]:
    """An enterprise node that is its own root (``0.NA/88.100.1`` refers to itself)."""
    ent = NodeConfig(
        role="enterprise", db_url=f"sqlite+aiosqlite:///{tmp_path / 'ent.db'}", prefixes=["88.100.1"]
    )
    asyncio.run(prepare(ent))
    with serve_lean_in_thread(build_app(ent)) as url:
        asyncio.run(_seed(ent.db_url or "", int(url.rsplit(":", 1)[1])))
        yield url


@pytest.fixture
def redis_ns() -> Iterator[str]:
    require_service("redis")
    ns = f"gy:test:{uuid.uuid4().hex}:"
    yield ns

    async def clean() -> None:
        cache = RedisCache(REDIS_URL, ns)
        keys = [k async for k in cache.client.scan_iter(match=ns + "*")]
        if keys:
            await cache.client.delete(*keys)
        await cache.close()

    asyncio.run(clean())


@pytest.mark.redis
async def test_redis_tier_between_two_workers(enterprise: str, redis_ns: str) -> None:
    a = Resolver([enterprise], RedisCache(REDIS_URL, redis_ns), negative_ttl=5)
    b = Resolver([enterprise], RedisCache(REDIS_URL, redis_ns), negative_ttl=5)
    try:
        first = await a.resolve("88.100.1/p1")
        assert first.status == 200 and not first.cached and a.stats.upstream >= 1
        # the other worker finds it in Redis: no upstream request, kept in its own tier
        second = await b.resolve("88.100.1/P1")
        assert second.cached and second.body == first.body and b.stats.upstream == 0
        assert b.cached_now("88.100.1/P1") == first.body
        # a negative answer is shared the same way
        missing = await a.resolve("88.100.1/none")
        assert missing.status == 404 and orjson.loads(missing.body)["responseCode"] == 100
        again = await b.resolve("88.100.1/NONE")
        assert again.status == 404 and again.cached and b.stats.negative_hits == 1 and b.stats.upstream == 0
        # an entry is kept by every tier for its TTL (1 s here) and no longer
        short = await a.resolve("88.100.1/short")
        assert (await b.resolve("88.100.1/short")).cached
        assert b.local.expires["rec:88.100.1/SHORT"] - time.monotonic() <= 1.0
        await asyncio.sleep(1.2)
        assert b.cached_now("88.100.1/SHORT") is None
        fresh = await b.resolve("88.100.1/short")
        assert not fresh.cached and fresh.body == short.body and b.stats.upstream >= 1
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
@pytest.mark.parametrize("lean", [True, False], ids=["lean-connection", "redis-py"])
async def test_shared_tier_batches_and_skips_foreign_values(redis_ns: str, lean: bool) -> None:
    cache = RedisCache(REDIS_URL, redis_ns)
    tier = SharedTier(cache)
    if not lean:  # as over TLS: redis-py carries the batches
        tier.conn = None
    try:
        for i in range(50):
            tier.put(f"rec:K{i}", b"body-%d" % i, 30)
        await asyncio.sleep(0.05)
        assert await cache.client.pttl(redis_ns + "rec:K7") > 29_000  # Redis drops it on time too
        await cache.client.set(redis_ns + "rec:OLD", b'{"responseCode":1}')  # an older layout
        found = await asyncio.gather(*(tier.get(f"rec:K{i}") for i in range(50)), tier.get("rec:OLD"))
        assert [f[0] if f else None for f in found[:50]] == [b"body-%d" % i for i in range(50)]
        assert all(f is not None and 29 < f[1] <= 30 for f in found[:50])
        assert found[50] is None and tier.errors == 0
    finally:
        await tier.close()


def test_pack_unpack() -> None:
    now = 1_000_000.0
    raw = pack(b"{}", 2.5, now)
    assert unpack(raw, now + 1) == (b"{}", pytest.approx(1.5))
    assert unpack(raw, now + 3) is None
    assert unpack(b"{}", now) is None and unpack(None, now) is None


async def test_redis_down_resolution_goes_on(enterprise: str) -> None:
    resolver = Resolver([enterprise], RedisCache("redis://127.0.0.1:1/0", "gy:test:down:"))
    try:
        answer = await resolver.resolve("88.100.1/P2")
        assert answer.status == 200 and b"https://x.example/2" in answer.body
        assert resolver.shared is not None and resolver.shared.errors >= 1
    finally:
        await resolver.close()


@pytest.mark.parametrize("cache", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_misses_pass_the_upstream_answer_through(enterprise: str, cache: str) -> None:
    if cache == "redis":
        require_service("redis")
    rec = NodeConfig(
        role="recursive",
        roots=[enterprise],
        cache_url="memory" if cache == "memory" else REDIS_URL,
        cache_namespace=f"gy:test:{uuid.uuid4().hex}:",
    )
    with serve_lean_in_thread(build_app(rec)) as url:

        async def go() -> None:
            async with (
                httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as c,
                httpx.AsyncClient(base_url=enterprise, trust_env=False, timeout=10) as up,
            ):
                names = [f"88.100.1/P{i}" for i in range(COUNT)]
                # many concurrent misses, each also asked for five times at once (one fetch each)
                got = await asyncio.gather(*(c.get(f"/api/handles/{n}") for n in names for _ in range(5)))
                direct = await asyncio.gather(*(up.get(f"/api/handles/{n}") for n in names))
                for i, r in enumerate(got):
                    assert r.status_code == 200 and r.content == direct[i // 5].content
                stats = (await c.get("/api/resolver/stats")).json()
                assert stats["upstream"] <= COUNT + 3 and stats["upstreamErrors"] == 0
                miss = await c.get("/api/handles/88.100.1/NOPE")
                assert miss.status_code == 404 and miss.json()["responseCode"] == 100
                # a malformed identifier and a filtered read still get the app's answers
                assert (await c.get("/api/handles/88.100.1")).status_code == 400
                typed = await c.get("/api/handles/88.100.1/P3", params={"type": "URL"})
                assert typed.json()["values"][0]["data"]["value"] == "https://x.example/3"
                # an identifier of no known prefix is cached as not found
                assert (await c.get("/api/handles/77.1/x")).status_code == 404

        asyncio.run(go())


def test_min_ttl_without_decoding() -> None:
    body = orjson.dumps({"values": [{"index": 1, "ttl": 600}, {"index": 2, "ttl": 86400}]})
    assert _min_ttl(body, 9e9) == 600
    nested = orjson.dumps({"values": [{"ttl": 60, "data": {"value": {"ttl": "x"}}}]})
    assert _min_ttl(nested, 9e9) == 60  # a member that is not a plain number: decoded
    assert _min_ttl(orjson.dumps({"values": [{"index": 1}]}), 42.0) == 42.0
    assert _min_ttl(b"not json", 42.0) == 0.0


def test_resp_replies_parse_whole_or_wait_for_more() -> None:
    mget = b"*3\r\n$2\r\nab\r\n$-1\r\n$0\r\n\r\n"
    assert parse(mget, 0) == ([b"ab", None, b""], len(mget))
    for cut in range(1, len(mget)):
        with pytest.raises(_Incomplete):
            parse(mget[:cut], 0)
    assert parse(b"+OK\r\n:12\r\n", 0) == (b"OK", 5)
    assert parse(b"+OK\r\n:12\r\n", 5) == (12, 10)
    err, _ = parse(b"-ERR wrong\r\n", 0)
    assert isinstance(err, RespError) and "wrong" in str(err)
    assert command(b"SET", b"k", b"v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"


@pytest.mark.parametrize("cache", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_concurrent_misses_share_referrals_and_fetches(
    enterprise: str, cache: str, request: pytest.FixtureRequest
) -> None:
    shared = RedisCache(REDIS_URL, request.getfixturevalue("redis_ns")) if cache == "redis" else None
    resolver = Resolver([enterprise], shared)
    try:
        names = [f"88.100.1/P{i}" for i in range(20)]
        answers = await asyncio.gather(*(resolver.resolve(n) for n in names * 3))
        assert all(a.status == 200 for a in answers)
        # three referrals (88, 88.100, 88.100.1), each asked once, and one fetch per identifier
        assert resolver.stats.upstream == 3 + 20 and resolver.stats.misses == 20
    finally:
        await resolver.close()
