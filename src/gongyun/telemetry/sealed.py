"""Core (level-3) tag values never reach the time-series store in clear.

``SealingStore`` wraps the store ingest writes to: points of a tenant's core tags are sealed
with the tenant's level-3 data key (``gongyun.security.classify.keyring``) into
``sealed_points`` in the metadata database, and only the other points go on to the store
(DuckDB file or PostgreSQL). Everything else the store does passes through unchanged.
``read_sealed`` opens them again for callers cleared for core data.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gongyun.db import Database
from gongyun.security.classify.keyring import Keyring, SealedPoint
from gongyun.security.classify.levels import Level
from gongyun.telemetry.store.base import Point, TimeSeriesStore

CoreTags = Callable[[str], Awaitable[set[str]]]  # tenant -> its core tags ("device/tag")
_CACHE_S = 5.0


def _ref(tag: str, ts: int) -> str:
    return f"{tag}@{ts}"


class SealingStore:
    """A ``TimeSeriesStore`` wrapper that diverts core tags' points into sealed rows."""

    def __init__(self, inner: TimeSeriesStore, db: Database, keyring: Keyring, core_tags: CoreTags) -> None:
        self.inner = inner
        self.db = db
        self.keyring = keyring
        self.core_tags = core_tags
        self._cache: dict[str, tuple[float, set[str]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _core(self, tenant: str) -> set[str]:
        hit = self._cache.get(tenant)
        now = time.monotonic()
        if hit is None or now - hit[0] > _CACHE_S:
            hit = (now, await self.core_tags(tenant))
            self._cache[tenant] = hit
        return hit[1]

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget cached core-tag sets (after a classification change)."""
        if tenant is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant, None)

    async def _seal(self, tenant: str, points: Sequence[Point]) -> None:
        async with self.db.session() as s:
            rows = []
            for p in points:
                version, sealed = await self.keyring.seal(
                    s, tenant, Level.core, _ref(p.tag, p.ts), struct.pack("<d", p.value)
                )
                rows.append(
                    {
                        "tenant_id": tenant,
                        "tag": p.tag,
                        "ts": p.ts,
                        "quality": p.quality,
                        "version": version,
                        "sealed": sealed,
                    }
                )
            make_insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            stmt = make_insert(SealedPoint)
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "tag", "ts"],
                    set_={
                        "quality": stmt.excluded.quality,
                        "version": stmt.excluded.version,
                        "sealed": stmt.excluded.sealed,
                    },
                ),
                rows,
            )

    async def write(self, tenant: str, points: Sequence[Point], series: Any = "raw") -> int:
        """Seal core points, write the rest to the store."""
        core = await self._core(tenant) if series == "raw" else set()
        if not core:
            return await self.inner.write(tenant, points, series)
        sealed = [p for p in points if p.tag in core]
        rest = [p for p in points if p.tag not in core]
        if sealed:
            await self._seal(tenant, sealed)
        return (await self.inner.write(tenant, rest, series) if rest else 0) + len(sealed)

    async def write_columns(self, tenant: str, tags: list[str], ts: Any, values: Any, quality: Any) -> None:
        """The columnar write path of ingest, with core tags' points sealed."""
        core = await self._core(tenant)
        inner_columns = getattr(self.inner, "write_columns", None)
        mask = np.fromiter((t in core for t in tags), dtype=bool, count=len(tags)) if core else None
        if mask is not None and mask.any():
            idx = np.flatnonzero(mask)
            await self._seal(
                tenant,
                [Point(tags[i], int(ts[i]), float(values[i]), int(quality[i])) for i in idx],
            )
            keep = ~mask
            tags = [t for t, k in zip(tags, keep, strict=True) if k]
            ts, values, quality = ts[keep], values[keep], quality[keep]
            if not tags:
                return
        if inner_columns is not None:
            await inner_columns(tenant, tags, ts, values, quality)
        else:
            await self.inner.write(
                tenant, list(map(Point, tags, ts.tolist(), values.tolist(), quality.tolist()))
            )


async def read_sealed(
    db: Database, keyring: Keyring, tenant: str, tag: str, start: int, end: int
) -> list[Point]:
    """Open a core tag's sealed points in ``[start, end)`` (µs); ``DataKeyGone`` once shredded."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(SealedPoint)
                .where(
                    SealedPoint.tenant_id == tenant,
                    SealedPoint.tag == tag,
                    SealedPoint.ts >= start,
                    SealedPoint.ts < end,
                )
                .order_by(SealedPoint.ts)
            )
        ).scalars()
        out = []
        for r in rows:
            raw = await keyring.open(s, tenant, Level.core, _ref(r.tag, r.ts), r.version, r.sealed)
            out.append(Point(r.tag, r.ts, struct.unpack("<d", raw)[0], r.quality))
        return out


async def drop_sealed_before(db: Database, tenant: str, before: int) -> int:
    """Retention: delete a tenant's sealed points older than ``before`` (µs)."""
    async with db.session() as s:
        result = await s.execute(
            delete(SealedPoint).where(SealedPoint.tenant_id == tenant, SealedPoint.ts < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)


async def apply_retention(db: Database, now_us: int, days: int | None = None) -> int:
    """Delete every tenant's sealed (core) points older than the core level's retention."""
    from gongyun.security.classify.levels import RETENTION_DAYS

    keep = RETENTION_DAYS[Level.core] if days is None else days
    async with db.session() as s:
        result = await s.execute(delete(SealedPoint).where(SealedPoint.ts < now_us - keep * 86_400_000_000))
        return int(getattr(result, "rowcount", 0) or 0)
