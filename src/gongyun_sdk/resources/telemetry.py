"""Telemetry: write samples, query raw, downsampled and latest values, follow live points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gongyun_sdk._ops import M, Op, Pages, Resource, as_is, call, operation, paginated, query, streaming
from gongyun_sdk.sse import StreamOp
from gongyun_sdk.types import DownsampledSeries, IngestResult, LivePoint, Point, RawSeries

SeriesName = Literal["raw", "clean"]
Source = Literal["auto", "raw", "1m", "1h"]


def _sample(item: Mapping[str, Any]) -> dict[str, Any]:
    """A sample as JSON: a datetime ``ts`` (naive = UTC) becomes ISO 8601, missing ``ts`` is now."""
    out = dict(item)
    ts = out.get("ts")
    if ts is None:
        ts = datetime.now(UTC)
    if isinstance(ts, datetime):
        out["ts"] = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat()
    return out


def _after_last(op: Op[Any], page: RawSeries) -> Op[Any] | None:
    """The next page of a raw read: from just after the last point, while the limit cut it short."""
    if not page["truncated"] or not page["points"]:
        return None
    start = datetime.fromisoformat(page["points"][-1]["ts"]) + timedelta(microseconds=1)
    rest = [(k, v) for k, v in op.params or [] if k != "start"]
    return call("GET", op.path, params=[*rest, ("start", start.isoformat())])


def _points(page: RawSeries) -> list[Point]:
    return page["points"]


class Telemetry(Resource[M]):
    """Time series of the tenant's tags (named ``device/tag``)."""

    @operation
    def write(self, samples: Sequence[Mapping[str, Any]]) -> Op[IngestResult]:
        """Store samples ``{"tag", "value", "ts", "quality"?}``; the answer lists each one refused."""
        return call("POST", "telemetry/ingest", json={"samples": [_sample(s) for s in samples]})

    @operation
    def tags(self) -> Op[list[str]]:
        """Every ``device/tag`` with stored data."""
        return call("GET", "telemetry/tags")

    @operation
    def raw(
        self,
        tag: str,
        start: datetime,
        end: datetime,
        *,
        series: SeriesName = "raw",
        limit: int = 10_000,
    ) -> Op[RawSeries]:
        """Points of one tag in [start, end), oldest first (at most ``limit``: see ``truncated``)."""
        params = query(tag=tag, start=start, end=end, series=series, limit=limit)
        return call("GET", "telemetry/raw", params=params)

    @paginated
    def points(
        self,
        tag: str,
        start: datetime,
        end: datetime,
        *,
        series: SeriesName = "raw",
        page_size: int = 10_000,
    ) -> Pages[Point]:
        """Every point of one tag in [start, end), oldest first, however many (fetched in pages)."""
        params = query(tag=tag, end=end, series=series, limit=page_size, start=start)
        return Pages(call("GET", "telemetry/raw", params=params), _points, _after_last)

    @operation
    def downsample(
        self,
        tag: str,
        start: datetime,
        end: datetime,
        *,
        buckets: int = 500,
        series: SeriesName = "raw",
        source: Source = "auto",
    ) -> Op[DownsampledSeries]:
        """avg, min, max, first, last and count of one tag in ``buckets`` equal buckets."""
        params = query(tag=tag, start=start, end=end, buckets=buckets, series=series, source=source)
        return call("GET", "telemetry/downsample", params=params)

    @operation
    def aligned(
        self,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        buckets: int = 500,
        agg: Literal["avg", "min", "max", "first", "last", "count"] = "avg",
        series: SeriesName = "raw",
        source: Source = "auto",
    ) -> Op[dict[str, Any]]:
        """One aggregate of several tags on a shared time axis (``times`` and ``values`` per tag)."""
        params = query(
            tag=list(tags), start=start, end=end, buckets=buckets, agg=agg, series=series, source=source
        )
        return call("GET", "telemetry/aligned", params=params)

    @operation
    def latest(
        self, tags: Sequence[str] | None = None, *, series: SeriesName = "raw"
    ) -> Op[dict[str, Point]]:
        """The newest point of each tag (every tag when none is given), by ``device/tag``."""
        return call("GET", "telemetry/latest", params=query(tag=list(tags or []), series=series))

    @streaming
    def stream(self, tags: Sequence[str] | None = None) -> StreamOp[list[LivePoint]]:
        """Live points as they are stored: each item is one stored batch (of the ``tags`` if given)."""
        return StreamOp("telemetry/stream", query(tag=list(tags or [])), "points", as_is)
