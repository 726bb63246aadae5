"""The shared resolution cache of identifier records (Redis in the server profile).

Every process that resolves identifiers from a database (the API's ``/api/v1/identifiers``
and the root, secondary and enterprise nodes) may share one cache. Keys, under the
cache's namespace (``gy:<deployment_id>:idres:``, :func:`resolution_cache_namespace`):

* ``node:<tenant>:<norm>`` — the stored row of a node's Handle API (``<tenant>`` is ``*`` on a
  node serving every tenant);
* ``api:<tenant>:<norm>`` — the platform API's rendered record of a tenant.

A resolved record is kept for the smallest TTL of its values (bounded by ``max_ttl``); an
identifier that does not exist is remembered as ``-`` for ``negative_ttl``. Every committed
write (register, update, delete, batch) deletes all key forms of the identifiers it changed,
so the next resolution in any process reads the database again. A cache that fails (Redis
down) is skipped: resolution falls back to the database and the error is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import Counter

from gongyun.errors import ServiceUnavailable
from gongyun.idres.cache import Cache

log = logging.getLogger(__name__)
NEGATIVE = b"-"
KINDS = ("node", "api")
LOOKUPS = Counter("gongyun_idres_cache_lookups_total", "Shared resolution cache lookups", ["result"])

Loader = Callable[[], Awaitable[tuple[bytes, float] | None]]


def resolution_cache_namespace(deployment_id: str) -> str:
    """The key prefix of one deployment's resolution cache (``gy:<deployment_id>:idres:``).

    The platform API and the nodes of a deployment share it (a write through either deletes the
    keys the other reads); deployments sharing one Redis server never see each other's keys.
    """
    return f"gy:{deployment_id}:idres:"


def key(kind: str, tenant_id: str | None, norm: str) -> str:
    """The cache key of one identifier as seen by one tenant (``None``: every tenant)."""
    return f"{kind}:{tenant_id or '*'}:{norm}"


class SharedRecords:
    """Read-through cache of resolved records with TTLs, negative entries and invalidation."""

    def __init__(self, cache: Cache, *, negative_ttl: float = 30.0, max_ttl: float = 86_400.0) -> None:
        self.cache = cache
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self.hits = 0
        self.misses = 0
        self.errors = 0

    async def get(self, kind: str, tenant_id: str | None, norm: str, load: Loader) -> bytes | None:
        """The cached body (None: known not to exist), else ``load()``'s, remembered for its TTL."""
        k = key(kind, tenant_id, norm)
        try:
            cached = await self.cache.get(k)
        except ServiceUnavailable as exc:
            self._failed("read", exc)
            cached = None
        if cached is not None:
            self.hits += 1
            LOOKUPS.labels("negative_hit" if cached == NEGATIVE else "hit").inc()
            return None if cached == NEGATIVE else cached
        self.misses += 1
        LOOKUPS.labels("miss").inc()
        loaded = await load()
        body, ttl = (NEGATIVE, self.negative_ttl) if loaded is None else loaded
        try:
            await self.cache.set(k, body, min(ttl, self.max_ttl))
        except ServiceUnavailable as exc:
            self._failed("write", exc)
        return None if loaded is None else body

    async def forget(self, norms: Iterable[str], tenant_ids: Iterable[str | None] = ()) -> None:
        """Delete every key form of the identifiers (call after the write is committed)."""
        owners = {None, *tenant_ids}
        keys = [key(kind, t, n) for n in norms for kind in KINDS for t in owners]
        if not keys:
            return
        try:
            await self.cache.delete(*keys)
        except ServiceUnavailable as exc:
            self._failed("invalidate", exc)

    def _failed(self, what: str, exc: ServiceUnavailable) -> None:
        self.errors += 1
        LOOKUPS.labels("error").inc()
        log.warning("resolution cache %s failed: %s", what, exc.message)

    async def close(self) -> None:
        """Close the underlying cache."""
        await self.cache.close()
