"""The recursive resolver: follows referrals from the root nodes down, caches with TTL.

To resolve ``88.100.1/PUMP-1`` it asks the roots (trying each mirror in turn) for
``0.NA/88``, ``0.NA/88.100``, ``0.NA/88.100.1``; every ``HS_SITE`` found moves the search to
that site, which is then asked for the next, longer prefix. The last site reached is
asked for the record. Answers are cached for the smallest TTL of their values (bounded
by ``max_ttl``); "not found" answers and unknown prefixes for ``negative_ttl``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson

from gongyun.errors import GongyunError
from gongyun.idres.cache import Cache, MemoryCache, RedisCache
from gongyun.idres.errors import RC_HANDLE_NOT_FOUND, ResolutionFailed
from gongyun.idres.syntax import Handle, fold, parse, prefix_chain
from gongyun.idres.upstream import UpstreamClient, UpstreamError
from gongyun.idres.values import decode_value, site_urls

log = logging.getLogger(__name__)
_NEG = b"-"


@dataclass(slots=True)
class Answer:
    """A resolution answer: HTTP status and Handle JSON body."""

    status: int
    body: bytes
    cached: bool = False


@dataclass(slots=True)
class Stats:
    """Counters for operators and tests."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    upstream: int = 0
    upstream_errors: int = 0
    by_site: dict[str, int] = field(default_factory=dict)


def not_found_body(handle: str, message: str = "Handle Not Found") -> bytes:
    """Handle JSON for responseCode 100."""
    return orjson.dumps({"responseCode": RC_HANDLE_NOT_FOUND, "handle": handle, "message": message})


def _min_ttl(body: bytes, default: float) -> float:
    try:
        values = orjson.loads(body).get("values", [])
        ttls = [float(v.get("ttl", default)) for v in values if isinstance(v, dict)]
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0.0
    return min(ttls) if ttls else default


class Resolver:
    """Resolves any identifier by following referrals; one per recursive node."""

    def __init__(
        self,
        roots: list[str],
        cache: Cache | None = None,
        *,
        negative_ttl: float = 30.0,
        max_ttl: float = 86_400.0,
        timeout: float = 3.0,
        local_size: int = 200_000,
    ) -> None:
        if not roots:
            raise ValueError("a resolver needs at least one root URL")
        self.roots = [r.rstrip("/") for r in roots]
        self.cache: Cache = cache if cache is not None else MemoryCache()
        # a shared cache (Redis) gets a worker-local tier in front: hits never leave the process
        self.local = self.cache if isinstance(self.cache, MemoryCache) else MemoryCache(local_size)
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self.stats = Stats()
        # one pooled client per worker; connections to each site are kept and reused
        self.client = UpstreamClient(timeout=timeout)
        self.flights: dict[str, asyncio.Future[Answer]] = {}

    async def close(self) -> None:
        """Close the HTTP client and the cache."""
        await self.client.aclose()
        await self.cache.close()

    async def _fetch(self, sites: list[str], path: str) -> tuple[int, bytes]:
        last: Exception | None = None
        for base in sites:
            try:
                self.stats.upstream += 1
                self.stats.by_site[base] = self.stats.by_site.get(base, 0) + 1
                status, body = await self.client.get(base + path)
            except UpstreamError as exc:
                self.stats.upstream_errors += 1
                last = exc
                log.warning("site %s failed for %s: %s", base, path, exc)
                continue
            if status >= 500:
                self.stats.upstream_errors += 1
                last = RuntimeError(f"{base} answered {status}")
                continue
            return status, body
        raise ResolutionFailed(f"no site answered {path}: {last}", sites=sites)

    async def sites_for(self, prefix: str) -> list[str] | None:
        """Base URLs of the site serving ``prefix``, or None when no root refers to it."""
        sites = self.roots
        referred = False
        for p in prefix_chain(prefix):
            key = "ref:" + fold(p)
            ref = await self._cached(key)
            if ref is None:
                status, body = await self._fetch(sites, "/api/handles/0.NA/" + quote(p, safe=""))
                urls, ttl = self._referral(body) if status == 200 else ([], 0.0)
                ref = orjson.dumps(urls) if urls else _NEG
                await self._remember(key, ref, ttl if urls else self.negative_ttl)
            if ref != _NEG:
                sites, referred = list(orjson.loads(ref)), True
        return sites if referred else None

    def _referral(self, body: bytes) -> tuple[list[str], float]:
        urls: list[str] = []
        ttl = self.max_ttl
        try:
            values = orjson.loads(body).get("values", [])
        except (orjson.JSONDecodeError, AttributeError):
            return [], 0.0
        for raw in values:
            if isinstance(raw, dict) and raw.get("type") == "HS_SITE":
                try:
                    value = decode_value(raw)
                except GongyunError:  # a broken referral is skipped, not fatal
                    continue
                urls.extend(site_urls(value))
                ttl = min(ttl, float(value.ttl))
        return urls, ttl

    async def _cached(self, key: str) -> bytes | None:
        if self.local is self.cache:
            return self.local.get_now(key)
        hit = self.local.get_now(key)
        if hit is not None:
            return hit
        if isinstance(self.cache, RedisCache):
            value, left = await self.cache.get_ttl(key)
        else:
            value, left = await self.cache.get(key), self.negative_ttl
        if value is not None:
            await self.local.set(key, value, min(left, self.max_ttl))
        return value

    async def _remember(self, key: str, body: bytes, ttl: float) -> None:
        await self.cache.set(key, body, ttl)
        if self.local is not self.cache:
            await self.local.set(key, body, ttl)

    async def resolve(self, handle: str) -> Answer:
        """Resolve one identifier (raises ``MalformedIdentifier`` for bad syntax)."""
        h = parse(handle)
        key = "rec:" + h.norm
        cached = await self._cached(key)
        if cached is not None:
            status = 404 if cached.startswith(b'{"responseCode":100') else 200
            if status == 404:
                self.stats.negative_hits += 1
            else:
                self.stats.hits += 1
            return Answer(status, cached, cached=True)
        flight = self.flights.get(key)
        if flight is not None:  # the same identifier is being fetched: share that answer
            return await asyncio.shield(flight)
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.flights[key] = fut
        try:
            answer = await self._resolve_upstream(h, key)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            self.flights.pop(key, None)
        fut.set_result(answer)
        return answer

    async def _resolve_upstream(self, h: Handle, key: str) -> Answer:
        self.stats.misses += 1
        sites = await self.sites_for(h.prefix)
        if sites is None:
            body = not_found_body(str(h), f"prefix {h.prefix} is not known to any root")
            await self._remember(key, body, self.negative_ttl)
            return Answer(404, body)
        status, body = await self._fetch(sites, "/api/handles/" + quote(str(h), safe="/"))
        if status == 200:
            await self._remember(key, body, min(_min_ttl(body, self.max_ttl), self.max_ttl))
            return Answer(200, body)
        body = not_found_body(str(h))
        await self._remember(key, body, self.negative_ttl)
        return Answer(404, body)

    def cached_now(self, handle_norm: str) -> bytes | None:
        """Synchronous peek into the worker's memory tier for the fast path."""
        return self.local.get_now("rec:" + handle_norm)
