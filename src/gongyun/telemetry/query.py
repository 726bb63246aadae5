"""Queries in user terms (datetimes in, JSON-friendly dicts out) over any store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gongyun.telemetry.store.base import (
    FLAG_INTERPOLATED,
    QUALITY_NAMES,
    Agg,
    Bucket,
    Point,
    SeriesKind,
    Source,
    StoreError,
    TimeSeriesStore,
    check_agg,
    check_series,
    from_us,
    to_us,
)

MAX_RAW_POINTS = 100_000


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")


def point_dict(p: Point) -> dict[str, Any]:
    """A stored point as JSON."""
    return {
        "ts": _iso(p.ts),
        "value": p.value,
        "quality": QUALITY_NAMES.get(p.quality, "bad"),
        "interpolated": bool(p.flags & FLAG_INTERPOLATED),
    }


def bucket_dict(b: Bucket) -> dict[str, Any]:
    """A bucket as JSON."""
    return {
        "start": _iso(b.start),
        "count": b.count,
        "avg": b.avg,
        "min": b.min,
        "max": b.max,
        "first": b.first,
        "last": b.last,
    }


def span(start: datetime, end: datetime) -> tuple[int, int]:
    """Validate a time range and turn it into store microseconds."""
    a, b = to_us(start), to_us(end)
    if b <= a:
        raise StoreError("end must be after start")
    return a, b


class TelemetryQuery:
    """Read telemetry for one tenant through the store's query interface."""

    def __init__(self, store: TimeSeriesStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    async def raw(
        self, tag: str, start: datetime, end: datetime, *, series: str = "raw", limit: int = 10_000
    ) -> dict[str, Any]:
        """Points of one tag in [start, end)."""
        if not 1 <= limit <= MAX_RAW_POINTS:
            raise StoreError(f"limit must be between 1 and {MAX_RAW_POINTS}")
        a, b = span(start, end)
        pts = await self.store.raw(self.tenant, tag, a, b, series=check_series(series), limit=limit)
        return {
            "tag": tag,
            "series": series,
            "points": [point_dict(p) for p in pts],
            "truncated": len(pts) == limit,
        }

    async def downsample(
        self,
        tag: str,
        start: datetime,
        end: datetime,
        buckets: int,
        *,
        series: str = "raw",
        source: str = "auto",
    ) -> dict[str, Any]:
        """One tag in N buckets with every aggregate."""
        a, b = span(start, end)
        src = _source(source)
        res = await self.store.downsample(
            self.tenant, tag, a, b, buckets, series=check_series(series), source=src
        )
        return {
            "tag": tag,
            "series": series,
            "source": res.plan.source,
            "width_s": res.plan.width / 1e6,
            "buckets": [bucket_dict(x) for x in res.buckets],
        }

    async def aligned(
        self,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        buckets: int,
        *,
        agg: str = "avg",
        series: str = "raw",
        source: str = "auto",
    ) -> dict[str, Any]:
        """Several tags on one time axis."""
        a, b = span(start, end)
        kind: SeriesKind = check_series(series)
        al = await self.store.aligned(
            self.tenant, tags, a, b, buckets, agg=check_agg(agg), series=kind, source=_source(source)
        )
        return {
            "agg": al.agg,
            "series": series,
            "source": al.plan.source,
            "width_s": al.plan.width / 1e6,
            "times": [_iso(t) for t in al.times],
            "values": al.values,
        }

    async def latest(self, tags: Sequence[str] | None = None, *, series: str = "raw") -> dict[str, Any]:
        """Newest value of each tag."""
        got = await self.store.latest(self.tenant, tags, series=check_series(series))
        return {tag: point_dict(p) for tag, p in sorted(got.items())}


def _source(source: str) -> Source:
    if source not in ("auto", "raw", "1m", "1h"):
        raise StoreError(f"unknown source {source!r}: use auto, raw, 1m or 1h")
    return source  # type: ignore[return-value]


AGG_NAMES: tuple[Agg, ...] = ("avg", "min", "max", "first", "last", "count")
