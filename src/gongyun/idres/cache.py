"""Resolution caches: an in-process LRU (embedded) and Redis (server), same small protocol."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from gongyun.errors import ServiceUnavailable


class Cache(Protocol):
    """Byte values with a time to live."""

    async def get(self, key: str) -> bytes | None:
        """A live value or None."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store a value for ``ttl`` seconds (nothing when ``ttl <= 0``)."""
        ...

    async def delete(self, *keys: str) -> None:
        """Forget the given keys (absent ones are ignored)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """A bounded LRU with per-entry expiry (also usable synchronously via ``get_now``).

    Values and expiry times are kept in two flat dicts so that a large cache gives the
    garbage collector nothing to walk.
    """

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.values: OrderedDict[str, bytes] = OrderedDict()
        self.expires: dict[str, float] = {}

    def get_now(self, key: str) -> bytes | None:
        """Synchronous lookup (the fast path of the recursive node)."""
        value = self.values.get(key)
        if value is None:
            return None
        if self.expires[key] < time.monotonic():
            del self.values[key]
            del self.expires[key]
            return None
        self.values.move_to_end(key)
        return value

    async def get(self, key: str) -> bytes | None:
        """A live value or None."""
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store a value for ``ttl`` seconds."""
        self.set_now(key, value, ttl)

    def set_now(self, key: str, value: bytes, ttl: float) -> None:
        """Synchronous ``set``."""
        if ttl <= 0 or self.size <= 0:
            return
        self.values[key] = value
        self.values.move_to_end(key)
        self.expires[key] = time.monotonic() + ttl
        while len(self.values) > self.size:
            old, _ = self.values.popitem(last=False)
            self.expires.pop(old, None)

    async def delete(self, *keys: str) -> None:
        """Forget the given keys."""
        for key in keys:
            self.values.pop(key, None)
            self.expires.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""
        self.values.clear()
        self.expires.clear()


class RedisCache:
    """Entries in Redis under a namespace, expiring with Redis' own TTL (PX)."""

    def __init__(self, url: str, namespace: str = "gy:idres:") -> None:
        import redis.asyncio as redis

        # short timeouts: a Redis outage must slow a resolution by at most ~1 s, never hang it
        self.client: Any = redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.ns = namespace

    async def get(self, key: str) -> bytes | None:
        """A live value or None."""
        try:
            value = await self.client.get(self.ns + key)
        except (OSError, ConnectionError) as exc:
            raise ServiceUnavailable(f"redis cache unavailable: {exc}") from exc
        except Exception as exc:  # redis.exceptions.RedisError has no common base with OSError
            raise ServiceUnavailable(f"redis cache error: {type(exc).__name__}") from exc
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store a value for ``ttl`` seconds."""
        if ttl <= 0:
            return
        try:
            await self.client.set(self.ns + key, value, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            raise ServiceUnavailable(f"redis cache error: {type(exc).__name__}") from exc

    async def delete(self, *keys: str) -> None:
        """Delete the keys in one round trip (visible at once to every process sharing Redis)."""
        if not keys:
            return
        try:
            await self.client.delete(*(self.ns + k for k in keys))
        except Exception as exc:
            raise ServiceUnavailable(f"redis cache error: {type(exc).__name__}") from exc

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Live values of several keys in one command (``MGET``)."""
        try:
            values = await self.client.mget([self.ns + k for k in keys])
        except Exception as exc:
            raise ServiceUnavailable(f"redis cache error: {type(exc).__name__}") from exc
        return [v if isinstance(v, bytes) else None for v in values]

    async def set_many(self, items: list[tuple[str, bytes, float]]) -> None:
        """Store several values, each for its ``ttl`` seconds, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for key, value, ttl in items:
            if ttl > 0:
                pipe.set(self.ns + key, value, px=max(1, int(ttl * 1000)))
        try:
            await pipe.execute()
        except Exception as exc:
            raise ServiceUnavailable(f"redis cache error: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def open_cache(
    url: str | None, size: int = 100_000, namespace: str = "gy:idres:"
) -> MemoryCache | RedisCache:
    """``memory`` (or None) gives an LRU; ``redis://...`` a Redis cache."""
    if url is None or url == "memory" or url.startswith("memory:"):
        return MemoryCache(size)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url, namespace)
    from gongyun.errors import ConfigError

    raise ConfigError(f"unknown cache URL {url!r} (memory or redis://...)")
