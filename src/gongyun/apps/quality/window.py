"""Bounded reads for live charts: the newest points of a long window, and a summary of the rest.

A chart subgrouped by count or by lot over a month of 1 Hz data would read millions of raw points.
For drawing, the chart reads at most ``max_points`` of the newest raw points: the store's 1 h
rollups (their counts) say from which whole hour on the window's tail fits, the raw points are
read from there, and what lies before is summarised exactly (points, mean, min, max) from the
rollups and, for the partial hours at the edges, one raw aggregate each. Subgroups by count stay
aligned to the window's start (the first incomplete one is left out, numbering goes on), a lot
that began before the cut is left out whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gongyun.telemetry.store.base import Bucket, TimeSeriesStore

HOUR = 3_600_000_000
DAY = 24 * HOUR
LIVE_POINTS = 20_000  # raw points a live chart reads at most (4,000 subgroups of 5)


@dataclass(frozen=True)
class LeftOut:
    """What a bounded read left out: the window's points before ``before`` (µs)."""

    before: int
    points: int
    mean: float | None
    min: float | None
    max: float | None
    subgroups: int | None = None
    lots: int | None = None

    def to_json(self, iso: Any) -> dict[str, Any]:
        """The summary as the API shows it (``iso`` formats µs)."""
        return {
            "before": iso(self.before),
            "points": self.points,
            "mean": self.mean,
            "min": self.min,
            "max": self.max,
            "subgroups": self.subgroups,
            "lots": self.lots,
        }


def _merge(parts: list[Bucket]) -> tuple[int, float | None, float | None, float | None]:
    full = [b for b in parts if b.count > 0 and b.avg is not None]
    n = sum(b.count for b in full)
    if n == 0:
        return 0, None, None, None
    mean = sum(b.count * (b.avg or 0.0) for b in full) / n
    return (
        n,
        mean,
        min(b.min for b in full if b.min is not None),
        max(b.max for b in full if b.max is not None),
    )


async def _raw_summary(store: TimeSeriesStore, tenant: str, tag: str, a: int, b: int) -> list[Bucket]:
    if b <= a:
        return []
    return (await store.downsample(tenant, tag, a, b, 1, source="raw")).buckets


async def count_points(store: TimeSeriesStore, tenant: str, tag: str, a: int, b: int) -> int:
    """How many points the tag has in [a, b): whole hours from the 1 h rollups, the edges raw."""
    h0, h1 = -(-a // HOUR) * HOUR, b // HOUR * HOUR
    if h1 <= h0:
        return sum(x.count for x in await _raw_summary(store, tenant, tag, a, b))
    hours = (await store.downsample(tenant, tag, h0, h1, 1, source="1h")).buckets
    edges = await _raw_summary(store, tenant, tag, a, h0) + await _raw_summary(store, tenant, tag, h1, b)
    return sum(x.count for x in hours + edges)


async def last_before(store: TimeSeriesStore, tenant: str, tag: str, t: int) -> float | None:
    """The tag's last value before ``t``: from the raw day before, else from the 1 h rollups of the
    year before that (one aggregate row each, never the points)."""
    day = await _raw_summary(store, tenant, tag, t - DAY, t)
    if day and day[0].count:
        return day[0].last
    h = (t - DAY) // HOUR * HOUR
    [year] = (await store.downsample(tenant, tag, h - 365 * DAY, h, 1, source="1h")).buckets
    return year.last if year.count else None


async def cut_point(
    store: TimeSeriesStore, tenant: str, tag: str, start: int, end: int, max_points: int
) -> LeftOut | None:
    """Where the newest ``max_points`` of [start, end) begin (an hour boundary), and what lies
    before; None when the whole window fits."""
    h0 = -(-start // HOUR) * HOUR  # first whole hour inside the window
    h1 = end // HOUR * HOUR  # start of the last, partial hour
    if h1 <= h0:
        return None
    hours = (await store.downsample(tenant, tag, h0, h1, (h1 - h0) // HOUR, source="1h")).buckets
    if sum(b.count for b in hours) <= max_points:
        return None
    tail = await count_points(store, tenant, tag, h1, end)
    kept, i = tail, len(hours)
    while i > 0 and kept + hours[i - 1].count <= max_points:
        i -= 1
        kept += hours[i].count
    cut = h0 + i * HOUR
    if cut <= start:
        return None
    n, mean, lo, hi = _merge(hours[:i] + await _raw_summary(store, tenant, tag, start, h0))
    return LeftOut(cut, n, mean, lo, hi)
