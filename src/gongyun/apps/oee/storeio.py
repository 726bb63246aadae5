"""The rollup reader over a time-series store (the store's public downsample and raw queries)."""

from __future__ import annotations

import numpy as np

from gongyun.apps.oee.domain.rollup import WIDTH, Buckets, Resolution
from gongyun.telemetry.store.base import TimeSeriesStore


class StoreReader:
    """Reads one tenant's rollups and raw points for the OEE computation."""

    def __init__(self, store: TimeSeriesStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    async def buckets(self, tag: str, start: int, end: int, resolution: Resolution) -> Buckets:
        """Non-empty rollup buckets of [start, end) at ``resolution``."""
        width = WIDTH[resolution]
        n = max(1, (end - start) // width)
        ds = await self.store.downsample(self.tenant, tag, start, end, n, source=resolution)
        rows = [b for b in ds.buckets if b.count > 0]
        f = np.fromiter
        return Buckets(
            f((b.start for b in rows), np.int64, len(rows)),
            f((b.count for b in rows), np.float64, len(rows)),
            f((b.min or 0.0 for b in rows), np.float64, len(rows)),
            f((b.max or 0.0 for b in rows), np.float64, len(rows)),
            f((b.first or 0.0 for b in rows), np.float64, len(rows)),
            f((b.last or 0.0 for b in rows), np.float64, len(rows)),
            f((b.avg or 0.0 for b in rows), np.float64, len(rows)),
        )

    async def raw(self, tag: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw points of [start, end)."""
        pts = await self.store.raw(self.tenant, tag, start, end)
        return (
            np.fromiter((p.ts for p in pts), np.int64, len(pts)),
            np.fromiter((p.value for p in pts), np.float64, len(pts)),
        )
