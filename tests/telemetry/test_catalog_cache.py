"""The ingest catalogue cache: known tags kept long, misses briefly, both dropped on announcement."""

from __future__ import annotations

import asyncio

from gongyun.telemetry.catalog import CachedCatalog, TagSpec


async def test_known_tags_outlive_misses_and_invalidation_drops_both() -> None:
    asked: list[str] = []

    async def lookup(tenant: str, tag: str) -> TagSpec | None:
        asked.append(tag)
        return TagSpec(tag) if tag == "d/known" else None

    cache = CachedCatalog(lookup, ttl_s=60.0, miss_ttl_s=0.05)
    assert await cache.get("t", "d/known") == TagSpec("d/known")
    assert await cache.get("t", "d/unknown") is None
    await asyncio.sleep(0.1)
    assert await cache.get("t", "d/known") == TagSpec("d/known")  # still cached
    assert await cache.get("t", "d/unknown") is None  # asked again: a miss is kept briefly
    assert asked == ["d/known", "d/unknown", "d/unknown"]
    cache.invalidate("other")
    await cache.get("t", "d/known")
    assert asked.count("d/known") == 1  # another tenant's change leaves this one's cache alone
    cache.invalidate("t")
    await cache.get("t", "d/known")
    assert asked.count("d/known") == 2
