"""The time-series store protocol and the pieces both implementations share.

Timestamps inside the store are integers: microseconds since the Unix epoch (UTC). Every
(tenant, tag) pair is a *series* with a small integer id (``sid``); points are keyed by
``(sid, ts)`` so writing the same point twice leaves one row (the last write wins).

Two series kinds exist per tag: ``raw`` (what ingest stored) and ``clean`` (what the
cleaning pipeline produced). Each has 1-minute and 1-hour rollups kept incrementally:
every write marks the (sid, hour) it touched as dirty; ``refresh_rollups`` recomputes
exactly those hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from gongyun.errors import InvalidInput

SeriesKind = Literal["raw", "clean"]
Source = Literal["auto", "raw", "1m", "1h"]
Agg = Literal["avg", "min", "max", "first", "last", "count"]

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 3600 * US
DAY_US = 86400 * US
ROLLUP_US: dict[str, int] = {"1m": MINUTE_US, "1h": HOUR_US}
MAX_BUCKETS = 100_000
AGGS: tuple[Agg, ...] = ("avg", "min", "max", "first", "last", "count")

FLAG_INTERPOLATED = 1
QUALITY_CODES = {"good": 0, "uncertain": 1, "bad": 2}
QUALITY_NAMES = {v: k for k, v in QUALITY_CODES.items()}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoreError(InvalidInput):
    """A store request is malformed (bad range, bucket count, series kind ...)."""

    code = "telemetry_query_invalid"
    title = "Invalid telemetry query"


def to_us(ts: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch."""
    if ts.tzinfo is None:
        raise StoreError("timestamps must be timezone-aware")
    return (ts - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """Integer microseconds since the epoch as a UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


class Point(NamedTuple):
    """One stored value: tag name, time (µs since epoch), value, quality code, flags."""

    tag: str
    ts: int
    value: float
    quality: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of one time bucket (``None`` values when the bucket is empty)."""

    start: int
    count: int
    avg: float | None
    min: float | None
    max: float | None
    first: float | None
    last: float | None

    def get(self, agg: Agg) -> float | None:
        """The value of one aggregate."""
        if agg == "count":
            return float(self.count)
        value: float | None = getattr(self, agg)
        return value


@dataclass(frozen=True, slots=True)
class BucketPlan:
    """Where buckets start, how wide they are, how many, and which table feeds them."""

    origin: int
    width: int
    count: int
    source: Literal["raw", "1m", "1h"]

    @property
    def end(self) -> int:
        """End (exclusive) of the last bucket."""
        return self.origin + self.width * self.count


@dataclass(frozen=True, slots=True)
class Downsampled:
    """A series downsampled into buckets."""

    tag: str
    plan: BucketPlan
    buckets: list[Bucket]


@dataclass(frozen=True, slots=True)
class Aligned:
    """Several tags on one time axis: ``values[tag][i]`` belongs to ``times[i]``."""

    plan: BucketPlan
    agg: Agg
    times: list[int]
    values: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long raw points and rollups are kept for a tenant (``tag=None``) or one tag."""

    tenant: str
    raw_keep: timedelta
    rollup_keep: timedelta
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.raw_keep <= timedelta(0) or self.rollup_keep <= timedelta(0):
            raise StoreError("retention periods must be positive")
        if self.rollup_keep < self.raw_keep:
            raise StoreError("rollups must be kept at least as long as raw data")


def plan_buckets(start: int, end: int, count: int, source: Source = "auto") -> BucketPlan:
    """Plan ``count`` buckets over [start, end); rollups snap the grid to their resolution.

    ``auto`` uses the coarsest rollup at most half a bucket wide (1 h, then 1 min), else raw.
    A rollup-fed plan is exact: its origin and width are multiples of the rollup resolution,
    so it may hold slightly fewer, wider buckets than asked for.
    """
    if end <= start:
        raise StoreError("end must be after start")
    if not 1 <= count <= MAX_BUCKETS:
        raise StoreError(f"bucket count must be between 1 and {MAX_BUCKETS}")
    width = max(1, -(-(end - start) // count))
    chosen: Literal["raw", "1m", "1h"] = "raw"
    if source == "auto":
        for name in ("1h", "1m"):
            if width >= 2 * ROLLUP_US[name]:
                chosen = "1h" if name == "1h" else "1m"
                break
    else:
        chosen = source
    if chosen == "raw":
        return BucketPlan(start, width, count, "raw")
    res = ROLLUP_US[chosen]
    origin = start // res * res
    width = max(res, -(-width // res) * res)
    n = max(1, -(-(end - origin) // width))
    return BucketPlan(origin, width, n, chosen)


def fill_buckets(plan: BucketPlan, rows: Sequence[Sequence[object]]) -> list[Bucket]:
    """Turn ``(index, count, avg, min, max, first, last)`` rows into ``plan.count`` buckets."""
    empty = [Bucket(plan.origin + i * plan.width, 0, None, None, None, None, None) for i in range(plan.count)]
    for idx, cnt, avg, mn, mx, first, last in rows:
        i = int(idx)  # type: ignore[call-overload]
        if 0 <= i < plan.count:
            empty[i] = Bucket(
                plan.origin + i * plan.width,
                int(cnt),  # type: ignore[call-overload]
                _f(avg),
                _f(mn),
                _f(mx),
                _f(first),
                _f(last),
            )
    return empty


def _f(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def dedupe(points: Sequence[Point]) -> list[Point]:
    """Keep the last of several points with the same (tag, ts), preserving order otherwise."""
    seen = {(p[0], p[1]): p for p in points}
    if len(seen) == len(points):
        return list(points)
    return list(seen.values())


def check_series(series: str) -> SeriesKind:
    """Validate a series kind name."""
    if series not in ("raw", "clean"):
        raise StoreError(f"unknown series kind {series!r}: use 'raw' or 'clean'")
    return "raw" if series == "raw" else "clean"


def check_agg(agg: str) -> Agg:
    """Validate an aggregate name."""
    if agg not in AGGS:
        raise StoreError(f"unknown aggregate {agg!r}: use one of {', '.join(AGGS)}")
    return agg


@runtime_checkable
class TimeSeriesStore(Protocol):
    """What every time-series backend offers."""

    kind: str

    async def open(self) -> None:
        """Connect and create the schema if needed."""

    async def close(self) -> None:
        """Release connections."""

    async def write(self, tenant: str, points: Sequence[Point], series: SeriesKind = "raw") -> int:
        """Upsert points (idempotent on tenant, tag, ts); return how many were written."""

    async def delete(self, tenant: str, tag: str, start: int, end: int, series: SeriesKind = "raw") -> None:
        """Delete one tag's points in [start, end) (rollups follow on the next refresh)."""

    async def raw(
        self,
        tenant: str,
        tag: str,
        start: int,
        end: int,
        *,
        series: SeriesKind = "raw",
        limit: int | None = None,
    ) -> list[Point]:
        """Points of one tag in [start, end), oldest first."""

    async def downsample(
        self,
        tenant: str,
        tag: str,
        start: int,
        end: int,
        buckets: int,
        *,
        series: SeriesKind = "raw",
        source: Source = "auto",
    ) -> Downsampled:
        """One tag's [start, end) in ``buckets`` buckets with every aggregate."""

    async def aligned(
        self,
        tenant: str,
        tags: Sequence[str],
        start: int,
        end: int,
        buckets: int,
        *,
        agg: Agg = "avg",
        series: SeriesKind = "raw",
        source: Source = "auto",
    ) -> Aligned:
        """Several tags downsampled onto one time axis."""

    async def latest(
        self, tenant: str, tags: Sequence[str] | None = None, series: SeriesKind = "raw"
    ) -> dict[str, Point]:
        """The newest point of each tag (all tags of the tenant when ``tags`` is None)."""

    async def tags(self, tenant: str) -> list[str]:
        """Names of every tag the tenant has points for."""

    async def refresh_rollups(self) -> int:
        """Recompute rollups of every dirty hour; return how many hours were refreshed."""

    async def set_retention(self, policy: RetentionPolicy) -> None:
        """Create or replace a retention policy."""

    async def retention_policies(self, tenant: str) -> list[RetentionPolicy]:
        """The tenant's retention policies."""

    async def apply_retention(self, now: int | None = None) -> dict[str, int]:
        """Delete what policies say has expired; return rows deleted per table."""
