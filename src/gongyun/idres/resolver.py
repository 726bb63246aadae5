"""The recursive resolver: follows referrals from the root nodes down, caches with TTL.

To resolve ``88.100.1/PUMP-1`` it asks the roots (trying each mirror in turn) for
``0.NA/88``, ``0.NA/88.100``, ``0.NA/88.100.1``; every ``HS_SITE`` found moves the search to
that site, which is then asked for the next, longer prefix. The last site reached is
asked for the record. Answers are cached for the smallest TTL of their values (bounded
by ``max_ttl``); "not found" answers and unknown prefixes for ``negative_ttl``.

Every worker keeps its own memory tier, answered by the lean server's fast path before any
parsing. With Redis (``RedisCache``) a shared tier sits behind it (:mod:`rectier`): a local miss
reads Redis with the other lookups of that turn of the loop, and keeps what it found for the
entry's remaining TTL. A miss in both goes upstream through ``lookup``, a chain of future
callbacks (no task per request): the upstream's answer is passed through unchanged and stored
in both tiers; concurrent requests for one identifier share one fetch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from gongyun.errors import GongyunError
from gongyun.idres.cache import Cache, MemoryCache, RedisCache
from gongyun.idres.errors import RC_HANDLE_NOT_FOUND, ResolutionFailed
from gongyun.idres.rectier import Found, SharedTier
from gongyun.idres.syntax import Handle, fold, parse, prefix_chain
from gongyun.idres.upstream import Result, UpstreamClient, UpstreamError
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


_TTL = re.compile(rb'"ttl":(-?[0-9]+(?:\.[0-9]+)?)[,}]')


def _min_ttl(body: bytes, default: float) -> float:
    """The smallest ``ttl`` of an answer's values (``default`` when none has one).

    A JSON string cannot hold an unescaped ``"``, so ``"ttl":`` only ever starts a member; the
    answer is decoded only when its ``"ttl"`` members are not all plain numbers, or none is found.
    """
    found = _TTL.findall(body)
    if found and len(found) == body.count(b'"ttl"'):
        return min(float(t) for t in found)
    try:
        values = orjson.loads(body).get("values", [])
        ttls = [float(v.get("ttl", default)) for v in values if isinstance(v, dict)]
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0.0
    return min(ttls) if ttls else default


def _fail(fut: asyncio.Future[Answer], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
        fut.exception()  # retrieved: a shared flight nobody awaits must not warn


class Resolver:
    """Resolves any identifier by following referrals; one per recursive node (per worker)."""

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
        self.shared = SharedTier(self.cache) if isinstance(self.cache, RedisCache) else None
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self.stats = Stats()
        # one pipelining client per worker; connections to each site are kept and reused
        self.client = UpstreamClient(timeout=timeout)
        self.flights: dict[str, asyncio.Future[Answer]] = {}
        self.ref_flights: dict[str, asyncio.Future[bytes]] = {}

    async def close(self) -> None:
        """Close the HTTP client and the cache."""
        await self.client.aclose()
        if self.shared is not None:
            await self.shared.close()
        else:
            await self.cache.close()

    def _count(self, base: str) -> None:
        self.stats.upstream += 1
        self.stats.by_site[base] = self.stats.by_site.get(base, 0) + 1

    async def _fetch(self, sites: list[str], path: str) -> tuple[int, bytes]:
        last: Exception | None = None
        for base in sites:
            try:
                self._count(base)
                status, body = await asyncio.shield(self.client.submit(base, path))
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
                ref = await self._refer(key, p, sites)
            if ref != _NEG:
                sites, referred = list(orjson.loads(ref)), True
        return sites if referred else None

    async def _refer(self, key: str, prefix: str, sites: list[str]) -> bytes:
        """Ask ``sites`` for ``0.NA/<prefix>`` (concurrent askers share one request) and keep it."""
        flight = self.ref_flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        kept = self.local.get_now(key)  # fetched by another request while this one read Redis
        if kept is not None:
            return kept
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.ref_flights[key] = fut
        try:
            status, body = await self._fetch(sites, "/api/handles/0.NA/" + quote(prefix, safe=""))
            urls, ttl = self._referral(body) if status == 200 else ([], 0.0)
            ref = orjson.dumps(urls) if urls else _NEG
            self._remember(key, ref, ttl if urls else self.negative_ttl)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            self.ref_flights.pop(key, None)
        fut.set_result(ref)
        return ref

    def _sites_now(self, prefix: str) -> list[str] | bool | None:
        """``sites_for`` from this worker's tier alone (False: a referral is not kept here)."""
        sites = self.roots
        referred = False
        for p in prefix_chain(prefix):
            ref = self.local.get_now("ref:" + (p.upper() if p.isascii() else fold(p)))
            if ref is None:
                return False
            if ref != _NEG:
                sites, referred = orjson.loads(ref), True
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
        hit = self.local.get_now(key)
        if hit is not None or self.shared is None:
            return hit
        found = await asyncio.shield(self.shared.get(key))
        return self._keep(key, found)

    def _keep(self, key: str, found: Found) -> bytes | None:
        """Keep what the shared tier had in this worker's tier, for its remaining TTL."""
        if found is None:
            return None
        value, left = found
        self.local.set_now(key, value, min(left, self.max_ttl))
        return value

    def _remember(self, key: str, body: bytes, ttl: float) -> None:
        self.local.set_now(key, body, ttl)
        if self.shared is not None:
            self.shared.put(key, body, ttl)

    async def resolve(self, handle: str) -> Answer:
        """Resolve one identifier (raises ``MalformedIdentifier`` for bad syntax)."""
        h = parse(handle)
        cached = self.local.get_now("rec:" + h.norm)
        if cached is not None:
            return self._hit(cached)
        return await asyncio.shield(self.lookup(h))

    def _hit(self, cached: bytes) -> Answer:
        if cached.startswith(b'{"responseCode":100'):
            self.stats.negative_hits += 1
            return Answer(404, cached, cached=True)
        self.stats.hits += 1
        return Answer(200, cached, cached=True)

    def lookup(self, h: Handle) -> asyncio.Future[Answer]:
        """The answer for an identifier not in this worker's tier: from Redis, or upstream.

        Concurrent lookups of one identifier share one future (one fetch).
        """
        key = "rec:" + h.norm
        flight = self.flights.get(key)
        if flight is not None:
            return flight
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.flights[key] = fut
        fut.add_done_callback(lambda _: self.flights.pop(key, None))
        if self.shared is None:
            self._miss(h, key, fut)
        else:
            self.shared.get(key).add_done_callback(lambda f: self._shared_read(h, key, fut, f))
        return fut

    def _shared_read(
        self, h: Handle, key: str, fut: asyncio.Future[Answer], read: asyncio.Future[Found]
    ) -> None:
        cached = self._keep(key, read.result())
        if cached is None:
            self._miss(h, key, fut)
        elif not fut.done():
            fut.set_result(self._hit(cached))

    def _miss(self, h: Handle, key: str, fut: asyncio.Future[Answer]) -> None:
        self.stats.misses += 1
        sites = self._sites_now(h.prefix)
        if sites is False:  # a referral to follow first: the general (awaiting) path
            self._spawn(self._resolve_upstream(h, key), fut)
            return
        if sites is None:
            self._answer_missing(h, fut, f"prefix {h.prefix} is not known to any root")
            return
        assert isinstance(sites, list)
        path = "/api/handles/" + (str(h) if _PLAIN.fullmatch(str(h)) else quote(str(h), safe="/"))
        base = sites[0]
        self._count(base)
        try:
            up = self.client.submit(base, path)
        except UpstreamError as exc:
            self._upstream_failed(h, key, fut, sites, path, exc)
            return
        up.add_done_callback(lambda u: self._arrived(h, key, fut, sites, path, u))

    def _arrived(
        self,
        h: Handle,
        key: str,
        fut: asyncio.Future[Answer],
        sites: list[str],
        path: str,
        up: asyncio.Future[Result],
    ) -> None:
        exc = up.exception()
        if exc is not None:
            self._upstream_failed(h, key, fut, sites, path, exc)
            return
        status, body = up.result()
        if status >= 500:
            self._upstream_failed(h, key, fut, sites, path, RuntimeError(f"{sites[0]} answered {status}"))
        elif not fut.done():
            fut.set_result(self._answer(h, key, status, body))

    def _upstream_failed(
        self,
        h: Handle,
        key: str,
        fut: asyncio.Future[Answer],
        sites: list[str],
        path: str,
        exc: BaseException,
    ) -> None:
        self.stats.upstream_errors += 1
        log.warning("site %s failed for %s: %s", sites[0], path, exc)
        if len(sites) > 1:
            self._spawn(self._fetch_answer(h, key, sites[1:], path), fut)
        else:
            _fail(fut, ResolutionFailed(f"no site answered {path}: {exc}", sites=sites))

    def _spawn(self, job: Coroutine[Any, Any, Answer], fut: asyncio.Future[Answer]) -> None:
        task = asyncio.get_running_loop().create_task(job)

        def done(t: asyncio.Task[Answer]) -> None:
            if t.cancelled():
                _fail(fut, ResolutionFailed("the resolution was cancelled"))
            elif (exc := t.exception()) is not None:
                _fail(fut, exc)
            elif not fut.done():
                fut.set_result(t.result())

        task.add_done_callback(done)

    def _answer_missing(self, h: Handle, fut: asyncio.Future[Answer], message: str) -> None:
        body = not_found_body(str(h), message)
        self._remember("rec:" + h.norm, body, self.negative_ttl)
        if not fut.done():
            fut.set_result(Answer(404, body))

    def _answer(self, h: Handle, key: str, status: int, body: bytes) -> Answer:
        """Store and return the answer of the record's site (a 200's body passes through as is)."""
        if status == 200:
            self._remember(key, body, min(_min_ttl(body, self.max_ttl), self.max_ttl))
            return Answer(200, body)
        body = not_found_body(str(h))
        self._remember(key, body, self.negative_ttl)
        return Answer(404, body)

    async def _fetch_answer(self, h: Handle, key: str, sites: list[str], path: str) -> Answer:
        status, body = await self._fetch(sites, path)
        return self._answer(h, key, status, body)

    async def _resolve_upstream(self, h: Handle, key: str) -> Answer:
        sites = await self.sites_for(h.prefix)
        if sites is None:
            body = not_found_body(str(h), f"prefix {h.prefix} is not known to any root")
            self._remember(key, body, self.negative_ttl)
            return Answer(404, body)
        return await self._fetch_answer(h, key, sites, "/api/handles/" + quote(str(h), safe="/"))

    def cached_now(self, handle_norm: str) -> bytes | None:
        """Synchronous peek into the worker's memory tier for the fast path."""
        return self.local.get_now("rec:" + handle_norm)


_PLAIN = re.compile(r"[A-Za-z0-9._/-]+")
