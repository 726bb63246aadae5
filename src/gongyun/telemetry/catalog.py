"""What ingest needs to know about a tag, and where it looks it up."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class DataType(StrEnum):
    """The value types the store keeps (numeric; booleans as 0/1)."""

    float = "float"
    int = "int"
    bool = "bool"


@dataclass(frozen=True, slots=True)
class TagSpec:
    """A tag as the asset model defines it: ``device/tag`` name, type, unit and valid range.

    ``source_unit`` is the unit the device sends, when it differs from ``unit`` (ingest converts).
    """

    tag: str
    data_type: DataType = DataType.float
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    source_unit: str | None = None


class TagCatalog(Protocol):
    """Looks tags up by tenant and name."""

    async def get(self, tenant: str, tag: str) -> TagSpec | None:
        """The tag's spec, or None when the tenant has no such tag."""


class StaticCatalog:
    """A catalog held in memory (tests, benchmarks, the embedded demo)."""

    def __init__(self, specs: dict[str, Iterable[TagSpec]] | None = None) -> None:
        self._specs: dict[tuple[str, str], TagSpec] = {}
        for tenant, items in (specs or {}).items():
            for spec in items:
                self.add(tenant, spec)

    def add(self, tenant: str, spec: TagSpec) -> None:
        """Add or replace one tag."""
        self._specs[(tenant, spec.tag)] = spec

    async def get(self, tenant: str, tag: str) -> TagSpec | None:
        """The tag's spec, or None."""
        return self._specs.get((tenant, tag))


class CachedCatalog:
    """Caches another catalog's answers: known tags for ``ttl_s`` seconds, misses for ``miss_ttl_s``.

    Changes to the catalogue are announced to every process, which then calls :meth:`invalidate`
    (``gongyun.platform.catalog``); the TTLs only bound how long a lost announcement is felt, so
    known tags are kept long (one lookup per tag every few minutes, not one per request).
    """

    def __init__(
        self,
        lookup: Callable[[str, str], Awaitable[TagSpec | None]],
        ttl_s: float = 300.0,
        miss_ttl_s: float = 30.0,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl_s
        self._miss_ttl = miss_ttl_s
        self._cache: dict[tuple[str, str], tuple[float, TagSpec | None]] = {}

    async def get(self, tenant: str, tag: str) -> TagSpec | None:
        """The tag's spec from cache, or from the underlying lookup."""
        now = time.monotonic()
        hit = self._cache.get((tenant, tag))
        if hit is not None and now - hit[0] < (self._ttl if hit[1] is not None else self._miss_ttl):
            return hit[1]
        spec = await self._lookup(tenant, tag)
        self._cache[(tenant, tag)] = (now, spec)
        return spec

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget cached answers (of one tenant, or all)."""
        if tenant is None:
            self._cache.clear()
        else:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != tenant}
